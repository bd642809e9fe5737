/*
 * test_delaywin.c - the learned announcement delay (docs/SPEC.md
 * "Latency", scheduler/delaywin.h): the smallest seen - INTERNALDATE over
 * the last DELAY_WINDOW announced probes. It falls at once, rises again
 * when the server's delay really grows, and never widens the arrival
 * interval. Lags are modelled as Dovecot 2.3 gives them: its 500 ms hold
 * (503 ms measured on the loopback world, NOTES.md) plus the arrival's
 * fraction of its second, spread over the second as probes arrive.
 */
#include <config.h>

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "scheduler/delaywin.h"
#include "scheduler/round.h"

/* The i-th probe's lag at a server holding announcements delay seconds:
 * arrivals spread over the second (37 is prime to 100). */
static double lag_of(double delay, int i)
{
	return delay + (double)((i * 37) % 100) / 100.0;
}

static void test_empty_and_invalid(void **state)
{
	struct delay_window w;

	(void)state;
	delaywin_init(&w);
	assert_true(delaywin_min(&w) < 0);
	assert_int_equal(delaywin_add(&w, NAN), -1);
	assert_int_equal(delaywin_add(&w, -0.001), -1);
	assert_int_equal(delaywin_add(&w, DELAY_LAG_MAX + 1), -1);
	assert_int_equal(w.n, 0);
	assert_int_equal(delaywin_add(&w, 0.0), 0);
	assert_true(delaywin_min(&w) == 0.0);
}

/* A smaller lag lowers the delay at once. */
static void test_falls_at_once(void **state)
{
	struct delay_window w;

	(void)state;
	delaywin_init(&w);
	delaywin_add(&w, 0.912);
	delaywin_add(&w, 0.804);
	assert_true(fabs(delaywin_min(&w) - 0.804) < 1e-12);
	delaywin_add(&w, 0.506);
	assert_true(fabs(delaywin_min(&w) - 0.506) < 1e-12);
}

/* The server's delay grows from 0.503 s to 2.0 s: the learned delay stays
 * at the old minimum while any of the old lags is in the window, then
 * rises to the new delay (within the spread of the new lags). */
static void test_rises_when_the_server_slows(void **state)
{
	struct delay_window w;
	int i;

	(void)state;
	delaywin_init(&w);
	for (i = 0; i < 3 * DELAY_WINDOW; i++)
		delaywin_add(&w, lag_of(0.503, i));
	assert_true(fabs(delaywin_min(&w) - 0.503) < 1e-9);   /* a lag at fraction .00 is held */
	for (i = 0; i < DELAY_WINDOW - 1; i++) {
		delaywin_add(&w, lag_of(2.0, i + 50));
		/* an old lag is still held: no rise yet */
		assert_true(delaywin_min(&w) < 1.6);
	}
	delaywin_add(&w, lag_of(2.0, i + 50));
	assert_true(delaywin_min(&w) >= 2.0);
	assert_true(delaywin_min(&w) < 2.0 + 0.011);
	/* and back down at once when the server recovers */
	delaywin_add(&w, lag_of(0.503, 0));
	assert_true(fabs(delaywin_min(&w) - 0.503) < 1e-9);
}

/* Whatever the learned delay, the arrival stays inside
 * [INTERNALDATE, min(INTERNALDATE + 1 s, seen)] and the error bound is
 * half that interval: a delay that rose never widens it. */
static void test_never_widens_the_interval(void **state)
{
	static const double delays[] = { 0.0, 0.503, 2.0, 3599.0 };
	struct probe_result r;

	(void)state;
	for (size_t k = 0; k < sizeof delays / sizeof delays[0]; k++) {
		/* INTERNALDATE 1000, announced 2.3 s later (a slow server) */
		memset(&r, 0, sizeof r);
		r.announced = 1;
		round_set_latency(&r, 990, 995, 1000, 1002.3, delays[k]);
		assert_true(r.arrival >= 1000 && r.arrival <= 1001);
		assert_true(fabs(r.latency_error_bound - 0.5) < 1e-9);
		/* announced 0.4 s after INTERNALDATE: the interval is [1000, 1000.4] */
		memset(&r, 0, sizeof r);
		r.announced = 1;
		round_set_latency(&r, 990, 995, 1000, 1000.4, delays[k]);
		assert_true(r.arrival >= 1000 && r.arrival <= 1000.4 + 1e-9);
		assert_true(fabs(r.latency_error_bound - 0.2) < 1e-9);
	}
	/* the risen delay puts a slow server's arrival where it belongs:
	 * announced 2.3 s after INTERNALDATE 1000 with a delay of 2.0 s, it
	 * arrived at 1000.3 (a stale 0.503 would clamp it to 1001) */
	memset(&r, 0, sizeof r);
	r.announced = 1;
	round_set_latency(&r, 990, 995, 1000, 1002.3, 2.0);
	assert_true(fabs(r.arrival - 1000.3) < 1e-9);
	memset(&r, 0, sizeof r);
	r.announced = 1;
	round_set_latency(&r, 990, 995, 1000, 1002.3, 0.503);
	assert_true(fabs(r.arrival - 1001.0) < 1e-9);
}

/* The state store's text: whole microseconds, oldest first. */
static void test_format_parse(void **state)
{
	struct delay_window w, back;
	char buf[DELAY_WINDOW_TEXT_MAX], small[24];
	int i;

	(void)state;
	delaywin_init(&w);
	delaywin_add(&w, 0.503112);
	delaywin_add(&w, 1.5179044);   /* rounds to the microsecond */
	delaywin_add(&w, 3600.0);
	assert_int_equal(delaywin_format(&w, buf, sizeof buf), strlen("503112 1517904 3600000000"));
	assert_string_equal(buf, "503112 1517904 3600000000");
	assert_int_equal(delaywin_parse(&back, buf), 3);
	assert_true(fabs(delaywin_min(&back) - 0.503112) < 1e-12);
	assert_int_equal(delaywin_parse(&back, ""), 0);
	assert_int_equal(back.n, 0);
	/* a full window: the longest text fits, and comes back in order */
	delaywin_init(&w);
	for (i = 0; i < DELAY_WINDOW + 10; i++)
		delaywin_add(&w, DELAY_LAG_MAX - i);
	assert_true(delaywin_format(&w, buf, sizeof buf) < sizeof buf);
	assert_int_equal(delaywin_parse(&back, buf), DELAY_WINDOW);
	for (i = 0; i < DELAY_WINDOW; i++)   /* w is full: its oldest is at next */
		assert_true(back.lag[i] == w.lag[(w.next + (size_t)i) % DELAY_WINDOW]);
	/* a short buffer keeps the newest samples */
	delaywin_init(&w);
	for (i = 1; i <= 5; i++)
		delaywin_add(&w, i);
	delaywin_format(&w, small, sizeof small);
	assert_string_equal(small, "4000000 5000000");
}

/* A damaged row: refused whole, the window left empty. */
static void test_parse_garbage(void **state)
{
	static const char *const bad[] = {
		"abc", "503112 x", "503112  1", "503112 ", " 503112", "-503112", "5.03",
		"12345678901", "3600000001", "1,5",
	};
	struct delay_window w;
	char many[(DELAY_WINDOW + 5) * 2 + 1] = "";

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(delaywin_parse(&w, bad[i]), -1);
		assert_int_equal(w.n, 0);
	}
	/* more samples than the window: the newest are kept */
	for (int i = 0; i < DELAY_WINDOW + 5; i++)
		strcat(many, i ? " 7" : "1");
	assert_int_equal(delaywin_parse(&w, many), DELAY_WINDOW + 5);
	assert_int_equal(w.n, DELAY_WINDOW);
	assert_true(fabs(delaywin_min(&w) - 7e-6) < 1e-12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_and_invalid),
		cmocka_unit_test(test_falls_at_once),
		cmocka_unit_test(test_rises_when_the_server_slows),
		cmocka_unit_test(test_never_widens_the_interval),
		cmocka_unit_test(test_format_parse),
		cmocka_unit_test(test_parse_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
