/*
 * stream.c - stream handles over the connection pool.
 *
 * The home node is the first node of the ring's order for the stream id
 * that answers; a node that fails a request is suspected (store_suspect)
 * and passed over by the next open, so that a writer reopening after its
 * home node died lands on the next node of the ring, and readers opening
 * later follow it there. Each request has a short deadline: a dead or
 * frozen home node turns into an error within a few seconds, never a hang.
 */
#define G_LOG_DOMAIN "shardfs-store"

#include "stream.h"
#include "store_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#define CALL_TIMEOUT_MS 3000

G_STATIC_ASSERT(STORE_STREAM_RING_MAX == NET_MAX_STREAM_RING);
G_STATIC_ASSERT(STORE_STREAM_RING_DEFAULT == NET_STREAM_DEFAULT_RING);
#define STAT_MAX 1024

struct store_stream {
	struct store *s;
	uint8_t id[16];
	uint32_t node;
	uint64_t token;
};

static bool transport_error(int rc)
{
	return rc == NET_ETIMEDOUT || rc == NET_ECONNLOST || rc == -ECONNREFUSED ||
	       rc == NET_ETLSREFUSED || rc == NET_ETLSVERIFY ||
	       rc == -ESHUTDOWN || rc == NET_EPROTO;
}

static int map_error(int rc)
{
	return rc == NET_EEOF ? STORE_EEOF : rc;
}

/* The ring's order for the stream, nodes not suspected first. */
static size_t home_candidates(struct store *s, const uint8_t id[16], uint32_t *out, size_t max)
{
	uint32_t all[64], n = (uint32_t)ring_closest(store_ring(s), ring_key_hash(id, 0),
						     MIN(max, 64), all, NULL, 0);
	size_t got = 0;

	for (int pass = 0; pass < 2; pass++)
		for (uint32_t i = 0; i < n; i++)
			if (store_is_suspect(s, all[i]) == (pass == 1))
				out[got++] = all[i];
	return got;
}

static int call(struct store *s, uint32_t node, struct net_call *c)
{
	c->timeout_ms = CALL_TIMEOUT_MS;
	int rc = net_pool_call(s->pool, node, c);

	if (transport_error(rc))
		store_suspect(s, node);
	return rc;
}

static struct net_call stream_call(const struct store_stream *h, uint8_t op)
{
	struct net_call c = {.req = {.op = op, .offset = h->token}};

	memcpy(c.req.key.object_id, h->id, 16);
	return c;
}

static uint64_t new_token(void)
{
	uint64_t t = 0;

	while (t == 0)
		if (getrandom(&t, sizeof(t), 0) != sizeof(t))
			t = ((uint64_t)g_random_int() << 32) | g_random_int();
	return t;
}

static int open_on(struct store_stream *h, uint32_t node, const struct store_stream_options *o,
		   uint64_t *head, uint64_t *oldest)
{
	struct net_stream_open req = {
		.base = o->base,
		.ring_bytes = o->ring_bytes,
		.mode = (o->writer ? NET_STREAM_WRITER : 0) | (o->lossless ? NET_STREAM_LOSSLESS : 0),
	};
	uint8_t body[NET_STREAM_OPEN_SIZE], resp[NET_STREAM_OPENED_SIZE];
	struct net_stream_opened opened;
	struct net_call c = stream_call(h, NET_OP_STREAM_OPEN);

	net_stream_open_encode(&req, body);
	c.req.body_len = sizeof(body);
	c.body = body;
	c.resp_buf = resp;
	c.resp_cap = sizeof(resp);
	int rc = call(h->s, node, &c);
	if (rc == 0)
		rc = net_stream_opened_decode(resp, (size_t)c.resp.body_len, &opened);
	if (rc == 0) {
		if (head)
			*head = opened.head;
		if (oldest)
			*oldest = opened.oldest;
	}
	return rc;
}

int store_stream_open(struct store *s, const uint8_t id[16], const struct store_stream_options *o,
		      struct store_stream **out, uint64_t *head, uint64_t *oldest)
{
	struct store_stream *h = g_new0(struct store_stream, 1);
	uint32_t nodes[64];
	size_t n = home_candidates(s, id, nodes, G_N_ELEMENTS(nodes));
	int rc = STORE_EUNAVAIL;

	h->s = s;
	memcpy(h->id, id, 16);
	h->token = new_token();
	for (size_t i = 0; i < n; i++) {
		rc = open_on(h, nodes[i], o, head, oldest);
		h->node = nodes[i];
		if (!transport_error(rc))
			break;
	}
	if (rc < 0) {
		g_free(h);
		return transport_error(rc) ? STORE_EUNAVAIL : rc;
	}
	*out = h;
	return 0;
}

int store_stream_close(struct store_stream *h, uint64_t *head)
{
	if (!h)
		return 0;
	struct net_call c = stream_call(h, NET_OP_STREAM_CLOSE);
	int rc = call(h->s, h->node, &c);

	if (rc == 0 && head)
		*head = c.resp.aux;
	g_free(h);
	return rc;
}

int store_stream_append(struct store_stream *h, const void *buf, size_t n, uint64_t *at)
{
	struct net_call c = stream_call(h, NET_OP_STREAM_APPEND);

	c.req.body_len = n;
	c.body = buf;
	int rc = call(h->s, h->node, &c);
	if (rc == 0 && at)
		*at = c.resp.aux;
	return rc;
}

int store_stream_read(struct store_stream *h, uint64_t pos, void *buf, size_t cap,
		      uint32_t local_readers, uint64_t *first, size_t *got)
{
	struct net_stream_read req = {.token = h->token, .local_readers = local_readers};
	uint8_t body[NET_STREAM_READ_SIZE];
	struct net_call c = stream_call(h, NET_OP_STREAM_READ);

	net_stream_read_encode(&req, body);
	c.req.offset = pos;
	c.req.length = MIN(cap, NET_MAX_STREAM_READ);
	c.req.body_len = sizeof(body);
	c.body = body;
	c.resp_buf = buf;
	c.resp_cap = cap;
	*got = 0;
	int rc = call(h->s, h->node, &c);
	if (rc == 0 && c.resp.body_len && c.resp.aux < pos)
		rc = NET_EPROTO; /* data from before the position asked */
	if (rc == 0) {
		*first = c.resp.aux;
		*got = (size_t)c.resp.body_len;
	}
	return map_error(rc);
}

int store_stream_keep(struct store_stream *h)
{
	struct net_call c = stream_call(h, NET_OP_STREAM_KEEP);

	return call(h->s, h->node, &c);
}

int store_stream_stat(struct store *s, const uint8_t id[16], struct store_stream_stat *st)
{
	uint32_t nodes[64];
	size_t n = home_candidates(s, id, nodes, G_N_ELEMENTS(nodes));
	char text[STAT_MAX];
	size_t text_len = 0;
	uint32_t answered = 0;
	int rc = STORE_EUNAVAIL;

	for (size_t i = 0; i < n; i++) {
		struct net_call c = {.req = {.op = NET_OP_STREAM_STAT}, .resp_buf = text,
				     .resp_cap = STAT_MAX};

		memcpy(c.req.key.object_id, id, 16);
		answered = nodes[i];
		rc = call(s, nodes[i], &c);
		if (rc == 0)
			text_len = (size_t)c.resp.body_len;
		if (!transport_error(rc))
			break;
	}
	if (rc < 0)
		return transport_error(rc) ? STORE_EUNAVAIL : rc;
	struct net_stream_stat ns;

	net_stream_stat_decode(text, text_len, &ns);
	*st = (struct store_stream_stat){
		.head = ns.head,
		.oldest = ns.oldest,
		.ring_bytes = ns.ring_bytes,
		.dropped = ns.dropped,
		.chunks = ns.chunks,
		.writers = ns.writers,
		.readers = ns.readers,
		.subscriptions = ns.subscriptions,
		.lossless = ns.lossless,
		.node = answered,
	};
	return 0;
}
