/*
 * byte_ring.h - a ring of a stream's recent bytes, by absolute offset.
 *
 * Bytes [oldest, head) are held, byte p at buf[p % cap]; a put past the
 * capacity overwrites the oldest. Two users: a mount's copy of a stream
 * that its local readers share (fuse/stream.c), and the stream's ring on
 * its home node.
 *
 * Gaps: a put may start beyond head (bytes the holder never got, e.g. a
 * subscription that fell behind on the home node); the bytes in between
 * are a gap, a range inside [oldest, head) that no reader can read and
 * every reader steps over.
 *
 * Chunk starts (optional, common_byte_ring_keep_starts): the ring then
 * remembers where its recent puts started, so that a reader that fell out
 * of the ring resumes at the start of a chunk rather than in the middle of
 * one (a chunk being one writer's append, kept whole).
 *
 * Readers are plain positions kept by the caller. The fields are read by
 * users (head, oldest, cap) but only changed through these functions.
 * Threading: none inside; the caller locks.
 */
#ifndef SHARDFS_COMMON_BYTE_RING_H
#define SHARDFS_COMMON_BYTE_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct common_byte_ring_gap {
	uint64_t from, to;
};

struct common_byte_ring {
	uint8_t *buf; /* cap bytes, allocated at the first put */
	uint64_t cap, oldest, head;
	struct common_byte_ring_gap *gaps; /* ascending, to > oldest */
	size_t ngaps, gaps_cap;
	uint64_t *starts; /* circular: chunk starts >= oldest, ascending */
	size_t starts_max, starts_cap, starts_first, starts_len;
};

/* An empty ring of cap bytes (> 0) whose next byte is at offset start;
 * it keeps no chunk starts. */
void common_byte_ring_init(struct common_byte_ring *r, uint64_t cap, uint64_t start);
void common_byte_ring_fini(struct common_byte_ring *r);

/* From now on, remember where the last (at most) max puts started. */
void common_byte_ring_keep_starts(struct common_byte_ring *r, size_t max);

/*
 * Adds n bytes (at most cap) that start at offset first >= head; bytes
 * between head and first become a gap. -ENOMEM if the buffer cannot be
 * had, -EINVAL for a chunk that cannot be placed (nothing changes then).
 */
int common_byte_ring_put(struct common_byte_ring *r, uint64_t first, const void *buf, size_t n);

/* Forgets every byte held and continues at offset start (>= head; a
 * holder that restarted while the stream went on). The buffer is kept.
 * -EINVAL if start < head. */
int common_byte_ring_restart(struct common_byte_ring *r, uint64_t start);

/* Takes capacity cap (> 0) if it holds no byte (the buffer is freed, the
 * next put allocates); -EBUSY if it holds some. */
int common_byte_ring_resize(struct common_byte_ring *r, uint64_t cap);

/* Where a reader that fell out of the ring resumes: the first chunk start
 * held when starts are kept, else (or when none is held) oldest. */
uint64_t common_byte_ring_resume_point(const struct common_byte_ring *r);

/* Moves *pos past what is no longer held (before the oldest byte: to the
 * resume point; inside a gap: to its end); returns the bytes stepped over. */
uint64_t common_byte_ring_skip_lost(const struct common_byte_ring *r, uint64_t *pos);

/* The bytes readable at pos (call common_byte_ring_skip_lost first), at
 * most max, up to the head or the next gap, as iov[0..*n) pointing into
 * the ring (valid until the next put); returns their count, 0 when
 * nothing is there. */
size_t common_byte_ring_peek(const struct common_byte_ring *r, uint64_t pos, size_t max,
			     struct iovec iov[2], int *n);

/* As common_byte_ring_peek, but copies the bytes to out. */
size_t common_byte_ring_copy_out(const struct common_byte_ring *r, uint64_t pos, void *out,
				 size_t max);

/* How many bytes a put at head may add without overwriting what a reader
 * at slowest (the slowest of them) has not read. */
uint64_t common_byte_ring_room(const struct common_byte_ring *r, uint64_t slowest);

#endif
