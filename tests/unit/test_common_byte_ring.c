/*
 * test_common_byte_ring.c - the ring of a stream's bytes: bytes by
 * absolute offset across the wrap, what a late reader skips (before the
 * oldest byte, inside gaps, to a chunk start), the room a lossless put
 * has, and what a home node does with it (restart, resize, copy out).
 */
#include "common/byte_ring.h"

#include <errno.h>
#include <glib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

/* Byte p of the stream. */
static uint8_t byte_at(uint64_t p)
{
	return (uint8_t)(p * 7 + (p >> 8));
}

static void put_range(struct common_byte_ring *r, uint64_t first, size_t n)
{
	uint8_t *b = g_malloc(n);

	for (size_t i = 0; i < n; i++)
		b[i] = byte_at(first + i);
	assert_int_equal(common_byte_ring_put(r, first, b, n), 0);
	g_free(b);
}

/* Reads from *pos as a reader would: skip, then peek; checks the bytes. */
static size_t read_checked(struct common_byte_ring *r, uint64_t *pos, size_t max, uint64_t *lost)
{
	struct iovec iov[2];
	int n;

	*lost += common_byte_ring_skip_lost(r, pos);
	size_t len = common_byte_ring_peek(r, *pos, max, iov, &n);
	size_t seen = 0;
	for (int i = 0; i < n; i++)
		for (size_t j = 0; j < iov[i].iov_len; j++, seen++)
			assert_int_equal(((uint8_t *)iov[i].iov_base)[j], byte_at(*pos + seen));
	assert_int_equal(seen, len);
	*pos += len;
	return len;
}

/* A reader that keeps up reads every byte, in order, across the wrap. */
static void test_bytes_across_the_wrap(void **state)
{
	struct common_byte_ring r;
	uint64_t pos = 1000, lost = 0;

	(void)state;
	common_byte_ring_init(&r, 4096, 1000);
	assert_int_equal(read_checked(&r, &pos, 100, &lost), 0); /* nothing yet */
	for (uint64_t at = 1000; at < 1000 + 3 * 4096; at += 1500) {
		put_range(&r, at, 1500);
		while (read_checked(&r, &pos, 700, &lost))
			;
		assert_int_equal(pos, at + 1500);
	}
	assert_int_equal(lost, 0);
	assert_int_equal(r.head - r.oldest, 4096);
	common_byte_ring_fini(&r);
}

/* Without chunk starts, a reader behind the ring resumes at the oldest byte. */
static void test_late_reader_skips_to_the_oldest_byte(void **state)
{
	struct common_byte_ring r;
	uint64_t pos = 0, lost = 0;

	(void)state;
	common_byte_ring_init(&r, 1024, 0);
	for (int i = 0; i < 10; i++)
		put_range(&r, (uint64_t)i * 512, 512);
	assert_int_equal(r.oldest, 5120 - 1024);
	assert_int_equal(read_checked(&r, &pos, 100000, &lost), 1024);
	assert_int_equal(lost, 5120 - 1024);
	assert_int_equal(pos, 5120);
	common_byte_ring_fini(&r);
}

/* Reads stop at a gap and readers step over it, counting it as lost. */
static void test_gaps_are_stepped_over(void **state)
{
	struct common_byte_ring r;
	uint64_t pos = 0, lost = 0;

	(void)state;
	common_byte_ring_init(&r, 1 << 20, 0);
	put_range(&r, 0, 100);
	put_range(&r, 300, 100); /* [100, 300) lost by the subscription */
	put_range(&r, 400, 50);
	assert_int_equal(read_checked(&r, &pos, 1000, &lost), 100); /* stops at the gap */
	assert_int_equal(read_checked(&r, &pos, 1000, &lost), 150);
	assert_int_equal(lost, 200);
	assert_int_equal(pos, 450);
	/* A reader inside the gap only loses the rest of it. */
	uint64_t mid = 250, lost2 = 0;
	assert_int_equal(read_checked(&r, &mid, 1000, &lost2), 150);
	assert_int_equal(lost2, 50);
	common_byte_ring_fini(&r);
}

/* A gap is forgotten once the oldest byte passes it. */
static void test_gaps_go_with_the_oldest_byte(void **state)
{
	struct common_byte_ring r;

	(void)state;
	common_byte_ring_init(&r, 1000, 0);
	put_range(&r, 500, 100);
	assert_int_equal(r.ngaps, 1);
	put_range(&r, 600, 1000); /* oldest is now past the gap */
	assert_int_equal(r.ngaps, 0);
	assert_int_equal(r.oldest, 600);
	common_byte_ring_fini(&r);
}

/* The room left is what the slowest reader has not read, at most cap. */
static void test_room_for_a_lossless_fetch(void **state)
{
	struct common_byte_ring r;

	(void)state;
	common_byte_ring_init(&r, 1000, 0);
	assert_int_equal(common_byte_ring_room(&r, 0), 1000);
	put_range(&r, 0, 600);
	assert_int_equal(common_byte_ring_room(&r, 0), 400);
	assert_int_equal(common_byte_ring_room(&r, 600), 1000);
	assert_int_equal(common_byte_ring_room(&r, 5000), 1000); /* a reader ahead (live start) */
	put_range(&r, 600, 400);
	assert_int_equal(common_byte_ring_room(&r, 0), 0);
	common_byte_ring_fini(&r);
}

/* A put before the head or larger than the ring is refused, changing nothing. */
static void test_bad_puts_change_nothing(void **state)
{
	struct common_byte_ring r;
	uint8_t b[2000] = {0};

	(void)state;
	common_byte_ring_init(&r, 1000, 100);
	assert_int_equal(common_byte_ring_put(&r, 50, b, 10), -EINVAL);	/* before the head */
	assert_int_equal(common_byte_ring_put(&r, 100, b, 2000), -EINVAL); /* larger than the ring */
	assert_int_equal(r.head, 100);
	assert_int_equal(r.ngaps, 0);
	common_byte_ring_fini(&r);
}

/* With chunk starts kept, a reader behind the ring resumes at the first
 * chunk still whole, and the bytes it skipped count as lost. */
static void test_late_reader_resumes_at_a_chunk_start(void **state)
{
	struct common_byte_ring r;
	uint64_t pos = 0, lost = 0;

	(void)state;
	common_byte_ring_init(&r, 1000, 0);
	common_byte_ring_keep_starts(&r, 16);
	for (int i = 0; i < 5; i++)
		put_range(&r, (uint64_t)i * 300, 300); /* chunks at 0, 300, ..., 1200 */
	assert_int_equal(r.oldest, 500);
	assert_int_equal(common_byte_ring_resume_point(&r), 600);
	assert_int_equal(read_checked(&r, &pos, 100000, &lost), 900);
	assert_int_equal(lost, 600);
	assert_int_equal(pos, 1500);
	common_byte_ring_fini(&r);
}

/* A chunk as large as the ring keeps its own start. */
static void test_a_whole_ring_chunk_keeps_its_start(void **state)
{
	struct common_byte_ring r;

	(void)state;
	common_byte_ring_init(&r, 1000, 0);
	common_byte_ring_keep_starts(&r, 16);
	put_range(&r, 0, 400);
	put_range(&r, 400, 1000);
	assert_int_equal(r.oldest, 400);
	assert_int_equal(common_byte_ring_resume_point(&r), 400);
	common_byte_ring_fini(&r);
}

/* When more chunks are held than starts are kept, the oldest starts are
 * forgotten and a late reader resumes at the oldest start remembered. */
static void test_starts_beyond_the_limit_are_forgotten(void **state)
{
	struct common_byte_ring r;
	uint64_t pos = 0, lost = 0;

	(void)state;
	common_byte_ring_init(&r, 1 << 20, 0);
	common_byte_ring_keep_starts(&r, 100);
	for (int i = 0; i < 300; i++)
		put_range(&r, (uint64_t)i * 10, 10);
	assert_int_equal(r.starts_len, 100);
	assert_int_equal(r.starts_cap, 100);
	assert_int_equal(r.oldest, 0); /* every byte still held */
	assert_int_equal(common_byte_ring_resume_point(&r), 2000);
	/* The reader is not behind the ring: it reads from where it is. */
	assert_int_equal(read_checked(&r, &pos, 100000, &lost), 3000);
	assert_int_equal(lost, 0);
	common_byte_ring_fini(&r);
}

/* Without chunk starts kept, the resume point is the oldest byte. */
static void test_resume_point_without_starts_is_the_oldest_byte(void **state)
{
	struct common_byte_ring r;

	(void)state;
	common_byte_ring_init(&r, 100, 0);
	put_range(&r, 0, 60);
	put_range(&r, 60, 60);
	assert_int_equal(common_byte_ring_resume_point(&r), 20);
	assert_int_equal(r.starts_len, 0);
	common_byte_ring_fini(&r);
}

/* A restart forgets bytes, gaps and starts and continues at the new offset. */
static void test_restart_continues_at_the_new_offset(void **state)
{
	struct common_byte_ring r;
	uint8_t b[10] = {0};
	uint64_t pos = 0, lost = 0;

	(void)state;
	common_byte_ring_init(&r, 1000, 0);
	common_byte_ring_keep_starts(&r, 16);
	put_range(&r, 0, 100);
	put_range(&r, 200, 100);
	assert_int_equal(common_byte_ring_restart(&r, 100), -EINVAL); /* before the head */
	assert_int_equal(common_byte_ring_restart(&r, 5000), 0);
	assert_int_equal(r.head, 5000);
	assert_int_equal(r.oldest, 5000);
	assert_int_equal(r.ngaps, 0);
	assert_int_equal(common_byte_ring_resume_point(&r), 5000);
	assert_int_equal(common_byte_ring_put(&r, 4000, b, 10), -EINVAL);
	put_range(&r, 5000, 100);
	assert_int_equal(read_checked(&r, &pos, 1000, &lost), 100);
	assert_int_equal(lost, 5000);
	common_byte_ring_fini(&r);
}

/* Only a ring that holds no byte takes a new capacity. */
static void test_resize_only_when_empty(void **state)
{
	struct common_byte_ring r;
	uint64_t pos = 0, lost = 0;

	(void)state;
	common_byte_ring_init(&r, 1000, 0);
	assert_int_equal(common_byte_ring_resize(&r, 2000), 0);
	assert_int_equal(r.cap, 2000);
	put_range(&r, 0, 1500);
	assert_int_equal(common_byte_ring_resize(&r, 500), -EBUSY);
	assert_int_equal(common_byte_ring_resize(&r, 2000), 0); /* the same: nothing to do */
	assert_int_equal(read_checked(&r, &pos, 100000, &lost), 1500);
	assert_int_equal(common_byte_ring_restart(&r, 1500), 0);
	assert_int_equal(common_byte_ring_resize(&r, 500), 0);
	assert_null(r.buf);
	put_range(&r, 1500, 500);
	assert_int_equal(read_checked(&r, &pos, 100000, &lost), 500);
	assert_int_equal(lost, 0);
	common_byte_ring_fini(&r);
}

/* Copying out across the wrap gives the stream's bytes, up to the head. */
static void test_copy_out_across_the_wrap(void **state)
{
	struct common_byte_ring r;
	uint8_t out[1000];

	(void)state;
	common_byte_ring_init(&r, 1000, 0);
	put_range(&r, 0, 700);
	put_range(&r, 700, 700);
	assert_int_equal(common_byte_ring_copy_out(&r, 100, out, sizeof(out)), 0); /* lost */
	assert_int_equal(common_byte_ring_copy_out(&r, 500, out, sizeof(out)), 900);
	for (size_t i = 0; i < 900; i++)
		assert_int_equal(out[i], byte_at(500 + i));
	assert_int_equal(common_byte_ring_copy_out(&r, 1400, out, sizeof(out)), 0); /* the head */
	common_byte_ring_fini(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bytes_across_the_wrap),
		cmocka_unit_test(test_late_reader_skips_to_the_oldest_byte),
		cmocka_unit_test(test_gaps_are_stepped_over),
		cmocka_unit_test(test_gaps_go_with_the_oldest_byte),
		cmocka_unit_test(test_room_for_a_lossless_fetch),
		cmocka_unit_test(test_bad_puts_change_nothing),
		cmocka_unit_test(test_late_reader_resumes_at_a_chunk_start),
		cmocka_unit_test(test_a_whole_ring_chunk_keeps_its_start),
		cmocka_unit_test(test_starts_beyond_the_limit_are_forgotten),
		cmocka_unit_test(test_resume_point_without_starts_is_the_oldest_byte),
		cmocka_unit_test(test_restart_continues_at_the_new_offset),
		cmocka_unit_test(test_resize_only_when_empty),
		cmocka_unit_test(test_copy_out_across_the_wrap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
