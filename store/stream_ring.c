/*
 * stream_ring.c - a client's local ring of a stream (see stream_ring.h).
 */
#include "stream_ring.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

void stream_ring_init(struct stream_ring *r, uint64_t cap, uint64_t start)
{
	*r = (struct stream_ring){.cap = cap, .oldest = start, .head = start};
}

void stream_ring_fini(struct stream_ring *r)
{
	g_free(r->buf);
	g_free(r->gaps);
	*r = (struct stream_ring){0};
}

static void gap_add(struct stream_ring *r, uint64_t from, uint64_t to)
{
	if (r->ngaps == r->gaps_cap) {
		r->gaps_cap = r->gaps_cap ? 2 * r->gaps_cap : 4;
		r->gaps = g_renew(struct stream_gap, r->gaps, r->gaps_cap);
	}
	r->gaps[r->ngaps++] = (struct stream_gap){from, to};
}

static void forget_old_gaps(struct stream_ring *r)
{
	size_t n = 0;

	while (n < r->ngaps && r->gaps[n].to <= r->oldest)
		n++;
	if (n == 0)
		return;
	memmove(r->gaps, r->gaps + n, (r->ngaps - n) * sizeof(*r->gaps));
	r->ngaps -= n;
}

int stream_ring_put(struct stream_ring *r, uint64_t first, const void *buf, size_t n)
{
	if (first < r->head || n > r->cap)
		return -EINVAL;
	if (n && !r->buf && !(r->buf = g_try_malloc(r->cap)))
		return -ENOMEM; /* a ring may be up to 1 GiB */
	if (first > r->head) {
		gap_add(r, r->head, first);
		r->head = first;
	}
	size_t at = (size_t)(r->head % r->cap), part = MIN(n, (size_t)(r->cap - at));
	memcpy(r->buf + at, buf, part);
	memcpy(r->buf, (const uint8_t *)buf + part, n - part);
	r->head += n;
	if (r->head - r->oldest > r->cap)
		r->oldest = r->head - r->cap;
	forget_old_gaps(r);
	return 0;
}

uint64_t stream_ring_skip_lost(const struct stream_ring *r, uint64_t *pos)
{
	uint64_t lost = 0;

	if (*pos < r->oldest) {
		lost += r->oldest - *pos;
		*pos = r->oldest;
	}
	for (size_t i = 0; i < r->ngaps; i++)
		if (r->gaps[i].from <= *pos && *pos < r->gaps[i].to) {
			lost += r->gaps[i].to - *pos;
			*pos = r->gaps[i].to;
		}
	return lost;
}

static uint64_t next_gap(const struct stream_ring *r, uint64_t pos)
{
	for (size_t i = 0; i < r->ngaps; i++)
		if (r->gaps[i].from > pos)
			return r->gaps[i].from;
	return UINT64_MAX;
}

size_t stream_ring_peek(const struct stream_ring *r, uint64_t pos, size_t max,
			struct iovec iov[2], int *n)
{
	*n = 0;
	if (pos < r->oldest || pos >= r->head)
		return 0;
	uint64_t end = MIN(MIN(r->head, pos + max), next_gap(r, pos));
	size_t len = (size_t)(end - pos), at = (size_t)(pos % r->cap);
	size_t first = MIN(len, (size_t)(r->cap - at));

	iov[0] = (struct iovec){r->buf + at, first};
	iov[1] = (struct iovec){r->buf, len - first};
	*n = len > first ? 2 : 1;
	return len;
}

uint64_t stream_ring_room(const struct stream_ring *r, uint64_t slowest)
{
	uint64_t unread = r->head - MIN(r->head, MAX(slowest, r->oldest));

	return unread >= r->cap ? 0 : r->cap - unread;
}
