/*
 * node_admin.c - the membership commands:
 *
 *   shardfs node add ID=HOST:PORT[,zone=Z][,weight=W] [-c CLUSTER]
 *   shardfs node list [-c CLUSTER] [--json]
 *   shardfs node drain ID [-c CLUSTER]
 *   shardfs node remove ID [--force] [-c CLUSTER]
 *
 * They change the metadata's members (meta.h), which every mount and
 * command builds its ring from and running mounts take within 5 s. add
 * also signs the node's certificate with the cluster CA, so it runs where
 * `shardfs init` did (DIR/ca/ca.key), and adds the node's section to the
 * cluster file there, which the node daemon reads for its address, files
 * and data directory.
 */
#define G_LOG_DOMAIN "shardfs"

#include "client.h"
#include "common/error.h"
#include "node_files.h"
#include "shardfs.h"
#include "store/store.h"

#include <errno.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

static gboolean parse_id(const char *cmd, const char *arg, uint32_t *id)
{
	guint64 v;

	if (arg && g_ascii_string_to_unsigned(arg, 10, 1, 65535, &v, NULL)) {
		*id = (uint32_t)v;
		return TRUE;
	}
	fprintf(stderr, "shardfs node %s: expected a node id, 1..65535\n", cmd);
	return FALSE;
}

/* The cluster file with the new node's section, written in place of the
 * old one at once (a rename), so that a reader never sees half of it. */
static gboolean add_to_cluster_file(const char *conf, const char *dir, const struct node_arg *n,
				    GError **err)
{
	GKeyFile *kf = g_key_file_new();
	g_autofree char *group = g_strdup_printf("node.%u", n->id);
	g_autofree char *base = g_strdup_printf("node-%u", n->id);
	gboolean ok = g_key_file_load_from_file(kf, conf, G_KEY_FILE_KEEP_COMMENTS, err);

	if (ok && g_key_file_has_group(kf, group)) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_EXIST,
			    "%s already has a [%s] section (a node removed before?): take it out, and"
			    " %s/hosts/%s/, to add the node again", conf, group, dir, base);
		ok = FALSE;
	}
	ok = ok && node_files_issue(dir, kf, n, err);
	if (ok) {
		gsize len;
		g_autofree char *data = g_key_file_to_data(kf, &len, NULL);

		ok = g_file_set_contents_full(conf, data, (gssize)len, G_FILE_SET_CONTENTS_CONSISTENT,
					      0644, err);
	}
	g_key_file_free(kf);
	return ok && node_files_host_dir(dir, base, base, err);
}

static void member_of(const struct node_arg *n, struct meta_member *mb)
{
	*mb = (struct meta_member){.id = n->id, .port = (uint16_t)n->port, .weight = n->weight};
	g_strlcpy(mb->host, n->host, sizeof(mb->host));
	g_strlcpy(mb->zone, n->zone ? n->zone : "", sizeof(mb->zone));
}

static int node_add(struct client *c, const char *conf, const struct node_arg *n)
{
	g_autofree char *dir = g_path_get_dirname(conf);
	g_autofree char *ca_key = g_build_filename(dir, "ca", "ca.key", NULL);
	struct meta_member mb;
	GError *err = NULL;
	int rc;

	member_of(n, &mb);
	if (!g_file_test(ca_key, G_FILE_TEST_EXISTS)) {
		fprintf(stderr, "shardfs node add: %s is not here: add nodes where `shardfs init` made"
				" the cluster, which holds the CA key that signs their certificates\n",
			ca_key);
		return SHARDFS_EXIT_FAIL;
	}
	/* refused before any file is written */
	if ((rc = meta_member_check_new(c->meta, &mb)) == 0 &&
	    !add_to_cluster_file(conf, dir, n, &err))
		rc = -EIO;
	if (rc == 0)
		rc = meta_member_add(c->meta, &mb);
	if (rc) {
		fprintf(stderr, "shardfs node add: %s\n",
			err ? err->message : rc == -EEXIST ? "a member has that id or address already"
							   : common_strerror(rc));
		g_clear_error(&err);
		return SHARDFS_EXIT_FAIL;
	}
	printf("node %u added at %s:%u (zone %s, weight %u); mounts place data on it within 5 s\n"
	       "  on its host: copy %s/hosts/node-%u/* there, then\n"
	       "    shardfs node --config cluster.conf --id %u\n"
	       "  then `shardfs rebalance` moves its share of the data onto it\n",
	       n->id, n->host, n->port, n->zone ? n->zone : "none", n->weight, dir, n->id, n->id);
	return 0;
}

static void list_json(const struct meta_member *list, unsigned n, const uint64_t *parts)
{
	JsonBuilder *b = json_builder_new();

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "nodes");
	json_builder_begin_array(b);
	for (unsigned i = 0; i < n; i++) {
		json_builder_begin_object(b);
		json_builder_set_member_name(b, "id");
		json_builder_add_int_value(b, list[i].id);
		json_builder_set_member_name(b, "host");
		json_builder_add_string_value(b, list[i].host);
		json_builder_set_member_name(b, "port");
		json_builder_add_int_value(b, list[i].port);
		json_builder_set_member_name(b, "zone");
		json_builder_add_string_value(b, list[i].zone);
		json_builder_set_member_name(b, "weight");
		json_builder_add_int_value(b, list[i].weight);
		json_builder_set_member_name(b, "state");
		json_builder_add_string_value(b, meta_member_state_name(list[i].state));
		json_builder_set_member_name(b, "parts");
		json_builder_add_int_value(b, (gint64)parts[i]);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	json_builder_end_object(b);
	tools_print_json(b);
}

static int node_list(struct client *c, gboolean json)
{
	struct meta_member *list;
	unsigned n;
	int rc = meta_members(c->meta, &list, &n);
	uint64_t *parts = g_new0(uint64_t, MAX(n, 1));

	for (unsigned i = 0; rc == 0 && i < n; i++)
		rc = meta_node_parts(c->meta, list[i].id, &parts[i]);
	if (rc) {
		fprintf(stderr, "shardfs node list: metadata: %s\n", common_strerror(rc));
	} else if (json) {
		list_json(list, n, parts);
	} else {
		printf("%-6s %-28s %-10s %6s  %-9s %s\n", "ID", "ADDRESS", "ZONE", "WEIGHT", "STATE",
		       "PARTS HELD");
		for (unsigned i = 0; i < n; i++) {
			g_autofree char *addr = g_strdup_printf("%s:%u", list[i].host, list[i].port);

			printf("%-6u %-28s %-10s %6u  %-9s %" G_GUINT64_FORMAT "\n", list[i].id, addr,
			       list[i].zone[0] ? list[i].zone : "-", list[i].weight,
			       meta_member_state_name(list[i].state), parts[i]);
		}
	}
	g_free(parts);
	g_free(list);
	return rc ? SHARDFS_EXIT_FAIL : 0;
}

static int node_drain(struct client *c, uint32_t id)
{
	uint64_t parts = 0;
	int rc = meta_member_set_state(c->meta, id, META_MEMBER_DRAINING);

	if (rc == 0)
		rc = meta_node_parts(c->meta, id, &parts);
	if (rc) {
		fprintf(stderr, "shardfs node drain: %s\n",
			rc == -ENOENT ? "no member has that id" : common_strerror(rc));
		return SHARDFS_EXIT_FAIL;
	}
	printf("node %u drains: it takes no new shard; `shardfs rebalance` (or a repair daemon)"
	       " moves the shards of its %" G_GUINT64_FORMAT " parts off it, then it is out and"
	       " `shardfs node remove %u` takes it from the cluster\n", id, parts, id);
	return 0;
}

static int node_remove(struct client *c, uint32_t id, gboolean force)
{
	uint64_t parts = 0;
	int rc = meta_member_remove(c->meta, id, force, &parts);

	if (rc == -EBUSY) {
		fprintf(stderr, "shardfs node remove: node %u still holds shards of %" G_GUINT64_FORMAT
				" parts: drain it first (shardfs node drain %u; shardfs rebalance), or"
				" --force: each of those parts then loses a shard, for repair to rebuild"
				" elsewhere\n", id, parts, id);
		return SHARDFS_EXIT_FAIL;
	}
	if (rc) {
		fprintf(stderr, "shardfs node remove: %s\n",
			rc == -ENOENT ? "no member has that id" : common_strerror(rc));
		return SHARDFS_EXIT_FAIL;
	}
	if (parts)
		printf("node %u removed; %" G_GUINT64_FORMAT " parts lost a shard on it: repair"
		       " rebuilds them elsewhere\n", id, parts);
	else
		printf("node %u removed: it held no shard; stop its daemon\n", id);
	return 0;
}

static int run(const char *verb, int argc, char **argv, const char *config, gboolean json,
	       gboolean force)
{
	g_autofree char *conf = NULL;
	struct node_arg spec = {0};
	struct client c;
	uint32_t id = 0;
	bool add = !strcmp(verb, "add"), list = !strcmp(verb, "list");
	int rc;

	if ((list && argc != 1) || (!list && argc != 2)) {
		fprintf(stderr, "shardfs node %s: expected %s\n", verb,
			list ? "no argument" : add ? "one " NODE_ARG_SYNTAX : "one node id");
		return SHARDFS_EXIT_USAGE;
	}
	if (add && !node_arg_parse(argv[1], &spec)) {
		fprintf(stderr, "shardfs node add: %s: expected %s\n", argv[1], NODE_ARG_SYNTAX);
		return SHARDFS_EXIT_USAGE;
	}
	if (!add && !list && !parse_id(verb, argv[1], &id))
		return SHARDFS_EXIT_USAGE;
	if ((rc = tools_cluster_file("node", config, &conf)) == 0 &&
	    (rc = client_open(&c, "node", conf)) == 0) {
		rc = add ? node_add(&c, conf, &spec)
		     : list ? node_list(&c, json)
		     : !strcmp(verb, "drain") ? node_drain(&c, id)
					      : node_remove(&c, id, force);
		client_close(&c);
	}
	node_arg_clear(&spec);
	return rc;
}

gboolean node_admin_verb(const char *arg)
{
	return arg && (!strcmp(arg, "add") || !strcmp(arg, "list") || !strcmp(arg, "drain") ||
		       !strcmp(arg, "remove"));
}

int cmd_node_admin(int argc, char **argv)
{
	g_autofree char *verb = g_strdup(argv[0]);
	char *config = NULL;
	gboolean json = FALSE, force = FALSE;
	const GOptionEntry entries[] = {
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &config,
		 "cluster file or directory (default: $SHARDFS_CONF)", "CLUSTER"},
		{"json", 0, 0, G_OPTION_ARG_NONE, &json, "list: print one JSON object", NULL},
		{"force", 0, 0, G_OPTION_ARG_NONE, &force,
		 "remove: even a node that still holds shards (they are rebuilt elsewhere)", NULL},
		G_OPTION_ENTRY_NULL};
	int rc = SHARDFS_EXIT_USAGE;

	if (tools_parse(argc, argv, entries, "- add, list, drain or remove a storage node"))
		rc = run(verb, argc, argv, config, json, force);
	g_free(config);
	return rc;
}
