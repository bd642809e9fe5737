/*
 * report.h - everything a round produced, computed into per-provider
 * figures and gates, and written as: the Prometheus textfile (text format
 * 0.0.4), the OpenMetrics 1.0 file, the JSON report, the JUnit XML report,
 * the human summary and the Nagios status line. Exit codes are decided
 * here, in one place (docs/SPEC.md "Gates and exit codes").
 */
#ifndef INBOXPROBE_REPORT_H
#define INBOXPROBE_REPORT_H

#include <stdio.h>
#include <stddef.h>
#include "common/model.h"
#include "seeds/config.h"
#include "scheduler/state.h"

/* Exit codes (docs/SPEC.md). */
#define EXIT_GATES_OK 0
#define EXIT_GATE_FAILED 1
#define EXIT_USAGE 2
#define EXIT_UNKNOWN 3
/* Nagios plugin codes. */
#define NAGIOS_OK 0
#define NAGIOS_WARNING 1
#define NAGIOS_CRITICAL 2
#define NAGIOS_UNKNOWN 3

/* Gates, in report order. */
enum slo_gate {
	SLO_MIN_INBOX_RATIO = 0, SLO_MAX_LATENCY_P99, SLO_MAX_MISSING,
	SLO_REQUIRE_AUTH,        /* value: found probes whose required verdict is not pass; threshold 0 */
	SLO_MIN_PRIMARY_RATIO,   /* value: Gmail primary tab share of the probes whose tab is known */
	SLO__COUNT
};
const char *slo_gate_name(enum slo_gate g);   /* "min_inbox_ratio", ... */

/* Gmail tabs (categories), in report order. */
#define TAB__COUNT 5
extern const char *const report_tab_names[TAB__COUNT];   /* "primary", "promotions", ... */
/* Index of tab in report_tab_names, or -1 ("unknown", ""). */
int report_tab_index(const char *tab);

/* The first required method (slo.require_auth, in config_auth_methods
 * order) whose trusted verdict on res is not pass: writes the verdict
 * ("dkim=fail (bad signature) header.d=example.com"), or "dkim: no trusted
 * verdict" when missing is set, into buf. Returns 1 when a verdict is not
 * pass, 0 when all required ones pass, -1 when one has no trusted verdict
 * (and none fails). */
int report_auth_check(const struct probe_result *res, unsigned require, char *buf, size_t bufsz);

/* Nearest-rank quantile (q in (0,1]) of a sorted ascending array of n > 0
 * values: the value at rank ceil(q*n). Returns NAN when n == 0. */
double quantile_nearest_rank(const double *sorted, size_t n, double q);

struct gate_result {
	int evaluated;          /* 0: not evaluated (e.g. too few samples): no slo_ok series */
	int ok;
	double value;           /* the measured figure */
	double threshold;
	char reason[128];       /* why not evaluated, when evaluated == 0 */
};

struct provider_report {
	const char *provider;               /* borrowed from config */
	size_t n[OUTCOME__COUNT];           /* this round's outcomes */
	size_t measured;                    /* all but error */
	double share[OUTCOME_ERROR];        /* inbox..deferred shares of measured; sum to 1 */
	size_t samples;                     /* usable latency samples this round */
	double p50, p95, p99;               /* nearest-rank; NAN when no samples */
	size_t tab_n[TAB__COUNT];           /* inbox probes per Gmail tab this round */
	size_t tab_known;                   /* of those, with a known tab (the tab shares' base) */
	struct gate_result gate[SLO__COUNT];
	const struct state_totals *totals;  /* NULL without a state store */
};

/* The daemon's own figures (docs/SPEC.md "Daemon"). A report that carries them
 * (round_report.daemon) has them in its metrics after the round's series. */
struct report_daemon {
	unsigned long long rounds;          /* inboxprobe_rounds_total: rounds run and reported */
	unsigned long long rounds_skipped;  /* inboxprobe_rounds_skipped_total */
	unsigned long long imap_logins;     /* inboxprobe_imap_logins_total */
	long sessions_connecting;           /* inboxprobe_imap_sessions{state="connecting"} */
	long sessions_up;                   /* inboxprobe_imap_sessions{state="up"} */
};

struct round_report {
	const struct config *cfg;
	const struct probe_result *results;  /* cfg->nseeds entries, seed order */
	double started, ended;               /* Unix seconds */
	struct provider_report *providers;   /* cfg->nproviders entries */
	const struct state_totals *totals;   /* cfg->nproviders entries or NULL */
	int gates_failed;
	int any_error;
	int report_write_failed;             /* set by the caller once every file was
	                                        written; never read by an encoder */
	int state_failed;                    /* the state store could not be read or
	                                        written: totals missing, result unknown */
	int interrupted;                     /* signal number that ended the round early, or 0 */
	const char *bounce_error;            /* NULL, or why the configured bounce mailbox could
	                                        not be watched: DSNs unattributed, result unknown */
	/* 1 when the gates were evaluated over the state store's window
	 * (slo.evaluate = "window" and totals given), 0 for this round's
	 * probes. The counts, shares and quantiles in providers[] are always
	 * this round's; only gate[].value is taken from the window. */
	int window_basis;
	const struct report_daemon *daemon;  /* NULL, or the daemon's figures (borrowed) */
};

/* Compute per-provider figures and gates (round or window per cfg->slo).
 * totals may be NULL. The report borrows cfg, results and totals.
 * Free with report_free(). Never fails.
 * results[i] is seed i (cfg->nseeds entries); a seed's provider is
 * cfg->seeds[i].provider; latency samples are found probes (inbox, spam)
 * with have_latency, sorted before the quantiles are taken.
 * When a provider has no measured probe (measured == 0) its shares are
 * all 0 and its min_inbox_ratio and max_missing gates are not evaluated;
 * the p99 gate needs max(min_samples, 1) samples; max_missing < 0 (unset)
 * is never evaluated. Not evaluated gates neither pass nor fail. */
/* The round's statuses besides its results, all known before the report is
 * computed (docs/SPEC.md "Exit codes": each makes the result unknown). */
struct report_status {
	int state_failed;          /* the state store could not be read or written */
	int interrupted;           /* signal number that ended the round early, or 0 */
	const char *bounce_error;  /* NULL, or why the bounce mailbox could not be
	                              watched (borrowed: must outlive the report) */
};

/* status may be NULL (all clear). The report is computed once, from every
 * status: nothing is patched in afterwards, and writing the files changes
 * nothing in it but report_write_failed. */
struct round_report *report_compute(const struct config *cfg, const struct probe_result *results,
                                    double started, double ended,
                                    const struct state_totals *totals,
                                    const struct report_status *status);
void report_free(struct round_report *r);

/* The exit code per docs/SPEC.md (0, 1 or 3) from the gates and the
 * round's statuses (unmeasured seeds, state store, bounce mailbox): decided
 * before any file is written, and what every file says (last_run_success,
 * the JSON's exit_code), whatever happens to the other files. */
int report_exit_code(const struct round_report *r);
/* The process's exit code: report_exit_code(), except that a report file
 * that could not be written (r->report_write_failed) turns 0 into 3: a
 * failed write changes only the exit code and the messages. With nagios:
 * the Nagios code, 0 OK, 1 WARNING (errors, unknown measurement, a failed
 * write), 2 CRITICAL (a gate failed). */
int report_process_code(const struct round_report *r, int nagios);

/* Encoders into a string (heap, caller frees). Numbers in the C locale,
 * label values escaped, no timestamps, every seed in every run. */
char *report_prometheus_text(const struct round_report *r);  /* text format 0.0.4 */
char *report_openmetrics(const struct round_report *r);      /* OpenMetrics 1.0, ends "# EOF\n" */
/* The metrics of r (NULL before the daemon's first round: then only the
 * daemon's series) followed by the daemon's series d (NULL: none), in text
 * 0.0.4 (openmetrics 0) or OpenMetrics 1.0 (1). config_name labels the
 * daemon's series when r is NULL. Heap string, caller frees. */
char *report_metrics(const struct round_report *r, const struct report_daemon *d,
                     const char *config_name, int openmetrics);
char *report_json(const struct round_report *r);            /* schema: docs/json-report.md */
char *report_junit(const struct round_report *r);           /* Jenkins/Ant JUnit XML */

/* Encode r and write it to path atomically (write_file_atomic). 0 or -1
 * with *errstr (heap). r is not changed: the caller sets
 * report_write_failed once every file was written. */
int report_write(const struct round_report *r, const char *path,
                 char *(*encode)(const struct round_report *), char **errstr);

/* The human summary table (seed, provider, outcome, folder, latency, relay
 * reply, diagnostic), per-provider placement and quantiles, and one line
 * per failed gate with its figure and threshold. */
void report_summary(const struct round_report *r, FILE *out);

/* Helpers shared by the encoders in reports/ (also used by the tests). */

/* Index of provider in cfg->providers, or -1 when unknown. */
int report_provider_index(const struct config *cfg, const char *provider);

/* 1 when the probe was found (outcome inbox or spam). */
int report_found(const struct probe_result *res);

/* One Nagios plugin line with perfdata (Nagios plugin guidelines:
 * 'label'=value[UOM];warn;crit;min;max), e.g.
 *   INBOXPROBE OK - 2/2 seeds measured, all gates hold | 'inbox_ratio_gmail'=1;;0.95:;0;1
 *   'p99_gmail'=3.2s;;300;0; 'missing_gmail'=0;;0;0; 'measured_gmail'=2;;;0;2
 * CRITICAL names the failed gates, WARNING the unmeasured seeds or a
 * failed report. The status follows report_nagios_code(). */
void report_nagios(const struct round_report *r, FILE *out);

#endif
