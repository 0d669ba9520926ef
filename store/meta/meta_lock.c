/*
 * meta_lock.c - flock and POSIX locks in the metadata engine (meta.h), so
 * that mounts on several hosts exclude each other. Each change is one
 * transaction: the conflict test and the holder's new ranges are written
 * together, and concurrent ones run again (meta_tx_loop). A session's
 * locks go when it ends or is reaped (meta_session.c), an inode's when it
 * is destroyed (the core). Calls only the core.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>

/* A range of one holder, as a row holds it. */
struct held {
	int64_t id;
	enum meta_lock_type type;
	int64_t start, end;
};

static bool range_valid(const struct meta_lock *l)
{
	return l->start >= 0 && l->start <= l->end;
}

static void bind_holder(struct meta_stmt *s, uint64_t ino, enum meta_lock_kind kind, uint64_t sid,
			uint64_t owner)
{
	meta_bind_int(s, 1, (int64_t)ino);
	meta_bind_int(s, 2, kind);
	meta_bind_int(s, 3, (int64_t)sid);
	meta_bind_int(s, 4, (int64_t)owner);
}

/* The first lock of another holder that l conflicts with; 0 (none: type
 * META_LOCK_UNLOCK) or 1 (found), or -errno. */
static int find_conflict(struct meta *m, uint64_t ino, enum meta_lock_kind kind,
			 const struct meta_lock *l, struct meta_lock *out)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_LOCK_CONFLICT);
	struct meta_lock none = {.type = META_LOCK_UNLOCK};
	int rc;

	bind_holder(s, ino, kind, l->sid, l->owner);
	meta_bind_int(s, 5, l->start);
	meta_bind_int(s, 6, l->end);
	/* a write conflicts with any lock, a read only with a write */
	meta_bind_int(s, 7, l->type == META_LOCK_WRITE ? META_LOCK_READ : META_LOCK_WRITE);
	rc = meta_step(s);
	if (rc == META_ROW && out)
		*out = (struct meta_lock){
			.sid = (uint64_t)meta_col_int(s, 0),
			.owner = (uint64_t)meta_col_int(s, 1),
			.type = (enum meta_lock_type)meta_col_int(s, 2),
			.start = meta_col_int(s, 3),
			.end = meta_col_int(s, 4),
			.pid = (uint32_t)meta_col_int(s, 5),
		};
	else if (out)
		*out = none;
	meta_reset(s);
	return rc == META_ROW ? 1 : rc == META_DONE ? 0 : meta_sql_errno(m, rc);
}

static GArray *holder_ranges(struct meta *m, uint64_t ino, enum meta_lock_kind kind,
			     const struct meta_lock *l)
{
	GArray *held = g_array_new(FALSE, FALSE, sizeof(struct held));
	struct meta_stmt *s = meta_stmt(m, META_Q_LOCKS_OF_HOLDER);

	bind_holder(s, ino, kind, l->sid, l->owner);
	while (meta_step(s) == META_ROW) {
		struct held h = {
			.id = meta_col_int(s, 0),
			.type = (enum meta_lock_type)meta_col_int(s, 1),
			.start = meta_col_int(s, 2),
			.end = meta_col_int(s, 3),
		};

		g_array_append_val(held, h);
	}
	meta_reset(s);
	return held;
}

static int insert_range(struct meta *m, uint64_t ino, enum meta_lock_kind kind,
			const struct meta_lock *l, enum meta_lock_type type, int64_t start,
			int64_t end)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_LOCK_INSERT);

	bind_holder(s, ino, kind, l->sid, l->owner);
	meta_bind_int(s, 5, type);
	meta_bind_int(s, 6, start);
	meta_bind_int(s, 7, end);
	meta_bind_int(s, 8, l->pid);
	return meta_run_done(s);
}

/* h touches l's range: overlaps it or lies right beside it (written so
 * that no end + 1 overflows: starts are at least 0). */
static bool touches(const struct held *h, const struct meta_lock *l)
{
	if (h->end < l->start)
		return h->end == l->start - 1;
	if (h->start > l->end)
		return h->start - 1 == l->end;
	return true;
}

/*
 * The holder's ranges that touch l give way to it: one of l's type merges
 * into it, any other keeps only what lies outside l. Ranges of one holder
 * never overlap, so the rest of them are left as they are.
 */
static int replace_ranges(struct meta *m, uint64_t ino, enum meta_lock_kind kind,
			  const struct meta_lock *l)
{
	GArray *held = holder_ranges(m, ino, kind, l);
	int64_t start = l->start, end = l->end;
	int rc = 0;

	for (guint i = 0; rc == 0 && i < held->len; i++) {
		const struct held *h = &g_array_index(held, struct held, i);

		if (!touches(h, l))
			continue;
		rc = meta_run_ints(m, META_Q_LOCK_DELETE, h->id, 0);
		if (rc == 0 && h->type == l->type) {
			start = MIN(start, h->start);
			end = MAX(end, h->end);
			continue;
		}
		if (rc == 0 && h->start < l->start)
			rc = insert_range(m, ino, kind, l, h->type, h->start, MIN(h->end, l->start - 1));
		if (rc == 0 && h->end > l->end)
			rc = insert_range(m, ino, kind, l, h->type, MAX(h->start, l->end + 1), h->end);
	}
	if (rc == 0 && l->type != META_LOCK_UNLOCK)
		rc = insert_range(m, ino, kind, l, l->type, start, end);
	g_array_free(held, TRUE);
	return rc;
}

static int lock_set_locked(struct meta *m, uint64_t ino, enum meta_lock_kind kind,
			   const struct meta_lock *l, struct meta_lock *conflict)
{
	int rc = meta_getattr_locked(m, ino, NULL);

	if (rc == 0 && l->type != META_LOCK_UNLOCK)
		rc = find_conflict(m, ino, kind, l, conflict) > 0 ? -EAGAIN : 0;
	return rc ?: replace_ranges(m, ino, kind, l);
}

int meta_lock_set(struct meta *m, uint64_t ino, enum meta_lock_kind kind,
		  const struct meta_lock *l, struct meta_lock *conflict)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	if (!range_valid(l) || l->type > META_LOCK_WRITE)
		return -EINVAL;
	while (meta_tx_loop(&t, &rc))
		rc = lock_set_locked(m, ino, kind, l, conflict);
	return rc;
}

int meta_lock_test(struct meta *m, uint64_t ino, enum meta_lock_kind kind,
		   const struct meta_lock *l, struct meta_lock *conflict)
{
	int rc;

	if (!range_valid(l) || l->type == META_LOCK_UNLOCK || l->type > META_LOCK_WRITE)
		return -EINVAL;
	g_mutex_lock(&m->lock);
	rc = find_conflict(m, ino, kind, l, conflict);
	g_mutex_unlock(&m->lock);
	return rc < 0 ? rc : 0;
}

int meta_lock_release(struct meta *m, uint64_t ino, enum meta_lock_kind kind, uint64_t sid,
		      uint64_t owner)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc)) {
		struct meta_stmt *s = meta_stmt(m, META_Q_LOCKS_RELEASE);

		bind_holder(s, ino, kind, sid, owner);
		rc = meta_run_done(s);
	}
	return rc;
}
