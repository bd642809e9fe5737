/*
 * test_metrics.c - the two metrics encoders (docs/SPEC.md "Metrics"): exact
 * expected text, byte for byte, for a small fixed round (2 providers, 3
 * seeds: one found, one missing, one error), with and without state store
 * totals; label escaping; C-locale numbers under a comma-decimal
 * LC_NUMERIC; counters and the cumulative histogram from the totals.
 */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "reports/report.h"

/* ---- the fixed round of test_metrics.c: 2 providers, 3 seeds, one found, one missing, one error. */
struct fixture {
	struct config cfg;
	struct seed_conf seeds[3];
	char *providers[2];
	struct probe_result res[3];
	struct state_totals tot[2];
	double win[4];
};

static void fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->cfg.name = "otp";
	f->cfg.slo.min_inbox_ratio = 0.9;
	f->cfg.slo.max_latency_p99 = 300;
	f->cfg.slo.max_missing = -1;
	f->cfg.slo.window = 3600;
	f->cfg.slo.min_samples = 1;
	f->seeds[0].address = "a@gmail.example";
	f->seeds[0].provider = "gmail";
	f->seeds[1].address = "b@gmail.example";
	f->seeds[1].provider = "gmail";
	f->seeds[2].address = "c@outlook.example";
	f->seeds[2].provider = "outlook";
	f->providers[0] = "gmail";
	f->providers[1] = "outlook";
	f->cfg.seeds = f->seeds;
	f->cfg.nseeds = 3;
	f->cfg.providers = f->providers;
	f->cfg.nproviders = 2;

	struct probe_result *r = &f->res[0];
	r->seed_index = 0;
	r->outcome = OUTCOME_INBOX;
	xstrlcpy(r->folder, "INBOX", sizeof(r->folder));
	r->submit_time = 1700000001;
	r->internaldate = 1700000013.5;
	r->found_time = 1700000014.75;
	r->latency = 12.5;
	r->have_latency = 1;
	r->discovery_lag = 1.25;
	r->reply.code = 250;
	xstrlcpy(r->reply.enhanced, "2.0.0", sizeof(r->reply.enhanced));
	xstrlcpy(r->reply.queue_id, "4SbQ1x0Ymz", sizeof(r->reply.queue_id));

	r = &f->res[1];
	r->seed_index = 1;
	r->outcome = OUTCOME_MISSING;
	r->submit_time = 1700000001.25;
	r->reply.code = 250;
	xstrlcpy(r->reply.enhanced, "2.0.0", sizeof(r->reply.enhanced));

	r = &f->res[2];
	r->seed_index = 2;
	r->outcome = OUTCOME_ERROR;
	xstrlcpy(r->diagnostic, "IMAP login failed", sizeof(r->diagnostic));

	/* totals: gmail has history, outlook none */
	struct state_totals *t = &f->tot[0];
	xstrlcpy(t->provider, "gmail", sizeof(t->provider));
	t->probes[OUTCOME_INBOX] = 40;
	t->probes[OUTCOME_SPAM] = 2;
	t->probes[OUTCOME_MISSING] = 3;
	t->late_inbox = 1;
	static const unsigned long long b[STATE_NBUCKETS] = { 0, 1, 10, 30, 38, 40, 41, 42, 42, 42, 42, 43 };
	memcpy(t->bucket, b, sizeof(b));
	t->hist_count = 43;
	t->hist_sum = 350.5;
	f->win[0] = 1.5; f->win[1] = 4; f->win[2] = 12.5; f->win[3] = 90;
	t->window_latencies = f->win;
	t->window_samples = 4;
	t->window_outcomes[OUTCOME_INBOX] = 3;
	t->window_outcomes[OUTCOME_MISSING] = 1;
	xstrlcpy(f->tot[1].provider, "outlook", sizeof(f->tot[1].provider));
	f->tot[1].probes[OUTCOME_ERROR] = 5;
}

static void fixture_free(struct fixture *f)
{
	(void)f;
}

/* ---- expected text (reviewed by hand against docs/SPEC.md "Metrics") ---- */

static const char expect_prom_round[] =
	"# HELP inboxprobe_probe_outcome 1 for the outcome of this round's probe to the seed, 0 for the other five.\n"
	"# TYPE inboxprobe_probe_outcome gauge\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",outcome=\"inbox\"} 1\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",outcome=\"spam\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",outcome=\"missing\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",outcome=\"rejected\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",outcome=\"deferred\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",outcome=\"error\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",outcome=\"inbox\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",outcome=\"spam\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",outcome=\"missing\"} 1\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",outcome=\"rejected\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",outcome=\"deferred\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",outcome=\"error\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"c@outlook.example\",provider=\"outlook\",outcome=\"inbox\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"c@outlook.example\",provider=\"outlook\",outcome=\"spam\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"c@outlook.example\",provider=\"outlook\",outcome=\"missing\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"c@outlook.example\",provider=\"outlook\",outcome=\"rejected\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"c@outlook.example\",provider=\"outlook\",outcome=\"deferred\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"c@outlook.example\",provider=\"outlook\",outcome=\"error\"} 1\n"
	"# HELP inboxprobe_placement_ratio Share of this round's measured probes (all outcomes but error) per folder; NaN when none was measured.\n"
	"# TYPE inboxprobe_placement_ratio gauge\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"inbox\"} 0.5\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"spam\"} 0\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"missing\"} 0.5\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"rejected\"} 0\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"deferred\"} 0\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"outlook\",folder=\"inbox\"} NaN\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"outlook\",folder=\"spam\"} NaN\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"outlook\",folder=\"missing\"} NaN\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"outlook\",folder=\"rejected\"} NaN\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"outlook\",folder=\"deferred\"} NaN\n"
	"# HELP inboxprobe_delivery_latency_last_seconds This round's delivery latency: IMAP INTERNALDATE minus the relay's 250 to end of DATA.\n"
	"# TYPE inboxprobe_delivery_latency_last_seconds gauge\n"
	"inboxprobe_delivery_latency_last_seconds{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\"} 12.5\n"
	"# HELP inboxprobe_discovery_lag_seconds Time inboxprobe saw the probe minus its estimated arrival (within INTERNALDATE + 1 s).\n"
	"# TYPE inboxprobe_discovery_lag_seconds gauge\n"
	"inboxprobe_discovery_lag_seconds{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\"} 1.25\n"
	"# HELP inboxprobe_relay_reply 1, labelled with the basic and enhanced code of the relay's final reply for the seed.\n"
	"# TYPE inboxprobe_relay_reply gauge\n"
	"inboxprobe_relay_reply{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",code=\"250\",enhanced=\"2.0.0\"} 1\n"
	"inboxprobe_relay_reply{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",code=\"250\",enhanced=\"2.0.0\"} 1\n"
	"# HELP inboxprobe_round_duration_seconds Wall-clock duration of the round.\n"
	"# TYPE inboxprobe_round_duration_seconds gauge\n"
	"inboxprobe_round_duration_seconds{config=\"otp\"} 42.5\n"
	"# HELP inboxprobe_last_run_timestamp_seconds Unix time when the last round ended.\n"
	"# TYPE inboxprobe_last_run_timestamp_seconds gauge\n"
	"inboxprobe_last_run_timestamp_seconds{config=\"otp\"} 1700000042.5\n"
	"# HELP inboxprobe_last_run_success 1 when the last round exited 0: every gate held and every seed was measured.\n"
	"# TYPE inboxprobe_last_run_success gauge\n"
	"inboxprobe_last_run_success{config=\"otp\"} 0\n"
	"# HELP inboxprobe_slo_ok 1 where the SLO gate holds for the provider, 0 where it fails; absent when not evaluated.\n"
	"# TYPE inboxprobe_slo_ok gauge\n"
	"inboxprobe_slo_ok{config=\"otp\",slo=\"min_inbox_ratio\",provider=\"gmail\"} 0\n"
	"inboxprobe_slo_ok{config=\"otp\",slo=\"max_latency_p99\",provider=\"gmail\"} 1\n";

static const char expect_om_round[] =
	"# HELP inboxprobe_probe_outcome 1 for the outcome of this round's probe to the seed, 0 for the other five.\n"
	"# TYPE inboxprobe_probe_outcome gauge\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",outcome=\"inbox\"} 1\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",outcome=\"spam\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",outcome=\"missing\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",outcome=\"rejected\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",outcome=\"deferred\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",outcome=\"error\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",outcome=\"inbox\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",outcome=\"spam\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",outcome=\"missing\"} 1\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",outcome=\"rejected\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",outcome=\"deferred\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",outcome=\"error\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"c@outlook.example\",provider=\"outlook\",outcome=\"inbox\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"c@outlook.example\",provider=\"outlook\",outcome=\"spam\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"c@outlook.example\",provider=\"outlook\",outcome=\"missing\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"c@outlook.example\",provider=\"outlook\",outcome=\"rejected\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"c@outlook.example\",provider=\"outlook\",outcome=\"deferred\"} 0\n"
	"inboxprobe_probe_outcome{config=\"otp\",seed=\"c@outlook.example\",provider=\"outlook\",outcome=\"error\"} 1\n"
	"# HELP inboxprobe_placement_ratio Share of this round's measured probes (all outcomes but error) per folder; NaN when none was measured.\n"
	"# TYPE inboxprobe_placement_ratio gauge\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"inbox\"} 0.5\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"spam\"} 0\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"missing\"} 0.5\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"rejected\"} 0\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"deferred\"} 0\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"outlook\",folder=\"inbox\"} NaN\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"outlook\",folder=\"spam\"} NaN\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"outlook\",folder=\"missing\"} NaN\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"outlook\",folder=\"rejected\"} NaN\n"
	"inboxprobe_placement_ratio{config=\"otp\",provider=\"outlook\",folder=\"deferred\"} NaN\n"
	"# HELP inboxprobe_delivery_latency_last_seconds This round's delivery latency: IMAP INTERNALDATE minus the relay's 250 to end of DATA.\n"
	"# TYPE inboxprobe_delivery_latency_last_seconds gauge\n"
	"# UNIT inboxprobe_delivery_latency_last_seconds seconds\n"
	"inboxprobe_delivery_latency_last_seconds{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\"} 12.5\n"
	"# HELP inboxprobe_discovery_lag_seconds Time inboxprobe saw the probe minus its estimated arrival (within INTERNALDATE + 1 s).\n"
	"# TYPE inboxprobe_discovery_lag_seconds gauge\n"
	"# UNIT inboxprobe_discovery_lag_seconds seconds\n"
	"inboxprobe_discovery_lag_seconds{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\"} 1.25\n"
	"# HELP inboxprobe_relay_reply 1, labelled with the basic and enhanced code of the relay's final reply for the seed.\n"
	"# TYPE inboxprobe_relay_reply gauge\n"
	"inboxprobe_relay_reply{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",code=\"250\",enhanced=\"2.0.0\"} 1\n"
	"inboxprobe_relay_reply{config=\"otp\",seed=\"b@gmail.example\",provider=\"gmail\",code=\"250\",enhanced=\"2.0.0\"} 1\n"
	"# HELP inboxprobe_round_duration_seconds Wall-clock duration of the round.\n"
	"# TYPE inboxprobe_round_duration_seconds gauge\n"
	"# UNIT inboxprobe_round_duration_seconds seconds\n"
	"inboxprobe_round_duration_seconds{config=\"otp\"} 42.5\n"
	"# HELP inboxprobe_last_run_timestamp_seconds Unix time when the last round ended.\n"
	"# TYPE inboxprobe_last_run_timestamp_seconds gauge\n"
	"# UNIT inboxprobe_last_run_timestamp_seconds seconds\n"
	"inboxprobe_last_run_timestamp_seconds{config=\"otp\"} 1700000042.5\n"
	"# HELP inboxprobe_last_run_success 1 when the last round exited 0: every gate held and every seed was measured.\n"
	"# TYPE inboxprobe_last_run_success gauge\n"
	"inboxprobe_last_run_success{config=\"otp\"} 0\n"
	"# HELP inboxprobe_slo_ok 1 where the SLO gate holds for the provider, 0 where it fails; absent when not evaluated.\n"
	"# TYPE inboxprobe_slo_ok gauge\n"
	"inboxprobe_slo_ok{config=\"otp\",slo=\"min_inbox_ratio\",provider=\"gmail\"} 0\n"
	"inboxprobe_slo_ok{config=\"otp\",slo=\"max_latency_p99\",provider=\"gmail\"} 1\n"
	"# EOF\n";

static const char expect_prom_totals_tail[] =
	"# HELP inboxprobe_probes_total Probes by outcome, counted at the end of their round.\n"
	"# TYPE inboxprobe_probes_total counter\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"inbox\"} 40\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"spam\"} 2\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"missing\"} 3\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"rejected\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"deferred\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"error\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"outlook\",outcome=\"inbox\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"outlook\",outcome=\"spam\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"outlook\",outcome=\"missing\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"outlook\",outcome=\"rejected\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"outlook\",outcome=\"deferred\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"outlook\",outcome=\"error\"} 5\n"
	"# HELP inboxprobe_late_arrivals_total Probes missing at their round's end and found in a later round, by folder.\n"
	"# TYPE inboxprobe_late_arrivals_total counter\n"
	"inboxprobe_late_arrivals_total{config=\"otp\",provider=\"gmail\",folder=\"inbox\"} 1\n"
	"inboxprobe_late_arrivals_total{config=\"otp\",provider=\"gmail\",folder=\"spam\"} 0\n"
	"inboxprobe_late_arrivals_total{config=\"otp\",provider=\"outlook\",folder=\"inbox\"} 0\n"
	"inboxprobe_late_arrivals_total{config=\"otp\",provider=\"outlook\",folder=\"spam\"} 0\n"
	"# HELP inboxprobe_delivery_latency_seconds Delivery latency of found probes, including late arrivals.\n"
	"# TYPE inboxprobe_delivery_latency_seconds histogram\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"1\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"2\"} 1\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"5\"} 10\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"10\"} 30\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"20\"} 38\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"30\"} 40\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"60\"} 41\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"120\"} 42\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"300\"} 42\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"600\"} 42\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"1800\"} 42\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"3600\"} 43\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"+Inf\"} 43\n"
	"inboxprobe_delivery_latency_seconds_sum{config=\"otp\",provider=\"gmail\"} 350.5\n"
	"inboxprobe_delivery_latency_seconds_count{config=\"otp\",provider=\"gmail\"} 43\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"1\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"2\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"5\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"10\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"20\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"30\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"60\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"120\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"300\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"600\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"1800\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"3600\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"+Inf\"} 0\n"
	"inboxprobe_delivery_latency_seconds_sum{config=\"otp\",provider=\"outlook\"} 0\n"
	"inboxprobe_delivery_latency_seconds_count{config=\"otp\",provider=\"outlook\"} 0\n"
	"# HELP inboxprobe_delivery_latency_window_seconds Nearest-rank latency quantiles of found probes over the SLO window.\n"
	"# TYPE inboxprobe_delivery_latency_window_seconds summary\n"
	"inboxprobe_delivery_latency_window_seconds{config=\"otp\",provider=\"gmail\",quantile=\"0.5\"} 4\n"
	"inboxprobe_delivery_latency_window_seconds{config=\"otp\",provider=\"gmail\",quantile=\"0.95\"} 90\n"
	"inboxprobe_delivery_latency_window_seconds{config=\"otp\",provider=\"gmail\",quantile=\"0.99\"} 90\n"
	"inboxprobe_delivery_latency_window_seconds_sum{config=\"otp\",provider=\"gmail\"} 350.5\n"
	"inboxprobe_delivery_latency_window_seconds_count{config=\"otp\",provider=\"gmail\"} 43\n"
	"# HELP inboxprobe_window_samples Number of latency samples behind the window quantiles.\n"
	"# TYPE inboxprobe_window_samples gauge\n"
	"inboxprobe_window_samples{config=\"otp\",provider=\"gmail\"} 4\n"
	"inboxprobe_window_samples{config=\"otp\",provider=\"outlook\"} 0\n"
	"# HELP inboxprobe_window_placement_ratio Share of the measured probes submitted within the window (slo.window) by folder: inbox, spam, missing, rejected, deferred.\n"
	"# TYPE inboxprobe_window_placement_ratio gauge\n"
	"inboxprobe_window_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"inbox\"} 0.75\n"
	"inboxprobe_window_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"spam\"} 0\n"
	"inboxprobe_window_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"missing\"} 0.25\n"
	"inboxprobe_window_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"rejected\"} 0\n"
	"inboxprobe_window_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"deferred\"} 0\n"
	"# HELP inboxprobe_window_probes Number of measured probes (all outcomes but error) submitted within the window.\n"
	"# TYPE inboxprobe_window_probes gauge\n"
	"inboxprobe_window_probes{config=\"otp\",provider=\"gmail\"} 4\n"
	"inboxprobe_window_probes{config=\"otp\",provider=\"outlook\"} 0\n";

static const char expect_om_totals_tail[] =
	"# HELP inboxprobe_probes Probes by outcome, counted at the end of their round.\n"
	"# TYPE inboxprobe_probes counter\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"inbox\"} 40\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"spam\"} 2\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"missing\"} 3\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"rejected\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"deferred\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"error\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"outlook\",outcome=\"inbox\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"outlook\",outcome=\"spam\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"outlook\",outcome=\"missing\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"outlook\",outcome=\"rejected\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"outlook\",outcome=\"deferred\"} 0\n"
	"inboxprobe_probes_total{config=\"otp\",provider=\"outlook\",outcome=\"error\"} 5\n"
	"# HELP inboxprobe_late_arrivals Probes missing at their round's end and found in a later round, by folder.\n"
	"# TYPE inboxprobe_late_arrivals counter\n"
	"inboxprobe_late_arrivals_total{config=\"otp\",provider=\"gmail\",folder=\"inbox\"} 1\n"
	"inboxprobe_late_arrivals_total{config=\"otp\",provider=\"gmail\",folder=\"spam\"} 0\n"
	"inboxprobe_late_arrivals_total{config=\"otp\",provider=\"outlook\",folder=\"inbox\"} 0\n"
	"inboxprobe_late_arrivals_total{config=\"otp\",provider=\"outlook\",folder=\"spam\"} 0\n"
	"# HELP inboxprobe_delivery_latency_seconds Delivery latency of found probes, including late arrivals.\n"
	"# TYPE inboxprobe_delivery_latency_seconds histogram\n"
	"# UNIT inboxprobe_delivery_latency_seconds seconds\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"1.0\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"2.0\"} 1\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"5.0\"} 10\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"10.0\"} 30\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"20.0\"} 38\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"30.0\"} 40\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"60.0\"} 41\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"120.0\"} 42\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"300.0\"} 42\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"600.0\"} 42\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"1800.0\"} 42\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"3600.0\"} 43\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"gmail\",le=\"+Inf\"} 43\n"
	"inboxprobe_delivery_latency_seconds_sum{config=\"otp\",provider=\"gmail\"} 350.5\n"
	"inboxprobe_delivery_latency_seconds_count{config=\"otp\",provider=\"gmail\"} 43\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"1.0\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"2.0\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"5.0\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"10.0\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"20.0\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"30.0\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"60.0\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"120.0\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"300.0\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"600.0\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"1800.0\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"3600.0\"} 0\n"
	"inboxprobe_delivery_latency_seconds_bucket{config=\"otp\",provider=\"outlook\",le=\"+Inf\"} 0\n"
	"inboxprobe_delivery_latency_seconds_sum{config=\"otp\",provider=\"outlook\"} 0\n"
	"inboxprobe_delivery_latency_seconds_count{config=\"otp\",provider=\"outlook\"} 0\n"
	"# HELP inboxprobe_delivery_latency_window_seconds Nearest-rank latency quantiles of found probes over the SLO window.\n"
	"# TYPE inboxprobe_delivery_latency_window_seconds summary\n"
	"# UNIT inboxprobe_delivery_latency_window_seconds seconds\n"
	"inboxprobe_delivery_latency_window_seconds{config=\"otp\",provider=\"gmail\",quantile=\"0.5\"} 4\n"
	"inboxprobe_delivery_latency_window_seconds{config=\"otp\",provider=\"gmail\",quantile=\"0.95\"} 90\n"
	"inboxprobe_delivery_latency_window_seconds{config=\"otp\",provider=\"gmail\",quantile=\"0.99\"} 90\n"
	"inboxprobe_delivery_latency_window_seconds_sum{config=\"otp\",provider=\"gmail\"} 350.5\n"
	"inboxprobe_delivery_latency_window_seconds_count{config=\"otp\",provider=\"gmail\"} 43\n"
	"# HELP inboxprobe_window_samples Number of latency samples behind the window quantiles.\n"
	"# TYPE inboxprobe_window_samples gauge\n"
	"inboxprobe_window_samples{config=\"otp\",provider=\"gmail\"} 4\n"
	"inboxprobe_window_samples{config=\"otp\",provider=\"outlook\"} 0\n"
	"# HELP inboxprobe_window_placement_ratio Share of the measured probes submitted within the window (slo.window) by folder: inbox, spam, missing, rejected, deferred.\n"
	"# TYPE inboxprobe_window_placement_ratio gauge\n"
	"inboxprobe_window_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"inbox\"} 0.75\n"
	"inboxprobe_window_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"spam\"} 0\n"
	"inboxprobe_window_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"missing\"} 0.25\n"
	"inboxprobe_window_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"rejected\"} 0\n"
	"inboxprobe_window_placement_ratio{config=\"otp\",provider=\"gmail\",folder=\"deferred\"} 0\n"
	"# HELP inboxprobe_window_probes Number of measured probes (all outcomes but error) submitted within the window.\n"
	"# TYPE inboxprobe_window_probes gauge\n"
	"inboxprobe_window_probes{config=\"otp\",provider=\"gmail\"} 4\n"
	"inboxprobe_window_probes{config=\"otp\",provider=\"outlook\"} 0\n"
	"# EOF\n";

/* Compare, and on a mismatch print where the texts part. */
static void assert_text(const char *got, const char *want)
{
	if (strcmp(got, want) == 0)
		return;
	size_t i = 0;
	while (got[i] && got[i] == want[i])
		i++;
	size_t from = i > 80 ? i - 80 : 0;
	print_error("texts differ at byte %zu\n--- got:\n%.200s\n--- want:\n%.200s\n", i, got + from, want + from);
	fail();
}

static struct round_report *fixture_round(struct fixture *f, int with_totals)
{
	fixture_init(f);
	return report_compute(&f->cfg, f->res, 1700000000, 1700000042.5, with_totals ? f->tot : NULL, NULL);
}

static void test_prometheus_exact(void **state)
{
	(void)state;
	struct fixture f;
	struct round_report *r = fixture_round(&f, 0);
	char *s = report_prometheus_text(r);
	assert_text(s, expect_prom_round);
	free(s);
	report_free(r);
	fixture_free(&f);
}

static void test_openmetrics_exact(void **state)
{
	(void)state;
	struct fixture f;
	struct round_report *r = fixture_round(&f, 0);
	char *s = report_openmetrics(r);
	assert_text(s, expect_om_round);
	free(s);
	report_free(r);
	fixture_free(&f);
}

static void test_totals_exact(void **state)
{
	(void)state;
	struct fixture f;
	struct round_report *r = fixture_round(&f, 1);
	char *p = report_prometheus_text(r);
	char *want = xasprintf("%s%s", expect_prom_round, expect_prom_totals_tail);
	assert_text(p, want);
	free(want);
	free(p);

	char *o = report_openmetrics(r);
	size_t body = strlen(expect_om_round) - strlen("# EOF\n");
	want = xasprintf("%.*s%s", (int)body, expect_om_round, expect_om_totals_tail);
	assert_text(o, want);
	free(want);
	free(o);
	report_free(r);
	fixture_free(&f);
}

/* Every sample line of family `name` (exact sample name before '{'). */
static size_t sample_lines(const char *text, const char *name, char lines[][256], size_t max)
{
	size_t n = 0, len = strlen(name);
	for (const char *p = text; *p; ) {
		const char *e = strchr(p, '\n');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (strncmp(p, name, len) == 0 && p[len] == '{' && n < max && l < 256) {
			memcpy(lines[n], p, l);
			lines[n][l] = 0;
			n++;
		}
		p += l + (e ? 1 : 0);
	}
	return n;
}

static void test_histogram_cumulative(void **state)
{
	(void)state;
	struct fixture f;
	struct round_report *r = fixture_round(&f, 1);
	/* A store that is not cumulative must still give a valid histogram. */
	f.tot[0].bucket[5] = 7;   /* lower than bucket 4 (38) */
	for (int om = 0; om < 2; om++) {
		char *s = om ? report_openmetrics(r) : report_prometheus_text(r);
		char lines[64][256];
		size_t n = sample_lines(s, "inboxprobe_delivery_latency_seconds_bucket", lines, 64);
		assert_int_equal(n, 2 * (STATE_NBUCKETS + 1));
		double prev = -1;
		for (size_t i = 0; i <= STATE_NBUCKETS; i++) {
			const char *v = strrchr(lines[i], ' ') + 1;
			double x = strtod(v, NULL);
			assert_true(x >= prev);
			prev = x;
		}
		assert_non_null(strstr(lines[STATE_NBUCKETS], "le=\"+Inf\"} 43"));
		assert_non_null(strstr(s, "inboxprobe_delivery_latency_seconds_count{config=\"otp\",provider=\"gmail\"} 43\n"));
		assert_non_null(strstr(lines[5], om ? "le=\"30.0\"} 38" : "le=\"30\"} 38"));
		free(s);
	}
	/* +Inf is never below the last bucket. */
	f.tot[0].hist_count = 2;
	char *s = report_prometheus_text(r);
	assert_non_null(strstr(s, "provider=\"gmail\",le=\"+Inf\"} 43\n"));
	assert_non_null(strstr(s, "inboxprobe_delivery_latency_seconds_count{config=\"otp\",provider=\"gmail\"} 43\n"));
	free(s);
	report_free(r);
	fixture_free(&f);
}

/* Issue 12 section 6 / docs/SPEC.md "Metrics": the window summary's _sum
 * and _count are the cumulative totals and never go down, whatever the
 * window does; its quantiles stay over the window. */
static void test_window_summary_cumulative(void **state)
{
	(void)state;
	struct fixture f;
	struct round_report *r = fixture_round(&f, 1);
	static const char sum[] = "inboxprobe_delivery_latency_window_seconds_sum{config=\"otp\",provider=\"gmail\"} ";
	static const char cnt[] = "inboxprobe_delivery_latency_window_seconds_count{config=\"otp\",provider=\"gmail\"} ";
	static const char q99[] = "inboxprobe_delivery_latency_window_seconds{config=\"otp\",provider=\"gmail\",quantile=\"0.99\"} ";
	char *s = report_prometheus_text(r);

	/* round 1: window 1.5, 4, 12.5, 90; 43 observations, 350.5 s in all */
	assert_non_null(strstr(s, q99));
	assert_non_null(strstr(s, "quantile=\"0.99\"} 90\n"));
	assert_non_null(strstr(s, "_sum{config=\"otp\",provider=\"gmail\"} 350.5\n"));
	assert_non_null(strstr(s, "window_seconds_count{config=\"otp\",provider=\"gmail\"} 43\n"));
	free(s);

	/* round 2: the slow samples left the window (one sample, 2 s), one new
	 * observation: quantiles fall, _sum and _count grow */
	f.win[0] = 2;
	f.tot[0].window_samples = 1;
	f.tot[0].hist_count = 44;
	f.tot[0].bucket[STATE_NBUCKETS - 1] = 44;
	f.tot[0].hist_sum = 352.5;
	s = report_openmetrics(r);
	assert_non_null(strstr(s, "quantile=\"0.99\"} 2\n"));
	char *p = strstr(s, sum);
	assert_non_null(p);
	assert_true(strtod(p + strlen(sum), NULL) == 352.5);
	p = strstr(s, cnt);
	assert_non_null(p);
	assert_int_equal(strtoull(p + strlen(cnt), NULL, 10), 44);
	free(s);

	/* a store whose totals began after its oldest window rows: never
	 * below what the window itself holds */
	f.win[0] = 1.5; f.win[1] = 4; f.win[2] = 12.5; f.win[3] = 90;
	f.tot[0].window_samples = 4;
	memset(f.tot[0].bucket, 0, sizeof(f.tot[0].bucket));
	f.tot[0].hist_count = 1;
	f.tot[0].hist_sum = 3;
	s = report_prometheus_text(r);
	assert_non_null(strstr(s, "window_seconds_sum{config=\"otp\",provider=\"gmail\"} 108\n"));
	assert_non_null(strstr(s, "window_seconds_count{config=\"otp\",provider=\"gmail\"} 4\n"));
	free(s);
	report_free(r);
	fixture_free(&f);
}

static void test_counters_from_totals(void **state)
{
	(void)state;
	struct fixture f;
	struct round_report *r = fixture_round(&f, 1);
	f.tot[0].probes[OUTCOME_INBOX] = 18446744073709551615ULL / 4096;   /* large, still exact in a double */
	f.tot[1].late_spam = 3;
	char *p = report_prometheus_text(r);
	char *o = report_openmetrics(r);
	assert_non_null(strstr(p, "inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"inbox\"} 4503599627370495\n"));
	assert_non_null(strstr(o, "inboxprobe_probes_total{config=\"otp\",provider=\"gmail\",outcome=\"inbox\"} 4503599627370495\n"));
	assert_non_null(strstr(p, "inboxprobe_late_arrivals_total{config=\"otp\",provider=\"outlook\",folder=\"spam\"} 3\n"));
	assert_non_null(strstr(p, "# TYPE inboxprobe_probes_total counter\n"));
	assert_non_null(strstr(o, "# TYPE inboxprobe_probes counter\n"));
	assert_null(strstr(o, "# TYPE inboxprobe_probes_total"));
	free(p);
	free(o);
	report_free(r);
	fixture_free(&f);
}

static void test_label_escaping(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	f.seeds[0].address = "we\"ird\\seed\nx@example.org";
	f.seeds[1].address = "bad\xFFutf8@example.org";
	f.cfg.name = "c\xC3\xA9";   /* valid UTF-8 passes */
	struct round_report *r = report_compute(&f.cfg, f.res, 1700000000, 1700000042.5, NULL, NULL);
	for (int om = 0; om < 2; om++) {
		char *s = om ? report_openmetrics(r) : report_prometheus_text(r);
		assert_non_null(strstr(s, "inboxprobe_probe_outcome{config=\"c\xC3\xA9\",seed=\"we\\\"ird\\\\seed\\nx@example.org\","
		                          "provider=\"gmail\",outcome=\"inbox\"} 1\n"));
		assert_non_null(strstr(s, "seed=\"bad\xEF\xBF\xBDutf8@example.org\""));
		/* no raw newline inside a sample line: every line starts with # or the prefix */
		for (const char *p = s; *p; p = strchr(p, '\n') + 1) {
			assert_true(*p == '#' || strncmp(p, "inboxprobe_", 11) == 0);
			if (!strchr(p, '\n'))
				break;
		}
		free(s);
	}
	report_free(r);
	fixture_free(&f);
}

static void test_comma_locale(void **state)
{
	(void)state;
	const char *names[] = { "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "nl_NL.UTF-8", "ru_RU.UTF-8" };
	const char *got = NULL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !got; i++)
		if (setlocale(LC_NUMERIC, names[i]) != NULL)
			got = names[i];
	if (got == NULL || strcmp(localeconv()->decimal_point, ",") != 0) {
		setlocale(LC_NUMERIC, "C");
		print_message("no comma-decimal locale installed (apt-get install locales; locale-gen de_DE.UTF-8): "
		              "skipping the LC_NUMERIC case\n");
		skip();
	}
	struct fixture f;
	struct round_report *r = fixture_round(&f, 1);
	char *p = report_prometheus_text(r);
	char *o = report_openmetrics(r);
	char *j = report_json(r);
	setlocale(LC_NUMERIC, "C");
	char *want = xasprintf("%s%s", expect_prom_round, expect_prom_totals_tail);
	assert_text(p, want);
	free(want);
	assert_non_null(strstr(o, "le=\"1800.0\""));
	assert_non_null(strstr(o, "inboxprobe_round_duration_seconds{config=\"otp\"} 42.5\n"));
	assert_non_null(strstr(j, "\"duration_seconds\":42.5"));
	free(p);
	free(o);
	free(j);
	report_free(r);
	fixture_free(&f);
}

static void test_no_duplicate_series(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	f.seeds[1].address = "a@gmail.example";   /* same address and provider as seed 0 */
	struct round_report *r = report_compute(&f.cfg, f.res, 1700000000, 1700000042.5, NULL, NULL);
	char *s = report_prometheus_text(r);
	char lines[64][256];
	size_t n = sample_lines(s, "inboxprobe_probe_outcome", lines, 64);
	assert_int_equal(n, 12);   /* 2 distinct seeds x 6 outcomes */
	for (size_t i = 0; i < n; i++)
		for (size_t k = i + 1; k < n; k++) {
			/* series identity: the text before the value */
			size_t li = (size_t)(strrchr(lines[i], ' ') - lines[i]);
			size_t lk = (size_t)(strrchr(lines[k], ' ') - lines[k]);
			assert_false(li == lk && memcmp(lines[i], lines[k], li) == 0);
		}
	free(s);
	report_free(r);
	fixture_free(&f);
}

/* Verdicts, hop delays and Gmail tabs (issue 11), byte for byte in both
 * encoders: a found probe with merged verdicts (a method with two results
 * gives two series, duplicates one), a relay stage that ran backwards
 * (clock skew, kept negative), a receiving stage missing (absent, not 0);
 * the missing probe has none of these series. */
static const char expect_trace_block[] =
	"# HELP inboxprobe_auth_result 1 for each authentication verdict (RFC 8601 method and result) the receiving provider wrote into the found probe and inboxprobe trusted.\n"
	"# TYPE inboxprobe_auth_result gauge\n"
	"inboxprobe_auth_result{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",method=\"spf\",result=\"pass\"} 1\n"
	"inboxprobe_auth_result{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",method=\"dkim\",result=\"fail\"} 1\n"
	"inboxprobe_auth_result{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",method=\"dkim\",result=\"pass\"} 1\n"
	"# HELP inboxprobe_hop_delay_seconds Time the found probe spent in a stage of its path, from its Received fields: relay (the relay's queue until the next hop), receiving (from there to delivery). Negative: clock skew between the hosts. Absent when a date or hop is missing.\n"
	"# TYPE inboxprobe_hop_delay_seconds gauge\n"
	"inboxprobe_hop_delay_seconds{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",stage=\"relay\"} -3\n"
	"# HELP inboxprobe_probe_tab 1 with the Gmail tab (category) of the inbox probe: primary, promotions, social, updates, forums, or unknown when categories are off.\n"
	"# TYPE inboxprobe_probe_tab gauge\n"
	"inboxprobe_probe_tab{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",tab=\"promotions\"} 1\n"
	"# HELP inboxprobe_tab_ratio Share of the provider's inbox probes in each Gmail tab, over the probes whose tab is known; absent when none is known.\n"
	"# TYPE inboxprobe_tab_ratio gauge\n"
	"inboxprobe_tab_ratio{config=\"otp\",provider=\"gmail\",tab=\"primary\"} 0\n"
	"inboxprobe_tab_ratio{config=\"otp\",provider=\"gmail\",tab=\"promotions\"} 1\n"
	"inboxprobe_tab_ratio{config=\"otp\",provider=\"gmail\",tab=\"social\"} 0\n"
	"inboxprobe_tab_ratio{config=\"otp\",provider=\"gmail\",tab=\"updates\"} 0\n"
	"inboxprobe_tab_ratio{config=\"otp\",provider=\"gmail\",tab=\"forums\"} 0\n";

static void set_verdict(struct probe_trace *t, const char *m, const char *res)
{
	xstrlcpy(t->auth[t->nauth].method, m, sizeof t->auth[0].method);
	xstrlcpy(t->auth[t->nauth].result, res, sizeof t->auth[0].result);
	t->nauth++;
}

static void test_trace_series_exact(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	struct probe_trace *t = &f.res[0].trace;
	t->fetched = 1;
	set_verdict(t, "spf", "pass");
	set_verdict(t, "dkim", "fail");
	set_verdict(t, "dkim", "pass");
	set_verdict(t, "spf", "pass");   /* a second field said the same */
	t->have_relay = 1;
	t->stage_relay = -3;
	xstrlcpy(t->tab, "promotions", sizeof t->tab);
	struct round_report *r = report_compute(&f.cfg, f.res, 1700000000, 1700000042.5, NULL, NULL);
	char *p = report_prometheus_text(r);
	assert_non_null(strstr(p, expect_trace_block));
	assert_null(strstr(p, "stage=\"receiving\""));
	assert_null(strstr(p, "b@gmail.example\",provider=\"gmail\",method"));
	char *o = report_openmetrics(r);
	assert_non_null(strstr(o, "inboxprobe_hop_delay_seconds{config=\"otp\",seed=\"a@gmail.example\",provider=\"gmail\",stage=\"relay\"} -3\n"));
	assert_non_null(strstr(o, "# TYPE inboxprobe_hop_delay_seconds gauge\n# UNIT inboxprobe_hop_delay_seconds seconds\n"));
	free(p);
	free(o);
	report_free(r);
	/* with a state store: auth_results_total from the totals, in their order */
	static struct state_auth_count ac[2] = { { "dkim", "fail", 3 }, { "dkim", "pass", 40 } };
	f.tot[0].auth = ac;
	f.tot[0].nauth = 2;
	r = report_compute(&f.cfg, f.res, 1700000000, 1700000042.5, f.tot, NULL);
	p = report_prometheus_text(r);
	assert_non_null(strstr(p,
		"# HELP inboxprobe_auth_results_total Trusted authentication verdicts of found probes, by RFC 8601 method and result, counted at the end of their round.\n"
		"# TYPE inboxprobe_auth_results_total counter\n"
		"inboxprobe_auth_results_total{config=\"otp\",provider=\"gmail\",method=\"dkim\",result=\"fail\"} 3\n"
		"inboxprobe_auth_results_total{config=\"otp\",provider=\"gmail\",method=\"dkim\",result=\"pass\"} 40\n"
		"# HELP inboxprobe_late_arrivals_total"));
	o = report_openmetrics(r);
	assert_non_null(strstr(o, "# TYPE inboxprobe_auth_results counter\n"));
	assert_non_null(strstr(o, "inboxprobe_auth_results_total{config=\"otp\",provider=\"gmail\",method=\"dkim\",result=\"pass\"} 40\n"));
	free(p);
	free(o);
	report_free(r);
	/* without any trace the four families are absent altogether */
	fixture_init(&f);
	r = report_compute(&f.cfg, f.res, 1700000000, 1700000042.5, NULL, NULL);
	p = report_prometheus_text(r);
	assert_null(strstr(p, "auth_result"));
	assert_null(strstr(p, "hop_delay"));
	assert_null(strstr(p, "tab"));
	free(p);
	report_free(r);
}

static void test_last_run_success(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	f.res[1].outcome = OUTCOME_INBOX;         /* gmail 2/2 inbox */
	f.res[1].have_latency = 1;
	f.res[1].latency = 3;
	f.res[2].outcome = OUTCOME_INBOX;         /* outlook measured */
	struct round_report *r = report_compute(&f.cfg, f.res, 1700000000, 1700000042.5, NULL, NULL);
	assert_int_equal(report_exit_code(r), 0);
	char *s = report_prometheus_text(r);
	assert_non_null(strstr(s, "inboxprobe_last_run_success{config=\"otp\"} 1\n"));
	free(s);
	/* issue 12 section 6: a report file that failed (before or after this
	 * one) changes only the exit code: every file says the same */
	r->report_write_failed = 1;
	s = report_openmetrics(r);
	assert_non_null(strstr(s, "inboxprobe_last_run_success{config=\"otp\"} 1\n"));
	free(s);
	s = report_json(r);
	assert_non_null(strstr(s, "\"exit_code\":0"));
	assert_null(strstr(s, "report_write_failed"));
	free(s);
	assert_int_equal(report_process_code(r, 0), 3);
	report_free(r);
	/* the state store failed: known before computing, so every file says 0 */
	struct report_status st = { .state_failed = 1 };
	r = report_compute(&f.cfg, f.res, 1700000000, 1700000042.5, NULL, &st);
	s = report_prometheus_text(r);
	assert_non_null(strstr(s, "inboxprobe_last_run_success{config=\"otp\"} 0\n"));
	free(s);
	report_free(r);
	fixture_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prometheus_exact),
		cmocka_unit_test(test_openmetrics_exact),
		cmocka_unit_test(test_totals_exact),
		cmocka_unit_test(test_histogram_cumulative),
		cmocka_unit_test(test_window_summary_cumulative),
		cmocka_unit_test(test_counters_from_totals),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_comma_locale),
		cmocka_unit_test(test_no_duplicate_series),
		cmocka_unit_test(test_last_run_success),
		cmocka_unit_test(test_trace_series_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
