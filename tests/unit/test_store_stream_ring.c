/*
 * test_store_stream_ring.c - the local ring of a stream: bytes by absolute
 * offset across the wrap, what a late reader skips (before the oldest
 * byte, inside gaps), and the room a lossless fetch has.
 */
#include "store/stream_ring.h"

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

static void put_range(struct stream_ring *r, uint64_t first, size_t n)
{
	uint8_t *b = g_malloc(n);

	for (size_t i = 0; i < n; i++)
		b[i] = byte_at(first + i);
	assert_int_equal(stream_ring_put(r, first, b, n), 0);
	g_free(b);
}

/* Reads from *pos as a reader would: skip, then peek; checks the bytes. */
static size_t read_checked(struct stream_ring *r, uint64_t *pos, size_t max, uint64_t *lost)
{
	struct iovec iov[2];
	int n;

	*lost += stream_ring_skip_lost(r, pos);
	size_t len = stream_ring_peek(r, *pos, max, iov, &n);
	size_t seen = 0;
	for (int i = 0; i < n; i++)
		for (size_t j = 0; j < iov[i].iov_len; j++, seen++)
			assert_int_equal(((uint8_t *)iov[i].iov_base)[j], byte_at(*pos + seen));
	assert_int_equal(seen, len);
	*pos += len;
	return len;
}

static void test_bytes_across_the_wrap(void **state)
{
	struct stream_ring r;
	uint64_t pos = 1000, lost = 0;

	(void)state;
	stream_ring_init(&r, 4096, 1000);
	assert_int_equal(read_checked(&r, &pos, 100, &lost), 0); /* nothing yet */
	for (uint64_t at = 1000; at < 1000 + 3 * 4096; at += 1500) {
		put_range(&r, at, 1500);
		while (read_checked(&r, &pos, 700, &lost))
			;
		assert_int_equal(pos, at + 1500);
	}
	assert_int_equal(lost, 0);
	assert_int_equal(r.head - r.oldest, 4096);
	stream_ring_fini(&r);
}

static void test_late_reader_skips_to_the_oldest_byte(void **state)
{
	struct stream_ring r;
	uint64_t pos = 0, lost = 0;

	(void)state;
	stream_ring_init(&r, 1024, 0);
	for (int i = 0; i < 10; i++)
		put_range(&r, (uint64_t)i * 512, 512);
	assert_int_equal(r.oldest, 5120 - 1024);
	assert_int_equal(read_checked(&r, &pos, 100000, &lost), 1024);
	assert_int_equal(lost, 5120 - 1024);
	assert_int_equal(pos, 5120);
	stream_ring_fini(&r);
}

static void test_gaps_are_stepped_over(void **state)
{
	struct stream_ring r;
	uint64_t pos = 0, lost = 0;

	(void)state;
	stream_ring_init(&r, 1 << 20, 0);
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
	stream_ring_fini(&r);
}

static void test_gaps_go_with_the_oldest_byte(void **state)
{
	struct stream_ring r;

	(void)state;
	stream_ring_init(&r, 1000, 0);
	put_range(&r, 500, 100);
	assert_int_equal(r.ngaps, 1);
	put_range(&r, 600, 1000); /* oldest is now past the gap */
	assert_int_equal(r.ngaps, 0);
	assert_int_equal(r.oldest, 600);
	stream_ring_fini(&r);
}

static void test_room_for_a_lossless_fetch(void **state)
{
	struct stream_ring r;

	(void)state;
	stream_ring_init(&r, 1000, 0);
	assert_int_equal(stream_ring_room(&r, 0), 1000);
	put_range(&r, 0, 600);
	assert_int_equal(stream_ring_room(&r, 0), 400);
	assert_int_equal(stream_ring_room(&r, 600), 1000);
	assert_int_equal(stream_ring_room(&r, 5000), 1000); /* a reader ahead (live start) */
	put_range(&r, 600, 400);
	assert_int_equal(stream_ring_room(&r, 0), 0);
	stream_ring_fini(&r);
}

static void test_bad_puts_change_nothing(void **state)
{
	struct stream_ring r;
	uint8_t b[2000] = {0};

	(void)state;
	stream_ring_init(&r, 1000, 100);
	assert_int_equal(stream_ring_put(&r, 50, b, 10), -EINVAL);	/* before the head */
	assert_int_equal(stream_ring_put(&r, 100, b, 2000), -EINVAL); /* larger than the ring */
	assert_int_equal(r.head, 100);
	assert_int_equal(r.ngaps, 0);
	stream_ring_fini(&r);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
