/*
 * junit.c - the JUnit XML report in the Jenkins/Ant format (validated by
 * tests/data/junit.xsd): one <testsuite> per provider, one <testcase> per
 * seed (classname "inboxprobe.<provider>", name = seed address, time = the
 * latency or 0), and one <testcase> "slo <gate>" per evaluated gate.
 *
 * Outcome inbox passes; spam, missing, rejected and deferred are a
 * <failure type="<outcome>">; error is an <error type="error">. Text is
 * XML 1.0 escaped, made valid UTF-8 (invalid bytes and characters XML
 * forbids become U+FFFD), times are decimals in the C locale.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "reports/report.h"

/* Round half away from zero without libm (the library links no -lm). */
static long long round_ll(double v)
{
	return v < 0 ? -(long long)(-v + 0.5) : (long long)(v + 0.5);
}

/* Escape for XML 1.0 text or attribute values. */
static void x_esc(struct strbuf *sb, const char *v)
{
	const unsigned char *s = (const unsigned char *)(v ? v : "");
	size_t n = strlen((const char *)s);
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		const char *rep = NULL;
		switch (c) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&apos;"; break;
		case '\n': rep = "&#10;"; break;
		case '\r': rep = "&#13;"; break;
		case '\t': rep = "&#9;"; break;
		default: break;
		}
		if (rep) {
			strbuf_adds(sb, rep);
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {      /* not an XML 1.0 character (DEL is, but confuses) */
			strbuf_adds(sb, "\xEF\xBF\xBD");
			i++;
			continue;
		}
		size_t l = utf8_decode(s + i, n - i, NULL);
		if (l == 0) {
			strbuf_adds(sb, "\xEF\xBF\xBD");
			i++;
		} else if (l == 3 && s[i] == 0xEF && s[i + 1] == 0xBF && (s[i + 2] == 0xBE || s[i + 2] == 0xBF)) {
			strbuf_adds(sb, "\xEF\xBF\xBD");   /* U+FFFE, U+FFFF: not XML characters */
			i += 3;
		} else {
			strbuf_add(sb, s + i, l);
			i += l;
		}
	}
}

/* Seconds as an xs:decimal with millisecond precision, locale-free. */
static void x_time(struct strbuf *sb, double v)
{
	if (!isfinite(v) || v < 0)
		v = 0;
	long long ms = round_ll(v * 1000.0);
	strbuf_addf(sb, "%lld.%03lld", ms / 1000, ms % 1000);
}

static double seed_time(const struct probe_result *res)
{
	if (report_found(res) && res->have_latency && isfinite(res->latency) && res->latency > 0)
		return res->latency;
	return 0;
}

/* "outcome: diagnostic", with a generic explanation when there is none. */
static char *failure_message(const struct probe_result *res)
{
	const char *o = outcome_name(res->outcome);
	if (res->diagnostic[0])
		return xasprintf("%s: %s", o, res->diagnostic);
	switch (res->outcome) {
	case OUTCOME_SPAM:
		return xasprintf("%s: found in the spam folder %s", o, res->folder);
	case OUTCOME_MISSING:
		return xasprintf("%s: accepted by the relay, not found by the deadline", o);
	case OUTCOME_REJECTED:
	case OUTCOME_DEFERRED:
		if (res->reply.code)
			return xasprintf("%s: relay replied %d %s %s", o, res->reply.code, res->reply.enhanced,
			                 res->reply.text);
		if (res->dsn.present)
			return xasprintf("%s: DSN status %s", o, res->dsn.status);
		return xasprintf("%s", o);
	default:
		return xasprintf("%s", o);
	}
}

/* Details of one probe, for the failure body and system-out. */
static char *details(const struct probe_result *res)
{
	struct strbuf sb = STRBUF_INIT;
	char num[64];
	strbuf_addf(&sb, "outcome: %s\ntoken: %s\n", outcome_name(res->outcome), res->token);
	if (report_found(res))
		strbuf_addf(&sb, "folder: %s\n", res->folder);
	if (report_found(res) && res->have_latency)
		strbuf_addf(&sb, "latency_seconds: %s\n", fmt_double(num, sizeof(num), res->latency));
	if (res->clock_skew > 0)
		strbuf_addf(&sb, "clock_skew_seconds: %s\n", fmt_double(num, sizeof(num), res->clock_skew));
	strbuf_addf(&sb, "attempts: %d\n", res->attempts);
	if (res->reply.code)
		strbuf_addf(&sb, "relay_reply: %d %s %s%s%s%s\n", res->reply.code, res->reply.enhanced,
		            res->reply.text, res->reply.queue_id[0] ? " (queue id " : "", res->reply.queue_id,
		            res->reply.queue_id[0] ? ")" : "");
	if (res->reply.code && res->reply.stage[0])
		strbuf_addf(&sb, "relay_stage: %s\n", res->reply.stage);
	if (res->dsn.present)
		strbuf_addf(&sb, "dsn: status %s, remote MTA %s, %s\n", res->dsn.status, res->dsn.remote_mta,
		            res->dsn.diagnostic);
	if (res->diagnostic[0])
		strbuf_addf(&sb, "diagnostic: %s\n", res->diagnostic);
	if (res->cleanup[0])
		strbuf_addf(&sb, "cleanup: %s\n", res->cleanup);
	return strbuf_detach(&sb);
}

static void gate_message(char *buf, size_t sz, enum slo_gate g, const struct gate_result *gr)
{
	char v[64], t[64];
	if (g == SLO_REQUIRE_AUTH) {
		snprintf(buf, sz, "%s: %.0f found probes without a pass", slo_gate_name(g), gr->value);
		return;
	}
	if (g == SLO_MAX_MISSING) {
		snprintf(buf, sz, "%s: %.0f %s %.0f", slo_gate_name(g), gr->value, gr->ok ? "<=" : ">",
		         gr->threshold);
		return;
	}
	fmt_double(v, sizeof(v), gr->value);
	fmt_double(t, sizeof(t), gr->threshold);
	if (g == SLO_MIN_INBOX_RATIO || g == SLO_MIN_PRIMARY_RATIO)
		snprintf(buf, sz, "%s: %s %s %s", slo_gate_name(g), v, gr->ok ? ">=" : "<", t);
	else
		snprintf(buf, sz, "%s: %s s %s %s s", slo_gate_name(g), v, gr->ok ? "<=" : ">", t);
}

char *report_junit(const struct round_report *r)
{
	const struct config *cfg = r->cfg;
	struct strbuf sb = STRBUF_INIT;
	size_t ns = r->results ? cfg->nseeds : 0;
	size_t all_tests = 0, all_fail = 0, all_err = 0;
	double dur = r->ended - r->started;
	char stamp[32] = "1970-01-01T00:00:00";
	time_t tt = (time_t)r->started;
	struct tm tm;

	if (isfinite(r->started) && r->started > 0 && gmtime_r(&tt, &tm))
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

	/* Count first: the totals go on <testsuites>. */
	for (size_t p = 0; p < cfg->nproviders; p++) {
		const struct provider_report *pr = &r->providers[p];
		for (int o = 0; o < OUTCOME__COUNT; o++)
			all_tests += pr->n[o];
		all_fail += pr->n[OUTCOME_SPAM] + pr->n[OUTCOME_MISSING] + pr->n[OUTCOME_REJECTED] +
		            pr->n[OUTCOME_DEFERRED];
		all_err += pr->n[OUTCOME_ERROR];
		for (int g = 0; g < SLO__COUNT; g++)
			if (pr->gate[g].evaluated) {
				all_tests++;
				all_fail += !pr->gate[g].ok;
			}
	}

	strbuf_adds(&sb, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"inboxprobe ");
	x_esc(&sb, cfg->name);
	strbuf_addf(&sb, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" time=\"", all_tests, all_fail, all_err);
	x_time(&sb, dur);
	strbuf_adds(&sb, "\">\n");

	for (size_t p = 0; p < cfg->nproviders; p++) {
		const struct provider_report *pr = &r->providers[p];
		size_t tests = 0, fail = 0, err = pr->n[OUTCOME_ERROR];
		for (int o = 0; o < OUTCOME__COUNT; o++)
			tests += pr->n[o];
		fail = pr->n[OUTCOME_SPAM] + pr->n[OUTCOME_MISSING] + pr->n[OUTCOME_REJECTED] +
		       pr->n[OUTCOME_DEFERRED];
		for (int g = 0; g < SLO__COUNT; g++)
			if (pr->gate[g].evaluated) {
				tests++;
				fail += !pr->gate[g].ok;
			}

		strbuf_adds(&sb, "  <testsuite name=\"inboxprobe.");
		x_esc(&sb, pr->provider);
		strbuf_addf(&sb, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"0\" time=\"",
		            tests, fail, err);
		x_time(&sb, dur);
		strbuf_addf(&sb, "\" timestamp=\"%s\">\n    <properties>\n      <property name=\"config\" value=\"",
		            stamp);
		x_esc(&sb, cfg->name);
		strbuf_addf(&sb, "\"/>\n      <property name=\"gate_basis\" value=\"%s\"/>\n    </properties>\n",
		            r->window_basis ? "window" : "round");

		for (size_t i = 0; i < ns; i++) {
			const struct probe_result *res = &r->results[i];
			if (cfg->seeds[i].provider == NULL || strcmp(cfg->seeds[i].provider, pr->provider) != 0)
				continue;
			strbuf_adds(&sb, "    <testcase classname=\"inboxprobe.");
			x_esc(&sb, pr->provider);
			strbuf_adds(&sb, "\" name=\"");
			x_esc(&sb, cfg->seeds[i].address);
			strbuf_adds(&sb, "\" time=\"");
			x_time(&sb, seed_time(res));
			strbuf_adds(&sb, "\">\n");
			char *det = details(res);
			if (res->outcome != OUTCOME_INBOX) {
				int is_err = res->outcome == OUTCOME_ERROR || (int)res->outcome < 0 ||
				             res->outcome >= OUTCOME__COUNT;
				const char *el = is_err ? "error" : "failure";
				char *msg = failure_message(res);
				strbuf_addf(&sb, "      <%s message=\"", el);
				x_esc(&sb, msg);
				strbuf_addf(&sb, "\" type=\"%s\">", is_err ? "error" : outcome_name(res->outcome));
				x_esc(&sb, det);
				strbuf_addf(&sb, "</%s>\n", el);
				free(msg);
			}
			if (res->outcome == OUTCOME_INBOX) {   /* a failure carries the details already */
				strbuf_adds(&sb, "      <system-out>");
				x_esc(&sb, det);
				strbuf_adds(&sb, "</system-out>\n");
			}
			strbuf_adds(&sb, "    </testcase>\n");
			free(det);
		}
		for (int g = 0; g < SLO__COUNT; g++) {
			const struct gate_result *gr = &pr->gate[g];
			char msg[256];
			if (!gr->evaluated)
				continue;
			gate_message(msg, sizeof(msg), (enum slo_gate)g, gr);
			strbuf_adds(&sb, "    <testcase classname=\"inboxprobe.");
			x_esc(&sb, pr->provider);
			strbuf_addf(&sb, "\" name=\"slo %s\" time=\"0.000\"", slo_gate_name((enum slo_gate)g));
			if (gr->ok) {
				strbuf_adds(&sb, "/>\n");
				continue;
			}
			strbuf_adds(&sb, ">\n      <failure message=\"");
			x_esc(&sb, msg);
			strbuf_adds(&sb, "\" type=\"slo\">");
			x_esc(&sb, msg);
			strbuf_adds(&sb, "</failure>\n    </testcase>\n");
		}
		strbuf_adds(&sb, "  </testsuite>\n");
	}
	strbuf_adds(&sb, "</testsuites>\n");
	return strbuf_detach(&sb);
}
