/*
 * wal.c - the store's life cycle, the append pipeline and the read path.
 *
 * Append pipeline (group commit):
 *   caller    computes block CRCs, takes a sequence number and queues the
 *             request (w->qlock, no I/O);
 *   writer    takes every queued request, assigns each a place in the active
 *             segment (sealing it and creating the next when full) and writes
 *             them with one pwritev per run;
 *   syncer    takes every written request, fdatasyncs the segments they are
 *             in (and the directory for new segments), then, under w->lock,
 *             points the index at them, and only then calls their callbacks.
 * While the syncer waits on one fdatasync the writer is already writing the
 * next batch, so one fsync covers everything written meanwhile.
 *
 * A record is acknowledged only after everything before it in its segment is
 * durable too (batches are synced in order), so a torn tail after a crash can
 * only hold unacknowledged records, and recovery may truncate it.
 */
#define G_LOG_DOMAIN "shardfs-wal"

#include "wal_internal.h"

#include "common/waiter.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Requests per pwritev run: each takes up to two iovecs. */
#define RUN_MAX (IOV_MAX / 2)

void wal_options_default(struct wal_options *o)
{
	memset(o, 0, sizeof(*o));
	o->segment_size = 64u << 20;
	o->max_payload = 32u << 20;
	o->compact_threshold = 0.5;
	o->checkpoint_every = 4;
	o->background_compaction = true;
	o->compact_interval_ms = 5000;
}

static int options_check(const struct wal_options *o)
{
	if (!o->dir || !*o->dir || o->max_payload == 0 || o->max_payload > WAL_REC_MAX_PAYLOAD)
		return -EINVAL;
	if (o->segment_size < WAL_SEG_HEADER_SIZE + wal_rec_size(o->max_payload))
		return -EINVAL;
	if (!(o->compact_threshold >= 0 && o->compact_threshold <= 1))
		return -EINVAL;
	return 0;
}

int wal_sticky_error(struct wal *w)
{
	return g_atomic_int_get(&w->stats.sticky_error);
}

void wal_set_sticky_error(struct wal *w, int err)
{
	if (g_atomic_int_compare_and_exchange(&w->stats.sticky_error, 0, err))
		g_warning("store %s is now read-only: %s", w->dir, common_strerror(err));
}

static void queue_push(struct wal_queue *q, struct wal_req *r)
{
	r->next = NULL;
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
}

static struct wal_req *queue_take(struct wal_queue *q)
{
	struct wal_req *all = q->head;

	q->head = q->tail = NULL;
	return all;
}

static void req_free(struct wal_req *r)
{
	wal_seg_unref(r->seg);
	wal_seg_unref(r->from_seg);
	g_free(r->head);
	g_free(r);
}

/* ---- writer thread ---- */

/* Seals the active segment and starts the next. The sealed one is synced
 * first, so that only the last segment can ever hold torn writes. */
static int rotate(struct wal *w)
{
	struct wal_seg *seg;
	int rc;

	if (w->io->fdatasync(w->active->fd) < 0) {
		rc = -errno;
		wal_set_sticky_error(w, rc);
		return rc;
	}
	rc = wal_seg_create(w, w->next_seg_id, &seg);
	if (rc < 0) {
		g_warning("cannot create segment %s: %s", w->dir, common_strerror(rc));
		return rc;
	}
	w->next_seg_id++;
	g_mutex_lock(&w->lock);
	w->active->sealed = true;
	g_hash_table_insert(w->segments, &seg->id, wal_seg_ref(seg));
	w->stats.segments++;
	g_mutex_unlock(&w->lock);
	wal_seg_unref(w->active);
	w->active = seg;
	g_atomic_int_inc(&w->sealed_since_ckpt);
	return 0;
}

static uint64_t req_size(const struct wal_req *r)
{
	return r->head_len + r->body_len;
}

/* Writes a run of requests that all fit in the active segment; returns the
 * first request after the run. */
static struct wal_req *write_run(struct wal *w, struct wal_req *first)
{
	struct iovec iov[RUN_MAX * 2];
	struct wal_seg *seg = w->active;
	uint64_t start = seg->size, end = start;
	struct wal_req *r = first;
	int n = 0, rc;

	while (r && n < RUN_MAX * 2 && end + req_size(r) <= w->opt.segment_size) {
		iov[n++] = (struct iovec){r->head, r->head_len};
		if (r->body_len)
			iov[n++] = (struct iovec){(void *)r->body, r->body_len};
		r->offset = end;
		end += req_size(r);
		r = r->next;
	}
	if (n == 0) { /* cannot happen: options_check() makes every record fit */
		first->status = -EMSGSIZE;
		return first->next;
	}
	rc = wal_write_exact(w, seg->fd, iov, n, start);
	if (rc < 0 && w->io->ftruncate(seg->fd, (off_t)start) < 0)
		wal_set_sticky_error(w, -EIO); /* the tail now holds bytes we cannot vouch for */
	for (struct wal_req *q = first; q != r; q = q->next) {
		q->status = rc;
		if (rc == 0)
			q->seg = wal_seg_ref(seg);
	}
	if (rc == 0) {
		g_mutex_lock(&w->lock);
		seg->size = end;
		g_mutex_unlock(&w->lock);
	}
	return r;
}

static void write_batch(struct wal *w, struct wal_req *batch)
{
	struct wal_req *r = batch;

	while (r) {
		int err = wal_sticky_error(w);

		if (!err && w->active->size > WAL_SEG_HEADER_SIZE &&
		    w->active->size + req_size(r) > w->opt.segment_size)
			err = rotate(w);
		if (err) {
			r->status = err;
			r = r->next;
			continue;
		}
		r = write_run(w, r);
	}
	g_mutex_lock(&w->qlock);
	for (r = batch; r;) {
		struct wal_req *next = r->next;

		queue_push(&w->sync_q, r);
		r = next;
	}
	g_cond_signal(&w->sync_cond);
	g_mutex_unlock(&w->qlock);
}

static gpointer writer_main(gpointer data)
{
	struct wal *w = data;

	for (;;) {
		g_mutex_lock(&w->qlock);
		while (!w->write_q.head && !w->stopping)
			g_cond_wait(&w->write_cond, &w->qlock);
		struct wal_req *batch = queue_take(&w->write_q);

		if (!batch) {
			w->writer_done = true;
			g_cond_signal(&w->sync_cond);
			g_mutex_unlock(&w->qlock);
			return NULL;
		}
		g_mutex_unlock(&w->qlock);
		write_batch(w, batch);
	}
}

/* ---- sync thread ---- */

static int sync_segments(struct wal *w, struct wal_req *batch)
{
	struct wal_seg *last = NULL;
	bool dir = false;

	for (struct wal_req *r = batch; r; r = r->next) {
		if (r->status != 0 || r->seg == last)
			continue;
		last = r->seg;
		if (w->io->fdatasync(last->fd) < 0)
			return -errno;
		dir |= last->needs_dir_sync;
		last->needs_dir_sync = false;
	}
	return dir ? wal_sync_dir(w) : 0;
}

/* A compaction copy is live only if the index still points at the original. */
static void apply_relocation(struct wal *w, struct wal_req *r)
{
	struct wal_entry *e = wal_index_lookup(w, &r->rec.key);

	if (e && e->seg == r->from_seg && e->offset == r->from_off && e->seq == r->rec.seq) {
		wal_entry_move(w, e, r->seg, r->offset);
		e->older_puts += r->rec.type == WAL_REC_PUT; /* the original, until its segment goes */
	} else if (e && r->rec.type == WAL_REC_PUT) {
		e->older_puts++; /* the copy itself is now a dead put on disk */
	}
}

static void sync_batch(struct wal *w, struct wal_req *batch)
{
	int err = wal_sticky_error(w);
	unsigned n = 0, durable = 0;
	gint64 t0 = g_get_monotonic_time(), now;

	if (!err) {
		err = sync_segments(w, batch);
		if (err)
			wal_set_sticky_error(w, err);
	}
	now = g_get_monotonic_time();
	metrics_hist_observe(&w->sync_latency, (uint64_t)(now - t0) * 1000);
	g_mutex_lock(&w->lock);
	for (struct wal_req *r = batch; r; r = r->next) {
		if (r->status == 0 && err)
			r->status = err;
		if (r->status != 0)
			continue;
		if (r->from_seg)
			apply_relocation(w, r);
		else
			wal_index_apply(w, &r->rec, r->seg, r->offset, false);
		/* Records are applied in file order: this is the position up to
		 * which the index reflects the log. */
		w->durable_seg_id = r->seg->id;
		w->applied_end = r->offset + req_size(r);
		w->stats.appends++;
		durable++;
		metrics_hist_observe(&w->append_latency, (uint64_t)(now - r->queued_us) * 1000);
	}
	w->stats.syncs++;
	g_mutex_unlock(&w->lock);
	metrics_hist_observe(&w->batch_records, durable);
	for (struct wal_req *r = batch, *next; r; r = next, n++) {
		next = r->next;
		if (r->done)
			r->done(r->arg, r->status);
		req_free(r);
	}
	g_mutex_lock(&w->qlock);
	w->in_flight -= n;
	if (w->in_flight == 0)
		g_cond_broadcast(&w->idle_cond);
	g_mutex_unlock(&w->qlock);
}

static gpointer syncer_main(gpointer data)
{
	struct wal *w = data;

	for (;;) {
		g_mutex_lock(&w->qlock);
		while (!w->sync_q.head && !w->writer_done)
			g_cond_wait(&w->sync_cond, &w->qlock);
		struct wal_req *batch = queue_take(&w->sync_q);

		g_mutex_unlock(&w->qlock);
		if (!batch)
			return NULL;
		sync_batch(w, batch);
	}
}

/* ---- maintenance thread ---- */

static gpointer maint_main(gpointer data)
{
	struct wal *w = data;

	g_mutex_lock(&w->maint_lock);
	while (!w->maint_stop) {
		gint64 until = g_get_monotonic_time() + (gint64)w->opt.compact_interval_ms * 1000;

		g_cond_wait_until(&w->maint_cond, &w->maint_lock, until);
		if (w->maint_stop)
			break;
		g_mutex_unlock(&w->maint_lock);
		if (g_atomic_int_get(&w->sealed_since_ckpt) >= (gint)w->opt.checkpoint_every)
			wal_checkpoint(w);
		if (w->opt.background_compaction)
			wal_compact(w, w->opt.compact_threshold, NULL);
		g_mutex_lock(&w->maint_lock);
	}
	g_mutex_unlock(&w->maint_lock);
	return NULL;
}

/* ---- submission ---- */

int wal_submit(struct wal *w, struct wal_req *req)
{
	g_mutex_lock(&w->qlock);
	if (w->stopping) {
		g_mutex_unlock(&w->qlock);
		return -ESHUTDOWN;
	}
	if (!req->from_seg) {
		req->rec.seq = w->next_seq++;
		wal_rec_set_seq(req->head, req->rec.seq);
	}
	queue_push(&w->write_q, req);
	w->in_flight++;
	g_cond_signal(&w->write_cond);
	g_mutex_unlock(&w->qlock);
	return 0;
}

int wal_submit_wait(struct wal *w, struct wal_req *req)
{
	struct common_waiter wt;
	int rc;

	common_waiter_init(&wt, 1);
	req->done = common_waiter_done_cb;
	req->arg = &wt;
	rc = wal_submit(w, req);
	if (rc < 0) {
		req_free(req);
		goto out;
	}
	rc = common_waiter_wait(&wt);
out:
	common_waiter_fini(&wt);
	return rc;
}

static struct wal_req *record_req_new(const struct wal_key *key, uint8_t type, const void *data,
				      size_t len)
{
	struct wal_req *r = g_new0(struct wal_req, 1);

	r->rec.type = type;
	r->rec.key = *key;
	r->rec.payload_len = (uint32_t)len;
	r->head_len = wal_rec_head_len(r->rec.payload_len);
	r->head = g_malloc(r->head_len);
	/* Block CRCs are computed here, on the caller's thread, outside every
	 * lock; wal_submit() only stamps the sequence number. */
	wal_rec_encode_head(&r->rec, data, r->head);
	r->body = data;
	r->body_len = len;
	r->queued_us = g_get_monotonic_time();
	return r;
}

static int put_check(struct wal *w, size_t len)
{
	if (len > w->opt.max_payload)
		return -EMSGSIZE;
	return wal_sticky_error(w) ? -EROFS : 0;
}

int wal_put_async(struct wal *w, const struct wal_key *key, const void *data, size_t len,
		  wal_done_fn done, void *arg)
{
	int rc = put_check(w, len);

	if (rc < 0)
		return rc;
	struct wal_req *r = record_req_new(key, WAL_REC_PUT, data, len);

	r->done = done;
	r->arg = arg;
	rc = wal_submit(w, r);
	if (rc < 0)
		req_free(r);
	return rc;
}

int wal_put(struct wal *w, const struct wal_key *key, const void *data, size_t len)
{
	int rc = put_check(w, len);

	if (rc < 0)
		return rc;
	return wal_submit_wait(w, record_req_new(key, WAL_REC_PUT, data, len));
}

int wal_delete(struct wal *w, const struct wal_key *key)
{
	struct wal_entry *e;
	int rc = put_check(w, 0);

	if (rc < 0)
		return rc;
	g_mutex_lock(&w->lock);
	e = wal_index_lookup(w, key);
	rc = e && e->type == WAL_REC_PUT ? 0 : -ENOENT;
	g_mutex_unlock(&w->lock);
	if (rc < 0)
		return rc;
	return wal_submit_wait(w, record_req_new(key, WAL_REC_DELETE, NULL, 0));
}

/* ---- read path ---- */

int wal_stat(struct wal *w, const struct wal_key *key, struct wal_shard_info *info)
{
	struct wal_entry *e;
	int rc = -ENOENT;

	g_mutex_lock(&w->lock);
	e = wal_index_lookup(w, key);
	if (e && e->type == WAL_REC_PUT) {
		info->length = e->payload_len;
		info->seq = e->seq;
		info->corrupt = e->corrupt;
		rc = 0;
	}
	g_mutex_unlock(&w->lock);
	return rc;
}

/* Reads and checks the record header and CRC table of the entry. */
static int read_head(struct wal *w, struct wal_seg *seg, const struct wal_entry *e, uint8_t *head)
{
	size_t head_len = wal_rec_head_len(e->payload_len);
	struct wal_rec rec;
	int rc = wal_read_exact(w, seg->fd, head, head_len, e->offset);

	if (rc == -ENODATA)
		return WAL_ECORRUPT;
	if (rc < 0)
		return rc;
	rc = wal_rec_decode_head(head, head_len, WAL_REC_MAX_PAYLOAD, &rec, &head_len);
	if (rc < 0)
		return WAL_ECORRUPT;
	if (!wal_key_equal(&rec.key, &e->key) || rec.seq != e->seq || rec.payload_len != e->payload_len)
		return WAL_ECORRUPT;
	return 0;
}

/* Reads blocks [first, last] of the payload into dst and checks them. */
static int read_blocks(struct wal *w, struct wal_seg *seg, const struct wal_entry *e,
		       const uint8_t *head, uint32_t first, uint32_t last, uint8_t *dst)
{
	uint64_t start = (uint64_t)first << WAL_BLOCK_SHIFT;
	uint64_t end = MIN(((uint64_t)last + 1) << WAL_BLOCK_SHIFT, (uint64_t)e->payload_len);
	uint64_t base = e->offset + wal_rec_head_len(e->payload_len);
	int rc = wal_read_exact(w, seg->fd, dst, end - start, base + start);

	if (rc == -ENODATA)
		return WAL_ECORRUPT;
	for (uint32_t b = first; rc == 0 && b <= last; b++) {
		uint64_t off = ((uint64_t)b << WAL_BLOCK_SHIFT) - start;

		rc = wal_rec_check_block(head, b, dst + off, MIN((uint64_t)WAL_BLOCK_SIZE, end - start - off));
	}
	return rc;
}

static ssize_t read_range(struct wal *w, struct wal_seg *seg, const struct wal_entry *e,
			  uint64_t off, uint8_t *buf, size_t n)
{
	uint8_t *head = g_malloc(wal_rec_head_len(e->payload_len));
	uint32_t first = (uint32_t)(off >> WAL_BLOCK_SHIFT);
	uint32_t last = (uint32_t)((off + n - 1) >> WAL_BLOCK_SHIFT);
	uint64_t span = MIN(((uint64_t)last + 1) << WAL_BLOCK_SHIFT, (uint64_t)e->payload_len) -
			((uint64_t)first << WAL_BLOCK_SHIFT);
	/* When the range is whole blocks, read straight into the caller's
	 * buffer; otherwise through a bounce buffer of the covering blocks. */
	bool direct = span == n;
	uint8_t *dst = direct ? buf : g_malloc(span);
	int rc = read_head(w, seg, e, head);

	if (rc == 0)
		rc = read_blocks(w, seg, e, head, first, last, dst);
	if (rc == 0 && !direct)
		memcpy(buf, dst + (off - ((uint64_t)first << WAL_BLOCK_SHIFT)), n);
	if (!direct)
		g_free(dst);
	g_free(head);
	if (rc == WAL_ECORRUPT) {
		g_mutex_lock(&w->lock);
		struct wal_entry *now = wal_index_lookup(w, &e->key);

		w->stats.corrupt_records++;
		if (now && now->seq == e->seq)
			wal_entry_mark_bad(w, now, false);
		g_mutex_unlock(&w->lock);
	}
	return rc < 0 ? rc : (ssize_t)n;
}

ssize_t wal_read(struct wal *w, const struct wal_key *key, uint64_t off, void *buf, size_t len)
{
	struct wal_entry e, *found;
	struct wal_seg *seg = NULL;
	ssize_t rc;

	g_mutex_lock(&w->lock);
	found = wal_index_lookup(w, key);
	if (found && found->type == WAL_REC_PUT && !found->corrupt) {
		e = *found;
		seg = wal_seg_ref(found->seg);
	}
	rc = found && found->type == WAL_REC_PUT && found->corrupt ? WAL_ECORRUPT : -ENOENT;
	g_mutex_unlock(&w->lock);
	if (!seg)
		return rc;
	if (off > e.payload_len)
		rc = -EINVAL;
	else if (off == e.payload_len || len == 0)
		rc = 0;
	else
		rc = read_range(w, seg, &e, off, buf, MIN(len, (size_t)(e.payload_len - off)));
	wal_seg_unref(seg);
	return rc;
}

struct list_item {
	struct wal_key key;
	uint32_t length;
	struct wal_seg *seg; /* a reference; NULL: a checkpoint entry not yet placed */
};

/* The modification time of seg's file, or now (never older than true). */
static int64_t seg_written_s(struct wal_seg *seg, GHashTable *times)
{
	gpointer known = seg ? g_hash_table_lookup(times, seg) : NULL;
	struct stat st;

	if (known)
		return GPOINTER_TO_SIZE(known);
	int64_t t = seg && fstat(seg->fd, &st) == 0 ? (int64_t)st.st_mtime : (int64_t)time(NULL);

	if (seg)
		g_hash_table_insert(times, seg, GSIZE_TO_POINTER((gsize)t));
	return t;
}

/* Snapshots the live shards (only the bad ones when bad_only) under the
 * lock, then calls fn for each without it. */
static int list_shards(struct wal *w, bool bad_only, wal_list_fn fn, void *arg)
{
	GArray *items = g_array_new(FALSE, FALSE, sizeof(struct list_item));
	GHashTable *times = g_hash_table_new(NULL, NULL);
	GHashTableIter it;
	gpointer value;
	int rc = 0;

	g_mutex_lock(&w->lock);
	g_hash_table_iter_init(&it, w->index);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct wal_entry *e = value;

		if (e->type == WAL_REC_PUT && (!bad_only || e->corrupt || e->damaged)) {
			struct list_item item = {e->key, e->payload_len,
						 e->seg ? wal_seg_ref(e->seg) : NULL};

			g_array_append_val(items, item);
		}
	}
	g_mutex_unlock(&w->lock);
	for (guint i = 0; i < items->len; i++) {
		struct list_item *item = &g_array_index(items, struct list_item, i);
		int64_t written = seg_written_s(item->seg, times);

		if (rc == 0)
			rc = fn(arg, &item->key, item->length, written);
		wal_seg_unref(item->seg);
	}
	g_hash_table_destroy(times);
	g_array_free(items, TRUE);
	return rc;
}

int wal_list(struct wal *w, wal_list_fn fn, void *arg)
{
	return list_shards(w, false, fn, arg);
}

int wal_list_damaged(struct wal *w, wal_list_fn fn, void *arg)
{
	return list_shards(w, true, fn, arg);
}

void wal_get_stats(struct wal *w, struct wal_stats *st)
{
	GHashTableIter it;
	gpointer value;

	g_mutex_lock(&w->lock);
	*st = w->stats;
	st->disk_bytes = 0;
	g_hash_table_iter_init(&it, w->segments);
	while (g_hash_table_iter_next(&it, NULL, &value))
		st->disk_bytes += ((struct wal_seg *)value)->size;
	st->segments = g_hash_table_size(w->segments);
	g_mutex_unlock(&w->lock);
	st->sticky_error = wal_sticky_error(w);
}

void wal_metrics(struct wal *w, GString *out)
{
	struct wal_stats st;

	wal_get_stats(w, &st);
	metrics_family(out, "shardfs_wal_append_duration_seconds", "histogram",
		       "Time from a record's request to its being durable (fdatasync done).");
	metrics_hist_write(out, "shardfs_wal_append_duration_seconds", NULL, &w->append_latency);
	metrics_family(out, "shardfs_wal_fsync_duration_seconds", "histogram",
		       "Time of one group commit's fdatasync calls.");
	metrics_hist_write(out, "shardfs_wal_fsync_duration_seconds", NULL, &w->sync_latency);
	metrics_family(out, "shardfs_wal_records_per_commit", "histogram",
		       "Records made durable by one group commit.");
	metrics_hist_write(out, "shardfs_wal_records_per_commit", NULL, &w->batch_records);
	metrics_one(out, "shardfs_wal_appends_total", "counter",
		    "Records made durable since the store opened.", (double)st.appends);
	metrics_one(out, "shardfs_wal_commits_total", "counter",
		    "Group commits (fdatasync batches) since the store opened.", (double)st.syncs);
	metrics_one(out, "shardfs_wal_compactions_total", "counter",
		    "Segments compacted since the store opened.", (double)st.compactions);
	metrics_one(out, "shardfs_wal_corrupt_records_total", "counter",
		    "Records found failing their checksum.", (double)st.corrupt_records);
	metrics_one(out, "shardfs_wal_segments", "gauge", "Segment files of the store.",
		    (double)st.segments);
	metrics_one(out, "shardfs_wal_shards", "gauge", "Live shards in the store.", (double)st.keys);
	metrics_one(out, "shardfs_wal_live_bytes", "gauge",
		    "Bytes of the records the index points to.", (double)st.live_bytes);
	metrics_one(out, "shardfs_wal_disk_bytes", "gauge", "Bytes of all segment files.",
		    (double)st.disk_bytes);
	metrics_one(out, "shardfs_wal_read_only", "gauge",
		    "1 when a disk error made the store read-only.", st.sticky_error ? 1 : 0);
}

/* ---- open and close ---- */

static struct wal *wal_alloc(const struct wal_options *o)
{
	struct wal *w = g_new0(struct wal, 1);

	metrics_hist_init(&w->append_latency, &metrics_latency_buckets);
	metrics_hist_init(&w->sync_latency, &metrics_latency_buckets);
	metrics_hist_init(&w->batch_records, &metrics_count_buckets);
	w->opt = *o;
	w->io = o->io ? o->io : &wal_io_posix;
	w->dir = g_strdup(o->dir);
	w->opt.dir = w->dir;
	w->dir_fd = -1;
	w->index = g_hash_table_new_full(wal_key_hash, wal_key_equal, NULL, g_free);
	w->segments = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
					    (GDestroyNotify)wal_seg_unref);
	g_mutex_init(&w->lock);
	g_mutex_init(&w->qlock);
	g_cond_init(&w->write_cond);
	g_cond_init(&w->sync_cond);
	g_cond_init(&w->idle_cond);
	g_mutex_init(&w->work_lock);
	g_mutex_init(&w->maint_lock);
	g_cond_init(&w->maint_cond);
	return w;
}

static void wal_free(struct wal *w)
{
	wal_seg_unref(w->active);
	g_hash_table_destroy(w->index);
	g_hash_table_destroy(w->segments);
	if (w->dir_fd >= 0)
		w->io->close(w->dir_fd);
	g_mutex_clear(&w->lock);
	g_mutex_clear(&w->qlock);
	g_cond_clear(&w->write_cond);
	g_cond_clear(&w->sync_cond);
	g_cond_clear(&w->idle_cond);
	g_mutex_clear(&w->work_lock);
	g_mutex_clear(&w->maint_lock);
	g_cond_clear(&w->maint_cond);
	g_free(w->dir);
	g_free(w);
}

/* Creates the store directory if needed, durably: its entry in the parent
 * is fsynced, or a power loss could take the whole store with it. Shards
 * are file contents in clear, so the directory and its files are the
 * owner's only (0700, files 0600). */
static int make_dir(const char *dir, const struct wal_io *io)
{
	char *parent;
	int fd, rc = 0;

	if (g_file_test(dir, G_FILE_TEST_IS_DIR))
		return 0;
	if (g_mkdir_with_parents(dir, 0700) < 0)
		return -errno;
	parent = g_path_get_dirname(dir);
	fd = io->open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0 || io->fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		io->close(fd);
	g_free(parent);
	return rc;
}

int wal_open(const struct wal_options *o, struct wal **out)
{
	struct wal *w;
	int rc = options_check(o);

	if (rc < 0)
		return rc;
	rc = make_dir(o->dir, o->io ? o->io : &wal_io_posix);
	if (rc < 0)
		return rc;
	w = wal_alloc(o);
	w->dir_fd = w->io->open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (w->dir_fd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = wal_recover(w);
	if (rc < 0)
		goto fail;
	w->writer = g_thread_new("wal-writer", writer_main, w);
	w->syncer = g_thread_new("wal-sync", syncer_main, w);
	w->maint = g_thread_new("wal-maint", maint_main, w);
	*out = w;
	return 0;
fail:
	wal_free(w);
	return rc;
}

void wal_close(struct wal *w)
{
	if (!w)
		return;
	g_mutex_lock(&w->maint_lock);
	w->maint_stop = true;
	g_cond_signal(&w->maint_cond);
	g_mutex_unlock(&w->maint_lock);
	g_thread_join(w->maint);

	g_mutex_lock(&w->qlock);
	w->stopping = true;
	g_cond_signal(&w->write_cond);
	g_mutex_unlock(&w->qlock);
	g_thread_join(w->writer);
	g_thread_join(w->syncer);

	if (!wal_sticky_error(w)) {
		int rc = wal_checkpoint(w);

		if (rc < 0)
			g_warning("checkpoint of %s on close failed: %s", w->dir, common_strerror(rc));
	}
	wal_free(w);
}
