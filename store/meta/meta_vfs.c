/*
 * meta_vfs.c - the SQLite VFS of the metadata engine: the system's "unix"
 * VFS, except for two things about the write-ahead log.
 *
 * Its frames gather per commit. SQLite writes each WAL frame with two
 * pwrite calls (the 24-byte frame header, then the page), so a create,
 * which changes 7 pages, cost 14 of them; on the paravirtualised machines
 * this project runs on a system call costs 1.5-2 us, and those writes were
 * a third of a create's CPU time. Here the frames of a transaction gather
 * in a buffer and reach the file with one pwrite when its commit frame is
 * complete, before that xWrite returns. A commit frame is one whose header
 * holds a non-zero database size, as the WAL file format defines it
 * (https://sqlite.org/fileformat.html#walformat).
 *
 * Why it is safe: SQLite publishes a commit (the wal-index header in
 * shared memory) only after the xWrite of its commit frame has returned,
 * so no connection, in this process or another, can look for a committed
 * frame that is still in a buffer, and a commit that has returned is in
 * the page cache: it survives a crash of the process. A failed flush is
 * the failure of that xWrite, and SQLite fails the commit as for a failed
 * pwrite. Every other use of the file (read, sync, truncate, size, file
 * control, close, a write that does not extend the buffer) writes the
 * buffer out first, so SQLite always sees the file as if each write had
 * gone straight to it; only uncommitted frames ever wait, and those no
 * reader looks at. Where the file cannot be parsed (page size unknown, a
 * frame header before the buffer) the buffer is written at once.
 *
 * Its writeback starts early. A checkpoint fsyncs the WAL, and so waits
 * for the disk to write every byte since the last one (16 MiB, about
 * 20 ms here) while the commit that triggered it stalls. After each MiB
 * written, sync_file_range(SYNC_FILE_RANGE_WRITE) starts that writing
 * without waiting for it, so it overlaps the commits. Durability is
 * unchanged: nothing is taken as durable before an fsync, as before.
 *
 * The database file and every other file are the unix VFS's, untouched.
 *
 * Threading: a WAL file handle belongs to one connection, which SQLite
 * uses from one thread at a time, so the buffer needs no lock.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta_sqlite.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

#define WAL_HEADER_SIZE 32
#define WAL_FRAME_HEADER_SIZE 24
/* Larger transactions go in pieces: the unix VFS writes at most 128 KiB a call. */
#define GATHER_MAX (64u << 10)
#define WRITEBACK_EVERY (1u << 20)

struct wal_file {
	sqlite3_file base;
	sqlite3_file *real; /* the unix VFS's handle, allocated behind this */
	uint8_t *buf;	    /* gathered bytes, for the file at buf_off */
	size_t len;	    /* bytes in buf */
	sqlite3_int64 buf_off;
	uint32_t page_size; /* from the WAL header; 0 while unknown */
	int writeback_fd;   /* the same file, to start its writeback; -1: none */
	size_t unkicked;    /* bytes written since writeback was last started */
};

static sqlite3_vfs *unix_vfs;

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * Starts the disk writing the WAL's dirty pages, without waiting. The
 * checkpoint's fsync must write every byte of the WAL; begun early, that
 * writing overlaps the commits instead of stalling the one that checkpoints.
 */
static void start_writeback(struct wal_file *w, size_t written)
{
	w->unkicked += written;
	if (w->unkicked < WRITEBACK_EVERY || w->writeback_fd < 0)
		return;
	w->unkicked = 0;
	/* only a hint: an error changes nothing, the checkpoint's fsync decides */
	sync_file_range(w->writeback_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

static int flush(struct wal_file *w)
{
	int rc = SQLITE_OK;

	if (w->len)
		rc = w->real->pMethods->xWrite(w->real, w->buf, (int)w->len, w->buf_off);
	if (rc == SQLITE_OK)
		start_writeback(w, w->len);
	w->len = 0;
	return rc;
}

/* The page size, from the WAL header in the buffer or in the file. */
static uint32_t page_size(struct wal_file *w)
{
	uint8_t hdr[WAL_HEADER_SIZE];

	if (w->page_size)
		return w->page_size;
	if (w->len && w->buf_off == 0 && w->len < WAL_HEADER_SIZE)
		return 0; /* a header only partly written: the file's is stale */
	if (w->len && w->buf_off == 0)
		memcpy(hdr, w->buf, WAL_HEADER_SIZE);
	else if (w->real->pMethods->xRead(w->real, hdr, WAL_HEADER_SIZE, 0) != SQLITE_OK)
		return 0;
	w->page_size = get_be32(hdr + 8);
	if (w->page_size == 1)
		w->page_size = 65536; /* the format's encoding of 64 KiB */
	if (w->page_size < 512 || w->page_size > 65536 || (w->page_size & (w->page_size - 1)))
		w->page_size = 0;
	return w->page_size;
}

/*
 * True if the buffer must go to the file now: a frame that ends within
 * (from, to] is a commit frame, or its header cannot be seen, or the frame
 * layout is unknown.
 */
static bool must_flush(struct wal_file *w, sqlite3_int64 from, sqlite3_int64 to)
{
	uint32_t ps = page_size(w);
	sqlite3_int64 frame = WAL_FRAME_HEADER_SIZE + (sqlite3_int64)ps;

	if (!ps)
		return true;
	if (to <= WAL_HEADER_SIZE)
		return false; /* only the WAL header so far */
	/* the first frame that ends after from */
	sqlite3_int64 i = from < WAL_HEADER_SIZE ? 0 : (from - WAL_HEADER_SIZE) / frame;

	for (sqlite3_int64 start = WAL_HEADER_SIZE + i * frame; start + frame <= to;
	     start += frame) {
		if (start < w->buf_off)
			return true;
		if (get_be32(w->buf + (start - w->buf_off) + 4) != 0)
			return true; /* the database size after a commit */
	}
	return false;
}

static int wal_write(sqlite3_file *f, const void *data, int n, sqlite3_int64 off)
{
	struct wal_file *w = (struct wal_file *)f;
	int rc;

	if (w->len && off != w->buf_off + (sqlite3_int64)w->len) {
		rc = flush(w);
		if (rc != SQLITE_OK)
			return rc;
	}
	if (w->len + (size_t)n > GATHER_MAX) {
		rc = flush(w);
		if (rc != SQLITE_OK)
			return rc;
		if ((size_t)n > GATHER_MAX)
			return w->real->pMethods->xWrite(w->real, data, n, off);
	}
	if (w->len == 0)
		w->buf_off = off;
	memcpy(w->buf + w->len, data, (size_t)n);
	w->len += (size_t)n;
	if (off == 0)
		w->page_size = 0; /* a new WAL header: the page size may differ */
	return must_flush(w, off, off + n) ? flush(w) : SQLITE_OK;
}

static int wal_read(sqlite3_file *f, void *data, int n, sqlite3_int64 off)
{
	struct wal_file *w = (struct wal_file *)f;

	return flush(w) ?: w->real->pMethods->xRead(w->real, data, n, off);
}

static int wal_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct wal_file *w = (struct wal_file *)f;

	return flush(w) ?: w->real->pMethods->xTruncate(w->real, size);
}

static int wal_sync(sqlite3_file *f, int flags)
{
	struct wal_file *w = (struct wal_file *)f;

	return flush(w) ?: w->real->pMethods->xSync(w->real, flags);
}

static int wal_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct wal_file *w = (struct wal_file *)f;

	return flush(w) ?: w->real->pMethods->xFileSize(w->real, size);
}

static int wal_lock(sqlite3_file *f, int level)
{
	struct wal_file *w = (struct wal_file *)f;

	return flush(w) ?: w->real->pMethods->xLock(w->real, level);
}

static int wal_unlock(sqlite3_file *f, int level)
{
	struct wal_file *w = (struct wal_file *)f;

	return flush(w) ?: w->real->pMethods->xUnlock(w->real, level);
}

static int wal_check_reserved(sqlite3_file *f, int *out)
{
	struct wal_file *w = (struct wal_file *)f;

	return w->real->pMethods->xCheckReservedLock(w->real, out);
}

static int wal_file_control(sqlite3_file *f, int op, void *arg)
{
	struct wal_file *w = (struct wal_file *)f;

	return flush(w) ?: w->real->pMethods->xFileControl(w->real, op, arg);
}

static int wal_sector_size(sqlite3_file *f)
{
	struct wal_file *w = (struct wal_file *)f;

	return w->real->pMethods->xSectorSize(w->real);
}

static int wal_device_characteristics(sqlite3_file *f)
{
	struct wal_file *w = (struct wal_file *)f;

	return w->real->pMethods->xDeviceCharacteristics(w->real);
}

static int wal_close(sqlite3_file *f)
{
	struct wal_file *w = (struct wal_file *)f;
	int rc = flush(w), crc = w->real->pMethods->xClose(w->real);

	if (w->writeback_fd >= 0)
		close(w->writeback_fd);
	g_free(w->buf);
	return rc != SQLITE_OK ? rc : crc;
}

/* Version 1: SQLite maps shared memory and pages only of the database file. */
static const sqlite3_io_methods wal_methods = {
    .iVersion = 1,
    .xClose = wal_close,
    .xRead = wal_read,
    .xWrite = wal_write,
    .xTruncate = wal_truncate,
    .xSync = wal_sync,
    .xFileSize = wal_file_size,
    .xLock = wal_lock,
    .xUnlock = wal_unlock,
    .xCheckReservedLock = wal_check_reserved,
    .xFileControl = wal_file_control,
    .xSectorSize = wal_sector_size,
    .xDeviceCharacteristics = wal_device_characteristics,
};

static int vfs_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
		    int *out_flags)
{
	struct wal_file *w = (struct wal_file *)f;
	int rc;

	(void)vfs;
	if (!(flags & SQLITE_OPEN_WAL))
		return unix_vfs->xOpen(unix_vfs, name, f, flags, out_flags);
	memset(w, 0, sizeof(*w));
	w->real = (sqlite3_file *)(w + 1);
	rc = unix_vfs->xOpen(unix_vfs, name, w->real, flags, out_flags);
	if (rc != SQLITE_OK)
		return rc; /* base.pMethods stays NULL: SQLite will not close it */
	w->buf = g_malloc(GATHER_MAX);
	w->writeback_fd = open(name, O_RDONLY | O_CLOEXEC);
	w->base.pMethods = &wal_methods;
	return SQLITE_OK;
}

static sqlite3_vfs meta_vfs;

static gpointer register_vfs(gpointer arg)
{
	(void)arg;
	unix_vfs = sqlite3_vfs_find("unix");
	if (!unix_vfs)
		return NULL;
	meta_vfs = *unix_vfs;
	meta_vfs.zName = META_VFS_NAME;
	meta_vfs.szOsFile = (int)sizeof(struct wal_file) + unix_vfs->szOsFile;
	meta_vfs.xOpen = vfs_open;
	meta_vfs.pNext = NULL;
	return sqlite3_vfs_register(&meta_vfs, 0) == SQLITE_OK ? &meta_vfs : NULL;
}

const char *meta_vfs_name(void)
{
	static GOnce once = G_ONCE_INIT;

	return g_once(&once, register_vfs, NULL) ? META_VFS_NAME : NULL;
}
