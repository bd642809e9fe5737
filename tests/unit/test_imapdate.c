/*
 * test_imapdate.c - IMAP INTERNALDATE (RFC 3501 date-time) to Unix time,
 * zone applied, independent of the host's TZ. Expected values were
 * computed independently (Python datetime.strptime(..., "%d-%b-%Y
 * %H:%M:%S %z").timestamp()).
 */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "prober/imap.h"

struct dcase {
	const char *in;
	double unix_time;
};

static const struct dcase good[] = {
	{ "17-Jul-1996 02:44:25 -0700", 837596665 },   /* RFC 3501 example */
	{ "01-Jan-1970 00:00:00 +0000", 0 },
	{ "29-Feb-2024 23:59:59 +0000", 1709251199 },   /* leap day */
	{ "31-Dec-1999 23:30:00 -1200", 946726200 },    /* year boundary, westmost zone */
	{ "01-Jan-2000 05:00:00 +0530", 946683000 },    /* India: back into 1999 */
	{ "01-Jan-2025 00:30:00 +1400", 1735641000 },   /* Kiribati: previous year in UTC */
	{ "14-Mar-2025 09:26:53 +0100", 1741940813 },
	{ " 5-Nov-2023 01:30:00 -0400", 1699162200 },   /* space-padded day (date-day-fixed) */
	{ "5-Nov-2023 01:30:00 -0400", 1699162200 },    /* single digit day */
	{ "05-nov-2023 01:30:00 -0400", 1699162200 },   /* month case-insensitive */
	{ "31-Dec-2016 23:59:60 +0000", 1483228800 },   /* leap second folds into the next */
	{ "01-Mar-2100 00:00:00 +0000", 4107542400 },   /* 2100 is not a leap year */
	{ "29-Feb-2000 12:00:00 +0000", 951825600 },    /* 2000 is */
};

static const char *const bad[] = {
	"",
	"garbage",
	"17-Jul-1996 02:44:25",           /* no zone */
	"17-Jul-1996 02:44:25 0700",      /* zone without sign */
	"17-Jul-1996 02:44:25 -07",       /* short zone */
	"17-Jly-1996 02:44:25 -0700",     /* bad month */
	"32-Jul-1996 02:44:25 -0700",     /* day out of range */
	"29-Feb-2023 00:00:00 +0000",     /* not a leap year */
	"17-Jul-96 02:44:25 -0700",       /* two-digit year */
	"17-Jul-1996 24:00:00 -0700",     /* hour out of range */
	"17-Jul-1996 02:60:00 -0700",     /* minute out of range */
	"17-Jul-1996 02:44:25 -0760",     /* zone minutes out of range */
	"17-Jul-1996 02:44:25 -0700x",    /* trailing junk */
	"\"17-Jul-1996 02:44:25 -0700\"", /* still quoted */
	"17-Jul-1996T02:44:25 -0700",
	"00-Jul-1996 02:44:25 -0700",
};

static void check_all(void)
{
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		double t = -1;
		if (imap_parse_internaldate(good[i].in, &t) != 0)
			fail_msg("rejected valid date '%s'", good[i].in);
		if (t != good[i].unix_time)
			fail_msg("'%s': got %.0f, want %.0f", good[i].in, t, good[i].unix_time);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		double t = 0;
		if (imap_parse_internaldate(bad[i], &t) == 0)
			fail_msg("accepted malformed date '%s' as %.0f", bad[i], t);
	}
	double t;
	assert_int_equal(imap_parse_internaldate(NULL, &t), -1);
}

static void with_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
	check_all();
}

static void test_utc(void **state)
{
	(void)state;
	with_tz("UTC");
}

static void test_new_york(void **state)
{
	(void)state;
	with_tz("America/New_York");
}

static void test_kolkata(void **state)
{
	(void)state;
	with_tz("Asia/Kolkata");
}

static void test_zone_symmetry(void **state)
{
	(void)state;
	/* the same instant written in different zones */
	double a, b, c;
	assert_int_equal(imap_parse_internaldate("01-Jan-2024 12:00:00 +0000", &a), 0);
	assert_int_equal(imap_parse_internaldate("01-Jan-2024 17:30:00 +0530", &b), 0);
	assert_int_equal(imap_parse_internaldate("01-Jan-2024 05:00:00 -0700", &c), 0);
	assert_true(a == b && b == c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utc),
		cmocka_unit_test(test_new_york),
		cmocka_unit_test(test_kolkata),
		cmocka_unit_test(test_zone_symmetry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
