/*
 * repair.c - `shardfs repair --once [-c CLUSTER.conf]`: one pass that
 * rebuilds every shard that writes recorded as missing (a node was down),
 * onto nodes that hold none of its part. Exit status 1 if a part could
 * not be repaired (too few shards readable, or no node took a shard) or
 * waits for a node (none that could take its shards answers). Mounts run
 * the same repair by themselves (fuse/mount.c: the repairer).
 */
#define G_LOG_DOMAIN "shardfs"

#include "client.h"
#include "common/error.h"
#include "shardfs.h"
#include "store/store.h"

#include <stdio.h>

int cmd_repair(int argc, char **argv)
{
	char *config = NULL;
	gboolean once = FALSE;
	const GOptionEntry entries[] = {
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &config,
		 "cluster file or directory (default: $SHARDFS_CONF)", "CLUSTER"},
		{"once", 0, 0, G_OPTION_ARG_NONE, &once, "one pass over the parts with shards missing", NULL},
		G_OPTION_ENTRY_NULL};
	struct store_repair_stats st;
	struct client c;

	if (!tools_parse(argc, argv, entries, "--once - rebuild the shards writes left missing"))
		return SHARDFS_EXIT_USAGE;
	if (!once || argc > 1) {
		fprintf(stderr, "shardfs repair: give --once (one pass), and no other argument\n");
		g_free(config);
		return SHARDFS_EXIT_USAGE;
	}
	int rc = client_open(&c, "repair", config);
	g_free(config);
	if (rc)
		return rc;
	rc = store_repair_pass(c.store, c.meta, &st);
	client_close(&c);
	if (rc) {
		fprintf(stderr, "shardfs repair: metadata: %s\n", common_strerror(rc));
		return SHARDFS_EXIT_FAIL;
	}
	printf("repaired %" G_GUINT64_FORMAT " parts (%" G_GUINT64_FORMAT " shards rebuilt), %"
	       G_GUINT64_FORMAT " failed, %" G_GUINT64_FORMAT " waiting for a node, %"
	       G_GUINT64_FORMAT " rewritten meanwhile\n", st.parts_repaired, st.shards_rebuilt,
	       st.parts_failed, st.parts_waiting, st.parts_changed);
	return st.parts_failed || st.parts_waiting ? SHARDFS_EXIT_FAIL : 0;
}
