/*
 * recover.c - rebuilding the index when a store opens.
 *
 * 1. List the directory: segment files by id; unfinished checkpoint files
 *    (*.tmp) are removed.
 * 2. Load the checkpoint, if any and valid: the index as it was when the
 *    sync thread had applied the log up to a known position.
 * 3. Open every segment and check its header. A segment whose header is
 *    not ours is renamed *.bad (nothing is deleted) and reported; only the
 *    last segment may have a torn header, from a crash while creating it,
 *    and that one is removed, since no record in it was ever acknowledged.
 * 4. Scan the log from that position on, verifying every CRC, and apply
 *    each record to the index (newest sequence number wins).
 * 5. Make what recovery decided durable: fdatasync the last segment (its
 *    truncated tail, and the previous process's unsynced writes, before a
 *    full one is sealed) and fsync the directory (segments whose creation
 *    the previous process never synced).
 *
 * Only the last segment can hold torn writes: a segment is fdatasynced
 * before the next one is created. So in a sealed segment a record with a
 * valid header and a bad payload is real corruption, and is indexed as
 * corrupt so that reads report it. In the last segment the first damage
 * marks a torn tail: an acknowledgement follows an fsync of everything
 * before the record, so nothing from the damage on was acknowledged, even
 * valid records (the page cache may write back out of order). The tail is
 * cut off there; indexing a torn record would hide the older, acknowledged
 * version of its key. (Bit rot inside the active segment is treated alike:
 * the records after it are lost on this node and repaired from the others.)
 */
#define G_LOG_DOMAIN "shardfs-wal"

#include "wal_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

struct scanned {
	struct wal_rec rec;
	uint64_t offset;
	uint64_t size;
	bool ok;
};

static bool parse_seg_name(const char *name, uint64_t *id)
{
	char *end;

	if (strlen(name) != 24 || !g_str_has_prefix(name, "seg-") || !g_str_has_suffix(name, ".wal"))
		return false;
	for (int i = 4; i < 20; i++)
		if (!g_ascii_isxdigit(name[i]))
			return false;
	*id = g_ascii_strtoull(name + 4, &end, 16);
	return end == name + 20;
}

static gint cmp_u64(gconstpointer a, gconstpointer b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int list_dir(struct wal *w, GArray *ids)
{
	GError *err = NULL;
	GDir *dir = g_dir_open(w->dir, 0, &err);
	const char *name;

	if (!dir) {
		g_warning("cannot list %s: %s", w->dir, err->message);
		g_error_free(err);
		return -EIO;
	}
	while ((name = g_dir_read_name(dir))) {
		uint64_t id;

		if (parse_seg_name(name, &id)) {
			g_array_append_val(ids, id);
		} else if (g_str_has_suffix(name, ".tmp")) {
			char *path = g_build_filename(w->dir, name, NULL);

			w->io->unlink(path);
			g_free(path);
		} else if (g_str_has_suffix(name, ".bad")) {
			w->stats.bad_segments++;
		}
	}
	g_dir_close(dir);
	g_array_sort(ids, cmp_u64);
	return 0;
}

static void quarantine(struct wal *w, const char *path, const char *why)
{
	char *bad = g_strconcat(path, ".bad", NULL);

	if (w->io->rename(path, bad) < 0)
		g_warning("segment %s %s, and renaming it failed: %s", path, why, g_strerror(errno));
	else
		g_warning("segment %s %s: set aside as %s", path, why, bad);
	w->stats.bad_segments++;
	g_free(bad);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Opens segment id and adds it to w->segments; a damaged one is set aside
 * (0 returned, nothing added). */
static int open_segment(struct wal *w, uint64_t id, bool last)
{
	uint8_t header[WAL_SEG_HEADER_SIZE] = {0};
	struct wal_seg *seg = g_new0(struct wal_seg, 1);
	struct stat st;
	uint64_t hid;
	int rc;

	seg->id = id;
	seg->w = w;
	seg->refs = 1;
	seg->path = wal_seg_path(w, id);
	seg->fd = w->io->open(seg->path, O_RDWR | O_CLOEXEC, 0);
	if (seg->fd < 0 || fstat(seg->fd, &st) < 0) {
		rc = -errno;
		g_warning("cannot open segment %s: %s", seg->path, g_strerror(-rc));
		goto out;
	}
	seg->size = (uint64_t)st.st_size;
	rc = wal_read_exact(w, seg->fd, header, MIN(seg->size, sizeof(header)), 0);
	if (rc < 0 && rc != -ENODATA)
		goto out;
	rc = wal_seg_header_decode(header, seg->size, &hid);
	if (rc == 0 && hid != id)
		rc = WAL_EBADSEG;
	if (rc < 0 && last && (seg->size < WAL_SEG_HEADER_SIZE || all_zero(header, sizeof(header)))) {
		g_message("removing segment %s with a torn header", seg->path);
		w->stats.torn_bytes += seg->size;
		rc = w->io->unlink(seg->path) < 0 ? -errno : 0;
		goto out;
	}
	if (rc < 0) {
		quarantine(w, seg->path, rc == -ENODATA ? "is too short" : "has a foreign header");
		rc = 0;
		goto out;
	}
	g_hash_table_insert(w->segments, &seg->id, seg);
	return 0;
out:
	wal_seg_unref(seg);
	return rc;
}

struct scan_state {
	GArray *recs; /* struct scanned */
	uint64_t bad_bytes;
};

static int collect_record(void *arg, const struct wal_scan_rec *r)
{
	struct scan_state *st = arg;
	struct scanned s = {r->rec, r->offset, r->size, r->payload_ok};

	g_array_append_val(st->recs, s);
	return 0;
}

static int count_bad(void *arg, uint64_t offset, uint64_t len)
{
	struct scan_state *st = arg;

	(void)offset;
	st->bad_bytes += len;
	return 0;
}

/* Applies the records of one segment; in the last one only those before its
 * torn tail, which is then cut off. */
static int scan_segment(struct wal *w, struct wal_seg *seg, uint64_t start, bool last)
{
	struct scan_state st = {g_array_new(FALSE, FALSE, sizeof(struct scanned)), 0};
	struct wal_scan s = {
		.io = w->io, .fd = seg->fd, .start = start, .end = seg->size,
		.max_payload = WAL_REC_MAX_PAYLOAD, .verify_payload = true,
		.on_record = collect_record, .on_bad = count_bad, .arg = &st,
	};
	uint64_t good_end;
	int rc = wal_scan_run(&s, &good_end);

	if (rc < 0)
		goto out;
	for (guint i = 0; i < st.recs->len; i++) {
		struct scanned *r = &g_array_index(st.recs, struct scanned, i);

		if (last && r->offset + r->size > good_end)
			break; /* after the first damage: never acknowledged */
		if (!r->ok) {
			w->stats.corrupt_records++;
			g_warning("segment %s: record at %" PRIu64 " fails its checksum", seg->path, r->offset);
		}
		wal_index_apply(w, &r->rec, seg, r->offset, !r->ok);
	}
	if (last && good_end < seg->size) {
		g_message("segment %s: truncating torn tail of %" PRIu64 " bytes", seg->path,
			  seg->size - good_end);
		w->stats.torn_bytes += seg->size - good_end;
		if (w->io->ftruncate(seg->fd, (off_t)good_end) < 0) {
			rc = -errno;
			goto out;
		}
		seg->size = good_end;
	} else if (st.bad_bytes) {
		g_warning("segment %s: skipped %" PRIu64 " bytes holding no valid record", seg->path,
			  st.bad_bytes);
	}
out:
	g_array_free(st.recs, TRUE);
	return rc;
}

static bool fits(uint64_t offset, uint64_t len, const struct wal_seg *seg)
{
	return offset >= WAL_SEG_HEADER_SIZE && offset <= seg->size && len <= seg->size - offset;
}

/* Checkpoint entries and its applied position must lie inside their
 * segments; otherwise the whole checkpoint is distrusted and every segment
 * is scanned. */
static bool checkpoint_fits(struct wal *w, const struct wal_ckpt_info *info)
{
	struct wal_seg *applied = g_hash_table_lookup(w->segments, &info->applied_seg);
	GHashTableIter it;
	gpointer value;

	if (applied && !fits(info->applied_end, 0, applied))
		return false;
	g_hash_table_iter_init(&it, w->index);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct wal_entry *e = value;
		struct wal_seg *seg = g_hash_table_lookup(w->segments, &e->seg_id);

		if (seg && !fits(e->offset, wal_entry_size(e), seg))
			return false;
	}
	return true;
}

static void attach_checkpoint_entries(struct wal *w)
{
	GHashTableIter it;
	gpointer value;

	g_hash_table_iter_init(&it, w->index);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct wal_entry *e = value;
		struct wal_seg *seg = g_hash_table_lookup(w->segments, &e->seg_id);

		if (seg)
			wal_entry_move(w, e, seg, e->offset);
	}
}

static gboolean entry_is_stale(gpointer key, gpointer value, gpointer data)
{
	(void)key;
	(void)data;
	return ((struct wal_entry *)value)->seg == NULL;
}

static int open_active(struct wal *w, uint64_t last_id)
{
	struct wal_seg *last = g_hash_table_lookup(w->segments, &last_id);
	int rc;

	w->next_seg_id = last_id + 1;
	if (last && w->io->fdatasync(last->fd) < 0)
		return -errno;
	if (last && last->size < w->opt.segment_size) {
		w->active = wal_seg_ref(last);
		return 0;
	}
	if (last)
		last->sealed = true;
	rc = wal_seg_create(w, w->next_seg_id++, &w->active);
	if (rc < 0)
		return rc;
	g_hash_table_insert(w->segments, &w->active->id, wal_seg_ref(w->active));
	return 0;
}

/* Where the scan of segment id starts: segments before the checkpoint's
 * applied position are fully reflected in it; its own segment from the
 * applied offset on; later ones from their first record. */
static uint64_t scan_start(const struct wal_ckpt_info *info, uint64_t id)
{
	if (id < info->applied_seg)
		return UINT64_MAX;
	if (id == info->applied_seg)
		return info->applied_end;
	return WAL_SEG_HEADER_SIZE;
}

static int scan_log(struct wal *w, GArray *ids, const struct wal_ckpt_info *info, uint64_t *last_id)
{
	int rc = 0;

	for (guint i = 0; i < ids->len && rc == 0; i++) {
		uint64_t id = g_array_index(ids, uint64_t, i), start = scan_start(info, id);
		struct wal_seg *seg = g_hash_table_lookup(w->segments, &id);

		if (!seg)
			continue;
		*last_id = id;
		if (start != UINT64_MAX)
			rc = scan_segment(w, seg, start, i + 1 == ids->len);
	}
	return rc;
}

static void mark_sealed(struct wal *w, uint64_t last_id)
{
	GHashTableIter it;
	gpointer value;

	g_hash_table_iter_init(&it, w->segments);
	while (g_hash_table_iter_next(&it, NULL, &value))
		((struct wal_seg *)value)->sealed = ((struct wal_seg *)value)->id != last_id;
}

int wal_recover(struct wal *w)
{
	GArray *ids = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	struct wal_ckpt_info info = {0};
	uint64_t last_id = 0;
	guint stale;
	int rc = list_dir(w, ids);

	if (rc < 0)
		goto out;
	if (wal_checkpoint_load(w, &info) < 0)
		memset(&info, 0, sizeof(info));
	for (guint i = 0; i < ids->len && rc == 0; i++)
		rc = open_segment(w, g_array_index(ids, uint64_t, i), i + 1 == ids->len);
	if (rc < 0)
		goto out;
	if (!checkpoint_fits(w, &info)) {
		g_warning("checkpoint of %s does not match its segments: scanning all", w->dir);
		g_hash_table_remove_all(w->index);
		memset(&info, 0, sizeof(info));
	}
	attach_checkpoint_entries(w);
	rc = scan_log(w, ids, &info, &last_id);
	if (rc < 0)
		goto out;
	stale = g_hash_table_foreach_remove(w->index, entry_is_stale, NULL);
	if (stale)
		g_message("%s: %u checkpoint entries had no segment left", w->dir, stale);
	w->max_seq = MAX(w->max_seq, info.max_seq);
	w->next_seq = w->max_seq + 1;
	mark_sealed(w, last_id);
	/* New segments must sort after every id the checkpoint knew of. */
	rc = open_active(w, MAX(last_id, info.applied_seg));
	if (rc == 0)
		rc = wal_sync_dir(w);
	w->durable_seg_id = w->active ? w->active->id : 0;
	w->applied_end = w->active ? w->active->size : 0;
	w->stats.segments = g_hash_table_size(w->segments);
out:
	g_array_free(ids, TRUE);
	return rc;
}
