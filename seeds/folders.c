/*
 * folders.c - modified UTF-7 (RFC 3501 5.1.3) and spam/trash folder
 * resolution (docs/SPEC.md "Spam folder", RFC 6154, Gmail XLIST).
 */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "seeds/folders.h"

void folders_free(struct imap_folder *f, size_t n)
{
	if (!f)
		return;
	for (size_t i = 0; i < n; i++) {
		free(f[i].wire);
		free(f[i].display);
	}
	free(f);
}

/* Modified base64 alphabet: RFC 2045 base64 with ',' in place of '/'. */
static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static void put_utf8(struct strbuf *sb, uint32_t cp)
{
	unsigned char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xC0 | (cp >> 6));
		b[1] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xE0 | (cp >> 12));
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		b[2] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xF0 | (cp >> 18));
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		b[3] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	strbuf_add(sb, b, n);
}

char *mutf7_decode(const char *wire)
{
	struct strbuf sb = STRBUF_INIT;
	const unsigned char *p = (const unsigned char *)wire;

	if (!wire)
		return NULL;
	while (*p) {
		if (*p < 0x20 || *p > 0x7E)
			goto bad;
		if (*p != '&') {
			strbuf_add(&sb, p, 1);
			p++;
			continue;
		}
		p++;
		if (*p == '-') {           /* "&-" is '&' */
			strbuf_add(&sb, "&", 1);
			p++;
			continue;
		}
		/* base64 run of UTF-16BE up to '-' */
		uint32_t bits = 0;
		int nbits = 0;
		uint32_t hi = 0;           /* pending high surrogate */
		int nunits = 0;
		while (*p && *p != '-') {
			int v = b64val(*p);
			if (v < 0)
				goto bad;
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			p++;
			if (nbits >= 16) {
				nbits -= 16;
				uint32_t u = (bits >> nbits) & 0xFFFF;
				bits &= (1u << nbits) - 1;
				nunits++;
				if (hi) {
					if (u < 0xDC00 || u > 0xDFFF)
						goto bad;
					put_utf8(&sb, 0x10000 + ((hi - 0xD800) << 10) + (u - 0xDC00));
					hi = 0;
				} else if (u >= 0xD800 && u <= 0xDBFF) {
					hi = u;
				} else if (u >= 0xDC00 && u <= 0xDFFF) {
					goto bad;
				} else if (u >= 0x20 && u <= 0x7E) {
					/* printable US-ASCII must represent itself */
					goto bad;
				} else if (u < 0x20 || u == 0x7F || (u >= 0x80 && u <= 0x9F)) {
					/* control characters (C0 incl. U+0000, DEL, C1) are
					 * no part of a folder name: U+0000 would cut the
					 * string, the others reach terminals and labels */
					goto bad;
				} else {
					put_utf8(&sb, u);
				}
			}
		}
		if (*p != '-')            /* unterminated run */
			goto bad;
		p++;
		/* leftover bits must be fewer than 6 and zero; run not empty */
		if (hi || nunits == 0 || nbits >= 6 || bits != 0)
			goto bad;
	}
	return strbuf_detach(&sb);
bad:
	strbuf_free(&sb);
	return NULL;
}

static void b64_flush_unit(struct strbuf *sb, uint32_t *bits, int *nbits, uint32_t unit)
{
	*bits = (*bits << 16) | unit;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		strbuf_add(sb, &b64chars[(*bits >> *nbits) & 0x3F], 1);
	}
	*bits &= (1u << *nbits) - 1;
}

char *mutf7_encode(const char *utf8)
{
	struct strbuf sb = STRBUF_INIT;
	const unsigned char *p = (const unsigned char *)utf8;
	const unsigned char *end;
	int in_b64 = 0;
	uint32_t bits = 0;
	int nbits = 0;

	if (!utf8)
		return NULL;
	end = p + strlen(utf8);
	while (p < end) {
		uint32_t cp;
		size_t l = utf8_decode(p, (size_t)(end - p), &cp);
		if (l == 0)
			goto bad;
		p += l;
		if (cp >= 0x20 && cp <= 0x7E) {
			if (in_b64) {
				if (nbits > 0)
					strbuf_add(&sb, &b64chars[(bits << (6 - nbits)) & 0x3F], 1);
				strbuf_add(&sb, "-", 1);
				in_b64 = 0;
				bits = 0;
				nbits = 0;
			}
			if (cp == '&')
				strbuf_adds(&sb, "&-");
			else {
				char c = (char)cp;
				strbuf_add(&sb, &c, 1);
			}
			continue;
		}
		if (!in_b64) {
			strbuf_add(&sb, "&", 1);
			in_b64 = 1;
		}
		if (cp >= 0x10000) {
			uint32_t v = cp - 0x10000;
			b64_flush_unit(&sb, &bits, &nbits, 0xD800 + (v >> 10));
			b64_flush_unit(&sb, &bits, &nbits, 0xDC00 + (v & 0x3FF));
		} else {
			b64_flush_unit(&sb, &bits, &nbits, cp);
		}
	}
	if (in_b64) {
		if (nbits > 0)
			strbuf_add(&sb, &b64chars[(bits << (6 - nbits)) & 0x3F], 1);
		strbuf_add(&sb, "-", 1);
	}
	return strbuf_detach(&sb);
bad:
	strbuf_free(&sb);
	return NULL;
}

/* ASCII case-insensitive equality (UTF-8 bytes above 0x7F compared exactly). */
static int name_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y)
			return 0;
	}
	return *a == *b;
}

/* 1 if name starts with "INBOX" in any case. */
static int name_eq_prefix_inbox(const char *name)
{
	static const char inbox[] = "inbox";
	for (size_t i = 0; i < 5; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c != (unsigned char)inbox[i])
			return 0;
	}
	return 1;
}

static const char *folder_name(const struct imap_folder *f)
{
	return f->display ? f->display : f->wire;
}

/* If name is "INBOX<delim>rest" (INBOX any case), return rest, else NULL. */
static const char *under_inbox(const struct imap_folder *f)
{
	const char *name = folder_name(f);
	char d = f->delimiter;

	if (!name || strlen(name) < 6 || !name_eq_prefix_inbox(name))
		return NULL;
	if (d == 0) {
		if (name[5] != '/' && name[5] != '.')
			return NULL;
	} else if (name[5] != d) {
		return NULL;
	}
	return name + 6;
}

static const char *const spam_names[] = {
	"Spam", "Junk", "Junk Email", "Junk E-mail", "Junk E-Mail", "Junk Mail",
	"Bulk", "Bulk Mail", "[Gmail]/Spam", "[Google Mail]/Spam",
	/* localized (as Outlook, Gmail, Yahoo, Apple and web mailers name them) */
	"Pourriel", "Indésirables", "Courrier indésirable", "Courriers indésirables",
	"Junk-E-Mail", "Spamverdacht", "Unerwünscht", "Correo no deseado",
	"Correo basura", "Posta indesiderata", "Ongewenste e-mail", "Ongewenst",
	"Skräppost", "Skräp", "Søppelpost", "Uønsket e-post", "Roskaposti",
	"Lixo eletrônico", "Lixo Eletrônico", "Spam-Verdacht", "Wiadomości-śmieci",
	"Нежелательная почта", "Спам", "迷惑メール", "垃圾邮件", "垃圾郵件", "스팸",
	"Ανεπιθύμητα", "İstenmeyen", "Nevyžádaná pošta", "Levélszemét",
};

static const char *const trash_names[] = {
	"Trash", "Deleted Items", "Deleted Messages", "Deleted", "Bin",
	"[Gmail]/Trash", "[Gmail]/Bin", "[Google Mail]/Trash", "[Google Mail]/Bin",
	"Papierkorb", "Gelöschte Elemente", "Corbeille", "Éléments supprimés",
	"Papelera", "Elementos eliminados", "Cestino", "Posta eliminata",
	"Prullenbak", "Verwijderde items", "Papperskorgen", "Borttagna objekt",
	"Lixeira", "Kosz", "Корзина", "Удаленные", "ゴミ箱", "已删除邮件",
};

static long resolve_by_names(const struct imap_folder *f, size_t n,
                             const char *const *names, size_t nnames)
{
	for (size_t k = 0; k < nnames; k++) {
		for (size_t i = 0; i < n; i++) {
			if (f[i].flags & FOLDER_NOSELECT)
				continue;
			if (name_eq(folder_name(&f[i]), names[k]))
				return (long)i;
		}
	}
	for (size_t k = 0; k < nnames; k++) {
		for (size_t i = 0; i < n; i++) {
			const char *rest;
			if (f[i].flags & FOLDER_NOSELECT)
				continue;
			rest = under_inbox(&f[i]);
			if (rest && name_eq(rest, names[k]))
				return (long)i;
		}
	}
	return -1;
}

long folders_resolve_spam(const struct imap_folder *f, size_t n,
                          const char *override, const char **how)
{
	long r;

	if (how)
		*how = NULL;
	if (override && *override) {
		if (how)
			*how = "config";
		for (size_t i = 0; i < n; i++)
			if (f[i].wire && strcmp(f[i].wire, override) == 0)
				return (long)i;
		for (size_t i = 0; i < n; i++)
			if (f[i].wire && name_eq(f[i].wire, override))
				return (long)i;
		/* also accept the decoded form written in the configuration */
		for (size_t i = 0; i < n; i++)
			if (f[i].display && strcmp(f[i].display, override) == 0)
				return (long)i;
		return -2;
	}
	for (size_t i = 0; i < n; i++) {
		if ((f[i].flags & FOLDER_JUNK) && !(f[i].flags & FOLDER_NOSELECT)) {
			if (how)
				*how = "special-use \\Junk";
			return (long)i;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if ((f[i].flags & FOLDER_SPAM_XLIST) && !(f[i].flags & FOLDER_NOSELECT)) {
			if (how)
				*how = "xlist \\Spam";
			return (long)i;
		}
	}
	r = resolve_by_names(f, n, spam_names, sizeof spam_names / sizeof spam_names[0]);
	if (r >= 0 && how)
		*how = "known name";
	return r;
}

long folders_resolve_trash(const struct imap_folder *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((f[i].flags & FOLDER_TRASH) && !(f[i].flags & FOLDER_NOSELECT))
			return (long)i;
	return resolve_by_names(f, n, trash_names, sizeof trash_names / sizeof trash_names[0]);
}
