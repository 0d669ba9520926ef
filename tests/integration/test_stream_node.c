/*
 * test_stream_node.c - stream rings on real `shardfs node` processes,
 * through the store's stream handles: bytes and positions, EOF after the
 * last writer, the live policy's skip to a chunk boundary with its drop
 * count, the lossless policy holding a writer back, concurrent writers'
 * chunks kept whole, and a killed home node.
 *
 * argv[1] is the shardfs binary.
 */
#include "node_procs.h"
#include "store/stream.h"
#include "fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static const char *shardfs_bin;

struct fixture {
	struct node_procs np;
	struct store *s;
};

static int setup(void **state)
{
	struct fixture *f = g_new0(struct fixture, 1);
	struct store_options o;
	GError *err = NULL;
	char *status[] = {"status", NULL, NULL};

	node_procs_init(&f->np, shardfs_bin, 2, "1+1");
	for (unsigned id = 1; id <= 2; id++)
		node_procs_start(&f->np, id);
	status[1] = f->np.conf;
	for (int i = 0;; i++) {
		char *out = NULL;
		int rc = node_procs_run(shardfs_bin, status, &out);

		g_free(out);
		if (rc == 0)
			break;
		assert_true(i < 100);
		g_usleep(100000);
	}
	store_options_default(&o);
	o.suspect_ms = 60000;
	assert_int_equal(store_open(f->np.conf, &o, &f->s, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->s);
	node_procs_destroy(&f->np);
	g_free(f);
	return 0;
}

static void stream_id(uint8_t id[16], int n)
{
	memset(id, 0, 16);
	g_snprintf((char *)id, 16, "stream-%d", n);
}

static struct store_stream *open_handle(struct store *s, const uint8_t id[16], bool writer,
					uint64_t ring, bool lossless)
{
	struct store_stream_options o = {.writer = writer, .ring_bytes = ring, .lossless = lossless};
	struct store_stream *h = NULL;

	assert_int_equal(store_stream_open(s, id, &o, &h, NULL, NULL), 0);
	return h;
}

/* Reads until len bytes arrived from pos on (or EOF); returns the count. */
static size_t read_all(struct store_stream *r, uint64_t *pos, uint8_t *out, size_t len)
{
	size_t have = 0;

	for (int polls = 0; have < len && polls < 20; polls++) {
		uint64_t first;
		size_t got;
		int rc = store_stream_read(r, *pos, out + have, len - have, 1, &first, &got);

		if (rc == STORE_EEOF)
			break;
		assert_int_equal(rc, 0);
		assert_int_equal(first, *pos);
		have += got;
		*pos += got;
	}
	return have;
}

static void test_bytes_positions_and_eof(void **state)
{
	struct fixture *f = *state;
	uint8_t id[16], want[3000], got[3000];
	uint64_t pos = 0, first, at;
	size_t n;

	stream_id(id, 1);
	struct store_stream *r = open_handle(f->s, id, false, 0, false);
	/* No writer yet: the reader waits, no EOF. */
	assert_int_equal(store_stream_read(r, 0, got, sizeof(got), 1, &first, &n), 0);
	assert_int_equal(n, 0);
	struct store_stream *w = open_handle(f->s, id, true, 0, false);
	for (int i = 0; i < 3; i++) {
		for (int j = 0; j < 1000; j++)
			want[i * 1000 + j] = (uint8_t)(i * 31 + j);
		assert_int_equal(store_stream_append(w, want + i * 1000, 1000, &at), 0);
		assert_int_equal(at, (uint64_t)i * 1000);
	}
	assert_int_equal(store_stream_close(w, NULL), 0);
	assert_int_equal(read_all(r, &pos, got, sizeof(got)), sizeof(got));
	assert_memory_equal(got, want, sizeof(want));
	assert_int_equal(store_stream_read(r, pos, got, sizeof(got), 1, &first, &n), STORE_EEOF);
	store_stream_close(r, NULL);
}

static void test_live_reader_skips_to_a_chunk_start(void **state)
{
	struct fixture *f = *state;
	uint8_t id[16], chunk[10000], got[1 << 16];
	struct store_stream_stat st;
	uint64_t first;
	size_t n;

	stream_id(id, 2);
	struct store_stream *r = open_handle(f->s, id, false, 65536, false);
	struct store_stream *w = open_handle(f->s, id, true, 65536, false);
	for (int i = 0; i < 20; i++) {
		memset(chunk, i, sizeof(chunk));
		assert_int_equal(store_stream_append(w, chunk, sizeof(chunk), NULL), 0);
	}
	assert_int_equal(store_stream_read(r, 0, got, sizeof(got), 1, &first, &n), 0);
	assert_true(first >= 200000 - 65536);
	assert_int_equal(first % sizeof(chunk), 0);
	assert_int_equal(got[0], (uint8_t)(first / sizeof(chunk)));
	assert_int_equal(store_stream_stat(f->s, id, &st), 0);
	assert_int_equal(st.dropped, first);
	assert_int_equal(st.head, 200000);
	assert_int_equal(st.writers, 1);
	store_stream_close(w, NULL);
	store_stream_close(r, NULL);
}

static void test_lossless_holds_the_writer(void **state)
{
	struct fixture *f = *state;
	uint8_t id[16], chunk[16384], got[16384];
	uint64_t pos = 0;

	stream_id(id, 3);
	struct store_stream *w = open_handle(f->s, id, true, 65536, true);
	struct store_stream *r = open_handle(f->s, id, false, 65536, true);
	for (int i = 0; i < 4; i++) {
		memset(chunk, i, sizeof(chunk));
		assert_int_equal(store_stream_append(w, chunk, sizeof(chunk), NULL), 0);
	}
	assert_int_equal(store_stream_append(w, chunk, sizeof(chunk), NULL), -EAGAIN);
	assert_int_equal(read_all(r, &pos, got, sizeof(got)), sizeof(got));
	assert_int_equal(got[0], 0);
	/* The next read moves the reader past the first chunk: room for one. */
	assert_int_equal(read_all(r, &pos, got, sizeof(got)), sizeof(got));
	memset(chunk, 4, sizeof(chunk));
	assert_int_equal(store_stream_append(w, chunk, sizeof(chunk), NULL), 0);
	store_stream_close(w, NULL);
	for (int i = 2; i <= 4; i++) {
		assert_int_equal(read_all(r, &pos, got, sizeof(got)), sizeof(got));
		assert_int_equal(got[0], i);
		assert_int_equal(got[sizeof(got) - 1], i);
	}
	store_stream_close(r, NULL);
}

struct writer_job {
	struct store *s;
	const uint8_t *id;
	uint8_t mark;
};

static gpointer write_chunks(gpointer arg)
{
	struct writer_job *j = arg;
	struct store_stream *w = open_handle(j->s, j->id, true, 1 << 22, false);
	uint8_t chunk[3000];

	for (int i = 0; i < 100; i++) {
		size_t len = 100 + (size_t)(i * 29 % 2900);

		memset(chunk, j->mark, len);
		chunk[0] = (uint8_t)(len >> 8);
		chunk[1] = (uint8_t)len;
		assert_int_equal(store_stream_append(w, chunk, len, NULL), 0);
	}
	store_stream_close(w, NULL);
	return NULL;
}

static void test_concurrent_writers_keep_chunks_whole(void **state)
{
	struct fixture *f = *state;
	uint8_t id[16];
	uint8_t *all = g_malloc(1 << 20);
	uint64_t pos = 0;

	stream_id(id, 4);
	struct store_stream *r = open_handle(f->s, id, false, 1 << 22, false);
	struct writer_job a = {f->s, id, 0xaa}, b = {f->s, id, 0xbb};
	GThread *ta = g_thread_new("wa", write_chunks, &a), *tb = g_thread_new("wb", write_chunks, &b);
	g_thread_join(ta);
	g_thread_join(tb);
	size_t n = read_all(r, &pos, all, 1 << 20);
	unsigned chunks[2] = {0};
	for (size_t at = 0; at < n;) {
		size_t len = (size_t)all[at] << 8 | all[at + 1];
		uint8_t mark = all[at + 2];

		assert_true(mark == 0xaa || mark == 0xbb);
		for (size_t i = 2; i < len; i++)
			assert_int_equal(all[at + i], mark);
		chunks[mark == 0xbb]++;
		at += len;
	}
	assert_int_equal(chunks[0], 100);
	assert_int_equal(chunks[1], 100);
	store_stream_close(r, NULL);
	g_free(all);
}

/* Which node answers for the stream: the one whose kill breaks it. */
static void test_home_node_killed(void **state)
{
	struct fixture *f = *state;
	uint8_t id[16], buf[64];
	uint64_t first;
	size_t n;

	stream_id(id, 5);
	struct store_stream *w = open_handle(f->s, id, true, 0, false);
	struct store_stream *r = open_handle(f->s, id, false, 0, false);
	assert_int_equal(store_stream_append(w, "before", 6, NULL), 0);
	struct store_stream_stat st;
	assert_int_equal(store_stream_stat(f->s, id, &st), 0);
	assert_int_equal(st.head, 6);
	/* Kill whichever node holds it: the one that has it in its stats. */
	for (unsigned id_node = 1; id_node <= 2; id_node++) {
		node_procs_stop(&f->np, id_node, SIGKILL);
		gint64 t0 = g_get_monotonic_time();
		int rc = store_stream_read(r, 6, buf, sizeof(buf), 1, &first, &n);
		if (rc == 0) { /* not the home node: bring it back */
			node_procs_start(&f->np, id_node);
			continue;
		}
		assert_true(g_get_monotonic_time() - t0 < 5 * G_USEC_PER_SEC);
		assert_int_not_equal(store_stream_append(w, "x", 1, NULL), 0);
		/* A writer reopening lands on the other node. */
		store_stream_close(w, NULL);
		w = open_handle(f->s, id, true, 0, false);
		assert_int_equal(store_stream_append(w, "after", 5, NULL), 0);
		break;
	}
	store_stream_close(w, NULL);
	store_stream_close(r, NULL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bytes_positions_and_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_reader_skips_to_a_chunk_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lossless_holds_the_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers_keep_chunks_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_home_node_killed, setup, teardown),
	};

	return node_procs_main(argc, argv, &shardfs_bin, tests);
}
