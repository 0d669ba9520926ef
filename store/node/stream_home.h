/*
 * stream_home.h - the home node's side of stream files: one ring buffer
 * per stream, written by appends and read by long-polling readers
 * (protocol in net/net_proto.h, STREAM_* opcodes).
 *
 * Threads: every call may come from any thread; one mutex guards all
 * streams and replies are sent after it is released, so a call never
 * waits for the disk or the network. Memory only: nothing survives the
 * process (a restarted node continues offsets from the base a client
 * opens with).
 */
#ifndef SHARDFS_NODE_STREAM_HOME_H
#define SHARDFS_NODE_STREAM_HOME_H

#include "net/net.h"

struct node_streams;

struct node_streams *node_streams_new(void);
/* Answers every parked request with -ESHUTDOWN, then frees s (NULL: no-op). */
void node_streams_free(struct node_streams *s);
/* Answers r (a STREAM_* request) now or parks it until data, room or its
 * wait ends. Never blocks: runs on the network loop thread. */
void node_streams_handle(struct node_streams *s, struct net_request *r);
/* Ends the waits that are over and drops handles whose lease ran out;
 * called a few times a second. */
void node_streams_tick(struct node_streams *s);
/* node_streams_tick() as if the monotonic clock (g_get_monotonic_time())
 * read now_us: lets a caller that owns the clock expire leases and waits. */
void node_streams_tick_at(struct node_streams *s, gint64 now_us);
/* Answers every parked request with status (the node stops). */
void node_streams_stop(struct node_streams *s, int status);

/* Over every stream the node holds (streams are kept for the process's
 * life, so bytes_dropped only grows). */
struct node_stream_totals {
	uint64_t streams, writers, readers; /* readers: local readers of every mount */
	uint64_t ring_bytes;		    /* capacity of the rings */
	uint64_t bytes_dropped;		    /* overwritten before a reader got them */
};
void node_streams_totals(struct node_streams *s, struct node_stream_totals *t);

#endif
