/*
 * store.h - erasure-coded objects on the cluster's nodes: the streamed
 * multipart writer and the range reader.
 *
 * An object is a sequence of parts (default 8 MiB). Each part is
 * checksummed (xxh3-128 of the plain bytes), split into k data + m parity
 * fragments (erasure.h) and fragment i is stored as shard (object id, part,
 * i) on the i-th node of the part's placement (ring.h). The manifest
 * (struct meta_part per part) records the nodes that really hold the
 * shards, so later ring changes or hand-offs never lose track of data.
 *
 * Write policy when a node fails during a put: the shard is handed off to
 * the next node of the ring that holds no shard of that part (so the part
 * still has k+m distinct nodes), and the manifest records it. If no such
 * node answers, the part fails and so does the writer: finish() reports
 * the error and deletes what was sent. Success is never reported for a part
 * without all its k+m shards durable on k+m distinct nodes.
 *
 * Read policy: a range of a part is read from the data fragments that hold
 * it (a 4 KiB read moves about 4 KiB). Whole parts (sequential reads, read
 * ahead) are read from k data shards and their checksum is verified. A
 * shard that fails, is corrupt, or is slower than the hedge deadline makes
 * the reader fetch the other shards and decode; a decoded part is always
 * checked against the part checksum before any byte is returned. Nodes that
 * failed are avoided for a while (store_options.suspect_ms).
 *
 * Threading: a store is shared by any number of threads; a writer or a
 * reader is used by one thread at a time.
 */
#ifndef SHARDFS_STORE_STORE_H
#define SHARDFS_STORE_STORE_H

#include "common/error.h"
#include "store/meta/meta.h"

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* store's error codes (STORE_EUNAVAIL, STORE_ECORRUPT, STORE_EEOF) are
 * declared in common/error.h; common_strerror names them. */

struct store_options {
	unsigned max_inflight;	  /* parts being encoded or sent per writer (4) */
	unsigned put_timeout_ms;  /* one shard put (10 s) */
	unsigned hedge_ms;	  /* a shard slower than this is read around (300 ms) */
	unsigned read_timeout_ms; /* whole read of one part (10 s) */
	unsigned readahead;	  /* parts fetched ahead of a sequential reader (2) */
	unsigned suspect_ms;	  /* how long a failed node is avoided (10 s) */
};

/* What the store has seen, since store_open. */
struct store_stats {
	uint64_t parts_written, shards_handed_off;
	uint64_t shards_missing; /* shards a write could place nowhere (recorded in the manifest) */
	uint64_t parts_degraded; /* parts written with shards missing */
	uint64_t shards_rebuilt; /* missing shards repair put back */
	uint64_t parts_read, ranges_read, degraded_reads, hedged_reads;
	uint64_t corrupt_shards; /* shards a node reported corrupt or that failed the checksum */
	uint64_t bytes_written, bytes_read; /* plain bytes of objects */
	uint64_t shard_bytes_fetched;	    /* bytes that came from nodes for reads */
};

struct net_cluster;
struct store;
struct store_writer;
struct store_reader;

void store_options_default(struct store_options *o);
/* Loads the cluster file, its certificates and erasure code, and starts
 * the connection pool. -EINVAL, -ENOTSUP (no erasure backend) with *err. */
int store_open(const char *cluster_path, const struct store_options *o, struct store **out,
	       GError **err);
void store_close(struct store *s);
const struct net_cluster *store_cluster(const struct store *s);
/* The cluster file's metadata URL and part size. */
const char *store_meta_url(const struct store *s);
size_t store_part_size(const struct store *s);
void store_get_stats(struct store *s, struct store_stats *st);
/* Those counters and the per-node latency of shard calls, in Prometheus's
 * text format (common/metrics.h); any thread. */
void store_metrics(struct store *s, GString *out);

/*
 * Membership: the nodes the store reaches and the ring it places shards
 * by, from the metadata's members (store_follow_members), or from the
 * cluster file until the first call. A draining or out node is reached
 * for what it holds but takes no new shard.
 */
struct store_node {
	uint32_t id;
	char *host;
	uint16_t port;
	uint32_t weight;
	char *zone; /* NULL if none */
	enum meta_member_state state;
};
/* The nodes now, by id (*n of them): a list that never changes, valid
 * until store_close. */
const struct store_node *store_nodes(struct store *s, unsigned *n);
/* The cluster file's nodes as members (state active), by id, appended to
 * out (struct meta_member): what seeds a metadata that has none, and what
 * a host that cannot read the metadata goes by. */
void store_cluster_members(const struct net_cluster *c, GArray *out);
/* Takes the membership from m (seeded from the cluster file when m has
 * none yet): 1 if it changed the nodes or the ring, 0 if not, or -errno
 * (the store goes on with what it had). Any thread. */
int store_follow_members(struct store *s, struct meta *m);

/* A new random object id. */
void store_object_id_new(uint8_t oid[16]);

/*
 * A writer of object oid from part first_part on (the parts it returns
 * carry oid as their object_id). write() copies and
 * returns once the bytes are buffered; it blocks while max_inflight parts
 * are in flight. Its errors (and finish's) are sticky: STORE_EUNAVAIL,
 * network errors of net.h, -ENOMEM.
 */
int store_writer_new(struct store *s, const uint8_t oid[16], uint32_t first_part,
		     struct store_writer **out);
int store_writer_write(struct store_writer *w, const void *buf, size_t len);
/*
 * As store_writer_write of len bytes at a part boundary (nothing buffered
 * since the last whole part), but buf, a g_malloc'd buffer of part size
 * bytes, becomes the writer's instead of being copied; it is the writer's
 * (freed by it) on failure too. -EINVAL if the writer holds a partial
 * part or len exceeds the part size; else as write().
 */
int store_writer_give(struct store_writer *w, void *buf, size_t len);
/* Sends the last partial part, waits for every shard to be durable and
 * returns the manifest parts (*parts freed with g_free; none for an empty
 * object). On failure, deletes what was sent. */
int store_writer_finish(struct store_writer *w, struct meta_part **parts, unsigned *nparts);
/* Frees w; a writer not finished is aborted: its shards are deleted. */
void store_writer_free(struct store_writer *w);

/*
 * A reader of a file made of parts (sorted, contiguous from offset 0).
 * Reads that continue the previous one are served from whole parts read
 * ahead; others from ranges. Returns bytes read (short only at the end of
 * the file), or STORE_EUNAVAIL, STORE_ECORRUPT, -ENOMEM.
 */
int store_reader_new(struct store *s, const struct meta_part *parts, unsigned nparts,
		     struct store_reader **out);
ssize_t store_reader_read(struct store_reader *r, uint64_t off, void *buf, size_t len);
void store_reader_free(struct store_reader *r);

/* Reads bytes [a, b) of one part (a hole reads as zeros): only the ranges
 * of the data shards that hold them when all goes well. 0, -EINVAL (range
 * outside the part), or the reader's errors. */
int store_part_read(struct store *s, const struct meta_part *p, uint64_t a, uint64_t b,
		    uint8_t *out);

/* Deletes the shards of parts (holes have none); returns 0 or the first
 * error (best effort: every shard is tried). */
int store_parts_delete(struct store *s, const struct meta_part *parts, unsigned nparts);

/*
 * Backups of the metadata in the cluster itself (backup.c): a dump of the
 * namespace as an object on the nodes, its catalog on every node, under
 * object ids no file has (store_backup_oid). seq is the backup's time in
 * nanoseconds since the epoch.
 */
#define STORE_BACKUP_CATALOG_PART UINT32_MAX
#define STORE_BACKUPS_KEPT 24
struct store_backup {
	uint64_t seq, length, rows;
};
bool store_backup_oid(const uint8_t oid[16]);
/* Dumps m into the cluster, then deletes all but the keep newest backups. */
int store_backup_write(struct store *s, struct meta *m, unsigned keep, struct store_backup *out,
		       GError **err);
/* The backups the nodes that answer hold, newest first (*seqs freed with
 * g_free); STORE_EUNAVAIL if no node answers. */
int store_backup_list(struct store *s, uint64_t **seqs, unsigned *n);
/* Writes backup seq's dump to out; *info, when not NULL, says what it is. */
int store_backup_read(struct store *s, uint64_t seq, FILE *out, struct store_backup *info,
		      GError **err);

/* What one repair pass did. */
struct store_repair_stats {
	uint64_t parts_repaired; /* every missing shard of them rebuilt */
	uint64_t parts_failed;	 /* unreadable, or some shard found no node */
	uint64_t parts_changed;	 /* rewritten or removed meanwhile: left alone */
	uint64_t parts_waiting;	 /* no node that could take their shards answers */
	uint64_t shards_rebuilt;
	uint64_t bytes_read;	 /* of parts read to rebuild from */
	uint64_t parts_lost_store; /* parts marked missing a shard: its node's store was lost */
	uint64_t shards_found_bad; /* shards marked missing: their node found them bad */
	uint64_t parts_down_out;   /* parts marked missing a shard: its node stayed down */
	uint64_t parts_elsewhere;  /* left alone: another worker holds their lease */
};

/* The default bound of a repair's reads (MiB/s): it leaves the disks and
 * the network to clients while it rebuilds. */
#define STORE_REPAIR_RATE_MIB 64

/* How long a repair that has read bytes in elapsed_us must wait to stay
 * at bytes_per_s (0: unbounded, never waits). */
gint64 store_repair_pause_us(uint64_t bytes, uint64_t bytes_per_s, gint64 elapsed_us);

/* Where a repair that goes a few parts at a time is; {0}: the start. A
 * round is passes over the list of degraded parts, the parts closest to
 * loss first: pass L takes the parts that hold k + L shards (pass 0 also
 * those with fewer). */
struct store_repair_cursor {
	uint64_t ino;
	uint32_t index;
	unsigned level; /* the round's pass */
	bool more;	/* this pass saw parts that hold more shards */
	gint64 round_start_us; /* the round's rate, which status shows */
	uint64_t round_bytes;
	uint64_t rate_bound; /* bytes/s the caller holds the rate to (0: none) */
};

/* Looks at up to max parts with shards missing after *cur, repairs those
 * of its pass, and moves it on, adding to *st; at the end of the list the
 * next pass begins, and after the last *cur goes back to the start and
 * *wrapped is set. A step from the start first asks every node which
 * store it has and which shards it found bad: the shards of a store that
 * answers with another identity than the metadata recorded, and the bad
 * ones, are marked missing (repair.c). 0, or the metadata's error. */
int store_repair_step(struct store *s, struct meta *m, struct store_repair_cursor *cur,
		      unsigned max, struct store_repair_stats *st, bool *wrapped);

/* Records the identity of each node's store where the metadata has none
 * yet, and marks missing the shards of a store that answers with another
 * (as a repair round does first): a writer calls it before it places
 * shards, so that a store wiped after the write is told from a new one. */
void store_note_identities(struct store *s, struct meta *m);

/* One pass over the parts that writes recorded with shards missing
 * (meta_degraded_list): each is read and checked, its missing shards are
 * rebuilt onto nodes that hold none of the part, and their places are
 * committed with a compare-and-set of the manifest (repair.c). One pass at
 * a time per cluster. 0, or the metadata's error. */
int store_repair_pass(struct store *s, struct meta *m, struct store_repair_stats *st);

/*
 * The cluster's scrub (scrub.c): every shard the manifests name is looked
 * for on its node, and a missing one is marked for repair; with deep,
 * every part is read whole and checked against its checksum; shards that
 * no manifest names (orphans) are deleted once at least grace_s old.
 * dry_run: count only, change nothing.
 */
#define STORE_SCRUB_GRACE_DEFAULT_S 3600
#define STORE_SCRUB_INOS_MAX 1000u

struct store_scrub_options {
	bool deep;
	bool dry_run;
	uint64_t grace_s;
};

struct store_scrub_stats {
	unsigned nodes, nodes_answered; /* a node that does not answer is not checked */
	uint64_t parts, bytes;		/* stored parts walked, and their plain bytes */
	uint64_t shards_named;		/* by the manifests */
	uint64_t shards_listed;		/* by the nodes that answered, but for backups' */
	uint64_t backup_shards;		/* of the metadata's backups: never orphans */
	uint64_t missing_found, missing_marked; /* named shards not on their node */
	uint64_t orphans_found, orphans_deleted, orphans_young; /* young: kept */
	uint64_t parts_read, parts_unreadable;	/* deep */
	uint64_t corrupt_reads; /* deep: shard reads found corrupt, read around; their
				  * nodes note them for repair */
	GArray *unreadable_inos; /* uint64_t, the first STORE_SCRUB_INOS_MAX */
};

typedef void (*store_scrub_progress_fn)(void *arg, uint64_t parts_done, uint64_t parts_total);

/* 0, or the metadata's error; st is filled either way (free it with
 * store_scrub_stats_free). */
int store_scrub(struct store *s, struct meta *m, const struct store_scrub_options *o,
		struct store_scrub_stats *st, store_scrub_progress_fn progress, void *arg);
void store_scrub_stats_free(struct store_scrub_stats *st);

/*
 * Rebalance (rebalance.c): every shard that is not on a node the ring
 * now places it on (a node was added, drains or went out) is copied to
 * one that is, its new place committed with a compare-and-set of the
 * part's row, and only then deleted where it was: redundancy never drops
 * during a move, and a worker killed at any moment leaves at worst a
 * copy that no manifest names, which scrub collects. Parts with shards
 * missing are repair's, and wait for it. A draining node that ends
 * holding nothing is put out. bytes_per_s bounds the shard bytes moved
 * (0: no bound); dry_run counts what would move.
 */
struct store_rebalance_options {
	bool dry_run;
	uint64_t bytes_per_s;
	bool (*stop)(void *arg); /* NULL, or true to end the pass early (between parts) */
	void *stop_arg;
};

struct store_rebalance_stats {
	uint64_t parts, shards;		     /* walked */
	uint64_t shards_misplaced;	     /* not where the ring puts them */
	uint64_t shards_moved, bytes_moved;  /* dry_run: what would be */
	uint64_t parts_degraded;	     /* shards missing: left to repair */
	uint64_t parts_stuck;		     /* too few active nodes to place k+m */
	uint64_t parts_elsewhere;	     /* another worker's, or rewritten meanwhile */
	uint64_t moves_failed;		     /* a copy did not go (a node down): next pass */
	unsigned nodes_out;		     /* draining nodes put out, empty */
};

int store_rebalance(struct store *s, struct meta *m, const struct store_rebalance_options *o,
		    struct store_rebalance_stats *st, store_scrub_progress_fn progress, void *arg);
/* The background pass of the repair daemon and of one mount of the
 * cluster: a store_rebalance at bytes_per_s, ended early when stop says
 * so, logged when it moved anything; only when the membership changed
 * since the last pass that left every shard where the ring puts it (or
 * could not do better: parts stuck), and once for every store opened. */
void store_rebalance_if_due(struct store *s, struct meta *m, uint64_t bytes_per_s,
			    bool (*stop)(void *arg), void *stop_arg);

/* The cluster's capacity as its nodes report it, in bytes of user data
 * (raw space x k/(k+m)); nodes that do not answer count as empty.
 * Cached for a few seconds. 0 or STORE_EUNAVAIL (no node answers). */
int store_capacity(struct store *s, uint64_t *total, uint64_t *avail);

/*
 * Deletes from the nodes the shards of up to max entries of the metadata
 * garbage table (parts replaced or deleted) and drops the entries whose
 * shards are gone; entries whose nodes do not answer stay for a later
 * pass. *deleted counts the entries done. 0 or an error of meta.
 */
int store_collect_garbage(struct store *s, struct meta *m, unsigned max, unsigned *deleted);

#endif
