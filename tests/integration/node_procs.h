/*
 * node_procs.h - real `shardfs node` processes for C integration tests:
 * `shardfs init` on free loopback ports, start and stop by pid.
 */
#ifndef SHARDFS_TESTS_NODE_PROCS_H
#define SHARDFS_TESTS_NODE_PROCS_H

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

#define NODE_PROCS_MAX 8

struct node_procs {
	const char *bin; /* the shardfs binary */
	char *dir, *conf;
	unsigned n;
	pid_t pids[NODE_PROCS_MAX + 1]; /* by node id, 0 when stopped */
};

uint16_t node_procs_free_udp_port(void);
/* Runs `shardfs ARGS...` (NULL-terminated); its exit status, stdout in *out. */
int node_procs_run(const char *bin, char **args, char **out);
/* A new cluster of n nodes in a temporary directory (not started). */
void node_procs_init(struct node_procs *np, const char *bin, unsigned n, const char *ec);
void node_procs_start(struct node_procs *np, unsigned id);
/* Sends sig and reaps; the wait status, or -1 if it was not running. */
int node_procs_stop(struct node_procs *np, unsigned id, int sig);
/* Kills what runs and removes the directory. */
void node_procs_destroy(struct node_procs *np);

#endif
