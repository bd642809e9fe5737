/*
 * bench_state.c - how fast the state store records rounds and computes
 * totals. Prints figures; asserts nothing about time.
 *
 * Usage: bench_state [ROUNDS [PROBES_PER_ROUND]]   (default 10000 x 10)
 * The store lives in a fresh mkdtemp(3) directory under $TMPDIR (or /tmp)
 * and is removed at the end.
 *
 * Rounds are 5 minutes apart, so 10,000 rounds span about 35 days and the
 * 24 h window holds 288 rounds.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/model.h"
#include "common/util.h"
#include "scheduler/state.h"

#define NPROVIDERS 5
static const char *const providers[NPROVIDERS] = { "gmail", "outlook", "yahoo", "gmx", "icloud" };

static unsigned int rng = 12345;
static unsigned int lcg(void)
{
	rng = rng * 1103515245u + 12345u;
	return (rng >> 16) & 0x7fff;
}

static void die(const char *what, char *err)
{
	fprintf(stderr, "bench_state: %s: %s\n", what, err ? err : "?");
	free(err);
	exit(1);
}

static void remove_store(const char *dir, const char *db)
{
	const char *suffix[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s%s", db, suffix[i]);
		unlink(p);
		free(p);
	}
	rmdir(dir);
}

/* Probe i of round k (started at Unix seconds started): 85 % inbox, 8 %
 * spam, 4 % missing, 1 % each deferred, rejected and error. */
static void fake_probe(struct probe_result *p, long k, long i, double started)
{
	unsigned int roll = lcg() % 100;

	memset(p, 0, sizeof(*p));
	snprintf(p->token, sizeof(p->token), "%08lx%08lx%016x", k, i, lcg() * 2654435761u);
	p->submit_time = started + 1 + (double)i * 0.1;
	p->attempts = 1;
	p->reply.code = 250;
	xstrlcpy(p->reply.enhanced, "2.0.0", sizeof(p->reply.enhanced));
	xstrlcpy(p->reply.text, "Ok: queued as 4Xb2Lq0ZtKz9", sizeof(p->reply.text));
	xstrlcpy(p->reply.queue_id, "4Xb2Lq0ZtKz9", sizeof(p->reply.queue_id));
	if (roll < 85) {
		p->outcome = OUTCOME_INBOX;
		xstrlcpy(p->folder, "INBOX", sizeof(p->folder));
	} else if (roll < 93) {
		p->outcome = OUTCOME_SPAM;
		xstrlcpy(p->folder, "Junk", sizeof(p->folder));
	} else if (roll < 97) {
		p->outcome = OUTCOME_MISSING;
	} else if (roll < 98) {
		p->outcome = OUTCOME_DEFERRED;
	} else if (roll < 99) {
		p->outcome = OUTCOME_REJECTED;
		p->submit_time = 0;
		p->reply.code = 550;
		xstrlcpy(p->reply.enhanced, "5.7.1", sizeof(p->reply.enhanced));
	} else {
		p->outcome = OUTCOME_ERROR;
		p->submit_time = 0;
		p->reply.code = 0;
	}
	if (p->outcome == OUTCOME_INBOX || p->outcome == OUTCOME_SPAM) {
		p->latency = 0.5 + (double)(lcg() % 6000) / 10.0;
		p->have_latency = 1;
		p->internaldate = p->submit_time + p->latency;
		p->found_time = p->internaldate + 2;
	}
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 10000;
	long per_round = argc > 2 ? strtol(argv[2], NULL, 10) : 10;
	const char *tmp = getenv("TMPDIR");
	char *dir, *db;
	struct state *st = NULL;
	struct state_totals *t = NULL;
	struct probe_result *r;
	const char **seeds, **provs;
	char **seed_names;
	char *err = NULL;
	double t0, t1, base, now;
	struct rusage ru;
	struct stat sb;
	unsigned long long samples = 0, probes = 0;
	size_t npending = 0;
	struct state_pending *pending = NULL;

	if (rounds < 1 || per_round < 1 || per_round > 1000) {
		fprintf(stderr, "usage: bench_state [ROUNDS [PROBES_PER_ROUND (1..1000)]]\n");
		return 2;
	}
	dir = xasprintf("%s/bench_state.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	db = xasprintf("%s/state.db", dir);
	if (state_open(db, &st, &err) != 0)
		die("open", err);

	r = xcalloc((size_t)per_round, sizeof(*r));
	seeds = xcalloc((size_t)per_round, sizeof(*seeds));
	provs = xcalloc((size_t)per_round, sizeof(*provs));
	seed_names = xcalloc((size_t)per_round, sizeof(*seed_names));
	for (long i = 0; i < per_round; i++) {
		provs[i] = providers[i % NPROVIDERS];
		seed_names[i] = xasprintf("seed%ld@%s.example", i, provs[i]);
		seeds[i] = seed_names[i];
	}

	base = 1700000000.0;
	t0 = now_mono();
	for (long k = 0; k < rounds; k++) {
		double started = base + (double)k * 300;

		for (long i = 0; i < per_round; i++)
			fake_probe(&r[i], k, i, started);
		if (state_record_round(st, "bench", started, started + 120, r, seeds, provs,
		                       (size_t)per_round, &err) != 0)
			die("record_round", err);
		probes += (unsigned long long)per_round;
	}
	t1 = now_mono();
	printf("record_round: %ld rounds x %ld probes = %llu rows in %.3f s: %.0f rows/s, %.0f rounds/s\n",
	       rounds, per_round, probes, t1 - t0, (double)probes / (t1 - t0), (double)rounds / (t1 - t0));

	now = base + (double)rounds * 300;
	t0 = now_mono();
	if (state_totals(st, "bench", providers, NPROVIDERS, now, 86400, &t, &err) != 0)
		die("totals", err);
	t1 = now_mono();
	for (size_t i = 0; i < NPROVIDERS; i++)
		samples += t[i].window_samples;
	printf("state_totals (%d providers, 24 h window, %llu window samples): %.3f ms\n",
	       NPROVIDERS, samples, (t1 - t0) * 1000);
	state_totals_free(t, NPROVIDERS);

	t0 = now_mono();
	if (state_pending(st, "bench", seeds[0], now - 7 * 86400, &pending, &npending, &err) != 0)
		die("pending", err);
	t1 = now_mono();
	printf("state_pending (one seed, 7 days, %zu pending): %.3f ms\n", npending, (t1 - t0) * 1000);
	free(pending);

	if (stat(db, &sb) == 0)
		printf("store size: %.1f MiB\n", (double)sb.st_size / (1024.0 * 1024.0));

	t0 = now_mono();
	if (state_prune(st, 7, now, &err) != 0)
		die("prune", err);
	t1 = now_mono();
	printf("state_prune (keep 7 days): %.3f ms\n", (t1 - t0) * 1000);

	state_close(st);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		printf("peak RSS: %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);

	for (long i = 0; i < per_round; i++)
		free(seed_names[i]);
	free(seed_names);
	free(seeds);
	free(provs);
	free(r);
	remove_store(dir, db);
	free(db);
	free(dir);
	return 0;
}
