/*
 * node_fixture.h - in-process nodes for unit tests: a cluster CA and
 * certificates made by the code `shardfs init` uses, N node services
 * (store/node/node.h) on free 127.0.0.1 ports, each on its own data
 * directory, the cluster file that names them (for store_open) and a
 * client pool with the cluster's client identity.
 *
 * Failures abort the test (cmocka). Everything lives in one temporary
 * directory that node_fixture_destroy() removes. One thread drives a
 * fixture; the nodes run their own threads.
 */
#ifndef SHARDFS_TESTS_NODE_FIXTURE_H
#define SHARDFS_TESTS_NODE_FIXTURE_H

#include "net/net.h"

#include <stdbool.h>
#include <stdint.h>

#define NODE_FIXTURE_MAX 8

struct node_service;

struct node_fixture {
	char *dir;  /* everything below it */
	char *conf; /* the cluster file */
	unsigned n;
	uint16_t ports[NODE_FIXTURE_MAX + 1];		   /* by node id */
	struct net_tls *node_tls[NODE_FIXTURE_MAX + 1];	   /* by node id */
	struct node_service *svc[NODE_FIXTURE_MAX + 1];	   /* by node id, NULL when stopped */
	struct net_server *bare[NODE_FIXTURE_MAX + 1];	   /* node_fixture_init_handler */
	struct net_cluster *cluster; /* loaded from conf */
	struct net_tls *client_tls;
	struct net_pool *pool; /* 5 s request deadline */
};

/* n nodes (1..NODE_FIXTURE_MAX) started, with ec ("2+1") and part_size
 * (0: the default) in the cluster file. */
void node_fixture_init(struct node_fixture *f, unsigned n, const char *ec, uint64_t part_size);
/* One node whose server runs handler(arg, request) instead of the service:
 * for tests of one part of the service over the real transport. */
void node_fixture_init_handler(struct node_fixture *f, net_handler_fn handler, void *arg);
/* The data directory of node id (g_free it). */
char *node_fixture_data_dir(const struct node_fixture *f, unsigned id);
/* The ordered stop of node id (drain up to drain_ms), then frees it. */
void node_fixture_stop(struct node_fixture *f, unsigned id, unsigned drain_ms);
/* Starts node id again on its port and data directory. */
void node_fixture_start(struct node_fixture *f, unsigned id);
/* net_pool_call() to node id with the fixture's pool. */
int node_fixture_call(struct node_fixture *f, unsigned id, struct net_call *c);
/* A call in flight, to be waited for by the thread that made it. */
struct node_fixture_async {
	struct net_call call; /* filled by the caller before the send */
	GMutex lock;
	GCond cond;
	bool done; /* lock */
};

/* Sends a->call to node id without waiting. */
void node_fixture_call_async(struct node_fixture *f, unsigned id, struct node_fixture_async *a);
/* True once a->call is answered, waiting up to ms; a stays valid either
 * way and must be waited for before it is freed. */
bool node_fixture_async_wait(struct node_fixture_async *a, unsigned ms);

/* STREAM_OPEN of stream sid with handle token: ring bytes (0: default)
 * and mode (NET_STREAM_*); *head and *oldest (may be NULL) from the
 * answer. The node's status. */
int node_fixture_stream_open(struct node_fixture *f, unsigned id, const uint8_t sid[16],
			     uint64_t token, uint64_t ring, uint32_t mode, uint64_t *head,
			     uint64_t *oldest);
/* Fills c with a STREAM_APPEND of buf (borrowed) by handle token. */
void node_fixture_stream_append_call(struct net_call *c, const uint8_t sid[16], uint64_t token,
				     const void *buf, size_t len);
/* Fills c with a STREAM_READ at pos of up to cap bytes into buf by handle
 * token; body (NET_STREAM_READ_SIZE bytes) must outlive the call. */
void node_fixture_stream_read_call(struct net_call *c, const uint8_t sid[16], uint64_t token,
				   uint64_t pos, void *buf, size_t cap, uint8_t *body);

/* The number after "name=" in a "key=value\n" body (STATUS, STREAM_STAT);
 * fails the test if the key is absent. */
uint64_t node_fixture_kv(const char *body, const char *name);

/* Stops what runs and removes the directory. */
void node_fixture_destroy(struct node_fixture *f);

#endif
