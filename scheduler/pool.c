/* pool.c - IMAP sessions kept between the daemon's rounds (pool.h). */
#include <config.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "scheduler/driver.h"
#include "scheduler/pool.h"

struct kept {
	char *host, *user;
	int port, implicit_tls, tls;
	struct imap_session *s;
	struct kept *next;
};

struct session_pool {
	const struct imap_driver *drv;   /* borrowed */
	pthread_mutex_t mu;
	struct kept *head;
	size_t n;
};

static int same_account(const struct kept *k, const struct imap_conf *ic)
{
	return k->port == ic->port && k->implicit_tls == ic->implicit_tls && k->tls == (int)ic->tls &&
	       strcasecmp(k->host, ic->host ? ic->host : "") == 0 &&
	       strcmp(k->user, ic->username ? ic->username : "") == 0;
}

static void kept_close(const struct session_pool *p, struct kept *k)
{
	p->drv->close_now(k->s);
	free(k->host);
	free(k->user);
	free(k);
}

struct session_pool *pool_new_driver(const struct imap_driver *drv)
{
	struct session_pool *p = xcalloc(1, sizeof *p);

	p->drv = drv != NULL ? drv : &imap_driver_real;
	pthread_mutex_init(&p->mu, NULL);
	return p;
}

struct session_pool *pool_new(void)
{
	return pool_new_driver(NULL);
}

const struct imap_driver *pool_driver(const struct session_pool *p)
{
	return p->drv;
}

void pool_free(struct session_pool *p)
{
	double end = now_mono() + 2.0;   /* LOGOUTs share 2 s: a stop stays quick */

	if (p == NULL)
		return;
	while (p->head) {
		struct kept *k = p->head;
		double left = end - now_mono();
		p->head = k->next;
		/* past the budget: no LOGOUT, the connection is just closed */
		p->drv->extend(k->s, left <= 0 ? 0 : left < 0.5 ? left : 0.5);
		p->drv->close(k->s);
		free(k->host);
		free(k->user);
		free(k);
	}
	pthread_mutex_destroy(&p->mu);
	free(p);
}

struct imap_session *pool_take(struct session_pool *p, const struct imap_conf *ic)
{
	struct imap_session *s = NULL;

	pthread_mutex_lock(&p->mu);
	for (struct kept **pp = &p->head; *pp; pp = &(*pp)->next)
		if (same_account(*pp, ic)) {
			struct kept *k = *pp;
			*pp = k->next;
			s = k->s;
			free(k->host);
			free(k->user);
			free(k);
			p->n--;
			break;
		}
	pthread_mutex_unlock(&p->mu);
	return s;
}

void pool_put(struct session_pool *p, const struct imap_conf *ic, struct imap_session *s)
{
	struct kept *k;

	if (!p->drv->usable(s)) {
		p->drv->close_now(s);
		return;
	}
	k = xcalloc(1, sizeof *k);
	k->host = xstrdup(ic->host ? ic->host : "");
	k->user = xstrdup(ic->username ? ic->username : "");
	k->port = ic->port;
	k->implicit_tls = ic->implicit_tls;
	k->tls = (int)ic->tls;
	k->s = s;
	pthread_mutex_lock(&p->mu);
	k->next = p->head;
	p->head = k;
	p->n++;
	pthread_mutex_unlock(&p->mu);
}

static int still_used(const struct kept *k, const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nseeds; i++)
		if (same_account(k, &cfg->seeds[i].imap))
			return 1;
	return cfg->has_bounce && same_account(k, &cfg->bounce);
}

void pool_keep_only(struct session_pool *p, const struct config *cfg)
{
	pthread_mutex_lock(&p->mu);
	for (struct kept **pp = &p->head; *pp;) {
		struct kept *k = *pp;
		if (still_used(k, cfg)) {
			pp = &k->next;
			continue;
		}
		*pp = k->next;
		p->n--;
		kept_close(p, k);
	}
	pthread_mutex_unlock(&p->mu);
}

size_t pool_size(struct session_pool *p)
{
	size_t n;

	pthread_mutex_lock(&p->mu);
	n = p->n;
	pthread_mutex_unlock(&p->mu);
	return n;
}
