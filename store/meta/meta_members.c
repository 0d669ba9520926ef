/*
 * meta_members.c - membership (meta.h): the storage nodes every mount and
 * command builds its ring from, their addresses, zones, weights and
 * states, kept here so that one `shardfs node` command reaches every host
 * without editing its cluster file. Calls only the core.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

const char *meta_member_state_name(enum meta_member_state state)
{
	static const char *const names[] = {"active", "draining", "out"};

	return state <= META_MEMBER_OUT ? names[state] : "unknown";
}

static bool member_valid(const struct meta_member *mb)
{
	return mb->id >= 1 && mb->id <= UINT16_MAX && mb->host[0] && mb->port &&
	       memchr(mb->host, 0, sizeof(mb->host)) && memchr(mb->zone, 0, sizeof(mb->zone)) &&
	       mb->weight <= 1000 && mb->state <= META_MEMBER_OUT;
}

static void member_row(struct meta_stmt *s, struct meta_member *mb)
{
	memset(mb, 0, sizeof(*mb));
	mb->id = (uint32_t)meta_col_int(s, 0);
	meta_col_text_copy(s, 1, mb->host, sizeof(mb->host));
	mb->port = (uint16_t)meta_col_int(s, 2);
	meta_col_text_copy(s, 3, mb->zone, sizeof(mb->zone));
	mb->weight = (uint32_t)meta_col_int(s, 4);
	mb->state = (enum meta_member_state)meta_col_int(s, 5);
	mb->changed_ns = meta_col_int(s, 6);
}

static int members_locked(struct meta *m, GArray *out)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_MEMBERS);
	int rc;

	while ((rc = meta_step(s)) == META_ROW) {
		struct meta_member mb;

		member_row(s, &mb);
		g_array_append_val(out, mb);
	}
	meta_reset(s);
	return rc < 0 ? rc : 0;
}

int meta_members(struct meta *m, struct meta_member **out, unsigned *n)
{
	GArray *a = g_array_new(FALSE, FALSE, sizeof(struct meta_member));

	g_mutex_lock(&m->lock);
	int rc = members_locked(m, a);

	g_mutex_unlock(&m->lock);
	*n = rc ? 0 : a->len;
	*out = rc || !a->len ? NULL : (struct meta_member *)(void *)a->data;
	g_array_free(a, rc || !a->len);
	return rc;
}

/* How many members have id or the address host:port. */
static int taken_locked(struct meta *m, const struct meta_member *mb, int64_t *count)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_MEMBER_TAKEN);
	int rc;

	meta_bind_int(s, 1, mb->id);
	meta_bind_text(s, 2, mb->host);
	meta_bind_int(s, 3, mb->port);
	rc = meta_step(s);
	*count = rc == META_ROW ? meta_col_int(s, 0) : 0;
	meta_reset(s);
	return rc == META_ROW ? 0 : rc < 0 ? rc : -EIO;
}

static int insert_locked(struct meta *m, const struct meta_member *mb, enum meta_member_state st)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_MEMBER_ADD);

	meta_bind_int(s, 1, mb->id);
	meta_bind_text(s, 2, mb->host);
	meta_bind_int(s, 3, mb->port);
	meta_bind_text(s, 4, mb->zone);
	meta_bind_int(s, 5, mb->weight);
	meta_bind_int(s, 6, st);
	meta_bind_int(s, 7, meta_now_ns());
	return meta_run(m, s);
}

static int check_new_locked(struct meta *m, const struct meta_member *mb)
{
	int64_t taken;
	int rc = taken_locked(m, mb, &taken);

	return rc ? rc : taken ? -EEXIST : 0;
}

int meta_member_check_new(struct meta *m, const struct meta_member *mb)
{
	g_mutex_lock(&m->lock);
	int rc = check_new_locked(m, mb);

	g_mutex_unlock(&m->lock);
	return rc;
}

static int add_locked(struct meta *m, const struct meta_member *mb)
{
	int rc = check_new_locked(m, mb);

	return rc ? rc : insert_locked(m, mb, META_MEMBER_ACTIVE);
}

int meta_member_add(struct meta *m, const struct meta_member *mb)
{
	struct meta_tx t = META_TX_DURABLE(m);
	int rc = 0;

	if (!member_valid(mb))
		return -EINVAL;
	while (meta_tx_loop(&t, &rc))
		rc = add_locked(m, mb);
	return rc;
}

static int seed_locked(struct meta *m, const struct meta_member *list, unsigned n)
{
	GArray *now = g_array_new(FALSE, FALSE, sizeof(struct meta_member));
	int rc = members_locked(m, now);

	for (unsigned i = 0; rc == 0 && now->len == 0 && i < n; i++)
		rc = insert_locked(m, &list[i], list[i].state);
	g_array_free(now, TRUE);
	return rc;
}

int meta_members_seed(struct meta *m, const struct meta_member *list, unsigned n)
{
	struct meta_tx t = META_TX_DURABLE(m);
	int rc = 0;

	for (unsigned i = 0; i < n; i++)
		if (!member_valid(&list[i]))
			return -EINVAL;
	while (meta_tx_loop(&t, &rc))
		rc = seed_locked(m, list, n);
	return rc;
}

int meta_member_set_state(struct meta *m, uint32_t id, enum meta_member_state state)
{
	struct meta_tx t = META_TX_DURABLE(m);
	int rc = 0;

	if (state > META_MEMBER_OUT)
		return -EINVAL;
	while (meta_tx_loop(&t, &rc)) {
		struct meta_stmt *s = meta_stmt(m, META_Q_MEMBER_STATE);

		meta_bind_int(s, 1, id);
		meta_bind_int(s, 2, state);
		meta_bind_int(s, 3, meta_now_ns());
		rc = meta_run(m, s);
		if (rc == 0 && m->changes == 0)
			rc = -ENOENT;
	}
	return rc;
}

static int node_parts_locked(struct meta *m, uint32_t node, uint64_t *parts)
{
	uint8_t packed[2] = {(uint8_t)node, (uint8_t)(node >> 8)};
	int rc = 0;

	*parts = 0;
	for (int i = 0; i < (int)G_N_ELEMENTS(((struct meta_part *)0)->nodes) && rc == 0; i++) {
		struct meta_stmt *s = meta_stmt(m, META_Q_NODE_SLOT_PARTS);

		meta_bind_int(s, 1, i);
		meta_bind_blob(s, 2, packed, sizeof(packed));
		meta_bind_int(s, 3, (int64_t)(UINT64_C(1) << i));
		rc = meta_step(s);
		if (rc == META_ROW)
			*parts += (uint64_t)meta_col_int(s, 0);
		meta_reset(s);
		rc = rc == META_ROW ? 0 : rc < 0 ? rc : -EIO;
	}
	return rc;
}

int meta_node_parts(struct meta *m, uint32_t node, uint64_t *parts)
{
	g_mutex_lock(&m->lock);
	int rc = node > UINT16_MAX ? -EINVAL : node_parts_locked(m, node, parts);

	g_mutex_unlock(&m->lock);
	return rc;
}

static int remove_locked(struct meta *m, uint32_t id, bool force, uint64_t *parts)
{
	int rc = node_parts_locked(m, id, parts);

	if (rc == 0 && *parts && !force)
		return -EBUSY;
	if (rc == 0 && *parts)
		rc = meta_mark_node_lost(m, id, parts);
	if (rc)
		return rc;
	rc = meta_run_ints(m, META_Q_MEMBER_REMOVE, id, 0);
	if (rc == 0 && m->changes == 0)
		rc = -ENOENT;
	if (rc == 0)
		rc = meta_run_ints(m, META_Q_NODE_HEALTH_CLEAR, id, 0);
	return rc;
}

int meta_member_remove(struct meta *m, uint32_t id, bool force, uint64_t *parts)
{
	struct meta_tx t = META_TX_DURABLE(m);
	int rc = 0;

	*parts = 0;
	if (id > UINT16_MAX)
		return -EINVAL;
	while (meta_tx_loop(&t, &rc))
		rc = remove_locked(m, id, force, parts);
	return rc;
}
