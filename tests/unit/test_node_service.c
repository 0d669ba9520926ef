/*
 * test_node_service.c - the node service in-process: one node on a
 * temporary data directory behind a real QUIC server on 127.0.0.1,
 * driven by a real client pool with the cluster's certificates
 * (tests/lib/node_fixture.h). Shards, listings, status, bad requests and
 * the stop ordering, without spawning a process.
 */
#include "node_fixture.h"
#include "store/node/node.h"
#include "wal/wal.h"
#include "fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <cmocka.h>

static int setup(void **state)
{
	struct node_fixture *f = g_new0(struct node_fixture, 1);

	node_fixture_init(f, 1, "1+0", 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct node_fixture *f = *state;

	node_fixture_destroy(f);
	g_free(f);
	return 0;
}

static struct net_key key_of(uint32_t n)
{
	struct net_key k = {.part = n, .shard = (uint16_t)(n % 5)};

	memcpy(k.object_id, "service-object!!", 16);
	return k;
}

static int put(struct node_fixture *f, uint32_t n, const void *data, size_t len)
{
	struct net_call c = {.req = {.op = NET_OP_PUT, .key = key_of(n), .body_len = len}, .body = data};

	return node_fixture_call(f, 1, &c);
}

/* Bytes read, or the status; *total = the shard's full length. */
static int get(struct node_fixture *f, uint32_t n, uint64_t off, void *buf, size_t len,
	       uint64_t *total)
{
	struct net_call c = {.req = {.op = NET_OP_GET, .key = key_of(n), .offset = off, .length = len},
			     .resp_buf = buf, .resp_cap = len};
	int rc = node_fixture_call(f, 1, &c);

	if (total)
		*total = c.resp.aux;
	return rc < 0 ? rc : (int)c.resp.body_len;
}

static int simple(struct node_fixture *f, uint8_t op, uint32_t n, uint64_t *aux)
{
	struct net_call c = {.req = {.op = op, .key = key_of(n)}};
	int rc = node_fixture_call(f, 1, &c);

	if (aux)
		*aux = c.resp.aux;
	return rc;
}

/* Shards of 1 byte to 2 MiB come back byte-exact, whole and by ranges; a
 * range past the end is cut at the end, one starting past it is refused. */
static void test_put_get_ranges(void **state)
{
	struct node_fixture *f = *state;
	size_t lens[] = {1, 1452, 65536, 2u << 20};
	uint8_t *buf = g_malloc(2u << 20), *back = g_malloc(2u << 20);
	uint64_t total = 0;

	for (uint32_t i = 0; i < G_N_ELEMENTS(lens); i++) {
		test_payload(buf, lens[i], i, 1);
		assert_int_equal(put(f, i, buf, lens[i]), 0);
		assert_int_equal(get(f, i, 0, back, lens[i], &total), (int)lens[i]);
		assert_int_equal(total, lens[i]);
		assert_memory_equal(buf, back, lens[i]);
	}
	test_payload(buf, 65536, 2, 1);
	assert_int_equal(get(f, 2, 1000, back, 5000, NULL), 5000);
	assert_memory_equal(back, buf + 1000, 5000);
	assert_int_equal(get(f, 2, 65000, back, 5000, &total), 536);
	assert_memory_equal(back, buf + 65000, 536);
	assert_int_equal(get(f, 2, 65537, back, 10, NULL), -EINVAL);
	assert_int_equal(get(f, 99, 0, back, 10, NULL), -ENOENT);
	g_free(buf);
	g_free(back);
}

/* STAT reports a shard's length and -ENOENT for a missing one; after a
 * DELETE the shard is gone for GET and STAT, and a second DELETE says so. */
static void test_stat_and_delete(void **state)
{
	struct node_fixture *f = *state;
	uint8_t data[3000], back[16];
	uint64_t len = 0;

	test_payload(data, sizeof(data), 7, 1);
	assert_int_equal(put(f, 7, data, sizeof(data)), 0);
	assert_int_equal(simple(f, NET_OP_STAT, 7, &len), 0);
	assert_int_equal(len, sizeof(data));
	assert_int_equal(simple(f, NET_OP_STAT, 8, NULL), -ENOENT);
	assert_int_equal(simple(f, NET_OP_DELETE, 7, NULL), 0);
	assert_int_equal(simple(f, NET_OP_STAT, 7, NULL), -ENOENT);
	assert_int_equal(get(f, 7, 0, back, sizeof(back), NULL), -ENOENT);
	assert_int_equal(simple(f, NET_OP_DELETE, 7, NULL), -ENOENT);
}

static int list_page(struct node_fixture *f, const uint8_t *cursor, uint64_t want,
		     uint8_t *entries, size_t cap, uint64_t *more)
{
	struct net_call c = {.req = {.op = NET_OP_LIST, .length = want,
				     .body_len = cursor ? NET_KEY_PACKED_SIZE : 0},
			     .body = cursor, .resp_buf = entries, .resp_cap = cap};
	int rc = node_fixture_call(f, 1, &c);

	*more = c.resp.aux;
	return rc < 0 ? rc : (int)(c.resp.body_len / NET_LIST_ENTRY_SIZE);
}

/* LIST pages through every key in packed-key order with its length, says
 * when more follow, and continues after the cursor it is given. */
static void test_list_pages_in_key_order(void **state)
{
	struct node_fixture *f = *state;
	uint8_t data[100], page[3 * NET_LIST_ENTRY_SIZE], prev[NET_KEY_PACKED_SIZE];
	uint64_t more = 0;
	unsigned seen = 0;
	int n;

	for (uint32_t i = 0; i < 5; i++)
		assert_int_equal(put(f, 10 + i, data, 10 + i), 0);
	n = list_page(f, NULL, 3, page, sizeof(page), &more);
	assert_int_equal(n, 3);
	assert_int_equal(more, 1);
	for (;;) {
		for (int e = 0; e < n; e++) {
			const uint8_t *entry = page + (size_t)e * NET_LIST_ENTRY_SIZE;
			struct net_key k;
			uint32_t len = 0;

			if (seen)
				assert_true(memcmp(prev, entry, NET_KEY_PACKED_SIZE) < 0);
			memcpy(prev, entry, NET_KEY_PACKED_SIZE);
			net_key_unpack(entry, &k);
			for (int b = 0; b < 4; b++)
				len |= (uint32_t)entry[NET_KEY_PACKED_SIZE + b] << (8 * b);
			assert_int_equal(len, k.part);
			assert_int_equal(k.shard, k.part % 5);
			seen++;
		}
		if (!more)
			break;
		n = list_page(f, prev, 3, page, sizeof(page), &more);
		assert_true(n > 0);
	}
	assert_int_equal(seen, 5);
}

/* The age LIST_AGED gives the only key there is (-1: none listed). */
static int64_t listed_age(struct node_fixture *f)
{
	uint8_t page[4 * NET_LIST_AGED_ENTRY_SIZE];
	struct net_call c = {.req = {.op = NET_OP_LIST_AGED, .length = 4}, .resp_buf = page,
			     .resp_cap = sizeof(page)};
	uint32_t len = 0, age = 0;

	if (node_fixture_call(f, 1, &c) || c.resp.body_len != NET_LIST_AGED_ENTRY_SIZE)
		return -1;
	for (int b = 0; b < 4; b++) {
		len |= (uint32_t)page[NET_KEY_PACKED_SIZE + b] << (8 * b);
		age |= (uint32_t)page[NET_LIST_ENTRY_SIZE + b] << (8 * b);
	}
	assert_int_equal(len, 321);
	return age;
}

/* LIST_AGED adds to each entry how old the shard is at least: the age of
 * the segment file it is in, by the node's clock. */
static void test_list_aged_says_how_old(void **state)
{
	struct node_fixture *f = *state;
	uint8_t data[321] = {0};
	char *dir = node_fixture_data_dir(f, 1);
	GDir *d = g_dir_open(dir, 0, NULL);
	struct timespec two_hours_ago[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
	const char *name;

	assert_int_equal(put(f, 3, data, sizeof(data)), 0);
	int64_t fresh = listed_age(f);
	assert_true(fresh >= 0 && fresh <= 5);
	assert_non_null(d);
	while ((name = g_dir_read_name(d))) {
		char *path = g_build_filename(dir, name, NULL);

		assert_int_equal(utimensat(AT_FDCWD, path, two_hours_ago, 0), 0);
		g_free(path);
	}
	g_dir_close(d);
	g_free(dir);
	int64_t old = listed_age(f);
	assert_true(old >= 7200 - 5 && old <= 7200 + 5);
}

/* STATUS answers key=value lines naming the node, the version and the
 * shards and bytes it holds, with a healthy store. */
static void test_status_body(void **state)
{
	struct node_fixture *f = *state;
	uint8_t data[5000] = {0};
	char body[2048];
	struct net_call c = {.req = {.op = NET_OP_STATUS}, .resp_buf = body,
			     .resp_cap = sizeof(body)};
	struct net_node_status st;

	assert_int_equal(put(f, 1, data, sizeof(data)), 0);
	assert_int_equal(put(f, 2, data, 100), 0);
	assert_int_equal(node_fixture_call(f, 1, &c), 0);
	assert_int_equal(net_node_status_decode(body, (size_t)c.resp.body_len, &st), 0);
	assert_int_equal(st.node, 1);
	assert_string_equal(st.version, SHARDFS_VERSION);
	assert_int_equal(st.shards, 2);
	assert_true(st.live_bytes >= 5100);
	assert_true(st.disk_bytes >= st.live_bytes);
	assert_true(st.total_bytes >= st.free_bytes);
	assert_true(st.total_bytes > 0);
	assert_true(st.uptime_s < 3600);
	assert_int_equal(st.store_error, 0);
	assert_int_equal(node_service_store_error(f->svc[1]), 0);
}

/* An unknown opcode and a header with fields its opcode forbids get
 * NET_EPROTO; the node then still answers and keeps its shards. */
static void test_bad_requests_leave_node_serving(void **state)
{
	struct node_fixture *f = *state;
	uint8_t data[64], back[64];
	struct net_call unknown = {.req = {.op = 99}};
	struct net_call bad_ping = {.req = {.op = NET_OP_PING, .offset = 5}};
	struct net_call big_get = {.req = {.op = NET_OP_GET, .length = NET_MAX_SHARD + 1ull},
				   .resp_buf = back, .resp_cap = sizeof(back)};

	test_payload(data, sizeof(data), 3, 1);
	assert_int_equal(put(f, 3, data, sizeof(data)), 0);
	assert_int_equal(node_fixture_call(f, 1, &unknown), NET_EPROTO);
	assert_int_equal(node_fixture_call(f, 1, &bad_ping), NET_EPROTO);
	assert_int_equal(node_fixture_call(f, 1, &big_get), NET_EPROTO);
	assert_int_equal(simple(f, NET_OP_PING, 0, NULL), 0);
	assert_int_equal(get(f, 3, 0, back, sizeof(back), NULL), (int)sizeof(back));
	assert_memory_equal(data, back, sizeof(data));
}

/* Stop answers a request parked in a stream ring with -ESHUTDOWN before
 * the port closes; after stop the port answers nothing; a put acknowledged
 * before the stop is there when the store is opened again. */
static void test_stop_ordering(void **state)
{
	struct node_fixture *f = *state;
	const uint8_t sid[16] = "stop-stream-0001";
	uint8_t data[4096], back[4096];
	struct node_fixture_async parked = {0};
	struct net_call ping = {.req = {.op = NET_OP_PING}, .timeout_ms = 1000};

	test_payload(data, sizeof(data), 4, 1);
	assert_int_equal(put(f, 4, data, sizeof(data)), 0);
	/* A lossless ring that one reader pins at 0 is full after one append:
	 * the next append is parked for up to two seconds. */
	assert_int_equal(node_fixture_stream_open(f, 1, sid, 1, 4096,
						  NET_STREAM_WRITER | NET_STREAM_LOSSLESS, NULL, NULL),
			 0);
	assert_int_equal(node_fixture_stream_open(f, 1, sid, 2, 4096, NET_STREAM_LOSSLESS, NULL, NULL),
			 0);
	node_fixture_stream_append_call(&parked.call, sid, 1, data, sizeof(data));
	assert_int_equal(node_fixture_call(f, 1, &parked.call), 0);
	node_fixture_stream_append_call(&parked.call, sid, 1, data, 1);
	node_fixture_call_async(f, 1, &parked);
	assert_false(node_fixture_async_wait(&parked, 300));

	node_service_stop(f->svc[1], 2000);
	assert_true(node_fixture_async_wait(&parked, 0));
	assert_int_equal(parked.call.status, -ESHUTDOWN);
	assert_int_equal(node_service_store_error(f->svc[1]), -ESHUTDOWN);
	assert_true(node_fixture_call(f, 1, &ping) < 0);

	node_fixture_stop(f, 1, 0);
	node_fixture_start(f, 1);
	assert_int_equal(get(f, 4, 0, back, sizeof(back), NULL), (int)sizeof(back));
	assert_memory_equal(data, back, sizeof(data));
}

/* Puts in flight when stop begins each get an answer, and every one
 * acknowledged is in the store when it is opened again. */
static void test_stop_answers_puts_in_flight(void **state)
{
	struct node_fixture *f = *state;
	enum { N = 64, LEN = 16384 };
	struct node_fixture_async *calls = g_new0(struct node_fixture_async, N);
	uint8_t *data = g_malloc((size_t)N * LEN), back[LEN];
	struct wal_options wo;
	struct wal *w = NULL;
	char *dir = node_fixture_data_dir(f, 1);
	unsigned acked = 0;

	for (uint32_t i = 0; i < N; i++) {
		test_payload(data + (size_t)i * LEN, LEN, 100 + i, 1);
		calls[i].call = (struct net_call){
			.req = {.op = NET_OP_PUT, .key = key_of(100 + i), .body_len = LEN},
			.body = data + (size_t)i * LEN};
		node_fixture_call_async(f, 1, &calls[i]);
	}
	assert_true(node_fixture_async_wait(&calls[0], 5000));
	node_fixture_stop(f, 1, 3000);
	for (uint32_t i = 0; i < N; i++) {
		assert_true(node_fixture_async_wait(&calls[i], 8000));
		/* Refused by the service or the draining server, or cut by
		 * the close when it was still on its way. */
		assert_true(calls[i].call.status == 0 || calls[i].call.status == -ESHUTDOWN ||
			    calls[i].call.status == NET_ECONNLOST ||
			    calls[i].call.status == -ECONNREFUSED);
		acked += calls[i].call.status == 0;
	}
	assert_true(acked >= 1);
	wal_options_default(&wo);
	wo.dir = dir;
	assert_int_equal(wal_open(&wo, &w), 0);
	for (uint32_t i = 0; i < N; i++) {
		struct net_key nk = key_of(100 + i);
		struct wal_key k = {.part = nk.part, .shard = nk.shard};

		if (calls[i].call.status != 0)
			continue;
		memcpy(k.object_id, nk.object_id, 16);
		assert_int_equal(wal_read(w, &k, 0, back, LEN), LEN);
		assert_memory_equal(back, data + (size_t)i * LEN, LEN);
	}
	wal_close(w);
	g_free(dir);
	g_free(calls);
	g_free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stat_and_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_aged_says_how_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_pages_in_key_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests_leave_node_serving, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_ordering, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_answers_puts_in_flight, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
