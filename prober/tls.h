/*
 * tls.h - internal to prober/: a TCP connection (plain or OpenSSL TLS)
 * with deadline-bounded I/O, wrapped as a libetpan mailstream_low so that
 * libetpan's IMAP engine runs over a certificate-verified TLS stream.
 *
 * libetpan's own TLS (GnuTLS on Debian) never verifies the peer, so it is
 * never used. TLS here follows RFC 8314 / RFC 2595 (STARTTLS) and RFC 6125
 * host-name checks via OpenSSL (SSL_set1_host, or the IP address for IP
 * literals).
 *
 * Ownership: a mailstream_low from tls_low_new() owns its ipconn (freed by
 * the driver's free hook). The ipconn owns its fd unless tls_low_release_fd()
 * was called, in which case the driver's close and free hooks leave the fd
 * open (used when a STARTTLS upgrade swaps the plain stream for a TLS one).
 */
#ifndef INBOXPROBE_TLS_H
#define INBOXPROBE_TLS_H

#include <stdatomic.h>

#include <libetpan/libetpan.h>
#include <openssl/ssl.h>

/* Error codes of this module. */
enum tls_err {
	TLS_OK = 0,
	TLS_ECONNECT = 1,   /* no address accepted a TCP connection */
	TLS_EHANDSHAKE = 2, /* TLS handshake or certificate verification failed */
	TLS_ETIMEOUT = 3    /* connect_timeout or deadline reached */
};

/*
 * Resolve host (getaddrinfo, all addresses tried in order) and connect to
 * port with a non-blocking connect bounded by connect_timeout seconds per
 * address and never past deadline (absolute now_mono() seconds).
 * Name resolution is bounded too: min(now + connect_timeout, deadline)
 * (getaddrinfo_a; the first lookup uses AI_ADDRCONFIG and is retried
 * without it only on EAI_NONAME / EAI_ADDRFAMILY, within the same bound).
 * connect_timeout <= 0 means 10 s.
 * On success returns TLS_OK and *fd is a non-blocking socket the caller
 * owns. Else returns TLS_ECONNECT (no such host, refused, unreachable) or
 * TLS_ETIMEOUT (resolution or connect out of time) and sets *errstr (heap).
 * Thread-safe.
 */
int tls_tcp_connect(const char *host, int port, long connect_timeout, double deadline,
                    int *fd, char **errstr);

/* 1 when host:port's addresses are in the resolution cache and fresh (kept
 * 30 s after a lookup; dropped when a connect failed on every one of them,
 * so the next tls_tcp_connect() resolves again), else 0. For tests and
 * diagnostics. Thread-safe. */
int tls_resolve_cached(const char *host, int port);

/*
 * Run a TLS client handshake on the connected non-blocking socket fd:
 * SSL_VERIFY_PEER against ca_file (PEM bundle) or, when ca_file is NULL,
 * the system default paths; SNI (not for IP literals); host name (or IP)
 * verification. Bounded by deadline (absolute now_mono() seconds; callers
 * pass min(now + per-command timeout, round deadline), so a server that
 * accepts TCP and never speaks TLS costs one timeout, not the round). The
 * SSL_CTX (trust store loaded once, SSL_MODE_RELEASE_BUFFERS) is shared by
 * every connection with the same ca_file. On success *ssl is owned by the
 * caller (SSL_free; its SSL_CTX is reference-counted by it). On failure
 * returns TLS_EHANDSHAKE or TLS_ETIMEOUT with *errstr explaining (e.g.
 * "self-signed certificate", "certificate has expired", "host name
 * mismatch"), naming host:port; the fd is left open. The SSL reads and
 * writes fd through a BIO of ours (recvmsg with receive timestamps, see
 * tls_low_last_rx(); send with MSG_NOSIGNAL) that never closes fd.
 */
int tls_handshake(int fd, const char *host, int port, const char *ca_file, double deadline,
                  SSL **ssl, char **errstr);

/* Make every wait on a socket end early (as a timeout) once *flag is
 * non-zero, within a quarter second. NULL turns it off. Set once, before
 * any connection is made. */
void tls_set_abort_flag(const atomic_int *flag);

/* 1 when that flag is set (a stop was requested), else 0. */
int tls_stop_requested(void);

/* True when host is an IPv4 or IPv6 literal (brackets not included). */
int tls_host_is_ip(const char *host);

/* Bytes one command may read (its whole reply, literals included) before
 * the stream is declared broken: libetpan holds a reply line or literal in
 * memory, so a peer streaming an endless one must be cut off. 16 MiB is
 * far above any reply the prober asks for (LIST, SEARCH of a large
 * mailbox, FETCH of two header fields). */
#define TLS_REPLY_MAX_BYTES ((size_t)16 * 1024 * 1024)

/* The budget of every other command (LIST, SELECT, STATUS, SEARCH, NOOP,
 * IDLE/DONE, ...) and of the greeting: libetpan keeps each parsed untagged
 * response until the command ends, some ten times its bytes (16 MiB of
 * "* N EXISTS" lines held 156 MB), so a hostile server's flood must stop
 * far sooner than a FETCH's literals. 1 MiB is still some 150,000 UIDs in
 * a SEARCH reply or 10,000 LIST lines. */
#define TLS_CMD_MAX_BYTES ((size_t)1024 * 1024)

/*
 * A mailstream_low over fd (and ssl when not NULL; then ownership of ssl
 * passes to the stream). Reads and writes poll with the limit set by
 * tls_low_set_limit(), and check it before every read/write (a peer that
 * keeps the socket readable still hits it). Reads stop after
 * TLS_REPLY_MAX_BYTES per limit (see tls_low_over_budget()). Returns NULL
 * on allocation failure from libetpan.
 */
mailstream_low *tls_low_new(int fd, SSL *ssl);

/* Set the absolute now_mono() time after which reads and writes fail
 * (the caller sets min(now + per-command timeout, round deadline) before
 * each command), and start a new read budget (tls_low_set_budget(); the
 * last one set, TLS_CMD_MAX_BYTES for a new low). */
void tls_low_set_limit(mailstream_low *low, double limit);

/* Set the bytes the reads of one command may take from the next
 * tls_low_set_limit() on (TLS_REPLY_MAX_BYTES for a FETCH,
 * TLS_CMD_MAX_BYTES else); tls_low_budget() returns it. */
void tls_low_set_budget(mailstream_low *low, size_t bytes);
size_t tls_low_budget(mailstream_low *low);

/* 1 when the last read/write failed because the limit passed, else 0. */
int tls_low_timed_out(mailstream_low *low);

/* 1 when that failure was a stop request (tls_set_abort_flag), not the
 * limit: the wait was cut short, the server did nothing wrong. */
int tls_low_stopped(mailstream_low *low);

/* 1 when the peer closed the connection or a read/write failed (not timeout). */
int tls_low_broken(mailstream_low *low);

/* 1 when a read failed because one command's reply exceeded its budget
 * (tls_low_budget(); the stream is then broken for good), else 0. */
int tls_low_over_budget(mailstream_low *low);

/* When the last line received that begins with "* BYE" (RFC 3501 7.1.5)
 * is among the last 512 bytes read, copy its text (printable ASCII, capped
 * to textsz) and return 1; else 0. libetpan drops a BYE that arrives
 * instead of a command's reply and reports only the closed stream. */
int tls_low_bye_text(mailstream_low *low, char *text, size_t textsz);

/* Bytes OpenSSL has decrypted and not yet handed to a read (SSL_pending),
 * or 1 when it holds bytes read ahead from the socket and not decrypted
 * yet (SSL_has_pending): neither wakes poll() on the fd, so check this
 * before sleeping. 0 for a plain connection. */
size_t tls_low_pending(mailstream_low *low);

/*
 * When the bytes of the latest read on low that returned data reached
 * this host: Unix seconds (CLOCK_REALTIME), 0 before any such read.
 * Every read goes through recvmsg(2) with SO_TIMESTAMPNS (socket(7)),
 * plain and TLS alike (for TLS, through an OpenSSL BIO of ours, for the
 * SSL's whole life: handshake, resumption, shutdown), and this is the
 * kernel's receive time of the last TCP segment that read took bytes
 * from; the wall clock right after the read when the kernel gives none.
 * Any byte already read (in libetpan's buffer, in OpenSSL, or returned)
 * arrived no later: the value is an upper bound of when a line parsed now
 * arrived, however long the reader took to wake up (SPEC "Latency").
 */
double tls_low_last_rx(mailstream_low *low);

/* Record when low's connection was opened (Unix seconds, now_wall()
 * taken before tls_tcp_connect()): a kernel receive stamp before it is
 * not plausible, and tls_low_last_rx() then gives the wall clock after the
 * read instead. 0 (the default) leaves only the checks for stamps in the
 * future or a day old. tls_low_opened() returns it. */
void tls_low_set_opened(mailstream_low *low, double opened);
double tls_low_opened(mailstream_low *low);

/* Stop owning the fd (close/free hooks then leave it open). Returns the fd. */
int tls_low_release_fd(mailstream_low *low);

#endif
