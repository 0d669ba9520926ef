/*
 * meta_sqlite.h - what only the SQLite engine knows (private to
 * store/meta): its URL, its connection settings and checkpoint policy
 * (meta_sqlite.c) and its VFS (meta_vfs.c). The core (meta_sql.c) calls
 * these; they call nothing of the core.
 */
#ifndef SHARDFS_STORE_META_SQLITE_H
#define SHARDFS_STORE_META_SQLITE_H

/*
 * meta_sqlite_connect (meta_internal.h) opens m->db for url
 * ("sqlite:///abs/path" or "sqlite://rel/path") and configures the
 * connection (pragmas, busy timeout, checkpoint hook); with create, a
 * missing file is created. -EINVAL: not an SQLite URL; -ENOENT: no such
 * file (without create); -EIO: it does not open or configure. On failure
 * m->engine may be set: the caller closes m with meta_close.
 */

/* The name of the engine's SQLite VFS (meta_vfs.c), registered on first
 * call; NULL if it could not be, and then SQLite's default serves. */
#define META_VFS_NAME "shardfs-meta"
const char *meta_vfs_name(void);

#endif
