/*
 * bench_net.c - `shardfs bench net`: shard put and get over QUIC against
 * one real node process on loopback, next to raw loopback TCP.
 *
 * The bench makes a throwaway cluster (`shardfs init` code), starts
 * `shardfs node` (this same binary) on a free port, and then, over one
 * pooled connection, puts and gets SIZE MiB of 1 MiB shards with 1 and
 * with 16 requests in flight. CPU seconds per GiB are counted for the
 * client (this process) and the node (from /proc). In the same run a TCP
 * connection on 127.0.0.1 carries the same volume with plain send/recv:
 * the machine's own limit for moving bytes between two processes, printed
 * as the ratio put/tcp and get/tcp.
 */
#define G_LOG_DOMAIN "shardfs"

#include "bench.h"
#include "kit.h"
#include "net/net.h"
#include "tools/cli_args.h"
#include "tools/local_cluster.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define SHARD (1u << 20)

struct phase {
	double mibs, client_cpu_per_gib, node_cpu_per_gib;
};

struct bench {
	int size_mib, depth;
	struct local_cluster cl; /* node 1 of a 1+1 cluster file */
	struct net_cluster *c;
	struct net_tls *tls;
	struct net_pool *pool;
	uint8_t *data;
};

/* Calls in flight, each in a slot of its own until it completes: a
 * completion gives its slot back on the queue of free ones, and the sender
 * blocks on that queue while every slot is in use. Slots are stored + 1,
 * since a queue holds no NULL. */
struct window {
	struct net_call *calls;
	GAsyncQueue *free_slots;
	gint failed;
};

static void call_done(void *arg, struct net_call *call)
{
	struct window *w = arg;

	if (call->status != 0 && g_atomic_int_add(&w->failed, 1) == 0)
		g_warning("request failed: %s", common_strerror(call->status));
	g_async_queue_push(w->free_slots, GINT_TO_POINTER((int)(call - w->calls) + 1));
}

static int take_slot(struct window *w)
{
	return GPOINTER_TO_INT(g_async_queue_pop(w->free_slots)) - 1;
}

/* Moves size_mib shards with `depth` calls in flight; put or get. */
static int run_phase(struct bench *b, bool put, int depth, struct phase *out)
{
	int n = b->size_mib;
	uint8_t *bufs = put ? NULL : g_malloc((size_t)depth * SHARD);
	struct window w = {.calls = g_new0(struct net_call, depth), .free_slots = g_async_queue_new()};
	double c0 = bench_cpu_self_s(), n0 = bench_proc_cpu_s(b->cl.pids[0]);
	gint64 t0 = g_get_monotonic_time();

	for (int slot = 0; slot < depth; slot++)
		g_async_queue_push(w.free_slots, GINT_TO_POINTER(slot + 1));
	for (int i = 0; i < n; i++) {
		int slot = take_slot(&w);
		struct net_call *call = &w.calls[slot];
		struct net_key k = {.part = (uint32_t)i};

		memcpy(k.object_id, "bench-net-object", 16);
		*call = (struct net_call){.req = {.op = put ? NET_OP_PUT : NET_OP_GET, .key = k}};
		if (put) {
			call->req.body_len = SHARD;
			call->body = b->data;
		} else {
			call->req.length = SHARD;
			call->resp_buf = bufs + (size_t)slot * SHARD;
			call->resp_cap = SHARD;
		}
		net_pool_call_async(b->pool, 1, call, call_done, &w);
	}
	for (int slot = 0; slot < depth; slot++) /* every call is in */
		take_slot(&w);
	double secs = (double)(g_get_monotonic_time() - t0) / 1e6, gib = n / 1024.0;

	out->mibs = n / secs;
	out->client_cpu_per_gib = (bench_cpu_self_s() - c0) / gib;
	out->node_cpu_per_gib = (bench_proc_cpu_s(b->cl.pids[0]) - n0) / gib;
	g_free(bufs);
	g_free(w.calls);
	g_async_queue_unref(w.free_slots);
	return g_atomic_int_get(&w.failed) ? -EIO : 0;
}

static gpointer tcp_sink(gpointer arg)
{
	int lfd = GPOINTER_TO_INT(arg), fd = accept(lfd, NULL, NULL);
	char *buf = g_malloc(SHARD);

	while (fd >= 0 && recv(fd, buf, SHARD, 0) > 0)
		;
	if (fd >= 0)
		close(fd);
	g_free(buf);
	return NULL;
}

/* Raw loopback TCP: one connection, SIZE MiB with 1 MiB send() calls. */
static double tcp_mibs(struct bench *b)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), fd = socket(AF_INET, SOCK_STREAM, 0);
	GThread *th;
	gint64 t0;

	bind(lfd, (struct sockaddr *)&a, sizeof(a));
	listen(lfd, 1);
	getsockname(lfd, (struct sockaddr *)&a, &len);
	th = g_thread_new("tcp-sink", tcp_sink, GINT_TO_POINTER(lfd));
	if (connect(fd, (struct sockaddr *)&a, len) < 0)
		return -1;
	t0 = g_get_monotonic_time();
	for (int i = 0; i < b->size_mib; i++)
		for (size_t off = 0; off < SHARD;) {
			ssize_t n = send(fd, b->data + off, SHARD - off, 0);

			if (n <= 0)
				break;
			off += (size_t)n;
		}
	shutdown(fd, SHUT_WR);
	g_thread_join(th);
	double secs = (double)(g_get_monotonic_time() - t0) / 1e6;

	close(fd);
	close(lfd);
	return b->size_mib / secs;
}

/* One node, and a pool connected to it. The cluster file names two
 * nodes with 1+1, the smallest code init takes; only node 1 runs (the
 * pings below wait for it), since the bench talks to one node. */
static int start_cluster(struct bench *b)
{
	GError *err = NULL;
	struct net_pool_options po;

	if (local_cluster_create(&b->cl, "1+1") || local_cluster_node_start(&b->cl, 1))
		return -EIO;
	if (net_cluster_load(b->cl.conf, &b->c, &err) < 0 ||
	    net_tls_new(b->c->ca, b->c->cert, b->c->key, &b->tls, &err) < 0) {
		fprintf(stderr, "shardfs: cannot make the bench cluster: %s\n", err->message);
		g_clear_error(&err);
		return -EIO;
	}
	net_pool_options_default(&po);
	net_pool_new(b->c, b->tls, &po, &b->pool);
	for (int i = 0; i < 100; i++) {
		struct net_call ping = {.req = {.op = NET_OP_PING}, .timeout_ms = 500};

		if (net_pool_call(b->pool, 1, &ping) == 0)
			return 0;
		g_usleep(50000);
	}
	fprintf(stderr, "shardfs: the bench node did not come up\n");
	return -EIO;
}

static const struct bench_col table_cols[] = {
	BENCH_COL("", -28, 0),
	BENCH_COL("MiB/s", 10, 1),
	BENCH_COL("vs tcp", 8, 2),
	BENCH_COL("client CPU s/GiB", 14, 2),
	BENCH_COL("node CPU s/GiB", 14, 2),
};

static void print_table(const struct bench *b, const struct phase p[4], double tcp)
{
	char deep_put[32], deep_get[32];
	const char *names[4] = {"put, 1 in flight", "get, 1 in flight", deep_put, deep_get};
	struct bench_row row;

	g_snprintf(deep_put, sizeof(deep_put), "put, %d in flight", b->depth);
	g_snprintf(deep_get, sizeof(deep_get), "get, %d in flight", b->depth);
	printf("shardfs bench net: %d MiB of 1 MiB shards, one node on 127.0.0.1, one QUIC connection\n\n",
	       b->size_mib);
	bench_table_head(table_cols, G_N_ELEMENTS(table_cols));
	bench_row_start(&row, table_cols, G_N_ELEMENTS(table_cols));
	bench_row_text(&row, "raw TCP on loopback");
	bench_row_num(&row, tcp);
	bench_row_num(&row, 1);
	bench_row_end(&row);
	for (int i = 0; i < 4; i++) {
		bench_row_start(&row, table_cols, G_N_ELEMENTS(table_cols));
		bench_row_text(&row, names[i]);
		bench_row_num(&row, p[i].mibs);
		bench_row_num(&row, p[i].mibs / tcp);
		bench_row_num(&row, p[i].client_cpu_per_gib);
		bench_row_num(&row, p[i].node_cpu_per_gib);
		bench_row_end(&row);
	}
	printf("\nputs are acknowledged only once durable on the node's disk\n");
}

/* The head of both JSON objects. */
static void json_start(struct bench_json *j, const struct bench *b)
{
	bench_json_init(j, FALSE);
	bench_json_str(j, "bench", "net");
	bench_json_int(j, "size_mib", b->size_mib);
	bench_json_int(j, "depth", b->depth);
	bench_json_int(j, "shard_kib", 1024);
}

static void json_cpu(struct bench_json *j, const char *name, const struct phase *p)
{
	g_autofree char *client = g_strdup_printf("%s_client_cpu_s_per_gib", name);
	g_autofree char *node = g_strdup_printf("%s_node_cpu_s_per_gib", name);

	bench_json_num(j, client, p->client_cpu_per_gib, 2);
	bench_json_num(j, node, p->node_cpu_per_gib, 2);
}

static void print_json(const struct bench *b, const struct phase p[4], double tcp)
{
	struct bench_json j;

	json_start(&j, b);
	bench_json_num(&j, "tcp_mib_s", tcp, 1);
	bench_json_num(&j, "put1_mib_s", p[0].mibs, 1);
	bench_json_num(&j, "get1_mib_s", p[1].mibs, 1);
	bench_json_num(&j, "put_mib_s", p[2].mibs, 1);
	bench_json_num(&j, "get_mib_s", p[3].mibs, 1);
	bench_json_num(&j, "put_ratio", p[2].mibs / tcp, 3);
	bench_json_num(&j, "get_ratio", p[3].mibs / tcp, 3);
	json_cpu(&j, "put", &p[2]);
	json_cpu(&j, "get", &p[3]);
	bench_json_print(&j);
}

static void print_put_only(const struct bench *b, const struct phase *p, gboolean json)
{
	struct bench_json j;

	if (!json) {
		printf("put, %d in flight: %.1f MiB/s, client CPU %.2f s/GiB, node CPU %.2f s/GiB\n",
		       b->depth, p->mibs, p->client_cpu_per_gib, p->node_cpu_per_gib);
		return;
	}
	json_start(&j, b);
	bench_json_num(&j, "put_mib_s", p->mibs, 1);
	json_cpu(&j, "put", p);
	bench_json_print(&j);
}

int cmd_bench_net(int argc, char **argv)
{
	struct bench b = {.size_mib = 1024, .depth = 16};
	gboolean json = FALSE, put_only = FALSE;
	GOptionEntry entries[] = {
		{"size", 's', 0, G_OPTION_ARG_INT, &b.size_mib, "MiB moved by each phase (default 1024)", "MIB"},
		{"depth", 0, 0, G_OPTION_ARG_INT, &b.depth, "requests in flight in the deep phases (default 16)", "N"},
		{"json", 0, 0, G_OPTION_ARG_NONE, &json, "print one JSON object", NULL},
		{"put-only", 0, 0, G_OPTION_ARG_NONE, &put_only, "only the deep put phase (to profile the node's write path)", NULL},
		{NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	struct phase p[4] = {0};
	char *self = g_file_read_link("/proc/self/exe", NULL);
	int rc;

	if (!tools_parse(argc, argv, entries, "- QUIC shard put/get vs loopback TCP"))
		return SHARDFS_EXIT_USAGE;
	if (b.size_mib < 16 || b.depth < 1 || b.depth > 256) {
		fprintf(stderr, "shardfs: --size must be at least 16, --depth 1..256\n");
		return SHARDFS_EXIT_USAGE;
	}
	g_autofree char *dir = g_dir_make_tmp("shardfs-bench-net-XXXXXX", NULL);

	local_cluster_init(&b.cl, self, dir, 2, LOCAL_PROC_TIED);
	b.data = g_malloc(SHARD);
	for (size_t i = 0; i < SHARD / 4; i++)
		((uint32_t *)b.data)[i] = g_random_int();
	rc = dir ? start_cluster(&b) : -EIO;
	for (int i = put_only ? 2 : 0; rc == 0 && i < (put_only ? 3 : 4); i++)
		rc = run_phase(&b, i % 2 == 0, i < 2 ? 1 : b.depth, &p[i]);
	double tcp = rc == 0 && !put_only ? tcp_mibs(&b) : 0;

	if (rc == 0 && put_only)
		print_put_only(&b, &p[2], json);
	else if (rc == 0 && json)
		print_json(&b, p, tcp);
	else if (rc == 0)
		print_table(&b, p, tcp);
	else
		fprintf(stderr, "shardfs: bench net failed: %s\n", common_strerror(rc));
	net_pool_free(b.pool);
	local_cluster_stop(&b.cl);
	local_cluster_fini(&b.cl);
	net_tls_free(b.tls);
	net_cluster_free(b.c);
	if (dir)
		bench_remove_tree(dir);
	g_free(b.data);
	g_free(self);
	return rc < 0 ? SHARDFS_EXIT_FAIL : 0;
}
