/*
 * trace.h - what a delivered probe's header says: the receiving
 * provider's trusted authentication verdicts (RFC 8601) and the path from
 * the relay to the mailbox (RFC 5321 section 4.4 Received fields).
 *
 * Trust (docs/SPEC.md "Authentication verdicts and the delivery
 * path"): an Authentication-Results field counts only when it sits above
 * the relay's own Received field (the one whose id is the queue id of the
 * relay's 250 reply) and its authserv-id matches one of the provider's
 * patterns; for a provider that writes fields without an authserv-id
 * (Microsoft), such fields count when they sit above the relay's field.
 * Everything at or below the relay's field came from the sender's side
 * and is ignored: a sender can forge it. All trusted fields are merged.
 */
#ifndef INBOXPROBE_TRACE_H
#define INBOXPROBE_TRACE_H

#include <stddef.h>
#include "common/model.h"

#define TRACE_HEADER_MAX (256 * 1024)   /* bytes of header fetched and parsed */

struct trace_policy {
	const char *const *authserv_ids;   /* patterns: exact or "*.suffix" */
	size_t nids;
	int microsoft;                     /* 1: fields without an authserv-id count */
};

/*
 * Parse the header block hdr[0..len) of a delivered probe into *out (its
 * verdicts, hops, stages and note; fetched set to 1; tab untouched).
 * queue_id: the relay's queue id ("" or NULL: unknown, nothing trusted).
 * delivered: Unix seconds of delivery (INTERNALDATE), 0 when unknown
 * (then the newest hop's date ends the receiving stage). Never fails;
 * out->note says why verdicts or stages are missing.
 */
void trace_build(const char *hdr, size_t len, const char *queue_id, const struct trace_policy *pol,
                 double delivered, struct probe_trace *out);

/*
 * The built-in policy for a provider reached at IMAP host imap_host
 * (case-insensitive): authserv-id patterns of well-known providers and
 * the Microsoft mode for Microsoft's IMAP hosts. Sets *pol (static data);
 * returns 1 when the host is known, 0 otherwise (then pol trusts nothing).
 */
int trace_default_policy(const char *imap_host, struct trace_policy *pol);

/* Copy src into dst: every field, but of auth[] and hops[] only the first
 * nauth and nhops entries (dst's entries past those are left as they
 * were: readers stop at the counts). A round's results array is 1,000
 * traces of 11 KiB, mostly unused slots: a whole-struct copy made every
 * page of it resident. */
void trace_copy(struct probe_trace *dst, const struct probe_trace *src);

/* 1 when the probe carries a trusted verdict for method; *passed is 1
 * when at least one of them is "pass" (one passing DKIM signature is a
 * DKIM pass, RFC 6376 section 6.1). */
int trace_method_verdict(const struct probe_trace *t, const char *method, int *passed);

#endif
