/*
 * oauth2_conf.h - the `oauth2 = { ... }` block of an IMAP block (seed,
 * imap_defaults, bounce_mailbox) or of the relay: where the OAuth 2.0
 * access token comes from. docs/SPEC.md "OAuth 2.0".
 *
 * Exactly one source per block:
 *   token_command                       a program printing an access token
 *   token_url + client_id + refresh_token_file   refresh grant (RFC 6749 6)
 *   token_url + client_id + client_secret_file   client credentials (RFC 6749 4.4)
 *   service_account_file                JWT bearer (RFC 7523), Google's JSON key
 *
 * Memory: a struct oauth2_conf owns every string in it; secrets
 * (client_secret, sa_private_key) are wiped by oauth2_conf_free().
 * Secret files readable or writable by group or others are refused.
 */
#ifndef INBOXPROBE_OAUTH2_CONF_H
#define INBOXPROBE_OAUTH2_CONF_H

#include <stddef.h>

enum oauth2_source {
	OAUTH2_SRC_COMMAND = 1,
	OAUTH2_SRC_REFRESH,
	OAUTH2_SRC_CLIENT_CREDENTIALS,
	OAUTH2_SRC_JWT_BEARER
};

struct oauth2_conf {
	enum oauth2_source source;
	char *where;               /* "seeds[0].imap.oauth2", for messages */
	char *token_command;       /* /bin/sh -c; stdout is the token */
	long command_timeout;      /* seconds, default 30 */
	char *token_url;           /* https://, or http:// to a loopback host */
	char *client_id;
	char *client_secret_file;
	char *client_secret;       /* secret, read at load; NULL when none */
	char *refresh_token_file;  /* {username} already expanded */
	char *scope;               /* NULL: none sent */
	char *service_account_file;
	char *subject;             /* JWT sub; NULL: the block's username */
	char *sa_client_email;     /* from the key file */
	char *sa_private_key;      /* secret, PEM, from the key file */
	char *key;                 /* identity of the source: blocks with equal keys share tokens */
};

struct config_setting_t;

/* Called once per problem with the setting it is about and a message that
 * names the setting's path; never a secret. */
typedef void (*oauth2_conf_err_fn)(void *ctx, const struct config_setting_t *s, const char *msg);

/*
 * Parse the oauth2 group grp (prefix: its path, e.g. "imap_defaults.oauth2").
 * Secret files are read and checked here (mode, size); refresh_token_file
 * may hold "{username}" and is checked by oauth2_conf_for(). Returns a
 * heap template, or NULL after reporting errors through err.
 */
struct oauth2_conf *oauth2_conf_parse(const struct config_setting_t *grp, const char *prefix,
                                      oauth2_conf_err_fn err, void *ctx);

/*
 * A block's own copy of tmpl for the SASL user username: "{username}" in
 * refresh_token_file replaced, subject defaulted, the refresh-token file's
 * mode checked when it exists (a missing file is reported when a token is
 * needed: `inboxprobe oauth2 authorize` creates it). where: the setting
 * errors are reported at. Returns NULL after reporting through err.
 */
struct oauth2_conf *oauth2_conf_for(const struct oauth2_conf *tmpl, const char *username,
                                    const char *prefix, const struct config_setting_t *where,
                                    oauth2_conf_err_fn err, void *ctx);

/* Release and wipe. NULL is allowed. */
void oauth2_conf_free(struct oauth2_conf *c);

/* Static name of the source for -v and messages: "token_command",
 * "refresh_token", "client_credentials", "jwt_bearer". */
const char *oauth2_source_name(enum oauth2_source s);

/*
 * Read a secret file: regular, not accessible by group or others, at most
 * max bytes, trailing white space stripped, not empty. Returns 0 with *out
 * (heap, caller wipes and frees) or -1 with *errstr "PATH: problem" (heap).
 * A missing file gives -1 with *missing = 1 (missing may be NULL).
 */
int oauth2_read_secret_file(const char *path, size_t max, char **out, int *missing, char **errstr);

/* 1 when url is https://, or http:// to 127.0.0.0/8, [::1] or localhost. */
int oauth2_url_allowed(const char *url);

#endif
