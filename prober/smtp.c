/*
 * smtp.c - probe submission through the relay with libcurl, and the
 * parsers for SMTP replies (RFC 5321 §4.2) and enhanced status codes
 * (RFC 3463). See smtp.h.
 *
 * How the final reply is found: libcurl hands every server reply line to
 * CURLOPT_HEADERFUNCTION, and every command line it sends to
 * CURLOPT_DEBUGFUNCTION (CURLINFO_HEADER_OUT). Each complete reply is
 * attributed to the last command sent (the greeting to none), so the
 * reply of the stage that failed is known exactly; CURLINFO_RESPONSE_CODE
 * alone would give only a number. The debug callback never stores or
 * prints what it sees beyond the command verb, so AUTH data never leaves
 * libcurl.
 *
 * Thread safety: smtp_submit keeps all its state in its own stack frame
 * and a fresh easy handle; the only global is libcurl's global init.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/util.h"
#include "prober/smtp.h"
#include "prober/oauth2.h"
#include "prober/sasl.h"

#define SMTP_LINE_MAX 4096        /* longest reply line accepted (RFC: 512) */
#define SMTP_RAW_MAX 16384        /* cap of one captured reply */

const char *smtp_err_name(int err)
{
	switch (err) {
	case SMTP_OK: return "ok";
	case SMTP_ETEMP: return "temp";
	case SMTP_EPERM: return "perm";
	case SMTP_ECONNECT: return "connect";
	case SMTP_ETLS: return "tls";
	case SMTP_EAUTH: return "auth";
	case SMTP_ETIMEOUT: return "timeout";
	case SMTP_EDROP: return "drop";
	case SMTP_EPROTO: return "proto";
	case SMTP_ENOFILES: return "nofiles";
	}
	return "unknown";
}

int smtp_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Reused handles (issue 9 "Submission that keeps up")                 */

/* Idle easy handles, each with its live connection in libcurl's cache:
 * the next probe on a handle goes over that connection (no new TCP, TLS,
 * EHLO or AUTH). The round caps transactions in flight at
 * relay.connections, so at most that many handles exist. A failed
 * transaction's handle is not kept (libcurl closes its connection). */
#define POOL_MAX 64
static CURL *pool[POOL_MAX];
static size_t npool;
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_ulong n_connects;

/* A kept handle (*reused = 1), or a new one; fresh: always a new one. */
static CURL *pool_get(int fresh, int *reused)
{
	CURL *h = NULL;

	pthread_mutex_lock(&pool_mu);
	if (npool > 0 && !fresh)
		h = pool[--npool];
	pthread_mutex_unlock(&pool_mu);
	*reused = h != NULL;
	return h ? h : curl_easy_init();
}

/* Keep h for the next probe; its options are reset (they point into the
 * finished transfer) but its connection stays open. */
static void pool_put(CURL *h)
{
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	/* QUIT at exit must not hang on a relay that went quiet */
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(h, CURLOPT_SERVER_RESPONSE_TIMEOUT, 1L);
	pthread_mutex_lock(&pool_mu);
	if (npool < POOL_MAX) {
		pool[npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&pool_mu);
	if (h)
		curl_easy_cleanup(h);
}

unsigned long smtp_connections_opened(void)
{
	return atomic_load(&n_connects);
}

size_t smtp_close_idle(void)
{
	size_t n;

	pthread_mutex_lock(&pool_mu);
	n = npool;
	while (npool > 0)
		curl_easy_cleanup(pool[--npool]);   /* QUIT on each live connection */
	pthread_mutex_unlock(&pool_mu);
	return n;
}

void smtp_global_cleanup(void)
{
	smtp_close_idle();
	curl_global_cleanup();
}

/* ------------------------------------------------------------------ */
/* Reply parsing                                                       */

size_t smtp_parse_enhanced(const char *s, char out[ENHANCED_MAX])
{
	size_t i = 0, n;
	int part;

	if (out)
		out[0] = '\0';
	if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		n = 0;
		while (isdigit((unsigned char)s[i]) && n < 4) {
			i++;
			n++;
		}
		if (n < 1 || n > 3)
			return 0;
		if (part == 0) {
			if (s[i] != '.')
				return 0;
			i++;
		}
	}
	/* must end at a word boundary: "5.7.1." or "5.7.1x" is not a code */
	if (s[i] != '\0' && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
		return 0;
	if (out) {
		memcpy(out, s, i);   /* i <= 9 < ENHANCED_MAX */
		out[i] = '\0';
	}
	return i;
}

/* Find "queued as X" (Postfix, Sendmail-alike) in text; copy X. */
static void find_queue_id(const char *text, char out[QUEUE_ID_MAX])
{
	const char *p = text;
	size_t n = 0;

	out[0] = '\0';
	for (; *p; p++) {
		if (strncasecmp(p, "queued as ", 10) == 0) {
			p += 10;
			while (*p == ' ')
				p++;
			while ((isalnum((unsigned char)p[n]) || p[n] == '.' || p[n] == '-' ||
			        p[n] == '_' || p[n] == '@' || p[n] == '=') && n + 1 < QUEUE_ID_MAX)
				n++;
			/* Sendmail's "... Message accepted for delivery" has no id */
			memcpy(out, p, n);
			out[n] = '\0';
			return;
		}
	}
}

static int valid_code(const char *l)
{
	return l[0] >= '2' && l[0] <= '5' && l[1] >= '0' && l[1] <= '5' &&
	       isdigit((unsigned char)l[2]);
}

int smtp_parse_reply(const char *raw, size_t len, struct smtp_reply *reply)
{
	size_t pos = 0, tlen = 0;
	int code = -1, last_done = 0, first = 1;
	char enh[ENHANCED_MAX] = "";
	char text[REPLY_TEXT_MAX];

	memset(reply->enhanced, 0, sizeof(reply->enhanced));
	reply->code = 0;
	reply->text[0] = '\0';
	reply->queue_id[0] = '\0';
	text[0] = '\0';
	if (!raw || len < 3)
		return -1;
	if (memchr(raw, '\0', len))
		return -1;

	while (pos < len) {
		const char *l = raw + pos;
		size_t ll = 0, next, t0;
		int c;

		if (last_done)
			return -1;           /* data after the final line */
		while (pos + ll < len && l[ll] != '\n')
			ll++;
		next = pos + ll + (pos + ll < len ? 1 : 0);
		if (ll > 0 && l[ll - 1] == '\r')
			ll--;
		if (ll > SMTP_LINE_MAX)
			return -1;
		if (ll < 3 || !valid_code(l))
			return -1;
		c = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
		if (code >= 0 && c != code)
			return -1;           /* RFC 5321 §4.2.1: same code on every line */
		code = c;
		if (ll == 3 || l[3] == ' ')
			last_done = 1;
		else if (l[3] != '-')
			return -1;
		t0 = ll > 3 ? 4 : 3;
		/* the enhanced code: taken from the first line, stripped from each */
		{
			char tmp[ENHANCED_MAX];
			char line[SMTP_LINE_MAX + 1];
			size_t n, k = ll - t0;

			memcpy(line, l + t0, k);
			line[k] = '\0';
			n = smtp_parse_enhanced(line, tmp);
			if (n && tmp[0] - '0' != c / 100)
				n = 0;       /* class mismatch: plain text */
			if (n && first)
				memcpy(enh, tmp, sizeof(enh));
			if (n && strcmp(tmp, enh) == 0) {
				t0 += n;
				while (t0 < ll && (l[t0] == ' ' || l[t0] == '\t'))
					t0++;
			}
		}
		first = 0;
		/* append the text, lines joined by one space, capped */
		if (t0 < ll) {
			size_t k = ll - t0;
			if (tlen > 0 && tlen + 1 < sizeof(text))
				text[tlen++] = ' ';
			if (tlen + k >= sizeof(text))
				k = sizeof(text) - 1 - tlen;
			memcpy(text + tlen, l + t0, k);
			tlen += k;
			text[tlen] = '\0';
		}
		pos = next;
	}
	if (!last_done)
		return -1;
	/* control characters from the wire never reach reports */
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
			text[i] = ' ';
	reply->code = code;
	memcpy(reply->enhanced, enh, sizeof(reply->enhanced));
	memcpy(reply->text, text, tlen + 1);
	find_queue_id(reply->text, reply->queue_id);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Diagnostics                                                         */

struct diag_entry {
	const char *enhanced;
	const char *text;
};

static const struct diag_entry diag_table[] = {
	{ "4.4.2", "connection dropped" },
	{ "4.2.0", "greylisted / policy deferral" },
	{ "4.7.1", "greylisted / policy deferral" },
	{ "4.2.2", "mailbox full" },
	{ "5.2.2", "mailbox full" },
	{ "4.7.28", "rate limited" },
	{ "4.7.0", "temporary policy deferral" },
	{ "4.4.1", "no answer from host" },
	{ "4.4.3", "routing server failure (DNS)" },
	{ "4.3.0", "temporary mail system failure" },
	{ "4.3.1", "mail system full" },
	{ "4.5.3", "too many recipients" },
	{ "5.1.1", "unknown mailbox" },
	{ "5.1.2", "unknown domain" },
	{ "5.1.0", "bad address" },
	{ "5.1.8", "bad sender domain" },
	{ "5.1.10", "recipient address has null MX" },
	{ "5.2.1", "mailbox disabled" },
	{ "5.4.1", "recipient address rejected (no such recipient here)" },
	{ "5.5.3", "too many recipients" },
	{ "5.3.4", "message too big" },
	{ "5.2.3", "message too big" },
	{ "5.6.0", "content rejected" },
	{ "5.7.1", "policy rejection" },
	{ "5.7.8", "authentication credentials invalid" },
	{ "5.7.9", "authentication mechanism too weak" },
	{ "5.7.0", "reputation or policy block" },
	{ "5.7.26", "unauthenticated sender (SPF/DKIM/DMARC)" },
	{ "5.7.25", "reverse DNS (PTR) check failed" },
	{ "5.7.27", "sender address has null MX" },
	{ "5.7.23", "SPF validation failed" },
	{ "5.7.24", "SPF validation error" },
	{ "5.7.20", "no passing DKIM signature" },
	{ "5.7.21", "no acceptable DKIM signature" },
	{ "5.7.22", "no DKIM signature aligned with the author" },
	{ "5.7.28", "rate limited (mailing list / bulk)" },
	{ "4.7.26", "unauthenticated sender (SPF/DKIM/DMARC)" },
	{ "4.7.0", "temporary policy deferral" },
};

const char *smtp_diagnostic(int code, const char *enhanced)
{
	int cls, subject = -1;

	if (enhanced && enhanced[0]) {
		char e[ENHANCED_MAX];
		if (smtp_parse_enhanced(enhanced, e)) {
			for (size_t i = 0; i < sizeof(diag_table) / sizeof(diag_table[0]); i++)
				if (strcmp(diag_table[i].enhanced, e) == 0)
					return diag_table[i].text;
			cls = e[0] - '0';
			subject = atoi(e + 2);
			if (cls == 5 && subject == 7)
				return "reputation or policy block";
			switch (subject) {
			case 0: return cls == 2 ? "accepted" : cls == 4 ? "temporary failure" : "permanent failure";
			case 1: return cls == 4 ? "temporary addressing problem" : cls == 5 ? "addressing problem (bad address)" : "addressing";
			case 2: return cls == 4 ? "temporary mailbox problem" : cls == 5 ? "mailbox problem" : "mailbox";
			case 3: return cls == 4 ? "temporary mail system problem" : cls == 5 ? "mail system problem" : "mail system";
			case 4: return cls == 4 ? "network or routing problem" : cls == 5 ? "network or routing failure" : "network/routing";
			case 5: return cls == 4 ? "temporary protocol problem" : cls == 5 ? "protocol error" : "protocol";
			case 6: return cls == 4 ? "temporary content problem" : cls == 5 ? "content or media rejected" : "content";
			case 7: return cls == 4 ? "temporary security or policy deferral" : "security or policy";
			default: break;
			}
		}
	}
	switch (code) {
	case 0: return "no reply";
	case 221: return "closing connection";
	case 235: return "authenticated";
	case 250: return "accepted";
	case 251: return "accepted (forwarded)";
	case 354: return "start mail input";
	case 421: return "service not available, closing connection";
	case 450: return "mailbox unavailable (temporary)";
	case 451: return "local error in processing (temporary)";
	case 452: return "insufficient system storage (temporary)";
	case 454: return "TLS or authentication temporarily unavailable";
	case 530: return "authentication required";
	case 534: return "authentication mechanism too weak";
	case 535: return "authentication credentials invalid";
	case 550: return "mailbox unavailable or rejected";
	case 551: return "user not local";
	case 552: return "exceeded storage allocation";
	case 553: return "mailbox name not allowed";
	case 554: return "transaction failed";
	case 555: return "MAIL/RCPT parameters not recognized";
	default: break;
	}
	if (code >= 200 && code < 300)
		return "accepted";
	if (code >= 400 && code < 500)
		return "temporary failure";
	if (code >= 500 && code < 600)
		return "permanent failure";
	return "unexpected reply";
}

/* ------------------------------------------------------------------ */
/* Submission                                                          */

enum cmd {
	CMD_NONE = 0,   /* before any command: greeting */
	CMD_EHLO,       /* EHLO / HELO */
	CMD_STARTTLS,
	CMD_AUTH,
	CMD_MAIL,
	CMD_RCPT,
	CMD_DATA,       /* the DATA command (354) */
	CMD_EOD,        /* after 354: end of data */
	CMD_QUIT,
	CMD_OTHER,
	CMD__COUNT
};

struct stage_reply {
	int have;
	int code;                 /* from the last line, as libcurl sees it */
	size_t rawlen;
	char raw[SMTP_RAW_MAX + 1];
};

struct xfer {
	const char *msg;
	size_t len, off;
	enum cmd cmd;             /* command the next reply answers */
	enum cmd at;              /* the same, QUIT aside: libcurl sends QUIT on a failed
	                             transfer too, and the failure is the step before it */
	int nreplies;             /* complete replies seen */
	int cur_lines;            /* lines in the reply being read */
	struct stage_reply cur;   /* reply being read */
	struct stage_reply st[CMD__COUNT];   /* last complete reply per command */
	double submit_time;       /* the 2xx to end of DATA: now_wall() when read, then reply_rx_time() */
	double started;           /* now_wall() as the transfer began */
	int oauth;                /* AUTH with an OAuth 2.0 token */
	char challenge[240];      /* its error challenge (334 base64 JSON), described */
	int socket_errno;         /* errno of a failed socket(2), 0 when none failed */
};

/* A stage reply with nothing captured. */
static void stage_clear(struct stage_reply *r)
{
	r->have = 0;
	r->code = 0;
	r->rawlen = 0;
	r->raw[0] = '\0';
}

/* Copy a stage reply's used bytes (its buffer holds 16 KiB). */
static void stage_copy(struct stage_reply *dst, const struct stage_reply *src)
{
	dst->have = src->have;
	dst->code = src->code;
	dst->rawlen = src->rawlen > SMTP_RAW_MAX ? SMTP_RAW_MAX : src->rawlen;
	memcpy(dst->raw, src->raw, dst->rawlen);
	dst->raw[dst->rawlen] = '\0';
}

/* A transfer's state, cleared but for the reply buffers' unused bytes
 * (about 180 KiB a transaction not to clear). Owned by the caller:
 * free(). */
static struct xfer *xfer_new(void)
{
	struct xfer *x = xmalloc(sizeof *x);

	memset(x, 0, offsetof(struct xfer, cur));
	stage_clear(&x->cur);
	for (int i = 0; i < CMD__COUNT; i++)
		stage_clear(&x->st[i]);
	memset(&x->submit_time, 0, sizeof *x - offsetof(struct xfer, submit_time));
	return x;
}

/* CURLOPT_OPENSOCKETFUNCTION: our socket(2) (close-on-exec), remembering
 * why it failed: EMFILE/ENFILE is ours to report, not the relay's. */
static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *a)
{
	struct xfer *x = clientp;
	curl_socket_t s;

	(void)purpose;
	s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (s == CURL_SOCKET_BAD)
		x->socket_errno = errno;
	return s;
}

/* 1 when this process cannot open one more file right now (EMFILE/ENFILE):
 * the name resolver fails that way too, before any socket is made. */
static int out_of_files(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno == EMFILE || errno == ENFILE;
}

/* The message for SMTP_ENOFILES: names the limit and what to do. */
static char *nofiles_text(const char *url, int e)
{
	struct rlimit rl;
	char lim[48] = "";

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		snprintf(lim, sizeof lim, " (limit %llu)", (unsigned long long)rl.rlim_cur);
	return xasprintf("too many open files%s%s: no socket for the relay %s; raise the limit "
	                 "(ulimit -n, systemd LimitNOFILE=) or lower imap_limits",
	                 lim, e == ENFILE ? " in the system" : "", url);
}

static size_t read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nitems;

	if (n > x->len - x->off)
		n = x->len - x->off;
	memcpy(buf, x->msg + x->off, n);
	x->off += n;
	return n;
}

static enum cmd cmd_of(const char *line, size_t n, enum cmd prev)
{
	static const struct { const char *verb; enum cmd c; } verbs[] = {
		{ "EHLO", CMD_EHLO }, { "HELO", CMD_EHLO }, { "STARTTLS", CMD_STARTTLS },
		{ "AUTH", CMD_AUTH }, { "MAIL", CMD_MAIL }, { "RCPT", CMD_RCPT },
		{ "DATA", CMD_DATA }, { "QUIT", CMD_QUIT }, { "RSET", CMD_OTHER },
		{ "NOOP", CMD_OTHER }, { "VRFY", CMD_OTHER },
	};
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		size_t vl = strlen(verbs[i].verb);
		if (n >= vl && strncasecmp(line, verbs[i].verb, vl) == 0 &&
		    (n == vl || line[vl] == ' ' || line[vl] == '\r' || line[vl] == '\n'))
			return verbs[i].c;
	}
	/* an AUTH continuation line (base64) is still AUTH; the end-of-data
	 * dot (if traced) still waits for the end-of-DATA reply */
	return (prev == CMD_AUTH || prev == CMD_EOD) ? prev : CMD_OTHER;
}

/* Commands sent: only the verb is looked at; nothing is stored or printed. */
static int debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
	struct xfer *x = ud;
	(void)h;
	if (type == CURLINFO_HEADER_OUT)
		x->cmd = cmd_of(data, size, x->cmd);
	if (type == CURLINFO_HEADER_OUT && x->cmd != CMD_QUIT)
		x->at = x->cmd;
	return 0;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nitems, ll = n;
	int last;

	/* libcurl delivers one reply line per call */
	while (ll > 0 && (buf[ll - 1] == '\n' || buf[ll - 1] == '\r'))
		ll--;
	if (x->cur.rawlen + n <= SMTP_RAW_MAX) {
		memcpy(x->cur.raw + x->cur.rawlen, buf, n);
		x->cur.rawlen += n;
		x->cur.raw[x->cur.rawlen] = '\0';
	}
	x->cur_lines++;
	if (x->oauth && x->cmd == CMD_AUTH && ll > 4 && ll < 4096 && strncmp(buf, "334 ", 4) == 0) {
		/* RFC 7628 3.2.2: the refusal comes as a challenge before the 535 */
		char *b64 = xstrndup(buf + 4, ll - 4);
		sasl_describe_challenge(b64, x->challenge, sizeof x->challenge);
		free(b64);
	}
	last = ll < 4 || buf[3] != '-';
	if (!last)
		return n;

	x->cur.have = 1;
	x->cur.code = 0;
	if (ll >= 3 && isdigit((unsigned char)buf[0]) && isdigit((unsigned char)buf[1]) &&
	    isdigit((unsigned char)buf[2]))
		x->cur.code = (buf[0] - '0') * 100 + (buf[1] - '0') * 10 + (buf[2] - '0');
	{
		enum cmd c = x->cmd;
		if (c == CMD_DATA && x->cur.code != 354 && x->st[CMD_DATA].have &&
		    x->st[CMD_DATA].code == 354)
			c = CMD_EOD;
		if (c == CMD_EOD && x->cur.code >= 200 && x->cur.code < 300 && !x->st[CMD_EOD].have)
			x->submit_time = now_wall();
		stage_copy(&x->st[c], &x->cur);
		if (c == CMD_DATA && x->cur.code == 354)
			x->cmd = x->at = CMD_EOD;
	}
	x->nreplies++;
	x->cur_lines = 0;
	x->cur.rawlen = 0;
	x->cur.raw[0] = '\0';
	x->cur.have = 0;
	return n;
}

/* Fill reply from a captured stage reply; falls back to the last line's
 * code when the capture does not parse (mixed codes, garbage). */
static void fill_reply(struct smtp_reply *reply, const struct stage_reply *sr, const char *stage)
{
	if (smtp_parse_reply(sr->raw, sr->rawlen, reply) != 0) {
		reply->code = sr->code;
		reply->enhanced[0] = '\0';
		reply->queue_id[0] = '\0';
		xstrlcpy(reply->text, sr->raw, sizeof(reply->text));
		for (char *p = reply->text; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = ' ';
	}
	xstrlcpy(reply->stage, stage, sizeof(reply->stage));
}

static int class_err(int code)
{
	if (code >= 200 && code < 300)
		return SMTP_OK;
	if (code >= 400 && code < 500)
		return SMTP_ETEMP;
	if (code >= 500 && code < 600)
		return SMTP_EPERM;
	return SMTP_EPROTO;
}

static const char *stage_of(enum cmd c)
{
	switch (c) {
	case CMD_NONE: case CMD_EHLO: case CMD_STARTTLS: return "connect";
	case CMD_AUTH: return "auth";
	case CMD_MAIL: return "mail";
	case CMD_RCPT: return "rcpt";
	case CMD_DATA: case CMD_EOD: return "data";
	default: return "";
	}
}

/* Build the URL: relay->url with the local host name as the EHLO argument
 * when the URL has no path (libcurl would send "EHLO localhost"). */
static char *build_url(const struct relay_conf *r)
{
	const char *u = r->url, *p = strstr(u, "://");
	char host[256];

	if (!p)
		return xstrdup(u);
	p = strchr(p + 3, '/');
	if (p && p[1])
		return xstrdup(u);
	if (gethostname(host, sizeof(host)) != 0 || !host[0])
		xstrlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	for (char *h = host; *h; h++)
		if (!isalnum((unsigned char)*h) && *h != '.' && *h != '-')
			*h = '-';
	return xasprintf("%s%s%s", u, p ? "" : "/", host);
}

static int is_tls_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CLIENTCERT:
		return 1;
	default:
		return 0;
	}
}

static const atomic_int *abort_flag;

void smtp_set_abort_flag(const atomic_int *flag)
{
	abort_flag = flag;
}

static int abort_cb(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                    curl_off_t ulnow)
{
	(void)clientp;
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return abort_flag != NULL && atomic_load(abort_flag) != 0;
}

/* The time limits of one transaction, in ms: the relay's timeout and
 * connect_timeout, both cut to what is left of the round deadline.
 * -1 when the deadline has already passed. */
static int transfer_timeouts(const struct smtp_params *p, long *timeout_ms, long *connect_ms)
{
	const struct relay_conf *r = p->relay;
	double left = p->deadline > 0 ? p->deadline - now_mono() : 1e9;

	if (left <= 0.001)
		return -1;
	*timeout_ms = r->timeout > 0 ? r->timeout * 1000 : 30000;
	if (left * 1000 < *timeout_ms)
		*timeout_ms = (long)(left * 1000) > 0 ? (long)(left * 1000) : 1;
	*connect_ms = r->connect_timeout > 0 ? r->connect_timeout * 1000 : 10000;
	if (*connect_ms > *timeout_ms)
		*connect_ms = *timeout_ms;
	return 0;
}

/* Setup 1: where to connect, time limits, our socket and error buffer. */
static void setup_transport(CURL *h, struct xfer *x, const char *url, char *cerr,
                            long connect_ms, long timeout_ms)
{
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (abort_flag != NULL) {
		/* Called about once a second even while waiting: aborts a
		 * transaction in flight when the caller is asked to stop. */
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, abort_cb);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	}
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, x);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	curl_easy_setopt(h, CURLOPT_MAXAGE_CONN, SMTP_MAXAGE_CONN);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	/* libcurl 7.88 waits for the end-of-DATA reply in a blocking loop that
	 * does not honour CURLOPT_TIMEOUT (seen here: it waited for the peer to
	 * close); the per-response timeout bounds that wait. Whole seconds. */
	curl_easy_setopt(h, CURLOPT_SERVER_RESPONSE_TIMEOUT, (timeout_ms + 999) / 1000);
}

/* Setup 2: TLS (STARTTLS or implicit, peer verified) and AUTH, with the
 * password or the OAuth 2.0 token (RFC 7628) when there is one. */
static void setup_tls_auth(CURL *h, const struct relay_conf *r, const char *token)
{
	if (r->tls == TLS_NONE && !r->implicit_tls)
		curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_NONE);
	else
		curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (r->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, r->ca_file);
	if (r->username) {
		curl_easy_setopt(h, CURLOPT_USERNAME, r->username);
		if (token) {
			/* SASL XOAUTH2/OAUTHBEARER; libcurl prefers OAUTHBEARER when both are offered */
			curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, token);
			if (r->auth_mechanism)
				curl_easy_setopt(h, CURLOPT_LOGIN_OPTIONS, r->auth_mechanism == 1 ?
				                 "AUTH=XOAUTH2" : "AUTH=OAUTHBEARER");
		} else
			curl_easy_setopt(h, CURLOPT_PASSWORD, r->password ? r->password : "");
	}
}

/* Setup 3: the envelope (MAIL FROM, RCPT TO), the message, and the
 * callbacks that attribute each reply to its command. */
static void setup_envelope(CURL *h, struct xfer *x, const char *from, struct curl_slist *rcpts,
                           size_t len)
{
	curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(h, CURLOPT_READDATA, x);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	/* VERBOSE only feeds debug_cb (it replaces the stderr trace); it sees
	 * the commands to know which one a reply answers, and keeps no data. */
	curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
	curl_easy_setopt(h, CURLOPT_DEBUGDATA, x);
	curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
}

/* Classification by reply: 1. the end of DATA was answered: that reply
 * decides; 2. else the first stage that failed with a reply decides.
 * Returns 1 with *err and reply filled, 0 when no reply decides. */
static int classify_reply(const struct xfer *x, const struct relay_conf *r,
                          struct smtp_reply *reply, int *err)
{
	static const enum cmd order[] = { CMD_NONE, CMD_EHLO, CMD_STARTTLS, CMD_AUTH,
	                                  CMD_MAIL, CMD_RCPT, CMD_DATA };

	if (x->st[CMD_EOD].have) {
		fill_reply(reply, &x->st[CMD_EOD], "data");
		*err = class_err(reply->code);
		return 1;
	}
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const struct stage_reply *sr = &x->st[order[i]];
		if (!sr->have || sr->code < 400)
			continue;
		if (order[i] == CMD_EHLO && x->st[CMD_MAIL].have)
			continue;   /* EHLO refused, HELO then worked */
		fill_reply(reply, sr, stage_of(order[i]));
		if (order[i] == CMD_AUTH ||
		    (sr->code == 530 && order[i] == CMD_MAIL && r->username)) {
			*err = SMTP_EAUTH;
		} else if (order[i] == CMD_STARTTLS) {
			*err = SMTP_ETLS;
		} else {
			*err = class_err(reply->code);
		}
		return 1;
	}
	return 0;
}

/* Classification 3. no failing reply: the transport (libcurl's rc)
 * decides. Sets *errstr itself only for SMTP_ENOFILES (errno is read at
 * once). cerr: libcurl's error buffer, CURL_ERROR_SIZE bytes. */
static int classify_transport(CURLcode rc, const struct xfer *x, const char *url, char *cerr,
                              char **errstr)
{
	if (rc == CURLE_OK) {
		/* cannot happen without an end-of-DATA reply; never trust a stale 250 */
		return SMTP_EPROTO;
	} else if (rc == CURLE_LOGIN_DENIED) {
		return SMTP_EAUTH;
	} else if (is_tls_error(rc)) {
		return SMTP_ETLS;
	} else if ((rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) &&
	           (x->socket_errno == EMFILE || x->socket_errno == ENFILE || out_of_files())) {
		if (errstr)
			*errstr = nofiles_text(url, x->socket_errno ? x->socket_errno : errno);
		return SMTP_ENOFILES;
	} else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
		return SMTP_ECONNECT;
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		return SMTP_ETIMEOUT;
	} else if (rc == CURLE_ABORTED_BY_CALLBACK) {
		xstrlcpy(cerr, "interrupted", CURL_ERROR_SIZE);
		return SMTP_ETIMEOUT;   /* stopped on request (smtp_set_abort_flag) */
	} else if (x->nreplies > 0 && (rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
	                               rc == CURLE_GOT_NOTHING || rc == CURLE_WEIRD_SERVER_REPLY ||
	                               rc == CURLE_PARTIAL_FILE || rc == CURLE_UPLOAD_FAILED)) {
		return SMTP_EDROP;
	} else if (x->nreplies == 0 && (rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING)) {
		return SMTP_ECONNECT;   /* closed before the greeting */
	}
	return SMTP_EPROTO;
}

/* The message for a failure a reply decided: the command and the reply. */
static char *reply_errstr(const char *url, const struct smtp_reply *reply, const struct xfer *x)
{
	const char *st = reply->stage;
	const char *cmd = strcmp(st, "connect") == 0 ? "greeting" :
	                  strcmp(st, "auth") == 0 ? "AUTH" :
	                  strcmp(st, "mail") == 0 ? "MAIL FROM" :
	                  strcmp(st, "rcpt") == 0 ? "RCPT TO" :
	                  strcmp(st, "data") == 0 ? "DATA" : st;

	return xasprintf("%s: %s: %d%s%s %s%s%s%s", url, cmd, reply->code,
	                 reply->enhanced[0] ? " " : "", reply->enhanced, reply->text,
	                 x->challenge[0] ? " (server's challenge: " : "", x->challenge,
	                 x->challenge[0] ? ")" : "");
}

/* The message for a failure the transport decided: the stage and why. */
static char *transport_errstr(CURL *h, const char *url, const struct smtp_reply *reply,
                              const struct xfer *x, CURLcode rc, int err, const char *cerr)
{
	const char *what = err == SMTP_EDROP ? "connection dropped" :
	                   err == SMTP_ETIMEOUT ? "timed out" : "failed";
	const char *stage = reply->stage;
	double tcp = 0;

	/* Connected, but the server never greeted: say so. */
	if (err == SMTP_ETIMEOUT && x->nreplies == 0 && strcmp(stage, "connect") == 0 &&
	    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME, &tcp) == CURLE_OK && tcp > 0)
		stage = "the greeting (connected, no reply)";
	return xasprintf("%s: %s%s%s (%s)%s%s%s%s", url, what,
	                 stage[0] ? " at " : "", stage,
	                 cerr[0] ? cerr : curl_easy_strerror(rc),
	                 err == SMTP_EDROP && x->st[CMD_EOD].have == 0 &&
	                 x->at == CMD_EOD ? " after end of DATA, before the final reply" : "",
	                 x->challenge[0] ? ": token refused (server's challenge: " : "",
	                 x->challenge, x->challenge[0] ? ")" : "");
}

/* Result and attribution of a finished transfer: the SMTP_* code, reply
 * filled, *submit_time on success, *errstr (allocated) on failure. */
static int classify(CURL *h, const struct relay_conf *r, const struct xfer *x, CURLcode rc,
                    char *cerr, struct smtp_reply *reply, double *submit_time, char **errstr)
{
	int err;

	if (classify_reply(x, r, reply, &err)) {
		if (err == SMTP_OK) {
			if (submit_time)
				*submit_time = x->submit_time;
			return err;   /* a failing QUIT after 250 does not matter */
		}
		if (errstr)
			*errstr = reply_errstr(r->url, reply, x);
		return err;
	}
	xstrlcpy(reply->stage, stage_of(x->at), sizeof(reply->stage));
	err = classify_transport(rc, x, r->url, cerr, errstr);
	if (err != SMTP_ENOFILES && errstr)
		*errstr = transport_errstr(h, r->url, reply, x, rc, err, cerr);
	return err;
}

/* After the transaction: keep the handle for the next probe after a 250
 * within the deadline, else close it without waiting on the peer. */
static void release_handle(CURL *h, double deadline, int err)
{
	long nc = 0;

	if (curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &nc) == CURLE_OK && nc > 0)
		atomic_fetch_add(&n_connects, (unsigned long)nc);
	if (err == SMTP_OK && now_mono() < deadline) {
		/* The 250 is in: the connection serves the next probe. */
		pool_put(h);
		return;
	} else if (err == SMTP_OK) {
		/* QUIT is a courtesy; libcurl waits for its reply up to the
		 * response timeout even past CURLOPT_TIMEOUT: none once the
		 * round deadline has passed. */
		curl_socket_t s = CURL_SOCKET_BAD;
		curl_easy_setopt(h, CURLOPT_SERVER_RESPONSE_TIMEOUT, 1L);
		if (curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &s) == CURLE_OK &&
		    s != CURL_SOCKET_BAD)
			shutdown(s, SHUT_RDWR);
	}
	if (err != SMTP_OK) {
		/* curl_easy_cleanup sends QUIT and waits for its reply (up to the
		 * response timeout again) even after a timeout: cut the connection
		 * first so a stalled peer cannot hold the worker twice as long. */
		curl_socket_t s = CURL_SOCKET_BAD;
		if (curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &s) == CURLE_OK && s != CURL_SOCKET_BAD)
			shutdown(s, SHUT_RDWR);
	}
	curl_easy_cleanup(h);   /* sends QUIT on a live connection */
}

/* The moment the end-of-DATA 2xx reached this host (SPEC "Latency": the
 * submit time). header_cb stamped it when libcurl read it, which a busy
 * host delays by as long as the thread waits for a CPU, and every latency
 * comes out that much short. No byte comes from the relay after that
 * reply until our next command, so the kernel's receive time of the
 * connection's last data segment (common/util.h tcp_last_rx) is the
 * reply's; it is kept within [the transfer's start, the read]. */
static double reply_rx_time(CURL *h, const struct xfer *x)
{
	curl_socket_t s = CURL_SOCKET_BAD;
	double t;

	if (curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &s) != CURLE_OK || s == CURL_SOCKET_BAD)
		return x->submit_time;
	t = tcp_last_rx((int)s, x->submit_time);
	if (t > x->submit_time)
		t = x->submit_time;
	return t < x->started ? x->started : t;
}

/* One transaction; token: the OAuth 2.0 access token, or NULL. */
static int submit_once(const struct smtp_params *p, const char *token, struct smtp_reply *reply,
                       double *submit_time, char **errstr, int fresh, int *reused)
{
	const struct relay_conf *r = p->relay;
	struct xfer *x = NULL;
	CURL *h = NULL;
	struct curl_slist *rcpts = NULL;
	char *url = NULL, *from = NULL, *to = NULL;
	char cerr[CURL_ERROR_SIZE];
	CURLcode rc;
	long timeout_ms, connect_ms;
	int err = SMTP_EPROTO;

	memset(reply, 0, sizeof(*reply));
	if (submit_time)
		*submit_time = 0;
	if (errstr)
		*errstr = NULL;
	cerr[0] = '\0';

	if (transfer_timeouts(p, &timeout_ms, &connect_ms) != 0) {
		err = SMTP_ETIMEOUT;
		if (errstr)
			*errstr = xasprintf("%s: round deadline passed before submission", r->url);
		goto out;
	}

	x = xfer_new();
	x->msg = p->message;
	x->len = p->len;
	x->cmd = x->at = CMD_NONE;
	x->oauth = token != NULL;

	h = pool_get(fresh, reused);
	if (!h) {
		if (errstr)
			*errstr = xasprintf("%s: curl_easy_init failed", r->url);
		goto out;
	}
	url = build_url(r);
	from = xasprintf("<%s>", r->from ? r->from : "");
	to = xasprintf("<%s>", p->rcpt);
	rcpts = curl_slist_append(NULL, to);

	setup_transport(h, x, url, cerr, connect_ms, timeout_ms);
	setup_tls_auth(h, r, token);
	setup_envelope(h, x, from, rcpts, p->len);

	x->started = now_wall();
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK && x->submit_time > 0)
		x->submit_time = reply_rx_time(h, x);
	err = classify(h, r, x, rc, cerr, reply, submit_time, errstr);
	/* after DATA's 354 the message goes out, and its final "." with it */
	reply->data_sent = x->at == CMD_EOD || x->st[CMD_EOD].have || x->off > 0;
out:
	if (h)
		release_handle(h, p->deadline, err);
	curl_slist_free_all(rcpts);
	free(url);
	free(from);
	free(to);
	free(x);
	return err;
}

static void wipe_token(char **t)
{
	if (*t) {
		explicit_bzero(*t, strlen(*t));
		free(*t);
		*t = NULL;
	}
}

/* One transaction; when it fails on a kept connection before any reply of
 * its own (the relay closed the connection while it was idle: the close
 * raced the reuse), once more on a new connection. */
static int submit_reusing(const struct smtp_params *p, const char *token, struct smtp_reply *reply,
                          double *submit_time, char **errstr)
{
	int reused = 0;
	int err = submit_once(p, token, reply, submit_time, errstr, 0, &reused);

	/* only before MAIL FROM was answered: nothing of this probe was sent */
	if (reused && reply->code == 0 && (err == SMTP_EDROP || err == SMTP_ECONNECT ||
	                                   err == SMTP_EPROTO) &&
	    (reply->stage[0] == '\0' || strcmp(reply->stage, "connect") == 0 ||
	     strcmp(reply->stage, "mail") == 0)) {
		if (errstr) {
			free(*errstr);
			*errstr = NULL;
		}
		err = submit_once(p, token, reply, submit_time, errstr, 1, &reused);
	}
	return err;
}

int smtp_submit(const struct smtp_params *p, struct smtp_reply *reply,
                double *submit_time, char **errstr)
{
	const struct relay_conf *r = p->relay;
	char *token = NULL, *rejected = NULL, *e = NULL;
	int err = SMTP_EAUTH;

	if (!r->oauth2 || !r->username)
		return submit_reusing(p, NULL, reply, submit_time, errstr);
	/* OAuth 2.0: a token the relay refuses is refreshed once */
	for (int attempt = 0; attempt < 2; attempt++) {
		if (oauth2_get_token(r->oauth2, rejected, &token, &e) != OAUTH2_OK) {
			memset(reply, 0, sizeof(*reply));
			xstrlcpy(reply->stage, "auth", sizeof(reply->stage));
			if (errstr)
				*errstr = xasprintf("%s: AUTH: %s", r->url, e);
			free(e);
			err = SMTP_EAUTH;
			break;
		}
		err = submit_reusing(p, token, reply, submit_time, errstr);
		if (err != SMTP_EAUTH || attempt == 1)
			break;
		if (errstr) {
			free(*errstr);
			*errstr = NULL;
		}
		wipe_token(&rejected);
		rejected = token;
		token = NULL;
	}
	wipe_token(&token);
	wipe_token(&rejected);
	return err;
}
