/*
 * test_report.c - per-provider figures, gates, exit codes (docs/SPEC.md "Gates and
 * exit codes"), nearest-rank quantiles, and the JSON, JUnit, summary and
 * Nagios encoders.
 *
 * quantile_nearest_rank() takes sorted input only (as documented in
 * report.h); report_compute() sorts the samples before calling it.
 */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "reports/report.h"

/* ---- fixture: a hand-built configuration ---- */

struct fx {
	struct config cfg;
	struct probe_result *res;
};

/* n seeds; prov[i] is seed i's provider. Global SLO: ratio 0.9, p99 300,
 * max_missing unset, min_samples 1, round basis. */
static void fx_init(struct fx *f, const char *const *prov, size_t n)
{
	memset(f, 0, sizeof(*f));
	f->cfg.name = xstrdup("otp");
	f->cfg.slo.min_inbox_ratio = 0.9;
	f->cfg.slo.max_latency_p99 = 300;
	f->cfg.slo.max_missing = -1;
	f->cfg.slo.window = 3600;
	f->cfg.slo.min_samples = 1;
	f->cfg.seeds = xcalloc(n, sizeof(struct seed_conf));
	f->cfg.providers = xcalloc(n, sizeof(char *));
	f->cfg.nseeds = n;
	f->res = xcalloc(n, sizeof(struct probe_result));
	for (size_t i = 0; i < n; i++) {
		f->cfg.seeds[i].address = xasprintf("seed%zu@%s.example", i + 1, prov[i]);
		f->cfg.seeds[i].provider = xstrdup(prov[i]);
		int known = 0;
		for (size_t p = 0; p < f->cfg.nproviders; p++)
			known |= strcmp(f->cfg.providers[p], prov[i]) == 0;
		if (!known)
			f->cfg.providers[f->cfg.nproviders++] = xstrdup(prov[i]);
		f->res[i].seed_index = i;
		snprintf(f->res[i].token, sizeof(f->res[i].token), "%032zx", i + 1);
		f->res[i].outcome = OUTCOME_INBOX;
	}
}

static void fx_free(struct fx *f)
{
	for (size_t i = 0; i < f->cfg.nseeds; i++) {
		free(f->cfg.seeds[i].address);
		free(f->cfg.seeds[i].provider);
	}
	for (size_t p = 0; p < f->cfg.nproviders; p++)
		free(f->cfg.providers[p]);
	for (size_t i = 0; i < f->cfg.nslo_overrides; i++)
		free(f->cfg.slo_overrides[i].provider);
	free(f->cfg.slo_overrides);
	free(f->cfg.seeds);
	free(f->cfg.providers);
	free(f->cfg.name);
	free(f->res);
}

static void set_found(struct probe_result *r, enum outcome o, double latency)
{
	r->outcome = o;
	xstrlcpy(r->folder, o == OUTCOME_INBOX ? "INBOX" : "Junk", sizeof(r->folder));
	r->submit_time = 1700000000;
	r->internaldate = r->submit_time + latency;
	r->found_time = r->internaldate + 2;
	r->latency = latency;
	r->have_latency = 1;
	r->discovery_lag = 2;
	r->reply.code = 250;
	xstrlcpy(r->reply.enhanced, "2.0.0", sizeof(r->reply.enhanced));
}

static struct round_report *compute(struct fx *f)
{
	return report_compute(&f->cfg, f->res, 1700000000, 1700000060, NULL, NULL);
}

/* ---- quantiles ---- */

static void test_quantile_hand_computed(void **state)
{
	(void)state;
	double one[] = { 7 };
	assert_true(quantile_nearest_rank(one, 1, 0.5) == 7);
	assert_true(quantile_nearest_rank(one, 1, 0.99) == 7);
	assert_true(quantile_nearest_rank(one, 1, 1.0) == 7);

	double ten[10];
	for (int i = 0; i < 10; i++)
		ten[i] = i + 1;
	/* ranks: ceil(0.5*10)=5, ceil(0.95*10)=10, ceil(0.99*10)=10, ceil(0.1*10)=1 */
	assert_true(quantile_nearest_rank(ten, 10, 0.5) == 5);
	assert_true(quantile_nearest_rank(ten, 10, 0.95) == 10);
	assert_true(quantile_nearest_rank(ten, 10, 0.99) == 10);
	assert_true(quantile_nearest_rank(ten, 10, 0.1) == 1);
	assert_true(quantile_nearest_rank(ten, 10, 0.11) == 2);

	double hundred[100];
	for (int i = 0; i < 100; i++)
		hundred[i] = (i + 1) * 1.5;   /* the k-th value is 1.5k */
	/* 0.95*100 is 95.00000000000001 in binary: must still be rank 95. */
	assert_true(quantile_nearest_rank(hundred, 100, 0.95) == 95 * 1.5);
	assert_true(quantile_nearest_rank(hundred, 100, 0.99) == 99 * 1.5);
	assert_true(quantile_nearest_rank(hundred, 100, 0.5) == 50 * 1.5);
	assert_true(quantile_nearest_rank(hundred, 100, 0.505) == 51 * 1.5);

	double three[] = { 1, 2, 3 };
	assert_true(quantile_nearest_rank(three, 3, 0.5) == 2);    /* ceil(1.5) = 2 */
	assert_true(quantile_nearest_rank(three, 3, 0.34) == 2);   /* ceil(1.02) = 2 */
	assert_true(quantile_nearest_rank(three, 3, 0.33) == 1);   /* ceil(0.99) = 1 */

	assert_true(isnan(quantile_nearest_rank(ten, 0, 0.5)));
	assert_true(isnan(quantile_nearest_rank(NULL, 0, 0.5)));
	assert_true(isnan(quantile_nearest_rank(ten, 10, 0)));
	assert_true(isnan(quantile_nearest_rank(ten, 10, 1.5)));
	assert_true(isnan(quantile_nearest_rank(ten, 10, NAN)));
}

static void test_round_quantiles_sorted(void **state)
{
	(void)state;
	const char *prov[] = { "gmail", "gmail", "gmail", "gmail" };
	struct fx f;
	fx_init(&f, prov, 4);
	/* Unsorted on input; report_compute sorts: 3, 5, 9, 40. */
	set_found(&f.res[0], OUTCOME_INBOX, 40);
	set_found(&f.res[1], OUTCOME_SPAM, 3);
	set_found(&f.res[2], OUTCOME_INBOX, 9);
	set_found(&f.res[3], OUTCOME_INBOX, 5);
	struct round_report *r = compute(&f);
	assert_int_equal(r->providers[0].samples, 4);
	assert_true(r->providers[0].p50 == 5);    /* rank ceil(2) = 2 */
	assert_true(r->providers[0].p95 == 40);
	assert_true(r->providers[0].p99 == 40);
	report_free(r);

	/* A skewed sample (have_latency 0) is not a sample. */
	f.res[0].have_latency = 0;
	f.res[0].latency = -30;
	f.res[0].clock_skew = 30;
	r = compute(&f);
	assert_int_equal(r->providers[0].samples, 3);
	assert_true(r->providers[0].p99 == 9);
	report_free(r);
	fx_free(&f);
}

/* ---- shares and measured ---- */

static void test_shares_sum_to_one(void **state)
{
	(void)state;
	const char *prov[] = { "p", "p", "p", "p", "p", "p", "p" };
	struct fx f;
	fx_init(&f, prov, 7);
	set_found(&f.res[0], OUTCOME_INBOX, 3);
	set_found(&f.res[1], OUTCOME_INBOX, 4);
	set_found(&f.res[2], OUTCOME_SPAM, 5);
	f.res[3].outcome = OUTCOME_MISSING;
	f.res[4].outcome = OUTCOME_REJECTED;
	f.res[5].outcome = OUTCOME_DEFERRED;
	f.res[6].outcome = OUTCOME_ERROR;
	struct round_report *r = compute(&f);
	const struct provider_report *p = &r->providers[0];
	assert_int_equal(p->measured, 6);          /* error excluded */
	assert_int_equal(p->n[OUTCOME_ERROR], 1);
	assert_int_equal(p->n[OUTCOME_INBOX], 2);
	double sum = 0;
	for (int o = 0; o < OUTCOME_ERROR; o++)
		sum += p->share[o];
	assert_true(fabs(sum - 1.0) < 1e-12);
	assert_true(fabs(p->share[OUTCOME_INBOX] - 2.0 / 6.0) < 1e-12);
	assert_true(fabs(p->share[OUTCOME_DEFERRED] - 1.0 / 6.0) < 1e-12);
	assert_true(r->any_error);
	/* inbox 2/6 < 0.9 */
	assert_true(p->gate[SLO_MIN_INBOX_RATIO].evaluated);
	assert_false(p->gate[SLO_MIN_INBOX_RATIO].ok);
	report_free(r);
	fx_free(&f);
}

static void test_nothing_measured(void **state)
{
	(void)state;
	const char *prov[] = { "p", "p" };
	struct fx f;
	fx_init(&f, prov, 2);
	f.res[0].outcome = OUTCOME_ERROR;
	f.res[1].outcome = OUTCOME_ERROR;
	f.cfg.slo.max_missing = 0;
	struct round_report *r = compute(&f);
	const struct provider_report *p = &r->providers[0];
	assert_int_equal(p->measured, 0);
	for (int o = 0; o < OUTCOME_ERROR; o++)
		assert_true(p->share[o] == 0);
	for (int g = 0; g < SLO__COUNT; g++)
		assert_false(p->gate[g].evaluated);
	assert_false(r->gates_failed);
	assert_int_equal(report_exit_code(r), EXIT_UNKNOWN);
	report_free(r);
	fx_free(&f);
}

/* ---- gates ---- */

static void test_min_samples_not_evaluated(void **state)
{
	(void)state;
	const char *prov[] = { "p", "p", "p" };
	struct fx f;
	fx_init(&f, prov, 3);
	set_found(&f.res[0], OUTCOME_INBOX, 500);   /* would fail p99 <= 300 */
	set_found(&f.res[1], OUTCOME_INBOX, 600);
	set_found(&f.res[2], OUTCOME_INBOX, 10);
	f.cfg.slo.min_samples = 4;
	struct round_report *r = compute(&f);
	const struct gate_result *g = &r->providers[0].gate[SLO_MAX_LATENCY_P99];
	assert_false(g->evaluated);
	assert_non_null(strstr(g->reason, "min_samples"));
	assert_false(r->gates_failed);
	assert_int_equal(report_exit_code(r), EXIT_GATES_OK);
	report_free(r);

	f.cfg.slo.min_samples = 3;   /* exactly enough */
	r = compute(&f);
	g = &r->providers[0].gate[SLO_MAX_LATENCY_P99];
	assert_true(g->evaluated);
	assert_false(g->ok);
	assert_true(g->value == 600);
	assert_true(g->threshold == 300);
	assert_int_equal(report_exit_code(r), EXIT_GATE_FAILED);
	report_free(r);

	f.cfg.slo.min_samples = 0;   /* 0 samples are never enough */
	for (int i = 0; i < 3; i++)
		f.res[i].outcome = OUTCOME_MISSING;
	r = compute(&f);
	assert_false(r->providers[0].gate[SLO_MAX_LATENCY_P99].evaluated);
	report_free(r);
	fx_free(&f);
}

static void test_max_missing_unset_vs_zero(void **state)
{
	(void)state;
	const char *prov[] = { "p", "p", "p", "p", "p", "p", "p", "p", "p", "p", "p" };
	struct fx f;
	fx_init(&f, prov, 11);
	for (int i = 0; i < 10; i++)
		set_found(&f.res[i], OUTCOME_INBOX, 1);
	f.res[10].outcome = OUTCOME_MISSING;    /* 10/11 = 0.909 >= 0.9 */
	struct round_report *r = compute(&f);
	assert_false(r->providers[0].gate[SLO_MAX_MISSING].evaluated);   /* unset (-1) */
	assert_false(r->gates_failed);
	report_free(r);

	f.cfg.slo.max_missing = 0;
	r = compute(&f);
	const struct gate_result *g = &r->providers[0].gate[SLO_MAX_MISSING];
	assert_true(g->evaluated);
	assert_false(g->ok);
	assert_true(g->value == 1 && g->threshold == 0);
	assert_true(r->gates_failed);
	report_free(r);

	f.cfg.slo.max_missing = 1;
	r = compute(&f);
	assert_true(r->providers[0].gate[SLO_MAX_MISSING].evaluated);
	assert_true(r->providers[0].gate[SLO_MAX_MISSING].ok);
	assert_false(r->gates_failed);
	report_free(r);
	fx_free(&f);
}

static void test_provider_overrides(void **state)
{
	(void)state;
	const char *prov[] = { "gmail", "gmail", "gmail", "outlook", "outlook", "outlook" };
	struct fx f;
	fx_init(&f, prov, 6);
	for (int i = 0; i < 6; i++)
		set_found(&f.res[i], OUTCOME_INBOX, 2);
	f.res[2].outcome = OUTCOME_SPAM;   /* gmail 2/3 */
	f.res[5].outcome = OUTCOME_SPAM;   /* outlook 2/3 */
	f.cfg.slo.min_inbox_ratio = 0.5;
	f.cfg.slo_overrides = xcalloc(1, sizeof(struct slo_override));
	f.cfg.nslo_overrides = 1;
	f.cfg.slo_overrides[0].provider = xstrdup("gmail");
	f.cfg.slo_overrides[0].has_min_inbox_ratio = 1;
	f.cfg.slo_overrides[0].min_inbox_ratio = 0.95;
	struct round_report *r = compute(&f);
	assert_string_equal(r->providers[0].provider, "gmail");
	assert_true(r->providers[0].gate[SLO_MIN_INBOX_RATIO].threshold == 0.95);
	assert_false(r->providers[0].gate[SLO_MIN_INBOX_RATIO].ok);
	assert_true(r->providers[1].gate[SLO_MIN_INBOX_RATIO].threshold == 0.5);
	assert_true(r->providers[1].gate[SLO_MIN_INBOX_RATIO].ok);
	assert_int_equal(report_exit_code(r), EXIT_GATE_FAILED);
	report_free(r);
	fx_free(&f);
}

static void test_window_basis(void **state)
{
	(void)state;
	const char *prov[] = { "p", "p" };
	struct fx f;
	fx_init(&f, prov, 2);
	set_found(&f.res[0], OUTCOME_INBOX, 4);
	set_found(&f.res[1], OUTCOME_INBOX, 6);
	f.cfg.slo.evaluate_window = 1;
	f.cfg.slo.max_missing = 2;
	struct state_totals t;
	memset(&t, 0, sizeof(t));
	double lat[] = { 4, 6, 8, 400 };
	t.window_latencies = lat;
	t.window_samples = 4;
	t.window_outcomes[OUTCOME_INBOX] = 8;
	t.window_outcomes[OUTCOME_SPAM] = 1;
	t.window_outcomes[OUTCOME_MISSING] = 3;
	t.window_outcomes[OUTCOME_ERROR] = 5;   /* not measured */
	struct round_report *r = report_compute(&f.cfg, f.res, 1, 2, &t, NULL);
	const struct provider_report *p = &r->providers[0];
	assert_true(r->window_basis);
	assert_true(p->share[OUTCOME_INBOX] == 1.0);                  /* round figures stay */
	assert_true(p->gate[SLO_MIN_INBOX_RATIO].value == 8.0 / 12.0);  /* window */
	assert_false(p->gate[SLO_MIN_INBOX_RATIO].ok);
	assert_true(p->gate[SLO_MAX_LATENCY_P99].value == 400);
	assert_false(p->gate[SLO_MAX_LATENCY_P99].ok);
	assert_true(p->gate[SLO_MAX_MISSING].value == 3);
	assert_false(p->gate[SLO_MAX_MISSING].ok);
	report_free(r);

	/* Without a store, "window" falls back to the round. */
	r = report_compute(&f.cfg, f.res, 1, 2, NULL, NULL);
	assert_false(r->window_basis);
	assert_true(r->providers[0].gate[SLO_MIN_INBOX_RATIO].ok);
	assert_int_equal(report_exit_code(r), EXIT_GATES_OK);
	report_free(r);
	fx_free(&f);
}

/* ---- exit codes and Nagios codes ---- */

static void test_exit_code_table(void **state)
{
	(void)state;
	const char *prov[] = { "p", "p", "p", "p", "p", "p", "p", "p", "p", "p" };
	struct fx f;
	struct round_report *r;
	fx_init(&f, prov, 10);
	for (int i = 0; i < 10; i++)
		set_found(&f.res[i], OUTCOME_INBOX, 3);

	/* all inbox -> 0 */
	r = compute(&f);
	assert_int_equal(report_exit_code(r), EXIT_GATES_OK);
	assert_int_equal(report_process_code(r, 1), NAGIOS_OK);
	report_free(r);

	/* two spam: 8/10 < 0.9 -> 1 */
	f.res[0].outcome = OUTCOME_SPAM;
	f.res[1].outcome = OUTCOME_SPAM;
	r = compute(&f);
	assert_int_equal(report_exit_code(r), EXIT_GATE_FAILED);
	assert_int_equal(report_process_code(r, 1), NAGIOS_CRITICAL);
	report_free(r);

	/* an error, nothing failed (9/9 inbox) -> 3 */
	f.res[0].outcome = OUTCOME_ERROR;
	f.res[1].outcome = OUTCOME_INBOX;
	r = compute(&f);
	assert_false(r->gates_failed);
	assert_int_equal(report_exit_code(r), EXIT_UNKNOWN);
	assert_int_equal(report_process_code(r, 1), NAGIOS_WARNING);
	report_free(r);

	/* an error and a failed gate -> 1 */
	f.res[1].outcome = OUTCOME_SPAM;
	f.res[2].outcome = OUTCOME_SPAM;   /* 6/8 inbox */
	r = compute(&f);
	assert_int_equal(report_exit_code(r), EXIT_GATE_FAILED);
	assert_int_equal(report_process_code(r, 1), NAGIOS_CRITICAL);
	report_free(r);

	/* all measured and fine, but a report could not be written -> 3 */
	for (int i = 0; i < 3; i++)
		f.res[i].outcome = OUTCOME_INBOX;
	r = compute(&f);
	assert_int_equal(report_exit_code(r), EXIT_GATES_OK);
	char *err = NULL;
	assert_int_equal(report_write(r, "/nonexistent-dir-inboxprobe/x.prom", report_prometheus_text, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "/nonexistent-dir-inboxprobe/x"));
	free(err);
	/* report_write changes nothing in the report: the caller sets the
	 * flag once every file was written, and only the process's code moves */
	assert_false(r->report_write_failed);
	r->report_write_failed = 1;
	assert_int_equal(report_exit_code(r), EXIT_GATES_OK);
	assert_int_equal(report_process_code(r, 0), EXIT_UNKNOWN);
	assert_int_equal(report_process_code(r, 1), NAGIOS_WARNING);
	report_free(r);

	/* statuses known before computing (issue 12 section 6): each is in
	 * the report from the start, and makes the verdict unknown */
	{
		struct report_status st[] = {
			{ .state_failed = 1 },
			{ .bounce_error = "imaps://b: LOGIN refused" },
		};
		for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
			r = report_compute(&f.cfg, f.res, 1700000000, 1700000060, NULL, &st[i]);
			assert_int_equal(r->state_failed, st[i].state_failed);
			assert_ptr_equal(r->bounce_error, st[i].bounce_error);
			assert_int_equal(report_exit_code(r), EXIT_UNKNOWN);
			assert_int_equal(report_process_code(r, 1), NAGIOS_WARNING);
			report_free(r);
		}
		struct report_status intr = { .interrupted = 15 };
		r = report_compute(&f.cfg, f.res, 1700000000, 1700000060, NULL, &intr);
		assert_int_equal(r->interrupted, 15);
		report_free(r);
	}
	fx_free(&f);
}

static void test_report_write_ok(void **state)
{
	(void)state;
	const char *prov[] = { "p" };
	struct fx f;
	fx_init(&f, prov, 1);
	set_found(&f.res[0], OUTCOME_INBOX, 3);
	struct round_report *r = compute(&f);
	char dir[] = "/tmp/test_report.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *path = xasprintf("%s/r.json", dir);
	char *err = NULL;
	assert_int_equal(report_write(r, path, report_json, &err), 0);
	assert_null(err);
	assert_false(r->report_write_failed);
	char *back = read_file_capped(path, 0, NULL, &err);
	assert_non_null(back);
	char *expect = report_json(r);
	assert_string_equal(back, expect);
	free(expect);
	free(back);
	unlink(path);
	rmdir(dir);
	free(path);
	report_free(r);
	fx_free(&f);
}

/* ---- encoders: JSON, JUnit, summary, Nagios ---- */

static struct fx mixed;

static struct round_report *mixed_round(void)
{
	const char *prov[] = { "gmail", "gmail", "gmail", "outlook" };
	fx_init(&mixed, prov, 4);
	set_found(&mixed.res[0], OUTCOME_INBOX, 3.5);
	xstrlcpy(mixed.res[0].reply.queue_id, "4Q1x2", sizeof(mixed.res[0].reply.queue_id));
	xstrlcpy(mixed.res[0].reply.text, "Ok: queued as 4Q1x2", sizeof(mixed.res[0].reply.text));
	xstrlcpy(mixed.res[0].cleanup, "deleted", sizeof(mixed.res[0].cleanup));
	set_found(&mixed.res[1], OUTCOME_SPAM, 8);
	xstrlcpy(mixed.res[1].folder, "Courrier ind\xC3\xA9sirable", sizeof(mixed.res[1].folder));
	mixed.res[2].outcome = OUTCOME_REJECTED;
	mixed.res[2].reply.code = 550;
	xstrlcpy(mixed.res[2].reply.enhanced, "5.7.1", sizeof(mixed.res[2].reply.enhanced));
	xstrlcpy(mixed.res[2].reply.text, "Service unavailable; <a&b> \"blocked\"\x01\xFF",
	         sizeof(mixed.res[2].reply.text));
	xstrlcpy(mixed.res[2].reply.stage, "rcpt", sizeof(mixed.res[2].reply.stage));
	xstrlcpy(mixed.res[2].diagnostic, "5.7.1 delivery not authorized, message refused",
	         sizeof(mixed.res[2].diagnostic));
	mixed.res[3].outcome = OUTCOME_ERROR;
	xstrlcpy(mixed.res[3].diagnostic, "IMAP login failed | NO [AUTHENTICATIONFAILED]",
	         sizeof(mixed.res[3].diagnostic));
	return report_compute(&mixed.cfg, mixed.res, 1700000000.25, 1700000060, NULL, NULL);
}

static void test_json_report(void **state)
{
	(void)state;
	struct round_report *r = mixed_round();
	char *j = report_json(r);
	assert_non_null(strstr(j, "\"schema\":\"inboxprobe-report/1\""));
	assert_non_null(strstr(j, "\"config\":\"otp\""));
	assert_non_null(strstr(j, "\"started\":\"2023-11-14T22:13:20.250Z\""));
	assert_non_null(strstr(j, "\"started_unix\":1700000000.25"));
	assert_non_null(strstr(j, "\"exit_code\":1"));
	assert_non_null(strstr(j, "\"verdict\":\"gate_failed\""));
	/* escaping: quote, control char as \u0001, invalid byte as U+FFFD */
	assert_non_null(strstr(j, "\"text\":\"Service unavailable; <a&b> \\\"blocked\\\"\\u0001\xEF\xBF\xBD\""));
	/* valid UTF-8 passes through */
	assert_non_null(strstr(j, "\"folder\":\"Courrier ind\xC3\xA9sirable\""));
	/* absent values are null */
	assert_non_null(strstr(j, "\"relay_reply\":null"));
	assert_non_null(strstr(j, "\"latency_seconds\":null"));
	assert_non_null(strstr(j, "\"latency_seconds\":3.5"));
	assert_non_null(strstr(j, "\"dsn\":null"));
	assert_non_null(strstr(j, "\"totals\":null"));
	/* outlook: nothing measured, quantiles null, gates not evaluated */
	assert_non_null(strstr(j, "\"provider\":\"outlook\",\"counts\":{\"inbox\":0,\"spam\":0,\"missing\":0,"
	                          "\"rejected\":0,\"deferred\":0,\"error\":1},\"measured\":0"));
	assert_non_null(strstr(j, "\"min_inbox_ratio\":{\"evaluated\":false,\"ok\":null,\"value\":null,"
	                          "\"threshold\":0.9,\"reason\":\"no measured probes\"}"));
	/* gmail: 1/3 inbox, a failed gate */
	assert_non_null(strstr(j, "\"min_inbox_ratio\":{\"evaluated\":true,\"ok\":false,"
	                          "\"value\":0.3333333333333333,\"threshold\":0.9,\"reason\":null}"));
	/* never a raw control byte */
	for (const char *p = j; *p; p++)
		assert_true((unsigned char)*p >= 0x20 || *p == '\n');
	free(j);
	report_free(r);
	fx_free(&mixed);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void test_junit_report(void **state)
{
	(void)state;
	struct round_report *r = mixed_round();
	char *x = report_junit(r);
	/* gmail: 3 seeds + 2 evaluated gates (ratio failed, p99 ok); failures: spam, rejected, ratio */
	assert_non_null(strstr(x, "<testsuite name=\"inboxprobe.gmail\" tests=\"5\" failures=\"3\" errors=\"0\""));
	assert_non_null(strstr(x, "<testsuite name=\"inboxprobe.outlook\" tests=\"1\" failures=\"0\" errors=\"1\""));
	assert_non_null(strstr(x, "<testsuites name=\"inboxprobe otp\" tests=\"6\" failures=\"3\" errors=\"1\""));
	assert_non_null(strstr(x, "<testcase classname=\"inboxprobe.gmail\" name=\"seed1@gmail.example\" time=\"3.500\">"));
	assert_non_null(strstr(x, "<failure message=\"rejected: 5.7.1 delivery not authorized, message refused\" type=\"rejected\">"));
	assert_non_null(strstr(x, "<error message=\"error: IMAP login failed | NO [AUTHENTICATIONFAILED]\" type=\"error\">"));
	assert_non_null(strstr(x, "name=\"slo min_inbox_ratio\""));
	assert_non_null(strstr(x, "type=\"slo\""));
	assert_non_null(strstr(x, "name=\"slo max_latency_p99\" time=\"0.000\"/>"));
	/* escaping */
	assert_non_null(strstr(x, "&lt;a&amp;b&gt; &quot;blocked&quot;\xEF\xBF\xBD\xEF\xBF\xBD"));
	assert_null(strstr(x, "\x01"));
	assert_int_equal(count(x, "<testcase "), 6);
	assert_int_equal(count(x, "<failure "), 3);
	assert_int_equal(count(x, "<error "), 1);
	free(x);
	report_free(r);
	fx_free(&mixed);
}

/* Not inlined: GCC 12 then takes open_memstream's heap buffer for a
 * pointer into this frame (-Wdangling-pointer, a false positive). */
__attribute__((noinline))
static char *capture(void (*fn)(const struct round_report *, FILE *), const struct round_report *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	assert_non_null(m);
	fn(r, m);
	fclose(m);
	return buf;
}

static void test_summary(void **state)
{
	(void)state;
	struct round_report *r = mixed_round();
	char *s = capture(report_summary, r);
	assert_non_null(strstr(s, "SEED"));
	assert_non_null(strstr(s, "250 2.0.0 4Q1x2"));
	assert_non_null(strstr(s, "550 5.7.1"));
	assert_non_null(strstr(s, "Courrier ind\xC3\xA9sirable"));
	assert_non_null(strstr(s, "FAIL gmail min_inbox_ratio: 0.333 < 0.900\n"));
	assert_non_null(strstr(s, "skip outlook min_inbox_ratio: not evaluated: no measured probes\n"));
	assert_non_null(strstr(s, "verdict: FAILED (exit 1)"));
	/* gmail row: measured 3/3, 33.3% inbox */
	assert_non_null(strstr(s, "3/3"));
	assert_non_null(strstr(s, "33.3"));
	/* the table is aligned: OUTCOME starts at the same column on every row */
	const char *hdr = strstr(s, "OUTCOME");
	size_t col = (size_t)(hdr - s);
	const char *row = strchr(s, '\n') + 1;
	assert_true(strncmp(row + col, "inbox", 5) == 0);
	free(s);
	report_free(r);
	fx_free(&mixed);
}

/* slo.require_auth (issue 11): a failing verdict fails the gate (exit 1)
 * and is named in full in the summary; a found probe without a trusted
 * verdict leaves it not evaluated; all pass holds it. */
static void add_verdict(struct probe_result *r, const char *m, const char *res, const char *reason,
                        const char *pn, const char *pv)
{
	struct auth_verdict *v = &r->trace.auth[r->trace.nauth++];
	r->trace.fetched = 1;
	xstrlcpy(v->method, m, sizeof v->method);
	xstrlcpy(v->result, res, sizeof v->result);
	xstrlcpy(v->reason, reason, sizeof v->reason);
	if (pn) {
		xstrlcpy(v->props[0].name, pn, sizeof v->props[0].name);
		xstrlcpy(v->props[0].value, pv, sizeof v->props[0].value);
		v->nprops = 1;
	}
}

static void test_require_auth_gate(void **state)
{
	(void)state;
	static const char *const prov[] = { "gmail", "gmail", "outlook" };
	struct fx f;
	fx_init(&f, prov, 3);
	f.cfg.slo.require_auth = 7;   /* spf, dkim, dmarc */
	for (int i = 0; i < 3; i++)
		set_found(&f.res[i], OUTCOME_INBOX, 5);
	add_verdict(&f.res[0], "spf", "pass", "", "smtp.mailfrom", "sender.example");
	add_verdict(&f.res[0], "dkim", "fail", "bad signature", "header.d", "example.com");
	add_verdict(&f.res[0], "dkim", "fail", "", NULL, NULL);
	add_verdict(&f.res[0], "dmarc", "fail", "", NULL, NULL);
	add_verdict(&f.res[1], "spf", "pass", "", NULL, NULL);
	add_verdict(&f.res[1], "dkim", "fail", "", NULL, NULL);
	add_verdict(&f.res[1], "dkim", "pass", "", NULL, NULL);   /* one passing signature */
	add_verdict(&f.res[1], "dmarc", "pass", "", NULL, NULL);
	f.res[2].trace.fetched = 1;
	xstrlcpy(f.res[2].trace.note, "no Authentication-Results field", sizeof f.res[2].trace.note);
	struct round_report *r = compute(&f);
	const struct gate_result *g = &r->providers[0].gate[SLO_REQUIRE_AUTH];
	assert_true(g->evaluated && !g->ok && g->value == 1);
	g = &r->providers[1].gate[SLO_REQUIRE_AUTH];
	assert_false(g->evaluated);
	assert_string_equal(g->reason, "1 found probe without a trusted verdict");
	assert_int_equal(report_exit_code(r), EXIT_GATE_FAILED);
	char *s = capture(report_summary, r);
	assert_non_null(strstr(s, "authentication failures (slo.require_auth):\n"
	                          "  seed1@gmail.example: dkim=fail (bad signature) header.d=example.com\n"));
	assert_non_null(strstr(s, "authentication not evaluated (slo.require_auth):\n"
	                          "  seed3@outlook.example: spf: no trusted verdict (no Authentication-Results field)\n"));
	assert_non_null(strstr(s, "FAIL gmail require_auth: 1 found probe without a pass (listed above)\n"));
	assert_non_null(strstr(s, "skip outlook require_auth: not evaluated: 1 found probe without a trusted verdict\n"));
	assert_non_null(strstr(s, "spf=pass dkim=pass dmarc=pass"));   /* seed2's verdict column */
	free(s);
	char *j = report_json(r);
	assert_non_null(strstr(j, "\"verdicts\":[{\"method\":\"spf\",\"result\":\"pass\",\"reason\":null,"
	                          "\"properties\":{\"smtp.mailfrom\":\"sender.example\"}}"));
	assert_non_null(strstr(j, "\"require_auth\":{\"evaluated\":true,\"ok\":false,\"value\":1,\"threshold\":0"));
	free(j);
	report_free(r);
	/* outlook's probe passes now: gmail still fails, outlook holds */
	add_verdict(&f.res[2], "spf", "pass", "", NULL, NULL);
	add_verdict(&f.res[2], "dkim", "pass", "", NULL, NULL);
	add_verdict(&f.res[2], "dmarc", "pass", "", NULL, NULL);
	r = compute(&f);
	g = &r->providers[1].gate[SLO_REQUIRE_AUTH];
	assert_true(g->evaluated && g->ok && g->value == 0);
	report_free(r);
	/* unset: never evaluated, no line */
	f.cfg.slo.require_auth = 0;
	r = compute(&f);
	assert_false(r->providers[0].gate[SLO_REQUIRE_AUTH].evaluated);
	assert_int_equal(report_exit_code(r), EXIT_GATES_OK);
	s = capture(report_summary, r);
	assert_null(strstr(s, "require_auth"));
	free(s);
	report_free(r);
	fx_free(&f);
}

/* slo.min_primary_ratio over the inbox probes whose Gmail tab is known. */
static void test_min_primary_ratio(void **state)
{
	(void)state;
	static const char *const prov[] = { "gmail", "gmail", "gmail", "gmail" };
	struct fx f;
	fx_init(&f, prov, 4);
	f.cfg.slo.min_primary_ratio = 0.9;
	for (int i = 0; i < 4; i++)
		set_found(&f.res[i], OUTCOME_INBOX, 5);
	xstrlcpy(f.res[0].trace.tab, "primary", sizeof f.res[0].trace.tab);
	xstrlcpy(f.res[1].trace.tab, "promotions", sizeof f.res[1].trace.tab);
	xstrlcpy(f.res[2].trace.tab, "unknown", sizeof f.res[2].trace.tab);   /* categories off */
	struct round_report *r = compute(&f);
	const struct provider_report *p = &r->providers[0];
	assert_int_equal(p->tab_known, 2);
	assert_int_equal(p->tab_n[0], 1);
	assert_int_equal(p->tab_n[1], 1);
	assert_true(p->gate[SLO_MIN_PRIMARY_RATIO].evaluated && !p->gate[SLO_MIN_PRIMARY_RATIO].ok);
	assert_true(p->gate[SLO_MIN_PRIMARY_RATIO].value == 0.5);
	char *s = capture(report_summary, r);
	assert_non_null(strstr(s, "FAIL gmail min_primary_ratio: 0.500 < 0.900\n"));
	assert_non_null(strstr(s, "INBOX [promotions]"));
	assert_non_null(strstr(s, "gmail tabs (2 known): primary 50.0% promotions 50.0% social 0.0% "
	                          "updates 0.0% forums 0.0%\n"));
	free(s);
	report_free(r);
	fx_free(&f);
}

static void test_nagios(void **state)
{
	(void)state;
	struct round_report *r = mixed_round();
	char *s = capture(report_nagios, r);
	const char *head = "INBOXPROBE CRITICAL - gate failed: gmail min_inbox_ratio 0.3333333333333333 < 0.9; "
	                   "3/4 seeds measured, unmeasured: ";
	assert_true(strncmp(s, head, strlen(head)) == 0);
	assert_non_null(strstr(s, "unmeasured: seed4@outlook.example (IMAP login failed / NO [AUTHENTICATIONFAILED])"));
	assert_int_equal(count(s, "|"), 1);
	assert_non_null(strstr(s, " 'inbox_ratio_gmail'=0.3333333333333333;;0.9:;0;1"));
	assert_non_null(strstr(s, " 'p99_gmail'=8s;;300;0;"));
	assert_non_null(strstr(s, " 'missing_gmail'=0;;;0;"));
	assert_non_null(strstr(s, " 'measured_outlook'=0;;;0;1"));
	assert_null(strstr(s, "inbox_ratio_outlook"));
	assert_int_equal(count(s, "\n"), 1);
	free(s);
	report_free(r);
	fx_free(&mixed);

	/* all good -> OK line */
	const char *prov[] = { "gmail", "gmail" };
	struct fx f;
	fx_init(&f, prov, 2);
	set_found(&f.res[0], OUTCOME_INBOX, 3.2);
	set_found(&f.res[1], OUTCOME_INBOX, 1);
	r = compute(&f);
	s = capture(report_nagios, r);
	assert_string_equal(s, "INBOXPROBE OK - 2/2 seeds measured, all gates hold | "
	                       "'inbox_ratio_gmail'=1;;0.9:;0;1 'p99_gmail'=3.2s;;300;0; "
	                       "'missing_gmail'=0;;;0; 'measured_gmail'=2;;;0;2\n");
	free(s);
	report_free(r);
	fx_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quantile_hand_computed),
		cmocka_unit_test(test_round_quantiles_sorted),
		cmocka_unit_test(test_shares_sum_to_one),
		cmocka_unit_test(test_nothing_measured),
		cmocka_unit_test(test_min_samples_not_evaluated),
		cmocka_unit_test(test_max_missing_unset_vs_zero),
		cmocka_unit_test(test_provider_overrides),
		cmocka_unit_test(test_window_basis),
		cmocka_unit_test(test_exit_code_table),
		cmocka_unit_test(test_report_write_ok),
		cmocka_unit_test(test_json_report),
		cmocka_unit_test(test_junit_report),
		cmocka_unit_test(test_summary),
		cmocka_unit_test(test_require_auth_gate),
		cmocka_unit_test(test_min_primary_ratio),
		cmocka_unit_test(test_nagios),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
