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
#include <time.h>

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static int session_start_locked(struct meta *m, const char *host, unsigned lease_s,
				uint64_t *sid)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_SESSION_START);
	int rc;

	meta_bind_text(s, 1, host);
	meta_bind_int(s, 2, now_s());
	meta_bind_int(s, 3, lease_s);
	rc = meta_step(s); /* RETURNING sid */
	if (rc == META_ROW)
		*sid = (uint64_t)meta_col_int(s, 0);
	meta_reset(s);
	return rc == META_ROW ? 0 : -EIO;
}

int meta_session_start(struct meta *m, const char *host, unsigned lease_s, uint64_t *sid)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	if (lease_s == 0)
		return -EINVAL;
	while (meta_tx_loop(&t, &rc))
		rc = session_start_locked(m, host, lease_s, sid);
	return rc;
}

int meta_session_heartbeat(struct meta *m, uint64_t sid)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc))
		if ((rc = meta_run_ints(m, META_Q_HEARTBEAT, (int64_t)sid, now_s())) == 0 &&
		    m->changes == 0)
			rc = -ENOENT;
	return rc;
}

int meta_open_locked(struct meta *m, uint64_t sid, uint64_t ino)
{
	return meta_run_ints(m, META_Q_OPEN_FILE, (int64_t)sid, (int64_t)ino);
}

int meta_open_file(struct meta *m, uint64_t sid, uint64_t ino)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc))
		rc = meta_getattr_locked(m, ino, NULL) ?: meta_open_locked(m, sid, ino);
	return rc;
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

	if (rc == 0 && m->changes == 0)
		rc = -ENOENT;
	if (rc == 0)
		rc = meta_run_ints(m, META_Q_FORGET_CLOSED, (int64_t)sid, (int64_t)ino);
	if (rc == 0)
		rc = release_if_orphan(m, ino);
	return rc;
}

int meta_close_file(struct meta *m, uint64_t sid, uint64_t ino)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc))
		rc = close_locked(m, sid, ino);
	return rc;
}

static int close_all_locked(struct meta *m, uint64_t sid, const uint64_t *inos, unsigned n)
{
	int rc = 0;

	for (unsigned i = 0; rc == 0 && i < n; i++)
		if ((rc = close_locked(m, sid, inos[i])) == -ENOENT)
			rc = 0;
	return rc;
}

int meta_close_files(struct meta *m, uint64_t sid, const uint64_t *inos, unsigned n)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc))
		rc = close_all_locked(m, sid, inos, n);
	return rc;
}

/* Column 0 (an id) of every row of statement q run with parameter a. */
static GArray *collect_ids(struct meta *m, enum meta_q q, int64_t a)
{
	GArray *ids = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	struct meta_stmt *s = meta_stmt(m, q);

	meta_bind_int(s, 1, a);
	while (meta_step(s) == META_ROW) {
		uint64_t id = (uint64_t)meta_col_int(s, 0);

		g_array_append_val(ids, id);
	}
	meta_reset(s);
	return ids;
}

/* Releases every file session sid had open and every lock it held, and
 * removes the session. */
static int end_session_locked(struct meta *m, uint64_t sid)
{
	GArray *inos = collect_ids(m, META_Q_SESSION_FILES, (int64_t)sid);
	int rc = meta_run_ints(m, META_Q_FORGET_SESSION_FILES, (int64_t)sid, 0);

	if (rc == 0)
		rc = meta_run_ints(m, META_Q_SESSION_LOCKS_DROP, (int64_t)sid, 0);

	for (guint i = 0; rc == 0 && i < inos->len; i++)
		rc = release_if_orphan(m, g_array_index(inos, uint64_t, i));
	if (rc == 0)
		rc = meta_run_ints(m, META_Q_END_SESSION, (int64_t)sid, 0);
	g_array_free(inos, TRUE);
	return rc;
}

int meta_session_end(struct meta *m, uint64_t sid)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc))
		rc = end_session_locked(m, sid);
	return rc;
}

/* Ends the sessions statement q with parameter a lists; *ended counts them. */
static int end_sessions(struct meta *m, enum meta_q q, int64_t a, unsigned *ended)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	*ended = 0;
	while (meta_tx_loop(&t, &rc)) {
		GArray *dead = collect_ids(m, q, a);

		for (guint i = 0; rc == 0 && i < dead->len; i++)
			rc = end_session_locked(m, g_array_index(dead, uint64_t, i));
		*ended = rc == 0 ? dead->len : 0;
		g_array_free(dead, TRUE);
	}
	if (rc < 0)
		*ended = 0;
	return rc;
}

int meta_session_reap(struct meta *m, unsigned *ended)
{
	return end_sessions(m, META_Q_DEAD_SESSIONS, now_s(), ended);
}

int meta_session_end_all(struct meta *m, unsigned *ended)
{
	return end_sessions(m, META_Q_ALL_SESSIONS, 0, ended);
}

/* Column 0 of statement q's one row with parameter a (NULL: 0), read under
 * the connection's lock. */
static int read_int(struct meta *m, enum meta_q q, int64_t a, int64_t *v)
{
	struct meta_stmt *s;
	int rc;

	g_mutex_lock(&m->lock);
	s = meta_stmt(m, q);
	meta_bind_int(s, 1, a);
	rc = meta_step(s);
	*v = rc == META_ROW && !meta_col_null(s, 0) ? meta_col_int(s, 0) : 0;
	meta_reset(s);
	g_mutex_unlock(&m->lock);
	return rc == META_ROW ? 0 : rc < 0 ? rc : -EIO;
}

int meta_session_live(struct meta *m, unsigned timeout_s, unsigned *live)
{
	int64_t n;
	int rc = read_int(m, META_Q_LIVE_SESSIONS, now_s() - timeout_s, &n);

	*live = (unsigned)n;
	return rc;
}

int meta_session_first_live(struct meta *m, uint64_t *sid)
{
	int64_t first;
	int rc = read_int(m, META_Q_FIRST_LIVE_SESSION, now_s(), &first);

	*sid = (uint64_t)first;
	return rc;
}
