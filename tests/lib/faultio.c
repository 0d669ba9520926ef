/*
 * faultio.c - see faultio.h.
 *
 * faultio keeps, for each file it has seen, the bytes that an fsync made
 * durable and the list of writes since. A directory fsync makes every file
 * created so far durable in its directory. Renames and unlinks are taken as
 * durable at once (the store fsyncs the directory after each anyway). State
 * is global: one store at a time per test process.
 */
#include "faultio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
