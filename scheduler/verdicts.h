/*
 * verdicts.h - what a found probe's header says, read over the seed's IMAP
 * session before the probe is cleaned up: the receiving provider's
 * trusted authentication verdicts, the path from the relay, and at Gmail
 * the inbox tab. docs/SPEC.md "Authentication verdicts and the delivery
 * path"; the trust rules are prober/trace.h's.
 */
#ifndef INBOXPROBE_VERDICTS_H
#define INBOXPROBE_VERDICTS_H

#include <stddef.h>
#include "common/model.h"
#include "seeds/config.h"

struct imap_session;
struct imap_driver;

/* The trust policy for seed: the providers.NAME block's authserv_id
 * patterns and auth_results mode when set, else the built-in defaults for
 * the seed's IMAP host (prober/trace.h). Points into cfg or static data. */
void verdicts_policy(const struct config *cfg, const struct seed_conf *seed,
                     const char *const **ids, size_t *nids, int *microsoft);

/*
 * Fill *t for the probe at UID uid of the folder selected on s (spoken to
 * through drv, scheduler/driver.h): fetch its
 * header (BODY.PEEK[HEADER], capped at TRACE_HEADER_MAX), trust and merge
 * its Authentication-Results fields, parse its Received path (the relay's
 * hop found by queue_id), and for an inbox probe at a server with
 * X-GM-EXT-1 find its tab. internaldate ends the receiving stage (0:
 * unknown). Never fails the probe: an IMAP error leaves t->fetched 0 and
 * says why in t->note (and *rc holds the IMAP code so the caller can
 * tell a dead session; IMAP_OK otherwise).
 */
void verdicts_examine(const struct config *cfg, const struct seed_conf *seed,
                      const struct imap_driver *drv, struct imap_session *s,
                      unsigned long uid, int inbox, const char *queue_id, double internaldate,
                      struct probe_trace *t, int *rc);

#endif
