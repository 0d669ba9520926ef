/*
 * index.c - the in-memory index: shard key -> newest record on disk.
 *
 * Every function here runs with w->lock held. The index also keeps the
 * per-segment live byte counts (which drive compaction) and the live key
 * count exact, by attaching and detaching entries as they move.
 *
 * "Newest" means the highest sequence number, not the latest position:
 * compaction copies records forward with their original sequence number, so
 * position alone would let an old copy shadow a newer version.
 */
#define G_LOG_DOMAIN "shardfs-wal"

#define XXH_INLINE_ALL
#include "wal_internal.h"

#include <xxhash.h>

/* Fixed-layout form of a key for hashing (struct padding is not hashed). */
static void key_pack(const struct wal_key *k, uint8_t out[22])
{
	memcpy(out, k->object_id, 16);
	wal_put_le32(out + 16, k->part);
	wal_put_le16(out + 20, k->shard);
}

guint wal_key_hash(gconstpointer key)
{
	uint8_t packed[22];

	key_pack(key, packed);
	return (guint)XXH3_64bits(packed, sizeof(packed));
}

gboolean wal_key_equal(gconstpointer a, gconstpointer b)
{
	const struct wal_key *x = a, *y = b;

	return x->part == y->part && x->shard == y->shard &&
	       memcmp(x->object_id, y->object_id, 16) == 0;
}

uint64_t wal_entry_size(const struct wal_entry *e)
{
	return wal_rec_size(e->payload_len);
}

static bool entry_bad(const struct wal_entry *e)
{
	return e->type == WAL_REC_PUT && (e->corrupt || e->damaged);
}

static void entry_detach(struct wal *w, struct wal_entry *e)
{
	if (!e->seg)
		return;
	e->seg->live_bytes -= wal_entry_size(e);
	w->stats.live_bytes -= wal_entry_size(e);
	if (e->type == WAL_REC_PUT)
		w->stats.keys--;
	if (entry_bad(e))
		w->stats.bad_shards--;
	e->seg = NULL;
}

static void entry_attach(struct wal *w, struct wal_entry *e, struct wal_seg *seg, uint64_t offset)
{
	e->seg = seg;
	e->offset = offset;
	if (!seg)
		return;
	e->seg_id = seg->id;
	seg->live_bytes += wal_entry_size(e);
	w->stats.live_bytes += wal_entry_size(e);
	if (e->type == WAL_REC_PUT)
		w->stats.keys++;
	if (entry_bad(e))
		w->stats.bad_shards++;
}

void wal_entry_mark_bad(struct wal *w, struct wal_entry *e, bool corrupt)
{
	bool was = entry_bad(e);

	if (corrupt)
		e->corrupt = true;
	else
		e->damaged = true;
	if (!was && e->seg && entry_bad(e))
		w->stats.bad_shards++;
}

void wal_entry_move(struct wal *w, struct wal_entry *e, struct wal_seg *seg, uint64_t offset)
{
	entry_detach(w, e);
	entry_attach(w, e, seg, offset);
}

struct wal_entry *wal_index_lookup(struct wal *w, const struct wal_key *key)
{
	return g_hash_table_lookup(w->index, key);
}

struct wal_entry *wal_index_insert(struct wal *w, const struct wal_key *key)
{
	struct wal_entry *e = g_new0(struct wal_entry, 1);

	e->key = *key;
	g_hash_table_insert(w->index, &e->key, e);
	return e;
}

void wal_index_remove(struct wal *w, struct wal_entry *e)
{
	entry_detach(w, e);
	g_hash_table_remove(w->index, &e->key);
}

static void entry_fill(struct wal_entry *e, const struct wal_rec *rec, bool corrupt)
{
	e->type = rec->type;
	e->seq = rec->seq;
	e->payload_len = rec->payload_len;
	e->corrupt = corrupt;
	e->damaged = false;
}

void wal_index_apply(struct wal *w, const struct wal_rec *rec, struct wal_seg *seg,
		     uint64_t offset, bool corrupt)
{
	struct wal_entry *e = wal_index_lookup(w, &rec->key);
	uint32_t is_put = rec->type == WAL_REC_PUT;

	w->max_seq = MAX(w->max_seq, rec->seq);
	if (!e) {
		e = wal_index_insert(w, &rec->key);
		entry_fill(e, rec, corrupt);
		entry_attach(w, e, seg, offset);
		return;
	}
	if (e->seg == seg && e->offset == offset)
		return; /* the same record, listed by the checkpoint and scanned */
	if (rec->seq > e->seq) {
		uint32_t older = e->older_puts + (e->seg && e->type == WAL_REC_PUT);

		entry_detach(w, e);
		entry_fill(e, rec, corrupt);
		e->older_puts = older;
		entry_attach(w, e, seg, offset);
	} else if (rec->seq == e->seq && !e->seg) {
		/* A checkpoint entry whose segment was compacted away: this is the
		 * copy compaction made. */
		entry_attach(w, e, seg, offset);
	} else if (rec->seq == e->seq) {
		/* Two copies of one record (a compaction cut short): keep the
		 * newer position, count the other as an older put. */
		e->older_puts += is_put;
		if (seg->id > e->seg->id)
			wal_entry_move(w, e, seg, offset);
	} else {
		e->older_puts += is_put;
	}
}
