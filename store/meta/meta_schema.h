/*
 * meta_schema.h - the metadata schema, as migration steps (private to
 * store/meta). Step i brings a database from version i to i + 1; a new
 * database runs them all. SQL is kept to what SQLite and PostgreSQL share
 * but for three type names, which each engine gives (META_MIGRATIONS):
 * ID, a key that grows by itself and is never reused; INT, a 64-bit
 * integer; BYTES, a byte string.
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
 * sessions.lease (version 5) seconds without a heartbeat after which
 *            another session may end this one and take back what it held
 * locks      (version 5) flock and POSIX locks: per inode and kind (0
 *            POSIX, 1 flock) the holder (session, the kernel's lock
 *            owner, pid), type (1 read, 2 write) and bytes lstart..lend,
 *            inclusive; a holder's locks of one kind never overlap
 * cluster    (version 5) the identity of the cluster the namespace is of
 *            (the id of its cluster file), one row
 * version 6  no table: a step of the engine's own (MAKE_NODE; PostgreSQL:
 *            shardfs_make_node(), a creation in one statement; SQLite:
 *            nothing)
 * node_health (version 7) the nodes that do not answer: since when (Unix
 *            s), and whether they were put out (their shards marked
 *            missing, to rebuild elsewhere); a row goes when its node
 *            answers again. What every repair worker learns anew: not in
 *            dumps or copies (meta_tables)
 * repair_workers (version 8) each repair worker that rebuilt something
 *            lately (name "host:pid"): when it last said so (Unix s) and
 *            its rate (bytes read per second), for status; not in dumps
 * repair_leases (version 9) which worker rebuilds part (ino, idx), until
 *            when (Unix s): two never rebuild the same part; not in dumps
 * members    (version 10) the cluster's storage nodes, from which every
 *            mount and command builds the ring: id -> address (host,
 *            port), zone ('' none), weight, state (0 active, 1 draining,
 *            2 out: holds nothing and takes nothing) and when the state
 *            last changed (ns)
 * rebalance_workers (version 11) each rebalance pass at work (name
 *            "host:pid"): when it last said so and started (Unix s), its
 *            rate (bytes moved per second) and the parts walked of how
 *            many, for status; a pass that ends takes its row away; not
 *            in dumps
 */
#ifndef SHARDFS_STORE_META_SCHEMA_H
#define SHARDFS_STORE_META_SCHEMA_H

/* The steps, as an array initializer, for the engine's type names. */
#define META_MIGRATIONS(ID, INT, BYTES, MAKE_NODE) {                                       \
	/* 0 -> 1 */                                                                       \
	"CREATE TABLE schema_version (version " INT " NOT NULL);"                           \
	"INSERT INTO schema_version VALUES (0);"                                            \
	"CREATE TABLE inodes ("                                                             \
	" ino " ID ","                                                                      \
	" mode " INT " NOT NULL, uid " INT " NOT NULL, gid " INT " NOT NULL,"               \
	" nlink " INT " NOT NULL, size " INT " NOT NULL DEFAULT 0,"                         \
	" atime " INT " NOT NULL, mtime " INT " NOT NULL, ctime " INT " NOT NULL,"          \
	" generation " INT " NOT NULL DEFAULT 0,"                                           \
	" parent " INT ", target " BYTES ", object_id " BYTES ");"                          \
	"CREATE TABLE dentries ("                                                           \
	" id " ID ","                                                                       \
	" parent " INT " NOT NULL, name " BYTES " NOT NULL, ino " INT " NOT NULL,"          \
	" UNIQUE (parent, name));"                                                          \
	"CREATE INDEX dentries_by_ino ON dentries (ino);"                                   \
	"CREATE INDEX dentries_by_parent_id ON dentries (parent, id);"                      \
	"CREATE TABLE xattrs (ino " INT " NOT NULL, name " BYTES " NOT NULL,"               \
	" value " BYTES " NOT NULL, PRIMARY KEY (ino, name));"                              \
	"CREATE TABLE parts (ino " INT " NOT NULL, idx " INT " NOT NULL,"                   \
	" length " INT " NOT NULL, checksum " BYTES " NOT NULL, k " INT " NOT NULL,"        \
	" m " INT " NOT NULL, nodes " BYTES " NOT NULL, object_id " BYTES " NOT NULL,"      \
	" PRIMARY KEY (ino, idx));"                                                         \
	"CREATE TABLE garbage (id " ID ","                                                  \
	" object_id " BYTES " NOT NULL, idx " INT " NOT NULL, length " INT " NOT NULL,"     \
	" k " INT " NOT NULL, m " INT " NOT NULL, nodes " BYTES " NOT NULL);"               \
	"CREATE TABLE sessions (sid " ID ","                                                \
	" host TEXT NOT NULL, heartbeat " INT " NOT NULL);"                                 \
	"CREATE TABLE open_files (sid " INT " NOT NULL, ino " INT " NOT NULL,"              \
	" count " INT " NOT NULL, PRIMARY KEY (sid, ino));"                                 \
	"CREATE INDEX open_files_by_ino ON open_files (ino);",                              \
	/* 1 -> 2: small files' data inline. A table of its own rather than a              \
	 * column of inodes, so that rows of inodes stay a few dozen bytes and             \
	 * lookups, getattr and readdir read no page of file data. */                      \
	"CREATE TABLE inline_data (ino " INT " PRIMARY KEY, data " BYTES " NOT NULL);",     \
	/* 2 -> 3: parts written with shards missing (a node was down). */                 \
	"ALTER TABLE parts ADD COLUMN missing " INT " NOT NULL DEFAULT 0;"                  \
	"CREATE INDEX parts_missing ON parts (ino, idx) WHERE missing <> 0;",               \
	/* 3 -> 4: the identity of each node's store, to tell a wiped one; parts           \
	 * by object id, for the shards nodes report bad (keys carry the id). */           \
	"CREATE TABLE nodes (id " INT " PRIMARY KEY, identity TEXT NOT NULL,"               \
	" since " INT " NOT NULL);"                                                         \
	"CREATE INDEX parts_by_object ON parts (object_id, idx);",                          \
	/* 4 -> 5: leases of sessions, and locks that every mount sees. */                 \
	"ALTER TABLE sessions ADD COLUMN lease " INT " NOT NULL DEFAULT 60;"               \
	"CREATE TABLE locks (id " ID ", ino " INT " NOT NULL, kind " INT " NOT NULL,"       \
	" sid " INT " NOT NULL, owner " INT " NOT NULL, type " INT " NOT NULL,"             \
	" lstart " INT " NOT NULL, lend " INT " NOT NULL, pid " INT " NOT NULL);"           \
	"CREATE INDEX locks_by_ino ON locks (ino, kind);"                                   \
	"CREATE INDEX locks_by_sid ON locks (sid);"                                         \
	"CREATE TABLE cluster (id TEXT NOT NULL);",                                         \
	/* 5 -> 6 */                                                                       \
	MAKE_NODE,                                                                         \
	/* 6 -> 7 */                                                                       \
	"CREATE TABLE node_health (id " INT " PRIMARY KEY, down_since " INT " NOT NULL,"   \
	" down_out " INT " NOT NULL);",                                                    \
	/* 7 -> 8 */                                                                       \
	"CREATE TABLE repair_workers (name TEXT PRIMARY KEY, updated " INT " NOT NULL,"     \
	" bytes_per_s " INT " NOT NULL);",                                                 \
	/* 8 -> 9 */                                                                       \
	"CREATE TABLE repair_leases (ino " INT " NOT NULL, idx " INT " NOT NULL,"          \
	" holder TEXT NOT NULL, until " INT " NOT NULL, PRIMARY KEY (ino, idx));",         \
	/* 9 -> 10 */                                                                      \
	"CREATE TABLE members (id " INT " PRIMARY KEY, host TEXT NOT NULL,"                 \
	" port " INT " NOT NULL, zone TEXT NOT NULL, weight " INT " NOT NULL,"              \
	" state " INT " NOT NULL, changed " INT " NOT NULL, UNIQUE (host, port));",        \
	/* 10 -> 11 */                                                                     \
	"CREATE TABLE rebalance_workers (name TEXT PRIMARY KEY, updated " INT " NOT NULL,"  \
	" started " INT " NOT NULL, bytes_per_s " INT " NOT NULL, parts_done " INT          \
	" NOT NULL, parts_total " INT " NOT NULL);",                                       \
}

#endif
