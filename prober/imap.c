/*
 * imap.c - IMAP discovery of probes with libetpan over our own verified
 * TLS stream (prober/tls.c). See imap.h.
 */
#include <config.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libetpan/libetpan.h>

#include "common/hfield.h"
#include "common/util.h"
#include "prober/dsn.h"
#include "prober/imap.h"
#include "prober/oauth2.h"
#include "prober/sasl.h"
#include "prober/message.h"
#include "prober/imap_int.h"
#include "prober/tls.h"
#include "prober/trace.h"

#define SERVER_TEXT_MAX 200        /* server text quoted in messages */
#define FALLBACK_MAX_UIDS 500      /* newest UIDs fetched by the fallback */
#define FETCH_BATCH 100            /* UIDs per FETCH command */
#define PROOF_FETCH_MAX 16384      /* octets of the proof's header fields fetched per message */
#define BOUNCE_MAX_BYTES 262144    /* 256 KiB per DSN fetched */
#define BOUNCE_MAX_UIDS 200        /* messages examined per call (oldest unexamined first) */
#define BOUNCE_DATE_MAX 5000       /* newest messages whose INTERNALDATE is checked on a first scan */

/* Process-wide figures for imap_counters() (the daemon's metrics). */
static atomic_ullong n_logins;
static atomic_long n_connecting, n_up;

void imap_counters(struct imap_counters *out)
{
	out->logins = atomic_load(&n_logins);
	out->connecting = atomic_load(&n_connecting);
	out->up = atomic_load(&n_up);
}

void imap_set_abort_flag(const atomic_int *flag)
{
	tls_set_abort_flag(flag);
}

int imap_stop_requested(void)
{
	return tls_stop_requested();
}

const char *imap_err_name(int err)
{
	switch (err) {
	case IMAP_OK: return "ok";
	case IMAP_ECONNECT: return "connect";
	case IMAP_ETLS: return "tls";
	case IMAP_ENOSTARTTLS: return "nostarttls";
	case IMAP_EAUTH: return "auth";
	case IMAP_EAUTHAPP: return "authapp";
	case IMAP_EUNAVAILABLE: return "unavailable";
	case IMAP_EBYE: return "bye";
	case IMAP_ETIMEOUT: return "timeout";
	case IMAP_EPROTO: return "proto";
	case IMAP_ENOFOLDER: return "nofolder";
	case IMAP_EUIDVALIDITY: return "uidvalidity";
	default: return "unknown";
	}
}

/* ---------- INTERNALDATE ---------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil); no libc time zone involved. */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

/* zone: signed hhmm as a decimal number (-0700 -> -700). */
static int civil_to_unix(int y, int mo, int d, int h, int mi, int s, int zone, double *out)
{
	int az = zone < 0 ? -zone : zone;
	if (y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
	    h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60 ||
	    az / 100 > 99 || az % 100 > 59)
		return -1;
	long long off = (long long)(az / 100) * 3600 + (az % 100) * 60;
	if (zone < 0)
		off = -off;
	long long t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400LL +
	              h * 3600LL + mi * 60LL + s - off;
	*out = (double)t;
	return 0;
}

static int digits(const char *p, int n, int *v)
{
	int x = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		x = x * 10 + (p[i] - '0');
	}
	*v = x;
	return 0;
}

int imap_parse_internaldate(const char *s, double *out)
{
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	int d, mo = 0, y, h, mi, sec, z;
	const char *p;

	if (!s || !out)
		return -1;
	/* date-day-fixed = (SP DIGIT) / 2DIGIT ; also accept a single digit */
	p = s;
	if (p[0] == ' ' && isdigit((unsigned char)p[1]) && p[2] == '-') {
		d = p[1] - '0';
		p += 2;
	} else if (isdigit((unsigned char)p[0]) && p[1] == '-') {
		d = p[0] - '0';
		p += 1;
	} else if (digits(p, 2, &d) == 0 && p[2] == '-') {
		p += 2;
	} else {
		return -1;
	}
	if (*p++ != '-')
		return -1;
	for (int i = 0; i < 12; i++) {
		if (strncasecmp(p, months[i], 3) == 0) {
			mo = i + 1;
			break;
		}
	}
	if (!mo || p[3] != '-')
		return -1;
	p += 4;
	if (digits(p, 4, &y) != 0 || p[4] != ' ')
		return -1;
	p += 5;
	if (digits(p, 2, &h) != 0 || p[2] != ':' || digits(p + 3, 2, &mi) != 0 || p[5] != ':' ||
	    digits(p + 6, 2, &sec) != 0 || p[8] != ' ')
		return -1;
	p += 9;
	if ((p[0] != '+' && p[0] != '-') || digits(p + 1, 4, &z) != 0 || p[5] != '\0')
		return -1;
	if (p[0] == '-')
		z = -z;
	return civil_to_unix(y, mo, d, h, mi, sec, z, out);
}

/* ---------- helpers ---------- */

/* Copy server text for a message: printable ASCII only, capped. */
static void server_text(char *buf, size_t bufsz, const char *t)
{
	size_t j = 0;
	if (!t)
		t = "";
	for (size_t i = 0; t[i] && j + 4 < bufsz; i++) {
		unsigned char c = (unsigned char)t[i];
		if ((c == '\r' || c == '\n') && strspn(t + i, "\r\n") == strlen(t + i))
			break;   /* the line's end (a raw line read during IDLE) */
		buf[j++] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
		if (j >= SERVER_TEXT_MAX) {
			buf[j++] = '.';
			buf[j++] = '.';
			buf[j++] = '.';
			break;
		}
	}
	buf[j] = '\0';
}

/* Arm the per-command limit: min(now + timeout, deadline), and the read
 * budget of bytes (TLS_REPLY_MAX_BYTES, TLS_CMD_MAX_BYTES). Returns 0,
 * or IMAP_ETIMEOUT when the deadline already passed. */
static int arm(struct imap_session *s, size_t bytes)
{
	double now = now_mono();
	double limit = now + (s->timeout > 0 ? (double)s->timeout : 30.0);
	if (limit > s->deadline)
		limit = s->deadline;
	if (!s->imap || !s->imap->imap_stream)
		return IMAP_EBYE;
	tls_low_set_budget(mailstream_get_low(s->imap->imap_stream), bytes);
	tls_low_set_limit(mailstream_get_low(s->imap->imap_stream), limit);
	if (now >= s->deadline)
		return IMAP_ETIMEOUT;
	return 0;
}

/* Drop the header kept by the last find (see struct imap_session). */
static void hdr_forget(struct imap_session *s)
{
	free(s->hdr);
	free(s->hdr_folder);
	s->hdr = s->hdr_folder = NULL;
	s->hdr_len = 0;
	s->hdr_uid = 0;
}

/* Prepare a command: checks the session is alive and arms the limit. The
 * header kept by a find lives until the next command: only the trace's
 * imap_fetch_header() right after the find takes it. */
static int begin(struct imap_session *s, const char *what, char **errstr)
{
	int r;

	hdr_forget(s);
	s->synced = 0;
	if (s->dead || !s->imap || !s->imap->imap_stream)
		return imapi_fail(errstr, IMAP_EBYE,
		               xasprintf("imap %s:%d: %s: connection closed earlier in this session",
		                         imapi_host(s), imapi_port(s), what));
	if (s->idling)
		return imapi_fail(errstr, IMAP_EPROTO,
		               xasprintf("imap %s:%d: %s: the session is in IDLE (DONE first)",
		                         imapi_host(s), imapi_port(s), what));
	/* only a FETCH's literals (headers) need the large budget */
	r = arm(s, strstr(what, "FETCH") != NULL ? TLS_REPLY_MAX_BYTES : TLS_CMD_MAX_BYTES);
	if (r == IMAP_ETIMEOUT)
		return imapi_fail(errstr, r, xasprintf("imap %s:%d: %s: round deadline reached",
		                                    imapi_host(s), imapi_port(s), what));
	return r;
}

/* Map a libetpan result to our error codes. what names the command.
 * no_code is the code for a NO/BAD reply of that command. */
/* Count the EXPUNGE responses of the reply just read (imap_expunged());
 * the list is emptied so that none is counted twice. */
static void count_expunged(struct imap_session *s)
{
	clist *l = s->imap && s->imap->imap_response_info ?
	           s->imap->imap_response_info->rsp_expunged : NULL;

	for (clistiter *it = l ? clist_begin(l) : NULL; it != NULL; it = clist_delete(l, it)) {
		free(clist_content(it));
		s->expunged++;
	}
}

unsigned long imap_exists_expunged(const struct imap_session *s)
{
	return s ? s->expunged - s->exists_expunged : 0;
}

static int map_result(struct imap_session *s, int r, const char *what, int no_code, char **errstr)
{
	char text[SERVER_TEXT_MAX + 8];
	mailstream_low *low;

	count_expunged(s);
	if (r == MAILIMAP_NO_ERROR || r == MAILIMAP_NO_ERROR_AUTHENTICATED ||
	    r == MAILIMAP_NO_ERROR_NON_AUTHENTICATED)
		return IMAP_OK;
	low = (s->imap && s->imap->imap_stream) ? mailstream_get_low(s->imap->imap_stream) : NULL;
	if (low && tls_low_over_budget(low)) {
		/* the reply was cut off mid-line or mid-literal: the stream is
		 * out of step and the server is misbehaving */
		s->dead = 1;
		return imapi_fail(errstr, IMAP_EPROTO,
		               xasprintf("imap %s:%d: %s: server reply larger than %zu %s; connection dropped",
		                         imapi_host(s), imapi_port(s), what,
		                         tls_low_budget(low) % (1024 * 1024) == 0 ?
		                         tls_low_budget(low) / (1024 * 1024) : tls_low_budget(low),
		                         tls_low_budget(low) % (1024 * 1024) == 0 ? "MiB" : "bytes"));
	}
	if (low && tls_low_timed_out(low) && tls_low_stopped(low)) {
		s->dead = 1;   /* the wait was cut short: a shutdown, not the server */
		return imapi_fail(errstr, IMAP_ETIMEOUT,
		               xasprintf("imap %s:%d: %s: stopped by the shutdown",
		                         imapi_host(s), imapi_port(s), what));
	}
	if (low && tls_low_timed_out(low)) {
		s->dead = 1;   /* a half-read reply leaves the stream out of step */
		return imapi_fail(errstr, IMAP_ETIMEOUT,
		               xasprintf("imap %s:%d: %s: no reply in time (timeout %lds or round deadline)",
		                         imapi_host(s), imapi_port(s), what, s->timeout));
	}
	switch (r) {
	case MAILIMAP_ERROR_FATAL:
	case MAILIMAP_ERROR_DONT_ACCEPT_CONNECTION:
	case MAILIMAP_ERROR_CONNECTION_REFUSED:
		/* The server said BYE: its text is the reason. */
		s->dead = 1;
		server_text(text, sizeof text, s->imap ? s->imap->imap_response : NULL);
		return imapi_fail(errstr, IMAP_EBYE,
		               xasprintf("imap %s:%d: %s: server said BYE%s%s",
		                         imapi_host(s), imapi_port(s), what, text[0] ? ": " : "", text));
	case MAILIMAP_ERROR_STREAM:
		s->dead = 1;
		if (low && tls_low_bye_text(low, text, sizeof text))
			/* a BYE instead of the reply, then the close */
			return imapi_fail(errstr, IMAP_EBYE,
			               xasprintf("imap %s:%d: %s: server said BYE%s%s",
			                         imapi_host(s), imapi_port(s), what, text[0] ? ": " : "", text));
		/* The connection went away without BYE (a proxy, a reset): the
		 * last response text would belong to an earlier command. */
		return imapi_fail(errstr, IMAP_EBYE,
		               xasprintf("imap %s:%d: %s: connection closed without BYE",
		                         imapi_host(s), imapi_port(s), what));
	case MAILIMAP_ERROR_PARSE:
		/* libetpan cannot resynchronise after an unparsable line: the
		 * session is dropped and later calls report IMAP_EBYE. */
		s->dead = 1;
		return imapi_fail(errstr, IMAP_EPROTO,
		               xasprintf("imap %s:%d: %s: unparsable reply from server",
		                         imapi_host(s), imapi_port(s), what));
	case MAILIMAP_ERROR_MEMORY:
		s->dead = 1;
		return imapi_fail(errstr, IMAP_EPROTO,
		               xasprintf("imap %s:%d: %s: out of memory", imapi_host(s), imapi_port(s), what));
	case MAILIMAP_ERROR_BAD_STATE:
		return imapi_fail(errstr, IMAP_EPROTO,
		               xasprintf("imap %s:%d: %s: command not allowed in this state",
		                         imapi_host(s), imapi_port(s), what));
	default:
		server_text(text, sizeof text, s->imap ? s->imap->imap_response : NULL);
		return imapi_fail(errstr, no_code,
		               xasprintf("imap %s:%d: %s refused: %s", imapi_host(s), imapi_port(s), what,
		                         text[0] ? text : "(no text)"));
	}
}

static int cap_has(mailimap *imap, const char *cap)
{
	clistiter *it;
	struct mailimap_capability_data *cd;

	if (!imap || !imap->imap_connection_info || !imap->imap_connection_info->imap_capability)
		return 0;
	cd = imap->imap_connection_info->imap_capability;
	if (!cd->cap_list)
		return 0;
	for (it = clist_begin(cd->cap_list); it; it = clist_next(it)) {
		struct mailimap_capability *c = clist_content(it);
		if (c->cap_type == MAILIMAP_CAPABILITY_NAME && c->cap_data.cap_name &&
		    strcasecmp(c->cap_data.cap_name, cap) == 0)
			return 1;
		if (c->cap_type == MAILIMAP_CAPABILITY_AUTH_TYPE && c->cap_data.cap_auth_type &&
		    strncasecmp(cap, "AUTH=", 5) == 0 &&
		    strcasecmp(c->cap_data.cap_auth_type, cap + 5) == 0)
			return 1;
	}
	return 0;
}

void imap_rebind(struct imap_session *s, const struct imap_params *p)
{
	s->conf = p->conf;
	s->timeout = p->timeout > 0 ? p->timeout : 30;
	s->deadline = p->deadline;
	s->probe_from = p->probe_from;
	s->secret = p->secret;
	s->secret_len = p->secret_len;
	s->old_secrets = p->old_secrets;
	s->nold_secrets = p->nold_secrets;
	s->seed = p->seed;
}

void imap_extend(struct imap_session *s, double secs)
{
	s->deadline = now_mono() + secs;
}

void imap_close_now(struct imap_session *s)
{
	if (s != NULL)
		imap_extend(s, 2.0);   /* a kept session's round deadline has passed */
	imap_close(s);
}

int imap_usable(const struct imap_session *s)
{
	return s != NULL && !s->dead && !s->idling && s->imap != NULL && s->imap->imap_stream != NULL;
}

int imap_noop(struct imap_session *s, char **errstr)
{
	int r = imapi_begin(s, "NOOP", errstr);

	if (r)
		return r;
	return imapi_map_result(s, mailimap_noop(s->imap), "NOOP", IMAP_EPROTO, errstr);
}

int imap_has_capability(const struct imap_session *s, const char *cap)
{
	if (!s || !cap)
		return 0;
	return cap_has(s->imap, cap);
}

/* 1 when the server already told the capabilities in a response code
 * (RFC 3501 7.1: "[CAPABILITY ...]" in the greeting or LOGIN's tagged OK;
 * Dovecot sends both): libetpan keeps them in imap_connection_info, and a
 * CAPABILITY command would only repeat them, a round trip and a parse per
 * session (two per session, 4,000 per round of 1,000 seeds). */
static int capability_known(const struct imap_session *s)
{
	return s->imap->imap_connection_info != NULL &&
	       s->imap->imap_connection_info->imap_capability != NULL;
}

/* Forget the capabilities libetpan holds, so that capability_known() then
 * tells whether the next response carried them. */
static void capability_forget(struct imap_session *s)
{
	struct mailimap_connection_info *ci = s->imap->imap_connection_info;

	if (ci != NULL && ci->imap_capability != NULL) {
		mailimap_capability_data_free(ci->imap_capability);
		ci->imap_capability = NULL;
	}
}

static int refresh_capability(struct imap_session *s, char **errstr)
{
	struct mailimap_capability_data *cd = NULL;
	int r = begin(s, "CAPABILITY", errstr);
	if (r)
		return r;
	r = mailimap_capability(s->imap, &cd);
	if (cd)
		mailimap_capability_data_free(cd);   /* the session keeps its own copy */
	return map_result(s, r, "CAPABILITY", IMAP_EPROTO, errstr);
}

/* Case-insensitive substring. */
static int has_text(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	if (!hay)
		return 0;
	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return 1;
	return 0;
}

/* Classify a refused LOGIN from the response code and text. */
static int login_failure(struct imap_session *s, char **errstr)
{
	char text[SERVER_TEXT_MAX + 8];
	struct mailimap_response_info *ri = s->imap->imap_response_info;
	const char *atom = ri ? ri->rsp_atom : NULL;
	const char *alert = ri ? ri->rsp_alert : NULL;
	const char *resp = s->imap->imap_response;
	const char *user = s->conf->username ? s->conf->username : "";

	server_text(text, sizeof text, alert ? alert : resp);
	if ((atom && strcasecmp(atom, "UNAVAILABLE") == 0) || has_text(resp, "too many connections") ||
	    has_text(resp, "too many simultaneous") || has_text(alert, "too many simultaneous") ||
	    has_text(resp, "try again later"))
		return imapi_fail(errstr, IMAP_EUNAVAILABLE,
		               xasprintf("imap %s:%d: login of %s refused for now (server unavailable or "
		                         "too many connections; retry later): %s",
		                         imapi_host(s), imapi_port(s), user, text));
	if (has_text(resp, "application-specific password") || has_text(alert, "application-specific password") ||
	    has_text(resp, "app password") || has_text(alert, "app password") ||
	    has_text(resp, "web login required") || has_text(alert, "web login required") ||
	    has_text(resp, "oauth") || has_text(alert, "oauth"))
		return imapi_fail(errstr, IMAP_EAUTHAPP,
		               xasprintf("imap %s:%d: login of %s refused: the provider requires an "
		                         "app-specific password or OAuth: %s",
		                         imapi_host(s), imapi_port(s), user, text));
	return imapi_fail(errstr, IMAP_EAUTH,
	               xasprintf("imap %s:%d: login of %s failed%s: %s", imapi_host(s), imapi_port(s), user,
	                         atom && strcasecmp(atom, "AUTHENTICATIONFAILED") == 0 ?
	                         " (wrong user name or password)" : "",
	                         text[0] ? text : "(no text)"));
}

/* ---------- OAuth 2.0 login (SASL XOAUTH2 / OAUTHBEARER) ---------- */

/* One AUTHENTICATE with token; the outcome as an IMAP error code. */
static int oauth2_try(struct imap_session *s, enum sasl_mech mech, const char *token,
                      char **errstr)
{
	const struct imap_conf *c = s->conf;
	struct sasl_outcome o;
	int r = begin(s, "AUTHENTICATE", errstr);
	if (r)
		return r;
	atomic_fetch_add(&n_logins, 1);
	r = sasl_imap_authenticate(s->imap, mech, cap_has(s->imap, "SASL-IR"), c->username, c->host,
	                           c->port, token, &o);
	if (r == SASL_OK)
		return IMAP_OK;
	if (r == SASL_EIO)
		return map_result(s, MAILIMAP_ERROR_STREAM, "AUTHENTICATE", IMAP_EAUTH, errstr);
	if (r == SASL_BYE)
		s->dead = 1;
	return imapi_fail(errstr, r == SASL_BYE ? IMAP_EBYE : o.unavailable ? IMAP_EUNAVAILABLE : IMAP_EAUTH,
	               xasprintf("imap %s:%d: %s login of %s refused by the mail server: %s%s%s%s",
	                         c->host, c->port, sasl_mech_name(mech), c->username,
	                         o.text[0] ? o.text : "(no text)",
	                         o.challenge[0] ? " (server's challenge: " : "", o.challenge,
	                         o.challenge[0] ? ")" : !strcasecmp(o.text, "AUTHENTICATE failed.") ?
	                         " (the server gives no reason; at Microsoft: token expired, scope "
	                         "or IMAP permission missing, or IMAP off for the mailbox)" : ""));
}

/* SASL OAuth login: the token from its source (prober/oauth2.c); a token
 * the server refuses is refreshed once and the login retried. */
static int oauth2_login(struct imap_session *s, char **errstr)
{
	const struct imap_conf *c = s->conf;
	enum sasl_mech mech = sasl_choose((enum sasl_mech)c->auth_mechanism,
	                                  cap_has(s->imap, "AUTH=XOAUTH2"),
	                                  cap_has(s->imap, "AUTH=OAUTHBEARER"));
	char *token = NULL, *rejected = NULL, *err = NULL;
	int r = IMAP_EAUTH;

	if (mech == SASL_MECH_AUTO)
		return imapi_fail(errstr, IMAP_EAUTH,
		               xasprintf("imap %s:%d: the server offers no %s (AUTH= in CAPABILITY)",
		                         c->host, c->port, c->auth_mechanism ?
		                         sasl_mech_name((enum sasl_mech)c->auth_mechanism) :
		                         "XOAUTH2 or OAUTHBEARER"));
	log_debug("imap %s:%d: %s with a token from %s", c->host, c->port, sasl_mech_name(mech),
	          oauth2_source_name(c->oauth2->source));
	for (int attempt = 0; attempt < 2; attempt++) {
		if (oauth2_get_token(c->oauth2, rejected, &token, &err) != OAUTH2_OK) {
			r = imapi_fail(errstr, IMAP_EAUTH, xasprintf("imap %s:%d: login of %s: %s", c->host,
			                                          c->port, c->username, err));
			free(err);
			err = NULL;
			break;
		}
		r = oauth2_try(s, mech, token, attempt == 0 ? &err : errstr);
		if (r != IMAP_EAUTH || attempt == 1)
			break;
		free(err);   /* the refusal of the first token: a new one is tried */
		err = NULL;
		log_debug("imap %s:%d: token refused; fetching a new one", c->host, c->port);
		if (rejected) {
			explicit_bzero(rejected, strlen(rejected));
			free(rejected);
		}
		rejected = token;
		token = NULL;
	}
	if (err)   /* attempt 0 failed other than by a refused token */
		imapi_fail(errstr, r, err);
	if (token) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
	if (rejected) {
		explicit_bzero(rejected, strlen(rejected));
		free(rejected);
	}
	return r;
}

/* ---------- open / close ---------- */

static int tls_to_imap_err(int r)
{
	return r == TLS_ETIMEOUT ? IMAP_ETIMEOUT : r == TLS_ECONNECT ? IMAP_ECONNECT : IMAP_ETLS;
}

/* The TLS handshake (implicit TLS and STARTTLS) is bounded like a command:
 * min(now + per-command timeout, round deadline). connect_timeout bounds
 * only name resolution and the TCP connect; the handshake is an exchange
 * with the server (certificate chain, key exchange), as slow under load as
 * a command, so it gets the command timeout (imap_limits.timeout). */
static double handshake_limit(long timeout, double deadline)
{
	double limit = now_mono() + (timeout > 0 ? (double)timeout : 30.0);
	return limit < deadline ? limit : deadline;
}

/* STARTTLS (RFC 2595 / RFC 3501 6.2.1) on an established plain session. */
static int do_starttls(struct imap_session *s, char **errstr)
{
	mailstream *stream = s->imap->imap_stream;
	mailstream_low *oldlow = mailstream_get_low(stream);
	mailstream_low *newlow;
	SSL *ssl = NULL;
	char *err = NULL;
	int fd, r;

	r = begin(s, "STARTTLS", errstr);
	if (r)
		return r;
	r = mailimap_starttls(s->imap);
	r = map_result(s, r, "STARTTLS", IMAP_ETLS, errstr);
	if (r)
		return r;
	/* Bytes the server sent after its OK, still in plain text, would be
	 * taken as TLS-protected replies (command injection, CVE-2020-15953). */
	if (stream->read_buffer_len != 0) {
		s->dead = 1;
		return imapi_fail(errstr, IMAP_ETLS,
		               xasprintf("imap %s:%d: STARTTLS: server sent data after its OK before TLS; refusing",
		                         imapi_host(s), imapi_port(s)));
	}
	fd = mailstream_low_get_fd(oldlow);
	r = tls_handshake(fd, imapi_host(s), imapi_port(s), s->conf->ca_file,
	                  handshake_limit(s->timeout, s->deadline), &ssl, &err);
	if (r) {
		s->dead = 1;
		return imapi_fail(errstr, tls_to_imap_err(r), xasprintf("imap %s", err));
	}
	newlow = tls_low_new(fd, ssl);
	if (!newlow) {
		SSL_free(ssl);
		s->dead = 1;
		return imapi_fail(errstr, IMAP_ETLS, xasprintf("imap %s:%d: STARTTLS: out of memory",
		                                            imapi_host(s), imapi_port(s)));
	}
	/* The plain driver no longer owns the fd: freeing it leaves it open
	 * for the TLS driver, which now owns it. */
	tls_low_set_opened(newlow, tls_low_opened(oldlow));
	tls_low_release_fd(oldlow);
	mailstream_low_free(oldlow);
	mailstream_set_low(stream, newlow);
	free(err);
	/* RFC 3501 6.2.1: capabilities learned before TLS are discarded. */
	return refresh_capability(s, errstr);
}

/* Connect to c's host (TCP, implicit TLS where configured) and read the
 * greeting (RFC 3501 7.1): s->imap holds the stream after. IMAP_* and
 * *errstr as imap_open(); on error the caller closes s. */
static int open_stream(struct imap_session *s, const struct imap_params *p, char **errstr)
{
	const struct imap_conf *c = p->conf;
	int fd = -1, r;
	SSL *ssl = NULL;
	char *err = NULL;
	mailstream_low *low;
	mailstream *stream;
	double opened;

	opened = now_wall();   /* no receive stamp of this connection is earlier */
	r = tls_tcp_connect(c->host, c->port, p->connect_timeout, p->deadline, &fd, &err);
	if (r) {
		r = imapi_fail(errstr, tls_to_imap_err(r), xasprintf("imap %s", err));
		goto out;
	}
	if (c->implicit_tls) {
		r = tls_handshake(fd, c->host, c->port, c->ca_file,
		                  handshake_limit(s->timeout, s->deadline), &ssl, &err);
		if (r) {
			r = imapi_fail(errstr, tls_to_imap_err(r), xasprintf("imap %s", err));
			goto out;
		}
	}
	low = tls_low_new(fd, ssl);
	if (!low) {
		r = imapi_fail(errstr, IMAP_ECONNECT, xasprintf("imap %s:%d: out of memory", c->host, c->port));
		goto out;
	}
	tls_low_set_opened(low, opened);
	fd = -1;
	ssl = NULL;
	stream = mailstream_new(low, 8192);
	if (!stream) {
		mailstream_low_close(low);
		mailstream_low_free(low);
		r = imapi_fail(errstr, IMAP_ECONNECT, xasprintf("imap %s:%d: out of memory", c->host, c->port));
		goto out;
	}
	s->imap = mailimap_new(0, NULL);
	if (!s->imap) {
		mailstream_close(stream);
		r = imapi_fail(errstr, IMAP_ECONNECT, xasprintf("imap %s:%d: out of memory", c->host, c->port));
		goto out;
	}
	/* mailimap_connect takes the stream (mailimap_free closes it). */
	{
		double limit = now_mono() + (double)s->timeout;
		tls_low_set_limit(low, limit < s->deadline ? limit : s->deadline);
	}
	r = mailimap_connect(s->imap, stream);
	r = map_result(s, r, "greeting", IMAP_EUNAVAILABLE, errstr);
out:
	free(err);
	if (ssl)
		SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	return r;
}

/* LOGIN (RFC 3501 6.2.3) with the configured password, unless the server
 * says LOGINDISABLED. IMAP_* and *errstr as imap_open(). */
static int password_login(struct imap_session *s, char **errstr)
{
	const struct imap_conf *c = s->conf;
	int r;

	if (cap_has(s->imap, "LOGINDISABLED"))
		return imapi_fail(errstr, IMAP_EAUTH,
		               xasprintf("imap %s:%d: server disables LOGIN on this connection (LOGINDISABLED)",
		                         c->host, c->port));
	r = begin(s, "LOGIN", errstr);
	if (r)
		return r;
	/* mailimap_login quotes or sends a literal; libetpan's stream logger is
	 * never enabled, so the password is not written anywhere. */
	atomic_fetch_add(&n_logins, 1);
	capability_forget(s);   /* what LOGIN's OK says, if anything, replaces them */
	r = mailimap_login(s->imap, c->username ? c->username : "", c->password ? c->password : "");
	if (r == MAILIMAP_ERROR_LOGIN)
		return login_failure(s, errstr);
	return map_result(s, r, "LOGIN", IMAP_EAUTH, errstr);
}

int imap_open(const struct imap_params *p, struct imap_session **out, char **errstr)
{
	struct imap_session *s;
	const struct imap_conf *c = p->conf;
	int r;

	*out = NULL;
	atomic_fetch_add(&n_connecting, 1);
	s = xcalloc(1, sizeof *s);
	imap_rebind(s, p);   /* configuration, limits and proof, as for a kept session */
	if (!c || !c->host) {
		r = imapi_fail(errstr, IMAP_ECONNECT, xasprintf("imap: no host configured"));
		goto fail;
	}
	r = open_stream(s, p, errstr);
	if (r)
		goto fail;
	if (!capability_known(s) && (r = refresh_capability(s, errstr)) != 0)
		goto fail;
	if (!c->implicit_tls && c->tls != TLS_NONE) {
		if (!cap_has(s->imap, "STARTTLS")) {
			r = imapi_fail(errstr, IMAP_ENOSTARTTLS,
			            xasprintf("imap %s:%d: TLS is required but the server does not offer "
			                      "STARTTLS; not sending credentials", c->host, c->port));
			goto fail;
		}
		r = do_starttls(s, errstr);
		if (r)
			goto fail;
	}
	r = c->oauth2 ? oauth2_login(s, errstr) : password_login(s, errstr);
	if (r)
		goto fail;
	/* capabilities after login (Dovecot announces MOVE, UIDPLUS, SPECIAL-USE
	 * then), unless LOGIN's OK carried them */
	if (c->oauth2 || !capability_known(s))
		r = refresh_capability(s, errstr);
	if (r)
		goto fail;
	*out = s;
	s->counted_up = 1;
	atomic_fetch_add(&n_up, 1);
	atomic_fetch_sub(&n_connecting, 1);
	return IMAP_OK;
fail:
	atomic_fetch_sub(&n_connecting, 1);
	s->dead = 1;
	imap_close(s);
	return r;
}

static void fallback_mark_clear(struct fallback_mark *m)
{
	free(m->folder);
	for (size_t i = 0; i < m->ntokens; i++)
		free(m->tokens[i]);
	free(m->tokens);
	memset(m, 0, sizeof *m);
}

/* The mark for folder at the current UIDVALIDITY, or NULL. */
static struct fallback_mark *fallback_mark_find(struct imap_session *s, const char *folder)
{
	for (size_t i = 0; i < FALLBACK_FOLDERS; i++)
		if (s->fb[i].folder && strcmp(s->fb[i].folder, folder) == 0)
			return s->fb[i].uidvalidity == s->uidvalidity ? &s->fb[i] : NULL;
	return NULL;
}

/* 1 when every token was covered by the mark's examination. */
static int fallback_mark_covers(const struct fallback_mark *m, const char *const *tokens,
                                size_t ntokens)
{
	for (size_t i = 0; i < ntokens; i++) {
		size_t j;
		for (j = 0; j < m->ntokens; j++)
			if (strcmp(m->tokens[j], tokens[i]) == 0)
				break;
		if (j == m->ntokens)
			return 0;
	}
	return 1;
}

/* Remember that UIDs up to max_uid of folder were examined for tokens. */
static void fallback_mark_set(struct imap_session *s, const char *folder, const char *const *tokens,
                              size_t ntokens, uint32_t max_uid)
{
	struct fallback_mark *m = NULL;

	for (size_t i = 0; i < FALLBACK_FOLDERS && !m; i++)
		if (s->fb[i].folder && strcmp(s->fb[i].folder, folder) == 0)
			m = &s->fb[i];
	for (size_t i = 0; i < FALLBACK_FOLDERS && !m; i++)
		if (!s->fb[i].folder)
			m = &s->fb[i];
	if (!m)
		m = &s->fb[0];
	if (m->folder && m->uidvalidity == s->uidvalidity && fallback_mark_covers(m, tokens, ntokens)) {
		if (max_uid > m->max_uid)
			m->max_uid = max_uid;
		return;
	}
	fallback_mark_clear(m);
	m->folder = xstrdup(folder);
	m->uidvalidity = s->uidvalidity;
	m->max_uid = max_uid;
	m->tokens = xcalloc(ntokens, sizeof *m->tokens);
	for (size_t i = 0; i < ntokens; i++)
		m->tokens[i] = xstrdup(tokens[i]);
	m->ntokens = ntokens;
}

void imap_close(struct imap_session *s)
{
	if (!s)
		return;
	if (s->counted_up)
		atomic_fetch_sub(&n_up, 1);
	if (s->imap) {
		if (!s->dead && s->imap->imap_stream && arm(s, TLS_CMD_MAX_BYTES) == 0) {
			/* a short, bounded LOGOUT */
			double limit = now_mono() + 2.0;
			if (limit > s->deadline)
				limit = s->deadline;
			tls_low_set_limit(mailstream_get_low(s->imap->imap_stream), limit);
			if (!s->idling || mailimap_idle_done(s->imap) == MAILIMAP_NO_ERROR)
				mailimap_logout(s->imap);
		}
		mailimap_free(s->imap);
	}
	free(s->selected);
	for (size_t i = 0; i < FALLBACK_FOLDERS; i++)
		fallback_mark_clear(&s->fb[i]);
	hdr_forget(s);
	free(s);
}

/* ---------- folders ---------- */

static unsigned ext_flag_bits(const char *name)
{
	if (!name)
		return 0;
	if (*name == '\\')
		name++;
	if (!strcasecmp(name, "Junk"))
		return FOLDER_JUNK;
	if (!strcasecmp(name, "Spam"))
		return FOLDER_SPAM_XLIST;
	if (!strcasecmp(name, "Trash"))
		return FOLDER_TRASH;
	if (!strcasecmp(name, "All") || !strcasecmp(name, "AllMail"))
		return FOLDER_ALL;
	if (!strcasecmp(name, "Inbox"))
		return FOLDER_INBOX;
	if (!strcasecmp(name, "Sent"))
		return FOLDER_SENT;
	if (!strcasecmp(name, "Drafts"))
		return FOLDER_DRAFTS;
	if (!strcasecmp(name, "Noselect") || !strcasecmp(name, "NonExistent"))
		return FOLDER_NOSELECT;
	return 0;
}

/* A printable form of a folder name for display and metric labels: the
 * modified UTF-7 decoding when valid (mutf7_decode refuses control
 * characters), else the wire name with every control character (C0, DEL,
 * C1) and every byte that is not part of valid UTF-8 replaced by '?'. */
static char *display_name(const char *wire)
{
	char *d = mutf7_decode(wire);
	const unsigned char *p = (const unsigned char *)wire;
	size_t n = strlen(wire), i = 0;
	struct strbuf sb = STRBUF_INIT;

	if (d)
		return d;
	while (i < n) {
		uint32_t cp = 0;
		size_t l = utf8_decode(p + i, n - i, &cp);
		if (l == 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) {
			/* invalid, overlong, surrogate, C0/C1 control: one '?'
			 * for the lead byte, resynchronise on the next */
			strbuf_add(&sb, "?", 1);
			i++;
			continue;
		}
		strbuf_add(&sb, p + i, l);
		i += l;
	}
	return strbuf_detach(&sb);
}

/* LIST "" "*" RETURN (SPECIAL-USE) (RFC 5258 LIST-EXTENDED, RFC 6154):
 * libetpan has no RETURN option, so the command is written here and the
 * reply goes through libetpan's parser. *list as mailimap_list(). */
static int list_special_use(struct imap_session *s, clist **list, char **errstr)
{
	static const char cmd[] = "LIST \"\" \"*\" RETURN (SPECIAL-USE)\r\n";
	struct mailimap_response *resp = NULL;
	int r, state;

	*list = NULL;
	r = begin(s, "LIST RETURN (SPECIAL-USE)", errstr);
	if (r)
		return r;
	r = mailimap_send_current_tag(s->imap);
	if (r == MAILIMAP_NO_ERROR &&
	    (mailstream_write(s->imap->imap_stream, cmd, sizeof cmd - 1) != (ssize_t)(sizeof cmd - 1) ||
	     mailstream_flush(s->imap->imap_stream) == -1))
		r = MAILIMAP_ERROR_STREAM;
	if (r == MAILIMAP_NO_ERROR && mailimap_read_line(s->imap) == NULL)
		r = MAILIMAP_ERROR_STREAM;
	if (r == MAILIMAP_NO_ERROR)
		r = mailimap_parse_response(s->imap, &resp);
	if (r == MAILIMAP_NO_ERROR) {
		*list = s->imap->imap_response_info->rsp_mailbox_list;
		s->imap->imap_response_info->rsp_mailbox_list = NULL;
		if (resp->rsp_resp_done->rsp_type != MAILIMAP_RESP_DONE_TYPE_TAGGED ||
		    resp->rsp_resp_done->rsp_data.rsp_tagged == NULL)
			state = -1;   /* BYE instead of a tagged reply */
		else
			state = resp->rsp_resp_done->rsp_data.rsp_tagged->rsp_cond_state->rsp_type;
		mailimap_response_free(resp);
		if (state == -1)
			r = MAILIMAP_ERROR_FATAL;
		else if (state != MAILIMAP_RESP_COND_STATE_OK)
			r = MAILIMAP_ERROR_LIST;
	}
	return map_result(s, r, "LIST RETURN (SPECIAL-USE)", IMAP_EPROTO, errstr);
}

int imap_list_folders(struct imap_session *s, struct imap_folder **out, size_t *n, char **errstr)
{
	clist *list = NULL;
	clistiter *it;
	struct imap_folder *f = NULL;
	size_t cnt = 0, cap = 0;
	int use_xlist, r;

	*out = NULL;
	*n = 0;
	use_xlist = cap_has(s->imap, "XLIST") && !cap_has(s->imap, "SPECIAL-USE");
	if (cap_has(s->imap, "SPECIAL-USE") && cap_has(s->imap, "LIST-EXTENDED")) {
		/* Some servers give the attributes only when asked (RFC 6154 5.1) */
		r = list_special_use(s, &list, errstr);
		if (r != IMAP_EPROTO || s->dead)
			goto listed;
		log_debug("imap %s:%d: LIST RETURN (SPECIAL-USE) refused, using LIST", imapi_host(s),
		          imapi_port(s));
		if (errstr) {
			free(*errstr);
			*errstr = NULL;
		}
		if (list)
			mailimap_list_result_free(list);
		list = NULL;
	}
	r = begin(s, use_xlist ? "XLIST" : "LIST", errstr);
	if (r)
		return r;
	if (use_xlist)
		r = mailimap_xlist(s->imap, "", "*", &list);
	else
		r = mailimap_list(s->imap, "", "*", &list);
	r = map_result(s, r, use_xlist ? "XLIST" : "LIST", IMAP_EPROTO, errstr);
	if (r == IMAP_EPROTO && use_xlist && !s->dead) {
		/* XLIST announced but refused (NO/BAD; Gmail deprecated it):
		 * plain LIST still names the folders, known names resolve them. */
		log_debug("imap %s:%d: XLIST refused, using LIST", imapi_host(s), imapi_port(s));
		if (errstr) {
			free(*errstr);
			*errstr = NULL;
		}
		if (list)
			mailimap_list_result_free(list);
		list = NULL;
		r = begin(s, "LIST", errstr);
		if (r)
			return r;
		r = mailimap_list(s->imap, "", "*", &list);
		r = map_result(s, r, "LIST", IMAP_EPROTO, errstr);
	}
listed:
	if (r)
		goto out;
	for (it = list ? clist_begin(list) : NULL; it; it = clist_next(it)) {
		struct mailimap_mailbox_list *mb = clist_content(it);
		unsigned flags = 0;
		if (!mb || !mb->mb_name)
			continue;
		if (mb->mb_flag) {
			if (mb->mb_flag->mbf_type == MAILIMAP_MBX_LIST_FLAGS_SFLAG &&
			    mb->mb_flag->mbf_sflag == MAILIMAP_MBX_LIST_SFLAG_NOSELECT)
				flags |= FOLDER_NOSELECT;
			if (mb->mb_flag->mbf_oflags) {
				for (clistiter *o = clist_begin(mb->mb_flag->mbf_oflags); o; o = clist_next(o)) {
					struct mailimap_mbx_list_oflag *of = clist_content(o);
					if (of && of->of_type == MAILIMAP_MBX_LIST_OFLAG_FLAG_EXT)
						flags |= ext_flag_bits(of->of_flag_ext);
				}
			}
		}
		if (!strcasecmp(mb->mb_name, "INBOX"))
			flags |= FOLDER_INBOX;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			f = xrealloc(f, cap * sizeof *f);
		}
		f[cnt].wire = xstrdup(mb->mb_name);
		f[cnt].display = display_name(mb->mb_name);
		f[cnt].delimiter = mb->mb_delimiter;
		f[cnt].flags = flags;
		cnt++;
	}
	*out = f;
	*n = cnt;
	f = NULL;
out:
	if (list)
		mailimap_list_result_free(list);
	free(f);
	return r;
}

/* ---------- selection ---------- */

static int select_folder(struct imap_session *s, const char *folder, char **errstr)
{
	int r;

	if (s->selected && strcmp(s->selected, folder) == 0) {
		/* still selected: a NOOP brings its news (EXISTS, EXPUNGE,
		 * UIDVALIDITY), unless IDLE just ended and brought them */
		if (!s->synced || s->dead) {
			r = begin(s, "NOOP", errstr);
			if (r)
				return r;
			r = mailimap_noop(s->imap);
			r = map_result(s, r, "NOOP", IMAP_EPROTO, errstr);
			if (r)
				return r;
		}
		s->synced = 0;
		if (s->imap->imap_selection_info && s->imap->imap_selection_info->sel_uidvalidity)
			s->uidvalidity = s->imap->imap_selection_info->sel_uidvalidity;
		s->seen_uidvalidity = s->uidvalidity;
		return IMAP_OK;
	}
	free(s->selected);
	s->selected = NULL;
	s->uidvalidity = 0;
	s->seen_uidvalidity = 0;
	r = begin(s, "SELECT", errstr);
	if (r)
		return r;
	r = mailimap_select(s->imap, folder);
	if (r != MAILIMAP_NO_ERROR) {
		char *e = NULL;
		int code = map_result(s, r, "SELECT", IMAP_ENOFOLDER, &e);
		char *d = mutf7_decode(folder);
		int rc = imapi_fail(errstr, code, xasprintf("%s (folder \"%s\")", e, d ? d : folder));
		free(d);
		free(e);
		return rc;
	}
	s->selected = xstrdup(folder);
	if (s->imap->imap_selection_info)
		s->uidvalidity = s->imap->imap_selection_info->sel_uidvalidity;
	s->seen_uidvalidity = s->uidvalidity;
	return IMAP_OK;
}

unsigned long imap_uidvalidity_seen(const struct imap_session *s)
{
	return s ? s->seen_uidvalidity : 0;
}

/* ---------- search and fetch ---------- */

static struct mailimap_set *set_of(const uint32_t *uids, size_t n)
{
	struct mailimap_set *set = mailimap_set_new_empty();
	if (!set)
		return NULL;
	for (size_t i = 0; i < n; i++)
		mailimap_set_add_single(set, uids[i]);
	return set;
}

static struct mailimap_search_key *token_key(const char *tok)
{
	return mailimap_search_key_new_or(
		mailimap_search_key_new_header(xstrdup("X-Inboxprobe-Token"), xstrdup(tok)),
		mailimap_search_key_new_header(xstrdup("Subject"), xstrdup(tok)));
}

/* UID SEARCH with key (ownership of key passes); *uids heap array. */
static int uid_search(struct imap_session *s, struct mailimap_search_key *key,
                      uint32_t **uids, size_t *n, char **errstr)
{
	clist *res = NULL;
	int r;

	*uids = NULL;
	*n = 0;
	r = begin(s, "UID SEARCH", errstr);
	if (r) {
		mailimap_search_key_free(key);
		return r;
	}
	r = mailimap_uid_search(s->imap, NULL, key, &res);
	mailimap_search_key_free(key);
	r = map_result(s, r, "UID SEARCH", IMAP_EPROTO, errstr);
	if (r)
		return r;
	if (res) {
		size_t cnt = (size_t)clist_count(res), i = 0;
		*uids = xcalloc(cnt ? cnt : 1, sizeof **uids);
		for (clistiter *it = clist_begin(res); it; it = clist_next(it)) {
			uint32_t *u = clist_content(it);
			if (u && *u)
				(*uids)[i++] = *u;
		}
		*n = i;
		mailimap_search_result_free(res);
	}
	return IMAP_OK;
}

static int cmp_uid_desc(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* The probe proof for token on session s. */
static struct probe_proof proof_for(const struct imap_session *s, const char *token)
{
	struct probe_proof pp = {
		.token = token, .from = s->probe_from, .key = s->secret, .keylen = s->secret_len,
		.old_keys = s->old_secrets, .nold_keys = s->nold_secrets,
		.seed = s->seed,
	};
	return pp;
}

/* message_prove() on fetched proof fields (or the whole header), refusing
 * what filled the cap max: a probe's never does, and a cut field proves
 * nothing. */
static int prove_fetched(const char *hdrs, size_t len, size_t max, const struct probe_proof *pp)
{
	if (len >= max)
		return PROOF_TOO_LARGE;
	return message_prove(hdrs, len, pp);
}

/* Index of the token whose probe the header fields hdrs (max: the cap they
 * were fetched with) prove to be (message_prove), or -1. *reason: why the
 * candidate was not proved. */
static long prove_token(const struct imap_session *s, const char *hdrs, size_t len, size_t max,
                        const char *const *tokens, size_t ntokens, int *reason)
{
	char *tokhdr = rfc5322_field(hdrs, len, "X-Inboxprobe-Token", 0);
	long found = -1;

	*reason = PROOF_NO_TOKEN;
	for (size_t i = 0; tokhdr && i < ntokens; i++) {
		if (!tokens[i] || !*tokens[i] || strcmp(tokhdr, tokens[i]) != 0)
			continue;
		struct probe_proof pp = proof_for(s, tokens[i]);
		*reason = prove_fetched(hdrs, len, max, &pp);
		if (*reason == PROOF_OK)
			found = (long)i;
		break;
	}
	if (tokhdr && found < 0 && *reason == PROOF_NO_TOKEN)
		*reason = PROOF_TOKEN_MISMATCH;
	free(tokhdr);
	return found;
}

static double datetime_unix(const struct mailimap_date_time *dt)
{
	double t = 0;
	if (!dt || civil_to_unix(dt->dt_year, dt->dt_month, dt->dt_day, dt->dt_hour, dt->dt_min,
	                         dt->dt_sec, dt->dt_zone, &t) != 0)
		return 0;
	return t;
}

/* The parts of one FETCH response we use; section points into the
 * response list and lives as long as it does. */
struct fetched {
	uint32_t uid;
	double internaldate;        /* 0 when not fetched */
	const char *section;        /* BODY[...] data, NULL when absent */
	size_t section_len;
};

static void fetched_parse(const struct mailimap_msg_att *ma, struct fetched *f)
{
	memset(f, 0, sizeof *f);
	for (clistiter *j = clist_begin(ma->att_list); j; j = clist_next(j)) {
		struct mailimap_msg_att_item *item = clist_content(j);
		struct mailimap_msg_att_static *st;

		if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
			continue;
		st = item->att_data.att_static;
		switch (st->att_type) {
		case MAILIMAP_MSG_ATT_UID:
			f->uid = st->att_data.att_uid;
			break;
		case MAILIMAP_MSG_ATT_INTERNALDATE:
			f->internaldate = datetime_unix(st->att_data.att_internal_date);
			break;
		case MAILIMAP_MSG_ATT_BODY_SECTION:
			if (st->att_data.att_body_section) {
				f->section = st->att_data.att_body_section->sec_body_part;
				f->section_len = st->att_data.att_body_section->sec_length;
			}
			break;
		default:
			break;
		}
	}
}

/* UID FETCH ft for the n uids. Takes ownership of ft. On success *res is
 * the response list (caller frees with mailimap_fetch_list_free; may be
 * NULL when nothing matched). */
static int uid_fetch(struct imap_session *s, const uint32_t *uids, size_t n,
                     struct mailimap_fetch_type *ft, clist **res, char **errstr)
{
	struct mailimap_set *set = set_of(uids, n);
	int r;

	*res = NULL;
	r = begin(s, "UID FETCH", errstr);
	if (!r) {
		r = mailimap_uid_fetch(s->imap, set, ft, res);
		r = map_result(s, r, "UID FETCH", IMAP_EPROTO, errstr);
	}
	mailimap_fetch_type_free(ft);
	mailimap_set_free(set);
	if (r && *res) {
		mailimap_fetch_list_free(*res);
		*res = NULL;
	}
	return r;
}

/* The header fields a proof needs (message_prove), fetched with PEEK. */
static struct mailimap_fetch_att *proof_fields_att(void)
{
	clist *hdrnames = clist_new();

	clist_append(hdrnames, xstrdup("X-Inboxprobe-Token"));
	clist_append(hdrnames, xstrdup("From"));
	/* capped: a probe's two fields take a few hundred octets */
	return mailimap_fetch_att_new_body_peek_section_partial(
		mailimap_section_new_header_fields(mailimap_header_list_new(hdrnames)), 0,
		PROOF_FETCH_MAX);
}


/* Is the fetched candidate f the probe of one of tokens? Appends it to
 * *hits when proved (max: the cap its header was fetched with); returns 1
 * then, else 0. */
static int match_one(struct imap_session *s, const struct fetched *f, unsigned long seq, size_t max,
                     const char *const *tokens, size_t ntokens,
                     struct imap_hit **hits, size_t *nhits, size_t *cap)
{
	int why;
	long ti = prove_token(s, f->section, f->section_len, max, tokens, ntokens, &why);

	if (ti < 0 && why == PROOF_HMAC) {
		/* a forgery, or our probe signed with a key no longer configured */
		log_warn("imap %s: %s UID %lu carries a token we look for, but its HMAC does "
		         "not verify with probe.secret_file or previous_secret_files: left "
		         "alone (after a key rotation, list the old key file in "
		         "probe.previous_secret_files so that its probes are cleaned up)",
		         imapi_host(s), s->selected ? s->selected : "", (unsigned long)f->uid);
		return 0;
	}
	if (ti < 0) {
		log_debug("imap %s: UID %lu names a token but is not a probe: %s",
		          imapi_host(s), (unsigned long)f->uid, message_proof_text(why));
		return 0;
	}
	if (*nhits == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		*hits = xrealloc(*hits, *cap * sizeof **hits);
	}
	(*hits)[*nhits].token_index = (size_t)ti;
	(*hits)[*nhits].uidvalidity = s->uidvalidity;
	(*hits)[*nhits].uid = f->uid;
	(*hits)[*nhits].internaldate = f->internaldate;
	(*hits)[*nhits].seq = seq;
	(*nhits)++;
	return 1;
}

/* Keep the header of the first probe a find proved (imap_fetch_header). */
static void keep_header(struct imap_session *s, const struct fetched *f)
{
	if (s->hdr != NULL || s->selected == NULL)
		return;
	s->hdr = xstrndup(f->section, f->section_len);
	s->hdr_len = strlen(s->hdr);
	s->hdr_uid = f->uid;
	s->hdr_uidvalidity = s->uidvalidity;
	s->hdr_folder = xstrdup(s->selected);
}

/* Fetch UID, INTERNALDATE and the proof's header fields of uids; append
 * the messages proved to be a token's probe to *hits. whole: fetch the
 * whole header instead (BODY.PEEK[HEADER]<0.TRACE_HEADER_MAX>, which the
 * trace reads too: the first probe's is kept for imap_fetch_header(), one
 * FETCH per found probe instead of two); a header that fills that cap
 * has its proof fields fetched on their own. */
static int fetch_and_match(struct imap_session *s, const uint32_t *uids, size_t n, int whole,
                           const char *const *tokens, size_t ntokens,
                           struct imap_hit **hits, size_t *nhits, size_t *cap, char **errstr)
{
	size_t max = whole ? TRACE_HEADER_MAX : PROOF_FETCH_MAX, nagain = 0;
	uint32_t *again = NULL;
	int r = IMAP_OK;

	for (size_t off = 0; off < n && r == IMAP_OK; off += FETCH_BATCH) {
		size_t cnt = n - off < FETCH_BATCH ? n - off : FETCH_BATCH;
		struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty();
		clist *res = NULL;

		mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid());
		mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_internaldate());
		mailimap_fetch_type_new_fetch_att_list_add(ft, !whole ? proof_fields_att() :
			mailimap_fetch_att_new_body_peek_section_partial(mailimap_section_new_header(), 0,
			                                                 TRACE_HEADER_MAX));
		r = uid_fetch(s, uids + off, cnt, ft, &res, errstr);
		for (clistiter *it = res ? clist_begin(res) : NULL; it; it = clist_next(it)) {
			const struct mailimap_msg_att *ma = clist_content(it);
			struct fetched f;

			fetched_parse(ma, &f);
			if (!f.uid || !f.section)
				continue;
			if (whole && f.section_len >= max) {
				if (again == NULL)
					again = xcalloc(n, sizeof *again);
				if (nagain < n)
					again[nagain++] = f.uid;
				continue;
			}
			if (match_one(s, &f, ma->att_number, max, tokens, ntokens, hits, nhits, cap) && whole)
				keep_header(s, &f);
		}
		if (res)
			mailimap_fetch_list_free(res);
	}
	if (r == IMAP_OK && nagain > 0)
		r = fetch_and_match(s, again, nagain, 0, tokens, ntokens, hits, nhits, cap, errstr);
	free(again);
	return r;
}

/* A libetpan SEARCH date for Unix time t (UTC day). */
static struct mailimap_date *search_date(double t)
{
	long long days = (long long)(t / 86400.0);
	if (t < 0)
		days = 0;
	/* civil_from_days (H. Hinnant) */
	long long z = days + 719468;
	long long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long y = (long long)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	if (m <= 2)
		y++;
	return mailimap_date_new((int)d, (int)m, (int)y);
}

/* A UID SEARCH for ntokens tokens that names more than
 * IMAP_SEARCH_MAX_PER_TOKEN UIDs per token is hostile (or broken): say so,
 * and keep only the newest that many (uids sorted newest first). */
static void cap_search(struct imap_session *s, const char *folder, uint32_t *uids, size_t *n,
                       size_t ntokens)
{
	size_t cap = IMAP_SEARCH_MAX_PER_TOKEN * (ntokens ? ntokens : 1);
	char *d;

	qsort(uids, *n, sizeof *uids, cmp_uid_desc);
	if (*n <= cap)
		return;
	d = mutf7_decode(folder);
	log_warn("imap %s:%d: folder \"%s\": UID SEARCH for %zu token%s named %zu messages, more "
	         "than the cap of %zu: a hostile or broken server; examining the newest %zu only",
	         imapi_host(s), imapi_port(s), d ? d : folder, ntokens, ntokens == 1 ? "" : "s", *n, cap,
	         cap);
	free(d);
	*n = cap;
}

/* AND a "UID min_uid:*" range into key when min_uid > 0 (RFC 3501 6.4.4;
 * ownership of key passes). */
static struct mailimap_search_key *from_uid(struct mailimap_search_key *key, uint32_t min_uid)
{
	struct mailimap_search_key *m;

	if (min_uid == 0)
		return key;
	m = mailimap_search_key_new_multiple_empty();
	mailimap_search_key_multiple_add(m, mailimap_search_key_new_uid(
		mailimap_set_new_interval(min_uid, 0)));
	mailimap_search_key_multiple_add(m, key);
	return m;
}

int imap_find_tokens(struct imap_session *s, const char *folder,
                     const char *const *tokens, size_t ntokens, double since,
                     struct imap_hit **hits, size_t *nhits, char **errstr)
{
	return imap_find_new_tokens(s, folder, tokens, ntokens, since, 0, hits, nhits, errstr);
}

int imap_find_new_tokens(struct imap_session *s, const char *folder,
                         const char *const *tokens, size_t ntokens, double since,
                         unsigned long min_uid, struct imap_hit **hits, size_t *nhits,
                         char **errstr)
{
	struct mailimap_search_key *key = NULL;
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0;
	int r;

	*hits = NULL;
	*nhits = 0;
	if (!s || !folder)
		return imapi_fail(errstr, IMAP_EPROTO, xasprintf("imap: no session or folder"));
	if (ntokens == 0 || !s->probe_from) {
		s->seen_uidvalidity = 0;   /* no SELECT: no folder's UIDVALIDITY seen */
		return IMAP_OK;   /* nothing could be proved to be a probe */
	}
	r = select_folder(s, folder, errstr);
	if (r)
		return r;
	for (size_t i = 0; i < ntokens; i++) {
		struct mailimap_search_key *k = token_key(tokens[i]);
		key = key ? mailimap_search_key_new_or(key, k) : k;
	}
	char *e = NULL;
	r = uid_search(s, from_uid(key, (uint32_t)min_uid), &uids, &n, &e);
	if (r && (r != IMAP_EPROTO || s->dead)) {
		/* connection-level failure or unparsable reply: no fallback */
		return imapi_fail(errstr, r, e);
	}
	free(e);
	if (r == IMAP_OK && n > 0) {
		cap_search(s, folder, uids, &n, ntokens);
		hdr_forget(s);
		r = fetch_and_match(s, uids, n, 1, tokens, ntokens, hits, nhits, &cap, errstr);
		free(uids);
		uids = NULL;
		if (r || *nhits > 0)
			goto out;
	}
	free(uids);
	uids = NULL;
	/* Fallback: servers whose HEADER search misses fresh mail or refuses. */
	r = uid_search(s, from_uid(mailimap_search_key_new_since(search_date(since - 86400.0)),
	                           (uint32_t)min_uid), &uids, &n, errstr);
	if (r)
		goto out;
	qsort(uids, n, sizeof *uids, cmp_uid_desc);
	if (n > FALLBACK_MAX_UIDS)
		n = FALLBACK_MAX_UIDS;
	{
		/* Skip what an earlier fallback examined for these tokens. */
		const struct fallback_mark *m = fallback_mark_find(s, folder);
		uint32_t top = n > 0 ? uids[0] : 0;
		size_t fresh = n;

		if (m && fallback_mark_covers(m, tokens, ntokens)) {
			fresh = 0;
			while (fresh < n && uids[fresh] > m->max_uid)
				fresh++;
		}
		r = fetch_and_match(s, uids, fresh, 0, tokens, ntokens, hits, nhits, &cap, errstr);
		if (r == IMAP_OK && top > 0)
			fallback_mark_set(s, folder, tokens, ntokens, top);
	}
out:
	free(uids);
	if (r) {
		free(*hits);
		*hits = NULL;
		*nhits = 0;
	}
	return r;
}

/* ---------- cleanup ---------- */

static int uid_store_deleted(struct imap_session *s, uint32_t uid, char **errstr)
{
	struct mailimap_set *set = set_of(&uid, 1);
	struct mailimap_flag_list *fl = mailimap_flag_list_new_empty();
	struct mailimap_store_att_flags *sa;
	int r;

	mailimap_flag_list_add(fl, mailimap_flag_new_deleted());
	sa = mailimap_store_att_flags_new_add_flags_silent(fl);
	r = begin(s, "UID STORE", errstr);
	if (!r) {
		r = mailimap_uid_store(s->imap, set, sa);
		r = map_result(s, r, "UID STORE", IMAP_EPROTO, errstr);
	}
	mailimap_store_att_flags_free(sa);
	mailimap_set_free(set);
	return r;
}

static int uid_expunge(struct imap_session *s, uint32_t uid, char **errstr)
{
	struct mailimap_set *set = set_of(&uid, 1);
	int r = begin(s, "UID EXPUNGE", errstr);
	if (!r) {
		r = mailimap_uid_expunge(s->imap, set);
		r = map_result(s, r, "UID EXPUNGE", IMAP_EPROTO, errstr);
	}
	mailimap_set_free(set);
	return r;
}

static int uid_move(struct imap_session *s, uint32_t uid, const char *to, char **errstr)
{
	struct mailimap_set *set = set_of(&uid, 1);
	int r = begin(s, "UID MOVE", errstr);
	if (!r) {
		r = mailimap_uid_move(s->imap, set, to);
		r = map_result(s, r, "UID MOVE", IMAP_EPROTO, errstr);
	}
	mailimap_set_free(set);
	return r;
}

static int uid_copy(struct imap_session *s, uint32_t uid, const char *to, char **errstr)
{
	struct mailimap_set *set = set_of(&uid, 1);
	int r = begin(s, "UID COPY", errstr);
	if (!r) {
		r = mailimap_uid_copy(s->imap, set, to);
		r = map_result(s, r, "UID COPY", IMAP_EPROTO, errstr);
	}
	mailimap_set_free(set);
	return r;
}

/* Remove uid from the selected folder: store \Deleted and UID EXPUNGE. */
static int remove_uid(struct imap_session *s, uint32_t uid, char **errstr)
{
	int r = uid_store_deleted(s, uid, errstr);
	if (r)
		return r;
	return uid_expunge(s, uid, errstr);
}

/* Move uid of the selected folder to trash (MOVE, or COPY + remove). */
static int trash_uid(struct imap_session *s, uint32_t uid, const char *trash,
                     char *what, size_t whatsz, char **errstr)
{
	int uidplus = cap_has(s->imap, "UIDPLUS");
	int move = cap_has(s->imap, "MOVE");
	int r;

	if (!trash) {
		xstrlcpy(what, "kept: no trash folder resolved", whatsz);
		return IMAP_OK;
	}
	if (move) {
		r = uid_move(s, uid, trash, errstr);
	} else if (uidplus) {
		r = uid_copy(s, uid, trash, errstr);
		if (!r)
			r = remove_uid(s, uid, errstr);
	} else {
		xstrlcpy(what, "kept: server lacks UIDPLUS and MOVE", whatsz);
		return IMAP_OK;
	}
	if (!r)
		xstrlcpy(what, "trashed", whatsz);
	return r;
}

static int cleanup_selected(struct imap_session *s, uint32_t uid, enum cleanup_mode mode,
                            const char *trash, const char *folder,
                            char *what, size_t whatsz, char **errstr)
{
	int uidplus = cap_has(s->imap, "UIDPLUS");
	int gmail = cap_has(s->imap, "X-GM-EXT-1");
	int in_trash = trash && folder && strcmp(trash, folder) == 0;
	int r;

	if (mode == CLEANUP_KEEP) {
		xstrlcpy(what, "kept", whatsz);
		return IMAP_OK;
	}
	if ((mode == CLEANUP_TRASH || gmail) && !in_trash)
		return trash_uid(s, uid, trash, what, whatsz, errstr);
	if (mode == CLEANUP_TRASH && in_trash) {
		xstrlcpy(what, "kept: already in trash", whatsz);
		return IMAP_OK;
	}
	/* delete */
	if (uidplus) {
		r = remove_uid(s, uid, errstr);
		if (!r)
			xstrlcpy(what, "deleted", whatsz);
		return r;
	}
	if (cap_has(s->imap, "MOVE")) {
		if (!in_trash && trash)
			return trash_uid(s, uid, trash, what, whatsz, errstr);
		/* MOVE is offered but there is nowhere to move to: say why. */
		xstrlcpy(what, in_trash ? "kept: server lacks UIDPLUS (probe already in trash)"
		                        : "kept: server lacks UIDPLUS and no trash folder resolved",
		         whatsz);
		return IMAP_OK;
	}
	/* Never a plain EXPUNGE: it would also remove the user's own \Deleted mail. */
	xstrlcpy(what, "kept: server lacks UIDPLUS and MOVE", whatsz);
	return IMAP_OK;
}

/* Fetch the proof's header fields of uid in the selected folder and prove
 * it is token's probe. *proof: PROOF_OK or why not; *gone: 1 when the
 * server returned nothing for uid (expunged meanwhile). */
static int prove_uid(struct imap_session *s, uint32_t uid, const char *token, int *proof,
                     int *gone, char **errstr)
{
	struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty();
	struct probe_proof pp = proof_for(s, token);
	clist *res = NULL;
	int r;

	*proof = PROOF_NO_TOKEN;
	*gone = 1;
	mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid());
	mailimap_fetch_type_new_fetch_att_list_add(ft, proof_fields_att());
	r = uid_fetch(s, &uid, 1, ft, &res, errstr);
	if (r)
		return r;
	for (clistiter *it = res ? clist_begin(res) : NULL; it; it = clist_next(it)) {
		struct fetched f;

		fetched_parse(clist_content(it), &f);
		if (f.uid != uid)
			continue;   /* an unsolicited FETCH of another message */
		*gone = 0;
		if (f.section)
			*proof = prove_fetched(f.section, f.section_len, PROOF_FETCH_MAX, &pp);
		break;
	}
	if (res)
		mailimap_fetch_list_free(res);
	return IMAP_OK;
}

int imap_cleanup(struct imap_session *s, const char *folder, unsigned long uidvalidity,
                 unsigned long uid, const char *token, enum cleanup_mode mode, const char *trash,
                 char *what, size_t whatsz, char **errstr)
{
	int r, proof, gone;

	if (what && whatsz)
		what[0] = '\0';
	if (!s || !folder || !what || whatsz == 0 || uid == 0 || uid > UINT32_MAX || !token || !*token)
		return imapi_fail(errstr, IMAP_EPROTO, xasprintf("imap: invalid cleanup request"));
	if (mode == CLEANUP_KEEP) {
		xstrlcpy(what, "kept", whatsz);
		return IMAP_OK;
	}
	r = select_folder(s, folder, errstr);
	if (r)
		return r;
	if (s->uidvalidity != uidvalidity) {
		char *d = mutf7_decode(folder);
		r = imapi_fail(errstr, IMAP_EUIDVALIDITY,
		            xasprintf("imap %s:%d: folder \"%s\": UIDVALIDITY changed (%lu, was %lu); "
		                      "UID %lu not touched", imapi_host(s), imapi_port(s), d ? d : folder,
		                      s->uidvalidity, uidvalidity, uid));
		free(d);
		return r;
	}
	/* Proof before action: the message at uid is fetched and proved to be
	 * the probe before anything is stored, moved or expunged. */
	r = prove_uid(s, (uint32_t)uid, token, &proof, &gone, errstr);
	if (r)
		return r;
	if (gone) {
		xstrlcpy(what, "kept: no longer there", whatsz);
		return IMAP_OK;
	}
	if (proof != PROOF_OK) {
		snprintf(what, whatsz, "kept: not proved to be the probe (%s)", message_proof_text(proof));
		return IMAP_OK;
	}
	return cleanup_selected(s, (uint32_t)uid, mode, trash, folder, what, whatsz, errstr);
}

/* ---------- bounces ---------- */

static int cmp_uid_asc(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Keep only the uids (ascending) whose INTERNALDATE is at least since;
 * fetched in batches, at most the newest BOUNCE_DATE_MAX. */
static int drop_older_than(struct imap_session *s, uint32_t *uids, size_t *n, double since,
                           char **errstr)
{
	size_t keep = 0, start = *n > BOUNCE_DATE_MAX ? *n - BOUNCE_DATE_MAX : 0;

	for (size_t off = start; off < *n; off += FETCH_BATCH) {
		size_t cnt = *n - off < FETCH_BATCH ? *n - off : FETCH_BATCH;
		struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty();
		clist *res = NULL;
		int r;

		mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid());
		mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_internaldate());
		r = uid_fetch(s, uids + off, cnt, ft, &res, errstr);
		if (r)
			return r;
		for (size_t k = off; k < off + cnt; k++) {
			double idate = -1;
			for (clistiter *it = res ? clist_begin(res) : NULL; it; it = clist_next(it)) {
				struct fetched f;
				fetched_parse(clist_content(it), &f);
				if (f.uid == uids[k]) {
					idate = f.internaldate;
					break;
				}
			}
			/* unknown date (not returned, or none): keep, to be safe */
			if (idate < 0 || idate == 0 || idate >= since)
				uids[keep++] = uids[k];
		}
		if (res)
			mailimap_fetch_list_free(res);
	}
	*n = keep;
	return IMAP_OK;
}

int imap_scan_bounces(struct imap_session *s, const char *folder,
                      const char *const *tokens, size_t ntokens, double since,
                      int delete_matched, struct imap_bounce **out, size_t *nout,
                      char **errstr)
{
	uint32_t *uids = NULL, top = 0, searched_top = 0;
	size_t n = 0, cnt = 0, cap = 0;
	struct imap_bounce *b = NULL;
	char *markkey = NULL;
	int r;

	*out = NULL;
	*nout = 0;
	if (!s)
		return imapi_fail(errstr, IMAP_EPROTO, xasprintf("imap: no session"));
	if (!folder)
		folder = "INBOX";
	if (ntokens == 0)
		return IMAP_OK;
	r = select_folder(s, folder, errstr);
	if (r)
		return r;
	r = uid_search(s, mailimap_search_key_new_since(search_date(since - 86400.0)), &uids, &n, errstr);
	if (r)
		goto out;
	/* Oldest first. Polled every second or so, through a mailbox that may
	 * be busy (the platform's real bounce address): each call examines at
	 * most BOUNCE_MAX_UIDS messages past what earlier calls for these
	 * tokens (or a superset) examined, and the mark only moves over what
	 * was examined, so a burst is paged through, never skipped. */
	qsort(uids, n, sizeof *uids, cmp_uid_asc);
	markkey = xasprintf("\001bounces:%s", folder);
	/* everything up to here counts as examined when nothing is left */
	searched_top = n > 0 ? uids[n - 1] : 0;
	{
		const struct fallback_mark *m = fallback_mark_find(s, markkey);
		size_t from = 0;

		if (m && fallback_mark_covers(m, tokens, ntokens)) {
			while (from < n && uids[from] <= m->max_uid)
				from++;
		} else {
			/* First scan for these tokens: SEARCH SINCE has day
			 * granularity; only messages that arrived since the round
			 * began (INTERNALDATE, 5 min of slack) can be its DSNs. */
			r = drop_older_than(s, uids, &n, since - 300.0, errstr);
			if (r)
				goto out;
		}
		memmove(uids, uids + from, (n - from) * sizeof *uids);
		n -= from;
	}
	if (n > BOUNCE_MAX_UIDS)
		n = BOUNCE_MAX_UIDS;
	top = n > 0 ? uids[n - 1] : searched_top;
	for (size_t i = 0; i < n; i++) {
		struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty();
		clist *res = NULL;

		mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid());
		mailimap_fetch_type_new_fetch_att_list_add(ft,
			mailimap_fetch_att_new_body_peek_section_partial(mailimap_section_new(NULL), 0,
			                                                  BOUNCE_MAX_BYTES));
		r = uid_fetch(s, &uids[i], 1, ft, &res, errstr);
		if (r)
			goto out;
		for (clistiter *it = res ? clist_begin(res) : NULL; it; it = clist_next(it)) {
			struct fetched f;
			const char *body;
			size_t blen;

			fetched_parse(clist_content(it), &f);
			uint32_t uid = f.uid;
			body = f.section;
			blen = f.section_len;
			if (!uid || uid != uids[i] || !body)
				continue;
			if (blen > BOUNCE_MAX_BYTES)
				blen = BOUNCE_MAX_BYTES;
			size_t ti = 0;
			struct dsn_info info;
			memset(&info, 0, sizeof info);
			if (dsn_match(body, blen, tokens, ntokens, &ti, &info) != 1 || ti >= ntokens)
				continue;
			if (cnt == cap) {
				cap = cap ? cap * 2 : 4;
				b = xrealloc(b, cap * sizeof *b);
			}
			b[cnt].token_index = ti;
			b[cnt].dsn = info;
			b[cnt].uid = uid;
			cnt++;
		}
		if (res)
			mailimap_fetch_list_free(res);
	}
	if (top > 0)
		fallback_mark_set(s, markkey, tokens, ntokens, top);
	if (delete_matched) {
		for (size_t i = 0; i < cnt; i++) {
			char what[64];
			r = cleanup_selected(s, (uint32_t)b[i].uid, CLEANUP_DELETE, NULL, folder,
			                     what, sizeof what, errstr);
			if (r)
				goto out;
		}
	}
	*out = b;
	*nout = cnt;
	b = NULL;
out:
	free(markkey);
	free(uids);
	free(b);
	return r;
}

/* ---- the found probe's header and Gmail's tab (docs/SPEC.md "Authentication
 * verdicts and the delivery path", issue 11) ------------------------------ */

int imap_fetch_header(struct imap_session *s, unsigned long uid, size_t max, char **out,
                      size_t *len, char **errstr)
{
	struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty();
	uint32_t u = (uint32_t)uid;
	clist *res = NULL;
	int r;

	*out = NULL;
	*len = 0;
	if (s->hdr != NULL && s->hdr_uid == u && s->hdr_uidvalidity == s->uidvalidity &&
	    s->selected != NULL && strcmp(s->hdr_folder, s->selected) == 0 && s->hdr_len < max) {
		/* fetched with its proof by the find (fetch_and_match): a UID's
		 * message never changes within a UIDVALIDITY (RFC 3501 2.3.1.1) */
		*out = s->hdr;
		*len = s->hdr_len;
		s->hdr = NULL;
		hdr_forget(s);
		mailimap_fetch_type_free(ft);
		return IMAP_OK;
	}
	mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid());
	mailimap_fetch_type_new_fetch_att_list_add(ft,
		mailimap_fetch_att_new_body_peek_section_partial(mailimap_section_new_header(), 0,
		                                                 (uint32_t)max));
	r = uid_fetch(s, &u, 1, ft, &res, errstr);
	if (r)
		return r;
	for (clistiter *it = res ? clist_begin(res) : NULL; it; it = clist_next(it)) {
		struct fetched f;
		fetched_parse(clist_content(it), &f);
		if (f.uid != u || !f.section)
			continue;
		*len = f.section_len < max ? f.section_len : max;
		*out = xstrndup(f.section, *len);
		break;
	}
	if (res)
		mailimap_fetch_list_free(res);
	if (*out == NULL)
		return imapi_fail(errstr, IMAP_EPROTO, xasprintf("imap %s:%d: UID FETCH %lu: no header in the reply",
		                                             imapi_host(s), imapi_port(s), uid));
	return IMAP_OK;
}

int imap_gmail_tab(struct imap_session *s, unsigned long uid, char *tab, size_t tabsz,
                   char **errstr)
{
	static const char *const tabs[] = { "primary", "promotions", "social", "updates", "forums" };

	xstrlcpy(tab, "unknown", tabsz);
	for (size_t i = 0; i < sizeof tabs / sizeof tabs[0]; i++) {
		struct mailimap_search_key *key = mailimap_search_key_new_multiple_empty();
		struct mailimap_set *set = mailimap_set_new_single((uint32_t)uid);
		char *raw = xasprintf("category:%s", tabs[i]);
		uint32_t *uids = NULL;
		size_t n = 0;
		int r;

		mailimap_search_key_multiple_add(key, mailimap_search_key_new_uid(set));
		mailimap_search_key_multiple_add(key, mailimap_search_key_new_xgmraw(raw));
		r = uid_search(s, key, &uids, &n, errstr);
		if (r)
			return r;
		for (size_t k = 0; k < n; k++)
			if (uids[k] == (uint32_t)uid) {
				xstrlcpy(tab, tabs[i], tabsz);
				free(uids);
				return IMAP_OK;
			}
		free(uids);
	}
	return IMAP_OK;
}

/* ---------- for imap_idle.c (imap_int.h) ---------- */

int imapi_begin(struct imap_session *s, const char *what, char **errstr)
{
	return begin(s, what, errstr);
}

int imapi_begin_idle_read(struct imap_session *s, char **errstr)
{
	int r;

	if (s->dead || !s->imap || !s->imap->imap_stream)
		return imapi_fail(errstr, IMAP_EBYE,
		               xasprintf("imap %s:%d: IDLE: connection closed earlier in this session",
		                         imapi_host(s), imapi_port(s)));
	r = arm(s, TLS_CMD_MAX_BYTES);
	if (r == IMAP_ETIMEOUT)
		return imapi_fail(errstr, r, xasprintf("imap %s:%d: IDLE: round deadline reached",
		                                    imapi_host(s), imapi_port(s)));
	return r;
}

int imapi_map_result(struct imap_session *s, int r, const char *what, int no_code, char **errstr)
{
	return map_result(s, r, what, no_code, errstr);
}

int imapi_select(struct imap_session *s, const char *folder, char **errstr)
{
	return select_folder(s, folder, errstr);
}

void imapi_server_text(char *buf, size_t bufsz, const char *t)
{
	server_text(buf, bufsz, t);
}
