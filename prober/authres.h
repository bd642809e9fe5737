/*
 * authres.h - the Authentication-Results header field (RFC 8601).
 *
 * Parses one field value (unfolded, as common/hfield.h gives it) into its
 * authserv-id, optional version and resinfos (method, result, reason,
 * properties), with comments (RFC 5322 CFWS, nested) allowed wherever
 * RFC 8601 section 2.2 allows them. Tolerates what real receivers write:
 * Microsoft's fields without an authserv-id ("spf=pass (sender IP is ...)
 * smtp.mailfrom=...; outlook.com; dkim=...; ...;compauth=pass reason=100")
 * with bare "outlook.com;" items and properties without a ptype
 * ("action=none"); a resinfo that cannot be parsed is skipped up to the
 * next ';' and counted, never guessed.
 */
#ifndef INBOXPROBE_AUTHRES_H
#define INBOXPROBE_AUTHRES_H

#include <stddef.h>
#include "common/model.h"

struct authres_field {
	char authserv_id[128];          /* lower-cased; "" when the field has none */
	int version;                    /* authres-version, 0 when absent */
	int none;                       /* "authserv-id; none": no method was applied */
	struct auth_verdict v[AUTH_MAX];
	int nv;
	int skipped;                    /* resinfos not kept: malformed, or past AUTH_MAX */
};

/*
 * Parse the value of one Authentication-Results field into *out (fully
 * overwritten). Strings longer than their buffers are truncated. Returns
 * 0, or -1 when the value holds neither an authserv-id nor any method
 * (empty or garbage): *out then has nv == 0.
 */
int authres_parse(const char *value, struct authres_field *out);

/* 1 when authserv_id matches pattern: equal (ASCII case-insensitive), or
 * pattern "*.suffix" and authserv_id ends with ".suffix" (at least one
 * label before it). "" never matches. */
int authres_id_matches(const char *authserv_id, const char *pattern);

/* Format a verdict as "dkim=fail (bad signature) header.d=example.com"
 * into buf (always NUL-terminated, truncated). Returns buf. */
char *authres_format(const struct auth_verdict *v, char *buf, size_t bufsz);

#endif
