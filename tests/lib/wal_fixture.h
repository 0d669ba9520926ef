/*
 * wal_fixture.h - the shard store on a scratch directory, for the wal
 * tests: keys named by a number, and options small enough that a test
 * fills several segments.
 */
#ifndef SHARDFS_TESTS_WAL_FIXTURE_H
#define SHARDFS_TESTS_WAL_FIXTURE_H

#include "fixture.h"
#include "wal/wal.h"

/* The key of shard number id; distinct ids give distinct keys. */
struct wal_key test_key(uint64_t id);

/* wal_options_default() on dir with 1 MiB segments, 256 KiB payloads and
 * no background compaction. */
void test_wal_options(struct wal_options *o, const char *dir);

/* Opens the store with o; fails the test unless it opens. */
struct wal *test_wal_open(const struct wal_options *o);

/* A cmocka fixture: a scratch directory with test_wal_options() on it.
 * The test opens and closes its stores; teardown removes the directory. */
struct test_wal {
	char *dir;
	struct wal_options o;
};

int test_wal_setup(void **state);
int test_wal_teardown(void **state);
/* A cmocka_unit_test() with that fixture. */
#define test_wal_unit_test(t) cmocka_unit_test_setup_teardown(t, test_wal_setup, test_wal_teardown)

#endif
