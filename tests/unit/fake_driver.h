/*
 * fake_driver.h - a fake IMAP driver (scheduler/driver.h) for unit tests
 * of the engine (test_engine.c) and of the daemon's keeper
 * (test_keeper.c). The fake keeps two folders of messages in memory (W.f:
 * INBOX and the spam folder), answers each operation as the driver's
 * contract says (a hit is only a proved message; a dead session answers
 * IMAP_EBYE), and can be told to fail the Nth call of an operation with a
 * given code and server text (add_fault). Single world, W, reset by
 * fake_reset() before each test.
 */
#ifndef INBOXPROBE_FAKE_DRIVER_H
#define INBOXPROBE_FAKE_DRIVER_H

#include <stddef.h>
#include "common/model.h"
#include "scheduler/driver.h"
#include "seeds/config.h"

enum op {
	OP_OPEN, OP_LIST, OP_SELECT, OP_STATUS, OP_IDLE_START, OP_IDLE_READ, OP_IDLE_DONE,
	OP_FIND, OP_FETCH, OP_CLEANUP, OP_NOOP, OP_SCAN, OP_NOTIFY, OP_N
};

struct fault {
	enum op op;
	int nth;                 /* 1-based call of op that fails */
	int rc;
	const char *text;        /* the error text (a BYE's server text) */
};

struct fake_msg {
	unsigned long uid;
	char token[TOKEN_MAX];
	int proved;              /* 1: our probe (token field, HMAC, From); 0: the user's mail */
	double internaldate;
};

struct fake_folder {
	const char *wire;
	unsigned long uidvalidity, uidnext;
	struct fake_msg m[16];
	size_t n;
};

struct fake_world {
	struct fake_folder f[2];   /* [0] INBOX, [1] the spam folder */
	int list_spam;             /* LIST shows the spam folder with \Junk */
	int idle_cap;              /* CAPABILITY has IDLE */
	struct fault faults[8];
	size_t nfaults;
	int calls[OP_N];
	int opened, closed;
	unsigned long cleaned[16]; /* UIDs cleanup was asked for */
	int cleaned_folder[16];
	size_t ncleaned;
	int kicks;                 /* idle_wait says "input" this many times; idle_read reads a BYE */
	const char *kick_text[4];
	const char *after_kicks;   /* token delivered to INBOX with the last kick's BYE */
	int notify_cap;            /* CAPABILITY has NOTIFY (RFC 5465) */
	int notify_status;         /* NOTIFY SET STATUS's reply has the spam folder's
	                              STATUS with UIDNEXT (as Dovecot 2.3.19's) */
	int find_deliver_at;       /* the Nth find call delivers find_token to folder find_folder */
	const char *find_token;
	int find_folder;
	double delivered_at;       /* now_wall() of the last delivery */
	double read_at;            /* now_wall() when idle_read last reported an event */
	double find_at;            /* now_wall() when find last began */
	int status_lost;           /* NOTIFY's STATUS for the spam folder never reaches idle_read
	                              (read inside another command's reply) */
	char trail[64];            /* I/S: find in INBOX/spam, N: NOTIFY SET, +: IDLE */
	double rx_early;           /* > 0: rx_time says each read's bytes arrived this long
	                              before the read returned (a late-waking reader);
	                              0: rx_time answers 0, unknown */
	double find_rx;            /* what rx_time(s, 0) said after the last find */
};
extern struct fake_world W;

/* The fake driver's operations table. */
extern const struct imap_driver fake;

/* Empty world: INBOX (UIDVALIDITY 7, UIDNEXT 100) and Junk (8, 50), LIST
 * shows Junk with \Junk, IDLE offered, no faults. */
void fake_reset(void);
/* The configuration both fixtures start from (test_engine.c, test_keeper.c):
 * cfg zeroed, then one seed (seed@example.net on imap.example.net:993, user
 * "seed") in seed and cfg's seed list, poll_interval 1, IDLE on, cleanup
 * delete, IMAP connect_timeout and timeout 1 s. Pointers into seed; nothing
 * allocated. */
void fake_config_one_seed(struct config *cfg, struct seed_conf *seed);
/* Deliver a message with token (proved: our probe, else the user's mail)
 * to folder f (0 INBOX, 1 spam); INTERNALDATE is now, whole seconds. */
void deliver(int f, const char *token, int proved);
/* The nth (1-based) call of op fails with rc and text. */
void add_fault(enum op op, int nth, int rc, const char *text);
/* Append c to W.trail. */
void trail(char c);

#endif
