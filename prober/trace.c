/* trace.c - trusted verdicts and the delivery path of a found probe. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prober/trace.h"
#include "prober/authres.h"
#include "prober/received.h"
#include "common/hfield.h"
#include "common/util.h"

#define FIELDS_MAX 400          /* Received / Authentication-Results fields looked at */

/* Built-in authserv-id patterns, by IMAP host. Sources (public samples):
 *  Gmail   "Authentication-Results: mx.google.com; ..." rspamd/rspamd#78,
 *          lieser/dkim_verifier#31, qianweicheng/hello-world demo.md.
 *  Yahoo   "atlas207.free.mail.gq1.yahoo.com; ..." pimlie/authres_status#39,
 *          "mta1192.mail.ir2.yahoo.com" pimlie/authres_status#41.
 *  AOL     runs on Yahoo's mail platform: *.aol.com (issue 11) and *.yahoo.com.
 *  iCloud  "dkim-verifier.icloud.com; dkim=pass ..." lieser/dkim_verifier#473
 *          (also spf.icloud.com, dmarc.icloud.com: one field per method).
 *  Fastmail "mx1.messagingengine.com": several fields under one id
 *          (NousResearch/hermes-agent#68606, fastmail/authentication_milter#144).
 *  Microsoft writes no authserv-id at all (roehling/postsrsd#101,
 *          haraka/Haraka#1935, BugAlertDotOrg/bugalert#38). */
static const char *const gmail_ids[] = { "mx.google.com" };
static const char *const yahoo_ids[] = { "*.yahoo.com" };
static const char *const aol_ids[] = { "*.aol.com", "*.yahoo.com" };
static const char *const icloud_ids[] = { "*.icloud.com" };
static const char *const fastmail_ids[] = { "*.messagingengine.com" };

static const struct {
	const char *host;
	const char *const *ids;
	size_t nids;
	int microsoft;
} defaults[] = {
	{ "imap.gmail.com", gmail_ids, 1, 0 },
	{ "imap.googlemail.com", gmail_ids, 1, 0 },
	{ "imap.mail.yahoo.com", yahoo_ids, 1, 0 },
	{ "imap.aol.com", aol_ids, 2, 0 },
	{ "export.imap.aol.com", aol_ids, 2, 0 },
	{ "imap.mail.me.com", icloud_ids, 1, 0 },
	{ "imap.fastmail.com", fastmail_ids, 1, 0 },
	{ "outlook.office365.com", NULL, 0, 1 },
	{ "imap-mail.outlook.com", NULL, 0, 1 },
};

int trace_default_policy(const char *imap_host, struct trace_policy *pol)
{
	memset(pol, 0, sizeof *pol);
	if (imap_host == NULL)
		return 0;
	for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
		if (strcasecmp(imap_host, defaults[i].host) == 0) {
			pol->authserv_ids = defaults[i].ids;
			pol->nids = defaults[i].nids;
			pol->microsoft = defaults[i].microsoft;
			return 1;
		}
	return 0;
}

static int field_trusted(const struct authres_field *f, const struct trace_policy *pol)
{
	if (f->authserv_id[0] == '\0')
		return pol->microsoft;
	for (size_t i = 0; i < pol->nids; i++)
		if (authres_id_matches(f->authserv_id, pol->authserv_ids[i]))
			return 1;
	return 0;
}

struct seen_field {
	size_t pos;          /* field number in the header, 0 = topmost */
	struct hop hop;      /* Received */
};

/* Collect the Received fields (header order; at most FIELDS_MAX, in *rcv,
 * grown as they come: a probe has a handful, not 400 x 280 bytes to
 * clear) and find the relay's one. */
static size_t collect_hops(const char *hdr, size_t len, const char *queue_id,
                           struct seen_field **rcvp, size_t *relay_pos, int *found)
{
	struct hfield_iter it;
	const char *name;
	size_t namelen, n = 0, pos = 0, cap = 0;
	char *val;
	struct seen_field *rcv = NULL;

	*found = 0;
	hfield_begin(&it, hdr, len);
	for (; hfield_next(&it, &name, &namelen, &val); pos++, free(val)) {
		if (!hfield_is(name, namelen, "Received") || n >= FIELDS_MAX)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			rcv = xrealloc(rcv, cap * sizeof *rcv);
		}
		memset(&rcv[n], 0, sizeof rcv[n]);
		rcv[n].pos = pos;
		received_parse(val, &rcv[n].hop);
		if (!*found && queue_id && *queue_id && strcmp(rcv[n].hop.id, queue_id) == 0) {
			*found = 1;
			*relay_pos = pos;
		}
		n++;
	}
	*rcvp = rcv;
	return n;
}

/* Merge the trusted Authentication-Results fields above relay_pos. */
static void collect_verdicts(const char *hdr, size_t len, size_t relay_pos,
                             const struct trace_policy *pol, struct probe_trace *out)
{
	struct hfield_iter it;
	const char *name;
	size_t namelen, pos = 0;
	char *val;
	/* 8 KiB: on the heap, not on each of a round's 1,000 thread stacks */
	struct authres_field *f = xmalloc(sizeof *f);

	hfield_begin(&it, hdr, len);
	for (; hfield_next(&it, &name, &namelen, &val); pos++, free(val)) {
		if (!hfield_is(name, namelen, "Authentication-Results"))
			continue;
		out->auth_fields++;
		if (pos >= relay_pos || authres_parse(val, f) != 0 || !field_trusted(f, pol))
			continue;
		out->auth_trusted++;
		for (int i = 0; i < f->nv && out->nauth < AUTH_MAX; i++)
			out->auth[out->nauth++] = f->v[i];
	}
	free(f);
}

static void stages(struct probe_trace *t, double delivered)
{
	int r = t->relay_hop;
	if (r < 0 || r + 1 >= t->nhops)
		return;
	const struct hop *a = &t->hops[r], *b = &t->hops[r + 1];
	if (a->time > 0 && b->time > 0) {
		t->have_relay = 1;
		t->stage_relay = b->time - a->time;
	}
	double end = delivered > 0 ? delivered : (t->nhops - 1 > r + 1 ? t->hops[t->nhops - 1].time : 0);
	if (end > 0 && b->time > 0) {
		t->have_receiving = 1;
		t->stage_receiving = end - b->time;
	}
}

void trace_build(const char *hdr, size_t len, const char *queue_id, const struct trace_policy *pol,
                 double delivered, struct probe_trace *out)
{
	struct seen_field *rcv = NULL;
	size_t relay_pos = 0, n;
	int found;
	char tab[sizeof out->tab];

	memcpy(tab, out->tab, sizeof tab);
	memset(out, 0, sizeof *out);
	memcpy(out->tab, tab, sizeof tab);
	out->fetched = 1;
	out->relay_hop = -1;
	if (len > TRACE_HEADER_MAX)
		len = TRACE_HEADER_MAX;
	n = collect_hops(hdr, len, queue_id, &rcv, &relay_pos, &found);
	/* hops oldest first; keep the newest HOPS_MAX */
	size_t keep = n < HOPS_MAX ? n : HOPS_MAX;
	for (size_t i = 0; i < keep; i++) {
		const struct seen_field *sf = &rcv[keep - 1 - i];
		out->hops[i] = sf->hop;
		if (found && sf->pos == relay_pos)
			out->relay_hop = (int)i;
	}
	out->nhops = (int)keep;
	if (!found) {
		snprintf(out->note, sizeof out->note, queue_id && *queue_id
		         ? "the relay's Received field (id %s) is not in the header: no verdict trusted"
		         : "the relay gave no queue id: no verdict trusted", queue_id ? queue_id : "");
		collect_verdicts(hdr, len, 0, pol, out);   /* counts fields, trusts none */
	} else {
		collect_verdicts(hdr, len, relay_pos, pol, out);
		if (out->auth_trusted == 0)
			snprintf(out->note, sizeof out->note, out->auth_fields
			         ? "no Authentication-Results field from the receiving provider"
			         : "no Authentication-Results field");
	}
	stages(out, delivered);
	free(rcv);
}

void trace_copy(struct probe_trace *dst, const struct probe_trace *src)
{
	int na = src->nauth < 0 ? 0 : src->nauth > AUTH_MAX ? AUTH_MAX : src->nauth;
	int nh = src->nhops < 0 ? 0 : src->nhops > HOPS_MAX ? HOPS_MAX : src->nhops;

	dst->fetched = src->fetched;
	dst->relay_hop = src->relay_hop;
	dst->auth_fields = src->auth_fields;
	dst->auth_trusted = src->auth_trusted;
	memcpy(dst->auth, src->auth, (size_t)na * sizeof src->auth[0]);
	dst->nauth = src->nauth;
	memcpy(dst->hops, src->hops, (size_t)nh * sizeof src->hops[0]);
	dst->nhops = src->nhops;
	dst->have_relay = src->have_relay;
	dst->have_receiving = src->have_receiving;
	dst->stage_relay = src->stage_relay;
	dst->stage_receiving = src->stage_receiving;
	memcpy(dst->tab, src->tab, sizeof dst->tab);
	memcpy(dst->note, src->note, sizeof dst->note);
}

int trace_method_verdict(const struct probe_trace *t, const char *method, int *passed)
{
	int any = 0;
	*passed = 0;
	for (int i = 0; i < t->nauth; i++)
		if (strcmp(t->auth[i].method, method) == 0) {
			any = 1;
			if (strcmp(t->auth[i].result, "pass") == 0)
				*passed = 1;
		}
	return any;
}
