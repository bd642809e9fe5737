/*
 * test_config.c - configuration loading and validation (docs/SPEC.md "Configuration").
 * Configurations are written into a mkdtemp directory at test time (secret
 * files need mode 0600, which a checkout does not keep); the sample files
 * in tests/data/config/ carry their expected errors as "#! LINE: text".
 */
#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "seeds/config.h"

static char tmpdir[256];

static int setup_dir(void **state)
{
	(void)state;
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/inboxprobe-config-XXXXXX", base);
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int teardown_dir(void **state)
{
	(void)state;
	DIR *d = opendir(tmpdir);
	if (d != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			char *p = xasprintf("%s/%s", tmpdir, de->d_name);
			unlink(p);
			free(p);
		}
		closedir(d);
	}
	rmdir(tmpdir);
	return 0;
}

/* Write content to tmpdir/name with mode; returns the heap path. */
static char *put(const char *name, const char *content, mode_t mode)
{
	char *p = xasprintf("%s/%s", tmpdir, name);
	unlink(p);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	assert_int_equal(chmod(p, mode), 0);
	return p;
}

static void expect_one_error(const char *name, const char *text, int line, const char *needle);

/* 1-based line of the first line of text containing marker. */
static int line_of(const char *text, const char *marker)
{
	const char *hit = strstr(text, marker);
	assert_non_null(hit);
	int line = 1;
	for (const char *p = text; p < hit; p++)
		if (*p == '\n')
			line++;
	return line;
}

/* The number of lines (errors) in errstr. */
static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		if (*s == '\n')
			n++;
	return n;
}

/* errstr holds a line starting "path:line: " that contains needle. */
static void assert_error(const char *errstr, const char *path, int line, const char *needle)
{
	char *prefix = xasprintf("%s:%d: ", path, line);
	const char *p = errstr;
	int found = 0;
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t ll = eol ? (size_t)(eol - p) : strlen(p);
		char *l = xstrndup(p, ll);
		if (strncmp(l, prefix, strlen(prefix)) == 0 && strstr(l, needle) != NULL)
			found = 1;
		free(l);
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	if (!found)
		fail_msg("expected an error \"%s...%s\" in:\n%s", prefix, needle, errstr);
	free(prefix);
}

/* ---- docs/SPEC.md's example ---- */

static void test_spec_example(void **state)
{
	(void)state;
	char *relay_secret = put("relay.secret", "relay-pw\n", 0600);
	char *token_key = put("token.key", "0123456789abcdef0123456789abcdef\n", 0600);
	char *bounce_secret = put("bounce.secret", "bounce-pw\r\n", 0600);
	char *seed_secret = put("seed1.secret", "s3cret-seed1\n", 0600);
	char *ca = put("ca.crt", "-----BEGIN CERTIFICATE-----\n", 0644);
	char *tpl = put("otp.eml", "From: Bank <otp@example.net>\nSubject: Your code {{token}}\n\n"
	                           "Code: {{token}}\n", 0644);
	char *text = xasprintf(
		"name = \"otp\";\n"
		"relay = {\n"
		"  url = \"smtps://smtp.example.net\";\n"
		"  tls = \"required\";\n"
		"  ca_file = \"%s\";\n"
		"  username = \"probe@example.net\";\n"
		"  password_file = \"%s\";\n"
		"  from = \"probe@example.net\";\n"
		"  connect_timeout = 10;\n"
		"  timeout = 30;\n"
		"};\n"
		"probe = {\n"
		"  deadline = 300;\n"
		"  poll_interval = 5;\n"
		"  cleanup = \"delete\";\n"
		"  subject_prefix = \"inboxprobe\";\n"
		"  secret_file = \"%s\";\n"
		"  template = \"%s\";\n"
		"  headers = ( \"X-Campaign: otp\" );\n"
		"};\n"
		"imap_limits = { per_host = 8; per_account = 1; connect_timeout = 10; timeout = 30; };\n"
		"slo = {\n"
		"  min_inbox_ratio = 0.90;\n"
		"  max_latency_p99 = 300.0;\n"
		"  max_missing = 0;\n"
		"  evaluate = \"round\";\n"
		"  window = 3600;\n"
		"  min_samples = 1;\n"
		"  providers = { gmail = { min_inbox_ratio = 0.95; }; };\n"
		"};\n"
		"report = {\n"
		"  textfile = \"/var/lib/prometheus/node-exporter/inboxprobe.prom\";\n"
		"  openmetrics = \"inboxprobe.om.txt\";\n"
		"  json = \"inboxprobe.json\";\n"
		"  junit = \"inboxprobe.junit.xml\";\n"
		"};\n"
		"imap_defaults = { url = \"imaps://imap.example.net\"; tls = \"required\"; };\n"
		"bounce_mailbox = { url = \"imaps://imap.example.net\"; username = \"probe@example.net\";\n"
		"                   password_file = \"%s\"; };\n"
		"state = { path = \"/var/lib/inboxprobe/state.db\"; retention_days = 30; };\n"
		"seeds = (\n"
		"  { address = \"seed1@gmail.example\";  provider = \"gmail\";\n"
		"    imap = { url = \"imaps://imap.gmail.com\"; username = \"seed1@gmail.example\";\n"
		"             password_file = \"%s\"; };\n"
		"    spam_folder = \"[Gmail]/Spam\";\n"
		"  }\n"
		");\n", ca, relay_secret, token_key, tpl, bounce_secret, seed_secret);
	char *path = put("otp.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	int r = config_load(path, &c, &e);
	if (r != 0)
		fail_msg("%s", e);
	assert_null(e);
	assert_string_equal(c->name, "otp");
	assert_string_equal(c->relay.host, "smtp.example.net");
	assert_int_equal(c->relay.port, 465);
	assert_int_equal(c->relay.implicit_tls, 1);
	assert_int_equal(c->relay.tls, TLS_REQUIRED);
	assert_string_equal(c->relay.ca_file, ca);
	assert_string_equal(c->relay.username, "probe@example.net");
	assert_string_equal(c->relay.password, "relay-pw");
	assert_string_equal(c->relay.from, "probe@example.net");
	assert_int_equal(c->probe.deadline, 300);
	assert_int_equal(c->probe.cleanup, CLEANUP_DELETE);
	assert_int_equal(c->probe.secret_len, 32);
	assert_memory_equal(c->probe.secret, "0123456789abcdef0123456789abcdef", 32);
	assert_non_null(strstr(c->probe.template_text, "Your code {{token}}"));
	assert_int_equal(c->probe.nheaders, 1);
	assert_string_equal(c->probe.headers[0], "X-Campaign: otp");
	assert_int_equal(c->limits.per_host, 8);
	assert_true(c->slo.min_inbox_ratio == 0.90);
	assert_int_equal(c->slo.max_missing, 0);
	assert_int_equal(c->nslo_overrides, 1);
	assert_string_equal(c->report.junit, "inboxprobe.junit.xml");
	assert_int_equal(c->has_bounce, 1);
	assert_string_equal(c->bounce.host, "imap.example.net");
	assert_int_equal(c->bounce.port, 993);
	assert_string_equal(c->bounce.password, "bounce-pw");
	assert_string_equal(c->state.path, "/var/lib/inboxprobe/state.db");
	assert_int_equal(c->nseeds, 1);
	assert_string_equal(c->seeds[0].address, "seed1@gmail.example");
	assert_string_equal(c->seeds[0].imap.host, "imap.gmail.com");
	assert_int_equal(c->seeds[0].imap.port, 993);
	assert_int_equal(c->seeds[0].imap.implicit_tls, 1);
	assert_string_equal(c->seeds[0].imap.password, "s3cret-seed1");
	assert_string_equal(c->seeds[0].spam_folder, "[Gmail]/Spam");
	assert_int_equal(c->seeds[0].line, line_of(text, "{ address = \"seed1"));
	assert_int_equal(c->nproviders, 1);
	assert_string_equal(c->providers[0], "gmail");
	config_free(c);
	free(text);
	free(path);
	free(relay_secret);
	free(token_key);
	free(bounce_secret);
	free(seed_secret);
	free(ca);
	free(tpl);
}

/* ---- defaults ---- */

static const char minimal[] =
	"relay = { url = \"smtp://127.0.0.1:2525\"; tls = \"none\"; from = \"probe@relay.test\"; };\n"
	"seeds = (\n"
	"  { address = \"seed1@inbox.test\"; provider = \"a\";\n"
	"    imap = { url = \"imap://127.0.0.1:1143\"; tls = \"none\"; password = \"pw\"; }; },\n"
	"  { address = \"seed2@inbox.test\"; provider = \"b\";\n"
	"    imap = { url = \"imaps://imap.inbox.test\"; password = \"pw\"; }; },\n"
	"  { address = \"seed3@inbox.test\"; provider = \"a\";\n"
	"    imap = { url = \"imap://imap.inbox.test\"; password = \"pw\"; }; }\n"
	");\n";

static void test_defaults(void **state)
{
	(void)state;
	char *path = put("minimal.conf", minimal, 0600);
	struct config *c = NULL;
	char *e = NULL;
	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	assert_string_equal(c->name, "minimal");
	assert_int_equal(c->relay.tls, TLS_NONE);
	assert_int_equal(c->relay.port, 2525);
	assert_int_equal(c->relay.implicit_tls, 0);
	assert_null(c->relay.username);
	assert_null(c->relay.password);
	assert_null(c->relay.ca_file);
	assert_int_equal(c->relay.connect_timeout, 10);
	assert_int_equal(c->relay.timeout, 30);
	assert_int_equal(c->probe.deadline, 300);
	assert_int_equal(c->probe.poll_interval, 5);
	assert_int_equal(c->probe.cleanup, CLEANUP_DELETE);
	assert_string_equal(c->probe.subject_prefix, "inboxprobe");
	assert_null(c->probe.secret);
	assert_null(c->probe.template_text);
	assert_int_equal(c->probe.nheaders, 0);
	assert_int_equal(c->limits.per_host, 64);
	assert_int_equal(c->limits.per_account, 2);
	assert_int_equal(c->probe.idle, 1);
	assert_int_equal(c->limits.connect_timeout, 10);
	assert_int_equal(c->limits.timeout, 30);
	assert_true(c->slo.min_inbox_ratio == 0.90);
	assert_true(c->slo.max_latency_p99 == 300.0);
	assert_int_equal(c->slo.max_missing, -1);
	assert_int_equal(c->slo.evaluate_window, 0);
	assert_int_equal(c->slo.window, 3600);
	assert_int_equal(c->slo.min_samples, 1);
	assert_null(c->report.textfile);
	assert_null(c->state.path);
	assert_int_equal(c->state.retention_days, 30);
	assert_int_equal(c->has_bounce, 0);
	assert_int_equal(c->nseeds, 3);
	/* username defaults to the address; tls to required; ports per scheme */
	assert_string_equal(c->seeds[0].imap.username, "seed1@inbox.test");
	assert_int_equal(c->seeds[0].imap.tls, TLS_NONE);
	assert_int_equal(c->seeds[1].imap.tls, TLS_REQUIRED);
	assert_int_equal(c->seeds[1].imap.port, 993);
	assert_int_equal(c->seeds[1].imap.implicit_tls, 1);
	assert_int_equal(c->seeds[2].imap.port, 143);
	assert_int_equal(c->seeds[2].imap.implicit_tls, 0);
	assert_null(c->seeds[0].spam_folder);
	/* providers distinct, first-seen order */
	assert_int_equal(c->nproviders, 2);
	assert_string_equal(c->providers[0], "a");
	assert_string_equal(c->providers[1], "b");
	config_free(c);
	free(path);
}

/* ---- error classes, one at a time, exact lines ---- */

struct bad_case {
	const char *relay_extra;   /* inserted into relay { } */
	const char *imap_extra;    /* inserted into the seed's imap { } */
	const char *top_extra;     /* appended at top level */
	const char *marker;        /* text on the line the error must name */
	const char *needle;        /* text the error must contain */
};

static const struct bad_case bad_cases[] = {
	{ "", "", "probe = {\n subject_prefix = \"\xC3\x80\x80\x80 code\";\n};\n", "subject_prefix", "probe.subject_prefix is not valid UTF-8" },
	{ "", "", "probe = {\n headers = ( \"X-A: \xFF\" );\n};\n", "headers", "not valid UTF-8" },
	{ "", "", "colour = \"blue\";\n", "colour", "unknown setting 'colour'" },
	{ "  timout = 30;\n", "", "", "timout", "unknown setting 'timout' in relay; did you mean 'timeout'?" },
	{ "  timeout = \"30\";\n", "", "", "timeout", "relay.timeout must be an integer, not a string" },
	{ "  timeout = 0;\n", "", "", "timeout", "relay.timeout must be greater than 0" },
	{ "  connect_timeout = 2.5;\n", "", "", "connect_timeout", "must be an integer, not a decimal number" },
	{ "", "", "imap_defaults = {\n tls = \"maybe\";\n};\n", "maybe", "imap_defaults.tls must be \"required\" or \"none\"" },
	{ "", "", "imap_defaults = { url = \"imap://h\";\n user = \"x\"; };\n", "user =", "unknown setting 'user' in imap_defaults; did you mean 'username'?" },
	{ "  username = \"probe\";\n", "", "", "username", "username without a password" },
	{ "", "", "probe = { deadline = -1; };\n", "deadline", "probe.deadline must be greater than 0" },
	{ "", "", "probe = {\n poll_interval = 0;\n};\n", "poll_interval", "probe.poll_interval must be greater than 0" },
	{ "", "", "probe = { cleanup = \"shred\"; };\n", "shred", "probe.cleanup must be" },
	{ "", "", "probe = { template = \"/nonexistent/otp.eml\"; };\n", "template", "probe.template: /nonexistent/otp.eml: No such file or directory" },
	/* integers are read in 64 bits and checked as written (libconfig 1.5 keeps
	 * only the low 32 bits of an integer without L suffix) */
	{ "", "", "probe = {\n deadline = 4294967301;\n};\n", "4294967301", "probe.deadline must be at most 86400 seconds (got 4294967301)" },
	{ "", "", "state = { retention_days = 4294967297; };\n", "retention_days", "state.retention_days must be at most 3650 days (got 4294967297)" },
	{ "  timeout = 2147483648;\n", "", "", "timeout", "relay.timeout must be at most 3600 seconds (got 2147483648)" },
	{ "  timeout =\n   4294967297;\n", "", "", "timeout", "relay.timeout must be at most 3600 seconds (got 4294967297)" },
	{ "  connect_timeout = 0x100000005;\n", "", "", "connect_timeout", "relay.connect_timeout must be at most 3600 seconds (got 0x100000005)" },
	{ "  connect_timeout = 3601;\n", "", "", "connect_timeout", "relay.connect_timeout must be at most 3600 seconds (got 3601)" },
	{ "", "", "probe = { deadline = 4294967296L; };\n", "deadline", "probe.deadline must be at most 86400 seconds (got 4294967296)" },
	{ "", "", "probe = { poll_interval = 86401; };\n", "poll_interval", "probe.poll_interval must be at most 86400 seconds (got 86401)" },
	{ "", "", "probe = { deadline = 99999999999999999999; };\n", "deadline", "probe.deadline must be at most 86400 seconds (got 99999999999999999999)" },
	{ "", "", "slo = { max_missing = -2147483649; };\n", "max_missing", "slo.max_missing must be at least 0 (got -2147483649)" },
	{ "", "", "slo = { max_missing = 1000001; };\n", "max_missing", "slo.max_missing must be at most 1000000 (got 1000001)" },
	{ "", "", "slo = { min_samples = 1000001; };\n", "min_samples", "slo.min_samples must be at most 1000000 (got 1000001)" },
	{ "", "", "slo = { window = 7776001; };\n", "window", "slo.window must be at most 7776000 seconds (90 days) (got 7776001)" },
	{ "", "", "probe = { idle = 1; };\n", "idle", "probe.idle must be true or false, not an integer" },
	{ "", "", "imap_limits = { per_host = 10001; };\n", "per_host", "imap_limits.per_host must be at most 10000 (got 10001)" },
	{ "", "", "imap_limits = { per_account = 4294967297; };\n", "per_account", "imap_limits.per_account must be at most 10000 (got 4294967297)" },
	{ "", "", "imap_limits = { timeout = 3601; };\n", "timeout", "imap_limits.timeout must be at most 3600 seconds (got 3601)" },
	{ "", "", "imap_limits = { connect_timeout = 0; };\n", "connect_timeout", "imap_limits.connect_timeout must be greater than 0 (got 0)" },
	{ "", "", "slo = {\n providers = {\n gmail = {\n max_missing = 4294967296;\n };\n };\n};\n", "max_missing = 4", "slo.providers.gmail.max_missing must be at most 1000000 (got 4294967296)" },
	/* URL schemes: only those valid for the setting */
	{ "", "", "imap_defaults = {\n url = \"http://x\"; };\n", "http://x", "imap_defaults.url: unsupported URL scheme \"http\" (use imap or imaps)" },
	{ "", "", "imap_defaults = {\n url = \"smtps://x\"; };\n", "smtps://x", "imap_defaults.url must be an imap:// or imaps:// URL, not smtps://" },
	{ "", "", "probe = {\n template = \"/\";\n};\n", "template", "probe.template: /: is a directory" },
	{ "", "", "probe = {\n headers = (\n \"X-Ok: 1\",\n \"Message-ID: <x@y>\" );\n};\n", "Message-ID:", "sets a header that inboxprobe sets itself" },
	{ "", "", "probe = {\n headers = (\n \"Bad Name: 1\" );\n};\n", "Bad Name", "invalid field name" },
	{ "", "", "probe = {\n headers = (\n \"NoColon\" );\n};\n", "NoColon", "is not \"Name: value\"" },
	{ "", "", "imap_limits = { per_host = 0; };\n", "per_host", "imap_limits.per_host must be greater than 0" },
	{ "", "", "imap_limits = {\n per_account = 0;\n};\n", "per_account", "imap_limits.per_account must be greater than 0" },
	{ "", "", "slo = { min_inbox_ratio = 1.01; };\n", "min_inbox_ratio", "slo.min_inbox_ratio must be between 0 and 1" },
	{ "", "", "slo = { min_inbox_ratio = -0.1; };\n", "min_inbox_ratio", "slo.min_inbox_ratio must be between 0 and 1" },
	{ "", "", "slo = { min_inbox_ratio = \"high\"; };\n", "min_inbox_ratio", "must be a number, not a string" },
	{ "", "", "slo = { max_missing = -1; };\n", "max_missing", "slo.max_missing must be at least 0" },
	{ "", "", "slo = { window = 0; };\n", "window", "slo.window must be greater than 0" },
	{ "", "", "slo = { min_samples = 0; };\n", "min_samples", "slo.min_samples must be greater than 0" },
	{ "", "", "slo = { evaluate = \"weekly\"; };\n", "weekly", "slo.evaluate must be \"round\" or \"window\"" },
	{ "", "", "slo = {\n providers = {\n gmail = {\n min_inbox_ratio = 2;\n };\n };\n};\n", "min_inbox_ratio = 2", "slo.providers.gmail.min_inbox_ratio must be between 0 and 1" },
	{ "", "", "slo = {\n providers = {\n gmail = {\n max_p99 = 2;\n };\n };\n};\n", "max_p99", "unknown setting 'max_p99' in slo.providers.gmail" },
	{ "", "", "state = { retention_days = 0; };\n", "retention_days", "state.retention_days must be greater than 0" },
	{ "", "", "report = { json = 1; };\n", "json", "report.json must be a string" },
	{ "", " ca_file = \"/nonexistent/ca.pem\";", "", "ca_file", "seeds[0].imap.ca_file: /nonexistent/ca.pem: No such file or directory" },
	{ "", " ca_file = \"/etc\";", "", "ca_file", "seeds[0].imap.ca_file: /etc: is a directory" },
	{ "", " port = 993;", "", "port = 993", "unknown setting 'port' in seeds[0].imap" },
	{ "", " password_env = \"X\";", "", "password_env", "set only one of password, password_file and password_env" },
};

static const char bad_fmt[] =
	"relay = {\n"
	"  url = \"smtp://127.0.0.1:2525\";\n"
	"  tls = \"none\";\n"
	"  from = \"probe@relay.test\";\n"
	"%s"
	"};\n"
	"seeds = (\n"
	"  { address = \"seed1@inbox.test\"; provider = \"gmail\";\n"
	"    imap = { url = \"imap://127.0.0.1:1143\"; tls = \"none\";\n"
	"             password = \"pw\";%s };\n"
	"  }\n"
	");\n"
	"%s";

static void test_error_classes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *bc = &bad_cases[i];
		char *text = xasprintf(bad_fmt, bc->relay_extra, bc->imap_extra, bc->top_extra);
		char *path = put("bad.cfg", text, 0600);
		struct config *c = (struct config *)1;
		char *e = NULL;
		int r = config_load(path, &c, &e);
		if (r == 0)
			fail_msg("case %zu loaded:\n%s", i, text);
		assert_null(c);
		assert_non_null(e);
		assert_error(e, path, line_of(text, bc->marker), bc->needle);
		if (count_lines(e) != 1)
			fail_msg("case %zu: expected one error, got:\n%s", i, e);
		free(e);
		free(path);
		free(text);
	}
}

/* Errors in a block that has no line of its own, and structural errors. */
static void test_structure_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *marker;   /* NULL: a file-level error without line */
		const char *needle;
	} cases[] = {
		{ "seeds = ( { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		  NULL, "no relay section" },
		{ "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n", NULL, "no seeds" },
		{ "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\nseeds = ();\n", "seeds", "seeds is empty" },
		{ "relay = { from = \"p@h.test\"; };\nseeds = ( { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		  "relay", "relay: url is required" },
		{ "relay = { url = \"smtp://h\"; };\nseeds = ( { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		  "relay", "relay: from is required" },
		{ "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\nseeds = (\n { provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		  "provider", "seeds[0]: address is required" },
		{ "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\nseeds = (\n { address = \"a b@c.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		  "a b@c", "contains a space" },
		{ "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\nseeds = (\n { address = \"a@b.test\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		  "address", "seeds[0]: provider is required" },
		{ "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\nseeds = (\n { address = \"a@b.test\"; provider = \"p\"; imap = { password = \"x\"; }; } );\n",
		  "address", "seeds[0].imap: no IMAP url" },
		{ "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\nseeds = (\n { address = \"a@b.test\"; provider = \"p\";\n imap = { url = \"smtp://h\"; password = \"x\"; }; } );\n",
		  "smtp://h\"; password", "seeds[0].imap.url must be an imap:// or imaps:// URL" },
		{ "relay = { url = \"smtps://h\"; tls = \"none\"; from = \"p@h.test\"; };\nseeds = (\n { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		  "smtps", "contradicts the smtps:// URL" },
		{ "relay = { url = \"smtp://h/path\"; from = \"p@h.test\"; };\nseeds = (\n { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		  "smtp://h/path", "no path, query or fragment" },
		{ "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\nseeds = (\n \"a@b.test\" );\n",
		  "\"a@b.test\"", "seeds[0] must be a group" },
		{ "relay = ( 1 );\nseeds = ( { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		  "relay", "relay must be a group" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *path = put("structure.cfg", cases[i].text, 0600);
		struct config *c = NULL;
		char *e = NULL;
		if (config_load(path, &c, &e) == 0)
			fail_msg("case %zu loaded", i);
		if (cases[i].marker != NULL) {
			assert_error(e, path, line_of(cases[i].text, cases[i].marker), cases[i].needle);
		} else {
			char *want = xasprintf("%s: ", path);
			if (strncmp(e, want, strlen(want)) != 0 || strstr(e, cases[i].needle) == NULL)
				fail_msg("case %zu: \"%s\"", i, e);
			free(want);
		}
		if (count_lines(e) != 1)
			fail_msg("case %zu: expected one error, got:\n%s", i, e);
		free(e);
		free(path);
	}
}

static void test_syntax_error(void **state)
{
	(void)state;
	const char *text = "relay = {\n  url = \"smtp://h\";\n  from = probe@h;\n};\n";
	char *path = put("syntax.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_null(c);
	assert_error(e, path, 3, "syntax error");
	free(e);
	free(path);

	/* A NUL byte: libconfig would cut "a\0b" to "a" silently and, in an
	 * @include, exit(2) from its scanner (found by tests/fuzz/fuzz_config). */
	static const char nul_text[] = "name = \"x\";\n@include \"\0\0\"\n";
	path = put("nul.cfg", "", 0600);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(nul_text, 1, sizeof(nul_text) - 1, f), sizeof(nul_text) - 1);
	fclose(f);
	e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_null(c);
	assert_error(e, path, 2, "a NUL byte: the configuration must be text");
	free(e);
	free(path);

	e = NULL;
	assert_int_equal(config_load("/nonexistent/inboxprobe.cfg", &c, &e), -1);
	assert_non_null(strstr(e, "/nonexistent/inboxprobe.cfg: "));
	assert_non_null(strstr(e, "No such file"));
	free(e);
}

/* ---- several errors in one run; the sample files ---- */

static void check_sample(const char *path)
{
	char *e = NULL;
	char *text = read_file_capped(path, 0, NULL, &e);
	assert_non_null(text);
	struct config *c = NULL;
	char *errs = NULL;
	int r = config_load(path, &c, &errs);
	int expected = 0;
	for (const char *p = text; (p = strstr(p, "\n#! ")) != NULL; p++) {
		int line = atoi(p + 4);
		const char *colon = strchr(p + 4, ':');
		const char *eol = strchr(p + 1, '\n');
		assert_non_null(colon);
		char *needle = xstrndup(colon + 2, (size_t)(eol - colon - 2));
		assert_int_equal(r, -1);
		assert_error(errs, path, line, needle);
		free(needle);
		expected++;
	}
	if (expected == 0) {
		if (r != 0)
			fail_msg("%s", errs);
		config_free(c);
	} else if (count_lines(errs) != expected) {
		fail_msg("%s: expected %d errors, got:\n%s", path, expected, errs);
	}
	free(errs);
	free(text);
}

static void test_sample_files(void **state)
{
	(void)state;
	const char *names[] = { "good-loopback.cfg", "broken-many.cfg", "broken-syntax.cfg",
	                        "broken-numbers.cfg" };
	/* Copies mode 0600: a file holding an inline password must not be
	 * readable by others, and git keeps no modes but the x bit. */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *src = xasprintf("%s/tests/data/config/%s", SRCDIR, names[i]);
		char *e = NULL;
		char *text = read_file_capped(src, 0, NULL, &e);
		assert_non_null(text);
		char *p = put(names[i], text, 0600);
		check_sample(p);
		free(p);
		free(text);
		free(src);
	}
	/* the loopback sample's values */
	char *p = xasprintf("%s/good-loopback.cfg", tmpdir);
	struct config *c = NULL;
	char *e = NULL;
	assert_int_equal(config_load(p, &c, &e), 0);
	assert_int_equal(c->nseeds, 3);
	assert_true(c->slo.min_inbox_ratio == 1.0);   /* integer accepted as a number */
	assert_string_equal(c->seeds[2].imap.host, "::1");
	assert_int_equal(c->seeds[2].imap.port, 1143);
	assert_string_equal(c->seeds[2].imap.username, "seed3");
	assert_string_equal(c->seeds[2].imap.password, "loopback-pw");
	assert_string_equal(c->seeds[1].spam_folder, "Junk");
	assert_int_equal(c->nproviders, 2);
	config_free(c);
	free(p);
}

/* ---- secrets ---- */

static void test_password_file_permissions(void **state)
{
	(void)state;
	const char *secret = "Tr0ub4dor&3-very-secret";
	char *content = xasprintf("%s\n", secret);
	char *pw = put("seed.secret", content, 0640);
	char *text = xasprintf(
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
		"seeds = (\n"
		"  { address = \"a@b.test\"; provider = \"p\";\n"
		"    imap = { url = \"imap://h\";\n"
		"      password_file = \"%s\"; }; }\n"
		");\n", pw);
	char *path = put("perm.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	char *want = xasprintf("seeds[0].imap.password_file: %s is readable by group or others (mode 0640); chmod 600 it", pw);
	assert_error(e, path, 5, want);
	assert_null(strstr(e, secret));
	assert_null(strstr(e, "Tr0ub"));
	free(want);
	free(e);

	/* writable by others is refused too */
	assert_int_equal(chmod(pw, 0602), 0);
	e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_error(e, path, 5, "by group or others (mode 0602)");
	assert_null(strstr(e, secret));
	free(e);

	/* 0600 loads, trailing newline stripped */
	assert_int_equal(chmod(pw, 0600), 0);
	e = NULL;
	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	assert_string_equal(c->seeds[0].imap.password, secret);
	config_free(c);

	/* a missing file */
	unlink(pw);
	e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	char *nf = xasprintf("seeds[0].imap.password_file: %s: No such file or directory", pw);
	assert_error(e, path, 5, nf);
	free(nf);
	free(e);

	free(path);
	free(text);
	free(pw);
	free(content);
}

static void test_secret_file(void **state)
{
	(void)state;
	char *key = put("short.key", "tooshort\n", 0600);
	char *text = xasprintf(
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
		"probe = { secret_file = \"%s\"; };\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		key);
	char *path = put("key.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_error(e, path, 2, "fewer than 16 bytes");
	assert_null(strstr(e, "tooshort"));
	free(e);
	free(put("short.key", "0123456789abcdef\n", 0644));
	e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_error(e, path, 2, "is readable by group or others (mode 0644)");
	free(e);
	free(put("short.key", "0123456789abcdef\r\n", 0600));
	e = NULL;
	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	assert_int_equal(c->probe.secret_len, 16);
	assert_memory_equal(c->probe.secret, "0123456789abcdef", 16);
	config_free(c);
	free(path);
	free(text);
	free(key);
}

/* probe.previous_secret_files: earlier keys (rotation), checked like
 * secret_file (mode, length), refused without a secret_file. */
static void test_previous_secret_files(void **state)
{
	(void)state;
	char *cur = put("cur.key", "current-key-0123456789\n", 0600);
	char *old1 = put("old1.key", "first-old-key-012345\n", 0600);
	char *old2 = put("old2.key", "second-old-key-01234", 0600);
	char *text = xasprintf(
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
		"probe = { secret_file = \"%s\";\n"
		"  previous_secret_files = ( \"%s\", \"%s\" ); };\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		cur, old1, old2);
	char *path = put("prev.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;

	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	assert_int_equal(c->probe.secret_len, 22);
	assert_int_equal(c->probe.nold_secrets, 2);
	assert_int_equal(c->probe.old_secrets[0].len, 20);
	assert_memory_equal(c->probe.old_secrets[0].key, "first-old-key-012345", 20);
	assert_int_equal(c->probe.old_secrets[1].len, 20);
	assert_memory_equal(c->probe.old_secrets[1].key, "second-old-key-01234", 20);
	config_free(c);

	/* an old key readable by others, or too short: refused like secret_file */
	free(put("old2.key", "second-old-key-01234", 0640));
	e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_error(e, path, 3, "probe.previous_secret_files[1]");
	assert_non_null(strstr(e, "readable by group or others (mode 0640)"));
	free(e);
	free(put("old2.key", "short\n", 0600));
	e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_error(e, path, 3, "fewer than 16 bytes");
	assert_null(strstr(e, "short\n"));
	free(e);
	free(text);
	free(path);

	/* without secret_file nothing is checked: refused, said why */
	text = xasprintf(
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
		"probe = { previous_secret_files = ( \"%s\" ); };\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		old1);
	path = put("prev2.cfg", text, 0600);
	e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_error(e, path, 2, "probe.previous_secret_files needs probe.secret_file");
	free(e);
	free(text);
	free(path);
	free(cur);
	free(old1);
	free(old2);
}

static void test_password_env(void **state)
{
	(void)state;
	const char *text =
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; username = \"p@h.test\";\n"
		"  password_env = \"INBOXPROBE_TEST_RELAY_PW\"; };\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n";
	char *path = put("env.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	unsetenv("INBOXPROBE_TEST_RELAY_PW");
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_error(e, path, 2, "environment variable INBOXPROBE_TEST_RELAY_PW is not set or empty");
	free(e);
	setenv("INBOXPROBE_TEST_RELAY_PW", "", 1);
	e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_error(e, path, 2, "INBOXPROBE_TEST_RELAY_PW");
	free(e);
	setenv("INBOXPROBE_TEST_RELAY_PW", "env-secret-value", 1);
	e = NULL;
	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	assert_string_equal(c->relay.password, "env-secret-value");
	config_free(c);
	/* issue 12 section 4: CR or LF in the environment would inject IMAP or
	 * SMTP commands after LOGIN/AUTH; refused at load, the value never shown */
	const char *bad[] = { "pw\r\nA1 DELETE INBOX", "pw\n", "p\rw" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("INBOXPROBE_TEST_RELAY_PW", bad[i], 1);
		e = NULL;
		assert_int_equal(config_load(path, &c, &e), -1);
		assert_error(e, path, 2, "relay.password_env: environment variable "
		             "INBOXPROBE_TEST_RELAY_PW holds a CR or LF");
		assert_null(strstr(e, "DELETE"));
		free(e);
	}
	unsetenv("INBOXPROBE_TEST_RELAY_PW");
	free(path);
}

/* ---- issue 12 sections 3 and 4: files and bytes refused at load ---- */

/* A configuration that holds an inline password must not be readable by
 * group or others (docs/SPEC.md "Secrets"), nor a file it @includes. */
static void test_inline_password_file_mode(void **state)
{
	(void)state;
	const char *text =
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"p\";\n"
		"  imap = { url = \"imap://h\"; password = \"inline-secret\"; }; } );\n";
	char *path = put("inline.cfg", text, 0644);
	struct config *c = NULL;
	char *e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_error(e, path, 3, "seeds[0].imap.password: ");
	assert_non_null(strstr(e, "holds a password and is readable by group or others (mode 0644)"));
	assert_null(strstr(e, "inline-secret"));
	free(e);
	free(path);
	path = put("inline.cfg", text, 0640);
	e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	free(e);
	free(path);
	/* the password in an included file, relative to the configuration */
	char *inc = put("inline-inc.cfg",
	                "seeds = ( { address = \"a@b.test\"; provider = \"p\";\n"
	                "  imap = { url = \"imap://h\"; password = \"inline-secret\"; }; } );\n", 0604);
	path = put("inline-main.cfg", "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
	           "@include \"inline-inc.cfg\"\n", 0644);
	e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_non_null(strstr(e, "inline-inc.cfg holds a password and is readable by group or others (mode 0604)"));
	free(e);
	assert_int_equal(chmod(inc, 0600), 0);
	e = NULL;
	if (config_load(path, &c, &e) != 0)    /* the main file holds none: 0644 is fine */
		fail_msg("%s", e);
	config_free(c);
	free(inc);
	free(path);
}

/* A FIFO, a device, a directory or an oversized file as the configuration
 * or as an @include is refused before libconfig reads it: no hang. */
static void test_config_not_regular(void **state)
{
	(void)state;
	char *fifo = xasprintf("%s/fifo.cfg", tmpdir);
	char *dir = xasprintf("%s/dir.cfg", tmpdir);
	struct config *c = NULL;
	char *e = NULL;

	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(config_load(fifo, &c, &e), -1);
	assert_non_null(strstr(e, "fifo.cfg: is a FIFO, not a regular file"));
	free(e);
	e = NULL;
	assert_int_equal(config_load("/dev/zero", &c, &e), -1);
	assert_non_null(strstr(e, "/dev/zero: is a character device, not a regular file"));
	free(e);
	assert_int_equal(mkdir(dir, 0700), 0);
	e = NULL;
	assert_int_equal(config_load(dir, &c, &e), -1);
	assert_non_null(strstr(e, "is a directory"));
	free(e);

	/* @include of a directory and of a FIFO: FILE:LINE of the directive */
	char *main1 = put("incdir.cfg", "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
	                  "# a comment\n  @include \"dir.cfg\"\n@include \"fifo.cfg\"\n", 0600);
	e = NULL;
	assert_int_equal(config_load(main1, &c, &e), -1);
	assert_error(e, main1, 3, "@include \"dir.cfg\": ");
	assert_error(e, main1, 3, "dir.cfg: is a directory, not a regular file");
	assert_error(e, main1, 4, "fifo.cfg: is a FIFO, not a regular file");
	free(e);

	/* a file that includes itself 8 times: 8^10 reads without a budget;
	 * refused at once, naming the line */
	char *self = put("self.cfg", "@include \"self.cfg\"\n@include \"self.cfg\"\n@include \"self.cfg\"\n"
	                 "@include \"self.cfg\"\n@include \"self.cfg\"\n@include \"self.cfg\"\n"
	                 "@include \"self.cfg\"\n@include \"self.cfg\"\n", 0600);
	e = NULL;
	assert_int_equal(config_load(self, &c, &e), -1);
	assert_non_null(strstr(e, "more included files than 64"));
	free(e);
	free(self);

	/* over 16 MiB: refused from its size, never parsed */
	char *big = xasprintf("%s/big.cfg", tmpdir);
	FILE *f = fopen(big, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), (16 << 20) + 1), 0);
	fclose(f);
	e = NULL;
	assert_int_equal(config_load(big, &c, &e), -1);
	assert_non_null(strstr(e, "big.cfg: larger than 16777216 bytes"));
	free(e);
	unlink(fifo);
	rmdir(dir);
	unlink(big);
	free(fifo);
	free(dir);
	free(big);
	free(main1);
}

/* 8-bit or control bytes in seed addresses and relay.from; a name that is
 * not UTF-8; lock_dir must be absolute. */
static void test_bad_bytes(void **state)
{
	(void)state;
	expect_one_error("addr8.cfg",
	                 "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
	                 "seeds = ( { address = \"j\xc3\xbcrgen@b.test\"; provider = \"p\";\n"
	                 "  imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
	                 2, "contains a non-ASCII (8-bit) byte");
	expect_one_error("from8.cfg",
	                 "relay = { url = \"smtp://h\"; from = \"p\xa0@h.test\"; };\n"
	                 "seeds = ( { address = \"a@b.test\"; provider = \"p\";\n"
	                 "  imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
	                 1, "contains a non-ASCII (8-bit) byte");
	expect_one_error("addrctl.cfg",
	                 "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
	                 "seeds = ( { address = \"a\x1b@b.test\"; provider = \"p\";\n"
	                 "  imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
	                 2, "contains a control character");
	expect_one_error("name8.cfg",
	                 "name = \"otp-\xe9t\xe9\";\n"      /* Latin-1, not UTF-8 */
	                 "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
	                 "seeds = ( { address = \"a@b.test\"; provider = \"p\";\n"
	                 "  imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
	                 1, "name is not valid UTF-8");
	expect_one_error("lockrel.cfg",
	                 "lock_dir = \"var/lock\";\n"
	                 "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
	                 "seeds = ( { address = \"a@b.test\"; provider = \"p\";\n"
	                 "  imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
	                 1, "lock_dir must be an absolute path");
}

/* n seeds, s0..s{n-1}, providers p{(n-i)%7}, then `extra` (or nothing). */
static char *many_seeds(size_t n, const char *extra)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_adds(&sb, "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
	            "imap_defaults = { url = \"imap://h\"; password = \"x\"; };\nseeds = (\n");
	for (size_t i = 0; i < n; i++)
		strbuf_addf(&sb, "%s{ address = \"s%zu@b.test\"; provider = \"p%zu\"; }\n",
		            i ? "," : "", i, (n - i) % 7);
	strbuf_addf(&sb, "%s);\n", extra ? extra : "");
	return strbuf_detach(&sb);
}

/* 40,000 seeds: duplicates found by sorting (the first seed's line named),
 * providers in first-seen order. (It was quadratic: 10 s for 40,000.) */
static void test_many_seeds(void **state)
{
	(void)state;
	const size_t n = 40000;
	char *text = many_seeds(n, ",{ address = \"S17@B.test\"; provider = \"p0\"; }\n");
	char *path = put("many.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	/* line 1 relay, 2 imap_defaults, 3 "seeds = (", seed i on line 4 + i */
	assert_error(e, path, (int)n + 4, "seeds[40000].address S17@B.test is a duplicate of the seed on line 21");
	assert_int_equal(count_lines(e), 1);
	free(e);
	free(path);
	free(text);
	text = many_seeds(n, NULL);
	path = put("many.cfg", text, 0600);
	e = NULL;
	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	assert_int_equal(c->nseeds, n);
	assert_int_equal(c->nproviders, 7);
	for (size_t i = 0; i < 7; i++) {
		char want[8];
		snprintf(want, sizeof want, "p%zu", (n - i) % 7);
		assert_string_equal(c->providers[i], want);
	}
	config_free(c);
	free(path);
	free(text);
}

/* ---- imap_defaults ---- */

static void test_imap_defaults_merge(void **state)
{
	(void)state;
	char *pw = put("default.secret", "default-pw\n", 0600);
	char *text = xasprintf(
		"relay = { url = \"smtp://h\"; from = \"bounces@h.test\"; };\n"
		"imap_defaults = { url = \"imaps://imap.example.net\"; password_file = \"%s\"; };\n"
		"bounce_mailbox = { };\n"
		"seeds = (\n"
		"  { address = \"a@b.test\"; provider = \"p\"; },\n"
		"  { address = \"c@d.test\"; provider = \"q\";\n"
		"    imap = { url = \"imap://127.0.0.1:1143\"; tls = \"none\"; username = \"cuser\"; password = \"own\"; }; }\n"
		");\n", pw);
	char *path = put("merge.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	assert_string_equal(c->seeds[0].imap.host, "imap.example.net");
	assert_int_equal(c->seeds[0].imap.port, 993);
	assert_int_equal(c->seeds[0].imap.tls, TLS_REQUIRED);
	assert_string_equal(c->seeds[0].imap.username, "a@b.test");
	assert_string_equal(c->seeds[0].imap.password, "default-pw");
	assert_string_equal(c->seeds[1].imap.host, "127.0.0.1");
	assert_int_equal(c->seeds[1].imap.port, 1143);
	assert_int_equal(c->seeds[1].imap.tls, TLS_NONE);
	assert_string_equal(c->seeds[1].imap.username, "cuser");
	assert_string_equal(c->seeds[1].imap.password, "own");
	assert_int_equal(c->has_bounce, 1);
	assert_string_equal(c->bounce.host, "imap.example.net");
	assert_string_equal(c->bounce.username, "bounces@h.test");
	assert_string_equal(c->bounce.password, "default-pw");
	config_free(c);
	free(path);
	free(text);

	/* a broken default is reported once, at its own line */
	text = xasprintf(
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
		"imap_defaults = { url = \"pop3://mail.example.net\"; password = \"x\"; };\n"
		"seeds = (\n"
		"  { address = \"a@b.test\"; provider = \"p\"; },\n"
		"  { address = \"c@d.test\"; provider = \"p\"; }\n"
		");\n");
	path = put("merge-bad.cfg", text, 0600);
	e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_error(e, path, 2, "unsupported URL scheme \"pop3\"");
	assert_int_equal(count_lines(e), 1);
	free(e);
	free(path);
	free(text);
	free(pw);
}

/* ---- a broken secret in imap_defaults (tester's SIGSEGV) ---- */

/* Load text (written to name) and expect exactly one error, at line with needle. */
static void expect_one_error(const char *name, const char *text, int line, const char *needle)
{
	char *path = put(name, text, 0600);
	struct config *c = (struct config *)1;
	char *e = NULL;
	if (config_load(path, &c, &e) == 0)
		fail_msg("%s loaded:\n%s", name, text);
	assert_null(c);
	assert_error(e, path, line, needle);
	if (count_lines(e) != 1)
		fail_msg("%s: expected one error, got:\n%s", name, e);
	free(e);
	free(path);
}

static void test_defaults_secret_failure(void **state)
{
	(void)state;
	unsetenv("INBOXPROBE_TEST_NOPE_UNSET");
	/* the tester's file: the defaults' secret fails, seeds and the bounce
	 * mailbox inherit it; one error at the imap_defaults line, no crash */
	const char *env_text =
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
		"imap_defaults = { url = \"imaps://localhost:993\"; ca_file = \"/etc/hostname\";\n"
		"  password_env = \"INBOXPROBE_TEST_NOPE_UNSET\"; };\n"
		"bounce_mailbox = { };\n"
		"seeds = (\n"
		"  { address = \"a@b.test\"; provider = \"p\"; },\n"
		"  { address = \"c@d.test\"; provider = \"p\"; }\n"
		");\n";
	expect_one_error("defenv.cfg", env_text, 3,
	                 "imap_defaults.password_env: environment variable INBOXPROBE_TEST_NOPE_UNSET is not set or empty");

	/* a missing password_file, and one readable by others */
	char *pw = xasprintf("%s/nonexistent.pass", tmpdir);
	char *text = xasprintf(
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
		"imap_defaults = { url = \"imaps://localhost:993\"; password_file = \"%s\"; };\n"
		"bounce_mailbox = { username = \"b@h.test\"; };\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"p\"; } );\n", pw);
	char *want = xasprintf("imap_defaults.password_file: %s: No such file or directory", pw);
	expect_one_error("defmissing.cfg", text, 2, want);
	free(want);
	free(put("nonexistent.pass", "pw\n", 0644));
	want = xasprintf("imap_defaults.password_file: %s is readable by group or others (mode 0644)", pw);
	expect_one_error("defmissing.cfg", text, 2, want);
	free(want);
	free(put("nonexistent.pass", "", 0600));
	want = xasprintf("imap_defaults.password_file: %s: is empty", pw);
	expect_one_error("defmissing.cfg", text, 2, want);
	free(want);
	free(text);

	/* a seed with its own working password is unaffected; its own broken
	 * one is reported at its own line, the defaults' at theirs */
	free(put("nonexistent.pass", "pw\n", 0644));
	text = xasprintf(
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
		"imap_defaults = { url = \"imaps://localhost:993\"; password_file = \"%s\"; };\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"p\";\n"
		"  imap = { password_env = \"INBOXPROBE_TEST_NOPE_UNSET\"; }; },\n"
		"  { address = \"c@b.test\"; provider = \"p\"; imap = { password = \"own\"; }; } );\n", pw);
	char *path = put("defmixed.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_error(e, path, 2, "imap_defaults.password_file: ");
	assert_error(e, path, 4, "seeds[0].imap.password_env: environment variable INBOXPROBE_TEST_NOPE_UNSET");
	assert_int_equal(count_lines(e), 2);
	free(e);
	free(path);
	free(text);
	free(pw);
}

/* Every secret/file error names the setting's path. */
static void test_secret_messages_name_setting(void **state)
{
	(void)state;
	char *pw = put("open.pass", "pw\n", 0644);
	char *key = put("open.key", "0123456789abcdef0123456789abcdef\n", 0644);
	char *text = xasprintf(
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; username = \"u\";\n"
		"  password_file = \"%s\"; };\n"
		"probe = {\n"
		"  secret_file = \"%s\"; };\n"
		"imap_defaults = { url = \"imap://h\";\n"
		"  password_file = \"%s\"; };\n"
		"bounce_mailbox = {\n"
		"  password_file = \"%s\"; };\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"p\";\n"
		"  imap = { password_file = \"%s\"; }; } );\n", pw, key, pw, pw, pw);
	char *path = put("names.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	static const struct {
		int line;
		const char *setting;
	} want[] = {
		{ 2, "relay.password_file" }, { 4, "probe.secret_file" }, { 6, "imap_defaults.password_file" },
		{ 8, "bounce_mailbox.password_file" }, { 10, "seeds[0].imap.password_file" },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char *n = xasprintf("%s: %s is readable by group or others (mode 0644); chmod 600 it",
		                    want[i].setting, strcmp(want[i].setting, "probe.secret_file") == 0 ? key : pw);
		assert_error(e, path, want[i].line, n);
		free(n);
	}
	assert_int_equal(count_lines(e), 5);
	free(e);
	free(path);
	free(text);

	/* a directory as a secret, and a template that is a directory: the
	 * path is said once */
	text = xasprintf(
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
		"probe = { secret_file = \"%s\";\n"
		"  template = \"%s\"; };\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		tmpdir, tmpdir);
	path = put("dirs.cfg", text, 0600);
	e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	char *n = xasprintf("probe.secret_file: %s: is a directory", tmpdir);
	assert_error(e, path, 2, n);
	free(n);
	n = xasprintf("probe.template: %s: is a directory\n", tmpdir);
	assert_non_null(strstr(e, n));
	free(n);
	assert_int_equal(count_lines(e), 2);
	free(e);
	free(path);
	free(text);
	free(pw);
	free(key);
}

/* ---- integers: values at the bounds load, as written ---- */

static void test_integer_bounds(void **state)
{
	(void)state;
	const char *text =
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; connect_timeout = 3600; timeout = 3600L; };\n"
		"probe = { deadline = 86400; poll_interval = 86400; };\n"
		"imap_limits = { per_host = 1000; per_account = 1000; connect_timeout = 3600; timeout = 0xE10; };\n"
		"slo = { max_missing = 1000000; min_samples = 1000000; window = 7776000;\n"
		"        max_latency_p99 = 4294967301; min_inbox_ratio = 1; };\n"
		"state = { retention_days = 3650; };\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n";
	char *path = put("bounds.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	assert_int_equal(c->relay.connect_timeout, 3600);
	assert_int_equal(c->relay.timeout, 3600);
	assert_int_equal(c->probe.deadline, 86400);
	assert_int_equal(c->probe.poll_interval, 86400);
	assert_int_equal(c->limits.per_host, 1000);
	assert_int_equal(c->limits.timeout, 3600);
	assert_int_equal(c->slo.max_missing, 1000000);
	assert_int_equal(c->slo.window, 7776000);
	/* an integer for a number setting is read in 64 bits too, not as 5 */
	assert_true(c->slo.max_latency_p99 == 4294967301.0);
	assert_true(c->slo.min_inbox_ratio == 1.0);
	assert_int_equal(c->state.retention_days, 3650);
	config_free(c);
	free(path);
}

/* ---- libconfig's "duplicate setting name" names the setting ---- */

static void test_duplicate_setting(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int line;
		const char *needle;
	} cases[] = {
		{ "probe = {\n  deadline = 30;\n  deadline = 40;\n};\n", 3,
		  "duplicate setting name 'deadline'" },
		{ "relay = { url = \"smtp://a\"; from = \"p@h.test\"; url = \"smtp://b\"; };\n", 1,
		  "duplicate setting name 'url'" },
		{ "name = \"a\";\nstate = { path = \"x\"; }; name = \"b\";\n", 2,
		  "duplicate setting name (line: \"state = { path = \"x\"; }; name = \"b\";\")" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *path = put("dup.cfg", cases[i].text, 0600);
		struct config *c = NULL;
		char *e = NULL;
		assert_int_equal(config_load(path, &c, &e), -1);
		assert_error(e, path, cases[i].line, cases[i].needle);
		assert_int_equal(count_lines(e), 1);
		free(e);
		free(path);
	}
	/* a line that may hold a password is never quoted */
	const char *pw_text =
		"relay = { url = \"smtp://a\"; from = \"p@h.test\"; };\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\";\n"
		"  username = \"u\"; password = \"Tr0ub4dor\"; username = \"v\"; password = \"Tr0ub4dor\"; }; } );\n";
	char *path = put("duppw.cfg", pw_text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_error(e, path, 3, "duplicate setting name");
	assert_null(strstr(e, "Tr0ub"));
	free(e);
	free(path);
}

/* ---- URLs ---- */

static void test_parse_url(void **state)
{
	(void)state;
	static const struct {
		const char *url;
		const char *scheme;
		const char *host;
		int port;
	} good[] = {
		{ "smtp://smtp.example.net", "smtp", "smtp.example.net", 587 },
		{ "smtps://smtp.example.net", "smtps", "smtp.example.net", 465 },
		{ "imap://imap.example.net", "imap", "imap.example.net", 143 },
		{ "imaps://imap.example.net", "imaps", "imap.example.net", 993 },
		{ "IMAPS://Imap.Example.Net:10993/", "imaps", "Imap.Example.Net", 10993 },
		{ "smtp://127.0.0.1:25", "smtp", "127.0.0.1", 25 },
		{ "imap://[::1]:1143", "imap", "::1", 1143 },
		{ "imaps://[2001:db8::1]", "imaps", "2001:db8::1", 993 },
		{ "smtp://[::ffff:192.0.2.1]:2525", "smtp", "::ffff:192.0.2.1", 2525 },
		{ "smtp://h:65535", "smtp", "h", 65535 },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const char *scheme = NULL;
		char *host = NULL, *e = NULL;
		int port = 0;
		if (config_parse_url(good[i].url, &scheme, &host, &port, &e) != 0)
			fail_msg("%s: %s", good[i].url, e);
		assert_string_equal(scheme, good[i].scheme);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
		free(host);
	}
	static const struct {
		const char *url;
		const char *needle;
	} bad[] = {
		{ "http://example.net", "unsupported URL scheme" },
		{ "pop3s://example.net", "unsupported URL scheme" },
		{ "example.net", "not a URL" },
		{ "", "empty URL" },
		{ "imap://", "empty host" },
		{ "imap://:143", "empty host" },
		{ "imap://user@example.net", "no user name" },
		{ "imap://example.net/INBOX", "no path" },
		{ "imap://example.net?x=1", "no path" },
		{ "imap://example.net#frag", "no path" },
		{ "imap://example.net:0", "port must be 1..65535" },
		{ "imap://example.net:65536", "port must be 1..65535" },
		{ "imap://example.net:99999999999999999999", "invalid port" },
		{ "imap://example.net:14x", "invalid port" },
		{ "imap://example.net:", "expected :port" },
		{ "imap://[::1", "unterminated" },
		{ "imap://[]", "empty host" },
		{ "imap://[::1]x", "expected :port" },
		{ "imap://[zz::1]", "invalid IPv6" },
		{ "imap://::1", "empty host" },
		{ "imap://exa mple.net", "invalid character" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *scheme = NULL;
		char *host = NULL, *e = NULL;
		int port = 0;
		if (config_parse_url(bad[i].url, &scheme, &host, &port, &e) == 0)
			fail_msg("%s parsed", bad[i].url);
		assert_null(host);
		if (strstr(e, bad[i].needle) == NULL)
			fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].url, e, bad[i].needle);
		free(e);
	}
	/* user information (which may hold a password) is never echoed */
	{
		const char *scheme = NULL;
		char *host = NULL, *e = NULL;
		int port = 0;
		assert_int_not_equal(config_parse_url("smtps://probe:Hunter2Secret@smtp.example.net",
		                                      &scheme, &host, &port, &e), 0);
		assert_non_null(strstr(e, "smtps://***@smtp.example.net"));
		assert_null(strstr(e, "Hunter2"));
		free(e);
		e = NULL;
		assert_int_not_equal(config_parse_url("imap://u:p@ss@h.example/x", &scheme, &host, &port,
		                                      &e), 0);
		assert_null(strstr(e, "p@ss"));
		free(e);
	}
}

/* ---- SLO overrides ---- */

static void test_slo_for(void **state)
{
	(void)state;
	const char *text =
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
		"slo = { min_inbox_ratio = 0.8; max_latency_p99 = 120; max_missing = 3; evaluate = \"window\";\n"
		"        window = 600; min_samples = 5;\n"
		"        providers = { gmail = { min_inbox_ratio = 0.95; }; outlook = { max_latency_p99 = 60.5; max_missing = 0; };\n"
		"                      unused = { min_inbox_ratio = 0; }; }; };\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"gmail\"; imap = { url = \"imap://h\"; password = \"x\"; }; },\n"
		"          { address = \"c@b.test\"; provider = \"outlook\"; imap = { url = \"imap://h\"; password = \"x\"; }; },\n"
		"          { address = \"d@b.test\"; provider = \"yahoo\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n";
	char *path = put("slo.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	struct slo_conf s = config_slo_for(c, "gmail");
	assert_true(s.min_inbox_ratio == 0.95);
	assert_true(s.max_latency_p99 == 120);
	assert_int_equal(s.max_missing, 3);
	assert_int_equal(s.evaluate_window, 1);
	assert_int_equal(s.window, 600);
	assert_int_equal(s.min_samples, 5);
	s = config_slo_for(c, "outlook");
	assert_true(s.min_inbox_ratio == 0.8);
	assert_true(s.max_latency_p99 == 60.5);
	assert_int_equal(s.max_missing, 0);
	s = config_slo_for(c, "yahoo");
	assert_true(s.min_inbox_ratio == 0.8);
	assert_true(s.max_latency_p99 == 120);
	assert_int_equal(s.max_missing, 3);
	s = config_slo_for(c, "unused");
	assert_true(s.min_inbox_ratio == 0.0);
	config_free(c);
	free(path);
}

/* ---- providers = { ... }, slo.require_auth, slo.min_primary_ratio (issue 11) ---- */

static void test_providers_and_auth(void **state)
{
	(void)state;
	const char *text =
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
		"slo = { require_auth = ( \"spf\", \"DKIM\", \"dmarc\" ); min_primary_ratio = 0.8; };\n"
		"providers = { gmail = { authserv_id = ( \"mx.google.com\", \"*.google.com\" ); };\n"
		"              o365 = { auth_results = \"microsoft\"; };\n"
		"              fm = { authserv_id = \"*.messagingengine.com\"; auth_results = \"standard\"; }; };\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"gmail\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n";
	char *path = put("prov.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	assert_int_equal(c->slo.require_auth, 7u);
	assert_true(c->slo.min_primary_ratio == 0.8);
	const struct provider_conf *pc = config_provider(c, "gmail");
	assert_non_null(pc);
	assert_int_equal(pc->nauthserv_ids, 2);
	assert_string_equal(pc->authserv_ids[1], "*.google.com");
	assert_int_equal(pc->microsoft, -1);
	assert_int_equal(config_provider(c, "o365")->microsoft, 1);
	assert_int_equal(config_provider(c, "fm")->microsoft, 0);
	assert_string_equal(config_provider(c, "fm")->authserv_ids[0], "*.messagingengine.com");
	assert_null(config_provider(c, "yahoo"));
	config_free(c);
	free(path);

	/* defaults: nothing required, no primary ratio */
	path = put("prov0.cfg", "relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
	           "seeds = ( { address = \"a@b.test\"; provider = \"g\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
	           0600);
	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	assert_int_equal(c->slo.require_auth, 0u);
	assert_false(c->slo.min_primary_ratio > 0);
	config_free(c);
	free(path);

	const char *seedline = "seeds = ( { address = \"a@b.test\"; provider = \"g\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n";
	char *t = xasprintf("relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\nslo = { require_auth = ( \"dkim\", \"arc\" ); };\n%s", seedline);
	expect_one_error("arc.cfg", t, 2, "slo.require_auth: \"arc\" cannot be required");
	free(t);
	t = xasprintf("relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\nslo = { require_auth = ( \"dkim\", \"spff\" ); };\n%s", seedline);
	expect_one_error("spff.cfg", t, 2, "slo.require_auth: unknown method \"spff\"");
	free(t);
	t = xasprintf("relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\nproviders = { g = { auth_results = \"exchange\"; }; };\n%s", seedline);
	expect_one_error("ar.cfg", t, 2, "providers.g.auth_results must be \"standard\" or \"microsoft\", not \"exchange\"");
	free(t);
	t = xasprintf("relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\nproviders = { g = { authserv_id = ( \"mx.*.com\" ); }; };\n%s", seedline);
	expect_one_error("id.cfg", t, 2, "providers.g.authserv_id: each pattern is a host name or \"*.suffix\"");
	free(t);
	t = xasprintf("relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\nproviders = { g = { authserv = ( \"x\" ); }; };\n%s", seedline);
	expect_one_error("key.cfg", t, 2, "unknown setting 'authserv' in providers.g");
	free(t);
}

/* ---- templates ---- */

static void test_template(void **state)
{
	(void)state;
	char *tpl = put("bad.eml", "This is not a message\n", 0644);
	char *text = xasprintf(
		"relay = { url = \"smtp://h\"; from = \"p@h.test\"; };\n"
		"probe = {\n"
		"  template = \"%s\";\n"
		"};\n"
		"seeds = ( { address = \"a@b.test\"; provider = \"p\"; imap = { url = \"imap://h\"; password = \"x\"; }; } );\n",
		tpl);
	char *path = put("tpl.cfg", text, 0600);
	struct config *c = NULL;
	char *e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_error(e, path, 3, "line 1: not a header field");
	free(e);
	/* raw 8-bit text that cannot be encoded for us: refused at load time */
	free(put("bad.eml", "Subject: ok\nX-Note: caf\xc3\xa9\n\nbody\n", 0644));
	e = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	char *want = xasprintf("probe.template: %s: line 2: the X-Note field holds raw non-ASCII (8-bit) text", tpl);
	assert_error(e, path, 3, want);
	assert_int_equal(count_lines(e), 1);
	free(want);
	free(e);
	/* an 8-bit display name is fine (encoded when the probe is built) */
	free(put("bad.eml", "From: \"S\xc3\xa9" "curit\xc3\xa9\" <a@b.test>\n\nbody\n", 0644));
	e = NULL;
	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	config_free(c);
	free(put("bad.eml", "Subject: {{token}}\r\nFrom: a@b.test\r\n\r\nbody {{token}}\r\n", 0644));
	e = NULL;
	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	assert_string_equal(c->probe.template_path, tpl);
	assert_string_equal(c->probe.template_text, "Subject: {{token}}\r\nFrom: a@b.test\r\n\r\nbody {{token}}\r\n");
	config_free(c);
	free(path);
	free(text);
	free(tpl);
}

/* @include is relative to the configuration's directory, whatever the
 * working directory; an absolute @include still works. */
static void test_include_relative(void **state)
{
	(void)state;
	char cwd[4096];
	struct config *c = NULL;
	char *err = NULL;
	char *seeds = put("inc-seeds.cfg",
	                  "seeds = ( { address = \"s@x.example\"; provider = \"x\";\n"
	                  "  imap = { url = \"imaps://h.example\"; password = \"pw\"; }; } );\n", 0600);
	char *rel = put("inc-main.cfg",
	                "relay = { url = \"smtp://127.0.0.1:1\"; tls = \"none\"; from = \"a@b.example\"; };\n"
	                "@include \"inc-seeds.cfg\"\n", 0644);
	char *abstext = xasprintf("relay = { url = \"smtp://127.0.0.1:1\"; tls = \"none\"; "
	                          "from = \"a@b.example\"; };\n@include \"%s\"\n", seeds);
	char *abs = put("inc-abs.cfg", abstext, 0600);

	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir("/"), 0);
	if (config_load(rel, &c, &err) != 0)
		fail_msg("relative @include from /: %s", err);
	assert_int_equal(c->nseeds, 1);
	config_free(c);
	c = NULL;
	if (config_load(abs, &c, &err) != 0)
		fail_msg("absolute @include: %s", err);
	assert_int_equal(c->nseeds, 1);
	config_free(c);
	assert_int_equal(chdir(cwd), 0);
	free(seeds);
	free(rel);
	free(abs);
	free(abstext);
}

/* ---- daemon settings: schedule and web (docs/SPEC.md "Configuration", "Daemon") ---- */

static const char *daemon_base =
	"relay = { url = \"smtp://127.0.0.1:2525\"; tls = \"none\"; from = \"p@sender.test\"; };\n"
	"seeds = ( { address = \"a@b.test\"; provider = \"b\";\n"
	"            imap = { url = \"imap://127.0.0.1:1143\"; tls = \"none\"; username = \"a\";\n"
	"                     password = \"x\"; }; } );\n";

/* The schedule warning of `check` and the daemon's start
 * (config_schedule_warning): the exact line, at probe.deadline's line, else
 * schedule.interval's, else the schedule block's, else the file alone. */
static void expect_schedule_warning(const char *name, const char *tail, const char *want)
{
	char *t = xasprintf("%s%s", daemon_base, tail);
	char *path = put(name, t, 0600);
	struct config *c = NULL;
	char *e = NULL, *w, *full;

	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	w = config_schedule_warning(c);
	if (want == NULL) {
		assert_null(w);
	} else {
		full = xasprintf("%s%s", path, want);   /* the file name, then want */
		assert_non_null(w);
		assert_string_equal(w, full);
		free(full);
	}
	free(w);
	config_free(c);
	free(path);
	free(t);
}

static void test_schedule_warning(void **state)
{
	(void)state;
	/* daemon_base is 4 lines: probe on line 5 */
	expect_schedule_warning("w1.cfg", "probe = { deadline = 300; };\nschedule = {\n  interval = 300;\n};\n",
		":5: probe.deadline (300s) is not shorter than schedule.interval (300s): a round that "
		"waits out its deadline is still running when the next is due, and the daemon skips that "
		"start (inboxprobe_rounds_skipped_total); set probe.deadline below 300 or raise "
		"schedule.interval");
	expect_schedule_warning("w2.cfg", "probe = { deadline = 400; };\nschedule = { interval = 300; };\n",
		":5: probe.deadline (400s) is not shorter than schedule.interval (300s): a round that "
		"waits out its deadline is still running when the next is due, and the daemon skips that "
		"start (inboxprobe_rounds_skipped_total); set probe.deadline below 300 or raise "
		"schedule.interval");
	/* the jitter delays a start by up to itself: 250 + 60 >= 300 */
	expect_schedule_warning("w3.cfg", "probe = { deadline = 250; };\nschedule = { interval = 300; jitter = 60; };\n",
		":5: probe.deadline (250s) plus schedule.jitter (60s) is not shorter than "
		"schedule.interval (300s): a round that waits out its deadline is still running when the "
		"next is due, and the daemon skips that start (inboxprobe_rounds_skipped_total); set "
		"probe.deadline below 240 or raise schedule.interval");
	/* interval - jitter is 1 s: no deadline fits (it is at least 1 s);
	 * the advice is the interval or the jitter (breakit: it said "set
	 * probe.deadline below 1") */
	expect_schedule_warning("w10.cfg", "probe = { deadline = 1; };\nschedule = { interval = 2; jitter = 1; };\n",
		":5: probe.deadline (1s) plus schedule.jitter (1s) is not shorter than "
		"schedule.interval (2s): a round that waits out its deadline is still running when the "
		"next is due, and the daemon skips that start (inboxprobe_rounds_skipped_total); raise "
		"schedule.interval above 2 or lower schedule.jitter");
	expect_schedule_warning("w11.cfg", "probe = { deadline = 1; };\nschedule = { interval = 1; };\n",
		":5: probe.deadline (1s) is not shorter than schedule.interval (1s): a round that waits "
		"out its deadline is still running when the next is due, and the daemon skips that start "
		"(inboxprobe_rounds_skipped_total); raise schedule.interval above 1");
	/* rounds fit: 240 + 59 < 300; 299 < 300 */
	expect_schedule_warning("w4.cfg", "probe = { deadline = 240; };\nschedule = { interval = 300; jitter = 59; };\n", NULL);
	expect_schedule_warning("w5.cfg", "probe = { deadline = 299; };\nschedule = { interval = 300; };\n", NULL);
	/* the default deadline (300): at schedule.interval's line */
	expect_schedule_warning("w6.cfg", "probe = { poll_interval = 2; };\nschedule = {\n  jitter = 10;\n  interval = 120;\n};\n",
		":8: probe.deadline (300s) plus schedule.jitter (10s) is not shorter than "
		"schedule.interval (120s): a round that waits out its deadline is still running when the "
		"next is due, and the daemon skips that start (inboxprobe_rounds_skipped_total); set "
		"probe.deadline below 110 or raise schedule.interval");
	/* both defaults (300, 300): at the schedule block's line */
	expect_schedule_warning("w7.cfg", "\nschedule = { jitter = 0; };\n",
		":6: probe.deadline (300s) is not shorter than schedule.interval (300s): a round that "
		"waits out its deadline is still running when the next is due, and the daemon skips that "
		"start (inboxprobe_rounds_skipped_total); set probe.deadline below 300 or raise "
		"schedule.interval");
	/* no schedule block (`check` does not warn then; the daemon does): the file */
	expect_schedule_warning("w8.cfg", "",
		": probe.deadline (300s) is not shorter than schedule.interval (300s): a round that "
		"waits out its deadline is still running when the next is due, and the daemon skips that "
		"start (inboxprobe_rounds_skipped_total); set probe.deadline below 300 or raise "
		"schedule.interval");
}

static void test_daemon_settings(void **state)
{
	(void)state;
	struct config *c = NULL;
	char *e = NULL;
	/* defaults */
	char *path = put("d0.cfg", daemon_base, 0600);
	if (config_load(path, &c, &e) != 0)
		fail_msg("%s", e);
	assert_int_equal(c->schedule.interval, 300);
	assert_int_equal(c->schedule.jitter, 0);
	assert_string_equal(c->web.listen_address, "127.0.0.1:9788");
	assert_string_equal(c->web.host, "127.0.0.1");
	assert_int_equal(c->web.port, 9788);
	config_free(c);
	free(path);

	/* docs/SPEC.md's example values, an IPv6 listener, every address */
	static const struct { const char *addr, *host; int port; } ok[] = {
		{ "[::1]:9788", "::1", 9788 }, { ":9100", NULL, 9100 }, { "localhost:1", "localhost", 1 },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		char *t = xasprintf("%sschedule = { interval = 300; jitter = 30; };\n"
		                    "web = { listen_address = \"%s\"; };\n", daemon_base, ok[i].addr);
		path = put("d1.cfg", t, 0600);
		c = NULL;
		if (config_load(path, &c, &e) != 0)
			fail_msg("%s: %s", ok[i].addr, e);
		assert_int_equal(c->schedule.interval, 300);
		assert_int_equal(c->schedule.jitter, 30);
		if (ok[i].host)
			assert_string_equal(c->web.host, ok[i].host);
		else
			assert_null(c->web.host);
		assert_int_equal(c->web.port, ok[i].port);
		config_free(c);
		free(path);
		free(t);
	}

	/* every error in one pass, each at its line */
	char *t = xasprintf("%sschedule = {\n interval = 0;\n jitter = -1;\n when = 3;\n};\n"
	                    "web = {\n listen_address = \"127.0.0.1\";\n};\n", daemon_base);
	path = put("d2.cfg", t, 0600);
	c = NULL;
	assert_int_equal(config_load(path, &c, &e), -1);
	assert_null(c);
	assert_error(e, path, line_of(t, "interval = 0"), "schedule.interval must be greater than 0");
	assert_error(e, path, line_of(t, "jitter = -1"), "schedule.jitter must be at least 0");
	assert_error(e, path, line_of(t, "when = 3"), "unknown setting 'when' in schedule");
	assert_error(e, path, line_of(t, "listen_address"), "web.listen_address '127.0.0.1': no port");
	assert_int_equal(count_lines(e), 4);
	free(e);
	free(path);
	free(t);

	static const struct { const char *text, *marker, *msg; } bad[] = {
		{ "schedule = {\n interval = 10;\n jitter = 10;\n};\n", "jitter = 10",
		  "schedule.jitter (10) must be less than schedule.interval (10): rounds would start in "
		  "another round's slot; set jitter below 10 or raise interval" },
		{ "web = {\n listen_address = \"::1:9788\";\n};\n", "listen_address",
		  "an IPv6 address must be written [addr]:port" },
		{ "web = {\n listen_address = \"127.0.0.1:65536\";\n};\n", "listen_address",
		  "the port must be a number from 1 to 65535" },
		{ "web = {\n listen_address = \"h st:80\";\n};\n", "listen_address",
		  "not allowed in a name or address" },
		{ "web = {\n listen_address = 9788;\n};\n", "listen_address",
		  "web.listen_address must be a string" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t = xasprintf("%s%s", daemon_base, bad[i].text);
		path = put("d3.cfg", t, 0600);
		c = NULL;
		e = NULL;
		assert_int_equal(config_load(path, &c, &e), -1);
		assert_error(e, path, line_of(t, bad[i].marker), bad[i].msg);
		assert_int_equal(count_lines(e), 1);
		free(e);
		free(path);
		free(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_example),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_error_classes),
		cmocka_unit_test(test_structure_errors),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_sample_files),
		cmocka_unit_test(test_password_file_permissions),
		cmocka_unit_test(test_secret_file),
		cmocka_unit_test(test_previous_secret_files),
		cmocka_unit_test(test_password_env),
		cmocka_unit_test(test_inline_password_file_mode),
		cmocka_unit_test(test_config_not_regular),
		cmocka_unit_test(test_bad_bytes),
		cmocka_unit_test(test_many_seeds),
		cmocka_unit_test(test_imap_defaults_merge),
		cmocka_unit_test(test_defaults_secret_failure),
		cmocka_unit_test(test_secret_messages_name_setting),
		cmocka_unit_test(test_integer_bounds),
		cmocka_unit_test(test_duplicate_setting),
		cmocka_unit_test(test_include_relative),
		cmocka_unit_test(test_parse_url),
		cmocka_unit_test(test_slo_for),
		cmocka_unit_test(test_providers_and_auth),
		cmocka_unit_test(test_template),
		cmocka_unit_test(test_daemon_settings),
		cmocka_unit_test(test_schedule_warning),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
