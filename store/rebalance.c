/*
 * rebalance.c - moving shards to where the ring now places them
 * (store.h: store_rebalance).
 *
 * A part keeps every shard that is on one of the k+m nodes the ring
 * gives its key; each other shard goes to one of those nodes that holds
 * none of the part, so a node added takes about its share (1/N) and
 * nothing else moves. A shard is moved as it is stored (a GET, whose
 * CRC blocks the node checks, and a PUT), not decoded and encoded again:
 * a move costs one shard's bytes, where a rebuild costs k.
 *
 * Order per part: copy every shard that moves, commit the new places
 * (meta_part_relocate: a compare-and-set, under the part's repair lease
 * so that no repair or other rebalance works on it meanwhile), then
 * delete the old copies. A kill between the steps leaves either the old
 * places committed and new copies no manifest names, or the new places
 * committed and old copies no manifest names: orphans, for scrub. A
 * later pass finds the part where the kill left it and goes on.
 */
#define G_LOG_DOMAIN "shardfs-store"

#include "store_internal.h"

#include "common/error.h"

#include <errno.h>
#include <string.h>

struct rebalance {
	struct store *s;
	struct meta *m;
	const struct store_rebalance_options *o;
	struct store_rebalance_stats *st;
	const struct ring *ring;
	gint64 start;
	bool stopped;
	uint64_t parts_total;	/* at the start */
	gint64 reported;	/* when status last heard of the pass */
};

/* A pass reports every REPORT_US, for status (REBALANCING). */
#define REPORT_US (2 * G_USEC_PER_SEC)

struct move {
	unsigned slot;
	uint32_t from, to;
};

static bool among(const uint32_t *set, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == id)
			return true;
	return false;
}

/* The moves that bring p to the ring's placement; how many. *stuck when
 * the ring has too few nodes that take data for k+m shards. */
static unsigned plan_moves(const struct ring *ring, const struct meta_part *p, struct move *out,
			   bool *stuck)
{
	unsigned n = (unsigned)(p->k + p->m), moves = 0;
	uint32_t want[ERASURE_MAX_FRAGMENTS], held[ERASURE_MAX_FRAGMENTS];
	size_t got = ring_closest(ring, ring_key_hash(p->object_id, p->index), n, want, NULL, 0);
	size_t next = 0;

	for (unsigned i = 0; i < n; i++)
		held[i] = p->nodes[i];
	for (unsigned i = 0; i < n; i++) {
		if (among(want, got, held[i]))
			continue;
		while (next < got && among(held, n, want[next]))
			next++;
		if (next == got)
			break;
		out[moves++] = (struct move){i, held[i], want[next++]};
	}
	unsigned misplaced = 0;

	for (unsigned i = 0; i < n; i++)
		misplaced += !among(want, got, held[i]);
	*stuck = misplaced > moves;
	return moves;
}

/* Copies shard mv->slot of p from mv->from to mv->to, as stored. */
static int copy_shard(struct store *s, const struct meta_part *p, const struct move *mv, size_t len)
{
	uint8_t *buf = store_buf_alloc(s, len);
	struct net_call get = {.req = {.op = NET_OP_GET, .length = len}, .resp_buf = buf,
			       .resp_cap = len};
	int rc;

	if (!buf)
		return -ENOMEM;
	memcpy(get.req.key.object_id, p->object_id, 16);
	get.req.key.part = p->index;
	get.req.key.shard = (uint16_t)mv->slot;
	rc = net_pool_call(s->pool, mv->from, &get);
	if (rc == 0 && get.resp.body_len != len)
		rc = NET_EPROTO;
	if (rc == 0) {
		struct net_call put = {.req = {.op = NET_OP_PUT, .key = get.req.key, .body_len = len},
				       .body = buf, .timeout_ms = s->opt.put_timeout_ms};

		if ((rc = net_pool_call(s->pool, mv->to, &put)))
			store_put_failed(s, mv->to, rc);
	}
	store_buf_free(s, buf, len);
	return rc;
}

static void delete_shard(struct store *s, const struct meta_part *p, unsigned slot, uint32_t node)
{
	struct net_call c = {.req = {.op = NET_OP_DELETE}};

	memcpy(c.req.key.object_id, p->object_id, 16);
	c.req.key.part = p->index;
	c.req.key.shard = (uint16_t)slot;
	if (net_pool_call(s->pool, node, &c) && c.status != -ENOENT)
		g_message("a moved shard's old copy stays on node %u for scrub", node);
}

/* Copies, commits, deletes; the lease is held. */
static void move_shards(struct rebalance *rb, uint64_t ino, const struct meta_part *p,
			const struct move *moves, unsigned n, size_t len)
{
	struct meta_part now = *p;
	unsigned copied = 0;
	int rc = 0;

	for (unsigned i = 0; i < n && rc == 0; i++)
		if ((rc = copy_shard(rb->s, p, &moves[i], len)) == 0) {
			now.nodes[moves[i].slot] = (uint16_t)moves[i].to;
			copied++;
		}
	if (rc) {
		rb->st->moves_failed++;
		g_message("rebalance: part %u of inode %" G_GUINT64_FORMAT ": a copy failed (%s);"
			  " the next pass tries again", p->index, ino, common_strerror(rc));
	}
	if (!copied)
		return;
	rc = meta_part_relocate(rb->m, ino, p, &now);
	if (rc) {
		store_undo_placed(rb->s, rb->m, ino, p, &now);
		rb->st->parts_elsewhere += rc == -ESTALE;
		return;
	}
	for (unsigned i = 0; i < copied; i++)
		delete_shard(rb->s, p, moves[i].slot, moves[i].from);
	rb->st->shards_moved += copied;
	rb->st->bytes_moved += copied * len;
}

static void report(struct rebalance *rb)
{
	gint64 now = g_get_monotonic_time(), took = MAX(now - rb->start, 1);

	if (now - rb->reported < REPORT_US)
		return;
	rb->reported = now;
	meta_rebalance_report(rb->m, store_worker_name(),
			      g_get_real_time() / G_USEC_PER_SEC - took / G_USEC_PER_SEC,
			      (uint64_t)((double)rb->st->bytes_moved * 1e6 / (double)took),
			      rb->st->parts, MAX(rb->parts_total, rb->st->parts),
			      g_get_real_time() / G_USEC_PER_SEC);
}

static void rebalance_part(void *arg, uint64_t ino, const struct meta_part *p)
{
	struct rebalance *rb = arg;
	struct move moves[ERASURE_MAX_FRAGMENTS];
	const struct erasure *code;
	bool stuck;

	if (rb->o->stop && rb->o->stop(rb->o->stop_arg)) {
		rb->stopped = true;
		return;
	}
	rb->st->parts++;
	rb->st->shards += (unsigned)(p->k + p->m);
	if (p->missing) {
		rb->st->parts_degraded++;
		return;
	}
	unsigned n = plan_moves(rb->ring, p, moves, &stuck);

	rb->st->parts_stuck += stuck;
	rb->st->shards_misplaced += n;
	if (!n || store_code(rb->s, p->k, p->m, &code))
		return;
	size_t len = erasure_fragment_size(code, p->length);

	if (rb->o->dry_run) {
		rb->st->shards_moved += n;
		rb->st->bytes_moved += n * len;
		return;
	}
	int rc = store_part_lease(rb->m, ino, p);

	if (rc == -EBUSY || rc == -ESTALE) {
		rb->st->parts_elsewhere++;
		return;
	}
	move_shards(rb, ino, p, moves, n, len);
	if (rc == 0)
		meta_repair_unlease(rb->m, ino, p->index, store_worker_name());
	report(rb);
	g_usleep((gulong)store_repair_pause_us(rb->st->bytes_moved, rb->o->bytes_per_s,
					       g_get_monotonic_time() - rb->start));
}

/* Draining nodes that hold nothing now are out. */
static void put_out_drained(struct rebalance *rb)
{
	unsigned n;
	const struct store_node *nodes = store_nodes(rb->s, &n);

	for (unsigned i = 0; i < n; i++) {
		uint64_t parts;

		if (nodes[i].state != META_MEMBER_DRAINING ||
		    meta_node_parts(rb->m, nodes[i].id, &parts) || parts)
			continue;
		if (meta_member_set_state(rb->m, nodes[i].id, META_MEMBER_OUT) == 0) {
			rb->st->nodes_out++;
			g_message("rebalance: node %u is drained: out, and may be removed",
				  nodes[i].id);
		}
	}
}

int store_rebalance(struct store *s, struct meta *m, const struct store_rebalance_options *o,
		    struct store_rebalance_stats *st, store_scrub_progress_fn progress, void *arg)
{
	const struct store_view *v = store_view(s);
	struct rebalance rb = {.s = s, .m = m, .o = o, .st = st, .ring = v->ring,
			       .start = g_get_monotonic_time()};
	uint64_t bytes;
	int rc;

	memset(st, 0, sizeof(*st));
	rb.reported = rb.start;
	rc = meta_parts_count(m, &rb.parts_total, &bytes);
	if (rc == 0)
		rc = store_walk_parts(m, rebalance_part, &rb, progress, arg);
	if (!o->dry_run && rb.reported != rb.start)
		meta_rebalance_done(m, store_worker_name());
	if (rc || o->dry_run || rb.stopped)
		return rc;
	put_out_drained(&rb);
	if (!st->moves_failed && !st->parts_elsewhere && !st->parts_degraded &&
	    st->shards_moved == st->shards_misplaced)
		__atomic_store_n(&s->balanced, v, __ATOMIC_RELEASE);
	return 0;
}

/* The membership changed since the last pass that finished with nothing
 * left to do (a view pointer: views are never freed before the store). */
static bool due(struct store *s)
{
	return __atomic_load_n(&s->balanced, __ATOMIC_ACQUIRE) != store_view(s);
}

void store_rebalance_if_due(struct store *s, struct meta *m, uint64_t bytes_per_s,
			    bool (*stop)(void *arg), void *stop_arg)
{
	struct store_rebalance_options o = {.bytes_per_s = bytes_per_s, .stop = stop,
					    .stop_arg = stop_arg};
	struct store_rebalance_stats st;

	if (!due(s) || store_rebalance(s, m, &o, &st, NULL, NULL))
		return;
	if (st.shards_moved || st.nodes_out)
		g_message("rebalance: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " shards moved"
			  " (%.1f MiB), %u drained nodes out", st.shards_moved, st.shards,
			  (double)st.bytes_moved / (1 << 20), st.nodes_out);
}
