/*
 * meta.h - the metadata engine: the namespace (inodes, directory entries,
 * attributes, xattrs, symlinks, hard links) and file manifests, in SQL.
 *
 * The mount and the CLI talk to the database directly; storage nodes know
 * nothing of names. Every operation below is one transaction, so several
 * processes (mounts, CLI) sharing one database never see or make a
 * half-done change: rename, link counts and directory emptiness stay exact
 * under concurrency.
 *
 * Engines are chosen by URL: "sqlite:///path/meta.db" (the embedded
 * default, WAL mode, several processes on one host). The schema and this
 * interface admit a PostgreSQL engine (serializable transactions retried
 * on conflict) without changes above them: SQL is kept to what both
 * dialects share, and engine specifics (transaction start, busy retry)
 * stay in one place.
 *
 * Errors are negative errno values, as POSIX would give them, so that the
 * FUSE layer passes them through unchanged.
 *
 * Threading: a struct meta is one database connection, guarded by its own
 * mutex; open one per thread for parallelism.
 */
#ifndef SHARDFS_STORE_META_H
#define SHARDFS_STORE_META_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#define META_ROOT_INO 1u
#define META_NAME_MAX 255u
#define META_SCHEMA_VERSION 11
/*
 * Files of at most this many bytes may keep their content in the metadata
 * database itself (meta_commit_inline) rather than in parts on the nodes:
 * closing one then costs one database commit and no node round trip.
 * 16 KiB holds most files of a source tree or a mail spool while a commit
 * stays a few pages (8 of 2 KiB for a full one) of the SQLite WAL; bulk
 * data past that would crowd the database's page cache, which every
 * lookup shares, and be written twice (WAL, then checkpoint).
 */
#define META_INLINE_MAX (16u << 10)

/* A stream file: a live byte stream (its own type, shown as a FIFO). */
#define META_S_IFSTREAM S_IFIFO
#define META_S_ISSTREAM(mode) (((mode) & S_IFMT) == META_S_IFSTREAM)

/* rename flags, as renameat2(2) */
#define META_RENAME_NOREPLACE (1u << 0)
#define META_RENAME_EXCHANGE (1u << 1)
/* setxattr flags, as setxattr(2) */
#define META_XATTR_CREATE 1
#define META_XATTR_REPLACE 2

struct meta_attr {
	uint64_t ino;
	uint32_t mode; /* type and permission bits, as st_mode */
	uint32_t uid, gid;
	uint32_t nlink;
	uint64_t size;
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint64_t generation;
};

/* What meta_setattr changes. */
enum meta_set {
	META_SET_MODE = 1 << 0,
	META_SET_UID = 1 << 1,
	META_SET_GID = 1 << 2,
	META_SET_SIZE = 1 << 3,
	META_SET_ATIME = 1 << 4,
	META_SET_MTIME = 1 << 5,
	/* Clears set-user-ID, and set-group-ID with group execute, of a
	 * regular file (as a write, truncate or chown does); a mode set in the
	 * same call is taken as it is. */
	META_SET_KILL_SUIDGID = 1 << 6,
};

struct meta_setattr {
	unsigned mask; /* enum meta_set */
	uint32_t mode, uid, gid;
	uint64_t size;
	int64_t atime_ns, mtime_ns;
	/* Of META_SET_MODE, UID and GID, those also in guard are set only if
	 * the stored permission bits, uid or gid are still base_*: a change
	 * kept for a later commit does not undo one made meanwhile elsewhere. */
	unsigned guard;
	uint32_t base_mode, base_uid, base_gid;
};

/* One part of a file's manifest. A part with k == 0 is a hole: length
 * zero bytes, nothing stored. Every part but the last is part_size long. */
struct meta_part {
	uint8_t object_id[16]; /* its shards' key: (object_id, index, shard) */
	uint32_t index;	      /* part number in the object */
	uint64_t length;      /* bytes of the plain part */
	uint8_t checksum[16]; /* xxh3-128 of the plain part */
	uint8_t k, m;	      /* erasure code */
	uint16_t nodes[64];   /* node id of shard i, k + m of them */
	uint64_t missing;     /* bit i: shard i was written nowhere (nodes[i]
			       * names the node meant for it); repair's work */
};

/* Whether shard i of p was written nowhere (repair's work). */
static inline bool meta_shard_missing(const struct meta_part *p, unsigned i)
{
	return p->missing >> i & 1;
}

/* The shards of p that were written (k + m less the missing ones). */
static inline unsigned meta_shards_held(const struct meta_part *p)
{
	return (unsigned)(p->k + p->m) - (unsigned)__builtin_popcountll(p->missing);
}

struct meta_statfs {
	uint64_t inodes;
	uint64_t bytes;
};

struct meta;

/*
 * Opens the engine at url, creating nothing: "sqlite://PATH" or
 * "postgresql://..." (libpq's URL, with its other sources of settings).
 * -ENOENT if the database (or its schema) does not exist, -EPROTO if its
 * schema is newer than this program knows, -EINVAL for an unknown URL;
 * for a server, -ECONNREFUSED or -EACCES when it cannot be reached or
 * refuses the login (said on stderr with the server's name). An older
 * schema is migrated.
 */
int meta_open(const char *url, struct meta **out);
/* How long operations wait for a database server that went away (a
 * restart) before they fail with EIO; for the whole process. */
#define META_WAIT_DEFAULT_S 30
void meta_set_wait_timeout(unsigned seconds);
/* Why the last meta_open, meta_create_db or meta_load of this thread
 * failed, in one line that names the server or file and never a password
 * (NULL if nothing more than the errno is known); callers print it once. */
const char *meta_open_error(void);
/* That reason, or rc's errno text. */
static inline const char *meta_open_reason(int rc)
{
	return meta_open_error() ? meta_open_error() : g_strerror(-rc);
}
/* url without its password, for messages; free it. */
char *meta_url_safe(const char *url);
/* Creates the schema with an empty root directory owned by uid/gid: the
 * SQLite file too, the PostgreSQL database being the server's to make;
 * -EEXIST if it already holds a schema (another cluster's). */
int meta_create_db(const char *url, uint32_t uid, uint32_t gid);
void meta_close(struct meta *m);
/* Copies every row of from into the new schema made at to_url (either
 * engine), in one transaction there, read from one snapshot of from, and
 * checks the copy (meta_check); *rows: the rows copied. -EEXIST if to_url
 * holds a schema already; on any failure nothing is left at to_url but
 * the empty schema. */
int meta_copy_to(struct meta *from, const char *to_url, uint64_t *rows);
/* The database's schema version (META_SCHEMA_VERSION once migrated). */
int meta_schema_version(struct meta *m);

int meta_lookup(struct meta *m, uint64_t parent, const char *name, struct meta_attr *out);
int meta_getattr(struct meta *m, uint64_t ino, struct meta_attr *out);
int meta_setattr(struct meta *m, uint64_t ino, const struct meta_setattr *set,
		 struct meta_attr *out);
/* mode without set-user-ID, and without set-group-ID if group-executable:
 * what META_SET_KILL_SUIDGID leaves of a regular file's mode. */
uint32_t meta_mode_without_suidgid(uint32_t mode);
/* What meta_setattr makes of attributes a at time now (ctime aside). */
void meta_setattr_apply(const struct meta_setattr *set, int64_t now, struct meta_attr *a);

/* A regular file; with excl, -EEXIST if the name exists, else an existing
 * regular file is returned as it is (O_CREAT without O_EXCL). */
int meta_create(struct meta *m, uint64_t parent, const char *name, uint32_t mode, uint32_t uid,
		uint32_t gid, bool excl, struct meta_attr *out);
/* meta_create, and the file opened for session sid (meta_open_file) in the
 * same transaction if it is a regular file (without excl, an existing
 * file of another type is returned as meta_create does, not opened).
 * *made: the file is new (not one that existed). */
int meta_create_open(struct meta *m, uint64_t sid, uint64_t parent, const char *name,
		     uint32_t mode, uint32_t uid, uint32_t gid, bool excl, struct meta_attr *out,
		     bool *made);
int meta_mkdir(struct meta *m, uint64_t parent, const char *name, uint32_t mode, uint32_t uid,
	       uint32_t gid, struct meta_attr *out);
/* Stream files (mode's type META_S_IFSTREAM); other types: -EPERM. */
int meta_mknod(struct meta *m, uint64_t parent, const char *name, uint32_t mode, uint32_t uid,
	       uint32_t gid, struct meta_attr *out);
int meta_symlink(struct meta *m, uint64_t parent, const char *name, const char *target,
		 uint32_t uid, uint32_t gid, struct meta_attr *out);
/* Returns the target in *target (caller frees with g_free). */
int meta_readlink(struct meta *m, uint64_t ino, char **target);
/* A path of ino from the root ("/a/b"; for a file of several links, the
 * one of its oldest entry), for messages that name a file; -ENOENT when
 * it has no entry (unlinked while open) or a loop or depth past 4096
 * stops the walk. *path freed with g_free. */
int meta_path_of(struct meta *m, uint64_t ino, char **path);
int meta_link(struct meta *m, uint64_t ino, uint64_t newparent, const char *newname,
	      struct meta_attr *out);
int meta_unlink(struct meta *m, uint64_t parent, const char *name);
int meta_rmdir(struct meta *m, uint64_t parent, const char *name);
int meta_rename(struct meta *m, uint64_t parent, const char *name, uint64_t newparent,
		const char *newname, unsigned flags);

/* Called for each entry of a readdir page; cookie resumes after it. Return
 * non-zero to stop (the entry counts as not returned). */
typedef int (*meta_dirent_fn)(void *arg, const char *name, uint64_t ino, uint32_t mode,
			      uint64_t cookie);
/* Entries after cookie (0: from the start), at most max of them, in a
 * stable order: entries added or removed between pages never make another
 * entry be lost or repeated. "." and ".." are not listed. */
int meta_readdir(struct meta *m, uint64_t ino, uint64_t cookie, unsigned max, meta_dirent_fn fn,
		 void *arg);

int meta_statfs(struct meta *m, struct meta_statfs *out);

int meta_setxattr(struct meta *m, uint64_t ino, const char *name, const void *value, size_t len,
		  int flags);
/* Copies at most size bytes into value; returns the value's length, or
 * -ERANGE if size is too small (size 0: only the length), -ENODATA. */
int meta_getxattr(struct meta *m, uint64_t ino, const char *name, void *value, size_t size);
/* Names NUL-separated, as listxattr(2); same size rules as getxattr. */
int meta_listxattr(struct meta *m, uint64_t ino, char *list, size_t size);
int meta_removexattr(struct meta *m, uint64_t ino, const char *name);

/*
 * Replaces the manifest of regular file ino with parts (sorted by index)
 * and sets its size, in one transaction; the replaced parts go to the
 * garbage table. durable: the commit is fsynced before returning (for
 * fsync()/close()); otherwise it survives a crash of the process and is
 * synced lazily. attrs (NULL: none, no size) are set in the same
 * transaction, after the commit's own mtime: attribute changes made while
 * the content was being written go with it.
 */
int meta_commit_manifest(struct meta *m, uint64_t ino, const uint8_t object_id[16],
			 uint64_t size, const struct meta_part *parts, unsigned nparts,
			 const struct meta_setattr *attrs, bool durable);
/* *parts (caller frees with g_free) and *nparts of file ino. */
int meta_get_manifest(struct meta *m, uint64_t ino, uint8_t object_id[16],
		      struct meta_part **parts, unsigned *nparts);

/*
 * Replaces the content of regular file ino with the len bytes of data,
 * kept in the database (inline), sets its size to len and stamps its
 * mtime, in one transaction; its parts go to the garbage table. durable
 * and attrs as for meta_commit_manifest. -EFBIG if len > META_INLINE_MAX, -EISDIR,
 * -EINVAL (not a regular file), -ENOENT. A later meta_commit_manifest
 * drops the inline content. An empty content keeps no row (the file then
 * has neither inline data nor parts).
 */
int meta_commit_inline(struct meta *m, uint64_t ino, const void *data, size_t len,
		       const struct meta_setattr *attrs, bool durable);
/*
 * The inline content of file ino in *data (caller frees with g_free; NULL
 * when empty) and *len; -ENODATA if the file keeps its content in parts,
 * -ENOENT. The content may be shorter than the file's size (after a
 * meta_setattr growing it): the rest reads as zeros.
 */
int meta_get_inline(struct meta *m, uint64_t ino, void **data, size_t *len);

/* Repair's work: parts that hold fewer than k + m shards. */
struct meta_degraded {
	uint64_t ino;
	struct meta_part part; /* object_id always set */
};
/* Up to max parts with shards missing that come after (after_ino,
 * after_index) in (ino, index) order, from the index of such parts (no
 * scan); *items freed with g_free. Start at (0, 0); go on from the last. */
int meta_degraded_list(struct meta *m, uint64_t after_ino, uint32_t after_index, unsigned max,
		       struct meta_degraded **items, unsigned *n);
/* How many parts have shards missing, and their plain bytes. */
int meta_degraded_count(struct meta *m, uint64_t *parts, uint64_t *bytes);
/* The same over every stored part (holes left out), in the same order by
 * the primary key: a cluster scrub's walk. */
int meta_parts_list(struct meta *m, uint64_t after_ino, uint32_t after_index, unsigned max,
		    struct meta_degraded **items, unsigned *n);
int meta_parts_count(struct meta *m, uint64_t *parts, uint64_t *bytes);
/* Compare-and-set of where a part's shards are: the part (ino, old->index)
 * gets now's nodes and missing set if its row is still old (same object
 * id, nodes and missing set), in one durable transaction. -ESTALE if not
 * (the file was rewritten or removed, or the part repaired meanwhile):
 * nothing changed. */
int meta_part_relocate(struct meta *m, uint64_t ino, const struct meta_part *old,
		       const struct meta_part *now);

/* ---- repair workers: their rates, for status, and their leases ---- */

#define META_WORKER_MAX 64

/* Worker (a name of its own, at most 63 bytes) rebuilt at bytes_per_s
 * lately, said at now_s; rows of workers silent for a day go with it. */
int meta_repair_report(struct meta *m, const char *worker, uint64_t bytes_per_s, int64_t now_s);
/* The workers that reported at or after since_s, and their rates' sum. */
int meta_repair_rate(struct meta *m, int64_t since_s, unsigned *workers, uint64_t *bytes_per_s);
/* Worker takes part (ino, p->index) to rebuild for lease_s seconds from
 * now_s, if its row still has p's object id and missing set: 0, -EBUSY
 * while another worker's lease of it runs (its name in holder), -ESTALE
 * if the row changed (a repair or a rewrite since p was read). A lease of
 * dead (a worker known to be gone; "" none) is taken like an expired one.
 * Expired leases of any part go in the same transaction. */
int meta_repair_lease(struct meta *m, uint64_t ino, const struct meta_part *p, const char *worker,
		      const char *dead, unsigned lease_s, int64_t now_s,
		      char holder[META_WORKER_MAX]);
/* Gives the lease back (nothing if it is not the worker's). */
int meta_repair_unlease(struct meta *m, uint64_t ino, uint32_t index, const char *worker);

/* Rebalance passes at work, for status: worker's pass, started at
 * started_s, moves bytes_per_s and walked parts_done of parts_total, said
 * at now_s; meta_rebalance_done when it ends. */
struct meta_rebalance_progress {
	unsigned workers;
	uint64_t bytes_per_s;		   /* their sum */
	uint64_t parts_done, parts_total;  /* of the pass that has the most left */
	int64_t started_s;		   /* of that pass */
};
int meta_rebalance_report(struct meta *m, const char *worker, int64_t started_s,
			  uint64_t bytes_per_s, uint64_t parts_done, uint64_t parts_total,
			  int64_t now_s);
int meta_rebalance_done(struct meta *m, const char *worker);
/* The passes that reported at or after since_s. */
int meta_rebalance_progress(struct meta *m, int64_t since_s, struct meta_rebalance_progress *out);

/* ---- storage nodes ---- */

#define META_IDENTITY_MAX 40

/* The identity recorded for node's store (a UUID), or -ENOENT if none. */
int meta_node_identity(struct meta *m, uint32_t node, char out[META_IDENTITY_MAX]);
/*
 * Records that node's store is now identity. When another one was
 * recorded, that store is gone (wiped or replaced): every shard the
 * manifests place on node is marked missing in the same durable
 * transaction, for repair to rebuild, and *lost says how many parts that
 * touched (0 when the identity is new or the same).
 */
int meta_node_identity_set(struct meta *m, uint32_t node, const char *identity, uint64_t *lost);
/* Since when node has not answered (Unix s; 0: it answers) and whether it
 * was put out (meta_node_down). */
int meta_node_health(struct meta *m, uint32_t node, int64_t *down_since, bool *out);
/*
 * Records that node did not answer at now_s: the first time, since when.
 * Once it has not answered for down_out_s (0: never), it is put out:
 * every shard the manifests place on it is marked missing, in the same
 * durable transaction, for repair to rebuild on other nodes, and *lost
 * says in how many parts (this happens once; 0 otherwise).
 */
int meta_node_down(struct meta *m, uint32_t node, int64_t now_s, unsigned down_out_s,
		   uint64_t *lost);
/* node answers: no longer down or out. 0, or 1 if it was either. */
int meta_node_up(struct meta *m, uint32_t node);
/* A node found its copy of shard of part index of object oid bad: if a
 * manifest places that shard on node and does not count it missing yet,
 * it is marked missing (one durable transaction), for repair to rewrite.
 * *marked: 1 if so, 0 if no manifest names it there (a replaced part, an
 * orphan) or it was marked already. */
int meta_shard_lost(struct meta *m, const uint8_t oid[16], uint32_t index, uint32_t shard,
		    uint32_t node, unsigned *marked);

/* ---- membership: the storage nodes the ring is built from ---- */

enum meta_member_state {
	META_MEMBER_ACTIVE = 0,	  /* takes new shards by its weight */
	META_MEMBER_DRAINING = 1, /* takes none; rebalance moves its shards off */
	META_MEMBER_OUT = 2,	  /* drained: holds none, may be removed */
};
#define META_HOST_MAX 256
#define META_ZONE_MAX 64
struct meta_member {
	uint32_t id; /* 1..65535 */
	char host[META_HOST_MAX];
	uint16_t port;
	char zone[META_ZONE_MAX]; /* "" none */
	uint32_t weight;	  /* 0: no placements */
	enum meta_member_state state;
	int64_t changed_ns; /* when state last changed */
};
/* "active", "draining", "out". */
const char *meta_member_state_name(enum meta_member_state state);
/* Every member, by id; *out freed with g_free (NULL when there is none). */
int meta_members(struct meta *m, struct meta_member **out, unsigned *n);
/* Adds mb (state and changed_ns are set here: active, now); -EEXIST if its
 * id or its address is a member's, -EINVAL for a bad field. */
int meta_member_add(struct meta *m, const struct meta_member *mb);
/* 0 if no member has mb's id or address (what meta_member_add asks
 * first), else -EEXIST. */
int meta_member_check_new(struct meta *m, const struct meta_member *mb);
/* The first members, in one transaction, when there is none yet (a
 * cluster made before membership was kept here: its cluster file's list);
 * 0 also when there were some (nothing changes then). */
int meta_members_seed(struct meta *m, const struct meta_member *list, unsigned n);
/* -ENOENT if id is no member. */
int meta_member_set_state(struct meta *m, uint32_t id, enum meta_member_state state);
/* The parts that keep a shard (not counted missing) on node. */
int meta_node_parts(struct meta *m, uint32_t node, uint64_t *parts);
/* Removes member id: -EBUSY while parts keep shards on it (*parts says
 * how many) unless force, which marks each of those shards missing, for
 * repair, in the same durable transaction. -ENOENT if no member. */
int meta_member_remove(struct meta *m, uint32_t id, bool force, uint64_t *parts);

/* Garbage: shards of replaced or deleted parts, to delete from the nodes. */
struct meta_garbage {
	uint64_t id;
	uint8_t object_id[16];
	struct meta_part part;
};
/* Up to max entries, oldest first; *items freed with g_free. */
int meta_garbage_list(struct meta *m, unsigned max, struct meta_garbage **items, unsigned *n);
int meta_garbage_done(struct meta *m, uint64_t id);

/*
 * Sessions and open files: a file unlinked while open stays until its last
 * close. A session lives while its heartbeats come at most lease_s apart;
 * past that any other session may end it (meta_session_reap), which
 * releases its open files and its locks. The heartbeat of a session that
 * was ended says -ENOENT. Heartbeats carry the clock of the host that
 * sends them and are judged by the clock of the host that reaps: hosts'
 * clocks must agree to well within a lease.
 */
#define META_LEASE_DEFAULT_S 30
int meta_session_start(struct meta *m, const char *host, unsigned lease_s, uint64_t *sid);
int meta_session_heartbeat(struct meta *m, uint64_t sid);
int meta_session_end(struct meta *m, uint64_t sid);
/* Ends every session silent for longer than its lease; *ended counts them. */
int meta_session_reap(struct meta *m, unsigned *ended);
/* Ends every session (a database restored from a backup: none of them is
 * a mount of it). */
int meta_session_end_all(struct meta *m, unsigned *ended);
/* The oldest live session (within its lease), 0 if none: the one that
 * does what one mount of the cluster should do (its backups). */
int meta_session_first_live(struct meta *m, uint64_t *sid);
/* The sessions whose heartbeat is at most timeout_s old (mounts running). */
int meta_session_live(struct meta *m, unsigned timeout_s, unsigned *live);
int meta_open_file(struct meta *m, uint64_t sid, uint64_t ino);
int meta_close_file(struct meta *m, uint64_t sid, uint64_t ino);
/* meta_close_file of each of the n inos, in one transaction; an ino with no
 * open record of sid is skipped. */
int meta_close_files(struct meta *m, uint64_t sid, const uint64_t *inos, unsigned n);

/*
 * The cluster the namespace is of: its cluster file's id, recorded at
 * init. meta_cluster_check refuses (-EXDEV, with meta_open_error saying
 * whose it is) a database that records another cluster; one that records
 * none, or a file without an id (both made before ids), passes.
 */
int meta_cluster_id_set(struct meta *m, const char *id);
int meta_cluster_check(struct meta *m, const char *id);

/*
 * The whole namespace as a dump (meta_dump.c): JSON lines ending with a
 * SHA-256 of what comes before, read from one snapshot in bounded memory;
 * *rows counts the rows. meta_load puts one into the empty database url
 * (made if missing) in one transaction, or nothing at all: errors are
 * META_DUMP_ERROR with an errno code and say at which line the dump went
 * wrong; -EEXIST if the database holds a namespace.
 */
#define META_DUMP_ERROR (meta_dump_error_quark())
GQuark meta_dump_error_quark(void);
int meta_dump(struct meta *m, FILE *out, uint64_t *rows, GError **err);
int meta_load(const char *url, FILE *in, uint64_t *rows, GError **err);

/*
 * Locks that mounts on every host see: flock (whole file) and POSIX
 * (byte ranges) locks, each kind apart as in Linux. A lock is held by an
 * owner (the kernel's lock owner) of a session; two holders conflict when
 * their ranges overlap and either writes. Setting a lock replaces, splits
 * or merges the holder's own locks of that range, as fcntl(2) does.
 */
enum meta_lock_kind { META_LOCK_POSIX = 0, META_LOCK_FLOCK = 1 };
enum meta_lock_type { META_LOCK_UNLOCK = 0, META_LOCK_READ = 1, META_LOCK_WRITE = 2 };
#define META_LOCK_EOF INT64_MAX /* an end that is the end of the file, however long */
struct meta_lock {
	uint64_t sid, owner;
	enum meta_lock_type type;
	int64_t start, end; /* bytes start..end, inclusive; 0 <= start <= end */
	uint32_t pid;
};
/* Sets l (META_LOCK_UNLOCK: clears its range) on ino; -EAGAIN if another
 * holder's lock conflicts (then in *conflict, when not NULL), -EINVAL for
 * a bad range. */
int meta_lock_set(struct meta *m, uint64_t ino, enum meta_lock_kind kind,
		  const struct meta_lock *l, struct meta_lock *conflict);
/* The first lock of another holder that conflicts with l, or type
 * META_LOCK_UNLOCK if none (F_GETLK). */
int meta_lock_test(struct meta *m, uint64_t ino, enum meta_lock_kind kind,
		   const struct meta_lock *l, struct meta_lock *conflict);
/* Drops every lock of kind that (sid, owner) holds on ino (at close). */
int meta_lock_release(struct meta *m, uint64_t ino, enum meta_lock_kind kind, uint64_t sid,
		      uint64_t owner);

/*
 * Checks the namespace: every entry points to an inode, every inode is
 * reachable or accounted as an open orphan, nlink equals the number of
 * entries (directories: 2 + subdirectories), and SQLite's integrity_check.
 * Returns 0, or -EUCLEAN with a description of the first problems in
 * *report (caller frees with g_free; may be NULL).
 */
int meta_check(struct meta *m, char **report);

#endif
