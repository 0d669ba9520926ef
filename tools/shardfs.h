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

#include <glib.h>
#include <stdint.h>

int cmd_init(int argc, char **argv);
int cmd_node(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_up(int argc, char **argv);
int cmd_down(int argc, char **argv);
int cmd_put(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_rm(int argc, char **argv);

/*
 * Parses a subcommand's options (argv[0] is the subcommand's name); what is
 * not an option stays in argv, and argc is updated through the pointer
 * passed as argc_io when given. Prints the error and returns FALSE on a
 * usage error (--help prints and exits).
 */
gboolean tools_parse_args(int *argc, char ***argv, const GOptionEntry *entries,
			  const char *summary);
#define tools_parse(argc, argv, entries, summary) tools_parse_args(&(argc), &(argv), entries, summary)

#endif
