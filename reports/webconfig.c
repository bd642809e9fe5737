/* webconfig.c - the exporter-toolkit-shaped web configuration file (webconfig.h). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "reports/webconfig.h"

#ifndef HAVE_WEBCONFIG
/* Built without libyaml or without bcrypt in crypt(3) (configure said so). */
int web_config_load(const char *path, struct web_config **out, char **errstr)
{
	*out = NULL;
	*errstr = xasprintf("%s: web.config_file (TLS, basic auth) is not supported by this build: "
	                    "it needs libyaml and crypt(3) with bcrypt at configure time\n", path);
	return -1;
}

int web_password_ok(const char *hash, const char *password)
{
	(void)hash;
	(void)password;
	return 0;
}
#else
#include <crypt.h>
#include <yaml.h>

#define WEBCONFIG_MAX (1024 * 1024)   /* the YAML file and each PEM file */

struct wctx {
	const char *path;
	struct strbuf errs;
	int nerrs;
	struct web_config *wc;
	char *cert_file, *key_file;
};

static void err(struct wctx *c, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void err(struct wctx *c, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;

	strbuf_addf(&c->errs, "%s:%lu: ", c->path, n ? (unsigned long)n->start_mark.line + 1 : 1UL);
	va_start(ap, fmt);
	strbuf_vaddf(&c->errs, fmt, ap);
	va_end(ap);
	strbuf_adds(&c->errs, "\n");
	c->nerrs++;
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static void load_tls(struct wctx *c, yaml_document_t *doc, yaml_node_t *key_node, yaml_node_t *map)
{
	if (map->type != YAML_MAPPING_NODE) {
		err(c, map, "tls_server_config must be a mapping");
		return;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		yaml_node_t *v = yaml_document_get_node(doc, p->value);
		const char *key = scalar(k), *val = scalar(v);

		if (key && (strcmp(key, "cert_file") == 0 || strcmp(key, "key_file") == 0)) {
			if (val == NULL || *val == '\0') {
				err(c, v, "tls_server_config.%s must be a file name", key);
				continue;
			}
			char **slot = key[0] == 'c' ? &c->cert_file : &c->key_file;
			free(*slot);
			*slot = xstrdup(val);
		} else {
			err(c, k, "tls_server_config.%s is not supported (only cert_file and key_file)",
			    key ? key : "?");
		}
	}
	if ((c->cert_file == NULL) != (c->key_file == NULL))
		err(c, key_node, "tls_server_config needs both cert_file and key_file");
}

static void load_users(struct wctx *c, yaml_document_t *doc, yaml_node_t *map)
{
	if (map->type != YAML_MAPPING_NODE) {
		err(c, map, "basic_auth_users must be a mapping of user: bcrypt hash");
		return;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		yaml_node_t *v = yaml_document_get_node(doc, p->value);
		const char *user = scalar(k), *hash = scalar(v);

		if (user == NULL || *user == '\0' || strchr(user, ':') != NULL) {
			err(c, k, "basic_auth_users: a user name must be a non-empty string without ':'");
			continue;
		}
		if (hash == NULL || strlen(hash) != 60 || hash[0] != '$' || hash[1] != '2' ||
		    (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y') || hash[3] != '$') {
			err(c, v, "basic_auth_users.%s: not a bcrypt hash ($2a$, $2b$ or $2y$, 60 "
			    "characters; make one with htpasswd -nBC 10 \"\" | tr -d ':\\n')", user);
			continue;
		}
		for (size_t i = 0; i < c->wc->nusers; i++)
			if (strcmp(c->wc->users[i].name, user) == 0)
				err(c, k, "basic_auth_users.%s is given twice", user);
		c->wc->users = xrealloc(c->wc->users, (c->wc->nusers + 1) * sizeof *c->wc->users);
		c->wc->users[c->wc->nusers].name = xstrdup(user);
		c->wc->users[c->wc->nusers++].hash = xstrdup(hash);
	}
}

/* Read a PEM file named by the YAML file into *out. */
static void read_pem(struct wctx *c, const char *key, const char *file, const char *marker,
                     char **out)
{
	char *e = NULL;
	char *text = read_file_capped(file, WEBCONFIG_MAX, NULL, &e);

	if (text == NULL) {
		strbuf_addf(&c->errs, "%s: tls_server_config.%s: %s\n", c->path, key, e);
		c->nerrs++;
		free(e);
		return;
	}
	if (strstr(text, marker) == NULL) {
		strbuf_addf(&c->errs, "%s: tls_server_config.%s: %s holds no PEM %s\n", c->path, key,
		            file, key[0] == 'c' ? "certificate" : "private key");
		c->nerrs++;
		explicit_bzero(text, strlen(text));
		free(text);
		return;
	}
	*out = text;
}

static void load_root(struct wctx *c, yaml_document_t *doc)
{
	yaml_node_t *root = yaml_document_get_root_node(doc);

	if (root == NULL)
		return;   /* an empty file: no TLS, no auth */
	if (root->type != YAML_MAPPING_NODE) {
		err(c, root, "the web configuration must be a mapping");
		return;
	}
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		yaml_node_t *v = yaml_document_get_node(doc, p->value);
		const char *key = scalar(k);

		if (key && strcmp(key, "tls_server_config") == 0)
			load_tls(c, doc, k, v);
		else if (key && strcmp(key, "basic_auth_users") == 0)
			load_users(c, doc, v);
		else
			err(c, k, "%s is not supported (only tls_server_config and basic_auth_users)",
			    key ? key : "?");
	}
}

int web_config_load(const char *path, struct web_config **out, char **errstr)
{
	struct wctx c = { .path = path, .errs = STRBUF_INIT };
	yaml_parser_t parser;
	yaml_document_t doc;
	size_t len = 0;
	char *e = NULL, *text;
	int ret = -1;

	*out = NULL;
	text = read_file_capped(path, WEBCONFIG_MAX, &len, &e);
	if (text == NULL) {
		*errstr = xasprintf("%s\n", e);
		free(e);
		return -1;
	}
	c.wc = xcalloc(1, sizeof *c.wc);
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		strbuf_addf(&c.errs, "%s:%lu: %s\n", path, (unsigned long)parser.problem_mark.line + 1,
		            parser.problem ? parser.problem : "YAML syntax error");
		c.nerrs++;
	} else {
		load_root(&c, &doc);
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	if (c.nerrs == 0 && c.cert_file && c.key_file) {
		read_pem(&c, "cert_file", c.cert_file, "-----BEGIN CERTIFICATE-----", &c.wc->cert_pem);
		read_pem(&c, "key_file", c.key_file, "PRIVATE KEY-----", &c.wc->key_pem);
	}
	if (c.nerrs > 0) {
		*errstr = strbuf_detach(&c.errs);
		goto out;
	}
	*out = c.wc;
	c.wc = NULL;
	ret = 0;
out:
	strbuf_free(&c.errs);
	web_config_free(c.wc);
	free(c.cert_file);
	free(c.key_file);
	free(text);
	return ret;
}

int web_password_ok(const char *hash, const char *password)
{
	struct crypt_data *cd = xcalloc(1, sizeof *cd);   /* 32 KiB: not on the stack */
	const char *h = crypt_r(password, hash, cd);
	size_t n = strlen(hash);
	unsigned char diff = 0;
	int ok;

	if (h == NULL || h[0] == '*' || strlen(h) != n) {
		ok = 0;
	} else {
		for (size_t i = 0; i < n; i++)
			diff |= (unsigned char)(h[i] ^ hash[i]);
		ok = diff == 0;
	}
	explicit_bzero(cd, sizeof *cd);
	free(cd);
	return ok;
}
#endif

void web_config_free(struct web_config *wc)
{
	if (wc == NULL)
		return;
	free(wc->cert_pem);
	if (wc->key_pem != NULL) {
		explicit_bzero(wc->key_pem, strlen(wc->key_pem));
		free(wc->key_pem);
	}
	for (size_t i = 0; i < wc->nusers; i++) {
		free(wc->users[i].name);
		free(wc->users[i].hash);
	}
	free(wc->users);
	free(wc);
}
