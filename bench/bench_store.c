/*
 * bench_store.c - `shardfs bench store`: put and get of one large object
 * through the object layer, on throwaway local clusters of 3 nodes (2+1)
 * and 6 nodes (4+2), next to the transport's own ceiling.
 *
 * Each object is written by a `shardfs put -` child fed through a pipe and
 * read back by a `shardfs get` child (into /dev/null, then samples of it
 * compared with what was sent), so the client figures (MiB/s, peak RSS
 * from the child's rusage) are those of the command a user runs. This process
 * keeps its own memory small (a child's peak RSS starts from its parent's
 * at exec). In the same run `shardfs bench
 * net` measures one QUIC connection's put and get; the ratios printed are
 * get / net get and put / (net put / ((k+m)/k)), the parity bytes being
 * work the object layer cannot avoid.
 */
#define G_LOG_DOMAIN "shardfs"

#include "bench.h"
#include "kit.h"
#include "tools/cli_args.h"
#include "tools/local_cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define BLOCK (1u << 20)
#define POOL_BLOCKS 16u

struct config {
	unsigned nodes, k, m;
	double put_mibs, get_mibs, put_rss_mib, get_rss_mib;
};

struct bench {
	const char *self;
	int size_mib;
	uint8_t *pool; /* POOL_BLOCKS random blocks */
	double net_put, net_get;
};

/* Block i of the object: a pool block with its number stamped in, so that
 * no two blocks are equal and a misplaced block is caught. */
static void make_block(const struct bench *b, uint64_t i, uint8_t *out)
{
	memcpy(out, b->pool + (i * 7 % POOL_BLOCKS) * BLOCK, BLOCK);
	memcpy(out, &i, sizeof(i));
}

/* Waits for pid; its peak RSS in MiB, or -1 if it failed. */
static double reap(pid_t pid)
{
	struct rusage ru;

	return bench_reap(pid, &ru) ? -1 : ru.ru_maxrss / 1024.0;
}

static int put_object(struct bench *b, const char *conf, struct config *c)
{
	char *args[] = {(char *)b->self, "put", "-", "/bench-object", NULL};
	int fd = -1;
	pid_t pid = bench_spawn_piped(b->self, conf, args, &fd);
	uint8_t *block = g_malloc(BLOCK);
	gint64 t0 = g_get_monotonic_time();
	int rc = pid < 0 ? -1 : 0;

	for (uint64_t i = 0; rc == 0 && i < (uint64_t)b->size_mib; i++) {
		make_block(b, i, block);
		rc = bench_write_all(fd, block, BLOCK);
	}
	close(fd);
	c->put_rss_mib = pid > 0 ? reap(pid) : -1;
	c->put_mibs = b->size_mib / ((double)(g_get_monotonic_time() - t0) / 1e6);
	g_free(block);
	return rc || c->put_rss_mib < 0 ? -1 : 0;
}

/* A few bytes of each block, read back with `shardfs cat -o -n`. */
static int check_samples(struct bench *b, const char *conf)
{
	uint8_t *want = g_malloc(BLOCK);
	int rc = 0;

	for (uint64_t i = 0; rc == 0 && i < (uint64_t)b->size_mib; i += 1 + (uint64_t)b->size_mib / 8) {
		g_autofree char *off = g_strdup_printf("%" G_GUINT64_FORMAT, i * BLOCK + 4000);
		char *argv[] = {(char *)b->self, "cat", "-c", (char *)conf, "-o", off, "-n", "4096",
				"/bench-object", NULL};
		g_autofree char *got = NULL;

		make_block(b, i, want);
		rc = bench_run(argv, &got) || memcmp(got, want + 4000, 4096) ? -1 : 0;
		if (rc)
			fprintf(stderr, "shardfs: bench store: block %" G_GUINT64_FORMAT " read back wrong\n", i);
	}
	g_free(want);
	return rc;
}

/* The get writes to /dev/null, so that only the client's own work is
 * timed; samples are compared afterwards. */
static int get_object(struct bench *b, const char *conf, struct config *c)
{
	char *args[] = {(char *)b->self, "get", "-c", (char *)conf, "/bench-object", "/dev/null", NULL};
	gint64 t0 = g_get_monotonic_time();
	pid_t pid = fork();

	if (pid == 0) {
		execv(b->self, args);
		_exit(127);
	}
	c->get_rss_mib = pid > 0 ? reap(pid) : -1;
	c->get_mibs = b->size_mib / ((double)(g_get_monotonic_time() - t0) / 1e6);
	return c->get_rss_mib < 0 ? -1 : check_samples(b, conf);
}

static int run_config(struct bench *b, struct config *c)
{
	g_autofree char *dir = g_dir_make_tmp("shardfs-bench-store-XXXXXX", NULL);
	g_autofree char *ec = g_strdup_printf("%u+%u", c->k, c->m);
	struct local_cluster cl;
	int rc = dir ? 0 : -1;

	local_cluster_init(&cl, b->self, dir ? dir : ".", c->nodes, LOCAL_PROC_TIED);
	if (rc == 0)
		rc = local_cluster_create(&cl, ec);
	if (rc == 0)
		rc = local_cluster_start(&cl, 10);
	if (rc == 0)
		rc = put_object(b, cl.conf, c);
	if (rc == 0)
		rc = get_object(b, cl.conf, c);
	local_cluster_stop(&cl);
	local_cluster_fini(&cl);
	if (dir)
		bench_remove_tree(dir);
	return rc;
}

static int measure_transport(struct bench *b)
{
	return bench_measure_net(b->self, MIN(b->size_mib, 1024), &b->net_put, &b->net_get);
}

static double put_ratio(const struct bench *b, const struct config *c)
{
	return c->put_mibs / (b->net_put * c->k / (c->k + c->m));
}

static double rss_bound(const struct config *c)
{
	return 64 + 4 * 8.0 * (c->k + c->m) / c->k; /* max_inflight 4, 8 MiB parts */
}

static void print_json(const struct bench *b, const struct config *c, int n)
{
	struct bench_json j;

	bench_json_init(&j, FALSE);
	bench_json_str(&j, "bench", "store");
	bench_json_int(&j, "size_mib", b->size_mib);
	bench_json_num(&j, "net_put_mib_s", b->net_put, 1);
	bench_json_num(&j, "net_get_mib_s", b->net_get, 1);
	bench_json_num(&j, "put_mib_s", c[0].put_mibs, 1);
	bench_json_num(&j, "get_mib_s", c[0].get_mibs, 1);
	bench_json_num(&j, "peak_rss_mib", MAX(c[0].put_rss_mib, c[0].get_rss_mib), 1);
	bench_json_array(&j, "configs");
	for (int i = 0; i < n; i++) {
		g_autofree char *ec = g_strdup_printf("%u+%u", c[i].k, c[i].m);

		bench_json_object(&j, NULL);
		bench_json_int(&j, "nodes", c[i].nodes);
		bench_json_str(&j, "ec", ec);
		bench_json_num(&j, "put_mib_s", c[i].put_mibs, 1);
		bench_json_num(&j, "get_mib_s", c[i].get_mibs, 1);
		bench_json_num(&j, "put_ratio", put_ratio(b, &c[i]), 3);
		bench_json_num(&j, "get_ratio", c[i].get_mibs / b->net_get, 3);
		bench_json_num(&j, "put_rss_mib", c[i].put_rss_mib, 1);
		bench_json_num(&j, "get_rss_mib", c[i].get_rss_mib, 1);
		bench_json_num(&j, "peak_rss_mib", MAX(c[i].put_rss_mib, c[i].get_rss_mib), 1);
		bench_json_num(&j, "rss_bound_mib", rss_bound(&c[i]), 0);
		bench_json_end(&j);
	}
	bench_json_print(&j);
}

static const struct bench_col table_cols[] = {
	BENCH_COL("cluster", -14, 0),
	BENCH_COL("put MiB/s", 9, 1),
	BENCH_COL("get MiB/s", 9, 1),
	BENCH_COL("put ratio", 10, 2),
	BENCH_COL("get ratio", 10, 2),
	BENCH_COL_UNIT("put RSS", 9, 0, "M"),
	BENCH_COL_UNIT("get RSS", 9, 0, "M"),
	BENCH_COL_UNIT("RSS bound", 9, 0, "M"),
};

static void print_table(const struct bench *b, const struct config *c, int n)
{
	printf("shardfs bench store: one %d MiB object, put then get, local clusters on 127.0.0.1\n\n",
	       b->size_mib);
	printf("transport (bench net, one connection): put %.1f MiB/s, get %.1f MiB/s\n\n",
	       b->net_put, b->net_get);
	bench_table_head(table_cols, G_N_ELEMENTS(table_cols));
	for (int i = 0; i < n; i++) {
		struct bench_row row;
		char name[32];

		g_snprintf(name, sizeof(name), "%u nodes %u+%u", c[i].nodes, c[i].k, c[i].m);
		bench_row_start(&row, table_cols, G_N_ELEMENTS(table_cols));
		bench_row_text(&row, name);
		bench_row_num(&row, c[i].put_mibs);
		bench_row_num(&row, c[i].get_mibs);
		bench_row_num(&row, put_ratio(b, &c[i]));
		bench_row_num(&row, c[i].get_mibs / b->net_get);
		bench_row_num(&row, c[i].put_rss_mib);
		bench_row_num(&row, c[i].get_rss_mib);
		bench_row_num(&row, rss_bound(&c[i]));
		bench_row_end(&row);
	}
	printf("\nput ratio = put / (net put x k/(k+m)); get ratio = get / net get; goals 0.80 each\n"
	       "RSS bound = 64 MiB + max_inflight x part size x (k+m)/k\n");
}

int cmd_bench_store(int argc, char **argv)
{
	struct bench b = {.size_mib = 2048};
	struct config c[2] = {{.nodes = 3, .k = 2, .m = 1}, {.nodes = 6, .k = 4, .m = 2}};
	gboolean json = FALSE, small = FALSE;
	GOptionEntry entries[] = {
		{"size", 's', 0, G_OPTION_ARG_INT, &b.size_mib, "MiB in the object (default 2048)", "MIB"},
		{"only-3", 0, 0, G_OPTION_ARG_NONE, &small, "only the 3-node cluster", NULL},
		{"json", 0, 0, G_OPTION_ARG_NONE, &json, "print one JSON object", NULL},
		G_OPTION_ENTRY_NULL,
	};
	g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
	int n = 2, rc;

	if (!tools_parse(argc, argv, entries, "- object put/get on local clusters vs the transport"))
		return SHARDFS_EXIT_USAGE;
	if (b.size_mib < 16) {
		fprintf(stderr, "shardfs: --size must be at least 16\n");
		return SHARDFS_EXIT_USAGE;
	}
	b.self = self;
	if (small)
		n = 1;
	rc = measure_transport(&b);
	b.pool = g_malloc(POOL_BLOCKS * BLOCK);
	for (size_t i = 0; i < POOL_BLOCKS * BLOCK / 4; i++)
		((uint32_t *)b.pool)[i] = g_random_int();
	for (int i = 0; rc == 0 && i < n; i++)
		rc = run_config(&b, &c[i]);
	g_free(b.pool);
	if (rc) {
		fprintf(stderr, "shardfs: bench store failed\n");
		return SHARDFS_EXIT_FAIL;
	}
	if (json)
		print_json(&b, c, n);
	else
		print_table(&b, c, n);
	return 0;
}
