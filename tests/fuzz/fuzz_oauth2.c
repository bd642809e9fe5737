/*
 * fuzz_oauth2.c - a token endpoint's answer (RFC 6749 §5.1/§5.2, JSON) as
 * oauth2_parse_token_answer classifies it. The first byte picks the HTTP
 * status (200, 400, 401 or 500), the rest is the body. Invariants: an
 * accepted access or refresh token is visible ASCII only (it goes into
 * the XOAUTH2/OAUTHBEARER initial response, RFC 7628, where a control
 * byte would end a field, and into files); expires_in is positive; a
 * refusal has a message without control characters that never echoes the
 * answer's access_token or refresh_token (marked with "S3CR3T" in the seeds).
 */
#include <config.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "prober/oauth2.h"
#include "tests/fuzz/fuzz.h"

static void check_secret(const char *what, const char *s)
{
	FUZZ_CHECK(*s != '\0', "empty %s accepted", what);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		FUZZ_CHECK(*p > 0x20 && *p < 0x7f, "%s with byte 0x%02x accepted", what, *p);
}

/* A secret is recognised by a marker no message of ours contains (a plain
 * substring test would match the message's own words, "access_token"). */
#define SECRET_MARK "S3CR3T"

static int marked(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) && strstr(json_string_value(v), SECRET_MARK) != NULL;
}

/* The server's own error and error_description are shown; a marker there
 * proves nothing. */
static void check_not_echoed(const char *err, json_t *o, const char *key)
{
	if (marked(o, key) && !marked(o, "error") && !marked(o, "error_description"))
		FUZZ_CHECK(strstr(err, SECRET_MARK) == NULL, "the message echoes %s", key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = { 200, 400, 401, 500 };
	char *token = NULL, *refresh = NULL, *err = NULL;
	long expires = 0, status;
	json_error_t je;
	json_t *o;
	int r;

	if (size == 0)
		return 0;
	status = statuses[data[0] % 4];
	o = json_loadb((const char *)data + 1, size - 1, 0, &je);
	r = oauth2_parse_token_answer("fuzz.oauth2", "https://login.example/token", status, o,
	                              &token, &expires, &refresh, &err);
	if (r == 0) {
		FUZZ_CHECK(token != NULL, "OK without a token");
		check_secret("access_token", token);
		if (refresh != NULL)
			check_secret("refresh_token", refresh);
		FUZZ_CHECK(expires > 0, "expires_in %ld", expires);
	} else {
		FUZZ_CHECK(token == NULL && refresh == NULL, "a refusal left a token");
		FUZZ_CHECK(err != NULL, "a refusal without a message");
		for (const unsigned char *p = (const unsigned char *)err; *p; p++)
			FUZZ_CHECK(*p >= 0x20 && *p != 0x7f, "control byte 0x%02x in the message", *p);
		if (o != NULL) {
			check_not_echoed(err, o, "access_token");
			check_not_echoed(err, o, "refresh_token");
		}
	}
	free(token);
	free(refresh);
	free(err);
	json_decref(o);
	return 0;
}
