/*
 * meta_repair.c - what the repair workers say of themselves (meta.h):
 * each rebuilding worker's rate, which `shardfs status` sums to say that
 * the cluster is repairing and how long it has to go; and the leases that
 * keep two workers from rebuilding one part (a row per part being
 * rebuilt, taken in a short transaction of its own, so that no lock is
 * held while the part is read and sent). Calls only the core.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <string.h>
#include <time.h>

#define FORGET_AFTER_S 86400

/* The rows of workers silent since before_s. */
static int forget_silent(struct meta *m, int64_t before_s)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_REPAIR_FORGET);

	meta_bind_int(s, 1, before_s);
	return meta_run(m, s);
}

int meta_repair_report(struct meta *m, const char *worker, uint64_t bytes_per_s, int64_t now_s)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	if (!worker[0] || strlen(worker) >= META_WORKER_MAX || bytes_per_s > INT64_MAX)
		return -EINVAL;
	while (meta_tx_loop(&t, &rc)) {
		struct meta_stmt *s = meta_stmt(m, META_Q_REPAIR_REPORT);

		rc = forget_silent(m, now_s - FORGET_AFTER_S);
		meta_bind_text(s, 1, worker);
		meta_bind_int(s, 2, now_s);
		meta_bind_int(s, 3, (int64_t)bytes_per_s);
		rc = rc ?: meta_run(m, s);
	}
	return rc;
}

int meta_repair_rate(struct meta *m, int64_t since_s, unsigned *workers, uint64_t *bytes_per_s)
{
	g_mutex_lock(&m->lock);
	struct meta_stmt *s = meta_stmt(m, META_Q_REPAIR_RATE);
	int rc;

	meta_bind_int(s, 1, since_s);
	rc = meta_step(s) == META_ROW ? 0 : -EIO;
	*workers = rc ? 0 : (unsigned)meta_col_int(s, 0);
	*bytes_per_s = rc ? 0 : (uint64_t)meta_col_int(s, 1);
	meta_reset(s);
	g_mutex_unlock(&m->lock);
	return rc;
}

static bool part_unchanged(struct meta *m, uint64_t ino, const struct meta_part *p)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_PART_STILL);
	bool same;

	meta_bind_int(s, 1, (int64_t)ino);
	meta_bind_int(s, 2, p->index);
	meta_bind_blob(s, 3, p->object_id, 16);
	meta_bind_int(s, 4, (int64_t)p->missing);
	same = meta_step(s) == META_ROW;
	meta_reset(s);
	return same;
}

static void holder_of(struct meta *m, uint64_t ino, uint32_t index, char holder[META_WORKER_MAX])
{
	struct meta_stmt *s = meta_stmt(m, META_Q_REPAIR_HOLDER);

	holder[0] = '\0';
	meta_bind_int(s, 1, (int64_t)ino);
	meta_bind_int(s, 2, index);
	if (meta_step(s) == META_ROW)
		meta_col_text_copy(s, 0, holder, META_WORKER_MAX);
	meta_reset(s);
}

struct lease {
	uint64_t ino;
	const struct meta_part *p;
	const char *worker, *dead;
	unsigned lease_s;
	int64_t now_s;
	char *holder;
};

static int lease_locked(struct meta *m, const struct lease *l)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_REPAIR_LEASE);
	int rc = meta_run_ints(m, META_Q_REPAIR_LEASES_EXPIRED, l->now_s, 0);

	if (rc == 0 && !part_unchanged(m, l->ino, l->p))
		return -ESTALE;
	meta_bind_int(s, 1, (int64_t)l->ino);
	meta_bind_int(s, 2, l->p->index);
	meta_bind_text(s, 3, l->worker);
	meta_bind_int(s, 4, l->now_s + l->lease_s);
	meta_bind_int(s, 5, l->now_s);
	meta_bind_text(s, 6, l->dead);
	rc = rc ?: meta_run(m, s);
	if (rc == 0 && m->changes != 1) {
		holder_of(m, l->ino, l->p->index, l->holder);
		rc = -EBUSY;
	}
	return rc;
}

int meta_repair_lease(struct meta *m, uint64_t ino, const struct meta_part *p, const char *worker,
		      const char *dead, unsigned lease_s, int64_t now_s,
		      char holder[META_WORKER_MAX])
{
	struct meta_tx t = META_TX(m);
	struct lease l = {ino, p, worker, dead, lease_s, now_s, holder};
	int rc = 0;

	holder[0] = '\0';
	if (!worker[0] || strlen(worker) >= META_WORKER_MAX || !lease_s)
		return -EINVAL;
	while (meta_tx_loop(&t, &rc))
		rc = lease_locked(m, &l);
	return rc;
}

int meta_repair_unlease(struct meta *m, uint64_t ino, uint32_t index, const char *worker)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc)) {
		struct meta_stmt *s = meta_stmt(m, META_Q_REPAIR_UNLEASE);

		meta_bind_int(s, 1, (int64_t)ino);
		meta_bind_int(s, 2, index);
		meta_bind_text(s, 3, worker);
		rc = meta_run(m, s);
	}
	return rc;
}

/* ---- rebalance passes at work ---- */

int meta_rebalance_report(struct meta *m, const char *worker, int64_t started_s,
			  uint64_t bytes_per_s, uint64_t parts_done, uint64_t parts_total,
			  int64_t now_s)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	if (!worker[0] || strlen(worker) >= META_WORKER_MAX || bytes_per_s > INT64_MAX ||
	    parts_done > INT64_MAX || parts_total > INT64_MAX)
		return -EINVAL;
	while (meta_tx_loop(&t, &rc)) {
		struct meta_stmt *s = meta_stmt(m, META_Q_REBALANCE_REPORT);

		meta_bind_text(s, 1, worker);
		meta_bind_int(s, 2, now_s);
		meta_bind_int(s, 3, started_s);
		meta_bind_int(s, 4, (int64_t)bytes_per_s);
		meta_bind_int(s, 5, (int64_t)parts_done);
		meta_bind_int(s, 6, (int64_t)parts_total);
		rc = meta_run(m, s);
	}
	return rc;
}

int meta_rebalance_done(struct meta *m, const char *worker)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc)) {
		struct meta_stmt *s = meta_stmt(m, META_Q_REBALANCE_DONE);

		meta_bind_text(s, 1, worker);
		meta_bind_int(s, 2, (int64_t)time(NULL) - FORGET_AFTER_S);
		rc = meta_run(m, s);
	}
	return rc;
}

int meta_rebalance_progress(struct meta *m, int64_t since_s, struct meta_rebalance_progress *out)
{
	g_mutex_lock(&m->lock);
	struct meta_stmt *s = meta_stmt(m, META_Q_REBALANCE_RATE);
	int rc;

	*out = (struct meta_rebalance_progress){0};
	meta_bind_int(s, 1, since_s);
	rc = meta_step(s) == META_ROW ? 0 : -EIO;
	out->workers = rc ? 0 : (unsigned)meta_col_int(s, 0);
	out->bytes_per_s = rc ? 0 : (uint64_t)meta_col_int(s, 1);
	meta_reset(s);
	s = meta_stmt(m, META_Q_REBALANCE_FURTHEST);
	meta_bind_int(s, 1, since_s);
	if (rc == 0 && meta_step(s) == META_ROW) {
		out->parts_done = (uint64_t)meta_col_int(s, 0);
		out->parts_total = (uint64_t)meta_col_int(s, 1);
		out->started_s = meta_col_int(s, 2);
	}
	meta_reset(s);
	g_mutex_unlock(&m->lock);
	return rc;
}
