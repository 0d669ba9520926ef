/*
 * bench_cluster.c - throwaway local clusters for the benches (see
 * bench_cluster.h), and the process helpers they share.
 */
#define G_LOG_DOMAIN "shardfs"

#include "bench_cluster.h"
#include "shardfs.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_TRIES 100 /* looks at `shardfs status`, 100 ms apart */

int bench_run(char **argv, char **out)
{
	GSpawnFlags flags = G_SPAWN_SEARCH_PATH | (out ? 0 : G_SPAWN_STDOUT_TO_DEV_NULL);
	GError *err = NULL;
	gint status = 1;

	if (!g_spawn_sync(NULL, argv, NULL, flags, NULL, NULL, out, NULL, &status, &err)) {
		fprintf(stderr, "shardfs: %s\n", err->message);
		g_error_free(err);
		return -1;
	}
	return g_spawn_check_wait_status(status, NULL) ? 0 : -1;
}

uint16_t bench_free_udp_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &len);
	close(fd);
	return ntohs(a.sin_port);
}

long bench_proc_status_kib(pid_t pid, const char *field)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)pid);
	g_autofree char *text = NULL;
	const char *at;

	if (!g_file_get_contents(path, &text, NULL, NULL) || !(at = strstr(text, field)))
		return -1;
	return strtol(at + strlen(field), NULL, 10);
}

double bench_proc_cpu_s(pid_t pid)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
	g_autofree char *text = NULL;
	unsigned long ut = 0, st = 0;
	const char *p;

	if (!g_file_get_contents(path, &text, NULL, NULL) || !(p = strrchr(text, ')')))
		return 0;
	/* fields 14 and 15, counted after the command name */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int bench_cluster_init(struct bench_cluster *c, const char *self, const char *dir, unsigned nodes,
		       unsigned k, unsigned m)
{
	char *argv[4 + 2 * BENCH_CLUSTER_MAX_NODES + 3] = {(char *)self, "init", "--dir",
							   (char *)dir};
	g_autofree char *ec = g_strdup_printf("%u+%u", k, m);
	GPtrArray *specs = g_ptr_array_new_with_free_func(g_free);
	int n = 4;

	*c = (struct bench_cluster){.self = self,
				    .dir = g_strdup(dir),
				    .conf = g_build_filename(dir, "cluster.conf", NULL),
				    .nodes = MIN(nodes, BENCH_CLUSTER_MAX_NODES)};
	for (unsigned i = 1; i <= c->nodes; i++) {
		g_ptr_array_add(specs,
				g_strdup_printf("%u=127.0.0.1:%u", i, bench_free_udp_port()));
		argv[n++] = "--node";
		argv[n++] = specs->pdata[i - 1];
	}
	argv[n++] = "--ec";
	argv[n++] = ec;
	int rc = bench_run(argv, NULL);
	if (rc)
		fprintf(stderr, "shardfs: cannot create a cluster in %s\n", dir);
	g_ptr_array_free(specs, TRUE);
	return rc;
}

/* In a forked child: the node, logging to DIR/node-N.log; never returns. */
static void exec_node(const struct bench_cluster *c, unsigned id)
{
	g_autofree char *log = g_strdup_printf("%s/node-%u.log", c->dir, id);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	char ids[16];

	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	setsid();
	/* A bench that dies (killed, crashed) takes its nodes with it. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(127);
	g_snprintf(ids, sizeof(ids), "%u", id);
	execl(c->self, c->self, "node", "--config", c->conf, "--id", ids, (char *)NULL);
	_exit(127);
}

/* `shardfs status`, quiet: until the nodes listen it fails, which is no news. */
static gboolean all_up(const struct bench_cluster *c)
{
	char *argv[] = {(char *)c->self, "status", c->conf, NULL};
	GSpawnFlags flags = G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL;
	gint status = 1;

	return g_spawn_sync(NULL, argv, NULL, flags, NULL, NULL, NULL, NULL, &status, NULL) &&
	       g_spawn_check_wait_status(status, NULL);
}

int bench_cluster_start(struct bench_cluster *c)
{

	for (unsigned i = 0; i < c->nodes; i++) {
		if ((c->pids[i] = fork()) == 0)
			exec_node(c, i + 1);
		if (c->pids[i] < 0) {
			c->pids[i] = 0;
			fprintf(stderr, "shardfs: cannot start a bench node\n");
			return -1;
		}
	}
	for (int tries = 0; tries < START_TRIES; tries++) {
		if (all_up(c))
			return 0;
		g_usleep(100000);
	}
	fprintf(stderr, "shardfs: the bench cluster did not come up (logs: %s/node-*.log)\n",
		c->dir);
	return -1;
}

void bench_cluster_stop(struct bench_cluster *c)
{
	for (unsigned i = 0; i < c->nodes; i++)
		if (c->pids[i] > 0)
			kill(c->pids[i], SIGTERM);
	for (unsigned i = 0; i < c->nodes; i++) {
		if (c->pids[i] > 0)
			waitpid(c->pids[i], NULL, 0);
		c->pids[i] = 0;
	}
}

void bench_cluster_fini(struct bench_cluster *c)
{
	g_clear_pointer(&c->dir, g_free);
	g_clear_pointer(&c->conf, g_free);
}

int bench_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

#define MOUNT_WAIT_S 30

static double now_s(void)
{
	return (double)g_get_monotonic_time() / 1e6;
}

/* In the mount's child before exec: a session of its own (a Ctrl-C meant
 * for the bench must not unmount it under a running step), and SIGTERM,
 * which makes it unmount, when the bench dies. */
static void detach_child(gpointer data)
{
	(void)data;
	setsid();
	prctl(PR_SET_PDEATHSIG, SIGTERM);
}

int bench_mounted(const char *mnt)
{
	g_autofree char *parent = g_path_get_dirname(mnt);
	struct stat m, p;

	return stat(mnt, &m) == 0 && stat(parent, &p) == 0 && m.st_dev != p.st_dev;
}

/* Waits up to secs for pid to exit, then kills it; TRUE if it exited 0. */
static gboolean reap_within(pid_t pid, double secs)
{
	double deadline = now_s() + secs;
	int status = 0;
	pid_t got;

	while ((got = waitpid(pid, &status, WNOHANG)) == 0 && now_s() < deadline)
		g_usleep(50000);
	if (got == 0) {
		fprintf(stderr, "shardfs: the mount did not exit; killing it\n");
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return FALSE;
	}
	return got == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int bench_mount_stop(const char *mnt, pid_t pid)
{
	char *umount[] = {"fusermount3", "-u", (char *)mnt, NULL};
	char *lazy[] = {"fusermount3", "-u", "-z", (char *)mnt, NULL};

	if (pid <= 0)
		return 0;
	int rc = bench_run(umount, NULL);
	if (rc) {
		bench_run(lazy, NULL);
		kill(pid, SIGTERM);
	}
	if (!reap_within(pid, 60))
		rc = -1;
	return rc;
}

pid_t bench_mount_start(const char *self, const char *conf, const char *mnt, const char *opts,
			const char *log)
{
	char *argv[] = {(char *)self, "mount", (char *)conf, (char *)mnt, "-f", "-o", (char *)opts,
			NULL};
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	GError *err = NULL;
	GPid pid;

	if (!opts)
		argv[5] = NULL;
	if (fd < 0 || !g_spawn_async_with_fds(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
					      detach_child, NULL, &pid, -1, fd, fd, &err)) {
		fprintf(stderr, "shardfs: cannot start the mount: %s\n",
			err ? err->message : g_strerror(errno));
		g_clear_error(&err);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	for (double deadline = now_s() + MOUNT_WAIT_S; now_s() < deadline;) {
		if (bench_mounted(mnt))
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			fprintf(stderr, "shardfs: the mount exited (log: %s)\n", log);
			return -1;
		}
		g_usleep(20000);
	}
	fprintf(stderr, "shardfs: no mount on %s after %d s\n", mnt, MOUNT_WAIT_S);
	bench_mount_stop(mnt, pid);
	return -1;
}
