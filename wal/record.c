/*
 * record.c - record and segment header codecs, and the segment scanner.
 *
 * The scanner is the one place that walks segment bytes: recovery, compaction
 * and scrub all use it, so a torn or corrupt region is judged the same way
 * everywhere. It reads through struct wal_io, one header, then the CRC table,
 * then the payload in chunks, so its memory is bounded by SCAN_CHUNK whatever
 * the segment holds.
 */
#define G_LOG_DOMAIN "shardfs-wal"

#include "wal_record.h"

#include <errno.h>
#include <glib.h>
#include <isa-l/crc.h>

#define REC_MAGIC "SFWR"
#define REC_VERSION 1
#define SEG_MAGIC "SHRDSEG1"
#define SEG_VERSION 1
#define REC_CRC_OFFSET 44
#define SEG_CRC_OFFSET 28
#define SCAN_CHUNK (1u << 20)
/* Largest header + table the format admits (payload of WAL_REC_MAX_PAYLOAD). */
#define HEAD_MAX (WAL_REC_HEADER_SIZE + 4u * (WAL_REC_MAX_PAYLOAD >> WAL_BLOCK_SHIFT))

static uint32_t crc32c_extend(uint32_t state, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	/* crc32_iscsi takes an int length. */
	while (len > 0) {
		int n = len > (1u << 30) ? (1 << 30) : (int)len;
		state = crc32_iscsi((unsigned char *)p, n, state);
		p += n;
		len -= (size_t)n;
	}
	return state;
}

uint32_t wal_crc32c(const void *buf, size_t len)
{
	return ~crc32c_extend(0xFFFFFFFFu, buf, len);
}

static uint32_t head_crc(const uint8_t *head, size_t head_len)
{
	uint32_t state = crc32c_extend(0xFFFFFFFFu, head, REC_CRC_OFFSET);

	state = crc32c_extend(state, head + WAL_REC_HEADER_SIZE, head_len - WAL_REC_HEADER_SIZE);
	return ~state;
}

void wal_rec_encode_head(const struct wal_rec *r, const void *payload, uint8_t *out)
{
	const uint8_t *data = payload;
	uint32_t nblocks = wal_rec_nblocks(r->payload_len);
	size_t head_len = wal_rec_head_len(r->payload_len);

	memset(out, 0, WAL_REC_HEADER_SIZE);
	memcpy(out, REC_MAGIC, 4);
	out[4] = REC_VERSION;
	out[5] = r->type;
	out[6] = WAL_BLOCK_SHIFT;
	memcpy(out + 8, r->key.object_id, 16);
	wal_put_le32(out + 24, r->key.part);
	wal_put_le16(out + 28, r->key.shard);
	wal_put_le64(out + 32, r->seq);
	wal_put_le32(out + 40, r->payload_len);
	for (uint32_t i = 0; i < nblocks; i++) {
		uint64_t start = (uint64_t)i << WAL_BLOCK_SHIFT;
		uint64_t len = MIN((uint64_t)WAL_BLOCK_SIZE, r->payload_len - start);

		wal_put_le32(out + WAL_REC_HEADER_SIZE + 4 * i, wal_crc32c(data + start, len));
	}
	wal_put_le32(out + REC_CRC_OFFSET, head_crc(out, head_len));
}

void wal_rec_set_seq(uint8_t *head, uint64_t seq)
{
	size_t head_len = wal_rec_head_len(wal_get_le32(head + 40));

	wal_put_le64(head + 32, seq);
	wal_put_le32(head + REC_CRC_OFFSET, head_crc(head, head_len));
}

static bool fixed_fields_valid(const uint8_t *buf, uint32_t max_payload)
{
	uint8_t type = buf[5];
	uint32_t len = wal_get_le32(buf + 40);

	if (memcmp(buf, REC_MAGIC, 4) != 0 || buf[4] != REC_VERSION)
		return false;
	if (type != WAL_REC_PUT && type != WAL_REC_DELETE)
		return false;
	if (buf[6] != WAL_BLOCK_SHIFT || buf[7] != 0 || wal_get_le16(buf + 30) != 0)
		return false;
	if (len > max_payload || len > WAL_REC_MAX_PAYLOAD)
		return false;
	return type == WAL_REC_PUT || len == 0;
}

int wal_rec_decode_head(const uint8_t *buf, size_t avail, uint32_t max_payload,
			struct wal_rec *r, size_t *head_len)
{
	*head_len = WAL_REC_HEADER_SIZE;
	if (avail < WAL_REC_HEADER_SIZE)
		return -ENODATA;
	if (!fixed_fields_valid(buf, max_payload))
		return WAL_ECORRUPT;
	uint32_t len = wal_get_le32(buf + 40);

	*head_len = wal_rec_head_len(len);
	if (avail < *head_len)
		return -ENODATA;
	if (head_crc(buf, *head_len) != wal_get_le32(buf + REC_CRC_OFFSET))
		return WAL_ECORRUPT;
	r->type = buf[5];
	memcpy(r->key.object_id, buf + 8, 16);
	r->key.part = wal_get_le32(buf + 24);
	r->key.shard = wal_get_le16(buf + 28);
	r->seq = wal_get_le64(buf + 32);
	r->payload_len = len;
	return 0;
}

int wal_rec_check_block(const uint8_t *head, uint32_t index, const void *data, size_t len)
{
	uint32_t want = wal_get_le32(head + WAL_REC_HEADER_SIZE + 4 * (size_t)index);

	return wal_crc32c(data, len) == want ? 0 : WAL_ECORRUPT;
}

void wal_seg_header_encode(uint64_t id, uint8_t out[WAL_SEG_HEADER_SIZE])
{
	memset(out, 0, WAL_SEG_HEADER_SIZE);
	memcpy(out, SEG_MAGIC, 8);
	wal_put_le32(out + 8, SEG_VERSION);
	wal_put_le32(out + 12, WAL_SEG_HEADER_SIZE);
	wal_put_le64(out + 16, id);
	wal_put_le32(out + SEG_CRC_OFFSET, wal_crc32c(out, SEG_CRC_OFFSET));
}

int wal_seg_header_decode(const uint8_t *buf, size_t len, uint64_t *id)
{
	if (len < WAL_SEG_HEADER_SIZE)
		return -ENODATA;
	if (memcmp(buf, SEG_MAGIC, 8) != 0 || wal_get_le32(buf + 8) != SEG_VERSION ||
	    wal_get_le32(buf + 12) != WAL_SEG_HEADER_SIZE || wal_get_le32(buf + 24) != 0)
		return WAL_EBADSEG;
	if (wal_crc32c(buf, SEG_CRC_OFFSET) != wal_get_le32(buf + SEG_CRC_OFFSET))
		return WAL_EBADSEG;
	*id = wal_get_le64(buf + 16);
	return 0;
}

int wal_io_read_exact(const struct wal_io *io, int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = io->pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		done += (size_t)n;
	}
	return 0;
}

/* Checks every payload block of the record at sr->offset. */
static int verify_payload(const struct wal_scan *s, struct wal_scan_rec *sr, size_t head_len,
			  uint8_t *chunk)
{
	uint64_t base = sr->offset + head_len;
	uint32_t nblocks = wal_rec_nblocks(sr->rec.payload_len);
	const uint32_t per_chunk = SCAN_CHUNK / WAL_BLOCK_SIZE;

	for (uint32_t b = 0; b < nblocks; b += per_chunk) {
		uint64_t start = (uint64_t)b << WAL_BLOCK_SHIFT;
		size_t len = (size_t)MIN((uint64_t)SCAN_CHUNK, sr->rec.payload_len - start);
		int rc = wal_io_read_exact(s->io, s->fd, chunk, len, base + start);

		if (rc < 0)
			return rc;
		for (uint32_t i = 0; i < per_chunk && b + i < nblocks; i++) {
			size_t blen = MIN((size_t)WAL_BLOCK_SIZE, len - (size_t)i * WAL_BLOCK_SIZE);

			if (wal_rec_check_block(sr->head, b + i, chunk + (size_t)i * WAL_BLOCK_SIZE, blen)) {
				sr->payload_ok = false;
				return 0;
			}
		}
	}
	return 0;
}

/* 0 with *sr filled if a record with a valid header starts at off and ends
 * before s->end; WAL_ECORRUPT if not; a negative errno on I/O error. */
static int read_record_at(const struct wal_scan *s, uint64_t off, uint8_t *head, uint8_t *chunk,
			  struct wal_scan_rec *sr)
{
	size_t head_len;
	uint64_t room = s->end - off;
	int rc;

	if (room < WAL_REC_HEADER_SIZE)
		return WAL_ECORRUPT;
	rc = wal_io_read_exact(s->io, s->fd, head, WAL_REC_HEADER_SIZE, off);
	if (rc == -ENODATA)
		return WAL_ECORRUPT;
	if (rc < 0)
		return rc;
	rc = wal_rec_decode_head(head, WAL_REC_HEADER_SIZE, s->max_payload, &sr->rec, &head_len);
	if (rc == -ENODATA) { /* a payload, hence a CRC table, follows */
		if (head_len > room)
			return WAL_ECORRUPT;
		rc = wal_io_read_exact(s->io, s->fd, head + WAL_REC_HEADER_SIZE,
				head_len - WAL_REC_HEADER_SIZE, off + WAL_REC_HEADER_SIZE);
		if (rc == -ENODATA)
			return WAL_ECORRUPT;
		if (rc == 0)
			rc = wal_rec_decode_head(head, head_len, s->max_payload, &sr->rec, &head_len);
	}
	if (rc < 0)
		return rc;
	sr->offset = off;
	sr->size = wal_rec_size(sr->rec.payload_len);
	sr->head = head;
	sr->payload_ok = true;
	if (sr->size > room)
		return WAL_ECORRUPT;
	return s->verify_payload ? verify_payload(s, sr, head_len, chunk) : 0;
}

/* Offset of the next record magic at or after off, or s->end. */
static int find_magic(const struct wal_scan *s, uint64_t off, uint8_t *chunk, uint64_t *found)
{
	while (off + 4 <= s->end) {
		size_t len = (size_t)MIN((uint64_t)SCAN_CHUNK, s->end - off);
		int rc = wal_io_read_exact(s->io, s->fd, chunk, len, off);

		if (rc == -ENODATA)
			break; /* the file shrank under us */
		if (rc < 0)
			return rc;
		uint8_t *hit = memmem(chunk, len, REC_MAGIC, 4);

		if (hit) {
			*found = off + (uint64_t)(hit - chunk);
			return 0;
		}
		if (off + len >= s->end)
			break;
		off += len - 3; /* a magic may straddle two chunks */
	}
	*found = s->end;
	return 0;
}

static int report_bad(const struct wal_scan *s, uint64_t *bad_start, uint64_t upto)
{
	int rc = 0;

	if (*bad_start != UINT64_MAX && s->on_bad)
		rc = s->on_bad(s->arg, *bad_start, upto - *bad_start);
	*bad_start = UINT64_MAX;
	return rc;
}

int wal_scan_run(const struct wal_scan *s, uint64_t *good_end)
{
	uint8_t *head = g_malloc(HEAD_MAX);
	uint8_t *chunk = g_malloc(SCAN_CHUNK);
	uint64_t off = s->start, bad_start = UINT64_MAX;
	bool damaged = false;
	int rc = 0;

	*good_end = s->start;
	while (off < s->end) {
		struct wal_scan_rec sr;

		rc = read_record_at(s, off, head, chunk, &sr);
		if (rc == 0) {
			rc = report_bad(s, &bad_start, off);
			if (rc == 0)
				rc = s->on_record(s->arg, &sr);
			if (rc != 0)
				goto out;
			if (sr.payload_ok && !damaged)
				*good_end = off + sr.size;
			damaged |= !sr.payload_ok;
			off += sr.size;
			continue;
		}
		if (rc != WAL_ECORRUPT)
			goto out;
		if (bad_start == UINT64_MAX)
			bad_start = off;
		damaged = true;
		rc = find_magic(s, off + 1, chunk, &off);
		if (rc < 0)
			goto out;
	}
	rc = report_bad(s, &bad_start, s->end);
out:
	g_free(chunk);
	g_free(head);
	return rc;
}
