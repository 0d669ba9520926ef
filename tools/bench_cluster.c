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
