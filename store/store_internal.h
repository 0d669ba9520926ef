/*
 * store_internal.h - what the files of the object layer share (private to
 * store/): the store itself, erasure codes by (k, m), node suspicion and
 * part checksums.
 */
#ifndef SHARDFS_STORE_STORE_INTERNAL_H
#define SHARDFS_STORE_STORE_INTERNAL_H

#include "erasure.h"
#include "net/net.h"
#include "ring.h"
#include "store.h"

#include <glib.h>

/* Nodes and ring, published whole and never changed after (members.c);
 * replaced ones stay until store_close, so a reader needs no lock. */
struct store_view {
	GArray *nodes; /* struct store_node, by id */
	struct ring *ring;
};

struct store {
	struct store_options opt;
	struct net_cluster *cluster;
	struct net_tls *tls;
	struct net_pool *pool;
	struct store_view *view; /* atomic */
	GSList *old_views;	 /* lock */
	bool followed;		 /* the members were read once (atomic): changes are news */
	const struct store_view *balanced; /* by the last rebalance that finished (atomic) */
	size_t part_size;
	GThreadPool *encoders; /* part checksums and encoding */
	GThreadPool *fetchers; /* whole-part reads ahead */
	GMutex lock;
	GHashTable *codes;	/* (k << 8 | m) -> struct erasure, lock */
	GHashTable *suspect;	/* node id -> gint64 avoided until (us), lock */
	GHashTable *full;	/* node id -> gint64 placed on no more until (us), lock */
	struct store_stats stats; /* atomics */
	gint64 capacity_at;	/* when total/avail were asked, lock */
	uint64_t capacity_total, capacity_avail; /* lock */
	GMutex buf_lock;
	GSList *bufs;	      /* struct spare_buf, buf_lock */
	size_t bufs_bytes;    /* buf_lock */
};

#define STORE_COUNT(s, field, n) __atomic_add_fetch(&(s)->stats.field, (n), __ATOMIC_RELAXED)

/* The view now; store_view_init builds the first from the cluster file;
 * store_views_free frees them all. */
const struct store_view *store_view(struct store *s);
int store_view_init(struct store *s);
void store_views_free(struct store *s);
static inline const struct ring *store_ring(struct store *s)
{
	return store_view(s)->ring;
}

/* Called for each entry of a node's listing, in key order; false stops it. */
typedef bool (*store_list_fn)(void *arg, const uint8_t *entry);
/* Pages through what node lists with op (NET_OP_LIST, _DAMAGED or
 * _LIST_AGED: entries of entry_size bytes, a packed key first), page
 * entries a request, from after the packed key from (NULL: the first),
 * calling fn for each. True if every page asked for was answered. */
bool store_node_list(struct store *s, uint32_t node, uint8_t op, size_t entry_size,
		     unsigned page, const uint8_t *from, store_list_fn fn, void *arg);

/* Calls fn for every stored part (holes left out), in (ino, index) order,
 * a page of the metadata at a time, and progress (may be NULL) after each
 * page; 0 or the metadata's error (scrub.c). */
typedef void (*store_part_fn)(void *arg, uint64_t ino, const struct meta_part *p);
int store_walk_parts(struct meta *m, store_part_fn fn, void *arg,
		     store_scrub_progress_fn progress, void *progress_arg);

/* The erasure code (k, m), created on first use; -ENOTSUP, -EINVAL. */
int store_code(struct store *s, unsigned k, unsigned m, const struct erasure **out);
/* A node failed or stalled: placements and reads avoid it for a while. */
void store_suspect(struct store *s, uint32_t node);
/* A put to node failed with status: store_suspect, and a node whose disk
 * is full (-ENOSPC) also takes no new shard for STORE_FULL_AVOID_MS
 * (store_suspects lists it), since it stays full until someone frees
 * space and each shard it refuses costs a hand-off; reads of what it holds
 * go on as from any node. */
#define STORE_FULL_AVOID_MS (5u * 60 * 1000)
void store_put_failed(struct store *s, uint32_t node, int status);
/* Fills out with the nodes new placements avoid now (suspect or full),
 * each once; returns how many. */
size_t store_suspects(struct store *s, uint32_t *out, size_t max);
bool store_is_suspect(struct store *s, uint32_t node);
/* Jobs of the encoder pool (writer.c) and the fetcher pool (reader.c). */
void store_encode_job(gpointer job, gpointer user);
void store_fetch_job(gpointer job, gpointer user);
/* Reads part p whole into out (p->length bytes), checked against its
 * checksum, from any k of its shards; 0, STORE_EUNAVAIL, STORE_ECORRUPT. */
int store_part_fetch(struct store *s, const struct meta_part *p, uint8_t *out);
/* Asks every node of view v for its STATUS at once: out[i] and up[i] for
 * the i-th node, up when it answered one that decodes. Returns how many
 * did. */
unsigned store_node_statuses(struct store *s, const struct store_view *v,
			     struct net_node_status *out, bool *up);
/* Big buffers (parts, fragments) come from a small cache of freed ones,
 * so that the heap is not fragmented by buffers of changing sizes and the
 * memory of a reader or writer stays what it holds. NULL if out of memory. */
void *store_buf_alloc(struct store *s, size_t size);
void store_buf_free(struct store *s, void *buf, size_t size);
/* The shards that now places and old did not (or elsewhere), deleted
 * unless the part's row names them now: the undo of a relocation whose
 * compare-and-set did not take (repair.c). */
void store_undo_placed(struct store *s, struct meta *m, uint64_t ino, const struct meta_part *old,
		       const struct meta_part *now);
/* "host:pid": the name this process reports its rate and leases under. */
const char *store_worker_name(void);
/* The lease of part (ino, p->index) for this process, taken over from a
 * worker of this host that is gone: as meta_repair_lease. */
int store_part_lease(struct meta *m, uint64_t ino, const struct meta_part *p);

/* xxh3-128 of a plain part, in canonical (big-endian) form. */
void store_part_checksum(const void *data, size_t len, uint8_t out[16]);
/* A short printable object id, for logs. */
void store_oid_hex(const uint8_t oid[16], char out[33]);

#endif
