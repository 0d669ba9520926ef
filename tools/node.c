/*
 * node.c - `shardfs node`: the storage daemon's command line. The service
 * itself (request dispatch, store, stream rings, stop ordering) is
 * store/node/node.h; this file opens the cluster file, the TLS identity and
 * the service, and runs the process around it.
 *
 * Threads: the main thread runs a GLib main loop for signals and the
 * systemd watchdog; the service runs its own threads.
 *
 * Life cycle: READY=1 is sent to systemd only once the port is bound and
 * the store recovered. SIGTERM or SIGINT: STOPPING=1, then the service's
 * ordered stop (new requests refused, requests in flight finish, up to
 * --drain-seconds; the store syncs and writes its checkpoint), exit 0. The
 * watchdog is fed only while the store is healthy, so systemd restarts a
 * node whose disk failed.
 */
#define G_LOG_DOMAIN "shardfs"

#include "common/metrics_http.h"
#include "net/net.h"
#include "shardfs.h"
#include "store/node/node.h"
#include "wal/wal.h"

#include <errno.h>
#include <glib-unix.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

struct node {
	uint32_t id;
	struct node_service *svc;
	GMainLoop *main;
};

static gboolean on_signal(gpointer data)
{
	struct node *n = data;

	g_message("node %u: stopping", n->id);
	sd_notify(0, "STOPPING=1");
	g_main_loop_quit(n->main);
	return G_SOURCE_REMOVE;
}

static gboolean feed_watchdog(gpointer data)
{
	struct node *n = data;

	if (node_service_store_error(n->svc) == 0)
		sd_notify(0, "WATCHDOG=1");
	return G_SOURCE_CONTINUE;
}

#define NOT_GIVEN G_MININT

struct node_opts {
	char *config, *data_dir, *cert, *key, *metrics;
	gint id, drain_seconds;
	gint scrub_interval, scrub_rate_mib; /* NOT_GIVEN: the cluster file's, or the default */
};

static void collect_metrics(GString *out, void *arg)
{
	node_service_metrics(((struct node *)arg)->svc, out);
}

/* The /metrics endpoint when asked for; 0, or -errno said on stderr. */
static int start_metrics(struct node *n, const char *addr, struct metrics_server **out)
{
	GError *err = NULL;
	int rc;

	*out = NULL;
	if (!addr)
		return 0;
	rc = metrics_server_start(addr, collect_metrics, n, out, &err);
	if (rc < 0) {
		fprintf(stderr, "shardfs node: %s\n", err->message);
		g_error_free(err);
	} else {
		g_message("node %u: metrics on http://%s/metrics", n->id, addr);
	}
	return rc;
}

/* An option given, else [node] key in the cluster file, else the default;
 * false (said) when out of lo..hi. */
static gboolean node_setting(const struct net_cluster *c, const char *key, gint given, gint lo,
			     gint hi, guint64 *out)
{
	GError *err = NULL;
	gint64 v = given;
	gboolean set = given != NOT_GIVEN;

	if (!set && g_key_file_has_key(c->kf, "node", key, NULL)) {
		v = g_key_file_get_int64(c->kf, "node", key, &err);
		set = TRUE;
	}
	if (err || (set && (v < lo || v > hi))) {
		fprintf(stderr, "shardfs node: %s %s: must be %d..%d\n", key,
			err ? "is not a number" : "out of range", lo, hi);
		g_clear_error(&err);
		return FALSE;
	}
	if (set)
		*out = (guint64)v;
	return TRUE;
}

static gboolean scrub_settings(const struct net_cluster *c, const struct node_opts *o,
			       struct node_service_config *sc)
{
	guint64 interval = sc->scrub_interval_s, rate_mib = sc->scrub_bytes_per_s >> 20;

	if (!node_setting(c, "scrub_interval", o->scrub_interval, 0, 30 * 86400, &interval) ||
	    !node_setting(c, "scrub_rate_mib", o->scrub_rate_mib, 0, 100000, &rate_mib))
		return FALSE;
	sc->scrub_interval_s = (unsigned)interval;
	sc->scrub_bytes_per_s = rate_mib << 20;
	return TRUE;
}

static int open_service(struct node *n, const struct net_cluster *c, const struct node_opts *o,
			const struct net_node_conf *nc, struct net_tls *tls)
{
	struct node_service_config sc;
	int rc;

	node_service_config_default(&sc);
	sc.id = n->id;
	sc.data_dir = o->data_dir ? o->data_dir : nc->data_dir;
	sc.host = nc->host;
	sc.port = nc->port;
	sc.tls = tls;
	if (!sc.data_dir) {
		fprintf(stderr, "shardfs: node %u has no data_dir in %s (or give --data-dir)\n", n->id,
			c->path);
		return -EINVAL;
	}
	if (g_key_file_has_key(c->kf, "node", "segment_size", NULL))
		sc.segment_size = (uint64_t)g_key_file_get_int64(c->kf, "node", "segment_size", NULL);
	if (!scrub_settings(c, o, &sc))
		return -EINVAL;
	rc = node_service_new(&sc, &n->svc);
	if (rc < 0)
		fprintf(stderr, "shardfs: cannot open the store in %s: %s\n", sc.data_dir,
			common_strerror(rc));
	return rc;
}

static void run_main_loop(struct node *n, const struct net_node_conf *nc, const char *data_dir)
{
	guint64 wd_usec = 0;

	n->main = g_main_loop_new(NULL, FALSE);
	g_unix_signal_add(SIGTERM, on_signal, n);
	g_unix_signal_add(SIGINT, on_signal, n);
	if (sd_watchdog_enabled(0, &wd_usec) > 0)
		g_timeout_add((guint)(wd_usec / 2000), feed_watchdog, n);
	g_message("node %u serving on %s:%u, data in %s", n->id, nc->host,
		  node_service_port(n->svc), data_dir);
	sd_notify(0, "READY=1");
	g_main_loop_run(n->main);
	g_main_loop_unref(n->main);
}

static int serve(struct node *n, const struct net_cluster *c, const struct node_opts *o,
		 const struct net_node_conf *nc)
{
	struct net_tls *tls = NULL;
	GError *err = NULL;
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
	rc = open_service(n, c, o, nc, tls);
	if (rc == 0 && (rc = node_service_start(n->svc)) < 0)
		fprintf(stderr, "shardfs: cannot listen on %s:%u: %s\n", nc->host, nc->port,
			g_strerror(-rc));
	struct metrics_server *ms = NULL;

	if (rc == 0)
		rc = start_metrics(n, o->metrics, &ms);
	if (rc == 0) {
		run_main_loop(n, nc, o->data_dir ? o->data_dir : nc->data_dir);
		metrics_server_stop(ms);
		node_service_stop(n->svc, (unsigned)o->drain_seconds * 1000);
	}
	node_service_free(n->svc);
	net_tls_free(tls);
	if (rc == 0)
		g_message("node %u stopped", n->id);
	return rc;
}

/* A node host needs no CA key, and one there can sign certificates that
 * every node and client of the cluster trusts: say so if this process can
 * read one where init puts it, beside the cluster file or the CA
 * certificate. */
static void warn_if_ca_key_readable(const struct net_cluster *c)
{
	char *dirs[] = {g_path_get_dirname(c->path), g_path_get_dirname(c->ca)};
	static const char *const names[] = {"ca.key", "ca/ca.key"};
	gboolean warned = FALSE;

	for (size_t d = 0; d < G_N_ELEMENTS(dirs); d++) {
		for (size_t i = 0; i < G_N_ELEMENTS(names) && !warned; i++) {
			char *key = g_build_filename(dirs[d], names[i], NULL);

			if (access(key, R_OK) == 0) {
				g_warning("the cluster's CA key %s is readable here: a node host needs"
					  " only the files of hosts/node-ID/ from init; keep the CA key"
					  " on the host that signs certificates", key);
				warned = TRUE;
			}
			g_free(key);
		}
		g_free(dirs[d]);
	}
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

/* What follows the options: checks them, loads the cluster file, serves
 * until stopped; the exit status. o->config becomes the resolved path. */
static int run_node(struct node_opts *o)
{
	struct net_cluster *c = NULL;
	struct node n = {0};
	GError *err = NULL;
	char *conf = NULL;
	int rc;

	if (o->id < 1) {
		fprintf(stderr, "shardfs node: --id N is required\n");
		return SHARDFS_EXIT_USAGE;
	}
	if (o->metrics && metrics_addr_check(o->metrics, &err) < 0) {
		fprintf(stderr, "shardfs node: %s\n", err->message);
		g_error_free(err);
		return SHARDFS_EXIT_USAGE;
	}
	if ((rc = tools_cluster_file("node", o->config, &conf)))
		return rc;
	g_free(o->config);
	o->config = conf;
	if (net_cluster_load(o->config, &c, &err) < 0) {
		fprintf(stderr, "shardfs: %s\n", err->message);
		g_error_free(err);
		return SHARDFS_EXIT_FAIL;
	}
	const struct net_node_conf *nc = net_cluster_node(c, (uint32_t)o->id);

	if (!nc) {
		fprintf(stderr, "shardfs: %s has no [node.%d]\n", o->config, o->id);
		net_cluster_free(c);
		return SHARDFS_EXIT_FAIL;
	}
	warn_if_ca_key_readable(c);
	keep_freed_memory();
	n.id = (uint32_t)o->id;
	rc = serve(&n, c, o, nc);
	net_cluster_free(c);
	return rc < 0 ? SHARDFS_EXIT_FAIL : 0;
}

int cmd_node(int argc, char **argv)
{
	struct node_opts o = {.drain_seconds = 10, .scrub_interval = NOT_GIVEN,
			      .scrub_rate_mib = NOT_GIVEN};
	GOptionEntry entries[] = {
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &o.config, "cluster file or directory (default $SHARDFS_CONF)", "CLUSTER"},
		{"id", 'i', 0, G_OPTION_ARG_INT, &o.id, "this node's id in the cluster file", "N"},
		{"data-dir", 'd', 0, G_OPTION_ARG_FILENAME, &o.data_dir, "store directory (default: data_dir of the node)", "DIR"},
		{"cert", 0, 0, G_OPTION_ARG_FILENAME, &o.cert, "node certificate (default: cert of the node)", "FILE"},
		{"key", 0, 0, G_OPTION_ARG_FILENAME, &o.key, "node private key (default: key of the node)", "FILE"},
		{"drain-seconds", 0, 0, G_OPTION_ARG_INT, &o.drain_seconds, "how long SIGTERM waits for requests in flight (10)", "S"},
		{"scrub-interval", 0, 0, G_OPTION_ARG_INT, &o.scrub_interval, "seconds between background scrub passes (86400; 0: none)", "S"},
		{"scrub-rate", 0, 0, G_OPTION_ARG_INT, &o.scrub_rate_mib, "MiB/s a scrub pass reads at most (32; 0: unbounded)", "MIB"},
		{"metrics", 0, 0, G_OPTION_ARG_STRING, &o.metrics, "serve Prometheus metrics on http://ADDR:PORT/metrics (off by default)", "ADDR:PORT"},
		{NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	int rc = SHARDFS_EXIT_USAGE;

	if (argc > 1 && node_admin_verb(argv[1]))
		return cmd_node_admin(argc - 1, argv + 1);
	if (tools_parse(argc, argv, entries, "- run a storage node"))
		rc = run_node(&o);
	g_free(o.config);
	g_free(o.data_dir);
	g_free(o.cert);
	g_free(o.key);
	g_free(o.metrics);
	return rc;
}
