/* daemon.c - `inboxprobe daemon` (daemon.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#ifdef HAVE_MALLOC_H
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "common/util.h"
#include "prober/imap.h"
#include "prober/oauth2.h"
#include "prober/smtp.h"
#include "reports/http.h"
#include "reports/report.h"
#include "reports/webconfig.h"
#include "scheduler/cycle.h"
#include "scheduler/daemon.h"
#include "scheduler/fdbudget.h"
#include "scheduler/keeper.h"
#include "scheduler/pool.h"
#include "scheduler/round.h"
#include "scheduler/runlock.h"
#include "scheduler/state.h"
#include "seeds/config.h"

/* A loaded configuration, shared by the running one and the published
 * round (whose report borrows it). Reference counts change on the main
 * thread only. */
struct dconf {
	struct config *cfg;
	int refs;
};

/* The last reported round, read by the HTTP thread under daemon.mu. */
struct published {
	struct dconf *dc;
	struct cycle cy;
};

struct daemon {
	const char *path;
	struct dconf *cur;
	char *lockpath;
	struct run_lock *lock;
	struct state *st;
	struct http_server *http;
	struct web_config *wc;        /* web.config_file as read at start, or NULL */
	struct session_pool *pool;    /* seeds' IMAP sessions kept logged in between rounds */
	struct cycle_backlog *backlog; /* rounds the state store missed, recorded later */
	struct keeper *keeper;        /* holds them in IDLE between rounds (keeper.h) */
	struct round_pending *kpend;  /* pending probes the keeper looks for (borrowed by it) */
	size_t nkpend;

	pthread_mutex_t mu;           /* guards pub, name, rounds, skipped */
	struct published *pub;
	char *name;
	unsigned long long rounds, skipped;
	atomic_int ready;             /* 1 once a round has been reported */

	double base;                  /* now_mono() of slot 0 */
	long long slot;               /* the next slot's index */
	double next_start;            /* now_mono() when the next round starts */

	/* watchdog thread (WATCHDOG_USEC) */
	uint64_t wd_usec;
	pthread_t wd;
	int wd_started;
	atomic_int wd_quit;
	_Atomic double heartbeat;     /* now_mono() of the main loop's last turn */
	_Atomic double round_limit;   /* > 0 while a round runs: when it must be over */
};

static atomic_int daemon_stop;
static volatile sig_atomic_t got_hup;
static int wake_pipe[2] = { -1, -1 };

/* ---- signals ------------------------------------------------------------ */

static void on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGHUP) {
		got_hup = 1;
	} else if (daemon_stop) {
		signal(sig, SIG_DFL);   /* a second SIGTERM / SIGINT ends it at once */
		raise(sig);
	} else {
		daemon_stop = sig;
		round_stop = sig;
	}
	if (wake_pipe[1] >= 0)
		(void)!write(wake_pipe[1], "", 1);
	errno = saved;
}

static int install_signals(char **errstr)
{
	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		*errstr = xasprintf("pipe: %s", strerror(errno));
		return -1;
	}
	on_stop_signals(on_signal);
	return 0;
}

/* Sleep up to secs (fractional) or until a signal arrives. */
static void wait_for(double secs)
{
	struct pollfd pfd = { .fd = wake_pipe[0], .events = POLLIN };
	char buf[64];

	if (secs > 0 && poll(&pfd, 1, (int)ceil(secs * 1000.0)) > 0)
		while (read(wake_pipe[0], buf, sizeof buf) > 0)
			;
}

/* ---- configurations and the published round ----------------------------- */

static struct dconf *dconf_new(struct config *cfg)
{
	struct dconf *dc = xcalloc(1, sizeof *dc);

	dc->cfg = cfg;
	dc->refs = 1;
	return dc;
}

static void dconf_unref(struct dconf *dc)
{
	if (dc != NULL && --dc->refs == 0) {
		config_free(dc->cfg);
		free(dc);
	}
}

static void published_free(struct published *p)
{
	if (p == NULL)
		return;
	cycle_free(&p->cy);
	dconf_unref(p->dc);
	free(p);
}

/* The daemon's figures; call with d->mu held. */
static void figures(struct daemon *d, struct report_daemon *f)
{
	struct imap_counters ic;

	imap_counters(&ic);
	memset(f, 0, sizeof *f);
	f->rounds = d->rounds;
	f->rounds_skipped = d->skipped;
	f->imap_logins = ic.logins;
	f->sessions_connecting = ic.connecting;
	f->sessions_up = ic.up;
}

/* The figures for the files written at the end of a round: that round
 * counts as reported. */
static void file_figures(void *arg, struct report_daemon *f)
{
	struct daemon *d = arg;

	pthread_mutex_lock(&d->mu);
	figures(d, f);
	pthread_mutex_unlock(&d->mu);
	f->rounds++;
}

static char *metrics_cb(void *arg, int openmetrics)
{
	struct daemon *d = arg;
	struct report_daemon f;
	char *body;

	pthread_mutex_lock(&d->mu);
	figures(d, &f);
	body = report_metrics(d->pub ? d->pub->cy.rep : NULL, &f, d->name, openmetrics);
	pthread_mutex_unlock(&d->mu);
	return body;
}

static int ready_cb(void *arg)
{
	struct daemon *d = arg;

	return atomic_load(&d->ready);
}

/* ---- schedule ------------------------------------------------------------ */

static double jitter_for(const struct config *cfg)
{
	if (cfg->schedule.jitter <= 0)
		return 0;
	return drand48() * (double)cfg->schedule.jitter;
}

/* Pick the next slot after the round that just ended (slot d->slot - 1):
 * every slot whose start has passed meanwhile is skipped and counted. */
static void schedule_next(struct daemon *d)
{
	const struct config *cfg = d->cur->cfg;
	double now = now_mono();
	unsigned long long skipped = 0;

	for (;;) {
		double start = d->base + (double)d->slot * (double)cfg->schedule.interval +
		               jitter_for(cfg);
		if (start >= now) {
			d->next_start = start;
			d->slot++;
			break;
		}
		d->slot++;
		skipped++;
	}
	if (skipped > 0) {
		log_warn("%llu scheduled round%s skipped: the previous round was still running "
		         "(schedule.interval %lds)", skipped, skipped == 1 ? "" : "s",
		         cfg->schedule.interval);
		pthread_mutex_lock(&d->mu);
		d->skipped += skipped;
		pthread_mutex_unlock(&d->mu);
	}
}

/* Restart the slots from now (start and reload of the schedule). */
static void schedule_restart(struct daemon *d, double first_delay)
{
	d->base = now_mono() + first_delay;
	d->slot = 0;
	d->next_start = d->base + jitter_for(d->cur->cfg);
	d->slot = 1;
}

/* ---- watchdog ------------------------------------------------------------ */

static int alive(struct daemon *d)
{
	double now = now_mono();
	double limit = atomic_load(&d->round_limit);

	if (limit > 0)
		return now < limit;
	return now - atomic_load(&d->heartbeat) < 10.0;
}

static void *watchdog_main(void *arg)
{
	struct daemon *d = arg;
	double period = (double)d->wd_usec / 2e6;

	while (!atomic_load(&d->wd_quit)) {
		double until = now_mono() + period;
		while (!atomic_load(&d->wd_quit) && now_mono() < until)
			sleep_seconds(0.1 < period ? 0.1 : period);
		if (!atomic_load(&d->wd_quit) && alive(d))
			sd_notify(0, "WATCHDOG=1");
	}
	return NULL;
}

static void watchdog_start(struct daemon *d)
{
	if (sd_watchdog_enabled(0, &d->wd_usec) <= 0 || d->wd_usec == 0)
		return;
	atomic_store(&d->heartbeat, now_mono());
	if (pthread_create(&d->wd, NULL, watchdog_main, d) == 0)
		d->wd_started = 1;
	else
		log_warn("cannot start the watchdog thread: systemd's WatchdogSec will stop the daemon");
}

static void watchdog_stop(struct daemon *d)
{
	if (!d->wd_started)
		return;
	atomic_store(&d->wd_quit, 1);
	pthread_join(d->wd, NULL);
	d->wd_started = 0;
}

/* ---- rounds -------------------------------------------------------------- */

/* One line per round: outcome counts and the verdict, logged and sent to
 * systemd as STATUS=. */
static void round_status(struct daemon *d, const struct cycle *cy, unsigned long long n)
{
	const struct round_report *rep = cy->rep;
	const struct config *cfg = rep->cfg;
	size_t count[OUTCOME__COUNT] = { 0 };
	struct strbuf sb = STRBUF_INIT;
	int code = report_process_code(rep, 0);   /* the files are written */

	for (size_t i = 0; i < cfg->nseeds; i++)
		count[cy->rr.results[i].outcome]++;
	strbuf_addf(&sb, "round %llu: %s; %zu seeds:", n,
	            code == EXIT_GATES_OK ? "every gate holds" :
	            code == EXIT_GATE_FAILED ? "a gate failed" : "result unknown", cfg->nseeds);
	for (int o = 0; o < OUTCOME__COUNT; o++)
		if (count[o] > 0)
			strbuf_addf(&sb, " %s %zu", outcome_name((enum outcome)o), count[o]);
	strbuf_addf(&sb, "; %.1f s", cy->rr.ended - cy->rr.started);
	log_info("%s", sb.buf);
	sd_notifyf(0, "STATUS=%s", sb.buf);
	strbuf_free(&sb);
	(void)d;
}

/* After a round: say how the heap stands (-v), then hand the pages malloc
 * keeps free back to the kernel. Each round's worker threads allocate in
 * glibc's per-thread arenas; what they free stays mapped there unless
 * trimmed, and the resident set then creeps up round after round. */
static void heap_after_round(unsigned long long n)
{
#ifdef HAVE_MALLINFO2
	struct mallinfo2 mi = mallinfo2();

	log_debug("heap after round %llu: %zu KiB in use, %zu KiB free, %zu KiB in mmapped "
	          "chunks", n, mi.uordblks / 1024, mi.fordblks / 1024, mi.hblkhd / 1024);
#else
	(void)n;
#endif
#ifdef HAVE_MALLOC_TRIM
	malloc_trim(0);
#endif
}

/*
 * Run one round through the path `run` uses, then publish it for /metrics.
 * Seeds' sessions come from and go back to d->pool (kept logged in).
 */
static void daemon_round(struct daemon *d)
{
	const struct config *cfg = d->cur->cfg;
	struct published *p = xcalloc(1, sizeof *p), *old;
	unsigned long long n;
	double grace = 60.0 + 2.0 * (double)(cfg->limits.connect_timeout + cfg->limits.timeout +
	                                     cfg->relay.timeout);
	struct cycle_params cp = {
		.cfg = cfg, .st = d->st, .deadline = cfg->probe.deadline,
		.progress = log_verbose > 0, .daemon_figures = file_figures, .daemon_arg = d,
		.pool = d->pool, .backlog = d->backlog,
	};

	p->dc = d->cur;
	d->cur->refs++;
	log_info("round %llu started: %zu seeds, %zu IMAP sessions kept", d->rounds + 1, cfg->nseeds,
	         pool_size(d->pool));
	atomic_store(&d->round_limit, now_mono() + (double)cfg->probe.deadline + grace);
	cycle_run(&cp, &p->cy);
	atomic_store(&d->round_limit, 0.0);
	cycle_print_late(cfg, &p->cy.rr, stderr);

	pthread_mutex_lock(&d->mu);
	old = d->pub;
	n = ++d->rounds;
	if (p->cy.state_failed && old != NULL) {
		/* as with the files (cycle.h): /metrics keeps the last good round */
		pthread_mutex_unlock(&d->mu);
		round_status(d, &p->cy, n);
		published_free(p);
		heap_after_round(n);
		return;
	}
	d->pub = p;
	pthread_mutex_unlock(&d->mu);
	atomic_store(&d->ready, 1);
	published_free(old);
	round_status(d, &p->cy, n);
	heap_after_round(n);
}

/* ---- between rounds ------------------------------------------------------ */

/* The gap to the next round beyond which the kept SMTP connections are
 * closed: SMTP_MAXAGE_CONN, or INBOXPROBE_TEST_SMTP_MAXAGE (tests only). */
static double smtp_maxage(void)
{
	static double v = -1;
	const char *e;
	char *end = NULL;

	if (v >= 0)
		return v;
	v = (double)SMTP_MAXAGE_CONN;
	e = getenv("INBOXPROBE_TEST_SMTP_MAXAGE");
	if (e != NULL && *e != '\0') {
		double t = strtod(e, &end);
		if (end == e || *end != '\0' || !(t >= 0) || t > (double)SMTP_MAXAGE_CONN)
			log_warn("INBOXPROBE_TEST_SMTP_MAXAGE=%s is not a number of seconds in 0..%ld: "
			         "ignored", e, SMTP_MAXAGE_CONN);
		else {
			log_warn("INBOXPROBE_TEST_SMTP_MAXAGE: SMTP connections closed after a round "
			         "when the next starts %.1f s or more later (a test setting)", t);
			v = t;
		}
	}
	return v;
}

/* libcurl would not reuse a connection idle for longer than
 * CURLOPT_MAXAGE_CONN: when the next round starts later than that, close
 * the kept ones now (QUIT) rather than leave them idle at the relay. */
static void smtp_idle_check(struct daemon *d)
{
	double gap = d->next_start - now_mono();
	size_t n;

	if (gap < smtp_maxage())
		return;
	n = smtp_close_idle();
	if (n > 0)
		log_debug("%zu SMTP connection%s closed: the next round starts in %.0f s, beyond "
		          "CURLOPT_MAXAGE_CONN (%.0f s)", n, n == 1 ? "" : "s", gap, smtp_maxage());
}

/* Probes of earlier rounds still pending (the state store), newest first,
 * at most ROUND_PENDING_PER_SEED per seed. */
static void load_pending(struct daemon *d)
{
	const struct config *cfg = d->cur->cfg;
	double since = now_wall() - (double)cfg->state.retention_days * 86400.0;
	char *err = NULL;

	d->nkpend = 0;
	for (size_t i = 0; i < cfg->nseeds; i++) {
		struct state_pending *sp = NULL;
		size_t n = 0;

		if (state_pending(d->st, cfg->name, cfg->seeds[i].address, since, &sp, &n, &err) != 0) {
			log_warn("state store: %s; %s's pending probes are looked for at the next round",
			         err, cfg->seeds[i].address);
			free(err);
			err = NULL;
			continue;
		}
		if (n > ROUND_PENDING_PER_SEED)
			n = ROUND_PENDING_PER_SEED;
		d->kpend = xrealloc(d->kpend, (d->nkpend + n + 1) * sizeof *d->kpend);
		for (size_t j = 0; j < n; j++) {
			d->kpend[d->nkpend].seed_index = i;
			d->kpend[d->nkpend++].p = sp[j];
		}
		free(sp);
	}
}

/* Publish the last round's report again over the store's new totals
 * (late arrivals recorded between rounds); the files are written anew
 * first, so the report is complete before the HTTP thread can see it. */
static void republish(struct daemon *d)
{
	struct published *p = d->pub;
	struct state_totals *t = NULL, *ot;
	struct round_report *rep = NULL, *orep;
	size_t nt = 0, ont;
	struct report_daemon f;

	if (p == NULL || cycle_recompute(p->dc->cfg, d->st, &p->cy, &t, &nt, &rep) != 0)
		return;
	pthread_mutex_lock(&d->mu);
	figures(d, &f);
	pthread_mutex_unlock(&d->mu);
	rep->daemon = &f;   /* for the files only */
	rep->report_write_failed = cycle_write_reports(p->dc->cfg, rep);
	rep->daemon = NULL;
	pthread_mutex_lock(&d->mu);
	ot = p->cy.totals;
	ont = p->cy.ntotals;
	orep = p->cy.rep;
	p->cy.totals = t;
	p->cy.ntotals = nt;
	p->cy.rep = rep;
	pthread_mutex_unlock(&d->mu);
	report_free(orep);
	if (ot != NULL)
		state_totals_free(ot, ont);
}

/* Record what the keeper found between rounds, at once. */
static void record_found(struct daemon *d)
{
	const struct config *cfg = d->cur->cfg;
	struct round_late *l = NULL;
	size_t n = keeper_drain(d->keeper, &l);
	struct round_result rr;

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++)
		cycle_record_late(cfg, d->st, &l[i]);
	memset(&rr, 0, sizeof rr);
	rr.late = l;
	rr.nlate = n;
	cycle_print_late(cfg, &rr, stderr);
	free(l);
	republish(d);
}

/* Sessions back from IDLE into the pool, before a round or a reload. */
static void keeper_pause(struct daemon *d)
{
	keeper_stop(d->keeper);
	record_found(d);
	free(d->kpend);
	d->kpend = NULL;
	d->nkpend = 0;
}

/* Kept sessions into IDLE, watching for the pending probes. */
static void keeper_resume(struct daemon *d)
{
	struct round_delay *delays;
	size_t ndelays = 0;
	char *err = NULL;

	if (keeper_running(d->keeper))
		return;
	load_pending(d);
	delays = cycle_load_delays(d->st, d->cur->cfg, &ndelays);   /* the keeper copies them */
	if (keeper_start(d->keeper, d->cur->cfg, d->kpend, d->nkpend, delays, ndelays, d->next_start,
	                 &err) != 0) {
		log_warn("%s; kept sessions wait out of IDLE until the next round", err);
		free(err);
	}
	free(delays);
}

/* ---- start, reload, stop ------------------------------------------------- */

static int load(const char *path, struct config **out)
{
	char *err = NULL, *warn;

	if (config_load(path, out, &err) != 0) {
		fprintf(stderr, "%s%s", err ? err : "configuration error",
		        err && *err && err[strlen(err) - 1] == '\n' ? "" : "\n");
		free(err);
		return -1;
	}
	if ((*out)->state.path == NULL) {
		fprintf(stderr, "%s: the daemon requires a state store: set state = { path = \"...\"; }\n",
		        path);
		config_free(*out);
		*out = NULL;
		return -1;
	}
	if ((warn = config_schedule_warning(*out)) != NULL) {
		log_warn("%s", warn);
		free(warn);
	}
	return 0;
}

/* Take the run lock and open the store of cfg. 0, or an exit code. */
static int take_store(const struct config *cfg, char **lockpath, struct run_lock **lock,
                      struct state **st)
{
	char *err = NULL;
	int rc;

	rc = cycle_lock_take(cfg, lockpath, lock, &err);
	if (rc != 0) {
		log_error("%s%s", err ? err : "run lock failed",
		          rc == 1 ? "; not starting (a run or daemon of this configuration is active)" : "");
		goto fail;
	}
	if (state_open(cfg->state.path, st, &err) != 0) {
		log_error("state store: %s", err);
		run_lock_release(*lock);
		*lock = NULL;
		goto fail;
	}
	return 0;
fail:
	free(err);
	free(*lockpath);
	*lockpath = NULL;
	return EXIT_UNKNOWN;
}

/* SIGHUP: load the file again; a broken one is refused and the running
 * configuration kept. A new name or store path moves the lock and store. */
static void reload(struct daemon *d)
{
	struct config *n = NULL, *o = d->cur->cfg;
	char *lockpath = NULL;
	struct run_lock *lock = NULL;
	struct state *st = NULL;

	log_info("SIGHUP: reloading %s", d->path);
	if (load(d->path, &n) != 0) {
		log_error("reload of %s refused (errors above); keeping the running configuration",
		          d->path);
		sd_notifyf(0, "STATUS=reload of %s refused; running the previous configuration", d->path);
		return;
	}
	if ((n->web.config_file == NULL) != (o->web.config_file == NULL) ||
	    (n->web.config_file && strcmp(n->web.config_file, o->web.config_file) != 0))
		log_warn("web.config_file changed: it takes effect at restart");
	if (strcmp(n->web.listen_address, o->web.listen_address) != 0)
		log_warn("web.listen_address changed to %s: it takes effect at restart; still "
		         "listening on %s", n->web.listen_address, o->web.listen_address);
	{
		char *np = cycle_lock_path(n);
		int same = strcmp(np, d->lockpath) == 0 && strcmp(n->state.path, o->state.path) == 0;
		free(np);
		if (!same) {
			if (take_store(n, &lockpath, &lock, &st) != 0) {
				log_error("reload of %s refused: cannot move to its run lock and state "
				          "store; keeping the running configuration", d->path);
				config_free(n);
				return;
			}
			state_close(d->st);
			run_lock_release(d->lock);
			free(d->lockpath);
			d->st = st;
			d->lock = lock;
			d->lockpath = lockpath;
		}
	}
	pthread_mutex_lock(&d->mu);
	free(d->name);
	d->name = xstrdup(n->name);
	pthread_mutex_unlock(&d->mu);
	{
		int resched = n->schedule.interval != o->schedule.interval ||
		              n->schedule.jitter != o->schedule.jitter;
		dconf_unref(d->cur);   /* o stays alive while the published round borrows it */
		d->cur = dconf_new(n);
		if (resched)
			schedule_restart(d, 0.0);
	}
	/* OAuth 2.0 blocks may have changed: drop the tokens held in memory
	 * (the cache files beside the store still spare a new grant). */
	oauth2_forget();
	oauth2_set_cache_dir(n->state.path);
	pool_keep_only(d->pool, n);   /* sessions of unchanged seeds survive the reload */
	log_info("configuration reloaded from %s: %zu seeds, next round in %.0f s", d->path,
	         n->nseeds, d->next_start - now_mono() > 0 ? d->next_start - now_mono() : 0);
	sd_notifyf(0, "STATUS=configuration reloaded: %zu seeds", n->nseeds);
}

static void daemon_loop(struct daemon *d)
{
	while (!atomic_load(&daemon_stop)) {
		double now = now_mono();

		atomic_store(&d->heartbeat, now);
		if (got_hup) {
			got_hup = 0;
			keeper_pause(d);
			reload(d);
			continue;
		}
		if (now >= d->next_start) {
			keeper_pause(d);
			daemon_round(d);
			schedule_next(d);
			smtp_idle_check(d);
			continue;
		}
		if (atomic_load(&d->ready))
			keeper_resume(d);   /* after the first round: sessions into IDLE */
		wait_for(d->next_start - now < 1.0 ? d->next_start - now : 1.0);
		record_found(d);
	}
	keeper_pause(d);
}

static int start(struct daemon *d, struct config *cfg)
{
	char *err = NULL;
	int rc;

	d->cur = dconf_new(cfg);
	d->name = xstrdup(cfg->name);
	d->pool = pool_new();
	d->backlog = cycle_backlog_new();
	oauth2_set_cache_dir(cfg->state.path);   /* access tokens live beside the state store */
	rc = take_store(cfg, &d->lockpath, &d->lock, &d->st);
	if (rc != 0)
		return rc;
	if (install_signals(&err) != 0 || smtp_global_init() != 0) {
		log_error("%s", err ? err : "cannot initialise libcurl");
		free(err);
		return EXIT_UNKNOWN;
	}
	smtp_set_abort_flag(&round_stop);
	imap_set_abort_flag(&round_stop);
	d->keeper = keeper_new(d->pool, wake_pipe[1]);
	if (cfg->web.config_file != NULL && web_config_load(cfg->web.config_file, &d->wc, &err) != 0) {
		fprintf(stderr, "%s", err);
		free(err);
		return EXIT_USAGE;
	}
	if (http_start(cfg->web.host, cfg->web.port, d->wc, metrics_cb, ready_cb, d, &d->http,
	               &err) != 0) {
		log_error("%s", err);
		free(err);
		return EXIT_UNKNOWN;
	}
	srand48((long)(now_wall() * 1000.0) ^ (long)getpid());
	schedule_restart(d, 0.0);
	log_info("daemon %s: %zu seeds, a round every %lds (jitter %lds), serving /metrics on %s "
	         "(%s, %s)", cfg->name, cfg->nseeds, cfg->schedule.interval, cfg->schedule.jitter,
	         cfg->web.listen_address, d->wc && d->wc->cert_pem ? "HTTPS" : "plain HTTP",
	         d->wc && d->wc->nusers ? "basic auth" : "no auth");
	sd_notifyf(0, "READY=1\nSTATUS=serving on %s; first round in %.0f s",
	           cfg->web.listen_address, d->next_start - now_mono());
	watchdog_start(d);
	return 0;
}

int daemon_main(const char *path)
{
	struct daemon d;
	struct config *cfg = NULL;
	struct fd_budget fdb;
	char *err = NULL;
	int rc;

	memset(&d, 0, sizeof d);
	d.path = path;
	pthread_mutex_init(&d.mu, NULL);
	/* Each round runs its seeds on many threads; two arenas hold the daemon's
	 * RSS about 10 MB lower at 100 seeds (bench/README.md "soak.sh"). */
	malloc_few_arenas();
	if (load(path, &cfg) != 0)
		return EXIT_USAGE;
	if (fd_budget_ensure(cfg, 1, &fdb, &err) != 0) {
		log_error("%s; the daemon does not start", err);
		free(err);
		config_free(cfg);
		return EXIT_UNKNOWN;
	}
	rc = start(&d, cfg);
	if (rc == 0) {
		daemon_loop(&d);
		log_info("stopping on signal %d", (int)daemon_stop);
		sd_notify(0, "STOPPING=1");
	}
	watchdog_stop(&d);
	keeper_free(d.keeper);
	free(d.kpend);
	pool_free(d.pool);   /* LOGOUT of the kept sessions */
	if (d.st != NULL && cycle_backlog_len(d.backlog) > 0 && cycle_backlog_record(d.backlog, d.st) == 0)
		log_info("state store: every round the store had missed is recorded");
	cycle_backlog_free(d.backlog);
	http_stop(d.http);
	web_config_free(d.wc);
	smtp_global_cleanup();
	published_free(d.pub);
	dconf_unref(d.cur);
	state_close(d.st);
	run_lock_release(d.lock);
	free(d.lockpath);
	free(d.name);
	pthread_mutex_destroy(&d.mu);
	return rc;
}
