/*
 * mount.c - setting up and tearing down a mount: the object store, a pool
 * of metadata connections, a metadata session with heartbeats, the FUSE
 * session and its multithreaded loop.
 *
 * In the background the process forks before any thread exists (GLib,
 * the QUIC loop and libfuse all start threads, which a fork would lose);
 * the child mounts and tells the waiting parent through a pipe whether it
 * worked, so the command's exit status says whether the mount is usable.
 *
 * On unmount, files still open are flushed (their data committed) before
 * the session ends; the session's open-file records go with it.
 */
#define G_LOG_DOMAIN "shardfs-fuse"

#include "fs_internal.h"
#include "net/net.h"
#include "metrics.h"

#include "common/metrics_http.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

/* Metadata connections by default: FUSE threads that each wait for the
 * database (a server's round trips) would be serialised on fewer. */
#define META_CONNECTIONS 8
#define HEARTBEAT_S 5 /* at most; a third of the lease when that is shorter */
#define GC_EVERY_S 30
#define READAHEAD_KB "1024" /* a whole FUSE request (max_write, max_readahead) */

extern const struct fuse_lowlevel_ops fs_ops;

struct meta *fs_meta_take(struct fs *fs)
{
	return g_async_queue_pop(fs->metas);
}

/*
 * Last in, first out: a connection's page cache is dropped whenever another
 * connection has committed since its last transaction, so handing back the
 * connection used last keeps a run of sequential requests on one warm cache.
 */
void fs_meta_give(struct fs *fs, struct meta *m)
{
	g_async_queue_push_front(fs->metas, m);
}

/* Drops the open records of closed files and of the pins that are due
 * (the session's end releases the rest), in one transaction. */
void fs_closes_drop(struct fs *fs, struct meta *m)
{
	gint64 now = g_get_monotonic_time();
	guint n = 0;

	g_mutex_lock(&fs->lock);
	while (n < fs->unpins->len && g_array_index(fs->unpins, struct fs_unpin, n).due <= now)
		g_array_append_val(fs->closes, g_array_index(fs->unpins, struct fs_unpin, n++).ino);
	g_array_remove_range(fs->unpins, 0, n);
	GArray *due = fs->closes;
	fs->closes = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	g_mutex_unlock(&fs->lock);
	/* An unlinked file goes now. After a failed batch, one at a time: a
	 * close that keeps failing waits for the next try alone. */
	if (due->len && meta_close_files(m, fs_sid(fs), (uint64_t *)due->data, due->len)) {
		for (guint i = 0; i < due->len; i++) {
			uint64_t ino = g_array_index(due, uint64_t, i);
			int rc = meta_close_file(m, fs_sid(fs), ino);

			if (rc && rc != -ENOENT) {
				g_warning("inode %" G_GUINT64_FORMAT ": open record not dropped: %s", ino,
					  g_strerror(-rc));
				g_mutex_lock(&fs->lock);
				g_array_append_val(fs->closes, ino);
				g_mutex_unlock(&fs->lock);
			}
		}
	}
	g_array_free(due, TRUE);
}

/* After a large copy the freed part buffers stay in the heap (the store
 * keeps big blocks below the mmap threshold so that they are not faulted
 * in again for every part); once no data has moved for a whole heartbeat
 * the heap is given back, so an idle mount returns near its idle size. */
static void trim_when_idle(struct fs *fs, uint64_t *last_bytes)
{
	struct store_stats st;

	store_get_stats(fs->store, &st);
	uint64_t bytes = st.bytes_written + st.bytes_read + fs_streams_moved(fs);
	if (bytes == *last_bytes)
		malloc_trim(0);
	*last_bytes = bytes;
}

/*
 * The session was ended by another mount: no heartbeat of this one reached
 * the metadata within its lease (the mount was frozen, or cut off), so its
 * locks and open records are gone and files it held open unlinked may be
 * too. Its open files fail from now on rather than write over what others
 * since did; new opens go on in a new session.
 */
static void session_reclaimed(struct fs *fs, struct meta *m, bool *told)
{
	uint64_t sid;

	if (!*told) {
		unsigned n = fs_inodes_revoke(fs);

		g_warning("metadata session %" G_GUINT64_FORMAT " was reclaimed by another mount:"
			  " no heartbeat reached the metadata within its lease of %u s; its locks"
			  " are released and its %u open files fail with EIO until closed",
			  fs_sid(fs), fs->lease_s, n);
		*told = true;
	}
	if (meta_session_start(m, g_get_host_name(), fs->lease_s, &sid) == 0) {
		g_message("metadata session %" G_GUINT64_FORMAT " started", sid);
		__atomic_store_n(&fs->sid, sid, __ATOMIC_RELAXED);
		*told = false;
	}
}

static void reap_sessions(struct meta *m)
{
	unsigned n;

	if (meta_session_reap(m, &n) == 0 && n)
		g_message("reclaimed %u sessions of mounts silent past their lease", n);
}

/* Heartbeats, reaping of dead mounts' sessions, membership changes,
 * garbage collection, pins that are due, heap trimming. */
static gpointer housekeeper(gpointer arg)
{
	struct fs *fs = arg;
	gint64 next_gc = g_get_monotonic_time();
	gint64 every = MAX(MIN(HEARTBEAT_S * G_USEC_PER_SEC, fs->lease_s * G_USEC_PER_SEC / 3),
			   G_USEC_PER_SEC / 2);
	uint64_t last_bytes = UINT64_MAX;
	bool told = false;

	g_mutex_lock(&fs->stop_lock);
	while (!fs->stopping) {
		gint64 until = g_get_monotonic_time() + every;

		g_mutex_unlock(&fs->stop_lock);
		struct meta *m = fs_meta_take(fs);
		if (meta_session_heartbeat(m, fs_sid(fs)) == -ENOENT)
			session_reclaimed(fs, m, &told);
		reap_sessions(m); /* their locks go at once: others may wait for them */
		store_follow_members(fs->store, m); /* a node command reaches us within 5 s */
		fs_closes_drop(fs, m);
		trim_when_idle(fs, &last_bytes);
		if (g_get_monotonic_time() >= next_gc) {
			unsigned n;

			store_collect_garbage(fs->store, m, 1024, &n);
			next_gc = g_get_monotonic_time() + GC_EVERY_S * G_USEC_PER_SEC;
		}
		fs_meta_give(fs, m);
		g_mutex_lock(&fs->stop_lock);
		while (!fs->stopping && g_cond_wait_until(&fs->stop_cond, &fs->stop_lock, until))
			;
	}
	g_mutex_unlock(&fs->stop_lock);
	return NULL;
}

/* Parts a repair step takes at most: a step holds a metadata connection
 * and delays unmount by at most its length. */
#define REPAIR_STEP_PARTS 4u

static void log_repair(const struct store_repair_stats *st)
{
	if (st->parts_repaired || st->parts_failed)
		g_message("repair: %" G_GUINT64_FORMAT " parts repaired (%" G_GUINT64_FORMAT
			  " shards rebuilt), %" G_GUINT64_FORMAT " failed",
			  st->parts_repaired, st->shards_rebuilt, st->parts_failed);
}

/* Waits up to secs, or until the mount stops; true if it stops. */
static bool wait_or_stop_us(struct fs *fs, gint64 us)
{
	gint64 until = g_get_monotonic_time() + us;

	g_mutex_lock(&fs->stop_lock);
	while (!fs->stopping && g_cond_wait_until(&fs->stop_cond, &fs->stop_lock, until))
		;
	bool stop = fs->stopping;
	g_mutex_unlock(&fs->stop_lock);
	return stop;
}

static bool wait_or_stop(struct fs *fs, unsigned secs)
{
	return wait_or_stop_us(fs, (gint64)secs * G_USEC_PER_SEC);
}

/* Whether this mount is the one of the cluster that makes backups: the
 * oldest live session's (a lease the metadata keeps). */
static bool backup_is_ours(struct fs *fs, struct meta *m)
{
	uint64_t first;

	return meta_session_first_live(m, &first) == 0 && first == fs_sid(fs);
}

static bool stopping(void *arg)
{
	struct fs *fs = arg;

	g_mutex_lock(&fs->stop_lock);
	bool stop = fs->stopping;
	g_mutex_unlock(&fs->stop_lock);
	return stop;
}

/* After a repair round, the one mount of the cluster that makes backups
 * also moves the shards a membership change misplaced, at the repair
 * rate; an unmount ends the pass at the next part. */
static void rebalance_if_ours(struct fs *fs)
{
	struct meta *m = fs_meta_take(fs);

	if (backup_is_ours(fs, m))
		store_rebalance_if_due(fs->store, m, fs->repair_bytes_per_s, stopping, fs);
	fs_meta_give(fs, m);
}

/* Rebuilds the shards that writes left missing, a few parts at a time,
 * going round the list of such parts; after a round it rebalances (one
 * mount of the cluster) and pauses for the repair interval. A round while
 * the node that could take the shards is still down reads nothing
 * (store_repair_step pings first). */
static gpointer repairer(gpointer arg)
{
	struct fs *fs = arg;
	struct store_repair_cursor cur = {.rate_bound = fs->repair_bytes_per_s};
	struct store_repair_stats round = {0};
	gint64 round_start = g_get_monotonic_time();
	gint64 pause = 0;

	while (!wait_or_stop_us(fs, pause)) {
		bool wrapped = true;
		struct meta *m = fs_meta_take(fs);
		int rc = store_repair_step(fs->store, m, &cur, REPAIR_STEP_PARTS, &round, &wrapped);

		fs_meta_give(fs, m);
		/* below client I/O: at most repair_rate, however much is missing */
		pause = store_repair_pause_us(round.bytes_read, fs->repair_bytes_per_s,
					      g_get_monotonic_time() - round_start);
		if (rc || wrapped) {
			log_repair(&round);
			round = (struct store_repair_stats){0};
			if (!rc)
				rebalance_if_ours(fs);
			if (wait_or_stop(fs, fs->repair_interval_s))
				break;
			round_start = g_get_monotonic_time();
			pause = 0;
		}
	}
	return NULL;
}

/* Seconds since the newest backup in the cluster; G_MAXINT64 if none. */
static gint64 backup_age_s(struct fs *fs)
{
	uint64_t *seqs;
	unsigned n;
	gint64 age = G_MAXINT64;

	if (store_backup_list(fs->store, &seqs, &n))
		return 0; /* no node answers: nowhere to write one either */
	if (n)
		age = g_get_real_time() / G_USEC_PER_SEC - (gint64)(seqs[0] / 1000000000);
	g_free(seqs);
	return age;
}

static void backup_now(struct fs *fs, struct meta *m, const char *why)
{
	struct store_backup b;
	GError *err = NULL;

	if (store_backup_write(fs->store, m, fs->backups_kept, &b, &err)) {
		g_warning("metadata backup (%s) not written: %s", why, err->message);
		g_error_free(err);
		return;
	}
	g_message("metadata backup %" G_GUINT64_FORMAT " (%s) written into the cluster: %"
		  G_GUINT64_FORMAT " rows, %" G_GUINT64_FORMAT " bytes", b.seq, why, b.rows, b.length);
}

/* Backs the metadata up into the cluster once the newest backup is a
 * backup interval old, when this mount is the cluster's backup mount;
 * looks at most every minute. */
static gpointer backuper(gpointer arg)
{
	struct fs *fs = arg;
	unsigned every = MIN(fs->backup_interval_s, 60u);

	while (!wait_or_stop(fs, every)) {
		struct meta *m = fs_meta_take(fs);

		if (backup_is_ours(fs, m) && backup_age_s(fs) >= (gint64)fs->backup_interval_s)
			backup_now(fs, m, "periodic");
		fs_meta_give(fs, m);
	}
	return NULL;
}

static int open_metas(struct fs *fs, unsigned connections, unsigned lease_s)
{
	const char *url = store_meta_url(fs->store);

	fs->metas = g_async_queue_new();
	for (unsigned i = 0; i < (connections ? connections : META_CONNECTIONS); i++) {
		struct meta *m;
		int rc = meta_open(url, &m);

		if (rc == 0 && i == 0 && (rc = meta_cluster_check(m, store_cluster(fs->store)->id)))
			meta_close(m);
		if (rc) {
			g_autofree char *safe = meta_url_safe(url);

			g_printerr("shardfs: metadata %s: %s\n", safe, meta_open_reason(rc));
			return rc;
		}
		g_async_queue_push(fs->metas, m);
	}
	struct meta *m = fs_meta_take(fs);
	int rc = store_follow_members(fs->store, m);

	if (rc < 0)
		g_warning("the metadata's members: %s; using the cluster file's nodes",
			  common_strerror(rc));
	fs->lease_s = lease_s ? lease_s : META_LEASE_DEFAULT_S;
	rc = meta_session_start(m, g_get_host_name(), fs->lease_s, &fs->sid);
	fs_meta_give(fs, m);
	return rc;
}

static struct fs *fs_new(const struct fs_mount_options *o)
{
	struct fs *fs = g_new0(struct fs, 1);
	GError *err = NULL;

	g_mutex_init(&fs->lock);
	g_mutex_init(&fs->stop_lock);
	g_cond_init(&fs->stop_cond);
	fs->inodes = g_hash_table_new(g_int64_hash, g_int64_equal);
	fs->seen = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
	fs->lookups = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
	fs->unpins = g_array_new(FALSE, FALSE, sizeof(struct fs_unpin));
	fs->closes = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	fs->attr_timeout = 1.0;
	fs->entry_timeout = 1.0;
	if (store_open(o->cluster_conf, NULL, &fs->store, &err)) {
		g_printerr("shardfs: %s\n", err->message);
		g_error_free(err);
		return fs;
	}
	fs->part_size = store_part_size(fs->store);
	if (open_metas(fs, o->meta_connections, o->session_lease_s) || fs_streams_init(fs, o->stream_dirs))
		g_clear_pointer(&fs->store, store_close);
	return fs;
}

/* Commits what files still open hold, then ends the session. */
static void fs_free(struct fs *fs)
{
	fs_inode_close_all(fs);
	fs_streams_free(fs);
	fs_locks_free(fs);
	fs_metrics_free(fs->metrics);
	if (fs->housekeeper) {
		g_mutex_lock(&fs->stop_lock);
		fs->stopping = true;
		g_cond_broadcast(&fs->stop_cond);
		g_mutex_unlock(&fs->stop_lock);
		g_thread_join(fs->housekeeper);
		if (fs->repairer)
			g_thread_join(fs->repairer);
		if (fs->backuper)
			g_thread_join(fs->backuper);
	}
	if (fs->metas) {
		struct meta *m;

		if (fs->sid && (m = g_async_queue_try_pop(fs->metas))) {
			if (fs->backuper && backup_is_ours(fs, m))
				backup_now(fs, m, "unmount");
			meta_session_end(m, fs_sid(fs));
			meta_close(m);
		}
		while ((m = g_async_queue_try_pop(fs->metas)))
			meta_close(m);
		g_async_queue_unref(fs->metas);
	}
	store_close(fs->store);
	g_hash_table_destroy(fs->inodes);
	g_hash_table_destroy(fs->seen);
	g_hash_table_destroy(fs->lookups); /* pins went with the session */
	g_array_free(fs->unpins, TRUE);
	g_array_free(fs->closes, TRUE);
	g_free(fs);
}

/*
 * libfuse 3.14 offers FUSE_CAP_HANDLE_KILLPRIV, and wants it by default,
 * but leaves FUSE_HANDLE_KILLPRIV out of the INIT reply it writes (later
 * releases send it). The session's I/O is thus the mount's own: plain
 * read and writev, except that the INIT reply carries two flags when the
 * kernel offered them: FUSE_HANDLE_KILLPRIV (privileged() in ops.c is how
 * the mount keeps its side of it) and FUSE_DIRECT_IO_ALLOW_MMAP, which
 * libfuse 3.14 does not know: with it, files opened for direct I/O can
 * still be mapped shared, and the kernel drops the cached pages a direct
 * write changes, so direct I/O stays coherent with the page cache
 * (fs->direct_io, used by ops.c). Every length is checked before a header
 * is looked at.
 */
#ifndef FUSE_DIRECT_IO_ALLOW_MMAP
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36) /* protocol 7.39, Linux 6.6 */
#endif
#define FLAGS2(flag) ((uint32_t)((flag) >> 32))

static void note_init(struct fs *fs, const struct fuse_in_header *h, const struct fuse_init_in *in,
		      size_t in_len)
{
	fs->init_unique = h->unique;
	fs->kernel_killpriv = (in->flags & FUSE_HANDLE_KILLPRIV) != 0;
	fs->kernel_dio_mmap = in_len >= offsetof(struct fuse_init_in, flags2) + sizeof(uint32_t) &&
			      (in->flags & FUSE_INIT_EXT) &&
			      (in->flags2 & FLAGS2(FUSE_DIRECT_IO_ALLOW_MMAP));
	__atomic_store_n(&fs->init_seen, true, __ATOMIC_RELEASE);
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	struct fs *fs = userdata;
	ssize_t n = read(fd, buf, len);

	if (fs->metrics && n > 0)
		fs_metrics_request(fs->metrics, buf, (size_t)n);
	if (!__atomic_load_n(&fs->init_seen, __ATOMIC_ACQUIRE) &&
	    n >= (ssize_t)(sizeof(struct fuse_in_header) + offsetof(struct fuse_init_in, flags) +
			   sizeof(uint32_t))) {
		const struct fuse_in_header *h = buf;
		const struct fuse_init_in *in = (const void *)(h + 1);

		if (h->opcode == FUSE_INIT)
			note_init(fs, h, in, (size_t)n - sizeof(*h));
	}
	return n;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct fs *fs = userdata;

	if (__atomic_load_n(&fs->init_seen, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&fs->init_answered, __ATOMIC_RELAXED) && count >= 2 &&
	    iov[0].iov_len >= sizeof(struct fuse_out_header) &&
	    iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(uint32_t)) {
		const struct fuse_out_header *h = iov[0].iov_base;
		struct fuse_init_out *out = iov[1].iov_base;

		if (h->unique == fs->init_unique) {
			if (h->error == 0 && fs->kernel_killpriv)
				out->flags |= FUSE_HANDLE_KILLPRIV;
			if (h->error == 0 && fs->kernel_dio_mmap && (out->flags & FUSE_INIT_EXT) &&
			    iov[1].iov_len >= offsetof(struct fuse_init_out, flags2) + sizeof(uint32_t)) {
				out->flags2 |= FLAGS2(FUSE_DIRECT_IO_ALLOW_MMAP);
				__atomic_store_n(&fs->direct_io, true, __ATOMIC_RELAXED);
			}
			/* INIT is answered before any other request */
			__atomic_store_n(&fs->init_answered, true, __ATOMIC_RELAXED);
		}
	}
	if (fs->metrics)
		fs_metrics_reply(fs->metrics, iov, count);
	return writev(fd, iov, count);
}

static struct fuse_session *session_new(struct fs *fs, const struct fs_mount_options *o)
{
	char *argv[8];
	int argc = 0;

	argv[argc++] = "shardfs";
	argv[argc++] = "-o";
	argv[argc++] = (char *)(o->fuse_opts && *o->fuse_opts ? o->fuse_opts : "fsname=shardfs");
	if (o->debug)
		argv[argc++] = "-d";
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_session *se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), fs);
	fuse_opt_free_args(&args);
	return se;
}

/* "MAJOR:MINOR" of the newest mount on path, from /proc/self/mountinfo
 * (a stat of the mount would wait for this very process to answer). */
static char *mount_device(const char *path)
{
	g_autofree char *text = NULL, *abs = g_canonicalize_filename(path, NULL);
	char *dev = NULL;

	if (!g_file_get_contents("/proc/self/mountinfo", &text, NULL, NULL))
		return NULL;
	char **lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l; l++) {
		char **f = g_strsplit(*l, " ", 6);

		if (g_strv_length(f) >= 5) {
			g_autofree char *mp = g_strcompress(f[4]); /* octal escapes */
			if (!strcmp(mp, abs)) {
				g_free(dev);
				dev = g_strdup(f[2]);
			}
		}
		g_strfreev(f);
	}
	g_strfreev(lines);
	return dev;
}

/* The kernel gives a FUSE mount 128 KiB of readahead whatever max_readahead
 * says; a sequential read then arrives as 128 KiB requests. A larger
 * window (root only; others keep the default) lets the reader's own
 * whole-part fetches stream. */
static void widen_readahead(const char *mountpoint)
{
	g_autofree char *dev = mount_device(mountpoint);
	g_autofree char *path = dev ? g_strdup_printf("/sys/class/bdi/%s/read_ahead_kb", dev) : NULL;
	int fd = path ? open(path, O_WRONLY | O_CLOEXEC) : -1; /* sysfs: no temp file and rename */

	if (fd < 0 || write(fd, READAHEAD_KB "\n", strlen(READAHEAD_KB) + 1) < 0)
		g_debug("cannot set %s", path ? path : "the readahead");
	if (fd >= 0)
		close(fd);
}

/* Keeps GLib's messages in the journal when there is one; else drops them
 * (stderr is /dev/null by then). */
static GLogWriterOutput log_to_journal(GLogLevelFlags level, const GLogField *fields,
				       gsize n_fields, gpointer user)
{
	(void)g_log_writer_journald(level, fields, n_fields, user);
	return G_LOG_WRITER_HANDLED;
}

/* Once the caller has its answer a background mount lets go of the
 * caller's stderr too, so that `v=$(shardfs mount ... 2>&1)` returns, and
 * logs to the journal from then on. */
static void detach_stderr(void)
{
	int null = open("/dev/null", O_WRONLY);

	if (null < 0)
		return;
	dup2(null, STDERR_FILENO);
	close(null);
	g_log_set_writer_func(log_to_journal, NULL, NULL);
}

/* The /metrics endpoint, when asked for: in the process that serves (a
 * thread of its own, so after the fork of a background mount). */
static bool start_metrics(struct fs *fs, const char *addr)
{
	GError *err = NULL;

	if (!addr)
		return true;
	fs->metrics = fs_metrics_new();
	if (metrics_server_start(addr, fs_metrics_write, fs, &fs->metrics_server, &err) == 0)
		return true;
	g_printerr("shardfs: %s\n", err->message);
	g_error_free(err);
	return false;
}

static int serve(struct fs *fs, const struct fs_mount_options *o, int ready_fd)
{
	struct fuse_loop_config *cfg;
	char ok = 0;
	int rc = 1;

	if (!fs->store || !start_metrics(fs, o->metrics_addr) || !(fs->se = session_new(fs, o)))
		goto out;
	static const struct fuse_custom_io io = {.read = io_read, .writev = io_writev};
	if (fuse_set_signal_handlers(fs->se) || fuse_session_mount(fs->se, o->mountpoint) ||
	    fuse_session_custom_io(fs->se, &io, fuse_session_fd(fs->se))) {
		g_printerr("shardfs: cannot mount on %s\n", o->mountpoint);
		goto out;
	}
	widen_readahead(o->mountpoint);
	fs_locks_init(fs);
	fs->housekeeper = g_thread_new("housekeeper", housekeeper, fs);
	fs->repair_interval_s = o->repair_interval_s;
	fs->repair_bytes_per_s = o->repair_bytes_per_s;
	if (o->repair_interval_s)
		fs->repairer = g_thread_new("repairer", repairer, fs);
	fs->backup_interval_s = o->backup_interval_s;
	fs->backups_kept = o->backups_kept ? o->backups_kept : STORE_BACKUPS_KEPT;
	if (o->backup_interval_s)
		fs->backuper = g_thread_new("backuper", backuper, fs);
	ok = 1;
	if (ready_fd >= 0) {
		detach_stderr();
		write(ready_fd, &ok, 1);
		close(ready_fd);
		ready_fd = -1;
	}
	g_message("mounted %s on %s", o->cluster_conf, o->mountpoint);
	if (fs->metrics_server)
		g_message("metrics on http://%s/metrics", o->metrics_addr);
	sd_notify(0, "READY=1"); /* shardfs-mount@.service is Type=notify */
	cfg = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(cfg, o->max_threads ? o->max_threads : 16);
	rc = fuse_session_loop_mt(fs->se, cfg) ? 1 : 0;
	fuse_loop_cfg_destroy(cfg);
	sd_notify(0, "STOPPING=1");
	/* READs and locks still parked are answered while the session exists */
	fs_streams_stop(fs);
	fs_locks_stop(fs);
	fuse_session_unmount(fs->se);
	g_message("unmounted %s", o->mountpoint);
out:
	metrics_server_stop(fs->metrics_server);
	fs->metrics_server = NULL;
	if (ready_fd >= 0) {
		write(ready_fd, &ok, 1);
		close(ready_fd);
	}
	if (fs->se) {
		fuse_remove_signal_handlers(fs->se);
		fuse_session_destroy(fs->se);
	}
	return rc;
}

/* Forks; the parent waits for the child's word and returns its exit
 * status, the child returns -1 and goes on with *ready_fd to write to. */
static int background(int *ready_fd)
{
	int fds[2];
	char ok = 0;

	if (pipe(fds))
		return 1;
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid > 0) {
		close(fds[1]);
		ssize_t n = read(fds[0], &ok, 1);
		return n == 1 && ok ? 0 : 1;
	}
	close(fds[0]);
	setsid();
	int null = open("/dev/null", O_RDWR);
	dup2(null, STDIN_FILENO);
	dup2(null, STDOUT_FILENO);
	if (null > STDERR_FILENO)
		close(null);
	*ready_fd = fds[1];
	return -1;
}

int fs_mount_run(const struct fs_mount_options *o)
{
	int ready_fd = -1;

	if (!o->foreground) {
		int rc = background(&ready_fd);
		if (rc >= 0)
			return rc;
	}
	struct fs *fs = fs_new(o);
	int rc = serve(fs, o, ready_fd);
	fs_free(fs);
	return rc;
}
