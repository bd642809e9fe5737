/*
 * fdbudget.h - the file descriptors a round needs, checked against
 * RLIMIT_NOFILE before the round starts (issue 9 "File descriptors"): a
 * round that would run out of them mid-way says so at start, with the
 * figures, instead of failing seeds one by one with "too many open files".
 */
#ifndef INBOXPROBE_FDBUDGET_H
#define INBOXPROBE_FDBUDGET_H

#include <stddef.h>

struct config;

/* What a round of a configuration needs at most, in descriptors. */
struct fd_budget {
	long imap;       /* IMAP sessions held at once: per IMAP host, two per seed (INBOX and
	                    the spam folder, each in IDLE) when imap_limits allow every seed
	                    two, else one per seed, at most imap_limits.per_host; plus the
	                    bounce mailbox's session */
	long smtp;       /* relay.connections, each a socket plus libcurl's resolver and
	                    wake-up socket pairs */
	long files;      /* the state store (database, WAL, shared memory, journal), the run
	                    lock, a report being written and its directory, OAuth token
	                    fetches, the daemon's listener and HTTP clients */
	long open_now;   /* descriptors open when the budget was computed (stdio included) */
	long reserve;    /* short-lived ones: name lookups (/etc/hosts, resolver sockets) */
	long need;       /* the sum */
	long soft;       /* RLIMIT_NOFILE after fd_budget_ensure(): soft and hard limits */
	long hard;       /* (-1: unlimited) */
};

/*
 * Compute what a round of cfg needs (daemon: 1 for `inboxprobe daemon`, whose
 * listener and HTTP clients count too). Reads the process's open descriptors
 * (/proc/self/fd, else a scan) and RLIMIT_NOFILE; changes nothing.
 */
void fd_budget_compute(const struct config *cfg, int daemon, struct fd_budget *b);

/*
 * Compute the budget and, when the soft RLIMIT_NOFILE is below it, raise
 * the soft limit to the hard one. Returns 0 when the round fits,
 * or -1 with *errstr (heap, the caller frees) when it does not, naming the
 * configuration, the figures ("needs N file descriptors, limit M") and the
 * fixes (ulimit -n, LimitNOFILE=, a lower imap_limits.per_host).
 */
int fd_budget_ensure(const struct config *cfg, int daemon, struct fd_budget *b, char **errstr);

#endif
