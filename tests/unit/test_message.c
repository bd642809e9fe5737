/*
 * test_message.c - probe tokens (HMAC against RFC 4231 and an independent
 * OpenSSL computation) and probe messages (RFC 5322 format, RFC 2047).
 */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/util.h"
#include "prober/message.h"

static const char TOK32[] = "0123456789abcdef0123456789abcdef";

static int is_lower_hex(const char *s)
{
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

/* Check: only CRLF line ends, no line over 998 octets, ends in CRLF. */
static void assert_wire_format(const char *m, size_t len)
{
	size_t col = 0;
	assert_true(len >= 2);
	assert_memory_equal(m + len - 2, "\r\n", 2);
	assert_int_equal(strlen(m), len);
	for (size_t i = 0; i < len; i++) {
		if (m[i] == '\r') {
			assert_true(i + 1 < len);
			assert_int_equal(m[i + 1], '\n');
			i++;
			col = 0;
			continue;
		}
		assert_int_not_equal(m[i], '\n');   /* bare LF */
		col++;
		assert_true(col <= 998);
	}
}

/* The header section only (up to the first empty line). */
static char *header_section(const char *m)
{
	const char *e = strstr(m, "\r\n\r\n");
	assert_non_null(e);
	return xstrndup(m, (size_t)(e - m) + 2);
}

/* Unfolded value of the n-th (0-based) field called name, or NULL. */
static char *header_value_n(const char *m, const char *name, int nth)
{
	char *hs = header_section(m);
	size_t nl = strlen(name);
	char *res = NULL;
	const char *p = hs;
	while (*p) {
		const char *eol = strstr(p, "\r\n");
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':' && nth-- == 0) {
			struct strbuf sb = STRBUF_INIT;
			const char *v = p + nl + 1;
			for (;;) {
				strbuf_add(&sb, v, (size_t)(eol - v));
				if (eol[2] == ' ' || eol[2] == '\t') {
					v = eol + 2;
					eol = strstr(v, "\r\n");
					continue;
				}
				break;
			}
			res = strbuf_detach(&sb);
			/* drop the single leading space */
			if (res[0] == ' ')
				memmove(res, res + 1, strlen(res));
			break;
		}
		p = eol + 2;
	}
	free(hs);
	return res;
}

static char *header_value(const char *m, const char *name)
{
	return header_value_n(m, name, 0);
}

static int count_header(const char *m, const char *name)
{
	int n = 0;
	char *v;
	while ((v = header_value_n(m, name, n)) != NULL) {
		free(v);
		n++;
	}
	return n;
}

/* ---- tokens ---- */

static void test_token_shape(void **state)
{
	(void)state;
	char a[TOKEN_MAX], b[TOKEN_MAX];
	char *e = NULL;
	assert_int_equal(token_generate(NULL, 0, "seed@example.net", a, &e), 0);
	assert_int_equal(token_generate(NULL, 0, "seed@example.net", b, &e), 0);
	assert_int_equal(strlen(a), 32);
	assert_true(is_lower_hex(a));
	assert_string_not_equal(a, b);

	const unsigned char key[] = "0123456789abcdef-key";
	assert_int_equal(token_generate(key, sizeof(key) - 1, "seed@example.net", a, &e), 0);
	assert_int_equal(token_generate(key, sizeof(key) - 1, "seed@example.net", b, &e), 0);
	assert_int_equal(strlen(a), 48);
	assert_true(is_lower_hex(a));
	assert_string_not_equal(a, b);
	assert_null(e);
}

static void test_hmac_rfc4231_case2(void **state)
{
	(void)state;
	/* RFC 4231 4.3: Key = "Jefe", Data = "what do ya want for nothing?",
	 * HMAC-SHA-256 = 5bdcc146bf60754e6a042426089575c7 5a003f089d2739839dec58b964ec3843.
	 * The data is random_hex || seed_address, split anywhere. */
	char out[TOKEN_HMAC_HEX + 1];
	assert_int_equal(token_hmac_hex((const unsigned char *)"Jefe", 4, "what do ya want ",
	                                "for nothing?", out), 0);
	assert_string_equal(out, "5bdcc146bf60754e");
}

/* HMAC of the token's random part computed here with OpenSSL directly. */
static void independent_hmac(const unsigned char *key, size_t keylen, const char *rnd,
                             const char *addr, char out[17])
{
	char data[256];
	snprintf(data, sizeof(data), "%s%s", rnd, addr);
	unsigned char md[32];
	unsigned int mdlen = 0;
	assert_non_null(HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)data, strlen(data), md, &mdlen));
	assert_int_equal(mdlen, 32);
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void test_token_hmac_independent(void **state)
{
	(void)state;
	const unsigned char key[] = { 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
	                              0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b };
	const char *addr = "seed1@gmail.example";
	char expect[17], got[17];
	independent_hmac(key, sizeof(key), TOK32, addr, expect);
	assert_int_equal(token_hmac_hex(key, sizeof(key), TOK32, addr, got), 0);
	assert_string_equal(got, expect);

	/* a generated token's HMAC part matches the independent computation */
	char tok[TOKEN_MAX], rnd[33];
	char *e = NULL;
	assert_int_equal(token_generate(key, sizeof(key), addr, tok, &e), 0);
	memcpy(rnd, tok, 32);
	rnd[32] = '\0';
	independent_hmac(key, sizeof(key), rnd, addr, expect);
	assert_string_equal(tok + 32, expect);
}

static void test_token_verify(void **state)
{
	(void)state;
	const unsigned char key[] = "a sixteen+ byte secret key";
	size_t kl = sizeof(key) - 1;
	const char *addr = "seed@example.net";
	char tok[TOKEN_MAX];
	char *e = NULL;
	assert_int_equal(token_generate(key, kl, addr, tok, &e), 0);
	assert_int_equal(token_verify(key, kl, addr, tok), 1);
	assert_int_equal(token_verify(key, kl, "other@example.net", tok), 0);
	/* flip each digit in turn: every change is rejected */
	for (size_t i = 0; i < 48; i++) {
		char t2[TOKEN_MAX];
		strcpy(t2, tok);
		t2[i] = t2[i] == '0' ? '1' : '0';
		assert_int_equal(token_verify(key, kl, addr, t2), 0);
	}
	/* another key */
	assert_int_equal(token_verify((const unsigned char *)"another sixteen byte key", 24, addr, tok), 0);
	/* no HMAC part while a key is set */
	char t32[33];
	memcpy(t32, tok, 32);
	t32[32] = '\0';
	assert_int_equal(token_verify(key, kl, addr, t32), 0);
	/* no key: shape only */
	assert_int_equal(token_verify(NULL, 0, addr, t32), 1);
	assert_int_equal(token_verify(NULL, 0, addr, tok), 1);
	char up[TOKEN_MAX];
	strcpy(up, "0123456789ABCDEF0123456789abcdef");
	assert_int_equal(token_verify(NULL, 0, addr, up), 0);
	assert_int_equal(token_verify(NULL, 0, addr, "0123"), 0);
	assert_int_equal(token_verify(NULL, 0, addr, ""), 0);
	assert_int_equal(token_verify(NULL, 0, addr, NULL), 0);
	assert_int_equal(token_verify(NULL, 0, addr, "0123456789abcdef0123456789abcdef0"), 0);
}

/* ---- dates ---- */

static void test_date_kolkata(void **state)
{
	(void)state;
	char *old = getenv("TZ") ? xstrdup(getenv("TZ")) : NULL;
	setenv("TZ", "Asia/Kolkata", 1);
	tzset();
	char d[64];
	/* 1700000000 = 2023-11-14T22:13:20Z = Wed 15 Nov 2023 03:43:20 +0530 */
	rfc5322_date(1700000000.7, d, sizeof(d));
	assert_string_equal(d, "Wed, 15 Nov 2023 03:43:20 +0530");

	regex_t re;
	assert_int_equal(regcomp(&re, "^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{1,2} "
	                              "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
	                              "[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}$", REG_EXTENDED), 0);
	struct message_params mp = { .from = "probe@relay.example", .to = "seed@example.net",
	                             .token = TOK32, .subject_prefix = "inboxprobe", .now = 1700000000 };
	size_t len;
	char *e = NULL;
	char *m = message_build(&mp, &len, &e);
	assert_non_null(m);
	char *date = header_value(m, "Date");
	assert_non_null(date);
	assert_int_equal(regexec(&re, date, 0, NULL, 0), 0);
	assert_string_equal(date, "Wed, 15 Nov 2023 03:43:20 +0530");
	/* the body carries the ISO 8601 send time */
	assert_non_null(strstr(m, "2023-11-14T22:13:20Z"));
	free(date);
	free(m);

	setenv("TZ", "America/St_Johns", 1);   /* -0330 */
	tzset();
	rfc5322_date(1700000000, d, sizeof(d));
	assert_int_equal(regexec(&re, d, 0, NULL, 0), 0);
	assert_string_equal(d + strlen(d) - 5, "-0330");
	regfree(&re);

	if (old) {
		setenv("TZ", old, 1);
		free(old);
	} else
		unsetenv("TZ");
	tzset();
}

/* ---- messages ---- */

static void test_message_basic(void **state)
{
	(void)state;
	struct message_params mp = { .from = "probe@relay.example", .to = "seed1@gmail.example",
	                             .token = TOK32, .subject_prefix = "inboxprobe", .now = 1700000000 };
	size_t len = 0;
	char *e = NULL;
	char *m = message_build(&mp, &len, &e);
	assert_non_null(m);
	assert_null(e);
	assert_wire_format(m, len);
	char *v;
	assert_string_equal((v = header_value(m, "From")), "probe@relay.example");
	free(v);
	assert_string_equal((v = header_value(m, "To")), "seed1@gmail.example");
	free(v);
	assert_string_equal((v = header_value(m, "Message-ID")),
	                    "<0123456789abcdef0123456789abcdef@relay.example>");
	free(v);
	assert_string_equal((v = header_value(m, "Subject")), "inboxprobe 0123456789abcdef0123456789abcdef");
	free(v);
	assert_string_equal((v = header_value(m, "X-Inboxprobe-Token")), TOK32);
	free(v);
	assert_string_equal((v = header_value(m, "MIME-Version")), "1.0");
	free(v);
	assert_string_equal((v = header_value(m, "Content-Type")), "text/plain; charset=utf-8");
	free(v);
	/* body has the token */
	const char *body = strstr(m, "\r\n\r\n");
	assert_non_null(strstr(body, TOK32));
	free(m);
}

/* Decode the encoded words of an unfolded header value; the rest is copied. */
static char *decode_2047(const char *v)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p = v;
	int prev_ew = 0;
	while (*p) {
		if (strncmp(p, "=?UTF-8?B?", 10) == 0) {
			const char *s = p + 10, *end = strstr(s, "?=");
			assert_non_null(end);
			assert_true(end + 2 - p <= 75);
			size_t n = (size_t)(end - s);
			assert_int_equal(n % 4, 0);
			unsigned char out[128];
			int dl = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
			assert_true(dl >= 0);
			if (n >= 1 && s[n - 1] == '=')
				dl--;
			if (n >= 2 && s[n - 2] == '=')
				dl--;
			/* a word starts at a UTF-8 character boundary */
			assert_true(dl > 0);
			assert_int_not_equal(out[0] & 0xC0, 0x80);
			strbuf_add(&sb, out, (size_t)dl);
			p = end + 2;
			prev_ew = 1;
			continue;
		}
		/* whitespace between two encoded words is dropped (RFC 2047 6.2) */
		if (prev_ew && (*p == ' ' || *p == '\t')) {
			size_t ws = strspn(p, " \t");
			if (strncmp(p + ws, "=?UTF-8?B?", 10) == 0) {
				p += ws;
				continue;
			}
		}
		strbuf_add(&sb, p, 1);
		p++;
		prev_ew = 0;
	}
	return strbuf_detach(&sb);
}

static void test_subject_rfc2047(void **state)
{
	(void)state;
	struct message_params mp = { .from = "probe@relay.example", .to = "seed@example.net",
	                             .token = TOK32, .subject_prefix = "Zugangscode \xE2\x9C\x93",
	                             .now = 1700000000 };
	size_t len;
	char *e = NULL;
	char *m = message_build(&mp, &len, &e);
	assert_non_null(m);
	assert_wire_format(m, len);
	char *hs = header_section(m);
	for (const char *q = hs; *q; q++)
		assert_true((unsigned char)*q < 0x80);   /* headers are pure ASCII */
	free(hs);
	char *v = header_value(m, "Subject");
	assert_non_null(strstr(v, "=?UTF-8?B?"));
	/* the token stays plain, outside the encoded words */
	size_t vl = strlen(v);
	assert_true(vl > 33);
	assert_string_equal(v + vl - 33, " 0123456789abcdef0123456789abcdef");
	char *d = decode_2047(v);
	assert_string_equal(d, "Zugangscode \xE2\x9C\x93 0123456789abcdef0123456789abcdef");
	free(d);
	free(v);
	free(m);

	/* a long multi-byte text: words of at most 75, never splitting a character */
	struct strbuf in = STRBUF_INIT;
	for (int i = 0; i < 40; i++)
		strbuf_adds(&in, "\xC3\xA4\xE2\x9C\x93\xF0\x9F\x93\xA7");   /* ä ✓ 📧 */
	char *enc = rfc2047_encode(in.buf);
	/* unfold: CRLF SP between words */
	struct strbuf un = STRBUF_INIT;
	for (const char *q = enc; *q; q++) {
		if (q[0] == '\r') {
			assert_int_equal(q[1], '\n');
			assert_int_equal(q[2], ' ');
			q++;
			continue;
		}
		strbuf_add(&un, q, 1);
	}
	d = decode_2047(un.buf);
	assert_string_equal(d, in.buf);
	free(d);
	free(enc);
	strbuf_free(&un);
	strbuf_free(&in);

	/* ASCII passes unchanged */
	enc = rfc2047_encode("plain ascii");
	assert_string_equal(enc, "plain ascii");
	free(enc);

	/* Invalid UTF-8: a lead byte followed by 190 continuation bytes must
	 * not grow one encoded-word past its buffer (found by review; ASan
	 * caught a stack overflow here). Every word stays within 75. */
	strbuf_adds(&in, "\xC3");
	for (int i = 0; i < 190; i++)
		strbuf_adds(&in, "\x80");
	enc = rfc2047_encode(in.buf);
	assert_non_null(enc);
	for (const char *w = enc; (w = strstr(w, "=?UTF-8?B?")) != NULL; ) {
		const char *end = strstr(w, "?=");
		assert_non_null(end);
		assert_true(end + 2 - w <= 75);
		w = end + 2;
	}
	free(enc);
	strbuf_free(&in);
	assert_false(utf8_valid("\xC3\x80\x80", 3));
	assert_false(utf8_valid("\xC0\xAF", 2));          /* overlong '/' */
	assert_false(utf8_valid("\xED\xA0\x80", 3));      /* surrogate */
	assert_true(utf8_valid("Zugangscode \xE2\x9C\x93", 15));
}

static void test_long_header_folded(void **state)
{
	(void)state;
	struct strbuf h = STRBUF_INIT;
	strbuf_adds(&h, "X-Campaign: ");
	for (int i = 0; i < 300; i++)
		strbuf_addf(&h, "word%d ", i);
	strbuf_adds(&h, "end");
	char *hdrs[] = { h.buf, "X-Short: otp" };
	struct message_params mp = { .from = "probe@relay.example", .to = "seed@example.net",
	                             .token = TOK32, .subject_prefix = "inboxprobe", .now = 1700000000,
	                             .headers = hdrs, .nheaders = 2 };
	size_t len;
	char *e = NULL;
	char *m = message_build(&mp, &len, &e);
	assert_non_null(m);
	assert_wire_format(m, len);
	/* every header line stays within 78 octets */
	char *hs = header_section(m);
	int lines = 0;
	for (const char *p = hs; *p;) {
		const char *eol = strstr(p, "\r\n");
		assert_true(eol - p <= 78);
		lines++;
		p = eol + 2;
	}
	assert_true(lines > 20);
	free(hs);
	char *v = header_value(m, "X-Campaign");
	assert_string_equal(v, h.buf + strlen("X-Campaign: "));
	free(v);
	assert_string_equal((v = header_value(m, "X-Short")), "otp");
	free(v);
	free(m);
	strbuf_free(&h);
}

static const char multipart_template[] =
	"From: OTP Service <otp@bank.example>\n"
	"To: someone@old.example\n"
	"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
	"Message-ID: <old@bank.example>\n"
	"X-Inboxprobe-Token: stale\n"
	"Authentication-Results: mx.example; dkim=pass\n"
	"Subject: Your code\n"
	" {{token}} (valid 5 min)\n"
	"MIME-Version: 1.0\n"
	"Content-Type: multipart/alternative; boundary=\"b1\"\n"
	"X-Other: {{token}} stays\n"
	"\n"
	"--b1\n"
	"Content-Type: text/plain; charset=utf-8\n"
	"\n"
	"Code: {{token}}\n"
	".\n"
	"--b1\r\n"
	"Content-Type: text/html; charset=utf-8\r\n"
	"\r\n"
	"<p>{{token}}</p>\r\n"
	"--b1--\n";

static void test_template_multipart(void **state)
{
	(void)state;
	struct message_params mp = { .from = "probe@relay.example", .to = "seed@example.net",
	                             .token = TOK32, .subject_prefix = "inboxprobe", .now = 1700000000,
	                             .template_text = multipart_template };
	size_t len;
	char *e = NULL;
	assert_int_equal(message_template_check(multipart_template, strlen(multipart_template), &e), 0);
	char *m = message_build(&mp, &len, &e);
	assert_non_null(m);
	assert_wire_format(m, len);
	char *v;
	assert_string_equal((v = header_value(m, "From")), "OTP Service <otp@bank.example>");
	free(v);
	assert_int_equal(count_header(m, "From"), 1);
	assert_int_equal(count_header(m, "To"), 1);
	assert_string_equal((v = header_value(m, "To")), "seed@example.net");
	free(v);
	assert_int_equal(count_header(m, "Date"), 1);
	assert_int_equal(count_header(m, "Message-ID"), 1);
	assert_string_equal((v = header_value(m, "Message-ID")), "<" "0123456789abcdef0123456789abcdef" "@relay.example>");
	free(v);
	assert_int_equal(count_header(m, "X-Inboxprobe-Token"), 1);
	assert_string_equal((v = header_value(m, "X-Inboxprobe-Token")), TOK32);
	free(v);
	assert_int_equal(count_header(m, "Authentication-Results"), 0);
	assert_int_equal(count_header(m, "Subject"), 1);
	assert_string_equal((v = header_value(m, "Subject")),
	                    "Your code 0123456789abcdef0123456789abcdef (valid 5 min)");
	free(v);
	/* {{token}} elsewhere in the header is left alone */
	assert_string_equal((v = header_value(m, "X-Other")), "{{token}} stays");
	free(v);
	assert_string_equal((v = header_value(m, "Content-Type")), "multipart/alternative; boundary=\"b1\"");
	free(v);
	assert_int_equal(count_header(m, "Content-Type"), 1);
	assert_int_equal(count_header(m, "MIME-Version"), 1);
	/* the body: MIME structure intact, CRLF, token replaced, "." not stuffed */
	const char *body = strstr(m, "\r\n\r\n") + 4;
	assert_string_equal(body,
		"--b1\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"\r\n"
		"Code: 0123456789abcdef0123456789abcdef\r\n"
		".\r\n"
		"--b1\r\n"
		"Content-Type: text/html; charset=utf-8\r\n"
		"\r\n"
		"<p>0123456789abcdef0123456789abcdef</p>\r\n"
		"--b1--\r\n");
	free(m);
}

static void test_template_adds_missing(void **state)
{
	(void)state;
	const char *tpl = "X-Mailer: test\n\nhello {{token}}";   /* no From, no Subject, no final LF */
	char *hdrs[] = { "X-Campaign: otp" };
	struct message_params mp = { .from = "probe@relay.example", .to = "seed@example.net",
	                             .token = TOK32, .subject_prefix = "Code", .now = 1700000000,
	                             .template_text = tpl, .headers = hdrs, .nheaders = 1 };
	size_t len;
	char *e = NULL;
	char *m = message_build(&mp, &len, &e);
	assert_non_null(m);
	assert_wire_format(m, len);
	char *v;
	assert_string_equal((v = header_value(m, "From")), "probe@relay.example");
	free(v);
	assert_string_equal((v = header_value(m, "Subject")), "Code 0123456789abcdef0123456789abcdef");
	free(v);
	assert_string_equal((v = header_value(m, "X-Campaign")), "otp");
	free(v);
	assert_string_equal(strstr(m, "\r\n\r\n") + 4, "hello 0123456789abcdef0123456789abcdef\r\n");
	free(m);
}

static void test_template_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *needle;
	} bad[] = {
		{ "Subject: x\nno blank line follows\n", "line 2: not a header field" },
		{ "Subject: x\nFrom: y\n", "no blank line" },
		{ "\nbody only\n", "no header fields" },
		{ " folded: first\n\nbody\n", "line 1: continuation" },
		{ "From someone@example Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n", "line 1: not a header" },
		{ "", "no blank line" },
		/* issue 12 section 4: control bytes in a header (ESC, BEL, DEL, a
		 * form feed in a continuation line); the body may hold them */
		{ "Subject: a\x1b[31mred\n\nbody\n", "line 1: the header holds a control character (0x1B)" },
		{ "X-A: \x07\n\nbody\n", "(0x07)" },
		{ "Subject: x\nX-B: y\x7f\n\nbody\n", "line 2: the header holds a control character (0x7F)" },
		{ "Subject: x\n \x0c folded\n\nbody\n", "line 2: the header holds a control character (0x0C)" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *e = NULL;
		assert_int_equal(message_template_check(bad[i].text, strlen(bad[i].text), &e), -1);
		assert_non_null(e);
		if (strstr(e, bad[i].needle) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e, bad[i].needle);
		free(e);
		struct message_params mp = { .from = "a@b.example", .to = "c@d.example", .token = TOK32,
		                             .template_text = bad[i].text };
		size_t len = 99;
		e = NULL;
		assert_null(message_build(&mp, &len, &e));
		assert_non_null(e);
		free(e);
	}
	/* a tab in a header and control bytes in the body are fine */
	{
		char *e2 = NULL;
		assert_int_equal(message_template_check("Subject:\tx\n\nbell \x07\n", 19, &e2), 0);
		free(e2);
	}
	/* NUL byte */
	char *e = NULL;
	assert_int_equal(message_template_check("Subject: a\n\n\0x", 15, &e), -1);
	assert_non_null(strstr(e, "NUL"));
	free(e);
	/* a body line that would exceed 998 octets */
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "Subject: x\n\n");
	for (int i = 0; i < 990; i++)
		strbuf_adds(&sb, "a");
	strbuf_adds(&sb, "{{token}}\n");
	e = NULL;
	assert_int_equal(message_template_check(sb.buf, sb.len, &e), -1);
	assert_non_null(strstr(e, "998"));
	free(e);
	strbuf_free(&sb);
	/* header injection through the parameters is refused */
	struct message_params inj = { .from = "a@b.example", .to = "c@d.example\r\nBcc: x@y.example",
	                              .token = TOK32, .subject_prefix = "p" };
	size_t ilen;
	e = NULL;
	assert_null(message_build(&inj, &ilen, &e));
	assert_non_null(e);
	free(e);
	inj.to = "c@d.example";
	inj.subject_prefix = "p\r\nBcc: x@y.example";
	e = NULL;
	assert_null(message_build(&inj, &ilen, &e));
	free(e);
	/* bare CR and CRLF mixtures are normalised */
	const char *tpl = "Subject: {{token}}\r\rbody\rmore\r\n";
	assert_int_equal(message_template_check(tpl, strlen(tpl), &e), 0);
}

/* Decode a header value made of RFC 2047 "B" encoded-words (UTF-8) and
 * plain words; whitespace between adjacent encoded-words is dropped
 * (RFC 2047 6.2). Heap result. */
static char *decode_ew(const char *v)
{
	struct strbuf sb = STRBUF_INIT;
	int prev_ew = 0;
	const char *p = v;
	while (*p) {
		size_t ws = strspn(p, " \t");
		const char *w = p + ws;
		size_t wl = strcspn(w, " \t");
		if (wl == 0)
			break;
		int ew = wl > 12 && strncmp(w, "=?UTF-8?B?", 10) == 0 && strncmp(w + wl - 2, "?=", 2) == 0;
		if (!(ew && prev_ew))
			strbuf_add(&sb, p, ws);
		if (ew) {
			const char *b = w + 10;
			size_t bl = wl - 12;
			unsigned char out[128];
			assert_true(bl % 4 == 0 && bl <= 160);
			int n = EVP_DecodeBlock(out, (const unsigned char *)b, (int)bl);
			assert_true(n >= 0);
			if (bl >= 1 && b[bl - 1] == '=')
				n--;
			if (bl >= 2 && b[bl - 2] == '=')
				n--;
			strbuf_add(&sb, out, (size_t)n);
		} else {
			strbuf_add(&sb, w, wl);
		}
		prev_ew = ew;
		p = w + wl;
	}
	return strbuf_detach(&sb);
}

/* 8-bit text in a template's header: Subject and display names are
 * RFC 2047-encoded, MIME-Version is added for a Content-Type. */
static void test_template_8bit_headers(void **state)
{
	(void)state;
	const char *tpl =
		"From: \"S\xc3\xa9" "curit\xc3\xa9 Bank\" <otp@bank.example>\n"
		"Reply-To: \xc3\x89quipe <help@bank.example>, plain@bank.example\n"
		"Subject: Votre code {{token}} \xe2\x80\x94\n"
		" s\xc3\xa9" "curis\xc3\xa9\n"
		"Comments: \xe2\x82\xac 5\n"
		"Content-Type: text/plain; charset=utf-8\n"
		"\n"
		"Code: {{token}} \xc3\xa9\n";
	char *e = NULL;
	if (message_template_check(tpl, strlen(tpl), &e) != 0)
		fail_msg("%s", e);
	struct message_params mp = { .from = "probe@relay.example", .to = "seed@example.net",
	                             .token = TOK32, .subject_prefix = "inboxprobe", .now = 1700000000,
	                             .template_text = tpl };
	size_t len;
	char *m = message_build(&mp, &len, &e);
	assert_non_null(m);
	assert_wire_format(m, len);
	/* no raw 8-bit byte left in the header */
	char *h = header_section(m);
	for (const char *q = h; *q; q++)
		if ((unsigned char)*q >= 0x80)
			fail_msg("8-bit byte in the header:\n%s", h);
	free(h);
	char *v, *d;
	assert_string_equal((v = header_value(m, "From")), "=?UTF-8?B?U8OpY3VyaXTDqSBCYW5r?= <otp@bank.example>");
	free(v);
	assert_string_equal((v = header_value(m, "Reply-To")),
	                    "=?UTF-8?B?w4lxdWlwZQ==?= <help@bank.example>, plain@bank.example");
	free(v);
	v = header_value(m, "Subject");
	d = decode_ew(v);
	assert_string_equal(d, "Votre code 0123456789abcdef0123456789abcdef \xe2\x80\x94 s\xc3\xa9" "curis\xc3\xa9");
	free(d);
	free(v);
	v = header_value(m, "Comments");
	d = decode_ew(v);
	assert_string_equal(d, "\xe2\x82\xac 5");
	free(d);
	free(v);
	assert_int_equal(count_header(m, "MIME-Version"), 1);
	assert_string_equal((v = header_value(m, "MIME-Version")), "1.0");
	free(v);
	/* the body is kept as written (8-bit, declared by the template) */
	assert_string_equal(strstr(m, "\r\n\r\n") + 4, "Code: 0123456789abcdef0123456789abcdef \xc3\xa9\r\n");
	free(m);

	/* no Content-Type: no MIME-Version added */
	const char *plain = "Subject: x\n\nbody\n";
	mp.template_text = plain;
	m = message_build(&mp, &len, &e);
	assert_non_null(m);
	assert_int_equal(count_header(m, "MIME-Version"), 0);
	free(m);
}

/* 8-bit text that cannot be encoded safely refuses the template. */
static void test_template_8bit_refused(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *needle;
	} bad[] = {
		{ "Subject: ok\nX-Note: caf\xc3\xa9\n\nbody\n", "line 2: the X-Note field holds raw non-ASCII (8-bit) text" },
		{ "Subject: caf\xe9\n\nbody\n", "line 1: the Subject field holds 8-bit bytes that are not UTF-8" },
		{ "From: s\xc3\xa9" "cu@bank.example\n\nbody\n", "line 1: the From field has non-ASCII text outside a display name" },
		{ "From: a@b.example (S\xc3\xa9" "curit\xc3\xa9)\n\nbody\n", "outside a display name" },
		{ "From: Bank <s\xc3\xa9" "cu@bank.example>\n\nbody\n", "outside a display name" },
		{ "Cc: Team: a\xc3\xa9@b.example;\n\nbody\n", "the Cc field has non-ASCII text" },
		{ "Subject: \xed\xa0\x80 surrogate\n\nbody\n", "not UTF-8" },
		{ "Subject: \xc0\xaf overlong\n\nbody\n", "not UTF-8" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *e = NULL;
		assert_int_equal(message_template_check(bad[i].text, strlen(bad[i].text), &e), -1);
		assert_non_null(e);
		if (strstr(e, bad[i].needle) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e, bad[i].needle);
		if (strstr(e, "RFC 2047") == NULL && strstr(e, "not UTF-8") == NULL)
			fail_msg("case %zu: \"%s\" does not say how to fix it", i, e);
		free(e);
	}
}

/* ---- proof before action (docs/SPEC.md "Finding the probe") ---- */

#define PTOK "0123456789abcdef0123456789abcdef"

static int prove(const char *hdrs, const char *token, const char *from)
{
	struct probe_proof pp = { .token = token, .from = from };
	return message_prove(hdrs, strlen(hdrs), &pp);
}

/* The probe as message_build() writes it proves itself; the same bytes
 * with LF line ends (what some servers return) too. */
static void test_prove_built_probe(void **state)
{
	(void)state;
	struct message_params p = {
		.from = "probe@sender.test", .to = "seed@gmail.test", .token = PTOK,
		.subject_prefix = "inboxprobe", .now = 1700000000,
	};
	size_t len = 0;
	char *err = NULL;
	char *m = message_build(&p, &len, &err);
	assert_non_null(m);
	struct probe_proof pp = { .token = PTOK, .from = "probe@sender.test" };
	assert_int_equal(message_prove(m, len, &pp), PROOF_OK);
	pp.from = "PROBE@Sender.Test";   /* ASCII case of the address ignored */
	assert_int_equal(message_prove(m, len, &pp), PROOF_OK);
	pp.from = "other@sender.test";
	assert_int_equal(message_prove(m, len, &pp), PROOF_FROM);
	pp.from = "probe@sender.test";
	pp.token = "fedcba9876543210fedcba9876543210";
	assert_int_equal(message_prove(m, len, &pp), PROOF_TOKEN_MISMATCH);
	free(m);
	/* only the fields IMAP returns for BODY.PEEK[HEADER.FIELDS (...)] */
	assert_int_equal(prove("X-Inboxprobe-Token: " PTOK "\nFrom: probe@sender.test\n\n", PTOK,
	                       "probe@sender.test"), PROOF_OK);
}

/* What users do with a probe: none of it proves anything. */
static void test_prove_user_mail(void **state)
{
	(void)state;
	const char *F = "probe@sender.test";
	/* a reply: Subject and References carry the token, no token field */
	assert_int_equal(prove("From: Alice <alice@gmail.test>\r\nTo: probe@sender.test\r\n"
	                       "Subject: Re: inboxprobe " PTOK "\r\n"
	                       "In-Reply-To: <" PTOK "@sender.test>\r\n"
	                       "References: <" PTOK "@sender.test>\r\n\r\n"
	                       "> X-Inboxprobe-Token: " PTOK "\r\n", PTOK, F), PROOF_NO_TOKEN);
	/* a forward with the original header quoted in the body (Gmail's
	 * "---------- Forwarded message ---------" layout) */
	assert_int_equal(prove("From: Alice <alice@gmail.test>\r\nSubject: Fwd: inboxprobe " PTOK "\r\n"
	                       "\r\n---------- Forwarded message ---------\r\n"
	                       "From: probe@sender.test\r\nX-Inboxprobe-Token: " PTOK "\r\n", PTOK, F),
	                 PROOF_NO_TOKEN);
	/* a client that copies X- fields into a reply: not our From */
	assert_int_equal(prove("From: alice@gmail.test\r\nX-Inboxprobe-Token: " PTOK "\r\n\r\n", PTOK, F),
	                 PROOF_FROM);
	/* a Reply-To or Sender of ours does not make it ours */
	assert_int_equal(prove("Sender: probe@sender.test\r\nReply-To: probe@sender.test\r\n"
	                       "From: alice@gmail.test\r\nX-Inboxprobe-Token: " PTOK "\r\n\r\n", PTOK, F),
	                 PROOF_FROM);
	/* no From at all */
	assert_int_equal(prove("X-Inboxprobe-Token: " PTOK "\r\n\r\n", PTOK, F), PROOF_FROM);
	/* the token quoted with more text, in another case, or as a prefix */
	assert_int_equal(prove("From: probe@sender.test\r\nX-Inboxprobe-Token: " PTOK " (quoted)\r\n\r\n",
	                       PTOK, F), PROOF_TOKEN_MISMATCH);
	assert_int_equal(prove("From: probe@sender.test\r\nX-Inboxprobe-Token: "
	                       "0123456789ABCDEF0123456789ABCDEF\r\n\r\n", PTOK, F), PROOF_TOKEN_MISMATCH);
	assert_int_equal(prove("From: probe@sender.test\r\nX-Inboxprobe-Token: 0123456789abcdef\r\n\r\n",
	                       PTOK, F), PROOF_TOKEN_MISMATCH);
	/* two token fields, or two From fields */
	assert_int_equal(prove("From: probe@sender.test\r\nX-Inboxprobe-Token: " PTOK "\r\n"
	                       "X-Inboxprobe-Token: " PTOK "\r\n\r\n", PTOK, F), PROOF_SEVERAL);
	assert_int_equal(prove("From: probe@sender.test\r\nFrom: alice@gmail.test\r\n"
	                       "X-Inboxprobe-Token: " PTOK "\r\n\r\n", PTOK, F), PROOF_SEVERAL);
	/* several mailboxes in From (RFC 5322 3.6.2 allows it): not one sender */
	assert_int_equal(prove("From: probe@sender.test, alice@gmail.test\r\n"
	                       "X-Inboxprobe-Token: " PTOK "\r\n\r\n", PTOK, F), PROOF_FROM);
	/* a folded token field unfolds to the token (RFC 5322 3.2.2) */
	assert_int_equal(prove("From: probe@sender.test\r\nX-Inboxprobe-Token:\r\n " PTOK "\r\n\r\n",
	                       PTOK, F), PROOF_OK);
	/* NULL or empty token, no From configured */
	assert_int_equal(prove("From: probe@sender.test\r\nX-Inboxprobe-Token: " PTOK "\r\n", "", F),
	                 PROOF_NO_TOKEN);
	assert_int_equal(prove("From: probe@sender.test\r\nX-Inboxprobe-Token: " PTOK "\r\n", PTOK, NULL),
	                 PROOF_FROM);
}

/* With secret_file the token's HMAC must verify for the seed. */
static void test_prove_hmac(void **state)
{
	(void)state;
	const unsigned char key[] = "0123456789abcdef0123456789abcdef-key";
	char tok[TOKEN_MAX], hdrs[512];
	char *err = NULL;

	assert_int_equal(token_generate(key, sizeof key - 1, "seed@gmail.test", tok, &err), 0);
	snprintf(hdrs, sizeof hdrs, "From: <probe@sender.test>\r\nX-Inboxprobe-Token: %s\r\n\r\n", tok);
	struct probe_proof pp = { .token = tok, .from = "probe@sender.test", .key = key,
	                          .keylen = sizeof key - 1, .seed = "seed@gmail.test" };
	assert_int_equal(message_prove(hdrs, strlen(hdrs), &pp), PROOF_OK);
	pp.seed = "other@gmail.test";   /* the HMAC covers the seed address */
	assert_int_equal(message_prove(hdrs, strlen(hdrs), &pp), PROOF_HMAC);
	pp.seed = "seed@gmail.test";
	pp.keylen = 8;                  /* another key */
	assert_int_equal(message_prove(hdrs, strlen(hdrs), &pp), PROOF_HMAC);
	/* a plain 32-digit token when a key is set does not verify */
	snprintf(hdrs, sizeof hdrs, "From: probe@sender.test\r\nX-Inboxprobe-Token: %s\r\n\r\n", PTOK);
	pp.token = PTOK;
	pp.keylen = sizeof key - 1;
	assert_int_equal(message_prove(hdrs, strlen(hdrs), &pp), PROOF_HMAC);
	assert_string_equal(message_proof_text(PROOF_HMAC), "the token's HMAC does not verify");
}

/* Key rotation: a token signed with an earlier key proves while that key
 * is listed in old_keys (previous_secret_files), and only then; new
 * tokens are signed with the current key, which proves them whatever the
 * old keys are. */
static void test_prove_hmac_rotation(void **state)
{
	(void)state;
	unsigned char oldk[] = "the-key-before-the-rotation-0001";
	unsigned char other[] = "an-unrelated-key-of-someone-else";
	const unsigned char newk[] = "the-key-after-the-rotation-00002";
	struct hmac_key olds[2] = { { other, sizeof other - 1 }, { oldk, sizeof oldk - 1 } };
	char tok_old[TOKEN_MAX], tok_new[TOKEN_MAX], hdrs[512];
	char *err = NULL;

	assert_int_equal(token_generate(oldk, sizeof oldk - 1, "seed@gmail.test", tok_old, &err), 0);
	assert_int_equal(token_generate(newk, sizeof newk - 1, "seed@gmail.test", tok_new, &err), 0);
	snprintf(hdrs, sizeof hdrs, "From: <probe@sender.test>\r\nX-Inboxprobe-Token: %s\r\n\r\n", tok_old);
	struct probe_proof pp = { .token = tok_old, .from = "probe@sender.test", .key = newk,
	                          .keylen = sizeof newk - 1, .seed = "seed@gmail.test" };
	assert_int_equal(message_prove(hdrs, strlen(hdrs), &pp), PROOF_HMAC);   /* rotated away */
	pp.old_keys = olds;
	pp.nold_keys = 1;                                                       /* not the right one */
	assert_int_equal(message_prove(hdrs, strlen(hdrs), &pp), PROOF_HMAC);
	pp.nold_keys = 2;
	assert_int_equal(message_prove(hdrs, strlen(hdrs), &pp), PROOF_OK);
	pp.seed = "other@gmail.test";   /* an old key still covers the seed address */
	assert_int_equal(message_prove(hdrs, strlen(hdrs), &pp), PROOF_HMAC);
	pp.seed = "seed@gmail.test";
	snprintf(hdrs, sizeof hdrs, "From: <probe@sender.test>\r\nX-Inboxprobe-Token: %s\r\n\r\n", tok_new);
	pp.token = tok_new;
	assert_int_equal(message_prove(hdrs, strlen(hdrs), &pp), PROOF_OK);
	/* the other fields are still required with an old key */
	snprintf(hdrs, sizeof hdrs, "From: <user@example.org>\r\nX-Inboxprobe-Token: %s\r\n\r\n", tok_old);
	pp.token = tok_old;
	assert_int_equal(message_prove(hdrs, strlen(hdrs), &pp), PROOF_FROM);
}

/* RFC 5322 appendix A addresses. */
static void test_address_of(void **state)
{
	(void)state;
	char a[256];
	assert_int_equal(message_address_of("\"Joe Q. Public\" <john.q.public@example.com>", a, sizeof a), 0);
	assert_string_equal(a, "john.q.public@example.com");                      /* A.1.2 */
	assert_int_equal(message_address_of("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
	                                    a, sizeof a), 0);
	assert_string_equal(a, "pete@silly.test");                                 /* A.5 */
	assert_int_equal(message_address_of("jdoe@one.test", a, sizeof a), 0);     /* A.1.1 */
	assert_string_equal(a, "jdoe@one.test");
	assert_int_equal(message_address_of("\"Probe, Team\" <probe@sender.test>", a, sizeof a), 0);
	assert_string_equal(a, "probe@sender.test");
	assert_int_equal(message_address_of("=?UTF-8?B?w4lxdWlwZQ==?= <probe@sender.test>", a, sizeof a), 0);
	assert_string_equal(a, "probe@sender.test");
	assert_int_equal(message_address_of("Mary Smith <mary@x.test>, jdoe@example.org", a, sizeof a), -1);
	assert_int_equal(message_address_of("A Group:Ed Jones <c@a.test>;", a, sizeof a), -1);  /* no single mailbox */
	assert_int_equal(message_address_of("<probe@sender.test", a, sizeof a), -1);
	assert_int_equal(message_address_of("\"unterminated <probe@sender.test>", a, sizeof a), -1);
	assert_int_equal(message_address_of("no address here", a, sizeof a), -1);
	assert_int_equal(message_address_of("probe@sender.test", a, 5), -1);
}

/* The From a probe carries: a template's From wins over relay.from. */
static void test_probe_from(void **state)
{
	(void)state;
	char *f = message_probe_from(NULL, "probe@sender.test");
	assert_string_equal(f, "probe@sender.test");
	free(f);
	f = message_probe_from("From: Acme Security <no-reply@acme.test>\nSubject: code {{token}}\n\nbody\n",
	                       "probe@sender.test");
	assert_string_equal(f, "no-reply@acme.test");
	free(f);
	f = message_probe_from("Subject: code {{token}}\n\nbody\n", "probe@sender.test");
	assert_string_equal(f, "probe@sender.test");
	free(f);
	assert_null(message_probe_from(NULL, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_shape),
		cmocka_unit_test(test_hmac_rfc4231_case2),
		cmocka_unit_test(test_token_hmac_independent),
		cmocka_unit_test(test_token_verify),
		cmocka_unit_test(test_date_kolkata),
		cmocka_unit_test(test_message_basic),
		cmocka_unit_test(test_subject_rfc2047),
		cmocka_unit_test(test_long_header_folded),
		cmocka_unit_test(test_template_multipart),
		cmocka_unit_test(test_template_adds_missing),
		cmocka_unit_test(test_template_errors),
		cmocka_unit_test(test_template_8bit_headers),
		cmocka_unit_test(test_template_8bit_refused),
		cmocka_unit_test(test_prove_built_probe),
		cmocka_unit_test(test_prove_user_mail),
		cmocka_unit_test(test_prove_hmac),
		cmocka_unit_test(test_prove_hmac_rotation),
		cmocka_unit_test(test_address_of),
		cmocka_unit_test(test_probe_from),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
