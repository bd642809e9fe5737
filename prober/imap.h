/*
 * imap.h - IMAP discovery of probes (libetpan over our own OpenSSL stream).
 *
 * The session is opaque; libetpan and OpenSSL types never leave prober/.
 * Every call is bounded by the params' per-command timeout and by the
 * absolute round deadline, whichever comes first; so is the TLS handshake.
 * A server reply larger than 16 MiB gives IMAP_EPROTO and ends the session.
 *
 * Error codes: every int-returning function returns IMAP_OK (0) or one of
 * enum imap_err, and on error sets *errstr to a heap string (caller frees)
 * that names the host and what failed; it never contains a password.
 *
 * A session whose connection dropped, timed out in mid-reply or sent an
 * unparsable line (IMAP_EBYE, IMAP_ETIMEOUT, IMAP_EPROTO from a parse
 * error) is not reused: every later call on it returns IMAP_EBYE at once,
 * and the caller closes it and opens a new one. A NO/BAD reply to a
 * command leaves the session usable.
 *
 * Follows RFC 3501 (IMAP4rev1), RFC 2595/8314 (TLS), RFC 6154 (SPECIAL-USE),
 * RFC 4315 (UIDPLUS), RFC 6851 (MOVE), RFC 2177 (IDLE).
 */
#ifndef INBOXPROBE_IMAP_H
#define INBOXPROBE_IMAP_H

#include <stdatomic.h>
#include <stddef.h>
#include "seeds/config.h"
#include "seeds/folders.h"
#include "common/model.h"

enum imap_err {
	IMAP_OK = 0,
	IMAP_ECONNECT,       /* TCP connect failed or refused */
	IMAP_ETLS,           /* TLS handshake or certificate verification failed */
	IMAP_ENOSTARTTLS,    /* TLS required and server does not offer STARTTLS */
	IMAP_EAUTH,          /* LOGIN/AUTHENTICATE: NO [AUTHENTICATIONFAILED] or plain NO */
	IMAP_EAUTHAPP,       /* login refused: app-specific password or OAuth required */
	IMAP_EUNAVAILABLE,   /* NO [UNAVAILABLE] / too many connections: retry later */
	IMAP_EBYE,           /* server said BYE, or the connection dropped */
	IMAP_ETIMEOUT,       /* per-command timeout or round deadline reached */
	IMAP_EPROTO,         /* unparsable reply, unexpected NO/BAD */
	IMAP_ENOFOLDER,      /* SELECT of a folder failed (NO) */
	IMAP_EUIDVALIDITY    /* UIDVALIDITY changed since the UID was learned */
};

/* Make every IMAP command in flight give up (IMAP_ETIMEOUT) within a
 * quarter second once *flag is non-zero: a stop request (SIGTERM). Set
 * once, before any session is opened; NULL turns it off. */
void imap_set_abort_flag(const atomic_int *flag);

/* 1 when that flag is set: a stop (shutdown) was requested, and waits on
 * sockets end early with "stopped by the shutdown". */
int imap_stop_requested(void);

/* Process-wide IMAP figures, read lock-free (the daemon's metrics
 * inboxprobe_imap_logins_total and inboxprobe_imap_sessions). */
struct imap_counters {
	unsigned long long logins;   /* LOGIN/AUTHENTICATE commands sent since the start */
	long connecting;             /* sessions being opened (connect, TLS, greeting, login) */
	long up;                     /* sessions logged in and not closed yet */
};
void imap_counters(struct imap_counters *out);

/* Static name of an error code, e.g. "tls", "auth", for traces. */
const char *imap_err_name(int err);

struct imap_session;

struct imap_params {
	const struct imap_conf *conf;   /* borrowed; must outlive the session */
	long connect_timeout;           /* seconds */
	long timeout;                   /* seconds per command */
	double deadline;                /* absolute now_mono() limit for everything */
	/* What proves a message to be our probe (docs/SPEC.md "Finding the probe"),
	 * borrowed, must outlive the session: our From address (see
	 * message_probe_from), the secret_file key (NULL: none) and the seed
	 * address the HMAC covers. probe_from NULL: nothing is ever proved, so
	 * imap_find_tokens finds nothing and imap_cleanup touches nothing. */
	const char *probe_from;
	const unsigned char *secret;
	size_t secret_len;
	const struct hmac_key *old_secrets;   /* previous_secret_files: also prove (rotation) */
	size_t nold_secrets;
	const char *seed;
};

/* Connect (implicit TLS, STARTTLS or plain per conf), verify the
 * certificate with OpenSSL (chain, host name, SNI; conf->ca_file or the
 * system store), read CAPABILITY, and log in. With TLS required and no
 * STARTTLS offered, fails with IMAP_ENOSTARTTLS before any credential is
 * sent. On success *out is a session the caller closes with imap_close(). */
int imap_open(const struct imap_params *p, struct imap_session **out, char **errstr);

/* Sessions kept between rounds (the daemon's pool): rebind a logged-in
 * session to this round's params (configuration block, timeouts, absolute
 * deadline, proof of our probes; all borrowed as for imap_open). */
void imap_rebind(struct imap_session *s, const struct imap_params *p);
/* 1 when s is open, not dead and not in IDLE, else 0 (NULL allowed). */
int imap_usable(const struct imap_session *s);
/* Move s's absolute deadline to now + secs (ending IDLE after the round). */
void imap_extend(struct imap_session *s, double secs);
/* imap_close() with a fresh 2 s limit (a kept session's deadline passed). */
void imap_close_now(struct imap_session *s);
/* NOOP (RFC 3501 6.1.2): proves a kept session is still alive. */
int imap_noop(struct imap_session *s, char **errstr);

/* LOGOUT (best effort) and free. NULL is allowed. */
void imap_close(struct imap_session *s);

/* 1 if the server announced the capability (case-insensitive), else 0. */
int imap_has_capability(const struct imap_session *s, const char *cap);

/* LIST "" "*" (and XLIST at servers that offer it without SPECIAL-USE;
 * when such a server refuses XLIST with NO/BAD, plain LIST is used).
 * *out is a heap array the caller frees with folders_free(). */
int imap_list_folders(struct imap_session *s, struct imap_folder **out, size_t *n,
                      char **errstr);

/* A probe found in a folder. */
struct imap_hit {
	size_t token_index;       /* index into the tokens array given */
	unsigned long uidvalidity;
	unsigned long uid;
	double internaldate;      /* Unix seconds, zone applied */
	unsigned long seq;        /* its message sequence number in the FETCH reply; 0 unknown */
};

#define IMAP_SEARCH_MAX_PER_TOKEN 8   /* UIDs a SEARCH may name per token before it is hostile */

/*
 * Look for tokens in folder (a wire name). Selects the folder (or NOOPs
 * when it is already selected) before searching, then
 * UID SEARCH HEADER X-Inboxprobe-Token TOKEN (OR'ed over tokens, or Subject:
 * a Subject match only nominates a candidate); when that returns nothing
 * or NO, falls back to UID SEARCH SINCE <since - 1 day> over the newest
 * messages (capped). Every candidate's X-Inboxprobe-Token and From fields
 * are fetched (BODY.PEEK[HEADER.FIELDS (...)]<0.16384>; fields that fill
 * the cap prove nothing) and it is a hit only when message_prove() proves it
 * to be the probe of that token (exact token field, HMAC with a secret, our
 * From; see struct imap_params): a user's reply, forward or quote of a
 * token is never a hit. A token may have several hits (duplicate
 * deliveries of the probe). A SEARCH that names more than
 * IMAP_SEARCH_MAX_PER_TOKEN UIDs per token is hostile or broken: it is
 * logged as such and only the newest that many per token are examined.
 * INTERNALDATE is fetched for each hit. Candidates of the token search are
 * fetched with their whole header (BODY.PEEK[HEADER]<0.TRACE_HEADER_MAX>)
 * instead of the two fields, in the same UID FETCH: the first hit's header
 * is kept on the session for imap_fetch_header(), which then sends no
 * second FETCH. *hits is a heap array (caller
 * frees with free()), *nhits its length. since: Unix seconds of the
 * earliest submit time among the tokens.
 */
int imap_find_tokens(struct imap_session *s, const char *folder,
                     const char *const *tokens, size_t ntokens, double since,
                     struct imap_hit **hits, size_t *nhits, char **errstr);

/* imap_find_tokens() restricted to UIDs >= min_uid (0: no restriction):
 * after a folder was armed at UIDNEXT u, anything delivered since has a UID
 * of at least u, so later searches look only there (RFC 3501 2.3.1.1). */
int imap_find_new_tokens(struct imap_session *s, const char *folder,
                         const char *const *tokens, size_t ntokens, double since,
                         unsigned long min_uid, struct imap_hit **hits, size_t *nhits,
                         char **errstr);

/* ---------- Watching (prober/imap_idle.c) ---------- */

/* SELECT folder afresh (also when it is selected) and give its UIDNEXT
 * (RFC 3501 7.3.1 OK [UIDNEXT]); when the SELECT reply has none, STATUS
 * (UIDNEXT) asks for it. *uidnext is 0 when the server gives neither. */
/* The UIDVALIDITY (RFC 3501 2.3.1.1) of the folder the session's last
 * SELECT (imap_select_uidnext(), a search's SELECT or NOOP of the selected
 * folder), STATUS (imap_status_uidnext()) or NOTIFY SET STATUS reply
 * (imap_notify_set()) named; 0 when that reply gave none. A UID is only
 * comparable to UIDs of the same UIDVALIDITY. */
unsigned long imap_uidvalidity_seen(const struct imap_session *s);

int imap_select_uidnext(struct imap_session *s, const char *folder, unsigned long *uidnext,
                        char **errstr);

/* STATUS folder (UIDNEXT) (RFC 3501 6.3.10) without selecting it. */
int imap_status_uidnext(struct imap_session *s, const char *folder, unsigned long *uidnext,
                        char **errstr);

/* Start IDLE (RFC 2177) on the selected folder. IMAP_EPROTO when the server
 * does not offer IDLE. While idling, only imap_idle_wait/read/done and
 * imap_close may be called; any other command fails with IMAP_EPROTO. */
int imap_idle_start(struct imap_session *s, char **errstr);

/* 1 while the session is in IDLE (started, not ended by DONE or by the server). */
int imap_idling(const struct imap_session *s);

/* Wait until one of the n (at most IMAP_IDLE_WAIT_MAX) idling sessions has
 * input, or until the absolute now_mono() time until. Input already
 * buffered by libetpan or OpenSSL counts without waiting. ready[i] is set
 * to 1 for each session with input. Returns how many have input (0 on
 * timeout). Sessions not idling are ignored. */
#define IMAP_IDLE_WAIT_MAX 8
int imap_idle_wait(struct imap_session *const *ss, size_t n, double until, int *ready);

/* What imap_idle_read() saw (bits). */
enum {
	IMAP_IDLE_EXISTS = 1,   /* "* n EXISTS": a message arrived (RFC 3501 7.3.1) */
	IMAP_IDLE_ENDED = 2,    /* the server ended IDLE itself (a tagged reply) */
	IMAP_IDLE_STATUS = 4    /* "* STATUS": new mail in the NOTIFY mailbox (RFC 5465,
	                           prober/imap_notify.h) */
};

/* Read the lines the server sent during IDLE that are available now (at
 * least one, at most IMAP_IDLE_READ_LINES; bounded by the command timeout),
 * setting *event bits. Lines beyond the cap stay buffered for the next call
 * (imap_idle_wait() returns at once for them). A
 * "* BYE" gives IMAP_EBYE with the server's text ("server said BYE: ...");
 * a closed connection IMAP_EBYE "closed without BYE". */
#define IMAP_IDLE_READ_LINES 256
int imap_idle_read(struct imap_session *s, int *event, char **errstr);

/* n of the last "* n EXISTS" imap_idle_read() read (RFC 3501 7.3.1): the
 * messages it announced have sequence numbers up to n, so a message found
 * later with a higher one (struct imap_hit's seq) arrived after it. 0 when
 * none was read on s. */
unsigned long imap_idle_exists(const struct imap_session *s);

/* How many EXPUNGE responses (RFC 3501 7.4.1) s read since the last
 * EXISTS imap_idle_read() read, during IDLE and in commands' replies, in
 * any mailbox. Each lowers the sequence numbers above it by one: that
 * EXISTS's n covers a message found later at sequence number m only when
 * m <= n minus these (else an EXPUNGE, then a new message at n, looks
 * announced before it arrived). */
unsigned long imap_exists_expunged(const struct imap_session *s);

/*
 * When the bytes of something s read reached this host (Unix seconds,
 * CLOCK_REALTIME; 0 unknown): what = IMAP_IDLE_EXISTS, the last
 * "* n EXISTS" imap_idle_read() read (the one imap_idle_exists() gives);
 * IMAP_IDLE_STATUS, the last NOTIFY STATUS that announced new mail (the
 * one imap_notify_announced() gives; RFC 5465 5.2); 0, the latest read on
 * s (after a command, the last segment of its reply). It is the kernel's
 * receive time of the last TCP segment of the latest read when the line
 * was parsed (SO_TIMESTAMPNS, prober/tls.h tls_low_last_rx()), or the
 * wall clock right after that read: never before the bytes arrived, and
 * not delayed by a reader that woke up late. This is the moment a probe
 * was seen (docs/SPEC.md "Latency": the upper bound of its arrival).
 */
double imap_rx_time(const struct imap_session *s, int what);

/* For a caller that polls many idling sessions itself (the daemon between
 * rounds): the socket of s while it idles, or -1 when it does not; *waiting
 * is set to 1 when input already waits above the socket (libetpan's buffer
 * or OpenSSL's SSL_pending), which poll() would not report: read it with
 * imap_idle_read() without waiting. */
int imap_idle_fd(struct imap_session *s, int *waiting);

/* The wire name of the folder s has selected, or NULL (borrowed: valid
 * until the next command on s). */
const char *imap_selected(const struct imap_session *s);

/* End IDLE: DONE, then the tagged OK (untagged replies before it are
 * applied to the selection). A session not idling is left as is. */
int imap_idle_done(struct imap_session *s, char **errstr);

/*
 * The header of message UID uid in the selected folder, without setting
 * \Seen: UID FETCH uid (UID BODY.PEEK[HEADER]<0.max>). *out is a heap
 * copy (caller frees), NUL-terminated, at most max bytes (*len). A reply
 * without the header gives IMAP_EPROTO. The header of the probe that
 * imap_find_tokens() just proved in the selected folder (same UID and
 * UIDVALIDITY, shorter than max) is handed over without a command.
 */
int imap_fetch_header(struct imap_session *s, unsigned long uid, size_t max, char **out,
                      size_t *len, char **errstr);

/*
 * Gmail's category tab of message UID uid in the selected folder (INBOX),
 * at a server with X-GM-EXT-1: UID SEARCH UID uid X-GM-RAW
 * "category:primary", then promotions, social, updates, forums; the first
 * that matches names the tab. None matches (categories turned off):
 * "unknown". tab/tabsz receives the name.
 */
int imap_gmail_tab(struct imap_session *s, unsigned long uid, char *tab, size_t tabsz,
                   char **errstr);

/*
 * Remove one probe message per docs/SPEC.md "Cleanup": only UID uid of folder, and
 * only if folder's UIDVALIDITY still equals uidvalidity (else
 * IMAP_EUIDVALIDITY, nothing touched), and only after the message at that
 * UID is fetched again and proved to be the probe of token (message_prove;
 * else nothing is touched and what says "kept: not proved to be the probe
 * (REASON)"; gone: "kept: no longer there"). mode CLEANUP_DELETE: UID STORE
 * +FLAGS (\Deleted) then UID EXPUNGE (UIDPLUS); at Gmail (X-GM-EXT-1) moves
 * to trash instead. CLEANUP_TRASH: MOVE where offered, else COPY + STORE +
 * UID EXPUNGE. Without UIDPLUS and MOVE the message is kept. Never a plain
 * EXPUNGE. trash: the \Trash wire name or NULL when none resolved.
 * what/whatsz receives "deleted", "trashed" or "kept: <reason>".
 */
int imap_cleanup(struct imap_session *s, const char *folder, unsigned long uidvalidity,
                 unsigned long uid, const char *token, enum cleanup_mode mode, const char *trash,
                 char *what, size_t whatsz, char **errstr);

/* A DSN found in the bounce mailbox that names one of the tokens. */
struct imap_bounce {
	size_t token_index;
	struct dsn_info dsn;
	unsigned long uid;
};

/*
 * Scan the selected-or-given folder (usually "INBOX") of the bounce mailbox
 * for DSNs (RFC 3464) since `since` that carry one of the tokens (in the
 * returned headers or message). Each message is fetched with a size cap
 * (256 KiB) and parsed with dsn_match(). When delete_matched is set, only
 * matched DSNs are removed (UID STORE + UID EXPUNGE, or MOVE to trash, as
 * imap_cleanup does). *out is a heap array the caller frees with free().
 */
int imap_scan_bounces(struct imap_session *s, const char *folder,
                      const char *const *tokens, size_t ntokens, double since,
                      int delete_matched, struct imap_bounce **out, size_t *nout,
                      char **errstr);

/* Parse an IMAP INTERNALDATE / date-time string ("17-Jul-1996 02:44:25 -0700",
 * RFC 3501 date-time, day may be space-padded) into Unix seconds, applying
 * the zone; independent of the host's TZ. Returns 0 or -1 when malformed. */
int imap_parse_internaldate(const char *s, double *out);

#endif
