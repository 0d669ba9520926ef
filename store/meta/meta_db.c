/*
 * meta_db.c - the metadata engine's database life cycle (URL, schema,
 * migrations), xattrs, manifests, garbage, sessions and open files, and
 * the namespace integrity check. Namespace operations are in meta.c.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"
#include "meta_schema.h"

#include <errno.h>
#include <glib.h>
#include <sqlite3.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One migration step per schema version. */
G_STATIC_ASSERT(G_N_ELEMENTS(meta_migrations) == META_SCHEMA_VERSION);

#define XATTR_NAME_MAX_LEN 255u
#define XATTR_VALUE_MAX (64u << 10)

/* "sqlite:///abs/path" or "sqlite://rel/path": the file path, or NULL. */
static char *sqlite_path(const char *url)
{
	if (!g_str_has_prefix(url, "sqlite://") || !url[9])
		return NULL;
	return g_strdup(url + 9);
}

/*
 * New databases get 2 KiB pages: a create changes 7 pages but only a few
 * hundred bytes of them, and SQLite checksums and copies whole pages into
 * the WAL, so 4 KiB pages cost a create a fifth more CPU. 2 KiB still
 * holds any index cell of a name (at most 255 bytes) without overflow
 * pages, which 1 KiB would not. Existing databases keep their page size.
 */
#define NEW_DB_PAGE_SIZE 2048
/*
 * A commit that brings the WAL to this size checkpoints it (two fsyncs),
 * instead of SQLite's default of 1000 pages: with a create writing 7
 * frames, that default made every 140th create wait for the disk.
 */
#define WAL_CHECKPOINT_BYTES (16 << 20)
#define BUSY_TIMEOUT_MS 10000
/* How long a checkpoint waits for older transactions, holding up writers. */
#define CHECKPOINT_WAIT_MS 200

static int page_size(struct meta *m)
{
	sqlite3_stmt *s;
	int size = 0;

	if (sqlite3_prepare_v2(m->db, "PRAGMA page_size", -1, &s, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(s) == SQLITE_ROW)
		size = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return size;
}

/*
 * Called after every commit of the connection, under m->lock (see
 * sqlite3_wal_hook). SQLite's own policy, a PASSIVE checkpoint after each
 * commit that leaves the WAL over its limit, starves when several
 * connections write without pause: each checkpoint stops short of the
 * frames of a writer already in its next transaction, so the WAL is never
 * all copied and never starts over. It grew to 945 MiB in 40,000 creates
 * by 8 threads, and every commit paid two fsyncs to copy a few frames.
 * Here such a commit runs a RESTART checkpoint, which waits for the
 * transactions on older snapshots, copies everything and lets the next
 * writer start the WAL from its beginning. One that cannot finish in
 * CHECKPOINT_WAIT_MS is tried again only once the WAL has grown by another
 * eighth of the limit, so that commits do not all pay for futile ones. The
 * commit itself has happened whatever the checkpoint's fate: SQLite keeps
 * the WAL authoritative until a checkpoint completes.
 */
static int checkpoint_hook(void *arg, sqlite3 *db, const char *schema, int frames)
{
	struct meta *m = arg;
	int rc;

	if (frames < m->checkpoint_frames ||
	    (m->checkpoint_failed_at && frames >= m->checkpoint_failed_at &&
	     frames < m->checkpoint_failed_at + m->checkpoint_frames / 8))
		return SQLITE_OK;
	sqlite3_busy_timeout(db, CHECKPOINT_WAIT_MS);
	rc = sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	m->checkpoint_failed_at = rc == SQLITE_OK ? 0 : frames;
	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		g_warning("metadata checkpoint failed: %s", sqlite3_errmsg(db));
	return SQLITE_OK;
}

/* The connection's settings; the page size only takes on a new database. */
static int configure(struct meta *m, bool create)
{
	int rc = 0, size;

	if (create)
		rc = meta_exec(m, "PRAGMA page_size = " G_STRINGIFY(NEW_DB_PAGE_SIZE));
	if (rc == 0)
		rc = meta_exec(m, "PRAGMA journal_mode = WAL");
	if (rc == 0)
		rc = meta_exec(m, "PRAGMA synchronous = NORMAL");
	if (rc == 0)
		rc = meta_exec(m, "PRAGMA cache_size = -65536");
	size = rc == 0 ? page_size(m) : 0;
	if (size <= 0)
		return rc < 0 ? rc : -EIO;
	m->checkpoint_frames = WAL_CHECKPOINT_BYTES / size;
	sqlite3_wal_hook(m->db, checkpoint_hook, m);
	return rc;
}

static int open_db(const char *url, bool create, struct meta **out)
{
	char *path = sqlite_path(url);
	struct meta *m;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);

	if (!path)
		return -EINVAL;
	if (!create && access(path, F_OK) != 0) {
		g_free(path);
		return -ENOENT;
	}
	m = g_new0(struct meta, 1);
	g_mutex_init(&m->lock);
	if (sqlite3_open_v2(path, &m->db, flags, meta_vfs_name()) != SQLITE_OK) {
		g_warning("cannot open metadata database %s: %s", path, sqlite3_errmsg(m->db));
		g_free(path);
		meta_close(m);
		return -EIO;
	}
	g_free(path);
	sqlite3_busy_timeout(m->db, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(m->db, 0);
	if (configure(m, create) < 0) {
		meta_close(m);
		return -EIO;
	}
	*out = m;
	return 0;
}

static int read_version(struct meta *m)
{
	sqlite3_stmt *s;
	int v = -1;

	if (sqlite3_prepare_v2(m->db, "SELECT version FROM schema_version", -1, &s, NULL) != SQLITE_OK)
		return -1; /* no schema at all */
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* Runs the migration steps from the database's version to ours, each in
 * its own transaction with the version bump. */
static int migrate(struct meta *m, int from)
{
	int rc = 0;

	for (int v = from; rc == 0 && v < META_SCHEMA_VERSION; v++) {
		char *bump = g_strdup_printf("UPDATE schema_version SET version = %d", v + 1);

		rc = meta_exec(m, "BEGIN IMMEDIATE");
		if (rc == 0)
			rc = meta_exec(m, meta_migrations[v]);
		if (rc == 0)
			rc = meta_exec(m, bump);
		rc = meta_exec(m, rc == 0 ? "COMMIT" : "ROLLBACK") ?: rc;
		g_free(bump);
	}
	return rc;
}

int meta_open(const char *url, struct meta **out)
{
	struct meta *m;
	int rc = open_db(url, false, &m), v;

	if (rc < 0)
		return rc;
	v = read_version(m);
	if (v < 0 || v > META_SCHEMA_VERSION) {
		g_warning("metadata database %s: %s", url,
			  v < 0 ? "no shardfs schema" : "schema newer than this program");
		meta_close(m);
		return v < 0 ? -ENOENT : -EPROTO;
	}
	rc = migrate(m, v);
	if (rc < 0) {
		meta_close(m);
		return rc;
	}
	*out = m;
	return 0;
}

int meta_create_db(const char *url, uint32_t uid, uint32_t gid)
{
	struct meta *m;
	int rc = open_db(url, true, &m);
	int64_t now;

	if (rc < 0)
		return rc;
	if (read_version(m) >= 0) {
		meta_close(m);
		return -EEXIST;
	}
	rc = migrate(m, 0);
	now = meta_now_ns();
	if (rc == 0) {
		char *root = g_strdup_printf(
			"INSERT INTO inodes (ino, mode, uid, gid, nlink, atime, mtime, ctime, parent)"
			" VALUES (%u, %u, %u, %u, 2, %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
			", %" G_GINT64_FORMAT ", %u)",
			META_ROOT_INO, S_IFDIR | 0755, uid, gid, now, now, now, META_ROOT_INO);

		rc = meta_exec(m, root);
		g_free(root);
	}
	meta_close(m);
	return rc;
}

void meta_close(struct meta *m)
{
	if (!m)
		return;
	for (int i = 0; i < META_Q_COUNT; i++)
		sqlite3_finalize(m->stmt[i]);
	sqlite3_close(m->db);
	g_mutex_clear(&m->lock);
	g_free(m);
}

int meta_schema_version(struct meta *m)
{
	g_mutex_lock(&m->lock);
	int v = read_version(m);

	g_mutex_unlock(&m->lock);
	return v;
}

/* ---- cached statements ---- */


/* Runs a statement without rows and resets it; 0 or -EIO. */
static int run_done(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static void bind_text_blob(sqlite3_stmt *s, int i, const char *text)
{
	sqlite3_bind_blob(s, i, text, (int)strlen(text), SQLITE_STATIC);
}

/* ---- xattrs ---- */

static int xattr_name_check(const char *name)
{
	size_t n = strlen(name);

	return n == 0 ? -EINVAL : n > XATTR_NAME_MAX_LEN ? -ERANGE : 0;
}

/* 0 if ino exists. */
static int exists(struct meta *m, uint64_t ino)
{
	return meta_getattr_locked(m, ino, NULL);
}

static bool xattr_exists(struct meta *m, uint64_t ino, const char *name)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_XATTR_EXISTS);
	bool there;

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	bind_text_blob(s, 2, name);
	there = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_reset(s);
	return there;
}

int meta_setxattr(struct meta *m, uint64_t ino, const char *name, const void *value, size_t len,
		  int flags)
{
	sqlite3_stmt *s;
	int rc = xattr_name_check(name);

	if (rc < 0)
		return rc;
	if (len > XATTR_VALUE_MAX)
		return -E2BIG;
	rc = meta_tx_begin(m);
	if (rc < 0)
		return rc;
	rc = exists(m, ino);
	if (rc == 0) {
		bool there = xattr_exists(m, ino, name);

		if ((flags & META_XATTR_CREATE) && there)
			rc = -EEXIST;
		else if ((flags & META_XATTR_REPLACE) && !there)
			rc = -ENODATA;
	}
	if (rc == 0) {
		s = meta_stmt(m, META_Q_XATTR_SET);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		bind_text_blob(s, 2, name);
		sqlite3_bind_blob(s, 3, len ? value : "", (int)len, SQLITE_STATIC);
		rc = run_done(s);
	}
	if (rc == 0)
		rc = meta_set_ctime(m, ino, meta_now_ns());
	return meta_tx_end(m, rc);
}

/* Copies a blob the size rules of getxattr(2) allow: its length, or -ERANGE. */
static int copy_sized(const void *data, size_t len, void *buf, size_t size)
{
	if (size == 0)
		return (int)len;
	if (len > size)
		return -ERANGE;
	if (len) /* an empty blob may come as NULL */
		memcpy(buf, data, len);
	return (int)len;
}

int meta_getxattr(struct meta *m, uint64_t ino, const char *name, void *value, size_t size)
{
	sqlite3_stmt *s;
	int rc = xattr_name_check(name);

	if (rc < 0)
		return rc;
	g_mutex_lock(&m->lock);
	rc = exists(m, ino);
	if (rc == 0) {
		s = meta_stmt(m, META_Q_XATTR_GET);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		bind_text_blob(s, 2, name);
		if (sqlite3_step(s) == SQLITE_ROW)
			rc = copy_sized(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0), value, size);
		else
			rc = -ENODATA;
		sqlite3_reset(s);
	}
	g_mutex_unlock(&m->lock);
	return rc;
}

int meta_listxattr(struct meta *m, uint64_t ino, char *list, size_t size)
{
	GByteArray *names = g_byte_array_new();
	sqlite3_stmt *s;
	int rc;

	g_mutex_lock(&m->lock);
	rc = exists(m, ino);
	if (rc == 0) {
		s = meta_stmt(m, META_Q_XATTR_LIST);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		while (sqlite3_step(s) == SQLITE_ROW) {
			g_byte_array_append(names, sqlite3_column_blob(s, 0), (guint)sqlite3_column_bytes(s, 0));
			g_byte_array_append(names, (const guint8 *)"", 1);
		}
		sqlite3_reset(s);
		rc = copy_sized(names->data, names->len, list, size);
	}
	g_mutex_unlock(&m->lock);
	g_byte_array_unref(names);
	return rc;
}

int meta_removexattr(struct meta *m, uint64_t ino, const char *name)
{
	sqlite3_stmt *s;
	int rc = xattr_name_check(name);

	if (rc < 0)
		return rc;
	rc = meta_tx_begin(m);
	if (rc < 0)
		return rc;
	rc = exists(m, ino);
	if (rc == 0) {
		s = meta_stmt(m, META_Q_XATTR_REMOVE);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		bind_text_blob(s, 2, name);
		rc = run_done(s);
		if (rc == 0 && sqlite3_changes(m->db) == 0)
			rc = -ENODATA;
	}
	if (rc == 0)
		rc = meta_set_ctime(m, ino, meta_now_ns());
	return meta_tx_end(m, rc);
}

/* ---- manifests and garbage ---- */

static void nodes_pack(const struct meta_part *p, uint8_t *out)
{
	for (unsigned i = 0; i < (unsigned)p->k + p->m; i++) {
		out[2 * i] = (uint8_t)p->nodes[i];
		out[2 * i + 1] = (uint8_t)(p->nodes[i] >> 8);
	}
}

/* Fills p's code and nodes from columns k, m, nodes; false if inconsistent. */
static bool nodes_unpack(sqlite3_stmt *s, int col_k, struct meta_part *p)
{
	int k = sqlite3_column_int(s, col_k), mm = sqlite3_column_int(s, col_k + 1);
	int n = sqlite3_column_bytes(s, col_k + 2);
	const uint8_t *b = sqlite3_column_blob(s, col_k + 2);

	if (k == 0 && mm == 0 && n == 0) /* a hole */
		return p->k = p->m = 0, true;
	if (k < 1 || mm < 0 || k + mm > 64 || n != 2 * (k + mm))
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

/* A part keeps its own object id; a part without one takes the file's. */
static int insert_part(struct meta *m, uint64_t ino, const uint8_t file_oid[16],
		       const struct meta_part *p)
{
	const uint8_t *object_id = oid_zero(p->object_id) ? file_oid : p->object_id;
	uint8_t nodes[128];
	sqlite3_stmt *s;
	int rc;

	if ((p->k < 1 && (p->k || p->m)) || p->k + p->m > 64)
		return -EINVAL;
	nodes_pack(p, nodes);
	s = meta_stmt(m, META_Q_INSERT_PART);
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_int64(s, 2, p->index);
	sqlite3_bind_int64(s, 3, (int64_t)p->length);
	sqlite3_bind_blob(s, 4, p->checksum, 16, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, p->k);
	sqlite3_bind_int(s, 6, p->m);
	sqlite3_bind_blob(s, 7, nodes, 2 * (p->k + p->m), SQLITE_STATIC); /* empty for a hole */
	sqlite3_bind_blob(s, 8, object_id, 16, SQLITE_STATIC);
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : sqlite3_errcode(m->db) == SQLITE_CONSTRAINT ? -EINVAL : -EIO;
	sqlite3_reset(s);
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
 * are. Holes have nothing to collect. */
static int replaced_parts_to_garbage(struct meta *m, uint64_t ino, const uint8_t file_oid[16],
				     const struct meta_part *parts, unsigned nparts)
{
	sqlite3_stmt *sel = meta_stmt(m, META_Q_LIVE_PARTS), *ins = meta_stmt(m, META_Q_GARBAGE_ADD);
	int rc = 0;

	sqlite3_bind_int64(sel, 1, (int64_t)ino);
	while (rc == 0 && sqlite3_step(sel) == SQLITE_ROW) {
		if (sqlite3_column_bytes(sel, 0) == 16 &&
		    part_kept(sqlite3_column_blob(sel, 0), (uint32_t)sqlite3_column_int64(sel, 1),
			      file_oid, parts, nparts))
			continue;
		sqlite3_reset(ins);
		for (int c = 0; c < 6; c++)
			sqlite3_bind_value(ins, c + 1, sqlite3_column_value(sel, c));
		rc = sqlite3_step(ins) == SQLITE_DONE ? 0 : -EIO;
	}
	sqlite3_reset(sel);
	sqlite3_reset(ins);
	return rc;
}

/*
 * A transaction whose commit is fsynced: synchronous=FULL from before BEGIN
 * to after COMMIT (SQLite refuses to change it inside a transaction), all
 * under m->lock, so no other thread's commit on this connection can set it
 * back to NORMAL in between. If the level cannot be raised the transaction
 * does not start: a durable commit that is not synced must not happen.
 */
static int durable_tx_begin(struct meta *m)
{
	int rc;

	g_mutex_lock(&m->lock);
	rc = meta_exec(m, "PRAGMA synchronous = FULL");
	if (rc == 0)
		rc = meta_exec(m, "BEGIN IMMEDIATE");
	if (rc < 0) {
		meta_exec(m, "PRAGMA synchronous = NORMAL");
		g_mutex_unlock(&m->lock);
	}
	return rc;
}

/* As meta_tx_end, then back to synchronous=NORMAL; if that fails the
 * connection stays at FULL, which is slower but no less safe. */
static int durable_tx_end(struct meta *m, int rc)
{
	int crc = meta_exec(m, rc == 0 ? "COMMIT" : "ROLLBACK");

	if (rc == 0 && crc < 0) {
		meta_exec(m, "ROLLBACK");
		rc = crc;
	}
	meta_exec(m, "PRAGMA synchronous = NORMAL");
	g_mutex_unlock(&m->lock);
	return rc;
}

static int set_manifest(struct meta *m, uint64_t ino, const uint8_t object_id[16], uint64_t size)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_SET_MANIFEST);

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_int64(s, 2, (int64_t)size);
	sqlite3_bind_blob(s, 3, object_id, 16, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, meta_now_ns());
	return run_done(s);
}

/* The common start of a content commit, in its transaction: ino is a
 * regular file, and its parts that the new content (parts) does not name
 * go to the garbage table. */
static int content_replaced(struct meta *m, uint64_t ino, const uint8_t object_id[16],
			    const struct meta_part *parts, unsigned nparts)
{
	struct meta_attr a;
	int rc = meta_getattr_locked(m, ino, &a);

	if (rc == 0 && !S_ISREG(a.mode))
		rc = S_ISDIR(a.mode) ? -EISDIR : -EINVAL;
	if (rc == 0)
		rc = replaced_parts_to_garbage(m, ino, object_id, parts, nparts);
	return rc ? rc : meta_by_ino(m, META_Q_DELETE_PARTS, ino);
}

/* The common end of a content commit: the attributes, then the commit. */
static int content_committed(struct meta *m, uint64_t ino, const struct meta_setattr *attrs,
			     bool durable, int rc)
{
	if (rc == 0 && attrs && attrs->mask)
		rc = meta_setattr_locked(m, ino, attrs, NULL);
	return durable ? durable_tx_end(m, rc) : meta_tx_end(m, rc);
}

int meta_commit_manifest(struct meta *m, uint64_t ino, const uint8_t object_id[16],
			 uint64_t size, const struct meta_part *parts, unsigned nparts,
			 const struct meta_setattr *attrs, bool durable)
{
	int rc = durable ? durable_tx_begin(m) : meta_tx_begin(m);

	if (rc < 0)
		return rc;
	rc = content_replaced(m, ino, object_id, parts, nparts);
	for (unsigned i = 0; rc == 0 && i < nparts; i++)
		rc = insert_part(m, ino, object_id, &parts[i]);
	if (rc == 0)
		rc = meta_by_ino(m, META_Q_DELETE_INLINE, ino);
	if (rc == 0)
		rc = set_manifest(m, ino, object_id, size);
	return content_committed(m, ino, attrs, durable, rc);
}

static int set_inline(struct meta *m, uint64_t ino, const void *data, size_t len)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_INLINE_SET);
	int rc;

	if (len == 0) { /* an empty file keeps no row */
		rc = meta_by_ino(m, META_Q_DELETE_INLINE, ino);
	} else {
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		sqlite3_bind_blob(s, 2, data, (int)len, SQLITE_STATIC);
		rc = run_done(s);
	}
	if (rc == 0) {
		s = meta_stmt(m, META_Q_SET_INLINE_SIZE);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		sqlite3_bind_int64(s, 2, (int64_t)len);
		sqlite3_bind_int64(s, 3, meta_now_ns());
		rc = run_done(s);
	}
	return rc;
}

int meta_commit_inline(struct meta *m, uint64_t ino, const void *data, size_t len,
		       const struct meta_setattr *attrs, bool durable)
{
	static const uint8_t no_oid[16];
	int rc;

	if (len > META_INLINE_MAX)
		return -EFBIG;
	rc = durable ? durable_tx_begin(m) : meta_tx_begin(m);
	if (rc < 0)
		return rc;
	rc = content_replaced(m, ino, no_oid, NULL, 0);
	if (rc == 0)
		rc = set_inline(m, ino, data, len);
	return content_committed(m, ino, attrs, durable, rc);
}

int meta_get_inline(struct meta *m, uint64_t ino, void **data, size_t *len)
{
	sqlite3_stmt *s;
	int rc, n;

	g_mutex_lock(&m->lock);
	s = meta_stmt(m, META_Q_INLINE_GET);
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	if (sqlite3_step(s) == SQLITE_ROW) {
		n = sqlite3_column_bytes(s, 0);
		/* a length read from disk: never trusted past the limit */
		rc = n < 0 || (unsigned)n > META_INLINE_MAX ? -EUCLEAN : 0;
		if (rc == 0) {
			*data = n ? g_memdup2(sqlite3_column_blob(s, 0), (gsize)n) : NULL;
			*len = (size_t)n;
		}
	} else {
		rc = exists(m, ino) ?: -ENODATA;
	}
	sqlite3_reset(s);
	g_mutex_unlock(&m->lock);
	return rc;
}

/* The object id of regular file ino; -ENOENT, or -EINVAL for other types. */
static int object_id_of(struct meta *m, uint64_t ino, uint8_t object_id[16])
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_OBJECT_ID);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	rc = sqlite3_step(s) == SQLITE_ROW ? 0 : -ENOENT;
	if (rc == 0 && sqlite3_column_bytes(s, 0) == 16)
		memcpy(object_id, sqlite3_column_blob(s, 0), 16);
	else if (rc == 0)
		rc = -EINVAL; /* not a regular file */
	sqlite3_reset(s);
	return rc;
}

static int parts_of(struct meta *m, uint64_t ino, GArray *list)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_PARTS);
	int rc = 0;

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
		struct meta_part p = {0};

		p.index = (uint32_t)sqlite3_column_int64(s, 0);
		p.length = (uint64_t)sqlite3_column_int64(s, 1);
		if (sqlite3_column_bytes(s, 2) != 16 || !nodes_unpack(s, 3, &p) ||
		    sqlite3_column_bytes(s, 6) != 16) {
			rc = -EUCLEAN;
		} else {
			memcpy(p.checksum, sqlite3_column_blob(s, 2), 16);
			memcpy(p.object_id, sqlite3_column_blob(s, 6), 16);
		}
		g_array_append_val(list, p);
	}
	sqlite3_reset(s);
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
	sqlite3_stmt *s;

	g_mutex_lock(&m->lock);
	s = meta_stmt(m, META_Q_GARBAGE_LIST);
	sqlite3_bind_int64(s, 1, max);
	while (sqlite3_step(s) == SQLITE_ROW) {
		struct meta_garbage g = {0};

		g.id = (uint64_t)sqlite3_column_int64(s, 0);
		if (sqlite3_column_bytes(s, 1) == 16)
			memcpy(g.object_id, sqlite3_column_blob(s, 1), 16);
		g.part.index = (uint32_t)sqlite3_column_int64(s, 2);
		g.part.length = (uint64_t)sqlite3_column_int64(s, 3);
		if (nodes_unpack(s, 4, &g.part))
			g_array_append_val(list, g);
	}
	sqlite3_reset(s);
	g_mutex_unlock(&m->lock);
	*n = list->len;
	*items = (struct meta_garbage *)g_array_free(list, FALSE);
	return 0;
}

/* Runs statement q with up to two integer parameters and resets it. */
static int run_ints(struct meta *m, enum meta_q q, int64_t a, int64_t b)
{
	sqlite3_stmt *s = meta_stmt(m, q);

	sqlite3_bind_int64(s, 1, a);
	sqlite3_bind_int64(s, 2, b);
	return run_done(s);
}

int meta_garbage_done(struct meta *m, uint64_t id)
{
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	return meta_tx_end(m, run_ints(m, META_Q_GARBAGE_DONE, (int64_t)id, 0));
}

/* ---- sessions and open files ---- */

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

int meta_session_start(struct meta *m, const char *host, uint64_t *sid)
{
	sqlite3_stmt *s;
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	s = meta_stmt(m, META_Q_SESSION_START);
	sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now_s());
	rc = run_done(s);
	if (rc == 0)
		*sid = (uint64_t)sqlite3_last_insert_rowid(m->db);
	return meta_tx_end(m, rc);
}

int meta_session_heartbeat(struct meta *m, uint64_t sid)
{
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	rc = run_ints(m, META_Q_HEARTBEAT, (int64_t)sid, now_s());
	if (rc == 0 && sqlite3_changes(m->db) == 0)
		rc = -ENOENT;
	return meta_tx_end(m, rc);
}

int meta_open_locked(struct meta *m, uint64_t sid, uint64_t ino)
{
	return run_ints(m, META_Q_OPEN_FILE, (int64_t)sid, (int64_t)ino);
}

int meta_open_file(struct meta *m, uint64_t sid, uint64_t ino)
{
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	rc = exists(m, ino);
	if (rc == 0)
		rc = meta_open_locked(m, sid, ino);
	return meta_tx_end(m, rc);
}

/* The file's last opener went away: an unlinked file goes now. */
static int release_if_orphan(struct meta *m, uint64_t ino)
{
	struct meta_attr a;

	if (meta_getattr_locked(m, ino, &a) < 0 || a.nlink > 0 ||
	    meta_count_by_ino(m, META_Q_OPEN_COUNT, ino) > 0)
		return 0;
	return meta_destroy_inode(m, ino);
}

static int close_locked(struct meta *m, uint64_t sid, uint64_t ino)
{
	int rc = run_ints(m, META_Q_CLOSE_FILE, (int64_t)sid, (int64_t)ino);

	if (rc == 0 && sqlite3_changes(m->db) == 0)
		rc = -ENOENT;
	if (rc == 0)
		rc = run_ints(m, META_Q_FORGET_CLOSED, (int64_t)sid, (int64_t)ino);
	if (rc == 0)
		rc = release_if_orphan(m, ino);
	return rc;
}

int meta_close_file(struct meta *m, uint64_t sid, uint64_t ino)
{
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	return meta_tx_end(m, close_locked(m, sid, ino));
}

int meta_close_files(struct meta *m, uint64_t sid, const uint64_t *inos, unsigned n)
{
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	for (unsigned i = 0; rc == 0 && i < n; i++)
		if ((rc = close_locked(m, sid, inos[i])) == -ENOENT)
			rc = 0;
	return meta_tx_end(m, rc);
}

/* Column 0 (an id) of every row of statement q run with parameter a. */
static GArray *collect_ids(struct meta *m, enum meta_q q, int64_t a)
{
	GArray *ids = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	sqlite3_stmt *s = meta_stmt(m, q);

	sqlite3_bind_int64(s, 1, a);
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint64_t id = (uint64_t)sqlite3_column_int64(s, 0);

		g_array_append_val(ids, id);
	}
	sqlite3_reset(s);
	return ids;
}

/* Releases every file session sid had open and removes the session. */
static int end_session_locked(struct meta *m, uint64_t sid)
{
	GArray *inos = collect_ids(m, META_Q_SESSION_FILES, (int64_t)sid);
	int rc = run_ints(m, META_Q_FORGET_SESSION_FILES, (int64_t)sid, 0);

	for (guint i = 0; rc == 0 && i < inos->len; i++)
		rc = release_if_orphan(m, g_array_index(inos, uint64_t, i));
	if (rc == 0)
		rc = run_ints(m, META_Q_END_SESSION, (int64_t)sid, 0);
	g_array_free(inos, TRUE);
	return rc;
}

int meta_session_end(struct meta *m, uint64_t sid)
{
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	return meta_tx_end(m, end_session_locked(m, sid));
}

int meta_session_reap(struct meta *m, unsigned timeout_s, unsigned *ended)
{
	GArray *dead;
	int rc = meta_tx_begin(m);

	*ended = 0;
	if (rc < 0)
		return rc;
	dead = collect_ids(m, META_Q_DEAD_SESSIONS, now_s() - timeout_s);
	for (guint i = 0; rc == 0 && i < dead->len; i++)
		rc = end_session_locked(m, g_array_index(dead, uint64_t, i));
	if (rc == 0)
		*ended = dead->len;
	g_array_free(dead, TRUE);
	return meta_tx_end(m, rc);
}

/* ---- integrity check ---- */

/* META_INLINE_MAX as SQL text */
#define INLINE_MAX_SQL "16384"
G_STATIC_ASSERT(META_INLINE_MAX == 16384);

struct check {
	const char *what;
	const char *sql; /* counts offending rows */
};

static const struct check checks[] = {
	{"entries pointing to no inode",
	 "SELECT count(*) FROM dentries d LEFT JOIN inodes i ON i.ino = d.ino WHERE i.ino IS NULL"},
	{"entries in a parent that is no directory",
	 "SELECT count(*) FROM dentries d LEFT JOIN inodes p ON p.ino = d.parent"
	 " WHERE p.ino IS NULL OR (p.mode & 61440) != 16384"},
	{"files whose link count differs from their entries",
	 "SELECT count(*) FROM inodes i WHERE (i.mode & 61440) != 16384"
	 " AND i.nlink != (SELECT count(*) FROM dentries d WHERE d.ino = i.ino)"},
	{"directories whose link count is not 2 + subdirectories",
	 "SELECT count(*) FROM inodes i WHERE (i.mode & 61440) = 16384 AND i.nlink != 2 +"
	 " (SELECT count(*) FROM dentries d JOIN inodes c ON c.ino = d.ino"
	 "  WHERE d.parent = i.ino AND (c.mode & 61440) = 16384)"},
	{"directories with other than one entry (the root: none)",
	 "SELECT count(*) FROM inodes i WHERE (i.mode & 61440) = 16384 AND"
	 " (SELECT count(*) FROM dentries d WHERE d.ino = i.ino) != CASE WHEN i.ino = 1 THEN 0 ELSE 1 END"},
	{"directories whose parent pointer disagrees with their entry",
	 "SELECT count(*) FROM dentries d JOIN inodes i ON i.ino = d.ino"
	 " WHERE (i.mode & 61440) = 16384 AND i.parent != d.parent"},
	{"inodes neither reachable from the root nor open",
	 "WITH RECURSIVE r(ino) AS (SELECT 1 UNION SELECT d.ino FROM dentries d JOIN r ON d.parent = r.ino)"
	 " SELECT count(*) FROM inodes WHERE ino NOT IN (SELECT ino FROM r)"
	 " AND ino NOT IN (SELECT ino FROM open_files)"},
	{"parts of no inode",
	 "SELECT count(*) FROM parts p LEFT JOIN inodes i ON i.ino = p.ino WHERE i.ino IS NULL"},
	{"inline data of no regular file",
	 "SELECT count(*) FROM inline_data d LEFT JOIN inodes i ON i.ino = d.ino"
	 " WHERE i.ino IS NULL OR (i.mode & 61440) != 32768"},
	{"files with both inline data and parts",
	 "SELECT count(*) FROM inline_data d WHERE EXISTS (SELECT 1 FROM parts p WHERE p.ino = d.ino)"},
	{"inline data longer than its file or than the inline limit",
	 "SELECT count(*) FROM inline_data d JOIN inodes i ON i.ino = d.ino"
	 " WHERE length(d.data) > i.size OR length(d.data) > " INLINE_MAX_SQL},
};

int meta_check(struct meta *m, char **report)
{
	GString *out = g_string_new(NULL);
	sqlite3_stmt *s;

	g_mutex_lock(&m->lock);
	for (size_t i = 0; i < G_N_ELEMENTS(checks); i++) {
		/* A check that cannot run is a failed check, never a passed one. */
		int rc = sqlite3_prepare_v2(m->db, checks[i].sql, -1, &s, NULL);
		int step = rc == SQLITE_OK ? sqlite3_step(s) : rc;
		if (step != SQLITE_ROW)
			g_string_append_printf(out, "check \"%s\" could not run: %s\n", checks[i].what,
					       sqlite3_errmsg(m->db));
		else if (sqlite3_column_int64(s, 0) != 0)
			g_string_append_printf(out, "%lld %s\n", (long long)sqlite3_column_int64(s, 0),
					       checks[i].what);
		sqlite3_finalize(s);
	}
	sqlite3_prepare_v2(m->db, "PRAGMA integrity_check", -1, &s, NULL);
	if (sqlite3_step(s) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(s, 0), "ok"))
		g_string_append(out, "SQLite integrity_check is not ok\n");
	sqlite3_finalize(s);
	g_mutex_unlock(&m->lock);
	int rc = out->len ? -EUCLEAN : 0;

	if (report)
		*report = g_string_free(out, FALSE);
	else
		g_string_free(out, TRUE);
	return rc;
}
