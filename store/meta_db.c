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

#define XATTR_NAME_MAX_LEN 255u
#define XATTR_VALUE_MAX (64u << 10)

/* "sqlite:///abs/path" or "sqlite://rel/path": the file path, or NULL. */
static char *sqlite_path(const char *url)
{
	if (!g_str_has_prefix(url, "sqlite://") || !url[9])
		return NULL;
	return g_strdup(url + 9);
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
	if (sqlite3_open_v2(path, &m->db, flags, NULL) != SQLITE_OK) {
		g_warning("cannot open metadata database %s: %s", path, sqlite3_errmsg(m->db));
		g_free(path);
		meta_close(m);
		return -EIO;
	}
	g_free(path);
	sqlite3_busy_timeout(m->db, 10000);
	sqlite3_extended_result_codes(m->db, 0);
	if (meta_exec(m, "PRAGMA journal_mode = WAL") < 0 ||
	    meta_exec(m, "PRAGMA synchronous = NORMAL") < 0 ||
	    meta_exec(m, "PRAGMA cache_size = -65536") < 0) {
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
		sqlite3_prepare_v2(m->db, "SELECT 1 FROM xattrs WHERE ino = ?1 AND name = ?2", -1, &s, NULL);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		sqlite3_bind_blob(s, 2, name, (int)strlen(name), SQLITE_STATIC);
		bool there = sqlite3_step(s) == SQLITE_ROW;

		sqlite3_finalize(s);
		if ((flags & META_XATTR_CREATE) && there)
			rc = -EEXIST;
		else if ((flags & META_XATTR_REPLACE) && !there)
			rc = -ENODATA;
	}
	if (rc == 0) {
		sqlite3_prepare_v2(m->db, "INSERT OR REPLACE INTO xattrs (ino, name, value) VALUES (?1, ?2, ?3)",
				   -1, &s, NULL);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		sqlite3_bind_blob(s, 2, name, (int)strlen(name), SQLITE_STATIC);
		sqlite3_bind_blob(s, 3, len ? value : "", (int)len, SQLITE_STATIC);
		rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_finalize(s);
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
		sqlite3_prepare_v2(m->db, "SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2", -1, &s, NULL);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		sqlite3_bind_blob(s, 2, name, (int)strlen(name), SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW)
			rc = copy_sized(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0), value, size);
		else
			rc = -ENODATA;
		sqlite3_finalize(s);
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
		sqlite3_prepare_v2(m->db, "SELECT name FROM xattrs WHERE ino = ?1 ORDER BY name", -1, &s, NULL);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		while (sqlite3_step(s) == SQLITE_ROW) {
			g_byte_array_append(names, sqlite3_column_blob(s, 0), (guint)sqlite3_column_bytes(s, 0));
			g_byte_array_append(names, (const guint8 *)"", 1);
		}
		sqlite3_finalize(s);
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
		sqlite3_prepare_v2(m->db, "DELETE FROM xattrs WHERE ino = ?1 AND name = ?2", -1, &s, NULL);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		sqlite3_bind_blob(s, 2, name, (int)strlen(name), SQLITE_STATIC);
		rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_finalize(s);
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
	sqlite3_prepare_v2(m->db,
			   "INSERT INTO parts (ino, idx, length, checksum, k, m, nodes, object_id)"
			   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", -1, &s, NULL);
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_int64(s, 2, p->index);
	sqlite3_bind_int64(s, 3, (int64_t)p->length);
	sqlite3_bind_blob(s, 4, p->checksum, 16, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, p->k);
	sqlite3_bind_int(s, 6, p->m);
	sqlite3_bind_blob(s, 7, nodes, 2 * (p->k + p->m), SQLITE_STATIC); /* empty for a hole */
	sqlite3_bind_blob(s, 8, object_id, 16, SQLITE_STATIC);
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : sqlite3_errcode(m->db) == SQLITE_CONSTRAINT ? -EINVAL : -EIO;
	sqlite3_finalize(s);
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
	sqlite3_stmt *sel, *ins;
	int rc = 0;

	sqlite3_prepare_v2(m->db, "SELECT object_id, idx, length, k, m, nodes FROM parts"
			   " WHERE ino = ?1 AND k > 0", -1, &sel, NULL);
	sqlite3_prepare_v2(m->db, "INSERT INTO garbage (object_id, idx, length, k, m, nodes)"
			   " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", -1, &ins, NULL);
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
	sqlite3_finalize(sel);
	sqlite3_finalize(ins);
	return rc;
}

int meta_commit_manifest(struct meta *m, uint64_t ino, const uint8_t object_id[16],
			 uint64_t size, const struct meta_part *parts, unsigned nparts,
			 bool durable)
{
	struct meta_attr a;
	int rc;

	g_mutex_lock(&m->lock);
	if (durable) /* this commit must survive a power loss: fsync the WAL */
		meta_exec(m, "PRAGMA synchronous = FULL");
	g_mutex_unlock(&m->lock);
	rc = meta_tx_begin(m);
	if (rc == 0) {
		rc = meta_getattr_locked(m, ino, &a);
		if (rc == 0 && !S_ISREG(a.mode))
			rc = S_ISDIR(a.mode) ? -EISDIR : -EINVAL;
		if (rc == 0)
			rc = replaced_parts_to_garbage(m, ino, object_id, parts, nparts);
		if (rc == 0)
			rc = meta_by_ino(m, META_Q_DELETE_PARTS, ino);
		for (unsigned i = 0; rc == 0 && i < nparts; i++)
			rc = insert_part(m, ino, object_id, &parts[i]);
		if (rc == 0) {
			sqlite3_stmt *s;
			int64_t now = meta_now_ns();

			sqlite3_prepare_v2(m->db, "UPDATE inodes SET size = ?2, object_id = ?3, mtime = ?4,"
					   " ctime = ?4 WHERE ino = ?1", -1, &s, NULL);
			sqlite3_bind_int64(s, 1, (int64_t)ino);
			sqlite3_bind_int64(s, 2, (int64_t)size);
			sqlite3_bind_blob(s, 3, object_id, 16, SQLITE_STATIC);
			sqlite3_bind_int64(s, 4, now);
			rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
			sqlite3_finalize(s);
		}
		rc = meta_tx_end(m, rc);
	}
	if (durable) {
		g_mutex_lock(&m->lock);
		meta_exec(m, "PRAGMA synchronous = NORMAL");
		g_mutex_unlock(&m->lock);
	}
	return rc;
}

int meta_get_manifest(struct meta *m, uint64_t ino, uint8_t object_id[16],
		      struct meta_part **parts, unsigned *nparts)
{
	GArray *list = g_array_new(FALSE, TRUE, sizeof(struct meta_part));
	sqlite3_stmt *s;
	int rc;

	g_mutex_lock(&m->lock);
	sqlite3_prepare_v2(m->db, "SELECT object_id FROM inodes WHERE ino = ?1", -1, &s, NULL);
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	rc = sqlite3_step(s) == SQLITE_ROW ? 0 : -ENOENT;
	if (rc == 0 && sqlite3_column_bytes(s, 0) == 16)
		memcpy(object_id, sqlite3_column_blob(s, 0), 16);
	else if (rc == 0)
		rc = -EINVAL; /* not a regular file */
	sqlite3_finalize(s);
	if (rc == 0) {
		sqlite3_prepare_v2(m->db, "SELECT idx, length, checksum, k, m, nodes, object_id FROM parts"
				   " WHERE ino = ?1 ORDER BY idx", -1, &s, NULL);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
			struct meta_part p = {0};

			p.index = (uint32_t)sqlite3_column_int64(s, 0);
			p.length = (uint64_t)sqlite3_column_int64(s, 1);
			if (sqlite3_column_bytes(s, 2) != 16 || !nodes_unpack(s, 3, &p) ||
			    sqlite3_column_bytes(s, 6) != 16)
				rc = -EUCLEAN;
			else {
				memcpy(p.checksum, sqlite3_column_blob(s, 2), 16);
				memcpy(p.object_id, sqlite3_column_blob(s, 6), 16);
			}
			g_array_append_val(list, p);
		}
		sqlite3_finalize(s);
	}
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
	sqlite3_prepare_v2(m->db, "SELECT id, object_id, idx, length, k, m, nodes FROM garbage"
			   " ORDER BY id LIMIT ?1", -1, &s, NULL);
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
	sqlite3_finalize(s);
	g_mutex_unlock(&m->lock);
	*n = list->len;
	*items = (struct meta_garbage *)g_array_free(list, FALSE);
	return 0;
}

int meta_garbage_done(struct meta *m, uint64_t id)
{
	sqlite3_stmt *s;
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	sqlite3_prepare_v2(m->db, "DELETE FROM garbage WHERE id = ?1", -1, &s, NULL);
	sqlite3_bind_int64(s, 1, (int64_t)id);
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(s);
	return meta_tx_end(m, rc);
}

/* ---- sessions and open files ---- */

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* Runs one statement with up to two integer parameters in a transaction. */
static int write1(struct meta *m, const char *text, int64_t a, int64_t b)
{
	sqlite3_stmt *s;
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	sqlite3_prepare_v2(m->db, text, -1, &s, NULL);
	sqlite3_bind_int64(s, 1, a);
	sqlite3_bind_int64(s, 2, b);
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
	if (rc == 0 && sqlite3_changes(m->db) == 0)
		rc = -ENOENT;
	sqlite3_finalize(s);
	return meta_tx_end(m, rc);
}

int meta_session_start(struct meta *m, const char *host, uint64_t *sid)
{
	sqlite3_stmt *s;
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	sqlite3_prepare_v2(m->db, "INSERT INTO sessions (host, heartbeat) VALUES (?1, ?2)", -1, &s, NULL);
	sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now_s());
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(s);
	if (rc == 0)
		*sid = (uint64_t)sqlite3_last_insert_rowid(m->db);
	return meta_tx_end(m, rc);
}

int meta_session_heartbeat(struct meta *m, uint64_t sid)
{
	return write1(m, "UPDATE sessions SET heartbeat = ?2 WHERE sid = ?1", (int64_t)sid, now_s());
}

int meta_open_file(struct meta *m, uint64_t sid, uint64_t ino)
{
	sqlite3_stmt *s;
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	rc = exists(m, ino);
	if (rc == 0) {
		sqlite3_prepare_v2(m->db, "INSERT INTO open_files (sid, ino, count) VALUES (?1, ?2, 1)"
				   " ON CONFLICT (sid, ino) DO UPDATE SET count = count + 1", -1, &s, NULL);
		sqlite3_bind_int64(s, 1, (int64_t)sid);
		sqlite3_bind_int64(s, 2, (int64_t)ino);
		rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_finalize(s);
	}
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

int meta_close_file(struct meta *m, uint64_t sid, uint64_t ino)
{
	sqlite3_stmt *s;
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	sqlite3_prepare_v2(m->db, "UPDATE open_files SET count = count - 1 WHERE sid = ?1 AND ino = ?2",
			   -1, &s, NULL);
	sqlite3_bind_int64(s, 1, (int64_t)sid);
	sqlite3_bind_int64(s, 2, (int64_t)ino);
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(s);
	if (rc == 0 && sqlite3_changes(m->db) == 0)
		rc = -ENOENT;
	if (rc == 0)
		rc = meta_exec(m, "DELETE FROM open_files WHERE count <= 0");
	if (rc == 0)
		rc = release_if_orphan(m, ino);
	return meta_tx_end(m, rc);
}

/* Releases every file session sid had open and removes the session. */
static int end_session_locked(struct meta *m, uint64_t sid)
{
	GArray *inos = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	sqlite3_stmt *s;
	int rc = 0;

	sqlite3_prepare_v2(m->db, "SELECT ino FROM open_files WHERE sid = ?1", -1, &s, NULL);
	sqlite3_bind_int64(s, 1, (int64_t)sid);
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint64_t ino = (uint64_t)sqlite3_column_int64(s, 0);

		g_array_append_val(inos, ino);
	}
	sqlite3_finalize(s);
	sqlite3_prepare_v2(m->db, "DELETE FROM open_files WHERE sid = ?1", -1, &s, NULL);
	sqlite3_bind_int64(s, 1, (int64_t)sid);
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(s);
	for (guint i = 0; rc == 0 && i < inos->len; i++)
		rc = release_if_orphan(m, g_array_index(inos, uint64_t, i));
	if (rc == 0) {
		sqlite3_prepare_v2(m->db, "DELETE FROM sessions WHERE sid = ?1", -1, &s, NULL);
		sqlite3_bind_int64(s, 1, (int64_t)sid);
		rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_finalize(s);
	}
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
	GArray *dead = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	sqlite3_stmt *s;
	int rc = meta_tx_begin(m);

	*ended = 0;
	if (rc < 0) {
		g_array_free(dead, TRUE);
		return rc;
	}
	sqlite3_prepare_v2(m->db, "SELECT sid FROM sessions WHERE heartbeat < ?1", -1, &s, NULL);
	sqlite3_bind_int64(s, 1, now_s() - timeout_s);
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint64_t sid = (uint64_t)sqlite3_column_int64(s, 0);

		g_array_append_val(dead, sid);
	}
	sqlite3_finalize(s);
	for (guint i = 0; rc == 0 && i < dead->len; i++)
		rc = end_session_locked(m, g_array_index(dead, uint64_t, i));
	if (rc == 0)
		*ended = dead->len;
	g_array_free(dead, TRUE);
	return meta_tx_end(m, rc);
}

/* ---- integrity check ---- */

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
	{"directories with other than one entry",
	 "SELECT count(*) FROM inodes i WHERE (i.mode & 61440) = 16384 AND i.ino != 1 AND"
	 " (SELECT count(*) FROM dentries d WHERE d.ino = i.ino) != 1"},
	{"directories whose parent pointer disagrees with their entry",
	 "SELECT count(*) FROM dentries d JOIN inodes i ON i.ino = d.ino"
	 " WHERE (i.mode & 61440) = 16384 AND i.parent != d.parent"},
	{"inodes neither reachable from the root nor open",
	 "WITH RECURSIVE r(ino) AS (SELECT 1 UNION SELECT d.ino FROM dentries d JOIN r ON d.parent = r.ino)"
	 " SELECT count(*) FROM inodes WHERE ino NOT IN (SELECT ino FROM r)"
	 " AND ino NOT IN (SELECT ino FROM open_files)"},
	{"parts of no inode",
	 "SELECT count(*) FROM parts p LEFT JOIN inodes i ON i.ino = p.ino WHERE i.ino IS NULL"},
};

int meta_check(struct meta *m, char **report)
{
	GString *out = g_string_new(NULL);
	sqlite3_stmt *s;

	g_mutex_lock(&m->lock);
	for (size_t i = 0; i < G_N_ELEMENTS(checks); i++) {
		sqlite3_prepare_v2(m->db, checks[i].sql, -1, &s, NULL);
		if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) != 0)
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
