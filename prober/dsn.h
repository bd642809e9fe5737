/*
 * dsn.h - Delivery Status Notifications (RFC 3464, RFC 6522
 * multipart/report) as they come back to the envelope sender: Postfix,
 * Exchange-style and Gmail-style. Pure parsing, no network.
 */
#ifndef INBOXPROBE_DSN_H
#define INBOXPROBE_DSN_H

#include <stddef.h>
#include "common/model.h"

enum dsn_action {
	DSN_ACTION_NONE = 0,
	DSN_ACTION_FAILED,
	DSN_ACTION_DELAYED,
	DSN_ACTION_DELIVERED,
	DSN_ACTION_RELAYED,
	DSN_ACTION_EXPANDED
};

/* "failed", "delayed" ... ; "none" for DSN_ACTION_NONE. */
const char *dsn_action_name(int action);

/*
 * Decide whether msg (a whole RFC 5322 message, CRLF or LF, at most len
 * bytes, need not be NUL-terminated) is a DSN that concerns one of the
 * tokens. A token counts when it appears in the returned message or
 * headers part (text/rfc822-headers, message/rfc822), or, for DSNs that
 * are not multipart/report, anywhere in the body.
 * On a match returns 1, sets *token_index and fills *info from the
 * per-recipient fields (Action, Status, Remote-MTA, Diagnostic-Code; a
 * "failed" block wins over "delayed"). Returns 0 when the message is not a
 * DSN or names none of the tokens. Never fails on malformed input; base64
 * and quoted-printable parts are decoded.
 */
int dsn_match(const char *msg, size_t len, const char *const *tokens, size_t ntokens,
              size_t *token_index, struct dsn_info *info);

#endif
