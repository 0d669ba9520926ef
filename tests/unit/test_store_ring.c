/*
 * test_store_ring.c - placement properties of the consistent hash ring:
 * balance, little movement when a node joins or leaves, distinct nodes and
 * zones.
 */
#include "store/ring.h"

#include <glib.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#define NKEYS 100000u

static struct ring *ring_of(uint32_t first, uint32_t n, const char *const *zones)
{
	struct ring_member mem[16];
	struct ring *r = NULL;

	for (uint32_t i = 0; i < n; i++)
		mem[i] = (struct ring_member){first + i, 1, zones ? zones[i] : NULL};
	assert_int_equal(ring_new(mem, n, &r), 0);
	return r;
}

static uint64_t key_of(uint32_t i)
{
	uint8_t oid[16] = {0};

	memcpy(oid, &i, sizeof(i));
	return ring_key_hash(oid, i % 7);
}

/* Over 100,000 keys on 6 equal nodes, each node's share of placements is
 * within 10% of the mean, for single placements and for sets of 3. */
static void test_balance(void **state)
{
	(void)state;
	struct ring *r = ring_of(1, 6, NULL);

	for (size_t n = 1; n <= 3; n += 2) {
		unsigned count[7] = {0};
		uint32_t out[3];

		for (uint32_t i = 0; i < NKEYS; i++) {
			assert_int_equal(ring_closest(r, key_of(i), n, out, NULL, 0), n);
			for (size_t j = 0; j < n; j++)
				count[out[j]]++;
		}
		double mean = (double)NKEYS * n / 6;
		for (int id = 1; id <= 6; id++) {
			printf("n=%zu node %d: %.3f of mean\n", n, id, count[id] / mean);
			assert_true(count[id] > 0.9 * mean && count[id] < 1.1 * mean);
		}
	}
	ring_free(r);
}

/* Counts placements (key, node) of `before` that `after` no longer has. */
static unsigned moved(struct ring *before, struct ring *after, size_t n)
{
	unsigned m = 0;

	for (uint32_t i = 0; i < NKEYS; i++) {
		uint32_t a[4], b[4];
		size_t na = ring_closest(before, key_of(i), n, a, NULL, 0);
		size_t nb = ring_closest(after, key_of(i), n, b, NULL, 0);

		for (size_t x = 0; x < na; x++) {
			bool kept = false;

			for (size_t y = 0; y < nb; y++)
				kept |= a[x] == b[y];
			m += !kept;
		}
	}
	return m;
}

/* A 7th node moves at most 1.3 times the ideal 1/7 of placements. */
static void test_add_node_moves_little(void **state)
{
	(void)state;
	struct ring *six = ring_of(1, 6, NULL), *seven = ring_of(1, 7, NULL);

	for (size_t n = 1; n <= 3; n++) {
		double frac = (double)moved(six, seven, n) / (NKEYS * n);

		printf("add: n=%zu moved %.4f (ideal %.4f)\n", n, frac, 1.0 / 7);
		assert_true(frac <= 1.3 / 7);
	}
	ring_free(six);
	ring_free(seven);
}

/* Removing a node moves only the placements it held. */
static void test_remove_node_moves_only_its_own(void **state)
{
	(void)state;
	struct ring *six = ring_of(1, 6, NULL), *five = ring_of(1, 5, NULL);

	for (uint32_t i = 0; i < NKEYS; i++) {
		uint32_t a[3], b[3];

		ring_closest(six, key_of(i), 3, a, NULL, 0);
		ring_closest(five, key_of(i), 3, b, NULL, 0);
		for (size_t x = 0; x < 3; x++) {
			bool kept = false;

			for (size_t y = 0; y < 3; y++)
				kept |= a[x] == b[y];
			assert_true(kept || a[x] == 6);
		}
	}
	ring_free(six);
	ring_free(five);
}

/* Sets are distinct nodes, spread over distinct zones first, and skip
 * what the caller names. */
static void test_distinct_zones_and_skip(void **state)
{
	(void)state;
	static const char *const zones[6] = {"a", "a", "b", "b", "c", "c"};
	struct ring *r = ring_of(1, 6, zones);

	for (uint32_t i = 0; i < 2000; i++) {
		uint32_t out[6], skip = 1 + i % 6;
		bool zone_seen[3] = {false};

		assert_int_equal(ring_closest(r, key_of(i), 6, out, NULL, 0), 6);
		for (size_t x = 0; x < 3; x++) {
			unsigned z = (out[x] - 1) / 2;

			assert_false(zone_seen[z]); /* first three: one per zone */
			zone_seen[z] = true;
		}
		for (size_t x = 0; x < 6; x++)
			for (size_t y = 0; y < x; y++)
				assert_int_not_equal(out[x], out[y]);
		assert_int_equal(ring_closest(r, key_of(i), 6, out, &skip, 1), 5);
		for (size_t x = 0; x < 5; x++)
			assert_int_not_equal(out[x], skip);
	}
	ring_free(r);
}

/* Bad member lists are refused. */
static void test_bad_members(void **state)
{
	(void)state;
	struct ring_member dup[2] = {{1, 1, NULL}, {1, 1, NULL}}, none[1] = {{1, 0, NULL}};
	struct ring *r = NULL;

	assert_int_equal(ring_new(dup, 2, &r), -EINVAL);
	assert_int_equal(ring_new(none, 1, &r), -EINVAL);
	assert_int_equal(ring_new(dup, 0, &r), -EINVAL);
	assert_null(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_balance),
		cmocka_unit_test(test_add_node_moves_little),
		cmocka_unit_test(test_remove_node_moves_only_its_own),
		cmocka_unit_test(test_distinct_zones_and_skip),
		cmocka_unit_test(test_bad_members),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
