/*
 * node_files.c - a node's argument, certificate, cluster file section and
 * host directory (node_files.h).
 */
#include "node_files.h"

#include "net/net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ",zone=Z" and ",weight=W" after the address; false on anything else. */
static gboolean parse_node_attrs(char **attrs, struct node_arg *n)
{
	for (char **a = attrs; *a; a++) {
		guint64 w;

		if (g_str_has_prefix(*a, "zone=") && (*a)[5] && !n->zone) {
			n->zone = g_strdup(*a + 5);
		} else if (g_str_has_prefix(*a, "weight=") &&
			   g_ascii_string_to_unsigned(*a + 7, 10, 1, 1000, &w, NULL)) {
			n->weight = (unsigned)w;
		} else {
			return FALSE;
		}
	}
	return TRUE;
}

gboolean node_arg_parse(const char *arg, struct node_arg *n)
{
	char **parts = g_strsplit(arg, ",", -1);
	const char *s = parts[0];
	const char *eq = strchr(s, '='), *colon = strrchr(s, ':');
	char *end;

	*n = (struct node_arg){.weight = 1};
	gboolean ok = eq && colon && colon > eq && parse_node_attrs(parts + 1, n);
	if (!ok) {
		g_free(n->zone);
		g_strfreev(parts);
		return FALSE;
	}
	n->id = (unsigned)strtoul(s, &end, 10);
	ok = end == eq && g_ascii_isdigit(*s) && n->id >= 1 && n->id <= 65535;
	n->port = ok ? (unsigned)strtoul(colon + 1, &end, 10) : 0;
	ok = ok && g_ascii_isdigit(colon[1]) && !*end && n->port >= 1 && n->port <= 65535 &&
	     colon != eq + 1;
	if (!ok) {
		g_free(n->zone);
		g_strfreev(parts);
		return FALSE;
	}
	n->host = g_strndup(eq + 1, (gsize)(colon - eq - 1));
	g_strfreev(parts);
	if (n->host[0] == '[' && n->host[strlen(n->host) - 1] == ']') { /* [v6]:port */
		char *inner = g_strndup(n->host + 1, strlen(n->host) - 2);

		g_free(n->host);
		n->host = inner;
	}
	return TRUE;
}

char *node_files_path(const char *dir, const char *name)
{
	return g_build_filename(dir, name, NULL);
}

gboolean node_files_write_new(const char *dir, const char *name, const char *data, gsize len,
			  int mode, GError **err)
{
	char *path = node_files_path(dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	gboolean ok = fd >= 0 && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;

	if (!ok)
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "cannot write %s: %s",
			    path, g_strerror(errno));
	if (fd >= 0)
		close(fd);
	g_free(path);
	return ok;
}

gboolean node_files_private_dir(const char *path, GError **err)
{
	if (g_mkdir_with_parents(path, 0700) == 0)
		return TRUE;
	g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "cannot create %s: %s", path,
		    g_strerror(errno));
	return FALSE;
}

/* Copies dir/name into to/name; keys (*.key) stay 0600. */
static gboolean copy_into(const char *dir, const char *name, const char *to, GError **err)
{
	char *src = node_files_path(dir, name), *data = NULL;
	gsize len;
	gboolean ok = g_file_get_contents(src, &data, &len, err) &&
		      node_files_write_new(to, name, data, len, g_str_has_suffix(name, ".key") ? 0600 : 0644, err);

	g_free(data);
	g_free(src);
	return ok;
}

gboolean node_files_host_dir(const char *dir, const char *who, const char *base, GError **err)
{
	char *to = g_build_filename(dir, "hosts", who, NULL);
	char *crt = g_strconcat(base, ".crt", NULL), *key = g_strconcat(base, ".key", NULL);
	gboolean ok = node_files_private_dir(to, err) && copy_into(dir, "cluster.conf", to, err) &&
		      copy_into(dir, "ca.crt", to, err) && copy_into(dir, crt, to, err) &&
		      copy_into(dir, key, to, err);

	g_free(key);
	g_free(crt);
	g_free(to);
	return ok;
}

void node_arg_clear(gpointer p)
{
	g_free(((struct node_arg *)p)->host);
	g_free(((struct node_arg *)p)->zone);
}

gboolean node_files_issue(const char *dir, GKeyFile *kf, const struct node_arg *n, GError **err)
{
	g_autofree char *ca = node_files_path(dir, "ca.crt");
	g_autofree char *ca_key = g_build_filename(dir, "ca", "ca.key", NULL);
	g_autofree char *group = g_strdup_printf("node.%u", n->id);
	g_autofree char *base = g_strdup_printf("node-%u", n->id);
	g_autofree char *crt = g_strconcat(base, ".crt", NULL), *key = g_strconcat(base, ".key", NULL);
	g_autofree char *cn = g_strdup_printf("shardfs node %u", n->id);
	g_autofree char *crt_path = node_files_path(dir, crt), *key_path = node_files_path(dir, key);

	if (!net_pki_issue(ca, ca_key, cn, n->host, TRUE, crt_path, key_path, err))
		return FALSE;
	g_key_file_set_string(kf, group, "address", n->host);
	g_key_file_set_integer(kf, group, "port", (gint)n->port);
	g_key_file_set_integer(kf, group, "weight", (gint)n->weight);
	if (n->zone)
		g_key_file_set_string(kf, group, "zone", n->zone);
	g_key_file_set_string(kf, group, "cert", crt);
	g_key_file_set_string(kf, group, "key", key);
	g_key_file_set_string(kf, group, "data_dir", base);
	return TRUE;
}
