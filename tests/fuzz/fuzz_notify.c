/*
 * fuzz_notify.c - untagged STATUS responses as a NOTIFY server (RFC 5465
 * 5.2) sends them during IDLE: imap_status_parse, and
 * imap_status_parse_rest for the line after a literal mailbox name.
 * Invariants: the result is one of the documented codes; a parsed name
 * is NUL-terminated within IMAP_STATUS_NAME_MAX and holds no CR, LF or
 * NUL; only attributes that were sent are marked as had; a literal's
 * size is what the line says; nothing is read past the input.
 */
#include <config.h>
#include <stdlib.h>
#include <string.h>

#include "prober/imap_notify.h"
#include "tests/fuzz/fuzz.h"

static void check_parsed(int r, const struct imap_status_resp *st, const char *in)
{
	size_t n;

	FUZZ_CHECK(r == IMAP_STATUS_PARSED || r == IMAP_STATUS_NOT || r == IMAP_STATUS_LITERAL ||
	           r == IMAP_STATUS_MALFORMED, "result %d for \"%s\"", r, in);
	if (r != IMAP_STATUS_PARSED)
		return;
	n = strnlen(st->mailbox, sizeof st->mailbox);
	FUZZ_CHECK(n < sizeof st->mailbox, "mailbox name not terminated for \"%s\"", in);
	FUZZ_CHECK(strpbrk(st->mailbox, "\r\n") == NULL, "CR or LF in the name for \"%s\"", in);
	FUZZ_CHECK((st->have & ~(unsigned)(IMAP_ST_MESSAGES | IMAP_ST_UIDNEXT | IMAP_ST_UIDVALIDITY |
	                                   IMAP_ST_UNSEEN | IMAP_ST_RECENT)) == 0,
	           "unknown attribute bits %#x for \"%s\"", st->have, in);
	FUZZ_CHECK((st->have & IMAP_ST_UIDNEXT) || st->uidnext == 0, "UIDNEXT set without being sent");
	FUZZ_CHECK((st->have & IMAP_ST_MESSAGES) || st->messages == 0, "MESSAGES set without being sent");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the first line is the response, what follows its LF the continuation */
	char *s = fuzz_cstr(data, size);
	char *nl = memchr(s, '\n', size);
	size_t len = nl ? (size_t)(nl - s) + 1 : size;
	struct imap_status_resp st;
	size_t lit = 7;
	int r;

	/* exact-size heap copies: ASan catches any read past them */
	char *line = malloc(len ? len : 1);
	memcpy(line, s, len);
	r = imap_status_parse(line, len, &st, &lit);
	check_parsed(r, &st, s);
	if (r == IMAP_STATUS_LITERAL && nl != NULL) {
		size_t rlen = size - len;
		char *rest = malloc(rlen ? rlen : 1);
		memcpy(rest, s + len, rlen);
		r = imap_status_parse_rest(rest, rlen, lit, &st);
		FUZZ_CHECK(r != IMAP_STATUS_LITERAL, "a literal after a literal");
		check_parsed(r, &st, s);
		if (r == IMAP_STATUS_PARSED)
			FUZZ_CHECK(strlen(st.mailbox) == lit, "name of %zu bytes from a literal of %zu",
			           strlen(st.mailbox), lit);
		free(rest);
	}
	r = imap_status_parse(line, len, &st, NULL);
	FUZZ_CHECK(r != IMAP_STATUS_LITERAL, "a literal without a way to read it");
	check_parsed(r, &st, s);
	free(line);
	free(s);
	return 0;
}
