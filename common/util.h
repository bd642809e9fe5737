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
#include <stdint.h>

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
/* *ts = the CLOCK_MONOTONIC instant left seconds from now (0 when left is
 * negative), for pthread_cond_timedwait on a cond made with
 * pthread_condattr_setclock(CLOCK_MONOTONIC). */
struct timespec;
void mono_after(double left, struct timespec *ts);
/* Sleep for the given seconds (fractional), restarting on EINTR. */
void sleep_seconds(double s);
/* When the last data segment on the connected TCP socket fd reached this
 * host: Unix seconds (CLOCK_REALTIME), from the kernel's count of the
 * milliseconds since then (TCP_INFO tcpi_last_data_recv, tcp(7); its
 * resolution is the kernel's tick, 1-4 ms). For a reply read by a library
 * that reads with recv(2) (libcurl), this is when the reply arrived,
 * however late the reading thread was scheduled. Returns fallback when fd
 * is not a TCP socket, TCP_INFO is refused or too short, or the value is
 * implausible (more than an hour ago). Not thread-hostile: fd is only
 * queried. */
double tcp_last_rx(int fd, double fallback);

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

/* UTF-8 (RFC 3629), the one decoder every module uses. utf8_decode():
 * the length (1-4) of the well-formed sequence at s[0..n), its code point
 * in *cp when cp != NULL; 0 when s does not start with one (n == 0, a
 * stray continuation byte, a truncated sequence, an overlong form, a
 * surrogate or a code point above U+10FFFF). utf8_valid(): 1 when all of
 * s[0..n) is well-formed UTF-8, else 0. */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
int utf8_valid(const char *s, size_t n);
/* The number of characters (code points) in s[0..n), an invalid byte
 * counting as one: a display width for tables and columns. */
size_t utf8_chars(const char *s, size_t n);

/* RFC 5322 header fields, the one unfolder every module uses: the value
 * v[0..n) of one field (its continuation lines included) unfolded per RFC
 * 5322 section 2.2.3: every CRLF (or bare LF) removed, the whitespace after
 * it kept; NUL bytes become spaces so a value never ends early. At most max
 * bytes are kept (0 = no cap). Heap string, the caller frees. Finding
 * fields in a header block: common/hfield.h. */
char *rfc5322_unfold(const char *v, size_t n, size_t max);

/* Read a whole regular file into a new heap buffer (NUL-terminated, length
 * in *len when len != NULL). max caps the size in bytes (0 = 16 MiB). A
 * FIFO, device or directory is refused without blocking ("PATH: is a
 * FIFO, not a regular file").
 * Returns NULL and sets *errstr (heap, caller frees) on error. */
char *read_file_capped(const char *path, size_t max, size_t *len, char **errstr);

/* Write data to path atomically: a new temporary file PATH.tmp.XXXXXX
 * created with mkostemp(3) in the same directory (O_CREAT|O_EXCL: a
 * symbolic link or FIFO planted there is never followed or opened), mode
 * 0644 less the umask, write, fsync, rename over PATH, fsync the
 * directory. PATH itself is never opened: a symbolic link there is
 * replaced, not followed; a directory, FIFO, device or socket there is
 * refused. Returns 0, or -1 with *errstr set (heap) naming the path and
 * errno text; the old PATH is then untouched and no temporary file stays. */
int write_file_atomic(const char *path, const char *data, size_t len, char **errstr);
/* The same for a secret (a refresh token, a token cache): the new file is
 * mode 0600 whatever the umask. */
int write_secret_atomic(const char *path, const char *data, size_t len, char **errstr);

/* "a FIFO", "a directory", "a character device", ... for an st_mode. */
const char *file_type_name(unsigned mode);

/* The entry of words (NULL-ended) closest to word by optimal string
 * alignment distance (insertions, deletions, substitutions and swaps of two
 * adjacent characters, ASCII case ignored), for "did you mean" hints on a
 * misspelt key. NULL when word is exactly an entry or none is within
 * max(1, strlen(entry) / 3) edits (1 edit for short keys, 2 for keys of 6 to 8
 * characters, ...); failing that, the first entry that starts with word
 * when word has at least 4 characters ("user": "username"). Ties go to the
 * first entry. Returns a pointer into words;
 * nothing is allocated. Words longer than 63 bytes are never matched. */
const char *closest_word(const char *word, const char *const *words);

/* Install handler for SIGTERM, SIGINT and SIGHUP (sigaction(2), no
 * SA_RESTART: a blocking call returns EINTR; no other signal blocked while
 * it runs). The run's and the daemon's stop requests (main.c,
 * scheduler/daemon.c). */
void on_stop_signals(void (*handler)(int));

/* Hold glibc's malloc to two arenas (mallopt(M_ARENA_MAX, 2)) unless
 * MALLOC_ARENA_MAX is set in the environment; without glibc's mallopt it
 * does nothing. Call before the first thread starts. A round runs a thread
 * per seed, and glibc gives threads arenas of their own (up to 8 per CPU)
 * whose freed memory stays mapped: two arenas hold `run`'s peak RSS at
 * 1,000 seeds 4-8 MB lower and the daemon's about 10 MB lower at 100
 * seeds (bench/README.md). */
void malloc_few_arenas(void);

#endif
