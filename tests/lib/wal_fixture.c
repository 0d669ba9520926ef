/*
 * wal_fixture.c - see wal_fixture.h.
 */
#include "wal_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

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

struct wal *test_wal_open(const struct wal_options *o)
{
	struct wal *w = NULL;

	assert_int_equal(wal_open(o, &w), 0);
	return w;
}

int test_wal_setup(void **state)
{
	struct test_wal *f = g_new0(struct test_wal, 1);

	f->dir = test_mkdtemp();
	test_wal_options(&f->o, f->dir);
	*state = f;
	return 0;
}

int test_wal_teardown(void **state)
{
	struct test_wal *f = *state;

	test_rmdir(f->dir);
	g_free(f->dir);
	g_free(f);
	return 0;
}
