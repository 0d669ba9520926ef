/*
 * pool.c - the client side: one QUIC connection per node, shared by every
 * thread of the process, one stream per request.
 *
 * Calls are posted to the pool's loop thread. A node's connection is dialled
 * on first use and again after it died; calls wait in the node's queue while
 * it is being dialled or while the node's stream limit is reached. Each call
 * has a deadline; a sweep every SWEEP_MS fails late calls with
 * NET_ETIMEDOUT and resets their streams, and a node that let a call time
 * out has its connection closed, since a node that was killed and
 * restarted never answers on the old connection: the next call re-dials.
 * Both halves of every stream are closed when a call ends, so a connection
 * never runs out of streams.
 */
#define G_LOG_DOMAIN "shardfs-net"

#include "common/metrics.h"
#include "common/waiter.h"
#include "net.h"
#include "quic.h"

#include <errno.h>
#include <string.h>

#define SWEEP_MS 50

struct pool_node {
	struct net_pool *pool;
	uint32_t id;
	char *host;
	uint16_t port;
	struct quic_conn *c; /* NULL when not connected */
	GQueue waiting;	     /* struct call_state waiting for the connection or a stream */
	/* Shard puts and gets, [0] put, [1] get: filled on the loop thread,
	 * read by any (net_pool_metrics). */
	struct metrics_hist latency[2];
	uint64_t errors[2];
};

struct call_state {
	struct net_call *call;
	net_call_done_fn done;
	void *arg;
	struct net_pool *pool;
	uint32_t node_id;
	struct pool_node *node;
	struct quic_stream *s;
	gint64 deadline_us, start_us;
	uint8_t head[NET_REQ_HEADER_SIZE];
	uint8_t rhead[NET_RESP_HEADER_SIZE];
	size_t rhead_got, body_got;
	bool finished;
};

struct net_pool {
	struct quic_loop *loop;
	struct net_tls *tls;
	struct net_pool_options opt;
	struct quic_settings set;
	struct quic_conn_ops ops;
	GHashTable *nodes;	/* id -> struct pool_node; changed on the loop thread
				 * under nodes_lock, which other threads read under */
	GMutex nodes_lock;
	GList *inflight;	/* struct call_state with a stream, loop thread */
	bool sweeping;
};

void net_pool_options_default(struct net_pool_options *o)
{
	o->timeout_ms = 10000;
	o->idle_timeout_ms = 15000;
	o->keepalive_ms = 3000;
}

static void complete(struct call_state *cs)
{
	cs->done(cs->arg, cs->call);
	g_free(cs);
}

/*
 * Settles a call. Its stream may still need the request bytes (ngtcp2
 * retransmits from them until they are acknowledged, even after a reset),
 * so while the stream lives the caller hears of the outcome only when it
 * closes: until then its body must stay valid. A silent node's stream
 * closes with its connection, which the sweep closes.
 */
/* Latency and errors of shard puts and gets, by node. */
static void measure(struct call_state *cs, int status)
{
	uint8_t op = cs->call->req.op;
	struct pool_node *n = g_hash_table_lookup(cs->pool->nodes, GUINT_TO_POINTER(cs->node_id));
	unsigned i = op == NET_OP_PUT ? 0 : 1;

	if (!n || (op != NET_OP_PUT && op != NET_OP_GET))
		return;
	metrics_hist_observe(&n->latency[i], (uint64_t)(quic_loop_now_us() - cs->start_us) * 1000);
	if (status)
		__atomic_add_fetch(&n->errors[i], 1, __ATOMIC_RELAXED);
}

static void finish(struct call_state *cs, int status)
{
	if (cs->finished)
		return;
	cs->finished = true;
	cs->call->status = status;
	measure(cs, status);
	cs->pool->inflight = g_list_remove(cs->pool->inflight, cs);
	if (!cs->s) {
		complete(cs);
		return;
	}
	if (status != 0 && status != cs->call->resp.status)
		quic_stream_reset(cs->s, QUIC_APP_CANCELLED);
}

static void start_stream(struct call_state *cs, struct quic_stream *s)
{
	struct net_call *call = cs->call;

	cs->s = s;
	quic_stream_set_user(s, cs);
	net_req_encode(&call->req, cs->head);
	quic_stream_send(s, cs->head, sizeof(cs->head), NULL, NULL, call->req.body_len == 0);
	if (call->req.body_len)
		quic_stream_send(s, call->body, call->req.body_len, NULL, NULL, true);
	cs->pool->inflight = g_list_prepend(cs->pool->inflight, cs);
}

/* Starts as many waiting calls as the node's stream limit allows. */
static void drain_waiting(struct pool_node *n)
{
	struct call_state *cs;
	struct quic_stream *s;

	while ((cs = g_queue_peek_head(&n->waiting))) {
		if (quic_stream_open(n->c, &s) != 0)
			return;
		g_queue_pop_head(&n->waiting);
		start_stream(cs, s);
	}
}

static void on_ready(struct quic_conn *c)
{
	drain_waiting(quic_conn_user(c));
}

static void on_streams_available(struct quic_conn *c)
{
	drain_waiting(quic_conn_user(c));
}

static int take_response_header(struct call_state *cs, const uint8_t *data, size_t len,
				size_t *used)
{
	size_t n = MIN(len, NET_RESP_HEADER_SIZE - cs->rhead_got);

	memcpy(cs->rhead + cs->rhead_got, data, n);
	cs->rhead_got += n;
	*used = n;
	if (cs->rhead_got < NET_RESP_HEADER_SIZE)
		return 0;
	if (net_resp_decode(cs->rhead, NET_MAX_SHARD + (uint64_t)NET_MAX_LIST * NET_LIST_ENTRY_SIZE,
			    &cs->call->resp) != 0)
		return NET_EPROTO;
	if (cs->call->resp.body_len > cs->call->resp_cap)
		return -EMSGSIZE;
	return 0;
}

static void on_stream_data(struct quic_conn *c, struct quic_stream *s, const uint8_t *data,
			   size_t len, bool fin)
{
	struct call_state *cs = quic_stream_user(s);
	size_t used = 0;
	int rc = 0;

	quic_stream_consume(s, len);
	quic_conn_consume(c, len);
	if (!cs || cs->finished)
		return; /* a call already given up */
	if (cs->rhead_got < NET_RESP_HEADER_SIZE)
		rc = take_response_header(cs, data, len, &used);
	if (rc == 0 && used < len) {
		size_t n = len - used;

		if (cs->rhead_got < NET_RESP_HEADER_SIZE || n > cs->call->resp.body_len - cs->body_got)
			rc = NET_EPROTO;
		else
			memcpy((uint8_t *)cs->call->resp_buf + cs->body_got, data + used, n);
		cs->body_got += n;
	}
	if (rc == 0 && fin)
		rc = cs->rhead_got == NET_RESP_HEADER_SIZE && cs->body_got == cs->call->resp.body_len
			     ? cs->call->resp.status : NET_EPROTO;
	if (rc != 0 || fin)
		finish(cs, rc);
}

static void on_stream_close(struct quic_conn *c, struct quic_stream *s, bool reset)
{
	struct call_state *cs = quic_stream_user(s);

	(void)c;
	(void)reset;
	if (cs) {
		cs->s = NULL;
		if (!cs->finished) {
			cs->finished = true;
			cs->call->status = NET_ECONNLOST;
			cs->pool->inflight = g_list_remove(cs->pool->inflight, cs);
		}
		complete(cs);
	}
}

static void on_conn_close(struct quic_conn *c, int error)
{
	struct pool_node *n = quic_conn_user(c);
	struct call_state *cs;

	if (n->c == c)
		n->c = NULL;
	if (error && error != -ESHUTDOWN)
		g_message("connection to node %u (%s:%u) closed: %s", n->id, n->host, n->port,
			  common_strerror(error));
	/* a refusal is told as such: retrying will not help, a fix of the
	 * certificates or the address will */
	bool refused = error == -ECONNREFUSED || error == NET_ETLSREFUSED || error == NET_ETLSVERIFY;

	while ((cs = g_queue_pop_head(&n->waiting)))
		finish(cs, refused ? error : NET_ECONNLOST);
}

static int dial(struct pool_node *n)
{
	struct net_pool *p = n->pool;

	return quic_connect(p->loop, n->host, n->port, p->tls, &p->set, &p->ops, n, &n->c);
}

static void sweep(void *arg)
{
	struct net_pool *p = arg;
	gint64 now = quic_loop_now_us();
	GList *late = NULL;
	GHashTableIter it;
	gpointer value;

	for (GList *l = p->inflight; l; l = l->next)
		if (((struct call_state *)l->data)->deadline_us <= now)
			late = g_list_prepend(late, l->data);
	g_hash_table_iter_init(&it, p->nodes);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct pool_node *n = value;

		for (GList *l = n->waiting.head; l; l = l->next)
			if (((struct call_state *)l->data)->deadline_us <= now)
				late = g_list_prepend(late, l->data);
	}
	GHashTable *silent = g_hash_table_new(g_direct_hash, g_direct_equal);

	for (GList *l = late; l; l = l->next) {
		struct call_state *cs = l->data;

		g_queue_remove(&cs->node->waiting, cs);
		g_hash_table_add(silent, cs->node);
		finish(cs, NET_ETIMEDOUT);
	}
	/* Only now: closing a connection finishes its other calls too. */
	g_hash_table_iter_init(&it, silent);
	while (g_hash_table_iter_next(&it, &value, NULL)) {
		struct pool_node *n = value;

		if (n->c) { /* a node that does not answer is presumed gone */
			struct quic_conn *c = n->c;

			n->c = NULL;
			quic_conn_close(c, QUIC_APP_CANCELLED);
		}
	}
	g_hash_table_destroy(silent);
	g_list_free(late);
	quic_loop_add_timer(p->loop, now + SWEEP_MS * 1000, sweep, p);
}

static void start_call(void *arg)
{
	struct call_state *cs = arg;
	struct net_pool *p = cs->pool;
	struct pool_node *n = g_hash_table_lookup(p->nodes, GUINT_TO_POINTER(cs->node_id));
	int rc;

	if (!p->sweeping) {
		p->sweeping = true;
		sweep(p);
	}
	if (!n) {
		finish(cs, -ENOENT);
		return;
	}
	cs->node = n;
	if (!n->c && (rc = dial(n)) < 0) {
		finish(cs, rc);
		return;
	}
	g_queue_push_tail(&n->waiting, cs);
	if (quic_conn_is_ready(n->c))
		drain_waiting(n);
}

void net_pool_call_async(struct net_pool *p, uint32_t node_id, struct net_call *call,
			 net_call_done_fn done, void *arg)
{
	struct call_state *cs = g_new0(struct call_state, 1);
	unsigned timeout = call->timeout_ms ? call->timeout_ms : p->opt.timeout_ms;

	memset(&call->resp, 0, sizeof(call->resp));
	call->status = 0;
	cs->call = call;
	cs->done = done;
	cs->arg = arg;
	cs->pool = p;
	cs->node_id = node_id;
	cs->start_us = quic_loop_now_us();
	cs->deadline_us = cs->start_us + (gint64)timeout * 1000;
	quic_loop_post(p->loop, start_call, cs);
}

static void wake(void *arg, struct net_call *call)
{
	(void)call; /* the caller reads its status */
	common_waiter_done(arg, 0);
}

int net_pool_call(struct net_pool *p, uint32_t node_id, struct net_call *call)
{
	struct common_waiter w;

	common_waiter_init(&w, 1);
	net_pool_call_async(p, node_id, call, wake, &w);
	common_waiter_wait(&w);
	common_waiter_fini(&w);
	return call->status;
}

struct rtt_query {
	struct net_pool *p;
	uint32_t id;
	uint64_t rtt;
	struct common_waiter w;
};

static void query_rtt(void *arg)
{
	struct rtt_query *q = arg;
	struct pool_node *n = g_hash_table_lookup(q->p->nodes, GUINT_TO_POINTER(q->id));

	q->rtt = n && n->c ? quic_conn_rtt_us(n->c) : 0;
	common_waiter_done(&q->w, 0);
}

uint64_t net_pool_rtt_us(struct net_pool *p, uint32_t node_id)
{
	struct rtt_query q = {.p = p, .id = node_id};

	common_waiter_init(&q.w, 1);
	quic_loop_post(p->loop, query_rtt, &q);
	common_waiter_wait(&q.w);
	common_waiter_fini(&q.w);
	return q.rtt;
}

static void node_free(gpointer p)
{
	struct pool_node *n = p;

	g_free(n->host);
	g_free(n);
}

static struct pool_node *node_new(struct net_pool *p, uint32_t id, const char *host,
				   uint16_t port)
{
	struct pool_node *n = g_new0(struct pool_node, 1);

	n->pool = p;
	n->id = id;
	metrics_hist_init(&n->latency[0], &metrics_latency_buckets);
	metrics_hist_init(&n->latency[1], &metrics_latency_buckets);
	n->host = g_strdup(host);
	n->port = port;
	return n;
}

int net_pool_new(const struct net_cluster *c, struct net_tls *tls,
		 const struct net_pool_options *o, struct net_pool **out)
{
	struct net_pool *p = g_new0(struct net_pool, 1);

	p->tls = tls;
	p->opt = *o;
	quic_settings_default(&p->set);
	p->set.idle_timeout_ms = o->idle_timeout_ms;
	p->set.keepalive_ms = o->keepalive_ms;
	p->ops = (struct quic_conn_ops){
		.on_ready = on_ready,
		.on_stream_data = on_stream_data,
		.on_stream_close = on_stream_close,
		.on_streams_available = on_streams_available,
		.on_conn_close = on_conn_close,
	};
	g_mutex_init(&p->nodes_lock);
	p->nodes = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, node_free);
	for (guint i = 0; i < c->nodes->len; i++) {
		const struct net_node_conf *nc = &g_array_index(c->nodes, struct net_node_conf, i);

		g_hash_table_insert(p->nodes, GUINT_TO_POINTER(nc->id),
				    node_new(p, nc->id, nc->host, nc->port));
	}
	p->loop = quic_loop_new();
	quic_loop_start(p->loop, "net-pool");
	*out = p;
	return 0;
}

struct node_change {
	struct net_pool *p;
	uint32_t id;
	const char *host;
	uint16_t port;
	struct common_waiter w;
};

/* A node whose address changed keeps a live connection until it fails:
 * the next dial goes to the new address. */
static void change_node(void *arg)
{
	struct node_change *ch = arg;
	struct net_pool *p = ch->p;
	struct pool_node *n = g_hash_table_lookup(p->nodes, GUINT_TO_POINTER(ch->id));

	g_mutex_lock(&p->nodes_lock);
	if (!n) {
		g_hash_table_insert(p->nodes, GUINT_TO_POINTER(ch->id),
				    node_new(p, ch->id, ch->host, ch->port));
	} else if (strcmp(n->host, ch->host) || n->port != ch->port) {
		g_free(n->host);
		n->host = g_strdup(ch->host);
		n->port = ch->port;
	}
	g_mutex_unlock(&p->nodes_lock);
	common_waiter_done(&ch->w, 0);
}

void net_pool_set_node(struct net_pool *p, uint32_t id, const char *host, uint16_t port)
{
	struct node_change ch = {.p = p, .id = id, .host = host, .port = port};

	common_waiter_init(&ch.w, 1);
	quic_loop_post(p->loop, change_node, &ch);
	common_waiter_wait(&ch.w);
	common_waiter_fini(&ch.w);
}

void net_pool_free(struct net_pool *p)
{
	if (!p)
		return;
	quic_loop_free(p->loop); /* closes every connection: calls fail first */
	g_hash_table_destroy(p->nodes);
	g_mutex_clear(&p->nodes_lock);
	g_list_free(p->inflight);
	g_free(p);
}

static gint by_id(gconstpointer a, gconstpointer b)
{
	uint32_t x = (*(struct pool_node *const *)a)->id, y = (*(struct pool_node *const *)b)->id;

	return x < y ? -1 : x > y;
}

void net_pool_metrics(struct net_pool *p, GString *out)
{
	static const char *const ops[] = {"put", "get"};
	static const char *const took = "shardfs_node_call_duration_seconds";
	static const char *const failed = "shardfs_node_call_errors_total";
	GPtrArray *nodes = g_ptr_array_new();
	GHashTableIter it;
	gpointer v;
	char labels[48];

	g_mutex_lock(&p->nodes_lock); /* nodes are never freed before the pool */
	g_hash_table_iter_init(&it, p->nodes);
	while (g_hash_table_iter_next(&it, NULL, &v))
		g_ptr_array_add(nodes, v);
	g_mutex_unlock(&p->nodes_lock);
	g_ptr_array_sort(nodes, by_id);
	metrics_family(out, took, "histogram",
		       "Shard puts and gets from this client, by node: request to answer.");
	for (guint i = 0; i < nodes->len; i++) {
		struct pool_node *n = nodes->pdata[i];

		for (unsigned op = 0; op < 2; op++) {
			g_snprintf(labels, sizeof(labels), "node=\"%u\",op=\"%s\"", n->id, ops[op]);
			metrics_hist_write(out, took, labels, &n->latency[op]);
		}
	}
	metrics_family(out, failed, "counter",
		       "Shard puts and gets that failed (node down, timeout, error status), by node.");
	for (guint i = 0; i < nodes->len; i++) {
		struct pool_node *n = nodes->pdata[i];

		for (unsigned op = 0; op < 2; op++) {
			g_snprintf(labels, sizeof(labels), "node=\"%u\",op=\"%s\"", n->id, ops[op]);
			metrics_sample_u64(out, failed, labels,
					   __atomic_load_n(&n->errors[op], __ATOMIC_RELAXED));
		}
	}
	g_ptr_array_free(nodes, TRUE);
}
