/*
 * scrub.c - verifying every record of every segment.
 *
 * Scrub reads each segment through the shared scanner with payload
 * verification on, reports each record that fails its CRC and each region
 * that holds no valid record, and marks a corrupt record that the index
 * still points at, so that reads report it instead of returning its bytes.
 * Segments are referenced, not locked: appends and compaction go on. A
 * paced scrub (wal_scrub_paced) holds itself to a rate and can be stopped,
 * for the node's background scrubber.
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
	const struct wal_scrub_pace *pace; /* NULL: unpaced */
	gint64 start_us;
};

/* Longest sleep between looks at the stop flag. */
#define PACE_SLICE_US 100000

/* Holds the scrub to its rate and publishes its progress; -ECANCELED once
 * asked to stop. */
static int keep_pace(struct scrub_ctx *c)
{
	const struct wal_scrub_pace *p = c->pace;

	if (!p)
		return 0;
	if (p->progress)
		__atomic_store_n(p->progress, c->rep->bytes_checked, __ATOMIC_RELAXED);
	for (;;) {
		if (p->stop && g_atomic_int_get(p->stop))
			return -ECANCELED;
		if (!p->bytes_per_s)
			return 0;
		gint64 due = c->start_us + (gint64)(c->rep->bytes_checked * G_USEC_PER_SEC /
						     p->bytes_per_s);
		gint64 now = g_get_monotonic_time();

		if (now >= due)
			return 0;
		g_usleep((gulong)MIN(due - now, PACE_SLICE_US));
	}
}

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
		return keep_pace(c);
	g_mutex_lock(&c->w->lock);
	struct wal_entry *e = wal_index_lookup(c->w, &r->rec.key);

	if (e && e->seg == c->seg && e->offset == r->offset && !e->corrupt) {
		wal_entry_mark_bad(c->w, e, true);
		c->w->stats.corrupt_records++;
	}
	g_mutex_unlock(&c->w->lock);
	report(c, r->offset, &r->rec.key);
	return keep_pace(c);
}

static int on_bad(void *arg, uint64_t offset, uint64_t len)
{
	struct scrub_ctx *c = arg;

	c->rep->bytes_checked += len;
	report(c, offset, NULL);
	return keep_pace(c);
}

static gint cmp_id(gconstpointer a, gconstpointer b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Segment id with a reference and its size now, or NULL if it is gone
 * (compacted away since the pass began: its live records are elsewhere). */
static struct wal_seg *take_segment(struct wal *w, uint64_t id, uint64_t *size)
{
	struct wal_seg *seg;

	g_mutex_lock(&w->lock);
	seg = g_hash_table_lookup(w->segments, &id);
	if (seg) {
		wal_seg_ref(seg);
		*size = seg->size;
	}
	g_mutex_unlock(&w->lock);
	return seg;
}

int wal_scrub(struct wal *w, wal_scrub_fn fn, void *arg, struct wal_scrub_report *rep)
{
	return wal_scrub_paced(w, NULL, fn, arg, rep);
}

int wal_scrub_paced(struct wal *w, const struct wal_scrub_pace *pace, wal_scrub_fn fn, void *arg,
		    struct wal_scrub_report *rep)
{
	gint64 start_us = g_get_monotonic_time();
	GArray *ids = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	GHashTableIter it;
	gpointer value;
	int rc = 0;

	memset(rep, 0, sizeof(*rep));
	g_mutex_lock(&w->lock);
	g_hash_table_iter_init(&it, w->segments);
	while (g_hash_table_iter_next(&it, NULL, &value))
		g_array_append_val(ids, ((struct wal_seg *)value)->id);
	g_mutex_unlock(&w->lock);
	g_array_sort(ids, cmp_id);

	/* One segment referenced at a time: a paced pass may take hours, and
	 * a reference keeps a compacted segment's file on disk. */
	for (guint i = 0; i < ids->len && rc == 0; i++) {
		uint64_t size, good_end;
		struct wal_seg *seg = take_segment(w, g_array_index(ids, uint64_t, i), &size);

		if (!seg)
			continue;
		struct scrub_ctx c = {w, seg, fn, arg, rep, pace, start_us};
		struct wal_scan s = {
			.io = w->io, .fd = seg->fd, .start = WAL_SEG_HEADER_SIZE, .end = size,
			.max_payload = WAL_REC_MAX_PAYLOAD, .verify_payload = true,
			.on_record = on_record, .on_bad = on_bad, .arg = &c,
		};

		rc = wal_scan_run(&s, &good_end);
		wal_seg_unref(seg);
	}
	g_array_free(ids, TRUE);
	return rc;
}
