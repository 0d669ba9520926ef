/*
 * fixture.c - see fixture.h.
 */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *test_mkdtemp(void)
{
	GError *err = NULL;
	char *dir = g_dir_make_tmp("shardfs-test-XXXXXX", &err);

	if (!dir) {
		fprintf(stderr, "cannot make a scratch directory: %s\n", err->message);
		abort();
	}
	return dir;
}

void test_rmdir(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;

	while (d && (name = g_dir_read_name(d))) {
		char *path = g_build_filename(dir, name, NULL);

		if (g_file_test(path, G_FILE_TEST_IS_DIR))
			test_rmdir(path);
		else
			unlink(path);
		g_free(path);
	}
	if (d)
		g_dir_close(d);
	rmdir(dir);
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

void test_payload(uint8_t *buf, size_t len, uint64_t id, uint64_t version)
{
	uint64_t state = id * 1000003u + (len >= 16 ? version : 0);
	size_t i = 0;

	if (len >= 16) {
		memcpy(buf, &id, 8);
		memcpy(buf + 8, &version, 8);
		i = 16;
	}
	for (; i < len; i += 8) {
		uint64_t v = splitmix(&state);

		memcpy(buf + i, &v, MIN((size_t)8, len - i));
	}
}

bool test_payload_check(const uint8_t *buf, size_t len, uint64_t id, uint64_t *version)
{
	uint64_t got_id = id, v = 0;
	bool ok;

	if (len >= 16) {
		memcpy(&got_id, buf, 8);
		memcpy(&v, buf + 8, 8);
	}
	if (got_id != id)
		return false;
	uint8_t *want = g_malloc(len ? len : 1);

	test_payload(want, len, id, v);
	ok = memcmp(want, buf, len) == 0;
	g_free(want);
	*version = v;
	return ok;
}
