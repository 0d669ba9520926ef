/*
 * client.h - what the client subcommands (put, get, cat, ls, rm, repair)
 * open: the store of a cluster file and its metadata engine.
 */
#ifndef SHARDFS_TOOLS_CLIENT_H
#define SHARDFS_TOOLS_CLIENT_H

#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

struct store;
struct meta;

struct client {
	struct store *store;
	struct meta *meta;
};

/* Opens the cluster that config names (a cluster file or directory; NULL:
 * $SHARDFS_CONF, see tools_cluster_file) and its metadata; 0, or the exit
 * status after printing why not, prefixed with cmd. */
int client_open(struct client *c, const char *cmd, const char *config);
void client_close(struct client *c);

/* A progress bar on stderr, for a terminal (on): "WHAT done / total
 * parts", redrawn in place at most 5 times a second by tools_bar_show
 * (a store_scrub_progress_fn); the caller clears the line at the end. */
struct tools_bar {
	bool on;
	const char *what;
	gint64 start, shown;
};
void tools_bar_show(void *bar, uint64_t done, uint64_t total);

/* Prints b's object, indented, on stdout, and frees b (the --json of the
 * commands that report). */
void tools_print_json(JsonBuilder *b);

#endif
