/*
 * local_cluster.c - local clusters of shardfs processes (see
 * local_cluster.h): `shardfs init`, node and mount processes started and
 * stopped by pid, the one is-mounted check.
 *
 * Waiting is polling: the processes waited for are not always our children
 * (`shardfs down` stops what an earlier `shardfs up` started), and a mount
 * or a cluster has no other way to say it is ready than to answer.
 */
#define G_LOG_DOMAIN "shardfs"

#include "local_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define POLL_US 20000
#define STOP_WAIT_S 60

static double now_s(void)
{
	return (double)g_get_monotonic_time() / 1e6;
}

uint16_t local_cluster_free_udp_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	uint16_t port = 0;

	if (fd < 0)
		return 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* ---- processes ---- */

struct child_setup {
	unsigned flags;
	pid_t parent;
};

/* In the child before exec. */
static void child_setup(gpointer data)
{
	const struct child_setup *s = data;

	setsid();
	if (!(s->flags & LOCAL_PROC_TIED))
		return;
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != s->parent) /* died before the prctl */
		_exit(127);
}

static void write_pidfile(const char *pidfile, pid_t pid)
{
	g_autofree char *text = g_strdup_printf("%d\n", (int)pid);
	GError *err = NULL;

	if (!g_file_set_contents(pidfile, text, -1, &err)) {
		fprintf(stderr, "shardfs: %s\n", err->message);
		g_error_free(err);
	}
}

pid_t local_proc_start(char **argv, const char *log, const char *pidfile, unsigned flags)
{
	struct child_setup setup = {.flags = flags, .parent = getpid()};
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	GError *err = NULL;
	GPid pid = 0;

	if (fd < 0) {
		fprintf(stderr, "shardfs: %s: %s\n", log, g_strerror(errno));
		return -1;
	}
	gboolean ok = g_spawn_async_with_fds(NULL, argv, NULL,
					     G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDIN_FROM_DEV_NULL,
					     child_setup, &setup, &pid, -1, fd, fd, &err);
	close(fd);
	if (!ok) {
		fprintf(stderr, "shardfs: cannot start %s: %s\n", argv[0], err->message);
		g_error_free(err);
		return -1;
	}
	if (pidfile)
		write_pidfile(pidfile, pid);
	return pid;
}

/* Gone, or a zombie that is not ours to reap. */
static gboolean proc_gone(pid_t pid, int *status)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
	g_autofree char *stat = NULL;
	int st = 0;

	pid_t r = waitpid(pid, &st, WNOHANG);

	if (r == pid) {
		if (status)
			*status = st;
		return TRUE;
	}
	/* A child of ours is reaped only by waitpid: judged by /proc, one that
	 * just became a zombie would count as gone with its status unread. */
	if (r == 0)
		return FALSE;
	if (kill(pid, 0) < 0 || !g_file_get_contents(path, &stat, NULL, NULL))
		return TRUE;
	const char *paren = strrchr(stat, ')'); /* pid (comm) STATE ... */
	return paren && paren[1] == ' ' && paren[2] == 'Z';
}

gboolean local_proc_wait_gone(pid_t pid, double secs, int *status)
{
	double deadline = now_s() + secs;

	for (;;) {
		if (proc_gone(pid, status))
			return TRUE;
		if (now_s() >= deadline)
			return FALSE;
		g_usleep(POLL_US);
	}
}

pid_t local_proc_recorded(const char *pidfile, const char *role, const char *conf)
{
	g_autofree char *text = NULL, *cmdline_path = NULL, *cmdline = NULL;
	gsize len = 0;

	if (!g_file_get_contents(pidfile, &text, NULL, NULL))
		return 0;
	pid_t pid = (pid_t)g_ascii_strtoll(text, NULL, 10);
	if (pid <= 0 || proc_gone(pid, NULL))
		return 0;
	cmdline_path = g_strdup_printf("/proc/%d/cmdline", (int)pid);
	if (!g_file_get_contents(cmdline_path, &cmdline, &len, NULL))
		return 0;
	/* NUL-separated: shardfs ROLE ... CONF ... */
	gboolean has_role = FALSE, has_conf = FALSE;
	for (const char *a = cmdline; a < cmdline + len; a += strlen(a) + 1) {
		has_role |= !strcmp(a, role);
		has_conf |= !strcmp(a, conf);
	}
	return has_role && has_conf ? pid : 0;
}

/* SIGCONT first: it may be frozen, and a stopped process takes no signal. */
static void proc_signal(pid_t pid, int sig)
{
	kill(pid, SIGCONT);
	kill(pid, sig);
}

/* Up to a minute for pid to go, then SIGKILL. */
static int proc_reap(pid_t pid, int *status)
{
	if (local_proc_wait_gone(pid, STOP_WAIT_S, status))
		return 0;
	fprintf(stderr, "shardfs: process %d did not stop; killing it\n", (int)pid);
	kill(pid, SIGKILL);
	local_proc_wait_gone(pid, STOP_WAIT_S, status);
	return -ETIMEDOUT;
}

/* ---- the cluster ---- */

void local_cluster_init(struct local_cluster *c, const char *self, const char *dir,
			unsigned nodes, unsigned flags)
{
	*c = (struct local_cluster){.self = g_strdup(self),
				    .dir = g_strdup(dir),
				    .conf = g_build_filename(dir, "cluster.conf", NULL),
				    .nodes = MIN(nodes, LOCAL_CLUSTER_MAX_NODES),
				    .flags = flags};
}

void local_cluster_fini(struct local_cluster *c)
{
	g_clear_pointer(&c->self, g_free);
	g_clear_pointer(&c->dir, g_free);
	g_clear_pointer(&c->conf, g_free);
}

/* Runs argv and waits for it, its output thrown away; 0 if it exited 0. */
/* The exit status of argv (stdout dropped), or -1 if it did not run or
 * was killed. */
static int run_quiet(char **argv, GSpawnFlags extra)
{
	GSpawnFlags flags = G_SPAWN_STDOUT_TO_DEV_NULL | extra;
	gint status = 1;

	if (!g_spawn_sync(NULL, argv, NULL, flags, NULL, NULL, NULL, NULL, &status, NULL))
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int local_cluster_create(const struct local_cluster *c, const char *ec)
{
	GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
	int rc;

	g_ptr_array_add(argv, g_strdup(c->self));
	g_ptr_array_add(argv, g_strdup("init"));
	g_ptr_array_add(argv, g_strdup("--dir"));
	g_ptr_array_add(argv, g_strdup(c->dir));
	for (unsigned id = 1; id <= c->nodes; id++) {
		g_ptr_array_add(argv, g_strdup("--node"));
		g_ptr_array_add(argv, g_strdup_printf("%u=127.0.0.1:%u", id,
						      local_cluster_free_udp_port()));
	}
	g_ptr_array_add(argv, g_strdup("--ec"));
	g_ptr_array_add(argv, g_strdup(ec));
	if (c->meta_url) {
		g_ptr_array_add(argv, g_strdup("--meta"));
		g_ptr_array_add(argv, g_strdup(c->meta_url));
	}
	g_ptr_array_add(argv, NULL);
	rc = run_quiet((char **)argv->pdata, 0) ? -EIO : 0;
	if (rc)
		fprintf(stderr, "shardfs: cannot create a cluster in %s\n", c->dir);
	g_ptr_array_free(argv, TRUE);
	return rc;
}

int local_cluster_node_start(struct local_cluster *c, unsigned id)
{
	g_autofree char *ids = g_strdup_printf("%u", id);
	g_autofree char *log = g_strdup_printf("%s/node-%u.log", c->dir, id);
	g_autofree char *pidfile = g_strdup_printf("%s/node-%u.pid", c->dir, id);
	GPtrArray *argv = g_ptr_array_new();
	char *head[] = {c->self, "node", "--config", c->conf, "--id", ids};
	pid_t pid;

	for (size_t i = 0; i < G_N_ELEMENTS(head); i++)
		g_ptr_array_add(argv, head[i]);
	for (char **a = c->node_args; a && *a; a++)
		g_ptr_array_add(argv, *a);
	g_ptr_array_add(argv, NULL);
	pid = local_proc_start((char **)argv->pdata, log, c->pidfiles ? pidfile : NULL, c->flags);
	g_ptr_array_free(argv, TRUE);
	if (pid < 0)
		return -EIO;
	if (id >= 1 && id <= LOCAL_CLUSTER_MAX_NODES)
		c->pids[id - 1] = pid;
	return 0;
}

int local_cluster_wait_up(const struct local_cluster *c, int secs)
{
	char *status[] = {c->self, "status", c->conf, NULL};

	/* Until the nodes listen it fails, which is no news: quiet. Parts with
	 * shards missing (status 3) do not keep the nodes from being up. */
	for (double deadline = now_s() + secs; now_s() < deadline; g_usleep(100000)) {
		int rc = run_quiet(status, G_SPAWN_STDERR_TO_DEV_NULL);

		if (rc == 0 || rc == 3)
			return 0;
	}
	return -ETIMEDOUT;
}

int local_cluster_start(struct local_cluster *c, int secs)
{
	for (unsigned id = 1; id <= c->nodes; id++)
		if (local_cluster_node_start(c, id))
			return -EIO;
	if (local_cluster_wait_up(c, secs) == 0)
		return 0;
	fprintf(stderr, "shardfs: the cluster did not come up within %d s (logs: %s/node-*.log)\n",
		secs, c->dir);
	return -ETIMEDOUT;
}

int local_cluster_node_stop(struct local_cluster *c, unsigned id, int sig)
{
	int status = -1;

	if (id < 1 || id > LOCAL_CLUSTER_MAX_NODES || c->pids[id - 1] <= 0)
		return -1;
	proc_signal(c->pids[id - 1], sig);
	proc_reap(c->pids[id - 1], &status);
	c->pids[id - 1] = 0;
	return status;
}

void local_cluster_stop(struct local_cluster *c)
{
	for (unsigned i = 0; i < LOCAL_CLUSTER_MAX_NODES; i++)
		if (c->pids[i] > 0)
			proc_signal(c->pids[i], SIGTERM);
	for (unsigned i = 0; i < LOCAL_CLUSTER_MAX_NODES; i++) {
		if (c->pids[i] > 0)
			proc_reap(c->pids[i], NULL);
		c->pids[i] = 0;
	}
}

/* ---- mounts ---- */

/* The mount point of one /proc/self/mountinfo line if its type is t:
 * "ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE ...". */
static char *mountinfo_point(const char *line, const char *type)
{
	char **f = g_strsplit(line, " ", 6);
	const char *sep = strstr(line, " - ");
	char *point = NULL;

	if (g_strv_length(f) >= 5 && sep) {
		g_autofree char *t = g_strndup(sep + 3, strcspn(sep + 3, " "));

		if (!strcmp(t, type))
			point = g_strcompress(f[4]); /* blanks and backslashes come in octal */
	}
	g_strfreev(f);
	return point;
}

gboolean local_mount_is_mounted(const char *path)
{
	g_autofree char *text = NULL;
	char *real = realpath(path, NULL); /* fails on a dead mount (ENOTCONN) */
	const char *want = real ? real : path;
	gboolean found = FALSE;

	if (g_file_get_contents("/proc/self/mountinfo", &text, NULL, NULL)) {
		char **lines = g_strsplit(text, "\n", -1);

		for (char **line = lines; *line && !found; line++) {
			g_autofree char *point = mountinfo_point(*line, LOCAL_MOUNT_TYPE);

			found = point && !strcmp(point, want);
		}
		g_strfreev(lines);
	}
	free(real);
	return found;
}

int local_mount_unmount(const char *mnt, char **why)
{
	char *argv[] = {"fusermount3", "-u", (char *)mnt, NULL};
	gchar *errout = NULL;
	gint status = 1;
	int rc = 0;

	if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
			  NULL, NULL, &errout, &status, NULL) ||
	    !g_spawn_check_wait_status(status, NULL))
		rc = -EBUSY;
	if (rc && why)
		*why = g_steal_pointer(&errout);
	g_free(errout);
	return rc;
}

int local_mount_stop(const char *mnt, pid_t pid)
{
	char *lazy[] = {"fusermount3", "-u", "-z", (char *)mnt, NULL};
	g_autofree char *why = NULL;
	int rc = 0, status = 0;

	if (pid <= 0)
		return 0;
	if (!local_mount_is_mounted(mnt)) { /* not yet, or no more: only the process */
		rc = -ENOENT;
	} else if (local_mount_unmount(mnt, &why) < 0) {
		fprintf(stderr, "shardfs: cannot unmount %s%s%s", mnt, why ? ": " : "\n",
			why ? why : "");
		run_quiet(lazy, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL);
		rc = -EBUSY;
	}
	if (rc < 0)
		kill(pid, SIGTERM);
	if (proc_reap(pid, &status) < 0)
		return -ETIMEDOUT;
	return rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

pid_t local_mount_start(const struct local_cluster *c, const char *mnt, const char *opts,
			const char *log, int secs)
{
	char *argv[] = {c->self, "mount", "-f", c->conf, (char *)mnt, "-o", (char *)opts, NULL};
	g_autofree char *pidfile = g_build_filename(c->dir, "mount.pid", NULL);
	pid_t pid;

	if (!opts)
		argv[5] = NULL;
	pid = local_proc_start(argv, log, c->pidfiles ? pidfile : NULL, c->flags);
	if (pid < 0)
		return -EIO;
	for (double deadline = now_s() + secs; now_s() < deadline; g_usleep(POLL_US)) {
		if (local_mount_is_mounted(mnt))
			return pid;
		if (proc_gone(pid, NULL))
			return -ECHILD;
	}
	local_mount_stop(mnt, pid);
	return -ETIMEDOUT;
}
