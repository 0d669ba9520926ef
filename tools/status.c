/*
 * status.c - `shardfs status [CLUSTER.conf]`: one row per node, asked over
 * QUIC with the cluster file's client identity, then the data's health
 * from the metadata. Exit status 1 when any node is unreachable or reports
 * a failed store; 3 (SHARDFS_EXIT_DEGRADED) when every node is up but
 * parts have shards missing; 0 only when healthy.
 */
#define G_LOG_DOMAIN "shardfs"

#include "common/error.h"
#include "net/net.h"
#include "net/net_proto.h"
#include "shardfs.h"
#include "store/meta/meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_TIMEOUT_MS 3000
#define STATUS_MAX 4096

/* Prints the node's row; returns TRUE if it is up and healthy. */
static gboolean show_node(struct net_pool *pool, const struct net_node_conf *n)
{
	char *text = g_malloc0(STATUS_MAX);
	struct net_call ping = {.req = {.op = NET_OP_PING}, .timeout_ms = STATUS_TIMEOUT_MS};
	struct net_call st = {.req = {.op = NET_OP_STATUS}, .resp_buf = text, .resp_cap = STATUS_MAX,
			      .timeout_ms = STATUS_TIMEOUT_MS};
	char addr[300];
	int rc = net_pool_call(pool, n->id, &ping);
	gint64 t0 = g_get_monotonic_time();
	gboolean ok;

	if (rc == 0) /* the first call also dialled: time the second */
		rc = net_pool_call(pool, n->id, &ping);
	double rtt_ms = (double)(g_get_monotonic_time() - t0) / 1000.0;

	if (rc == 0)
		rc = net_pool_call(pool, n->id, &st);
	g_snprintf(addr, sizeof(addr), "%s:%u", n->host, n->port);
	if (rc != 0) {
		printf("%-5u %-22s %-8s %s\n", n->id, addr, "down", common_strerror(rc));
		g_free(text);
		return FALSE;
	}
	struct net_node_status ns;

	rc = net_node_status_decode(text, (size_t)st.resp.body_len, &ns);
	ok = rc == 0 && ns.store_error == 0;
	char *live_h = g_format_size(ns.live_bytes), *free_h = g_format_size(ns.free_bytes);

	printf("%-5u %-22s %-8s %8.2f %10" G_GUINT64_FORMAT " %10s %10s %s\n", n->id, addr,
	       ok ? "up" : "failed", rtt_ms, ns.shards, live_h, free_h, ns.version);
	if (rc)
		printf("      node %u: %s\n", n->id, common_strerror(rc));
	else if (ns.store_error)
		printf("      node %u: store read-only: %s\n", n->id, common_strerror(ns.store_error));
	g_free(live_h);
	g_free(free_h);
	g_free(text);
	return ok;
}

/* Prints the health line; true if no part has a shard missing. A
 * metadata that cannot be read (a node host without it) is said, and
 * does not count against the nodes. */
static bool show_health(const struct net_cluster *c)
{
	struct meta *m = NULL;
	uint64_t parts = 0, bytes = 0;
	int rc = c->meta_url ? meta_open(c->meta_url, &m) : -ENOENT;

	if (rc == 0)
		rc = meta_degraded_count(m, &parts, &bytes);
	meta_close(m);
	if (rc) {
		printf("health: unknown (metadata %s: %s)\n", c->meta_url ? c->meta_url : "not set",
		       common_strerror(rc));
		return true;
	}
	if (parts == 0) {
		printf("health: HEALTHY\n");
		return true;
	}
	printf("health: DEGRADED: %" G_GUINT64_FORMAT " parts (%.1f MiB) with shards missing;"
	       " run 'shardfs repair --once' with every node up\n", parts, (double)bytes / (1 << 20));
	return false;
}

int cmd_status(int argc, char **argv)
{
	char *config = NULL;
	GOptionEntry entries[] = {
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &config, "cluster file (default $SHARDFS_CONF)", "FILE"},
		{NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	struct net_cluster *c = NULL;
	struct net_tls *tls = NULL;
	struct net_pool *pool = NULL;
	struct net_pool_options po;
	GError *err = NULL;
	int rc = SHARDFS_EXIT_FAIL, up = 0;

	if (!tools_parse(argc, argv, entries, "[CLUSTER.conf] - the state of every node"))
		return SHARDFS_EXIT_USAGE;
	if (!config && argc > 1)
		config = g_strdup(argv[1]);
	if (!config)
		config = g_strdup(g_getenv("SHARDFS_CONF"));
	if (!config) {
		fprintf(stderr, "shardfs status: name the cluster file (or set SHARDFS_CONF)\n");
		return SHARDFS_EXIT_USAGE;
	}
	if (net_cluster_load(config, &c, &err) < 0 || net_tls_new(c->ca, c->cert, c->key, &tls, &err) < 0) {
		fprintf(stderr, "shardfs: %s\n", err->message);
		g_error_free(err);
		goto out;
	}
	net_pool_options_default(&po);
	net_pool_new(c, tls, &po, &pool);
	printf("%-5s %-22s %-8s %8s %10s %10s %10s %s\n", "NODE", "ADDRESS", "STATE", "RTT(ms)",
	       "SHARDS", "STORED", "FREE", "VERSION");
	for (guint i = 0; i < c->nodes->len; i++)
		up += show_node(pool, &g_array_index(c->nodes, struct net_node_conf, i));
	printf("%d of %u nodes up\n", up, c->nodes->len);
	bool healthy = show_health(c);
	rc = up != (int)c->nodes->len ? SHARDFS_EXIT_FAIL : healthy ? 0 : SHARDFS_EXIT_DEGRADED;
out:
	net_pool_free(pool);
	net_tls_free(tls);
	net_cluster_free(c);
	g_free(config);
	return rc;
}
