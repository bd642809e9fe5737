/*
 * keeper_int.h - the keeper's test hooks (tests/unit/test_keeper.c): run
 * its decisions step by step, without its thread, against a fake driver
 * (the pool's, pool_new_driver()) and a fake monotonic clock. Not for the
 * daemon.
 */
#ifndef INBOXPROBE_KEEPER_INT_H
#define INBOXPROBE_KEEPER_INT_H

#include "scheduler/keeper.h"

/* The clock the keeper reads instead of now_mono() (seconds, monotonic);
 * every timer (renewal, checks, backoff) and `until` are on it. Set it
 * before keeper_test_start(). */
void keeper_test_clock(struct keeper *k, double (*clock)(void));

/* keeper_start() without the thread: the sessions are taken from the pool
 * and marked, nothing is sent yet; keeper_stop() ends it as usual. */
int keeper_test_start(struct keeper *k, const struct config *cfg,
                      const struct round_pending *pending, size_t npending,
                      const struct round_delay *delays, size_t ndelays, double until,
                      char **errstr);
/* What the thread does first: every session searched for the pending
 * probes, then into IDLE. */
void keeper_test_arm(struct keeper *k);
/* One turn of the thread's loop without waiting: the due timers
 * (reconnects, renewals, checks), then the input already there. */
void keeper_test_step(struct keeper *k);

/* The wait before reconnect attempt n (0: the first after a drop), seconds. */
double keeper_test_backoff(struct keeper *k, int n);

/* A kept session, found by the folder it watches. */
struct keeper_test_sess {
	int up;               /* 1: open; 0: down, waiting for next_try */
	int attempts;         /* failed reconnects in a row */
	int relogin;          /* the server's BYE asked for a new login */
	double next_try;      /* the test clock's time of the next attempt */
	double idle_since;    /* when IDLE (or the keep-alive) last began */
};
/* 0 and *out filled, or -1 when no session watches folder. */
int keeper_test_session(const struct keeper *k, const char *folder, struct keeper_test_sess *out);

#endif
