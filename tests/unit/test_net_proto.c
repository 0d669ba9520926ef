/*
 * test_net_proto.c - the stream body codecs and the key=value text of
 * STATUS and STREAM_STAT: round trips, the byte layout of the tables in
 * net_proto.h, and bodies of the wrong length refused.
 */
#include "net/net_proto.h"

#include <errno.h>
#include <glib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

/* A STREAM_OPEN body round-trips, with its fields at the offsets of its table. */
static void test_stream_open_round_trip(void **state)
{
	struct net_stream_open o = {.base = 0x0102030405060708ull, .ring_bytes = 8u << 20,
				    .mode = NET_STREAM_WRITER | NET_STREAM_LOSSLESS};
	struct net_stream_open back;
	uint8_t b[NET_STREAM_OPEN_SIZE];

	(void)state;
	net_stream_open_encode(&o, b);
	assert_int_equal(b[0], 0x08); /* little-endian base at 0 */
	assert_int_equal(b[7], 0x01);
	assert_int_equal(b[16], 3); /* mode at 16 */
	for (int i = 20; i < 24; i++)
		assert_int_equal(b[i], 0); /* reserved */
	assert_int_equal(net_stream_open_decode(b, sizeof(b), &back), 0);
	assert_int_equal(back.base, o.base);
	assert_int_equal(back.ring_bytes, o.ring_bytes);
	assert_int_equal(back.mode, o.mode);
}

/* The STREAM_OPEN response and the STREAM_READ body round-trip too. */
static void test_opened_and_read_round_trip(void **state)
{
	struct net_stream_opened od = {.head = 123456789, .oldest = 42}, odb;
	struct net_stream_read r = {.token = 0xfeedfacecafebeefull, .local_readers = 7}, rb;
	uint8_t b1[NET_STREAM_OPENED_SIZE], b2[NET_STREAM_READ_SIZE];

	(void)state;
	net_stream_opened_encode(&od, b1);
	assert_int_equal(net_stream_opened_decode(b1, sizeof(b1), &odb), 0);
	assert_int_equal(odb.head, od.head);
	assert_int_equal(odb.oldest, od.oldest);
	net_stream_read_encode(&r, b2);
	assert_int_equal(b2[8], 7); /* local readers at 8 */
	assert_int_equal(net_stream_read_decode(b2, sizeof(b2), &rb), 0);
	assert_int_equal(rb.token, r.token);
	assert_int_equal(rb.local_readers, 7);
}

/* Every fixed-size body is refused one byte short or one byte long, and
 * the output is left untouched. */
static void test_bodies_of_the_wrong_length_are_refused(void **state)
{
	uint8_t b[NET_STREAM_OPEN_SIZE + 1] = {1};
	struct net_stream_open o = {.base = 99};
	struct net_stream_opened od = {.head = 99};
	struct net_stream_read r = {.token = 99};

	(void)state;
	assert_int_equal(net_stream_open_decode(b, NET_STREAM_OPEN_SIZE - 1, &o), NET_EPROTO);
	assert_int_equal(net_stream_open_decode(b, NET_STREAM_OPEN_SIZE + 1, &o), NET_EPROTO);
	assert_int_equal(net_stream_open_decode(b, 0, &o), NET_EPROTO);
	assert_int_equal(net_stream_opened_decode(b, NET_STREAM_OPENED_SIZE - 1, &od), NET_EPROTO);
	assert_int_equal(net_stream_opened_decode(b, NET_STREAM_OPENED_SIZE + 1, &od), NET_EPROTO);
	assert_int_equal(net_stream_read_decode(b, NET_STREAM_READ_SIZE - 1, &r), NET_EPROTO);
	assert_int_equal(net_stream_read_decode(b, NET_STREAM_READ_SIZE + 1, &r), NET_EPROTO);
	assert_int_equal(o.base, 99);
	assert_int_equal(od.head, 99);
	assert_int_equal(r.token, 99);
}

/* A STREAM_STAT round-trips through its text, in the keys a node writes. */
static void test_stream_stat_round_trip(void **state)
{
	struct net_stream_stat st = {.head = 1000, .oldest = 10, .ring_bytes = 4096, .dropped = 5,
				     .chunks = 77, .writers = 1, .readers = 3, .subscriptions = 2,
				     .lossless = true};
	struct net_stream_stat back;
	GString *t = g_string_new(NULL);

	(void)state;
	net_stream_stat_encode(&st, t);
	assert_string_equal(t->str, "head=1000\noldest=10\nring_bytes=4096\npolicy=lossless\n"
				    "writers=1\nreaders=3\nsubscriptions=2\ndropped=5\nchunks=77\n");
	net_stream_stat_decode(t->str, t->len, &back);
	assert_memory_equal(&back, &st, offsetof(struct net_stream_stat, lossless));
	assert_true(back.lossless);
	g_string_free(t, TRUE);
}

/* A STATUS round-trips, a failed store's error included, and one with a
 * key missing or garbled is refused as a protocol error. */
static void test_node_status_round_trip(void **state)
{
	struct net_node_status st = {.node = 3, .version = "1.2.3", .shards = 9, .live_bytes = 100,
				     .disk_bytes = 200, .free_bytes = 5, .total_bytes = 50,
				     .uptime_s = 7, .store_error = -ENOSPC,
				     .fs_id = 0xfedcba9876543210u,
				     .identity = "0b8f6c1e-7a42-4d39-9a0e-5c3d2b1a0f99"};
	struct net_node_status back;
	GString *t = g_string_new(NULL);

	(void)state;
	net_node_status_encode(&st, t);
	assert_non_null(strstr(t->str, "store_error=28\n"));
	assert_int_equal(net_node_status_decode(t->str, t->len, &back), 0);
	assert_int_equal(back.node, 3);
	assert_string_equal(back.version, "1.2.3");
	assert_int_equal(back.shards, 9);
	assert_int_equal(back.disk_bytes, 200);
	assert_int_equal(back.total_bytes, 50);
	assert_int_equal(back.store_error, -ENOSPC);
	assert_true(back.fs_id == 0xfedcba9876543210u);
	assert_string_equal(back.identity, st.identity);
	/* an identity longer than any UUID is no identity of ours */
	GString *longer = g_string_new(t->str);

	g_string_replace(longer, st.identity, "0b8f6c1e-7a42-4d39-9a0e-5c3d2b1a0f99-and-more", 1);
	assert_int_equal(net_node_status_decode(longer->str, longer->len, &back), NET_EPROTO);
	g_string_free(longer, TRUE);
	/* fs_id may be left out (0: counted alone), but not garbled */
	char *garbled = g_strdup(t->str), *at = strstr(garbled, "fs_id=") + 6;

	*at = 'x';
	assert_int_equal(net_node_status_decode(garbled, strlen(garbled), &back), NET_EPROTO);
	g_free(garbled);
	g_string_truncate(t, (gsize)(strstr(t->str, "fs_id") - t->str));
	assert_int_equal(net_node_status_decode(t->str, t->len, &back), 0);
	assert_true(back.fs_id == 0 && back.shards == 9 && back.identity[0] == '\0');
	g_string_truncate(t, (gsize)(strstr(t->str, "uptime_s") - t->str));
	assert_int_equal(net_node_status_decode(t->str, t->len, &back), NET_EPROTO);
	assert_string_equal(back.version, "1.2.3");
	g_string_assign(t, "node=x1\n");
	assert_int_equal(net_node_status_decode(t->str, t->len, &back), NET_EPROTO);
	assert_string_equal(back.version, "?");
	g_string_free(t, TRUE);
}

/* Keys are found only at the start of a line, a value is a whole decimal
 * number that fits in 64 bits, and the reader never looks past the length
 * it is given. */
static void test_kv_reader(void **state)
{
	const char text[] = "xfree_bytes=1\nfree_bytes=123\nfree=3\n"
			    "total_bytes=18446744073709551615\nbig=18446744073709551616\n"
			    "neg=-1\nodd=12ab\nempty=\npolicy=livex\nlast=9";
	size_t len = strlen(text);
	uint64_t v = 0;

	(void)state;
	assert_true(net_kv_u64(text, len, "free_bytes", &v));
	assert_int_equal(v, 123);
	assert_true(net_kv_u64(text, len, "free", &v));
	assert_int_equal(v, 3);
	assert_true(net_kv_u64(text, len, "total_bytes", &v));
	assert_true(v == UINT64_MAX);
	assert_true(net_kv_u64(text, len, "last", &v));
	assert_int_equal(v, 9);
	v = 42;
	assert_false(net_kv_u64(text, len, "missing", &v));
	assert_false(net_kv_u64(text, len, "bytes", &v));
	assert_false(net_kv_u64(text, len, "big", &v));
	assert_false(net_kv_u64(text, len, "neg", &v));
	assert_false(net_kv_u64(text, len, "odd", &v));
	assert_false(net_kv_u64(text, len, "empty", &v));
	assert_false(net_kv_u64(NULL, 0, "free_bytes", &v));
	assert_int_equal(v, 42);
	assert_false(net_kv_is(text, len, "policy", "live"));
	assert_true(net_kv_is(text, len, "policy", "livex"));
	/* Cut inside the value: only the bytes given are read. */
	size_t cut = (size_t)(strstr(text, "123") - text) + 2;
	assert_true(net_kv_u64(text, cut, "free_bytes", &v));
	assert_int_equal(v, 12);
	assert_false(net_kv_u64(text, 5, "xfree_bytes", &v));
}

/* Every project code has a name, errno values get strerror's, and the
 * codes a response may carry keep the values of the protocol. */
static void test_error_space(void **state)
{
	(void)state;
	assert_int_equal(NET_ECORRUPT, WAL_ECORRUPT);
	assert_int_equal(NET_EPROTO, -4128);
	assert_int_equal(NET_EEOF, -4131);
	assert_string_equal(common_strerror(STORE_EUNAVAIL), "too few storage nodes answer");
	assert_string_equal(common_strerror(NET_ETIMEDOUT), "no answer before the deadline");
	assert_string_equal(common_strerror(WAL_EBADSEG), "not a shardfs segment file");
	assert_string_equal(common_strerror(-ENOENT), g_strerror(ENOENT));
	assert_string_equal(common_strerror(-4150), "unknown network error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_open_round_trip),
		cmocka_unit_test(test_opened_and_read_round_trip),
		cmocka_unit_test(test_bodies_of_the_wrong_length_are_refused),
		cmocka_unit_test(test_stream_stat_round_trip),
		cmocka_unit_test(test_node_status_round_trip),
		cmocka_unit_test(test_kv_reader),
		cmocka_unit_test(test_error_space),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
