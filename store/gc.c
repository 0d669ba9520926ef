/*
 * gc.c - deleting the shards of parts that no manifest references any more.
 *
 * The garbage table is written in the same transaction that drops a part
 * from a manifest, so a shard is never deleted while a manifest points to
 * it, and a crash between the two leaves at worst an entry to retry.
 */
#define G_LOG_DOMAIN "shardfs-store"

#include "store_internal.h"

#include <string.h>

int store_collect_garbage(struct store *s, struct meta *m, unsigned max, unsigned *deleted)
{
	struct meta_garbage *items = NULL;
	unsigned n = 0, done = 0;
	int rc = meta_garbage_list(m, max, &items, &n);

	for (unsigned i = 0; rc == 0 && i < n; i++) {
		memcpy(items[i].part.object_id, items[i].object_id, 16);
		if (store_parts_delete(s, &items[i].part, 1))
			continue; /* a node is away: the entry waits for the next pass */
		rc = meta_garbage_done(m, items[i].id);
		done += rc == 0;
	}
	g_free(items);
	if (deleted)
		*deleted = done;
	return rc;
}
