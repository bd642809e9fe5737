/*
 * dsn.c - recognise Delivery Status Notifications and attribute them to a
 * probe token. See dsn.h.
 *
 * Follows RFC 5322 (header fields, folding), RFC 2045/2046 (MIME entities,
 * multipart boundaries, base64 and quoted-printable), RFC 6522
 * (multipart/report), RFC 3464 (message/delivery-status: one per-message
 * field group, then per-recipient groups separated by blank lines) and
 * RFC 6533 (message/global-delivery-status).
 *
 * Decisions:
 * - A multipart/report with report-type=delivery-status and a delivery
 *   status part is a DSN; the token must appear in a returned part
 *   (text/rfc822-headers, message/rfc822, message/global[-headers]) or in
 *   the status part itself (Original-Envelope-Id). A token that only shows
 *   in the human-readable text of a report does not count.
 * - Anything else is a DSN only when it looks like a bounce: From is
 *   MAILER-DAEMON / postmaster / "Mail Delivery ..." or the Subject is a
 *   known bounce subject ("Undeliverable:", "Delivery Status Notification",
 *   "failure notice", ...). Then the token may be anywhere in the
 *   (decoded) body, and the status is the first 5.x.x (else 4.x.x) code
 *   in its text.
 * - A normal mail that carries the token (the probe itself, a forward, a
 *   vacation reply "Automatic reply: ...") is not a DSN: 0.
 * - Other reports (disposition-notification MDNs, ARF feedback) are not
 *   DSNs.
 *
 * Bounds: MIME nesting depth DSN_DEPTH_MAX, at most DSN_PARTS_MAX entities,
 * header values capped, text collected for scanning capped at
 * DSN_TEXT_MAX. Malformed input never makes it fail: missing boundaries,
 * truncation, bad base64 are read as far as they go.
 */
#include <config.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/hfield.h"
#include "common/util.h"
#include "prober/dsn.h"
#include "prober/smtp.h"

#define DSN_DEPTH_MAX 8
#define DSN_PARTS_MAX 256
#define DSN_TEXT_MAX (1024 * 1024)
#define HVAL_MAX 1024

const char *dsn_action_name(int action)
{
	switch (action) {
	case DSN_ACTION_FAILED: return "failed";
	case DSN_ACTION_DELAYED: return "delayed";
	case DSN_ACTION_DELIVERED: return "delivered";
	case DSN_ACTION_RELAYED: return "relayed";
	case DSN_ACTION_EXPANDED: return "expanded";
	default: return "none";
	}
}

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

/* Case-insensitive compare of n bytes (NULs allowed). */
static int eq_ci(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* Case-insensitive bounded search (NULs allowed); NULL when absent. */
static const char *find_ci(const char *h, size_t hn, const char *n, size_t nn)
{
	if (nn == 0 || nn > hn)
		return NULL;
	for (size_t i = 0; i + nn <= hn; i++)
		if (tolower((unsigned char)h[i]) == tolower((unsigned char)n[0]) &&
		    eq_ci(h + i, n, nn))
			return h + i;
	return NULL;
}

/* Collapse whitespace runs (folding, tabs, CR/LF) to one space, trim, and
 * replace other control characters. In place. */
static void squash(char *s)
{
	char *w = s;
	int sp = 1;
	for (char *r = s; *r; r++) {
		unsigned char c = (unsigned char)*r;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (!sp)
				*w++ = ' ';
			sp = 1;
		} else {
			*w++ = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
			sp = 0;
		}
	}
	if (w > s && w[-1] == ' ')
		w--;
	*w = '\0';
}

/* Split an entity into header and body. The header ends at the first empty
 * line; an entity without one is all header when it starts like a header
 * field, else all body. */
static void split_entity(const char *p, size_t n, const char **hdr, size_t *hn,
                         const char **body, size_t *bn)
{
	size_t i = 0;

	/* a part that starts with an empty line has no header fields */
	if (n >= 1 && p[0] == '\n') {
		*hdr = p; *hn = 0; *body = p + 1; *bn = n - 1;
		return;
	}
	if (n >= 2 && p[0] == '\r' && p[1] == '\n') {
		*hdr = p; *hn = 0; *body = p + 2; *bn = n - 2;
		return;
	}
	while (i < n) {
		const char *nl = memchr(p + i, '\n', n - i);
		size_t e;
		if (!nl)
			break;
		e = (size_t)(nl - p) + 1;
		if (e < n && p[e] == '\n') {
			*hdr = p; *hn = e; *body = p + e + 1; *bn = n - e - 1;
			return;
		}
		if (e + 1 < n && p[e] == '\r' && p[e + 1] == '\n') {
			*hdr = p; *hn = e; *body = p + e + 2; *bn = n - e - 2;
			return;
		}
		i = e;
	}
	*hdr = p; *hn = n; *body = p + n; *bn = 0;
}

/*
 * Find header field `name` (case-insensitive) in a header block and copy
 * its unfolded value (whitespace squashed) into out. Returns 1 when found.
 * With group semantics the same function reads RFC 3464 field groups.
 */
static int get_field(const char *h, size_t hn, const char *name, char *out, size_t outsz)
{
	char *v = rfc5322_field(h, hn, name, outsz - 1);

	out[0] = '\0';
	if (v == NULL)
		return 0;
	xstrlcpy(out, v, outsz);
	free(v);
	squash(out);
	return 1;
}

/* Content-Type: "type/subtype" lowercased into ct, and parameter `param`
 * (case-insensitive, quoted or not) into pv. Defaults to text/plain. */
static void parse_ctype(const char *v, char *ct, size_t ctsz, const char *param,
                        char *pv, size_t pvsz)
{
	size_t o = 0;
	const char *p = v;

	if (pv)
		pv[0] = '\0';
	while (*p == ' ')
		p++;
	while (*p && *p != ';' && *p != ' ' && o + 1 < ctsz)
		ct[o++] = (char)tolower((unsigned char)*p++);
	ct[o] = '\0';
	if (!ct[0] || !strchr(ct, '/'))
		xstrlcpy(ct, "text/plain", ctsz);
	if (!param || !pv)
		return;
	while ((p = strchr(p, ';')) != NULL) {
		size_t pl = strlen(param);
		p++;
		while (*p == ' ')
			p++;
		if (strncasecmp(p, param, pl) == 0) {
			const char *q = p + pl;
			while (*q == ' ')
				q++;
			if (*q != '=')
				continue;
			q++;
			while (*q == ' ')
				q++;
			o = 0;
			if (*q == '"') {
				q++;
				while (*q && *q != '"' && o + 1 < pvsz) {
					if (*q == '\\' && q[1])
						q++;
					pv[o++] = *q++;
				}
			} else {
				while (*q && *q != ';' && *q != ' ' && o + 1 < pvsz)
					pv[o++] = *q++;
			}
			pv[o] = '\0';
			return;
		}
	}
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

/* Decode base64 (RFC 2045 §6.8), skipping characters outside the alphabet.
 * Heap result (NUL-terminated), length in *on. */
static char *decode_b64(const char *s, size_t n, size_t *on)
{
	char *out = xmalloc(n / 4 * 3 + 4);
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		int v;
		if (s[i] == '=')
			break;
		v = b64val((unsigned char)s[i]);
		if (v < 0)
			continue;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	*on = o;
	return out;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	return -1;
}

/* Decode quoted-printable (RFC 2045 §6.7). Heap result, length in *on. */
static char *decode_qp(const char *s, size_t n, size_t *on)
{
	char *out = xmalloc(n + 1);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '=') {
			out[o++] = s[i];
			continue;
		}
		if (i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
		    hexval((unsigned char)s[i + 2]) >= 0) {
			out[o++] = (char)(hexval((unsigned char)s[i + 1]) * 16 +
			                  hexval((unsigned char)s[i + 2]));
			i += 2;
			continue;
		}
		/* soft line break: "=" then optional blanks then (CR)LF */
		{
			size_t j = i + 1;
			while (j < n && (s[j] == ' ' || s[j] == '\t'))
				j++;
			if (j < n && s[j] == '\r')
				j++;
			if (j < n && s[j] == '\n') {
				i = j;
				continue;
			}
			if (j >= n) {
				i = n;
				continue;
			}
		}
		out[o++] = '=';
	}
	out[o] = '\0';
	*on = o;
	return out;
}

/* ------------------------------------------------------------------ */
/* MIME walk                                                            */

struct walk {
	const char *const *tokens;
	size_t ntokens;
	int nparts;
	int is_report;             /* multipart/report; report-type=delivery-status */
	int have_status;           /* a message/delivery-status part was read */
	long tok_returned;         /* token index in a returned part or status part */
	long tok_any;              /* token index anywhere in a decoded leaf */
	struct dsn_info best;
	int best_rank;
	struct strbuf text;        /* decoded text leaves, capped, for plain bounces */
};

static long find_token(const struct walk *w, const char *p, size_t n)
{
	for (size_t i = 0; i < w->ntokens; i++) {
		size_t tl;
		if (!w->tokens[i])
			continue;
		tl = strlen(w->tokens[i]);
		if (tl >= 8 && find_ci(p, n, w->tokens[i], tl))
			return (long)i;
	}
	return -1;
}

static int parse_action(const char *v)
{
	static const struct { const char *name; int a; } acts[] = {
		{ "failed", DSN_ACTION_FAILED }, { "delayed", DSN_ACTION_DELAYED },
		{ "delivered", DSN_ACTION_DELIVERED }, { "relayed", DSN_ACTION_RELAYED },
		{ "expanded", DSN_ACTION_EXPANDED },
	};
	for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++) {
		size_t l = strlen(acts[i].name);
		if (strncasecmp(v, acts[i].name, l) == 0 && !isalpha((unsigned char)v[l]))
			return acts[i].a;
	}
	return DSN_ACTION_NONE;
}

static int action_rank(int a)
{
	switch (a) {
	case DSN_ACTION_FAILED: return 3;
	case DSN_ACTION_DELAYED: return 2;
	case DSN_ACTION_NONE: return 0;
	default: return 1;
	}
}

/* "dns; mx.example.test" -> "mx.example.test" (RFC 3464 type prefix). */
static void strip_type(const char *v, char *out, size_t outsz)
{
	const char *semi = strchr(v, ';');
	const char *p = v;

	if (semi) {
		int is_type = semi > v;
		for (const char *q = v; q < semi; q++)
			if (!isalnum((unsigned char)*q) && *q != '-' && *q != '.' && *q != ' ')
				is_type = 0;
		if (is_type)
			p = semi + 1;
	}
	while (*p == ' ')
		p++;
	xstrlcpy(out, p, outsz);
}

/* One RFC 3464 per-recipient group. */
static void read_group(struct walk *w, const char *g, size_t gn)
{
	char v[HVAL_MAX];
	struct dsn_info info;
	int rank;

	memset(&info, 0, sizeof(info));
	if (get_field(g, gn, "Action", v, sizeof(v)))
		info.action = parse_action(v);
	if (get_field(g, gn, "Status", v, sizeof(v)))
		smtp_parse_enhanced(v, info.status);
	if (get_field(g, gn, "Remote-MTA", v, sizeof(v)))
		strip_type(v, info.remote_mta, sizeof(info.remote_mta));
	if (get_field(g, gn, "Diagnostic-Code", v, sizeof(v)))
		strip_type(v, info.diagnostic, sizeof(info.diagnostic));
	if (info.action == DSN_ACTION_NONE && !info.status[0])
		return;   /* the per-message group, or noise */
	if (info.action == DSN_ACTION_NONE)
		info.action = info.status[0] == '5' ? DSN_ACTION_FAILED :
		              info.status[0] == '4' ? DSN_ACTION_DELAYED : DSN_ACTION_DELIVERED;
	info.present = 1;
	rank = action_rank(info.action);
	if (rank > w->best_rank) {
		w->best = info;
		w->best_rank = rank;
	}
}

/* message/delivery-status body: groups separated by empty lines. */
static void read_status(struct walk *w, const char *p, size_t n)
{
	size_t i = 0, start = 0;

	w->have_status = 1;
	while (i <= n) {
		const char *eol = i < n ? memchr(p + i, '\n', n - i) : NULL;
		size_t ll = eol ? (size_t)(eol - (p + i)) : n - i;
		int blank = ll == 0 || (ll == 1 && p[i] == '\r');
		size_t next = i + ll + 1;

		if (blank || !eol) {
			size_t end = blank ? i : n;
			if (end > start)
				read_group(w, p + start, end - start);
			start = next;
		}
		if (!eol)
			break;
		i = next;
	}
}

static void walk_entity(struct walk *w, const char *p, size_t n, int depth);

/* After "--boundary": "--", then only linear white space (RFC 2046 §5.1.1);
 * anything else means a longer boundary that merely starts the same. */
static int is_delim_end(const char *q, size_t n)
{
	size_t k = 0;
	if (n >= 2 && q[0] == '-' && q[1] == '-')
		k = 2;
	for (; k < n; k++)
		if (q[k] != ' ' && q[k] != '\t' && q[k] != '\r')
			return 0;
	return 1;
}

static void walk_multipart(struct walk *w, const char *p, size_t n, const char *boundary,
                           int depth)
{
	size_t bl = strlen(boundary), i = 0;
	const char *part = NULL;
	char delim[80];

	if (bl == 0 || bl > 70)
		return;
	delim[0] = '-';
	delim[1] = '-';
	memcpy(delim + 2, boundary, bl);
	bl += 2;
	while (i < n) {
		const char *eol = memchr(p + i, '\n', n - i);
		size_t ll = eol ? (size_t)(eol - (p + i)) : n - i;
		size_t next = i + ll + (eol ? 1 : 0);

		if (ll >= bl && memcmp(p + i, delim, bl) == 0 && is_delim_end(p + i + bl, ll - bl)) {
			int close = ll >= bl + 2 && p[i + bl] == '-' && p[i + bl + 1] == '-';
			if (part) {
				/* the CRLF before the delimiter belongs to it */
				size_t end = i;
				if (end > (size_t)(part - p) && p[end - 1] == '\n')
					end--;
				if (end > (size_t)(part - p) && p[end - 1] == '\r')
					end--;
				walk_entity(w, part, (size_t)(p + end - part), depth + 1);
			}
			if (close)
				return;
			part = p + next;
		}
		i = next;
	}
	if (part && part < p + n)   /* truncated: no close delimiter */
		walk_entity(w, part, (size_t)(p + n - part), depth + 1);
}

static int is_returned_type(const char *ct)
{
	return strcmp(ct, "text/rfc822-headers") == 0 || strcmp(ct, "message/rfc822") == 0 ||
	       strcmp(ct, "message/global") == 0 || strcmp(ct, "message/global-headers") == 0 ||
	       strcmp(ct, "message/partial") == 0;
}

static void walk_entity(struct walk *w, const char *p, size_t n, int depth)
{
	const char *hdr, *body;
	size_t hn, bn, dn;
	char v[HVAL_MAX], ct[128], param[128], cte[64];
	char *dec = NULL;
	const char *data;

	if (depth > DSN_DEPTH_MAX || ++w->nparts > DSN_PARTS_MAX)
		return;
	split_entity(p, n, &hdr, &hn, &body, &bn);
	if (!get_field(hdr, hn, "Content-Type", v, sizeof(v)))
		v[0] = '\0';
	parse_ctype(v, ct, sizeof(ct), "boundary", param, sizeof(param));

	if (strncmp(ct, "multipart/", 10) == 0) {
		if (strcmp(ct, "multipart/report") == 0) {
			char rt[64];
			parse_ctype(v, ct, sizeof(ct), "report-type", rt, sizeof(rt));
			if (strcasecmp(rt, "delivery-status") == 0 ||
			    strcasecmp(rt, "global-delivery-status") == 0)
				w->is_report = 1;
		}
		if (param[0]) {
			walk_multipart(w, body, bn, param, depth);
			return;
		}
		/* no boundary: read it as text below */
	}

	get_field(hdr, hn, "Content-Transfer-Encoding", cte, sizeof(cte));
	if (strncasecmp(cte, "base64", 6) == 0) {
		dec = decode_b64(body, bn, &dn);
		data = dec;
	} else if (strncasecmp(cte, "quoted-printable", 16) == 0) {
		dec = decode_qp(body, bn, &dn);
		data = dec;
	} else {
		data = body;
		dn = bn;
	}

	if (strcmp(ct, "message/delivery-status") == 0 ||
	    strcmp(ct, "message/global-delivery-status") == 0) {
		long t;
		read_status(w, data, dn);
		t = find_token(w, data, dn);   /* Original-Envelope-Id */
		if (t >= 0 && w->tok_returned < 0)
			w->tok_returned = t;
	} else if (is_returned_type(ct)) {
		long t = find_token(w, data, dn);
		if (t >= 0 && w->tok_returned < 0)
			w->tok_returned = t;
		if (t >= 0 && w->tok_any < 0)
			w->tok_any = t;
		/* a returned message is not read for status text: its own body is
		 * the probe, not the bounce */
	} else {
		long t = find_token(w, data, dn);
		if (t >= 0 && w->tok_any < 0)
			w->tok_any = t;
		if (strncmp(ct, "text/", 5) == 0 && w->text.len < DSN_TEXT_MAX) {
			size_t k = dn;
			if (k > DSN_TEXT_MAX - w->text.len)
				k = DSN_TEXT_MAX - w->text.len;
			strbuf_add(&w->text, data, k);
			strbuf_add(&w->text, "\n", 1);
		}
	}
	free(dec);
}

/* ------------------------------------------------------------------ */
/* plain-text bounces                                                   */

static int looks_like_bounce(const char *hdr, size_t hn)
{
	static const char *const subjects[] = {
		"delivery status notification", "undeliverable", "undelivered mail",
		"mail delivery failed", "delivery failure", "failure notice",
		"returned mail", "delivery has failed", "could not be delivered",
		"delayed mail", "delivery delayed", "non-delivery", "nondeliverable",
		"warning: could not send message", "delivery notification",
		"mail delivery system", "undelivered message",
	};
	static const char *const senders[] = {
		"mailer-daemon", "postmaster@", "mail delivery subsystem",
		"mail delivery system", "microsoftexchange",
	};
	char v[HVAL_MAX];

	if (get_field(hdr, hn, "Subject", v, sizeof(v)))
		for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++)
			if (find_ci(v, strlen(v), subjects[i], strlen(subjects[i])))
				return 1;
	if (get_field(hdr, hn, "From", v, sizeof(v)))
		for (size_t i = 0; i < sizeof(senders) / sizeof(senders[0]); i++)
			if (find_ci(v, strlen(v), senders[i], strlen(senders[i])))
				return 1;
	return 0;
}

/* The line of text around position at, squashed, into out. */
static void line_around(const char *t, size_t tn, size_t at, char *out, size_t outsz)
{
	size_t s = at, e = at, k;

	while (s > 0 && t[s - 1] != '\n')
		s--;
	while (e < tn && t[e] != '\n')
		e++;
	k = e - s;
	if (k >= outsz)
		k = outsz - 1;
	memcpy(out, t + s, k);
	out[k] = '\0';
	squash(out);
}

/* Scan free text for a status: the first 5.x.x code, else 4.x.x, else a
 * basic 5yz / 4yz reply code at a word start followed by a space. */
static void scan_text(const char *t, size_t tn, struct dsn_info *info)
{
	long pos[2] = { -1, -1 };     /* first class 5, first class 4 */
	char code[2][ENHANCED_MAX] = { "", "" };
	long bpos[2] = { -1, -1 };

	for (size_t i = 0; i + 5 <= tn; i++) {
		char c = t[i];
		int left_ok = i == 0 || !(isalnum((unsigned char)t[i - 1]) || t[i - 1] == '.');
		if ((c != '5' && c != '4') || !left_ok)
			continue;
		if (t[i + 1] == '.') {
			char buf[16], e[ENHANCED_MAX];
			size_t k = tn - i < sizeof(buf) - 1 ? tn - i : sizeof(buf) - 1;
			memcpy(buf, t + i, k);
			buf[k] = '\0';
			for (size_t j = 0; j < k; j++)
				if (buf[j] == '\0')
					buf[j] = ' ';
			/* allow trailing punctuation: "5.1.1," or "5.1.1)" */
			for (size_t j = 2; j < k; j++)
				if (!isdigit((unsigned char)buf[j]) && buf[j] != '.') {
					buf[j] = ' ';
					break;
				}
			if (smtp_parse_enhanced(buf, e)) {
				int cls = c == '5' ? 0 : 1;
				if (pos[cls] < 0) {
					pos[cls] = (long)i;
					memcpy(code[cls], e, sizeof(e));
				}
			}
		} else if (isdigit((unsigned char)t[i + 1]) && isdigit((unsigned char)t[i + 2]) &&
		           (t[i + 3] == ' ' || t[i + 3] == '-') && t[i + 1] <= '5') {
			int cls = c == '5' ? 0 : 1;
			if (bpos[cls] < 0)
				bpos[cls] = (long)i;
		}
	}
	if (pos[0] >= 0 || pos[1] >= 0) {
		int cls = pos[0] >= 0 ? 0 : 1;
		memcpy(info->status, code[cls], ENHANCED_MAX);
		line_around(t, tn, (size_t)pos[cls], info->diagnostic, sizeof(info->diagnostic));
	} else if (bpos[0] >= 0 || bpos[1] >= 0) {
		int cls = bpos[0] >= 0 ? 0 : 1;
		xstrlcpy(info->status, cls == 0 ? "5.0.0" : "4.0.0", ENHANCED_MAX);
		line_around(t, tn, (size_t)bpos[cls], info->diagnostic, sizeof(info->diagnostic));
	}
	if (info->status[0] == '5')
		info->action = DSN_ACTION_FAILED;
	else if (info->status[0] == '4')
		info->action = DSN_ACTION_DELAYED;
	else if (find_ci(t, tn, "delayed", 7) || find_ci(t, tn, "will retry", 10) ||
	         find_ci(t, tn, "still trying", 12) || find_ci(t, tn, "will keep trying", 16))
		info->action = DSN_ACTION_DELAYED;
	else
		info->action = DSN_ACTION_FAILED;
}

int dsn_match(const char *msg, size_t len, const char *const *tokens, size_t ntokens,
              size_t *token_index, struct dsn_info *info)
{
	struct walk w;
	const char *hdr, *body;
	size_t hn, bn;
	int ret = 0;

	if (info)
		memset(info, 0, sizeof(*info));
	if (!msg || len == 0 || !tokens || ntokens == 0)
		return 0;
	memset(&w, 0, sizeof(w));
	w.tokens = tokens;
	w.ntokens = ntokens;
	w.tok_returned = -1;
	w.tok_any = -1;

	walk_entity(&w, msg, len, 0);

	if (w.is_report && w.have_status) {
		if (w.tok_returned < 0)
			goto out;
		if (token_index)
			*token_index = (size_t)w.tok_returned;
		if (info) {
			if (w.best_rank > 0) {
				*info = w.best;
			} else {
				/* a report whose status part had no recipient group */
				scan_text(w.text.buf ? w.text.buf : "", w.text.len, info);
			}
			info->present = 1;
		}
		ret = 1;
		goto out;
	}

	split_entity(msg, len, &hdr, &hn, &body, &bn);
	if (!looks_like_bounce(hdr, hn))
		goto out;
	if (w.tok_any < 0)
		w.tok_any = find_token(&w, body, bn);   /* undecodable parts: raw body */
	if (w.tok_any < 0)
		goto out;
	if (token_index)
		*token_index = (size_t)w.tok_any;
	if (info) {
		if (w.best_rank > 0)
			*info = w.best;   /* a delivery-status part outside a report */
		else
			scan_text(w.text.buf ? w.text.buf : "", w.text.len, info);
		info->present = 1;
	}
	ret = 1;
out:
	strbuf_free(&w.text);
	return ret;
}
