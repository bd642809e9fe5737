/*
 * bench_config.c - how long loading and validating a configuration takes
 * as the seed list grows (issue 12 section 3: 40,000 seeds took 10 s, a
 * scan of every earlier seed per seed). Prints figures next to a floor
 * measured in the same run (reading the same file whole); asserts nothing
 * about time.
 *
 * Usage: bench_config [MAX_SEEDS]   (default 40000: 2500, 5000, ... up to it)
 * Each configuration: one relay, imap_defaults with a password file, and
 * MAX_SEEDS seeds "sN@pK.example" over 50 providers, written to a fresh
 * directory under $TMPDIR (or /tmp) that is removed at the end.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "seeds/config.h"

/* Write a configuration of n seeds to path; 0 or -1. */
static int write_conf(const char *path, const char *pass, long n)
{
	struct strbuf sb = STRBUF_INIT;
	char *err = NULL;
	int rc;

	strbuf_addf(&sb, "name = \"bench\";\n"
	            "relay = { url = \"smtp://127.0.0.1:2525\"; tls = \"none\"; from = \"p@example.test\"; };\n"
	            "imap_defaults = { url = \"imap://127.0.0.1:1143\"; tls = \"none\"; password_file = \"%s\"; };\n"
	            "imap_limits = { per_host = 1000; };\n"
	            "seeds = (\n", pass);
	for (long i = 0; i < n; i++)
		strbuf_addf(&sb, "%s  { address = \"s%ld@p%ld.example\"; provider = \"p%ld\"; "
		            "imap = { username = \"u%ld\"; }; }\n", i ? "," : "", i, i % 50, i % 50, i);
	strbuf_adds(&sb, ");\n");
	rc = write_file_atomic(path, sb.buf, sb.len, &err);
	if (rc != 0) {
		fprintf(stderr, "bench_config: %s\n", err);
		free(err);
	}
	strbuf_free(&sb);
	return rc;
}

int main(int argc, char **argv)
{
	long max = argc > 1 ? strtol(argv[1], NULL, 10) : 40000;
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *dir = xasprintf("%s/bench_config.XXXXXX", tmp);
	char *pass, *conf, *err = NULL;

	if (max < 1 || mkdtemp(dir) == NULL) {
		perror("bench_config");
		return 1;
	}
	pass = xasprintf("%s/seed.pass", dir);
	conf = xasprintf("%s/bench.conf", dir);
	if (write_file_atomic(pass, "secret\n", 7, &err) != 0 || chmod(pass, 0600) != 0) {
		fprintf(stderr, "bench_config: %s\n", err ? err : "chmod");
		return 1;
	}
	printf("%8s %10s %12s %12s %14s\n", "seeds", "bytes", "read (ms)", "load (ms)", "load/seed (us)");
	for (long n = max / 16 > 0 ? max / 16 : 1; ; n *= 2) {
		struct config *cfg = NULL;
		size_t len = 0;
		double t0, t1, t2;
		char *text;

		if (n > max)
			n = max;
		if (write_conf(conf, pass, n) != 0 || chmod(conf, 0600) != 0)
			return 1;
		t0 = now_mono();
		text = read_file_capped(conf, 0, &len, &err);   /* the floor */
		t1 = now_mono();
		free(text);
		if (config_load(conf, &cfg, &err) != 0) {
			fprintf(stderr, "bench_config: %s", err);
			return 1;
		}
		t2 = now_mono();
		config_free(cfg);
		printf("%8ld %10zu %12.2f %12.2f %14.2f\n", n, len, (t1 - t0) * 1e3, (t2 - t1) * 1e3,
		       (t2 - t1) * 1e6 / (double)n);
		if (n == max)
			break;
	}
	unlink(conf);
	unlink(pass);
	rmdir(dir);
	free(conf);
	free(pass);
	free(dir);
	return 0;
}
