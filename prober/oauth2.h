/*
 * oauth2.h - OAuth 2.0 access tokens for SASL XOAUTH2/OAUTHBEARER: the
 * token sources of seeds/oauth2_conf.h, a cache, refresh and write-back.
 * docs/SPEC.md "OAuth 2.0".
 *
 * Sources: a token command (bounded in time; its stderr is shown on
 * failure, never its stdout); the refresh-token grant (RFC 6749 section 6)
 * whose rotated refresh token is written back atomically (temp file in the
 * same directory, fsync, rename, mode 0600) under an exclusive lock on
 * REFRESH_TOKEN_FILE.lock before the access token is used; client
 * credentials (RFC 6749 4.4); the JWT bearer grant (RFC 7523), assertion
 * signed RS256 with OpenSSL.
 *
 * Cache: access tokens are kept in memory and in a file per source
 * (oauth2-HASH.json, mode 0600) in the cache directory, until 60 seconds
 * (or a tenth of their lifetime, whichever is less) before expires_in runs
 * out. Blocks whose configuration names the same source share one token
 * and one refresh; other processes (cron runs, `folders`, the daemon) see
 * the refreshed token through the file under the same lock.
 *
 * HTTP goes through libcurl with certificates verified; only https:// or
 * http:// to loopback is accepted (checked at load). No token, secret or
 * assertion is ever logged or put into an error message.
 *
 * Error codes: OAUTH2_OK (0) or one of enum oauth2_err, with *errstr a heap
 * string (caller frees) that names the block ("seeds[0].imap.oauth2") and
 * the cause.
 */
#ifndef INBOXPROBE_OAUTH2_H
#define INBOXPROBE_OAUTH2_H

#include "seeds/oauth2_conf.h"

enum oauth2_err {
	OAUTH2_OK = 0,
	OAUTH2_EUNREACHABLE,   /* token endpoint unreachable, timed out or 5xx */
	OAUTH2_EGRANT,         /* invalid_grant: refresh token expired or revoked, consent again */
	OAUTH2_ECLIENT,        /* invalid_client / unauthorized_client */
	OAUTH2_ESCOPE,         /* invalid_scope */
	OAUTH2_ECOMMAND,       /* token_command failed, timed out or printed nothing */
	OAUTH2_EFILE,          /* refresh-token / cache file missing, unsafe or not writable */
	OAUTH2_EPROTO          /* any other refusal or an unreadable answer */
};

/* Static short name of an error code ("invalid_grant", "unreachable", ...). */
const char *oauth2_err_name(int err);

/*
 * Where access tokens are cached: the directory of state_path when given
 * (the state store), else $STATE_DIRECTORY (its first entry), else
 * $XDG_STATE_HOME/inboxprobe, else ~/.local/state/inboxprobe (created,
 * mode 0700). Call once before any token is fetched; NULL is allowed. A
 * directory that cannot be created is logged at the first token fetched,
 * not here.
 */
void oauth2_set_cache_dir(const char *state_path);

/*
 * An access token for block c (user: the SASL identity). rejected: the
 * token the mail server just refused, or NULL; a cached token equal to it
 * is not returned again: a fresh one is fetched (the caller retries the
 * login once with it). *token is a heap string the caller wipes and frees.
 * Thread-safe. Returns OAUTH2_OK or an enum oauth2_err with *errstr.
 */
int oauth2_get_token(const struct oauth2_conf *c, const char *rejected, char **token,
                     char **errstr);

/* Forget every cached token in memory (tests; a SIGHUP reload). */
void oauth2_forget(void);

/*
 * The signed JWT (RFC 7519, RS256 RFC 7518 3.3) for the JWT bearer grant
 * (RFC 7523 2.1): header {"alg":"RS256","typ":"JWT"}, claims iss =
 * client_email, scope, aud, iat = now, exp = now + 3600, and sub when
 * subject is not NULL. pem: the PKCS#8 or PKCS#1 private key. *jwt is
 * heap (a credential: wipe and free). Returns 0 or -1 with *errstr.
 */
int oauth2_jwt_assertion(const char *client_email, const char *pem, const char *subject,
                         const char *scope, const char *aud, long now, char **jwt,
                         char **errstr);

/* base64url without padding (RFC 4648 section 5), heap. */
char *oauth2_base64url(const void *data, size_t n);

/*
 * POST an application/x-www-form-urlencoded body (names[i]=values[i],
 * n pairs, each escaped) to url and read a JSON answer (at most 64 KiB).
 * *status gets the HTTP status, *json the parsed object as an opaque
 * pointer (json_t *, caller json_decref()s; NULL when not JSON). Returns
 * OAUTH2_OK or OAUTH2_EUNREACHABLE with *errstr. what names the block.
 */
int oauth2_post_form(const char *what, const char *url, const char *const *names,
                     const char *const *values, size_t n, long *status, void **json,
                     char **errstr);

/*
 * Classify a token endpoint's JSON answer (RFC 6749 5.1 / 5.2). On
 * success *token (heap, secret), *expires_in (seconds; 3600 when absent)
 * and *refresh (heap, secret, or NULL when the answer has none) are set.
 * Otherwise returns the enum oauth2_err of its "error" with *errstr
 * naming it and a hint (invalid_grant: consent again).
 */
int oauth2_parse_token_answer(const char *what, const char *url, long status, void *json,
                              char **token, long *expires_in, char **refresh, char **errstr);

/* Write a secret atomically: write_secret_atomic() (common/util.h: a new
 * mkostemp file in path's directory, mode 0600, fsync, rename over path,
 * fsync the directory; a planted link or FIFO is never followed). 0 or -1
 * with *errstr. */
int oauth2_write_secret(const char *path, const char *data, char **errstr);

/*
 * Store a refresh token obtained by consent (`oauth2 authorize`) in c's
 * refresh_token_file, under the same lock as refreshes, atomically, mode
 * 0600. Returns OAUTH2_OK or OAUTH2_EFILE with *errstr.
 */
int oauth2_store_refresh_token(const struct oauth2_conf *c, const char *refresh_token,
                               char **errstr);

#endif
