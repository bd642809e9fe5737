/*
 * oauth2_authorize.c - `inboxprobe oauth2 authorize`: device authorization
 * grant (RFC 8628) and loopback redirect with PKCE (RFC 8252, RFC 7636).
 * See oauth2_authorize.h.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "common/util.h"
#include "prober/oauth2.h"
#include "prober/oauth2_authorize.h"
#include "seeds/config.h"
#include "seeds/oauth2_conf.h"

#define REQUEST_MAX 8192    /* bytes of the browser's redirect request */

struct opts {
	const char *config, *seed, *device_url, *authorize_url;
	int relay, bounce, flow;   /* flow: 0 auto, 'd' device, 'b' browser */
	long timeout;              /* seconds to wait for consent */
};

static void wipe_free(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

/* token_url with its last path segment ("token") replaced by seg. */
static char *beside_token(const char *token_url, const char *seg)
{
	const char *slash = strrchr(token_url, '/');
	size_t n = slash ? (size_t)(slash - token_url) + 1 : strlen(token_url);
	return xasprintf("%.*s%s", (int)n, token_url, seg);
}

static int is_google(const char *url)
{
	return strstr(url, "googleapis.com/") != NULL || strstr(url, "accounts.google.com/") != NULL;
}

/* A string member of a JSON object, or NULL. */
static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Exchange a grant for tokens and store the refresh token. */
static int finish(const struct oauth2_conf *c, const char *const *names, const char *const *values,
                  size_t n, char **errstr)
{
	long status, exp;
	void *json = NULL;
	char *tok = NULL, *rt = NULL;
	int r = oauth2_post_form(c->where, c->token_url, names, values, n, &status, &json, errstr);
	if (r == OAUTH2_OK)
		r = oauth2_parse_token_answer(c->where, c->token_url, status, json, &tok, &exp, &rt, errstr);
	json_decref(json);
	if (r == OAUTH2_OK && !rt) {
		r = OAUTH2_EPROTO;
		*errstr = xasprintf("%s: the token endpoint sent no refresh token (ask for the "
		                    "offline_access scope, or access_type=offline at Google)", c->where);
	}
	if (r == OAUTH2_OK)
		r = oauth2_store_refresh_token(c, rt, errstr);
	wipe_free(tok);
	wipe_free(rt);
	return r;
}

/* ---------- device authorization grant (RFC 8628) ---------- */

static int device_poll(const struct oauth2_conf *c, const char *device_code, long interval,
                       double until, char **errstr)
{
	static const char *const names[] = { "grant_type", "device_code", "client_id", "client_secret" };
	const char *values[] = { "urn:ietf:params:oauth:grant-type:device_code", device_code,
	                         c->client_id, c->client_secret };
	for (;;) {
		long status, exp;
		void *json = NULL;
		char *tok = NULL, *rt = NULL, *e = NULL;
		const char *err;
		int r;

		if (now_mono() + (double)interval > until) {
			*errstr = xasprintf("%s: no consent before the code expired", c->where);
			return OAUTH2_EGRANT;
		}
		sleep_seconds((double)interval);
		r = oauth2_post_form(c->where, c->token_url, names, values, 4, &status, &json, errstr);
		if (r != OAUTH2_OK)
			return r;
		err = jstr(json, "error");
		if (err && strcmp(err, "authorization_pending") == 0) {
			json_decref(json);
			continue;
		}
		if (err && strcmp(err, "slow_down") == 0) {   /* RFC 8628 3.5: 5 seconds more */
			interval += 5;
			json_decref(json);
			continue;
		}
		r = oauth2_parse_token_answer(c->where, c->token_url, status, json, &tok, &exp, &rt, &e);
		json_decref(json);
		if (r == OAUTH2_OK && rt)
			r = oauth2_store_refresh_token(c, rt, &e);
		else if (r == OAUTH2_OK) {
			r = OAUTH2_EPROTO;
			e = xasprintf("%s: the token endpoint sent no refresh token (add offline_access "
			              "to the scope)", c->where);
		}
		wipe_free(tok);
		wipe_free(rt);
		if (r != OAUTH2_OK)
			*errstr = e;
		return r;
	}
}

static int device_flow(const struct oauth2_conf *c, const struct opts *o, char **errstr)
{
	static const char *const names[] = { "client_id", "scope" };
	const char *values[] = { c->client_id, c->scope };
	char *url = o->device_url ? xstrdup(o->device_url) : beside_token(c->token_url, "devicecode");
	long status, interval = 5, expires = 900;
	void *json = NULL;
	const char *dc, *uc, *vu;
	int r;

	r = oauth2_post_form(c->where, url, names, values, 2, &status, &json, errstr);
	if (r != OAUTH2_OK)
		goto out;
	dc = jstr(json, "device_code");
	uc = jstr(json, "user_code");
	vu = jstr(json, "verification_uri") ? jstr(json, "verification_uri") : jstr(json, "verification_url");
	if (!dc || !uc || !vu) {
		const char *e = jstr(json, "error");
		r = OAUTH2_EPROTO;
		*errstr = xasprintf("%s: device authorization endpoint %s answered HTTP %ld %s%s", c->where,
		                    url, status, e ? "error " : "without device_code/user_code",
		                    e ? e : "");
		goto out;
	}
	if (json_is_integer(json_object_get(json, "interval")))
		interval = (long)json_integer_value(json_object_get(json, "interval"));
	if (json_is_integer(json_object_get(json, "expires_in")))
		expires = (long)json_integer_value(json_object_get(json, "expires_in"));
	if (interval < 1 || interval > 60)
		interval = 5;
	if (expires > o->timeout)
		expires = o->timeout;
	printf("To sign in, open %s and enter the code %s\n", vu, uc);
	fflush(stdout);
	r = device_poll(c, dc, interval, now_mono() + (double)expires, errstr);
out:
	json_decref(json);
	free(url);
	return r;
}

/* ---------- authorization code + PKCE, loopback redirect ---------- */

static char *random_b64url(size_t bytes)
{
	unsigned char b[64];
	if (bytes > sizeof b || RAND_bytes(b, (int)bytes) != 1)
		return NULL;
	return oauth2_base64url(b, bytes);
}

/* 127.0.0.1 at a port the kernel picks. fd or -1. */
static int listen_loopback(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

/* Value of name in the query string q (decoded, heap), or NULL. */
static char *query_param(CURL *h, const char *q, const char *name)
{
	size_t n = strlen(name);
	while (q && *q) {
		size_t len = strcspn(q, "& ");
		if (len > n && strncmp(q, name, n) == 0 && q[n] == '=') {
			int outlen = 0;
			char *v = curl_easy_unescape(h, q + n + 1, (int)(len - n - 1), &outlen);
			char *r = v ? xstrndup(v, (size_t)outlen) : NULL;
			curl_free(v);
			return r;
		}
		if (q[len] != '&')
			break;
		q += len + 1;
	}
	return NULL;
}

/* Wait for the browser's GET /?code=...&state=...; answer it; *request heap. */
static int take_redirect(int lfd, double until, char **request, char **errstr)
{
	static const char reply[] = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
	                            "inboxprobe: consent received. You can close this window.\r\n";
	char *buf = xcalloc(1, REQUEST_MAX + 1);
	size_t len = 0;
	int fd = -1;
	struct pollfd pf = { lfd, POLLIN, 0 };

	for (;;) {
		double left = until - now_mono();
		if (left <= 0 || poll(&pf, 1, (int)(left * 1000)) == 0) {
			*errstr = xasprintf("no redirect from the browser in time");
			free(buf);
			return -1;
		}
		if ((fd = accept(lfd, NULL, NULL)) >= 0)
			break;
	}
	while (len < REQUEST_MAX && !strstr(buf, "\r\n\r\n") && !strstr(buf, "\n\n")) {
		struct pollfd cf = { fd, POLLIN, 0 };
		ssize_t r;
		if (poll(&cf, 1, 10000) <= 0 || (r = read(fd, buf + len, REQUEST_MAX - len)) <= 0)
			break;
		len += (size_t)r;
	}
	(void)!write(fd, reply, sizeof reply - 1);
	close(fd);
	*request = buf;
	return 0;
}

static char *authorize_url(CURL *h, const struct oauth2_conf *c, const struct opts *o,
                           const char *user, const char *redirect, const char *challenge,
                           const char *state)
{
	const char *names[] = { "response_type", "client_id", "redirect_uri", "scope",
	                        "code_challenge", "code_challenge_method", "state", "login_hint",
	                        "access_type", "prompt" };
	const char *values[] = { "code", c->client_id, redirect, c->scope, challenge, "S256", state,
	                         user, "offline", "consent" };
	char *base = o->authorize_url ? xstrdup(o->authorize_url)
	           : is_google(c->token_url) ? xstrdup("https://accounts.google.com/o/oauth2/v2/auth")
	           : beside_token(c->token_url, "authorize");
	struct strbuf sb = { 0 };
	strbuf_adds(&sb, base);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char *v;
		if (!values[i])
			continue;
		v = curl_easy_escape(h, values[i], 0);
		strbuf_addf(&sb, "%c%s=%s", i == 0 && !strchr(base, '?') ? '?' : '&', names[i], v);
		curl_free(v);
	}
	free(base);
	return strbuf_detach(&sb);
}

static int browser_flow(const struct oauth2_conf *c, const struct opts *o, const char *user,
                        char **errstr)
{
	static const char *const names[] = { "grant_type", "code", "redirect_uri", "client_id",
	                                     "client_secret", "code_verifier" };
	CURL *h = curl_easy_init();
	char *verifier = random_b64url(32), *state = random_b64url(16), *redirect = NULL;
	char *challenge = NULL, *url = NULL, *req = NULL, *code = NULL, *got_state = NULL, *err = NULL;
	unsigned char md[SHA256_DIGEST_LENGTH];
	int port = 0, lfd = -1, r = OAUTH2_EPROTO;

	if (!h || !verifier || !state || (lfd = listen_loopback(&port)) < 0) {
		*errstr = xasprintf("%s: cannot listen on 127.0.0.1: %s", c->where, strerror(errno));
		goto out;
	}
	SHA256((unsigned char *)verifier, strlen(verifier), md);   /* RFC 7636 4.2, S256 */
	challenge = oauth2_base64url(md, sizeof md);
	redirect = xasprintf("http://127.0.0.1:%d/", port);
	url = authorize_url(h, c, o, user, redirect, challenge, state);
	printf("To sign in, open this URL in a browser on this machine:\n%s\n", url);
	fflush(stdout);
	if (take_redirect(lfd, now_mono() + (double)o->timeout, &req, &err) != 0) {
		*errstr = xasprintf("%s: %s", c->where, err);
		goto out;
	}
	{
		char *q = strchr(req, '?');
		code = query_param(h, q ? q + 1 : NULL, "code");
		got_state = query_param(h, q ? q + 1 : NULL, "state");
		err = query_param(h, q ? q + 1 : NULL, "error");
	}
	if (!got_state || strcmp(got_state, state) != 0 || !code) {
		*errstr = xasprintf("%s: the redirect carried %s", c->where,
		                    err ? "an error from the authorization server" :
		                    !code ? "no code" : "a wrong state (not our request)");
		goto out;
	}
	{
		const char *values[] = { "authorization_code", code, redirect, c->client_id,
		                         c->client_secret, verifier };
		r = finish(c, names, values, 6, errstr);
	}
out:
	if (lfd >= 0)
		close(lfd);
	wipe_free(verifier);
	wipe_free(code);
	free(state);
	free(challenge);
	free(redirect);
	free(url);
	free(req);
	free(got_state);
	free(err);
	if (h)
		curl_easy_cleanup(h);
	return r;
}

/* ---------- the command ---------- */

static void authorize_usage(void)
{
	fputs("usage: inboxprobe oauth2 authorize -c FILE (--seed ADDRESS | --relay | --bounce)\n"
	      "       [--device | --browser] [--device-url URL] [--authorize-url URL]\n"
	      "       [--timeout SECONDS]\n", stderr);
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' }, { "seed", required_argument, NULL, 's' },
		{ "relay", no_argument, NULL, 'r' }, { "bounce", no_argument, NULL, 'b' },
		{ "device", no_argument, NULL, 'D' }, { "browser", no_argument, NULL, 'B' },
		{ "device-url", required_argument, NULL, 'u' },
		{ "authorize-url", required_argument, NULL, 'a' },
		{ "timeout", required_argument, NULL, 't' }, { "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;
	memset(o, 0, sizeof *o);
	o->timeout = 900;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:v", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->config = optarg; break;
		case 's': o->seed = optarg; break;
		case 'r': o->relay = 1; break;
		case 'b': o->bounce = 1; break;
		case 'D': o->flow = 'd'; break;
		case 'B': o->flow = 'b'; break;
		case 'u': o->device_url = optarg; break;
		case 'a': o->authorize_url = optarg; break;
		case 't': o->timeout = atol(optarg); break;
		case 'v': log_verbose++; break;
		default: return -1;
		}
	}
	if (optind != argc || !o->config || (!!o->seed + o->relay + o->bounce) != 1 ||
	    o->timeout < 1 || o->timeout > 86400) {
		authorize_usage();
		return -1;
	}
	return 0;
}

/* The block the options name: its oauth2 conf and SASL user. */
static int pick_block(const struct config *cfg, const struct opts *o,
                      const struct oauth2_conf **c, const char **user)
{
	*c = NULL;
	if (o->relay) {
		*c = cfg->relay.oauth2;
		*user = cfg->relay.username;
	} else if (o->bounce) {
		*c = cfg->has_bounce ? cfg->bounce.oauth2 : NULL;
		*user = cfg->bounce.username;
	} else {
		for (size_t i = 0; i < cfg->nseeds; i++)
			if (strcasecmp(cfg->seeds[i].address, o->seed) == 0) {
				*c = cfg->seeds[i].imap.oauth2;
				*user = cfg->seeds[i].imap.username;
				break;
			}
	}
	if (!*c || (*c)->source != OAUTH2_SRC_REFRESH) {
		fprintf(stderr, "inboxprobe: %s: %s\n", o->relay ? "relay" : o->bounce ? "bounce_mailbox" :
		        o->seed, !*c ? "no such block with oauth2 = { ... } in the configuration" :
		        "its oauth2 block does not use the refresh-token grant (refresh_token_file): "
		        "nothing to authorize");
		return -1;
	}
	return 0;
}

int oauth2_command(int argc, char **argv)
{
	struct opts o;
	struct config *cfg = NULL;
	const struct oauth2_conf *c;
	const char *user = NULL;
	char *err = NULL;
	int r, code = 2;

	if (argc < 2 || strcmp(argv[1], "authorize") != 0) {
		authorize_usage();
		return 2;
	}
	if (parse_opts(argc - 1, argv + 1, &o) != 0)
		return 2;
	if (config_load(o.config, &cfg, &err) != 0) {
		fprintf(stderr, "%s", err ? err : "configuration error\n");
		free(err);
		return 2;
	}
	if (pick_block(cfg, &o, &c, &user) != 0)
		goto out;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (o.flow == 'b' || (o.flow == 0 && is_google(c->token_url)))
		r = browser_flow(c, &o, user, &err);
	else
		r = device_flow(c, &o, &err);
	if (r == OAUTH2_OK) {
		printf("inboxprobe: refresh token for %s stored in %s\n", user, c->refresh_token_file);
		code = 0;
	} else {
		fprintf(stderr, "inboxprobe: %s\n", err ? err : "consent failed");
		code = 1;
	}
	free(err);
out:
	config_free(cfg);
	return code;
}
