/*
 * net_proto.h - the shardfs wire protocol: one request per bidirectional
 * QUIC stream, ALPN "shardfs/1".
 *
 * The client writes a request header, then body_len bytes of body, then
 * FIN. The node answers with a response header, then body_len bytes, then
 * FIN. All integers are little-endian. A header that fails validation gets
 * a response with status NET_EPROTO (when the opcode could be read) and the
 * stream is reset; the connection and the node live on.
 *
 * Request header, 64 bytes:
 *   OFFSET SIZE MEANING
 *        0    4 magic "SFRQ"
 *        4    1 protocol version (1)
 *        5    1 opcode (enum net_op)
 *        6    2 flags, 0
 *        8   16 object id          } the shard key, for shard opcodes
 *       24    4 part number        }
 *       28    2 shard index        }
 *       30    2 reserved, 0
 *       32    8 offset (GET: first byte)
 *       40    8 length (GET: bytes wanted; LIST: entries wanted)
 *       48    8 body length (PUT: the shard; LIST: the cursor key or 0)
 *       56    8 reserved, 0
 *
 * Response header, 32 bytes:
 *   OFFSET SIZE MEANING
 *        0    4 magic "SFRS"
 *        4    1 protocol version (1)
 *        5    1 opcode of the request
 *        6    2 reserved, 0
 *        8    4 status: 0, a negative errno, or one of the wire statuses
 *                below (no other project code is ever sent)
 *       12    4 reserved, 0
 *       16    8 body length
 *       24    8 aux: GET/STAT the shard's full length; LIST 1 if more follow
 *
 * Bodies: PUT request = the shard bytes. GET response = the bytes read.
 * LIST request = empty, or the 22-byte packed key to continue after; LIST
 * response = entries of (22-byte packed key, 4-byte length), in key order.
 * DAMAGED: the same as LIST, over the shards the node found bad (a record
 * failing its CRC at scrub or recovery, or a read meeting a bad block),
 * for clients to rewrite; STATUS says how many (bad_shards). LIST_AGED:
 * the same as LIST, each entry followed by 4 bytes more, the shard's age
 * in seconds by the node's clock (at least that old; capped at 2^32-1),
 * so that a cluster scrub tells an orphan from a write in progress.
 * STATUS response = "key=value\n" lines (text, extensible).
 *
 * Stream opcodes (live byte streams kept in a ring on their home node).
 * The object id names the stream; part and shard are 0. A handle is a
 * non-zero 64-bit token chosen by the client for one open reader or writer.
 *   STREAM_OPEN    offset = token; body = struct net_stream_open (table
 *                  below). Response aux = head (bytes ever written); body
 *                  = struct net_stream_opened.
 *   STREAM_CLOSE   offset = token. aux = head.
 *   STREAM_APPEND  offset = token; body = one chunk, kept whole. aux = the
 *                  chunk's first byte. -EAGAIN: a lossless stream is full,
 *                  try again (nothing was appended).
 *   STREAM_READ    offset = the reader's position; length = bytes wanted;
 *                  body = struct net_stream_read (table below). Answered
 *                  once data exists at or after the position, or after the
 *                  node's long-poll wait with no body. aux = the position
 *                  of the first byte of the body (beyond the asked one if
 *                  the reader fell out of the ring). NET_EEOF: every
 *                  writer closed and the reader has everything.
 *   STREAM_STAT    response body = "key=value\n" lines (struct
 *                  net_stream_stat).
 *   STREAM_KEEP    offset = token: the handle is still in use (handles
 *                  idle for NET_STREAM_LEASE_S are dropped).
 */
#ifndef SHARDFS_NET_PROTO_H
#define SHARDFS_NET_PROTO_H

#include "common/error.h"

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_ALPN "shardfs/1"
#define NET_REQ_HEADER_SIZE 64u
#define NET_RESP_HEADER_SIZE 32u
#define NET_KEY_PACKED_SIZE 22u
#define NET_LIST_ENTRY_SIZE (NET_KEY_PACKED_SIZE + 4u)
#define NET_LIST_AGED_ENTRY_SIZE (NET_LIST_ENTRY_SIZE + 4u)

/* Limits every node enforces before allocating anything. */
#define NET_MAX_SHARD (32u << 20) /* PUT body, GET length */
#define NET_MAX_LIST 4096u	  /* LIST entries per page */

/* Streams. */
#define NET_STREAM_OPEN_SIZE 24u
#define NET_STREAM_OPENED_SIZE 16u
#define NET_STREAM_READ_SIZE 16u
#define NET_MAX_STREAM_CHUNK (4u << 20) /* APPEND body */
#define NET_MAX_STREAM_READ (4u << 20)	/* READ length */
#define NET_MAX_STREAM_RING (1ull << 30)
#define NET_STREAM_DEFAULT_RING (8u << 20)
#define NET_STREAM_LEASE_S 15
#define NET_STREAM_WRITER 1u
#define NET_STREAM_LOSSLESS 2u

/*
 * net's own codes (NET_EPROTO, NET_ETIMEDOUT, NET_ECONNLOST, NET_EEOF) are
 * declared in common/error.h. Of all project codes, these are the ones a
 * response status may carry (their values are fixed by the protocol):
 *
 *   STATUS        VALUE MEANING
 *   NET_EPROTO    -4128 the request was malformed
 *   NET_EEOF      -4131 STREAM_READ: every writer closed, nothing left
 *   NET_ECORRUPT  -4097 GET/STAT: the node's copy of the shard failed its
 *                       checksum (the node's WAL_ECORRUPT, sent as is)
 *
 * NET_ETIMEDOUT and NET_ECONNLOST are made by the client, never sent.
 */
#define NET_ECORRUPT (-4097)

enum net_op {
	NET_OP_PING = 1,
	NET_OP_PUT = 2,
	NET_OP_GET = 3,
	NET_OP_DELETE = 4,
	NET_OP_STAT = 5,
	NET_OP_LIST = 6,
	NET_OP_STATUS = 7,
	NET_OP_STREAM_OPEN = 8,
	NET_OP_STREAM_CLOSE = 9,
	NET_OP_STREAM_APPEND = 10,
	NET_OP_STREAM_READ = 11,
	NET_OP_STREAM_STAT = 12,
	NET_OP_STREAM_KEEP = 13,
	NET_OP_DAMAGED = 14,
	NET_OP_LIST_AGED = 15,
	NET_OP_LAST = NET_OP_LIST_AGED,
};

/* "put", "stream_read", ...: the op's name for logs and metrics labels;
 * "unknown" outside 1..NET_OP_LAST. */
const char *net_op_name(unsigned op);

struct net_key {
	uint8_t object_id[16];
	uint32_t part;
	uint16_t shard;
};

struct net_req_header {
	uint8_t op;
	uint16_t flags;
	struct net_key key;
	uint64_t offset;
	uint64_t length;
	uint64_t body_len;
};

struct net_resp_header {
	uint8_t op;
	int32_t status;
	uint64_t body_len;
	uint64_t aux;
};

void net_req_encode(const struct net_req_header *h, uint8_t out[NET_REQ_HEADER_SIZE]);
/*
 * Decodes and validates a request header: magic, version, a known opcode,
 * zero flags and reserved fields, and every length within the limits for
 * its opcode. Returns 0, or NET_EPROTO. *op_seen is set to the opcode byte
 * when the magic and version were right (so that an error can echo it),
 * else to 0.
 */
int net_req_decode(const uint8_t in[NET_REQ_HEADER_SIZE], struct net_req_header *h,
		   uint8_t *op_seen);

void net_resp_encode(const struct net_resp_header *h, uint8_t out[NET_RESP_HEADER_SIZE]);
/* Returns 0 or NET_EPROTO (bad magic, version, reserved bits, or a body
 * longer than max_body). */
int net_resp_decode(const uint8_t in[NET_RESP_HEADER_SIZE], uint64_t max_body,
		    struct net_resp_header *h);

void net_key_pack(const struct net_key *k, uint8_t out[NET_KEY_PACKED_SIZE]);
void net_key_unpack(const uint8_t in[NET_KEY_PACKED_SIZE], struct net_key *k);
/* Total order of packed keys (memcmp of the packed form). */
int net_key_cmp(const struct net_key *a, const struct net_key *b);

/*
 * Stream bodies. Decoders take the body as received and its length, and
 * return 0 or NET_EPROTO (a body of the wrong length); they never read
 * past len. Reserved fields are written as 0 and not checked on decode,
 * so that a later version may use them. Values are not judged here (the
 * node decides what a mode or a ring size it cannot serve gets).
 *
 * STREAM_OPEN request body, NET_STREAM_OPEN_SIZE bytes:
 *   OFFSET SIZE MEANING
 *        0    8 base: the stream's length as the metadata knows it, so
 *               that offsets continue across node restarts
 *        8    8 ring bytes (0: the node's default)
 *       16    4 mode: NET_STREAM_WRITER | NET_STREAM_LOSSLESS
 *       20    4 reserved, 0
 */
struct net_stream_open {
	uint64_t base, ring_bytes;
	uint32_t mode;
};

void net_stream_open_encode(const struct net_stream_open *o, uint8_t out[NET_STREAM_OPEN_SIZE]);
int net_stream_open_decode(const void *body, size_t len, struct net_stream_open *o);

/*
 * STREAM_OPEN response body, NET_STREAM_OPENED_SIZE bytes:
 *   OFFSET SIZE MEANING
 *        0    8 head: bytes ever written to the stream
 *        8    8 oldest: the oldest byte the ring still holds
 */
struct net_stream_opened {
	uint64_t head, oldest;
};

void net_stream_opened_encode(const struct net_stream_opened *o,
			      uint8_t out[NET_STREAM_OPENED_SIZE]);
int net_stream_opened_decode(const void *body, size_t len, struct net_stream_opened *o);

/*
 * STREAM_READ request body, NET_STREAM_READ_SIZE bytes:
 *   OFFSET SIZE MEANING
 *        0    8 token of the reader's handle
 *        8    4 local readers behind this handle (only for statistics)
 *       12    4 reserved, 0
 */
struct net_stream_read {
	uint64_t token;
	uint32_t local_readers;
};

void net_stream_read_encode(const struct net_stream_read *r, uint8_t out[NET_STREAM_READ_SIZE]);
int net_stream_read_decode(const void *body, size_t len, struct net_stream_read *r);

/*
 * STATUS and STREAM_STAT response bodies: text, one "key=value\n" line per
 * field, in any order; a reader ignores keys it does not know and reads a
 * key it does not find as 0, so either side may add keys. Values are
 * decimal unsigned integers, or words (policy=live|lossless). Readers take
 * the body and its length: it need not end in a NUL byte.
 */
void net_kv_append_u64(GString *out, const char *key, uint64_t value);
void net_kv_append_str(GString *out, const char *key, const char *value);
/* The number of the first line "key=<digits>" of body[0..len) (only a
 * whole key at the start of a line matches, so "free" never reads
 * "free_bytes"). false if the key is missing or its value is not a decimal
 * number that fits in 64 bits (*out untouched). body may be NULL when len
 * is 0. */
bool net_kv_u64(const void *body, size_t len, const char *key, uint64_t *out);
/* Whether the first line of body[0..len) for key is "key=value". */
bool net_kv_is(const void *body, size_t len, const char *key, const char *value);

/* The STATUS response, as the keys node, version, shards, live_bytes,
 * disk_bytes, free_bytes, total_bytes, uptime_s and store_error (the
 * store's sticky error negated, so that it reads as a number: 0 when the
 * store takes writes). */
#define NET_VERSION_MAX 32
#define NET_IDENTITY_MAX 40 /* a UUID's 36 characters and the NUL */
struct net_node_status {
	uint32_t node;
	char version[NET_VERSION_MAX];
	uint64_t shards, live_bytes, disk_bytes, free_bytes, total_bytes, uptime_s;
	int32_t store_error;
	/* The filesystem of the node's data (nodes sharing one report the same
	 * id); 0: not said (a node from before the key), counted on its own. */
	uint64_t fs_id;
	/* The store's identity: a UUID made when its data directory was first
	 * used, so a wiped or replaced store is told from the one the
	 * manifests name; "" when not said (a node from before the key). */
	char identity[NET_IDENTITY_MAX];
	/* Live shards the node found bad (listed by DAMAGED); optional. */
	uint64_t bad_shards;
};

void net_node_status_encode(const struct net_node_status *st, GString *out);
/* 0, or NET_EPROTO when a key is missing or garbled (every field is then
 * still filled, the unreadable ones with 0 and version with "?"). */
int net_node_status_decode(const void *body, size_t len, struct net_node_status *st);

/* The STREAM_STAT response, as the keys head, oldest, ring_bytes, policy,
 * writers, readers, subscriptions, dropped, chunks. */
struct net_stream_stat {
	uint64_t head, oldest, ring_bytes, dropped, chunks;
	uint32_t writers, readers, subscriptions;
	bool lossless;
};

void net_stream_stat_encode(const struct net_stream_stat *st, GString *out);
void net_stream_stat_decode(const void *body, size_t len, struct net_stream_stat *st);

#endif
