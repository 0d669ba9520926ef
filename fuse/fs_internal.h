/*
 * fs_internal.h - what the files of the FUSE layer share (private to fuse/).
 *
 * Lock order: fs->lock, then an inode's lock; a store or metadata call may
 * be made with an inode's lock held (never with fs->lock held).
 */
#ifndef SHARDFS_FUSE_FS_INTERNAL_H
#define SHARDFS_FUSE_FS_INTERNAL_H

#define FUSE_USE_VERSION 312

#include "fs.h"
#include "store/meta/meta.h"
#include "store/store.h"

#include <fuse_lowlevel.h>
#include <glib.h>

struct fs {
	struct store *store;
	GAsyncQueue *metas;	/* idle struct meta connections */
	uint64_t sid;		/* this mount's metadata session (atomic: fs_sid) */
	unsigned lease_s;	/* the session's lease */
	size_t part_size;
	double attr_timeout, entry_timeout;
	GMutex lock;
	GHashTable *inodes;	/* ino -> struct fs_inode, lock */
	GHashTable *seen;	/* ino -> struct fs_seen (keep_cache), lock */
	GHashTable *lookups;	/* ino -> struct fs_lookup, lock */
	GArray *unpins;		/* struct fs_unpin, oldest first, lock */
	GArray *closes;		/* uint64_t inos closed, records not yet dropped, lock */
	GThread *housekeeper;
	GThread *repairer;	/* NULL when the mount does not repair */
	GThread *backuper;	/* NULL when the mount makes no backups */
	unsigned backup_interval_s, backups_kept;
	unsigned repair_interval_s;
	uint64_t repair_bytes_per_s; /* 0: unbounded */
	GMutex stop_lock;
	GCond stop_cond;
	bool stopping;		/* stop_lock */
	struct fuse_session *se;
	/* the INIT exchange (mount.c): until answered, one request at a time */
	bool init_seen, init_answered, kernel_killpriv, kernel_dio_mmap;
	uint64_t init_unique;
	bool direct_io; /* the kernel keeps direct I/O coherent (atomic) */
	struct fs_streams *streams; /* stream.c */
	struct fs_locks *locks;	    /* lock.c */
	struct fs_metrics *metrics; /* metrics.c; NULL when the mount serves none */
	struct metrics_server *metrics_server;
};

/* What the mount last saw of a file's content, for keep_cache. */
struct fs_seen {
	int64_t mtime_ns;
	uint64_t size;
};

/* The kernel's references to an inode (FUSE's lookup count). A regular
 * file that loses a name while referenced is held open in the metadata
 * (pinned) until the kernel forgets it: the kernel may still send an open
 * for it, from a path walk that raced the unlink or rename. */
struct fs_lookup {
	uint64_t n;
	bool pinned;
};

/* A pin outlives the kernel's last reference by FS_PIN_GRACE_S, longer
 * than any mount caches a name (entry_timeout): another mount that still
 * has the file under a cached name opens the old file, not nothing. The
 * housekeeper releases it. */
#define FS_PIN_GRACE_S 2
struct fs_unpin {
	uint64_t ino;
	gint64 due;	/* monotonic microseconds */
};

/*
 * A release drops its file's open record later, with others in one
 * transaction (a transaction per close was a fifth of a small file's
 * metadata work). Until then an unlinked file keeps its space; a close
 * before a session's end or death is released with the session. Past
 * FS_CLOSES_MAX the releasing request drops the batch itself.
 */
#define FS_CLOSES_MAX 1024
void fs_closes_drop(struct fs *fs, struct meta *m);

/* A part written in this mount and not yet in memory order of the file,
 * or the content of a file kept inline in the metadata. */
struct fs_dirty {
	uint8_t *buf;	/* cap bytes (grown as written) */
	uint64_t len;	/* bytes of buf that hold data; the part reads as zeros past them */
	size_t cap;
	uint64_t seq;	/* when first dirtied, for eviction */
};

/* A part being stored. */
struct fs_upload {
	uint32_t index;
	uint8_t oid[16];
	struct store_writer *w;
};

/*
 * An open regular file, shared by every handle of it in this mount. Its
 * content is parts[] (the manifest, holes as k == 0) overlaid by dirty
 * parts in memory and parts being uploaded; flush commits it all as a new
 * manifest. Guarded by lock; opens by fs->lock.
 */
struct fs_inode {
	uint64_t ino;
	unsigned opens;	/* fs->lock */
	GMutex lock;
	/* Written under lock, and atomically: fs_inode_size reads it without
	 * the lock (attributes must not wait behind an upload). */
	uint64_t size;
	bool loaded;	/* the manifest is in: size means something (atomic) */
	GArray *parts;	/* struct meta_part, by index */
	GArray *fresh;	/* bool by index: parts[i] was uploaded since the last commit */
	GHashTable *dirty; /* index -> struct fs_dirty */
	GQueue uploads;	/* struct fs_upload, oldest first */
	GArray *superseded; /* struct meta_part uploaded then replaced before a commit */
	uint64_t seq;
	bool changed;	/* differs from the committed manifest */
	/* Attribute changes made while changed, committed with the content
	 * (never with a size). Written under lock and attr_lock, a leaf lock
	 * that lets attributes be read without waiting behind an upload. */
	struct meta_setattr pending;
	GMutex attr_lock;
	/* The mode as this mount last set or read it (atomic): whether a write
	 * is to clear set-ID bits the kernel has cached. */
	uint32_t mode;
	uint64_t attr_changes; /* fs_inode_attr_changes (atomic) */
	int error;	/* -EIO after a failed upload or commit: sticky */
	/* The session it was opened in was reclaimed: every read, write and
	 * flush fails (atomic). */
	bool revoked;
	struct store_reader *reader; /* over parts when nothing is dirty; NULL when stale */
};

struct meta *fs_meta_take(struct fs *fs);
void fs_meta_give(struct fs *fs, struct meta *m);

/* The session: a new one replaces a session that was reclaimed. */
static inline uint64_t fs_sid(struct fs *fs)
{
	return __atomic_load_n(&fs->sid, __ATOMIC_RELAXED);
}

/* lock.c: flock and POSIX locks, held in the metadata. */
void fs_locks_init(struct fs *fs);
/* Answers the requests still waiting for a lock (EINTR); at unmount. */
void fs_locks_stop(struct fs *fs);
void fs_locks_free(struct fs *fs);
void fs_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *fl);
void fs_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *fl,
	      int sleep);
void fs_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op);
/* Drops owner's locks of kind on ino (a close), if this mount set any. */
int fs_locks_release(struct fs *fs, uint64_t ino, enum meta_lock_kind kind, uint64_t owner);
/* Waiting locks are tried again now: this mount released one. */
void fs_locks_released(struct fs *fs);
/* ino is closed in this mount: it holds no lock of it. */
void fs_locks_forget(struct fs *fs, uint64_t ino);

/* xattr.c: replies to a get or set of an xattr the mount answers
 * itself and returns true; false for the others. */
bool fs_xattr_reply_get(fuse_req_t req, const char *name);
bool fs_xattr_reply_set(fuse_req_t req, const char *name);

/* file.c */
/* The open state of ino, loaded from the manifest on first open; with
 * empty (a file this mount has just created), nothing is to be loaded. */
int fs_inode_open(struct fs *fs, uint64_t ino, bool empty, struct fs_inode **out);
/* Drops one open; the last one flushes and frees the state. */
int fs_inode_release(struct fs *fs, struct fs_inode *in);
/* The open state if the file is open in this mount (no reference taken:
 * for attributes only, under fs->lock). */
struct fs_inode *fs_inode_find(struct fs *fs, uint64_t ino);
/* The open state of ino with one more open (fs_inode_release drops it),
 * or NULL if the file is not open in this mount. */
struct fs_inode *fs_inode_hold(struct fs *fs, uint64_t ino);
/* Keeps set with the uncommitted content, for its next commit, and
 * returns true; false (nothing kept) if there is no uncommitted content.
 * A kept mode, owner or group needs the stored attributes: read, when
 * fs_inode_attr_changes was changes before it was read, else read here. */
bool fs_inode_defer_attrs(struct fs *fs, struct fs_inode *in, const struct meta_setattr *set,
			  const struct meta_attr *read, uint64_t changes);
/* A count of the changes this mount committed to the file's attributes
 * (content commits with kept changes, and changes of their own). */
uint64_t fs_inode_attr_changes(struct fs_inode *in);
void fs_inode_attrs_changed(struct fs_inode *in);
/* a with the attribute changes kept for the next commit. */
void fs_inode_attrs(struct fs_inode *in, struct meta_attr *a);
ssize_t fs_inode_read(struct fs *fs, struct fs_inode *in, uint64_t off, void *buf, size_t len);
ssize_t fs_inode_write(struct fs *fs, struct fs_inode *in, uint64_t off, const void *buf,
		       size_t len);
int fs_inode_truncate(struct fs *fs, struct fs_inode *in, uint64_t size);
/* Stores every dirty part and commits the manifest (durable); returns the
 * first error since the last flush (-EIO for a failed upload). */
int fs_inode_flush(struct fs *fs, struct fs_inode *in);
/* Marks every open state revoked; returns how many. */
unsigned fs_inodes_revoke(struct fs *fs);
/* At unmount (no request left): commits what every state still open
 * holds and frees it. */
void fs_inode_close_all(struct fs *fs);
/* fs_inode_flush of ino if it is open in this mount; 0 if it is not. */
int fs_inode_flush_if_open(struct fs *fs, uint64_t ino);
/* Size as this mount sees it (unflushed writes included) in *size; false
 * while the state is still being loaded (the caller has the stored size). */
bool fs_inode_size(struct fs_inode *in, uint64_t *size);

/* stream_attr.c: stream directories, settings and statistics' names. */
#define FS_XATTR_PREFIX "user.shardfs."
struct fs_stream_conf {
	bool lossless, start_live;
	uint64_t ring_bytes;
};
/* The id of stream ino on the ring (a hash of the inode number, which is
 * never reused: a rename does not move a live stream). */
void fs_stream_id(uint64_t ino, uint8_t id[16]);
/* The settings of stream ino; defaults for what is missing or bad. */
void fs_stream_conf_load(struct meta *m, uint64_t ino, struct fs_stream_conf *c);
/* Makes path (relative to the root, created if missing) a stream
 * directory; 0 or -errno (-ENOTDIR if a part is not a directory). */
int fs_stream_mark_dir(struct meta *m, const char *path);
/* New files in dir are streams. */
bool fs_stream_dir(struct meta *m, uint64_t dir);
/* A stream in parent with the directory's stream settings. */
int fs_stream_make(struct meta *m, uint64_t parent, const char *name, uint32_t mode,
		   uint32_t uid, uint32_t gid, struct meta_attr *out);
/* 0, or -EINVAL/-EPERM for a value the stream settings refuse. */
int fs_stream_check_xattr(const char *name, const char *value, size_t size);
/* Appends the statistics' names, NUL-terminated each, as listxattr(2). */
void fs_stream_list_stats(GString *names);
/* name is one of a stream's statistics (read-only, not stored). */
bool fs_stream_stat_name(const char *name);

/* stream.c: stream files (META_S_IFSTREAM, shown as regular files). */
/* Makes the directories named in dirs (':'-separated, relative to the
 * root) stream directories, and starts the stream machinery. */
int fs_streams_init(struct fs *fs, const char *dirs);
/* After the FUSE session ended: closes every stream handle still open. */
void fs_streams_stop(struct fs *fs);
void fs_streams_free(struct fs *fs);
/* Stream bytes this mount appended or fetched so far. */
uint64_t fs_streams_moved(struct fs *fs);
/* fi belongs to a stream (opened by fs_stream_open). */
bool fs_stream_fh(const struct fuse_file_info *fi);
int fs_stream_open(struct fs *fs, const struct meta_attr *a, struct fuse_file_info *fi);
/* These reply to req themselves, maybe later (reads wait for data). */
void fs_stream_read(fuse_req_t req, struct fuse_file_info *fi, size_t size);
void fs_stream_write(fuse_req_t req, struct fuse_file_info *fi, const char *buf, size_t size);
void fs_stream_release(struct fs *fs, struct fuse_file_info *fi);
/* Bytes written so far: the home node's count, or stored if it has none. */
uint64_t fs_stream_size(struct fs *fs, uint64_t ino, uint64_t stored);
/* A statistic of stream ino as getxattr(2) answers it (-ENODATA for a
 * file that is not a stream). */
int fs_stream_stat_xattr(struct fs *fs, uint64_t ino, const char *name, char *buf, size_t size);
#endif
