/*
 * delaywin.c - the windowed minimum of announcement lags (delaywin.h).
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/delaywin.h"

void delaywin_init(struct delay_window *w)
{
	memset(w, 0, sizeof *w);
}

int delaywin_add(struct delay_window *w, double lag)
{
	if (!(lag >= 0) || !(lag <= DELAY_LAG_MAX))
		return -1;
	w->lag[w->next] = lag;
	w->next = (w->next + 1) % DELAY_WINDOW;
	if (w->n < DELAY_WINDOW)
		w->n++;
	return 0;
}

double delaywin_min(const struct delay_window *w)
{
	double m = -1;

	for (size_t i = 0; i < w->n; i++)
		if (m < 0 || w->lag[i] < m)
			m = w->lag[i];
	return m;
}

/* The i-th sample, oldest first. */
static double nth(const struct delay_window *w, size_t i)
{
	return w->lag[(w->next + DELAY_WINDOW - w->n + i) % DELAY_WINDOW];
}

size_t delaywin_format(const struct delay_window *w, char *buf, size_t bufsz)
{
	size_t len = 0, first = 0;

	if (bufsz == 0)
		return 0;
	buf[0] = '\0';
	/* a short buffer keeps the newest: each sample takes at most 11 bytes */
	if (w->n > (bufsz - 1) / 11)
		first = w->n - (bufsz - 1) / 11;
	for (size_t i = first; i < w->n; i++) {
		unsigned long us = (unsigned long)llround(nth(w, i) * 1e6);
		int k = snprintf(buf + len, bufsz - len, "%s%lu", i > first ? " " : "", us);
		if (k < 0 || (size_t)k >= bufsz - len) {
			buf[len] = '\0';
			break;
		}
		len += (size_t)k;
	}
	return len;
}

int delaywin_parse(struct delay_window *w, const char *text)
{
	const char *p = text;
	int n = 0;

	delaywin_init(w);
	while (*p) {
		unsigned long long us = 0;
		int digits = 0;

		if (*p == ' ' && n > 0)
			p++;
		while (*p >= '0' && *p <= '9' && digits <= 10) {
			us = us * 10 + (unsigned long long)(*p++ - '0');
			digits++;
		}
		if (digits == 0 || digits > 10 || (*p != ' ' && *p != '\0') ||
		    delaywin_add(w, (double)us / 1e6) != 0) {
			delaywin_init(w);
			return -1;
		}
		n++;
	}
	return n;
}
