/*
 * server.c - the node side of the protocol: one request per stream.
 *
 * A request is read into memory (header, then a body of at most
 * NET_MAX_SHARD bytes, allocated only after the header passed validation),
 * then handed to the handler on the loop thread. The handler answers from
 * any thread through net_request_reply(), which posts the answer back to
 * the loop. A malformed request gets a NET_EPROTO answer and STOP_SENDING;
 * the connection and the node go on.
 *
 * Flow control: stream credit is returned as bytes arrive (a request's
 * memory is bounded by its validated body length); connection credit is
 * returned at once while less than UNSETTLED_MAX bytes of request bodies
 * wait for their answer, and otherwise only when answers go out, so a
 * client writing faster than the disk is slowed down end to end.
 *
 * Lifetime: a request is referenced by its stream (until the stream
 * closes) and by the handler (until it replies).
 */
#define G_LOG_DOMAIN "shardfs-net"

#include "common/metrics.h"
#include "net.h"
#include "quic.h"

#include <errno.h>
#include <string.h>

#define UNSETTLED_MAX (256u << 20)

struct net_server {
	struct quic_loop *loop;
	struct quic_listener *ls;
	struct net_server_options opt;
	struct quic_conn_ops ops;
	/* Loop thread only. */
	bool draining;
	unsigned open_requests; /* requests whose stream is still open */
	uint64_t unsettled;	/* PUT body bytes received and not yet answered */
	gint handling;		/* requests the handler holds, atomic */
	GHashTable *owed;	/* struct quic_conn * -> bytes held back */
	/* By op, from dispatch to answer; filled on whatever thread answers. */
	struct metrics_hist latency[NET_OP_LAST + 1];
	uint64_t errors[NET_OP_LAST + 1]; /* answers with a status, atomic */
};

struct net_request {
	struct net_server *srv;
	struct quic_conn *c;	/* NULL once the stream is gone */
	struct quic_stream *s;
	uint8_t head[NET_REQ_HEADER_SIZE];
	size_t head_got;
	struct net_req_header hdr;
	uint8_t *body;
	size_t body_got;
	bool dispatched, answered, failed, settled;
	gint64 dispatched_us;
	gint refs;
	/* The answer, carried to the loop thread. */
	uint8_t resp[NET_RESP_HEADER_SIZE];
	void *rbody;
	size_t rlen;
	void (*rfree)(void *);
};

static void request_unref(struct net_request *r)
{
	if (!g_atomic_int_dec_and_test(&r->refs))
		return;
	if (r->rfree && r->rbody) /* an answer nobody could deliver */
		r->rfree(r->rbody);
	g_free(r->body);
	g_free(r);
}

const struct net_req_header *net_request_header(const struct net_request *r)
{
	return &r->hdr;
}

const uint8_t *net_request_body(const struct net_request *r)
{
	return r->body;
}

static void free_resp_body(void *arg)
{
	struct net_request *r = arg;

	if (r->rfree && r->rbody)
		r->rfree(r->rbody);
	r->rbody = NULL;
	request_unref(r);
}

/* A request's body is settled: below the budget again, every connection
 * gets back the credit held from it (held credit may belong to bodies that
 * cannot complete without it). */
static void settle(struct net_server *srv, struct net_request *r)
{
	GHashTableIter it;
	gpointer conn, held;

	if (r->settled)
		return;
	r->settled = true;
	srv->unsettled -= MIN(srv->unsettled, r->hdr.op == NET_OP_PUT ? r->body_got : 0);
	if (srv->unsettled >= UNSETTLED_MAX)
		return;
	g_hash_table_iter_init(&it, srv->owed);
	while (g_hash_table_iter_next(&it, &conn, &held)) {
		quic_conn_consume(conn, GPOINTER_TO_SIZE(held));
		g_hash_table_iter_remove(&it);
	}
}

/* Loop thread: sends the answer carried in r. */
static void send_answer(void *arg)
{
	struct net_request *r = arg;

	settle(r->srv, r);
	if (!r->s) { /* the stream died first */
		request_unref(r);
		return;
	}
	quic_stream_send(r->s, r->resp, NET_RESP_HEADER_SIZE, NULL, NULL, r->rlen == 0);
	if (r->rlen)
		quic_stream_send(r->s, r->rbody, r->rlen, free_resp_body, r, true);
	else
		free_resp_body(r);
}

void net_request_reply(struct net_request *r, int32_t status, uint64_t aux, void *body,
		       size_t len, void (*free_fn)(void *))
{
	struct net_resp_header h = {r->hdr.op, status, body ? len : 0, aux};

	g_assert(!r->answered);
	r->answered = true;
	if (r->dispatched && r->hdr.op >= 1 && r->hdr.op <= NET_OP_LAST) {
		metrics_hist_observe(&r->srv->latency[r->hdr.op],
				     (uint64_t)(g_get_monotonic_time() - r->dispatched_us) * 1000);
		if (status)
			__atomic_add_fetch(&r->srv->errors[r->hdr.op], 1, __ATOMIC_RELAXED);
	}
	if (r->dispatched && !r->failed)
		g_atomic_int_dec_and_test(&r->srv->handling);
	net_resp_encode(&h, r->resp);
	r->rbody = body;
	r->rlen = body ? len : 0;
	r->rfree = free_fn;
	quic_loop_post(r->srv->loop, send_answer, r);
}

/* Loop thread: answers a request that never reached the handler. */
static void refuse(struct net_request *r, uint8_t op, int32_t status)
{
	r->failed = true;
	r->hdr.op = op;
	g_atomic_int_inc(&r->refs);
	net_request_reply(r, status, 0, NULL, 0, NULL);
	quic_stream_stop_reading(r->s, QUIC_APP_PROTOCOL_ERROR);
}

static void dispatch(struct net_server *srv, struct net_request *r)
{
	r->dispatched = true;
	r->dispatched_us = g_get_monotonic_time();
	if (srv->draining) {
		refuse(r, r->hdr.op, -ESHUTDOWN);
		return;
	}
	g_atomic_int_inc(&r->refs); /* the handler's */
	g_atomic_int_inc(&srv->handling);
	srv->opt.handler(srv->opt.arg, r);
}

static void on_stream_open(struct quic_conn *c, struct quic_stream *s)
{
	struct net_server *srv = quic_conn_user(c);
	struct net_request *r = g_new0(struct net_request, 1);

	r->srv = srv;
	r->c = c;
	r->s = s;
	r->refs = 1; /* the stream's */
	srv->open_requests++;
	quic_stream_set_user(s, r);
}

/* Returns connection credit for n bytes now, or holds it back. */
static void credit_conn(struct net_server *srv, struct quic_conn *c, size_t n)
{
	if (srv->unsettled < UNSETTLED_MAX) {
		quic_conn_consume(c, n);
		return;
	}
	gsize held = GPOINTER_TO_SIZE(g_hash_table_lookup(srv->owed, c));

	g_hash_table_insert(srv->owed, c, GSIZE_TO_POINTER(held + n));
}

static size_t take_header(struct net_request *r, const uint8_t *data, size_t len)
{
	size_t n = MIN(len, NET_REQ_HEADER_SIZE - r->head_got);
	uint8_t op;

	memcpy(r->head + r->head_got, data, n);
	r->head_got += n;
	if (r->head_got < NET_REQ_HEADER_SIZE)
		return n;
	if (net_req_decode(r->head, &r->hdr, &op) != 0) {
		memset(&r->hdr, 0, sizeof(r->hdr)); /* nothing of it is to be trusted */
		refuse(r, op, NET_EPROTO);
		return len;
	}
	if (r->hdr.body_len)
		r->body = g_try_malloc(r->hdr.body_len);
	if (r->hdr.body_len && !r->body)
		refuse(r, op, -ENOMEM);
	return n;
}

static void on_stream_data(struct quic_conn *c, struct quic_stream *s, const uint8_t *data,
			   size_t len, bool fin)
{
	struct net_server *srv = quic_conn_user(c);
	struct net_request *r = quic_stream_user(s);
	size_t used = 0;

	quic_stream_consume(s, len);
	credit_conn(srv, c, len);
	if (r->failed || r->dispatched)
		return; /* bytes after a refusal or past FIN: dropped */
	if (r->head_got < NET_REQ_HEADER_SIZE)
		used = take_header(r, data, len);
	if (r->failed)
		return;
	if (r->head_got == NET_REQ_HEADER_SIZE && used < len) {
		size_t n = len - used;

		if (n > r->hdr.body_len - r->body_got) {
			refuse(r, r->hdr.op, NET_EPROTO); /* more body than announced */
			return;
		}
		memcpy(r->body + r->body_got, data + used, n);
		r->body_got += n;
		if (r->hdr.op == NET_OP_PUT)
			srv->unsettled += n;
	}
	if (!fin)
		return;
	if (r->head_got < NET_REQ_HEADER_SIZE || r->body_got != r->hdr.body_len)
		refuse(r, r->head_got == NET_REQ_HEADER_SIZE ? r->hdr.op : 0, NET_EPROTO);
	else
		dispatch(srv, r);
}

static void on_stream_close(struct quic_conn *c, struct quic_stream *s, bool reset)
{
	struct net_server *srv = quic_conn_user(c);
	struct net_request *r = quic_stream_user(s);

	(void)reset;
	if (!r)
		return;
	r->s = NULL;
	r->c = NULL;
	srv->open_requests--;
	if (!r->dispatched && !r->failed)
		settle(srv, r); /* abandoned mid-body: its bytes wait for nothing */
	request_unref(r);
}

static void on_conn_close(struct quic_conn *c, int error)
{
	struct net_server *srv = quic_conn_user(c);

	(void)error;
	g_hash_table_remove(srv->owed, c);
}

int net_server_start(const struct net_server_options *o, struct net_tls *tls,
		     struct net_server **out)
{
	struct net_server *srv = g_new0(struct net_server, 1);
	struct quic_settings set;
	int rc;

	srv->opt = *o;
	for (unsigned op = 0; op <= NET_OP_LAST; op++)
		metrics_hist_init(&srv->latency[op], &metrics_latency_buckets);
	srv->ops = (struct quic_conn_ops){
		.on_stream_open = on_stream_open,
		.on_stream_data = on_stream_data,
		.on_stream_close = on_stream_close,
		.on_conn_close = on_conn_close,
	};
	srv->owed = g_hash_table_new(g_direct_hash, g_direct_equal);
	srv->loop = quic_loop_new();
	quic_settings_default(&set);
	rc = quic_listen(srv->loop, o->host, o->port, tls, &set, &srv->ops, srv, &srv->ls);
	if (rc < 0) {
		quic_loop_free(srv->loop);
		g_hash_table_destroy(srv->owed);
		g_free(srv);
		return rc;
	}
	quic_loop_start(srv->loop, "net-server");
	*out = srv;
	return 0;
}

uint16_t net_server_port(const struct net_server *s)
{
	return quic_listener_port(s->ls);
}

struct drain {
	struct net_server *srv;
	GMutex m;
	GCond c;
	bool idle, done;
};

static void check_idle(void *arg)
{
	struct drain *d = arg;

	d->srv->draining = true;
	g_mutex_lock(&d->m);
	d->idle = d->srv->open_requests == 0 && g_atomic_int_get(&d->srv->handling) == 0;
	d->done = true;
	g_cond_signal(&d->c);
	g_mutex_unlock(&d->m);
}

static void close_listener(void *arg)
{
	struct drain *d = arg;

	quic_listener_close(d->srv->ls);
	check_idle(d);
}

/* Runs fn on the loop thread and waits for it to signal d. */
static bool run_and_wait(struct drain *d, void (*fn)(void *))
{
	g_mutex_lock(&d->m);
	d->done = false;
	g_mutex_unlock(&d->m);
	quic_loop_post(d->srv->loop, fn, d);
	g_mutex_lock(&d->m);
	while (!d->done)
		g_cond_wait(&d->c, &d->m);
	g_mutex_unlock(&d->m);
	return d->idle;
}

void net_server_stop(struct net_server *srv, unsigned timeout_ms)
{
	struct drain d = {.srv = srv};
	gint64 until = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	if (!srv)
		return;
	g_mutex_init(&d.m);
	g_cond_init(&d.c);
	/* Streams close once answers are acknowledged: wait for that. */
	while (!run_and_wait(&d, check_idle) && g_get_monotonic_time() < until)
		g_usleep(10000);
	run_and_wait(&d, close_listener);
	quic_loop_free(srv->loop);
	g_mutex_clear(&d.m);
	g_cond_clear(&d.c);
	g_hash_table_destroy(srv->owed);
	g_free(srv);
}

void net_server_metrics(const struct net_server *srv, GString *out)
{
	static const char *const count = "shardfs_node_requests_total";
	static const char *const failed = "shardfs_node_request_errors_total";
	static const char *const took = "shardfs_node_request_duration_seconds";
	char labels[32];

	metrics_family(out, count, "counter", "Requests answered, by operation.");
	for (unsigned op = 1; op <= NET_OP_LAST; op++) {
		const struct metrics_hist *h = &srv->latency[op];
		uint64_t n = 0;

		for (unsigned i = 0; i <= h->b->n; i++)
			n += __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
		g_snprintf(labels, sizeof(labels), "op=\"%s\"", net_op_name(op));
		metrics_sample_u64(out, count, labels, n);
	}
	metrics_family(out, failed, "counter", "Requests answered with an error status, by operation.");
	for (unsigned op = 1; op <= NET_OP_LAST; op++) {
		g_snprintf(labels, sizeof(labels), "op=\"%s\"", net_op_name(op));
		metrics_sample_u64(out, failed, labels, __atomic_load_n(&srv->errors[op], __ATOMIC_RELAXED));
	}
	metrics_family(out, took, "histogram",
		       "Time from a request's last byte to its answer, by operation.");
	for (unsigned op = 1; op <= NET_OP_LAST; op++) {
		g_snprintf(labels, sizeof(labels), "op=\"%s\"", net_op_name(op));
		metrics_hist_write(out, took, labels, &srv->latency[op]);
	}
}
