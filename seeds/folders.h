/*
 * folders.h - IMAP folder knowledge: modified UTF-7 (RFC 3501 5.1.3),
 * spam, trash and inbox folder resolution (docs/SPEC.md "Spam folder", RFC 6154
 * SPECIAL-USE, Gmail XLIST). Pure functions, no network.
 *
 * Wire names stay in modified UTF-7 everywhere a folder is selected; the
 * decoded UTF-8 form is for display and metric labels only.
 */
#ifndef INBOXPROBE_FOLDERS_H
#define INBOXPROBE_FOLDERS_H

#include <stddef.h>

/* Folder attribute bits, from LIST (RFC 3501, RFC 6154) or XLIST. */
#define FOLDER_NOSELECT   0x001u
#define FOLDER_JUNK       0x002u   /* \Junk (RFC 6154) */
#define FOLDER_SPAM_XLIST 0x004u   /* \Spam (Gmail XLIST) */
#define FOLDER_TRASH      0x008u   /* \Trash */
#define FOLDER_ALL        0x010u   /* \All */
#define FOLDER_INBOX      0x020u   /* the INBOX (name "INBOX", any case, or XLIST \Inbox) */
#define FOLDER_SENT       0x040u
#define FOLDER_DRAFTS     0x080u

/* One folder as listed by the server. Both strings are heap, owned by the
 * array; free the array with folders_free(). */
struct imap_folder {
	char *wire;        /* the name exactly as on the wire (modified UTF-7) */
	char *display;     /* decoded UTF-8 (equals wire when not decodable) */
	char delimiter;    /* hierarchy delimiter, 0 when NIL */
	unsigned flags;    /* FOLDER_* bits */
};

void folders_free(struct imap_folder *f, size_t n);

/* Decode a modified UTF-7 folder name (RFC 3501 5.1.3) to UTF-8.
 * Returns a heap string the caller frees, or NULL when the input is not
 * valid modified UTF-7 or when it encodes a control character (C0, DEL,
 * C1), which a display name must never carry. */
char *mutf7_decode(const char *wire);

/* Encode UTF-8 to modified UTF-7. Returns a heap string, or NULL when the
 * input is not valid UTF-8. */
char *mutf7_encode(const char *utf8);

/* Resolve the spam folder per docs/SPEC.md order:
 *   1. override (the seed's spam_folder, a wire name; matched against the
 *      list, or accepted as given when the list does not contain it, since
 *      the server may hide it from LIST "" "*" - callers then find out at
 *      SELECT),
 *   2. \Junk (RFC 6154) or \Spam (XLIST),
 *   3. the known-name table (Spam, Junk, Junk Email, Junk E-mail, Bulk,
 *      Bulk Mail, [Gmail]/Spam, [Google Mail]/Spam, and localized names:
 *      Spam, Pourriel, Indésirables, Courrier indésirable, Junk-E-Mail,
 *      Spamverdacht, Correo no deseado, Posta indesiderata, Ongewenste
 *      e-mail, Skräppost, Нежелательная почта, Спам, 迷惑メール ...),
 *      compared on the decoded name, case-insensitively, also as the last
 *      hierarchy level under INBOX.
 * Returns the index into f, -1 when unresolved, or -2 when override is
 * set and not found (index not meaningful). *how gets a static string:
 * "config", "special-use \\Junk", "xlist \\Spam", "known name".
 */
long folders_resolve_spam(const struct imap_folder *f, size_t n,
                          const char *override, const char **how);

/* The \Trash folder (or a known trash name: Trash, Deleted Items,
 * Deleted Messages, [Gmail]/Trash, [Gmail]/Bin, [Google Mail]/Trash ...).
 * Returns the index or -1. */
long folders_resolve_trash(const struct imap_folder *f, size_t n);

#endif
