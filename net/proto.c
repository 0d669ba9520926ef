/*
 * proto.c - request and response header codecs, and the reader of
 * key=value bodies (formats in net_proto.h).
 *
 * These decoders read bytes from the network: they check every field
 * before any of it is used, and the limits before the caller allocates.
 */
#include "net_proto.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#define REQ_MAGIC "SFRQ"
#define RESP_MAGIC "SFRS"
#define PROTO_VERSION 1

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

void net_key_pack(const struct net_key *k, uint8_t out[NET_KEY_PACKED_SIZE])
{
	/* Big-endian numbers, so that memcmp order is numeric order. */
	memcpy(out, k->object_id, 16);
	for (int i = 0; i < 4; i++)
		out[16 + i] = (uint8_t)(k->part >> (24 - 8 * i));
	out[20] = (uint8_t)(k->shard >> 8);
	out[21] = (uint8_t)k->shard;
}

void net_key_unpack(const uint8_t in[NET_KEY_PACKED_SIZE], struct net_key *k)
{
	memcpy(k->object_id, in, 16);
	k->part = (uint32_t)in[16] << 24 | (uint32_t)in[17] << 16 | (uint32_t)in[18] << 8 | in[19];
	k->shard = (uint16_t)(in[20] << 8 | in[21]);
}

int net_key_cmp(const struct net_key *a, const struct net_key *b)
{
	uint8_t pa[NET_KEY_PACKED_SIZE], pb[NET_KEY_PACKED_SIZE];

	net_key_pack(a, pa);
	net_key_pack(b, pb);
	return memcmp(pa, pb, sizeof(pa));
}

void net_req_encode(const struct net_req_header *h, uint8_t out[NET_REQ_HEADER_SIZE])
{
	memset(out, 0, NET_REQ_HEADER_SIZE);
	memcpy(out, REQ_MAGIC, 4);
	out[4] = PROTO_VERSION;
	out[5] = h->op;
	put_le(out + 6, h->flags, 2);
	memcpy(out + 8, h->key.object_id, 16);
	put_le(out + 24, h->key.part, 4);
	put_le(out + 28, h->key.shard, 2);
	put_le(out + 32, h->offset, 8);
	put_le(out + 40, h->length, 8);
	put_le(out + 48, h->body_len, 8);
}

/* The lengths each opcode admits. */
static bool lengths_valid(const struct net_req_header *h)
{
	switch (h->op) {
	case NET_OP_PUT:
		return h->body_len <= NET_MAX_SHARD && h->offset == 0 && h->length == 0;
	case NET_OP_GET:
		return h->body_len == 0 && h->length <= NET_MAX_SHARD &&
		       h->offset <= UINT64_MAX - h->length;
	case NET_OP_LIST:
		return (h->body_len == 0 || h->body_len == NET_KEY_PACKED_SIZE) &&
		       h->length >= 1 && h->length <= NET_MAX_LIST && h->offset == 0;
	case NET_OP_STREAM_OPEN:
		return h->body_len == NET_STREAM_OPEN_SIZE && h->offset && h->length == 0;
	case NET_OP_STREAM_CLOSE:
	case NET_OP_STREAM_KEEP:
		return h->body_len == 0 && h->offset && h->length == 0;
	case NET_OP_STREAM_APPEND:
		return h->body_len >= 1 && h->body_len <= NET_MAX_STREAM_CHUNK && h->offset &&
		       h->length == 0;
	case NET_OP_STREAM_READ:
		return h->body_len == NET_STREAM_READ_SIZE && h->length >= 1 &&
		       h->length <= NET_MAX_STREAM_READ && h->offset <= UINT64_MAX - h->length;
	case NET_OP_STREAM_STAT:
	case NET_OP_PING:
	case NET_OP_DELETE:
	case NET_OP_STAT:
	case NET_OP_STATUS:
		return h->body_len == 0 && h->offset == 0 && h->length == 0;
	default:
		return false;
	}
}

int net_req_decode(const uint8_t in[NET_REQ_HEADER_SIZE], struct net_req_header *h,
		   uint8_t *op_seen)
{
	*op_seen = 0;
	if (memcmp(in, REQ_MAGIC, 4) != 0 || in[4] != PROTO_VERSION)
		return NET_EPROTO;
	*op_seen = in[5];
	if (!all_zero(in + 6, 2) || !all_zero(in + 30, 2) || !all_zero(in + 56, 8))
		return NET_EPROTO;
	h->op = in[5];
	h->flags = 0;
	memcpy(h->key.object_id, in + 8, 16);
	h->key.part = (uint32_t)get_le(in + 24, 4);
	h->key.shard = (uint16_t)get_le(in + 28, 2);
	h->offset = get_le(in + 32, 8);
	h->length = get_le(in + 40, 8);
	h->body_len = get_le(in + 48, 8);
	return lengths_valid(h) ? 0 : NET_EPROTO;
}

void net_resp_encode(const struct net_resp_header *h, uint8_t out[NET_RESP_HEADER_SIZE])
{
	memset(out, 0, NET_RESP_HEADER_SIZE);
	memcpy(out, RESP_MAGIC, 4);
	out[4] = PROTO_VERSION;
	out[5] = h->op;
	put_le(out + 8, (uint32_t)h->status, 4);
	put_le(out + 16, h->body_len, 8);
	put_le(out + 24, h->aux, 8);
}

int net_resp_decode(const uint8_t in[NET_RESP_HEADER_SIZE], uint64_t max_body,
		    struct net_resp_header *h)
{
	if (memcmp(in, RESP_MAGIC, 4) != 0 || in[4] != PROTO_VERSION)
		return NET_EPROTO;
	if (!all_zero(in + 6, 2) || !all_zero(in + 12, 4))
		return NET_EPROTO;
	h->op = in[5];
	h->status = (int32_t)(uint32_t)get_le(in + 8, 4);
	h->body_len = get_le(in + 16, 8);
	h->aux = get_le(in + 24, 8);
	if (h->status > 0 || h->body_len > max_body)
		return NET_EPROTO;
	return 0;
}

/* A node sends its store's code as is: the two must never drift apart. */
G_STATIC_ASSERT(NET_ECORRUPT == WAL_ECORRUPT);

bool net_kv_u64(const char *text, const char *key, uint64_t *out)
{
	size_t klen = strlen(key);

	for (const char *line = text; *line; line = strchrnul(line, '\n')) {
		if (*line == '\n')
			line++;
		if (strncmp(line, key, klen) || line[klen] != '=')
			continue;
		const char *v = line + klen + 1;
		char *end;

		if (!g_ascii_isdigit(*v))
			return false;
		errno = 0;
		guint64 n = g_ascii_strtoull(v, &end, 10);
		if (errno || (*end && *end != '\n'))
			return false;
		*out = n;
		return true;
	}
	return false;
}
