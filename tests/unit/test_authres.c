/*
 * test_authres.c - Authentication-Results (RFC 8601), Received (RFC 5321
 * section 4.4), RFC 5322 header fields and dates, and the trust rules that
 * pick the receiving provider's verdicts out of a delivered probe.
 *
 * Cases: RFC 8601 appendix B, and real fields from public bug reports and
 * documentation (source cited at each case). Expected Unix times were
 * computed independently with Python's email.utils.parsedate_to_datetime.
 */
#include <config.h>

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/hfield.h"
#include "common/util.h"
#include "prober/authres.h"
#include "prober/received.h"
#include "prober/trace.h"
#include "scheduler/verdicts.h"

static struct authres_field F;

static void parse_ok(const char *v)
{
	assert_int_equal(authres_parse(v, &F), 0);
}

static const char *prop(const struct auth_verdict *v, const char *name)
{
	for (int i = 0; i < v->nprops; i++)
		if (strcmp(v->props[i].name, name) == 0)
			return v->props[i].value;
	return NULL;
}

static void verdict_is(int i, const char *method, const char *result, const char *reason)
{
	assert_true(i < F.nv);
	assert_string_equal(F.v[i].method, method);
	assert_string_equal(F.v[i].result, result);
	assert_string_equal(F.v[i].reason, reason);
}

/* ---- RFC 8601 appendix B ------------------------------------------------ */

static void test_rfc_b2_none_with_version(void **st)
{
	(void)st;
	parse_ok("example.org 1; none");   /* B.2 */
	assert_string_equal(F.authserv_id, "example.org");
	assert_int_equal(F.version, 1);
	assert_int_equal(F.none, 1);
	assert_int_equal(F.nv, 0);
}

static void test_rfc_b3_spf(void **st)
{
	(void)st;
	parse_ok("example.com;\r\n          spf=pass smtp.mailfrom=example.net");   /* B.3 */
	assert_string_equal(F.authserv_id, "example.com");
	assert_int_equal(F.version, 0);
	assert_int_equal(F.nv, 1);
	verdict_is(0, "spf", "pass", "");
	assert_string_equal(prop(&F.v[0], "smtp.mailfrom"), "example.net");
}

static void test_rfc_b4_auth_and_iprev(void **st)
{
	(void)st;
	/* B.4, first field */
	parse_ok("example.com; auth=pass (cram-md5) smtp.auth=sender@example.net; "
	         "spf=pass smtp.mailfrom=example.net");
	assert_int_equal(F.nv, 2);
	verdict_is(0, "auth", "pass", "cram-md5");
	assert_string_equal(prop(&F.v[0], "smtp.auth"), "sender@example.net");
	verdict_is(1, "spf", "pass", "");
	/* B.4, second field */
	parse_ok("example.com; iprev=pass policy.iprev=192.0.2.200");
	verdict_is(0, "iprev", "pass", "");
	assert_string_equal(prop(&F.v[0], "policy.iprev"), "192.0.2.200");
}

static void test_rfc_b5_b6_dkim(void **st)
{
	(void)st;
	/* B.5: the comment after the result is the explanation */
	parse_ok("example.com;\n dkim=pass (good signature) header.d=mail-router.example.net;\n"
	         " dkim=fail (bad signature) header.d=newyork.example.com");
	assert_int_equal(F.nv, 2);
	verdict_is(0, "dkim", "pass", "good signature");
	verdict_is(1, "dkim", "fail", "bad signature");
	assert_string_equal(prop(&F.v[1], "header.d"), "newyork.example.com");
	/* B.6: reasonspec, quoted */
	parse_ok("example.com;\n dkim=pass reason=\"good signature\"\n header.i=@mail-router.example.net;\n"
	         " dkim=fail reason=\"bad signature\"\n header.i=@newyork.example.com");
	verdict_is(0, "dkim", "pass", "good signature");
	verdict_is(1, "dkim", "fail", "bad signature");
	assert_string_equal(prop(&F.v[1], "header.i"), "@newyork.example.com");
	char buf[128];
	assert_string_equal(authres_format(&F.v[1], buf, sizeof buf),
	                    "dkim=fail (bad signature) header.i=@newyork.example.com");
}

static void test_rfc_b7_comments_everywhere(void **st)
{
	(void)st;
	/* B.7: comment-heavy, with a method version */
	parse_ok("foo.example.net (foobar) 1 (baz);\n"
	         "    dkim (Because I like it) / 1 (One yay) = (wait for it) fail\n"
	         "      policy (A dot can go here) . (like that) expired\n"
	         "      (this surprised me) = (as I wasn't expecting it) 1362471462");
	assert_string_equal(F.authserv_id, "foo.example.net");
	assert_int_equal(F.version, 1);
	assert_int_equal(F.nv, 1);
	verdict_is(0, "dkim", "fail", "");
	assert_string_equal(prop(&F.v[0], "policy.expired"), "1362471462");
}

/* ---- real fields -------------------------------------------------------- */

static void test_gmail(void **st)
{
	(void)st;
	/* Gmail, from qianweicheng/hello-world protocol/email/security/demo.md */
	parse_ok("mx.google.com;\r\n"
	         "       dkim=pass header.i=@amazonses.com header.s=gdwg2y3kokkkj5a55z2ilkup5wp5hhxx header.b=FxxfSHRK;\r\n"
	         "       spf=pass (google.com: domain of 0101016ffebba6b4-f270fd02-a80c-45bd-bf0b-419507e4e741-000000@us-west-2.amazonses.com designates 54.240.27.116 as permitted sender) smtp.mailfrom=0101016ffebba6b4-f270fd02-a80c-45bd-bf0b-419507e4e741-000000@us-west-2.amazonses.com;\r\n"
	         "       dmarc=fail (p=NONE sp=QUARANTINE dis=NONE) header.from=gmail.com");
	assert_string_equal(F.authserv_id, "mx.google.com");
	assert_int_equal(F.nv, 3);
	verdict_is(0, "dkim", "pass", "");
	assert_string_equal(prop(&F.v[0], "header.s"), "gdwg2y3kokkkj5a55z2ilkup5wp5hhxx");
	assert_string_equal(prop(&F.v[0], "header.b"), "FxxfSHRK");
	assert_string_equal(F.v[1].method, "spf");
	assert_true(strncmp(F.v[1].reason, "google.com: domain of", 21) == 0);
	verdict_is(2, "dmarc", "fail", "p=NONE sp=QUARANTINE dis=NONE");
	assert_string_equal(prop(&F.v[2], "header.from"), "gmail.com");
	/* Gmail quotes a header.b with '+' or '/' (muan/github-gmail#86) */
	parse_ok("mx.google.com;\n dkim=pass header.i=@finami.mx header.s=esputnik header.b=\"PR+cH4/R\";\n"
	         " dkim=pass header.i=@esputnik.com header.s=km2 header.b=OiJ18hFo");
	assert_int_equal(F.nv, 2);
	assert_string_equal(prop(&F.v[0], "header.b"), "PR+cH4/R");
}

static void test_microsoft(void **st)
{
	(void)st;
	/* Outlook.com, from roehling/postsrsd#101: no authserv-id, bare
	 * "outlook.com;" items, action=none, compauth */
	parse_ok("spf=none (sender IP is 136.243.169.56) smtp.mailfrom=mx1.emailforward.mx; "
	         "outlook.com; dkim=pass (signature was verified) header.d=rgi-bvba.be;outlook.com; "
	         "dmarc=pass action=none header.from=rgi-bvba.be;compauth=pass reason=100");
	assert_string_equal(F.authserv_id, "");
	assert_int_equal(F.nv, 4);
	verdict_is(0, "spf", "none", "sender IP is 136.243.169.56");
	assert_string_equal(prop(&F.v[0], "smtp.mailfrom"), "mx1.emailforward.mx");
	verdict_is(1, "dkim", "pass", "signature was verified");
	assert_string_equal(prop(&F.v[1], "header.d"), "rgi-bvba.be");
	verdict_is(2, "dmarc", "pass", "");
	assert_string_equal(prop(&F.v[2], "action"), "none");
	assert_string_equal(prop(&F.v[2], "header.from"), "rgi-bvba.be");
	verdict_is(3, "compauth", "pass", "100");
	assert_int_equal(F.skipped, 0);
	/* Microsoft 365, folded, from BugAlertDotOrg/bugalert#38 */
	parse_ok("spf=pass (sender IP is 149.72.167.116)\r\n smtp.mailfrom=noreply.bugalert.org; "
	         "dkim=pass (signature was verified)\r\n header.d=bugalert.org;dmarc=bestguesspass action=none\r\n"
	         " header.from=bugalert.org;compauth=pass reason=109");
	assert_int_equal(F.nv, 4);
	verdict_is(2, "dmarc", "bestguesspass", "");
	verdict_is(3, "compauth", "pass", "109");
	/* compauth=fail reason=001, from forwardemail/free-email-forwarding#214 */
	parse_ok("spf=pass (sender IP is 209.85.167.171)\nsmtp.mailfrom=diwala.io; dataforeningen.no; "
	         "dkim=none (message not signed)\nheader.d=none;dataforeningen.no; dmarc=none action=none\n"
	         "header.from=din.foundation;compauth=fail reason=001");
	verdict_is(1, "dkim", "none", "message not signed");
	verdict_is(3, "compauth", "fail", "001");
}

static void test_yahoo(void **st)
{
	(void)st;
	/* Yahoo, from pimlie/authres_status#39: non-standard results are kept
	 * as written (never read as "pass") */
	parse_ok("atlas207.free.mail.gq1.yahoo.com;\n dkim=dkim_pass header.i=@3suisses.fr header.s=@splio;\n"
	         " dkim=dkim_pass header.i=@s3s-main.net header.s=@dkim02;\n spf=pass smtp.mailfrom=newsletter.3suisses.fr;\n"
	         " dmarc=success(p=QUARANTINE,sp=REJECT) header.from=newsletter.3suisses.fr;");
	assert_string_equal(F.authserv_id, "atlas207.free.mail.gq1.yahoo.com");
	assert_int_equal(F.nv, 4);
	verdict_is(0, "dkim", "dkim_pass", "");
	verdict_is(2, "spf", "pass", "");
	verdict_is(3, "dmarc", "success", "p=QUARANTINE,sp=REJECT");
	assert_true(authres_id_matches(F.authserv_id, "*.yahoo.com"));
	/* Yahoo without the ';' after the id, from pimlie/authres_status#41:
	 * the malformed resinfo is skipped, the rest is read */
	parse_ok("mta1192.mail.ir2.yahoo.com \n header.i=@plezi.co header.s=s1 dkim=pass (ok)\n"
	         " header.i=@sendgrid.info header.s=smtpapi dkim=pass (ok);\n"
	         " spfDomain=emails.plezi.co spfResult=pass;\n dmarc=pass(p=none sp=NULL dis=none) header.from=plezi.co");
	assert_string_equal(F.authserv_id, "mta1192.mail.ir2.yahoo.com");
	assert_int_equal(F.skipped, 1);
	assert_string_equal(F.v[F.nv - 1].method, "dmarc");
	assert_string_equal(F.v[F.nv - 1].result, "pass");
	assert_string_equal(prop(&F.v[F.nv - 1], "header.from"), "plezi.co");
}

static void test_icloud_fastmail(void **st)
{
	(void)st;
	/* iCloud, from lieser/dkim_verifier#473: one field per method */
	parse_ok("dkim-verifier.icloud.com;\n\tdkim=pass (1024-bit key) header.d=costalerts.amazonaws.com "
	         "header.i=@costalerts.amazonaws.com header.b=uaPCyL0A");
	assert_string_equal(F.authserv_id, "dkim-verifier.icloud.com");
	verdict_is(0, "dkim", "pass", "1024-bit key");
	assert_true(authres_id_matches(F.authserv_id, "*.icloud.com"));
	/* Fastmail's authentication_milter: comment and x- properties
	 * (lieser/dkim_verifier#384, fastmail/authentication_milter#144) */
	parse_ok("mx6.messagingengine.com;\n    dkim=pass (2048-bit rsa key sha256) header.d=example.com\n"
	         "    header.i=@example.com header.b=AbCdEfGh header.a=rsa-sha256 header.s=fm1 x-bits=2048;\n"
	         "    dmarc=pass policy.published-domain-policy=none header.from=example.com;\n"
	         "    spf=pass smtp.mailfrom=bounce@example.com smtp.helo=out.example.com");
	assert_int_equal(F.nv, 3);
	verdict_is(0, "dkim", "pass", "2048-bit rsa key sha256");
	assert_string_equal(prop(&F.v[0], "header.d"), "example.com");
	assert_int_equal(F.v[0].nprops, AUTH_PROPS_MAX);   /* capped, never overflowing */
	verdict_is(2, "spf", "pass", "");
	assert_true(authres_id_matches(F.authserv_id, "*.messagingengine.com"));
}

static void test_hostile(void **st)
{
	(void)st;
	assert_int_equal(authres_parse("", &F), -1);
	assert_int_equal(authres_parse("   (only a comment)  ", &F), -1);
	assert_int_equal(authres_parse(";;;", &F), -1);
	/* a quoted ')' inside a comment does not end it early */
	parse_ok("mx.google.com; spf=pass (google.com: domain of \"a) dmarc=pass (b\"@evil.com) "
	         "smtp.mailfrom=x@evil.com; dmarc=fail header.from=victim.example");
	assert_int_equal(F.nv, 2);
	verdict_is(1, "dmarc", "fail", "");
	/* nested comment hides its content */
	parse_ok("mx.google.com; (note (x) dmarc=pass) spf=fail smtp.mailfrom=a.example");
	assert_int_equal(F.nv, 1);
	verdict_is(0, "spf", "fail", "");
	/* unterminated comment and quote end at the end of the value */
	parse_ok("mx.example; dkim=pass (never closed header.d=x");
	verdict_is(0, "dkim", "pass", "never closed header.d=x");
	parse_ok("mx.example; dkim=fail reason=\"never closed");
	verdict_is(0, "dkim", "fail", "never closed");
	/* more resinfos than AUTH_MAX are counted, not stored */
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "mx.example");
	for (int i = 0; i < AUTH_MAX + 5; i++)
		strbuf_addf(&sb, "; dkim=pass header.d=d%d.example", i);
	char *v = strbuf_detach(&sb);
	parse_ok(v);
	free(v);
	assert_int_equal(F.nv, AUTH_MAX);
	assert_int_equal(F.skipped, 5);
	/* an oversized value is truncated, not overflowing */
	char big[2000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	memcpy(big, "mx.example; dkim=pass header.d=", 31);
	parse_ok(big);
	assert_int_equal(strlen(prop(&F.v[0], "header.d")), sizeof F.v[0].props[0].value - 1);
}

static void test_id_patterns(void **st)
{
	(void)st;
	assert_true(authres_id_matches("mx.google.com", "mx.google.com"));
	assert_true(authres_id_matches("MX.Google.COM", "mx.google.com"));
	assert_false(authres_id_matches("mx.google.com.evil.example", "mx.google.com"));
	assert_true(authres_id_matches("atlas.mail.yahoo.com", "*.yahoo.com"));
	assert_false(authres_id_matches("yahoo.com", "*.yahoo.com"));
	assert_false(authres_id_matches("evilyahoo.com", "*.yahoo.com"));
	assert_false(authres_id_matches("", "*.yahoo.com"));
	assert_false(authres_id_matches("", ""));
}

/* ---- Received ----------------------------------------------------------- */

static void test_received_shapes(void **st)
{
	(void)st;
	struct hop h;
	/* Postfix, captured from the loopback world (Postfix 3.7) */
	assert_int_equal(received_parse("from relay.world.test (unknown [127.0.0.1])\n"
	                                "\tby mx.greylist.test (Postfix) with ESMTP id E8807A73184\n"
	                                "\tfor <inbox@greylist.test>; Tue,  1 Dec 2026 23:15:01 +0000 (UTC)", &h), 0);
	assert_string_equal(h.from, "relay.world.test");
	assert_string_equal(h.by, "mx.greylist.test");
	assert_string_equal(h.with, "ESMTP");
	assert_string_equal(h.id, "E8807A73184");
	assert_true(h.time == 1796166901);
	/* Dovecot LMTP, captured from the loopback world (Dovecot 2.3.19) */
	assert_int_equal(received_parse("from relay.world.test ([127.0.0.1])\n\tby imap.world.test with LMTP\n"
	                                "\tid 2JLZOPVUD2txRgAAg+zDdQ\n\t(envelope-from <probe@sender.test>)\n"
	                                "\tfor <inbox@greylist.test>; Tue, 01 Dec 2026 23:15:01 +0000", &h), 0);
	assert_string_equal(h.by, "imap.world.test");
	assert_string_equal(h.with, "LMTP");
	assert_string_equal(h.id, "2JLZOPVUD2txRgAAg+zDdQ");
	assert_true(h.time == 1796166901);
	/* Exim 4.96's default received_header_text (Exim specification,
	 * "received_header_text"), with TLS and envelope-from comments */
	assert_int_equal(received_parse("from [192.0.2.10] (helo=client.example.org)\n"
	                                "\tby mail.example.com with esmtps  (TLS1.3) tls TLS_AES_256_GCM_SHA384\n"
	                                "\t(Exim 4.96)\n\t(envelope-from <alice@example.org>)\n"
	                                "\tid 1r5AbC-000123-Xy\n\tfor bob@example.com;\n"
	                                "\tTue, 01 Dec 2026 23:11:20 +0000", &h), 0);
	assert_string_equal(h.from, "[192.0.2.10]");
	assert_string_equal(h.by, "mail.example.com");
	assert_string_equal(h.with, "esmtps");
	assert_string_equal(h.id, "1r5AbC-000123-Xy");
	assert_true(h.time == 1796166680);
	/* Gmail's inner hop, from qianweicheng/hello-world demo.md */
	assert_int_equal(received_parse("by 2002:a0c:c44a:0:0:0:0:0 with SMTP id t10csp190775qvi;\n"
	                                "        Fri, 31 Jan 2020 19:11:49 -0800 (PST)", &h), 0);
	assert_string_equal(h.from, "");
	assert_string_equal(h.by, "2002:a0c:c44a:0:0:0:0:0");
	assert_string_equal(h.id, "t10csp190775qvi");
	assert_true(h.time == 1580526709);
	/* Gmail's MX hop, same source */
	assert_int_equal(received_parse("from a27-116.smtp-out.us-west-2.amazonses.com (a27-116.smtp-out.us-west-2.amazonses.com. [54.240.27.116])\n"
	                                "        by mx.google.com with ESMTPS id s8si1925252pji.72.2020.01.31.19.11.48\n"
	                                "        for <weicheng@edison.tech>\n"
	                                "        (version=TLS1_2 cipher=ECDHE-RSA-AES128-SHA bits=128/128);\n"
	                                "        Fri, 31 Jan 2020 19:11:49 -0800 (PST)", &h), 0);
	assert_string_equal(h.by, "mx.google.com");
	assert_string_equal(h.id, "s8si1925252pji.72.2020.01.31.19.11.48");
	assert_true(h.time == 1580526709);
	/* Microsoft, from forwardemail/free-email-forwarding#214 */
	assert_int_equal(received_parse("from DB6PR07CA0179.eurprd07.prod.outlook.com (2603:10a6:6:43::33) by\n"
	                                "AM7PR07MB6264.eurprd07.prod.outlook.com (2603:10a6:20b:13e::9) with Microsoft\n"
	                                "SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id\n"
	                                "15.20.2937.9; Mon, 20 Apr 2020 07:48:40 +0000", &h), 0);
	assert_string_equal(h.from, "DB6PR07CA0179.eurprd07.prod.outlook.com");
	assert_string_equal(h.by, "AM7PR07MB6264.eurprd07.prod.outlook.com");
	assert_string_equal(h.with, "Microsoft");
	assert_string_equal(h.id, "15.20.2937.9");
	assert_true(h.time == 1587368920);
	/* Microsoft's HTTPS hop without id */
	assert_int_equal(received_parse("from AM7PR07MB6264.eurprd07.prod.outlook.com (2603:10a6:4:3f::44) by\n"
	                                "DB6PR07MB4245.eurprd07.prod.outlook.com with HTTPS via\n"
	                                "DB6PR0201CA0034.EURPRD02.PROD.OUTLOOK.COM; Mon, 20 Apr 2020 07:48:41 +0000", &h), 0);
	assert_string_equal(h.with, "HTTPS");
	assert_string_equal(h.id, "");
	assert_true(h.time == 1587368921);
	/* broken date: hop kept, time unknown */
	assert_int_equal(received_parse("from a by b with SMTP id X; yesterday", &h), 0);
	assert_true(h.time == 0);
	assert_int_equal(received_parse("", &h), -1);
	assert_int_equal(received_parse("garbage words only", &h), -1);
}

static void test_dates(void **st)
{
	(void)st;
	static const struct { const char *in; double t; } good[] = {
		{ "Fri, 31 Jan 2020 19:11:49 -0800 (PST)", 1580526709 },
		{ "Sat, 01 Feb 2020 11:05:57 +0800 (CST)", 1580526357 },
		{ "Tue,  1 Dec 2026 23:11:19 +0000 (UTC)", 1796166679 },
		{ "1 Dec 26 23:11 GMT", 1796166660 },           /* obsolete: 2-digit year, no seconds */
		{ "Thu, 13 Feb 1969 23:32:54 -0330", -27723426 }, /* RFC 5322 A.1.3 shape */
		{ "Fri, 21 Nov 1997 09:55:06 EST", 880124106 },  /* obsolete zone name */
		{ "Fri, 21 Nov 1997 09:55:06 -0600", 880127706 },
	};
	static const char *const bad[] = {
		"", "yesterday", "Fri, 31 Jan 2020", "31 Foo 2020 10:00:00 +0000",
		"30 Feb 2020 10:00:00 +0000", "31 Jan 2020 25:00:00 +0000", "31 Jan 2020 10:00:00 +0000 junk",
		"31 Jan 2020 10:00:00 +00", "31 Jan 2020 10:00:00 XYZ",
	};
	double t;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert_int_equal(rfc5322_parse_date(good[i].in, &t), 0);
		assert_true(t == good[i].t);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(rfc5322_parse_date(bad[i], &t), -1);
}

static void test_hfield_iter(void **st)
{
	(void)st;
	const char *h = "Received: a\r\n\tb\r\nX-Other:  v \r\nReceived : c\nbad line\n  orphan\r\n\r\nBody: no\r\n";
	struct hfield_iter it;
	const char *name;
	size_t nl;
	char *v;
	hfield_begin(&it, h, strlen(h));
	assert_int_equal(hfield_next(&it, &name, &nl, &v), 1);
	assert_true(hfield_is(name, nl, "received"));
	assert_string_equal(v, "a\tb");
	free(v);
	assert_int_equal(hfield_next(&it, &name, &nl, &v), 1);
	assert_true(hfield_is(name, nl, "X-Other"));
	assert_string_equal(v, "v");
	free(v);
	assert_int_equal(hfield_next(&it, &name, &nl, &v), 1);
	assert_true(hfield_is(name, nl, "Received"));
	assert_string_equal(v, "c");
	free(v);
	assert_int_equal(hfield_next(&it, &name, &nl, &v), 0);   /* stops at the empty line */
}

/* ---- trust: the receiving provider's fields only ------------------------ */

/* Header of a probe delivered through the loopback world: the relay
 * (queue id C35C4A731A1) to mx.greylist.test to Dovecot LMTP, with the
 * MX's verdicts above the relay's field and a forged field below it. */
static const char world_hdr[] =
	"Return-Path: <probe@sender.test>\r\n"
	"Received: from relay.world.test ([127.0.0.1])\r\n\tby imap.world.test with LMTP\r\n"
	"\tid 2JLZOPVUD2txRgAAg+zDdQ\r\n\t(envelope-from <probe@sender.test>)\r\n"
	"\tfor <inbox@greylist.test>; Tue, 01 Dec 2026 23:15:01 +0000\r\n"
	"Authentication-Results: mx.greylist.test; dmarc=fail (p=reject dis=none) header.from=sender.test\r\n"
	"Authentication-Results: mx.greylist.test;\r\n\tdkim=fail reason=\"signature verification failed\" (2048-bit key; unprotected)\r\n"
	"\theader.d=sender.test header.i=@sender.test header.b=AbCd\r\n"
	"Authentication-Results: other.example; spf=pass smtp.mailfrom=sender.test\r\n"
	"Received: from relay.world.test (unknown [127.0.0.1])\r\n\tby mx.greylist.test (Postfix) with ESMTP id E8807A73184\r\n"
	"\tfor <inbox@greylist.test>; Tue,  1 Dec 2026 23:15:01 +0000 (UTC)\r\n"
	"Received: from vm (unknown [127.0.0.1])\r\n\tby relay.world.test (Postfix) with ESMTP id C35C4A731A1\r\n"
	"\tfor <inbox@greylist.test>; Tue,  1 Dec 2026 23:14:52 +0000 (UTC)\r\n"
	"Authentication-Results: mx.greylist.test; dkim=pass header.d=sender.test; dmarc=pass\r\n"
	"Authentication-Results: spf=pass (forged, no id) smtp.mailfrom=sender.test\r\n"
	"From: probe@sender.test\r\n"
	"\r\n";

static void test_trust(void **st)
{
	(void)st;
	static const char *const ids[] = { "mx.greylist.test" };
	struct trace_policy pol = { ids, 1, 0 };
	struct probe_trace t;
	int passed;

	memset(&t, 0, sizeof t);
	trace_build(world_hdr, strlen(world_hdr), "C35C4A731A1", &pol, 1796166902, &t);
	assert_int_equal(t.fetched, 1);
	assert_int_equal(t.auth_fields, 5);
	assert_int_equal(t.auth_trusted, 2);   /* both MX fields above the relay's; merged */
	assert_int_equal(t.nauth, 2);
	assert_string_equal(t.auth[0].method, "dmarc");
	assert_string_equal(t.auth[0].result, "fail");
	assert_string_equal(t.auth[1].method, "dkim");
	assert_string_equal(t.auth[1].result, "fail");
	assert_string_equal(t.auth[1].reason, "signature verification failed");
	assert_true(trace_method_verdict(&t, "dkim", &passed) && !passed);   /* forged pass ignored */
	assert_false(trace_method_verdict(&t, "spf", &passed));   /* other.example not trusted */
	assert_int_equal(t.nhops, 3);
	assert_int_equal(t.relay_hop, 0);
	assert_string_equal(t.hops[0].by, "relay.world.test");
	assert_string_equal(t.hops[2].with, "LMTP");
	assert_int_equal(t.have_relay, 1);
	assert_true(t.stage_relay == 9);   /* the greylisting delay, in the relay's queue */
	assert_int_equal(t.have_receiving, 1);
	assert_true(t.stage_receiving == 1);
	assert_string_equal(t.note, "");

	/* Microsoft mode: the forged field without an id sits below the relay's
	 * field and stays ignored; nothing above it lacks an id */
	struct trace_policy ms = { NULL, 0, 1 };
	trace_build(world_hdr, strlen(world_hdr), "C35C4A731A1", &ms, 0, &t);
	assert_int_equal(t.auth_trusted, 0);
	assert_int_equal(t.nauth, 0);
	assert_true(t.stage_receiving == 0);   /* newest hop ends it without INTERNALDATE */

	/* unknown queue id: nothing trusted, said so; no stages */
	trace_build(world_hdr, strlen(world_hdr), "NOPE", &pol, 0, &t);
	assert_int_equal(t.relay_hop, -1);
	assert_int_equal(t.nauth, 0);
	assert_int_equal(t.have_relay, 0);
	assert_int_equal(t.have_receiving, 0);
	assert_non_null(strstr(t.note, "NOPE"));
	trace_build(world_hdr, strlen(world_hdr), "", &pol, 0, &t);
	assert_string_equal(t.note, "the relay gave no queue id: no verdict trusted");
}

static void test_trust_microsoft_and_skew(void **st)
{
	(void)st;
	/* Microsoft's field sits above the relay's hop; the next hop's clock
	 * runs 5 s behind the relay's: negative, kept as skew */
	static const char hdr[] =
		"Received: from X.prod.outlook.com (2603:10b6:a03:2e::1) by Y.prod.outlook.com\n"
		" (2603:10b6:a03:2e::2) with Microsoft SMTP Server id 15.20.1; Tue, 1 Dec 2026 23:00:10 +0000\n"
		"Authentication-Results: spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=sender.test;\n"
		" dkim=pass (signature was verified) header.d=sender.test;dmarc=pass action=none\n"
		" header.from=sender.test;compauth=pass reason=100\n"
		"Received: from relay.sender.test (192.0.2.1) by Z.mail.protection.outlook.com\n"
		" (10.1.1.1) with Microsoft SMTP Server id 15.20.1; Tue, 1 Dec 2026 23:00:05 +0000\n"
		"Received: from vm by relay.sender.test (Postfix) with ESMTPSA id 4QID;\n"
		" Tue, 1 Dec 2026 23:00:10 +0000\n"
		"\n";
	struct trace_policy pol;
	struct probe_trace t;
	int passed;
	assert_int_equal(trace_default_policy("OUTLOOK.office365.com", &pol), 1);
	assert_int_equal(pol.microsoft, 1);
	memset(&t, 0, sizeof t);
	trace_build(hdr, strlen(hdr), "4QID", &pol, 0, &t);
	assert_int_equal(t.nauth, 4);
	assert_true(trace_method_verdict(&t, "compauth", &passed) && passed);
	assert_int_equal(t.have_relay, 1);
	assert_true(t.stage_relay == -5);
	assert_true(t.stage_receiving == 5);
	assert_int_equal(trace_default_policy("imap.gmail.com", &pol), 1);
	assert_string_equal(pol.authserv_ids[0], "mx.google.com");
	assert_int_equal(trace_default_policy("imap.example.net", &pol), 0);
}

/* Many Received fields: the hops array grows as they come (8, 16, 32...),
 * the newest HOPS_MAX are kept oldest first, and the relay's field is
 * found among them; past FIELDS_MAX (400) fields the rest are ignored. */
static void test_trace_many_hops(void **st)
{
	struct trace_policy pol;
	struct probe_trace t;
	struct strbuf sb = STRBUF_INIT;
	(void)st;
	for (int i = 0; i < 30; i++)
		strbuf_addf(&sb, "Received: from h%d.example by h%d.example with ESMTP id ID%d;\n"
		            " Tue, 1 Dec 2026 23:00:%02d +0000\n", i + 1, i, i, 59 - i);
	strbuf_adds(&sb, "\n");
	memset(&pol, 0, sizeof pol);
	memset(&t, 0, sizeof t);
	trace_build(sb.buf, sb.len, "ID5", &pol, 0, &t);
	assert_int_equal(t.nhops, HOPS_MAX);
	/* field 5 from the top; the 12 newest are fields 0-11, oldest first */
	assert_int_equal(t.relay_hop, HOPS_MAX - 1 - 5);
	assert_string_equal(t.hops[t.relay_hop].id, "ID5");
	assert_string_equal(t.hops[HOPS_MAX - 1].id, "ID0");
	strbuf_free(&sb);

	for (int i = 0; i < 450; i++)
		strbuf_addf(&sb, "Received: from a by b with ESMTP id Q%d; Tue, 1 Dec 2026 23:00:00 +0000\n", i);
	strbuf_adds(&sb, "\n");
	memset(&t, 0, sizeof t);
	trace_build(sb.buf, sb.len, "Q420", &pol, 0, &t);   /* beyond the first 400 */
	assert_int_equal(t.nhops, HOPS_MAX);
	assert_int_equal(t.relay_hop, -1);
	strbuf_free(&sb);
}

/* Which policy a seed gets: the providers block wins, else the IMAP host's
 * built-in default; auth_results overrides the Microsoft default both ways. */
static void test_policy_resolution(void **st)
{
	(void)st;
	char *ids[] = { "mx.example.net" };
	struct provider_conf pcs[2] = {
		{ .name = "corp", .authserv_ids = ids, .nauthserv_ids = 1, .microsoft = -1 },
		{ .name = "o365", .authserv_ids = NULL, .nauthserv_ids = 0, .microsoft = 0 },
	};
	struct config cfg;
	struct seed_conf seed;
	const char *const *pids;
	size_t n;
	int ms;

	memset(&cfg, 0, sizeof cfg);
	memset(&seed, 0, sizeof seed);
	cfg.provider_confs = pcs;
	cfg.nprovider_confs = 2;
	seed.provider = "corp";
	seed.imap.host = "imap.gmail.com";
	verdicts_policy(&cfg, &seed, &pids, &n, &ms);
	assert_int_equal(n, 1);
	assert_string_equal(pids[0], "mx.example.net");   /* the block wins over the host */
	assert_int_equal(ms, 0);
	seed.provider = "gmail";   /* no block: the host's default */
	verdicts_policy(&cfg, &seed, &pids, &n, &ms);
	assert_string_equal(pids[0], "mx.google.com");
	seed.provider = "outlook";
	seed.imap.host = "imap-mail.outlook.com";
	verdicts_policy(&cfg, &seed, &pids, &n, &ms);
	assert_int_equal(ms, 1);   /* Microsoft by its IMAP host */
	seed.provider = "o365";
	seed.imap.host = "outlook.office365.com";
	verdicts_policy(&cfg, &seed, &pids, &n, &ms);
	assert_int_equal(ms, 0);   /* auth_results = "standard" turns it off */
	seed.provider = "x";
	seed.imap.host = "localhost";
	verdicts_policy(&cfg, &seed, &pids, &n, &ms);
	assert_int_equal(n, 0);    /* unknown host, no block: nothing trusted */
	assert_int_equal(ms, 0);
}

/* trace_copy: every field of a built trace (the world's header above), of
 * the arrays only the used entries: into a zeroed destination it equals
 * the whole-struct copy of a source whose unused slots are zero; a field
 * added to struct probe_trace but not to trace_copy fails here. */
static void test_trace_copy(void **st)
{
	(void)st;
	static const char *const ids[] = { "mx.greylist.test" };
	struct trace_policy pol = { ids, 1, 0 };
	struct probe_trace *src = calloc(1, sizeof *src), *dst = calloc(1, sizeof *dst);

	assert_non_null(src);
	assert_non_null(dst);
	trace_build(world_hdr, strlen(world_hdr), "C35C4A731A1", &pol, 1796166902, src);
	snprintf(src->tab, sizeof src->tab, "primary");
	snprintf(src->note, sizeof src->note, "a note");
	assert_int_equal(src->nauth, 2);
	assert_int_equal(src->nhops, 3);
	trace_copy(dst, src);
	assert_memory_equal(dst, src, sizeof *src);
	/* the unused slots are not read: the copy leaves them alone */
	memset(&dst->hops[HOPS_MAX - 1], 0x55, sizeof dst->hops[0]);
	trace_copy(dst, src);
	assert_int_equal(dst->hops[HOPS_MAX - 1].by[0], 0x55);
	free(src);
	free(dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_b2_none_with_version),
		cmocka_unit_test(test_rfc_b3_spf),
		cmocka_unit_test(test_rfc_b4_auth_and_iprev),
		cmocka_unit_test(test_rfc_b5_b6_dkim),
		cmocka_unit_test(test_rfc_b7_comments_everywhere),
		cmocka_unit_test(test_gmail),
		cmocka_unit_test(test_microsoft),
		cmocka_unit_test(test_yahoo),
		cmocka_unit_test(test_icloud_fastmail),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_id_patterns),
		cmocka_unit_test(test_received_shapes),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_hfield_iter),
		cmocka_unit_test(test_trust),
		cmocka_unit_test(test_trust_microsoft_and_skew),
		cmocka_unit_test(test_policy_resolution),
		cmocka_unit_test(test_trace_copy),
		cmocka_unit_test(test_trace_many_hops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
