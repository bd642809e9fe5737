/*
 * state.h - memory across runs (SQLite, one file): every probe, pending
 * probes looked for in later rounds, monotonic counters and the latency
 * histogram and the rolling window (the run lock: runlock.h).
 *
 * Counters and histogram buckets are stored as totals in their own table
 * and only ever incremented, so pruning probe rows never lowers them.
 * Every write happens in one transaction with a busy timeout, so two runs
 * at once cannot corrupt the store.
 *
 * Error codes: 0 on success, -1 on error with *errstr (heap, caller frees)
 * naming the file and SQLite's message. Pass errstr pointing to a NULL
 * char *. Schema and semantics: docs/state.md.
 *
 * Threads: one struct state is used from one thread at a time (the main
 * thread). Several processes may use the same file at once.
 */
#ifndef INBOXPROBE_STATE_H
#define INBOXPROBE_STATE_H

#include <stddef.h>
#include "common/model.h"
#include "seeds/config.h"

/* Histogram bucket upper bounds (seconds), docs/SPEC.md "Metrics". */
#define STATE_NBUCKETS 12
extern const double state_buckets[STATE_NBUCKETS];  /* 1,2,5,10,20,30,60,120,300,600,1800,3600 */

struct state;

/* Schema version this build writes (PRAGMA user_version). */
#define STATE_SCHEMA_VERSION 4

/* Open (create) the store at path, creating or migrating the schema
 * (WAL journal, 10 s busy timeout, foreign keys on). Errors (-1, *out
 * NULL, *errstr naming path): not an SQLite file or a corrupt one, an
 * SQLite database that is not an inboxprobe store, a schema newer than
 * STATE_SCHEMA_VERSION, I/O or permission errors. Free with state_close(). */
int state_open(const char *path, struct state **out, char **errstr);
/* Close the store (rolling back anything open). NULL is allowed. */
void state_close(struct state *st);

/* A probe of an earlier round that was never found. */
/* How long (seconds) an accepted probe of a seed that could not be
 * measured (outcome error: IMAP down, round interrupted) is looked for in
 * later rounds, so that it is found and cleaned up. It is never counted. */
#define STATE_UNMEASURED_FOLLOWUP (2 * 86400.0)

struct state_pending {
	char token[TOKEN_MAX];
	char outcome[12];         /* its round's outcome: missing, deferred or error */
	char seed[256];           /* seed address */
	char provider[128];
	double submit_time;
	long long round_id;
	int cleanup_only;         /* 1: looked for only to clean it up (its round could not
	                             measure it, or it was found but its cleanup failed):
	                             never counted again */
};

/* Pending probes of config `name` for seed address `seed`, submitted at or
 * after `since` (Unix seconds), accepted by the relay (submit_time > 0, or
 * written ahead), counted: not yet found with outcome missing or deferred;
 * and, within the last STATE_UNMEASURED_FOLLOWUP seconds, to be cleaned up
 * only (cleanup_only): outcome error (unmeasured, interrupted, or written
 * ahead by a run that died) and probes found whose cleanup failed.
 * Newest first. *out heap array of *n elements (NULL when none), caller
 * frees. */
int state_pending(struct state *st, const char *name, const char *seed, double since,
                  struct state_pending **out, size_t *n, char **errstr);

/*
 * Record a finished round of config `name`: one row per result (token,
 * seed, provider, submit time, relay reply, outcome, folder, latency), and
 * in the same transaction increment probes_total{provider,outcome} and,
 * for found probes with a usable latency, the histogram, and for found
 * probes auth_results_total{provider,method,result} once per distinct
 * trusted verdict (res->trace.auth).
 * seeds[i] and providers[i] are the seed address and provider of
 * results[i]. Times are Unix seconds. A result with an empty token is
 * counted but gets no row; a row written ahead (state_write_ahead, same
 * struct state) gets the result and is counted now; a token already stored
 * and counted is neither stored nor counted again. A found probe whose
 * cleanup failed (cleanup "failed: ...") stays pending for cleanup. All of
 * it in one transaction: on error nothing changes.
 */
int state_record_round(struct state *st, const char *name, double started, double ended,
                       const struct probe_result *results, const char *const *seeds,
                       const char *const *providers, size_t n, char **errstr);

/*
 * Write-ahead (docs/state.md): record this round's probes of config `name`
 * before any is submitted, in one transaction with a new round row: one row
 * per non-empty tokens[i] (seed seeds[i], provider providers[i]) with
 * submit_time `now` (Unix seconds), outcome error and not counted yet.
 * Later rounds look for such a probe (to clean it up) if this process dies
 * before state_record_round() gives it its outcome and counts it; that call
 * (same struct state) updates these rows and this round row. 0, or -1 with
 * *errstr (nothing written; e.g. SQLITE_BUSY after the patience).
 */
int state_write_ahead(struct state *st, const char *name, double now,
                      const char *const *tokens, const char *const *seeds,
                      const char *const *providers, size_t n, char **errstr);

/* Forget the round row written ahead by this struct state (if any): the
 * next state_record_round() inserts a round row of its own, and its probes
 * written ahead are still updated (by token). For rounds recorded late
 * (cycle.h backlog). */
void state_forget_ahead(struct state *st);

/* Probes of config `name` written ahead by a run that ended before
 * recording its round (SIGKILL, OOM, power loss): give them outcome error
 * and count each once in probes_total{error}, in one transaction; they are
 * then pending for cleanup (state_pending). Call with the run lock held,
 * before state_write_ahead(). *n: how many. 0, or -1 with *errstr. */
int state_recover(struct state *st, const char *name, size_t *n, char **errstr);

/* Record whether a found probe's cleanup is still to do (pending 1: it
 * failed, later rounds look for it to clean it up; 0: done or kept by
 * design). Unknown tokens change nothing. 0, or -1 with *errstr. */
int state_set_cleanup(struct state *st, const char *name, const char *token, int pending,
                      char **errstr);

/* How long (seconds, at least 0.1) each later write waits for a store
 * locked by another process (SQLITE_BUSY, e.g. BEGIN EXCLUSIVE) before it
 * fails. state_open() sets 10 s. */
void state_set_patience(struct state *st, double seconds);

/* Record a late arrival of a pending probe: its folder ("inbox"/"spam"),
 * INTERNALDATE and true latency. Increments late_arrivals_total and the
 * histogram (when the latency is usable) once; a second call for the same
 * token changes nothing (returns 0), and so does a token whose outcome
 * was not missing/deferred. A probe whose outcome was error is marked found
 * (no longer pending) and counted nowhere. folder_kind other than "inbox"/"spam" or a
 * token not in the store: -1. Latency in seconds; latency_usable 0 (clock
 * skew) records the arrival but keeps it out of the histogram and window. */
int state_record_late(struct state *st, const char *name, const char *token,
                      const char *folder_kind, double internaldate, double latency,
                      int latency_usable, char **errstr);

/* auth_results_total: trusted verdicts of found probes, by method and result. */
struct state_auth_count {
	char method[24];
	char result[24];
	unsigned long long n;
};

/* Totals and the window for one provider. */
struct state_totals {
	char provider[128];
	unsigned long long probes[OUTCOME__COUNT];     /* probes_total by outcome */
	unsigned long long late_inbox, late_spam;      /* late_arrivals_total */
	unsigned long long bucket[STATE_NBUCKETS];     /* cumulative counts, le=state_buckets[i] */
	unsigned long long hist_count;                 /* +Inf bucket and _count */
	double hist_sum;
	/* window: found probes (round or late) with submit_time >= now - window */
	size_t window_samples;
	double *window_latencies;                      /* heap, sorted ascending, window_samples long */
	size_t window_outcomes[OUTCOME__COUNT];        /* this window's rounds, by outcome */
	struct state_auth_count *auth;                 /* heap, sorted by method then result */
	size_t nauth;
};

/* Totals of config `name` for every provider in providers (in that order),
 * window over [now - window, now] (seconds). Window latencies: found probes
 * with a usable latency (in their round or late) whose submit_time is in
 * the window. Window outcomes: probes whose submit_time is in the window,
 * or, never accepted (submit_time 0), whose round started in it.
 * A provider never seen has all zeros. *out heap array of n elements; free
 * with state_totals_free(). */
int state_totals(struct state *st, const char *name, const char *const *providers, size_t n,
                 double now, long window, struct state_totals **out, char **errstr);
void state_totals_free(struct state_totals *t, size_t n);

/* Delete probe rows older than retention_days (by submit time, or round
 * start for probes never accepted) and rounds left without probes.
 * Never touches the totals. retention_days <= 0 deletes nothing. */
int state_prune(struct state *st, long retention_days, double now, char **errstr);

/* The learned announcement delay of an IMAP server ("host:port"): the
 * smallest seen - INTERNALDATE, seconds, over the last probes an IDLE
 * EXISTS or a NOTIFY STATUS announced (SPEC "Latency",
 * scheduler/delaywin.h), how many probes it was learned from in all, and
 * recent: those last lags as delaywin_format() writes them ("" in a row
 * from before schema 4). get copies recent into recent/recentsz
 * (truncated, NUL-terminated) and returns 0 (found), 1 (none yet) or -1
 * (*errstr); put replaces the row (now: Unix seconds; recent NULL: ""),
 * 0 or -1 (*errstr). A stored count below 0 reads as 0, above
 * STATE_SAMPLES_MAX as STATE_SAMPLES_MAX (the file may be tampered with;
 * the count is added to). */
#define STATE_SAMPLES_MAX 1000000000L
int state_announce_delay_get(struct state *st, const char *server, double *delay, long *samples,
                             char *recent, size_t recentsz, char **errstr);
int state_announce_delay_put(struct state *st, const char *server, double delay, long samples,
                             const char *recent, double now, char **errstr);

#endif
