/*
 * dispatch.h - handing a round's seeds to worker threads.
 *
 * A round (scheduler/round.c) runs each seed on a worker thread: arm, send,
 * watch. Started all at once, 1,000 seeds are 1,000 threads, most of them
 * waiting at their host's opening gate (ROUND_OPENING_MAX sessions being
 * opened at once), each with its own stack and OpenSSL's per-thread
 * state. Instead, a host's seeds are handed out while fewer than `window`
 * of them are starting (handed out, their first session not open yet),
 * and a thread whose seed is done takes the next one: the threads alive
 * are those starting, arming or watching, and they are reused.
 *
 * Seeds that take turns (their host or account has more seeds than
 * imap_limits allows sessions, SPEC imap_limits) are all handed out at
 * once, as before: their turns are served first come, first served, and a
 * seed not started would never queue. So are all seeds once the round is
 * stopped or past its deadline (they then end at once).
 *
 * Seeds of one IMAP host and port are handed out in configuration order;
 * hosts take turns, so that one slow host's arming never holds back
 * another's seeds. Thread-safe; the caller creates the threads: the
 * functions say when one more is wanted (a thread is then reserved:
 * create it, or call dispatch_unreserve()).
 */
#ifndef INBOXPROBE_DISPATCH_H
#define INBOXPROBE_DISPATCH_H

#include <stddef.h>

#include "seeds/config.h"

struct dispatch;

/* A dispatcher for cfg's seeds (borrowed: it must outlive the
 * dispatcher). window: seeds of one host arming at once (at least 1).
 * Owned by the caller: dispatch_free(). Never NULL (aborts when out of
 * memory, as xmalloc). */
struct dispatch *dispatch_new(const struct config *cfg, size_t window);
void dispatch_free(struct dispatch *d);

/* Seeds of the round on seed idx's IMAP host and port (itself included);
 * 0 when its host is unset. */
long dispatch_host_seeds(const struct dispatch *d, size_t idx);

/* 1 when seed idx takes turns: the seeds of its host outnumber
 * imap_limits.per_host, or those of its account per_account. */
int dispatch_turns(const struct dispatch *d, size_t idx);

/* Reserve a first thread (before creating it). */
void dispatch_reserve(struct dispatch *d);
/* The reserved thread could not be created. */
void dispatch_unreserve(struct dispatch *d);

/* A worker thread's next seed: waits until one may start (its host's
 * window has room), until the deadline (now_mono() seconds) or
 * dispatch_stop(). reserved: 1 on a thread's first call (it was reserved
 * when wanted), 0 after each seed it ran. Returns 1 with *idx set, or 0
 * when every seed has been handed out (the thread then ends). *spawn is 1
 * when one more thread is wanted (reserved: more seeds may start than
 * there are threads free to take them). */
int dispatch_take(struct dispatch *d, int reserved, double deadline, size_t *idx, int *spawn);

/* Seed idx no longer counts in its host's window: its first session is
 * open (or failed to open), or its arming is over. Only the first call
 * for a seed counts; call it at least once per seed taken. Returns 1 when
 * one more thread is wanted (reserved). */
int dispatch_release(struct dispatch *d, size_t idx);

/* A stop request: every seed may start (each ends at once). Wakes the
 * threads waiting in dispatch_take(). */
void dispatch_stop(struct dispatch *d);

#endif
