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
 *   meta_lock.c       flock and POSIX locks        -> core
 *   meta_check.c      the integrity check          -> core
 *   meta_nodes.c      storage nodes' identities    -> core
 *   meta_copy.c       the namespace into another database; the tables -> core
 *   meta_dump.c       the namespace as a dump, and loaded from one -> core
 *   meta_sql.c        the core: life cycle, schema, the statements,
 *                     transactions, errno mapping, rows every topic
 *                     touches                      -> engine
 *   meta_sqlite.c     the SQLite engine: URL, statements, transactions,
 *                     pragmas, checkpoints
 *   meta_vfs.c        its VFS                      (meta_sqlite.h)
 *   meta_pg.c         the PostgreSQL engine (libpq)
 *
 * Nothing in the core calls a topic file, no two files call each other
 * both ways, and no file but an engine's knows that engine: the core and
 * the topics reach a database through struct meta_engine.
 *
 * Locking: every function declared here that touches the database needs
 * m->lock held, which meta_tx_loop takes (or, for a read, the caller).
 */
#ifndef SHARDFS_STORE_META_INTERNAL_H
#define SHARDFS_STORE_META_INTERNAL_H

#include "meta.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Every statement of the engine; their SQL text is in meta_sql.c. */
enum meta_q {
	/* namespace */
	META_Q_LOOKUP,
	META_Q_GETATTR,
	META_Q_DENTRY,
	META_Q_INSERT_INODE,
	META_Q_INSERT_DENTRY,
	META_Q_MAKE_NODE, /* engines with make_node_at_once only */
	META_Q_TOUCH_DIR,
	META_Q_ADD_NLINK,
	META_Q_SET_CTIME,
	META_Q_DELETE_DENTRY,
	META_Q_ENTRY_OF,
	META_Q_HAS_CHILDREN,
	META_Q_OPEN_COUNT,
	META_Q_HAS_INODES,
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
	META_Q_READLINK,
	META_Q_TOTALS,
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
	META_Q_FILE_PARTS,
	META_Q_GARBAGE_ADD,
	META_Q_INLINE_SET,
	META_Q_INLINE_GET,
	META_Q_SET_INLINE_SIZE,
	META_Q_GARBAGE_LIST,
	META_Q_DEGRADED_PARTS,
	META_Q_RELOCATE_PART,
	META_Q_DEGRADED_COUNT,
	META_Q_PARTS_PAGE,
	META_Q_PARTS_COUNT,
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
	META_Q_LIVE_SESSIONS,
	META_Q_FIRST_LIVE_SESSION,
	META_Q_ALL_SESSIONS,
	META_Q_SESSION_LOCKS_DROP,
	/* locks */
	META_Q_LOCK_CONFLICT,
	META_Q_LOCKS_OF_HOLDER,
	META_Q_LOCK_DELETE,
	META_Q_LOCK_INSERT,
	META_Q_LOCKS_RELEASE,
	META_Q_INODE_LOCKS_DROP,
	/* storage nodes */
	META_Q_NODE_IDENTITY,
	META_Q_NODE_SET,
	META_Q_NODE_LOST,
	META_Q_SHARD_LOST,
	META_Q_NODE_HEALTH,
	META_Q_NODE_HEALTH_SET,
	META_Q_NODE_HEALTH_CLEAR,
	META_Q_REPAIR_REPORT,
	META_Q_REPAIR_RATE,
	META_Q_REPAIR_FORGET,
	META_Q_REPAIR_LEASE,
	META_Q_PART_STILL,
	META_Q_REPAIR_HOLDER,
	META_Q_REPAIR_UNLEASE,
	META_Q_REPAIR_LEASES_EXPIRED,
	META_Q_CLUSTER_ID,
	META_Q_CLUSTER_ID_SET,
	/* membership */
	META_Q_MEMBERS,
	META_Q_MEMBER_ADD,
	META_Q_MEMBER_TAKEN,
	META_Q_MEMBER_STATE,
	META_Q_MEMBER_REMOVE,
	META_Q_NODE_SLOT_PARTS,
	META_Q_REBALANCE_REPORT,
	META_Q_REBALANCE_DONE,
	META_Q_REBALANCE_RATE,
	META_Q_REBALANCE_FURTHEST,
	META_Q_COUNT,
};

/* What step gives besides a negative errno. */
#define META_ROW 100
#define META_DONE 101

/* A prepared statement of the connection m: impl is the engine's. */
struct meta_stmt {
	struct meta *m;
	void *impl;
};

/*
 * What an engine provides; the core and the topics reach a database only
 * through it. Parameters are numbered from 1 and columns from 0; an
 * unbound parameter is NULL. Bound blobs and text are borrowed until the
 * next step. Blobs and integers of a row stay valid until the next step or
 * reset of that statement. Every failure is a negative errno, logged by the
 * engine where it says more than the errno.
 */
struct meta_engine {
	const char *name;
	/* meta_schema.h's steps in the engine's type names */
	const char *const *migrations;
	/* The schema has shardfs_make_node() (META_Q_MAKE_NODE): a creation
	 * in one statement, which is a transaction of its own. */
	bool make_node_at_once;
	/* The one SQL dialect of the table in meta_sql.c, as this engine reads
	 * it; -EIO if it does not prepare. */
	int (*prepare)(struct meta *m, const char *sql, void **impl);
	void (*finalize)(void *impl);
	/* Back to before the first step, bindings cleared. */
	void (*reset)(void *impl);
	void (*bind_int)(void *impl, int i, int64_t v);
	void (*bind_blob)(void *impl, int i, const void *p, size_t n);
	void (*bind_text)(void *impl, int i, const char *text);
	/* META_ROW, META_DONE (then m->changes is set) or -errno. */
	int (*step)(struct meta *m, void *impl);
	bool (*col_null)(void *impl, int c);
	int64_t (*col_int)(void *impl, int c);
	const void *(*col_blob)(void *impl, int c, size_t *n);
	/* SQL text without rows (several statements allowed); 0 or -errno. */
	int (*exec)(struct meta *m, const char *text);
	/* A write transaction; durable: its commit is on disk when it returns. */
	int (*begin)(struct meta *m, bool durable);
	int (*commit)(struct meta *m, bool durable);
	void (*rollback)(struct meta *m, bool durable);
	/* A read-only transaction that sees one snapshot however long it runs
	 * and holds writers back from nothing; ended by rollback. */
	int (*begin_snapshot)(struct meta *m);
	/* After rows with their keys were copied in: the self-growing keys
	 * go on from the largest (NULL: they do by themselves). */
	int (*keys_follow)(struct meta *m);
	/* Appends what the engine's own check of its storage finds. */
	void (*integrity)(struct meta *m, GString *report);
	void (*close)(struct meta *m);
};

struct meta {
	const struct meta_engine *engine;
	void *db;			    /* the engine's connection */
	void *engine_state;		    /* what else the engine keeps */
	GMutex lock;			    /* one thread at a time on db */
	struct meta_stmt *stmt[META_Q_COUNT]; /* prepared on first use, lock */
	int64_t changes;		    /* rows the last statement changed */
	/* Set by the engine when a statement or commit of the transaction
	 * failed only because of a concurrent one: it is run again. */
	bool retry;
};

/* ---- the core (meta_sql.c) ---- */

int64_t meta_now_ns(void);
/* Marks shard slot i missing in every part whose slot i is on node, for
 * each slot a code can have; *lost counts the parts. In a transaction. */
int meta_mark_node_lost(struct meta *m, uint32_t node, uint64_t *lost);
/* Sets (NULL: clears) the reason meta_open_error gives. */
void meta_set_open_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* A step's result as 0 (META_ROW, META_DONE) or the negative errno. */
int meta_sql_errno(struct meta *m, int rc);
/*
 * Statement q of this connection, prepared on its first use and then kept,
 * reset and unbound. The SQL is ours: one that does not prepare is a
 * program bug. Callers reset the statement when done with it, because one
 * left between rows keeps its read snapshot open and the connection's next
 * call would not see newer commits.
 */
struct meta_stmt *meta_stmt(struct meta *m, enum meta_q q);
/* A statement of SQL text outside the table (the checks), finalized with
 * meta_stmt_free; NULL if it does not prepare. */
struct meta_stmt *meta_stmt_text(struct meta *m, const char *sql);
void meta_stmt_free(struct meta_stmt *s);

static inline void meta_bind_int(struct meta_stmt *s, int i, int64_t v)
{
	s->m->engine->bind_int(s->impl, i, v);
}

static inline void meta_bind_blob(struct meta_stmt *s, int i, const void *p, size_t n)
{
	s->m->engine->bind_blob(s->impl, i, p, n);
}

static inline void meta_bind_text(struct meta_stmt *s, int i, const char *text)
{
	s->m->engine->bind_text(s->impl, i, text);
}

static inline int meta_step(struct meta_stmt *s)
{
	return s->m->engine->step(s->m, s->impl);
}

static inline void meta_reset(struct meta_stmt *s)
{
	s->m->engine->reset(s->impl);
}

static inline bool meta_col_null(struct meta_stmt *s, int c)
{
	return s->m->engine->col_null(s->impl, c);
}

static inline int64_t meta_col_int(struct meta_stmt *s, int c)
{
	return s->m->engine->col_int(s->impl, c);
}

static inline const void *meta_col_blob(struct meta_stmt *s, int c, size_t *n)
{
	return s->m->engine->col_blob(s->impl, c, n);
}

/* Copies a 16-byte blob column (an id or checksum); false if it is not one. */
static inline bool meta_col_16(struct meta_stmt *s, int c, uint8_t out[16])
{
	size_t n;
	const void *p = meta_col_blob(s, c, &n);

	if (n != 16)
		return false;
	memcpy(out, p, 16);
	return true;
}

/* Text column c of s into out (cap bytes with its NUL), cut to fit. */
void meta_col_text_copy(struct meta_stmt *s, int c, char *out, size_t cap);
/* Runs a statement without rows and resets it; 0 or -errno. */
int meta_run(struct meta *m, struct meta_stmt *s);
/* The same, but any failure is -EIO. */
int meta_run_done(struct meta_stmt *s);
/* Statement q with up to two integer parameters, as meta_run_done. */
int meta_run_ints(struct meta *m, enum meta_q q, int64_t a, int64_t b);
/* Binds a NUL-terminated name (or xattr name) as a blob, borrowed. */
void meta_bind_name(struct meta_stmt *s, int i, const char *name);
/* Runs SQL text without rows; 0 or -errno. */
int meta_exec(struct meta *m, const char *text);

/*
 * One write transaction, run again while it fails only because of a
 * concurrent one (a serialization failure or deadlock, on engines that
 * have them), a bounded number of times with a growing random pause:
 *
 *	struct meta_tx t = META_TX(m);
 *	int rc = 0;
 *
 *	while (meta_tx_loop(&t, &rc))
 *		rc = what_the_transaction_does(m, ...);
 *	return rc;
 *
 * The first call takes m->lock and begins; each later one commits if rc
 * is 0 (else rolls back) and either begins again (true) or releases the
 * lock and leaves in rc the result, or the commit's error (false). The
 * body must therefore be safe to run again from the start: it may set
 * its outputs more than once. A body that returns 1 is a success that
 * rolls back (nothing to change). Durable: the commit is on disk when the
 * loop ends.
 */
struct meta_tx {
	struct meta *m;
	bool durable;
	bool alone; /* one statement that is a transaction by itself: no BEGIN */
	int attempt;
};
#define META_TX(db) ((struct meta_tx){.m = (db), .durable = false, .attempt = -1})
#define META_TX_DURABLE(db) ((struct meta_tx){.m = (db), .durable = true, .attempt = -1})
#define META_TX_ALONE(db) ((struct meta_tx){.m = (db), .alone = true, .attempt = -1})
bool meta_tx_loop(struct meta_tx *t, int *rc);

/* Rows every topic touches. */
/* The attributes from columns 0-9 of s, in the order of META_Q_GETATTR. */
void meta_attr_read(struct meta_stmt *s, struct meta_attr *a);
/* out may be NULL (does ino exist?); -ENOENT. */
int meta_getattr_locked(struct meta *m, uint64_t ino, struct meta_attr *out);
/* Statement q with ino as its one parameter, without rows. */
int meta_by_ino(struct meta *m, enum meta_q q, uint64_t ino);
/* Column 0 of statement q's first row with ino as its parameter; -1 if none. */
int64_t meta_count_by_ino(struct meta *m, enum meta_q q, uint64_t ino);
int meta_destroy_inode(struct meta *m, uint64_t ino);
int meta_set_ctime(struct meta *m, uint64_t ino, int64_t now);

/* A connection to url with the schema made and no rows (meta_copy_to);
 * -EEXIST if it holds a schema already. */
int meta_create_schema(const char *url, struct meta **out);
/* The same, but a schema of this version with no inode in it (left by a
 * load that failed) is taken as it is; -EEXIST if it holds a namespace,
 * -EPROTO if a schema of another version. */
int meta_open_empty(const char *url, struct meta **out);

/* Every table, with its columns and their kinds (i an integer, b a byte
 * string, t text); the first nkey columns are its key, in its order. */
struct meta_table {
	const char *name;
	const char *columns;
	const char *kinds;
	unsigned nkey;
	int since; /* the schema version it came with, as its columns are now */
};
extern const struct meta_table meta_tables[];
extern const size_t meta_ntables;
/* "INSERT INTO t (columns) VALUES (?1, ...)", freed with g_free. */
char *meta_table_insert_sql(const struct meta_table *t);

/* ---- the engines ---- */

/* Each connects m (engine, db, engine_state) for url, or says -EINVAL:
 * not its URL. */
int meta_sqlite_connect(struct meta *m, const char *url, bool create);
int meta_pg_connect(struct meta *m, const char *url, bool create);

/* ---- across topics ---- */

/* meta_setattr inside a transaction (meta_namespace.c). */
int meta_setattr_locked(struct meta *m, uint64_t ino, const struct meta_setattr *set,
			struct meta_attr *out);
/* The same for a caller that read ino's attributes into *a in this
 * transaction (and may have changed them since: they are written whole);
 * *a becomes the new ones. */
int meta_setattr_from(struct meta *m, uint64_t ino, const struct meta_setattr *set,
		      struct meta_attr *a, struct meta_attr *out);
/* The open record of meta_open_file, for an inode known to exist
 * (meta_session.c). */
int meta_open_locked(struct meta *m, uint64_t sid, uint64_t ino);

#endif
