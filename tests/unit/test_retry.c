/*
 * test_retry.c - the retry class table (scheduler/retry.h): which IMAP
 * errors reconnect, which are retried after a backoff, which end the
 * seed's watch, the words each starts a diagnostic with, and the BYE texts
 * that ask for a new login (Exchange Online's "* BYE Session invalidated -
 * AccessTokenExpired", as issue 9 "Disconnects and refusals" quotes it);
 * and which SMTP submission failures are tried again.
 */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "common/model.h"
#include "prober/imap.h"
#include "prober/smtp.h"
#include "scheduler/retry.h"

/* Every code of enum imap_err, with what the engine must do about it. */
static const struct {
	int rc;
	enum fail_class cls;
	int open_again;      /* opening a session: retried after a backoff */
	int reconnect;       /* a session lost: its one reconnect */
	const char *text;
} want[] = {
	{ IMAP_OK,           FAIL_NONE,  0, 0, "IMAP OK" },
	{ IMAP_ECONNECT,     FAIL_WAIT,  1, 0, "IMAP connection failed" },
	{ IMAP_ETLS,         FAIL_FINAL, 0, 0, "IMAP TLS refused" },
	{ IMAP_ENOSTARTTLS,  FAIL_FINAL, 0, 0, "IMAP server does not offer STARTTLS" },
	{ IMAP_EAUTH,        FAIL_FINAL, 0, 0, "IMAP authentication failed" },
	{ IMAP_EAUTHAPP,     FAIL_FINAL, 0, 0, "IMAP login needs an app password or OAuth" },
	{ IMAP_EUNAVAILABLE, FAIL_WAIT,  1, 0, "IMAP server unavailable (too many connections)" },
	{ IMAP_EBYE,         FAIL_TEMP,  1, 1, "IMAP connection lost" },
	{ IMAP_ETIMEOUT,     FAIL_FINAL, 0, 0, "IMAP timeout" },
	{ IMAP_EPROTO,       FAIL_FINAL, 0, 0, "IMAP protocol error" },
	{ IMAP_ENOFOLDER,    FAIL_FINAL, 0, 0, "IMAP folder cannot be selected" },
	{ IMAP_EUIDVALIDITY, FAIL_FINAL, 0, 0, "IMAP UIDVALIDITY changed" },
};

static void test_every_code(void **state)
{
	(void)state;
	/* the table above covers the enum, in order, without a gap */
	assert_int_equal(sizeof want / sizeof want[0], IMAP_EUIDVALIDITY + 1);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		int rc = want[i].rc;

		assert_int_equal(rc, (int)i);
		assert_int_equal(retry_class(rc), want[i].cls);
		assert_int_equal(retry_open_again(rc), want[i].open_again);
		assert_int_equal(retry_reconnect(rc), want[i].reconnect);
		assert_string_equal(retry_text(rc), want[i].text);
		assert_int_equal(retry_outcome(rc), rc == IMAP_OK ? OUTCOME_MISSING : OUTCOME_ERROR);
	}
}

/* A code outside the enum is final, reads as a protocol error. */
static void test_unknown_code(void **state)
{
	(void)state;
	assert_int_equal(retry_class(99), FAIL_FINAL);
	assert_int_equal(retry_class(-1), FAIL_FINAL);
	assert_int_equal(retry_open_again(99), 0);
	assert_int_equal(retry_reconnect(-1), 0);
	assert_string_equal(retry_text(99), "IMAP protocol error");
	assert_int_equal(retry_outcome(99), OUTCOME_ERROR);
}

/* Only a BYE asking for a new login counts; the seed's diagnostic carries
 * it after our own prefix. */
static void test_wants_relogin(void **state)
{
	(void)state;
	assert_true(retry_wants_relogin("IMAP connection lost: server said BYE: "
	                                "Session invalidated - AccessTokenExpired"));
	assert_true(retry_wants_relogin("server said BYE: AccessTokenExpired"));
	assert_true(retry_wants_relogin("server said BYE: Session invalidated"));
	assert_false(retry_wants_relogin("server said BYE: Logging out"));
	assert_false(retry_wants_relogin("server said BYE: Disconnected for inactivity."));
	assert_false(retry_wants_relogin("closed without BYE"));
	assert_false(retry_wants_relogin(""));
	assert_false(retry_wants_relogin(NULL));
}

/* Every code of enum smtp_err: its class, and whether a submission that
 * failed with it is tried again before (data_sent 0) and after (1) the
 * message went out (DATA answered 354). Only a 4xx is retried after: a
 * cut or a garbled reply there may have delivered the message, and a
 * second attempt would deliver it twice. */
static const struct {
	int rc;
	enum fail_class cls;
	int before, after;
} smtp_want[] = {
	{ SMTP_OK,       FAIL_NONE,  0, 0 },
	{ SMTP_ETEMP,    FAIL_WAIT,  1, 1 },
	{ SMTP_EPERM,    FAIL_FINAL, 0, 0 },
	{ SMTP_ECONNECT, FAIL_WAIT,  1, 0 },
	{ SMTP_ETLS,     FAIL_FINAL, 0, 0 },
	{ SMTP_EAUTH,    FAIL_FINAL, 0, 0 },
	{ SMTP_ETIMEOUT, FAIL_WAIT,  1, 0 },
	{ SMTP_EDROP,    FAIL_WAIT,  1, 0 },
	{ SMTP_EPROTO,   FAIL_FINAL, 0, 0 },
	{ SMTP_ENOFILES, FAIL_FINAL, 0, 0 },
};

static void test_smtp_every_code(void **state)
{
	(void)state;
	assert_int_equal(sizeof smtp_want / sizeof smtp_want[0], SMTP_ENOFILES + 1);
	for (size_t i = 0; i < sizeof smtp_want / sizeof smtp_want[0]; i++) {
		int rc = smtp_want[i].rc;

		assert_int_equal(rc, (int)i);
		assert_int_equal(retry_smtp_class(rc), smtp_want[i].cls);
		assert_int_equal(retry_smtp_again(rc, 0), smtp_want[i].before);
		assert_int_equal(retry_smtp_again(rc, 1), smtp_want[i].after);
	}
	assert_int_equal(retry_smtp_class(99), FAIL_FINAL);
	assert_int_equal(retry_smtp_again(-1, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_code),
		cmocka_unit_test(test_unknown_code),
		cmocka_unit_test(test_wants_relogin),
		cmocka_unit_test(test_smtp_every_code),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
