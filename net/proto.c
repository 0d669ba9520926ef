/*
 * proto.c - the codecs of the wire: request and response headers, stream
 * bodies, key=value text (formats in net_proto.h).
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
	case NET_OP_DAMAGED:
	case NET_OP_LIST_AGED:
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

/* ---- stream bodies ---- */

void net_stream_open_encode(const struct net_stream_open *o, uint8_t out[NET_STREAM_OPEN_SIZE])
{
	memset(out, 0, NET_STREAM_OPEN_SIZE);
	put_le(out, o->base, 8);
	put_le(out + 8, o->ring_bytes, 8);
	put_le(out + 16, o->mode, 4);
}

int net_stream_open_decode(const void *body, size_t len, struct net_stream_open *o)
{
	const uint8_t *in = body;

	if (len != NET_STREAM_OPEN_SIZE)
		return NET_EPROTO;
	o->base = get_le(in, 8);
	o->ring_bytes = get_le(in + 8, 8);
	o->mode = (uint32_t)get_le(in + 16, 4);
	return 0;
}

void net_stream_opened_encode(const struct net_stream_opened *o,
			      uint8_t out[NET_STREAM_OPENED_SIZE])
{
	put_le(out, o->head, 8);
	put_le(out + 8, o->oldest, 8);
}

int net_stream_opened_decode(const void *body, size_t len, struct net_stream_opened *o)
{
	const uint8_t *in = body;

	if (len != NET_STREAM_OPENED_SIZE)
		return NET_EPROTO;
	o->head = get_le(in, 8);
	o->oldest = get_le(in + 8, 8);
	return 0;
}

void net_stream_read_encode(const struct net_stream_read *r, uint8_t out[NET_STREAM_READ_SIZE])
{
	memset(out, 0, NET_STREAM_READ_SIZE);
	put_le(out, r->token, 8);
	put_le(out + 8, r->local_readers, 4);
}

int net_stream_read_decode(const void *body, size_t len, struct net_stream_read *r)
{
	const uint8_t *in = body;

	if (len != NET_STREAM_READ_SIZE)
		return NET_EPROTO;
	r->token = get_le(in, 8);
	r->local_readers = (uint32_t)get_le(in + 8, 4);
	return 0;
}

/* ---- key=value text ---- */

void net_kv_append_u64(GString *out, const char *key, uint64_t value)
{
	g_string_append_printf(out, "%s=%" G_GUINT64_FORMAT "\n", key, value);
}

void net_kv_append_str(GString *out, const char *key, const char *value)
{
	g_string_append_printf(out, "%s=%s\n", key, value);
}

/* The value of the first line "key=...", as [*val, *val + *val_len). */
static bool kv_find(const char *p, size_t len, const char *key, const char **val,
		    size_t *val_len)
{
	size_t klen = strlen(key);

	for (const char *end = p + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = nl ? nl : end;
		size_t line_len = (size_t)(line_end - p);

		if (line_len > klen && memcmp(p, key, klen) == 0 && p[klen] == '=') {
			*val = p + klen + 1;
			*val_len = line_len - klen - 1;
			return true;
		}
		p = nl ? nl + 1 : end;
	}
	return false;
}

bool net_kv_u64(const void *body, size_t len, const char *key, uint64_t *out)
{
	const char *val;
	size_t n;
	uint64_t v = 0;

	if (!len || !kv_find(body, len, key, &val, &n) || !n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!g_ascii_isdigit(val[i]))
			return false;
		unsigned d = (unsigned)(val[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* A field the sender leaves out, or one it sends garbled, counts as 0. */
static uint64_t kv_or_zero(const void *body, size_t len, const char *key)
{
	uint64_t v = 0;

	net_kv_u64(body, len, key, &v);
	return v;
}

bool net_kv_is(const void *body, size_t len, const char *key, const char *value)
{
	const char *val;
	size_t n;

	return kv_find(body, len, key, &val, &n) && n == strlen(value) && memcmp(val, value, n) == 0;
}

void net_stream_stat_encode(const struct net_stream_stat *st, GString *out)
{
	net_kv_append_u64(out, "head", st->head);
	net_kv_append_u64(out, "oldest", st->oldest);
	net_kv_append_u64(out, "ring_bytes", st->ring_bytes);
	net_kv_append_str(out, "policy", st->lossless ? "lossless" : "live");
	net_kv_append_u64(out, "writers", st->writers);
	net_kv_append_u64(out, "readers", st->readers);
	net_kv_append_u64(out, "subscriptions", st->subscriptions);
	net_kv_append_u64(out, "dropped", st->dropped);
	net_kv_append_u64(out, "chunks", st->chunks);
}

void net_stream_stat_decode(const void *body, size_t len, struct net_stream_stat *st)
{
	*st = (struct net_stream_stat){
		.head = kv_or_zero(body, len, "head"),
		.oldest = kv_or_zero(body, len, "oldest"),
		.ring_bytes = kv_or_zero(body, len, "ring_bytes"),
		.dropped = kv_or_zero(body, len, "dropped"),
		.chunks = kv_or_zero(body, len, "chunks"),
		.writers = (uint32_t)kv_or_zero(body, len, "writers"),
		.readers = (uint32_t)kv_or_zero(body, len, "readers"),
		.subscriptions = (uint32_t)kv_or_zero(body, len, "subscriptions"),
		.lossless = net_kv_is(body, len, "policy", "lossless"),
	};
}

void net_node_status_encode(const struct net_node_status *st, GString *out)
{
	net_kv_append_u64(out, "node", st->node);
	net_kv_append_str(out, "version", st->version);
	net_kv_append_u64(out, "shards", st->shards);
	net_kv_append_u64(out, "live_bytes", st->live_bytes);
	net_kv_append_u64(out, "disk_bytes", st->disk_bytes);
	net_kv_append_u64(out, "free_bytes", st->free_bytes);
	net_kv_append_u64(out, "total_bytes", st->total_bytes);
	net_kv_append_u64(out, "uptime_s", st->uptime_s);
	net_kv_append_u64(out, "store_error", (uint64_t)-(int64_t)st->store_error);
	net_kv_append_u64(out, "fs_id", st->fs_id);
	if (st->identity[0])
		net_kv_append_str(out, "identity", st->identity);
	net_kv_append_u64(out, "bad_shards", st->bad_shards);
}

/* The word after "key=", cut to cap - 1 bytes; false if the key is missing. */
static bool kv_word(const void *body, size_t len, const char *key, char *out, size_t cap)
{
	const char *val;
	size_t n;

	if (!len || !kv_find(body, len, key, &val, &n))
		return false;
	n = MIN(n, cap - 1);
	memcpy(out, val, n);
	out[n] = '\0';
	return true;
}

int net_node_status_decode(const void *body, size_t len, struct net_node_status *st)
{
	uint64_t node = 0, err = 0;
	bool ok = net_kv_u64(body, len, "node", &node) && node <= UINT32_MAX;
	const char *val;
	size_t val_len;

	*st = (struct net_node_status){.version = "?"};
	ok &= kv_word(body, len, "version", st->version, sizeof(st->version));
	ok &= net_kv_u64(body, len, "shards", &st->shards);
	ok &= net_kv_u64(body, len, "live_bytes", &st->live_bytes);
	ok &= net_kv_u64(body, len, "disk_bytes", &st->disk_bytes);
	ok &= net_kv_u64(body, len, "free_bytes", &st->free_bytes);
	ok &= net_kv_u64(body, len, "total_bytes", &st->total_bytes);
	ok &= net_kv_u64(body, len, "uptime_s", &st->uptime_s);
	ok &= net_kv_u64(body, len, "store_error", &err) && err <= INT32_MAX;
	/* optional: a node without it is counted on its own; garbled is not */
	if (len && kv_find(body, len, "fs_id", &val, &val_len))
		ok &= net_kv_u64(body, len, "fs_id", &st->fs_id);
	/* optional too; one that does not fit is no identity of ours */
	if (len && kv_find(body, len, "bad_shards", &val, &val_len))
		ok &= net_kv_u64(body, len, "bad_shards", &st->bad_shards);
	if (len && kv_find(body, len, "identity", &val, &val_len))
		ok &= val_len < sizeof(st->identity) &&
		      kv_word(body, len, "identity", st->identity, sizeof(st->identity));
	if (ok) {
		st->node = (uint32_t)node;
		st->store_error = -(int32_t)err;
	}
	return ok ? 0 : NET_EPROTO;
}

const char *net_op_name(unsigned op)
{
	static const char *const names[] = {
		[NET_OP_PING] = "ping",
		[NET_OP_PUT] = "put",
		[NET_OP_GET] = "get",
		[NET_OP_DELETE] = "delete",
		[NET_OP_STAT] = "stat",
		[NET_OP_LIST] = "list",
		[NET_OP_STATUS] = "status",
		[NET_OP_STREAM_OPEN] = "stream_open",
		[NET_OP_STREAM_CLOSE] = "stream_close",
		[NET_OP_STREAM_APPEND] = "stream_append",
		[NET_OP_STREAM_READ] = "stream_read",
		[NET_OP_STREAM_STAT] = "stream_stat",
		[NET_OP_STREAM_KEEP] = "stream_keep",
		[NET_OP_DAMAGED] = "damaged",
		[NET_OP_LIST_AGED] = "list_aged",
	};

	return op >= 1 && op <= NET_OP_LAST ? names[op] : "unknown";
}
