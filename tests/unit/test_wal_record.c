/*
 * test_wal_record.c - record and segment header codecs, and the scanner.
 */
#include "wal/wal_record.h"
#include "wal_fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* CRC32C is the standard Castagnoli CRC. */
static void test_crc32c_check_value(void **state)
{
	(void)state;
	assert_int_equal(wal_crc32c("123456789", 9), 0xe3069283u);
	assert_int_equal(wal_crc32c("", 0), 0);
}

static uint8_t *encode(uint32_t len, uint8_t type, uint64_t seq, uint8_t **payload, size_t *total)
{
	struct wal_rec r = {.type = type, .key = test_key(7), .seq = seq, .payload_len = len};
	size_t head_len = wal_rec_head_len(len);
	uint8_t *buf = g_malloc0(head_len + len + 1);

	*payload = buf + head_len;
	test_payload(*payload, len, 7, seq);
	wal_rec_encode_head(&r, *payload, buf);
	*total = head_len + len;
	return buf;
}

/* A record decodes to what was encoded, for lengths around block edges. */
static void test_record_round_trip(void **state)
{
	uint32_t lens[] = {0, 1, 16, 65535, 65536, 65537, 3 * 65536, (1u << 20) + 3};

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(lens); i++) {
		uint8_t *payload;
		size_t total, head_len;
		uint8_t *buf = encode(lens[i], WAL_REC_PUT, 42 + i, &payload, &total);
		struct wal_rec r;
		struct wal_key k = test_key(7);

		assert_int_equal(wal_rec_decode_head(buf, total, 1u << 21, &r, &head_len), 0);
		assert_int_equal(head_len, wal_rec_head_len(lens[i]));
		assert_int_equal(r.type, WAL_REC_PUT);
		assert_int_equal(r.seq, 42 + i);
		assert_int_equal(r.payload_len, lens[i]);
		assert_memory_equal(&r.key.object_id, k.object_id, 16);
		assert_int_equal(r.key.part, k.part);
		assert_int_equal(r.key.shard, k.shard);
		for (uint32_t b = 0; b < wal_rec_nblocks(lens[i]); b++) {
			size_t off = (size_t)b * WAL_BLOCK_SIZE;

			assert_int_equal(wal_rec_check_block(buf, b, payload + off,
							     MIN((size_t)WAL_BLOCK_SIZE, lens[i] - off)), 0);
		}
		g_free(buf);
	}
}

/* Every single-byte change of a header or table is detected. */
static void test_record_header_corruption_detected(void **state)
{
	uint8_t *payload;
	size_t total, head_len;
	uint8_t *buf = encode(100000, WAL_REC_PUT, 9, &payload, &total);
	size_t want = wal_rec_head_len(100000);

	(void)state;
	for (size_t i = 0; i < want; i++) {
		struct wal_rec r;

		buf[i] ^= 0x40;
		assert_int_equal(wal_rec_decode_head(buf, total, 1u << 20, &r, &head_len), WAL_ECORRUPT);
		buf[i] ^= 0x40;
	}
	g_free(buf);
}

/* A flipped payload bit fails exactly the block that holds it. */
static void test_record_payload_corruption_detected(void **state)
{
	uint8_t *payload;
	size_t total;
	uint8_t *buf = encode(3 * 65536, WAL_REC_PUT, 9, &payload, &total);

	(void)state;
	payload[65536 + 5] ^= 1;
	assert_int_equal(wal_rec_check_block(buf, 0, payload, 65536), 0);
	assert_int_equal(wal_rec_check_block(buf, 1, payload + 65536, 65536), WAL_ECORRUPT);
	assert_int_equal(wal_rec_check_block(buf, 2, payload + 131072, 65536), 0);
	g_free(buf);
}

/* Short input asks for more bytes; over-long or inconsistent records fail. */
static void test_record_decode_limits(void **state)
{
	uint8_t *payload;
	size_t total, head_len;
	uint8_t *buf = encode(200000, WAL_REC_PUT, 1, &payload, &total);
	struct wal_rec r;

	(void)state;
	assert_int_equal(wal_rec_decode_head(buf, 47, 1u << 20, &r, &head_len), -ENODATA);
	assert_int_equal(head_len, WAL_REC_HEADER_SIZE);
	assert_int_equal(wal_rec_decode_head(buf, 50, 1u << 20, &r, &head_len), -ENODATA);
	assert_int_equal(head_len, wal_rec_head_len(200000));
	assert_int_equal(wal_rec_decode_head(buf, total, 199999, &r, &head_len), WAL_ECORRUPT);
	g_free(buf);

	/* A tombstone with a payload length is malformed even with a good CRC. */
	buf = encode(0, WAL_REC_DELETE, 3, &payload, &total);
	assert_int_equal(wal_rec_decode_head(buf, total, 100, &r, &head_len), 0);
	assert_int_equal(r.type, WAL_REC_DELETE);
	wal_put_le32(buf + 40, 10);
	assert_int_equal(wal_rec_decode_head(buf, total, 100, &r, &head_len), WAL_ECORRUPT);
	g_free(buf);
}

/* Stamping a sequence number keeps the record valid. */
static void test_record_set_seq(void **state)
{
	uint8_t *payload;
	size_t total, head_len;
	uint8_t *buf = encode(70000, WAL_REC_PUT, 0, &payload, &total);
	struct wal_rec r;

	(void)state;
	wal_rec_set_seq(buf, 123456789012ull);
	assert_int_equal(wal_rec_decode_head(buf, total, 1u << 20, &r, &head_len), 0);
	assert_int_equal(r.seq, 123456789012ull);
	g_free(buf);
}

/* Segment headers round-trip and foreign ones are refused. */
static void test_segment_header(void **state)
{
	uint8_t h[WAL_SEG_HEADER_SIZE];
	uint64_t id = 0;

	(void)state;
	wal_seg_header_encode(0x1234abcdull, h);
	assert_int_equal(wal_seg_header_decode(h, sizeof(h), &id), 0);
	assert_int_equal(id, 0x1234abcdull);
	assert_int_equal(wal_seg_header_decode(h, 31, &id), -ENODATA);
	for (size_t i = 0; i < sizeof(h); i++) {
		h[i] ^= 0x01;
		assert_int_equal(wal_seg_header_decode(h, sizeof(h), &id), WAL_EBADSEG);
		h[i] ^= 0x01;
	}
}

/* ---- the scanner, over an in-memory file ---- */

static GByteArray *mem_file;

static ssize_t mem_pread(int fd, void *buf, size_t len, off_t off)
{
	(void)fd;
	if ((size_t)off >= mem_file->len)
		return 0;
	len = MIN(len, mem_file->len - (size_t)off);
	memcpy(buf, mem_file->data + off, len);
	return (ssize_t)len;
}

static const struct wal_io mem_io = {.pread = mem_pread};

struct seen {
	GArray *offsets;
	GArray *bad;
	int corrupt;
};

static int seen_record(void *arg, const struct wal_scan_rec *r)
{
	struct seen *s = arg;

	g_array_append_val(s->offsets, r->offset);
	s->corrupt += !r->payload_ok;
	return 0;
}

static int seen_bad(void *arg, uint64_t offset, uint64_t len)
{
	struct seen *s = arg;

	(void)len;
	g_array_append_val(s->bad, offset);
	return 0;
}

static void append_record(uint32_t len, uint64_t seq)
{
	uint8_t *payload;
	size_t total;
	uint8_t *buf = encode(len, WAL_REC_PUT, seq, &payload, &total);

	g_byte_array_append(mem_file, buf, (guint)total);
	g_free(buf);
}

static int scan(struct seen *s, uint64_t *good_end)
{
	struct wal_scan sc = {
		.io = &mem_io, .start = 0, .end = mem_file->len, .max_payload = 1u << 20,
		.verify_payload = true, .on_record = seen_record, .on_bad = seen_bad, .arg = s,
	};

	s->offsets = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	s->bad = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	s->corrupt = 0;
	return wal_scan_run(&sc, good_end);
}

static void seen_free(struct seen *s)
{
	g_array_free(s->offsets, TRUE);
	g_array_free(s->bad, TRUE);
}

/* Garbage between records is reported and skipped; a torn record at the
 * end is reported bad; good_end stops at the first damage. */
static void test_scan_resyncs_after_garbage(void **state)
{
	struct seen s;
	uint64_t good_end, second, garbage_at, torn_at;

	(void)state;
	mem_file = g_byte_array_new();
	append_record(1000, 1);
	second = mem_file->len;
	append_record(70000, 2);
	garbage_at = mem_file->len;
	for (int i = 0; i < 5000; i++) {
		uint8_t junk = (uint8_t)(i * 7 + 3);

		g_byte_array_append(mem_file, &junk, 1);
	}
	g_byte_array_append(mem_file, (const guint8 *)"SFWR", 4); /* a false magic */
	uint64_t third = mem_file->len;

	append_record(5, 3);
	torn_at = mem_file->len;
	append_record(200000, 4);
	g_byte_array_set_size(mem_file, (guint)(torn_at + 100000)); /* torn */

	assert_int_equal(scan(&s, &good_end), 0);
	assert_int_equal(s.offsets->len, 3);
	assert_int_equal(g_array_index(s.offsets, uint64_t, 0), 0);
	assert_int_equal(g_array_index(s.offsets, uint64_t, 1), second);
	assert_int_equal(g_array_index(s.offsets, uint64_t, 2), third);
	assert_int_equal(s.bad->len, 2);
	assert_int_equal(g_array_index(s.bad, uint64_t, 0), garbage_at);
	assert_int_equal(g_array_index(s.bad, uint64_t, 1), torn_at);
	assert_int_equal(good_end, garbage_at);
	assert_int_equal(s.corrupt, 0);
	seen_free(&s);
	g_byte_array_unref(mem_file);
}

/* A record whose payload fails its CRC is still walked over, flagged. */
static void test_scan_flags_bad_payload(void **state)
{
	struct seen s;
	uint64_t good_end, second;

	(void)state;
	mem_file = g_byte_array_new();
	append_record(300, 1);
	second = mem_file->len;
	append_record(100000, 2);
	append_record(10, 3);
	mem_file->data[second + wal_rec_head_len(100000) + 77777] ^= 0x80;
	assert_int_equal(scan(&s, &good_end), 0);
	assert_int_equal(s.offsets->len, 3);
	assert_int_equal(s.corrupt, 1);
	assert_int_equal(s.bad->len, 0);
	assert_int_equal(good_end, second);
	seen_free(&s);
	g_byte_array_unref(mem_file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_check_value),
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_record_header_corruption_detected),
		cmocka_unit_test(test_record_payload_corruption_detected),
		cmocka_unit_test(test_record_decode_limits),
		cmocka_unit_test(test_record_set_seq),
		cmocka_unit_test(test_segment_header),
		cmocka_unit_test(test_scan_resyncs_after_garbage),
		cmocka_unit_test(test_scan_flags_bad_payload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
