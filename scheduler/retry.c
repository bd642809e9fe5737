/*
 * retry.c - the retry class, diagnostic text and outcome of each IMAP
 * error (see retry.h): one table, one row per enum imap_err code.
 */
#include <config.h>

#include <stddef.h>
#include <string.h>

#include "prober/imap.h"
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
