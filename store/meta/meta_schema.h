/*
 * meta_schema.h - the metadata schema, as migration steps (private to
 * store/meta). Step i brings a database from version i to i + 1; a new
 * database runs them all. SQL is kept to what SQLite and PostgreSQL share.
 *
 * inodes     one row per file, directory, symlink or stream; mode holds the
 *            type bits; times in nanoseconds; parent is set for
 *            directories (for ".." and the rename subtree check); target
 *            for symlinks; object_id for regular files
 * dentries   (parent, name) -> ino; id is the readdir cookie: entries only
 *            ever get larger ids, so paging by id loses and repeats nothing
 * xattrs     (ino, name) -> value
 * parts      a regular file's manifest: per part its length, checksum,
 *            erasure code and the node of each shard
 * garbage    shards of replaced or deleted parts, to delete from the nodes
 * sessions   mounts and CLI processes, with a heartbeat
 * open_files (session, ino) -> open count: an unlinked file lives on
 *            while open
 * inline_data (version 2) ino -> the whole content of a small regular file
 *            (at most META_INLINE_MAX bytes), kept here instead of in
 *            parts on the nodes: such a file has a row here or parts,
 *            never both; bytes past the row's length up to the file's
 *            size read as zeros
 * parts.missing (version 3) the shards of a part that a write could not
 *            place (bit i: shard i), recorded with the manifest so that
 *            repair finds them through a partial index without a scan
 * nodes      (version 4) the storage nodes the metadata has seen: id ->
 *            the identity (UUID) of the store the manifests' shards are
 *            on, and when it was first seen (ns)
 */
#ifndef SHARDFS_STORE_META_SCHEMA_H
#define SHARDFS_STORE_META_SCHEMA_H

static const char *const meta_migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE schema_version (version INTEGER NOT NULL);"
	"INSERT INTO schema_version VALUES (0);"
	"CREATE TABLE inodes ("
	" ino INTEGER PRIMARY KEY AUTOINCREMENT,"
	" mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
	" nlink INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0,"
	" atime INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL,"
	" generation INTEGER NOT NULL DEFAULT 0,"
	" parent INTEGER, target BLOB, object_id BLOB);"
	"CREATE TABLE dentries ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" parent INTEGER NOT NULL, name BLOB NOT NULL, ino INTEGER NOT NULL,"
	" UNIQUE (parent, name));"
	"CREATE INDEX dentries_by_ino ON dentries (ino);"
	"CREATE INDEX dentries_by_parent_id ON dentries (parent, id);"
	"CREATE TABLE xattrs (ino INTEGER NOT NULL, name BLOB NOT NULL, value BLOB NOT NULL,"
	" PRIMARY KEY (ino, name));"
	"CREATE TABLE parts (ino INTEGER NOT NULL, idx INTEGER NOT NULL,"
	" length INTEGER NOT NULL, checksum BLOB NOT NULL, k INTEGER NOT NULL,"
	" m INTEGER NOT NULL, nodes BLOB NOT NULL, object_id BLOB NOT NULL,"
	" PRIMARY KEY (ino, idx));"
	"CREATE TABLE garbage (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" object_id BLOB NOT NULL, idx INTEGER NOT NULL, length INTEGER NOT NULL,"
	" k INTEGER NOT NULL, m INTEGER NOT NULL, nodes BLOB NOT NULL);"
	"CREATE TABLE sessions (sid INTEGER PRIMARY KEY AUTOINCREMENT,"
	" host TEXT NOT NULL, heartbeat INTEGER NOT NULL);"
	"CREATE TABLE open_files (sid INTEGER NOT NULL, ino INTEGER NOT NULL,"
	" count INTEGER NOT NULL, PRIMARY KEY (sid, ino));"
	"CREATE INDEX open_files_by_ino ON open_files (ino);",
	/* 1 -> 2: small files' data inline. A table of its own rather than a
	 * column of inodes, so that rows of inodes stay a few dozen bytes and
	 * lookups, getattr and readdir read no page of file data. */
	"CREATE TABLE inline_data (ino INTEGER PRIMARY KEY, data BLOB NOT NULL);",
	/* 2 -> 3: parts written with shards missing (a node was down). */
	("ALTER TABLE parts ADD COLUMN missing INTEGER NOT NULL DEFAULT 0;"
	 "CREATE INDEX parts_missing ON parts (ino, idx) WHERE missing <> 0;"),
	/* 3 -> 4: the identity of each node's store, to tell a wiped one; parts
	 * by object id, for the shards nodes report bad (keys carry the id). */
	("CREATE TABLE nodes (id INTEGER PRIMARY KEY, identity TEXT NOT NULL, since INTEGER NOT NULL);"
	 "CREATE INDEX parts_by_object ON parts (object_id, idx);"),
};

#endif
