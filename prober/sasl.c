/*
 * sasl.c - SASL XOAUTH2 / OAUTHBEARER responses, challenge decoding and
 * IMAP AUTHENTICATE over a libetpan session. See sasl.h.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <libetpan/libetpan.h>

#include "common/util.h"
#include "prober/sasl.h"

#define CHALLENGE_MAX 4096   /* base64 characters of a challenge we decode */
#define SASL_LINES_MAX 64    /* untagged lines tolerated during AUTHENTICATE */

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const char *sasl_mech_name(enum sasl_mech m)
{
	switch (m) {
	case SASL_MECH_XOAUTH2:
		return "XOAUTH2";
	case SASL_MECH_OAUTHBEARER:
		return "OAUTHBEARER";
	default:
		return "auto";
	}
}

char *sasl_base64(const void *data, size_t n)
{
	const unsigned char *p = data;
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		*o++ = b64chars[p[i] >> 2];
		*o++ = b64chars[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*o++ = b64chars[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		*o++ = b64chars[p[i + 2] & 63];
	}
	if (i < n) {
		*o++ = b64chars[p[i] >> 2];
		if (i + 1 < n) {
			*o++ = b64chars[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
			*o++ = b64chars[(p[i + 1] & 15) << 2];
		} else {
			*o++ = b64chars[(p[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int b64val(int c)
{
	const char *p = c ? strchr(b64chars, c) : NULL;
	return p ? (int)(p - b64chars) : -1;
}

unsigned char *sasl_unbase64(const char *text, size_t *len)
{
	size_t n = strlen(text), o = 0;
	unsigned char *out;
	unsigned acc = 0;
	int bits = 0;

	while (n > 0 && text[n - 1] == '=')
		n--;
	if (strlen(text) - n > 2 || n % 4 == 1)
		return NULL;
	out = xmalloc(n * 3 / 4 + 1);
	for (size_t i = 0; i < n; i++) {
		int v = b64val((unsigned char)text[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	out[o] = '\0';
	*len = o;
	return out;
}

/* base64 of a string built in sb; the plain text (it holds the token) is wiped. */
static char *encode_wiped(struct strbuf *sb)
{
	char *plain = strbuf_detach(sb);
	size_t n = strlen(plain);
	char *out = sasl_base64(plain, n);
	explicit_bzero(plain, n);
	free(plain);
	return out;
}

char *sasl_xoauth2_initial(const char *user, const char *token)
{
	struct strbuf sb = { 0 };
	strbuf_addf(&sb, "user=%s\001auth=Bearer %s\001\001", user, token);
	return encode_wiped(&sb);
}

char *sasl_oauthbearer_initial(const char *user, const char *host, int port, const char *token)
{
	struct strbuf sb = { 0 };
	strbuf_adds(&sb, "n,a=");
	for (const char *p = user; *p; p++) {
		if (*p == ',')
			strbuf_adds(&sb, "=2C");
		else if (*p == '=')
			strbuf_adds(&sb, "=3D");
		else
			strbuf_add(&sb, p, 1);
	}
	strbuf_adds(&sb, ",\001");
	if (host && *host)
		strbuf_addf(&sb, "host=%s\001", host);
	if (port > 0)
		strbuf_addf(&sb, "port=%d\001", port);
	strbuf_addf(&sb, "auth=Bearer %s\001\001", token);
	return encode_wiped(&sb);
}

/* Append printable ASCII of s (at most max bytes of it) to out. */
static void put_printable(char *out, size_t outsz, const char *s, size_t max)
{
	size_t j = strlen(out);
	for (size_t i = 0; s[i] && i < max && j + 1 < outsz; i++) {
		unsigned char c = (unsigned char)s[i];
		out[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[j] = '\0';
}

/* RFC 7628 3.2.2: {"status": ..., "schemes": ..., "scope": ...}. */
static int describe_json(const char *text, size_t len, char *out, size_t outsz)
{
	static const char *const keys[] = { "status", "schemes", "scope", NULL };
	json_error_t jerr;
	json_t *o = json_loadb(text, len, 0, &jerr);
	int any = 0;

	if (!o)
		return -1;
	if (!json_is_object(o)) {
		json_decref(o);
		return -1;
	}
	for (int i = 0; keys[i]; i++) {
		json_t *v = json_object_get(o, keys[i]);
		if (!json_is_string(v))
			continue;
		put_printable(out, outsz, any ? ", " : "", 2);
		put_printable(out, outsz, keys[i], 16);
		put_printable(out, outsz, " \"", 2);
		put_printable(out, outsz, json_string_value(v), 100);
		put_printable(out, outsz, "\"", 1);
		any = 1;
	}
	json_decref(o);
	return any ? 0 : -1;
}

void sasl_describe_challenge(const char *b64, char *out, size_t outsz)
{
	unsigned char *raw;
	size_t len = 0;

	if (outsz == 0)
		return;
	out[0] = '\0';
	if (!b64 || !*b64)
		return;
	if (strlen(b64) > CHALLENGE_MAX || !(raw = sasl_unbase64(b64, &len))) {
		put_printable(out, outsz, "not base64: ", 12);
		put_printable(out, outsz, b64, 80);
		return;
	}
	if (describe_json((const char *)raw, len, out, outsz) != 0) {
		out[0] = '\0';
		put_printable(out, outsz, (const char *)raw, 160);
	}
	free(raw);
}

enum sasl_mech sasl_choose(enum sasl_mech forced, int has_xoauth2, int has_oauthbearer)
{
	if (forced == SASL_MECH_XOAUTH2)
		return has_xoauth2 ? SASL_MECH_XOAUTH2 : SASL_MECH_AUTO;
	if (forced == SASL_MECH_OAUTHBEARER)
		return has_oauthbearer ? SASL_MECH_OAUTHBEARER : SASL_MECH_AUTO;
	if (has_oauthbearer)
		return SASL_MECH_OAUTHBEARER;
	if (has_xoauth2)
		return SASL_MECH_XOAUTH2;
	return SASL_MECH_AUTO;
}

/* ---------- IMAP AUTHENTICATE ---------- */

/* Write a whole line (CRLF added) and flush. 0 or -1. */
static int send_line(mailimap *imap, const char *a, const char *b)
{
	if (mailstream_write(imap->imap_stream, a, strlen(a)) < 0)
		return -1;
	if (b && mailstream_write(imap->imap_stream, b, strlen(b)) < 0)
		return -1;
	if (mailstream_write(imap->imap_stream, "\r\n", 2) < 0)
		return -1;
	return mailstream_flush(imap->imap_stream) < 0 ? -1 : 0;
}

/* Next line without CR/LF, or NULL (stream error, timeout, no line). The
 * line lives in the session's buffer until the next read. */
static char *read_line(mailimap *imap)
{
	char *l = mailimap_read_line(imap);
	size_t n;
	if (!l)
		return NULL;
	n = strlen(l);
	while (n > 0 && (l[n - 1] == '\n' || l[n - 1] == '\r'))
		l[--n] = '\0';
	return l;
}

/* The tagged reply "TAG OK|NO|BAD text". */
static int tagged_result(const char *rest, struct sasl_outcome *out)
{
	const char *text = strchr(rest, ' ');
	text = text ? text + 1 : "";
	put_printable(out->text, sizeof out->text, text, sizeof out->text - 1);
	if (strncasecmp(text, "[UNAVAILABLE]", 13) == 0 || strcasestr(text, "try again later"))
		out->unavailable = 1;
	if (strncasecmp(rest, "OK", 2) == 0 && (rest[2] == ' ' || rest[2] == '\0'))
		return SASL_OK;
	if (strncasecmp(rest, "NO", 2) == 0 && (rest[2] == ' ' || rest[2] == '\0'))
		return SASL_REJECTED;
	return SASL_BAD;
}

/* A "+" line: send the deferred initial response, or answer an error
 * challenge once (RFC 7628 3.2.3; XOAUTH2: an empty response), or cancel
 * ("*", RFC 3501 6.2.2) a second challenge. */
static int continuation(mailimap *imap, enum sasl_mech mech, const char *line, const char **pending,
                        int *answered, struct sasl_outcome *out)
{
	const char *chal = line[1] == ' ' ? line + 2 : line + 1;
	if (*pending) {
		const char *ir = *pending;
		*pending = NULL;
		return send_line(imap, ir, NULL);
	}
	if (*answered)
		return send_line(imap, "*", NULL);
	*answered = 1;
	sasl_describe_challenge(chal, out->challenge, sizeof out->challenge);
	return send_line(imap, mech == SASL_MECH_OAUTHBEARER ? "AQ==" : "", NULL);
}

int sasl_imap_authenticate(void *mailimap_session, enum sasl_mech mech, int sasl_ir,
                           const char *user, const char *host, int port, const char *token,
                           struct sasl_outcome *out)
{
	mailimap *imap = mailimap_session;
	char tag[32], *cmd = NULL, *ir;
	const char *pending = NULL;
	int answered = 0, r = SASL_EIO;
	size_t taglen;

	memset(out, 0, sizeof *out);
	ir = mech == SASL_MECH_OAUTHBEARER ? sasl_oauthbearer_initial(user, host, port, token)
	                                   : sasl_xoauth2_initial(user, token);
	snprintf(tag, sizeof tag, "oa%u", (unsigned)++imap->imap_tag);
	taglen = strlen(tag);
	cmd = xasprintf("%s AUTHENTICATE %s%s", tag, sasl_mech_name(mech), sasl_ir ? " " : "");
	if (send_line(imap, cmd, sasl_ir ? ir : NULL) != 0)
		goto out;
	if (!sasl_ir)
		pending = ir;
	for (int lines = 0; lines < SASL_LINES_MAX; lines++) {
		char *l = read_line(imap);
		if (!l)
			goto out;
		if (l[0] == '+') {
			if (continuation(imap, mech, l, &pending, &answered, out) != 0)
				goto out;
		} else if (strncasecmp(l, "* BYE", 5) == 0) {
			put_printable(out->text, sizeof out->text, l + 5 + (l[5] == ' '), sizeof out->text - 1);
			r = SASL_BYE;
			goto out;
		} else if (strncmp(l, tag, taglen) == 0 && l[taglen] == ' ') {
			r = tagged_result(l + taglen + 1, out);
			goto out;
		}
		/* other untagged data (CAPABILITY, ...) is skipped */
	}
out:
	if (r == SASL_OK)
		imap->imap_state = MAILIMAP_STATE_AUTHENTICATED;
	explicit_bzero(ir, strlen(ir));
	free(ir);
	free(cmd);
	return r;
}
