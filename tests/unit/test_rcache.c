/*
 * test_rcache.c - the resolution cache of prober/tls.c (each host and
 * port's addresses kept 30 s): a connection goes to the port it was asked
 * for, also once the cache is full and an entry of the same host on
 * another port is the one replaced. Real loopback sockets: one listener,
 * and ports with nothing listening (each bound once to learn a free one,
 * then closed).
 *
 * Found by the breakit session: replacing the oldest entry kept its port
 * when its host was the same, so "127.0.0.1:<old port>" then answered
 * with the new port's addresses and a connection to the old port reached
 * the new one.
 */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>
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

#include "common/util.h"
#include "prober/tls.h"

#define FILL 40   /* more host:port pairs than the cache holds (32) */

/* A loopback TCP socket bound to a free port, listening when listen_too;
 * its port in *port. */
static int bound_socket(int listen_too, int *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	if (listen_too)
		assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Connect to 127.0.0.1:port; when it succeeds, the peer must be that port. */
static int connect_checked(int port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	char *err = NULL;
	int fd = -1;
	int rc = tls_tcp_connect("127.0.0.1", port, 2, now_mono() + 5, &fd, &err);

	free(err);
	if (rc != TLS_OK)
		return 0;
	assert_int_equal(getpeername(fd, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(ntohs(sa.sin_port), port);
	close(fd);
	return 1;
}

static void test_full_cache_same_host(void **state)
{
	int closed[FILL], fds[FILL], lport, lfd;

	(void)state;
	/* fill the cache with 127.0.0.1 on FILL ports that answer once (a
	 * failed connect is not kept), then close them: nothing listens */
	for (int i = 0; i < FILL; i++) {
		fds[i] = bound_socket(1, &closed[i]);
		assert_int_equal(connect_checked(closed[i]), 1);
	}
	for (int i = 0; i < FILL; i++)
		close(fds[i]);
	lfd = bound_socket(1, &lport);
	/* the listener's entry replaces the oldest, 127.0.0.1 on another port */
	assert_int_equal(connect_checked(lport), 1);
	/* every closed port, cached or not, is still refused, never the listener */
	for (int i = 0; i < FILL; i++)
		assert_int_equal(connect_checked(closed[i]), 0);
	assert_int_equal(connect_checked(lport), 1);
	close(lfd);
}

/* A connect refused on every cached address drops the entry: the next
 * attempt resolves again. A failure is never kept. */
static void test_failed_connect_drops(void **state)
{
	int port, lfd;

	(void)state;
	lfd = bound_socket(1, &port);
	assert_int_equal(tls_resolve_cached("127.0.0.1", port), 0);
	assert_int_equal(connect_checked(port), 1);
	assert_int_equal(tls_resolve_cached("127.0.0.1", port), 1);
	assert_int_equal(connect_checked(port), 1);     /* from the cache */
	assert_int_equal(tls_resolve_cached("127.0.0.1", port), 1);
	close(lfd);                                     /* the server "moved" */
	assert_int_equal(connect_checked(port), 0);
	assert_int_equal(tls_resolve_cached("127.0.0.1", port), 0);
	assert_int_equal(connect_checked(port), 0);     /* resolved again, refused */
	assert_int_equal(tls_resolve_cached("127.0.0.1", port), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failed_connect_drops),
		cmocka_unit_test(test_full_cache_same_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
