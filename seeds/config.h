/*
 * config.h - the inboxprobe configuration (libconfig syntax), loaded and
 * validated in one pass. Follows docs/SPEC.md "Configuration".
 *
 * Errors are collected, not stopped at: config_load() reports every problem
 * it finds as "FILE:LINE: message" (isync style), one per line.
 *
 * Memory: a struct config and everything it points to is owned by the
 * config and released by config_free(). Secrets (passwords, HMAC key) live
 * only here; they are never printed and are wiped by config_free().
 */
#ifndef INBOXPROBE_CONFIG_H
#define INBOXPROBE_CONFIG_H

#include <stddef.h>
#include "common/model.h"

struct oauth2_conf;

enum tls_mode {
	TLS_REQUIRED = 0,   /* implicit TLS for smtps/imaps, STARTTLS required for smtp/imap */
	TLS_NONE            /* plain text (loopback tests only) */
};

enum cleanup_mode {
	CLEANUP_DELETE = 0,
	CLEANUP_TRASH,
	CLEANUP_KEEP
};

/* An IMAP account: a seed's mailbox or the bounce mailbox. */
struct imap_conf {
	char *url;              /* as written, e.g. "imaps://imap.example.net:993" */
	int implicit_tls;       /* 1 for imaps:// */
	char *host;             /* from url */
	int port;               /* from url, or 993 / 143 */
	enum tls_mode tls;
	char *ca_file;          /* NULL: system trust store */
	char *username;
	char *password;         /* secret; NULL when none configured */
	struct oauth2_conf *oauth2;  /* OAuth 2.0 instead of a password, or NULL (seeds/oauth2_conf.h) */
	int auth_mechanism;     /* with oauth2: 0 auto, 1 XOAUTH2, 2 OAUTHBEARER (enum sasl_mech) */
	int line;               /* line of the block, for messages */
};

struct relay_conf {
	char *url;              /* smtps://host[:port] or smtp://host[:port] */
	int implicit_tls;
	char *host;
	int port;
	enum tls_mode tls;
	char *ca_file;
	char *username;         /* NULL: no AUTH */
	char *password;         /* secret */
	struct oauth2_conf *oauth2;  /* OAuth 2.0 instead of a password, or NULL */
	int auth_mechanism;     /* with oauth2: 0 auto, 1 XOAUTH2, 2 OAUTHBEARER */
	char *from;             /* header From and envelope sender */
	long connect_timeout;   /* seconds */
	long timeout;           /* seconds, whole transaction */
	long connections;       /* persistent connections, probes one after another on each;
	                           default 4, 1..64 */
};

struct probe_conf {
	long deadline;          /* seconds */
	long poll_interval;     /* seconds between checks when IDLE is not used */
	int idle;               /* 1 (default): IDLE (RFC 2177) where offered; 0: poll */
	enum cleanup_mode cleanup;
	char *subject_prefix;   /* UTF-8 */
	unsigned char *secret;  /* HMAC key bytes, NULL when no secret_file */
	size_t secret_len;
	struct hmac_key *old_secrets;   /* previous_secret_files: keys that still prove the
	                                   tokens they signed, never sign (key rotation) */
	size_t nold_secrets;
	char *template_path;    /* NULL when none */
	char *template_text;    /* the template file's contents, loaded and checked */
	char **headers;         /* extra "Name: value" lines */
	size_t nheaders;
	char *deadline_at;      /* "FILE:LINE" of probe.deadline; NULL when not set */
};

struct imap_limits {
	long per_host;          /* default 64, at most 10,000 */
	char *per_host_at;      /* "FILE:LINE" of imap_limits.per_host; NULL when not set */
	long per_account;       /* default 2 (one IDLE session per folder), at most 10,000 */
	long connect_timeout;   /* seconds, default 10 */
	long timeout;           /* seconds per IMAP command, default 30 */
};

/* SLO thresholds; a provider's overrides already merged by config_slo_for(). */
struct slo_conf {
	double min_inbox_ratio;   /* 0..1; default 0.9 */
	double max_latency_p99;   /* seconds; default 300 */
	long max_missing;         /* -1 when not set */
	int evaluate_window;      /* 0: "round", 1: "window" */
	long window;              /* seconds, default 3600 */
	long min_samples;         /* default 1 */
	unsigned require_auth;    /* AUTH_REQ_* bits: methods whose trusted verdict must be pass */
	double min_primary_ratio; /* 0..1 share of Gmail primary tab among known tabs; <= 0: off */
};

/* slo.require_auth methods (RFC 8601 method names), bit i = method i of
 * config_auth_methods[]. arc is refused: arc=none is normal for direct mail. */
#define AUTH_REQ_METHODS 7
extern const char *const config_auth_methods[AUTH_REQ_METHODS];   /* "spf", "dkim", "dmarc", ... */

/* providers.NAME: how a provider writes its Authentication-Results. */
struct provider_conf {
	char *name;
	char **authserv_ids;    /* patterns, exact or "*.suffix"; NULL: built-in defaults */
	size_t nauthserv_ids;
	int microsoft;          /* auth_results: -1 unset (default from the IMAP host),
	                           0 "standard", 1 "microsoft" (fields without authserv-id) */
};

struct slo_override {
	char *provider;
	int has_min_inbox_ratio, has_max_latency_p99, has_max_missing;
	double min_inbox_ratio;
	double max_latency_p99;
	long max_missing;
};

struct report_conf {
	char *textfile;         /* each NULL when not set */
	char *openmetrics;
	char *json;
	char *junit;
};

struct state_conf {
	char *path;             /* NULL: no state store */
	long retention_days;    /* default 30 */
};

/* Daemon only (`inboxprobe daemon`): docs/SPEC.md "Daemon". */
struct schedule_conf {
	long interval;          /* seconds between round starts, default 300 */
	long jitter;            /* seconds, each start spread by up to this (0..interval-1), default 0 */
	char *at;               /* "FILE:LINE" of schedule.interval, else of the schedule block;
	                           NULL without one */
};

struct web_conf {
	char *listen_address;   /* as written; default "127.0.0.1:9788" */
	char *host;             /* address to bind (IPv6 without brackets); NULL: every address */
	int port;               /* 1..65535 */
	char *config_file;      /* exporter-toolkit web configuration (TLS, basic auth), or NULL */
};

struct seed_conf {
	char *address;
	char *provider;
	struct imap_conf imap;  /* imap_defaults already merged in */
	char *spam_folder;      /* modified UTF-7 wire name, or NULL */
	int line;
};

struct config {
	char *file;             /* path as given */
	char *name;             /* the `config` label value */
	struct relay_conf relay;
	struct probe_conf probe;
	struct imap_limits limits;
	struct slo_conf slo;    /* global values */
	struct slo_override *slo_overrides;
	size_t nslo_overrides;
	struct report_conf report;
	int has_bounce;
	struct imap_conf bounce;
	struct state_conf state;
	char *lock_dir;         /* run lock directory; NULL: beside the store or the system one */
	struct seed_conf *seeds;
	size_t nseeds;
	struct provider_conf *provider_confs;   /* the providers = { ... } blocks */
	size_t nprovider_confs;
	char **providers;       /* distinct providers in first-seen order */
	size_t nproviders;
	struct schedule_conf schedule;
	struct web_conf web;
};

/*
 * Load and validate the configuration at path.
 * On success returns 0 and sets *out (caller frees with config_free()).
 * On failure returns -1, *out is NULL and *errstr is a heap string (caller
 * frees) holding every error, one "FILE:LINE: message" per line.
 * Secret files readable by group or others are refused (error); every
 * message about a file names the setting ("relay.password_file: PATH: ...").
 * Integers are read in 64 bits as written in the file (libconfig 1.5 keeps
 * only the low 32 bits of an integer without L suffix) and range-checked.
 * A secret of imap_defaults that fails to load is reported once, at its
 * line; the blocks that inherit it add no error.
 * Validation rules, defaults and messages: docs/configuration.md.
 * A problem without a line (missing relay or seeds) reads "FILE: message".
 * Relative paths in the file are relative to the working directory.
 */
int config_load(const char *path, struct config **out, char **errstr);

/* Release a config and wipe its secrets. NULL is allowed. */
void config_free(struct config *cfg);

/*
 * The daemon's warning when a round can still be running at the next
 * scheduled start: probe.deadline + schedule.jitter >= schedule.interval
 * (rounds never overlap: the daemon skips that start). One line, no
 * newline, "FILE:LINE: " first (probe.deadline's line, else
 * schedule.interval's, else the schedule block's; the file alone when none
 * is written), naming what to change. Returns a heap string the caller
 * frees, or NULL when rounds fit. `inboxprobe daemon` warns at start,
 * `inboxprobe check` when the file has a schedule block.
 */
char *config_schedule_warning(const struct config *cfg);

/* The providers.NAME block for provider, or NULL when there is none. */
const struct provider_conf *config_provider(const struct config *cfg, const char *provider);

/* The SLO thresholds for provider: globals with that provider's overrides. */
struct slo_conf config_slo_for(const struct config *cfg, const char *provider);

/* Parse "smtp://", "smtps://", "imap://", "imaps://" URLs (scheme case-
 * insensitive): scheme://host[:port][/]. IPv6 literals go in brackets
 * ("imap://[::1]:1143"); *host_out gets them without the brackets.
 * Default ports: smtp 587 (submission), smtps 465, imap 143, imaps 993.
 * No user info, path, query or fragment. scheme_out gets the lower-case
 * scheme (static string); *host_out is a heap string the caller frees.
 * Any out pointer may be NULL. Returns 0, or -1 with *errstr (heap)
 * describing what is wrong (nothing else is set then). */
int config_parse_url(const char *url, const char **scheme_out, char **host_out,
                     int *port_out, char **errstr);

#endif
