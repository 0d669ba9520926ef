/*
 * metrics.c - FUSE request counts, errors and latency by operation, and
 * bytes read and written, for a mount's /metrics (metrics.h).
 *
 * A request's start is kept by its unique id until its reply: in one hash
 * table under one mutex, which a request takes twice; measured at well
 * under a microsecond against the tens of microseconds a request costs.
 * Requests without a reply (FORGET, BATCH_FORGET, INTERRUPT, NOTIFY_REPLY)
 * are counted but not timed.
 */
#include "metrics.h"

#include "common/metrics.h"
#include "fs_internal.h"
#include "store/store.h"

#include <linux/fuse.h>
#include <string.h>

#define OPS 52 /* opcodes 1 .. FUSE_TMPFILE; 0 holds the others */

static const char *const op_names[OPS] = {
	[0] = "other",	     [FUSE_LOOKUP] = "lookup",	   [FUSE_FORGET] = "forget",
	[FUSE_GETATTR] = "getattr", [FUSE_SETATTR] = "setattr", [FUSE_READLINK] = "readlink",
	[FUSE_SYMLINK] = "symlink", [FUSE_MKNOD] = "mknod",	   [FUSE_MKDIR] = "mkdir",
	[FUSE_UNLINK] = "unlink",   [FUSE_RMDIR] = "rmdir",	   [FUSE_RENAME] = "rename",
	[FUSE_LINK] = "link",	     [FUSE_OPEN] = "open",	   [FUSE_READ] = "read",
	[FUSE_WRITE] = "write",     [FUSE_STATFS] = "statfs",	   [FUSE_RELEASE] = "release",
	[FUSE_FSYNC] = "fsync",     [FUSE_SETXATTR] = "setxattr", [FUSE_GETXATTR] = "getxattr",
	[FUSE_LISTXATTR] = "listxattr", [FUSE_REMOVEXATTR] = "removexattr",
	[FUSE_FLUSH] = "flush",     [FUSE_INIT] = "init",	   [FUSE_OPENDIR] = "opendir",
	[FUSE_READDIR] = "readdir", [FUSE_RELEASEDIR] = "releasedir",
	[FUSE_FSYNCDIR] = "fsyncdir", [FUSE_GETLK] = "getlk",	   [FUSE_SETLK] = "setlk",
	[FUSE_SETLKW] = "setlkw",   [FUSE_ACCESS] = "access",	   [FUSE_CREATE] = "create",
	[FUSE_INTERRUPT] = "interrupt", [FUSE_BMAP] = "bmap",	   [FUSE_DESTROY] = "destroy",
	[FUSE_IOCTL] = "ioctl",     [FUSE_POLL] = "poll",	   [FUSE_NOTIFY_REPLY] = "notify_reply",
	[FUSE_BATCH_FORGET] = "batch_forget", [FUSE_FALLOCATE] = "fallocate",
	[FUSE_READDIRPLUS] = "readdirplus", [FUSE_RENAME2] = "rename2", [FUSE_LSEEK] = "lseek",
	[FUSE_COPY_FILE_RANGE] = "copy_file_range", [FUSE_SETUPMAPPING] = "setupmapping",
	[FUSE_REMOVEMAPPING] = "removemapping", [FUSE_SYNCFS] = "syncfs",
	[FUSE_TMPFILE] = "tmpfile",
};

struct fs_metrics {
	GMutex lock;
	GHashTable *pending; /* unique -> start_us << 8 | op index, lock */
	struct metrics_hist latency[OPS];
	uint64_t requests[OPS], errors[OPS]; /* atomic */
	uint64_t read_bytes, written_bytes;  /* atomic: READ replies, WRITE requests */
};

static unsigned op_index(uint32_t opcode)
{
	return opcode < OPS && op_names[opcode] ? opcode : 0;
}

struct fs_metrics *fs_metrics_new(void)
{
	struct fs_metrics *m = g_new0(struct fs_metrics, 1);

	g_mutex_init(&m->lock);
	m->pending = g_hash_table_new(g_direct_hash, g_direct_equal);
	for (unsigned i = 0; i < OPS; i++)
		metrics_hist_init(&m->latency[i], &metrics_latency_buckets);
	return m;
}

void fs_metrics_free(struct fs_metrics *m)
{
	if (!m)
		return;
	g_hash_table_destroy(m->pending);
	g_mutex_clear(&m->lock);
	g_free(m);
}

static bool has_reply(uint32_t opcode)
{
	return opcode != FUSE_FORGET && opcode != FUSE_BATCH_FORGET && opcode != FUSE_INTERRUPT &&
	       opcode != FUSE_NOTIFY_REPLY;
}

void fs_metrics_request(struct fs_metrics *m, const void *buf, size_t n)
{
	const struct fuse_in_header *h = buf;
	unsigned op;

	if (n < sizeof(*h))
		return;
	op = op_index(h->opcode);
	__atomic_add_fetch(&m->requests[op], 1, __ATOMIC_RELAXED);
	if (h->opcode == FUSE_WRITE && n >= sizeof(*h) + sizeof(struct fuse_write_in)) {
		const struct fuse_write_in *w = (const void *)(h + 1);

		__atomic_add_fetch(&m->written_bytes, w->size, __ATOMIC_RELAXED);
	}
	if (!has_reply(h->opcode))
		return;
	uint64_t v = (uint64_t)g_get_monotonic_time() << 8 | op;

	g_mutex_lock(&m->lock);
	g_hash_table_insert(m->pending, GSIZE_TO_POINTER(h->unique), GSIZE_TO_POINTER(v));
	g_mutex_unlock(&m->lock);
}

void fs_metrics_reply(struct fs_metrics *m, const struct iovec *iov, int count)
{
	const struct fuse_out_header *h = iov[0].iov_base;
	gpointer v = NULL;
	size_t len = 0;

	if (count < 1 || iov[0].iov_len < sizeof(*h) || h->unique == 0) /* 0: a notification */
		return;
	g_mutex_lock(&m->lock);
	bool found = g_hash_table_steal_extended(m->pending, GSIZE_TO_POINTER(h->unique), NULL, &v);
	g_mutex_unlock(&m->lock);
	if (!found)
		return;
	uint64_t packed = GPOINTER_TO_SIZE(v);
	unsigned op = (unsigned)(packed & 0xff);

	metrics_hist_observe(&m->latency[op],
			     (uint64_t)(g_get_monotonic_time() - (gint64)(packed >> 8)) * 1000);
	if (h->error)
		__atomic_add_fetch(&m->errors[op], 1, __ATOMIC_RELAXED);
	if (op == FUSE_READ && !h->error) {
		for (int i = 0; i < count; i++)
			len += iov[i].iov_len;
		__atomic_add_fetch(&m->read_bytes, len - sizeof(*h), __ATOMIC_RELAXED);
	}
}

/* Only operations seen: a mount serves a few dozen kinds, most of them
 * never, and each histogram is 20 lines. */
static void write_requests(struct fs_metrics *m, GString *out)
{
	static const char *const count = "shardfs_fuse_requests_total";
	static const char *const failed = "shardfs_fuse_request_errors_total";
	static const char *const took = "shardfs_fuse_request_duration_seconds";
	uint64_t n[OPS];
	char labels[40];

	for (unsigned op = 0; op < OPS; op++)
		n[op] = __atomic_load_n(&m->requests[op], __ATOMIC_RELAXED);
	metrics_family(out, count, "counter", "FUSE requests received, by operation.");
	for (unsigned op = 0; op < OPS; op++) {
		g_snprintf(labels, sizeof(labels), "op=\"%s\"", op_names[op] ? op_names[op] : "");
		if (n[op] && op_names[op])
			metrics_sample_u64(out, count, labels, n[op]);
	}
	metrics_family(out, failed, "counter",
		       "FUSE requests answered with an error (ENOENT of a lookup among them).");
	for (unsigned op = 0; op < OPS; op++) {
		g_snprintf(labels, sizeof(labels), "op=\"%s\"", op_names[op] ? op_names[op] : "");
		if (n[op] && op_names[op] && has_reply(op))
			metrics_sample_u64(out, failed, labels,
					   __atomic_load_n(&m->errors[op], __ATOMIC_RELAXED));
	}
	metrics_family(out, took, "histogram", "FUSE requests from arrival to reply, by operation.");
	for (unsigned op = 0; op < OPS; op++) {
		g_snprintf(labels, sizeof(labels), "op=\"%s\"", op_names[op] ? op_names[op] : "");
		if (n[op] && op_names[op] && has_reply(op))
			metrics_hist_write(out, took, labels, &m->latency[op]);
	}
}

void fs_metrics_write(GString *out, void *arg)
{
	struct fs *fs = arg;
	struct fs_metrics *m = fs->metrics;

	write_requests(m, out);
	metrics_one(out, "shardfs_fuse_read_bytes_total", "counter",
		    "Bytes returned to READ requests.",
		    (double)__atomic_load_n(&m->read_bytes, __ATOMIC_RELAXED));
	metrics_one(out, "shardfs_fuse_written_bytes_total", "counter",
		    "Bytes received in WRITE requests.",
		    (double)__atomic_load_n(&m->written_bytes, __ATOMIC_RELAXED));
	store_metrics(fs->store, out);
	metrics_process(out);
}
