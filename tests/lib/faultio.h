/*
 * faultio.h - a struct wal_io for the wal tests that injects errors per
 * call kind and simulates power loss: writes not covered by an fsync are
 * dropped, kept or torn. State is global: one store at a time per process.
 */
#ifndef SHARDFS_TESTS_FAULTIO_H
#define SHARDFS_TESTS_FAULTIO_H

#include "wal/wal.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

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
