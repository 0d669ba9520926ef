/*
 * repair.c - rebuilding the shards that writes recorded as missing
 * (store.h: store_repair_pass).
 *
 * A part is read whole and checked against its checksum before anything is
 * written, then encoded again, and only its missing fragments are sent.
 * Encoding the whole part again instead of reconstructing single fragments
 * (liberasurecode_reconstruct_fragment) is deliberate: the part checksum
 * covers the plain bytes only, so a fragment rebuilt from a damaged shard
 * could not be told from a good one, whereas a part that decodes to its
 * checksum encodes to fragments that are right; and encoding costs far
 * less than moving the k shards it was read from (ISA-L encodes at
 * several GB/s a core).
 *
 * A rebuilt shard goes to the node meant for it when that node is up and
 * holds no other shard of the part, else to the next node of the ring
 * that holds none. Its new place is committed with a compare-and-set of
 * the part's row (meta_part_relocate): if the file was rewritten or
 * removed meanwhile the shard is deleted again, so repair never brings a
 * replaced part back.
 */
#define G_LOG_DOMAIN "shardfs-store"

#include "store_internal.h"

#include "common/error.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REPAIR_BATCH 64u
/* Parts rebuilt at once by one worker: each holds a part and its
 * fragments in memory, 2.5 x the part size for 2+1. */
#define REPAIR_PARALLEL 2
/* A part's lease: long beside its rebuild, short beside an outage. */
#define REPAIR_LEASE_S 300u

static bool holds_shard(const struct meta_part *p, uint32_t node)
{
	for (unsigned i = 0; i < (unsigned)(p->k + p->m); i++)
		if (!meta_shard_missing(p, i) && p->nodes[i] == node)
			return true;
	return false;
}

/* The nodes to try for shard i of p, best first; how many. */
static size_t repair_targets(struct store *s, const struct meta_part *p, unsigned i,
			     uint32_t *out, size_t max)
{
	uint32_t skip[ERASURE_MAX_FRAGMENTS];
	size_t nskip = 0, n = 0;

	if (!holds_shard(p, p->nodes[i]) && !store_is_suspect(s, p->nodes[i]))
		out[n++] = p->nodes[i];
	for (unsigned j = 0; j < (unsigned)(p->k + p->m); j++)
		if (!meta_shard_missing(p, j))
			skip[nskip++] = p->nodes[j];
	if (n)
		skip[nskip++] = out[0];
	uint64_t key = ring_key_hash(p->object_id, p->index);
	return n + ring_closest(store_ring(s), key, max - n, out + n, skip, nskip);
}

static int put_shard(struct store *s, const struct meta_part *p, unsigned i, uint32_t node,
		     const struct erasure_fragments *f)
{
	struct net_call c = {.req = {.op = NET_OP_PUT, .body_len = f->frag_len},
			     .body = f->frag[i], .timeout_ms = s->opt.put_timeout_ms};

	memcpy(c.req.key.object_id, p->object_id, 16);
	c.req.key.part = p->index;
	c.req.key.shard = (uint16_t)i;
	int rc = net_pool_call(s->pool, node, &c);
	if (rc)
		store_put_failed(s, node, rc);
	return rc;
}

/* Sends the missing fragments of p to nodes that take them; now gets the
 * new places. How many were placed. */
static unsigned place_missing(struct store *s, const struct meta_part *p,
			      const struct erasure_fragments *f, struct meta_part *now)
{
	unsigned placed = 0;

	*now = *p;
	for (unsigned i = 0; i < (unsigned)(p->k + p->m); i++) {
		uint32_t targets[8];

		if (!meta_shard_missing(p, i))
			continue;
		size_t n = repair_targets(s, now, i, targets, G_N_ELEMENTS(targets));
		for (size_t t = 0; t < n; t++) {
			if (put_shard(s, p, i, targets[t], f) == 0) {
				now->nodes[i] = (uint16_t)targets[t];
				now->missing &= ~(UINT64_C(1) << i);
				placed++;
				break;
			}
		}
	}
	return placed;
}

/* Whether some node that could take a missing shard of p answers a ping:
 * while none does (the node is still down and no other can take it),
 * reading the part would be wasted. */
static bool some_target_answers(struct store *s, const struct meta_part *p)
{
	for (unsigned i = 0; i < (unsigned)(p->k + p->m); i++) {
		uint32_t targets[8];

		if (!meta_shard_missing(p, i))
			continue;
		size_t n = repair_targets(s, p, i, targets, G_N_ELEMENTS(targets));
		for (size_t t = 0; t < n; t++) {
			struct net_call ping = {.req = {.op = NET_OP_PING}, .timeout_ms = 2000};

			if (net_pool_call(s->pool, targets[t], &ping) == 0)
				return true;
			store_suspect(s, targets[t]);
		}
	}
	return false;
}

/* Reads p whole (checked against its checksum) and puts the fragments it
 * misses; 0 with *now (placed counts them), -EAGAIN when no node can take
 * them now, or the read's error. */
static int rebuild_part(struct store *s, const struct meta_part *p, struct meta_part *now,
			unsigned *placed, uint64_t *read)
{
	const struct erasure *code;
	struct erasure_fragments f;
	int rc = store_code(s, p->k, p->m, &code);

	if (rc)
		return rc;
	if (!some_target_answers(s, p))
		return -EAGAIN;
	uint8_t *plain = store_buf_alloc(s, p->length);

	if (!plain)
		return -ENOMEM;
	rc = store_part_fetch(s, p, plain);
	*read += p->length;
	if (rc == 0)
		rc = erasure_encode(code, plain, p->length, &f);
	store_buf_free(s, plain, p->length);
	if (rc)
		return rc;
	*placed = place_missing(s, p, &f, now);
	erasure_fragments_release(code, &f);
	return 0;
}

void store_undo_placed(struct store *s, struct meta *m, uint64_t ino, const struct meta_part *old,
		       const struct meta_part *now)
{
	uint8_t oid[16];
	struct meta_part *cur = NULL;
	unsigned n = 0;

	if (meta_get_manifest(m, ino, oid, &cur, &n))
		n = 0;
	for (unsigned i = 0; i < (unsigned)(old->k + old->m); i++) {
		if (meta_shard_missing(now, i) ||
		    (!meta_shard_missing(old, i) && old->nodes[i] == now->nodes[i]))
			continue;
		bool kept = false;
		for (unsigned j = 0; j < n && !kept; j++)
			kept = cur[j].index == old->index && !memcmp(cur[j].object_id, old->object_id, 16) &&
			       !meta_shard_missing(&cur[j], i) && cur[j].nodes[i] == now->nodes[i];
		if (kept)
			continue;
		struct net_call c = {.req = {.op = NET_OP_DELETE}};

		memcpy(c.req.key.object_id, old->object_id, 16);
		c.req.key.part = old->index;
		c.req.key.shard = (uint16_t)i;
		if (net_pool_call(s->pool, now->nodes[i], &c) && c.status != -ENOENT)
			g_message("a shard placed for a replaced part stays on node %u for scrub",
				  now->nodes[i]);
	}
	g_free(cur);
}

const char *store_worker_name(void)
{
	static gsize done;
	static char name[64];

	if (g_once_init_enter(&done)) {
		g_snprintf(name, sizeof(name), "%.48s:%d", g_get_host_name(), (int)getpid());
		g_once_init_leave(&done, 1);
	}
	return name;
}

static void rebuild_and_commit(struct store *s, struct meta *m, const struct meta_degraded *d,
			       struct store_repair_stats *st)
{
	struct meta_part now;
	unsigned placed = 0;
	char hex[33];
	int rc = rebuild_part(s, &d->part, &now, &placed, &st->bytes_read);

	store_oid_hex(d->part.object_id, hex);
	if (rc == -EAGAIN) {
		st->parts_waiting++;
		return;
	}
	if (rc == 0 && placed)
		rc = meta_part_relocate(m, d->ino, &d->part, &now);
	if (rc == -ESTALE) {
		store_undo_placed(s, m, d->ino, &d->part, &now);
		st->parts_changed++;
		return;
	}
	if (rc) {
		g_autofree char *path = NULL;

		meta_path_of(m, d->ino, &path);
		g_warning("file %s (inode %" G_GUINT64_FORMAT ") object %s part %u: not repaired: %s",
			  path ? path : "with no name", d->ino, hex, d->part.index,
			  common_strerror(rc));
		st->parts_failed++;
		return;
	}
	st->shards_rebuilt += placed;
	STORE_COUNT(s, shards_rebuilt, placed);
	if (now.missing)
		st->parts_failed++; /* no node took some of its shards */
	else
		st->parts_repaired++;
}

/* Whether worker ("host:pid") is a process of this host that is gone: a
 * repair daemon killed and started again by systemd need not wait for the
 * leases its last life held. */
static bool gone_here(const char *worker)
{
	const char *colon = strrchr(worker, ':');
	size_t host_len = colon ? (size_t)(colon - worker) : 0;
	const char *host = g_get_host_name();
	char *end;
	long pid = colon ? strtol(colon + 1, &end, 10) : 0;

	if (!colon || *end || pid <= 0 || strlen(host) < host_len ||
	    strncmp(worker, host, host_len) || (host_len < 48 && host[host_len]))
		return false;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

int store_part_lease(struct meta *m, uint64_t ino, const struct meta_part *p)
{
	char holder[META_WORKER_MAX];
	int64_t now = (int64_t)time(NULL);
	int rc = meta_repair_lease(m, ino, p, store_worker_name(), "", REPAIR_LEASE_S, now, holder);

	if (rc == -EBUSY && gone_here(holder)) {
		char dead[META_WORKER_MAX];

		g_strlcpy(dead, holder, sizeof(dead));
		rc = meta_repair_lease(m, ino, p, store_worker_name(), dead, REPAIR_LEASE_S, now,
				       holder);
	}
	return rc;
}

/* Under the part's lease, so that no other worker rebuilds it meanwhile;
 * a part another worker holds, or repaired since the list was read, is
 * left to it. */
static void repair_one(struct store *s, struct meta *m, const struct meta_degraded *d,
		       struct store_repair_stats *st)
{
	int rc = store_part_lease(m, d->ino, &d->part);

	if (rc == -EBUSY || rc == -ESTALE) {
		st->parts_elsewhere++;
		return;
	}
	rebuild_and_commit(s, m, d, st); /* a lease not taken (metadata error): the
					  * manifest's compare-and-set still holds */
	if (rc == 0)
		meta_repair_unlease(m, d->ino, d->part.index, store_worker_name());
}

/*
 * A node whose store answers with another identity than the metadata
 * recorded was wiped or replaced: the shards the manifests place on it
 * are gone, and are marked missing (meta_node_identity_set) for this and
 * later rounds to rebuild, onto it or elsewhere. A node seen for the first
 * time has its identity recorded. Nodes that do not answer are left as
 * they are.
 */
/* Node id's store now has identity: recorded, and if another one was,
 * the shards on it marked missing. */
static void note_identity(struct meta *m, uint32_t id, const char *identity,
			  struct store_repair_stats *st)
{
	char was[META_IDENTITY_MAX] = "";
	uint64_t lost = 0;

	if (meta_node_identity(m, id, was) == 0 && !strcmp(was, identity))
		return;
	int rc = meta_node_identity_set(m, id, identity, &lost);

	if (rc)
		g_warning("node %u: cannot record its store's identity: %s", id, common_strerror(rc));
	else if (lost)
		g_warning("node %u answers with another store than the one the manifests name"
			  " (identity %s, was %s: wiped or replaced): %" G_GUINT64_FORMAT " parts lost"
			  " the shard it held, and repair rebuilds them", id, identity, was, lost);
	st->parts_lost_store += lost;
}

void store_note_identities(struct store *s, struct meta *m)
{
	const struct store_view *v = store_view(s);
	guint n = v->nodes->len;
	struct net_node_status *ns = g_new0(struct net_node_status, n);
	bool *up = g_new0(bool, n);
	struct store_repair_stats unused = {0};

	store_node_statuses(s, v, ns, up);
	for (guint i = 0; i < n; i++)
		if (up[i] && ns[i].identity[0])
			note_identity(m, g_array_index(v->nodes, struct store_node, i).id,
				      ns[i].identity, &unused);
	g_free(ns);
	g_free(up);
}

#define DAMAGED_PAGE 1024u

struct damaged {
	struct meta *m;
	uint32_t node;
	struct store_repair_stats *st;
};

/* A shard the node found bad, marked missing where a manifest places it
 * there. */
static bool note_one_damaged(void *arg, const uint8_t *entry)
{
	struct damaged *d = arg;
	struct net_key k;
	unsigned marked = 0;

	net_key_unpack(entry, &k);
	if (meta_shard_lost(d->m, k.object_id, k.part, k.shard, d->node, &marked) == 0 && marked) {
		char hex[33];

		store_oid_hex(k.object_id, hex);
		g_message("node %u found shard %u of part %u of object %s bad: it is rewritten",
			  d->node, k.shard, k.part, hex);
	}
	d->st->shards_found_bad += marked;
	return true;
}

/* The shards node id found bad, each marked missing where a manifest
 * places it there, for this round to rewrite. */
static void note_damaged(struct store *s, struct meta *m, uint32_t id, struct store_repair_stats *st)
{
	struct damaged d = {m, id, st};

	store_node_list(s, id, NET_OP_DAMAGED, NET_LIST_ENTRY_SIZE, DAMAGED_PAGE, NULL,
			note_one_damaged, &d);
}

/* A node that answers is no longer down or out; one that does not is
 * recorded down, and once down past the cluster's down_out_s its shards
 * are marked missing, for this and later rounds to rebuild elsewhere. */
static void note_health(struct store *s, struct meta *m, uint32_t id, bool up,
			struct store_repair_stats *st)
{
	uint64_t lost = 0;

	if (up) {
		if (meta_node_up(m, id) == 1)
			g_message("node %u answers again", id);
		return;
	}
	if (meta_node_down(m, id, (int64_t)time(NULL), s->cluster->down_out_s, &lost) || !lost)
		return;
	g_warning("node %u has not answered for %u s (down_out_s): the shards of %" G_GUINT64_FORMAT
		  " parts on it are rebuilt on the other nodes", id, s->cluster->down_out_s, lost);
	st->parts_down_out += lost;
}

/*
 * What the nodes say of their stores, at the start of a round. A node
 * whose store answers with another identity than the metadata recorded
 * was wiped or replaced: the shards the manifests place on it are gone,
 * and are marked missing (meta_node_identity_set) for this and later
 * rounds to rebuild, onto it or elsewhere; a node seen for the first time
 * has its identity recorded. A node that found shards bad (scrub, or a
 * read that met a bad block) lists them, and each is marked missing too:
 * the rebuilt shard goes back onto that node, over the bad copy. Nodes
 * that do not answer are recorded down, and put out past down_out_s
 * (note_health).
 */
static void check_nodes(struct store *s, struct meta *m, struct store_repair_stats *st)
{
	const struct store_view *v = store_view(s);
	guint n = v->nodes->len;
	struct net_node_status *ns = g_new0(struct net_node_status, n);
	bool *up = g_new0(bool, n);

	store_node_statuses(s, v, ns, up);
	for (guint i = 0; i < n; i++) {
		uint32_t id = g_array_index(v->nodes, struct store_node, i).id;

		note_health(s, m, id, up[i], st);
		if (up[i] && ns[i].identity[0])
			note_identity(m, id, ns[i].identity, st);
		if (up[i] && ns[i].bad_shards)
			note_damaged(s, m, id, st);
	}
	g_free(ns);
	g_free(up);
}

/* A step that read something tells the metadata this round's rate, at
 * most the bound its caller holds it to (the first steps, before any
 * pause, go faster than the round will). */
static void report_rate(struct meta *m, struct store_repair_cursor *cur, uint64_t read)
{
	gint64 took_us = MAX(g_get_monotonic_time() - cur->round_start_us, 1);
	uint64_t rate;

	cur->round_bytes += read;
	rate = (uint64_t)((double)cur->round_bytes * 1e6 / (double)took_us);
	if (cur->rate_bound)
		rate = MIN(rate, cur->rate_bound);
	if (read)
		meta_repair_report(m, store_worker_name(), rate, (int64_t)time(NULL));
}

/* Whether pass level of a round takes p; else notes if a later one will. */
static bool in_pass(const struct meta_part *p, struct store_repair_cursor *cur)
{
	unsigned held = meta_shards_held(p);

	if (held > p->k + cur->level)
		cur->more = true;
	return cur->level == 0 ? held <= p->k : held == p->k + cur->level;
}

/* After the end of the list: the next pass, or the end of the round. */
static bool next_pass(struct store_repair_cursor *cur)
{
	bool last = !cur->more;

	cur->ino = 0;
	cur->index = 0;
	cur->level = last ? 0 : cur->level + 1;
	cur->more = false;
	return last;
}

/* One part's rebuild on a thread of the step's pool, its counts its own. */
struct repair_job {
	struct store *s;
	struct meta *m;
	const struct meta_degraded *d;
	struct store_repair_stats st;
};

static void run_repair_job(gpointer data, gpointer unused)
{
	struct repair_job *j = data;

	(void)unused;
	repair_one(j->s, j->m, j->d, &j->st);
}

static void stats_add(struct store_repair_stats *to, const struct store_repair_stats *from)
{
	to->parts_repaired += from->parts_repaired;
	to->parts_failed += from->parts_failed;
	to->parts_changed += from->parts_changed;
	to->parts_waiting += from->parts_waiting;
	to->shards_rebuilt += from->shards_rebuilt;
	to->bytes_read += from->bytes_read;
	to->parts_elsewhere += from->parts_elsewhere;
}

/* The parts of this pass among d, REPAIR_PARALLEL at a time: one part's
 * rebuild waits on the network, the disks and the metadata in turn, and
 * another's fills the gaps (measured with `shardfs bench repair`). */
static void repair_side_by_side(struct store *s, struct meta *m, const struct meta_degraded *d,
				unsigned n, struct store_repair_cursor *cur,
				struct store_repair_stats *st)
{
	struct repair_job *jobs = g_new0(struct repair_job, n);
	GThreadPool *pool = g_thread_pool_new(run_repair_job, NULL, REPAIR_PARALLEL, FALSE, NULL);

	for (unsigned i = 0; i < n; i++) {
		if (!in_pass(&d[i].part, cur))
			continue;
		jobs[i] = (struct repair_job){s, m, &d[i], {0}};
		g_thread_pool_push(pool, &jobs[i], NULL);
	}
	g_thread_pool_free(pool, FALSE, TRUE); /* waits for every job */
	for (unsigned i = 0; i < n; i++)
		stats_add(st, &jobs[i].st);
	g_free(jobs);
}

int store_repair_step(struct store *s, struct meta *m, struct store_repair_cursor *cur,
		      unsigned max, struct store_repair_stats *st, bool *wrapped)
{
	struct meta_degraded *d = NULL;
	unsigned n;

	if (cur->ino == 0 && cur->index == 0 && cur->level == 0) { /* a round begins */
		check_nodes(s, m, st);
		cur->round_start_us = g_get_monotonic_time();
		cur->round_bytes = 0;
	}
	int rc = meta_degraded_list(m, cur->ino, cur->index, max, &d, &n);

	if (rc)
		return rc;
	uint64_t read_before = st->bytes_read;

	repair_side_by_side(s, m, d, n, cur, st);
	report_rate(m, cur, st->bytes_read - read_before);
	*wrapped = false;
	if (n < max) {
		*wrapped = next_pass(cur);
	} else {
		cur->ino = d[n - 1].ino;
		cur->index = d[n - 1].part.index;
	}
	g_free(d);
	return 0;
}

gint64 store_repair_pause_us(uint64_t bytes, uint64_t bytes_per_s, gint64 elapsed_us)
{
	if (!bytes_per_s)
		return 0;
	gint64 due = (gint64)((double)bytes / (double)bytes_per_s * G_USEC_PER_SEC);

	return due > elapsed_us ? due - elapsed_us : 0;
}

int store_repair_pass(struct store *s, struct meta *m, struct store_repair_stats *st)
{
	struct store_repair_cursor cur = {0};
	bool wrapped = false;
	int rc = 0;

	*st = (struct store_repair_stats){0};
	while (rc == 0 && !wrapped)
		rc = store_repair_step(s, m, &cur, REPAIR_BATCH, st, &wrapped);
	return rc;
}
