/*
 * meta_internal.h - what the files of the metadata engine share (private
 * to store/meta).
 *
 * The layout, and the one direction of its calls:
 *
 *   meta_namespace.c  names, inodes, attributes    -> meta_session.c, core
 *   meta_manifest.c   manifests, inline data, garbage -> meta_namespace.c, core
 *   meta_xattr.c      extended attributes          -> core
 *   meta_session.c    sessions and open files      -> core
 *   meta_check.c      the integrity check          -> core
 *   meta_nodes.c      storage nodes' identities    -> core
 *   meta_sql.c        the core: life cycle, schema, the statements,
 *                     transactions, errno mapping, rows every topic
 *                     touches                      -> engine
 *   meta_sqlite.c     the SQLite engine: URL, pragmas, checkpoints
 *   meta_vfs.c        its VFS                      (meta_sqlite.h)
 *
 * Nothing in the core calls a topic file, and no two files call each
 * other both ways.
 *
 * Locking: every function declared here that touches the database needs
 * m->lock held, which meta_tx_begin takes (or, for a read, the caller).
 */
#ifndef SHARDFS_STORE_META_INTERNAL_H
#define SHARDFS_STORE_META_INTERNAL_H

#include "meta.h"

#include <glib.h>
#include <sqlite3.h>

/* Every statement of the engine; their SQL text is in meta_sql.c. */
enum meta_q {
	/* namespace */
	META_Q_LOOKUP,
	META_Q_GETATTR,
	META_Q_DENTRY,
	META_Q_INSERT_INODE,
	META_Q_INSERT_DENTRY,
	META_Q_TOUCH_DIR,
	META_Q_ADD_NLINK,
	META_Q_SET_CTIME,
	META_Q_DELETE_DENTRY,
	META_Q_HAS_CHILDREN,
	META_Q_OPEN_COUNT,
	META_Q_PARTS_TO_GARBAGE,
	META_Q_DELETE_PARTS,
	META_Q_DELETE_XATTRS,
	META_Q_DELETE_INLINE,
	META_Q_CUT_INLINE,
	META_Q_DELETE_INODE,
	META_Q_MOVE_DENTRY,
	META_Q_SET_DENTRY_INO,
	META_Q_SET_PARENT,
	META_Q_PARENT_OF,
	META_Q_READDIR,
	META_Q_SETATTR,
	/* xattrs */
	META_Q_XATTR_EXISTS,
	META_Q_XATTR_SET,
	META_Q_XATTR_GET,
	META_Q_XATTR_LIST,
	META_Q_XATTR_REMOVE,
	/* manifests, inline data, garbage */
	META_Q_INSERT_PART,
	META_Q_SET_MANIFEST,
	META_Q_OBJECT_ID,
	META_Q_PARTS,
	META_Q_LIVE_PARTS,
	META_Q_GARBAGE_ADD,
	META_Q_INLINE_SET,
	META_Q_INLINE_GET,
	META_Q_SET_INLINE_SIZE,
	META_Q_GARBAGE_LIST,
	META_Q_DEGRADED_PARTS,
	META_Q_RELOCATE_PART,
	META_Q_DEGRADED_COUNT,
	META_Q_GARBAGE_DONE,
	/* sessions and open files */
	META_Q_SESSION_START,
	META_Q_HEARTBEAT,
	META_Q_OPEN_FILE,
	META_Q_CLOSE_FILE,
	META_Q_FORGET_CLOSED,
	META_Q_SESSION_FILES,
	META_Q_FORGET_SESSION_FILES,
	META_Q_END_SESSION,
	META_Q_DEAD_SESSIONS,
	/* storage nodes */
	META_Q_NODE_IDENTITY,
	META_Q_NODE_SET,
	META_Q_NODE_LOST,
	META_Q_SHARD_LOST,
	META_Q_COUNT,
};

struct meta {
	sqlite3 *db;
	GMutex lock;			  /* one thread at a time on db */
	sqlite3_stmt *stmt[META_Q_COUNT]; /* prepared on first use, lock */
	int checkpoint_frames;		  /* WAL size that calls for one (meta_sqlite.c) */
	int checkpoint_failed_at;	  /* WAL size at a failed one; lock */
};

/* ---- the core (meta_sql.c) ---- */

int64_t meta_now_ns(void);
/* An SQLite result code as a negative errno (0 for OK, ROW and DONE);
 * codes with no errno of their own are logged and give -EIO. */
int meta_sql_errno(struct meta *m, int rc);
/*
 * Statement q of this connection, prepared on its first use and then kept,
 * reset and unbound. The SQL is ours: one that does not prepare is a
 * program bug. Callers reset the statement when done with it, because one
 * left between rows keeps its read snapshot open and the connection's next
 * call would not see newer commits.
 */
sqlite3_stmt *meta_stmt(struct meta *m, enum meta_q q);
/* Runs a statement without rows and resets it; 0 or -errno (meta_sql_errno). */
int meta_run(struct meta *m, sqlite3_stmt *s);
/* The same, but any failure is -EIO. */
int meta_run_done(sqlite3_stmt *s);
/* Statement q with up to two integer parameters, as meta_run_done. */
int meta_run_ints(struct meta *m, enum meta_q q, int64_t a, int64_t b);
/* Binds a NUL-terminated name (or xattr name) as a blob, borrowed. */
void meta_bind_name(sqlite3_stmt *s, int i, const char *name);
/* Runs SQL text without rows; 0 or -errno. */
int meta_exec(struct meta *m, const char *text);

/* BEGIN IMMEDIATE, taking m->lock; meta_tx_end commits if rc is 0 (else
 * rolls back), releases the lock and returns rc or the commit's error. */
int meta_tx_begin(struct meta *m);
int meta_tx_end(struct meta *m, int rc);
/* The same, for a transaction whose commit is fsynced before it returns. */
int meta_tx_begin_durable(struct meta *m);
int meta_tx_end_durable(struct meta *m, int rc);

/* Rows every topic touches. */
/* The attributes from columns 0-9 of s, in the order of META_Q_GETATTR. */
void meta_attr_read(sqlite3_stmt *s, struct meta_attr *a);
/* out may be NULL (does ino exist?); -ENOENT. */
int meta_getattr_locked(struct meta *m, uint64_t ino, struct meta_attr *out);
/* Statement q with ino as its one parameter, without rows. */
int meta_by_ino(struct meta *m, enum meta_q q, uint64_t ino);
/* Column 0 of statement q's first row with ino as its parameter; -1 if none. */
int64_t meta_count_by_ino(struct meta *m, enum meta_q q, uint64_t ino);
int meta_destroy_inode(struct meta *m, uint64_t ino);
int meta_set_ctime(struct meta *m, uint64_t ino, int64_t now);

/* ---- across topics ---- */

/* meta_setattr inside a transaction (meta_namespace.c). */
int meta_setattr_locked(struct meta *m, uint64_t ino, const struct meta_setattr *set,
			struct meta_attr *out);
/* The open record of meta_open_file, for an inode known to exist
 * (meta_session.c). */
int meta_open_locked(struct meta *m, uint64_t sid, uint64_t ino);

#endif
