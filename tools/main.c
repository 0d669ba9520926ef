/*
 * main.c - the shardfs command: one binary, one subcommand per task.
 */
#define G_LOG_DOMAIN "shardfs"

#include "bench/bench.h"
#include "shardfs.h"

#include <stdio.h>
#include <string.h>

struct command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("shardfs %s\n", SHARDFS_VERSION);
	return 0;
}

static const struct command commands[] = {
	{"init", "create a cluster: CA, certificates, cluster file", cmd_init},
	{"node", "run a storage node daemon; node add|list|drain|remove: membership", cmd_node},
	{"status", "show every node of a cluster", cmd_status},
	{"up", "run a local 3-node cluster with a mount (./shardfs-local)", cmd_up},
	{"down", "unmount and stop what 'shardfs up' started", cmd_down},
	{"mount", "mount the cluster's files on a directory", cmd_mount},
	{"put", "store a file (or stdin) in the cluster", cmd_put},
	{"get", "copy a file out of the cluster", cmd_get},
	{"cat", "print files of the cluster", cmd_cat},
	{"ls", "list a directory of the cluster", cmd_ls},
	{"rm", "remove files of the cluster", cmd_rm},
	{"repair", "rebuild the shards that writes with a node down left missing", cmd_repair},
	{"rebalance", "move shards to where the ring places them (after node add or drain)",
	 cmd_rebalance},
	{"scrub", "check every shard against the manifests: mark missing ones for repair, delete orphans",
	 cmd_scrub},
	{"meta", "check the namespace, or move it into another metadata database", cmd_meta},
	{"bench", "measure throughput against this machine's own limits", cmd_bench},
	{"version", "print the version", cmd_version},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: shardfs COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'shardfs COMMAND --help' tells more.\n");
}

int main(int argc, char **argv)
{
	g_autofree char *self = g_path_get_basename(argv[0]);

	if (!strcmp(self, "mount.shardfs")) /* mount(8): mount.shardfs SPEC DIR [-o OPTS] */
		return cmd_mount(argc, argv);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? SHARDFS_EXIT_USAGE : 0;
	}
	if (!strcmp(argv[1], "--version"))
		return cmd_version(argc, argv);
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "shardfs: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return SHARDFS_EXIT_USAGE;
}
