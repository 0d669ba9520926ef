/*
 * segment.c - segment files: naming, creation, reference counting.
 *
 * A segment is named by its id (seg-<16 hex>.wal) so that recovery starts
 * from a directory listing. Readers hold a reference while they pread, so
 * compaction may unlink a segment while reads of it are still in flight:
 * the file lives until the last reference closes its descriptor.
 */
#define G_LOG_DOMAIN "shardfs-wal"

#include "wal_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>

char *wal_seg_path(const struct wal *w, uint64_t id)
{
	return g_strdup_printf("%s/seg-%016" PRIx64 ".wal", w->dir, id);
}

struct wal_seg *wal_seg_ref(struct wal_seg *seg)
{
	g_atomic_int_inc(&seg->refs);
	return seg;
}

void wal_seg_unref(struct wal_seg *seg)
{
	if (!seg || !g_atomic_int_dec_and_test(&seg->refs))
		return;
	if (seg->fd >= 0)
		seg->w->io->close(seg->fd);
	g_free(seg->path);
	g_free(seg);
}

int wal_seg_create(struct wal *w, uint64_t id, struct wal_seg **out)
{
	uint8_t header[WAL_SEG_HEADER_SIZE];
	struct iovec iov = {header, sizeof(header)};
	struct wal_seg *seg = g_new0(struct wal_seg, 1);
	int rc;

	seg->id = id;
	seg->w = w;
	seg->refs = 1;
	seg->path = wal_seg_path(w, id);
	seg->fd = w->io->open(seg->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (seg->fd < 0) {
		rc = -errno;
		goto fail;
	}
	wal_seg_header_encode(id, header);
	rc = wal_write_exact(w, seg->fd, &iov, 1, 0);
	if (rc < 0)
		goto fail_unlink;
	seg->size = WAL_SEG_HEADER_SIZE;
	seg->needs_dir_sync = true;
	*out = seg;
	return 0;
fail_unlink:
	w->io->unlink(seg->path);
fail:
	wal_seg_unref(seg);
	return rc;
}
