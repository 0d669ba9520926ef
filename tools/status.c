/*
 * status.c - `shardfs status [CLUSTER] [--json]`: every node, asked over
 * QUIC with the cluster file's client identity, then the data's health
 * from the metadata; as a table, or as one JSON object (json-glib, whose
 * generator escapes what nodes and errors say). Exit status 1 when any
 * node is unreachable or reports a failed store; 3 (SHARDFS_EXIT_DEGRADED)
 * when every node is up but parts have shards missing; 0 only when
 * healthy. The same in both forms.
 */
#define G_LOG_DOMAIN "shardfs"

#include "common/error.h"
#include "net/net.h"
#include "net/net_proto.h"
#include "shardfs.h"
#include "store/meta/meta.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_TIMEOUT_MS 3000
#define STATUS_MAX 4096

/* What one node said, or why it said nothing. */
struct node_row {
	const struct net_node_conf *conf;
	const char *state; /* "up", "down" (no answer) or "failed" (store failed) */
	double rtt_ms;
	struct net_node_status ns; /* when answered */
	char *error;		   /* NULL when up */
};

struct health {
	const char *state; /* "healthy", "degraded" or "unknown" (metadata unread) */
	uint64_t parts, bytes;
	char *error;
};

static void ask_node(struct net_pool *pool, const struct net_node_conf *n, struct node_row *r)
{
	char *text = g_malloc0(STATUS_MAX);
	struct net_call ping = {.req = {.op = NET_OP_PING}, .timeout_ms = STATUS_TIMEOUT_MS};
	struct net_call st = {.req = {.op = NET_OP_STATUS}, .resp_buf = text, .resp_cap = STATUS_MAX,
			      .timeout_ms = STATUS_TIMEOUT_MS};
	int rc = net_pool_call(pool, n->id, &ping);
	gint64 t0 = g_get_monotonic_time();

	*r = (struct node_row){.conf = n, .state = "down"};
	if (rc == 0) /* the first call also dialled: time the second */
		rc = net_pool_call(pool, n->id, &ping);
	r->rtt_ms = (double)(g_get_monotonic_time() - t0) / 1000.0;
	if (rc == 0)
		rc = net_pool_call(pool, n->id, &st);
	if (rc == 0)
		rc = net_node_status_decode(text, (size_t)st.resp.body_len, &r->ns);
	if (rc) {
		r->error = g_strdup(common_strerror(rc));
		if (rc == NET_EPROTO)
			r->state = "failed";
	} else if (r->ns.store_error) {
		r->state = "failed";
		r->error = g_strdup_printf("store read-only: %s", common_strerror(r->ns.store_error));
	} else {
		r->state = "up";
	}
	g_free(text);
}

/* A metadata that cannot be read (a node host without it) is said, and
 * does not count against the nodes. */
static void read_health(const struct net_cluster *c, struct health *h)
{
	struct meta *m = NULL;
	int rc = c->meta_url ? meta_open(c->meta_url, &m) : -ENOENT;

	*h = (struct health){.state = "unknown"};
	if (rc == 0)
		rc = meta_degraded_count(m, &h->parts, &h->bytes);
	meta_close(m);
	if (rc) {
		g_autofree char *safe = c->meta_url ? meta_url_safe(c->meta_url) : g_strdup("not set");

		h->error = g_strdup_printf("metadata %s: %s", safe, common_strerror(rc));
	}
	else
		h->state = h->parts ? "degraded" : "healthy";
}

static void print_table(const struct node_row *rows, guint n, guint up, const struct health *h)
{
	printf("%-5s %-22s %-8s %8s %10s %11s %11s %s\n", "NODE", "ADDRESS", "STATE", "RTT(ms)",
	       "SHARDS", "STORED", "FREE", "VERSION");
	for (guint i = 0; i < n; i++) {
		const struct node_row *r = &rows[i];
		char *addr = g_strdup_printf("%s:%u", r->conf->host, r->conf->port);

		if (!strcmp(r->state, "up")) {
			char *live = tools_iec_size(r->ns.live_bytes);
			char *free_h = tools_iec_size(r->ns.free_bytes);

			printf("%-5u %-22s %-8s %8.2f %10" G_GUINT64_FORMAT " %11s %11s %s\n", r->conf->id,
			       addr, r->state, r->rtt_ms, r->ns.shards, live, free_h, r->ns.version);
			g_free(live);
			g_free(free_h);
		} else {
			printf("%-5u %-22s %-8s %s\n", r->conf->id, addr, r->state, r->error);
		}
		g_free(addr);
	}
	printf("%u of %u nodes up\n", up, n);
	if (h->error)
		printf("health: unknown (%s)\n", h->error);
	else if (!h->parts)
		printf("health: HEALTHY\n");
	else
		printf("health: DEGRADED: %" G_GUINT64_FORMAT " parts (%.1f MiB) with shards missing;"
		       " run 'shardfs repair --once' with every node up\n", h->parts,
		       (double)h->bytes / (1 << 20));
}

static void json_node(JsonBuilder *b, const struct node_row *r)
{
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "id");
	json_builder_add_int_value(b, r->conf->id);
	json_builder_set_member_name(b, "address");
	json_builder_add_string_value(b, r->conf->host);
	json_builder_set_member_name(b, "port");
	json_builder_add_int_value(b, r->conf->port);
	json_builder_set_member_name(b, "zone");
	if (r->conf->zone)
		json_builder_add_string_value(b, r->conf->zone);
	else
		json_builder_add_null_value(b);
	json_builder_set_member_name(b, "weight");
	json_builder_add_int_value(b, r->conf->weight);
	json_builder_set_member_name(b, "state");
	json_builder_add_string_value(b, r->state);
	json_builder_set_member_name(b, "error");
	if (r->error)
		json_builder_add_string_value(b, r->error);
	else
		json_builder_add_null_value(b);
	if (!strcmp(r->state, "up")) {
		const struct {
			const char *name;
			uint64_t v;
		} nums[] = {{"shards", r->ns.shards},	      {"stored_bytes", r->ns.live_bytes},
			    {"disk_bytes", r->ns.disk_bytes}, {"free_bytes", r->ns.free_bytes},
			    {"total_bytes", r->ns.total_bytes}, {"uptime_seconds", r->ns.uptime_s}};

		json_builder_set_member_name(b, "rtt_ms");
		json_builder_add_double_value(b, r->rtt_ms);
		for (size_t i = 0; i < G_N_ELEMENTS(nums); i++) {
			json_builder_set_member_name(b, nums[i].name);
			json_builder_add_int_value(b, (gint64)nums[i].v);
		}
		json_builder_set_member_name(b, "version");
		json_builder_add_string_value(b, r->ns.version);
		/* hex text: the id is 64 bits, more than a JSON number keeps */
		char fs_id[17];

		g_snprintf(fs_id, sizeof(fs_id), "%016" G_GINT64_MODIFIER "x", r->ns.fs_id);
		json_builder_set_member_name(b, "filesystem");
		json_builder_add_string_value(b, fs_id);
		json_builder_set_member_name(b, "identity");
		if (r->ns.identity[0])
			json_builder_add_string_value(b, r->ns.identity);
		else
			json_builder_add_null_value(b);
	}
	json_builder_end_object(b);
}

static void json_health(JsonBuilder *b, const struct health *h)
{
	json_builder_set_member_name(b, "health");
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "state");
	json_builder_add_string_value(b, h->state);
	json_builder_set_member_name(b, "degraded_parts");
	json_builder_add_int_value(b, (gint64)h->parts);
	json_builder_set_member_name(b, "degraded_bytes");
	json_builder_add_int_value(b, (gint64)h->bytes);
	json_builder_set_member_name(b, "error");
	if (h->error)
		json_builder_add_string_value(b, h->error);
	else
		json_builder_add_null_value(b);
	json_builder_end_object(b);
}

static void print_json(const struct net_cluster *c, const struct node_row *rows, guint n, guint up,
		       const struct health *h)
{
	JsonBuilder *b = json_builder_new();

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "cluster");
	json_builder_add_string_value(b, c->path);
	json_builder_set_member_name(b, "nodes_up");
	json_builder_add_int_value(b, up);
	json_builder_set_member_name(b, "nodes_total");
	json_builder_add_int_value(b, n);
	json_builder_set_member_name(b, "nodes");
	json_builder_begin_array(b);
	for (guint i = 0; i < n; i++)
		json_node(b, &rows[i]);
	json_builder_end_array(b);
	json_health(b, h);
	json_builder_end_object(b);

	JsonGenerator *gen = json_generator_new();
	JsonNode *root = json_builder_get_root(b);

	json_generator_set_root(gen, root);
	json_generator_set_pretty(gen, TRUE);
	char *text = json_generator_to_data(gen, NULL);

	printf("%s\n", text);
	g_free(text);
	json_node_unref(root);
	g_object_unref(gen);
	g_object_unref(b);
}

/* Asks every node and the metadata, prints, and returns the exit status. */
static int report(const struct net_cluster *c, struct net_pool *pool, gboolean json)
{
	guint n = c->nodes->len, up = 0;
	struct node_row *rows = g_new0(struct node_row, n);
	struct health h;

	for (guint i = 0; i < n; i++) {
		ask_node(pool, &g_array_index(c->nodes, struct net_node_conf, i), &rows[i]);
		up += !strcmp(rows[i].state, "up");
	}
	read_health(c, &h);
	if (json)
		print_json(c, rows, n, up, &h);
	else
		print_table(rows, n, up, &h);
	for (guint i = 0; i < n; i++)
		g_free(rows[i].error);
	g_free(rows);
	g_free(h.error);
	return up != n ? SHARDFS_EXIT_FAIL : h.parts ? SHARDFS_EXIT_DEGRADED : 0;
}

int cmd_status(int argc, char **argv)
{
	char *named = NULL, *config = NULL;
	gboolean json = FALSE;
	GOptionEntry entries[] = {
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &named, "cluster file or directory (default $SHARDFS_CONF)", "CLUSTER"},
		{"json", 0, 0, G_OPTION_ARG_NONE, &json, "one JSON object: nodes and health", NULL},
		{NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	struct net_cluster *c = NULL;
	struct net_tls *tls = NULL;
	struct net_pool *pool = NULL;
	struct net_pool_options po;
	GError *err = NULL;
	int rc;

	if (!tools_parse(argc, argv, entries, "[CLUSTER] - the state of every node and of the data"))
		return SHARDFS_EXIT_USAGE;
	if (argc > 2 || (named && argc > 1)) {
		fprintf(stderr, "usage: shardfs status [-c CLUSTER | CLUSTER] [--json]\n");
		g_free(named);
		return SHARDFS_EXIT_USAGE;
	}
	rc = tools_cluster_file("status", named ? named : argv[1], &config);
	g_free(named);
	if (rc)
		return rc;
	rc = SHARDFS_EXIT_FAIL;
	if (net_cluster_load(config, &c, &err) < 0 || net_tls_new(c->ca, c->cert, c->key, &tls, &err) < 0) {
		fprintf(stderr, "shardfs status: %s\n", err->message);
		g_error_free(err);
		goto out;
	}
	net_pool_options_default(&po);
	net_pool_new(c, tls, &po, &pool);
	rc = report(c, pool, json);
out:
	net_pool_free(pool);
	net_tls_free(tls);
	net_cluster_free(c);
	g_free(config);
	return rc;
}
