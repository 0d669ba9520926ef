/*
 * meta_manifest.c - a regular file's content in the metadata engine
 * (meta.h): its manifest (parts on the nodes) or its inline data (in the
 * database), and the garbage table of shards to delete from the nodes.
 *
 * A content commit is one transaction (durable: fsynced before it
 * returns): the file's parts that the new content does not keep go to
 * the garbage table, then the new parts or the inline row are written;
 * a file has inline data or parts, never both. Attribute changes made
 * while the content was written are applied in the same transaction
 * (meta_setattr_locked, meta_namespace.c). Lengths and node lists read
 * from the database are checked, never trusted: a manifest or inline row
 * that does not parse is -EUCLEAN, a garbage entry that does not is
 * skipped. Calls meta_namespace.c and the core; nothing calls back.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

static void nodes_pack(const struct meta_part *p, uint8_t *out)
{
	for (unsigned i = 0; i < (unsigned)p->k + p->m; i++) {
		out[2 * i] = (uint8_t)p->nodes[i];
		out[2 * i + 1] = (uint8_t)(p->nodes[i] >> 8);
	}
}

/* Fills p's code and nodes from columns k, m, nodes; false if inconsistent. */
static bool nodes_unpack(struct meta_stmt *s, int col_k, struct meta_part *p)
{
	int k = meta_col_int(s, col_k), mm = meta_col_int(s, col_k + 1);
	size_t n;
	const uint8_t *b = meta_col_blob(s, col_k + 2, &n);

	if (k == 0 && mm == 0 && n == 0) /* a hole */
		return p->k = p->m = 0, true;
	if (k < 1 || mm < 0 || k + mm > 64 || n != 2 * (size_t)(k + mm))
		return false;
	p->k = (uint8_t)k;
	p->m = (uint8_t)mm;
	for (int i = 0; i < k + mm; i++)
		p->nodes[i] = (uint16_t)(b[2 * i] | b[2 * i + 1] << 8);
	return true;
}

static bool oid_zero(const uint8_t oid[16])
{
	static const uint8_t zero[16];

	return memcmp(oid, zero, 16) == 0;
}

/* Missing shards are shards of the part, and fewer than all of them. */
static bool missing_fits(const struct meta_part *p)
{
	unsigned n = p->k + p->m;
	uint64_t all = n == 64 ? UINT64_MAX : (UINT64_C(1) << n) - 1;

	return (p->missing & ~all) == 0 && (n == 0 || p->missing != all);
}

/* A part keeps its own object id; a part without one takes the file's. */
static int insert_part(struct meta *m, uint64_t ino, const uint8_t file_oid[16],
		       const struct meta_part *p)
{
	const uint8_t *object_id = oid_zero(p->object_id) ? file_oid : p->object_id;
	uint8_t nodes[128];
	struct meta_stmt *s;
	int rc;

	if ((p->k < 1 && (p->k || p->m)) || p->k + p->m > 64 || !missing_fits(p))
		return -EINVAL;
	nodes_pack(p, nodes);
	s = meta_stmt(m, META_Q_INSERT_PART);
	meta_bind_int(s, 1, (int64_t)ino);
	meta_bind_int(s, 2, p->index);
	meta_bind_int(s, 3, (int64_t)p->length);
	meta_bind_blob(s, 4, p->checksum, 16);
	meta_bind_int(s, 5, p->k);
	meta_bind_int(s, 6, p->m);
	meta_bind_blob(s, 7, nodes, 2 * (p->k + p->m)); /* empty for a hole */
	meta_bind_blob(s, 8, object_id, 16);
	meta_bind_int(s, 9, (int64_t)p->missing);
	rc = meta_sql_errno(m, meta_step(s));
	meta_reset(s);
	if (rc == -EEXIST) /* the part's index twice */
		rc = -EINVAL;
	else if (rc < 0)
		rc = -EIO;
	return rc;
}

static bool part_kept(const uint8_t oid[16], uint32_t idx, const uint8_t file_oid[16],
		      const struct meta_part *parts, unsigned nparts)
{
	for (unsigned i = 0; i < nparts; i++) {
		const uint8_t *kept = oid_zero(parts[i].object_id) ? file_oid : parts[i].object_id;

		if (parts[i].index == idx && parts[i].k && !memcmp(kept, oid, 16))
			return true;
	}
	return false;
}

/* The stored parts of ino that the new list does not keep go to the
 * garbage table; parts kept (same object id and index) stay where they
 * are. Holes have nothing to collect. *rows: the file's rows of parts,
 * holes included. */
static int replaced_parts_to_garbage(struct meta *m, uint64_t ino, const uint8_t file_oid[16],
				     const struct meta_part *parts, unsigned nparts,
				     unsigned *rows)
{
	struct meta_stmt *sel = meta_stmt(m, META_Q_FILE_PARTS), *ins = meta_stmt(m, META_Q_GARBAGE_ADD);
	int rc = 0;

	*rows = 0;
	meta_bind_int(sel, 1, (int64_t)ino);
	while (rc == 0 && meta_step(sel) == META_ROW) {
		uint8_t oid[16];
		size_t n;
		const void *nodes;

		++*rows;
		if (meta_col_int(sel, 3) == 0 || /* a hole */
		    (meta_col_16(sel, 0, oid) &&
		     part_kept(oid, (uint32_t)meta_col_int(sel, 1), file_oid, parts, nparts)))
			continue;
		meta_reset(ins);
		meta_bind_blob(ins, 1, oid, 16);
		for (int c = 1; c < 5; c++)
			meta_bind_int(ins, c + 1, meta_col_int(sel, c));
		nodes = meta_col_blob(sel, 5, &n);
		meta_bind_blob(ins, 6, nodes, n);
		rc = meta_step(ins) == META_DONE ? 0 : -EIO;
	}
	meta_reset(sel);
	meta_reset(ins);
	return rc;
}

static int set_manifest(struct meta *m, uint64_t ino, const uint8_t object_id[16], uint64_t size)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_SET_MANIFEST);

	meta_bind_int(s, 1, (int64_t)ino);
	meta_bind_int(s, 2, (int64_t)size);
	meta_bind_blob(s, 3, object_id, 16);
	meta_bind_int(s, 4, meta_now_ns());
	return meta_run_done(s);
}

/* The common start of a content commit, in its transaction: ino is a
 * regular file, and its parts that the new content (parts) does not name
 * go to the garbage table. */
static int content_replaced(struct meta *m, uint64_t ino, const uint8_t object_id[16],
			    const struct meta_part *parts, unsigned nparts, struct meta_attr *a)
{
	unsigned rows = 0;
	int rc = meta_getattr_locked(m, ino, a);

	if (rc == 0 && !S_ISREG(a->mode))
		rc = S_ISDIR(a->mode) ? -EISDIR : -EINVAL;
	if (rc == 0)
		rc = replaced_parts_to_garbage(m, ino, object_id, parts, nparts, &rows);
	/* a new file's first commit has none: a round trip saved */
	return rc || rows == 0 ? rc : meta_by_ino(m, META_Q_DELETE_PARTS, ino);
}

/* The common end of a content commit: the attributes. */
static int content_committed(struct meta *m, uint64_t ino, const struct meta_setattr *attrs,
			     int rc)
{
	if (rc == 0 && attrs && attrs->mask)
		rc = meta_setattr_locked(m, ino, attrs, NULL);
	return rc;
}

static int commit_manifest_locked(struct meta *m, uint64_t ino, const uint8_t object_id[16],
				  uint64_t size, const struct meta_part *parts, unsigned nparts,
				  const struct meta_setattr *attrs)
{
	struct meta_attr a;
	int rc = content_replaced(m, ino, object_id, parts, nparts, &a);

	for (unsigned i = 0; rc == 0 && i < nparts; i++)
		rc = insert_part(m, ino, object_id, &parts[i]);
	if (rc == 0)
		rc = meta_by_ino(m, META_Q_DELETE_INLINE, ino);
	if (rc == 0)
		rc = set_manifest(m, ino, object_id, size);
	return content_committed(m, ino, attrs, rc);
}

int meta_commit_manifest(struct meta *m, uint64_t ino, const uint8_t object_id[16],
			 uint64_t size, const struct meta_part *parts, unsigned nparts,
			 const struct meta_setattr *attrs, bool durable)
{
	struct meta_tx t = durable ? META_TX_DURABLE(m) : META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc))
		rc = commit_manifest_locked(m, ino, object_id, size, parts, nparts, attrs);
	return rc;
}

static int set_inline_size(struct meta *m, uint64_t ino, size_t len, int64_t now)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_SET_INLINE_SIZE);

	meta_bind_int(s, 1, (int64_t)ino);
	meta_bind_int(s, 2, (int64_t)len);
	meta_bind_int(s, 3, now);
	return meta_run_done(s);
}

/* The content's row, then the new size and times and the attributes
 * that come with the content (a: ino's attributes before). When the
 * attributes always write the row (not a size, not only a suid/sgid
 * clear, which may change nothing), size, times and attributes are one
 * UPDATE: a round trip less on every small file's close. */
static int set_inline(struct meta *m, uint64_t ino, const void *data, size_t len,
		      const struct meta_setattr *attrs, struct meta_attr *a)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_INLINE_SET);
	bool fold = attrs && attrs->mask && attrs->mask != META_SET_KILL_SUIDGID &&
		    !(attrs->mask & META_SET_SIZE);
	int64_t now = meta_now_ns();
	int rc;

	if (len == 0) { /* an empty file keeps no row */
		rc = meta_by_ino(m, META_Q_DELETE_INLINE, ino);
	} else {
		meta_bind_int(s, 1, (int64_t)ino);
		meta_bind_blob(s, 2, data, len);
		rc = meta_run_done(s);
	}
	if (rc == 0 && !fold)
		return content_committed(m, ino, attrs, set_inline_size(m, ino, len, now));
	a->size = len;
	a->mtime_ns = a->ctime_ns = now;
	return rc ? rc : meta_setattr_from(m, ino, attrs, a, NULL);
}

int meta_commit_inline(struct meta *m, uint64_t ino, const void *data, size_t len,
		       const struct meta_setattr *attrs, bool durable)
{
	static const uint8_t no_oid[16];
	struct meta_tx t = durable ? META_TX_DURABLE(m) : META_TX(m);
	int rc = 0;

	if (len > META_INLINE_MAX)
		return -EFBIG;
	while (meta_tx_loop(&t, &rc)) {
		struct meta_attr a;

		rc = content_replaced(m, ino, no_oid, NULL, 0, &a);
		if (rc == 0)
			rc = set_inline(m, ino, data, len, attrs, &a);
	}
	return rc;
}

int meta_get_inline(struct meta *m, uint64_t ino, void **data, size_t *len)
{
	struct meta_stmt *s;
	int rc;

	g_mutex_lock(&m->lock);
	s = meta_stmt(m, META_Q_INLINE_GET);
	meta_bind_int(s, 1, (int64_t)ino);
	if (meta_step(s) == META_ROW) {
		size_t n;
		const void *p = meta_col_blob(s, 0, &n);

		/* a length read from disk: never trusted past the limit */
		rc = n > META_INLINE_MAX ? -EUCLEAN : 0;
		if (rc == 0) {
			*data = n ? g_memdup2(p, n) : NULL;
			*len = n;
		}
	} else {
		rc = meta_getattr_locked(m, ino, NULL) ?: -ENODATA;
	}
	meta_reset(s);
	g_mutex_unlock(&m->lock);
	return rc;
}

/* The object id of regular file ino; -ENOENT, or -EINVAL for other types. */
static int object_id_of(struct meta *m, uint64_t ino, uint8_t object_id[16])
{
	struct meta_stmt *s = meta_stmt(m, META_Q_OBJECT_ID);
	int rc;

	meta_bind_int(s, 1, (int64_t)ino);
	rc = meta_step(s) == META_ROW ? 0 : -ENOENT;
	if (rc == 0 && !meta_col_16(s, 0, object_id))
		rc = -EINVAL; /* not a regular file */
	meta_reset(s);
	return rc;
}

/* A part from the columns idx, length, checksum, k, m, nodes, object_id,
 * missing starting at column c; -EUCLEAN if the row is inconsistent. */
static int part_from_row(struct meta_stmt *s, int c, struct meta_part *p)
{
	*p = (struct meta_part){0};
	p->index = (uint32_t)meta_col_int(s, c);
	p->length = (uint64_t)meta_col_int(s, c + 1);
	if (!meta_col_16(s, c + 2, p->checksum) || !nodes_unpack(s, c + 3, p) ||
	    !meta_col_16(s, c + 6, p->object_id))
		return -EUCLEAN;
	p->missing = (uint64_t)meta_col_int(s, c + 7);
	return 0;
}

static int parts_of(struct meta *m, uint64_t ino, GArray *list)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_PARTS);
	int rc = 0;

	meta_bind_int(s, 1, (int64_t)ino);
	while (rc == 0 && meta_step(s) == META_ROW) {
		struct meta_part p;

		rc = part_from_row(s, 0, &p);
		g_array_append_val(list, p);
	}
	meta_reset(s);
	return rc;
}

static int parts_page(struct meta *m, enum meta_q q, uint64_t after_ino, uint32_t after_index,
		      unsigned max, struct meta_degraded **items, unsigned *n)
{
	GArray *list = g_array_new(FALSE, TRUE, sizeof(struct meta_degraded));
	struct meta_stmt *s;
	int rc = 0;

	g_mutex_lock(&m->lock);
	s = meta_stmt(m, q);
	meta_bind_int(s, 1, (int64_t)after_ino);
	meta_bind_int(s, 2, after_index);
	meta_bind_int(s, 3, max);
	while (rc == 0 && meta_step(s) == META_ROW) {
		struct meta_degraded d = {.ino = (uint64_t)meta_col_int(s, 0)};

		rc = part_from_row(s, 1, &d.part);
		g_array_append_val(list, d);
	}
	meta_reset(s);
	g_mutex_unlock(&m->lock);
	*n = rc == 0 ? list->len : 0;
	*items = (struct meta_degraded *)g_array_free(list, rc != 0);
	return rc;
}

int meta_degraded_list(struct meta *m, uint64_t after_ino, uint32_t after_index, unsigned max,
		       struct meta_degraded **items, unsigned *n)
{
	return parts_page(m, META_Q_DEGRADED_PARTS, after_ino, after_index, max, items, n);
}

int meta_parts_list(struct meta *m, uint64_t after_ino, uint32_t after_index, unsigned max,
		    struct meta_degraded **items, unsigned *n)
{
	return parts_page(m, META_Q_PARTS_PAGE, after_ino, after_index, max, items, n);
}

/* The count and the sum of lengths statement q answers. */
static int parts_count(struct meta *m, enum meta_q q, uint64_t *parts, uint64_t *bytes)
{
	int rc;

	g_mutex_lock(&m->lock);
	struct meta_stmt *s = meta_stmt(m, q);
	rc = meta_step(s) == META_ROW ? 0 : -EIO;
	*parts = rc ? 0 : (uint64_t)meta_col_int(s, 0);
	*bytes = rc ? 0 : (uint64_t)meta_col_int(s, 1);
	meta_reset(s);
	g_mutex_unlock(&m->lock);
	return rc;
}

int meta_degraded_count(struct meta *m, uint64_t *parts, uint64_t *bytes)
{
	return parts_count(m, META_Q_DEGRADED_COUNT, parts, bytes);
}

int meta_parts_count(struct meta *m, uint64_t *parts, uint64_t *bytes)
{
	return parts_count(m, META_Q_PARTS_COUNT, parts, bytes);
}

int meta_part_relocate(struct meta *m, uint64_t ino, const struct meta_part *old,
		       const struct meta_part *now)
{
	struct meta_tx t = META_TX_DURABLE(m);
	uint8_t old_nodes[128], new_nodes[128];
	size_t n = 2 * (size_t)(old->k + old->m);
	int rc = 0;

	if (now->k != old->k || now->m != old->m || now->index != old->index || !missing_fits(now))
		return -EINVAL;
	nodes_pack(old, old_nodes);
	nodes_pack(now, new_nodes);
	while (meta_tx_loop(&t, &rc)) {
		struct meta_stmt *s = meta_stmt(m, META_Q_RELOCATE_PART);

		meta_bind_int(s, 1, (int64_t)ino);
		meta_bind_int(s, 2, old->index);
		meta_bind_blob(s, 3, old->object_id, 16);
		meta_bind_blob(s, 4, old_nodes, n);
		meta_bind_blob(s, 5, new_nodes, n);
		meta_bind_int(s, 6, (int64_t)now->missing);
		meta_bind_int(s, 7, (int64_t)old->missing);
		rc = meta_run_done(s);
		if (rc == 0 && m->changes != 1)
			rc = -ESTALE;
	}
	return rc;
}

int meta_get_manifest(struct meta *m, uint64_t ino, uint8_t object_id[16],
		      struct meta_part **parts, unsigned *nparts)
{
	GArray *list = g_array_new(FALSE, TRUE, sizeof(struct meta_part));
	int rc;

	g_mutex_lock(&m->lock);
	rc = object_id_of(m, ino, object_id);
	if (rc == 0)
		rc = parts_of(m, ino, list);
	g_mutex_unlock(&m->lock);
	*nparts = rc == 0 ? list->len : 0;
	*parts = rc == 0 ? (struct meta_part *)g_array_free(list, FALSE) : NULL;
	if (rc < 0)
		g_array_free(list, TRUE);
	return rc;
}

int meta_garbage_list(struct meta *m, unsigned max, struct meta_garbage **items, unsigned *n)
{
	GArray *list = g_array_new(FALSE, TRUE, sizeof(struct meta_garbage));
	struct meta_stmt *s;

	g_mutex_lock(&m->lock);
	s = meta_stmt(m, META_Q_GARBAGE_LIST);
	meta_bind_int(s, 1, max);
	while (meta_step(s) == META_ROW) {
		struct meta_garbage g = {0};

		g.id = (uint64_t)meta_col_int(s, 0);
		meta_col_16(s, 1, g.object_id);
		g.part.index = (uint32_t)meta_col_int(s, 2);
		g.part.length = (uint64_t)meta_col_int(s, 3);
		if (nodes_unpack(s, 4, &g.part))
			g_array_append_val(list, g);
	}
	meta_reset(s);
	g_mutex_unlock(&m->lock);
	*n = list->len;
	*items = (struct meta_garbage *)g_array_free(list, FALSE);
	return 0;
}

int meta_garbage_done(struct meta *m, uint64_t id)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc))
		rc = meta_run_ints(m, META_Q_GARBAGE_DONE, (int64_t)id, 0);
	return rc;
}
