/*
 * meta_fixture.h - the metadata database of a test, on the engine the
 * run asks for, and namespace steps that a metadata test expects to
 * succeed: each asserts the call returned 0 and gives the new inode.
 * Owner 1, group 2; mode 0755 for directories, 0644 for files.
 */
#ifndef SHARDFS_TESTS_META_FIXTURE_H
#define SHARDFS_TESTS_META_FIXTURE_H

#include "store/meta/meta.h"

#include <stdbool.h>
#include <stdint.h>

/* Whether this run's databases are PostgreSQL's: SHARDFS_TEST_PG names a
 * server's maintenance database (tests/lib/with_postgres.sh). */
bool test_meta_is_pg(void);
/* The URL of a new database without schema for one test: a file in dir,
 * or a database of its own on the SHARDFS_TEST_PG server. */
char *test_meta_url(const char *dir);
/* Drops a database test_meta_url made on a server (a file goes with its
 * directory). */
void test_meta_url_drop(const char *url);
/* Runs SQL on the database of url behind the engine's back (to make an
 * older schema, or damage); a failure fails the test. */
void test_meta_raw_exec(const char *url, const char *sql);

uint64_t test_mkdir_ok(struct meta *m, uint64_t parent, const char *name);
uint64_t test_create_ok(struct meta *m, uint64_t parent, const char *name);

#endif
