/*
 * summary.c - the human summary table (stdout with --format text) and the
 * Nagios plugin status line (--format nagios; Nagios Plugin Development
 * Guidelines: "SERVICE STATUS - text | 'label'=value[UOM];warn;crit;min;max").
 *
 * All numbers are printed without the C library's locale-dependent
 * conversions, so a comma-decimal LC_NUMERIC never changes the output.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "prober/trace.h"
#include "reports/report.h"

/* The runbook the verdict line points at (docs/runbook.md, installed in docdir). */
#ifndef INBOXPROBE_DOCDIR
#define INBOXPROBE_DOCDIR "/usr/share/doc/inboxprobe"
#endif
#define RUNBOOK INBOXPROBE_DOCDIR "/runbook.md"

/* Round half away from zero without libm (the library links no -lm). */
static long long round_ll(double v)
{
	return v < 0 ? -(long long)(-v + 0.5) : (long long)(v + 0.5);
}

/* v with d decimals (0..6), C locale; "-" when not finite. */
static const char *fixed(char *buf, size_t sz, double v, int d)
{
	if (!isfinite(v)) {
		snprintf(buf, sz, "-");
		return buf;
	}
	long long scale = 1;
	for (int i = 0; i < d; i++)
		scale *= 10;
	int neg = v < 0;
	double a = fabs(v) * (double)scale;
	if (a > 9e17) {               /* absurd: fall back to fmt_double */
		return fmt_double(buf, sz, v);
	}
	long long x = round_ll(a);
	if (d == 0)
		snprintf(buf, sz, "%s%lld", neg && x ? "-" : "", x);
	else
		snprintf(buf, sz, "%s%lld.%0*lld", neg && x ? "-" : "", x / scale, d, x % scale);
	return buf;
}

/* Display width of a UTF-8 string in code points (invalid bytes count 1). */
static size_t width(const char *s)
{
	return utf8_chars(s, strlen(s));
}

/* A copy of s fit for one line of a table: control characters become
 * spaces, at most max code points (longer: cut with "..."). */
static char *cell(const char *s, size_t max)
{
	struct strbuf sb = STRBUF_INIT;
	size_t n = strlen(s), w = 0;
	for (size_t i = 0; i < n; w++) {
		if (w == max) {
			strbuf_adds(&sb, "...");
			break;
		}
		unsigned char c = (unsigned char)s[i];
		size_t l = utf8_decode((const unsigned char *)s + i, n - i, NULL);
		if (c < 0x20 || c == 0x7f) {
			strbuf_adds(&sb, " ");
			i++;
		} else if (l == 0) {
			strbuf_adds(&sb, "\xEF\xBF\xBD");
			i++;
		} else {
			strbuf_add(&sb, s + i, l);
			i += l;
		}
	}
	return strbuf_detach(&sb);
}

static void pad(FILE *out, const char *s, size_t w)
{
	fputs(s, out);
	for (size_t k = width(s); k < w; k++)
		fputc(' ', out);
}

enum { C_SEED, C_PROV, C_OUT, C_FOLDER, C_LAT, C_RELAY, C_AUTH, C_PATH, C_DIAG, C__N };

/* One method in the verdict column (a pass wins when it has several). */
static void auth_item(struct strbuf *sb, const struct probe_trace *t, const struct auth_verdict *v)
{
	int passed;
	trace_method_verdict(t, v->method, &passed);
	strbuf_addf(sb, "%s%s=%s", sb->len ? " " : "", v->method, passed ? "pass" : v->result);
}

/* The verdict column: "spf=pass dkim=fail dmarc=fail", spf, dkim and dmarc
 * first, then the other methods in header order, each once; "-" when none
 * is trusted. */
static char *auth_cell(const struct probe_result *res)
{
	static const char *const first[] = { "spf", "dkim", "dmarc" };
	const struct probe_trace *t = &res->trace;
	struct strbuf sb = STRBUF_INIT;
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < t->nauth; i++)
			if (strcmp(t->auth[i].method, first[k]) == 0) {
				auth_item(&sb, t, &t->auth[i]);
				break;
			}
	for (int i = 0; i < t->nauth; i++) {
		int skip = 0;
		for (int k = 0; k < 3; k++)
			skip |= strcmp(t->auth[i].method, first[k]) == 0;
		for (int j = 0; j < i; j++)
			skip |= strcmp(t->auth[j].method, t->auth[i].method) == 0;
		if (!skip)
			auth_item(&sb, t, &t->auth[i]);
	}
	if (sb.len == 0)
		strbuf_adds(&sb, report_found(res) ? (t->fetched ? "none trusted" : "-") : "-");
	return strbuf_detach(&sb);
}

/* The path column: "relay 9s, receiving 1s"; a gap shows as "?". */
static char *path_cell(const struct probe_result *res)
{
	char a[32], b[32];
	if (!report_found(res) || !res->trace.fetched)
		return xstrdup("-");
	return xasprintf("relay %s, receiving %s",
	                 res->trace.have_relay ? fixed(a, sizeof a, res->trace.stage_relay, 0) : "?",
	                 res->trace.have_receiving ? fixed(b, sizeof b, res->trace.stage_receiving, 0) : "?");
}

static void gate_line(FILE *out, const char *provider, enum slo_gate g, const struct gate_result *gr)
{
	char v[64], t[64];
	const char *verdict = gr->ok ? "ok  " : "FAIL";
	switch (g) {
	case SLO_MIN_INBOX_RATIO:
		fprintf(out, "%s %s %s: %s %s %s\n", verdict, provider, slo_gate_name(g),
		        fixed(v, sizeof(v), gr->value, 3), gr->ok ? ">=" : "<", fixed(t, sizeof(t), gr->threshold, 3));
		break;
	case SLO_MAX_LATENCY_P99:
		fprintf(out, "%s %s %s: %s s %s %s s\n", verdict, provider, slo_gate_name(g),
		        fixed(v, sizeof(v), gr->value, 1), gr->ok ? "<=" : ">", fixed(t, sizeof(t), gr->threshold, 1));
		break;
	case SLO_MIN_PRIMARY_RATIO:
		fprintf(out, "%s %s %s: %s %s %s\n", verdict, provider, slo_gate_name(g),
		        fixed(v, sizeof(v), gr->value, 3), gr->ok ? ">=" : "<", fixed(t, sizeof(t), gr->threshold, 3));
		break;
	case SLO_REQUIRE_AUTH:
		fprintf(out, "%s %s %s: %s found probe%s without a pass (listed above)\n", verdict, provider,
		        slo_gate_name(g), fixed(v, sizeof(v), gr->value, 0), gr->value == 1 ? "" : "s");
		break;
	default:
		fprintf(out, "%s %s %s: %s %s %s\n", verdict, provider, slo_gate_name(g),
		        fixed(v, sizeof(v), gr->value, 0), gr->ok ? "<=" : ">", fixed(t, sizeof(t), gr->threshold, 0));
		break;
	}
}

/* Every found probe whose required verdict (slo.require_auth) is not
 * pass, named in full: "inbox@x: dkim=fail (bad signature) header.d=...";
 * then those left without a trusted verdict. */
static void auth_failures(const struct round_report *r, FILE *out)
{
	const struct config *cfg = r->cfg;
	char buf[256];
	for (int want = 1; want >= -1; want -= 2) {
		int header = 0;
		for (size_t i = 0; r->results && i < cfg->nseeds; i++) {
			struct slo_conf slo = config_slo_for(cfg, cfg->seeds[i].provider);
			if (!report_found(&r->results[i]) ||
			    report_auth_check(&r->results[i], slo.require_auth, buf, sizeof buf) != want)
				continue;
			if (!header)
				fputs(want > 0 ? "\nauthentication failures (slo.require_auth):\n"
				               : "\nauthentication not evaluated (slo.require_auth):\n", out);
			header = 1;
			char *c = cell(buf, sizeof buf);
			fprintf(out, "  %s: %s\n", cfg->seeds[i].address ? cfg->seeds[i].address : "", c);
			free(c);
		}
	}
}

static const char *const seed_head[C__N] = { "SEED", "PROVIDER", "OUTCOME", "FOLDER", "LATENCY(s)",
                                             "RELAY REPLY", "AUTH", "PATH(s)", "DIAGNOSTIC" };
static const size_t seed_maxw[C__N] = { 48, 24, 8, 48, 12, 48, 40, 32, 100 };

/* One seed's row: the cells before capping (each allocated). */
static void seed_raw_cells(const struct round_report *r, size_t i, char *raw[C__N])
{
	const struct config *cfg = r->cfg;
	const struct probe_result *res = &r->results[i];
	char num[64];

	raw[C_SEED] = xstrdup(cfg->seeds[i].address ? cfg->seeds[i].address : "");
	raw[C_PROV] = xstrdup(cfg->seeds[i].provider ? cfg->seeds[i].provider : "");
	raw[C_OUT] = xstrdup(outcome_name(res->outcome));
	if (report_found(res) && res->folder[0] && res->trace.tab[0])
		raw[C_FOLDER] = xasprintf("%s [%s]", res->folder, res->trace.tab);
	else
		raw[C_FOLDER] = xstrdup(report_found(res) && res->folder[0] ? res->folder : "-");
	raw[C_AUTH] = auth_cell(res);
	raw[C_PATH] = path_cell(res);
	if (report_found(res) && res->have_latency)
		raw[C_LAT] = xstrdup(fixed(num, sizeof(num), res->latency, 1));
	else if (report_found(res) && res->clock_skew > 0)
		raw[C_LAT] = xasprintf("skew %s", fixed(num, sizeof(num), res->clock_skew, 0));
	else
		raw[C_LAT] = xstrdup("-");
	if (res->reply.code)
		raw[C_RELAY] = xasprintf("%d%s%s%s%s", res->reply.code, res->reply.enhanced[0] ? " " : "",
		                         res->reply.enhanced, res->reply.queue_id[0] ? " " : "",
		                         res->reply.queue_id);
	else
		raw[C_RELAY] = xstrdup("-");
	raw[C_DIAG] = xstrdup(res->diagnostic[0] ? res->diagnostic : "");
}

/* One table line: every column padded to w but the last. */
static void table_line(FILE *out, const char *const *cells, const size_t w[C__N])
{
	for (int c = 0; c < C__N; c++) {
		if (c == C__N - 1)
			fputs(cells[c], out);
		else {
			pad(out, cells[c], w[c]);
			fputs("  ", out);
		}
	}
	fputc('\n', out);
}

/* The per-seed table: a header, then one row per seed, each cell capped. */
static void seed_table(const struct round_report *r, size_t ns, FILE *out)
{
	char ***cells = xcalloc(ns ? ns : 1, sizeof(char **));
	size_t w[C__N];

	for (int c = 0; c < C__N; c++)
		w[c] = width(seed_head[c]);
	for (size_t i = 0; i < ns; i++) {
		char *raw[C__N];
		cells[i] = xcalloc(C__N, sizeof(char *));
		seed_raw_cells(r, i, raw);
		for (int c = 0; c < C__N; c++) {
			cells[i][c] = cell(raw[c], seed_maxw[c]);
			free(raw[c]);
			size_t cw = width(cells[i][c]);
			if (cw > w[c])
				w[c] = cw;
		}
	}
	table_line(out, seed_head, w);
	for (size_t i = 0; i < ns; i++) {
		table_line(out, (const char *const *)cells[i], w);
		for (int c = 0; c < C__N; c++)
			free(cells[i][c]);
		free(cells[i]);
	}
	free(cells);
}

/* A diagnostic the table had to cut is given in full below it. */
static void diagnostics_in_full(const struct round_report *r, size_t ns, FILE *out)
{
	const struct config *cfg = r->cfg;
	int header = 0;

	for (size_t i = 0; i < ns; i++) {
		const char *d = r->results[i].diagnostic;
		char *full;

		if (width(d) <= seed_maxw[C_DIAG])
			continue;
		if (!header) {
			fputs("\ndiagnostics in full:\n", out);
			header = 1;
		}
		full = cell(d, DIAG_MAX);
		fprintf(out, "  %s: %s\n", cfg->seeds[i].address ? cfg->seeds[i].address : "", full);
		free(full);
	}
}

/* The per-provider table: placement shares and latency quantiles; then
 * Gmail tabs, shares over the inbox probes whose tab is known. */
static void provider_table(const struct round_report *r, FILE *out)
{
	const struct config *cfg = r->cfg;
	size_t pw = width("PROVIDER");
	char num[64];

	for (size_t p = 0; p < cfg->nproviders; p++) {
		char *c = cell(r->providers[p].provider, 24);
		if (width(c) > pw)
			pw = width(c);
		free(c);
	}
	fputc('\n', out);
	pad(out, "PROVIDER", pw);
	fprintf(out, "  MEASURED  INBOX%%   SPAM%%  MISSING%%  REJECTED%%  DEFERRED%%  %8s  %8s  %8s\n",
	        "P50(s)", "P95(s)", "P99(s)");
	for (size_t p = 0; p < cfg->nproviders; p++) {
		const struct provider_report *pr = &r->providers[p];
		char *c = cell(pr->provider, 24);
		char m[32], s[OUTCOME_ERROR][32], q[3][32];
		pad(out, c, pw);
		free(c);
		snprintf(m, sizeof(m), "%zu/%zu", pr->measured, pr->measured + pr->n[OUTCOME_ERROR]);
		for (int o = 0; o < OUTCOME_ERROR; o++)
			fixed(s[o], sizeof(s[o]), pr->share[o] * 100.0, 1);
		fixed(q[0], sizeof(q[0]), pr->p50, 1);
		fixed(q[1], sizeof(q[1]), pr->p95, 1);
		fixed(q[2], sizeof(q[2]), pr->p99, 1);
		fprintf(out, "  %8s  %6s  %6s  %8s  %9s  %9s  %8s  %8s  %8s\n", m, s[0], s[1], s[2], s[3], s[4],
		        q[0], q[1], q[2]);
	}
	for (size_t p = 0; p < cfg->nproviders; p++) {
		const struct provider_report *pr = &r->providers[p];
		char *c;
		if (pr->tab_known == 0)
			continue;
		c = cell(pr->provider, 24);
		fprintf(out, "%s tabs (%zu known):", c, pr->tab_known);
		free(c);
		for (int t = 0; t < TAB__COUNT; t++)
			fprintf(out, " %s %s%%", report_tab_names[t],
			        fixed(num, sizeof(num), 100.0 * (double)pr->tab_n[t] / (double)pr->tab_known, 1));
		fputc('\n', out);
	}
}

/* Gates: failures first, then the ones not evaluated. */
static void gate_lines(const struct round_report *r, FILE *out)
{
	const struct config *cfg = r->cfg;

	fputc('\n', out);
	if (r->window_basis)
		fprintf(out, "gates evaluated over the state store's window of %ld s\n", cfg->slo.window);
	for (size_t p = 0; p < cfg->nproviders; p++)
		for (int g = 0; g < SLO__COUNT; g++) {
			const struct gate_result *gr = &r->providers[p].gate[g];
			if (gr->evaluated && !gr->ok) {
				char *c = cell(r->providers[p].provider, 64);
				gate_line(out, c, (enum slo_gate)g, gr);
				free(c);
			}
		}
	for (size_t p = 0; p < cfg->nproviders; p++)
		for (int g = 0; g < SLO__COUNT; g++) {
			const struct gate_result *gr = &r->providers[p].gate[g];
			if (!gr->evaluated && isfinite(gr->threshold)) {
				char *c = cell(r->providers[p].provider, 64);
				fprintf(out, "skip %s %s: not evaluated: %s\n", c, slo_gate_name((enum slo_gate)g),
				        gr->reason);
				free(c);
			}
		}
}

/* The round's notes (interrupted, bounce mailbox) and the verdict with
 * its exit code and runbook link. */
static void verdict_lines(const struct round_report *r, FILE *out)
{
	int code = report_process_code(r, 0);   /* printed once every file was written */
	if (r->interrupted)
		fprintf(out, "interrupted: signal %d ended the round before its deadline; probes not "
		        "found yet are error (not measured)\n", r->interrupted);
	if (r->bounce_error)
		fprintf(out, "bounce mailbox: %s; a probe refused after the relay's 250 shows as "
		        "missing, not rejected\n", r->bounce_error);
	if (code == EXIT_GATES_OK)
		fprintf(out, "verdict: OK (exit 0): every gate holds and every seed was measured\n");
	else if (code == EXIT_GATE_FAILED)
		fprintf(out, "verdict: FAILED (exit 1): at least one gate failed on what was measured; "
		        "runbook: %s#exit-1-a-gate-failed\n", RUNBOOK);
	else {
		const char *why[4];
		size_t n = 0;

		if (r->any_error)
			why[n++] = "some seeds could not be measured (error)";
		if (r->report_write_failed)
			why[n++] = "a report could not be written";
		if (r->state_failed)
			why[n++] = "the state store failed (no memory across runs this time; the report "
			           "files were not rewritten)";
		if (r->bounce_error)
			why[n++] = "the bounce mailbox could not be watched (DSNs unattributed)";
		fprintf(out, "verdict: UNKNOWN (exit 3): no gate failed, but ");
		for (size_t i = 0; i < n; i++)
			fprintf(out, "%s%s", i == 0 ? "" : i + 1 == n ? " and " : ", ", why[i]);
		fprintf(out, "; runbook: %s#exit-3-result-unknown\n", RUNBOOK);
	}
}

void report_summary(const struct round_report *r, FILE *out)
{
	size_t ns = r->results ? r->cfg->nseeds : 0;

	seed_table(r, ns, out);
	diagnostics_in_full(r, ns, out);
	auth_failures(r, out);
	provider_table(r, out);
	gate_lines(r, out);
	verdict_lines(r, out);
}

/* Status text for Nagios: one line, no '|' (it starts the perfdata). */
static void nag_text(struct strbuf *sb, const char *s)
{
	char *c = cell(s, 64);
	for (char *p = c; *p; p++)
		if (*p == '|')
			*p = '/';
	strbuf_adds(sb, c);
	free(c);
}

/* A perfdata label: single-quoted, a quote doubled; '=' is not allowed
 * in labels by the guidelines and becomes '_'. */
static void perf_label(struct strbuf *sb, const char *prefix, const char *provider)
{
	strbuf_adds(sb, " '");
	strbuf_adds(sb, prefix);
	char *c = cell(provider, 64);
	for (char *p = c; *p; p++) {
		if (*p == '\'')
			strbuf_adds(sb, "''");
		else if (*p == '=' || *p == '|')
			strbuf_adds(sb, "_");
		else
			strbuf_add(sb, p, 1);
	}
	free(c);
	strbuf_adds(sb, "'=");
}

void report_nagios(const struct round_report *r, FILE *out)
{
	const struct config *cfg = r->cfg;
	size_t ns = r->results ? cfg->nseeds : 0;
	size_t measured = 0;
	struct strbuf sb = STRBUF_INIT;
	char v[64], t[64];
	int code = report_process_code(r, 1);
	static const char *const names[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };

	for (size_t i = 0; i < ns; i++)
		if ((int)r->results[i].outcome >= 0 && r->results[i].outcome < OUTCOME_ERROR)
			measured++;

	strbuf_addf(&sb, "INBOXPROBE %s - ", names[code]);
	if (code == NAGIOS_CRITICAL) {
		int first = 1;
		for (size_t p = 0; p < cfg->nproviders; p++)
			for (int g = 0; g < SLO__COUNT; g++) {
				const struct gate_result *gr = &r->providers[p].gate[g];
				if (!gr->evaluated || gr->ok)
					continue;
				strbuf_adds(&sb, first ? "gate failed: " : ", ");
				first = 0;
				nag_text(&sb, r->providers[p].provider);
				strbuf_addf(&sb, " %s %s %s %s", slo_gate_name((enum slo_gate)g),
				            fmt_double(v, sizeof(v), gr->value),
				            g == SLO_MIN_INBOX_RATIO ? "<" : ">",
				            fmt_double(t, sizeof(t), gr->threshold));
			}
		strbuf_adds(&sb, "; ");
	}
	strbuf_addf(&sb, "%zu/%zu seeds measured", measured, ns);
	if (measured < ns) {
		strbuf_adds(&sb, ", unmeasured: ");
		int first = 1;
		for (size_t i = 0; i < ns; i++) {
			if ((int)r->results[i].outcome >= 0 && r->results[i].outcome < OUTCOME_ERROR)
				continue;
			if (!first)
				strbuf_adds(&sb, ", ");
			first = 0;
			nag_text(&sb, cfg->seeds[i].address ? cfg->seeds[i].address : "");
			if (r->results[i].diagnostic[0]) {
				strbuf_adds(&sb, " (");
				nag_text(&sb, r->results[i].diagnostic);
				strbuf_adds(&sb, ")");
			}
		}
	}
	if (r->report_write_failed)
		strbuf_adds(&sb, ", a report could not be written");
	if (r->state_failed)
		strbuf_adds(&sb, ", the state store failed (reports not rewritten)");
	if (r->bounce_error)
		strbuf_adds(&sb, ", the bounce mailbox could not be watched");
	if (code == NAGIOS_OK)
		strbuf_adds(&sb, ", all gates hold");
	strbuf_adds(&sb, " |");

	for (size_t p = 0; p < cfg->nproviders; p++) {
		const struct provider_report *pr = &r->providers[p];
		struct slo_conf slo = config_slo_for(cfg, pr->provider);
		const struct gate_result *g;

		g = &pr->gate[SLO_MIN_INBOX_RATIO];
		double ratio = g->evaluated ? g->value : (pr->measured ? pr->share[OUTCOME_INBOX] : NAN);
		if (isfinite(ratio)) {
			perf_label(&sb, "inbox_ratio_", pr->provider);
			strbuf_addf(&sb, "%s;;%s:;0;1", fmt_double(v, sizeof(v), ratio),
			            fmt_double(t, sizeof(t), slo.min_inbox_ratio));
		}
		g = &pr->gate[SLO_MAX_LATENCY_P99];
		double p99 = g->evaluated ? g->value : pr->p99;
		if (isfinite(p99)) {
			perf_label(&sb, "p99_", pr->provider);
			strbuf_addf(&sb, "%ss;;%s;0;", fmt_double(v, sizeof(v), p99),
			            fmt_double(t, sizeof(t), slo.max_latency_p99));
		}
		g = &pr->gate[SLO_MAX_MISSING];
		double missing = g->evaluated ? g->value : (double)pr->n[OUTCOME_MISSING];
		perf_label(&sb, "missing_", pr->provider);
		strbuf_addf(&sb, "%s;;", fmt_double(v, sizeof(v), missing));
		if (slo.max_missing >= 0)
			strbuf_addf(&sb, "%ld", slo.max_missing);
		strbuf_adds(&sb, ";0;");
		perf_label(&sb, "measured_", pr->provider);
		strbuf_addf(&sb, "%zu;;;0;%zu", pr->measured, pr->measured + pr->n[OUTCOME_ERROR]);
	}
	strbuf_adds(&sb, "\n");
	fputs(sb.buf, out);
	strbuf_free(&sb);
}
