/*
 * stream_ring.h - a client's copy of a stream's recent bytes: the local
 * ring a mount's readers of one stream share (fuse/stream.c).
 *
 * Bytes [oldest, head) are held by absolute stream offset, byte p at
 * buf[p % cap]; older ones were overwritten. Bytes the subscription never
 * got (skipped on the home node) are gaps: ranges inside [oldest, head)
 * that no reader can read and every reader steps over. Readers are plain
 * positions kept by the caller, who also does the locking.
 */
#ifndef SHARDFS_STORE_STREAM_RING_H
#define SHARDFS_STORE_STREAM_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct stream_gap {
	uint64_t from, to;
};

struct stream_ring {
	uint8_t *buf; /* cap bytes, allocated at the first put */
	uint64_t cap, oldest, head;
	struct stream_gap *gaps; /* ascending, to > oldest */
	size_t ngaps, gaps_cap;
};

/* An empty ring of cap bytes (> 0) whose next byte is at offset start. */
void stream_ring_init(struct stream_ring *r, uint64_t cap, uint64_t start);
void stream_ring_fini(struct stream_ring *r);

/* Adds n bytes (at most cap) that start at offset first >= head; bytes
 * between head and first become a gap. -ENOMEM if the buffer cannot be
 * had, -EINVAL for a chunk that cannot be placed (nothing changes). */
int stream_ring_put(struct stream_ring *r, uint64_t first, const void *buf, size_t n);

/* Moves *pos past what is no longer held (before oldest, inside a gap);
 * returns the bytes stepped over. */
uint64_t stream_ring_skip_lost(const struct stream_ring *r, uint64_t *pos);

/* The bytes readable at pos (call stream_ring_skip_lost first), at most
 * max, as iov[0..*n) pointing into the ring (valid until the next put);
 * returns their count, 0 when nothing is there yet. */
size_t stream_ring_peek(const struct stream_ring *r, uint64_t pos, size_t max,
			struct iovec iov[2], int *n);

/* How many bytes a put may add without overwriting what a reader at
 * slowest (the slowest of them) has not read. */
uint64_t stream_ring_room(const struct stream_ring *r, uint64_t slowest);

#endif
