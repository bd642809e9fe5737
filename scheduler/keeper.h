/*
 * keeper.h - the daemon's kept IMAP sessions between rounds (docs/SPEC.md
 * "Daemon"): in IDLE (RFC 2177), watching for pending probes, renewed,
 * reconnected.
 *
 * Between two rounds a thread holds every session the pool (pool.h) kept:
 * - each sits in IDLE on the folder the round left selected (a seed's
 *   INBOX session on INBOX, its spam-folder session on the spam folder;
 *   the bounce mailbox's on INBOX);
 * - an EXISTS on a session of a seed with pending probes (earlier rounds'
 *   probes not found yet, from the state store) ends IDLE and searches the
 *   folder for them, with the same proof as a round (token header, HMAC,
 *   From); a proved probe is cleaned up as configured and handed to the
 *   daemon at once (keeper_drain; the wake descriptor is written) with its
 *   latency: the moment the EXISTS came is when it was seen. Sessions with
 *   pending probes are also searched every max(poll_interval, 30 s), for
 *   an EXISTS the server folded into the start of IDLE, and at each
 *   renewal; a seed watched by one session (imap_limits too tight for two)
 *   has its spam folder searched at each of those and each EXISTS in INBOX;
 *   so has a session whose spam folder NOTIFY (RFC 5465) watches beside
 *   INBOX, and it is searched when armed, after NOTIFY SET: what landed
 *   before IDLE is found then, what lands later a STATUS announces;
 * - IDLE is renewed (DONE, then IDLE again) every 25 minutes, before the
 *   29 minutes after which a server may log an idle client out;
 *   INBOXPROBE_TEST_IDLE_RENEW=SECONDS in the environment shortens that
 *   period, for tests only;
 * - a session the server drops (BYE, kick, restart) is opened again with
 *   exponential backoff: 1 s, doubling up to 5 min, each wait stretched by
 *   a random 0..25 % (jitter), capped at 5 min. A BYE asking for a new
 *   login (Exchange Online's "* BYE Session invalidated -
 *   AccessTokenExpired") logs in again at once, with a fresh OAuth 2.0
 *   token. The backoff of a session still down when a round starts
 *   continues after that round unless the round opened it again;
 * - OAuth 2.0 access tokens of the kept accounts are refreshed before
 *   they expire (the token cache's margin, prober/oauth2.h), checked every
 *   30 s, so a new login never waits for the token endpoint.
 * A round starts with keeper_stop(): every session leaves IDLE and goes
 * back to the pool, where the round takes it.
 *
 * Threads: keeper_start/stop/drain/free are called from one thread (the
 * daemon's main thread); the keeper's own thread uses no state store.
 */
#ifndef INBOXPROBE_KEEPER_H
#define INBOXPROBE_KEEPER_H

#include <stddef.h>
#include "scheduler/round.h"
#include "scheduler/state.h"
#include "seeds/config.h"

struct keeper;
struct session_pool;

/* A keeper for the sessions of pool (borrowed, outlives the keeper).
 * wake_fd: a descriptor written (one byte) whenever probes were found;
 * -1: none. */
struct keeper *keeper_new(struct session_pool *pool, int wake_fd);
/* keeper_stop(), then free; sessions still down are forgotten. NULL allowed. */
void keeper_free(struct keeper *k);

/* Take the pool's sessions of cfg's accounts (seeds and bounce mailbox)
 * and watch them in a thread until keeper_stop(). cfg and pending
 * (npending probes of earlier rounds, seed_index into cfg->seeds) are
 * borrowed until keeper_stop(). delays (ndelays; NULL when none): the
 * IMAP servers' learned announcement delays (cycle_load_delays()), copied:
 * a probe an IDLE EXISTS or NOTIFY STATUS announces has its arrival placed
 * at seen minus its server's delay, as a round places it
 * (round_set_latency(): never outside [INTERNALDATE, min(INTERNALDATE +
 * 1 s, seen)]); a probe found otherwise, or with no delay learned, gets
 * the middle of that interval. until: the now_mono() when the next round starts; no
 * reconnect is begun that could last past it (the round opens that
 * session). A keeper already started is left as is.
 * 0, or -1 with *errstr (no thread: the sessions stay in the pool). */
int keeper_start(struct keeper *k, const struct config *cfg, const struct round_pending *pending,
                 size_t npending, const struct round_delay *delays, size_t ndelays, double until,
                 char **errstr);
/* End IDLE on every session (each bounded to 2 s) and give it back to the
 * pool, join the thread. A keeper not started is left as is. */
void keeper_stop(struct keeper *k);
/* 1 while started. */
int keeper_running(const struct keeper *k);

/* Pending probes found since the last call: *out heap array (caller frees)
 * of the returned count, NULL when none. seed_index into the cfg given
 * to keeper_start(). Thread-safe. */
size_t keeper_drain(struct keeper *k, struct round_late **out);

/* What the keeper did since keeper_new(). */
struct keeper_counts {
	unsigned long renewals;     /* IDLE renewed (DONE + IDLE) */
	unsigned long drops;        /* sessions the server dropped or ended */
	unsigned long reconnects;   /* sessions opened again */
	unsigned long found;        /* pending probes found */
};
void keeper_counts(struct keeper *k, struct keeper_counts *out);

#endif
