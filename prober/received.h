/*
 * received.h - the Received trace field (RFC 5321 section 4.4, RFC 5322
 * section 3.6.7) and the path of a delivered probe.
 *
 * Real shapes parsed: Postfix ("from h (h [ip]) by mx (Postfix) with
 * ESMTPS id QID for <a>; date"), Exim ("... (Exim 4.96) (envelope-from
 * <a>) id 1r5AbC-000123-Xy for a; date"), Gmail ("by 2002:a05:...
 * with SMTP id ...; date"), Microsoft ("from X (2603:10b6:...) by
 * Y.outlook.com (2603:10b6:...) with Microsoft SMTP Server (...) id
 * 15.20...; date") and Dovecot LMTP ("from h by host with LMTP id ...
 * (envelope-from <a>) for <a>; date").
 */
#ifndef INBOXPROBE_RECEIVED_H
#define INBOXPROBE_RECEIVED_H

#include "common/model.h"

/*
 * Parse one Received field value (unfolded) into *h (fully overwritten):
 * the from, by, with and id clauses (the first word of each; comments
 * skipped; unknown words ignored) and the date-time after the last ';'
 * outside comments (h->time 0 when absent or unparsable). Values longer
 * than their buffers are truncated. Returns 0, or -1 when the field has
 * neither a by clause nor a date.
 */
int received_parse(const char *value, struct hop *h);

#endif
