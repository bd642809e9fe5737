/*
 * retry.c - the retry class, diagnostic text and outcome of each IMAP
 * error (see retry.h): one table, one row per enum imap_err code.
 */
#include <config.h>

#include <stddef.h>
#include <string.h>

#include "prober/imap.h"
#include "prober/smtp.h"
#include "scheduler/retry.h"

static const struct {
	int rc;
	enum fail_class cls;
	const char *text;
} table[] = {
	{ IMAP_OK,           FAIL_NONE,  "IMAP OK" },
	{ IMAP_ECONNECT,     FAIL_WAIT,  "IMAP connection failed" },
	{ IMAP_ETLS,         FAIL_FINAL, "IMAP TLS refused" },
	{ IMAP_ENOSTARTTLS,  FAIL_FINAL, "IMAP server does not offer STARTTLS" },
	{ IMAP_EAUTH,        FAIL_FINAL, "IMAP authentication failed" },
	{ IMAP_EAUTHAPP,     FAIL_FINAL, "IMAP login needs an app password or OAuth" },
	{ IMAP_EUNAVAILABLE, FAIL_WAIT,  "IMAP server unavailable (too many connections)" },
	{ IMAP_EBYE,         FAIL_TEMP,  "IMAP connection lost" },
	{ IMAP_ETIMEOUT,     FAIL_FINAL, "IMAP timeout" },
	{ IMAP_EPROTO,       FAIL_FINAL, "IMAP protocol error" },
	{ IMAP_ENOFOLDER,    FAIL_FINAL, "IMAP folder cannot be selected" },
	{ IMAP_EUIDVALIDITY, FAIL_FINAL, "IMAP UIDVALIDITY changed" },
};

/* The row of rc, or the IMAP_EPROTO row for a code outside the enum. */
static size_t row(int rc)
{
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		if (table[i].rc == rc)
			return i;
	return rc == IMAP_EPROTO ? 0 : row(IMAP_EPROTO);
}

enum fail_class retry_class(int rc)
{
	return table[row(rc)].cls;
}

int retry_open_again(int rc)
{
	enum fail_class c = retry_class(rc);

	return c == FAIL_WAIT || c == FAIL_TEMP;
}

int retry_reconnect(int rc)
{
	return retry_class(rc) == FAIL_TEMP;
}

int retry_wants_relogin(const char *text)
{
	return text != NULL &&
	       (strstr(text, "AccessTokenExpired") != NULL || strstr(text, "Session invalidated") != NULL);
}

enum outcome retry_outcome(int rc)
{
	return rc == IMAP_OK ? OUTCOME_MISSING : OUTCOME_ERROR;
}

const char *retry_text(int rc)
{
	return table[row(rc)].text;
}

static const struct {
	int rc;
	enum fail_class cls;
} smtp_table[] = {
	{ SMTP_OK,       FAIL_NONE },
	{ SMTP_ETEMP,    FAIL_WAIT },    /* 4xx: the relay asks to come back later */
	{ SMTP_EPERM,    FAIL_FINAL },   /* 5xx */
	{ SMTP_ECONNECT, FAIL_WAIT },    /* refused, closed before the greeting */
	{ SMTP_ETLS,     FAIL_FINAL },   /* handshake, certificate, no STARTTLS */
	{ SMTP_EAUTH,    FAIL_FINAL },   /* 535 ..., no usable mechanism */
	{ SMTP_ETIMEOUT, FAIL_WAIT },    /* no greeting or reply in time */
	{ SMTP_EDROP,    FAIL_WAIT },    /* the connection lost mid-transaction */
	{ SMTP_EPROTO,   FAIL_FINAL },   /* a garbled reply */
	{ SMTP_ENOFILES, FAIL_FINAL },   /* ours: too many open files */
};

enum fail_class retry_smtp_class(int rc)
{
	for (size_t i = 0; i < sizeof smtp_table / sizeof smtp_table[0]; i++)
		if (smtp_table[i].rc == rc)
			return smtp_table[i].cls;
	return FAIL_FINAL;
}

int retry_smtp_again(int rc, int data_sent)
{
	return retry_smtp_class(rc) == FAIL_WAIT && (rc == SMTP_ETEMP || !data_sent);
}
