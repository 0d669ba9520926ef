/*
 * service.c - the node service (node.h): request dispatch, the reads on
 * the worker pool, and the stop ordering.
 *
 * dispatch() runs on the server's loop thread and never waits for the
 * disk: PING and refusals are answered there, puts handed to the store's
 * group commit (answered from its durability callback, on the store's sync
 * thread), stream requests to the home rings (memory only), the rest
 * queued for the workers.
 *
 * Stop ordering: `lock` makes the refusal of new requests atomic with
 * their dispatch, so once stopping is set no request reaches the workers
 * or the store. Then the parked stream requests are answered, the worker
 * pool is drained, the store closed (its close waits for queued puts, each
 * answered from its callback) and only then is the server drained, so every
 * request the service took is answered while its connection still lives.
 */
#define G_LOG_DOMAIN "shardfs-node"

#include "common/error.h"
#include "common/metrics.h"
#include "node.h"
#include "net/net.h"
#include "scrubber.h"
#include "stream_home.h"
#include "wal/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define STREAM_TICK_MS 100

struct node_service {
	uint32_t id;
	char *data_dir, *host;
	uint16_t port;
	unsigned nworkers;
	struct net_tls *tls;
	struct wal *wal;	/* NULL once stopped */
	struct net_server *srv; /* NULL until started and once stopped */
	GThreadPool *workers;
	struct node_streams *streams;
	gint64 started_us;
	uint64_t fs_id; /* the data directory's filesystem, for clients' df */
	char identity[NET_IDENTITY_MAX]; /* the store's UUID (DATA_DIR/identity) */
	unsigned scrub_interval_s;
	uint64_t scrub_bytes_per_s;
	struct node_scrubber *scrubber; /* NULL until started, when off and once stopped */
	GThread *ticker;
	GMutex tick_lock;
	GCond tick_cond;
	bool tick_stop;	/* tick_lock: the ticker ends */
	GMutex lock;	/* orders dispatch() against stopping */
	bool stopping;	/* lock: new requests are refused */
};

static struct wal_key wal_key_of(const struct net_key *k)
{
	struct wal_key w = {.part = k->part, .shard = k->shard};

	memcpy(w.object_id, k->object_id, 16);
	return w;
}

/* A store that refuses shards (a full disk, a failed one) says so in the
 * log, once every PUT_REFUSED_LOG_S at most: a full disk refuses every
 * put until space is made, and the client places the shard elsewhere or
 * records it missing. */
#define PUT_REFUSED_LOG_S 10

static void note_refused(int status)
{
	static gint64 said_at;
	gint64 now = g_get_monotonic_time(), was = __atomic_load_n(&said_at, __ATOMIC_RELAXED);

	if ((was && now - was < PUT_REFUSED_LOG_S * G_USEC_PER_SEC) ||
	    !__atomic_compare_exchange_n(&said_at, &was, now, false, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED))
		return;
	g_warning("the store refuses shards: %s (reads go on)", common_strerror(status));
}

static void put_done(void *arg, int status)
{
	if (status < 0)
		note_refused(status);
	net_request_reply(arg, status, 0, NULL, 0, NULL);
}

static void do_get(struct node_service *n, struct net_request *r)
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

static void do_stat(struct node_service *n, struct net_request *r)
{
	struct wal_key k = wal_key_of(&net_request_header(r)->key);
	struct wal_shard_info info;
	int rc = wal_stat(n->wal, &k, &info);

	if (rc == 0 && info.corrupt)
		rc = WAL_ECORRUPT;
	net_request_reply(r, rc, rc == 0 ? info.length : 0, NULL, 0, NULL);
}

struct listing {
	GArray *entries; /* uint8_t[entry_size] */
	size_t entry_size; /* NET_LIST_ENTRY_SIZE, or NET_LIST_AGED_ENTRY_SIZE */
	int64_t now_s;
};

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int collect_key(void *arg, const struct wal_key *key, uint32_t length, int64_t written_s)
{
	struct listing *l = arg;
	struct net_key nk = {.part = key->part, .shard = key->shard};
	uint8_t e[NET_LIST_AGED_ENTRY_SIZE];
	int64_t age = l->now_s - written_s;

	memcpy(nk.object_id, key->object_id, 16);
	net_key_pack(&nk, e);
	put_le32(e + NET_KEY_PACKED_SIZE, length);
	put_le32(e + NET_LIST_ENTRY_SIZE, (uint32_t)CLAMP(age, 0, (int64_t)UINT32_MAX));
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
static void do_list(struct node_service *n, struct net_request *r)
{
	const struct net_req_header *h = net_request_header(r);
	size_t size = h->op == NET_OP_LIST_AGED ? NET_LIST_AGED_ENTRY_SIZE : NET_LIST_ENTRY_SIZE;
	struct listing l = {g_array_new(FALSE, FALSE, (guint)size), size, (int64_t)time(NULL)};
	guint first = 0, count;

	if (h->op == NET_OP_DAMAGED)
		wal_list_damaged(n->wal, collect_key, &l);
	else
		wal_list(n->wal, collect_key, &l);
	g_array_sort(l.entries, cmp_entry);
	if (h->body_len == NET_KEY_PACKED_SIZE)
		while (first < l.entries->len &&
		       memcmp(l.entries->data + (size_t)first * size, net_request_body(r),
			      NET_KEY_PACKED_SIZE) <= 0)
			first++;
	count = (guint)MIN((uint64_t)(l.entries->len - first), h->length);
	size_t len = (size_t)count * size;
	/* an empty array has no data at all: no pointer arithmetic on it */
	void *page = len ? g_memdup2(l.entries->data + (size_t)first * size, len) : g_malloc(1);

	net_request_reply(r, 0, first + count < l.entries->len, page, len, g_free);
	g_array_free(l.entries, TRUE);
}

static void do_status(struct node_service *n, struct net_request *r)
{
	struct wal_stats ws;
	struct statvfs sv = {0};
	GString *s = g_string_new(NULL);
	gsize len;

	wal_get_stats(n->wal, &ws);
	statvfs(n->data_dir, &sv);
	struct net_node_status st = {
		.node = n->id, .shards = ws.keys, .live_bytes = ws.live_bytes,
		.disk_bytes = ws.disk_bytes, .free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize,
		.total_bytes = (uint64_t)sv.f_blocks * sv.f_frsize,
		.uptime_s = (uint64_t)((g_get_monotonic_time() - n->started_us) / G_USEC_PER_SEC),
		.store_error = ws.sticky_error, .fs_id = n->fs_id, .bad_shards = ws.bad_shards,
	};
	g_strlcpy(st.identity, n->identity, sizeof(st.identity));
	g_strlcpy(st.version, SHARDFS_VERSION, sizeof(st.version));
	net_node_status_encode(&st, s);
	len = s->len;
	net_request_reply(r, 0, 0, g_string_free(s, FALSE), len, g_free);
}

static void worker(gpointer data, gpointer user)
{
	struct net_request *r = data;
	struct node_service *n = user;
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
	case NET_OP_DAMAGED:
	case NET_OP_LIST_AGED:
		do_list(n, r);
		break;
	default:
		do_status(n, r);
	}
}

/* Runs on the network loop thread: never waits for the disk. */
static void dispatch(void *arg, struct net_request *r)
{
	struct node_service *n = arg;
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
			put_done(r, rc); /* refused at once: a failed store (-EROFS) */
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

/* Ends stream waits and leases on time, whoever runs the process's loop. */
static gpointer tick_streams(gpointer data)
{
	struct node_service *n = data;

	g_mutex_lock(&n->tick_lock);
	while (!n->tick_stop) {
		gint64 until = g_get_monotonic_time() + STREAM_TICK_MS * G_TIME_SPAN_MILLISECOND;

		while (!n->tick_stop && g_cond_wait_until(&n->tick_cond, &n->tick_lock, until))
			;
		if (n->tick_stop)
			break;
		g_mutex_unlock(&n->tick_lock);
		node_streams_tick(n->streams);
		g_mutex_lock(&n->tick_lock);
	}
	g_mutex_unlock(&n->tick_lock);
	return NULL;
}

static void stop_ticker(struct node_service *n)
{
	g_mutex_lock(&n->tick_lock);
	n->tick_stop = true;
	g_cond_signal(&n->tick_cond);
	g_mutex_unlock(&n->tick_lock);
	g_thread_join(n->ticker);
	n->ticker = NULL;
}

void node_service_config_default(struct node_service_config *c)
{
	*c = (struct node_service_config){.host = "127.0.0.1", .workers = 8,
					  .scrub_interval_s = NODE_SCRUB_INTERVAL_S,
					  .scrub_bytes_per_s = NODE_SCRUB_BYTES_PER_S};
}

/*
 * Which filesystem the store is on, the same for every node of one host
 * whose data directories share it and different between hosts: the
 * device number names a filesystem only on its own host, so it is hashed
 * with the host's machine id (its name where there is none). Clients
 * count each filesystem's space once (df).
 */
static uint64_t filesystem_id(const char *dir)
{
	struct stat st;
	char *host = NULL;
	uint64_t id;

	if (stat(dir, &st) < 0)
		return 0;
	if (!g_file_get_contents("/etc/machine-id", &host, NULL, NULL))
		host = g_strdup(g_get_host_name());
	g_strstrip(host);
	char *key = g_strdup_printf("%s/%ju", host, (uintmax_t)st.st_dev);

	id = XXH3_64bits(key, strlen(key));
	g_free(key);
	g_free(host);
	return id ? id : 1;
}

static void stream_metrics(struct node_service *n, GString *out)
{
	struct node_stream_totals t;

	node_streams_totals(n->streams, &t);
	metrics_one(out, "shardfs_node_streams", "gauge", "Stream files homed on this node.",
		    (double)t.streams);
	metrics_one(out, "shardfs_node_stream_writers", "gauge", "Open writers of those streams.",
		    (double)t.writers);
	metrics_one(out, "shardfs_node_stream_readers", "gauge",
		    "Tailing readers of those streams, on every mount.", (double)t.readers);
	metrics_one(out, "shardfs_node_stream_ring_bytes", "gauge",
		    "Bytes of ring buffer held for those streams.", (double)t.ring_bytes);
	metrics_one(out, "shardfs_node_stream_dropped_bytes_total", "counter",
		    "Stream bytes overwritten in a ring before a reader got them.",
		    (double)t.bytes_dropped);
}

void node_service_metrics(struct node_service *n, GString *out)
{
	struct statvfs sv = {0};
	char labels[64];

	g_snprintf(labels, sizeof(labels), "node=\"%u\",version=\"%s\"", n->id, SHARDFS_VERSION);
	metrics_family(out, "shardfs_node_info", "gauge", "The node's id and version (always 1).");
	metrics_sample(out, "shardfs_node_info", labels, 1);
	metrics_one(out, "shardfs_node_uptime_seconds", "gauge", "Seconds since the node started.",
		    (double)(g_get_monotonic_time() - n->started_us) / G_USEC_PER_SEC);
	statvfs(n->data_dir, &sv);
	metrics_one(out, "shardfs_node_disk_free_bytes", "gauge",
		    "Free bytes of the data directory's filesystem (for unprivileged users).",
		    (double)sv.f_bavail * (double)sv.f_frsize);
	metrics_one(out, "shardfs_node_disk_size_bytes", "gauge",
		    "Size of the data directory's filesystem.", (double)sv.f_blocks * (double)sv.f_frsize);
	if (n->srv)
		net_server_metrics(n->srv, out);
	if (n->wal)
		wal_metrics(n->wal, out);
	if (n->scrubber)
		node_scrubber_metrics(n->scrubber, out);
	stream_metrics(n, out);
	metrics_process(out);
}

#define IDENTITY_FILE "identity"

/* A new identity, durably: the file and its directory entry are synced,
 * or a power loss could make the store look new to its clients. */
static int make_identity(const char *dir, const char *path, char *out)
{
	char *uuid = g_uuid_string_random(), *text = g_strconcat(uuid, "\n", NULL);
	GError *err = NULL;
	int rc = 0, fd;

	if (!g_file_set_contents_full(path, text, -1,
				      G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE,
				      0600, &err)) {
		g_warning("cannot write %s: %s", path, err->message);
		g_error_free(err);
		rc = -EIO;
	} else if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if (fsync(fd) < 0)
			rc = -errno;
		close(fd);
	}
	if (rc == 0)
		g_strlcpy(out, uuid, NET_IDENTITY_MAX);
	g_free(text);
	g_free(uuid);
	return rc;
}

/*
 * The store's identity, made at its first start (or the first since a
 * release that had none). Clients compare it with the one the metadata
 * recorded: a store that comes back with another one was wiped or
 * replaced, and the shards the manifests place on it are rebuilt.
 */
static int load_identity(const char *dir, char *out)
{
	char *path = g_build_filename(dir, IDENTITY_FILE, NULL), *text = NULL;
	int rc = 0;

	if (!g_file_get_contents(path, &text, NULL, NULL)) {
		rc = make_identity(dir, path, out);
	} else if (!g_uuid_string_is_valid(g_strstrip(text))) {
		g_warning("%s does not hold a UUID: the store's identity is unknown (move the file"
			  " away only if this store is to count as new)", path);
		rc = -EINVAL;
	} else {
		g_strlcpy(out, text, NET_IDENTITY_MAX);
	}
	g_free(text);
	g_free(path);
	return rc;
}

int node_service_new(const struct node_service_config *c, struct node_service **out)
{
	struct node_service *n = g_new0(struct node_service, 1);
	struct wal_options wo;
	int rc;

	n->id = c->id;
	n->data_dir = g_strdup(c->data_dir);
	n->host = g_strdup(c->host);
	n->port = c->port;
	n->nworkers = c->workers ? c->workers : 8;
	n->scrub_interval_s = c->scrub_interval_s;
	n->scrub_bytes_per_s = c->scrub_bytes_per_s;
	n->tls = c->tls;
	n->started_us = g_get_monotonic_time();
	g_mutex_init(&n->lock);
	g_mutex_init(&n->tick_lock);
	g_cond_init(&n->tick_cond);
	n->streams = node_streams_new();
	wal_options_default(&wo);
	wo.dir = n->data_dir;
	if (c->segment_size)
		wo.segment_size = c->segment_size;
	rc = wal_open(&wo, &n->wal);
	if (rc < 0)
		goto fail;
	n->fs_id = filesystem_id(n->data_dir);
	rc = load_identity(n->data_dir, n->identity);
	if (rc < 0)
		goto fail;
	*out = n;
	return 0;
fail:
	node_service_free(n);
	return rc;
}

int node_service_start(struct node_service *n)
{
	struct net_server_options so = {
		.host = n->host, .port = n->port, .handler = dispatch, .arg = n};
	int rc;

	/* The workers exist before the first request can be dispatched. */
	n->workers = g_thread_pool_new(worker, n, (gint)n->nworkers, FALSE, NULL);
	rc = net_server_start(&so, n->tls, &n->srv);
	if (rc < 0)
		goto fail;
	n->ticker = g_thread_new("node-ticker", tick_streams, n);
	if (n->scrub_interval_s)
		n->scrubber = node_scrubber_start(n->wal, n->id, n->scrub_interval_s,
						  n->scrub_bytes_per_s);
	return 0;
fail:
	g_thread_pool_free(n->workers, FALSE, TRUE);
	n->workers = NULL;
	return rc;
}

uint16_t node_service_port(const struct node_service *n)
{
	return n->srv ? net_server_port(n->srv) : 0;
}

int node_service_store_error(const struct node_service *n)
{
	struct wal_stats st;

	if (!n->wal)
		return -ESHUTDOWN;
	wal_get_stats(n->wal, &st);
	return st.sticky_error;
}

void node_service_stop(struct node_service *n, unsigned drain_ms)
{
	if (!n->srv)
		return;
	node_scrubber_stop(n->scrubber);
	n->scrubber = NULL;
	stop_ticker(n);
	g_mutex_lock(&n->lock);
	n->stopping = true;
	g_mutex_unlock(&n->lock);
	node_streams_stop(n->streams, -ESHUTDOWN);
	g_thread_pool_free(n->workers, FALSE, TRUE);
	n->workers = NULL;
	wal_close(n->wal);
	n->wal = NULL;
	net_server_stop(n->srv, drain_ms);
	n->srv = NULL;
}

void node_service_free(struct node_service *n)
{
	if (!n)
		return;
	node_service_stop(n, 0);
	wal_close(n->wal);
	node_streams_free(n->streams);
	g_cond_clear(&n->tick_cond);
	g_mutex_clear(&n->tick_lock);
	g_mutex_clear(&n->lock);
	g_free(n->data_dir);
	g_free(n->host);
	g_free(n);
}
