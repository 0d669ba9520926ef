/*
 * waiter.h - waiting for N completions: the caller starts N asynchronous
 * operations, each completion calls common_waiter_done from whatever
 * thread it runs on, and the caller blocks until they are all in (or until
 * enough of them succeeded, or a deadline).
 *
 * The waiter keeps the first failure (the first negative status to
 * arrive); later failures and successes never replace it. A status >= 0
 * is a success and is counted in ok.
 *
 * Threading: init, wait and fini on the waiting thread; add and done from
 * any thread. The storage is the caller's (usually its stack): fini only
 * once no completion can still come, i.e. after a wait that saw pending
 * reach 0, or when the caller's own reference counting says so.
 */
#ifndef SHARDFS_COMMON_WAITER_H
#define SHARDFS_COMMON_WAITER_H

#include <glib.h>

struct common_waiter {
	GMutex lock;
	GCond cond;
	unsigned pending; /* lock: completions still to come */
	unsigned ok;	  /* lock: completions that succeeded */
	int error;	  /* lock: the first failure, 0 while none */
};

/* A waiter expecting pending completions (more may be added later). */
void common_waiter_init(struct common_waiter *w, unsigned pending);
void common_waiter_fini(struct common_waiter *w);

/* n more completions to wait for; call before starting them. */
void common_waiter_add(struct common_waiter *w, unsigned n);

/* One completion with its status (0 or a negative error). */
void common_waiter_done(struct common_waiter *w, int status);

/* common_waiter_done for callbacks of the (void *arg, int status) shape,
 * arg being the waiter. */
void common_waiter_done_cb(void *arg, int status);

/* Blocks until no completion is pending; returns the first failure or 0.
 * May be called again after more adds (the first failure stays). */
int common_waiter_wait(struct common_waiter *w);

/* Blocks until fewer than limit completions are pending (limit >= 1),
 * so that a caller keeps a window of operations in flight; returns the
 * first failure so far, or 0. */
int common_waiter_wait_below(struct common_waiter *w, unsigned limit);

/* Blocks until need completions succeeded, none is pending, or the
 * monotonic time until_us; returns how many succeeded so far. */
unsigned common_waiter_wait_ok(struct common_waiter *w, unsigned need, gint64 until_us);

#endif
