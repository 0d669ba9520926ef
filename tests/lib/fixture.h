/*
 * fixture.h - what every test of the project may need: scratch
 * directories and self-describing payloads. Topic fixtures sit next to it
 * in tests/lib (wal_fixture.h, faultio.h, crash_model.h, node_fixture.h).
 */
#ifndef SHARDFS_TESTS_FIXTURE_H
#define SHARDFS_TESTS_FIXTURE_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A new empty directory under $TMPDIR; test_rmdir removes it and its files. */
char *test_mkdtemp(void);
void test_rmdir(const char *dir);

/* Payload of a given version of key id: 16 bytes naming (id, version) when
 * len allows, then bytes derived from both. */
void test_payload(uint8_t *buf, size_t len, uint64_t id, uint64_t version);
/* True if buf is exactly some version's payload of key id; sets *version
 * (0 when len < 16 and the payload is the version-0 form). */
bool test_payload_check(const uint8_t *buf, size_t len, uint64_t id, uint64_t *version);

#endif
