/*
 * io.c - the POSIX system-call table and the exact-length helpers over it.
 *
 * Every file access of the store goes through struct wal_io so that tests
 * can inject errors, short writes and power loss without mocks of the store
 * itself (the way SQLite routes its VFS through a replaceable table).
 */
#define G_LOG_DOMAIN "shardfs-wal"

#include "wal_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static int posix_open(const char *path, int flags, mode_t mode)
{
	return open(path, flags, mode);
}

const struct wal_io wal_io_posix = {
	.open = posix_open,
	.close = close,
	.pread = pread,
	.pwritev = pwritev,
	.fdatasync = fdatasync,
	.fsync = fsync,
	.ftruncate = ftruncate,
	.rename = rename,
	.unlink = unlink,
};

int wal_read_exact(struct wal *w, int fd, void *buf, size_t len, uint64_t off)
{
	return wal_io_read_exact(w->io, fd, buf, len, off);
}

/* Writes every byte of iov at off, resuming after short writes. */
int wal_write_exact(struct wal *w, int fd, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct iovec *v = g_memdup2(iov, sizeof(*iov) * (size_t)iovcnt);
	struct iovec *cur = v;
	int left = iovcnt, rc = 0;

	while (left > 0) {
		ssize_t n = w->io->pwritev(fd, cur, MIN(left, IOV_MAX), (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0) {
			rc = -EIO;
			break;
		}
		off += (uint64_t)n;
		while (left > 0 && (size_t)n >= cur->iov_len) {
			n -= (ssize_t)cur->iov_len;
			cur++;
			left--;
		}
		if (left > 0) {
			cur->iov_base = (uint8_t *)cur->iov_base + n;
			cur->iov_len -= (size_t)n;
		}
	}
	g_free(v);
	return rc;
}

int wal_sync_dir(struct wal *w)
{
	return w->io->fsync(w->dir_fd) < 0 ? -errno : 0;
}
