/*
 * members.c - the store's view of the membership (store.h): which nodes
 * it reaches and the ring it places by, rebuilt when the metadata's
 * members change.
 *
 * A view is published whole with one atomic store and never changed
 * after, so writers placing a part, readers and listings use one
 * consistent list without a lock. A replaced view is kept until
 * store_close rather than freed when the last reader is done: the
 * membership changes a handful of times in a store's life (each view of
 * N nodes is about 6 KiB per node of ring), and no reader has to count
 * itself in and out on the data path.
 */
#define G_LOG_DOMAIN "shardfs-store"

#include "store_internal.h"

#include "common/error.h"

#include <errno.h>
#include <string.h>

static void node_clear(gpointer p)
{
	struct store_node *n = p;

	g_free(n->host);
	g_free(n->zone);
}

static GArray *nodes_new(void)
{
	GArray *a = g_array_new(FALSE, TRUE, sizeof(struct store_node));

	g_array_set_clear_func(a, node_clear);
	return a;
}

static void view_free(gpointer p)
{
	struct store_view *v = p;

	ring_free(v->ring);
	g_array_free(v->nodes, TRUE);
	g_free(v);
}

/* A view of nodes (taken); NULL with -EINVAL when no node takes data. */
static struct store_view *view_new(GArray *nodes, int *rc)
{
	struct ring_member *mem = g_new(struct ring_member, MAX(nodes->len, 1));
	struct store_view *v = g_new0(struct store_view, 1);

	for (guint i = 0; i < nodes->len; i++) {
		const struct store_node *n = &g_array_index(nodes, struct store_node, i);
		bool takes = n->state == META_MEMBER_ACTIVE;

		mem[i] = (struct ring_member){n->id, takes ? n->weight : 0, n->zone};
	}
	v->nodes = nodes;
	*rc = ring_new(mem, nodes->len, &v->ring);
	g_free(mem);
	if (*rc) {
		view_free(v);
		return NULL;
	}
	return v;
}

const struct store_view *store_view(struct store *s)
{
	return __atomic_load_n(&s->view, __ATOMIC_ACQUIRE);
}

const struct store_node *store_nodes(struct store *s, unsigned *n)
{
	const struct store_view *v = store_view(s);

	*n = v->nodes->len;
	return (const struct store_node *)(const void *)v->nodes->data;
}

static gint by_id(gconstpointer a, gconstpointer b)
{
	uint32_t x = ((const struct meta_member *)a)->id, y = ((const struct meta_member *)b)->id;

	return x < y ? -1 : x > y;
}

void store_cluster_members(const struct net_cluster *c, GArray *out)
{
	for (guint i = 0; i < c->nodes->len; i++) {
		const struct net_node_conf *n = &g_array_index(c->nodes, struct net_node_conf, i);
		struct meta_member mb = {.id = n->id, .port = n->port, .weight = n->weight};

		g_strlcpy(mb.host, n->host, sizeof(mb.host));
		g_strlcpy(mb.zone, n->zone ? n->zone : "", sizeof(mb.zone));
		g_array_append_val(out, mb);
	}
	g_array_sort(out, by_id);
}

static GArray *nodes_of(const struct meta_member *list, unsigned n)
{
	GArray *nodes = nodes_new();

	for (unsigned i = 0; i < n; i++) {
		const struct meta_member *mb = &list[i];
		struct store_node node = {mb->id, g_strdup(mb->host), mb->port, mb->weight,
					  mb->zone[0] ? g_strdup(mb->zone) : NULL, mb->state};

		g_array_append_val(nodes, node);
	}
	return nodes;
}

int store_view_init(struct store *s)
{
	GArray *members = g_array_new(FALSE, FALSE, sizeof(struct meta_member));
	int rc;

	store_cluster_members(s->cluster, members);
	s->view = view_new(nodes_of((struct meta_member *)(void *)members->data, members->len), &rc);
	g_array_free(members, TRUE);
	return rc;
}

void store_views_free(struct store *s)
{
	if (s->view)
		view_free(s->view);
	g_slist_free_full(s->old_views, view_free);
	s->view = NULL;
	s->old_views = NULL;
}

static int read_members(struct store *s, struct meta *m, struct meta_member **list, unsigned *n)
{
	int rc = meta_members(m, list, n);

	if (rc || *n)
		return rc;
	GArray *seed = g_array_new(FALSE, FALSE, sizeof(struct meta_member));

	store_cluster_members(s->cluster, seed);
	rc = meta_members_seed(m, (struct meta_member *)(void *)seed->data, seed->len);
	g_array_free(seed, TRUE);
	return rc ? rc : meta_members(m, list, n);
}

static bool same_node(const struct store_node *a, const struct meta_member *b)
{
	return a->id == b->id && !strcmp(a->host, b->host) && a->port == b->port &&
	       !g_strcmp0(a->zone, b->zone[0] ? b->zone : NULL) && a->weight == b->weight &&
	       a->state == b->state;
}

static bool same_members(const struct store_view *v, const struct meta_member *list, unsigned n)
{
	if (v->nodes->len != n)
		return false;
	for (unsigned i = 0; i < n; i++)
		if (!same_node(&g_array_index(v->nodes, struct store_node, i), &list[i]))
			return false;
	return true;
}

static void publish(struct store *s, struct store_view *v)
{
	for (guint i = 0; i < v->nodes->len; i++) {
		const struct store_node *n = &g_array_index(v->nodes, struct store_node, i);

		net_pool_set_node(s->pool, n->id, n->host, n->port);
	}
	g_mutex_lock(&s->lock);
	s->old_views = g_slist_prepend(s->old_views, s->view);
	__atomic_store_n(&s->view, v, __ATOMIC_RELEASE);
	g_mutex_unlock(&s->lock);
}

static void log_view(const struct store_view *v)
{
	unsigned by_state[3] = {0};

	for (guint i = 0; i < v->nodes->len; i++)
		by_state[g_array_index(v->nodes, struct store_node, i).state]++;
	g_message("membership: %u nodes, %u active, %u draining, %u out", v->nodes->len,
		  by_state[META_MEMBER_ACTIVE], by_state[META_MEMBER_DRAINING],
		  by_state[META_MEMBER_OUT]);
}

int store_follow_members(struct store *s, struct meta *m)
{
	struct meta_member *list = NULL;
	unsigned n = 0;
	int rc = read_members(s, m, &list, &n);

	if (rc == 0 && n == 0)
		rc = -ENOENT;
	bool news = __atomic_exchange_n(&s->followed, rc == 0, __ATOMIC_RELAXED);

	if (rc || same_members(store_view(s), list, n)) {
		g_free(list);
		return rc;
	}
	struct store_view *v = view_new(nodes_of(list, n), &rc);

	g_free(list);
	if (!v) {
		g_warning("membership: no active node with a weight: placements stay as they were");
		return rc;
	}
	publish(s, v);
	if (news)
		log_view(v);
	return 1;
}
