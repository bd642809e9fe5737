/*
 * fuzz_message.c - the probe message from outside text: a template file
 * (RFC 5322, message_template_check then message_build) and a subject
 * prefix / extra header value (RFC 2047 encoded-words). The first byte
 * picks the mode (even: template; odd: header text), the rest is the text.
 * Invariants of a built message: CRLF line ends only, no line over 998
 * octets, no NUL, exactly one X-Inboxprobe-Token field with the token
 * in the header;
 * a template that message_template_check() accepts always builds.
 */
#include <config.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "prober/message.h"
#include "tests/fuzz/fuzz.h"

#define TOKEN "0123456789abcdef0123456789abcdef"

static void check_message(const char *m, size_t len)
{
	size_t line = 0, ntoken = 0;

	FUZZ_CHECK(memchr(m, '\0', len) == NULL, "NUL in the message");
	for (size_t i = 0; i < len; i++) {
		if (m[i] == '\n') {
			FUZZ_CHECK(i > 0 && m[i - 1] == '\r', "bare LF at %zu", i);
			line = 0;
			continue;
		}
		if (m[i] == '\r')
			FUZZ_CHECK(i + 1 < len && m[i + 1] == '\n', "bare CR at %zu", i);
		else
			FUZZ_CHECK(++line <= 998, "line over 998 octets at %zu", i);
	}
	/* In the header section; the body may quote anything. */
	const char *body = memmem(m, len, "\r\n\r\n", 4);
	size_t hlen = body != NULL ? (size_t)(body - m) + 2 : len;
	const char *h = "\r\nX-Inboxprobe-Token: " TOKEN "\r\n";
	for (const char *p = m; (p = memmem(p, hlen - (size_t)(p - m), h, strlen(h))) != NULL; p++)
		ntoken++;
	FUZZ_CHECK(ntoken == 1, "%zu X-Inboxprobe-Token fields", ntoken);
}

static void build_template(const char *text, size_t len)
{
	char *e = NULL, *m;
	size_t mlen = 0;

	if (message_template_check(text, len, &e) != 0) {
		FUZZ_CHECK(e != NULL && *e != '\0', "refused without a message");
		free(e);
		return;
	}
	struct message_params p = {
		.from = "probe@sender.example.test", .to = "seed@example.test",
		.token = TOKEN, .subject_prefix = "inboxprobe",
		.template_text = text, .now = 1764547200.0,
	};
	m = message_build(&p, &mlen, &e);
	FUZZ_CHECK(m != NULL, "a checked template does not build: %s", e ? e : "?");
	check_message(m, mlen);
	free(m);
}

static void build_header_text(const char *text)
{
	char *e = NULL, *m, *enc, *hdr;
	size_t mlen = 0;

	/* The configuration refuses non-UTF-8 and control bytes here. */
	if (!utf8_valid(text, strlen(text)))
		return;
	for (const unsigned char *q = (const unsigned char *)text; *q; q++)
		if (*q < 0x20 || *q == 0x7f)
			return;
	enc = rfc2047_encode(text);
	FUZZ_CHECK(enc != NULL, "rfc2047_encode failed");
	for (const unsigned char *q = (const unsigned char *)enc; *q; q++)
		FUZZ_CHECK(*q < 0x80, "8-bit byte in the encoded text");
	free(enc);

	hdr = xasprintf("X-Campaign: %s", text);
	char *const headers[] = { hdr };
	struct message_params p = {
		.from = "probe@sender.example.test", .to = "seed@example.test",
		.token = TOKEN, .subject_prefix = text, .headers = headers, .nheaders = 1,
		.now = 1764547200.0,
	};
	m = message_build(&p, &mlen, &e);
	if (m != NULL)
		check_message(m, mlen);
	free(m);
	free(e);
	free(hdr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	char *s = fuzz_cstr(data + 1, size - 1);
	if ((data[0] & 1) == 0)
		build_template(s, size - 1);
	else
		build_header_text(s);
	free(s);
	return 0;
}
