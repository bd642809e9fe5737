/*
 * report.c - per-provider figures, SLO gates and exit codes (docs/SPEC.md
 * "Outcomes", "Gates and exit codes"), and the atomic report writer.
 *
 * Decisions where docs/SPEC.md is silent (also in docs/json-report.md):
 * - A provider with no measured probe (measured == 0) has all five shares
 *   0; its min_inbox_ratio and max_missing gates are not evaluated ("no
 *   measured probes"), so they neither pass nor fail.
 * - The p99 gate needs at least max(min_samples, 1) latency samples.
 * - With slo.evaluate = "window" and a state store, the gate figures come
 *   from the window (window_outcomes, window_latencies); without a store
 *   the round is used.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "prober/authres.h"
#include "prober/trace.h"
#include "reports/report.h"

const char *slo_gate_name(enum slo_gate g)
{
	switch (g) {
	case SLO_MIN_INBOX_RATIO: return "min_inbox_ratio";
	case SLO_MAX_LATENCY_P99: return "max_latency_p99";
	case SLO_MAX_MISSING: return "max_missing";
	case SLO_REQUIRE_AUTH: return "require_auth";
	case SLO_MIN_PRIMARY_RATIO: return "min_primary_ratio";
	default: return "unknown";
	}
}

double quantile_nearest_rank(const double *sorted, size_t n, double q)
{
	if (sorted == NULL || n == 0 || !(q > 0.0) || q > 1.0)
		return NAN;
	/* rank = ceil(q * n), 1-based. q*n is computed in double; a product
	 * like 0.95 * 100 = 95.00000000000001 must give 95, not 96, so
	 * remove a relative rounding error before ceil(). */
	double x = q * (double)n;
	double r = ceil(x - 1e-9 * x);
	size_t rank = r < 1.0 ? 1 : (size_t)r;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

int report_provider_index(const struct config *cfg, const char *provider)
{
	if (cfg == NULL || provider == NULL)
		return -1;
	for (size_t i = 0; i < cfg->nproviders; i++)
		if (cfg->providers[i] != NULL && strcmp(cfg->providers[i], provider) == 0)
			return (int)i;
	return -1;
}

const char *const report_tab_names[TAB__COUNT] = {
	"primary", "promotions", "social", "updates", "forums"
};

int report_tab_index(const char *tab)
{
	for (int i = 0; tab && i < TAB__COUNT; i++)
		if (strcmp(tab, report_tab_names[i]) == 0)
			return i;
	return -1;
}

int report_auth_check(const struct probe_result *res, unsigned require, char *buf, size_t bufsz)
{
	int missing = 0;
	buf[0] = '\0';
	for (int m = 0; m < AUTH_REQ_METHODS; m++) {
		int passed;
		if (!(require & (1u << m)))
			continue;
		if (!trace_method_verdict(&res->trace, config_auth_methods[m], &passed)) {
			if (!missing)
				snprintf(buf, bufsz, "%s: no trusted verdict%s%s%s", config_auth_methods[m],
				         res->trace.note[0] ? " (" : "", res->trace.note,
				         res->trace.note[0] ? ")" : "");
			missing = 1;
			continue;
		}
		if (passed)
			continue;
		for (int i = 0; i < res->trace.nauth; i++)
			if (strcmp(res->trace.auth[i].method, config_auth_methods[m]) == 0) {
				authres_format(&res->trace.auth[i], buf, bufsz);
				break;
			}
		return 1;
	}
	return missing ? -1 : 0;
}

int report_found(const struct probe_result *res)
{
	return res->outcome == OUTCOME_INBOX || res->outcome == OUTCOME_SPAM;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void not_evaluated(struct gate_result *g, double threshold, const char *reason)
{
	g->evaluated = 0;
	g->ok = 0;
	g->value = NAN;
	g->threshold = threshold;
	xstrlcpy(g->reason, reason, sizeof(g->reason));
}

/* Evaluate the three gates for one provider from the given figures. */
static void eval_gates(struct provider_report *p, const struct slo_conf *slo,
                       const size_t *n, const double *lat, size_t nlat)
{
	size_t measured = 0;
	for (int o = 0; o < OUTCOME_ERROR; o++)
		measured += n[o];

	struct gate_result *g = &p->gate[SLO_MIN_INBOX_RATIO];
	if (measured == 0) {
		not_evaluated(g, slo->min_inbox_ratio, "no measured probes");
	} else {
		g->evaluated = 1;
		g->value = (double)n[OUTCOME_INBOX] / (double)measured;
		g->threshold = slo->min_inbox_ratio;
		g->ok = g->value >= g->threshold;
	}

	g = &p->gate[SLO_MAX_LATENCY_P99];
	long need = slo->min_samples > 1 ? slo->min_samples : 1;
	if (nlat < (size_t)need) {
		char why[128];
		snprintf(why, sizeof(why), "%zu latency samples, fewer than min_samples %ld", nlat, need);
		not_evaluated(g, slo->max_latency_p99, why);
	} else {
		g->evaluated = 1;
		g->value = quantile_nearest_rank(lat, nlat, 0.99);
		g->threshold = slo->max_latency_p99;
		g->ok = g->value <= g->threshold;
	}

	g = &p->gate[SLO_MAX_MISSING];
	if (slo->max_missing < 0) {
		not_evaluated(g, NAN, "max_missing not set");
	} else if (measured == 0) {
		not_evaluated(g, (double)slo->max_missing, "no measured probes");
	} else {
		g->evaluated = 1;
		g->value = (double)n[OUTCOME_MISSING];
		g->threshold = (double)slo->max_missing;
		g->ok = n[OUTCOME_MISSING] <= (size_t)slo->max_missing;
	}
}

/* require_auth over this round's found probes of provider p (always the
 * round: verdicts are not kept in the state store). */
static void eval_auth_gate(struct provider_report *p, const struct config *cfg,
                           const struct probe_result *results, unsigned require)
{
	struct gate_result *g = &p->gate[SLO_REQUIRE_AUTH];
	size_t found = 0, failed = 0, missing = 0;
	char buf[256];

	if (require == 0) {
		not_evaluated(g, NAN, "require_auth not set");
		return;
	}
	for (size_t i = 0; i < cfg->nseeds; i++) {
		if (cfg->seeds[i].provider == NULL || strcmp(cfg->seeds[i].provider, p->provider) != 0 ||
		    !report_found(&results[i]))
			continue;
		found++;
		int c = report_auth_check(&results[i], require, buf, sizeof buf);
		failed += c > 0;
		missing += c < 0;
	}
	if (failed > 0 || (found > 0 && missing == 0)) {
		g->evaluated = 1;
		g->value = (double)failed;
		g->threshold = 0;
		g->ok = failed == 0;
	} else if (found == 0) {
		not_evaluated(g, 0, "no found probes");
	} else {
		char why[128];
		snprintf(why, sizeof why, "%zu found probe%s without a trusted verdict", missing,
		         missing == 1 ? "" : "s");
		not_evaluated(g, 0, why);
	}
}

static void eval_tab_gate(struct provider_report *p, const struct slo_conf *slo)
{
	struct gate_result *g = &p->gate[SLO_MIN_PRIMARY_RATIO];
	if (!(slo->min_primary_ratio > 0)) {
		not_evaluated(g, NAN, "min_primary_ratio not set");
	} else if (p->tab_known == 0) {
		not_evaluated(g, slo->min_primary_ratio, "no inbox probe with a known tab");
	} else {
		g->evaluated = 1;
		g->value = (double)p->tab_n[0] / (double)p->tab_known;
		g->threshold = slo->min_primary_ratio;
		g->ok = g->value >= g->threshold;
	}
}

struct round_report *report_compute(const struct config *cfg, const struct probe_result *results,
                                    double started, double ended,
                                    const struct state_totals *totals,
                                    const struct report_status *status)
{
	struct round_report *r = xcalloc(1, sizeof(*r));
	size_t np = cfg ? cfg->nproviders : 0;
	size_t ns = cfg ? cfg->nseeds : 0;

	r->cfg = cfg;
	r->results = results;
	r->started = started;
	r->ended = ended;
	r->totals = totals;
	if (status != NULL) {
		r->state_failed = status->state_failed;
		r->interrupted = status->interrupted;
		r->bounce_error = status->bounce_error;
	}
	r->providers = xcalloc(np ? np : 1, sizeof(*r->providers));
	r->window_basis = cfg && cfg->slo.evaluate_window && totals != NULL;

	double *lat = xcalloc(ns ? ns : 1, sizeof(double));
	for (size_t pi = 0; pi < np; pi++) {
		struct provider_report *p = &r->providers[pi];
		size_t nlat = 0;

		p->provider = cfg->providers[pi];
		p->totals = totals ? &totals[pi] : NULL;
		for (size_t i = 0; i < ns && results; i++) {
			const struct probe_result *res = &results[i];
			if (cfg->seeds[i].provider == NULL || strcmp(cfg->seeds[i].provider, p->provider) != 0)
				continue;
			int o = (int)res->outcome;
			if (o < 0 || o >= OUTCOME__COUNT)
				o = OUTCOME_ERROR;   /* a corrupt outcome is not a measurement */
			p->n[o]++;
			if (o != OUTCOME_ERROR)
				p->measured++;
			if (report_found(res) && res->have_latency && isfinite(res->latency))
				lat[nlat++] = res->latency;
			int ti = res->outcome == OUTCOME_INBOX ? report_tab_index(res->trace.tab) : -1;
			if (ti >= 0) {
				p->tab_n[ti]++;
				p->tab_known++;
			}
		}
		for (int o = 0; o < OUTCOME_ERROR; o++)
			p->share[o] = p->measured ? (double)p->n[o] / (double)p->measured : 0.0;
		qsort(lat, nlat, sizeof(double), cmp_double);
		p->samples = nlat;
		p->p50 = quantile_nearest_rank(lat, nlat, 0.50);
		p->p95 = quantile_nearest_rank(lat, nlat, 0.95);
		p->p99 = quantile_nearest_rank(lat, nlat, 0.99);

		struct slo_conf slo = config_slo_for(cfg, p->provider);
		if (r->window_basis) {
			const struct state_totals *t = &totals[pi];
			eval_gates(p, &slo, t->window_outcomes, t->window_latencies,
			           t->window_latencies ? t->window_samples : 0);
		} else {
			eval_gates(p, &slo, p->n, lat, nlat);
		}
		if (results)
			eval_auth_gate(p, cfg, results, slo.require_auth);
		else
			not_evaluated(&p->gate[SLO_REQUIRE_AUTH], NAN, "no results");
		eval_tab_gate(p, &slo);
		for (int g = 0; g < SLO__COUNT; g++)
			if (p->gate[g].evaluated && !p->gate[g].ok)
				r->gates_failed = 1;
		if (p->n[OUTCOME_ERROR])
			r->any_error = 1;
	}
	/* A seed whose provider is not in cfg->providers (never with a
	 * validated config) still counts as unmeasured when it erred. */
	for (size_t i = 0; i < ns && results; i++)
		if (results[i].outcome == OUTCOME_ERROR || (int)results[i].outcome < 0 ||
		    results[i].outcome >= OUTCOME__COUNT)
			r->any_error = 1;
	free(lat);
	return r;
}

void report_free(struct round_report *r)
{
	if (r == NULL)
		return;
	free(r->providers);
	free(r);
}

int report_exit_code(const struct round_report *r)
{
	if (r->gates_failed)
		return EXIT_GATE_FAILED;
	if (r->any_error || r->state_failed || r->bounce_error)
		return EXIT_UNKNOWN;
	return EXIT_GATES_OK;
}

int report_process_code(const struct round_report *r, int nagios)
{
	int code = report_exit_code(r);

	if (code == EXIT_GATES_OK && r->report_write_failed)
		code = EXIT_UNKNOWN;
	if (!nagios)
		return code;
	return code == EXIT_GATE_FAILED ? NAGIOS_CRITICAL :
	       code == EXIT_UNKNOWN ? NAGIOS_WARNING : NAGIOS_OK;
}

int report_write(const struct round_report *r, const char *path,
                 char *(*encode)(const struct round_report *), char **errstr)
{
	char *data = encode(r);
	int rc;

	if (data == NULL) {
		*errstr = xasprintf("%s: could not encode the report", path);
		return -1;
	}
	rc = write_file_atomic(path, data, strlen(data), errstr);
	free(data);
	return rc;
}
