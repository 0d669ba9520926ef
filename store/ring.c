/*
 * ring.c - the consistent hash ring (ring.h).
 *
 * Points are sorted by hash; a lookup is a binary search then a walk
 * clockwise that stops as soon as it has picked n members, so a placement
 * costs O(log points + walked points) and no allocation.
 */
#include "ring.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <errno.h>
#include <glib.h>
#include <stdbool.h>
#include <string.h>

#define RING_MAX_MEMBERS 1024u

struct ring_point {
	uint64_t hash;
	uint32_t member; /* index into ids[] */
};

struct ring {
	struct ring_point *points;
	size_t npoints;
	size_t nmembers;
	uint32_t *ids;	 /* member index -> node id */
	uint32_t *zones; /* member index -> zone number */
};

static int point_cmp(const void *a, const void *b)
{
	const struct ring_point *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->member < y->member ? -1 : x->member > y->member;
}

static uint64_t point_hash(uint32_t id, uint32_t point)
{
	uint32_t in[2] = {GUINT32_TO_LE(id), GUINT32_TO_LE(point)};

	return XXH3_64bits(in, sizeof(in));
}

uint64_t ring_key_hash(const uint8_t object_id[16], uint32_t part)
{
	uint8_t in[20];
	uint32_t le = GUINT32_TO_LE(part);

	memcpy(in, object_id, 16);
	memcpy(in + 16, &le, 4);
	return XXH3_64bits(in, sizeof(in));
}

/* Members without a zone each get a zone of their own. */
static void number_zones(struct ring *r, const struct ring_member *members)
{
	uint32_t next = 0;

	for (size_t i = 0; i < r->nmembers; i++) {
		r->zones[i] = UINT32_MAX;
		for (size_t j = 0; j < i && members[i].zone; j++)
			if (members[j].zone && !strcmp(members[i].zone, members[j].zone))
				r->zones[i] = r->zones[j];
		if (r->zones[i] == UINT32_MAX)
			r->zones[i] = next++;
	}
}

static int check_members(const struct ring_member *members, size_t n, size_t *npoints)
{
	*npoints = 0;
	if (n == 0 || n > RING_MAX_MEMBERS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < i; j++)
			if (members[i].id == members[j].id)
				return -EINVAL;
		if (members[i].weight > 1000)
			return -EINVAL;
		*npoints += (size_t)members[i].weight * RING_VNODES_PER_WEIGHT;
	}
	return *npoints ? 0 : -EINVAL;
}

int ring_new(const struct ring_member *members, size_t n, struct ring **out)
{
	size_t npoints, p = 0;
	int rc = check_members(members, n, &npoints);

	if (rc)
		return rc;
	struct ring *r = g_new0(struct ring, 1);
	r->nmembers = n;
	r->npoints = npoints;
	r->points = g_new(struct ring_point, npoints);
	r->ids = g_new(uint32_t, n);
	r->zones = g_new(uint32_t, n);
	number_zones(r, members);
	for (size_t i = 0; i < n; i++) {
		r->ids[i] = members[i].id;
		for (uint32_t v = 0; v < members[i].weight * RING_VNODES_PER_WEIGHT; v++)
			r->points[p++] = (struct ring_point){point_hash(members[i].id, v), (uint32_t)i};
	}
	qsort(r->points, npoints, sizeof(*r->points), point_cmp);
	*out = r;
	return 0;
}

void ring_free(struct ring *r)
{
	if (!r)
		return;
	g_free(r->points);
	g_free(r->ids);
	g_free(r->zones);
	g_free(r);
}

static size_t first_point_at(const struct ring *r, uint64_t key)
{
	size_t lo = 0, hi = r->npoints;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->points[mid].hash < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == r->npoints ? 0 : lo;
}

static bool is_skipped(uint32_t id, const uint32_t *skip, size_t nskip)
{
	for (size_t i = 0; i < nskip; i++)
		if (skip[i] == id)
			return true;
	return false;
}

/* The state of one walk around the ring. */
struct walk {
	bool *seen;	  /* by member */
	bool *zone_used;  /* by zone number */
	uint32_t *order;  /* distinct members met, in ring order */
	bool *picked;	  /* by position in order */
	size_t nseen;
};

size_t ring_closest(const struct ring *r, uint64_t key, size_t n, uint32_t *out,
		    const uint32_t *skip, size_t nskip)
{
	struct walk w = {
		.seen = g_newa(bool, r->nmembers),
		.zone_used = g_newa(bool, r->nmembers),
		.order = g_newa(uint32_t, r->nmembers),
		.picked = g_newa(bool, r->nmembers),
	};
	size_t start = first_point_at(r, key), k = 0;

	memset(w.seen, 0, r->nmembers * sizeof(bool));
	memset(w.zone_used, 0, r->nmembers * sizeof(bool));
	memset(w.picked, 0, r->nmembers * sizeof(bool));
	/* First pass: one member per zone, in ring order. */
	for (size_t i = 0; i < r->npoints && k < n; i++) {
		uint32_t mem = r->points[(start + i) % r->npoints].member;

		if (w.seen[mem])
			continue;
		w.seen[mem] = true;
		if (is_skipped(r->ids[mem], skip, nskip))
			continue;
		w.order[w.nseen] = mem;
		if (!w.zone_used[r->zones[mem]]) {
			w.zone_used[r->zones[mem]] = true;
			w.picked[w.nseen] = true;
			out[k++] = r->ids[mem];
		}
		w.nseen++;
	}
	/* Then the members passed over for their zone, in ring order. */
	for (size_t i = 0; i < w.nseen && k < n; i++)
		if (!w.picked[i])
			out[k++] = r->ids[w.order[i]];
	return k;
}
