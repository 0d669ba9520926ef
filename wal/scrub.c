/*
 * scrub.c - verifying every record of every segment.
 *
 * Scrub reads each segment through the shared scanner with payload
 * verification on, reports each record that fails its CRC and each region
 * that holds no valid record, and marks a corrupt record that the index
 * still points at, so that reads report it instead of returning its bytes.
 * Segments are referenced, not locked: appends and compaction go on.
 */
#define G_LOG_DOMAIN "shardfs-wal"

#include "wal_internal.h"

#include <errno.h>

struct scrub_ctx {
	struct wal *w;
	struct wal_seg *seg;
	wal_scrub_fn fn;
	void *arg;
	struct wal_scrub_report *rep;
};

static void report(struct scrub_ctx *c, uint64_t offset, const struct wal_key *key)
{
	struct wal_scrub_item item = {
		.segment_id = c->seg->id, .offset = offset, .key_valid = key != NULL,
		.error = WAL_ECORRUPT,
	};

	if (key)
		item.key = *key;
	c->rep->bad_records++;
	if (c->fn)
		c->fn(c->arg, &item);
}

static int on_record(void *arg, const struct wal_scan_rec *r)
{
	struct scrub_ctx *c = arg;

	c->rep->records_checked++;
	c->rep->bytes_checked += r->size;
	if (r->payload_ok)
		return 0;
	g_mutex_lock(&c->w->lock);
	struct wal_entry *e = wal_index_lookup(c->w, &r->rec.key);

	if (e && e->seg == c->seg && e->offset == r->offset && !e->corrupt) {
		e->corrupt = true;
		c->w->stats.corrupt_records++;
	}
	g_mutex_unlock(&c->w->lock);
	report(c, r->offset, &r->rec.key);
	return 0;
}

static int on_bad(void *arg, uint64_t offset, uint64_t len)
{
	struct scrub_ctx *c = arg;

	c->rep->bytes_checked += len;
	report(c, offset, NULL);
	return 0;
}

static gint cmp_seg(gconstpointer a, gconstpointer b)
{
	const struct wal_seg *x = *(struct wal_seg *const *)a, *y = *(struct wal_seg *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

int wal_scrub(struct wal *w, wal_scrub_fn fn, void *arg, struct wal_scrub_report *rep)
{
	GPtrArray *segs = g_ptr_array_new_with_free_func((GDestroyNotify)wal_seg_unref);
	GArray *sizes = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	GHashTableIter it;
	gpointer value;
	int rc = 0;

	memset(rep, 0, sizeof(*rep));
	g_mutex_lock(&w->lock);
	g_hash_table_iter_init(&it, w->segments);
	while (g_hash_table_iter_next(&it, NULL, &value))
		g_ptr_array_add(segs, wal_seg_ref(value));
	g_ptr_array_sort(segs, cmp_seg);
	for (guint i = 0; i < segs->len; i++)
		g_array_append_val(sizes, ((struct wal_seg *)g_ptr_array_index(segs, i))->size);
	g_mutex_unlock(&w->lock);

	for (guint i = 0; i < segs->len && rc == 0; i++) {
		struct scrub_ctx c = {w, g_ptr_array_index(segs, i), fn, arg, rep};
		struct wal_scan s = {
			.io = w->io, .fd = c.seg->fd, .start = WAL_SEG_HEADER_SIZE,
			.end = g_array_index(sizes, uint64_t, i), .max_payload = WAL_REC_MAX_PAYLOAD,
			.verify_payload = true, .on_record = on_record, .on_bad = on_bad, .arg = &c,
		};
		uint64_t good_end;

		rc = wal_scan_run(&s, &good_end);
	}
	g_array_free(sizes, TRUE);
	g_ptr_array_free(segs, TRUE);
	return rc;
}
