/*
 * imapcheck - test driver for prober/imap.h (not installed).
 *
 * Usage: imapcheck [options] COMMAND [ARGS...]
 * Options:
 *   --url URL              imap://host:port or imaps://host:port (required)
 *   --user NAME            login name
 *   --password-file FILE   password (first line); else $IMAPCHECK_PASSWORD
 *   --ca-file FILE         PEM trust anchors (default: system store)
 *   --tls required|none    default required
 *   --timeout S            per-command timeout, seconds (default 10)
 *   --connect-timeout S    default 5
 *   --deadline S           whole run, seconds from start (default 30)
 *   --since UNIX           for find/bounces (default: now - 1 hour)
 *   --repeat N             bounces: N scans in one session (default 1)
 *   --wait S               find: poll every 0.5 s for up to S seconds until a hit
 *   --from ADDR            our From address: what proves a message to be a probe
 *                          (find and cleanup; without it nothing is ever proved)
 *   --secret-file FILE     the probe.secret_file key (one trailing LF stripped)
 *   --seed ADDR            the seed address the HMAC covers (default: --user)
 * Commands (one session each):
 *   open                                  log in; print "ok" and "cap NAME" lines for
 *                                         MOVE UIDPLUS SPECIAL-USE XLIST X-GM-EXT-1 IDLE
 *   list                                  "folder\tWIRE\tDISPLAY\tFLAGS" per folder, then
 *                                         "spam\tWIRE\tHOW" (or "spam\t-\tunresolved"),
 *                                         "trash\tWIRE" (or "trash\t-")
 *   find FOLDER TOKEN...                  "hit\tTOKEN_INDEX\tUIDVALIDITY\tUID\tINTERNALDATE"
 *                                         per hit, then "hits\tN"
 *   cleanup FOLDER UIDVALIDITY UID TOKEN delete|trash|keep [TRASH]
 *                                         "cleanup\tWHAT"
 *   bounces FOLDER TOKEN...               "bounce\tTOKEN_INDEX\tUID\tACTION\tSTATUS", "bounces\tN"
 *   date STRING                           parse an INTERNALDATE: "date\tUNIX" (no network)
 * Errors: prints "error\tNAME\tMESSAGE" (NAME from imap_err_name) on stdout,
 * exits 10 + the imap_err code. Usage errors exit 2. Success exits 0.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "prober/imap.h"
#include "prober/dsn.h"
#include "seeds/config.h"
#include "seeds/folders.h"

static void usage(void)
{
	fprintf(stderr, "usage: imapcheck --url URL [--user U] [--password-file F] [--ca-file F]\n"
	                "       [--tls required|none] [--timeout S] [--connect-timeout S] [--deadline S]\n"
	                "       [--since UNIX] [--wait S] [--from ADDR] [--secret-file F] [--seed ADDR]\n"
	                "       open|list|find|cleanup|bounces|date ...\n");
	exit(2);
}

static int fail(int code, char *msg)
{
	printf("error\t%s\t%s\n", imap_err_name(code), msg ? msg : "");
	free(msg);
	return 10 + code;
}

static char *flags_str(unsigned f)
{
	struct strbuf sb = STRBUF_INIT;
	static const struct { unsigned bit; const char *name; } names[] = {
		{ FOLDER_NOSELECT, "noselect" }, { FOLDER_JUNK, "junk" }, { FOLDER_SPAM_XLIST, "spam" },
		{ FOLDER_TRASH, "trash" }, { FOLDER_ALL, "all" }, { FOLDER_INBOX, "inbox" },
		{ FOLDER_SENT, "sent" }, { FOLDER_DRAFTS, "drafts" },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (f & names[i].bit)
			strbuf_addf(&sb, "%s%s", sb.len ? "," : "", names[i].name);
	if (!sb.len)
		strbuf_adds(&sb, "-");
	return strbuf_detach(&sb);
}

int main(int argc, char **argv)
{
	struct imap_conf conf;
	struct imap_params p;
	struct imap_session *s = NULL;
	const char *url = NULL, *passfile = NULL, *tls = "required", *secretfile = NULL;
	char *secret = NULL;
	size_t secretlen = 0;
	double since = now_wall() - 3600, wait = 0, deadline_s = 30;
	long repeat = 1;
	char *err = NULL;
	int i, r, rc = 0;

	memset(&conf, 0, sizeof conf);
	memset(&p, 0, sizeof p);
	p.timeout = 10;
	p.connect_timeout = 5;
	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *o = argv[i];
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (!strcmp(o, "--url")) url = v;
		else if (!strcmp(o, "--user")) conf.username = xstrdup(v);
		else if (!strcmp(o, "--password-file")) passfile = v;
		else if (!strcmp(o, "--ca-file")) conf.ca_file = xstrdup(v);
		else if (!strcmp(o, "--tls")) tls = v;
		else if (!strcmp(o, "--timeout")) p.timeout = atol(v);
		else if (!strcmp(o, "--connect-timeout")) p.connect_timeout = atol(v);
		else if (!strcmp(o, "--deadline")) deadline_s = atof(v);
		else if (!strcmp(o, "--since")) since = atof(v);
		else if (!strcmp(o, "--wait")) wait = atof(v);
		else if (!strcmp(o, "--repeat")) repeat = atol(v);
		else if (!strcmp(o, "--from")) p.probe_from = v;
		else if (!strcmp(o, "--secret-file")) secretfile = v;
		else if (!strcmp(o, "--seed")) p.seed = v;
		else usage();
	}
	if (i >= argc)
		usage();
	const char *cmd = argv[i++];
	if (!strcmp(cmd, "date")) {
		double t;
		if (i >= argc)
			usage();
		if (imap_parse_internaldate(argv[i], &t) != 0) {
			printf("date\tinvalid\n");
			return 1;
		}
		printf("date\t%.0f\n", t);
		return 0;
	}
	if (!url)
		usage();
	{
		const char *scheme = NULL;
		if (config_parse_url(url, &scheme, &conf.host, &conf.port, &err) != 0) {
			fprintf(stderr, "imapcheck: %s\n", err);
			free(err);
			return 2;
		}
		conf.url = xstrdup(url);
		conf.implicit_tls = scheme && !strcmp(scheme, "imaps");
	}
	conf.tls = !strcmp(tls, "none") ? TLS_NONE : TLS_REQUIRED;
	if (passfile) {
		char *pw = read_file_capped(passfile, 4096, NULL, &err);
		if (!pw) {
			fprintf(stderr, "imapcheck: %s\n", err);
			return 2;
		}
		pw[strcspn(pw, "\r\n")] = '\0';
		conf.password = pw;
	} else if (getenv("IMAPCHECK_PASSWORD")) {
		conf.password = xstrdup(getenv("IMAPCHECK_PASSWORD"));
	}
	if (secretfile) {
		secret = read_file_capped(secretfile, 4096, &secretlen, &err);
		if (!secret) {
			fprintf(stderr, "imapcheck: %s\n", err);
			return 2;
		}
		if (secretlen > 0 && secret[secretlen - 1] == '\n')
			secret[--secretlen] = '\0';
		if (secretlen > 0 && secret[secretlen - 1] == '\r')
			secret[--secretlen] = '\0';
		p.secret = (const unsigned char *)secret;
		p.secret_len = secretlen;
	}
	if (!p.seed)
		p.seed = conf.username;
	p.conf = &conf;
	p.deadline = now_mono() + deadline_s;

	r = imap_open(&p, &s, &err);
	if (r) {
		rc = fail(r, err);
		goto out;
	}
	if (!strcmp(cmd, "open")) {
		static const char *caps[] = { "MOVE", "UIDPLUS", "SPECIAL-USE", "XLIST", "X-GM-EXT-1", "IDLE" };
		printf("ok\n");
		for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++)
			if (imap_has_capability(s, caps[k]))
				printf("cap\t%s\n", caps[k]);
	} else if (!strcmp(cmd, "list")) {
		struct imap_folder *f = NULL;
		size_t n = 0;
		const char *how = NULL;
		r = imap_list_folders(s, &f, &n, &err);
		if (r) {
			rc = fail(r, err);
			goto out;
		}
		for (size_t k = 0; k < n; k++) {
			char *fl = flags_str(f[k].flags);
			printf("folder\t%s\t%s\t%s\n", f[k].wire, f[k].display, fl);
			free(fl);
		}
		long sp = folders_resolve_spam(f, n, NULL, &how);
		if (sp >= 0)
			printf("spam\t%s\t%s\n", f[sp].wire, how);
		else
			printf("spam\t-\tunresolved\n");
		long tr = folders_resolve_trash(f, n);
		printf("trash\t%s\n", tr >= 0 ? f[tr].wire : "-");
		folders_free(f, n);
	} else if (!strcmp(cmd, "find") || !strcmp(cmd, "bounces")) {
		if (i + 1 >= argc)
			usage();
		const char *folder = argv[i++];
		const char *const *toks = (const char *const *)&argv[i];
		size_t ntok = (size_t)(argc - i);
		if (!strcmp(cmd, "find")) {
			double until = now_mono() + wait;
			struct imap_hit *h = NULL;
			size_t nh = 0;
			for (;;) {
				r = imap_find_tokens(s, folder, toks, ntok, since, &h, &nh, &err);
				if (r) {
					rc = fail(r, err);
					goto out;
				}
				if (nh > 0 || now_mono() >= until)
					break;
				free(h);
				h = NULL;
				sleep_seconds(0.5);
			}
			for (size_t k = 0; k < nh; k++)
				printf("hit\t%zu\t%lu\t%lu\t%.0f\n", h[k].token_index, h[k].uidvalidity,
				       h[k].uid, h[k].internaldate);
			printf("hits\t%zu\n", nh);
			free(h);
		} else {
			/* --repeat N: N scans in one session, as the round's bounce
			 * thread does (each pages past what the last examined) */
			size_t total = 0;
			for (long rep = 0; rep < (repeat > 0 ? repeat : 1); rep++) {
				struct imap_bounce *b = NULL;
				size_t nb = 0;
				r = imap_scan_bounces(s, folder, toks, ntok, since, 0, &b, &nb, &err);
				if (r) {
					rc = fail(r, err);
					goto out;
				}
				for (size_t k = 0; k < nb; k++)
					printf("bounce\t%zu\t%lu\t%s\t%s\n", b[k].token_index, b[k].uid,
					       dsn_action_name(b[k].dsn.action), b[k].dsn.status);
				total += nb;
				free(b);
			}
			printf("bounces\t%zu\n", total);
		}
	} else if (!strcmp(cmd, "cleanup")) {
		char what[128];
		enum cleanup_mode mode;
		if (i + 4 >= argc)
			usage();
		const char *folder = argv[i];
		unsigned long uv = strtoul(argv[i + 1], NULL, 10);
		unsigned long uid = strtoul(argv[i + 2], NULL, 10);
		const char *token = argv[i + 3];
		const char *m = argv[i + 4];
		const char *trash = i + 5 < argc ? argv[i + 5] : NULL;
		mode = !strcmp(m, "trash") ? CLEANUP_TRASH : !strcmp(m, "keep") ? CLEANUP_KEEP : CLEANUP_DELETE;
		r = imap_cleanup(s, folder, uv, uid, token, mode, trash, what, sizeof what, &err);
		if (r) {
			rc = fail(r, err);
			goto out;
		}
		printf("cleanup\t%s\n", what);
	} else {
		usage();
	}
out:
	imap_close(s);
	free(conf.url);
	free(conf.host);
	free(conf.username);
	free(conf.ca_file);
	if (secret) {
		memset(secret, 0, secretlen);
		free(secret);
	}
	if (conf.password) {
		memset(conf.password, 0, strlen(conf.password));
		free(conf.password);
	}
	return rc;
}
