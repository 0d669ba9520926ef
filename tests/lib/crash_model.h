/*
 * crash_model.h - for the crash and power-loss tests of the store: what a
 * store may hold after a crash, and the writer threads that make it.
 */
#ifndef SHARDFS_TESTS_CRASH_MODEL_H
#define SHARDFS_TESTS_CRASH_MODEL_H

#include "wal_fixture.h"

/* ---- crash model ----
 * What a store may hold after a crash: for each key, the outcome of its last
 * acknowledged operation, or of the one operation begun after it (which
 * may or may not have reached the disk). Keys must be written by one thread
 * each, so that their operations are ordered. Thread-safe. */
struct crash_model;

struct crash_model *crash_model_new(void);
void crash_model_free(struct crash_model *m);
void crash_model_intent(struct crash_model *m, uint64_t id, bool put, uint64_t version,
			uint32_t len);
void crash_model_ack(struct crash_model *m, uint64_t id);
uint64_t crash_model_acks(struct crash_model *m);
/* Reads every key below max_id from w; returns how many hold something not
 * allowed (each printed), then takes what was found as the new state. */
int crash_model_verify(struct crash_model *m, struct wal *w, uint64_t max_id);

/* ---- workload for crash tests ----
 * Puts (random sizes up to max_len) and deletes on the keys k < keys with
 * k % nthreads == thread, telling sink of each operation before it starts
 * and after it is acknowledged. Runs until an operation fails or *stop is
 * set; returns 0 or the failure. Versions are base + a counter. */
struct workload_sink {
	void (*intent)(void *arg, uint64_t id, bool put, uint64_t version, uint32_t len);
	void (*ack)(void *arg, uint64_t id);
	void *arg;
};

struct workload {
	struct wal *w;
	unsigned thread, nthreads;
	uint64_t keys;
	uint64_t version_base;
	uint32_t max_len;
	guint32 seed;
	const struct workload_sink *sink;
	volatile gint *stop;
	int result;
};

gpointer workload_main(gpointer workload);

/* ---- the rounds of a crash test ----
 * One store through every round: its scratch directory, the model, and a
 * seed taken from the clock (printed at init, so that a failure can be
 * replayed in thought) with the rng it seeds. */
struct crash_run {
	char *dir;
	struct crash_model *m;
	guint32 seed;
	GRand *rng;
};

void crash_run_init(struct crash_run *r);
/* Opens the store after a crash (the open must succeed) and returns
 * crash_model_verify() of its keys below keys. */
int crash_run_verify(struct crash_run *r, const struct wal_options *o, uint64_t keys);
/* Prints how many operations were acknowledged over rounds of what
 * ("kills"), frees everything and returns that count. */
uint64_t crash_run_finish(struct crash_run *r, int rounds, const char *what);

#endif
