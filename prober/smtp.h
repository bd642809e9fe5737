/*
 * smtp.h - probe submission through the relay with libcurl.
 *
 * One transaction per call (one recipient), so one bad recipient cannot
 * take other seeds down. libcurl types never leave prober/.
 *
 * Error codes (enum smtp_err); every function returning int returns
 * SMTP_OK or one of them and, on error, sets *errstr to a heap string
 * (caller frees) that never contains the password. The final reply is
 * always filled in (reply->code 0 when there was none).
 *
 * Follows RFC 5321 (SMTP), RFC 3463 (enhanced status codes),
 * RFC 3207 (STARTTLS), RFC 8314 (implicit TLS), RFC 4954 (AUTH).
 *
 * Connections are reused: a transaction that ended in 2xx leaves its easy
 * handle, and with it the open (authenticated) connection, for the next
 * call; a failed one closes it (libcurl sends no RSET). The caller bounds
 * the calls in flight (relay.connections), which bounds the connections.
 *
 * Thread safety: smtp_submit may run in many threads at once (one easy
 * handle per call, CURLOPT_NOSIGNAL); only smtp_global_init/cleanup are
 * process-wide and must run in main before/after the threads.
 */
#ifndef INBOXPROBE_SMTP_H
#define INBOXPROBE_SMTP_H

#include <stdatomic.h>
#include <stddef.h>
#include "common/model.h"
#include "seeds/config.h"

enum smtp_err {
	SMTP_OK = 0,         /* 2xx to end of DATA: accepted */
	SMTP_ETEMP,          /* 4xx at connect, MAIL, RCPT or DATA: deferred */
	SMTP_EPERM,          /* 5xx at connect, MAIL, RCPT or DATA: rejected */
	SMTP_ECONNECT,       /* connection refused / unreachable */
	SMTP_ETLS,           /* TLS failed, certificate refused, STARTTLS not offered */
	SMTP_EAUTH,          /* AUTH refused (535 5.7.8) or no usable mechanism */
	SMTP_ETIMEOUT,       /* no reply before the timeout */
	SMTP_EDROP,          /* connection dropped mid-transaction (trusted over a stale 250) */
	SMTP_EPROTO,         /* anything else (malformed reply, libcurl internal) */
	SMTP_ENOFILES        /* no socket: too many open files (EMFILE/ENFILE), ours, not the relay's */
};

/* Static short name of a code for traces: "ok", "temp", "perm", "connect"... */
const char *smtp_err_name(int err);

/* Ask every transaction in flight to stop (about within a second) when
 * *flag becomes non-zero; it then fails with SMTP_ETIMEOUT ("interrupted").
 * flag must outlive all transactions; NULL turns the check off. Set once
 * before any thread submits. */
void smtp_set_abort_flag(const atomic_int *flag);

/* libcurl global init/cleanup; call once from main. 0 or -1. Cleanup
 * closes the kept connections (QUIT, bounded to 2 s each). */
int smtp_global_init(void);
void smtp_global_cleanup(void);

/* Seconds a kept SMTP connection may sit idle and still be reused:
 * CURLOPT_MAXAGE_CONN, set to libcurl's own default (118 s) explicitly. */
#define SMTP_MAXAGE_CONN 118L

/* Close the kept connections now (QUIT, bounded to 2 s each): the daemon
 * after a round when the next one starts beyond SMTP_MAXAGE_CONN, so they
 * do not sit idle at the relay. Returns how many were closed. Thread-safe,
 * but no smtp_submit() may run meanwhile. */
size_t smtp_close_idle(void);

/* Connections opened to relays since the start (CURLINFO_NUM_CONNECTS). */
unsigned long smtp_connections_opened(void);

struct smtp_params {
	const struct relay_conf *relay;  /* borrowed */
	const char *rcpt;                /* envelope recipient */
	const char *message;             /* CRLF message, not dot-stuffed */
	size_t len;
	double deadline;                 /* absolute now_mono() limit; the
	                                    transaction timeout is the smaller of
	                                    relay->timeout and what is left */
};

/*
 * Submit one message. On SMTP_OK *submit_time is the wall-clock Unix time
 * (seconds) when the relay answered 2xx to end of DATA, and reply holds
 * that reply (with queue_id from "queued as X"). On ETEMP/EPERM reply holds
 * the failing reply (RCPT's when RCPT failed) and reply->stage says where.
 *
 * Stages: "connect" (greeting, EHLO, STARTTLS), "auth", "mail", "rcpt",
 * "data" (the DATA command and the end of DATA). Classification:
 *   - the end-of-DATA reply decides when there is one (2xx OK, 4xx ETEMP,
 *     5xx EPERM); else the first failing reply in protocol order:
 *     421/554 greeting and 4xx/5xx to MAIL, RCPT, DATA by class; any
 *     failure at AUTH (535, 534, 530 ...) and 530 to MAIL when a username
 *     is configured -> EAUTH (reply holds the 535 text); a refused
 *     STARTTLS (454) -> ETLS;
 *   - without a failing reply, libcurl's result: login denied / no usable
 *     mechanism -> EAUTH; TLS handshake, certificate or name mismatch,
 *     STARTTLS not offered with tls "required" -> ETLS (nothing, not even
 *     AUTH or MAIL, is sent in clear then); refused / unresolvable /
 *     closed before the greeting -> ECONNECT; timeout -> ETIMEOUT (reply
 *     code 0, stage where it waited); the connection lost after at least
 *     one reply (e.g. after the end-of-DATA dot, before its reply) ->
 *     EDROP with reply code 0: an earlier 250 is never taken for acceptance.
 * reply->data_sent says whether the message itself went out (DATA was
 * answered 354): until then a failure sent no message and the caller may
 * try again; after it the final "." may have reached the relay.
 * Timeouts: connect at most relay->connect_timeout (libcurl's whole
 * connect phase: TCP, the greeting, EHLO, STARTTLS and AUTH), the whole transaction
 * at most min(relay->timeout, deadline - now_mono()); a deadline already
 * passed gives ETIMEOUT without connecting. URL: relay->url; when it has no
 * path, "/" + the local host name is appended (the EHLO argument).
 * libcurl dot-stuffs the message; p->message must be CRLF, not stuffed.
 * With tls "none" and a username, AUTH goes in clear (loopback tests only).
 */
int smtp_submit(const struct smtp_params *p, struct smtp_reply *reply,
                double *submit_time, char **errstr);

/*
 * Parse a (possibly multi-line) SMTP reply as received from the server
 * ("250-..\r\n250 ..\r\n"): basic code, RFC 3463 enhanced code when the
 * text starts with one whose class matches the basic code, text with the
 * code prefixes removed and lines joined by a space, and "queued as X".
 * Returns 0, or -1 when the reply is malformed (reply->code then 0):
 * fewer than 3 characters, a code outside 2yz-5yz (second digit 0-5), a
 * separator other than ' ' or '-', a last line still marked '-', text
 * after the last line, different codes on different lines (RFC 5321
 * §4.2.1), an embedded NUL, or a line over 4096 octets. Lines longer than
 * RFC 5321's 512 are accepted; the joined text is truncated to
 * REPLY_TEXT_MAX - 1 and control characters in it become spaces.
 */
int smtp_parse_reply(const char *raw, size_t len, struct smtp_reply *reply);

/* Parse an enhanced status code "class.subject.detail" (RFC 3463: class 2,
 * 4 or 5; subject 0-999; detail 0-999) at the start of s. Writes it to
 * out (size ENHANCED_MAX) and returns the number of characters consumed,
 * or 0 when s does not start with one. */
size_t smtp_parse_enhanced(const char *s, char out[ENHANCED_MAX]);

/* A human diagnostic for a reply, e.g. "greylisted / policy deferral" for
 * 450 4.2.0 or 451 4.7.1, "unknown mailbox" for 5.1.1, "unauthenticated
 * sender (SPF/DKIM/DMARC)" for 5.7.26. Static string; never NULL. */
const char *smtp_diagnostic(int code, const char *enhanced);

#endif
