/*
 * fuzz_internaldate.c - IMAP INTERNALDATE strings (RFC 3501 date-time)
 * as servers send them: imap_parse_internaldate. A parsed date is a
 * finite number of seconds within the years RFC 3501 can write
 * (4-digit year, zone at most +-99:59).
 */
#include <config.h>
#include <math.h>
#include <stdlib.h>

#include "prober/imap.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	double t = 12345.0;

	if (imap_parse_internaldate(s, &t) == 0) {
		FUZZ_CHECK(isfinite(t), "non-finite time for \"%s\"", s);
		/* 0000-01-01 .. 9999-12-31 plus a day of zone either side. */
		FUZZ_CHECK(t > -62167219200.0 - 86400.0 && t < 253402300800.0 + 86400.0,
		           "time %.0f out of range for \"%s\"", t, s);
	}
	free(s);
	return 0;
}
