/*
 * watch.c - arm a seed's mailbox before its probe is sent, then watch it
 * until the probe is found (see round_int.h, SPEC "What it is" and
 * "Latency").
 *
 * Arming: one login, the spam folder resolved, earlier rounds' pending
 * probes looked for once, UIDNEXT recorded for INBOX and the spam folder,
 * and IDLE (RFC 2177) started where the server offers it. Later searches
 * look only at UIDs from the armed UIDNEXT on.
 *
 * Watching, by preference:
 * - one session, INBOX selected and in IDLE, with NOTIFY (RFC 5465) where
 *   the server offers it: NOTIFY SET (selected (MessageNew MessageExpunge))
 *   (mailboxes SPAM (MessageNew MessageExpunge)). New mail in INBOX comes
 *   as "* n EXISTS", in the spam folder as an untagged "* STATUS SPAM
 *   (MESSAGES n UIDNEXT u ...)" with no UID. The sequence that follows a
 *   STATUS (service()): DONE; SELECT SPAM (this ends INBOX's selection);
 *   UID SEARCH from its armed UIDNEXT, FETCH, cleanup; SELECT INBOX and
 *   search it too (mail that reached INBOX while SPAM was selected was not
 *   announced: INBOX was neither selected nor in the NOTIFY list); IDLE.
 *   NOTIFY SET stays in force across the SELECTs; a new session (after a
 *   reconnect) or a NOTIFICATIONOVERFLOW sets it again (start_idle());
 *   NOTIFY refused (NO/BAD) falls through to the next way;
 * - two sessions, one IDLEing on INBOX and one on the spam folder, when
 *   imap_limits lets every seed of the host have two (per_account >= 2 and
 *   2 x seeds on the host <= per_host);
 * - one session IDLEing on INBOX, interrupted every poll_interval to look
 *   in the spam folder;
 * - polling both folders every poll_interval (no IDLE, probe.idle = false
 *   or --no-idle).
 * The moment an EXISTS (or a NOTIFY STATUS) read during IDLE reached the
 * host (the kernel's receive time of its segment, driver rx_time) is when
 * the messages it announced were seen (found_time; SPEC "Latency"), and it
 * triggers the search at once; a probe it did not announce (it landed
 * after: a sequence number above the EXISTS's n, a UID not below the
 * STATUS's UIDNEXT) or found otherwise was seen when the search's answer
 * reached the host.
 * IDLE sessions are also checked every max(poll_interval, 30 s) (an
 * EXISTS that libetpan dropped before the "+" continuation is not missed
 * for longer) and IDLE is renewed before the 29 minutes after which
 * servers may log an idle client out.
 * A dropped connection or BYE at any step is reconnected once per session
 * (a server that kicks the user closes both).
 * The watch ends last_look_reserve() before the deadline: then each
 * watched folder is searched once over the whole folder by the token (the
 * last look, last_look(); in turns, the last scheduled visit before it
 * is due, else an extra visit), so a server's wrong
 * UIDNEXT or missing announcement cannot leave a probe that is there
 * missing.
 */
#include <config.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "prober/dsn.h"
#include "prober/imap.h"
#include "prober/trace.h"
#include "scheduler/retry.h"
#include "scheduler/dispatch.h"
#include "scheduler/round_int.h"
#include "scheduler/verdicts.h"
#include "seeds/folders.h"

#define IDLE_RENEW_SECONDS 1500.0   /* RFC 2177: re-issue IDLE at least every 29 minutes */
#define IDLE_SAFETY_TICK 30.0       /* seconds between checks of a folder watched by IDLE */
#define RELOGIN_MAX 3               /* new logins asked for by a BYE, per seed and round */
#define NTOK (1 + ROUND_PENDING_PER_SEED)
#define LAST_LOOK_SECONDS 1.0       /* kept before the deadline for last_look() */
#define LAST_LOOK_GRACE 1.0         /* seconds past the deadline its commands may take */

enum { F_INBOX = 0, F_SPAM = 1 };

struct seed_watch {
	const char *tokens[NTOK];
	size_t ntokens;
	double since;
	int want[NTOK];                  /* tokens still looked for; 0 is this round's probe */
	int pend_idx[NTOK];              /* index into p->pending, -1 for 0 */
	int said_kept;                   /* "probe kept" was said for this seed */
	struct imap_session *s[2];       /* [0] INBOX (and spam with one session); [1] spam */
	int nsess;
	int slots;                       /* connection slots held */
	int idle;                        /* watching by IDLE */
	int notify;                      /* one session: NOTIFY announces the spam folder */
	int spam_dirty;                  /* NOTIFY: a STATUS announced new mail in spam... */
	double spam_seen;                /* ...at this moment (Unix seconds), */
	unsigned long spam_below;        /* ...for the UIDs below this (0: none named) */
	unsigned long exists_n[2];       /* per session: n of the EXISTS that made it dirty */
	double idle_since[2];            /* now_mono() when IDLE last started */
	int reconnected[2];              /* per session: its one reconnect was used */
	int relogins;                    /* new logins a BYE asked for */
	char *wire[2], *display[2];      /* folder wire and display names */
	char *trash;
	unsigned long uidnext[2];        /* armed UIDNEXT per folder; 0 unknown */
	unsigned long uidvalidity[2];    /* the UIDVALIDITY uidnext[] belongs to; 0 unknown */
	int visit;                       /* seeds outnumber the limits: short visits in turns */
	double last_check;               /* now_mono() of the last scheduled check; 0 none */
	double sum_gaps;                 /* seconds between scheduled checks, summed */
	int ngaps;
	char why[96];                    /* why arming failed (for not_armable) */
	char detail[DIAG_MAX];
};

/* Remember why arming failed; returns rc. */
static int arm_fail(struct seed_watch *w, int rc, const char *why, const char *detail)
{
	xstrlcpy(w->why, why, sizeof w->why);
	xstrlcpy(w->detail, detail ? detail : "", sizeof w->detail);
	return rc;
}

static const char *const kinds[2] = { "inbox", "spam" };

static int sess_of(const struct seed_watch *w, int f)
{
	return w->nsess == 2 ? f : 0;
}

static int wanted(const struct seed_watch *w)
{
	for (size_t t = 0; t < w->ntokens; t++)
		if (w->want[t])
			return 1;
	return 0;
}

static void set_diag(struct round_ctx *ctx, struct probe_result *res, int error, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Write the seed's diagnostic (and error outcome) under the round's lock:
 * the bounce thread reads results concurrently. */
static void set_diag(struct round_ctx *ctx, struct probe_result *res, int error, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&ctx->mu);
	va_start(ap, fmt);
	vsnprintf(res->diagnostic, DIAG_MAX, fmt, ap);
	va_end(ap);
	if (error)
		res->outcome = OUTCOME_ERROR;
	pthread_mutex_unlock(&ctx->mu);
}

/* ---- found probes -------------------------------------------------------- */

static int reconnect(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int k);

/* Remove the proved probe h of folder f (SPEC "Cleanup"); a BYE or a drop
 * on the way reconnects the session once and tries again. */
static void cleanup_hit(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int f,
                        const struct imap_hit *h, const char *token, char *what, size_t whatsz)
{
	const char *addr = ctx->cfg->seeds[idx].address;
	int k = sess_of(w, f);
	char *err = NULL;
	int rc;

	if (ctx->cfg->probe.cleanup == CLEANUP_KEEP) {
		xstrlcpy(what, "kept", whatsz);
		return;
	}
	rc = ctx->drv->cleanup(w->s[k], w->wire[f], h->uidvalidity, h->uid, token, ctx->cfg->probe.cleanup,
	                  w->trash, what, whatsz, &err);
	if (retry_reconnect(rc))
		set_diag(ctx, &ctx->results[idx], 0, "%s", err ? err : "connection lost");
	if (retry_reconnect(rc) && reconnect(ctx, idx, w, k) == IMAP_OK) {
		free(err);
		err = NULL;
		rc = ctx->drv->cleanup(w->s[k], w->wire[f], h->uidvalidity, h->uid, token,
		                  ctx->cfg->probe.cleanup, w->trash, what, whatsz, &err);
	}
	if (rc != IMAP_OK) {
		log_warn("%s: cleanup of UID %lu failed: %s", addr, h->uid, err ? err : imap_err_name(rc));
		snprintf(what, whatsz, "failed: %s", imap_err_name(rc));
	} else if (strncmp(what, "kept", 4) == 0 && !w->said_kept) {
		/* Said once per seed: the server cannot remove only our message. */
		w->said_kept = 1;
		log_warn("%s: probe left in %s (%s); inboxprobe never runs a plain EXPUNGE", addr,
		         w->wire[f], what);
	}
	free(err);
}

/* This round's probe found in folder f at found (Unix seconds). */
static void record_found(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int f,
                         const struct imap_hit *h, double found, int announced, const char *what,
                         const struct probe_trace *tr)
{
	struct probe_result *res = &ctx->results[idx];

	round_mark(ctx, (long)idx, "found");
	pthread_mutex_lock(&ctx->mu);
	trace_copy(&res->trace, tr);
	res->outcome = f == F_INBOX ? OUTCOME_INBOX : OUTCOME_SPAM;
	xstrlcpy(res->folder, w->display[f], FOLDER_MAX);
	res->announced = announced;
	round_set_latency(res, res->send_start, res->submit_time, h->internaldate, found, -1);
	res->diagnostic[0] = '\0';
	if (!(h->internaldate > 0))
		snprintf(res->diagnostic, DIAG_MAX, "the server gave no INTERNALDATE: latency unknown");
	xstrlcpy(res->cleanup, what, sizeof res->cleanup);
	pthread_mutex_unlock(&ctx->mu);
	round_progress(ctx, "%s: found in %s after %.3fs%s", ctx->cfg->seeds[idx].address,
	               w->display[f], res->latency, !announced ? "" :
	               w->notify && f == F_SPAM ? " (announced by NOTIFY)" : " (announced by IDLE)");
}

/* An earlier round's probe found in folder f. */
static void record_late(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int f, size_t t,
                        const struct imap_hit *h, double found, const char *what)
{
	const struct round_pending *pp = &ctx->p->pending[w->pend_idx[t]];
	/* 14 KiB: on the heap, not in check_folder's frame (it is inlined
	 * there) on each of a round's 1,000 thread stacks */
	struct probe_result *tmp = xcalloc(1, sizeof *tmp);
	double latency;
	struct round_late *l;
	int counted;

	round_set_latency(tmp, 0, pp->p.submit_time, h->internaldate, found, -1);
	latency = tmp->latency;
	pthread_mutex_lock(&ctx->mu);
	ctx->late = xrealloc(ctx->late, (ctx->nlate + 1) * sizeof *ctx->late);
	l = &ctx->late[ctx->nlate++];
	memset(l, 0, sizeof *l);
	l->seed_index = idx;
	xstrlcpy(l->token, pp->p.token, TOKEN_MAX);
	xstrlcpy(l->folder_kind, kinds[f], sizeof l->folder_kind);
	xstrlcpy(l->folder, w->display[f], FOLDER_MAX);
	l->submit_time = pp->p.submit_time;
	l->internaldate = h->internaldate;
	l->latency = tmp->latency;
	l->latency_usable = tmp->have_latency;
	l->counted = counted = !pp->p.cleanup_only;
	xstrlcpy(l->cleanup, what, sizeof l->cleanup);
	pthread_mutex_unlock(&ctx->mu);
	free(tmp);
	/* l may move once the lock is released: use the copy. */
	if (counted)
		round_progress(ctx, "%s: late arrival of an earlier probe in %s after %.0fs",
		               ctx->cfg->seeds[idx].address, w->display[f], latency);
	else
		round_progress(ctx, "%s: found an unmeasured earlier probe in %s (%s)",
		               ctx->cfg->seeds[idx].address, w->display[f], what);
}

/* An announcement of new mail in a folder, read during IDLE (SPEC
 * "Latency"): when, and which messages it covers. */
struct announce {
	double seen;              /* Unix seconds it was read; 0: none */
	unsigned long uid_below;  /* a NOTIFY STATUS: its UIDNEXT, the UIDs below it */
	unsigned long seq_max;    /* an EXISTS: its n, the sequence numbers up to it */
};

/* Did the announcement an cover hit h? A bound the server did not give
 * (0), or a hit whose sequence number is unknown (0), does not rule it
 * out. */
static int announced_hit(const struct announce *an, const struct imap_hit *h)
{
	if (an == NULL || !(an->seen > 0))
		return 0;
	if (an->uid_below > 0 && h->uid >= an->uid_below)
		return 0;
	return !(an->seq_max > 0 && h->seq > an->seq_max);
}

/* an as it stands once s's search answered: an EXISTS's n lowered by the
 * EXPUNGEs read since (RFC 3501 7.4.1; before the search, a user's
 * deletion then the probe's arrival at n made the probe look announced
 * before it arrived); none left, it announced nothing still there.
 * Returns an, or out filled. */
static const struct announce *exists_after_expunges(struct round_ctx *ctx, struct imap_session *s,
                                                    const struct announce *an, struct announce *out)
{
	unsigned long e;

	if (an == NULL || an->seq_max == 0 || ctx->drv->exists_expunged == NULL ||
	    (e = ctx->drv->exists_expunged(s)) == 0)
		return an;
	*out = *an;
	if (e >= out->seq_max)
		out->seen = 0;
	else
		out->seq_max -= e;
	return out;
}

/* Search folder f for the wanted tokens from UID min_uid on. an (may be
 * NULL): what announced new mail there, read at an->seen. A hit it
 * announced was seen then (the upper bound of its arrival, and a sample of
 * the server's announcement delay); any other hit (a poll, a tick, the
 * look at INBOX after the spam folder, a message that landed after the
 * announcement) was seen when the search answered, and was not announced
 * (SPEC "Latency"). Returns an IMAP code; on error the
 * diagnostic names the folder. */
/* After a search of folder f on s from its armed UIDNEXT: when the
 * folder's UIDVALIDITY is no longer the one that UIDNEXT was armed in
 * (the folder was deleted and created again: its UIDs restarted, RFC 3501
 * 2.3.1.1), say so and re-base: the armed UIDNEXT is forgotten (0: the
 * whole folder is searched for our tokens from now on) and the new
 * UIDVALIDITY kept. Returns 1 when re-based, else 0. An armed
 * UIDVALIDITY not known yet is taken from this search. */
static int rebase_uidnext(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int f,
                          struct imap_session *s)
{
	unsigned long now = ctx->drv->uidvalidity_seen != NULL ? ctx->drv->uidvalidity_seen(s) : 0;

	if (now == 0)
		return 0;
	if (w->uidvalidity[f] == 0) {
		w->uidvalidity[f] = now;
		return 0;
	}
	if (now == w->uidvalidity[f])
		return 0;
	log_info("%s: %s: UIDVALIDITY changed from %lu to %lu since arming (the folder was "
	         "recreated): its UIDs restarted; searching the whole folder for the probe",
	         ctx->cfg->seeds[idx].address, w->display[f], w->uidvalidity[f], now);
	w->uidvalidity[f] = now;
	w->uidnext[f] = 0;
	return 1;
}

static int check_folder(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int f,
                        unsigned long min_uid, const struct announce *an)
{
	struct announce an_now;
	struct imap_session *s = w->s[sess_of(w, f)];
	const char *toks[NTOK];
	size_t map[NTOK], n = 0;
	struct imap_hit *hits = NULL;
	size_t nhits = 0;
	char *err = NULL;
	double searched;
	int rc;

	for (size_t t = 0; t < w->ntokens; t++)
		if (w->want[t]) {
			map[n] = t;
			toks[n++] = w->tokens[t];
		}
	if (n == 0)
		return IMAP_OK;
	rc = ctx->drv->find_new_tokens(s, w->wire[f], toks, n, w->since, min_uid, &hits, &nhits, &err);
	if (rc == IMAP_OK && min_uid > 0 && rebase_uidnext(ctx, idx, w, f, s)) {
		/* UIDs from min_uid on are another folder's: search it all */
		free(hits);
		hits = NULL;
		nhits = 0;
		rc = ctx->drv->find_new_tokens(s, w->wire[f], toks, n, w->since, 0, &hits, &nhits, &err);
	}
	/* the answer's moment, for every hit: not after earlier hits' cleanup;
	 * when its last segment reached us, not when this thread woke up */
	searched = driver_rx_time(ctx->drv, s, 0, now_wall());
	an = exists_after_expunges(ctx, s, an, &an_now);
	if (rc != IMAP_OK) {
		set_diag(ctx, &ctx->results[idx], 0, "%s (%s): %s", round_imap_error_text(rc),
		         w->wire[f], err ? err : imap_err_name(rc));
		free(err);
		free(hits);
		return rc;
	}
	for (size_t i = 0; i < nhits; i++) {
		size_t t = map[hits[i].token_index];
		int announced = announced_hit(an, &hits[i]);
		double found = announced ? an->seen : searched;
		char what[64] = "";
		int trc = IMAP_OK;

		if (!w->want[t]) {
			/* two proved copies: both cleaned, the first counted */
			cleanup_hit(ctx, idx, w, f, &hits[i], w->tokens[t], what, sizeof what);
			continue;
		}
		w->want[t] = 0;
		if (t != 0) {
			cleanup_hit(ctx, idx, w, f, &hits[i], w->tokens[t], what, sizeof what);
			record_late(ctx, idx, w, f, t, &hits[i], found, what);
			continue;
		}
		/* 11 KiB: on the heap, not on each of a round's 1,000 thread stacks */
		struct probe_trace *tr = xmalloc(sizeof *tr);
		/* before cleanup: verdicts, path, tab (issue 11) */
		verdicts_examine(ctx->cfg, &ctx->cfg->seeds[idx], ctx->drv, w->s[sess_of(w, f)],
		                 hits[i].uid, f == F_INBOX, ctx->results[idx].reply.queue_id,
		                 hits[i].internaldate, tr, &trc);
		cleanup_hit(ctx, idx, w, f, &hits[i], w->tokens[t], what, sizeof what);
		record_found(ctx, idx, w, f, &hits[i], found, announced, what, tr);
		free(tr);
	}
	free(hits);
	return IMAP_OK;
}

/* ---- arming ---------------------------------------------------------------- */

/* The seed cannot be watched: error, no probe. */
static void not_armable(struct round_ctx *ctx, size_t idx, const char *why, const char *detail_in)
{
	struct probe_result *res = &ctx->results[idx];
	char detail_buf[DIAG_MAX];
	const char *detail = NULL;

	if (detail_in) {
		/* detail may be the seed's own diagnostic, rewritten below */
		xstrlcpy(detail_buf, detail_in, sizeof detail_buf);
		detail = detail_buf;
	}
	char *msg = xasprintf("not sent: mailbox not watchable: %s%s%s", why, detail ? ": " : "",
	                      detail ? detail : "");

	pthread_mutex_lock(&ctx->mu);
	res->outcome = OUTCOME_ERROR;
	res->not_sent = 1;
	xstrlcpy(res->diagnostic, msg, DIAG_MAX);   /* truncated to the buffer */
	pthread_mutex_unlock(&ctx->mu);
	round_progress(ctx, "%s: %s", ctx->cfg->seeds[idx].address, msg);
	free(msg);
}

/* LIST, then the spam folder (SPEC "Spam folder") and trash. Returns an
 * IMAP code (arm_fail() says why). */
static int resolve_folders(struct round_ctx *ctx, size_t idx, struct seed_watch *w)
{
	const struct seed_conf *seed = &ctx->cfg->seeds[idx];
	struct imap_folder *folders = NULL;
	size_t nfolders = 0;
	const char *how = NULL;
	char *err = NULL;
	long si, ti;
	int rc;

	rc = ctx->drv->list_folders(w->s[0], &folders, &nfolders, &err);
	if (rc != IMAP_OK) {
		arm_fail(w, rc, round_imap_error_text(rc), err ? err : imap_err_name(rc));
		free(err);
		return rc;
	}
	si = folders_resolve_spam(folders, nfolders, seed->spam_folder, &how);
	ti = folders_resolve_trash(folders, nfolders);
	w->wire[F_INBOX] = xstrdup("INBOX");
	w->display[F_INBOX] = xstrdup("INBOX");
	if (si == -2 || (si < 0 && seed->spam_folder != NULL)) {
		w->wire[F_SPAM] = xstrdup(seed->spam_folder);
		w->display[F_SPAM] = mutf7_decode(seed->spam_folder);
		if (w->display[F_SPAM] == NULL)
			w->display[F_SPAM] = xstrdup(seed->spam_folder);
	} else if (si < 0) {
		folders_free(folders, nfolders);
		return arm_fail(w, IMAP_ENOFOLDER, "spam folder unresolved",
		                "no spam_folder set, no \\Junk folder, no known name");
	} else {
		w->wire[F_SPAM] = xstrdup(folders[si].wire);
		w->display[F_SPAM] = xstrdup(folders[si].display);
		log_debug("%s: spam folder %s (%s)", seed->address, w->display[F_SPAM], how);
	}
	if (ti >= 0)
		w->trash = xstrdup(folders[ti].wire);
	folders_free(folders, nfolders);
	return 0;
}

/* Take a second session for the spam folder when the limits let every
 * seed of the host have two. Falls back to one session silently. */
static void open_spam_session(struct round_ctx *ctx, size_t idx, struct seed_watch *w)
{
	const struct config *cfg = ctx->cfg;
	const struct imap_conf *ic = &cfg->seeds[idx].imap;
	char *err = NULL;

	if (cfg->limits.per_account < 2 || 2 * dispatch_host_seeds(ctx->dsp, idx) > cfg->limits.per_host)
		return;
	if (round_slot_acquire(&ctx->lim, ic, cfg->limits.per_host, cfg->limits.per_account,
	                       ctx->deadline) != 0)
		return;
	if (round_open_session(ctx, ic, cfg->seeds[idx].address, &w->s[1], &err) != IMAP_OK) {
		log_debug("%s: no second session for the spam folder (%s); one session watches both",
		          cfg->seeds[idx].address, err ? err : "failed");
		round_slot_release(&ctx->lim, ic);
		free(err);
		w->s[1] = NULL;
		return;
	}
	w->slots++;
	w->nsess = 2;
}

/* The spam folder beside INBOX on session 0 (NOTIFY SET, RFC 5465), when
 * the server offers NOTIFY. Returns 1 when set; 0 when not offered or
 * refused (NO/BAD: the session stays usable), *rc IMAP_OK; a dropped
 * connection gives 0 with *rc set. */
static int try_notify(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int *rc)
{
	char *err = NULL;

	*rc = IMAP_OK;
	if (ctx->drv->notify_set == NULL || !ctx->drv->has_capability(w->s[0], "NOTIFY"))
		return 0;
	*rc = ctx->drv->notify_set(w->s[0], w->wire[F_SPAM], w->uidnext[F_SPAM], &err);
	if (*rc == IMAP_EPROTO) {
		log_debug("%s: %s; watching the spam folder otherwise", ctx->cfg->seeds[idx].address,
		          err ? err : "NOTIFY refused");
		*rc = IMAP_OK;
	} else if (*rc != IMAP_OK) {
		arm_fail(w, *rc, round_imap_error_text(*rc), err ? err : imap_err_name(*rc));
	}
	free(err);
	return *rc == IMAP_OK && ctx->drv->notify_mailbox(w->s[0]) != NULL;
}

/* Keep the UIDVALIDITY the reply that armed folder f's UIDNEXT named on
 * s (0 when it named none): check_folder() compares it with the folder's
 * at each search. */
static void note_uidvalidity(struct round_ctx *ctx, struct seed_watch *w, int f,
                             struct imap_session *s)
{
	if (ctx->drv->uidvalidity_seen != NULL)
		w->uidvalidity[f] = ctx->drv->uidvalidity_seen(s);
}

/* The spam folder's UIDNEXT by STATUS on session 0; when STATUS is
 * refused, by SELECT of it (*selected set: INBOX is selected no more). */
static int status_spam(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int *selected,
                       char **err)
{
	int rc = ctx->drv->status_uidnext(w->s[0], w->wire[F_SPAM], &w->uidnext[F_SPAM], err);

	*selected = 0;
	if ((rc == IMAP_ENOFOLDER || rc == IMAP_EPROTO) && !ctx->drv->idling(w->s[0])) {
		log_debug("%s: %s; using SELECT", ctx->cfg->seeds[idx].address, *err ? *err : "STATUS refused");
		free(*err);
		*err = NULL;
		*selected = 1;
		rc = ctx->drv->select_uidnext(w->s[0], w->wire[F_SPAM], &w->uidnext[F_SPAM], err);
	}
	if (rc == IMAP_OK)
		note_uidvalidity(ctx, w, F_SPAM, w->s[0]);
	return rc;
}

/* With NOTIFY (RFC 5465 3): SELECT INBOX, then NOTIFY SET STATUS, whose
 * reply's untagged STATUS gives the spam folder's UIDNEXT; a STATUS
 * command asks only when it does not (then NOTIFY takes the STATUS's). */
static int record_uidnext_notify(struct round_ctx *ctx, size_t idx, struct seed_watch *w,
                                 int *said, char **err)
{
	unsigned long u = 0;
	int rc, sel = 0;

	rc = ctx->drv->select_uidnext(w->s[0], w->wire[F_INBOX], &w->uidnext[F_INBOX], err);
	round_mark(ctx, (long)idx, "status");
	if (rc != IMAP_OK)
		return rc;
	note_uidvalidity(ctx, w, F_INBOX, w->s[0]);
	w->notify = try_notify(ctx, idx, w, &rc);
	if (rc != IMAP_OK) {
		*said = 1;   /* try_notify said why */
		return rc;
	}
	if (w->notify && ctx->drv->notify_set_uidnext != NULL)
		u = ctx->drv->notify_set_uidnext(w->s[0]);
	if (u > 0) {
		w->uidnext[F_SPAM] = u;
		note_uidvalidity(ctx, w, F_SPAM, w->s[0]);
		return IMAP_OK;
	}
	rc = status_spam(ctx, idx, w, &sel, err);
	if (rc == IMAP_OK && sel) {
		rc = ctx->drv->select_uidnext(w->s[0], w->wire[F_INBOX], &w->uidnext[F_INBOX], err);
		if (rc == IMAP_OK)
			note_uidvalidity(ctx, w, F_INBOX, w->s[0]);
	}
	if (rc == IMAP_OK && w->notify)   /* set already: no command */
		rc = ctx->drv->notify_set(w->s[0], w->wire[F_SPAM], w->uidnext[F_SPAM], err);
	return rc;
}

/* Record UIDNEXT of both folders, leaving INBOX selected on session 0.
 * When watching by IDLE where the server offers NOTIFY, NOTIFY SET goes
 * here too (w->notify; record_uidnext_notify). */
static int record_uidnext(struct round_ctx *ctx, size_t idx, struct seed_watch *w)
{
	char *err = NULL;
	int rc, sel, said = 0;

	if (w->idle && ctx->drv->notify_set != NULL && ctx->drv->has_capability(w->s[0], "NOTIFY")) {
		rc = record_uidnext_notify(ctx, idx, w, &said, &err);
	} else {
		rc = status_spam(ctx, idx, w, &sel, &err);
		round_mark(ctx, (long)idx, "status");
		if (rc == IMAP_OK)
			rc = ctx->drv->select_uidnext(w->s[0], w->wire[F_INBOX], &w->uidnext[F_INBOX], &err);
		if (rc == IMAP_OK)
			note_uidvalidity(ctx, w, F_INBOX, w->s[0]);
	}
	if (rc != IMAP_OK && !said)
		arm_fail(w, rc, round_imap_error_text(rc), err ? err : imap_err_name(rc));
	free(err);
	return rc;
}

/* How the spam folder is watched beside INBOX's IDLE, by preference:
 * NOTIFY on session 0, a second session IDLEing on it, or session 0's
 * IDLE interrupted every poll_interval. Called once UIDNEXT is recorded
 * (INBOX selected on session 0). Returns an IMAP code. */
static int choose_spam_watch(struct round_ctx *ctx, size_t idx, struct seed_watch *w)
{
	unsigned long u;
	char *err = NULL;
	int rc;

	if (w->notify)   /* set by record_uidnext */
		return IMAP_OK;
	open_spam_session(ctx, idx, w);
	if (w->nsess < 2)
		return IMAP_OK;
	rc = ctx->drv->select_uidnext(w->s[1], w->wire[F_SPAM], &u, &err);
	if (rc == IMAP_OK && w->uidvalidity[F_SPAM] == 0)
		note_uidvalidity(ctx, w, F_SPAM, w->s[1]);
	if (rc != IMAP_OK)
		arm_fail(w, rc, round_imap_error_text(rc), err ? err : imap_err_name(rc));
	free(err);
	return rc;
}

static int start_idle(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int k)
{
	char *err = NULL;
	int rc;

	if (!w->idle || ctx->drv->idling(w->s[k]))
		return IMAP_OK;
	if (k == 0 && w->notify && ctx->drv->notify_mailbox(w->s[0]) == NULL) {
		/* a new session (reconnect) or NOTIFICATIONOVERFLOW: set it again */
		int set = try_notify(ctx, idx, w, &rc);
		if (rc != IMAP_OK)
			return rc;
		if (!set) {
			w->notify = 0;   /* the spam folder is now polled on the tick */
			round_progress(ctx, "%s: NOTIFY no longer accepted; the spam folder is checked "
			               "every poll_interval", ctx->cfg->seeds[idx].address);
			pthread_mutex_lock(&ctx->mu);
			xstrlcpy(ctx->results[idx].watch, "idle+poll", sizeof ctx->results[idx].watch);
			pthread_mutex_unlock(&ctx->mu);
		}
	}
	rc = ctx->drv->idle_start(w->s[k], &err);
	if (rc != IMAP_OK)
		set_diag(ctx, &ctx->results[idx], 0, "%s: %s", round_imap_error_text(rc),
		         err ? err : imap_err_name(rc));
	else
		w->idle_since[k] = now_mono();
	free(err);
	return rc;
}

static void init_tokens(struct round_ctx *ctx, size_t idx, struct seed_watch *w)
{
	w->tokens[0] = ctx->results[idx].token;
	w->pend_idx[0] = -1;
	w->ntokens = 1;
	w->since = now_wall();
	for (size_t i = 0; i < ctx->p->npending && w->ntokens < NTOK; i++) {
		if (ctx->p->pending[i].seed_index != idx)
			continue;
		w->tokens[w->ntokens] = ctx->p->pending[i].p.token;
		w->want[w->ntokens] = 1;
		w->pend_idx[w->ntokens] = (int)i;
		if (ctx->p->pending[i].p.submit_time < w->since)
			w->since = ctx->p->pending[i].p.submit_time;
		w->ntokens++;
	}
}

/* One attempt at arming on a fresh session. Returns an IMAP code. */
static int arm_session(struct round_ctx *ctx, size_t idx, struct seed_watch *w)
{
	const struct config *cfg = ctx->cfg;
	char *err = NULL;
	int rc;

	rc = round_open_session(ctx, &cfg->seeds[idx].imap, cfg->seeds[idx].address, &w->s[0], &err);
	if (rc != IMAP_OK) {
		arm_fail(w, rc, round_imap_error_text(rc), err ? err : imap_err_name(rc));
		free(err);
		return rc;
	}
	w->nsess = 1;
	round_mark(ctx, (long)idx, "login");
	rc = resolve_folders(ctx, idx, w);
	round_mark(ctx, (long)idx, "list");
	/* Earlier rounds' probes, anywhere in the folders: once, before arming. */
	for (int f = 0; f < 2 && rc == IMAP_OK; f++)
		if ((rc = check_folder(ctx, idx, w, f, 0, NULL)) != IMAP_OK)
			arm_fail(w, rc, "looking for earlier probes failed", ctx->results[idx].diagnostic);
	if (rc != IMAP_OK)
		return rc;
	w->idle = !w->visit && cfg->probe.idle && ctx->drv->has_capability(w->s[0], "IDLE");
	rc = record_uidnext(ctx, idx, w);
	round_mark(ctx, (long)idx, "uidnext");
	if (rc == IMAP_OK && w->idle)
		rc = choose_spam_watch(ctx, idx, w);
	round_mark(ctx, (long)idx, "spamwatch");
	for (int k = 0; k < w->nsess && rc == IMAP_OK; k++)
		if ((rc = start_idle(ctx, idx, w, k)) != IMAP_OK)
			arm_fail(w, rc, "IDLE refused", ctx->results[idx].diagnostic);
	return rc;
}

/* Undo a failed attempt, keeping one connection slot. */
static void arm_reset(struct round_ctx *ctx, size_t idx, struct seed_watch *w)
{
	for (int k = 0; k < 2; k++) {
		if (w->s[k] != NULL)
			ctx->drv->close(w->s[k]);
		w->s[k] = NULL;
	}
	for (; w->slots > 1; w->slots--)
		round_slot_release(&ctx->lim, &ctx->cfg->seeds[idx].imap);
	for (int f = 0; f < 2; f++) {
		free(w->wire[f]);
		free(w->display[f]);
		w->wire[f] = w->display[f] = NULL;
	}
	free(w->trash);
	w->trash = NULL;
	w->nsess = 0;
	w->idle = 0;
	w->notify = 0;
}

struct seed_watch *watch_arm(struct round_ctx *ctx, size_t idx)
{
	const struct config *cfg = ctx->cfg;
	const struct seed_conf *seed = &cfg->seeds[idx];
	struct seed_watch *w = xcalloc(1, sizeof *w);
	int rc;

	init_tokens(ctx, idx, w);
	/* the seeds of its host or account outnumber imap_limits: none
	 * holds a session for its whole watch; all take turns with short
	 * visits (SPEC imap_limits, issue 9 "Sharing connections fairly") */
	w->visit = dispatch_turns(ctx->dsp, idx);
	if (round_slot_acquire(&ctx->lim, &seed->imap, cfg->limits.per_host, cfg->limits.per_account,
	                       ctx->deadline) != 0) {
		not_armable(ctx, idx, round_stop ? "round interrupted before arming" :
		            "no IMAP connection slot before the deadline (imap_limits)", NULL);
		goto fail;
	}
	w->slots = 1;
	if (w->visit)
		w->last_check = now_mono();   /* the arming visit is the first check */
	while ((rc = arm_session(ctx, idx, w)) != IMAP_OK) {
		if (round_stop) {
			not_armable(ctx, idx, "round interrupted while arming", NULL);
			goto fail;
		}
		if (!retry_reconnect(rc) || w->reconnected[0]) {
			not_armable(ctx, idx, w->why, w->detail[0] ? w->detail : NULL);
			goto fail;
		}
		/* a BYE or a drop at any step: one reconnect, then arm again */
		w->reconnected[0] = 1;
		round_progress(ctx, "%s: %s; reconnecting once", seed->address, w->detail);
		arm_reset(ctx, idx, w);
	}
	if (w->visit) {
		/* armed: UIDNEXT recorded; the slot goes to the next seed */
		ctx->drv->close(w->s[0]);
		w->s[0] = NULL;
		w->nsess = 0;
		round_slot_release(&ctx->lim, &seed->imap);
		w->slots = 0;
	}
	pthread_mutex_lock(&ctx->mu);
	xstrlcpy(ctx->results[idx].watch, w->visit ? "visits" : !w->idle ? "poll" :
	         w->notify ? "notify" : w->nsess == 2 ? "idle" : "idle+poll",
	         sizeof ctx->results[idx].watch);
	ctx->results[idx].diagnostic[0] = '\0';
	pthread_mutex_unlock(&ctx->mu);
	round_mark(ctx, (long)idx, "armed");
	log_debug("%s: armed (%s; UIDNEXT INBOX %lu, %s %lu)", seed->address,
	          ctx->results[idx].watch, w->uidnext[F_INBOX], w->display[F_SPAM], w->uidnext[F_SPAM]);
	return w;
fail:
	watch_end(ctx, idx, w);
	return NULL;
}

void watch_end(struct round_ctx *ctx, size_t idx, struct seed_watch *w)
{
	if (w == NULL)
		return;
	for (int k = 0; k < 2; k++)
		if (w->s[k] != NULL)
			round_close_session(ctx, &ctx->cfg->seeds[idx].imap, w->s[k]);
	for (int k = 0; k < w->slots; k++)
		round_slot_release(&ctx->lim, &ctx->cfg->seeds[idx].imap);
	for (int f = 0; f < 2; f++) {
		free(w->wire[f]);
		free(w->display[f]);
	}
	free(w->trash);
	free(w);
}

/* ---- watching ---------------------------------------------------------- */

/* Look at what session k watches: end IDLE, search (INBOX with seen from
 * an EXISTS; the spam folder too when due, when a NOTIFY STATUS announced
 * it, or when it has its own session), and IDLE again with INBOX
 * selected. With NOTIFY the spam folder is searched first (SELECT of it
 * ends INBOX's selection), then INBOX is selected and searched again. */
static int service(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int k, double seen,
                   int due)
{
	char *err = NULL;
	int rc = ctx->drv->idle_done(w->s[k], &err);

	if (rc != IMAP_OK) {
		set_diag(ctx, &ctx->results[idx], 0, "%s: %s", round_imap_error_text(rc),
		         err ? err : imap_err_name(rc));
		free(err);
		return rc;
	}
	struct announce ex = { seen, 0, w->exists_n[k] };

	if (w->nsess == 2) {
		rc = check_folder(ctx, idx, w, k, w->uidnext[k], &ex);
	} else {
		/* a STATUS that named no UIDNEXT announced no message in particular:
		 * the spam folder is searched, its hits were not announced */
		int sdirty = w->notify && w->spam_dirty;
		struct announce st = { sdirty && w->spam_below > 0 ? w->spam_seen : 0,
		                       w->spam_below, 0 };

		w->spam_dirty = 0;
		rc = due || sdirty ? check_folder(ctx, idx, w, F_SPAM, w->uidnext[F_SPAM], &st) :
		     IMAP_OK;
		/* INBOX: announced only by an EXISTS read during IDLE (seen); what
		 * reached it while the spam folder was selected was not */
		if (rc == IMAP_OK)
			rc = check_folder(ctx, idx, w, F_INBOX, w->uidnext[F_INBOX], &ex);
	}
	if (rc == IMAP_OK && wanted(w))
		rc = start_idle(ctx, idx, w, k);
	return rc;
}

/* Replace session k after a drop or BYE: once per session; a BYE asking
 * for a new login (retry.h) does not use that up (at most RELOGIN_MAX
 * times): the new login refreshes the credentials (an OAuth 2.0 token the
 * server refuses is fetched anew). */
static int reconnect(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int k)
{
	const struct seed_conf *seed = &ctx->cfg->seeds[idx];
	char *err = NULL;
	char why[DIAG_MAX];
	int rc, relogin;

	pthread_mutex_lock(&ctx->mu);
	xstrlcpy(why, ctx->results[idx].diagnostic, sizeof why);
	pthread_mutex_unlock(&ctx->mu);
	relogin = retry_wants_relogin(why) && w->relogins < RELOGIN_MAX;
	if (!relogin && w->reconnected[k])
		return IMAP_EBYE;
	if (relogin)
		w->relogins++;
	else
		w->reconnected[k] = 1;
	round_progress(ctx, "%s: %s; %s", seed->address, why,
	               relogin ? "logging in again (new credentials)" : "reconnecting once");
	ctx->drv->close(w->s[k]);
	w->s[k] = NULL;
	rc = round_open_session(ctx, &seed->imap, seed->address, &w->s[k], &err);
	if (rc != IMAP_OK)
		set_diag(ctx, &ctx->results[idx], 0, "%s: %s", round_imap_error_text(rc),
		         err ? err : imap_err_name(rc));
	free(err);
	return rc;
}

static int dsn_says_failed(struct round_ctx *ctx, size_t idx)
{
	int r;

	pthread_mutex_lock(&ctx->mu);
	r = ctx->results[idx].dsn.present && ctx->results[idx].dsn.action == DSN_ACTION_FAILED;
	pthread_mutex_unlock(&ctx->mu);
	return r;
}

/* Wait (at most until) for IDLE input; mark sessions with an EXISTS dirty
 * with the moment it arrived: the kernel's receive time of the line
 * (driver rx_time), else the wall clock before the read. A session whose
 * read failed gets rc[k]. */
static void wait_events(struct round_ctx *ctx, size_t idx, struct seed_watch *w, double until,
                        int *dirty, double *seen, int *rc)
{
	int ready[2] = { 0, 0 };

	if (!w->idle) {
		double left = until - now_mono();
		if (left > 0)
			round_nap(left, ctx->deadline);
		return;
	}
	if (ctx->drv->idle_wait(w->s, (size_t)w->nsess, until, ready) <= 0)
		return;
	for (int k = 0; k < w->nsess; k++) {
		char *err = NULL;
		double t = now_wall();
		int ev = 0;

		if (!ready[k])
			continue;
		rc[k] = ctx->drv->idle_read(w->s[k], &ev, &err);
		if (rc[k] != IMAP_OK)
			set_diag(ctx, &ctx->results[idx], 0, "%s: %s", round_imap_error_text(rc[k]),
			         err ? err : imap_err_name(rc[k]));
		else {
			if ((ev & IMAP_IDLE_EXISTS) && !dirty[k]) {
				round_mark(ctx, (long)idx, "exists");
				dirty[k] = 1;
				seen[k] = driver_rx_time(ctx->drv, w->s[k], IMAP_IDLE_EXISTS, t);
				w->exists_n[k] = ctx->drv->idle_exists == NULL ? 0 :
				                 ctx->drv->idle_exists(w->s[k]);
				log_debug("%s: EXISTS received %.3f s before it was read",
				          ctx->cfg->seeds[idx].address, now_wall() - seen[k]);
			}
			if ((ev & IMAP_IDLE_STATUS) && w->notify && k == 0 && !w->spam_dirty) {
				/* NOTIFY: new mail in the spam folder (RFC 5465 5.2) */
				w->spam_dirty = 1;
				w->spam_seen = driver_rx_time(ctx->drv, w->s[k], IMAP_IDLE_STATUS, t);
				w->spam_below = ctx->drv->notify_announced == NULL ? 0 :
				                ctx->drv->notify_announced(w->s[k]);
			}
		}
		free(err);
	}
}

/* One turn of session k: service it when something is due, reconnecting
 * once after a drop. Returns IMAP_OK or the error that ends the watch. */
static int turn(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int k, int *dirty,
                double *seen, int due, int rc)
{
	int renew = w->idle && now_mono() - w->idle_since[k] > IDLE_RENEW_SECONDS;
	int spam = k == 0 && w->spam_dirty;

	if (rc == IMAP_OK && !(dirty[k] || due || renew || spam || (w->idle && !ctx->drv->idling(w->s[k]))))
		return IMAP_OK;
	if (rc == IMAP_OK)
		rc = service(ctx, idx, w, k, dirty[k] ? seen[k] : 0, due);
	dirty[k] = 0;
	while (retry_reconnect(rc) && reconnect(ctx, idx, w, k) == IMAP_OK) {
		/* anything may have arrived meanwhile: look at every folder
		 * (bounded: reconnect() refuses once its budget is used) */
		rc = service(ctx, idx, w, k, 0, 1);
	}
	return rc;
}

/* A scheduled check (poll, spam-folder tick or visit) began now. */
static void note_check(struct seed_watch *w)
{
	double now = now_mono();

	if (w->last_check > 0) {
		w->sum_gaps += now - w->last_check;
		w->ngaps++;
	}
	w->last_check = now;
}

/* ---- the last look ------------------------------------------------------ */

/* Seconds kept before the deadline for the last look: LAST_LOOK_SECONDS,
 * a quarter of a shorter round. */
static double last_look_reserve(const struct round_ctx *ctx)
{
	double r = (double)ctx->p->deadline / 4.0;

	return r < LAST_LOOK_SECONDS ? r : LAST_LOOK_SECONDS;
}

/* Copy seed idx's diagnostic into kept (DIAG_MAX bytes): a last look that
 * fails puts it back (last_look_failed()). */
static void diag_keep(struct round_ctx *ctx, size_t idx, char *kept)
{
	pthread_mutex_lock(&ctx->mu);
	xstrlcpy(kept, ctx->results[idx].diagnostic, DIAG_MAX);
	pthread_mutex_unlock(&ctx->mu);
}

/* A last look failed (the deadline reached, a drop): the probe stays
 * missing, its diagnostic as it was before (kept); said with -v. */
static void last_look_failed(struct round_ctx *ctx, size_t idx, const char *err, const char *kept)
{
	pthread_mutex_lock(&ctx->mu);
	log_debug("%s: the last search of the whole folders failed: %s",
	          ctx->cfg->seeds[idx].address, err ? err : ctx->results[idx].diagnostic);
	xstrlcpy(ctx->results[idx].diagnostic, kept, DIAG_MAX);
	pthread_mutex_unlock(&ctx->mu);
}

/* After a last look that answered: say (-v) when it found this round's
 * probe that the watch had missed (wanted: it was looked for). */
static void last_look_said(struct round_ctx *ctx, size_t idx, const struct seed_watch *w,
                           int wanted_before)
{
	if (!wanted_before || w->want[0])
		return;
	log_info("%s: probe found only by the last search of the whole folders before the "
	         "deadline (armed UIDNEXT: INBOX %lu, %s %lu): the server's UIDNEXT or its "
	         "announcements did not cover it", ctx->cfg->seeds[idx].address,
	         w->uidnext[F_INBOX], w->display[F_SPAM] ? w->display[F_SPAM] : "spam",
	         w->uidnext[F_SPAM]);
}

/* The last look, before the probe is declared missing at the deadline:
 * each watched folder searched once more for the wanted tokens, over the
 * whole folder (check_folder() with no UID range and no announcement).
 * The watch's searches start at the armed UIDNEXT, and with NOTIFY the
 * spam folder is searched when a STATUS announces new mail: a server that
 * lies (UIDNEXT 4294967295 in the STATUS or SELECT that armed it, or in
 * NOTIFY's STATUS) makes them skip a probe that is in the folder. The
 * token is unique and each hit is proved (token, HMAC, From) before it
 * counts, and proved again by the cleanup before anything is touched: a
 * whole-folder search can match only our probe. A probe found here was
 * not announced: it was seen when the search's answer reached us. Starts
 * last_look_reserve() seconds before the deadline, its commands may run
 * LAST_LOOK_GRACE past it (a slow server's last look is not cut short, and
 * its session not lost to a timeout); an error leaves the probe missing
 * and the diagnostic as it was (logged with -v). */
static void last_look(struct round_ctx *ctx, size_t idx, struct seed_watch *w)
{
	char diag[DIAG_MAX];
	char *err = NULL;
	int rc = IMAP_OK;

	diag_keep(ctx, idx, diag);
	for (int k = 0; k < w->nsess; k++)
		ctx->drv->extend(w->s[k], ctx->deadline + LAST_LOOK_GRACE - now_mono());
	for (int k = 0; k < w->nsess && rc == IMAP_OK; k++)
		if (ctx->drv->idling(w->s[k]))
			rc = ctx->drv->idle_done(w->s[k], &err);
	for (int f = F_SPAM; f >= F_INBOX && rc == IMAP_OK && w->want[0]; f--)
		rc = check_folder(ctx, idx, w, f, 0, NULL);
	if (rc == IMAP_OK)
		last_look_said(ctx, idx, w, 1);
	else
		last_look_failed(ctx, idx, err, diag);
	free(err);
}

/* The moment the last look of a seed watched by visits is due: no
 * scheduled visit that searches the whole folders came before it. */
static double visit_look_at(const struct round_ctx *ctx)
{
	return ctx->deadline - 0.5 - last_look_reserve(ctx);
}

/* One short visit: a slot, a login, both folders from the armed UIDNEXT,
 * logout, the slot back. The whole folders instead (the last look,
 * last_look(); *whole set) when last (an extra visit, not a scheduled
 * check) or when no scheduled visit comes after this one before
 * visit_look_at(). Returns an IMAP code (IMAP_ETIMEOUT: no slot before the
 * deadline). */
static int visit(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int last, int *whole)
{
	const struct config *cfg = ctx->cfg;
	const struct seed_conf *seed = &cfg->seeds[idx];
	char *err = NULL;
	int rc, had = w->want[0];

	*whole = 0;
	if (round_slot_acquire(&ctx->lim, &seed->imap, cfg->limits.per_host, cfg->limits.per_account,
	                       ctx->deadline) != 0)
		return IMAP_ETIMEOUT;
	w->slots = 1;
	*whole = last || now_mono() + (double)cfg->probe.poll_interval >= visit_look_at(ctx);
	if (!last)
		note_check(w);
	rc = round_open_session(ctx, &seed->imap, seed->address, &w->s[0], &err);
	if (rc != IMAP_OK)
		set_diag(ctx, &ctx->results[idx], 0, "%s: %s", round_imap_error_text(rc),
		         err ? err : imap_err_name(rc));
	else if (*whole)   /* the last look's commands: as last_look()'s */
		ctx->drv->extend(w->s[0], ctx->deadline + LAST_LOOK_GRACE - now_mono());
	if (rc == IMAP_OK)
		rc = check_folder(ctx, idx, w, F_SPAM, *whole ? 0 : w->uidnext[F_SPAM], NULL);
	if (rc == IMAP_OK)
		rc = check_folder(ctx, idx, w, F_INBOX, *whole ? 0 : w->uidnext[F_INBOX], NULL);
	if (rc == IMAP_OK && *whole)
		last_look_said(ctx, idx, w, had);
	free(err);
	if (w->s[0] != NULL)
		ctx->drv->close(w->s[0]);
	w->s[0] = NULL;
	round_slot_release(&ctx->lim, &seed->imap);
	w->slots = 0;
	return rc;
}

/* The last look of a seed watched by visits, an extra visit (no scheduled
 * visit searched the whole folders): its failure leaves the probe missing
 * and the diagnostic as it was. */
static void visit_last_look(struct round_ctx *ctx, size_t idx, struct seed_watch *w)
{
	char diag[DIAG_MAX];
	int whole, rc;

	diag_keep(ctx, idx, diag);
	rc = visit(ctx, idx, w, 1, &whole);
	if (rc != IMAP_OK)
		last_look_failed(ctx, idx, NULL, diag);
}

/* Watch by short visits every poll_interval, in turns with the other seeds
 * of the host; a visit that lost its connection is repeated once at once.
 * The last scheduled visit before visit_look_at() searches the whole
 * folders (the last look, last_look()); when none did (a visit that ended
 * late), an extra visit does it then. */
static void visit_loop(struct round_ctx *ctx, size_t idx, struct seed_watch *w)
{
	struct probe_result *res = &ctx->results[idx];
	double poll = (double)ctx->cfg->probe.poll_interval;
	double next = now_mono() + poll, look_at = visit_look_at(ctx);
	int looked = 0;

	while (w->want[0] && !round_stop && !dsn_says_failed(ctx, idx)) {
		double due = !looked && next > look_at ? look_at : next;
		int rc, whole;

		if (now_mono() >= ctx->deadline - 0.5)
			break;
		if (now_mono() < due) {
			/* look at DSNs every second (a stop request ends the
			 * nap): quarter-second naps were 4,000 wake-ups a
			 * second for 1,000 visiting seeds */
			round_nap(due - now_mono() < 1.0 ? due - now_mono() : 1.0, ctx->deadline);
			continue;
		}
		if (due < next) {
			visit_last_look(ctx, idx, w);
			looked = 1;
			continue;
		}
		rc = visit(ctx, idx, w, 0, &whole);
		looked |= whole;
		next = now_mono() + poll;
		if (rc == IMAP_ETIMEOUT && (now_mono() >= ctx->deadline || round_stop))
			break;
		if (retry_reconnect(rc) && !w->reconnected[0]) {
			w->reconnected[0] = 1;
			next = now_mono();
			continue;
		}
		if (rc != IMAP_OK) {
			pthread_mutex_lock(&ctx->mu);
			if (w->want[0])
				res->outcome = retry_outcome(rc);
			pthread_mutex_unlock(&ctx->mu);
			break;
		}
	}
}

/* 1 when IDLE or NOTIFY announces both folders (no spam-folder tick). */
static int events_only(const struct seed_watch *w)
{
	return w->idle && (w->nsess == 2 || w->notify);
}

/* Seconds between scheduled checks: poll_interval, or at least
 * IDLE_SAFETY_TICK when events announce both folders. */
static double tick_of(const struct seed_watch *w, double poll)
{
	return events_only(w) && poll < IDLE_SAFETY_TICK ? IDLE_SAFETY_TICK : poll;
}

void watch_run(struct round_ctx *ctx, size_t idx, struct seed_watch *w, int accepted)
{
	const struct config *cfg = ctx->cfg;
	struct probe_result *res = &ctx->results[idx];
	double poll = (double)cfg->probe.poll_interval;
	/* the first scheduled check comes one interval after the submission */
	double next_tick = now_mono() + tick_of(w, poll);
	int dirty[2] = { 0, 0 };
	double seen[2] = { 0, 0 };
	/* the watch ends here; the last look (last_look()) has the rest */
	double end = ctx->deadline - last_look_reserve(ctx);

	if (!accepted)
		return;   /* earlier probes were looked for while arming */
	pthread_mutex_lock(&ctx->mu);
	w->want[0] = 1;
	if (res->submit_time > 0 && res->submit_time < w->since)
		w->since = res->submit_time;
	pthread_mutex_unlock(&ctx->mu);
	round_mark(ctx, (long)idx, "watch");
	if (w->visit) {
		visit_loop(ctx, idx, w);
		goto out;
	}
	while (w->want[0] && !round_stop && !dsn_says_failed(ctx, idx)) {
		double now = now_mono(), until = next_tick;
		int rc[2] = { IMAP_OK, IMAP_OK }, due;

		if (now >= end) {
			last_look(ctx, idx, w);
			break;
		}
		if (until > end)
			until = end;
		/* look at round_stop and DSNs every second: every quarter second
		 * was 4,000 wake-ups a second for 1,000 seeds in IDLE */
		if (until > now + 1.0)
			until = now + 1.0;
		wait_events(ctx, idx, w, until, dirty, seen, rc);
		due = now_mono() >= next_tick;
		for (int k = 0; k < w->nsess; k++) {
			rc[k] = turn(ctx, idx, w, k, dirty, seen, due, rc[k]);
			if (rc[k] == IMAP_ETIMEOUT && (now_mono() >= ctx->deadline || round_stop))
				goto out;   /* the round is over (or stopped); the probe is not found */
			if (rc[k] != IMAP_OK) {
				/* the diagnostic was written where it failed */
				pthread_mutex_lock(&ctx->mu);
				if (w->want[0])
					res->outcome = retry_outcome(rc[k]);
				pthread_mutex_unlock(&ctx->mu);
				goto out;
			}
		}
		if (due) {
			note_check(w);
			next_tick = now_mono() + tick_of(w, poll);
		}
	}
out:
	/* the effective interval between scheduled checks (none for a folder
	 * pair watched by IDLE alone) */
	pthread_mutex_lock(&ctx->mu);
	res->check_interval = w->ngaps > 0 && !events_only(w) ?
	                      w->sum_gaps / w->ngaps : NAN;
	pthread_mutex_unlock(&ctx->mu);
}
