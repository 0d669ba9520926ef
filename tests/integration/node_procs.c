/*
 * node_procs.c - see node_procs.h. Failures abort the test (cmocka).
 */
#include "node_procs.h"
#include "fixture.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

/* A short drain: tests stop nodes often. */
static char *node_args[] = {"--drain-seconds", "5", NULL};

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
	g_autofree char *dir = test_mkdtemp();

	assert_true(n >= 1 && n <= NODE_PROCS_MAX);
	local_cluster_init(&np->lc, bin, dir, n, LOCAL_PROC_TIED);
	np->lc.node_args = node_args;
	np->dir = np->lc.dir;
	np->conf = np->lc.conf;
	assert_int_equal(local_cluster_create(&np->lc, ec), 0);
}

void node_procs_start(struct node_procs *np, unsigned id)
{
	assert_int_equal(local_cluster_node_start(&np->lc, id), 0);
}

int node_procs_stop(struct node_procs *np, unsigned id, int sig)
{
	return local_cluster_node_stop(&np->lc, id, sig);
}

void node_procs_destroy(struct node_procs *np)
{
	for (unsigned id = 1; id <= np->lc.nodes; id++)
		node_procs_stop(np, id, SIGKILL);
	test_rmdir(np->dir);
	local_cluster_fini(&np->lc);
}

int node_procs_run_tests(int argc, char **argv, const char **bin, const struct CMUnitTest *tests,
			 size_t n)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH-TO-SHARDFS\n", argv[0]);
		return 2;
	}
	*bin = argv[1];
	signal(SIGPIPE, SIG_IGN);
	return _cmocka_run_group_tests("tests", tests, n, NULL, NULL);
}
