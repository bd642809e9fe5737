/*
 * test_smtp_reply.c - smtp_parse_reply / smtp_parse_enhanced /
 * smtp_diagnostic against replies real servers send (Postfix, postgrey,
 * Gmail) and malformed input (RFC 5321 §4.2, RFC 3463).
 */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "prober/smtp.h"

static int parse(const char *s, struct smtp_reply *r)
{
	memset(r, 0x5a, sizeof(*r));   /* garbage: the parser must overwrite */
	return smtp_parse_reply(s, strlen(s), r);
}

static void test_postfix_queued(void **state)
{
	struct smtp_reply r;
	(void)state;
	assert_int_equal(parse("250 2.0.0 Ok: queued as 4XyZ1B2c3Dz\r\n", &r), 0);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.enhanced, "2.0.0");
	assert_string_equal(r.text, "Ok: queued as 4XyZ1B2c3Dz");
	assert_string_equal(r.queue_id, "4XyZ1B2c3Dz");
	/* without CRLF at the end, and with LF only */
	assert_int_equal(parse("250 2.0.0 Ok: queued as 4XyZ1B2c3Dz", &r), 0);
	assert_string_equal(r.queue_id, "4XyZ1B2c3Dz");
	assert_int_equal(parse("250 2.0.0 Ok: queued as 4XyZ1B2c3Dz\n", &r), 0);
	assert_string_equal(r.text, "Ok: queued as 4XyZ1B2c3Dz");
}

static void test_postgrey(void **state)
{
	struct smtp_reply r;
	(void)state;
	assert_int_equal(parse("450 4.2.0 <seed@example.test>: Recipient address rejected: "
	                       "Greylisted, see http://postgrey.schweikert.ch/help/example.test.html\r\n",
	                       &r), 0);
	assert_int_equal(r.code, 450);
	assert_string_equal(r.enhanced, "4.2.0");
	assert_string_equal(r.text, "<seed@example.test>: Recipient address rejected: Greylisted, "
	                    "see http://postgrey.schweikert.ch/help/example.test.html");
	assert_string_equal(r.queue_id, "");
	assert_string_equal(smtp_diagnostic(r.code, r.enhanced), "greylisted / policy deferral");
	assert_string_equal(smtp_diagnostic(451, "4.7.1"), "greylisted / policy deferral");
}

static void test_gmail_multiline(void **state)
{
	struct smtp_reply r;
	(void)state;
	assert_int_equal(parse(
		"550-5.7.26 This mail is unauthenticated, which poses a security risk to the\r\n"
		"550-5.7.26 sender and Gmail users, and has been blocked. The sender must\r\n"
		"550 5.7.26 authenticate with at least one of SPF or DKIM. a1-20020a05 - gsmtp\r\n",
		&r), 0);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.enhanced, "5.7.26");
	assert_string_equal(r.text,
		"This mail is unauthenticated, which poses a security risk to the "
		"sender and Gmail users, and has been blocked. The sender must "
		"authenticate with at least one of SPF or DKIM. a1-20020a05 - gsmtp");
	assert_string_equal(smtp_diagnostic(r.code, r.enhanced),
	                    "unauthenticated sender (SPF/DKIM/DMARC)");

	assert_int_equal(parse(
		"421-4.7.28 [192.0.2.1] Our system has detected an unusual rate of\r\n"
		"421-4.7.28 unsolicited mail originating from your IP address. To protect our\r\n"
		"421 4.7.28 users from spam, mail sent from your IP address has been temporarily rate limited. - gsmtp\r\n",
		&r), 0);
	assert_int_equal(r.code, 421);
	assert_string_equal(r.enhanced, "4.7.28");
	assert_non_null(strstr(r.text, "temporarily rate limited"));
	assert_null(strstr(r.text, "421"));
	assert_string_equal(smtp_diagnostic(r.code, r.enhanced), "rate limited");
}

static void test_auth_and_policy(void **state)
{
	struct smtp_reply r;
	(void)state;
	assert_int_equal(parse("535 5.7.8 Error: authentication failed: authentication failure\r\n", &r), 0);
	assert_int_equal(r.code, 535);
	assert_string_equal(r.enhanced, "5.7.8");
	assert_string_equal(r.text, "Error: authentication failed: authentication failure");
	assert_string_equal(smtp_diagnostic(r.code, r.enhanced), "authentication credentials invalid");

	assert_int_equal(parse("554 5.7.0 Reject, id=12345-01 - spam\r\n", &r), 0);
	assert_string_equal(r.enhanced, "5.7.0");
	assert_string_equal(smtp_diagnostic(r.code, r.enhanced), "reputation or policy block");
	assert_string_equal(smtp_diagnostic(550, "5.7.1"), "policy rejection");
	assert_string_equal(smtp_diagnostic(550, "5.7.99"), "reputation or policy block");
	assert_string_equal(smtp_diagnostic(550, "5.1.1"), "unknown mailbox");
	assert_string_equal(smtp_diagnostic(452, "4.2.2"), "mailbox full");
	assert_string_equal(smtp_diagnostic(421, "4.4.2"), "connection dropped");
}

static void test_no_enhanced(void **state)
{
	struct smtp_reply r;
	(void)state;
	assert_int_equal(parse("550 Requested action not taken\r\n", &r), 0);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "Requested action not taken");
	assert_string_equal(smtp_diagnostic(r.code, r.enhanced), "mailbox unavailable or rejected");
	/* code only */
	assert_int_equal(parse("250\r\n", &r), 0);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.text, "");
	/* class mismatch: "5.1.1" after 450 is text, not an enhanced code */
	assert_int_equal(parse("450 5.1.1 <x@example.test>: try later\r\n", &r), 0);
	assert_int_equal(r.code, 450);
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "5.1.1 <x@example.test>: try later");
	/* 354 has no enhanced code class */
	assert_int_equal(parse("354 End data with <CR><LF>.<CR><LF>\r\n", &r), 0);
	assert_string_equal(r.enhanced, "");
}

static void test_enhanced(void **state)
{
	char e[ENHANCED_MAX];
	(void)state;
	assert_int_equal(smtp_parse_enhanced("5.7.26 x", e), 6);
	assert_string_equal(e, "5.7.26");
	assert_int_equal(smtp_parse_enhanced("2.0.0", e), 5);
	assert_int_equal(smtp_parse_enhanced("4.999.999 x", e), 9);
	assert_string_equal(e, "4.999.999");
	assert_int_equal(smtp_parse_enhanced("4.1000.1 x", e), 0);
	assert_string_equal(e, "");
	assert_int_equal(smtp_parse_enhanced("5.7.1234", e), 0);
	assert_int_equal(smtp_parse_enhanced("3.0.0 x", e), 0);   /* class 3 does not exist */
	assert_int_equal(smtp_parse_enhanced("5.7.", e), 0);
	assert_int_equal(smtp_parse_enhanced("5..1", e), 0);
	assert_int_equal(smtp_parse_enhanced("5.7.1x", e), 0);
	assert_int_equal(smtp_parse_enhanced("", e), 0);
	assert_int_equal(smtp_parse_enhanced("Ok", e), 0);
}

static void test_malformed(void **state)
{
	struct smtp_reply r;
	char *big;
	(void)state;
	assert_int_equal(parse("25", &r), -1);
	assert_int_equal(r.code, 0);
	assert_int_equal(parse("abc", &r), -1);
	assert_int_equal(parse("", &r), -1);
	assert_int_equal(parse("abc def\r\n", &r), -1);
	assert_int_equal(parse("250x Ok\r\n", &r), -1);       /* bad separator */
	assert_int_equal(parse("650 nope\r\n", &r), -1);      /* no such class */
	assert_int_equal(parse("250-only continuation\r\n", &r), -1);
	assert_int_equal(parse("250 Ok\r\n250 again\r\n", &r), -1);   /* data after the last line */
	/* mixed codes in one multi-line reply (RFC 5321 §4.2.1) */
	assert_int_equal(parse("250-2.0.0 Ok\r\n251 2.0.0 odd\r\n", &r), -1);
	assert_int_equal(r.code, 0);
	/* embedded NUL, given by length */
	assert_int_equal(smtp_parse_reply("250 Ok\0queued as X\r\n", 20, &r), -1);
	/* NULL */
	assert_int_equal(smtp_parse_reply(NULL, 0, &r), -1);

	/* a line far over any sane length is refused */
	big = malloc(10010);
	assert_non_null(big);
	memcpy(big, "250 ", 4);
	memset(big + 4, 'a', 10000);
	memcpy(big + 10004, "\r\n", 3);
	assert_int_equal(parse(big, &r), -1);
	/* a long but tolerable one (over RFC 5321's 512) is truncated, NUL-terminated */
	memset(big + 4, 'b', 1000);
	memcpy(big + 1004, "\r\n", 3);
	assert_int_equal(parse(big, &r), 0);
	assert_int_equal(strlen(r.text), REPLY_TEXT_MAX - 1);
	free(big);
}

static void test_control_chars_and_queue_id(void **state)
{
	struct smtp_reply r;
	(void)state;
	/* a bare CR or a TAB inside the text does not reach reports raw */
	assert_int_equal(parse("250 2.0.0 Ok\tqueued as ABC123;\r\n", &r), 0);
	assert_string_equal(r.queue_id, "ABC123");
	assert_null(strchr(r.text, '\t'));
	/* multi-line 250 with queued-as on the last line */
	assert_int_equal(parse("250-2.0.0 Ok\r\n250 2.0.0 queued as 1Ab2\r\n", &r), 0);
	assert_string_equal(r.text, "Ok queued as 1Ab2");
	assert_string_equal(r.queue_id, "1Ab2");
}

static void test_err_names(void **state)
{
	(void)state;
	assert_string_equal(smtp_err_name(SMTP_OK), "ok");
	assert_string_equal(smtp_err_name(SMTP_ETEMP), "temp");
	assert_string_equal(smtp_err_name(SMTP_EDROP), "drop");
	assert_string_equal(smtp_err_name(99), "unknown");
	assert_string_equal(smtp_diagnostic(0, ""), "no reply");
	assert_string_equal(smtp_diagnostic(599, NULL), "permanent failure");
	assert_string_equal(smtp_diagnostic(550, "garbage"), "mailbox unavailable or rejected");
	assert_string_equal(smtp_diagnostic(550, "5.6.9"), "content or media rejected");
	assert_string_equal(smtp_diagnostic(451, "4.4.9"), "network or routing problem");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_postfix_queued),
		cmocka_unit_test(test_postgrey),
		cmocka_unit_test(test_gmail_multiline),
		cmocka_unit_test(test_auth_and_policy),
		cmocka_unit_test(test_no_enhanced),
		cmocka_unit_test(test_enhanced),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_control_chars_and_queue_id),
		cmocka_unit_test(test_err_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
