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
 */
#ifndef INBOXPROBE_SMTP_H
#define INBOXPROBE_SMTP_H

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
	SMTP_EPROTO          /* anything else (malformed reply, libcurl internal) */
};

/* Static short name of a code for traces: "ok", "temp", "perm", "connect"... */
const char *smtp_err_name(int err);

/* libcurl global init/cleanup; call once from main. 0 or -1. */
int smtp_global_init(void);
void smtp_global_cleanup(void);

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
 */
int smtp_submit(const struct smtp_params *p, struct smtp_reply *reply,
                double *submit_time, char **errstr);

/*
 * Parse a (possibly multi-line) SMTP reply as received from the server
 * ("250-..\r\n250 ..\r\n"): basic code, RFC 3463 enhanced code when the
 * text starts with one whose class matches the basic code, text with the
 * code prefixes removed and lines joined by a space, and "queued as X".
 * Returns 0, or -1 when the reply is malformed (reply->code then 0).
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
