/*
 * file.c - the content of regular files open in this mount.
 *
 * Every part of a file covers [i * P, (i + 1) * P) with P the part size;
 * every part but the last is P long. A write dirties the parts it touches:
 * a dirty part is a P-byte buffer holding the part's bytes (copied from the
 * stored part on first touch: copy-on-write), and a dirty part written to
 * its end is uploaded at once as a new part with a fresh object id, so a
 * sequential writer streams while it writes. At most MAX_DIRTY parts stay
 * dirty (the oldest is uploaded when more are) and MAX_UPLOADS uploads are
 * in flight (the oldest is waited for): memory per open file stays bounded
 * whatever it does.
 *
 * flush (close, fsync) uploads the rest, waits for every upload, and
 * commits the new part list and size in one durable metadata transaction:
 * other mounts see the old content or the new. Parts replaced by the
 * commit go to the garbage table in the same transaction; parts uploaded
 * and replaced again before a commit were never visible and are deleted
 * here. A failed upload or commit makes every later flush of this open
 * state fail with EIO and nothing more is committed from it (close and
 * fsync report it; the file keeps its last committed content).
 *
 * Reads see this mount's unflushed writes: dirty parts from memory, parts
 * uploaded meanwhile from the store, holes as zeros. A file with nothing
 * dirty is read through one store reader, which reads ahead.
 *
 * Small files (one part of at most META_INLINE_MAX bytes) are committed
 * inline: their bytes go into the metadata transaction itself, no part is
 * stored, and close costs one database commit instead of a round trip to
 * k + m nodes before it. While open, an inline file's content is its part
 * 0 held as a dirty part that is not changed (in->changed stays false
 * until a write), with part 0 in parts[] a hole. Such a file that grows
 * past the limit is committed as parts again, which drops the inline
 * copy in the same transaction. Dirty buffers grow as they are written,
 * so a small file costs its size in memory, not a whole part.
 */
#define G_LOG_DOMAIN "shardfs-fuse"

#include "fs_internal.h"

#include <errno.h>
#include <string.h>

#define MAX_DIRTY 8u
#define MAX_UPLOADS 4u
/* The first buffer of a small dirty part; it doubles as it is written. */
#define DIRTY_MIN_CAP 4096u

static uint64_t nparts_for(const struct fs *fs, uint64_t size)
{
	return (size + fs->part_size - 1) / fs->part_size;
}

/* The length part i must have in a file of in->size bytes. */
static uint64_t part_len(const struct fs *fs, const struct fs_inode *in, uint64_t i)
{
	uint64_t start = i * fs->part_size;

	return in->size <= start ? 0 : MIN(fs->part_size, in->size - start);
}

static struct meta_part *part_at(struct fs_inode *in, uint64_t i)
{
	return &g_array_index(in->parts, struct meta_part, i);
}

static void hole_at(struct fs_inode *in, uint64_t i, uint64_t len)
{
	struct meta_part hole = {.index = (uint32_t)i, .length = len};
	bool no = false;

	while (in->parts->len <= i) {
		g_array_append_val(in->parts, hole);
		g_array_append_val(in->fresh, no);
		part_at(in, in->parts->len - 1)->index = in->parts->len - 1;
	}
	*part_at(in, i) = hole;
}

static void dirty_free(gpointer p)
{
	struct fs_dirty *d = p;

	g_free(d->buf);
	g_free(d);
}

static void reader_stale(struct fs_inode *in)
{
	g_clear_pointer(&in->reader, store_reader_free);
}

/*
 * Makes d's buffer hold at least end bytes (what is past d->len stays
 * undefined). Past the inline limit it goes straight to a whole part, so
 * that a streamed part is allocated once (and can be handed to the
 * writer without a copy) rather than reallocated at every write; it is
 * not zeroed, since a sequential writer fills it anyway. -ENOMEM.
 */
static int dirty_reserve(const struct fs *fs, struct fs_dirty *d, uint64_t end)
{
	uint64_t cap;
	uint8_t *buf;

	if (end <= d->cap)
		return 0;
	cap = end > META_INLINE_MAX ? fs->part_size : MAX(MAX(end, 2 * (uint64_t)d->cap), DIRTY_MIN_CAP);
	cap = MIN(cap, (uint64_t)fs->part_size);
	buf = g_try_realloc(d->buf, cap);
	if (!buf)
		return -ENOMEM;
	d->buf = buf;
	d->cap = cap;
	return 0;
}

/* Makes the bytes up to end defined, zeros past d->len (reserved first). */
static void dirty_zero_to(struct fs_dirty *d, uint64_t end)
{
	if (end <= d->len)
		return;
	memset(d->buf + d->len, 0, end - d->len);
	d->len = end;
}

/* Bytes [a, b) of a dirty part; zeros past its data. */
static void dirty_copy_out(const struct fs_dirty *d, uint64_t a, uint64_t b, uint8_t *out)
{
	uint64_t in_buf = a < d->len ? MIN(b, d->len) - a : 0;

	if (in_buf)
		memcpy(out, d->buf + a, in_buf);
	memset(out + in_buf, 0, b - a - in_buf);
}

/* A dirty part 0 holding the file's inline content (len bytes of data). */
static int inline_to_dirty(struct fs *fs, struct fs_inode *in, const void *data, size_t len)
{
	struct fs_dirty *d = g_new0(struct fs_dirty, 1);

	len = MIN((uint64_t)len, part_len(fs, in, 0));
	if (dirty_reserve(fs, d, len)) {
		dirty_free(d);
		return -ENOMEM;
	}
	if (len)
		memcpy(d->buf, data, len);
	d->len = len;
	d->seq = ++in->seq;
	g_hash_table_insert(in->dirty, GUINT_TO_POINTER(0), d);
	return 0;
}

/* The inline content of file ino, if it has one: *data NULL otherwise. */
static int load_inline(struct meta *m, uint64_t ino, void **data, size_t *len)
{
	int rc = meta_get_inline(m, ino, data, len);

	return rc == -ENODATA ? 0 : rc;
}

static int load(struct fs *fs, struct fs_inode *in)
{
	struct meta *m = fs_meta_take(fs);
	struct meta_part *parts = NULL;
	struct meta_attr a;
	unsigned n = 0;
	uint8_t oid[16];
	void *inline_data = NULL;
	size_t inline_len = 0;
	int rc = meta_getattr(m, in->ino, &a);

	if (rc == 0)
		rc = meta_get_manifest(m, in->ino, oid, &parts, &n);
	if (rc == 0 && n == 0 && a.size)
		rc = load_inline(m, in->ino, &inline_data, &inline_len);
	fs_meta_give(fs, m);
	if (rc) {
		g_free(parts);
		return rc;
	}
	__atomic_store_n(&in->size, a.size, __ATOMIC_RELAXED);
	for (uint64_t i = 0; i < nparts_for(fs, in->size); i++)
		hole_at(in, i, part_len(fs, in, i));
	for (unsigned i = 0; i < n; i++)
		if (parts[i].index < in->parts->len)
			*part_at(in, parts[i].index) = parts[i];
	g_free(parts);
	if (inline_data && in->parts->len)
		rc = inline_to_dirty(fs, in, inline_data, inline_len);
	g_free(inline_data);
	if (rc)
		return rc;
	__atomic_store_n(&in->loaded, true, __ATOMIC_RELEASE);
	return 0;
}

static struct fs_inode *inode_new(uint64_t ino)
{
	struct fs_inode *in = g_new0(struct fs_inode, 1);

	in->ino = ino;
	g_mutex_init(&in->lock);
	g_mutex_init(&in->attr_lock);
	in->parts = g_array_new(FALSE, TRUE, sizeof(struct meta_part));
	in->fresh = g_array_new(FALSE, TRUE, sizeof(bool));
	in->superseded = g_array_new(FALSE, TRUE, sizeof(struct meta_part));
	in->dirty = g_hash_table_new_full(NULL, NULL, NULL, dirty_free);
	g_queue_init(&in->uploads);
	return in;
}

static void inode_free(struct fs_inode *in)
{
	reader_stale(in);
	g_array_free(in->parts, TRUE);
	g_array_free(in->fresh, TRUE);
	g_array_free(in->superseded, TRUE);
	g_hash_table_destroy(in->dirty);
	g_mutex_clear(&in->lock);
	g_mutex_clear(&in->attr_lock);
	g_free(in);
}

struct fs_inode *fs_inode_find(struct fs *fs, uint64_t ino)
{
	return g_hash_table_lookup(fs->inodes, &ino);
}

struct fs_inode *fs_inode_hold(struct fs *fs, uint64_t ino)
{
	g_mutex_lock(&fs->lock);
	struct fs_inode *in = fs_inode_find(fs, ino);

	if (in)
		in->opens++; /* so that a concurrent last release keeps it */
	g_mutex_unlock(&fs->lock);
	return in;
}

/* ---- attributes kept for the next commit ---- */

/* Kept changes of mode and owner carry the stored value they replace
 * (their guard), taken under the inode lock, so that no commit comes
 * between. */
static void pending_merge(struct meta_setattr *p, const struct meta_setattr *set,
			  const struct meta_attr *stored)
{
	unsigned first = set->mask & ~p->mask & (META_SET_MODE | META_SET_UID | META_SET_GID);

	p->guard |= first;
	if (first & META_SET_MODE)
		p->base_mode = stored->mode & 07777;
	if (first & META_SET_UID)
		p->base_uid = stored->uid;
	if (first & META_SET_GID)
		p->base_gid = stored->gid;
	if (set->mask & META_SET_MODE) {
		p->mode = set->mode;
		p->mask = (p->mask | META_SET_MODE) & ~META_SET_KILL_SUIDGID;
	} else if ((set->mask & META_SET_KILL_SUIDGID) && (p->mask & META_SET_MODE)) {
		p->mode = meta_mode_without_suidgid(p->mode);
	} else {
		p->mask |= set->mask & META_SET_KILL_SUIDGID;
	}
	if (set->mask & META_SET_UID)
		p->uid = set->uid;
	if (set->mask & META_SET_GID)
		p->gid = set->gid;
	if (set->mask & META_SET_ATIME)
		p->atime_ns = set->atime_ns;
	if (set->mask & META_SET_MTIME)
		p->mtime_ns = set->mtime_ns;
	p->mask |= set->mask & (META_SET_UID | META_SET_GID | META_SET_ATIME | META_SET_MTIME);
}

uint64_t fs_inode_attr_changes(struct fs_inode *in)
{
	return __atomic_load_n(&in->attr_changes, __ATOMIC_ACQUIRE);
}

void fs_inode_attrs_changed(struct fs_inode *in)
{
	__atomic_add_fetch(&in->attr_changes, 1, __ATOMIC_RELEASE);
}

bool fs_inode_defer_attrs(struct fs *fs, struct fs_inode *in, const struct meta_setattr *set,
			  const struct meta_attr *read, uint64_t changes)
{
	struct meta_attr stored = {0};

	g_mutex_lock(&in->lock);
	bool defer = in->changed && !in->error && !(set->mask & META_SET_SIZE);

	if (defer && (set->mask & (META_SET_MODE | META_SET_UID | META_SET_GID))) {
		/* The caller's read is the stored state if no change of this
		 * mount's came after the count it took before reading. */
		if (read && fs_inode_attr_changes(in) == changes) {
			stored = *read;
		} else {
			struct meta *m = fs_meta_take(fs);

			defer = meta_getattr(m, in->ino, &stored) == 0;
			fs_meta_give(fs, m);
		}
	}
	if (defer) {
		g_mutex_lock(&in->attr_lock);
		pending_merge(&in->pending, set, &stored);
		g_mutex_unlock(&in->attr_lock);
	}
	g_mutex_unlock(&in->lock);
	return defer;
}

void fs_inode_attrs(struct fs_inode *in, struct meta_attr *a)
{
	g_mutex_lock(&in->attr_lock);
	meta_setattr_apply(&in->pending, 0, a); /* no size: the time is not used */
	g_mutex_unlock(&in->attr_lock);
}

/* Content changed after an explicit mtime: the commit's stamp wins, as a
 * write after utimensat(2) would. */
static void content_changed(struct fs_inode *in)
{
	in->changed = true;
	if (in->pending.mask & META_SET_MTIME) {
		g_mutex_lock(&in->attr_lock);
		in->pending.mask &= ~META_SET_MTIME;
		g_mutex_unlock(&in->attr_lock);
	}
}

static void pending_committed(struct fs_inode *in)
{
	g_mutex_lock(&in->attr_lock);
	memset(&in->pending, 0, sizeof(in->pending));
	g_mutex_unlock(&in->attr_lock);
	fs_inode_attrs_changed(in);
}

int fs_inode_open(struct fs *fs, uint64_t ino, bool empty, struct fs_inode **out)
{
	g_mutex_lock(&fs->lock);
	struct fs_inode *in = fs_inode_find(fs, ino);
	bool fresh = !in;

	if (fresh) {
		in = inode_new(ino);
		g_hash_table_insert(fs->inodes, &in->ino, in);
	}
	in->opens++;
	/* Loading under the inode lock, taken before fs->lock is dropped,
	 * keeps a second opener from seeing a half-loaded state. */
	g_mutex_lock(&in->lock);
	g_mutex_unlock(&fs->lock);
	int rc = fresh && !empty ? load(fs, in) : 0;

	if (fresh && empty)
		__atomic_store_n(&in->loaded, true, __ATOMIC_RELEASE);
	g_mutex_unlock(&in->lock);
	if (rc) {
		fs_inode_release(fs, in);
		return rc;
	}
	*out = in;
	return 0;
}

int fs_inode_flush_if_open(struct fs *fs, uint64_t ino)
{
	struct fs_inode *in = fs_inode_hold(fs, ino);

	if (!in)
		return 0;
	int rc = fs_inode_flush(fs, in);
	int rc2 = fs_inode_release(fs, in);
	return rc ? rc : rc2;
}

bool fs_inode_size(struct fs_inode *in, uint64_t *size)
{
	/* A state is in the table while it loads: its size is 0 until then,
	 * and reported to the kernel it would stick in the attribute cache. */
	if (!__atomic_load_n(&in->loaded, __ATOMIC_ACQUIRE))
		return false;
	*size = __atomic_load_n(&in->size, __ATOMIC_RELAXED);
	return true;
}

/* ---- uploads ---- */

static void set_part(struct fs_inode *in, const struct meta_part *p)
{
	if (p->index >= in->parts->len) {
		/* Truncated meanwhile: never part of the file. */
		g_array_append_val(in->superseded, *p);
		return;
	}
	if (g_array_index(in->fresh, bool, p->index))
		g_array_append_val(in->superseded, *part_at(in, p->index));
	*part_at(in, p->index) = *p;
	g_array_index(in->fresh, bool, p->index) = true;
}

/* Waits for the oldest upload and puts its part in place. */
static int upload_finish_oldest(struct fs *fs, struct fs_inode *in)
{
	struct fs_upload *u = g_queue_pop_head(&in->uploads);
	struct meta_part *parts = NULL;
	unsigned n = 0;
	int rc = store_writer_finish(u->w, &parts, &n);

	(void)fs;
	store_writer_free(u->w);
	if (rc == 0 && n == 1)
		set_part(in, &parts[0]);
	else if (rc == 0)
		rc = -EIO;
	if (rc && !in->error) {
		g_warning("inode %" G_GUINT64_FORMAT " part %u: upload failed: %s", in->ino, u->index,
			  common_strerror(rc));
		in->error = -EIO;
	}
	g_free(parts);
	g_free(u);
	reader_stale(in);
	return rc ? -EIO : 0;
}

static bool upload_pending(struct fs_inode *in, uint64_t i)
{
	for (GList *l = in->uploads.head; l; l = l->next)
		if (((struct fs_upload *)l->data)->index == i)
			return true;
	return false;
}

/* Waits for the uploads up to the one of part i, so that parts[i] is its
 * latest stored version (at most one upload per part is in flight: a part
 * is dirtied again only through dirty_get, which calls this first). */
static int uploads_finish_through(struct fs *fs, struct fs_inode *in, uint64_t i)
{
	int rc = 0;

	while (upload_pending(in, i)) {
		int r = upload_finish_oldest(fs, in);

		rc = rc ? rc : r;
	}
	return rc;
}

static int uploads_finish_all(struct fs *fs, struct fs_inode *in)
{
	int rc = 0;

	while (!g_queue_is_empty(&in->uploads)) {
		int r = upload_finish_oldest(fs, in);

		rc = rc ? rc : r;
	}
	return rc;
}

/* Starts storing dirty part i as a new part; the dirty copy goes. */
static int upload(struct fs *fs, struct fs_inode *in, uint64_t i)
{
	struct fs_dirty *d = g_hash_table_lookup(in->dirty, GUINT_TO_POINTER(i));
	struct fs_upload *u = g_new0(struct fs_upload, 1);
	uint64_t len = part_len(fs, in, i);
	int rc;

	while (g_queue_get_length(&in->uploads) >= MAX_UPLOADS)
		upload_finish_oldest(fs, in);
	u->index = (uint32_t)i;
	store_object_id_new(u->oid);
	rc = store_writer_new(fs->store, u->oid, (uint32_t)i, &u->w);
	if (rc == 0 && (rc = dirty_reserve(fs, d, len)) == 0)
		dirty_zero_to(d, len);
	if (rc == 0 && d->cap == fs->part_size) {
		/* A whole part's buffer goes to the writer as it is: no copy. */
		rc = store_writer_give(u->w, d->buf, len);
		d->buf = NULL;
	} else if (rc == 0) {
		rc = store_writer_write(u->w, d->buf, len);
	}
	g_hash_table_remove(in->dirty, GUINT_TO_POINTER(i));
	if (rc) {
		store_writer_free(u->w);
		g_free(u);
		if (!in->error)
			in->error = -EIO;
		g_warning("inode %" G_GUINT64_FORMAT " part %" G_GUINT64_FORMAT ": upload failed: %s",
			  in->ino, i, common_strerror(rc));
		return -EIO;
	}
	g_queue_push_tail(&in->uploads, u);
	return 0;
}

static int upload_oldest_dirty(struct fs *fs, struct fs_inode *in, uint64_t keep)
{
	GHashTableIter it;
	gpointer key, val;
	uint64_t oldest = UINT64_MAX, seq = UINT64_MAX;

	g_hash_table_iter_init(&it, in->dirty);
	while (g_hash_table_iter_next(&it, &key, &val))
		if (GPOINTER_TO_UINT(key) != keep && ((struct fs_dirty *)val)->seq < seq) {
			seq = ((struct fs_dirty *)val)->seq;
			oldest = GPOINTER_TO_UINT(key);
		}
	return oldest == UINT64_MAX ? 0 : upload(fs, in, oldest);
}

/* ---- dirty parts ---- */

/* The dirty copy of part i, made (copy-on-write) if needed; with
 * overwrite, the caller is about to write all of it and nothing is read. */
static int dirty_get(struct fs *fs, struct fs_inode *in, uint64_t i, bool overwrite,
		     struct fs_dirty **out)
{
	struct fs_dirty *d = g_hash_table_lookup(in->dirty, GUINT_TO_POINTER(i));
	int rc = 0;

	if (d) {
		*out = d;
		return 0;
	}
	if ((rc = uploads_finish_through(fs, in, i)))
		return rc;
	d = g_new0(struct fs_dirty, 1);
	/* A hole, or a part about to be overwritten, starts with no data:
	 * past its data a dirty part reads as zeros. */
	if (i < in->parts->len && !overwrite && part_at(in, i)->k) {
		d->len = part_at(in, i)->length;
		if (!(rc = dirty_reserve(fs, d, d->len)))
			rc = store_part_read(fs->store, part_at(in, i), 0, d->len, d->buf);
	}
	if (rc) {
		dirty_free(d);
		g_warning("inode %" G_GUINT64_FORMAT " part %" G_GUINT64_FORMAT ": cannot read it to change it: %s",
			  in->ino, i, common_strerror(rc));
		return -EIO;
	}
	d->seq = ++in->seq;
	g_hash_table_insert(in->dirty, GUINT_TO_POINTER(i), d);
	reader_stale(in);
	if (g_hash_table_size(in->dirty) > MAX_DIRTY)
		rc = upload_oldest_dirty(fs, in, i);
	*out = d;
	return rc;
}

/* Changes the size; parts whose length must change are made dirty (a
 * short last part that is no longer last) or cut. */
static int set_size(struct fs *fs, struct fs_inode *in, uint64_t size)
{
	uint64_t old_n = in->parts->len, new_n = nparts_for(fs, size);
	struct fs_dirty *d;
	int rc = 0;

	if (size == in->size)
		return 0;
	if (size < in->size && (rc = uploads_finish_all(fs, in)))
		return rc;
	if (size > in->size && old_n && part_at(in, old_n - 1)->k &&
	    part_at(in, old_n - 1)->length < MIN(fs->part_size, size - (old_n - 1) * fs->part_size) &&
	    (rc = dirty_get(fs, in, old_n - 1, false, &d)))
		return rc;
	for (uint64_t i = new_n; i < old_n; i++) {
		if (g_array_index(in->fresh, bool, i))
			g_array_append_val(in->superseded, *part_at(in, i));
		g_hash_table_remove(in->dirty, GUINT_TO_POINTER(i));
	}
	g_array_set_size(in->parts, MIN(old_n, new_n));
	g_array_set_size(in->fresh, MIN(old_n, new_n));
	uint64_t old_size = in->size;
	__atomic_store_n(&in->size, size, __ATOMIC_RELAXED);
	for (uint64_t i = old_n; i < new_n; i++)
		hole_at(in, i, part_len(fs, in, i));
	if (new_n && new_n <= old_n && size < old_size) {
		uint64_t last = new_n - 1, len = part_len(fs, in, last);

		if (part_at(in, last)->k && (rc = dirty_get(fs, in, last, false, &d)))
			return rc;
		if ((d = g_hash_table_lookup(in->dirty, GUINT_TO_POINTER(last))))
			d->len = MIN(d->len, len); /* what was past it reads as zeros again */
		if (!part_at(in, last)->k)
			part_at(in, last)->length = len;
	}
	for (uint64_t i = old_n ? old_n - 1 : 0; i < new_n; i++)
		if (!part_at(in, i)->k) /* holes take the length their place needs */
			part_at(in, i)->length = part_len(fs, in, i);
	content_changed(in);
	reader_stale(in);
	return 0;
}

static bool revoked(struct fs_inode *in)
{
	return __atomic_load_n(&in->revoked, __ATOMIC_RELAXED);
}

unsigned fs_inodes_revoke(struct fs *fs)
{
	GHashTableIter it;
	gpointer in;

	g_mutex_lock(&fs->lock);
	unsigned n = g_hash_table_size(fs->inodes);
	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &in))
		__atomic_store_n(&((struct fs_inode *)in)->revoked, true, __ATOMIC_RELAXED);
	g_mutex_unlock(&fs->lock);
	return n;
}

ssize_t fs_inode_write(struct fs *fs, struct fs_inode *in, uint64_t off, const void *buf,
		       size_t len)
{
	const uint8_t *src = buf;
	size_t done = 0;
	int rc = 0;

	if (revoked(in))
		return -EIO;

	g_mutex_lock(&in->lock);
	if (off + len > in->size)
		rc = set_size(fs, in, off + len);
	while (rc == 0 && done < len) {
		uint64_t i = (off + done) / fs->part_size, a = (off + done) % fs->part_size;
		uint64_t n = MIN(len - done, fs->part_size - a);
		bool whole = a == 0 && n == part_len(fs, in, i);
		struct fs_dirty *d;

		if ((rc = dirty_get(fs, in, i, whole, &d)) || (rc = dirty_reserve(fs, d, a + n)))
			break;
		dirty_zero_to(d, a);
		memcpy(d->buf + a, src + done, n);
		d->len = MAX(d->len, a + n);
		done += n;
		if (a + n == fs->part_size)
			rc = upload(fs, in, i); /* written to its end: stream it */
	}
	content_changed(in);
	g_mutex_unlock(&in->lock);
	return done ? (ssize_t)done : rc;
}

int fs_inode_truncate(struct fs *fs, struct fs_inode *in, uint64_t size)
{
	if (revoked(in))
		return -EIO;
	g_mutex_lock(&in->lock);
	int rc = set_size(fs, in, size);
	g_mutex_unlock(&in->lock);
	return rc;
}

/* ---- reads ---- */

static int read_part(struct fs *fs, struct fs_inode *in, uint64_t i, uint64_t a, uint64_t b,
		     uint8_t *out)
{
	struct fs_dirty *d = g_hash_table_lookup(in->dirty, GUINT_TO_POINTER(i));

	if (d) {
		dirty_copy_out(d, a, b, out);
		return 0;
	}
	int rc = uploads_finish_through(fs, in, i);

	if (rc)
		return rc;
	return store_part_read(fs->store, part_at(in, i), a, b, out) ? -EIO : 0;
}

static bool quiet(struct fs_inode *in)
{
	return g_hash_table_size(in->dirty) == 0 && g_queue_is_empty(&in->uploads);
}

ssize_t fs_inode_read(struct fs *fs, struct fs_inode *in, uint64_t off, void *buf, size_t len)
{
	ssize_t rc = 0;

	if (revoked(in))
		return -EIO;
	g_mutex_lock(&in->lock);
	if (off >= in->size) {
		g_mutex_unlock(&in->lock);
		return 0;
	}
	len = (size_t)MIN((uint64_t)len, in->size - off);
	if (quiet(in)) {
		if (!in->reader)
			rc = store_reader_new(fs->store, (struct meta_part *)in->parts->data,
					      in->parts->len, &in->reader);
		rc = rc ? rc : store_reader_read(in->reader, off, buf, len);
		g_mutex_unlock(&in->lock);
		return rc < 0 ? -EIO : rc;
	}
	for (size_t done = 0; rc == 0 && done < len;) {
		uint64_t i = (off + done) / fs->part_size, a = (off + done) % fs->part_size;
		uint64_t n = MIN(len - done, fs->part_size - a);

		rc = read_part(fs, in, i, a, a + n, (uint8_t *)buf + done);
		done += n;
	}
	g_mutex_unlock(&in->lock);
	return rc ? rc : (ssize_t)len;
}

/* ---- flush ---- */

static int commit(struct fs *fs, struct fs_inode *in)
{
	struct meta *m = fs_meta_take(fs);
	uint8_t oid[16] = {0};
	struct meta_setattr attrs = in->pending; /* stable under lock */
	int rc = meta_commit_manifest(m, in->ino, oid, in->size, (struct meta_part *)in->parts->data,
				      in->parts->len, &attrs, true);

	fs_meta_give(fs, m);
	if (rc) {
		g_warning("inode %" G_GUINT64_FORMAT ": manifest commit failed: %s", in->ino,
			  g_strerror(-rc));
		return -EIO;
	}
	if (in->superseded->len)
		store_parts_delete(fs->store, (struct meta_part *)in->superseded->data,
				   in->superseded->len);
	g_array_set_size(in->superseded, 0);
	for (guint i = 0; i < in->fresh->len; i++)
		g_array_index(in->fresh, bool, i) = false;
	in->changed = false;
	pending_committed(in);
	return 0;
}

/* Parts stored since the last commit become garbage of a commit that
 * no longer names them; deleted once it is done. */
static void fresh_to_superseded(struct fs_inode *in)
{
	for (guint i = 0; i < in->parts->len; i++)
		if (g_array_index(in->fresh, bool, i)) {
			g_array_append_val(in->superseded, *part_at(in, i));
			g_array_index(in->fresh, bool, i) = false;
		}
}

/* The file is one part of at most META_INLINE_MAX bytes whose content is
 * in memory (or a hole, or nothing): it can be committed inline. */
static bool inline_fits(const struct fs *fs, struct fs_inode *in)
{
	if (in->size > META_INLINE_MAX || in->parts->len > 1 || fs->part_size < in->size)
		return false;
	return in->parts->len == 0 || !part_at(in, 0)->k ||
	       g_hash_table_contains(in->dirty, GUINT_TO_POINTER(0));
}

/* Commits the content as inline data: no upload, one durable transaction. */
static int commit_inline(struct fs *fs, struct fs_inode *in)
{
	struct fs_dirty *d = NULL;
	int rc = in->size ? dirty_get(fs, in, 0, true, &d) : 0;

	if (rc == 0 && d && (rc = dirty_reserve(fs, d, in->size)) == 0)
		dirty_zero_to(d, in->size);
	if (rc == 0) {
		struct meta *m = fs_meta_take(fs);
		struct meta_setattr attrs = in->pending; /* stable under lock */

		rc = meta_commit_inline(m, in->ino, d ? d->buf : NULL, in->size, &attrs, true);
		fs_meta_give(fs, m);
	}
	if (rc) {
		g_warning("inode %" G_GUINT64_FORMAT ": inline commit failed: %s", in->ino,
			  g_strerror(-rc));
		return -EIO;
	}
	fresh_to_superseded(in);
	if (in->parts->len) /* the content is now the dirty copy, kept in memory */
		hole_at(in, 0, in->size);
	if (in->superseded->len)
		store_parts_delete(fs->store, (struct meta_part *)in->superseded->data,
				   in->superseded->len);
	g_array_set_size(in->superseded, 0);
	in->changed = false;
	pending_committed(in);
	return 0;
}

static int flush_locked(struct fs *fs, struct fs_inode *in)
{
	if (revoked(in)) /* what it holds is not to be committed */
		return -EIO;
	/* Dirty parts and uploads both imply a change: with none, there is
	 * nothing to store (a dirty part 0 may be an inline file's content). */
	if (!in->changed)
		return in->error;
	if (!in->error && in->size <= META_INLINE_MAX) {
		/* An upload in flight decides where part 0's bytes are. */
		uploads_finish_all(fs, in);
		if (!in->error && inline_fits(fs, in)) {
			if (commit_inline(fs, in))
				in->error = -EIO;
			return in->error;
		}
	}
	GList *keys = g_hash_table_get_keys(in->dirty);

	for (GList *k = keys; k; k = k->next)
		upload(fs, in, GPOINTER_TO_UINT(k->data));
	g_list_free(keys);
	uploads_finish_all(fs, in);
	if (!in->error && in->changed && commit(fs, in))
		in->error = -EIO;
	/* A failed upload poisons the open state: committing later would
	 * publish the file without that part's bytes. */
	return in->error;
}

int fs_inode_flush(struct fs *fs, struct fs_inode *in)
{
	g_mutex_lock(&in->lock);
	int rc = flush_locked(fs, in);
	g_mutex_unlock(&in->lock);
	return rc;
}

/* Parts stored since the last commit that no manifest will name. */
static void drop_uncommitted(struct fs *fs, struct fs_inode *in)
{
	for (guint i = 0; i < in->parts->len; i++)
		if (g_array_index(in->fresh, bool, i))
			g_array_append_val(in->superseded, *part_at(in, i));
	if (in->superseded->len)
		store_parts_delete(fs->store, (struct meta_part *)in->superseded->data,
				   in->superseded->len);
}

void fs_inode_close_all(struct fs *fs)
{
	GList *open = g_hash_table_get_values(fs->inodes);

	g_hash_table_remove_all(fs->inodes);
	for (GList *l = open; l; l = l->next) {
		struct fs_inode *in = l->data;

		if (fs_inode_flush(fs, in))
			g_warning("inode %" G_GUINT64_FORMAT ": data not stored at unmount",
				  in->ino);
		if (in->changed)
			drop_uncommitted(fs, in);
		inode_free(in);
	}
	g_list_free(open);
}

int fs_inode_release(struct fs *fs, struct fs_inode *in)
{
	int rc = 0;

	g_mutex_lock(&fs->lock);
	bool last = in->opens == 1;
	g_mutex_unlock(&fs->lock);
	/* Flushed before it leaves the table: an open meanwhile finds the
	 * state rather than loading a manifest about to be replaced. */
	if (last)
		rc = fs_inode_flush(fs, in);
	g_mutex_lock(&fs->lock);
	last = --in->opens == 0;
	if (last)
		g_hash_table_remove(fs->inodes, &in->ino);
	g_mutex_unlock(&fs->lock);
	if (!last)
		return rc;
	if (in->changed)
		drop_uncommitted(fs, in);
	inode_free(in);
	return rc;
}
