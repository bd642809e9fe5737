/*
 * round_int.h - internal to scheduler/: the round's shared state and the
 * helpers that round.c (submission, bounces, the round) and watch.c
 * (arming and watching a seed's mailbox) both use.
 */
#ifndef INBOXPROBE_ROUND_INT_H
#define INBOXPROBE_ROUND_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include "common/model.h"
#include "prober/imap.h"
#include "scheduler/driver.h"
#include "scheduler/round.h"
#include "seeds/config.h"

/* At most this many sessions of one IMAP host are being opened (TCP, TLS,
 * greeting, LOGIN) at once; the rest wait for a turn, not counted against
 * their command timeouts. 2,000 logins thrown at a server at once made a
 * loaded one answer some LOGINs after the 30 s timeout (bench_scale.sh);
 * a server spends the same work on them in turns, and each login then
 * finishes within its timeout. */
#define ROUND_OPENING_MAX 64

struct open_gate {
	struct open_gate *next;
	char *host;
	int port;
	long opening;
	pthread_cond_t cv;         /* signalled when one of opening ends */
};

/* Connection counters per IMAP host and account, and SMTP transactions. */
struct limit_entry {
	char *key;
	long count;
};

/* A thread waiting in round_slot_acquire(), queued in arrival order. */
struct slot_waiter {
	struct slot_waiter *prev, *next;
	size_t host, acct;         /* indices into the limiter's e */
	long per_host, per_account;
	int granted;               /* set, counted and unqueued by slot_grant() */
	pthread_cond_t cv;         /* signalled when granted */
};

struct limiter {
	pthread_mutex_t mu;
	struct slot_waiter *wait_head, *wait_tail;   /* IMAP slot waiters, oldest first */
	struct limit_entry *e;
	size_t n;
	size_t *slots;          /* open-addressing hash of keys: index + 1 into e, 0 free */
	size_t nslots;          /* a power of two, at least twice n; 0 before the first key */
	long smtp_active;
	pthread_cond_t smtp_cv;    /* signalled (one waiter) when an SMTP slot frees up */
	struct open_gate *gates;   /* per IMAP host: sessions being opened (ROUND_OPENING_MAX) */
};

struct dispatch;
struct worker;

struct round_ctx {
	const struct round_params *p;
	const struct config *cfg;
	const struct imap_driver *drv;   /* the IMAP protocol (p->driver or the real one) */
	double deadline;                 /* now_mono() limit */
	double started;
	struct limiter lim;
	pthread_mutex_t mu;              /* guards everything below */
	struct probe_result *results;
	int *accepted;                   /* per seed: 1 once the relay said 2xx */
	size_t workers_left;
	struct round_late *late;
	size_t nlate;
	char bounce_error[DIAG_MAX];     /* why the bounce mailbox could not be watched */
	char *probe_from;                /* the From address our probes carry (the proof) */
	int bounce_armed;                /* the bounce mailbox is armed (or failed): seeds may send */
	pthread_cond_t bounce_cv;        /* signalled when bounce_armed is set */
	pthread_cond_t done_cv;          /* signalled as each seed and worker thread ends */
	struct dispatch *dsp;            /* hands the seeds to worker threads (dispatch.h) */
	struct worker *ended;            /* worker threads that ended, not joined yet */
	size_t threads, spawning;        /* worker threads running; being started */
	size_t threads_total;            /* worker threads started in the round */
	FILE *timeline;                  /* INBOXPROBE_TIMELINE (round_mark()), or NULL */
};

/* Test-only timeline for bench/ (bench/README.md "Timeline of a round";
 * bench/timeline.py reads it): when the environment names a file in
 * INBOXPROBE_TIMELINE, append "UNIX_SECONDS SEED_INDEX EVENT" to it; idx
 * -1 is the round, -2 the seed whose worker runs on this thread (the
 * bounce mailbox's: -1). Costs one getenv per round when unset. Not a
 * user interface. */
void round_mark(struct round_ctx *ctx, long idx, const char *event);

/* Set up a round's shared state for p (borrowed, must outlive ctx): the
 * driver (p->driver or imap_driver_real), the deadline from now, locks,
 * and cfg->nseeds results (outcome error until decided). round_run() and
 * the engine's unit tests (tests/unit/test_engine.c). */
void round_ctx_init(struct round_ctx *ctx, const struct round_params *p);
/* Free what ctx owns (results and late arrivals too, unless the caller
 * took them and set the pointers to NULL) and destroy its locks. */
void round_ctx_destroy(struct round_ctx *ctx);

/* Close a seed's (or the bounce mailbox's) session at the end of its watch,
 * or, in the daemon (a pool in the round's params), end its IDLE and keep
 * it for the next round. */
void round_close_session(struct round_ctx *ctx, const struct imap_conf *ic, struct imap_session *s);

/* Sleep up to s seconds, in short slices, until the monotonic deadline or
 * a stop request. */
void round_nap(double s, double deadline);

/* Take one IMAP slot for ic's host and account, waiting until one is free.
 * Returns 0, or -1 when the deadline passed first (or the round stopped).
 * round_slot_try() does not wait: 0 taken, -1 none free. */
int round_slot_acquire(struct limiter *l, const struct imap_conf *ic, long per_host,
                       long per_account, double deadline);
int round_slot_try(struct limiter *l, const struct imap_conf *ic, long per_host, long per_account);
void round_slot_release(struct limiter *l, const struct imap_conf *ic);

/* A line on stderr per seed event (with -v, or progress on a terminal). */
void round_progress(struct round_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Short text for an IMAP error code, e.g. "IMAP authentication failed"
 * (retry_text(), scheduler/retry.h). */
const char *round_imap_error_text(int rc);

/* Open an IMAP session for ic. [UNAVAILABLE], refused or failed
 * connections and connections closed (or BYE) before the login completed
 * are retried with backoff (1, 2, 4, 8, 8... s) while the first half of the
 * round allows: servers cap connections per client IP (Courier's
 * MAXPERIP) and a slot frees up. seed: the seed address whose probes the
 * session proves (NULL for the bounce mailbox). IMAP_* and *err as
 * imap_open(). */
int round_open_session(struct round_ctx *ctx, const struct imap_conf *ic, const char *seed,
                       struct imap_session **s, char **err);

/* ---- watch.c: arming and watching one seed's mailbox ---- */

struct seed_watch;

/* Arm seed idx (SPEC "What it is", step 1): take a connection slot, log
 * in, resolve the spam folder, look once for earlier rounds' pending
 * probes, record each watched folder's UIDNEXT and start IDLE where the
 * session holds it. Returns a watch (caller ends it with watch_end()), or
 * NULL when the mailbox cannot be watched: then the seed's outcome is error
 * with a diagnostic saying why and "not sent: mailbox not watchable". */
struct seed_watch *watch_arm(struct round_ctx *ctx, size_t idx);

/* Watch the armed seed until its probe is found (accepted: this round's
 * probe was submitted), a failure DSN explains it, or the deadline passes.
 * Without an accepted probe, only earlier rounds' probes are looked for,
 * once. */
void watch_run(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int accepted);

/* Log out, give the connection slots back, free. NULL is allowed. */
void watch_end(struct round_ctx *ctx, size_t idx, struct seed_watch *w);

#endif
