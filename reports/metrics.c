/*
 * metrics.c - docs/SPEC.md "Metrics": one model (families of samples) built from a
 * round_report, and two encoders over it:
 *   - Prometheus text exposition format 0.0.4 (node_exporter textfile),
 *   - OpenMetrics 1.0 (https://github.com/OpenObservability/OpenMetrics,
 *     specification/OpenMetrics.md).
 *
 * Both: no timestamps, numbers in the C locale (fmt_double), label values
 * escaped (\\, \", \n) and made valid UTF-8, every family's samples
 * contiguous, HELP identical, families without samples left out.
 * The names, types and labels are documented in docs/metrics.md.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "reports/report.h"

#define PREFIX "inboxprobe_"
#define MAX_LABELS 6

enum mtype { MT_GAUGE, MT_COUNTER, MT_HISTOGRAM, MT_SUMMARY };

struct mlabel {
	const char *name;    /* static */
	char *value;         /* heap */
};

struct msample {
	const char *suffix;  /* "", "_total", "_bucket", "_sum", "_count" */
	struct mlabel label[MAX_LABELS];
	int nlabels;
	int has_le;          /* histogram bucket: le label, formatted per encoder */
	double le;
	double value;
};

struct mfamily {
	const char *name;    /* without prefix and without "_total" */
	enum mtype type;
	const char *help;
	const char *unit;    /* "seconds" or NULL */
	struct msample *s;
	size_t n, cap;
};

struct mmodel {
	struct mfamily *f;
	size_t n, cap;
	unsigned char *dup;   /* per seed: 1 when an earlier seed has its address and provider */
};

static struct mfamily *family(struct mmodel *m, const char *name, enum mtype type,
                              const char *unit, const char *help)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 16;
		m->f = xrealloc(m->f, m->cap * sizeof(*m->f));
	}
	struct mfamily *f = &m->f[m->n++];
	memset(f, 0, sizeof(*f));
	f->name = name;
	f->type = type;
	f->unit = unit;
	f->help = help;
	return f;
}

/* Add a sample; the variadic part is nlabels pairs of (name, value). */
static struct msample *sample(struct mfamily *f, const char *suffix, double value, int nlabels, ...)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 8;
		f->s = xrealloc(f->s, f->cap * sizeof(*f->s));
	}
	struct msample *s = &f->s[f->n++];
	memset(s, 0, sizeof(*s));
	s->suffix = suffix;
	s->value = value;
	va_list ap;
	va_start(ap, nlabels);
	for (int i = 0; i < nlabels && i < MAX_LABELS; i++) {
		s->label[i].name = va_arg(ap, const char *);
		const char *v = va_arg(ap, const char *);
		s->label[i].value = xstrdup(v ? v : "");
		s->nlabels++;
	}
	va_end(ap);
	return s;
}

static void model_free(struct mmodel *m)
{
	for (size_t i = 0; i < m->n; i++) {
		for (size_t j = 0; j < m->f[i].n; j++)
			for (int k = 0; k < m->f[i].s[j].nlabels; k++)
				free(m->f[i].s[j].label[k].value);
		free(m->f[i].s);
	}
	free(m->f);
	free(m->dup);
}

static const char *seed_addr(const struct round_report *r, size_t i)
{
	const char *a = r->cfg->seeds[i].address;
	return a ? a : "";
}

static const char *seed_provider(const struct round_report *r, size_t i)
{
	const char *p = r->cfg->seeds[i].provider;
	return p ? p : "";
}


/* Verdicts, hop delays and Gmail tabs of found probes (issue 11). */
static void trace_families(struct mmodel *m, const struct round_report *r)
{
	const struct config *cfg = r->cfg;
	const char *cn = cfg->name ? cfg->name : "";
	size_t ns = r->results ? cfg->nseeds : 0;
	struct mfamily *f;

	f = family(m, "auth_result", MT_GAUGE, NULL,
	           "1 for each authentication verdict (RFC 8601 method and result) the receiving provider wrote into the found probe and inboxprobe trusted.");
	for (size_t i = 0; i < ns; i++) {
		const struct probe_trace *t = &r->results[i].trace;
		if (m->dup[i] || !report_found(&r->results[i]))
			continue;
		for (int a = 0; a < t->nauth; a++) {
			int dup = 0;
			for (int b = 0; b < a; b++)
				dup |= strcmp(t->auth[a].method, t->auth[b].method) == 0 &&
				       strcmp(t->auth[a].result, t->auth[b].result) == 0;
			if (!dup)
				sample(f, "", 1, 5, "config", cn, "seed", seed_addr(r, i), "provider",
				       seed_provider(r, i), "method", t->auth[a].method, "result", t->auth[a].result);
		}
	}
	f = family(m, "hop_delay_seconds", MT_GAUGE, "seconds",
	           "Time the found probe spent in a stage of its path, from its Received fields: relay (the relay's queue until the next hop), receiving (from there to delivery). Negative: clock skew between the hosts. Absent when a date or hop is missing.");
	for (size_t i = 0; i < ns; i++) {
		const struct probe_trace *t = &r->results[i].trace;
		if (m->dup[i] || !report_found(&r->results[i]))
			continue;
		if (t->have_relay)
			sample(f, "", t->stage_relay, 4, "config", cn, "seed", seed_addr(r, i), "provider",
			       seed_provider(r, i), "stage", "relay");
		if (t->have_receiving)
			sample(f, "", t->stage_receiving, 4, "config", cn, "seed", seed_addr(r, i), "provider",
			       seed_provider(r, i), "stage", "receiving");
	}
	f = family(m, "probe_tab", MT_GAUGE, NULL,
	           "1 with the Gmail tab (category) of the inbox probe: primary, promotions, social, updates, forums, or unknown when categories are off.");
	for (size_t i = 0; i < ns; i++) {
		const struct probe_result *res = &r->results[i];
		if (m->dup[i] || res->outcome != OUTCOME_INBOX || !res->trace.tab[0])
			continue;
		sample(f, "", 1, 4, "config", cn, "seed", seed_addr(r, i), "provider", seed_provider(r, i),
		       "tab", res->trace.tab);
	}
	f = family(m, "tab_ratio", MT_GAUGE, NULL,
	           "Share of the provider's inbox probes in each Gmail tab, over the probes whose tab is known; absent when none is known.");
	for (size_t p = 0; p < cfg->nproviders; p++) {
		const struct provider_report *pr = &r->providers[p];
		if (pr->tab_known == 0)
			continue;
		for (int t = 0; t < TAB__COUNT; t++)
			sample(f, "", (double)pr->tab_n[t] / (double)pr->tab_known, 3, "config", cn, "provider",
			       pr->provider, "tab", report_tab_names[t]);
	}
}

/* Seeds ordered by address, provider, then index (qsort_r, for
 * seed_duplicates; arg is the report). */
static int seed_order(const void *a, const void *b, void *arg)
{
	const struct round_report *r = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int c = strcmp(seed_addr(r, i), seed_addr(r, j));
	if (c == 0)
		c = strcmp(seed_provider(r, i), seed_provider(r, j));
	return c != 0 ? c : (i > j) - (i < j);
}

/* Per seed, 1 when an earlier seed has the same address and provider: its
 * series would duplicate, so only the first is exposed (configuration
 * validation refuses such a file already). Sorted: O(n log n) in the
 * seeds, not a scan of every earlier seed. Heap, ns entries (at least 1). */
static unsigned char *seed_duplicates(const struct round_report *r, size_t ns)
{
	unsigned char *dup = xcalloc(ns ? ns : 1, 1);
	size_t *ix = xcalloc(ns ? ns : 1, sizeof(*ix));

	for (size_t i = 0; i < ns; i++)
		ix[i] = i;
	qsort_r(ix, ns, sizeof(*ix), seed_order, (void *)r);
	for (size_t k = 1; k < ns; k++)
		if (strcmp(seed_addr(r, ix[k]), seed_addr(r, ix[k - 1])) == 0 &&
		    strcmp(seed_provider(r, ix[k]), seed_provider(r, ix[k - 1])) == 0)
			dup[ix[k]] = 1;
	free(ix);
	return dup;
}

static const char *const folder_names[OUTCOME_ERROR] = { "inbox", "spam", "missing", "rejected", "deferred" };

/* The cumulative count and sum of latency observations of t: the
 * histogram's totals, never below its largest bucket nor below what the
 * window holds (a store whose totals started later than its probe rows).
 * Negative latencies count as 0, so the sum never goes down. */
static void latency_totals(const struct state_totals *t, unsigned long long *count, double *sum)
{
	unsigned long long c = t->hist_count;
	double s = isfinite(t->hist_sum) && t->hist_sum >= 0 ? t->hist_sum : 0, w = 0;

	for (int b = 0; b < STATE_NBUCKETS; b++)
		if (t->bucket[b] > c)
			c = t->bucket[b];
	if (t->window_samples > c)
		c = t->window_samples;
	for (size_t k = 0; t->window_latencies != NULL && k < t->window_samples; k++)
		if (t->window_latencies[k] > 0 && isfinite(t->window_latencies[k]))
			w += t->window_latencies[k];
	*count = c;
	*sum = s > w ? s : w;
}

/* This round, per seed and per provider: outcome, placement, latency,
 * discovery lag, the relay's reply. */
static void round_probe_families(const struct round_report *r, struct mmodel *m, const char *cn,
                                 size_t ns)
{
	const struct config *cfg = r->cfg;
	struct mfamily *f;

	f = family(m, "probe_outcome", MT_GAUGE, NULL,
	           "1 for the outcome of this round's probe to the seed, 0 for the other five.");
	for (size_t i = 0; i < ns; i++) {
		if (m->dup[i])
			continue;
		for (int o = 0; o < OUTCOME__COUNT; o++)
			sample(f, "", r->results[i].outcome == (enum outcome)o ? 1 : 0, 4,
			       "config", cn, "seed", seed_addr(r, i), "provider", seed_provider(r, i),
			       "outcome", outcome_name((enum outcome)o));
	}

	/* With nothing measured the share is undefined: NaN, so that an alert
	 * like placement_ratio{folder="inbox"} < 0.9 does not fire on an IMAP
	 * outage (probe_outcome{outcome="error"} tells that story). */
	f = family(m, "placement_ratio", MT_GAUGE, NULL,
	           "Share of this round's measured probes (all outcomes but error) per folder; NaN when none was measured.");
	for (size_t p = 0; p < cfg->nproviders; p++)
		for (int o = 0; o < OUTCOME_ERROR; o++)
			sample(f, "", r->providers[p].measured ? r->providers[p].share[o] : NAN, 3,
			       "config", cn, "provider", r->providers[p].provider, "folder", folder_names[o]);

	f = family(m, "delivery_latency_last_seconds", MT_GAUGE, "seconds",
	           "This round's delivery latency: IMAP INTERNALDATE minus the relay's 250 to end of DATA.");
	for (size_t i = 0; i < ns; i++) {
		const struct probe_result *res = &r->results[i];
		if (m->dup[i] || !report_found(res) || !res->have_latency || !isfinite(res->latency))
			continue;
		sample(f, "", res->latency, 3, "config", cn, "seed", seed_addr(r, i),
		       "provider", seed_provider(r, i));
	}

	f = family(m, "discovery_lag_seconds", MT_GAUGE, "seconds",
	           "Time inboxprobe saw the probe minus its estimated arrival (within INTERNALDATE + 1 s).");
	for (size_t i = 0; i < ns; i++) {
		const struct probe_result *res = &r->results[i];
		if (m->dup[i] || !report_found(res) || !isfinite(res->discovery_lag))
			continue;
		sample(f, "", res->discovery_lag, 3, "config", cn, "seed", seed_addr(r, i),
		       "provider", seed_provider(r, i));
	}

	f = family(m, "relay_reply", MT_GAUGE, NULL,
	           "1, labelled with the basic and enhanced code of the relay's final reply for the seed.");
	for (size_t i = 0; i < ns; i++) {
		const struct probe_result *res = &r->results[i];
		if (m->dup[i] || res->reply.code == 0)
			continue;
		char code[16];
		snprintf(code, sizeof(code), "%d", res->reply.code);
		sample(f, "", 1, 5, "config", cn, "seed", seed_addr(r, i), "provider", seed_provider(r, i),
		       "code", code, "enhanced", res->reply.enhanced);
	}
}

/* This round as a whole: duration, time, success, bounce mailbox, SLO
 * gates, and the clock skew probes showed. */
static void round_status_families(const struct round_report *r, struct mmodel *m, const char *cn,
                                  size_t ns)
{
	const struct config *cfg = r->cfg;
	struct mfamily *f;

	f = family(m, "round_duration_seconds", MT_GAUGE, "seconds", "Wall-clock duration of the round.");
	sample(f, "", r->ended - r->started, 1, "config", cn);
	f = family(m, "last_run_timestamp_seconds", MT_GAUGE, "seconds",
	           "Unix time when the last round ended.");
	sample(f, "", r->ended, 1, "config", cn);
	f = family(m, "last_run_success", MT_GAUGE, NULL,
	           "1 when the last round exited 0: every gate held and every seed was measured.");
	sample(f, "", report_exit_code(r) == EXIT_GATES_OK ? 1 : 0, 1, "config", cn);
	if (cfg->has_bounce) {
		f = family(m, "bounce_mailbox_up", MT_GAUGE, NULL,
		           "1 when the bounce mailbox (bounce_mailbox) was watched for DSNs this round, 0 when it could not be.");
		sample(f, "", r->bounce_error ? 0 : 1, 1, "config", cn);
	}

	f = family(m, "slo_ok", MT_GAUGE, NULL,
	           "1 where the SLO gate holds for the provider, 0 where it fails; absent when not evaluated.");
	for (int g = 0; g < SLO__COUNT; g++)
		for (size_t p = 0; p < cfg->nproviders; p++) {
			const struct gate_result *gr = &r->providers[p].gate[g];
			if (!gr->evaluated)
				continue;
			sample(f, "", gr->ok ? 1 : 0, 3, "config", cn, "slo", slo_gate_name((enum slo_gate)g),
			       "provider", r->providers[p].provider);
		}

	f = family(m, "clock_skew_seconds", MT_GAUGE, "seconds",
	           "Clock skew shown by a probe whose latency was negative beyond 2 s; its latency is not used.");
	for (size_t i = 0; i < ns; i++) {
		const struct probe_result *res = &r->results[i];
		if (m->dup[i] || !(res->clock_skew > 0) || !isfinite(res->clock_skew))
			continue;
		sample(f, "", res->clock_skew, 3, "config", cn, "seed", seed_addr(r, i),
		       "provider", seed_provider(r, i));
	}
}

/* Counters over the state store's totals, per provider: probes by
 * outcome, authentication verdicts, late arrivals. */
static void total_counter_families(const struct round_report *r, struct mmodel *m, const char *cn)
{
	const struct config *cfg = r->cfg;
	struct mfamily *f;

	f = family(m, "probes", MT_COUNTER, NULL, "Probes by outcome, counted at the end of their round.");
	for (size_t p = 0; p < cfg->nproviders; p++)
		for (int o = 0; o < OUTCOME__COUNT; o++)
			sample(f, "_total", (double)r->totals[p].probes[o], 3, "config", cn,
			       "provider", r->providers[p].provider, "outcome", outcome_name((enum outcome)o));

	f = family(m, "auth_results", MT_COUNTER, NULL,
	           "Trusted authentication verdicts of found probes, by RFC 8601 method and result, counted at the end of their round.");
	for (size_t p = 0; p < cfg->nproviders; p++)
		for (size_t a = 0; a < r->totals[p].nauth; a++)
			sample(f, "_total", (double)r->totals[p].auth[a].n, 4, "config", cn,
			       "provider", r->providers[p].provider, "method", r->totals[p].auth[a].method,
			       "result", r->totals[p].auth[a].result);

	f = family(m, "late_arrivals", MT_COUNTER, NULL,
	           "Probes missing at their round's end and found in a later round, by folder.");
	for (size_t p = 0; p < cfg->nproviders; p++) {
		sample(f, "_total", (double)r->totals[p].late_inbox, 3, "config", cn,
		       "provider", r->providers[p].provider, "folder", "inbox");
		sample(f, "_total", (double)r->totals[p].late_spam, 3, "config", cn,
		       "provider", r->providers[p].provider, "folder", "spam");
	}
}

/* The cumulative latency histogram, per provider. */
static void latency_histogram_family(const struct round_report *r, struct mmodel *m, const char *cn)
{
	const struct config *cfg = r->cfg;
	struct mfamily *f;

	/* The cumulative count and sum of every latency observation in the
	 * store (the histogram's _count and _sum): the totals never go down. */
	f = family(m, "delivery_latency_seconds", MT_HISTOGRAM, "seconds",
	           "Delivery latency of found probes, including late arrivals.");
	for (size_t p = 0; p < cfg->nproviders; p++) {
		const struct state_totals *t = &r->totals[p];
		const char *pn = r->providers[p].provider;
		unsigned long long cum = 0;
		for (int b = 0; b < STATE_NBUCKETS; b++) {
			/* The store keeps cumulative counts; never let a bucket
			 * be lower than the one before it. */
			if (t->bucket[b] > cum)
				cum = t->bucket[b];
			struct msample *s = sample(f, "_bucket", (double)cum, 2, "config", cn, "provider", pn);
			s->has_le = 1;
			s->le = state_buckets[b];
		}
		unsigned long long count;
		double sum;
		latency_totals(t, &count, &sum);
		struct msample *s = sample(f, "_bucket", (double)count, 2, "config", cn, "provider", pn);
		s->has_le = 1;
		s->le = INFINITY;
		sample(f, "_sum", sum, 2, "config", cn, "provider", pn);
		sample(f, "_count", (double)count, 2, "config", cn, "provider", pn);
	}
}

/* Over the SLO window (slo.window), per provider: latency quantiles,
 * samples, placement and probes. */
static void window_families(const struct round_report *r, struct mmodel *m, const char *cn)
{
	const struct config *cfg = r->cfg;
	struct mfamily *f;

	/* A real summary (a gauge may not carry "quantile": promtool check
	 * metrics refuses it). As in client libraries' summaries (docs/SPEC.md
	 * "Metrics"), the quantiles are over the window while _sum and _count
	 * are the cumulative totals (the histogram's), which never go down:
	 * Prometheus reads a fall in either as a counter reset. Latencies
	 * within the tolerated skew can be a little negative; summaries cannot,
	 * so they count as 0 here. */
	f = family(m, "delivery_latency_window_seconds", MT_SUMMARY, "seconds",
	           "Nearest-rank latency quantiles of found probes over the SLO window.");
	static const struct { double q; const char *label; } qs[] = {
		{ 0.5, "0.5" }, { 0.95, "0.95" }, { 0.99, "0.99" },
	};
	for (size_t p = 0; p < cfg->nproviders; p++) {
		const struct state_totals *t = &r->totals[p];
		const char *pn = r->providers[p].provider;
		if (t->window_samples == 0 || t->window_latencies == NULL)
			continue;
		for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
			double v = quantile_nearest_rank(t->window_latencies, t->window_samples, qs[k].q);
			sample(f, "", v > 0 ? v : 0, 3, "config", cn, "provider", pn, "quantile", qs[k].label);
		}
		unsigned long long count;
		double sum;
		latency_totals(t, &count, &sum);
		sample(f, "_sum", sum, 2, "config", cn, "provider", pn);
		sample(f, "_count", (double)count, 2, "config", cn, "provider", pn);
	}

	f = family(m, "window_samples", MT_GAUGE, NULL,
	           "Number of latency samples behind the window quantiles.");
	for (size_t p = 0; p < cfg->nproviders; p++)
		sample(f, "", (double)r->totals[p].window_samples, 2, "config", cn,
		       "provider", r->providers[p].provider);

	/* Placement over the window: shares of the measured probes (all but
	 * error) submitted within slo.window, like placement_ratio for a round. */
	f = family(m, "window_placement_ratio", MT_GAUGE, NULL,
	           "Share of the measured probes submitted within the window (slo.window) by folder: "
	           "inbox, spam, missing, rejected, deferred.");
	for (size_t p = 0; p < cfg->nproviders; p++) {
		const struct state_totals *t = &r->totals[p];
		size_t measured = 0;

		for (int o = 0; o < OUTCOME_ERROR; o++)
			measured += t->window_outcomes[o];
		if (measured == 0)
			continue;
		for (int o = 0; o < OUTCOME_ERROR; o++)
			sample(f, "", (double)t->window_outcomes[o] / (double)measured, 3, "config", cn,
			       "provider", r->providers[p].provider, "folder", outcome_name((enum outcome)o));
	}
	f = family(m, "window_probes", MT_GAUGE, NULL,
	           "Number of measured probes (all outcomes but error) submitted within the window.");
	for (size_t p = 0; p < cfg->nproviders; p++) {
		size_t measured = 0;

		for (int o = 0; o < OUTCOME_ERROR; o++)
			measured += r->totals[p].window_outcomes[o];
		sample(f, "", (double)measured, 2, "config", cn, "provider", r->providers[p].provider);
	}
}

static void build_model(const struct round_report *r, struct mmodel *m)
{
	const struct config *cfg = r->cfg;
	const char *cn = cfg->name ? cfg->name : "";
	size_t ns = r->results ? cfg->nseeds : 0;

	m->dup = seed_duplicates(r, ns);
	round_probe_families(r, m, cn, ns);
	round_status_families(r, m, cn, ns);
	trace_families(m, r);
	if (r->totals == NULL)
		return;
	total_counter_families(r, m, cn);
	latency_histogram_family(r, m, cn);
	window_families(r, m, cn);
}

/* The daemon's own series (docs/SPEC.md "Daemon"; docs/metrics.md). */
static void build_daemon(const struct report_daemon *d, const char *cn, struct mmodel *m)
{
	struct mfamily *f;

	f = family(m, "rounds", MT_COUNTER, NULL, "Rounds the daemon has run and reported.");
	sample(f, "_total", (double)d->rounds, 1, "config", cn);
	f = family(m, "rounds_skipped", MT_COUNTER, NULL,
	           "Scheduled rounds not started because the previous round was still running.");
	sample(f, "_total", (double)d->rounds_skipped, 1, "config", cn);
	f = family(m, "imap_sessions", MT_GAUGE, NULL,
	           "IMAP sessions of the daemon by state: connecting (connect, TLS, login) or up (logged in).");
	sample(f, "", (double)d->sessions_connecting, 2, "config", cn, "state", "connecting");
	sample(f, "", (double)d->sessions_up, 2, "config", cn, "state", "up");
	f = family(m, "imap_logins", MT_COUNTER, NULL,
	           "IMAP logins (LOGIN or AUTHENTICATE commands sent) since the daemon started.");
	sample(f, "_total", (double)d->imap_logins, 1, "config", cn);
}

/* Label value: valid UTF-8, with \\, \" and \n escaped (both formats). */
static void add_label_value(struct strbuf *sb, const char *v)
{
	const unsigned char *s = (const unsigned char *)v;
	size_t n = strlen(v);
	for (size_t i = 0; i < n;) {
		if (s[i] == '\\') {
			strbuf_adds(sb, "\\\\");
			i++;
		} else if (s[i] == '"') {
			strbuf_adds(sb, "\\\"");
			i++;
		} else if (s[i] == '\n') {
			strbuf_adds(sb, "\\n");
			i++;
		} else {
			size_t l = utf8_decode(s + i, n - i, NULL);
			if (l == 0) {
				strbuf_adds(sb, "\xEF\xBF\xBD");
				i++;
			} else {
				strbuf_add(sb, s + i, l);
				i += l;
			}
		}
	}
}

/* HELP text: \\ and \n escaped (our texts hold neither; kept for safety). */
static void add_help(struct strbuf *sb, const char *h)
{
	for (; *h; h++) {
		if (*h == '\\')
			strbuf_adds(sb, "\\\\");
		else if (*h == '\n')
			strbuf_adds(sb, "\\n");
		else
			strbuf_add(sb, h, 1);
	}
}

/* OpenMetrics canonical number for le: integral values get ".0". */
static void fmt_le(char *buf, size_t sz, double v, int openmetrics)
{
	fmt_double(buf, sz, v);
	if (openmetrics && isfinite(v) && strpbrk(buf, ".eEIN") == NULL) {
		size_t l = strlen(buf);
		if (l + 3 <= sz)
			memcpy(buf + l, ".0", 3);
	}
}

static void add_sample(struct strbuf *sb, const struct mfamily *f, const struct msample *s, int om)
{
	char num[64];
	strbuf_adds(sb, PREFIX);
	strbuf_adds(sb, f->name);
	strbuf_adds(sb, s->suffix);
	if (s->nlabels || s->has_le) {
		strbuf_adds(sb, "{");
		for (int k = 0; k < s->nlabels; k++) {
			if (k)
				strbuf_adds(sb, ",");
			strbuf_adds(sb, s->label[k].name);
			strbuf_adds(sb, "=\"");
			add_label_value(sb, s->label[k].value);
			strbuf_adds(sb, "\"");
		}
		if (s->has_le) {
			fmt_le(num, sizeof(num), s->le, om);
			strbuf_addf(sb, "%sle=\"%s\"", s->nlabels ? "," : "", num);
		}
		strbuf_adds(sb, "}");
	}
	fmt_double(num, sizeof(num), s->value);
	strbuf_addf(sb, " %s\n", num);
}

static const char *type_name(enum mtype t)
{
	switch (t) {
	case MT_COUNTER: return "counter";
	case MT_HISTOGRAM: return "histogram";
	case MT_SUMMARY: return "summary";
	default: return "gauge";
	}
}

static char *encode(const struct round_report *r, const struct report_daemon *d,
                    const char *config_name, int om)
{
	struct mmodel m = { 0 };
	struct strbuf sb = STRBUF_INIT;

	if (r != NULL)
		build_model(r, &m);
	if (d != NULL)
		build_daemon(d, r != NULL && r->cfg->name ? r->cfg->name : config_name ? config_name : "",
		             &m);
	for (size_t i = 0; i < m.n; i++) {
		const struct mfamily *f = &m.f[i];
		if (f->n == 0)
			continue;
		/* Text 0.0.4 names a counter family by its sample name
		 * (x_total); OpenMetrics by the name without _total. */
		const char *tsuffix = (!om && f->type == MT_COUNTER) ? "_total" : "";
		strbuf_addf(&sb, "# HELP " PREFIX "%s%s ", f->name, tsuffix);
		add_help(&sb, f->help);
		strbuf_addf(&sb, "\n# TYPE " PREFIX "%s%s %s\n", f->name, tsuffix, type_name(f->type));
		if (om && f->unit)
			strbuf_addf(&sb, "# UNIT " PREFIX "%s %s\n", f->name, f->unit);
		for (size_t j = 0; j < f->n; j++)
			add_sample(&sb, f, &f->s[j], om);
	}
	if (om)
		strbuf_adds(&sb, "# EOF\n");
	model_free(&m);
	return strbuf_detach(&sb);
}

char *report_prometheus_text(const struct round_report *r)
{
	return encode(r, r->daemon, NULL, 0);
}

char *report_openmetrics(const struct round_report *r)
{
	return encode(r, r->daemon, NULL, 1);
}

char *report_metrics(const struct round_report *r, const struct report_daemon *d,
                     const char *config_name, int openmetrics)
{
	return encode(r, d, config_name, openmetrics);
}
