/*
 * fuzz_smtp_reply.c - SMTP replies as the relay sends them (RFC 5321
 * §4.2, RFC 3463 enhanced status codes): smtp_parse_reply,
 * smtp_parse_enhanced and smtp_diagnostic. Checks the documented
 * guarantees: a parsed reply has a code in 200-559, NUL-terminated
 * fields within their caps, no control character in the joined text; a
 * refused one has code 0.
 */
#include <config.h>
#include <stdlib.h>
#include <string.h>

#include "prober/smtp.h"
#include "tests/fuzz/fuzz.h"

static void check_field(const char *what, const char *s, size_t cap)
{
	FUZZ_CHECK(memchr(s, '\0', cap) != NULL, "%s not NUL-terminated within %zu", what, cap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r;
	char enh[ENHANCED_MAX];
	char *s;

	memset(&r, 0x5a, sizeof(r));
	if (smtp_parse_reply((const char *)data, size, &r) == 0) {
		FUZZ_CHECK(r.code >= 200 && r.code <= 559, "code %d accepted", r.code);
		check_field("enhanced", r.enhanced, sizeof(r.enhanced));
		check_field("text", r.text, sizeof(r.text));
		check_field("queue_id", r.queue_id, sizeof(r.queue_id));
		for (const unsigned char *p = (const unsigned char *)r.text; *p; p++)
			FUZZ_CHECK(*p >= 0x20 && *p != 0x7f, "control byte 0x%02x in the text", *p);
		if (r.enhanced[0] != '\0')
			FUZZ_CHECK(r.enhanced[0] - '0' == r.code / 100,
			           "enhanced %s does not match code %d", r.enhanced, r.code);
		FUZZ_CHECK(smtp_diagnostic(r.code, r.enhanced) != NULL, "no diagnostic");
	} else {
		FUZZ_CHECK(r.code == 0, "refused reply left code %d", r.code);
	}

	s = fuzz_cstr(data, size);
	size_t n = smtp_parse_enhanced(s, enh);
	if (n > 0) {
		FUZZ_CHECK(n <= strlen(s), "consumed %zu of %zu", n, strlen(s));
		check_field("parsed enhanced", enh, sizeof(enh));
		FUZZ_CHECK(enh[0] == '2' || enh[0] == '4' || enh[0] == '5', "class %c", enh[0]);
		FUZZ_CHECK(smtp_diagnostic(0, enh) != NULL, "no diagnostic");
	}
	free(s);
	return 0;
}
