/*
 * meta_sql.c - the core of the metadata engine (meta.h): the database's
 * life cycle (open, create, close, schema version and migrations, with
 * meta_schema.h), the one table of SQL statements with its prepare-once
 * accessor, transactions, the mapping of SQL errors to errno, and the few
 * rows every topic touches (an inode's attributes, its ctime, its
 * removal). The operations themselves are in the topic files
 * (meta_namespace.c, meta_xattr.c, meta_manifest.c, meta_session.c,
 * meta_check.c), which call down to this file; this file calls none of
 * them. What only SQLite needs is in meta_sqlite.c.
 *
 * Every write is one BEGIN IMMEDIATE transaction: the database write lock
 * is taken up front, so two processes never deadlock upgrading a read
 * lock, and a busy database is waited for (busy_timeout) rather than
 * failed. WAL mode lets readers go on meanwhile. synchronous=NORMAL: a
 * commit survives a crash of the process at once and a power loss from
 * the next WAL sync on; commits that must survive power loss (a file's
 * fsync) run with synchronous=FULL (meta_tx_begin_durable).
 *
 * Statements are prepared once per connection and kept. A struct meta is
 * guarded by one mutex: one thread at a time per connection. A statement
 * that does not prepare is a program bug and aborts (g_error); every
 * other failure is returned as a negative errno.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"
#include "meta_schema.h"
#include "meta_sqlite.h"

#include <errno.h>
#include <glib.h>
#include <sqlite3.h>
#include <string.h>
#include <time.h>

/* One migration step per schema version. */
G_STATIC_ASSERT(G_N_ELEMENTS(meta_migrations) == META_SCHEMA_VERSION);

/* The SQL of every statement of the engine, by topic. */
static const char *const sql[META_Q_COUNT] = {
	/* namespace */
	/* The parent's mode too: a missing name is told from a parent that is
	 * no directory in the same read. */
	[META_Q_LOOKUP] = "SELECT i.ino, i.mode, i.uid, i.gid, i.nlink, i.size, i.atime, i.mtime, i.ctime,"
		     " i.generation, p.mode FROM inodes p"
		     " LEFT JOIN dentries d ON d.parent = p.ino AND d.name = ?2"
		     " LEFT JOIN inodes i ON i.ino = d.ino WHERE p.ino = ?1",
	[META_Q_GETATTR] = "SELECT ino, mode, uid, gid, nlink, size, atime, mtime, ctime, generation"
		      " FROM inodes WHERE ino = ?1",
	[META_Q_DENTRY] = "SELECT d.id, d.ino, i.mode FROM dentries d JOIN inodes i ON i.ino = d.ino"
		     " WHERE d.parent = ?1 AND d.name = ?2",
	[META_Q_INSERT_INODE] = "INSERT INTO inodes (mode, uid, gid, nlink, size, atime, mtime, ctime,"
			   " generation, parent, target, object_id)"
			   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6, 0, ?7, ?8, ?9)",
	[META_Q_INSERT_DENTRY] = "INSERT INTO dentries (parent, name, ino) VALUES (?1, ?2, ?3)",
	[META_Q_TOUCH_DIR] = "UPDATE inodes SET mtime = ?2, ctime = ?2 WHERE ino = ?1",
	[META_Q_ADD_NLINK] = "UPDATE inodes SET nlink = nlink + ?2, ctime = ?3 WHERE ino = ?1",
	[META_Q_SET_CTIME] = "UPDATE inodes SET ctime = ?2 WHERE ino = ?1",
	[META_Q_DELETE_DENTRY] = "DELETE FROM dentries WHERE id = ?1",
	[META_Q_HAS_CHILDREN] = "SELECT 1 FROM dentries WHERE parent = ?1 LIMIT 1",
	[META_Q_OPEN_COUNT] = "SELECT count(*) FROM open_files WHERE ino = ?1",
	[META_Q_PARTS_TO_GARBAGE] = "INSERT INTO garbage (object_id, idx, length, k, m, nodes)"
			       " SELECT object_id, idx, length, k, m, nodes FROM parts WHERE ino = ?1 AND k > 0",
	[META_Q_DELETE_PARTS] = "DELETE FROM parts WHERE ino = ?1",
	[META_Q_DELETE_XATTRS] = "DELETE FROM xattrs WHERE ino = ?1",
	[META_Q_DELETE_INLINE] = "DELETE FROM inline_data WHERE ino = ?1",
	/* substr of a blob counts bytes and gives a blob */
	[META_Q_CUT_INLINE] = "UPDATE inline_data SET data = substr(data, 1, ?2)"
			      " WHERE ino = ?1 AND length(data) > ?2",
	[META_Q_DELETE_INODE] = "DELETE FROM inodes WHERE ino = ?1",
	[META_Q_MOVE_DENTRY] = "UPDATE dentries SET parent = ?2, name = ?3 WHERE id = ?1",
	[META_Q_SET_DENTRY_INO] = "UPDATE dentries SET ino = ?2 WHERE id = ?1",
	[META_Q_SET_PARENT] = "UPDATE inodes SET parent = ?2 WHERE ino = ?1",
	[META_Q_PARENT_OF] = "SELECT parent FROM inodes WHERE ino = ?1",
	[META_Q_SETATTR] = "UPDATE inodes SET mode = ?2, uid = ?3, gid = ?4, size = ?5, atime = ?6,"
			   " mtime = ?7, ctime = ?8 WHERE ino = ?1",
	[META_Q_READDIR] = "SELECT d.id, d.name, d.ino, i.mode FROM dentries d JOIN inodes i ON i.ino = d.ino"
		      " WHERE d.parent = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
	/* xattrs */
	[META_Q_XATTR_EXISTS] = "SELECT 1 FROM xattrs WHERE ino = ?1 AND name = ?2",
	[META_Q_XATTR_SET] = "INSERT OR REPLACE INTO xattrs (ino, name, value) VALUES (?1, ?2, ?3)",
	[META_Q_XATTR_GET] = "SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2",
	[META_Q_XATTR_LIST] = "SELECT name FROM xattrs WHERE ino = ?1 ORDER BY name",
	[META_Q_XATTR_REMOVE] = "DELETE FROM xattrs WHERE ino = ?1 AND name = ?2",
	/* manifests, inline data, garbage */
	[META_Q_INSERT_PART] = "INSERT INTO parts (ino, idx, length, checksum, k, m, nodes, object_id,"
				 " missing) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[META_Q_SET_MANIFEST] = "UPDATE inodes SET size = ?2, object_id = ?3, mtime = ?4,"
				  " ctime = ?4 WHERE ino = ?1",
	[META_Q_OBJECT_ID] = "SELECT object_id FROM inodes WHERE ino = ?1",
	/* the partial index parts_missing serves this */
	[META_Q_DEGRADED_PARTS] = "SELECT ino, idx, length, checksum, k, m, nodes, object_id, missing"
				  " FROM parts WHERE missing <> 0 AND (ino > ?1 OR (ino = ?1 AND"
				  " idx > ?2)) ORDER BY ino, idx LIMIT ?3",
	[META_Q_DEGRADED_COUNT] = "SELECT count(*), coalesce(sum(length), 0) FROM parts"
				  " WHERE missing <> 0",
	[META_Q_RELOCATE_PART] = "UPDATE parts SET nodes = ?5, missing = ?6 WHERE ino = ?1 AND"
				 " idx = ?2 AND object_id = ?3 AND nodes = ?4 AND missing = ?7",
	[META_Q_PARTS] = "SELECT idx, length, checksum, k, m, nodes, object_id, missing FROM parts"
			   " WHERE ino = ?1 ORDER BY idx",
	[META_Q_LIVE_PARTS] = "SELECT object_id, idx, length, k, m, nodes FROM parts"
				" WHERE ino = ?1 AND k > 0",
	[META_Q_GARBAGE_ADD] = "INSERT INTO garbage (object_id, idx, length, k, m, nodes)"
				 " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[META_Q_INLINE_SET] = "INSERT OR REPLACE INTO inline_data (ino, data) VALUES (?1, ?2)",
	[META_Q_INLINE_GET] = "SELECT data FROM inline_data WHERE ino = ?1",
	/* the object id stays: inline content has no shards */
	[META_Q_SET_INLINE_SIZE] = "UPDATE inodes SET size = ?2, mtime = ?3, ctime = ?3 WHERE ino = ?1",
	[META_Q_GARBAGE_LIST] = "SELECT id, object_id, idx, length, k, m, nodes FROM garbage"
				  " ORDER BY id LIMIT ?1",
	[META_Q_GARBAGE_DONE] = "DELETE FROM garbage WHERE id = ?1",
	/* sessions and open files */
	[META_Q_SESSION_START] = "INSERT INTO sessions (host, heartbeat) VALUES (?1, ?2)",
	[META_Q_HEARTBEAT] = "UPDATE sessions SET heartbeat = ?2 WHERE sid = ?1",
	[META_Q_OPEN_FILE] = "INSERT INTO open_files (sid, ino, count) VALUES (?1, ?2, 1)"
			       " ON CONFLICT (sid, ino) DO UPDATE SET count = count + 1",
	[META_Q_CLOSE_FILE] = "UPDATE open_files SET count = count - 1 WHERE sid = ?1 AND ino = ?2",
	/* only the row just decremented can have reached 0: no table scan */
	[META_Q_FORGET_CLOSED] = "DELETE FROM open_files WHERE sid = ?1 AND ino = ?2 AND count <= 0",
	[META_Q_SESSION_FILES] = "SELECT ino FROM open_files WHERE sid = ?1",
	[META_Q_FORGET_SESSION_FILES] = "DELETE FROM open_files WHERE sid = ?1",
	[META_Q_END_SESSION] = "DELETE FROM sessions WHERE sid = ?1",
	[META_Q_DEAD_SESSIONS] = "SELECT sid FROM sessions WHERE heartbeat < ?1",
	/* storage nodes */
	[META_Q_NODE_IDENTITY] = "SELECT identity FROM nodes WHERE id = ?1",
	[META_Q_NODE_SET] = "INSERT INTO nodes (id, identity, since) VALUES (?1, ?2, ?3)"
			    " ON CONFLICT (id) DO UPDATE SET identity = excluded.identity,"
			    " since = excluded.since",
	/* shard ?1 of parts on the node packed as ?2 (2 bytes, little-endian);
	 * a part has at most one shard on a node */
	[META_Q_NODE_LOST] = "UPDATE parts SET missing = missing | ?3 WHERE k > 0 AND"
			     " length(nodes) >= 2 * ?1 + 2 AND substr(nodes, 2 * ?1 + 1, 2) = ?2"
			     " AND (missing & ?3) = 0",
	/* the parts_by_object index serves this */
	[META_Q_SHARD_LOST] = "UPDATE parts SET missing = missing | ?4 WHERE object_id = ?1 AND"
			      " idx = ?2 AND k > 0 AND length(nodes) >= 2 * ?3 + 2 AND"
			      " substr(nodes, 2 * ?3 + 1, 2) = ?5 AND (missing & ?4) = 0",
};

int64_t meta_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int meta_sql_errno(struct meta *m, int rc)
{
	switch (rc) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EUCLEAN;
	default:
		g_warning("metadata database: %s", sqlite3_errmsg(m->db));
		return -EIO;
	}
}

sqlite3_stmt *meta_stmt(struct meta *m, enum meta_q q)
{
	if (!m->stmt[q] && sqlite3_prepare_v3(m->db, sql[q], -1, SQLITE_PREPARE_PERSISTENT,
						 &m->stmt[q], NULL) != SQLITE_OK)
		g_error("metadata statement %s does not prepare: %s", sql[q], sqlite3_errmsg(m->db));
	sqlite3_reset(m->stmt[q]);
	sqlite3_clear_bindings(m->stmt[q]);
	return m->stmt[q];
}

int meta_run(struct meta *m, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : meta_sql_errno(m, rc);
}

int meta_run_done(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int meta_run_ints(struct meta *m, enum meta_q q, int64_t a, int64_t b)
{
	sqlite3_stmt *s = meta_stmt(m, q);

	sqlite3_bind_int64(s, 1, a);
	sqlite3_bind_int64(s, 2, b);
	return meta_run_done(s);
}

int meta_exec(struct meta *m, const char *text)
{
	return meta_sql_errno(m, meta_sqlite_exec(m->db, text));
}

int meta_tx_begin(struct meta *m)
{
	g_mutex_lock(&m->lock);
	int rc = meta_exec(m, "BEGIN IMMEDIATE");

	if (rc < 0)
		g_mutex_unlock(&m->lock);
	return rc;
}

/* COMMIT if rc is 0, else ROLLBACK; rc, or the commit's error. */
static int commit_or_rollback(struct meta *m, int rc)
{
	int crc = meta_exec(m, rc == 0 ? "COMMIT" : "ROLLBACK");

	if (rc == 0 && crc < 0) {
		meta_exec(m, "ROLLBACK");
		rc = crc;
	}
	return rc;
}

int meta_tx_end(struct meta *m, int rc)
{
	rc = commit_or_rollback(m, rc);
	g_mutex_unlock(&m->lock);
	return rc;
}

/*
 * A transaction whose commit is fsynced: synchronous=FULL from before BEGIN
 * to after COMMIT (SQLite refuses to change it inside a transaction), all
 * under m->lock, so no other thread's commit on this connection can set it
 * back to NORMAL in between. If the level cannot be raised the transaction
 * does not start: a durable commit that is not synced must not happen.
 */
int meta_tx_begin_durable(struct meta *m)
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
int meta_tx_end_durable(struct meta *m, int rc)
{
	rc = commit_or_rollback(m, rc);
	meta_exec(m, "PRAGMA synchronous = NORMAL");
	g_mutex_unlock(&m->lock);
	return rc;
}

/* ---- rows every topic touches ---- */

void meta_bind_name(sqlite3_stmt *s, int i, const char *name)
{
	sqlite3_bind_blob(s, i, name, (int)strlen(name), SQLITE_STATIC);
}

void meta_attr_read(sqlite3_stmt *s, struct meta_attr *a)
{
	a->ino = (uint64_t)sqlite3_column_int64(s, 0);
	a->mode = (uint32_t)sqlite3_column_int64(s, 1);
	a->uid = (uint32_t)sqlite3_column_int64(s, 2);
	a->gid = (uint32_t)sqlite3_column_int64(s, 3);
	a->nlink = (uint32_t)sqlite3_column_int64(s, 4);
	a->size = (uint64_t)sqlite3_column_int64(s, 5);
	a->atime_ns = sqlite3_column_int64(s, 6);
	a->mtime_ns = sqlite3_column_int64(s, 7);
	a->ctime_ns = sqlite3_column_int64(s, 8);
	a->generation = (uint64_t)sqlite3_column_int64(s, 9);
}

int meta_getattr_locked(struct meta *m, uint64_t ino, struct meta_attr *out)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_GETATTR);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && out)
		meta_attr_read(s, out);
	rc = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : meta_sql_errno(m, rc);
	sqlite3_reset(s);
	return rc;
}

int meta_by_ino(struct meta *m, enum meta_q q, uint64_t ino)
{
	sqlite3_stmt *s = meta_stmt(m, q);

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	return meta_run(m, s);
}

int64_t meta_count_by_ino(struct meta *m, enum meta_q q, uint64_t ino)
{
	sqlite3_stmt *s = meta_stmt(m, q);
	int64_t n = -1;

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return n;
}

/* Removes an inode with everything hanging from it; its parts become
 * garbage for the nodes. */
int meta_destroy_inode(struct meta *m, uint64_t ino)
{
	int rc = meta_by_ino(m, META_Q_PARTS_TO_GARBAGE, ino);

	if (rc == 0)
		rc = meta_by_ino(m, META_Q_DELETE_PARTS, ino);
	if (rc == 0)
		rc = meta_by_ino(m, META_Q_DELETE_INLINE, ino);
	if (rc == 0)
		rc = meta_by_ino(m, META_Q_DELETE_XATTRS, ino);
	if (rc == 0)
		rc = meta_by_ino(m, META_Q_DELETE_INODE, ino);
	return rc;
}

int meta_set_ctime(struct meta *m, uint64_t ino, int64_t now)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_SET_CTIME);

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_int64(s, 2, now);
	return meta_run(m, s);
}

/* ---- life cycle ---- */

/* A connection of the engine url names (today only SQLite's: a second
 * engine's connect would be chosen here by the URL's scheme). */
static int open_db(const char *url, bool create, struct meta **out)
{
	struct meta *m = g_new0(struct meta, 1);
	int rc;

	g_mutex_init(&m->lock);
	rc = meta_sqlite_connect(m, url, create);
	if (rc < 0) {
		meta_close(m);
		return rc;
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
