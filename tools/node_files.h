/*
 * node_files.h - what `shardfs init` and `shardfs node add` write for a
 * node: the ID=HOST:PORT[,zone=Z][,weight=W] argument, its certificate
 * signed by the cluster CA, its section of the cluster file and the
 * directory of files its host needs.
 */
#ifndef SHARDFS_TOOLS_NODE_FILES_H
#define SHARDFS_TOOLS_NODE_FILES_H

#include <glib.h>

struct node_arg {
	unsigned id;
	char *host;
	unsigned port;
	char *zone;	 /* NULL: none */
	unsigned weight; /* 1..1000 */
};

#define NODE_ARG_SYNTAX "ID=HOST:PORT[,zone=Z][,weight=W], ID and PORT 1..65535, W 1..1000"

/* Parses ID=HOST:PORT[,zone=Z][,weight=W] ([v6]:PORT too); FALSE if not. */
gboolean node_arg_parse(const char *arg, struct node_arg *n);
void node_arg_clear(gpointer n);

/* dir/name, freed with g_free. */
char *node_files_path(const char *dir, const char *name);
/* A new file dir/name holding data, durably; never over an existing one. */
gboolean node_files_write_new(const char *dir, const char *name, const char *data, gsize len,
			      int mode, GError **err);
gboolean node_files_private_dir(const char *path, GError **err);
/* dir/node-ID.crt and .key, signed by dir/ca.crt and dir/ca/ca.key with
 * the node's address as subject alternative name, and the [node.ID]
 * section of kf that names them. */
gboolean node_files_issue(const char *dir, GKeyFile *kf, const struct node_arg *n, GError **err);
/* DIR/hosts/WHO/ (new) with the cluster file, ca.crt and WHO's
 * certificate and key (files named BASE.crt and BASE.key in dir). */
gboolean node_files_host_dir(const char *dir, const char *who, const char *base, GError **err);

#endif
