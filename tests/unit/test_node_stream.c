/*
 * test_node_stream.c - the stream home rings (store/node/stream_home.h)
 * in-process, behind a real QUIC server on 127.0.0.1 and driven by a real
 * client pool (tests/lib/node_fixture.h). The test owns the clock of the
 * rings: waits and leases end when it calls node_streams_tick_at(), so
 * nothing here sleeps for a lease.
 */
#include "node_fixture.h"
#include "store/node/stream_home.h"
#include "fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define WRITER 1u
#define WRITER2 2u
#define READER 3u

static const uint8_t sid[16] = "home-ring-stream";

struct home {
	struct node_fixture f;
	struct node_streams *streams;
};

static void handle(void *arg, struct net_request *r)
{
	node_streams_handle(arg, r);
}

static int setup(void **state)
{
	struct home *h = g_new0(struct home, 1);

	h->streams = node_streams_new();
	node_fixture_init_handler(&h->f, handle, h->streams);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct home *h = *state;

	node_streams_stop(h->streams, -ESHUTDOWN);
	node_fixture_destroy(&h->f);
	node_streams_free(h->streams);
	g_free(h);
	return 0;
}

static int open_handle(struct home *h, uint64_t token, uint64_t ring, uint32_t mode)
{
	return node_fixture_stream_open(&h->f, 1, sid, token, ring, mode, NULL, NULL);
}

/* The status of an append; *at = its first byte. */
static int append(struct home *h, uint64_t token, const void *buf, size_t len, uint64_t *at)
{
	struct net_call c;
	int rc;

	node_fixture_stream_append_call(&c, sid, token, buf, len);
	rc = node_fixture_call(&h->f, 1, &c);
	if (at)
		*at = c.resp.aux;
	return rc;
}

/* A read in flight: the call, its request body and its buffer. */
struct read {
	struct node_fixture_async a;
	uint8_t body[NET_STREAM_READ_SIZE];
	uint8_t buf[16384];
};

static void read_start(struct home *h, struct read *rd, uint64_t token, uint64_t pos)
{
	node_fixture_stream_read_call(&rd->a.call, sid, token, pos, rd->buf, sizeof(rd->buf),
				      rd->body);
	node_fixture_call_async(&h->f, 1, &rd->a);
}

/* Bytes read (or the status); *first = the position of buf[0]. */
static int read_now(struct home *h, struct read *rd, uint64_t token, uint64_t pos, uint64_t *first)
{
	read_start(h, rd, token, pos);
	assert_true(node_fixture_async_wait(&rd->a, 5000));
	*first = rd->a.call.resp.aux;
	return rd->a.call.status < 0 ? rd->a.call.status : (int)rd->a.call.resp.body_len;
}

static int simple(struct home *h, uint8_t op, uint64_t token)
{
	struct net_call c = {.req = {.op = op, .offset = token}};

	memcpy(c.req.key.object_id, sid, 16);
	return node_fixture_call(&h->f, 1, &c);
}

static uint64_t stat_value(struct home *h, const char *name)
{
	char body[1024] = {0};
	struct net_call c = {.req = {.op = NET_OP_STREAM_STAT}, .resp_buf = body,
			     .resp_cap = sizeof(body) - 1};

	memcpy(c.req.key.object_id, sid, 16);
	assert_int_equal(node_fixture_call(&h->f, 1, &c), 0);
	return node_fixture_kv(body, name);
}

/* Appended chunks are read back in order with their absolute offsets,
 * from any position held. */
static void test_append_then_read_in_order(void **state)
{
	struct home *h = *state;
	struct read rd;
	uint64_t at = 99, first = 99;

	assert_int_equal(open_handle(h, WRITER, 0, NET_STREAM_WRITER), 0);
	assert_int_equal(open_handle(h, READER, 0, 0), 0);
	assert_int_equal(append(h, WRITER, "abc", 3, &at), 0);
	assert_int_equal(at, 0);
	assert_int_equal(append(h, WRITER, "defg", 4, &at), 0);
	assert_int_equal(at, 3);
	assert_int_equal(read_now(h, &rd, READER, 0, &first), 7);
	assert_int_equal(first, 0);
	assert_memory_equal(rd.buf, "abcdefg", 7);
	assert_int_equal(read_now(h, &rd, READER, 3, &first), 4);
	assert_int_equal(first, 3);
	assert_memory_equal(rd.buf, "defg", 4);
	assert_int_equal(simple(h, NET_OP_STREAM_CLOSE, 42), -EBADF);
}

/* A reader that opens after 6000 bytes went through a 4096-byte ring is
 * told the oldest byte held and reads exactly the last 4096 bytes. */
static void test_late_reader_gets_recent_history(void **state)
{
	struct home *h = *state;
	uint8_t data[6000];
	struct read rd;
	uint64_t head = 0, oldest = 0, first = 0;

	test_payload(data, sizeof(data), 1, 1);
	assert_int_equal(open_handle(h, WRITER, 4096, NET_STREAM_WRITER), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(append(h, WRITER, data + i * 2000, 2000, NULL), 0);
	assert_int_equal(node_fixture_stream_open(&h->f, 1, sid, READER, 4096, 0, &head, &oldest), 0);
	assert_int_equal(head, 6000);
	assert_int_equal(oldest, 6000 - 4096);
	assert_int_equal(read_now(h, &rd, READER, oldest, &first), 4096);
	assert_int_equal(first, oldest);
	assert_memory_equal(rd.buf, data + oldest, 4096);
}

/* Under the live policy a reader overtaken by the writer resumes at the
 * first whole chunk held, and the bytes it missed are counted. */
static void test_live_reader_skips_forward_and_counts(void **state)
{
	struct home *h = *state;
	uint8_t data[6000];
	struct read rd;
	uint64_t first = 0;

	test_payload(data, sizeof(data), 2, 1);
	assert_int_equal(open_handle(h, WRITER, 4096, NET_STREAM_WRITER), 0);
	assert_int_equal(open_handle(h, READER, 4096, 0), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(append(h, WRITER, data + i * 2000, 2000, NULL), 0);
	assert_int_equal(read_now(h, &rd, READER, 0, &first), 4000);
	assert_int_equal(first, 2000);
	assert_memory_equal(rd.buf, data + 2000, 4000);
	assert_int_equal(stat_value(h, "dropped"), 2000);
	assert_int_equal(stat_value(h, "chunks"), 3);
	assert_int_equal(stat_value(h, "oldest"), 6000 - 4096);
}

/* Under the lossless policy an append that would overwrite what a reader
 * has not passed is parked; the reader moving on lets it in, and a parked
 * append that waits too long is answered -EAGAIN with nothing appended. */
static void test_lossless_parks_writer_until_reader_catches_up(void **state)
{
	struct home *h = *state;
	uint8_t data[4096];
	struct read rd, tail;
	struct node_fixture_async parked = {0};
	uint64_t first = 0;

	test_payload(data, sizeof(data), 3, 1);
	assert_int_equal(open_handle(h, WRITER, 4096, NET_STREAM_WRITER | NET_STREAM_LOSSLESS), 0);
	assert_int_equal(open_handle(h, READER, 4096, NET_STREAM_LOSSLESS), 0);
	assert_int_equal(append(h, WRITER, data, sizeof(data), NULL), 0);
	node_fixture_stream_append_call(&parked.call, sid, WRITER, "tail", 4);
	node_fixture_call_async(&h->f, 1, &parked);
	assert_false(node_fixture_async_wait(&parked, 300));
	assert_int_equal(read_now(h, &rd, READER, 0, &first), 4096);
	assert_memory_equal(rd.buf, data, sizeof(data));
	assert_false(node_fixture_async_wait(&parked, 100)); /* still pinned at 0 */

	read_start(h, &tail, READER, 4096); /* the reader has passed 4096 */
	assert_true(node_fixture_async_wait(&parked, 5000));
	assert_int_equal(parked.call.status, 0);
	assert_int_equal(parked.call.resp.aux, 4096);
	assert_true(node_fixture_async_wait(&tail.a, 5000));
	assert_int_equal(tail.a.call.resp.body_len, 4);
	assert_memory_equal(tail.buf, "tail", 4);

	/* Full again up to the reader at 4096: the next append waits out. */
	assert_int_equal(append(h, WRITER, data, 4092, NULL), 0);
	node_fixture_stream_append_call(&parked.call, sid, WRITER, data, 8);
	node_fixture_call_async(&h->f, 1, &parked);
	assert_false(node_fixture_async_wait(&parked, 300));
	node_streams_tick_at(h->streams, g_get_monotonic_time() + 3 * G_USEC_PER_SEC);
	assert_true(node_fixture_async_wait(&parked, 5000));
	assert_int_equal(parked.call.status, -EAGAIN);
	assert_int_equal(stat_value(h, "head"), 8192);
}

/* A handle idle past its lease is dropped while a younger one stays:
 * the writer's appends then get -EBADF, and its reader, which has
 * everything, gets EOF. */
static void test_leases_expire(void **state)
{
	struct home *h = *state;
	gint64 t0 = g_get_monotonic_time(), kept;
	struct read rd;
	uint64_t first = 0;

	assert_int_equal(open_handle(h, WRITER, 0, NET_STREAM_WRITER), 0);
	assert_int_equal(append(h, WRITER, "x", 1, NULL), 0);
	node_streams_tick_at(h->streams, t0 + (NET_STREAM_LEASE_S - 1) * G_USEC_PER_SEC);
	assert_int_equal(simple(h, NET_OP_STREAM_KEEP, WRITER), 0);
	kept = g_get_monotonic_time(); /* the writer was last seen before this */
	g_usleep(200000);
	assert_int_equal(open_handle(h, READER, 0, 0), 0);

	/* Just past the writer's lease, well inside the reader's. */
	node_streams_tick_at(h->streams, kept + NET_STREAM_LEASE_S * G_USEC_PER_SEC + 100000);
	assert_int_equal(simple(h, NET_OP_STREAM_KEEP, WRITER), -EBADF);
	assert_int_equal(append(h, WRITER, "y", 1, NULL), -EBADF);
	assert_int_equal(stat_value(h, "writers"), 0);
	assert_int_equal(simple(h, NET_OP_STREAM_KEEP, READER), 0);
	assert_int_equal(read_now(h, &rd, READER, 0, &first), 1);
	assert_memory_equal(rd.buf, "x", 1);
	assert_int_equal(read_now(h, &rd, READER, 1, &first), NET_EEOF);
}

/* Readers get EOF only once the last writer closes: a read at the head
 * waits while one writer remains and is woken with EOF by the last close;
 * a reader that came before any writer just waits. */
static void test_eof_after_last_writer_closes(void **state)
{
	struct home *h = *state;
	struct read early, rd, waiting;
	uint64_t first = 0;

	assert_int_equal(open_handle(h, READER, 0, 0), 0);
	read_start(h, &early, READER, 0);
	assert_false(node_fixture_async_wait(&early.a, 300));
	node_streams_tick_at(h->streams, g_get_monotonic_time() + 2 * G_USEC_PER_SEC);
	assert_true(node_fixture_async_wait(&early.a, 5000));
	assert_int_equal(early.a.call.status, 0); /* nothing yet, not EOF */
	assert_int_equal(early.a.call.resp.body_len, 0);

	assert_int_equal(open_handle(h, WRITER, 0, NET_STREAM_WRITER), 0);
	assert_int_equal(open_handle(h, WRITER2, 0, NET_STREAM_WRITER), 0);
	assert_int_equal(append(h, WRITER, "z", 1, NULL), 0);
	assert_int_equal(read_now(h, &rd, READER, 0, &first), 1);
	assert_int_equal(simple(h, NET_OP_STREAM_CLOSE, WRITER), 0);
	read_start(h, &waiting, READER, 1);
	assert_false(node_fixture_async_wait(&waiting.a, 300));
	assert_int_equal(simple(h, NET_OP_STREAM_CLOSE, WRITER2), 0);
	assert_true(node_fixture_async_wait(&waiting.a, 5000));
	assert_int_equal(waiting.a.call.status, NET_EEOF);
	assert_int_equal(waiting.a.call.resp.aux, 1);
	assert_int_equal(read_now(h, &rd, READER, 1, &first), NET_EEOF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_then_read_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_reader_gets_recent_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_reader_skips_forward_and_counts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lossless_parks_writer_until_reader_catches_up,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_leases_expire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_after_last_writer_closes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
