/*
 * reader.c - the range reader (store.h).
 *
 * A gather is one fan-out of shard GETs for one part. Its buffers belong
 * to it, not to the caller, and it is reference-counted by the waiter and
 * by each call in flight: a caller that stops waiting at a deadline leaves
 * the late answers to land in the gather, which the last one frees.
 *
 * Shards the manifest records as missing are never asked for.
 *
 * fetch_part: ask k shards (data shards first, nodes under suspicion
 * last); if one fails or misses the hedge deadline, ask all the others;
 * rebuild from what came (plain concatenation when the k data shards came,
 * else decode) and accept it only if it matches the part checksum. With
 * more than k shards, a mismatch is tried again leaving each shard out in
 * turn, which finds a single damaged shard.
 *
 * fetch_range: ask only the byte ranges of the data shards that hold the
 * wanted bytes (their integrity is checked by the node's per-block CRCs);
 * anything short of a clean answer within the hedge deadline falls back to
 * fetch_part.
 */
#define G_LOG_DOMAIN "shardfs-store"

#include "store_internal.h"

#include "common/waiter.h"

#include <errno.h>
#include <string.h>

struct gshard {
	struct net_call call;
	struct gather *g;
	uint32_t node;
	size_t want;
	uint8_t *buf;
	bool sent;
	bool answered, done; /* g->lock; done: answered with the bytes */
	bool corrupt;	     /* g->lock: its node or our checksum found it bad */
};

struct gather {
	struct store *s;
	uint8_t oid[16];
	const struct meta_part *part; /* valid while the waiter holds a reference */
	uint32_t part_index;
	GMutex lock;
	unsigned refs; /* lock */
	struct common_waiter answers; /* the shards asked and not answered yet */
	struct gshard sh[ERASURE_MAX_FRAGMENTS];
};

static struct gather *gather_new(struct store *s, const struct meta_part *p)
{
	struct gather *g = g_new0(struct gather, 1);

	g->s = s;
	memcpy(g->oid, p->object_id, 16);
	g->part = p;
	g->part_index = p->index;
	g->refs = 1;
	g_mutex_init(&g->lock);
	common_waiter_init(&g->answers, 0);
	return g;
}

static void gather_unref(struct gather *g)
{
	g_mutex_lock(&g->lock);
	bool last = --g->refs == 0;
	g_mutex_unlock(&g->lock);
	if (!last)
		return;
	for (unsigned i = 0; i < ERASURE_MAX_FRAGMENTS; i++)
		store_buf_free(g->s, g->sh[i].buf, g->sh[i].want);
	g_mutex_clear(&g->lock);
	common_waiter_fini(&g->answers);
	g_free(g);
}

static void report_failure(struct gather *g, unsigned i, int status)
{
	char hex[33];

	store_oid_hex(g->oid, hex);
	if (status == NET_ECORRUPT) { /* the node found its copy bad */
		STORE_COUNT(g->s, corrupt_shards, 1);
		g_warning("corrupt shard: object %s part %u shard %u on node %u", hex, g->part_index,
			  i, g->sh[i].node);
		return;
	}
	store_suspect(g->s, g->sh[i].node);
	g_debug("object %s part %u shard %u: node %u: %s", hex, g->part_index, i, g->sh[i].node,
		common_strerror(status));
}

static void get_done(void *arg, struct net_call *call)
{
	struct gshard *sh = arg;
	struct gather *g = sh->g;
	int status = call->status;

	if (status == 0 && call->resp.body_len != sh->want)
		status = NET_EPROTO;
	if (status)
		report_failure(g, (unsigned)(sh - g->sh), status);
	else
		STORE_COUNT(g->s, shard_bytes_fetched, call->resp.body_len);
	g_mutex_lock(&g->lock);
	sh->answered = true;
	sh->done = status == 0;
	sh->corrupt = status == NET_ECORRUPT;
	g_mutex_unlock(&g->lock);
	/* After the flags: a waiter that sees the count sees them too. */
	common_waiter_done(&g->answers, status);
	gather_unref(g);
}

static void gather_send(struct gather *g, unsigned i, uint64_t off, size_t len)
{
	struct gshard *sh = &g->sh[i];

	sh->g = g;
	sh->node = g->part->nodes[i];
	sh->want = len;
	sh->buf = store_buf_alloc(g->s, len);
	if (!sh->buf)
		g_error("out of memory for a shard of %zu bytes", len);
	sh->sent = true;
	sh->call.req.op = NET_OP_GET;
	memcpy(sh->call.req.key.object_id, g->oid, 16);
	sh->call.req.key.part = g->part_index;
	sh->call.req.key.shard = (uint16_t)i;
	sh->call.req.offset = off;
	sh->call.req.length = len;
	sh->call.resp_buf = sh->buf;
	sh->call.resp_cap = len;
	sh->call.timeout_ms = g->s->opt.read_timeout_ms;
	g_mutex_lock(&g->lock);
	g->refs++;
	g_mutex_unlock(&g->lock);
	common_waiter_add(&g->answers, 1);
	net_pool_call_async(g->s->pool, sh->node, &sh->call, get_done, sh);
}

/* Waits until need shards answered well, none is pending, or the deadline
 * (monotonic us); returns how many answered well. */
static unsigned gather_wait(struct gather *g, unsigned need, gint64 until)
{
	return common_waiter_wait_ok(&g->answers, need, until);
}

/* The shards there are, in the order to ask them: data first, nodes under
 * suspicion last. */
static unsigned ask_order(struct store *s, const struct meta_part *p, unsigned *order)
{
	unsigned n = p->k + p->m, o = 0;

	for (int pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < n; i++)
			if (!meta_shard_missing(p, i) && store_is_suspect(s, p->nodes[i]) == (pass == 1))
				order[o++] = i;
	return o;
}

/* The fragments that came, under the lock (they no longer change once done). */
static unsigned collect(struct gather *g, uint8_t **frags, unsigned *which)
{
	unsigned n = 0;

	g_mutex_lock(&g->lock);
	for (unsigned i = 0; i < (unsigned)(g->part->k + g->part->m); i++)
		if (g->sh[i].done) {
			which[n] = i;
			frags[n++] = g->sh[i].buf;
		}
	g_mutex_unlock(&g->lock);
	return n;
}

static bool checksum_ok(const struct meta_part *p, const void *plain)
{
	uint8_t sum[16];

	store_part_checksum(plain, p->length, sum);
	return memcmp(sum, p->checksum, 16) == 0;
}

static bool concat_data(const struct erasure *code, const struct meta_part *p, uint8_t **frags,
			const unsigned *which, unsigned n, uint8_t *out)
{
	size_t c = erasure_chunk_size(code, p->length);

	if (n < p->k)
		return false;
	for (unsigned i = 0; i < p->k; i++)
		if (which[i] != i)
			return false;
	for (unsigned i = 0; i < p->k; i++) {
		size_t from = i * c;

		if (from < p->length)
			memcpy(out + from, frags[i] + ERASURE_HEADER_SIZE, MIN(c, p->length - from));
	}
	return checksum_ok(p, out);
}

static bool decode_ok(const struct erasure *code, const struct meta_part *p, uint8_t **frags,
		      unsigned n, size_t flen, uint8_t *out)
{
	return erasure_decode(code, frags, n, flen, out, p->length) == 0 && checksum_ok(p, out);
}

static unsigned count_corrupt(struct gather *g)
{
	unsigned n = 0;

	g_mutex_lock(&g->lock);
	for (unsigned i = 0; i < ERASURE_MAX_FRAGMENTS; i++)
		n += g->sh[i].corrupt;
	g_mutex_unlock(&g->lock);
	return n;
}

/* Rebuilds the part from the fragments that came; 0, STORE_EUNAVAIL or
 * STORE_ECORRUPT. Fewer than k good shards is told as corruption when
 * corrupt ones are what is missing: the nodes answered, and "too few
 * nodes answer" would send the operator looking at the network. */
static int rebuild(struct gather *g, const struct erasure *code, uint8_t *out)
{
	const struct meta_part *p = g->part;
	uint8_t *frags[ERASURE_MAX_FRAGMENTS], *rest[ERASURE_MAX_FRAGMENTS];
	unsigned which[ERASURE_MAX_FRAGMENTS];
	size_t flen = erasure_fragment_size(code, p->length);
	unsigned n = collect(g, frags, which);

	if (n < p->k)
		return n + count_corrupt(g) >= p->k ? STORE_ECORRUPT : STORE_EUNAVAIL;
	if (concat_data(code, p, frags, which, n, out) || decode_ok(code, p, frags, n, flen, out))
		return 0;
	for (unsigned skip = 0; n > p->k && skip < n; skip++) {
		unsigned r = 0;

		for (unsigned i = 0; i < n; i++)
			if (i != skip)
				rest[r++] = frags[i];
		if (decode_ok(code, p, rest, r, flen, out)) {
			g_mutex_lock(&g->lock);
			g->sh[which[skip]].done = false;
			g->sh[which[skip]].corrupt = true;
			g_mutex_unlock(&g->lock);
			report_failure(g, which[skip], NET_ECORRUPT); /* as a node would */
			return 0;
		}
	}
	return STORE_ECORRUPT;
}

static void log_unreadable(struct gather *g, int rc, unsigned ok)
{
	char hex[33];

	store_oid_hex(g->oid, hex);
	g_warning("object %s part %u unreadable: %u of %u shards came, %u of them corrupt, %u good"
		  " needed (%s)", hex, g->part_index, ok + count_corrupt(g), g->part->k + g->part->m,
		  count_corrupt(g), g->part->k, common_strerror(rc));
}

/* Nodes that missed the hedge deadline are avoided by the next reads, so
 * that one frozen node costs one hedge delay, not one per part. */
static unsigned suspect_slow(struct gather *g)
{
	uint32_t slow[ERASURE_MAX_FRAGMENTS];
	unsigned n = 0;

	g_mutex_lock(&g->lock);
	for (unsigned i = 0; i < ERASURE_MAX_FRAGMENTS; i++)
		if (g->sh[i].sent && !g->sh[i].answered)
			slow[n++] = g->sh[i].node;
	g_mutex_unlock(&g->lock);
	for (unsigned i = 0; i < n; i++)
		store_suspect(g->s, slow[i]);
	return n;
}

/* Asks every shard not asked yet. */
static void ask_rest(struct gather *g, const unsigned *order, unsigned n, size_t flen)
{
	for (unsigned i = 0; i < n; i++)
		if (!g->sh[order[i]].sent)
			gather_send(g, order[i], 0, flen);
}

static int fetch_part(struct store *s, const struct meta_part *p, uint8_t *out)
{
	const struct erasure *code;
	unsigned order[ERASURE_MAX_FRAGMENTS], n;
	gint64 start = g_get_monotonic_time();
	gint64 hedge = start + (gint64)s->opt.hedge_ms * 1000;
	gint64 until = start + (gint64)s->opt.read_timeout_ms * 1000;
	int rc = store_code(s, p->k, p->m, &code);

	if (rc)
		return rc;
	size_t flen = erasure_fragment_size(code, p->length);
	struct gather *g = gather_new(s, p);
	n = ask_order(s, p, order);
	for (unsigned i = 0; i < MIN(p->k, n); i++)
		gather_send(g, order[i], 0, flen);
	unsigned ok = gather_wait(g, p->k, hedge);
	rc = ok == p->k ? rebuild(g, code, out) : STORE_EUNAVAIL;
	if (rc) {
		STORE_COUNT(s, degraded_reads, 1);
		if (ok < p->k && suspect_slow(g))
			STORE_COUNT(s, hedged_reads, 1);
		ask_rest(g, order, n, flen);
		/* After a checksum mismatch every shard is wanted, to find the bad one. */
		ok = gather_wait(g, rc == STORE_ECORRUPT ? n : p->k, until);
		rc = rebuild(g, code, out);
	}
	if (rc)
		log_unreadable(g, rc, ok);
	gather_unref(g);
	STORE_COUNT(s, parts_read, 1);
	return rc;
}

int store_part_fetch(struct store *s, const struct meta_part *p, uint8_t *out)
{
	return fetch_part(s, p, out);
}

/* Reads [a, b) of part p from the data shards that hold it; 0 or -EAGAIN
 * when fetch_part must do it. */
static int fetch_range_fast(struct store *s, const struct meta_part *p, uint64_t a, uint64_t b,
			    uint8_t *out)
{
	const struct erasure *code;
	int rc = store_code(s, p->k, p->m, &code);

	if (rc)
		return rc;
	size_t c = erasure_chunk_size(code, p->length);
	unsigned first = (unsigned)(a / c), last = (unsigned)((b - 1) / c);
	for (unsigned i = first; i <= last; i++)
		if (meta_shard_missing(p, i) || store_is_suspect(s, p->nodes[i]))
			return -EAGAIN;
	struct gather *g = gather_new(s, p);
	for (unsigned i = first; i <= last; i++) {
		uint64_t lo = MAX(a, (uint64_t)i * c), hi = MIN(b, (uint64_t)(i + 1) * c);

		gather_send(g, i, ERASURE_HEADER_SIZE + lo - (uint64_t)i * c, hi - lo);
	}
	unsigned want = last - first + 1;
	rc = gather_wait(g, want, g_get_monotonic_time() + (gint64)s->opt.hedge_ms * 1000) == want
		     ? 0 : -EAGAIN;
	if (rc && suspect_slow(g))
		STORE_COUNT(s, hedged_reads, 1);
	for (unsigned i = first; rc == 0 && i <= last; i++) {
		uint64_t lo = MAX(a, (uint64_t)i * c);

		memcpy(out + (lo - a), g->sh[i].buf, g->sh[i].want);
	}
	gather_unref(g);
	return rc;
}

int store_part_read(struct store *s, const struct meta_part *p, uint64_t a, uint64_t b,
		    uint8_t *out)
{
	if (b > p->length || a > b)
		return -EINVAL;
	if (a == b)
		return 0;
	if (p->k == 0) {
		memset(out, 0, b - a);
		return 0;
	}
	int rc = fetch_range_fast(s, p, a, b, out);

	STORE_COUNT(s, ranges_read, 1);
	if (rc != -EAGAIN)
		return rc;
	uint8_t *whole = store_buf_alloc(s, p->length);
	if (!whole)
		return -ENOMEM;
	rc = fetch_part(s, p, whole);
	if (rc == 0)
		memcpy(out, whole + a, b - a);
	store_buf_free(s, whole, p->length);
	return rc;
}

/* ---- the reader: whole parts cached and read ahead ---- */

enum slot_state { SLOT_FREE, SLOT_FETCHING, SLOT_READY, SLOT_FAILED };

struct slot {
	struct store_reader *r;
	unsigned part;	/* index into r->parts */
	enum slot_state state; /* r->lock */
	int rc;		/* r->lock */
	uint64_t used;	/* r->lock, for eviction */
	bool pinned;	/* r->lock: being read from, not to be evicted */
	uint8_t *data;
	size_t len; /* of data */
};

struct store_reader {
	struct store *s;
	struct meta_part *parts;
	uint64_t *start; /* byte offset of each part, and the size at [nparts] */
	unsigned nparts;
	uint64_t last_end;
	unsigned streak; /* reads that continued the previous one */
	GMutex lock;
	GCond cond;
	unsigned nslots;
	struct slot *slots;
	uint64_t clock;	 /* lock */
	unsigned jobs;	 /* fetches in flight, lock */
};

int store_reader_new(struct store *s, const struct meta_part *parts, unsigned nparts,
		     struct store_reader **out)
{
	struct store_reader *r = g_new0(struct store_reader, 1);

	r->s = s;
	r->parts = g_memdup2(parts, (nparts ? nparts : 1) * sizeof(*parts));
	r->nparts = nparts;
	r->start = g_new0(uint64_t, nparts + 1);
	for (unsigned i = 0; i < nparts; i++)
		r->start[i + 1] = r->start[i] + parts[i].length;
	r->last_end = UINT64_MAX;
	r->nslots = s->opt.readahead + 2;
	r->slots = g_new0(struct slot, r->nslots);
	g_mutex_init(&r->lock);
	g_cond_init(&r->cond);
	*out = r;
	return 0;
}

void store_fetch_job(gpointer job, gpointer user)
{
	struct slot *sl = job;
	struct store_reader *r = sl->r;
	const struct meta_part *p = &r->parts[sl->part];
	int rc = p->k ? fetch_part(user, p, sl->data) : (memset(sl->data, 0, p->length), 0);

	g_mutex_lock(&r->lock);
	sl->rc = rc;
	sl->state = rc ? SLOT_FAILED : SLOT_READY;
	r->jobs--;
	g_cond_broadcast(&r->cond);
	g_mutex_unlock(&r->lock);
}

/* The slot of part i, or NULL; r->lock held. */
static struct slot *slot_find(struct store_reader *r, unsigned i)
{
	for (unsigned k = 0; k < r->nslots; k++)
		if (r->slots[k].state != SLOT_FREE && r->slots[k].part == i)
			return &r->slots[k];
	return NULL;
}

/* A free slot, else the least recently used one neither being fetched nor
 * being read from; NULL if none. r->lock held. */
static struct slot *slot_victim(struct store_reader *r)
{
	struct slot *v = NULL;

	for (unsigned k = 0; k < r->nslots; k++) {
		struct slot *sl = &r->slots[k];

		if (sl->state == SLOT_FREE)
			return sl;
		if (sl->state != SLOT_FETCHING && !sl->pinned && (!v || sl->used < v->used))
			v = sl;
	}
	return v;
}

/* Starts fetching part i unless cached or in flight; r->lock held. With
 * wait, waits for a slot; else gives up if none is free. */
static struct slot *slot_start(struct store_reader *r, unsigned i, bool wait)
{
	struct slot *sl;

	while (!(sl = slot_find(r, i))) {
		struct slot *v = slot_victim(r);

		if (!v && !wait)
			return NULL;
		if (!v) {
			g_cond_wait(&r->cond, &r->lock);
			continue;
		}
		store_buf_free(r->s, v->data, v->len);
		v->len = r->parts[i].length;
		v->data = store_buf_alloc(r->s, v->len);
		if (!v->data) {
			v->state = SLOT_FREE;
			return NULL;
		}
		v->r = r;
		v->part = i;
		v->state = SLOT_FETCHING;
		r->jobs++;
		g_thread_pool_push(r->s->fetchers, v, NULL);
		sl = v;
	}
	sl->used = ++r->clock;
	return sl;
}

/* Copies bytes of part i through the cache, and reads ahead. */
static int read_cached(struct store_reader *r, unsigned i, uint64_t a, uint64_t b, uint8_t *out)
{
	int rc;

	g_mutex_lock(&r->lock);
	struct slot *sl = slot_start(r, i, true);
	if (sl)
		sl->pinned = true;
	for (unsigned ahead = 1; sl && ahead <= r->s->opt.readahead && i + ahead < r->nparts; ahead++)
		if (!slot_start(r, i + ahead, false))
			break;
	while (sl && sl->state == SLOT_FETCHING)
		g_cond_wait(&r->cond, &r->lock);
	rc = !sl ? -ENOMEM : sl->state == SLOT_READY ? 0 : sl->rc;
	if (sl)
		sl->pinned = false;
	if (rc == 0)
		memcpy(out, sl->data + a, b - a);
	/* A failed part is tried again by the next read; a part read to its
	 * end is not read again by a sequential reader: both free their slot. */
	if (sl && (rc || b == r->parts[i].length)) {
		store_buf_free(r->s, sl->data, sl->len);
		sl->data = NULL;
		sl->state = SLOT_FREE;
	}
	g_mutex_unlock(&r->lock);
	return rc;
}

static unsigned part_at(const struct store_reader *r, uint64_t off)
{
	unsigned lo = 0, hi = r->nparts;

	while (hi - lo > 1) {
		unsigned mid = (lo + hi) / 2;

		if (r->start[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

ssize_t store_reader_read(struct store_reader *r, uint64_t off, void *buf, size_t len)
{
	uint64_t size = r->start[r->nparts], done = 0;

	if (off >= size || len == 0)
		return 0;
	len = (size_t)MIN((uint64_t)len, size - off);
	r->streak = off == r->last_end ? r->streak + 1 : 0;
	while (done < len) {
		unsigned i = part_at(r, off + done);
		uint64_t a = off + done - r->start[i];
		uint64_t b = MIN(r->parts[i].length, a + (len - done));
		int rc = r->streak ? read_cached(r, i, a, b, (uint8_t *)buf + done)
				   : store_part_read(r->s, &r->parts[i], a, b, (uint8_t *)buf + done);

		if (rc)
			return rc;
		done += b - a;
	}
	r->last_end = off + len;
	STORE_COUNT(r->s, bytes_read, len);
	return (ssize_t)len;
}

void store_reader_free(struct store_reader *r)
{
	if (!r)
		return;
	g_mutex_lock(&r->lock);
	while (r->jobs)
		g_cond_wait(&r->cond, &r->lock);
	g_mutex_unlock(&r->lock);
	for (unsigned k = 0; k < r->nslots; k++)
		store_buf_free(r->s, r->slots[k].data, r->slots[k].len);
	g_free(r->slots);
	g_free(r->parts);
	g_free(r->start);
	g_mutex_clear(&r->lock);
	g_cond_clear(&r->cond);
	g_free(r);
}
