/*
 * meta_sqlite.c - the SQLite engine of the metadata interface (struct
 * meta_engine): its URL ("sqlite://PATH"), statements, transactions and
 * errors, the settings of a connection (page size of a new database, WAL
 * mode, synchronous=NORMAL, cache, busy timeout) and its checkpoint
 * policy (a wal hook). Its VFS is in meta_vfs.c. The core (meta_sql.c)
 * calls meta_sqlite_connect to get a configured connection; this file
 * calls nothing of the core.
 *
 * Transactions are BEGIN IMMEDIATE: the database write lock is taken up
 * front, so two processes never deadlock upgrading a read lock and never
 * need to run a transaction again, and a busy database is waited for
 * (busy_timeout) rather than failed. WAL mode lets readers go on
 * meanwhile. synchronous=NORMAL: a commit survives a crash of the process
 * at once and a power loss from the next WAL sync on; durable commits run
 * with synchronous=FULL, set before BEGIN and back after COMMIT (SQLite
 * refuses to change it inside a transaction), all under m->lock so that
 * no other thread's commit on the connection sets it back in between. If
 * the level cannot be raised the transaction does not start.
 *
 * Failure modes: a database that does not open or cannot be configured
 * fails the connect (-EIO, logged); a failed checkpoint never fails the
 * commit that triggered it (it is logged unless merely busy, and tried
 * again later).
 *
 * Threading: the hook runs on the committing thread, under m->lock.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta_internal.h"
#include "meta_schema.h"
#include "meta_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

/* "sqlite:///abs/path" or "sqlite://rel/path": the file path, or NULL. */
static char *sqlite_path(const char *url)
{
	if (!g_str_has_prefix(url, "sqlite://") || !url[9])
		return NULL;
	return g_strdup(url + 9);
}

/*
 * New databases get 2 KiB pages: a create changes 7 pages but only a few
 * hundred bytes of them, and SQLite checksums and copies whole pages into
 * the WAL, so 4 KiB pages cost a create a fifth more CPU. 2 KiB still
 * holds any index cell of a name (at most 255 bytes) without overflow
 * pages, which 1 KiB would not. Existing databases keep their page size.
 */
#define NEW_DB_PAGE_SIZE 2048
/*
 * A commit that brings the WAL to this size checkpoints it (two fsyncs),
 * instead of SQLite's default of 1000 pages: with a create writing 7
 * frames, that default made every 140th create wait for the disk.
 */
#define WAL_CHECKPOINT_BYTES (16 << 20)
#define BUSY_TIMEOUT_MS 10000
/* How long a checkpoint waits for older transactions, holding up writers. */
#define CHECKPOINT_WAIT_MS 200

static const char *const migrations[] =
	META_MIGRATIONS("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", "BLOB", "");
G_STATIC_ASSERT(G_N_ELEMENTS(migrations) == META_SCHEMA_VERSION);

/* What a connection keeps besides its handle. */
struct sqlite_state {
	int checkpoint_frames;	  /* WAL size that calls for one */
	int checkpoint_failed_at; /* WAL size at a failed one; m->lock */
};

static int page_size(struct meta *m)
{
	sqlite3_stmt *s;
	int size = 0;

	if (sqlite3_prepare_v2(m->db, "PRAGMA page_size", -1, &s, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(s) == SQLITE_ROW)
		size = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return size;
}

/*
 * Called after every commit of the connection, under m->lock (see
 * sqlite3_wal_hook). SQLite's own policy, a PASSIVE checkpoint after each
 * commit that leaves the WAL over its limit, starves when several
 * connections write without pause: each checkpoint stops short of the
 * frames of a writer already in its next transaction, so the WAL is never
 * all copied and never starts over. It grew to 945 MiB in 40,000 creates
 * by 8 threads, and every commit paid two fsyncs to copy a few frames.
 * Here such a commit runs a RESTART checkpoint, which waits for the
 * transactions on older snapshots, copies everything and lets the next
 * writer start the WAL from its beginning. One that cannot finish in
 * CHECKPOINT_WAIT_MS is tried again only once the WAL has grown by another
 * eighth of the limit, so that commits do not all pay for futile ones. The
 * commit itself has happened whatever the checkpoint's fate: SQLite keeps
 * the WAL authoritative until a checkpoint completes.
 */
static int checkpoint_hook(void *arg, sqlite3 *db, const char *schema, int frames)
{
	struct sqlite_state *st = ((struct meta *)arg)->engine_state;
	int rc;

	if (frames < st->checkpoint_frames ||
	    (st->checkpoint_failed_at && frames >= st->checkpoint_failed_at &&
	     frames < st->checkpoint_failed_at + st->checkpoint_frames / 8))
		return SQLITE_OK;
	sqlite3_busy_timeout(db, CHECKPOINT_WAIT_MS);
	rc = sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	st->checkpoint_failed_at = rc == SQLITE_OK ? 0 : frames;
	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		g_warning("metadata checkpoint failed: %s", sqlite3_errmsg(db));
	return SQLITE_OK;
}

static int sqlite_exec(sqlite3 *db, const char *text)
{
	char *err = NULL;
	int rc = sqlite3_exec(db, text, NULL, NULL, &err);

	if (rc != SQLITE_OK)
		g_warning("metadata: %s: %s", text, err ? err : "?");
	sqlite3_free(err);
	return rc;
}

/* A setting of the connection; 0 or -EIO (the failure logged). */
static int pragma(struct meta *m, const char *text)
{
	return sqlite_exec(m->db, text) == SQLITE_OK ? 0 : -EIO;
}

/* The connection's settings; the page size only takes on a new database. */
static int configure(struct meta *m, bool create)
{
	int rc = 0, size;

	if (create)
		rc = pragma(m, "PRAGMA page_size = " G_STRINGIFY(NEW_DB_PAGE_SIZE));
	if (rc == 0)
		rc = pragma(m, "PRAGMA journal_mode = WAL");
	if (rc == 0)
		rc = pragma(m, "PRAGMA synchronous = NORMAL");
	if (rc == 0)
		rc = pragma(m, "PRAGMA cache_size = -65536");
	size = rc == 0 ? page_size(m) : 0;
	if (size <= 0)
		return rc < 0 ? rc : -EIO;
	((struct sqlite_state *)m->engine_state)->checkpoint_frames = WAL_CHECKPOINT_BYTES / size;
	sqlite3_wal_hook(m->db, checkpoint_hook, m);
	return rc;
}

/*
 * The namespace holds file contents (inline data) and names that the
 * mount's permissions guard, so its files are the owner's only. SQLite
 * gives its -wal and -shm files the mode of the database, so a database
 * made 0600 before SQLite first opens it keeps all three private; one made
 * by an older release is tightened, which only its owner can do (a
 * failure is left to the open that follows).
 */
static void make_private(const char *path)
{
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd >= 0) {
		close(fd);
		return;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(suffixes); i++) {
		char *file = g_strconcat(path, suffixes[i], NULL);
		struct stat st;

		if (stat(file, &st) == 0 && (st.st_mode & 077))
			(void)chmod(file, st.st_mode & 0700);
		g_free(file);
	}
}

/* ---- the engine ---- */

/* An SQLite result code as a negative errno (0 for OK, ROW and DONE);
 * codes with no errno of their own are logged and give -EIO. */
static int sqlite_errno(sqlite3 *db, int rc)
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
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	default:
		g_warning("metadata database: %s", sqlite3_errmsg(db));
		return -EIO;
	}
}

static int sq_prepare(struct meta *m, const char *sql, void **impl)
{
	sqlite3_stmt *s;

	if (sqlite3_prepare_v3(m->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK)
		return -EIO;
	*impl = s;
	return 0;
}

static void sq_finalize(void *impl)
{
	sqlite3_finalize(impl);
}

static void sq_reset(void *impl)
{
	sqlite3_reset(impl);
	sqlite3_clear_bindings(impl);
}

static void sq_bind_int(void *impl, int i, int64_t v)
{
	sqlite3_bind_int64(impl, i, v);
}

/* An empty blob is bound as one, not as NULL. */
static void sq_bind_blob(void *impl, int i, const void *p, size_t n)
{
	sqlite3_bind_blob64(impl, i, p ? p : "", n, SQLITE_STATIC);
}

static void sq_bind_text(void *impl, int i, const char *text)
{
	sqlite3_bind_text(impl, i, text, -1, SQLITE_STATIC);
}

static int sq_step(struct meta *m, void *impl)
{
	int rc = sqlite3_step(impl);

	if (rc == SQLITE_ROW)
		return META_ROW;
	if (rc == SQLITE_DONE) {
		m->changes = sqlite3_changes64(m->db);
		return META_DONE;
	}
	rc = sqlite_errno(m->db, rc);
	return rc < 0 ? rc : -EIO;
}

static bool sq_col_null(void *impl, int c)
{
	return sqlite3_column_type(impl, c) == SQLITE_NULL;
}

static int64_t sq_col_int(void *impl, int c)
{
	return sqlite3_column_int64(impl, c);
}

/* The blob before its size, as SQLite asks. */
static const void *sq_col_blob(void *impl, int c, size_t *n)
{
	const void *p = sqlite3_column_blob(impl, c);
	int len = sqlite3_column_bytes(impl, c);

	*n = len > 0 ? (size_t)len : 0;
	return p;
}

static int sq_exec(struct meta *m, const char *text)
{
	return sqlite_errno(m->db, sqlite_exec(m->db, text));
}

static int sq_begin(struct meta *m, bool durable)
{
	int rc = durable ? sq_exec(m, "PRAGMA synchronous = FULL") : 0;

	if (rc == 0)
		rc = sq_exec(m, "BEGIN IMMEDIATE");
	if (rc < 0 && durable)
		sq_exec(m, "PRAGMA synchronous = NORMAL");
	return rc;
}

/* After a durable one, back to NORMAL; if that fails the connection stays
 * at FULL, which is slower but no less safe. */
static int sq_commit(struct meta *m, bool durable)
{
	int rc = sq_exec(m, "COMMIT");

	if (rc < 0)
		sq_exec(m, "ROLLBACK");
	if (durable)
		sq_exec(m, "PRAGMA synchronous = NORMAL");
	return rc;
}

static void sq_rollback(struct meta *m, bool durable)
{
	sq_exec(m, "ROLLBACK");
	if (durable)
		sq_exec(m, "PRAGMA synchronous = NORMAL");
}

/* Deferred: in WAL mode the first read fixes the snapshot and writers go on. */
static int sq_begin_snapshot(struct meta *m)
{
	return sq_exec(m, "BEGIN");
}

static void sq_integrity(struct meta *m, GString *report)
{
	sqlite3_stmt *s;

	if (sqlite3_prepare_v2(m->db, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(s, 0), "ok"))
		g_string_append(report, "SQLite integrity_check is not ok\n");
	sqlite3_finalize(s);
}

static void sq_close(struct meta *m)
{
	sqlite3_close(m->db);
	g_free(m->engine_state);
}

static const struct meta_engine sqlite_engine = {
	.name = "SQLite",
	.migrations = migrations,
	.prepare = sq_prepare,
	.finalize = sq_finalize,
	.reset = sq_reset,
	.bind_int = sq_bind_int,
	.bind_blob = sq_bind_blob,
	.bind_text = sq_bind_text,
	.step = sq_step,
	.col_null = sq_col_null,
	.col_int = sq_col_int,
	.col_blob = sq_col_blob,
	.exec = sq_exec,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.begin_snapshot = sq_begin_snapshot,
	.integrity = sq_integrity,
	.close = sq_close,
};

int meta_sqlite_connect(struct meta *m, const char *url, bool create)
{
	char *path = sqlite_path(url);
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);

	if (!path)
		return -EINVAL;
	if (!create && access(path, F_OK) != 0) {
		g_free(path);
		return -ENOENT;
	}
	make_private(path);
	m->engine = &sqlite_engine;
	m->engine_state = g_new0(struct sqlite_state, 1);
	if (sqlite3_open_v2(path, (sqlite3 **)&m->db, flags, meta_vfs_name()) != SQLITE_OK) {
		meta_set_open_error("cannot open the metadata database %s: %s", path, sqlite3_errmsg(m->db));
		g_free(path);
		return -EIO;
	}
	g_free(path);
	sqlite3_busy_timeout(m->db, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(m->db, 0);
	return configure(m, create) < 0 ? -EIO : 0;
}
