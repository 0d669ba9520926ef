/*
 * lock.c - flock(2) and POSIX fcntl locks (F_GETLK, F_SETLK, F_SETLKW,
 * lockf, OFD locks) through FUSE's lock requests, held in the metadata
 * (meta_lock_set) so that mounts on every host exclude each other.
 *
 * A request that must wait (F_SETLKW, flock without LOCK_NB) is parked
 * rather than holding a FUSE thread: one waiter thread tries the parked
 * locks again, at once when this mount released a lock, else after a
 * pause that doubles from LOCK_RETRY_MIN_US to LOCK_RETRY_MAX_US (how a
 * release on another host is noticed without spinning on the database).
 * A signal to the waiting process interrupts the request: EINTR.
 *
 * The kernel leaves the releases to the filesystem: POSIX locks of an
 * owner at each of its closes (FLUSH), flock locks at the last close of
 * the open file (RELEASE with flock_release). Locks of a mount that dies
 * go with its session (its lease, meta_session_reap).
 */
#define G_LOG_DOMAIN "shardfs-fuse"

#include "fs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>

#define LOCK_RETRY_MIN_US 2000
#define LOCK_RETRY_MAX_US 100000

struct lock_wait {
	fuse_req_t req;
	uint64_t ino;
	enum meta_lock_kind kind;
	struct meta_lock want;
	gint64 due;	/* monotonic microseconds of the next try */
	gint64 pause;
};

struct fs_locks {
	GMutex lock;
	GCond wake;
	GList *waiting;		/* struct lock_wait, lock */
	bool retry_all;		/* this mount released a lock: try every wait now, lock */
	bool stop;		/* lock */
	GThread *thread;
	GHashTable *held;	/* inos this mount has set locks on, lock */
};

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ---- what the kernel sends, as meta_lock ---- */

static enum meta_lock_type type_of(short l_type)
{
	return l_type == F_RDLCK ? META_LOCK_READ : l_type == F_WRLCK ? META_LOCK_WRITE
								    : META_LOCK_UNLOCK;
}

/* libfuse gives the kernel's range as l_start and l_len (0: to the end);
 * false for a range no lock can have. */
static bool lock_from_flock(struct fs *fs, const struct fuse_file_info *fi,
			    const struct flock *fl, struct meta_lock *l)
{
	if (fl->l_start < 0 || fl->l_len < 0 ||
	    (fl->l_len > 0 && fl->l_start > META_LOCK_EOF - (fl->l_len - 1)))
		return false;
	*l = (struct meta_lock){
		.sid = fs_sid(fs),
		.owner = fi->lock_owner,
		.type = type_of(fl->l_type),
		.start = fl->l_start,
		.end = fl->l_len ? fl->l_start + fl->l_len - 1 : META_LOCK_EOF,
		.pid = (uint32_t)fl->l_pid,
	};
	return true;
}

static void lock_to_flock(struct fs *fs, const struct meta_lock *l, struct flock *fl)
{
	fl->l_type = l->type == META_LOCK_READ ? F_RDLCK : l->type == META_LOCK_WRITE ? F_WRLCK
										    : F_UNLCK;
	fl->l_whence = SEEK_SET;
	fl->l_start = l->start;
	fl->l_len = l->end == META_LOCK_EOF ? 0 : l->end - l->start + 1;
	/* a process id of another mount's host means nothing here */
	fl->l_pid = l->sid == fs_sid(fs) ? (pid_t)l->pid : 0;
}

/* ---- setting, with the record of inos locked here ---- */

static int set_lock(struct fs *fs, uint64_t ino, enum meta_lock_kind kind, const struct meta_lock *l)
{
	struct meta *m = fs_meta_take(fs);
	int rc = meta_lock_set(m, ino, kind, l, NULL);

	fs_meta_give(fs, m);
	if (rc == 0 && l->type != META_LOCK_UNLOCK) {
		g_mutex_lock(&fs->locks->lock);
		g_hash_table_add(fs->locks->held, g_memdup2(&ino, sizeof(ino)));
		g_mutex_unlock(&fs->locks->lock);
	}
	if (rc == 0 && l->type == META_LOCK_UNLOCK)
		fs_locks_released(fs);
	return rc;
}

static bool held_here(struct fs *fs, uint64_t ino)
{
	g_mutex_lock(&fs->locks->lock);
	bool held = g_hash_table_contains(fs->locks->held, &ino);
	g_mutex_unlock(&fs->locks->lock);
	return held;
}

void fs_locks_released(struct fs *fs)
{
	g_mutex_lock(&fs->locks->lock);
	fs->locks->retry_all = true;
	g_cond_signal(&fs->locks->wake);
	g_mutex_unlock(&fs->locks->lock);
}

int fs_locks_release(struct fs *fs, uint64_t ino, enum meta_lock_kind kind, uint64_t owner)
{
	if (!held_here(fs, ino))
		return 0;
	struct meta *m = fs_meta_take(fs);
	int rc = meta_lock_release(m, ino, kind, fs_sid(fs), owner);

	fs_meta_give(fs, m);
	fs_locks_released(fs);
	return rc;
}

void fs_locks_forget(struct fs *fs, uint64_t ino)
{
	g_mutex_lock(&fs->locks->lock);
	g_hash_table_remove(fs->locks->held, &ino);
	g_mutex_unlock(&fs->locks->lock);
}

/* ---- waiting ---- */

/* libfuse's interrupt callback: the waiter thread answers EINTR (it alone
 * takes waits off the list, so one found here is not answered yet). */
static void on_interrupt(fuse_req_t req, void *data)
{
	struct fs_locks *ls = data;

	(void)req;
	g_mutex_lock(&ls->lock);
	ls->retry_all = true;
	g_cond_signal(&ls->wake);
	g_mutex_unlock(&ls->lock);
}

static void park(struct fs *fs, fuse_req_t req, uint64_t ino, enum meta_lock_kind kind,
		 const struct meta_lock *l)
{
	struct lock_wait *w = g_new(struct lock_wait, 1);

	*w = (struct lock_wait){req, ino, kind, *l, g_get_monotonic_time() + LOCK_RETRY_MIN_US,
				LOCK_RETRY_MIN_US};
	/* before it is parked: the callback may run at once */
	fuse_req_interrupt_func(req, on_interrupt, fs->locks);
	g_mutex_lock(&fs->locks->lock);
	fs->locks->waiting = g_list_append(fs->locks->waiting, w);
	g_cond_signal(&fs->locks->wake);
	g_mutex_unlock(&fs->locks->lock);
}

/* One try of w; true when it is answered (and freed). */
static bool try_wait(struct fs *fs, struct lock_wait *w)
{
	if (fuse_req_interrupted(w->req)) {
		fuse_reply_err(w->req, EINTR);
		g_free(w);
		return true;
	}
	int rc = set_lock(fs, w->ino, w->kind, &w->want);

	if (rc == -EAGAIN) {
		w->pause = MIN(w->pause * 2, LOCK_RETRY_MAX_US);
		w->due = g_get_monotonic_time() + w->pause;
		return false;
	}
	fuse_reply_err(w->req, -rc);
	g_free(w);
	return true;
}

/* The waits due now (all of them after a local release), off the list. */
static GList *take_due(struct fs_locks *ls)
{
	gint64 now = g_get_monotonic_time();
	GList *due = NULL;

	for (GList *l = ls->waiting, *next; l; l = next) {
		struct lock_wait *w = l->data;

		next = l->next;
		if (ls->retry_all || w->due <= now) {
			ls->waiting = g_list_remove_link(ls->waiting, l);
			due = g_list_concat(due, l);
		}
	}
	ls->retry_all = false;
	return due;
}

static gint64 next_due(struct fs_locks *ls)
{
	gint64 next = G_MAXINT64;

	for (GList *l = ls->waiting; l; l = l->next)
		next = MIN(next, ((struct lock_wait *)l->data)->due);
	return next;
}

static gpointer waiter(gpointer arg)
{
	struct fs *fs = arg;
	struct fs_locks *ls = fs->locks;

	g_mutex_lock(&ls->lock);
	while (!ls->stop) {
		GList *due = take_due(ls);

		g_mutex_unlock(&ls->lock);
		for (GList *l = due; l; l = l->next)
			if (try_wait(fs, l->data))
				l->data = NULL;
		g_mutex_lock(&ls->lock);
		for (GList *l = due; l; l = l->next)
			if (l->data)
				ls->waiting = g_list_append(ls->waiting, l->data);
		g_list_free(due);
		if (!ls->retry_all && !ls->stop) {
			gint64 next = next_due(ls);

			if (next == G_MAXINT64)
				g_cond_wait(&ls->wake, &ls->lock);
			else
				g_cond_wait_until(&ls->wake, &ls->lock, next);
		}
	}
	g_mutex_unlock(&ls->lock);
	return NULL;
}

/* ---- the requests ---- */

void fs_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *fl)
{
	struct fs *fs = fs_of(req);
	struct meta_lock l, found;

	if (!lock_from_flock(fs, fi, fl, &l) || l.type == META_LOCK_UNLOCK) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	struct meta *m = fs_meta_take(fs);
	int rc = meta_lock_test(m, ino, META_LOCK_POSIX, &l, &found);

	fs_meta_give(fs, m);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	lock_to_flock(fs, &found, fl);
	fuse_reply_lock(req, fl);
}

static void set_or_park(fuse_req_t req, uint64_t ino, enum meta_lock_kind kind,
			const struct meta_lock *l, bool sleep)
{
	struct fs *fs = fs_of(req);
	int rc = set_lock(fs, ino, kind, l);

	if (rc == -EAGAIN && sleep)
		park(fs, req, ino, kind, l);
	else
		fuse_reply_err(req, -rc);
}

void fs_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *fl,
	      int sleep)
{
	struct meta_lock l;

	if (!lock_from_flock(fs_of(req), fi, fl, &l)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	set_or_park(req, ino, META_LOCK_POSIX, &l, sleep);
}

void fs_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	struct fs *fs = fs_of(req);
	int how = op & ~LOCK_NB;
	struct meta_lock l = {
		.sid = fs_sid(fs),
		.owner = fi->lock_owner,
		.type = how == LOCK_SH ? META_LOCK_READ : how == LOCK_EX ? META_LOCK_WRITE
									 : META_LOCK_UNLOCK,
		.start = 0,
		.end = META_LOCK_EOF,
		.pid = (uint32_t)fuse_req_ctx(req)->pid,
	};

	if (how != LOCK_SH && how != LOCK_EX && how != LOCK_UN) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* flock(2) says EWOULDBLOCK where fcntl says EAGAIN: the same value */
	set_or_park(req, ino, META_LOCK_FLOCK, &l, !(op & LOCK_NB));
}

/* ---- life cycle ---- */

void fs_locks_init(struct fs *fs)
{
	struct fs_locks *ls = g_new0(struct fs_locks, 1);

	g_mutex_init(&ls->lock);
	g_cond_init(&ls->wake);
	ls->held = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
	fs->locks = ls;
	ls->thread = g_thread_new("locks", waiter, fs);
}

void fs_locks_stop(struct fs *fs)
{
	struct fs_locks *ls = fs->locks;

	if (!ls || !ls->thread)
		return;
	g_mutex_lock(&ls->lock);
	ls->stop = true;
	g_cond_signal(&ls->wake);
	g_mutex_unlock(&ls->lock);
	g_thread_join(ls->thread);
	ls->thread = NULL;
	for (GList *l = ls->waiting; l; l = l->next) {
		struct lock_wait *w = l->data;

		fuse_reply_err(w->req, EINTR);
		g_free(w);
	}
	g_list_free(ls->waiting);
	ls->waiting = NULL;
}

void fs_locks_free(struct fs *fs)
{
	struct fs_locks *ls = fs->locks;

	if (!ls)
		return;
	fs_locks_stop(fs);
	g_hash_table_destroy(ls->held);
	g_cond_clear(&ls->wake);
	g_mutex_clear(&ls->lock);
	g_free(ls);
	fs->locks = NULL;
}
