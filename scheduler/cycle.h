/*
 * cycle.h - one round from the state store to the report files: the path
 * that `inboxprobe run` and `inboxprobe daemon` share (docs/SPEC.md "What it is",
 * steps 1-5, and "Daemon": after each round the daemon writes the same
 * files a run does).
 *
 * A cycle looks up the probes of earlier rounds still pending in the state
 * store, runs the round (round_run), records its results and late arrivals,
 * prunes old rows, reads the totals back, computes the report and writes
 * the configured textfile, OpenMetrics, JSON and JUnit files. What is left
 * to the caller: the run lock, opening the store, libcurl's global init,
 * signal handlers, and the summary / exit code.
 *
 * Errors never stop a cycle: a state store failure is logged and sets
 * state_failed (the result is then unknown, exit 3), and then no report
 * file is written: the last good round's stay byte-identical. The report is
 * computed once from every status, before any file is written, so every
 * file says the same; a report file that cannot be written is logged and,
 * once all were written, sets rep->report_write_failed, which changes only
 * the process's exit code and the messages (report_process_code).
 */
#ifndef INBOXPROBE_CYCLE_H
#define INBOXPROBE_CYCLE_H

#include <stddef.h>
#include <stdio.h>
#include "seeds/config.h"
#include "scheduler/round.h"
#include "scheduler/state.h"
#include "reports/report.h"

struct cycle_params {
	const struct config *cfg;      /* borrowed; must outlive the cycle's report */
	struct state *st;              /* borrowed; NULL: no state store */
	int state_failed;              /* 1: the store is configured but could not be opened */
	long deadline;                 /* seconds for the round */
	int progress;                  /* 1: a line per seed event on stderr */
	/* NULL, or fills the daemon's figures for the files; called once the
	 * round is over, just before the files are written */
	void (*daemon_figures)(void *arg, struct report_daemon *out);
	void *daemon_arg;
	struct session_pool *pool;     /* the daemon's kept IMAP sessions, or NULL (round.h) */
	struct cycle_backlog *backlog; /* the daemon's rounds not recorded yet, or NULL */
};

/*
 * Rounds whose record in the state store failed (full file system, store
 * held past the patience), kept in memory by the daemon and recorded, in
 * order, at the start of its next cycles, before anything else touches the
 * store: so probes_total never undercounts a round the store missed, and
 * its missing and unmeasured probes become pending and are cleaned up.
 * At most CYCLE_BACKLOG_MAX rounds and CYCLE_BACKLOG_PROBES_MAX probes
 * (each probe's result is about 14 KiB: 16 rounds of 1,000 seeds held
 * 231 MiB); beyond that the oldest rounds are dropped and the log names
 * their probes; the newest round is always kept. `run` has no backlog: its
 * process ends.
 */
#define CYCLE_BACKLOG_MAX 16
#define CYCLE_BACKLOG_PROBES_MAX 4096
struct cycle_backlog;
struct cycle_backlog *cycle_backlog_new(void);
/* Rounds still waiting to be recorded. */
size_t cycle_backlog_len(const struct cycle_backlog *b);
/* Probes of the rounds still waiting (each round counts all its seeds). */
size_t cycle_backlog_probes(const struct cycle_backlog *b);
/* Keep a copy of rr, the round of cfg the store could not record (the
 * oldest rounds dropped, and their probes logged, beyond the limits above). */
void cycle_backlog_push(struct cycle_backlog *b, const struct config *cfg,
                        const struct round_result *rr);
/* Record the rounds waiting, oldest first (cycle_run does it before its
 * recovery, which would count their written-ahead rows as error). Returns
 * 0 when none is left waiting, 1 when the store failed again (logged). */
struct state;
int cycle_backlog_record(struct cycle_backlog *b, struct state *st);
/* Free it; the rounds still in it are named in the log as not recorded.
 * NULL is allowed. */
void cycle_backlog_free(struct cycle_backlog *b);

struct cycle {
	struct round_result rr;
	struct state_totals *totals;   /* heap, ntotals entries (cfg->nproviders), or NULL */
	size_t ntotals;
	struct round_report *rep;      /* heap; borrows cfg, rr.results and totals */
	int state_failed;              /* the store could not be read or written */
};

/* The run lock path of a configuration, keyed by its name (two files with
 * the same name would write the same metric series anyway), from the
 * configuration alone, never the environment (scheduler/runlock.h,
 * docs/state.md "Run lock"): LOCK_DIR/NAME.lock when lock_dir is set, else
 * STATE.NAME.lock beside the state store (configurations sharing a store
 * keep their rows apart by name and do not block each other), else
 * INBOXPROBE_LOCKDIR/NAME.lock (configure --with-lockdir, default
 * /run/inboxprobe). A run and a daemon of one configuration exclude each
 * other whatever user each runs as. A name with characters other than
 * [A-Za-z0-9._-] (or starting with '.') has them replaced by '_' and its
 * FNV-1a hash appended, so "a/b" and "a_b" never share a lock.
 * Returns a heap string the caller frees. */
char *cycle_lock_path(const struct config *cfg);

/* Check the lock's directory (run_lock_dir_check: the per-system one is
 * created when missing) and take the run lock (run_lock_acquire).
 * *lockpath (heap, caller frees) is set whatever the result. Returns 0
 * taken (*lock set), 1 held by another run, -1 error; *errstr (heap) is
 * set when not 0 and names the path and, when known, the holder's pid. */
struct run_lock;
int cycle_lock_take(const struct config *cfg, char **lockpath, struct run_lock **lock,
                    char **errstr);

/* Run one cycle (see above) and fill *out; never fails as a whole.
 * Release with cycle_free(). */
void cycle_run(const struct cycle_params *p, struct cycle *out);

/* Release what cycle_run() filled (not the borrowed config or store).
 * A zeroed struct is allowed. */
void cycle_free(struct cycle *c);

/* Record one pending probe found (a late arrival, or an unmeasured probe
 * cleaned up) in the store: state_record_late, and state_set_cleanup with
 * whether its cleanup is still to do ("failed..."). Returns 1 when the
 * store failed (logged, naming the probe), else 0. */
int cycle_record_late(const struct config *cfg, struct state *st, const struct round_late *l);

/* The learned announcement delays of cfg's IMAP servers from the store
 * (SPEC "Latency"), each with its window of recent lags, for a round or
 * the daemon's keeper. Returns a heap array of *n entries (caller frees;
 * NULL when none); st NULL or a store error (logged): what was read. */
struct round_delay *cycle_load_delays(struct state *st, const struct config *cfg, size_t *n);

/* The daemon between rounds, after cycle_record_late(): c's report
 * computed again (same round, same statuses) over totals read anew from
 * st. *totals (ntotals entries; free with state_totals_free) and *rep
 * (report_free; borrows cfg, c's results and *totals) are new; c is not
 * changed. 0, or -1 when the store cannot be read (logged). */
int cycle_recompute(const struct config *cfg, struct state *st, const struct cycle *c,
                    struct state_totals **totals, size_t *ntotals, struct round_report **rep);

/* Write every configured report file of cfg from rep (atomically, as a
 * round does). Returns 1 when any failed (logged), else 0. */
int cycle_write_reports(const struct config *cfg, const struct round_report *rep);

/* Print the late arrivals (and probes of unmeasured rounds cleaned up) of
 * the cycle's round to out, one line each. */
void cycle_print_late(const struct config *cfg, const struct round_result *rr, FILE *out);

#endif
