/*
 * scrubber.c - the node's background scrub thread (scrubber.h).
 *
 * Threads: one of its own, which sleeps on a condition between passes so
 * that a stop wakes it at once; the pass itself looks at the stop flag at
 * least every 100 ms (wal_scrub_paced). Figures are atomics, read by the
 * metrics thread.
 */
#define G_LOG_DOMAIN "shardfs-node"

#include "scrubber.h"

#include <errno.h>
#include <stdbool.h>

#include "common/error.h"
#include "common/metrics.h"
#include "wal/wal.h"

struct node_scrubber {
	struct wal *w;
	uint32_t node;
	unsigned interval_s;
	uint64_t bytes_per_s;
	GThread *thread;
	GMutex lock;
	GCond wake;
	gint stop; /* atomic; also read under lock before waiting */
	/* atomic */
	uint64_t passes, bytes_checked, corrupt_found;
	uint64_t pass_bytes, pass_done; /* the running pass: store size at its start, checked */
	uint64_t last_end_s;		/* wall clock, 0 before the first */
	gint running;
};

static void on_bad(void *arg, const struct wal_scrub_item *item)
{
	struct node_scrubber *s = arg;
	char hex[33] = "?";

	if (item->key_valid)
		for (int i = 0; i < 16; i++)
			g_snprintf(hex + 2 * i, 3, "%02x", item->key.object_id[i]);
	if (item->key_valid)
		g_warning("node %u scrub: corrupt shard %u of part %u of object %s (segment %"
			  G_GUINT64_FORMAT " offset %" G_GUINT64_FORMAT "); reads rebuild it from"
			  " the other shards", s->node, item->key.shard, item->key.part, hex,
			  item->segment_id, item->offset);
	else
		g_warning("node %u scrub: unreadable region in segment %" G_GUINT64_FORMAT
			  " at offset %" G_GUINT64_FORMAT, s->node, item->segment_id, item->offset);
}

static void one_pass(struct node_scrubber *s)
{
	struct wal_stats st;
	struct wal_scrub_report rep;
	struct wal_scrub_pace pace = {.bytes_per_s = s->bytes_per_s, .stop = &s->stop,
				      .progress = &s->pass_done};
	gint64 t0 = g_get_monotonic_time();

	wal_get_stats(s->w, &st);
	__atomic_store_n(&s->pass_bytes, st.disk_bytes, __ATOMIC_RELAXED);
	__atomic_store_n(&s->pass_done, 0, __ATOMIC_RELAXED);
	g_atomic_int_set(&s->running, 1);
	int rc = wal_scrub_paced(s->w, &pace, on_bad, s, &rep);

	g_atomic_int_set(&s->running, 0);
	__atomic_add_fetch(&s->bytes_checked, rep.bytes_checked, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->corrupt_found, rep.bad_records, __ATOMIC_RELAXED);
	if (rc == -ECANCELED)
		return;
	__atomic_add_fetch(&s->passes, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&s->last_end_s, (uint64_t)(g_get_real_time() / G_USEC_PER_SEC),
			 __ATOMIC_RELAXED);
	if (rc < 0)
		g_warning("node %u scrub: pass failed: %s", s->node, common_strerror(rc));
	else
		g_message("node %u scrub: %" G_GUINT64_FORMAT " records, %.1f MiB checked in %.1f s,"
			  " %" G_GUINT64_FORMAT " bad", s->node, rep.records_checked,
			  (double)rep.bytes_checked / (1 << 20),
			  (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC, rep.bad_records);
}

static gpointer scrub_main(gpointer p)
{
	struct node_scrubber *s = p;

	for (;;) {
		gint64 until = g_get_monotonic_time() + (gint64)s->interval_s * G_USEC_PER_SEC;

		g_mutex_lock(&s->lock);
		while (!g_atomic_int_get(&s->stop) && g_cond_wait_until(&s->wake, &s->lock, until))
			;
		g_mutex_unlock(&s->lock);
		if (g_atomic_int_get(&s->stop))
			return NULL;
		one_pass(s);
	}
}

struct node_scrubber *node_scrubber_start(struct wal *w, uint32_t node_id, unsigned interval_s,
					  uint64_t bytes_per_s)
{
	struct node_scrubber *s = g_new0(struct node_scrubber, 1);

	s->w = w;
	s->node = node_id;
	s->interval_s = interval_s;
	s->bytes_per_s = bytes_per_s;
	g_mutex_init(&s->lock);
	g_cond_init(&s->wake);
	s->thread = g_thread_new("scrubber", scrub_main, s);
	return s;
}

void node_scrubber_stop(struct node_scrubber *s)
{
	if (!s)
		return;
	g_mutex_lock(&s->lock);
	g_atomic_int_set(&s->stop, 1);
	g_cond_broadcast(&s->wake);
	g_mutex_unlock(&s->lock);
	g_thread_join(s->thread);
	g_cond_clear(&s->wake);
	g_mutex_clear(&s->lock);
	g_free(s);
}

static double load(const uint64_t *v)
{
	return (double)__atomic_load_n(v, __ATOMIC_RELAXED);
}

void node_scrubber_metrics(struct node_scrubber *s, GString *out)
{
	double total = load(&s->pass_bytes), done = load(&s->pass_done);
	bool running = g_atomic_int_get(&s->running);

	metrics_one(out, "shardfs_scrub_passes_total", "counter",
		    "Background scrub passes over the whole store completed.", load(&s->passes));
	metrics_one(out, "shardfs_scrub_checked_bytes_total", "counter",
		    "Bytes of segments verified by background scrub passes that ended.",
		    load(&s->bytes_checked));
	metrics_one(out, "shardfs_scrub_corrupt_records_total", "counter",
		    "Records the background scrub found failing their checksum.",
		    load(&s->corrupt_found));
	metrics_one(out, "shardfs_scrub_running", "gauge", "1 while a scrub pass runs.",
		    running ? 1 : 0);
	metrics_one(out, "shardfs_scrub_progress_ratio", "gauge",
		    "How far the running pass is (0 to 1; 1 between passes).",
		    !running ? 1 : total > 0 ? MIN(done / total, 1.0) : 0);
	metrics_one(out, "shardfs_scrub_last_pass_end_timestamp_seconds", "gauge",
		    "When the last complete pass ended (unix time; 0: none yet).", load(&s->last_end_s));
}
