/*
 * meta_sql.c - the core of the metadata engine (meta.h): the database's
 * life cycle (open, create, close, schema version and migrations, with
 * meta_schema.h), the one table of SQL statements with its prepare-once
 * accessor, transactions, the mapping of SQL errors to errno, and the few
 * rows every topic touches (an inode's attributes, its ctime, its
 * removal). The operations themselves are in the topic files
 * (meta_namespace.c, meta_xattr.c, meta_manifest.c, meta_session.c,
 * meta_check.c), which call down to this file; this file calls none of
 * them. The engines (meta_sqlite.c, meta_pg.c) run the SQL of this file
 * through struct meta_engine; nothing here is one engine's.
 *
 * Every write is one transaction of meta_tx_loop, which the engine begins
 * so that concurrent writers see each other as if one ran after the other
 * (SQLite: BEGIN IMMEDIATE, one writer at a time; PostgreSQL:
 * SERIALIZABLE), and which runs the transaction again when the engine
 * says it failed only because of a concurrent one. Commits of a file's
 * fsync or close are durable (on disk when they return); others survive
 * a crash of the mount at once, and of the machine or server soon after
 * (each engine says how soon).
 *
 * Statements are prepared once per connection and kept. A struct meta is
 * guarded by one mutex: one thread at a time per connection. A statement
 * that does not prepare is a program bug and aborts (g_error); every
 * other failure is returned as a negative errno.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

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
			   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6, 0, ?7, ?8, ?9) RETURNING ino",
	[META_Q_INSERT_DENTRY] = "INSERT INTO dentries (parent, name, ino) VALUES (?1, ?2, ?3)",
	[META_Q_MAKE_NODE] = "SELECT * FROM shardfs_make_node(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[META_Q_TOUCH_DIR] = "UPDATE inodes SET mtime = ?2, ctime = ?2 WHERE ino = ?1",
	[META_Q_ADD_NLINK] = "UPDATE inodes SET nlink = nlink + ?2, ctime = ?3 WHERE ino = ?1",
	[META_Q_SET_CTIME] = "UPDATE inodes SET ctime = ?2 WHERE ino = ?1",
	[META_Q_DELETE_DENTRY] = "DELETE FROM dentries WHERE id = ?1",
	/* one of ino's entries (any, for a file of several links) */
	[META_Q_ENTRY_OF] = "SELECT parent, name FROM dentries WHERE ino = ?1 ORDER BY id LIMIT 1",
	[META_Q_HAS_CHILDREN] = "SELECT 1 FROM dentries WHERE parent = ?1 LIMIT 1",
	[META_Q_OPEN_COUNT] = "SELECT count(*) FROM open_files WHERE ino = ?1",
	[META_Q_HAS_INODES] = "SELECT 1 FROM inodes LIMIT 1",
	[META_Q_PARTS_TO_GARBAGE] = "INSERT INTO garbage (object_id, idx, length, k, m, nodes)"
			       " SELECT object_id, idx, length, k, m, nodes FROM parts WHERE ino = ?1 AND k > 0",
	[META_Q_DELETE_PARTS] = "DELETE FROM parts WHERE ino = ?1",
	[META_Q_DELETE_XATTRS] = "DELETE FROM xattrs WHERE ino = ?1",
	[META_Q_DELETE_INLINE] = "DELETE FROM inline_data WHERE ino = ?1",
	/* substr of a blob (bytea) counts bytes and gives a blob */
	[META_Q_CUT_INLINE] = "UPDATE inline_data SET data = substr(data, 1, ?2)"
			      " WHERE ino = ?1 AND length(data) > ?2",
	[META_Q_DELETE_INODE] = "DELETE FROM inodes WHERE ino = ?1",
	[META_Q_MOVE_DENTRY] = "UPDATE dentries SET parent = ?2, name = ?3 WHERE id = ?1",
	[META_Q_SET_DENTRY_INO] = "UPDATE dentries SET ino = ?2 WHERE id = ?1",
	[META_Q_SET_PARENT] = "UPDATE inodes SET parent = ?2 WHERE ino = ?1",
	[META_Q_PARENT_OF] = "SELECT parent FROM inodes WHERE ino = ?1",
	[META_Q_SETATTR] = "UPDATE inodes SET mode = ?2, uid = ?3, gid = ?4, size = ?5, atime = ?6,"
			   " mtime = ?7, ctime = ?8 WHERE ino = ?1",
	[META_Q_READLINK] = "SELECT mode, target FROM inodes WHERE ino = ?1",
	[META_Q_TOTALS] = "SELECT count(*), CAST(coalesce(sum(size), 0) AS BIGINT) FROM inodes",
	[META_Q_READDIR] = "SELECT d.id, d.name, d.ino, i.mode FROM dentries d JOIN inodes i ON i.ino = d.ino"
		      " WHERE d.parent = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
	/* xattrs */
	[META_Q_XATTR_EXISTS] = "SELECT 1 FROM xattrs WHERE ino = ?1 AND name = ?2",
	[META_Q_XATTR_SET] = "INSERT INTO xattrs (ino, name, value) VALUES (?1, ?2, ?3)"
			     " ON CONFLICT (ino, name) DO UPDATE SET value = excluded.value",
	/* one round trip: no row, no inode; a NULL value, no such attribute */
	[META_Q_XATTR_GET] = "SELECT x.value, x.ino FROM inodes i LEFT JOIN xattrs x"
			     " ON x.ino = i.ino AND x.name = ?2 WHERE i.ino = ?1",
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
	[META_Q_DEGRADED_COUNT] = "SELECT count(*), CAST(coalesce(sum(length), 0) AS BIGINT) FROM parts"
				  " WHERE missing <> 0",
	/* row values, so that both engines walk the primary key */
	[META_Q_PARTS_PAGE] = "SELECT ino, idx, length, checksum, k, m, nodes, object_id, missing"
			      " FROM parts WHERE k > 0 AND (ino, idx) > (?1, ?2)"
			      " ORDER BY ino, idx LIMIT ?3",
	[META_Q_PARTS_COUNT] = "SELECT count(*), CAST(coalesce(sum(length), 0) AS BIGINT) FROM parts"
			       " WHERE k > 0",
	[META_Q_RELOCATE_PART] = "UPDATE parts SET nodes = ?5, missing = ?6 WHERE ino = ?1 AND"
				 " idx = ?2 AND object_id = ?3 AND nodes = ?4 AND missing = ?7",
	[META_Q_PARTS] = "SELECT idx, length, checksum, k, m, nodes, object_id, missing FROM parts"
			   " WHERE ino = ?1 ORDER BY idx",
	[META_Q_FILE_PARTS] = "SELECT object_id, idx, length, k, m, nodes FROM parts WHERE ino = ?1",
	[META_Q_GARBAGE_ADD] = "INSERT INTO garbage (object_id, idx, length, k, m, nodes)"
				 " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[META_Q_INLINE_SET] = "INSERT INTO inline_data (ino, data) VALUES (?1, ?2)"
			      " ON CONFLICT (ino) DO UPDATE SET data = excluded.data",
	[META_Q_INLINE_GET] = "SELECT data FROM inline_data WHERE ino = ?1",
	/* the object id stays: inline content has no shards */
	[META_Q_SET_INLINE_SIZE] = "UPDATE inodes SET size = ?2, mtime = ?3, ctime = ?3 WHERE ino = ?1",
	[META_Q_GARBAGE_LIST] = "SELECT id, object_id, idx, length, k, m, nodes FROM garbage"
				  " ORDER BY id LIMIT ?1",
	[META_Q_GARBAGE_DONE] = "DELETE FROM garbage WHERE id = ?1",
	/* sessions and open files */
	[META_Q_SESSION_START] = "INSERT INTO sessions (host, heartbeat, lease) VALUES (?1, ?2, ?3)"
				 " RETURNING sid",
	[META_Q_HEARTBEAT] = "UPDATE sessions SET heartbeat = ?2 WHERE sid = ?1",
	[META_Q_OPEN_FILE] = "INSERT INTO open_files (sid, ino, count) VALUES (?1, ?2, 1)"
			       " ON CONFLICT (sid, ino) DO UPDATE SET count = open_files.count + 1",
	[META_Q_CLOSE_FILE] = "UPDATE open_files SET count = count - 1 WHERE sid = ?1 AND ino = ?2",
	/* only the row just decremented can have reached 0: no table scan */
	[META_Q_FORGET_CLOSED] = "DELETE FROM open_files WHERE sid = ?1 AND ino = ?2 AND count <= 0",
	[META_Q_SESSION_FILES] = "SELECT ino FROM open_files WHERE sid = ?1",
	[META_Q_FORGET_SESSION_FILES] = "DELETE FROM open_files WHERE sid = ?1",
	[META_Q_END_SESSION] = "DELETE FROM sessions WHERE sid = ?1",
	[META_Q_DEAD_SESSIONS] = "SELECT sid FROM sessions WHERE heartbeat + lease < ?1",
	[META_Q_LIVE_SESSIONS] = "SELECT count(*) FROM sessions WHERE heartbeat >= ?1",
	[META_Q_ALL_SESSIONS] = "SELECT sid FROM sessions WHERE sid > ?1",
	[META_Q_FIRST_LIVE_SESSION] = "SELECT min(sid) FROM sessions WHERE heartbeat + lease >= ?1",
	[META_Q_SESSION_LOCKS_DROP] = "DELETE FROM locks WHERE sid = ?1",
	/* locks: ?7 is the lowest type that conflicts with the one asked */
	[META_Q_LOCK_CONFLICT] = "SELECT sid, owner, type, lstart, lend, pid FROM locks"
				 " WHERE ino = ?1 AND kind = ?2 AND NOT (sid = ?3 AND owner = ?4)"
				 " AND lstart <= ?6 AND lend >= ?5 AND type >= ?7"
				 " ORDER BY lstart LIMIT 1",
	[META_Q_LOCKS_OF_HOLDER] = "SELECT id, type, lstart, lend FROM locks"
				   " WHERE ino = ?1 AND kind = ?2 AND sid = ?3 AND owner = ?4",
	[META_Q_LOCK_DELETE] = "DELETE FROM locks WHERE id = ?1",
	[META_Q_LOCK_INSERT] = "INSERT INTO locks (ino, kind, sid, owner, type, lstart, lend, pid)"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[META_Q_LOCKS_RELEASE] = "DELETE FROM locks WHERE ino = ?1 AND kind = ?2 AND sid = ?3"
				 " AND owner = ?4",
	[META_Q_INODE_LOCKS_DROP] = "DELETE FROM locks WHERE ino = ?1",
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
	[META_Q_NODE_HEALTH] = "SELECT down_since, down_out FROM node_health WHERE id = ?1",
	[META_Q_NODE_HEALTH_SET] = "INSERT INTO node_health (id, down_since, down_out)"
				   " VALUES (?1, ?2, ?3) ON CONFLICT (id) DO UPDATE SET"
				   " down_since = excluded.down_since, down_out = excluded.down_out",
	[META_Q_NODE_HEALTH_CLEAR] = "DELETE FROM node_health WHERE id = ?1",
	[META_Q_REPAIR_REPORT] = "INSERT INTO repair_workers (name, updated, bytes_per_s)"
				 " VALUES (?1, ?2, ?3) ON CONFLICT (name) DO UPDATE SET"
				 " updated = excluded.updated, bytes_per_s = excluded.bytes_per_s",
	[META_Q_REPAIR_RATE] = "SELECT count(*), CAST(coalesce(sum(bytes_per_s), 0) AS BIGINT)"
			       " FROM repair_workers WHERE updated >= ?1",
	[META_Q_REPAIR_FORGET] = "DELETE FROM repair_workers WHERE updated < ?1",
	/* taken when free, expired, or already the worker's */
	[META_Q_REPAIR_LEASE] = "INSERT INTO repair_leases (ino, idx, holder, until)"
				" VALUES (?1, ?2, ?3, ?4) ON CONFLICT (ino, idx) DO UPDATE SET"
				" holder = excluded.holder, until = excluded.until"
				" WHERE repair_leases.until < ?5 OR repair_leases.holder = excluded.holder"
				" OR repair_leases.holder = ?6",
	[META_Q_REPAIR_HOLDER] = "SELECT holder FROM repair_leases WHERE ino = ?1 AND idx = ?2",
	[META_Q_PART_STILL] = "SELECT 1 FROM parts WHERE ino = ?1 AND idx = ?2 AND object_id = ?3"
			      " AND missing = ?4",
	[META_Q_REPAIR_UNLEASE] = "DELETE FROM repair_leases WHERE ino = ?1 AND idx = ?2 AND holder = ?3",
	[META_Q_REPAIR_LEASES_EXPIRED] = "DELETE FROM repair_leases WHERE until < ?1",
	[META_Q_CLUSTER_ID] = "SELECT id FROM cluster",
	[META_Q_CLUSTER_ID_SET] = "INSERT INTO cluster (id) VALUES (?1)",
	/* the parts_by_object index serves this */
	[META_Q_SHARD_LOST] = "UPDATE parts SET missing = missing | ?4 WHERE object_id = ?1 AND"
			      " idx = ?2 AND k > 0 AND length(nodes) >= 2 * ?3 + 2 AND"
			      " substr(nodes, 2 * ?3 + 1, 2) = ?5 AND (missing & ?4) = 0",
	/* membership */
	[META_Q_MEMBERS] = "SELECT id, host, port, zone, weight, state, changed FROM members"
			   " ORDER BY id",
	[META_Q_MEMBER_ADD] = "INSERT INTO members (id, host, port, zone, weight, state, changed)"
			      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[META_Q_MEMBER_TAKEN] = "SELECT count(*) FROM members WHERE id = ?1 OR (host = ?2 AND"
				" port = ?3)",
	[META_Q_MEMBER_STATE] = "UPDATE members SET state = ?2, changed = ?3 WHERE id = ?1",
	[META_Q_MEMBER_REMOVE] = "DELETE FROM members WHERE id = ?1",
	/* as NODE_LOST: parts whose shard ?1 is on the node packed as ?2 */
	[META_Q_NODE_SLOT_PARTS] = "SELECT count(*) FROM parts WHERE k > 0 AND"
				   " length(nodes) >= 2 * ?1 + 2 AND substr(nodes, 2 * ?1 + 1, 2) = ?2"
				   " AND (missing & ?3) = 0",
	[META_Q_REBALANCE_REPORT] = "INSERT INTO rebalance_workers (name, updated, started,"
				    " bytes_per_s, parts_done, parts_total) VALUES (?1, ?2, ?3, ?4,"
				    " ?5, ?6) ON CONFLICT (name) DO UPDATE SET updated ="
				    " excluded.updated, started = excluded.started, bytes_per_s ="
				    " excluded.bytes_per_s, parts_done = excluded.parts_done,"
				    " parts_total = excluded.parts_total",
	[META_Q_REBALANCE_DONE] = "DELETE FROM rebalance_workers WHERE name = ?1 OR updated < ?2",
	[META_Q_REBALANCE_RATE] = "SELECT count(*), CAST(coalesce(sum(bytes_per_s), 0) AS BIGINT)"
				  " FROM rebalance_workers WHERE updated >= ?1",
	[META_Q_REBALANCE_FURTHEST] = "SELECT parts_done, parts_total, started FROM"
				      " rebalance_workers WHERE updated >= ?1 ORDER BY"
				      " parts_total - parts_done DESC LIMIT 1",
};

static __thread char *open_error;

void meta_set_open_error(const char *fmt, ...)
{
	va_list ap;

	g_clear_pointer(&open_error, g_free);
	if (!fmt)
		return;
	va_start(ap, fmt);
	open_error = g_strdup_vprintf(fmt, ap);
	va_end(ap);
}

const char *meta_open_error(void)
{
	return open_error;
}

int64_t meta_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int meta_sql_errno(struct meta *m, int rc)
{
	(void)m;
	return rc == META_ROW || rc == META_DONE ? 0 : rc;
}

struct meta_stmt *meta_stmt(struct meta *m, enum meta_q q)
{
	if (!m->stmt[q]) {
		struct meta_stmt *s = g_new0(struct meta_stmt, 1);

		s->m = m;
		if (m->engine->prepare(m, sql[q], &s->impl) < 0)
			g_error("metadata statement %s does not prepare on %s", sql[q],
				m->engine->name);
		m->stmt[q] = s;
	}
	m->engine->reset(m->stmt[q]->impl);
	return m->stmt[q];
}

struct meta_stmt *meta_stmt_text(struct meta *m, const char *text)
{
	struct meta_stmt *s = g_new0(struct meta_stmt, 1);

	s->m = m;
	if (m->engine->prepare(m, text, &s->impl) < 0) {
		g_free(s);
		return NULL;
	}
	return s;
}

void meta_stmt_free(struct meta_stmt *s)
{
	if (!s)
		return;
	s->m->engine->finalize(s->impl);
	g_free(s);
}

int meta_run(struct meta *m, struct meta_stmt *s)
{
	int rc = meta_step(s);

	meta_reset(s);
	return rc == META_DONE ? 0 : meta_sql_errno(m, rc == META_ROW ? -EIO : rc);
}

void meta_col_text_copy(struct meta_stmt *s, int c, char *out, size_t cap)
{
	size_t n;
	const char *text = meta_col_blob(s, c, &n);

	n = MIN(n, cap - 1);
	if (n)
		memcpy(out, text, n);
	out[n] = '\0';
}

int meta_run_done(struct meta_stmt *s)
{
	int rc = meta_step(s);

	meta_reset(s);
	return rc == META_DONE ? 0 : -EIO;
}

int meta_run_ints(struct meta *m, enum meta_q q, int64_t a, int64_t b)
{
	struct meta_stmt *s = meta_stmt(m, q);

	meta_bind_int(s, 1, a);
	meta_bind_int(s, 2, b);
	return meta_run_done(s);
}

int meta_exec(struct meta *m, const char *text)
{
	return m->engine->exec(m, text);
}

/* Tries of a transaction that keeps meeting concurrent ones, and the
 * longest pause between two (the pause doubles from 1 ms, at random up to
 * its bound, so that two that collided do not collide again). PostgreSQL
 * tells conflicts by index page, not by row: 8 threads creating files in
 * directories of their own met 12 conflicts in a row within seconds, so
 * the bound is high and the pauses short (about 2 s at most in all). */
#define TX_TRIES 100
#define TX_PAUSE_MAX_US 20000

static void pause_before_retry(int attempt)
{
	gint64 bound = MIN((gint64)1000 << MIN(attempt, 16), TX_PAUSE_MAX_US);

	g_usleep((gulong)g_random_int_range(0, (gint32)bound + 1));
}

static int tx_begin(struct meta_tx *t)
{
	t->m->retry = false;
	return t->alone ? 0 : t->m->engine->begin(t->m, t->durable);
}

/* COMMIT if rc is 0, else ROLLBACK; rc (1 is 0), or the commit's error. */
static int tx_end(struct meta_tx *t, int rc)
{
	struct meta *m = t->m;

	if (t->alone)
		return rc == 1 ? 0 : rc;
	if (rc == 0 && !m->retry)
		return m->engine->commit(m, t->durable);
	m->engine->rollback(m, t->durable);
	return rc == 1 ? 0 : rc;
}

bool meta_tx_loop(struct meta_tx *t, int *rc)
{
	if (t->attempt < 0) {
		g_mutex_lock(&t->m->lock);
		t->attempt = 0;
		*rc = tx_begin(t);
		if (*rc == 0)
			return true;
		g_mutex_unlock(&t->m->lock);
		return false;
	}
	*rc = tx_end(t, *rc);
	while (t->m->retry && ++t->attempt < TX_TRIES) {
		pause_before_retry(t->attempt);
		*rc = tx_begin(t);
		if (*rc == 0)
			return true;
	}
	if (t->m->retry) {
		g_warning("metadata transaction given up after %d concurrent conflicts", TX_TRIES);
		*rc = -EBUSY;
	}
	g_mutex_unlock(&t->m->lock);
	return false;
}

/* ---- rows every topic touches ---- */

void meta_bind_name(struct meta_stmt *s, int i, const char *name)
{
	meta_bind_blob(s, i, name, strlen(name));
}

void meta_attr_read(struct meta_stmt *s, struct meta_attr *a)
{
	a->ino = (uint64_t)meta_col_int(s, 0);
	a->mode = (uint32_t)meta_col_int(s, 1);
	a->uid = (uint32_t)meta_col_int(s, 2);
	a->gid = (uint32_t)meta_col_int(s, 3);
	a->nlink = (uint32_t)meta_col_int(s, 4);
	a->size = (uint64_t)meta_col_int(s, 5);
	a->atime_ns = meta_col_int(s, 6);
	a->mtime_ns = meta_col_int(s, 7);
	a->ctime_ns = meta_col_int(s, 8);
	a->generation = (uint64_t)meta_col_int(s, 9);
}

int meta_getattr_locked(struct meta *m, uint64_t ino, struct meta_attr *out)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_GETATTR);
	int rc;

	meta_bind_int(s, 1, (int64_t)ino);
	rc = meta_step(s);
	if (rc == META_ROW && out)
		meta_attr_read(s, out);
	rc = rc == META_ROW ? 0 : rc == META_DONE ? -ENOENT : meta_sql_errno(m, rc);
	meta_reset(s);
	return rc;
}

int meta_by_ino(struct meta *m, enum meta_q q, uint64_t ino)
{
	struct meta_stmt *s = meta_stmt(m, q);

	meta_bind_int(s, 1, (int64_t)ino);
	return meta_run(m, s);
}

int64_t meta_count_by_ino(struct meta *m, enum meta_q q, uint64_t ino)
{
	struct meta_stmt *s = meta_stmt(m, q);
	int64_t n = -1;

	meta_bind_int(s, 1, (int64_t)ino);
	if (meta_step(s) == META_ROW)
		n = meta_col_int(s, 0);
	meta_reset(s);
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
		rc = meta_by_ino(m, META_Q_INODE_LOCKS_DROP, ino);
	if (rc == 0)
		rc = meta_by_ino(m, META_Q_DELETE_INODE, ino);
	return rc;
}

int meta_set_ctime(struct meta *m, uint64_t ino, int64_t now)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_SET_CTIME);

	meta_bind_int(s, 1, (int64_t)ino);
	meta_bind_int(s, 2, now);
	return meta_run(m, s);
}

/* ---- life cycle ---- */

/* The password of "scheme://user:password@host..." and the value of a
 * "password=" parameter are left out. */
char *meta_url_safe(const char *url)
{
	GString *out = g_string_new(url);
	const char *start = strstr(url, "://");
	char *pw;

	if (start) {
		size_t from = (size_t)(start - url) + 3;
		size_t end = from + strcspn(url + from, "/?");
		const char *at = g_strrstr_len(url + from, (gssize)(end - from), "@");
		const char *colon = at ? memchr(url + from, ':', (size_t)(at - url) - from) : NULL;

		if (colon)
			g_string_erase(out, colon - url, at - colon);
	}
	if ((pw = strstr(out->str, "password=")) != NULL) {
		gssize at = pw - out->str + 9;

		g_string_erase(out, at, (gssize)strcspn(out->str + at, "&"));
		g_string_insert(out, at, "***");
	}
	return g_string_free(out, FALSE);
}

/* A connection of the engine the URL's scheme names. */
static int open_db(const char *url, bool create, struct meta **out)
{
	struct meta *m = g_new0(struct meta, 1);
	int rc;

	g_mutex_init(&m->lock);
	meta_set_open_error(NULL);
	if (g_str_has_prefix(url, "sqlite://"))
		rc = meta_sqlite_connect(m, url, create);
	else if (g_str_has_prefix(url, "postgresql://") || g_str_has_prefix(url, "postgres://"))
		rc = meta_pg_connect(m, url, create);
	else
		rc = -EINVAL;
	if (rc == -EINVAL && !open_error)
		meta_set_open_error("not a metadata URL (sqlite:///PATH or postgresql://...)");
	if (rc < 0) {
		meta_close(m);
		return rc;
	}
	*out = m;
	return 0;
}

static int read_version(struct meta *m)
{
	struct meta_stmt *s = meta_stmt_text(m, "SELECT version FROM schema_version");
	int v = -1;

	if (!s)
		return -1; /* no schema at all */
	if (meta_step(s) == META_ROW)
		v = (int)meta_col_int(s, 0);
	meta_stmt_free(s);
	return v;
}

/* Runs the migration steps from the database's version to ours, each in
 * its own transaction with the version bump. A step another process made
 * meanwhile (two opening the same database at once) is found done when
 * the version is read again inside the transaction. */
static int migrate(struct meta *m, int from)
{
	int rc = 0;

	for (int v = from; rc == 0 && v < META_SCHEMA_VERSION; v++) {
		char *bump = g_strdup_printf("UPDATE schema_version SET version = %d"
					     " WHERE version = %d", v + 1, v);

		rc = m->engine->begin(m, true);
		if (rc < 0)
			break;
		/* version 0 has no table yet to read again */
		int now = v == 0 ? 0 : read_version(m);

		if (now == v)
			rc = meta_exec(m, m->engine->migrations[v]) ?: meta_exec(m, bump);
		else if (now < v)
			rc = -EPROTO; /* went back meanwhile: not ours to fix */
		if (rc == 0)
			rc = m->engine->commit(m, true);
		else
			m->engine->rollback(m, true);
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
		if (v < 0)
			meta_set_open_error("the %s database holds no shardfs namespace (shardfs init"
					    " makes one)", m->engine->name);
		else
			meta_set_open_error("the namespace is of schema version %d, newer than this"
					    " program's %d: use a newer shardfs", v,
					    META_SCHEMA_VERSION);
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

/* The root directory: the first inode, so its number is the first the
 * key gives on either engine. */
static int make_root(struct meta *m, uint32_t uid, uint32_t gid)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_INSERT_INODE);
	int rc;

	meta_bind_int(s, 1, S_IFDIR | 0755);
	meta_bind_int(s, 2, uid);
	meta_bind_int(s, 3, gid);
	meta_bind_int(s, 4, 2);
	meta_bind_int(s, 5, 0);
	meta_bind_int(s, 6, meta_now_ns());
	meta_bind_int(s, 7, META_ROOT_INO);
	rc = meta_step(s);
	if (rc == META_ROW && meta_col_int(s, 0) != META_ROOT_INO)
		rc = -EEXIST; /* a table not as new as it looks */
	meta_reset(s);
	return rc == META_ROW ? 0 : rc == META_DONE ? -EIO : rc;
}

int meta_create_schema(const char *url, struct meta **out)
{
	struct meta *m;
	int rc = open_db(url, true, &m);

	if (rc < 0)
		return rc;
	rc = read_version(m) >= 0 ? -EEXIST : migrate(m, 0);
	if (rc < 0) {
		meta_close(m);
		return rc;
	}
	*out = m;
	return 0;
}

static bool has_inodes(struct meta *m)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_HAS_INODES);
	int rc = meta_step(s);

	meta_reset(s);
	return rc != META_DONE;
}

int meta_open_empty(const char *url, struct meta **out)
{
	struct meta *m;
	int rc = open_db(url, true, &m), v;

	if (rc < 0)
		return rc;
	v = read_version(m);
	if (v < 0)
		rc = migrate(m, 0);
	else if (v != META_SCHEMA_VERSION)
		rc = -EPROTO;
	else if (has_inodes(m))
		rc = -EEXIST;
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
	int rc = meta_create_schema(url, &m);

	if (rc == 0) {
		struct meta_tx t = META_TX_DURABLE(m);

		while (meta_tx_loop(&t, &rc))
			rc = make_root(m, uid, gid);
		meta_close(m);
	}
	return rc;
}

void meta_close(struct meta *m)
{
	if (!m)
		return;
	for (int i = 0; i < META_Q_COUNT; i++)
		meta_stmt_free(m->stmt[i]);
	if (m->engine)
		m->engine->close(m);
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
