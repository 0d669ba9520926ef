/*
 * test_node_cluster.c - real `shardfs node` processes on 127.0.0.1, made
 * by `shardfs init`, on ports picked free at run time, driven through the
 * client pool: round trips, many and concurrent requests, refused peers,
 * garbage on the port, kill -9 and restart, SIGTERM under load, and
 * `shardfs status`. Every process is stopped by its pid in teardown.
 *
 * argv[1] is the shardfs binary.
 */
#include "net/net.h"
#include "net/quic.h"
#include "node_procs.h"
#include "call_waiter.h"
#include "fixture.h"

#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#define NODES 2

static const char *shardfs_bin;

struct cluster {
	struct node_procs np;
	struct net_cluster *c;
	struct net_tls *tls;
	struct net_pool *pool;
};

static void start_node(struct cluster *cl, unsigned id)
{
	node_procs_start(&cl->np, id);
}

static int stop_node(struct cluster *cl, unsigned id, int sig)
{
	return node_procs_stop(&cl->np, id, sig);
}

static int run_shardfs(char **args, char **out)
{
	return node_procs_run(shardfs_bin, args, out);
}

static int ping(struct net_pool *pool, uint32_t id, unsigned timeout_ms)
{
	struct net_call c = {.req = {.op = NET_OP_PING}, .timeout_ms = timeout_ms};

	return net_pool_call(pool, id, &c);
}

static void wait_ready(struct cluster *cl, unsigned id)
{
	gint64 until = g_get_monotonic_time() + 15 * G_USEC_PER_SEC;

	while (ping(cl->pool, id, 500) != 0) {
		assert_true(g_get_monotonic_time() < until);
		g_usleep(50000);
	}
}

static int setup(void **state)
{
	struct cluster *cl = g_new0(struct cluster, 1);
	struct net_pool_options po;
	GError *err = NULL;

	node_procs_init(&cl->np, shardfs_bin, NODES, "1+1");
	assert_int_equal(net_cluster_load(cl->np.conf, &cl->c, &err), 0);
	assert_int_equal(net_tls_new(cl->c->ca, cl->c->cert, cl->c->key, &cl->tls, &err), 0);
	net_pool_options_default(&po);
	po.timeout_ms = 3000;
	assert_int_equal(net_pool_new(cl->c, cl->tls, &po, &cl->pool), 0);
	for (unsigned id = 1; id <= NODES; id++)
		start_node(cl, id);
	for (unsigned id = 1; id <= NODES; id++)
		wait_ready(cl, id);
	*state = cl;
	return 0;
}

static int teardown(void **state)
{
	struct cluster *cl = *state;

	net_pool_free(cl->pool);
	net_tls_free(cl->tls);
	net_cluster_free(cl->c);
	node_procs_destroy(&cl->np);
	g_free(cl);
	return 0;
}

static struct net_key key_of(uint64_t n)
{
	struct net_key k = {.part = (uint32_t)n, .shard = (uint16_t)(n & 3)};

	memcpy(k.object_id, "integration-obj!", 16);
	return k;
}

static int put(struct net_pool *p, uint32_t node, uint64_t n, const void *data, size_t len)
{
	struct net_call c = {.req = {.op = NET_OP_PUT, .key = key_of(n), .body_len = len}, .body = data};

	return net_pool_call(p, node, &c);
}

static int get(struct net_pool *p, uint32_t node, uint64_t n, uint64_t off, void *buf, size_t len)
{
	struct net_call c = {.req = {.op = NET_OP_GET, .key = key_of(n), .offset = off, .length = len},
			     .resp_buf = buf, .resp_cap = len};
	int rc = net_pool_call(p, node, &c);

	return rc < 0 ? rc : (int)c.resp.body_len;
}

static int simple(struct net_pool *p, uint32_t node, uint8_t op, uint64_t n, uint64_t *aux)
{
	struct net_call c = {.req = {.op = op, .key = key_of(n)}};
	int rc = net_pool_call(p, node, &c);

	if (aux)
		*aux = c.resp.aux;
	return rc;
}

/* Put, get (whole and ranges), stat, list in pages, delete: byte-exact
 * against a real node. */
static void test_round_trips(void **state)
{
	struct cluster *cl = *state;
	size_t lens[] = {0, 100, 70000, 1u << 20, 4u << 20};
	uint8_t *buf = g_malloc(4u << 20), *back = g_malloc(4u << 20);
	uint64_t aux;

	for (size_t i = 0; i < G_N_ELEMENTS(lens); i++) {
		test_payload(buf, lens[i], i, 7);
		assert_int_equal(put(cl->pool, 1, i, buf, lens[i]), 0);
		assert_int_equal(get(cl->pool, 1, i, 0, back, lens[i]), (int)lens[i]);
		assert_memory_equal(buf, back, lens[i]);
		assert_int_equal(simple(cl->pool, 1, NET_OP_STAT, i, &aux), 0);
		assert_int_equal(aux, lens[i]);
	}
	/* ranges of the 4 MiB shard, crossing CRC blocks */
	assert_int_equal(get(cl->pool, 1, 4, 65530, back, 100), 100);
	assert_memory_equal(back, buf + 65530, 100);
	assert_int_equal(get(cl->pool, 1, 4, (4u << 20) - 10, back, 100), 10);
	assert_memory_equal(back, buf + (4u << 20) - 10, 10);
	assert_int_equal(get(cl->pool, 1, 4, (4u << 20) + 1, back, 1), -EINVAL);
	assert_int_equal(get(cl->pool, 1, 99, 0, back, 1), -ENOENT);

	/* list in pages of 2: every key once, in order */
	uint8_t page[2 * NET_LIST_ENTRY_SIZE], cursor[NET_KEY_PACKED_SIZE];
	int seen = 0;
	bool more = true;

	while (more) {
		struct net_call c = {.req = {.op = NET_OP_LIST, .length = 2,
					     .body_len = seen ? NET_KEY_PACKED_SIZE : 0},
				     .body = cursor, .resp_buf = page, .resp_cap = sizeof(page)};

		assert_int_equal(net_pool_call(cl->pool, 1, &c), 0);
		int n = (int)(c.resp.body_len / NET_LIST_ENTRY_SIZE);

		for (int i = 0; i < n; i++) {
			if (seen)
				assert_true(memcmp(page + i * NET_LIST_ENTRY_SIZE, cursor, NET_KEY_PACKED_SIZE) > 0);
			memcpy(cursor, page + i * NET_LIST_ENTRY_SIZE, NET_KEY_PACKED_SIZE);
			seen++;
		}
		more = c.resp.aux != 0;
	}
	assert_int_equal(seen, (int)G_N_ELEMENTS(lens));

	assert_int_equal(simple(cl->pool, 1, NET_OP_DELETE, 2, NULL), 0);
	assert_int_equal(get(cl->pool, 1, 2, 0, back, 10), -ENOENT);
	assert_int_equal(simple(cl->pool, 1, NET_OP_STAT, 2, NULL), -ENOENT);
	assert_int_equal(simple(cl->pool, 1, NET_OP_DELETE, 2, NULL), -ENOENT);
	g_free(buf);
	g_free(back);
}

/* 10,000 requests on one pooled connection, then 256 at once. */
static void test_many_and_concurrent(void **state)
{
	struct cluster *cl = *state;
	struct net_call *calls = g_new0(struct net_call, 256);
	uint8_t *data = g_malloc(256 * 16384);
	struct common_waiter w;

	for (int i = 0; i < 10000; i++)
		assert_int_equal(ping(cl->pool, 1, 0), 0);
	common_waiter_init(&w, 256);
	for (int i = 0; i < 256; i++) {
		test_payload(data + i * 16384, 16384, 500 + (uint64_t)i, 1);
		calls[i] = (struct net_call){.req = {.op = NET_OP_PUT, .key = key_of(500 + (uint64_t)i),
						     .body_len = 16384},
					     .body = data + i * 16384};
		net_pool_call_async(cl->pool, 1, &calls[i], test_call_done, &w);
	}
	assert_int_equal(common_waiter_wait(&w), 0);
	common_waiter_fini(&w);
	for (int i = 0; i < 256; i++)
		assert_int_equal(calls[i].status, 0);
	for (int i = 0; i < 256; i++) {
		uint8_t back[16384];

		assert_int_equal(get(cl->pool, 1, 500 + (uint64_t)i, 0, back, sizeof(back)), 16384);
		assert_memory_equal(back, data + i * 16384, 16384);
	}
	g_free(calls);
	g_free(data);
}

/* ---- a raw client, to send what the pool never would ---- */

struct raw {
	GMutex m;
	GCond c;
	bool ready, closed, done;
	int conn_error;
	GByteArray *resp;
	struct quic_conn *conn;
	const uint8_t *send;
	size_t send_len;
};

static void raw_ready(struct quic_conn *c)
{
	struct raw *r = quic_conn_user(c);
	struct quic_stream *s;

	if (quic_stream_open(c, &s) == 0)
		quic_stream_send(s, r->send, r->send_len, NULL, NULL, true);
}

static void raw_data(struct quic_conn *c, struct quic_stream *s, const uint8_t *data, size_t len,
		     bool fin)
{
	struct raw *r = quic_conn_user(c);

	quic_stream_consume(s, len);
	quic_conn_consume(c, len);
	g_mutex_lock(&r->m);
	g_byte_array_append(r->resp, data, (guint)len);
	g_mutex_unlock(&r->m);
	(void)fin;
}

static void raw_stream_close(struct quic_conn *c, struct quic_stream *s, bool reset)
{
	struct raw *r = quic_conn_user(c);

	(void)s;
	(void)reset;
	g_mutex_lock(&r->m);
	r->done = true;
	g_cond_signal(&r->c);
	g_mutex_unlock(&r->m);
}

static void raw_conn_close(struct quic_conn *c, int error)
{
	struct raw *r = quic_conn_user(c);

	g_mutex_lock(&r->m);
	r->conn_error = error;
	r->done = true;
	g_cond_signal(&r->c);
	g_mutex_unlock(&r->m);
}

static const struct quic_conn_ops raw_ops = {
	.on_ready = raw_ready,
	.on_stream_data = raw_data,
	.on_stream_close = raw_stream_close,
	.on_conn_close = raw_conn_close,
};

struct raw_start {
	struct raw *r;
	struct cluster *cl;
	struct quic_loop *loop;
};

static void raw_connect(void *arg)
{
	struct raw_start *rs = arg;
	const struct net_node_conf *n = net_cluster_node(rs->cl->c, 1);
	struct quic_settings set;

	quic_settings_default(&set);
	if (quic_connect(rs->loop, n->host, n->port, rs->cl->tls, &set, &raw_ops, rs->r, &rs->r->conn) < 0)
		raw_conn_close(rs->r->conn, -EIO);
}

/* Sends bytes as one request stream; returns the node's response bytes. */
static GByteArray *raw_request(struct cluster *cl, const uint8_t *bytes, size_t len)
{
	struct raw r = {.resp = g_byte_array_new(), .send = bytes, .send_len = len};
	struct quic_loop *loop = quic_loop_new();
	struct raw_start rs = {&r, cl, loop};
	gint64 until = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

	g_mutex_init(&r.m);
	g_cond_init(&r.c);
	quic_loop_start(loop, "raw");
	quic_loop_post(loop, raw_connect, &rs);
	g_mutex_lock(&r.m);
	while (!r.done && g_cond_wait_until(&r.c, &r.m, until))
		;
	g_mutex_unlock(&r.m);
	quic_loop_free(loop);
	g_mutex_clear(&r.m);
	g_cond_clear(&r.c);
	return r.resp;
}

static int32_t raw_status(GByteArray *resp)
{
	struct net_resp_header h;

	if (resp->len < NET_RESP_HEADER_SIZE || net_resp_decode(resp->data, 1 << 20, &h) != 0)
		return 1; /* not a response */
	return h.status;
}

/* Malformed, truncated and oversized request headers get a NET_EPROTO
 * answer; random datagrams are dropped; the node goes on serving. */
static void test_garbage_leaves_node_serving(void **state)
{
	struct cluster *cl = *state;
	uint8_t hdr[NET_REQ_HEADER_SIZE];
	struct net_req_header big = {.op = NET_OP_PUT, .body_len = (uint64_t)NET_MAX_SHARD + 1};
	struct net_req_header badop = {.op = 99};
	GByteArray *resp;
	GRand *rng = g_rand_new_with_seed(7);

	memset(hdr, 0xA5, sizeof(hdr));
	resp = raw_request(cl, hdr, sizeof(hdr));
	assert_int_equal(raw_status(resp), NET_EPROTO);
	g_byte_array_unref(resp);

	net_req_encode(&big, hdr);
	resp = raw_request(cl, hdr, sizeof(hdr));
	assert_int_equal(raw_status(resp), NET_EPROTO);
	g_byte_array_unref(resp);

	net_req_encode(&badop, hdr);
	resp = raw_request(cl, hdr, sizeof(hdr));
	assert_int_equal(raw_status(resp), NET_EPROTO);
	g_byte_array_unref(resp);

	struct net_req_header ping_h = {.op = NET_OP_PING};

	net_req_encode(&ping_h, hdr);
	resp = raw_request(cl, hdr, 10); /* truncated */
	assert_int_equal(raw_status(resp), NET_EPROTO);
	g_byte_array_unref(resp);

	/* random datagrams straight at the port */
	const struct net_node_conf *n = net_cluster_node(cl->c, 1);
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(n->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	uint8_t junk[1500];

	for (int i = 0; i < 2000; i++) {
		size_t len = (size_t)g_rand_int_range(rng, 1, sizeof(junk));

		for (size_t j = 0; j < len; j++)
			junk[j] = (uint8_t)g_rand_int(rng);
		if (i % 3 == 0)
			junk[0] = 0xc0; /* a long header, to reach the parser */
		sendto(fd, junk, len, 0, (struct sockaddr *)&to, sizeof(to));
	}
	close(fd);
	assert_int_equal(ping(cl->pool, 1, 0), 0);
	resp = raw_request(cl, hdr, sizeof(hdr)); /* a well-formed PING still works */
	assert_int_equal(raw_status(resp), 0);
	g_byte_array_unref(resp);
	g_rand_free(rng);
}

static int call_with_identity(struct cluster *cl, const char *cert, const char *key)
{
	struct net_tls *tls;
	struct net_pool *p;
	struct net_pool_options po;
	int rc;

	assert_int_equal(net_tls_new(cl->c->ca, cert, key, &tls, NULL), 0);
	net_pool_options_default(&po);
	po.timeout_ms = 3000;
	net_pool_new(cl->c, tls, &po, &p);
	rc = ping(p, 1, 0);
	net_pool_free(p);
	net_tls_free(tls);
	return rc;
}

/* A client without a certificate, or with one from another CA, is refused;
 * the node serves the cluster's own clients meanwhile. */
static void test_refuses_foreign_clients(void **state)
{
	struct cluster *cl = *state;
	char *ca = g_build_filename(cl->np.dir, "x-ca.crt", NULL), *cakey = g_build_filename(cl->np.dir, "x-ca.key", NULL);
	char *crt = g_build_filename(cl->np.dir, "x.crt", NULL), *key = g_build_filename(cl->np.dir, "x.key", NULL);

	assert_int_not_equal(call_with_identity(cl, NULL, NULL), 0);
	assert_true(net_pki_create_ca(ca, cakey, NULL));
	assert_true(net_pki_issue(ca, cakey, "intruder", NULL, FALSE, crt, key, NULL));
	assert_int_not_equal(call_with_identity(cl, crt, key), 0);
	assert_int_equal(call_with_identity(cl, cl->c->cert, cl->c->key), 0);
	g_free(ca);
	g_free(cakey);
	g_free(crt);
	g_free(key);
}

/* ---- writers under fire ---- */

struct writer {
	struct cluster *cl;
	uint64_t first;
	volatile gint *stop;
	GArray *acked; /* uint64_t key numbers */
	int clean_failures, bad_failures;
};

static bool clean_failure(int rc)
{
	return rc == -ESHUTDOWN || rc == NET_ECONNLOST || rc == NET_ETIMEDOUT || rc == -ECONNREFUSED;
}

static gpointer writer_main(gpointer p)
{
	struct writer *w = p;
	uint8_t buf[20000];

	for (uint64_t n = w->first; !g_atomic_int_get(w->stop); n++) {
		test_payload(buf, sizeof(buf), n, 3);
		int rc = put(w->cl->pool, 1, n, buf, sizeof(buf));

		if (rc == 0)
			g_array_append_val(w->acked, n);
		else if (clean_failure(rc))
			w->clean_failures++;
		else
			w->bad_failures++;
	}
	return NULL;
}

static void run_writers(struct cluster *cl, struct writer *w, int nw, GThread **th, volatile gint *stop)
{
	for (int i = 0; i < nw; i++) {
		w[i] = (struct writer){cl, 1000000 * (uint64_t)(i + 1), stop, g_array_new(FALSE, FALSE, sizeof(uint64_t)), 0, 0};
		th[i] = g_thread_new("writer", writer_main, &w[i]);
	}
}

static void check_acked(struct cluster *cl, struct writer *w, int nw)
{
	uint8_t buf[20000], want[20000];
	int total = 0;

	for (int i = 0; i < nw; i++) {
		assert_int_equal(w[i].bad_failures, 0);
		for (guint j = 0; j < w[i].acked->len; j++) {
			uint64_t n = g_array_index(w[i].acked, uint64_t, j);

			test_payload(want, sizeof(want), n, 3);
			assert_int_equal(get(cl->pool, 1, n, 0, buf, sizeof(buf)), (int)sizeof(buf));
			assert_memory_equal(buf, want, sizeof(buf));
			total++;
		}
		g_array_free(w[i].acked, TRUE);
	}
	assert_true(total > 0);
}

/* A node killed with SIGKILL mid-traffic and restarted keeps every shard it
 * acknowledged; the same pool reconnects by itself. */
static void test_kill9_and_restart(void **state)
{
	struct cluster *cl = *state;
	struct writer w[4];
	GThread *th[4];
	volatile gint stop = 0;

	run_writers(cl, w, 4, th, &stop);
	g_usleep(400000);
	stop_node(cl, 1, SIGKILL);
	g_usleep(200000);
	g_atomic_int_set(&stop, 1);
	for (int i = 0; i < 4; i++)
		g_thread_join(th[i]);
	start_node(cl, 1);
	wait_ready(cl, 1); /* the same pool, re-dialling on its own */
	check_acked(cl, w, 4);
}

/* SIGTERM during traffic: the node drains and exits 0; puts in flight
 * either succeed or fail cleanly, and nothing acknowledged is lost. */
static void test_sigterm_under_load(void **state)
{
	struct cluster *cl = *state;
	struct writer w[4];
	GThread *th[4];
	volatile gint stop = 0;
	int status;

	run_writers(cl, w, 4, th, &stop);
	g_usleep(400000);
	status = stop_node(cl, 1, SIGTERM);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	g_atomic_int_set(&stop, 1);
	for (int i = 0; i < 4; i++)
		g_thread_join(th[i]);
	start_node(cl, 1);
	wait_ready(cl, 1);
	check_acked(cl, w, 4);
}

/* `shardfs status` exits 0 with every node up, 1 with one down. */
static void test_status_command(void **state)
{
	struct cluster *cl = *state;
	char *out = NULL;
	char *args[] = {"status", cl->np.conf, NULL};

	assert_int_equal(run_shardfs(args, &out), 0);
	assert_non_null(strstr(out, "2 of 2 nodes up"));
	g_free(out);
	stop_node(cl, 2, SIGKILL);
	assert_int_equal(run_shardfs(args, &out), 1);
	assert_non_null(strstr(out, "down"));
	assert_non_null(strstr(out, "1 of 2 nodes up"));
	g_free(out);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_and_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_leaves_node_serving, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_foreign_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9_and_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_under_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_command, setup, teardown),
	};

	return node_procs_main(argc, argv, &shardfs_bin, tests);
}
