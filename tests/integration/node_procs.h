/*
 * node_procs.h - real `shardfs node` processes for C integration tests:
 * a cluster in a temporary directory on free loopback ports, nodes started
 * and stopped by pid, through the local cluster manager
 * (tools/local_cluster.h) that `shardfs up` and the benches use too.
 */
#ifndef SHARDFS_TESTS_NODE_PROCS_H
#define SHARDFS_TESTS_NODE_PROCS_H

#include "tools/local_cluster.h"

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

#define NODE_PROCS_MAX LOCAL_CLUSTER_MAX_NODES

struct node_procs {
	struct local_cluster lc; /* nodes with --drain-seconds 5, tied to the test */
	char *dir, *conf;	 /* borrowed from lc */
};

/* Runs `shardfs ARGS...` (NULL-terminated); its exit status, stdout in *out. */
int node_procs_run(const char *bin, char **args, char **out);
/* A new cluster of n nodes in a temporary directory (not started). */
void node_procs_init(struct node_procs *np, const char *bin, unsigned n, const char *ec);
void node_procs_start(struct node_procs *np, unsigned id);
/* Sends sig and reaps; the wait status, or -1 if it was not running. */
int node_procs_stop(struct node_procs *np, unsigned id, int sig);
/* Kills what runs and removes the directory. */
void node_procs_destroy(struct node_procs *np);

/*
 * The main of a test binary whose argv[1] is the shardfs binary: sets
 * *bin to it (usage error, exit status 2, without it), ignores SIGPIPE
 * (a killed node must not kill the test) and runs the n tests.
 */
struct CMUnitTest;
int node_procs_run_tests(int argc, char **argv, const char **bin, const struct CMUnitTest *tests,
			 size_t n);
#define node_procs_main(argc, argv, bin, tests)                                                 \
	node_procs_run_tests(argc, argv, bin, tests, sizeof(tests) / sizeof((tests)[0]))

#endif
