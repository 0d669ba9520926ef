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
 * down unmounts DIR/mnt and waits for the mount process to finish its
 * flush before it stops the nodes (SIGTERM: they drain and sync), since
 * the flush needs them. If files are still open in the mount it refuses
 * and leaves everything running: nothing is lost by a down.
 */
#define G_LOG_DOMAIN "shardfs"

#include "bench/bench_cluster.h"
#include "net/net.h"
#include "store/meta/meta.h"
#include "shardfs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_DIR "shardfs-local"
#define LOCAL_NODES 3
#define LOCAL_K 2
#define LOCAL_M 1
#define LOCAL_EC "2+1"
#define START_TIMEOUT_S 20
#define STOP_TIMEOUT_S 60

struct local {
	char *self;  /* this binary */
	char *dir;   /* absolute */
	char *conf;  /* DIR/cluster.conf */
	char *mnt;   /* DIR/mnt */
	struct net_cluster *cluster; /* DIR/cluster.conf, once loaded */
};

static void local_clear(struct local *l)
{
	if (l->cluster)
		net_cluster_free(l->cluster);
	g_free(l->self);
	g_free(l->dir);
	g_free(l->conf);
	g_free(l->mnt);
}

static char *in_dir(const struct local *l, const char *name)
{
	return g_build_filename(l->dir, name, NULL);
}

/* ---- processes recorded in DIR/NAME.pid ---- */

/* Gone, or a zombie: an orphan is reaped by whatever init runs, which may
 * take its time. */
static gboolean process_gone(pid_t pid)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
	g_autofree char *stat = NULL;

	if (waitpid(pid, NULL, WNOHANG) == pid || kill(pid, 0) < 0 ||
	    !g_file_get_contents(path, &stat, NULL, NULL))
		return TRUE;
	const char *paren = strrchr(stat, ')'); /* pid (comm) STATE ... */
	return paren && paren[1] == ' ' && paren[2] == 'Z';
}

/* The pid in DIR/NAME.pid if that process is still this cluster's `shardfs
 * ROLE` (a pid may have been reused since), else 0. */
static pid_t recorded_pid(const struct local *l, const char *name, const char *role)
{
	g_autofree char *path = g_strconcat(l->dir, "/", name, ".pid", NULL);
	g_autofree char *text = NULL, *cmdline_path = NULL, *cmdline = NULL;
	gsize len = 0;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		return 0;
	pid_t pid = (pid_t)g_ascii_strtoll(text, NULL, 10);
	if (pid <= 0 || process_gone(pid))
		return 0;
	cmdline_path = g_strdup_printf("/proc/%d/cmdline", (int)pid);
	if (!g_file_get_contents(cmdline_path, &cmdline, &len, NULL))
		return 0;
	/* NUL-separated: shardfs ROLE ... CONF ... */
	gboolean has_role = FALSE, has_conf = FALSE;
	for (const char *a = cmdline; a < cmdline + len; a += strlen(a) + 1) {
		has_role |= !strcmp(a, role);
		has_conf |= !strcmp(a, l->conf);
	}
	return has_role && has_conf ? pid : 0;
}

static void child_own_session(gpointer unused)
{
	(void)unused;
	setsid();
}

/* Starts `shardfs ARGV...` in its own session, output appended to
 * DIR/NAME.log, pid written to DIR/NAME.pid. */
static pid_t start_process(const struct local *l, const char *name, char **args)
{
	g_autofree char *log = g_strconcat(l->dir, "/", name, ".log", NULL);
	g_autofree char *pidfile = g_strconcat(l->dir, "/", name, ".pid", NULL);
	g_autofree char *pidtext = NULL;
	GError *err = NULL;
	GPid pid = 0;
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	if (fd < 0) {
		fprintf(stderr, "shardfs up: %s: %s\n", log, g_strerror(errno));
		return -1;
	}
	gboolean ok = g_spawn_async_with_fds(NULL, args, NULL,
					     G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDIN_FROM_DEV_NULL,
					     child_own_session, NULL, &pid, -1, fd, fd, &err);
	close(fd);
	if (!ok) {
		fprintf(stderr, "shardfs up: cannot start %s: %s\n", name, err->message);
		g_error_free(err);
		return -1;
	}
	pidtext = g_strdup_printf("%d\n", (int)pid);
	if (!g_file_set_contents(pidfile, pidtext, -1, &err)) {
		fprintf(stderr, "shardfs up: %s\n", err->message);
		g_error_free(err);
	}
	return pid;
}

static gboolean wait_exit(pid_t pid, int seconds)
{
	for (int i = 0; i < seconds * 10; i++) {
		if (process_gone(pid))
			return TRUE;
		g_usleep(100000);
	}
	return FALSE;
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

static int quiet_run(char **argv)
{
	gint status = 1;

	if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
			  NULL, NULL, NULL, NULL, &status, NULL))
		return -1;
	return g_spawn_check_wait_status(status, NULL) ? 0 : -1;
}

static int create_cluster(const struct local *l)
{
	struct bench_cluster c;
	int rc = bench_cluster_init(&c, l->self, l->dir, LOCAL_NODES, LOCAL_K, LOCAL_M);

	bench_cluster_fini(&c);
	if (rc == 0)
		printf("created a %u-node cluster (erasure code %s) in %s\n", LOCAL_NODES, LOCAL_EC,
		       l->dir);
	return rc;
}

/* Starts every node of the cluster file not running already. */
static int start_nodes(const struct local *l, const struct net_cluster *c)
{
	for (guint i = 0; i < c->nodes->len; i++) {
		const struct net_node_conf *n = &g_array_index(c->nodes, struct net_node_conf, i);
		g_autofree char *name = g_strdup_printf("node-%u", n->id);
		g_autofree char *id = g_strdup_printf("%u", n->id);
		char *args[] = {l->self, "node", "--config", l->conf, "--id", id, NULL};

		if (recorded_pid(l, name, "node")) {
			printf("node %u is running (%s:%u)\n", n->id, n->host, n->port);
			continue;
		}
		if (start_process(l, name, args) < 0)
			return -1;
		printf("node %u started on %s:%u, log %s/%s.log\n", n->id, n->host, n->port, l->dir, name);
	}
	char *status[] = {l->self, "status", l->conf, NULL};
	for (int t = 0; t < START_TIMEOUT_S * 5; t++) {
		if (quiet_run(status) == 0)
			return 0;
		g_usleep(200000);
	}
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
		fprintf(stderr, "shardfs up: cannot create %s: %s\n", c->meta_url, g_strerror(-rc));
		return -1;
	}
	printf("created the metadata database %s\n", c->meta_url + strlen(prefix));
	return 0;
}

/* ---- the mount ---- */

static gboolean is_mounted(const char *path)
{
	g_autofree char *text = NULL;
	gboolean found = FALSE;

	if (!g_file_get_contents("/proc/self/mountinfo", &text, NULL, NULL))
		return FALSE;
	char **lines = g_strsplit(text, "\n", -1);
	for (char **line = lines; *line && !found; line++) {
		char **f = g_strsplit(*line, " ", 6);

		if (g_strv_length(f) >= 5) {
			/* mountinfo escapes blanks and backslashes in octal */
			g_autofree char *mp = g_strcompress(f[4]);
			found = !strcmp(mp, path);
		}
		g_strfreev(f);
	}
	g_strfreev(lines);
	return found;
}

static int unmount(const struct local *l)
{
	char *fusermount[] = {"fusermount3", "-u", l->mnt, NULL};
	gchar *errout = NULL;
	gint status = 1;

	if (!g_spawn_sync(NULL, fusermount, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
			  NULL, NULL, NULL, &errout, &status, NULL) ||
	    !g_spawn_check_wait_status(status, NULL)) {
		fprintf(stderr, "shardfs: cannot unmount %s%s%s", l->mnt, errout ? ": " : "\n",
			errout ? errout : "");
		g_free(errout);
		return -1;
	}
	g_free(errout);
	return 0;
}

/* A mount whose process is gone (the kernel answers ENOTCONN) is
 * unmounted so that it can be mounted again. */
static int clear_dead_mount(const struct local *l)
{
	struct stat st;

	if (!is_mounted(l->mnt) || stat(l->mnt, &st) == 0 || errno != ENOTCONN)
		return 0;
	printf("the mount on %s had lost its process; unmounting it\n", l->mnt);
	return unmount(l);
}

static int start_mount(const struct local *l)
{
	char *args[] = {l->self, "mount", "-f", l->conf, l->mnt, NULL};

	if (clear_dead_mount(l) < 0)
		return -1;
	if (is_mounted(l->mnt)) {
		printf("%s is mounted already\n", l->mnt);
		return 0;
	}
	if (g_mkdir_with_parents(l->mnt, 0755) < 0) {
		fprintf(stderr, "shardfs up: cannot create %s: %s\n", l->mnt, g_strerror(errno));
		return -1;
	}
	pid_t pid = start_process(l, "mount", args);
	if (pid < 0)
		return -1;
	for (int t = 0; t < START_TIMEOUT_S * 10; t++) {
		if (is_mounted(l->mnt)) {
			printf("mounted on %s, log %s/mount.log\n", l->mnt, l->dir);
			return 0;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		g_usleep(100000);
	}
	fprintf(stderr, "shardfs up: the mount on %s did not come up\n", l->mnt);
	kill(pid, SIGTERM);
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
	GOptionEntry entries[] = {G_OPTION_ENTRY_NULL};

	if (!tools_parse(argc, argv, entries, summary))
		return FALSE;
	if (argc > 2) {
		fprintf(stderr, "usage: shardfs %s [DIR]\n", what);
		return FALSE;
	}
	l->self = g_file_read_link("/proc/self/exe", NULL);
	l->dir = g_canonicalize_filename(argc == 2 ? argv[1] : DEFAULT_DIR, NULL);
	l->conf = in_dir(l, "cluster.conf");
	l->mnt = in_dir(l, "mnt");
	return l->self != NULL;
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

	if (is_mounted(l->mnt)) {
		if (unmount(l) < 0) {
			fprintf(stderr, "shardfs down: close the files open in %s and run it again; "
					"nothing was stopped\n", l->mnt);
			return -1;
		}
		printf("unmounted %s\n", l->mnt);
	}
	if (pid && !wait_exit(pid, STOP_TIMEOUT_S)) {
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
		if (!wait_exit(pids[i], STOP_TIMEOUT_S)) {
			fprintf(stderr, "shardfs down: node %u did not stop; killing it\n", id);
			kill(pids[i], SIGKILL);
		}
		printf("node %u stopped\n", id);
	}
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
		rc = 0;
	}
	local_clear(&l);
	return rc;
}
