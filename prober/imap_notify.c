/*
 * imap_notify.c - IMAP NOTIFY (RFC 5465) over a session of imap.c: the
 * NOTIFY SET command and the untagged STATUS responses that announce new
 * mail in a watched mailbox that is not selected. See imap_notify.h for
 * the sequence (NOTIFY SET, IDLE on INBOX, SELECT of the spam folder to
 * search it, SELECT INBOX again).
 *
 * libetpan 1.9.4 has no NOTIFY: the command goes out through
 * mailimap_custom_command() (tag, text, CRLF; the tagged reply is read
 * and NO/BAD reported; libetpan puts a space before the CRLF, which
 * Dovecot accepts and a strict server may refuse with BAD: the watch then
 * falls back to its next way), and the STATUS lines read during IDLE
 * (imap_idle.c reads those lines itself) are parsed here.
 */
#include <config.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libetpan/libetpan.h>

#include "common/util.h"
#include "prober/imap.h"
#include "prober/imap_int.h"
#include "prober/imap_notify.h"

#define NOTIFY_NAME_SEND_MAX 1000   /* longest mailbox name NOTIFY SET sends */
#define NUMBER_DIGITS_MAX 20        /* number64 (RFC 7162) has at most 20 digits */

/* ---- parsing ------------------------------------------------------------ */

static size_t strip_eol(const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	return len;
}

/* A number of at most NUMBER_DIGITS_MAX digits at p[*i]; saturates at
 * ULONG_MAX (values beyond it are not UIDs or counts we act on). */
static int parse_number(const char *p, size_t len, size_t *i, unsigned long *v)
{
	size_t start = *i;
	unsigned long x = 0;

	while (*i < len && isdigit((unsigned char)p[*i])) {
		unsigned d = (unsigned)(p[*i] - '0');
		x = x > (~0UL - d) / 10 ? ~0UL : x * 10 + d;
		(*i)++;
	}
	if (*i == start || *i - start > NUMBER_DIGITS_MAX)
		return -1;
	*v = x;
	return 0;
}

/* Store one att/value pair of the list. */
static void store_att(struct imap_status_resp *out, const char *att, size_t n, unsigned long v)
{
	static const struct { const char *name; unsigned bit; } known[] = {
		{ "MESSAGES", IMAP_ST_MESSAGES }, { "UIDNEXT", IMAP_ST_UIDNEXT },
		{ "UIDVALIDITY", IMAP_ST_UIDVALIDITY }, { "UNSEEN", IMAP_ST_UNSEEN },
		{ "RECENT", IMAP_ST_RECENT },
	};

	for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
		if (strlen(known[k].name) != n || strncasecmp(att, known[k].name, n) != 0)
			continue;
		out->have |= known[k].bit;
		switch (known[k].bit) {
		case IMAP_ST_MESSAGES: out->messages = v; break;
		case IMAP_ST_UIDNEXT: out->uidnext = v; break;
		case IMAP_ST_UIDVALIDITY: out->uidvalidity = v; break;
		case IMAP_ST_UNSEEN: out->unseen = v; break;
		default: out->recent = v; break;
		}
	}
}

/* " (att value *(SP att value))" up to the end of p (RFC 3501 9,
 * status-att-list; RFC 4466 allows an empty list). */
static int parse_atts(const char *p, size_t len, struct imap_status_resp *out)
{
	size_t i = 0;

	if (len < 3 || p[0] != ' ' || p[1] != '(')
		return IMAP_STATUS_MALFORMED;
	i = 2;
	while (i < len && p[i] != ')') {
		size_t a = i, alen;
		unsigned long v;

		while (i < len && (isalnum((unsigned char)p[i]) || p[i] == '-'))
			i++;
		alen = i - a;
		if (alen == 0 || i >= len || p[i] != ' ')
			return IMAP_STATUS_MALFORMED;
		i++;
		if (parse_number(p, len, &i, &v) != 0)
			return IMAP_STATUS_MALFORMED;
		store_att(out, p + a, alen, v);
		if (i < len && p[i] == ' ')
			i++;
		else if (i >= len || p[i] != ')')
			return IMAP_STATUS_MALFORMED;
	}
	if (i >= len || p[i] != ')' || i + 1 != len)
		return IMAP_STATUS_MALFORMED;
	return IMAP_STATUS_PARSED;
}

/* A quoted string at p[*i] (the opening DQUOTE) into out->mailbox. */
static int parse_quoted(const char *p, size_t len, size_t *i, struct imap_status_resp *out)
{
	size_t n = 0;

	for ((*i)++; *i < len && p[*i] != '"'; (*i)++) {
		char c = p[*i];
		if (c == '\\') {
			if (++*i >= len || (p[*i] != '"' && p[*i] != '\\'))
				return -1;
			c = p[*i];
		}
		if (c == '\r' || c == '\n' || c == '\0' || n + 1 >= sizeof out->mailbox)
			return -1;
		out->mailbox[n++] = c;
	}
	if (*i >= len)
		return -1;
	(*i)++;
	out->mailbox[n] = '\0';
	return 0;
}

/* An atom (ASTRING-CHAR: no SP, CTL, 8-bit, "(", ")", "{", DQUOTE, "\"). */
static int parse_atom(const char *p, size_t len, size_t *i, struct imap_status_resp *out)
{
	size_t n = 0;

	for (; *i < len && p[*i] != ' '; (*i)++) {
		unsigned char c = (unsigned char)p[*i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){\"\\", c) || n + 1 >= sizeof out->mailbox)
			return -1;
		out->mailbox[n++] = (char)c;
	}
	if (n == 0)
		return -1;
	out->mailbox[n] = '\0';
	return 0;
}

int imap_status_parse(const char *line, size_t len, struct imap_status_resp *out,
                      size_t *literal)
{
	size_t i = 9;

	memset(out, 0, sizeof *out);
	len = strip_eol(line, len);
	if (len < 10 || strncmp(line, "* ", 2) != 0 || strncasecmp(line + 2, "STATUS ", 7) != 0)
		return IMAP_STATUS_NOT;
	if (line[i] == '{') {
		/* literal: {n} or {n+} (RFC 7888), the line ends there */
		unsigned long n;
		i++;
		if (parse_number(line, len, &i, &n) != 0)
			return IMAP_STATUS_MALFORMED;
		if (i < len && line[i] == '+')
			i++;
		if (i + 1 != len || line[i] != '}' || literal == NULL)
			return IMAP_STATUS_MALFORMED;
		*literal = (size_t)n;
		return IMAP_STATUS_LITERAL;
	}
	if ((line[i] == '"' ? parse_quoted(line, len, &i, out) : parse_atom(line, len, &i, out)) != 0)
		return IMAP_STATUS_MALFORMED;
	return parse_atts(line + i, len - i, out);
}

int imap_status_parse_rest(const char *rest, size_t len, size_t n, struct imap_status_resp *out)
{
	memset(out, 0, sizeof *out);
	len = strip_eol(rest, len);
	/* a literal may carry any byte, a mailbox name no NUL, CR or LF */
	if (n >= sizeof out->mailbox || n > len || memchr(rest, '\0', n) != NULL ||
	    memchr(rest, '\r', n) != NULL || memchr(rest, '\n', n) != NULL)
		return IMAP_STATUS_MALFORMED;
	memcpy(out->mailbox, rest, n);
	out->mailbox[n] = '\0';
	return parse_atts(rest + n, len - n, out);
}

/* Mailbox names compare exactly, INBOX in any case (RFC 3501 5.1). */
static int same_mailbox(const char *a, const char *b)
{
	if (strcasecmp(a, "INBOX") == 0 && strcasecmp(b, "INBOX") == 0)
		return 1;
	return strcmp(a, b) == 0;
}

/* ---- the session's side ----------------------------------------------- */

/* Append mailbox as an IMAP quoted string (RFC 3501 9, quoted); -1 when
 * it holds a byte a quoted string cannot carry. */
static int add_quoted(struct strbuf *sb, const char *mailbox)
{
	size_t n = strlen(mailbox);

	if (n == 0 || n > NOTIFY_NAME_SEND_MAX)
		return -1;
	strbuf_adds(sb, "\"");
	for (const unsigned char *p = (const unsigned char *)mailbox; *p; p++) {
		if (*p < 0x20 || *p >= 0x7f)
			return -1;
		if (*p == '"' || *p == '\\')
			strbuf_adds(sb, "\\");
		strbuf_add(sb, p, 1);
	}
	strbuf_adds(sb, "\"");
	return 0;
}

int imap_notify_status_uidnext(const struct imap_status_resp *st, const char *mailbox,
                               unsigned long *uidnext)
{
	if (st == NULL || mailbox == NULL || !same_mailbox(st->mailbox, mailbox) ||
	    !(st->have & IMAP_ST_UIDNEXT) || st->uidnext == 0)
		return 0;
	*uidnext = st->uidnext;
	return 1;
}

/* The UIDNEXT of mailbox in the untagged STATUS that the NOTIFY SET STATUS
 * just read (libetpan keeps the last STATUS of a reply); 0 when none. */
static unsigned long reply_uidnext(struct imap_session *s, const char *mailbox)
{
	struct mailimap_mailbox_data_status *ms =
		s->imap->imap_response_info ? s->imap->imap_response_info->rsp_status : NULL;
	struct imap_status_resp st;
	unsigned long u = 0, uv = 0;

	if (ms == NULL || ms->st_mailbox == NULL || strlen(ms->st_mailbox) >= sizeof st.mailbox)
		return 0;
	memset(&st, 0, sizeof st);
	xstrlcpy(st.mailbox, ms->st_mailbox, sizeof st.mailbox);
	for (clistiter *it = ms->st_info_list ? clist_begin(ms->st_info_list) : NULL; it;
	     it = clist_next(it)) {
		struct mailimap_status_info *si = clist_content(it);
		if (si && si->st_att == MAILIMAP_STATUS_ATT_UIDNEXT) {
			st.have |= IMAP_ST_UIDNEXT;
			st.uidnext = si->st_value;
		}
		if (si && si->st_att == MAILIMAP_STATUS_ATT_UIDVALIDITY)
			uv = si->st_value;
	}
	if (imap_notify_status_uidnext(&st, mailbox, &u))
		s->seen_uidvalidity = uv;
	return u;
}

unsigned long imap_notify_set_uidnext(const struct imap_session *s)
{
	return s && s->notify_box[0] ? s->notify_set_uidnext : 0;
}

/* NOTIFY NONE (RFC 5465 3): before a NOTIFY SET that replaces another. */
static int notify_none(struct imap_session *s, char **errstr)
{
	int r = imapi_begin(s, "NOTIFY", errstr);

	if (r == IMAP_OK) {
		r = mailimap_custom_command(s->imap, "NOTIFY NONE");
		r = imapi_map_result(s, r, "NOTIFY NONE", IMAP_EPROTO, errstr);
	}
	s->notify_box[0] = '\0';
	return r;
}

int imap_notify_set(struct imap_session *s, const char *mailbox, unsigned long uidnext,
                    char **errstr)
{
	struct strbuf cmd = { 0 };
	int r;

	if (s->notify_box[0] && strcmp(s->notify_box, mailbox) == 0) {
		/* Already set on this session (a kept session's next round).
		 * Dovecot 2.3.19 announces nothing more for the mailbox after a
		 * second NOTIFY SET once it sent an event: keep the first. */
		if (uidnext > 0)
			s->notify_uidnext = uidnext;
		s->notify_set_uidnext = 0;   /* no command, no STATUS: ask for it */
		return IMAP_OK;
	}
	if (s->notify_box[0] && (r = notify_none(s, errstr)) != IMAP_OK)
		return r;   /* Dovecot: NOTIFY NONE, then SET, announces again */

	if (!imap_has_capability(s, "NOTIFY"))
		return imapi_fail(errstr, IMAP_EPROTO, xasprintf("imap %s:%d: the server does not offer NOTIFY",
		                                           imapi_host(s), imapi_port(s)));
	if (strchr(mailbox, '&') != NULL)
		/* Dovecot 2.3.19 accepts such a name and then never announces
		 * anything for it (its events carry the UTF-8 name; seen on the
		 * world with "Courrier ind&AOk-sirable"): not worth the risk */
		return imapi_fail(errstr, IMAP_EPROTO,
		            xasprintf("imap %s:%d: NOTIFY not used for a folder name in modified UTF-7 "
		                      "(Dovecot 2.3 never announces mail there)", imapi_host(s), imapi_port(s)));
	/* STATUS (RFC 5465 3): the server sends an untagged STATUS of the
	 * mailbox before the tagged OK, which saves a STATUS command */
	strbuf_adds(&cmd, "NOTIFY SET STATUS (selected (MessageNew MessageExpunge)) (mailboxes ");
	if (add_quoted(&cmd, mailbox) != 0) {
		strbuf_free(&cmd);
		return imapi_fail(errstr, IMAP_EPROTO,
		            xasprintf("imap %s:%d: NOTIFY: the folder name cannot be sent as a quoted string",
		                      imapi_host(s), imapi_port(s)));
	}
	strbuf_adds(&cmd, " (MessageNew MessageExpunge))");
	s->notify_set_uidnext = 0;
	s->seen_uidvalidity = 0;
	r = imapi_begin(s, "NOTIFY", errstr);
	if (r == IMAP_OK) {
		r = mailimap_custom_command(s->imap, cmd.buf);
		if (r == MAILIMAP_NO_ERROR)
			s->notify_set_uidnext = reply_uidnext(s, mailbox);
		r = imapi_map_result(s, r, "NOTIFY SET", IMAP_EPROTO, errstr);
	}
	strbuf_free(&cmd);
	if (r != IMAP_OK)
		return r;
	xstrlcpy(s->notify_box, mailbox, sizeof s->notify_box);
	s->notify_uidnext = uidnext ? uidnext : s->notify_set_uidnext;
	s->notify_messages = 0;
	s->notify_have_messages = 0;
	s->notify_announced = 0;
	s->notify_uidvalidity = 0;
	return IMAP_OK;
}

const char *imap_notify_mailbox(const struct imap_session *s)
{
	return s && s->notify_box[0] ? s->notify_box : NULL;
}

unsigned long imap_notify_announced(const struct imap_session *s)
{
	return s ? s->notify_announced : 0;
}

/* A UIDNEXT outside 1..2^32-1 (RFC 3501 9: nz-number; a UID is 32 bits)
 * is no UIDNEXT: kept, it would stay above every later one and no new mail
 * would be announced again. A new UIDVALIDITY (RFC 3501 2.3.1.1: the
 * folder was recreated, its UIDs start anew) forgets the old values: the
 * STATUS is new mail (its UIDNEXT, if any, bounds the new UIDs). */
static void status_sanitize(struct imap_session *s, struct imap_status_resp *st)
{
	if ((st->have & IMAP_ST_UIDNEXT) && (st->uidnext == 0 || st->uidnext > 4294967295UL))
		st->have &= ~(unsigned)IMAP_ST_UIDNEXT;
	if (!(st->have & IMAP_ST_UIDVALIDITY) || st->uidvalidity == 0)
		return;
	if (s->notify_uidvalidity != 0 && st->uidvalidity != s->notify_uidvalidity) {
		log_debug("imap %s:%d: NOTIFY: UIDVALIDITY of \"%s\" changed (%lu, was %lu)",
		          imapi_host(s), imapi_port(s), s->notify_box, st->uidvalidity,
		          s->notify_uidvalidity);
		s->notify_uidnext = 0;
		s->notify_have_messages = 0;
	}
	s->notify_uidvalidity = st->uidvalidity;
}

/* Does st say new mail arrived in the watched mailbox? Keeps its values. */
static int is_new_mail(struct imap_session *s, const struct imap_status_resp *st)
{
	int is_new;

	if (st->have & IMAP_ST_UIDNEXT)
		is_new = s->notify_uidnext == 0 || st->uidnext > s->notify_uidnext;
	else if (st->have & IMAP_ST_MESSAGES)
		is_new = !s->notify_have_messages || st->messages > s->notify_messages;
	else
		is_new = 1;   /* nothing to compare: look rather than miss it */
	if ((st->have & IMAP_ST_UIDNEXT) && st->uidnext > s->notify_uidnext)
		s->notify_uidnext = st->uidnext;
	if (st->have & IMAP_ST_MESSAGES) {
		s->notify_messages = st->messages;
		s->notify_have_messages = 1;
	}
	return is_new;
}

int imapi_notify_line(struct imap_session *s, const char *line, int *event, char **errstr)
{
	struct imap_status_resp st;
	size_t lit = 0;
	int r;

	if (strncasecmp(line, "* OK [NOTIFICATIONOVERFLOW]", 27) == 0 && s->notify_box[0]) {
		/* RFC 5465 5.8: the server now behaves as after NOTIFY NONE; the
		 * watch looks at the folder and sets NOTIFY again */
		log_debug("imap %s:%d: NOTIFICATIONOVERFLOW: NOTIFY is off", imapi_host(s), imapi_port(s));
		s->notify_box[0] = '\0';
		s->notify_announced = 0;   /* no message named: no announcement of one */
		*event |= IMAP_IDLE_STATUS;
		return IMAP_OK;
	}
	r = imap_status_parse(line, strlen(line), &st, &lit);
	if (r == IMAP_STATUS_LITERAL) {
		/* the name and the attributes follow on the next line */
		char *more = mailimap_read_line(s->imap);
		if (more == NULL) {
			s->dead = 1;
			s->idling = 0;
			return imapi_fail(errstr, IMAP_EBYE,
			            xasprintf("imap %s:%d: IDLE: connection closed without BYE",
			                      imapi_host(s), imapi_port(s)));
		}
		r = imap_status_parse_rest(more, strlen(more), lit, &st);
	}
	if (r == IMAP_STATUS_NOT || !s->notify_box[0])
		return IMAP_OK;
	if (r != IMAP_STATUS_PARSED) {
		/* cannot tell which mailbox: look rather than miss the probe */
		log_debug("imap %s:%d: unparsable STATUS during IDLE; checking the NOTIFY folder",
		          imapi_host(s), imapi_port(s));
		s->notify_announced = 0;
		*event |= IMAP_IDLE_STATUS;
		return IMAP_OK;
	}
	if (!same_mailbox(st.mailbox, s->notify_box))
		return IMAP_OK;
	status_sanitize(s, &st);
	if (is_new_mail(s, &st)) {
		s->notify_announced = (st.have & IMAP_ST_UIDNEXT) ? st.uidnext : 0;
		*event |= IMAP_IDLE_STATUS;
	}
	return IMAP_OK;
}
