/*
 * http.h - the daemon's HTTP endpoint (docs/SPEC.md "Daemon"), served by
 * libmicrohttpd from its own thread:
 *   GET /metrics     Prometheus text format 0.0.4, or OpenMetrics 1.0 when
 *                    the Accept header prefers application/openmetrics-text;
 *   GET /-/healthy   200 while the process serves;
 *   GET /-/ready     503 until the ready callback says 1, then 200;
 *   GET /            a short page linking the above.
 * Other paths are 404, other methods than GET and HEAD 405.
 * libmicrohttpd's types never leave reports/http.c.
 */
#ifndef INBOXPROBE_HTTP_H
#define INBOXPROBE_HTTP_H

/* Produce a /metrics body (heap string, the server frees it): OpenMetrics
 * when openmetrics is 1, else text 0.0.4. Called from the server's thread. */
typedef char *(*http_metrics_fn)(void *arg, int openmetrics);
/* 1 when /-/ready should answer 200. Called from the server's thread. */
typedef int (*http_ready_fn)(void *arg);

struct http_server;
struct web_config;

/* Bind host:port (host NULL: every address; a name is resolved and its
 * first address used), listen, and serve from a new thread. wc (borrowed,
 * must outlive the server; NULL: plain HTTP, no auth) adds TLS 1.2+ with
 * its certificate and key, and HTTP basic auth (RFC 7617, bcrypt hashes)
 * on every path when it has users. Returns 0 and *out, or -1 with *errstr
 * (heap) naming the address and the system's reason ("Address already in
 * use"). Stop with http_stop(). */
int http_start(const char *host, int port, const struct web_config *wc, http_metrics_fn metrics,
               http_ready_fn ready, void *arg, struct http_server **out, char **errstr);

/* Stop serving, close the listener and free. NULL is allowed. */
void http_stop(struct http_server *s);

/* 1 when an Accept header value (RFC 9110 §12.5.1: media ranges with q
 * weights) prefers application/openmetrics-text over text/plain, else 0.
 * NULL or empty: 0 (text 0.0.4). */
int http_wants_openmetrics(const char *accept);

#endif
