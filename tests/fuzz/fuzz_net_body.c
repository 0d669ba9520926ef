/*
 * fuzz_net_body.c - libFuzzer target for the stream body decoders and the
 * key=value text reader: the fixed-size bodies decode only at their size
 * and then re-encode to the same bytes (reserved fields aside); the text
 * reader never reads past the length it is given (ASan sees the end of
 * the heap copy), and a STREAM_STAT that decodes and re-encodes decodes
 * again to the same values, and so does a STATUS.
 */
#include "net/net_proto.h"

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_fixed(const uint8_t *in, size_t size)
{
	struct net_stream_open o;
	struct net_stream_opened od;
	struct net_stream_read r;
	uint8_t again[NET_STREAM_OPEN_SIZE];

	if (net_stream_open_decode(in, size, &o) == 0) {
		if (size != NET_STREAM_OPEN_SIZE)
			__builtin_trap();
		net_stream_open_encode(&o, again);
		if (memcmp(in, again, 20) != 0)
			__builtin_trap();
	}
	if (net_stream_opened_decode(in, size, &od) == 0) {
		if (size != NET_STREAM_OPENED_SIZE)
			__builtin_trap();
		net_stream_opened_encode(&od, again);
		if (memcmp(in, again, NET_STREAM_OPENED_SIZE) != 0)
			__builtin_trap();
	}
	if (net_stream_read_decode(in, size, &r) == 0) {
		if (size != NET_STREAM_READ_SIZE)
			__builtin_trap();
		net_stream_read_encode(&r, again);
		if (memcmp(in, again, 12) != 0)
			__builtin_trap();
	}
}

static void check_text(const uint8_t *in, size_t size)
{
	struct net_stream_stat st, back;
	GString *out = g_string_new(NULL);

	uint64_t v;

	(void)net_kv_u64(in, size, "total_bytes", &v);
	net_stream_stat_decode(in, size, &st);
	net_stream_stat_encode(&st, out);
	net_stream_stat_decode(out->str, out->len, &back);
	if (memcmp(&st, &back, offsetof(struct net_stream_stat, lossless)) != 0 ||
	    st.lossless != back.lossless)
		__builtin_trap();
	g_string_free(out, TRUE);
}

static bool same_status(const struct net_node_status *a, const struct net_node_status *b)
{
	return a->node == b->node && strcmp(a->version, b->version) == 0 &&
	       a->shards == b->shards && a->live_bytes == b->live_bytes &&
	       a->disk_bytes == b->disk_bytes && a->free_bytes == b->free_bytes &&
	       a->total_bytes == b->total_bytes && a->uptime_s == b->uptime_s &&
	       a->store_error == b->store_error;
}

/* A STATUS that decodes re-encodes to text that decodes to the same. */
static void check_status(const uint8_t *in, size_t size)
{
	struct net_node_status st, back;
	GString *out = g_string_new(NULL);

	if (net_node_status_decode(in, size, &st) == 0) {
		net_node_status_encode(&st, out);
		if (net_node_status_decode(out->str, out->len, &back) != 0 || !same_status(&st, &back))
			__builtin_trap();
	}
	g_string_free(out, TRUE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy: any read past size is an ASan report. */
	uint8_t *in = malloc(size ? size : 1);

	memcpy(in, data, size);
	check_fixed(in, size);
	check_text(in, size);
	check_status(in, size);
	free(in);
	return 0;
}
