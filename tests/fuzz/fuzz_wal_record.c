/*
 * fuzz_wal_record.c - libFuzzer target for every decoder of on-disk bytes
 * in wal/: record headers, segment headers, the segment scanner (over the
 * input as a whole segment) and the checkpoint parser. None may crash,
 * read out of bounds or loop, whatever the bytes.
 */
#include "wal/wal_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *input;
static size_t input_len;

static ssize_t input_pread(int fd, void *buf, size_t len, off_t off)
{
	(void)fd;
	if ((size_t)off >= input_len)
		return 0;
	len = len < input_len - (size_t)off ? len : input_len - (size_t)off;
	memcpy(buf, input + off, len);
	return (ssize_t)len;
}

static const struct wal_io input_io = {.pread = input_pread};

static int on_record(void *arg, const struct wal_scan_rec *r)
{
	/* The scanner promises records inside the input. */
	if (r->offset + r->size > input_len || r->size != wal_rec_size(r->rec.payload_len))
		__builtin_trap();
	(*(size_t *)arg)++;
	return 0;
}

static int on_bad(void *arg, uint64_t offset, uint64_t len)
{
	(void)arg;
	if (offset + len > input_len)
		__builtin_trap();
	return 0;
}

static int on_entry(void *arg, const struct wal_entry *e)
{
	(void)e;
	(*(size_t *)arg)++;
	return 0;
}

static void fuzz_record(const uint8_t *data, size_t size)
{
	struct wal_rec r;
	size_t head_len;

	if (wal_rec_decode_head(data, size, 1u << 20, &r, &head_len) != 0)
		return;
	const uint8_t *payload = data + head_len;
	size_t avail = size - head_len;

	for (uint32_t b = 0; b < wal_rec_nblocks(r.payload_len); b++) {
		size_t off = (size_t)b * WAL_BLOCK_SIZE;
		size_t len = r.payload_len - off < WAL_BLOCK_SIZE ? r.payload_len - off : WAL_BLOCK_SIZE;

		if (off + len > avail)
			break;
		wal_rec_check_block(data, b, payload + off, len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wal_ckpt_info info;
	size_t count = 0;
	uint64_t id, good_end;

	fuzz_record(data, size);
	wal_seg_header_decode(data, size, &id);
	wal_checkpoint_parse(data, size, 1u << 20, &info, on_entry, &count);

	input = data;
	input_len = size;
	struct wal_scan s = {
		.io = &input_io, .start = size >= WAL_SEG_HEADER_SIZE ? WAL_SEG_HEADER_SIZE : 0,
		.end = size, .max_payload = 1u << 20, .verify_payload = true,
		.on_record = on_record, .on_bad = on_bad, .arg = &count,
	};
	wal_scan_run(&s, &good_end);
	if (good_end > size)
		__builtin_trap();
	return 0;
}
