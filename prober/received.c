/* received.c - Received trace fields (RFC 5321 section 4.4). */
#include <config.h>

#include <string.h>
#include <strings.h>

#include "prober/received.h"
#include "common/hfield.h"
#include "common/util.h"

/* Offset of the last ';' outside comments, or -1. */
static long last_semicolon(const char *s)
{
	long last = -1;
	int depth = 0;
	for (long i = 0; s[i]; i++) {
		if (s[i] == '\\' && s[i + 1])
			i++;
		else if (s[i] == '(')
			depth++;
		else if (s[i] == ')' && depth > 0)
			depth--;
		else if (s[i] == ';' && depth == 0)
			last = i;
	}
	return last;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Next word of [*p, end) after whitespace and comments, into w. */
static int word(const char **p, const char *end, char *w, size_t wsz)
{
	size_t o = 0;
	for (;;) {
		while (*p < end && is_space(**p))
			(*p)++;
		if (*p < end && **p == '(') {
			int depth = 0;
			do {
				if (**p == '\\' && *p + 1 < end)
					(*p)++;
				else if (**p == '(')
					depth++;
				else if (**p == ')')
					depth--;
				(*p)++;
			} while (*p < end && depth > 0);
			continue;
		}
		break;
	}
	if (*p >= end)
		return 0;
	while (*p < end && !is_space(**p) && **p != '(') {
		if (o + 1 < wsz)
			w[o++] = **p;
		(*p)++;
	}
	w[o] = '\0';
	return 1;
}

int received_parse(const char *value, struct hop *h)
{
	long semi = last_semicolon(value);
	const char *p = value, *end = semi >= 0 ? value + semi : value + strlen(value);
	char w[256], *dst = NULL;
	size_t dstsz = 0;
	int have_by = 0;

	memset(h, 0, sizeof *h);
	while (word(&p, end, w, sizeof w)) {
		if (dst != NULL) {
			xstrlcpy(dst, w, dstsz);
			dst = NULL;
			continue;
		}
		if (strcasecmp(w, "from") == 0) {
			dst = h->from, dstsz = sizeof h->from;
		} else if (strcasecmp(w, "by") == 0) {
			dst = h->by, dstsz = sizeof h->by;
			have_by = 1;
		} else if (strcasecmp(w, "with") == 0) {
			dst = h->with, dstsz = sizeof h->with;
		} else if (strcasecmp(w, "id") == 0) {
			dst = h->id, dstsz = sizeof h->id;
		}
	}
	if (semi >= 0 && rfc5322_parse_date(value + semi + 1, &h->time) != 0)
		h->time = 0;
	return have_by || h->time > 0 ? 0 : -1;
}
