/*
 * fuzz_mutf7.c - folder names as listed by IMAP servers, modified UTF-7
 * (RFC 3501 §5.1.3): mutf7_decode and mutf7_encode. Invariants:
 *   - a decoded name is valid UTF-8 without control characters, and
 *     encoding it then decoding again gives it back;
 *   - valid UTF-8 always encodes, to printable US-ASCII, and decodes back
 *     (unless it holds a control character, which decode refuses).
 */
#include <config.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "seeds/folders.h"
#include "tests/fuzz/fuzz.h"

static int has_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return 1;
		/* C1 controls U+0080..U+009F: C2 80..C2 9F */
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			return 1;
	}
	return 0;
}

static void check_encoded(const char *utf8, const char *enc)
{
	for (const unsigned char *p = (const unsigned char *)enc; *p; p++)
		FUZZ_CHECK(*p >= 0x20 && *p < 0x7f, "encoded byte 0x%02x", *p);
	char *back = mutf7_decode(enc);
	if (!has_control(utf8)) {
		FUZZ_CHECK(back != NULL, "\"%s\" does not decode", enc);
		FUZZ_CHECK(strcmp(back, utf8) == 0, "round trip changed the name");
	}
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	char *dec = mutf7_decode(s);

	if (dec != NULL) {
		FUZZ_CHECK(utf8_valid(dec, strlen(dec)), "decoded name is not UTF-8");
		FUZZ_CHECK(!has_control(dec), "decoded name holds a control character");
		char *enc = mutf7_encode(dec);
		FUZZ_CHECK(enc != NULL, "decoded name does not encode");
		check_encoded(dec, enc);
		free(enc);
		free(dec);
	}
	if (utf8_valid(s, strlen(s))) {
		char *enc = mutf7_encode(s);
		FUZZ_CHECK(enc != NULL, "valid UTF-8 does not encode");
		check_encoded(s, enc);
		free(enc);
	}
	free(s);
	return 0;
}
