/*
 * webconfig.h - the daemon's web configuration file (web.config_file), in
 * the shape of Prometheus' exporter-toolkit (docs/web-configuration.md in
 * prometheus/exporter-toolkit), YAML:
 *
 *   tls_server_config:
 *     cert_file: /etc/inboxprobe/web.crt   # PEM certificate (chain)
 *     key_file: /etc/inboxprobe/web.key    # PEM private key
 *   basic_auth_users:
 *     prometheus: $2y$10$...               # bcrypt hash (htpasswd -nB)
 *
 * Only these keys are accepted; any other (http_server_config,
 * client_auth_type, ...) is an error rather than silently ignored. TLS is
 * 1.2 or newer. libyaml stays inside reports/webconfig.c.
 */
#ifndef INBOXPROBE_WEBCONFIG_H
#define INBOXPROBE_WEBCONFIG_H

#include <stddef.h>

struct web_user {
	char *name;
	char *hash;              /* bcrypt: $2a$, $2b$ or $2y$ */
};

struct web_config {
	char *cert_pem;          /* NULL: no TLS; else the certificate file's contents */
	char *key_pem;           /* secret: wiped by web_config_free() */
	struct web_user *users;  /* empty: no basic auth */
	size_t nusers;
};

/* Load and check the file at path (certificate and key files are read;
 * they must be PEM). Returns 0 and *out (free with web_config_free()), or
 * -1 with *errstr (heap) holding every problem, one "PATH:LINE: message"
 * per line (LINE from the YAML parser, 1-based). */
int web_config_load(const char *path, struct web_config **out, char **errstr);
void web_config_free(struct web_config *wc);

/* 1 when password matches the bcrypt hash (crypt(3), libxcrypt), else 0.
 * Compares in constant time. */
int web_password_ok(const char *hash, const char *password);

#endif
