/*
 * imap_idle.c - arming a folder (UIDNEXT) and IMAP IDLE (RFC 2177) over a
 * session of imap.c. See imap.h, "Watching".
 *
 * libetpan's mailimap_idle() sends IDLE and reads up to the "+"
 * continuation; untagged responses that arrive before it are parsed and
 * dropped. While idling, inboxprobe reads the untagged lines itself
 * (mailimap_read_line) so that an EXISTS is seen the moment it arrives,
 * then ends IDLE with mailimap_idle_done() (DONE, tagged OK). Bytes that
 * libetpan already buffered, or that OpenSSL decrypted and holds
 * (SSL_pending), do not wake poll() on the fd: both are checked first.
 * When an EXISTS or a NOTIFY STATUS is parsed, the receive time of the
 * latest read (prober/tls.h tls_low_last_rx(): the kernel's stamp of the
 * segment) is kept with it: its bytes were read by then, so that moment
 * bounds its arrival however late this thread woke up (imap_rx_time()).
 */
#include <config.h>

#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libetpan/libetpan.h>

#include "common/util.h"
#include "prober/imap.h"
#include "prober/imap_int.h"
#include "prober/tls.h"

#define IDLE_LINE_TEXT_MAX 200     /* server text kept from a BYE */

int imap_select_uidnext(struct imap_session *s, const char *folder, unsigned long *uidnext,
                        char **errstr)
{
	int r;

	*uidnext = 0;
	/* a fresh SELECT: UIDNEXT of the selection as it is now */
	free(s->selected);
	s->selected = NULL;
	r = imapi_select(s, folder, errstr);
	if (r)
		return r;
	if (s->imap->imap_selection_info && s->imap->imap_selection_info->sel_uidnext)
		*uidnext = s->imap->imap_selection_info->sel_uidnext;
	else
		return imap_status_uidnext(s, folder, uidnext, errstr);
	return IMAP_OK;
}

int imap_status_uidnext(struct imap_session *s, const char *folder, unsigned long *uidnext,
                        char **errstr)
{
	struct mailimap_status_att_list *atts = NULL;
	struct mailimap_mailbox_data_status *st = NULL;
	int r;

	*uidnext = 0;
	s->seen_uidvalidity = 0;
	r = imapi_begin(s, "STATUS", errstr);
	if (r)
		return r;
	atts = mailimap_status_att_list_new_empty();
	if (!atts)
		return imapi_fail(errstr, IMAP_EPROTO, xasprintf("imap %s:%d: STATUS: out of memory",
		                                           imapi_host(s), imapi_port(s)));
	mailimap_status_att_list_add(atts, MAILIMAP_STATUS_ATT_UIDNEXT);
	mailimap_status_att_list_add(atts, MAILIMAP_STATUS_ATT_UIDVALIDITY);
	r = mailimap_status(s->imap, folder, atts, &st);
	mailimap_status_att_list_free(atts);
	r = imapi_map_result(s, r, "STATUS", IMAP_ENOFOLDER, errstr);
	if (r == IMAP_OK && st && st->st_info_list) {
		for (clistiter *it = clist_begin(st->st_info_list); it; it = clist_next(it)) {
			struct mailimap_status_info *si = clist_content(it);
			if (si && si->st_att == MAILIMAP_STATUS_ATT_UIDNEXT)
				*uidnext = si->st_value;
			if (si && si->st_att == MAILIMAP_STATUS_ATT_UIDVALIDITY)
				s->seen_uidvalidity = si->st_value;
		}
	}
	if (st)
		mailimap_mailbox_data_status_free(st);
	return r;
}

int imap_idle_start(struct imap_session *s, char **errstr)
{
	int r;

	if (!imap_has_capability(s, "IDLE"))
		return imapi_fail(errstr, IMAP_EPROTO, xasprintf("imap %s:%d: the server does not offer IDLE",
		                                           imapi_host(s), imapi_port(s)));
	if (s->idling)
		return IMAP_OK;
	r = imapi_begin(s, "IDLE", errstr);
	if (r)
		return r;
	r = mailimap_idle(s->imap);
	r = imapi_map_result(s, r, "IDLE", IMAP_EPROTO, errstr);
	if (r == IMAP_OK)
		s->idling = 1;
	return r;
}

int imap_idling(const struct imap_session *s)
{
	return s && s->idling && !s->dead;
}

/* 1 when input is already waiting above the fd: in libetpan's buffer or
 * decrypted inside OpenSSL. */
static int buffered(struct imap_session *s)
{
	mailstream *st = s->imap ? s->imap->imap_stream : NULL;

	if (!st)
		return 0;
	return st->read_buffer_len > 0 || tls_low_pending(mailstream_get_low(st)) > 0;
}

int imap_idle_wait(struct imap_session *const *ss, size_t n, double until, int *ready)
{
	struct pollfd pf[IMAP_IDLE_WAIT_MAX];
	size_t map[IMAP_IDLE_WAIT_MAX], np = 0;
	int nready = 0;

	for (size_t i = 0; i < n && i < IMAP_IDLE_WAIT_MAX; i++) {
		ready[i] = 0;
		if (!ss[i] || !imap_idling(ss[i]))
			continue;
		if (buffered(ss[i])) {
			ready[i] = 1;
			nready++;
			continue;
		}
		pf[np].fd = mailimap_idle_get_fd(ss[i]->imap);
		pf[np].events = POLLIN;
		pf[np].revents = 0;
		if (pf[np].fd >= 0)
			map[np++] = i;
	}
	if (nready > 0 || np == 0) {
		if (np == 0 && nready == 0) {
			double left = until - now_mono();
			if (left > 0)
				sleep_seconds(left);
		}
		return nready;
	}
	{
		double left = until - now_mono();
		int ms = left <= 0 ? 0 : (int)(left * 1000.0 + 0.999);
		int pr = poll(pf, (nfds_t)np, ms);

		if (pr <= 0)
			return 0;   /* timeout, or EINTR: the caller looks again */
	}
	for (size_t k = 0; k < np; k++)
		if (pf[k].revents & (POLLIN | POLLHUP | POLLERR)) {
			ready[map[k]] = 1;
			nready++;
		}
	return nready;
}

int imap_idle_fd(struct imap_session *s, int *waiting)
{
	*waiting = 0;
	if (!imap_idling(s))
		return -1;
	*waiting = buffered(s);
	return mailimap_idle_get_fd(s->imap);
}

const char *imap_selected(const struct imap_session *s)
{
	return s ? s->selected : NULL;
}

/* "* <n> EXISTS" (RFC 3501 7.3.1), case-insensitive: n (saturated), or 0
 * when line is no EXISTS. */
static unsigned long is_exists(const char *line)
{
	const char *p = line + 2;
	unsigned long n = 0;

	if (!isdigit((unsigned char)*p))
		return 0;
	while (isdigit((unsigned char)*p)) {
		unsigned d = (unsigned)(*p++ - '0');
		n = n > (~0UL - d) / 10 ? ~0UL : n * 10 + d;
	}
	return strncasecmp(p, " EXISTS", 7) == 0 ? n : 0;
}

/* "* <n> EXPUNGE" (RFC 3501 7.4.1), case-insensitive: 1, else 0. */
static int is_expunge(const char *line)
{
	const char *p = line + 2;

	if (!isdigit((unsigned char)*p))
		return 0;
	while (isdigit((unsigned char)*p))
		p++;
	return strncasecmp(p, " EXPUNGE", 8) == 0 && (p[8] == '\0' || p[8] == '\r' || p[8] == '\n');
}

/* Read one line sent while idling and classify it. */
static int read_one(struct imap_session *s, int *event, char **errstr)
{
	char text[IDLE_LINE_TEXT_MAX + 8];
	char *line;
	int r = imapi_begin_idle_read(s, errstr);

	if (r)
		return r;
	line = mailimap_read_line(s->imap);
	if (!line) {
		s->dead = 1;
		s->idling = 0;
		if (tls_low_timed_out(mailstream_get_low(s->imap->imap_stream)))
			return imapi_fail(errstr, IMAP_ETIMEOUT,
			            xasprintf("imap %s:%d: IDLE: a line was cut off (no end in time)",
			                      imapi_host(s), imapi_port(s)));
		return imapi_fail(errstr, IMAP_EBYE,
		            xasprintf("imap %s:%d: IDLE: connection closed without BYE",
		                      imapi_host(s), imapi_port(s)));
	}
	if (strncmp(line, "* ", 2) != 0) {
		/* a tagged reply: the server ended IDLE on its own */
		s->idling = 0;
		*event |= IMAP_IDLE_ENDED;
		return IMAP_OK;
	}
	if (strncasecmp(line + 2, "BYE", 3) == 0) {
		imapi_server_text(text, sizeof text, line + 5 + (line[5] == ' '));
		s->dead = 1;
		s->idling = 0;
		return imapi_fail(errstr, IMAP_EBYE,
		            xasprintf("imap %s:%d: IDLE: server said BYE%s%s", imapi_host(s), imapi_port(s),
		                      text[0] ? ": " : "", text));
	}
	if (is_expunge(line)) {
		s->expunged++;   /* lowers the sequence numbers EXISTS gave */
	} else if (is_exists(line) > 0) {
		s->idle_exists = is_exists(line);
		s->exists_expunged = s->expunged;
		s->exists_rx = imap_rx_time(s, 0);   /* the line's bytes are read: bound */
		*event |= IMAP_IDLE_EXISTS;
	} else {
		int ev = 0;

		r = imapi_notify_line(s, line, &ev, errstr);   /* NOTIFY, RFC 5465 */
		if (ev & IMAP_IDLE_STATUS)
			s->notify_rx = imap_rx_time(s, 0);
		*event |= ev;
	}
	return r;
}

int imap_idle_read(struct imap_session *s, int *event, char **errstr)
{
	int r = IMAP_OK;

	*event = 0;
	if (!imap_idling(s))
		return imapi_fail(errstr, IMAP_EBYE, xasprintf("imap %s:%d: IDLE: session not idling",
		                                         imapi_host(s), imapi_port(s)));
	/* Capped: a server sending lines faster than they are read would
	 * otherwise hold the caller here. What is left stays buffered, and
	 * imap_idle_wait() reports it as ready at once. */
	for (int lines = 0; lines < IMAP_IDLE_READ_LINES; lines++) {
		r = read_one(s, event, errstr);
		if (r != IMAP_OK || !s->idling || !buffered(s))
			break;
	}
	return r;
}

unsigned long imap_idle_exists(const struct imap_session *s)
{
	return s ? s->idle_exists : 0;
}

double imap_rx_time(const struct imap_session *s, int what)
{
	mailstream *st;

	if (s == NULL)
		return 0;
	if (what == IMAP_IDLE_EXISTS)
		return s->exists_rx;
	if (what == IMAP_IDLE_STATUS)
		return s->notify_rx;
	st = s->imap ? s->imap->imap_stream : NULL;
	return st ? tls_low_last_rx(mailstream_get_low(st)) : 0;
}

int imap_idle_done(struct imap_session *s, char **errstr)
{
	int r;

	if (!s->idling)
		return s->dead ? imapi_fail(errstr, IMAP_EBYE,
		                      xasprintf("imap %s:%d: DONE: connection closed earlier in this session",
		                                imapi_host(s), imapi_port(s))) : IMAP_OK;
	s->idling = 0;
	r = imapi_begin(s, "DONE", errstr);
	if (r)
		return r;
	r = mailimap_idle_done(s->imap);
	r = imapi_map_result(s, r, "IDLE/DONE", IMAP_EPROTO, errstr);
	s->synced = r == IMAP_OK;   /* select_folder() of the same folder: no NOOP */
	return r;
}
