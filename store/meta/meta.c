/*
 * meta.c - the SQLite engine of the metadata interface (meta.h).
 *
 * Every write is one BEGIN IMMEDIATE transaction: the database write lock
 * is taken up front, so two processes never deadlock upgrading a read
 * lock, and a busy database is waited for (busy_timeout) rather than
 * failed. WAL mode lets readers go on meanwhile. synchronous=NORMAL: a
 * commit survives a crash of the process at once and a power loss from
 * the next WAL sync on; commits that must survive power loss (a file's
 * fsync) run with synchronous=FULL.
 *
 * Statements are prepared once per connection and kept. A struct meta is
 * guarded by one mutex: one thread at a time per connection.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <sqlite3.h>
#include <string.h>
#include <time.h>

#define S_TYPE(mode) ((mode) & S_IFMT)
#define TARGET_MAX 4096u
#define XATTR_NAME_MAX_LEN 255u
#define XATTR_VALUE_MAX (64u << 10)



static const char *const sql[META_Q_COUNT] = {
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
	[META_Q_XATTR_EXISTS] = "SELECT 1 FROM xattrs WHERE ino = ?1 AND name = ?2",
	[META_Q_XATTR_SET] = "INSERT OR REPLACE INTO xattrs (ino, name, value) VALUES (?1, ?2, ?3)",
	[META_Q_XATTR_GET] = "SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2",
	[META_Q_XATTR_LIST] = "SELECT name FROM xattrs WHERE ino = ?1 ORDER BY name",
	[META_Q_XATTR_REMOVE] = "DELETE FROM xattrs WHERE ino = ?1 AND name = ?2",
	[META_Q_INSERT_PART] = "INSERT INTO parts (ino, idx, length, checksum, k, m, nodes, object_id)"
				 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[META_Q_SET_MANIFEST] = "UPDATE inodes SET size = ?2, object_id = ?3, mtime = ?4,"
				  " ctime = ?4 WHERE ino = ?1",
	[META_Q_OBJECT_ID] = "SELECT object_id FROM inodes WHERE ino = ?1",
	[META_Q_PARTS] = "SELECT idx, length, checksum, k, m, nodes, object_id FROM parts"
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
};



/* A directory entry as the write paths see it. */
struct dentry {
	int64_t id;
	uint64_t ino;
	uint32_t mode;
};

int64_t meta_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int sql_errno(struct meta *m, int rc)
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

/*
 * Statement q of this connection, prepared on its first use and then kept,
 * reset and unbound; caller holds m->lock. The SQL is ours: one that does
 * not prepare is a program bug. Callers reset the statement when done with
 * it, because one left between rows keeps its read snapshot open and the
 * connection's next call would not see newer commits.
 */
sqlite3_stmt *meta_stmt(struct meta *m, enum meta_q q)
{
	if (!m->stmt[q] && sqlite3_prepare_v3(m->db, sql[q], -1, SQLITE_PREPARE_PERSISTENT,
						 &m->stmt[q], NULL) != SQLITE_OK)
		g_error("metadata statement %s does not prepare: %s", sql[q], sqlite3_errmsg(m->db));
	sqlite3_reset(m->stmt[q]);
	sqlite3_clear_bindings(m->stmt[q]);
	return m->stmt[q];
}

/* Runs a statement without rows; 0 or -errno. */
static int run(struct meta *m, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : sql_errno(m, rc);
}

int meta_exec(struct meta *m, const char *text)
{
	char *err = NULL;
	int rc = sqlite3_exec(m->db, text, NULL, NULL, &err);

	if (rc != SQLITE_OK)
		g_warning("metadata: %s: %s", text, err ? err : "?");
	sqlite3_free(err);
	return sql_errno(m, rc);
}

int meta_tx_begin(struct meta *m)
{
	g_mutex_lock(&m->lock);
	int rc = meta_exec(m, "BEGIN IMMEDIATE");

	if (rc < 0)
		g_mutex_unlock(&m->lock);
	return rc;
}

int meta_tx_end(struct meta *m, int rc)
{
	int crc = meta_exec(m, rc == 0 ? "COMMIT" : "ROLLBACK");

	if (rc == 0 && crc < 0) {
		meta_exec(m, "ROLLBACK");
		rc = crc;
	}
	g_mutex_unlock(&m->lock);
	return rc;
}

static void bind_name(sqlite3_stmt *s, int i, const char *name)
{
	sqlite3_bind_blob(s, i, name, (int)strlen(name), SQLITE_STATIC);
}

static void read_attr(sqlite3_stmt *s, struct meta_attr *a)
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
		read_attr(s, out);
	rc = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : sql_errno(m, rc);
	sqlite3_reset(s);
	return rc;
}

/* 0 if ino is a directory; -ENOENT, -ENOTDIR. */
static int dir_check(struct meta *m, uint64_t ino)
{
	struct meta_attr a;
	int rc = meta_getattr_locked(m, ino, &a);

	return rc < 0 ? rc : S_ISDIR(a.mode) ? 0 : -ENOTDIR;
}

static bool is_dot(const char *name)
{
	return !strcmp(name, ".") || !strcmp(name, "..");
}

static int name_check(const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return -ENOENT;
	if (n > META_NAME_MAX)
		return -ENAMETOOLONG;
	return strchr(name, '/') ? -EINVAL : 0;
}

/* The checks of parent/name in the order a path walk makes them: the
 * parent must be a directory (-ENOENT, -ENOTDIR) before "." or ".." (then
 * dot_rc) or a bad name (name_check) can be told. */
static int entry_check(struct meta *m, uint64_t parent, const char *name, int dot_rc)
{
	int rc = dir_check(m, parent);

	if (rc == 0 && is_dot(name))
		rc = dot_rc;
	return rc ?: name_check(name);
}

/* The entry parent/name: 0 with *d, -ENOENT, or an SQL error. */
static int find_dentry(struct meta *m, uint64_t parent, const char *name, struct dentry *d)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_DENTRY);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)parent);
	bind_name(s, 2, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		d->id = sqlite3_column_int64(s, 0);
		d->ino = (uint64_t)sqlite3_column_int64(s, 1);
		d->mode = (uint32_t)sqlite3_column_int64(s, 2);
	}
	rc = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : sql_errno(m, rc);
	sqlite3_reset(s);
	return rc;
}

static int touch_dir(struct meta *m, uint64_t dir, int64_t now)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_TOUCH_DIR);

	sqlite3_bind_int64(s, 1, (int64_t)dir);
	sqlite3_bind_int64(s, 2, now);
	return run(m, s);
}

static int add_nlink(struct meta *m, uint64_t ino, int delta, int64_t now)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_ADD_NLINK);

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_int64(s, 2, delta);
	sqlite3_bind_int64(s, 3, now);
	return run(m, s);
}

int meta_by_ino(struct meta *m, enum meta_q q, uint64_t ino)
{
	sqlite3_stmt *s = meta_stmt(m, q);

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	return run(m, s);
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

static bool has_children(struct meta *m, uint64_t dir)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_HAS_CHILDREN);
	bool yes;

	sqlite3_bind_int64(s, 1, (int64_t)dir);
	yes = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_reset(s);
	return yes;
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

/* One link of a non-directory went away; the inode goes with its last
 * link unless a session still has it open. */
static int drop_link(struct meta *m, uint64_t ino, int64_t now)
{
	struct meta_attr a;
	int rc = add_nlink(m, ino, -1, now);

	if (rc == 0)
		rc = meta_getattr_locked(m, ino, &a);
	if (rc == 0 && a.nlink == 0 && meta_count_by_ino(m, META_Q_OPEN_COUNT, ino) == 0)
		rc = meta_destroy_inode(m, ino);
	return rc;
}

/* Inserts an inode and its entry in parent; *out its attributes. */
static int make_node(struct meta *m, uint64_t parent, const char *name, uint32_t mode,
		     uint32_t uid, uint32_t gid, const char *target, struct meta_attr *out)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_INSERT_INODE);
	int64_t now = meta_now_ns();
	bool dir = S_ISDIR(mode);
	uint8_t object_id[16];
	uint64_t ino;
	int rc;

	sqlite3_bind_int64(s, 1, mode);
	sqlite3_bind_int64(s, 2, uid);
	sqlite3_bind_int64(s, 3, gid);
	sqlite3_bind_int64(s, 4, dir ? 2 : 1);
	sqlite3_bind_int64(s, 5, target ? (int64_t)strlen(target) : 0);
	sqlite3_bind_int64(s, 6, now);
	if (dir)
		sqlite3_bind_int64(s, 7, (int64_t)parent);
	if (target)
		sqlite3_bind_blob(s, 8, target, (int)strlen(target), SQLITE_STATIC);
	if (S_ISREG(mode)) {
		for (int i = 0; i < 4; i++)
			((uint32_t *)object_id)[i] = g_random_int();
		sqlite3_bind_blob(s, 9, object_id, 16, SQLITE_STATIC);
	}
	rc = run(m, s);
	if (rc < 0)
		return rc;
	ino = (uint64_t)sqlite3_last_insert_rowid(m->db);
	s = meta_stmt(m, META_Q_INSERT_DENTRY);
	sqlite3_bind_int64(s, 1, (int64_t)parent);
	bind_name(s, 2, name);
	sqlite3_bind_int64(s, 3, (int64_t)ino);
	rc = run(m, s);
	if (rc == 0 && dir)
		rc = add_nlink(m, parent, 1, now);
	if (rc == 0)
		rc = touch_dir(m, parent, now);
	if (rc == 0 && out)
		rc = meta_getattr_locked(m, ino, out);
	return rc;
}

/* The checks every creation shares: parent a directory, name valid and free. */
static int creation_check(struct meta *m, uint64_t parent, const char *name)
{
	struct dentry d;
	int rc = entry_check(m, parent, name, -EEXIST);

	if (rc == 0) {
		rc = find_dentry(m, parent, name, &d);
		rc = rc == 0 ? -EEXIST : rc == -ENOENT ? 0 : rc;
	}
	return rc;
}

static int create_typed(struct meta *m, uint64_t parent, const char *name, uint32_t mode,
			uint32_t uid, uint32_t gid, const char *target, struct meta_attr *out)
{
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	rc = creation_check(m, parent, name);
	if (rc == 0)
		rc = make_node(m, parent, name, mode, uid, gid, target, out);
	return meta_tx_end(m, rc);
}

/* sid 0: no open record. */
static int create_file(struct meta *m, uint64_t sid, uint64_t parent, const char *name,
		       uint32_t mode, uint32_t uid, uint32_t gid, bool excl, struct meta_attr *out,
		       bool *made)
{
	struct dentry d;
	int rc = meta_tx_begin(m);

	*made = false;
	if (rc < 0)
		return rc;
	rc = creation_check(m, parent, name);
	if (rc == -EEXIST && !excl && is_dot(name))
		rc = -EISDIR; /* "dir/." and "dir/.." name directories, as any other */
	else if (rc == -EEXIST && !excl && find_dentry(m, parent, name, &d) == 0)
		rc = S_ISDIR(d.mode) ? -EISDIR : meta_getattr_locked(m, d.ino, out);
	else if (rc == 0 && (rc = make_node(m, parent, name, S_IFREG | (mode & 07777), uid, gid,
					    NULL, out)) == 0)
		*made = true;
	if (rc == 0 && sid && S_ISREG(out->mode))
		rc = meta_open_locked(m, sid, out->ino);
	rc = meta_tx_end(m, rc);
	*made = *made && rc == 0;
	return rc;
}

int meta_create(struct meta *m, uint64_t parent, const char *name, uint32_t mode, uint32_t uid,
		uint32_t gid, bool excl, struct meta_attr *out)
{
	bool made;

	return create_file(m, 0, parent, name, mode, uid, gid, excl, out, &made);
}

int meta_create_open(struct meta *m, uint64_t sid, uint64_t parent, const char *name,
		     uint32_t mode, uint32_t uid, uint32_t gid, bool excl, struct meta_attr *out,
		     bool *made)
{
	*made = false;
	return sid ? create_file(m, sid, parent, name, mode, uid, gid, excl, out, made) : -EINVAL;
}

int meta_mkdir(struct meta *m, uint64_t parent, const char *name, uint32_t mode, uint32_t uid,
	       uint32_t gid, struct meta_attr *out)
{
	return create_typed(m, parent, name, S_IFDIR | (mode & 07777), uid, gid, NULL, out);
}

int meta_mknod(struct meta *m, uint64_t parent, const char *name, uint32_t mode, uint32_t uid,
	       uint32_t gid, struct meta_attr *out)
{
	if (S_TYPE(mode) != META_S_IFSTREAM)
		return -EPERM;
	return create_typed(m, parent, name, mode & (S_IFMT | 07777), uid, gid, NULL, out);
}

int meta_symlink(struct meta *m, uint64_t parent, const char *name, const char *target,
		 uint32_t uid, uint32_t gid, struct meta_attr *out)
{
	size_t n = strlen(target);

	if (n == 0)
		return -ENOENT;
	if (n >= TARGET_MAX)
		return -ENAMETOOLONG;
	return create_typed(m, parent, name, S_IFLNK | 0777, uid, gid, target, out);
}

int meta_readlink(struct meta *m, uint64_t ino, char **target)
{
	sqlite3_stmt *s;
	int rc;

	g_mutex_lock(&m->lock);
	sqlite3_prepare_v2(m->db, "SELECT mode, target FROM inodes WHERE ino = ?1", -1, &s, NULL);
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && !S_ISLNK((uint32_t)sqlite3_column_int64(s, 0))) {
		rc = -EINVAL;
	} else if (rc == SQLITE_ROW) {
		*target = g_strndup(sqlite3_column_blob(s, 1), (gsize)sqlite3_column_bytes(s, 1));
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : sql_errno(m, rc);
	}
	sqlite3_finalize(s);
	g_mutex_unlock(&m->lock);
	return rc;
}

int meta_link(struct meta *m, uint64_t ino, uint64_t newparent, const char *newname,
	      struct meta_attr *out)
{
	struct meta_attr a;
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	rc = meta_getattr_locked(m, ino, &a);
	if (rc == 0)
		rc = creation_check(m, newparent, newname);
	/* as link(2): the new name is resolved before a directory is refused */
	if (rc == 0 && S_ISDIR(a.mode))
		rc = -EPERM;
	/* as link(2): a file already unlinked (open, nlink 0) is not revived */
	if (rc == 0 && a.nlink == 0)
		rc = -ENOENT;
	if (rc == 0) {
		sqlite3_stmt *s = meta_stmt(m, META_Q_INSERT_DENTRY);
		int64_t now = meta_now_ns();

		sqlite3_bind_int64(s, 1, (int64_t)newparent);
		bind_name(s, 2, newname);
		sqlite3_bind_int64(s, 3, (int64_t)ino);
		rc = run(m, s);
		if (rc == 0)
			rc = add_nlink(m, ino, 1, now);
		if (rc == 0)
			rc = touch_dir(m, newparent, now);
		if (rc == 0 && out)
			rc = meta_getattr_locked(m, ino, out);
	}
	return meta_tx_end(m, rc);
}

static int delete_dentry(struct meta *m, int64_t id)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_DELETE_DENTRY);

	sqlite3_bind_int64(s, 1, id);
	return run(m, s);
}

/* Removes entry d of parent (a file or an empty directory). */
static int remove_entry(struct meta *m, uint64_t parent, const struct dentry *d, int64_t now)
{
	int rc = delete_dentry(m, d->id);

	if (rc == 0 && S_ISDIR(d->mode)) {
		rc = meta_destroy_inode(m, d->ino);
		if (rc == 0)
			rc = add_nlink(m, parent, -1, now);
	} else if (rc == 0) {
		rc = drop_link(m, d->ino, now);
	}
	if (rc == 0)
		rc = touch_dir(m, parent, now);
	return rc;
}

int meta_unlink(struct meta *m, uint64_t parent, const char *name)
{
	struct dentry d;
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	rc = entry_check(m, parent, name, -EISDIR);
	if (rc == 0)
		rc = find_dentry(m, parent, name, &d);
	if (rc == 0 && S_ISDIR(d.mode))
		rc = -EISDIR;
	if (rc == 0)
		rc = remove_entry(m, parent, &d, meta_now_ns());
	return meta_tx_end(m, rc);
}

int meta_rmdir(struct meta *m, uint64_t parent, const char *name)
{
	struct dentry d;
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	rc = entry_check(m, parent, name, strcmp(name, ".") ? -ENOTEMPTY : -EINVAL);
	if (rc == 0)
		rc = find_dentry(m, parent, name, &d);
	if (rc == 0 && !S_ISDIR(d.mode))
		rc = -ENOTDIR;
	if (rc == 0 && has_children(m, d.ino))
		rc = -ENOTEMPTY;
	if (rc == 0)
		rc = remove_entry(m, parent, &d, meta_now_ns());
	return meta_tx_end(m, rc);
}

/* -EINVAL if dir is ancestor (or equal) of node: a directory cannot move
 * into its own subtree. */
static int subtree_check(struct meta *m, uint64_t dir, uint64_t node)
{
	for (uint64_t cur = node;;) {
		if (cur == dir)
			return -EINVAL;
		if (cur == META_ROOT_INO)
			return 0;
		sqlite3_stmt *s = meta_stmt(m, META_Q_PARENT_OF);

		sqlite3_bind_int64(s, 1, (int64_t)cur);
		if (sqlite3_step(s) != SQLITE_ROW) {
			sqlite3_reset(s);
			return -ENOENT;
		}
		cur = (uint64_t)sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
	}
}

static int set_parent(struct meta *m, uint64_t dir, uint64_t parent)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_SET_PARENT);

	sqlite3_bind_int64(s, 1, (int64_t)dir);
	sqlite3_bind_int64(s, 2, (int64_t)parent);
	return run(m, s);
}

/* A directory moves from one parent to another: parent pointer and the
 * parents' link counts (each subdirectory's ".." is a link). */
static int reparent_dir(struct meta *m, uint64_t dir, uint64_t from, uint64_t to, int64_t now)
{
	int rc = 0;

	if (from == to)
		return 0;
	rc = set_parent(m, dir, to);
	if (rc == 0)
		rc = add_nlink(m, from, -1, now);
	if (rc == 0)
		rc = add_nlink(m, to, 1, now);
	return rc;
}

int meta_set_ctime(struct meta *m, uint64_t ino, int64_t now)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_SET_CTIME);

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_int64(s, 2, now);
	return run(m, s);
}

static int exchange(struct meta *m, uint64_t parent, const struct dentry *a, uint64_t newparent,
		    const struct dentry *b, int64_t now)
{
	int rc = 0;
	sqlite3_stmt *s;

	for (int i = 0; rc == 0 && i < 2; i++) {
		s = meta_stmt(m, META_Q_SET_DENTRY_INO);
		sqlite3_bind_int64(s, 1, i ? b->id : a->id);
		sqlite3_bind_int64(s, 2, (int64_t)(i ? a->ino : b->ino));
		rc = run(m, s);
	}
	if (rc == 0 && S_ISDIR(a->mode))
		rc = reparent_dir(m, a->ino, parent, newparent, now);
	if (rc == 0 && S_ISDIR(b->mode))
		rc = reparent_dir(m, b->ino, newparent, parent, now);
	if (rc == 0)
		rc = meta_set_ctime(m, a->ino, now);
	if (rc == 0)
		rc = meta_set_ctime(m, b->ino, now);
	return rc;
}

/* The POSIX rules for replacing dst with src. */
static int replace_check(struct meta *m, const struct dentry *src, const struct dentry *dst)
{
	if (S_ISDIR(src->mode) && !S_ISDIR(dst->mode))
		return -ENOTDIR;
	if (!S_ISDIR(src->mode) && S_ISDIR(dst->mode))
		return -EISDIR;
	if (S_ISDIR(dst->mode) && has_children(m, dst->ino))
		return -ENOTEMPTY;
	return 0;
}

/*
 * The rules of renameat2(2) once both entries are looked up (dst NULL if
 * newname is free), in the order Linux applies them, so that the error
 * reported when several apply is the kernel's: NOREPLACE and EXCHANGE
 * first, then loops (a directory into its own subtree: EINVAL; over one
 * of the source's ancestors: ENOTEMPTY, or EINVAL for an exchange), then
 * two names of one inode (1: nothing to do, success), then the rules for
 * replacing. 0 to go on.
 */
static int rename_check(struct meta *m, uint64_t parent, const struct dentry *src,
			uint64_t newparent, const struct dentry *dst, unsigned flags)
{
	bool swap = flags & META_RENAME_EXCHANGE;
	int rc = 0;

	if (dst && (flags & META_RENAME_NOREPLACE))
		return -EEXIST;
	if (!dst && swap)
		return -ENOENT;
	if (S_ISDIR(src->mode))
		rc = subtree_check(m, src->ino, newparent);
	if (rc == 0 && dst && S_ISDIR(dst->mode)) {
		rc = subtree_check(m, dst->ino, parent);
		rc = rc == -EINVAL && !swap ? -ENOTEMPTY : rc;
	}
	if (rc == 0 && dst && dst->ino == src->ino)
		return 1;
	return rc || swap || !dst ? rc : replace_check(m, src, dst);
}

static int move(struct meta *m, uint64_t parent, const struct dentry *src, uint64_t newparent,
		const char *newname, const struct dentry *dst, int64_t now)
{
	int rc = dst ? remove_entry(m, newparent, dst, now) : 0;

	if (rc == 0) {
		sqlite3_stmt *s = meta_stmt(m, META_Q_MOVE_DENTRY);

		sqlite3_bind_int64(s, 1, src->id);
		sqlite3_bind_int64(s, 2, (int64_t)newparent);
		bind_name(s, 3, newname);
		rc = run(m, s);
	}
	if (rc == 0 && S_ISDIR(src->mode))
		rc = reparent_dir(m, src->ino, parent, newparent, now);
	if (rc == 0)
		rc = meta_set_ctime(m, src->ino, now);
	return rc;
}

int meta_rename(struct meta *m, uint64_t parent, const char *name, uint64_t newparent,
		const char *newname, unsigned flags)
{
	struct dentry src, dst;
	bool has_dst;
	int64_t now = meta_now_ns();
	int rc;

	if (flags & ~(META_RENAME_NOREPLACE | META_RENAME_EXCHANGE) ||
	    flags == (META_RENAME_NOREPLACE | META_RENAME_EXCHANGE))
		return -EINVAL;
	rc = meta_tx_begin(m);
	if (rc < 0)
		return rc;
	/* as renameat2(2) resolves them: both parents, then the names */
	rc = dir_check(m, parent) ?: dir_check(m, newparent);
	if (rc == 0 && (is_dot(name) || is_dot(newname)))
		rc = -EINVAL;
	if (rc == 0)
		rc = name_check(name) ?: find_dentry(m, parent, name, &src);
	if (rc == 0)
		rc = name_check(newname);
	if (rc == 0) {
		rc = find_dentry(m, newparent, newname, &dst);
		has_dst = rc == 0;
		rc = rc == -ENOENT ? 0 : rc;
	}
	if (rc == 0)
		rc = rename_check(m, parent, &src, newparent, has_dst ? &dst : NULL, flags);
	if (rc == 0 && (flags & META_RENAME_EXCHANGE))
		rc = exchange(m, parent, &src, newparent, &dst, now);
	else if (rc == 0)
		rc = move(m, parent, &src, newparent, newname, has_dst ? &dst : NULL, now);
	if (rc == 0)
		rc = touch_dir(m, parent, now);
	if (rc == 0 && newparent != parent)
		rc = touch_dir(m, newparent, now);
	return meta_tx_end(m, rc == 1 ? 0 : rc);
}

/* "." and "..": the directory itself or its parent (the root's is itself). */
static int lookup_dot(struct meta *m, uint64_t parent, const char *name, struct meta_attr *out)
{
	uint64_t target = parent;
	sqlite3_stmt *s;
	int rc = dir_check(m, parent);

	if (rc == 0 && !strcmp(name, "..") && parent != META_ROOT_INO) {
		s = meta_stmt(m, META_Q_PARENT_OF);
		sqlite3_bind_int64(s, 1, (int64_t)parent);
		rc = sqlite3_step(s) == SQLITE_ROW ? 0 : -ENOENT;
		target = (uint64_t)sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
	}
	return rc ?: meta_getattr_locked(m, target, out);
}

static int lookup_entry(struct meta *m, uint64_t parent, const char *name, struct meta_attr *out)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_LOOKUP);
	int rc;

	sqlite3_bind_int64(s, 1, (int64_t)parent);
	bind_name(s, 2, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
		read_attr(s, out);
		rc = 0;
	} else if (rc == SQLITE_ROW) { /* the parent, without the name */
		rc = S_ISDIR((uint32_t)sqlite3_column_int64(s, 10)) ? -ENOENT : -ENOTDIR;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : sql_errno(m, rc);
	}
	sqlite3_reset(s);
	return rc;
}

int meta_lookup(struct meta *m, uint64_t parent, const char *name, struct meta_attr *out)
{
	int rc;

	g_mutex_lock(&m->lock);
	rc = name_check(name);
	if (rc < 0) /* a path walk resolves the parent before it reads the name */
		rc = dir_check(m, parent) ?: rc;
	else if (is_dot(name))
		rc = lookup_dot(m, parent, name, out);
	else
		rc = lookup_entry(m, parent, name, out);
	g_mutex_unlock(&m->lock);
	return rc;
}

int meta_getattr(struct meta *m, uint64_t ino, struct meta_attr *out)
{
	int rc;

	g_mutex_lock(&m->lock);
	rc = meta_getattr_locked(m, ino, out);
	g_mutex_unlock(&m->lock);
	return rc;
}

/* Inline content past a new, smaller size goes; a larger size needs
 * nothing, since bytes past the content read as zeros. */
static int cut_inline(struct meta *m, uint64_t ino, uint64_t size)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_CUT_INLINE);

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_int64(s, 2, (int64_t)MIN(size, (uint64_t)INT64_MAX));
	return run(m, s);
}

/* Whether field f of set applies to what a holds (its guard). */
static bool applies(const struct meta_setattr *set, unsigned f, uint32_t now, uint32_t base)
{
	return (set->mask & f) && (!(set->guard & f) || now == base);
}

uint32_t meta_mode_without_suidgid(uint32_t mode)
{
	return mode & ~(S_ISUID | ((mode & S_IXGRP) ? S_ISGID : 0));
}

void meta_setattr_apply(const struct meta_setattr *set, int64_t now, struct meta_attr *a)
{
	if (applies(set, META_SET_MODE, a->mode & 07777, set->base_mode))
		a->mode = S_TYPE(a->mode) | (set->mode & 07777);
	else if ((set->mask & META_SET_KILL_SUIDGID) && S_ISREG(a->mode))
		a->mode = meta_mode_without_suidgid(a->mode);
	if (applies(set, META_SET_UID, a->uid, set->base_uid))
		a->uid = set->uid;
	if (applies(set, META_SET_GID, a->gid, set->base_gid))
		a->gid = set->gid;
	if (set->mask & META_SET_SIZE) {
		a->size = set->size;
		a->mtime_ns = now;
	}
	if (set->mask & META_SET_ATIME)
		a->atime_ns = set->atime_ns;
	if (set->mask & META_SET_MTIME)
		a->mtime_ns = set->mtime_ns;
}

int meta_setattr_locked(struct meta *m, uint64_t ino, const struct meta_setattr *set,
			struct meta_attr *out)
{
	struct meta_attr a;
	int rc = meta_getattr_locked(m, ino, &a);

	if (rc == 0 && (set->mask & META_SET_SIZE) && !S_ISREG(a.mode) &&
	    S_TYPE(a.mode) != META_S_IFSTREAM) /* a stream's size: bytes written */
		rc = S_ISDIR(a.mode) ? -EISDIR : -EINVAL;
	if (rc)
		return rc;
	int64_t now = meta_now_ns();
	sqlite3_stmt *s = meta_stmt(m, META_Q_SETATTR);
	uint32_t mode = a.mode;

	meta_setattr_apply(set, now, &a);
	if (set->mask == META_SET_KILL_SUIDGID && a.mode == mode) {
		if (out) /* nothing to clear: nothing changes, not even ctime */
			*out = a;
		return 0;
	}
	a.ctime_ns = now;
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_int64(s, 2, a.mode);
	sqlite3_bind_int64(s, 3, a.uid);
	sqlite3_bind_int64(s, 4, a.gid);
	sqlite3_bind_int64(s, 5, (int64_t)a.size);
	sqlite3_bind_int64(s, 6, a.atime_ns);
	sqlite3_bind_int64(s, 7, a.mtime_ns);
	sqlite3_bind_int64(s, 8, a.ctime_ns);
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : sql_errno(m, sqlite3_errcode(m->db));
	sqlite3_reset(s);
	if (rc == 0 && (set->mask & META_SET_SIZE))
		rc = cut_inline(m, ino, a.size);
	if (rc == 0 && out)
		*out = a;
	return rc;
}

int meta_setattr(struct meta *m, uint64_t ino, const struct meta_setattr *set,
		 struct meta_attr *out)
{
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	return meta_tx_end(m, meta_setattr_locked(m, ino, set, out));
}

int meta_readdir(struct meta *m, uint64_t ino, uint64_t cookie, unsigned max, meta_dirent_fn fn,
		 void *arg)
{
	sqlite3_stmt *s;
	int rc;

	g_mutex_lock(&m->lock);
	rc = dir_check(m, ino);
	if (rc < 0)
		goto out;
	s = meta_stmt(m, META_Q_READDIR);
	sqlite3_bind_int64(s, 1, (int64_t)ino);
	sqlite3_bind_int64(s, 2, (int64_t)cookie);
	sqlite3_bind_int64(s, 3, max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		char *name = g_strndup(sqlite3_column_blob(s, 1), (gsize)sqlite3_column_bytes(s, 1));
		int stop = fn(arg, name, (uint64_t)sqlite3_column_int64(s, 2),
			      (uint32_t)sqlite3_column_int64(s, 3), (uint64_t)sqlite3_column_int64(s, 0));

		g_free(name);
		if (stop)
			break;
	}
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sql_errno(m, rc);
	sqlite3_reset(s);
out:
	g_mutex_unlock(&m->lock);
	return rc;
}

int meta_statfs(struct meta *m, struct meta_statfs *out)
{
	sqlite3_stmt *s;
	int rc;

	g_mutex_lock(&m->lock);
	sqlite3_prepare_v2(m->db, "SELECT count(*), coalesce(sum(size), 0) FROM inodes", -1, &s, NULL);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		out->inodes = (uint64_t)sqlite3_column_int64(s, 0);
		out->bytes = (uint64_t)sqlite3_column_int64(s, 1);
	}
	rc = rc == SQLITE_ROW ? 0 : sql_errno(m, rc);
	sqlite3_finalize(s);
	g_mutex_unlock(&m->lock);
	return rc;
}
