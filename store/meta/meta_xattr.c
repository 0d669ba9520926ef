/*
 * meta_xattr.c - extended attributes of the metadata engine (meta.h):
 * set (with the CREATE and REPLACE rules of setxattr(2)), get, list and
 * remove. Names are 1-255 bytes, values at most 64 KiB; a change stamps
 * the inode's ctime in the same transaction. Calls only the core.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <sqlite3.h>
#include <string.h>

#define XATTR_NAME_MAX_LEN 255u
#define XATTR_VALUE_MAX (64u << 10)

static int xattr_name_check(const char *name)
{
	size_t n = strlen(name);

	return n == 0 ? -EINVAL : n > XATTR_NAME_MAX_LEN ? -ERANGE : 0;
}

static bool xattr_exists(struct meta *m, uint64_t ino, const char *name)
{
	sqlite3_stmt *s = meta_stmt(m, META_Q_XATTR_EXISTS);
	bool there;

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	meta_bind_name(s, 2, name);
	there = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_reset(s);
	return there;
}

int meta_setxattr(struct meta *m, uint64_t ino, const char *name, const void *value, size_t len,
		  int flags)
{
	sqlite3_stmt *s;
	int rc = xattr_name_check(name);

	if (rc < 0)
		return rc;
	if (len > XATTR_VALUE_MAX)
		return -E2BIG;
	rc = meta_tx_begin(m);
	if (rc < 0)
		return rc;
	rc = meta_getattr_locked(m, ino, NULL);
	if (rc == 0) {
		bool there = xattr_exists(m, ino, name);

		if ((flags & META_XATTR_CREATE) && there)
			rc = -EEXIST;
		else if ((flags & META_XATTR_REPLACE) && !there)
			rc = -ENODATA;
	}
	if (rc == 0) {
		s = meta_stmt(m, META_Q_XATTR_SET);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		meta_bind_name(s, 2, name);
		sqlite3_bind_blob(s, 3, len ? value : "", (int)len, SQLITE_STATIC);
		rc = meta_run_done(s);
	}
	if (rc == 0)
		rc = meta_set_ctime(m, ino, meta_now_ns());
	return meta_tx_end(m, rc);
}

/* Copies a blob the size rules of getxattr(2) allow: its length, or -ERANGE. */
static int copy_sized(const void *data, size_t len, void *buf, size_t size)
{
	if (size == 0)
		return (int)len;
	if (len > size)
		return -ERANGE;
	if (len) /* an empty blob may come as NULL */
		memcpy(buf, data, len);
	return (int)len;
}

int meta_getxattr(struct meta *m, uint64_t ino, const char *name, void *value, size_t size)
{
	sqlite3_stmt *s;
	int rc = xattr_name_check(name);

	if (rc < 0)
		return rc;
	g_mutex_lock(&m->lock);
	rc = meta_getattr_locked(m, ino, NULL);
	if (rc == 0) {
		s = meta_stmt(m, META_Q_XATTR_GET);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		meta_bind_name(s, 2, name);
		if (sqlite3_step(s) == SQLITE_ROW)
			rc = copy_sized(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0), value, size);
		else
			rc = -ENODATA;
		sqlite3_reset(s);
	}
	g_mutex_unlock(&m->lock);
	return rc;
}

int meta_listxattr(struct meta *m, uint64_t ino, char *list, size_t size)
{
	GByteArray *names = g_byte_array_new();
	sqlite3_stmt *s;
	int rc;

	g_mutex_lock(&m->lock);
	rc = meta_getattr_locked(m, ino, NULL);
	if (rc == 0) {
		s = meta_stmt(m, META_Q_XATTR_LIST);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		while (sqlite3_step(s) == SQLITE_ROW) {
			g_byte_array_append(names, sqlite3_column_blob(s, 0), (guint)sqlite3_column_bytes(s, 0));
			g_byte_array_append(names, (const guint8 *)"", 1);
		}
		sqlite3_reset(s);
		rc = copy_sized(names->data, names->len, list, size);
	}
	g_mutex_unlock(&m->lock);
	g_byte_array_unref(names);
	return rc;
}

int meta_removexattr(struct meta *m, uint64_t ino, const char *name)
{
	sqlite3_stmt *s;
	int rc = xattr_name_check(name);

	if (rc < 0)
		return rc;
	rc = meta_tx_begin(m);
	if (rc < 0)
		return rc;
	rc = meta_getattr_locked(m, ino, NULL);
	if (rc == 0) {
		s = meta_stmt(m, META_Q_XATTR_REMOVE);
		sqlite3_bind_int64(s, 1, (int64_t)ino);
		meta_bind_name(s, 2, name);
		rc = meta_run_done(s);
		if (rc == 0 && sqlite3_changes(m->db) == 0)
			rc = -ENODATA;
	}
	if (rc == 0)
		rc = meta_set_ctime(m, ino, meta_now_ns());
	return meta_tx_end(m, rc);
}
