/* http.c - the daemon's HTTP endpoint over libmicrohttpd (http.h). */
#include <config.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/util.h"
#include "reports/http.h"
#include "reports/webconfig.h"

/* bcrypt of a random password: checked against for unknown users, so that
 * a wrong user name costs as much time as a wrong password. */
#define DUMMY_HASH "$2b$10$2i3xwC2VwJyQ4ZbGMmHkf.7CCkqQs/Bx1Kbd3wEwgX0p1y8Nl4mGu"

#define CT_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define CT_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"
#define ACCEPT_MAX 4096   /* longer Accept values are treated as absent */

struct http_server {
	struct MHD_Daemon *mhd;
	int fd;
	http_metrics_fn metrics;
	http_ready_fn ready;
	void *arg;
	const struct web_config *wc;   /* borrowed; NULL: plain HTTP, no auth */
};

/* The q weight of one media range "type/sub;p=v;q=0.5" (RFC 9110 §12.4.2);
 * 1 when absent, 0 when malformed. */
static double range_q(const char *params)
{
	const char *q = params;

	while ((q = strchr(q, ';')) != NULL) {
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		if ((q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
			char *end;
			double v = strtod(q + 2, &end);
			if (end == q + 2 || v < 0 || v > 1)
				return 0;
			return v;
		}
	}
	return 1;
}

int http_wants_openmetrics(const char *accept)
{
	double q_om = 0, q_text = 0;
	char *copy, *save = NULL, *tok;

	if (accept == NULL || *accept == '\0' || strlen(accept) > ACCEPT_MAX)
		return 0;
	copy = xstrdup(accept);
	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		size_t tl;
		double q;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		tl = strcspn(tok, "; \t");
		q = range_q(tok + tl);
		if (tl == 28 && strncasecmp(tok, "application/openmetrics-text", tl) == 0) {
			if (q > q_om)
				q_om = q;
		} else if ((tl == 10 && strncasecmp(tok, "text/plain", tl) == 0) ||
		           (tl == 6 && strncasecmp(tok, "text/*", tl) == 0) ||
		           (tl == 3 && strncmp(tok, "*/*", tl) == 0)) {
			if (q > q_text)
				q_text = q;
		}
	}
	free(copy);
	return q_om > 0 && q_om >= q_text;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
                             char *body)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* 1 when the request carries a configured user and its password (RFC 7617). */
static int authorized(const struct http_server *s, struct MHD_Connection *conn)
{
	char *pass = NULL;
	char *user = MHD_basic_auth_get_username_password(conn, &pass);
	const char *hash = DUMMY_HASH;
	int known = 0, ok;

	for (size_t i = 0; user != NULL && i < s->wc->nusers; i++)
		if (strcmp(s->wc->users[i].name, user) == 0) {
			hash = s->wc->users[i].hash;
			known = 1;
		}
	ok = web_password_ok(hash, pass ? pass : "") && known;
	if (pass != NULL) {
		explicit_bzero(pass, strlen(pass));
		MHD_free(pass);
	}
	if (user != NULL)
		MHD_free(user);
	return ok;
}

static enum MHD_Result deny(struct MHD_Connection *conn)
{
	const char *body = "Unauthorized\n";
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	ret = MHD_queue_basic_auth_fail_response(conn, "inboxprobe", resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
	struct http_server *s = cls;
	const char *plain = "text/plain; charset=utf-8";

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (*upload_data_size != 0) {
		*upload_data_size = 0;   /* a body is ignored */
		return MHD_YES;
	}
	if (s->wc != NULL && s->wc->nusers > 0 && !authorized(s, conn))
		return deny(conn);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, plain,
		             xstrdup("Method not allowed: use GET.\n"));
	if (strcmp(url, "/metrics") == 0) {
		const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                                 MHD_HTTP_HEADER_ACCEPT);
		int om = http_wants_openmetrics(accept);
		return reply(conn, MHD_HTTP_OK, om ? CT_OPENMETRICS : CT_TEXT, s->metrics(s->arg, om));
	}
	if (strcmp(url, "/-/healthy") == 0)
		return reply(conn, MHD_HTTP_OK, plain, xstrdup("inboxprobe is Healthy.\n"));
	if (strcmp(url, "/-/ready") == 0) {
		if (s->ready(s->arg))
			return reply(conn, MHD_HTTP_OK, plain, xstrdup("inboxprobe is Ready.\n"));
		return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, plain,
		             xstrdup("inboxprobe is not ready: no round reported yet.\n"));
	}
	if (strcmp(url, "/") == 0)
		return reply(conn, MHD_HTTP_OK, "text/html; charset=utf-8",
		             xstrdup("<html><head><title>inboxprobe</title></head><body>\n"
		                     "<h1>inboxprobe</h1>\n<p><a href=\"/metrics\">Metrics</a></p>\n"
		                     "<p><a href=\"/-/healthy\">Health</a> "
		                     "<a href=\"/-/ready\">Readiness</a></p>\n</body></html>\n"));
	return reply(conn, MHD_HTTP_NOT_FOUND, plain, xstrdup("Not found.\n"));
}

/* A bound, listening socket for host:port (close-on-exec). */
static int listen_on(const char *host, int port, int *family, char **errstr)
{
	struct addrinfo hints, *ai = NULL;
	char portstr[16];
	int fd = -1, one = 1, rc;
	const char *shown = host ? host : "*";

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof portstr, "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &ai);
	if (rc != 0) {
		*errstr = xasprintf("web.listen_address %s:%d: cannot resolve: %s", shown, port,
		                    gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
		*errstr = xasprintf("web.listen_address %s:%d: cannot listen: %s", shown, port,
		                    strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	} else {
		*family = ai->ai_family;
	}
	freeaddrinfo(ai);
	return fd;
}

int http_start(const char *host, int port, const struct web_config *wc, http_metrics_fn metrics,
               http_ready_fn ready, void *arg, struct http_server **out, char **errstr)
{
	struct http_server *s;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
	int family = AF_INET;
	struct MHD_OptionItem opts[8];
	size_t n = 0;

	*out = NULL;
	if (wc != NULL && wc->cert_pem != NULL && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		*errstr = xasprintf("web.config_file asks for TLS but this libmicrohttpd has no TLS support");
		return -1;
	}
	s = xcalloc(1, sizeof *s);
	s->metrics = metrics;
	s->ready = ready;
	s->arg = arg;
	s->wc = wc;
	s->fd = listen_on(host, port, &family, errstr);
	if (s->fd < 0) {
		free(s);
		return -1;
	}
	if (family == AF_INET6)
		flags |= MHD_USE_IPv6;
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_LISTEN_SOCKET, s->fd, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, 64, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL };
	if (wc != NULL && wc->cert_pem != NULL) {
		flags |= MHD_USE_TLS;
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, wc->cert_pem };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, wc->key_pem };
		/* TLS 1.2 or newer, as exporter-toolkit's default min_version */
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0,
		                                     (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2" };
	}
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
	                          MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (s->mhd == NULL) {
		*errstr = xasprintf("web.listen_address %s:%d: libmicrohttpd could not start%s",
		                    host ? host : "*", port,
		                    wc && wc->cert_pem ? " (is the key the certificate's?)" : "");
		close(s->fd);
		free(s);
		return -1;
	}
	*out = s;
	return 0;
}

void http_stop(struct http_server *s)
{
	if (s == NULL)
		return;
	MHD_stop_daemon(s->mhd);   /* closes the listening socket too */
	free(s);
}
