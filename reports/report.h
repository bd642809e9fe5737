/*
 * report.h - everything a round produced, computed into per-provider
 * figures and gates, and written as: the Prometheus textfile (text format
 * 0.0.4), the OpenMetrics 1.0 file, the JSON report, the JUnit XML report,
 * the human summary and the Nagios status line. Exit codes are decided
 * here, in one place (SPEC "Gates and exit codes").
 */
#ifndef INBOXPROBE_REPORT_H
#define INBOXPROBE_REPORT_H

#include <stdio.h>
#include <stddef.h>
#include "common/model.h"
#include "seeds/config.h"
#include "scheduler/state.h"

/* Exit codes (SPEC). */
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
enum slo_gate { SLO_MIN_INBOX_RATIO = 0, SLO_MAX_LATENCY_P99, SLO_MAX_MISSING, SLO__COUNT };
const char *slo_gate_name(enum slo_gate g);   /* "min_inbox_ratio", ... */

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
	struct gate_result gate[SLO__COUNT];
	const struct state_totals *totals;  /* NULL without a state store */
};

struct round_report {
	const struct config *cfg;
	const struct probe_result *results;  /* cfg->nseeds entries, seed order */
	double started, ended;               /* Unix seconds */
	struct provider_report *providers;   /* cfg->nproviders entries */
	const struct state_totals *totals;   /* cfg->nproviders entries or NULL */
	int gates_failed;
	int any_error;
	int report_write_failed;             /* set by the writers */
};

/* Compute per-provider figures and gates (round or window per cfg->slo).
 * totals may be NULL. The report borrows cfg, results and totals.
 * Free with report_free(). Never fails. */
struct round_report *report_compute(const struct config *cfg, const struct probe_result *results,
                                    double started, double ended,
                                    const struct state_totals *totals);
void report_free(struct round_report *r);

/* The exit code per SPEC (0, 1 or 3) from gates, errors and write failures. */
int report_exit_code(const struct round_report *r);
/* The Nagios code: 0 OK, 1 WARNING (errors/unknown measurement), 2 CRITICAL (gate failed), 3 UNKNOWN. */
int report_nagios_code(const struct round_report *r);

/* Encoders into a string (heap, caller frees). Numbers in the C locale,
 * label values escaped, no timestamps, every seed in every run. */
char *report_prometheus_text(const struct round_report *r);  /* text format 0.0.4 */
char *report_openmetrics(const struct round_report *r);      /* OpenMetrics 1.0, ends "# EOF\n" */
char *report_json(const struct round_report *r);            /* schema: docs/json-report.md */
char *report_junit(const struct round_report *r);           /* Jenkins/Ant JUnit XML */

/* Write a report atomically (PATH.tmp, fsync, rename). 0 or -1 with
 * *errstr; on failure sets r->report_write_failed. */
int report_write(struct round_report *r, const char *path, char *(*encode)(const struct round_report *),
                 char **errstr);

/* The human summary table (seed, provider, outcome, folder, latency, relay
 * reply, diagnostic), per-provider placement and quantiles, and one line
 * per failed gate with its figure and threshold. */
void report_summary(const struct round_report *r, FILE *out);

/* One Nagios plugin line with perfdata ("INBOXPROBE OK - ... | inbox_ratio_gmail=1;0.9;;0;1 ..."). */
void report_nagios(const struct round_report *r, FILE *out);

#endif
