/*
 * message.c - probe tokens and probe messages (docs/SPEC.md "Probe message").
 * RFC 5322 (message format, Date, folding), RFC 2047 (encoded words),
 * RFC 2104/4231 (HMAC-SHA256).
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/hfield.h"
#include "common/util.h"
#include "prober/message.h"

#define LINE_MAX_OCTETS 998   /* RFC 5322 2.1.1, without CRLF */
#define LINE_SOFT 78          /* RFC 5322 2.1.1 SHOULD */
#define EW_MAX 75             /* RFC 2047 2: an encoded-word is at most 75 characters */

static const char hexdig[] = "0123456789abcdef";

static void to_hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[in[i] >> 4];
		out[2 * i + 1] = hexdig[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ------------------------------------------------------------------ */
/* Tokens                                                              */

int token_hmac_hex(const unsigned char *key, size_t keylen, const char *random_hex,
                   const char *seed_address, char out[TOKEN_HMAC_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t rl = strlen(random_hex), al = strlen(seed_address);
	unsigned char *data = xmalloc(rl + al + 1);
	memcpy(data, random_hex, rl);
	memcpy(data + rl, seed_address, al);
	static const unsigned char empty_key[1] = { 0 };
	unsigned char *r = HMAC(EVP_sha256(), key ? key : empty_key, (int)keylen, data, rl + al,
	                        md, &mdlen);
	free(data);
	if (r == NULL || mdlen < TOKEN_HMAC_HEX / 2) {
		out[0] = '\0';
		return -1;
	}
	to_hex(md, TOKEN_HMAC_HEX / 2, out);
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

int token_generate(const unsigned char *key, size_t keylen, const char *seed_address,
                   char out[TOKEN_MAX], char **errstr)
{
	unsigned char rnd[TOKEN_RANDOM_HEX / 2];
	out[0] = '\0';
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		*errstr = xstrdup("the random source (RAND_bytes) failed");
		return -1;
	}
	to_hex(rnd, sizeof(rnd), out);
	if (key != NULL && keylen > 0) {
		char h[TOKEN_HMAC_HEX + 1];
		if (token_hmac_hex(key, keylen, out, seed_address ? seed_address : "", h) != 0) {
			out[0] = '\0';
			*errstr = xstrdup("HMAC-SHA256 failed");
			return -1;
		}
		memcpy(out + TOKEN_RANDOM_HEX, h, TOKEN_HMAC_HEX + 1);
	}
	return 0;
}

int token_verify(const unsigned char *key, size_t keylen, const char *seed_address,
                 const char *token)
{
	if (token == NULL)
		return 0;
	size_t n = strnlen(token, TOKEN_MAX);
	if (n != TOKEN_RANDOM_HEX && n != TOKEN_RANDOM_HEX + TOKEN_HMAC_HEX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((token[i] >= '0' && token[i] <= '9') || (token[i] >= 'a' && token[i] <= 'f')))
			return 0;
	if (key == NULL || keylen == 0)
		return 1;
	if (n != TOKEN_RANDOM_HEX + TOKEN_HMAC_HEX || seed_address == NULL)
		return 0;
	char rnd[TOKEN_RANDOM_HEX + 1], h[TOKEN_HMAC_HEX + 1];
	memcpy(rnd, token, TOKEN_RANDOM_HEX);
	rnd[TOKEN_RANDOM_HEX] = '\0';
	if (token_hmac_hex(key, keylen, rnd, seed_address, h) != 0)
		return 0;
	return CRYPTO_memcmp(h, token + TOKEN_RANDOM_HEX, TOKEN_HMAC_HEX) == 0;
}

/* ------------------------------------------------------------------ */
/* Dates                                                               */

/* floor(t) as time_t without libm; NaN and out-of-range values give 0 */
static time_t floor_time(double t)
{
	if (!(t > -1e15 && t < 1e15))
		return 0;
	time_t tt = (time_t)t;
	if ((double)tt > t)
		tt--;
	return tt;
}

static const char *const wdays[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

void rfc5322_date(double t, char *out, size_t outsz)
{
	time_t tt = floor_time(t);
	struct tm tm;
	if (outsz == 0)
		return;
	if (localtime_r(&tt, &tm) == NULL) {
		/* out of range: fall back to the epoch rather than garbage */
		tt = 0;
		gmtime_r(&tt, &tm);
		tm.tm_gmtoff = 0;
	}
	long off = tm.tm_gmtoff / 60;
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	snprintf(out, outsz, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld",
	         wdays[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
	         tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 60, off % 60);
}

/* ISO 8601 UTC, e.g. "2026-11-29T13:10:49Z". */
static void iso8601_utc(double t, char *out, size_t outsz)
{
	time_t tt = floor_time(t);
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL) {
		tt = 0;
		gmtime_r(&tt, &tm);
	}
	snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ------------------------------------------------------------------ */
/* RFC 2047                                                            */

static int has_non_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/*
 * Append s as "B" encoded-words: the first at most first_max characters,
 * the others at most EW_MAX, joined by sep. UTF-8 sequences are never split.
 */
static void ew_append(struct strbuf *sb, const char *s, size_t first_max, const char *sep)
{
	static const char pre[] = "=?UTF-8?B?";
	size_t n = strlen(s), i = 0;
	size_t max = first_max;
	int first = 1;
	while (i < n) {
		/* payload bytes that fit: 4 base64 chars per 3 bytes, 12 chars overhead */
		size_t cap = max > 12 ? (max - 12) / 4 * 3 : 0;
		if (cap < 3)
			cap = 3;
		/* whole characters while they fit; a first character longer
		 * than cap is taken whole (at most 4 bytes); an invalid byte
		 * counts as a character of its own */
		size_t take = 0;
		while (i + take < n) {
			size_t l = utf8_decode((const unsigned char *)s + i + take, n - i - take, NULL);
			if (l == 0)
				l = 1;
			if (take > 0 && take + l > cap)
				break;
			take += l;
		}
		/* take <= max(cap, 4) <= 45 bytes: at most 60 base64 characters */
		unsigned char b64[128];
		int bl = EVP_EncodeBlock(b64, (const unsigned char *)s + i, (int)take);
		if (!first)
			strbuf_adds(sb, sep);
		strbuf_adds(sb, pre);
		strbuf_add(sb, b64, (size_t)bl);
		strbuf_adds(sb, "?=");
		i += take;
		first = 0;
		max = EW_MAX;
	}
}

char *rfc2047_encode(const char *utf8)
{
	if (utf8 == NULL)
		return xstrdup("");
	if (!has_non_ascii(utf8))
		return xstrdup(utf8);
	struct strbuf sb = STRBUF_INIT;
	ew_append(&sb, utf8, EW_MAX, "\r\n ");
	return strbuf_detach(&sb);
}

/* ------------------------------------------------------------------ */
/* Header folding                                                      */

/*
 * Append "Name: value" CRLF, folded at whitespace so that lines stay under
 * LINE_SOFT where possible. Leading and trailing whitespace of value is
 * dropped, inner whitespace kept. Returns -1 when a word cannot be folded
 * below LINE_MAX_OCTETS.
 */
static int add_folded(struct strbuf *sb, const char *name, const char *value)
{
	size_t col = strlen(name) + 1;
	strbuf_adds(sb, name);
	strbuf_adds(sb, ":");
	const char *p = value;
	p += strspn(p, " \t");
	int first = 1;
	while (*p) {
		size_t ws = first ? 0 : strspn(p, " \t");
		size_t wl = strcspn(p + ws, " \t");
		if (wl == 0)
			break;   /* trailing whitespace */
		if (first) {
			strbuf_adds(sb, " ");
			col++;
		} else if (col + ws + wl > LINE_SOFT) {
			strbuf_adds(sb, "\r\n");
			col = 0;
		}
		if (col + ws + wl > LINE_MAX_OCTETS)
			return -1;
		strbuf_add(sb, p, ws + wl);
		col += ws + wl;
		p += ws + wl;
		first = 0;
	}
	strbuf_adds(sb, "\r\n");
	return 0;
}

/* An unstructured header whose value may hold non-ASCII text: encoded
 * words joined by spaces, then folded like any other text. */
static int add_text_header(struct strbuf *sb, const char *name, const char *value,
                           const char *suffix)
{
	struct strbuf v = STRBUF_INIT;
	if (has_non_ascii(value)) {
		size_t used = strlen(name) + 2;
		size_t first = used + 20 <= LINE_SOFT ? LINE_SOFT - used : 20;
		if (first > EW_MAX)
			first = EW_MAX;
		const char *q = value + strspn(value, " \t");
		ew_append(&v, q, first, " ");
	} else {
		strbuf_adds(&v, value);
	}
	if (suffix != NULL) {
		strbuf_adds(&v, " ");
		strbuf_adds(&v, suffix);
	}
	int r = add_folded(sb, name, v.buf ? v.buf : "");
	strbuf_free(&v);
	return r;
}

/* ------------------------------------------------------------------ */
/* Templates                                                           */

struct field {
	const char *start;   /* "Name: value" possibly with CRLF continuation lines */
	size_t len;          /* without the final CRLF */
	size_t namelen;
	size_t lineno;       /* the template line it starts on */
};

struct tmpl {
	char *text;          /* normalised to CRLF */
	size_t len;
	struct field *fields;
	size_t nfields;
	const char *body;    /* after the blank line */
	size_t bodylen;
};

static void tmpl_free(struct tmpl *t)
{
	free(t->text);
	free(t->fields);
	memset(t, 0, sizeof(*t));
}

static int tmpl_parse(const char *in, size_t inlen, struct tmpl *t, char **errstr)
{
	memset(t, 0, sizeof(*t));
	struct strbuf sb = STRBUF_INIT;
	size_t i = 0;
	/* a UTF-8 byte order mark is not part of a message */
	if (inlen >= 3 && memcmp(in, "\xEF\xBB\xBF", 3) == 0)
		i = 3;
	for (; i < inlen; i++) {
		char ch = in[i];
		if (ch == '\0') {
			strbuf_free(&sb);
			*errstr = xstrdup("contains a NUL byte");
			return -1;
		}
		if (ch == '\r') {
			strbuf_adds(&sb, "\r\n");
			if (i + 1 < inlen && in[i + 1] == '\n')
				i++;
		} else if (ch == '\n') {
			strbuf_adds(&sb, "\r\n");
		} else {
			strbuf_add(&sb, &ch, 1);
		}
	}
	t->len = sb.len;
	t->text = strbuf_detach(&sb);

	const char *p = t->text, *end = t->text + t->len;
	size_t lineno = 0, cap = 0;
	while (1) {
		lineno++;
		if (p >= end) {
			*errstr = xasprintf("line %zu: no blank line between the header and the body", lineno);
			goto fail;
		}
		const char *eol = strstr(p, "\r\n");
		if (eol == NULL)
			eol = end;
		size_t ll = (size_t)(eol - p);
		if (ll == 0) {
			if (t->nfields == 0) {
				*errstr = xasprintf("line %zu: no header fields before the blank line", lineno);
				goto fail;
			}
			t->body = eol + 2 <= end ? eol + 2 : end;
			t->bodylen = (size_t)(end - t->body);
			break;
		}
		if (ll > LINE_MAX_OCTETS) {
			*errstr = xasprintf("line %zu: longer than %d octets", lineno, LINE_MAX_OCTETS);
			goto fail;
		}
		for (size_t k = 0; k < ll; k++) {
			unsigned char ch = (unsigned char)p[k];
			/* RFC 5322 2.2: a field body is printable US-ASCII, SP and
			 * HTAB (8-bit text is encoded per RFC 2047 below) */
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
				*errstr = xasprintf("line %zu: the header holds a control character "
				                    "(0x%02X); only the body may", lineno, ch);
				goto fail;
			}
		}
		if (*p == ' ' || *p == '\t') {
			if (t->nfields == 0) {
				*errstr = xasprintf("line %zu: continuation line before any header field", lineno);
				goto fail;
			}
			struct field *f = &t->fields[t->nfields - 1];
			f->len = (size_t)(eol - f->start);
		} else {
			const char *colon = memchr(p, ':', ll);
			size_t nl = colon ? (size_t)(colon - p) : 0;
			int ok = colon != NULL && nl > 0;
			for (size_t k = 0; ok && k < nl; k++)
				if ((unsigned char)p[k] < 33 || (unsigned char)p[k] > 126)
					ok = 0;
			if (!ok) {
				*errstr = xasprintf("line %zu: not a header field (\"Name: value\"); "
				                    "a template is a whole RFC 5322 message", lineno);
				goto fail;
			}
			if (t->nfields == cap) {
				cap = cap ? cap * 2 : 16;
				t->fields = xrealloc(t->fields, cap * sizeof(*t->fields));
			}
			struct field *f = &t->fields[t->nfields++];
			f->start = p;
			f->len = ll;
			f->namelen = nl;
			f->lineno = lineno;
		}
		p = eol + 2;
	}
	return 0;
fail:
	tmpl_free(t);
	return -1;
}

static int field_is(const struct field *f, const char *name)
{
	return strlen(name) == f->namelen && strncasecmp(f->start, name, f->namelen) == 0;
}

/* Append src[0..n) with every "{{token}}" replaced by token. */
static void add_replaced(struct strbuf *sb, const char *src, size_t n, const char *token)
{
	static const char ph[] = "{{token}}";
	const size_t pl = sizeof(ph) - 1;
	size_t i = 0;
	while (i < n) {
		const char *hit = NULL;
		for (size_t k = i; k + pl <= n; k++)
			if (src[k] == '{' && memcmp(src + k, ph, pl) == 0) {
				hit = src + k;
				break;
			}
		if (hit == NULL) {
			strbuf_add(sb, src + i, n - i);
			break;
		}
		strbuf_add(sb, src + i, (size_t)(hit - (src + i)));
		strbuf_adds(sb, token);
		i = (size_t)(hit - src) + pl;
	}
}

/* ------------------------------------------------------------------ */
/* 8-bit text in template header fields (RFC 2047)                    */

static int mem_has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

/*
 * One mailbox [s, e) of an address list whose display name may hold UTF-8:
 * `Name <addr>` or `"Name" <addr>` becomes `=?UTF-8?B?...?= <addr>`
 * (RFC 2047 5(3): encoded-words may stand for a phrase). Returns 0, or -1
 * when the non-ASCII text is anywhere else (address, comment, group).
 */
static int add_mailbox(struct strbuf *out, const char *s, const char *e, size_t first_max)
{
	trim(&s, &e);
	if (!mem_has_8bit(s, (size_t)(e - s))) {
		strbuf_add(out, s, (size_t)(e - s));
		return 0;
	}
	if (e - s < 3 || e[-1] != '>')
		return -1;
	/* the '<' of the angle address: the last one outside quotes */
	const char *lt = NULL;
	int q = 0;
	for (const char *p = s; p < e; p++) {
		if (q && *p == '\\' && p + 1 < e) {
			p++;
			continue;
		}
		if (*p == '"')
			q = !q;
		else if (!q && (*p == '(' || *p == ':' || *p == ';'))
			return -1;   /* comments and groups are not rewritten */
		else if (!q && *p == '<')
			lt = p;
	}
	if (q || lt == NULL || mem_has_8bit(lt, (size_t)(e - lt)) || memchr(lt + 1, '<', (size_t)(e - lt - 1)))
		return -1;
	const char *ds = s, *de = lt;
	trim(&ds, &de);
	struct strbuf name = STRBUF_INIT;
	if (de - ds >= 2 && *ds == '"' && de[-1] == '"') {
		for (const char *p = ds + 1; p < de - 1; p++) {
			if (*p == '"')
				goto bad;   /* several quoted strings: not rewritten */
			if (*p == '\\' && p + 1 < de - 1)
				p++;
			strbuf_add(&name, p, 1);
		}
	} else {
		if (memchr(ds, '"', (size_t)(de - ds)) != NULL)
			goto bad;
		strbuf_add(&name, ds, (size_t)(de - ds));
	}
	if (name.len == 0)
		goto bad;
	ew_append(out, name.buf, first_max, " ");
	strbuf_adds(out, " ");
	strbuf_add(out, lt, (size_t)(e - lt));
	strbuf_free(&name);
	return 0;
bad:
	strbuf_free(&name);
	return -1;
}

/* An address list (From, Sender, Reply-To, Cc, Bcc) with UTF-8 display
 * names encoded. Returns 0, or -1 (see add_mailbox). */
static int encode_address_list(struct strbuf *out, const char *v, size_t first_max)
{
	const char *s = v;
	int q = 0, angle = 0, comment = 0, n = 0;
	for (const char *p = v;; p++) {
		if (*p == '\0' || (*p == ',' && !q && !angle && !comment)) {
			if (n++ > 0)
				strbuf_adds(out, ", ");
			if (add_mailbox(out, s, p, n == 1 ? first_max : EW_MAX) != 0)
				return -1;
			if (*p == '\0')
				break;
			s = p + 1;
			continue;
		}
		if ((q || comment) && *p == '\\' && p[1] != '\0')
			p++;
		else if (!comment && *p == '"')
			q = !q;
		else if (!q && *p == '(')
			comment++;
		else if (!q && comment && *p == ')')
			comment--;
		else if (!q && !comment && *p == '<')
			angle = 1;
		else if (!q && !comment && *p == '>')
			angle = 0;
	}
	return 0;
}

/*
 * Append template field f whose value holds 8-bit bytes, RFC 2047-encoded:
 * Subject and Comments whole (Subject after {{token}} replacement), the
 * display names of address fields. Anything else is refused: -1 with
 * *errstr naming the template line.
 */
static int add_8bit_field(struct strbuf *sb, const struct field *f, const char *token, char **errstr)
{
	const char *v = f->start + f->namelen + 1;
	size_t vn = f->len - f->namelen - 1;
	char *name = xstrndup(f->start, f->namelen);
	char *val = NULL;
	int r = -1;
	if (!utf8_valid(v, vn)) {
		*errstr = xasprintf("line %zu: the %s field holds 8-bit bytes that are not UTF-8; "
		                    "encode it per RFC 2047 (=?charset?B?...?=) in the template",
		                    f->lineno, name);
		goto out;
	}
	val = rfc5322_unfold(v, vn, 0);
	size_t used = f->namelen + 2;
	size_t first = used + 20 <= LINE_SOFT ? LINE_SOFT - used : 20;
	if (first > EW_MAX)
		first = EW_MAX;
	if (field_is(f, "Subject") || field_is(f, "Comments")) {
		struct strbuf rv = STRBUF_INIT;
		if (field_is(f, "Subject"))
			add_replaced(&rv, val, strlen(val), token);
		else
			strbuf_adds(&rv, val);
		r = add_text_header(sb, name, rv.buf ? rv.buf : "", NULL);
		strbuf_free(&rv);
		if (r != 0)
			*errstr = xasprintf("line %zu: the %s field has a word too long to fold", f->lineno, name);
	} else if (field_is(f, "From") || field_is(f, "Sender") || field_is(f, "Reply-To") ||
	           field_is(f, "Cc") || field_is(f, "Bcc")) {
		struct strbuf ev = STRBUF_INIT;
		r = encode_address_list(&ev, val, first);
		if (r != 0)
			*errstr = xasprintf("line %zu: the %s field has non-ASCII text outside a display "
			                    "name (\"Name\" <address>); encode it per RFC 2047 in the "
			                    "template (internationalised addresses are not supported)",
			                    f->lineno, name);
		else if ((r = add_folded(sb, name, ev.buf ? ev.buf : "")) != 0)
			*errstr = xasprintf("line %zu: the %s field has a word too long to fold", f->lineno, name);
		strbuf_free(&ev);
	} else {
		*errstr = xasprintf("line %zu: the %s field holds raw non-ASCII (8-bit) text; only "
		                    "Subject, Comments and the display names of From, Sender, Reply-To "
		                    "and Cc are encoded for you: encode it per RFC 2047 "
		                    "(=?UTF-8?B?...?=) in the template", f->lineno, name);
	}
out:
	free(name);
	free(val);
	return r;
}

/* ------------------------------------------------------------------ */
/* Building                                                            */

static char *from_domain(const char *from)
{
	const char *at = from ? strrchr(from, '@') : NULL;
	if (at == NULL || at[1] == '\0')
		return xstrdup("inboxprobe.invalid");
	size_t n = strcspn(at + 1, "> \t\r\n");
	if (n == 0)
		return xstrdup("inboxprobe.invalid");
	return xstrndup(at + 1, n);
}

static int add_extra_headers(struct strbuf *sb, const struct message_params *p, char **errstr)
{
	for (size_t i = 0; p->headers != NULL && i < p->nheaders; i++) {
		const char *h = p->headers[i];
		const char *colon = h ? strchr(h, ':') : NULL;
		if (colon == NULL || colon == h || strpbrk(h, "\r\n") != NULL) {
			*errstr = xasprintf("extra header %zu is not \"Name: value\"", i + 1);
			return -1;
		}
		char *name = xstrndup(h, (size_t)(colon - h));
		int r = add_text_header(sb, name, colon + 1, NULL);
		if (r != 0)
			*errstr = xasprintf("extra header %s has a word too long to fold", name);
		free(name);
		if (r != 0)
			return -1;
	}
	return 0;
}

/* Every line ends in CRLF, no bare CR or LF, none over 998 octets. */
static int check_lines(const char *m, size_t len, char **errstr)
{
	size_t col = 0, lineno = 1;
	for (size_t i = 0; i < len; i++) {
		if (m[i] == '\r' && i + 1 < len && m[i + 1] == '\n') {
			i++;
			col = 0;
			lineno++;
			continue;
		}
		if (m[i] == '\r' || m[i] == '\n') {
			*errstr = xasprintf("message line %zu: bare CR or LF", lineno);
			return -1;
		}
		if (++col > LINE_MAX_OCTETS) {
			*errstr = xasprintf("message line %zu: longer than %d octets (after {{token}} "
			                    "replacement)", lineno, LINE_MAX_OCTETS);
			return -1;
		}
	}
	return 0;
}

char *message_build(const struct message_params *p, size_t *len, char **errstr)
{
	struct strbuf sb = STRBUF_INIT;
	struct tmpl t = { 0 };
	char *domain = NULL, *out = NULL;
	char date[64], iso[40];
	const char *prefix = p->subject_prefix ? p->subject_prefix : "inboxprobe";

	*len = 0;
	if (p->token == NULL || p->from == NULL || p->to == NULL) {
		*errstr = xstrdup("message_build: from, to and token are required");
		return NULL;
	}
	if (strpbrk(p->from, "\r\n") || strpbrk(p->to, "\r\n") || strpbrk(p->token, "\r\n \t") ||
	    strpbrk(prefix, "\r\n")) {
		/* would inject header lines */
		*errstr = xstrdup("message_build: line break in from, to, token or subject prefix");
		return NULL;
	}
	rfc5322_date(p->now, date, sizeof(date));
	iso8601_utc(p->now, iso, sizeof(iso));
	domain = from_domain(p->from);

	if (p->template_text == NULL) {
		strbuf_addf(&sb, "From: %s\r\n", p->from);
		strbuf_addf(&sb, "To: %s\r\n", p->to);
		strbuf_addf(&sb, "Date: %s\r\n", date);
		strbuf_addf(&sb, "Message-ID: <%s@%s>\r\n", p->token, domain);
		if (add_text_header(&sb, "Subject", prefix, p->token) != 0) {
			*errstr = xstrdup("subject_prefix has a word too long to fold");
			goto out;
		}
		strbuf_addf(&sb, "X-Inboxprobe-Token: %s\r\n", p->token);
		strbuf_adds(&sb, "MIME-Version: 1.0\r\n");
		strbuf_adds(&sb, "Content-Type: text/plain; charset=utf-8\r\n");
		strbuf_adds(&sb, "Content-Transfer-Encoding: 8bit\r\n");
		if (add_extra_headers(&sb, p, errstr) != 0)
			goto out;
		strbuf_adds(&sb, "\r\n");
		strbuf_adds(&sb, "This is an automated mail delivery test sent by inboxprobe.\r\n");
		strbuf_adds(&sb, "It needs no action and may be deleted.\r\n");
		strbuf_adds(&sb, "\r\n");
		strbuf_addf(&sb, "Token: %s\r\n", p->token);
		strbuf_addf(&sb, "Sent: %s\r\n", iso);
	} else {
		char *e = NULL;
		if (tmpl_parse(p->template_text, strlen(p->template_text), &t, &e) != 0) {
			*errstr = xasprintf("template: %s", e);
			free(e);
			goto out;
		}
		int has_from = 0, has_subject = 0, has_mime = 0, has_ctype = 0;
		for (size_t i = 0; i < t.nfields; i++) {
			const struct field *f = &t.fields[i];
			if (field_is(f, "To") || field_is(f, "Date") || field_is(f, "Message-ID") ||
			    field_is(f, "X-Inboxprobe-Token") || field_is(f, "Return-Path") ||
			    field_is(f, "Delivered-To") || field_is(f, "Authentication-Results"))
				continue;
			if (field_is(f, "MIME-Version"))
				has_mime = 1;
			if (field_is(f, "Content-Type"))
				has_ctype = 1;
			if (mem_has_8bit(f->start, f->len)) {
				char *e8 = NULL;
				if (field_is(f, "From"))
					has_from = 1;
				if (field_is(f, "Subject"))
					has_subject = 1;
				if (mem_has_8bit(f->start, f->namelen) || add_8bit_field(&sb, f, p->token, &e8) != 0) {
					*errstr = xasprintf("template: %s", e8 ? e8 : "8-bit byte in a field name");
					free(e8);
					goto out;
				}
				continue;
			}
			if (field_is(f, "Subject")) {
				has_subject = 1;
				strbuf_add(&sb, f->start, f->namelen + 1);
				add_replaced(&sb, f->start + f->namelen + 1, f->len - f->namelen - 1, p->token);
			} else {
				if (field_is(f, "From"))
					has_from = 1;
				strbuf_add(&sb, f->start, f->len);
			}
			strbuf_adds(&sb, "\r\n");
		}
		if (!has_from)
			strbuf_addf(&sb, "From: %s\r\n", p->from);
		strbuf_addf(&sb, "To: %s\r\n", p->to);
		strbuf_addf(&sb, "Date: %s\r\n", date);
		strbuf_addf(&sb, "Message-ID: <%s@%s>\r\n", p->token, domain);
		if (!has_subject && add_text_header(&sb, "Subject", prefix, p->token) != 0) {
			*errstr = xstrdup("subject_prefix has a word too long to fold");
			goto out;
		}
		strbuf_addf(&sb, "X-Inboxprobe-Token: %s\r\n", p->token);
		if (has_ctype && !has_mime)
			strbuf_adds(&sb, "MIME-Version: 1.0\r\n");   /* RFC 2045 4 */
		if (add_extra_headers(&sb, p, errstr) != 0)
			goto out;
		strbuf_adds(&sb, "\r\n");
		add_replaced(&sb, t.body, t.bodylen, p->token);
		if (sb.len < 2 || memcmp(sb.buf + sb.len - 2, "\r\n", 2) != 0)
			strbuf_adds(&sb, "\r\n");
	}
	if (check_lines(sb.buf, sb.len, errstr) != 0)
		goto out;
	*len = sb.len;
	out = strbuf_detach(&sb);
out:
	strbuf_free(&sb);
	tmpl_free(&t);
	free(domain);
	return out;
}

int message_template_check(const char *text, size_t len, char **errstr)
{
	if (memchr(text, '\0', len) != NULL) {
		*errstr = xstrdup("contains a NUL byte");
		return -1;
	}
	/* build a probe from it with a full-length token */
	char token[TOKEN_MAX];
	memset(token, 'a', TOKEN_RANDOM_HEX + TOKEN_HMAC_HEX);
	token[TOKEN_RANDOM_HEX + TOKEN_HMAC_HEX] = '\0';
	char *copy = xstrndup(text, len);
	struct message_params mp = {
		.from = "probe@example.invalid", .to = "seed@example.invalid", .token = token,
		.subject_prefix = "inboxprobe", .template_text = copy, .now = 0,
	};
	size_t ml = 0;
	char *e = NULL;
	char *m = message_build(&mp, &ml, &e);
	free(copy);
	if (m == NULL) {
		/* drop the "template: " prefix message_build adds */
		const char *txt = e && strncmp(e, "template: ", 10) == 0 ? e + 10 : (e ? e : "invalid");
		*errstr = xstrdup(txt);
		free(e);
		return -1;
	}
	free(m);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Proof (docs/SPEC.md "Finding the probe")                                    */

/* Length of the header in h[0..n): up to its blank line (which a forward's
 * quoted header lines in the body come after), or all of it. */
static size_t header_len(const char *h, size_t n)
{
	const char *p = h, *end = h + n;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == p || (eol == p + 1 && *p == '\r'))
			return (size_t)(p - h);
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	return n;
}

/* Skip an RFC 5322 comment starting at *p == '(' (nested, quoted-pairs);
 * returns the position after it, or NULL when unterminated. */
static const char *skip_comment(const char *p)
{
	int depth = 0;

	for (; *p; p++) {
		if (*p == '\\' && p[1])
			p++;
		else if (*p == '(')
			depth++;
		else if (*p == ')' && --depth == 0)
			return p + 1;
	}
	return NULL;
}

int message_address_of(const char *value, char *out, size_t outsz)
{
	struct strbuf bare = STRBUF_INIT, angle = STRBUF_INIT;
	const char *p = value;
	int in_angle = 0, seen_angle = 0, q = 0, ret = -1;

	if (value == NULL || outsz == 0)
		return -1;
	while (*p) {
		char c = *p;
		if (q) {
			if (c == '\\' && p[1]) {
				strbuf_add(in_angle ? &angle : &bare, p, 2);
				p += 2;
				continue;
			}
			if (c == '"')
				q = 0;
			strbuf_add(in_angle ? &angle : &bare, p, 1);
			p++;
			continue;
		}
		if (c == '(') {
			p = skip_comment(p);
			if (p == NULL)
				goto out;
			continue;
		}
		if (c == '"') {
			q = 1;
		} else if (c == '<') {
			if (in_angle || seen_angle)
				goto out;
			in_angle = seen_angle = 1;
			p++;
			continue;
		} else if (c == '>') {
			if (!in_angle)
				goto out;
			in_angle = 0;
			p++;
			continue;
		} else if ((c == ',' || c == ':' || c == ';') && !in_angle) {
			goto out;   /* several mailboxes or a group: not one sender */
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			p++;
			continue;
		}
		strbuf_add(in_angle ? &angle : &bare, p, 1);
		p++;
	}
	if (q || in_angle)
		goto out;
	{
		const struct strbuf *a = seen_angle ? &angle : &bare;
		if (a->len == 0 || a->len >= outsz || memchr(a->buf, '@', a->len) == NULL)
			goto out;
		memcpy(out, a->buf, a->len);
		out[a->len] = '\0';
	}
	ret = 0;
out:
	strbuf_free(&bare);
	strbuf_free(&angle);
	return ret;
}

char *message_probe_from(const char *template_text, const char *relay_from)
{
	char addr[HEADER_FIELD_MAX + 1];
	struct tmpl t;
	char *err = NULL, *res = NULL;

	if (template_text != NULL && tmpl_parse(template_text, strlen(template_text), &t, &err) == 0) {
		for (size_t i = 0; i < t.nfields && res == NULL; i++) {
			if (!field_is(&t.fields[i], "From"))
				continue;
			const struct field *f = &t.fields[i];
			char *v = rfc5322_unfold(f->start + f->namelen + 1, f->len - f->namelen - 1, 0);
			if (message_address_of(v, addr, sizeof addr) == 0)
				res = xstrdup(addr);
			free(v);
		}
		tmpl_free(&t);
	}
	free(err);
	if (res == NULL && relay_from != NULL) {
		if (message_address_of(relay_from, addr, sizeof addr) == 0)
			res = xstrdup(addr);
		else
			res = xstrdup(relay_from);
	}
	return res;
}

/* The token's HMAC verifies with the current key or an earlier one. */
static int hmac_verifies(const struct probe_proof *p, const char *tok)
{
	if (token_verify(p->key, p->keylen, p->seed, tok))
		return 1;
	for (size_t i = 0; i < p->nold_keys; i++)
		if (p->old_keys[i].key != NULL && p->old_keys[i].len > 0 &&
		    token_verify(p->old_keys[i].key, p->old_keys[i].len, p->seed, tok))
			return 1;
	return 0;
}

int message_prove(const char *hdrs, size_t len, const struct probe_proof *p)
{
	char addr[HEADER_FIELD_MAX + 1];
	char *tok = NULL, *from = NULL;
	int ntok, nfrom, r;

	if (p == NULL || p->token == NULL || p->token[0] == '\0' || hdrs == NULL)
		return PROOF_NO_TOKEN;
	len = header_len(hdrs, len);
	ntok = hfield_count(hdrs, len, "X-Inboxprobe-Token");
	nfrom = hfield_count(hdrs, len, "From");
	tok = rfc5322_field(hdrs, len, "X-Inboxprobe-Token", 0);
	from = rfc5322_field(hdrs, len, "From", 0);
	if (ntok == 0 || tok == NULL)
		r = PROOF_NO_TOKEN;
	else if (ntok > 1 || nfrom > 1)
		r = PROOF_SEVERAL;
	else if (strcmp(tok, p->token) != 0)
		r = PROOF_TOKEN_MISMATCH;
	else if (p->key != NULL && p->keylen > 0 && !hmac_verifies(p, tok))
		r = PROOF_HMAC;
	else if (p->from == NULL || from == NULL || message_address_of(from, addr, sizeof addr) != 0 ||
	         strcasecmp(addr, p->from) != 0)
		r = PROOF_FROM;
	else
		r = PROOF_OK;
	free(tok);
	free(from);
	return r;
}

const char *message_proof_text(int r)
{
	switch (r) {
	case PROOF_OK: return "proved";
	case PROOF_NO_TOKEN: return "no X-Inboxprobe-Token field";
	case PROOF_TOKEN_MISMATCH: return "X-Inboxprobe-Token is not the token";
	case PROOF_SEVERAL: return "several X-Inboxprobe-Token or From fields";
	case PROOF_HMAC: return "the token's HMAC does not verify";
	case PROOF_FROM: return "not from our From address";
	case PROOF_TOO_LARGE: return "header fields too large to be a probe's";
	default: return "not proved";
	}
}
