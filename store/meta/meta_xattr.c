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
	struct meta_stmt *s = meta_stmt(m, META_Q_XATTR_EXISTS);
	bool there;

	meta_bind_int(s, 1, (int64_t)ino);
	meta_bind_name(s, 2, name);
	there = meta_step(s) == META_ROW;
	meta_reset(s);
	return there;
}

static int setxattr_locked(struct meta *m, uint64_t ino, const char *name, const void *value,
			   size_t len, int flags)
{
	struct meta_stmt *s;
	int rc = meta_getattr_locked(m, ino, NULL);

	if (rc == 0) {
		bool there = xattr_exists(m, ino, name);

		if ((flags & META_XATTR_CREATE) && there)
			rc = -EEXIST;
		else if ((flags & META_XATTR_REPLACE) && !there)
			rc = -ENODATA;
	}
	if (rc == 0) {
		s = meta_stmt(m, META_Q_XATTR_SET);
		meta_bind_int(s, 1, (int64_t)ino);
		meta_bind_name(s, 2, name);
		meta_bind_blob(s, 3, value, len);
		rc = meta_run_done(s);
	}
	if (rc == 0)
		rc = meta_set_ctime(m, ino, meta_now_ns());
	return rc;
}

int meta_setxattr(struct meta *m, uint64_t ino, const char *name, const void *value, size_t len,
		  int flags)
{
	struct meta_tx t = META_TX(m);
	int rc = xattr_name_check(name);

	if (rc < 0)
		return rc;
	if (len > XATTR_VALUE_MAX)
		return -E2BIG;
	while (meta_tx_loop(&t, &rc))
		rc = setxattr_locked(m, ino, name, value, len, flags);
	return rc;
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
	struct meta_stmt *s;
	int rc = xattr_name_check(name);

	if (rc < 0)
		return rc;
	g_mutex_lock(&m->lock);
	s = meta_stmt(m, META_Q_XATTR_GET);
	meta_bind_int(s, 1, (int64_t)ino);
	meta_bind_name(s, 2, name);
	rc = meta_step(s);
	if (rc == META_ROW && !meta_col_null(s, 1)) {
		size_t n;
		const void *data = meta_col_blob(s, 0, &n);

		rc = copy_sized(data, n, value, size);
	} else {
		rc = rc == META_ROW ? -ENODATA : rc == META_DONE ? -ENOENT : meta_sql_errno(m, rc);
	}
	meta_reset(s);
	g_mutex_unlock(&m->lock);
	return rc;
}

int meta_listxattr(struct meta *m, uint64_t ino, char *list, size_t size)
{
	GByteArray *names = g_byte_array_new();
	struct meta_stmt *s;
	int rc;

	g_mutex_lock(&m->lock);
	rc = meta_getattr_locked(m, ino, NULL);
	if (rc == 0) {
		s = meta_stmt(m, META_Q_XATTR_LIST);
		meta_bind_int(s, 1, (int64_t)ino);
		while (meta_step(s) == META_ROW) {
			size_t n;
			const guint8 *name = meta_col_blob(s, 0, &n);

			g_byte_array_append(names, name, (guint)n);
			g_byte_array_append(names, (const guint8 *)"", 1);
		}
		meta_reset(s);
		rc = copy_sized(names->data, names->len, list, size);
	}
	g_mutex_unlock(&m->lock);
	g_byte_array_unref(names);
	return rc;
}

static int removexattr_locked(struct meta *m, uint64_t ino, const char *name)
{
	struct meta_stmt *s;
	int rc = meta_getattr_locked(m, ino, NULL);

	if (rc == 0) {
		s = meta_stmt(m, META_Q_XATTR_REMOVE);
		meta_bind_int(s, 1, (int64_t)ino);
		meta_bind_name(s, 2, name);
		rc = meta_run_done(s);
		if (rc == 0 && m->changes == 0)
			rc = -ENODATA;
	}
	if (rc == 0)
		rc = meta_set_ctime(m, ino, meta_now_ns());
	return rc;
}

int meta_removexattr(struct meta *m, uint64_t ino, const char *name)
{
	struct meta_tx t = META_TX(m);
	int rc = xattr_name_check(name);

	if (rc < 0)
		return rc;
	while (meta_tx_loop(&t, &rc))
		rc = removexattr_locked(m, ino, name);
	return rc;
}
