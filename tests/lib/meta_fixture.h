/*
 * meta_fixture.h - namespace steps that a metadata test expects to
 * succeed: each asserts the call returned 0 and gives the new inode.
 * Owner 1, group 2; mode 0755 for directories, 0644 for files.
 */
#ifndef SHARDFS_TESTS_META_FIXTURE_H
#define SHARDFS_TESTS_META_FIXTURE_H

#include "store/meta/meta.h"

#include <stdint.h>

uint64_t test_mkdir_ok(struct meta *m, uint64_t parent, const char *name);
uint64_t test_create_ok(struct meta *m, uint64_t parent, const char *name);

#endif
