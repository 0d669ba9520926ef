/*
 * test_common_waiter.c - the N-completions waiter: the first failure is
 * kept, wait_ok returns once enough succeeded, and wait_below keeps a
 * window of operations in flight with completions from other threads.
 */
#include "common/waiter.h"

#include <errno.h>
#include <glib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* The first negative status is what wait returns; later ones do not
 * replace it, and successes are counted. */
static void test_first_failure_is_kept(void **state)
{
	struct common_waiter w;

	(void)state;
	common_waiter_init(&w, 4);
	common_waiter_done(&w, 0);
	common_waiter_done(&w, -EIO);
	common_waiter_done(&w, -ENOSPC);
	common_waiter_done(&w, 5);
	assert_int_equal(common_waiter_wait(&w), -EIO);
	assert_int_equal(w.ok, 2);
	common_waiter_fini(&w);
}

/* wait_ok returns as soon as enough succeeded, with others pending, and
 * at the deadline when they do not come. */
static void test_wait_ok_returns_early(void **state)
{
	struct common_waiter w;

	(void)state;
	common_waiter_init(&w, 3);
	common_waiter_done(&w, 0);
	common_waiter_done(&w, 0);
	assert_int_equal(common_waiter_wait_ok(&w, 2, g_get_monotonic_time() + G_USEC_PER_SEC), 2);
	assert_int_equal(common_waiter_wait_ok(&w, 3, g_get_monotonic_time() + 20000), 2);
	common_waiter_done(&w, -EIO);
	assert_int_equal(common_waiter_wait(&w), -EIO);
	common_waiter_fini(&w);
}

struct window_run {
	struct common_waiter w;
	GAsyncQueue *started; /* one entry per operation started */
	gint max_seen;	      /* most operations ever in flight at once */
};

/* Completes the operations one by one, recording the window it saw. */
static gpointer completer(gpointer arg)
{
	struct window_run *r = arg;

	for (int i = 0; i < 200; i++) {
		g_async_queue_pop(r->started);
		g_mutex_lock(&r->w.lock);
		int in_flight = (int)r->w.pending;
		g_mutex_unlock(&r->w.lock);
		if (in_flight > g_atomic_int_get(&r->max_seen))
			g_atomic_int_set(&r->max_seen, in_flight);
		g_usleep(50);
		common_waiter_done(&r->w, i == 150 ? -EIO : 0);
	}
	return NULL;
}

/* With wait_below(4) before each start, never more than 4 operations are
 * in flight, all of them complete, and the failure among them is seen. */
static void test_wait_below_keeps_a_window(void **state)
{
	struct window_run r = {.started = g_async_queue_new()};

	(void)state;
	common_waiter_init(&r.w, 0);
	GThread *t = g_thread_new("completer", completer, &r);
	for (int i = 0; i < 200; i++) {
		(void)common_waiter_wait_below(&r.w, 4); /* the failure is seen at the end */
		common_waiter_add(&r.w, 1);
		g_async_queue_push(r.started, GINT_TO_POINTER(1));
	}
	assert_int_equal(common_waiter_wait(&r.w), -EIO);
	g_thread_join(t);
	assert_true(g_atomic_int_get(&r.max_seen) >= 1);
	assert_true(g_atomic_int_get(&r.max_seen) <= 4);
	assert_int_equal(r.w.ok, 199);
	common_waiter_fini(&r.w);
	g_async_queue_unref(r.started);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_failure_is_kept),
		cmocka_unit_test(test_wait_ok_returns_early),
		cmocka_unit_test(test_wait_below_keeps_a_window),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
