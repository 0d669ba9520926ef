/*
 * local_cluster.h - local shardfs clusters on 127.0.0.1, run as processes
 * of the shardfs binary: `shardfs up`/`down`, the benches and the C
 * integration tests all start and stop their nodes and mounts here.
 *
 * A cluster is a directory made by `shardfs init` (N nodes on free loopback
 * UDP ports) and one `shardfs node` process per node, each logging to
 * DIR/node-ID.log. Processes run in a session of their own (a Ctrl-C meant
 * for the caller does not reach them) and are known by pid:
 *
 *   - tied (LOCAL_PROC_TIED) processes get SIGTERM when the thread that
 *     started them dies, so a bench or test killed half-way leaves no daemon
 *     behind; they are started from the main thread for that reason;
 *   - the others outlive the caller (`shardfs up`), their pid recorded in
 *     DIR/NAME.pid; local_proc_recorded() trusts a pid file only if
 *     /proc/PID/cmdline is still this cluster's `shardfs ROLE`, since pids
 *     are reused.
 *
 * A mount counts as mounted when /proc/self/mountinfo lists a fuse.shardfs
 * file system at exactly that path: the one rule, also when the mount's
 * process is gone (the kernel then answers ENOTCONN) and without a stat()
 * that a busy or dead FUSE daemon could block.
 *
 * Functions print what went wrong on stderr (prefixed "shardfs: ") and
 * return 0 or a negative errno, or a pid. Nothing here is thread-safe: one
 * thread drives a cluster.
 */
#ifndef SHARDFS_LOCAL_CLUSTER_H
#define SHARDFS_LOCAL_CLUSTER_H

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

#define LOCAL_CLUSTER_MAX_NODES 8
#define LOCAL_MOUNT_TYPE "fuse.shardfs"

/* How a process is started. */
enum local_proc_flags {
	LOCAL_PROC_TIED = 1 << 0, /* SIGTERM when the starting thread dies */
};

struct local_cluster {
	char *self;	  /* the shardfs binary; owned */
	char *dir;	  /* the cluster's directory, as given; owned */
	char *conf;	  /* DIR/cluster.conf; owned */
	unsigned nodes;	  /* ids 1..nodes */
	unsigned flags;	  /* local_proc_flags of the nodes and mounts started */
	gboolean pidfiles; /* record DIR/node-ID.pid and DIR/mount.pid */
	char **node_args; /* extra arguments of every node, NULL-ended; borrowed, may be NULL */
	const char *meta_url; /* the metadata of a cluster created; borrowed, NULL: SQLite's */
	pid_t pids[LOCAL_CLUSTER_MAX_NODES]; /* by id - 1; 0: not started by us */
};

/* A UDP port on 127.0.0.1 free at the time of the call, or 0. */
uint16_t local_cluster_free_udp_port(void);

/*
 * Sets c up for the cluster in dir (nothing started, nothing created):
 * nodes ids 1..nodes (at most LOCAL_CLUSTER_MAX_NODES), the given flags.
 * local_cluster_fini frees it.
 */
void local_cluster_init(struct local_cluster *c, const char *self, const char *dir,
			unsigned nodes, unsigned flags);

/* Runs `shardfs init` in c->dir, c->nodes nodes on free ports, erasure
 * code ec ("K+M"); its stdout goes to /dev/null. 0 or -EIO. */
int local_cluster_create(const struct local_cluster *c, const char *ec);

/* Starts node id (its log DIR/node-ID.log); 0 or a negative errno. */
int local_cluster_node_start(struct local_cluster *c, unsigned id);

/* Waits up to secs until `shardfs status` answers for every node: 0, or
 * -ETIMEDOUT. */
int local_cluster_wait_up(const struct local_cluster *c, int secs);

/* Starts every node, then local_cluster_wait_up(c, secs); the reason
 * printed on failure. Nodes already started stay in c->pids. */
int local_cluster_start(struct local_cluster *c, int secs);

/* Sends sig to node id (after SIGCONT: it may be frozen) and waits up to a
 * minute for it, then SIGKILL. Its wait status, or -1 if it was not
 * running or is not our child. */
int local_cluster_node_stop(struct local_cluster *c, unsigned id, int sig);

/* SIGTERM to every node started, all first so that they drain side by
 * side, then waits for each as local_cluster_node_stop does. */
void local_cluster_stop(struct local_cluster *c);

/* Frees what local_cluster_init allocated; processes and files stay. */
void local_cluster_fini(struct local_cluster *c);

/* ---- processes ---- */

/*
 * Starts argv (argv[0] a path) in a session of its own, stdin from
 * /dev/null, stdout and stderr appended to log; its pid written to pidfile
 * when given. Returns the pid (to be reaped by the caller) or -1.
 */
pid_t local_proc_start(char **argv, const char *log, const char *pidfile, unsigned flags);

/* The pid in pidfile if that process still runs `shardfs ROLE ... CONF`,
 * else 0. */
pid_t local_proc_recorded(const char *pidfile, const char *role, const char *conf);

/* Waits up to secs for pid to be gone (a zombie counts: an orphan is
 * reaped by whatever init runs). A child of ours is reaped, its wait status
 * in *status when given. TRUE if it went. */
gboolean local_proc_wait_gone(pid_t pid, double secs, int *status);

/* ---- mounts ---- */

/* Whether a fuse.shardfs file system is mounted on path. */
gboolean local_mount_is_mounted(const char *path);

/*
 * Starts `shardfs mount -f CONF MNT [-o OPTS]` for cluster c (c->flags;
 * DIR/mount.pid if c->pidfiles), logging to log, and waits up to secs for
 * the mount. Returns its pid; else the mount process is stopped and the
 * result is -ECHILD if it exited, -ETIMEDOUT if no mount came, or -EIO if
 * it could not start.
 */
pid_t local_mount_start(const struct local_cluster *c, const char *mnt, const char *opts,
			const char *log, int secs);

/* fusermount3 -u mnt: 0, or -EBUSY with fusermount3's complaint in *why
 * (g_free'd by the caller; may be NULL) when given. */
int local_mount_unmount(const char *mnt, char **why);

/*
 * Stops a mount this process started: unmounts (lazily and with SIGTERM if
 * refused, saying why), then waits up to a minute for the process, killing
 * it after. 0 if the unmount and the exit were both clean.
 */
int local_mount_stop(const char *mnt, pid_t pid);

#endif
