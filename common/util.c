/* util.c - allocation, strings, time, logging, atomic files (see util.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <locale.h>
#ifdef HAVE_MALLOC_H
#include <malloc.h>
#endif
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

int log_verbose;

static void oom(size_t n)
{
	fprintf(stderr, "inboxprobe: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

void *xcalloc(size_t nmemb, size_t n)
{
	void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);
	if (p == NULL)
		oom(nmemb * n);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		oom(n);
	return q;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	return strbuf_detach(&sb);
}

size_t xstrlcpy(char *dst, const char *src, size_t dstsz)
{
	size_t len = strlen(src);

	if (dstsz > 0) {
		size_t n = len < dstsz - 1 ? len : dstsz - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

static void strbuf_grow(struct strbuf *sb, size_t extra)
{
	size_t need = sb->len + extra + 1;

	if (need <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < need)
		cap *= 2;
	sb->buf = xrealloc(sb->buf, cap);
	sb->cap = cap;
}

void strbuf_add(struct strbuf *sb, const void *data, size_t n)
{
	strbuf_grow(sb, n);
	memcpy(sb->buf + sb->len, data, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void strbuf_adds(struct strbuf *sb, const char *s)
{
	strbuf_add(sb, s, strlen(s));
}

void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	strbuf_grow(sb, (size_t)n);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
}

void strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(sb, fmt, ap);
	va_end(ap);
}

char *strbuf_detach(struct strbuf *sb)
{
	char *p = sb->buf;

	if (p == NULL)
		p = xstrdup("");
	sb->buf = NULL;
	sb->len = sb->cap = 0;
	return p;
}

void strbuf_free(struct strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->cap = 0;
}

double now_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double tcp_last_rx(int fd, double fallback)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	double now;

	if (fd < 0)
		return fallback;
	memset(&ti, 0, sizeof ti);
	now = now_wall();
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
	    len < offsetof(struct tcp_info, tcpi_last_data_recv) + sizeof ti.tcpi_last_data_recv ||
	    ti.tcpi_last_data_recv > 3600u * 1000u)
		return fallback;
	return now - (double)ti.tcpi_last_data_recv / 1000.0;
}

double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void mono_after(double left, struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	if (!(left > 0))
		return;
	ts->tv_sec += (time_t)left;
	ts->tv_nsec += (long)((left - floor(left)) * 1e9);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

void sleep_seconds(double s)
{
	struct timespec ts, rem;

	if (!(s > 0))
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &rem) == -1 && errno == EINTR)
		ts = rem;
}

static void vlog(const char *level, const char *fmt, va_list ap)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_adds(&sb, "inboxprobe: ");
	if (level != NULL)
		strbuf_adds(&sb, level);
	strbuf_vaddf(&sb, fmt, ap);
	strbuf_adds(&sb, "\n");
	/* One write so that lines from several threads do not interleave. */
	fputs(sb.buf, stderr);
	fflush(stderr);
	strbuf_free(&sb);
}

#define LOGFN(name, level, cond)                        \
	void name(const char *fmt, ...)                 \
	{                                               \
		va_list ap;                             \
		if (!(cond))                            \
			return;                         \
		va_start(ap, fmt);                      \
		vlog(level, fmt, ap);                   \
		va_end(ap);                             \
	}
LOGFN(log_error, "error: ", 1)
LOGFN(log_warn, "warning: ", 1)
LOGFN(log_info, NULL, 1)
LOGFN(log_debug, "debug: ", log_verbose > 0)

static locale_t c_locale;   /* created once; never freed */
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
	c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

char *fmt_double(char *buf, size_t bufsz, double v)
{
	locale_t old;

	if (isnan(v)) {
		xstrlcpy(buf, "NaN", bufsz);
		return buf;
	}
	if (isinf(v)) {
		xstrlcpy(buf, v > 0 ? "+Inf" : "-Inf", bufsz);
		return buf;
	}
	pthread_once(&c_locale_once, c_locale_init);
	/* Format and parse in the C locale for this thread only, whatever
	 * LC_NUMERIC the process has (uselocale is per thread). */
	old = uselocale(c_locale);
	if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(buf, bufsz, "%.0f", v);
	} else {
		/* Shortest precision that round-trips (17 always does; one
		 * that does, every longer one does too: a binary search,
		 * about 5 tries instead of up to 17 for a Unix time) */
		int lo = 1, hi = 17;
		while (lo < hi) {
			int mid = (lo + hi) / 2;
			snprintf(buf, bufsz, "%.*g", mid, v);
			if (strtod(buf, NULL) == v)
				hi = mid;
			else
				lo = mid + 1;
		}
		snprintf(buf, bufsz, "%.*g", hi, v);
	}
	uselocale(old);
	return buf;
}

size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned c;
	size_t len;
	unsigned lo = 0x80, hi = 0xBF;   /* range of the second byte */
	uint32_t v;

	if (n == 0)
		return 0;
	c = s[0];
	if (c < 0x80) {
		if (cp != NULL)
			*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		v = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		v = c & 0x0F;
		if (c == 0xE0)
			lo = 0xA0;          /* no overlongs */
		else if (c == 0xED)
			hi = 0x9F;          /* no surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		v = c & 0x07;
		if (c == 0xF0)
			lo = 0x90;          /* no overlongs */
		else if (c == 0xF4)
			hi = 0x8F;          /* <= U+10FFFF */
	} else {
		return 0;                   /* C0/C1 overlong leads, F5-FF, continuations */
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	v = (v << 6) | (s[1] & 0x3F);
	for (size_t i = 2; i < len; i++) {
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
		v = (v << 6) | (s[i] & 0x3F);
	}
	if (cp != NULL)
		*cp = v;
	return len;
}

int utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t l = utf8_decode(p + i, n - i, NULL);
		if (l == 0)
			return 0;
		i += l;
	}
	return 1;
}

size_t utf8_chars(const char *s, size_t n)
{
	size_t i = 0, w = 0;

	for (; i < n; w++) {
		size_t l = utf8_decode((const unsigned char *)s + i, n - i, NULL);
		i += l ? l : 1;
	}
	return w;
}

char *rfc5322_unfold(const char *v, size_t n, size_t max)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i = 0;

	while (i < n && (max == 0 || sb.len < max)) {
		size_t run = 0;
		if (v[i] == '\r' && i + 1 < n && v[i + 1] == '\n') {
			i += 2;
			continue;
		}
		if (v[i] == '\n') {
			i++;
			continue;
		}
		if (v[i] == '\0') {
			strbuf_add(&sb, " ", 1);
			i++;
			continue;
		}
		/* copy the run up to the next line break or NUL at once */
		while (i + run < n && v[i + run] != '\n' && v[i + run] != '\0' &&
		       !(v[i + run] == '\r' && i + run + 1 < n && v[i + run + 1] == '\n'))
			run++;
		if (max != 0 && run > max - sb.len)
			run = max - sb.len;
		strbuf_add(&sb, v + i, run);
		i += run;
	}
	return strbuf_detach(&sb);
}

char *read_file_capped(const char *path, size_t max, size_t *len, char **errstr)
{
	FILE *f = NULL;
	struct strbuf sb = STRBUF_INIT;
	struct stat st;
	char chunk[8192];
	size_t n;
	char *ret = NULL;
	int fd;

	if (max == 0)
		max = 16u << 20;
	/* O_NONBLOCK: a FIFO must not hang the open; it is refused below */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		*errstr = xasprintf("%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0)
		*errstr = xasprintf("%s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		*errstr = xasprintf("%s: is %s, not a regular file", path, file_type_name(st.st_mode));
	else if ((size_t)st.st_size > max)
		*errstr = xasprintf("%s: larger than %zu bytes", path, max);
	else if ((f = fdopen(fd, "rb")) == NULL)
		*errstr = xasprintf("%s: %s", path, strerror(errno));
	if (f == NULL) {
		close(fd);
		goto out;
	}
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (sb.len + n > max) {
			*errstr = xasprintf("%s: larger than %zu bytes", path, max);
			goto out;
		}
		strbuf_add(&sb, chunk, n);
	}
	if (ferror(f)) {
		*errstr = xasprintf("%s: read error: %s", path, strerror(errno));
		goto out;
	}
	if (len != NULL)
		*len = sb.len;
	ret = strbuf_detach(&sb);
out:
	if (f != NULL)
		fclose(f);
	strbuf_free(&sb);
	return ret;
}

/* The process umask, read without changing it (umask(2) can only set it,
 * and setting it races with other threads creating files): the "Umask:"
 * line of /proc/self/status (Linux 4.7 and later), else 022. */
static mode_t umask_now;
static pthread_once_t umask_once = PTHREAD_ONCE_INIT;

static void umask_read(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[128];
	unsigned m;

	umask_now = 022;
	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "Umask: %o", &m) == 1) {
			umask_now = (mode_t)(m & 0777);
			break;
		}
	fclose(f);
}

const char *file_type_name(unsigned mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "a regular file";
	case S_IFDIR: return "a directory";
	case S_IFIFO: return "a FIFO";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	case S_IFSOCK: return "a socket";
	case S_IFLNK: return "a symbolic link";
	default: return "not a regular file";
	}
}

/* Write all of data to fd, restarting on EINTR; 0 or -1 with errno. */
static int write_all(int fd, const char *data, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

/* write_file_atomic() with the new file's mode: 0644 less the umask for a
 * report, exactly 0600 for a secret. */
static int atomic_write(const char *path, const char *data, size_t len, int secret, char **errstr)
{
	char *tmp = xasprintf("%s.tmp.XXXXXX", path);
	char *dircopy = xstrdup(path);
	int fd = -1, dfd = -1, ret = -1;
	struct stat st;

	if (*path == '\0') {
		*errstr = xstrdup("empty report path");
		goto out;
	}
	/* PATH itself is never opened, only replaced by rename(2), which does
	 * not follow a symbolic link; but a directory, FIFO or device there is
	 * not ours to replace. */
	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
		*errstr = xasprintf("%s: is %s, not a regular file: not replaced", path,
		                    file_type_name(st.st_mode));
		goto out;
	}
	/* mkostemp: a new file of a unique name, O_CREAT|O_EXCL, so neither a
	 * symbolic link nor a FIFO planted at a predictable name is followed
	 * or opened; it lives in PATH's directory so rename(2) is atomic. */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		*errstr = xasprintf("%s: cannot create a temporary file beside it: %s", path,
		                    strerror(errno));
		goto out;
	}
	pthread_once(&umask_once, umask_read);
	if (fchmod(fd, secret ? 0600 : 0644 & ~umask_now) != 0 || write_all(fd, data, len) != 0) {
		*errstr = xasprintf("%s: write failed: %s", tmp, strerror(errno));
		goto out;
	}
	if (fsync(fd) != 0) {
		*errstr = xasprintf("%s: fsync failed: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		*errstr = xasprintf("%s: close failed: %s", tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		*errstr = xasprintf("%s: cannot rename to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		(void)fsync(dfd);
	ret = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	if (dfd >= 0)
		close(dfd);
	free(tmp);
	free(dircopy);
	return ret;
}

int write_file_atomic(const char *path, const char *data, size_t len, char **errstr)
{
	return atomic_write(path, data, len, 0, errstr);
}

int write_secret_atomic(const char *path, const char *data, size_t len, char **errstr)
{
	return atomic_write(path, data, len, 1, errstr);
}

#define CLOSEST_MAX 64

static int ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : (unsigned char)c;
}

/* Optimal string alignment distance of a and b (ASCII case ignored); both
 * shorter than CLOSEST_MAX. */
static size_t osa_distance(const char *a, size_t la, const char *b, size_t lb)
{
	unsigned char d[CLOSEST_MAX][CLOSEST_MAX];   /* distances stay below CLOSEST_MAX */

	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned char)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned char)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			int ca = ascii_lower(a[i - 1]), cb = ascii_lower(b[j - 1]);
			size_t best = (size_t)d[i - 1][j - 1] + (ca != cb);
			if (d[i - 1][j] + 1u < best)
				best = d[i - 1][j] + 1u;
			if (d[i][j - 1] + 1u < best)
				best = d[i][j - 1] + 1u;
			if (i > 1 && j > 1 && ca == ascii_lower(b[j - 2]) &&
			    ascii_lower(a[i - 2]) == cb && d[i - 2][j - 2] + 1u < best)
				best = d[i - 2][j - 2] + 1u;
			d[i][j] = (unsigned char)best;
		}
	}
	return d[la][lb];
}

const char *closest_word(const char *word, const char *const *words)
{
	const char *found = NULL;
	size_t lw = strlen(word), best = (size_t)-1;

	if (lw >= CLOSEST_MAX)
		return NULL;
	for (size_t k = 0; words[k] != NULL; k++) {
		size_t le = strlen(words[k]);
		if (strcmp(word, words[k]) == 0)
			return NULL;
		if (le >= CLOSEST_MAX)
			continue;
		size_t limit = le / 3 > 1 ? le / 3 : 1;
		size_t dist = osa_distance(word, lw, words[k], le);
		if (dist <= limit && dist < best) {
			best = dist;
			found = words[k];
		}
	}
	/* else a truncated key: "user" for "username" */
	for (size_t k = 0; found == NULL && lw >= 4 && words[k] != NULL; k++)
		if (strncasecmp(words[k], word, lw) == 0)
			found = words[k];
	return found;
}

void on_stop_signals(void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

void malloc_few_arenas(void)
{
#if defined(HAVE_MALLOPT) && defined(M_ARENA_MAX)
	if (getenv("MALLOC_ARENA_MAX") == NULL)
		mallopt(M_ARENA_MAX, 2);
#endif
}
