/*
 * test_state.c - the SQLite state store and the run lock (scheduler/state.h).
 * Every test works in its own mkdtemp(3) directory.
 */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/model.h"
#include "common/util.h"
#include "scheduler/runlock.h"
#include "scheduler/state.h"

#define CFG "otp"
#define T0 1700000000.0     /* a fixed "now" base, Unix seconds */

struct fixture {
	char dir[64];
	char *db;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_state.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->db = xasprintf("%s/state.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	const char *suffix[] = { "", "-wal", "-shm", "-journal" };
	char *p;

	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		p = xasprintf("%s%s", f->db, suffix[i]);
		unlink(p);
		free(p);
	}
	p = xasprintf("%s/lock", f->dir);
	unlink(p);
	free(p);
	p = xasprintf("%s/bad.db", f->dir);
	unlink(p);
	free(p);
	{
		/* the run lock tests' files */
		const char *files[] = { "emptylock", "victim", "symlock", "fifolock", "hardlock",
		                        "syslink" };
		const char *dirs[] = { "worldw", "sys" };
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			p = xasprintf("%s/%s", f->dir, files[i]);
			unlink(p);
			free(p);
		}
		for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
			p = xasprintf("%s/%s", f->dir, dirs[i]);
			rmdir(p);
			free(p);
		}
	}
	rmdir(f->dir);
	free(f->db);
	free(f);
	return 0;
}

static struct state *open_ok(const char *path)
{
	struct state *st = NULL;
	char *err = NULL;
	int rc = state_open(path, &st, &err);

	if (rc != 0)
		fprintf(stderr, "state_open: %s\n", err);
	assert_int_equal(rc, 0);
	assert_non_null(st);
	assert_null(err);
	return st;
}

/* A result; latency < 0 means "not found / no latency". */
static void mkresult(struct probe_result *r, const char *token, enum outcome o, double submit,
                     double latency, int usable)
{
	memset(r, 0, sizeof(*r));
	xstrlcpy(r->token, token, sizeof(r->token));
	r->outcome = o;
	r->submit_time = submit;
	r->attempts = 1;
	if (submit > 0) {
		r->reply.code = 250;
		xstrlcpy(r->reply.enhanced, "2.0.0", sizeof(r->reply.enhanced));
		xstrlcpy(r->reply.text, "Ok: queued as 4XyZ1", sizeof(r->reply.text));
		xstrlcpy(r->reply.queue_id, "4XyZ1", sizeof(r->reply.queue_id));
	} else if (o == OUTCOME_REJECTED) {
		r->reply.code = 550;
		xstrlcpy(r->reply.enhanced, "5.7.1", sizeof(r->reply.enhanced));
		xstrlcpy(r->reply.text, "Relay access denied", sizeof(r->reply.text));
	}
	if (o == OUTCOME_INBOX || o == OUTCOME_SPAM) {
		xstrlcpy(r->folder, o == OUTCOME_INBOX ? "INBOX" : "Junk", sizeof(r->folder));
		r->latency = latency;
		r->internaldate = submit + latency;
		r->found_time = r->internaldate + 1;
		r->have_latency = usable;
	}
}

static void record(struct state *st, double started, const struct probe_result *r,
                   const char *const *seeds, const char *const *provs, size_t n)
{
	char *err = NULL;
	int rc = state_record_round(st, CFG, started, started + 60, r, seeds, provs, n, &err);

	if (rc != 0)
		fprintf(stderr, "record_round: %s\n", err);
	assert_int_equal(rc, 0);
	assert_null(err);
}

static struct state_totals *totals(struct state *st, const char *const *provs, size_t n,
                                   double now, long window)
{
	struct state_totals *t = NULL;
	char *err = NULL;
	int rc = state_totals(st, CFG, provs, n, now, window, &t, &err);

	if (rc != 0)
		fprintf(stderr, "state_totals: %s\n", err);
	assert_int_equal(rc, 0);
	assert_non_null(t);
	return t;
}

static long long sql_count(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	long long v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

/* ---- reference model ---------------------------------------------------- */

#define NPROV 2
static const char *const provs[NPROV] = { "gmail", "outlook" };

struct ref {
	unsigned long long probes[NPROV][OUTCOME__COUNT];
	double lat[NPROV][4096];
	size_t nlat[NPROV];
};

static unsigned int lcg(unsigned int *s)
{
	*s = *s * 1103515245u + 12345u;
	return (*s >> 16) & 0x7fff;
}

/* Round k: 6 probes over both providers, outcomes and latencies from a
 * fixed pseudo-random sequence. Latencies cover every bucket and +Inf,
 * bucket edges included (exactly 1, 5, 3600 s). */
static size_t make_round(unsigned int *seed, int k, const char *tag, double submit_base,
                         struct probe_result *r, const char **seeds, const char **pv,
                         struct ref *ref)
{
	static const double lat_choices[] = {
		0.0, 0.4, 1.0, 1.5, 2.0, 4.9, 5.0, 7.0, 12.0, 25.0, 30.0, 45.0, 90.0, 200.0,
		300.0, 301.0, 599.0, 1200.0, 1800.0, 3000.0, 3600.0, 3601.0, 7200.0, -1.0
	};
	const size_t nchoices = sizeof(lat_choices) / sizeof(lat_choices[0]);
	static const char *const seed_addr[6] = {
		"s1@gmail.example", "s2@gmail.example", "s3@gmail.example",
		"s1@outlook.example", "s2@outlook.example", "s3@outlook.example"
	};
	char token[TOKEN_MAX];

	for (size_t i = 0; i < 6; i++) {
		int p = i < 3 ? 0 : 1;
		enum outcome o = (enum outcome)(lcg(seed) % OUTCOME__COUNT);
		double lat = lat_choices[lcg(seed) % nchoices];
		int usable = lcg(seed) % 7 != 0;
		double submit = (o == OUTCOME_REJECTED || o == OUTCOME_ERROR) ? 0 : submit_base + i;

		snprintf(token, sizeof(token), "%s%08x%04zx", tag, (unsigned)k, i);
		mkresult(&r[i], token, o, submit, lat, usable);
		seeds[i] = seed_addr[i];
		pv[i] = provs[p];
		ref->probes[p][o]++;
		if ((o == OUTCOME_INBOX || o == OUTCOME_SPAM) && usable)
			ref->lat[p][ref->nlat[p]++] = lat;
	}
	return 6;
}

static void check_totals_against_ref(const struct state_totals *t, const struct ref *ref)
{
	for (int p = 0; p < NPROV; p++) {
		double sum = 0;

		assert_string_equal(t[p].provider, provs[p]);
		for (int o = 0; o < OUTCOME__COUNT; o++)
			assert_int_equal(t[p].probes[o], ref->probes[p][o]);
		for (int b = 0; b < STATE_NBUCKETS; b++) {
			unsigned long long want = 0;
			for (size_t i = 0; i < ref->nlat[p]; i++)
				if (ref->lat[p][i] <= state_buckets[b])
					want++;
			assert_int_equal(t[p].bucket[b], want);
			if (b > 0)
				assert_true(t[p].bucket[b] >= t[p].bucket[b - 1]);
		}
		/* a usable negative latency (skew within 2 s) counts as 0 */
		for (size_t i = 0; i < ref->nlat[p]; i++)
			sum += ref->lat[p][i] > 0 ? ref->lat[p][i] : 0;
		assert_int_equal(t[p].hist_count, ref->nlat[p]);
		assert_true(t[p].hist_count >= t[p].bucket[STATE_NBUCKETS - 1]);
		assert_float_equal(t[p].hist_sum, sum, 1e-6);
	}
}

/* ---- tests -------------------------------------------------------------- */

/* auth_results_total (issue 11): once per distinct trusted verdict of a
 * found probe; a token recorded again is not counted again; probes not
 * found count nothing; totals come back sorted by method and result. */
static void verdict(struct probe_result *r, const char *m, const char *res)
{
	xstrlcpy(r->trace.auth[r->trace.nauth].method, m, sizeof r->trace.auth[0].method);
	xstrlcpy(r->trace.auth[r->trace.nauth].result, res, sizeof r->trace.auth[0].result);
	r->trace.nauth++;
}

static void test_auth_results_total(void **state)
{
	struct fixture *f = *state;
	struct state *st = open_ok(f->db);
	struct probe_result r[3];
	const char *seeds[3] = { "a@gmail.example", "b@gmail.example", "c@outlook.example" };
	const char *pv[3] = { "gmail", "gmail", "outlook" };
	struct state_totals *t;

	memset(r, 0, sizeof r);
	for (int i = 0; i < 3; i++) {
		snprintf(r[i].token, sizeof r[i].token, "%032x", 0xa0 + i);
		r[i].submit_time = T0;
		r[i].outcome = OUTCOME_INBOX;
		r[i].internaldate = T0 + 5;
		r[i].latency = 5;
		r[i].have_latency = 1;
	}
	verdict(&r[0], "spf", "pass");
	verdict(&r[0], "dkim", "pass");
	verdict(&r[0], "dkim", "pass");   /* two passing signatures: counted once */
	verdict(&r[0], "dkim", "fail");
	verdict(&r[1], "dkim", "fail");
	r[2].outcome = OUTCOME_MISSING;   /* not found: its (impossible) verdicts do not count */
	verdict(&r[2], "spf", "pass");
	record(st, T0, r, seeds, pv, 3);
	record(st, T0 + 300, r, seeds, pv, 3);   /* the same tokens again */
	t = totals(st, provs, NPROV, T0 + 600, 3600);
	assert_int_equal(t[0].nauth, 3);
	assert_string_equal(t[0].auth[0].method, "dkim");
	assert_string_equal(t[0].auth[0].result, "fail");
	assert_int_equal(t[0].auth[0].n, 2);
	assert_string_equal(t[0].auth[1].result, "pass");
	assert_int_equal(t[0].auth[1].n, 1);
	assert_string_equal(t[0].auth[2].method, "spf");
	assert_int_equal(t[0].auth[2].n, 1);
	assert_int_equal(t[1].nauth, 0);
	state_totals_free(t, NPROV);
	state_close(st);
}

static void test_counters_histogram_prune(void **state)
{
	struct fixture *f = *state;
	struct state *st = open_ok(f->db);
	struct ref *ref = xcalloc(1, sizeof(*ref));
	struct probe_result r[6];
	const char *seeds[6], *pv[6];
	struct state_totals *t;
	unsigned int seed = 42;
	char *err = NULL;
	size_t total_probes = 0;

	for (int k = 0; k < 40; k++) {
		size_t n = make_round(&seed, k, "aa", T0 + k * 300, r, seeds, pv, ref);
		record(st, T0 + k * 300, r, seeds, pv, n);
		total_probes += n;
	}
	assert_true(ref->nlat[0] > 5 && ref->nlat[1] > 5);
	t = totals(st, provs, NPROV, T0 + 40 * 300, 86400);
	check_totals_against_ref(t, ref);
	state_totals_free(t, NPROV);
	state_close(st);

	/* The rows are there, then pruning removes all of them... */
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM probes"), (long long)total_probes);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM rounds"), 40);
	st = open_ok(f->db);
	assert_int_equal(state_prune(st, 30, T0 + 31 * 86400.0, &err), 0);
	assert_null(err);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM probes"), 0);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM rounds"), 0);

	/* ...and the totals stay as they were; the window is empty. */
	t = totals(st, provs, NPROV, T0 + 40 * 300, 86400);
	check_totals_against_ref(t, ref);
	assert_int_equal(t[0].window_samples, 0);
	assert_null(t[0].window_latencies);
	state_totals_free(t, NPROV);
	state_close(st);
	free(ref);
}

static void test_prune_keeps_recent(void **state)
{
	struct fixture *f = *state;
	struct state *st = open_ok(f->db);
	struct probe_result r[2];
	const char *seeds[2] = { "a@x.example", "a@x.example" };
	const char *pv[2] = { "gmail", "gmail" };
	char *err = NULL;
	double day = 86400;

	mkresult(&r[0], "old1", OUTCOME_INBOX, T0, 3, 1);
	mkresult(&r[1], "old2", OUTCOME_REJECTED, 0, -1, 0);     /* never accepted */
	record(st, T0, r, seeds, pv, 2);
	mkresult(&r[0], "new1", OUTCOME_SPAM, T0 + 20 * day, 3, 1);
	mkresult(&r[1], "new2", OUTCOME_ERROR, 0, -1, 0);
	record(st, T0 + 20 * day, r, seeds, pv, 2);
	/* 31 days after T0: the first round is older than 30 days, the second not. */
	assert_int_equal(state_prune(st, 30, T0 + 31 * day, &err), 0);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM probes"), 2);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM probes WHERE token LIKE 'new%'"), 2);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM rounds"), 1);
	/* retention 0: nothing is deleted. */
	assert_int_equal(state_prune(st, 0, T0 + 1000 * day, &err), 0);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM probes"), 2);
	state_close(st);
}

static void test_pending(void **state)
{
	struct fixture *f = *state;
	struct state *st = open_ok(f->db);
	struct probe_result r[7];
	const char *seeds[7], *pv[7];
	struct state_pending *p = NULL;
	size_t n = 0;
	char *err = NULL;

	for (int i = 0; i < 7; i++) {
		seeds[i] = "seed1@gmail.example";
		pv[i] = "gmail";
	}
	mkresult(&r[0], "t-inbox", OUTCOME_INBOX, T0 + 1, 4, 1);
	mkresult(&r[1], "t-spam", OUTCOME_SPAM, T0 + 2, 4, 1);
	mkresult(&r[2], "t-missing", OUTCOME_MISSING, T0 + 3, -1, 0);
	mkresult(&r[3], "t-deferred", OUTCOME_DEFERRED, T0 + 4, -1, 0);  /* delay DSN after 250 */
	mkresult(&r[4], "t-rejected", OUTCOME_REJECTED, T0 + 5, -1, 0);  /* failure DSN after 250 */
	mkresult(&r[5], "t-error", OUTCOME_ERROR, T0 + 6, -1, 0);
	mkresult(&r[6], "t-def-4xx", OUTCOME_DEFERRED, 0, -1, 0);       /* never accepted */
	record(st, T0, r, seeds, pv, 7);
	/* another seed and another config must not show up */
	seeds[0] = "seed2@gmail.example";
	mkresult(&r[0], "t-other-seed", OUTCOME_MISSING, T0 + 1, -1, 0);
	record(st, T0, r, seeds, pv, 1);
	seeds[0] = "seed1@gmail.example";
	mkresult(&r[0], "t-other-config", OUTCOME_MISSING, T0 + 1, -1, 0);
	assert_int_equal(state_record_round(st, "other", T0, T0 + 1, r, seeds, pv, 1, &err), 0);

	/* newest first; the error probe is older than STATE_UNMEASURED_FOLLOWUP */
	assert_int_equal(state_pending(st, CFG, "seed1@gmail.example", T0, &p, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(p[1].token, "t-missing");
	assert_string_equal(p[1].seed, "seed1@gmail.example");
	assert_string_equal(p[1].provider, "gmail");
	assert_string_equal(p[1].outcome, "missing");
	assert_float_equal(p[1].submit_time, T0 + 3, 1e-9);
	assert_true(p[1].round_id > 0);
	assert_string_equal(p[0].token, "t-deferred");
	assert_string_equal(p[0].outcome, "deferred");
	free(p);

	/* since after the missing probe's submit time */
	assert_int_equal(state_pending(st, CFG, "seed1@gmail.example", T0 + 3.5, &p, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].token, "t-deferred");
	free(p);

	/* found late: no longer pending */
	assert_int_equal(state_record_late(st, CFG, "t-missing", "inbox", T0 + 400, 397, 1, &err), 0);
	assert_int_equal(state_pending(st, CFG, "seed1@gmail.example", 0, &p, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].token, "t-deferred");
	free(p);

	/* unknown seed: none */
	assert_int_equal(state_pending(st, CFG, "nobody@example", 0, &p, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_null(p);
	assert_null(err);
	state_close(st);
}

/* An accepted probe of a seed that could not be measured (error) is looked
 * for again for a while, so it is cleaned up; found, it counts nowhere. */
static void test_unmeasured_followup(void **state)
{
	struct fixture *f = *state;
	struct state *st = open_ok(f->db);
	struct probe_result r[2];
	const char *seeds[2] = { "s@g.example", "s@g.example" };
	const char *pv[2] = { "gmail", "gmail" };
	const char *one[1] = { "gmail" };
	struct state_pending *p = NULL;
	struct state_totals *t = NULL;
	double now = now_wall();
	size_t n = 0;
	char *err = NULL;

	mkresult(&r[0], "u-recent", OUTCOME_ERROR, now - 3600, -1, 0);
	mkresult(&r[1], "u-old", OUTCOME_ERROR, now - STATE_UNMEASURED_FOLLOWUP - 60, -1, 0);
	record(st, now - 3600, r, seeds, pv, 2);
	assert_int_equal(state_pending(st, CFG, "s@g.example", 0, &p, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].token, "u-recent");
	assert_string_equal(p[0].outcome, "error");
	free(p);
	/* found: no longer pending, and no late arrival, no histogram sample */
	assert_int_equal(state_record_late(st, CFG, "u-recent", "inbox", now - 3000, 600, 1, &err), 0);
	assert_int_equal(state_pending(st, CFG, "s@g.example", 0, &p, &n, &err), 0);
	assert_int_equal(n, 0);
	free(p);
	assert_int_equal(state_totals(st, CFG, one, 1, now, 86400, &t, &err), 0);
	assert_int_equal(t[0].late_inbox, 0);
	assert_int_equal(t[0].hist_count, 0);
	assert_int_equal(t[0].probes[OUTCOME_ERROR], 2);
	state_totals_free(t, 1);
	state_close(st);
}

static void test_late_arrivals(void **state)
{
	struct fixture *f = *state;
	struct state *st = open_ok(f->db);
	struct probe_result r[4];
	const char *seeds[4] = { "a@g.example", "b@g.example", "c@g.example", "d@g.example" };
	const char *pv[4] = { "gmail", "gmail", "gmail", "gmail" };
	const char *one[1] = { "gmail" };
	struct state_totals *t;
	char *err = NULL;

	mkresult(&r[0], "late-a", OUTCOME_MISSING, T0, -1, 0);
	mkresult(&r[1], "late-b", OUTCOME_DEFERRED, T0, -1, 0);
	mkresult(&r[2], "found-c", OUTCOME_INBOX, T0, 8, 1);
	mkresult(&r[3], "late-d", OUTCOME_MISSING, T0, -1, 0);
	record(st, T0, r, seeds, pv, 4);

	assert_int_equal(state_record_late(st, CFG, "late-a", "inbox", T0 + 450, 450, 1, &err), 0);
	/* the second call for the same token changes nothing */
	assert_int_equal(state_record_late(st, CFG, "late-a", "spam", T0 + 900, 900, 1, &err), 0);
	assert_int_equal(state_record_late(st, CFG, "late-b", "spam", T0 + 2000, 2000, 1, &err), 0);
	/* skewed clock: counted as a late arrival, kept out of the histogram */
	assert_int_equal(state_record_late(st, CFG, "late-d", "inbox", T0 - 30, -30, 0, &err), 0);
	/* a probe found in its round is not a late arrival */
	assert_int_equal(state_record_late(st, CFG, "found-c", "inbox", T0 + 8, 8, 1, &err), 0);
	assert_null(err);

	t = totals(st, one, 1, T0 + 3000, 3600);
	assert_int_equal(t[0].late_inbox, 2);
	assert_int_equal(t[0].late_spam, 1);
	/* probes_total keeps each probe's round outcome */
	assert_int_equal(t[0].probes[OUTCOME_MISSING], 2);
	assert_int_equal(t[0].probes[OUTCOME_DEFERRED], 1);
	assert_int_equal(t[0].probes[OUTCOME_INBOX], 1);
	/* histogram: 8 (round), 450 and 2000 (late) */
	assert_int_equal(t[0].hist_count, 3);
	assert_float_equal(t[0].hist_sum, 8 + 450 + 2000, 1e-9);
	assert_int_equal(t[0].bucket[2], 0);        /* le=5 */
	assert_int_equal(t[0].bucket[3], 1);        /* le=10 */
	assert_int_equal(t[0].bucket[8], 1);        /* le=300 */
	assert_int_equal(t[0].bucket[9], 2);        /* le=600 */
	assert_int_equal(t[0].bucket[10], 2);       /* le=1800 */
	assert_int_equal(t[0].bucket[11], 3);       /* le=3600 */
	/* window: the round sample and both usable late latencies */
	assert_int_equal(t[0].window_samples, 3);
	assert_float_equal(t[0].window_latencies[0], 8, 1e-9);
	assert_float_equal(t[0].window_latencies[1], 450, 1e-9);
	assert_float_equal(t[0].window_latencies[2], 2000, 1e-9);
	state_totals_free(t, 1);

	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM probes WHERE late = 1 "
	                                  "AND late_folder = 'inbox' AND late_latency = 450"), 1);

	/* bad input */
	assert_int_equal(state_record_late(st, CFG, "no-such-token", "inbox", T0, 1, 1, &err), -1);
	assert_non_null(strstr(err, "no-such-token"));
	free(err);
	err = NULL;
	assert_int_equal(state_record_late(st, CFG, "late-b", "trash", T0, 1, 1, &err), -1);
	assert_non_null(err);
	free(err);
	err = NULL;
	/* ...changed nothing */
	t = totals(st, one, 1, T0 + 3000, 3600);
	assert_int_equal(t[0].late_inbox + t[0].late_spam, 3);
	assert_int_equal(t[0].hist_count, 3);
	state_totals_free(t, 1);
	state_close(st);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void test_window(void **state)
{
	struct fixture *f = *state;
	struct state *st = open_ok(f->db);
	const double now = T0 + 100000;
	const long window = 3600;
	double want[64];
	size_t nwant = 0;
	struct probe_result r[8];
	const char *seeds[8], *pv[8];
	const char *one[2] = { "gmail", "yahoo" };
	struct state_totals *t;
	char *err = NULL;
	char tok[32];

	for (int i = 0; i < 8; i++) {
		seeds[i] = "w@gmail.example";
		pv[i] = "gmail";
	}
	/* Old round, outside the window (submit 2 h before now). */
	mkresult(&r[0], "w-old-inbox", OUTCOME_INBOX, now - 7200, 5, 1);
	mkresult(&r[1], "w-old-missing", OUTCOME_MISSING, now - 7200, -1, 0);
	mkresult(&r[2], "w-old-rej", OUTCOME_REJECTED, 0, -1, 0);
	record(st, now - 7200, r, seeds, pv, 3);
	/* The old missing probe arrives late: its submit time is outside. */
	assert_int_equal(state_record_late(st, CFG, "w-old-missing", "inbox", now - 3000, 4200, 1,
	                                   &err), 0);

	/* Rounds inside the window. */
	for (int k = 0; k < 5; k++) {
		double sub = now - 3000 + k * 600;
		double lats[4] = { 30.0 - k, 2.5 * k, 100.0 + k, 7.0 };

		for (int i = 0; i < 4; i++) {
			snprintf(tok, sizeof(tok), "w-%d-%d", k, i);
			mkresult(&r[i], tok, i == 1 ? OUTCOME_SPAM : OUTCOME_INBOX, sub, lats[i], i != 3);
			if (i != 3)
				want[nwant++] = lats[i];
		}
		snprintf(tok, sizeof(tok), "w-%d-missing", k);
		mkresult(&r[4], tok, OUTCOME_MISSING, sub, -1, 0);
		snprintf(tok, sizeof(tok), "w-%d-rej", k);
		mkresult(&r[5], tok, OUTCOME_REJECTED, 0, -1, 0);    /* 550 at RCPT */
		record(st, sub - 1, r, seeds, pv, 6);
	}
	/* One late arrival inside the window, one unusable. */
	assert_int_equal(state_record_late(st, CFG, "w-0-missing", "spam", now - 1000, 2000, 1, &err), 0);
	want[nwant++] = 2000;
	assert_int_equal(state_record_late(st, CFG, "w-1-missing", "inbox", now - 900, 1500, 0, &err), 0);
	qsort(want, nwant, sizeof(want[0]), cmp_double);

	t = totals(st, one, 2, now, window);
	assert_int_equal(t[0].window_samples, nwant);
	for (size_t i = 0; i < nwant; i++)
		assert_float_equal(t[0].window_latencies[i], want[i], 1e-9);
	for (size_t i = 1; i < t[0].window_samples; i++)
		assert_true(t[0].window_latencies[i - 1] <= t[0].window_latencies[i]);
	assert_int_equal(t[0].window_outcomes[OUTCOME_INBOX], 15);
	assert_int_equal(t[0].window_outcomes[OUTCOME_SPAM], 5);
	assert_int_equal(t[0].window_outcomes[OUTCOME_MISSING], 5);
	assert_int_equal(t[0].window_outcomes[OUTCOME_REJECTED], 5);   /* by their rounds' start */
	assert_int_equal(t[0].window_outcomes[OUTCOME_DEFERRED], 0);
	/* the totals count every round */
	assert_int_equal(t[0].probes[OUTCOME_INBOX], 16);
	assert_int_equal(t[0].probes[OUTCOME_REJECTED], 6);
	/* a provider never seen: zeros */
	assert_string_equal(t[1].provider, "yahoo");
	assert_int_equal(t[1].window_samples, 0);
	assert_int_equal(t[1].hist_count, 0);
	for (int o = 0; o < OUTCOME__COUNT; o++)
		assert_int_equal(t[1].probes[o], 0);
	state_totals_free(t, 2);

	/* A window of a day takes in the old round too. */
	t = totals(st, one, 1, now, 86400);
	assert_int_equal(t[0].window_samples, nwant + 2);
	assert_int_equal(t[0].window_outcomes[OUTCOME_REJECTED], 6);
	state_totals_free(t, 1);
	state_close(st);
}

static void test_duplicate_token_and_reopen(void **state)
{
	struct fixture *f = *state;
	struct state *st = open_ok(f->db);
	struct probe_result r[2];
	const char *seeds[2] = { "a@x.example", "b@x.example" };
	const char *pv[2] = { "gmail", "gmail" };
	const char *one[1] = { "gmail" };
	struct state_totals *t;

	mkresult(&r[0], "dup", OUTCOME_INBOX, T0, 3, 1);
	mkresult(&r[1], "", OUTCOME_ERROR, 0, -1, 0);    /* no token: counted, no row */
	record(st, T0, r, seeds, pv, 2);
	record(st, T0 + 10, r, seeds, pv, 1);             /* the same token again */
	state_close(st);

	st = open_ok(f->db);                              /* reopen: data and schema kept */
	t = totals(st, one, 1, T0 + 100, 3600);
	assert_int_equal(t[0].probes[OUTCOME_INBOX], 1);
	assert_int_equal(t[0].probes[OUTCOME_ERROR], 1);
	assert_int_equal(t[0].hist_count, 1);
	state_totals_free(t, 1);
	state_close(st);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM probes"), 1);
	assert_int_equal(sql_count(f->db, "PRAGMA user_version"), STATE_SCHEMA_VERSION);
}

/* docs/SPEC.md "Latency": skew up to 2 s keeps the sample usable; the histogram
 * counts it as 0 (monotonic _sum), the window keeps the measured value. */
static void test_small_negative_latency(void **state)
{
	struct fixture *f = *state;
	struct state *st = open_ok(f->db);
	struct probe_result r[2];
	const char *seeds[2] = { "a@x.example", "b@x.example" };
	const char *pv[2] = { "gmail", "gmail" };
	const char *one[1] = { "gmail" };
	struct state_totals *t;

	mkresult(&r[0], "neg", OUTCOME_INBOX, T0, -1.5, 1);
	mkresult(&r[1], "skewed", OUTCOME_SPAM, T0, -40, 0);    /* beyond 2 s: not usable */
	record(st, T0, r, seeds, pv, 2);
	t = totals(st, one, 1, T0 + 60, 3600);
	assert_int_equal(t[0].hist_count, 1);
	assert_int_equal(t[0].bucket[0], 1);
	assert_float_equal(t[0].hist_sum, 0, 1e-12);
	assert_int_equal(t[0].window_samples, 1);
	assert_float_equal(t[0].window_latencies[0], -1.5, 1e-12);
	assert_int_equal(t[0].probes[OUTCOME_SPAM], 1);
	state_totals_free(t, 1);
	state_close(st);
}

static void test_bad_files(void **state)
{
	struct fixture *f = *state;
	struct state *st = NULL;
	char *bad = xasprintf("%s/bad.db", f->dir);
	char *err = NULL;
	FILE *fp;
	sqlite3 *db;

	/* Not SQLite at all. */
	fp = fopen(bad, "w");
	assert_non_null(fp);
	for (int i = 0; i < 64; i++)
		fputs("This is a text file, not an SQLite database.\n", fp);
	fclose(fp);
	assert_int_equal(state_open(bad, &st, &err), -1);
	assert_null(st);
	assert_non_null(err);
	assert_non_null(strstr(err, bad));
	free(err);
	err = NULL;

	/* An SQLite database of something else. */
	unlink(bad);
	assert_int_equal(sqlite3_open(bad, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1)",
	                              NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(state_open(bad, &st, &err), -1);
	assert_non_null(strstr(err, bad));
	assert_non_null(strstr(err, "not an inboxprobe state store"));
	free(err);
	err = NULL;

	/* A store written by a newer inboxprobe. */
	st = open_ok(f->db);
	state_close(st);
	st = NULL;
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(state_open(f->db, &st, &err), -1);
	assert_null(st);
	assert_non_null(strstr(err, f->db));
	assert_non_null(strstr(err, "newer"));
	free(err);
	err = NULL;

	/* A directory that does not exist. */
	free(bad);
	bad = xasprintf("%s/no/such/dir/state.db", f->dir);
	assert_int_equal(state_open(bad, &st, &err), -1);
	assert_non_null(strstr(err, bad));
	free(err);
	free(bad);
}

static void test_run_lock(void **state)
{
	struct fixture *f = *state;
	char *path = xasprintf("%s/lock", f->dir);
	struct run_lock *l = NULL;
	char *err = NULL;
	struct stat sb;
	pid_t pid;
	int status;

	assert_int_equal(run_lock_acquire(path, &l, &err), 0);
	assert_non_null(l);
	assert_int_equal(stat(path, &sb), 0);
	{
		mode_t um = umask(0);
		umask(um);
		assert_int_equal(sb.st_mode & 0777, 0660 & ~um);
	}

	/* A second run (another process) finds it held. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct run_lock *l2 = NULL;
		char *e = NULL;
		char want[64];
		int rc = run_lock_acquire(path, &l2, &e);

		const char *at;

		/* "(pid N)" from /proc/locks, or "(pid N, started ..., as the lock
		 * file says; ...)" when /proc/locks does not list it */
		snprintf(want, sizeof(want), "(pid %ld", (long)getppid());
		at = e != NULL ? strstr(e, want) : NULL;
		if (rc != 1 || l2 != NULL || at == NULL ||
		    (at[strlen(want)] != ')' && at[strlen(want)] != ',') ||
		    strstr(e, "another inboxprobe run holds") == NULL)
			_exit(10 + rc);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* Released: the next run gets it. */
	run_lock_release(l);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct run_lock *l2 = NULL;
		char *e = NULL;
		int rc = run_lock_acquire(path, &l2, &e);

		run_lock_release(l2);
		_exit(rc == 0 ? 0 : 20 + rc);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(stat(path, &sb), 0);      /* never unlinked */

	/* A lock in a directory that does not exist: an error naming it. */
	free(path);
	path = xasprintf("%s/missing/lock", f->dir);
	assert_int_equal(run_lock_acquire(path, &l, &err), -1);
	assert_non_null(strstr(err, path));
	free(err);
	free(path);
	run_lock_release(NULL);
}

/* A child that holds the lock on path with flock(2) but never wrote its pid
 * (an empty file): the message still names it, from /proc/locks. */
static void test_run_lock_pid_from_proc(void **state)
{
	struct fixture *f = *state;
	char *path = xasprintf("%s/emptylock", f->dir);
	struct run_lock *l = NULL;
	char *err = NULL, want[64];
	int pfd[2], status;
	char c;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_RDWR | O_CREAT, 0600);
		if (fd < 0 || flock(fd, LOCK_EX) != 0)
			_exit(1);
		(void)!write(pfd[1], "x", 1);
		pause();
		_exit(0);
	}
	assert_int_equal(read(pfd[0], &c, 1), 1);
	assert_int_equal(run_lock_acquire(path, &l, &err), 1);
	assert_null(l);
	snprintf(want, sizeof want, "(pid %ld)", (long)pid);
	assert_non_null(strstr(err, want));
	free(err);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(pfd[0]);
	close(pfd[1]);
	free(path);
}

/* Issue 12 section 3: a symbolic link, a FIFO or a hard link at the lock's
 * path is refused, never followed, opened for writing or truncated. */
static void test_run_lock_refuses_planted_files(void **state)
{
	struct fixture *f = *state;
	char *victim = xasprintf("%s/victim", f->dir);
	char *lnk = xasprintf("%s/symlock", f->dir);
	char *fifo = xasprintf("%s/fifolock", f->dir);
	char *hard = xasprintf("%s/hardlock", f->dir);
	struct run_lock *l = NULL;
	char *err = NULL, buf[32] = { 0 };
	int fd;

	fd = open(victim, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious\n", 9), 9);
	close(fd);
	assert_int_equal(symlink(victim, lnk), 0);
	assert_int_equal(run_lock_acquire(lnk, &l, &err), -1);
	assert_non_null(strstr(err, "symbolic link"));
	free(err);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(run_lock_acquire(fifo, &l, &err), -1);   /* returns: no hang */
	assert_non_null(strstr(err, "a FIFO, not a regular file"));
	free(err);
	assert_int_equal(link(victim, hard), 0);
	assert_int_equal(run_lock_acquire(hard, &l, &err), -1);
	assert_non_null(strstr(err, "hard links"));
	free(err);
	assert_null(l);
	fd = open(victim, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof buf - 1), 9);
	close(fd);
	assert_string_equal(buf, "precious\n");
	free(victim);
	free(lnk);
	free(fifo);
	free(hard);
}

/* Another user's lock file that we may only read (0644, as the umask 022
 * leaves a 0660 file): locked read-only, so runs under two users still
 * exclude each other (root only: the child drops to nobody). */
static void test_run_lock_read_only(void **state)
{
	(void)state;
	char dir[] = "/tmp/ibp-lockro-XXXXXX";
	char *path;
	struct run_lock *l = NULL;
	char *err = NULL, c;
	int status, fd, held[2], done[2];
	pid_t pid;

	if (geteuid() != 0) {
		skip();
		return;
	}
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	path = xasprintf("%s/shared.lock", dir);
	fd = open(path, O_RDWR | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(pipe(held), 0);
	assert_int_equal(pipe(done), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct run_lock *l2 = NULL;
		char *e = NULL;
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(30);
		int rc = run_lock_acquire(path, &l2, &e);
		if (rc != 0)
			_exit(20 + rc);
		/* held: tell the parent, wait until it has tried */
		if (write(held[1], "h", 1) != 1 || read(done[0], &c, 1) != 1)
			_exit(31);
		run_lock_release(l2);
		_exit(0);
	}
	if (read(held[0], &c, 1) != 1)
		fail_msg("the child did not take the lock");
	assert_int_equal(run_lock_acquire(path, &l, &err), 1);
	assert_int_equal(write(done[1], "d", 1), 1);
	{
		char want[64];
		snprintf(want, sizeof want, "(pid %ld)", (long)pid);
		assert_non_null(strstr(err, want));   /* from /proc/locks: it could not write it */
	}
	free(err);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	for (int i = 0; i < 2; i++) {
		close(held[i]);
		close(done[i]);
	}
	unlink(path);
	rmdir(dir);
	free(path);
}

/* The lock's directory: world-writable refused for any kind; the system
 * directory is created mode 01770 and must not be a symbolic link. */
static void test_run_lock_dir_check(void **state)
{
	struct fixture *f = *state;
	char *open_dir = xasprintf("%s/worldw", f->dir);
	char *sys = xasprintf("%s/sys", f->dir);
	char *sys_link = xasprintf("%s/syslink", f->dir);
	char *err = NULL;
	struct stat sb;

	assert_int_equal(mkdir(open_dir, 0700), 0);
	assert_int_equal(chmod(open_dir, 01777), 0);
	assert_int_equal(run_lock_dir_check(open_dir, RUN_LOCK_DIR_CONFIGURED, &err), -1);
	assert_non_null(strstr(err, "writable by every user (mode 1777)"));
	free(err);
	assert_int_equal(run_lock_dir_check(f->dir, RUN_LOCK_DIR_CONFIGURED, &err), 0);

	assert_int_equal(run_lock_dir_check(sys, RUN_LOCK_DIR_SYSTEM, &err), 0);
	assert_int_equal(lstat(sys, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 01770);
	assert_int_equal(run_lock_dir_check(sys, RUN_LOCK_DIR_SYSTEM, &err), 0);   /* again: as is */

	assert_int_equal(symlink(sys, sys_link), 0);
	assert_int_equal(run_lock_dir_check(sys_link, RUN_LOCK_DIR_SYSTEM, &err), -1);
	assert_non_null(strstr(err, "symbolic link"));
	free(err);
	assert_int_equal(run_lock_dir_check(open_dir, RUN_LOCK_DIR_SYSTEM, &err), -1);
	free(err);
	free(open_dir);
	free(sys);
	free(sys_link);
}

/* Child of test_two_processes: record 50 rounds, exit 0 on success. */
static int writer(const char *db, int which)
{
	struct state *st = NULL;
	char *err = NULL;
	struct probe_result r[4];
	const char *seeds[4] = { "p1@gmail.example", "p2@gmail.example",
	                         "p1@outlook.example", "p2@outlook.example" };
	const char *pv[4] = { "gmail", "gmail", "outlook", "outlook" };
	char tok[TOKEN_MAX];

	if (state_open(db, &st, &err) != 0) {
		fprintf(stderr, "writer %d: %s\n", which, err);
		return 1;
	}
	for (int k = 0; k < 50; k++) {
		double sub = T0 + k * 60;
		for (int i = 0; i < 4; i++) {
			snprintf(tok, sizeof(tok), "proc%d-round%02d-%d", which, k, i);
			mkresult(&r[i], tok, i == 3 ? OUTCOME_MISSING : (i == 2 ? OUTCOME_SPAM : OUTCOME_INBOX),
			         sub, 1.5 + i, 1);
		}
		if (state_record_round(st, CFG, sub, sub + 30, r, seeds, pv, 4, &err) != 0) {
			fprintf(stderr, "writer %d: %s\n", which, err);
			state_close(st);
			return 2;
		}
	}
	state_close(st);
	return 0;
}

static void test_two_processes(void **state)
{
	struct fixture *f = *state;
	struct state *st;
	struct state_totals *t;
	pid_t pids[2];
	int status;
	sqlite3 *db;
	sqlite3_stmt *s;

	/* Start both before either has created the schema. */
	for (int w = 0; w < 2; w++) {
		pids[w] = fork();
		assert_true(pids[w] >= 0);
		if (pids[w] == 0)
			_exit(writer(f->db, w));
	}
	for (int w = 0; w < 2; w++) {
		assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	st = open_ok(f->db);
	t = totals(st, provs, NPROV, T0 + 50 * 60, 86400);
	/* per round: gmail 2 inbox, outlook 1 spam + 1 missing; 100 rounds */
	assert_int_equal(t[0].probes[OUTCOME_INBOX], 200);
	assert_int_equal(t[1].probes[OUTCOME_SPAM], 100);
	assert_int_equal(t[1].probes[OUTCOME_MISSING], 100);
	assert_int_equal(t[0].hist_count, 200);
	assert_float_equal(t[0].hist_sum, 100 * (1.5 + 2.5), 1e-6);
	assert_int_equal(t[0].bucket[0], 0);
	assert_int_equal(t[0].bucket[1], 100);     /* 1.5 <= 2 */
	assert_int_equal(t[0].bucket[2], 200);     /* 2.5 <= 5 */
	assert_int_equal(t[1].hist_count, 100);
	assert_int_equal(t[0].window_samples, 200);
	state_totals_free(t, NPROV);
	state_close(st);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM rounds"), 100);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM probes"), 400);

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
	sqlite3_finalize(s);
	sqlite3_close(db);
}

/* Write-ahead: probes are in the store before the round; the round's record
 * gives them their outcome and counts each once; a second record of the
 * same round counts nothing again. */
static void test_write_ahead(void **state)
{
	struct fixture *f = *state;
	struct state *st = open_ok(f->db);
	const char *toks[2] = { "wa-1", "wa-2" };
	const char *seeds[2] = { "a@g.example", "b@g.example" };
	const char *pv[2] = { "gmail", "gmail" };
	const char *one[1] = { "gmail" };
	struct probe_result r[2];
	struct state_pending *p = NULL;
	struct state_totals *t = NULL;
	double now = now_wall();
	size_t n = 0;
	char *err = NULL;

	assert_int_equal(state_write_ahead(st, CFG, now, toks, seeds, pv, 2, &err), 0);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM probes WHERE counted = 0"), 2);
	/* not counted, and not pending while its own run is alive */
	t = totals(st, one, 1, now, 3600);
	assert_int_equal(t[0].probes[OUTCOME_ERROR], 0);
	assert_int_equal(t[0].window_outcomes[OUTCOME_ERROR], 0);
	state_totals_free(t, 1);
	assert_int_equal(state_pending(st, CFG, "a@g.example", 0, &p, &n, &err), 0);
	assert_int_equal(n, 0);
	free(p);
	mkresult(&r[0], "wa-1", OUTCOME_INBOX, now + 1, 3, 1);
	mkresult(&r[1], "wa-2", OUTCOME_MISSING, now + 1, -1, 0);
	record(st, now, r, seeds, pv, 2);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM probes WHERE counted = 0"), 0);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM rounds"), 1);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM probes WHERE token = 'wa-1'"
	                                  " AND outcome = 'inbox' AND latency = 3"), 1);
	record(st, now, r, seeds, pv, 2);   /* again: nothing counted twice */
	t = totals(st, one, 1, now + 10, 3600);
	assert_int_equal(t[0].probes[OUTCOME_INBOX], 1);
	assert_int_equal(t[0].probes[OUTCOME_MISSING], 1);
	assert_int_equal(t[0].probes[OUTCOME_ERROR], 0);
	assert_int_equal(t[0].hist_count, 1);
	state_totals_free(t, 1);
	assert_int_equal(state_pending(st, CFG, "b@g.example", 0, &p, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].token, "wa-2");
	assert_int_equal(p[0].cleanup_only, 0);
	free(p);
	state_close(st);
}

/* A run that dies after writing ahead: the next run counts its probes once,
 * as error, and looks for them to clean them up; a recovery finds nothing
 * the second time; another configuration's rows are not touched. */
static void test_recover_after_kill(void **state)
{
	struct fixture *f = *state;
	struct state *st = open_ok(f->db);
	const char *toks[2] = { "k-1", "k-2" };
	const char *seeds[2] = { "a@g.example", "b@o.example" };
	const char *pv[2] = { "gmail", "outlook" };
	const char *other[1] = { "x-1" };
	struct state_pending *p = NULL;
	struct state_totals *t = NULL;
	double now = now_wall();
	size_t n = 99;
	char *err = NULL;

	assert_int_equal(state_write_ahead(st, CFG, now, toks, seeds, pv, 2, &err), 0);
	assert_int_equal(state_write_ahead(st, "other", now, other, seeds, pv, 1, &err), 0);
	state_close(st);   /* the process is gone: nothing recorded */
	st = open_ok(f->db);
	assert_int_equal(state_recover(st, CFG, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(state_recover(st, CFG, &n, &err), 0);
	assert_int_equal(n, 0);
	t = totals(st, pv, 2, now, 3600);
	assert_int_equal(t[0].probes[OUTCOME_ERROR], 1);
	assert_int_equal(t[1].probes[OUTCOME_ERROR], 1);
	state_totals_free(t, 2);
	assert_int_equal(state_pending(st, CFG, "a@g.example", 0, &p, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].token, "k-1");
	assert_int_equal(p[0].cleanup_only, 1);
	free(p);
	/* found and cleaned later: no longer pending, still counted once */
	assert_int_equal(state_record_late(st, CFG, "k-1", "inbox", now + 5, 5, 1, &err), 0);
	assert_int_equal(state_set_cleanup(st, CFG, "k-1", 0, &err), 0);
	assert_int_equal(state_pending(st, CFG, "a@g.example", 0, &p, &n, &err), 0);
	assert_int_equal(n, 0);
	free(p);
	assert_int_equal(sql_count(f->db, "SELECT count(*) FROM probes WHERE config = 'other'"
	                                  " AND counted = 0"), 1);
	state_close(st);
}

/* A found probe whose cleanup failed stays pending (cleanup only) until a
 * later round cleans it up; it is never counted again. */
static void test_cleanup_failed_stays_pending(void **state)
{
	struct fixture *f = *state;
	struct state *st = open_ok(f->db);
	const char *seeds[1] = { "a@g.example" };
	const char *pv[1] = { "gmail" };
	struct probe_result r[1];
	struct state_pending *p = NULL;
	struct state_totals *t = NULL;
	double now = now_wall();
	size_t n = 0;
	char *err = NULL;

	mkresult(&r[0], "cf-1", OUTCOME_INBOX, now - 60, 2, 1);
	xstrlcpy(r[0].cleanup, "failed: bye", sizeof r[0].cleanup);
	record(st, now - 60, r, seeds, pv, 1);
	assert_int_equal(state_pending(st, CFG, "a@g.example", 0, &p, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].token, "cf-1");
	assert_int_equal(p[0].cleanup_only, 1);
	free(p);
	/* found again, cleanup failed again: still pending, nothing counted */
	assert_int_equal(state_record_late(st, CFG, "cf-1", "inbox", now, 60, 1, &err), 0);
	assert_int_equal(state_set_cleanup(st, CFG, "cf-1", 1, &err), 0);
	assert_int_equal(state_pending(st, CFG, "a@g.example", 0, &p, &n, &err), 0);
	assert_int_equal(n, 1);
	free(p);
	assert_int_equal(state_set_cleanup(st, CFG, "cf-1", 0, &err), 0);
	assert_int_equal(state_pending(st, CFG, "a@g.example", 0, &p, &n, &err), 0);
	assert_int_equal(n, 0);
	free(p);
	t = totals(st, pv, 1, now, 3600);
	assert_int_equal(t[0].probes[OUTCOME_INBOX], 1);
	assert_int_equal(t[0].late_inbox, 0);
	assert_int_equal(t[0].hist_count, 1);
	state_totals_free(t, 1);
	state_close(st);
}

/* A store of schema 1 (before write-ahead) is migrated: its rows count as
 * counted, its totals are kept. */
/* The learned announcement delay and its window of recent lags (schema 4);
 * a row written by schema 3 comes back with an empty window. */
static void test_announce_delays(void **state)
{
	struct fixture *f = *state;
	struct state *st;
	sqlite3 *db;
	char recent[64], *err = NULL;
	double d = 0;
	long n = 0;

	st = open_ok(f->db);
	assert_int_equal(state_announce_delay_get(st, "imap.example:993", &d, &n, recent, sizeof recent,
	                                          &err), 1);
	assert_int_equal(state_announce_delay_put(st, "imap.example:993", 0.503112, 7,
	                                          "912000 503112 2000001", 1000, &err), 0);
	assert_int_equal(state_announce_delay_get(st, "imap.example:993", &d, &n, recent, sizeof recent,
	                                          &err), 0);
	assert_true(fabs(d - 0.503112) < 1e-12);
	assert_int_equal(n, 7);
	assert_string_equal(recent, "912000 503112 2000001");
	/* replaced, not added to */
	assert_int_equal(state_announce_delay_put(st, "imap.example:993", 2.0, 8, NULL, 1001, &err), 0);
	assert_int_equal(state_announce_delay_get(st, "imap.example:993", &d, &n, recent, sizeof recent,
	                                          &err), 0);
	assert_true(d == 2.0);
	assert_string_equal(recent, "");
	assert_int_equal(state_announce_delay_put(st, "imap.example:993", NAN, 8, NULL, 1001, &err), -1);
	free(err);
	err = NULL;
	state_close(st);
	/* a row of a schema 3 store: the migration gives it an empty window */
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "ALTER TABLE announce_delays DROP COLUMN recent;"
	                              "INSERT INTO announce_delays(server, delay, samples, updated)"
	                              " VALUES ('old.example:993', 0.51, 40, 900);"
	                              "PRAGMA user_version = 3;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	st = open_ok(f->db);
	assert_int_equal(sql_count(f->db, "PRAGMA user_version"), STATE_SCHEMA_VERSION);
	recent[0] = 'x';
	assert_int_equal(state_announce_delay_get(st, "old.example:993", &d, &n, recent, sizeof recent,
	                                          &err), 0);
	assert_true(fabs(d - 0.51) < 1e-12);
	assert_int_equal(n, 40);
	assert_string_equal(recent, "");
	state_close(st);
	/* a tampered file: counts below 0 and at INT64_MAX (the round adds
	 * to it: signed overflow) read back as 0 and STATE_SAMPLES_MAX */
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO announce_delays(server, delay, samples, updated)"
	                              " VALUES ('neg.example:993', 0.5, -3, 900),"
	                              " ('huge.example:993', 0.5, 9223372036854775807, 900);",
	                              NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	st = open_ok(f->db);
	assert_int_equal(state_announce_delay_get(st, "neg.example:993", &d, &n, recent, sizeof recent,
	                                          &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(state_announce_delay_get(st, "huge.example:993", &d, &n, recent, sizeof recent,
	                                          &err), 0);
	assert_int_equal(n, STATE_SAMPLES_MAX);
	state_close(st);
}

static void test_migrate_v1(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;
	struct state *st;
	struct state_pending *p = NULL;
	size_t n = 0;
	char *err = NULL;
	double now = now_wall();
	char *sql = xasprintf(
		"PRAGMA application_id = 1231179890; PRAGMA user_version = 1;"
		"CREATE TABLE rounds (id INTEGER PRIMARY KEY AUTOINCREMENT, config TEXT NOT NULL,"
		" started REAL NOT NULL, ended REAL NOT NULL);"
		"CREATE TABLE probes (token TEXT PRIMARY KEY NOT NULL, config TEXT NOT NULL,"
		" round_id INTEGER NOT NULL, seed TEXT NOT NULL, provider TEXT NOT NULL,"
		" submit_time REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
		" reply_code INTEGER NOT NULL DEFAULT 0, reply_enhanced TEXT NOT NULL DEFAULT '',"
		" reply_text TEXT NOT NULL DEFAULT '', queue_id TEXT NOT NULL DEFAULT '',"
		" outcome TEXT NOT NULL, folder TEXT NOT NULL DEFAULT '', internaldate REAL,"
		" latency REAL, latency_usable INTEGER NOT NULL DEFAULT 0, late INTEGER NOT NULL DEFAULT 0,"
		" late_folder TEXT, late_internaldate REAL, late_latency REAL,"
		" late_latency_usable INTEGER NOT NULL DEFAULT 0, found_at REAL);"
		"CREATE TABLE counters (config TEXT NOT NULL, name TEXT NOT NULL, provider TEXT NOT NULL,"
		" label TEXT NOT NULL, value INTEGER NOT NULL DEFAULT 0,"
		" PRIMARY KEY (config, name, provider, label));"
		"CREATE TABLE sums (config TEXT NOT NULL, name TEXT NOT NULL, provider TEXT NOT NULL,"
		" value REAL NOT NULL DEFAULT 0, PRIMARY KEY (config, name, provider));"
		"INSERT INTO rounds VALUES (1, 'otp', %.0f, %.0f);"
		"INSERT INTO probes(token, config, round_id, seed, provider, submit_time, outcome)"
		" VALUES ('v1-missing', 'otp', 1, 'a@g.example', 'gmail', %.0f, 'missing');"
		"INSERT INTO counters VALUES ('otp', 'probes_total', 'gmail', 'missing', 1);",
		now - 60, now - 30, now - 59);

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(sql);
	st = open_ok(f->db);
	assert_int_equal(sql_count(f->db, "PRAGMA user_version"), STATE_SCHEMA_VERSION);
	assert_int_equal(state_recover(st, CFG, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(state_pending(st, CFG, "a@g.example", 0, &p, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].token, "v1-missing");
	free(p);
	state_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_counters_histogram_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_keeps_recent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unmeasured_followup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_arrivals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_token_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_negative_latency, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_lock_pid_from_proc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_lock_refuses_planted_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_lock_dir_check, setup, teardown),
		cmocka_unit_test(test_run_lock_read_only),
		cmocka_unit_test_setup_teardown(test_run_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_results_total, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_ahead, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_after_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_failed_stays_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_announce_delays, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
