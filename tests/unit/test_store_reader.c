/*
 * test_store_reader.c - the range reader (store/store.h) against three
 * in-process nodes with a 2+1 code and 64 KiB parts
 * (tests/lib/node_fixture.h): ranges, a node down, a damaged shard.
 */
#include "node_fixture.h"
#include "store/store.h"
#include "fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define PART (64u << 10)
#define LEN 150000u /* three parts, the last one short */

struct object {
	struct node_fixture f;
	struct store *s;
	uint8_t *data;
	struct meta_part *parts;
	unsigned nparts;
};

static int setup(void **state)
{
	struct object *o = g_new0(struct object, 1);
	struct store_options so;
	struct store_writer *w = NULL;
	uint8_t oid[16];

	node_fixture_init(&o->f, 3, "2+1", PART);
	store_options_default(&so);
	so.hedge_ms = 100;
	so.read_timeout_ms = 5000;
	assert_int_equal(store_open(o->f.conf, &so, &o->s, NULL), 0);
	o->data = g_malloc(LEN);
	test_payload(o->data, LEN, 2, 1);
	store_object_id_new(oid);
	assert_int_equal(store_writer_new(o->s, oid, 0, &w), 0);
	assert_int_equal(store_writer_write(w, o->data, LEN), 0);
	assert_int_equal(store_writer_finish(w, &o->parts, &o->nparts), 0);
	store_writer_free(w);
	assert_int_equal(o->nparts, 3);
	*state = o;
	return 0;
}

static int teardown(void **state)
{
	struct object *o = *state;

	store_close(o->s);
	node_fixture_destroy(&o->f);
	g_free(o->parts);
	g_free(o->data);
	g_free(o);
	return 0;
}

static void read_all_exact(struct object *o)
{
	struct store_reader *r = NULL;
	uint8_t *back = g_malloc0(LEN);

	assert_int_equal(store_reader_new(o->s, o->parts, o->nparts, &r), 0);
	assert_int_equal(store_reader_read(r, 0, back, LEN), LEN);
	assert_memory_equal(back, o->data, LEN);
	store_reader_free(r);
	g_free(back);
}

/* Reads that do not follow each other are served as ranges, byte-exact,
 * across a part boundary too, and cut at the end of the object. */
static void test_range_reads(void **state)
{
	struct object *o = *state;
	struct store_reader *r = NULL;
	struct store_stats st;
	uint8_t back[8192];

	assert_int_equal(store_reader_new(o->s, o->parts, o->nparts, &r), 0);
	assert_int_equal(store_reader_read(r, 70000, back, 1000), 1000);
	assert_memory_equal(back, o->data + 70000, 1000);
	assert_int_equal(store_reader_read(r, PART - 100, back, 300), 300);
	assert_memory_equal(back, o->data + PART - 100, 300);
	assert_int_equal(store_reader_read(r, LEN - 10, back, sizeof(back)), 10);
	assert_memory_equal(back, o->data + LEN - 10, 10);
	assert_int_equal(store_reader_read(r, LEN, back, sizeof(back)), 0);
	store_reader_free(r);
	store_get_stats(o->s, &st);
	assert_true(st.ranges_read >= 3);
}

/* With the node of part 0's first data shard stopped, whole and range
 * reads of that part still return exact bytes: they can only come from
 * decoding the other data shard with the parity shard. */
static void test_degraded_read_with_one_node_stopped(void **state)
{
	struct object *o = *state;
	struct store_reader *r = NULL;
	uint8_t back[1000];

	node_fixture_stop(&o->f, o->parts[0].nodes[0], 0);
	read_all_exact(o);
	assert_int_equal(store_reader_new(o->s, o->parts, o->nparts, &r), 0);
	assert_int_equal(store_reader_read(r, 500, back, sizeof(back)), sizeof(back));
	assert_memory_equal(back, o->data + 500, sizeof(back));
	store_reader_free(r);
}

/* A data shard of part 1 replaced on its node by other bytes of the same
 * length (a record the node's CRC accepts) is found out by the part
 * checksum of a sequential read: the concatenation of the data shards is
 * rejected (counted as a degraded read) and the bytes returned are still
 * exact, decoded with the parity shard. */
static void test_corrupt_shard_is_detected(void **state)
{
	struct object *o = *state;
	const struct meta_part *p = &o->parts[1];
	struct store_reader *r = NULL;
	struct store_stats before, after;
	uint8_t *back = g_malloc0(LEN), *junk;
	struct net_call stat = {.req = {.op = NET_OP_STAT, .key = {.part = p->index}}};

	memcpy(stat.req.key.object_id, p->object_id, 16);
	assert_int_equal(node_fixture_call(&o->f, p->nodes[0], &stat), 0);
	junk = g_malloc(stat.resp.aux);
	memset(junk, 0x5a, stat.resp.aux);
	struct net_call put = {.req = {.op = NET_OP_PUT, .key = stat.req.key,
				       .body_len = stat.resp.aux},
			       .body = junk};
	assert_int_equal(node_fixture_call(&o->f, p->nodes[0], &put), 0);

	store_get_stats(o->s, &before);
	/* The first read is a range of part 0; the next one continues it, so
	 * part 1 comes whole and is checked against its checksum. */
	assert_int_equal(store_reader_new(o->s, o->parts, o->nparts, &r), 0);
	assert_int_equal(store_reader_read(r, 0, back, PART), PART);
	assert_int_equal(store_reader_read(r, PART, back + PART, LEN - PART), LEN - PART);
	assert_memory_equal(back, o->data, LEN);
	store_reader_free(r);
	store_get_stats(o->s, &after);
	assert_true(after.degraded_reads > before.degraded_reads);
	g_free(junk);
	g_free(back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_range_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_degraded_read_with_one_node_stopped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_shard_is_detected, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
