/*
 * state.c - the SQLite state store (see state.h and
 * docs/state.md).
 *
 * Concurrency: WAL journal, a busy timeout, and every write inside
 * BEGIN IMMEDIATE ... COMMIT (rolled back on any error), so two processes
 * using one file at once serialise their writes instead of corrupting it.
 * Only parameterised statements touch data.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/util.h"
#include "scheduler/state.h"

const double state_buckets[STATE_NBUCKETS] = {
	1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600
};

/* Counter and sum names in the counters/sums tables. */
#define C_PROBES "probes_total"
#define C_LATE "late_arrivals_total"
#define C_HIST "delivery_latency_seconds"
#define C_AUTH "auth_results_total"   /* label "method=result" */

/* "IbPr" - marks the file as an inboxprobe store (PRAGMA application_id). */
#define STATE_APPLICATION_ID 0x49625072

/*
 * Schema migrations: migrations[i] takes the store from user_version i to
 * i + 1. Append new entries; never edit a released one.
 */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE rounds ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  config TEXT NOT NULL,"
	"  started REAL NOT NULL,"
	"  ended REAL NOT NULL);"
	"CREATE INDEX rounds_config_started ON rounds(config, started);"
	"CREATE TABLE probes ("
	"  token TEXT PRIMARY KEY NOT NULL,"
	"  config TEXT NOT NULL,"
	"  round_id INTEGER NOT NULL REFERENCES rounds(id) ON DELETE CASCADE,"
	"  seed TEXT NOT NULL,"
	"  provider TEXT NOT NULL,"
	"  submit_time REAL NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  reply_code INTEGER NOT NULL DEFAULT 0,"
	"  reply_enhanced TEXT NOT NULL DEFAULT '',"
	"  reply_text TEXT NOT NULL DEFAULT '',"
	"  queue_id TEXT NOT NULL DEFAULT '',"
	"  outcome TEXT NOT NULL CHECK (outcome IN"
	"    ('inbox','spam','missing','rejected','deferred','error')),"
	"  folder TEXT NOT NULL DEFAULT '',"
	"  internaldate REAL,"
	"  latency REAL,"
	"  latency_usable INTEGER NOT NULL DEFAULT 0,"
	"  late INTEGER NOT NULL DEFAULT 0,"
	"  late_folder TEXT,"
	"  late_internaldate REAL,"
	"  late_latency REAL,"
	"  late_latency_usable INTEGER NOT NULL DEFAULT 0,"
	"  found_at REAL);"
	"CREATE INDEX probes_seed ON probes(config, seed, submit_time);"
	"CREATE INDEX probes_provider ON probes(config, provider, submit_time);"
	"CREATE INDEX probes_round ON probes(round_id);"
	"CREATE INDEX probes_pending ON probes(config, seed, submit_time)"
	"  WHERE outcome IN ('missing', 'deferred') AND late = 0;"
	"CREATE TABLE counters ("
	"  config TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  provider TEXT NOT NULL,"
	"  label TEXT NOT NULL,"
	"  value INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (config, name, provider, label));"
	"CREATE TABLE sums ("
	"  config TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  provider TEXT NOT NULL,"
	"  value REAL NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (config, name, provider));",
	/* 1 -> 2: write-ahead (a probe is recorded before it is submitted,
	 * counted = 0 until its round is recorded) and failed cleanups kept
	 * pending (cleanup_pending = 1 until a later round cleans it up) */
	"ALTER TABLE probes ADD COLUMN counted INTEGER NOT NULL DEFAULT 1;"
	"ALTER TABLE probes ADD COLUMN cleanup_pending INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX probes_uncounted ON probes(config) WHERE counted = 0;",
	/* 2 -> 3: learned IMAP announcement delays (SPEC "Latency") */
	"CREATE TABLE announce_delays ("
	"  server TEXT PRIMARY KEY NOT NULL,"
	"  delay REAL NOT NULL,"
	"  samples INTEGER NOT NULL DEFAULT 0,"
	"  updated REAL NOT NULL);",
	/* 3 -> 4: the lags of the last announced probes, so the learned delay
	 * can rise again (scheduler/delaywin.h): whole microseconds, oldest
	 * first, separated by spaces */
	"ALTER TABLE announce_delays ADD COLUMN recent TEXT NOT NULL DEFAULT '';",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STATE_SCHEMA_VERSION,
               "STATE_SCHEMA_VERSION must match the migrations");

/* Cached prepared statements. */
enum stmt_id {
	S_BEGIN_IMMEDIATE,
	S_BEGIN_READ,
	S_COMMIT,
	S_ROLLBACK,
	S_INSERT_ROUND,
	S_UPDATE_ROUND,
	S_INSERT_PROBE,
	S_AHEAD_UPDATE,
	S_INSERT_AHEAD,
	S_UNCOUNTED,
	S_RECOVER,
	S_SET_CLEANUP,
	S_COUNTER_INIT,
	S_COUNTER_ADD,
	S_SUM_INIT,
	S_SUM_ADD,
	S_PENDING,
	S_LATE_UPDATE,
	S_FOUND_UNMEASURED,
	S_PROBE_LOOKUP,
	S_COUNTERS_GET,
	S_SUM_GET,
	S_WINDOW_LAT,
	S_WINDOW_OUTCOMES,
	S_PRUNE_PROBES,
	S_PRUNE_ROUNDS,
	S__COUNT
};

static const char *const stmt_sql[S__COUNT] = {
	[S_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
	[S_BEGIN_READ] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_INSERT_ROUND] =
		"INSERT INTO rounds(config, started, ended) VALUES (?1, ?2, ?3)",
	[S_UPDATE_ROUND] =
		"UPDATE rounds SET started = ?2, ended = ?3 WHERE id = ?1",
	[S_INSERT_PROBE] =
		"INSERT OR IGNORE INTO probes(token, config, round_id, seed, provider, submit_time,"
		" attempts, reply_code, reply_enhanced, reply_text, queue_id, outcome, folder,"
		" internaldate, latency, latency_usable, found_at, cleanup_pending)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
	/* The round's outcome for a probe written ahead (same parameters as
	 * S_INSERT_PROBE); seed and provider stay as written ahead. */
	[S_AHEAD_UPDATE] =
		"UPDATE probes SET round_id = ?3, submit_time = ?6, attempts = ?7, reply_code = ?8,"
		" reply_enhanced = ?9, reply_text = ?10, queue_id = ?11, outcome = ?12, folder = ?13,"
		" internaldate = ?14, latency = ?15, latency_usable = ?16, found_at = ?17,"
		" cleanup_pending = ?18, counted = 1"
		" WHERE token = ?1 AND config = ?2 AND counted = 0 AND ?4 = seed AND ?5 = provider",
	/* Written ahead: an accepted-looking probe (submit_time = when it was
	 * written) of unknown outcome (error), not counted yet. */
	[S_INSERT_AHEAD] =
		"INSERT OR IGNORE INTO probes(token, config, round_id, seed, provider, submit_time,"
		" outcome, counted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'error', 0)",
	[S_UNCOUNTED] =
		"SELECT provider, count(*) FROM probes WHERE config = ?1 AND counted = 0"
		" GROUP BY provider",
	[S_RECOVER] =
		"UPDATE probes SET outcome = 'error', counted = 1 WHERE config = ?1 AND counted = 0",
	[S_SET_CLEANUP] =
		"UPDATE probes SET cleanup_pending = ?3 WHERE config = ?1 AND token = ?2",
	[S_COUNTER_INIT] =
		"INSERT OR IGNORE INTO counters(config, name, provider, label, value)"
		" VALUES (?1, ?2, ?3, ?4, 0)",
	[S_COUNTER_ADD] =
		"UPDATE counters SET value = value + ?5"
		" WHERE config = ?1 AND name = ?2 AND provider = ?3 AND label = ?4",
	[S_SUM_INIT] =
		"INSERT OR IGNORE INTO sums(config, name, provider, value) VALUES (?1, ?2, ?3, 0)",
	[S_SUM_ADD] =
		"UPDATE sums SET value = value + ?4 WHERE config = ?1 AND name = ?2 AND provider = ?3",
	/* Missing and deferred probes until found late (or pruned); accepted
	 * probes of seeds that could not be measured (error) only until found,
	 * so that they are cleaned up, and only for ?4 seconds. Newest first. */
	[S_PENDING] =
		"SELECT token, seed, provider, submit_time, round_id, outcome,"
		" (outcome NOT IN ('missing', 'deferred') OR late = 1) FROM probes"
		" WHERE config = ?1 AND seed = ?2 AND submit_time >= ?3 AND submit_time > 0"
		" AND counted = 1"
		" AND ((late = 0 AND found_at IS NULL"
		"       AND (outcome IN ('missing', 'deferred') OR (outcome = 'error' AND submit_time >= ?4)))"
		"   OR (cleanup_pending = 1 AND submit_time >= ?4))"
		" ORDER BY submit_time DESC, token",
	[S_LATE_UPDATE] =
		"UPDATE probes SET late = 1, late_folder = ?3, late_internaldate = ?4,"
		" late_latency = ?5, late_latency_usable = ?6, found_at = ?7"
		" WHERE config = ?1 AND token = ?2 AND late = 0"
		" AND outcome IN ('missing', 'deferred')",
	[S_PROBE_LOOKUP] =
		"SELECT provider, outcome FROM probes WHERE config = ?1 AND token = ?2",
	[S_FOUND_UNMEASURED] =
		"UPDATE probes SET found_at = ?3"
		" WHERE config = ?1 AND token = ?2 AND outcome = 'error' AND found_at IS NULL",
	[S_COUNTERS_GET] =
		"SELECT name, label, value FROM counters WHERE config = ?1 AND provider = ?2",
	[S_SUM_GET] =
		"SELECT value FROM sums WHERE config = ?1 AND name = ?2 AND provider = ?3",
	[S_WINDOW_LAT] =
		"SELECT latency FROM probes WHERE config = ?1 AND provider = ?2"
		" AND submit_time >= ?3 AND submit_time <= ?4"
		" AND outcome IN ('inbox', 'spam') AND latency_usable = 1"
		" UNION ALL "
		"SELECT late_latency FROM probes WHERE config = ?1 AND provider = ?2"
		" AND submit_time >= ?3 AND submit_time <= ?4"
		" AND late = 1 AND late_latency_usable = 1"
		" ORDER BY 1",
	/* A probe's time is its submit time; one never accepted (submit_time
	 * 0: rejected, deferred or error at the relay) takes its round's start. */
	[S_WINDOW_OUTCOMES] =
		"SELECT outcome, count(*) FROM probes WHERE config = ?1 AND provider = ?2 AND counted = 1"
		" AND ((submit_time >= ?3 AND submit_time <= ?4)"
		"   OR (submit_time <= 0 AND round_id IN"
		"       (SELECT id FROM rounds WHERE config = ?1 AND started >= ?3 AND started <= ?4)))"
		" GROUP BY outcome",
	[S_PRUNE_PROBES] =
		"DELETE FROM probes WHERE (submit_time > 0 AND submit_time < ?1)"
		" OR (submit_time <= 0 AND round_id IN (SELECT id FROM rounds WHERE started < ?1))",
	[S_PRUNE_ROUNDS] =
		"DELETE FROM rounds WHERE started < ?1"
		" AND NOT EXISTS (SELECT 1 FROM probes WHERE probes.round_id = rounds.id)",
};

struct state {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[S__COUNT];
	long long ahead_round;     /* rounds.id written ahead and not recorded yet, or 0 */
	char *ahead_name;          /* its configuration name */
};

/* ---- helpers ------------------------------------------------------------ */

static void set_err(struct state *st, char **errstr, const char *what)
{
	if (errstr == NULL)
		return;
	free(*errstr);
	*errstr = xasprintf("state store %s: %s: %s", st->path, what,
	                    st->db ? sqlite3_errmsg(st->db) : "no database");
}

/* Fetch (preparing once) a cached statement, reset and unbound. */
static sqlite3_stmt *stmt(struct state *st, enum stmt_id id, char **errstr)
{
	sqlite3_stmt *s = st->stmt[id];

	if (s == NULL) {
		if (sqlite3_prepare_v2(st->db, stmt_sql[id], -1, &s, NULL) != SQLITE_OK) {
			set_err(st, errstr, "preparing a statement");
			return NULL;
		}
		st->stmt[id] = s;
	} else {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
	return s;
}

/* Run a statement with no result rows to completion. */
static int step_done(struct state *st, sqlite3_stmt *s, const char *what, char **errstr)
{
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE) {
		set_err(st, errstr, what);
		sqlite3_reset(s);
		return -1;
	}
	sqlite3_reset(s);
	return 0;
}

static int exec_id(struct state *st, enum stmt_id id, const char *what, char **errstr)
{
	sqlite3_stmt *s = stmt(st, id, errstr);

	if (s == NULL)
		return -1;
	return step_done(st, s, what, errstr);
}

static int begin_write(struct state *st, char **errstr)
{
	return exec_id(st, S_BEGIN_IMMEDIATE, "starting a write transaction", errstr);
}

static int begin_read(struct state *st, char **errstr)
{
	return exec_id(st, S_BEGIN_READ, "starting a read transaction", errstr);
}

static int commit(struct state *st, char **errstr)
{
	return exec_id(st, S_COMMIT, "committing", errstr);
}

/* Roll back if a transaction is open; keeps the first error message. */
static void rollback(struct state *st)
{
	if (sqlite3_get_autocommit(st->db))
		return;
	exec_id(st, S_ROLLBACK, "rolling back", NULL);
}

static void bind_str(sqlite3_stmt *s, int i, const char *v)
{
	sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_TRANSIENT);
}

/* counters[config,name,provider,label] += delta */
static int counter_add(struct state *st, const char *cfg, const char *name, const char *provider,
                       const char *label, long long delta, char **errstr)
{
	sqlite3_stmt *s;

	if (delta == 0)
		return 0;
	if ((s = stmt(st, S_COUNTER_INIT, errstr)) == NULL)
		return -1;
	bind_str(s, 1, cfg);
	bind_str(s, 2, name);
	bind_str(s, 3, provider);
	bind_str(s, 4, label);
	if (step_done(st, s, "creating a counter", errstr) != 0)
		return -1;
	if ((s = stmt(st, S_COUNTER_ADD, errstr)) == NULL)
		return -1;
	bind_str(s, 1, cfg);
	bind_str(s, 2, name);
	bind_str(s, 3, provider);
	bind_str(s, 4, label);
	sqlite3_bind_int64(s, 5, delta);
	return step_done(st, s, "incrementing a counter", errstr);
}

static int sum_add(struct state *st, const char *cfg, const char *name, const char *provider,
                   double delta, char **errstr)
{
	sqlite3_stmt *s;

	if ((s = stmt(st, S_SUM_INIT, errstr)) == NULL)
		return -1;
	bind_str(s, 1, cfg);
	bind_str(s, 2, name);
	bind_str(s, 3, provider);
	if (step_done(st, s, "creating a sum", errstr) != 0)
		return -1;
	if ((s = stmt(st, S_SUM_ADD, errstr)) == NULL)
		return -1;
	bind_str(s, 1, cfg);
	bind_str(s, 2, name);
	bind_str(s, 3, provider);
	sqlite3_bind_double(s, 4, delta);
	return step_done(st, s, "adding to a sum", errstr);
}

/* Index of the first bucket whose upper bound holds v; STATE_NBUCKETS when
 * v is above the last bound (counted in +Inf only). */
static int bucket_index(double v)
{
	for (int i = 0; i < STATE_NBUCKETS; i++)
		if (v <= state_buckets[i])
			return i;
	return STATE_NBUCKETS;
}

/* Histogram accumulated in memory, written with hist_flush(). */
struct hist_acc {
	unsigned long long bucket[STATE_NBUCKETS + 1];   /* non-cumulative, last = above 3600 */
	unsigned long long count;
	double sum;
};

/* A usable latency may be slightly negative (clock skew up to 2 s, docs/SPEC.md
 * "Latency"); it counts as 0 so that _sum never goes down. */
static void hist_observe(struct hist_acc *h, double v)
{
	if (v < 0)
		v = 0;
	h->bucket[bucket_index(v)]++;
	h->count++;
	h->sum += v;
}

static int hist_flush(struct state *st, const char *cfg, const char *provider,
                      const struct hist_acc *h, char **errstr)
{
	char label[16];

	if (h->count == 0)
		return 0;
	for (int i = 0; i < STATE_NBUCKETS; i++) {
		snprintf(label, sizeof(label), "%d", i);
		if (counter_add(st, cfg, C_HIST, provider, label, (long long)h->bucket[i], errstr) != 0)
			return -1;
	}
	if (counter_add(st, cfg, C_HIST, provider, "count", (long long)h->count, errstr) != 0)
		return -1;
	return sum_add(st, cfg, C_HIST, provider, h->sum, errstr);
}

static int usable_latency(int flag, double latency)
{
	return flag && isfinite(latency);
}

/* ---- open / close ------------------------------------------------------- */

static int pragma_int(struct state *st, const char *sql, int *out, char **errstr)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		set_err(st, errstr, "reading the schema");
		sqlite3_finalize(s);
		return -1;
	}
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		set_err(st, errstr, "reading the schema");
		sqlite3_finalize(s);
		return -1;
	}
	*out = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return 0;
}

static int exec_sql(struct state *st, const char *sql, const char *what, char **errstr)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		set_err(st, errstr, what);
		return -1;
	}
	return 0;
}

/* Check the file is ours, then bring the schema up to SCHEMA_VERSION. */
static int migrate(struct state *st, char **errstr)
{
	int version = 0, appid = 0, ntables = 0;
	char sql[64];

	if (pragma_int(st, "PRAGMA user_version", &version, errstr) != 0)
		return -1;
	if (version == SCHEMA_VERSION)
		goto check_app;
	if (begin_write(st, errstr) != 0)
		return -1;
	/* Re-read under the write lock: another process may have migrated. */
	if (pragma_int(st, "PRAGMA user_version", &version, errstr) != 0)
		goto fail;
	if (pragma_int(st, "PRAGMA application_id", &appid, errstr) != 0)
		goto fail;
	if (version > SCHEMA_VERSION) {
		free(*errstr);
		*errstr = xasprintf("state store %s: schema version %d is newer than this inboxprobe "
		                    "supports (%d); use a newer inboxprobe or another path",
		                    st->path, version, SCHEMA_VERSION);
		goto fail;
	}
	if (version == 0) {
		if (pragma_int(st, "SELECT count(*) FROM sqlite_master", &ntables, errstr) != 0)
			goto fail;
		if (ntables > 0 || (appid != 0 && appid != STATE_APPLICATION_ID)) {
			free(*errstr);
			*errstr = xasprintf("state store %s: an SQLite database, but not an inboxprobe "
			                    "state store", st->path);
			goto fail;
		}
	}
	for (int v = version; v < SCHEMA_VERSION; v++) {
		if (exec_sql(st, migrations[v], "creating the schema", errstr) != 0)
			goto fail;
	}
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
	if (exec_sql(st, sql, "setting the schema version", errstr) != 0)
		goto fail;
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", STATE_APPLICATION_ID);
	if (exec_sql(st, sql, "setting the application id", errstr) != 0)
		goto fail;
	if (commit(st, errstr) != 0)
		goto fail;
	return 0;

check_app:
	if (pragma_int(st, "PRAGMA application_id", &appid, errstr) != 0)
		return -1;
	if (appid != STATE_APPLICATION_ID) {
		free(*errstr);
		*errstr = xasprintf("state store %s: an SQLite database, but not an inboxprobe "
		                    "state store", st->path);
		return -1;
	}
	return 0;
fail:
	rollback(st);
	return -1;
}

/* Switch to WAL. Changing the journal mode needs a moment with no other
 * connection writing; the busy handler covers it, retry a few times more. */
static int set_wal(struct state *st, char **errstr)
{
	sqlite3_stmt *s = NULL;
	int rc = SQLITE_ERROR;

	for (int attempt = 0; attempt < 5; attempt++) {
		if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL) != SQLITE_OK)
			break;
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			const unsigned char *mode = sqlite3_column_text(s, 0);
			if (mode == NULL || strcmp((const char *)mode, "wal") != 0)
				log_warn("state store %s: journal mode %s, not WAL", st->path,
				         mode ? (const char *)mode : "unknown");
			sqlite3_finalize(s);
			return 0;
		}
		sqlite3_finalize(s);
		s = NULL;
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
			break;
		sleep_seconds(0.05 * (attempt + 1));
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT ||
	    sqlite3_errcode(st->db) == SQLITE_NOTADB || sqlite3_errcode(st->db) == SQLITE_CORRUPT)
		set_err(st, errstr, "not an SQLite database, or a corrupt one");
	else
		set_err(st, errstr, "opening");
	return -1;
}

int state_open(const char *path, struct state **out, char **errstr)
{
	struct state *st;
	int rc;

	*out = NULL;
	if (path == NULL || *path == '\0') {
		*errstr = xstrdup("state store: empty path");
		return -1;
	}
	st = xcalloc(1, sizeof(*st));
	st->path = xstrdup(path);
	rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		set_err(st, errstr, "opening");
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 0);
	sqlite3_busy_timeout(st->db, 10000);
	if (set_wal(st, errstr) != 0)
		goto fail;
	if (exec_sql(st, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL",
	             "setting options", errstr) != 0)
		goto fail;
	if (migrate(st, errstr) != 0)
		goto fail;
	*out = st;
	return 0;
fail:
	state_close(st);
	return -1;
}

void state_close(struct state *st)
{
	if (st == NULL)
		return;
	if (st->db != NULL)
		rollback(st);
	for (int i = 0; i < S__COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	if (st->db != NULL)
		sqlite3_close(st->db);
	free(st->ahead_name);
	free(st->path);
	free(st);
}

/* ---- record a round ----------------------------------------------------- */

struct prov_acc {
	const char *provider;
	unsigned long long outcome[OUTCOME__COUNT];
	struct hist_acc hist;
};

static struct prov_acc *prov_find(struct prov_acc *acc, size_t *nacc, const char *provider)
{
	for (size_t i = 0; i < *nacc; i++)
		if (strcmp(acc[i].provider, provider) == 0)
			return &acc[i];
	acc[*nacc].provider = provider;
	return &acc[(*nacc)++];
}

/* auth_results_total += 1 for each distinct trusted (method, result) of a probe. */
static int count_verdicts(struct state *st, const char *name, const char *provider,
                          const struct probe_trace *t, char **errstr)
{
	for (int a = 0; a < t->nauth && a < AUTH_MAX; a++) {
		int dup = 0;
		for (int b = 0; b < a; b++)
			dup |= strcmp(t->auth[a].method, t->auth[b].method) == 0 &&
			       strcmp(t->auth[a].result, t->auth[b].result) == 0;
		if (dup || t->auth[a].method[0] == '\0')
			continue;
		char *label = xasprintf("%s=%s", t->auth[a].method, t->auth[a].result);
		int rc = counter_add(st, name, C_AUTH, provider, label, 1, errstr);
		free(label);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* One probe's row of a round: S_AHEAD_UPDATE (a row written ahead) or
 * S_INSERT_PROBE (a new one); *changed: 1 when a row was written. A found
 * probe whose cleanup failed ("failed: ...") stays pending for cleanup. */
static int record_probe(struct state *st, enum stmt_id id, const char *name, long long round_id,
                        const char *seed, const char *provider, const struct probe_result *r,
                        int *changed, char **errstr)
{
	int found = r->outcome == OUTCOME_INBOX || r->outcome == OUTCOME_SPAM;
	sqlite3_stmt *s = stmt(st, id, errstr);

	*changed = 0;
	if (s == NULL)
		return -1;
	bind_str(s, 1, r->token);
	bind_str(s, 2, name);
	sqlite3_bind_int64(s, 3, round_id);
	bind_str(s, 4, seed);
	bind_str(s, 5, provider);
	sqlite3_bind_double(s, 6, r->submit_time);
	sqlite3_bind_int(s, 7, r->attempts);
	sqlite3_bind_int(s, 8, r->reply.code);
	bind_str(s, 9, r->reply.enhanced);
	bind_str(s, 10, r->reply.text);
	bind_str(s, 11, r->reply.queue_id);
	bind_str(s, 12, outcome_name(r->outcome));
	bind_str(s, 13, r->folder);
	if (found) {
		sqlite3_bind_double(s, 14, r->internaldate);
		if (isfinite(r->latency))
			sqlite3_bind_double(s, 15, r->latency);
		sqlite3_bind_int(s, 16, usable_latency(r->have_latency, r->latency));
		if (r->found_time > 0)
			sqlite3_bind_double(s, 17, r->found_time);
	} else {
		sqlite3_bind_int(s, 16, 0);
	}
	sqlite3_bind_int(s, 18, found && strncmp(r->cleanup, "failed", 6) == 0);
	if (step_done(st, s, "recording a probe", errstr) != 0)
		return -1;
	*changed = sqlite3_changes(st->db) > 0;
	return 0;
}

int state_record_round(struct state *st, const char *name, double started, double ended,
                       const struct probe_result *results, const char *const *seeds,
                       const char *const *providers, size_t n, char **errstr)
{
	struct prov_acc *acc = NULL;
	size_t nacc = 0;
	sqlite3_stmt *s;
	long long round_id;
	int ret = -1;

	if (n > 0 && (results == NULL || seeds == NULL || providers == NULL)) {
		*errstr = xasprintf("state store %s: record_round: missing arrays", st->path);
		return -1;
	}
	if (begin_write(st, errstr) != 0)
		return -1;
	if (st->ahead_round != 0 && st->ahead_name != NULL && strcmp(st->ahead_name, name) == 0) {
		/* the round row written ahead with its probes */
		if ((s = stmt(st, S_UPDATE_ROUND, errstr)) == NULL)
			goto out;
		sqlite3_bind_int64(s, 1, st->ahead_round);
		sqlite3_bind_double(s, 2, started);
		sqlite3_bind_double(s, 3, ended);
		if (step_done(st, s, "recording a round", errstr) != 0)
			goto out;
		round_id = st->ahead_round;
	} else {
		if ((s = stmt(st, S_INSERT_ROUND, errstr)) == NULL)
			goto out;
		bind_str(s, 1, name);
		sqlite3_bind_double(s, 2, started);
		sqlite3_bind_double(s, 3, ended);
		if (step_done(st, s, "recording a round", errstr) != 0)
			goto out;
		round_id = sqlite3_last_insert_rowid(st->db);
	}

	acc = xcalloc(n ? n : 1, sizeof(*acc));
	for (size_t i = 0; i < n; i++) {
		const struct probe_result *r = &results[i];
		const char *provider = providers[i] ? providers[i] : "";
		int usable = usable_latency(r->have_latency, r->latency);
		int found = r->outcome == OUTCOME_INBOX || r->outcome == OUTCOME_SPAM;
		struct prov_acc *pa;

		if ((int)r->outcome < 0 || r->outcome >= OUTCOME__COUNT) {
			free(*errstr);
			*errstr = xasprintf("state store %s: probe %s has an invalid outcome %d",
			                    st->path, r->token, (int)r->outcome);
			goto out;
		}
		if (r->token[0] != '\0') {
			int changed = 0;

			/* written ahead: its outcome now, counted now; else a new row */
			if (record_probe(st, S_AHEAD_UPDATE, name, round_id, seeds[i], provider, r,
			                 &changed, errstr) != 0)
				goto out;
			if (!changed && record_probe(st, S_INSERT_PROBE, name, round_id, seeds[i],
			                             provider, r, &changed, errstr) != 0)
				goto out;
			/* The same token recorded again: already counted once. */
			if (!changed)
				continue;
		}
		if (found && count_verdicts(st, name, provider, &r->trace, errstr) != 0)
			goto out;
		pa = prov_find(acc, &nacc, provider);
		pa->outcome[r->outcome]++;
		if (found && usable)
			hist_observe(&pa->hist, r->latency);
	}
	for (size_t p = 0; p < nacc; p++) {
		for (int o = 0; o < OUTCOME__COUNT; o++)
			if (counter_add(st, name, C_PROBES, acc[p].provider, outcome_name(o),
			                (long long)acc[p].outcome[o], errstr) != 0)
				goto out;
		if (hist_flush(st, name, acc[p].provider, &acc[p].hist, errstr) != 0)
			goto out;
	}
	if (commit(st, errstr) != 0)
		goto out;
	if (round_id == st->ahead_round)
		st->ahead_round = 0;
	ret = 0;
out:
	if (ret != 0)
		rollback(st);
	free(acc);
	return ret;
}

/* ---- pending and late arrivals ------------------------------------------ */

static void copy_col(char *dst, size_t dstsz, sqlite3_stmt *s, int col)
{
	const unsigned char *v = sqlite3_column_text(s, col);

	xstrlcpy(dst, v ? (const char *)v : "", dstsz);
}

int state_pending(struct state *st, const char *name, const char *seed, double since,
                  struct state_pending **out, size_t *n, char **errstr)
{
	struct state_pending *arr = NULL;
	size_t len = 0, cap = 0;
	sqlite3_stmt *s;
	int rc;

	*out = NULL;
	*n = 0;
	if ((s = stmt(st, S_PENDING, errstr)) == NULL)
		return -1;
	bind_str(s, 1, name);
	bind_str(s, 2, seed);
	sqlite3_bind_double(s, 3, since);
	sqlite3_bind_double(s, 4, now_wall() - STATE_UNMEASURED_FOLLOWUP);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct state_pending *p;

		if (len == cap) {
			cap = cap ? cap * 2 : 8;
			arr = xrealloc(arr, cap * sizeof(*arr));
		}
		p = &arr[len++];
		memset(p, 0, sizeof(*p));
		copy_col(p->token, sizeof(p->token), s, 0);
		copy_col(p->seed, sizeof(p->seed), s, 1);
		copy_col(p->provider, sizeof(p->provider), s, 2);
		p->submit_time = sqlite3_column_double(s, 3);
		p->round_id = sqlite3_column_int64(s, 4);
		copy_col(p->outcome, sizeof(p->outcome), s, 5);
		p->cleanup_only = sqlite3_column_int(s, 6) != 0;
	}
	if (rc != SQLITE_DONE) {
		set_err(st, errstr, "reading pending probes");
		sqlite3_reset(s);
		free(arr);
		return -1;
	}
	sqlite3_reset(s);
	*out = arr;
	*n = len;
	return 0;
}

int state_record_late(struct state *st, const char *name, const char *token,
                      const char *folder_kind, double internaldate, double latency,
                      int latency_usable, char **errstr)
{
	sqlite3_stmt *s;
	char *provider = NULL;
	int usable = usable_latency(latency_usable, latency);
	int rc, ret = -1, unmeasured = 0;

	if (folder_kind == NULL ||
	    (strcmp(folder_kind, "inbox") != 0 && strcmp(folder_kind, "spam") != 0)) {
		*errstr = xasprintf("state store %s: late arrival of %s: folder must be "
		                    "\"inbox\" or \"spam\"", st->path, token ? token : "(null)");
		return -1;
	}
	if (token == NULL || *token == '\0') {
		*errstr = xasprintf("state store %s: late arrival without a token", st->path);
		return -1;
	}
	if (begin_write(st, errstr) != 0)
		return -1;
	if ((s = stmt(st, S_PROBE_LOOKUP, errstr)) == NULL)
		goto out;
	bind_str(s, 1, name);
	bind_str(s, 2, token);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(s, 0);
		const unsigned char *o = sqlite3_column_text(s, 1);
		provider = xstrdup(v ? (const char *)v : "");
		unmeasured = o != NULL && strcmp((const char *)o, "error") == 0;
	} else if (rc != SQLITE_DONE) {
		set_err(st, errstr, "looking up a probe");
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			*errstr = xasprintf("state store %s: late arrival of unknown probe %s",
			                    st->path, token);
		goto out;
	}
	if (unmeasured) {
		/* Its round could not measure it: found now, it is only cleaned
		 * up, never counted (it was not missing at its round's end). */
		if ((s = stmt(st, S_FOUND_UNMEASURED, errstr)) == NULL)
			goto out;
		bind_str(s, 1, name);
		bind_str(s, 2, token);
		sqlite3_bind_double(s, 3, now_wall());
		if (step_done(st, s, "recording a found unmeasured probe", errstr) != 0)
			goto out;
		if (commit(st, errstr) != 0)
			goto out;
		ret = 0;
		goto out;
	}
	if ((s = stmt(st, S_LATE_UPDATE, errstr)) == NULL)
		goto out;
	bind_str(s, 1, name);
	bind_str(s, 2, token);
	bind_str(s, 3, folder_kind);
	sqlite3_bind_double(s, 4, internaldate);
	if (isfinite(latency))
		sqlite3_bind_double(s, 5, latency);
	sqlite3_bind_int(s, 6, usable);
	sqlite3_bind_double(s, 7, now_wall());
	if (step_done(st, s, "recording a late arrival", errstr) != 0)
		goto out;
	if (sqlite3_changes(st->db) == 1) {
		struct hist_acc h;

		if (counter_add(st, name, C_LATE, provider, folder_kind, 1, errstr) != 0)
			goto out;
		memset(&h, 0, sizeof(h));
		if (usable)
			hist_observe(&h, latency);
		if (hist_flush(st, name, provider, &h, errstr) != 0)
			goto out;
	}
	if (commit(st, errstr) != 0)
		goto out;
	ret = 0;
out:
	if (ret != 0)
		rollback(st);
	free(provider);
	return ret;
}

/* ---- write-ahead and cleanup ------------------------------------------- */

void state_set_patience(struct state *st, double seconds)
{
	if (st == NULL || st->db == NULL)
		return;
	if (!(seconds > 0.1))
		seconds = 0.1;
	if (seconds > 3600)
		seconds = 3600;
	sqlite3_busy_timeout(st->db, (int)(seconds * 1000.0));
}

int state_write_ahead(struct state *st, const char *name, double now,
                      const char *const *tokens, const char *const *seeds,
                      const char *const *providers, size_t n, char **errstr)
{
	sqlite3_stmt *s;
	long long round_id;
	int ret = -1;

	if (n > 0 && (tokens == NULL || seeds == NULL || providers == NULL)) {
		*errstr = xasprintf("state store %s: write_ahead: missing arrays", st->path);
		return -1;
	}
	if (begin_write(st, errstr) != 0)
		return -1;
	if ((s = stmt(st, S_INSERT_ROUND, errstr)) == NULL)
		goto out;
	bind_str(s, 1, name);
	sqlite3_bind_double(s, 2, now);
	sqlite3_bind_double(s, 3, now);
	if (step_done(st, s, "writing a round ahead", errstr) != 0)
		goto out;
	round_id = sqlite3_last_insert_rowid(st->db);
	for (size_t i = 0; i < n; i++) {
		if (tokens[i] == NULL || tokens[i][0] == '\0')
			continue;
		if ((s = stmt(st, S_INSERT_AHEAD, errstr)) == NULL)
			goto out;
		bind_str(s, 1, tokens[i]);
		bind_str(s, 2, name);
		sqlite3_bind_int64(s, 3, round_id);
		bind_str(s, 4, seeds[i]);
		bind_str(s, 5, providers[i]);
		sqlite3_bind_double(s, 6, now);
		if (step_done(st, s, "writing a probe ahead", errstr) != 0)
			goto out;
	}
	if (commit(st, errstr) != 0)
		goto out;
	st->ahead_round = round_id;
	free(st->ahead_name);
	st->ahead_name = xstrdup(name);
	ret = 0;
out:
	if (ret != 0)
		rollback(st);
	return ret;
}

void state_forget_ahead(struct state *st)
{
	if (st != NULL)
		st->ahead_round = 0;
}

int state_recover(struct state *st, const char *name, size_t *n, char **errstr)
{
	struct { char *provider; long long count; } *acc = NULL;
	size_t nacc = 0;
	sqlite3_stmt *s;
	int rc, ret = -1;

	*n = 0;
	if (begin_write(st, errstr) != 0)
		return -1;
	if ((s = stmt(st, S_UNCOUNTED, errstr)) == NULL)
		goto out;
	bind_str(s, 1, name);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(s, 0);
		acc = xrealloc(acc, (nacc + 1) * sizeof(*acc));
		acc[nacc].provider = xstrdup(v ? (const char *)v : "");
		acc[nacc++].count = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		set_err(st, errstr, "reading probes written ahead");
		goto out;
	}
	for (size_t i = 0; i < nacc; i++) {
		if (counter_add(st, name, C_PROBES, acc[i].provider, outcome_name(OUTCOME_ERROR),
		                acc[i].count, errstr) != 0)
			goto out;
		*n += (size_t)acc[i].count;
	}
	if ((s = stmt(st, S_RECOVER, errstr)) == NULL)
		goto out;
	bind_str(s, 1, name);
	if (step_done(st, s, "recovering probes written ahead", errstr) != 0)
		goto out;
	if (commit(st, errstr) != 0)
		goto out;
	ret = 0;
out:
	if (ret != 0) {
		rollback(st);
		*n = 0;
	}
	for (size_t i = 0; i < nacc; i++)
		free(acc[i].provider);
	free(acc);
	return ret;
}

int state_set_cleanup(struct state *st, const char *name, const char *token, int pending,
                      char **errstr)
{
	sqlite3_stmt *s;

	if ((s = stmt(st, S_SET_CLEANUP, errstr)) == NULL)
		return -1;
	bind_str(s, 1, name);
	bind_str(s, 2, token);
	sqlite3_bind_int(s, 3, pending ? 1 : 0);
	return step_done(st, s, "recording a cleanup", errstr);
}

/* ---- totals ------------------------------------------------------------- */

/* A window query (S_WINDOW_*) bound to config name, provider and the
 * window [from, to] in Unix seconds; NULL with *errstr on error. */
static sqlite3_stmt *window_stmt(struct state *st, enum stmt_id id, const char *name,
                                 const char *provider, double from, double to, char **errstr)
{
	sqlite3_stmt *s = stmt(st, id, errstr);

	if (s == NULL)
		return NULL;
	bind_str(s, 1, name);
	bind_str(s, 2, provider);
	sqlite3_bind_double(s, 3, from);
	sqlite3_bind_double(s, 4, to);
	return s;
}

static void auth_add(struct state_totals *t, const char *label, unsigned long long value)
{
	const char *eq = strchr(label, '=');
	struct state_auth_count *c;
	if (eq == NULL || eq == label || (size_t)(eq - label) >= sizeof c->method)
		return;
	t->auth = xrealloc(t->auth, (t->nauth + 1) * sizeof *t->auth);
	c = &t->auth[t->nauth++];
	memset(c, 0, sizeof *c);
	memcpy(c->method, label, (size_t)(eq - label));
	xstrlcpy(c->result, eq + 1, sizeof c->result);
	c->n = value;
}

static int cmp_auth(const void *a, const void *b)
{
	const struct state_auth_count *x = a, *y = b;
	int c = strcmp(x->method, y->method);
	return c ? c : strcmp(x->result, y->result);
}

static int totals_one(struct state *st, const char *name, struct state_totals *t,
                      double from, double to, char **errstr)
{
	unsigned long long raw[STATE_NBUCKETS] = { 0 };
	size_t cap = 0;
	sqlite3_stmt *s;
	int rc;

	/* Counters. */
	if ((s = stmt(st, S_COUNTERS_GET, errstr)) == NULL)
		return -1;
	bind_str(s, 1, name);
	bind_str(s, 2, t->provider);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *cname = (const char *)sqlite3_column_text(s, 0);
		const char *label = (const char *)sqlite3_column_text(s, 1);
		sqlite3_int64 v = sqlite3_column_int64(s, 2);
		unsigned long long value = v > 0 ? (unsigned long long)v : 0;

		if (cname == NULL || label == NULL)
			continue;
		if (strcmp(cname, C_PROBES) == 0) {
			int o = outcome_from_name(label);
			if (o >= 0)
				t->probes[o] = value;
		} else if (strcmp(cname, C_LATE) == 0) {
			if (strcmp(label, "inbox") == 0)
				t->late_inbox = value;
			else if (strcmp(label, "spam") == 0)
				t->late_spam = value;
		} else if (strcmp(cname, C_AUTH) == 0) {
			auth_add(t, label, value);
		} else if (strcmp(cname, C_HIST) == 0) {
			char *end;
			long i;

			if (strcmp(label, "count") == 0) {
				t->hist_count = value;
				continue;
			}
			errno = 0;
			i = strtol(label, &end, 10);
			if (errno == 0 && *end == '\0' && end != label && i >= 0 && i < STATE_NBUCKETS)
				raw[i] = value;
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		set_err(st, errstr, "reading counters");
		return -1;
	}
	for (int i = 0; i < STATE_NBUCKETS; i++)
		t->bucket[i] = raw[i] + (i > 0 ? t->bucket[i - 1] : 0);
	if (t->nauth > 1)
		qsort(t->auth, t->nauth, sizeof *t->auth, cmp_auth);

	/* Histogram sum. */
	if ((s = stmt(st, S_SUM_GET, errstr)) == NULL)
		return -1;
	bind_str(s, 1, name);
	bind_str(s, 2, C_HIST);
	bind_str(s, 3, t->provider);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		t->hist_sum = sqlite3_column_double(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		set_err(st, errstr, "reading the latency sum");
		return -1;
	}

	/* Window latencies, sorted by SQL. */
	if ((s = window_stmt(st, S_WINDOW_LAT, name, t->provider, from, to, errstr)) == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) == SQLITE_NULL)
			continue;
		if (t->window_samples == cap) {
			cap = cap ? cap * 2 : 16;
			t->window_latencies = xrealloc(t->window_latencies,
			                               cap * sizeof(*t->window_latencies));
		}
		t->window_latencies[t->window_samples++] = sqlite3_column_double(s, 0);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		set_err(st, errstr, "reading window latencies");
		return -1;
	}

	/* Window outcomes. */
	if ((s = window_stmt(st, S_WINDOW_OUTCOMES, name, t->provider, from, to, errstr)) == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *label = (const char *)sqlite3_column_text(s, 0);
		int o = outcome_from_name(label);
		sqlite3_int64 v = sqlite3_column_int64(s, 1);

		if (o >= 0 && v > 0)
			t->window_outcomes[o] = (size_t)v;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		set_err(st, errstr, "reading window outcomes");
		return -1;
	}
	return 0;
}

int state_totals(struct state *st, const char *name, const char *const *providers, size_t n,
                 double now, long window, struct state_totals **out, char **errstr)
{
	struct state_totals *t;
	double from = now - (window > 0 ? (double)window : 0.0);

	*out = NULL;
	t = xcalloc(n ? n : 1, sizeof(*t));
	for (size_t i = 0; i < n; i++)
		xstrlcpy(t[i].provider, providers[i] ? providers[i] : "", sizeof(t[i].provider));
	/* One read transaction: every provider sees the same snapshot. */
	if (begin_read(st, errstr) != 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (totals_one(st, name, &t[i], from, now, errstr) != 0)
			goto fail;
	if (commit(st, errstr) != 0)
		goto fail;
	*out = t;
	return 0;
fail:
	rollback(st);
	state_totals_free(t, n);
	return -1;
}

void state_totals_free(struct state_totals *t, size_t n)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(t[i].window_latencies);
		free(t[i].auth);
	}
	free(t);
}

/* ---- prune -------------------------------------------------------------- */

int state_prune(struct state *st, long retention_days, double now, char **errstr)
{
	double cutoff;
	sqlite3_stmt *s;

	if (retention_days <= 0)
		return 0;
	cutoff = now - (double)retention_days * 86400.0;
	if (begin_write(st, errstr) != 0)
		return -1;
	if ((s = stmt(st, S_PRUNE_PROBES, errstr)) == NULL)
		goto fail;
	sqlite3_bind_double(s, 1, cutoff);
	if (step_done(st, s, "pruning probes", errstr) != 0)
		goto fail;
	if ((s = stmt(st, S_PRUNE_ROUNDS, errstr)) == NULL)
		goto fail;
	sqlite3_bind_double(s, 1, cutoff);
	if (step_done(st, s, "pruning rounds", errstr) != 0)
		goto fail;
	if (commit(st, errstr) != 0)
		goto fail;
	return 0;
fail:
	rollback(st);
	return -1;
}
/* ---- learned announcement delays ---------------------------------------- */

int state_announce_delay_get(struct state *st, const char *server, double *delay, long *samples,
                             char *recent, size_t recentsz, char **errstr)
{
	sqlite3_stmt *s = NULL;
	int rc, ret = -1;

	if (recentsz > 0)
		recent[0] = '\0';
	if (sqlite3_prepare_v2(st->db, "SELECT delay, samples, recent FROM announce_delays WHERE server = ?1",
	                       -1, &s, NULL) != SQLITE_OK) {
		set_err(st, errstr, "reading announcement delays");
		return -1;
	}
	bind_str(s, 1, server);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*delay = sqlite3_column_double(s, 0);
		/* a count the daemon adds to (round.c): a tampered row's
		 * negative or huge one starts again from what is sane */
		sqlite3_int64 k = sqlite3_column_int64(s, 1);
		*samples = k < 0 ? 0 : k > STATE_SAMPLES_MAX ? STATE_SAMPLES_MAX : (long)k;
		if (recentsz > 0 && sqlite3_column_text(s, 2) != NULL)
			xstrlcpy(recent, (const char *)sqlite3_column_text(s, 2), recentsz);
		ret = 0;
	} else if (rc == SQLITE_DONE) {
		ret = 1;
	} else {
		set_err(st, errstr, "reading announcement delays");
	}
	sqlite3_finalize(s);
	return ret;
}

int state_announce_delay_put(struct state *st, const char *server, double delay, long samples,
                             const char *recent, double now, char **errstr)
{
	sqlite3_stmt *s = NULL;
	int ret = -1;

	if (!(delay >= 0) || !isfinite(delay)) {
		*errstr = xasprintf("state store %s: announcement delay of %s is not a number of seconds",
		                    st->path, server);
		return -1;
	}
	if (sqlite3_prepare_v2(st->db, "INSERT INTO announce_delays(server, delay, samples, updated, recent) "
	                       "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(server) DO UPDATE SET "
	                       "delay = excluded.delay, samples = excluded.samples, "
	                       "updated = excluded.updated, recent = excluded.recent",
	                       -1, &s, NULL) != SQLITE_OK) {
		set_err(st, errstr, "writing an announcement delay");
		return -1;
	}
	bind_str(s, 1, server);
	sqlite3_bind_double(s, 2, delay);
	sqlite3_bind_int64(s, 3, samples);
	sqlite3_bind_double(s, 4, now);
	bind_str(s, 5, recent ? recent : "");
	if (sqlite3_step(s) == SQLITE_DONE)
		ret = 0;
	else
		set_err(st, errstr, "writing an announcement delay");
	sqlite3_finalize(s);
	return ret;
}
