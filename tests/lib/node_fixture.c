/*
 * node_fixture.c - see node_fixture.h.
 *
 * The ports are only known once the nodes are bound, so the nodes start
 * first (port 0) and the cluster file is written after; a restarted node
 * binds the port it had. The client pool is made from the cluster file
 * as loaded, as every client of the project makes it.
 */
#include "node_fixture.h"
#include "store/node/node.h"
#include "fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static char *in_dir(const struct node_fixture *f, const char *name)
{
	return g_build_filename(f->dir, name, NULL);
}

/* name.crt and name.key signed by the cluster CA in the fixture's dir. */
static void issue(const struct node_fixture *f, const char *name, gboolean server)
{
	char *ca = in_dir(f, "ca.crt"), *ca_key = in_dir(f, "ca.key");
	char *c = g_strdup_printf("%s/%s.crt", f->dir, name), *k = g_strdup_printf("%s/%s.key", f->dir, name);

	assert_true(net_pki_issue(ca, ca_key, name, server ? "127.0.0.1" : NULL, server, c, k, NULL));
	g_free(ca);
	g_free(ca_key);
	g_free(c);
	g_free(k);
}

static struct net_tls *tls_of(const struct node_fixture *f, const char *name)
{
	char *ca = in_dir(f, "ca.crt");
	char *c = g_strdup_printf("%s/%s.crt", f->dir, name), *k = g_strdup_printf("%s/%s.key", f->dir, name);
	struct net_tls *t = NULL;

	assert_int_equal(net_tls_new(ca, c, k, &t, NULL), 0);
	g_free(ca);
	g_free(c);
	g_free(k);
	return t;
}

static void make_pki(struct node_fixture *f, unsigned n)
{
	char *ca = in_dir(f, "ca.crt"), *ca_key = in_dir(f, "ca.key");

	assert_true(n >= 1 && n <= NODE_FIXTURE_MAX);
	f->n = n;
	assert_true(net_pki_create_ca(ca, ca_key, NULL));
	g_free(ca);
	g_free(ca_key);
	issue(f, "client", FALSE);
	f->client_tls = tls_of(f, "client");
	for (unsigned id = 1; id <= n; id++) {
		char *name = g_strdup_printf("node-%u", id);

		issue(f, name, TRUE);
		f->node_tls[id] = tls_of(f, name);
		g_free(name);
	}
}

static void write_conf(struct node_fixture *f, const char *ec, uint64_t part_size)
{
	GString *s = g_string_new("[cluster]\nca=ca.crt\ncert=client.crt\nkey=client.key\n");
	struct net_pool_options po;

	g_string_append_printf(s, "ec=%s\n", ec);
	if (part_size)
		g_string_append_printf(s, "part_size=%" G_GUINT64_FORMAT "\n", part_size);
	for (unsigned id = 1; id <= f->n; id++)
		g_string_append_printf(s,
				       "\n[node.%u]\naddress=127.0.0.1\nport=%u\ncert=node-%u.crt\n"
				       "key=node-%u.key\ndata_dir=node-%u\n",
				       id, f->ports[id], id, id, id);
	f->conf = in_dir(f, "cluster.conf");
	assert_true(g_file_set_contents(f->conf, s->str, (gssize)s->len, NULL));
	g_string_free(s, TRUE);
	assert_int_equal(net_cluster_load(f->conf, &f->cluster, NULL), 0);
	net_pool_options_default(&po);
	po.timeout_ms = 5000;
	assert_int_equal(net_pool_new(f->cluster, f->client_tls, &po, &f->pool), 0);
}

char *node_fixture_data_dir(const struct node_fixture *f, unsigned id)
{
	char *name = g_strdup_printf("node-%u", id), *p = in_dir(f, name);

	g_free(name);
	return p;
}

/* The pool re-dials a restarted node on its own; wait until it has. */
static void wait_ready(struct node_fixture *f, unsigned id)
{
	gint64 until = g_get_monotonic_time() + 15 * G_USEC_PER_SEC;
	struct net_call ping = {.req = {.op = NET_OP_PING}, .timeout_ms = 500};

	while (net_pool_call(f->pool, id, &ping) != 0) {
		assert_true(g_get_monotonic_time() < until);
		g_usleep(50000);
	}
}

void node_fixture_start(struct node_fixture *f, unsigned id)
{
	struct node_service_config c;
	char *dir = node_fixture_data_dir(f, id);

	assert_true(id >= 1 && id <= f->n && !f->svc[id]);
	node_service_config_default(&c);
	c.id = id;
	c.data_dir = dir;
	c.port = f->ports[id];
	c.tls = f->node_tls[id];
	assert_int_equal(node_service_new(&c, &f->svc[id]), 0);
	assert_int_equal(node_service_start(f->svc[id]), 0);
	f->ports[id] = node_service_port(f->svc[id]);
	g_free(dir);
	if (f->pool)
		wait_ready(f, id);
}

void node_fixture_stop(struct node_fixture *f, unsigned id, unsigned drain_ms)
{
	assert_non_null(f->svc[id]);
	node_service_stop(f->svc[id], drain_ms);
	node_service_free(f->svc[id]);
	f->svc[id] = NULL;
}

void node_fixture_init(struct node_fixture *f, unsigned n, const char *ec, uint64_t part_size)
{
	*f = (struct node_fixture){.dir = test_mkdtemp()};
	make_pki(f, n);
	for (unsigned id = 1; id <= n; id++)
		node_fixture_start(f, id);
	write_conf(f, ec, part_size);
}

void node_fixture_init_handler(struct node_fixture *f, net_handler_fn handler, void *arg)
{
	struct net_server_options so = {.host = "127.0.0.1", .handler = handler, .arg = arg};

	*f = (struct node_fixture){.dir = test_mkdtemp()};
	make_pki(f, 1);
	assert_int_equal(net_server_start(&so, f->node_tls[1], &f->bare[1]), 0);
	f->ports[1] = net_server_port(f->bare[1]);
	write_conf(f, "1+0", 0);
}

int node_fixture_call(struct node_fixture *f, unsigned id, struct net_call *c)
{
	return net_pool_call(f->pool, id, c);
}

static void async_done(void *arg, struct net_call *call)
{
	struct node_fixture_async *a = arg;

	(void)call;
	g_mutex_lock(&a->lock);
	a->done = true;
	g_cond_broadcast(&a->cond);
	g_mutex_unlock(&a->lock);
}

void node_fixture_call_async(struct node_fixture *f, unsigned id, struct node_fixture_async *a)
{
	g_mutex_init(&a->lock);
	g_cond_init(&a->cond);
	a->done = false;
	net_pool_call_async(f->pool, id, &a->call, async_done, a);
}

bool node_fixture_async_wait(struct node_fixture_async *a, unsigned ms)
{
	gint64 until = g_get_monotonic_time() + (gint64)ms * G_TIME_SPAN_MILLISECOND;
	bool done;

	g_mutex_lock(&a->lock);
	while (!a->done && g_cond_wait_until(&a->cond, &a->lock, until))
		;
	done = a->done;
	g_mutex_unlock(&a->lock);
	return done;
}

int node_fixture_stream_open(struct node_fixture *f, unsigned id, const uint8_t sid[16],
			     uint64_t token, uint64_t ring, uint32_t mode, uint64_t *head,
			     uint64_t *oldest)
{
	uint8_t body[NET_STREAM_OPEN_SIZE], resp[NET_STREAM_OPENED_SIZE];
	struct net_stream_opened opened = {0, 0};
	struct net_call c = {.req = {.op = NET_OP_STREAM_OPEN, .offset = token,
				     .body_len = NET_STREAM_OPEN_SIZE},
			     .body = body, .resp_buf = resp, .resp_cap = sizeof(resp)};
	int rc;

	net_stream_open_encode(&(struct net_stream_open){.ring_bytes = ring, .mode = mode}, body);
	memcpy(c.req.key.object_id, sid, 16);
	rc = net_pool_call(f->pool, id, &c);
	if (rc == 0)
		rc = net_stream_opened_decode(resp, (size_t)c.resp.body_len, &opened);
	if (rc == 0 && head)
		*head = opened.head;
	if (rc == 0 && oldest)
		*oldest = opened.oldest;
	return rc;
}

void node_fixture_stream_append_call(struct net_call *c, const uint8_t sid[16], uint64_t token,
				     const void *buf, size_t len)
{
	*c = (struct net_call){.req = {.op = NET_OP_STREAM_APPEND, .offset = token, .body_len = len},
			       .body = buf};
	memcpy(c->req.key.object_id, sid, 16);
}

void node_fixture_stream_read_call(struct net_call *c, const uint8_t sid[16], uint64_t token,
				   uint64_t pos, void *buf, size_t cap, uint8_t *body)
{
	net_stream_read_encode(&(struct net_stream_read){.token = token}, body);
	*c = (struct net_call){.req = {.op = NET_OP_STREAM_READ, .offset = pos, .length = cap,
				       .body_len = NET_STREAM_READ_SIZE},
			       .body = body, .resp_buf = buf, .resp_cap = cap};
	memcpy(c->req.key.object_id, sid, 16);
}

uint64_t node_fixture_kv(const char *body, const char *name)
{
	uint64_t v = 0;

	assert_true(net_kv_u64(body, strlen(body), name, &v));
	return v;
}

void node_fixture_destroy(struct node_fixture *f)
{
	net_pool_free(f->pool);
	for (unsigned id = 1; id <= f->n; id++) {
		node_service_free(f->svc[id]);
		if (f->bare[id])
			net_server_stop(f->bare[id], 1000);
		net_tls_free(f->node_tls[id]);
	}
	net_tls_free(f->client_tls);
	net_cluster_free(f->cluster);
	test_rmdir(f->dir);
	g_free(f->dir);
	g_free(f->conf);
}
