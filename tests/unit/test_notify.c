/*
 * test_notify.c - the untagged STATUS parser of IMAP NOTIFY (RFC 5465 5.2:
 * "If the new/appended message is in another mailbox, the server sends an
 * unsolicited STATUS (UIDNEXT MESSAGES) response for the relevant
 * mailbox"; syntax RFC 3501 7.2.4 and 9).
 *
 * The Dovecot cases are the bytes Dovecot 2.3.19 (Debian 12) sent on the
 * loopback world (tests/world/world.sh) after
 *   NOTIFY SET (selected (MessageNew MessageExpunge))
 *              (mailboxes "NAME" (MessageNew MessageExpunge))
 * and IDLE, while `doveadm save -m NAME` delivered a message; captured on
 * the wire with a Python socket client on 2026-12-02.
 */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "prober/imap_notify.h"

static int parse(const char *line, struct imap_status_resp *st, size_t *lit)
{
	return imap_status_parse(line, strlen(line), st, lit);
}

/* Dovecot, an atom name; the first STATUS of a session carries UIDVALIDITY. */
static void test_dovecot_atom(void **state)
{
	struct imap_status_resp st;
	size_t lit = 0;

	(void)state;
	assert_int_equal(parse("* STATUS Junk (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1796177059 UNSEEN 1)\r\n",
	                       &st, &lit), IMAP_STATUS_PARSED);
	assert_string_equal(st.mailbox, "Junk");
	assert_int_equal(st.have, IMAP_ST_MESSAGES | IMAP_ST_UIDNEXT | IMAP_ST_UIDVALIDITY | IMAP_ST_UNSEEN);
	assert_int_equal(st.messages, 1);
	assert_int_equal(st.uidnext, 2);
	assert_int_equal(st.uidvalidity, 1796177059UL);
	assert_int_equal(st.unseen, 1);
	/* later ones in the same session: no UIDVALIDITY */
	assert_int_equal(parse("* STATUS Junk (MESSAGES 3 UIDNEXT 4 UNSEEN 3)\r\n", &st, &lit),
	                 IMAP_STATUS_PARSED);
	assert_int_equal(st.have, IMAP_ST_MESSAGES | IMAP_ST_UIDNEXT | IMAP_ST_UNSEEN);
	assert_int_equal(st.uidnext, 4);
	assert_int_equal(st.messages, 3);
}

/* Dovecot sends "[Gmail]/Spam" as an atom ("[" and "]" are ASTRING-CHARs)
 * and "Deleted Items" quoted. */
static void test_dovecot_gmail_and_quoted(void **state)
{
	struct imap_status_resp st;

	(void)state;
	assert_int_equal(parse("* STATUS [Gmail]/Spam (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n", &st, NULL),
	                 IMAP_STATUS_PARSED);
	assert_string_equal(st.mailbox, "[Gmail]/Spam");
	assert_int_equal(st.uidnext, 3);
	assert_int_equal(parse("* STATUS \"Deleted Items\" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1796177060 UNSEEN 1)\r\n",
	                       &st, NULL), IMAP_STATUS_PARSED);
	assert_string_equal(st.mailbox, "Deleted Items");
	assert_int_equal(st.uidvalidity, 1796177060UL);
	/* modified UTF-7 names stay as on the wire (Dovecot's LIST of intl.test) */
	assert_int_equal(parse("* STATUS \"Courrier ind&AOk-sirable\" (MESSAGES 7 UIDNEXT 12)\r\n", &st, NULL),
	                 IMAP_STATUS_PARSED);
	assert_string_equal(st.mailbox, "Courrier ind&AOk-sirable");
	assert_int_equal(st.uidnext, 12);
}

/* RFC 3501 6.3.10's example response; RFC 5465 5.2 with CONDSTORE adds
 * HIGHESTMODSEQ (skipped, RFC 7162 mod-sequence); STATUS=SIZE (RFC 8438). */
static void test_rfc_examples(void **state)
{
	struct imap_status_resp st;

	(void)state;
	assert_int_equal(parse("* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n", &st, NULL),
	                 IMAP_STATUS_PARSED);
	assert_string_equal(st.mailbox, "blurdybloop");
	assert_int_equal(st.messages, 231);
	assert_int_equal(st.uidnext, 44292);
	assert_int_equal(parse("* STATUS Spam (UIDNEXT 10002 MESSAGES 503 HIGHESTMODSEQ 90060115205545359 SIZE 12345)",
	                       &st, NULL), IMAP_STATUS_PARSED);
	assert_int_equal(st.have, IMAP_ST_MESSAGES | IMAP_ST_UIDNEXT);
	assert_int_equal(st.uidnext, 10002);
	assert_int_equal(st.messages, 503);
	/* lower case, bare LF, an empty list (RFC 4466 allows it) */
	assert_int_equal(parse("* status INBOX (messages 2 uidnext 9 recent 1)\n", &st, NULL),
	                 IMAP_STATUS_PARSED);
	assert_int_equal(st.recent, 1);
	assert_int_equal(st.uidnext, 9);
	assert_int_equal(parse("* STATUS INBOX ()", &st, NULL), IMAP_STATUS_PARSED);
	assert_int_equal(st.have, 0);
	/* quoted specials */
	assert_int_equal(parse("* STATUS \"a \\\"b\\\" \\\\c\" (MESSAGES 1)", &st, NULL), IMAP_STATUS_PARSED);
	assert_string_equal(st.mailbox, "a \"b\" \\c");
}

/* A literal name: the line ends at {n}; the rest comes next. */
static void test_literal(void **state)
{
	struct imap_status_resp st;
	size_t lit = 0;

	(void)state;
	assert_int_equal(parse("* STATUS {12}\r\n", &st, &lit), IMAP_STATUS_LITERAL);
	assert_int_equal(lit, 12);
	assert_int_equal(imap_status_parse_rest("[Gmail]/Spam (MESSAGES 5 UIDNEXT 6)\r\n", 37, 12, &st),
	                 IMAP_STATUS_PARSED);
	assert_string_equal(st.mailbox, "[Gmail]/Spam");
	assert_int_equal(st.uidnext, 6);
	/* Dovecot 2.3.19 under NOTIFY SET (selected ...) (personal (MessageNew
	 * MessageExpunge)): the folder "Courrier ind&AOk-sirable" announced as a
	 * literal holding its UTF-8 name */
	assert_int_equal(parse("* STATUS {21}\r\n", &st, &lit), IMAP_STATUS_LITERAL);
	assert_int_equal(lit, 21);
	assert_int_equal(imap_status_parse_rest("Courrier ind\xc3\xa9sirable (MESSAGES 6 UIDNEXT 7 UNSEEN 6)\r\n",
	                                        55, 21, &st), IMAP_STATUS_PARSED);
	assert_string_equal(st.mailbox, "Courrier ind\xc3\xa9sirable");
	assert_int_equal(st.messages, 6);
	assert_int_equal(st.uidnext, 7);
	assert_int_equal(st.unseen, 6);
	assert_int_equal(parse("* STATUS {3+}", &st, &lit), IMAP_STATUS_LITERAL);
	assert_int_equal(lit, 3);
	/* no way to read the continuation: malformed */
	assert_int_equal(parse("* STATUS {3}", &st, NULL), IMAP_STATUS_MALFORMED);
	/* the literal longer than what follows, or than the cap */
	assert_int_equal(imap_status_parse_rest("ab (MESSAGES 1)", 15, 40, &st), IMAP_STATUS_MALFORMED);
	assert_int_equal(imap_status_parse_rest("x", 1, IMAP_STATUS_NAME_MAX, &st), IMAP_STATUS_MALFORMED);
	/* a name with CR LF inside the literal (found by fuzz_notify) */
	assert_int_equal(imap_status_parse_rest("ind\xc3\r\nCourle (MESSAGES 6)\r\n", 27, 10, &st),
	                 IMAP_STATUS_MALFORMED);
}

/* NOTIFY SET STATUS (RFC 5465 3: with the STATUS indicator the server
 * sends an untagged STATUS for each mailbox of the event specification but
 * the selected one, before its tagged OK): the replies Dovecot 2.3.19
 * sent on the loopback world, INBOX selected, on 2026-12-02 (Python
 * imaplib client), to
 *   NOTIFY SET STATUS (selected (MessageNew MessageExpunge))
 *                     (mailboxes "NAME" (MessageNew MessageExpunge))
 * Their UIDNEXT is the armed UIDNEXT of the spam folder. */
static void test_notify_set_status_reply(void **state)
{
	struct imap_status_resp st;
	unsigned long u = 0;
	size_t lit = 0;

	(void)state;
	assert_int_equal(parse("* STATUS Junk (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1796189712 UNSEEN 0)\r\n",
	                       &st, &lit), IMAP_STATUS_PARSED);
	assert_int_equal(imap_notify_status_uidnext(&st, "Junk", &u), 1);
	assert_int_equal(u, 1);
	assert_int_equal(parse("* STATUS [Gmail]/Spam (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1796189712 UNSEEN 0)\r\n",
	                       &st, &lit), IMAP_STATUS_PARSED);
	assert_int_equal(imap_notify_status_uidnext(&st, "[Gmail]/Spam", &u), 1);
	assert_int_equal(parse("* STATUS \"Bulk Mail\" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 1796189712 UNSEEN 2)\r\n",
	                       &st, &lit), IMAP_STATUS_PARSED);
	assert_int_equal(imap_notify_status_uidnext(&st, "Bulk Mail", &u), 1);
	assert_int_equal(u, 3);
	/* another mailbox's STATUS is not the spam folder's UIDNEXT */
	u = 7;
	assert_int_equal(imap_notify_status_uidnext(&st, "Bulk", &u), 0);
	assert_int_equal(imap_notify_status_uidnext(&st, "bulk mail", &u), 0);
	assert_int_equal(u, 7);
	/* INBOX in any case (RFC 3501 5.1) */
	assert_int_equal(parse("* STATUS inbox (UIDNEXT 9)", &st, &lit), IMAP_STATUS_PARSED);
	assert_int_equal(imap_notify_status_uidnext(&st, "INBOX", &u), 1);
	assert_int_equal(u, 9);
	/* a STATUS without UIDNEXT (RFC 5465 5.2 allows MESSAGES only; RFC
	 * 3501's example "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)"
	 * trimmed): the caller asks with a STATUS command */
	assert_int_equal(parse("* STATUS blurdybloop (MESSAGES 231)", &st, &lit), IMAP_STATUS_PARSED);
	assert_int_equal(imap_notify_status_uidnext(&st, "blurdybloop", &u), 0);
	assert_int_equal(parse("* STATUS blurdybloop ()", &st, &lit), IMAP_STATUS_PARSED);
	assert_int_equal(imap_notify_status_uidnext(&st, "blurdybloop", &u), 0);
	/* UIDNEXT 0 is no UIDNEXT (RFC 3501 2.3.1.1: UIDs are non-zero) */
	assert_int_equal(parse("* STATUS Junk (UIDNEXT 0)", &st, &lit), IMAP_STATUS_PARSED);
	assert_int_equal(imap_notify_status_uidnext(&st, "Junk", &u), 0);
	assert_int_equal(imap_notify_status_uidnext(NULL, "Junk", &u), 0);
	assert_int_equal(u, 9);
}

static void test_not_status(void **state)
{
	struct imap_status_resp st;

	(void)state;
	assert_int_equal(parse("* 2 EXISTS\r\n", &st, NULL), IMAP_STATUS_NOT);
	assert_int_equal(parse("* 1 RECENT\r\n", &st, NULL), IMAP_STATUS_NOT);
	assert_int_equal(parse("* OK Still here\r\n", &st, NULL), IMAP_STATUS_NOT);
	assert_int_equal(parse("c3 OK Idle completed (2.385 + 2.383 + 2.384 secs).\r\n", &st, NULL),
	                 IMAP_STATUS_NOT);
	assert_int_equal(parse("* STATUSX Junk (MESSAGES 1)", &st, NULL), IMAP_STATUS_NOT);
	assert_int_equal(parse("", &st, NULL), IMAP_STATUS_NOT);
}

/* Hostile or broken lines: never a crash, never a value guessed. */
static void test_malformed(void **state)
{
	static const char *const bad[] = {
		"* STATUS Junk",                                  /* no list */
		"* STATUS Junk (MESSAGES 1",                      /* no ")" */
		"* STATUS Junk (MESSAGES 1) trailing",            /* bytes after ")" */
		"* STATUS Junk (MESSAGES x)",                     /* not a number */
		"* STATUS Junk (MESSAGES)",                       /* no value */
		"* STATUS Junk (MESSAGES 123456789012345678901)", /* 21 digits */
		"* STATUS Junk (MESSAGES  1)",                    /* two spaces */
		"* STATUS \"Junk (MESSAGES 1)",                   /* unterminated quote */
		"* STATUS \"a\\b\" (MESSAGES 1)",                 /* bad escape */
		"* STATUS Ju(nk (MESSAGES 1)",                    /* atom-special */
		"* STATUS Junk\t(MESSAGES 1)",                    /* CTL */
		"* STATUS  (MESSAGES 1)",                         /* empty name */
		"* STATUS {x}",                                   /* literal without a size */
		"* STATUS {3} Junk",                              /* bytes after the literal */
	};
	struct imap_status_resp st;
	size_t lit;
	char longname[IMAP_STATUS_NAME_MAX + 64];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(parse(bad[i], &st, &lit), IMAP_STATUS_MALFORMED);
	/* a name over the cap */
	memcpy(longname, "* STATUS ", 9);
	memset(longname + 9, 'a', IMAP_STATUS_NAME_MAX);
	strcpy(longname + 9 + IMAP_STATUS_NAME_MAX, " (MESSAGES 1)");
	assert_int_equal(parse(longname, &st, &lit), IMAP_STATUS_MALFORMED);
	/* a value beyond unsigned long saturates instead of wrapping (20 digits) */
	assert_int_equal(parse("* STATUS Junk (UIDNEXT 99999999999999999999)", &st, &lit), IMAP_STATUS_PARSED);
	assert_true(st.uidnext >= 4294967295UL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dovecot_atom),
		cmocka_unit_test(test_dovecot_gmail_and_quoted),
		cmocka_unit_test(test_rfc_examples),
		cmocka_unit_test(test_literal),
		cmocka_unit_test(test_notify_set_status_reply),
		cmocka_unit_test(test_not_status),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
