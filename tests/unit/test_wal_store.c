/*
 * test_wal_store.c - the shard store on a real directory: round trips, range
 * reads, overwrites, deletes, recovery from torn tails and corruption,
 * checkpoints, compaction (also while reads and writes go on, and cut short
 * at every point), scrub, full disks and failing fsyncs.
 */
#include "wal/wal.h"
#include "faultio.h"
#include "wal_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

/* What the store must hold: key id -> version and length; absent = deleted. */
struct model {
	GHashTable *keys; /* id -> struct model_val */
};

struct model_val {
	uint64_t version;
	uint32_t len;
};

static struct model model_new(void)
{
	return (struct model){g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free)};
}

static void model_set(struct model *m, uint64_t id, uint64_t version, uint32_t len)
{
	uint64_t *k = g_new(uint64_t, 1);
	struct model_val *v = g_new(struct model_val, 1);

	*k = id;
	*v = (struct model_val){version, len};
	g_hash_table_replace(m->keys, k, v);
}

static void model_free(struct model *m)
{
	g_hash_table_destroy(m->keys);
}

static int put_version(struct wal *w, uint64_t id, uint64_t version, uint32_t len)
{
	uint8_t *buf = g_malloc(len ? len : 1);
	struct wal_key k = test_key(id);
	int rc;

	test_payload(buf, len, id, version);
	rc = wal_put(w, &k, buf, len);
	g_free(buf);
	return rc;
}

static void put_ok(struct wal *w, struct model *m, uint64_t id, uint64_t version, uint32_t len)
{
	assert_int_equal(put_version(w, id, version, len), 0);
	if (m)
		model_set(m, id, version, len);
}

static void delete_ok(struct wal *w, struct model *m, uint64_t id)
{
	struct wal_key k = test_key(id);

	assert_int_equal(wal_delete(w, &k), 0);
	uint64_t key = id;

	g_hash_table_remove(m->keys, &key);
}

static void expect_version(struct wal *w, uint64_t id, uint64_t version, uint32_t len)
{
	uint8_t *buf = g_malloc(len + 1);
	struct wal_key k = test_key(id);
	struct wal_shard_info info;
	uint64_t got;

	assert_int_equal(wal_stat(w, &k, &info), 0);
	assert_int_equal(info.length, len);
	assert_int_equal(wal_read(w, &k, 0, buf, len + 1), len);
	assert_true(test_payload_check(buf, len, id, &got));
	if (len >= 16)
		assert_int_equal(got, version);
	g_free(buf);
}

static void expect_missing(struct wal *w, uint64_t id)
{
	struct wal_key k = test_key(id);
	uint8_t b;

	assert_int_equal(wal_read(w, &k, 0, &b, 1), -ENOENT);
}

static void expect_model(struct wal *w, struct model *m, uint64_t max_id)
{
	for (uint64_t id = 0; id <= max_id; id++) {
		struct model_val *v = g_hash_table_lookup(m->keys, &id);

		if (v)
			expect_version(w, id, v->version, v->len);
		else
			expect_missing(w, id);
	}
}

static char *last_segment(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;
	char *best = NULL;

	while ((name = g_dir_read_name(d)))
		if (g_str_has_prefix(name, "seg-") && g_str_has_suffix(name, ".wal") &&
		    (!best || strcmp(name, best) > 0)) {
			g_free(best);
			best = g_strdup(name);
		}
	g_dir_close(d);
	char *path = g_build_filename(dir, best, NULL);

	g_free(best);
	return path;
}

static char *segment_path(const char *dir, uint64_t id)
{
	return g_strdup_printf("%s/seg-%016llx.wal", dir, (unsigned long long)id);
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static void remove_checkpoint(const char *dir)
{
	char *p = g_build_filename(dir, "index.ckpt", NULL);

	unlink(p);
	g_free(p);
}

/* Shards of many sizes read back byte-exact, before and after reopening. */
static void test_put_read_round_trip(void **state)
{
	struct test_wal *f = *state;
	uint32_t lens[] = {0, 1, 15, 16, 4096, 65535, 65536, 65537, 200000, 256u << 10};
	struct wal *w;

	w = test_wal_open(&f->o);
	for (size_t i = 0; i < G_N_ELEMENTS(lens); i++)
		put_ok(w, NULL, i, 1, lens[i]);
	for (size_t i = 0; i < G_N_ELEMENTS(lens); i++)
		expect_version(w, i, 1, lens[i]);
	wal_close(w);
	w = test_wal_open(&f->o);
	for (size_t i = 0; i < G_N_ELEMENTS(lens); i++)
		expect_version(w, i, 1, lens[i]);
	wal_close(w);
}

/* Range reads return exactly the requested bytes, short at the end, 0 at the
 * end, -EINVAL past it, and read only the blocks that cover the range. */
static void test_range_reads(void **state)
{
	const uint32_t len = 200000;
	struct {
		uint64_t off;
		size_t len;
		ssize_t want;
	} cases[] = {
		{0, 1, 1},	   {1, 100, 100},	  {65530, 20, 20},	{65536, 65536, 65536},
		{100000, 200000, 100000}, {199999, 10, 1}, {len, 5, 0},	{len + 1, 1, -EINVAL},
		{4096, 0, 0},
	};
	uint8_t *full = g_malloc(len), *buf = g_malloc(len);
	char *dir = test_mkdtemp();
	struct wal_key k = test_key(5);
	struct wal_options o;
	struct wal *w;

	(void)state;
	test_payload(full, len, 5, 3);
	test_wal_options(&o, dir);
	o.io = &faultio;
	faultio_start(NULL);
	w = test_wal_open(&o);
	assert_int_equal(wal_put(w, &k, full, len), 0);
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		ssize_t n = wal_read(w, &k, cases[i].off, buf, cases[i].len);

		assert_int_equal(n, cases[i].want);
		if (n > 0)
			assert_memory_equal(buf, full + cases[i].off, (size_t)n);
	}
	uint64_t before = faultio_bytes_read();

	assert_int_equal(wal_read(w, &k, 100000, buf, 4096), 4096);
	assert_memory_equal(buf, full + 100000, 4096);
	/* one header with its CRC table, then one 64 KiB block */
	assert_true(faultio_bytes_read() - before <= 64 + 16 + WAL_BLOCK_SIZE);
	wal_close(w);
	test_rmdir(dir);
	g_free(dir);
	g_free(full);
	g_free(buf);
}

/* A key never written is reported missing by read, stat and delete. */
static void test_missing_key(void **state)
{
	struct test_wal *f = *state;
	struct wal_key k = test_key(99);
	struct wal_shard_info info;
	struct wal *w;
	uint8_t b;

	w = test_wal_open(&f->o);
	assert_int_equal(wal_read(w, &k, 0, &b, 1), -ENOENT);
	assert_int_equal(wal_stat(w, &k, &info), -ENOENT);
	assert_int_equal(wal_delete(w, &k), -ENOENT);
	wal_close(w);
}

/* Shards of one object and part that differ only in shard index are
 * separate keys. */
static void test_shard_index_is_part_of_key(void **state)
{
	char *dir = test_mkdtemp();
	struct wal_key a = test_key(1), b = a;
	struct wal_options o;
	struct wal *w;
	char buf[8];

	(void)state;
	b.shard = a.shard + 1;
	test_wal_options(&o, dir);
	w = test_wal_open(&o);
	assert_int_equal(wal_put(w, &a, "shard-a", 7), 0);
	assert_int_equal(wal_put(w, &b, "shard-b", 7), 0);
	assert_int_equal(wal_read(w, &a, 0, buf, 8), 7);
	assert_memory_equal(buf, "shard-a", 7);
	assert_int_equal(wal_read(w, &b, 0, buf, 8), 7);
	assert_memory_equal(buf, "shard-b", 7);
	wal_close(w);
	test_rmdir(dir);
	g_free(dir);
}

/* The newest version of a key wins, across segments and reopens. */
static void test_overwrite_newest_wins(void **state)
{
	struct test_wal *f = *state;
	struct wal *w;

	w = test_wal_open(&f->o);
	for (uint64_t v = 1; v <= 12; v++)
		put_ok(w, NULL, 7, v, 200000); /* 12 x 200 KB spans several 1 MiB segments */
	expect_version(w, 7, 12, 200000);
	wal_close(w);
	w = test_wal_open(&f->o);
	expect_version(w, 7, 12, 200000);
	put_ok(w, NULL, 7, 13, 100);
	wal_close(w);
	remove_checkpoint(f->dir);
	w = test_wal_open(&f->o);
	expect_version(w, 7, 13, 100);
	wal_close(w);
}

/* A deleted key stays deleted after reopening, and can be written again. */
static void test_delete(void **state)
{
	struct test_wal *f = *state;
	struct model m = model_new();
	struct wal *w;

	w = test_wal_open(&f->o);
	put_ok(w, &m, 1, 1, 5000);
	put_ok(w, &m, 2, 1, 5000);
	delete_ok(w, &m, 1);
	expect_model(w, &m, 2);
	wal_close(w);
	w = test_wal_open(&f->o);
	expect_model(w, &m, 2);
	put_ok(w, &m, 1, 2, 77);
	wal_close(w);
	remove_checkpoint(f->dir);
	w = test_wal_open(&f->o);
	expect_model(w, &m, 2);
	wal_close(w);
	model_free(&m);
}

/* Oversized shards and impossible options are refused with clear errors. */
static void test_limits(void **state)
{
	struct test_wal *f = *state;
	struct wal *w;

	w = test_wal_open(&f->o);
	assert_int_equal(put_version(w, 1, 1, f->o.max_payload + 1), -EMSGSIZE);
	wal_close(w);
	f->o.segment_size = f->o.max_payload; /* a largest record would not fit */
	assert_int_equal(wal_open(&f->o, &w), -EINVAL);
	test_wal_options(&f->o, f->dir);
	f->o.dir = NULL;
	assert_int_equal(wal_open(&f->o, &w), -EINVAL);
}

/* A torn tail (garbage, or a record cut short) is truncated on open;
 * everything before it survives and appends go on. */
static void test_torn_tail_truncated(void **state)
{
	struct test_wal *f = *state;
	struct model m = model_new();
	struct wal_stats st;
	struct wal *w;

	w = test_wal_open(&f->o);
	for (uint64_t id = 0; id < 5; id++)
		put_ok(w, &m, id, 1, 30000);
	wal_close(w);

	char *seg = last_segment(f->dir);
	FILE *tail = fopen(seg, "ab");

	assert_non_null(tail);
	for (int i = 0; i < 777; i++)
		fputc(i * 13, tail);
	fclose(tail);
	w = test_wal_open(&f->o);
	wal_get_stats(w, &st);
	assert_int_equal(st.torn_bytes, 777);
	expect_model(w, &m, 5);
	put_ok(w, &m, 5, 1, 1000);
	wal_close(w);

	/* Now cut the last record in half: it was never acknowledged as far as
	 * recovery can tell, so it goes, and nothing before it. */
	struct stat sb;

	assert_int_equal(stat(seg, &sb), 0);
	assert_int_equal(truncate(seg, sb.st_size - 600), 0);
	g_hash_table_remove(m.keys, &(uint64_t){5});
	remove_checkpoint(f->dir);
	w = test_wal_open(&f->o);
	wal_get_stats(w, &st);
	assert_true(st.torn_bytes > 0);
	expect_model(w, &m, 5);
	put_ok(w, &m, 6, 1, 2000);
	wal_close(w);
	w = test_wal_open(&f->o);
	expect_model(w, &m, 6);
	wal_close(w);
	g_free(seg);
	model_free(&m);
}

/* A payload byte flipped in a sealed segment makes reads of that shard
 * report corruption (never its bytes), with or without a checkpoint; other
 * shards are unaffected and scrub names the bad one. */
static void test_corrupt_payload_reported(void **state)
{
	struct test_wal *f = *state;
	struct model m = model_new();
	struct wal_shard_info info;
	struct wal_scrub_report rep;
	struct wal_key k0 = test_key(0);
	struct wal *w;
	uint8_t *buf = g_malloc(100000);

	w = test_wal_open(&f->o);
	for (uint64_t id = 0; id < 20; id++)
		put_ok(w, &m, id, 1, 100000); /* key 0 is the first record of segment 1 */
	wal_close(w);
	char *seg1 = segment_path(f->dir, 1);

	flip_byte(seg1, WAL_SEG_HEADER_SIZE + 48 + 8 + 70000);
	w = test_wal_open(&f->o);
	assert_int_equal(wal_read(w, &k0, 0, buf, 100000), WAL_ECORRUPT);
	assert_int_equal(wal_read(w, &k0, 0, buf, 1000), 1000); /* block 0 is intact */
	g_hash_table_remove(m.keys, &(uint64_t){0});
	for (uint64_t id = 1; id < 20; id++)
		expect_version(w, id, 1, 100000);
	assert_int_equal(wal_scrub(w, NULL, NULL, &rep), 0);
	assert_int_equal(rep.bad_records, 1);
	assert_true(rep.records_checked >= 20);
	wal_close(w);

	remove_checkpoint(f->dir);
	w = test_wal_open(&f->o);
	assert_int_equal(wal_stat(w, &k0, &info), 0);
	assert_true(info.corrupt);
	assert_int_equal(wal_read(w, &k0, 0, buf, 10), WAL_ECORRUPT);
	for (uint64_t id = 1; id < 20; id++)
		expect_version(w, id, 1, 100000);
	wal_close(w);
	g_free(seg1);
	g_free(buf);
	model_free(&m);
}

struct scrub_seen {
	int items;
	bool key0;
};

static void on_scrub(void *arg, const struct wal_scrub_item *item)
{
	struct scrub_seen *s = arg;
	struct wal_key k0 = test_key(0);

	s->items++;
	if (item->key_valid && !memcmp(item->key.object_id, k0.object_id, 16) &&
	    item->key.part == k0.part && item->key.shard == k0.shard)
		s->key0 = true;
}

/* A damaged record header in a sealed segment hides only that record:
 * the scan resynchronises and finds the records after it; scrub reports
 * the damaged region and a clean store scrubs clean. */
static void test_corrupt_header_mid_segment(void **state)
{
	struct test_wal *f = *state;
	struct wal_scrub_report rep;
	struct scrub_seen seen = {0};
	struct wal *w;

	w = test_wal_open(&f->o);
	for (uint64_t id = 0; id < 20; id++)
		put_ok(w, NULL, id, 1, 100000);
	assert_int_equal(wal_scrub(w, on_scrub, &seen, &rep), 0);
	assert_int_equal(rep.bad_records, 0);
	assert_int_equal(seen.items, 0);
	wal_close(w);
	char *seg1 = segment_path(f->dir, 1);

	flip_byte(seg1, WAL_SEG_HEADER_SIZE + 10); /* inside key 0's object id */
	remove_checkpoint(f->dir);
	w = test_wal_open(&f->o);
	expect_missing(w, 0);
	for (uint64_t id = 1; id < 20; id++)
		expect_version(w, id, 1, 100000);
	assert_int_equal(wal_scrub(w, on_scrub, &seen, &rep), 0);
	assert_int_equal(rep.bad_records, 1);
	assert_int_equal(seen.items, 1);
	assert_false(seen.key0); /* the header is unreadable: no key to name */
	wal_close(w);
	g_free(seg1);
}

struct stop_later {
	gint *stop;
	gulong after_us;
};

static gpointer stop_after(gpointer p)
{
	struct stop_later *s = p;

	g_usleep(s->after_us);
	g_atomic_int_set(s->stop, 1);
	return NULL;
}

/* A paced scrub reads no faster than its rate (2 MiB at 8 MiB/s:
 * 0.24 s at least), publishes its progress, finds what an
 * unpaced one finds, and ends with -ECANCELED soon after it is asked to
 * stop. */
static void test_paced_scrub_keeps_its_rate_and_stops(void **state)
{
	struct test_wal *f = *state;
	struct wal_scrub_report rep;
	uint64_t progress = 0;
	gint stop = 0;
	struct wal_scrub_pace pace = {.bytes_per_s = 8 << 20, .stop = &stop, .progress = &progress};
	struct wal *w = test_wal_open(&f->o);

	for (uint64_t id = 0; id < 20; id++)
		put_ok(w, NULL, id, 1, 100000);
	gint64 t0 = g_get_monotonic_time();

	assert_int_equal(wal_scrub_paced(w, &pace, NULL, NULL, &rep), 0);
	assert_true(g_get_monotonic_time() - t0 >= 220000); /* 2,001,120 bytes at 8 MiB/s */
	assert_int_equal(rep.records_checked, 20);
	assert_int_equal(rep.bad_records, 0);
	assert_true(progress == rep.bytes_checked && progress >= 2000000);

	struct stop_later later = {&stop, 100000};
	GThread *t = g_thread_new("stop", stop_after, &later);

	pace.bytes_per_s = 1 << 20; /* two seconds' worth */
	t0 = g_get_monotonic_time();
	assert_int_equal(wal_scrub_paced(w, &pace, NULL, NULL, &rep), -ECANCELED);
	assert_true(g_get_monotonic_time() - t0 < 1000000);
	assert_true(rep.records_checked < 20);
	g_thread_join(t);
	wal_close(w);
}

/* Files named like segments that are not ours (wrong magic, garbage) are
 * set aside as *.bad, not deleted, and the store opens with its data. */
static void test_foreign_segments_set_aside(void **state)
{
	struct test_wal *f = *state;
	struct model m = model_new();
	struct wal_stats st;
	struct wal *w;

	w = test_wal_open(&f->o);
	for (uint64_t id = 0; id < 8; id++)
		put_ok(w, &m, id, 1, 200000);
	wal_close(w);
	char *garbage = segment_path(f->dir, 0), *wrong = segment_path(f->dir, 0x100);

	assert_true(g_file_set_contents(garbage, "this is not a segment at all, just text", -1, NULL));
	assert_true(g_file_set_contents(wrong, "SHRDSEG2 with a wrong version and more", -1, NULL));
	w = test_wal_open(&f->o);
	wal_get_stats(w, &st);
	assert_int_equal(st.bad_segments, 2);
	expect_model(w, &m, 8);
	put_ok(w, &m, 8, 1, 1000);
	wal_close(w);
	char *kept = g_strconcat(garbage, ".bad", NULL);

	assert_true(g_file_test(kept, G_FILE_TEST_EXISTS));
	w = test_wal_open(&f->o);
	expect_model(w, &m, 8);
	wal_close(w);
	g_free(kept);
	g_free(garbage);
	g_free(wrong);
	model_free(&m);
}

static uint64_t bytes_read_by_open(const struct wal_options *base)
{
	struct wal_options o = *base;
	struct wal *w;
	uint64_t n;

	o.io = &faultio;
	faultio_start(NULL);
	w = test_wal_open(&o);
	n = faultio_bytes_read();
	wal_close(w);
	return n;
}

/* With a checkpoint, opening reads a small fraction of what a full scan
 * reads; a damaged checkpoint is ignored and everything is still found. */
static void test_checkpoint_makes_restart_fast(void **state)
{
	struct test_wal *f = *state;
	struct model m = model_new();
	struct wal *w;

	w = test_wal_open(&f->o);
	for (uint64_t id = 0; id < 200; id++)
		put_ok(w, &m, id, 1, 200000); /* 40 MB in 1 MiB segments */
	wal_close(w);
	uint64_t with_ckpt = bytes_read_by_open(&f->o);

	remove_checkpoint(f->dir);
	uint64_t full = bytes_read_by_open(&f->o);

	assert_true(full >= 40000000);
	assert_true(with_ckpt * 10 < full);
	char *ckpt = g_build_filename(f->dir, "index.ckpt", NULL);

	flip_byte(ckpt, 100);
	w = test_wal_open(&f->o);
	expect_model(w, &m, 200);
	wal_close(w);
	g_free(ckpt);
	model_free(&m);
}

static void churn(struct wal *w, struct model *m, uint64_t keys, uint32_t len)
{
	for (uint64_t id = 0; id < keys; id++)
		put_ok(w, m, id, 1, len);
	for (uint64_t id = 0; id < keys; id += 2)
		put_ok(w, m, id, 2, len / 2);
	for (uint64_t id = 1; id < keys; id += 4)
		delete_ok(w, m, id);
}

/* Compaction removes sparse segments and frees disk space; every live shard
 * keeps its newest bytes and every deleted one stays deleted, also after a
 * reopen from the checkpoint and after a full scan. */
static void test_compaction_reclaims_space(void **state)
{
	struct test_wal *f = *state;
	struct model m = model_new();
	struct wal_stats before, after;
	unsigned compacted = 0;
	struct wal *w;

	w = test_wal_open(&f->o);
	churn(w, &m, 200, 20000);
	wal_get_stats(w, &before);
	assert_int_equal(wal_compact(w, 0.9, &compacted), 0);
	wal_get_stats(w, &after);
	assert_true(compacted > 0);
	assert_true(after.disk_bytes < before.disk_bytes);
	assert_true(after.segments < before.segments);
	assert_int_equal(after.keys, before.keys);
	expect_model(w, &m, 200);
	/* Compacting again, after the copies have been sealed away too, keeps
	 * tombstones exactly as long as needed. */
	for (uint64_t id = 1000; id < 1100; id++)
		put_ok(w, &m, id, 1, 20000);
	assert_int_equal(wal_compact(w, 1.0, NULL), 0);
	expect_model(w, &m, 1100);
	wal_close(w);
	w = test_wal_open(&f->o);
	expect_model(w, &m, 1100);
	wal_close(w);
	remove_checkpoint(f->dir);
	w = test_wal_open(&f->o);
	expect_model(w, &m, 1100);
	wal_close(w);
	model_free(&m);
}

/* A tombstone whose older put still sits in a segment that is not
 * compacted survives the compaction of its own segment: the deleted shard
 * does not come back, even after a full scan. */
static void test_compaction_keeps_needed_tombstones(void **state)
{
	struct test_wal *f = *state;
	struct model m = model_new();
	unsigned compacted = 0;
	struct wal *w;

	w = test_wal_open(&f->o);
	for (uint64_t id = 0; id < 45; id++)
		put_ok(w, &m, id, 1, 20000); /* fills segment 1, which stays dense */
	delete_ok(w, &m, 0);		     /* tombstone in segment 2 */
	for (uint64_t id = 100; id < 140; id++)
		put_ok(w, &m, id, 1, 20000); /* segment 2 ... */
	for (uint64_t id = 100; id < 140; id++)
		delete_ok(w, &m, id); /* ... made sparse */
	for (uint64_t id = 200; id < 260; id++)
		put_ok(w, &m, id, 1, 20000); /* seal segment 2 and more */
	assert_int_equal(wal_compact(w, 0.5, &compacted), 0);
	assert_true(compacted >= 1);
	expect_model(w, &m, 260);
	wal_close(w);
	remove_checkpoint(f->dir);
	w = test_wal_open(&f->o);
	expect_model(w, &m, 260);
	wal_close(w);
	model_free(&m);
}

struct async_put {
	GMutex m;
	GCond c;
	int pending, failed;
};

static void async_done(void *arg, int status)
{
	struct async_put *a = arg;

	g_mutex_lock(&a->m);
	a->failed += status != 0;
	a->pending--;
	g_cond_signal(&a->c);
	g_mutex_unlock(&a->m);
}

struct compactor {
	struct wal *w;
	volatile gint *stop;
	unsigned removed;
};

static gpointer compactor_main(gpointer p)
{
	struct compactor *c = p;

	while (!g_atomic_int_get(c->stop)) {
		unsigned n = 0;

		wal_compact(c->w, 1.0, &n);
		c->removed += n;
		g_usleep(1000);
	}
	return NULL;
}

/* Segments the writer has sealed but whose records the slow sync thread
 * has not applied yet are never taken for compaction: every acknowledged
 * put survives, also after reopening. */
static void test_compaction_skips_unapplied_segments(void **state)
{
	struct test_wal *f = *state;
	struct faultio_plan plan = {.crash_after = -1, .sync_delay_us = 20000};
	struct async_put a = {.pending = 0};
	struct compactor comp;
	volatile gint stop = 0;
	uint8_t *bufs = g_malloc(300 * 8192);
	struct wal *w;
	GThread *th;

	f->o.segment_size = 64u << 10;
	f->o.max_payload = 16u << 10;
	f->o.io = &faultio;
	faultio_start(&plan);
	w = test_wal_open(&f->o);
	g_mutex_init(&a.m);
	g_cond_init(&a.c);
	comp = (struct compactor){w, &stop, 0};
	th = g_thread_new("compactor", compactor_main, &comp);
	for (uint64_t id = 0; id < 300; id++) {
		struct wal_key k = test_key(id);

		test_payload(bufs + id * 8192, 8192, id, 1);
		g_mutex_lock(&a.m);
		a.pending++;
		g_mutex_unlock(&a.m);
		assert_int_equal(wal_put_async(w, &k, bufs + id * 8192, 8192, async_done, &a), 0);
	}
	g_mutex_lock(&a.m);
	while (a.pending)
		g_cond_wait(&a.c, &a.m);
	g_mutex_unlock(&a.m);
	g_atomic_int_set(&stop, 1);
	g_thread_join(th);
	assert_int_equal(a.failed, 0);
	for (uint64_t id = 0; id < 300; id++)
		expect_version(w, id, 1, 8192);
	wal_close(w);
	test_wal_options(&f->o, f->dir);
	f->o.segment_size = 64u << 10;
	f->o.max_payload = 16u << 10;
	remove_checkpoint(f->dir);
	w = test_wal_open(&f->o);
	for (uint64_t id = 0; id < 300; id++)
		expect_version(w, id, 1, 8192);
	wal_close(w);
	g_free(bufs);
}

/* Shards larger than a lowered max_payload stay readable: the limit is for
 * new puts only. */
static void test_lowered_max_payload_keeps_data(void **state)
{
	struct test_wal *f = *state;
	struct model m = model_new();
	struct wal *w;

	w = test_wal_open(&f->o);
	put_ok(w, &m, 1, 1, 40000);
	for (uint64_t id = 2; id < 10; id++)
		put_ok(w, &m, id, 1, 1000);
	wal_close(w);
	f->o.max_payload = 16u << 10;
	w = test_wal_open(&f->o);
	expect_model(w, &m, 10);
	assert_int_equal(put_version(w, 11, 1, 40000), -EMSGSIZE);
	wal_close(w);
	remove_checkpoint(f->dir);
	w = test_wal_open(&f->o);
	expect_model(w, &m, 10);
	wal_close(w);
	model_free(&m);
}

/* A segment whose live record cannot be read back fails its compaction
 * (WAL_ECORRUPT) but does not stop the others from being compacted. */
static void test_compaction_goes_past_a_bad_segment(void **state)
{
	struct test_wal *f = *state;
	unsigned compacted = 0;
	struct wal *w;

	w = test_wal_open(&f->o);
	for (uint64_t id = 0; id < 200; id++)
		put_ok(w, NULL, id, 1, 20000);
	wal_close(w);
	char *seg1 = segment_path(f->dir, 1);

	flip_byte(seg1, WAL_SEG_HEADER_SIZE + 10); /* key 0's header, still indexed */
	w = test_wal_open(&f->o); /* from the checkpoint: segment 1 is not rescanned */
	for (uint64_t id = 1; id < 200; id++) {
		struct wal_key k = test_key(id);

		if (id % 10)
			assert_int_equal(wal_delete(w, &k), 0);
	}
	assert_int_equal(wal_compact(w, 0.5, &compacted), WAL_ECORRUPT);
	assert_true(compacted > 0);
	for (uint64_t id = 10; id < 200; id += 10)
		expect_version(w, id, 1, 20000);
	wal_close(w);
	g_free(seg1);
}

static uint64_t live_put_bytes(struct wal *w, uint64_t max_id)
{
	uint64_t sum = 0;

	for (uint64_t id = 0; id < max_id; id++) {
		struct wal_key k = test_key(id);
		struct wal_shard_info info;

		if (wal_stat(w, &k, &info) == 0)
			sum += WAL_REC_HEADER_SIZE + 4 * ((info.length + WAL_BLOCK_SIZE - 1) / WAL_BLOCK_SIZE) +
			       info.length;
	}
	return sum;
}

/* Reopening from a checkpoint counts no record twice, so a tombstone whose
 * shadowed put is gone is dropped by compaction after a restart as before. */
static void test_restart_keeps_tombstone_accounting(void **state)
{
	struct test_wal *f = *state;
	struct model m = model_new();
	struct wal_stats st;
	struct wal *w;

	w = test_wal_open(&f->o);
	put_ok(w, &m, 0, 1, 20000);
	delete_ok(w, &m, 0);
	wal_close(w); /* the put and the tombstone are behind the checkpoint */
	w = test_wal_open(&f->o);
	for (uint64_t id = 1; id < 120; id++)
		put_ok(w, &m, id, 1, 20000); /* seal the segment holding both */
	assert_int_equal(wal_compact(w, 1.0, NULL), 0);
	wal_get_stats(w, &st);
	assert_int_equal(st.live_bytes, live_put_bytes(w, 120)); /* no tombstone left */
	expect_model(w, &m, 120);
	wal_close(w);
	model_free(&m);
}

struct io_thread {
	struct wal *w;
	uint64_t first_id;
	volatile gint *stop;
	int errors;
	int rounds;
};

/* Writes new versions of its own keys and reads them back. */
static gpointer io_thread_main(gpointer p)
{
	struct io_thread *t = p;
	uint8_t buf[30000];

	for (uint64_t v = 10; !g_atomic_int_get(t->stop); v++, t->rounds++) {
		for (uint64_t id = t->first_id; id < t->first_id + 20; id++) {
			struct wal_key k = test_key(id);
			uint64_t got;

			if (put_version(t->w, id, v, 30000) != 0)
				t->errors++;
			if (wal_read(t->w, &k, 0, buf, sizeof(buf)) != 30000 ||
			    !test_payload_check(buf, 30000, id, &got) || got != v)
				t->errors++;
		}
	}
	return NULL;
}

/* Compaction runs while other threads write and read: no read sees wrong
 * bytes, no write fails, and the final state is exact. */
static void test_compaction_concurrent_with_io(void **state)
{
	struct test_wal *f = *state;
	struct model m = model_new();
	struct io_thread t[3];
	GThread *th[3];
	volatile gint stop = 0;
	struct wal_stats st;
	struct wal *w;

	w = test_wal_open(&f->o);
	churn(w, &m, 150, 20000);
	for (int i = 0; i < 3; i++) {
		t[i] = (struct io_thread){w, 10000 + 100 * (uint64_t)i, &stop, 0, 0};
		th[i] = g_thread_new("io", io_thread_main, &t[i]);
	}
	for (int round = 0; round < 20; round++) {
		assert_int_equal(wal_compact(w, 0.8, NULL), 0);
		expect_model(w, &m, 150);
	}
	g_atomic_int_set(&stop, 1);
	for (int i = 0; i < 3; i++) {
		g_thread_join(th[i]);
		assert_int_equal(t[i].errors, 0);
		assert_true(t[i].rounds > 0);
	}
	wal_get_stats(w, &st);
	assert_true(st.compactions > 0);
	wal_close(w);
	w = test_wal_open(&f->o);
	expect_model(w, &m, 150);
	for (int i = 0; i < 3; i++)
		for (uint64_t id = t[i].first_id; id < t[i].first_id + 20; id++)
			expect_version(w, id, 10 + (uint64_t)t[i].rounds - 1, 30000);
	wal_close(w);
	model_free(&m);
}

static void copy_dir(const char *from, const char *to)
{
	GDir *d = g_dir_open(from, 0, NULL);
	const char *name;

	while ((name = g_dir_read_name(d))) {
		char *src = g_build_filename(from, name, NULL), *dst = g_build_filename(to, name, NULL);
		gchar *data;
		gsize len;

		assert_true(g_file_get_contents(src, &data, &len, NULL));
		assert_true(g_file_set_contents(dst, data, (gssize)len, NULL));
		g_free(data);
		g_free(src);
		g_free(dst);
	}
	g_dir_close(d);
}

/* Compaction stopped at any point (the machine stops: every later call
 * fails), with or without losing unsynced writes, loses nothing and
 * resurrects nothing. */
static void test_compaction_crash_at_every_point(void **state)
{
	char *template = test_mkdtemp();
	struct model m = model_new();
	struct wal_options o;
	struct wal *w;
	long total;
	GRand *rng = g_rand_new_with_seed(20261123);

	(void)state;
	test_wal_options(&o, template);
	w = test_wal_open(&o);
	churn(w, &m, 120, 20000);
	wal_close(w);
	{ /* count the mutating calls of one whole compaction */
		char *dir = test_mkdtemp();

		copy_dir(template, dir);
		test_wal_options(&o, dir);
		o.io = &faultio;
		faultio_start(NULL);
		w = test_wal_open(&o);
		assert_int_equal(wal_compact(w, 0.9, NULL), 0);
		total = faultio_mutations();
		wal_close(w);
		test_rmdir(dir);
		g_free(dir);
	}
	assert_true(total > 10);
	long step = MAX(1, total / 60);

	for (long crash = 0; crash <= total; crash += step) {
		for (int power_loss = 0; power_loss < 2; power_loss++) {
			char *dir = test_mkdtemp();
			struct faultio_plan plan = {.crash_after = crash};

			copy_dir(template, dir);
			test_wal_options(&o, dir);
			o.io = &faultio;
			faultio_start(&plan);
			if (wal_open(&o, &w) == 0) { /* opening syncs too: it may be what stops */
				wal_compact(w, 0.9, NULL);
				faultio_crash_now();
				wal_close(w);
			}
			if (power_loss)
				faultio_power_loss(rng);
			test_wal_options(&o, dir);
			w = test_wal_open(&o);
			expect_model(w, &m, 120);
			wal_close(w);
			remove_checkpoint(dir);
			w = test_wal_open(&o);
			expect_model(w, &m, 120);
			wal_close(w);
			test_rmdir(dir);
			g_free(dir);
		}
	}
	g_rand_free(rng);
	model_free(&m);
	test_rmdir(template);
	g_free(template);
}

/* On a full disk (a 3 MiB tmpfs) puts fail with ENOSPC, and every
 * acknowledged shard stays readable, also after reopening. */
static void test_disk_full(void **state)
{
	char *dir = test_mkdtemp();
	struct model m = model_new();
	struct wal_options o;
	struct wal *w;
	int rc = 0;
	uint64_t id;

	(void)state;
	if (geteuid() != 0 || mount("tmpfs", dir, "tmpfs", 0, "size=3m") != 0) {
		test_rmdir(dir);
		g_free(dir);
		skip();
	}
	test_wal_options(&o, dir);
	w = test_wal_open(&o);
	for (id = 0; id < 1000 && rc == 0; id++) {
		rc = put_version(w, id, 1, 100000);
		if (rc == 0)
			model_set(&m, id, 1, 100000);
	}
	assert_int_equal(rc, -ENOSPC);
	assert_true(id > 5);
	expect_model(w, &m, id);
	/* The store stays usable: deleting frees nothing yet, but small
	 * records may still fit, and reads go on. */
	wal_close(w);
	w = test_wal_open(&o);
	expect_model(w, &m, id);
	wal_close(w);
	umount2(dir, MNT_DETACH);
	model_free(&m);
	test_rmdir(dir);
	g_free(dir);
}

/* Writes failing with ENOSPC fail only their own puts; the store truncates
 * back and later puts succeed. */
static void test_injected_enospc_is_not_sticky(void **state)
{
	struct test_wal *f = *state;
	struct model m = model_new();
	struct faultio_plan plan = {.fail_op = FIO_PWRITEV, .fail_errno = ENOSPC, .fail_from = 5,
				    .fail_count = 3, .crash_after = -1};
	struct wal *w;
	int failures = 0;

	f->o.io = &faultio;
	faultio_start(&plan);
	w = test_wal_open(&f->o);
	for (uint64_t id = 0; id < 20; id++) {
		int rc = put_version(w, id, 1, 50000);

		if (rc == 0)
			model_set(&m, id, 1, 50000);
		else
			assert_int_equal(rc, -ENOSPC), failures++;
	}
	assert_int_equal(failures, 3);
	expect_model(w, &m, 20);
	wal_close(w);
	test_wal_options(&f->o, f->dir);
	remove_checkpoint(f->dir);
	w = test_wal_open(&f->o);
	expect_model(w, &m, 20);
	wal_close(w);
	model_free(&m);
}

/* A failed fsync is never retried: the put fails with EIO, the store turns
 * read-only (EROFS) but still serves reads, and reopening recovers. */
static void test_failed_fsync_makes_read_only(void **state)
{
	struct test_wal *f = *state;
	struct model m = model_new();
	struct faultio_plan plan = {.fail_op = FIO_FDATASYNC, .fail_errno = EIO, .fail_from = 3,
				    .fail_count = -1, .crash_after = -1};
	struct wal_stats st;
	struct wal *w;
	int rc = 0;
	uint64_t id;

	f->o.io = &faultio;
	faultio_start(&plan);
	w = test_wal_open(&f->o);
	for (id = 0; rc == 0; id++) {
		rc = put_version(w, id, 1, 1000);
		if (rc == 0)
			model_set(&m, id, 1, 1000);
	}
	assert_int_equal(rc, -EIO);
	assert_int_equal(put_version(w, 500, 1, 10), -EROFS);
	wal_get_stats(w, &st);
	assert_int_equal(st.sticky_error, -EIO);
	expect_model(w, &m, id - 2);
	wal_close(w);
	test_wal_options(&f->o, f->dir);
	w = test_wal_open(&f->o);
	expect_model(w, &m, id - 2);
	put_ok(w, &m, id, 1, 10);
	wal_close(w);
	model_free(&m);
}

struct gc_thread {
	struct wal *w;
	uint64_t first;
	int rc;
};

static gpointer gc_thread_main(gpointer p)
{
	struct gc_thread *t = p;

	for (uint64_t id = t->first; id < t->first + 50 && t->rc == 0; id++)
		t->rc = put_version(t->w, id, 1, 4096);
	return NULL;
}

/* 32 threads that each wait for every put share fsyncs (group commit). */
static void test_group_commit_shares_fsyncs(void **state)
{
	struct test_wal *f = *state;
	struct gc_thread t[32];
	GThread *th[32];
	struct wal_stats st;
	struct wal *w;

	w = test_wal_open(&f->o);
	for (int i = 0; i < 32; i++) {
		t[i] = (struct gc_thread){w, (uint64_t)i * 100, 0};
		th[i] = g_thread_new("gc", gc_thread_main, &t[i]);
	}
	for (int i = 0; i < 32; i++) {
		g_thread_join(th[i]);
		assert_int_equal(t[i].rc, 0);
	}
	wal_get_stats(w, &st);
	assert_int_equal(st.appends, 32 * 50);
	assert_true(st.syncs * 2 <= st.appends);
	for (int i = 0; i < 32; i++)
		for (uint64_t id = (uint64_t)i * 100; id < (uint64_t)i * 100 + 50; id++)
			expect_version(w, id, 1, 4096);
	wal_close(w);
}

struct listed {
	uint64_t bytes;
	int64_t oldest, newest; /* written_s */
};

static int count_listed(void *arg, const struct wal_key *key, uint32_t length, int64_t written_s)
{
	struct listed *l = arg;

	(void)key;
	l->bytes += length;
	l->oldest = MIN(l->oldest, written_s);
	l->newest = MAX(l->newest, written_s);
	return 0;
}

/* wal_list walks exactly the live shards, with when they were written. */
static void test_list(void **state)
{
	struct test_wal *f = *state;
	struct model m = model_new();
	struct listed l = {0, INT64_MAX, 0};
	int64_t before = (int64_t)time(NULL);
	struct wal *w;

	w = test_wal_open(&f->o);
	for (uint64_t id = 0; id < 10; id++)
		put_ok(w, &m, id, 1, 100 + (uint32_t)id);
	delete_ok(w, &m, 3);
	assert_int_equal(wal_list(w, count_listed, &l), 0);
	assert_int_equal(l.bytes, 10 * 100 + 45 - 103);
	/* the segment's mtime: not before the puts, not after now */
	assert_true(l.oldest >= before - 1 && l.newest <= (int64_t)time(NULL));
	wal_close(w);
	model_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		test_wal_unit_test(test_put_read_round_trip),
		cmocka_unit_test(test_range_reads),
		test_wal_unit_test(test_missing_key),
		cmocka_unit_test(test_shard_index_is_part_of_key),
		test_wal_unit_test(test_overwrite_newest_wins),
		test_wal_unit_test(test_delete),
		test_wal_unit_test(test_limits),
		test_wal_unit_test(test_torn_tail_truncated),
		test_wal_unit_test(test_corrupt_payload_reported),
		test_wal_unit_test(test_corrupt_header_mid_segment),
		test_wal_unit_test(test_paced_scrub_keeps_its_rate_and_stops),
		test_wal_unit_test(test_foreign_segments_set_aside),
		test_wal_unit_test(test_checkpoint_makes_restart_fast),
		test_wal_unit_test(test_compaction_reclaims_space),
		test_wal_unit_test(test_compaction_keeps_needed_tombstones),
		test_wal_unit_test(test_compaction_concurrent_with_io),
		test_wal_unit_test(test_compaction_skips_unapplied_segments),
		test_wal_unit_test(test_lowered_max_payload_keeps_data),
		test_wal_unit_test(test_compaction_goes_past_a_bad_segment),
		test_wal_unit_test(test_restart_keeps_tombstone_accounting),
		cmocka_unit_test(test_compaction_crash_at_every_point),
		cmocka_unit_test(test_disk_full),
		test_wal_unit_test(test_injected_enospc_is_not_sticky),
		test_wal_unit_test(test_failed_fsync_makes_read_only),
		test_wal_unit_test(test_group_commit_shares_fsyncs),
		test_wal_unit_test(test_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
