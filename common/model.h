/*
 * model.h - the data every module shares: outcomes, the relay's reply, one
 * probe's result. Plain structs with fixed-size, capped buffers so that a
 * result can be copied, stored and reported without ownership questions.
 *
 * Follows docs/SPEC.md "Outcomes".
 */
#ifndef INBOXPROBE_MODEL_H
#define INBOXPROBE_MODEL_H

#include <stddef.h>

/* One outcome per probe per round (docs/SPEC.md "Outcomes"). The order is the
 * order of every report. */
enum outcome {
	OUTCOME_INBOX = 0,
	OUTCOME_SPAM,
	OUTCOME_MISSING,
	OUTCOME_REJECTED,
	OUTCOME_DEFERRED,
	OUTCOME_ERROR,
	OUTCOME__COUNT
};

/* "inbox", "spam", "missing", "rejected", "deferred", "error". */
const char *outcome_name(enum outcome o);
/* Inverse of outcome_name; returns -1 for an unknown name. */
int outcome_from_name(const char *name);

/* Size caps for anything that holds server data. */
#define TOKEN_MAX 64          /* 32 hex + 16 hex HMAC + NUL fits */
#define ENHANCED_MAX 16       /* "5.7.26" */
#define REPLY_TEXT_MAX 512
#define QUEUE_ID_MAX 64
#define FOLDER_MAX 256
#define DIAG_MAX 512

/* A relay's (or remote MTA's) reply. code 0 means "no reply at all". */
struct smtp_reply {
	int code;                        /* 250, 451, 550 ...; 0 = none */
	char enhanced[ENHANCED_MAX];     /* RFC 3463 "x.y.z", "" when absent */
	char text[REPLY_TEXT_MAX];       /* reply text, lines joined by " ", no code prefix */
	char queue_id[QUEUE_ID_MAX];     /* from "250 2.0.0 Ok: queued as X", "" when absent */
	char stage[8];                   /* "connect", "auth", "mail", "rcpt", "data", "" */
	int data_sent;                   /* 1: DATA was answered 354 and the message began to go
	                                    out: the final "." may have reached the relay, which
	                                    may deliver it (a retry could deliver it twice); 0:
	                                    no message was sent */
};

/* One SMTP transaction attempt for a probe (4xx replies, and failures
 * before the message went out, are retried with backoff: scheduler/
 * retry.h; every attempt is kept, up to ATTEMPTS_MAX, the last one
 * always). */
#define ATTEMPTS_MAX 8
struct smtp_attempt {
	double time;                     /* Unix seconds when the attempt ended */
	int code;                        /* reply code, 0 = no reply */
	char enhanced[ENHANCED_MAX];
	char stage[8];
	char error[24];                  /* smtp_err_name() of the result: "ok", "temp", "perm", "connect"... */
};

/* What a DSN (RFC 3464) said about one probe. */
struct dsn_info {
	int present;                     /* 0: no DSN seen */
	int action;                      /* DSN_ACTION_* from prober/dsn.h */
	char status[ENHANCED_MAX];       /* "5.7.1" */
	char remote_mta[256];            /* Remote-MTA value, type stripped */
	char diagnostic[DIAG_MAX];       /* Diagnostic-Code value, type stripped */
};

/* One authentication verdict (RFC 8601 resinfo) the receiving provider
 * wrote into the delivered probe: "dkim=fail (bad signature)
 * header.d=example.com". Strings are lower-cased where RFC 8601 makes them
 * case-insensitive (method, result, property names), values as written. */
#define AUTH_MAX 12          /* verdicts kept per probe (merged over trusted fields) */
#define AUTH_PROPS_MAX 4     /* properties kept per verdict */
struct auth_prop {
	char name[24];           /* "smtp.mailfrom", "header.d", "action" */
	char value[96];
};
struct auth_verdict {
	char method[24];         /* "spf", "dkim", "dmarc", "arc", "compauth", ... (version stripped) */
	char result[24];         /* "pass", "fail", "none", ... as written, lower-cased */
	char reason[128];        /* reason= value, else the first comment after the result; "" */
	struct auth_prop props[AUTH_PROPS_MAX];
	int nprops;
};

/* One Received trace field (RFC 5321 section 4.4) of the delivered probe. */
#define HOPS_MAX 12          /* hops kept per probe: the newest ones */
struct hop {
	char from[96];           /* From-domain as written, "" when absent */
	char by[96];             /* By-domain ("mx.google.com", "2002:a05:...") */
	char with[16];           /* protocol: "ESMTPS", "LMTP", ... */
	char id[64];             /* queue id */
	double time;             /* Unix seconds of the field's date-time; 0 = unparsable */
};

/* What the delivered probe's header says about authentication and path.
 * Filled only for a found probe whose header could be fetched. The arrays
 * come last, the smaller first: a probe uses a few of their slots, and the
 * pages of a round's results array that only unused slots span are never
 * touched (prober/trace.h trace_copy()). */
struct probe_trace {
	int fetched;             /* 1: the header was fetched and parsed */
	int relay_hop;           /* index in hops[] of the relay's own field (its queue
	                            id), -1 when not found: then nothing is trusted */
	int auth_fields;         /* Authentication-Results fields in the header */
	int auth_trusted;        /* of those, trusted (above the relay's hop, authserv-id ok) */
	int nauth;               /* merged verdicts from the trusted fields */
	int nhops;               /* hops, oldest first (reverse of header order) */
	int have_relay, have_receiving;   /* 0: that stage is absent (gap), not zero */
	double stage_relay;      /* seconds from the relay's hop to the next hop (may be < 0: skew) */
	double stage_receiving;  /* seconds from that hop to delivery (INTERNALDATE; may be < 0) */
	char tab[12];            /* Gmail category: "primary", "promotions", "social",
	                            "updates", "forums", "unknown"; "" when not asked */
	char note[128];          /* why something is missing ("relay's Received field not found") */
	struct hop hops[HOPS_MAX];
	struct auth_verdict auth[AUTH_MAX];
};

/* One probe's result for one seed in one round. Filled by the scheduler,
 * read by reports and the state store. All strings are NUL-terminated and
 * truncated to their buffer. */
struct probe_result {
	size_t seed_index;               /* index into config->seeds */
	char token[TOKEN_MAX];
	double submit_time;              /* Unix seconds of the 250 to end-of-DATA; 0 = never accepted.
	                                    For a transaction cut after DATA (timeout, drop) the
	                                    time it was cut: the probe may have been delivered */
	double send_start;               /* Unix seconds when the accepted transaction began */
	int attempts;                    /* SMTP transactions tried this round */
	struct smtp_attempt history[ATTEMPTS_MAX];  /* the first ATTEMPTS_MAX - 1 and the last */
	int nhistory;
	struct smtp_reply reply;         /* the final reply for this recipient */
	enum outcome outcome;
	char folder[FOLDER_MAX];         /* folder where found, decoded UTF-8 for display; "" if not found */
	double internaldate;             /* Unix seconds of INTERNALDATE; 0 if not found */
	double found_time;               /* Unix seconds when inboxprobe saw it */
	int have_latency;                /* 1: latency is a valid sample for percentiles */
	double latency;                  /* INTERNALDATE - submit_time, seconds (may be reported even if skewed) */
	double discovery_lag;            /* found_time - internaldate, seconds */
	double clock_skew;               /* >0 when latency was negative beyond 2 s: its magnitude */
	struct dsn_info dsn;
	char diagnostic[DIAG_MAX];       /* human explanation (enhanced-code meaning, DSN, error reason) */
	char cleanup[64];                /* "deleted", "trashed", "kept", "kept: no UIDPLUS/MOVE", "" */
	/* SPEC "Latency": arrival is in [INTERNALDATE, min(INTERNALDATE + 1 s, found_time)]. */
	double arrival;                  /* Unix seconds: the estimate inside that interval; 0 unknown */
	double latency_error_bound;      /* seconds: half the interval's width; NaN unknown */
	int announced;                   /* 1: an IDLE EXISTS announced it (found_time is that moment) */
	double announce_delay;           /* seconds: the server's learned announcement delay that
	                                    narrowed the estimate; NaN when none was used */
	int not_sent;                    /* 1: no probe sent, the mailbox could not be armed */
	char watch[16];                  /* how it was watched: "idle", "idle+poll", "poll", "visits", "" */
	double check_interval;           /* seconds: mean time between scheduled checks; NaN none */
	struct probe_trace trace;        /* verdicts, path and tab of a found probe; last, its
	                                    arrays' unused slots last of all (struct probe_trace) */
};

/* An HMAC key for probe tokens (probe.secret_file, probe.previous_secret_files):
 * len bytes at key, owned by the configuration. */
struct hmac_key {
	unsigned char *key;
	size_t len;
};

#endif
