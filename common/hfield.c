/* hfield.c - header fields one at a time, unfolded; RFC 5322 dates. */
#include <config.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/hfield.h"
#include "common/util.h"

void hfield_begin(struct hfield_iter *it, const char *hdr, size_t len)
{
	it->p = hdr;
	it->end = hdr + len;
}

/* End of the physical line starting at p (the '\n', or end). */
static const char *line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	return nl ? nl : end;
}

/* Trim spaces and tabs at both ends, in place. */
static char *trimmed(char *v)
{
	size_t a = 0, n = strlen(v);
	while (v[a] == ' ' || v[a] == '\t')
		a++;
	while (n > a && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	memmove(v, v + a, n - a);
	v[n - a] = '\0';
	return v;
}

int hfield_next(struct hfield_iter *it, const char **name, size_t *namelen, char **value)
{
	while (it->p < it->end) {
		const char *p = it->p, *le = line_end(p, it->end);
		const char *ce = le > p && le[-1] == '\r' ? le - 1 : le;
		if (ce == p)
			return 0;   /* the empty line: end of the header */
		const char *colon = memchr(p, ':', (size_t)(ce - p));
		it->p = le < it->end ? le + 1 : le;
		if (colon == NULL || colon == p || *p == ' ' || *p == '\t')
			continue;   /* stray line or orphan continuation */
		/* the field goes on over continuation lines (leading WSP) */
		while (it->p < it->end && (*it->p == ' ' || *it->p == '\t')) {
			le = line_end(it->p, it->end);
			ce = le > it->p && le[-1] == '\r' ? le - 1 : le;
			it->p = le < it->end ? le + 1 : le;
		}
		*name = p;
		*namelen = (size_t)(colon - p);
		while (*namelen > 0 && (p[*namelen - 1] == ' ' || p[*namelen - 1] == '\t'))
			(*namelen)--;   /* obs-optional: WSP before the colon */
		*value = trimmed(rfc5322_unfold(colon + 1, (size_t)(ce - colon - 1), 0));
		return 1;
	}
	return 0;
}

int hfield_is(const char *name, size_t namelen, const char *want)
{
	return strlen(want) == namelen && strncasecmp(name, want, namelen) == 0;
}

char *rfc5322_field(const char *h, size_t hn, const char *name, size_t max)
{
	struct hfield_iter it;
	const char *fn;
	size_t fl;
	char *v;

	hfield_begin(&it, h, hn);
	while (hfield_next(&it, &fn, &fl, &v)) {
		if (hfield_is(fn, fl, name)) {
			if (max != 0 && strlen(v) > max)
				v[max] = '\0';
			return v;
		}
		free(v);
	}
	return NULL;
}

int hfield_count(const char *h, size_t hn, const char *name)
{
	struct hfield_iter it;
	const char *fn;
	size_t fl;
	char *v;
	int n = 0;

	hfield_begin(&it, h, hn);
	while (hfield_next(&it, &fn, &fl, &v)) {
		n += hfield_is(fn, fl, name);
		free(v);
	}
	return n;
}

/* ---- RFC 5322 date-time ------------------------------------------------- */

static long long days_from_civil(long long y, int m, int d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	long long yoe = y - era * 400;
	long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void skip_cfws(const char **p)
{
	for (;;) {
		while (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n')
			(*p)++;
		if (**p != '(')
			return;
		int depth = 0;
		do {
			if (**p == '\\' && (*p)[1])
				(*p)++;
			else if (**p == '(')
				depth++;
			else if (**p == ')')
				depth--;
			(*p)++;
		} while (**p && depth > 0);
	}
}

static int number(const char **p, int mind, int maxd, int *v)
{
	int n = 0;
	*v = 0;
	while (isdigit((unsigned char)**p) && n < maxd) {
		*v = *v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	return n >= mind && !isdigit((unsigned char)**p) ? 0 : -1;
}

/* Obsolete zone names (RFC 5322 section 4.3), minutes east of UTC. */
static int zone_name(const char **p, int *mins)
{
	static const struct { const char *n; int m; } z[] = {
		{ "UT", 0 }, { "GMT", 0 }, { "UTC", 0 }, { "EDT", -240 }, { "EST", -300 },
		{ "CDT", -300 }, { "CST", -360 }, { "MDT", -360 }, { "MST", -420 },
		{ "PDT", -420 }, { "PST", -480 },
	};
	size_t n = 0;
	while (isalpha((unsigned char)(*p)[n]))
		n++;
	for (size_t i = 0; i < sizeof z / sizeof z[0]; i++)
		if (strlen(z[i].n) == n && strncasecmp(*p, z[i].n, n) == 0) {
			*mins = z[i].m;
			*p += n;
			return 0;
		}
	if (n == 1 && toupper((unsigned char)**p) != 'J') {
		*mins = 0;   /* military zone: "SHOULD be considered equivalent to -0000" */
		*p += 1;
		return 0;
	}
	return -1;
}

static int month_of(const char **p)
{
	static const char *const m[] = { "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
	                                 "sep", "oct", "nov", "dec" };
	for (int i = 0; i < 12; i++)
		if (strncasecmp(*p, m[i], 3) == 0 && !isalpha((unsigned char)(*p)[3])) {
			*p += 3;
			return i + 1;
		}
	return -1;
}

int rfc5322_parse_date(const char *s, double *out)
{
	const char *p = s;
	int d, mo, y, h, mi, sec = 0, zone = 0;
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	skip_cfws(&p);
	if (isalpha((unsigned char)*p)) {   /* day-of-week "," */
		while (isalpha((unsigned char)*p))
			p++;
		skip_cfws(&p);
		if (*p++ != ',')
			return -1;
		skip_cfws(&p);
	}
	if (number(&p, 1, 2, &d) != 0)
		return -1;
	skip_cfws(&p);
	if ((mo = month_of(&p)) < 0)
		return -1;
	skip_cfws(&p);
	const char *ys = p;
	if (number(&p, 2, 4, &y) != 0)
		return -1;
	if (p - ys == 2)
		y += y < 50 ? 2000 : 1900;
	else if (p - ys == 3)
		y += 1900;
	skip_cfws(&p);
	if (number(&p, 1, 2, &h) != 0 || *p++ != ':' || number(&p, 2, 2, &mi) != 0)
		return -1;
	if (*p == ':') {
		p++;
		if (number(&p, 2, 2, &sec) != 0)
			return -1;
	}
	skip_cfws(&p);
	if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, z;
		if (number(&p, 4, 4, &z) != 0 || z % 100 > 59)
			return -1;
		zone = sign * (z / 100 * 60 + z % 100);
	} else if (zone_name(&p, &zone) != 0) {
		return -1;
	}
	skip_cfws(&p);
	if (*p != '\0')
		return -1;
	if (d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) ||
	    h > 23 || mi > 59 || sec > 60)
		return -1;
	*out = (double)(days_from_civil(y, mo, d) * 86400LL + h * 3600LL + mi * 60LL + sec) -
	       zone * 60.0;
	return 0;
}
