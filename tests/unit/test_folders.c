/*
 * test_folders.c - modified UTF-7 (RFC 3501 5.1.3) and the spam/trash
 * folder resolution order of docs/SPEC.md "Spam folder".
 */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/util.h"
#include "seeds/folders.h"

static void check_decode(const char *wire, const char *utf8)
{
	char *d = mutf7_decode(wire);
	assert_non_null(d);
	assert_string_equal(d, utf8);
	free(d);
}

static void check_encode(const char *utf8, const char *wire)
{
	char *e = mutf7_encode(utf8);
	assert_non_null(e);
	assert_string_equal(e, wire);
	free(e);
}

static void test_rfc3501_example(void **state)
{
	(void)state;
	/* RFC 3501 5.1.3: "~peter/mail/&U,BTFw-/&ZeVnLIqe-" */
	check_decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語");
	check_encode("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
}

static void test_ampersand(void **state)
{
	(void)state;
	check_decode("&-", "&");
	check_decode("Tom &- Jerry", "Tom & Jerry");
	check_encode("&", "&-");
	check_encode("R&D", "R&-D");
}

static void test_latin_and_others(void **state)
{
	(void)state;
	check_decode("Courrier ind&AOk-sirable", "Courrier indésirable");
	check_encode("Courrier indésirable", "Courrier ind&AOk-sirable");
	/* Dovecot/Outlook names */
	check_encode("Gelöschte Elemente", "Gel&APY-schte Elemente");
	check_decode("&BB0ENQQ2BDUEOwQwBEIENQQ7BEwEPQQwBE8- &BD8EPgRHBEIEMA-",
	              "Нежелательная почта");
	check_encode("Нежелательная почта",
	              "&BB0ENQQ2BDUEOwQwBEIENQQ7BEwEPQQwBE8- &BD8EPgRHBEIEMA-");
	/* plain ASCII is unchanged, both ways */
	check_decode("INBOX.Junk", "INBOX.Junk");
	check_encode("[Gmail]/Spam", "[Gmail]/Spam");
	check_encode("", "");
}

static void test_astral_round_trip(void **state)
{
	(void)state;
	/* U+1F4E7 (E-MAIL SYMBOL) needs a surrogate pair: D83D DCE7 */
	check_encode("\xF0\x9F\x93\xA7", "&2D3c5w-");
	check_decode("&2D3c5w-", "\xF0\x9F\x93\xA7");
	const char *samples[] = { "迷惑メール", "Skräppost", "a&b&c", "Ω ω",
	                          "x\xF0\x9F\x93\xA7y&", "Spam" };
	for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
		char *e = mutf7_encode(samples[i]);
		assert_non_null(e);
		char *d = mutf7_decode(e);
		assert_non_null(d);
		assert_string_equal(d, samples[i]);
		free(e);
		free(d);
	}
}

static void test_invalid(void **state)
{
	(void)state;
	const char *bad[] = {
		"&U,BTFw",         /* unterminated run */
		"&U/BTFw-",        /* '/' is not in the modified alphabet */
		"&AOk",            /* unterminated */
		"&-&",             /* trailing lone '&' */
		"caf\xC3\xA9",     /* raw 8-bit */
		"tab\there",       /* control character */
		"&AGE-",           /* encodes 'a': printable ASCII must be literal */
		"&2D0-",           /* lone high surrogate */
		"&3Oc-",           /* lone low surrogate */
		"&AOkA-",          /* non-zero leftover bits */
		"&AO-",            /* not a whole UTF-16 unit */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *d = mutf7_decode(bad[i]);
		if (d)
			fail_msg("decoded invalid %s as %s", bad[i], d);
	}
	assert_null(mutf7_decode(NULL));
	/* invalid UTF-8 cannot be encoded */
	assert_null(mutf7_encode("\xC3"));
	assert_null(mutf7_encode("\xC0\xAF"));          /* overlong '/' */
	assert_null(mutf7_encode("\xED\xA0\x80"));      /* UTF-8 surrogate */
	assert_null(mutf7_encode("\xF4\x90\x80\x80"));  /* > U+10FFFF */
	assert_null(mutf7_encode("\xFF"));
}

/* Control characters encoded in a base64 run are refused (the caller then
 * shows a sanitised wire name): U+0000 would end the C string inside the
 * display name, the others reach terminals, logs and metric labels. */
static void test_control_characters(void **state)
{
	(void)state;
	const char *bad[] = {
		"&AAA-",             /* U+0000 */
		"Spam&AAA-Trap",     /* U+0000 mid-name: would truncate to "Spam" */
		"&AAk-",             /* U+0009 TAB */
		"Junk&AAoADQ-",      /* LF CR */
		"&ABs-[31mred",      /* U+001B ESC: a terminal escape */
		"&AB8-",             /* U+001F, last C0 */
		"&AH8-",             /* U+007F DEL */
		"&AIU-",             /* U+0085 NEL (C1) */
		"&AJs-2J",           /* U+009B CSI (C1) */
		"&AOkAAA-",          /* valid e-acute, then U+0000 in the same run */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *d = mutf7_decode(bad[i]);
		if (d)
			fail_msg("decoded control character in %s", bad[i]);
	}
	/* the neighbours of the refused ranges still decode */
	check_decode("&AKA-", "\xC2\xA0");         /* U+00A0 NO-BREAK SPACE */
	check_decode("&AOk-t&AOk-", "été");
	check_decode("&IAw-", "\xE2\x80\x8C");     /* U+200C ZWNJ: not a C0/C1 control */
}

/* Build a folder list from (wire, flags) pairs, display decoded. */
static struct imap_folder *mk(size_t n, const char *const *wire, const unsigned *flags, char delim)
{
	struct imap_folder *f = xcalloc(n, sizeof *f);
	for (size_t i = 0; i < n; i++) {
		f[i].wire = xstrdup(wire[i]);
		f[i].display = mutf7_decode(wire[i]);
		if (!f[i].display)
			f[i].display = xstrdup(wire[i]);
		f[i].delimiter = delim;
		f[i].flags = flags ? flags[i] : 0;
	}
	return f;
}

static void test_resolve_override(void **state)
{
	(void)state;
	const char *w[] = { "INBOX", "Junk", "Quarantine" };
	unsigned fl[] = { FOLDER_INBOX, FOLDER_JUNK, 0 };
	struct imap_folder *f = mk(3, w, fl, '/');
	const char *how = NULL;
	/* the override wins over \Junk */
	assert_int_equal(folders_resolve_spam(f, 3, "Quarantine", &how), 2);
	assert_string_equal(how, "config");
	/* an override not in the list: -2, used as given by the caller */
	assert_int_equal(folders_resolve_spam(f, 3, "Hidden", &how), -2);
	assert_string_equal(how, "config");
	folders_free(f, 3);
}

static void test_resolve_junk_and_xlist(void **state)
{
	(void)state;
	const char *w[] = { "INBOX", "Spam", "Filtered" };
	unsigned fl[] = { FOLDER_INBOX, 0, FOLDER_JUNK };
	struct imap_folder *f = mk(3, w, fl, '/');
	const char *how = NULL;
	/* \Junk beats a known name */
	assert_int_equal(folders_resolve_spam(f, 3, NULL, &how), 2);
	assert_string_equal(how, "special-use \\Junk");
	folders_free(f, 3);

	const char *g[] = { "INBOX", "[Gmail]", "[Gmail]/All Mail", "[Gmail]/Trash", "[Gmail]/Spam" };
	unsigned gf[] = { FOLDER_INBOX, FOLDER_NOSELECT, FOLDER_ALL, FOLDER_TRASH, FOLDER_SPAM_XLIST };
	f = mk(5, g, gf, '/');
	assert_int_equal(folders_resolve_spam(f, 5, NULL, &how), 4);
	assert_string_equal(how, "xlist \\Spam");
	assert_int_equal(folders_resolve_trash(f, 5), 3);
	folders_free(f, 5);
}

static void test_resolve_names(void **state)
{
	(void)state;
	const char *how = NULL;
	struct imap_folder *f;

	const char *a[] = { "INBOX", "INBOX/Junk", "INBOX/Sent" };
	f = mk(3, a, NULL, '/');
	assert_int_equal(folders_resolve_spam(f, 3, NULL, &how), 1);
	assert_string_equal(how, "known name");
	folders_free(f, 3);

	const char *b[] = { "INBOX", "Drafts", "bulk mail" };
	f = mk(3, b, NULL, '.');
	assert_int_equal(folders_resolve_spam(f, 3, NULL, &how), 2);
	folders_free(f, 3);

	const char *c[] = { "INBOX", "Brouillons", "Courrier ind&AOk-sirable", "Corbeille" };
	f = mk(4, c, NULL, '/');
	assert_int_equal(folders_resolve_spam(f, 4, NULL, &how), 2);
	assert_string_equal(f[2].display, "Courrier indésirable");
	assert_int_equal(folders_resolve_trash(f, 4), 3);
	folders_free(f, 4);

	/* Dovecot with '.' separator: INBOX.Spam */
	const char *d[] = { "INBOX", "INBOX.Spam", "INBOX.Trash" };
	f = mk(3, d, NULL, '.');
	assert_int_equal(folders_resolve_spam(f, 3, NULL, &how), 1);
	assert_int_equal(folders_resolve_trash(f, 3), 2);
	folders_free(f, 3);

	/* a top-level known name is preferred over one under INBOX */
	const char *e[] = { "INBOX", "INBOX/Spam", "Junk" };
	f = mk(3, e, NULL, '/');
	assert_int_equal(folders_resolve_spam(f, 3, NULL, &how), 2);
	folders_free(f, 3);

	/* \Noselect folders are never picked */
	const char *g[] = { "INBOX", "Spam" };
	unsigned gf[] = { FOLDER_INBOX, FOLDER_NOSELECT };
	f = mk(2, g, gf, '/');
	assert_int_equal(folders_resolve_spam(f, 2, NULL, &how), -1);
	folders_free(f, 2);
}

static void test_unresolved(void **state)
{
	(void)state;
	const char *how = "x";
	const char *w[] = { "INBOX", "Archive", "Sent", "SpamAssassin-training", "INBOX/Junkyard" };
	struct imap_folder *f = mk(5, w, NULL, '/');
	assert_int_equal(folders_resolve_spam(f, 5, NULL, &how), -1);
	assert_null(how);
	assert_int_equal(folders_resolve_trash(f, 5), -1);
	folders_free(f, 5);
	assert_int_equal(folders_resolve_spam(NULL, 0, NULL, NULL), -1);
	folders_free(NULL, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3501_example),
		cmocka_unit_test(test_ampersand),
		cmocka_unit_test(test_latin_and_others),
		cmocka_unit_test(test_astral_round_trip),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_control_characters),
		cmocka_unit_test(test_resolve_override),
		cmocka_unit_test(test_resolve_junk_and_xlist),
		cmocka_unit_test(test_resolve_names),
		cmocka_unit_test(test_unresolved),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
