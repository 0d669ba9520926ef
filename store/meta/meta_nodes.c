/*
 * meta_nodes.c - the storage nodes the metadata knows (meta.h): the
 * identity of each node's store, and what a store that came back as
 * another one costs: every shard the manifests place on it is marked
 * missing, for repair; and the same for one shard a node found bad.
 * Calls only the core.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <sqlite3.h>
#include <string.h>

int meta_node_identity(struct meta *m, uint32_t node, char out[META_IDENTITY_MAX])
{
	int rc = -ENOENT;

	g_mutex_lock(&m->lock);
	sqlite3_stmt *s = meta_stmt(m, META_Q_NODE_IDENTITY);

	sqlite3_bind_int64(s, 1, node);
	if (sqlite3_step(s) == SQLITE_ROW) {
		const unsigned char *text = sqlite3_column_text(s, 0);

		g_strlcpy(out, text ? (const char *)text : "", META_IDENTITY_MAX);
		rc = 0;
	}
	sqlite3_reset(s);
	g_mutex_unlock(&m->lock);
	return rc;
}

/*
 * Marks shard slot i missing in every part whose slot i is on node, for
 * each slot a code can have. One pass over parts per slot: this runs
 * when a node's store was lost, not on any data path.
 */
static int mark_node_lost(struct meta *m, uint32_t node, uint64_t *lost)
{
	uint8_t packed[2] = {(uint8_t)node, (uint8_t)(node >> 8)};
	int rc = 0;

	*lost = 0;
	for (int i = 0; i < (int)G_N_ELEMENTS(((struct meta_part *)0)->nodes) && rc == 0; i++) {
		sqlite3_stmt *s = meta_stmt(m, META_Q_NODE_LOST);

		sqlite3_bind_int(s, 1, i);
		sqlite3_bind_blob(s, 2, packed, sizeof(packed), SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, (int64_t)(UINT64_C(1) << i));
		rc = meta_run(m, s);
		if (rc == 0)
			*lost += (uint64_t)sqlite3_changes(m->db);
	}
	return rc;
}

int meta_node_identity_set(struct meta *m, uint32_t node, const char *identity, uint64_t *lost)
{
	char was[META_IDENTITY_MAX] = "";
	int rc;

	*lost = 0;
	if (!identity[0] || strlen(identity) >= META_IDENTITY_MAX || node > UINT16_MAX)
		return -EINVAL;
	if ((rc = meta_tx_begin_durable(m)) < 0)
		return rc;
	sqlite3_stmt *s = meta_stmt(m, META_Q_NODE_IDENTITY);

	sqlite3_bind_int64(s, 1, node);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		g_strlcpy(was, (const char *)sqlite3_column_text(s, 0), sizeof(was));
	sqlite3_reset(s);
	if (!strcmp(was, identity))
		return meta_tx_end_durable(m, 0);
	if (was[0])
		rc = mark_node_lost(m, node, lost);
	if (rc == 0) {
		s = meta_stmt(m, META_Q_NODE_SET);
		sqlite3_bind_int64(s, 1, node);
		sqlite3_bind_text(s, 2, identity, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, meta_now_ns());
		rc = meta_run(m, s);
	}
	rc = meta_tx_end_durable(m, rc);
	if (rc)
		*lost = 0;
	return rc;
}

int meta_shard_lost(struct meta *m, const uint8_t oid[16], uint32_t index, uint32_t shard,
		    uint32_t node, unsigned *marked)
{
	uint8_t packed[2] = {(uint8_t)node, (uint8_t)(node >> 8)};
	int rc;

	*marked = 0;
	if (shard >= G_N_ELEMENTS(((struct meta_part *)0)->nodes) || node > UINT16_MAX)
		return -EINVAL;
	if ((rc = meta_tx_begin_durable(m)) < 0)
		return rc;
	sqlite3_stmt *s = meta_stmt(m, META_Q_SHARD_LOST);

	sqlite3_bind_blob(s, 1, oid, 16, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, index);
	sqlite3_bind_int(s, 3, (int)shard);
	sqlite3_bind_int64(s, 4, (int64_t)(UINT64_C(1) << shard));
	sqlite3_bind_blob(s, 5, packed, sizeof(packed), SQLITE_STATIC);
	rc = meta_run(m, s);
	if (rc == 0)
		*marked = (unsigned)sqlite3_changes(m->db);
	return meta_tx_end_durable(m, rc);
}
