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

#include "reports/http.h"
#include "reports/report.h"

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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
