/*
 * cluster.c - the cluster file (GLib key file) that `shardfs init` writes
 * and every node and client reads.
 *
 *   [cluster]
 *   ca=ca.crt            paths relative to the file's directory
 *   cert=client.crt      this host's client identity
 *   key=client.key
 *   ec=4+2               k data + m parity shards
 *   min_shards=5         durable shards a part needs to commit (k..k+m;
 *                        default k+1, at most k+m-1)
 *   down_out_s=600       seconds a node may not answer before repair
 *                        rebuilds its shards on the others (0: never)
 *   part_size=8388608
 *   meta=sqlite:///abs/path/meta.db
 *
 *   [node.N]             one group per node, N its id (1..65535)
 *   address=127.0.0.1
 *   port=7001
 *   weight=1
 *   zone=a               optional failure domain
 *   cert=node-N.crt      the node's identity (on that node)
 *   key=node-N.key
 *   data_dir=node-N      the node's WAL directory
 *
 * Every value is checked here, so that a bad file gets one clear message
 * naming the group and key, before anything starts.
 */
#define G_LOG_DOMAIN "shardfs-net"

#include "net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static char *abs_path(const struct net_cluster *c, const char *p)
{
	return g_path_is_absolute(p) ? g_strdup(p) : g_build_filename(c->dir, p, NULL);
}

static char *get_path(struct net_cluster *c, const char *group, const char *key, GError **err)
{
	char *v = g_key_file_get_string(c->kf, group, key, err);
	char *p = v ? abs_path(c, v) : NULL;

	g_free(v);
	return p;
}

static gboolean parse_ec(const char *s, unsigned *k, unsigned *m)
{
	char *end;
	unsigned long a = strtoul(s, &end, 10), b;

	if (end == s || *end != '+')
		return FALSE;
	s = end + 1;
	b = strtoul(s, &end, 10);
	if (end == s || *end || a < 1 || b > 32 || a + b > 64)
		return FALSE;
	*k = (unsigned)a;
	*m = (unsigned)b;
	return TRUE;
}

static gboolean bad(GError **err, const char *path, const char *group, const char *what)
{
	g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE, "%s: [%s] %s", path,
		    group, what);
	return FALSE;
}

static gboolean load_node(struct net_cluster *c, const char *group, GError **err)
{
	struct net_node_conf n = {0};
	char *end;
	unsigned long id = strtoul(group + 5, &end, 10);
	gint64 port;

	if (end == group + 5 || *end || id < 1 || id > 65535)
		return bad(err, c->path, group, "a node group is named node.N with N in 1..65535");
	if (net_cluster_node(c, (uint32_t)id))
		return bad(err, c->path, group, "this node id appears twice");
	n.id = (uint32_t)id;
	n.host = g_key_file_get_string(c->kf, group, "address", err);
	if (!n.host)
		return FALSE;
	port = g_key_file_get_int64(c->kf, group, "port", err);
	if (port < 1 || port > 65535) {
		g_free(n.host);
		return *err ? FALSE : bad(err, c->path, group, "port must be 1..65535");
	}
	n.port = (uint16_t)port;
	n.weight = g_key_file_has_key(c->kf, group, "weight", NULL)
			   ? (uint32_t)g_key_file_get_integer(c->kf, group, "weight", NULL) : 1;
	n.zone = g_key_file_get_string(c->kf, group, "zone", NULL);
	n.cert = g_key_file_has_key(c->kf, group, "cert", NULL) ? get_path(c, group, "cert", NULL) : NULL;
	n.key = g_key_file_has_key(c->kf, group, "key", NULL) ? get_path(c, group, "key", NULL) : NULL;
	n.data_dir = g_key_file_has_key(c->kf, group, "data_dir", NULL)
			     ? get_path(c, group, "data_dir", NULL) : NULL;
	g_array_append_val(c->nodes, n);
	if (n.weight < 1 || n.weight > 1000)
		return bad(err, c->path, group, "weight must be 1..1000");
	return TRUE;
}

/* Ceph's min_size: by default k + 1, so that a part written with one shard
 * missing survives one more loss, but at most k + m - 1, so that one node
 * down never stops writes. */
static gboolean load_min_shards(struct net_cluster *c, GError **err)
{
	unsigned k = c->ec_k, m = c->ec_m;
	GError *e = NULL;

	c->min_shards = m == 0 ? k : MIN(k + 1, k + m - 1);
	if (!g_key_file_has_key(c->kf, "cluster", "min_shards", NULL))
		return TRUE;
	gint64 v = g_key_file_get_int64(c->kf, "cluster", "min_shards", &e);
	if (e || v < k || v > k + m) {
		g_clear_error(&e);
		g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
			    "%s: [cluster] min_shards must be %u..%u for ec %u+%u", c->path, k, k + m,
			    k, m);
		return FALSE;
	}
	c->min_shards = (unsigned)v;
	return TRUE;
}

/* Ceph's mon_osd_down_out_interval: how long a node may stay silent
 * before its shards are rebuilt on the others. */
static gboolean load_down_out(struct net_cluster *c, GError **err)
{
	GError *e = NULL;

	c->down_out_s = NET_DOWN_OUT_DEFAULT_S;
	if (!g_key_file_has_key(c->kf, "cluster", "down_out_s", NULL))
		return TRUE;
	gint64 v = g_key_file_get_int64(c->kf, "cluster", "down_out_s", &e);
	if (e || v < 0 || v > NET_DOWN_OUT_MAX_S) {
		g_clear_error(&e);
		return bad(err, c->path, "cluster", "down_out_s must be 0 (never) ..2592000 seconds");
	}
	c->down_out_s = (unsigned)v;
	return TRUE;
}

static gboolean load_cluster_group(struct net_cluster *c, GError **err)
{
	char *ec;

	c->ca = get_path(c, "cluster", "ca", err);
	if (!c->ca)
		return FALSE;
	c->cert = g_key_file_has_key(c->kf, "cluster", "cert", NULL) ? get_path(c, "cluster", "cert", NULL) : NULL;
	c->key = g_key_file_has_key(c->kf, "cluster", "key", NULL) ? get_path(c, "cluster", "key", NULL) : NULL;
	ec = g_key_file_get_string(c->kf, "cluster", "ec", NULL);
	c->ec_k = 4;
	c->ec_m = 2;
	if (ec && !parse_ec(ec, &c->ec_k, &c->ec_m)) {
		g_free(ec);
		return bad(err, c->path, "cluster", "ec must be K+M, e.g. 4+2");
	}
	g_free(ec);
	if (!load_min_shards(c, err) || !load_down_out(c, err))
		return FALSE;
	c->part_size = 8u << 20;
	if (g_key_file_has_key(c->kf, "cluster", "part_size", NULL))
		c->part_size = (uint64_t)g_key_file_get_int64(c->kf, "cluster", "part_size", NULL);
	if (c->part_size < 4096 || c->part_size > (256u << 20))
		return bad(err, c->path, "cluster", "part_size must be 4096..268435456");
	c->meta_url = g_key_file_get_string(c->kf, "cluster", "meta", NULL);
	c->id = g_key_file_get_string(c->kf, "cluster", "id", NULL);
	return TRUE;
}

static void node_conf_clear(gpointer p)
{
	struct net_node_conf *n = p;

	g_free(n->host);
	g_free(n->zone);
	g_free(n->cert);
	g_free(n->key);
	g_free(n->data_dir);
}

/* The first line of text that no key file holds (not blank, a comment, a
 * [group] or a key=value), counted from 1; 0 if none. */
static unsigned first_bad_line(const char *text)
{
	char **lines = g_strsplit(text, "\n", -1);
	unsigned bad_line = 0;

	for (unsigned i = 0; lines[i] && !bad_line; i++) {
		const char *l = lines[i];

		while (g_ascii_isspace(*l))
			l++;
		if (*l && *l != '#' && *l != '[' && !strchr(l, '='))
			bad_line = i + 1;
		else if (*l == '[' && !strchr(l, ']'))
			bad_line = i + 1;
	}
	g_strfreev(lines);
	return bad_line;
}

/*
 * Reads the file into c->kf. GKeyFile's own messages quote the line that
 * failed, raw: a binary file given by mistake would be echoed to the
 * terminal. These messages name the file and the line, never its bytes.
 */
static gboolean load_key_file(struct net_cluster *c, const char *path, GError **err)
{
	char *text = NULL;
	gsize len;
	GError *why = NULL;
	gboolean ok = g_file_get_contents(path, &text, &len, err);

	if (ok && (memchr(text, 0, len) || !g_utf8_validate(text, (gssize)len, NULL))) {
		g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE,
			    "%s: not a cluster file (binary data, not text)", path);
		ok = FALSE;
	}
	if (ok && !g_key_file_load_from_data(c->kf, text, len, G_KEY_FILE_NONE, &why)) {
		unsigned line = first_bad_line(text);

		if (line)
			g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE,
				    "%s line %u: not a [group], key=value or # comment line", path, line);
		else
			g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE,
				    "%s: not a cluster file (it does not parse as a key file)", path);
		g_error_free(why);
		ok = FALSE;
	}
	g_free(text);
	return ok;
}

int net_cluster_load(const char *path, struct net_cluster **out, GError **err)
{
	struct net_cluster *c = g_new0(struct net_cluster, 1);
	gchar **groups;
	gboolean ok;

	c->path = g_strdup(path);
	c->dir = g_path_get_dirname(path);
	c->kf = g_key_file_new();
	c->nodes = g_array_new(FALSE, TRUE, sizeof(struct net_node_conf));
	g_array_set_clear_func(c->nodes, node_conf_clear);
	ok = load_key_file(c, path, err) && load_cluster_group(c, err);
	groups = ok ? g_key_file_get_groups(c->kf, NULL) : NULL;
	for (gchar **g = groups; ok && g && *g; g++)
		if (g_str_has_prefix(*g, "node."))
			ok = load_node(c, *g, err);
	g_strfreev(groups);
	if (ok && c->nodes->len == 0)
		ok = bad(err, path, "node.N", "the cluster has no node");
	if (ok && c->nodes->len < c->ec_k + c->ec_m)
		g_message("%s: %u nodes for %u+%u shards: some parts will not be writable",
			  path, c->nodes->len, c->ec_k, c->ec_m);
	if (!ok) {
		net_cluster_free(c);
		return -EINVAL;
	}
	*out = c;
	return 0;
}

void net_cluster_free(struct net_cluster *c)
{
	if (!c)
		return;
	g_array_free(c->nodes, TRUE);
	g_key_file_free(c->kf);
	g_free(c->ca);
	g_free(c->cert);
	g_free(c->key);
	g_free(c->meta_url);
	g_free(c->id);
	g_free(c->path);
	g_free(c->dir);
	g_free(c);
}

const struct net_node_conf *net_cluster_node(const struct net_cluster *c, uint32_t id)
{
	for (guint i = 0; i < c->nodes->len; i++) {
		const struct net_node_conf *n = &g_array_index(c->nodes, struct net_node_conf, i);

		if (n->id == id)
			return n;
	}
	return NULL;
}
