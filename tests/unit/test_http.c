/*
 * test_http.c - the daemon's /metrics content negotiation and its series
 * before the first round (reports/http.c, reports/metrics.c).
 * Accept values are the ones real scrapers send:
 *   Prometheus 2.42 (scrape/scrape.go, scrapeAcceptHeader);
 *   Prometheus with OpenMetrics off: "text/plain;version=0.0.4;q=1,*" "/" "*;q=0.1";
 *   curl's default "*" "/" "*"; Firefox's navigation Accept.
 */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include <unistd.h>

#include "common/util.h"
#include "reports/http.h"
#include "reports/report.h"
#include "reports/webconfig.h"

static char *put(const char *dir, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

/* Test vectors of Openwall's crypt_blowfish 1.3 (wrapper.c, tests[]). */
static void test_bcrypt(void **state)
{
	(void)state;
#ifdef HAVE_WEBCONFIG
	assert_int_equal(web_password_ok("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"), 1);
	assert_int_equal(web_password_ok("$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK", "U*U*"), 1);
	assert_int_equal(web_password_ok("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U*"), 0);
	assert_int_equal(web_password_ok("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", ""), 0);
	assert_int_equal(web_password_ok("not a hash", "U*U"), 0);
#else
	skip();
#endif
}

/* The exporter-toolkit shape: a good file, and every error at its line. */
static void test_web_config(void **state)
{
	(void)state;
#ifdef HAVE_WEBCONFIG
	char dir[] = "/tmp/inboxprobe-webcfg-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *cert = put(dir, "c.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
	char *key = put(dir, "k.pem", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
	char *text = xasprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n"
	                       "basic_auth_users:\n"
	                       "  prometheus: $2y$10$X0d2dWN5l6lVEz6Amgt3sOTj7vCVeVvmTNzbjnWRDr0WFKGXjyB9S\n"
	                       "  grafana: $2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW\n", cert, key);
	char *y = put(dir, "web.yml", text);
	struct web_config *wc = NULL;
	char *e = NULL;
	if (web_config_load(y, &wc, &e) != 0)
		fail_msg("%s", e);
	assert_non_null(strstr(wc->cert_pem, "BEGIN CERTIFICATE"));
	assert_non_null(strstr(wc->key_pem, "BEGIN PRIVATE KEY"));
	assert_int_equal(wc->nusers, 2);
	assert_string_equal(wc->users[0].name, "prometheus");
	assert_string_equal(wc->users[1].hash, "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW");
	web_config_free(wc);
	free(text);
	free(y);

	/* users only (no TLS), and an empty file */
	y = put(dir, "auth.yml", "basic_auth_users:\n  u: $2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW\n");
	assert_int_equal(web_config_load(y, &wc, &e), 0);
	assert_null(wc->cert_pem);
	assert_int_equal(wc->nusers, 1);
	web_config_free(wc);
	free(y);
	y = put(dir, "empty.yml", "");
	assert_int_equal(web_config_load(y, &wc, &e), 0);
	assert_null(wc->cert_pem);
	assert_int_equal(wc->nusers, 0);
	web_config_free(wc);
	free(y);

	/* every problem, each at its line */
	y = put(dir, "bad.yml", "tls_server_config:\n  cert_file: /x\n  client_auth_type: RequireAnyClientCert\n"
	                        "http_server_config:\n  http2: false\n"
	                        "basic_auth_users:\n  alice: secret\n");
	assert_int_equal(web_config_load(y, &wc, &e), -1);
	assert_null(wc);
	char *want[] = {
		xasprintf("%s:3: tls_server_config.client_auth_type is not supported", y),
		xasprintf("%s:1: tls_server_config needs both cert_file and key_file", y),
		xasprintf("%s:4: http_server_config is not supported", y),
		xasprintf("%s:7: basic_auth_users.alice: not a bcrypt hash", y),
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		if (strstr(e, want[i]) == NULL)
			fail_msg("no \"%s\" in:\n%s", want[i], e);
		free(want[i]);
	}
	free(e);
	free(y);
	/* YAML syntax error; a key file that is no PEM key */
	y = put(dir, "syntax.yml", "basic_auth_users:\n  a: [\n");
	assert_int_equal(web_config_load(y, &wc, &e), -1);
	assert_non_null(strstr(e, "syntax.yml:"));
	free(e);
	free(y);
	text = xasprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", cert, cert);
	y = put(dir, "nokey.yml", text);
	assert_int_equal(web_config_load(y, &wc, &e), -1);
	assert_non_null(strstr(e, "tls_server_config.key_file: "));
	assert_non_null(strstr(e, "holds no PEM private key"));
	free(e);
	free(y);
	free(text);
	y = xasprintf("%s/missing.yml", dir);
	assert_int_equal(web_config_load(y, &wc, &e), -1);
	assert_non_null(strstr(e, "missing.yml"));
	free(e);
	free(y);
	char *cmd = xasprintf("rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(cert);
	free(key);
#else
	skip();
#endif
}

static void test_accept(void **state)
{
	(void)state;
	assert_int_equal(http_wants_openmetrics(
		"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
		"q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), 1);
	assert_int_equal(http_wants_openmetrics("text/plain;version=0.0.4;q=1,*/*;q=0.1"), 0);
	assert_int_equal(http_wants_openmetrics("*/*"), 0);
	assert_int_equal(http_wants_openmetrics(
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"), 0);
	assert_int_equal(http_wants_openmetrics("application/openmetrics-text"), 1);
	assert_int_equal(http_wants_openmetrics("Application/OpenMetrics-Text; version=1.0.0"), 1);
	/* weights decide, whatever the order */
	assert_int_equal(http_wants_openmetrics("text/plain;q=0.9, application/openmetrics-text;q=0.5"), 0);
	assert_int_equal(http_wants_openmetrics("text/plain;q=0.4, application/openmetrics-text;q=0.5"), 1);
	/* q=0 means "not acceptable" (RFC 9110 §12.4.2) */
	assert_int_equal(http_wants_openmetrics("application/openmetrics-text;q=0, text/plain"), 0);
	assert_int_equal(http_wants_openmetrics("application/openmetrics-text;q=x"), 0);
	assert_int_equal(http_wants_openmetrics(NULL), 0);
	assert_int_equal(http_wants_openmetrics(""), 0);
}

/* Before the first round /metrics carries the daemon's series only. */
static void test_daemon_series_only(void **state)
{
	(void)state;
	struct report_daemon d = { .rounds = 3, .rounds_skipped = 1, .imap_logins = 12,
	                           .sessions_connecting = 1, .sessions_up = 4 };
	char *t = report_metrics(NULL, &d, "otp \"x\"", 0);
	assert_non_null(strstr(t, "# TYPE inboxprobe_rounds_total counter\n"
	                          "inboxprobe_rounds_total{config=\"otp \\\"x\\\"\"} 3\n"));
	assert_non_null(strstr(t, "inboxprobe_rounds_skipped_total{config=\"otp \\\"x\\\"\"} 1\n"));
	assert_non_null(strstr(t, "inboxprobe_imap_sessions{config=\"otp \\\"x\\\"\",state=\"up\"} 4\n"));
	assert_non_null(strstr(t, "inboxprobe_imap_sessions{config=\"otp \\\"x\\\"\",state=\"connecting\"} 1\n"));
	assert_non_null(strstr(t, "inboxprobe_imap_logins_total{config=\"otp \\\"x\\\"\"} 12\n"));
	assert_null(strstr(t, "probe_outcome"));
	assert_null(strstr(t, "# EOF"));
	free(t);
	t = report_metrics(NULL, &d, "otp", 1);
	assert_non_null(strstr(t, "# TYPE inboxprobe_rounds counter\ninboxprobe_rounds_total{config=\"otp\"} 3\n"));
	assert_non_null(strstr(t, "# TYPE inboxprobe_imap_logins counter\n"));
	assert_int_equal(strcmp(t + strlen(t) - 6, "# EOF\n"), 0);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept),
		cmocka_unit_test(test_daemon_series_only),
		cmocka_unit_test(test_bcrypt),
		cmocka_unit_test(test_web_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
