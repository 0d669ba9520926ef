/*
 * ring.h - placement of shards on nodes: a consistent hash ring (xxh3).
 *
 * Each node owns weight x RING_VNODES_PER_WEIGHT points on a 64-bit ring,
 * at xxh3(node id, point number). A key is placed on the nodes met first
 * walking clockwise from xxh3(key): ring_closest() returns n distinct
 * nodes, taking first one node per zone (when the cluster names zones) so
 * that the shards of one part spread over failure domains, then filling up
 * in ring order.
 *
 * Adding a node takes points only from its neighbours, so it moves about
 * 1/N of placements; removing one moves only the placements it held. The
 * ring is built once and read-only afterwards: any number of threads may
 * call ring_closest() at once.
 */
#ifndef SHARDFS_STORE_RING_H
#define SHARDFS_STORE_RING_H

#include <stddef.h>
#include <stdint.h>

/* Points per unit of weight: enough for a share within a few percent of
 * the ideal on a handful of nodes. */
#define RING_VNODES_PER_WEIGHT 512u

struct ring_member {
	uint32_t id;
	uint32_t weight; /* 0: no placements */
	const char *zone; /* NULL: a zone of its own */
};

struct ring;

/* Builds a ring of n members; -EINVAL if an id repeats or every weight is
 * 0, -ENOMEM. */
int ring_new(const struct ring_member *members, size_t n, struct ring **out);
void ring_free(struct ring *r);

/* The placement hash of shard set (object id, part number). */
uint64_t ring_key_hash(const uint8_t object_id[16], uint32_t part);

/*
 * Writes up to n distinct member ids for key into out, zones spread first;
 * returns how many (fewer than n only if the ring has fewer members).
 * Members listed in skip (nskip of them) are passed over, for a write that
 * must go around nodes known to be down.
 */
size_t ring_closest(const struct ring *r, uint64_t key, size_t n, uint32_t *out,
		    const uint32_t *skip, size_t nskip);

#endif
