/*
 * reportgen - write every report of a realistic, fixed round (fake
 * results, fake state store totals) into a directory, so that real
 * consumers (promtool, node_exporter, the OpenMetrics parser, xmllint,
 * python's json) can check them. Used by tests/e2e/reports_consumers.sh.
 *
 * usage: reportgen DIR [--no-totals] [--window]
 * Writes DIR/inboxprobe.prom, DIR/inboxprobe.om.txt, DIR/inboxprobe.json,
 * DIR/inboxprobe.junit.xml, DIR/summary.txt, DIR/nagios.txt.
 * Prints the exit code the round would have. Exit 0, or 2 on error.
 */
#include <config.h>

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "reports/report.h"

struct seed_def {
	const char *address, *provider;
	enum outcome outcome;
	const char *folder;
	double latency;         /* < 0: not found */
	int code;
	const char *enhanced, *text, *queue_id, *stage, *diagnostic;
};

static const struct seed_def defs[] = {
	{ "seed1@gmail.example", "gmail", OUTCOME_INBOX, "INBOX", 4.0, 250, "2.0.0", "Ok: queued as 4SbQ1x0Ymz", "4SbQ1x0Ymz", "data", "" },
	{ "seed2@gmail.example", "gmail", OUTCOME_SPAM, "[Gmail]/Spam", 17.0, 250, "2.0.0", "Ok: queued as 4SbQ1x1Abc", "4SbQ1x1Abc", "data", "" },
	{ "seed3@gmail.example", "gmail", OUTCOME_INBOX, "INBOX", 2.0, 250, "2.0.0", "Ok: queued as 4SbQ1x2Def", "4SbQ1x2Def", "data", "" },
	{ "seed1@outlook.example", "outlook", OUTCOME_MISSING, "", -1, 250, "2.0.0", "Ok: queued as 4SbQ1x3Ghi", "4SbQ1x3Ghi", "data",
	  "accepted by the relay, not found by the deadline" },
	{ "seed2@outlook.example", "outlook", OUTCOME_REJECTED, "", -1, 550, "5.7.1",
	  "Service unavailable, Client host [192.0.2.1] blocked using Spamhaus", "", "rcpt",
	  "5.7.1 delivery not authorized, message refused" },
	{ "\"odd\\\"seed\"@example.org", "local \"lab\"", OUTCOME_INBOX, "Courrier ind\xC3\xA9sirable", 1.5, 250, "", "queued\nsecond line",
	  "", "data", "" },
	{ "seed1@yahoo.example", "yahoo", OUTCOME_ERROR, "", -1, 0, "", "", "", "",
	  "IMAP login failed: NO [AUTHENTICATIONFAILED] Authentication failed." },
	{ "seed2@yahoo.example", "yahoo", OUTCOME_DEFERRED, "", -1, 451, "4.7.1", "Please try again later", "", "rcpt",
	  "4.7.1 greylisted" },
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))

static int write_one(struct round_report *r, const char *dir, const char *name,
                     char *(*enc)(const struct round_report *))
{
	char *path = xasprintf("%s/%s", dir, name);
	char *err = NULL;
	int rc = report_write(r, path, enc, &err);
	if (rc != 0) {
		fprintf(stderr, "reportgen: %s\n", err);
		free(err);
	}
	free(path);
	return rc;
}

int main(int argc, char **argv)
{
	int with_totals = 1, window = 0, rc = 0;
	if (argc < 2) {
		fprintf(stderr, "usage: reportgen DIR [--no-totals] [--window]\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--no-totals") == 0)
			with_totals = 0;
		else if (strcmp(argv[i], "--window") == 0)
			window = 1;
	}
	/* Whatever the environment's locale, the files must not change. */
	setlocale(LC_ALL, "");

	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.name = "otp";
	cfg.slo.min_inbox_ratio = 0.5;
	cfg.slo.max_latency_p99 = 300;
	cfg.slo.max_missing = 0;
	cfg.slo.evaluate_window = window;
	cfg.slo.window = 3600;
	cfg.slo.min_samples = 1;
	struct slo_override ov = { .provider = "gmail", .has_min_inbox_ratio = 1, .min_inbox_ratio = 0.95 };
	cfg.slo_overrides = &ov;
	cfg.nslo_overrides = 1;
	cfg.nseeds = NDEFS;
	cfg.seeds = xcalloc(NDEFS, sizeof(*cfg.seeds));
	cfg.providers = xcalloc(NDEFS, sizeof(char *));
	struct probe_result *res = xcalloc(NDEFS, sizeof(*res));
	double t0 = 1700000000.0;

	for (size_t i = 0; i < NDEFS; i++) {
		const struct seed_def *d = &defs[i];
		cfg.seeds[i].address = (char *)d->address;
		cfg.seeds[i].provider = (char *)d->provider;
		int known = 0;
		for (size_t p = 0; p < cfg.nproviders; p++)
			known |= strcmp(cfg.providers[p], d->provider) == 0;
		if (!known)
			cfg.providers[cfg.nproviders++] = (char *)d->provider;

		struct probe_result *r = &res[i];
		r->seed_index = i;
		snprintf(r->token, sizeof(r->token), "%08zx0123456789abcdef01234567", i * 2654435761u % 0xffffffffu);
		r->attempts = d->code >= 400 && d->code < 500 ? 3 : 1;
		r->outcome = d->outcome;
		r->reply.code = d->code;
		xstrlcpy(r->reply.enhanced, d->enhanced, sizeof(r->reply.enhanced));
		xstrlcpy(r->reply.text, d->text, sizeof(r->reply.text));
		xstrlcpy(r->reply.queue_id, d->queue_id, sizeof(r->reply.queue_id));
		xstrlcpy(r->reply.stage, d->stage, sizeof(r->reply.stage));
		xstrlcpy(r->diagnostic, d->diagnostic, sizeof(r->diagnostic));
		if (d->code == 250)
			r->submit_time = t0 + 0.5 + (double)i * 0.125;
		if (d->latency >= 0) {
			xstrlcpy(r->folder, d->folder, sizeof(r->folder));
			r->internaldate = r->submit_time + d->latency;
			r->found_time = r->internaldate + 2.25;
			r->latency = d->latency;
			r->have_latency = 1;
			r->discovery_lag = 2.25;
			xstrlcpy(r->cleanup, "deleted", sizeof(r->cleanup));
		}
		if (d->outcome == OUTCOME_REJECTED) {
			r->dsn.present = 0;
		}
	}
	/* A DSN for the deferred seed. */
	res[7].dsn.present = 1;
	res[7].dsn.action = 2;   /* DSN_ACTION_DELAYED */
	xstrlcpy(res[7].dsn.status, "4.7.1", sizeof(res[7].dsn.status));
	xstrlcpy(res[7].dsn.remote_mta, "mx1.yahoo.example", sizeof(res[7].dsn.remote_mta));
	xstrlcpy(res[7].dsn.diagnostic, "smtp; 451 4.7.1 Please try again later", sizeof(res[7].dsn.diagnostic));

	struct state_totals *tot = NULL;
	if (with_totals) {
		tot = xcalloc(cfg.nproviders, sizeof(*tot));
		for (size_t p = 0; p < cfg.nproviders; p++) {
			struct state_totals *t = &tot[p];
			xstrlcpy(t->provider, cfg.providers[p], sizeof(t->provider));
			t->probes[OUTCOME_INBOX] = 100 + p;
			t->probes[OUTCOME_SPAM] = 7;
			t->probes[OUTCOME_MISSING] = 3;
			t->probes[OUTCOME_REJECTED] = p;
			t->probes[OUTCOME_DEFERRED] = 1;
			t->probes[OUTCOME_ERROR] = 2;
			t->late_inbox = 2;
			t->late_spam = p % 2;
			static const unsigned long long counts[STATE_NBUCKETS] = { 5, 20, 60, 90, 100, 104, 106, 108, 109, 109, 109, 110 };
			for (int b = 0; b < STATE_NBUCKETS; b++)
				t->bucket[b] = counts[b];
			t->hist_count = 111;
			t->hist_sum = 1234.5;
			if (p != 3) {
				t->window_samples = 5;
				t->window_latencies = xcalloc(5, sizeof(double));
				double w[] = { 1, 2.5, 4, 17, 40 };
				memcpy(t->window_latencies, w, sizeof(w));
			}
			t->window_outcomes[OUTCOME_INBOX] = 9;
			t->window_outcomes[OUTCOME_SPAM] = 1;
		}
	}

	struct round_report *r = report_compute(&cfg, res, t0, t0 + 61.75, tot, NULL);
	rc |= write_one(r, argv[1], "inboxprobe.prom", report_prometheus_text);
	rc |= write_one(r, argv[1], "inboxprobe.om.txt", report_openmetrics);
	rc |= write_one(r, argv[1], "inboxprobe.json", report_json);
	rc |= write_one(r, argv[1], "inboxprobe.junit.xml", report_junit);

	char *path = xasprintf("%s/summary.txt", argv[1]);
	FILE *f = fopen(path, "w");
	if (f) {
		report_summary(r, f);
		fclose(f);
	} else {
		rc = -1;
	}
	free(path);
	path = xasprintf("%s/nagios.txt", argv[1]);
	f = fopen(path, "w");
	if (f) {
		report_nagios(r, f);
		fclose(f);
	} else {
		rc = -1;
	}
	free(path);
	printf("%d\n", report_exit_code(r));

	report_free(r);
	if (tot) {
		for (size_t p = 0; p < cfg.nproviders; p++)
			free(tot[p].window_latencies);
		free(tot);
	}
	free(res);
	free(cfg.seeds);
	free(cfg.providers);
	return rc ? 2 : 0;
}
