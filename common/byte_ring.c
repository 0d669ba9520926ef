/*
 * byte_ring.c - a ring of a stream's bytes by absolute offset (see
 * byte_ring.h).
 *
 * Gaps and chunk starts are both kept ascending and both forgotten as
 * oldest passes them, so neither grows with the life of the stream: gaps
 * are bounded by the puts the ring holds, starts by starts_max (the oldest
 * start is dropped when full, which only makes a resume land later).
 */
#include "byte_ring.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#define STARTS_FIRST_CAP 64u

void common_byte_ring_init(struct common_byte_ring *r, uint64_t cap, uint64_t start)
{
	*r = (struct common_byte_ring){.cap = cap, .oldest = start, .head = start};
}

void common_byte_ring_fini(struct common_byte_ring *r)
{
	g_free(r->buf);
	g_free(r->gaps);
	g_free(r->starts);
	*r = (struct common_byte_ring){0};
}

void common_byte_ring_keep_starts(struct common_byte_ring *r, size_t max)
{
	r->starts_max = max;
}

/* ---- gaps ---- */

static void gap_add(struct common_byte_ring *r, uint64_t from, uint64_t to)
{
	if (r->ngaps == r->gaps_cap) {
		r->gaps_cap = r->gaps_cap ? 2 * r->gaps_cap : 4;
		r->gaps = g_renew(struct common_byte_ring_gap, r->gaps, r->gaps_cap);
	}
	r->gaps[r->ngaps++] = (struct common_byte_ring_gap){from, to};
}

static void forget_old_gaps(struct common_byte_ring *r)
{
	size_t n = 0;

	while (n < r->ngaps && r->gaps[n].to <= r->oldest)
		n++;
	if (n == 0)
		return;
	memmove(r->gaps, r->gaps + n, (r->ngaps - n) * sizeof(*r->gaps));
	r->ngaps -= n;
}

static uint64_t next_gap(const struct common_byte_ring *r, uint64_t pos)
{
	for (size_t i = 0; i < r->ngaps; i++)
		if (r->gaps[i].from > pos)
			return r->gaps[i].from;
	return UINT64_MAX;
}

/* ---- chunk starts ---- */

static uint64_t start_at(const struct common_byte_ring *r, size_t i)
{
	return r->starts[(r->starts_first + i) % r->starts_cap];
}

static void drop_first_start(struct common_byte_ring *r)
{
	r->starts_first = (r->starts_first + 1) % r->starts_cap;
	r->starts_len--;
}

static void grow_starts(struct common_byte_ring *r)
{
	size_t cap = r->starts_cap ? r->starts_cap * 2 : STARTS_FIRST_CAP;
	uint64_t *n;

	cap = MIN(cap, r->starts_max);
	n = g_new(uint64_t, cap);
	for (size_t i = 0; i < r->starts_len; i++)
		n[i] = start_at(r, i);
	g_free(r->starts);
	r->starts = n;
	r->starts_cap = cap;
	r->starts_first = 0;
}

static void remember_start(struct common_byte_ring *r, uint64_t pos)
{
	if (r->starts_len == r->starts_cap && r->starts_cap < r->starts_max)
		grow_starts(r);
	if (r->starts_len == r->starts_cap) /* full: forget the oldest */
		drop_first_start(r);
	r->starts[(r->starts_first + r->starts_len) % r->starts_cap] = pos;
	r->starts_len++;
}

static void forget_starts_before(struct common_byte_ring *r, uint64_t pos)
{
	while (r->starts_len && start_at(r, 0) < pos)
		drop_first_start(r);
}

uint64_t common_byte_ring_resume_point(const struct common_byte_ring *r)
{
	return r->starts_len ? start_at(r, 0) : r->oldest;
}

/* ---- bytes ---- */

int common_byte_ring_put(struct common_byte_ring *r, uint64_t first, const void *buf, size_t n)
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
	if (n && r->starts_max)
		remember_start(r, first);
	forget_starts_before(r, r->oldest);
	return 0;
}

int common_byte_ring_restart(struct common_byte_ring *r, uint64_t start)
{
	if (start < r->head)
		return -EINVAL;
	r->head = r->oldest = start;
	r->ngaps = 0;
	forget_starts_before(r, start);
	return 0;
}

int common_byte_ring_resize(struct common_byte_ring *r, uint64_t cap)
{
	if (cap == r->cap)
		return 0;
	if (r->head != r->oldest)
		return -EBUSY;
	g_clear_pointer(&r->buf, g_free);
	r->cap = cap;
	return 0;
}

uint64_t common_byte_ring_skip_lost(const struct common_byte_ring *r, uint64_t *pos)
{
	uint64_t lost = 0;

	if (*pos < r->oldest) {
		uint64_t resume = common_byte_ring_resume_point(r);

		lost += resume - *pos;
		*pos = resume;
	}
	for (size_t i = 0; i < r->ngaps; i++)
		if (r->gaps[i].from <= *pos && *pos < r->gaps[i].to) {
			lost += r->gaps[i].to - *pos;
			*pos = r->gaps[i].to;
		}
	return lost;
}

size_t common_byte_ring_peek(const struct common_byte_ring *r, uint64_t pos, size_t max,
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

size_t common_byte_ring_copy_out(const struct common_byte_ring *r, uint64_t pos, void *out,
				 size_t max)
{
	struct iovec iov[2];
	int n;
	size_t len = common_byte_ring_peek(r, pos, max, iov, &n);

	size_t at = 0;

	for (int i = 0; i < n; i++) {
		memcpy((uint8_t *)out + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	return len;
}

uint64_t common_byte_ring_room(const struct common_byte_ring *r, uint64_t slowest)
{
	uint64_t unread = r->head - MIN(r->head, MAX(slowest, r->oldest));

	return unread >= r->cap ? 0 : r->cap - unread;
}
