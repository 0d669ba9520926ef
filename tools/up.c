/*
 * up.c - `shardfs up [DIR]` and `shardfs down [DIR]`: a whole local
 * cluster with one command, for trying shardfs on one machine.
 *
 * up creates (the first time) a 3-node 2+1 cluster in DIR (default
 * ./shardfs-local) on free loopback ports, starts the node daemons that are
 * not running, and mounts the cluster on DIR/mnt unless it is mounted.
 * Every process it starts runs in its own session, logs to DIR/NAME.log
 * and is recorded in DIR/NAME.pid, so that up can be run again safely and
 * down stops exactly what up started.
 *
 * With --meta postgres the metadata is in a PostgreSQL server of its own
 * in DIR/pg (local_pg.h), made the first time and started by every up.
 *
 * down unmounts DIR/mnt and waits for the mount process to finish its
 * flush before it stops the nodes (SIGTERM: they drain and sync), since
 * the flush needs them, and then the PostgreSQL server if there is one.
 * If files are still open in the mount it refuses and leaves everything
 * running: nothing is lost by a down.
 */
#define G_LOG_DOMAIN "shardfs"

#include "local_cluster.h"
#include "tools/local_pg.h"
#include "net/net.h"
#include "store/meta/meta.h"
#include "shardfs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_DIR "shardfs-local"
#define LOCAL_NODES 3
#define LOCAL_EC "2+1"
#define LOCAL_HOST "127.0.0.1"
#define START_TIMEOUT_S 20
#define STOP_TIMEOUT_S 60

/* The processes outlive up: not tied to it, known by their pid files. */
struct local {
	struct local_cluster lc; /* self, dir (absolute), conf */
	char *self, *dir, *conf; /* borrowed from lc */
	char *mnt;   /* DIR/mnt */
	struct net_cluster *cluster; /* DIR/cluster.conf, once loaded */
	char *meta;		     /* --meta: "sqlite", "postgres" or NULL */
	struct local_pg pg;	     /* DIR/pg, when there is one */
	gboolean has_pg;
};

static void local_clear(struct local *l)
{
	if (l->cluster)
		net_cluster_free(l->cluster);
	local_cluster_fini(&l->lc);
	g_free(l->mnt);
	g_free(l->meta);
	if (l->has_pg)
		local_pg_fini(&l->pg);
}

static char *in_dir(const struct local *l, const char *name)
{
	return g_build_filename(l->dir, name, NULL);
}

/* The pid in DIR/NAME.pid if it is still this cluster's `shardfs ROLE`. */
static pid_t recorded_pid(const struct local *l, const char *name, const char *role)
{
	g_autofree char *path = g_strconcat(l->dir, "/", name, ".pid", NULL);

	return local_proc_recorded(path, role, l->conf);
}

static void print_log_tail(const struct local *l, const char *name)
{
	g_autofree char *path = g_strconcat(l->dir, "/", name, ".log", NULL);
	g_autofree char *text = NULL;
	gsize len = 0;

	if (!g_file_get_contents(path, &text, &len, NULL) || !len)
		return;
	const char *tail = len > 1500 ? text + len - 1500 : text;
	fprintf(stderr, "--- last lines of %s:\n%s%s", path, tail, text[len - 1] == '\n' ? "" : "\n");
}

/* ---- the cluster ---- */

/*
 * The PostgreSQL server of the cluster: made for a new cluster that asks
 * for one, started when DIR/pg holds one. A cluster already made keeps
 * the engine it was made with.
 */
static int prepare_pg(struct local *l)
{
	gboolean wanted = l->meta && !strcmp(l->meta, "postgres");
	gboolean made = g_file_test(l->conf, G_FILE_TEST_EXISTS);
	gboolean exists = local_pg_exists(l->dir);

	if (made && l->meta && wanted != exists) {
		fprintf(stderr, "shardfs up: %s holds a cluster with its metadata in %s already;"
				" --meta %s does not change it\n", l->dir, exists ? "PostgreSQL" : "SQLite",
			l->meta);
		return -1;
	}
	if (!exists && !(wanted && !made))
		return 0;
	if (!local_pg_init(&l->pg, l->dir))
		return -1;
	l->has_pg = TRUE;
	if (!exists) {
		if (local_pg_create(&l->pg, LOCAL_HOST) < 0)
			return -1;
		printf("created a PostgreSQL server in %s (port %u)\n", l->pg.dir, l->pg.port);
		l->lc.meta_url = l->pg.url;
		return 0;
	}
	int rc = local_pg_start(&l->pg);

	if (rc == 0)
		printf("PostgreSQL started (%s, port %u)\n", l->pg.dir, l->pg.port);
	else if (rc == 1)
		printf("PostgreSQL is running (%s, port %u)\n", l->pg.dir, l->pg.port);
	return rc < 0 ? -1 : 0;
}

static int create_cluster(struct local *l)
{
	int rc = local_cluster_create(&l->lc, LOCAL_EC);

	if (rc == 0 && l->lc.meta_url) {
		g_autofree char *ca = in_dir(l, "ca.crt");
		g_autofree char *ca_key = g_build_filename(l->dir, "ca", "ca.key", NULL);

		rc = local_pg_tls(&l->pg, ca, ca_key, LOCAL_HOST);
	}
	if (rc == 0)
		printf("created a %u-node cluster (erasure code %s) in %s, metadata in %s\n",
		       LOCAL_NODES, LOCAL_EC, l->dir, l->lc.meta_url ? "PostgreSQL" : "SQLite");
	if (rc == 0 && l->lc.meta_url)
		printf("other hosts reach the metadata at postgresql://shardfs@%s:%u/shardfs"
		       "?sslmode=verify-full&sslrootcert=ca.crt with the password in %s/password\n",
		       LOCAL_HOST, l->pg.port, l->pg.dir);
	return rc;
}

/* Starts every node of the cluster file not running already. */
static int start_nodes(struct local *l, const struct net_cluster *c)
{
	for (guint i = 0; i < c->nodes->len; i++) {
		const struct net_node_conf *n = &g_array_index(c->nodes, struct net_node_conf, i);
		g_autofree char *name = g_strdup_printf("node-%u", n->id);

		if (recorded_pid(l, name, "node")) {
			printf("node %u is running (%s:%u)\n", n->id, n->host, n->port);
			continue;
		}
		if (local_cluster_node_start(&l->lc, n->id) < 0)
			return -1;
		printf("node %u started on %s:%u, log %s/%s.log\n", n->id, n->host, n->port, l->dir, name);
	}
	if (local_cluster_wait_up(&l->lc, START_TIMEOUT_S) == 0)
		return 0;
	fprintf(stderr, "shardfs up: the nodes did not all answer within %d s\n", START_TIMEOUT_S);
	for (guint i = 0; i < c->nodes->len; i++) {
		g_autofree char *name =
			g_strdup_printf("node-%u", g_array_index(c->nodes, struct net_node_conf, i).id);
		print_log_tail(l, name);
	}
	return -1;
}

/* A cluster made before shardfs kept metadata has no database yet. */
static int ensure_meta_db(const struct net_cluster *c)
{
	const char *prefix = "sqlite://";

	if (!g_str_has_prefix(c->meta_url, prefix) ||
	    g_file_test(c->meta_url + strlen(prefix), G_FILE_TEST_EXISTS))
		return 0;
	int rc = meta_create_db(c->meta_url, getuid(), getgid());
	if (rc < 0 && rc != -EEXIST) {
		fprintf(stderr, "shardfs up: cannot create %s: %s\n", c->meta_url, meta_open_reason(rc));
		return -1;
	}
	printf("created the metadata database %s\n", c->meta_url + strlen(prefix));
	return 0;
}

/* ---- the mount ---- */

static int unmount(const struct local *l)
{
	g_autofree char *why = NULL;

	if (local_mount_unmount(l->mnt, &why) == 0)
		return 0;
	fprintf(stderr, "shardfs: cannot unmount %s%s%s", l->mnt, why ? ": " : "\n", why ? why : "");
	return -1;
}

/* A mount whose process is gone (the kernel answers ENOTCONN) is
 * unmounted so that it can be mounted again. */
static int clear_dead_mount(const struct local *l)
{
	struct stat st;

	if (!local_mount_is_mounted(l->mnt) || stat(l->mnt, &st) == 0 || errno != ENOTCONN)
		return 0;
	printf("the mount on %s had lost its process; unmounting it\n", l->mnt);
	return unmount(l);
}

static int start_mount(const struct local *l)
{
	g_autofree char *log = g_build_filename(l->dir, "mount.log", NULL);

	if (clear_dead_mount(l) < 0)
		return -1;
	if (local_mount_is_mounted(l->mnt)) {
		printf("%s is mounted already\n", l->mnt);
		return 0;
	}
	if (g_mkdir_with_parents(l->mnt, 0755) < 0) {
		fprintf(stderr, "shardfs up: cannot create %s: %s\n", l->mnt, g_strerror(errno));
		return -1;
	}
	if (local_mount_start(&l->lc, l->mnt, NULL, log, START_TIMEOUT_S) > 0) {
		printf("mounted on %s, log %s\n", l->mnt, log);
		return 0;
	}
	fprintf(stderr, "shardfs up: the mount on %s did not come up\n", l->mnt);
	print_log_tail(l, "mount");
	return -1;
}

static void print_usage_hints(const struct local *l)
{
	printf("\nUse it as any directory:  cp FILE %s/\n"
	       "Cluster commands:         export SHARDFS_CONF=%s\n"
	       "                          %s ls -l /\n"
	       "Stop it:                  %s down %s\n",
	       l->mnt, l->conf, l->self, l->self, l->dir);
}

/* Parses the command line of up or down; FALSE on a usage error. */
static gboolean local_init(struct local *l, int argc, char **argv, const char *what,
			   const char *summary)
{
	GOptionEntry up_entries[] = {
		{"meta", 0, 0, G_OPTION_ARG_STRING, &l->meta,
		 "where a new cluster keeps its metadata: sqlite (the default) or postgres"
		 " (a PostgreSQL server in DIR/pg)", "ENGINE"},
		G_OPTION_ENTRY_NULL};
	GOptionEntry none[] = {G_OPTION_ENTRY_NULL};

	if (!tools_parse(argc, argv, strcmp(what, "up") ? none : up_entries, summary))
		return FALSE;
	if (l->meta && strcmp(l->meta, "sqlite") && strcmp(l->meta, "postgres")) {
		fprintf(stderr, "shardfs up: --meta %s: say sqlite or postgres\n", l->meta);
		return FALSE;
	}
	if (argc > 2) {
		fprintf(stderr, "usage: shardfs %s [DIR]\n", what);
		return FALSE;
	}
	g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
	g_autofree char *dir = g_canonicalize_filename(argc == 2 ? argv[1] : DEFAULT_DIR, NULL);

	local_cluster_init(&l->lc, self, dir, LOCAL_NODES, 0);
	l->lc.pidfiles = TRUE;
	l->self = l->lc.self;
	l->dir = l->lc.dir;
	l->conf = l->lc.conf;
	l->mnt = in_dir(l, "mnt");
	return self != NULL;
}

static int local_load(struct local *l, const char *what)
{
	GError *err = NULL;

	if (!g_file_test(l->conf, G_FILE_TEST_EXISTS)) {
		fprintf(stderr, "shardfs %s: no cluster in %s\n", what, l->dir);
		return -1;
	}
	if (net_cluster_load(l->conf, &l->cluster, &err) < 0) {
		fprintf(stderr, "shardfs %s: %s\n", what, err->message);
		g_error_free(err);
		return -1;
	}
	return 0;
}

int cmd_up(int argc, char **argv)
{
	struct local l = {0};
	int rc = SHARDFS_EXIT_FAIL;

	setvbuf(stdout, NULL, _IOLBF, 0); /* in order with the errors on stderr */
	if (!local_init(&l, argc, argv, "up",
			"[DIR] - run a local 3-node cluster with a mount on DIR/mnt (DIR: ./" DEFAULT_DIR ")")) {
		local_clear(&l);
		return SHARDFS_EXIT_USAGE;
	}
	if (prepare_pg(&l) < 0)
		goto out;
	if (!g_file_test(l.conf, G_FILE_TEST_EXISTS) && create_cluster(&l) != 0)
		goto out;
	if (local_load(&l, "up") < 0 || ensure_meta_db(l.cluster) < 0 ||
	    start_nodes(&l, l.cluster) < 0 || start_mount(&l) < 0)
		goto out;
	char *status[] = {l.self, "status", l.conf, NULL};
	fflush(stdout);
	g_spawn_sync(NULL, status, NULL, G_SPAWN_CHILD_INHERITS_STDIN, NULL, NULL, NULL, NULL, NULL,
		     NULL);
	print_usage_hints(&l);
	rc = 0;
out:
	local_clear(&l);
	return rc;
}

static int stop_mount(const struct local *l)
{
	pid_t pid = recorded_pid(l, "mount", "mount");

	if (local_mount_is_mounted(l->mnt)) {
		if (unmount(l) < 0) {
			fprintf(stderr, "shardfs down: close the files open in %s and run it again; "
					"nothing was stopped\n", l->mnt);
			return -1;
		}
		printf("unmounted %s\n", l->mnt);
	}
	if (pid && !local_proc_wait_gone(pid, STOP_TIMEOUT_S, NULL)) {
		fprintf(stderr, "shardfs down: the mount process %d has not finished flushing after "
				"%d s; the nodes stay up\n", (int)pid, STOP_TIMEOUT_S);
		return -1;
	}
	return 0;
}

/* SIGTERM to every node first, so that they drain side by side. */
static void stop_nodes(const struct local *l, const struct net_cluster *c)
{
	g_autofree pid_t *pids = g_new0(pid_t, c->nodes->len);

	for (guint i = 0; i < c->nodes->len; i++) {
		g_autofree char *name = g_strdup_printf(
			"node-%u", g_array_index(c->nodes, struct net_node_conf, i).id);

		pids[i] = recorded_pid(l, name, "node");
		if (pids[i])
			kill(pids[i], SIGTERM);
	}
	for (guint i = 0; i < c->nodes->len; i++) {
		guint32 id = g_array_index(c->nodes, struct net_node_conf, i).id;

		if (!pids[i])
			continue;
		if (!local_proc_wait_gone(pids[i], STOP_TIMEOUT_S, NULL)) {
			fprintf(stderr, "shardfs down: node %u did not stop; killing it\n", id);
			kill(pids[i], SIGKILL);
		}
		printf("node %u stopped\n", id);
	}
}

/* Last: the mount's flush and the nodes are done with the metadata. */
static int stop_pg(struct local *l)
{
	if (!local_pg_exists(l->dir))
		return 0;
	if (!local_pg_init(&l->pg, l->dir))
		return SHARDFS_EXIT_FAIL;
	l->has_pg = TRUE;
	int rc = local_pg_stop(&l->pg);

	if (rc == 0)
		printf("PostgreSQL stopped\n");
	return rc < 0 ? SHARDFS_EXIT_FAIL : 0;
}

int cmd_down(int argc, char **argv)
{
	struct local l = {0};
	int rc = SHARDFS_EXIT_FAIL;

	if (!local_init(&l, argc, argv, "down", "[DIR] - unmount DIR/mnt and stop the nodes of shardfs up")) {
		local_clear(&l);
		return SHARDFS_EXIT_USAGE;
	}
	if (local_load(&l, "down") == 0 && stop_mount(&l) == 0) {
		stop_nodes(&l, l.cluster);
		rc = stop_pg(&l);
	}
	local_clear(&l);
	return rc;
}
