/*
 * util.h - small helpers shared by every module: allocation that never
 * returns NULL, a growable string buffer, wall-clock and monotonic time,
 * and diagnostics to stderr.
 *
 * Memory: every function that returns a char * returns a heap string the
 * caller owns and frees with free(3), unless its comment says otherwise.
 */
#ifndef INBOXPROBE_UTIL_H
#define INBOXPROBE_UTIL_H

#include <stdarg.h>
#include <stddef.h>

/* Allocation: abort with a message on out-of-memory (like msmtp's xalloc). */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new heap string the caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copy src into dst of size dstsz, always NUL-terminating and truncating
 * when needed. Returns strlen(src) (like strlcpy). */
size_t xstrlcpy(char *dst, const char *src, size_t dstsz);

/* Growable NUL-terminated buffer. Zero-initialise (STRBUF_INIT) before use;
 * strbuf_free() releases it; strbuf_detach() hands the string to the caller. */
struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
};
#define STRBUF_INIT { NULL, 0, 0 }
void strbuf_add(struct strbuf *sb, const void *data, size_t n);
void strbuf_adds(struct strbuf *sb, const char *s);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap);
char *strbuf_detach(struct strbuf *sb);   /* never NULL; "" when empty */
void strbuf_free(struct strbuf *sb);

/* Time. now_wall(): Unix time in seconds with sub-second fraction
 * (CLOCK_REALTIME). now_mono(): seconds from CLOCK_MONOTONIC, for deadlines. */
double now_wall(void);
double now_mono(void);
/* Sleep for the given seconds (fractional), restarting on EINTR. */
void sleep_seconds(double s);

/* Diagnostics. log_verbose is set by -v. All go to stderr, prefixed with
 * "inboxprobe: ". log_debug prints only when log_verbose > 0.
 * Never pass a secret to these. */
extern int log_verbose;
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Format a double in the C locale whatever LC_NUMERIC is ("%.*g"-like,
 * shortest round-trip up to 17 digits, "+Inf"/"-Inf"/"NaN" spelled the
 * Prometheus way). Writes into buf of size bufsz; returns buf. */
char *fmt_double(char *buf, size_t bufsz, double v);

/* Read a whole file into a new heap buffer (NUL-terminated, length in *len
 * when len != NULL). max caps the size in bytes (0 = 16 MiB).
 * Returns NULL and sets *errstr (heap, caller frees) on error. */
char *read_file_capped(const char *path, size_t max, size_t *len, char **errstr);

/* Write data to path atomically: PATH.tmp in the same directory, write,
 * fflush, fsync, rename over PATH, fsync the directory. Returns 0, or -1
 * with *errstr set (heap) naming the path and errno text. */
int write_file_atomic(const char *path, const char *data, size_t len, char **errstr);

#endif
