/* fdbudget.c - the file descriptors a round needs (see fdbudget.h). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/util.h"
#include "scheduler/fdbudget.h"
#include "seeds/config.h"

/* Per relay connection: its socket, libcurl's threaded resolver's socket
 * pair while the name is looked up, and the multi handle's wake-up pair. */
#define FDS_PER_SMTP 5
/* The state store: database, -wal, -shm, a rollback journal. */
#define FDS_STORE 4
/* The run lock; a report's temporary file and its directory (fsync). */
#define FDS_FILES 3
/* An OAuth 2.0 token fetch (a libcurl transfer, a token command's pipes). */
#define FDS_OAUTH 8
/* The daemon: wake-up pipe, listener (IPv4 and IPv6), libmicrohttpd's
 * epoll and inter-thread pipe, and a few scrapes at once. */
#define FDS_DAEMON 24

/* Descriptors open now: the entries of /proc/self/fd but the one reading
 * it, else every descriptor below the soft limit (at most 65,536) that
 * fcntl knows. */
static long count_open(long soft)
{
	DIR *d = opendir("/proc/self/fd");
	long n = 0;

	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		return n > 0 ? n - 1 : 0;
	}
	if (soft < 0 || soft > 65536)
		soft = 65536;
	for (long fd = 0; fd < soft; fd++)
		if (fcntl((int)fd, F_GETFD) != -1 || errno != EBADF)
			n++;
	return n;
}

static int by_host(const void *a, const void *b)
{
	const struct imap_conf *x = *(const struct imap_conf *const *)a;
	const struct imap_conf *y = *(const struct imap_conf *const *)b;
	int c = strcmp(x->host ? x->host : "", y->host ? y->host : "");

	return c != 0 ? c : (x->port > y->port) - (x->port < y->port);
}

/* IMAP sessions of one host with n seeds: two each (INBOX and the spam
 * folder) when the limits let every seed have two, as scheduler/watch.c
 * decides; else one each, at most per_host (the rest take turns). */
static long host_sessions(const struct config *cfg, long n)
{
	if (cfg->limits.per_account >= 2 && 2 * n <= cfg->limits.per_host)
		return 2 * n;
	return n < cfg->limits.per_host ? n : cfg->limits.per_host;
}

/* The seeds' IMAP sessions, host by host (sorted: 40,000 seeds stay fast). */
static long imap_sessions(const struct config *cfg)
{
	const struct imap_conf **v;
	long total = 0;
	size_t i = 0;

	if (cfg->nseeds == 0)
		return 0;
	v = xcalloc(cfg->nseeds, sizeof *v);
	for (size_t k = 0; k < cfg->nseeds; k++)
		v[k] = &cfg->seeds[k].imap;
	qsort(v, cfg->nseeds, sizeof *v, by_host);
	while (i < cfg->nseeds) {
		size_t j = i + 1;
		while (j < cfg->nseeds && by_host(&v[i], &v[j]) == 0)
			j++;
		total += host_sessions(cfg, (long)(j - i));
		i = j;
	}
	free(v);
	return total;
}

static int uses_oauth2(const struct config *cfg)
{
	if (cfg->relay.oauth2 != NULL || (cfg->has_bounce && cfg->bounce.oauth2 != NULL))
		return 1;
	for (size_t i = 0; i < cfg->nseeds; i++)
		if (cfg->seeds[i].imap.oauth2 != NULL)
			return 1;
	return 0;
}

static long limit_value(rlim_t v)
{
	if (v == RLIM_INFINITY || v > (rlim_t)(1L << 30))
		return -1;
	return (long)v;
}

void fd_budget_compute(const struct config *cfg, int daemon, struct fd_budget *b)
{
	struct rlimit rl;

	memset(b, 0, sizeof *b);
	b->soft = b->hard = -1;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		b->soft = limit_value(rl.rlim_cur);
		b->hard = limit_value(rl.rlim_max);
	}
	b->imap = imap_sessions(cfg) + (cfg->has_bounce ? 1 : 0);
	b->smtp = cfg->relay.connections * FDS_PER_SMTP;
	b->files = FDS_FILES + (cfg->state.path != NULL ? FDS_STORE : 0) +
	           (uses_oauth2(cfg) ? FDS_OAUTH : 0) + (daemon ? FDS_DAEMON : 0);
	b->open_now = count_open(b->soft);
	/* Sessions being opened look the name up (glibc reads /etc/hosts,
	 * or a resolver socket): a few at a time, more when many connect. */
	b->reserve = 8 + b->imap / 16;
	b->need = b->imap + b->smtp + b->files + b->open_now + b->reserve;
}

int fd_budget_ensure(const struct config *cfg, int daemon, struct fd_budget *b, char **errstr)
{
	fd_budget_compute(cfg, daemon, b);
	if (b->soft < 0 || b->need <= b->soft)
		return 0;
	if (b->hard < 0 || b->hard > b->soft) {
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
				b->soft = limit_value(rl.rlim_cur);
		}
	}
	if (b->soft < 0 || b->need <= b->soft)
		return 0;
	*errstr = xasprintf("%s: a round of %zu seeds needs %ld file descriptors, limit %ld "
	                    "(hard limit %ld): %ld IMAP sessions, %ld for %ld SMTP connections to the relay, "
	                    "%ld for the store, lock, reports%s, %ld open now, %ld for name "
	                    "lookups; raise the limit (ulimit -n, LimitNOFILE= in the unit) or "
	                    "lower imap_limits.per_host (seeds then take turns)",
	                    cfg->file, cfg->nseeds, b->need, b->soft, b->hard, b->imap, b->smtp,
	                    cfg->relay.connections, b->files, daemon ? " and the listener" : "",
	                    b->open_now, b->reserve);
	return -1;
}
