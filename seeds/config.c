/*
 * config.c - load and validate the inboxprobe configuration (libconfig).
 * See config.h and docs/SPEC.md "Configuration".
 *
 * Every problem is collected as "FILE:LINE: message" and reported at once,
 * sorted by file and line. Secrets never appear in a message.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "common/util.h"
#include "seeds/config.h"
#include "seeds/folders.h"
#include "seeds/oauth2_conf.h"
#include "prober/message.h"

#define SECRET_FILE_MAX (64 * 1024)
#define TEMPLATE_MAX (1024 * 1024)
#define CONFIG_FILE_MAX (16u << 20)     /* the configuration and each @include */
#define INCLUDE_DEPTH_MAX 10            /* libconfig 1.5's own limit */
#define INCLUDE_FILES_MAX 64            /* files read by the checks, all includes together */
#define HMAC_KEY_MIN 16

/* upper bounds of integer settings */
#define MAX_TIMEOUT 3600L              /* seconds: relay and IMAP timeouts */
#define MAX_DEADLINE 86400L            /* seconds: probe.deadline, poll_interval */
#define MAX_CONNECTIONS 10000L         /* imap_limits.per_host, per_account */
#define MAX_COUNT 1000000L             /* slo.max_missing, min_samples */
#define MAX_WINDOW (90L * 86400L)      /* seconds: slo.window */
#define MAX_RETENTION_DAYS 3650L       /* state.retention_days */

/* ------------------------------------------------------------------ */
/* Error collection                                                    */

struct cerr {
	char *file;
	unsigned line;
	size_t seq;
	char *msg;
};

struct srcfile {
	char *name;
	char *text;            /* NULL when it could not be read */
};

struct ctx {
	const char *file;
	const char *incdir;    /* where @include paths are relative to, or NULL */
	struct cerr *errs;
	size_t nerrs, cap;
	struct srcfile *srcs;  /* configuration texts, read on demand */
	size_t nsrcs;
};

static void err_vadd(struct ctx *c, const char *file, unsigned line, const char *fmt, va_list ap)
{
	if (c->nerrs == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->errs = xrealloc(c->errs, c->cap * sizeof(*c->errs));
	}
	struct strbuf sb = STRBUF_INIT;
	strbuf_vaddf(&sb, fmt, ap);
	struct cerr *e = &c->errs[c->nerrs];
	e->file = xstrdup(file ? file : c->file);
	e->line = line;
	e->seq = c->nerrs;
	e->msg = strbuf_detach(&sb);
	c->nerrs++;
}

/* An error at setting s (its file and line); s == NULL: the file itself. */
static void err_at(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void err_at(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *file = NULL;
	unsigned line = 0;
	if (s != NULL) {
		file = config_setting_source_file(s);
		line = config_setting_source_line(s);
	}
	err_vadd(c, file, line, fmt, ap);
	va_end(ap);
}

/* "FILE:LINE" of setting s, for a message given after loading (heap). */
static char *where_of(const struct ctx *c, const config_setting_t *s)
{
	const char *file = config_setting_source_file(s);

	return xasprintf("%s:%u", file ? file : c->file, config_setting_source_line(s));
}

static int cerr_cmp(const void *a, const void *b)
{
	const struct cerr *x = a, *y = b;
	int r = strcmp(x->file, y->file);
	if (r != 0)
		return r;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

static char *errs_render(struct ctx *c)
{
	qsort(c->errs, c->nerrs, sizeof(*c->errs), cerr_cmp);
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < c->nerrs; i++) {
		int dup = 0;
		/* a default merged into several blocks reports its problem once */
		for (size_t k = i; k-- > 0 && !dup;) {
			if (c->errs[k].line != c->errs[i].line || strcmp(c->errs[k].file, c->errs[i].file) != 0)
				break;
			dup = strcmp(c->errs[k].msg, c->errs[i].msg) == 0;
		}
		if (dup)
			continue;
		if (c->errs[i].line > 0)
			strbuf_addf(&sb, "%s:%u: %s\n", c->errs[i].file, c->errs[i].line, c->errs[i].msg);
		else
			strbuf_addf(&sb, "%s: %s\n", c->errs[i].file, c->errs[i].msg);
	}
	return strbuf_detach(&sb);
}

/*
 * The text of line `line` (1-based) of file (NULL: the main file), as read
 * on demand and cached in c. Returns a pointer into the cache and its
 * length (without the line end) in *n, or NULL.
 */
static const char *src_line(struct ctx *c, const char *file, unsigned line, size_t *n)
{
	if (file == NULL)
		file = c->file;
	if (file == NULL || line == 0)
		return NULL;
	struct srcfile *sf = NULL;
	for (size_t i = 0; i < c->nsrcs; i++)
		if (strcmp(c->srcs[i].name, file) == 0)
			sf = &c->srcs[i];
	if (sf == NULL) {
		c->srcs = xrealloc(c->srcs, (c->nsrcs + 1) * sizeof(*c->srcs));
		sf = &c->srcs[c->nsrcs++];
		sf->name = xstrdup(file);
		char *e = NULL;
		sf->text = read_file_capped(file, 0, NULL, &e);
		free(e);
	}
	if (sf->text == NULL)
		return NULL;
	const char *p = sf->text;
	for (unsigned l = 1; l < line; l++) {
		p = strchr(p, '\n');
		if (p == NULL)
			return NULL;
		p++;
	}
	size_t len = strcspn(p, "\r\n");
	if (len == 0 && *p == '\0')
		return NULL;
	*n = len;
	return p;
}

static void srcs_free(struct ctx *c)
{
	for (size_t i = 0; i < c->nsrcs; i++) {
		free(c->srcs[i].name);
		if (c->srcs[i].text != NULL) {
			/* the text may hold passwords */
			explicit_bzero(c->srcs[i].text, strlen(c->srcs[i].text));
			free(c->srcs[i].text);
		}
	}
	free(c->srcs);
	c->srcs = NULL;
	c->nsrcs = 0;
}

static void errs_free(struct ctx *c)
{
	for (size_t i = 0; i < c->nerrs; i++) {
		free(c->errs[i].file);
		free(c->errs[i].msg);
	}
	free(c->errs);
	c->errs = NULL;
	c->nerrs = c->cap = 0;
}

/* ------------------------------------------------------------------ */
/* Secrets                                                             */

static void wipe_free(char *p, size_t n)
{
	if (p == NULL)
		return;
	explicit_bzero(p, n);
	free(p);
}

static void wipe_str(char *p)
{
	if (p != NULL)
		wipe_free(p, strlen(p));
}

/* Open path for reading and check it is a regular file (not a directory,
 * FIFO or device: O_NONBLOCK keeps a FIFO from hanging the open). Returns
 * the fd with *st filled, or -1 after recording "WHAT: PATH: problem". */
static int open_regular(struct ctx *c, const config_setting_t *s, const char *what,
                        const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		err_at(c, s, "%s: %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, st) != 0)
		err_at(c, s, "%s: %s: %s", what, path, strerror(errno));
	else if (S_ISDIR(st->st_mode))
		err_at(c, s, "%s: %s: is a directory", what, path);
	else if (!S_ISREG(st->st_mode))
		err_at(c, s, "%s: %s: is not a regular file", what, path);
	else
		return fd;
	close(fd);
	return -1;
}

/*
 * Read a secret file: regular, not accessible by group or others, at most
 * SECRET_FILE_MAX bytes, one trailing LF or CRLF stripped. `what` is the
 * setting's path ("relay.password_file", "probe.secret_file"); every
 * message reads "WHAT: PATH: problem". Returns a heap buffer (NUL added,
 * length in *len) or NULL after recording an error at s.
 */
static char *read_secret_file(struct ctx *c, const config_setting_t *s, const char *what,
                              const char *path, size_t *len)
{
	char *buf = NULL;
	struct stat st;
	int fd = open_regular(c, s, what, path, &st);
	if (fd < 0)
		return NULL;
	if (st.st_mode & 077) {
		err_at(c, s, "%s: %s is %s by group or others (mode %04o); chmod 600 it", what, path,
		       (st.st_mode & 044) ? "readable" : "writable or executable",
		       (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_size > SECRET_FILE_MAX) {
		err_at(c, s, "%s: %s: larger than %d bytes", what, path, SECRET_FILE_MAX);
		goto out;
	}
	size_t cap = (size_t)st.st_size + 1, n = 0;
	buf = xmalloc(cap + 1);
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err_at(c, s, "%s: %s: %s", what, path, strerror(errno));
			wipe_free(buf, cap + 1);
			buf = NULL;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			/* grew while we read it */
			err_at(c, s, "%s: %s: changed while being read", what, path);
			wipe_free(buf, cap + 1);
			buf = NULL;
			goto out;
		}
	}
	if (n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	buf[n] = '\0';
	if (n == 0) {
		err_at(c, s, "%s: %s: is empty", what, path);
		wipe_free(buf, cap + 1);
		buf = NULL;
		goto out;
	}
	*len = n;
out:
	close(fd);
	return buf;
}

/*
 * Read a whole text file of at most max bytes (max_text names the size
 * for messages). `what` is the setting's path; messages read
 * "WHAT: PATH: problem". Returns a heap buffer (NUL added, length in
 * *len) or NULL after recording an error at s.
 */
static char *read_text_file(struct ctx *c, const config_setting_t *s, const char *what,
                            const char *path, size_t max, const char *max_text, size_t *len)
{
	struct strbuf sb = STRBUF_INIT;
	char *ret = NULL;
	struct stat st;
	int fd = open_regular(c, s, what, path, &st);
	if (fd < 0)
		return NULL;
	if ((unsigned long long)st.st_size > max) {
		err_at(c, s, "%s: %s: larger than %s", what, path, max_text);
		goto out;
	}
	for (;;) {
		char buf[8192];
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err_at(c, s, "%s: %s: %s", what, path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		if (sb.len + (size_t)r > max) {
			err_at(c, s, "%s: %s: larger than %s", what, path, max_text);
			goto out;
		}
		strbuf_add(&sb, buf, (size_t)r);
	}
	*len = sb.len;
	ret = sb.len > 0 ? strbuf_detach(&sb) : xstrdup("");
out:
	strbuf_free(&sb);
	close(fd);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Typed getters                                                       */

static int is_int_type(int t)
{
	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

static const char *type_name(int t)
{
	switch (t) {
	case CONFIG_TYPE_GROUP: return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a decimal number";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array";
	case CONFIG_TYPE_LIST: return "a list";
	default: return "a value";
	}
}

/* Report every member of group whose name is not in allowed (NULL-ended). */
static void check_keys(struct ctx *c, const config_setting_t *group, const char *what,
                       const char *const *allowed)
{
	int n = config_setting_length(group);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(m);
		if (name == NULL)
			continue;
		int ok = 0;
		for (size_t k = 0; allowed[k] != NULL; k++)
			if (strcmp(allowed[k], name) == 0) {
				ok = 1;
				break;
			}
		if (!ok) {
			const char *near = closest_word(name, allowed);
			char *hint = near ? xasprintf("; did you mean '%s'?", near) : xstrdup("");
			if (what != NULL && *what != '\0')
				err_at(c, m, "unknown setting '%s' in %s%s", name, what, hint);
			else
				err_at(c, m, "unknown setting '%s'%s", name, hint);
			free(hint);
		}
	}
}

/* Member lookup that tolerates a NULL group. */
static config_setting_t *member(const config_setting_t *group, const char *name)
{
	if (group == NULL)
		return NULL;
	return config_setting_get_member(group, name);
}

static char *path_of(const char *prefix, const char *name)
{
	if (prefix == NULL || *prefix == '\0')
		return xstrdup(name);
	return xasprintf("%s.%s", prefix, name);
}

/* A string member. Returns 1 (set, *out points into the libconfig tree),
 * 0 (absent), -1 (wrong type or empty; error recorded). */
static int get_str(struct ctx *c, const config_setting_t *group, const char *prefix,
                   const char *name, const char **out, config_setting_t **where)
{
	config_setting_t *s = member(group, name);
	if (where != NULL)
		*where = s;
	if (s == NULL)
		return 0;
	char *p = path_of(prefix, name);
	int ret = -1;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		err_at(c, s, "%s must be a string, not %s", p, type_name(config_setting_type(s)));
		goto out;
	}
	const char *v = config_setting_get_string(s);
	if (v == NULL || *v == '\0') {
		err_at(c, s, "%s must not be empty", p);
		goto out;
	}
	for (const char *q = v; *q; q++)
		if (*q == '\r' || *q == '\n') {
			err_at(c, s, "%s must not contain a line break", p);
			goto out;
		}
	*out = v;
	ret = 1;
out:
	free(p);
	return ret;
}

static int is_name_char(int ch)
{
	return isalnum(ch) || ch == '_' || ch == '-' || ch == '*';
}

/*
 * libconfig 1.5 parses an integer written without an L suffix into an int,
 * silently keeping the low 32 bits (4294967301 reads as 5). Find the value
 * as written in the source text for integer setting s: the first
 * "NAME = NUMBER" from s's line whose low 32 bits match what libconfig
 * stored. Returns 1 with *v (saturated to the 64-bit range, *overflow set
 * when it did not fit) and tok (the digits as written, without an L
 * suffix), or 0 when the text could not be matched (use libconfig's value).
 */
static int written_int(struct ctx *c, const config_setting_t *s, long long *v, int *overflow,
                       char *tok, size_t toksz)
{
	const char *name = config_setting_name(s);
	size_t llen = 0;
	const char *line = src_line(c, config_setting_source_file(s), config_setting_source_line(s), &llen);
	if (name == NULL || line == NULL)
		return 0;
	size_t nl = strlen(name);
	int stored = config_setting_get_int(s);
	for (const char *p = line; p + nl <= line + llen; p++) {
		if (strncmp(p, name, nl) != 0 || (p > line && is_name_char((unsigned char)p[-1])) ||
		    is_name_char((unsigned char)p[nl]))
			continue;
		const char *q = p + nl;
		q += strspn(q, " \t\r\n");
		if (*q != '=' && *q != ':')
			continue;
		q++;
		q += strspn(q, " \t\r\n");
		const char *t0 = q;
		int neg = 0;
		if (*q == '+' || *q == '-')
			neg = *q++ == '-';
		unsigned long long u = 0;
		int ovf = 0, digits = 0;
		if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) {
			q += 2;
			while (isxdigit((unsigned char)*q)) {
				int d = isdigit((unsigned char)*q) ? *q - '0' : (tolower((unsigned char)*q) - 'a' + 10);
				if (u > (~0ULL >> 4))
					ovf = 1;
				u = u * 16 + (unsigned)d;
				q++;
				digits++;
			}
		} else {
			while (isdigit((unsigned char)*q)) {
				if (u > (~0ULL - 9) / 10)
					ovf = 1;
				u = u * 10 + (unsigned)(*q - '0');
				q++;
				digits++;
			}
		}
		if (digits == 0 || *q == '.' || *q == 'e' || *q == 'E')
			continue;
		long long w;
		if (ovf || u > (unsigned long long)LLONG_MAX + (unsigned)neg) {
			ovf = 1;
			w = neg ? LLONG_MIN : LLONG_MAX;
		} else if (neg) {
			w = u == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)u;
		} else {
			w = (long long)u;
		}
		/* the low 32 bits must be what libconfig kept, or it saturated */
		if (!ovf && (int)(unsigned)(unsigned long long)w != stored)
			continue;
		size_t tl = (size_t)(q - t0);
		if (tl >= toksz)
			tl = toksz - 1;
		memcpy(tok, t0, tl);
		tok[tl] = '\0';
		*v = w;
		*overflow = ovf;
		return 1;
	}
	return 0;
}

/*
 * The value of integer setting s (type INT or INT64) in 64 bits, as
 * written. tok gets its text for messages. Returns 0, or -1 when the
 * written number does not fit in 64 bits (*v is then saturated).
 */
static int int_value(struct ctx *c, const config_setting_t *s, long long *v, char *tok, size_t toksz)
{
	int ovf = 0;
	if (config_setting_type(s) == CONFIG_TYPE_INT && written_int(c, s, v, &ovf, tok, toksz))
		return ovf ? -1 : 0;
	*v = config_setting_get_int64(s);
	snprintf(tok, toksz, "%lld", *v);
	return 0;
}

/* An integer member in [min, max]; unit ("seconds", "days" or "") is
 * named in the message about max. Same returns as get_str. */
static int get_long(struct ctx *c, const config_setting_t *group, const char *prefix,
                    const char *name, long *out, long min, long max, const char *unit)
{
	config_setting_t *s = member(group, name);
	if (s == NULL)
		return 0;
	char *p = path_of(prefix, name);
	int ret = -1;
	if (!is_int_type(config_setting_type(s))) {
		err_at(c, s, "%s must be an integer, not %s", p, type_name(config_setting_type(s)));
		goto out;
	}
	long long v;
	char tok[72];
	int fits = int_value(c, s, &v, tok, sizeof(tok)) == 0;
	if (v < min) {
		if (min == 1)
			err_at(c, s, "%s must be greater than 0 (got %s)", p, tok);
		else
			err_at(c, s, "%s must be at least %ld (got %s)", p, min, tok);
		goto out;
	}
	if (!fits || v > max) {
		err_at(c, s, "%s must be at most %ld%s%s (got %s)", p, max,
		       *unit ? " " : "", unit, tok);
		goto out;
	}
	*out = (long)v;
	ret = 1;
out:
	free(p);
	return ret;
}

/* A boolean member. Same returns as get_str. */
static int get_bool(struct ctx *c, const config_setting_t *group, const char *prefix,
                    const char *name, int *out)
{
	config_setting_t *s = member(group, name);
	char *p;

	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		p = path_of(prefix, name);
		err_at(c, s, "%s must be true or false, not %s", p, type_name(config_setting_type(s)));
		free(p);
		return -1;
	}
	*out = config_setting_get_bool(s) != 0;
	return 1;
}

/* A number member (integer accepted) in [lo, hi] (hi < 0: no upper bound),
 * strictly above lo when lo_excl. Same returns as get_str. */
static int get_double(struct ctx *c, const config_setting_t *group, const char *prefix,
                      const char *name, double *out, double lo, int lo_excl, double hi)
{
	config_setting_t *s = member(group, name);
	if (s == NULL)
		return 0;
	char *p = path_of(prefix, name);
	int ret = -1;
	int t = config_setting_type(s);
	double v;
	if (is_int_type(t)) {
		long long iv;
		char tok[72];
		int_value(c, s, &iv, tok, sizeof(tok));
		v = (double)iv;
	} else if (t == CONFIG_TYPE_FLOAT)
		v = config_setting_get_float(s);
	else {
		err_at(c, s, "%s must be a number, not %s", p, type_name(t));
		goto out;
	}
	if (v != v || (lo_excl ? v <= lo : v < lo) || (hi >= 0 && v > hi)) {
		char b[64];
		fmt_double(b, sizeof(b), v);
		if (hi >= 0)
			err_at(c, s, "%s must be between %g and %g (got %s)", p, lo, hi, b);
		else if (lo_excl)
			err_at(c, s, "%s must be greater than %g (got %s)", p, lo, b);
		else
			err_at(c, s, "%s must be at least %g (got %s)", p, lo, b);
		goto out;
	}
	*out = v;
	ret = 1;
out:
	free(p);
	return ret;
}

/* A member that must be a group when present. Returns it, or NULL (absent
 * or wrong type, the latter recorded). */
static config_setting_t *get_group(struct ctx *c, const config_setting_t *parent, const char *prefix,
                                   const char *name)
{
	config_setting_t *s = member(parent, name);
	if (s == NULL)
		return NULL;
	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		char *p = path_of(prefix, name);
		err_at(c, s, "%s must be a group { ... }, not %s", p, type_name(config_setting_type(s)));
		free(p);
		return NULL;
	}
	return s;
}

/* ------------------------------------------------------------------ */
/* Small validators                                                    */

/* One @, non-empty local part and domain, no spaces, controls or <>. */
/* A copy of s fit for a terminal: every control or 8-bit byte becomes '?'
 * (a message must not carry an escape sequence from the file). Heap. */
static char *printable(const char *s)
{
	char *p = xstrdup(s);
	for (unsigned char *q = (unsigned char *)p; *q; q++)
		if (*q < 0x20 || *q >= 0x7f)
			*q = '?';
	return p;
}

static const char *address_problem(const char *a)
{
	const char *at = strchr(a, '@');
	if (at == NULL)
		return "has no @";
	if (strchr(at + 1, '@') != NULL)
		return "has more than one @";
	if (at == a)
		return "has an empty local part";
	if (at[1] == '\0')
		return "has an empty domain";
	for (const unsigned char *p = (const unsigned char *)a; *p; p++) {
		if (*p == ' ' || *p == '\t')
			return "contains a space";
		if (*p < 0x20 || *p == 0x7f)
			return "contains a control character";
		if (*p >= 0x80)
			return "contains a non-ASCII (8-bit) byte: internationalised addresses "
			       "(SMTPUTF8) are not supported";
		if (*p == '<' || *p == '>')
			return "contains < or >";
		if (*p == ',' || *p == ';')
			return "contains , or ;";
	}
	if (strlen(a) > 254)
		return "is longer than 254 characters";
	return NULL;
}

static int label_safe(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == '-'))
			return 0;
	return 1;
}

/* The value is a header "Name: value" acceptable as an extra probe header.
 * Returns NULL or a static problem description. */
static const char *extra_header_problem(const char *h)
{
	static const char *const reserved[] = {
		"To", "Date", "Message-ID", "X-Inboxprobe-Token", "Subject", "From",
		"MIME-Version", "Content-Type", "Content-Transfer-Encoding", NULL
	};
	const char *colon = strchr(h, ':');
	if (colon == NULL)
		return "is not \"Name: value\"";
	if (colon == h)
		return "has an empty field name";
	for (const unsigned char *p = (const unsigned char *)h; p < (const unsigned char *)colon; p++)
		if (*p < 33 || *p > 126)
			return "has an invalid field name (RFC 5322 allows printable ASCII except ':' and space)";
	for (const unsigned char *p = (const unsigned char *)colon + 1; *p; p++)
		if (*p == '\r' || *p == '\n' || (*p < 0x20 && *p != '\t') || *p == 0x7f)
			return "contains a line break or control character";
	if (!utf8_valid(colon + 1, strlen(colon + 1)))
		return "has a value that is not valid UTF-8";
	size_t nlen = (size_t)(colon - h);
	for (size_t i = 0; reserved[i] != NULL; i++)
		if (strlen(reserved[i]) == nlen && strncasecmp(reserved[i], h, nlen) == 0)
			return "sets a header that inboxprobe sets itself";
	/* a run without whitespace can't be folded below 998 octets */
	size_t run = 0;
	for (const char *p = h; *p; p++) {
		run = (*p == ' ' || *p == '\t') ? 0 : run + 1;
		if (run > 900)
			return "has a word longer than 900 characters (cannot be folded)";
	}
	if (strlen(h) > 16384)
		return "is longer than 16384 characters";
	return NULL;
}

static char *basename_noext(const char *path)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	const char *dot = strrchr(b, '.');
	if (dot != NULL && dot != b)
		return xstrndup(b, (size_t)(dot - b));
	return xstrdup(b);
}

/* ------------------------------------------------------------------ */
/* URL                                                                 */

enum url_family { URL_ANY = 0, URL_SMTP, URL_IMAP };

static int parse_url(const char *url, enum url_family fam, const char **scheme_out,
                     char **host_out, int *port_out, char **errstr);

int config_parse_url(const char *url, const char **scheme_out, char **host_out,
                     int *port_out, char **errstr)
{
	return parse_url(url, URL_ANY, scheme_out, host_out, port_out, errstr);
}

/* The scheme of url (before sep, "://") and its default port; -1 with
 * *errstr naming the schemes of fam when it is none of them. */
static int url_scheme(const char *url, const char *sep, enum url_family fam,
                      const char **scheme, int *port, char **errstr)
{
	static const struct {
		const char *name;
		int port;
	} schemes[] = { { "smtp", 587 }, { "smtps", 465 }, { "imap", 143 }, { "imaps", 993 } };
	size_t slen = (size_t)(sep - url);

	*scheme = NULL;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strlen(schemes[i].name) == slen && strncasecmp(url, schemes[i].name, slen) == 0) {
			*scheme = schemes[i].name;
			*port = schemes[i].port;
		}
	if (*scheme == NULL) {
		*errstr = xasprintf("unsupported URL scheme \"%.*s\" (use %s)",
		                    (int)(slen > 32 ? 32 : slen), url,
		                    fam == URL_SMTP ? "smtp or smtps" :
		                    fam == URL_IMAP ? "imap or imaps" : "smtp, smtps, imap or imaps");
		return -1;
	}
	return 0;
}

/* A bracketed IPv6 host (RFC 3986 IP-literal) at p, alen bytes of
 * authority: [*hs, *he) the address, *after the byte after ']'. */
static int url_host_ipv6(const char *p, size_t alen, const char *shown, const char **hs,
                         const char **he, const char **after, char **errstr)
{
	const char *close = memchr(p, ']', alen);
	int colons = 0;

	if (close == NULL) {
		*errstr = xasprintf("URL \"%s\": unterminated [IPv6] address", shown);
		return -1;
	}
	*hs = p + 1;
	*he = close;
	if (*he == *hs) {
		*errstr = xasprintf("URL \"%s\": empty host", shown);
		return -1;
	}
	for (const char *q = *hs; q < *he; q++) {
		if (*q == ':')
			colons++;
		else if (!isxdigit((unsigned char)*q) && *q != '.') {
			*errstr = xasprintf("URL \"%s\": invalid IPv6 address", shown);
			return -1;
		}
	}
	if (colons < 2) {
		*errstr = xasprintf("URL \"%s\": invalid IPv6 address", shown);
		return -1;
	}
	*after = close + 1;
	return 0;
}

/* A host name or IPv4 address at p, up to ':' or alen bytes:
 * [*hs, *he) the name, *after the byte after it. */
static int url_host_name(const char *p, size_t alen, const char *shown, const char **hs,
                         const char **he, const char **after, char **errstr)
{
	*hs = p;
	*he = memchr(p, ':', alen);
	if (*he == NULL)
		*he = p + alen;
	if (*he == *hs) {
		*errstr = xasprintf("URL \"%s\": empty host", shown);
		return -1;
	}
	for (const char *q = *hs; q < *he; q++)
		if (!isalnum((unsigned char)*q) && *q != '-' && *q != '.' && *q != '_') {
			*errstr = xasprintf("URL \"%s\": invalid character in host name", shown);
			return -1;
		}
	if (**hs == '.' || **hs == '-') {
		*errstr = xasprintf("URL \"%s\": invalid host name", shown);
		return -1;
	}
	*after = *he;
	return 0;
}

/* The ":port" in [after, aend), if any, into *port (1..65535). */
static int url_port(const char *after, const char *aend, const char *shown, int *port,
                    char **errstr)
{
	long v = 0;

	if (after >= aend)
		return 0;
	if (*after != ':' || after + 1 == aend) {
		*errstr = xasprintf("URL \"%s\": expected :port after the host", shown);
		return -1;
	}
	for (const char *q = after + 1; q < aend; q++) {
		if (!isdigit((unsigned char)*q) || v > 65535) {
			*errstr = xasprintf("URL \"%s\": invalid port", shown);
			return -1;
		}
		v = v * 10 + (*q - '0');
	}
	if (v < 1 || v > 65535) {
		*errstr = xasprintf("URL \"%s\": port must be 1..65535", shown);
		return -1;
	}
	*port = (int)v;
	return 0;
}

/* config_parse_url(); an unknown scheme's message names only the schemes
 * of fam (a known scheme of the other family is the caller's to refuse). */
static int parse_url_inner(const char *url, const char *shown, enum url_family fam,
                           const char **scheme_out, char **host_out, int *port_out,
                           char **errstr)
{
	const char *scheme = NULL;
	int port = 0;

	if (url == NULL || *url == '\0') {
		*errstr = xstrdup("empty URL");
		return -1;
	}
	const char *sep = strstr(url, "://");
	if (sep == NULL) {
		*errstr = xasprintf("\"%s\" is not a URL (expected scheme://host[:port])", shown);
		return -1;
	}
	if (url_scheme(url, sep, fam, &scheme, &port, errstr) != 0)
		return -1;
	const char *p = sep + 3;
	/* authority ends at '/', '?', '#' or the end */
	size_t alen = strcspn(p, "/?#");
	const char *rest = p + alen;
	if (*rest == '/' && rest[1] == '\0')
		rest++;             /* a lone trailing slash is harmless */
	if (*rest != '\0') {
		*errstr = xasprintf("URL \"%s\": no path, query or fragment allowed", shown);
		return -1;
	}
	if (memchr(p, '@', alen) != NULL) {
		*errstr = xasprintf("URL \"%s\": no user name allowed in the URL; use username", shown);
		return -1;
	}
	const char *hs, *he, *after;
	if (*p == '[' ? url_host_ipv6(p, alen, shown, &hs, &he, &after, errstr) != 0
	              : url_host_name(p, alen, shown, &hs, &he, &after, errstr) != 0)
		return -1;
	if (url_port(after, p + alen, shown, &port, errstr) != 0)
		return -1;
	if (scheme_out != NULL)
		*scheme_out = scheme;
	if (host_out != NULL)
		*host_out = xstrndup(hs, (size_t)(he - hs));
	if (port_out != NULL)
		*port_out = port;
	return 0;
}

/* The URL as error messages may show it: user information before an '@'
 * in the authority (which may hold a password) is replaced by "***". */
static char *url_for_messages(const char *url)
{
	const char *sep = strstr(url, "://");
	const char *auth = sep ? sep + 3 : url;
	size_t alen = strcspn(auth, "/?#");
	const char *at = NULL;

	for (const char *q = auth; q < auth + alen; q++)
		if (*q == '@')
			at = q;
	if (at == NULL)
		return xstrdup(url);
	return xasprintf("%.*s***%s", (int)(auth - url), url, at);
}

static int parse_url(const char *url, enum url_family fam, const char **scheme_out,
                     char **host_out, int *port_out, char **errstr)
{
	char *shown = url_for_messages(url);
	int r = parse_url_inner(url, shown, fam, scheme_out, host_out, port_out, errstr);

	free(shown);
	return r;
}

/* ------------------------------------------------------------------ */
/* Secrets in a block: password / password_file / password_env        */

/* A CR, LF or NUL in a secret would end the IMAP or SMTP command that
 * carries it and let the rest be read as commands of their own: refuse it
 * at load, naming the setting and where the value came from (never the
 * value). Returns 0, or -1 after recording the error at s. */
static int secret_bad_bytes(struct ctx *c, const config_setting_t *s, const char *prefix,
                            const char *key, const char *source, const char *v)
{
	if (strpbrk(v, "\r\n") == NULL)
		return 0;
	err_at(c, s, "%s.%s: %s holds a CR or LF (a line break): a password must be one line "
	       "without CR, LF or NUL", prefix, key, source);
	return -1;
}

/* An inline password in a file readable by group or others is refused
 * (docs/SPEC.md "Secrets"): the file holding the setting (the
 * configuration or the file it @includes) is checked. Returns 0 or -1. */
static int inline_secret_exposed(struct ctx *c, const config_setting_t *s, const char *prefix)
{
	const char *file = config_setting_source_file(s);
	char *path;
	struct stat st;
	int ret = 0;

	if (file == NULL)
		file = c->file;
	/* libconfig names an included file as the directive wrote it */
	if (file[0] != '/' && file != c->file && c->incdir != NULL)
		path = xasprintf("%s/%s", c->incdir, file);
	else
		path = xstrdup(file);
	if (stat(path, &st) != 0) {
		err_at(c, s, "%s.password: %s: cannot check who may read it: %s", prefix, path,
		       strerror(errno));
		ret = -1;
	} else if (st.st_mode & 044) {
		err_at(c, s, "%s.password: %s holds a password and is readable by group or others "
		       "(mode %04o); chmod 600 it, or use password_file", prefix, path,
		       (unsigned)(st.st_mode & 07777));
		ret = -1;
	}
	free(path);
	return ret;
}

/* Returns 1 with *out (heap) set, 0 when none configured, -1 on error. */
static int get_secret(struct ctx *c, const config_setting_t *group, const char *prefix, char **out)
{
	config_setting_t *sp, *sf, *se;
	const char *vp = NULL, *vf = NULL, *ve = NULL;
	int rp = get_str(c, group, prefix, "password", &vp, &sp);
	int rf = get_str(c, group, prefix, "password_file", &vf, &sf);
	int re = get_str(c, group, prefix, "password_env", &ve, &se);
	int n = (sp != NULL) + (sf != NULL) + (se != NULL);
	if (n > 1) {
		config_setting_t *second = sp != NULL ? (sf != NULL ? sf : se) : se;
		err_at(c, second, "%s: set only one of password, password_file and password_env",
		       prefix);
		return -1;
	}
	if (rp < 0 || rf < 0 || re < 0)
		return -1;
	if (rp > 0) {
		/* get_str() refused a line break already */
		if (inline_secret_exposed(c, sp, prefix) != 0)
			return -1;
		*out = xstrdup(vp);
		return 1;
	}
	if (rf > 0) {
		size_t len;
		char *what = path_of(prefix, "password_file");
		char *s = read_secret_file(c, sf, what, vf, &len);
		if (s != NULL && (memchr(s, '\0', len) != NULL || memchr(s, '\n', len) != NULL ||
		                  memchr(s, '\r', len) != NULL)) {
			err_at(c, sf, "%s: %s: holds more than one line or a NUL byte", what, vf);
			wipe_free(s, len);
			s = NULL;
		}
		free(what);
		if (s == NULL)
			return -1;
		*out = s;
		return 1;
	}
	if (re > 0) {
		const char *v = getenv(ve);
		if (v == NULL || *v == '\0') {
			err_at(c, se, "%s.password_env: environment variable %s is not set or empty",
			       prefix, ve);
			return -1;
		}
		char *src = xasprintf("environment variable %s", ve);
		int bad = secret_bad_bytes(c, se, prefix, "password_env", src, v);
		free(src);
		if (bad)
			return -1;
		*out = xstrdup(v);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* IMAP blocks                                                         */

struct imap_raw {
	const config_setting_t *grp;
	const char *url;
	config_setting_t *url_s;
	const char *tls;
	config_setting_t *tls_s;
	const char *ca_file;
	config_setting_t *ca_s;
	const char *username;
	char *password;        /* heap, secret */
	int secret_state;      /* 1 set, 0 none, -1 error */
	struct oauth2_conf *oauth2;    /* template from the oauth2 group, or NULL */
	int oauth2_state;      /* 1 set, 0 none, -1 error */
	int mech;              /* auth_mechanism: 0 auto, 1 xoauth2, 2 oauthbearer; -1 unset */
};

static const char *const imap_keys[] = {
	"url", "tls", "ca_file", "username", "password", "password_file", "password_env",
	"oauth2", "auth_mechanism", NULL
};

/* ------------------------------------------------------------------ */
/* OAuth 2.0 (seeds/oauth2_conf.c parses the block)                    */

static void oauth2_err(void *ctx, const struct config_setting_t *s, const char *msg)
{
	err_at(ctx, s, "%s", msg);
}

/* oauth2 group and auth_mechanism of a block: *tmpl (heap) and *mech.
 * Returns 1 set, 0 none, -1 error (reported). */
static int get_oauth2(struct ctx *c, const config_setting_t *g, const char *prefix,
                      int has_password, struct oauth2_conf **tmpl, int *mech)
{
	config_setting_t *og = member(g, "oauth2");
	const char *v;
	config_setting_t *ms;
	*mech = -1;
	if (get_str(c, g, prefix, "auth_mechanism", &v, &ms) > 0) {
		if (strcasecmp(v, "xoauth2") == 0)
			*mech = 1;
		else if (strcasecmp(v, "oauthbearer") == 0)
			*mech = 2;
		else
			err_at(c, ms, "%s.auth_mechanism must be \"xoauth2\" or \"oauthbearer\", not \"%s\"",
			       prefix, v);
	}
	if (og == NULL)
		return 0;
	char *op = path_of(prefix, "oauth2");
	if (has_password)
		err_at(c, og, "%s: set either a password or oauth2, not both", prefix);
	*tmpl = oauth2_conf_parse(og, op, oauth2_err, c);
	free(op);
	return *tmpl ? 1 : -1;
}

static void imap_raw_parse(struct ctx *c, const config_setting_t *grp, const char *prefix,
                           struct imap_raw *r)
{
	memset(r, 0, sizeof(*r));
	r->grp = grp;
	r->mech = -1;
	if (grp == NULL)
		return;
	check_keys(c, grp, prefix, imap_keys);
	get_str(c, grp, prefix, "url", &r->url, &r->url_s);
	get_str(c, grp, prefix, "tls", &r->tls, &r->tls_s);
	get_str(c, grp, prefix, "ca_file", &r->ca_file, &r->ca_s);
	config_setting_t *us;
	get_str(c, grp, prefix, "username", &r->username, &us);
	r->secret_state = get_secret(c, grp, prefix, &r->password);
	r->oauth2_state = get_oauth2(c, grp, prefix, r->secret_state != 0, &r->oauth2, &r->mech);
}

static void imap_raw_free(struct imap_raw *r)
{
	wipe_str(r->password);
	r->password = NULL;
	oauth2_conf_free(r->oauth2);
	r->oauth2 = NULL;
}

static int parse_tls(struct ctx *c, const config_setting_t *s, const char *v, const char *prefix,
                     enum tls_mode *out)
{
	if (strcmp(v, "required") == 0)
		*out = TLS_REQUIRED;
	else if (strcmp(v, "none") == 0)
		*out = TLS_NONE;
	else {
		err_at(c, s, "%s.tls must be \"required\" or \"none\", not \"%s\"", prefix, v);
		return -1;
	}
	return 0;
}

/* A CA bundle must be a readable regular file (libcurl's CAINFO and
 * OpenSSL's CAfile take files, not directories). */
static void check_ca_file(struct ctx *c, const config_setting_t *s, const char *prefix, const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0 || access(path, R_OK) != 0)
		err_at(c, s, "%s.ca_file: %s: %s", prefix, path, strerror(errno));
	else if (S_ISDIR(st.st_mode))
		err_at(c, s, "%s.ca_file: %s: is a directory (name the bundle file, e.g. "
		       "/etc/ssl/certs/ca-certificates.crt)", prefix, path);
	else if (!S_ISREG(st.st_mode))
		err_at(c, s, "%s.ca_file: %s: is not a regular file", prefix, path);
}

/*
 * Merge own over defaults into out and check it. where: setting for errors
 * about missing pieces. default_user: username when none is configured.
 */
static void imap_finish(struct ctx *c, const struct imap_raw *own, const struct imap_raw *def,
                        const config_setting_t *where, const char *prefix,
                        const char *default_user, struct imap_conf *out)
{
	const char *url = own->url ? own->url : def->url;
	const config_setting_t *url_s = own->url ? own->url_s : def->url_s;
	const char *tls = own->tls ? own->tls : def->tls;
	const config_setting_t *tls_s = own->tls ? own->tls_s : def->tls_s;
	const char *ca = own->ca_file ? own->ca_file : def->ca_file;
	const config_setting_t *ca_s = own->ca_file ? own->ca_s : def->ca_s;
	const char *user = own->username ? own->username : def->username;

	out->line = where ? (int)config_setting_source_line(where) : 0;
	out->tls = TLS_REQUIRED;
	if (tls != NULL)
		parse_tls(c, tls_s, tls, own->tls ? prefix : "imap_defaults", &out->tls);
	if (url == NULL) {
		if (own->url_s == NULL && def->url_s == NULL)
			err_at(c, where, "%s: no IMAP url (set %s.url or imap_defaults.url)", prefix, prefix);
	} else {
		const char *scheme = NULL;
		char *e = NULL;
		if (parse_url(url, URL_IMAP, &scheme, &out->host, &out->port, &e) != 0) {
			err_at(c, url_s, "%s.url: %s", own->url ? prefix : "imap_defaults", e);
			free(e);
		} else if (strcmp(scheme, "imap") != 0 && strcmp(scheme, "imaps") != 0) {
			err_at(c, url_s, "%s.url must be an imap:// or imaps:// URL, not %s://",
			       own->url ? prefix : "imap_defaults", scheme);
		} else {
			out->url = xstrdup(url);
			out->implicit_tls = strcmp(scheme, "imaps") == 0;
			if (out->implicit_tls && out->tls == TLS_NONE)
				err_at(c, tls_s, "%s: tls = \"none\" contradicts the imaps:// URL %s "
				       "(use imap:// for plain text)", own->tls ? prefix : "imap_defaults", url);
		}
	}
	if (ca != NULL) {
		out->ca_file = xstrdup(ca);
		if (own->ca_file)
			check_ca_file(c, ca_s, prefix, ca);
	}
	if (user == NULL)
		user = default_user;
	if (user != NULL && *user != '\0')
		out->username = xstrdup(user);
	else if (default_user == NULL || *default_user != '\0')
		/* "" means: the default's own problem was reported already */
		err_at(c, where, "%s: no username (set %s.username)", prefix, prefix);
	/* a secret that failed to load (state < 0) was reported where it is
	 * set, the defaults' once: inheriting blocks stay silent about it */
	out->auth_mechanism = own->mech >= 0 ? own->mech : def->mech >= 0 ? def->mech : 0;
	if (own->oauth2_state != 0 || (own->secret_state == 0 && def->oauth2_state != 0)) {
		/* OAuth 2.0, own or inherited; a failed block was reported where it is */
		const struct oauth2_conf *t = own->oauth2_state != 0 ? own->oauth2 : def->oauth2;
		if (t != NULL && out->username != NULL)
			out->oauth2 = oauth2_conf_for(t, out->username, prefix, where, oauth2_err, c);
		return;
	}
	if (own->secret_state > 0 && own->password != NULL)
		out->password = xstrdup(own->password);
	else if (own->secret_state == 0 && def->secret_state > 0 && def->password != NULL)
		out->password = xstrdup(def->password);
	else if (own->secret_state == 0 && def->secret_state == 0)
		err_at(c, where, "%s: no password (set password, password_file, password_env or oauth2)",
		       prefix);
}

static void imap_conf_free(struct imap_conf *m)
{
	free(m->url);
	free(m->host);
	free(m->ca_file);
	free(m->username);
	wipe_str(m->password);
	oauth2_conf_free(m->oauth2);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------ */
/* Sections                                                            */

static void load_relay(struct ctx *c, const config_setting_t *root, struct relay_conf *r)
{
	static const char *const keys[] = {
		"url", "tls", "ca_file", "username", "password", "password_file", "password_env",
		"oauth2", "auth_mechanism", "from", "connect_timeout", "timeout", "connections", NULL
	};
	r->tls = TLS_REQUIRED;
	r->connect_timeout = 10;
	r->timeout = 30;
	r->connections = 4;
	config_setting_t *g = get_group(c, root, "", "relay");
	if (g == NULL) {
		if (member(root, "relay") == NULL)
			err_at(c, NULL, "no relay section (relay = { url = ...; from = ...; })");
		return;
	}
	check_keys(c, g, "relay", keys);
	const char *v;
	config_setting_t *s, *tls_s = NULL, *url_s = NULL;
	if (get_str(c, g, "relay", "tls", &v, &tls_s) > 0)
		parse_tls(c, tls_s, v, "relay", &r->tls);
	int ru = get_str(c, g, "relay", "url", &v, &url_s);
	if (ru == 0)
		err_at(c, g, "relay: url is required (smtps://host or smtp://host)");
	else if (ru > 0) {
		const char *scheme;
		char *e = NULL;
		if (parse_url(v, URL_SMTP, &scheme, &r->host, &r->port, &e) != 0) {
			err_at(c, url_s, "relay.url: %s", e);
			free(e);
		} else if (strcmp(scheme, "smtp") != 0 && strcmp(scheme, "smtps") != 0) {
			err_at(c, url_s, "relay.url must be an smtp:// or smtps:// URL, not %s://", scheme);
		} else {
			r->url = xstrdup(v);
			r->implicit_tls = strcmp(scheme, "smtps") == 0;
			if (r->implicit_tls && r->tls == TLS_NONE)
				err_at(c, tls_s, "relay: tls = \"none\" contradicts the smtps:// URL %s "
				       "(use smtp:// for plain text)", v);
		}
	}
	if (get_str(c, g, "relay", "ca_file", &v, &s) > 0) {
		r->ca_file = xstrdup(v);
		check_ca_file(c, s, "relay", v);
	}
	config_setting_t *us;
	int has_user = get_str(c, g, "relay", "username", &v, &us);
	if (has_user > 0)
		r->username = xstrdup(v);
	int sec = get_secret(c, g, "relay", &r->password);
	struct oauth2_conf *ot = NULL;
	int mech;
	int oa = get_oauth2(c, g, "relay", sec != 0, &ot, &mech);
	r->auth_mechanism = mech > 0 ? mech : 0;
	if (oa != 0) {
		if (has_user == 0)
			err_at(c, g, "relay: oauth2 needs relay.username (the SASL identity)");
		else if (ot != NULL && r->username != NULL)
			r->oauth2 = oauth2_conf_for(ot, r->username, "relay", g, oauth2_err, c);
		oauth2_conf_free(ot);
		sec = 1;   /* no "username without a password" */
	}
	if (has_user > 0 && sec == 0)
		err_at(c, us, "relay: username without a password (set password, password_file or password_env)");
	if (has_user == 0 && sec > 0)
		err_at(c, g, "relay: a password without a username (set relay.username)");
	int rf = get_str(c, g, "relay", "from", &v, &s);
	if (rf == 0)
		err_at(c, g, "relay: from is required (the probe's sender address)");
	else if (rf > 0) {
		const char *why = address_problem(v);
		if (why != NULL) {
			char *shown = printable(v);
			err_at(c, s, "relay.from \"%s\" is not a valid address: it %s", shown, why);
			free(shown);
		} else {
			r->from = xstrdup(v);
		}
	}
	get_long(c, g, "relay", "connect_timeout", &r->connect_timeout, 1, MAX_TIMEOUT, "seconds");
	get_long(c, g, "relay", "timeout", &r->timeout, 1, MAX_TIMEOUT, "seconds");
	get_long(c, g, "relay", "connections", &r->connections, 1, 64, "");
}

/* An HMAC key file (read_secret_file) of at least HMAC_KEY_MIN bytes;
 * NULL after recording an error at s. */
static char *read_hmac_key(struct ctx *c, const config_setting_t *s, const char *what,
                           const char *path, size_t *len)
{
	char *key = read_secret_file(c, s, what, path, len);

	if (key != NULL && *len < HMAC_KEY_MIN) {
		err_at(c, s, "%s: %s: holds fewer than %d bytes; use a longer key "
		       "(e.g. head -c 32 /dev/urandom)", what, path, HMAC_KEY_MIN);
		wipe_free(key, *len);
		key = NULL;
	}
	return key;
}

/* probe.previous_secret_files: keys of earlier secret_files. Tokens they
 * signed still prove (pending probes of earlier rounds are found and
 * cleaned up after a rotation); new tokens are signed with secret_file. */
static void load_previous_secrets(struct ctx *c, const config_setting_t *g, struct probe_conf *p)
{
	config_setting_t *l = member(g, "previous_secret_files");
	int t, n;

	if (l == NULL)
		return;
	t = config_setting_type(l);
	if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY) {
		err_at(c, l, "probe.previous_secret_files must be a list of file names ( \"PATH\", ... )");
		return;
	}
	if (member(g, "secret_file") == NULL && config_setting_length(l) > 0) {
		err_at(c, l, "probe.previous_secret_files needs probe.secret_file: without a key no "
		       "token is checked, so earlier keys have nothing to do");
		return;
	}
	n = config_setting_length(l);
	p->old_secrets = xcalloc((size_t)n + 1, sizeof *p->old_secrets);
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		char what[48];
		size_t len = 0;
		char *key;

		snprintf(what, sizeof what, "probe.previous_secret_files[%d]", i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING || config_setting_get_string(e)[0] == '\0') {
			err_at(c, e, "%s must be a file name", what);
			continue;
		}
		key = read_hmac_key(c, e, what, config_setting_get_string(e), &len);
		if (key == NULL)
			continue;
		p->old_secrets[p->nold_secrets].key = (unsigned char *)key;
		p->old_secrets[p->nold_secrets++].len = len;
	}
}

static void load_probe(struct ctx *c, const config_setting_t *root, struct probe_conf *p)
{
	static const char *const keys[] = {
		"deadline", "poll_interval", "cleanup", "subject_prefix", "secret_file", "template",
		"headers", "idle", "previous_secret_files", NULL
	};
	p->deadline = 300;
	p->poll_interval = 5;
	p->idle = 1;
	p->cleanup = CLEANUP_DELETE;
	p->subject_prefix = xstrdup("inboxprobe");
	config_setting_t *g = get_group(c, root, "", "probe");
	if (g == NULL)
		return;
	check_keys(c, g, "probe", keys);
	if (get_long(c, g, "probe", "deadline", &p->deadline, 1, MAX_DEADLINE, "seconds") > 0)
		p->deadline_at = where_of(c, member(g, "deadline"));
	get_long(c, g, "probe", "poll_interval", &p->poll_interval, 1, MAX_DEADLINE, "seconds");
	get_bool(c, g, "probe", "idle", &p->idle);
	const char *v;
	config_setting_t *s;
	if (get_str(c, g, "probe", "cleanup", &v, &s) > 0) {
		if (strcmp(v, "delete") == 0)
			p->cleanup = CLEANUP_DELETE;
		else if (strcmp(v, "trash") == 0)
			p->cleanup = CLEANUP_TRASH;
		else if (strcmp(v, "keep") == 0)
			p->cleanup = CLEANUP_KEEP;
		else
			err_at(c, s, "probe.cleanup must be \"delete\", \"trash\" or \"keep\", not \"%s\"", v);
	}
	if (get_str(c, g, "probe", "subject_prefix", &v, &s) > 0) {
		int bad = 0;
		for (const unsigned char *q = (const unsigned char *)v; *q; q++)
			if (*q < 0x20 || *q == 0x7f)
				bad = 1;
		if (bad)
			err_at(c, s, "probe.subject_prefix must not contain control characters");
		else if (!utf8_valid(v, strlen(v)))
			err_at(c, s, "probe.subject_prefix is not valid UTF-8");
		else if (strlen(v) > 200)
			err_at(c, s, "probe.subject_prefix is longer than 200 bytes");
		else {
			free(p->subject_prefix);
			p->subject_prefix = xstrdup(v);
		}
	}
	if (get_str(c, g, "probe", "secret_file", &v, &s) > 0) {
		size_t len = 0;
		char *key = read_hmac_key(c, s, "probe.secret_file", v, &len);
		if (key != NULL) {
			p->secret = (unsigned char *)key;
			p->secret_len = len;
		}
	}
	load_previous_secrets(c, g, p);
	if (get_str(c, g, "probe", "template", &v, &s) > 0) {
		char *e = NULL;
		size_t len = 0;
		char *text = read_text_file(c, s, "probe.template", v, TEMPLATE_MAX, "1 MiB", &len);
		if (text != NULL && message_template_check(text, len, &e) != 0) {
			err_at(c, s, "probe.template: %s: %s", v, e ? e : "not an RFC 5322 message");
			free(e);
			free(text);
		} else if (text != NULL) {
			p->template_path = xstrdup(v);
			p->template_text = text;
		}
	}
	config_setting_t *h = member(g, "headers");
	if (h != NULL) {
		int t = config_setting_type(h);
		if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY) {
			err_at(c, h, "probe.headers must be a list of strings ( \"Name: value\", ... )");
		} else {
			int n = config_setting_length(h);
			p->headers = xcalloc((size_t)n + 1, sizeof(char *));
			for (int i = 0; i < n; i++) {
				config_setting_t *e = config_setting_get_elem(h, (unsigned)i);
				if (config_setting_type(e) != CONFIG_TYPE_STRING) {
					err_at(c, e, "probe.headers[%d] must be a string", i);
					continue;
				}
				const char *hv = config_setting_get_string(e);
				const char *why = extra_header_problem(hv);
				if (why != NULL) {
					/* name the header, never the whole value */
					size_t nl = strcspn(hv, ":");
					err_at(c, e, "probe.headers[%d] \"%.*s\" %s", i,
					       (int)(nl > 64 ? 64 : nl), hv, why);
					continue;
				}
				p->headers[p->nheaders++] = xstrdup(hv);
			}
		}
	}
}

static void load_limits(struct ctx *c, const config_setting_t *root, struct imap_limits *l)
{
	static const char *const keys[] = { "per_host", "per_account", "connect_timeout", "timeout", NULL };
	l->per_host = 64;
	l->per_account = 2;
	l->connect_timeout = 10;
	l->timeout = 30;
	config_setting_t *g = get_group(c, root, "", "imap_limits");
	if (g == NULL)
		return;
	check_keys(c, g, "imap_limits", keys);
	get_long(c, g, "imap_limits", "per_host", &l->per_host, 1, MAX_CONNECTIONS, "");
	if (member(g, "per_host") != NULL)
		l->per_host_at = where_of(c, member(g, "per_host"));
	get_long(c, g, "imap_limits", "per_account", &l->per_account, 1, MAX_CONNECTIONS, "");
	get_long(c, g, "imap_limits", "connect_timeout", &l->connect_timeout, 1, MAX_TIMEOUT, "seconds");
	get_long(c, g, "imap_limits", "timeout", &l->timeout, 1, MAX_TIMEOUT, "seconds");
}

const char *const config_auth_methods[AUTH_REQ_METHODS] = {
	"spf", "dkim", "dmarc", "iprev", "auth", "bimi", "compauth"
};

/* slo.require_auth = ( "spf", "dkim", "dmarc" ): bits of config_auth_methods. */
static void load_require_auth(struct ctx *c, const config_setting_t *g, unsigned *bits)
{
	config_setting_t *s = member(g, "require_auth");
	if (s == NULL)
		return;
	if (config_setting_type(s) != CONFIG_TYPE_LIST && config_setting_type(s) != CONFIG_TYPE_ARRAY) {
		err_at(c, s, "slo.require_auth must be a list ( \"spf\", \"dkim\", \"dmarc\" ), not %s",
		       type_name(config_setting_type(s)));
		return;
	}
	for (int i = 0; i < config_setting_length(s); i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_type(e) == CONFIG_TYPE_STRING ? config_setting_get_string(e) : NULL;
		int k = -1;
		for (int m = 0; v && m < AUTH_REQ_METHODS; m++)
			if (strcasecmp(v, config_auth_methods[m]) == 0)
				k = m;
		if (v && strcasecmp(v, "arc") == 0)
			err_at(c, e, "slo.require_auth: \"arc\" cannot be required: arc=none is normal "
			       "for mail that was not forwarded");
		else if (k < 0)
			err_at(c, e, "slo.require_auth: unknown method %s%s%s (spf, dkim, dmarc, iprev, auth, "
			       "bimi, compauth)", v ? "\"" : "", v ? v : "(not a string)", v ? "\"" : "");
		else
			*bits |= 1u << k;
	}
}

static void load_slo(struct ctx *c, const config_setting_t *root, struct config *cfg)
{
	static const char *const keys[] = {
		"min_inbox_ratio", "max_latency_p99", "max_missing", "evaluate", "window",
		"min_samples", "providers", "require_auth", "min_primary_ratio", NULL
	};
	static const char *const okeys[] = { "min_inbox_ratio", "max_latency_p99", "max_missing", NULL };
	struct slo_conf *s = &cfg->slo;
	s->min_inbox_ratio = 0.90;
	s->max_latency_p99 = 300;
	s->max_missing = -1;
	s->evaluate_window = 0;
	s->window = 3600;
	s->min_samples = 1;
	s->require_auth = 0;
	s->min_primary_ratio = -1;
	config_setting_t *g = get_group(c, root, "", "slo");
	if (g == NULL)
		return;
	check_keys(c, g, "slo", keys);
	load_require_auth(c, g, &s->require_auth);
	get_double(c, g, "slo", "min_primary_ratio", &s->min_primary_ratio, 0, 0, 1);
	get_double(c, g, "slo", "min_inbox_ratio", &s->min_inbox_ratio, 0, 0, 1);
	get_double(c, g, "slo", "max_latency_p99", &s->max_latency_p99, 0, 1, -1);
	get_long(c, g, "slo", "max_missing", &s->max_missing, 0, MAX_COUNT, "");
	const char *v;
	config_setting_t *es;
	if (get_str(c, g, "slo", "evaluate", &v, &es) > 0) {
		if (strcmp(v, "round") == 0)
			s->evaluate_window = 0;
		else if (strcmp(v, "window") == 0)
			s->evaluate_window = 1;
		else
			err_at(c, es, "slo.evaluate must be \"round\" or \"window\", not \"%s\"", v);
	}
	get_long(c, g, "slo", "window", &s->window, 1, MAX_WINDOW, "seconds (90 days)");
	get_long(c, g, "slo", "min_samples", &s->min_samples, 1, MAX_COUNT, "");
	config_setting_t *pg = get_group(c, g, "slo", "providers");
	if (pg == NULL)
		return;
	int n = config_setting_length(pg);
	cfg->slo_overrides = xcalloc((size_t)n + 1, sizeof(*cfg->slo_overrides));
	for (int i = 0; i < n; i++) {
		config_setting_t *og = config_setting_get_elem(pg, (unsigned)i);
		const char *pname = config_setting_name(og);
		char *prefix = xasprintf("slo.providers.%s", pname ? pname : "?");
		if (config_setting_type(og) != CONFIG_TYPE_GROUP) {
			err_at(c, og, "%s must be a group { min_inbox_ratio = ...; }", prefix);
			free(prefix);
			continue;
		}
		check_keys(c, og, prefix, okeys);
		struct slo_override *o = &cfg->slo_overrides[cfg->nslo_overrides++];
		o->provider = xstrdup(pname ? pname : "");
		o->has_min_inbox_ratio = get_double(c, og, prefix, "min_inbox_ratio", &o->min_inbox_ratio, 0, 0, 1) > 0;
		o->has_max_latency_p99 = get_double(c, og, prefix, "max_latency_p99", &o->max_latency_p99, 0, 1, -1) > 0;
		o->has_max_missing = get_long(c, og, prefix, "max_missing", &o->max_missing, 0, MAX_COUNT, "") > 0;
		free(prefix);
	}
}

/* providers = { NAME = { authserv_id = ( "mx.google.com" ); auth_results = "microsoft"; }; } */
static void load_provider(struct ctx *c, config_setting_t *og, const char *prefix,
                          struct provider_conf *pc)
{
	static const char *const keys[] = { "authserv_id", "auth_results", NULL };
	config_setting_t *ids = member(og, "authserv_id"), *es;
	const char *v;

	check_keys(c, og, prefix, keys);
	pc->microsoft = -1;
	if (ids != NULL && config_setting_type(ids) == CONFIG_TYPE_STRING) {
		pc->authserv_ids = xcalloc(1, sizeof *pc->authserv_ids);
		pc->authserv_ids[pc->nauthserv_ids++] = xstrdup(config_setting_get_string(ids));
	} else if (ids != NULL && (config_setting_type(ids) == CONFIG_TYPE_LIST ||
	                           config_setting_type(ids) == CONFIG_TYPE_ARRAY)) {
		int n = config_setting_length(ids);
		pc->authserv_ids = xcalloc((size_t)n + 1, sizeof *pc->authserv_ids);
		for (int i = 0; i < n; i++) {
			config_setting_t *e = config_setting_get_elem(ids, (unsigned)i);
			const char *id = config_setting_type(e) == CONFIG_TYPE_STRING ? config_setting_get_string(e) : NULL;
			if (id == NULL || !*id || strchr(id + (id[0] == '*'), '*') || (id[0] == '*' && id[1] != '.'))
				err_at(c, e, "%s.authserv_id: each pattern is a host name or \"*.suffix\"", prefix);
			else
				pc->authserv_ids[pc->nauthserv_ids++] = xstrdup(id);
		}
	} else if (ids != NULL) {
		err_at(c, ids, "%s.authserv_id must be a list of strings ( \"mx.example.net\", \"*.example.net\" )",
		       prefix);
	}
	if (get_str(c, og, prefix, "auth_results", &v, &es) > 0) {
		if (strcmp(v, "microsoft") == 0)
			pc->microsoft = 1;
		else if (strcmp(v, "standard") == 0)
			pc->microsoft = 0;
		else
			err_at(c, es, "%s.auth_results must be \"standard\" or \"microsoft\", not \"%s\"", prefix, v);
	}
}

static void load_providers(struct ctx *c, const config_setting_t *root, struct config *cfg)
{
	config_setting_t *g = get_group(c, root, "", "providers");
	if (g == NULL)
		return;
	int n = config_setting_length(g);
	cfg->provider_confs = xcalloc((size_t)n + 1, sizeof *cfg->provider_confs);
	for (int i = 0; i < n; i++) {
		config_setting_t *og = config_setting_get_elem(g, (unsigned)i);
		const char *pname = config_setting_name(og);
		char *prefix = xasprintf("providers.%s", pname ? pname : "?");
		if (config_setting_type(og) != CONFIG_TYPE_GROUP) {
			err_at(c, og, "%s must be a group { authserv_id = ( ... ); }", prefix);
		} else {
			struct provider_conf *pc = &cfg->provider_confs[cfg->nprovider_confs++];
			pc->name = xstrdup(pname ? pname : "");
			load_provider(c, og, prefix, pc);
		}
		free(prefix);
	}
}

const struct provider_conf *config_provider(const struct config *cfg, const char *provider)
{
	for (size_t i = 0; provider && i < cfg->nprovider_confs; i++)
		if (strcmp(cfg->provider_confs[i].name, provider) == 0)
			return &cfg->provider_confs[i];
	return NULL;
}

static void load_report(struct ctx *c, const config_setting_t *root, struct report_conf *r)
{
	static const char *const keys[] = { "textfile", "openmetrics", "json", "junit", NULL };
	config_setting_t *g = get_group(c, root, "", "report");
	if (g == NULL)
		return;
	check_keys(c, g, "report", keys);
	const char *v;
	if (get_str(c, g, "report", "textfile", &v, NULL) > 0)
		r->textfile = xstrdup(v);
	if (get_str(c, g, "report", "openmetrics", &v, NULL) > 0)
		r->openmetrics = xstrdup(v);
	if (get_str(c, g, "report", "json", &v, NULL) > 0)
		r->json = xstrdup(v);
	if (get_str(c, g, "report", "junit", &v, NULL) > 0)
		r->junit = xstrdup(v);
}

static void load_state(struct ctx *c, const config_setting_t *root, struct state_conf *st)
{
	static const char *const keys[] = { "path", "retention_days", NULL };
	st->retention_days = 30;
	config_setting_t *g = get_group(c, root, "", "state");
	if (g == NULL)
		return;
	check_keys(c, g, "state", keys);
	const char *v;
	if (get_str(c, g, "state", "path", &v, NULL) > 0)
		st->path = xstrdup(v);
	get_long(c, g, "state", "retention_days", &st->retention_days, 1, MAX_RETENTION_DAYS, "days");
}

/* schedule = { interval; jitter; } (daemon only). */
static void load_schedule(struct ctx *c, const config_setting_t *root, struct schedule_conf *sc)
{
	static const char *const keys[] = { "interval", "jitter", NULL };
	config_setting_t *g, *js;

	sc->interval = 300;
	sc->jitter = 0;
	g = get_group(c, root, "", "schedule");
	if (g == NULL)
		return;
	check_keys(c, g, "schedule", keys);
	if (get_long(c, g, "schedule", "interval", &sc->interval, 1, MAX_DEADLINE, "seconds") > 0)
		sc->at = where_of(c, member(g, "interval"));
	else
		sc->at = where_of(c, g);
	js = member(g, "jitter");
	if (get_long(c, g, "schedule", "jitter", &sc->jitter, 0, MAX_DEADLINE, "seconds") > 0 &&
	    sc->jitter > 0 && sc->jitter >= sc->interval) {
		err_at(c, js, "schedule.jitter (%ld) must be less than schedule.interval (%ld): "
		       "rounds would start in another round's slot; set jitter below %ld or raise "
		       "interval", sc->jitter, sc->interval, sc->interval);
		sc->jitter = 0;
	}
}

/* "host:port", "[v6]:port" or ":port" (every address). Returns NULL when
 * valid (host heap or NULL, port set), else a static description. */
static const char *parse_listen(const char *v, char **host, int *port)
{
	const char *colon, *hs, *he;
	char *end;
	long p;

	*host = NULL;
	if (v[0] == '[') {
		he = strchr(v, ']');
		if (he == NULL || he[1] != ':')
			return "an IPv6 address must be written [addr]:port";
		hs = v + 1;
		colon = he + 1;
		if (he == hs)
			return "empty IPv6 address";
	} else {
		colon = strrchr(v, ':');
		if (colon == NULL)
			return "no port (write host:port, [v6]:port or :port)";
		hs = v;
		he = colon;
		if (memchr(hs, ':', (size_t)(he - hs)) != NULL)
			return "an IPv6 address must be written [addr]:port";
	}
	for (const char *q = hs; q < he; q++)
		if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != ':' && *q != '%' &&
		    *q != '_')
			return "the host holds a character that is not allowed in a name or address";
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || p < 1 || p > 65535 ||
	    !isdigit((unsigned char)colon[1]))
		return "the port must be a number from 1 to 65535";
	*port = (int)p;
	if (he > hs)
		*host = xstrndup(hs, (size_t)(he - hs));
	return NULL;
}

/* web = { listen_address; } (daemon only). */
static void load_web(struct ctx *c, const config_setting_t *root, struct web_conf *w)
{
	static const char *const keys[] = { "listen_address", "config_file", NULL };
	const char *v = "127.0.0.1:9788", *why, *f;
	config_setting_t *g, *s = NULL;

	g = get_group(c, root, "", "web");
	if (g != NULL) {
		check_keys(c, g, "web", keys);
		if (get_str(c, g, "web", "config_file", &f, NULL) > 0)
			w->config_file = xstrdup(f);   /* read by the daemon (reports/webconfig.h) */
		if (get_str(c, g, "web", "listen_address", &v, &s) < 0)
			return;
	}
	why = parse_listen(v, &w->host, &w->port);
	if (why != NULL) {
		err_at(c, s, "web.listen_address '%s': %s", v, why);
		return;
	}
	w->listen_address = xstrdup(v);
}

/* One seed in a sorted view: its key (address or provider) and index. */
struct seed_key {
	const char *key;
	size_t index;
};

static int seed_key_cmp_ci(const void *a, const void *b)
{
	const struct seed_key *x = a, *y = b;
	int r = strcasecmp(x->key, y->key);
	return r != 0 ? r : (x->index > y->index) - (x->index < y->index);
}

static int seed_key_cmp(const void *a, const void *b)
{
	const struct seed_key *x = a, *y = b;
	int r = strcmp(x->key, y->key);
	return r != 0 ? r : (x->index > y->index) - (x->index < y->index);
}

static int seed_index_cmp(const void *a, const void *b)
{
	const struct seed_key *x = a, *y = b;
	return (x->index > y->index) - (x->index < y->index);
}

/* The seeds sorted by key (NULL keys left out), ties in file order; *n
 * gets their number. O(n log n): 40,000 seeds must not take seconds. */
static struct seed_key *seeds_sorted(const struct config *cfg, int by_provider, size_t *n,
                                     int (*cmp)(const void *, const void *))
{
	struct seed_key *v = xcalloc(cfg->nseeds, sizeof(*v));
	size_t k = 0;

	for (size_t i = 0; i < cfg->nseeds; i++) {
		const char *key = by_provider ? cfg->seeds[i].provider : cfg->seeds[i].address;
		if (key != NULL) {
			v[k].key = key;
			v[k++].index = i;
		}
	}
	qsort(v, k, sizeof(*v), cmp);
	*n = k;
	return v;
}

/* A seed address (case-insensitive) that an earlier seed has: an error at
 * the later one's address naming the first one's line. */
static void seeds_find_duplicates(struct ctx *c, const struct config *cfg,
                                  config_setting_t *const *addr_s)
{
	size_t n;
	struct seed_key *v = seeds_sorted(cfg, 0, &n, seed_key_cmp_ci);

	for (size_t i = 1, first = 0; i < n; i++) {
		if (strcasecmp(v[i].key, v[first].key) != 0) {
			first = i;
			continue;
		}
		err_at(c, addr_s[v[i].index], "seeds[%zu].address %s is a duplicate of the seed on line %d",
		       v[i].index, v[i].key, cfg->seeds[v[first].index].line);
	}
	free(v);
}

/* cfg->providers: the distinct providers in first-seen order. */
static void seeds_collect_providers(struct config *cfg)
{
	size_t n, k = 0;
	struct seed_key *v = seeds_sorted(cfg, 1, &n, seed_key_cmp);

	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(v[i].key, v[k - 1].key) != 0)
			v[k++] = v[i];          /* the first seed of each provider */
	qsort(v, k, sizeof(*v), seed_index_cmp);
	cfg->providers = xcalloc(k ? k : 1, sizeof(char *));
	for (size_t i = 0; i < k; i++)
		cfg->providers[i] = xstrdup(v[i].key);
	cfg->nproviders = k;
	free(v);
}

static void load_seeds(struct ctx *c, const config_setting_t *root, const struct imap_raw *def,
                       struct config *cfg)
{
	static const char *const keys[] = { "address", "provider", "imap", "spam_folder", NULL };
	config_setting_t *l = member(root, "seeds");
	if (l == NULL) {
		err_at(c, NULL, "no seeds: at least one seed is required (seeds = ( { address = ...; } );)");
		return;
	}
	if (config_setting_type(l) != CONFIG_TYPE_LIST) {
		err_at(c, l, "seeds must be a list ( { ... }, { ... } ), not %s",
		       type_name(config_setting_type(l)));
		return;
	}
	int n = config_setting_length(l);
	if (n == 0) {
		err_at(c, l, "seeds is empty: at least one seed is required");
		return;
	}
	cfg->seeds = xcalloc((size_t)n, sizeof(*cfg->seeds));
	config_setting_t **addr_s = xcalloc((size_t)n, sizeof(*addr_s));
	for (int i = 0; i < n; i++) {
		config_setting_t *sg = config_setting_get_elem(l, (unsigned)i);
		char *prefix = xasprintf("seeds[%d]", i);
		if (config_setting_type(sg) != CONFIG_TYPE_GROUP) {
			err_at(c, sg, "%s must be a group { address = ...; provider = ...; }", prefix);
			free(prefix);
			continue;
		}
		struct seed_conf *sd = &cfg->seeds[cfg->nseeds++];
		sd->line = (int)config_setting_source_line(sg);
		check_keys(c, sg, prefix, keys);
		const char *v;
		config_setting_t *s;
		int ra = get_str(c, sg, prefix, "address", &v, &s);
		if (ra == 0)
			err_at(c, sg, "%s: address is required", prefix);
		else if (ra > 0) {
			const char *why = address_problem(v);
			if (why != NULL) {
				char *shown = printable(v);
				err_at(c, s, "%s.address \"%s\" is not a valid address: it %s", prefix, shown,
				       why);
				free(shown);
			} else {
				sd->address = xstrdup(v);
				addr_s[cfg->nseeds - 1] = s;
			}
		}
		int rp = get_str(c, sg, prefix, "provider", &v, &s);
		if (rp == 0)
			err_at(c, sg, "%s: provider is required", prefix);
		else if (rp > 0) {
			if (!label_safe(v))
				err_at(c, s, "%s.provider \"%s\" must match [a-z0-9_.-]+", prefix, v);
			else
				sd->provider = xstrdup(v);
		}
		if (get_str(c, sg, prefix, "spam_folder", &v, &s) > 0) {
			int ascii = 1;
			for (const unsigned char *q = (const unsigned char *)v; *q; q++)
				if (*q >= 0x80)
					ascii = 0;
			if (ascii)
				sd->spam_folder = xstrdup(v);
			else if ((sd->spam_folder = mutf7_encode(v)) == NULL)
				err_at(c, s, "%s.spam_folder is not valid UTF-8", prefix);
		}
		char *iprefix = xasprintf("%s.imap", prefix);
		config_setting_t *ig = get_group(c, sg, prefix, "imap");
		struct imap_raw own;
		imap_raw_parse(c, ig, iprefix, &own);
		imap_finish(c, &own, def, sg, iprefix, sd->address ? sd->address : "", &sd->imap);
		imap_raw_free(&own);
		free(iprefix);
		free(prefix);
	}
	seeds_find_duplicates(c, cfg, addr_s);
	seeds_collect_providers(cfg);
	free(addr_s);
}

/* ------------------------------------------------------------------ */

/*
 * libconfig says only "duplicate setting name" at the line of the second
 * occurrence. Name it from the text: the setting names ("NAME =" or
 * "NAME :", outside strings and comments) on that line; one name, or one
 * that occurs twice on the line, is the duplicate. Otherwise quote the
 * line, unless it may hold a password. Heap result.
 */
static char *describe_duplicate(struct ctx *c, const char *file, unsigned line)
{
	size_t n = 0;
	const char *t = src_line(c, file, line, &n);
	if (t == NULL)
		return xstrdup("duplicate setting name");
	enum { MAXN = 16 };
	const char *names[MAXN];
	size_t lens[MAXN], nn = 0;
	for (size_t i = 0; i < n;) {
		unsigned char ch = (unsigned char)t[i];
		if (ch == '"') {
			/* skip a string, with its escapes */
			for (i++; i < n && t[i] != '"'; i++)
				if (t[i] == '\\')
					i++;
			i++;
			continue;
		}
		if (ch == '#' || (ch == '/' && i + 1 < n && t[i + 1] == '/'))
			break;
		if (isalpha(ch) || ch == '*') {
			size_t st = i;
			while (i < n && is_name_char((unsigned char)t[i]))
				i++;
			size_t k = i;
			while (k < n && (t[k] == ' ' || t[k] == '\t'))
				k++;
			if (k < n && (t[k] == '=' || t[k] == ':') && nn < MAXN) {
				names[nn] = t + st;
				lens[nn++] = i - st;
			}
			continue;
		}
		i++;
	}
	const char *dup = NULL;
	size_t dl = 0;
	if (nn == 1) {
		dup = names[0];
		dl = lens[0];
	}
	for (size_t a = 0; dup == NULL && a < nn; a++)
		for (size_t b = a + 1; b < nn; b++)
			if (lens[a] == lens[b] && memcmp(names[a], names[b], lens[a]) == 0) {
				dup = names[a];
				dl = lens[a];
				break;
			}
	if (dup != NULL)
		return xasprintf("duplicate setting name '%.*s': it is already set in the same "
		                 "group; remove one of them", (int)dl, dup);
	int secret = 0;
	for (size_t i = 0; i + 8 <= n; i++)
		if (strncasecmp(t + i, "password", 8) == 0)
			secret = 1;
	if (secret || n > 200)
		return xstrdup("duplicate setting name");
	return xasprintf("duplicate setting name (line: \"%.*s\")", (int)n, t);
}

/* The file name of an @include directive on line [p, e): the text
 * between the quotes of `@include "NAME"` (after blanks), or NULL. Heap. */
static char *include_name(const char *p, const char *e)
{
	const char *q;

	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	if ((size_t)(e - p) < 8 || strncmp(p, "@include", 8) != 0)
		return NULL;
	p += 8;
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	if (p == e || *p != '"' || (q = memchr(p + 1, '"', (size_t)(e - p - 1))) == NULL)
		return NULL;
	return xstrndup(p + 1, (size_t)(q - p - 1));
}

/*
 * Check the configuration file path and every file it @includes, as
 * libconfig will open them (relative to incdir when set), before libconfig
 * reads any: each must be a regular file (a FIFO or device would hang or
 * feed it endlessly) of at most CONFIG_FILE_MAX bytes (libconfig 1.5's
 * scanner is quadratic in long strings), includes nested at most
 * INCLUDE_DEPTH_MAX deep and INCLUDE_FILES_MAX files in all (a file that
 * includes itself several times would otherwise be read exponentially
 * often). pc->abs_include is set when a directive names an absolute path.
 * Problems go to sb: "PATH: problem" for the file itself, "FILE:LINE:
 * @include \"NAME\": problem" for an include. Returns 0 or -1.
 */
struct precheck {
	const char *incdir;    /* NULL: include paths as written */
	int abs_include;
	int files;             /* read so far */
};

static int precheck_file(struct precheck *pc, const char *path, int depth, struct strbuf *sb)
{
	size_t len = 0;
	char *e = NULL;
	char *text = read_file_capped(path, CONFIG_FILE_MAX, &len, &e);
	int ret = 0;
	unsigned line = 0;

	if (text == NULL) {
		strbuf_addf(sb, "%s\n", e);
		free(e);
		return -1;
	}
	pc->files++;
	const char *nul = memchr(text, '\0', len);
	if (nul != NULL) {
		/* libconfig 1.5 cuts a string at a NUL silently, and a NUL in an
		 * @include makes its scanner exit(2) (found by tests/fuzz/fuzz_config) */
		for (const char *p = text; p < nul; p++)
			line += *p == '\n';
		strbuf_addf(sb, "%s:%u: a NUL byte: the configuration must be text\n", path, line + 1);
		ret = -1;
		goto out;
	}
	for (const char *p = text, *end = text + len; p < end; ) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		char *name;
		line++;
		if (eol == NULL)
			eol = end;
		name = include_name(p, eol);
		p = eol + 1;
		if (name == NULL)
			continue;
		if (name[0] == '/')
			pc->abs_include = 1;
		char *inc = pc->incdir != NULL ? xasprintf("%s/%s", pc->incdir, name) : xstrdup(name);
		if (depth + 1 >= INCLUDE_DEPTH_MAX || pc->files >= INCLUDE_FILES_MAX) {
			strbuf_addf(sb, "%s:%u: @include \"%s\": %s %d\n", path, line, name,
			            depth + 1 >= INCLUDE_DEPTH_MAX ? "includes nested deeper than" :
			            "more included files than", depth + 1 >= INCLUDE_DEPTH_MAX ?
			            INCLUDE_DEPTH_MAX : INCLUDE_FILES_MAX);
			ret = -1;
			free(inc);
			free(name);
			break;
		} else {
			struct strbuf sub = STRBUF_INIT;
			if (precheck_file(pc, inc, depth + 1, &sub) != 0) {
				strbuf_addf(sb, "%s:%u: @include \"%s\": %s", path, line, name, sub.buf);
				ret = -1;
			}
			strbuf_free(&sub);
		}
		free(inc);
		free(name);
	}
out:
	explicit_bzero(text, len);   /* it may hold passwords */
	free(text);
	return ret;
}

/* The directory @include paths are relative to: the configuration's own
 * (not wherever cron or systemd started us), or NULL when path has none or
 * an @include names an absolute path (libconfig 1.5 prefixes the include
 * directory to absolute paths too, so such a file keeps libconfig's
 * default). Checks every file first (precheck_file); -1 with *errstr. */
static int include_dir_for(const char *path, char **incdir, char **errstr)
{
	struct strbuf sb = STRBUF_INIT;
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	struct precheck pc = { 0 };

	*incdir = NULL;
	if (slash != NULL) {
		*(slash == dir ? slash + 1 : slash) = '\0';
		*incdir = dir;
	} else {
		free(dir);
	}
	pc.incdir = *incdir;
	precheck_file(&pc, path, 0, &sb);
	if (pc.abs_include && *incdir != NULL) {
		/* check again as libconfig will resolve them: without the directory */
		free(*incdir);
		*incdir = NULL;
		strbuf_free(&sb);
		memset(&pc, 0, sizeof pc);
		precheck_file(&pc, path, 0, &sb);
	}
	if (sb.len > 0) {
		*errstr = strbuf_detach(&sb);
		free(*incdir);
		*incdir = NULL;
		return -1;
	}
	return 0;
}

/* Read and parse the file with libconfig; -1 with *errstr ("file:line:
 * what") when it cannot be read or is not libconfig syntax. */
static int read_file(struct ctx *c, config_t *lc, const char *path, char **errstr)
{
	const char *ef, *et;

	if (config_read_file(lc, path) == CONFIG_TRUE)
		return 0;
	ef = config_error_file(lc);
	et = config_error_text(lc);
	if (config_error_type(lc) == CONFIG_ERR_FILE_IO) {
		*errstr = xasprintf("%s: %s\n", ef ? ef : path, et);
	} else if (et != NULL && strcmp(et, "duplicate setting name") == 0) {
		char *d = describe_duplicate(c, ef ? ef : path, (unsigned)config_error_line(lc));
		*errstr = xasprintf("%s:%d: %s\n", ef ? ef : path, config_error_line(lc), d);
		free(d);
	} else if (et != NULL && strcmp(et, "syntax error") == 0) {
		/* libconfig says no more; name the usual causes. */
		*errstr = xasprintf("%s:%d: syntax error: look at this line and the one before "
		                    "(strings in \"double quotes\", a ',' between the entries of a "
		                    "list, ( ... ) around a list of groups, not [ ... ])\n",
		                    ef ? ef : path, config_error_line(lc));
	} else {
		*errstr = xasprintf("%s:%d: %s\n", ef ? ef : path, config_error_line(lc), et);
	}
	return -1;
}

/* name: the config label of every series; the file's base name without
 * its extension when absent. */
static void load_name(struct ctx *c, const config_setting_t *root, const char *path,
                      struct config *cfg)
{
	const char *v;
	config_setting_t *s;

	if (get_str(c, root, "", "name", &v, &s) > 0) {
		int bad = 0;
		for (const unsigned char *q = (const unsigned char *)v; *q; q++)
			if (*q < 0x20 || *q == 0x7f)
				bad = 1;
		if (bad)
			err_at(c, s, "name must not contain control characters");
		else if (!utf8_valid(v, strlen(v)))
			err_at(c, s, "name is not valid UTF-8 (it is the config label of every series)");
		else
			cfg->name = xstrdup(v);
	}
	if (cfg->name == NULL)
		cfg->name = basename_noext(path);
}

/* lock_dir: an absolute path. */
static void load_lock_dir(struct ctx *c, const config_setting_t *root, struct config *cfg)
{
	const char *v;
	config_setting_t *s;

	if (get_str(c, root, "", "lock_dir", &v, &s) > 0) {
		if (v[0] != '/')
			err_at(c, s, "lock_dir must be an absolute path, not \"%s\"", v);
		else
			cfg->lock_dir = xstrdup(v);
	}
}

/* imap_defaults: what every seed's IMAP block inherits, checked once
 * here so that an error is reported once, not per seed. */
static void load_imap_defaults(struct ctx *c, const config_setting_t *root, struct imap_raw *def)
{
	config_setting_t *dg = get_group(c, root, "", "imap_defaults");
	imap_raw_parse(c, dg, "imap_defaults", def);
	if (def->url != NULL) {
		const char *scheme;
		char *e = NULL, *h = NULL;
		if (parse_url(def->url, URL_IMAP, &scheme, &h, NULL, &e) != 0) {
			err_at(c, def->url_s, "imap_defaults.url: %s", e);
			free(e);
			def->url = NULL;   /* report once, not per seed (url_s stays set) */
		} else if (strcmp(scheme, "imap") != 0 && strcmp(scheme, "imaps") != 0) {
			err_at(c, def->url_s, "imap_defaults.url must be an imap:// or imaps:// URL, not %s://",
			       scheme);
			def->url = NULL;
		}
		free(h);
	}
	if (def->tls != NULL) {
		enum tls_mode m;
		if (parse_tls(c, def->tls_s, def->tls, "imap_defaults", &m) != 0)
			def->tls = NULL;
	}
	if (def->ca_file != NULL)
		check_ca_file(c, def->ca_s, "imap_defaults", def->ca_file);
	/* def->secret_state < 0: its error is reported once, at imap_defaults;
	 * imap_finish() adds nothing for the blocks that inherit it. */
}

/* bounce_mailbox: the mailbox watched for DSNs (RFC 3464), optional. */
static void load_bounce(struct ctx *c, const config_setting_t *root, const struct imap_raw *def,
                        struct config *cfg)
{
	config_setting_t *bg = get_group(c, root, "", "bounce_mailbox");
	if (bg != NULL) {
		struct imap_raw own;
		imap_raw_parse(c, bg, "bounce_mailbox", &own);
		/* relay.from NULL: its error is reported already ("" says so) */
		imap_finish(c, &own, def, bg, "bounce_mailbox", cfg->relay.from ? cfg->relay.from : "",
		            &cfg->bounce);
		imap_raw_free(&own);
		cfg->has_bounce = 1;
	}
}

int config_load(const char *path, struct config **out, char **errstr)
{
	static const char *const top_keys[] = {
		"name", "relay", "probe", "imap_limits", "slo", "report", "imap_defaults",
		"bounce_mailbox", "state", "seeds", "schedule", "web", "providers", "lock_dir", NULL
	};
	struct ctx c = { .file = path };
	config_t lc;
	struct config *cfg = NULL;
	struct imap_raw def = { 0 };
	int ret = -1;

	*out = NULL;
	*errstr = NULL;
	char *incdir = NULL;
	if (include_dir_for(path, &incdir, errstr) != 0)
		return -1;
	config_init(&lc);
	if (incdir != NULL)
		config_set_include_dir(&lc, incdir);   /* libconfig keeps its own copy */
	c.incdir = incdir;
	if (read_file(&c, &lc, path, errstr) != 0) {
		srcs_free(&c);
		config_destroy(&lc);
		free(incdir);
		return -1;
	}

	cfg = xcalloc(1, sizeof(*cfg));
	cfg->file = xstrdup(path);
	const config_setting_t *root = config_root_setting(&lc);
	check_keys(&c, root, "", top_keys);

	load_name(&c, root, path, cfg);

	load_relay(&c, root, &cfg->relay);
	load_probe(&c, root, &cfg->probe);
	load_limits(&c, root, &cfg->limits);
	load_slo(&c, root, cfg);
	load_providers(&c, root, cfg);
	load_report(&c, root, &cfg->report);
	load_state(&c, root, &cfg->state);
	load_schedule(&c, root, &cfg->schedule);
	load_web(&c, root, &cfg->web);
	load_lock_dir(&c, root, cfg);

	load_imap_defaults(&c, root, &def);
	load_bounce(&c, root, &def, cfg);

	load_seeds(&c, root, &def, cfg);

	if (c.nerrs > 0) {
		*errstr = errs_render(&c);
		goto out;
	}
	*out = cfg;
	cfg = NULL;
	ret = 0;
out:
	imap_raw_free(&def);
	errs_free(&c);
	srcs_free(&c);
	config_free(cfg);
	config_destroy(&lc);
	free(incdir);
	return ret;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->file);
	free(cfg->name);
	free(cfg->limits.per_host_at);
	struct relay_conf *r = &cfg->relay;
	free(r->url);
	free(r->host);
	free(r->ca_file);
	free(r->username);
	wipe_str(r->password);
	oauth2_conf_free(r->oauth2);
	free(r->from);
	struct probe_conf *p = &cfg->probe;
	free(p->subject_prefix);
	if (p->secret != NULL)
		wipe_free((char *)p->secret, p->secret_len);
	for (size_t i = 0; i < p->nold_secrets; i++)
		wipe_free((char *)p->old_secrets[i].key, p->old_secrets[i].len);
	free(p->old_secrets);
	free(p->template_path);
	free(p->template_text);
	free(p->deadline_at);
	free(cfg->schedule.at);
	for (size_t i = 0; i < p->nheaders; i++)
		free(p->headers[i]);
	free(p->headers);
	for (size_t i = 0; i < cfg->nslo_overrides; i++)
		free(cfg->slo_overrides[i].provider);
	free(cfg->slo_overrides);
	for (size_t i = 0; i < cfg->nprovider_confs; i++) {
		for (size_t k = 0; k < cfg->provider_confs[i].nauthserv_ids; k++)
			free(cfg->provider_confs[i].authserv_ids[k]);
		free(cfg->provider_confs[i].authserv_ids);
		free(cfg->provider_confs[i].name);
	}
	free(cfg->provider_confs);
	free(cfg->report.textfile);
	free(cfg->report.openmetrics);
	free(cfg->report.json);
	free(cfg->report.junit);
	imap_conf_free(&cfg->bounce);
	free(cfg->state.path);
	free(cfg->web.listen_address);
	free(cfg->web.host);
	free(cfg->web.config_file);
	free(cfg->lock_dir);
	for (size_t i = 0; i < cfg->nseeds; i++) {
		free(cfg->seeds[i].address);
		free(cfg->seeds[i].provider);
		free(cfg->seeds[i].spam_folder);
		imap_conf_free(&cfg->seeds[i].imap);
	}
	free(cfg->seeds);
	for (size_t i = 0; i < cfg->nproviders; i++)
		free(cfg->providers[i]);
	free(cfg->providers);
	explicit_bzero(cfg, sizeof(*cfg));
	free(cfg);
}

struct slo_conf config_slo_for(const struct config *cfg, const char *provider)
{
	struct slo_conf s = cfg->slo;
	if (provider == NULL)
		return s;
	for (size_t i = 0; i < cfg->nslo_overrides; i++) {
		const struct slo_override *o = &cfg->slo_overrides[i];
		if (o->provider == NULL || strcmp(o->provider, provider) != 0)
			continue;
		if (o->has_min_inbox_ratio)
			s.min_inbox_ratio = o->min_inbox_ratio;
		if (o->has_max_latency_p99)
			s.max_latency_p99 = o->max_latency_p99;
		if (o->has_max_missing)
			s.max_missing = o->max_missing;
	}
	return s;
}

char *config_schedule_warning(const struct config *cfg)
{
	const struct schedule_conf *sc = &cfg->schedule;
	const char *at = cfg->probe.deadline_at ? cfg->probe.deadline_at : sc->at ? sc->at : cfg->file;
	char *jit = NULL, *fix, *msg;

	if (cfg->probe.deadline + sc->jitter < sc->interval)
		return NULL;
	if (sc->jitter > 0)
		jit = xasprintf(" plus schedule.jitter (%lds)", sc->jitter);
	/* probe.deadline is at least 1 s: below 1 is no advice */
	if (sc->interval - sc->jitter > 1)
		fix = xasprintf("set probe.deadline below %ld or raise schedule.interval",
		                sc->interval - sc->jitter);
	else
		fix = xasprintf("raise schedule.interval above %ld%s", cfg->probe.deadline + sc->jitter,
		                sc->jitter > 0 ? " or lower schedule.jitter" : "");
	msg = xasprintf("%s: probe.deadline (%lds)%s is not shorter than schedule.interval (%lds): "
	                "a round that waits out its deadline is still running when the next is due, "
	                "and the daemon skips that start (inboxprobe_rounds_skipped_total); %s",
	                at, cfg->probe.deadline, jit ? jit : "", sc->interval, fix);
	free(jit);
	free(fix);
	return msg;
}
