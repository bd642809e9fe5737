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
struct imap_driver;

/* A pool whose sessions are spoken to through the real IMAP driver
 * (scheduler/driver.h's imap_driver_real). */
struct session_pool *pool_new(void);
/* A pool whose sessions are spoken to through drv (borrowed, outlives the
 * pool; NULL: the real one): a fake driver's sessions in unit tests. */
struct session_pool *pool_new_driver(const struct imap_driver *drv);
/* The pool's driver (borrowed): whoever takes a session speaks to it
 * through this one. */
const struct imap_driver *pool_driver(const struct session_pool *p);
/* LOGOUT (bounded to 2 s each) and free every kept session, then the pool.
 * NULL is allowed. */
void pool_free(struct session_pool *p);

/* A kept session of ic's account, or NULL; the caller owns it then
 * (rebind it before use, through pool_driver()). */
struct imap_session *pool_take(struct session_pool *p, const struct imap_conf *ic);
/* Keep s (logged in, out of IDLE: the driver's usable()) for ic's account; the
 * pool owns it. A session that is not usable is closed instead. */
void pool_put(struct session_pool *p, const struct imap_conf *ic, struct imap_session *s);
/* Close the kept sessions of accounts no seed or bounce mailbox of cfg
 * uses any more (a reload). */
void pool_keep_only(struct session_pool *p, const struct config *cfg);
/* Sessions kept right now. */
size_t pool_size(struct session_pool *p);

#endif
