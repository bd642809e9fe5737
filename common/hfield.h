/*
 * hfield.h - the fields of an RFC 5322 header block, one at a time, in
 * order, with their values unfolded; and the RFC 5322 date-time.
 *
 * Used for the trace and Authentication-Results fields of a delivered
 * probe, where every occurrence counts and their order matters (RFC 5321
 * section 4.4, RFC 8601 section 5).
 */
#ifndef INBOXPROBE_HFIELD_H
#define INBOXPROBE_HFIELD_H

#include <stddef.h>

struct hfield_iter {
	const char *p, *end;
};

/* Start iterating over the header block hdr[0..len). The block ends at
 * its first empty line or at len. hdr is borrowed: it must outlive the
 * iteration. */
void hfield_begin(struct hfield_iter *it, const char *hdr, size_t len);

/*
 * The next field. Returns 1 and sets *name (borrowed, not NUL-terminated,
 * *namelen bytes) and *value (heap, caller frees): the field body unfolded
 * by rfc5322_unfold() (common/util.h, the project's one unfolder), leading
 * and trailing spaces and tabs trimmed. Lines without a colon are skipped (RFC 5322 has no
 * such lines; a server may still send one). Returns 0 at the end.
 */
int hfield_next(struct hfield_iter *it, const char **name, size_t *namelen, char **value);

/* 1 when the field name [name, namelen) is want (ASCII case-insensitive). */
int hfield_is(const char *name, size_t namelen, const char *want);

/* The value of the first field called name in the header block h[0..hn),
 * as hfield_next() gives it (unfolded, trimmed), cut to max bytes (0 = no
 * cap); NULL when no such field. Heap string, the caller frees. */
char *rfc5322_field(const char *h, size_t hn, const char *name, size_t max);

/* How many fields called name the header block h[0..hn) holds. */
int hfield_count(const char *h, size_t hn, const char *name);

/*
 * Parse an RFC 5322 section 3.3 date-time ("Tue, 1 Dec 2026 23:11:19 +0000
 * (UTC)"): optional day of week, 1-2 digit day, month name, 2-, 3- or
 * 4-digit year (obsolete forms per section 4.3), hh:mm[:ss], and a zone:
 * +hhmm/-hhmm or an obsolete name (UT, GMT, EST...; military letters count
 * as +0000 as section 4.3 says). A trailing comment is ignored. Independent
 * of the host's TZ. Returns 0 and *out in Unix seconds, or -1 when malformed.
 */
int rfc5322_parse_date(const char *s, double *out);

#endif
