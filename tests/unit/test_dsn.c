/*
 * test_dsn.c - dsn_match against DSNs shaped like Postfix, Exchange and
 * Gmail ones (tests/data/dsn/, personal data replaced by example.test),
 * non-DSN mails that carry a token, and truncated / garbage input.
 * RFC 3464, RFC 6522.
 */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "prober/dsn.h"

#define T1 "7d1f0c9e4b2a85d6e3f1a0b9c8d7e6f5"   /* postfix_failed */
#define T2 "a0b1c2d3e4f5061728394a5b6c7d8e9f"   /* postfix_delayed */
#define T3 "5e4d3c2b1a09f8e7d6c5b4a392817065"   /* exchange_failed */
#define T4 "c0ffee00d15ea5e0badc0de0f00dfeed"   /* gmail_failed */
#define T5 "0f1e2d3c4b5a69788796a5b4c3d2e1f0"   /* plain_bounce */
#define T6 "1234567890abcdef1234567890abcdef"   /* normal mail, MDN, vacation */

static const char *const all_tokens[] = { T6, T1, T2, T3, T4, T5 };
#define NTOK (sizeof(all_tokens) / sizeof(all_tokens[0]))

static char *load(const char *name, size_t *len)
{
	char *path = xasprintf("%s/tests/data/dsn/%s", SRCDIR, name), *e = NULL;
	char *s = read_file_capped(path, 0, len, &e);
	if (!s)
		fail_msg("%s", e);
	free(path);
	return s;
}

/* LF -> CRLF copy */
static char *to_crlf(const char *s, size_t n, size_t *on)
{
	char *o = xmalloc(2 * n + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			o[k++] = '\r';
		o[k++] = s[i];
	}
	o[k] = '\0';
	*on = k;
	return o;
}

static int match_file(const char *name, size_t *idx, struct dsn_info *info)
{
	size_t len;
	char *s = load(name, &len);
	int r = dsn_match(s, len, all_tokens, NTOK, idx, info);
	free(s);
	return r;
}

static void test_postfix_failed(void **state)
{
	size_t idx = 99, len, clen;
	struct dsn_info info;
	char *s, *c;
	const char *only_other[] = { T2, T3 };
	(void)state;

	assert_int_equal(match_file("postfix_failed.eml", &idx, &info), 1);
	assert_int_equal(idx, 1);
	assert_int_equal(info.present, 1);
	assert_int_equal(info.action, DSN_ACTION_FAILED);
	assert_string_equal(dsn_action_name(info.action), "failed");
	assert_string_equal(info.status, "5.7.1");
	assert_string_equal(info.remote_mta, "mx.example.test");
	assert_string_equal(info.diagnostic,
		"550 5.7.1 <seed@example.test>: Recipient address rejected: Access denied");

	/* the same with CRLF line endings */
	s = load("postfix_failed.eml", &len);
	c = to_crlf(s, len, &clen);
	memset(&info, 0, sizeof(info));
	assert_int_equal(dsn_match(c, clen, all_tokens, NTOK, &idx, &info), 1);
	assert_int_equal(idx, 1);
	assert_string_equal(info.status, "5.7.1");
	assert_string_equal(info.diagnostic,
		"550 5.7.1 <seed@example.test>: Recipient address rejected: Access denied");
	/* a DSN about another probe */
	assert_int_equal(dsn_match(s, len, only_other, 2, &idx, &info), 0);
	assert_int_equal(info.present, 0);
	free(c);
	free(s);
}

static void test_postfix_delayed(void **state)
{
	size_t idx = 99;
	struct dsn_info info;
	(void)state;
	assert_int_equal(match_file("postfix_delayed.eml", &idx, &info), 1);
	assert_int_equal(idx, 2);
	assert_int_equal(info.action, DSN_ACTION_DELAYED);
	assert_string_equal(info.status, "4.7.1");
	assert_string_equal(info.remote_mta, "mx.example.test");
	assert_string_equal(info.diagnostic,
		"451 4.7.1 <seed@example.test>: Recipient address rejected: Greylisted");
}

static void test_exchange(void **state)
{
	size_t idx = 99;
	struct dsn_info info;
	(void)state;
	assert_int_equal(match_file("exchange_failed.eml", &idx, &info), 1);
	assert_int_equal(idx, 3);
	assert_int_equal(info.action, DSN_ACTION_FAILED);
	assert_string_equal(info.status, "5.1.1");
	assert_string_equal(info.remote_mta, "mx.example.test");
	assert_string_equal(info.diagnostic, "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found");
}

static void test_gmail(void **state)
{
	size_t idx = 99;
	struct dsn_info info;
	(void)state;
	assert_int_equal(match_file("gmail_failed.eml", &idx, &info), 1);
	assert_int_equal(idx, 4);
	assert_int_equal(info.action, DSN_ACTION_FAILED);
	assert_string_equal(info.status, "5.7.26");
	assert_string_equal(info.remote_mta,
		"gmail-smtp-in.l.google.com. (192.0.2.27, the server for the domain example.test.)");
	assert_string_equal(info.diagnostic,
		"550-5.7.26 This mail is unauthenticated, which poses a security risk to the "
		"sender and Gmail users, and has been blocked. 550 5.7.26 - gsmtp");
}

static void test_plain_bounce(void **state)
{
	size_t idx = 99;
	struct dsn_info info;
	(void)state;
	assert_int_equal(match_file("plain_bounce.eml", &idx, &info), 1);
	assert_int_equal(idx, 5);
	assert_int_equal(info.present, 1);
	assert_int_equal(info.action, DSN_ACTION_FAILED);
	assert_string_equal(info.status, "5.2.1");
	/* quoted-printable soft line break joined */
	assert_string_equal(info.diagnostic,
		"The remote server said: 550 5.2.1 The email account that you tried to reach is disabled.");
}

static void test_not_dsn(void **state)
{
	size_t idx = 99;
	struct dsn_info info;
	(void)state;
	/* the probe itself: carries the token and "550 5.1.1", still not a DSN */
	assert_int_equal(match_file("normal_mail.eml", &idx, &info), 0);
	assert_int_equal(info.present, 0);
	assert_int_equal(idx, 99);
	/* a read receipt (multipart/report, disposition-notification) */
	assert_int_equal(match_file("mdn.eml", &idx, &info), 0);
	/* an out-of-office reply quoting the subject */
	assert_int_equal(match_file("vacation.eml", &idx, &info), 0);
}

static void test_token_only_in_text_of_report(void **state)
{
	static const char msg[] =
		"From: MAILER-DAEMON@relay.example.test\n"
		"Subject: Undelivered Mail Returned to Sender\n"
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b1\n\n"
		"--b1\nContent-Type: text/plain\n\nabout " T1 "\n"
		"--b1\nContent-Type: message/delivery-status\n\n"
		"Reporting-MTA: dns; relay.example.test\n\n"
		"Final-Recipient: rfc822; seed@example.test\nAction: failed\nStatus: 5.0.0\n\n"
		"--b1\nContent-Type: text/rfc822-headers\n\nSubject: other mail\n\n--b1--\n";
	size_t idx;
	struct dsn_info info;
	(void)state;
	assert_int_equal(dsn_match(msg, sizeof(msg) - 1, all_tokens, NTOK, &idx, &info), 0);
}

static void test_failed_wins_and_encodings(void **state)
{
	/* two recipient groups: delayed first, then failed; the returned
	 * message is base64 (seen from some MTAs), type names in odd case */
	char *b64 = NULL;
	static const char inner[] = "Subject: inboxprobe " T2 "\r\nX-Inboxprobe-Token: " T2 "\r\n\r\nbody\r\n";
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	struct strbuf sb = STRBUF_INIT, enc = STRBUF_INIT;
	size_t n = sizeof(inner) - 1, idx = 99;
	struct dsn_info info;
	(void)state;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)inner[i] << 16;
		if (i + 1 < n) v |= (unsigned char)inner[i + 1] << 8;
		if (i + 2 < n) v |= (unsigned char)inner[i + 2];
		char q[4] = { tbl[(v >> 18) & 63], tbl[(v >> 12) & 63],
		              i + 1 < n ? tbl[(v >> 6) & 63] : '=', i + 2 < n ? tbl[v & 63] : '=' };
		strbuf_add(&enc, q, 4);
		if ((i / 3) % 19 == 18)
			strbuf_adds(&enc, "\r\n");
	}
	b64 = strbuf_detach(&enc);
	strbuf_addf(&sb,
		"From: postmaster@example.test\r\n"
		"Subject: Delivery Status Notification\r\n"
		"CONTENT-TYPE: Multipart/Report; Report-Type=\"delivery-status\";\r\n"
		"  boundary=\"=_x\"\r\n\r\n"
		"preamble\r\n--=_x\r\ncontent-type: text/plain\r\n\r\nhello\r\n"
		"--=_x\r\nContent-Type: message/delivery-status\r\n\r\n"
		"Reporting-MTA: dns; relay.example.test\r\n\r\n"
		"Final-Recipient: rfc822; a@example.test\r\nACTION: delayed\r\nStatus: 4.4.1\r\n\r\n"
		"final-recipient: rfc822; seed@example.test\r\naction: failed\r\nstatus: 5.1.1 (unknown)\r\n"
		"remote-mta: dns;\r\n mx.example.test\r\n"
		"diagnostic-code: X-Unix; no such user\r\n\r\n"
		"--=_x\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n"
		"--=_x--\r\n", b64);
	assert_int_equal(dsn_match(sb.buf, sb.len, all_tokens, NTOK, &idx, &info), 1);
	assert_int_equal(idx, 2);
	assert_int_equal(info.action, DSN_ACTION_FAILED);
	assert_string_equal(info.status, "5.1.1");
	assert_string_equal(info.remote_mta, "mx.example.test");
	assert_string_equal(info.diagnostic, "no such user");
	free(b64);
	strbuf_free(&sb);
}

/* Real DSNs written by the loopback world's Postfix (tests/world). */
static void test_postfix_world(void **state)
{
	static const char *const toks[] = { "deadbeefdeadbeefdeadbeefdeadbeef",
	                                    "feedfacefeedfacefeedfacefeedface" };
	size_t idx = 99, len;
	struct dsn_info info;
	char *s;
	(void)state;

	s = load("postfix_world_reject.eml", &len);
	assert_int_equal(dsn_match(s, len, toks, 2, &idx, &info), 1);
	assert_int_equal(idx, 1);
	assert_int_equal(info.action, DSN_ACTION_FAILED);
	assert_string_equal(info.status, "5.7.1");
	assert_string_equal(info.remote_mta, "127.0.0.1");
	assert_string_equal(info.diagnostic, "550 5.7.1 <unknown[127.0.0.1]>: Client host rejected: "
	                    "Message rejected as spam by reject.test policy");
	free(s);

	s = load("postfix_world_delayed.eml", &len);
	assert_int_equal(dsn_match(s, len, toks, 2, &idx, &info), 1);
	assert_int_equal(idx, 0);
	assert_int_equal(info.action, DSN_ACTION_DELAYED);
	assert_string_equal(info.status, "4.7.1");
	assert_string_equal(info.diagnostic, "451 4.7.1 <unknown[127.0.0.1]>: Client host rejected: "
	                    "Try again later, defer.test is busy");
	free(s);
}

/* An inner boundary that starts with the outer one ("b1" / "b10") must not
 * end the outer part early. */
static void test_boundary_prefix(void **state)
{
	static const char msg[] =
		"From: MAILER-DAEMON@relay.example.test\n"
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b1\n\n"
		"--b1\nContent-Type: multipart/alternative; boundary=b10\n\n"
		"--b10\nContent-Type: text/plain\n\nhello\n--b10--\n"
		"--b1\nContent-Type: message/delivery-status\n\n"
		"Reporting-MTA: dns; relay.example.test\n\n"
		"Final-Recipient: rfc822; seed@example.test\nAction: failed\nStatus: 5.1.1\n\n"
		"--b1 \nContent-Type: text/rfc822-headers\n\nX-Inboxprobe-Token: " T3 "\n\n--b1--\n";
	size_t idx = 99;
	struct dsn_info info;
	(void)state;
	assert_int_equal(dsn_match(msg, sizeof(msg) - 1, all_tokens, NTOK, &idx, &info), 1);
	assert_int_equal(idx, 3);
	assert_string_equal(info.status, "5.1.1");
}

static void test_action_names(void **state)
{
	(void)state;
	assert_string_equal(dsn_action_name(DSN_ACTION_NONE), "none");
	assert_string_equal(dsn_action_name(DSN_ACTION_DELAYED), "delayed");
	assert_string_equal(dsn_action_name(DSN_ACTION_DELIVERED), "delivered");
	assert_string_equal(dsn_action_name(DSN_ACTION_RELAYED), "relayed");
	assert_string_equal(dsn_action_name(DSN_ACTION_EXPANDED), "expanded");
	assert_string_equal(dsn_action_name(42), "none");
}

/* Every prefix of every sample (truncation anywhere), bit flips, random
 * bytes, NULs and deep nesting: no crash (ASan/UBSan), result 0 or 1, and
 * info stays NUL-terminated. */
static void test_garbage(void **state)
{
	static const char *const files[] = {
		"postfix_failed.eml", "postfix_delayed.eml", "exchange_failed.eml",
		"gmail_failed.eml", "plain_bounce.eml", "normal_mail.eml", "mdn.eml",
		"postfix_world_reject.eml",
	};
	struct dsn_info info;
	size_t idx;
	unsigned seed = 12345;
	(void)state;

	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		size_t len;
		char *s = load(files[f], &len);
		for (size_t cut = 0; cut <= len; cut++) {
			/* an exact-size heap copy so ASan sees any overread */
			char *c = xmalloc(cut ? cut : 1);
			memcpy(c, s, cut);
			int r = dsn_match(c, cut, all_tokens, NTOK, &idx, &info);
			assert_true(r == 0 || r == 1);
			assert_true(strlen(info.diagnostic) < sizeof(info.diagnostic));
			free(c);
		}
		for (int k = 0; k < 200; k++) {
			char *c = xmalloc(len);
			memcpy(c, s, len);
			for (int j = 0; j < 8; j++) {
				seed = seed * 1103515245u + 12345u;
				c[(seed >> 8) % len] = (char)(seed >> 16);
			}
			int r = dsn_match(c, len, all_tokens, NTOK, &idx, &info);
			assert_true(r == 0 || r == 1);
			free(c);
		}
		free(s);
	}
	/* random bytes */
	for (int k = 0; k < 100; k++) {
		char buf[2048];
		for (size_t j = 0; j < sizeof(buf); j++) {
			seed = seed * 1103515245u + 12345u;
			buf[j] = (char)(seed >> 16);
		}
		assert_int_equal(dsn_match(buf, sizeof(buf), all_tokens, NTOK, &idx, &info), 0);
	}
	/* deep nesting beyond the depth bound */
	{
		struct strbuf sb = STRBUF_INIT;
		strbuf_adds(&sb, "From: MAILER-DAEMON@example.test\nSubject: failure notice\n");
		for (int d = 0; d < 200; d++)
			strbuf_addf(&sb, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", d, d);
		strbuf_adds(&sb, "Content-Type: text/plain\n\n550 5.1.1 " T1 "\n");
		assert_true(dsn_match(sb.buf, sb.len, all_tokens, NTOK, &idx, &info) <= 1);
		strbuf_free(&sb);
	}
	/* many parts */
	{
		struct strbuf sb = STRBUF_INIT;
		strbuf_adds(&sb, "Subject: Undeliverable: x\nContent-Type: multipart/mixed; boundary=z\n\n");
		for (int d = 0; d < 5000; d++)
			strbuf_adds(&sb, "--z\n\nx\n");
		strbuf_adds(&sb, "--z--\n");
		assert_int_equal(dsn_match(sb.buf, sb.len, all_tokens, NTOK, &idx, &info), 0);
		strbuf_free(&sb);
	}
	/* NULs inside, empty, NULL */
	{
		static const char z[] = "From: MAILER-DAEMON\0x\nSubject: failure notice\n\n\0" T1 " 550 5.1.1\n";
		assert_true(dsn_match(z, sizeof(z) - 1, all_tokens, NTOK, &idx, &info) <= 1);
		assert_int_equal(dsn_match("", 0, all_tokens, NTOK, &idx, &info), 0);
		assert_int_equal(dsn_match(NULL, 10, all_tokens, NTOK, &idx, &info), 0);
		assert_int_equal(dsn_match(z, sizeof(z) - 1, NULL, 0, &idx, &info), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_postfix_failed),
		cmocka_unit_test(test_postfix_delayed),
		cmocka_unit_test(test_exchange),
		cmocka_unit_test(test_gmail),
		cmocka_unit_test(test_plain_bounce),
		cmocka_unit_test(test_not_dsn),
		cmocka_unit_test(test_token_only_in_text_of_report),
		cmocka_unit_test(test_failed_wins_and_encodings),
		cmocka_unit_test(test_postfix_world),
		cmocka_unit_test(test_boundary_prefix),
		cmocka_unit_test(test_action_names),
		cmocka_unit_test(test_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
