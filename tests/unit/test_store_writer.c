/*
 * test_store_writer.c - the object writer (store/store.h) against three
 * in-process nodes with a 2+1 code and 64 KiB parts
 * (tests/lib/node_fixture.h): what it reports and what the nodes hold,
 * with every node up and with nodes down.
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

struct cluster {
	struct node_fixture f;
	struct store *s;
};

static int setup(void **state)
{
	struct cluster *c = g_new0(struct cluster, 1);

	node_fixture_init(&c->f, 3, "2+1", PART);
	assert_int_equal(store_open(c->f.conf, NULL, &c->s, NULL), 0);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct cluster *c = *state;

	store_close(c->s);
	node_fixture_destroy(&c->f);
	g_free(c);
	return 0;
}

/* The node's status for a STAT of shard i of part p; *len its length. */
static int stat_shard(struct cluster *c, const struct meta_part *p, unsigned i, uint64_t *len)
{
	struct net_call call = {.req = {.op = NET_OP_STAT, .key = {.part = p->index, .shard = (uint16_t)i}}};
	int rc;

	memcpy(call.req.key.object_id, p->object_id, 16);
	rc = node_fixture_call(&c->f, p->nodes[i], &call);
	*len = call.resp.aux;
	return rc;
}

/* 200,000 bytes written in odd-sized pieces become four 2+1 parts of
 * 64 KiB (the last one short) on three distinct nodes, every shard held
 * by the node the manifest names, and read back byte-exact. */
static void test_write_then_read_back(void **state)
{
	struct cluster *c = *state;
	enum { LEN = 200000 };
	uint8_t *data = g_malloc(LEN), *back = g_malloc0(LEN), oid[16];
	struct store_writer *w = NULL;
	struct store_reader *r = NULL;
	struct meta_part *parts = NULL;
	unsigned nparts = 0;

	test_payload(data, LEN, 1, 1);
	store_object_id_new(oid);
	assert_int_equal(store_writer_new(c->s, oid, 0, &w), 0);
	for (size_t at = 0; at < LEN; at += 7777)
		assert_int_equal(store_writer_write(w, data + at, MIN(7777, LEN - at)), 0);
	assert_int_equal(store_writer_finish(w, &parts, &nparts), 0);
	store_writer_free(w);
	assert_int_equal(nparts, 4);
	for (unsigned p = 0; p < nparts; p++) {
		uint64_t len = 0;

		assert_memory_equal(parts[p].object_id, oid, 16);
		assert_int_equal(parts[p].index, p);
		assert_int_equal(parts[p].length, p < 3 ? PART : LEN - 3 * PART);
		assert_int_equal(parts[p].k, 2);
		assert_int_equal(parts[p].m, 1);
		assert_true(parts[p].nodes[0] != parts[p].nodes[1] &&
			    parts[p].nodes[1] != parts[p].nodes[2] &&
			    parts[p].nodes[0] != parts[p].nodes[2]);
		for (unsigned i = 0; i < 3; i++) {
			assert_int_equal(stat_shard(c, &parts[p], i, &len), 0);
			assert_true(len >= parts[p].length / 2);
		}
	}
	assert_int_equal(store_reader_new(c->s, parts, nparts, &r), 0);
	assert_int_equal(store_reader_read(r, 0, back, LEN), LEN);
	assert_memory_equal(back, data, LEN);
	store_reader_free(r);
	g_free(parts);
	g_free(back);
	g_free(data);
}

/* Writes size bytes of seed's payload as a new object; the writer's
 * result, with *parts and *nparts on success. */
static int write_object(struct cluster *c, size_t size, uint32_t seed, uint8_t oid[16],
			struct meta_part **parts, unsigned *nparts)
{
	uint8_t *data = g_malloc(size);
	struct store_writer *w = NULL;
	int rc;

	test_payload(data, size, seed, 1);
	store_object_id_new(oid);
	assert_int_equal(store_writer_new(c->s, oid, 0, &w), 0);
	rc = store_writer_write(w, data, size);
	int fin = store_writer_finish(w, parts, nparts);
	store_writer_free(w);
	g_free(data);
	return rc ? rc : fin;
}

static void assert_reads_back(struct cluster *c, const struct meta_part *parts, unsigned nparts,
			      size_t size, uint32_t seed)
{
	uint8_t *data = g_malloc(size), *back = g_malloc0(size);
	struct store_reader *r = NULL;

	test_payload(data, size, seed, 1);
	assert_int_equal(store_reader_new(c->s, parts, nparts, &r), 0);
	assert_int_equal(store_reader_read(r, 0, back, size), size);
	assert_memory_equal(back, data, size);
	/* a range inside one part, the way a random read asks */
	assert_int_equal(store_reader_read(r, 1000, back, 5000), 5000);
	assert_memory_equal(back, data + 1000, 5000);
	store_reader_free(r);
	g_free(back);
	g_free(data);
}

/* With one of three nodes down (no node left to hand off to), a 2+1 write
 * still commits: every part records the shard of the stopped node as
 * missing, holds its other two shards, and reads back exact, with the
 * node down and once it is back. */
static void test_writes_go_on_with_a_node_down(void **state)
{
	struct cluster *c = *state;
	enum { LEN = 200000 };
	struct meta_part *parts = NULL;
	struct store_stats st;
	unsigned nparts = 0;
	uint8_t oid[16];

	node_fixture_stop(&c->f, 2, 0);
	assert_int_equal(write_object(c, LEN, 2, oid, &parts, &nparts), 0);
	assert_int_equal(nparts, 4);
	for (unsigned p = 0; p < nparts; p++) {
		unsigned lost = 0;

		for (unsigned i = 0; i < 3; i++) {
			uint64_t len;
			bool missing = parts[p].missing >> i & 1;

			lost += missing;
			assert_true(missing == (parts[p].nodes[i] == 2));
			if (!missing)
				assert_int_equal(stat_shard(c, &parts[p], i, &len), 0);
		}
		assert_int_equal(lost, 1);
	}
	store_get_stats(c->s, &st);
	assert_int_equal(st.shards_missing, 4);
	assert_int_equal(st.parts_degraded, 4);
	assert_reads_back(c, parts, nparts, LEN, 2);
	node_fixture_start(&c->f, 2);
	assert_reads_back(c, parts, nparts, LEN, 2);
	g_free(parts);
}

/* Below min_shards a write fails and reports it: with two of three nodes
 * down (one durable shard of the 2 needed), and with one down when the
 * cluster file asks for every shard (min_shards=3). */
static void test_writes_fail_below_min_shards(void **state)
{
	struct cluster *c = *state;
	struct meta_part *parts = NULL;
	unsigned nparts = 0;
	uint8_t oid[16];
	GKeyFile *kf = g_key_file_new();

	node_fixture_stop(&c->f, 2, 0);
	node_fixture_stop(&c->f, 3, 0);
	assert_int_equal(write_object(c, 100000, 3, oid, &parts, &nparts), STORE_EUNAVAIL);
	node_fixture_start(&c->f, 3);
	store_close(c->s);
	assert_true(g_key_file_load_from_file(kf, c->f.conf, G_KEY_FILE_KEEP_COMMENTS, NULL));
	g_key_file_set_integer(kf, "cluster", "min_shards", 3);
	assert_true(g_key_file_save_to_file(kf, c->f.conf, NULL));
	g_key_file_free(kf);
	assert_int_equal(store_open(c->f.conf, NULL, &c->s, NULL), 0);
	assert_int_equal(write_object(c, 100000, 3, oid, &parts, &nparts), STORE_EUNAVAIL);
	node_fixture_start(&c->f, 2);
	assert_int_equal(write_object(c, 100000, 3, oid, &parts, &nparts), 0);
	assert_int_equal(parts[0].missing, 0);
	assert_reads_back(c, parts, nparts, 100000, 3);
	g_free(parts);
}

/* An object with no bytes has no parts and sends nothing. */
static void test_empty_object_has_no_parts(void **state)
{
	struct cluster *c = *state;
	struct store_writer *w = NULL;
	struct meta_part *parts = NULL;
	struct store_stats st;
	unsigned nparts = 99;
	uint8_t oid[16];

	store_object_id_new(oid);
	assert_int_equal(store_writer_new(c->s, oid, 0, &w), 0);
	assert_int_equal(store_writer_finish(w, &parts, &nparts), 0);
	store_writer_free(w);
	assert_int_equal(nparts, 0);
	store_get_stats(c->s, &st);
	assert_int_equal(st.parts_written, 0);
	g_free(parts);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_then_read_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_object_has_no_parts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writes_go_on_with_a_node_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writes_fail_below_min_shards, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
