/*
 * wal_test.c - see wal_test.h.
 *
 * faultio keeps, for each file it has seen, the bytes that an fsync made
 * durable and the list of writes since. A directory fsync makes every file
 * created so far durable in its directory. Renames and unlinks are taken as
 * durable at once (the store fsyncs the directory after each anyway). State
 * is global: one store at a time per test process.
 */
#include "wal_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *test_mkdtemp(void)
{
	GError *err = NULL;
	char *dir = g_dir_make_tmp("shardfs-test-XXXXXX", &err);

	if (!dir) {
		fprintf(stderr, "cannot make a scratch directory: %s\n", err->message);
		abort();
	}
	return dir;
}

void test_rmdir(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;

	while (d && (name = g_dir_read_name(d))) {
		char *path = g_build_filename(dir, name, NULL);

		if (g_file_test(path, G_FILE_TEST_IS_DIR))
			test_rmdir(path);
		else
			unlink(path);
		g_free(path);
	}
	if (d)
		g_dir_close(d);
	rmdir(dir);
}

struct wal_key test_key(uint64_t id)
{
	struct wal_key k = {.part = (uint32_t)(id >> 16), .shard = (uint16_t)id};

	memcpy(k.object_id, "test-object-", 12);
	memcpy(k.object_id + 12, &id, 4);
	return k;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

void test_payload(uint8_t *buf, size_t len, uint64_t id, uint64_t version)
{
	uint64_t state = id * 1000003u + (len >= 16 ? version : 0);
	size_t i = 0;

	if (len >= 16) {
		memcpy(buf, &id, 8);
		memcpy(buf + 8, &version, 8);
		i = 16;
	}
	for (; i < len; i += 8) {
		uint64_t v = splitmix(&state);

		memcpy(buf + i, &v, MIN((size_t)8, len - i));
	}
}

bool test_payload_check(const uint8_t *buf, size_t len, uint64_t id, uint64_t *version)
{
	uint64_t got_id = id, v = 0;
	bool ok;

	if (len >= 16) {
		memcpy(&got_id, buf, 8);
		memcpy(&v, buf + 8, 8);
	}
	if (got_id != id)
		return false;
	uint8_t *want = g_malloc(len ? len : 1);

	test_payload(want, len, id, v);
	ok = memcmp(want, buf, len) == 0;
	g_free(want);
	*version = v;
	return ok;
}

void test_wal_options(struct wal_options *o, const char *dir)
{
	wal_options_default(o);
	o->dir = dir;
	o->segment_size = 1u << 20;
	o->max_payload = 256u << 10;
	o->background_compaction = false;
}

/* ---- faultio ---- */

struct write_rec {
	uint64_t off;
	GBytes *data;
};

struct file_state {
	char *path;
	GByteArray *durable;
	GArray *writes; /* struct write_rec, since the last fsync */
	bool in_dir;	/* its directory entry is durable */
};

static struct {
	GMutex lock;
	GHashTable *files; /* path -> struct file_state */
	GHashTable *fds;   /* fd -> path (owned) */
	GHashTable *dirs;  /* fd of a directory -> 1 */
	struct faultio_plan plan;
	long calls[FIO_PREAD + 1];
	long mutations;
	bool crashed;
	uint64_t bytes_read;
} fio;

static void write_rec_clear(gpointer p)
{
	g_bytes_unref(((struct write_rec *)p)->data);
}

static void file_state_free(gpointer p)
{
	struct file_state *f = p;

	g_free(f->path);
	g_byte_array_unref(f->durable);
	g_array_unref(f->writes);
	g_free(f);
}

static struct file_state *file_state_new(const char *path, bool existed)
{
	struct file_state *f = g_new0(struct file_state, 1);
	gchar *content = NULL;
	gsize len = 0;

	f->path = g_strdup(path);
	f->durable = g_byte_array_new();
	f->writes = g_array_new(FALSE, FALSE, sizeof(struct write_rec));
	g_array_set_clear_func(f->writes, write_rec_clear);
	f->in_dir = existed;
	if (existed && g_file_get_contents(path, &content, &len, NULL))
		g_byte_array_append(f->durable, (guint8 *)content, (guint)len);
	g_free(content);
	return f;
}

void faultio_start(const struct faultio_plan *plan)
{
	g_mutex_lock(&fio.lock);
	if (fio.files) {
		g_hash_table_destroy(fio.files);
		g_hash_table_destroy(fio.fds);
		g_hash_table_destroy(fio.dirs);
	}
	fio.files = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, file_state_free);
	fio.fds = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	fio.dirs = g_hash_table_new(g_direct_hash, g_direct_equal);
	memset(&fio.plan, 0, sizeof(fio.plan));
	fio.plan.crash_after = -1;
	if (plan)
		fio.plan = *plan;
	memset(fio.calls, 0, sizeof(fio.calls));
	fio.mutations = 0;
	fio.crashed = false;
	fio.bytes_read = 0;
	g_mutex_unlock(&fio.lock);
}

void faultio_crash_now(void)
{
	g_mutex_lock(&fio.lock);
	fio.crashed = true;
	g_mutex_unlock(&fio.lock);
}

bool faultio_crashed(void)
{
	g_mutex_lock(&fio.lock);
	bool c = fio.crashed;

	g_mutex_unlock(&fio.lock);
	return c;
}

long faultio_mutations(void)
{
	g_mutex_lock(&fio.lock);
	long n = fio.mutations;

	g_mutex_unlock(&fio.lock);
	return n;
}

uint64_t faultio_bytes_read(void)
{
	g_mutex_lock(&fio.lock);
	uint64_t n = fio.bytes_read;

	g_mutex_unlock(&fio.lock);
	return n;
}

/* Decides, under fio.lock, whether this call fails; returns its errno or 0. */
static int gate(enum faultio_op op, bool mutating)
{
	long idx = fio.calls[op]++;

	if (fio.crashed)
		return EIO;
	if (mutating && fio.plan.crash_after >= 0 && fio.mutations >= fio.plan.crash_after) {
		fio.crashed = true;
		return EIO;
	}
	if (mutating)
		fio.mutations++;
	if (fio.plan.fail_op == op && idx >= fio.plan.fail_from &&
	    (fio.plan.fail_count < 0 || idx < fio.plan.fail_from + fio.plan.fail_count))
		return fio.plan.fail_errno;
	return 0;
}

static struct file_state *state_of_fd(int fd)
{
	const char *path = g_hash_table_lookup(fio.fds, GINT_TO_POINTER(fd));

	return path ? g_hash_table_lookup(fio.files, path) : NULL;
}

static int fio_open(const char *path, int flags, mode_t mode)
{
	g_mutex_lock(&fio.lock);
	int err = gate(FIO_OPEN, (flags & O_CREAT) != 0);
	bool existed = access(path, F_OK) == 0;
	int fd = err ? -1 : open(path, flags, mode);

	if (err)
		errno = err;
	if (fd >= 0) {
		struct stat st;

		fstat(fd, &st);
		if (S_ISDIR(st.st_mode)) {
			g_hash_table_insert(fio.dirs, GINT_TO_POINTER(fd), GINT_TO_POINTER(1));
		} else {
			if (!g_hash_table_lookup(fio.files, path)) {
				struct file_state *f = file_state_new(path, existed);

				if ((flags & O_TRUNC) && existed)
					g_byte_array_set_size(f->durable, 0);
				g_hash_table_insert(fio.files, f->path, f);
			}
			g_hash_table_insert(fio.fds, GINT_TO_POINTER(fd), g_strdup(path));
		}
	}
	g_mutex_unlock(&fio.lock);
	return fd;
}

static int fio_close(int fd)
{
	g_mutex_lock(&fio.lock);
	g_hash_table_remove(fio.fds, GINT_TO_POINTER(fd));
	g_hash_table_remove(fio.dirs, GINT_TO_POINTER(fd));
	g_mutex_unlock(&fio.lock);
	return close(fd);
}

static ssize_t fio_pread(int fd, void *buf, size_t len, off_t off)
{
	g_mutex_lock(&fio.lock);
	int err = gate(FIO_PREAD, false);

	g_mutex_unlock(&fio.lock);
	if (err) {
		errno = err;
		return -1;
	}
	ssize_t n = pread(fd, buf, len, off);

	g_mutex_lock(&fio.lock);
	if (n > 0)
		fio.bytes_read += (uint64_t)n;
	g_mutex_unlock(&fio.lock);
	return n;
}

static ssize_t fio_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	g_mutex_lock(&fio.lock);
	int err = gate(FIO_PWRITEV, true);
	ssize_t n = -1;

	if (err) {
		errno = err;
		goto out;
	}
	n = pwritev(fd, iov, iovcnt, off);
	struct file_state *f = state_of_fd(fd);

	if (n > 0 && f) {
		GByteArray *copy = g_byte_array_new();
		size_t left = (size_t)n;

		for (int i = 0; i < iovcnt && left > 0; i++) {
			size_t take = MIN(left, iov[i].iov_len);

			g_byte_array_append(copy, iov[i].iov_base, (guint)take);
			left -= take;
		}
		struct write_rec w = {(uint64_t)off, g_byte_array_free_to_bytes(copy)};

		g_array_append_val(f->writes, w);
	}
out:
	g_mutex_unlock(&fio.lock);
	return n;
}

/* An fsync of a file makes its current content durable; of a directory,
 * every file's directory entry. */
static int fio_sync(int fd, enum faultio_op op)
{
	g_mutex_lock(&fio.lock);
	int err = gate(op, true);
	int rc = -1;

	if (err) {
		errno = err;
		goto out;
	}
	rc = op == FIO_FSYNC ? fsync(fd) : fdatasync(fd);
	if (rc < 0)
		goto out;
	if (g_hash_table_contains(fio.dirs, GINT_TO_POINTER(fd))) {
		GHashTableIter it;
		gpointer value;

		g_hash_table_iter_init(&it, fio.files);
		while (g_hash_table_iter_next(&it, NULL, &value))
			((struct file_state *)value)->in_dir = true;
		goto out;
	}
	struct file_state *f = state_of_fd(fd);

	if (f) { /* through the path: the descriptor may be write-only */
		gchar *content;
		gsize len;

		if (!g_file_get_contents(f->path, &content, &len, NULL))
			abort();
		g_byte_array_set_size(f->durable, 0);
		g_byte_array_append(f->durable, (guint8 *)content, (guint)len);
		g_free(content);
		g_array_set_size(f->writes, 0);
	}
out:
	g_mutex_unlock(&fio.lock);
	return rc;
}

static int fio_fdatasync(int fd)
{
	g_mutex_lock(&fio.lock);
	unsigned delay = fio.plan.sync_delay_us;

	g_mutex_unlock(&fio.lock);
	if (delay) /* a slow disk: outside the lock, like the real wait */
		g_usleep(delay);
	return fio_sync(fd, FIO_FDATASYNC);
}

static int fio_fsync(int fd)
{
	return fio_sync(fd, FIO_FSYNC);
}

static int fio_ftruncate(int fd, off_t len)
{
	g_mutex_lock(&fio.lock);
	int err = gate(FIO_FTRUNCATE, true);

	g_mutex_unlock(&fio.lock);
	if (err) {
		errno = err;
		return -1;
	}
	return ftruncate(fd, len);
}

static int fio_rename(const char *from, const char *to)
{
	g_mutex_lock(&fio.lock);
	int err = gate(FIO_NONE, true);
	int rc = -1;

	if (err) {
		errno = err;
		goto out;
	}
	rc = rename(from, to);
	if (rc == 0) {
		struct file_state *f = NULL;
		gpointer key;

		g_hash_table_remove(fio.files, to);
		if (g_hash_table_steal_extended(fio.files, from, &key, (gpointer *)&f)) {
			g_free(f->path);
			f->path = g_strdup(to);
			f->in_dir = true;
			g_hash_table_insert(fio.files, f->path, f);
		}
	}
out:
	g_mutex_unlock(&fio.lock);
	return rc;
}

static int fio_unlink(const char *path)
{
	g_mutex_lock(&fio.lock);
	int err = gate(FIO_UNLINK, true);
	int rc = -1;

	if (err)
		errno = err;
	else if ((rc = unlink(path)) == 0)
		g_hash_table_remove(fio.files, path);
	g_mutex_unlock(&fio.lock);
	return rc;
}

const struct wal_io faultio = {
	.open = fio_open,
	.close = fio_close,
	.pread = fio_pread,
	.pwritev = fio_pwritev,
	.fdatasync = fio_fdatasync,
	.fsync = fio_fsync,
	.ftruncate = fio_ftruncate,
	.rename = fio_rename,
	.unlink = fio_unlink,
};

static void apply_write(GByteArray *img, const struct write_rec *w, size_t keep)
{
	if (keep == 0)
		return; /* nothing of it reached the disk */
	if (img->len < w->off + keep)
		g_byte_array_set_size(img, (guint)(w->off + keep)); /* new bytes are zero-filled below */
	memcpy(img->data + w->off, g_bytes_get_data(w->data, NULL), keep);
}

static void power_loss_file(struct file_state *f, GRand *rng)
{
	GByteArray *img = g_byte_array_new();
	guint durable_len = f->durable->len;

	if (!f->in_dir && g_rand_boolean(rng)) {
		unlink(f->path);
		g_byte_array_unref(img);
		return;
	}
	g_byte_array_append(img, f->durable->data, durable_len);
	for (guint i = 0; i < f->writes->len; i++) {
		const struct write_rec *w = &g_array_index(f->writes, struct write_rec, i);
		size_t len = g_bytes_get_size(w->data);
		guint old = img->len;

		switch (g_rand_int_range(rng, 0, 3)) {
		case 0: /* lost */
			continue;
		case 1: /* whole */
			apply_write(img, w, len);
			break;
		default: /* torn: a prefix reached the disk */
			apply_write(img, w, (size_t)g_rand_int_range(rng, 0, (gint32)len + 1));
			break;
		}
		if (img->len > old && old < w->off)
			memset(img->data + old, 0, w->off - old); /* a hole reads as zeros */
	}
	if (!g_file_set_contents(f->path, (const gchar *)img->data, img->len, NULL))
		abort();
	g_byte_array_unref(img);
}

void faultio_power_loss(GRand *rng)
{
	GHashTableIter it;
	gpointer value;

	g_mutex_lock(&fio.lock);
	g_hash_table_iter_init(&it, fio.files);
	while (g_hash_table_iter_next(&it, NULL, &value))
		power_loss_file(value, rng);
	g_mutex_unlock(&fio.lock);
	faultio_start(NULL);
}

/* ---- crash model ---- */

struct outcome {
	bool present;
	uint64_t version;
	uint32_t len;
};

struct key_model {
	struct outcome state;	/* after the last acknowledged operation */
	struct outcome pending; /* of the operation begun after it */
	bool has_pending;
};

struct crash_model {
	GMutex lock;
	GHashTable *keys; /* id -> struct key_model */
	uint64_t acks;
};

struct crash_model *crash_model_new(void)
{
	struct crash_model *m = g_new0(struct crash_model, 1);

	g_mutex_init(&m->lock);
	m->keys = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
	return m;
}

void crash_model_free(struct crash_model *m)
{
	g_hash_table_destroy(m->keys);
	g_mutex_clear(&m->lock);
	g_free(m);
}

static struct key_model *key_model_get(struct crash_model *m, uint64_t id)
{
	struct key_model *k = g_hash_table_lookup(m->keys, &id);

	if (!k) {
		uint64_t *key = g_new(uint64_t, 1);

		*key = id;
		k = g_new0(struct key_model, 1);
		g_hash_table_insert(m->keys, key, k);
	}
	return k;
}

void crash_model_intent(struct crash_model *m, uint64_t id, bool put, uint64_t version,
			uint32_t len)
{
	g_mutex_lock(&m->lock);
	struct key_model *k = key_model_get(m, id);

	k->pending = (struct outcome){put, version, put ? len : 0};
	k->has_pending = true;
	g_mutex_unlock(&m->lock);
}

void crash_model_ack(struct crash_model *m, uint64_t id)
{
	g_mutex_lock(&m->lock);
	struct key_model *k = key_model_get(m, id);

	if (k->has_pending) {
		k->state = k->pending;
		k->has_pending = false;
		m->acks++;
	}
	g_mutex_unlock(&m->lock);
}

uint64_t crash_model_acks(struct crash_model *m)
{
	g_mutex_lock(&m->lock);
	uint64_t n = m->acks;

	g_mutex_unlock(&m->lock);
	return n;
}

static bool outcome_equal(const struct outcome *a, const struct outcome *b)
{
	if (a->present != b->present)
		return false;
	return !a->present || (a->version == b->version && a->len == b->len);
}

/* What the store holds for id; false if it holds bytes of no version. */
static bool read_outcome(struct wal *w, uint64_t id, struct outcome *out, int *err)
{
	struct wal_key key = test_key(id);
	struct wal_shard_info info;
	uint8_t *buf;
	ssize_t n;

	*err = wal_stat(w, &key, &info);
	out->present = false;
	if (*err == -ENOENT)
		return true;
	if (*err < 0)
		return false;
	buf = g_malloc(info.length + 1);
	n = wal_read(w, &key, 0, buf, info.length + 1);
	out->present = true;
	out->len = info.length;
	bool ok = n == (ssize_t)info.length && test_payload_check(buf, info.length, id, &out->version);

	if (n < 0)
		*err = (int)n;
	g_free(buf);
	return ok;
}

int crash_model_verify(struct crash_model *m, struct wal *w, uint64_t max_id)
{
	int bad = 0;

	g_mutex_lock(&m->lock);
	for (uint64_t id = 0; id < max_id; id++) {
		struct key_model *k = key_model_get(m, id);
		struct outcome found = {0};
		int err;
		bool ok = read_outcome(w, id, &found, &err);

		if (ok && (outcome_equal(&found, &k->state) ||
			   (k->has_pending && outcome_equal(&found, &k->pending)))) {
			k->state = found;
			k->has_pending = false;
			continue;
		}
		bad++;
		fprintf(stderr,
			"key %llu: found %s v%llu len %u (err %d); acknowledged %s v%llu len %u; "
			"pending %s %s v%llu len %u\n",
			(unsigned long long)id, found.present ? "put" : "nothing",
			(unsigned long long)found.version, found.len, err,
			k->state.present ? "put" : "absent", (unsigned long long)k->state.version,
			k->state.len, k->has_pending ? "yes" : "no", k->pending.present ? "put" : "delete",
			(unsigned long long)k->pending.version, k->pending.len);
	}
	g_mutex_unlock(&m->lock);
	return bad;
}

/* ---- workload ---- */

gpointer workload_main(gpointer p)
{
	struct workload *wl = p;
	GRand *rng = g_rand_new_with_seed(wl->seed);
	uint8_t *buf = g_malloc(wl->max_len);
	uint64_t version = wl->version_base;
	int rc = 0;

	while (rc == 0 && !g_atomic_int_get(wl->stop)) {
		uint64_t id = (uint64_t)g_rand_int_range(rng, 0, (gint32)(wl->keys / wl->nthreads)) *
				      wl->nthreads + wl->thread;
		struct wal_key key = test_key(id);
		bool put = g_rand_int_range(rng, 0, 10) < 8;
		uint32_t len = (uint32_t)g_rand_int_range(rng, 16, (gint32)wl->max_len + 1);

		version++;
		wl->sink->intent(wl->sink->arg, id, put, version, len);
		if (put) {
			test_payload(buf, len, id, version);
			rc = wal_put(wl->w, &key, buf, len);
		} else {
			rc = wal_delete(wl->w, &key);
			rc = rc == -ENOENT ? 0 : rc;
		}
		if (rc == 0)
			wl->sink->ack(wl->sink->arg, id);
	}
	wl->result = rc;
	g_free(buf);
	g_rand_free(rng);
	return NULL;
}
