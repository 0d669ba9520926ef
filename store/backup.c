/*
 * backup.c - backups of the metadata kept in the cluster itself, so that
 * losing the metadata database loses only what changed since the last one.
 *
 * A backup is a dump of the namespace (meta_dump) written as an object on
 * the nodes, erasure coded and placed like any file, under an object id no
 * file has: "SFBACKUP" and the backup's time in nanoseconds, big-endian,
 * so that a node lists a cluster's backups in time order. Its manifest
 * (the catalog: length, and per part its length, checksum, code and nodes)
 * is put whole on every node as part STORE_BACKUP_CATALOG_PART, shard 0,
 * of the same id: with nothing but the cluster file and its certificates,
 * any one node that answers tells where every shard of the backup is.
 * The dump checks itself (its SHA-256), so the catalog is plain JSON.
 */
#define G_LOG_DOMAIN "shardfs-store"

#include "common/error.h"
#include "store_internal.h"

#include <errno.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#define MAGIC "SFBACKUP"
#define CATALOG_FORMAT "shardfs-backup"
#define COPY_CHUNK (1u << 20)

bool store_backup_oid(const uint8_t oid[16])
{
	return memcmp(oid, MAGIC, 8) == 0;
}

static void backup_oid(uint64_t seq, uint8_t oid[16])
{
	memcpy(oid, MAGIC, 8);
	for (int i = 0; i < 8; i++)
		oid[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

static uint64_t oid_seq(const uint8_t oid[16])
{
	uint64_t seq = 0;

	for (int i = 0; i < 8; i++)
		seq = seq << 8 | oid[8 + i];
	return seq;
}

/* ---- the catalog ---- */

static JsonNode *part_json(const struct meta_part *p)
{
	JsonObject *o = json_object_new();
	JsonArray *nodes = json_array_new();
	char sum[33];

	for (int i = 0; i < 16; i++)
		snprintf(sum + 2 * i, 3, "%02x", p->checksum[i]);
	for (unsigned i = 0; i < (unsigned)(p->k + p->m); i++)
		json_array_add_int_element(nodes, p->nodes[i]);
	json_object_set_int_member(o, "index", p->index);
	json_object_set_int_member(o, "length", (gint64)p->length);
	json_object_set_string_member(o, "checksum", sum);
	json_object_set_int_member(o, "k", p->k);
	json_object_set_int_member(o, "m", p->m);
	json_object_set_array_member(o, "nodes", nodes);
	json_object_set_int_member(o, "missing", (gint64)p->missing);
	JsonNode *node = json_node_new(JSON_NODE_OBJECT);
	json_node_take_object(node, o);
	return node;
}

static char *catalog_json(const struct store_backup *b, const struct meta_part *parts,
			  unsigned nparts, gsize *len)
{
	JsonObject *o = json_object_new();
	JsonArray *list = json_array_new();

	for (unsigned i = 0; i < nparts; i++)
		json_array_add_element(list, part_json(&parts[i]));
	json_object_set_string_member(o, "format", CATALOG_FORMAT);
	json_object_set_int_member(o, "version", 1);
	json_object_set_int_member(o, "seq", (gint64)b->seq);
	json_object_set_int_member(o, "length", (gint64)b->length);
	json_object_set_int_member(o, "rows", (gint64)b->rows);
	json_object_set_array_member(o, "parts", list);
	JsonNode *root = json_node_new(JSON_NODE_OBJECT);
	json_node_take_object(root, o);
	JsonGenerator *gen = json_generator_new();
	json_generator_set_root(gen, root);
	char *text = json_generator_to_data(gen, len);
	g_object_unref(gen);
	json_node_unref(root);
	return text;
}

static bool get_uint(JsonObject *o, const char *name, uint64_t max, uint64_t *v)
{
	JsonNode *n = json_object_get_member(o, name);

	if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64 ||
	    json_node_get_int(n) < 0 || (uint64_t)json_node_get_int(n) > max)
		return false;
	*v = (uint64_t)json_node_get_int(n);
	return true;
}

static bool part_from_json(JsonNode *node, const uint8_t oid[16], size_t part_size,
			   struct meta_part *p)
{
	JsonObject *o = JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;
	JsonNode *sum = o ? json_object_get_member(o, "checksum") : NULL;
	JsonNode *nodes = o ? json_object_get_member(o, "nodes") : NULL;
	uint64_t index, length, k, m, missing, id;
	const char *hex;

	memset(p, 0, sizeof(*p));
	if (!o || !get_uint(o, "index", UINT32_MAX - 1, &index) ||
	    !get_uint(o, "length", part_size, &length) || !get_uint(o, "k", 32, &k) ||
	    !get_uint(o, "m", 32, &m) || k == 0 || k + m > 64 ||
	    !get_uint(o, "missing", INT64_MAX, &missing) || !sum ||
	    json_node_get_value_type(sum) != G_TYPE_STRING ||
	    strlen(hex = json_node_get_string(sum)) != 32 || !nodes ||
	    !JSON_NODE_HOLDS_ARRAY(nodes) || json_array_get_length(json_node_get_array(nodes)) != k + m)
		return false;
	for (int i = 0; i < 16; i++) {
		int hi = g_ascii_xdigit_value(hex[2 * i]), lo = g_ascii_xdigit_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		p->checksum[i] = (uint8_t)(hi << 4 | lo);
	}
	JsonArray *list = json_node_get_array(nodes);
	for (unsigned i = 0; i < k + m; i++) {
		JsonNode *n = json_array_get_element(list, i);

		if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64 ||
		    (id = (uint64_t)json_node_get_int(n)) == 0 || id > UINT16_MAX)
			return false;
		p->nodes[i] = (uint16_t)id;
	}
	memcpy(p->object_id, oid, 16);
	p->index = (uint32_t)index;
	p->length = length;
	p->k = (uint8_t)k;
	p->m = (uint8_t)m;
	p->missing = missing;
	return true;
}

/* The catalog's parts, checked: contiguous from 0, of part size but the
 * last, adding up to its length. */
static bool catalog_parse(struct store *s, const void *text, size_t len, uint64_t seq,
			  struct store_backup *b, struct meta_part **parts, unsigned *nparts)
{
	JsonParser *parser = json_parser_new_immutable();
	uint8_t oid[16];
	bool ok = json_parser_load_from_data(parser, text, (gssize)len, NULL);
	JsonNode *root = ok ? json_parser_get_root(parser) : NULL;
	JsonObject *o = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
	JsonNode *list = o ? json_object_get_member(o, "parts") : NULL;
	const char *format = o ? json_object_get_string_member_with_default(o, "format", "") : "";
	uint64_t version = 0, at = 0;

	backup_oid(seq, oid);
	ok = o && !strcmp(format, CATALOG_FORMAT) && get_uint(o, "version", 1, &version) &&
	     get_uint(o, "seq", UINT64_MAX >> 1, &b->seq) && b->seq == seq &&
	     get_uint(o, "length", INT64_MAX, &b->length) && get_uint(o, "rows", INT64_MAX, &b->rows) &&
	     list && JSON_NODE_HOLDS_ARRAY(list);
	unsigned n = ok ? json_array_get_length(json_node_get_array(list)) : 0;
	*parts = g_new0(struct meta_part, n ? n : 1);
	for (unsigned i = 0; ok && i < n; i++) {
		ok = part_from_json(json_array_get_element(json_node_get_array(list), i), oid,
				    s->part_size, &(*parts)[i]) &&
		     (*parts)[i].index == i && (i + 1 == n || (*parts)[i].length == s->part_size);
		at += ok ? (*parts)[i].length : 0;
	}
	ok = ok && at == b->length;
	*nparts = n;
	if (!ok)
		g_clear_pointer(parts, g_free);
	g_object_unref(parser);
	return ok;
}

/* ---- node calls ---- */

static struct net_key catalog_key(uint64_t seq)
{
	struct net_key k = {.part = STORE_BACKUP_CATALOG_PART, .shard = 0};

	backup_oid(seq, k.object_id);
	return k;
}

/* Puts the catalog on every node; how many took it. */
static unsigned put_catalog(struct store *s, uint64_t seq, const char *text, size_t len)
{
	unsigned took = 0;

	unsigned count;
	const struct store_node *nodes = store_nodes(s, &count);

	for (unsigned i = 0; i < count; i++) {
		const struct store_node *n = &nodes[i];
		struct net_call c = {.req = {.op = NET_OP_PUT, .key = catalog_key(seq),
					     .body_len = len}, .body = text};

		took += net_pool_call(s->pool, n->id, &c) == 0;
	}
	return took;
}

static void delete_catalog(struct store *s, uint64_t seq)
{
	unsigned count;
	const struct store_node *nodes = store_nodes(s, &count);

	for (unsigned i = 0; i < count; i++) {
		const struct store_node *n = &nodes[i];
		struct net_call c = {.req = {.op = NET_OP_DELETE, .key = catalog_key(seq)}};

		net_pool_call(s->pool, n->id, &c);
	}
}

/* The catalog of backup seq from the first node that has it, parsed. */
static int get_catalog(struct store *s, uint64_t seq, struct store_backup *b,
		       struct meta_part **parts, unsigned *nparts)
{
	int rc = -ENOENT;

	unsigned count;
	const struct store_node *nodes = store_nodes(s, &count);

	for (unsigned i = 0; i < count; i++) {
		const struct store_node *n = &nodes[i];
		struct net_call c = {.req = {.op = NET_OP_GET, .key = catalog_key(seq),
					     .length = NET_MAX_SHARD}};

		c.resp_buf = g_malloc(NET_MAX_SHARD);
		c.resp_cap = NET_MAX_SHARD;
		if (net_pool_call(s->pool, n->id, &c) == 0)
			rc = catalog_parse(s, c.resp_buf, c.resp.body_len, seq, b, parts, nparts)
				     ? 0 : -EBADMSG;
		g_free(c.resp_buf);
		if (rc == 0)
			return 0;
	}
	return rc;
}

/* A listed shard: a backup's catalog goes into seqs (a set); false past
 * the backups, keys being in order. */
static bool note_backup(void *seqs, const uint8_t *entry)
{
	struct net_key k;

	net_key_unpack(entry, &k);
	if (!store_backup_oid(k.object_id))
		return false;
	if (k.part == STORE_BACKUP_CATALOG_PART)
		g_hash_table_add(seqs, g_memdup2(&(uint64_t){oid_seq(k.object_id)}, sizeof(uint64_t)));
	return true;
}

/* Adds the backups node lists to seqs (a set); false if it did not answer. */
static bool list_node(struct store *s, uint32_t node, GHashTable *seqs)
{
	struct net_key first = {.part = 0, .shard = 0};
	uint8_t from[NET_KEY_PACKED_SIZE];

	memcpy(first.object_id, MAGIC, 8);
	memset(first.object_id + 8, 0, 8);
	net_key_pack(&first, from);
	return store_node_list(s, node, NET_OP_LIST, NET_LIST_ENTRY_SIZE, NET_MAX_LIST, from,
			       note_backup, seqs);
}

static gint newest_first(gconstpointer a, gconstpointer b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

int store_backup_list(struct store *s, uint64_t **seqs, unsigned *n)
{
	GHashTable *set = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
	unsigned answered = 0;

	unsigned count;
	const struct store_node *nodes = store_nodes(s, &count);

	for (unsigned i = 0; i < count; i++)
		answered += list_node(s, nodes[i].id, set);
	GList *keys = g_list_sort(g_hash_table_get_keys(set), newest_first);
	*n = g_list_length(keys);
	*seqs = g_new(uint64_t, *n ? *n : 1);
	unsigned i = 0;
	for (GList *l = keys; l; l = l->next)
		(*seqs)[i++] = *(uint64_t *)l->data;
	g_list_free(keys);
	g_hash_table_destroy(set);
	return answered ? 0 : STORE_EUNAVAIL;
}

/* ---- writing and reading ---- */

static ssize_t to_writer(void *cookie, const char *buf, size_t len)
{
	return store_writer_write(cookie, buf, len) == 0 ? (ssize_t)len : -1;
}

/* The dump of m into a new object; its parts in *parts. */
static int write_dump(struct store *s, struct meta *m, const uint8_t oid[16], struct store_backup *b,
		      struct meta_part **parts, unsigned *nparts, GError **err)
{
	struct store_writer *w;
	int rc = store_writer_new(s, oid, 0, &w);

	if (rc) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot write to the nodes: %s",
			    common_strerror(rc));
		return rc;
	}
	FILE *f = fopencookie(w, "w", (cookie_io_functions_t){.write = to_writer});
	setvbuf(f, NULL, _IOFBF, COPY_CHUNK);
	rc = meta_dump(m, f, &b->rows, err);
	if (fclose(f) && rc == 0) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "the nodes did not take the dump");
		rc = STORE_EUNAVAIL;
	}
	if (rc == 0 && (rc = store_writer_finish(w, parts, nparts)))
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "the nodes did not take the dump: %s",
			    common_strerror(rc));
	store_writer_free(w);
	b->length = 0;
	for (unsigned i = 0; rc == 0 && i < *nparts; i++)
		b->length += (*parts)[i].length;
	return rc;
}

/* Deletes every backup but the keep newest. */
static void prune(struct store *s, unsigned keep)
{
	uint64_t *seqs;
	unsigned n;

	if (store_backup_list(s, &seqs, &n))
		return;
	for (unsigned i = keep; i < n; i++) {
		struct store_backup b;
		struct meta_part *parts;
		unsigned nparts;

		if (get_catalog(s, seqs[i], &b, &parts, &nparts) == 0) {
			int rc = store_parts_delete(s, parts, nparts);

			g_free(parts);
			if (rc)
				continue; /* a node is away: the next backup prunes it */
		}
		delete_catalog(s, seqs[i]);
	}
	g_free(seqs);
}

int store_backup_write(struct store *s, struct meta *m, unsigned keep, struct store_backup *out,
		       GError **err)
{
	struct store_backup b = {.seq = (uint64_t)g_get_real_time() * 1000};
	struct meta_part *parts = NULL;
	unsigned nparts = 0;
	uint8_t oid[16];
	gsize len;

	backup_oid(b.seq, oid);
	int rc = write_dump(s, m, oid, &b, &parts, &nparts, err);
	if (rc) {
		g_free(parts);
		return rc;
	}
	g_autofree char *catalog = catalog_json(&b, parts, nparts, &len);
	if (put_catalog(s, b.seq, catalog, len) == 0) {
		store_parts_delete(s, parts, nparts);
		g_free(parts);
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "no node took the backup's catalog");
		return STORE_EUNAVAIL;
	}
	g_free(parts);
	prune(s, keep ? keep : 1);
	if (out)
		*out = b;
	return 0;
}

int store_backup_read(struct store *s, uint64_t seq, FILE *out, struct store_backup *info,
		      GError **err)
{
	struct store_backup b;
	struct meta_part *parts;
	struct store_reader *r = NULL;
	unsigned nparts;
	int rc = get_catalog(s, seq, &b, &parts, &nparts);

	if (rc) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "%s",
			    rc == -EBADMSG ? "its catalog is damaged" : "no node has its catalog");
		return rc;
	}
	rc = store_reader_new(s, parts, nparts, &r);
	uint8_t *buf = g_malloc(COPY_CHUNK);
	for (uint64_t at = 0; rc == 0 && at < b.length;) {
		ssize_t got = store_reader_read(r, at, buf, COPY_CHUNK);

		if (got <= 0)
			rc = got < 0 ? (int)got : STORE_EUNAVAIL;
		else if (fwrite(buf, 1, (size_t)got, out) != (size_t)got)
			rc = -EIO;
		at += got > 0 ? (uint64_t)got : 0;
	}
	if (rc)
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "reading it: %s", common_strerror(rc));
	g_free(buf);
	if (r)
		store_reader_free(r);
	g_free(parts);
	if (info)
		*info = b;
	return rc;
}
