/*
 * delaywin.h - a server's learned announcement delay (docs/SPEC.md
 * "Latency"): the smallest seen - INTERNALDATE over the last
 * DELAY_WINDOW probes an IDLE EXISTS or a NOTIFY STATUS announced.
 *
 * Each such probe gives lag = seen - INTERNALDATE = delay + (arrival's
 * fraction of its second) + our reading time, so lag >= delay and the
 * smallest lag over probes arriving at every fraction of a second
 * approaches the delay from above. A minimum over all probes ever seen
 * can only fall; over a window of the last DELAY_WINDOW probes it also
 * rises again once the server's delay grows (a busier server, an upgrade):
 * after DELAY_WINDOW probes announced at the new delay, the old samples
 * are gone. It never widens the arrival interval: round_set_latency()
 * clamps the estimate into [INTERNALDATE, min(INTERNALDATE + 1 s, seen)].
 *
 * No allocation; the window is a ring of doubles kept by value.
 */
#ifndef INBOXPROBE_DELAYWIN_H
#define INBOXPROBE_DELAYWIN_H

#include <stddef.h>

#define DELAY_WINDOW 256            /* announced probes the minimum is taken over */
#define DELAY_LAG_MAX 3600.0        /* seconds: a larger lag is no announcement delay */
/* Bytes delaywin_format() needs at most: microseconds of a lag <= 3600 s
 * (10 digits) and a space each, and the NUL. */
#define DELAY_WINDOW_TEXT_MAX (DELAY_WINDOW * 11 + 1)

struct delay_window {
	double lag[DELAY_WINDOW];   /* seconds; ring, oldest at (next - n) */
	size_t n;                   /* samples held, <= DELAY_WINDOW */
	size_t next;                /* where the next sample goes */
};

/* Empty the window. */
void delaywin_init(struct delay_window *w);

/* Add one announced probe's lag (seconds, seen - INTERNALDATE). The
 * oldest sample leaves once DELAY_WINDOW are held. A lag that is not a
 * number in [0, DELAY_LAG_MAX] is ignored: returns -1, else 0. */
int delaywin_add(struct delay_window *w, double lag);

/* The learned delay: the smallest lag held, seconds; -1 when empty. */
double delaywin_min(const struct delay_window *w);

/* The samples, oldest first, as whole microseconds separated by single
 * spaces ("503112 517904"; no decimal point, whatever the locale), into
 * buf (bufsz >= DELAY_WINDOW_TEXT_MAX always suffices; a smaller buffer
 * keeps the newest samples that fit). Returns the length written. */
size_t delaywin_format(const struct delay_window *w, char *buf, size_t bufsz);

/* Read delaywin_format()'s text (from the state store) into w, oldest
 * first; more than DELAY_WINDOW samples keep the newest. Returns the
 * number of samples read, or -1 when text holds anything but such numbers
 * (digits, at most 10 each, separated by spaces, each at most
 * DELAY_LAG_MAX seconds); w is then empty. An empty text gives an empty
 * window (0). */
int delaywin_parse(struct delay_window *w, const char *text);

#endif
