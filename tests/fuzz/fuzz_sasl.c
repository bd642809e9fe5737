/*
 * fuzz_sasl.c - the server's SASL challenge after a failed XOAUTH2 or
 * OAUTHBEARER (RFC 7628 §3.2.2: base64 of a JSON error object), as
 * sasl_describe_challenge turns it into a diagnostic, and sasl_unbase64.
 * Invariants: the description is NUL-terminated within its buffer, even a
 * tiny one, and holds no control character; base64 of decoded bytes
 * decodes back to them.
 */
#include <config.h>
#include <stdlib.h>
#include <string.h>

#include "prober/sasl.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	char out[256], tiny[8];
	size_t n = 0;
	unsigned char *raw;

	memset(out, 'x', sizeof(out));
	sasl_describe_challenge(s, out, sizeof(out));
	FUZZ_CHECK(memchr(out, '\0', sizeof(out)) != NULL, "description not NUL-terminated");
	for (const unsigned char *p = (const unsigned char *)out; *p; p++)
		FUZZ_CHECK(*p >= 0x20 && *p != 0x7f, "control byte 0x%02x in the description", *p);
	memset(tiny, 'x', sizeof(tiny));
	sasl_describe_challenge(s, tiny, sizeof(tiny));
	FUZZ_CHECK(memchr(tiny, '\0', sizeof(tiny)) != NULL, "small buffer overrun");

	raw = sasl_unbase64(s, &n);
	if (raw != NULL) {
		char *b = sasl_base64(raw, n);
		size_t m = 0;
		unsigned char *back = sasl_unbase64(b, &m);

		FUZZ_CHECK(back != NULL && m == n && memcmp(back, raw, n) == 0,
		           "base64 round trip changed %zu bytes", n);
		free(back);
		free(b);
		free(raw);
	}
	free(s);
	return 0;
}
