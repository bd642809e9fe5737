/*
 * oauth2.c - OAuth 2.0 token sources, cache, refresh and write-back.
 * See oauth2.h.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "common/util.h"
#include "prober/oauth2.h"

#define ANSWER_MAX (64 * 1024)     /* bytes of a token endpoint's answer */
#define TOKEN_MAX 16384            /* bytes of an access or refresh token */
#define STDERR_SHOWN 300           /* bytes of a token command's stderr quoted */
#define LOCK_WAIT 60.0             /* seconds to wait for another process's refresh */
#define HTTP_TIMEOUT 30L           /* seconds per token request */
#define EARLY 60.0                 /* seconds before expiry a token is renewed */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char *cache_dir;
static char *cache_dir_failed;   /* the directory that could not be created, until warned */

struct mem_token {
	char *key;
	char *token;
	double expires_at;          /* wall clock */
	double lifetime;            /* seconds it was issued for */
	struct mem_token *next;
};
static struct mem_token *mem;

const char *oauth2_err_name(int err)
{
	switch (err) {
	case OAUTH2_OK: return "ok";
	case OAUTH2_EUNREACHABLE: return "unreachable";
	case OAUTH2_EGRANT: return "invalid_grant";
	case OAUTH2_ECLIENT: return "invalid_client";
	case OAUTH2_ESCOPE: return "invalid_scope";
	case OAUTH2_ECOMMAND: return "token_command";
	case OAUTH2_EFILE: return "file";
	default: return "refused";
	}
}

static void wipe_free(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

static int fail(char **errstr, int code, char *msg)
{
	if (errstr)
		*errstr = msg;
	else
		free(msg);
	return code;
}

/* ---------- cache directory and files ---------- */

void oauth2_set_cache_dir(const char *state_path)
{
	const char *e;
	char *dir = NULL, *failed = NULL;

	if (state_path) {
		char *copy = xstrdup(state_path);
		dir = xstrdup(dirname(copy));
		free(copy);
	} else if ((e = getenv("STATE_DIRECTORY")) && *e) {
		dir = xstrndup(e, strcspn(e, ":"));
	} else if ((e = getenv("XDG_STATE_HOME")) && *e == '/') {
		dir = xasprintf("%s/inboxprobe", e);
	} else if ((e = getenv("HOME")) && *e == '/') {
		char *p = xasprintf("%s/.local", e);
		(void)mkdir(p, 0700);
		free(p);
		p = xasprintf("%s/.local/state", e);
		(void)mkdir(p, 0700);
		free(p);
		dir = xasprintf("%s/.local/state/inboxprobe", e);
	}
	if (dir && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		/* told at the first token, not here: a configuration without
		 * OAuth 2.0 has no use for the cache */
		failed = xasprintf("%s: %s", dir, strerror(errno));
		free(dir);
		dir = NULL;
	}
	pthread_mutex_lock(&mu);
	free(cache_dir);
	cache_dir = dir;
	free(cache_dir_failed);
	cache_dir_failed = failed;
	pthread_mutex_unlock(&mu);
}

/* DIR/oauth2-<first 16 bytes of SHA-256(key) in hex>.json, or NULL. */
static char *cache_path(const char *key)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char hex[33];
	if (cache_dir_failed) {   /* once */
		log_warn("oauth2: cache directory %s; access tokens are not cached across runs",
		         cache_dir_failed);
		free(cache_dir_failed);
		cache_dir_failed = NULL;
	}
	if (!cache_dir)
		return NULL;
	SHA256((const unsigned char *)key, strlen(key), md);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return xasprintf("%s/oauth2-%s.json", cache_dir, hex);
}

static int still_good(double expires_at, double lifetime)
{
	double early = lifetime / 10 < EARLY ? lifetime / 10 : EARLY;
	return expires_at - early > now_wall();
}

/* A cached token from the file: {"access_token", "expires_at", "lifetime"}. */
static char *cache_read(const char *path, const char *rejected, double *expires_at,
                        double *lifetime)
{
	char *text = NULL, *e = NULL, *tok = NULL;
	json_t *o = NULL;
	json_error_t jerr;

	if (!path || oauth2_read_secret_file(path, ANSWER_MAX, &text, NULL, &e) != 0)
		goto out;
	o = json_loads(text, 0, &jerr);
	json_t *t = json_object_get(o, "access_token");
	json_t *x = json_object_get(o, "expires_at");
	json_t *l = json_object_get(o, "lifetime");
	if (!json_is_string(t) || !json_is_number(x))
		goto out;
	if (!still_good(json_number_value(x), json_is_number(l) ? json_number_value(l) : 3600))
		goto out;
	if (rejected && strcmp(rejected, json_string_value(t)) == 0)
		goto out;
	tok = xstrdup(json_string_value(t));
	*expires_at = json_number_value(x);
	*lifetime = json_is_number(l) ? json_number_value(l) : 3600;
out:
	if (o) {
		json_t *t2 = json_object_get(o, "access_token");
		if (json_is_string(t2))
			explicit_bzero((char *)json_string_value(t2), json_string_length(t2));
		json_decref(o);
	}
	wipe_free(text);
	free(e);
	return tok;
}

int oauth2_write_secret(const char *path, const char *data, char **errstr)
{
	return write_secret_atomic(path, data, strlen(data), errstr);
}

static void cache_write(const char *path, const char *token, double expires_at, double lifetime)
{
	char *e = NULL, *text;
	json_t *o;
	if (!path)
		return;
	o = json_pack("{s:s, s:f, s:f}", "access_token", token, "expires_at", expires_at,
	              "lifetime", lifetime);
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (text && oauth2_write_secret(path, text, &e) != 0) {
		log_warn("oauth2: token cache %s", e);
		free(e);
	}
	wipe_free(text);
	json_decref(o);
}

/* Exclusive flock on path, waiting up to LOCK_WAIT seconds. fd or -1. */
static int lock_file(const char *path, const char *what, char **errstr)
{
	/* never follow a symbolic link or block on a FIFO planted there */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0600);
	double until = now_mono() + LOCK_WAIT;
	struct stat st;
	if (fd < 0) {
		*errstr = xasprintf("%s: lock %s: %s", what, path,
		                    errno == ELOOP ? "is a symbolic link: refusing to follow it"
		                                   : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		*errstr = xasprintf("%s: lock %s: not a regular file with one link: refusing to use it",
		                    what, path);
		close(fd);
		return -1;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if ((errno != EWOULDBLOCK && errno != EINTR) || now_mono() > until) {
			*errstr = xasprintf("%s: lock %s: %s", what, path,
			                    errno == EWOULDBLOCK ? "held by another process for too long"
			                                         : strerror(errno));
			close(fd);
			return -1;
		}
		sleep_seconds(0.05);
	}
	return fd;
}

/* ---------- HTTP ---------- */

struct answer {
	char *buf;
	size_t len;
	int over;
};

static size_t answer_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct answer *a = ud;
	size_t n = size * nmemb;
	if (a->len + n > ANSWER_MAX) {
		a->over = 1;
		return 0;
	}
	a->buf = xrealloc(a->buf, a->len + n + 1);
	memcpy(a->buf + a->len, p, n);
	a->len += n;
	a->buf[a->len] = '\0';
	return n;
}

/* form body name=value&...; values escaped. Heap, secret. */
static char *form_body(CURL *h, const char *const *names, const char *const *values, size_t n)
{
	struct strbuf sb = { 0 };
	for (size_t i = 0; i < n; i++) {
		char *v;
		if (!values[i])
			continue;
		v = curl_easy_escape(h, values[i], 0);
		strbuf_addf(&sb, "%s%s=%s", sb.len ? "&" : "", names[i], v ? v : "");
		if (v) {
			explicit_bzero(v, strlen(v));
			curl_free(v);
		}
	}
	return strbuf_detach(&sb);
}

int oauth2_post_form(const char *what, const char *url, const char *const *names,
                     const char *const *values, size_t n, long *status, void **json,
                     char **errstr)
{
	CURL *h = curl_easy_init();
	struct answer a = { 0 };
	struct curl_slist *hdr = NULL;
	char *body = NULL, ebuf[CURL_ERROR_SIZE] = "";
	json_error_t jerr;
	CURLcode rc;
	int ret = OAUTH2_EUNREACHABLE;

	*json = NULL;
	*status = 0;
	if (!h)
		return fail(errstr, ret, xasprintf("%s: out of memory", what));
	body = form_body(h, names, values, n);
	hdr = curl_slist_append(hdr, "Accept: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, answer_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, HTTP_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "inboxprobe/" PACKAGE_VERSION);
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		ret = fail(errstr, ret, xasprintf("%s: token endpoint %s unreachable: %s", what, url,
		                                  a.over ? "answer larger than 64 KiB"
		                                         : ebuf[0] ? ebuf : curl_easy_strerror(rc)));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	if (*status >= 500) {
		ret = fail(errstr, ret, xasprintf("%s: token endpoint %s answered HTTP %ld", what, url,
		                                  *status));
		goto out;
	}
	*json = a.buf ? json_loadb(a.buf, a.len, 0, &jerr) : NULL;
	ret = OAUTH2_OK;
out:
	wipe_free(body);
	if (a.buf) {
		explicit_bzero(a.buf, a.len);
		free(a.buf);
	}
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return ret;
}

/* Printable copy of a server string, capped. */
static char *shown(const char *s, size_t max)
{
	size_t n = strlen(s) < max ? strlen(s) : max;
	char *o = xstrndup(s, n);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)o[i] < 0x20 || (unsigned char)o[i] >= 0x7f)
			o[i] = '?';
	return o;
}

static int error_code(const char *e)
{
	if (strcmp(e, "invalid_grant") == 0)
		return OAUTH2_EGRANT;
	if (strcmp(e, "invalid_client") == 0 || strcmp(e, "unauthorized_client") == 0)
		return OAUTH2_ECLIENT;
	if (strcmp(e, "invalid_scope") == 0)
		return OAUTH2_ESCOPE;
	return OAUTH2_EPROTO;
}

static const char *error_hint(int code)
{
	switch (code) {
	case OAUTH2_EGRANT:
		return " (the refresh token or grant expired or was revoked: consent again with "
		       "`inboxprobe oauth2 authorize`)";
	case OAUTH2_ECLIENT:
		return " (client_id or client secret wrong, or the app is not allowed this grant)";
	case OAUTH2_ESCOPE:
		return " (the scope is not allowed for this client)";
	default:
		return "";
	}
}

/* 1 when v is a string a token can be: 1 to TOKEN_MAX - 1 bytes of VSCHAR
 * without space (RFC 6749 A.12, RFC 6750 2.1), no NUL. It goes into the
 * XOAUTH2/OAUTHBEARER initial response (RFC 7628), where a control byte
 * ends a field, and into files read back line by line (found by
 * tests/fuzz/fuzz_oauth2). */
static int usable_token(json_t *v)
{
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);

	if (s == NULL || n == 0 || n >= TOKEN_MAX || strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

int oauth2_parse_token_answer(const char *what, const char *url, long status, void *json,
                              char **token, long *expires_in, char **refresh, char **errstr)
{
	json_t *o = json, *t, *x, *r, *e, *d;
	*token = NULL;
	*refresh = NULL;
	*expires_in = 3600;
	if (!json_is_object(o))
		return fail(errstr, OAUTH2_EPROTO,
		            xasprintf("%s: token endpoint %s answered HTTP %ld without a JSON object",
		                      what, url, status));
	t = json_object_get(o, "access_token");
	e = json_object_get(o, "error");
	if (status == 200 && usable_token(t)) {
		x = json_object_get(o, "expires_in");
		r = json_object_get(o, "refresh_token");
		if (json_is_integer(x) && json_integer_value(x) > 0)
			*expires_in = (long)json_integer_value(x);
		else if (json_is_string(x) && atol(json_string_value(x)) > 0)
			*expires_in = atol(json_string_value(x));   /* Microsoft once sent strings */
		*token = xstrdup(json_string_value(t));
		if (usable_token(r))
			*refresh = xstrdup(json_string_value(r));
		return OAUTH2_OK;
	}
	if (json_is_string(e)) {
		int code = error_code(json_string_value(e));
		char *es = shown(json_string_value(e), 60), *ds = NULL;
		d = json_object_get(o, "error_description");
		if (json_is_string(d))
			ds = shown(json_string_value(d), 200);
		*errstr = xasprintf("%s: token endpoint %s refused: %s%s%s%s", what, url, es,
		                    error_hint(code), ds ? ": " : "", ds ? ds : "");
		free(es);
		free(ds);
		return code;
	}
	if (status == 200 && json_is_string(t))
		return fail(errstr, OAUTH2_EPROTO,
		            xasprintf("%s: token endpoint %s answered an access_token that cannot be a "
		                      "token (empty, over %d bytes, or holding spaces, control or 8-bit "
		                      "bytes)", what, url, TOKEN_MAX - 1));
	return fail(errstr, OAUTH2_EPROTO,
	            xasprintf("%s: token endpoint %s answered HTTP %ld without access_token or error",
	                      what, url, status));
}

/* POST the grant and read the answer. */
static int grant(const struct oauth2_conf *c, const char *const *names, const char *const *values,
                 size_t n, char **token, long *expires_in, char **refresh, char **errstr)
{
	long status;
	void *json = NULL;
	int r = oauth2_post_form(c->where, c->token_url, names, values, n, &status, &json, errstr);
	if (r == OAUTH2_OK)
		r = oauth2_parse_token_answer(c->where, c->token_url, status, json, token, expires_in,
		                              refresh, errstr);
	if (json) {
		json_t *t = json_object_get(json, "access_token");
		json_t *rt = json_object_get(json, "refresh_token");
		if (json_is_string(t))
			explicit_bzero((char *)json_string_value(t), json_string_length(t));
		if (json_is_string(rt))
			explicit_bzero((char *)json_string_value(rt), json_string_length(rt));
		json_decref(json);
	}
	return r;
}

/* ---------- JWT (RFC 7523) ---------- */

char *oauth2_base64url(const void *data, size_t n)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *p = data;
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;
	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		*o++ = tbl[v >> 18];
		*o++ = tbl[(v >> 12) & 63];
		*o++ = tbl[(v >> 6) & 63];
		*o++ = tbl[v & 63];
	}
	if (i < n) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
		*o++ = tbl[v >> 18];
		*o++ = tbl[(v >> 12) & 63];
		if (i + 1 < n)
			*o++ = tbl[(v >> 6) & 63];
	}
	*o = '\0';
	return out;
}

static int rs256(const char *pem, const char *input, unsigned char **sig, size_t *siglen,
                 char **errstr)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ret = -1;

	*sig = NULL;
	if (!key || EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
		*errstr = xasprintf("private_key is not an RSA key in PEM form");
		goto out;
	}
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, siglen, (const unsigned char *)input, strlen(input)) != 1) {
		*errstr = xasprintf("RS256 signing failed");
		goto out;
	}
	*sig = xmalloc(*siglen);
	if (EVP_DigestSign(md, *sig, siglen, (const unsigned char *)input, strlen(input)) != 1) {
		*errstr = xasprintf("RS256 signing failed");
		free(*sig);
		*sig = NULL;
		goto out;
	}
	ret = 0;
out:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	BIO_free(bio);
	return ret;
}

int oauth2_jwt_assertion(const char *client_email, const char *pem, const char *subject,
                         const char *scope, const char *aud, long now, char **jwt,
                         char **errstr)
{
	json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", client_email, "scope",
	                           scope ? scope : "", "aud", aud, "iat", (json_int_t)now, "exp",
	                           (json_int_t)now + 3600);
	char *cj = NULL, *h64 = NULL, *c64 = NULL, *s64 = NULL, *input = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	int ret = -1;
	static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";

	if (!claims) {
		*errstr = xasprintf("cannot build the JWT claims");
		return -1;
	}
	if (subject)
		json_object_set_new(claims, "sub", json_string(subject));
	cj = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
	h64 = oauth2_base64url(header, strlen(header));
	c64 = oauth2_base64url(cj, strlen(cj));
	input = xasprintf("%s.%s", h64, c64);
	if (rs256(pem, input, &sig, &siglen, errstr) != 0)
		goto out;
	s64 = oauth2_base64url(sig, siglen);
	*jwt = xasprintf("%s.%s", input, s64);
	ret = 0;
out:
	json_decref(claims);
	free(cj);
	free(h64);
	free(c64);
	free(s64);
	free(input);
	free(sig);
	return ret;
}

/* ---------- token command ---------- */

/* Read what is available from fd into buf (capped at cap, rest drained). */
static int drain(int fd, char *buf, size_t *len, size_t cap)
{
	char tmp[4096];
	ssize_t r = read(fd, tmp, sizeof tmp);
	if (r <= 0)
		return r < 0 && errno == EINTR ? 1 : 0;
	size_t take = (size_t)r;
	if (*len + take > cap)
		take = cap - *len;
	memcpy(buf + *len, tmp, take);
	*len += take;
	explicit_bzero(tmp, sizeof tmp);
	return 1;
}

static pid_t spawn(const char *cmd, int out[2], int err[2])
{
	pid_t pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		setpgid(0, 0);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(out[0]);
		close(err[0]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Run cmd, bounded by timeout seconds; its stdout in *out (heap, secret),
 * its stderr in errbuf. Returns the exit status, -2 on timeout, -1 when it
 * could not start. */
static int run_command(const char *cmd, long timeout, char **out, char *errbuf, size_t errsz)
{
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, status = 0, ret = -1;
	char *obuf = xcalloc(1, TOKEN_MAX + 1);
	size_t olen = 0, elen = 0;
	double until = now_mono() + (double)timeout;
	pid_t pid = -1;

	if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0)
		goto out;
	if ((pid = spawn(cmd, po, pe)) < 0)
		goto out;
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	while (po[0] >= 0 || pe[0] >= 0) {
		struct pollfd pf[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
		double left = until - now_mono();
		if (left <= 0) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			pid = -1;
			ret = -2;
			goto out;
		}
		if (poll(pf, 2, (int)(left * 1000) + 1) < 0 && errno != EINTR)
			break;
		if (pf[0].revents && !drain(po[0], obuf, &olen, TOKEN_MAX)) {
			close(po[0]);
			po[0] = -1;
		}
		if (pf[1].revents && !drain(pe[0], errbuf, &elen, errsz - 1)) {
			close(pe[0]);
			pe[0] = -1;
		}
	}
	errbuf[elen] = '\0';
	/* the pipes closed; the command may still run (a daemon child): bounded wait */
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_mono() > until) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			pid = -1;
			ret = -2;
			goto out;
		}
		sleep_seconds(0.02);
	}
	pid = -1;
	ret = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	*out = obuf;
	obuf = NULL;
out:
	if (pid > 0) {
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	if (obuf) {
		explicit_bzero(obuf, TOKEN_MAX + 1);
		free(obuf);
	}
	return ret;
}

static int from_command(const struct oauth2_conf *c, char **token, char **errstr)
{
	char errbuf[STDERR_SHOWN + 1] = "", *out = NULL, *shown_err;
	int st = run_command(c->token_command, c->command_timeout, &out, errbuf, sizeof errbuf);
	int ret = OAUTH2_ECOMMAND;
	size_t n;

	shown_err = shown(errbuf, STDERR_SHOWN);
	for (char *p = shown_err + strlen(shown_err); p > shown_err && p[-1] == '?'; p--)
		p[-1] = '\0';   /* trailing newline */
	if (st == -2)
		ret = fail(errstr, ret, xasprintf("%s: token_command did not finish within %ld s; "
		                                  "killed%s%s", c->where, c->command_timeout,
		                                  shown_err[0] ? ": " : "", shown_err));
	else if (st == -1)
		ret = fail(errstr, ret, xasprintf("%s: token_command could not be started: %s",
		                                  c->where, strerror(errno)));
	else if (st != 0)
		ret = fail(errstr, ret, xasprintf("%s: token_command failed (exit status %d)%s%s",
		                                  c->where, st, shown_err[0] ? ": " : "", shown_err));
	else {
		n = strcspn(out, "\r\n");
		out[n] = '\0';
		if (n == 0 || strpbrk(out, " \t"))
			ret = fail(errstr, ret, xasprintf("%s: token_command printed %s", c->where,
			                                  n == 0 ? "nothing" : "more than a token"));
		else {
			*token = xstrdup(out);
			ret = OAUTH2_OK;
		}
	}
	if (out) {
		explicit_bzero(out, TOKEN_MAX + 1);
		free(out);
	}
	free(shown_err);
	return ret;
}

/* ---------- grants ---------- */

static int from_refresh(const struct oauth2_conf *c, char **token, long *expires_in, char **errstr)
{
	static const char *const names[] = { "grant_type", "refresh_token", "client_id",
	                                      "client_secret", "scope" };
	char *rt = NULL, *nrt = NULL, *e = NULL;
	int missing = 0, r;

	if (oauth2_read_secret_file(c->refresh_token_file, TOKEN_MAX, &rt, &missing, &e) != 0) {
		r = fail(errstr, OAUTH2_EFILE,
		         xasprintf("%s.refresh_token_file: %s%s", c->where, e,
		                   missing ? " (run `inboxprobe oauth2 authorize` to create it)" : ""));
		free(e);
		return r;
	}
	const char *values[] = { "refresh_token", rt, c->client_id, c->client_secret, c->scope };
	r = grant(c, names, values, 5, token, expires_in, &nrt, errstr);
	if (r == OAUTH2_OK && nrt && strcmp(nrt, rt) != 0) {
		/* rotated: the old one may be dead already; keep the new one first */
		char *line = xasprintf("%s\n", nrt);
		if (oauth2_write_secret(c->refresh_token_file, line, &e) != 0) {
			r = fail(errstr, OAUTH2_EFILE,
			         xasprintf("%s.refresh_token_file: the rotated refresh token could not be "
			                   "saved: %s", c->where, e));
			free(e);
			wipe_free(*token);
			*token = NULL;
		}
		wipe_free(line);
	}
	wipe_free(rt);
	wipe_free(nrt);
	return r;
}

static int from_client_credentials(const struct oauth2_conf *c, char **token, long *expires_in,
                                   char **errstr)
{
	static const char *const names[] = { "grant_type", "client_id", "client_secret", "scope" };
	const char *values[] = { "client_credentials", c->client_id, c->client_secret, c->scope };
	char *nrt = NULL;
	int r = grant(c, names, values, 4, token, expires_in, &nrt, errstr);
	wipe_free(nrt);
	return r;
}

static int from_jwt(const struct oauth2_conf *c, char **token, long *expires_in, char **errstr)
{
	static const char *const names[] = { "grant_type", "assertion" };
	char *jwt = NULL, *e = NULL, *nrt = NULL;
	int r;
	if (oauth2_jwt_assertion(c->sa_client_email, c->sa_private_key, c->subject, c->scope,
	                         c->token_url, (long)time(NULL), &jwt, &e) != 0) {
		r = fail(errstr, OAUTH2_EFILE, xasprintf("%s.service_account_file: %s", c->where, e));
		free(e);
		return r;
	}
	const char *values[] = { "urn:ietf:params:oauth:grant-type:jwt-bearer", jwt };
	r = grant(c, names, values, 2, token, expires_in, &nrt, errstr);
	wipe_free(jwt);
	wipe_free(nrt);
	return r;
}

/* ---------- the cache around the sources ---------- */

static struct mem_token *mem_find(const char *key)
{
	for (struct mem_token *m = mem; m; m = m->next)
		if (strcmp(m->key, key) == 0)
			return m;
	return NULL;
}

static void mem_put(const char *key, const char *token, double expires_at, double lifetime)
{
	struct mem_token *m = mem_find(key);
	if (!m) {
		m = xcalloc(1, sizeof *m);
		m->key = xstrdup(key);
		m->next = mem;
		mem = m;
	}
	wipe_free(m->token);
	m->token = xstrdup(token);
	m->expires_at = expires_at;
	m->lifetime = lifetime;
}

void oauth2_forget(void)
{
	pthread_mutex_lock(&mu);
	while (mem) {
		struct mem_token *m = mem;
		mem = m->next;
		free(m->key);
		wipe_free(m->token);
		free(m);
	}
	pthread_mutex_unlock(&mu);
}

static int fetch(const struct oauth2_conf *c, char **token, long *expires_in, char **errstr)
{
	switch (c->source) {
	case OAUTH2_SRC_REFRESH:
		return from_refresh(c, token, expires_in, errstr);
	case OAUTH2_SRC_CLIENT_CREDENTIALS:
		return from_client_credentials(c, token, expires_in, errstr);
	case OAUTH2_SRC_JWT_BEARER:
		return from_jwt(c, token, expires_in, errstr);
	default:
		return fail(errstr, OAUTH2_EPROTO, xasprintf("%s: no token source", c->where));
	}
}

/* Under the lock: the file cache again (another process may have just
 * refreshed), else the source; the result goes to the file cache. */
static int fetch_locked(const struct oauth2_conf *c, const char *cpath, const char *rejected,
                        char **token, double *expires_at, double *lifetime, char **errstr)
{
	char *lpath = c->source == OAUTH2_SRC_REFRESH ? xasprintf("%s.lock", c->refresh_token_file)
	            : cpath ? xasprintf("%s.lock", cpath) : NULL;
	int fd = -1, r;
	long expires_in = 0;

	if (lpath && (fd = lock_file(lpath, c->where, errstr)) < 0) {
		free(lpath);
		return OAUTH2_EFILE;
	}
	if ((*token = cache_read(cpath, rejected, expires_at, lifetime)) != NULL) {
		r = OAUTH2_OK;
		goto out;
	}
	r = fetch(c, token, &expires_in, errstr);
	if (r == OAUTH2_OK) {
		*expires_at = now_wall() + (double)expires_in;
		*lifetime = (double)expires_in;
		cache_write(cpath, *token, *expires_at, (double)expires_in);
		log_debug("%s: new access token from %s, valid %ld s", c->where,
		          oauth2_source_name(c->source), expires_in);
	}
out:
	if (fd >= 0)
		close(fd);   /* releases the flock */
	free(lpath);
	return r;
}

int oauth2_get_token(const struct oauth2_conf *c, const char *rejected, char **token,
                     char **errstr)
{
	struct mem_token *m;
	char *cpath = NULL;
	double expires_at = 0, lifetime = 0;
	int r;

	*token = NULL;
	if (c->source == OAUTH2_SRC_COMMAND)
		return from_command(c, token, errstr);   /* the command keeps its own cache */
	pthread_mutex_lock(&mu);
	m = mem_find(c->key);
	if (m && still_good(m->expires_at, m->lifetime) && (!rejected || strcmp(rejected, m->token))) {
		*token = xstrdup(m->token);
		r = OAUTH2_OK;
		goto out;
	}
	cpath = cache_path(c->key);
	r = fetch_locked(c, cpath, rejected, token, &expires_at, &lifetime, errstr);
	if (r == OAUTH2_OK)
		mem_put(c->key, *token, expires_at, lifetime);
out:
	pthread_mutex_unlock(&mu);
	free(cpath);
	return r;
}

int oauth2_store_refresh_token(const struct oauth2_conf *c, const char *refresh_token,
                               char **errstr)
{
	char *lpath = xasprintf("%s.lock", c->refresh_token_file), *line, *e = NULL;
	int fd = lock_file(lpath, c->where, errstr), r = OAUTH2_OK;

	free(lpath);
	if (fd < 0)
		return OAUTH2_EFILE;
	line = xasprintf("%s\n", refresh_token);
	if (oauth2_write_secret(c->refresh_token_file, line, &e) != 0) {
		r = fail(errstr, OAUTH2_EFILE, xasprintf("%s.refresh_token_file: %s", c->where, e));
		free(e);
	}
	wipe_free(line);
	close(fd);
	return r;
}
