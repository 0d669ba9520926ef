/*
 * wal.h - the node-local shard store: write-ahead-log segment files.
 *
 * A node keeps every shard it stores as one record in append-only segment
 * files under one directory. An in-memory index maps a shard key to the
 * record that holds its newest version. The index is rebuilt on open from a
 * checkpoint file plus a scan of the segments written after it.
 *
 * Durability: wal_put() and wal_delete() return (and wal_put_async()'s
 * callback fires) only after an fdatasync() that covers the record. Appends
 * from many threads are batched by a writer thread and a sync thread, so many
 * records share one fsync (group commit). No lock is held across disk I/O.
 *
 * Threading: every function may be called from any thread, except that
 * wal_close() must not race with other calls on the same handle.
 *
 * Failure: a failed write (ENOSPC, EIO) fails the records of that batch and
 * truncates the segment back, so the store stays usable. A failed fsync is
 * never retried: the store turns read-only (-EROFS) until it is reopened,
 * because the kernel may have dropped the dirty pages it could not write.
 *
 * ---------------------------------------------------------------------------
 * On-disk format (all integers little-endian, CRC32C = Castagnoli,
 * computed with ISA-L)
 *
 * Directory: seg-<16 hex digits id>.wal segment files, index.ckpt (the
 * checkpoint), *.tmp files (unfinished checkpoints, removed on open) and
 * *.bad files (segments whose header is not ours, kept for an operator).
 *
 * Segment header, 32 bytes at offset 0 of every segment:
 *   OFFSET SIZE MEANING
 *        0    8 magic "SHRDSEG1"
 *        8    4 format version (1)
 *       12    4 header size (32)
 *       16    8 segment id (equal to the id in the file name)
 *       24    4 reserved, 0
 *       28    4 CRC32C of bytes 0..27
 *
 * Record, repeated after the segment header:
 *   OFFSET SIZE MEANING
 *        0    4 magic "SFWR"
 *        4    1 format version (1)
 *        5    1 type: 1 put, 2 delete (tombstone, payload length 0)
 *        6    1 block shift: payload CRC block size is 1 << shift (16)
 *        7    1 flags, 0
 *        8   16 object id
 *       24    4 part number
 *       28    2 shard index
 *       30    2 reserved, 0
 *       32    8 sequence number (newest version of a key = highest)
 *       40    4 payload length in bytes
 *       44    4 CRC32C of bytes 0..43 followed by the block CRC table
 *       48  4*n block CRC table: CRC32C of each payload block,
 *               n = ceil(payload length / block size)
 *   48+4n   len payload
 *
 * The header CRC covers the table and the table covers every payload byte,
 * so one chain of CRCs covers the whole record, and a range read verifies
 * only the blocks it touches.
 */
#ifndef SHARDFS_WAL_H
#define SHARDFS_WAL_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* wal's error codes, WAL_ECORRUPT and WAL_EBADSEG, are declared with every
 * other module's in common/error.h. */
#include "common/error.h"

#define WAL_SEG_HEADER_SIZE 32u
#define WAL_REC_HEADER_SIZE 48u
#define WAL_BLOCK_SHIFT 16u
#define WAL_BLOCK_SIZE (1u << WAL_BLOCK_SHIFT)
/* Largest payload the format admits; a store may set a lower limit. */
#define WAL_REC_MAX_PAYLOAD (1u << 30)

enum wal_rec_type {
	WAL_REC_PUT = 1,
	WAL_REC_DELETE = 2,
};

/* The identity of a shard: two shards of one object never collide. */
struct wal_key {
	uint8_t object_id[16];
	uint32_t part;
	uint16_t shard;
};

/*
 * The replaceable system-call table. Every file operation of the store goes
 * through it, so tests can inject EIO, ENOSPC, short writes and power loss.
 * Each function returns what the system call returns and sets errno.
 */
struct wal_io {
	int (*open)(const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
	ssize_t (*pwritev)(int fd, const struct iovec *iov, int iovcnt, off_t off);
	int (*fdatasync)(int fd);
	int (*fsync)(int fd);
	int (*ftruncate)(int fd, off_t len);
	int (*rename)(const char *from, const char *to);
	int (*unlink)(const char *path);
};

/* The plain POSIX table, used when wal_options.io is NULL. */
extern const struct wal_io wal_io_posix;

struct wal_options {
	const char *dir;	    /* created if missing */
	uint64_t segment_size;	    /* a segment is sealed beyond this; 64 MiB */
	uint32_t max_payload;	    /* largest shard a put accepts; 32 MiB. Records
				     * already stored are read whatever their size. */
	double compact_threshold;   /* compact sealed segments below this live ratio */
	unsigned checkpoint_every;  /* checkpoint after this many sealed segments */
	bool background_compaction; /* run a compaction thread */
	unsigned compact_interval_ms;
	const struct wal_io *io;    /* NULL: wal_io_posix */
};

struct wal_stats {
	uint64_t keys;		 /* live shards */
	uint64_t live_bytes;	 /* bytes of records the index points to */
	uint64_t disk_bytes;	 /* bytes of all segments */
	uint64_t segments;
	uint64_t appends;	 /* records made durable since open */
	uint64_t syncs;		 /* fdatasync batches since open */
	uint64_t compactions;	 /* segments compacted since open */
	uint64_t corrupt_records; /* records found failing their CRC */
	uint64_t bad_segments;	 /* segments set aside as *.bad on open */
	uint64_t torn_bytes;	 /* bytes of torn tail truncated on open */
	uint64_t bad_shards;	 /* live shards found bad now (wal_list_damaged) */
	int sticky_error;	 /* 0, or the error that made the store read-only */
};

/* What wal_stat() tells about one shard. */
struct wal_shard_info {
	uint32_t length;
	uint64_t seq;
	bool corrupt;
};

/* One bad record or region found by wal_scrub(). key_valid is false when the
 * record header itself is unreadable. */
struct wal_scrub_item {
	uint64_t segment_id;
	uint64_t offset;
	bool key_valid;
	struct wal_key key;
	int error;
};

struct wal_scrub_report {
	uint64_t records_checked;
	uint64_t bytes_checked;
	uint64_t bad_records;
};

struct wal;

/* Called once per wal_put_async() from the sync thread: status 0 once the
 * record is durable, else a negative error. Must not block for long. */
typedef void (*wal_done_fn)(void *arg, int status);
typedef void (*wal_scrub_fn)(void *arg, const struct wal_scrub_item *item);
/* Called by wal_list() for each live shard, under no lock; return non-zero
 * to stop. written_s: the latest time (Unix seconds) its record can have
 * been written, the modification time of its segment (a copy made by
 * compaction is newer than the record it copies, never older). */
typedef int (*wal_list_fn)(void *arg, const struct wal_key *key, uint32_t length,
			   int64_t written_s);

void wal_options_default(struct wal_options *o);

/*
 * Opens (creating if needed) the store in o->dir, recovers the index and
 * starts the writer, sync and (optionally) compaction threads.
 * Errors: -EINVAL (bad options), -ENOMEM, and any errno of the file system.
 * Damaged data never makes open fail: torn tails are truncated, corrupt
 * records are indexed as corrupt, foreign segments are renamed *.bad.
 */
int wal_open(const struct wal_options *o, struct wal **out);

/* Waits for queued appends, writes a checkpoint, stops the threads, frees.
 * NULL is a no-op. */
void wal_close(struct wal *w);

/*
 * Appends a new version of key. data must stay valid until done() is
 * called. Returns 0 when queued (done() then reports the outcome), or
 * -EMSGSIZE (len > max_payload), -EROFS (store failed), -ESHUTDOWN (closing)
 * without calling done().
 */
int wal_put_async(struct wal *w, const struct wal_key *key, const void *data,
		  size_t len, wal_done_fn done, void *arg);

/* wal_put_async() that waits: 0 once durable, or a negative error. */
int wal_put(struct wal *w, const struct wal_key *key, const void *data, size_t len);

/* Writes a durable tombstone. -ENOENT if the key has no live shard. */
int wal_delete(struct wal *w, const struct wal_key *key);

/* -ENOENT if the key has no live shard. */
int wal_stat(struct wal *w, const struct wal_key *key, struct wal_shard_info *info);

/*
 * Reads up to len bytes of the shard from offset off into buf, reading only
 * the CRC blocks that cover the range. Returns the number of bytes read
 * (short at the end of the shard, 0 at its end), or -ENOENT (no such shard),
 * -EINVAL (off beyond the end), WAL_ECORRUPT (a covering block or the
 * record header fails its CRC), or an errno of pread.
 */
ssize_t wal_read(struct wal *w, const struct wal_key *key, uint64_t off, void *buf,
		 size_t len);

/* Calls fn for every live shard (a snapshot taken under the index lock). */
int wal_list(struct wal *w, wal_list_fn fn, void *arg);
/* The same for the live shards found bad: a record that failed its CRC
 * (scrub, recovery) or a read that met a bad block. Rewriting one (a new
 * put of its key) takes it off the list. */
int wal_list_damaged(struct wal *w, wal_list_fn fn, void *arg);

/*
 * Rewrites the live records of every sealed segment whose live ratio is
 * below threshold into the active segment, then deletes it. Readers and
 * writers go on meanwhile. *compacted (may be NULL) counts the segments
 * removed. Errors: those of the append path; a failure leaves the victim
 * segment in place.
 */
int wal_compact(struct wal *w, double threshold, unsigned *compacted);

/* Writes the index checkpoint now (atomically: tmp file, fsync, rename). */
int wal_checkpoint(struct wal *w);

/* Verifies every record of every segment; fn (may be NULL) is told of each
 * bad one. Returns 0 or an I/O error; bad records are counted in rep. */
int wal_scrub(struct wal *w, wal_scrub_fn fn, void *arg, struct wal_scrub_report *rep);

/* How a background scrub goes: at most bytes_per_s (0: as fast as the disk
 * reads), ending early with -ECANCELED once *stop (atomic) is non-zero,
 * and storing the bytes checked so far in *progress (atomic; may be NULL)
 * for others to read while it runs. */
struct wal_scrub_pace {
	uint64_t bytes_per_s;
	const gint *stop;
	uint64_t *progress;
};
int wal_scrub_paced(struct wal *w, const struct wal_scrub_pace *pace, wal_scrub_fn fn, void *arg,
		    struct wal_scrub_report *rep);

void wal_get_stats(struct wal *w, struct wal_stats *st);

/* The store's figures in Prometheus's text format (common/metrics.h):
 * append and fsync latency, records per group commit, counters and
 * sizes; any thread. */
void wal_metrics(struct wal *w, GString *out);

#endif
