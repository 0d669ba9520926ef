/*
 * wal_fixture.c - see wal_fixture.h.
 */
#include "wal_fixture.h"

#include <string.h>

struct wal_key test_key(uint64_t id)
{
	struct wal_key k = {.part = (uint32_t)(id >> 16), .shard = (uint16_t)id};

	memcpy(k.object_id, "test-object-", 12);
	memcpy(k.object_id + 12, &id, 4);
	return k;
}

void test_wal_options(struct wal_options *o, const char *dir)
{
	wal_options_default(o);
	o->dir = dir;
	o->segment_size = 1u << 20;
	o->max_payload = 256u << 10;
	o->background_compaction = false;
}
