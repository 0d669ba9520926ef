/*
 * net.h - the QUIC transport of shardfs: cluster file, certificates and
 * TLS identities, the node-side request server and the client pool.
 *
 * Wire format: net_proto.h. Everything rides on QUIC (ngtcp2 + GnuTLS),
 * mutual TLS against the cluster CA, ALPN "shardfs/1"; there is no
 * plaintext mode. net knows nothing of erasure coding or of the WAL: the
 * node daemon plugs a handler into the server.
 */
#ifndef SHARDFS_NET_H
#define SHARDFS_NET_H

#include "net_proto.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- cluster file ---- */

struct net_node_conf {
	uint32_t id;
	char *host;
	uint16_t port;
	uint32_t weight;
	char *zone;	/* NULL if none */
	char *cert;	/* absolute paths, NULL if not given */
	char *key;
	char *data_dir;
};

struct net_cluster {
	char *path, *dir;
	GKeyFile *kf;	 /* the whole file, for other modules' keys */
	char *ca;	 /* absolute paths */
	char *cert, *key; /* this host's client identity (may be NULL) */
	unsigned ec_k, ec_m;
	unsigned min_shards; /* durable shards a part needs to commit, k..k+m */
	unsigned down_out_s; /* silence after which a node's shards are rebuilt elsewhere */
	uint64_t part_size;
	char *meta_url;
	char *id;	 /* the cluster's identity (UUID), NULL in files made before it */
	GArray *nodes;	 /* struct net_node_conf */
};

#define NET_DOWN_OUT_DEFAULT_S 600u
#define NET_DOWN_OUT_MAX_S (30 * 86400)

/* Loads and checks a cluster file; -EINVAL with *err saying what is wrong. */
int net_cluster_load(const char *path, struct net_cluster **out, GError **err);
void net_cluster_free(struct net_cluster *c);
const struct net_node_conf *net_cluster_node(const struct net_cluster *c, uint32_t id);

/* ---- certificates (shardfs init) ---- */

gboolean net_pki_create_ca(const char *cert_path, const char *key_path, GError **err);
/* Issues a certificate signed by the CA; host (IP or DNS name, may be NULL)
 * goes in the subject alternative name; server adds the TLS server purpose. */
gboolean net_pki_issue(const char *ca_cert, const char *ca_key, const char *cn, const char *host,
		       gboolean server, const char *cert_path, const char *key_path, GError **err);

/* ---- TLS identity ---- */

struct net_tls;

/* Trusts ca, presents cert/key (both NULL: no identity, which every node
 * refuses). -EINVAL with *err on any problem. */
int net_tls_new(const char *ca, const char *cert, const char *key, struct net_tls **out,
		GError **err);
void net_tls_free(struct net_tls *t);

/* ---- server (node side) ---- */

struct net_server;
struct net_request;

/*
 * Called on the server's loop thread for each complete, valid request.
 * The handler must answer exactly once, with net_request_reply(), from any
 * thread, now or later; it must not block.
 */
typedef void (*net_handler_fn)(void *arg, struct net_request *r);

struct net_server_options {
	const char *host;
	uint16_t port; /* 0: any free port */
	net_handler_fn handler;
	void *arg;
};

int net_server_start(const struct net_server_options *o, struct net_tls *tls,
		     struct net_server **out);
uint16_t net_server_port(const struct net_server *s);
/* Its requests by op (count, errors, latency) in Prometheus's text format
 * (common/metrics.h); any thread. */
void net_server_metrics(const struct net_server *s, GString *out);
/*
 * Stops taking requests (new ones get -ESHUTDOWN), waits up to timeout_ms
 * for the requests in flight to be answered and their responses delivered,
 * then closes every connection and frees the server.
 */
void net_server_stop(struct net_server *s, unsigned timeout_ms);

const struct net_req_header *net_request_header(const struct net_request *r);
/* The request body (PUT, LIST): valid until the reply. */
const uint8_t *net_request_body(const struct net_request *r);
/* Answers r: body (may be NULL) is owned by the server from now on and
 * released with free_fn (may be NULL) once delivered or abandoned. */
void net_request_reply(struct net_request *r, int32_t status, uint64_t aux, void *body,
		       size_t len, void (*free_fn)(void *));

/* ---- client pool ---- */

struct net_pool;

struct net_call {
	struct net_req_header req;
	const void *body;	/* req.body_len bytes, valid until done */
	void *resp_buf;		/* where the response body goes */
	size_t resp_cap;
	unsigned timeout_ms;	/* 0: the pool's default */
	/* Results. */
	int status;		/* transport error, or resp.status */
	struct net_resp_header resp;
};

typedef void (*net_call_done_fn)(void *arg, struct net_call *call);

struct net_pool_options {
	unsigned timeout_ms;	/* default per-request deadline (10 s) */
	unsigned idle_timeout_ms;
	unsigned keepalive_ms;
};

void net_pool_options_default(struct net_pool_options *o);
/* One connection per node of the cluster, dialled on first use. */
int net_pool_new(const struct net_cluster *c, struct net_tls *tls,
		 const struct net_pool_options *o, struct net_pool **out);
void net_pool_free(struct net_pool *p);
/* Adds node id at host:port, or gives it that address (a membership
 * change); any thread. */
void net_pool_set_node(struct net_pool *p, uint32_t id, const char *host, uint16_t port);
/* Latency and errors of shard puts and gets by node, in Prometheus's text
 * format (common/metrics.h); any thread. */
void net_pool_metrics(struct net_pool *p, GString *out);
/*
 * Sends call to node_id; done(arg, call) runs on the pool's thread once
 * call->status is set: 0 or the node's status, or -ENOENT (no such node),
 * -ECONNREFUSED (no node on the port), NET_ETLSREFUSED (the node refused
 * our certificate), NET_ETLSVERIFY (we refused the node's), NET_ETIMEDOUT,
 * NET_ECONNLOST, NET_EPROTO (bad response), -EMSGSIZE (response larger than resp_cap).
 */
void net_pool_call_async(struct net_pool *p, uint32_t node_id, struct net_call *call,
			 net_call_done_fn done, void *arg);
/* net_pool_call_async() that waits; returns call->status. */
int net_pool_call(struct net_pool *p, uint32_t node_id, struct net_call *call);
/* Smoothed round-trip time to a node in microseconds, 0 if not connected. */
uint64_t net_pool_rtt_us(struct net_pool *p, uint32_t node_id);

#endif
