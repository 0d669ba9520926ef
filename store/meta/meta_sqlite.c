/*
 * meta_sqlite.c - what only the SQLite engine of the metadata interface
 * needs: its URL ("sqlite://PATH"), the settings of a connection (page
 * size of a new database, WAL mode, synchronous=NORMAL, cache, busy
 * timeout) and its checkpoint policy (a wal hook). Its VFS is in
 * meta_vfs.c. The core (meta_sql.c) calls meta_sqlite_connect to get a
 * configured connection; this file calls nothing of the core.
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
	struct meta *m = arg;
	int rc;

	if (frames < m->checkpoint_frames ||
	    (m->checkpoint_failed_at && frames >= m->checkpoint_failed_at &&
	     frames < m->checkpoint_failed_at + m->checkpoint_frames / 8))
		return SQLITE_OK;
	sqlite3_busy_timeout(db, CHECKPOINT_WAIT_MS);
	rc = sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	m->checkpoint_failed_at = rc == SQLITE_OK ? 0 : frames;
	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		g_warning("metadata checkpoint failed: %s", sqlite3_errmsg(db));
	return SQLITE_OK;
}

int meta_sqlite_exec(sqlite3 *db, const char *text)
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
	return meta_sqlite_exec(m->db, text) == SQLITE_OK ? 0 : -EIO;
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
	m->checkpoint_frames = WAL_CHECKPOINT_BYTES / size;
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
	if (sqlite3_open_v2(path, &m->db, flags, meta_vfs_name()) != SQLITE_OK) {
		g_warning("cannot open metadata database %s: %s", path, sqlite3_errmsg(m->db));
		g_free(path);
		return -EIO;
	}
	g_free(path);
	sqlite3_busy_timeout(m->db, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(m->db, 0);
	return configure(m, create) < 0 ? -EIO : 0;
}
