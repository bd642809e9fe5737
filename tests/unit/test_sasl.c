/*
 * test_sasl.c - XOAUTH2 and OAUTHBEARER initial responses byte-exact
 * against the published examples (Google's "OAuth 2.0 Mechanism" page for
 * XOAUTH2; RFC 7628 section 4.1 for OAUTHBEARER), saslname escaping
 * (RFC 5801), challenge decoding for the shapes Gmail, Dovecot and RFC
 * 7628 section 4.3 send, base64 round trips and mechanism choice.
 */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "prober/sasl.h"

/* developers.google.com/gmail/imap/xoauth2-protocol, "Initial client response" */
static void test_xoauth2_google_example(void **state)
{
	(void)state;
	char *r = sasl_xoauth2_initial("someuser@example.com",
	                               "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
	assert_string_equal(r, "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRx"
	                       "bVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==");
	free(r);
}

/* RFC 7628 4.1: "Successful Bearer Token Exchange" (IMAP, port 143) */
static void test_oauthbearer_rfc7628(void **state)
{
	(void)state;
	char *r = sasl_oauthbearer_initial("user@example.com", "server.example.com", 143,
	                                   "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
	assert_string_equal(r, "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9"
	                       "MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZ"
	                       "Mjl0Q2c9PQEB");
	free(r);
}

/* RFC 5801 saslname: ',' -> =2C, '=' -> =3D; no port pair when port <= 0 */
static void test_oauthbearer_saslname(void **state)
{
	(void)state;
	size_t len;
	char *r = sasl_oauthbearer_initial("a,b=c@x", "h", 0, "T");
	unsigned char *d = sasl_unbase64(r, &len);
	assert_non_null(d);
	assert_int_equal(len, strlen("n,a=a=2Cb=3Dc@x,\001host=h\001auth=Bearer T\001\001"));
	assert_memory_equal(d, "n,a=a=2Cb=3Dc@x,\001host=h\001auth=Bearer T\001\001", len);
	free(d);
	free(r);
}

static void test_base64(void **state)
{
	(void)state;
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	for (size_t i = 0; i < 7; i++) {   /* RFC 4648 section 10 test vectors */
		size_t len;
		char *e = sasl_base64(plain[i], strlen(plain[i]));
		unsigned char *d = sasl_unbase64(enc[i], &len);
		assert_string_equal(e, enc[i]);
		assert_non_null(d);
		assert_int_equal(len, strlen(plain[i]));
		assert_memory_equal(d, plain[i], len);
		free(e);
		free(d);
	}
	size_t len;
	assert_null(sasl_unbase64("Zm9v!", &len));
	assert_null(sasl_unbase64("Z", &len));
	assert_null(sasl_unbase64("Zg===", &len));
}

static void check_challenge(const char *json, const char *want)
{
	char out[240];
	char *b = sasl_base64(json, strlen(json));
	sasl_describe_challenge(b, out, sizeof out);
	assert_string_equal(out, want);
	free(b);
}

static void test_challenges(void **state)
{
	(void)state;
	/* Gmail's XOAUTH2 error challenge (Google's XOAUTH2 page, "Error response") */
	check_challenge("{\"status\":\"401\",\"schemes\":\"bearer mac\",\"scope\":\"https://mail.google.com/\"}",
	                "status \"401\", schemes \"bearer mac\", scope \"https://mail.google.com/\"");
	/* Dovecot 2.3 auth/mech-xoauth2.c for a refused token */
	check_challenge("{\"status\":\"401\",\"schemes\":\"bearer\",\"scope\":\"mail\"}",
	                "status \"401\", schemes \"bearer\", scope \"mail\"");
	/* Dovecot 2.3 auth/mech-oauth2.c (OAUTHBEARER) */
	check_challenge("{\"status\":\"invalid_token\"}", "status \"invalid_token\"");
	/* RFC 7628 4.3, "Failed Exchange" */
	char out[240];
	sasl_describe_challenge("eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3Bl"
	                        "bmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29w"
	                        "ZW5pZC1jb25maWd1cmF0aW9uIn0=", out, sizeof out);
	assert_string_equal(out, "status \"invalid_token\", scope \"example_scope\"");
	/* not JSON: shown as printable text; control bytes replaced */
	check_challenge("plain words\001", "plain words?");
	/* not base64 */
	sasl_describe_challenge("%%%", out, sizeof out);
	assert_string_equal(out, "not base64: %%%");
	sasl_describe_challenge("", out, sizeof out);
	assert_string_equal(out, "");
	/* capped: a huge server string never overruns */
	char big[2000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	char small[16];
	char *b = sasl_base64(big, strlen(big));
	sasl_describe_challenge(b, small, sizeof small);
	assert_int_equal(strlen(small), sizeof small - 1);
	free(b);
}

static void test_choose(void **state)
{
	(void)state;
	assert_int_equal(sasl_choose(SASL_MECH_AUTO, 1, 1), SASL_MECH_OAUTHBEARER);
	assert_int_equal(sasl_choose(SASL_MECH_AUTO, 1, 0), SASL_MECH_XOAUTH2);   /* Microsoft */
	assert_int_equal(sasl_choose(SASL_MECH_AUTO, 0, 0), SASL_MECH_AUTO);
	assert_int_equal(sasl_choose(SASL_MECH_XOAUTH2, 1, 1), SASL_MECH_XOAUTH2);
	assert_int_equal(sasl_choose(SASL_MECH_OAUTHBEARER, 1, 0), SASL_MECH_AUTO);
	assert_string_equal(sasl_mech_name(SASL_MECH_XOAUTH2), "XOAUTH2");
	assert_string_equal(sasl_mech_name(SASL_MECH_OAUTHBEARER), "OAUTHBEARER");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xoauth2_google_example),
		cmocka_unit_test(test_oauthbearer_rfc7628),
		cmocka_unit_test(test_oauthbearer_saslname),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_challenges),
		cmocka_unit_test(test_choose),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
