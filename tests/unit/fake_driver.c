/* fake_driver.c - the fake IMAP driver of the unit tests (fake_driver.h). */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/unit/fake_driver.h"

static const char *const op_names[OP_N] = {
	"open", "list", "select", "status", "idle_start", "idle_read", "idle_done",
	"find", "fetch", "cleanup", "noop", "scan", "notify"
};

struct fake_world W;

/* A session of the fake (the engine only ever holds pointers to it). */
struct imap_session {
	int id;
	int dead;
	int idling;
	int folder;              /* selected: 0 INBOX, 1 spam, -1 none */
	unsigned long idle_from; /* UIDNEXT of the selected folder when IDLE began */
	char notify_box[32];     /* NOTIFY SET for this folder ("" none) */
	unsigned long notify_from;   /* its UIDNEXT last announced */
	unsigned long notify_set_uidnext;   /* UIDNEXT in the last NOTIFY SET's reply */
	unsigned long announced;     /* the UIDNEXT the last STATUS carried */
	unsigned long exists;        /* n of the last EXISTS */
	double exists_rx, status_rx, last_rx;   /* rx_time: W.rx_early before the reads */
	unsigned long seen_uv;   /* uidvalidity_seen: the last SELECT's, STATUS's or find's */
};

void fake_config_one_seed(struct config *cfg, struct seed_conf *seed)
{
	memset(cfg, 0, sizeof *cfg);
	memset(seed, 0, sizeof *seed);
	seed->address = "seed@example.net";
	seed->imap.host = "imap.example.net";
	seed->imap.port = 993;
	seed->imap.username = "seed";
	cfg->seeds = seed;
	cfg->nseeds = 1;
	cfg->probe.poll_interval = 1;
	cfg->probe.idle = 1;
	cfg->probe.cleanup = CLEANUP_DELETE;
	cfg->limits.connect_timeout = 1;
	cfg->limits.timeout = 1;
}

void fake_reset(void)
{
	memset(&W, 0, sizeof W);
	W.f[0] = (struct fake_folder){ .wire = "INBOX", .uidvalidity = 7, .uidnext = 100 };
	W.f[1] = (struct fake_folder){ .wire = "Junk", .uidvalidity = 8, .uidnext = 50 };
	W.list_spam = 1;
	W.idle_cap = 1;
}

void trail(char c)
{
	size_t n = strlen(W.trail);

	if (n + 1 < sizeof W.trail)
		W.trail[n] = c;
}

/* The fault scripted for this call of op, if any (counts the call). */
static int fault(enum op op, char **errstr)
{
	int n = ++W.calls[op];

	for (size_t i = 0; i < W.nfaults; i++)
		if (W.faults[i].op == op && W.faults[i].nth == n) {
			if (errstr != NULL)
				*errstr = xasprintf("%s: %s", op_names[op], W.faults[i].text);
			return W.faults[i].rc;
		}
	return IMAP_OK;
}

void add_fault(enum op op, int nth, int rc, const char *text)
{
	W.faults[W.nfaults++] = (struct fault){ op, nth, rc, text };
}

/* Every call on a session: a dead one answers IMAP_EBYE at once (imap.h);
 * a scripted BYE, drop or timeout kills it. */
static int enter(struct imap_session *s, enum op op, char **errstr)
{
	int rc;

	if (s->dead) {
		W.calls[op]++;
		if (errstr != NULL)
			*errstr = xstrdup("connection already lost");
		return IMAP_EBYE;
	}
	rc = fault(op, errstr);
	if (rc == IMAP_EBYE || rc == IMAP_ETIMEOUT)
		s->dead = 1;
	return rc;
}

static int folder_of(const char *wire)
{
	return strcmp(wire, "INBOX") == 0 ? 0 : strcmp(wire, W.f[1].wire) == 0 ? 1 : -1;
}

void deliver(int f, const char *token, int proved)
{
	struct fake_folder *fo = &W.f[f];
	struct fake_msg *m = &fo->m[fo->n++];

	m->uid = fo->uidnext++;
	xstrlcpy(m->token, token, sizeof m->token);
	m->proved = proved;
	W.delivered_at = now_wall();
	m->internaldate = floor(W.delivered_at);
}

static int f_open(const struct imap_params *p, struct imap_session **out, char **errstr)
{
	int rc = fault(OP_OPEN, errstr);

	(void)p;
	if (rc != IMAP_OK)
		return rc;
	*out = xcalloc(1, sizeof **out);
	(*out)->id = ++W.opened;
	(*out)->folder = -1;
	return IMAP_OK;
}

static void f_close(struct imap_session *s)
{
	if (s == NULL)
		return;
	W.closed++;
	free(s);
}

static void f_rebind(struct imap_session *s, const struct imap_params *p)
{
	(void)s;
	(void)p;
}

static int f_noop(struct imap_session *s, char **errstr)
{
	return enter(s, OP_NOOP, errstr);
}

static void f_extend(struct imap_session *s, double secs)
{
	(void)s;
	(void)secs;
}

static int f_has_capability(const struct imap_session *s, const char *cap)
{
	(void)s;
	return (strcmp(cap, "IDLE") == 0 && W.idle_cap) || (strcmp(cap, "NOTIFY") == 0 && W.notify_cap);
}

static int f_list(struct imap_session *s, struct imap_folder **out, size_t *n, char **errstr)
{
	int rc = enter(s, OP_LIST, errstr);

	if (rc != IMAP_OK)
		return rc;
	*out = xcalloc(2, sizeof **out);
	(*out)[0].wire = xstrdup("INBOX");
	(*out)[0].display = xstrdup("INBOX");
	(*out)[0].flags = FOLDER_INBOX;
	(*out)[1].wire = xstrdup(W.list_spam ? W.f[1].wire : "Archive");
	(*out)[1].display = xstrdup((*out)[1].wire);
	(*out)[1].flags = W.list_spam ? FOLDER_JUNK : 0;
	*n = 2;
	return IMAP_OK;
}

static int f_select(struct imap_session *s, const char *folder, unsigned long *uidnext,
                    char **errstr)
{
	int rc = enter(s, OP_SELECT, errstr);
	int f = folder_of(folder);

	if (rc != IMAP_OK)
		return rc;
	if (f < 0) {
		*errstr = xasprintf("SELECT %s: NO no such folder", folder);
		return IMAP_ENOFOLDER;
	}
	s->folder = f;
	*uidnext = W.f[f].uidnext;
	s->seen_uv = W.f[f].uidvalidity;
	return IMAP_OK;
}

static int f_status(struct imap_session *s, const char *folder, unsigned long *uidnext,
                    char **errstr)
{
	int rc = enter(s, OP_STATUS, errstr);
	int f = folder_of(folder);

	if (rc != IMAP_OK)
		return rc;
	if (f < 0) {
		*errstr = xasprintf("STATUS %s: NO no such folder", folder);
		return IMAP_ENOFOLDER;
	}
	*uidnext = W.f[f].uidnext;
	s->seen_uv = W.f[f].uidvalidity;
	return IMAP_OK;
}

static int f_idle_start(struct imap_session *s, char **errstr)
{
	int rc = enter(s, OP_IDLE_START, errstr);

	if (rc != IMAP_OK)
		return rc;
	s->idling = 1;
	s->idle_from = W.f[s->folder].uidnext;
	trail('+');
	return IMAP_OK;
}

static int f_usable(const struct imap_session *s)
{
	return s != NULL && !s->dead && !s->idling;
}

static const char *f_selected(const struct imap_session *s)
{
	return s->folder < 0 ? NULL : W.f[s->folder].wire;
}

static int f_idling(const struct imap_session *s)
{
	return s->idling;
}

/* Input: a scripted kick, or mail delivered since IDLE began. */
static int has_input(const struct imap_session *s)
{
	return s->idling && (W.kicks > 0 || W.f[s->folder].uidnext > s->idle_from ||
	                     (s->notify_box[0] && W.f[1].uidnext > s->notify_from));
}

static int f_idle_wait(struct imap_session *const *ss, size_t n, double until, int *ready)
{
	int nready = 0;

	for (size_t i = 0; i < n; i++) {
		ready[i] = has_input(ss[i]);
		nready += ready[i];
	}
	if (nready == 0 && until > now_mono()) {
		double left = until - now_mono();
		struct timespec ts = { (time_t)left, (long)((left - (time_t)left) * 1e9) };
		nanosleep(&ts, NULL);
	}
	return nready;
}

/* The descriptor of an idling session: a pipe never written, so the
 * input is always "waiting" above it (has_input), read without polling. */
static int f_idle_fd(struct imap_session *s, int *waiting)
{
	static int quiet[2] = { -1, -1 };

	if (s->dead || !s->idling)
		return -1;
	if (quiet[0] < 0)
		assert_int_equal(pipe2(quiet, O_CLOEXEC), 0);
	*waiting = has_input(s);
	return quiet[0];
}

static int f_idle_read(struct imap_session *s, int *event, char **errstr)
{
	int rc = enter(s, OP_IDLE_READ, errstr);

	if (rc != IMAP_OK)
		return rc;
	if (W.kicks > 0) {
		W.kicks--;
		*errstr = xasprintf("server said BYE: %s", W.kick_text[W.kicks]);
		if (W.kicks == 0 && W.after_kicks != NULL)
			deliver(0, W.after_kicks, 1);
		s->dead = 1;
		return IMAP_EBYE;
	}
	*event = 0;
	if (W.f[s->folder].uidnext > s->idle_from) {
		*event |= IMAP_IDLE_EXISTS;   /* "* n EXISTS" */
		s->exists = W.f[s->folder].n;
	}
	if (s->notify_box[0] && W.f[1].uidnext > s->notify_from && !W.status_lost) {
		*event |= IMAP_IDLE_STATUS;   /* "* STATUS Junk (MESSAGES n UIDNEXT u)" */
		s->announced = W.f[1].uidnext;
	}
	if (*event)
		W.read_at = now_wall();
	if ((*event & IMAP_IDLE_EXISTS) && W.rx_early > 0)
		s->exists_rx = W.read_at - W.rx_early;
	if ((*event & IMAP_IDLE_STATUS) && W.rx_early > 0)
		s->status_rx = W.read_at - W.rx_early;
	s->idle_from = W.f[s->folder].uidnext;
	s->notify_from = W.f[1].uidnext;
	return IMAP_OK;
}

static int f_idle_done(struct imap_session *s, char **errstr)
{
	int rc;

	if (!s->idling)
		return IMAP_OK;
	s->idling = 0;
	rc = enter(s, OP_IDLE_DONE, errstr);
	return rc;
}

/* Hits are proved messages only (the driver's contract). */
static int f_find(struct imap_session *s, const char *folder, const char *const *tokens,
                  size_t ntokens, double since, unsigned long min_uid, struct imap_hit **hits,
                  size_t *nhits, char **errstr)
{
	int rc = enter(s, OP_FIND, errstr);
	int f = folder_of(folder);

	(void)since;
	if (rc != IMAP_OK)
		return rc;
	assert_true(f >= 0);
	s->folder = f;
	s->seen_uv = W.f[f].uidvalidity;
	trail(f == 0 ? 'I' : 'S');
	W.find_at = now_wall();
	if (W.find_deliver_at > 0 && W.calls[OP_FIND] == W.find_deliver_at)
		deliver(W.find_folder, W.find_token, 1);
	*hits = xcalloc(W.f[f].n + 1, sizeof **hits);
	*nhits = 0;
	for (size_t i = 0; i < W.f[f].n; i++) {
		const struct fake_msg *m = &W.f[f].m[i];
		for (size_t t = 0; t < ntokens; t++)
			if (m->uid >= min_uid && m->proved && strcmp(m->token, tokens[t]) == 0)
				(*hits)[(*nhits)++] = (struct imap_hit){ t, W.f[f].uidvalidity, m->uid,
				                                         m->internaldate, i + 1 };
	}
	if (W.rx_early > 0)
		s->last_rx = W.find_rx = now_wall() - W.rx_early;
	return IMAP_OK;
}

static unsigned long f_uidvalidity_seen(const struct imap_session *s)
{
	return s->seen_uv;
}

static int f_fetch_header(struct imap_session *s, unsigned long uid, size_t max, char **out,
                          size_t *len, char **errstr)
{
	int rc = enter(s, OP_FETCH, errstr);

	(void)uid;
	(void)max;
	if (rc != IMAP_OK)
		return rc;
	*out = xstrdup("Subject: probe\r\n\r\n");
	*len = strlen(*out);
	return IMAP_OK;
}

static int f_gmail_tab(struct imap_session *s, unsigned long uid, char *tab, size_t tabsz,
                       char **errstr)
{
	(void)s;
	(void)uid;
	(void)errstr;
	xstrlcpy(tab, "unknown", tabsz);
	return IMAP_OK;
}

/* Records what it was asked to clean; removes the message. */
static int f_cleanup(struct imap_session *s, const char *folder, unsigned long uidvalidity,
                     unsigned long uid, const char *token, enum cleanup_mode mode,
                     const char *trash, char *what, size_t whatsz, char **errstr)
{
	int rc = enter(s, OP_CLEANUP, errstr);
	int f = folder_of(folder);

	(void)uidvalidity;
	(void)token;
	(void)trash;
	if (rc != IMAP_OK)
		return rc;
	W.cleaned_folder[W.ncleaned] = f;
	W.cleaned[W.ncleaned++] = uid;
	for (size_t i = 0; i < W.f[f].n; i++)
		if (W.f[f].m[i].uid == uid) {
			W.f[f].m[i] = W.f[f].m[--W.f[f].n];
			break;
		}
	xstrlcpy(what, mode == CLEANUP_TRASH ? "trashed" : "deleted", whatsz);
	return IMAP_OK;
}

static int f_scan(struct imap_session *s, const char *folder, const char *const *tokens,
                  size_t ntokens, double since, int delete_matched, struct imap_bounce **out,
                  size_t *nout, char **errstr)
{
	(void)folder;
	(void)tokens;
	(void)ntokens;
	(void)since;
	(void)delete_matched;
	*out = NULL;
	*nout = 0;
	return enter(s, OP_SCAN, errstr);
}

static int f_notify_set(struct imap_session *s, const char *mailbox, unsigned long uidnext,
                        char **errstr)
{
	int rc;

	if (strcmp(s->notify_box, mailbox) == 0) {
		/* set already: no command, like imap_notify_set() */
		if (uidnext > 0)
			s->notify_from = uidnext;
		s->notify_set_uidnext = 0;
		return IMAP_OK;
	}
	if ((rc = enter(s, OP_NOTIFY, errstr)) != IMAP_OK)
		return rc;
	assert_int_equal(folder_of(mailbox), 1);
	xstrlcpy(s->notify_box, mailbox, sizeof s->notify_box);
	s->notify_set_uidnext = W.notify_status ? W.f[1].uidnext : 0;
	s->notify_from = uidnext ? uidnext : s->notify_set_uidnext;
	trail('N');
	return IMAP_OK;
}

static unsigned long f_notify_set_uidnext(const struct imap_session *s)
{
	return s->notify_box[0] ? s->notify_set_uidnext : 0;
}

static const char *f_notify_mailbox(const struct imap_session *s)
{
	return s->notify_box[0] ? s->notify_box : NULL;
}

static unsigned long f_idle_exists(const struct imap_session *s)
{
	return s->exists;
}

static unsigned long f_notify_announced(const struct imap_session *s)
{
	return s->announced;
}

static double f_rx_time(const struct imap_session *s, int what)
{
	if (what == IMAP_IDLE_EXISTS)
		return s->exists_rx;
	return what == IMAP_IDLE_STATUS ? s->status_rx : s->last_rx;
}

const struct imap_driver fake = {
	.open = f_open, .close = f_close, .close_now = f_close, .rebind = f_rebind,
	.noop = f_noop, .extend = f_extend, .has_capability = f_has_capability,
	.usable = f_usable, .selected = f_selected, .list_folders = f_list, .select_uidnext = f_select, .status_uidnext = f_status,
	.idle_start = f_idle_start, .idling = f_idling, .idle_wait = f_idle_wait,
	.idle_read = f_idle_read, .idle_fd = f_idle_fd, .idle_done = f_idle_done,
	.find_new_tokens = f_find, .uidvalidity_seen = f_uidvalidity_seen,
	.fetch_header = f_fetch_header, .gmail_tab = f_gmail_tab, .cleanup = f_cleanup,
	.scan_bounces = f_scan, .notify_set = f_notify_set, .notify_set_uidnext = f_notify_set_uidnext, .notify_mailbox = f_notify_mailbox,
	.notify_announced = f_notify_announced, .idle_exists = f_idle_exists,
	.rx_time = f_rx_time,
};
