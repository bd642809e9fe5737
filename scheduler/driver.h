/*
 * driver.h - the operations table between the round's engine
 * (scheduler/round.c, watch.c, verdicts.c: arm, then send; watch; find;
 * clean up) and the IMAP protocol (prober/imap.c, imap_idle.c), in the
 * manner of isync's src/driver.h.
 *
 * The engine, and the daemon's pool and keeper (scheduler/pool.c,
 * keeper.c), call the protocol only through a struct imap_driver, so that
 * its decisions (what is armable, when to reconnect, what is cleaned up)
 * can be unit-tested against a fake driver (tests/unit/test_engine.c).
 * imap_driver_real is the real one: every member is the prober/imap.h
 * function of the same name, with that function's contract (RFC, bounds,
 * error codes). This header adds no library type: sessions are opaque.
 *
 * Common rules for every member (they are imap.h's):
 * - Functions returning int return IMAP_OK (0) or an enum imap_err code;
 *   on error *errstr is a heap string the caller frees (never a secret).
 *   The engine, not the driver, decides what a code calls for (reconnect,
 *   retry, give up).
 * - A session whose connection died (IMAP_EBYE, IMAP_ETIMEOUT mid-reply,
 *   IMAP_EPROTO from a parse error) answers every later call with IMAP_EBYE;
 *   the engine closes it and opens a new one. A NO/BAD leaves it usable.
 * - Everything the driver is given is borrowed for the call unless said
 *   otherwise; what it hands back is owned by the caller.
 */
#ifndef INBOXPROBE_DRIVER_H
#define INBOXPROBE_DRIVER_H

#include <stddef.h>
#include "common/model.h"
#include "prober/imap.h"
#include "seeds/config.h"
#include "seeds/folders.h"

struct imap_driver {
	/* ---- the session ---- */

	/* Connect, TLS, greeting, CAPABILITY, login (imap_open). p and what it
	 * points to are borrowed and must outlive the session. On success *out
	 * is a session owned by the caller, ended with close or close_now. */
	int (*open)(const struct imap_params *p, struct imap_session **out, char **errstr);
	/* LOGOUT (best effort) and free s; NULL allowed. s is gone after. */
	void (*close)(struct imap_session *s);
	/* close with a fresh 2 s limit (s's deadline may have passed). */
	void (*close_now)(struct imap_session *s);
	/* A session kept between rounds (the daemon): bind it to this round's
	 * params (borrowed, as for open), then prove it alive with NOOP. */
	void (*rebind)(struct imap_session *s, const struct imap_params *p);
	int (*noop)(struct imap_session *s, char **errstr);
	/* Move s's absolute deadline to now + secs (seconds). */
	void (*extend)(struct imap_session *s, double secs);
	/* 1 when the server announced capability cap (case-insensitive). */
	int (*has_capability)(const struct imap_session *s, const char *cap);
	/* 1 when s is open, not dead and not in IDLE (NULL allowed): the pool
	 * keeps only such a session. */
	int (*usable)(const struct imap_session *s);
	/* The wire name of the folder s has selected, or NULL; borrowed, valid
	 * until the next call on s. */
	const char *(*selected)(const struct imap_session *s);

	/* ---- folders ---- */

	/* LIST (RFC 3501, RFC 6154 SPECIAL-USE): *out is a heap array owned by
	 * the caller, freed with folders_free(). */
	int (*list_folders)(struct imap_session *s, struct imap_folder **out, size_t *n,
	                    char **errstr);
	/* SELECT folder (wire name, borrowed) afresh and give its UIDNEXT
	 * (RFC 3501 7.3.1); 0 when the server gives none. */
	int (*select_uidnext)(struct imap_session *s, const char *folder, unsigned long *uidnext,
	                      char **errstr);
	/* STATUS folder (UIDNEXT UIDVALIDITY) without selecting it (RFC 3501 6.3.10). */
	int (*status_uidnext)(struct imap_session *s, const char *folder, unsigned long *uidnext,
	                      char **errstr);
	/* The UIDVALIDITY the last select_uidnext, status_uidnext, notify_set
	 * or find_new_tokens's SELECT read on s; 0 none. May be NULL: never
	 * known (an armed UIDNEXT is then never re-based). */
	unsigned long (*uidvalidity_seen)(const struct imap_session *s);

	/* ---- watching (RFC 2177 IDLE) ---- */

	/* Start IDLE on the selected folder; IMAP_EPROTO when not offered. */
	int (*idle_start)(struct imap_session *s, char **errstr);
	/* 1 while s is in IDLE. */
	int (*idling)(const struct imap_session *s);
	/* Wait until one of the n (<= IMAP_IDLE_WAIT_MAX) idling sessions has
	 * input or the absolute now_mono() time until; ready[i] set to 1 for
	 * each with input. Returns how many have input (0: timeout). */
	int (*idle_wait)(struct imap_session *const *ss, size_t n, double until, int *ready);
	/* Read what arrived during IDLE: *event gets IMAP_IDLE_EXISTS,
	 * IMAP_IDLE_ENDED and (NOTIFY) IMAP_IDLE_STATUS bits; a BYE or a drop
	 * is IMAP_EBYE. */
	int (*idle_read)(struct imap_session *s, int *event, char **errstr);
	/* n of the last "* n EXISTS" idle_read read (the messages it announced
	 * have sequence numbers up to n); 0 unknown. May be NULL: unknown. */
	unsigned long (*idle_exists)(const struct imap_session *s);
	/* EXPUNGEs read since that EXISTS (during IDLE and in later replies):
	 * each lowers the sequence numbers it covers by one. May be NULL: 0. */
	unsigned long (*exists_expunged)(const struct imap_session *s);
	/* For a caller polling many idling sessions itself (the daemon's
	 * keeper): the descriptor that becomes readable when s has input, or -1
	 * when s is not idling; *waiting set to 1 when input already waits
	 * above it (buffered), to be read without polling. The descriptor is
	 * the session's: borrowed, never closed by the caller. */
	int (*idle_fd)(struct imap_session *s, int *waiting);
	/* DONE and the tagged OK; a session not idling is left as is. */
	int (*idle_done)(struct imap_session *s, char **errstr);
	/* When what s read reached this host (imap_rx_time): what =
	 * IMAP_IDLE_EXISTS the last EXISTS idle_read read, IMAP_IDLE_STATUS the
	 * last NOTIFY STATUS announcing new mail, 0 the latest read (a
	 * command's reply). Unix seconds, 0 unknown; may be NULL: unknown. */
	double (*rx_time)(const struct imap_session *s, int what);

	/* ---- NOTIFY (RFC 5465, prober/imap_notify.h); both NULL: not offered ---- */

	/* NOTIFY SET (selected ...) (mailboxes MAILBOX ...): afterwards idle_read
	 * sets IMAP_IDLE_STATUS when an untagged STATUS announces new mail in
	 * mailbox (wire name, borrowed; uidnext its armed UIDNEXT). IMAP_EPROTO:
	 * refused or not usable, the session stays usable. */
	int (*notify_set)(struct imap_session *s, const char *mailbox, unsigned long uidnext,
	                  char **errstr);
	/* The NOTIFY mailbox's UIDNEXT read in the last notify_set's reply
	 * (NOTIFY SET STATUS, RFC 5465 3); 0 none. May be NULL: never any. */
	unsigned long (*notify_set_uidnext)(const struct imap_session *s);
	/* The mailbox NOTIFY watches on s, or NULL (never set, or turned off by
	 * the server's NOTIFICATIONOVERFLOW). Borrowed. */
	const char *(*notify_mailbox)(const struct imap_session *s);
	/* The UIDNEXT of the last STATUS that announced new mail (UIDs below it
	 * were announced by it); 0 unknown. May be NULL: nothing is announced. */
	unsigned long (*notify_announced)(const struct imap_session *s);

	/* ---- finding the probe (docs/SPEC.md "Finding the probe") ---- */

	/* Search folder for tokens (borrowed) in UIDs >= min_uid (0: all),
	 * since Unix seconds. A hit is a message PROVED to be the probe of its
	 * token (exact token field, HMAC, our From): the engine acts on hits
	 * and on nothing else. *hits is a heap array owned by the caller. */
	int (*find_new_tokens)(struct imap_session *s, const char *folder,
	                       const char *const *tokens, size_t ntokens, double since,
	                       unsigned long min_uid, struct imap_hit **hits, size_t *nhits,
	                       char **errstr);
	/* The header of UID uid in the selected folder, capped at max bytes;
	 * *out is a heap, NUL-terminated copy owned by the caller. */
	int (*fetch_header)(struct imap_session *s, unsigned long uid, size_t max, char **out,
	                    size_t *len, char **errstr);
	/* Gmail's category tab of UID uid (X-GM-RAW) into tab/tabsz. */
	int (*gmail_tab)(struct imap_session *s, unsigned long uid, char *tab, size_t tabsz,
	                 char **errstr);

	/* ---- acting on the probe (docs/SPEC.md "Cleanup") ---- */

	/* Remove UID uid of folder only if UIDVALIDITY still matches and the
	 * message proves again to be token's probe: UID STORE + UID EXPUNGE,
	 * or MOVE/COPY to trash (never a plain EXPUNGE). what/whatsz gets
	 * "deleted", "trashed" or "kept: <reason>". */
	int (*cleanup)(struct imap_session *s, const char *folder, unsigned long uidvalidity,
	               unsigned long uid, const char *token, enum cleanup_mode mode,
	               const char *trash, char *what, size_t whatsz, char **errstr);
	/* The bounce mailbox: DSNs (RFC 3464) naming one of the tokens; with
	 * delete_matched, only matched DSNs are removed. *out is a heap array
	 * owned by the caller. */
	int (*scan_bounces)(struct imap_session *s, const char *folder, const char *const *tokens,
	                    size_t ntokens, double since, int delete_matched,
	                    struct imap_bounce **out, size_t *nout, char **errstr);
};

/* The real driver: prober/imap.h, member for member. */
extern const struct imap_driver imap_driver_real;

/* The moment a probe was seen (docs/SPEC.md "Latency"): drv's rx_time(s,
 * what) when it knows it (the kernel's receive time of the announcement
 * or of the reply), else fallback (Unix seconds, the caller's wall clock
 * taken after the read). */
double driver_rx_time(const struct imap_driver *drv, const struct imap_session *s, int what,
                      double fallback);

#endif
