/*
 * state.h - memory across runs (SQLite, one file): every probe, pending
 * probes looked for in later rounds, monotonic counters and the latency
 * histogram, the rolling window, and the run lock.
 *
 * Counters and histogram buckets are stored as totals in their own table
 * and only ever incremented, so pruning probe rows never lowers them.
 * Every write happens in one transaction with a busy timeout, so two runs
 * at once cannot corrupt the store.
 *
 * Error codes: 0 on success, -1 on error with *errstr (heap, caller frees)
 * naming the file and SQLite's message.
 */
#ifndef INBOXPROBE_STATE_H
#define INBOXPROBE_STATE_H

#include <stddef.h>
#include "common/model.h"
#include "seeds/config.h"

/* Histogram bucket upper bounds (seconds), SPEC "Metrics". */
#define STATE_NBUCKETS 12
extern const double state_buckets[STATE_NBUCKETS];  /* 1,2,5,10,20,30,60,120,300,600,1800,3600 */

struct state;

/* Open (create) the store at path, creating the schema. */
int state_open(const char *path, struct state **out, char **errstr);
void state_close(struct state *st);

/* A probe of an earlier round that was never found. */
struct state_pending {
	char token[TOKEN_MAX];
	char seed[256];           /* seed address */
	char provider[128];
	double submit_time;
	long long round_id;
};

/* Pending probes of config `name` for seed address `seed`, submitted after
 * `since` (Unix seconds): outcome missing or deferred, not yet found late.
 * *out heap array, caller frees. */
int state_pending(struct state *st, const char *name, const char *seed, double since,
                  struct state_pending **out, size_t *n, char **errstr);

/*
 * Record a finished round of config `name`: one row per result (token,
 * seed, provider, submit time, relay reply, outcome, folder, latency), and
 * in the same transaction increment probes_total{provider,outcome} and,
 * for found probes with a usable latency, the histogram.
 * providers[i] is the provider of results[i].
 */
int state_record_round(struct state *st, const char *name, double started, double ended,
                       const struct probe_result *results, const char *const *seeds,
                       const char *const *providers, size_t n, char **errstr);

/* Record a late arrival of a pending probe: its folder ("inbox"/"spam"),
 * INTERNALDATE and true latency. Increments late_arrivals_total and the
 * histogram (when the latency is usable) once; a second call for the same
 * token changes nothing. */
int state_record_late(struct state *st, const char *name, const char *token,
                      const char *folder_kind, double internaldate, double latency,
                      int latency_usable, char **errstr);

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
};

/* Totals of config `name` for every provider in providers (in that order),
 * window over [now - window, now]. *out heap array of n elements; free
 * with state_totals_free(). */
int state_totals(struct state *st, const char *name, const char *const *providers, size_t n,
                 double now, long window, struct state_totals **out, char **errstr);
void state_totals_free(struct state_totals *t, size_t n);

/* Delete probe rows older than retention_days. Never touches the totals. */
int state_prune(struct state *st, long retention_days, double now, char **errstr);

/* Run lock: one active run per configuration. Held with flock(2) on
 * lockpath until run_lock_release(). Returns 0 when acquired, 1 when
 * another run holds it (nothing to do), -1 on error (*errstr). */
struct run_lock;
int run_lock_acquire(const char *lockpath, struct run_lock **out, char **errstr);
void run_lock_release(struct run_lock *l);

#endif
