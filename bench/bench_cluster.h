/*
 * bench_cluster.h - throwaway local clusters for the benches, and the few
 * process helpers the benches share.
 *
 * A bench cluster is `shardfs init` of N nodes on free 127.0.0.1 ports in
 * a directory of the bench's, then one `shardfs node` process per node
 * (this same binary), started and stopped by pid. Node processes run in a
 * session of their own (a Ctrl-C meant for the bench does not reach them)
 * and get SIGTERM when the bench process dies, so a bench killed half-way
 * leaves no daemons behind.
 */
#ifndef SHARDFS_BENCH_CLUSTER_H
#define SHARDFS_BENCH_CLUSTER_H

#include <stdint.h>
#include <sys/types.h>

#define BENCH_CLUSTER_MAX_NODES 6

struct bench_cluster {
	const char *self; /* the shardfs binary; borrowed */
	char *dir;	  /* the cluster's directory; owned */
	char *conf;	  /* DIR/cluster.conf; owned */
	unsigned nodes;
	pid_t pids[BENCH_CLUSTER_MAX_NODES]; /* 0: not running */
};

/*
 * Runs `shardfs init` in dir for nodes nodes (at most
 * BENCH_CLUSTER_MAX_NODES) with erasure code k+m. Returns 0, or -1 with
 * the reason printed on stderr; c is set up either way, for
 * bench_cluster_fini.
 */
int bench_cluster_init(struct bench_cluster *c, const char *self, const char *dir, unsigned nodes,
		       unsigned k, unsigned m);

/*
 * Starts the node processes, each logging to DIR/node-N.log, and waits (up
 * to 10 s) until `shardfs status` sees every node up. Returns 0 or -1 (the
 * reason printed); nodes already started stay in c->pids for
 * bench_cluster_stop.
 */
int bench_cluster_start(struct bench_cluster *c);

/* Sends SIGTERM to every node started and waits for each to exit. */
void bench_cluster_stop(struct bench_cluster *c);

/* Frees what bench_cluster_init allocated; the directory stays. */
void bench_cluster_fini(struct bench_cluster *c);

/*
 * Runs argv (argv[0] searched in PATH) and waits for it. Its stdout goes
 * into *out (to be g_free'd) when out is given, else to /dev/null; stderr
 * is this process's. Returns 0 if it exited with status 0, else -1 (the
 * reason printed when it could not be started).
 */
int bench_run(char **argv, char **out);

/*
 * Starts `shardfs mount CONF MNT -f [-o opts]` as a child (a session of its
 * own, SIGTERM if this process dies), logging to log, and waits up to 30 s
 * for the mount. Returns its pid, or -1 with the reason printed.
 */
pid_t bench_mount_start(const char *self, const char *conf, const char *mnt, const char *opts,
			const char *log);

/* Whether a file system other than its parent's is mounted on mnt. */
int bench_mounted(const char *mnt);

/* fusermount3 -u (lazily if refused, then SIGTERM) and reaps the mount
 * process; 0 if both went cleanly. */
int bench_mount_stop(const char *mnt, pid_t pid);

/* Writes all n bytes (retrying short writes and EINTR); 0 or -1. */
int bench_write_all(int fd, const uint8_t *p, size_t n);

/* A UDP port on 127.0.0.1 free at the time of the call. */
uint16_t bench_free_udp_port(void);

/* A kB field of /proc/PID/status ("VmRSS:", "VmHWM:") in KiB, or -1. */
long bench_proc_status_kib(pid_t pid, const char *field);

/* CPU seconds (user + system) process pid has used so far, or 0. */
double bench_proc_cpu_s(pid_t pid);

#endif
