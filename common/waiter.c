/*
 * waiter.c - waiting for N completions (see waiter.h).
 *
 * Broadcast rather than signal: a waiter has one waiting thread today,
 * but a completion must never be the one wake-up a second one misses.
 */
#include "waiter.h"

void common_waiter_init(struct common_waiter *w, unsigned pending)
{
	*w = (struct common_waiter){.pending = pending};
	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
}

void common_waiter_fini(struct common_waiter *w)
{
	g_mutex_clear(&w->lock);
	g_cond_clear(&w->cond);
}

void common_waiter_add(struct common_waiter *w, unsigned n)
{
	g_mutex_lock(&w->lock);
	w->pending += n;
	g_mutex_unlock(&w->lock);
}

void common_waiter_done(struct common_waiter *w, int status)
{
	g_mutex_lock(&w->lock);
	g_assert(w->pending > 0);
	if (status < 0 && w->error == 0)
		w->error = status;
	w->ok += status >= 0;
	w->pending--;
	g_cond_broadcast(&w->cond);
	g_mutex_unlock(&w->lock);
}

void common_waiter_done_cb(void *arg, int status)
{
	common_waiter_done(arg, status);
}

int common_waiter_wait(struct common_waiter *w)
{
	return common_waiter_wait_below(w, 1);
}

int common_waiter_wait_below(struct common_waiter *w, unsigned limit)
{
	g_mutex_lock(&w->lock);
	while (w->pending >= limit)
		g_cond_wait(&w->cond, &w->lock);
	int error = w->error;
	g_mutex_unlock(&w->lock);
	return error;
}

unsigned common_waiter_wait_ok(struct common_waiter *w, unsigned need, gint64 until_us)
{
	g_mutex_lock(&w->lock);
	while (w->pending && w->ok < need && g_cond_wait_until(&w->cond, &w->lock, until_us))
		;
	unsigned ok = w->ok;
	g_mutex_unlock(&w->lock);
	return ok;
}
