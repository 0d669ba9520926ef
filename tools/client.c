/*
 * client.c - opening a cluster for the client subcommands (client.h).
 */
#include "client.h"

#include "cli_args.h"
#include "common/error.h"
#include "net/net.h"
#include "store/meta/meta.h"
#include "store/store.h"

#include <stdio.h>

int client_open(struct client *c, const char *cmd, const char *config)
{
	g_autofree char *conf = NULL;
	GError *err = NULL;
	int rc = tools_cluster_file(cmd, config, &conf);

	if (rc)
		return rc;
	if ((rc = store_open(conf, NULL, &c->store, &err))) {
		fprintf(stderr, "shardfs: %s\n", err ? err->message : common_strerror(rc));
		g_clear_error(&err);
		return SHARDFS_EXIT_FAIL;
	}
	const char *url = store_cluster(c->store)->meta_url;
	if ((rc = meta_open(url, &c->meta)) == 0 &&
	    (rc = meta_cluster_check(c->meta, store_cluster(c->store)->id)))
		g_clear_pointer(&c->meta, meta_close);
	if (rc) {
		g_autofree char *safe = meta_url_safe(url); /* url is the store's */

		fprintf(stderr, "shardfs: metadata %s: %s\n", safe, meta_open_reason(rc));
		store_close(c->store);
		return SHARDFS_EXIT_FAIL;
	}
	if ((rc = store_follow_members(c->store, c->meta)) < 0)
		fprintf(stderr, "shardfs: the metadata's members: %s; using %s's nodes\n",
			common_strerror(rc), conf);
	return 0;
}

void client_close(struct client *c)
{
	meta_close(c->meta);
	store_close(c->store);
}

void tools_print_json(JsonBuilder *b)
{
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

void tools_bar_show(void *arg, uint64_t done, uint64_t total)
{
	struct tools_bar *b = arg;
	gint64 now = g_get_monotonic_time();

	if (!b->on || now - b->shown < 200000)
		return;
	b->shown = now;
	fprintf(stderr, "\r\033[K%s  %" G_GUINT64_FORMAT " / %" G_GUINT64_FORMAT " parts  %5.1f%%"
		"  %.0f s", b->what, done, total, total ? 100.0 * (double)done / (double)total : 100.0,
		(double)(now - b->start) / 1e6);
}
