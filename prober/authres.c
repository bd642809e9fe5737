/* authres.c - Authentication-Results (RFC 8601 section 2.2) parser. */
#include <config.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prober/authres.h"
#include "common/util.h"

enum tok { T_END, T_SEMI, T_EQ, T_WORD, T_QSTR };

struct lex {
	const char *p;
	char comment[128];      /* the first comment since lex_mark() */
	int have_comment;
};

/* Copy a comment's inner text (nested comments kept verbatim) and skip it. */
static void read_comment(struct lex *lx)
{
	const char *s = ++lx->p;
	int depth = 1;
	while (*lx->p && depth > 0) {
		if (*lx->p == '\\' && lx->p[1])
			lx->p++;
		else if (*lx->p == '(')
			depth++;
		else if (*lx->p == ')')
			depth--;
		lx->p++;
	}
	if (!lx->have_comment) {
		size_t n = (size_t)(lx->p - s) - (depth == 0);
		while (n > 0 && isspace((unsigned char)*s))
			s++, n--;
		while (n > 0 && isspace((unsigned char)s[n - 1]))
			n--;
		if (n >= sizeof lx->comment)
			n = sizeof lx->comment - 1;
		memcpy(lx->comment, s, n);
		lx->comment[n] = '\0';
		lx->have_comment = 1;
	}
}

static void skip_cfws(struct lex *lx)
{
	for (;;) {
		while (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\r' || *lx->p == '\n')
			lx->p++;
		if (*lx->p != '(')
			return;
		read_comment(lx);
	}
}

static void lex_mark(struct lex *lx)
{
	lx->have_comment = 0;
	lx->comment[0] = '\0';
}

static int is_word_char(int c)
{
	return c && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '(' && c != '"' &&
	       c != ';' && c != '=';
}

/* Quoted string at lx->p (on the '"'): unquoted into buf. */
static void read_qstring(struct lex *lx, char *buf, size_t bufsz)
{
	size_t o = 0;
	lx->p++;
	while (*lx->p && *lx->p != '"') {
		if (*lx->p == '\\' && lx->p[1])
			lx->p++;
		if (o + 1 < bufsz)
			buf[o++] = *lx->p;
		lx->p++;
	}
	if (*lx->p == '"')
		lx->p++;
	buf[o] = '\0';
}

/* The next token after CFWS; a word or quoted string goes into buf. */
static enum tok next(struct lex *lx, char *buf, size_t bufsz)
{
	size_t o = 0;
	skip_cfws(lx);
	buf[0] = '\0';
	switch (*lx->p) {
	case '\0': return T_END;
	case ';': lx->p++; return T_SEMI;
	case '=': lx->p++; return T_EQ;
	case '"': read_qstring(lx, buf, bufsz); return T_QSTR;
	default: break;
	}
	while (is_word_char((unsigned char)*lx->p)) {
		if (o + 1 < bufsz)
			buf[o++] = *lx->p;
		lx->p++;
	}
	buf[o] = '\0';
	return T_WORD;
}

static enum tok peek(struct lex *lx)
{
	char tmp[8];
	struct lex save = *lx;
	enum tok t = next(lx, tmp, sizeof tmp);
	*lx = save;
	return t;
}

/* A property value (RFC 8601 pvalue, or a reasonspec value): a quoted
 * string, or a run up to whitespace, ';' or a comment ('=' and '@' are
 * part of it: base64 and addresses). */
static void read_value(struct lex *lx, char *buf, size_t bufsz)
{
	size_t o = 0;
	skip_cfws(lx);
	if (*lx->p == '"') {
		read_qstring(lx, buf, bufsz);
		return;
	}
	while (*lx->p && *lx->p != ' ' && *lx->p != '\t' && *lx->p != ';' && *lx->p != '(' &&
	       *lx->p != '\r' && *lx->p != '\n') {
		if (o + 1 < bufsz)
			buf[o++] = *lx->p;
		lx->p++;
	}
	buf[o] = '\0';
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/*
 * A name made of words up to '=': "smtp.mailfrom", "dkim/1", and with
 * comments between the parts "policy (x) . (y) expired". Words are joined
 * only across '.' and '/'; an earlier stray word is dropped. Returns 1 on
 * '=' (consumed), 0 when ';' or the end came first (not consumed).
 */
static int read_name(struct lex *lx, char *name, size_t namesz)
{
	char w[128];
	name[0] = '\0';
	for (;;) {
		struct lex save = *lx;
		enum tok t = next(lx, w, sizeof w);
		if (t == T_EQ)
			return name[0] != '\0';
		if (t == T_END || t == T_SEMI) {
			*lx = save;
			return 0;
		}
		size_t n = strlen(name);
		if (n > 0 && (name[n - 1] == '.' || name[n - 1] == '/' || w[0] == '.' || w[0] == '/'))
			strncat(name, w, namesz - n - 1);
		else
			xstrlcpy(name, w, namesz);
	}
}

static void skip_to_semi(struct lex *lx)
{
	char w[8];
	for (;;) {
		struct lex save = *lx;
		enum tok t = next(lx, w, sizeof w);
		if (t == T_END || t == T_SEMI) {
			*lx = save;
			return;
		}
	}
}

static int method_ok(const char *m)
{
	if (!isalnum((unsigned char)*m))
		return 0;
	for (; *m && *m != '/'; m++)
		if (!isalnum((unsigned char)*m) && *m != '-' && *m != '_')
			return 0;
	return 1;
}

/* Properties and reason after "method=result", up to ';' or the end. */
static void read_props(struct lex *lx, struct auth_verdict *v)
{
	char name[64], val[128];
	while (read_name(lx, name, sizeof name)) {
		read_value(lx, val, sizeof val);
		lower(name);
		if (strcmp(name, "reason") == 0) {
			xstrlcpy(v->reason, val, sizeof v->reason);
		} else if (v->nprops < AUTH_PROPS_MAX) {
			xstrlcpy(v->props[v->nprops].name, name, sizeof v->props[0].name);
			xstrlcpy(v->props[v->nprops].value, val, sizeof v->props[0].value);
			v->nprops++;
		}
	}
}

/* One resinfo. 1: *v filled; 0: a bare item ("outlook.com;"); -1: malformed. */
static int parse_resinfo(struct lex *lx, struct auth_verdict *v)
{
	char name[64], res[64];
	memset(v, 0, sizeof *v);
	if (!read_name(lx, name, sizeof name))
		return 0;
	if (!method_ok(name))
		return -1;
	lex_mark(lx);
	if (next(lx, res, sizeof res) != T_WORD || res[0] == '\0')
		return -1;
	char *slash = strchr(name, '/');
	if (slash)
		*slash = '\0';   /* method-version */
	lower(name);
	lower(res);
	xstrlcpy(v->method, name, sizeof v->method);
	xstrlcpy(v->result, res, sizeof v->result);
	lex_mark(lx);
	skip_cfws(lx);   /* a comment right after the result explains it */
	char comment[sizeof lx->comment];
	xstrlcpy(comment, lx->have_comment ? lx->comment : "", sizeof comment);
	read_props(lx, v);
	if (v->reason[0] == '\0')
		xstrlcpy(v->reason, comment, sizeof v->reason);
	return 1;
}

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

/* authserv-id [CFWS authres-version], unless the field starts with a
 * method (Microsoft): then nothing is consumed. */
static void parse_head(struct lex *lx, struct authres_field *out)
{
	char w[128];
	struct lex save = *lx;
	enum tok t = next(lx, w, sizeof w);
	if ((t != T_WORD && t != T_QSTR) || peek(lx) == T_EQ) {
		*lx = save;
		return;
	}
	lower(w);
	xstrlcpy(out->authserv_id, w, sizeof out->authserv_id);
	save = *lx;
	if (next(lx, w, sizeof w) == T_WORD && all_digits(w))
		out->version = (int)strtol(w, NULL, 10);
	else
		*lx = save;
}

/* "; none" right after the head, alone. */
static int is_none(struct lex *lx)
{
	char w[16];
	struct lex save = *lx;
	if (next(lx, w, sizeof w) == T_WORD && strcasecmp(w, "none") == 0) {
		enum tok t = peek(lx);
		if (t == T_END || t == T_SEMI)
			return 1;
	}
	*lx = save;
	return 0;
}

int authres_parse(const char *value, struct authres_field *out)
{
	struct lex lx = { .p = value };
	int first = 1;

	memset(out, 0, sizeof *out);
	parse_head(&lx, out);
	for (;;) {
		skip_cfws(&lx);
		if (*lx.p == '\0')
			break;
		if (*lx.p == ';')
			lx.p++;
		if (first && out->authserv_id[0] && is_none(&lx)) {
			out->none = 1;
			first = 0;
			continue;
		}
		first = 0;
		struct auth_verdict v;
		const char *before = lx.p;
		int r = parse_resinfo(&lx, &v);
		if (r < 0) {
			out->skipped++;
			skip_to_semi(&lx);
			if (lx.p == before && *lx.p && *lx.p != ';')
				lx.p++;
		} else if (r > 0) {
			if (out->nv < AUTH_MAX)
				out->v[out->nv++] = v;
			else
				out->skipped++;
		}
	}
	return out->authserv_id[0] || out->nv > 0 || out->none ? 0 : -1;
}

int authres_id_matches(const char *authserv_id, const char *pattern)
{
	if (authserv_id == NULL || pattern == NULL || !*authserv_id || !*pattern)
		return 0;
	if (pattern[0] == '*' && pattern[1] == '.') {
		size_t n = strlen(authserv_id), k = strlen(pattern + 1);   /* ".suffix" */
		return n > k && strcasecmp(authserv_id + n - k, pattern + 1) == 0;
	}
	return strcasecmp(authserv_id, pattern) == 0;
}

char *authres_format(const struct auth_verdict *v, char *buf, size_t bufsz)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addf(&sb, "%s=%s", v->method, v->result);
	if (v->reason[0])
		strbuf_addf(&sb, " (%s)", v->reason);
	for (int i = 0; i < v->nprops; i++)
		strbuf_addf(&sb, " %s=%s", v->props[i].name, v->props[i].value);
	char *s = strbuf_detach(&sb);
	xstrlcpy(buf, s, bufsz);
	free(s);
	return buf;
}
