/*
 * bench_report.c - how long rendering the metrics of a large seed list
 * takes. Prints figures; asserts nothing about time.
 *
 * Usage: bench_report [SEEDS [RENDERS]]   (default 1000 seeds, 50 renders)
 * Seeds are spread over 10 providers; totals carry a full histogram and a
 * window of 300 samples per provider, as a state store would give.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/model.h"
#include "common/util.h"
#include "reports/report.h"
#include "scheduler/state.h"
#include "seeds/config.h"

#define NPROV 10

static unsigned int rng = 777;
static unsigned int lcg(void)
{
	rng = rng * 1103515245u + 12345u;
	return (rng >> 16) & 0x7fff;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void bench(const char *label, char *(*encode)(const struct round_report *),
                  const struct round_report *rep, long renders)
{
	size_t len = 0;
	double t0 = now_mono(), t1;

	for (long i = 0; i < renders; i++) {
		char *s = encode(rep);
		len = strlen(s);
		free(s);
	}
	t1 = now_mono();
	printf("%-22s %8.1f us per render, %zu bytes\n", label, (t1 - t0) * 1e6 / (double)renders, len);
}

int main(int argc, char **argv)
{
	long nseeds = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
	long renders = argc > 2 ? strtol(argv[2], NULL, 10) : 50;
	struct config cfg;
	struct probe_result *res;
	struct state_totals *tot;
	struct round_report *rep;
	struct rusage ru;
	double started = 1700000000.0;

	if (nseeds < 1 || nseeds > 1000000 || renders < 1) {
		fprintf(stderr, "usage: bench_report [SEEDS [RENDERS]]\n");
		return 2;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.file = xstrdup("bench.conf");
	cfg.name = xstrdup("bench");
	cfg.slo.min_inbox_ratio = 0.9;
	cfg.slo.max_latency_p99 = 300;
	cfg.slo.max_missing = -1;
	cfg.slo.window = 3600;
	cfg.slo.min_samples = 1;
	cfg.nproviders = NPROV;
	cfg.providers = xcalloc(NPROV, sizeof(char *));
	for (int p = 0; p < NPROV; p++)
		cfg.providers[p] = xasprintf("provider%d", p);
	cfg.nseeds = (size_t)nseeds;
	cfg.seeds = xcalloc((size_t)nseeds, sizeof(*cfg.seeds));
	res = xcalloc((size_t)nseeds, sizeof(*res));
	for (long i = 0; i < nseeds; i++) {
		struct probe_result *r = &res[i];
		unsigned int roll = lcg() % 100;

		cfg.seeds[i].provider = cfg.providers[i % NPROV];
		cfg.seeds[i].address = xasprintf("seed%ld@%s.example", i, cfg.seeds[i].provider);
		r->seed_index = (size_t)i;
		snprintf(r->token, sizeof(r->token), "%016lx%016x", i, lcg() * 2654435761u);
		r->submit_time = started + 1 + (double)i * 0.01;
		r->attempts = 1;
		r->reply.code = 250;
		xstrlcpy(r->reply.enhanced, "2.0.0", sizeof(r->reply.enhanced));
		xstrlcpy(r->reply.text, "Ok: queued as 4Xb2Lq0ZtKz9", sizeof(r->reply.text));
		if (roll < 85) {
			r->outcome = OUTCOME_INBOX;
			xstrlcpy(r->folder, "INBOX", sizeof(r->folder));
		} else if (roll < 93) {
			r->outcome = OUTCOME_SPAM;
			xstrlcpy(r->folder, "Junk", sizeof(r->folder));
		} else if (roll < 97) {
			r->outcome = OUTCOME_MISSING;
		} else if (roll < 99) {
			r->outcome = OUTCOME_REJECTED;
			r->submit_time = 0;
			r->reply.code = 550;
			xstrlcpy(r->reply.enhanced, "5.7.1", sizeof(r->reply.enhanced));
			xstrlcpy(r->reply.text, "Message rejected \"policy\" \\ see https://example.net/why",
			         sizeof(r->reply.text));
		} else {
			r->outcome = OUTCOME_ERROR;
			r->submit_time = 0;
			r->reply.code = 0;
		}
		if (r->outcome == OUTCOME_INBOX || r->outcome == OUTCOME_SPAM) {
			r->latency = 0.5 + (double)(lcg() % 3000) / 10.0;
			r->have_latency = 1;
			r->internaldate = r->submit_time + r->latency;
			r->found_time = r->internaldate + 1.5;
			r->discovery_lag = 1.5;
		}
	}
	tot = xcalloc(NPROV, sizeof(*tot));
	for (int p = 0; p < NPROV; p++) {
		struct state_totals *t = &tot[p];

		xstrlcpy(t->provider, cfg.providers[p], sizeof(t->provider));
		for (int o = 0; o < OUTCOME__COUNT; o++)
			t->probes[o] = 1000 * (unsigned long long)(OUTCOME__COUNT - o);
		t->late_inbox = 12;
		t->late_spam = 3;
		t->window_samples = 300;
		t->window_latencies = xcalloc(t->window_samples, sizeof(double));
		for (size_t i = 0; i < t->window_samples; i++) {
			double v = (double)(lcg() % 40000) / 10.0;
			t->window_latencies[i] = v;
			t->hist_sum += v;
			t->hist_count++;
			for (int b = 0; b < STATE_NBUCKETS; b++)
				if (v <= state_buckets[b])
					t->bucket[b]++;
		}
		qsort(t->window_latencies, t->window_samples, sizeof(double), cmp_double);
		for (size_t i = 0; i < t->window_samples; i++)
			t->window_outcomes[i % OUTCOME__COUNT]++;
	}

	rep = report_compute(&cfg, res, started, started + 120, tot, NULL);
	printf("report: %ld seeds, %d providers, %ld renders each\n", nseeds, NPROV, renders);
	bench("report_prometheus_text", report_prometheus_text, rep, renders);
	bench("report_openmetrics", report_openmetrics, rep, renders);
	bench("report_json", report_json, rep, renders);
	bench("report_junit", report_junit, rep, renders);
	report_free(rep);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		printf("peak RSS: %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);

	state_totals_free(tot, NPROV);
	for (long i = 0; i < nseeds; i++)
		free(cfg.seeds[i].address);
	free(cfg.seeds);
	for (int p = 0; p < NPROV; p++)
		free(cfg.providers[p]);
	free(cfg.providers);
	free(cfg.name);
	free(cfg.file);
	free(res);
	return 0;
}
