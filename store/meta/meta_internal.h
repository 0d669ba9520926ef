/*
 * meta_internal.h - what the files of the SQLite metadata engine share
 * (private to store/meta).
 */
#ifndef SHARDFS_STORE_META_INTERNAL_H
#define SHARDFS_STORE_META_INTERNAL_H

#include "meta.h"

#include <glib.h>
#include <sqlite3.h>

enum meta_q {
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
	META_Q_XATTR_EXISTS,
	META_Q_XATTR_SET,
	META_Q_XATTR_GET,
	META_Q_XATTR_LIST,
	META_Q_XATTR_REMOVE,
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
	META_Q_GARBAGE_DONE,
	META_Q_SESSION_START,
	META_Q_HEARTBEAT,
	META_Q_OPEN_FILE,
	META_Q_CLOSE_FILE,
	META_Q_FORGET_CLOSED,
	META_Q_SESSION_FILES,
	META_Q_FORGET_SESSION_FILES,
	META_Q_END_SESSION,
	META_Q_DEAD_SESSIONS,
	META_Q_COUNT,
};


struct meta {
	sqlite3 *db;
	GMutex lock;			       /* one thread at a time on db */
	sqlite3_stmt *stmt[META_Q_COUNT];      /* prepared on first use, lock */
	int checkpoint_frames;		       /* WAL size that calls for one */
	int checkpoint_failed_at;	       /* WAL size at a failed one; lock */
};

/* The name of the engine's SQLite VFS (meta_vfs.c), registered on first
 * call; NULL if it could not be, and then SQLite's default serves. */
#define META_VFS_NAME "shardfs-meta"
const char *meta_vfs_name(void);

/*
 * Statement q of this connection, prepared on its first use and then kept,
 * reset and unbound; caller holds m->lock.
 */
sqlite3_stmt *meta_stmt(struct meta *m, enum meta_q q);
int64_t meta_now_ns(void);
/* Runs SQL text without rows; 0 or -errno. Caller holds m->lock. */
int meta_exec(struct meta *m, const char *text);
/* BEGIN IMMEDIATE, taking m->lock; meta_tx_end commits if rc is 0 (else
 * rolls back), releases the lock and returns rc or the commit's error. */
int meta_tx_begin(struct meta *m);
int meta_tx_end(struct meta *m, int rc);
/* The following need m->lock (or a transaction). */
int meta_getattr_locked(struct meta *m, uint64_t ino, struct meta_attr *out);
/* meta_setattr inside a transaction. */
int meta_setattr_locked(struct meta *m, uint64_t ino, const struct meta_setattr *set,
			struct meta_attr *out);
/* The open record of meta_open_file, for an inode known to exist. */
int meta_open_locked(struct meta *m, uint64_t sid, uint64_t ino);
int meta_by_ino(struct meta *m, enum meta_q q, uint64_t ino);
int64_t meta_count_by_ino(struct meta *m, enum meta_q q, uint64_t ino);
int meta_destroy_inode(struct meta *m, uint64_t ino);
int meta_set_ctime(struct meta *m, uint64_t ino, int64_t now);

#endif
