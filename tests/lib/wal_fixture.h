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

#endif
