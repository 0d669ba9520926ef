/*
 * bench_repair.c - `shardfs bench repair [--size MIB] [--json]`: a node of
 * a throwaway 3-node 2+1 cluster holding about SIZE MiB of shards is
 * wiped (its data directory emptied, so it comes back with a new
 * identity) and rebuilt, side by side with the transport's put rate and
 * a client's writes measured in the same run.
 *
 *   1. `shardfs bench net` gives one QUIC connection's put rate.
 *   2. 2 x SIZE MiB of file data are written (each node holds about a
 *      third of the 3 x SIZE MiB of shards).
 *   3. The node with the most is wiped and `shardfs repair --once`
 *      (unbounded) rebuilds it: MiB/s of its shard bytes, and CPU seconds
 *      per GiB of the repair process and the three nodes together.
 *   4. A client `shardfs put` of W MiB alone, then the same node wiped
 *      again and `shardfs repair --daemon` at its default rate bound
 *      rebuilding it while the client puts W MiB again: the client's rate
 *      with repair against without.
 *
 * Goals: rebuild >= 0.5 of the transport's put rate; client writes during
 * the rebuild >= 0.7 of their rate without it.
 */
#define G_LOG_DOMAIN "shardfs"

#include "bench.h"
#include "kit.h"
#include "store/store.h"
#include "tools/cli_args.h"
#include "tools/local_cluster.h"

#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define BLOCK (1u << 20)
#define NODES 3u
#define GOAL_REBUILD_RATIO 0.5
#define GOAL_CLIENT_RATIO 0.7

struct figures {
	double net_put;		      /* MiB/s */
	double held_mib;	      /* the wiped node's shard bytes */
	unsigned node;		      /* which */
	double rebuild_mibs, rebuild_cpu_per_gib, rebuilt_mib;
	double client_mibs, client_during_mibs;
	int client_mib;
};

struct bench {
	const char *self;
	int size_mib;
	struct local_cluster cl;
	uint8_t *block;
};

static int measure_transport(struct bench *b, struct figures *f)
{
	double get;

	return bench_measure_net(b->self, MIN(b->size_mib, 1024), &f->net_put, &get);
}

/* `shardfs put -` of mib MiB of fresh random data as path; MiB/s or -1. */
static double put_mib(struct bench *b, const char *path, int mib)
{
	char *args[] = {(char *)b->self, "put", "-", (char *)path, NULL};
	int fd = -1;
	gint64 t0 = g_get_monotonic_time();
	pid_t pid = bench_spawn_piped(b->self, b->cl.conf, args, &fd);
	int rc = pid < 0 ? -1 : 0;

	for (int i = 0; rc == 0 && i < mib; i++) {
		for (size_t w = 0; w < BLOCK / 4; w++)
			((uint32_t *)b->block)[w] = g_random_int();
		rc = bench_write_all(fd, b->block, BLOCK);
	}
	if (fd >= 0)
		close(fd);
	if (pid < 0 || bench_reap(pid, NULL) || rc)
		return -1;
	return mib / ((double)(g_get_monotonic_time() - t0) / 1e6);
}

/* Each node's stored shard bytes, from `shardfs status --json`. */
static int stored_mib(struct bench *b, double mib[NODES])
{
	char *argv[] = {(char *)b->self, "status", "--json", "-c", b->cl.conf, NULL};
	g_autofree char *out = NULL;
	JsonParser *p = json_parser_new();
	int rc = -1;

	bench_run(argv, &out); /* exit 3 while degraded: the text is what counts */
	if (out && json_parser_load_from_data(p, out, -1, NULL)) {
		JsonArray *nodes = json_object_get_array_member(
			json_node_get_object(json_parser_get_root(p)), "nodes");

		for (guint i = 0; nodes && i < NODES && i < json_array_get_length(nodes); i++) {
			JsonObject *n = json_array_get_object_element(nodes, i);

			mib[i] = json_object_has_member(n, "stored_bytes")
					 ? (double)json_object_get_int_member(n, "stored_bytes") / BLOCK
					 : 0;
		}
		rc = nodes ? 0 : -1;
	}
	g_object_unref(p);
	return rc;
}

/* Node id stops, loses its data directory and comes back empty. */
static int wipe_node(struct bench *b, unsigned id)
{
	g_autofree char *dir = g_strdup_printf("%s/node-%u", b->cl.dir, id);

	local_cluster_node_stop(&b->cl, id, SIGTERM);
	bench_remove_tree(dir);
	if (local_cluster_node_start(&b->cl, id))
		return -1;
	return local_cluster_wait_up(&b->cl, 20);
}

static double nodes_cpu_s(const struct bench *b)
{
	double s = 0;

	for (unsigned i = 0; i < NODES; i++)
		s += bench_proc_cpu_s(b->cl.pids[i]);
	return s;
}

static int rebuild_once(struct bench *b, struct figures *f)
{
	char *args[] = {(char *)b->self, "repair", "--once", "-c", b->cl.conf, NULL};
	double cpu0 = nodes_cpu_s(b);
	gint64 t0 = g_get_monotonic_time();
	struct rusage ru;
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDOUT_FILENO); /* its summary line: ours is the report */
		execv(b->self, args);
		_exit(127);
	}
	if (pid < 0 || bench_reap(pid, &ru))
		return -1;
	double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
	double after[NODES] = {0};

	if (stored_mib(b, after))
		return -1;
	f->rebuilt_mib = after[f->node - 1];
	f->rebuild_mibs = f->rebuilt_mib / secs;
	f->rebuild_cpu_per_gib = (bench_rusage_cpu_s(&ru) + nodes_cpu_s(b) - cpu0) /
				 (f->rebuilt_mib / 1024.0);
	return f->rebuilt_mib >= 0.95 * f->held_mib ? 0 : -1;
}

/* The client's put while a repair daemon rebuilds the wiped node. */
static int client_during_repair(struct bench *b, struct figures *f)
{
	g_autofree char *log = g_strdup_printf("%s/repair.log", b->cl.dir);
	char *args[] = {(char *)b->self, "repair", "--daemon", "-c", b->cl.conf, NULL};

	if (wipe_node(b, f->node))
		return -1;
	pid_t daemon = local_proc_start(args, log, NULL, LOCAL_PROC_TIED);

	if (daemon < 0)
		return -1;
	g_usleep(G_USEC_PER_SEC); /* its first round has begun */
	f->client_during_mibs = put_mib(b, "/during-repair", f->client_mib);
	kill(daemon, SIGTERM);
	local_proc_wait_gone(daemon, 60, NULL);
	return f->client_during_mibs > 0 ? 0 : -1;
}

static int run(struct bench *b, struct figures *f)
{
	double held[NODES] = {0};
	int rc = put_mib(b, "/data", 2 * b->size_mib) > 0 ? 0 : -1;

	if (rc == 0)
		rc = stored_mib(b, held);
	f->node = 1;
	for (unsigned i = 1; rc == 0 && i < NODES; i++)
		if (held[i] > held[f->node - 1])
			f->node = i + 1;
	f->held_mib = held[f->node - 1];
	if (rc == 0)
		rc = wipe_node(b, f->node);
	if (rc == 0)
		rc = rebuild_once(b, f);
	if (rc == 0)
		f->client_mibs = put_mib(b, "/alone", f->client_mib);
	if (rc == 0 && f->client_mibs <= 0)
		rc = -1;
	return rc ? rc : client_during_repair(b, f);
}

static const char *met(double v, double goal)
{
	return v >= goal ? "met" : "missed";
}

static void print_text(const struct bench *b, const struct figures *f)
{
	double r = f->rebuild_mibs / f->net_put, c = f->client_during_mibs / f->client_mibs;

	printf("shardfs bench repair: 3 nodes 2+1 on 127.0.0.1, %d MiB of files, node %u wiped"
	       " holding %.0f MiB of shards\n\n", 2 * b->size_mib, f->node, f->held_mib);
	printf("transport put (bench net, one connection)   %8.1f MiB/s\n", f->net_put);
	printf("rebuild (repair --once, unbounded)          %8.1f MiB/s   %.2f CPU-s/GiB"
	       " (repair + nodes), %.0f MiB rebuilt\n", f->rebuild_mibs, f->rebuild_cpu_per_gib,
	       f->rebuilt_mib);
	printf("client put of %d MiB alone                  %8.1f MiB/s\n", f->client_mib,
	       f->client_mibs);
	printf("client put of %d MiB during repair --daemon %8.1f MiB/s (its rate bound %d MiB/s)\n\n",
	       f->client_mib, f->client_during_mibs, STORE_REPAIR_RATE_MIB);
	printf("goals                                         figure   goal\n");
	printf("rebuild / transport put                      %7.2f  >= %.1f  %s\n", r,
	       GOAL_REBUILD_RATIO, met(r, GOAL_REBUILD_RATIO));
	printf("client writes during repair / alone          %7.2f  >= %.1f  %s\n", c,
	       GOAL_CLIENT_RATIO, met(c, GOAL_CLIENT_RATIO));
}

static void print_json(const struct bench *b, const struct figures *f)
{
	struct bench_json j;
	double r = f->rebuild_mibs / f->net_put, c = f->client_during_mibs / f->client_mibs;

	bench_json_init(&j, FALSE);
	bench_json_str(&j, "bench", "repair");
	bench_json_int(&j, "size_mib", b->size_mib);
	bench_json_int(&j, "node", f->node);
	bench_json_num(&j, "node_held_mib", f->held_mib, 1);
	bench_json_num(&j, "rebuilt_mib", f->rebuilt_mib, 1);
	bench_json_num(&j, "net_put_mib_s", f->net_put, 1);
	bench_json_num(&j, "rebuild_mib_s", f->rebuild_mibs, 1);
	bench_json_num(&j, "rebuild_cpu_s_per_gib", f->rebuild_cpu_per_gib, 2);
	bench_json_num(&j, "rebuild_ratio", r, 3);
	bench_json_bool(&j, "rebuild_goal_met", r >= GOAL_REBUILD_RATIO);
	bench_json_int(&j, "client_mib", f->client_mib);
	bench_json_num(&j, "client_write_mib_s", f->client_mibs, 1);
	bench_json_num(&j, "client_write_during_repair_mib_s", f->client_during_mibs, 1);
	bench_json_num(&j, "client_ratio", c, 3);
	bench_json_bool(&j, "client_goal_met", c >= GOAL_CLIENT_RATIO);
	bench_json_print(&j);
}

int cmd_bench_repair(int argc, char **argv)
{
	struct bench b = {.size_mib = 512};
	struct figures f = {0};
	gboolean json = FALSE;
	GOptionEntry entries[] = {
		{"size", 's', 0, G_OPTION_ARG_INT, &b.size_mib,
		 "MiB of shards on the node that is wiped (default 512)", "MIB"},
		{"json", 0, 0, G_OPTION_ARG_NONE, &json, "print one JSON object", NULL},
		G_OPTION_ENTRY_NULL,
	};
	g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
	g_autofree char *dir = g_dir_make_tmp("shardfs-bench-repair-XXXXXX", NULL);
	int rc;

	if (!tools_parse(argc, argv, entries, "- a wiped node rebuilt, vs the transport and clients"))
		return SHARDFS_EXIT_USAGE;
	if (b.size_mib < 16 || b.size_mib > 65536) {
		fprintf(stderr, "shardfs: --size must be 16..65536\n");
		return SHARDFS_EXIT_USAGE;
	}
	b.self = self;
	f.client_mib = MIN(b.size_mib, 256);
	b.block = g_malloc(BLOCK);
	rc = dir ? measure_transport(&b, &f) : -1;
	local_cluster_init(&b.cl, self, dir ? dir : ".", NODES, LOCAL_PROC_TIED);
	if (rc == 0)
		rc = local_cluster_create(&b.cl, "2+1");
	if (rc == 0)
		rc = local_cluster_start(&b.cl, 10);
	if (rc == 0)
		rc = run(&b, &f);
	local_cluster_stop(&b.cl);
	local_cluster_fini(&b.cl);
	if (dir)
		bench_remove_tree(dir);
	g_free(b.block);
	if (rc) {
		fprintf(stderr, "shardfs: bench repair failed\n");
		return SHARDFS_EXIT_FAIL;
	}
	if (json)
		print_json(&b, &f);
	else
		print_text(&b, &f);
	return 0;
}
