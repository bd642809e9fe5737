/*
 * bench_smtp.c - N probes through prober/smtp.c (smtp_submit, the easy
 * handles it keeps) to a relay, at most CONNS transactions at once, the way
 * a round submits them (issue 9 "Submission that keeps up"). Prints the
 * span, the rate, the connections libcurl opened and the time per
 * transaction. bench/bench_smtp.sh runs it against the loopback world's
 * plain relay next to a minimal client's floor measured in the same run.
 *
 *   bench_smtp URL FROM RCPT_FMT NRCPT N [CONNS [MODE]]
 *
 * RCPT_FMT: the recipients, with one %04d for 1..NRCPT (in turn), e.g.
 * b%04d@yahoo.test; MODE "loop": CONNS threads, each submitting one probe after
 * another (the floor's shape); "round" (default): N threads, each waiting
 * for one of CONNS slots, woken one at a time, as scheduler/round.c does.
 * Asserts nothing (bench/README.md).
 */
#include <config.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "prober/message.h"
#include "prober/smtp.h"
#include "seeds/config.h"

static struct relay_conf relay;
static char rcpt_pre[128];
static const char *rcpt_suf;
static long nrcpt, nprobes, conns;
static atomic_long next_probe, n_ok, n_fail;
static double first_250, last_250;
static double sum_xfer;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long active;

/* One probe: message built (token, HMAC) and submitted, as a round does. */
static void one(long i)
{
	char rcpt[256], token[TOKEN_MAX];
	struct smtp_params sp = { .relay = &relay, .rcpt = rcpt };
	struct smtp_reply reply;
	double submit = 0, t0;
	char *err = NULL, *msg;
	size_t len = 0;
	static const unsigned char key[] = "bench-smtp-secret";
	int rc;

	snprintf(rcpt, sizeof rcpt, "%s%04ld%s", rcpt_pre, i % nrcpt + 1, rcpt_suf);
	if (token_generate(key, sizeof key - 1, rcpt, token, &err) != 0) {
		fprintf(stderr, "token: %s\n", err ? err : "failed");
		exit(1);
	}
	{
		struct message_params mp = { .from = relay.from, .to = rcpt, .token = token,
		                             .now = now_wall() };
		msg = message_build(&mp, &len, &err);
	}
	if (msg == NULL) {
		fprintf(stderr, "message: %s\n", err ? err : "failed");
		exit(1);
	}
	sp.message = msg;
	sp.len = len;
	sp.deadline = now_mono() + 120;
	t0 = now_mono();
	rc = smtp_submit(&sp, &reply, &submit, &err);
	pthread_mutex_lock(&mu);
	sum_xfer += now_mono() - t0;
	if (rc == SMTP_OK) {
		if (first_250 == 0 || submit < first_250)
			first_250 = submit;
		if (submit > last_250)
			last_250 = submit;
	}
	pthread_mutex_unlock(&mu);
	if (rc == SMTP_OK)
		atomic_fetch_add(&n_ok, 1);
	else {
		atomic_fetch_add(&n_fail, 1);
		fprintf(stderr, "probe %ld: %s: %s\n", i, smtp_err_name(rc), err ? err : "");
	}
	free(err);
	free(msg);
}

static void *loop_main(void *arg)
{
	long i;

	(void)arg;
	while ((i = atomic_fetch_add(&next_probe, 1)) < nprobes)
		one(i);
	return NULL;
}

/* scheduler/round.c's smtp_slot_acquire/release: a counter, one waiter woken per release */
static void *round_main(void *arg)
{
	long i = (long)(intptr_t)arg;

	pthread_mutex_lock(&mu);
	while (active >= conns)
		pthread_cond_wait(&cv, &mu);
	active++;
	pthread_mutex_unlock(&mu);
	one(i);
	pthread_mutex_lock(&mu);
	active--;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mode;
	long nthreads;
	pthread_t *th;
	double t0, t1;

	if (argc < 6) {
		fprintf(stderr, "usage: %s URL FROM RCPT_FMT NRCPT N [CONNS [loop|round]]\n", argv[0]);
		return 2;
	}
	relay.url = argv[1];
	relay.from = argv[2];
	relay.tls = TLS_NONE;
	relay.connect_timeout = 10;
	relay.timeout = 30;
	rcpt_suf = strstr(argv[3], "%04d");
	if (rcpt_suf == NULL || (size_t)(rcpt_suf - argv[3]) >= sizeof rcpt_pre) {
		fprintf(stderr, "bench_smtp: RCPT_FMT needs one %%04d\n");
		return 2;
	}
	memcpy(rcpt_pre, argv[3], (size_t)(rcpt_suf - argv[3]));
	rcpt_suf += 4;
	nrcpt = atol(argv[4]);
	nprobes = atol(argv[5]);
	conns = argc > 6 ? atol(argv[6]) : 4;
	mode = argc > 7 ? argv[7] : "round";
	relay.connections = conns;
	if (nrcpt < 1 || nprobes < 1 || conns < 1 || conns > 64 ||
	    (strcmp(mode, "loop") != 0 && strcmp(mode, "round") != 0)) {
		fprintf(stderr, "bench_smtp: bad arguments\n");
		return 2;
	}
	if (smtp_global_init() != 0) {
		fprintf(stderr, "bench_smtp: libcurl init failed\n");
		return 1;
	}
	nthreads = strcmp(mode, "loop") == 0 ? conns : nprobes;
	th = xcalloc((size_t)nthreads, sizeof *th);
	t0 = now_mono();
	for (long i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, strcmp(mode, "loop") == 0 ? loop_main : round_main,
		                   (void *)(intptr_t)i) != 0) {
			fprintf(stderr, "bench_smtp: pthread_create failed at %ld\n", i);
			return 1;
		}
	for (long i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	t1 = now_mono();
	printf("smtp.c %-5s %ld probes over %ld connections: %.3f s (%.0f/s); first to last 250 "
	       "%.3f s; %ld ok, %ld failed; %lu connections opened; %.2f ms per transaction\n",
	       mode, nprobes, conns, t1 - t0, nprobes / (t1 - t0), last_250 - first_250,
	       atomic_load(&n_ok), atomic_load(&n_fail), smtp_connections_opened(),
	       sum_xfer * 1000 / (double)nprobes);
	free(th);
	smtp_global_cleanup();
	return atomic_load(&n_fail) == 0 ? 0 : 1;
}
