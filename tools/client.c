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
