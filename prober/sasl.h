/*
 * sasl.h - SASL XOAUTH2 and OAUTHBEARER (RFC 7628) for IMAP and SMTP.
 *
 * Builds the initial client responses byte-exact, decodes the server's
 * error challenge (base64 JSON, RFC 7628 3.2.2) into a printable summary,
 * picks the mechanism from what the server offers, and drives IMAP
 * AUTHENTICATE (RFC 3501 6.2.2, SASL-IR RFC 4959) over a libetpan session
 * with our own line I/O: libetpan's mailimap_oauth2_authenticate() sends
 * XOAUTH2 only and swallows the challenge.
 *
 * No function here logs, and no returned text ever holds the token.
 * Library types stay inside prober/: the IMAP session is passed as void *.
 */
#ifndef INBOXPROBE_SASL_H
#define INBOXPROBE_SASL_H

#include <stddef.h>

enum sasl_mech {
	SASL_MECH_AUTO = 0,      /* configuration: pick from the server's offer */
	SASL_MECH_XOAUTH2,       /* Google, Microsoft, Yahoo */
	SASL_MECH_OAUTHBEARER    /* RFC 7628: Google, Yahoo, Dovecot */
};

/* Static name of a mechanism as written on the wire: "XOAUTH2",
 * "OAUTHBEARER" ("auto" for SASL_MECH_AUTO). */
const char *sasl_mech_name(enum sasl_mech m);

/* Standard base64 (RFC 4648 section 4, with padding) of n bytes.
 * Heap string, caller frees. */
char *sasl_base64(const void *data, size_t n);

/* Decode standard base64 (padding optional, no white space). Returns a
 * heap buffer with a NUL added and its length in *len, or NULL when the
 * text is not base64. Caller frees (and wipes when it held a secret). */
unsigned char *sasl_unbase64(const char *text, size_t *len);

/*
 * XOAUTH2 initial response, already base64 (Google's "OAuth 2.0
 * Mechanism" page): base64("user=" U "\x01auth=Bearer " T "\x01\x01").
 * Heap string holding the token: the caller wipes and frees it.
 */
char *sasl_xoauth2_initial(const char *user, const char *token);

/*
 * OAUTHBEARER initial response, already base64 (RFC 7628 3.1):
 * base64("n,a=" U ",\x01host=" H "\x01port=" P "\x01auth=Bearer " T
 * "\x01\x01"). U is a saslname (RFC 5801): ',' is sent as "=2C" and '='
 * as "=3D". port <= 0 leaves out the port pair. Heap string holding the
 * token: the caller wipes and frees it.
 */
char *sasl_oauthbearer_initial(const char *user, const char *host, int port, const char *token);

/*
 * Describe a server challenge (the base64 text after "+ " or "334 ")
 * for a diagnostic: the JSON error object of RFC 7628 3.2.2 becomes
 * e.g. `status "401", schemes "bearer", scope "mail"`; a challenge that is
 * not JSON is shown as printable text. Writes at most outsz bytes
 * (NUL-terminated, server text capped and control characters replaced).
 * An empty challenge gives "".
 */
void sasl_describe_challenge(const char *b64, char *out, size_t outsz);

/*
 * Choose the mechanism: forced (not SASL_MECH_AUTO) is returned as is
 * when the server offers it; otherwise OAUTHBEARER when offered (the
 * standard), else XOAUTH2. Returns SASL_MECH_AUTO (0) when the server
 * offers neither (or not the forced one).
 */
enum sasl_mech sasl_choose(enum sasl_mech forced, int has_xoauth2, int has_oauthbearer);

/* Result of one IMAP AUTHENTICATE exchange. */
enum sasl_result {
	SASL_OK = 0,         /* tagged OK: authenticated */
	SASL_REJECTED,       /* tagged NO: the token (or user) was refused */
	SASL_BAD,            /* tagged BAD: mechanism or syntax refused */
	SASL_BYE,            /* server said BYE or the connection dropped */
	SASL_EIO             /* write failed, timeout or unparsable reply */
};

struct sasl_outcome {
	char text[240];      /* server's tagged reply text, printable, capped */
	char challenge[240]; /* described challenge (sasl_describe_challenge), or "" */
	int unavailable;     /* [UNAVAILABLE] or "try again later": not the token's fault */
};

/*
 * Run "TAG AUTHENTICATE MECH <initial response>" on an established libetpan
 * session (mailimap *, passed as void *; TLS already up, the caller armed
 * the stream's time limit). With SASL-IR (RFC 4959) the response goes
 * inline; without it, after the server's empty "+". A "+ CHALLENGE" after
 * the response is an error report: it is described into out->challenge
 * and answered as the mechanism requires (an empty line for XOAUTH2,
 * "AQ==" i.e. %x01 for OAUTHBEARER, RFC 7628 3.2.3) so the tagged NO
 * follows. Untagged lines are skipped. On SASL_OK the libetpan session is
 * marked authenticated. Returns an enum sasl_result.
 */
int sasl_imap_authenticate(void *mailimap_session, enum sasl_mech mech, int sasl_ir,
                           const char *user, const char *host, int port, const char *token,
                           struct sasl_outcome *out);

#endif
