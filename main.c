/*
 * main.c - the inboxprobe command line (docs/SPEC.md "Command line"):
 *   inboxprobe run     -c FILE [--textfile PATH] [--openmetrics PATH] [--json PATH]
 *                              [--junit PATH] [--deadline SECONDS] [--format text|nagios] [-v]
 *   inboxprobe check   -c FILE
 *   inboxprobe folders -c FILE
 *   inboxprobe --version | --help
 */
#include <config.h>

#include <ctype.h>
#include <dlfcn.h>
#include <signal.h>
#include <errno.h>
#include <getopt.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <libgen.h>
#include <limits.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "prober/imap.h"
#include "prober/smtp.h"
#include "prober/oauth2.h"
#include "prober/oauth2_authorize.h"
#include "reports/report.h"
#include "reports/webconfig.h"
#include "scheduler/cycle.h"
#include "scheduler/daemon.h"
#include "scheduler/fdbudget.h"
#include "scheduler/round.h"
#include "scheduler/runlock.h"
#include "scheduler/state.h"
#include "seeds/config.h"
#include "seeds/folders.h"

enum out_format { FORMAT_TEXT, FORMAT_NAGIOS };

struct run_opts {
	const char *config;
	const char *textfile, *openmetrics, *json, *junit;
	long deadline;         /* 0: from the file */
	int no_idle;           /* --no-idle: poll even where IDLE is offered */
	enum out_format format;
};

static void usage(FILE *f)
{
	fputs("Usage:\n"
	      "  inboxprobe run     -c FILE [--textfile PATH] [--openmetrics PATH] [--json PATH]\n"
	      "                             [--junit PATH] [--deadline SECONDS] [--format text|nagios]\n"
	      "                             [--no-idle] [-v]\n"
	      "  inboxprobe daemon  -c FILE [-v]   rounds every schedule.interval, /metrics over HTTP\n"
	      "  inboxprobe check   -c FILE   validate the configuration\n"
	      "  inboxprobe folders -c FILE   per seed: log in, list folders, show inbox and spam folder\n"
	      "  inboxprobe oauth2 authorize -c FILE (--seed ADDRESS | --relay | --bounce)\n"
	      "                             [--device | --browser] [--device-url URL]\n"
	      "                             [--authorize-url URL] [--timeout SECONDS]\n"
	      "                             consent once; stores the block's refresh token\n"
	      "  inboxprobe --version | --help\n"
	      "\n"
	      "Exit codes (run): 0 every gate holds, 1 a gate failed, 2 usage or configuration\n"
	      "error (nothing sent), 3 result unknown (a seed could not be measured, a report\n"
	      "could not be written, or another run is active). With --format nagios: 0 OK,\n"
	      "1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n", f);
}

/* Nagios wants exactly one status line on stdout, even for usage errors. */
static int fail_usage(enum out_format fmt, const char *what)
{
	if (fmt == FORMAT_NAGIOS) {
		printf("INBOXPROBE UNKNOWN - %s\n", what);
		return NAGIOS_UNKNOWN;
	}
	return EXIT_USAGE;
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int load_config(const char *path, struct config **cfg)
{
	char *err = NULL;

	if (config_load(path, cfg, &err) != 0) {
		fprintf(stderr, "%s", err ? err : "configuration error\n");
		if (err != NULL && err[0] != '\0' && err[strlen(err) - 1] != '\n')
			fputc('\n', stderr);
		free(err);
		return -1;
	}
	oauth2_set_cache_dir((*cfg)->state.path);   /* OAuth 2.0 access tokens live beside the state */
	return 0;
}

static int seed_host_cmp(const void *a, const void *b)
{
	const struct imap_conf *x = *(const struct imap_conf *const *)a;
	const struct imap_conf *y = *(const struct imap_conf *const *)b;
	int r = strcasecmp(x->host, y->host);
	return r != 0 ? r : (x->port > y->port) - (x->port < y->port);
}

/* Warn when more seeds share an IMAP host than imap_limits.per_host lets
 * watch at once: then no seed keeps a session for its watch, they take
 * turns with short visits (a login each), checked less often. Seeds sorted
 * by host and port: O(n log n). Returns the number of warnings. */
static int warn_host_limits(const struct config *cfg)
{
	const struct imap_conf **v = xcalloc(cfg->nseeds, sizeof(*v));
	int warned = 0;

	for (size_t i = 0; i < cfg->nseeds; i++)
		v[i] = &cfg->seeds[i].imap;
	qsort(v, cfg->nseeds, sizeof(*v), seed_host_cmp);
	for (size_t i = 0, j; i < cfg->nseeds; i = j) {
		for (j = i + 1; j < cfg->nseeds && seed_host_cmp(&v[i], &v[j]) == 0; j++)
			;
		if ((long)(j - i) > cfg->limits.per_host) {
			log_warn("%s: %zu seeds use IMAP host %s:%d but imap_limits.per_host is %ld%s: the "
			         "seeds take turns with short visits (no IDLE), each checked less often; "
			         "raise per_host or split the seeds over configurations",
			         cfg->limits.per_host_at ? cfg->limits.per_host_at : cfg->file, j - i,
			         v[i]->host, v[i]->port, cfg->limits.per_host,
			         cfg->limits.per_host_at ? "" : " (the default)");
			warned++;
		}
	}
	free(v);
	return warned;
}

/* ---- check -------------------------------------------------------------- */

/* One warning when the directory that must hold path (a file the runs
 * write) is missing or not a directory. what: the setting's name. */
static int warn_dir_of(const struct config *cfg, const char *what, const char *path, int is_dir,
                       const char *consequence)
{
	struct stat st;
	char *copy, *dir;
	int warned = 0;

	if (path == NULL)
		return 0;
	copy = xstrdup(path);
	dir = is_dir ? copy : dirname(copy);
	int r = stat(dir, &st), e = errno;
	if (r != 0 || !S_ISDIR(st.st_mode)) {
		log_warn("%s: %s: directory %s: %s; create it (until then %s)", cfg->file, what, dir,
		         r != 0 ? strerror(e) : "not a directory", consequence);
		warned = 1;
	}
	free(copy);
	return warned;
}

/* `check`: the directories the runs write to must exist (warnings: a
 * service's StateDirectory= may create them at its start). */
static int warn_missing_dirs(const struct config *cfg)
{
	static const char fail[] = "run and daemon exit 3 without sending";
	static const char nofile[] = "that report is not written and run exits 3";
	int n = 0;

	n += warn_dir_of(cfg, "state.path", cfg->state.path, 0, fail);
	n += warn_dir_of(cfg, "lock_dir", cfg->lock_dir, 1, fail);
	n += warn_dir_of(cfg, "report.textfile", cfg->report.textfile, 0, nofile);
	n += warn_dir_of(cfg, "report.openmetrics", cfg->report.openmetrics, 0, nofile);
	n += warn_dir_of(cfg, "report.json", cfg->report.json, 0, nofile);
	n += warn_dir_of(cfg, "report.junit", cfg->report.junit, 0, nofile);
	return n;
}

/* `check`: a file with a schedule block is the daemon's; warn when its
 * rounds can outlast the interval (config_schedule_warning). */
static int warn_schedule(const struct config *cfg)
{
	char *w = cfg->schedule.at != NULL ? config_schedule_warning(cfg) : NULL;

	if (w == NULL)
		return 0;
	log_warn("%s", w);
	free(w);
	return 1;
}

/* `check`: what a round needs in file descriptors, against this shell's
 * limit (a service's LimitNOFILE= may differ: a warning, not an error). */
static void check_fd_budget(const struct config *cfg)
{
	struct fd_budget b;
	char *err = NULL;

	if (fd_budget_ensure(cfg, 0, &b, &err) != 0) {
		log_warn("%s", err);
		free(err);
		return;
	}
	if (b.soft >= 0)
		printf("file descriptors: a round needs %ld (%ld IMAP session%s), limit %ld\n", b.need,
		       b.imap, b.imap == 1 ? "" : "s", b.soft);
}

static int cmd_check(const char *path)
{
	struct config *cfg = NULL;

	if (load_config(path, &cfg) != 0)
		return EXIT_USAGE;
	if (cfg->web.config_file != NULL) {   /* the daemon's web configuration file */
		struct web_config *wc = NULL;
		char *err = NULL;
		if (web_config_load(cfg->web.config_file, &wc, &err) != 0) {
			fputs(err, stderr);
			free(err);
			config_free(cfg);
			return EXIT_USAGE;
		}
		web_config_free(wc);
	}
	warn_host_limits(cfg);
	warn_schedule(cfg);
	warn_missing_dirs(cfg);
	check_fd_budget(cfg);
	printf("configuration OK\n");
	config_free(cfg);
	return 0;
}

/* ---- folders ------------------------------------------------------------ */

static void flags_text(unsigned f, char *buf, size_t sz)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ FOLDER_INBOX, "\\Inbox" }, { FOLDER_JUNK, "\\Junk" }, { FOLDER_SPAM_XLIST, "\\Spam" },
		{ FOLDER_TRASH, "\\Trash" }, { FOLDER_ALL, "\\All" }, { FOLDER_SENT, "\\Sent" },
		{ FOLDER_DRAFTS, "\\Drafts" }, { FOLDER_NOSELECT, "\\Noselect" },
	};
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (f & names[i].bit) {
			if (buf[0])
				strncat(buf, " ", sz - strlen(buf) - 1);
			strncat(buf, names[i].name, sz - strlen(buf) - 1);
		}
}

/* Print s left-aligned in a column of width characters (UTF-8 aware: a
 * decoded folder name like "Courrier indésirable" is wider in bytes). */
static void print_padded(const char *s, size_t width)
{
	size_t chars = utf8_chars(s, strlen(s));

	fputs(s, stdout);
	for (; chars < width; chars++)
		fputc(' ', stdout);
}

/* `folders`: a configured spam_folder the server does not list. STATUS
 * (RFC 3501 6.3.10, no SELECT) tells whether it exists at all: a round
 * SELECTs it, so a refused one makes that seed error. 1 when refused. */
static int print_unlisted_spam(struct imap_session *s, const char *folder)
{
	unsigned long uidnext = 0;
	char *err = NULL, *shown = mutf7_decode(folder);   /* the wire name, as a round uses it */
	int bad = imap_status_uidnext(s, folder, &uidnext, &err) != IMAP_OK;
	const char *name = shown ? shown : folder;

	if (bad)
		printf("  spam:  error: %s (config) is not listed by the server and STATUS refused it "
		       "(%s): fix spam_folder, a round would make this seed error\n", name,
		       err ? err : "failed");
	else
		printf("  spam:  %s (config; not listed by the server, but STATUS answers for it)\n",
		       name);
	free(shown);
	free(err);
	return bad;
}

/* `folders`: the capabilities that decide the cleanup (UIDPLUS, MOVE) and
 * how a round watches the seed (IDLE, RFC 2177; NOTIFY, RFC 5465: not for
 * a spam folder whose wire name is modified UTF-7, which Dovecot 2.3 never
 * announces). spam_wire may be NULL (unresolved). */
static void print_capabilities(const struct imap_session *s, const char *spam_wire)
{
	int notify = imap_has_capability(s, "NOTIFY");

	printf("  capabilities: UIDPLUS %s, MOVE %s, SPECIAL-USE %s, IDLE %s, NOTIFY %s%s%s\n",
	       imap_has_capability(s, "UIDPLUS") ? "yes" : "no",
	       imap_has_capability(s, "MOVE") ? "yes" : "no",
	       imap_has_capability(s, "SPECIAL-USE") ? "yes" : "no",
	       imap_has_capability(s, "IDLE") ? "yes" : "no", notify ? "yes" : "no",
	       notify && spam_wire != NULL && strchr(spam_wire, '&') != NULL
	       ? " (not used: the spam folder's name is modified UTF-7)" : "",
	       imap_has_capability(s, "X-GM-EXT-1") ? ", Gmail extensions" : "");
}

static int cmd_folders(const char *path)
{
	struct config *cfg = NULL;
	int any_error = 0;

	if (load_config(path, &cfg) != 0)
		return EXIT_USAGE;
	for (size_t i = 0; i < cfg->nseeds; i++) {
		const struct seed_conf *seed = &cfg->seeds[i];
		struct imap_params ip = {
			.conf = &seed->imap, .connect_timeout = cfg->limits.connect_timeout,
			.timeout = cfg->limits.timeout,
			.deadline = now_mono() + (double)cfg->limits.connect_timeout + 2.0 * (double)cfg->limits.timeout,
		};
		struct imap_session *s = NULL;
		struct imap_folder *f = NULL;
		size_t n = 0;
		char *err = NULL;
		int rc;

		printf("%s (provider %s, %s)\n", seed->address, seed->provider, seed->imap.url);
		rc = imap_open(&ip, &s, &err);
		if (rc == IMAP_OK)
			rc = imap_list_folders(s, &f, &n, &err);
		if (rc != IMAP_OK) {
			printf("  error: %s: %s\n", imap_err_name(rc), err ? err : "failed");
			any_error = 1;
		} else {
			const char *how = NULL;
			long si = folders_resolve_spam(f, n, seed->spam_folder, &how);
			long ti = folders_resolve_trash(f, n);
			char fl[128];

			for (size_t j = 0; j < n; j++) {
				flags_text(f[j].flags, fl, sizeof fl);
				printf("  ");
				print_padded(f[j].display, 32);
				if (strcmp(f[j].wire, f[j].display) != 0) {
					/* the wire name is 7-bit; never print control bytes */
					printf(" %-20s (wire: ", fl);
					for (const char *q = f[j].wire; *q; q++)
						putchar((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f ? '?' : *q);
					printf(")\n");
				}
				else
					printf(" %s\n", fl);
			}
			printf("  inbox: INBOX\n");
			if (si >= 0)
				printf("  spam:  %s (%s)\n", f[si].display, how);
			else if (seed->spam_folder != NULL)
				any_error |= print_unlisted_spam(s, seed->spam_folder);
			else {
				printf("  spam:  error: spam folder unresolved\n");
				any_error = 1;
			}
			printf("  trash: %s\n", ti >= 0 ? f[ti].display : "(none)");
			print_capabilities(s, si >= 0 ? f[si].wire : seed->spam_folder);
		}
		folders_free(f, n);
		imap_close(s);
		free(err);
	}
	config_free(cfg);
	return any_error ? EXIT_UNKNOWN : 0;
}

/* ---- run ---------------------------------------------------------------- */

/* SIGTERM, SIGINT, SIGHUP: the first asks the round to stop and write its
 * reports (exit 3); a second one ends the process at once. */
static void on_stop_signal(int sig)
{
	if (round_stop) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	round_stop = sig;
}

static int cmd_run(struct run_opts *o)
{
	struct config *cfg = NULL;
	struct run_lock *lock = NULL;
	struct state *st = NULL;
	struct cycle cy;
	char *lockpath = NULL, *err = NULL;
	int state_failed = 0, code;

	memset(&cy, 0, sizeof cy);
	malloc_few_arenas();   /* many worker threads (bench/README.md "bench_scale.sh") */
	if (load_config(o->config, &cfg) != 0)
		return fail_usage(o->format, "configuration error (see stderr)");
	if (o->textfile)
		cfg->report.textfile = (free(cfg->report.textfile), xstrdup(o->textfile));
	if (o->openmetrics)
		cfg->report.openmetrics = (free(cfg->report.openmetrics), xstrdup(o->openmetrics));
	if (o->json)
		cfg->report.json = (free(cfg->report.json), xstrdup(o->json));
	if (o->junit)
		cfg->report.junit = (free(cfg->report.junit), xstrdup(o->junit));
	if (o->no_idle)
		cfg->probe.idle = 0;

	warn_host_limits(cfg);
	{
		struct fd_budget b;
		if (fd_budget_ensure(cfg, 0, &b, &err) != 0) {
			log_error("%s; this run sends nothing", err);
			if (o->format == FORMAT_NAGIOS)
				printf("INBOXPROBE UNKNOWN - needs %ld file descriptors, limit %ld\n",
				       b.need, b.soft);
			code = o->format == FORMAT_NAGIOS ? NAGIOS_UNKNOWN : EXIT_UNKNOWN;
			goto out;
		}
	}
	switch (cycle_lock_take(cfg, &lockpath, &lock, &err)) {
	case 0:
		break;
	case 1:
		log_error("%s; this run sends nothing", err ? err : "another run is active");
		if (o->format == FORMAT_NAGIOS)
			printf("INBOXPROBE UNKNOWN - another run of %s is still active\n", cfg->name);
		code = o->format == FORMAT_NAGIOS ? NAGIOS_UNKNOWN : EXIT_UNKNOWN;
		goto out;
	default:
		log_error("%s", err ? err : "run lock failed");
		if (o->format == FORMAT_NAGIOS)
			printf("INBOXPROBE UNKNOWN - cannot take the run lock\n");
		code = EXIT_UNKNOWN;
		goto out;
	}
	free(err);
	err = NULL;

	if (cfg->state.path != NULL && state_open(cfg->state.path, &st, &err) != 0) {
		log_error("state store: %s; running without memory across runs", err);
		free(err);
		err = NULL;
		state_failed = 1;
		st = NULL;
	}
	if (smtp_global_init() != 0) {
		log_error("cannot initialise libcurl");
		code = EXIT_UNKNOWN;
		goto out;
	}
	{
		struct cycle_params cp = {
			.cfg = cfg, .st = st, .state_failed = state_failed,
			.deadline = o->deadline > 0 ? o->deadline : cfg->probe.deadline,
			.progress = isatty(STDERR_FILENO),
		};
		on_stop_signals(on_stop_signal);
		smtp_set_abort_flag(&round_stop);
		imap_set_abort_flag(&round_stop);
		cycle_run(&cp, &cy);
	}
	smtp_global_cleanup();

	if (o->format == FORMAT_NAGIOS) {
		report_nagios(cy.rep, stdout);
		code = report_process_code(cy.rep, 1);
	} else {
		report_summary(cy.rep, stdout);
		cycle_print_late(cfg, &cy.rr, stdout);
		code = report_process_code(cy.rep, 0);
	}
	fflush(stdout);

out:
	cycle_free(&cy);
	state_close(st);
	run_lock_release(lock);
	free(lockpath);
	free(err);
	config_free(cfg);
	return code;
}

/* A round holds up to two IMAP sessions per seed plus the relay's
 * connections: raise the soft limit on open files to the hard one. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_debug("cannot raise the open-file limit: %s", strerror(errno));
	}
}

/* glibc loads libgcc_s lazily, the first time a thread is unwound (a
 * library thread that ends with pthread_exit); out of file descriptors, that
 * dlopen fails and glibc aborts the whole process ("libgcc_s.so.1 must be
 * installed for pthread_exit to work"). Load it while descriptors are free,
 * so running out of them later is a diagnostic, never an abort. */
static void preload_unwinder(void)
{
	if (dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE) == NULL)
		log_debug("cannot preload libgcc_s.so.1: %s", dlerror());
}

/* The options after the command (argv[1]) into *o. Returns -1 to go on,
 * else the exit code (usage printed, or --help answered). */
static int parse_options(int argc, char **argv, struct run_opts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "textfile", required_argument, NULL, 'T' },
		{ "openmetrics", required_argument, NULL, 'O' },
		{ "json", required_argument, NULL, 'J' },
		{ "junit", required_argument, NULL, 'U' },
		{ "deadline", required_argument, NULL, 'd' },
		{ "format", required_argument, NULL, 'f' },
		{ "no-idle", no_argument, NULL, 'I' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	/* --format first, so that usage errors can answer in Nagios form. */
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--format=nagios") == 0 ||
		    (strcmp(a, "--format") == 0 && i + 1 < argc && strcmp(argv[i + 1], "nagios") == 0))
			o->format = FORMAT_NAGIOS;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 'T': o->textfile = optarg; break;
		case 'O': o->openmetrics = optarg; break;
		case 'J': o->json = optarg; break;
		case 'U': o->junit = optarg; break;
		case 'd':
			if (parse_long(optarg, 1, 86400, &o->deadline) != 0) {
				fprintf(stderr, "inboxprobe: --deadline: '%s' is not a number of seconds (1..86400)\n",
				        optarg);
				return fail_usage(o->format, "bad --deadline");
			}
			break;
		case 'f':
			if (strcmp(optarg, "text") == 0)
				o->format = FORMAT_TEXT;
			else if (strcmp(optarg, "nagios") == 0)
				o->format = FORMAT_NAGIOS;
			else {
				fprintf(stderr, "inboxprobe: --format: '%s' is not text or nagios\n", optarg);
				return fail_usage(o->format, "bad --format");
			}
			break;
		case 'I': o->no_idle = 1; break;
		case 'v': log_verbose++; break;
		case 'h': usage(stdout); return 0;
		default:
			usage(stderr);
			return fail_usage(o->format, "usage error");
		}
	}
	if (optind < argc) {
		fprintf(stderr, "inboxprobe: unexpected argument '%s'\n", argv[optind]);
		return fail_usage(o->format, "usage error");
	}
	{
		/* an empty report path is a usage error now, not a failed
		 * write discovered after the probes were sent */
		const struct { const char *opt, *v; } paths[] = {
			{ "-c", o->config }, { "--textfile", o->textfile }, { "--openmetrics", o->openmetrics },
			{ "--json", o->json }, { "--junit", o->junit },
		};
		for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
			if (paths[i].v != NULL && paths[i].v[0] == '\0') {
				fprintf(stderr, "inboxprobe: %s: empty path\n", paths[i].opt);
				return fail_usage(o->format, "usage error: empty path");
			}
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct run_opts o;
	const char *cmd;
	int c;

	/* Numbers in reports are always C-locale; messages may follow the user. */
	setlocale(LC_ALL, "");
	/* A peer that closes mid-write must give EPIPE, not kill the run. */
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	preload_unwinder();
	memset(&o, 0, sizeof o);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("inboxprobe %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "oauth2") == 0)
		return oauth2_command(argc - 1, argv + 1);   /* consent: prober/oauth2_authorize.c */
	cmd = argv[1];
	if (strcmp(cmd, "run") != 0 && strcmp(cmd, "check") != 0 && strcmp(cmd, "folders") != 0 &&
	    strcmp(cmd, "daemon") != 0) {
		fprintf(stderr, "inboxprobe: unknown command '%s'\n", cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((c = parse_options(argc, argv, &o)) >= 0)
		return c;
	if (o.config == NULL) {
		fprintf(stderr, "inboxprobe %s: -c FILE is required\n", cmd);
		return fail_usage(o.format, "no configuration given (-c FILE)");
	}
	if (strcmp(cmd, "check") == 0)
		return cmd_check(o.config);
	if (strcmp(cmd, "folders") == 0)
		return cmd_folders(o.config);
	if (strcmp(cmd, "daemon") == 0) {
		if (o.textfile || o.openmetrics || o.json || o.junit || o.deadline || o.format) {
			fprintf(stderr, "inboxprobe daemon: takes only -c FILE and -v; set the report files "
			        "and probe.deadline in the configuration\n");
			return EXIT_USAGE;
		}
		return daemon_main(o.config);
	}
	return cmd_run(&o);
}
