/*
 * shardfs.h - the subcommands of the shardfs binary.
 *
 * Each subcommand parses its own options with GOptionContext and returns the
 * process exit status: 0 on success, 1 on failure, 2 on a usage error.
 */
#ifndef SHARDFS_TOOLS_H
#define SHARDFS_TOOLS_H

#define SHARDFS_EXIT_FAIL 1
#define SHARDFS_EXIT_USAGE 2

int cmd_bench(int argc, char **argv);
int cmd_bench_wal(int argc, char **argv);

/* Parses argv with the entries; prints the error and returns false on a
 * usage error. */
#include <glib.h>
gboolean tools_parse_options(GOptionContext *ctx, int *argc, char ***argv);

#endif
