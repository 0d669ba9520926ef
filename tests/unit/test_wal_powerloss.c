/*
 * test_wal_powerloss.c - power loss at a chosen point, through faultio.
 *
 * Writer threads run against a store whose I/O goes through faultio. After
 * a random number of mutating calls the machine "stops": every call fails.
 * Then every write not covered by an fsync is dropped, kept, or torn at a
 * random byte, and files whose directory was not synced may vanish. The
 * store is reopened with plain I/O: every acknowledged operation must be
 * there byte for byte, and no torn record may be returned. The same store
 * goes through every round, so recovery also recovers its own repairs.
 */
#include "wal/wal.h"
#include "crash_model.h"
#include "faultio.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define KEYS 64
#define THREADS 4
#define ROUNDS 60

static void model_intent(void *arg, uint64_t id, bool put, uint64_t version, uint32_t len)
{
	crash_model_intent(arg, id, put, version, len);
}

static void model_ack(void *arg, uint64_t id)
{
	crash_model_ack(arg, id);
}

static void loss_options(struct wal_options *o, const char *dir)
{
	test_wal_options(o, dir);
	o->segment_size = 256u << 10;
	o->max_payload = 64u << 10;
	o->checkpoint_every = 2;
	o->compact_threshold = 0.5;
	o->compact_interval_ms = 5;
}

static void run_until_crash(const char *dir, struct crash_model *m, long crash_after,
			    guint32 seed, uint64_t version_base)
{
	struct workload_sink sink = {model_intent, model_ack, m};
	struct faultio_plan plan = {.crash_after = crash_after};
	struct workload wl[THREADS];
	GThread *th[THREADS];
	volatile gint stop = 0;
	struct wal_options o;
	struct wal *w = NULL;

	loss_options(&o, dir);
	o.io = &faultio;
	o.background_compaction = true;
	faultio_start(&plan);
	if (wal_open(&o, &w) < 0) /* the machine stopped while opening */
		return;
	for (unsigned i = 0; i < THREADS; i++) {
		wl[i] = (struct workload){w, i, THREADS, KEYS, version_base, 48u << 10, seed + i,
					  &sink, &stop, 0};
		th[i] = g_thread_new("writer", workload_main, &wl[i]);
	}
	for (unsigned i = 0; i < THREADS; i++) /* each stops at its first failure */
		g_thread_join(th[i]);
	faultio_crash_now();
	wal_close(w);
}

/* After power loss at any point, acknowledged operations are all there and
 * torn writes are never returned. */
static void test_power_loss_keeps_acknowledged(void **state)
{
	struct crash_run r;
	struct wal_options o;

	(void)state;
	crash_run_init(&r);
	for (int round = 0; round < ROUNDS; round++) {
		long crash_after = g_rand_int_range(r.rng, 1, 400);

		run_until_crash(r.dir, r.m, crash_after, r.seed + (guint32)round * 16,
				(uint64_t)(round + 1) << 32);
		faultio_power_loss(r.rng);
		loss_options(&o, r.dir);
		assert_int_equal(crash_run_verify(&r, &o, KEYS), 0);
	}
	assert_true(crash_run_finish(&r, ROUNDS, "power losses") > 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_loss_keeps_acknowledged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
