/*
 * meta_repair.c - what the repair workers say of themselves (meta.h):
 * each rebuilding worker's rate, which `shardfs status` sums to say that
 * the cluster is repairing and how long it has to go. Calls only the
 * core.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

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

	if (!worker[0] || strlen(worker) >= 64 || bytes_per_s > INT64_MAX)
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
