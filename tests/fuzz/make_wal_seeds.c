/*
 * make_wal_seeds.c - writes a small real store into DIR (argv[1]) so that
 * its segment and checkpoint files seed the fuzzer with valid structure.
 */
#include "wal/wal.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct wal_options o;
	struct wal *w;
	static uint8_t big[70000];
	struct wal_key k = {.part = 1};

	if (argc != 2) {
		fprintf(stderr, "usage: make_wal_seeds DIR\n");
		return 2;
	}
	wal_options_default(&o);
	o.dir = argv[1];
	o.background_compaction = 0;
	if (wal_open(&o, &w) < 0)
		return 1;
	memset(big, 'x', sizeof(big));
	memcpy(k.object_id, "seed-object-0001", 16);
	wal_put(w, &k, "small", 5);
	k.shard = 1;
	wal_put(w, &k, big, sizeof(big));
	k.shard = 2;
	wal_put(w, &k, "", 0);
	wal_delete(w, &k);
	wal_close(w);
	return 0;
}
