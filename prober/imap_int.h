/*
 * imap_int.h - internal to prober/: the IMAP session's inside, shared by
 * imap.c (commands) and imap_idle.c (IDLE, UIDNEXT). Includes libetpan:
 * never include it outside prober/.
 */
#ifndef INBOXPROBE_IMAP_INT_H
#define INBOXPROBE_IMAP_INT_H

#include <stdint.h>
#include <stdlib.h>
#include <libetpan/libetpan.h>
#include "prober/imap.h"

/* The SINCE fallback fetches headers of recent messages. Polling every few
 * seconds must not fetch the same 500 headers again each time: per folder
 * (and UIDVALIDITY) we remember the highest UID examined for a token set,
 * and later passes for the same tokens (or a subset) fetch only newer UIDs. */
#define FALLBACK_FOLDERS 4
struct fallback_mark {
	char *folder;              /* wire name; NULL when the slot is free */
	unsigned long uidvalidity;
	uint32_t max_uid;          /* highest UID examined */
	char **tokens;             /* tokens it was examined for */
	size_t ntokens;
};

struct imap_session {
	mailimap *imap;
	const struct imap_conf *conf;
	long timeout;
	double deadline;
	int dead;                  /* connection unusable: every call -> IMAP_EBYE */
	char *selected;            /* wire name of the selected folder, NULL if none */
	unsigned long uidvalidity; /* of the selected folder */
	struct fallback_mark fb[FALLBACK_FOLDERS];  /* what the SINCE fallback already examined */
	/* The header (BODY[HEADER], capped) of the last probe imap_find_tokens
	 * proved, fetched with its proof: imap_fetch_header() of that UID
	 * takes it instead of a second FETCH; any other command drops it.
	 * NULL none. */
	char *hdr;
	size_t hdr_len;
	uint32_t hdr_uid;
	unsigned long hdr_uidvalidity;
	char *hdr_folder;
	int counted_up;            /* counted in n_up (logged in, not closed yet) */
	/* proof that a message is our probe (borrowed, see struct imap_params) */
	const char *probe_from;
	const unsigned char *secret;
	size_t secret_len;
	const struct hmac_key *old_secrets;   /* previous_secret_files, borrowed */
	size_t nold_secrets;
	const char *seed;
	int idling;                /* IDLE sent, "+" received, DONE not sent yet */
	unsigned long idle_exists; /* n of the last "* n EXISTS" read during IDLE; 0 none */
	double exists_rx;          /* its receive time (imap_rx_time()); 0 none */
	/* NOTIFY (RFC 5465, imap_notify.c): the mailbox watched beside the
	 * selected one ("" none) and its UIDNEXT/MESSAGES as last known */
	char notify_box[FOLDER_MAX];
	unsigned long notify_uidnext, notify_messages;
	unsigned long notify_set_uidnext;   /* UIDNEXT in NOTIFY SET STATUS's reply; 0 none */
	int notify_have_messages;
	/* UIDNEXT of the last STATUS that announced new mail; 0 when the last
	 * announcement named no UIDNEXT (NOTIFICATIONOVERFLOW, unparsable) */
	unsigned long notify_announced;
	unsigned long expunged;    /* EXPUNGE responses read so far (RFC 3501 7.4.1) */
	unsigned long exists_expunged; /* expunged at the last EXISTS read during IDLE */
	unsigned long notify_uidvalidity; /* of the watched mailbox's last STATUS; 0 none */
	double notify_rx;          /* receive time of that STATUS (imap_rx_time()); 0 none */
	/* UIDVALIDITY of the folder the last SELECT, STATUS or NOTIFY SET
	 * STATUS reply named (imap_uidvalidity_seen()); 0 none given */
	unsigned long seen_uidvalidity;
	/* the last command was IDLE, ended by DONE's tagged OK: the server
	 * has sent what a NOOP would (RFC 2177: updates come during IDLE), so
	 * re-selecting the same folder needs no NOOP. begin() clears it. */
	int synced;
};

/* The server's host and port, for messages ("?" and 0 when unknown). */
static inline const char *imapi_host(const struct imap_session *s)
{
	return s->conf && s->conf->host ? s->conf->host : "?";
}

static inline int imapi_port(const struct imap_session *s)
{
	return s->conf ? s->conf->port : 0;
}

/* Hand msg (heap, owned) to *errstr, or free it when errstr is NULL;
 * returns code. */
static inline int imapi_fail(char **errstr, int code, char *msg)
{
	if (errstr)
		*errstr = msg;
	else
		free(msg);
	return code;
}

/* Check the session is alive and arm the per-command limit (imap.c's
 * begin()). Returns IMAP_OK, IMAP_EBYE or IMAP_ETIMEOUT with *errstr set. */
int imapi_begin(struct imap_session *s, const char *what, char **errstr);

/* Arm the per-command limit for reading what the server sends during
 * IDLE (begin() without the "not in IDLE" check). */
int imapi_begin_idle_read(struct imap_session *s, char **errstr);

/* Map a libetpan result of command what to IMAP_* (imap.c's map_result());
 * a NO/BAD reply gives no_code. */
int imapi_map_result(struct imap_session *s, int r, const char *what, int no_code, char **errstr);

/* SELECT folder unless it is selected already (then NOOP). */
int imapi_select(struct imap_session *s, const char *folder, char **errstr);

/* An untagged line read during IDLE (other than EXISTS and BYE) that may
 * be a STATUS (RFC 5465 5.2): sets IMAP_IDLE_STATUS in *event when it
 * announces new mail in the session's NOTIFY mailbox (or cannot be parsed
 * while NOTIFY is set); "* OK [NOTIFICATIONOVERFLOW]" (5.8) turns NOTIFY
 * off (imap_notify_mailbox() NULL) and sets IMAP_IDLE_STATUS too. A
 * literal mailbox name reads its continuation line. IMAP_OK, or IMAP_EBYE
 * when the connection closed mid-response (imap_notify.c). */
int imapi_notify_line(struct imap_session *s, const char *line, int *event, char **errstr);

/* Copy server text for a message: printable ASCII only, capped. */
void imapi_server_text(char *buf, size_t bufsz, const char *t);

#endif
