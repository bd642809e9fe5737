/* test_util.c - util and model helpers, and latency arithmetic. */
#include <config.h>

#include <dirent.h>
#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/hfield.h"
#include "common/model.h"
#include "common/util.h"
#include "scheduler/round.h"

static void test_fmt_double_c_locale(void **state)
{
	char buf[64];
	(void)state;

	assert_string_equal(fmt_double(buf, sizeof buf, 0.5), "0.5");
	assert_string_equal(fmt_double(buf, sizeof buf, 300), "300");
	assert_string_equal(fmt_double(buf, sizeof buf, 0.1), "0.1");
	assert_string_equal(fmt_double(buf, sizeof buf, 1.0 / 3.0), "0.3333333333333333");
	assert_string_equal(fmt_double(buf, sizeof buf, NAN), "NaN");
	assert_string_equal(fmt_double(buf, sizeof buf, INFINITY), "+Inf");
	assert_string_equal(fmt_double(buf, sizeof buf, -INFINITY), "-Inf");
	assert_string_equal(fmt_double(buf, sizeof buf, 1764422400.25), "1764422400.25");
}

static void test_fmt_double_comma_locale(void **state)
{
	char buf[64];
	const char *locs[] = { "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "nl_NL.UTF-8", NULL };
	const char *got = NULL;
	(void)state;

	for (int i = 0; locs[i] && !got; i++)
		got = setlocale(LC_NUMERIC, locs[i]);
	if (got == NULL) {
		/* No comma-decimal locale generated on this machine. */
		skip();
	}
	snprintf(buf, sizeof buf, "%.1f", 0.5);
	assert_string_equal(buf, "0,5");   /* the locale really is a comma one */
	assert_string_equal(fmt_double(buf, sizeof buf, 0.25), "0.25");
	assert_string_equal(fmt_double(buf, sizeof buf, 12.5), "12.5");
	setlocale(LC_NUMERIC, "C");
}

static void test_strbuf(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	char *s;
	(void)state;

	for (int i = 0; i < 1000; i++)
		strbuf_addf(&sb, "%d,", i % 10);
	assert_int_equal(sb.len, 2000);
	assert_memory_equal(sb.buf, "0,1,2,", 6);
	s = strbuf_detach(&sb);
	assert_int_equal(strlen(s), 2000);
	free(s);
	s = strbuf_detach(&sb);
	assert_string_equal(s, "");
	free(s);
}

static void test_strlcpy(void **state)
{
	char b[5];
	(void)state;

	assert_int_equal(xstrlcpy(b, "abcdefgh", sizeof b), 8);
	assert_string_equal(b, "abcd");
	assert_int_equal(xstrlcpy(b, "ab", sizeof b), 2);
	assert_string_equal(b, "ab");
}

static void test_atomic_write(void **state)
{
	char dir[] = "/tmp/ibp-util-XXXXXX";
	char *path, *tmp, *err = NULL, *data;
	size_t len = 0;
	struct stat st;
	(void)state;

	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/out.prom", dir);
	tmp = xasprintf("%s.tmp", path);
	assert_int_equal(write_file_atomic(path, "a 1\n", 4, &err), 0);
	assert_int_equal(write_file_atomic(path, "b 2\n", 4, &err), 0);
	data = read_file_capped(path, 0, &len, &err);
	assert_non_null(data);
	assert_int_equal(len, 4);
	assert_string_equal(data, "b 2\n");
	assert_int_equal(stat(tmp, &st), -1);   /* no temp file left */
	free(data);
	/* a directory that does not exist: a clear error naming the path */
	assert_int_equal(write_file_atomic("/nonexistent-dir/x.prom", "x", 1, &err), -1);
	assert_non_null(strstr(err, "/nonexistent-dir/x.prom"));
	free(err);
	err = NULL;
	/* read cap */
	assert_null(read_file_capped(path, 2, &len, &err));
	assert_non_null(strstr(err, "larger than"));
	free(err);
	unlink(path);
	rmdir(dir);
	free(path);
	free(tmp);
}

/* Number of entries in dir besides . and .. */
static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Issue 12 section 3: the temporary file never follows a symbolic link or
 * opens a FIFO planted at PATH.tmp; a non-regular PATH is refused; a
 * symbolic link at PATH is replaced, never followed; nothing is left. */
static void test_atomic_write_planted(void **state)
{
	char dir[] = "/tmp/ibp-util-XXXXXX";
	char *path, *tmp, *victim, *err = NULL, *data;
	struct stat st;
	mode_t um;
	(void)state;

	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/out.prom", dir);
	tmp = xasprintf("%s.tmp", path);
	victim = xasprintf("%s/victim", dir);
	assert_int_equal(write_file_atomic(victim, "precious\n", 9, &err), 0);

	/* a symbolic link at PATH.tmp to the victim */
	assert_int_equal(symlink(victim, tmp), 0);
	assert_int_equal(write_file_atomic(path, "a 1\n", 4, &err), 0);
	data = read_file_capped(victim, 0, NULL, &err);
	assert_string_equal(data, "precious\n");
	free(data);
	assert_int_equal(unlink(tmp), 0);

	/* a FIFO at PATH.tmp: returns at once, report written */
	assert_int_equal(mkfifo(tmp, 0600), 0);
	assert_int_equal(write_file_atomic(path, "b 2\n", 4, &err), 0);
	data = read_file_capped(path, 0, NULL, &err);
	assert_string_equal(data, "b 2\n");
	free(data);
	assert_int_equal(lstat(tmp, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(unlink(tmp), 0);

	/* mode 0644 less the umask */
	um = umask(0);
	umask(um);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644 & ~um);

	/* a symbolic link at PATH is replaced by the report, the victim untouched */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(victim, path), 0);
	assert_int_equal(write_file_atomic(path, "c 3\n", 4, &err), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	data = read_file_capped(victim, 0, NULL, &err);
	assert_string_equal(data, "precious\n");
	free(data);

	/* a FIFO at PATH is refused, left as it is, and never opened */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(write_file_atomic(path, "d 4\n", 4, &err), -1);
	assert_non_null(strstr(err, "is a FIFO, not a regular file"));
	free(err);
	err = NULL;
	assert_null(read_file_capped(path, 0, NULL, &err));   /* no hang either */
	assert_non_null(strstr(err, "a FIFO"));
	free(err);
	err = NULL;
	assert_int_equal(unlink(path), 0);

	/* an empty path */
	assert_int_equal(write_file_atomic("", "x", 1, &err), -1);
	free(err);

	/* a secret: mode 0600 whatever the umask, same protections */
	um = umask(0);
	assert_int_equal(write_secret_atomic(path, "tok\n", 4, &err), 0);
	umask(um);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(unlink(path), 0);

	assert_int_equal(dir_entries(dir), 1);   /* only the victim: no temporary file left */
	unlink(victim);
	rmdir(dir);
	free(path);
	free(tmp);
	free(victim);
}

static void test_outcome_names(void **state)
{
	(void)state;
	assert_string_equal(outcome_name(OUTCOME_INBOX), "inbox");
	assert_string_equal(outcome_name(OUTCOME_DEFERRED), "deferred");
	assert_string_equal(outcome_name(OUTCOME_ERROR), "error");
	for (int i = 0; i < OUTCOME__COUNT; i++)
		assert_int_equal(outcome_from_name(outcome_name((enum outcome)i)), i);
	assert_int_equal(outcome_from_name("lost"), -1);
}

static void test_latency(void **state)
{
	struct probe_result r;
	(void)state;

	/* Submitted at .6, INTERNALDATE 1007 (truncated to the second), seen
	 * at 1009.5: arrival in [1007, 1008], reported as its middle. */
	memset(&r, 0, sizeof r);
	round_set_latency(&r, 999.0, 1000.6, 1007.0, 1009.5, -1);
	assert_true(r.have_latency);
	assert_true(fabs(r.arrival - 1007.5) < 1e-9);
	assert_true(fabs(r.latency - 6.9) < 1e-9);
	assert_true(fabs(r.latency_error_bound - 0.5) < 1e-9);
	assert_true(fabs(r.discovery_lag - 2.0) < 1e-9);
	assert_true(r.clock_skew == 0);
	assert_true(isnan(r.announce_delay));
	/* Seen 0.3 s into the INTERNALDATE second: the interval is [1007, 1007.3]. */
	round_set_latency(&r, 999.0, 1000.6, 1007.0, 1007.3, -1);
	assert_true(fabs(r.arrival - 1007.15) < 1e-9);
	assert_true(fabs(r.latency_error_bound - 0.15) < 1e-9);
	assert_true(fabs(r.discovery_lag - 0.15) < 1e-9);
	/* Same second: an arrival before submit by < 2 s is resolution: 0,
	 * never negative. */
	round_set_latency(&r, 999.0, 1000.9, 1000.0, 1001.0, -1);
	assert_true(r.have_latency);
	assert_true(r.latency == 0);
	/* Server clock 30 s behind: skew reported, sample unusable. */
	round_set_latency(&r, 999.0, 1000.0, 970.0, 1001.0, -1);
	assert_false(r.have_latency);
	assert_true(fabs(r.clock_skew - 29.5) < 1e-9);
	/* The relay delivered, then answered 250 five seconds later: INTERNALDATE
	 * is before the 250 but after the transaction began. Not skew. */
	round_set_latency(&r, 1000.0, 1006.0, 1001.0, 1007.0, -1);
	assert_true(r.have_latency);
	assert_true(r.latency == 0);
	assert_true(r.clock_skew == 0);
	/* The server gave no INTERNALDATE: latency and lag unknown, no skew. */
	round_set_latency(&r, 1000.0, 1001.0, 0, 1003.0, -1);
	assert_false(r.have_latency);
	assert_true(isnan(r.latency));
	assert_true(isnan(r.discovery_lag));
	assert_true(isnan(r.latency_error_bound));
	assert_true(r.clock_skew == 0);
	/* A server clock ahead of ours (seen before INTERNALDATE): the interval
	 * is the point INTERNALDATE, lag 0, never negative. */
	round_set_latency(&r, 999.0, 1000.0, 1005.0, 1004.8, -1);
	assert_true(fabs(r.arrival - 1005.0) < 1e-9);
	assert_true(r.latency_error_bound == 0);
	assert_true(r.discovery_lag == 0);
}

/* Dovecot 2.3 announces new mail 0.5 s after it arrives (NOTES.md: 503 ms
 * measured). A learned delay narrows the estimate for IDLE-announced probes
 * only, and never leaves [INTERNALDATE, min(INTERNALDATE + 1 s, seen)]. */
static void test_latency_learned_delay(void **state)
{
	struct probe_result r;
	(void)state;

	/* Arrived 1007.210 (Maildir ground truth), announced at 1007.713. */
	memset(&r, 0, sizeof r);
	r.announced = 1;
	round_set_latency(&r, 999.0, 1000.6, 1007.0, 1007.713, 0.503);
	assert_true(fabs(r.arrival - 1007.210) < 1e-9);
	assert_true(fabs(r.discovery_lag - 0.503) < 1e-9);
	assert_true(fabs(r.latency - 6.610) < 1e-9);
	assert_true(fabs(r.announce_delay - 0.503) < 1e-9);
	/* the error bound stays half the interval: [1007, 1007.713] */
	assert_true(fabs(r.latency_error_bound - 0.3565) < 1e-9);
	/* Arrived 1007.9, announced 1008.403: seen - delay is inside. */
	round_set_latency(&r, 999.0, 1000.6, 1007.0, 1008.403, 0.503);
	assert_true(fabs(r.arrival - 1007.9) < 1e-9);
	/* An overestimated delay (few samples) cannot push arrival below
	 * INTERNALDATE ... */
	round_set_latency(&r, 999.0, 1000.6, 1007.0, 1007.713, 0.9);
	assert_true(r.arrival == 1007.0);
	/* ... nor an underestimated one above INTERNALDATE + 1 s. */
	round_set_latency(&r, 999.0, 1000.6, 1007.0, 1009.0, 0.1);
	assert_true(r.arrival == 1008.0);
	/* Not announced by IDLE (found by a poll): the delay is not used. */
	r.announced = 0;
	round_set_latency(&r, 999.0, 1000.6, 1007.0, 1007.713, 0.503);
	assert_true(fabs(r.arrival - 1007.3565) < 1e-9);
	assert_true(isnan(r.announce_delay));
}

/* ---- UTF-8 (RFC 3629 section 3 and its examples) ---- */

static void test_utf8_decode(void **state)
{
	(void)state;
	struct { const char *s; size_t len; uint32_t cp; } cases[] = {
		{ "a", 1, 0x61 },
		{ "\xC3\xA9", 2, 0xE9 },               /* é */
		{ "\xE2\x82\xAC", 3, 0x20AC },         /* € */
		{ "\xED\x95\x9C", 3, 0xD55C },         /* RFC 3629 example: Hangul */
		{ "\xF0\x9F\x93\xAC", 4, 0x1F4EC },    /* 📬 */
		{ "\xF4\x8F\xBF\xBF", 4, 0x10FFFF },
		{ "\xC0\xAF", 0, 0 },                  /* overlong '/' */
		{ "\xE0\x80\xAF", 0, 0 },              /* overlong */
		{ "\xF0\x80\x80\xAF", 0, 0 },          /* overlong */
		{ "\xED\xA0\x80", 0, 0 },              /* surrogate U+D800 */
		{ "\xF4\x90\x80\x80", 0, 0 },          /* > U+10FFFF */
		{ "\xC3", 0, 0 },                      /* truncated */
		{ "\xE2\x82", 0, 0 },                  /* truncated */
		{ "\x80", 0, 0 },                      /* lone continuation */
		{ "\xFF", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t cp = 0;
		size_t n = strlen(cases[i].s);
		assert_int_equal(utf8_decode((const unsigned char *)cases[i].s, n, &cp), cases[i].len);
		if (cases[i].len)
			assert_int_equal(cp, cases[i].cp);
		assert_int_equal(utf8_valid(cases[i].s, n), cases[i].len == n);
	}
	assert_int_equal(utf8_decode((const unsigned char *)"", 0, NULL), 0);
	assert_true(utf8_valid("Zugangscode \xE2\x9C\x93", 15));
	assert_false(utf8_valid("ok\xC3\x80\x80", 5));
	assert_false(utf8_valid("a\0b\xC3", 4));
	assert_int_equal(utf8_chars("Courrier ind\xC3\xA9sirable", 21), 20);
	assert_int_equal(utf8_chars("\xF0\x9F\x93\xAC\xFF", 5), 2);   /* an invalid byte counts 1 */
	assert_int_equal(utf8_chars("", 0), 0);
}

/* ---- RFC 5322 unfolding (section 2.2.3) ---- */

static void test_rfc5322_unfold(void **state)
{
	(void)state;
	/* RFC 5322 2.2.3's example: "Subject: This\r\n is a test" */
	char *v = rfc5322_unfold("This\r\n is a test", 16, 0);
	assert_string_equal(v, "This is a test");
	free(v);
	v = rfc5322_unfold("a\n\tb\0c", 6, 0);     /* bare LF; NUL never ends the value */
	assert_string_equal(v, "a\tb c");
	free(v);
	v = rfc5322_unfold("abcdef", 6, 4);
	assert_string_equal(v, "abcd");
	free(v);
}

static void test_rfc5322_field(void **state)
{
	(void)state;
	/* Header fields as Postfix writes a bounce (tests/data/dsn/postfix_failed.eml)
	 * plus a folded Subject, a field name that is a prefix of another, and
	 * whitespace before the colon (obsolete syntax, RFC 5322 4.5.3). */
	static const char h[] =
		"X-Inboxprobe-Token-Old: nope\r\n"
		"Subject: Undelivered Mail Returned\r\n"
		"\tto Sender\r\n"
		"from : MAILER-DAEMON@relay.test (Mail Delivery System)\r\n"
		"X-Inboxprobe-Token:   abc123  \r\n"
		"Empty:\r\n"
		"Last: no newline";
	size_t n = sizeof(h) - 1;
	char *v;

	v = rfc5322_field(h, n, "subject", 0);
	assert_string_equal(v, "Undelivered Mail Returned\tto Sender");
	free(v);
	v = rfc5322_field(h, n, "From", 0);
	assert_string_equal(v, "MAILER-DAEMON@relay.test (Mail Delivery System)");
	free(v);
	v = rfc5322_field(h, n, "X-Inboxprobe-Token", 0);
	assert_string_equal(v, "abc123");
	free(v);
	v = rfc5322_field(h, n, "Empty", 0);
	assert_string_equal(v, "");
	free(v);
	v = rfc5322_field(h, n, "Last", 0);
	assert_string_equal(v, "no newline");
	free(v);
	v = rfc5322_field(h, n, "Subject", 11);
	assert_string_equal(v, "Undelivered");
	free(v);
	assert_null(rfc5322_field(h, n, "Received", 0));
	assert_null(rfc5322_field(h, n, "to Sender", 0));   /* a continuation line is no field */
	/* counts: a second X-Inboxprobe-Token (a quoted probe) shows */
	assert_int_equal(hfield_count(h, n, "x-inboxprobe-token"), 1);
	assert_int_equal(hfield_count(h, n, "Received"), 0);
	static const char two[] = "From: a@b.test\r\nX-Inboxprobe-Token: t1\r\n"
	                          "X-Inboxprobe-Token : t2\r\n\r\nX-Inboxprobe-Token: in the body\r\n";
	assert_int_equal(hfield_count(two, sizeof(two) - 1, "X-Inboxprobe-Token"), 2);
	v = rfc5322_field(two, sizeof(two) - 1, "X-Inboxprobe-Token", 0);
	assert_string_equal(v, "t1");
	free(v);
}

/* "did you mean" for a misspelt configuration key: the keys are the real
 * ones of probe, the top level and seeds[].imap (seeds/config.c). */
static void test_closest_word(void **state)
{
	(void)state;
	static const char *const probe[] = { "deadline", "poll_interval", "idle", "cleanup",
		"subject_prefix", "secret_file", "template", "headers", NULL };
	static const char *const top[] = { "name", "relay", "probe", "slo", "report", "seeds",
		"state", NULL };
	static const char *const imap[] = { "url", "tls", "ca_file", "username", "password",
		"password_file", "password_env", "oauth2", NULL };

	assert_string_equal(closest_word("poll_intervall", probe), "poll_interval"); /* insertion */
	assert_string_equal(closest_word("dedline", probe), "deadline");            /* deletion */
	assert_string_equal(closest_word("cleenup", probe), "cleanup");             /* substitution */
	assert_string_equal(closest_word("sol", top), "slo");                       /* adjacent swap */
	assert_string_equal(closest_word("Deadline", probe), "deadline");           /* case */
	assert_string_equal(closest_word("secretfile", probe), "secret_file");
	assert_string_equal(closest_word("user", imap), "username");                /* truncated */
	assert_string_equal(closest_word("pass", imap), "password");                /* first of three */
	assert_null(closest_word("deadline", probe));                               /* no typo */
	assert_null(closest_word("colour", probe));                                 /* too far */
	assert_null(closest_word("url", top));      /* 3 letters: one edit at most, "url" is 3 from all */
	assert_string_equal(closest_word("ur", imap), "url");                       /* one edit */
	assert_null(closest_word("pas", imap));     /* too short for a prefix */
	assert_null(closest_word("", top));
	/* a key too long to compare is never matched, nor does it overflow */
	char longw[200];
	memset(longw, 'a', sizeof(longw) - 1);
	longw[sizeof(longw) - 1] = '\0';
	assert_null(closest_word(longw, probe));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fmt_double_c_locale),
		cmocka_unit_test(test_fmt_double_comma_locale),
		cmocka_unit_test(test_strbuf),
		cmocka_unit_test(test_strlcpy),
		cmocka_unit_test(test_atomic_write),
		cmocka_unit_test(test_atomic_write_planted),
		cmocka_unit_test(test_outcome_names),
		cmocka_unit_test(test_latency),
		cmocka_unit_test(test_utf8_decode),
		cmocka_unit_test(test_rfc5322_unfold),
		cmocka_unit_test(test_rfc5322_field),
		cmocka_unit_test(test_latency_learned_delay),
		cmocka_unit_test(test_closest_word),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
