/*
 * bench_fs.c - `shardfs bench fs`: everyday tools through a real mount, next
 * to the same work on a local directory of the same disk, and next to
 * `shardfs put`/`get` of the same file.
 *
 * Everything lives in a new directory ROOT (DIR/shardfs-bench-fs-XXXXXX,
 * DIR defaulting to the current directory, so that the cluster, the local
 * directory and the source file share one disk):
 *
 *   ROOT/src          SIZE MiB of random-ish blocks (a pool of 16 random
 *                     MiB, each block stamped with its number: zeros could
 *                     take a shortcut somewhere, and a misplaced block shows)
 *   ROOT/small.tar    FILES files of 4 KiB; ROOT/entries.tar ENTRIES empty files
 *   ROOT/local/       the local directory
 *   ROOT/cluster/     `shardfs init` of 3 nodes, 2+1, on 127.0.0.1; node logs
 *   ROOT/mnt/         `shardfs mount cluster.conf mnt -f`, a child of this
 *                     process (its pid known: /proc for RSS and CPU); its
 *                     log in ROOT/mount.log
 *
 * Phases, in this order, each timed from the outside as a user would:
 *   local     on ROOT/local: dd if=src bs=1M conv=fsync; cp src, then
 *             `sync FILE`; dd to /dev/null and cp back out, each after
 *             dropping the file's page cache; `tar xf small.tar`, then
 *             `sync -f`; reading every small file (open, read, close, from
 *             this process, content checked), page cache dropped; `ls -l`
 *             of ENTRIES entries after dropping the kernel's dentry and
 *             inode caches (root only, else warm and said so)
 *   writes    a first mount: its idle RSS; `shardfs put src /put-big-0`;
 *             the same dd and cp + sync into the mount, its VmRSS sampled
 *             every 20 ms throughout, then again AFTER_S seconds later;
 *             `shardfs put src /put-big-1`; tar x of the small files +
 *             `sync -f`; tar x of the entries (not timed)
 *   reads     a fresh mount (so the kernel holds no page or dentry of the
 *             files: the honest way to drop a FUSE client's caches):
 *             `shardfs get /put-big-0 /dev/null`; dd of the big file to
 *             /dev/null, samples of it checked; cp of the second one out
 *             to ROOT, then cmp against src; VmRSS AFTER_S seconds later;
 *             `shardfs get /put-big-1 /dev/null`; the small files read and
 *             checked; `ls -l` of the entries
 * put and get are the references for the mount's dd figures, run while
 * the mount is idle, once before and once after its big copies: a cluster
 * takes new data faster while its stores are young (measured: the first
 * put of a fresh cluster 10-25% faster than the next), so one run on
 * either side and their combined rate (bytes over seconds of both) keep
 * the order from deciding the ratio. Their CPU and peak RSS come from
 * rusage.
 * The nodes' page cache is left as the writes left it, for get and the
 * mount alike (as in bench store): the read figures compare client paths.
 * Before every timed step syncfs() on ROOT writes out what earlier steps
 * left dirty, so no step pays for another's writeback; before tar x the
 * bench also waits (60 s at most) until an fdatasync on ROOT is back
 * within 1.25 x its latency at the start, which it prints (disk_calm).
 *
 * Goals (printed, met or missed; the exit status says only whether the
 * bench ran and the bytes read back were right): mount dd write >= 0.80 x
 * put, mount dd read >= 0.80 x get, tar x + sync >= 1,000 files/s, mount
 * VmRSS < 256 MiB during the big copies and, AFTER_S seconds after them,
 * within 32 MiB of its idle size. The mount's peak is its VmHWM read just
 * before each unmount; the nodes' is their VmHWM at the end.
 *
 * CPU seconds per GiB of the dd (or put, get), of the mount and of the
 * nodes are printed for the dd steps and the references: on this shared
 * 2-vCPU machine they show where a rate was lost better than the rate.
 *
 * Failure and interruption: every step's result is checked; SIGINT,
 * SIGTERM and SIGHUP stop the run before the next command starts (a
 * terminal's Ctrl-C reaches the command running too, being in this
 * process group); the mount is unmounted, the nodes stopped and ROOT
 * removed (unless --keep) on every path. The mount and the nodes run in
 * sessions of their own and get SIGTERM if this process dies, so even a
 * SIGKILL leaves no daemon behind.
 */
#define G_LOG_DOMAIN "shardfs"

#include "bench.h"
#include "kit.h"
#include "tools/cli_args.h"
#include "tools/local_cluster.h"
#include "tools/local_pg.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define BLOCK (1u << 20)
#define POOL_BLOCKS 16u
#define SMALL_FILE 4096u
#define NODES 3
#define SAMPLE_US 20000 /* between two looks at the mount's VmRSS */
#define AFTER_S 12 /* end of the big copies to the "after" RSS: the mount trims its heap
		    * after one idle heartbeat (5-10 s) */
#define GOAL_RATIO 0.80 /* of put (writes) and get (reads) */
#define GOAL_FILES_PER_S 1000
#define GOAL_FILES_PER_S_PG 500 /* a round trip to a server per statement */
#define GOAL_COPY_RSS_MIB 256
#define GOAL_AFTER_MIB 32 /* "back near idle": at most this above the idle RSS */
#define SYNC_PROBES 64	 /* 8 KiB writes, each fdatasync'ed, to time a durable commit */
#define SYNC_CALM 1.25	 /* the disk is calm again within this factor of its idle latency */
#define SYNC_WAIT_MAX_S 60

static volatile sig_atomic_t interrupted;

struct opts {
	gint size_mib, files, entries;
	char *dir;
	char *meta; /* "sqlite" (the default) or "postgres" */
	gboolean json, keep;
};

/* CPU seconds per GiB moved in one timed step, by process. */
struct cpu {
	double client; /* the command timed: dd, shardfs put or get */
	double mount;
	double nodes; /* all nodes together */
};

/* One column of the table: the mount, or the local directory. */
struct side {
	double write_mibs, cp_write_mibs, read_mibs, cp_read_mibs;
	double files_per_s, read_files_per_s;
	double ls_s;
	double sync_us, sync_wait_s; /* fdatasync latency before tar x, and the wait for it */
};

/* shardfs put (or get): a run before the mount's big copies, one after. */
struct reference {
	double mibs[2];
	struct cpu cpu[2];
	double rss_mib; /* the higher peak of the two */
};

struct results {
	struct side mnt, local;
	struct reference put, get;
	struct cpu write_cpu, read_cpu;
	double idle_rss_mib, copy_rss_mib, after_rss_mib, after_read_rss_mib, peak_rss_mib;
	double node_rss_mib[NODES];
	gboolean local_ls_cold;
	double idle_sync_us; /* fdatasync latency before the bench wrote anything */
};

/* The mount's VmRSS, sampled by a thread of its own. */
struct rss_watch {
	GMutex lock;
	GThread *thread;
	pid_t pid;    /* lock; 0: nothing to watch */
	long max_kib; /* lock; the highest VmRSS seen since the last take */
	bool stop;    /* lock */
};

struct bench {
	const struct opts *o;
	const char *self; /* the shardfs binary */
	char *root, *src, *mnt, *local, *back;
	uint8_t *pool; /* POOL_BLOCKS random blocks */
	struct local_cluster cl;
	struct local_pg pg; /* with --meta postgres */
	bool pg_made;
	pid_t mount; /* 0: not mounted */
	struct rss_watch watch;
	struct results r;
};

static double gib(const struct bench *b)
{
	return b->o->size_mib / 1024.0;
}

/* Block i of the big file: a pool block with its number stamped in. */
static void make_block(const struct bench *b, uint64_t i, uint8_t *out)
{
	memcpy(out, b->pool + (i * 7 % POOL_BLOCKS) * BLOCK, BLOCK);
	memcpy(out, &i, sizeof(i));
}

/* Small file i: 4 KiB of the pool, its number stamped in. */
static void make_small(const struct bench *b, uint32_t i, uint8_t *out)
{
	memcpy(out, b->pool + (size_t)i * SMALL_FILE % (POOL_BLOCKS * BLOCK), SMALL_FILE);
	memcpy(out, &i, sizeof(i));
}

static void small_path(char *buf, size_t size, const char *dir, int i)
{
	g_snprintf(buf, size, "%s/small/f-%06d", dir, i);
}

static gpointer rss_watch_main(gpointer arg)
{
	struct rss_watch *w = arg;

	g_mutex_lock(&w->lock);
	while (!w->stop) {
		pid_t pid = w->pid;

		g_mutex_unlock(&w->lock);
		long kib = pid ? bench_proc_status_kib(pid, "VmRSS:") : -1;
		g_mutex_lock(&w->lock);
		if (pid && w->pid == pid && kib > w->max_kib)
			w->max_kib = kib;
		g_mutex_unlock(&w->lock);
		g_usleep(SAMPLE_US);
		g_mutex_lock(&w->lock);
	}
	g_mutex_unlock(&w->lock);
	return NULL;
}

/* Watches pid from now on (0: nothing), its maximum starting afresh. */
static void rss_watch_follow(struct rss_watch *w, pid_t pid)
{
	g_mutex_lock(&w->lock);
	w->pid = pid;
	w->max_kib = 0;
	g_mutex_unlock(&w->lock);
}

/* The highest VmRSS seen since the last call, in MiB; starts afresh. A
 * look now too: on a loaded machine the watching thread may not have run
 * during a short step. */
static double rss_watch_take(struct rss_watch *w)
{
	g_mutex_lock(&w->lock);
	long now = w->pid ? bench_proc_status_kib(w->pid, "VmRSS:") : -1;
	long kib = MAX(w->max_kib, now);
	w->max_kib = 0;
	g_mutex_unlock(&w->lock);
	return kib / 1024.0;
}

static void rss_watch_stop(struct rss_watch *w)
{
	if (!w->thread)
		return;
	g_mutex_lock(&w->lock);
	w->stop = true;
	g_mutex_unlock(&w->lock);
	g_thread_join(w->thread);
	w->thread = NULL;
}

/*
 * Runs argv (stdout to /dev/null) and waits for it. Returns its wall-clock
 * seconds, or -1 if it could not start or did not exit 0 (said on stderr);
 * its CPU seconds in *cpu_s and peak RSS in *rss_mib when given.
 */
static double run_timed(char **argv, double *cpu_s, double *rss_mib)
{
	GSpawnFlags flags =
	    G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL;
	GError *err = NULL;
	struct rusage ru;
	GPid pid;
	double t0 = bench_now_s();

	if (interrupted)
		return -1;
	if (!g_spawn_async(NULL, argv, NULL, flags, NULL, NULL, &pid, &err)) {
		fprintf(stderr, "shardfs: %s\n", err->message);
		g_error_free(err);
		return -1;
	}
	int failed = bench_reap(pid, &ru);
	double secs = bench_now_s() - t0;
	if (failed) {
		g_autofree char *cmd = g_strjoinv(" ", argv);

		fprintf(stderr, "shardfs: bench fs: `%s` failed\n", cmd);
		return -1;
	}
	if (cpu_s)
		*cpu_s = bench_rusage_cpu_s(&ru);
	if (rss_mib)
		*rss_mib = ru.ru_maxrss / 1024.0;
	return secs;
}

/* Seconds of `a` then `b` (either failing: -1). */
static double run_timed2(char **a, char **b)
{
	double s1 = run_timed(a, NULL, NULL), s2 = s1 < 0 ? -1 : run_timed(b, NULL, NULL);

	return s2 < 0 ? -1 : s1 + s2;
}

/* Writes out what earlier steps left dirty on ROOT's filesystem. */
static void settle(const struct bench *b)
{
	int fd = open(b->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
}

/* Mean time of an 8 KiB write + fdatasync in ROOT: what one durable commit
 * costs on this disk now, in microseconds (-1 if it cannot be measured). */
static double sync_latency_us(const struct bench *b)
{
	g_autofree char *path = g_build_filename(b->root, "sync-probe", NULL);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uint8_t buf[8192] = {1};
	double t0 = bench_now_s(), us = -1;
	int i = 0;

	while (fd >= 0 && i < SYNC_PROBES && pwrite(fd, buf, sizeof(buf), (off_t)i * 8192) ==
						       (ssize_t)sizeof(buf) && fdatasync(fd) == 0)
		i++;
	if (i == SYNC_PROBES)
		us = (bench_now_s() - t0) * 1e6 / SYNC_PROBES;
	if (fd >= 0)
		close(fd);
	unlink(path);
	return us;
}

/* The best of three (-1 if none worked): a busy moment must not set the bar. */
static double idle_sync_latency_us(const struct bench *b)
{
	double best = -1;

	for (int i = 0; i < 3; i++) {
		double us = sync_latency_us(b);

		if (us > 0 && (best < 0 || us < best))
			best = us;
	}
	return best;
}

/*
 * Before the small files: the disk back to its idle flush latency. Some
 * seconds after gigabytes were written and synced, a virtual disk still
 * takes up to twice as long to flush (measured here: 740 us per fdatasync
 * right after a 2 GiB write, 400-500 us 20 s later), and tar x through
 * the mount makes one durable commit per file: without this the figure
 * measured the big writes' aftermath. Both sides wait the same way; the
 * latency and the wait are printed.
 */
static void disk_calm(struct bench *b, struct side *s)
{
	double t0 = bench_now_s();

	settle(b);
	s->sync_us = sync_latency_us(b);
	while (b->r.idle_sync_us > 0 && s->sync_us > b->r.idle_sync_us * SYNC_CALM &&
	       bench_now_s() - t0 < SYNC_WAIT_MAX_S && !interrupted) {
		g_usleep(G_USEC_PER_SEC);
		s->sync_us = sync_latency_us(b);
	}
	s->sync_wait_s = bench_now_s() - t0;
}

static ssize_t read_full(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static int make_src(const struct bench *b)
{
	int fd = open(b->src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	uint8_t *block = g_malloc(BLOCK);
	int rc = fd < 0 ? -1 : 0;

	for (uint64_t i = 0; rc == 0 && i < (uint64_t)b->o->size_mib; i++) {
		make_block(b, i, block);
		rc = bench_write_all(fd, block, BLOCK);
	}
	if (rc == 0)
		rc = fsync(fd);
	if (fd >= 0)
		close(fd);
	g_free(block);
	return rc;
}

/* DIR/NAME/PREFIX-NNNNNN, n of them, each of len bytes of make_small. */
static int make_files(const struct bench *b, const char *dir, const char *prefix, int n, size_t len)
{
	uint8_t buf[SMALL_FILE];
	char path[PATH_MAX];
	int rc = g_mkdir_with_parents(dir, 0755);

	for (int i = 0; rc == 0 && i < n; i++) {
		g_snprintf(path, sizeof(path), "%s/%s-%06d", dir, prefix, i);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		make_small(b, (uint32_t)i, buf);
		rc = fd < 0 ? -1 : bench_write_all(fd, buf, len);
		if (fd >= 0)
			close(fd);
	}
	return rc;
}

/* The source file and the two tar files; then the empty directories. */
static int prepare(struct bench *b)
{
	g_autofree char *stage = g_build_filename(b->root, "stage", NULL);
	g_autofree char *small = g_build_filename(stage, "small", NULL);
	g_autofree char *entries = g_build_filename(stage, "entries", NULL);
	g_autofree char *small_tar = g_build_filename(b->root, "small.tar", NULL);
	g_autofree char *entries_tar = g_build_filename(b->root, "entries.tar", NULL);
	char *tar_small[] = {"tar", "cf", small_tar, "-C", stage, "small", NULL};
	char *tar_entries[] = {"tar", "cf", entries_tar, "-C", stage, "entries", NULL};
	char *rm[] = {"rm", "-rf", stage, NULL};
	int rc;

	b->r.idle_sync_us = idle_sync_latency_us(b);
	rc = make_src(b);

	if (rc == 0)
		rc = make_files(b, small, "f", b->o->files, SMALL_FILE);
	if (rc == 0)
		rc = make_files(b, entries, "e", b->o->entries, 0);
	if (rc == 0)
		rc = bench_run(tar_small, NULL) || bench_run(tar_entries, NULL) ? -1 : 0;
	bench_run(rm, NULL);
	if (rc == 0 && (mkdir(b->local, 0755) || mkdir(b->mnt, 0755)))
		rc = -1;
	return rc;
}

/* dd of src into DIR/big; the dd's CPU seconds in *cpu_s when given. */
static int dd_write(struct bench *b, const char *dir, struct side *s, double *cpu_s)
{
	g_autofree char *ifa = g_strdup_printf("if=%s", b->src);
	g_autofree char *of = g_strdup_printf("of=%s/big", dir);
	char *dd[] = {"dd", ifa, of, "bs=1M", "conv=fsync", "status=none", NULL};

	settle(b);
	double secs = run_timed(dd, cpu_s, NULL);
	if (secs < 0)
		return -1;
	s->write_mibs = b->o->size_mib / secs;
	return 0;
}

/* cp of src to DIR/big2, then `sync DIR/big2`. */
static int cp_write(struct bench *b, const char *dir, struct side *s)
{
	g_autofree char *big2 = g_build_filename(dir, "big2", NULL);
	char *cp[] = {"cp", b->src, big2, NULL};
	char *sync_file[] = {"sync", big2, NULL};

	settle(b);
	double secs = run_timed2(cp, sync_file);
	if (secs < 0)
		return -1;
	s->cp_write_mibs = b->o->size_mib / secs;
	return 0;
}

/* dd of DIR/big to /dev/null, its page cache dropped first if drop. */
static int dd_read(struct bench *b, const char *dir, struct side *s, gboolean drop, double *cpu_s)
{
	g_autofree char *big = g_build_filename(dir, "big", NULL);
	g_autofree char *ifa = g_strdup_printf("if=%s", big);
	char *dd[] = {"dd", ifa, "of=/dev/null", "bs=1M", "status=none", NULL};

	if (drop)
		bench_drop_file_cache(big);
	settle(b);
	double secs = run_timed(dd, cpu_s, NULL);
	if (secs < 0)
		return -1;
	s->read_mibs = b->o->size_mib / secs;
	return 0;
}

/* cp of DIR/big2 to ROOT/back (not synced), its page cache dropped first
 * if drop. */
static int cp_read(struct bench *b, const char *dir, struct side *s, gboolean drop)
{
	g_autofree char *big2 = g_build_filename(dir, "big2", NULL);
	char *cp[] = {"cp", big2, b->back, NULL};

	if (drop)
		bench_drop_file_cache(big2);
	settle(b);
	double secs = run_timed(cp, NULL, NULL);
	if (secs < 0)
		return -1;
	s->cp_read_mibs = b->o->size_mib / secs;
	return 0;
}

/* tar x of the small files into DIR, then `sync -f`. */
static int create_files(struct bench *b, const char *dir, struct side *s)
{
	g_autofree char *tar = g_build_filename(b->root, "small.tar", NULL);
	g_autofree char *small = g_build_filename(dir, "small", NULL);
	char *untar[] = {"tar", "xf", tar, "-C", (char *)dir, NULL};
	char *syncfs_cmd[] = {"sync", "-f", small, NULL};

	disk_calm(b, s);
	double secs = run_timed2(untar, syncfs_cmd);
	if (secs < 0)
		return -1;
	s->files_per_s = b->o->files / secs;
	return 0;
}

/* Opens, reads and closes every small file under DIR; content checked. */
static int read_files(struct bench *b, const char *dir, struct side *s, gboolean drop)
{
	uint8_t want[SMALL_FILE], got[SMALL_FILE + 1];
	char path[PATH_MAX];
	int bad = 0;

	for (int i = 0; drop && i < b->o->files; i++) {
		small_path(path, sizeof(path), dir, i);
		bench_drop_file_cache(path);
	}
	settle(b);
	double t0 = bench_now_s();
	for (int i = 0; i < b->o->files && !bad; i++) {
		small_path(path, sizeof(path), dir, i);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read_full(fd, got, sizeof(got));

		if (fd >= 0)
			close(fd);
		make_small(b, (uint32_t)i, want);
		bad = n != SMALL_FILE || memcmp(got, want, SMALL_FILE);
		if (bad)
			fprintf(stderr, "shardfs: bench fs: %s read back wrong\n", path);
	}
	s->read_files_per_s = b->o->files / (bench_now_s() - t0);
	return bad ? -1 : 0;
}

/* tar x of the empty entries into DIR, not timed. */
static int make_entries(struct bench *b, const char *dir)
{
	g_autofree char *tar = g_build_filename(b->root, "entries.tar", NULL);
	char *untar[] = {"tar", "xf", tar, "-C", (char *)dir, NULL};

	return bench_run(untar, NULL);
}

/* `ls -l DIR/entries`, timed; its output must have a line per entry. */
static int list_entries(struct bench *b, const char *dir, struct side *s)
{
	g_autofree char *entries = g_build_filename(dir, "entries", NULL);
	g_autofree char *out = NULL;
	char *ls[] = {"ls", "-l", entries, NULL};
	int lines = 0;

	settle(b);
	double t0 = bench_now_s();
	if (bench_run(ls, &out))
		return -1;
	s->ls_s = bench_now_s() - t0;
	for (const char *p = out; p && *p; p++)
		lines += *p == '\n';
	if (lines == b->o->entries + 1) /* and "total N" */
		return 0;
	fprintf(stderr, "shardfs: bench fs: ls -l %s listed %d lines, not %d\n", entries, lines,
		b->o->entries + 1);
	return -1;
}

static int remove_big(const char *dir)
{
	g_autofree char *big = g_build_filename(dir, "big", NULL);
	g_autofree char *big2 = g_build_filename(dir, "big2", NULL);

	return unlink(big) || unlink(big2) ? -1 : 0;
}

static int bench_local(struct bench *b)
{
	struct side *s = &b->r.local;

	if (dd_write(b, b->local, s, NULL) || cp_write(b, b->local, s) ||
	    dd_read(b, b->local, s, TRUE, NULL) || cp_read(b, b->local, s, TRUE))
		return -1;
	if (remove_big(b->local) || unlink(b->back))
		return -1;
	if (create_files(b, b->local, s) || read_files(b, b->local, s, TRUE))
		return -1;
	if (make_entries(b, b->local))
		return -1;
	b->r.local_ls_cold = bench_drop_dentries();
	return list_entries(b, b->local, s);
}

static bool postgres(const struct bench *b)
{
	return b->o->meta && !strcmp(b->o->meta, "postgres");
}

static int files_goal(const struct bench *b)
{
	return postgres(b) ? GOAL_FILES_PER_S_PG : GOAL_FILES_PER_S;
}

static int start_cluster(struct bench *b)
{
	g_autofree char *dir = g_build_filename(b->root, "cluster", NULL);

	local_cluster_init(&b->cl, b->self, dir, NODES, LOCAL_PROC_TIED);
	if (postgres(b)) { /* a throwaway server in the cluster's directory */
		if (g_mkdir_with_parents(dir, 0755) || chmod(b->root, 0755) ||
		    !local_pg_init(&b->pg, dir))
			return -1;
		b->pg_made = true;
		if (local_pg_create(&b->pg, "127.0.0.1") < 0)
			return -1;
		b->cl.meta_url = b->pg.url;
	}
	if (local_cluster_create(&b->cl, "2+1"))
		return -1;
	return local_cluster_start(&b->cl, 10);
}

/* CPU seconds of the mount and of the nodes so far. */
struct cpu_mark {
	double mount, nodes;
};

static struct cpu_mark cpu_mark(const struct bench *b)
{
	struct cpu_mark m = {.mount = b->mount ? bench_proc_cpu_s(b->mount) : 0};

	for (unsigned i = 0; i < b->cl.nodes; i++)
		m.nodes += bench_proc_cpu_s(b->cl.pids[i]);
	return m;
}

static struct cpu cpu_since(const struct bench *b, struct cpu_mark m0, double client_s)
{
	struct cpu_mark m1 = cpu_mark(b);

	return (struct cpu){.client = client_s / gib(b),
			    .mount = (m1.mount - m0.mount) / gib(b),
			    .nodes = (m1.nodes - m0.nodes) / gib(b)};
}

/*
 * Run n (0 or 1) of the reference: `shardfs put src /put-big-N`, or
 * `shardfs get /put-big-N /dev/null`. The mount is up and idle meanwhile.
 */
static int run_reference(struct bench *b, gboolean put, int n, struct reference *ref)
{
	g_autofree char *remote = g_strdup_printf("/put-big-%d", n);
	char *put_argv[] = {(char *)b->self, "put", "-c", b->cl.conf, b->src, remote, NULL};
	char *get_argv[] = {(char *)b->self, "get", "-c", b->cl.conf, remote, "/dev/null", NULL};
	double client_s = 0, rss_mib = 0;

	settle(b);
	struct cpu_mark m0 = cpu_mark(b);
	double secs = run_timed(put ? put_argv : get_argv, &client_s, &rss_mib);
	if (secs < 0)
		return -1;
	ref->cpu[n] = cpu_since(b, m0, client_s);
	ref->mibs[n] = b->o->size_mib / secs;
	ref->rss_mib = MAX(ref->rss_mib, rss_mib);
	return 0;
}

/* The two runs' MiB over their seconds. */
static double reference_mibs(const struct reference *ref)
{
	if (ref->mibs[0] <= 0 || ref->mibs[1] <= 0)
		return 0;
	return 2 / (1 / ref->mibs[0] + 1 / ref->mibs[1]);
}

static struct cpu reference_cpu(const struct reference *ref)
{
	return (struct cpu){.client = (ref->cpu[0].client + ref->cpu[1].client) / 2,
			    .mount = (ref->cpu[0].mount + ref->cpu[1].mount) / 2,
			    .nodes = (ref->cpu[0].nodes + ref->cpu[1].nodes) / 2};
}

/* Unmounts, after reading the mount's VmHWM; 0 if it went cleanly. */
static int mount_stop(struct bench *b)
{
	if (!b->mount)
		return 0;
	b->r.peak_rss_mib = MAX(b->r.peak_rss_mib, bench_proc_peak_rss_mib(b->mount));
	rss_watch_follow(&b->watch, 0); /* before the pid can be reused */
	int rc = local_mount_stop(b->mnt, b->mount);
	b->mount = 0;
	if (rc)
		fprintf(stderr, "shardfs: bench fs: the unmount failed (log: %s/mount.log)\n",
			b->root);
	return rc;
}

/* `shardfs mount cluster.conf mnt -f` as a child, until the mount is live. */
static int mount_start(struct bench *b)
{
	g_autofree char *log = g_build_filename(b->root, "mount.log", NULL);
	pid_t pid = local_mount_start(&b->cl, b->mnt, NULL, log, 30);

	if (pid < 0) {
		fprintf(stderr, "shardfs: bench fs: no mount on %s (log: %s)\n", b->mnt, log);
		return -1;
	}
	b->mount = pid;
	rss_watch_follow(&b->watch, pid);
	return 0;
}

/* A first mount: the big writes (RSS watched), the small files, the entries. */
static int mount_writes(struct bench *b)
{
	struct side *s = &b->r.mnt;
	double dd_s = 0;

	if (mount_start(b))
		return -1;
	g_usleep(500000); /* let its threads and pools settle */
	b->r.idle_rss_mib = bench_proc_rss_mib(b->mount);
	if (run_reference(b, TRUE, 0, &b->r.put))
		return -1;
	rss_watch_take(&b->watch);
	struct cpu_mark m0 = cpu_mark(b);
	if (dd_write(b, b->mnt, s, &dd_s))
		return -1;
	b->r.write_cpu = cpu_since(b, m0, dd_s);
	if (cp_write(b, b->mnt, s))
		return -1;
	b->r.copy_rss_mib = rss_watch_take(&b->watch);
	g_usleep(AFTER_S * G_USEC_PER_SEC);
	b->r.after_rss_mib = bench_proc_rss_mib(b->mount);
	if (run_reference(b, TRUE, 1, &b->r.put))
		return -1;
	if (create_files(b, b->mnt, s) || make_entries(b, b->mnt))
		return -1;
	return mount_stop(b);
}

/* Samples of the big file written by dd, checked against the source. */
static int check_samples(struct bench *b)
{
	g_autofree char *big = g_build_filename(b->mnt, "big", NULL);
	uint8_t *want = g_malloc(BLOCK), got[4096];
	int fd = open(big, O_RDONLY | O_CLOEXEC), rc = fd < 0 ? -1 : 0;
	uint64_t blocks = (uint64_t)b->o->size_mib;

	for (uint64_t i = 0; rc == 0 && i < blocks; i += 1 + blocks / 8) {
		make_block(b, i, want);
		if (pread(fd, got, sizeof(got), (off_t)(i * BLOCK + 4000)) != sizeof(got) ||
		    memcmp(got, want + 4000, sizeof(got)))
			rc = -1;
	}
	if (fd >= 0)
		close(fd);
	g_free(want);
	if (rc)
		fprintf(stderr, "shardfs: bench fs: %s read back wrong\n", big);
	return rc;
}

/* A fresh mount: the big reads (RSS watched), checks, small files, ls -l. */
static int mount_reads(struct bench *b)
{
	char *cmp[] = {"cmp", b->src, b->back, NULL};
	struct side *s = &b->r.mnt;
	double dd_s = 0;

	if (mount_start(b))
		return -1;
	g_usleep(500000);
	if (run_reference(b, FALSE, 0, &b->r.get))
		return -1;
	struct cpu_mark m0 = cpu_mark(b);
	rss_watch_take(&b->watch);
	if (dd_read(b, b->mnt, s, FALSE, &dd_s))
		return -1;
	b->r.read_cpu = cpu_since(b, m0, dd_s);
	if (cp_read(b, b->mnt, s, FALSE))
		return -1;
	b->r.copy_rss_mib = MAX(b->r.copy_rss_mib, rss_watch_take(&b->watch));
	if (check_samples(b) || bench_run(cmp, NULL)) {
		fprintf(stderr, "shardfs: bench fs: the copy out differs from the source\n");
		return -1;
	}
	unlink(b->back);
	g_usleep(AFTER_S * G_USEC_PER_SEC);
	b->r.after_read_rss_mib = bench_proc_rss_mib(b->mount);
	if (run_reference(b, FALSE, 1, &b->r.get))
		return -1;
	if (read_files(b, b->mnt, s, FALSE) || list_entries(b, b->mnt, s))
		return -1;
	return mount_stop(b);
}

static void node_peaks(struct bench *b)
{
	for (unsigned i = 0; i < b->cl.nodes && i < NODES; i++)
		b->r.node_rss_mib[i] = bench_proc_peak_rss_mib(b->cl.pids[i]);
}

/* clang-format off: one phase a line */
static const struct phase {
	const char *name;
	int (*run)(struct bench *b);
} phases[] = {
    {"making the source files", prepare},
    {"the local directory", bench_local},
    {"starting the cluster", start_cluster},
    {"writes through the mount, and shardfs put", mount_writes},
    {"reads through a fresh mount, and shardfs get", mount_reads},
};
/* clang-format on */

static int run_phases(struct bench *b)
{
	gboolean progress = isatty(STDERR_FILENO) && !b->o->json;

	for (size_t i = 0; i < G_N_ELEMENTS(phases); i++) {
		if (progress)
			fprintf(stderr, "bench fs: %s...\n", phases[i].name);
		if (interrupted || phases[i].run(b)) {
			fprintf(stderr, "shardfs: bench fs failed in: %s%s\n", phases[i].name,
				interrupted ? " (interrupted)" : "");
			return -1;
		}
	}
	node_peaks(b);
	return 0;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static const struct bench_col table_cols[] = {
	BENCH_COL("", -36, 0),
	BENCH_COL("", -7, 0),
	BENCH_COL("mount", 10, 1),
	BENCH_COL("local", 10, 1),
	BENCH_COL("vs local", 9, 2),
};

static const struct bench_col goal_cols[] = {
	BENCH_COL("goals", -48, 0),
	BENCH_COL("figure", 10, 0),
	BENCH_COL("goal", 12, 0),
	BENCH_COL_GAP(1),
};

/* Seconds get 3 digits, rates 1. */
static void print_row(const char *label, const char *unit, double mnt, double local,
		      double vs_local)
{
	int digits = strcmp(unit, "s") ? 1 : 3;
	struct bench_row row;

	bench_row_start(&row, table_cols, G_N_ELEMENTS(table_cols));
	bench_row_text(&row, label);
	bench_row_text(&row, unit);
	bench_row_num_digits(&row, mnt, digits);
	bench_row_num_digits(&row, local, digits);
	bench_row_num(&row, vs_local);
	bench_row_end(&row);
}

static void print_goal(const char *label, const char *figure, const char *goal, gboolean met)
{
	struct bench_row row;

	bench_row_start(&row, goal_cols, G_N_ELEMENTS(goal_cols));
	bench_row_text(&row, label);
	bench_row_text(&row, figure);
	bench_row_text(&row, goal);
	bench_row_text(&row, met ? "met" : "missed");
	bench_row_end(&row);
}

static void print_goals(const struct bench *b)
{
	const struct results *r = &b->r;
	double put_mibs = reference_mibs(&r->put), get_mibs = reference_mibs(&r->get);
	double write_ratio = ratio(r->mnt.write_mibs, put_mibs);
	double read_ratio = ratio(r->mnt.read_mibs, get_mibs);
	double after_goal = r->idle_rss_mib + GOAL_AFTER_MIB;
	char label[64], fig[32], goal[32];

	bench_table_head(goal_cols, G_N_ELEMENTS(goal_cols));
	g_snprintf(label, sizeof(label), "write: mount dd / shardfs put (%.1f MiB/s)", put_mibs);
	g_snprintf(fig, sizeof(fig), "%.3f", write_ratio);
	print_goal(label, fig, ">= 0.80", write_ratio >= GOAL_RATIO);
	g_snprintf(label, sizeof(label), "read: mount dd / shardfs get (%.1f MiB/s)", get_mibs);
	g_snprintf(fig, sizeof(fig), "%.3f", read_ratio);
	print_goal(label, fig, ">= 0.80", read_ratio >= GOAL_RATIO);
	g_snprintf(fig, sizeof(fig), "%.0f/s", r->mnt.files_per_s);
	g_snprintf(goal, sizeof(goal), ">= %d/s", files_goal(b));
	print_goal("create: tar x + sync -f through the mount", fig, goal,
		   r->mnt.files_per_s >= files_goal(b));
	g_snprintf(fig, sizeof(fig), "%.0f MiB", r->copy_rss_mib);
	g_snprintf(goal, sizeof(goal), "< %d MiB", GOAL_COPY_RSS_MIB);
	print_goal("mount VmRSS during the big copies (max)", fig, goal,
		   r->copy_rss_mib < GOAL_COPY_RSS_MIB);
	g_snprintf(label, sizeof(label), "mount VmRSS %d s after the writes (idle %.0f MiB)",
		   AFTER_S, r->idle_rss_mib);
	g_snprintf(fig, sizeof(fig), "%.0f MiB", r->after_rss_mib);
	g_snprintf(goal, sizeof(goal), "<= %.0f MiB", after_goal);
	print_goal(label, fig, goal, r->after_rss_mib <= after_goal);
	printf("put %.1f then %.1f MiB/s, get %.1f then %.1f MiB/s: one run before the "
	       "mount's dd and cp,\none after, both counted. Back near idle: at most %d MiB "
	       "above it.\n\n",
	       r->put.mibs[0], r->put.mibs[1], r->get.mibs[0], r->get.mibs[1], GOAL_AFTER_MIB);
}

static void print_table(const struct bench *b)
{
	const struct results *r = &b->r;
	const struct side *m = &r->mnt, *l = &r->local;
	char label[64];

	printf("shardfs bench fs: %d MiB file, %d files of 4 KiB, %d entries\n", b->o->size_mib,
	       b->o->files, b->o->entries);
	printf("3 nodes 2+1 on 127.0.0.1, metadata in %s, mount and local directory in %s\n\n",
	       postgres(b) ? "PostgreSQL (a throwaway local server)" : "SQLite", b->root);
	bench_table_head(table_cols, G_N_ELEMENTS(table_cols));
	print_row("write  dd bs=1M conv=fsync", "MiB/s", m->write_mibs, l->write_mibs,
		  ratio(m->write_mibs, l->write_mibs));
	print_row("write  cp, then sync FILE", "MiB/s", m->cp_write_mibs, l->cp_write_mibs,
		  ratio(m->cp_write_mibs, l->cp_write_mibs));
	print_row("read   dd bs=1M to /dev/null", "MiB/s", m->read_mibs, l->read_mibs,
		  ratio(m->read_mibs, l->read_mibs));
	print_row("read   cp to the local disk", "MiB/s", m->cp_read_mibs, l->cp_read_mibs,
		  ratio(m->cp_read_mibs, l->cp_read_mibs));
	print_row("create tar x 4 KiB files, sync -f", "files/s", m->files_per_s, l->files_per_s,
		  ratio(m->files_per_s, l->files_per_s));
	print_row("read   open/read/close 4 KiB files", "files/s", m->read_files_per_s,
		  l->read_files_per_s, ratio(m->read_files_per_s, l->read_files_per_s));
	g_snprintf(label, sizeof(label), "list   ls -l of %d entries", b->o->entries);
	print_row(label, "s", m->ls_s, l->ls_s, ratio(l->ls_s, m->ls_s));
	printf("\nvs local = mount speed / local speed. Local reads: page cache dropped; "
	       "local ls: %s.\nMount reads and ls: through a fresh mount; "
	       "the nodes' page cache as the writes left it.\n",
	       r->local_ls_cold ? "dentry and inode caches dropped" : "warm caches (not root)");
	printf("fdatasync of 8 KiB on this disk: %.0f us idle; before tar x %.0f us (mount, after "
	       "%.0f s) and %.0f us (local, after %.0f s).\nOne durable commit per file: tar x "
	       "through the mount cannot pass %.0f files/s here.\n\n",
	       r->idle_sync_us, m->sync_us, m->sync_wait_s, l->sync_us, l->sync_wait_s,
	       m->sync_us > 0 ? 1e6 / m->sync_us : 0);
	struct cpu put = reference_cpu(&r->put), get = reference_cpu(&r->get);

	print_goals(b);
	printf("RSS: mount idle %.0f MiB, %d s after the reads %.0f MiB, peak (VmHWM) %.0f MiB; "
	       "nodes' peaks %.0f, %.0f, %.0f MiB; put %.0f MiB, get %.0f MiB\n",
	       r->idle_rss_mib, AFTER_S, r->after_read_rss_mib, r->peak_rss_mib, r->node_rss_mib[0],
	       r->node_rss_mib[1], r->node_rss_mib[2], r->put.rss_mib, r->get.rss_mib);
	printf("CPU s per GiB  write: put %.2f + nodes %.2f | dd %.2f + mount %.2f + nodes %.2f\n"
	       "               read:  get %.2f + nodes %.2f | dd %.2f + mount %.2f + nodes %.2f\n",
	       put.client, put.nodes, r->write_cpu.client, r->write_cpu.mount, r->write_cpu.nodes,
	       get.client, get.nodes, r->read_cpu.client, r->read_cpu.mount, r->read_cpu.nodes);
}

static void json_cpu(struct bench_json *j, const char *name, const struct cpu *c)
{
	const char *what[] = {"client", "mount", "nodes"};
	const double v[] = {c->client, c->mount, c->nodes};

	for (size_t i = 0; i < G_N_ELEMENTS(what); i++) {
		g_autofree char *key = g_strdup_printf("%s_%s_cpu_s_per_gib", name, what[i]);

		bench_json_num(j, key, v[i], 3);
	}
}

static void json_list(struct bench_json *j, const char *key, const double *v, size_t n)
{
	bench_json_array(j, key);
	for (size_t i = 0; i < n; i++)
		bench_json_num(j, NULL, v[i], 1);
	bench_json_end(j);
}

/* Rates and ratios of the big file, both sides. */
static void json_big(struct bench_json *j, const struct bench *b)
{
	const struct results *r = &b->r;
	const struct side *m = &r->mnt, *l = &r->local;
	double put_mibs = reference_mibs(&r->put), get_mibs = reference_mibs(&r->get);

	bench_json_int(j, "size_mib", b->o->size_mib);
	bench_json_num(j, "write_mib_s", m->write_mibs, 1);
	bench_json_num(j, "cp_write_mib_s", m->cp_write_mibs, 1);
	bench_json_num(j, "read_mib_s", m->read_mibs, 1);
	bench_json_num(j, "cp_read_mib_s", m->cp_read_mibs, 1);
	bench_json_num(j, "put_mib_s", put_mibs, 1);
	bench_json_num(j, "get_mib_s", get_mibs, 1);
	bench_json_num(j, "write_ratio", ratio(m->write_mibs, put_mibs), 3);
	bench_json_num(j, "read_ratio", ratio(m->read_mibs, get_mibs), 3);
	bench_json_num(j, "local_write_mib_s", l->write_mibs, 1);
	bench_json_num(j, "local_cp_write_mib_s", l->cp_write_mibs, 1);
	bench_json_num(j, "local_read_mib_s", l->read_mibs, 1);
	bench_json_num(j, "local_cp_read_mib_s", l->cp_read_mibs, 1);
}

/* The small files, the listing, the disk's flush latency. */
static void json_small(struct bench_json *j, const struct bench *b)
{
	const struct results *r = &b->r;
	const struct side *m = &r->mnt, *l = &r->local;

	bench_json_int(j, "files", b->o->files);
	bench_json_num(j, "files_per_s", m->files_per_s, 0);
	bench_json_num(j, "local_files_per_s", l->files_per_s, 0);
	bench_json_num(j, "read_files_per_s", m->read_files_per_s, 0);
	bench_json_num(j, "local_read_files_per_s", l->read_files_per_s, 0);
	bench_json_int(j, "ls_entries", b->o->entries);
	bench_json_num(j, "ls_s", m->ls_s, 3);
	bench_json_num(j, "local_ls_s", l->ls_s, 3);
	bench_json_bool(j, "local_ls_cold", r->local_ls_cold);
	bench_json_num(j, "idle_fdatasync_us", r->idle_sync_us, 0);
	bench_json_num(j, "tar_fdatasync_us", m->sync_us, 0);
	bench_json_num(j, "local_tar_fdatasync_us", l->sync_us, 0);
	bench_json_num(j, "tar_calm_wait_s", m->sync_wait_s, 1);
	bench_json_num(j, "local_tar_calm_wait_s", l->sync_wait_s, 1);
}

static void json_rss(struct bench_json *j, const struct results *r)
{
	bench_json_num(j, "mount_peak_rss_mib", r->peak_rss_mib, 1);
	bench_json_num(j, "mount_copy_rss_mib", r->copy_rss_mib, 1);
	bench_json_num(j, "mount_idle_rss_mib", r->idle_rss_mib, 1);
	bench_json_num(j, "mount_after_rss_mib", r->after_rss_mib, 1);
	bench_json_num(j, "mount_after_read_rss_mib", r->after_read_rss_mib, 1);
	bench_json_num(j, "put_rss_mib", r->put.rss_mib, 1);
	bench_json_num(j, "get_rss_mib", r->get.rss_mib, 1);
	json_list(j, "node_peak_rss_mib", r->node_rss_mib, NODES);
	json_list(j, "put_runs_mib_s", r->put.mibs, 2);
	json_list(j, "get_runs_mib_s", r->get.mibs, 2);
}

static void print_json(const struct bench *b)
{
	const struct results *r = &b->r;
	struct cpu put = reference_cpu(&r->put), get = reference_cpu(&r->get);
	struct bench_json j;

	bench_json_init(&j, FALSE);
	bench_json_str(&j, "bench", "fs");
	bench_json_str(&j, "meta", postgres(b) ? "postgres" : "sqlite");
	json_big(&j, b);
	json_small(&j, b);
	json_rss(&j, r);
	json_cpu(&j, "put", &put);
	json_cpu(&j, "write", &r->write_cpu);
	json_cpu(&j, "get", &get);
	json_cpu(&j, "read", &r->read_cpu);
	bench_json_num(&j, "goal_ratio", GOAL_RATIO, 2);
	bench_json_int(&j, "goal_files_per_s", files_goal(b));
	bench_json_int(&j, "goal_copy_rss_mib", GOAL_COPY_RSS_MIB);
	bench_json_int(&j, "goal_after_above_idle_mib", GOAL_AFTER_MIB);
	bench_json_print(&j);
}

/* The source, the local copies (3 at once), the cluster's 4 files of
 * SIZE x 3/2 and one copy back: 8 x SIZE, plus room for the rest. */
static gboolean enough_space(const struct bench *b)
{
	uint64_t need = ((uint64_t)b->o->size_mib * 8 + 512) << 20;
	struct statvfs sv;

	if (statvfs(b->root, &sv) < 0 || (uint64_t)sv.f_bavail * sv.f_frsize >= need)
		return TRUE;
	fprintf(stderr, "shardfs: %s has %llu MiB free, the bench needs %llu MiB (8 x --size)\n",
		b->root, (unsigned long long)((uint64_t)sv.f_bavail * sv.f_frsize >> 20),
		(unsigned long long)(need >> 20));
	return FALSE;
}

/* ROOT: a new directory under dir (default: the current one), absolute. */
static char *make_root(const char *dir)
{
	g_autofree char *parent = g_canonicalize_filename(dir ? dir : ".", NULL);
	char *root = g_build_filename(parent, "shardfs-bench-fs-XXXXXX", NULL);

	if (g_mkdir_with_parents(parent, 0755) == 0 && g_mkdtemp(root))
		return root;
	fprintf(stderr, "shardfs: cannot create %s: %s\n", root, g_strerror(errno));
	g_free(root);
	return NULL;
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void catch_signals(struct sigaction *old)
{
	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
	const int sigs[] = {SIGINT, SIGTERM, SIGHUP};

	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], &sa, &old[i]);
}

static void restore_signals(const struct sigaction *old)
{
	const int sigs[] = {SIGINT, SIGTERM, SIGHUP};

	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], &old[i], NULL);
}

/* Everything started is stopped, whatever happened; ROOT goes unless kept. */
static int cleanup(struct bench *b)
{
	int rc = mount_stop(b);

	rss_watch_stop(&b->watch);
	local_cluster_stop(&b->cl);
	local_cluster_fini(&b->cl);
	if (b->pg_made) {
		local_pg_stop(&b->pg);
		local_pg_fini(&b->pg);
	}
	if (b->o->keep)
		fprintf(stderr, "shardfs: bench fs: kept %s\n", b->root);
	else if (!local_mount_is_mounted(b->mnt))
		bench_remove_tree(b->root);
	else
		fprintf(stderr, "shardfs: bench fs: %s is still mounted; not removed\n", b->mnt);
	return rc;
}

static int run(const struct opts *o, const char *self)
{
	struct bench b = {.o = o, .self = self};
	struct sigaction old[3];
	int rc = -1;

	if (!(b.root = make_root(o->dir)))
		return -1;
	b.src = g_build_filename(b.root, "src", NULL);
	b.mnt = g_build_filename(b.root, "mnt", NULL);
	b.local = g_build_filename(b.root, "local", NULL);
	b.back = g_build_filename(b.root, "back", NULL);
	b.pool = g_malloc(POOL_BLOCKS * BLOCK);
	for (size_t i = 0; i < POOL_BLOCKS * BLOCK / 4; i++)
		((uint32_t *)b.pool)[i] = g_random_int();
	g_mutex_init(&b.watch.lock);
	b.watch.thread = g_thread_new("bench-fs-rss", rss_watch_main, &b.watch);
	catch_signals(old);
	if (enough_space(&b))
		rc = run_phases(&b);
	if (cleanup(&b))
		rc = -1;
	restore_signals(old);
	if (rc == 0 && o->json)
		print_json(&b);
	else if (rc == 0)
		print_table(&b);
	g_mutex_clear(&b.watch.lock);
	g_free(b.pool);
	g_free(b.back);
	g_free(b.local);
	g_free(b.mnt);
	g_free(b.src);
	g_free(b.root);
	return rc;
}

int cmd_bench_fs(int argc, char **argv)
{
	struct opts o = {.size_mib = 2048, .files = 2000, .entries = 10000};
	GOptionEntry entries[] = {
	    {"size", 's', 0, G_OPTION_ARG_INT, &o.size_mib, "MiB in the big file (default 2048)",
	     "MIB"},
	    {"files", 'n', 0, G_OPTION_ARG_INT, &o.files, "4 KiB files created (default 2000)",
	     "N"},
	    {"entries", 'e', 0, G_OPTION_ARG_INT, &o.entries,
	     "entries of the directory listed (default 10000)", "N"},
	    {"dir", 'd', 0, G_OPTION_ARG_FILENAME, &o.dir,
	     "where to make the bench directory (default: the current one)", "DIR"},
	    {"json", 0, 0, G_OPTION_ARG_NONE, &o.json, "print one JSON object", NULL},
	    {"keep", 0, 0, G_OPTION_ARG_NONE, &o.keep, "keep the bench directory", NULL},
	    {"meta", 0, 0, G_OPTION_ARG_STRING, &o.meta,
	     "the metadata engine of the cluster: sqlite (default) or postgres (a throwaway local"
	     " server)", "ENGINE"},
	    G_OPTION_ENTRY_NULL,
	};
	g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
	int rc;

	if (!tools_parse(argc, argv, entries, "- cp, dd, tar and ls through a mount vs local disk"))
		return SHARDFS_EXIT_USAGE;
	if (argc != 1 || o.size_mib < 8 || o.size_mib > (1 << 20) || o.files < 1 ||
	    o.files > 1000000 || o.entries < 1 || o.entries > 1000000 ||
	    (o.meta && strcmp(o.meta, "sqlite") && strcmp(o.meta, "postgres"))) {
		fprintf(stderr, "shardfs: --size must be 8..1048576, --files and --entries "
				"1..1000000, --meta sqlite or postgres\n");
		g_free(o.dir);
		g_free(o.meta);
		return SHARDFS_EXIT_USAGE;
	}
	rc = self ? run(&o, self) : -1;
	g_free(o.dir);
	g_free(o.meta);
	return rc ? SHARDFS_EXIT_FAIL : 0;
}
