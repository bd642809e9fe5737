/*
 * json.c - the JSON report (RFC 8259), schema in docs/json-report.md.
 *
 * Strings: ", \ and control characters escaped (\n, \r, \t, \b, \f,
 * others as \u00XX), valid UTF-8 passed through, each byte of an invalid
 * UTF-8 sequence replaced by U+FFFD. Numbers in the C locale (fmt_double);
 * NaN and infinities, which JSON cannot carry, become null, as does every
 * absent value.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "prober/dsn.h"
#include "reports/report.h"

/* Round half away from zero without libm (the library links no -lm). */
static long long round_ll(double v)
{
	return v < 0 ? -(long long)(-v + 0.5) : (long long)(v + 0.5);
}

#define JSON_SCHEMA "inboxprobe-report/1"

static void j_str(struct strbuf *sb, const char *v)
{
	if (v == NULL) {
		strbuf_adds(sb, "null");
		return;
	}
	const unsigned char *s = (const unsigned char *)v;
	size_t n = strlen(v);
	strbuf_adds(sb, "\"");
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		switch (c) {
		case '"': strbuf_adds(sb, "\\\""); i++; continue;
		case '\\': strbuf_adds(sb, "\\\\"); i++; continue;
		case '\n': strbuf_adds(sb, "\\n"); i++; continue;
		case '\r': strbuf_adds(sb, "\\r"); i++; continue;
		case '\t': strbuf_adds(sb, "\\t"); i++; continue;
		case '\b': strbuf_adds(sb, "\\b"); i++; continue;
		case '\f': strbuf_adds(sb, "\\f"); i++; continue;
		default: break;
		}
		if (c < 0x20 || c == 0x7f) {
			strbuf_addf(sb, "\\u%04x", c);
			i++;
			continue;
		}
		size_t l = utf8_decode(s + i, n - i, NULL);
		if (l == 0) {
			strbuf_adds(sb, "\xEF\xBF\xBD");
			i++;
		} else {
			strbuf_add(sb, s + i, l);
			i += l;
		}
	}
	strbuf_adds(sb, "\"");
}

/* A string, or null when empty. */
static void j_str_or_null(struct strbuf *sb, const char *v)
{
	j_str(sb, v && *v ? v : NULL);
}

static void j_num(struct strbuf *sb, double v)
{
	char buf[64];
	if (!isfinite(v)) {
		strbuf_adds(sb, "null");
		return;
	}
	strbuf_adds(sb, fmt_double(buf, sizeof(buf), v));
}

/* RFC 3339 UTC with milliseconds: "2023-11-14T22:13:20.500Z". */
static void j_time(struct strbuf *sb, double t)
{
	if (!isfinite(t) || t <= 0) {
		strbuf_adds(sb, "null");
		return;
	}
	double whole = floor(t);
	long ms = round_ll((t - whole) * 1000.0);
	if (ms >= 1000) {
		whole += 1;
		ms -= 1000;
	}
	time_t tt = (time_t)whole;
	struct tm tm;
	char buf[64];
	if (gmtime_r(&tt, &tm) == NULL) {
		strbuf_adds(sb, "null");
		return;
	}
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	strbuf_addf(sb, "\"%s.%03ldZ\"", buf, ms);
}

static void j_key(struct strbuf *sb, int *first, const char *key)
{
	if (!*first)
		strbuf_adds(sb, ",");
	*first = 0;
	j_str(sb, key);
	strbuf_adds(sb, ":");
}

static void j_counts(struct strbuf *sb, const size_t *n, int count)
{
	int first = 1;
	strbuf_adds(sb, "{");
	for (int o = 0; o < count; o++) {
		j_key(sb, &first, outcome_name((enum outcome)o));
		strbuf_addf(sb, "%zu", n[o]);
	}
	strbuf_adds(sb, "}");
}

/* "auth": the receiving provider's trusted verdicts, merged. */
static void j_auth(struct strbuf *sb, const struct probe_trace *t)
{
	int f = 1;
	strbuf_adds(sb, "{");
	j_key(sb, &f, "fields"); strbuf_addf(sb, "%d", t->auth_fields);
	j_key(sb, &f, "trusted_fields"); strbuf_addf(sb, "%d", t->auth_trusted);
	j_key(sb, &f, "verdicts");
	strbuf_adds(sb, "[");
	for (int i = 0; i < t->nauth; i++) {
		const struct auth_verdict *v = &t->auth[i];
		int g = 1, h = 1;
		strbuf_adds(sb, i ? ",{" : "{");
		j_key(sb, &g, "method"); j_str(sb, v->method);
		j_key(sb, &g, "result"); j_str(sb, v->result);
		j_key(sb, &g, "reason"); j_str_or_null(sb, v->reason);
		j_key(sb, &g, "properties");
		strbuf_adds(sb, "{");
		for (int k = 0; k < v->nprops; k++) {
			int dup = 0;
			for (int d = 0; d < k; d++)
				dup |= strcmp(v->props[d].name, v->props[k].name) == 0;
			if (dup)
				continue;   /* JSON names stay unique: the first wins */
			j_key(sb, &h, v->props[k].name);
			j_str(sb, v->props[k].value);
		}
		strbuf_adds(sb, "}}");
	}
	strbuf_adds(sb, "]");
	j_key(sb, &f, "note"); j_str_or_null(sb, t->note);
	strbuf_adds(sb, "}");
}

/* "path": the Received hops, oldest first, with deltas and the stages. */
static void j_path(struct strbuf *sb, const struct probe_trace *t)
{
	int f = 1, g = 1;
	strbuf_adds(sb, "{");
	j_key(sb, &f, "hops");
	strbuf_adds(sb, "[");
	for (int i = 0; i < t->nhops; i++) {
		const struct hop *h = &t->hops[i];
		const struct hop *prev = i > 0 ? &t->hops[i - 1] : NULL;
		int k = 1, delta = prev && prev->time > 0 && h->time > 0;
		strbuf_adds(sb, i ? ",{" : "{");
		j_key(sb, &k, "from"); j_str_or_null(sb, h->from);
		j_key(sb, &k, "by"); j_str_or_null(sb, h->by);
		j_key(sb, &k, "with"); j_str_or_null(sb, h->with);
		j_key(sb, &k, "id"); j_str_or_null(sb, h->id);
		j_key(sb, &k, "time"); j_time(sb, h->time);
		j_key(sb, &k, "time_unix"); j_num(sb, h->time > 0 ? h->time : NAN);
		j_key(sb, &k, "delta_seconds"); j_num(sb, delta ? h->time - prev->time : NAN);
		j_key(sb, &k, "skew"); strbuf_adds(sb, delta && h->time < prev->time ? "true" : "false");
		j_key(sb, &k, "relay"); strbuf_adds(sb, i == t->relay_hop ? "true" : "false");
		strbuf_adds(sb, "}");
	}
	strbuf_adds(sb, "]");
	j_key(sb, &f, "stages");
	strbuf_adds(sb, "{");
	j_key(sb, &g, "relay"); j_num(sb, t->have_relay ? t->stage_relay : NAN);
	j_key(sb, &g, "receiving"); j_num(sb, t->have_receiving ? t->stage_receiving : NAN);
	strbuf_adds(sb, "}}");
}

static void j_seed(struct strbuf *sb, const struct round_report *r, size_t i)
{
	const struct probe_result *res = &r->results[i];
	const struct seed_conf *sc = &r->cfg->seeds[i];
	int found = report_found(res);
	int f = 1;

	strbuf_adds(sb, "{");
	j_key(sb, &f, "address"); j_str(sb, sc->address ? sc->address : "");
	j_key(sb, &f, "provider"); j_str(sb, sc->provider ? sc->provider : "");
	j_key(sb, &f, "token"); j_str_or_null(sb, res->token);
	j_key(sb, &f, "outcome"); j_str(sb, outcome_name(res->outcome));
	j_key(sb, &f, "folder"); j_str_or_null(sb, found ? res->folder : NULL);
	j_key(sb, &f, "submit_time"); j_time(sb, res->submit_time);
	j_key(sb, &f, "submit_time_unix"); j_num(sb, res->submit_time > 0 ? res->submit_time : NAN);
	j_key(sb, &f, "internaldate"); j_time(sb, found ? res->internaldate : 0);
	j_key(sb, &f, "internaldate_unix");
	j_num(sb, found && res->internaldate > 0 ? res->internaldate : NAN);
	j_key(sb, &f, "latency_seconds"); j_num(sb, found && res->submit_time > 0 ? res->latency : NAN);
	j_key(sb, &f, "latency_usable"); strbuf_adds(sb, found && res->have_latency ? "true" : "false");
	j_key(sb, &f, "discovery_lag_seconds"); j_num(sb, found ? res->discovery_lag : NAN);
	j_key(sb, &f, "arrival_unix"); j_num(sb, found && res->arrival > 0 ? res->arrival : NAN);
	j_key(sb, &f, "latency_error_bound_seconds");
	j_num(sb, found ? res->latency_error_bound : NAN);
	j_key(sb, &f, "announced_by_idle"); strbuf_adds(sb, found && res->announced ? "true" : "false");
	j_key(sb, &f, "announcement_delay_seconds"); j_num(sb, found ? res->announce_delay : NAN);
	j_key(sb, &f, "watch"); j_str_or_null(sb, res->watch[0] ? res->watch : NULL);
	j_key(sb, &f, "not_sent"); strbuf_adds(sb, res->not_sent ? "true" : "false");
	j_key(sb, &f, "check_interval_seconds");
	j_num(sb, res->watch[0] && res->check_interval > 0 ? res->check_interval : NAN);
	j_key(sb, &f, "clock_skew_seconds"); j_num(sb, res->clock_skew > 0 ? res->clock_skew : NAN);
	j_key(sb, &f, "attempts"); strbuf_addf(sb, "%d", res->attempts);
	j_key(sb, &f, "attempt_history");
	strbuf_adds(sb, "[");
	for (int a = 0; a < res->nhistory && a < ATTEMPTS_MAX; a++) {
		const struct smtp_attempt *at = &res->history[a];
		int g = 1;
		char num[64];

		strbuf_adds(sb, a ? ",{" : "{");
		j_key(sb, &g, "time_unix"); strbuf_adds(sb, fmt_double(num, sizeof num, at->time));
		j_key(sb, &g, "result"); j_str(sb, at->error);
		j_key(sb, &g, "code");
		if (at->code)
			strbuf_addf(sb, "%d", at->code);
		else
			strbuf_adds(sb, "null");
		j_key(sb, &g, "enhanced"); j_str_or_null(sb, at->enhanced);
		j_key(sb, &g, "stage"); j_str_or_null(sb, at->stage);
		strbuf_adds(sb, "}");
	}
	strbuf_adds(sb, "]");

	j_key(sb, &f, "relay_reply");
	if (res->reply.code == 0) {
		strbuf_adds(sb, "null");
	} else {
		int g = 1;
		strbuf_adds(sb, "{");
		j_key(sb, &g, "code"); strbuf_addf(sb, "%d", res->reply.code);
		j_key(sb, &g, "enhanced"); j_str_or_null(sb, res->reply.enhanced);
		j_key(sb, &g, "text"); j_str(sb, res->reply.text);
		j_key(sb, &g, "queue_id"); j_str_or_null(sb, res->reply.queue_id);
		j_key(sb, &g, "stage"); j_str_or_null(sb, res->reply.stage);
		strbuf_adds(sb, "}");
	}

	j_key(sb, &f, "dsn");
	if (!res->dsn.present) {
		strbuf_adds(sb, "null");
	} else {
		int g = 1;
		strbuf_adds(sb, "{");
		j_key(sb, &g, "action"); j_str(sb, dsn_action_name(res->dsn.action));
		j_key(sb, &g, "status"); j_str_or_null(sb, res->dsn.status);
		j_key(sb, &g, "remote_mta"); j_str_or_null(sb, res->dsn.remote_mta);
		j_key(sb, &g, "diagnostic"); j_str_or_null(sb, res->dsn.diagnostic);
		strbuf_adds(sb, "}");
	}
	j_key(sb, &f, "diagnostic"); j_str_or_null(sb, res->diagnostic);
	j_key(sb, &f, "cleanup"); j_str_or_null(sb, res->cleanup);
	j_key(sb, &f, "auth");
	if (found && res->trace.fetched)
		j_auth(sb, &res->trace);
	else
		strbuf_adds(sb, "null");
	j_key(sb, &f, "path");
	if (found && res->trace.fetched)
		j_path(sb, &res->trace);
	else
		strbuf_adds(sb, "null");
	j_key(sb, &f, "tab"); j_str_or_null(sb, found ? res->trace.tab : NULL);
	strbuf_adds(sb, "}");
}

static void j_gate(struct strbuf *sb, const struct gate_result *g)
{
	int f = 1;
	strbuf_adds(sb, "{");
	j_key(sb, &f, "evaluated"); strbuf_adds(sb, g->evaluated ? "true" : "false");
	j_key(sb, &f, "ok"); strbuf_adds(sb, g->evaluated ? (g->ok ? "true" : "false") : "null");
	j_key(sb, &f, "value"); j_num(sb, g->evaluated ? g->value : NAN);
	j_key(sb, &f, "threshold"); j_num(sb, g->threshold);
	j_key(sb, &f, "reason"); j_str_or_null(sb, g->evaluated ? NULL : g->reason);
	strbuf_adds(sb, "}");
}

static void j_totals(struct strbuf *sb, const struct state_totals *t)
{
	int f = 1, g;
	strbuf_adds(sb, "{");
	j_key(sb, &f, "probes");
	strbuf_adds(sb, "{");
	g = 1;
	for (int o = 0; o < OUTCOME__COUNT; o++) {
		j_key(sb, &g, outcome_name((enum outcome)o));
		strbuf_addf(sb, "%llu", t->probes[o]);
	}
	strbuf_adds(sb, "}");
	j_key(sb, &f, "late_arrivals");
	strbuf_addf(sb, "{\"inbox\":%llu,\"spam\":%llu}", t->late_inbox, t->late_spam);

	j_key(sb, &f, "latency_histogram");
	strbuf_adds(sb, "{\"buckets\":[");
	for (int b = 0; b < STATE_NBUCKETS; b++) {
		strbuf_adds(sb, b ? ",{\"le\":" : "{\"le\":");
		j_num(sb, state_buckets[b]);
		strbuf_addf(sb, ",\"count\":%llu}", t->bucket[b]);
	}
	strbuf_addf(sb, "],\"count\":%llu,\"sum\":", t->hist_count);
	j_num(sb, t->hist_sum);
	strbuf_adds(sb, "}");

	j_key(sb, &f, "window");
	size_t n = t->window_latencies ? t->window_samples : 0;
	g = 1;
	strbuf_adds(sb, "{");
	j_key(sb, &g, "samples"); strbuf_addf(sb, "%zu", n);
	j_key(sb, &g, "p50"); j_num(sb, quantile_nearest_rank(t->window_latencies, n, 0.50));
	j_key(sb, &g, "p95"); j_num(sb, quantile_nearest_rank(t->window_latencies, n, 0.95));
	j_key(sb, &g, "p99"); j_num(sb, quantile_nearest_rank(t->window_latencies, n, 0.99));
	j_key(sb, &g, "outcomes"); j_counts(sb, t->window_outcomes, OUTCOME__COUNT);
	strbuf_adds(sb, "}");
	strbuf_adds(sb, "}");
}

static void j_provider(struct strbuf *sb, const struct round_report *r, size_t pi)
{
	const struct provider_report *p = &r->providers[pi];
	int f = 1, g = 1;

	strbuf_adds(sb, "{");
	j_key(sb, &f, "provider"); j_str(sb, p->provider ? p->provider : "");
	j_key(sb, &f, "counts"); j_counts(sb, p->n, OUTCOME__COUNT);
	j_key(sb, &f, "measured"); strbuf_addf(sb, "%zu", p->measured);
	j_key(sb, &f, "shares");
	strbuf_adds(sb, "{");
	for (int o = 0; o < OUTCOME_ERROR; o++) {
		j_key(sb, &g, outcome_name((enum outcome)o));
		j_num(sb, p->share[o]);
	}
	strbuf_adds(sb, "}");
	j_key(sb, &f, "tabs");
	strbuf_adds(sb, "{");
	g = 1;
	for (int t = 0; t < TAB__COUNT; t++) {
		j_key(sb, &g, report_tab_names[t]);
		strbuf_addf(sb, "%zu", p->tab_n[t]);
	}
	j_key(sb, &g, "known"); strbuf_addf(sb, "%zu", p->tab_known);
	j_key(sb, &g, "shares");
	strbuf_adds(sb, "{");
	int h = 1;
	for (int t = 0; t < TAB__COUNT; t++) {
		j_key(sb, &h, report_tab_names[t]);
		j_num(sb, p->tab_known ? (double)p->tab_n[t] / (double)p->tab_known : NAN);
	}
	strbuf_adds(sb, "}}");
	j_key(sb, &f, "samples"); strbuf_addf(sb, "%zu", p->samples);
	j_key(sb, &f, "p50"); j_num(sb, p->p50);
	j_key(sb, &f, "p95"); j_num(sb, p->p95);
	j_key(sb, &f, "p99"); j_num(sb, p->p99);
	j_key(sb, &f, "gates");
	strbuf_adds(sb, "{");
	g = 1;
	for (int k = 0; k < SLO__COUNT; k++) {
		j_key(sb, &g, slo_gate_name((enum slo_gate)k));
		j_gate(sb, &p->gate[k]);
	}
	strbuf_adds(sb, "}");
	j_key(sb, &f, "totals");
	if (r->totals)
		j_totals(sb, &r->totals[pi]);
	else
		strbuf_adds(sb, "null");
	strbuf_adds(sb, "}");
}

/* A top-level key: one per line. */
static void j_tkey(struct strbuf *sb, int *first, const char *key)
{
	strbuf_adds(sb, *first ? "\n " : ",\n ");
	*first = 0;
	j_str(sb, key);
	strbuf_adds(sb, ":");
}

char *report_json(const struct round_report *r)
{
	struct strbuf sb = STRBUF_INIT;
	const struct config *cfg = r->cfg;
	int f = 1;
	int code = report_exit_code(r);

	strbuf_adds(&sb, "{");
	j_tkey(&sb, &f, "schema"); j_str(&sb, JSON_SCHEMA);
	j_tkey(&sb, &f, "config"); j_str(&sb, cfg->name ? cfg->name : "");
	j_tkey(&sb, &f, "started"); j_time(&sb, r->started);
	j_tkey(&sb, &f, "started_unix"); j_num(&sb, r->started);
	j_tkey(&sb, &f, "ended"); j_time(&sb, r->ended);
	j_tkey(&sb, &f, "ended_unix"); j_num(&sb, r->ended);
	j_tkey(&sb, &f, "duration_seconds"); j_num(&sb, r->ended - r->started);
	j_tkey(&sb, &f, "exit_code"); strbuf_addf(&sb, "%d", code);
	j_tkey(&sb, &f, "verdict");
	j_str(&sb, code == EXIT_GATES_OK ? "ok" : code == EXIT_GATE_FAILED ? "gate_failed" : "unknown");
	j_tkey(&sb, &f, "gates_failed"); strbuf_adds(&sb, r->gates_failed ? "true" : "false");
	j_tkey(&sb, &f, "unmeasured_seeds"); strbuf_adds(&sb, r->any_error ? "true" : "false");
	j_tkey(&sb, &f, "state_failed"); strbuf_adds(&sb, r->state_failed ? "true" : "false");
	j_tkey(&sb, &f, "interrupted"); strbuf_adds(&sb, r->interrupted ? "true" : "false");
	j_tkey(&sb, &f, "bounce_mailbox_error");
	if (r->bounce_error)
		j_str(&sb, r->bounce_error);
	else
		strbuf_adds(&sb, "null");
	j_tkey(&sb, &f, "gate_basis"); j_str(&sb, r->window_basis ? "window" : "round");
	j_tkey(&sb, &f, "window_seconds");
	if (r->window_basis)
		strbuf_addf(&sb, "%ld", cfg->slo.window);
	else
		strbuf_adds(&sb, "null");
	j_tkey(&sb, &f, "seeds");
	strbuf_adds(&sb, "[");
	for (size_t i = 0; r->results && i < cfg->nseeds; i++) {
		strbuf_adds(&sb, i ? ",\n  " : "\n  ");
		j_seed(&sb, r, i);
	}
	strbuf_adds(&sb, "\n ]");
	j_tkey(&sb, &f, "providers");
	strbuf_adds(&sb, "[");
	for (size_t p = 0; p < cfg->nproviders; p++) {
		strbuf_adds(&sb, p ? ",\n  " : "\n  ");
		j_provider(&sb, r, p);
	}
	strbuf_adds(&sb, "\n ]\n}\n");
	return strbuf_detach(&sb);
}
