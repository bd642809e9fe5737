/*
 * imap_notify.h - IMAP NOTIFY (RFC 5465): INBOX and the spam folder watched
 * on one connection. See docs/SPEC.md "What it is" and scheduler/watch.c.
 *
 * The sequence, on a session whose INBOX is selected:
 * 1. NOTIFY SET (selected (MessageNew MessageExpunge))
 *               (mailboxes "SPAM" (MessageNew MessageExpunge))
 *    (imap_notify_set; Dovecot 2.3 refuses MessageNew without
 *    MessageExpunge: "BAD ... MessageNew and MessageExpunge must be together");
 * 2. IDLE (RFC 2177) on INBOX (imap_idle_start). A message arriving in
 *    INBOX is announced by "* n EXISTS" (IMAP_IDLE_EXISTS); one arriving in
 *    the spam folder by an untagged "* STATUS SPAM (MESSAGES n UIDNEXT u ...)"
 *    with no UID (RFC 5465 5.2; IMAP_IDLE_STATUS, imap_idle_read);
 * 3. to search the spam folder it must be selected (SELECT or EXAMINE),
 *    which ends INBOX's selection: DONE, SELECT SPAM, UID SEARCH from the
 *    armed UIDNEXT, FETCH, cleanup; then SELECT INBOX and search it too
 *    (while the spam folder was selected, INBOX was neither the selected
 *    mailbox nor in the NOTIFY list: what arrived there meanwhile was not
 *    announced), then IDLE again. NOTIFY SET stays in force across
 *    SELECTs ("selected" means whichever mailbox is selected).
 *
 * No libetpan or OpenSSL types here: the parser is unit-tested on its own.
 */
#ifndef INBOXPROBE_IMAP_NOTIFY_H
#define INBOXPROBE_IMAP_NOTIFY_H

#include <stddef.h>

struct imap_session;

#define IMAP_STATUS_NAME_MAX 1024   /* mailbox names kept from a STATUS line */

/* What an untagged STATUS response (RFC 3501 7.2.4) carried. */
struct imap_status_resp {
	char mailbox[IMAP_STATUS_NAME_MAX];   /* as sent, unquoted (the wire name) */
	unsigned have;                        /* IMAP_ST_* bits: which values were sent */
	unsigned long messages, uidnext, uidvalidity, unseen, recent;
};
enum {
	IMAP_ST_MESSAGES = 1,
	IMAP_ST_UIDNEXT = 2,
	IMAP_ST_UIDVALIDITY = 4,
	IMAP_ST_UNSEEN = 8,
	IMAP_ST_RECENT = 16
};

/* Results of imap_status_parse(). */
enum {
	IMAP_STATUS_PARSED = 0,    /* *out filled */
	IMAP_STATUS_NOT = 1,       /* not an untagged STATUS response */
	IMAP_STATUS_LITERAL = 2,   /* the mailbox is a literal {n}: *literal = n; the
	                              name and the rest follow on the next line; see
	                              imap_status_parse_rest() */
	IMAP_STATUS_MALFORMED = -1
};

/*
 * Parse one untagged response line "* STATUS mailbox (att value ...)"
 * (RFC 3501 7.2.4 and 9; RFC 5465 5.2 sends it for a watched mailbox that
 * is not selected). len bytes of line; a trailing CRLF or LF is allowed.
 * The mailbox is an atom, a quoted string (\" and \\ unescaped) or a
 * literal. Attributes other than MESSAGES, UIDNEXT, UIDVALIDITY, UNSEEN
 * and RECENT (HIGHESTMODSEQ, SIZE, ...) are skipped when their value is a
 * number. A name longer than IMAP_STATUS_NAME_MAX - 1 bytes, a value that
 * is not a number (or over 20 digits), a missing parenthesis or trailing
 * bytes give IMAP_STATUS_MALFORMED. literal may be NULL when the caller
 * cannot read a continuation (then a literal is malformed). No allocation.
 */
int imap_status_parse(const char *line, size_t len, struct imap_status_resp *out,
                      size_t *literal);

/*
 * The rest of a STATUS whose mailbox was a literal of n bytes: rest holds
 * the n bytes of the name, then " (att value ...)" and the line end.
 * Same results as imap_status_parse() (never IMAP_STATUS_LITERAL); a name
 * holding NUL, CR or LF is malformed.
 */
int imap_status_parse_rest(const char *rest, size_t len, size_t n, struct imap_status_resp *out);

/*
 * Does st, the untagged STATUS that NOTIFY SET STATUS sent (RFC 5465 3),
 * give mailbox's UIDNEXT? 1 and *uidnext set when st names mailbox (INBOX
 * in any case) and carries a non-zero UIDNEXT; else 0 (another mailbox, or
 * a STATUS without UIDNEXT: the caller asks with a STATUS command).
 */
int imap_notify_status_uidnext(const struct imap_status_resp *st, const char *mailbox,
                               unsigned long *uidnext);

/*
 * NOTIFY SET STATUS (selected (MessageNew MessageExpunge)) (mailboxes
 * "MAILBOX" (MessageNew MessageExpunge)) (RFC 5465 3, 5): mailbox (a wire
 * name, borrowed) is watched beside whichever mailbox is selected. With the
 * STATUS indicator the server sends, before its tagged OK, an untagged
 * STATUS of mailbox (Dovecot 2.3.19: MESSAGES, UIDNEXT, UIDVALIDITY,
 * UNSEEN): its UIDNEXT is then imap_notify_set_uidnext(). uidnext: the
 * mailbox's UIDNEXT when armed (0 unknown: the reply's is taken); a later
 * STATUS with a larger UIDNEXT (or
 * MESSAGES) is the announcement of new mail there. Fails with IMAP_EPROTO
 * when the server does not offer NOTIFY, when the name cannot be sent as a
 * quoted string (8-bit bytes, CR, LF, over 1000 bytes), and on NO or BAD
 * (the session stays usable: fall back to another way of watching). Also
 * IMAP_EPROTO for a name holding modified UTF-7 ("&"): Dovecot 2.3.19
 * accepts NOTIFY SET for "Courrier ind&AOk-sirable" and then sends no
 * event for it (under the "personal" filter it sends the name as a UTF-8
 * literal, "* STATUS {21}"). While idling, IMAP_EPROTO. Returns an IMAP_*
 * code, *errstr as in imap.h.
 * On a session where NOTIFY is set for mailbox already, only uidnext is
 * taken (no command: Dovecot 2.3.19 stops announcing the mailbox after a
 * second NOTIFY SET that follows an event); set for another mailbox,
 * NOTIFY NONE goes first.
 */
int imap_notify_set(struct imap_session *s, const char *mailbox, unsigned long uidnext,
                    char **errstr);

/* The UIDNEXT of the NOTIFY mailbox that the last imap_notify_set() on s
 * read in the reply of its NOTIFY SET STATUS; 0 when the server sent none
 * (or without UIDNEXT, or for another name), when no command was sent
 * (set already) or NOTIFY is not set. */
unsigned long imap_notify_set_uidnext(const struct imap_session *s);

/* The mailbox NOTIFY SET watches on s beside the selected one, or NULL
 * when none (never set, or the session was replaced). Borrowed. */
const char *imap_notify_mailbox(const struct imap_session *s);

/* The UIDNEXT carried by the last untagged STATUS that announced new mail
 * in the NOTIFY mailbox (RFC 5465 5.2): the messages it announced have
 * UIDs below it, so one with a higher UID arrived after the announcement
 * and was not announced by it. 0 when that announcement gave no UIDNEXT
 * (a NOTIFICATIONOVERFLOW, an unparsable STATUS, a STATUS with MESSAGES
 * only), and before any. */
unsigned long imap_notify_announced(const struct imap_session *s);

#endif
