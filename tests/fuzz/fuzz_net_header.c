/*
 * fuzz_net_header.c - libFuzzer target for the wire protocol decoders: a
 * request header that decodes must re-encode to the same bytes and respect
 * the limits; response headers must decode or fail, never crash.
 */
#include "net/net_proto.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t buf[NET_REQ_HEADER_SIZE] = {0}, again[NET_REQ_HEADER_SIZE];
	struct net_req_header h;
	struct net_resp_header rh;
	uint8_t op;

	memcpy(buf, data, size < sizeof(buf) ? size : sizeof(buf));
	if (net_req_decode(buf, &h, &op) == 0) {
		net_req_encode(&h, again);
		if (memcmp(buf, again, sizeof(buf)) != 0)
			__builtin_trap();
		if (h.op == NET_OP_PUT && h.body_len > NET_MAX_SHARD)
			__builtin_trap();
		if (h.op == NET_OP_GET && h.length > NET_MAX_SHARD)
			__builtin_trap();
		/* Every body the node allocates for a stream request is bounded,
		 * and the fixed-size ones are exactly their size. */
		if (h.op >= NET_OP_STREAM_OPEN && h.body_len > NET_MAX_STREAM_CHUNK)
			__builtin_trap();
		if (h.op == NET_OP_STREAM_OPEN && h.body_len != NET_STREAM_OPEN_SIZE)
			__builtin_trap();
		if (h.op == NET_OP_STREAM_READ &&
		    (h.body_len != NET_STREAM_READ_SIZE || h.length > NET_MAX_STREAM_READ))
			__builtin_trap();
	}
	if (net_resp_decode(buf, NET_MAX_SHARD, &rh) == 0 && (rh.body_len > NET_MAX_SHARD || rh.status > 0))
		__builtin_trap();
	return 0;
}
