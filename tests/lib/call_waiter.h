/*
 * call_waiter.h - waiting for a batch of asynchronous pool calls in a
 * test: each call's completion goes to a common_waiter (common/waiter.h),
 * whose wait returns the first failed status. Header-only, so that a test
 * links nothing more than the net library it already uses.
 */
#ifndef SHARDFS_TESTS_CALL_WAITER_H
#define SHARDFS_TESTS_CALL_WAITER_H

#include "common/waiter.h"
#include "net/net.h"

/* A net_pool_call_async callback; arg is the struct common_waiter. */
static inline void test_call_done(void *arg, struct net_call *call)
{
	common_waiter_done(arg, call->status);
}

#endif
