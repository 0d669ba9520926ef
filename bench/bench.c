/*
 * bench.c - `shardfs bench NAME`: benchmarks that print a table and, with
 * --json, one JSON object of their figures.
 */
#define G_LOG_DOMAIN "shardfs"

#include "bench.h"
#include "tools/cli_args.h"

#include <stdio.h>
#include <string.h>

struct bench {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

static const struct bench benches[] = {
	{"wal", "durable appends and reads of the shard store vs dd on the same disk", cmd_bench_wal},
	{"net", "shard put/get over QUIC to a node on loopback vs raw TCP", cmd_bench_net},
	{"store", "object put/get on local 3- and 6-node clusters vs the transport", cmd_bench_store},
	{"meta", "metadata creates, lookups and readdir on a fresh SQLite database", cmd_bench_meta},
	{"fs", "dd, cp, tar and ls -l through a mount vs a local directory and put/get", cmd_bench_fs},
	{"stream", "stream fan-out to 1-64 readers on two mounts vs local pipes", cmd_bench_stream},
	{"repair", "a wiped node rebuilt, vs the transport's put rate and clients' writes",
	 cmd_bench_repair},
};

int cmd_bench(int argc, char **argv)
{
	if (argc >= 2) {
		for (size_t i = 0; i < G_N_ELEMENTS(benches); i++)
			if (!strcmp(argv[1], benches[i].name))
				return benches[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr, "usage: shardfs bench NAME [OPTIONS]\n\nbenchmarks:\n");
	for (size_t i = 0; i < G_N_ELEMENTS(benches); i++)
		fprintf(stderr, "  %-8s %s\n", benches[i].name, benches[i].summary);
	return SHARDFS_EXIT_USAGE;
}
