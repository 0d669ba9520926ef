/*
 * meta_fixture.c - namespace steps that must succeed (meta_fixture.h).
 */
#include "meta_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

uint64_t test_mkdir_ok(struct meta *m, uint64_t parent, const char *name)
{
	struct meta_attr a;

	assert_int_equal(meta_mkdir(m, parent, name, 0755, 1, 2, &a), 0);
	return a.ino;
}

uint64_t test_create_ok(struct meta *m, uint64_t parent, const char *name)
{
	struct meta_attr a;

	assert_int_equal(meta_create(m, parent, name, 0644, 1, 2, true, &a), 0);
	return a.ino;
}
