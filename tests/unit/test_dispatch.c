/*
 * test_dispatch.c - handing a round's seeds to worker threads
 * (scheduler/dispatch.h): a host's window of seeds arming at once, hosts
 * served in turn, seeds in configuration order within a host, seeds that
 * take turns (SPEC imap_limits) all handed out at once, threads wanted
 * only when seeds may start and none is free, and a stop or the deadline
 * opening every window.
 */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "scheduler/dispatch.h"

#define FAR (now_mono() + 3600.0)   /* a deadline that does not pass */

struct fx {
	struct config cfg;
	struct seed_conf seeds[16];
};

/* n seeds: hosts[i] "a" or "b" (port 993), users[i] (NULL: "u<i>") */
static void setup(struct fx *f, size_t n, const char *const *hosts, const char *const *users,
                  long per_host, long per_account)
{
	memset(f, 0, sizeof *f);
	for (size_t i = 0; i < n; i++) {
		char u[16];
		snprintf(u, sizeof u, "u%zu", i);
		f->seeds[i].imap.host = hosts[i] ? xstrdup(hosts[i]) : NULL;
		f->seeds[i].imap.port = 993;
		f->seeds[i].imap.username = xstrdup(users && users[i] ? users[i] : u);
	}
	f->cfg.seeds = f->seeds;
	f->cfg.nseeds = n;
	f->cfg.limits.per_host = per_host;
	f->cfg.limits.per_account = per_account;
}

static void teardown(struct fx *f)
{
	for (size_t i = 0; i < f->cfg.nseeds; i++) {
		free(f->seeds[i].imap.host);
		free(f->seeds[i].imap.username);
	}
}

/* dispatch_take() that must not wait: a seed is startable */
static size_t take(struct dispatch *d, int *spawn)
{
	size_t idx = 999;
	int sp = 0;

	assert_int_equal(dispatch_take(d, 1, FAR, &idx, &sp), 1);   /* as the thread wanted */
	if (spawn)
		*spawn = sp;
	return idx;
}

/* Window 2 on one host: two seeds in configuration order, then the third
 * only once one of them is armed. */
static void test_window(void **state)
{
	static const char *const hosts[] = { "a", "a", "a", "a" };
	struct fx f;
	struct dispatch *d;
	size_t idx;
	int spawn;

	(void)state;
	setup(&f, 4, hosts, NULL, 64, 2);
	d = dispatch_new(&f.cfg, 2);
	assert_int_equal(dispatch_host_seeds(d, 0), 4);
	assert_int_equal(dispatch_turns(d, 0), 0);
	dispatch_reserve(d);
	assert_int_equal(dispatch_take(d, 1, FAR, &idx, &spawn), 1);
	assert_int_equal(idx, 0);
	assert_int_equal(spawn, 1);      /* seed 1 may start, no thread free */
	assert_int_equal(dispatch_take(d, 1, FAR, &idx, &spawn), 1);
	assert_int_equal(idx, 1);
	assert_int_equal(spawn, 0);      /* the window is full */
	/* a thread back from its seed waits: the window is full, and the
	 * deadline is passed at once: then every seed may start */
	assert_int_equal(dispatch_take(d, 0, now_mono() + 0.05, &idx, &spawn), 1);
	assert_int_equal(idx, 2);
	assert_int_equal(spawn, 1);      /* past it, seed 3 may start too */
	assert_int_equal(dispatch_take(d, 1, now_mono() - 1.0, &idx, &spawn), 1);
	assert_int_equal(idx, 3);
	assert_int_equal(spawn, 0);
	assert_int_equal(dispatch_take(d, 0, FAR, &idx, &spawn), 0);   /* none left */
	dispatch_free(d);

	/* again, before the deadline: seeds 0 and 1 armed, then seed 2 may
	 * start; no thread is free, one is wanted */
	d = dispatch_new(&f.cfg, 2);
	dispatch_reserve(d);
	assert_int_equal(dispatch_take(d, 1, FAR, &idx, &spawn), 1);
	assert_int_equal(spawn, 1);
	assert_int_equal(dispatch_take(d, 1, FAR, &idx, &spawn), 1);
	assert_int_equal(spawn, 0);
	assert_int_equal(dispatch_release(d, 0), 1);
	assert_int_equal(take(d, &spawn), 2);
	assert_int_equal(spawn, 0);
	assert_int_equal(dispatch_release(d, 0), 0);   /* again: no effect */
	assert_int_equal(dispatch_release(d, 1), 1);
	assert_int_equal(take(d, &spawn), 3);
	/* none left: a thread asking ends */
	assert_int_equal(dispatch_take(d, 0, FAR, &idx, &spawn), 0);
	dispatch_free(d);
	teardown(&f);
}

/* Two hosts take turns, each in configuration order: a's full window
 * does not hold b back. */
static void test_hosts_in_turn(void **state)
{
	static const char *const hosts[] = { "a", "a", "a", "b", "b" };
	struct fx f;
	struct dispatch *d;
	size_t got[5];

	(void)state;
	setup(&f, 5, hosts, NULL, 64, 2);
	d = dispatch_new(&f.cfg, 2);
	assert_int_equal(dispatch_host_seeds(d, 0), 3);
	assert_int_equal(dispatch_host_seeds(d, 4), 2);
	for (size_t i = 0; i < 4; i++)
		got[i] = take(d, NULL);
	/* a, b alternating, each host's seeds in order */
	assert_int_equal(got[0], 0);
	assert_int_equal(got[1], 3);
	assert_int_equal(got[2], 1);
	assert_int_equal(got[3], 4);
	/* a's window is full: seed 2 waits for an arming to end */
	dispatch_release(d, 3);            /* b's: frees b's window, not a's */
	{
		size_t idx;
		int spawn;
		assert_int_equal(dispatch_take(d, 0, now_mono() + 0.05, &idx, &spawn), 1);
		assert_int_equal(idx, 2);    /* only at the deadline */
	}
	dispatch_free(d);
	teardown(&f);
}

/* Seeds that take turns are all handed out at once: more seeds on the
 * host than per_host, or on one account than per_account. */
static void test_turns_open(void **state)
{
	static const char *const hosts[] = { "a", "a", "a", "b", "b", "b" };
	static const char *const users[] = { "x", "y", "z", "s", "s", "s" };
	struct fx f;
	struct dispatch *d;

	(void)state;
	setup(&f, 6, hosts, users, 2, 2);   /* a: 3 > per_host 2; b: account s 3 > 2 */
	d = dispatch_new(&f.cfg, 1);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(dispatch_turns(d, i), 1);
	for (size_t i = 0; i < 6; i++)
		(void)take(d, NULL);   /* window 1, yet none waits */
	dispatch_free(d);
	teardown(&f);

	setup(&f, 6, hosts, users, 3, 3);   /* at the limits: no turns */
	d = dispatch_new(&f.cfg, 1);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(dispatch_turns(d, i), 0);
	dispatch_free(d);
	teardown(&f);
}

/* A seed whose host is unset shares it with none. */
static void test_unset_host(void **state)
{
	static const char *const hosts[] = { NULL, NULL };
	struct fx f;
	struct dispatch *d;

	(void)state;
	setup(&f, 2, hosts, NULL, 1, 1);
	d = dispatch_new(&f.cfg, 1);
	assert_int_equal(dispatch_host_seeds(d, 0), 0);
	assert_int_equal(dispatch_turns(d, 1), 0);
	dispatch_free(d);
	teardown(&f);
}

struct waiter {
	struct dispatch *d;
	int ret;
	size_t idx;
};

static void *wait_take(void *arg)
{
	struct waiter *w = arg;
	int spawn;

	w->ret = dispatch_take(w->d, 0, now_mono() + 30.0, &w->idx, &spawn);
	return NULL;
}

/* A thread waiting for a full window is woken by dispatch_release() (it
 * takes the seed) and by dispatch_stop(); and once the last seed is taken,
 * the threads still waiting end. */
static void test_wakeups(void **state)
{
	static const char *const hosts[] = { "a", "a", "a" };
	struct fx f;
	struct dispatch *d;
	struct waiter w1, w2;
	pthread_t t1, t2;

	(void)state;
	setup(&f, 3, hosts, NULL, 64, 2);
	d = dispatch_new(&f.cfg, 1);
	assert_int_equal(take(d, NULL), 0);
	w1 = (struct waiter){ .d = d };
	w2 = (struct waiter){ .d = d };
	assert_int_equal(pthread_create(&t1, NULL, wait_take, &w1), 0);
	assert_int_equal(pthread_create(&t2, NULL, wait_take, &w2), 0);
	sleep_seconds(0.1);
	/* one arming over: one waiter takes seed 1; a thread is free, so
	 * none is wanted */
	assert_int_equal(dispatch_release(d, 0), 0);
	sleep_seconds(0.1);
	dispatch_stop(d);   /* the other takes seed 2, the last */
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(w1.ret, 1);
	assert_int_equal(w2.ret, 1);
	assert_true((w1.idx == 1 && w2.idx == 2) || (w1.idx == 2 && w2.idx == 1));
	dispatch_free(d);
	teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_hosts_in_turn),
		cmocka_unit_test(test_turns_open),
		cmocka_unit_test(test_unset_host),
		cmocka_unit_test(test_wakeups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
