/* keeper.c - kept IMAP sessions in IDLE between the daemon's rounds (keeper.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"
#include "prober/imap.h"
#include "prober/message.h"
#include "prober/oauth2.h"
#include "scheduler/driver.h"
#include "scheduler/keeper.h"
#include "scheduler/keeper_int.h"
#include "scheduler/pool.h"
#include "seeds/folders.h"

#define KEEP_RENEW_SECONDS 1500.0   /* RFC 2177: IDLE again at least every 29 minutes */
#define KEEP_SAFETY_TICK 30.0       /* seconds between searches of a session with pending probes */
#define KEEP_BACKOFF_MAX 300.0      /* seconds: the longest wait between reconnects */
#define KEEP_OAUTH_TICK 30.0        /* seconds between checks of the kept accounts' tokens */
#define KEEP_FAR 1e7                /* seconds: a kept session's deadline (commands keep theirs) */
#define KEEP_MAX_WAIT 5.0           /* seconds: the thread looks around at least this often */
#define KEEP_STABLE_SECONDS 60.0    /* a reconnected session lost sooner did not recover: the
                                       backoff goes on from where it was instead of 1 s */
#define KEEP_RELOGIN_STABLE 2.0     /* seconds: a new login asked for (BYE AccessTokenExpired)
                                       sooner than this after the last is no token expiry */

/* An account's key, copied: it survives a reload that frees the
 * configuration (same fields as the pool's). */
struct acct {
	char *host, *user;
	int port, implicit_tls, tls;
};

struct ksess {
	struct acct key;
	const struct imap_conf *ic;   /* the configuration's block; NULL while stopped */
	int bounce;                   /* the bounce mailbox's session (no probes searched) */
	char *folder;                 /* wire name watched */
	char *notify_folder;          /* NOTIFY (RFC 5465) also watches this one (the spam
	                                 folder beside INBOX); NULL none */
	int alone;                    /* the account's only session watches INBOX: the spam
	                                 folder is searched on each check (pending probes) */
	char *spam;                   /* alone: the spam folder's wire name, NULL unresolved */
	unsigned long spam_uidnext;   /* alone or NOTIFY: searches of the other folder
	                                 (other_folder()) look from here */
	unsigned long spam_uidvalidity;   /* the UIDVALIDITY spam_uidnext belongs to; 0 unknown */
	struct imap_session *s;       /* NULL while down */
	unsigned long uidnext;        /* searches look at UIDs from here (0: all) */
	unsigned long uidvalidity;    /* the UIDVALIDITY uidnext belongs to; 0 unknown */
	double idle_since;            /* now_mono() when IDLE (or the keep-alive) last began */
	double next_check;            /* now_mono() of the next search (pending probes) */
	double next_try;              /* down: now_mono() of the next attempt */
	int attempts;                 /* down: failed attempts in a row */
	int relogin;                  /* down: the server asked for a new login */
	double up_since;              /* now_mono() a reconnect re-established it; 0: the round's */
	int flaps;                    /* reconnected sessions lost again soon after, in a row */
	struct ksess *next;
};

struct keeper {
	struct session_pool *pool;
	const struct imap_driver *drv;   /* the pool's (borrowed) */
	double (*clock)(void);        /* now_mono(), or a test's clock (keeper_int.h) */
	int wake_fd;
	int qpipe[2];
	pthread_t th;
	int running;
	atomic_int quit;
	const struct config *cfg;
	const struct round_pending *pending;
	size_t npending;
	unsigned char *done;          /* per pending probe: found (or cleaned up) */
	struct round_delay *delays;   /* learned announcement delays (a copy) */
	size_t ndelays;
	char *probe_from;
	double renew;
	struct ksess *list;           /* sessions, up or down */
	unsigned short rnd[3];
	double next_oauth;
	double until;                 /* now_mono() by which a reconnect must be over */
	pthread_mutex_t mu;           /* guards found, nfound, counts */
	struct round_late *found;
	size_t nfound;
	struct keeper_counts counts;
};

static const char *const kinds[2] = { "inbox", "spam" };

/* ---- accounts ------------------------------------------------------------ */

static void acct_set(struct acct *a, const struct imap_conf *ic)
{
	a->host = xstrdup(ic->host ? ic->host : "");
	a->user = xstrdup(ic->username ? ic->username : "");
	a->port = ic->port;
	a->implicit_tls = ic->implicit_tls;
	a->tls = (int)ic->tls;
}

static int acct_is(const struct acct *a, const struct imap_conf *ic)
{
	return a->port == ic->port && a->implicit_tls == ic->implicit_tls && a->tls == (int)ic->tls &&
	       strcasecmp(a->host, ic->host ? ic->host : "") == 0 &&
	       strcmp(a->user, ic->username ? ic->username : "") == 0;
}

static void ksess_free(const struct keeper *k, struct ksess *ks)
{
	if (ks->s != NULL)
		k->drv->close_now(ks->s);
	free(ks->key.host);
	free(ks->key.user);
	free(ks->folder);
	free(ks->notify_folder);
	free(ks->spam);
	free(ks);
}

static int is_inbox(const char *folder)
{
	return strcasecmp(folder, "INBOX") == 0;
}

/* The configuration's block of a's account, or NULL; *bounce set when it
 * is the bounce mailbox's (and no seed's). */
static const struct imap_conf *find_conf(const struct config *cfg, const struct acct *a, int *bounce)
{
	*bounce = 0;
	for (size_t i = 0; i < cfg->nseeds; i++)
		if (acct_is(a, &cfg->seeds[i].imap))
			return &cfg->seeds[i].imap;
	if (cfg->has_bounce && acct_is(a, &cfg->bounce)) {
		*bounce = 1;
		return &cfg->bounce;
	}
	return NULL;
}

/* 1 when pending probe i belongs to a seed of ks's account and is not found yet. */
static int pending_here(const struct keeper *k, const struct ksess *ks, size_t i)
{
	return !ks->bounce && !k->done[i] &&
	       acct_is(&ks->key, &k->cfg->seeds[k->pending[i].seed_index].imap);
}

static int has_pending(const struct keeper *k, const struct ksess *ks)
{
	for (size_t i = 0; i < k->npending; i++)
		if (pending_here(k, ks, i))
			return 1;
	return 0;
}

/* The first seed of ks's account (0 for the bounce mailbox). */
static size_t first_seed(const struct keeper *k, const struct ksess *ks)
{
	for (size_t i = 0; !ks->bounce && i < k->cfg->nseeds; i++)
		if (acct_is(&ks->key, &k->cfg->seeds[i].imap))
			return i;
	return 0;
}

static const char *who(const struct ksess *ks)
{
	return ks->key.user;
}

/* ---- timing ---------------------------------------------------------------- */

/* The wait before reconnect attempt n (0: the first after a drop): 1 s
 * doubling up to KEEP_BACKOFF_MAX, stretched by a random 0..25 %. */
static double backoff(struct keeper *k, int n)
{
	double base = ldexp(1.0, n > 16 ? 16 : n);
	double d = base * (1.0 + 0.25 * erand48(k->rnd));

	return d > KEEP_BACKOFF_MAX ? KEEP_BACKOFF_MAX : d;
}

static double renew_period(void)
{
	const char *e = getenv("INBOXPROBE_TEST_IDLE_RENEW");   /* tests only */
	char *end = NULL;
	double v;

	if (e == NULL || *e == '\0')
		return KEEP_RENEW_SECONDS;
	v = strtod(e, &end);
	if (end == e || *end != '\0' || !(v >= 0.5) || v > KEEP_RENEW_SECONDS) {
		log_warn("INBOXPROBE_TEST_IDLE_RENEW=%s is not a number of seconds in 0.5..%.0f: "
		         "ignored", e, KEEP_RENEW_SECONDS);
		return KEEP_RENEW_SECONDS;
	}
	log_warn("INBOXPROBE_TEST_IDLE_RENEW: IDLE renewed every %.1f s (a test setting)", v);
	return v;
}

static double check_period(const struct keeper *k)
{
	double poll = (double)k->cfg->probe.poll_interval;

	return poll > KEEP_SAFETY_TICK ? poll : KEEP_SAFETY_TICK;
}

/* ---- found probes ---------------------------------------------------------- */

static void note_found(struct keeper *k, const struct round_late *l)
{
	pthread_mutex_lock(&k->mu);
	k->found = xrealloc(k->found, (k->nfound + 1) * sizeof *k->found);
	k->found[k->nfound++] = *l;
	k->counts.found++;
	pthread_mutex_unlock(&k->mu);
	if (k->wake_fd >= 0)
		(void)!write(k->wake_fd, "", 1);
}

/* Remove the proved probe (SPEC "Cleanup"): the trash folder is resolved
 * when the mode (or Gmail's delete) needs it. */
static void cleanup(struct keeper *k, struct ksess *ks, const char *folder, const struct imap_hit *h,
                    const char *token, char *what, size_t whatsz)
{
	enum cleanup_mode mode = k->cfg->probe.cleanup;
	struct imap_folder *folders = NULL;
	size_t nfolders = 0;
	char *trash = NULL, *err = NULL;
	long ti;

	if (mode == CLEANUP_KEEP) {
		xstrlcpy(what, "kept", whatsz);
		return;
	}
	if ((mode == CLEANUP_TRASH || k->drv->has_capability(ks->s, "X-GM-EXT-1")) &&
	    k->drv->list_folders(ks->s, &folders, &nfolders, &err) == IMAP_OK &&
	    (ti = folders_resolve_trash(folders, nfolders)) >= 0)
		trash = xstrdup(folders[ti].wire);
	folders_free(folders, nfolders);
	free(err);
	err = NULL;
	if (k->drv->cleanup(ks->s, folder, h->uidvalidity, h->uid, token, mode, trash, what, whatsz,
	                 &err) != IMAP_OK) {
		log_warn("%s: cleanup of UID %lu failed: %s", who(ks), h->uid, err ? err : "failed");
		snprintf(what, whatsz, "failed: cleanup");
	}
	free(trash);
	free(err);
}

/* The learned announcement delay of seed idx's server (SPEC "Latency",
 * scheduler/delaywin.h: the smallest of its recent announced lags, from
 * the state store when the keeper started), seconds; -1 when none. The
 * keeper's own finds do not join the window: it keeps no store, and the
 * next round learns from its own announced probes. */
static double learned_delay(const struct keeper *k, size_t idx)
{
	const struct imap_conf *ic = &k->cfg->seeds[idx].imap;
	char key[ROUND_SERVER_MAX];

	snprintf(key, sizeof key, "%s:%d", ic->host ? ic->host : "", ic->port);
	for (size_t j = 0; j < k->ndelays; j++)
		if (strcmp(k->delays[j].server, key) == 0)
			return k->delays[j].delay >= 0 ? k->delays[j].delay : -1;
	return -1;
}

/* Pending probe i found at hit h, seen at `seen` (Unix seconds; announced:
 * by an EXISTS). */
static void found(struct keeper *k, struct ksess *ks, const char *folder, size_t i,
                  const struct imap_hit *h, double seen, int announced)
{
	const struct round_pending *pp = &k->pending[i];
	struct probe_result tmp;
	struct round_late l;

	memset(&l, 0, sizeof l);
	cleanup(k, ks, folder, h, pp->p.token, l.cleanup, sizeof l.cleanup);
	memset(&tmp, 0, sizeof tmp);
	tmp.announced = announced;
	round_set_latency(&tmp, 0, pp->p.submit_time, h->internaldate, seen,
	                  announced ? learned_delay(k, pp->seed_index) : -1);
	l.seed_index = pp->seed_index;
	xstrlcpy(l.token, pp->p.token, TOKEN_MAX);
	xstrlcpy(l.folder_kind, kinds[!is_inbox(folder)], sizeof l.folder_kind);
	{
		char *disp = mutf7_decode(folder);
		xstrlcpy(l.folder, disp ? disp : folder, FOLDER_MAX);
		free(disp);
	}
	l.submit_time = pp->p.submit_time;
	l.internaldate = h->internaldate;
	l.latency = tmp.latency;
	l.latency_usable = tmp.have_latency;
	l.counted = !pp->p.cleanup_only;
	log_info("%s: %s probe %.8s… found between rounds in %s after %.1f s (%s)",
	         k->cfg->seeds[pp->seed_index].address, l.counted ? "late" : "unmeasured earlier",
	         l.token, l.folder, l.latency, l.cleanup);
	note_found(k, &l);
}

/* Bind ks's session to the proof of seed idx's probes. */
static void bind_seed(struct keeper *k, struct ksess *ks, size_t idx)
{
	const struct config *cfg = k->cfg;
	struct imap_params ip = {
		.conf = ks->ic, .connect_timeout = cfg->limits.connect_timeout,
		.timeout = cfg->limits.timeout, .deadline = k->clock() + KEEP_FAR,
		.probe_from = ks->bounce ? NULL : k->probe_from,
		.secret = cfg->probe.secret, .secret_len = cfg->probe.secret_len,
		.old_secrets = cfg->probe.old_secrets, .nold_secrets = cfg->probe.nold_secrets,
		.seed = ks->bounce ? NULL : cfg->seeds[idx].address,
	};

	k->drv->rebind(ks->s, &ip);
}

/* Did the announcement read at seen > 0 cover hit h of folder: a NOTIFY
 * STATUS the UIDs below its UIDNEXT, an EXISTS the sequence numbers up to
 * its n? A hit that landed after it was not announced (SPEC "Latency"). */
static int announced_hit(const struct keeper *k, struct ksess *ks, const char *folder,
                         const struct imap_hit *h, double seen)
{
	unsigned long n;

	if (!(seen > 0))
		return 0;
	if (ks->notify_folder != NULL && strcmp(folder, ks->notify_folder) == 0) {
		n = k->drv->notify_announced ? k->drv->notify_announced(ks->s) : 0;
		return n > 0 && h->uid < n;
	}
	n = k->drv->idle_exists ? k->drv->idle_exists(ks->s) : 0;
	if (n > 0 && k->drv->exists_expunged != NULL) {
		/* EXPUNGEs since the EXISTS lowered its n (watch.c
		 * exists_after_expunges): none left, it covers nothing */
		unsigned long e = k->drv->exists_expunged(ks->s);
		if (e >= n)
			return 0;
		n -= e;
	}
	return n == 0 || h->seq == 0 || h->seq <= n;
}

/* The UIDVALIDITY the last SELECT or STATUS on ks read; 0 unknown. */
static unsigned long uidvalidity_seen(const struct keeper *k, const struct ksess *ks)
{
	return k->drv->uidvalidity_seen != NULL ? k->drv->uidvalidity_seen(ks->s) : 0;
}

/* Where a search of a folder starts: the stored UID (0: the whole folder)
 * and the UIDVALIDITY it belongs to (0: not known yet). NULL members: the
 * whole folder, nothing stored. */
struct from_uid {
	unsigned long *uidnext;
	unsigned long *uidvalidity;
};

/* After a search of folder on ks from a stored UID: when the folder's
 * UIDVALIDITY (the search's SELECT) is no longer the one the UID was
 * stored with, the folder was deleted and created again and its UIDs
 * restarted (RFC 3501 2.3.1.1): say so and re-base, as a round does
 * (watch.c rebase_uidnext): the stored UID is forgotten (0: the whole
 * folder from now on) and the new UIDVALIDITY kept. Returns 1 when
 * re-based, else 0; an unknown stored UIDVALIDITY is taken from this
 * search. */
static int rebase(struct keeper *k, struct ksess *ks, const char *folder, struct from_uid fu)
{
	unsigned long now = uidvalidity_seen(k, ks);

	if (now == 0 || fu.uidvalidity == NULL)
		return 0;
	if (*fu.uidvalidity == 0) {
		*fu.uidvalidity = now;
		return 0;
	}
	if (now == *fu.uidvalidity)
		return 0;
	log_info("%s: %s: UIDVALIDITY changed from %lu to %lu between rounds (the folder was "
	         "recreated): its UIDs restarted; searching the whole folder for pending probes",
	         who(ks), folder, *fu.uidvalidity, now);
	*fu.uidvalidity = now;
	*fu.uidnext = 0;
	return 1;
}

/* Search ks's folder, from the stored UID fu on, for the pending probes
 * of seed idx (re-based when the folder's UIDVALIDITY changed, rebase());
 * seen > 0: when an announcement of new mail there was read. IMAP code. */
static int search_seed(struct keeper *k, struct ksess *ks, const char *folder, size_t idx,
                       struct from_uid fu, double seen)
{
	unsigned long min_uid = fu.uidnext != NULL ? *fu.uidnext : 0;
	const char *toks[ROUND_PENDING_PER_SEED];
	size_t map[ROUND_PENDING_PER_SEED], n = 0;
	struct imap_hit *hits = NULL;
	size_t nhits = 0;
	double since = now_wall(), searched;
	char *err = NULL;
	int rc;

	for (size_t i = 0; i < k->npending && n < ROUND_PENDING_PER_SEED; i++)
		if (k->pending[i].seed_index == idx && !k->done[i]) {
			map[n] = i;
			toks[n++] = k->pending[i].p.token;
			if (k->pending[i].p.submit_time < since)
				since = k->pending[i].p.submit_time;
		}
	if (n == 0)
		return IMAP_OK;
	bind_seed(k, ks, idx);
	rc = k->drv->find_new_tokens(ks->s, folder, toks, n, since, min_uid, &hits, &nhits, &err);
	if (rc == IMAP_OK && min_uid > 0 && rebase(k, ks, folder, fu)) {
		/* UIDs from min_uid on are another folder's: search it all */
		free(hits);
		hits = NULL;
		nhits = 0;
		rc = k->drv->find_new_tokens(ks->s, folder, toks, n, since, 0, &hits, &nhits, &err);
	}
	/* a hit not announced was seen when the search's answer arrived */
	searched = driver_rx_time(k->drv, ks->s, 0, now_wall());
	if (rc != IMAP_OK) {
		log_info("%s: search between rounds failed: %s", who(ks), err ? err : imap_err_name(rc));
		free(err);
		free(hits);
		return rc;
	}
	for (size_t j = 0; j < nhits; j++) {
		size_t i = map[hits[j].token_index];
		if (k->done[i]) {
			/* a second proved copy: cleaned up, not counted */
			char what[64];
			cleanup(k, ks, folder, &hits[j], k->pending[i].p.token, what, sizeof what);
			continue;
		}
		k->done[i] = 1;
		if (announced_hit(k, ks, folder, &hits[j], seen))
			found(k, ks, folder, i, &hits[j], seen, 1);
		else
			found(k, ks, folder, i, &hits[j], searched, 0);
	}
	free(hits);
	return IMAP_OK;
}

/* Search folder, from the stored UID fu on, for the pending probes of
 * every seed of ks's account. */
static int search_in(struct keeper *k, struct ksess *ks, const char *folder, struct from_uid fu,
                     double seen)
{
	int rc = IMAP_OK;

	for (size_t i = 0; i < k->cfg->nseeds && rc == IMAP_OK; i++)
		if (acct_is(&ks->key, &k->cfg->seeds[i].imap))
			rc = search_seed(k, ks, folder, i, fu, seen);
	return rc;
}

static const struct from_uid whole = { NULL, NULL };

/* The spam folder of an account watched by one session (SPEC "Spam
 * folder": the seed's spam_folder, \Junk, a known name); NULL when none
 * resolves (then only INBOX is watched between rounds). */
static char *resolve_spam(struct keeper *k, struct ksess *ks)
{
	const struct seed_conf *seed = &k->cfg->seeds[first_seed(k, ks)];
	struct imap_folder *folders = NULL;
	size_t n = 0;
	const char *how = NULL;
	char *err = NULL, *ret = NULL;
	long si;

	if (k->drv->list_folders(ks->s, &folders, &n, &err) != IMAP_OK) {
		log_info("%s: LIST between rounds failed: %s", who(ks), err ? err : "failed");
		free(err);
		return NULL;
	}
	si = folders_resolve_spam(folders, n, seed->spam_folder, &how);
	if (si >= 0)
		ret = xstrdup(folders[si].wire);
	else if (seed->spam_folder != NULL)
		ret = xstrdup(seed->spam_folder);
	folders_free(folders, n);
	return ret;
}

/* The other folder a session answers for between rounds: the spam folder
 * of an account's only session (watched on INBOX), or the one NOTIFY
 * watches beside its selected folder; NULL none. */
static const char *other_folder(const struct ksess *ks)
{
	return ks->alone ? ks->spam : ks->notify_folder;
}

/* Search for the pending probes: the other folder first (from its stored
 * UID on, ks->spam_uidnext; NOTIFY announces mail there, but not what
 * landed before NOTIFY SET or a STATUS read inside another command's
 * reply), then the session's own folder (from ks->uidnext on), which stays
 * selected; all: the whole folders. */
static int search(struct keeper *k, struct ksess *ks, int all, double seen)
{
	const char *other = other_folder(ks);
	struct from_uid own = { &ks->uidnext, &ks->uidvalidity };
	struct from_uid spam = { &ks->spam_uidnext, &ks->spam_uidvalidity };
	int rc = IMAP_OK;

	if (other != NULL)
		rc = search_in(k, ks, other, all ? whole : spam, 0);
	return rc == IMAP_OK ? search_in(k, ks, ks->folder, all ? whole : own, seen) : rc;
}

/* ---- sessions ---------------------------------------------------------------- */

/* NOTIFY SET again on a session that watches a second folder by NOTIFY
 * when it is not in force (a new session after a reconnect, or the
 * server's NOTIFICATIONOVERFLOW); refused, the spam folder is searched at
 * each check only. IMAP code (a refusal is IMAP_OK); *sent (may be NULL)
 * 1 when NOTIFY SET was sent and accepted. */
static int notify_again(struct keeper *k, struct ksess *ks, int *sent)
{
	char *err = NULL;
	int rc;

	if (sent != NULL)
		*sent = 0;
	if (ks->notify_folder == NULL || k->drv->notify_mailbox(ks->s) != NULL ||
	    !k->cfg->probe.idle || !k->drv->has_capability(ks->s, "IDLE"))
		return IMAP_OK;
	rc = k->drv->notify_set(ks->s, ks->notify_folder, 0, &err);
	if (rc != IMAP_OK)
		log_info("%s: NOTIFY between rounds refused: %s", who(ks), err ? err : imap_err_name(rc));
	else if (sent != NULL)
		*sent = 1;
	free(err);
	return rc == IMAP_EPROTO ? IMAP_OK : rc;
}

/* Start IDLE where the server offers it and the configuration wants it
 * (else the session is only kept alive by the renewal's NOOP). */
static int idle_again(struct keeper *k, struct ksess *ks)
{
	char *err = NULL;
	int rc = IMAP_OK;

	ks->idle_since = k->clock();
	if (!k->cfg->probe.idle || !k->drv->has_capability(ks->s, "IDLE"))
		return IMAP_OK;
	if ((rc = notify_again(k, ks, NULL)) != IMAP_OK)
		return rc;
	rc = k->drv->idle_start(ks->s, &err);
	if (rc != IMAP_OK)
		log_info("%s: IDLE between rounds refused: %s", who(ks), err ? err : imap_err_name(rc));
	free(err);
	return rc;
}

/* The other folder's UIDNEXT (and UIDVALIDITY) for later checks: from the
 * reply of the NOTIFY SET STATUS just sent (nu > 0: its untagged STATUS
 * gave it, RFC 5465 3, as watch.c record_uidnext_notify() uses it), else
 * by a STATUS command; 0 (search it all) when STATUS fails. */
static void other_uidnext(struct keeper *k, struct ksess *ks, unsigned long nu, unsigned long nuv)
{
	const char *other = other_folder(ks);
	char *err = NULL;

	ks->spam_uidvalidity = 0;
	if (other == NULL)
		return;
	if (nu > 0 && ks->notify_folder != NULL && strcmp(other, ks->notify_folder) == 0) {
		ks->spam_uidnext = nu;
		ks->spam_uidvalidity = nuv;
		return;
	}
	if (k->drv->status_uidnext(ks->s, other, &ks->spam_uidnext, &err) != IMAP_OK)
		ks->spam_uidnext = 0;   /* no STATUS: later checks search it all */
	else
		ks->spam_uidvalidity = uidvalidity_seen(k, ks);
	free(err);
}

/* Watch a session that is up: select its folder, look for pending probes
 * that arrived since the round looked (all UIDs), then IDLE. */
static int arm(struct keeper *k, struct ksess *ks)
{
	char *err = NULL;
	unsigned long uidnext = 0, uidvalidity = 0, nu = 0, nuv = 0;
	int rc = IMAP_OK, sent = 0;

	bind_seed(k, ks, first_seed(k, ks));
	/* NOTIFY in force before the search: what lands in its folder after
	 * the search is announced, what landed before is found by it */
	if ((rc = notify_again(k, ks, &sent)) != IMAP_OK)
		return rc;
	if (sent && k->drv->notify_set_uidnext != NULL &&
	    (nu = k->drv->notify_set_uidnext(ks->s)) > 0)
		nuv = uidvalidity_seen(k, ks);   /* the reply's STATUS's, 0 when it named none */
	if (has_pending(k, ks) || k->drv->selected(ks->s) == NULL) {
		rc = k->drv->select_uidnext(ks->s, ks->folder, &uidnext, &err);
		if (rc == IMAP_OK)
			uidvalidity = uidvalidity_seen(k, ks);
		if (rc != IMAP_OK)
			log_info("%s: SELECT %s between rounds failed: %s", who(ks), ks->folder,
			         err ? err : imap_err_name(rc));
		free(err);
		err = NULL;
		if (rc == IMAP_OK && ks->alone && ks->spam == NULL)
			ks->spam = resolve_spam(k, ks);
		if (rc == IMAP_OK)
			other_uidnext(k, ks, nu, nuv);
		if (rc == IMAP_OK)
			rc = search(k, ks, 1, 0);
	}
	ks->uidnext = uidnext;
	ks->uidvalidity = uidvalidity;
	ks->next_check = k->clock() + check_period(k);
	return rc == IMAP_OK ? idle_again(k, ks) : rc;
}

/* A BYE that asks for a new login (Exchange Online: "* BYE Session
 * invalidated - AccessTokenExpired"). */
static int wants_relogin(const char *text)
{
	return text != NULL &&
	       (strstr(text, "AccessTokenExpired") != NULL || strstr(text, "Session invalidated") != NULL);
}

/* Was ks lost soon after a reconnect re-established it? A server that
 * accepts the login and then ends each session (BYE, a close, a new login
 * asked for at once) would otherwise be logged in to every second, or in a
 * loop without any wait: such drops continue the backoff (1 s .. 5 min). */
static int flapped(const struct keeper *k, const struct ksess *ks)
{
	double lived = k->clock() - ks->up_since;

	if (ks->up_since <= 0)
		return 0;   /* the round's session, or one that lasted */
	return lived < (ks->relogin ? KEEP_RELOGIN_STABLE : KEEP_STABLE_SECONDS);
}

/* The session dropped (or failed): close it and plan its reconnect. */
static void drop(struct keeper *k, struct ksess *ks, const char *why)
{
	if (ks->s != NULL)
		k->drv->close_now(ks->s);
	ks->s = NULL;
	ks->attempts = 0;
	ks->relogin = wants_relogin(why);
	ks->flaps = flapped(k, ks) ? ks->flaps + 1 : 0;
	ks->next_try = k->clock() + (ks->relogin && ks->flaps == 0 ? 0 : backoff(k, ks->flaps));
	pthread_mutex_lock(&k->mu);
	k->counts.drops++;
	pthread_mutex_unlock(&k->mu);
	if (ks->flaps > 0)
		log_info("%s: kept session (%s) lost between rounds %.1f s after it was re-established "
		         "(%d time%s in a row): %s; %s after %.1f s", who(ks), ks->folder,
		         k->clock() - ks->up_since, ks->flaps, ks->flaps == 1 ? "" : "s",
		         why ? why : "failed", ks->relogin ? "logging in again" : "reconnecting",
		         ks->next_try - k->clock());
	else
		log_info("%s: kept session (%s) lost between rounds: %s; %s", who(ks), ks->folder,
		         why ? why : "failed", ks->relogin ? "logging in again (new credentials)" :
		         "reconnecting with backoff");
	ks->up_since = 0;
}

/* One reconnect attempt of a session that is down; until: the latest
 * now_mono() it may take. */
static void try_up(struct keeper *k, struct ksess *ks, double until)
{
	const struct config *cfg = k->cfg;
	double lim = k->clock() + (double)(cfg->limits.connect_timeout + cfg->limits.timeout);
	struct imap_params ip = {
		.conf = ks->ic, .connect_timeout = cfg->limits.connect_timeout,
		.timeout = cfg->limits.timeout, .deadline = lim < until ? lim : until,
	};
	char *err = NULL;
	int rc;

	if (ip.deadline - k->clock() < 1.0) {
		ks->next_try = until;   /* the round opens it */
		return;
	}
	rc = k->drv->open(&ip, &ks->s, &err);
	if (rc == IMAP_OK && (rc = arm(k, ks)) != IMAP_OK) {
		k->drv->close_now(ks->s);
		ks->s = NULL;
	}
	if (rc == IMAP_OK) {
		pthread_mutex_lock(&k->mu);
		k->counts.reconnects++;
		pthread_mutex_unlock(&k->mu);
		log_info("%s: kept session (%s) re-established between rounds after %d failed "
		         "attempt%s", who(ks), ks->folder, ks->attempts, ks->attempts == 1 ? "" : "s");
		ks->attempts = 0;
		ks->relogin = 0;
		ks->up_since = k->clock();
	} else if (atomic_load(&k->quit) || imap_stop_requested()) {
		/* not the server's fault, and no next attempt */
		ks->s = NULL;
		log_info("%s: reconnect %d stopped by the shutdown (%s)", who(ks), ks->attempts + 1,
		         err ? err : imap_err_name(rc));
	} else {
		ks->s = NULL;
		ks->attempts++;
		ks->relogin = 0;
		ks->next_try = k->clock() + backoff(k, ks->attempts + ks->flaps);
		log_info("%s: reconnect %d failed: %s; next attempt in %.1f s", who(ks), ks->attempts,
		         err ? err : imap_err_name(rc), ks->next_try - k->clock());
	}
	free(err);
}

/* An EXISTS (seen: when), a due check, or a renewal: end IDLE, search when
 * probes are pending (an account's only session: its spam folder too), IDLE
 * again. The session is dropped on error. */
static void service(struct keeper *k, struct ksess *ks, double seen, int renewal)
{
	char *err = NULL;
	int rc = k->drv->idle_done(ks->s, &err);

	if (rc == IMAP_OK && renewal && !k->drv->idling(ks->s) &&
	    !(k->cfg->probe.idle && k->drv->has_capability(ks->s, "IDLE")))
		rc = k->drv->noop(ks->s, &err);   /* no IDLE: kept alive by NOOP */
	if (rc == IMAP_OK && has_pending(k, ks)) {
		rc = search(k, ks, 0, seen);
		ks->next_check = k->clock() + check_period(k);
	}
	if (rc == IMAP_OK && renewal) {
		pthread_mutex_lock(&k->mu);
		k->counts.renewals++;
		pthread_mutex_unlock(&k->mu);
		log_debug("%s: IDLE on %s renewed after %.1f s", who(ks), ks->folder,
		          k->clock() - ks->idle_since);
	}
	if (rc == IMAP_OK)
		rc = idle_again(k, ks);
	if (rc != IMAP_OK)
		drop(k, ks, err);
	free(err);
}

/* NOTIFY (RFC 5465): an untagged STATUS announced new mail in the spam
 * folder of a session watching INBOX. DONE; SELECT the spam folder (which
 * ends INBOX's selection) and search it; SELECT INBOX again and search it
 * too (what reached it meanwhile was not announced; inbox_seen > 0: an
 * EXISTS read with the STATUS announced new mail there); IDLE. */
static void service_notify(struct keeper *k, struct ksess *ks, double seen, double inbox_seen)
{
	char *err = NULL;
	unsigned long uidnext;
	int rc = k->drv->idle_done(ks->s, &err);

	if (rc == IMAP_OK)
		rc = search_in(k, ks, ks->notify_folder, whole, seen);
	if (rc == IMAP_OK)
		rc = k->drv->select_uidnext(ks->s, ks->folder, &uidnext, &err);
	if (rc == IMAP_OK && has_pending(k, ks))
		rc = search_in(k, ks, ks->folder, (struct from_uid){ &ks->uidnext, &ks->uidvalidity },
		               inbox_seen);
	if (rc == IMAP_OK)
		rc = idle_again(k, ks);
	if (rc != IMAP_OK)
		drop(k, ks, err);
	free(err);
}

/* Read what an idling session sent. An announcement was seen when its
 * line reached this host (driver rx_time), else before the read. */
static void on_input(struct keeper *k, struct ksess *ks)
{
	double t = now_wall(), seen, status_seen;
	char *err = NULL;
	int ev = 0;
	int rc = k->drv->idle_read(ks->s, &ev, &err);

	seen = driver_rx_time(k->drv, ks->s, IMAP_IDLE_EXISTS, t);
	status_seen = driver_rx_time(k->drv, ks->s, IMAP_IDLE_STATUS, t);
	if (rc != IMAP_OK) {
		drop(k, ks, err);
	} else if ((ev & IMAP_IDLE_STATUS) && ks->notify_folder != NULL && has_pending(k, ks)) {
		service_notify(k, ks, status_seen, (ev & IMAP_IDLE_EXISTS) ? seen : 0);
	} else if ((ev & IMAP_IDLE_EXISTS) && has_pending(k, ks)) {
		service(k, ks, seen, 0);
	} else if (ev & IMAP_IDLE_ENDED) {
		service(k, ks, 0, 0);   /* the server ended IDLE: look, start it again */
	}
	free(err);
}

/* ---- the thread -------------------------------------------------------------- */

/* Refresh the kept accounts' OAuth 2.0 tokens that are about to expire
 * (the cache hands out a fresh one within its margin). */
static void oauth_tick(struct keeper *k)
{
	for (struct ksess *ks = k->list; ks; ks = ks->next) {
		char *tok = NULL, *err = NULL;

		if (ks->ic == NULL || ks->ic->oauth2 == NULL)
			continue;
		if (oauth2_get_token(ks->ic->oauth2, NULL, &tok, &err) != OAUTH2_OK)
			log_warn("%s: OAuth 2.0 token refresh between rounds failed: %s", who(ks),
			         err ? err : "failed");
		if (tok != NULL) {
			explicit_bzero(tok, strlen(tok));
			free(tok);
		}
		free(err);
	}
}

/* Timers: reconnects, renewals, checks. Returns the now_mono() of the
 * next timer. */
static double timers(struct keeper *k)
{
	double now = k->clock(), next = now + KEEP_MAX_WAIT;

	for (struct ksess *ks = k->list; ks && !atomic_load(&k->quit); ks = ks->next) {
		if (ks->s == NULL) {
			if (now >= ks->next_try)
				try_up(k, ks, k->until);
		} else if (now - ks->idle_since >= k->renew) {
			service(k, ks, 0, 1);
		} else if (now >= ks->next_check && has_pending(k, ks)) {
			service(k, ks, 0, 0);
		}
		now = k->clock();
		if (ks->s == NULL && ks->next_try < next)
			next = ks->next_try;
		if (ks->s != NULL && ks->idle_since + k->renew < next)
			next = ks->idle_since + k->renew;
		if (ks->s != NULL && has_pending(k, ks) && ks->next_check < next)
			next = ks->next_check;
	}
	if (now >= k->next_oauth) {
		oauth_tick(k);
		k->next_oauth = k->clock() + KEEP_OAUTH_TICK;
	}
	return next;
}

/* Wait until next (now_mono()) for input on the idling sessions or a stop. */
static void wait_input(struct keeper *k, double next)
{
	size_t n = 1, cap = 1;
	struct pollfd *pf;
	struct ksess **map;
	int ms, now_ready = 0;

	for (struct ksess *ks = k->list; ks; ks = ks->next)
		cap++;
	pf = xcalloc(cap, sizeof *pf);
	map = xcalloc(cap, sizeof *map);
	pf[0].fd = k->qpipe[0];
	pf[0].events = POLLIN;
	for (struct ksess *ks = k->list; ks; ks = ks->next) {
		int waiting = 0, fd = ks->s ? k->drv->idle_fd(ks->s, &waiting) : -1;
		if (fd < 0)
			continue;
		if (waiting)
			now_ready = 1;
		pf[n].fd = fd;
		pf[n].events = POLLIN;
		map[n++] = ks;
	}
	ms = now_ready ? 0 : (int)ceil((next - k->clock()) * 1000.0);
	if (poll(pf, (nfds_t)n, ms < 0 ? 0 : ms) >= 0 || now_ready) {
		for (size_t i = 1; i < n && !atomic_load(&k->quit); i++) {
			int waiting = 0;
			if (k->drv->idle_fd(map[i]->s, &waiting) >= 0 &&
			    (waiting || (pf[i].revents & (POLLIN | POLLHUP | POLLERR))))
				on_input(k, map[i]);
		}
	}
	free(pf);
	free(map);
}

/* Every session that is up: searched for pending probes, into IDLE. */
static void arm_all(struct keeper *k)
{
	double t0 = k->clock();
	size_t n = 0;

	for (struct ksess *ks = k->list; ks && !atomic_load(&k->quit); ks = ks->next) {
		if (ks->s == NULL)
			continue;
		if (arm(k, ks) != IMAP_OK)
			drop(k, ks, "could not be watched");
		else
			n++;
	}
	log_debug("between rounds: %zu kept sessions in IDLE in %.3f s", n, k->clock() - t0);
}

static void *keeper_main(void *arg)
{
	struct keeper *k = arg;

	arm_all(k);
	while (!atomic_load(&k->quit))
		wait_input(k, timers(k));
	return NULL;
}

/* ---- tests (keeper_int.h) ------------------------------------------------------ */

void keeper_test_clock(struct keeper *k, double (*clock)(void))
{
	k->clock = clock;
}

void keeper_test_arm(struct keeper *k)
{
	arm_all(k);
}

void keeper_test_step(struct keeper *k)
{
	timers(k);
	wait_input(k, k->clock());
}

double keeper_test_backoff(struct keeper *k, int n)
{
	return backoff(k, n);
}

int keeper_test_session(const struct keeper *k, const char *folder, struct keeper_test_sess *out)
{
	for (const struct ksess *ks = k->list; ks; ks = ks->next)
		if (strcmp(ks->folder, folder) == 0) {
			out->up = ks->s != NULL;
			out->attempts = ks->attempts;
			out->relogin = ks->relogin;
			out->next_try = ks->next_try;
			out->idle_since = ks->idle_since;
			return 0;
		}
	return -1;
}

/* ---- start and stop ---------------------------------------------------------- */

struct keeper *keeper_new(struct session_pool *pool, int wake_fd)
{
	struct keeper *k = xcalloc(1, sizeof *k);
	uint64_t seed = (uint64_t)(now_wall() * 1e6) ^ (uint64_t)getpid();

	k->pool = pool;
	k->drv = pool_driver(pool);
	k->clock = now_mono;
	k->wake_fd = wake_fd;
	k->qpipe[0] = k->qpipe[1] = -1;
	pthread_mutex_init(&k->mu, NULL);
	k->rnd[0] = (unsigned short)seed;
	k->rnd[1] = (unsigned short)(seed >> 16);
	k->rnd[2] = (unsigned short)(seed >> 32);
	k->renew = renew_period();
	return k;
}

/* Rebind the sessions still down to cfg's blocks; forget those whose
 * account is gone (a reload). */
static void rebind_down(struct keeper *k)
{
	for (struct ksess **pp = &k->list; *pp;) {
		struct ksess *ks = *pp;
		ks->ic = find_conf(k->cfg, &ks->key, &ks->bounce);
		if (ks->ic != NULL) {
			pp = &ks->next;
			continue;
		}
		*pp = ks->next;
		ksess_free(k, ks);
	}
}

/* A session of ic's account taken from the pool: its ksess (an entry still
 * down for the same folder is replaced: the round opened it again). */
static void adopt(struct keeper *k, const struct imap_conf *ic, int bounce, struct imap_session *s)
{
	const char *sel = k->drv->selected(s);
	struct ksess *ks = xcalloc(1, sizeof *ks);

	acct_set(&ks->key, ic);
	ks->ic = ic;
	ks->bounce = bounce;
	ks->folder = xstrdup(sel ? sel : "INBOX");
	ks->notify_folder = k->drv->notify_mailbox(s) ? xstrdup(k->drv->notify_mailbox(s)) : NULL;
	ks->s = s;
	for (struct ksess **pp = &k->list; *pp; pp = &(*pp)->next)
		if ((*pp)->s == NULL && acct_is(&(*pp)->key, ic) && strcmp((*pp)->folder, ks->folder) == 0) {
			struct ksess *old = *pp;
			*pp = old->next;
			ksess_free(k, old);
			break;
		}
	ks->next = k->list;
	k->list = ks;
}

/* Take the pool's sessions of every account of the configuration. */
static void take_sessions(struct keeper *k)
{
	const struct config *cfg = k->cfg;
	struct imap_session *s;

	for (size_t i = 0; i <= cfg->nseeds; i++) {
		const struct imap_conf *ic = i < cfg->nseeds ? &cfg->seeds[i].imap :
		                             cfg->has_bounce ? &cfg->bounce : NULL;
		if (ic == NULL)
			break;
		while ((s = pool_take(k->pool, ic)) != NULL)
			adopt(k, ic, i == cfg->nseeds, s);
	}
}

/* Mark the sessions that are their account's only one, on INBOX, without
 * NOTIFY. */
static void mark_alone(struct keeper *k)
{
	for (struct ksess *ks = k->list; ks; ks = ks->next) {
		size_t n = 0;
		for (struct ksess *o = k->list; o; o = o->next)
			n += acct_is(&o->key, ks->ic);
		/* NOTIFY announces the spam folder's mail itself */
		ks->alone = !ks->bounce && n == 1 && is_inbox(ks->folder) && ks->notify_folder == NULL;
	}
}

/* keeper_start(); thread 0: no thread (keeper_test_start). */
static int start(struct keeper *k, const struct config *cfg, const struct round_pending *pending,
                 size_t npending, const struct round_delay *delays, size_t ndelays, double until,
                 int thread, char **errstr)
{
	int rc;

	if (k->running)
		return 0;
	if (pipe2(k->qpipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		*errstr = xasprintf("keeper: pipe: %s", strerror(errno));
		return -1;
	}
	k->cfg = cfg;
	k->pending = pending;
	k->npending = npending;
	k->done = xcalloc(npending + 1, 1);
	k->delays = NULL;
	k->ndelays = 0;
	if (delays != NULL && ndelays > 0) {
		k->delays = xcalloc(ndelays, sizeof *k->delays);
		memcpy(k->delays, delays, ndelays * sizeof *delays);
		k->ndelays = ndelays;
	}
	k->probe_from = message_probe_from(cfg->probe.template_text, cfg->relay.from);
	k->next_oauth = k->clock();
	k->until = until;
	atomic_store(&k->quit, 0);
	rebind_down(k);
	take_sessions(k);
	mark_alone(k);
	if (!thread) {
		k->running = 1;   /* keeper_stop() joins no thread */
		return 0;
	}
	rc = pthread_create(&k->th, NULL, keeper_main, k);
	if (rc != 0) {
		*errstr = xasprintf("keeper: cannot start a thread: %s", strerror(rc));
		k->running = 1;   /* keeper_stop() gives the sessions back */
		keeper_stop(k);
		return -1;
	}
	k->running = 2;
	return 0;
}

int keeper_start(struct keeper *k, const struct config *cfg, const struct round_pending *pending,
                 size_t npending, const struct round_delay *delays, size_t ndelays, double until,
                 char **errstr)
{
	return start(k, cfg, pending, npending, delays, ndelays, until, 1, errstr);
}

int keeper_test_start(struct keeper *k, const struct config *cfg,
                      const struct round_pending *pending, size_t npending,
                      const struct round_delay *delays, size_t ndelays, double until,
                      char **errstr)
{
	return start(k, cfg, pending, npending, delays, ndelays, until, 0, errstr);
}

void keeper_stop(struct keeper *k)
{
	if (k == NULL || !k->running)
		return;
	double t0;
	size_t n = 0;

	atomic_store(&k->quit, 1);
	if (k->running == 2) {
		(void)!write(k->qpipe[1], "", 1);
		pthread_join(k->th, NULL);
	}
	t0 = k->clock();
	for (struct ksess **pp = &k->list; *pp;) {
		struct ksess *ks = *pp;
		char *err = NULL;
		if (ks->s == NULL) {   /* down: its backoff goes on after the round */
			ks->ic = NULL;
			pp = &ks->next;
			continue;
		}
		k->drv->extend(ks->s, 2.0);
		if (k->drv->idle_done(ks->s, &err) == IMAP_OK) {
			pool_put(k->pool, ks->ic, ks->s);   /* closed there when not usable */
			n++;
		} else {
			k->drv->close_now(ks->s);
		}
		free(err);
		ks->s = NULL;
		*pp = ks->next;
		ksess_free(k, ks);
	}
	log_debug("before the round: %zu kept sessions out of IDLE in %.3f s", n, k->clock() - t0);
	close(k->qpipe[0]);
	close(k->qpipe[1]);
	k->qpipe[0] = k->qpipe[1] = -1;
	free(k->done);
	k->done = NULL;
	free(k->delays);
	k->delays = NULL;
	k->ndelays = 0;
	free(k->probe_from);
	k->probe_from = NULL;
	k->cfg = NULL;
	k->pending = NULL;
	k->npending = 0;
	k->running = 0;
}

int keeper_running(const struct keeper *k)
{
	return k != NULL && k->running != 0;
}

void keeper_free(struct keeper *k)
{
	if (k == NULL)
		return;
	keeper_stop(k);
	while (k->list) {
		struct ksess *ks = k->list;
		k->list = ks->next;
		ksess_free(k, ks);
	}
	free(k->found);
	pthread_mutex_destroy(&k->mu);
	free(k);
}

size_t keeper_drain(struct keeper *k, struct round_late **out)
{
	size_t n;

	pthread_mutex_lock(&k->mu);
	*out = k->found;
	n = k->nfound;
	k->found = NULL;
	k->nfound = 0;
	pthread_mutex_unlock(&k->mu);
	return n;
}

void keeper_counts(struct keeper *k, struct keeper_counts *out)
{
	pthread_mutex_lock(&k->mu);
	*out = k->counts;
	pthread_mutex_unlock(&k->mu);
}
