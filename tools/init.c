/*
 * init.c - `shardfs init`: a new cluster's CA, certificates and cluster file.
 *
 *   shardfs init --dir DIR --node ID=HOST:PORT[,zone=Z][,weight=W] [--node ...]
 *                [--ec K+M] [--meta URL]
 *
 * Writes DIR/ca.crt, DIR/node-ID.crt + .key for each node (its address as
 * subject alternative name), DIR/client.crt + .key, and DIR/cluster.conf,
 * which is what this host needs to run and use the whole cluster. The CA's
 * private key goes apart, into DIR/ca/ (mode 0700): only init and the
 * commands that sign certificates read it, and no host but this one needs
 * it. What each other host needs is written again into a directory of its
 * own, so that copying one never copies a key that host must not have:
 * DIR/hosts/node-ID/ (the cluster file, ca.crt and that node's certificate
 * and key) and DIR/hosts/client/ (the cluster file, ca.crt and the client
 * certificate and key, for mount hosts). Private keys get mode 0600, the
 * directories holding them 0700. An existing cluster in DIR is never
 * overwritten: init refuses and changes nothing.
 */
#define G_LOG_DOMAIN "shardfs"

#include "net/net.h"
#include "node_files.h"
#include "store/meta/meta.h"
#include "shardfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static gboolean write_conf(const char *dir, GKeyFile *kf, GError **err)
{
	gsize len;
	char *data = g_key_file_to_data(kf, &len, NULL);
	gboolean ok = node_files_write_new(dir, "cluster.conf", data, len, 0644, err);

	g_free(data);
	return ok;
}

static gboolean write_host_dirs(const char *dir, GArray *nodes, GError **err)
{
	gboolean ok = node_files_host_dir(dir, "client", "client", err);

	for (guint i = 0; ok && i < nodes->len; i++) {
		char *base = g_strdup_printf("node-%u", g_array_index(nodes, struct node_arg, i).id);

		ok = node_files_host_dir(dir, base, base, err);
		g_free(base);
	}
	return ok;
}

/* The schema of a new namespace. An SQLite file already there (init run
 * again) is kept; a server's database that holds one is another
 * cluster's, and refused. */
static gboolean make_meta(const char *url, const char *id, GError **err)
{
	int rc = meta_create_db(url, getuid(), getgid());
	struct meta *m;

	if (rc == 0 && (rc = meta_open(url, &m)) == 0) {
		rc = meta_cluster_id_set(m, id);
		meta_close(m);
	}
	bool sqlite = g_str_has_prefix(url, "sqlite://");
	g_autofree char *safe = meta_url_safe(url);

	if (rc == 0 || (rc == -EEXIST && sqlite))
		return TRUE;
	if (rc == -EEXIST)
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_EXIST,
			    "the metadata database %s already holds a shardfs namespace"
			    " (another cluster's?); give an empty database", safe);
	else
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED,
			    "cannot create the metadata database %s: %s", safe, meta_open_reason(rc));
	return FALSE;
}

static gboolean make_cluster(const char *dir, GArray *nodes, const char *ec, const char *meta,
			     GError **err)
{
	char *ca = node_files_path(dir, "ca.crt"), *ca_dir = node_files_path(dir, "ca");
	char *ca_key = node_files_path(ca_dir, "ca.key");
	char *cc = node_files_path(dir, "client.crt"), *ck = node_files_path(dir, "client.key");
	GKeyFile *kf = g_key_file_new();
	char *meta_url = meta ? g_strdup(meta) : g_strconcat("sqlite://", dir, "/meta.db", NULL);
	bool sqlite = g_str_has_prefix(meta_url, "sqlite://");
	g_autofree char *id = g_uuid_string_random();
	/* a server's database first: nothing is written if it is refused */
	gboolean ok = (sqlite || make_meta(meta_url, id, err)) && node_files_private_dir(ca_dir, err) &&
		      net_pki_create_ca(ca, ca_key, err) &&
		      net_pki_issue(ca, ca_key, "shardfs client", NULL, FALSE, cc, ck, err);

	g_key_file_set_string(kf, "cluster", "ca", "ca.crt");
	g_key_file_set_string(kf, "cluster", "cert", "client.crt");
	g_key_file_set_string(kf, "cluster", "key", "client.key");
	g_key_file_set_string(kf, "cluster", "ec", ec);
	g_key_file_set_int64(kf, "cluster", "part_size", 8 << 20);
	g_key_file_set_string(kf, "cluster", "meta", meta_url);
	g_key_file_set_string(kf, "cluster", "id", id);
	for (guint i = 0; ok && i < nodes->len; i++)
		ok = node_files_issue(dir, kf, &g_array_index(nodes, struct node_arg, i), err);
	ok = ok && write_conf(dir, kf, err) && write_host_dirs(dir, nodes, err);
	ok = ok && (!sqlite || make_meta(meta_url, id, err));
	g_key_file_free(kf);
	g_free(meta_url);
	g_free(ca);
	g_free(ca_key);
	g_free(ca_dir);
	g_free(cc);
	g_free(ck);
	return ok;
}

/* A cluster file or a CA key (where init puts it, or where releases before
 * DIR/ca/ did) in dir. */
static gboolean holds_cluster(const char *dir, const char *conf)
{
	char *old_key = node_files_path(dir, "ca.key"), *key = g_build_filename(dir, "ca", "ca.key", NULL);
	gboolean holds = g_file_test(conf, G_FILE_TEST_EXISTS) ||
			 g_file_test(old_key, G_FILE_TEST_EXISTS) || g_file_test(key, G_FILE_TEST_EXISTS);

	g_free(key);
	g_free(old_key);
	return holds;
}

/* Checks the arguments; every node id and address:port must be unique. */
static gboolean collect_nodes(char **specs, GArray *nodes)
{
	for (char **s = specs; s && *s; s++) {
		struct node_arg n;

		if (!node_arg_parse(*s, &n)) {
			fprintf(stderr, "shardfs init: --node %s: expected ID=HOST:PORT[,zone=Z][,weight=W],"
					" ID and PORT 1..65535, W 1..1000\n", *s);
			return FALSE;
		}
		for (guint i = 0; i < nodes->len; i++) {
			struct node_arg *m = &g_array_index(nodes, struct node_arg, i);

			if (m->id == n.id || (m->port == n.port && !strcmp(m->host, n.host))) {
				fprintf(stderr, "shardfs init: --node %s repeats a node id or address\n", *s);
				node_arg_clear(&n);
				return FALSE;
			}
		}
		g_array_append_val(nodes, n);
	}
	return nodes->len > 0;
}


/* The code the node count allows by default: one parity shard on up to
 * 3 nodes, two on more; never more shards than nodes. */
static const char *default_code(unsigned nodes)
{
	return nodes >= 6 ? "4+2" : nodes >= 4 ? "2+2" : nodes == 3 ? "2+1" : "1+1";
}

/* Parses --ec (or picks the default) and checks it against the nodes;
 * false after one line saying why. */
static gboolean choose_code(char **ec, unsigned nodes, unsigned *k, unsigned *m)
{
	if (!*ec && nodes < 2) {
		fprintf(stderr, "shardfs init: 1 node: a cluster needs at least 2 nodes, for a code"
				" with one parity shard (1+1)\n");
		return FALSE;
	}
	if (!*ec)
		*ec = g_strdup(default_code(nodes));
	char **km = g_strsplit(*ec, "+", -1);
	guint64 a = 0, b = 0;
	gboolean ok = g_strv_length(km) == 2 && g_ascii_string_to_unsigned(km[0], 10, 1, 64, &a, NULL) &&
		      g_ascii_string_to_unsigned(km[1], 10, 0, 32, &b, NULL);

	g_strfreev(km);
	if (!ok || a + b > 32) {
		fprintf(stderr, "shardfs init: --ec %s: expected K+M with K >= 1, M >= 1 and K+M <= 32,"
				" e.g. 2+1\n", *ec);
		return FALSE;
	}
	if (b == 0) {
		fprintf(stderr, "shardfs init: --ec %s: no parity shard: every node would be a single"
				" point of failure, and no erasure backend codes K+0; use M >= 1\n", *ec);
		return FALSE;
	}
	if (a + b > nodes) {
		fprintf(stderr, "shardfs init: --ec %s: %u shards per part need at least %u nodes, %u given\n",
			*ec, (unsigned)(a + b), (unsigned)(a + b), nodes);
		return FALSE;
	}
	*k = (unsigned)a;
	*m = (unsigned)b;
	return TRUE;
}

/* Unknown schemes are refused now rather than at the first mount. */
static gboolean meta_scheme_known(const char *meta)
{
	if (!meta || g_str_has_prefix(meta, "sqlite://") || g_str_has_prefix(meta, "postgresql://") ||
	    g_str_has_prefix(meta, "postgres://"))
		return TRUE;
	g_autofree char *safe = meta_url_safe(meta);

	fprintf(stderr, "shardfs init: --meta %s: the metadata engines are SQLite"
			" (sqlite:///ABSOLUTE/PATH) and PostgreSQL (postgresql://...)\n", safe);
	return FALSE;
}

int cmd_init(int argc, char **argv)
{
	char *dir = NULL, *ec = NULL, *meta = NULL, **specs = NULL;
	GOptionEntry entries[] = {
		{"dir", 'd', 0, G_OPTION_ARG_FILENAME, &dir, "directory for the cluster's files", "DIR"},
		{"node", 'n', 0, G_OPTION_ARG_STRING_ARRAY, &specs, "a node (repeat for each)", "ID=HOST:PORT"},
		{"ec", 0, 0, G_OPTION_ARG_STRING, &ec,
		 "erasure code, data+parity shards (default by node count: 2 nodes 1+1, 3 2+1, 4-5 2+2, 6 or more 4+2)",
		 "K+M"},
		{"meta", 0, 0, G_OPTION_ARG_STRING, &meta, "metadata URL (default sqlite://DIR/meta.db)", "URL"},
		{NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	GArray *nodes = g_array_new(FALSE, FALSE, sizeof(struct node_arg));
	GError *err = NULL;
	int rc = SHARDFS_EXIT_USAGE;
	char *conf = NULL, *abs = NULL;

	g_array_set_clear_func(nodes, node_arg_clear);
	if (!tools_parse(argc, argv, entries, "- create a cluster: CA, certificates, cluster file"))
		goto out;
	if (!dir || !specs) {
		fprintf(stderr, "shardfs init: --dir DIR and at least one --node ID=HOST:PORT are required\n");
		goto out;
	}
	if (!collect_nodes(specs, nodes))
		goto out;
	unsigned k, m;

	if (!choose_code(&ec, nodes->len, &k, &m) || !meta_scheme_known(meta))
		goto out;
	rc = SHARDFS_EXIT_FAIL;
	if (g_mkdir_with_parents(dir, 0755) < 0) {
		fprintf(stderr, "shardfs init: cannot create %s: %s\n", dir, g_strerror(errno));
		goto out;
	}
	abs = g_canonicalize_filename(dir, NULL);
	conf = node_files_path(abs, "cluster.conf");
	if (holds_cluster(abs, conf)) {
		fprintf(stderr, "shardfs init: %s already holds a cluster; nothing was changed\n", abs);
		goto out;
	}
	if (!make_cluster(abs, nodes, ec, meta, &err)) {
		fprintf(stderr, "shardfs init: %s\n", err->message);
		g_error_free(err);
		goto out;
	}
	printf("erasure code %u+%u: a part survives the loss of %u shard%s; a write commits with %u"
	       " of its %u shards durable (min_shards)\n", k, m, m, m == 1 ? "" : "s",
	       MIN(k + 1, k + m - 1), k + m);
	printf("cluster created in %s\n  cluster file: %s\n  start a node: shardfs node --config %s --id %u\n"
	       "  for other hosts: copy %s/hosts/node-ID/* to a node's host, hosts/client/* to a"
	       " mount's host; %s/ca/ (the CA key) stays here\n",
	       abs, conf, conf, g_array_index(nodes, struct node_arg, 0).id, abs, abs);
	rc = 0;
out:
	g_array_free(nodes, TRUE);
	g_strfreev(specs);
	g_free(dir);
	g_free(abs);
	g_free(conf);
	g_free(ec);
	g_free(meta);
	return rc;
}
