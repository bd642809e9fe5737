/* round.c - one probe round: submit, discover, decide (see round.h). */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "prober/dsn.h"
#include "prober/imap.h"
#include "prober/message.h"
#include "prober/smtp.h"
#include "scheduler/round.h"
#include "scheduler/verdicts.h"

atomic_int round_stop;

/* Sleep up to s seconds, in short slices, until the monotonic deadline or a
 * stop request. */
static void nap(double s, double deadline)
{
	double end = now_mono() + s;

	if (end > deadline)
		end = deadline;
	while (!round_stop) {
		double left = end - now_mono();
		if (left <= 0)
			break;
		sleep_seconds(left < 0.25 ? left : 0.25);
	}
}

/* ---- connection limits ------------------------------------------------ */

struct limit_entry {
	char *key;
	long count;
};

struct limiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct limit_entry *e;
	size_t n;
	long smtp_active;
};

/* Index of key's counter, created at 0 when new. Indices stay valid when
 * the array grows; pointers into it would not. */
static size_t limit_slot(struct limiter *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->e[i].key, key) == 0)
			return i;
	l->e = xrealloc(l->e, (l->n + 1) * sizeof *l->e);
	l->e[l->n].key = xstrdup(key);
	l->e[l->n].count = 0;
	return l->n++;
}

/* Wait until the cond is signalled or the monotonic deadline passes. */
static int limiter_wait(struct limiter *l, double deadline)
{
	double left = deadline - now_mono();
	struct timespec ts;

	if (left <= 0)
		return ETIMEDOUT;
	if (left > 1)
		left = 1;   /* re-check at least every second */
	clock_gettime(CLOCK_MONOTONIC, &ts);   /* the cond uses CLOCK_MONOTONIC */
	ts.tv_sec += (time_t)left;
	ts.tv_nsec += (long)((left - floor(left)) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&l->cv, &l->mu, &ts);
	return 0;
}

/* Take one IMAP slot for host and account. Returns 0, or -1 when the
 * deadline passed first. */
static int imap_slot_acquire(struct limiter *l, const struct imap_conf *ic,
                             long per_host, long per_account, double deadline)
{
	char *hk = xasprintf("host:%s:%d", ic->host, ic->port);
	char *ak = xasprintf("acct:%s:%d:%s", ic->host, ic->port, ic->username ? ic->username : "");
	int ret = -1;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		size_t h = limit_slot(l, hk);
		size_t a = limit_slot(l, ak);
		if (l->e[h].count < per_host && l->e[a].count < per_account) {
			l->e[h].count++;
			l->e[a].count++;
			ret = 0;
			break;
		}
		if (round_stop || now_mono() >= deadline || limiter_wait(l, deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&l->mu);
	free(hk);
	free(ak);
	return ret;
}

static void imap_slot_release(struct limiter *l, const struct imap_conf *ic)
{
	char *hk = xasprintf("host:%s:%d", ic->host, ic->port);
	char *ak = xasprintf("acct:%s:%d:%s", ic->host, ic->port, ic->username ? ic->username : "");

	pthread_mutex_lock(&l->mu);
	l->e[limit_slot(l, hk)].count--;
	l->e[limit_slot(l, ak)].count--;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	free(hk);
	free(ak);
}

static int smtp_slot_acquire(struct limiter *l, double deadline)
{
	int ret = -1;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		if (l->smtp_active < ROUND_SMTP_PARALLEL) {
			l->smtp_active++;
			ret = 0;
			break;
		}
		if (round_stop || now_mono() >= deadline || limiter_wait(l, deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&l->mu);
	return ret;
}

static void smtp_slot_release(struct limiter *l)
{
	pthread_mutex_lock(&l->mu);
	l->smtp_active--;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/* ---- shared round state ----------------------------------------------- */

struct round_ctx {
	const struct round_params *p;
	const struct config *cfg;
	double deadline;                 /* now_mono() limit */
	double started;
	struct limiter lim;
	pthread_mutex_t mu;              /* guards everything below */
	struct probe_result *results;
	int *accepted;                   /* per seed: 1 once the relay said 2xx */
	size_t workers_left;
	struct round_late *late;
	size_t nlate;
	char bounce_error[DIAG_MAX];     /* why the bounce mailbox could not be watched */
	char *probe_from;                /* the From address our probes carry (the proof) */
};

struct worker {
	struct round_ctx *ctx;
	size_t idx;
	pthread_t tid;
	int threaded;
};

static void progress(struct round_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void progress(struct round_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	struct strbuf sb = STRBUF_INIT;

	if (!ctx->p->progress && log_verbose == 0)
		return;
	va_start(ap, fmt);
	strbuf_addf(&sb, "[%5.1fs] ", now_wall() - ctx->started);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	log_info("%s", sb.buf);
	strbuf_free(&sb);
}

void round_set_latency(struct probe_result *r, double sent, double submit, double internaldate,
                       double found)
{
	double lat = internaldate - submit;

	r->internaldate = internaldate;
	r->found_time = found;
	r->clock_skew = 0;
	if (!(internaldate > 0)) {
		r->latency = NAN;
		r->discovery_lag = NAN;
		r->have_latency = 0;
		return;
	}
	r->discovery_lag = found - internaldate;
	if (r->discovery_lag < 0)
		r->discovery_lag = 0;
	if (lat >= -2.0 || (sent > 0 && internaldate >= sent - 2.0)) {
		r->latency = lat < 0 ? 0 : lat;
		r->have_latency = 1;
	} else {
		r->clock_skew = -lat;
		r->latency = lat;
		r->have_latency = 0;
	}
}

/* ---- submission --------------------------------------------------------- */

/* Append text to a DIAG_MAX diagnostic buffer, truncating. */
static void strbuf_append_diag(char *diag, const char *text)
{
	size_t n = strlen(diag);

	if (n + 1 < DIAG_MAX)
		xstrlcpy(diag + n, text, DIAG_MAX - n);
}

/* Submit seed idx's probe; retries 4xx with backoff inside the deadline.
 * Returns 1 when accepted, 0 otherwise (outcome set). */
static int submit_probe(struct round_ctx *ctx, size_t idx, const char *msg, size_t len)
{
	const struct config *cfg = ctx->cfg;
	const struct seed_conf *seed = &cfg->seeds[idx];
	struct probe_result *res = &ctx->results[idx];
	double backoff = 2.0;

	for (;;) {
		struct smtp_params sp = {
			.relay = &cfg->relay, .rcpt = seed->address,
			.message = msg, .len = len, .deadline = ctx->deadline,
		};
		struct smtp_reply reply;
		double submit = 0, started;
		char *err = NULL;
		int rc;

		if (smtp_slot_acquire(&ctx->lim, ctx->deadline) != 0) {
			if (res->attempts == 0) {
				res->outcome = OUTCOME_ERROR;
				xstrlcpy(res->diagnostic, round_stop ? "round interrupted before submission" :
				         "round deadline passed before submission", DIAG_MAX);
			}
			return 0;
		}
		memset(&reply, 0, sizeof reply);
		started = now_wall();
		rc = smtp_submit(&sp, &reply, &submit, &err);
		smtp_slot_release(&ctx->lim);

		pthread_mutex_lock(&ctx->mu);
		res->attempts++;
		res->reply = reply;
		{
			/* Keep the first attempts and always the latest. */
			int slot = res->nhistory < ATTEMPTS_MAX ? res->nhistory++ : ATTEMPTS_MAX - 1;
			struct smtp_attempt *a = &res->history[slot];

			memset(a, 0, sizeof *a);
			a->time = now_wall();
			a->code = reply.code;
			xstrlcpy(a->enhanced, reply.enhanced, sizeof a->enhanced);
			xstrlcpy(a->stage, reply.stage, sizeof a->stage);
			xstrlcpy(a->error, smtp_err_name(rc), sizeof a->error);
		}
		pthread_mutex_unlock(&ctx->mu);

		switch (rc) {
		case SMTP_OK:
			pthread_mutex_lock(&ctx->mu);
			res->submit_time = submit;
			res->send_start = started;
			res->outcome = OUTCOME_MISSING;   /* until found or explained */
			res->diagnostic[0] = '\0';
			ctx->accepted[idx] = 1;
			pthread_mutex_unlock(&ctx->mu);
			progress(ctx, "%s: accepted by relay: %d %s%s%s", seed->address, reply.code,
			         reply.enhanced, reply.queue_id[0] ? " queued as " : "", reply.queue_id);
			free(err);
			return 1;
		case SMTP_ETEMP:
			res->outcome = OUTCOME_DEFERRED;
			snprintf(res->diagnostic, DIAG_MAX, "relay deferred (%s): %d %s %s", reply.stage,
			         reply.code, reply.enhanced, smtp_diagnostic(reply.code, reply.enhanced));
			progress(ctx, "%s: attempt %d deferred: %d %s %s", seed->address, res->attempts,
			         reply.code, reply.enhanced, reply.text);
			free(err);
			/* Retry with backoff while the round has time for it. */
			if (now_mono() + backoff + 1 >= ctx->deadline || round_stop)
				return 0;
			nap(backoff, ctx->deadline);
			if (round_stop)
				return 0;
			backoff = backoff * 2 > 60 ? 60 : backoff * 2;
			continue;
		case SMTP_EPERM:
			res->outcome = OUTCOME_REJECTED;
			snprintf(res->diagnostic, DIAG_MAX, "relay rejected (%s): %d %s %s", reply.stage,
			         reply.code, reply.enhanced, smtp_diagnostic(reply.code, reply.enhanced));
			progress(ctx, "%s: rejected: %d %s %s", seed->address, reply.code, reply.enhanced,
			         reply.text);
			free(err);
			return 0;
		default:
			res->outcome = OUTCOME_ERROR;
			if (rc == SMTP_ENOFILES)   /* ours, not the relay's: say what */
				xstrlcpy(res->diagnostic, err ? err : "too many open files", DIAG_MAX);
			else
				snprintf(res->diagnostic, DIAG_MAX, "relay %s: %s", smtp_err_name(rc),
				         err ? err : "failed");
			if ((rc == SMTP_EDROP || rc == SMTP_ETIMEOUT || rc == SMTP_EPROTO) &&
			    strcmp(reply.stage, "data") == 0) {
				/* Cut, or a garbled final reply, after the message was
				 * sent: the relay may have delivered it. Later rounds
				 * look for it, to clean it up. */
				pthread_mutex_lock(&ctx->mu);
				res->submit_time = now_wall();
				res->send_start = started;
				pthread_mutex_unlock(&ctx->mu);
				strbuf_append_diag(res->diagnostic, "; the relay may have delivered it (the probe "
				                   "may have been delivered): later rounds look for it to clean "
				                   "it up");
			}
			progress(ctx, "%s: submission failed: %s", seed->address, res->diagnostic);
			free(err);
			return 0;
		}
	}
}

/* ---- discovery ---------------------------------------------------------- */

/* Mark an accepted probe error with a diagnostic. The bounce thread reads
 * accepted probes' outcomes, so writes take ctx->mu. */
static void set_error(struct round_ctx *ctx, struct probe_result *res, const char *diag)
{
	pthread_mutex_lock(&ctx->mu);
	res->outcome = OUTCOME_ERROR;
	xstrlcpy(res->diagnostic, diag, DIAG_MAX);
	pthread_mutex_unlock(&ctx->mu);
}

static const char *imap_error_text(int rc)
{
	switch (rc) {
	case IMAP_ECONNECT: return "IMAP connection failed";
	case IMAP_ETLS: return "IMAP TLS refused";
	case IMAP_ENOSTARTTLS: return "IMAP server does not offer STARTTLS";
	case IMAP_EAUTH: return "IMAP authentication failed";
	case IMAP_EAUTHAPP: return "IMAP login needs an app password or OAuth";
	case IMAP_EUNAVAILABLE: return "IMAP server unavailable (too many connections)";
	case IMAP_EBYE: return "IMAP connection lost";
	case IMAP_ETIMEOUT: return "IMAP timeout";
	case IMAP_ENOFOLDER: return "IMAP folder cannot be selected";
	case IMAP_EUIDVALIDITY: return "IMAP UIDVALIDITY changed";
	default: return "IMAP protocol error";
	}
}

/* Open a session, retrying [UNAVAILABLE] with backoff inside the deadline.
 * seed: the seed address whose probes the session proves (NULL for the
 * bounce mailbox, where no probe is looked for). */
static int open_session(struct round_ctx *ctx, const struct imap_conf *ic, const char *seed,
                        struct imap_session **s, char **err)
{
	struct imap_params ip = {
		.conf = ic,
		.connect_timeout = ctx->cfg->limits.connect_timeout,
		.timeout = ctx->cfg->limits.timeout,
		.deadline = ctx->deadline,
		.probe_from = seed ? ctx->probe_from : NULL,
		.secret = ctx->cfg->probe.secret,
		.secret_len = ctx->cfg->probe.secret_len,
		.seed = seed,
	};
	double backoff = 2.0;
	int rc;

	for (;;) {
		rc = imap_open(&ip, s, err);
		if (rc != IMAP_EUNAVAILABLE || now_mono() + backoff >= ctx->deadline || round_stop)
			return rc;
		log_debug("%s: %s; retrying in %.0fs", ic->username, *err ? *err : "unavailable", backoff);
		free(*err);
		*err = NULL;
		nap(backoff, ctx->deadline);
		backoff *= 2;
	}
}

struct seed_watch {
	const char *tokens[1 + ROUND_PENDING_PER_SEED];
	size_t ntokens;
	double since;
	/* which tokens are still looked for; index 0 is this round's probe */
	int want[1 + ROUND_PENDING_PER_SEED];
	int pend_idx[1 + ROUND_PENDING_PER_SEED];            /* index into p->pending, -1 for 0 */
	int said_kept;                   /* "probe kept" was said for this seed */
};

static void cleanup_hit(struct round_ctx *ctx, struct imap_session *s, const char *folder,
                        const struct imap_hit *h, const char *token, const char *trash,
                        char *what, size_t whatsz, const char *addr, int *said_kept)
{
	char *err = NULL;
	int rc;

	if (ctx->cfg->probe.cleanup == CLEANUP_KEEP) {
		xstrlcpy(what, "kept", whatsz);
		return;
	}
	rc = imap_cleanup(s, folder, h->uidvalidity, h->uid, token, ctx->cfg->probe.cleanup, trash,
	                  what, whatsz, &err);
	if (rc != IMAP_OK) {
		log_warn("%s: cleanup of UID %lu failed: %s", addr, h->uid, err ? err : imap_err_name(rc));
		snprintf(what, whatsz, "failed: %s", imap_err_name(rc));
	} else if (strncmp(what, "kept", 4) == 0 && !*said_kept) {
		/* Said once per seed: the server cannot remove only our message. */
		*said_kept = 1;
		log_warn("%s: probe left in %s (%s); inboxprobe never runs a plain EXPUNGE", addr, folder,
		         what);
	}
	free(err);
}

/* One discovery pass over inbox and spam. Returns an IMAP code. */
static int discover_pass(struct round_ctx *ctx, size_t idx, struct imap_session *s,
                         struct seed_watch *w, const char *spam_wire, const char *spam_display,
                         const char *trash)
{
	const struct seed_conf *seed = &ctx->cfg->seeds[idx];
	struct probe_result *res = &ctx->results[idx];
	const char *folders[2] = { "INBOX", spam_wire };
	const char *kinds[2] = { "inbox", "spam" };
	const char *display[2] = { "INBOX", spam_display };

	for (int f = 0; f < 2; f++) {
		const char *toks[1 + ROUND_PENDING_PER_SEED];
		size_t map[1 + ROUND_PENDING_PER_SEED], n = 0;
		struct imap_hit *hits = NULL;
		size_t nhits = 0;
		char *err = NULL;
		int rc;

		for (size_t t = 0; t < w->ntokens; t++)
			if (w->want[t]) {
				map[n] = t;
				toks[n++] = w->tokens[t];
			}
		if (n == 0)
			return IMAP_OK;
		rc = imap_find_tokens(s, folders[f], toks, n, w->since, &hits, &nhits, &err);
		if (rc != IMAP_OK) {
			pthread_mutex_lock(&ctx->mu);
			snprintf(res->diagnostic, DIAG_MAX, "%s (%s): %s", imap_error_text(rc), folders[f],
			         err ? err : imap_err_name(rc));
			pthread_mutex_unlock(&ctx->mu);
			free(err);
			free(hits);
			return rc;
		}
		for (size_t i = 0; i < nhits; i++) {
			size_t t = map[hits[i].token_index];
			double found = now_wall();
			char what[64] = "";

			struct probe_trace tr;
			int trc = IMAP_OK;

			if (!w->want[t]) {
				/* two proved copies: both cleaned, the first counted */
				cleanup_hit(ctx, s, folders[f], &hits[i], w->tokens[t], trash, what,
				            sizeof what, seed->address, &w->said_kept);
				continue;
			}
			w->want[t] = 0;
			if (t == 0)   /* before cleanup: verdicts, path, tab (issue 11) */
				verdicts_examine(ctx->cfg, seed, s, hits[i].uid, f == 0, res->reply.queue_id,
				                 hits[i].internaldate, &tr, &trc);
			cleanup_hit(ctx, s, folders[f], &hits[i], w->tokens[t], trash, what, sizeof what,
			            seed->address, &w->said_kept);
			pthread_mutex_lock(&ctx->mu);
			if (t == 0) {
				res->trace = tr;
				res->outcome = f == 0 ? OUTCOME_INBOX : OUTCOME_SPAM;
				xstrlcpy(res->folder, display[f], FOLDER_MAX);
				round_set_latency(res, res->send_start, res->submit_time,
				                  hits[i].internaldate, found);
				if (!(hits[i].internaldate > 0))
					snprintf(res->diagnostic, DIAG_MAX, "the server gave no INTERNALDATE: "
					         "latency unknown");
				xstrlcpy(res->cleanup, what, sizeof res->cleanup);
				res->diagnostic[0] = '\0';
				pthread_mutex_unlock(&ctx->mu);
				progress(ctx, "%s: found in %s after %.0fs", seed->address, display[f],
				         res->latency);
			} else {
				const struct round_pending *pp = &ctx->p->pending[w->pend_idx[t]];
				struct probe_result tmp;
				struct round_late *l;
				int counted;

				memset(&tmp, 0, sizeof tmp);
				round_set_latency(&tmp, 0, pp->p.submit_time, hits[i].internaldate, found);
				ctx->late = xrealloc(ctx->late, (ctx->nlate + 1) * sizeof *ctx->late);
				l = &ctx->late[ctx->nlate++];
				memset(l, 0, sizeof *l);
				l->seed_index = idx;
				xstrlcpy(l->token, pp->p.token, TOKEN_MAX);
				xstrlcpy(l->folder_kind, kinds[f], sizeof l->folder_kind);
				xstrlcpy(l->folder, display[f], FOLDER_MAX);
				l->submit_time = pp->p.submit_time;
				l->internaldate = hits[i].internaldate;
				l->latency = tmp.latency;
				l->latency_usable = tmp.have_latency;
				l->counted = counted = !pp->p.cleanup_only;
				xstrlcpy(l->cleanup, what, sizeof l->cleanup);
				pthread_mutex_unlock(&ctx->mu);
				/* l may move once the lock is released (another worker
				 * grows ctx->late): use the copy. */
				if (counted)
					progress(ctx, "%s: late arrival of an earlier probe in %s after %.0fs",
					         seed->address, display[f], tmp.latency);
				else
					progress(ctx, "%s: found an unmeasured earlier probe in %s (%s)",
					         seed->address, display[f], what);
			}
		}
		free(hits);
	}
	return IMAP_OK;
}

static int dsn_says_failed(struct round_ctx *ctx, size_t idx)
{
	int r;

	pthread_mutex_lock(&ctx->mu);
	r = ctx->results[idx].dsn.present && ctx->results[idx].dsn.action == DSN_ACTION_FAILED;
	pthread_mutex_unlock(&ctx->mu);
	return r;
}

/* Watch seed idx over IMAP until its probe is found, a failure DSN explains
 * it, or the deadline passes. accepted: this round's probe was submitted. */
static void discover(struct round_ctx *ctx, size_t idx, int accepted)
{
	const struct config *cfg = ctx->cfg;
	const struct seed_conf *seed = &cfg->seeds[idx];
	struct probe_result *res = &ctx->results[idx];
	struct seed_watch w;
	struct imap_session *s = NULL;
	struct imap_folder *folders = NULL;
	size_t nfolders = 0;
	char *err = NULL;
	char *spam_wire = NULL, *spam_display = NULL, *trash = NULL;
	int rc, reconnected = 0, have_slot = 0;

	memset(&w, 0, sizeof w);
	if (accepted) {
		w.tokens[0] = res->token;
		w.want[0] = 1;
		w.pend_idx[0] = -1;
		w.since = res->submit_time;
		w.ntokens = 1;
	} else {
		w.tokens[0] = "";
		w.ntokens = 1;
		w.since = now_wall();
	}
	for (size_t i = 0; i < ctx->p->npending && w.ntokens < 1 + ROUND_PENDING_PER_SEED; i++) {
		if (ctx->p->pending[i].seed_index != idx)
			continue;
		w.tokens[w.ntokens] = ctx->p->pending[i].p.token;
		w.want[w.ntokens] = 1;
		w.pend_idx[w.ntokens] = (int)i;
		if (ctx->p->pending[i].p.submit_time < w.since)
			w.since = ctx->p->pending[i].p.submit_time;
		w.ntokens++;
	}
	if (!accepted && w.ntokens == 1)
		return;   /* nothing to look for */

	if (imap_slot_acquire(&ctx->lim, &seed->imap, cfg->limits.per_host, cfg->limits.per_account,
	                      ctx->deadline) != 0) {
		if (accepted)
			set_error(ctx, res, round_stop ? "round interrupted before IMAP discovery" :
			          "no IMAP connection slot before the deadline (imap_limits)");
		return;
	}
	have_slot = 1;

	rc = open_session(ctx, &seed->imap, seed->address, &s, &err);
	if (rc != IMAP_OK)
		goto fail;
	rc = imap_list_folders(s, &folders, &nfolders, &err);
	if (rc != IMAP_OK)
		goto fail;
	{
		const char *how = NULL;
		long si = folders_resolve_spam(folders, nfolders, seed->spam_folder, &how);
		long ti = folders_resolve_trash(folders, nfolders);

		if (si == -2 || (si < 0 && seed->spam_folder != NULL)) {
			spam_wire = xstrdup(seed->spam_folder);
			spam_display = mutf7_decode(seed->spam_folder);
			if (spam_display == NULL)
				spam_display = xstrdup(seed->spam_folder);
		} else if (si < 0) {
			rc = IMAP_EPROTO;
			if (accepted)
				set_error(ctx, res, "spam folder unresolved: no spam_folder set, no \\Junk "
				          "folder, no known name");
			progress(ctx, "%s: spam folder unresolved", seed->address);
			goto out;
		} else {
			spam_wire = xstrdup(folders[si].wire);
			spam_display = xstrdup(folders[si].display);
			log_debug("%s: spam folder %s (%s)", seed->address, spam_display, how);
		}
		if (ti >= 0)
			trash = xstrdup(folders[ti].wire);
	}

	for (;;) {
		rc = discover_pass(ctx, idx, s, &w, spam_wire, spam_display, trash);
		if (rc == IMAP_EBYE && !reconnected) {
			/* One reconnect after a drop, then give up. */
			reconnected = 1;
			imap_close(s);
			s = NULL;
			free(err);
			err = NULL;
			progress(ctx, "%s: IMAP connection lost, reconnecting once", seed->address);
			rc = open_session(ctx, &seed->imap, seed->address, &s, &err);
			if (rc != IMAP_OK)
				goto fail;
			continue;
		}
		if (rc != IMAP_OK) {
			if (rc == IMAP_ETIMEOUT && (now_mono() >= ctx->deadline || round_stop))
				break;   /* the round is over (or stopped); the probe is not found */
			if (accepted && w.want[0]) {
				/* discover_pass wrote the diagnostic */
				pthread_mutex_lock(&ctx->mu);
				res->outcome = OUTCOME_ERROR;
				pthread_mutex_unlock(&ctx->mu);
			}
			goto out;
		}
		if (!w.want[0] || !accepted)
			break;   /* found (or only pending probes, one pass) */
		if (dsn_says_failed(ctx, idx))
			break;
		{
			double left = ctx->deadline - now_mono();
			double nap_s = (double)cfg->probe.poll_interval;

			if (left <= 0.5 || round_stop)
				break;
			nap(nap_s < left - 0.5 ? nap_s : left - 0.5, ctx->deadline);
			if (round_stop)
				break;
		}
	}
	goto out;

fail:
	/* A stop request cuts the command short: the round's end says
	 * "interrupted" rather than blaming the server. */
	if (accepted && !(round_stop && rc == IMAP_ETIMEOUT)) {
		pthread_mutex_lock(&ctx->mu);
		res->outcome = OUTCOME_ERROR;
		snprintf(res->diagnostic, DIAG_MAX, "%s: %s", imap_error_text(rc),
		         err ? err : imap_err_name(rc));
		pthread_mutex_unlock(&ctx->mu);
	}
	progress(ctx, "%s: %s: %s", seed->address, imap_error_text(rc), err ? err : imap_err_name(rc));
out:
	if (s != NULL)
		imap_close(s);
	if (have_slot)
		imap_slot_release(&ctx->lim, &seed->imap);
	folders_free(folders, nfolders);
	free(spam_wire);
	free(spam_display);
	free(trash);
	free(err);
}

static void *seed_worker(void *arg)
{
	struct worker *wk = arg;
	struct round_ctx *ctx = wk->ctx;
	const struct config *cfg = ctx->cfg;
	const struct seed_conf *seed = &cfg->seeds[wk->idx];
	struct probe_result *res = &ctx->results[wk->idx];
	char *msg = NULL, *err = NULL;
	size_t len = 0;
	int accepted = 0;

	if (ctx->p->tokens != NULL && ctx->p->tokens[wk->idx] != NULL)
		xstrlcpy(res->token, ctx->p->tokens[wk->idx], TOKEN_MAX);   /* written ahead */
	if (round_stop) {
		res->outcome = OUTCOME_ERROR;
		xstrlcpy(res->diagnostic, "round interrupted before submission", DIAG_MAX);
		goto out;
	}
	if (res->token[0] == '\0' &&
	    token_generate(cfg->probe.secret, cfg->probe.secret_len, seed->address, res->token,
	                   &err) != 0) {
		res->outcome = OUTCOME_ERROR;
		snprintf(res->diagnostic, DIAG_MAX, "token: %s", err ? err : "random source failed");
		goto out;
	}
	{
		struct message_params mp = {
			.from = cfg->relay.from, .to = seed->address, .token = res->token,
			.subject_prefix = cfg->probe.subject_prefix,
			.headers = cfg->probe.headers, .nheaders = cfg->probe.nheaders,
			.template_text = cfg->probe.template_text, .now = now_wall(),
		};
		msg = message_build(&mp, &len, &err);
	}
	if (msg == NULL) {
		res->outcome = OUTCOME_ERROR;
		snprintf(res->diagnostic, DIAG_MAX, "message: %s", err ? err : "cannot build");
		goto out;
	}
	accepted = submit_probe(ctx, wk->idx, msg, len);
	discover(ctx, wk->idx, accepted);
out:
	free(msg);
	free(err);
	pthread_mutex_lock(&ctx->mu);
	ctx->workers_left--;
	pthread_mutex_unlock(&ctx->mu);
	return NULL;
}

/* ---- bounce mailbox ----------------------------------------------------- */

static int workers_running(struct round_ctx *ctx)
{
	int r;

	pthread_mutex_lock(&ctx->mu);
	r = ctx->workers_left > 0;
	pthread_mutex_unlock(&ctx->mu);
	return r;
}

static void record_bounces(struct round_ctx *ctx, const struct imap_bounce *b, size_t nb,
                           const size_t *map)
{
	pthread_mutex_lock(&ctx->mu);
	for (size_t i = 0; i < nb; i++) {
		struct probe_result *res = &ctx->results[map[b[i].token_index]];
		/* A failure DSN wins over a delay notice. */
		if (res->dsn.present && res->dsn.action == DSN_ACTION_FAILED)
			continue;
		res->dsn = b[i].dsn;
		res->dsn.present = 1;
	}
	pthread_mutex_unlock(&ctx->mu);
	for (size_t i = 0; i < nb; i++)
		progress(ctx, "%s: DSN %s %s from %s", ctx->cfg->seeds[map[b[i].token_index]].address,
		         dsn_action_name(b[i].dsn.action), b[i].dsn.status, b[i].dsn.remote_mta);
}

/* Record why the bounce mailbox could not be watched (first reason wins),
 * unless the round was stopped, which explains it. */
static void bounce_failed(struct round_ctx *ctx, int rc, const char *err)
{
	if (round_stop)
		return;
	pthread_mutex_lock(&ctx->mu);
	if (ctx->bounce_error[0] == '\0')
		snprintf(ctx->bounce_error, sizeof ctx->bounce_error, "%s: %s", imap_error_text(rc),
		         err ? err : imap_err_name(rc));
	pthread_mutex_unlock(&ctx->mu);
	log_warn("bounce mailbox %s: %s: %s", ctx->cfg->bounce.username, imap_error_text(rc),
	         err ? err : imap_err_name(rc));
}

static void *bounce_worker(void *arg)
{
	struct round_ctx *ctx = arg;
	const struct config *cfg = ctx->cfg;
	struct imap_session *s = NULL;
	char *err = NULL;
	int rc, reconnected = 0;
	size_t n = cfg->nseeds;
	const char **toks = xcalloc(n, sizeof *toks);
	size_t *map = xcalloc(n, sizeof *map);

	if (imap_slot_acquire(&ctx->lim, &cfg->bounce, cfg->limits.per_host, cfg->limits.per_account,
	                      ctx->deadline) != 0) {
		bounce_failed(ctx, IMAP_ETIMEOUT, "no IMAP connection slot before the deadline");
		goto out;
	}
	rc = open_session(ctx, &cfg->bounce, NULL, &s, &err);
	if (rc != IMAP_OK) {
		bounce_failed(ctx, rc, err);
		goto release;
	}
	for (;;) {
		int last = !workers_running(ctx);
		size_t nt = 0;
		struct imap_bounce *b = NULL;
		size_t nb = 0;

		pthread_mutex_lock(&ctx->mu);
		for (size_t i = 0; i < n; i++)
			if (ctx->accepted[i] && !(ctx->results[i].outcome == OUTCOME_INBOX ||
			                          ctx->results[i].outcome == OUTCOME_SPAM)) {
				toks[nt] = ctx->results[i].token;
				map[nt++] = i;
			}
		pthread_mutex_unlock(&ctx->mu);
		if (nt > 0) {
			free(err);
			err = NULL;
			rc = imap_scan_bounces(s, "INBOX", toks, nt, ctx->started - 60, 1, &b, &nb, &err);
			if (rc == IMAP_EBYE && !reconnected) {
				reconnected = 1;
				imap_close(s);
				s = NULL;
				free(err);
				err = NULL;
				rc = open_session(ctx, &cfg->bounce, NULL, &s, &err);
				if (rc != IMAP_OK) {
					bounce_failed(ctx, rc, err);
					break;
				}
				continue;
			}
			if (rc != IMAP_OK) {
				if (!(rc == IMAP_ETIMEOUT && now_mono() >= ctx->deadline))
					bounce_failed(ctx, rc, err);
				free(b);
				break;
			}
			record_bounces(ctx, b, nb, map);
			free(b);
		}
		if (last)
			break;
		{
			double left = ctx->deadline - now_mono();
			double nap_s = (double)cfg->probe.poll_interval;
			if (left <= 0.5 || round_stop)
				break;
			/* Short naps so the last scan follows the workers closely. */
			if (nap_s > 1)
				nap_s = 1;
			nap(nap_s, ctx->deadline);
		}
	}
release:
	if (s != NULL)
		imap_close(s);
	imap_slot_release(&ctx->lim, &cfg->bounce);
out:
	free(err);
	free(toks);
	free(map);
	return NULL;
}

/* ---- the round ------------------------------------------------------- */

static void finish_outcomes(struct round_ctx *ctx)
{
	int interrupted = round_stop;

	for (size_t i = 0; i < ctx->cfg->nseeds; i++) {
		struct probe_result *r = &ctx->results[i];

		if (r->outcome != OUTCOME_MISSING || !ctx->accepted[i])
			continue;
		/* Found probes win over DSNs; only missing ones are explained. */
		if (r->dsn.present && r->dsn.action == DSN_ACTION_FAILED) {
			r->outcome = OUTCOME_REJECTED;
			snprintf(r->diagnostic, DIAG_MAX, "rejected after 250 (DSN): %s %s%s%s",
			         r->dsn.status, smtp_diagnostic(r->dsn.status[0] == '5' ? 550 : 450, r->dsn.status),
			         r->dsn.remote_mta[0] ? " by " : "", r->dsn.remote_mta);
		} else if (interrupted) {
			/* Not missing: the deadline never came. Not measured. */
			r->outcome = OUTCOME_ERROR;
			snprintf(r->diagnostic, DIAG_MAX,
			         "round interrupted (signal %d) before the deadline: not measured; "
			         "later rounds clean the probe up", interrupted);
		} else if (r->dsn.present && r->dsn.action == DSN_ACTION_DELAYED) {
			r->outcome = OUTCOME_DEFERRED;
			snprintf(r->diagnostic, DIAG_MAX, "delayed after 250 (DSN): %s %s%s%s",
			         r->dsn.status, smtp_diagnostic(450, r->dsn.status),
			         r->dsn.remote_mta[0] ? " by " : "", r->dsn.remote_mta);
		} else if (r->diagnostic[0] == '\0') {
			xstrlcpy(r->diagnostic, "accepted by the relay, not found by the deadline", DIAG_MAX);
		}
	}
}

void round_run(const struct round_params *p, struct round_result *out)
{
	const struct config *cfg = p->cfg;
	struct round_ctx ctx;
	struct worker *workers;
	pthread_t bounce_tid;
	int bounce_started = 0;

	memset(&ctx, 0, sizeof ctx);
	memset(out, 0, sizeof *out);
	ctx.p = p;
	ctx.cfg = cfg;
	ctx.started = now_wall();
	ctx.deadline = now_mono() + (double)p->deadline;
	ctx.probe_from = message_probe_from(cfg->probe.template_text, cfg->relay.from);
	pthread_mutex_init(&ctx.mu, NULL);
	pthread_mutex_init(&ctx.lim.mu, NULL);
	{
		/* Waits must not stretch when the wall clock steps back. */
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&ctx.lim.cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	ctx.results = xcalloc(cfg->nseeds, sizeof *ctx.results);
	ctx.accepted = xcalloc(cfg->nseeds, sizeof *ctx.accepted);
	workers = xcalloc(cfg->nseeds, sizeof *workers);
	for (size_t i = 0; i < cfg->nseeds; i++) {
		ctx.results[i].seed_index = i;
		ctx.results[i].outcome = OUTCOME_ERROR;
	}
	ctx.workers_left = cfg->nseeds;

	for (size_t i = 0; i < cfg->nseeds; i++) {
		workers[i].ctx = &ctx;
		workers[i].idx = i;
		if (pthread_create(&workers[i].tid, NULL, seed_worker, &workers[i]) != 0) {
			/* Could not start a thread: run it inline. */
			log_warn("cannot start a thread for %s; probing it inline", cfg->seeds[i].address);
			seed_worker(&workers[i]);
			continue;
		}
		workers[i].threaded = 1;
	}
	if (cfg->has_bounce && pthread_create(&bounce_tid, NULL, bounce_worker, &ctx) == 0)
		bounce_started = 1;
	for (size_t i = 0; i < cfg->nseeds; i++)
		if (workers[i].threaded)
			pthread_join(workers[i].tid, NULL);
	if (bounce_started)
		pthread_join(bounce_tid, NULL);

	finish_outcomes(&ctx);
	out->results = ctx.results;
	out->started = ctx.started;
	out->ended = now_wall();
	out->late = ctx.late;
	out->nlate = ctx.nlate;
	out->interrupted = round_stop != 0;
	xstrlcpy(out->bounce_error, ctx.bounce_error, sizeof out->bounce_error);

	free(ctx.accepted);
	free(ctx.probe_from);
	free(workers);
	for (size_t i = 0; i < ctx.lim.n; i++)
		free(ctx.lim.e[i].key);
	free(ctx.lim.e);
	pthread_mutex_destroy(&ctx.mu);
	pthread_mutex_destroy(&ctx.lim.mu);
	pthread_cond_destroy(&ctx.lim.cv);
}

void round_result_free(struct round_result *r)
{
	if (r == NULL)
		return;
	free(r->results);
	free(r->late);
	memset(r, 0, sizeof *r);
}
