/*
 * checkpoint.c - the index checkpoint, so that a restart scans only the
 * segments written since, not every segment.
 *
 * index.ckpt, all integers little-endian:
 *   OFFSET SIZE MEANING
 *        0    8 magic "SFCKPT01"
 *        8    4 format version (1)
 *       12    4 entry size (56)
 *       16    8 entry count n
 *       24    8 applied segment id } every record before this position of
 *       32    8 applied end offset } the log is reflected in the entries
 *       40    8 highest sequence number in use
 *       48    4 reserved, 0
 *       52    4 CRC32C of bytes 0..51
 *       56 56*n entries:
 *                0 16 object id      16 4 part          20 2 shard
 *               22  1 record type    23 1 flags (1 = corrupt)
 *               24  8 segment id     32 8 record offset 40 8 sequence number
 *               48  4 payload length 52 4 older puts on disk
 *   56+56n    4 CRC32C of the entries
 *
 * Written as index.ckpt.tmp, fsynced, renamed over index.ckpt, and the
 * directory fsynced: a crash leaves the old checkpoint or the new one.
 * The sync thread applies records to the index in log order, so "every
 * record before the applied position" is exact: the scan that follows the
 * load starts there, and no record is counted twice. Copies that compaction
 * made after the checkpoint lie after that position too; entries whose
 * segment has since been compacted away are dropped when no copy turns up.
 */
#define G_LOG_DOMAIN "shardfs-wal"

#include "wal_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_MAGIC "SFCKPT01"
#define CKPT_VERSION 1
#define CKPT_HEADER 56
#define CKPT_ENTRY 56
#define CKPT_NAME "index.ckpt"

static void entry_encode(const struct wal_entry *e, uint8_t *p)
{
	memcpy(p, e->key.object_id, 16);
	wal_put_le32(p + 16, e->key.part);
	wal_put_le16(p + 20, e->key.shard);
	p[22] = e->type;
	p[23] = e->corrupt ? 1 : 0;
	wal_put_le64(p + 24, e->seg_id);
	wal_put_le64(p + 32, e->offset);
	wal_put_le64(p + 40, e->seq);
	wal_put_le32(p + 48, e->payload_len);
	wal_put_le32(p + 52, e->older_puts);
}

static bool entry_decode(const uint8_t *p, uint32_t max_payload, struct wal_entry *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->key.object_id, p, 16);
	e->key.part = wal_get_le32(p + 16);
	e->key.shard = wal_get_le16(p + 20);
	e->type = p[22];
	e->corrupt = p[23] & 1;
	e->seg_id = wal_get_le64(p + 24);
	e->offset = wal_get_le64(p + 32);
	e->seq = wal_get_le64(p + 40);
	e->payload_len = wal_get_le32(p + 48);
	e->older_puts = wal_get_le32(p + 52);
	if (p[23] > 1 || e->payload_len > max_payload)
		return false;
	if (e->type == WAL_REC_DELETE)
		return e->payload_len == 0;
	return e->type == WAL_REC_PUT;
}

int wal_checkpoint_parse(const uint8_t *buf, size_t len, uint32_t max_payload,
			 struct wal_ckpt_info *info, wal_ckpt_entry_fn fn, void *arg)
{
	uint64_t count;

	if (len < CKPT_HEADER + 4 || memcmp(buf, CKPT_MAGIC, 8) != 0)
		return WAL_ECORRUPT;
	if (wal_get_le32(buf + 8) != CKPT_VERSION || wal_get_le32(buf + 12) != CKPT_ENTRY ||
	    wal_get_le32(buf + 48) != 0 || wal_crc32c(buf, 52) != wal_get_le32(buf + 52))
		return WAL_ECORRUPT;
	count = wal_get_le64(buf + 16);
	if (count > (len - CKPT_HEADER - 4) / CKPT_ENTRY ||
	    CKPT_HEADER + count * CKPT_ENTRY + 4 != len)
		return WAL_ECORRUPT;
	if (wal_crc32c(buf + CKPT_HEADER, count * CKPT_ENTRY) != wal_get_le32(buf + len - 4))
		return WAL_ECORRUPT;
	info->count = count;
	info->applied_seg = wal_get_le64(buf + 24);
	info->applied_end = wal_get_le64(buf + 32);
	info->max_seq = wal_get_le64(buf + 40);
	for (uint64_t i = 0; i < count; i++) {
		struct wal_entry e;

		if (!entry_decode(buf + CKPT_HEADER + i * CKPT_ENTRY, max_payload, &e))
			return WAL_ECORRUPT;
		int rc = fn(arg, &e);

		if (rc)
			return rc;
	}
	return 0;
}

static int load_entry(void *arg, const struct wal_entry *src)
{
	struct wal *w = arg;
	struct wal_entry *e;

	if (wal_index_lookup(w, &src->key))
		return WAL_ECORRUPT; /* a key listed twice */
	e = wal_index_insert(w, &src->key);
	*e = *src;
	e->seg = NULL; /* attached once segments are open */
	w->max_seq = MAX(w->max_seq, e->seq);
	return 0;
}

static int read_file(struct wal *w, const char *path, uint8_t **buf, size_t *len)
{
	struct stat st;
	int fd = w->io->open(path, O_RDONLY | O_CLOEXEC, 0);
	int rc;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	*len = (size_t)st.st_size;
	*buf = g_malloc(*len ? *len : 1);
	rc = wal_read_exact(w, fd, *buf, *len, 0);
	if (rc < 0)
		g_clear_pointer(buf, g_free);
out:
	w->io->close(fd);
	return rc;
}

int wal_checkpoint_load(struct wal *w, struct wal_ckpt_info *info)
{
	char *path = g_build_filename(w->dir, CKPT_NAME, NULL);
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = read_file(w, path, &buf, &len);

	if (rc == 0)
		rc = wal_checkpoint_parse(buf, len, WAL_REC_MAX_PAYLOAD, info, load_entry, w);
	if (rc != 0) {
		g_hash_table_remove_all(w->index);
		w->max_seq = 0;
		if (rc != -ENOENT)
			g_warning("checkpoint %s unusable (%s): scanning every segment", path,
				  common_strerror(rc));
	}
	g_free(buf);
	g_free(path);
	return rc;
}

/* Encodes the index under w->lock; the file is written after. */
static uint8_t *snapshot(struct wal *w, size_t *len)
{
	GHashTableIter it;
	gpointer value;
	uint8_t *buf, *p;
	uint64_t count;

	g_mutex_lock(&w->lock);
	count = g_hash_table_size(w->index);
	*len = CKPT_HEADER + count * CKPT_ENTRY + 4;
	buf = g_malloc0(*len);
	memcpy(buf, CKPT_MAGIC, 8);
	wal_put_le32(buf + 8, CKPT_VERSION);
	wal_put_le32(buf + 12, CKPT_ENTRY);
	wal_put_le64(buf + 16, count);
	wal_put_le64(buf + 24, w->durable_seg_id);
	wal_put_le64(buf + 32, w->applied_end);
	wal_put_le64(buf + 40, w->max_seq);
	p = buf + CKPT_HEADER;
	g_hash_table_iter_init(&it, w->index);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		entry_encode(value, p);
		p += CKPT_ENTRY;
	}
	g_mutex_unlock(&w->lock);
	wal_put_le32(buf + 52, wal_crc32c(buf, 52));
	wal_put_le32(p, wal_crc32c(buf + CKPT_HEADER, count * CKPT_ENTRY));
	return buf;
}

static int write_durably(struct wal *w, const char *tmp, const char *path, const uint8_t *buf,
			 size_t len)
{
	struct iovec iov = {(void *)buf, len};
	int fd = w->io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc;

	if (fd < 0)
		return -errno;
	rc = wal_write_exact(w, fd, &iov, 1, 0);
	if (rc == 0 && w->io->fsync(fd) < 0)
		rc = -errno;
	w->io->close(fd);
	if (rc == 0 && w->io->rename(tmp, path) < 0)
		rc = -errno;
	if (rc == 0)
		rc = wal_sync_dir(w);
	if (rc < 0)
		w->io->unlink(tmp);
	return rc;
}

int wal_checkpoint_write(struct wal *w)
{
	char *path = g_build_filename(w->dir, CKPT_NAME, NULL);
	char *tmp = g_strconcat(path, ".tmp", NULL);
	size_t len;
	uint8_t *buf = snapshot(w, &len);
	int rc = write_durably(w, tmp, path, buf, len);

	if (rc == 0)
		g_atomic_int_set(&w->sealed_since_ckpt, 0);
	g_free(buf);
	g_free(tmp);
	g_free(path);
	return rc;
}

int wal_checkpoint(struct wal *w)
{
	int rc;

	g_mutex_lock(&w->work_lock);
	rc = wal_checkpoint_write(w);
	g_mutex_unlock(&w->work_lock);
	return rc;
}
