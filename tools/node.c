/*
 * node.c - `shardfs node`: the storage daemon. It wires the QUIC request
 * server (net) to the shard store (wal).
 *
 * Threads: the server's loop thread decodes requests and hands them to
 * handle(); puts go straight to the store's group commit (the answer leaves
 * once the shard is durable); reads, deletes and listings run on a small
 * thread pool, so that no disk wait ever blocks the network loop. The main
 * thread runs a GLib main loop for signals and the systemd watchdog.
 *
 * Life cycle: READY=1 is sent to systemd only once the port is bound and
 * the store recovered. SIGTERM or SIGINT: STOPPING=1, new requests are
 * refused, requests in flight finish (up to --drain-seconds), the store
 * syncs and writes its checkpoint, exit 0. The watchdog is fed only while
 * the store is healthy, so systemd restarts a node whose disk failed.
 */
#define G_LOG_DOMAIN "shardfs"

#include "net/net.h"
#include "node_stream.h"
#include "shardfs.h"
#include "wal/wal.h"

#include <errno.h>
#include <glib-unix.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <systemd/sd-daemon.h>

#define WORKERS 8
#define STREAM_TICK_MS 100

struct node {
	uint32_t id;
	struct wal *wal;
	char *data_dir;
	GThreadPool *workers;
	gint64 started_us;
	GMainLoop *main;
	struct node_streams *streams;
	GMutex lock;	/* orders handle() against stopping */
	bool stopping;	/* lock: new requests are refused */
};

static struct wal_key wal_key_of(const struct net_key *k)
{
	struct wal_key w = {.part = k->part, .shard = k->shard};

	memcpy(w.object_id, k->object_id, 16);
	return w;
}

static void put_done(void *arg, int status)
{
	net_request_reply(arg, status, 0, NULL, 0, NULL);
}

static void do_get(struct node *n, struct net_request *r)
{
	const struct net_req_header *h = net_request_header(r);
	struct wal_key k = wal_key_of(&h->key);
	struct wal_shard_info info;
	int rc = wal_stat(n->wal, &k, &info);

	if (rc == 0 && h->offset > info.length)
		rc = -EINVAL;
	if (rc < 0) {
		net_request_reply(r, rc, 0, NULL, 0, NULL);
		return;
	}
	size_t want = (size_t)MIN(h->length, info.length - h->offset);
	uint8_t *buf = g_malloc(want ? want : 1);
	ssize_t got = want ? wal_read(n->wal, &k, h->offset, buf, want) : 0;

	if (got < 0) {
		g_free(buf);
		net_request_reply(r, (int32_t)got, 0, NULL, 0, NULL);
		return;
	}
	net_request_reply(r, 0, info.length, buf, (size_t)got, g_free);
}

static void do_stat(struct node *n, struct net_request *r)
{
	struct wal_key k = wal_key_of(&net_request_header(r)->key);
	struct wal_shard_info info;
	int rc = wal_stat(n->wal, &k, &info);

	if (rc == 0 && info.corrupt)
		rc = WAL_ECORRUPT;
	net_request_reply(r, rc, rc == 0 ? info.length : 0, NULL, 0, NULL);
}

struct listing {
	GArray *entries; /* uint8_t[NET_LIST_ENTRY_SIZE] */
};

static int collect_key(void *arg, const struct wal_key *key, uint32_t length)
{
	struct listing *l = arg;
	struct net_key nk = {.part = key->part, .shard = key->shard};
	uint8_t e[NET_LIST_ENTRY_SIZE];

	memcpy(nk.object_id, key->object_id, 16);
	net_key_pack(&nk, e);
	for (int i = 0; i < 4; i++)
		e[NET_KEY_PACKED_SIZE + i] = (uint8_t)(length >> (8 * i));
	g_array_append_vals(l->entries, e, 1);
	return 0;
}

static gint cmp_entry(gconstpointer a, gconstpointer b)
{
	return memcmp(a, b, NET_KEY_PACKED_SIZE);
}

/* One page of the keys after the cursor, in packed-key order. The index is
 * a hash table, so each page sorts a snapshot: listing is for repair and
 * scrub, not for the data path. */
static void do_list(struct node *n, struct net_request *r)
{
	const struct net_req_header *h = net_request_header(r);
	struct listing l = {g_array_new(FALSE, FALSE, NET_LIST_ENTRY_SIZE)};
	guint first = 0, count;

	wal_list(n->wal, collect_key, &l);
	g_array_sort(l.entries, cmp_entry);
	if (h->body_len == NET_KEY_PACKED_SIZE)
		while (first < l.entries->len &&
		       memcmp(l.entries->data + (size_t)first * NET_LIST_ENTRY_SIZE, net_request_body(r),
			      NET_KEY_PACKED_SIZE) <= 0)
			first++;
	count = (guint)MIN((uint64_t)(l.entries->len - first), h->length);
	size_t len = (size_t)count * NET_LIST_ENTRY_SIZE;
	void *page = g_memdup2(l.entries->data + (size_t)first * NET_LIST_ENTRY_SIZE, len ? len : 1);

	net_request_reply(r, 0, first + count < l.entries->len, page, len, g_free);
	g_array_free(l.entries, TRUE);
}

static void do_status(struct node *n, struct net_request *r)
{
	struct wal_stats st;
	struct statvfs sv = {0};
	GString *s = g_string_new(NULL);
	gsize len;

	wal_get_stats(n->wal, &st);
	statvfs(n->data_dir, &sv);
	g_string_append_printf(s, "node=%u\nversion=%s\nshards=%" G_GUINT64_FORMAT "\n", n->id,
			       SHARDFS_VERSION, st.keys);
	g_string_append_printf(s, "live_bytes=%" G_GUINT64_FORMAT "\ndisk_bytes=%" G_GUINT64_FORMAT "\n",
			       st.live_bytes, st.disk_bytes);
	g_string_append_printf(s, "free_bytes=%" G_GUINT64_FORMAT "\ntotal_bytes=%" G_GUINT64_FORMAT "\n",
			       (guint64)sv.f_bavail * sv.f_frsize, (guint64)sv.f_blocks * sv.f_frsize);
	g_string_append_printf(s, "uptime_s=%" G_GINT64_FORMAT "\nstore_error=%d\n",
			       (g_get_monotonic_time() - n->started_us) / 1000000, st.sticky_error);
	len = s->len;
	net_request_reply(r, 0, 0, g_string_free(s, FALSE), len, g_free);
}

static void worker(gpointer data, gpointer user)
{
	struct net_request *r = data;
	struct node *n = user;
	struct wal_key k;

	switch (net_request_header(r)->op) {
	case NET_OP_GET:
		do_get(n, r);
		break;
	case NET_OP_STAT:
		do_stat(n, r);
		break;
	case NET_OP_DELETE:
		k = wal_key_of(&net_request_header(r)->key);
		net_request_reply(r, wal_delete(n->wal, &k), 0, NULL, 0, NULL);
		break;
	case NET_OP_LIST:
		do_list(n, r);
		break;
	default:
		do_status(n, r);
	}
}

/* Runs on the network loop thread: never waits for the disk. */
static void handle(void *arg, struct net_request *r)
{
	struct node *n = arg;
	const struct net_req_header *h = net_request_header(r);
	struct wal_key k;
	int rc;

	g_mutex_lock(&n->lock);
	if (n->stopping) {
		g_mutex_unlock(&n->lock);
		net_request_reply(r, -ESHUTDOWN, 0, NULL, 0, NULL);
		return;
	}
	switch (h->op) {
	case NET_OP_PING:
		net_request_reply(r, 0, 0, NULL, 0, NULL);
		break;
	case NET_OP_PUT:
		k = wal_key_of(&h->key);
		rc = wal_put_async(n->wal, &k, net_request_body(r), h->body_len, put_done, r);
		if (rc < 0)
			net_request_reply(r, rc, 0, NULL, 0, NULL);
		break;
	case NET_OP_STREAM_OPEN:
	case NET_OP_STREAM_CLOSE:
	case NET_OP_STREAM_APPEND:
	case NET_OP_STREAM_READ:
	case NET_OP_STREAM_STAT:
	case NET_OP_STREAM_KEEP:
		node_streams_handle(n->streams, r); /* memory only: never waits */
		break;
	default:
		g_thread_pool_push(n->workers, r, NULL);
	}
	g_mutex_unlock(&n->lock);
}

/* Every request the node took is answered while the server still lives:
 * refuse new ones, let the workers finish, let the store make every queued
 * put durable (each answered from its callback), then drain the server. */
static void stop_serving(struct node *n, struct net_server *srv, unsigned drain_ms)
{
	g_mutex_lock(&n->lock);
	n->stopping = true;
	g_mutex_unlock(&n->lock);
	node_streams_stop(n->streams, -ESHUTDOWN);
	g_thread_pool_free(n->workers, FALSE, TRUE);
	wal_close(n->wal);
	n->wal = NULL;
	net_server_stop(srv, drain_ms);
}

static gboolean on_signal(gpointer data)
{
	struct node *n = data;

	g_message("node %u: stopping", n->id);
	sd_notify(0, "STOPPING=1");
	g_main_loop_quit(n->main);
	return G_SOURCE_REMOVE;
}

static gboolean tick_streams(gpointer data)
{
	node_streams_tick(data);
	return G_SOURCE_CONTINUE;
}

static gboolean feed_watchdog(gpointer data)
{
	struct node *n = data;
	struct wal_stats st;

	wal_get_stats(n->wal, &st);
	if (st.sticky_error == 0)
		sd_notify(0, "WATCHDOG=1");
	return G_SOURCE_CONTINUE;
}

struct node_opts {
	char *config, *data_dir, *cert, *key;
	gint id, drain_seconds;
};

static int open_store(struct node *n, const struct net_cluster *c, const struct node_opts *o,
		      const struct net_node_conf *nc)
{
	struct wal_options wo;
	int rc;

	n->data_dir = g_strdup(o->data_dir ? o->data_dir : nc->data_dir);
	if (!n->data_dir) {
		fprintf(stderr, "shardfs: node %u has no data_dir in %s (or give --data-dir)\n", n->id,
			c->path);
		return -EINVAL;
	}
	wal_options_default(&wo);
	wo.dir = n->data_dir;
	if (g_key_file_has_key(c->kf, "node", "segment_size", NULL))
		wo.segment_size = (uint64_t)g_key_file_get_int64(c->kf, "node", "segment_size", NULL);
	rc = wal_open(&wo, &n->wal);
	if (rc < 0)
		fprintf(stderr, "shardfs: cannot open the store in %s: %s\n", n->data_dir,
			wal_strerror(rc));
	return rc;
}

static int serve(struct node *n, const struct net_cluster *c, const struct node_opts *o,
		 const struct net_node_conf *nc)
{
	struct net_tls *tls = NULL;
	struct net_server *srv = NULL;
	GError *err = NULL;
	struct net_server_options so = {.host = nc->host, .port = nc->port, .handler = handle, .arg = n};
	guint64 wd_usec = 0;
	int rc = net_tls_new(c->ca, o->cert ? o->cert : nc->cert, o->key ? o->key : nc->key, &tls, &err);

	if (rc == 0 && !(o->cert || nc->cert)) {
		g_set_error(&err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "node %u has no certificate", n->id);
		rc = -EINVAL;
	}
	if (rc < 0) {
		fprintf(stderr, "shardfs: %s\n", err->message);
		g_error_free(err);
		net_tls_free(tls);
		return rc;
	}
	rc = open_store(n, c, o, nc);
	if (rc == 0 && (rc = net_server_start(&so, tls, &srv)) < 0)
		fprintf(stderr, "shardfs: cannot listen on %s:%u: %s\n", nc->host, nc->port,
			g_strerror(-rc));
	if (rc == 0) {
		n->workers = g_thread_pool_new(worker, n, WORKERS, FALSE, NULL);
		g_timeout_add(STREAM_TICK_MS, tick_streams, n->streams);
		n->main = g_main_loop_new(NULL, FALSE);
		g_unix_signal_add(SIGTERM, on_signal, n);
		g_unix_signal_add(SIGINT, on_signal, n);
		if (sd_watchdog_enabled(0, &wd_usec) > 0)
			g_timeout_add((guint)(wd_usec / 2000), feed_watchdog, n);
		g_message("node %u serving on %s:%u, data in %s", n->id, nc->host,
			  net_server_port(srv), n->data_dir);
		sd_notify(0, "READY=1");
		g_main_loop_run(n->main);
		stop_serving(n, srv, (unsigned)o->drain_seconds * 1000);
		g_main_loop_unref(n->main);
	}
	wal_close(n->wal);
	net_tls_free(tls);
	if (rc == 0)
		g_message("node %u stopped", n->id);
	return rc;
}

/* Request bodies and read buffers are up to NET_MAX_SHARD and short-lived.
 * glibc's defaults serve them from fresh mmaps or trim the heap under them,
 * and the network loop then takes a page fault per 4 KiB while copying a
 * body in: profiled at a quarter of the node's CPU for puts. Keep them on
 * the heap and keep freed memory. */
static void keep_freed_memory(void)
{
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

int cmd_node(int argc, char **argv)
{
	struct node_opts o = {.drain_seconds = 10};
	GOptionEntry entries[] = {
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &o.config, "cluster file (default $SHARDFS_CONF)", "FILE"},
		{"id", 'i', 0, G_OPTION_ARG_INT, &o.id, "this node's id in the cluster file", "N"},
		{"data-dir", 'd', 0, G_OPTION_ARG_FILENAME, &o.data_dir, "store directory (default: data_dir of the node)", "DIR"},
		{"cert", 0, 0, G_OPTION_ARG_FILENAME, &o.cert, "node certificate (default: cert of the node)", "FILE"},
		{"key", 0, 0, G_OPTION_ARG_FILENAME, &o.key, "node private key (default: key of the node)", "FILE"},
		{"drain-seconds", 0, 0, G_OPTION_ARG_INT, &o.drain_seconds, "how long SIGTERM waits for requests in flight (10)", "S"},
		{NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	struct net_cluster *c = NULL;
	struct node n = {0};
	GError *err = NULL;
	int rc;

	if (!tools_parse(argc, argv, entries, "- run a storage node"))
		return SHARDFS_EXIT_USAGE;
	if (!o.config)
		o.config = g_strdup(g_getenv("SHARDFS_CONF"));
	if (!o.config || o.id < 1) {
		fprintf(stderr, "shardfs node: --config FILE (or SHARDFS_CONF) and --id N are required\n");
		return SHARDFS_EXIT_USAGE;
	}
	if (net_cluster_load(o.config, &c, &err) < 0) {
		fprintf(stderr, "shardfs: %s\n", err->message);
		g_error_free(err);
		return SHARDFS_EXIT_FAIL;
	}
	const struct net_node_conf *nc = net_cluster_node(c, (uint32_t)o.id);

	if (!nc) {
		fprintf(stderr, "shardfs: %s has no [node.%d]\n", o.config, o.id);
		net_cluster_free(c);
		return SHARDFS_EXIT_FAIL;
	}
	keep_freed_memory();
	n.id = (uint32_t)o.id;
	n.started_us = g_get_monotonic_time();
	g_mutex_init(&n.lock);
	n.streams = node_streams_new();
	rc = serve(&n, c, &o, nc);
	node_streams_free(n.streams);
	net_cluster_free(c);
	g_free(n.data_dir);
	g_free(o.config);
	g_free(o.data_dir);
	g_free(o.cert);
	g_free(o.key);
	return rc < 0 ? SHARDFS_EXIT_FAIL : 0;
}
