/*
 * repair.c - `shardfs repair --once | --daemon [-c CLUSTER]`: rebuilds
 * every shard that writes recorded as missing (a node was down), onto
 * nodes that hold none of its part.
 *
 * --once: one pass; exit status 1 if a part could not be repaired (too few
 * shards readable, or no node took a shard) or waits for a node (none that
 * could take its shards answers).
 *
 * --daemon: pass after pass, a few parts at a time, reading at most
 * --rate MiB/s and pausing --interval seconds between passes, as the
 * shardfs-repair.service unit runs it. It tells systemd when ready and
 * when stopping; SIGTERM or SIGINT end it after the parts in hand. Mounts
 * run the same repair by themselves (fuse/mount.c: the repairer); a part
 * two of them rebuild at once is committed by one, and the other's shards
 * go (the manifest's compare-and-set).
 */
#define G_LOG_DOMAIN "shardfs"

#include "client.h"
#include "common/error.h"
#include "shardfs.h"
#include "store/store.h"

#include <glib-unix.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#define DAEMON_STEP_PARTS 4u

static int repair_once(struct client *c)
{
	struct store_repair_stats st;
	int rc = store_repair_pass(c->store, c->meta, &st);

	if (rc) {
		fprintf(stderr, "shardfs repair: metadata: %s\n", common_strerror(rc));
		return SHARDFS_EXIT_FAIL;
	}
	printf("repaired %" G_GUINT64_FORMAT " parts (%" G_GUINT64_FORMAT " shards rebuilt), %"
	       G_GUINT64_FORMAT " failed, %" G_GUINT64_FORMAT " waiting for a node, %"
	       G_GUINT64_FORMAT " rewritten meanwhile, %" G_GUINT64_FORMAT " left to another"
	       " worker\n", st.parts_repaired, st.shards_rebuilt, st.parts_failed,
	       st.parts_waiting, st.parts_changed, st.parts_elsewhere);
	return st.parts_failed || st.parts_waiting ? SHARDFS_EXIT_FAIL : 0;
}

/* The daemon's worker and the main thread that waits for signals. */
struct daemon {
	struct client *c;
	unsigned interval_s;
	uint64_t bytes_per_s;
	GMutex lock;
	GCond wake;
	bool stop; /* lock */
	GMainLoop *main;
};

static bool sleep_or_stop(struct daemon *d, gint64 us)
{
	gint64 until = g_get_monotonic_time() + us;

	g_mutex_lock(&d->lock);
	while (!d->stop && g_cond_wait_until(&d->wake, &d->lock, until))
		;
	bool stop = d->stop;
	g_mutex_unlock(&d->lock);
	return stop;
}

static void log_round(const struct store_repair_stats *st, gint64 took_us)
{
	if (!st->parts_repaired && !st->parts_failed && !st->parts_waiting && !st->parts_changed)
		return;
	g_message("repair: %" G_GUINT64_FORMAT " parts repaired (%" G_GUINT64_FORMAT
		  " shards), %" G_GUINT64_FORMAT " failed, %" G_GUINT64_FORMAT " waiting, %"
		  G_GUINT64_FORMAT " rewritten meanwhile; %.1f MiB read in %.1f s",
		  st->parts_repaired, st->shards_rebuilt, st->parts_failed, st->parts_waiting,
		  st->parts_changed, (double)st->bytes_read / (1 << 20), (double)took_us / 1e6);
}

static bool stopping(void *arg)
{
	struct daemon *d = arg;

	g_mutex_lock(&d->lock);
	bool stop = d->stop;
	g_mutex_unlock(&d->lock);
	return stop;
}

static gpointer daemon_main(gpointer arg)
{
	struct daemon *d = arg;
	struct store_repair_cursor cur = {.rate_bound = d->bytes_per_s};
	struct store_repair_stats round = {0};
	gint64 start = g_get_monotonic_time(), pause = 0;

	while (!sleep_or_stop(d, pause)) {
		bool wrapped = true;

		store_follow_members(d->c->store, d->c->meta);
		int rc = store_repair_step(d->c->store, d->c->meta, &cur, DAEMON_STEP_PARTS, &round,
					   &wrapped);

		pause = store_repair_pause_us(round.bytes_read, d->bytes_per_s,
					      g_get_monotonic_time() - start);
		if (rc)
			g_warning("repair: metadata: %s", common_strerror(rc));
		if (rc || wrapped) {
			log_round(&round, g_get_monotonic_time() - start);
			round = (struct store_repair_stats){0};
			if (!rc) /* what a membership change misplaced, at the repair rate */
				store_rebalance_if_due(d->c->store, d->c->meta, d->bytes_per_s,
						       stopping, d);
			if (sleep_or_stop(d, (gint64)d->interval_s * G_USEC_PER_SEC))
				break;
			start = g_get_monotonic_time();
			pause = 0;
		}
	}
	g_main_loop_quit(d->main);
	return NULL;
}

static gboolean on_signal(gpointer arg)
{
	struct daemon *d = arg;

	sd_notify(0, "STOPPING=1");
	g_mutex_lock(&d->lock);
	d->stop = true;
	g_cond_broadcast(&d->wake);
	g_mutex_unlock(&d->lock);
	return G_SOURCE_CONTINUE;
}

static int repair_daemon(struct client *c, unsigned interval_s, uint64_t bytes_per_s)
{
	struct daemon d = {.c = c, .interval_s = interval_s, .bytes_per_s = bytes_per_s};

	g_mutex_init(&d.lock);
	g_cond_init(&d.wake);
	d.main = g_main_loop_new(NULL, FALSE);
	guint term = g_unix_signal_add(SIGTERM, on_signal, &d);
	guint intr = g_unix_signal_add(SIGINT, on_signal, &d);
	GThread *worker = g_thread_new("repair", daemon_main, &d);

	g_message("repair daemon: a pass every %u s, at most %" G_GUINT64_FORMAT " MiB/s", interval_s,
		  bytes_per_s >> 20);
	sd_notify(0, "READY=1");
	g_main_loop_run(d.main);
	g_thread_join(worker);
	g_source_remove(term);
	g_source_remove(intr);
	g_main_loop_unref(d.main);
	g_cond_clear(&d.wake);
	g_mutex_clear(&d.lock);
	g_message("repair daemon stopped");
	return 0;
}

int cmd_repair(int argc, char **argv)
{
	char *config = NULL;
	gboolean once = FALSE, daemon = FALSE;
	gint interval = 30, rate = STORE_REPAIR_RATE_MIB;
	const GOptionEntry entries[] = {
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &config,
		 "cluster file or directory (default: $SHARDFS_CONF)", "CLUSTER"},
		{"once", 0, 0, G_OPTION_ARG_NONE, &once, "one pass over the parts with shards missing", NULL},
		{"daemon", 0, 0, G_OPTION_ARG_NONE, &daemon, "pass after pass until SIGTERM", NULL},
		{"interval", 0, 0, G_OPTION_ARG_INT, &interval, "--daemon: seconds between passes (30)", "S"},
		{"rate", 0, 0, G_OPTION_ARG_INT, &rate,
		 "--daemon: MiB/s read at most (" G_STRINGIFY(STORE_REPAIR_RATE_MIB) "; 0: unbounded)", "MIB"},
		G_OPTION_ENTRY_NULL};
	struct client c;

	if (!tools_parse(argc, argv, entries, "--once | --daemon - rebuild the shards writes left missing"))
		return SHARDFS_EXIT_USAGE;
	if (once == daemon || argc > 1 || interval < 1 || interval > 86400 || rate < 0 ||
	    rate > 100000) {
		fprintf(stderr, "shardfs repair: give --once (one pass) or --daemon, no other argument"
				" (interval 1..86400 s, rate 0..100000 MiB/s)\n");
		g_free(config);
		return SHARDFS_EXIT_USAGE;
	}
	int rc = client_open(&c, "repair", config);

	g_free(config);
	if (rc)
		return rc;
	rc = once ? repair_once(&c) : repair_daemon(&c, (unsigned)interval, (uint64_t)rate << 20);
	client_close(&c);
	return rc;
}
