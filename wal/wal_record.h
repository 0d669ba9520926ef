/*
 * wal_record.h - encoding and decoding of segment headers and records, and
 * the segment scanner that recovery, compaction and scrub share.
 *
 * Everything here works on buffers or through struct wal_io, with no state
 * of its own, so it is unit-tested and fuzzed without a store. The formats
 * are the tables in wal.h. Decoders never trust a length: every field is
 * checked against the buffer and the limits before it is used.
 */
#ifndef SHARDFS_WAL_RECORD_H
#define SHARDFS_WAL_RECORD_H

#include "wal.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* A decoded record header. */
struct wal_rec {
	uint8_t type;
	struct wal_key key;
	uint64_t seq;
	uint32_t payload_len;
};

/* Standard CRC32C (check value of "123456789" is 0xe3069283). */
uint32_t wal_crc32c(const void *buf, size_t len);

static inline uint32_t wal_rec_nblocks(uint32_t payload_len)
{
	return (uint32_t)(((uint64_t)payload_len + WAL_BLOCK_SIZE - 1) >> WAL_BLOCK_SHIFT);
}

/* Bytes of header plus block CRC table. */
static inline size_t wal_rec_head_len(uint32_t payload_len)
{
	return WAL_REC_HEADER_SIZE + 4u * (size_t)wal_rec_nblocks(payload_len);
}

static inline uint64_t wal_rec_size(uint32_t payload_len)
{
	return wal_rec_head_len(payload_len) + (uint64_t)payload_len;
}

/*
 * Writes the header and block CRC table of a record whose payload is
 * payload (r->payload_len bytes) into out, which holds
 * wal_rec_head_len(r->payload_len) bytes.
 */
void wal_rec_encode_head(const struct wal_rec *r, const void *payload, uint8_t *out);

/* Stores seq in an encoded head and updates its CRC. */
void wal_rec_set_seq(uint8_t *head, uint64_t seq);

/*
 * Decodes a record header and table from buf (avail bytes).
 * Returns 0 with *r and *head_len set, -ENODATA when avail is short of
 * *head_len (set as far as known: first 48, then the full head), or
 * WAL_ECORRUPT for a wrong magic, version, type, field, a payload longer than
 * max_payload, or a CRC mismatch.
 */
int wal_rec_decode_head(const uint8_t *buf, size_t avail, uint32_t max_payload,
			struct wal_rec *r, size_t *head_len);

/* 0 if block number index (of len bytes, data) matches the CRC in the
 * decoded table, else WAL_ECORRUPT. The caller checks index < nblocks. */
int wal_rec_check_block(const uint8_t *head, uint32_t index, const void *data, size_t len);

void wal_seg_header_encode(uint64_t id, uint8_t out[WAL_SEG_HEADER_SIZE]);
/* 0 with *id set, -ENODATA if len is short, WAL_EBADSEG if not ours. */
int wal_seg_header_decode(const uint8_t *buf, size_t len, uint64_t *id);

/* pread through io of exactly len bytes: 0, -ENODATA at end of file, or
 * -errno. */
int wal_io_read_exact(const struct wal_io *io, int fd, void *buf, size_t len, uint64_t off);

/* One record met by wal_scan(). head points to its header and table, valid
 * during the callback only. */
struct wal_scan_rec {
	uint64_t offset;
	uint64_t size;
	struct wal_rec rec;
	const uint8_t *head;
	bool payload_ok; /* true when not verified */
};

/* Return non-zero from a callback to stop the scan with that value. */
typedef int (*wal_scan_rec_fn)(void *arg, const struct wal_scan_rec *r);
typedef int (*wal_scan_bad_fn)(void *arg, uint64_t offset, uint64_t len);

struct wal_scan {
	const struct wal_io *io;
	int fd;
	uint64_t start; /* first record offset */
	uint64_t end;	/* file size */
	uint32_t max_payload;
	bool verify_payload;
	wal_scan_rec_fn on_record;
	wal_scan_bad_fn on_bad; /* may be NULL */
	void *arg;
};

/*
 * Walks the records of a segment from s->start to s->end. A region that
 * holds no valid record header (garbage, a torn write) is reported to
 * on_bad and skipped by searching for the next valid header. A record whose
 * header is valid but which runs past the end is reported as bad.
 * *good_end is set to the end of the longest prefix of valid records (the
 * first bad region or bad payload ends it). Returns 0, a callback's non-zero value, or a negative errno of
 * pread.
 */
int wal_scan_run(const struct wal_scan *s, uint64_t *good_end);

static inline void wal_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void wal_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void wal_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t wal_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t wal_get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t wal_get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif
