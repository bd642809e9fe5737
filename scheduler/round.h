/*
 * round.h - one probe round (docs/SPEC.md "What it is", steps 1-3): for every seed
 * build a tagged probe, submit it through the relay, watch the seed's inbox
 * and spam folder over IMAP until the probe is found or the round deadline
 * passes, watch the bounce mailbox for DSNs, and decide each outcome.
 *
 * Arm, then send: a seed's mailbox is armed (logged in, folders resolved,
 * UIDNEXT recorded, IDLE started) before its probe is submitted; a seed
 * that cannot be armed gets no probe (error, "not sent: mailbox not
 * watchable"). The bounce mailbox is armed first, outside imap_limits.
 *
 * Concurrency: each seed runs on a worker thread (scheduler/watch.c arms
 * and watches it); a host's seeds start while fewer than
 * ROUND_OPENING_MAX of them have no session open yet, and a thread whose
 * seed is done takes the next (scheduler/dispatch.h; seeds that take
 * turns all start at once). At most relay.connections SMTP transactions run at once,
 * each on a kept connection (prober/smtp.c);
 * IMAP sessions are capped per host and per account (imap_limits). A seed
 * has one session, or two (INBOX and spam folder each in IDLE) when the
 * limits let every seed of the host have two; a reconnect after a drop or
 * BYE is the only other login. Every network step is bounded by the
 * absolute round deadline.
 */
#ifndef INBOXPROBE_ROUND_H
#define INBOXPROBE_ROUND_H

#include <stdatomic.h>
#include <stddef.h>
#include "common/model.h"
#include "seeds/config.h"
#include "scheduler/delaywin.h"
#include "scheduler/state.h"

#define ROUND_PENDING_PER_SEED 128   /* earlier probes looked for per seed, newest first */

/* Set (to the signal number) by the caller's SIGTERM/SIGINT handler: the
 * round stops waiting at its next check (within about half a second, or the
 * IMAP/SMTP command in flight, bounded by its timeout), records what it has
 * measured, and marks accepted probes not found yet as error ("round
 * interrupted") so that later rounds look for them only to clean them up. */
extern atomic_int round_stop;   /* lock-free, so a signal handler may store to it */

/* A probe of an earlier round, looked for again in this one. */
struct session_pool;
struct imap_driver;

struct round_pending {
	size_t seed_index;
	struct state_pending p;
};

/* A pending probe found in this round. */
struct round_late {
	size_t seed_index;
	char token[TOKEN_MAX];
	char folder_kind[8];       /* "inbox" or "spam" */
	char folder[FOLDER_MAX];   /* display name */
	double submit_time;
	double internaldate;
	double latency;            /* seconds, INTERNALDATE - submit time */
	int latency_usable;        /* 0 when clock skew made it negative beyond 2 s */
	int counted;               /* 1: a late arrival (its round said missing/deferred);
	                              0: its round could not measure it (error): cleaned up only */
	char cleanup[64];          /* what cleanup did: "deleted", "trashed", "kept..." */
};

/* A server's learned IDLE/NOTIFY announcement delay (SPEC "Latency"). */
#define ROUND_SERVER_MAX 280
struct round_delay {
	char server[ROUND_SERVER_MAX];   /* "host:port" of the IMAP server */
	double delay;                    /* seconds: the smallest seen - INTERNALDATE over win */
	long samples;                    /* announced probes it was learned from, in all */
	struct delay_window win;         /* the last DELAY_WINDOW announced probes' lags */
};

struct round_params {
	const struct config *cfg;        /* borrowed */
	long deadline;                   /* seconds for the whole round */
	int progress;                    /* 1: a line per seed event on stderr */
	const struct round_pending *pending;  /* borrowed; may be NULL */
	size_t npending;
	/* NULL, or cfg->nseeds tokens made (token_generate) and written ahead
	 * to the state store before the round; borrowed. NULL or "" entries:
	 * the round makes that seed's token. */
	const char *const *tokens;
	const struct round_delay *delays;     /* learned so far (state store); borrowed; may be NULL */
	struct session_pool *pool;       /* the daemon's sessions kept between rounds (seeds'
	                                    sessions are taken from and given back to it); NULL:
	                                    every session is opened and closed by the round */
	size_t ndelays;
	const struct imap_driver *driver;     /* the IMAP protocol (scheduler/driver.h); borrowed;
	                                         NULL: imap_driver_real */
};

struct round_result {
	struct probe_result *results;    /* cfg->nseeds entries, seed order; heap */
	double started, ended;           /* Unix seconds */
	struct round_late *late;         /* heap; nlate entries */
	size_t nlate;
	int interrupted;                 /* round_stop ended the round early */
	char bounce_error[DIAG_MAX];     /* "" or why the bounce mailbox could not be watched
	                                    (DSNs after 250 could not be attributed) */
	struct round_delay *delays;      /* heap: the delays after this round, for the servers
	                                    where this round announced probes (to store) */
	size_t ndelays;
};

/*
 * Run one round. Never fails as a whole: every failure is recorded as the
 * affected seed's outcome (error with a diagnostic). Fills *out; release
 * with round_result_free().
 */
void round_run(const struct round_params *p, struct round_result *out);
void round_result_free(struct round_result *r);

/* Fill arrival, latency, its error bound, discovery lag and clock skew of
 * a found probe (SPEC "Latency") from the start of its SMTP transaction
 * (sent), its submit time (the 250), INTERNALDATE and the moment it was
 * seen (found; all Unix seconds). The arrival lies in
 * [INTERNALDATE, min(INTERNALDATE + 1 s, found)]: it is the middle of that
 * interval, or, when r->announced (an IDLE EXISTS announced it at found)
 * and delay >= 0 (the server's learned announcement delay, seconds),
 * found - delay clamped into the interval. latency_error_bound is half the
 * interval's width; discovery_lag = found - arrival (never negative);
 * latency = arrival - submit:
 * - between -2 s and 0 it is clamped to 0 (INTERNALDATE has 1-second
 *   resolution);
 * - below that, but not before the transaction began (minus 2 s), the relay
 *   delivered before it answered 250 (a slow end-of-DATA reply): latency 0,
 *   usable;
 * - earlier than the transaction began is clock skew: reported in
 *   clock_skew, not usable for percentiles;
 * - internaldate <= 0 (the server gave none): latency and lag unknown (NaN).
 * sent <= 0 means unknown (then only the 2 s tolerance applies). */
void round_set_latency(struct probe_result *r, double sent, double submit, double internaldate,
                       double found, double delay);

#endif
