/*
 * test_net_loopback.c - the QUIC transport end to end in one process: a
 * net_server with an in-memory handler (a fake store, inside this unit
 * test only) and a net_pool, over 127.0.0.1 with certificates made by the
 * same code `shardfs init` uses.
 */
#include "net/net.h"
#include "call_waiter.h"
#include "fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

struct fixture {
	char *dir;
	char *ca, *ca_key;
	struct net_tls *node_tls, *client_tls;
	struct net_server *srv;
	struct net_cluster cluster;
	struct net_node_conf node;
	struct net_pool *pool;
	GMutex lock;
	GHashTable *shards; /* packed key (GBytes) -> GBytes */
	int handled;
};

static char *path_in(struct fixture *f, const char *name)
{
	return g_build_filename(f->dir, name, NULL);
}

static void issue(struct fixture *f, const char *ca, const char *ca_key, const char *name,
		  gboolean server, char **cert, char **key)
{
	char *c = g_strconcat(name, ".crt", NULL), *k = g_strconcat(name, ".key", NULL);

	*cert = path_in(f, c);
	*key = path_in(f, k);
	assert_true(net_pki_issue(ca, ca_key, name, server ? "127.0.0.1" : NULL, server, *cert, *key,
				  NULL));
	g_free(c);
	g_free(k);
}

static GBytes *key_bytes(const struct net_key *k)
{
	uint8_t p[NET_KEY_PACKED_SIZE];

	net_key_pack(k, p);
	return g_bytes_new(p, sizeof(p));
}

/* The fake store: PUT keeps the body, GET returns a range, PING answers. */
static void handle(void *arg, struct net_request *r)
{
	struct fixture *f = arg;
	const struct net_req_header *h = net_request_header(r);
	GBytes *k = key_bytes(&h->key), *v;
	gsize len;

	g_mutex_lock(&f->lock);
	f->handled++;
	switch (h->op) {
	case NET_OP_PUT:
		g_hash_table_replace(f->shards, k, g_bytes_new(net_request_body(r), h->body_len));
		g_mutex_unlock(&f->lock);
		net_request_reply(r, 0, 0, NULL, 0, NULL);
		return;
	case NET_OP_GET:
		v = g_hash_table_lookup(f->shards, k);
		g_bytes_unref(k);
		if (!v || h->offset > g_bytes_get_size(v)) {
			g_mutex_unlock(&f->lock);
			net_request_reply(r, v ? -EINVAL : -ENOENT, 0, NULL, 0, NULL);
			return;
		}
		const uint8_t *data = g_bytes_get_data(v, &len);
		size_t n = MIN(h->length, len - h->offset);

		g_mutex_unlock(&f->lock);
		net_request_reply(r, 0, len, n ? g_memdup2(data + h->offset, n) : NULL, n, g_free);
		return;
	default:
		g_mutex_unlock(&f->lock);
		g_bytes_unref(k);
		net_request_reply(r, 0, 0, NULL, 0, NULL);
	}
}

static int setup(void **state)
{
	struct fixture *f = g_new0(struct fixture, 1);
	char *cert, *key;
	struct net_server_options so = {.host = "127.0.0.1", .port = 0, .handler = handle};
	struct net_pool_options po;

	f->dir = test_mkdtemp();
	f->ca = path_in(f, "ca.crt");
	f->ca_key = path_in(f, "ca.key");
	assert_true(net_pki_create_ca(f->ca, f->ca_key, NULL));
	issue(f, f->ca, f->ca_key, "node-1", TRUE, &cert, &key);
	assert_int_equal(net_tls_new(f->ca, cert, key, &f->node_tls, NULL), 0);
	g_free(cert);
	g_free(key);
	issue(f, f->ca, f->ca_key, "client", FALSE, &cert, &key);
	assert_int_equal(net_tls_new(f->ca, cert, key, &f->client_tls, NULL), 0);
	g_free(cert);
	g_free(key);
	g_mutex_init(&f->lock);
	f->shards = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref,
					  (GDestroyNotify)g_bytes_unref);
	so.arg = f;
	assert_int_equal(net_server_start(&so, f->node_tls, &f->srv), 0);
	f->node = (struct net_node_conf){.id = 1, .host = "127.0.0.1", .port = net_server_port(f->srv)};
	f->cluster.nodes = g_array_new(FALSE, FALSE, sizeof(struct net_node_conf));
	g_array_append_val(f->cluster.nodes, f->node);
	net_pool_options_default(&po);
	po.timeout_ms = 5000;
	assert_int_equal(net_pool_new(&f->cluster, f->client_tls, &po, &f->pool), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	net_pool_free(f->pool);
	net_server_stop(f->srv, 1000);
	net_tls_free(f->node_tls);
	net_tls_free(f->client_tls);
	g_array_free(f->cluster.nodes, TRUE);
	g_hash_table_destroy(f->shards);
	g_mutex_clear(&f->lock);
	test_rmdir(f->dir);
	g_free(f->dir);
	g_free(f->ca);
	g_free(f->ca_key);
	g_free(f);
	return 0;
}

static struct net_key key_of(uint32_t n)
{
	struct net_key k = {.part = n, .shard = (uint16_t)(n % 7)};

	memcpy(k.object_id, "loopback-object!", 16);
	return k;
}

static int put(struct net_pool *p, uint32_t n, const void *data, size_t len)
{
	struct net_call c = {.req = {.op = NET_OP_PUT, .key = key_of(n), .body_len = len}, .body = data};

	return net_pool_call(p, 1, &c);
}

static int get(struct net_pool *p, uint32_t n, uint64_t off, void *buf, size_t len, uint64_t *total)
{
	struct net_call c = {.req = {.op = NET_OP_GET, .key = key_of(n), .offset = off, .length = len},
			     .resp_buf = buf, .resp_cap = len};
	int rc = net_pool_call(p, 1, &c);

	if (total)
		*total = c.resp.aux;
	return rc < 0 ? rc : (int)c.resp.body_len;
}

/* Shards of 0 bytes to 4 MiB go out and come back byte-exact; range gets
 * return exactly the range. */
static void test_put_get_round_trip(void **state)
{
	struct fixture *f = *state;
	size_t lens[] = {0, 1, 1452, 65536, 1u << 20, 4u << 20};
	uint8_t *buf = g_malloc(4u << 20), *back = g_malloc(4u << 20);
	uint64_t total;

	for (size_t i = 0; i < G_N_ELEMENTS(lens); i++) {
		test_payload(buf, lens[i], i, 1);
		assert_int_equal(put(f->pool, (uint32_t)i, buf, lens[i]), 0);
		assert_int_equal(get(f->pool, (uint32_t)i, 0, back, lens[i], &total), (int)lens[i]);
		assert_int_equal(total, lens[i]);
		assert_memory_equal(buf, back, lens[i]);
	}
	test_payload(buf, 1u << 20, 4, 1);
	assert_int_equal(get(f->pool, 4, 12345, back, 100000, NULL), 100000);
	assert_memory_equal(back, buf + 12345, 100000);
	assert_int_equal(get(f->pool, 99, 0, back, 10, NULL), -ENOENT);
	g_free(buf);
	g_free(back);
}

/* 10,000 requests one after the other on one connection: streams are
 * closed on both sides, or the node's stream limit would stall this. */
static void test_ten_thousand_requests(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < 10000; i++) {
		struct net_call c = {.req = {.op = NET_OP_PING}};

		assert_int_equal(net_pool_call(f->pool, 1, &c), 0);
	}
	assert_true(f->handled >= 10000);
}

/* 256 requests in flight at once on one connection all complete, and the
 * shards they wrote read back exact. */
static void test_256_concurrent(void **state)
{
	struct fixture *f = *state;
	struct net_call *calls = g_new0(struct net_call, 256);
	uint8_t *data = g_malloc(256 * 4096);
	struct common_waiter w;

	common_waiter_init(&w, 256);
	for (int i = 0; i < 256; i++) {
		test_payload(data + i * 4096, 4096, 1000 + (uint64_t)i, 1);
		calls[i] = (struct net_call){.req = {.op = NET_OP_PUT, .key = key_of(1000 + (uint32_t)i),
						     .body_len = 4096},
					     .body = data + i * 4096};
		net_pool_call_async(f->pool, 1, &calls[i], test_call_done, &w);
	}
	assert_int_equal(common_waiter_wait(&w), 0);
	common_waiter_fini(&w);
	for (int i = 0; i < 256; i++)
		assert_int_equal(calls[i].status, 0);
	for (int i = 0; i < 256; i++) {
		uint8_t back[4096];

		assert_int_equal(get(f->pool, 1000 + (uint32_t)i, 0, back, 4096, NULL), 4096);
		assert_memory_equal(back, data + i * 4096, 4096);
	}
	g_free(calls);
	g_free(data);
}

static int call_with(struct fixture *f, struct net_tls *tls)
{
	struct net_pool_options po;
	struct net_pool *p;
	struct net_call c = {.req = {.op = NET_OP_PING}};
	int rc;

	net_pool_options_default(&po);
	po.timeout_ms = 3000;
	assert_int_equal(net_pool_new(&f->cluster, tls, &po, &p), 0);
	rc = net_pool_call(p, 1, &c);
	net_pool_free(p);
	return rc;
}

/* A client without a certificate, or with one from another CA, is refused
 * during the handshake and told so (not "connection refused", which means
 * no node on the port); the node goes on serving the others. */
static void test_foreign_clients_refused(void **state)
{
	struct fixture *f = *state;
	char *other_ca = path_in(f, "other-ca.crt"), *other_key = path_in(f, "other-ca.key");
	char *cert, *key;
	struct net_tls *anon, *foreign;
	int before = f->handled;

	assert_int_equal(net_tls_new(f->ca, NULL, NULL, &anon, NULL), 0);
	assert_int_equal(call_with(f, anon), NET_ETLSREFUSED);
	assert_true(net_pki_create_ca(other_ca, other_key, NULL));
	issue(f, other_ca, other_key, "intruder", FALSE, &cert, &key);
	assert_int_equal(net_tls_new(f->ca, cert, key, &foreign, NULL), 0);
	assert_int_equal(call_with(f, foreign), NET_ETLSREFUSED);
	assert_int_equal(f->handled, before);
	assert_int_equal(call_with(f, f->client_tls), 0);
	net_tls_free(anon);
	net_tls_free(foreign);
	g_free(cert);
	g_free(key);
	g_free(other_ca);
	g_free(other_key);
}

/* A node whose certificate was not made for the address dialled is refused
 * by the client, which says it was its own verification that failed. */
static void test_node_with_wrong_name_refused(void **state)
{
	struct fixture *f = *state;
	char *cert, *key;
	struct net_tls *tls;
	struct net_server *srv;
	struct net_server_options so = {.host = "127.0.0.1", .handler = handle, .arg = f};
	struct net_node_conf saved = f->node;
	int rc;

	assert_true(net_pki_issue(f->ca, f->ca_key, "elsewhere", "10.9.8.7", TRUE,
				  (cert = path_in(f, "elsewhere.crt")), (key = path_in(f, "elsewhere.key")),
				  NULL));
	assert_int_equal(net_tls_new(f->ca, cert, key, &tls, NULL), 0);
	assert_int_equal(net_server_start(&so, tls, &srv), 0);
	g_array_index(f->cluster.nodes, struct net_node_conf, 0).port = net_server_port(srv);
	rc = call_with(f, f->client_tls);
	g_array_index(f->cluster.nodes, struct net_node_conf, 0) = saved;
	assert_int_equal(rc, NET_ETLSVERIFY);
	net_server_stop(srv, 100);
	net_tls_free(tls);
	g_free(cert);
	g_free(key);
}

/* A request for an unknown node fails at once with -ENOENT. */
static void test_unknown_node(void **state)
{
	struct fixture *f = *state;
	struct net_call c = {.req = {.op = NET_OP_PING}};

	assert_int_equal(net_pool_call(f->pool, 42, &c), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ten_thousand_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_256_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_clients_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_node_with_wrong_name_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_node, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
