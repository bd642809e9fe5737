/*
 * pool.h - IMAP sessions kept logged in between the daemon's rounds, so a
 * round takes a seed's sessions instead of logging in again (SPEC
 * "Daemon"). A session is keyed by its account (host, port, TLS mode,
 * user), copied, so a SIGHUP reload may free the configuration that opened
 * it. Sessions wait in the pool logged in, out of IDLE (between rounds the
 * keeper, keeper.h, takes them into IDLE and gives them back before the
 * next round); a round proves a taken one alive with NOOP and opens a new
 * one when it is not.
 * Thread-safe (the round's workers take and put at once).
 */
#ifndef INBOXPROBE_POOL_H
#define INBOXPROBE_POOL_H

#include <stddef.h>
#include "prober/imap.h"
#include "seeds/config.h"

struct session_pool;

struct session_pool *pool_new(void);
/* LOGOUT (bounded to 2 s each) and free every kept session, then the pool.
 * NULL is allowed. */
void pool_free(struct session_pool *p);

/* A kept session of ic's account, or NULL; the caller owns it then
 * (imap_rebind() it before use). */
struct imap_session *pool_take(struct session_pool *p, const struct imap_conf *ic);
/* Keep s (logged in, out of IDLE: imap_usable()) for ic's account; the
 * pool owns it. A session that is not usable is closed instead. */
void pool_put(struct session_pool *p, const struct imap_conf *ic, struct imap_session *s);
/* Close the kept sessions of accounts no seed or bounce mailbox of cfg
 * uses any more (a reload). */
void pool_keep_only(struct session_pool *p, const struct config *cfg);
/* Sessions kept right now. */
size_t pool_size(struct session_pool *p);

#endif
