/*
 * message.h - probe tokens and probe messages (docs/SPEC.md "Probe message").
 * Uses OpenSSL's RAND_bytes and HMAC-SHA256.
 */
#ifndef INBOXPROBE_MESSAGE_H
#define INBOXPROBE_MESSAGE_H

#include <stddef.h>
#include "common/model.h"

#define TOKEN_RANDOM_HEX 32   /* 128 random bits */
#define TOKEN_HMAC_HEX 16     /* first 8 bytes of HMAC-SHA256(key, random part + seed address) */

/*
 * Make a token: 32 lowercase hex digits from RAND_bytes; with key != NULL,
 * 16 more: the start of HMAC-SHA256(key, random-hex + seed_address).
 * out must hold TOKEN_MAX bytes. Returns 0, or -1 with *errstr (heap)
 * when the random source fails.
 */
int token_generate(const unsigned char *key, size_t keylen, const char *seed_address,
                   char out[TOKEN_MAX], char **errstr);

/*
 * The HMAC part of a token (exposed for tests): the first 8 bytes of
 * HMAC-SHA256(key, random_hex || seed_address) as 16 lowercase hex digits
 * plus NUL in out. random_hex and seed_address are plain C strings used
 * as given (concatenated without separator). Returns 0, or -1 when the
 * HMAC computation fails.
 */
int token_hmac_hex(const unsigned char *key, size_t keylen, const char *random_hex,
                   const char *seed_address, char out[TOKEN_HMAC_HEX + 1]);

/* 1 when token is well formed and (with key) its HMAC part verifies for
 * seed_address, compared in constant time; else 0. */
int token_verify(const unsigned char *key, size_t keylen, const char *seed_address,
                 const char *token);

struct message_params {
	const char *from;             /* header From and envelope sender */
	const char *to;               /* the seed address */
	const char *token;
	const char *subject_prefix;   /* UTF-8; RFC 2047-encoded when not ASCII */
	char *const *headers;         /* extra "Name: value" lines (may be NULL) */
	size_t nheaders;
	const char *template_text;    /* RFC 5322 template or NULL */
	double now;                   /* Unix seconds for Date: and the body */
};

/*
 * Build the probe: CRLF line endings, no line over 998 octets (headers
 * folded), Date with a numeric zone, Message-ID <TOKEN@from-domain>,
 * Subject "<prefix> <TOKEN>", X-Inboxprobe-Token, MIME-Version,
 * Content-Type text/plain; charset=utf-8. With a template, its headers and
 * body are kept except To, Date, Message-ID, X-Inboxprobe-Token, and every
 * {{token}} in Subject and body is replaced; Return-Path, Delivered-To
 * and Authentication-Results are dropped too (the receiving side adds
 * them, and a stale Authentication-Results would fake verdicts). A template
 * without Subject gets "<prefix> <TOKEN>", one without From gets p->from.
 * Template line ends are normalised to CRLF. Extra headers from
 * p->headers are added in both modes (non-ASCII values RFC 2047-encoded).
 * Not dot-stuffed (libcurl does
 * that). Raw UTF-8 in a template's Subject/Comments and in the display
 * names of From/Sender/Reply-To/Cc/Bcc is RFC 2047-encoded; other 8-bit
 * header text is refused; MIME-Version: 1.0 is added when a template has a
 * Content-Type but no MIME-Version. Returns a heap buffer (caller frees) and its length in *len, or
 * NULL with *errstr (heap) when the template is malformed.
 */
char *message_build(const struct message_params *p, size_t *len, char **errstr);

/*
 * Check that text (len bytes, a template file's contents) is an RFC 5322
 * message that message_build() accepts: header fields (name: value, with
 * folded continuation lines), a blank line, a body; LF or CRLF line ends;
 * no NUL byte; no line over 998 octets once {{token}} is replaced.
 * Returns 0, or -1 with *errstr (heap, names the template's line number).
 */
int message_template_check(const char *text, size_t len, char **errstr);

/* Encode a header text per RFC 2047 (UTF-8, "B" encoding, encoded-words of
 * at most 75 characters separated by CRLF SP) when it holds non-ASCII;
 * otherwise a copy. The input must be valid UTF-8 (invalid bytes are
 * encoded as they are, never overrunning a buffer). Heap result, caller
 * frees. */
char *rfc2047_encode(const char *utf8);

/* ---- Proof that a message is our probe (docs/SPEC.md "Finding the probe") ---- */

#define HEADER_FIELD_MAX 4096   /* longest address examined in a From field, octets */

/* What proves a message to be a given probe. All strings borrowed. */
struct probe_proof {
	const char *token;            /* the exact token looked for */
	const char *from;             /* our From address (addr-spec, see message_probe_from) */
	const unsigned char *key;     /* secret_file key, or NULL */
	size_t keylen;
	const struct hmac_key *old_keys;   /* previous_secret_files: also verify (rotation) */
	size_t nold_keys;
	const char *seed;             /* the seed address (the HMAC covers it) */
};

enum proof_result {
	PROOF_OK = 0,
	PROOF_NO_TOKEN,               /* no X-Inboxprobe-Token field */
	PROOF_TOKEN_MISMATCH,         /* its value is not exactly the token */
	PROOF_SEVERAL,                /* more than one X-Inboxprobe-Token or From field */
	PROOF_HMAC,                   /* with a key: the token's HMAC does not verify */
	PROOF_FROM,                   /* From absent, not one mailbox, or not our address */
	PROOF_TOO_LARGE               /* the fields are larger than a probe's ever are */
};

/*
 * Prove that a message whose header block is hdrs[0..len) (a full header
 * or the fields X-Inboxprobe-Token and From, LF or CRLF line ends) is the
 * probe p describes: exactly one X-Inboxprobe-Token field whose value
 * (unfolded, trimmed) equals p->token octet for octet; with p->key, the
 * token's HMAC part verifies for p->seed (token_verify) with p->key or one
 * of p->old_keys (the keys of earlier secret_files); exactly one From
 * field holding one mailbox whose address equals p->from (ASCII case
 * ignored). A Subject never proves anything: users reply to and forward
 * probes ("Re: inboxprobe TOKEN") and filters rewrite subjects.
 * Returns PROOF_OK (0) or the first enum proof_result that fails.
 */
int message_prove(const char *hdrs, size_t len, const struct probe_proof *p);

/* Static text for an enum proof_result, e.g. "not from our From address". */
const char *message_proof_text(int r);

/*
 * The addr-spec of a single-mailbox address field value (RFC 5322 3.4):
 * "addr", "Name <addr>", "\"Quoted, Name\" <addr>", with comments and
 * folding blanks removed. Writes it (NUL-terminated) to out. Returns 0, or
 * -1 when value holds no address, several mailboxes, an unterminated quote,
 * comment or angle address, or the address does not fit in outsz.
 */
int message_address_of(const char *value, char *out, size_t outsz);

/*
 * The From address a probe carries: the address of the template's From
 * field when template_text has one, else relay_from's address (or
 * relay_from as given when it does not parse). Heap string, caller frees;
 * NULL only when both are NULL.
 */
char *message_probe_from(const char *template_text, const char *relay_from);

/* RFC 5322 date-time with numeric zone for Unix time t in the host's
 * local zone, e.g. "Sun, 29 Nov 2026 13:10:49 +0000". out >= 40 bytes. */
void rfc5322_date(double t, char *out, size_t outsz);

#endif
