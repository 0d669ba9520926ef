/*
 * cli_args.h - what every subcommand of the shardfs binary shares, the
 * benches' modes included: the exit statuses and the option parser.
 *
 * A subcommand parses its own options with GOptionContext and returns the
 * process exit status: 0 on success, 1 on failure, 2 on a usage error.
 */
#ifndef SHARDFS_TOOLS_CLI_ARGS_H
#define SHARDFS_TOOLS_CLI_ARGS_H

#include <glib.h>
#include <stdint.h>

#define SHARDFS_EXIT_FAIL 1
#define SHARDFS_EXIT_USAGE 2
/* shardfs status: every node up, but parts with shards missing. */
#define SHARDFS_EXIT_DEGRADED 3

/*
 * Parses a subcommand's options (argv[0] is the subcommand's name); what is
 * not an option stays in argv, and argc is updated through the pointer
 * passed as argc_io when given. Prints the error and returns FALSE on a
 * usage error (--help prints and exits).
 */
gboolean tools_parse_args(int *argc, char ***argv, const GOptionEntry *entries,
			  const char *summary);
#define tools_parse(argc, argv, entries, summary) tools_parse_args(&(argc), &(argv), entries, summary)

/* bytes in IEC units ("1.5 MiB", "300 bytes"), g_free'd by the caller;
 * with a plain space, where GLib puts a no-break space that table columns
 * would count as two bytes. */
char *tools_iec_size(uint64_t bytes);

/*
 * The cluster file a command is told to use, the same way for every
 * command: what names it (-c, or the one argument that stands for the
 * cluster) or else $SHARDFS_CONF, each either the cluster file itself or
 * a cluster directory holding cluster.conf (as `shardfs init --dir` and
 * `shardfs up` make). 0 with *out the path of an existing regular file
 * (the caller frees it); else one line saying why is printed, prefixed
 * with cmd, and the exit status returned: SHARDFS_EXIT_USAGE when nothing
 * names a cluster, SHARDFS_EXIT_FAIL when what does is no cluster file.
 */
int tools_cluster_file(const char *cmd, const char *named, char **out);

#endif
