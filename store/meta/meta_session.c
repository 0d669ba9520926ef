/*
 * meta_session.c - sessions (mounts, CLI processes, with a heartbeat) and
 * their open files in the metadata engine (meta.h). An inode unlinked
 * while open lives on until its last open record goes: at its last close,
 * at the end of its session, or when a dead session is reaped. Calls only
 * the core; meta_namespace.c calls meta_open_locked here.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <sqlite3.h>
#include <time.h>

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

int meta_session_start(struct meta *m, const char *host, uint64_t *sid)
{
	sqlite3_stmt *s;
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	s = meta_stmt(m, META_Q_SESSION_START);
	sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now_s());
	rc = meta_run_done(s);
	if (rc == 0)
		*sid = (uint64_t)sqlite3_last_insert_rowid(m->db);
	return meta_tx_end(m, rc);
}

int meta_session_heartbeat(struct meta *m, uint64_t sid)
{
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	rc = meta_run_ints(m, META_Q_HEARTBEAT, (int64_t)sid, now_s());
	if (rc == 0 && sqlite3_changes(m->db) == 0)
		rc = -ENOENT;
	return meta_tx_end(m, rc);
}

int meta_open_locked(struct meta *m, uint64_t sid, uint64_t ino)
{
	return meta_run_ints(m, META_Q_OPEN_FILE, (int64_t)sid, (int64_t)ino);
}

int meta_open_file(struct meta *m, uint64_t sid, uint64_t ino)
{
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	rc = meta_getattr_locked(m, ino, NULL);
	if (rc == 0)
		rc = meta_open_locked(m, sid, ino);
	return meta_tx_end(m, rc);
}

/* The file's last opener went away: an unlinked file goes now. */
static int release_if_orphan(struct meta *m, uint64_t ino)
{
	struct meta_attr a;

	if (meta_getattr_locked(m, ino, &a) < 0 || a.nlink > 0 ||
	    meta_count_by_ino(m, META_Q_OPEN_COUNT, ino) > 0)
		return 0;
	return meta_destroy_inode(m, ino);
}

static int close_locked(struct meta *m, uint64_t sid, uint64_t ino)
{
	int rc = meta_run_ints(m, META_Q_CLOSE_FILE, (int64_t)sid, (int64_t)ino);

	if (rc == 0 && sqlite3_changes(m->db) == 0)
		rc = -ENOENT;
	if (rc == 0)
		rc = meta_run_ints(m, META_Q_FORGET_CLOSED, (int64_t)sid, (int64_t)ino);
	if (rc == 0)
		rc = release_if_orphan(m, ino);
	return rc;
}

int meta_close_file(struct meta *m, uint64_t sid, uint64_t ino)
{
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	return meta_tx_end(m, close_locked(m, sid, ino));
}

int meta_close_files(struct meta *m, uint64_t sid, const uint64_t *inos, unsigned n)
{
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	for (unsigned i = 0; rc == 0 && i < n; i++)
		if ((rc = close_locked(m, sid, inos[i])) == -ENOENT)
			rc = 0;
	return meta_tx_end(m, rc);
}

/* Column 0 (an id) of every row of statement q run with parameter a. */
static GArray *collect_ids(struct meta *m, enum meta_q q, int64_t a)
{
	GArray *ids = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	sqlite3_stmt *s = meta_stmt(m, q);

	sqlite3_bind_int64(s, 1, a);
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint64_t id = (uint64_t)sqlite3_column_int64(s, 0);

		g_array_append_val(ids, id);
	}
	sqlite3_reset(s);
	return ids;
}

/* Releases every file session sid had open and removes the session. */
static int end_session_locked(struct meta *m, uint64_t sid)
{
	GArray *inos = collect_ids(m, META_Q_SESSION_FILES, (int64_t)sid);
	int rc = meta_run_ints(m, META_Q_FORGET_SESSION_FILES, (int64_t)sid, 0);

	for (guint i = 0; rc == 0 && i < inos->len; i++)
		rc = release_if_orphan(m, g_array_index(inos, uint64_t, i));
	if (rc == 0)
		rc = meta_run_ints(m, META_Q_END_SESSION, (int64_t)sid, 0);
	g_array_free(inos, TRUE);
	return rc;
}

int meta_session_end(struct meta *m, uint64_t sid)
{
	int rc = meta_tx_begin(m);

	if (rc < 0)
		return rc;
	return meta_tx_end(m, end_session_locked(m, sid));
}

int meta_session_reap(struct meta *m, unsigned timeout_s, unsigned *ended)
{
	GArray *dead;
	int rc = meta_tx_begin(m);

	*ended = 0;
	if (rc < 0)
		return rc;
	dead = collect_ids(m, META_Q_DEAD_SESSIONS, now_s() - timeout_s);
	for (guint i = 0; rc == 0 && i < dead->len; i++)
		rc = end_session_locked(m, g_array_index(dead, uint64_t, i));
	if (rc == 0)
		*ended = dead->len;
	g_array_free(dead, TRUE);
	return meta_tx_end(m, rc);
}
