/*
 * node_stream.h - the home node's side of stream files: one ring buffer
 * per stream, written by appends and read by long-polling readers
 * (protocol in net/net_proto.h, STREAM_* opcodes).
 */
#ifndef SHARDFS_NODE_STREAM_H
#define SHARDFS_NODE_STREAM_H

#include "net/net.h"

struct node_streams;

struct node_streams *node_streams_new(void);
void node_streams_free(struct node_streams *s);
/* Answers r now or parks it until data, room or its wait ends. Never
 * blocks: runs on the network loop thread. */
void node_streams_handle(struct node_streams *s, struct net_request *r);
/* Ends the waits that are over and drops handles whose lease ran out;
 * called a few times a second. */
void node_streams_tick(struct node_streams *s);
/* Answers every parked request with status (the node stops). */
void node_streams_stop(struct node_streams *s, int status);

#endif
