/* verdicts.c - a found probe's verdicts, path and tab (see verdicts.h). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/verdicts.h"
#include "prober/imap.h"
#include "scheduler/driver.h"
#include "prober/authres.h"
#include "prober/trace.h"
#include "common/util.h"

void verdicts_policy(const struct config *cfg, const struct seed_conf *seed,
                     const char *const **ids, size_t *nids, int *microsoft)
{
	const struct provider_conf *pc = config_provider(cfg, seed->provider);
	struct trace_policy def;

	trace_default_policy(seed->imap.host, &def);
	*ids = def.authserv_ids;
	*nids = def.nids;
	*microsoft = def.microsoft;
	if (pc != NULL && pc->nauthserv_ids > 0) {
		*ids = (const char *const *)pc->authserv_ids;
		*nids = pc->nauthserv_ids;
	}
	if (pc != NULL && pc->microsoft >= 0)
		*microsoft = pc->microsoft;
}

/* -v: every verdict, then the path hop by hop with the deltas (a negative
 * one is clock skew between those two hosts). */
static void log_trace(const char *addr, const struct probe_trace *t)
{
	char buf[512];
	if (log_verbose <= 0)
		return;
	for (int i = 0; i < t->nauth; i++)
		log_debug("%s: verdict %s", addr, authres_format(&t->auth[i], buf, sizeof buf));
	for (int i = 0; i < t->nhops; i++) {
		const struct hop *h = &t->hops[i];
		const struct hop *p = i > 0 ? &t->hops[i - 1] : NULL;
		if (p && p->time > 0 && h->time > 0)
			snprintf(buf, sizeof buf, "%+.0f s%s", h->time - p->time,
			         h->time < p->time ? " (clock skew between these hosts)" : "");
		else
			xstrlcpy(buf, i ? "? s" : "", sizeof buf);
		log_debug("%s: hop %d: by %s%s%s%s%s %s", addr, i + 1, h->by[0] ? h->by : "?",
		          h->with[0] ? " with " : "", h->with, h->id[0] ? " id " : "", h->id,
		          i == t->relay_hop ? "(the relay's hop)" : buf);
	}
}

void verdicts_examine(const struct config *cfg, const struct seed_conf *seed,
                      const struct imap_driver *drv, struct imap_session *s,
                      unsigned long uid, int inbox, const char *queue_id, double internaldate,
                      struct probe_trace *t, int *rc)
{
	struct trace_policy pol;
	char *hdr = NULL, *err = NULL;
	size_t len = 0;

	memset(t, 0, sizeof *t);
	t->relay_hop = -1;
	verdicts_policy(cfg, seed, &pol.authserv_ids, &pol.nids, &pol.microsoft);
	*rc = drv->fetch_header(s, uid, TRACE_HEADER_MAX, &hdr, &len, &err);
	if (*rc != IMAP_OK) {
		snprintf(t->note, sizeof t->note, "header not fetched: %s", err ? err : imap_err_name(*rc));
		log_debug("%s: %s", seed->address, t->note);
		goto out;
	}
	trace_build(hdr, len, queue_id, &pol, internaldate, t);
	if (inbox && drv->has_capability(s, "X-GM-EXT-1")) {
		free(err);
		err = NULL;
		*rc = drv->gmail_tab(s, uid, t->tab, sizeof t->tab, &err);
		if (*rc != IMAP_OK) {
			xstrlcpy(t->tab, "unknown", sizeof t->tab);
			log_warn("%s: Gmail tab not found: %s", seed->address, err ? err : imap_err_name(*rc));
		}
	}
	log_debug("%s: %d of %d Authentication-Results fields trusted, %d verdicts, %d hops%s%s",
	          seed->address, t->auth_trusted, t->auth_fields, t->nauth, t->nhops,
	          t->note[0] ? ": " : "", t->note);
	log_trace(seed->address, t);
out:
	free(hdr);
	free(err);
}
