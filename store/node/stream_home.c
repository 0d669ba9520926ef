/*
 * stream_home.c - stream rings on their home node.
 *
 * A stream is a ring of its last ring_bytes bytes with absolute offsets:
 * bytes [oldest, head) are held, byte p at buf[p % cap]. An append copies
 * one chunk whole under the lock, so chunks of concurrent writers never
 * interleave; the ring remembers where recent chunks start, so a reader
 * that fell out of the ring skips forward to a chunk boundary rather than
 * into the middle of one.
 *
 * Readers long-poll: a READ at the head waits (parked) until an append,
 * the last writer's close, or LONG_POLL_MS, then is answered. Memory is one
 * ring per stream whatever the number of readers: a reader is a token and a
 * position. Under the lossless policy an append that would overwrite bytes
 * a reader has not asked past is parked instead (and answered -EAGAIN after
 * APPEND_WAIT_MS, for the writer to retry): writers go at the pace of the
 * slowest reader.
 *
 * Handles (tokens) expire after NET_STREAM_LEASE_S without a request, so a
 * client that died neither holds a stream open (its readers would never
 * get EOF) nor blocks a lossless writer forever.
 *
 * Replies are collected under the lock and sent after it is released.
 */
#define G_LOG_DOMAIN "shardfs-node"

#include "stream_home.h"

#include "common/byte_ring.h"

#include <errno.h>
#include <string.h>

#define LONG_POLL_MS 1000
#define APPEND_WAIT_MS 2000
#define MAX_STARTS 65536u /* chunk starts remembered per stream */

struct handle {
	uint64_t token;
	bool writer;
	bool armed;	 /* a writer was seen while open: EOF may come */
	uint64_t pos;	 /* reader: the position of its last READ */
	uint32_t local_readers;
	gint64 seen_us;
};

struct parked {
	struct net_request *r;
	gint64 until_us;
};

struct stream {
	uint8_t id[16];
	struct common_byte_ring ring; /* keeps chunk starts */
	bool lossless;
	GHashTable *handles; /* token -> struct handle */
	unsigned writers;
	GQueue reads, appends; /* struct parked, in arrival order */
	uint64_t dropped, chunks;
};

struct answer {
	struct net_request *r;
	int32_t status;
	uint64_t aux;
	void *body;
	size_t len;
};

struct node_streams {
	GMutex lock;
	GHashTable *streams; /* id -> struct stream */
	GArray *out;	     /* struct answer, sent after unlock */
};

static guint id_hash(gconstpointer p)
{
	guint h;

	memcpy(&h, p, sizeof(h)); /* ids are random */
	return h;
}

static gboolean id_equal(gconstpointer a, gconstpointer b)
{
	return memcmp(a, b, 16) == 0;
}

static void reply(struct node_streams *s, struct net_request *r, int32_t status, uint64_t aux,
		  void *body, size_t len)
{
	struct answer a = {r, status, aux, body, len};

	g_array_append_val(s->out, a);
}

static void send_answers(struct node_streams *s)
{
	GArray *out = s->out;

	s->out = g_array_new(FALSE, FALSE, sizeof(struct answer));
	g_mutex_unlock(&s->lock);
	for (guint i = 0; i < out->len; i++) {
		struct answer *a = &g_array_index(out, struct answer, i);

		net_request_reply(a->r, a->status, a->aux, a->body, a->len, a->body ? g_free : NULL);
	}
	g_array_free(out, TRUE);
}

static void stream_free(gpointer p)
{
	struct stream *st = p;

	g_hash_table_destroy(st->handles);
	common_byte_ring_fini(&st->ring);
	g_free(st);
}

struct node_streams *node_streams_new(void)
{
	struct node_streams *s = g_new0(struct node_streams, 1);

	g_mutex_init(&s->lock);
	s->streams = g_hash_table_new_full(id_hash, id_equal, NULL, stream_free);
	s->out = g_array_new(FALSE, FALSE, sizeof(struct answer));
	return s;
}

void node_streams_free(struct node_streams *s)
{
	if (!s)
		return;
	node_streams_stop(s, -ESHUTDOWN);
	g_hash_table_destroy(s->streams);
	g_array_free(s->out, TRUE);
	g_mutex_clear(&s->lock);
	g_free(s);
}

/* ---- the ring ---- */

/* The lowest position a lossless writer must not overwrite. */
static uint64_t slowest_reader(struct stream *st)
{
	GHashTableIter it;
	gpointer v;
	uint64_t min = st->ring.head;

	g_hash_table_iter_init(&it, st->handles);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct handle *h = v;

		if (!h->writer)
			min = MIN(min, MAX(h->pos, st->ring.oldest));
	}
	return min;
}

static bool append_fits(struct stream *st, size_t n)
{
	return !st->lossless || n <= common_byte_ring_room(&st->ring, slowest_reader(st));
}

/* ---- requests ---- */

static struct handle *handle_of(struct stream *st, uint64_t token)
{
	return st ? g_hash_table_lookup(st->handles, &token) : NULL;
}

/* Answers a READ if it can be: data, or EOF. */
static bool try_read(struct node_streams *s, struct stream *st, struct net_request *r)
{
	const struct net_req_header *h = net_request_header(r);
	struct net_stream_read req;

	/* the header's decoder checked the length */
	(void)net_stream_read_decode(net_request_body(r), h->body_len, &req);
	struct handle *hd = handle_of(st, req.token);
	if (!hd) {
		reply(s, r, -EBADF, 0, NULL, 0);
		return true;
	}
	uint64_t pos = h->offset;
	st->dropped += common_byte_ring_skip_lost(&st->ring, &pos);
	if (pos < st->ring.head) {
		size_t n = (size_t)MIN(h->length, st->ring.head - pos);
		uint8_t *body = g_malloc(n);

		n = common_byte_ring_copy_out(&st->ring, pos, body, n);
		reply(s, r, 0, pos, body, n);
		return true;
	}
	if (st->writers == 0 && hd->armed) {
		reply(s, r, NET_EEOF, st->ring.head, NULL, 0);
		return true;
	}
	return false;
}

static void park(GQueue *q, struct net_request *r, unsigned ms)
{
	struct parked *p = g_new(struct parked, 1);

	p->r = r;
	p->until_us = g_get_monotonic_time() + (gint64)ms * 1000;
	g_queue_push_tail(q, p);
}

static void wake_reads(struct node_streams *s, struct stream *st)
{
	for (GList *l = st->reads.head, *next; l; l = next) {
		struct parked *p = l->data;

		next = l->next;
		if (try_read(s, st, p->r)) {
			g_queue_delete_link(&st->reads, l);
			g_free(p);
		}
	}
}

static void do_append(struct node_streams *s, struct stream *st, struct net_request *r)
{
	const struct net_req_header *h = net_request_header(r);

	uint64_t at = st->ring.head;
	int rc = common_byte_ring_put(&st->ring, at, net_request_body(r), h->body_len);

	if (rc) { /* -ENOMEM: a client may ask for a ring of 1 GiB */
		reply(s, r, rc, 0, NULL, 0);
		return;
	}
	st->chunks++;
	reply(s, r, 0, at, NULL, 0);
}

/* Parked appends go first, in order, while they fit. */
static void wake_appends(struct node_streams *s, struct stream *st)
{
	bool appended = false;

	while (!g_queue_is_empty(&st->appends)) {
		struct parked *p = g_queue_peek_head(&st->appends);

		if (!append_fits(st, net_request_header(p->r)->body_len))
			break;
		g_queue_pop_head(&st->appends);
		do_append(s, st, p->r);
		g_free(p);
		appended = true;
	}
	if (appended)
		wake_reads(s, st);
}

static void on_read(struct node_streams *s, struct stream *st, struct net_request *r)
{
	const struct net_req_header *h = net_request_header(r);
	struct net_stream_read req;

	(void)net_stream_read_decode(net_request_body(r), h->body_len, &req);
	struct handle *hd = handle_of(st, req.token);
	if (hd && !hd->writer) {
		hd->pos = h->offset;
		hd->local_readers = req.local_readers;
		hd->seen_us = g_get_monotonic_time();
	}
	if (!try_read(s, st, r))
		park(&st->reads, r, LONG_POLL_MS);
	if (st->lossless)
		wake_appends(s, st);
}

static void on_append(struct node_streams *s, struct stream *st, struct net_request *r)
{
	const struct net_req_header *h = net_request_header(r);
	struct handle *hd = handle_of(st, h->offset);

	if (!hd || !hd->writer) {
		reply(s, r, -EBADF, 0, NULL, 0);
		return;
	}
	hd->seen_us = g_get_monotonic_time();
	if (h->body_len > st->ring.cap) {
		reply(s, r, -EFBIG, 0, NULL, 0);
		return;
	}
	if (!g_queue_is_empty(&st->appends) || !append_fits(st, h->body_len)) {
		park(&st->appends, r, APPEND_WAIT_MS);
		return;
	}
	do_append(s, st, r);
	wake_reads(s, st);
}

static struct stream *stream_new(const uint8_t id[16], uint64_t cap, bool lossless)
{
	struct stream *st = g_new0(struct stream, 1);

	memcpy(st->id, id, 16);
	common_byte_ring_init(&st->ring, cap, 0);
	common_byte_ring_keep_starts(&st->ring, MAX_STARTS);
	st->lossless = lossless;
	st->handles = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, g_free);
	g_queue_init(&st->reads);
	g_queue_init(&st->appends);
	return st;
}

static void arm_readers(struct stream *st)
{
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, st->handles);
	while (g_hash_table_iter_next(&it, NULL, &v))
		((struct handle *)v)->armed = true;
}

/* An idle stream takes the ring size and policy of whoever opens it. */
static void configure(struct stream *st, uint64_t cap, bool lossless)
{
	if (g_hash_table_size(st->handles) == 0) {
		st->lossless = lossless;
		common_byte_ring_resize(&st->ring, cap); /* -EBUSY: it holds bytes */
	}
}

static void on_open(struct node_streams *s, struct stream *st, struct net_request *r)
{
	const struct net_req_header *h = net_request_header(r);
	struct net_stream_open req;

	if (net_stream_open_decode(net_request_body(r), h->body_len, &req)) {
		reply(s, r, NET_EPROTO, 0, NULL, 0);
		return;
	}
	uint64_t base = req.base, cap = req.ring_bytes;
	uint32_t mode = req.mode;

	if (cap == 0)
		cap = NET_STREAM_DEFAULT_RING;
	if (cap > NET_MAX_STREAM_RING || (mode & ~(NET_STREAM_WRITER | NET_STREAM_LOSSLESS))) {
		reply(s, r, -EINVAL, 0, NULL, 0);
		return;
	}
	if (!st) {
		st = stream_new(h->key.object_id, cap, mode & NET_STREAM_LOSSLESS);
		g_hash_table_insert(s->streams, st->id, st);
	}
	if (handle_of(st, h->offset)) {
		reply(s, r, -EEXIST, st->ring.head, NULL, 0);
		return;
	}
	configure(st, cap, mode & NET_STREAM_LOSSLESS);
	if (base > st->ring.head) /* the node restarted: offsets continue */
		common_byte_ring_restart(&st->ring, base);
	struct handle *hd = g_new0(struct handle, 1);
	hd->token = h->offset;
	hd->writer = mode & NET_STREAM_WRITER;
	hd->pos = st->ring.oldest;
	hd->seen_us = g_get_monotonic_time();
	g_hash_table_insert(st->handles, &hd->token, hd);
	if (hd->writer) {
		st->writers++;
		arm_readers(st);
	}
	hd->armed = st->writers > 0;
	uint8_t *body = g_malloc(NET_STREAM_OPENED_SIZE);

	net_stream_opened_encode(&(struct net_stream_opened){st->ring.head, st->ring.oldest}, body);
	reply(s, r, 0, st->ring.head, body, NET_STREAM_OPENED_SIZE);
}

static void drop_handle(struct node_streams *s, struct stream *st, struct handle *hd)
{
	bool writer = hd->writer;

	g_hash_table_remove(st->handles, &hd->token);
	if (writer && --st->writers == 0)
		wake_reads(s, st); /* EOF for readers that have everything */
	if (!writer && st->lossless)
		wake_appends(s, st);
}

static void on_close(struct node_streams *s, struct stream *st, struct net_request *r)
{
	struct handle *hd = handle_of(st, net_request_header(r)->offset);

	if (!hd) {
		reply(s, r, -EBADF, 0, NULL, 0);
		return;
	}
	drop_handle(s, st, hd);
	reply(s, r, 0, st->ring.head, NULL, 0);
}

static void on_keep(struct node_streams *s, struct stream *st, struct net_request *r)
{
	struct handle *hd = handle_of(st, net_request_header(r)->offset);

	if (hd)
		hd->seen_us = g_get_monotonic_time();
	reply(s, r, hd ? 0 : -EBADF, 0, NULL, 0);
}

/* Reader subscriptions (handles) and the local readers behind them. */
static void count_readers(const struct stream *st, unsigned *handles, unsigned *readers)
{
	GHashTableIter it;
	gpointer v;

	*handles = *readers = 0;
	g_hash_table_iter_init(&it, st->handles);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct handle *h = v;

		if (!h->writer) {
			(*handles)++;
			*readers += h->local_readers ? h->local_readers : 1;
		}
	}
}

void node_streams_totals(struct node_streams *s, struct node_stream_totals *t)
{
	GHashTableIter it;
	gpointer v;

	*t = (struct node_stream_totals){0};
	g_mutex_lock(&s->lock);
	g_hash_table_iter_init(&it, s->streams);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct stream *st = v;
		unsigned handles, readers;

		count_readers(st, &handles, &readers);
		t->streams++;
		t->writers += st->writers;
		t->readers += readers;
		t->ring_bytes += st->ring.cap;
		t->bytes_dropped += st->dropped;
	}
	g_mutex_unlock(&s->lock);
}

static void on_stat(struct node_streams *s, struct stream *st, struct net_request *r)
{
	unsigned handles, readers;

	if (!st) {
		reply(s, r, -ENOENT, 0, NULL, 0);
		return;
	}
	count_readers(st, &handles, &readers);
	struct net_stream_stat ns = {
		.head = st->ring.head, .oldest = st->ring.oldest, .ring_bytes = st->ring.cap,
		.lossless = st->lossless, .writers = st->writers, .readers = readers,
		.subscriptions = handles, .dropped = st->dropped, .chunks = st->chunks,
	};
	GString *t = g_string_new(NULL);

	net_stream_stat_encode(&ns, t);
	size_t len = t->len;
	reply(s, r, 0, st->ring.head, g_string_free(t, FALSE), len);
}

void node_streams_handle(struct node_streams *s, struct net_request *r)
{
	const struct net_req_header *h = net_request_header(r);

	g_mutex_lock(&s->lock);
	struct stream *st = g_hash_table_lookup(s->streams, h->key.object_id);
	switch (h->op) {
	case NET_OP_STREAM_OPEN:
		on_open(s, st, r);
		break;
	case NET_OP_STREAM_CLOSE:
		on_close(s, st, r);
		break;
	case NET_OP_STREAM_APPEND:
		on_append(s, st, r);
		break;
	case NET_OP_STREAM_READ:
		if (st)
			on_read(s, st, r);
		else
			reply(s, r, -EBADF, 0, NULL, 0);
		break;
	case NET_OP_STREAM_KEEP:
		on_keep(s, st, r);
		break;
	default:
		on_stat(s, st, r);
	}
	send_answers(s);
}

/* ---- time ---- */

static void expire_parked(struct node_streams *s, GQueue *q, gint64 now, bool reads)
{
	for (GList *l = q->head, *next; l; l = next) {
		struct parked *p = l->data;

		next = l->next;
		if (p->until_us > now)
			continue;
		if (reads) /* nothing yet: the reader asks again */
			reply(s, p->r, 0, net_request_header(p->r)->offset, NULL, 0);
		else
			reply(s, p->r, -EAGAIN, 0, NULL, 0);
		g_queue_delete_link(q, l);
		g_free(p);
	}
}

static void expire_handles(struct node_streams *s, struct stream *st, gint64 now)
{
	GHashTableIter it;
	gpointer v;
	GPtrArray *gone = g_ptr_array_new();

	g_hash_table_iter_init(&it, st->handles);
	while (g_hash_table_iter_next(&it, NULL, &v))
		if (now - ((struct handle *)v)->seen_us > NET_STREAM_LEASE_S * G_USEC_PER_SEC)
			g_ptr_array_add(gone, v);
	for (guint i = 0; i < gone->len; i++)
		drop_handle(s, st, gone->pdata[i]);
	g_ptr_array_free(gone, TRUE);
}

void node_streams_tick(struct node_streams *s)
{
	node_streams_tick_at(s, g_get_monotonic_time());
}

void node_streams_tick_at(struct node_streams *s, gint64 now)
{
	GHashTableIter it;
	gpointer v;

	g_mutex_lock(&s->lock);
	g_hash_table_iter_init(&it, s->streams);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct stream *st = v;

		expire_handles(s, st, now);
		expire_parked(s, &st->reads, now, true);
		expire_parked(s, &st->appends, now, false);
	}
	send_answers(s);
}

void node_streams_stop(struct node_streams *s, int status)
{
	GHashTableIter it;
	gpointer v;

	g_mutex_lock(&s->lock);
	g_hash_table_iter_init(&it, s->streams);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct stream *st = v;
		struct parked *p;

		while ((p = g_queue_pop_head(&st->reads)) || (p = g_queue_pop_head(&st->appends))) {
			reply(s, p->r, status, 0, NULL, 0);
			g_free(p);
		}
	}
	send_answers(s);
}
