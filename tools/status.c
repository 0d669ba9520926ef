/*
 * status.c - `shardfs status [CLUSTER] [--json]`: every node, asked over
 * QUIC with the cluster file's client identity, then the data's health
 * from the metadata; as a table, or as one JSON object (json-glib, whose
 * generator escapes what nodes and errors say). Exit status 1 when any
 * node is unreachable or reports a failed store; 3 (SHARDFS_EXIT_DEGRADED)
 * when every node is up but parts have shards missing; 0 only when
 * healthy. The same in both forms.
 *
 * From the metadata besides: since when a node has not answered and
 * whether it was put out (down_out_s), whether one that answers has
 * another store than the manifests name (wiped or replaced), the parts
 * below k + m and those left with min_shards shards or fewer (one more
 * loss from losing data on 2+1), and the repair workers' rate, which
 * turns DEGRADED into REPAIRING with a time to go.
 */
#define G_LOG_DOMAIN "shardfs"

#include "client.h"
#include "common/error.h"
#include "net/net.h"
#include "net/net_proto.h"
#include "shardfs.h"
#include "store/meta/meta.h"
#include "store/store.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STATUS_TIMEOUT_MS 3000
#define STATUS_MAX 4096
/* A repair worker that reported within this is at work. */
#define REPAIR_RECENT_S 60
/* Degraded parts looked at one by one for the count at min_shards. */
#define RISK_WALK_MAX 100000u

/* What one node said, or why it said nothing. */
struct node_row {
	const struct meta_member *conf; /* from the metadata, or the cluster file */
	const char *state; /* "up", "down" (no answer), "out" (down past down_out_s)
			    * or "failed" (store failed) */
	double rtt_ms;
	struct net_node_status ns; /* when answered */
	char *error;		   /* NULL when up */
	int64_t down_s;		   /* how long it has not answered, by the metadata; 0 */
	char was[META_IDENTITY_MAX]; /* the store the manifests name, if another */
};

struct health {
	const char *state; /* "healthy", "degraded", "repairing", "rebalancing" or "unknown"
			    * (metadata unread) */
	uint64_t parts, bytes;		 /* below k + m */
	uint64_t risk_parts, risk_bytes; /* at min_shards or below */
	bool risk_partial;		 /* more degraded parts than were walked */
	unsigned workers;		 /* repair workers at work */
	uint64_t repair_bytes_per_s;
	struct meta_rebalance_progress rebalance; /* rebalance passes at work */
	unsigned nodes_down;
	unsigned new_stores; /* answering with a store the manifests do not name */
	char *error;
};

static void ask_node(struct net_pool *pool, const struct meta_member *n, struct node_row *r)
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

/* A member put out after draining holds nothing: its silence harms no data. */
static bool answer_optional(const struct node_row *r)
{
	return r->conf->state == META_MEMBER_OUT;
}

/* What the metadata says of node r: how long it has been silent, out,
 * or answering with another store. */
static void node_from_meta(struct meta *m, struct node_row *r)
{
	int64_t since = 0;
	bool out = false;
	char recorded[META_IDENTITY_MAX] = "";

	if (meta_node_health(m, r->conf->id, &since, &out) == 0 && since && strcmp(r->state, "up"))
		r->down_s = MAX((int64_t)time(NULL) - since, 0);
	if (out && !strcmp(r->state, "down"))
		r->state = "out";
	if (!strcmp(r->state, "up") && r->ns.identity[0] &&
	    meta_node_identity(m, r->conf->id, recorded) == 0 && recorded[0] &&
	    strcmp(recorded, r->ns.identity))
		g_strlcpy(r->was, recorded, sizeof(r->was));
}

/* The degraded parts with min_shards shards or fewer, one by one. */
static int count_at_risk(struct meta *m, unsigned min_shards, struct health *h)
{
	uint64_t after_ino = 0, walked = 0;
	uint32_t after_index = 0;
	unsigned n = 256;
	int rc = 0;

	while (rc == 0 && n == 256 && walked < RISK_WALK_MAX) {
		struct meta_degraded *d;

		rc = meta_degraded_list(m, after_ino, after_index, 256, &d, &n);
		for (unsigned i = 0; rc == 0 && i < n; i++) {
			const struct meta_part *p = &d[i].part;
			if (meta_shards_held(p) <= min_shards) {
				h->risk_parts++;
				h->risk_bytes += p->length;
			}
		}
		walked += n;
		if (rc == 0 && n) {
			after_ino = d[n - 1].ino;
			after_index = d[n - 1].part.index;
		}
		g_free(d);
	}
	h->risk_partial = rc == 0 && n == 256;
	return rc;
}

static int read_data_health(struct meta *m, const struct net_cluster *c, struct health *h)
{
	int rc = meta_degraded_count(m, &h->parts, &h->bytes);

	if (rc == 0 && h->parts)
		rc = count_at_risk(m, c->min_shards, h);
	if (rc == 0)
		rc = meta_repair_rate(m, (int64_t)time(NULL) - REPAIR_RECENT_S, &h->workers,
				      &h->repair_bytes_per_s);
	if (rc == 0)
		rc = meta_rebalance_progress(m, (int64_t)time(NULL) - REPAIR_RECENT_S, &h->rebalance);
	return rc;
}

/* A metadata that cannot be read (a node host without it) is said, and
 * does not count against the nodes. */
static void read_health(const struct net_cluster *c, struct node_row *rows, guint n,
			struct health *h)
{
	struct meta *m = NULL;
	int rc = c->meta_url ? meta_open(c->meta_url, &m) : -ENOENT;

	*h = (struct health){.state = "unknown"};
	for (guint i = 0; i < n; i++)
		h->nodes_down += !answer_optional(&rows[i]) && strcmp(rows[i].state, "up") != 0;
	if (rc == 0) {
		for (guint i = 0; i < n; i++) {
			node_from_meta(m, &rows[i]);
			h->new_stores += rows[i].was[0] != '\0';
		}
		rc = read_data_health(m, c, h);
	}
	meta_close(m);
	if (rc) {
		g_autofree char *safe = c->meta_url ? meta_url_safe(c->meta_url) : g_strdup("not set");

		h->error = g_strdup_printf("metadata %s: %s", safe, common_strerror(rc));
	} else if (h->parts && h->workers && h->repair_bytes_per_s) {
		h->state = "repairing";
	} else if (h->parts || h->nodes_down || h->new_stores) {
		h->state = "degraded";
	} else {
		h->state = h->rebalance.workers ? "rebalancing" : "healthy";
	}
}

static char *duration_text(int64_t s)
{
	return s >= 3600 ? g_strdup_printf("%" G_GINT64_FORMAT ":%02d:%02d", s / 3600,
					   (int)(s / 60 % 60), (int)(s % 60))
			 : g_strdup_printf("%d:%02d", (int)(s / 60), (int)(s % 60));
}

/* Seconds left of the pass with the most to go, by its pace so far; -1
 * before it walked anything. */
static int64_t rebalance_left_s(const struct meta_rebalance_progress *r)
{
	int64_t took = MAX((int64_t)time(NULL) - r->started_s, 1);

	if (!r->parts_done || r->parts_done > r->parts_total)
		return -1;
	return (int64_t)((double)took * (double)(r->parts_total - r->parts_done) /
			 (double)r->parts_done);
}

static void print_rebalancing(const struct meta_rebalance_progress *r)
{
	int64_t left = rebalance_left_s(r);
	g_autofree char *to_go = left >= 0 ? duration_text(left) : g_strdup("?");

	printf("health: REBALANCING: %u worker%s moving shards at %.1f MiB/s, %" G_GUINT64_FORMAT
	       " of %" G_GUINT64_FORMAT " parts looked at, about %s to go\n", r->workers,
	       r->workers == 1 ? "" : "s", (double)r->bytes_per_s / (1 << 20), r->parts_done,
	       r->parts_total, to_go);
}

static void print_health(const struct net_cluster *c, const struct health *h)
{
	if (h->error) {
		printf("health: unknown (%s)\n", h->error);
		return;
	}
	if (!strcmp(h->state, "healthy")) {
		printf("health: HEALTHY\n");
		return;
	}
	if (!strcmp(h->state, "rebalancing")) {
		print_rebalancing(&h->rebalance);
		return;
	}
	printf("health: %s", !strcmp(h->state, "repairing") ? "REPAIRING" : "DEGRADED");
	if (h->parts)
		printf(": %" G_GUINT64_FORMAT " parts (%.1f MiB) with shards missing, %s%"
		       G_GUINT64_FORMAT " (%.1f MiB) with %u or fewer (min_shards)", h->parts,
		       (double)h->bytes / (1 << 20), h->risk_partial ? "at least " : "",
		       h->risk_parts, (double)h->risk_bytes / (1 << 20), c->min_shards);
	if (h->nodes_down)
		printf("%s%u node%s not answering", h->parts ? "; " : ": ", h->nodes_down,
		       h->nodes_down == 1 ? "" : "s");
	if (h->new_stores)
		printf("%s%u node%s with a new store, whose shards the next repair round rebuilds",
		       h->parts || h->nodes_down ? "; " : ": ", h->new_stores,
		       h->new_stores == 1 ? "" : "s");
	if (!strcmp(h->state, "repairing")) {
		g_autofree char *left =
			duration_text((int64_t)((double)h->bytes / (double)h->repair_bytes_per_s));

		printf("; %u repair worker%s at %.1f MiB/s, about %s to go", h->workers,
		       h->workers == 1 ? "" : "s", (double)h->repair_bytes_per_s / (1 << 20), left);
	} else if (h->parts) {
		printf("; every mount repairs by itself, or run 'shardfs repair --once'");
	}
	printf("\n");
}

static void print_table(const struct net_cluster *c, const struct node_row *rows, guint n, guint up,
			const struct health *h)
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
		} else if (r->down_s) {
			g_autofree char *for_s = duration_text(r->down_s);

			printf("%-5u %-22s %-8s for %s%s: %s\n", r->conf->id, addr, r->state, for_s,
			       !strcmp(r->state, "out") ? ", its shards rebuilt on the others" : "",
			       r->error);
		} else {
			printf("%-5u %-22s %-8s %s\n", r->conf->id, addr, r->state, r->error);
		}
		if (r->was[0])
			printf("      a new store (identity %s; the manifests name %s): its shards are"
			       " rebuilt onto it\n", r->ns.identity, r->was);
		if (r->conf->state == META_MEMBER_DRAINING)
			printf("      draining: takes no new shard; `shardfs rebalance` moves its"
			       " shards off\n");
		else if (r->conf->state == META_MEMBER_OUT)
			printf("      out: drained, holds nothing; `shardfs node remove %u` takes it"
			       " away\n", r->conf->id);
		g_free(addr);
	}
	printf("%u of %u nodes up\n", up, n);
	print_health(c, h);
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
	if (r->conf->zone[0])
		json_builder_add_string_value(b, r->conf->zone);
	else
		json_builder_add_null_value(b);
	json_builder_set_member_name(b, "member");
	json_builder_add_string_value(b, meta_member_state_name(r->conf->state));
	json_builder_set_member_name(b, "weight");
	json_builder_add_int_value(b, r->conf->weight);
	json_builder_set_member_name(b, "state");
	json_builder_add_string_value(b, r->state);
	json_builder_set_member_name(b, "error");
	if (r->error)
		json_builder_add_string_value(b, r->error);
	else
		json_builder_add_null_value(b);
	json_builder_set_member_name(b, "down_seconds");
	json_builder_add_int_value(b, r->down_s);
	json_builder_set_member_name(b, "new_store");
	json_builder_add_boolean_value(b, r->was[0] != '\0');
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
	json_builder_set_member_name(b, "at_min_shards_parts");
	json_builder_add_int_value(b, (gint64)h->risk_parts);
	json_builder_set_member_name(b, "at_min_shards_bytes");
	json_builder_add_int_value(b, (gint64)h->risk_bytes);
	json_builder_set_member_name(b, "nodes_down");
	json_builder_add_int_value(b, h->nodes_down);
	json_builder_set_member_name(b, "new_stores");
	json_builder_add_int_value(b, h->new_stores);
	json_builder_set_member_name(b, "repair_workers");
	json_builder_add_int_value(b, h->workers);
	json_builder_set_member_name(b, "repair_bytes_per_s");
	json_builder_add_int_value(b, (gint64)h->repair_bytes_per_s);
	json_builder_set_member_name(b, "repair_seconds_left");
	if (!strcmp(h->state, "repairing"))
		json_builder_add_int_value(b, (gint64)((double)h->bytes / (double)h->repair_bytes_per_s));
	else
		json_builder_add_null_value(b);
	json_builder_set_member_name(b, "rebalance_workers");
	json_builder_add_int_value(b, h->rebalance.workers);
	json_builder_set_member_name(b, "rebalance_bytes_per_s");
	json_builder_add_int_value(b, (gint64)h->rebalance.bytes_per_s);
	json_builder_set_member_name(b, "rebalance_parts_done");
	json_builder_add_int_value(b, (gint64)h->rebalance.parts_done);
	json_builder_set_member_name(b, "rebalance_parts_total");
	json_builder_add_int_value(b, (gint64)h->rebalance.parts_total);
	json_builder_set_member_name(b, "rebalance_seconds_left");
	if (!strcmp(h->state, "rebalancing") && rebalance_left_s(&h->rebalance) >= 0)
		json_builder_add_int_value(b, rebalance_left_s(&h->rebalance));
	else
		json_builder_add_null_value(b);
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

	tools_print_json(b);
}

/* The members from the metadata, or the cluster file's nodes when it
 * cannot be read here (a node's host); each is added to the pool. */
static GArray *members(const struct net_cluster *c, struct net_pool *pool)
{
	GArray *out = g_array_new(FALSE, TRUE, sizeof(struct meta_member));
	struct meta_member *list = NULL;
	struct meta *m = NULL;
	unsigned n = 0;

	if (c->meta_url && meta_open(c->meta_url, &m) == 0 && meta_members(m, &list, &n) == 0)
		g_array_append_vals(out, list, n);
	else
		n = 0;
	meta_close(m);
	g_free(list);
	if (n == 0)
		store_cluster_members(c, out);
	for (guint i = 0; i < out->len; i++) {
		const struct meta_member *mb = &g_array_index(out, struct meta_member, i);

		net_pool_set_node(pool, mb->id, mb->host, mb->port);
	}
	return out;
}

/* Asks every node and the metadata, prints, and returns the exit status. */
static int report(const struct net_cluster *c, struct net_pool *pool, gboolean json)
{
	GArray *nodes = members(c, pool);
	guint n = nodes->len, up = 0;
	struct node_row *rows = g_new0(struct node_row, n);
	struct health h;

	for (guint i = 0; i < n; i++) {
		ask_node(pool, &g_array_index(nodes, struct meta_member, i), &rows[i]);
		up += !strcmp(rows[i].state, "up");
	}
	read_health(c, rows, n, &h);
	if (json)
		print_json(c, rows, n, up, &h);
	else
		print_table(c, rows, n, up, &h);
	/* a metadata this host cannot read is no fault of the nodes' */
	bool degraded = !strcmp(h.state, "degraded") || !strcmp(h.state, "repairing") ||
			!strcmp(h.state, "rebalancing");

	for (guint i = 0; i < n; i++)
		g_free(rows[i].error);
	g_free(rows);
	g_free(h.error);
	g_array_free(nodes, TRUE);
	return h.nodes_down ? SHARDFS_EXIT_FAIL : degraded ? SHARDFS_EXIT_DEGRADED : 0;
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
