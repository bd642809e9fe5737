/*
 * test_rxstamp.c - the receive time of what a connection read
 * (prober/tls.h tls_low_last_rx(): SO_TIMESTAMPNS, socket(7); and
 * common/util.h tcp_last_rx(): TCP_INFO, tcp(7)), on a real
 * loopback TCP connection, plain and TLS (a certificate made here, a
 * full handshake, then a resumed one, then SSL_shutdown), through the
 * mailstream_low driver libetpan reads with.
 *
 * A peer thread writes one line; the test reads it 300 ms later. The
 * stamp must be the kernel's, taken when the segment arrived: not before
 * the peer's write began, and before the read began (a stamp taken by
 * the reader would be after). Nothing else is timed: the TLS peer's line
 * may even leave some 40 ms after its write (Nagle holds it behind the
 * session tickets until the client's delayed ACK), which is still after.
 */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/util.h"
#include "prober/tls.h"

#define LINE "* 3 EXISTS\r\n"
#define EPS 0.002          /* seconds: the double's rounding and clock reads */
#define NAP 0.3            /* seconds the reader sleeps before reading */

/* The peer: one listening socket, conns connections served in turn. */
struct peer {
	int lfd, port;
	SSL_CTX *sctx;         /* NULL: plain */
	int conns;
	int note[2];           /* pipe: the peer's write times go to the test */
	int got_command[2];    /* per connection: the client's line arrived */
	int got_close_notify[2];
	pthread_t th;
};

/* Read from fd (or ssl) up to a CRLF: 1 when one came. */
static int peer_read_line(int fd, SSL *ssl)
{
	char c, prev = 0;

	for (;;) {
		int r = ssl ? SSL_read(ssl, &c, 1) : (int)read(fd, &c, 1);
		if (r <= 0)
			return 0;
		if (prev == '\r' && c == '\n')
			return 1;
		prev = c;
	}
}

/* One connection: handshake, the client's command, our line (its write
 * time to the test; 0 when something failed), then wait for the client's
 * close. No cmocka assertion here: they must run in the test's thread. */
static void peer_serve(struct peer *p, int i)
{
	int fd = accept(p->lfd, NULL, NULL);
	SSL *ssl = NULL;
	double t = 0;
	int n = (int)strlen(LINE), ok = fd >= 0;
	char c;

	if (ok && p->sctx) {
		ssl = SSL_new(p->sctx);
		ok = ssl != NULL && SSL_set_fd(ssl, fd) == 1 && SSL_accept(ssl) == 1;
	}
	if (ok) {
		p->got_command[i] = peer_read_line(fd, ssl);
		t = now_wall();
		if ((ssl ? SSL_write(ssl, LINE, n) : (int)write(fd, LINE, (size_t)n)) != n)
			t = 0;
	}
	if (write(p->note[1], &t, sizeof t) == (ssize_t)sizeof t && t > 0) {
		/* the client's close: close_notify (SSL_read 0), then EOF */
		while (ssl ? SSL_read(ssl, &c, 1) > 0 : read(fd, &c, 1) > 0)
			;
		if (ssl)
			p->got_close_notify[i] = (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) != 0;
	}
	if (ssl)
		SSL_free(ssl);
	if (fd >= 0)
		close(fd);
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;

	for (int i = 0; i < p->conns; i++)
		peer_serve(p, i);
	return NULL;
}

static void peer_start(struct peer *p, SSL_CTX *sctx, int conns)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;

	memset(p, 0, sizeof *p);
	p->sctx = sctx;
	p->conns = conns;
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(p->lfd >= 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(p->lfd, 4), 0);
	assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&sa, &len), 0);
	p->port = ntohs(sa.sin_port);
	assert_int_equal(pipe(p->note), 0);
	assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_stop(struct peer *p)
{
	pthread_join(p->th, NULL);
	close(p->lfd);
	close(p->note[0]);
	close(p->note[1]);
}

/* One connection to the peer through the driver: connect (and TLS with
 * ca_file when tls), write a command, wait for the peer's line to be
 * written, sleep NAP, read it, and check its stamp. *resumed: whether the
 * TLS session was resumed. */
static void one_connection_at(struct peer *p, int tls, const char *ca_file, int *resumed,
                              double open_late);

static void one_connection(struct peer *p, int tls, const char *ca_file, int *resumed)
{
	one_connection_at(p, tls, ca_file, resumed, 0);
}

/* As one_connection(); open_late > 0: the connection claims to have been
 * opened open_late seconds after the peer's write (before the read), so
 * the kernel's stamp is before the open: implausible, and the wall clock
 * after the read must stand in. */
static void one_connection_at(struct peer *p, int tls, const char *ca_file, int *resumed,
                              double open_late)
{
	char *err = NULL;
	char buf[64];
	size_t got = 0;
	int fd = -1;
	SSL *ssl = NULL;
	mailstream_low *low;
	double deadline = now_mono() + 10.0, wrote, read_start, rx, opened = now_wall();

	assert_int_equal(tls_tcp_connect("127.0.0.1", p->port, 5, deadline, &fd, &err), TLS_OK);
	if (tls) {
		int rc = tls_handshake(fd, "127.0.0.1", p->port, ca_file, deadline, &ssl, &err);
		if (rc != TLS_OK)
			fail_msg("handshake: %s", err);
		*resumed = SSL_session_reused(ssl);
	}
	low = tls_low_new(fd, ssl);
	assert_non_null(low);
	tls_low_set_limit(low, deadline);
	tls_low_set_opened(low, opened);
	assert_true(tls_low_opened(low) == opened);
	assert_true(tls_low_last_rx(low) == 0);
	assert_int_equal(mailstream_low_write(low, "a1 NOOP\r\n", 9), 9);
	assert_int_equal(read(p->note[0], &wrote, sizeof wrote), (ssize_t)sizeof wrote);
	assert_true(wrote > 0);   /* the peer wrote its line */
	if (open_late > 0)
		tls_low_set_opened(low, wrote + open_late);
	sleep_seconds(NAP);
	read_start = now_wall();
	while (got < strlen(LINE)) {
		ssize_t r = mailstream_low_read(low, buf + got, sizeof buf - 1 - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
	buf[got] = '\0';
	assert_string_equal(buf, LINE);
	rx = tls_low_last_rx(low);
	print_message("%s: written %.6f, received %.6f, read from %.6f\n",
	              tls ? (*resumed ? "TLS resumed" : "TLS") : "plain", wrote, rx, read_start);
	if (open_late > 0) {
		assert_true(rx >= read_start);   /* the wall clock after the read */
	} else {
		assert_true(rx >= wrote - EPS);
		assert_true(rx < read_start);
	}
	mailstream_low_close(low);     /* TLS: close_notify through our BIO */
	mailstream_low_free(low);
}

/* The kernel stamps incoming segments only while some socket asks for
 * it, and switches that on in a work queue (net_enable_timestamp()), so
 * the first segments after the first request may come unstamped (the
 * driver then takes the wall clock after the read, as it must). Between
 * this test's connections nothing else may hold it on: hold a stamped
 * loopback connection for the whole run, and wait (up to 5 s) until its
 * segments come stamped. */
static int hold[3] = { -1, -1, -1 };   /* listener, client, server */

static int stamped_byte(void)
{
	union {
		char b[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} ctl;
	char c = 'x';
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr mh;

	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.b;
	mh.msg_controllen = sizeof ctl.b;
	if (write(hold[2], &c, 1) != 1 || recvmsg(hold[1], &mh, 0) != 1)
		return 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS)
			return 1;
	return 0;
}

static int stamps_on(void **state)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int on = 1;

	(void)state;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	hold[0] = socket(AF_INET, SOCK_STREAM, 0);
	hold[1] = socket(AF_INET, SOCK_STREAM, 0);
	if (hold[0] < 0 || hold[1] < 0 || bind(hold[0], (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    listen(hold[0], 1) != 0 || getsockname(hold[0], (struct sockaddr *)&sa, &len) != 0 ||
	    setsockopt(hold[1], SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0 ||
	    connect(hold[1], (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    (hold[2] = accept(hold[0], NULL, NULL)) < 0)
		return -1;
	for (int i = 0; i < 250; i++) {
		if (stamped_byte())
			return 0;
		sleep_seconds(0.02);
	}
	print_error("the kernel gave no SCM_TIMESTAMPNS in 5 s\n");
	return -1;
}

static int stamps_off(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++)
		if (hold[i] >= 0)
			close(hold[i]);
	return 0;
}

static void test_plain(void **state)
{
	struct peer p;

	(void)state;
	peer_start(&p, NULL, 1);
	one_connection(&p, 0, NULL, NULL);
	peer_stop(&p);
	assert_true(p.got_command[0]);
}

/* A stamp before the connection was opened is implausible (a clock
 * stepped back): the wall clock after the read stands in. Provoked by
 * recording the open time after the peer's write. */
static void test_stamp_before_open(void **state)
{
	struct peer p;

	(void)state;
	peer_start(&p, NULL, 1);
	one_connection_at(&p, 0, NULL, NULL, NAP / 3);
	peer_stop(&p);
	assert_true(p.got_command[0]);
}

/* A self-signed certificate for 127.0.0.1 (P-256), written to ca_path;
 * the server context that presents it. */
static SSL_CTX *make_server(const char *ca_path)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	X509_EXTENSION *ext;
	SSL_CTX *ctx;
	FILE *f;

	assert_non_null(key);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1",
	                           -1, -1, 0);
	X509_set_issuer_name(x, name);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "IP:127.0.0.1");
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	f = fopen(ca_path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

/* A full handshake, then a second connection that resumes its session
 * (the ticket arrived through the BIO during the first read): the stamps
 * hold on both, and close_notify reaches the peer. */
static void test_tls(void **state)
{
	char dir[] = "/tmp/test_rxstamp.XXXXXX", ca[64];
	struct peer p;
	int resumed[2] = { -1, -1 };
	SSL_CTX *sctx;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	sctx = make_server(ca);
	peer_start(&p, sctx, 2);
	one_connection(&p, 1, ca, &resumed[0]);
	one_connection(&p, 1, ca, &resumed[1]);
	peer_stop(&p);
	SSL_CTX_free(sctx);
	unlink(ca);
	rmdir(dir);
	assert_int_equal(resumed[0], 0);
	assert_int_equal(resumed[1], 1);
	for (int i = 0; i < 2; i++) {
		assert_true(p.got_command[i]);
		assert_true(p.got_close_notify[i]);
	}
}

/* common/util.h tcp_last_rx(): the receive time of a TCP connection's last
 * data segment from TCP_INFO (tcpi_last_data_recv, tcp(7)), for replies
 * libcurl reads with recv(2) (the relay's 250 to the end of DATA). A reply
 * read 300 ms after it came is dated when it came: not before the write
 * (less one kernel tick of 1-4 ms: the count is in whole milliseconds of
 * ticks), and well before the read. No socket: the fallback. */
static void test_tcp_last_rx(void **state)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int lfd = socket(AF_INET, SOCK_STREAM, 0), cfd = socket(AF_INET, SOCK_STREAM, 0), sfd;
	int pfd[2];
	char buf[64];
	double wrote, reading, t;

	(void)state;
	assert_true(lfd >= 0 && cfd >= 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof sa), 0);
	sfd = accept(lfd, NULL, NULL);
	assert_true(sfd >= 0);
	for (int i = 0; i < 2; i++) {   /* a fresh connection, then one in use */
		static const char reply[] = "250 2.0.0 Ok: queued as 4Zx1Qb2Hn3z\r\n";
		wrote = now_wall();
		assert_int_equal(write(sfd, reply, sizeof reply - 1), (ssize_t)(sizeof reply - 1));
		sleep_seconds(NAP);
		reading = now_wall();
		assert_int_equal(recv(cfd, buf, sizeof buf, 0), (ssize_t)(sizeof reply - 1));
		t = tcp_last_rx(cfd, -1.0);
		print_message("written %.6f, received %.6f, read from %.6f\n", wrote, t, reading);
		assert_true(t >= wrote - 0.010);
		assert_true(t < reading - NAP / 2);
	}
	assert_true(tcp_last_rx(-1, 7.0) == 7.0);
	assert_int_equal(pipe(pfd), 0);
	assert_true(tcp_last_rx(pfd[0], 7.0) == 7.0);   /* not a socket */
	close(pfd[0]);
	close(pfd[1]);
	close(sfd);
	close(cfd);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_stamp_before_open),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_tcp_last_rx),
	};

	return cmocka_run_group_tests(tests, stamps_on, stamps_off);
}
