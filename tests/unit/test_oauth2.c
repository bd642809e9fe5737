/*
 * test_oauth2.c - the JWT bearer assertion (RFC 7523) byte-exact against
 * one signed by an independent implementation (python3-cryptography, see
 * tests/data/oauth2/README) with the same test key, and its signature
 * checked with the public key; base64url (RFC 4648 section 5); token
 * endpoint answers (RFC 6749 5.1/5.2, shapes Microsoft and Google send);
 * the http:// loopback rule; oauth2 blocks in configurations (one source,
 * {username}, modes of secret files).
 */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/util.h"
#include "prober/oauth2.h"
#include "prober/sasl.h"
#include "seeds/config.h"
#include "seeds/oauth2_conf.h"

#define KEY SRCDIR "/tests/data/oauth2/test-sa-key.pem"
#define JWT SRCDIR "/tests/data/oauth2/test-sa-jwt.txt"

static char *slurp(const char *path)
{
	char *e = NULL, *t = read_file_capped(path, 0, NULL, &e);
	assert_non_null(t);
	return t;
}

/* base64url text back to bytes (via the standard alphabet). */
static unsigned char *unb64url(const char *s, size_t n, size_t *len)
{
	char *t = xstrndup(s, n);
	for (char *p = t; *p; p++)
		*p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
	unsigned char *d = sasl_unbase64(t, len);
	free(t);
	return d;
}

static void test_jwt(void **state)
{
	(void)state;
	char *pem = slurp(KEY), *want = slurp(JWT), *jwt = NULL, *e = NULL;
	want[strcspn(want, "\n")] = '\0';
	assert_int_equal(oauth2_jwt_assertion("prober@example-project.iam.gserviceaccount.com", pem,
	                                      "seed@example.com", "https://mail.google.com/",
	                                      "https://oauth2.googleapis.com/token", 1700000000L,
	                                      &jwt, &e), 0);
	/* RS256 (PKCS#1 v1.5) is deterministic: byte-exact with the other implementation */
	assert_string_equal(jwt, want);

	/* header and claims as RFC 7523 2.1 wants them */
	char *dot1 = strchr(jwt, '.'), *dot2 = strrchr(jwt, '.');
	size_t hl, cl, sl;
	unsigned char *h = unb64url(jwt, (size_t)(dot1 - jwt), &hl);
	unsigned char *c = unb64url(dot1 + 1, (size_t)(dot2 - dot1 - 1), &cl);
	unsigned char *sig = unb64url(dot2 + 1, strlen(dot2 + 1), &sl);
	assert_string_equal((char *)h, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
	assert_string_equal((char *)c, "{\"aud\":\"https://oauth2.googleapis.com/token\",\"exp\":1700003600,"
	                               "\"iat\":1700000000,\"iss\":\"prober@example-project.iam."
	                               "gserviceaccount.com\",\"scope\":\"https://mail.google.com/\","
	                               "\"sub\":\"seed@example.com\"}");
	assert_int_equal(sl, 256);   /* RSA 2048 */

	/* the signature verifies with the public key over "header.claims" */
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_non_null(key);
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
	assert_int_equal(EVP_DigestVerify(md, sig, sl, (unsigned char *)jwt, (size_t)(dot2 - jwt)), 1);
	EVP_MD_CTX_free(md);
	/* one changed byte of the claims: no longer verifies */
	md = EVP_MD_CTX_new();
	jwt[dot1 - jwt + 3] ^= 1;
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
	assert_int_not_equal(EVP_DigestVerify(md, sig, sl, (unsigned char *)jwt, (size_t)(dot2 - jwt)), 1);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	BIO_free(bio);

	/* no subject: no sub claim; a key that is not RSA PEM: an error, no crash */
	free(jwt);
	assert_int_equal(oauth2_jwt_assertion("a@b", pem, NULL, "s", "https://x/token", 1, &jwt, &e), 0);
	dot1 = strchr(jwt, '.');
	dot2 = strrchr(jwt, '.');
	free(c);
	c = unb64url(dot1 + 1, (size_t)(dot2 - dot1 - 1), &cl);
	assert_null(strstr((char *)c, "\"sub\""));
	free(jwt);
	jwt = NULL;
	assert_int_equal(oauth2_jwt_assertion("a@b", "placeholder", NULL, "s", "u", 1, &jwt, &e), -1);
	assert_non_null(strstr(e, "not an RSA key"));
	free(e);
	free(h);
	free(c);
	free(sig);
	free(pem);
	free(want);
}

static void test_base64url(void **state)
{
	(void)state;
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
	for (size_t i = 0; i < 7; i++) {
		char *e = oauth2_base64url(plain[i], strlen(plain[i]));
		assert_string_equal(e, enc[i]);
		free(e);
	}
	unsigned char b[] = { 0xfb, 0xff, 0xbf };
	char *e = oauth2_base64url(b, 3);
	assert_string_equal(e, "-_-_");
	free(e);
}

/* parse TEXT as the answer of HTTP status st */
static int answer(long st, const char *text, char **tok, long *exp, char **rt, char **err)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	int r = oauth2_parse_token_answer("seeds[0].imap.oauth2", "https://login.example/token", st, j,
	                                  tok, exp, rt, err);
	json_decref(j);
	return r;
}

static void test_token_answers(void **state)
{
	(void)state;
	char *tok, *rt, *err = NULL;
	long exp;
	/* RFC 6749 5.1 example, plus a rotated refresh token */
	assert_int_equal(answer(200, "{\"access_token\":\"2YotnFZFEjr1zCsicMWpAA\",\"token_type\":"
	                        "\"example\",\"expires_in\":3599,\"refresh_token\":"
	                        "\"tGzv3JOkF0XG5Qx2TlKWIA\"}", &tok, &exp, &rt, &err), OAUTH2_OK);
	assert_string_equal(tok, "2YotnFZFEjr1zCsicMWpAA");
	assert_string_equal(rt, "tGzv3JOkF0XG5Qx2TlKWIA");
	assert_int_equal(exp, 3599);
	free(tok);
	free(rt);
	/* Google's client credentials / JWT answers carry no refresh token */
	assert_int_equal(answer(200, "{\"access_token\":\"ya29.x\",\"expires_in\":3599,\"token_type\":\"Bearer\"}",
	                        &tok, &exp, &rt, &err), OAUTH2_OK);
	assert_null(rt);
	free(tok);
	/* Microsoft: expired refresh token (AADSTS700082) */
	assert_int_equal(answer(400, "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS700082: "
	                        "The refresh token has expired due to inactivity.\"}", &tok, &exp, &rt, &err),
	                 OAUTH2_EGRANT);
	assert_non_null(strstr(err, "refused: invalid_grant (the refresh token or grant expired or was "
	                            "revoked: consent again"));
	assert_non_null(strstr(err, "AADSTS700082"));
	assert_non_null(strstr(err, "seeds[0].imap.oauth2: token endpoint https://login.example/token"));
	free(err);
	assert_int_equal(answer(401, "{\"error\":\"invalid_client\"}", &tok, &exp, &rt, &err), OAUTH2_ECLIENT);
	free(err);
	assert_int_equal(answer(400, "{\"error\":\"unauthorized_client\"}", &tok, &exp, &rt, &err), OAUTH2_ECLIENT);
	free(err);
	assert_int_equal(answer(400, "{\"error\":\"invalid_scope\",\"error_description\":\"AADSTS70011\"}",
	                        &tok, &exp, &rt, &err), OAUTH2_ESCOPE);
	free(err);
	/* control characters of the server are not echoed */
	assert_int_equal(answer(400, "{\"error\":\"bad\\u0007thing\"}", &tok, &exp, &rt, &err), OAUTH2_EPROTO);
	assert_non_null(strstr(err, "bad?thing"));
	free(err);
	/* a token that cannot be one: a control byte would end an XOAUTH2 field
	 * ("auth=Bearer T\x01\x01", RFC 7628), a space or
	 * 8-bit byte is not VSCHAR (RFC 6749 A.12); found by tests/fuzz/fuzz_oauth2 */
	static const char *const bad_tokens[] = {
		"{\"access_token\":\"abc\\u0001user=x\",\"expires_in\":1}",
		"{\"access_token\":\"two words\"}",
		"{\"access_token\":\"caf\\u00e9\"}",
		"{\"access_token\":\"\"}",
	};
	for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); i++) {
		tok = NULL;
		assert_int_equal(answer(200, bad_tokens[i], &tok, &exp, &rt, &err), OAUTH2_EPROTO);
		assert_null(tok);
		assert_non_null(strstr(err, "answered an access_token that cannot be a token"));
		free(err);
	}
	/* a refresh token with a line break is not taken (the file is read by line) */
	assert_int_equal(answer(200, "{\"access_token\":\"ya29.ok\",\"refresh_token\":\"1//a\\nb\"}",
	                        &tok, &exp, &rt, &err), OAUTH2_OK);
	assert_string_equal(tok, "ya29.ok");
	assert_null(rt);
	free(tok);
	/* 200 without access_token; not an object */
	assert_int_equal(answer(200, "{\"token_type\":\"Bearer\"}", &tok, &exp, &rt, &err), OAUTH2_EPROTO);
	free(err);
	assert_int_equal(oauth2_parse_token_answer("w", "u", 200, NULL, &tok, &exp, &rt, &err), OAUTH2_EPROTO);
	free(err);
}

static void test_url_rule(void **state)
{
	(void)state;
	assert_true(oauth2_url_allowed("https://login.microsoftonline.com/consumers/oauth2/v2.0/token"));
	assert_true(oauth2_url_allowed("http://127.0.0.1:8080/token"));
	assert_true(oauth2_url_allowed("http://localhost/token"));
	assert_true(oauth2_url_allowed("http://[::1]:99/token"));
	assert_false(oauth2_url_allowed("http://127.0.0.1.evil.test/token"));
	assert_false(oauth2_url_allowed("http://login.example/token"));
	assert_false(oauth2_url_allowed("http://localhost.evil.test/token"));
	assert_false(oauth2_url_allowed("ftp://127.0.0.1/token"));
	assert_false(oauth2_url_allowed("https:///token"));
}

/* ---------- configurations ---------- */

static char dir[256];

static char *put(const char *name, const char *text, mode_t mode)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(p, mode);
	return p;
}

/* Load a configuration whose imap_defaults/seeds are BODY. */
static int load(const char *body, struct config **cfg, char **err)
{
	char *text = xasprintf("relay = { url = \"smtp://127.0.0.1:25\"; tls = \"none\"; from = \"p@x.test\"; };\n%s",
	                       body);
	char *p = put("c.conf", text, 0644);
	int r = config_load(p, cfg, err);
	free(text);
	free(p);
	return r;
}

static void test_config_blocks(void **state)
{
	(void)state;
	struct config *cfg = NULL;
	char *err = NULL, *body;
	snprintf(dir, sizeof dir, "%s/inboxprobe-oauth2-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(dir));
	free(put("secret", "s3cret\n", 0600));
	free(put("rt-a@x.test", "rt-a\n", 0600));
	free(put("rt-b@x.test", "rt-b\n", 0644));

	/* {username} per seed, inherited from imap_defaults; a group-readable
	 * refresh token file is refused with its mode and setting */
	body = xasprintf("imap_defaults = { url = \"imaps://imap.x.test\"; auth_mechanism = \"xoauth2\";\n"
	                 " oauth2 = { token_url = \"https://login.x.test/token\"; client_id = \"c\";\n"
	                 "  client_secret_file = \"%s/secret\"; refresh_token_file = \"%s/rt-{username}\"; }; };\n"
	                 "seeds = ( { address = \"a@x.test\"; provider = \"x\"; },\n"
	                 "          { address = \"b@x.test\"; provider = \"x\"; } );\n", dir, dir);
	assert_int_equal(load(body, &cfg, &err), -1);
	assert_non_null(strstr(err, "seeds[1].imap.oauth2.refresh_token_file: "));
	assert_non_null(strstr(err, "rt-b@x.test is readable by group or others (mode 0644)"));
	assert_null(strstr(err, "rt-a@x.test"));
	free(err);
	char *rtb = xasprintf("%s/rt-b@x.test", dir);
	chmod(rtb, 0600);
	free(rtb);
	assert_int_equal(load(body, &cfg, &err), 0);
	assert_non_null(cfg->seeds[0].imap.oauth2);
	assert_null(cfg->seeds[0].imap.password);
	assert_int_equal(cfg->seeds[0].imap.auth_mechanism, SASL_MECH_XOAUTH2);
	assert_int_equal(cfg->seeds[1].imap.oauth2->source, OAUTH2_SRC_REFRESH);
	char *want = xasprintf("%s/rt-b@x.test", dir);
	assert_string_equal(cfg->seeds[1].imap.oauth2->refresh_token_file, want);
	assert_string_equal(cfg->seeds[1].imap.oauth2->client_secret, "s3cret");
	assert_string_not_equal(cfg->seeds[0].imap.oauth2->key, cfg->seeds[1].imap.oauth2->key);
	free(want);
	config_free(cfg);
	free(body);

	/* two sources; http:// to a non-loopback host; password and oauth2 together */
	body = xasprintf("seeds = ( { address = \"a@x.test\"; provider = \"x\"; imap = {\n"
	                 " url = \"imaps://imap.x.test\"; password = \"p\";\n"
	                 " oauth2 = { token_command = \"t\"; token_url = \"http://login.x.test/token\";\n"
	                 "  client_id = \"c\"; refresh_token_file = \"%s/rt-a@x.test\"; bogus = 1; }; }; } );\n", dir);
	assert_int_equal(load(body, &cfg, &err), -1);
	assert_non_null(strstr(err, "seeds[0].imap: set either a password or oauth2, not both"));
	assert_non_null(strstr(err, "seeds[0].imap.oauth2: set exactly one token source"));
	assert_non_null(strstr(err, "seeds[0].imap.oauth2.token_url must be https:// (http:// only to a loopback host)"));
	assert_non_null(strstr(err, "unknown setting 'bogus' in seeds[0].imap.oauth2"));
	free(err);
	free(body);

	/* client credentials need a secret; an unknown mechanism */
	assert_int_equal(load("seeds = ( { address = \"a@x.test\"; provider = \"x\"; imap = {\n"
	                      " url = \"imaps://imap.x.test\"; auth_mechanism = \"plain\";\n"
	                      " oauth2 = { token_url = \"https://l.x.test/t\"; client_id = \"c\"; }; }; } );\n",
	                      &cfg, &err), -1);
	assert_non_null(strstr(err, "client credentials need client_secret_file"));
	assert_non_null(strstr(err, "auth_mechanism must be \"xoauth2\" or \"oauthbearer\""));
	free(err);

	/* client credentials in imap_defaults: every seed draws from one source
	 * (equal keys), so one token serves them all */
	body = xasprintf("imap_defaults = { url = \"imaps://outlook.office365.com\";\n"
	                 " oauth2 = { token_url = \"https://login.x.test/t\"; client_id = \"app\";\n"
	                 "  client_secret_file = \"%s/secret\"; scope = \"https://outlook.office365.com/.default\"; }; };\n"
	                 "seeds = ( { address = \"a@x.test\"; provider = \"x\"; },\n"
	                 "          { address = \"b@x.test\"; provider = \"x\"; } );\n", dir);
	assert_int_equal(load(body, &cfg, &err), 0);
	assert_int_equal(cfg->seeds[0].imap.oauth2->source, OAUTH2_SRC_CLIENT_CREDENTIALS);
	assert_string_equal(cfg->seeds[0].imap.oauth2->key, cfg->seeds[1].imap.oauth2->key);
	assert_string_equal(cfg->seeds[1].imap.username, "b@x.test");
	config_free(cfg);
	free(body);

	/* token_command alone, with its timeout */
	assert_int_equal(load("seeds = ( { address = \"a@x.test\"; provider = \"x\"; imap = {\n"
	                      " url = \"imaps://imap.x.test\";\n"
	                      " oauth2 = { token_command = \"pass show mail\"; command_timeout = 5; }; }; } );\n",
	                      &cfg, &err), 0);
	assert_int_equal(cfg->seeds[0].imap.oauth2->source, OAUTH2_SRC_COMMAND);
	assert_int_equal(cfg->seeds[0].imap.oauth2->command_timeout, 5);
	assert_int_equal(cfg->seeds[0].imap.auth_mechanism, SASL_MECH_AUTO);
	config_free(cfg);

	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jwt),
		cmocka_unit_test(test_base64url),
		cmocka_unit_test(test_token_answers),
		cmocka_unit_test(test_url_rule),
		cmocka_unit_test(test_config_blocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
