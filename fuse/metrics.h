/*
 * metrics.h - what a mount measures for its /metrics endpoint (private to
 * fuse/): every FUSE request, timed from its arrival on /dev/fuse to its
 * reply (mount.c's custom I/O hands both over), so that replies sent later
 * by another thread (a parked stream read) are timed right.
 */
#ifndef SHARDFS_FUSE_METRICS_H
#define SHARDFS_FUSE_METRICS_H

#include <glib.h>
#include <stddef.h>
#include <sys/uio.h>

struct fs;
struct fs_metrics;

struct fs_metrics *fs_metrics_new(void);
void fs_metrics_free(struct fs_metrics *m);
/* A request read from /dev/fuse (n bytes in buf). */
void fs_metrics_request(struct fs_metrics *m, const void *buf, size_t n);
/* A reply written to /dev/fuse. */
void fs_metrics_reply(struct fs_metrics *m, const struct iovec *iov, int count);
/* The mount's whole exposition: FUSE requests, the store and the process. */
void fs_metrics_write(GString *out, void *fs);

#endif
