/*
 * fuzz_state.c - the state store's rows as later runs read them back
 * (scheduler/state.c): a store written by another version, edited by
 * hand or damaged holds any value of any SQLite type in any column. The
 * input is decoded into rows of `rounds`, `probes`, `counters` and `sums`
 * (CHECK constraints off), then the run's read paths go over them:
 * state_pending, state_totals, report_compute with the totals and the
 * Prometheus, OpenMetrics and JSON encoders, state_record_late and
 * state_prune. Invariants: the text formats never
 * carry a non-finite number other than +Inf/-Inf/NaN as the formats spell
 * them, and a counter read back is never negative.
 *
 * Input format, repeated: one byte picks the table (mod 4), then one
 * value per column, each a type byte (mod 6: NULL, 64-bit integer, small
 * integer, double, text from a dictionary of the names the queries look
 * for, raw text of up to 255 bytes) and its bytes.
 */
#include <config.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sqlite3.h>

#include "common/util.h"
#include "reports/report.h"
#include "scheduler/state.h"
#include "seeds/config.h"
#include "tests/fuzz/fuzz.h"

#define NOW 1764547200.0

static struct config *cfg;
static struct state *st;
static sqlite3 *raw;
static char *store_path;

static const char *const dict[] = {
	"fuzz", "seed1@inbox.test", "seed2@inbox.test", "mainstream", "bulk",
	"inbox", "spam", "missing", "rejected", "deferred", "error",
	"probes_total", "late_arrivals_total", "delivery_latency_seconds", "count",
	"0", "5", "11", "12", "-1", "99999999999999999999", "1e308", "",
	"7d1f0c9e4b2a85d6e3f1a0b9c8d7e6f5", "INBOX", "Junk",
};
#define NDICT (sizeof(dict) / sizeof(dict[0]))

static const char cfg_text[] =
	"name = \"fuzz\";\n"
	"relay = { url = \"smtp://127.0.0.1:2525\"; tls = \"none\"; from = \"probe@relay.test\"; };\n"
	"probe = { deadline = 60; };\n"
	"slo = { evaluate = \"window\"; max_missing = 0; };\n"
	"imap_defaults = { url = \"imap://127.0.0.1:1143\"; tls = \"none\"; password = \"pw\"; };\n"
	"seeds = ( { address = \"seed1@inbox.test\"; provider = \"mainstream\"; },\n"
	"          { address = \"seed2@inbox.test\"; provider = \"bulk\"; } );\n";

static const char *const inserts[4] = {
	"INSERT INTO rounds(id, config, started, ended) VALUES (?1, ?2, ?3, ?4)",
	"INSERT INTO probes(token, config, round_id, seed, provider, submit_time, attempts,"
	" reply_code, reply_enhanced, reply_text, queue_id, outcome, folder, internaldate,"
	" latency, latency_usable, late, late_folder, late_internaldate, late_latency,"
	" late_latency_usable, found_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
	" ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
	"INSERT INTO counters(config, name, provider, label, value) VALUES (?1, ?2, ?3, ?4, ?5)",
	"INSERT INTO sums(config, name, provider, value) VALUES (?1, ?2, ?3, ?4)",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *e = NULL, *cfg_path;
	(void)argc;
	(void)argv;

	cfg_path = xasprintf("%s/state.cfg", fuzz_tmpdir());
	store_path = xasprintf("%s/state.db", fuzz_tmpdir());
	/* mode 0600: the configuration holds an inline password */
	if (write_file_atomic(cfg_path, cfg_text, strlen(cfg_text), &e) != 0 ||
	    chmod(cfg_path, 0600) != 0 || config_load(cfg_path, &cfg, &e) != 0 || state_open(store_path, &st, &e) != 0)
		fuzz_fail("set-up: %s", e);
	free(cfg_path);
	if (sqlite3_open(store_path, &raw) != SQLITE_OK ||
	    sqlite3_exec(raw, "PRAGMA ignore_check_constraints = ON; PRAGMA foreign_keys = OFF;"
	                 " PRAGMA synchronous = OFF", NULL, NULL, NULL) != SQLITE_OK)
		fuzz_fail("set-up: %s", sqlite3_errmsg(raw));
	sqlite3_busy_timeout(raw, 10000);
	return 0;
}

struct input {
	const uint8_t *p;
	size_t n;
};

static int take(struct input *in, void *out, size_t len)
{
	if (in->n < len)
		return -1;
	memcpy(out, in->p, len);
	in->p += len;
	in->n -= len;
	return 0;
}

/* Bind one value taken from the input to parameter i; -1 at the end. */
static int bind_value(struct input *in, sqlite3_stmt *s, int i)
{
	uint8_t type, b;
	int64_t v;
	double d;

	if (take(in, &type, 1) != 0)
		return -1;
	switch (type % 6) {
	case 0:
		return sqlite3_bind_null(s, i), 0;
	case 1:
		if (take(in, &v, sizeof(v)) != 0)
			return -1;
		return sqlite3_bind_int64(s, i, v), 0;
	case 2:
		if (take(in, &b, 1) != 0)
			return -1;
		return sqlite3_bind_int(s, i, (int8_t)b), 0;
	case 3:
		if (take(in, &d, sizeof(d)) != 0)
			return -1;
		return sqlite3_bind_double(s, i, d), 0;
	case 4:
		if (take(in, &b, 1) != 0)
			return -1;
		return sqlite3_bind_text(s, i, dict[b % NDICT], -1, SQLITE_STATIC), 0;
	default:
		if (take(in, &b, 1) != 0 || in->n < b)
			return -1;
		sqlite3_bind_text(s, i, (const char *)in->p, b, SQLITE_TRANSIENT);
		in->p += b;
		in->n -= b;
		return 0;
	}
}

static void load_rows(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	uint8_t t;

	if (sqlite3_exec(raw, "BEGIN; DELETE FROM probes; DELETE FROM rounds;"
	                 " DELETE FROM counters; DELETE FROM sums", NULL, NULL, NULL) != SQLITE_OK)
		fuzz_fail("clearing: %s", sqlite3_errmsg(raw));
	while (take(&in, &t, 1) == 0) {
		sqlite3_stmt *s;
		int ok = 1;

		if (sqlite3_prepare_v2(raw, inserts[t % 4], -1, &s, NULL) != SQLITE_OK)
			fuzz_fail("prepare: %s", sqlite3_errmsg(raw));
		for (int i = 1; i <= sqlite3_bind_parameter_count(s) && ok; i++)
			ok = bind_value(&in, s, i) == 0;
		if (ok && sqlite3_step(s) == SQLITE_DONE && getenv("FUZZ_STATE_DEBUG") != NULL)
			fprintf(stderr, "fuzz_state: a row in %.20s\n", inserts[t % 4] + 12);
		/* a NOT NULL or UNIQUE violation just drops the row */
		sqlite3_finalize(s);
		if (!ok)
			break;
	}
	if (sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		fuzz_fail("commit: %s", sqlite3_errmsg(raw));
}

/* Every number in a Prometheus/OpenMetrics sample line is finite or
 * spelled +Inf, -Inf or NaN. */
static void check_text(const char *what, const char *text)
{
	FUZZ_CHECK(text != NULL, "%s: no output", what);
	for (const char *l = text; *l; ) {
		const char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);

		if (len > 0 && *l != '#') {
			const char *sp = memrchr(l, ' ', len);
			FUZZ_CHECK(sp != NULL, "%s: a sample without a value: %.*s", what, (int)len, l);
			char *v = xstrndup(sp + 1, len - (size_t)(sp + 1 - l)), *end;
			double d = strtod(v, &end);
			FUZZ_CHECK(*v != '\0' && *end == '\0', "%s: value \"%s\" in %.*s", what, v,
			           (int)len, l);
			if (!isfinite(d))
				FUZZ_CHECK(strcmp(v, "+Inf") == 0 || strcmp(v, "-Inf") == 0 ||
				           strcmp(v, "NaN") == 0, "%s: value \"%s\"", what, v);
			free(v);
		}
		l += len + (nl != NULL);
	}
}

static void read_back(void)
{
	struct state_pending *pend = NULL;
	struct state_totals *tot = NULL;
	struct probe_result res[2];
	size_t npend = 0;
	char *e = NULL;

	if (state_pending(st, "fuzz", "seed1@inbox.test", 0, &pend, &npend, &e) != 0)
		fuzz_fail("state_pending: %s", e);
	for (size_t i = 0; i < npend && i < 4; i++) {
		if (state_record_late(st, "fuzz", pend[i].token, i % 2 ? "spam" : "inbox",
		                      NOW - 10, 5.0, 1, &e) != 0) {
			free(e);
			e = NULL;
		}
	}

	if (state_totals(st, "fuzz", (const char *const *)cfg->providers, cfg->nproviders, NOW,
	                 3600, &tot, &e) != 0)
		fuzz_fail("state_totals: %s", e);
	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < 2; i++) {
		res[i].seed_index = i;
		res[i].outcome = i ? OUTCOME_MISSING : OUTCOME_INBOX;
	}
	struct round_report *r = report_compute(cfg, res, NOW - 60, NOW, tot, NULL);
	char *t = report_prometheus_text(r);
	if (getenv("FUZZ_STATE_DEBUG") != NULL)
		fprintf(stderr, "fuzz_state: %zu pending\n%s", npend, t);
	check_text("textfile", t);
	free(t);
	t = report_openmetrics(r);
	check_text("openmetrics", t);
	free(t);
	t = report_json(r);
	FUZZ_CHECK(t != NULL, "no JSON");
	free(t);
	report_free(r);
	free(pend);
	state_totals_free(tot, cfg->nproviders);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *e = NULL;

	load_rows(data, size);
	read_back();
	if (state_prune(st, 30, NOW, &e) != 0)
		fuzz_fail("state_prune: %s", e);
	return 0;
}
