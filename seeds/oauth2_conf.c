/*
 * oauth2_conf.c - parse and check `oauth2 = { ... }` blocks. See oauth2_conf.h.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <libconfig.h>

#include "common/util.h"
#include "seeds/oauth2_conf.h"

#define OAUTH2_SECRET_MAX (64 * 1024)
#define SA_KEY_MAX (64 * 1024)
#define MAX_COMMAND_TIMEOUT 600L

const char *oauth2_source_name(enum oauth2_source s)
{
	switch (s) {
	case OAUTH2_SRC_COMMAND:
		return "token_command";
	case OAUTH2_SRC_REFRESH:
		return "refresh_token";
	case OAUTH2_SRC_CLIENT_CREDENTIALS:
		return "client_credentials";
	case OAUTH2_SRC_JWT_BEARER:
		return "jwt_bearer";
	}
	return "?";
}

static void wipe_str(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

void oauth2_conf_free(struct oauth2_conf *c)
{
	if (!c)
		return;
	free(c->where);
	free(c->token_command);
	free(c->token_url);
	free(c->client_id);
	free(c->client_secret_file);
	wipe_str(c->client_secret);
	free(c->refresh_token_file);
	free(c->scope);
	free(c->service_account_file);
	free(c->subject);
	free(c->sa_client_email);
	wipe_str(c->sa_private_key);
	free(c->key);
	free(c);
}

int oauth2_read_secret_file(const char *path, size_t max, char **out, int *missing, char **errstr)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), ret = -1;

	if (missing)
		*missing = 0;
	if (fd < 0) {
		if (missing && errno == ENOENT)
			*missing = 1;
		*errstr = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		*errstr = xasprintf("%s: is not a regular file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		*errstr = xasprintf("%s is %s by group or others (mode %04o); chmod 600 it", path,
		                    (st.st_mode & 044) ? "readable" : "writable or executable",
		                    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if ((size_t)st.st_size > max) {
		*errstr = xasprintf("%s: larger than %zu bytes", path, max);
		goto out;
	}
	buf = xmalloc((size_t)st.st_size + 2);
	for (;;) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*errstr = xasprintf("%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > (size_t)st.st_size) {
			*errstr = xasprintf("%s: changed while being read", path);
			goto out;
		}
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
	                 buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	if (n == 0 || memchr(buf, '\0', n)) {
		*errstr = xasprintf("%s: %s", path, n == 0 ? "is empty" : "holds a NUL byte");
		goto out;
	}
	*out = buf;
	buf = NULL;
	ret = 0;
out:
	if (buf) {
		explicit_bzero(buf, (size_t)st.st_size + 2);
		free(buf);
	}
	close(fd);
	return ret;
}

int oauth2_url_allowed(const char *url)
{
	const char *h;
	size_t n;
	if (strncasecmp(url, "https://", 8) == 0)
		return url[8] != '\0' && url[8] != '/';
	if (strncasecmp(url, "http://", 7) != 0)
		return 0;
	h = url + 7;
	n = strcspn(h, ":/?#");
	if (h[0] == '[')
		return strncmp(h, "[::1]", 5) == 0;
	if (n == 9 && strncasecmp(h, "localhost", 9) == 0)
		return 1;
	return strncmp(h, "127.", 4) == 0 && n >= 7 && strspn(h, "0123456789.") >= n;
}

/* ---------- parsing ---------- */

struct pctx {
	const char *prefix;
	oauth2_conf_err_fn err;
	void *ctx;
	int nerr;
};

static void perr(struct pctx *p, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void perr(struct pctx *p, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	struct strbuf sb = { 0 };
	char *msg;
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	msg = strbuf_detach(&sb);
	p->err(p->ctx, s, msg);
	free(msg);
	p->nerr++;
}

/* A non-empty single-line string member: 1 set (*out heap), 0 absent, -1 error. */
static int pstr(struct pctx *p, const config_setting_t *g, const char *name, char **out,
                const config_setting_t **where)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	const char *v;
	if (where)
		*where = s;
	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		perr(p, s, "%s.%s must be a string", p->prefix, name);
		return -1;
	}
	v = config_setting_get_string(s);
	if (!v || !*v || strpbrk(v, "\r\n")) {
		perr(p, s, "%s.%s must be a non-empty string on one line", p->prefix, name);
		return -1;
	}
	*out = xstrdup(v);
	return 1;
}

static const char *const oauth2_keys[] = {
	"token_command", "command_timeout", "token_url", "client_id", "client_secret_file",
	"refresh_token_file", "scope", "service_account_file", "subject", NULL
};

static void check_keys(struct pctx *p, const config_setting_t *g)
{
	int n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(m);
		size_t k;
		for (k = 0; name && oauth2_keys[k] && strcmp(oauth2_keys[k], name) != 0; k++)
			;
		if (name && !oauth2_keys[k]) {
			const char *near = closest_word(name, oauth2_keys);
			perr(p, m, "unknown setting '%s' in %s%s%s%s", name, p->prefix,
			     near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
		}
	}
}

/* Google's service-account JSON key: client_email, private_key, token_uri. */
static void load_service_account(struct pctx *p, const config_setting_t *s, struct oauth2_conf *c)
{
	char *text = NULL, *e = NULL;
	json_error_t jerr;
	json_t *o = NULL, *em, *pk, *tu;

	if (oauth2_read_secret_file(c->service_account_file, SA_KEY_MAX, &text, NULL, &e) != 0) {
		perr(p, s, "%s.service_account_file: %s", p->prefix, e);
		goto out;
	}
	o = json_loads(text, 0, &jerr);
	em = json_object_get(o, "client_email");
	pk = json_object_get(o, "private_key");
	tu = json_object_get(o, "token_uri");
	if (!json_is_string(em) || !json_is_string(pk)) {
		perr(p, s, "%s.service_account_file: %s: not a service-account key (needs client_email "
		     "and private_key)%s", p->prefix, c->service_account_file, o ? "" : ": not JSON");
		goto out;
	}
	c->sa_client_email = xstrdup(json_string_value(em));
	c->sa_private_key = xstrdup(json_string_value(pk));
	if (!c->token_url)
		c->token_url = xstrdup(json_is_string(tu) ? json_string_value(tu)
		                                          : "https://oauth2.googleapis.com/token");
out:
	if (o) {
		/* the key's text lives in the JSON tree: wipe the private key there too */
		pk = json_object_get(o, "private_key");
		if (json_is_string(pk))
			explicit_bzero((char *)json_string_value(pk), json_string_length(pk));
		json_decref(o);
	}
	wipe_str(text);
	free(e);
}

/* Which source the present settings make; reports conflicts. */
static void pick_source(struct pctx *p, const config_setting_t *g, struct oauth2_conf *c)
{
	int n = (c->token_command != NULL) + (c->service_account_file != NULL) +
	        (c->refresh_token_file != NULL || c->client_id != NULL);
	if (n != 1) {
		perr(p, g, "%s: set exactly one token source: token_command; or token_url, client_id "
		     "and refresh_token_file (refresh grant); or token_url, client_id and "
		     "client_secret_file (client credentials); or service_account_file (JWT bearer)",
		     p->prefix);
		return;
	}
	if (c->token_command)
		c->source = OAUTH2_SRC_COMMAND;
	else if (c->service_account_file)
		c->source = OAUTH2_SRC_JWT_BEARER;
	else if (c->refresh_token_file)
		c->source = OAUTH2_SRC_REFRESH;
	else
		c->source = OAUTH2_SRC_CLIENT_CREDENTIALS;
	if ((c->source == OAUTH2_SRC_REFRESH || c->source == OAUTH2_SRC_CLIENT_CREDENTIALS) &&
	    (!c->token_url || !c->client_id))
		perr(p, g, "%s: the %s grant needs token_url and client_id", p->prefix,
		     oauth2_source_name(c->source));
	if (c->source == OAUTH2_SRC_CLIENT_CREDENTIALS && !c->client_secret_file)
		perr(p, g, "%s: client credentials need client_secret_file (or set refresh_token_file "
		     "for the refresh grant)", p->prefix);
	if (c->source == OAUTH2_SRC_COMMAND && (c->token_url || c->client_id || c->scope))
		perr(p, g, "%s: token_command takes no token_url, client_id or scope", p->prefix);
}

struct oauth2_conf *oauth2_conf_parse(const struct config_setting_t *grp, const char *prefix,
                                      oauth2_conf_err_fn err, void *ctx)
{
	struct pctx p = { prefix, err, ctx, 0 };
	const config_setting_t *g = (const config_setting_t *)grp, *url_s, *sec_s, *sa_s, *s;
	struct oauth2_conf *c = xcalloc(1, sizeof *c);
	char *e = NULL;

	c->where = xstrdup(prefix);
	c->command_timeout = 30;
	if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
		perr(&p, g, "%s must be a group { ... }", prefix);
		goto out;
	}
	check_keys(&p, g);
	pstr(&p, g, "token_command", &c->token_command, NULL);
	pstr(&p, g, "token_url", &c->token_url, &url_s);
	pstr(&p, g, "client_id", &c->client_id, NULL);
	pstr(&p, g, "client_secret_file", &c->client_secret_file, &sec_s);
	pstr(&p, g, "refresh_token_file", &c->refresh_token_file, NULL);
	pstr(&p, g, "scope", &c->scope, NULL);
	pstr(&p, g, "service_account_file", &c->service_account_file, &sa_s);
	pstr(&p, g, "subject", &c->subject, NULL);
	if ((s = config_setting_get_member(g, "command_timeout")) != NULL) {
		long long v = config_setting_type(s) == CONFIG_TYPE_INT ? config_setting_get_int(s) :
		              config_setting_type(s) == CONFIG_TYPE_INT64 ? config_setting_get_int64(s) : -1;
		if (v < 1 || v > MAX_COMMAND_TIMEOUT)
			perr(&p, s, "%s.command_timeout must be an integer from 1 to %ld seconds", prefix,
			     MAX_COMMAND_TIMEOUT);
		else
			c->command_timeout = (long)v;
	}
	if (c->token_url && !oauth2_url_allowed(c->token_url))
		perr(&p, url_s, "%s.token_url must be https:// (http:// only to a loopback host)", prefix);
	if (c->client_secret_file &&
	    oauth2_read_secret_file(c->client_secret_file, OAUTH2_SECRET_MAX, &c->client_secret,
	                            NULL, &e) != 0) {
		perr(&p, sec_s, "%s.client_secret_file: %s", prefix, e);
		free(e);
	}
	if (c->service_account_file)
		load_service_account(&p, sa_s, c);
	if (c->service_account_file && !c->scope)
		c->scope = xstrdup("https://mail.google.com/");
	pick_source(&p, g, c);
out:
	if (p.nerr) {
		oauth2_conf_free(c);
		return NULL;
	}
	return c;
}

/* tmpl's path with {username} replaced by user. */
static char *expand_user(const char *tmpl, const char *user)
{
	struct strbuf sb = { 0 };
	const char *q;
	while ((q = strstr(tmpl, "{username}")) != NULL) {
		strbuf_add(&sb, tmpl, (size_t)(q - tmpl));
		strbuf_adds(&sb, user);
		tmpl = q + 10;
	}
	strbuf_adds(&sb, tmpl);
	return strbuf_detach(&sb);
}

static char *dupnull(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

struct oauth2_conf *oauth2_conf_for(const struct oauth2_conf *t, const char *username,
                                    const char *prefix, const struct config_setting_t *where,
                                    oauth2_conf_err_fn err, void *ctx)
{
	struct oauth2_conf *c = xcalloc(1, sizeof *c);
	char *e = NULL, *tok = NULL;
	int missing = 0;

	c->source = t->source;
	c->where = xasprintf("%s.oauth2", prefix);
	c->token_command = dupnull(t->token_command);
	c->command_timeout = t->command_timeout;
	c->token_url = dupnull(t->token_url);
	c->client_id = dupnull(t->client_id);
	c->client_secret_file = dupnull(t->client_secret_file);
	c->client_secret = dupnull(t->client_secret);
	c->scope = dupnull(t->scope);
	c->service_account_file = dupnull(t->service_account_file);
	c->subject = dupnull(t->subject ? t->subject : (t->source == OAUTH2_SRC_JWT_BEARER ? username : NULL));
	c->sa_client_email = dupnull(t->sa_client_email);
	c->sa_private_key = dupnull(t->sa_private_key);
	if (t->refresh_token_file) {
		if (strstr(t->refresh_token_file, "/") && username && strchr(username, '/') &&
		    strstr(t->refresh_token_file, "{username}")) {
			char *msg = xasprintf("%s: refresh_token_file has {username} but the user name "
			                      "%s holds '/'", c->where, username);
			err(ctx, where, msg);
			free(msg);
			oauth2_conf_free(c);
			return NULL;
		}
		c->refresh_token_file = expand_user(t->refresh_token_file, username ? username : "");
		if (oauth2_read_secret_file(c->refresh_token_file, OAUTH2_SECRET_MAX, &tok, &missing,
		                            &e) != 0 && !missing) {
			char *msg = xasprintf("%s.refresh_token_file: %s", c->where, e);
			err(ctx, where, msg);
			free(msg);
			free(e);
			oauth2_conf_free(c);
			return NULL;
		}
		free(e);
		wipe_str(tok);
	}
	/* blocks with equal keys draw from one token: same source, same
	 * client, same grant (refresh token file, subject) and same scope */
	c->key = xasprintf("%s|%s|%s|%s|%s|%s|%s", oauth2_source_name(c->source),
	                   c->token_url ? c->token_url : "", c->client_id ? c->client_id : "",
	                   c->refresh_token_file ? c->refresh_token_file : "",
	                   c->scope ? c->scope : "", c->subject ? c->subject : "",
	                   c->token_command ? c->token_command : "");
	return c;
}
