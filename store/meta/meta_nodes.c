/*
 * meta_nodes.c - the storage nodes the metadata knows (meta.h): the
 * identity of each node's store, and what a store that came back as
 * another one costs: every shard the manifests place on it is marked
 * missing, for repair; and the same for one shard a node found bad. And
 * the identity of the cluster itself. Calls only the core.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

/* The identity recorded for node into out; -ENOENT if none. */
static int identity_locked(struct meta *m, uint32_t node, char out[META_IDENTITY_MAX])
{
	struct meta_stmt *s = meta_stmt(m, META_Q_NODE_IDENTITY);
	int rc = -ENOENT;

	meta_bind_int(s, 1, node);
	if (meta_step(s) == META_ROW) {
		meta_col_text_copy(s, 0, out, META_IDENTITY_MAX);
		rc = 0;
	}
	meta_reset(s);
	return rc;
}

int meta_node_identity(struct meta *m, uint32_t node, char out[META_IDENTITY_MAX])
{
	g_mutex_lock(&m->lock);
	int rc = identity_locked(m, node, out);

	g_mutex_unlock(&m->lock);
	return rc;
}

/* One pass over parts per slot: this runs when a node's store was lost,
 * not on any data path. */
int meta_mark_node_lost(struct meta *m, uint32_t node, uint64_t *lost)
{
	uint8_t packed[2] = {(uint8_t)node, (uint8_t)(node >> 8)};
	int rc = 0;

	*lost = 0;
	for (int i = 0; i < (int)G_N_ELEMENTS(((struct meta_part *)0)->nodes) && rc == 0; i++) {
		struct meta_stmt *s = meta_stmt(m, META_Q_NODE_LOST);

		meta_bind_int(s, 1, i);
		meta_bind_blob(s, 2, packed, sizeof(packed));
		meta_bind_int(s, 3, (int64_t)(UINT64_C(1) << i));
		rc = meta_run(m, s);
		if (rc == 0)
			*lost += (uint64_t)m->changes;
	}
	return rc;
}

/* 1: the identity was already recorded. */
static int identity_set_locked(struct meta *m, uint32_t node, const char *identity, uint64_t *lost)
{
	char was[META_IDENTITY_MAX] = "";
	struct meta_stmt *s;
	int rc = 0;

	*lost = 0;
	identity_locked(m, node, was);
	if (!strcmp(was, identity))
		return 1;
	if (was[0])
		rc = meta_mark_node_lost(m, node, lost);
	if (rc == 0) {
		s = meta_stmt(m, META_Q_NODE_SET);
		meta_bind_int(s, 1, node);
		meta_bind_text(s, 2, identity);
		meta_bind_int(s, 3, meta_now_ns());
		rc = meta_run(m, s);
	}
	return rc;
}

int meta_node_identity_set(struct meta *m, uint32_t node, const char *identity, uint64_t *lost)
{
	struct meta_tx t = META_TX_DURABLE(m);
	int rc = 0;

	*lost = 0;
	if (!identity[0] || strlen(identity) >= META_IDENTITY_MAX || node > UINT16_MAX)
		return -EINVAL;
	while (meta_tx_loop(&t, &rc))
		rc = identity_set_locked(m, node, identity, lost);
	if (rc)
		*lost = 0;
	return rc;
}

static int health_locked(struct meta *m, uint32_t node, int64_t *down_since, bool *out)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_NODE_HEALTH);
	int rc;

	meta_bind_int(s, 1, node);
	rc = meta_step(s);
	*down_since = rc == META_ROW ? meta_col_int(s, 0) : 0;
	*out = rc == META_ROW && meta_col_int(s, 1) != 0;
	meta_reset(s);
	return rc < 0 ? rc : 0;
}

int meta_node_health(struct meta *m, uint32_t node, int64_t *down_since, bool *out)
{
	g_mutex_lock(&m->lock);
	int rc = health_locked(m, node, down_since, out);

	g_mutex_unlock(&m->lock);
	return rc;
}

static int health_set(struct meta *m, uint32_t node, int64_t down_since, bool out)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_NODE_HEALTH_SET);

	meta_bind_int(s, 1, node);
	meta_bind_int(s, 2, down_since);
	meta_bind_int(s, 3, out);
	return meta_run(m, s);
}

/* 1: nothing to change. */
static int down_locked(struct meta *m, uint32_t node, int64_t now_s, unsigned down_out_s,
		       uint64_t *lost)
{
	int64_t since;
	bool out;
	int rc = health_locked(m, node, &since, &out);

	*lost = 0;
	if (rc == 0 && since == 0)
		return health_set(m, node, now_s, false);
	if (rc || out || !down_out_s || now_s - since < (int64_t)down_out_s)
		return rc ? rc : 1;
	rc = meta_mark_node_lost(m, node, lost);
	return rc ? rc : health_set(m, node, since, true);
}

int meta_node_down(struct meta *m, uint32_t node, int64_t now_s, unsigned down_out_s,
		   uint64_t *lost)
{
	struct meta_tx t = META_TX_DURABLE(m);
	int rc = 0;

	if (node > UINT16_MAX || now_s <= 0)
		return -EINVAL;
	while (meta_tx_loop(&t, &rc))
		rc = down_locked(m, node, now_s, down_out_s, lost);
	if (rc)
		*lost = 0;
	return rc;
}

int meta_node_up(struct meta *m, uint32_t node)
{
	int64_t since;
	bool out;
	int rc = meta_node_health(m, node, &since, &out);

	if (rc || !since) /* the common case: one read, no transaction */
		return rc;
	struct meta_tx t = META_TX(m);

	while (meta_tx_loop(&t, &rc))
		rc = meta_run_ints(m, META_Q_NODE_HEALTH_CLEAR, node, 0);
	return rc ? rc : 1;
}

int meta_shard_lost(struct meta *m, const uint8_t oid[16], uint32_t index, uint32_t shard,
		    uint32_t node, unsigned *marked)
{
	uint8_t packed[2] = {(uint8_t)node, (uint8_t)(node >> 8)};
	struct meta_tx t = META_TX_DURABLE(m);
	int rc = 0;

	*marked = 0;
	if (shard >= G_N_ELEMENTS(((struct meta_part *)0)->nodes) || node > UINT16_MAX)
		return -EINVAL;
	while (meta_tx_loop(&t, &rc)) {
		struct meta_stmt *s = meta_stmt(m, META_Q_SHARD_LOST);

		meta_bind_blob(s, 1, oid, 16);
		meta_bind_int(s, 2, index);
		meta_bind_int(s, 3, shard);
		meta_bind_int(s, 4, (int64_t)(UINT64_C(1) << shard));
		meta_bind_blob(s, 5, packed, sizeof(packed));
		rc = meta_run(m, s);
		*marked = rc == 0 ? (unsigned)m->changes : 0;
	}
	return rc;
}

int meta_cluster_id_set(struct meta *m, const char *id)
{
	struct meta_tx t = META_TX_DURABLE(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc)) {
		struct meta_stmt *s = meta_stmt(m, META_Q_CLUSTER_ID_SET);

		meta_bind_text(s, 1, id);
		rc = meta_run_done(s);
	}
	return rc;
}

int meta_cluster_check(struct meta *m, const char *id)
{
	g_autofree char *recorded = NULL;

	g_mutex_lock(&m->lock);
	struct meta_stmt *s = meta_stmt(m, META_Q_CLUSTER_ID);
	if (meta_step(s) == META_ROW) {
		size_t n;
		const char *text = meta_col_blob(s, 0, &n);

		recorded = g_strndup(text, n);
	}
	meta_reset(s);
	g_mutex_unlock(&m->lock);
	if (!id || !recorded || !strcmp(id, recorded))
		return 0;
	meta_set_open_error("the database holds the namespace of cluster %s, not of this cluster"
			    " file's (%s)", recorded, id);
	return -EXDEV;
}
