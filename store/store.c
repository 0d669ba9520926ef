/*
 * store.c - opening the object layer: cluster file, TLS identity,
 * connection pool, ring and erasure codes; node suspicion; deletes.
 *
 * Suspicion is soft state: a node that failed a request or missed a hedge
 * deadline is avoided by new placements and asked last by reads for
 * suspect_ms, then tried again. Nothing is decided for good on it.
 */
#define G_LOG_DOMAIN "shardfs-store"

#include "store_internal.h"

#include "common/metrics.h"

#include "common/waiter.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/random.h>

void store_options_default(struct store_options *o)
{
	*o = (struct store_options){
		.max_inflight = 4,
		.put_timeout_ms = 10000,
		.hedge_ms = 300,
		.read_timeout_ms = 10000,
		.readahead = 2,
		.suspect_ms = 10000,
	};
}

void store_object_id_new(uint8_t oid[16])
{
	if (getrandom(oid, 16, 0) != 16)
		for (int i = 0; i < 16; i++)
			oid[i] = (uint8_t)g_random_int();
}

void store_oid_hex(const uint8_t oid[16], char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", oid[i]);
}

void store_part_checksum(const void *data, size_t len, uint8_t out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(data, len));
	memcpy(out, c.digest, 16);
}

int store_code(struct store *s, unsigned k, unsigned m, const struct erasure **out)
{
	gpointer key = GUINT_TO_POINTER(k << 8 | m);
	int rc = 0;

	if (k < 1 || m < 1 || k + m > ERASURE_MAX_FRAGMENTS)
		return -EINVAL;
	g_mutex_lock(&s->lock);
	struct erasure *e = g_hash_table_lookup(s->codes, key);
	if (!e && (rc = erasure_new(k, m, NULL, &e)) == 0)
		g_hash_table_insert(s->codes, key, e);
	g_mutex_unlock(&s->lock);
	if (rc == 0)
		*out = e;
	return rc;
}

/* node -> until (monotonic us) in table, s->lock */
static void avoid(struct store *s, GHashTable *table, uint32_t node, unsigned ms)
{
	gint64 *until = g_new(gint64, 1);

	*until = g_get_monotonic_time() + (gint64)ms * 1000;
	g_mutex_lock(&s->lock);
	g_hash_table_replace(table, GUINT_TO_POINTER(node), until);
	g_mutex_unlock(&s->lock);
}

void store_suspect(struct store *s, uint32_t node)
{
	avoid(s, s->suspect, node, s->opt.suspect_ms);
}

void store_put_failed(struct store *s, uint32_t node, int status)
{
	store_suspect(s, node);
	if (status == -ENOSPC)
		avoid(s, s->full, node, STORE_FULL_AVOID_MS);
}

/* Whether key's time in table is still to come; s->lock held. */
static bool avoided(GHashTable *table, gconstpointer key, gint64 now)
{
	const gint64 *until = g_hash_table_lookup(table, key);

	return until && *until > now;
}

bool store_is_suspect(struct store *s, uint32_t node)
{
	g_mutex_lock(&s->lock);
	bool yes = avoided(s->suspect, GUINT_TO_POINTER(node), g_get_monotonic_time());
	g_mutex_unlock(&s->lock);
	return yes;
}

size_t store_suspects(struct store *s, uint32_t *out, size_t max)
{
	GHashTableIter it;
	gpointer key, val;
	gint64 now = g_get_monotonic_time();
	size_t n = 0;

	g_mutex_lock(&s->lock);
	GHashTable *tables[] = {s->suspect, s->full};

	for (size_t t = 0; t < G_N_ELEMENTS(tables); t++) {
		g_hash_table_iter_init(&it, tables[t]);
		while (g_hash_table_iter_next(&it, &key, &val)) /* a full suspect once */
			if (*(gint64 *)val > now && n < max && (t == 0 || !avoided(s->suspect, key, now)))
				out[n++] = GPOINTER_TO_UINT(key);
	}
	g_mutex_unlock(&s->lock);
	return n;
}

/* ---- big buffers ---- */

#define BUF_CACHE_BYTES (16u << 20)

struct spare_buf {
	void *p;
	size_t size;
};

void *store_buf_alloc(struct store *s, size_t size)
{
	void *p = NULL;

	g_mutex_lock(&s->buf_lock);
	for (GSList *l = s->bufs; l; l = l->next) {
		struct spare_buf *b = l->data;

		if (b->size == size) {
			p = b->p;
			s->bufs_bytes -= size;
			s->bufs = g_slist_delete_link(s->bufs, l);
			g_free(b);
			break;
		}
	}
	g_mutex_unlock(&s->buf_lock);
	return p ? p : g_try_malloc(size ? size : 1);
}

void store_buf_free(struct store *s, void *p, size_t size)
{
	if (!p)
		return;
	g_mutex_lock(&s->buf_lock);
	if (s->bufs_bytes + size <= BUF_CACHE_BYTES) {
		struct spare_buf *b = g_new(struct spare_buf, 1);

		*b = (struct spare_buf){p, size};
		s->bufs = g_slist_prepend(s->bufs, b);
		s->bufs_bytes += size;
		p = NULL;
	}
	g_mutex_unlock(&s->buf_lock);
	g_free(p);
}

static void free_spare(gpointer data)
{
	struct spare_buf *b = data;

	g_free(b->p);
	g_free(b);
}

static int check_code(struct store *s, GError **err)
{
	const struct net_cluster *c = s->cluster;
	const struct erasure *e;

	if (c->ec_k + c->ec_m > ERASURE_MAX_FRAGMENTS ||
	    c->part_size / c->ec_k + ERASURE_HEADER_SIZE + 64 > NET_MAX_SHARD) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "%s: ec %u+%u with part_size %" G_GUINT64_FORMAT
			    " makes shards larger than %u bytes or more than %u of them",
			    c->path, c->ec_k, c->ec_m, c->part_size, NET_MAX_SHARD, ERASURE_MAX_FRAGMENTS);
		return -EINVAL;
	}
	int rc = store_code(s, c->ec_k, c->ec_m, &e);
	if (rc)
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOSYS,
			    "no erasure code backend loads for %u+%u (is libisal2 installed?)",
			    c->ec_k, c->ec_m);
	return rc;
}

static int start(struct store *s, GError **err)
{
	const struct net_cluster *c = s->cluster;
	struct net_pool_options po;
	int rc;

	if ((rc = net_tls_new(c->ca, c->cert, c->key, &s->tls, err)))
		return rc;
	net_pool_options_default(&po);
	po.timeout_ms = s->opt.read_timeout_ms;
	if ((rc = net_pool_new(c, s->tls, &po, &s->pool))) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "client pool: %s",
			    common_strerror(rc));
		return rc;
	}
	if ((rc = store_view_init(s))) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: no node to place data on",
			    c->path);
		return rc;
	}
	if ((rc = check_code(s, err)))
		return rc;
	s->part_size = c->part_size;
	return 0;
}

int store_open(const char *cluster_path, const struct store_options *o, struct store **out,
	       GError **err)
{
	struct store *s = g_new0(struct store, 1);
	int rc;

	/* Parts and fragments are big and short-lived: keep them on the heap
	 * and keep freed memory, rather than paying page faults per part. */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	mallopt(M_ARENA_MAX, 1);
	if (o)
		s->opt = *o;
	else
		store_options_default(&s->opt);
	g_mutex_init(&s->lock);
	g_mutex_init(&s->buf_lock);
	s->codes = g_hash_table_new_full(NULL, NULL, NULL, (GDestroyNotify)erasure_free);
	s->suspect = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	s->full = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	if ((rc = net_cluster_load(cluster_path, &s->cluster, err)) || (rc = start(s, err))) {
		store_close(s);
		return rc;
	}
	unsigned cpus = g_get_num_processors();
	s->encoders = g_thread_pool_new(store_encode_job, s, (gint)MAX(cpus, 2), FALSE, NULL);
	s->fetchers = g_thread_pool_new(store_fetch_job, s, 16, FALSE, NULL);
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	/* Jobs finish first: they use the pool and the codes. */
	if (s->encoders)
		g_thread_pool_free(s->encoders, FALSE, TRUE);
	if (s->fetchers)
		g_thread_pool_free(s->fetchers, FALSE, TRUE);
	net_pool_free(s->pool);
	net_tls_free(s->tls);
	store_views_free(s);
	net_cluster_free(s->cluster);
	g_hash_table_destroy(s->codes);
	g_hash_table_destroy(s->suspect);
	g_hash_table_destroy(s->full);
	g_slist_free_full(s->bufs, free_spare);
	g_mutex_clear(&s->lock);
	g_mutex_clear(&s->buf_lock);
	g_free(s);
}

const struct net_cluster *store_cluster(const struct store *s)
{
	return s->cluster;
}

const char *store_meta_url(const struct store *s)
{
	return s->cluster->meta_url;
}

size_t store_part_size(const struct store *s)
{
	return s->part_size;
}

void store_get_stats(struct store *s, struct store_stats *st)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*st = s->stats;
}

static void write_counters(const struct store_stats st, GString *out)
{
	const struct {
		const char *name, *help;
		uint64_t v;
	} counters[] = {
		{"shardfs_parts_written_total", "Parts of objects written.", st.parts_written},
		{"shardfs_parts_read_total", "Parts of objects read whole.", st.parts_read},
		{"shardfs_ranges_read_total", "Byte ranges read from data shards alone.", st.ranges_read},
		{"shardfs_object_written_bytes_total", "Bytes of objects written.", st.bytes_written},
		{"shardfs_object_read_bytes_total", "Bytes of objects read.", st.bytes_read},
		{"shardfs_shard_fetched_bytes_total", "Shard bytes that came from nodes for reads.",
		 st.shard_bytes_fetched},
		{"shardfs_shards_handed_off_total", "Shards put on another node than the ring's first"
		 " choice (it did not answer).", st.shards_handed_off},
		{"shardfs_shards_missing_total", "Shards a write could place on no node (recorded"
		 " missing for repair).", st.shards_missing},
		{"shardfs_parts_degraded_total", "Parts written with shards missing.", st.parts_degraded},
		{"shardfs_shards_rebuilt_total", "Missing shards repair rebuilt.", st.shards_rebuilt},
		{"shardfs_degraded_reads_total", "Part reads that needed more than the first k shards"
		 " asked (a node slow, down or corrupt).", st.degraded_reads},
		{"shardfs_hedged_reads_total", "Part reads that asked more shards because nodes were"
		 " slow.", st.hedged_reads},
		{"shardfs_corrupt_shards_total", "Shards a node reported corrupt or that failed the"
		 " part checksum.", st.corrupt_shards},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(counters); i++)
		metrics_one(out, counters[i].name, "counter", counters[i].help, (double)counters[i].v);
}

void store_metrics(struct store *s, GString *out)
{
	struct store_stats st;

	store_get_stats(s, &st);
	write_counters(st, out);
	net_pool_metrics(s->pool, out);
}

/* ---- batches of calls ---- */

static void batch_done(void *arg, struct net_call *call)
{
	/* A shard already gone is what a delete wants. */
	common_waiter_done(arg, call->status == -ENOENT ? 0 : call->status);
}

/* ---- capacity ---- */

#define CAPACITY_TTL_US (5 * G_USEC_PER_SEC)
#define STATUS_TEXT_MAX 4096

unsigned store_node_statuses(struct store *s, const struct store_view *v,
			     struct net_node_status *out, bool *up)
{
	GArray *nodes = v->nodes;
	struct net_call *calls = g_new0(struct net_call, nodes->len);
	char *texts = g_malloc((size_t)nodes->len * STATUS_TEXT_MAX);
	struct common_waiter b;
	unsigned answered = 0;

	common_waiter_init(&b, nodes->len);
	for (guint i = 0; i < nodes->len; i++) {
		calls[i].req.op = NET_OP_STATUS;
		calls[i].resp_buf = texts + i * STATUS_TEXT_MAX;
		calls[i].resp_cap = STATUS_TEXT_MAX;
		calls[i].timeout_ms = 2000;
		net_pool_call_async(s->pool, g_array_index(nodes, struct store_node, i).id, &calls[i],
				    batch_done, &b);
	}
	common_waiter_wait(&b);
	common_waiter_fini(&b);
	for (guint i = 0; i < nodes->len; i++) {
		up[i] = calls[i].status == 0 && net_node_status_decode(calls[i].resp_buf,
								       (size_t)calls[i].resp.body_len,
								       &out[i]) == 0;
		answered += up[i];
	}
	g_free(calls);
	g_free(texts);
	return answered;
}

static int ask_capacity(struct store *s, uint64_t *total, uint64_t *avail)
{
	const struct store_view *v = store_view(s);
	guint n = v->nodes->len;
	struct net_node_status *st = g_new0(struct net_node_status, n);
	bool *up = g_new0(bool, n);
	unsigned answered = store_node_statuses(s, v, st, up);
	GHashTable *seen = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);

	*total = *avail = 0;
	for (guint i = 0; i < n; i++) {
		/* nodes sharing a filesystem share its space: count it once */
		if (!up[i] ||
		    (st[i].fs_id && !g_hash_table_add(seen, g_memdup2(&st[i].fs_id, sizeof(uint64_t)))))
			continue;
		*total += st[i].total_bytes;
		*avail += st[i].free_bytes;
	}
	g_hash_table_destroy(seen);
	g_free(st);
	g_free(up);
	*total = *total / (s->cluster->ec_k + s->cluster->ec_m) * s->cluster->ec_k;
	*avail = *avail / (s->cluster->ec_k + s->cluster->ec_m) * s->cluster->ec_k;
	return answered ? 0 : STORE_EUNAVAIL;
}

int store_capacity(struct store *s, uint64_t *total, uint64_t *avail)
{
	gint64 now = g_get_monotonic_time();
	int rc = 0;

	g_mutex_lock(&s->lock);
	bool fresh = s->capacity_at && now - s->capacity_at < CAPACITY_TTL_US;
	*total = s->capacity_total;
	*avail = s->capacity_avail;
	g_mutex_unlock(&s->lock);
	if (fresh)
		return 0;
	if ((rc = ask_capacity(s, total, avail)))
		return rc;
	g_mutex_lock(&s->lock);
	s->capacity_at = now;
	s->capacity_total = *total;
	s->capacity_avail = *avail;
	g_mutex_unlock(&s->lock);
	return 0;
}

/* ---- deletes ---- */

bool store_node_list(struct store *s, uint32_t node, uint8_t op, size_t entry_size,
		     unsigned page, const uint8_t *from, store_list_fn fn, void *arg)
{
	size_t cap = (size_t)page * entry_size;
	uint8_t *buf = g_malloc(cap), after[NET_KEY_PACKED_SIZE];
	bool more = true, ok = true, cursor = from != NULL;

	if (from)
		memcpy(after, from, sizeof(after));
	while (more && ok) {
		struct net_call c = {.req = {.op = op, .length = page,
					     .body_len = cursor ? NET_KEY_PACKED_SIZE : 0},
				     .body = after, .resp_buf = buf, .resp_cap = cap};

		ok = net_pool_call(s->pool, node, &c) == 0 && c.resp.body_len % entry_size == 0;
		size_t n = ok ? (size_t)c.resp.body_len / entry_size : 0;

		bool go_on = true;

		for (size_t i = 0; go_on && i < n; i++)
			go_on = fn(arg, buf + i * entry_size);
		more = go_on && c.resp.aux && n > 0;
		if (n)
			memcpy(after, buf + (n - 1) * entry_size, NET_KEY_PACKED_SIZE);
		cursor = true;
	}
	g_free(buf);
	return ok;
}

int store_parts_delete(struct store *s, const struct meta_part *parts, unsigned nparts)
{
	unsigned total = 0;

	for (unsigned p = 0; p < nparts; p++)
		total += parts[p].k + parts[p].m;
	struct net_call *calls = g_new0(struct net_call, total ? total : 1);
	struct common_waiter b;

	common_waiter_init(&b, total);
	for (unsigned p = 0, c = 0; p < nparts; p++) {
		for (unsigned i = 0; i < (unsigned)(parts[p].k + parts[p].m); i++, c++) {
			calls[c].req.op = NET_OP_DELETE;
			memcpy(calls[c].req.key.object_id, parts[p].object_id, 16);
			calls[c].req.key.part = parts[p].index;
			calls[c].req.key.shard = (uint16_t)i;
			net_pool_call_async(s->pool, parts[p].nodes[i], &calls[c], batch_done, &b);
		}
	}
	int rc = common_waiter_wait(&b);

	common_waiter_fini(&b);
	g_free(calls);
	return rc;
}
