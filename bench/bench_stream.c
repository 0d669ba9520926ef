/*
 * bench_stream.c - `shardfs bench stream`: one stream file, one writer on
 * mount A, N readers split over mounts A and B (N = 1 reads on B, across
 * mounts), on a local 3-node 2+1 cluster; beside it the same fan-out
 * through local pipes, the machine's limit for handing bytes to N readers.
 *
 * For each N (default 1, 16 and 64), two runs, each on a new stream in a
 * stream directory of default settings (live, 8 MiB ring):
 *
 *   full speed  the writer appends 1 MiB chunks as fast as it can for
 *               SECONDS; delivered = the bytes all readers got, over the
 *               time from the first write to the last reader's EOF.
 *               Live readers that fall behind skip (the mount's dropped
 *               count is printed): delivered is what they received.
 *   latency     the writer appends 64 KiB chunks at 50 MiB/s for 3 s, each
 *               stamped with CLOCK_MONOTONIC; every reader notes when each
 *               stamp reaches it: p50 and p99 of write-to-read latency.
 *
 *   pipes       the writer writes each 1 MiB chunk into N pipes, a thread
 *               reading each: bytes delivered per second.
 *
 * Readers are threads of this process and open the stream before the
 * writer does (the node counts them before the run starts). The home
 * node's peak RSS (VmHWM) is read after each N.
 *
 * Goals (printed): with 16 readers, 1 GiB/s delivered or more, and p99
 * latency under 10 ms at 50 MiB/s written.
 *
 * Everything lives in ROOT = DIR/shardfs-bench-stream-XXXXXX (removed
 * unless --keep); mounts and nodes are children in sessions of their own
 * that get SIGTERM if this process dies.
 */
#define G_LOG_DOMAIN "shardfs"

#include "bench.h"
#include "kit.h"
#include "tools/cli_args.h"
#include "tools/local_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define NODES 3
#define BIG_CHUNK (1u << 20)
#define STAMP_CHUNK (64u << 10)
#define PACED_MIB_S 50
#define PACED_S 3
#define MAX_BYTES (8ull << 30) /* bound on a full-speed run */
#define MAX_READERS 256
#define STAMP_MAGIC 0x4b4e554843534653ull /* "SFSCHUNK" */
#define GOAL_READERS 16
#define GOAL_DELIVERED_MIB_S 1024
#define GOAL_P99_MS 10.0

struct opts {
	gint seconds;
	char *dir, *readers;
	gboolean json, keep;
};

struct reader {
	GThread *thread;
	char *path; /* NULL: read fd (a pipe) */
	int fd;
	bool stamps; /* note the latency of every stamped chunk */
	uint64_t bytes;
	GArray *lat_ms; /* double */
	int err;
	double eof_at;
};

struct result {
	unsigned readers;
	double written_mib_s, delivered_mib_s, pipes_mib_s;
	double p50_ms, p99_ms;
	double dropped_mib;
	double home_rss_mib;
	int errors;
};

struct bench {
	const struct opts *o;
	const char *self;
	char *root, *mnt[2];
	pid_t mount[2];
	struct local_cluster cl;
	GArray *results; /* struct result */
};

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* ---- readers ---- */

/* Latencies of the stamps wholly inside buf, which starts at stream offset off. */
static void note_stamps(struct reader *r, const uint8_t *buf, size_t n, uint64_t off)
{
	uint64_t now = mono_ns();

	for (uint64_t c = (off + STAMP_CHUNK - 1) / STAMP_CHUNK * STAMP_CHUNK; c + 16 <= off + n;
	     c += STAMP_CHUNK) {
		uint64_t stamp[2];

		memcpy(stamp, buf + (c - off), sizeof(stamp));
		if (stamp[0] == STAMP_MAGIC && stamp[1] <= now) {
			double ms = (double)(now - stamp[1]) / 1e6;
			g_array_append_val(r->lat_ms, ms);
		}
	}
}

static gpointer reader_main(gpointer arg)
{
	struct reader *r = arg;
	uint8_t *buf = g_malloc(BIG_CHUNK);
	ssize_t n;

	while ((n = read(r->fd, buf, BIG_CHUNK)) > 0 || (n < 0 && errno == EINTR)) {
		if (n <= 0)
			continue;
		if (r->stamps)
			note_stamps(r, buf, (size_t)n, r->bytes);
		r->bytes += (uint64_t)n;
	}
	if (n < 0)
		r->err = errno;
	r->eof_at = bench_now_s();
	close(r->fd);
	g_free(buf);
	return NULL;
}

static int readers_start(struct reader *rs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		rs[i].lat_ms = g_array_new(FALSE, FALSE, sizeof(double));
		if (rs[i].path && (rs[i].fd = open(rs[i].path, O_RDONLY | O_CLOEXEC)) < 0) {
			fprintf(stderr, "shardfs: bench stream: %s: %s\n", rs[i].path, g_strerror(errno));
			return -1;
		}
		rs[i].thread = g_thread_new("reader", reader_main, &rs[i]);
	}
	return 0;
}

/* Joins them; the sum of their bytes, the time of the last EOF. */
static uint64_t readers_join(struct reader *rs, unsigned n, double *last_eof, int *errors)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < n; i++) {
		if (rs[i].thread)
			g_thread_join(rs[i].thread);
		sum += rs[i].bytes;
		*last_eof = MAX(*last_eof, rs[i].eof_at);
		*errors += rs[i].err != 0;
	}
	return sum;
}

static void readers_free(struct reader *rs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		g_free(rs[i].path);
		if (rs[i].lat_ms)
			g_array_free(rs[i].lat_ms, TRUE);
	}
	g_free(rs);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void percentiles(struct reader *rs, unsigned n, double *p50, double *p99)
{
	GArray *all = g_array_new(FALSE, FALSE, sizeof(double));

	for (unsigned i = 0; i < n; i++)
		g_array_append_vals(all, rs[i].lat_ms->data, rs[i].lat_ms->len);
	qsort(all->data, all->len, sizeof(double), cmp_double);
	*p50 = all->len ? g_array_index(all, double, all->len / 2) : -1;
	*p99 = all->len ? g_array_index(all, double, all->len * 99 / 100) : -1;
	g_array_free(all, TRUE);
}

/* ---- one stream run ---- */

static uint64_t xattr_u64(const char *path, const char *name)
{
	char v[32] = {0};
	g_autofree char *full = g_strconcat("user.shardfs.", name, NULL);

	if (getxattr(path, full, v, sizeof(v) - 1) < 0)
		return 0;
	return g_ascii_strtoull(v, NULL, 10);
}

/* N readers of name: the first on mount B, then alternately A and B. */
static struct reader *stream_readers(const struct bench *b, const char *name, unsigned n,
				     bool stamps)
{
	struct reader *rs = g_new0(struct reader, n);

	for (unsigned i = 0; i < n; i++) {
		rs[i].path = g_build_filename(b->mnt[(i + 1) % 2], "s", name, NULL);
		rs[i].stamps = stamps;
	}
	return rs;
}

static bool wait_readers(const char *path, unsigned n)
{
	for (double deadline = bench_now_s() + 10; bench_now_s() < deadline; g_usleep(20000))
		if (xattr_u64(path, "readers") == n)
			return true;
	fprintf(stderr, "shardfs: bench stream: the home node never saw %u readers\n", n);
	return false;
}

/* Writes chunk-byte chunks, stamped, for secs or max bytes, paced at
 * mib_s (0: full speed); returns the bytes written or -1. */
static int64_t write_stream(int fd, size_t chunk, double secs, double mib_s)
{
	uint8_t *buf = g_malloc(chunk);
	double t0 = bench_now_s();
	uint64_t done = 0;

	memset(buf, 0x5a, chunk);
	while (bench_now_s() - t0 < secs && done < MAX_BYTES) {
		if (mib_s > 0) {
			double due = t0 + (double)done / (mib_s * 1048576.0);
			if (due > bench_now_s())
				g_usleep((gulong)((due - bench_now_s()) * 1e6));
		}
		uint64_t stamp[2] = {STAMP_MAGIC, mono_ns()};
		memcpy(buf, stamp, sizeof(stamp));
		if (bench_write_all(fd, buf, chunk))
			break;
		done += chunk;
	}
	g_free(buf);
	return done;
}

/* One run on stream name; *written_mib_s, *delivered_mib_s, latencies. */
static int stream_run(struct bench *b, struct result *res, const char *name, bool paced)
{
	unsigned n = res->readers;
	g_autofree char *wpath = g_build_filename(b->mnt[0], "s", name, NULL);
	struct reader *rs = stream_readers(b, name, n, paced);
	int fd = open(wpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), rc = -1;
	double last_eof = 0;

	if (fd < 0 || readers_start(rs, n) || !wait_readers(wpath, n)) {
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	double t0 = bench_now_s();
	int64_t bytes = fd < 0 ? -1
			       : write_stream(fd, paced ? STAMP_CHUNK : BIG_CHUNK,
					      paced ? PACED_S : b->o->seconds, paced ? PACED_MIB_S : 0);
	double wrote_s = bench_now_s() - t0;
	if (fd >= 0)
		close(fd); /* the end of the stream: readers get EOF */
	uint64_t got = readers_join(rs, n, &last_eof, &res->errors);
	if (bytes > 0 && res->errors == 0) {
		rc = 0;
		if (paced) {
			percentiles(rs, n, &res->p50_ms, &res->p99_ms);
		} else {
			res->written_mib_s = (double)bytes / 1048576.0 / wrote_s;
			res->delivered_mib_s = (double)got / 1048576.0 / (last_eof - t0);
			res->dropped_mib = (double)(xattr_u64(wpath, "dropped") +
						    xattr_u64(rs[0].path, "dropped")) / 1048576.0;
			uint64_t home = xattr_u64(wpath, "home");
			if (home >= 1 && home <= NODES)
				res->home_rss_mib = bench_proc_peak_rss_mib(b->cl.pids[home - 1]);
		}
	}
	readers_free(rs, n);
	return rc;
}

/* The same fan-out through local pipes: delivered MiB/s. */
static double pipes_run(unsigned n, double secs)
{
	struct reader *rs = g_new0(struct reader, n);
	int *wfd = g_new(int, n);
	uint8_t *buf = g_malloc0(BIG_CHUNK);
	double last_eof = 0, t0;
	uint64_t done = 0;
	int errors = 0;

	for (unsigned i = 0; i < n; i++) {
		int p[2];

		if (pipe2(p, O_CLOEXEC))
			return -1;
		fcntl(p[1], F_SETPIPE_SZ, BIG_CHUNK);
		rs[i].fd = p[0];
		wfd[i] = p[1];
	}
	readers_start(rs, n);
	t0 = bench_now_s();
	while (bench_now_s() - t0 < secs && done < MAX_BYTES) {
		for (unsigned i = 0; i < n; i++)
			bench_write_all(wfd[i], buf, BIG_CHUNK);
		done += BIG_CHUNK;
	}
	for (unsigned i = 0; i < n; i++)
		close(wfd[i]);
	uint64_t got = readers_join(rs, n, &last_eof, &errors);
	readers_free(rs, n);
	g_free(wfd);
	g_free(buf);
	return (double)got / 1048576.0 / (last_eof - t0);
}

/* ---- setup, output ---- */

static int setup(struct bench *b)
{
	g_autofree char *cdir = g_build_filename(b->root, "cluster", NULL);

	local_cluster_init(&b->cl, b->self, cdir, NODES, LOCAL_PROC_TIED);
	if (local_cluster_create(&b->cl, "2+1") || local_cluster_start(&b->cl, 10))
		return -1;
	for (int i = 0; i < 2; i++) {
		b->mnt[i] = g_build_filename(b->root, i ? "mnt-b" : "mnt-a", NULL);
		g_autofree char *log = g_strconcat(b->mnt[i], ".log", NULL);

		g_mkdir_with_parents(b->mnt[i], 0755);
		if ((b->mount[i] = local_mount_start(&b->cl, b->mnt[i], "streams=s", log, 30)) < 0) {
			fprintf(stderr, "shardfs: bench stream: no mount on %s (log: %s)\n", b->mnt[i],
				log);
			b->mount[i] = 0;
			return -1;
		}
	}
	return 0;
}

static void teardown(struct bench *b)
{
	bool mounted = false;

	for (int i = 0; i < 2; i++) {
		if (b->mount[i] > 0)
			local_mount_stop(b->mnt[i], b->mount[i]);
		mounted |= b->mnt[i] && local_mount_is_mounted(b->mnt[i]);
		g_free(b->mnt[i]);
	}
	local_cluster_stop(&b->cl);
	local_cluster_fini(&b->cl);
	if (b->o->keep)
		fprintf(stderr, "shardfs: bench stream: kept %s\n", b->root);
	else if (mounted)
		fprintf(stderr, "shardfs: bench stream: a mount in %s remains; not removed\n", b->root);
	else
		bench_remove_tree(b->root);
}

static const struct bench_col table_cols[] = {
	BENCH_COL("readers", 7, 0),
	BENCH_COL("written MiB/s", 13, 0),
	BENCH_COL("delivered MiB/s", 15, 0),
	BENCH_COL("pipes MiB/s", 11, 0),
	BENCH_COL("ratio", 6, 2),
	BENCH_COL("p50 ms", 10, 2),
	BENCH_COL("p99 ms", 10, 2),
	BENCH_COL("dropped MiB", 11, 1),
	BENCH_COL("home RSS MiB", 13, 1),
};

static void print_row(const struct result *r)
{
	struct bench_row row;

	bench_row_start(&row, table_cols, G_N_ELEMENTS(table_cols));
	bench_row_num(&row, r->readers);
	bench_row_num(&row, r->written_mib_s);
	bench_row_num(&row, r->delivered_mib_s);
	bench_row_num(&row, r->pipes_mib_s);
	bench_row_num(&row, r->pipes_mib_s > 0 ? r->delivered_mib_s / r->pipes_mib_s : 0);
	bench_row_num(&row, r->p50_ms);
	bench_row_num(&row, r->p99_ms);
	bench_row_num(&row, r->dropped_mib);
	bench_row_num(&row, r->home_rss_mib);
	bench_row_end(&row);
}

static void print_table(const struct bench *b)
{
	printf("stream fan-out: 1 writer on mount A, readers on mounts A and B; 3 nodes 2+1\n");
	bench_table_head(table_cols, G_N_ELEMENTS(table_cols));
	for (guint i = 0; i < b->results->len; i++)
		print_row(&g_array_index(b->results, struct result, i));
	printf("(latency: %u KiB chunks written at %d MiB/s for %d s; full speed: 1 MiB chunks)\n",
	       STAMP_CHUNK >> 10, PACED_MIB_S, PACED_S);
	for (guint i = 0; i < b->results->len; i++) {
		const struct result *r = &g_array_index(b->results, struct result, i);

		if (r->readers != GOAL_READERS)
			continue;
		printf("goal: %u readers, delivered >= %d MiB/s: %.0f, %s\n", r->readers,
		       GOAL_DELIVERED_MIB_S, r->delivered_mib_s,
		       r->delivered_mib_s >= GOAL_DELIVERED_MIB_S ? "met" : "missed");
		printf("goal: %u readers, p99 < %.0f ms at %d MiB/s: %.2f ms, %s\n", r->readers,
		       GOAL_P99_MS, PACED_MIB_S, r->p99_ms, r->p99_ms < GOAL_P99_MS ? "met" : "missed");
	}
}

static void print_json(const struct bench *b)
{
	struct bench_json j;

	bench_json_init(&j, TRUE);
	bench_json_array(&j, "runs");
	for (guint i = 0; i < b->results->len; i++) {
		const struct result *r = &g_array_index(b->results, struct result, i);

		bench_json_object(&j, NULL);
		bench_json_int(&j, "readers", r->readers);
		bench_json_num(&j, "written_mib_s", r->written_mib_s, 1);
		bench_json_num(&j, "delivered_mib_s", r->delivered_mib_s, 1);
		bench_json_num(&j, "pipes_mib_s", r->pipes_mib_s, 1);
		bench_json_num(&j, "p50_ms", r->p50_ms, 3);
		bench_json_num(&j, "p99_ms", r->p99_ms, 3);
		bench_json_num(&j, "dropped_mib", r->dropped_mib, 1);
		bench_json_num(&j, "home_rss_mib", r->home_rss_mib, 1);
		bench_json_end(&j);
	}
	bench_json_print(&j);
}

static int run_all(struct bench *b, char **counts)
{
	for (char **c = counts; *c; c++) {
		struct result r = {.readers = (unsigned)g_ascii_strtoull(*c, NULL, 10)};
		g_autofree char *full = g_strdup_printf("full-%u", r.readers);
		g_autofree char *paced = g_strdup_printf("paced-%u", r.readers);

		if (!b->o->json)
			fprintf(stderr, "bench stream: %u readers...\n", r.readers);
		if (stream_run(b, &r, full, false) || stream_run(b, &r, paced, true)) {
			fprintf(stderr, "shardfs: bench stream: the run with %u readers failed\n",
				r.readers);
			return -1;
		}
		r.pipes_mib_s = pipes_run(r.readers, b->o->seconds);
		g_array_append_val(b->results, r);
	}
	return 0;
}

static bool counts_valid(char **counts)
{
	for (char **c = counts; *c; c++) {
		guint64 n;

		if (!g_ascii_string_to_unsigned(*c, 10, 1, MAX_READERS, &n, NULL))
			return false;
	}
	return *counts != NULL;
}

int cmd_bench_stream(int argc, char **argv)
{
	struct opts o = {.seconds = 5};
	GOptionEntry entries[] = {
		{"seconds", 0, 0, G_OPTION_ARG_INT, &o.seconds, "length of each full-speed run (default 5)", "S"},
		{"readers", 0, 0, G_OPTION_ARG_STRING, &o.readers, "reader counts (default 1,16,64)", "N,N,..."},
		{"dir", 0, 0, G_OPTION_ARG_FILENAME, &o.dir, "where to make the bench directory (default .)", "DIR"},
		{"json", 0, 0, G_OPTION_ARG_NONE, &o.json, "print the figures as JSON", NULL},
		{"keep", 0, 0, G_OPTION_ARG_NONE, &o.keep, "keep the bench directory", NULL},
		G_OPTION_ENTRY_NULL,
	};

	if (!tools_parse(argc, argv, entries, "- stream fan-out through two mounts vs local pipes"))
		return SHARDFS_EXIT_USAGE;
	char **counts = g_strsplit(o.readers ? o.readers : "1,16,64", ",", -1);
	if (argc != 1 || o.seconds < 1 || o.seconds > 60 || !counts_valid(counts)) {
		fprintf(stderr, "usage: shardfs bench stream [--seconds 1-60] [--readers N,N,...] "
				"(1-%d readers)\n", MAX_READERS);
		g_strfreev(counts);
		return SHARDFS_EXIT_USAGE;
	}
	g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
	struct bench b = {.o = &o, .self = self,
			  .results = g_array_new(FALSE, TRUE, sizeof(struct result))};
	g_autofree char *tmpl = g_build_filename(o.dir ? o.dir : ".", "shardfs-bench-stream-XXXXXX", NULL);
	b.root = g_mkdtemp(tmpl) ? g_canonicalize_filename(tmpl, NULL) : NULL;
	int rc = 1;
	if (!self)
		fprintf(stderr, "shardfs: bench stream: cannot find this program\n");
	else if (!b.root)
		fprintf(stderr, "shardfs: bench stream: cannot make a directory in %s\n", o.dir ? o.dir : ".");
	else if (setup(&b) == 0 && run_all(&b, counts) == 0)
		rc = 0;
	if (b.root)
		teardown(&b);
	if (rc == 0)
		o.json ? print_json(&b) : print_table(&b);
	g_array_free(b.results, TRUE);
	g_strfreev(counts);
	g_free(b.root);
	return rc;
}
