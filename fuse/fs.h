/*
 * fs.h - the shardfs FUSE filesystem (libfuse3 low-level API).
 *
 * The mount maps FUSE inode numbers one to one onto metadata inode
 * numbers (stable across remounts), runs every namespace operation as one
 * metadata transaction, and moves file data through the object layer
 * (store.h). It knows nothing of QUIC or of the WAL.
 */
#ifndef SHARDFS_FUSE_FS_H
#define SHARDFS_FUSE_FS_H

#include <stdbool.h>
#include <stdint.h>

struct fs_mount_options {
	const char *cluster_conf;
	const char *mountpoint;
	const char *fuse_opts; /* -o options for the kernel and libfuse, or NULL */
	const char *stream_dirs; /* made stream directories at mount (':'-separated), or NULL */
	bool foreground;
	bool debug;
	unsigned max_threads; /* FUSE worker threads (16) */
	unsigned repair_interval_s; /* pause between repair passes; 0: no repair in this mount */
	uint64_t repair_bytes_per_s; /* the repairer's read rate at most; 0: unbounded */
	const char *metrics_addr;   /* ADDR:PORT of the /metrics endpoint, or NULL: none */
	unsigned meta_connections;  /* metadata connections the FUSE threads share; 0: 8 */
	unsigned session_lease_s;   /* silence after which others reclaim the session; 0: 30 */
	unsigned backup_interval_s; /* the metadata backed up into the cluster this often at most
				     * apart, and at unmount, by one mount; 0: never */
	unsigned backups_kept;	    /* backups in the cluster (0: STORE_BACKUPS_KEPT) */
};

/* Mounts and serves until unmounted; returns the process exit status (0,
 * or 1 with the reason logged). In the background (not foreground) it
 * daemonizes once the mount is up, so that the caller's exit means the
 * mount is usable. */
int fs_mount_run(const struct fs_mount_options *o);

#endif
