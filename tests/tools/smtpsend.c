/*
 * smtpsend - test driver for smtp_submit(): one transaction, result fields
 * printed one per line (key=value) on stdout. Used by tests/e2e/smtp_*.sh.
 *
 * usage: smtpsend URL FROM RCPT MESSAGE-FILE
 * env:   SMTP_TLS=none|required (default required), SMTP_CA=FILE,
 *        SMTP_USER=NAME, SMTP_PASSFILE=FILE (first line is the password),
 *        SMTP_TIMEOUT=SECONDS (30), SMTP_CONNECT_TIMEOUT=SECONDS (10),
 *        SMTP_DEADLINE=SECONDS from now (none),
 *        SMTP_THREADS=N: N more concurrent submissions of the same message
 *        (thread-safety check); prints "threads_ok=K" with K of them SMTP_OK
 * MESSAGE-FILE "-" sends a small built-in CRLF message; "@build" builds the
 * probe with message_build() from SMTP_TOKEN and the optional template file
 * SMTP_TEMPLATE. SMTP_SAVE=FILE writes the exact bytes submitted there.
 * Exit status: the smtp_err code. The password is never printed.
 */
#include <config.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "prober/message.h"
#include "prober/smtp.h"

static char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);
	return (v && *v) ? xstrdup(v) : (def ? xstrdup(def) : NULL);
}

struct job {
	const struct smtp_params *p;
	int err;
	struct smtp_reply reply;
	double st;
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	char *e = NULL;
	j->err = smtp_submit(j->p, &j->reply, &j->st, &e);
	free(e);
	return NULL;
}

int main(int argc, char **argv)
{
	struct relay_conf r;
	struct smtp_params p;
	struct smtp_reply reply;
	char *msg, *errstr = NULL, *pf;
	size_t len = 0;
	double st = 0, t0;
	int err;

	if (argc != 5) {
		fprintf(stderr, "usage: smtpsend URL FROM RCPT MESSAGE-FILE\n");
		return 100;
	}
	memset(&r, 0, sizeof(r));
	r.url = argv[1];
	r.implicit_tls = strncmp(argv[1], "smtps://", 8) == 0;
	r.tls = (getenv("SMTP_TLS") && strcmp(getenv("SMTP_TLS"), "none") == 0) ? TLS_NONE : TLS_REQUIRED;
	r.ca_file = env_or("SMTP_CA", NULL);
	r.username = env_or("SMTP_USER", NULL);
	pf = env_or("SMTP_PASSFILE", NULL);
	if (pf) {
		char *e = NULL;
		r.password = read_file_capped(pf, 4096, NULL, &e);
		if (!r.password) {
			fprintf(stderr, "smtpsend: %s\n", e);
			free(e);
			return 100;
		}
		r.password[strcspn(r.password, "\r\n")] = '\0';
		free(pf);
	}
	r.from = argv[2];
	r.timeout = getenv("SMTP_TIMEOUT") ? atol(getenv("SMTP_TIMEOUT")) : 30;
	r.connect_timeout = getenv("SMTP_CONNECT_TIMEOUT") ? atol(getenv("SMTP_CONNECT_TIMEOUT")) : 10;

	if (strcmp(argv[4], "-") == 0) {
		msg = xasprintf("From: <%s>\r\nTo: <%s>\r\nSubject: smtpsend\r\n\r\nhello\r\n.\r\n.dot\r\n",
		                argv[2], argv[3]);
		len = strlen(msg);
	} else if (strcmp(argv[4], "@build") == 0) {
		struct message_params mp;
		char *e = NULL, *tmpl = NULL;
		memset(&mp, 0, sizeof(mp));
		mp.from = argv[2];
		mp.to = argv[3];
		mp.token = getenv("SMTP_TOKEN") ? getenv("SMTP_TOKEN") : "0123456789abcdef0123456789abcdef";
		mp.subject_prefix = "inboxprobe";
		mp.now = now_wall();
		if (getenv("SMTP_TEMPLATE")) {
			tmpl = read_file_capped(getenv("SMTP_TEMPLATE"), 0, NULL, &e);
			if (!tmpl) {
				fprintf(stderr, "smtpsend: %s\n", e);
				free(e);
				return 100;
			}
			mp.template_text = tmpl;
		}
		msg = message_build(&mp, &len, &e);
		free(tmpl);
		if (!msg) {
			fprintf(stderr, "smtpsend: message_build: %s\n", e ? e : "failed");
			free(e);
			return 100;
		}
	} else {
		char *e = NULL;
		msg = read_file_capped(argv[4], 0, &len, &e);
		if (!msg) {
			fprintf(stderr, "smtpsend: %s\n", e);
			free(e);
			return 100;
		}
	}
	if (getenv("SMTP_SAVE")) {
		char *e = NULL;
		if (write_file_atomic(getenv("SMTP_SAVE"), msg, len, &e) != 0) {
			fprintf(stderr, "smtpsend: %s\n", e);
			free(e);
			return 100;
		}
	}
	memset(&p, 0, sizeof(p));
	p.relay = &r;
	p.rcpt = argv[3];
	p.message = msg;
	p.len = len;
	p.deadline = getenv("SMTP_DEADLINE") ? now_mono() + atof(getenv("SMTP_DEADLINE")) : 0;

	if (smtp_global_init() != 0) {
		fprintf(stderr, "smtpsend: curl_global_init failed\n");
		return 100;
	}
	t0 = now_wall();
	{
		int nthreads = getenv("SMTP_THREADS") ? atoi(getenv("SMTP_THREADS")) : 0;
		pthread_t th[64];
		struct job jobs[64];
		int started = 0, okn = 0;
		if (nthreads > 64)
			nthreads = 64;
		for (int i = 0; i < nthreads; i++) {
			jobs[i].p = &p;
			if (pthread_create(&th[i], NULL, run_job, &jobs[i]) == 0)
				started++;
			else
				break;
		}
		err = smtp_submit(&p, &reply, &st, &errstr);
		for (int i = 0; i < started; i++) {
			pthread_join(th[i], NULL);
			if (jobs[i].err == SMTP_OK && strcmp(jobs[i].reply.queue_id, reply.queue_id) == 0)
				okn++;
		}
		if (nthreads > 0)
			printf("threads_ok=%d\n", okn);
	}
	printf("err=%s\n", smtp_err_name(err));
	printf("code=%d\n", reply.code);
	printf("enhanced=%s\n", reply.enhanced);
	printf("stage=%s\n", reply.stage);
	printf("queue_id=%s\n", reply.queue_id);
	printf("text=%s\n", reply.text);
	printf("diagnostic=%s\n", smtp_diagnostic(reply.code, reply.enhanced));
	printf("submit_time_ok=%d\n", err == SMTP_OK ? (st >= t0 && st <= now_wall()) : st == 0);
	printf("elapsed=%.1f\n", now_wall() - t0);
	printf("errstr=%s\n", errstr ? errstr : "");
	free(errstr);
	free(msg);
	free(r.ca_file);
	free(r.username);
	if (r.password) {
		memset(r.password, 0, strlen(r.password));
		free(r.password);
	}
	smtp_global_cleanup();
	return err;
}
