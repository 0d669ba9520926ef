/*
 * scrub.c - the cluster's scrub (store.h, `shardfs scrub`): the shards
 * the nodes hold against the shards the manifests name.
 *
 * 1. Every node lists its shards with their age (LIST_AGED, a page at a
 *    time) into one table of (node, key) -> age.
 * 2. The manifests are walked a page of parts at a time (meta_parts_list).
 *    Each shard a part places on a node that answered is taken out of
 *    the table; one the node did not list is asked for again (STAT: it
 *    may have been written after the listing), and if it is still not
 *    there it is marked missing (meta_shard_lost), for repair to rebuild.
 *    With deep, each part is also read whole and checked against its
 *    checksum (store_part_read): a corrupt shard is read around, and its
 *    node notes it for the next repair round to rewrite (repair.c asks
 *    each node what it found bad); a part that does not read is lost.
 * 3. What is left in the table no manifest names: an orphan (a write that
 *    died before its commit, the old copy of a moved or repaired shard, a
 *    replaced part whose garbage entry was lost). Orphans at least grace
 *    seconds old are deleted; younger ones may belong to a write still in
 *    progress, whose manifest is not committed yet, and are kept. Backups
 *    of the metadata (store_backup_oid) are never orphans.
 *
 * Memory: the table holds every shard of the cluster, about 100 bytes
 * each (a million parts of 2+1: 300 MB); the manifests are read a page
 * at a time.
 */
#define G_LOG_DOMAIN "shardfs-store"

#include "store.h"
#include "store_internal.h"

#include <errno.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define LIST_PAGE 4096u
#define PARTS_PAGE 256u

/* A table key: the node and the packed shard key. */
struct held {
	uint16_t node;
	uint8_t key[NET_KEY_PACKED_SIZE];
};

static guint held_hash(gconstpointer p)
{
	return (guint)XXH3_64bits(p, sizeof(struct held));
}

static gboolean held_equal(gconstpointer a, gconstpointer b)
{
	return memcmp(a, b, sizeof(struct held)) == 0;
}

static struct held held_of(uint32_t node, const struct net_key *k)
{
	struct held h = {.node = (uint16_t)node};

	net_key_pack(k, h.key);
	return h;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

struct listing {
	uint32_t node;
	GHashTable *table;
	uint64_t *backups;
};

/* A listed shard into the table (value: age + 1), but for the shards of
 * backups, which are counted. */
static bool note_listed(void *arg, const uint8_t *entry)
{
	struct listing *l = arg;
	struct net_key k;
	struct held *h;

	net_key_unpack(entry, &k);
	if (store_backup_oid(k.object_id)) {
		++*l->backups;
		return true;
	}
	h = g_new(struct held, 1);
	h->node = (uint16_t)l->node;
	memcpy(h->key, entry, NET_KEY_PACKED_SIZE);
	g_hash_table_insert(l->table, h,
			    GSIZE_TO_POINTER((gsize)le32(entry + NET_LIST_ENTRY_SIZE) + 1));
	return true;
}

/* Adds what node lists to table, *backups counting the shards of backups;
 * false if it did not answer every page. */
static bool list_node(struct store *s, uint32_t node, GHashTable *table, uint64_t *backups)
{
	struct listing l = {node, table, backups};

	return store_node_list(s, node, NET_OP_LIST_AGED, NET_LIST_AGED_ENTRY_SIZE, LIST_PAGE, NULL,
			       note_listed, &l);
}

/* Whether node holds shard k now (asked again: written after the list). */
static bool node_has(struct store *s, uint32_t node, const struct net_key *k)
{
	struct net_call c = {.req = {.op = NET_OP_STAT, .key = *k}};

	return net_pool_call(s->pool, node, &c) == 0;
}

struct walk {
	struct store *s;
	struct meta *m;
	const struct store_scrub_options *o;
	struct store_scrub_stats *st;
	GHashTable *table;
	GHashTable *answered; /* node ids */
};

static void check_shard(struct walk *w, const struct meta_part *p, unsigned i)
{
	uint32_t node = p->nodes[i];
	struct net_key k = {.part = p->index, .shard = (uint16_t)i};

	memcpy(k.object_id, p->object_id, 16);
	struct held h = held_of(node, &k);

	w->st->shards_named++;
	/* a shard marked missing is repair's, and so is what its node holds
	 * under its key (a bad copy repair writes over) */
	if (g_hash_table_remove(w->table, &h) || meta_shard_missing(p, i) ||
	    !g_hash_table_contains(w->answered, GUINT_TO_POINTER(node)) || node_has(w->s, node, &k))
		return;
	unsigned marked = 0;
	char hex[33];

	w->st->missing_found++;
	if (w->o->dry_run || meta_shard_lost(w->m, p->object_id, p->index, i, node, &marked))
		return;
	w->st->missing_marked += marked;
	store_oid_hex(p->object_id, hex);
	g_message("scrub: node %u lacks shard %u of part %u of object %s: marked for repair",
		  node, i, p->index, hex);
}

static void check_part(struct walk *w, uint64_t ino, const struct meta_part *p)
{
	for (unsigned i = 0; i < (unsigned)(p->k + p->m); i++)
		check_shard(w, p, i);
	if (!w->o->deep)
		return;
	uint8_t *buf = g_malloc(MAX(p->length, 1));
	int rc = store_part_read(w->s, p, 0, p->length, buf);

	g_free(buf);
	w->st->parts_read++;
	if (rc == 0)
		return;
	w->st->parts_unreadable++;
	if (w->st->unreadable_inos->len < STORE_SCRUB_INOS_MAX)
		g_array_append_val(w->st->unreadable_inos, ino);
	g_warning("scrub: part %u of inode %" G_GUINT64_FORMAT " does not read: %s", p->index, ino,
		  common_strerror(rc));
}

int store_walk_parts(struct meta *m, store_part_fn fn, void *arg,
		     store_scrub_progress_fn progress, void *progress_arg)
{
	uint64_t after_ino = 0, total = 0, bytes, done = 0;
	uint32_t after_index = 0;
	int rc = meta_parts_count(m, &total, &bytes);

	for (unsigned n = PARTS_PAGE; rc == 0 && n == PARTS_PAGE;) {
		struct meta_degraded *page;

		rc = meta_parts_list(m, after_ino, after_index, PARTS_PAGE, &page, &n);
		for (unsigned i = 0; rc == 0 && i < n; i++)
			fn(arg, page[i].ino, &page[i].part);
		if (rc == 0 && n) {
			after_ino = page[n - 1].ino;
			after_index = page[n - 1].part.index;
		}
		g_free(page);
		done += rc == 0 ? n : 0;
		if (progress)
			progress(progress_arg, done, MAX(total, done));
	}
	return rc;
}

static void scrub_part(void *arg, uint64_t ino, const struct meta_part *p)
{
	struct walk *w = arg;

	check_part(w, ino, p);
	w->st->parts++;
	w->st->bytes += p->length;
}

/* What no manifest named: deleted when old enough. */
static void collect_orphans(struct walk *w)
{
	GHashTableIter it;
	gpointer key, value;

	g_hash_table_iter_init(&it, w->table);
	while (g_hash_table_iter_next(&it, &key, &value)) {
		const struct held *h = key;
		uint64_t age = GPOINTER_TO_SIZE(value) - 1;
		struct net_key k;

		net_key_unpack(h->key, &k);
		w->st->orphans_found++;
		if (age < w->o->grace_s) {
			w->st->orphans_young++;
			continue;
		}
		if (w->o->dry_run)
			continue;
		struct net_call c = {.req = {.op = NET_OP_DELETE, .key = k}};
		int rc = net_pool_call(w->s->pool, h->node, &c);

		if (rc == 0 || rc == -ENOENT)
			w->st->orphans_deleted++;
	}
}

void store_scrub_stats_free(struct store_scrub_stats *st)
{
	if (st->unreadable_inos)
		g_array_free(st->unreadable_inos, TRUE);
	st->unreadable_inos = NULL;
}

int store_scrub(struct store *s, struct meta *m, const struct store_scrub_options *o,
		struct store_scrub_stats *st, store_scrub_progress_fn progress, void *arg)
{
	struct walk w = {s, m, o, st, g_hash_table_new_full(held_hash, held_equal, g_free, NULL),
			 g_hash_table_new(NULL, NULL)};
	const GArray *nodes = store_view(s)->nodes;

	memset(st, 0, sizeof(*st));
	st->unreadable_inos = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	st->nodes = nodes->len;
	for (guint i = 0; i < nodes->len; i++) {
		uint32_t id = g_array_index(nodes, struct store_node, i).id;
		GHashTable *mine = g_hash_table_new_full(held_hash, held_equal, g_free, NULL);
		uint64_t backups = 0;

		if (list_node(s, id, mine, &backups)) {
			st->backup_shards += backups;
			GHashTableIter it;
			gpointer key, value;

			g_hash_table_iter_init(&it, mine);
			while (g_hash_table_iter_next(&it, &key, &value)) {
				g_hash_table_iter_steal(&it);
				g_hash_table_insert(w.table, key, value);
			}
			g_hash_table_add(w.answered, GUINT_TO_POINTER(id));
			st->nodes_answered++;
		} else {
			g_warning("scrub: node %u does not answer: its shards are not checked", id);
		}
		g_hash_table_destroy(mine);
	}
	st->shards_listed = g_hash_table_size(w.table);
	struct store_stats before, after;

	store_get_stats(s, &before);
	int rc = store_walk_parts(m, scrub_part, &w, progress, arg);

	store_get_stats(s, &after);
	st->corrupt_reads = after.corrupt_shards - before.corrupt_shards;

	if (rc == 0)
		collect_orphans(&w);
	g_hash_table_destroy(w.table);
	g_hash_table_destroy(w.answered);
	return rc;
}
