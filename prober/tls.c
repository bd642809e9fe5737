/*
 * tls.c - TCP connect, OpenSSL handshake with verification, and a libetpan
 * mailstream_low driver over our own fd/SSL with deadline-bounded I/O.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/util.h"
#include "prober/tls.h"

/* ---------- helpers ---------- */

static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

/* OpenSSL writes to the socket with write(2): a peer that went away would
 * raise SIGPIPE and kill the prober. Ignore it when nobody handles it. */
static void ignore_sigpipe(void)
{
	struct sigaction sa;

	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_IGN;
		sigaction(SIGPIPE, &sa, NULL);
	}
}

/* strerror(3) is not thread-safe and the prober runs IMAP sessions in
 * worker threads: the GNU strerror_r returns a pointer to a static string
 * or to buf. */
static const char *errno_str(int e, char *buf, size_t n)
{
	return strerror_r(e, buf, n);
}

/* Milliseconds left until limit (absolute now_mono()), at most INT_MAX;
 * 0 when passed. */
static int ms_left(double limit)
{
	double left = limit - now_mono();
	if (left <= 0)
		return 0;
	if (left * 1000.0 > (double)INT_MAX)
		return INT_MAX;
	return (int)(left * 1000.0) + 1;
}

/* Wait for events on fd until limit: 1 ready, 0 timed out, -1 error. */
static const atomic_int *abort_flag;

void tls_set_abort_flag(const atomic_int *flag)
{
	abort_flag = flag;
}

int tls_stop_requested(void)
{
	return abort_flag != NULL && atomic_load(abort_flag) != 0;
}

/* Wait until fd is ready, the limit passes (0) or a stop is requested (0,
 * like a timeout: the caller gives up the command). */
static int wait_fd(int fd, short events, double limit)
{
	for (;;) {
		int ms = ms_left(limit);
		struct pollfd pfd = { .fd = fd, .events = events, .revents = 0 };
		if (ms <= 0 || (abort_flag != NULL && atomic_load(abort_flag)))
			return 0;
		if (abort_flag != NULL && ms > 250)
			ms = 250;           /* notice a stop request within a quarter second */
		int r = poll(&pfd, 1, ms);
		if (r > 0)
			return 1;           /* readiness or POLLERR/POLLHUP: the next I/O tells */
		if (r == 0)
			continue;           /* re-check the clock */
		if (errno == EINTR)
			continue;
		return -1;
	}
}

/* What an SSL call that returned r wants before it can go on: POLLIN or
 * POLLOUT in *ev and 0, or -1 when it failed for good (then
 * SSL_get_error's code is in *err when err is not NULL). */
static int ssl_wants(SSL *ssl, int r, short *ev, int *err)
{
	int e = SSL_get_error(ssl, r);

	if (err != NULL)
		*err = e;
	if (e == SSL_ERROR_WANT_READ)
		*ev = POLLIN;
	else if (e == SSL_ERROR_WANT_WRITE)
		*ev = POLLOUT;
	else
		return -1;
	return 0;
}

int tls_host_is_ip(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (!host)
		return 0;
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* ---------- name resolution ---------- */

#define RESOLVE_TIMED_OUT 1   /* not an EAI_* code (those are non-positive) */

#ifdef HAVE_GETADDRINFO_A
/* One asynchronous lookup. getaddrinfo_a (glibc) runs it in a helper
 * thread; when we stop waiting (timeout) the helper may still be running
 * and still write to the gaicb, so the request lives on the heap and is
 * freed by whichever of the waiter and the completion notification
 * (SIGEV_THREAD) lets go of it last. */
struct gai_req {
	atomic_int refs;
	struct gaicb cb;
	struct addrinfo hints;
	char port[16];
	char host[];
};

static void gai_req_unref(struct gai_req *q)
{
	if (atomic_fetch_sub(&q->refs, 1) == 1) {
		if (q->cb.ar_result)
			freeaddrinfo(q->cb.ar_result);
		free(q);
	}
}

static void gai_req_done(union sigval sv)
{
	gai_req_unref(sv.sival_ptr);
}

/* getaddrinfo bounded by limit (absolute now_mono()). Returns 0 with *res
 * set, an EAI_* code, or RESOLVE_TIMED_OUT. */
static int resolve_once(const char *host, const char *port, int flags, double limit,
                        struct addrinfo **res)
{
	size_t hlen = strlen(host);
	struct gai_req *q = xcalloc(1, sizeof *q + hlen + 1);
	struct gaicb *list[1];
	struct sigevent sev;
	int rc;

	*res = NULL;
	memcpy(q->host, host, hlen + 1);
	snprintf(q->port, sizeof q->port, "%s", port);
	q->hints.ai_family = AF_UNSPEC;
	q->hints.ai_socktype = SOCK_STREAM;
	q->hints.ai_flags = flags;
	q->cb.ar_name = q->host;
	q->cb.ar_service = q->port;
	q->cb.ar_request = &q->hints;
	atomic_init(&q->refs, 2);          /* the waiter and the notification */
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = gai_req_done;
	sev.sigev_value.sival_ptr = q;
	list[0] = &q->cb;
	rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev);
	if (rc != 0) {
		/* glibc still notifies when nothing could be queued (GAI_NOWAIT):
		 * drop only our reference (at worst a small leak, never a double
		 * free). */
		gai_req_unref(q);
		return rc == EAI_SYSTEM ? EAI_AGAIN : rc;
	}
	for (;;) {
		rc = gai_error(&q->cb);
		if (rc != EAI_INPROGRESS)
			break;
		double left = limit - now_mono();
		if (left <= 0) {
			if (gai_cancel(&q->cb) == EAI_CANCELED)
				gai_req_unref(q);  /* dequeued: no notification will come */
			gai_req_unref(q);
			return RESOLVE_TIMED_OUT;
		}
		struct timespec ts;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		const struct gaicb *wl[1] = { &q->cb };
		gai_suspend(wl, 1, &ts);    /* EAI_AGAIN (timeout), EAI_INTR, done: re-check */
	}
	if (rc == 0) {
		*res = q->cb.ar_result;
		q->cb.ar_result = NULL;
	}
	gai_req_unref(q);
	return rc;
}
#else
/* Without getaddrinfo_a the lookup is bounded only by the resolver's own
 * timeouts (resolv.conf); the limit is checked before it starts. */
static int resolve_once(const char *host, const char *port, int flags, double limit,
                        struct addrinfo **res)
{
	struct addrinfo hints;

	*res = NULL;
	if (now_mono() >= limit)
		return RESOLVE_TIMED_OUT;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = flags;
	return getaddrinfo(host, port, &hints, res);
}
#endif

/* Resolve host:port within limit. AI_ADDRCONFIG first; it hides
 * loopback-only addresses on hosts without a configured interface, so a
 * "no such name / no address of that family" answer is retried without
 * it (other failures, e.g. a resolver timeout, are not retried). */
static int resolve(const char *host, const char *port, double limit, struct addrinfo **res)
{
	int rc = resolve_once(host, port, AI_ADDRCONFIG, limit, res);
	if (rc == EAI_NONAME
#ifdef EAI_ADDRFAMILY
	    || rc == EAI_ADDRFAMILY
#endif
	   ) {
		if (now_mono() >= limit)
			return RESOLVE_TIMED_OUT;
		rc = resolve_once(host, port, 0, limit, res);
	}
	return rc;
}

/* ---------- receive timestamps (SO_TIMESTAMPNS) ---------- */

/* Every read of a connection goes through recvmsg(2) with SO_TIMESTAMPNS
 * on (socket(7)): TCP then hands back, as an SCM_TIMESTAMPNS control
 * message, the kernel's receive time (CLOCK_REALTIME) of the last segment
 * the read returned bytes from. That is when the server's bytes reached
 * this host, however late the thread got to read them: a busy host wakes
 * a watcher hundreds of milliseconds after an IDLE EXISTS arrived (SPEC
 * "Latency": the moment a probe was seen is an upper bound of its
 * arrival). Without the message (setsockopt refused, another OS) the wall
 * clock right after the read stands in: still an upper bound. */
struct rxsock {
	int fd;          /* borrowed: the ipconn owns it */
	int eof;         /* a read returned 0 (for BIO_CTRL_EOF) */
	double last_rx;  /* Unix seconds of the latest read that returned data; 0 none */
	double opened;   /* Unix seconds the connection was opened (tls_low_set_opened); 0 unknown */
};

/* Turn receive timestamps on for fd; a refusal leaves the wall clock. */
static void rx_enable(int fd)
{
	int on = 1;

	(void)setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
}

/* The SCM_TIMESTAMPNS stamp in mh as Unix seconds, or 0 when none. */
static double rx_stamp_of(struct msghdr *mh)
{
	struct timespec ts;
	double t = 0;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS &&
		    cm->cmsg_len >= CMSG_LEN(sizeof ts)) {
			memcpy(&ts, CMSG_DATA(cm), sizeof ts);
			t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
		}
	return t;
}

/* The kernel's stamp t (0: none) when it is a plausible receive time for
 * a connection opened at opened (0: unknown): not in the future (now), not
 * a day old, not before the connection was opened (a clock stepped back,
 * a stamp from elsewhere). Else now, the wall clock after the read: still
 * an upper bound of the arrival. */
static double rx_plausible(double t, double opened, double now)
{
	if (t <= now - 86400.0 || t > now)
		return now;
	if (opened > 0 && t < opened)
		return now;
	return t;
}

/* recv(2) on rx->fd through recvmsg(2): returns what recv returns (errno
 * set on -1). When bytes came, rx->last_rx is the kernel's receive time
 * of the last segment they came from, or the wall clock now when the
 * kernel gave none or an implausible one (rx_plausible()). */
static ssize_t rx_recv(struct rxsock *rx, void *buf, size_t n)
{
	union {
		char b[2 * CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = n };
	struct msghdr mh;
	ssize_t r;
	double t, now;

	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.b;
	mh.msg_controllen = sizeof ctl.b;
	r = recvmsg(rx->fd, &mh, 0);
	if (r == 0)
		rx->eof = 1;
	if (r <= 0)
		return r;
	t = (mh.msg_flags & MSG_CTRUNC) ? 0 : rx_stamp_of(&mh);
	now = now_wall();
	rx->last_rx = rx_plausible(t, rx->opened, now);
	return r;
}

/* errno values after which a socket read or write is to be retried once
 * the socket is ready. OpenSSL's socket BIO also retries ENOTCONN and
 * EPROTO; on a connected TCP socket they mean the connection is gone, and
 * retrying them would spin until the limit. */
static int rx_retryable(int e)
{
	return e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == EINPROGRESS || e == EALREADY;
}

/* A BIO for OpenSSL over a connected non-blocking TCP socket, like the
 * socket BIO (BIO_s_socket) but reading through rx_recv(), so that a TLS
 * connection knows when its records arrived. It does not own the fd.
 * Reads and writes set the retry flags as the socket BIO does, so that
 * SSL_read/SSL_write/SSL_connect/SSL_shutdown report
 * SSL_ERROR_WANT_READ/WANT_WRITE; a read that found the stream's end
 * answers BIO_CTRL_EOF (OpenSSL then says "unexpected eof" rather than
 * a bare syscall error, as with the socket BIO). */
static int rxbio_read(BIO *b, char *out, int outl)
{
	struct rxsock *rx = BIO_get_data(b);
	ssize_t r;

	BIO_clear_retry_flags(b);
	if (rx == NULL || out == NULL || outl <= 0)
		return 0;
	errno = 0;
	r = rx_recv(rx, out, (size_t)outl);
	if (r < 0 && rx_retryable(errno))
		BIO_set_retry_read(b);
	return (int)r;
}

static int rxbio_write(BIO *b, const char *in, int inl)
{
	struct rxsock *rx = BIO_get_data(b);
	ssize_t r;

	BIO_clear_retry_flags(b);
	if (rx == NULL || in == NULL || inl <= 0)
		return 0;
	errno = 0;
	r = send(rx->fd, in, (size_t)inl, MSG_NOSIGNAL);   /* no SIGPIPE from a gone peer */
	if (r < 0 && rx_retryable(errno))
		BIO_set_retry_write(b);
	return (int)r;
}

static int rxbio_puts(BIO *b, const char *str)
{
	size_t n = strlen(str);

	return rxbio_write(b, str, n > INT_MAX ? INT_MAX : (int)n);
}

/* What the socket BIO answers that SSL asks: FLUSH (writes are not
 * buffered), EOF, the fd (SSL_get_fd; BIO_TYPE_DESCRIPTOR), the close
 * flag (never: the ipconn owns the fd). Anything else (kTLS, pending,
 * push/pop) 0, as the socket BIO does. */
static long rxbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct rxsock *rx = BIO_get_data(b);

	(void)num;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
	case BIO_CTRL_DUP:
	case BIO_CTRL_SET_CLOSE:
		return 1;
	case BIO_CTRL_GET_CLOSE:
		return BIO_NOCLOSE;
	case BIO_CTRL_EOF:
		return rx != NULL && rx->eof;
	case BIO_C_GET_FD:
		if (rx == NULL)
			return -1;
		if (ptr != NULL)
			*(int *)ptr = rx->fd;
		return rx->fd;
	default:
		return 0;
	}
}

static int rxbio_create(BIO *b)
{
	BIO_set_data(b, NULL);
	BIO_set_init(b, 0);
	return 1;
}

static int rxbio_destroy(BIO *b)
{
	if (b == NULL)
		return 0;
	free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	BIO_set_init(b, 0);
	return 1;
}

static BIO_METHOD *rxbio_method;   /* made once, kept for the process */
static int rxbio_type;
static pthread_once_t rxbio_once = PTHREAD_ONCE_INIT;

static void rxbio_make(void)
{
	int type = BIO_get_new_index();
	BIO_METHOD *m;

	if (type == -1)
		return;
	type |= BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR;
	m = BIO_meth_new(type, "inboxprobe rxsocket");
	if (m == NULL)
		return;
	if (BIO_meth_set_read(m, rxbio_read) != 1 || BIO_meth_set_write(m, rxbio_write) != 1 ||
	    BIO_meth_set_puts(m, rxbio_puts) != 1 || BIO_meth_set_ctrl(m, rxbio_ctrl) != 1 ||
	    BIO_meth_set_create(m, rxbio_create) != 1 || BIO_meth_set_destroy(m, rxbio_destroy) != 1) {
		BIO_meth_free(m);
		return;
	}
	rxbio_type = type;
	rxbio_method = m;
}

/* A new rx BIO over fd (receive timestamps turned on), or NULL when
 * OpenSSL could not make one (out of memory). The caller owns it (or
 * hands it to SSL_set_bio). */
static BIO *rxbio_new(int fd)
{
	struct rxsock *rx;
	BIO *b;

	pthread_once(&rxbio_once, rxbio_make);
	if (rxbio_method == NULL || (b = BIO_new(rxbio_method)) == NULL)
		return NULL;
	rx = xcalloc(1, sizeof *rx);
	rx->fd = fd;
	rx_enable(fd);
	BIO_set_data(b, rx);
	BIO_set_init(b, 1);
	return b;
}

/* The rxsock of ssl's read BIO when it is an rx BIO, else NULL. */
static struct rxsock *rxbio_of(SSL *ssl)
{
	BIO *b = ssl != NULL ? SSL_get_rbio(ssl) : NULL;

	if (b == NULL || rxbio_method == NULL || BIO_method_type(b) != rxbio_type)
		return NULL;
	return BIO_get_data(b);
}

/* ---------- resolution cache ---------- */

/* The addresses host:port resolved to, in the resolver's order. */
#define ADDRS_MAX 8
struct addr_list {
	size_t n;
	struct {
		int family, socktype, protocol;
		socklen_t len;
		struct sockaddr_storage ss;
	} a[ADDRS_MAX];
};

/* Answers kept RESOLVE_TTL seconds per host and port: a round of 1,000
 * seeds on one server connects 1,000 times within seconds, and each lookup
 * cost a getaddrinfo_a helper thread and reads of nsswitch.conf and
 * /etc/hosts. Failures are never kept; a daemon sees a changed address
 * within RESOLVE_TTL, and at once when no address kept answers (the entry
 * is dropped when a connect fails on every one, rcache_drop()). */
#define RESOLVE_TTL 30.0
#define RESOLVE_CACHE_MAX 32
static struct {
	char *host;
	char port[16];
	double at;                 /* now_mono() of the answer */
	struct addr_list al;
} rcache[RESOLVE_CACHE_MAX];
static pthread_mutex_t rcache_mu = PTHREAD_MUTEX_INITIALIZER;

static int rcache_get(const char *host, const char *port, struct addr_list *al)
{
	int hit = 0;
	double now = now_mono();

	pthread_mutex_lock(&rcache_mu);
	for (size_t i = 0; i < RESOLVE_CACHE_MAX && rcache[i].host != NULL; i++)
		if (strcmp(rcache[i].host, host) == 0 && strcmp(rcache[i].port, port) == 0) {
			if (now - rcache[i].at < RESOLVE_TTL) {
				*al = rcache[i].al;
				hit = 1;
			}
			break;
		}
	pthread_mutex_unlock(&rcache_mu);
	return hit;
}

/* Keep al for host:port, in its old slot, else a free one, else the oldest. */
static void rcache_put(const char *host, const char *port, const struct addr_list *al)
{
	size_t i, slot = 0;

	pthread_mutex_lock(&rcache_mu);
	for (i = 0; i < RESOLVE_CACHE_MAX && rcache[i].host != NULL; i++) {
		if (strcmp(rcache[i].host, host) == 0 && strcmp(rcache[i].port, port) == 0)
			break;
		if (rcache[i].at < rcache[slot].at)
			slot = i;
	}
	if (i < RESOLVE_CACHE_MAX)
		slot = i;
	if (rcache[slot].host == NULL || strcmp(rcache[slot].host, host) != 0) {
		free(rcache[slot].host);
		rcache[slot].host = xstrdup(host);
	}
	/* always: the oldest entry replaced may be the same host on another
	 * port, and al's addresses carry this port (test_rcache) */
	snprintf(rcache[slot].port, sizeof rcache[slot].port, "%s", port);
	rcache[slot].at = now_mono();
	rcache[slot].al = *al;
	pthread_mutex_unlock(&rcache_mu);
}

/* Forget host:port's addresses: a connect failed on every one of them (a
 * server that moved must not be sought at its old address for RESOLVE_TTL). */
static void rcache_drop(const char *host, const char *port)
{
	pthread_mutex_lock(&rcache_mu);
	for (size_t i = 0; i < RESOLVE_CACHE_MAX && rcache[i].host != NULL; i++)
		if (strcmp(rcache[i].host, host) == 0 && strcmp(rcache[i].port, port) == 0) {
			rcache[i].at = -RESOLVE_TTL * 2;   /* expired: the slot stays in use */
			break;
		}
	pthread_mutex_unlock(&rcache_mu);
}

int tls_resolve_cached(const char *host, int port)
{
	struct addr_list al;
	char portstr[16];

	snprintf(portstr, sizeof portstr, "%d", port);
	return rcache_get(host, portstr, &al);
}

/* host:port's addresses within limit, from the cache or the resolver:
 * 0, or what resolve() returns. */
static int lookup(const char *host, const char *port, double limit, struct addr_list *al)
{
	struct addrinfo *res = NULL;
	int rc;

	if (rcache_get(host, port, al))
		return 0;
	rc = resolve(host, port, limit, &res);
	if (rc != 0)
		return rc;
	al->n = 0;
	for (struct addrinfo *ai = res; ai != NULL && al->n < ADDRS_MAX; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof al->a[0].ss)
			continue;
		al->a[al->n].family = ai->ai_family;
		al->a[al->n].socktype = ai->ai_socktype;
		al->a[al->n].protocol = ai->ai_protocol;
		al->a[al->n].len = ai->ai_addrlen;
		memcpy(&al->a[al->n].ss, ai->ai_addr, ai->ai_addrlen);
		al->n++;
	}
	freeaddrinfo(res);
	if (al->n > 0)
		rcache_put(host, port, al);
	return 0;
}

/* ---------- TCP ---------- */

int tls_tcp_connect(const char *host, int port, long connect_timeout, double deadline,
                    int *fd, char **errstr)
{
	struct addr_list al;
	char portstr[16];
	char last[256] = "no address";
	char ebuf[128];
	int timed_out = 0;
	int rc;
	double rlimit;

	pthread_once(&sigpipe_once, ignore_sigpipe);
	*fd = -1;
	snprintf(portstr, sizeof portstr, "%d", port);
	if (now_mono() >= deadline) {
		*errstr = xasprintf("%s:%d: round deadline reached before connecting", host, port);
		return TLS_ETIMEOUT;
	}
	rlimit = now_mono() + (connect_timeout > 0 ? (double)connect_timeout : 10.0);
	if (rlimit > deadline)
		rlimit = deadline;
	rc = lookup(host, portstr, rlimit, &al);
	if (rc == RESOLVE_TIMED_OUT) {
		*errstr = xasprintf("%s:%d: cannot resolve host: no answer in time "
		                    "(connect_timeout or round deadline)", host, port);
		return TLS_ETIMEOUT;
	}
	if (rc != 0) {
		int nfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (nfd < 0 && (errno == EMFILE || errno == ENFILE)) {
			/* the resolver needs files too: ours, not the server's */
			*errstr = xasprintf("%s:%d: too many open files%s to resolve the host; raise the "
			                    "limit (ulimit -n, systemd LimitNOFILE=) or lower imap_limits",
			                    host, port, errno == ENFILE ? " in the system" : "");
			return TLS_ECONNECT;
		}
		if (nfd >= 0)
			close(nfd);
		*errstr = xasprintf("%s:%d: cannot resolve host: %s", host, port, gai_strerror(rc));
		return TLS_ECONNECT;
	}
	for (size_t k = 0; k < al.n; k++) {
		const struct sockaddr *sa = (const struct sockaddr *)&al.a[k].ss;
		char addr[INET6_ADDRSTRLEN] = "?";
		double limit = now_mono() + (connect_timeout > 0 ? (double)connect_timeout : 10.0);
		if (limit > deadline)
			limit = deadline;
		if (al.a[k].family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
		else if (al.a[k].family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
		if (now_mono() >= deadline) {
			timed_out = 1;
			snprintf(last, sizeof last, "round deadline reached");
			break;
		}
		int s = socket(al.a[k].family, al.a[k].socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		               al.a[k].protocol);
		if (s < 0 && (errno == EMFILE || errno == ENFILE)) {
			/* ours, not the server's: say so first */
			snprintf(last, sizeof last, "too many open files%s (no socket for %s); raise the "
			         "limit (ulimit -n, systemd LimitNOFILE=) or lower imap_limits",
			         errno == ENFILE ? " in the system" : "", addr);
			continue;
		}
		if (s < 0) {
			snprintf(last, sizeof last, "%s: socket: %s", addr, errno_str(errno, ebuf, sizeof ebuf));
			continue;
		}
		/* before connect: the kernel switches stamping on in a work
		 * queue, so ask early, long before the first announcement */
		rx_enable(s);
		if (connect(s, sa, al.a[k].len) == 0) {
			*fd = s;
			break;
		}
		if (errno != EINPROGRESS) {
			snprintf(last, sizeof last, "%s: %s", addr, errno_str(errno, ebuf, sizeof ebuf));
			close(s);
			continue;
		}
		int w = wait_fd(s, POLLOUT, limit);
		if (w == 0) {
			snprintf(last, sizeof last, "%s: connect timed out", addr);
			timed_out = 1;
			close(s);
			continue;
		}
		int soerr = 0;
		socklen_t len = sizeof soerr;
		if (w < 0 || getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
			soerr = errno;
		if (soerr != 0) {
			snprintf(last, sizeof last, "%s: %s", addr, errno_str(soerr, ebuf, sizeof ebuf));
			close(s);
			continue;
		}
		*fd = s;
		timed_out = 0;
		break;
	}
	if (*fd >= 0)
		return TLS_OK;
	rcache_drop(host, portstr);
	*errstr = xasprintf("%s:%d: cannot connect: %s", host, port, last);
	return timed_out ? TLS_ETIMEOUT : TLS_ECONNECT;
}

/* ---------- TLS handshake ---------- */

static const char *verify_hint(long v)
{
	switch (v) {
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		return "not issued by a trusted CA; set ca_file to trust it";
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return "unknown CA: the issuer is not in the trust store; set ca_file";
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return "renew the server certificate";
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "check the clock";
	case X509_V_ERR_HOSTNAME_MISMATCH:
		return "the certificate does not name this host";
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return "the certificate does not name this address; connect by the name it carries";
	default:
		return NULL;
	}
}

static void append_ssl_errors(struct strbuf *sb)
{
	unsigned long e;
	int n = 0;
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		if (n++ < 3) {
			ERR_error_string_n(e, buf, sizeof buf);
			strbuf_addf(sb, "%s%s", n == 1 ? ": " : "; ", buf);
		}
	}
}

/* ---------- TLS session resumption ---------- */

/* The last session (TLS 1.3 ticket or TLS 1.2 session) each server gave,
 * per CA file, host and port: the next connection to it resumes it
 * (RFC 8446 2.2) and skips the certificate chain, its parse and its
 * verification, and the server's signature: most of a handshake's CPU on
 * both sides (1,000 seeds open 2,000 sessions a round). A session is kept
 * only after a handshake that verified the peer for that host with that
 * CA file, and is offered only to the same host, port and CA file, so a
 * resumption proves what the full handshake proved. A server that refuses
 * it simply runs a full handshake. */
#define SESS_CACHE_MAX 64
static struct {
	char *ca_file;   /* NULL: the system store */
	char *host;
	int port;
	SSL_SESSION *sess;
} sess_cache[SESS_CACHE_MAX];
static size_t sess_cached;
static pthread_mutex_t sess_mu = PTHREAD_MUTEX_INITIALIZER;

static int same_ca(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The slot of (ca_file, host, port), made when new: index + 1, or 0 when
 * the table is full (then no resumption for it). */
static size_t sess_slot(const char *ca_file, const char *host, int port)
{
	size_t i, slot = 0;

	pthread_mutex_lock(&sess_mu);
	for (i = 0; i < sess_cached; i++)
		if (sess_cache[i].port == port && strcmp(sess_cache[i].host, host) == 0 &&
		    same_ca(sess_cache[i].ca_file, ca_file)) {
			slot = i + 1;
			break;
		}
	if (slot == 0 && sess_cached < SESS_CACHE_MAX) {
		sess_cache[sess_cached].ca_file = ca_file ? xstrdup(ca_file) : NULL;
		sess_cache[sess_cached].host = xstrdup(host);
		sess_cache[sess_cached].port = port;
		slot = ++sess_cached;
	}
	pthread_mutex_unlock(&sess_mu);
	return slot;
}

/* Offer slot's session, if any, to ssl before its handshake. */
static void sess_offer(SSL *ssl, size_t slot)
{
	SSL_SESSION *sess = NULL;

	if (slot == 0)
		return;
	pthread_mutex_lock(&sess_mu);
	sess = sess_cache[slot - 1].sess;
	if (sess != NULL && SSL_SESSION_is_resumable(sess))
		SSL_SESSION_up_ref(sess);
	else
		sess = NULL;
	pthread_mutex_unlock(&sess_mu);
	if (sess != NULL) {
		SSL_set_session(ssl, sess);   /* takes its own reference */
		SSL_SESSION_free(sess);
	}
	SSL_set_app_data(ssl, (void *)(uintptr_t)slot);
}

/* OpenSSL's new-session callback (after the handshake, or as a TLS 1.3
 * ticket arrives): keep the session for ssl's slot. Returns 1: the
 * reference is ours. */
static int sess_new_cb(SSL *ssl, SSL_SESSION *sess)
{
	size_t slot = (size_t)(uintptr_t)SSL_get_app_data(ssl);
	SSL_SESSION *old;

	if (slot == 0 || slot > SESS_CACHE_MAX || SSL_get_verify_result(ssl) != X509_V_OK)
		return 0;
	pthread_mutex_lock(&sess_mu);
	old = sess_cache[slot - 1].sess;
	sess_cache[slot - 1].sess = sess;
	pthread_mutex_unlock(&sess_mu);
	if (old != NULL)
		SSL_SESSION_free(old);
	return 1;
}

/* ---------- shared SSL_CTX ---------- */

/* One client SSL_CTX per CA file (NULL: the system store), made on first
 * use and kept for the process: the trust store is parsed once, not once
 * per connection (1,000 seeds, two sessions each). SSL_CTX is safe to share
 * between threads once configured. */
#define CTX_CACHE_MAX 16
static struct { char *ca_file; SSL_CTX *ctx; } ctx_cache[CTX_CACHE_MAX];
static size_t ctx_cached;
static pthread_mutex_t ctx_mu = PTHREAD_MUTEX_INITIALIZER;

static SSL_CTX *new_ctx(const char *ca_file, const char *host, int port, struct strbuf *sb)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx) {
		strbuf_addf(sb, "%s:%d: TLS setup failed", host, port);
		append_ssl_errors(sb);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* idle sessions give their read/write buffers back (about 34 KiB each) */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* read as much as the socket holds, not a record's header then its
	 * body: half the reads (recvmsg) per session. Bytes read ahead are
	 * buffered inside OpenSSL, where poll() cannot see them:
	 * tls_low_pending() counts them (SSL_has_pending). */
	SSL_CTX_set_read_ahead(ctx, 1);
	/* sessions kept outside OpenSSL's cache, per server (sess_new_cb) */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, sess_new_cb);
	if (ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			strbuf_addf(sb, "%s:%d: cannot load ca_file %s", host, port, ca_file);
			append_ssl_errors(sb);
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		strbuf_addf(sb, "%s:%d: cannot load the system trust store", host, port);
		append_ssl_errors(sb);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* The shared context for ca_file, with a reference for the caller (who
 * SSL_CTX_free()s it), or NULL with sb explaining. */
static SSL_CTX *shared_ctx(const char *ca_file, const char *host, int port, struct strbuf *sb)
{
	SSL_CTX *ctx = NULL;
	size_t i;

	pthread_mutex_lock(&ctx_mu);
	for (i = 0; i < ctx_cached; i++)
		if ((ca_file == NULL && ctx_cache[i].ca_file == NULL) ||
		    (ca_file && ctx_cache[i].ca_file && strcmp(ca_file, ctx_cache[i].ca_file) == 0)) {
			ctx = ctx_cache[i].ctx;
			break;
		}
	if (!ctx) {
		ctx = new_ctx(ca_file, host, port, sb);
		if (ctx && ctx_cached < CTX_CACHE_MAX) {
			ctx_cache[ctx_cached].ca_file = ca_file ? xstrdup(ca_file) : NULL;
			ctx_cache[ctx_cached++].ctx = ctx;
		} else if (ctx) {
			/* cache full: this context serves one connection only */
			pthread_mutex_unlock(&ctx_mu);
			return ctx;
		}
	}
	if (ctx)
		SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&ctx_mu);
	return ctx;
}

int tls_handshake(int fd, const char *host, int port, const char *ca_file, double deadline,
                  SSL **out, char **errstr)
{
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	BIO *bio;
	struct strbuf sb = STRBUF_INIT;
	char ebuf[128];
	int rc = TLS_EHANDSHAKE;
	int is_ip = tls_host_is_ip(host);

	*out = NULL;
	ERR_clear_error();
	ctx = shared_ctx(ca_file, host, port, &sb);
	if (!ctx)
		goto out;
	ssl = SSL_new(ctx);
	bio = ssl ? rxbio_new(fd) : NULL;
	if (!bio) {
		strbuf_addf(&sb, "%s:%d: TLS setup failed", host, port);
		append_ssl_errors(&sb);
		goto out;
	}
	SSL_set_bio(ssl, bio, bio);   /* one reference, for both directions, now the SSL's */
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1) {
			strbuf_addf(&sb, "%s:%d: cannot set the IP address to verify", host, port);
			goto out;
		}
	} else {
		if (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1) {
			strbuf_addf(&sb, "%s:%d: cannot set the host name to verify", host, port);
			append_ssl_errors(&sb);
			goto out;
		}
	}
	sess_offer(ssl, sess_slot(ca_file, host, port));
	for (;;) {
		ERR_clear_error();
		errno = 0;
		int r = SSL_connect(ssl);
		int saved_errno = errno;    /* before anything else can change it */
		if (r == 1)
			break;
		int e;
		short ev;
		if (ssl_wants(ssl, r, &ev, &e) != 0) {
			long v = SSL_get_verify_result(ssl);
			if (v != X509_V_OK) {
				const char *hint = verify_hint(v);
				strbuf_addf(&sb, "%s:%d: TLS certificate verification failed: %s",
				            host, port, X509_verify_cert_error_string(v));
				if (hint)
					strbuf_addf(&sb, " (%s)", hint);
				ERR_clear_error();
			} else if (e == SSL_ERROR_SYSCALL && saved_errno != 0) {
				strbuf_addf(&sb, "%s:%d: TLS handshake failed: %s", host, port,
				            errno_str(saved_errno, ebuf, sizeof ebuf));
				append_ssl_errors(&sb);
			} else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
				strbuf_addf(&sb, "%s:%d: TLS handshake failed: connection closed by peer"
				            " (is this port speaking TLS?)", host, port);
				append_ssl_errors(&sb);
			} else {
				strbuf_addf(&sb, "%s:%d: TLS handshake failed", host, port);
				append_ssl_errors(&sb);
			}
			goto out;
		}
		int w = wait_fd(fd, ev, deadline);
		if (w == 0) {
			strbuf_addf(&sb, "%s:%d: TLS handshake timed out", host, port);
			rc = TLS_ETIMEOUT;
			goto out;
		}
		if (w < 0) {
			strbuf_addf(&sb, "%s:%d: TLS handshake failed: poll: %s", host, port,
			            errno_str(errno, ebuf, sizeof ebuf));
			goto out;
		}
	}
	*out = ssl;
	ssl = NULL;
	rc = TLS_OK;
out:
	if (ssl)
		SSL_free(ssl);
	if (ctx)
		SSL_CTX_free(ctx);     /* the SSL keeps its own reference */
	if (rc != TLS_OK)
		*errstr = strbuf_detach(&sb);
	else
		strbuf_free(&sb);
	return rc;
}

/* ---------- mailstream_low driver ---------- */

struct ipconn {
	int fd;
	SSL *ssl;
	int owns_fd;
	double limit;        /* absolute now_mono() */
	int timed_out;
	int stopped;         /* timed_out by a stop request (tls_set_abort_flag) */
	int broken;
	size_t nread;        /* bytes read since the last tls_low_set_limit() */
	size_t budget;       /* bytes a command may read (tls_low_set_budget()) */
	int over_budget;     /* a reply exceeded budget: broken too */
	char tail[512];      /* the last bytes received, for a BYE's text */
	size_t tail_len;
	int tail_wrapped;    /* bytes before tail were dropped: its start may be mid-line */
	struct rxsock plain; /* a plain connection's reads */
	struct rxsock *rx;   /* where reads are stamped: &plain, the SSL's rx BIO, or NULL */
	double last_rx;      /* receive time of the latest read that returned data; 0 none */
};

/* A read returned data: keep its receive time (the wall clock now when
 * the reads are not stamped: an SSL not over an rx BIO). */
static void note_rx(struct ipconn *c)
{
	c->last_rx = c->rx != NULL && c->rx->last_rx > 0 ? c->rx->last_rx : now_wall();
}

/* Keep the last sizeof tail bytes received. */
static void keep_tail(struct ipconn *c, const char *buf, size_t n)
{
	size_t cap = sizeof c->tail;

	if (n >= cap) {
		memcpy(c->tail, buf + n - cap, cap);
		c->tail_len = cap;
		c->tail_wrapped = 1;
		return;
	}
	if (c->tail_len + n > cap) {
		size_t drop = c->tail_len + n - cap;
		memmove(c->tail, c->tail + drop, c->tail_len - drop);
		c->tail_len -= drop;
		c->tail_wrapped = 1;
	}
	memcpy(c->tail + c->tail_len, buf, n);
	c->tail_len += n;
}

static struct ipconn *conn_of(mailstream_low *s)
{
	return (struct ipconn *)s->data;
}

/* Wait until c's socket is ready for ev within its limit: 0 to retry the
 * I/O, -1 with c->timed_out (limit or stop request) or c->broken set. */
static int wait_io(struct ipconn *c, short ev)
{
	int w = wait_fd(c->fd, ev, c->limit);

	if (w > 0)
		return 0;
	if (w == 0) {
		c->timed_out = 1;
		c->stopped = tls_stop_requested();
	} else {
		c->broken = 1;
	}
	return -1;
}

static ssize_t low_read(mailstream_low *s, void *buf, size_t count)
{
	struct ipconn *c = conn_of(s);

	if (c->fd < 0 || c->broken)
		return -1;
	/* The limit is checked before every read, not only when the socket
	 * runs dry: a peer that keeps data flowing must not outlive it. */
	if (c->timed_out || ms_left(c->limit) == 0) {
		c->timed_out = 1;
		return -1;
	}
	/* Byte budget per command: libetpan keeps a whole response line or
	 * literal in memory, so a peer streaming an endless one would grow
	 * the prober without bound. Over budget, the stream is broken. */
	if (c->nread >= c->budget) {
		c->over_budget = 1;
		c->broken = 1;
		return -1;
	}
	if (count > c->budget - c->nread)
		count = c->budget - c->nread;
	if (count > INT_MAX)
		count = INT_MAX;
	for (;;) {
		short ev = POLLIN;
		if (c->ssl) {
			/* SSL_read first: it returns data already decrypted
			 * (SSL_pending) without touching the socket. */
			ERR_clear_error();
			int r = SSL_read(c->ssl, buf, (int)count);
			if (r > 0) {
				c->nread += (size_t)r;
				keep_tail(c, buf, (size_t)r);
				note_rx(c);
				return r;
			}
			if (ssl_wants(c->ssl, r, &ev, NULL) != 0) {
				ERR_clear_error();
				c->broken = 1;
				return -1;
			}
		} else {
			ssize_t r = rx_recv(&c->plain, buf, count);
			if (r > 0) {
				c->nread += (size_t)r;
				keep_tail(c, buf, (size_t)r);
				note_rx(c);
				return r;
			}
			if (r == 0) {
				c->broken = 1;
				return -1;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				c->broken = 1;
				return -1;
			}
		}
		if (wait_io(c, ev) != 0)
			return -1;
	}
}

static ssize_t low_write(mailstream_low *s, const void *buf, size_t count)
{
	struct ipconn *c = conn_of(s);

	if (c->fd < 0 || c->broken)
		return -1;
	if (c->timed_out || ms_left(c->limit) == 0) {   /* see low_read */
		c->timed_out = 1;
		return -1;
	}
	if (count > INT_MAX)
		count = INT_MAX;
	for (;;) {
		short ev = POLLOUT;
		if (c->ssl) {
			ERR_clear_error();
			int r = SSL_write(c->ssl, buf, (int)count);
			if (r > 0)
				return r;
			if (ssl_wants(c->ssl, r, &ev, NULL) != 0) {
				ERR_clear_error();
				c->broken = 1;
				return -1;
			}
		} else {
			ssize_t r = send(c->fd, buf, count, MSG_NOSIGNAL);
			if (r >= 0)
				return r;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				c->broken = 1;
				return -1;
			}
		}
		if (wait_io(c, ev) != 0)
			return -1;
	}
}

static int low_close(mailstream_low *s)
{
	struct ipconn *c = conn_of(s);

	if (c->ssl && !c->broken && !c->timed_out) {
		ERR_clear_error();
		SSL_shutdown(c->ssl);   /* best effort close_notify; non-blocking */
		ERR_clear_error();
	}
	if (c->owns_fd && c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	return 0;
}

static int low_get_fd(mailstream_low *s)
{
	return conn_of(s)->fd;
}

static void low_free(mailstream_low *s)
{
	struct ipconn *c = conn_of(s);

	if (c) {
		if (c->ssl)
			SSL_free(c->ssl);
		if (c->owns_fd && c->fd >= 0)
			close(c->fd);
		free(c);
	}
	s->data = NULL;
	free(s);    /* libetpan: the driver's free hook releases the low itself */
}

static void low_cancel(mailstream_low *s)
{
	(void)s;    /* reads are bounded by the limit; nothing to interrupt */
}

static struct mailstream_cancel *low_get_cancel(mailstream_low *s)
{
	(void)s;
	return NULL;
}

static carray *low_get_certificate_chain(mailstream_low *s)
{
	struct ipconn *c = conn_of(s);
	STACK_OF(X509) *chain;
	carray *arr;

	if (!c->ssl)
		return NULL;
	chain = SSL_get_peer_cert_chain(c->ssl);
	if (!chain)
		return NULL;
	arr = carray_new(4);
	if (!arr)
		return NULL;
	for (int i = 0; i < sk_X509_num(chain); i++) {
		unsigned char *der = NULL;
		int len = i2d_X509(sk_X509_value(chain, i), &der);
		if (len <= 0)
			continue;
		MMAPString *str = mmap_string_new_len((const char *)der, (size_t)len);
		OPENSSL_free(der);
		if (str)
			carray_add(arr, str, NULL);
	}
	return arr;
}

static mailstream_low_driver ipconn_driver = {
	.mailstream_read = low_read,
	.mailstream_write = low_write,
	.mailstream_close = low_close,
	.mailstream_get_fd = low_get_fd,
	.mailstream_free = low_free,
	.mailstream_cancel = low_cancel,
	.mailstream_get_cancel = low_get_cancel,
	.mailstream_get_certificate_chain = low_get_certificate_chain,
	.mailstream_setup_idle = NULL,
	.mailstream_unsetup_idle = NULL,
	.mailstream_interrupt_idle = NULL,
};

mailstream_low *tls_low_new(int fd, SSL *ssl)
{
	struct ipconn *c = xcalloc(1, sizeof *c);
	mailstream_low *low;

	c->fd = fd;
	c->ssl = ssl;
	c->owns_fd = 1;
	c->limit = now_mono() + 30.0;
	c->budget = TLS_CMD_MAX_BYTES;
	c->plain.fd = fd;
	if (ssl != NULL) {
		c->rx = rxbio_of(ssl);   /* NULL: an SSL made elsewhere, reads not stamped */
	} else {
		rx_enable(fd);
		c->rx = &c->plain;
	}
	low = mailstream_low_new(c, &ipconn_driver);
	if (!low) {
		free(c);
		return NULL;
	}
	return low;
}

void tls_low_set_limit(mailstream_low *low, double limit)
{
	struct ipconn *c = conn_of(low);
	c->limit = limit;
	c->timed_out = 0;
	c->stopped = 0;
	c->nread = 0;
}

void tls_low_set_budget(mailstream_low *low, size_t bytes)
{
	conn_of(low)->budget = bytes;
}

size_t tls_low_budget(mailstream_low *low)
{
	return conn_of(low)->budget;
}

int tls_low_timed_out(mailstream_low *low)
{
	return conn_of(low)->timed_out;
}

int tls_low_stopped(mailstream_low *low)
{
	return conn_of(low)->stopped;
}

int tls_low_broken(mailstream_low *low)
{
	return conn_of(low)->broken;
}

void tls_low_set_opened(mailstream_low *low, double opened)
{
	struct ipconn *c = conn_of(low);

	c->plain.opened = opened;
	if (c->rx != NULL)
		c->rx->opened = opened;
}

double tls_low_opened(mailstream_low *low)
{
	struct ipconn *c = conn_of(low);

	return c->rx != NULL ? c->rx->opened : c->plain.opened;
}

int tls_low_over_budget(mailstream_low *low)
{
	return conn_of(low)->over_budget;
}

int tls_low_bye_text(mailstream_low *low, char *text, size_t textsz)
{
	struct ipconn *c = conn_of(low);
	size_t i = c->tail_len, start, end, j = 0;

	/* the last line that begins with "* BYE" */
	for (;;) {
		int line_start;

		if (i == 0)
			return 0;
		i--;
		line_start = i > 0 ? c->tail[i - 1] == '\n' : !c->tail_wrapped;
		if (line_start && c->tail_len - i >= 5 && strncasecmp(c->tail + i, "* BYE", 5) == 0)
			break;
	}
	start = i + 5;
	while (start < c->tail_len && c->tail[start] == ' ')
		start++;
	for (end = start; end < c->tail_len && c->tail[end] != '\r' && c->tail[end] != '\n'; end++)
		;
	for (i = start; i < end && j + 1 < textsz; i++) {
		unsigned char ch = (unsigned char)c->tail[i];
		text[j++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	text[j] = '\0';
	return 1;
}

size_t tls_low_pending(mailstream_low *low)
{
	struct ipconn *c = conn_of(low);
	int n = c->ssl ? SSL_pending(c->ssl) : 0;

	if (n > 0)
		return (size_t)n;
	/* read ahead, not decrypted yet (maybe not a whole record) */
	return c->ssl && SSL_has_pending(c->ssl) ? 1 : 0;
}

double tls_low_last_rx(mailstream_low *low)
{
	return low != NULL && low->data != NULL ? conn_of(low)->last_rx : 0;
}

int tls_low_release_fd(mailstream_low *low)
{
	struct ipconn *c = conn_of(low);
	c->owns_fd = 0;
	return c->fd;
}
