/*
 * node.h - the node service: a QUIC request server (net) in front of the
 * shard store (wal) and the home rings of stream files (stream_home.h).
 * `shardfs node` is this service plus a command line, signals and systemd;
 * tests run it in-process.
 *
 * Requests (net/net_proto.h): PING is answered at once; a PUT goes to the
 * store's group commit and is answered once the shard is durable; STREAM_*
 * requests are answered (or parked) from memory; GET, STAT, DELETE, LIST
 * and STATUS run on a pool of worker threads, so that no disk wait ever
 * blocks the network loop. STATUS answers "key=value\n" lines: node,
 * version, shards, live_bytes, disk_bytes, free_bytes, total_bytes,
 * uptime_s, store_error.
 *
 * Life cycle: node_service_new() opens (recovers) the store;
 * node_service_start() binds the port and serves; node_service_stop()
 * refuses new requests (-ESHUTDOWN), answers parked stream requests with
 * -ESHUTDOWN, lets the workers finish, syncs the store and writes its
 * checkpoint (every queued put answered from its durability callback),
 * then drains the server: every request the service took is answered
 * before the connections close. After stop the port is closed and
 * clients see transport errors. A stopped service is not restarted: free
 * it and make a new one on the same data directory.
 *
 * Threads: the calls below are made by one controlling thread. The
 * service runs its own threads: the server's loop thread, the workers, the
 * store's commit threads and a ticker that expires stream waits and leases.
 */
#ifndef SHARDFS_NODE_NODE_H
#define SHARDFS_NODE_NODE_H

#include <stdint.h>

struct net_tls;
struct node_service;

struct node_service_config {
	uint32_t id;		/* the node id STATUS reports */
	const char *data_dir;	/* the store's directory, created if missing */
	uint64_t segment_size;	/* 0: the store's default */
	const char *host;	/* the address to listen on */
	uint16_t port;		/* 0: any free port (see node_service_port) */
	struct net_tls *tls;	/* the node's identity, borrowed until free */
	unsigned workers;	/* threads for disk reads (8) */
	unsigned scrub_interval_s; /* between background scrub passes; 0: none */
	uint64_t scrub_bytes_per_s; /* their rate; 0: unbounded */
};

/* A full background scrub a day at 32 MiB/s: 2.7 TiB a day at most, a
 * small share of a disk's bandwidth. */
#define NODE_SCRUB_INTERVAL_S 86400u
#define NODE_SCRUB_BYTES_PER_S (32ull << 20)

/* Fills c with the defaults; the caller then sets id, data_dir, host,
 * port and tls. */
void node_service_config_default(struct node_service_config *c);
/*
 * Opens the store in c->data_dir (the strings of c are copied, tls is
 * borrowed). Returns 0 or the store's error (common_strerror() names it);
 * *out untouched on failure.
 */
int node_service_new(const struct node_service_config *c, struct node_service **out);
/* Binds the port and serves. 0, or a negative errno of the bind (the
 * service may then only be freed). */
int node_service_start(struct node_service *s);
/* The bound UDP port, once started. */
uint16_t node_service_port(const struct node_service *s);
/* The store's sticky error: 0 while it is healthy (a failed fsync makes it
 * read-only until a restart recovers it); -ESHUTDOWN once stopped. */
int node_service_store_error(const struct node_service *s);
/* The node's figures in Prometheus's text format (common/metrics.h):
 * requests by op, the store (wal_metrics), its disk, stream rings and the
 * process. Any thread, while started (stop the metrics endpoint before
 * node_service_stop). */
void node_service_metrics(struct node_service *s, GString *out);
/* The ordered stop described above; waits up to drain_ms for responses to
 * be delivered. No-op if not started or already stopped. */
void node_service_stop(struct node_service *s, unsigned drain_ms);
/* Stops (with no drain wait) if still serving, closes the store, frees s.
 * NULL is a no-op. */
void node_service_free(struct node_service *s);

#endif
