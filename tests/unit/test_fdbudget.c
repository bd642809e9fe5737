/*
 * test_fdbudget.c - the file descriptors a round needs (scheduler/fdbudget.c)
 * against the rules of scheduler/watch.c: two IMAP sessions per seed when
 * imap_limits.per_account >= 2 and per_host leaves every seed of the host
 * two, else one per seed, at most per_host; the bounce mailbox's own
 * session; five per relay connection; and RLIMIT_NOFILE raised to the
 * hard limit, or the round refused with the figures.
 */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "scheduler/fdbudget.h"
#include "seeds/config.h"

/* A configuration of na seeds on host a.test:993 and nb on b.test:143. */
static void make(struct config *c, struct seed_conf *seeds, size_t na, size_t nb, long per_host,
                 long per_account)
{
	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < na + nb; i++) {
		memset(&seeds[i], 0, sizeof seeds[i]);
		seeds[i].imap.host = i < na ? "a.test" : "b.test";
		seeds[i].imap.port = i < na ? 993 : 143;
	}
	c->file = "budget.conf";
	c->seeds = seeds;
	c->nseeds = na + nb;
	c->limits.per_host = per_host;
	c->limits.per_account = per_account;
	c->relay.connections = 4;
}

static void test_sessions_per_host(void **state)
{
	(void)state;
	struct seed_conf seeds[13];
	struct config c;
	struct fd_budget b;

	/* per_host 64: both hosts give every seed two sessions */
	make(&c, seeds, 10, 3, 64, 2);
	fd_budget_compute(&c, 0, &b);
	assert_int_equal(b.imap, 26);
	assert_int_equal(b.smtp, 20);
	assert_int_equal(b.files, 3);        /* lock, report and its directory */
	assert_true(b.open_now >= 3);        /* stdin, stdout, stderr at least */
	assert_int_equal(b.need, b.imap + b.smtp + b.files + b.open_now + b.reserve);

	/* per_host 12: a.test's 10 seeds cannot all have two: one each;
	 * b.test's 3 still get two each; plus the bounce mailbox's session */
	make(&c, seeds, 10, 3, 12, 2);
	c.has_bounce = 1;
	fd_budget_compute(&c, 0, &b);
	assert_int_equal(b.imap, 10 + 6 + 1);

	/* per_host 4: a.test's seeds take turns in 4 sessions, b.test's in 3 */
	make(&c, seeds, 10, 3, 4, 2);
	fd_budget_compute(&c, 0, &b);
	assert_int_equal(b.imap, 4 + 3);

	/* per_account 1: one session per seed */
	make(&c, seeds, 10, 3, 64, 1);
	fd_budget_compute(&c, 0, &b);
	assert_int_equal(b.imap, 13);
}

static void test_store_and_daemon(void **state)
{
	(void)state;
	struct seed_conf seeds[2];
	struct config c;
	struct fd_budget run, daemon;

	make(&c, seeds, 2, 0, 64, 2);
	c.state.path = "/var/lib/inboxprobe/state.db";
	fd_budget_compute(&c, 0, &run);
	assert_int_equal(run.files, 3 + 4);  /* + database, -wal, -shm, journal */
	fd_budget_compute(&c, 1, &daemon);
	assert_true(daemon.files > run.files);   /* the listener and its clients */
	assert_true(daemon.need > run.need);
}

static void test_limit(void **state)
{
	(void)state;
	struct seed_conf seeds[200];
	struct config c;
	struct fd_budget b;
	struct rlimit rl;
	char *err = NULL;

	/* 200 seeds, two sessions each: over 400 descriptors */
	make(&c, seeds, 200, 0, 1000, 2);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 1024)
		skip();   /* a hard limit too low to check the raise */
	/* a low soft limit is raised to the hard one, and the round fits */
	rl.rlim_cur = 64;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(fd_budget_ensure(&c, 0, &b, &err), 0);
	assert_null(err);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(rl.rlim_cur == rl.rlim_max);
	assert_true(b.need > 400);

	/* a hard limit below the need: refused, with the figures */
	rl.rlim_cur = rl.rlim_max = 100;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(fd_budget_ensure(&c, 0, &b, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "budget.conf: a round of 200 seeds needs "));
	assert_non_null(strstr(err, " file descriptors, limit 100 (hard limit 100): 400 IMAP sessions"));
	assert_non_null(strstr(err, "ulimit -n"));
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sessions_per_host),
		cmocka_unit_test(test_store_and_daemon),
		cmocka_unit_test(test_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
