/* cycle.c - one round from the state store to the report files (cycle.h). */
#include <config.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "prober/message.h"
#include "scheduler/cycle.h"
#include "scheduler/runlock.h"

/* The lock's path, its directory (*dir, heap) and how far that is trusted. */
static char *lock_place(const struct config *cfg, char **dir, enum run_lock_dir_kind *kind)
{
	char *name, *p, *ret;
	int changed = 0;
	uint32_t h = 2166136261u;   /* FNV-1a of the name as written */

	name = xstrdup(cfg->name);
	for (p = name; *p; p++) {
		h = (h ^ (unsigned char)*p) * 16777619u;
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
			*p = '_';
			changed = 1;
		}
	}
	if (changed || name[0] == '.' || name[0] == '\0') {
		char *n2 = xasprintf("%s-%08x", name, h);
		free(name);
		name = n2;
	}
	*kind = RUN_LOCK_DIR_CONFIGURED;
	if (cfg->lock_dir != NULL) {
		*dir = xstrdup(cfg->lock_dir);
		ret = xasprintf("%s/%s.lock", cfg->lock_dir, name);
	} else if (cfg->state.path != NULL) {
		char *slash;
		ret = xasprintf("%s.%s.lock", cfg->state.path, name);
		*dir = xstrdup(ret);
		slash = strrchr(*dir, '/');
		if (slash == NULL) {
			free(*dir);
			*dir = xstrdup(".");
		} else {
			slash[slash == *dir] = '\0';
		}
	} else {
		*dir = xstrdup(INBOXPROBE_LOCKDIR);
		*kind = RUN_LOCK_DIR_SYSTEM;
		ret = xasprintf("%s/%s.lock", INBOXPROBE_LOCKDIR, name);
	}
	free(name);
	return ret;
}

char *cycle_lock_path(const struct config *cfg)
{
	enum run_lock_dir_kind kind;
	char *dir = NULL;
	char *ret = lock_place(cfg, &dir, &kind);

	free(dir);
	return ret;
}

int cycle_lock_take(const struct config *cfg, char **lockpath, struct run_lock **lock,
                    char **errstr)
{
	enum run_lock_dir_kind kind;
	char *dir = NULL;
	int rc;

	*lock = NULL;
	*lockpath = lock_place(cfg, &dir, &kind);
	rc = run_lock_dir_check(dir, kind, errstr) != 0 ? -1 : run_lock_acquire(*lockpath, lock, errstr);
	free(dir);
	return rc;
}

/* ---- the daemon's backlog of rounds not recorded ---- */

struct backlog_round {
	char *name;                    /* configuration name at the time */
	double started, ended;
	size_t n;
	struct probe_result *results;  /* copies (no pointers inside) */
	char **seeds, **provs;         /* copies: a reload may change the configuration */
};

struct cycle_backlog {
	struct backlog_round r[CYCLE_BACKLOG_MAX];
	size_t n;
};

struct cycle_backlog *cycle_backlog_new(void)
{
	return xcalloc(1, sizeof(struct cycle_backlog));
}

size_t cycle_backlog_len(const struct cycle_backlog *b)
{
	return b != NULL ? b->n : 0;
}

static void backlog_round_free(struct backlog_round *r, int say)
{
	for (size_t i = 0; i < r->n; i++) {
		if (say && r->results[i].token[0] != '\0')
			log_error("  not recorded: %s probe %.8s… (%s)", r->seeds[i], r->results[i].token,
			          outcome_name(r->results[i].outcome));
		free(r->seeds[i]);
		free(r->provs[i]);
	}
	free(r->seeds);
	free(r->provs);
	free(r->results);
	free(r->name);
	memset(r, 0, sizeof *r);
}

void cycle_backlog_free(struct cycle_backlog *b)
{
	if (b == NULL)
		return;
	if (b->n > 0)
		log_error("state store: %zu round%s never recorded (the store failed until the end):",
		          b->n, b->n == 1 ? "" : "s");
	for (size_t i = 0; i < b->n; i++)
		backlog_round_free(&b->r[i], 1);
	free(b);
}

size_t cycle_backlog_probes(const struct cycle_backlog *b)
{
	size_t n = 0;

	for (size_t i = 0; b != NULL && i < b->n; i++)
		n += b->r[i].n;
	return n;
}

void cycle_backlog_push(struct cycle_backlog *b, const struct config *cfg,
                        const struct round_result *rr)
{
	struct backlog_round *r;

	while (b->n > 0 && (b->n == CYCLE_BACKLOG_MAX ||
	                    cycle_backlog_probes(b) + cfg->nseeds > CYCLE_BACKLOG_PROBES_MAX)) {
		log_error("state store: %zu rounds of %zu probes wait to be recorded (at most %d rounds, "
		          "%d probes in memory); the oldest is dropped:", b->n, cycle_backlog_probes(b),
		          CYCLE_BACKLOG_MAX, CYCLE_BACKLOG_PROBES_MAX);
		backlog_round_free(&b->r[0], 1);
		memmove(&b->r[0], &b->r[1], (b->n - 1) * sizeof b->r[0]);
		b->n--;
		memset(&b->r[b->n], 0, sizeof b->r[b->n]);
	}
	r = &b->r[b->n++];
	r->name = xstrdup(cfg->name);
	r->started = rr->started;
	r->ended = rr->ended;
	r->n = cfg->nseeds;
	r->results = xcalloc(cfg->nseeds + 1, sizeof *r->results);
	memcpy(r->results, rr->results, cfg->nseeds * sizeof *r->results);
	r->seeds = xcalloc(cfg->nseeds + 1, sizeof *r->seeds);
	r->provs = xcalloc(cfg->nseeds + 1, sizeof *r->provs);
	for (size_t i = 0; i < cfg->nseeds; i++) {
		r->seeds[i] = xstrdup(cfg->seeds[i].address);
		r->provs[i] = xstrdup(cfg->seeds[i].provider);
	}
	log_warn("state store: the round is kept in memory and recorded when the store works "
	         "again (%zu round%s waiting)", b->n, b->n == 1 ? "" : "s");
}

int cycle_backlog_record(struct cycle_backlog *b, struct state *st)
{
	char *err = NULL;

	if (b == NULL || b->n == 0)
		return 0;
	state_forget_ahead(st);   /* each gets a round row of its own */
	while (b->n > 0) {
		struct backlog_round *r = &b->r[0];

		if (state_record_round(st, r->name, r->started, r->ended, r->results,
		                       (const char *const *)r->seeds, (const char *const *)r->provs,
		                       r->n, &err) != 0) {
			log_warn("state store: %s; %zu round%s still wait to be recorded", err ? err : "failed",
			         b->n, b->n == 1 ? "" : "s");
			free(err);
			return 1;
		}
		{
			time_t t = (time_t)r->started;
			struct tm tm;
			char when[32] = "";

			if (gmtime_r(&t, &tm) != NULL)
				strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
			log_info("state store: recorded the round of %s that the store had missed "
			         "(%zu probes)", when, r->n);
		}
		backlog_round_free(r, 0);
		memmove(&b->r[0], &b->r[1], (b->n - 1) * sizeof b->r[0]);
		b->n--;
	}
	return 0;
}

/* Probes of earlier rounds still pending, per seed (within retention).
 * Returns 1 when the store could not be read for some seed, else 0. */
static int load_pending(const struct config *cfg, struct state *st, struct round_pending **out,
                        size_t *nout)
{
	double since = now_wall() - (double)cfg->state.retention_days * 86400.0;
	struct round_pending *pending = NULL;
	size_t npending = 0;
	char *err = NULL;
	int failed = 0;

	for (size_t i = 0; i < cfg->nseeds; i++) {
		struct state_pending *sp = NULL;
		size_t n = 0;

		if (state_pending(st, cfg->name, cfg->seeds[i].address, since, &sp, &n, &err) != 0) {
			log_warn("state store: %s", err);
			free(err);
			err = NULL;
			failed = 1;
			continue;
		}
		pending = xrealloc(pending, (npending + n) * sizeof *pending);
		for (size_t j = 0; j < n; j++) {
			pending[npending].seed_index = i;
			pending[npending++].p = sp[j];
		}
		free(sp);
	}
	*out = pending;
	*nout = npending;
	return failed;
}

/* Give the store's next write the time left until the monotonic limit
 * (at least a tenth of a second): a store held by another process is
 * retried within the run's deadline, never past it. */
static void patience_until(struct state *st, double limit)
{
	state_set_patience(st, limit - now_mono());
}

/* Probes a run that died (SIGKILL, OOM, power loss) wrote ahead but never
 * recorded: count them once as error; later rounds clean them up. When the
 * store cannot be written now, they stay for the next run. */
static void recover(const struct config *cfg, struct state *st)
{
	char *err = NULL;
	size_t n = 0;

	if (state_recover(st, cfg->name, &n, &err) != 0) {
		log_warn("state store: %s; probes written ahead by an earlier run that died are "
		         "recovered by the next run", err ? err : "failed");
		free(err);
		return;
	}
	if (n > 0)
		log_warn("state store: %zu probe%s written ahead by a run that ended before recording "
		         "its round: counted as error, looked for to be cleaned up", n, n == 1 ? "" : "s");
}

/* Make every seed's token (tokens[i], TOKEN_MAX each) and, with a store,
 * record them before anything is submitted (write-ahead). When the store
 * cannot be written (held by another process past the patience), the
 * probes go out all the same and the run says which were not written
 * ahead; the round's record (retried until the deadline) decides whether
 * the store failed. */
static void write_ahead(const struct config *cfg, struct state *st, char (*tokens)[TOKEN_MAX],
                        const char **toks, const char **seeds, const char **provs, double limit)
{
	char *err = NULL;

	for (size_t i = 0; i < cfg->nseeds; i++) {
		if (token_generate(cfg->probe.secret, cfg->probe.secret_len, cfg->seeds[i].address,
		                   tokens[i], &err) != 0) {
			log_warn("%s: token: %s", cfg->seeds[i].address, err ? err : "random source failed");
			free(err);
			err = NULL;
			tokens[i][0] = '\0';   /* the round tries again (and says why) */
		}
		toks[i] = tokens[i];
	}
	if (st == NULL)
		return;
	patience_until(st, limit);
	if (state_write_ahead(st, cfg->name, now_wall(), toks, seeds, provs, cfg->nseeds, &err) != 0) {
		log_warn("state store: %s; the probes go out without a write-ahead record (a crash "
		         "before the round is recorded would leave them in the seed mailboxes):",
		         err ? err : "failed");
		for (size_t i = 0; i < cfg->nseeds; i++)
			log_warn("  not written ahead: %s probe %.8s…", cfg->seeds[i].address, tokens[i]);
		free(err);
	}
	state_set_patience(st, 10);
}

/* The learned announcement delays of the configuration's IMAP servers
 * (SPEC "Latency"): each with its window of the last announced probes'
 * lags (scheduler/delaywin.h); a row from before schema 4 (no window) or
 * with an unreadable one starts the window with its delay. Returns a heap
 * array (*n long). */
struct round_delay *cycle_load_delays(struct state *st, const struct config *cfg, size_t *n)
{
	struct round_delay *d = NULL;
	char *err = NULL;

	*n = 0;
	for (size_t i = 0; st != NULL && i < cfg->nseeds; i++) {
		char key[ROUND_SERVER_MAX], recent[DELAY_WINDOW_TEXT_MAX];
		size_t k;
		double v;
		long samples;

		snprintf(key, sizeof key, "%s:%d", cfg->seeds[i].imap.host ? cfg->seeds[i].imap.host : "",
		         cfg->seeds[i].imap.port);
		for (k = 0; k < *n && strcmp(d[k].server, key) != 0; k++)
			;
		if (k < *n)
			continue;
		switch (state_announce_delay_get(st, key, &v, &samples, recent, sizeof recent, &err)) {
		case 0:
			d = xrealloc(d, (*n + 1) * sizeof *d);
			xstrlcpy(d[*n].server, key, sizeof d[*n].server);
			d[*n].delay = v;
			d[*n].samples = samples;
			if (delaywin_parse(&d[*n].win, recent) <= 0) {
				if (recent[0] != '\0')
					log_warn("state store: the recent announcement lags of %s are unreadable; "
					         "starting again from the learned %.3f s", key, v);
				delaywin_add(&d[*n].win, v);
			}
			(*n)++;
			break;
		case 1:
			break;
		default:
			log_warn("state store: %s", err);
			free(err);
			return d;
		}
	}
	return d;
}

/* Keep what this round learned; returns 1 on a store error. */
static int save_delays(struct state *st, const struct round_result *rr)
{
	char *err = NULL;

	for (size_t k = 0; k < rr->ndelays; k++) {
		char recent[DELAY_WINDOW_TEXT_MAX];

		if (!(rr->delays[k].delay >= 0))
			continue;   /* nothing learned (an empty window) */
		delaywin_format(&rr->delays[k].win, recent, sizeof recent);
		if (state_announce_delay_put(st, rr->delays[k].server, rr->delays[k].delay,
		                             rr->delays[k].samples, recent, now_wall(), &err) != 0) {
			log_warn("state store: %s", err);
			free(err);
			return 1;
		}
	}
	return 0;
}

/* Log a state store error and clear it; returns 1 (for state_failed). */
static int state_error(char **err)
{
	log_error("state store: %s", *err ? *err : "failed");
	free(*err);
	*err = NULL;
	return 1;
}

/* Say exactly which probes of the round are not in the store. */
static void say_not_recorded(const struct config *cfg, const struct round_result *rr)
{
	for (size_t i = 0; i < cfg->nseeds; i++)
		if (rr->results[i].token[0] != '\0')
			log_error("  not recorded: %s probe %.8s… (%s)", cfg->seeds[i].address,
			          rr->results[i].token, outcome_name(rr->results[i].outcome));
}

/* An interrupted round (SIGTERM, SIGINT) leaves the probes the relay
 * accepted and the watch had not found yet in the seed mailboxes: say how
 * many and who cleans them up (recorded: the state store keeps them
 * pending, and the next round looks for them). */
static void say_left_behind(const struct config *cfg, int recorded, const struct round_result *rr)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->nseeds; i++)
		if (rr->results[i].outcome == OUTCOME_ERROR && rr->results[i].submit_time > 0)
			n++;
	if (n == 0)
		return;
	if (recorded)
		log_warn("%zu probe%s accepted by the relay and not found yet stay%s pending in the "
		         "state store: the next round (the daemon's next start, or `inboxprobe run "
		         "-c FILE` once) finds and cleans %s up", n, n == 1 ? "" : "s",
		         n == 1 ? "s" : "", n == 1 ? "it" : "them");
	else
		log_warn("%zu probe%s accepted by the relay and not found yet %s not recorded in a "
		         "state store: %s in the seed mailboxes", n, n == 1 ? "" : "s",
		         n == 1 ? "is" : "are", n == 1 ? "it stays" : "they stay");
}

/* Record a pending probe found in this round (a late arrival, or one only
 * cleaned up) and whether its cleanup is still to do. 1 on failure. */
int cycle_record_late(const struct config *cfg, struct state *st, const struct round_late *l)
{
	char *err = NULL;
	int failed = 0;

	if (state_record_late(st, cfg->name, l->token, l->folder_kind, l->internaldate,
	                      l->latency, l->latency_usable, &err) != 0)
		failed = state_error(&err);
	if (state_set_cleanup(st, cfg->name, l->token, strncmp(l->cleanup, "failed", 6) == 0,
	                      &err) != 0)
		failed = state_error(&err);
	if (failed)
		log_error("  not recorded: found %s probe %.8s… in %s (%s)",
		          cfg->seeds[l->seed_index].address, l->token, l->folder, l->cleanup);
	return failed;
}

/* Record the round and its late arrivals, prune, read the totals back;
 * writes retry a store held by another process until limit (now_mono()).
 * Returns 1 when anything failed (state_failed), else 0. */
static int record(const struct config *cfg, struct state *st, struct cycle *c,
                  const char **seeds, const char **provs, double limit,
                  struct cycle_backlog *backlog)
{
	const struct round_result *rr = &c->rr;
	char *err = NULL;
	int failed = 0;

	patience_until(st, limit);
	if (state_record_round(st, cfg->name, rr->started, rr->ended, rr->results, seeds, provs,
	                       cfg->nseeds, &err) != 0) {
		failed = state_error(&err);
		if (backlog != NULL)
			cycle_backlog_push(backlog, cfg, rr);
		else
			say_not_recorded(cfg, rr);
	}
	if (save_delays(st, rr) != 0)
		failed = 1;
	for (size_t i = 0; i < rr->nlate; i++) {
		patience_until(st, limit);
		failed |= cycle_record_late(cfg, st, &rr->late[i]);
	}
	patience_until(st, limit);
	if (state_prune(st, cfg->state.retention_days, now_wall(), &err) != 0) {
		log_warn("state store: %s", err);
		free(err);
		err = NULL;
	}
	if (state_totals(st, cfg->name, (const char *const *)cfg->providers, cfg->nproviders,
	                 now_wall(), cfg->slo.window, &c->totals, &err) != 0) {
		failed = state_error(&err);
		c->totals = NULL;
	} else {
		c->ntotals = cfg->nproviders;
	}
	state_set_patience(st, 10);
	return failed;
}

/* Write every configured file; 1 when any failed. rep is not changed while
 * they are written, so no file depends on another's fate. */
int cycle_write_reports(const struct config *cfg, const struct round_report *rep)
{
	struct { const char *path; char *(*enc)(const struct round_report *); } outs[] = {
		{ cfg->report.textfile, report_prometheus_text },
		{ cfg->report.openmetrics, report_openmetrics },
		{ cfg->report.json, report_json },
		{ cfg->report.junit, report_junit },
	};
	char *err = NULL;
	int failed = 0;

	for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
		if (outs[i].path == NULL)
			continue;
		if (report_write(rep, outs[i].path, outs[i].enc, &err) != 0) {
			log_error("report: %s", err ? err : outs[i].path);
			free(err);
			err = NULL;
			failed = 1;
		}
	}
	return failed;
}

void cycle_run(const struct cycle_params *p, struct cycle *out)
{
	const struct config *cfg = p->cfg;
	struct round_pending *pending = NULL;
	size_t npending = 0;
	double start = now_mono();
	double ahead_limit = start + (p->deadline / 4.0 < 10.0 ? p->deadline / 4.0 : 10.0);
	double record_limit = start + (double)p->deadline;
	char (*tokens)[TOKEN_MAX] = xcalloc(cfg->nseeds + 1, sizeof *tokens);
	const char **toks = xcalloc(cfg->nseeds + 1, sizeof *toks);
	const char **seeds = xcalloc(cfg->nseeds + 1, sizeof *seeds);
	const char **provs = xcalloc(cfg->nseeds + 1, sizeof *provs);
	struct round_delay *delays = NULL;
	size_t ndelays = 0;

	memset(out, 0, sizeof *out);
	out->state_failed = p->state_failed;
	for (size_t i = 0; i < cfg->nseeds; i++) {
		seeds[i] = cfg->seeds[i].address;
		provs[i] = cfg->seeds[i].provider;
	}
	if (p->st != NULL) {
		patience_until(p->st, ahead_limit);
		if (cycle_backlog_record(p->backlog, p->st) != 0)
			out->state_failed = 1;
		recover(cfg, p->st);
		if (load_pending(cfg, p->st, &pending, &npending) != 0)
			out->state_failed = 1;
	}
	write_ahead(cfg, p->st, tokens, toks, seeds, provs, ahead_limit);
	{
		struct round_params rp = {
			.cfg = cfg, .deadline = p->deadline, .progress = p->progress,
			.pending = pending, .npending = npending, .tokens = toks,
			.pool = p->pool,
		};
		delays = cycle_load_delays(p->st, cfg, &ndelays);
		rp.delays = delays;
		rp.ndelays = ndelays;
		if (p->progress)
			log_info("round started: %zu seeds, deadline %lds", cfg->nseeds, rp.deadline);
		round_run(&rp, &out->rr);
	}
	free(pending);
	free(delays);
	if (out->rr.interrupted)
		log_warn("round interrupted by signal %d: recording what was measured; probes not "
		         "found yet are reported as error and cleaned up by later rounds", (int)round_stop);
	/* a store held by another process is retried within the deadline, and
	 * at least for the usual 10 s */
	if (record_limit < now_mono() + 10)
		record_limit = now_mono() + 10;
	{
		int rec_failed = p->st == NULL ||
		                 record(cfg, p->st, out, seeds, provs, record_limit, p->backlog) != 0;
		if (p->st != NULL && rec_failed)
			out->state_failed = 1;
		if (out->rr.interrupted)
			say_left_behind(cfg, !rec_failed, &out->rr);
	}
	free(tokens);
	free(toks);
	free(seeds);
	free(provs);

	{
		/* every status is known now: the report is computed once */
		struct report_status rs = {
			.state_failed = out->state_failed,
			.interrupted = out->rr.interrupted ? (int)round_stop : 0,
			.bounce_error = out->rr.bounce_error[0] ? out->rr.bounce_error : NULL,
		};
		out->rep = report_compute(cfg, out->rr.results, out->rr.started, out->rr.ended,
		                          out->totals, &rs);
	}
	if (out->state_failed) {
		/* Store faults leave the files of the last good round byte-identical
		 * (issue 12): without the store this round's counters, histogram and
		 * window cannot be written correctly, and a file without them would
		 * make Prometheus see series vanish. The files' age says it:
		 * last_run_timestamp_seconds goes stale (alert InboxprobeStale). */
		if (cfg->report.textfile || cfg->report.openmetrics || cfg->report.json ||
		    cfg->report.junit)
			log_error("state store failed: the report files were not rewritten; they stay "
			          "as the last good round wrote them (this round's results are in the "
			          "summary and the log only)");
	} else if (p->daemon_figures != NULL) {
		struct report_daemon figs;
		int failed;
		p->daemon_figures(p->daemon_arg, &figs);
		out->rep->daemon = &figs;
		failed = cycle_write_reports(cfg, out->rep);
		out->rep->daemon = NULL;   /* for the files only */
		out->rep->report_write_failed = failed;
	} else {
		out->rep->report_write_failed = cycle_write_reports(cfg, out->rep);
	}
}

int cycle_recompute(const struct config *cfg, struct state *st, const struct cycle *c,
                    struct state_totals **totals, size_t *ntotals, struct round_report **rep)
{
	struct report_status rs = {
		.state_failed = c->state_failed,
		.interrupted = c->rep ? c->rep->interrupted : 0,
		.bounce_error = c->rr.bounce_error[0] ? c->rr.bounce_error : NULL,
	};
	char *err = NULL;

	if (state_totals(st, cfg->name, (const char *const *)cfg->providers, cfg->nproviders,
	                 now_wall(), cfg->slo.window, totals, &err) != 0) {
		log_error("state store: %s", err ? err : "failed");
		free(err);
		return -1;
	}
	*ntotals = cfg->nproviders;
	*rep = report_compute(cfg, c->rr.results, c->rr.started, c->rr.ended, *totals, &rs);
	return 0;
}

void cycle_free(struct cycle *c)
{
	report_free(c->rep);
	if (c->totals != NULL)
		state_totals_free(c->totals, c->ntotals);
	round_result_free(&c->rr);
	memset(c, 0, sizeof *c);
}

void cycle_print_late(const struct config *cfg, const struct round_result *rr, FILE *out)
{
	for (size_t i = 0; i < rr->nlate; i++) {
		const struct round_late *l = &rr->late[i];
		char when[32];
		time_t t = (time_t)l->submit_time;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (!l->counted) {
			int gone = strcmp(l->cleanup, "deleted") == 0 || strcmp(l->cleanup, "trashed") == 0;
			fprintf(out, "%s: %s probe %.8s… sent %s (its round could not measure it) "
			        "found in %s%s%s%s\n", gone ? "cleaned up" : "found",
			        cfg->seeds[l->seed_index].address, l->token, when, l->folder,
			        gone ? "" : " (", gone ? "" : l->cleanup, gone ? "" : ")");
			continue;
		}
		fprintf(out, "late arrival: %s probe %.8s… sent %s found in %s after %.0f s%s\n",
		        cfg->seeds[l->seed_index].address, l->token, when, l->folder, l->latency,
		        l->latency_usable ? "" : " (clock skew: not used for percentiles)");
	}
}
