/*
 * shardfs.h - the subcommands of the shardfs binary.
 *
 * Each returns the process exit status (cli_args.h) and parses its options
 * with tools_parse.
 */
#ifndef SHARDFS_TOOLS_H
#define SHARDFS_TOOLS_H

#include "cli_args.h"

#include <glib.h>
#include <stdint.h>

int cmd_init(int argc, char **argv);
int cmd_node(int argc, char **argv);
/* shardfs node add|list|drain|remove (argv[0] the verb). */
gboolean node_admin_verb(const char *arg);
int cmd_node_admin(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_up(int argc, char **argv);
int cmd_down(int argc, char **argv);
int cmd_put(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_repair(int argc, char **argv);
int cmd_scrub(int argc, char **argv);
int cmd_rebalance(int argc, char **argv);
int cmd_meta(int argc, char **argv);

#endif
