/*
 * wal_test.h - helpers shared by the wal tests: scratch directories,
 * self-describing payloads, and faultio, a struct wal_io that injects errors
 * and simulates power loss (writes not covered by an fsync dropped or torn).
 */
#ifndef SHARDFS_TESTS_WAL_TEST_H
#define SHARDFS_TESTS_WAL_TEST_H

#include "wal/wal.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* A new empty directory under $TMPDIR; test_rmdir removes it and its files. */
char *test_mkdtemp(void);
void test_rmdir(const char *dir);

struct wal_key test_key(uint64_t id);
/* Payload of a given version of key id: 16 bytes naming (id, version) when
 * len allows, then bytes derived from both. */
void test_payload(uint8_t *buf, size_t len, uint64_t id, uint64_t version);
/* True if buf is exactly some version's payload of key id; sets *version
 * (0 when len < 16 and the payload is the version-0 form). */
bool test_payload_check(const uint8_t *buf, size_t len, uint64_t id, uint64_t *version);

void test_wal_options(struct wal_options *o, const char *dir);

/* ---- faultio ---- */

enum faultio_op {
	FIO_NONE,
	FIO_PWRITEV,
	FIO_FDATASYNC,
	FIO_FSYNC,
	FIO_OPEN,
	FIO_UNLINK,
	FIO_FTRUNCATE,
	FIO_PREAD,
};

struct faultio_plan {
	enum faultio_op fail_op; /* calls of this kind fail ... */
	int fail_errno;		 /* ... with this errno ... */
	long fail_from;		 /* ... from the call with this index (0-based) ... */
	long fail_count;	 /* ... for this many calls (-1: for ever) */
	long crash_after;	 /* after this many mutating calls every call fails
				  * with EIO, as if the machine stopped; -1: never */
	unsigned sync_delay_us;	 /* every fdatasync takes at least this long */
};

extern const struct wal_io faultio;

/* Resets all tracking and arms plan (NULL: no faults). */
void faultio_start(const struct faultio_plan *plan);
/* Stops the machine now: every later call fails with EIO. */
void faultio_crash_now(void);
bool faultio_crashed(void);
long faultio_mutations(void);
uint64_t faultio_bytes_read(void);
/*
 * Turns every file touched since faultio_start() into what a power loss
 * would leave: its content at its last fsync plus, for each later write, the
 * whole write, nothing, or a prefix of it (chosen by rng); files created
 * since the last directory fsync may vanish. Then forgets all tracking.
 */
void faultio_power_loss(GRand *rng);

#endif

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
