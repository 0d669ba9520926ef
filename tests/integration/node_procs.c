/*
 * node_procs.c - see node_procs.h. Failures abort the test (cmocka).
 */
#include "node_procs.h"
#include "wal_test.h"

#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

uint16_t node_procs_free_udp_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &len);
	close(fd);
	return ntohs(a.sin_port);
}

int node_procs_run(const char *bin, char **args, char **out)
{
	GPtrArray *argv = g_ptr_array_new();
	gint status = -1;

	g_ptr_array_add(argv, (char *)bin);
	for (char **a = args; *a; a++)
		g_ptr_array_add(argv, *a);
	g_ptr_array_add(argv, NULL);
	g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, NULL,
		     &status, NULL);
	g_ptr_array_free(argv, TRUE);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void node_procs_init(struct node_procs *np, const char *bin, unsigned n, const char *ec)
{
	GPtrArray *args = g_ptr_array_new_with_free_func(g_free);

	assert_true(n >= 1 && n <= NODE_PROCS_MAX);
	*np = (struct node_procs){.bin = bin, .dir = test_mkdtemp(), .n = n};
	g_ptr_array_add(args, g_strdup("init"));
	g_ptr_array_add(args, g_strdup("--dir"));
	g_ptr_array_add(args, g_strdup(np->dir));
	g_ptr_array_add(args, g_strdup("--ec"));
	g_ptr_array_add(args, g_strdup(ec));
	for (unsigned i = 1; i <= n; i++) {
		g_ptr_array_add(args, g_strdup("--node"));
		g_ptr_array_add(args, g_strdup_printf("%u=127.0.0.1:%u", i, node_procs_free_udp_port()));
	}
	g_ptr_array_add(args, NULL);
	assert_int_equal(node_procs_run(bin, (char **)args->pdata, NULL), 0);
	g_ptr_array_free(args, TRUE);
	np->conf = g_build_filename(np->dir, "cluster.conf", NULL);
}

void node_procs_start(struct node_procs *np, unsigned id)
{
	char *log = g_strdup_printf("%s/node-%u.log", np->dir, id);
	char *idstr = g_strdup_printf("%u", id);
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		FILE *f = freopen(log, "a", stderr);

		(void)f;
		execl(np->bin, np->bin, "node", "--config", np->conf, "--id", idstr,
		      "--drain-seconds", "5", (char *)NULL);
		_exit(127);
	}
	g_free(log);
	g_free(idstr);
	np->pids[id] = pid;
}

int node_procs_stop(struct node_procs *np, unsigned id, int sig)
{
	int status = 0;

	if (np->pids[id] <= 0)
		return -1;
	kill(np->pids[id], SIGCONT);
	kill(np->pids[id], sig);
	waitpid(np->pids[id], &status, 0);
	np->pids[id] = 0;
	return status;
}

void node_procs_destroy(struct node_procs *np)
{
	for (unsigned id = 1; id <= np->n; id++)
		node_procs_stop(np, id, SIGKILL);
	test_rmdir(np->dir);
	g_free(np->dir);
	g_free(np->conf);
}
