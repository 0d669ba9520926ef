/*
 * writer.c - the streamed multipart writer (store.h).
 *
 * Life of a part: write() fills a plain buffer; a full buffer becomes a
 * part and goes to the encoder pool (checksum, erasure code), which then
 * sends its k+m shards; the last shard acknowledgement (on the pool's
 * thread) records the part and frees its fragments. Memory per writer:
 * two plain buffers (one filling, one encoding) and the fragments of at
 * most max_inflight parts.
 *
 * A failed shard put is handed off to the next node of the ring that
 * holds no shard of the part; when none is left the shard is recorded as
 * missing in the part's manifest entry (nodes[i] then names the last node
 * tried), for repair to rebuild. A part commits with at least the
 * cluster's min_shards shards durable; with fewer it fails, and the writer
 * with it (sticky error), so that fsync and close report it.
 *
 * Locking: w->lock guards the fields marked so, and every part's pending
 * count, error and node list.
 */
#define G_LOG_DOMAIN "shardfs-store"

#include "store_internal.h"

#include <errno.h>
#include <string.h>

#define PLAIN_BUFFERS 2u
#define MAX_TRIED (ERASURE_MAX_FRAGMENTS + 64u)

struct store_writer {
	struct store *s;
	uint8_t oid[16];
	const struct erasure *code;
	uint32_t next_part;
	uint8_t *cur; /* filling, the caller's thread */
	size_t cur_len;
	GMutex lock;
	GCond cond;
	unsigned inflight; /* parts encoding or sending, lock */
	uint8_t *spare;	   /* a free plain buffer, lock */
	unsigned nplain;   /* plain buffers allocated, lock */
	GArray *parts;	   /* struct meta_part acknowledged, lock */
	int error;	   /* first failure, lock */
	bool finished;
};

struct wshard {
	struct net_call call;
	struct wpart *part;
	unsigned index;
};

struct wpart {
	struct store_writer *w;
	uint8_t *plain;
	size_t len;
	uint64_t key;
	struct erasure_fragments frags;
	struct meta_part meta;
	struct wshard shard[ERASURE_MAX_FRAGMENTS];
	uint32_t tried[MAX_TRIED]; /* nodes holding or refusing a shard, lock */
	unsigned ntried;	   /* lock */
	unsigned pending;	   /* lock */
	int error;		   /* lock */
};

int store_writer_new(struct store *s, const uint8_t oid[16], uint32_t first_part,
		     struct store_writer **out)
{
	const struct erasure *code;
	int rc = store_code(s, s->cluster->ec_k, s->cluster->ec_m, &code);

	if (rc)
		return rc;
	struct store_writer *w = g_new0(struct store_writer, 1);
	w->s = s;
	memcpy(w->oid, oid, 16);
	w->code = code;
	w->next_part = first_part;
	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
	w->parts = g_array_new(FALSE, FALSE, sizeof(struct meta_part));
	*out = w;
	return 0;
}

static uint8_t *plain_take(struct store_writer *w)
{
	uint8_t *b;

	g_mutex_lock(&w->lock);
	while (!w->spare && w->nplain >= PLAIN_BUFFERS)
		g_cond_wait(&w->cond, &w->lock);
	b = w->spare;
	w->spare = NULL;
	if (!b && (b = g_try_malloc(w->s->part_size)))
		w->nplain++;
	g_mutex_unlock(&w->lock);
	return b;
}

static void plain_release(struct store_writer *w, uint8_t *b)
{
	g_mutex_lock(&w->lock);
	if (w->spare) {
		g_free(b);
		w->nplain--;
	} else {
		w->spare = b;
	}
	g_cond_broadcast(&w->cond);
	g_mutex_unlock(&w->lock);
}

/* A part short of shards fails as a whole; lock held. */
static void check_durable_shards(struct wpart *p)
{
	unsigned n = p->meta.k + p->meta.m, written = meta_shards_held(&p->meta);
	unsigned need = p->w->s->cluster->min_shards;

	if (p->error || written >= need)
		return;
	char hex[33];

	store_oid_hex(p->w->oid, hex);
	g_warning("object %s part %u: only %u of %u shards durable, %u needed", hex, p->meta.index,
		  written, n, need);
	p->error = STORE_EUNAVAIL;
}

static void part_done(struct wpart *p)
{
	struct store_writer *w = p->w;

	erasure_fragments_release(w->code, &p->frags);
	if (!p->error) {
		STORE_COUNT(w->s, parts_written, 1);
		STORE_COUNT(w->s, bytes_written, p->len);
	}
	/* Once inflight drops, finish() may return and w be freed. */
	g_mutex_lock(&w->lock);
	check_durable_shards(p);
	if (p->error && !w->error)
		w->error = p->error;
	if (!p->error)
		g_array_append_val(w->parts, p->meta);
	if (!p->error && p->meta.missing)
		STORE_COUNT(w->s, parts_degraded, 1);
	w->inflight--;
	g_cond_broadcast(&w->cond);
	g_mutex_unlock(&w->lock);
	g_free(p);
}

/* Shard i is in (rc 0), was written nowhere (missing), or failed the part. */
static void shard_finished(struct wpart *p, unsigned i, int rc, bool missing)
{
	struct store_writer *w = p->w;

	g_mutex_lock(&w->lock);
	if (rc && !p->error)
		p->error = rc;
	if (missing)
		p->meta.missing |= UINT64_C(1) << i;
	bool last = --p->pending == 0;
	g_mutex_unlock(&w->lock);
	if (last)
		part_done(p);
}

static void put_done(void *arg, struct net_call *call);

static void shard_send(struct wpart *p, unsigned i)
{
	struct wshard *sh = &p->shard[i];

	memset(&sh->call, 0, sizeof(sh->call));
	sh->part = p;
	sh->index = i;
	sh->call.req.op = NET_OP_PUT;
	memcpy(sh->call.req.key.object_id, p->w->oid, 16);
	sh->call.req.key.part = p->meta.index;
	sh->call.req.key.shard = (uint16_t)i;
	sh->call.req.body_len = p->frags.frag_len;
	sh->call.body = p->frags.frag[i];
	sh->call.timeout_ms = p->w->s->opt.put_timeout_ms;
	net_pool_call_async(p->w->s->pool, p->meta.nodes[i], &sh->call, put_done, sh);
}

/* The next node of the ring for shard i, or 0 if none is left. */
static uint32_t handoff_node(struct wpart *p)
{
	struct store *s = p->w->s;
	uint32_t skip[MAX_TRIED + 64], node;
	size_t nskip;

	g_mutex_lock(&p->w->lock);
	memcpy(skip, p->tried, p->ntried * sizeof(uint32_t));
	nskip = p->ntried + store_suspects(s, skip + p->ntried, 64);
	bool found = p->ntried < MAX_TRIED &&
		     ring_closest(store_ring(s), p->key, 1, &node, skip, nskip) == 1;
	if (found)
		p->tried[p->ntried++] = node;
	g_mutex_unlock(&p->w->lock);
	return found ? node : 0;
}

static void put_done(void *arg, struct net_call *call)
{
	struct wshard *sh = arg;
	struct wpart *p = sh->part;
	uint32_t failed = p->meta.nodes[sh->index];
	char hex[33];

	if (call->status == 0) {
		shard_finished(p, sh->index, 0, false);
		return;
	}
	store_put_failed(p->w->s, failed, call->status);
	uint32_t next = handoff_node(p);
	store_oid_hex(p->w->oid, hex);
	if (next) {
		g_message("object %s part %u shard %u: node %u failed (%s), handed off to node %u",
			  hex, p->meta.index, sh->index, failed, common_strerror(call->status), next);
		STORE_COUNT(p->w->s, shards_handed_off, 1);
		p->meta.nodes[sh->index] = (uint16_t)next;
		shard_send(p, sh->index);
		return;
	}
	g_warning("object %s part %u shard %u: node %u failed (%s) and no other node can take it:"
		  " recorded as missing", hex, p->meta.index, sh->index, failed,
		  common_strerror(call->status));
	STORE_COUNT(p->w->s, shards_missing, 1);
	shard_finished(p, sh->index, 0, true);
}

/* Chooses the k+m nodes of a part, around nodes under suspicion while
 * others can take the shards. Suspects take the shards no other node can:
 * suspicion is soft (a node that missed one hedge deadline may be well),
 * and with exactly k+m nodes leaving one out would fail every write until
 * it expired. A suspect that is really down fails its put, as before. */
static int place(struct wpart *p)
{
	struct store *s = p->w->s;
	unsigned n = p->meta.k + p->meta.m;
	uint32_t skip[64], nodes[ERASURE_MAX_FRAGMENTS];
	size_t nskip = store_suspects(s, skip, G_N_ELEMENTS(skip));

	const struct ring *ring = store_ring(s);

	p->key = ring_key_hash(p->w->oid, p->meta.index);
	size_t got = ring_closest(ring, p->key, n, nodes, skip, nskip);
	if (got < n)
		got += ring_closest(ring, p->key, n - got, nodes + got, nodes, got);
	if (got < n) {
		char hex[33];

		store_oid_hex(p->w->oid, hex);
		g_warning("object %s part %u: fewer than %u nodes in the ring", hex, p->meta.index, n);
		return STORE_EUNAVAIL;
	}
	for (unsigned i = 0; i < n; i++)
		p->meta.nodes[i] = (uint16_t)nodes[i];
	memcpy(p->tried, nodes, n * sizeof(uint32_t));
	p->ntried = n;
	return 0;
}

void store_encode_job(gpointer job, gpointer user)
{
	struct wpart *p = job;
	struct store_writer *w = p->w;
	unsigned n = p->meta.k + p->meta.m;
	int rc;

	(void)user;
	store_part_checksum(p->plain, p->len, p->meta.checksum);
	rc = erasure_encode(w->code, p->plain, p->len, &p->frags);
	plain_release(w, p->plain);
	p->plain = NULL;
	if (rc == 0)
		rc = place(p);
	if (rc) {
		p->error = rc;
		part_done(p);
		return;
	}
	p->pending = n; /* before any send: no acknowledgement ends the part early */
	for (unsigned i = 0; i < n; i++)
		shard_send(p, i);
}

static int submit(struct store_writer *w)
{
	struct wpart *p;

	g_mutex_lock(&w->lock);
	while (w->inflight >= w->s->opt.max_inflight && !w->error)
		g_cond_wait(&w->cond, &w->lock);
	int rc = w->error;
	if (!rc)
		w->inflight++;
	g_mutex_unlock(&w->lock);
	if (rc)
		return rc;
	p = g_new0(struct wpart, 1);
	p->w = w;
	p->plain = w->cur;
	p->len = w->cur_len;
	memcpy(p->meta.object_id, w->oid, 16);
	p->meta.index = w->next_part++;
	p->meta.length = w->cur_len;
	p->meta.k = (uint8_t)erasure_k(w->code);
	p->meta.m = (uint8_t)erasure_m(w->code);
	w->cur = NULL;
	w->cur_len = 0;
	g_thread_pool_push(w->s->encoders, p, NULL);
	return 0;
}

int store_writer_write(struct store_writer *w, const void *buf, size_t len)
{
	const uint8_t *b = buf;

	g_mutex_lock(&w->lock);
	int rc = w->finished ? -EINVAL : w->error;
	g_mutex_unlock(&w->lock);
	while (rc == 0 && len) {
		if (!w->cur && !(w->cur = plain_take(w)))
			return -ENOMEM;
		size_t n = MIN(len, w->s->part_size - w->cur_len);
		memcpy(w->cur + w->cur_len, b, n);
		w->cur_len += n;
		b += n;
		len -= n;
		if (w->cur_len == w->s->part_size)
			rc = submit(w);
	}
	return rc;
}

/* Counts buf as one of the writer's plain buffers, waiting as plain_take
 * does while both are in use. */
static void plain_adopt(struct store_writer *w)
{
	g_mutex_lock(&w->lock);
	while (!w->spare && w->nplain >= PLAIN_BUFFERS)
		g_cond_wait(&w->cond, &w->lock);
	if (w->spare)
		g_clear_pointer(&w->spare, g_free); /* buf takes its place */
	else
		w->nplain++;
	g_mutex_unlock(&w->lock);
}

int store_writer_give(struct store_writer *w, void *buf, size_t len)
{
	g_mutex_lock(&w->lock);
	int rc = w->finished || w->cur || len > w->s->part_size ? -EINVAL : w->error;
	g_mutex_unlock(&w->lock);
	if (rc) {
		g_free(buf);
		return rc;
	}
	plain_adopt(w);
	w->cur = buf;
	w->cur_len = len;
	return len == w->s->part_size ? submit(w) : 0;
}

static void wait_idle(struct store_writer *w)
{
	g_mutex_lock(&w->lock);
	while (w->inflight)
		g_cond_wait(&w->cond, &w->lock);
	g_mutex_unlock(&w->lock);
}

static void delete_sent(struct store_writer *w)
{
	int rc = w->parts->len ? store_parts_delete(w->s, (struct meta_part *)w->parts->data,
						    w->parts->len)
			       : 0;
	if (rc) {
		char hex[33];

		store_oid_hex(w->oid, hex);
		g_warning("object %s: shards of an abandoned write left on nodes (%s)", hex,
			  common_strerror(rc));
	}
	g_array_set_size(w->parts, 0);
}

static gint part_cmp(gconstpointer a, gconstpointer b)
{
	const struct meta_part *x = a, *y = b;

	return x->index < y->index ? -1 : x->index > y->index;
}

int store_writer_finish(struct store_writer *w, struct meta_part **parts, unsigned *nparts)
{
	int rc = 0;

	if (w->finished)
		return -EINVAL;
	if (w->cur_len)
		rc = submit(w);
	wait_idle(w);
	w->finished = true;
	if (!rc)
		rc = w->error;
	if (rc) {
		delete_sent(w);
		return rc;
	}
	g_array_sort(w->parts, part_cmp);
	*nparts = w->parts->len;
	*parts = w->parts->len ? g_memdup2(w->parts->data, w->parts->len * sizeof(struct meta_part))
			       : NULL;
	return 0;
}

void store_writer_free(struct store_writer *w)
{
	if (!w)
		return;
	if (!w->finished) {
		wait_idle(w);
		delete_sent(w);
	}
	g_free(w->cur);
	g_free(w->spare);
	g_array_free(w->parts, TRUE);
	g_mutex_clear(&w->lock);
	g_cond_clear(&w->cond);
	g_free(w);
}
