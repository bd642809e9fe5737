/*
 * retry.h - what an IMAP error calls for, in one table (the manner of
 * isync's FAIL_TEMP / FAIL_WAIT / FAIL_FINAL in src/sync.h): the retry class
 * is a property of the error code, and the round's engine (scheduler/
 * round.c, watch.c) asks this table, and nothing else, whether to
 * reconnect, retry later or give up. The same table gives the words a
 * seed's diagnostic starts with and the outcome the error leads to.
 *
 * Issue 9 "Disconnects and refusals, anywhere":
 * - a BYE or a dropped connection at any step (FAIL_TEMP): reconnect once,
 *   resume, then error;
 * - a connection refused, closed before the login completed, or
 *   [UNAVAILABLE] (FAIL_WAIT; FAIL_TEMP while opening): retried with
 *   backoff while the first half of the round allows (servers cap
 *   connections per client IP);
 * - a refusal (login, TLS, STARTTLS, a folder), a protocol error, a
 *   timeout (the command's limit or the round's deadline) or a changed
 *   UIDVALIDITY (FAIL_FINAL): no retry this round;
 * - a BYE that asks for a new login (Exchange Online's "* BYE Session
 *   invalidated - AccessTokenExpired"): reconnect with fresh credentials,
 *   without using up the one reconnect (retry_wants_relogin()).
 *
 * SMTP submissions (prober/smtp.h enum smtp_err) have a table of their
 * own (retry_smtp_class(), retry_smtp_again()): a 4xx reply, and a
 * connection that failed before the message went out (refused, closed or
 * timed out before the greeting, dropped or timed out at EHLO, STARTTLS,
 * AUTH, MAIL, RCPT or DATA before its 354) are FAIL_WAIT: nothing was
 * sent, so the submission is tried again after a backoff; a 5xx, an AUTH
 * or TLS refusal, a garbled reply and our own lack of file descriptors are
 * FAIL_FINAL. Once the message went out (after DATA's 354) only the
 * relay's 4xx to it is retried: a cut there may have delivered it.
 */
#ifndef INBOXPROBE_RETRY_H
#define INBOXPROBE_RETRY_H

#include "common/model.h"

enum fail_class {
	FAIL_NONE = 0,   /* IMAP_OK: nothing failed */
	FAIL_TEMP,       /* the session is gone, the server may take us back now: reconnect */
	FAIL_WAIT,       /* no session yet, the server may have room later: retry after a backoff */
	FAIL_FINAL       /* asking again this round gives the same answer: give up */
};

/* The retry class of an IMAP error code (enum imap_err, prober/imap.h).
 * Codes outside the enum are FAIL_FINAL. */
enum fail_class retry_class(int rc);

/* 1 when an attempt to OPEN a session that failed with rc may be tried
 * again after a backoff (FAIL_WAIT, and FAIL_TEMP: a connection closed
 * before the login completed), else 0. */
int retry_open_again(int rc);

/* 1 when a session that failed with rc is worth its one reconnect
 * (FAIL_TEMP), else 0. */
int retry_reconnect(int rc);

/* 1 when a BYE's text (the seed's diagnostic, "server said BYE: ...") asks
 * for a new login with fresh credentials (Exchange Online: "Session
 * invalidated - AccessTokenExpired"), else 0. NULL allowed. */
int retry_wants_relogin(const char *text);

/* The outcome a seed gets when its watch ends on rc: OUTCOME_ERROR for
 * every error (the probe could not be measured), OUTCOME_MISSING for
 * IMAP_OK (nothing failed). */
enum outcome retry_outcome(int rc);

/* Short static text a diagnostic starts with, e.g. "IMAP authentication
 * failed"; unknown codes read "IMAP protocol error". */
const char *retry_text(int rc);

/* The retry class of an SMTP submission's error code (enum smtp_err,
 * prober/smtp.h): FAIL_NONE for SMTP_OK, FAIL_WAIT for what another
 * attempt may get past (SMTP_ETEMP, SMTP_ECONNECT, SMTP_ETIMEOUT,
 * SMTP_EDROP), FAIL_FINAL for the rest and for codes outside the enum. */
enum fail_class retry_smtp_class(int rc);

/* 1 when a submission that failed with rc may be tried again after a
 * backoff, else 0: its class is FAIL_WAIT and either the relay answered
 * 4xx (SMTP_ETEMP: it kept nothing) or no message went out (data_sent 0,
 * struct smtp_reply: the failure came before DATA's 354). A failure after
 * the message went out is never retried: its final "." may have reached
 * the relay, and a second copy would be delivered. */
int retry_smtp_again(int rc, int data_sent);

#endif
