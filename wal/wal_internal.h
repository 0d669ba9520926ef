/*
 * wal_internal.h - the state shared by the files of the wal module.
 *
 * Lock order: w->lock (index, segment table, stats) may be taken while
 * holding nothing else; w->qlock (the two request queues) is never held
 * while taking w->lock, and neither is held across disk I/O or callbacks.
 *
 * Threads: the writer thread owns w->active and all appends to segment
 * files; the sync thread owns fdatasync and applies durable records to the
 * index; the maintenance thread writes checkpoints and runs compaction.
 */
#ifndef SHARDFS_WAL_INTERNAL_H
#define SHARDFS_WAL_INTERNAL_H

#include "common/metrics.h"
#include "wal.h"
#include "wal_record.h"

#include <glib.h>

struct wal_seg {
	uint64_t id;
	int fd;
	char *path;
	uint64_t size;	     /* w->lock; grown only by the writer thread */
	uint64_t live_bytes; /* w->lock */
	bool sealed;	     /* w->lock */
	bool needs_dir_sync; /* writer sets, sync thread clears */
	bool compact_failed; /* holds a live record compaction cannot read; maintenance thread */
	gint refs;	     /* atomic; the segment table holds one */
	struct wal *w;
};

/* Index value: where the newest record of a key is. w->lock. */
struct wal_entry {
	struct wal_key key;
	struct wal_seg *seg; /* NULL while a checkpoint entry awaits its segment */
	uint64_t seg_id;
	uint64_t offset;
	uint64_t seq;
	uint32_t payload_len;
	/* Put records of this key on disk other than this one: a tombstone may
	 * be dropped by compaction only once none is left to resurrect. */
	uint32_t older_puts;
	uint8_t type;
	bool corrupt; /* its record failed its CRC: reads refuse it */
	bool damaged; /* a read found a bad block: other blocks still read, but
		       * the shard wants rewriting (wal_list_damaged) */
};

struct wal_req {
	struct wal_req *next;
	struct wal_rec rec;
	uint8_t *head; /* header + table; for a relocation, the whole record */
	size_t head_len;
	const void *body; /* payload bytes written after head, or NULL */
	size_t body_len;
	wal_done_fn done;
	void *arg;
	/* A compaction copy: applied only if the index still points here. */
	struct wal_seg *from_seg;
	uint64_t from_off;
	/* Set by the writer thread. */
	struct wal_seg *seg;
	uint64_t offset;
	int status;
	gint64 queued_us; /* when made: its latency to durable ends at done */
};

struct wal_queue {
	struct wal_req *head, *tail;
};

struct wal {
	struct wal_options opt;
	const struct wal_io *io;
	char *dir;
	int dir_fd;

	GMutex lock;
	GHashTable *index;    /* struct wal_key * -> struct wal_entry *, w->lock */
	GHashTable *segments; /* uint64_t id -> struct wal_seg *, w->lock */
	uint64_t durable_seg_id; /* segment of the newest applied record, w->lock */
	uint64_t applied_end;	 /* and the offset just after it, w->lock */
	uint64_t max_seq;	 /* highest sequence number indexed, w->lock */
	struct wal_stats stats;	 /* w->lock, but sticky_error is atomic */

	GMutex qlock;
	GCond write_cond; /* work for the writer thread */
	GCond sync_cond;  /* work for the sync thread */
	GCond idle_cond;  /* in_flight dropped to 0 */
	struct wal_queue write_q; /* qlock */
	struct wal_queue sync_q;  /* qlock */
	uint64_t next_seq;	  /* qlock */
	unsigned in_flight;	  /* queued and not yet completed, qlock */
	bool stopping;		  /* qlock */
	bool writer_done;	  /* qlock */

	struct wal_seg *active; /* writer thread (and open/close) only */
	uint64_t next_seg_id;	/* writer thread */
	unsigned sealed_since_ckpt; /* atomic */

	GMutex work_lock;	/* serialises checkpoint and compaction */
	GMutex maint_lock;	/* guards maint_stop, wakes the maintenance thread */
	GCond maint_cond;
	bool maint_stop;	/* maint_lock */

	GThread *writer, *syncer, *maint;
	/* Filled by the sync thread, read by any (wal_metrics). */
	struct metrics_hist append_latency; /* request made to durable, ns */
	struct metrics_hist sync_latency;   /* one batch's fdatasyncs, ns */
	struct metrics_hist batch_records;  /* records made durable by one sync */
};

/* Key hashing for the index (xxh3 over the packed key). */
guint wal_key_hash(gconstpointer key);
gboolean wal_key_equal(gconstpointer a, gconstpointer b);

struct wal_seg *wal_seg_ref(struct wal_seg *seg);
void wal_seg_unref(struct wal_seg *seg);
/* Creates and opens segment id with its header written (not yet synced). */
int wal_seg_create(struct wal *w, uint64_t id, struct wal_seg **out);
char *wal_seg_path(const struct wal *w, uint64_t id);

/* Index updates, w->lock held. */
/* Records that rec (at seg/offset) exists on disk, newest version winning. */
void wal_index_apply(struct wal *w, const struct wal_rec *rec, struct wal_seg *seg,
		     uint64_t offset, bool corrupt);
/* Marks e bad: corrupt (its record failed its CRC) or damaged (a read met
 * a bad block), keeping stats.bad_shards right. */
void wal_entry_mark_bad(struct wal *w, struct wal_entry *e, bool corrupt);
/* Points e at a new location (seg may be NULL for a stale entry). */
void wal_entry_move(struct wal *w, struct wal_entry *e, struct wal_seg *seg, uint64_t offset);
void wal_index_remove(struct wal *w, struct wal_entry *e);
struct wal_entry *wal_index_lookup(struct wal *w, const struct wal_key *key);
struct wal_entry *wal_index_insert(struct wal *w, const struct wal_key *key);
uint64_t wal_entry_size(const struct wal_entry *e);

/* recover.c: builds w->index and w->segments from the directory. */
int wal_recover(struct wal *w);

/* checkpoint.c */
struct wal_ckpt_info {
	uint64_t count;
	uint64_t applied_seg; /* every record before (applied_seg, applied_end) */
	uint64_t applied_end; /* is reflected in the entries */
	uint64_t max_seq;
};
typedef int (*wal_ckpt_entry_fn)(void *arg, const struct wal_entry *e);
/* Decodes a checkpoint image, calling fn for each entry (seg unset).
 * Returns 0, WAL_ECORRUPT, or fn's non-zero value. */
int wal_checkpoint_parse(const uint8_t *buf, size_t len, uint32_t max_payload,
			 struct wal_ckpt_info *info, wal_ckpt_entry_fn fn, void *arg);
int wal_checkpoint_load(struct wal *w, struct wal_ckpt_info *info);
int wal_checkpoint_write(struct wal *w);

/* Queues a request built by the caller and waits for it. */
int wal_submit_wait(struct wal *w, struct wal_req *req);
int wal_submit(struct wal *w, struct wal_req *req);

int wal_sticky_error(struct wal *w);
void wal_set_sticky_error(struct wal *w, int err);

/* File helpers over w->io. */
int wal_read_exact(struct wal *w, int fd, void *buf, size_t len, uint64_t off);
int wal_write_exact(struct wal *w, int fd, const struct iovec *iov, int iovcnt, uint64_t off);
int wal_sync_dir(struct wal *w);

#endif
