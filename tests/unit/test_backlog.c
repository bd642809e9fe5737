/*
 * test_backlog.c - the daemon's backlog of rounds the state store missed
 * (scheduler/cycle.c, issue 12): bounded by rounds (CYCLE_BACKLOG_MAX) and
 * by probes (CYCLE_BACKLOG_PROBES_MAX: each probe's result is about 14 KiB,
 * so 16 rounds of 1,000 seeds held 231 MiB while the store was full); the
 * oldest rounds go first, the newest round is always kept.
 */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "scheduler/cycle.h"

struct fixture {
	struct config cfg;
	struct round_result rr;
};

/* A configuration of n seeds and a round of it whose probes all have a token. */
static struct fixture *make(size_t n)
{
	struct fixture *f = calloc(1, sizeof *f);

	f->cfg.name = "backlog";
	f->cfg.nseeds = n;
	f->cfg.seeds = calloc(n, sizeof *f->cfg.seeds);
	f->rr.results = calloc(n, sizeof *f->rr.results);
	for (size_t i = 0; i < n; i++) {
		f->cfg.seeds[i].address = "s@example.test";
		f->cfg.seeds[i].provider = "p";
		snprintf(f->rr.results[i].token, sizeof f->rr.results[i].token, "%032zx", i);
		f->rr.results[i].outcome = OUTCOME_MISSING;
	}
	f->rr.started = 1700000000;
	f->rr.ended = 1700000010;
	return f;
}

static void unmake(struct fixture *f)
{
	free(f->cfg.seeds);
	free(f->rr.results);
	free(f);
}

static void test_bounded_by_rounds(void **state)
{
	(void)state;
	struct cycle_backlog *b = cycle_backlog_new();
	struct fixture *f = make(10);

	for (int i = 0; i < 40; i++)
		cycle_backlog_push(b, &f->cfg, &f->rr);
	assert_int_equal(cycle_backlog_len(b), CYCLE_BACKLOG_MAX);
	assert_int_equal(cycle_backlog_probes(b), CYCLE_BACKLOG_MAX * 10);
	cycle_backlog_free(b);
	unmake(f);
}

static void test_bounded_by_probes(void **state)
{
	(void)state;
	struct cycle_backlog *b = cycle_backlog_new();
	struct fixture *f = make(1000), *big = make(CYCLE_BACKLOG_PROBES_MAX + 1), *small = make(10);

	/* 1,000 seeds: 4 rounds fit in 4,096 probes, not 16 */
	for (int i = 0; i < CYCLE_BACKLOG_MAX; i++)
		cycle_backlog_push(b, &f->cfg, &f->rr);
	assert_int_equal(cycle_backlog_len(b), CYCLE_BACKLOG_PROBES_MAX / 1000);
	assert_true(cycle_backlog_probes(b) <= CYCLE_BACKLOG_PROBES_MAX);
	/* a round larger than the limit alone: kept (the newest always is) */
	cycle_backlog_push(b, &big->cfg, &big->rr);
	assert_int_equal(cycle_backlog_len(b), 1);
	assert_int_equal(cycle_backlog_probes(b), CYCLE_BACKLOG_PROBES_MAX + 1);
	/* and dropped for the next one */
	cycle_backlog_push(b, &small->cfg, &small->rr);
	assert_int_equal(cycle_backlog_len(b), 1);
	assert_int_equal(cycle_backlog_probes(b), 10);
	cycle_backlog_free(b);
	unmake(f);
	unmake(big);
	unmake(small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounded_by_rounds),
		cmocka_unit_test(test_bounded_by_probes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
