/*
 * dispatch.c - handing a round's seeds to worker threads (dispatch.h).
 */
#include <config.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "scheduler/dispatch.h"

struct dispatch {
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* a seed may start, or the round stopped */
	size_t nseeds;
	size_t window;
	long *host_n;             /* per seed: seeds on its host and port */
	unsigned char *turns;     /* per seed: takes turns */
	/* Groups: one per IMAP host and port, seeds in configuration order
	 * at order[start[g] .. start[g + 1]). Guarded by mu below. */
	size_t *order;
	size_t *start;
	size_t *next;             /* per group: order index of the next seed to hand out */
	size_t *arming;           /* per group: handed out, not released */
	unsigned char *open;      /* per group: no window (turns) */
	size_t *group;            /* per seed: its group */
	unsigned char *released;  /* per seed: no longer counts in its group's window */
	size_t ngroups;
	size_t rr;                /* the group after the last one served */
	size_t coming;            /* threads reserved, not in dispatch_take() yet */
	size_t waiting;           /* threads in dispatch_take() */
	int stopped;
};

struct key {
	const char *host, *user;
	int port;
	size_t idx;
};

static int strcmp0(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

/* by host, port, user name, then configuration order */
static int cmp_key(const void *pa, const void *pb)
{
	const struct key *a = pa, *b = pb;
	int c = strcmp0(a->host, b->host);

	if (c == 0)
		c = (a->port > b->port) - (a->port < b->port);
	if (c == 0)
		c = strcmp0(a->user, b->user);
	if (c == 0)
		c = (a->idx > b->idx) - (a->idx < b->idx);
	return c;
}

static int same_host(const struct key *a, const struct key *b)
{
	return a->port == b->port && strcmp0(a->host, b->host) == 0;
}

/* host_n, turns and the groups, from keys sorted by cmp_key (one pass
 * over the runs of equal host, and of equal account within them). */
static void count_runs(struct dispatch *d, const struct config *cfg, const struct key *k)
{
	size_t n = d->nseeds, i = 0;

	while (i < n) {
		size_t j = i, g = d->ngroups++;
		while (j < n && same_host(&k[i], &k[j]))
			j++;
		d->start[g] = i;
		for (size_t a = i; a < j;) {
			size_t b = a;
			while (b < j && strcmp0(k[a].user, k[b].user) == 0)
				b++;
			for (size_t m = a; m < b; m++) {
				size_t s = k[m].idx;
				/* a seed whose host is unset shares it with none */
				d->host_n[s] = k[m].host ? (long)(j - i) : 0;
				d->turns[s] = k[m].host != NULL && ((long)(j - i) > cfg->limits.per_host ||
				                                    (long)(b - a) > cfg->limits.per_account);
				if (d->turns[s])
					d->open[g] = 1;
			}
			a = b;
		}
		i = j;
	}
	d->start[d->ngroups] = n;
}

/* The seeds of each group in configuration order. */
static void fill_groups(struct dispatch *d, const struct key *k)
{
	size_t g = 0;

	for (size_t i = 0; i < d->nseeds; i++) {
		while (i >= d->start[g + 1])
			g++;
		d->group[k[i].idx] = g;
	}
	for (g = 0; g < d->ngroups; g++)
		d->next[g] = d->start[g];
	for (size_t s = 0; s < d->nseeds; s++)   /* seed order within a group */
		d->order[d->next[d->group[s]]++] = s;
	for (g = 0; g < d->ngroups; g++)
		d->next[g] = d->start[g];
}

struct dispatch *dispatch_new(const struct config *cfg, size_t window)
{
	struct dispatch *d = xcalloc(1, sizeof *d);
	size_t n = cfg->nseeds;
	struct key *k = xcalloc(n + 1, sizeof *k);
	pthread_condattr_t ca;

	d->nseeds = n;
	d->window = window > 0 ? window : 1;
	d->host_n = xcalloc(n + 1, sizeof *d->host_n);
	d->turns = xcalloc(n + 1, 1);
	d->order = xcalloc(n + 1, sizeof *d->order);
	d->group = xcalloc(n + 1, sizeof *d->group);
	d->released = xcalloc(n + 1, 1);
	d->start = xcalloc(n + 2, sizeof *d->start);
	d->next = xcalloc(n + 1, sizeof *d->next);
	d->arming = xcalloc(n + 1, sizeof *d->arming);
	d->open = xcalloc(n + 1, 1);
	for (size_t i = 0; i < n; i++) {
		k[i].host = cfg->seeds[i].imap.host;
		k[i].user = cfg->seeds[i].imap.username;
		k[i].port = cfg->seeds[i].imap.port;
		k[i].idx = i;
	}
	qsort(k, n, sizeof *k, cmp_key);
	count_runs(d, cfg, k);
	fill_groups(d, k);
	free(k);
	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* deadlines are now_mono() */
	pthread_cond_init(&d->cv, &ca);
	pthread_condattr_destroy(&ca);
	return d;
}

void dispatch_free(struct dispatch *d)
{
	if (d == NULL)
		return;
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	free(d->host_n);
	free(d->turns);
	free(d->order);
	free(d->group);
	free(d->released);
	free(d->start);
	free(d->next);
	free(d->arming);
	free(d->open);
	free(d);
}

long dispatch_host_seeds(const struct dispatch *d, size_t idx)
{
	return idx < d->nseeds ? d->host_n[idx] : 0;
}

int dispatch_turns(const struct dispatch *d, size_t idx)
{
	return idx < d->nseeds ? d->turns[idx] : 0;
}

/* Group g has a seed that may start now. mu held. */
static int startable(const struct dispatch *d, size_t g, int past)
{
	return d->next[g] < d->start[g + 1] &&
	       (d->open[g] || d->stopped || past || d->arming[g] < d->window);
}

/* The next group, round-robin, with a seed that may start; ngroups none. */
static size_t pick(struct dispatch *d, int past)
{
	for (size_t k = 0; k < d->ngroups; k++) {
		size_t g = (d->rr + k) % d->ngroups;
		if (startable(d, g, past)) {
			d->rr = (g + 1) % d->ngroups;
			return g;
		}
	}
	return d->ngroups;
}

static int any_left(const struct dispatch *d)
{
	for (size_t g = 0; g < d->ngroups; g++)
		if (d->next[g] < d->start[g + 1])
			return 1;
	return 0;
}

/* Seeds that may start now. mu held. */
static size_t startable_n(const struct dispatch *d, int past)
{
	size_t n = 0;

	for (size_t g = 0; g < d->ngroups; g++) {
		size_t left = d->start[g + 1] - d->next[g];
		if (!(d->open[g] || d->stopped || past))
			left = d->arming[g] >= d->window ? 0 :
			       left < d->window - d->arming[g] ? left : d->window - d->arming[g];
		n += left;
	}
	return n;
}

/* 1 (and a thread reserved) when more seeds may start than there are
 * threads free to take them. mu held. */
static int want_thread(struct dispatch *d, int past)
{
	if (startable_n(d, past) <= d->waiting + d->coming)
		return 0;
	d->coming++;
	return 1;
}

void dispatch_reserve(struct dispatch *d)
{
	pthread_mutex_lock(&d->mu);
	d->coming++;
	pthread_mutex_unlock(&d->mu);
}

void dispatch_unreserve(struct dispatch *d)
{
	pthread_mutex_lock(&d->mu);
	if (d->coming > 0)
		d->coming--;
	pthread_mutex_unlock(&d->mu);
}

int dispatch_take(struct dispatch *d, int reserved, double deadline, size_t *idx, int *spawn)
{
	int ret = 0;

	*spawn = 0;
	pthread_mutex_lock(&d->mu);
	if (reserved && d->coming > 0)
		d->coming--;
	d->waiting++;
	for (;;) {
		int past = now_mono() >= deadline;
		size_t g = pick(d, past);
		struct timespec ts;

		if (g < d->ngroups) {
			*idx = d->order[d->next[g]++];
			d->arming[g]++;
			ret = 1;
			break;
		}
		if (!any_left(d))
			break;
		/* until a seed of a host may start (dispatch_release), the
		 * deadline or a stop (dispatch_stop) */
		mono_after(deadline - now_mono(), &ts);
		pthread_cond_timedwait(&d->cv, &d->mu, &ts);
	}
	d->waiting--;
	if (ret)
		*spawn = want_thread(d, now_mono() >= deadline);
	if (!any_left(d))
		pthread_cond_broadcast(&d->cv);   /* the threads waiting end */
	pthread_mutex_unlock(&d->mu);
	return ret;
}

int dispatch_release(struct dispatch *d, size_t idx)
{
	int spawn = 0;

	if (idx >= d->nseeds)
		return 0;
	pthread_mutex_lock(&d->mu);
	if (!d->released[idx]) {
		d->released[idx] = 1;
		if (d->arming[d->group[idx]] > 0)
			d->arming[d->group[idx]]--;
		pthread_cond_signal(&d->cv);   /* a free thread waiting takes it */
		spawn = want_thread(d, 0);
	}
	pthread_mutex_unlock(&d->mu);
	return spawn;
}

void dispatch_stop(struct dispatch *d)
{
	pthread_mutex_lock(&d->mu);
	d->stopped = 1;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}
