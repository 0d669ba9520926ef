/*
 * compact.c - rewriting sparse sealed segments and deleting them.
 *
 * For a victim segment S:
 *   1. scan S's record headers;
 *   2. copy each live put (the index points at it) byte for byte, with its
 *      original sequence number, through the ordinary append path; the sync
 *      thread moves the index entry only if it still points into S, so a
 *      write or delete that raced with the copy wins;
 *   3. a live tombstone is copied too while put records of its key remain
 *      outside S (they would come back on replay without it), else dropped;
 *   4. S is unlinked only once every copy is durable and nothing in the index
 *      points into it.
 * A crash anywhere leaves S and possibly some copies: replay sees two
 * records with one sequence number, which hold the same bytes. Readers keep
 * their reference to S and finish their preads from the unlinked file.
 * Memory is bounded: copies go out in batches of at most BATCH_BYTES.
 */
#define G_LOG_DOMAIN "shardfs-wal"

#include "wal_internal.h"

#include "common/waiter.h"

#include <errno.h>
#include <inttypes.h>

#define BATCH_BYTES (64u << 20)

struct victim_rec {
	struct wal_rec rec;
	uint64_t offset;
	uint64_t size;
};

static int collect(void *arg, const struct wal_scan_rec *r)
{
	struct victim_rec v = {r->rec, r->offset, r->size};

	g_array_append_val((GArray *)arg, v);
	return 0;
}

static int submit_copy(struct wal *w, struct wal_seg *seg, const struct victim_rec *v,
		       struct common_waiter *b)
{
	struct wal_req *r = g_new0(struct wal_req, 1);
	int rc;

	r->rec = v->rec;
	r->head_len = v->size;
	r->head = g_malloc(v->size);
	r->from_seg = wal_seg_ref(seg);
	r->from_off = v->offset;
	r->done = common_waiter_done_cb;
	r->arg = b;
	rc = wal_read_exact(w, seg->fd, r->head, v->size, v->offset);
	common_waiter_add(b, 1);
	if (rc == 0)
		rc = wal_submit(w, r);
	if (rc < 0) {
		r->done = NULL;
		common_waiter_done(b, rc);
		wal_seg_unref(r->from_seg);
		g_free(r->head);
		g_free(r);
	}
	return rc;
}

/* Copies the records of list (all from seg), at most BATCH_BYTES at a time. */
static int copy_records(struct wal *w, struct wal_seg *seg, GArray *list)
{
	struct common_waiter b;
	uint64_t bytes = 0;
	int rc = 0;

	common_waiter_init(&b, 0);
	for (guint i = 0; i < list->len && rc == 0; i++) {
		struct victim_rec *v = &g_array_index(list, struct victim_rec, i);

		rc = submit_copy(w, seg, v, &b);
		bytes += v->size;
		if (bytes >= BATCH_BYTES) {
			rc = rc ? rc : common_waiter_wait(&b);
			bytes = 0;
		}
	}
	int wrc = common_waiter_wait(&b);

	common_waiter_fini(&b);
	return rc ? rc : wrc;
}

static bool is_live(struct wal *w, struct wal_seg *seg, const struct victim_rec *v)
{
	struct wal_entry *e = wal_index_lookup(w, &v->rec.key);

	return e && e->seg == seg && e->offset == v->offset;
}

/* Live puts of seg, and a count of the put records per key in seg. */
static GArray *live_puts(struct wal *w, struct wal_seg *seg, GArray *recs, GHashTable *puts_in_seg)
{
	GArray *live = g_array_new(FALSE, FALSE, sizeof(struct victim_rec));

	g_mutex_lock(&w->lock);
	for (guint i = 0; i < recs->len; i++) {
		struct victim_rec *v = &g_array_index(recs, struct victim_rec, i);

		if (v->rec.type != WAL_REC_PUT)
			continue;
		guint n = GPOINTER_TO_UINT(g_hash_table_lookup(puts_in_seg, &v->rec.key));

		g_hash_table_insert(puts_in_seg, &v->rec.key, GUINT_TO_POINTER(n + 1));
		if (is_live(w, seg, v))
			g_array_append_val(live, *v);
	}
	g_mutex_unlock(&w->lock);
	return live;
}

/* Tombstones of seg that must survive; the others leave the index now. */
static GArray *live_tombstones(struct wal *w, struct wal_seg *seg, GArray *recs,
			       GHashTable *puts_in_seg)
{
	GArray *keep = g_array_new(FALSE, FALSE, sizeof(struct victim_rec));

	g_mutex_lock(&w->lock);
	for (guint i = 0; i < recs->len; i++) {
		struct victim_rec *v = &g_array_index(recs, struct victim_rec, i);

		if (v->rec.type != WAL_REC_DELETE || !is_live(w, seg, v))
			continue;
		struct wal_entry *e = wal_index_lookup(w, &v->rec.key);
		guint here = GPOINTER_TO_UINT(g_hash_table_lookup(puts_in_seg, &v->rec.key));

		if (e->older_puts > here) {
			g_array_append_val(keep, *v);
		} else {
			wal_index_remove(w, e);
			/* A put racing in now starts a fresh entry that never
			 * counted this segment's puts: nothing to forget for it. */
			g_hash_table_remove(puts_in_seg, &v->rec.key);
		}
	}
	g_mutex_unlock(&w->lock);
	return keep;
}

/* The put records of seg are gone from disk: their keys have fewer older
 * puts left. */
static void forget_puts(struct wal *w, GHashTable *puts_in_seg)
{
	GHashTableIter it;
	gpointer key, value;

	g_mutex_lock(&w->lock);
	g_hash_table_iter_init(&it, puts_in_seg);
	while (g_hash_table_iter_next(&it, &key, &value)) {
		struct wal_entry *e = wal_index_lookup(w, key);
		guint n = GPOINTER_TO_UINT(value);

		if (e)
			e->older_puts = e->older_puts > n ? e->older_puts - n : 0;
	}
	w->stats.compactions++;
	g_mutex_unlock(&w->lock);
}

/* Removes seg from the table once nothing points into it. */
static int retire(struct wal *w, struct wal_seg *seg)
{
	int rc = 0;

	g_mutex_lock(&w->lock);
	if (seg->live_bytes != 0)
		rc = WAL_ECORRUPT; /* a live record we could not read back */
	else
		g_hash_table_remove(w->segments, &seg->id);
	g_mutex_unlock(&w->lock);
	if (rc < 0) {
		g_warning("segment %s still holds %" PRIu64 " live bytes after compaction: kept",
			  seg->path, seg->live_bytes);
		return rc;
	}
	if (w->io->unlink(seg->path) < 0)
		return -errno;
	return wal_sync_dir(w);
}

static int compact_segment(struct wal *w, struct wal_seg *seg)
{
	GArray *recs = g_array_new(FALSE, FALSE, sizeof(struct victim_rec));
	GHashTable *puts_in_seg = g_hash_table_new(wal_key_hash, wal_key_equal);
	GArray *live = NULL, *tombs = NULL;
	uint64_t good_end, size;
	int rc;

	g_mutex_lock(&w->lock);
	size = seg->size;
	g_mutex_unlock(&w->lock);
	struct wal_scan s = {
		.io = w->io, .fd = seg->fd, .start = WAL_SEG_HEADER_SIZE, .end = size,
		.max_payload = WAL_REC_MAX_PAYLOAD, .verify_payload = false,
		.on_record = collect, .arg = recs,
	};

	rc = wal_scan_run(&s, &good_end);
	if (rc < 0)
		goto out;
	live = live_puts(w, seg, recs, puts_in_seg);
	rc = copy_records(w, seg, live);
	if (rc < 0)
		goto out;
	tombs = live_tombstones(w, seg, recs, puts_in_seg);
	rc = copy_records(w, seg, tombs);
	if (rc < 0)
		goto out;
	rc = retire(w, seg);
	if (rc == 0)
		forget_puts(w, puts_in_seg);
out:
	if (live)
		g_array_free(live, TRUE);
	if (tombs)
		g_array_free(tombs, TRUE);
	g_hash_table_destroy(puts_in_seg);
	g_array_free(recs, TRUE);
	return rc;
}

/* Sealed segments whose live ratio is below threshold, referenced. */
static GPtrArray *pick_victims(struct wal *w, double threshold)
{
	GPtrArray *victims = g_ptr_array_new_with_free_func((GDestroyNotify)wal_seg_unref);
	GHashTableIter it;
	gpointer value;

	g_mutex_lock(&w->lock);
	g_hash_table_iter_init(&it, w->segments);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct wal_seg *seg = value;
		uint64_t body = seg->size - WAL_SEG_HEADER_SIZE;

		/* Only segments all of whose records the index has seen: the
		 * sync thread applies records in order, so those before the
		 * segment of the newest applied record. */
		if (!seg->sealed || seg->id >= w->durable_seg_id || seg->compact_failed)
			continue;
		if ((double)seg->live_bytes < threshold * (double)body || body == 0)
			g_ptr_array_add(victims, wal_seg_ref(seg));
	}
	g_mutex_unlock(&w->lock);
	return victims;
}

int wal_compact(struct wal *w, double threshold, unsigned *compacted)
{
	unsigned n = 0;
	int rc = 0;

	g_mutex_lock(&w->work_lock);
	GPtrArray *victims = pick_victims(w, threshold);

	for (guint i = 0; i < victims->len && !wal_sticky_error(w); i++) {
		struct wal_seg *seg = g_ptr_array_index(victims, i);
		int one = compact_segment(w, seg);

		n += one == 0;
		if (one == WAL_ECORRUPT)
			seg->compact_failed = true; /* left for scrub and repair; the others go on */
		rc = rc ? rc : one;
	}
	if (rc == 0 && wal_sticky_error(w))
		rc = -EROFS;
	if (n > 0) {
		int crc = wal_checkpoint_write(w);

		rc = rc ? rc : crc;
	}
	g_ptr_array_free(victims, TRUE);
	g_mutex_unlock(&w->work_lock);
	if (compacted)
		*compacted = n;
	return rc;
}
