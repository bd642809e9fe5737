/*
 * test_keeper.c - the daemon keeper's decisions between rounds
 * (scheduler/keeper.c) against the fake IMAP driver (fake_driver.h) and a
 * fake monotonic clock, step by step without the keeper's thread
 * (keeper_int.h).
 *
 * The contract under test is docs/SPEC.md "Daemon" and issue 14: a pending
 * probe that lands is found when the server announces it, proved,
 * cleaned up and recorded as a late arrival at once, and only once; a
 * message that is not proved to be our probe is never touched; a dropped
 * session reconnects with exponential backoff (1 s doubling to 5 min,
 * jitter 0..25 %, capped at 5 min) except after a BYE asking for a new
 * login (Exchange Online's "* BYE Session invalidated -
 * AccessTokenExpired"), which logs in again at once; IDLE is renewed after
 * its period (RFC 2177: before 29 minutes).
 */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/model.h"
#include "common/util.h"
#include "scheduler/keeper_int.h"
#include "scheduler/pool.h"
#include "tests/unit/fake_driver.h"

#define T0 1000.0      /* the fake clock's start */
#define RENEW 1500.0   /* keeper.c's KEEP_RENEW_SECONDS: 25 minutes */

static double fake_now;

static double fake_clock(void)
{
	return fake_now;
}

struct fixture {
	struct config cfg;
	struct seed_conf seed;
	struct round_pending pending[1];
	size_t npending;
	struct round_delay delays[1];   /* learned before (the state store) */
	size_t ndelays;
	struct session_pool *pool;
	struct keeper *k;
};

/* A session of the seed's account in the pool, with folder f (0 INBOX,
 * 1 Junk) selected, as a round leaves it. */
static void pool_session(struct fixture *fx, int f)
{
	struct imap_session *s = NULL;
	unsigned long uidnext;
	char *err = NULL;

	assert_int_equal(fake.open(NULL, &s, &err), IMAP_OK);
	assert_int_equal(fake.select_uidnext(s, W.f[f].wire, &uidnext, &err), IMAP_OK);
	pool_put(fx->pool, &fx->seed.imap, s);
}

static int setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof *fx);

	fake_reset();
	fake_now = T0;
	fake_config_one_seed(&fx->cfg, &fx->seed);   /* poll_interval 1: checks every 30 s
	                                                (KEEP_SAFETY_TICK) */
	fx->cfg.relay.from = "probe@example.org";

	/* an earlier round's probe, not found yet (its round said missing) */
	fx->pending[0].seed_index = 0;
	xstrlcpy(fx->pending[0].p.token, "tok-pending", TOKEN_MAX);
	fx->pending[0].p.submit_time = floor(now_wall()) - 100;
	fx->npending = 1;

	fx->pool = pool_new_driver(&fake);
	fx->k = keeper_new(fx->pool, -1);
	keeper_test_clock(fx->k, fake_clock);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	keeper_free(fx->k);
	pool_free(fx->pool);
	assert_int_equal(W.opened, W.closed);   /* every session opened was closed */
	free(fx);
	return 0;
}

/* Start the keeper on the pool's sessions and arm them (searched, IDLE). */
static void start(struct fixture *fx)
{
	char *err = NULL;

	assert_int_equal(keeper_test_start(fx->k, &fx->cfg, fx->pending, fx->npending, fx->delays,
	                                   fx->ndelays, T0 + 1e6, &err),
	                 0);
	keeper_test_arm(fx->k);
}

static struct keeper_counts counts(struct fixture *fx)
{
	struct keeper_counts c;

	keeper_counts(fx->k, &c);
	return c;
}

/* ---- found between rounds --------------------------------------------- */

/* An EXISTS on the INBOX session of a seed with a pending probe: searched,
 * proved, cleaned up, recorded as a late arrival at once; a later step
 * records nothing more. */
static void test_exists_found_cleaned_recorded_once(void **state)
{
	struct fixture *fx = *state;
	struct round_late *l = NULL;
	int finds;

	pool_session(fx, 0);
	pool_session(fx, 1);
	start(fx);
	assert_int_equal(W.calls[OP_IDLE_START], 2);   /* both sessions in IDLE */
	assert_int_equal(keeper_drain(fx->k, &l), 0);
	finds = W.calls[OP_FIND];

	deliver(0, "tok-pending", 1);
	keeper_test_step(fx->k);
	assert_int_equal(W.calls[OP_IDLE_DONE], 1);
	assert_int_equal(W.calls[OP_FIND], finds + 1);   /* INBOX only: the EXISTS was there */
	assert_int_equal(W.ncleaned, 1);
	assert_int_equal(W.cleaned[0], 100);
	assert_int_equal(W.cleaned_folder[0], 0);
	assert_int_equal(W.f[0].n, 0);
	assert_int_equal(W.calls[OP_IDLE_START], 3);     /* IDLE again */

	assert_int_equal(keeper_drain(fx->k, &l), 1);
	assert_int_equal(l[0].seed_index, 0);
	assert_string_equal(l[0].token, "tok-pending");
	assert_string_equal(l[0].folder_kind, "inbox");
	assert_string_equal(l[0].folder, "INBOX");
	assert_string_equal(l[0].cleanup, "deleted");
	assert_int_equal(l[0].counted, 1);
	assert_int_equal(l[0].latency_usable, 1);
	assert_true(l[0].internaldate > 0);
	assert_true(l[0].latency >= l[0].internaldate - l[0].submit_time);
	assert_true(l[0].latency <= l[0].internaldate + 1 - l[0].submit_time);
	free(l);

	/* a second proved copy later: the probe is found, nothing is searched */
	deliver(0, "tok-pending", 1);
	finds = W.calls[OP_FIND];
	keeper_test_step(fx->k);
	assert_int_equal(W.calls[OP_FIND], finds);
	assert_int_equal(keeper_drain(fx->k, &l), 0);
	assert_null(l);
	assert_int_equal(counts(fx).found, 1);

	keeper_stop(fx->k);
	assert_int_equal(pool_size(fx->pool), 2);   /* both back, out of IDLE */
}

/* The spam-folder session: an EXISTS there finds the probe, kind "spam". */
static void test_exists_in_spam_found(void **state)
{
	struct fixture *fx = *state;
	struct round_late *l = NULL;

	pool_session(fx, 0);
	pool_session(fx, 1);
	start(fx);
	deliver(1, "tok-pending", 1);
	keeper_test_step(fx->k);
	assert_int_equal(keeper_drain(fx->k, &l), 1);
	assert_string_equal(l[0].folder_kind, "spam");
	assert_string_equal(l[0].folder, "Junk");
	assert_int_equal(W.cleaned_folder[0], 1);
	free(l);
}

/* A message carrying the pending token but not proved to be our probe
 * (no HMAC, not our From), and a proved probe of another token: searched,
 * never cleaned up, never recorded. */
static void test_unproved_never_touched(void **state)
{
	struct fixture *fx = *state;
	struct round_late *l = NULL;
	int finds;

	pool_session(fx, 0);
	start(fx);
	finds = W.calls[OP_FIND];
	deliver(0, "tok-pending", 0);
	deliver(0, "tok-someone-else", 1);
	keeper_test_step(fx->k);
	assert_true(W.calls[OP_FIND] > finds);    /* the EXISTS was searched */
	assert_int_equal(W.calls[OP_CLEANUP], 0);
	assert_int_equal(W.ncleaned, 0);
	assert_int_equal(W.f[0].n, 2);            /* both still there */
	assert_int_equal(keeper_drain(fx->k, &l), 0);
	assert_int_equal(counts(fx).found, 0);
}

/* A probe that landed before the keeper took the session (after the
 * round's last look) is found when the keeper arms it. */
static void test_found_when_armed(void **state)
{
	struct fixture *fx = *state;
	struct round_late *l = NULL;

	pool_session(fx, 0);
	deliver(1, "tok-pending", 1);   /* one session: the spam folder searched too */
	start(fx);
	assert_int_equal(keeper_drain(fx->k, &l), 1);
	assert_string_equal(l[0].folder_kind, "spam");
	free(l);
}

/* The account's only session (INBOX) armed the spam folder's UIDNEXT 50 at
 * UIDVALIDITY 8; then Junk was deleted and created again (UIDVALIDITY 9,
 * its UIDs restart at 1) and the probe lands there as UID 1, beside a
 * user's message quoting the token. The check searches Junk from UID 50,
 * sees the new UIDVALIDITY at its SELECT and searches the whole folder:
 * found, only the probe cleaned (breakit: a stored UID was searched
 * without comparing UIDVALIDITY, and the probe was never found between
 * rounds). */
static void test_spam_recreated_rebased_at_check(void **state)
{
	struct fixture *fx = *state;
	struct round_late *l = NULL;

	pool_session(fx, 0);
	start(fx);
	assert_int_equal(keeper_drain(fx->k, &l), 0);
	W.f[1].uidvalidity = 9;
	W.f[1].uidnext = 1;
	deliver(1, "tok-pending", 0);   /* UID 1: the user's, quoting the token */
	deliver(1, "tok-pending", 1);   /* UID 2: the probe */
	fake_now = T0 + 31;             /* the check (KEEP_SAFETY_TICK) */
	keeper_test_step(fx->k);
	assert_int_equal(keeper_drain(fx->k, &l), 1);
	assert_string_equal(l[0].folder_kind, "spam");
	assert_string_equal(l[0].token, "tok-pending");
	free(l);
	assert_int_equal(W.ncleaned, 1);
	assert_int_equal(W.cleaned[0], 2);
	assert_int_equal(W.cleaned_folder[0], 1);
	keeper_stop(fx->k);
}

/* The same on the INBOX session's own folder: INBOX armed at UIDNEXT 100,
 * UIDVALIDITY 7, then 8 with the probe at UID 1 (a server that rebuilt
 * its index): the check's search of INBOX is re-based and finds it. */
static void test_inbox_uidvalidity_changed_rebased(void **state)
{
	struct fixture *fx = *state;
	struct round_late *l = NULL;

	pool_session(fx, 0);
	pool_session(fx, 1);
	start(fx);
	W.f[0].uidvalidity = 8;
	W.f[0].uidnext = 1;   /* below IDLE's start: no EXISTS from the fake */
	fake_now = T0 + 31;
	deliver(0, "tok-pending", 1);
	keeper_test_step(fx->k);
	assert_int_equal(keeper_drain(fx->k, &l), 1);
	assert_string_equal(l[0].folder_kind, "inbox");
	free(l);
	assert_int_equal(W.cleaned[0], 1);
	keeper_stop(fx->k);
}

/* ---- drops and reconnects ------------------------------------------------ */

/* The backoff: attempt n waits 2^n s stretched by 0..25 %, never more than
 * 5 min; the stretch is random (not the same every time). */
static void test_backoff_schedule(void **state)
{
	struct fixture *fx = *state;

	for (int n = 0; n <= 20; n++) {
		double base = ldexp(1.0, n), lo = base > 300 ? 300 : base;
		double hi = base * 1.25 > 300 ? 300 : base * 1.25;
		double mn = 1e9, mx = 0;

		for (int i = 0; i < 2000; i++) {
			double d = keeper_test_backoff(fx->k, n);
			assert_true(d >= lo);
			assert_true(d <= hi);
			mn = d < mn ? d : mn;
			mx = d > mx ? d : mx;
		}
		if (hi > lo) {   /* jitter spreads over most of its range */
			assert_true(mn < lo + (hi - lo) * 0.1);
			assert_true(mx > hi - (hi - lo) * 0.1);
		} else {
			assert_true(mn == 300 && mx == 300);   /* capped at 5 min */
		}
	}
}

/* A BYE while idling: the session goes down, the first attempt waits
 * 1..1.25 s; failed attempts double the wait; nothing is tried before it
 * is due; the session comes back up, armed and idling. */
static void test_bye_backs_off(void **state)
{
	struct fixture *fx = *state;
	struct keeper_test_sess ks;
	double wait;
	int o;

	pool_session(fx, 0);
	start(fx);
	o = W.calls[OP_OPEN];   /* the round's login */
	W.kicks = 1;
	W.kick_text[0] = "Disconnected for inactivity.";
	keeper_test_step(fx->k);
	assert_int_equal(keeper_test_session(fx->k, "INBOX", &ks), 0);
	assert_int_equal(ks.up, 0);
	assert_int_equal(ks.relogin, 0);
	assert_true(ks.next_try - fake_now >= 1.0 && ks.next_try - fake_now <= 1.25);
	assert_int_equal(counts(fx).drops, 1);

	/* not due yet: no login */
	fake_now = ks.next_try - 0.01;
	keeper_test_step(fx->k);
	assert_int_equal(W.calls[OP_OPEN], o);

	/* two refused attempts: 2..2.5 s, then 4..5 s */
	add_fault(OP_OPEN, o + 1, IMAP_ECONNECT, "connection refused");
	add_fault(OP_OPEN, o + 2, IMAP_ECONNECT, "connection refused");
	for (int a = 1; a <= 2; a++) {
		fake_now = ks.next_try;
		keeper_test_step(fx->k);
		assert_int_equal(W.calls[OP_OPEN], o + a);
		assert_int_equal(keeper_test_session(fx->k, "INBOX", &ks), 0);
		assert_int_equal(ks.up, 0);
		assert_int_equal(ks.attempts, a);
		wait = ks.next_try - fake_now;
		assert_true(wait >= ldexp(1.0, a) && wait <= ldexp(1.0, a) * 1.25);
	}
	fake_now = ks.next_try;
	keeper_test_step(fx->k);
	assert_int_equal(keeper_test_session(fx->k, "INBOX", &ks), 0);
	assert_int_equal(ks.up, 1);
	assert_int_equal(ks.attempts, 0);
	assert_int_equal(counts(fx).reconnects, 1);
	assert_int_equal(W.calls[OP_IDLE_START], 2);   /* armed again */
}

/* Exchange Online's "* BYE Session invalidated - AccessTokenExpired":
 * a new login at once, no backoff. */
static void test_access_token_expired_relogin_at_once(void **state)
{
	struct fixture *fx = *state;
	struct keeper_test_sess ks;

	pool_session(fx, 0);
	start(fx);
	W.kicks = 1;
	W.kick_text[0] = "Session invalidated - AccessTokenExpired";
	keeper_test_step(fx->k);
	assert_int_equal(keeper_test_session(fx->k, "INBOX", &ks), 0);
	assert_int_equal(ks.up, 0);
	assert_int_equal(ks.relogin, 1);
	assert_true(ks.next_try <= fake_now);
	keeper_test_step(fx->k);   /* the clock has not moved */
	assert_int_equal(W.calls[OP_OPEN], 2);   /* the round's login and this one */
	assert_int_equal(keeper_test_session(fx->k, "INBOX", &ks), 0);
	assert_int_equal(ks.up, 1);
	assert_int_equal(counts(fx).reconnects, 1);
}

/* ---- renewal ------------------------------------------------------------- */

/* No pending probes (no checks): IDLE is left alone until the period is
 * over, then renewed: DONE, IDLE again. */
static void test_renewal_after_period(void **state)
{
	struct fixture *fx = *state;

	fx->npending = 0;
	pool_session(fx, 0);
	start(fx);
	assert_int_equal(W.calls[OP_IDLE_START], 1);
	fake_now = T0 + RENEW - 1;
	keeper_test_step(fx->k);
	assert_int_equal(W.calls[OP_IDLE_DONE], 0);
	assert_int_equal(counts(fx).renewals, 0);
	fake_now = T0 + RENEW;
	keeper_test_step(fx->k);
	assert_int_equal(W.calls[OP_IDLE_DONE], 1);
	assert_int_equal(W.calls[OP_IDLE_START], 2);
	assert_int_equal(counts(fx).renewals, 1);
	assert_int_equal(W.calls[OP_NOOP], 0);
	/* the next one a whole period after this one */
	fake_now = T0 + 2 * RENEW - 1;
	keeper_test_step(fx->k);
	assert_int_equal(counts(fx).renewals, 1);
	fake_now = T0 + 2 * RENEW;
	keeper_test_step(fx->k);
	assert_int_equal(counts(fx).renewals, 2);
}

/* A server without IDLE: the session is kept alive by a NOOP each period. */
static void test_renewal_without_idle_noop(void **state)
{
	struct fixture *fx = *state;

	fx->npending = 0;
	W.idle_cap = 0;
	pool_session(fx, 0);
	start(fx);
	assert_int_equal(W.calls[OP_IDLE_START], 0);
	fake_now = T0 + RENEW;
	keeper_test_step(fx->k);
	assert_int_equal(W.calls[OP_NOOP], 1);
	assert_int_equal(counts(fx).renewals, 1);
}

/* ---- latency of a late arrival (SPEC "Latency") --------------------------- */

/* Equal within 0.1 ms (Unix seconds near 1.7e9 keep about 0.2 us in a
 * double; cmocka's assert_float_equal works in float, 128 s there). */
#define assert_near(a, b) assert_true(fabs((a) - (b)) < 1e-4)

/* Deliver the pending probe to INBOX with INTERNALDATE id. */
static void deliver_pending_at(double id)
{
	deliver(0, "tok-pending", 1);
	W.f[0].m[W.f[0].n - 1].internaldate = id;
}

/* Found by one step of the keeper: the late arrival's latency plus its
 * submit time, i.e. the arrival placed. */
static double arrival_found(struct fixture *fx)
{
	struct round_late *l = NULL;
	double a;

	keeper_test_step(fx->k);
	assert_int_equal(keeper_drain(fx->k, &l), 1);
	assert_int_equal(l[0].latency_usable, 1);
	a = l[0].latency + l[0].submit_time;
	free(l);
	return a;
}

/* A server learned with delay d (one sample in its window). */
static void learned(struct fixture *fx, double d)
{
	xstrlcpy(fx->delays[0].server, "imap.example.net:993", sizeof fx->delays[0].server);
	delaywin_init(&fx->delays[0].win);
	delaywin_add(&fx->delays[0].win, d);
	fx->delays[0].delay = d;
	fx->delays[0].samples = 1;
	fx->ndelays = 1;
}

/* Nothing learned: an announced probe seen 10 s after its INTERNALDATE
 * arrived in [INTERNALDATE, INTERNALDATE + 1 s]: its middle. */
static void test_late_latency_middle(void **state)
{
	struct fixture *fx = *state;
	double id = floor(now_wall()) - 10;

	pool_session(fx, 0);
	start(fx);
	deliver_pending_at(id);
	assert_near(arrival_found(fx) - id, 0.5);
}

/* A learned delay d: the arrival is seen - d, inside the interval. */
static void test_late_latency_learned_delay(void **state)
{
	struct fixture *fx = *state;
	double id = floor(now_wall()) - 5, before, after, d, a;

	before = now_wall();
	d = before - id - 0.8;   /* seen - d at 0.8 s into the interval, not its middle */
	learned(fx, d);
	pool_session(fx, 0);
	start(fx);
	deliver_pending_at(id);
	before = now_wall();
	a = arrival_found(fx);
	after = now_wall();
	assert_true(a >= before - d - 1e-4);
	assert_true(a <= after - d + 1e-4);
	assert_true(a >= id && a <= id + 1);
	assert_true(a - id > 0.75);   /* not the middle: the delay placed it */
}

/* seen is when the EXISTS's bytes reached the host (the driver's rx_time,
 * here 3 s before the keeper read them), not when the keeper woke up: with
 * a learned delay d, the arrival is that moment - d. */
static void test_late_latency_receive_time(void **state)
{
	struct fixture *fx = *state;
	double id = floor(now_wall()) - 5, d, a;

	W.rx_early = 3.0;
	d = now_wall() - W.rx_early - id - 0.3;   /* arrival 0.3 s into the interval */
	learned(fx, d);
	pool_session(fx, 0);
	start(fx);
	deliver_pending_at(id);
	a = arrival_found(fx);
	assert_near(a, W.read_at - W.rx_early - d);
	assert_true(a >= id && a <= id + 1);
	assert_true(a - id < 0.5);   /* the wall clock at the read would have clamped it to 1 */
}

/* A learned delay that would put the arrival after the interval (0 s,
 * seen 10 s after INTERNALDATE): its end, INTERNALDATE + 1 s. */
static void test_late_latency_delay_clamped(void **state)
{
	struct fixture *fx = *state;
	double id = floor(now_wall()) - 10;

	learned(fx, 0);
	pool_session(fx, 0);
	start(fx);
	deliver_pending_at(id);
	assert_near(arrival_found(fx) - id, 1.0);
}

/* A probe the server did not announce (found when the keeper armed the
 * session): the middle, whatever was learned. */
static void test_late_latency_unannounced_middle(void **state)
{
	struct fixture *fx = *state;
	struct round_late *l = NULL;
	double id = floor(now_wall()) - 10;

	learned(fx, 0);
	pool_session(fx, 0);
	deliver_pending_at(id);
	start(fx);
	assert_int_equal(keeper_drain(fx->k, &l), 1);
	assert_near(l[0].latency + l[0].submit_time - id, 0.5);
	free(l);
}

/* ---- NOTIFY (RFC 5465): the spam folder watched beside INBOX ------------- */

/* The round leaves INBOX selected with NOTIFY SET for Junk. */
static void pool_notify_session(struct fixture *fx)
{
	struct imap_session *s = NULL;
	unsigned long uidnext;
	char *err = NULL;

	W.notify_cap = 1;
	assert_int_equal(fake.open(NULL, &s, &err), IMAP_OK);
	assert_int_equal(fake.select_uidnext(s, "INBOX", &uidnext, &err), IMAP_OK);
	assert_int_equal(fake.notify_set(s, "Junk", W.f[1].uidnext, &err), IMAP_OK);
	pool_put(fx->pool, &fx->seed.imap, s);
}

static void found_in_spam(struct fixture *fx)
{
	struct round_late *l = NULL;

	assert_int_equal(keeper_drain(fx->k, &l), 1);
	assert_string_equal(l[0].folder_kind, "spam");
	assert_string_equal(l[0].token, "tok-pending");
	free(l);
	assert_int_equal(W.ncleaned, 1);
	assert_int_equal(W.cleaned_folder[0], 1);
}

/* A probe filed into Junk after the round's last look, before the keeper's
 * IDLE (no STATUS will announce it): found when the keeper arms the
 * session. */
static void test_notify_spam_before_idle_found_when_armed(void **state)
{
	struct fixture *fx = *state;

	pool_notify_session(fx);
	deliver(1, "tok-pending", 1);
	start(fx);
	found_in_spam(fx);
	assert_int_equal(W.calls[OP_IDLE_START], 1);   /* then IDLE on INBOX */
}

/* Announced by NOTIFY's STATUS: found at once. */
static void test_notify_status_found(void **state)
{
	struct fixture *fx = *state;

	pool_notify_session(fx);
	start(fx);
	deliver(1, "tok-pending", 1);
	keeper_test_step(fx->k);
	found_in_spam(fx);
}

/* A STATUS that never reaches IDLE (read inside another command's reply):
 * the probe is found by the next check, max(poll_interval, 30 s) later,
 * not at the next round. */
static void test_notify_status_lost_found_at_check(void **state)
{
	struct fixture *fx = *state;
	struct round_late *l = NULL;

	pool_notify_session(fx);
	start(fx);
	W.status_lost = 1;
	deliver(1, "tok-pending", 1);
	keeper_test_step(fx->k);
	assert_int_equal(keeper_drain(fx->k, &l), 0);
	fake_now = T0 + 30;
	keeper_test_step(fx->k);
	found_in_spam(fx);
}

/* A reconnect's arming with pending probes: NOTIFY SET STATUS first. Its
 * reply names Junk's UIDNEXT (status 1, as Dovecot 2.3.19's, RFC 5465 3)
 * or not (0). Returns the STATUS commands that arming sent. */
static int statuses_at_reconnect(struct fixture *fx, int status)
{
	struct keeper_test_sess ts;
	int before;

	pool_notify_session(fx);
	start(fx);
	W.notify_status = status;
	W.kicks = 1;
	W.kick_text[0] = "Session invalidated - AccessTokenExpired";
	keeper_test_step(fx->k);   /* the BYE: dropped */
	before = W.calls[OP_STATUS];
	keeper_test_step(fx->k);   /* the new login, at once */
	assert_int_equal(keeper_test_session(fx->k, "INBOX", &ts), 0);
	assert_int_equal(ts.up, 1);
	return W.calls[OP_STATUS] - before;
}

/* The NOTIFY SET STATUS reply gave Junk's UIDNEXT: no STATUS command
 * after it (one command fewer); the later checks search Junk from that
 * UIDNEXT: a probe filed there whose announcement is lost is found. */
static void test_notify_reply_uidnext_saves_status(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(statuses_at_reconnect(fx, 1), 0);
	W.status_lost = 1;
	deliver(1, "tok-pending", 1);
	fake_now = T0 + 31;
	keeper_test_step(fx->k);
	found_in_spam(fx);
}

/* A reply without Junk's STATUS: the STATUS command asks, as before. */
static void test_notify_reply_without_uidnext_status_asked(void **state)
{
	assert_int_equal(statuses_at_reconnect(*state, 0), 1);
}

/* After a reconnect: NOTIFY SET before the searches (Junk, then INBOX),
 * then IDLE; a probe filed into Junk while the session was down is found. */
static void test_notify_reconnect_sets_then_searches(void **state)
{
	struct fixture *fx = *state;

	pool_notify_session(fx);
	start(fx);
	W.kicks = 1;
	W.kick_text[0] = "Session invalidated - AccessTokenExpired";
	keeper_test_step(fx->k);
	deliver(1, "tok-pending", 1);
	memset(W.trail, 0, sizeof W.trail);
	keeper_test_step(fx->k);   /* the new login, at once */
	/* NOTIFY SET, Junk searched (the probe found: INBOX has nothing left to
	 * look for), IDLE */
	assert_string_equal(W.trail, "NS+");
	found_in_spam(fx);
}

/* Kick the INBOX session with a BYE saying text; returns the wait before
 * its next attempt (test clock seconds). */
static double kick(struct fixture *fx, const char *text)
{
	struct keeper_test_sess ks;

	W.kicks = 1;
	W.kick_text[0] = text;
	keeper_test_step(fx->k);
	assert_int_equal(keeper_test_session(fx->k, "INBOX", &ks), 0);
	assert_int_equal(ks.up, 0);
	return ks.next_try - fake_now;
}

/* Bring the INBOX session back up at its next attempt. */
static void back_up(struct fixture *fx)
{
	struct keeper_test_sess ks;

	assert_int_equal(keeper_test_session(fx->k, "INBOX", &ks), 0);
	if (ks.next_try > fake_now)
		fake_now = ks.next_try;
	keeper_test_step(fx->k);
	assert_int_equal(keeper_test_session(fx->k, "INBOX", &ks), 0);
	assert_int_equal(ks.up, 1);
}

/* A session lost again soon (under 60 s) after its reconnect continues the
 * backoff instead of starting at 1 s; one that lasted starts at 1 s. A new
 * login asked for within 2 s of the last waits too. */
static void test_flapping_session_continues_backoff(void **state)
{
	struct fixture *fx = *state;
	double w;

	pool_session(fx, 0);
	start(fx);
	w = kick(fx, "Disconnected for inactivity.");
	assert_true(w >= 1.0 && w <= 1.25);
	back_up(fx);
	w = kick(fx, "Disconnected for inactivity.");   /* at once after the reconnect */
	assert_true(w >= 2.0 && w <= 2.5);
	back_up(fx);
	w = kick(fx, "Disconnected for inactivity.");
	assert_true(w >= 4.0 && w <= 5.0);
	back_up(fx);
	fake_now += 61;                                  /* it lasted */
	w = kick(fx, "Disconnected for inactivity.");
	assert_true(w >= 1.0 && w <= 1.25);
	back_up(fx);
	w = kick(fx, "Session invalidated - AccessTokenExpired");   /* 0 s after a login */
	assert_true(w >= 1.0);
	back_up(fx);
	fake_now += 3;
	w = kick(fx, "Session invalidated - AccessTokenExpired");   /* a token's lifetime later */
	assert_true(w <= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_exists_found_cleaned_recorded_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exists_in_spam_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unproved_never_touched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_found_when_armed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backoff_schedule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bye_backs_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_access_token_expired_relogin_at_once, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_flapping_session_continues_backoff, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_renewal_after_period, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renewal_without_idle_noop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_latency_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_latency_learned_delay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_latency_delay_clamped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_latency_receive_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_latency_unannounced_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_spam_before_idle_found_when_armed, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_notify_status_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_reply_uidnext_saves_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_reply_without_uidnext_status_asked, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_spam_recreated_rebased_at_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inbox_uidvalidity_changed_rebased, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_status_lost_found_at_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_reconnect_sets_then_searches, setup,
		                                teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
