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
#include "scheduler/dispatch.h"
#include "scheduler/pool.h"
#include "scheduler/retry.h"
#include "scheduler/round_int.h"
#include "scheduler/verdicts.h"

atomic_int round_stop;

static int spawn_worker(struct round_ctx *ctx);

/* round_nap's sleepers wait on nap_cv (CLOCK_MONOTONIC, made once), woken
 * by round_wake_naps() on a stop request: naps in quarter-second slices
 * woke a polling or visiting seed 4 times a second for nothing (1,000
 * seeds: 4,000 wake-ups a second). */
static pthread_mutex_t nap_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t nap_cv;
static pthread_once_t nap_once = PTHREAD_ONCE_INIT;

static void nap_init(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&nap_cv, &ca);
	pthread_condattr_destroy(&ca);
}

/* Sleep up to s seconds, until the monotonic deadline or a stop request
 * (round_wake_naps, from await_workers). */
void round_nap(double s, double deadline)
{
	double end = now_mono() + s;

	if (end > deadline)
		end = deadline;
	pthread_once(&nap_once, nap_init);
	pthread_mutex_lock(&nap_mu);
	while (!round_stop) {
		struct timespec ts;
		double left = end - now_mono();
		if (left <= 0)
			break;
		mono_after(left, &ts);
		pthread_cond_timedwait(&nap_cv, &nap_mu, &ts);
	}
	pthread_mutex_unlock(&nap_mu);
}

/* Wake every round_nap() sleeper (they look at round_stop). */
static void round_wake_naps(void)
{
	pthread_once(&nap_once, nap_init);
	pthread_mutex_lock(&nap_mu);
	pthread_cond_broadcast(&nap_cv);
	pthread_mutex_unlock(&nap_mu);
}

/* ---- connection limits ------------------------------------------------ */

/* FNV-1a of key, for the limiter's hash of keys. */
static size_t key_hash(const char *key)
{
	size_t h = (size_t)14695981039346656037ULL;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * (size_t)1099511628211ULL;
	return h;
}

/* Rebuild the hash of keys with twice the slots (or 64 at first). */
static void limit_rehash(struct limiter *l)
{
	size_t n = l->nslots ? l->nslots * 2 : 64;

	free(l->slots);
	l->slots = xcalloc(n, sizeof *l->slots);
	l->nslots = n;
	for (size_t i = 0; i < l->n; i++) {
		size_t j = key_hash(l->e[i].key) & (n - 1);
		while (l->slots[j] != 0)
			j = (j + 1) & (n - 1);
		l->slots[j] = i + 1;
	}
}

/* Index of key's counter, created at 0 when new. Indices stay valid when
 * the array grows; pointers into it would not. A hash of the keys: a round
 * of 1,000 seeds holds 1,001 keys and looks one up at every session's
 * start and end (a scan of them all made it quadratic). */
static size_t limit_slot(struct limiter *l, const char *key)
{
	size_t j;

	if ((l->n + 1) * 2 > l->nslots)
		limit_rehash(l);
	for (j = key_hash(key) & (l->nslots - 1); l->slots[j] != 0; j = (j + 1) & (l->nslots - 1))
		if (strcmp(l->e[l->slots[j] - 1].key, key) == 0)
			return l->slots[j] - 1;
	l->e = xrealloc(l->e, (l->n + 1) * sizeof *l->e);
	l->e[l->n].key = xstrdup(key);
	l->e[l->n].count = 0;
	l->slots[j] = l->n + 1;
	return l->n++;
}

/* Wait until cv is signalled or the monotonic deadline passes; l->mu held.
 * No periodic re-check: a stop request wakes every waiter
 * (round_limiter_wake_all), a release the next one in turn. A one-second
 * re-check woke each of 1,000 threads queued for 4 SMTP slots about once a
 * second of the submission span (10 s at 1,000 seeds). */
static int limiter_wait_on(struct limiter *l, pthread_cond_t *cv, double deadline)
{
	double left = deadline - now_mono();
	struct timespec ts;

	if (left <= 0)
		return ETIMEDOUT;
	mono_after(left, &ts);   /* the cond uses CLOCK_MONOTONIC */
	pthread_cond_timedwait(cv, &l->mu, &ts);
	return 0;
}

/* Unqueue w; l->mu held. */
static void slot_unqueue(struct limiter *l, struct slot_waiter *w)
{
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		l->wait_head = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	else
		l->wait_tail = w->prev;
	w->prev = w->next = NULL;
}

/* Hand free slots to the waiters in arrival order, each whose host and
 * account have room (one held back by its account does not hold back the
 * host's others), and wake only them; l->mu held. First come, first served:
 * when a host's seeds outnumber per_host and take turns, each waits for at
 * most the others' one session each (issue 9 "Sharing connections fairly";
 * the broadcast it replaces woke every waiter at each release and let the
 * quickest win, and some seeds waited most of the round). */
static void slot_grant(struct limiter *l)
{
	struct slot_waiter *w = l->wait_head, *next;

	for (; w != NULL; w = next) {
		next = w->next;
		if (l->e[w->host].count >= w->per_host || l->e[w->acct].count >= w->per_account)
			continue;
		l->e[w->host].count++;
		l->e[w->acct].count++;
		w->granted = 1;
		slot_unqueue(l, w);
		pthread_cond_signal(&w->cv);
	}
}

/* Take one IMAP slot for host and account, in turn with the other waiters
 * (slot_grant). Returns 0, or -1 when the deadline passed first. */
int round_slot_acquire(struct limiter *l, const struct imap_conf *ic, long per_host,
                       long per_account, double deadline)
{
	char *hk = xasprintf("host:%s:%d", ic->host, ic->port);
	char *ak = xasprintf("acct:%s:%d:%s", ic->host, ic->port, ic->username ? ic->username : "");
	struct slot_waiter me = { .per_host = per_host, .per_account = per_account };
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* limiter_wait_on's clock */
	pthread_cond_init(&me.cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_lock(&l->mu);
	me.host = limit_slot(l, hk);
	me.acct = limit_slot(l, ak);
	me.prev = l->wait_tail;
	if (l->wait_tail != NULL)
		l->wait_tail->next = &me;
	else
		l->wait_head = &me;
	l->wait_tail = &me;
	slot_grant(l);
	while (!me.granted && !round_stop && now_mono() < deadline)
		limiter_wait_on(l, &me.cv, deadline);
	if (!me.granted)
		slot_unqueue(l, &me);
	pthread_mutex_unlock(&l->mu);
	pthread_cond_destroy(&me.cv);
	free(hk);
	free(ak);
	return me.granted ? 0 : -1;
}

void round_slot_release(struct limiter *l, const struct imap_conf *ic)
{
	char *hk = xasprintf("host:%s:%d", ic->host, ic->port);
	char *ak = xasprintf("acct:%s:%d:%s", ic->host, ic->port, ic->username ? ic->username : "");

	pthread_mutex_lock(&l->mu);
	l->e[limit_slot(l, hk)].count--;
	l->e[limit_slot(l, ak)].count--;
	slot_grant(l);
	pthread_mutex_unlock(&l->mu);
	free(hk);
	free(ak);
}

static int smtp_slot_acquire(struct limiter *l, long max_active, double deadline)
{
	int ret = -1;

	pthread_mutex_lock(&l->mu);
	/* after a stop request no new transaction starts: a slot freed by
	 * an aborted one is not handed on ("round interrupted before
	 * submission", not a relay timeout at connect) */
	while (!round_stop) {
		if (l->smtp_active < max_active) {
			l->smtp_active++;
			ret = 0;
			break;
		}
		if (now_mono() >= deadline ||
		    limiter_wait_on(l, &l->smtp_cv, deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&l->mu);
	return ret;
}

/* Wake every thread waiting in the limiter (IMAP slots, SMTP slots, the
 * gates), for a stop request: they wait for a turn or the deadline only. */
static void limiter_wake_all(struct limiter *l)
{
	pthread_mutex_lock(&l->mu);
	for (struct slot_waiter *w = l->wait_head; w != NULL; w = w->next)
		pthread_cond_signal(&w->cv);
	pthread_cond_broadcast(&l->smtp_cv);
	for (struct open_gate *g = l->gates; g != NULL; g = g->next)
		pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&l->mu);
}

/* Every waiter wants the same thing, any free slot: wake one. A broadcast
 * woke all of them for each of 1,000 transactions (the daemon's round of
 * 1,000 kept sessions, armed at once, spent 5 s of CPU and 34 s there). */
static void smtp_slot_release(struct limiter *l)
{
	pthread_mutex_lock(&l->mu);
	l->smtp_active--;
	pthread_cond_signal(&l->smtp_cv);
	pthread_mutex_unlock(&l->mu);
}

/* ---- shared round state ----------------------------------------------- */

/* A worker thread: it runs seeds one after another (dispatch.h). */
struct worker {
	struct round_ctx *ctx;
	pthread_t tid;           /* set by the thread itself as it ends */
	struct worker *next;     /* in ctx->ended */
};

void round_progress(struct round_ctx *ctx, const char *fmt, ...)
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

/* the seed whose worker runs on this thread (-1 none: the bounce mailbox's,
 * the main thread), for marks made below the seed's level and for
 * open_gated() to release it from its host's window (dispatch.h) */
static _Thread_local long mark_idx = -1;

void round_mark(struct round_ctx *ctx, long idx, const char *event)
{
	if (ctx->timeline == NULL)
		return;
	/* one fprintf per line: stdio locks the stream, lines never mix */
	fprintf(ctx->timeline, "%.6f %ld %s\n", now_wall(), idx == -2 ? mark_idx : idx, event);
}

void round_set_latency(struct probe_result *r, double sent, double submit, double internaldate,
                       double found, double delay)
{
	double lo = internaldate, hi, arrival, lat;

	r->internaldate = internaldate;
	r->found_time = found;
	r->clock_skew = 0;
	r->announce_delay = NAN;
	if (!(internaldate > 0)) {
		r->latency = NAN;
		r->discovery_lag = NAN;
		r->latency_error_bound = NAN;
		r->arrival = 0;
		r->have_latency = 0;
		return;
	}
	/* arrival in [INTERNALDATE, min(INTERNALDATE + 1 s, seen)]; a server
	 * clock ahead of ours (seen < INTERNALDATE) leaves the point INTERNALDATE */
	hi = internaldate + 1.0 < found ? internaldate + 1.0 : found;
	if (hi < lo)
		hi = lo;
	arrival = (lo + hi) / 2;
	if (r->announced && delay >= 0) {
		/* the server announced it delay seconds after it arrived: a
		 * point inside the interval, never outside it */
		double est = found - delay;
		arrival = est < lo ? lo : est > hi ? hi : est;
		r->announce_delay = delay;
	}
	r->arrival = arrival;
	r->latency_error_bound = (hi - lo) / 2;
	r->discovery_lag = found - arrival;
	if (r->discovery_lag < 0)
		r->discovery_lag = 0;
	lat = arrival - submit;
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

/* The monotonic time after which no retry starts (an SMTP submission that
 * failed before its message went out, an IMAP session refused while
 * opening): half-way through the round, since a probe sent later has
 * little time left to arrive, and would be reported missing for the
 * relay's or the server's trouble. */
static double round_give_up(const struct round_ctx *ctx)
{
	return ctx->deadline - (double)ctx->p->deadline / 2;
}

/* One more SMTP attempt of res ended with rc and reply: counted, and kept
 * in its history (the first ATTEMPTS_MAX - 1 and always the latest). */
static void record_attempt(struct round_ctx *ctx, struct probe_result *res,
                           const struct smtp_reply *reply, int rc)
{
	struct smtp_attempt *a;

	pthread_mutex_lock(&ctx->mu);
	res->attempts++;
	res->reply = *reply;
	a = &res->history[res->nhistory < ATTEMPTS_MAX ? res->nhistory++ : ATTEMPTS_MAX - 1];
	memset(a, 0, sizeof *a);
	a->time = now_wall();
	a->code = reply->code;
	xstrlcpy(a->enhanced, reply->enhanced, sizeof a->enhanced);
	xstrlcpy(a->stage, reply->stage, sizeof a->stage);
	xstrlcpy(a->error, smtp_err_name(rc), sizeof a->error);
	pthread_mutex_unlock(&ctx->mu);
}

/* Seed idx's submission failed with rc (neither accepted, 4xx nor 5xx):
 * outcome error and the diagnostic; when the message went out (after
 * DATA's 354), it may have been delivered: its submit time is kept so
 * that later rounds look for it. */
static void submit_failed(struct round_ctx *ctx, size_t idx, int rc, const struct smtp_reply *reply,
                          const char *err, double started)
{
	struct probe_result *res = &ctx->results[idx];

	res->outcome = OUTCOME_ERROR;
	if (rc == SMTP_ENOFILES)   /* ours, not the relay's: say what */
		xstrlcpy(res->diagnostic, err ? err : "too many open files", DIAG_MAX);
	else
		snprintf(res->diagnostic, DIAG_MAX, "relay %s: %s", smtp_err_name(rc),
		         err ? err : "failed");
	if ((rc == SMTP_EDROP || rc == SMTP_ETIMEOUT || rc == SMTP_EPROTO) && reply->data_sent) {
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
}

/* Submit seed idx's probe; retries with backoff (retry_smtp_again()): a
 * 4xx inside the deadline, a failure before the message went out
 * (connect, greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA's 354) until
 * round_give_up(). Returns 1 when accepted, 0 otherwise (outcome set). */
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

		round_mark(ctx, (long)idx, "smtp_wait");
		if (smtp_slot_acquire(&ctx->lim, cfg->relay.connections, ctx->deadline) != 0) {
			if (res->attempts == 0) {
				res->outcome = OUTCOME_ERROR;
				xstrlcpy(res->diagnostic, round_stop ? "round interrupted before submission" :
				         "round deadline passed before submission", DIAG_MAX);
			}
			return 0;
		}
		memset(&reply, 0, sizeof reply);
		round_mark(ctx, (long)idx, "smtp_slot");
		started = now_wall();
		rc = smtp_submit(&sp, &reply, &submit, &err);
		smtp_slot_release(&ctx->lim);
		round_mark(ctx, (long)idx, "smtp_done");

		record_attempt(ctx, res, &reply, rc);

		switch (rc) {
		case SMTP_OK:
			pthread_mutex_lock(&ctx->mu);
			res->submit_time = submit;
			res->send_start = started;
			res->outcome = OUTCOME_MISSING;   /* until found or explained */
			res->diagnostic[0] = '\0';
			ctx->accepted[idx] = 1;
			pthread_mutex_unlock(&ctx->mu);
			round_progress(ctx, "%s: accepted by relay: %d %s%s%s", seed->address, reply.code,
			         reply.enhanced, reply.queue_id[0] ? " queued as " : "", reply.queue_id);
			free(err);
			return 1;
		case SMTP_ETEMP:
			res->outcome = OUTCOME_DEFERRED;
			snprintf(res->diagnostic, DIAG_MAX, "relay deferred (%s): %d %s %s", reply.stage,
			         reply.code, reply.enhanced, smtp_diagnostic(reply.code, reply.enhanced));
			round_progress(ctx, "%s: attempt %d deferred: %d %s %s", seed->address, res->attempts,
			         reply.code, reply.enhanced, reply.text);
			free(err);
			/* Retry with backoff while the round has time for it. */
			if (now_mono() + backoff + 1 >= ctx->deadline || round_stop)
				return 0;
			round_nap(backoff, ctx->deadline);
			if (round_stop)
				return 0;
			backoff = backoff * 2 > 60 ? 60 : backoff * 2;
			continue;
		case SMTP_EPERM:
			res->outcome = OUTCOME_REJECTED;
			snprintf(res->diagnostic, DIAG_MAX, "relay rejected (%s): %d %s %s", reply.stage,
			         reply.code, reply.enhanced, smtp_diagnostic(reply.code, reply.enhanced));
			round_progress(ctx, "%s: rejected: %d %s %s", seed->address, reply.code, reply.enhanced,
			         reply.text);
			free(err);
			return 0;
		default:
			submit_failed(ctx, idx, rc, &reply, err, started);
			free(err);
			if (!retry_smtp_again(rc, reply.data_sent) || round_stop ||
			    now_mono() + backoff >= round_give_up(ctx)) {
				round_progress(ctx, "%s: submission failed: %s", seed->address,
				               res->diagnostic);
				return 0;
			}
			/* no message went out: another attempt cannot duplicate it */
			round_progress(ctx, "%s: attempt %d failed before the message was sent: %s; "
			               "retrying in %.0fs", seed->address, res->attempts, res->diagnostic,
			               backoff);
			round_nap(backoff, ctx->deadline);
			if (round_stop)
				return 0;
			backoff = backoff * 2 > 60 ? 60 : backoff * 2;
			continue;
		}
	}
}

/* ---- discovery ---------------------------------------------------------- */

const char *round_imap_error_text(int rc)
{
	return retry_text(rc);
}

/* ic's host's gate, made on first use; ctx->lim.mu held. */
static struct open_gate *gate_of(struct round_ctx *ctx, const struct imap_conf *ic)
{
	struct open_gate *g;
	pthread_condattr_t ca;

	for (g = ctx->lim.gates; g != NULL; g = g->next)
		if (g->port == ic->port && strcmp(g->host, ic->host ? ic->host : "") == 0)
			return g;
	g = xcalloc(1, sizeof *g);
	g->host = xstrdup(ic->host ? ic->host : "");
	g->port = ic->port;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cv, &ca);
	pthread_condattr_destroy(&ca);
	g->next = ctx->lim.gates;
	ctx->lim.gates = g;
	return g;
}

/* Wait for a turn to open a session of ic's host: 0, or -1 when the
 * deadline passed or the round stopped first. One waiter is woken per
 * ended opening (a host's waiters all want the same thing). */
static int gate_enter(struct round_ctx *ctx, const struct imap_conf *ic)
{
	struct open_gate *g;
	int ret = -1;

	pthread_mutex_lock(&ctx->lim.mu);
	g = gate_of(ctx, ic);
	while (!round_stop) {
		struct timespec ts;
		double left = ctx->deadline - now_mono();
		if (g->opening < ROUND_OPENING_MAX) {
			g->opening++;
			ret = 0;
			break;
		}
		if (left <= 0)
			break;
		/* until a turn or the deadline: a stop request is broadcast
		 * (await_workers); a one-second nap woke each of 1,000
		 * waiting threads 5-10 times, 20 futex calls a seed */
		mono_after(left, &ts);
		pthread_cond_timedwait(&g->cv, &ctx->lim.mu, &ts);
	}
	pthread_mutex_unlock(&ctx->lim.mu);
	return ret;
}

/* Wait until every seed is done (ctx->workers_left is 0) and every worker
 * thread has ended, joining each thread as it ends: a joinable thread's
 * stack stays mapped, its used pages resident, until it is joined. On a
 * stop request, wake the threads waiting in the limiter (for a slot or at
 * a gate: they wait for a turn or the deadline only) and in the
 * dispatcher: round_stop is set in a signal handler, which cannot
 * broadcast. */
static void await_workers(struct round_ctx *ctx)
{
	int woken = 0;

	pthread_mutex_lock(&ctx->mu);
	while (ctx->workers_left > 0 || ctx->spawning > 0 || ctx->threads > 0) {
		struct timespec ts;
		if (ctx->ended != NULL) {
			struct worker *wk = ctx->ended;
			ctx->ended = wk->next;
			ctx->threads--;
			pthread_mutex_unlock(&ctx->mu);
			pthread_join(wk->tid, NULL);
			free(wk);
			pthread_mutex_lock(&ctx->mu);
			continue;
		}
		if (round_stop && !woken) {
			pthread_cond_broadcast(&ctx->bounce_cv);   /* wait_bounce_armed */
			pthread_mutex_unlock(&ctx->mu);
			limiter_wake_all(&ctx->lim);
			round_wake_naps();
			dispatch_stop(ctx->dsp);
			woken = 1;
			pthread_mutex_lock(&ctx->mu);
			continue;
		}
		mono_after(0.25, &ts);   /* look at round_stop 4 times a second */
		pthread_cond_timedwait(&ctx->done_cv, &ctx->mu, &ts);
	}
	pthread_mutex_unlock(&ctx->mu);
}

static void gate_leave(struct round_ctx *ctx, const struct imap_conf *ic)
{
	struct open_gate *g;

	pthread_mutex_lock(&ctx->lim.mu);
	g = gate_of(ctx, ic);
	g->opening--;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&ctx->lim.mu);
}

/* Open one session in a turn of ic's host's gate. */
static int open_gated(struct round_ctx *ctx, const struct imap_conf *ic, const struct imap_params *ip,
                      struct imap_session **s, char **err)
{
	int rc;

	if (gate_enter(ctx, ic) != 0) {
		*err = xasprintf("imap %s:%d: no turn to connect before the round's deadline",
		                 ic->host ? ic->host : "", ic->port);
		return IMAP_ETIMEOUT;
	}
	round_mark(ctx, -2, "gate");
	rc = ctx->drv->open(ip, s, err);
	round_mark(ctx, -2, "open");
	gate_leave(ctx, ic);
	/* the seed's first session is open (or failed): another seed of
	 * its host may start; the window then holds no seed at the gate */
	if (mark_idx >= 0 && dispatch_release(ctx->dsp, (size_t)mark_idx))
		spawn_worker(ctx);
	return rc;
}

int round_open_session(struct round_ctx *ctx, const struct imap_conf *ic, const char *seed,
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
		.old_secrets = ctx->cfg->probe.old_secrets,
		.nold_secrets = ctx->cfg->probe.nold_secrets,
		.seed = seed,
	};
	/* retries stop half-way through the round: a probe sent later has
	 * little time left to arrive */
	double give_up = round_give_up(ctx);
	double backoff = 1.0;
	int rc, tries = 0;

	if (ctx->p->pool != NULL) {
		/* the daemon: a session kept from an earlier round, if still alive */
		struct imap_session *k = pool_take(ctx->p->pool, ic);
		if (k != NULL) {
			ctx->drv->rebind(k, &ip);
			if (ctx->drv->noop(k, err) == IMAP_OK) {
				*s = k;
				return IMAP_OK;
			}
			log_debug("%s: kept session lost (%s); logging in again", ic->username,
			          *err ? *err : "NOOP failed");
			free(*err);
			*err = NULL;
			ctx->drv->close_now(k);
		}
	}
	for (;;) {
		rc = open_gated(ctx, ic, &ip, s, err);
		tries++;
		/* refused, closed before or at the greeting, [UNAVAILABLE]:
		 * a slot may free up */
		if (!retry_open_again(rc) || round_stop ||
		    now_mono() + backoff >= give_up)
			break;
		log_debug("%s: %s; retrying in %.0fs", ic->username, *err ? *err : "unavailable", backoff);
		free(*err);
		*err = NULL;
		round_nap(backoff, ctx->deadline);
		backoff = backoff * 2 > 8 ? 8 : backoff * 2;
	}
	if ((rc == IMAP_ECONNECT || rc == IMAP_EBYE) && tries > 1 && *err) {
		char *e = xasprintf("%s (%d attempts; the server may cap connections per client IP, "
		                    "e.g. Courier's MAXPERIP)", *err, tries);
		free(*err);
		*err = e;
	}
	return rc;
}

void round_close_session(struct round_ctx *ctx, const struct imap_conf *ic, struct imap_session *s)
{
	char *err = NULL;

	if (s == NULL)
		return;
	if (ctx->p->pool == NULL) {
		ctx->drv->close(s);
		return;
	}
	ctx->drv->extend(s, 5.0);   /* the round's deadline may have passed: end IDLE anyway */
	if (ctx->drv->idle_done(s, &err) != IMAP_OK) {
		log_debug("%s: not kept: %s", ic->username, err ? err : "DONE failed");
		free(err);
		ctx->drv->close_now(s);
		return;
	}
	pool_put(ctx->p->pool, ic, s);
}

/* Seeds send once the bounce mailbox is armed (or failed), so that a DSN
 * for an early probe is not missed. */
static void wait_bounce_armed(struct round_ctx *ctx)
{
	pthread_mutex_lock(&ctx->mu);
	while (ctx->cfg->has_bounce && !ctx->bounce_armed && !round_stop &&
	       now_mono() < ctx->deadline) {
		/* until armed or the deadline: a stop request is broadcast
		 * (await_workers), no quarter-second re-check */
		struct timespec ts;
		double left = ctx->deadline - now_mono();
		mono_after(left, &ts);
		pthread_cond_timedwait(&ctx->bounce_cv, &ctx->mu, &ts);
	}
	pthread_mutex_unlock(&ctx->mu);
}

static void bounce_set_armed(struct round_ctx *ctx)
{
	pthread_mutex_lock(&ctx->mu);
	ctx->bounce_armed = 1;
	pthread_cond_broadcast(&ctx->bounce_cv);
	pthread_mutex_unlock(&ctx->mu);
}

/* One seed, on a worker thread: arm, send, watch (SPEC "What it is"). It
 * leaves its host's window (dispatch_release()) once its first session is
 * open (open_gated()), else once watch_arm() returns or it ends before. */
static void run_seed(struct round_ctx *ctx, size_t idx)
{
	const struct config *cfg = ctx->cfg;
	const struct seed_conf *seed = &cfg->seeds[idx];
	struct probe_result *res = &ctx->results[idx];
	struct seed_watch *w = NULL;
	char *msg = NULL, *err = NULL;
	size_t len = 0;
	int accepted = 0, armed = 0;

	if (ctx->p->tokens != NULL && ctx->p->tokens[idx] != NULL)
		xstrlcpy(res->token, ctx->p->tokens[idx], TOKEN_MAX);   /* written ahead */
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
	mark_idx = (long)idx;
	round_mark(ctx, (long)idx, "thread");
	w = watch_arm(ctx, idx);
	armed = 1;
	if (dispatch_release(ctx->dsp, idx))   /* when it opened no session */
		spawn_worker(ctx);
	if (w == NULL)
		goto out;   /* not watchable: no probe (watch_arm said why) */
	wait_bounce_armed(ctx);
	accepted = submit_probe(ctx, idx, msg, len);
	watch_run(ctx, idx, w, accepted);
out:
	if (!armed && dispatch_release(ctx->dsp, idx))
		spawn_worker(ctx);
	watch_end(ctx, idx, w);
	round_mark(ctx, (long)idx, "exit");
	free(msg);
	free(err);
	mark_idx = -1;
	pthread_mutex_lock(&ctx->mu);
	/* the main thread waits for the last seed and for ended threads:
	 * waking it per seed cost 1,000 wake-ups a round */
	if (--ctx->workers_left == 0)
		pthread_cond_signal(&ctx->done_cv);
	pthread_mutex_unlock(&ctx->mu);
}

/* Take seeds from the dispatcher and run them until none is left. */
static void worker_loop(struct round_ctx *ctx)
{
	size_t idx;
	int spawn, reserved = 1;

	while (dispatch_take(ctx->dsp, reserved, ctx->deadline, &idx, &spawn)) {
		if (spawn)
			spawn_worker(ctx);
		run_seed(ctx, idx);
		reserved = 0;
	}
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct round_ctx *ctx = wk->ctx;

	worker_loop(ctx);
	pthread_mutex_lock(&ctx->mu);
	wk->tid = pthread_self();
	wk->next = ctx->ended;
	ctx->ended = wk;
	pthread_cond_signal(&ctx->done_cv);
	pthread_mutex_unlock(&ctx->mu);
	return NULL;
}

/* Start one more worker thread, reserved in the dispatcher. Returns 0, or
 * -1 when no thread could be started (the reservation is given back: the
 * threads there are take the seeds). */
static int spawn_worker(struct round_ctx *ctx)
{
	struct worker *wk = xcalloc(1, sizeof *wk);
	pthread_t tid;
	int rc;

	wk->ctx = ctx;
	pthread_mutex_lock(&ctx->mu);
	ctx->spawning++;
	pthread_mutex_unlock(&ctx->mu);
	rc = pthread_create(&tid, NULL, worker_main, wk);
	pthread_mutex_lock(&ctx->mu);
	ctx->spawning--;
	if (rc == 0) {
		ctx->threads++;
		ctx->threads_total++;
	}
	pthread_cond_signal(&ctx->done_cv);
	pthread_mutex_unlock(&ctx->mu);
	if (rc != 0) {
		free(wk);
		dispatch_unreserve(ctx->dsp);
		return -1;
	}
	return 0;
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
		round_progress(ctx, "%s: DSN %s %s from %s", ctx->cfg->seeds[map[b[i].token_index]].address,
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
		snprintf(ctx->bounce_error, sizeof ctx->bounce_error, "%s: %s", round_imap_error_text(rc),
		         err ? err : imap_err_name(rc));
	pthread_mutex_unlock(&ctx->mu);
	log_warn("bounce mailbox %s: %s: %s", ctx->cfg->bounce.username, round_imap_error_text(rc),
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

	/* Armed first, in a connection of its own that seeds never compete
	 * for (it is not counted in imap_limits). */
	rc = round_open_session(ctx, &cfg->bounce, NULL, &s, &err);
	bounce_set_armed(ctx);
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
			rc = ctx->drv->scan_bounces(s, "INBOX", toks, nt, ctx->started - 60, 1, &b, &nb, &err);
			if (retry_reconnect(rc) && !reconnected) {
				reconnected = 1;
				ctx->drv->close(s);
				s = NULL;
				free(err);
				err = NULL;
				rc = round_open_session(ctx, &cfg->bounce, NULL, &s, &err);
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
			round_nap(nap_s, ctx->deadline);
		}
	}
release:
	round_close_session(ctx, &cfg->bounce, s);   /* the daemon keeps it */
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

/* out's entry for server key, made from what was learned before (the
 * state store's window) when this round has none yet. */
static struct round_delay *delay_entry(struct round_ctx *ctx, struct round_result *out,
                                       const char *key)
{
	struct round_delay *d;

	for (size_t k = 0; k < out->ndelays; k++)
		if (strcmp(out->delays[k].server, key) == 0)
			return &out->delays[k];
	out->delays = xrealloc(out->delays, (out->ndelays + 1) * sizeof *out->delays);
	d = &out->delays[out->ndelays++];
	memset(d, 0, sizeof *d);
	xstrlcpy(d->server, key, sizeof d->server);
	delaywin_init(&d->win);
	for (size_t j = 0; j < ctx->p->ndelays; j++)
		if (strcmp(ctx->p->delays[j].server, key) == 0) {
			d->win = ctx->p->delays[j].win;
			d->samples = ctx->p->delays[j].samples;
		}
	return d;
}

struct by_seen {
	double seen;
	size_t i;
};

static int cmp_seen(const void *a, const void *b)
{
	const struct by_seen *x = a, *y = b;

	return x->seen < y->seen ? -1 : x->seen > y->seen;
}

static void server_key(const struct imap_conf *ic, char *key, size_t keysz)
{
	snprintf(key, keysz, "%s:%d", ic->host ? ic->host : "", ic->port);
}

/* Learn each server's announcement delay from this round's announced
 * probes (IDLE EXISTS or NOTIFY STATUS): their seen - INTERNALDATE join
 * the server's window of the last DELAY_WINDOW lags, in the order they
 * were seen, and the delay is the window's minimum (scheduler/delaywin.h:
 * it falls at once and rises once the old lags have left the window);
 * then place those probes' arrivals with it (SPEC "Latency"). */
static void learn_delays(struct round_ctx *ctx, struct round_result *out)
{
	const struct config *cfg = ctx->cfg;
	struct by_seen *order = xcalloc(cfg->nseeds ? cfg->nseeds : 1, sizeof *order);
	size_t n = 0;
	char key[ROUND_SERVER_MAX];

	for (size_t i = 0; i < cfg->nseeds; i++) {
		const struct probe_result *r = &ctx->results[i];

		if (r->announced && r->internaldate > 0 && r->found_time - r->internaldate >= 0 &&
		    (r->outcome == OUTCOME_INBOX || r->outcome == OUTCOME_SPAM)) {
			order[n].seen = r->found_time;
			order[n++].i = i;
		}
	}
	qsort(order, n, sizeof *order, cmp_seen);
	for (size_t j = 0; j < n; j++) {
		const struct probe_result *r = &ctx->results[order[j].i];
		struct round_delay *d;

		server_key(&cfg->seeds[order[j].i].imap, key, sizeof key);
		d = delay_entry(ctx, out, key);
		if (delaywin_add(&d->win, r->found_time - r->internaldate) == 0)
			d->samples++;
	}
	free(order);
	for (size_t k = 0; k < out->ndelays; k++) {
		out->delays[k].delay = delaywin_min(&out->delays[k].win);
		log_debug("IMAP server %s: learned announcement delay %.3f s (the smallest of the last "
		          "%zu of %ld announced probes)", out->delays[k].server, out->delays[k].delay,
		          out->delays[k].win.n, out->delays[k].samples);
	}
	for (size_t i = 0; i < cfg->nseeds; i++) {
		struct probe_result *r = &ctx->results[i];

		if (!r->announced || !(r->internaldate > 0))
			continue;
		server_key(&cfg->seeds[i].imap, key, sizeof key);
		for (size_t k = 0; k < out->ndelays; k++)
			if (strcmp(out->delays[k].server, key) == 0 && out->delays[k].delay >= 0)
				round_set_latency(r, r->send_start, r->submit_time, r->internaldate,
				                  r->found_time, out->delays[k].delay);
	}
}

void round_run(const struct round_params *p, struct round_result *out)
{
	const struct config *cfg = p->cfg;
	struct round_ctx ctx;
	pthread_t bounce_tid;
	int bounce_started = 0;

	memset(out, 0, sizeof *out);
	round_ctx_init(&ctx, p);
	ctx.workers_left = cfg->nseeds;
	if (cfg->has_bounce && pthread_create(&bounce_tid, NULL, bounce_worker, &ctx) == 0)
		bounce_started = 1;
	else
		ctx.bounce_armed = 1;

	/* the first worker thread starts the others as seeds may start */
	dispatch_reserve(ctx.dsp);
	if (spawn_worker(&ctx) != 0) {
		log_warn("cannot start a worker thread; probing the seeds one after another");
		dispatch_reserve(ctx.dsp);
		worker_loop(&ctx);
	}
	await_workers(&ctx);
	log_debug("round: %zu seeds on %zu worker threads", cfg->nseeds, ctx.threads_total);
	if (bounce_started)
		pthread_join(bounce_tid, NULL);

	round_mark(&ctx, -1, "joined");
	learn_delays(&ctx, out);
	finish_outcomes(&ctx);
	round_mark(&ctx, -1, "end");
	out->results = ctx.results;
	out->started = ctx.started;
	out->ended = now_wall();
	out->late = ctx.late;
	out->nlate = ctx.nlate;
	out->interrupted = round_stop != 0;
	xstrlcpy(out->bounce_error, ctx.bounce_error, sizeof out->bounce_error);

	ctx.results = NULL;   /* out's now */
	ctx.late = NULL;
	round_ctx_destroy(&ctx);
}

void round_ctx_init(struct round_ctx *ctx, const struct round_params *p)
{
	const struct config *cfg = p->cfg;
	pthread_condattr_t ca;

	memset(ctx, 0, sizeof *ctx);
	ctx->p = p;
	ctx->cfg = cfg;
	ctx->drv = p->driver != NULL ? p->driver : &imap_driver_real;
	ctx->started = now_wall();
	ctx->deadline = now_mono() + (double)p->deadline;
	ctx->probe_from = message_probe_from(cfg->probe.template_text, cfg->relay.from);
	if (getenv("INBOXPROBE_TIMELINE") != NULL && *getenv("INBOXPROBE_TIMELINE") != '\0')
		ctx->timeline = fopen(getenv("INBOXPROBE_TIMELINE"), "ae");
	round_mark(ctx, -1, "start");
	pthread_mutex_init(&ctx->mu, NULL);
	pthread_mutex_init(&ctx->lim.mu, NULL);
	/* Waits must not stretch when the wall clock steps back. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ctx->lim.smtp_cv, &ca);
	pthread_cond_init(&ctx->bounce_cv, &ca);
	pthread_cond_init(&ctx->done_cv, &ca);
	pthread_condattr_destroy(&ca);
	ctx->results = xcalloc(cfg->nseeds, sizeof *ctx->results);
	ctx->accepted = xcalloc(cfg->nseeds, sizeof *ctx->accepted);
	/* seeds of a host starting at once: as many as its opening gate lets open */
	ctx->dsp = dispatch_new(cfg, ROUND_OPENING_MAX);
	for (size_t i = 0; i < cfg->nseeds; i++) {
		ctx->results[i].seed_index = i;
		ctx->results[i].outcome = OUTCOME_ERROR;
	}
}

void round_ctx_destroy(struct round_ctx *ctx)
{
	if (ctx->timeline != NULL)
		fclose(ctx->timeline);
	free(ctx->results);
	free(ctx->late);
	free(ctx->accepted);
	dispatch_free(ctx->dsp);
	free(ctx->probe_from);
	for (size_t i = 0; i < ctx->lim.n; i++)
		free(ctx->lim.e[i].key);
	free(ctx->lim.e);
	free(ctx->lim.slots);
	while (ctx->lim.gates != NULL) {
		struct open_gate *g = ctx->lim.gates;
		ctx->lim.gates = g->next;
		pthread_cond_destroy(&g->cv);
		free(g->host);
		free(g);
	}
	pthread_mutex_destroy(&ctx->mu);
	pthread_mutex_destroy(&ctx->lim.mu);
	pthread_cond_destroy(&ctx->lim.smtp_cv);
	pthread_cond_destroy(&ctx->bounce_cv);
	pthread_cond_destroy(&ctx->done_cv);
}

void round_result_free(struct round_result *r)
{
	if (r == NULL)
		return;
	free(r->results);
	free(r->late);
	free(r->delays);
	memset(r, 0, sizeof *r);
}
