/*
 * stream_attr.c - what a stream file is configured by and what it shows:
 * the stream directories, the settings kept as xattrs
 * (user.shardfs.policy, ring, start, checked at setxattr and inherited
 * from the directory at creation), the names of the read-only statistics,
 * and a stream's id on the ring.
 *
 * Everything here is metadata and text; the live side of streams
 * (subscriptions, parked reads, writers) is in stream.c, which answers
 * the statistics' values since they come from the home node and from the
 * mount's own readers.
 */
#define G_LOG_DOMAIN "shardfs-fuse"

#include "fs_internal.h"
#include "store/stream.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define RING_MIN 4096u
#define XATTR_PREFIX FS_XATTR_PREFIX
#define XATTR_STREAM XATTR_PREFIX "stream"
#define XATTR_POLICY XATTR_PREFIX "policy"
#define XATTR_RING XATTR_PREFIX "ring"
#define XATTR_START XATTR_PREFIX "start"

void fs_stream_id(uint64_t ino, uint8_t id[16])
{
	struct {
		char tag[8];
		uint64_t ino;
	} in = {.tag = "sfstream", .ino = GUINT64_TO_LE(ino)};
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(&in, sizeof(in)));
	memcpy(id, c.digest, 16);
}

static bool value_is(const char *value, size_t size, const char *word)
{
	return size == strlen(word) && memcmp(value, word, size) == 0;
}

/* "8388608", "512K", "8M", "1G": bytes, within what a node accepts. */
static int parse_ring(const char *value, size_t size, uint64_t *out)
{
	char text[32], *end;

	if (size == 0 || size >= sizeof(text))
		return -EINVAL;
	memcpy(text, value, size);
	text[size] = 0;
	if (!g_ascii_isdigit(text[0]))
		return -EINVAL;
	uint64_t n = g_ascii_strtoull(text, &end, 10);
	int shift = !*end ? 0 : !strcmp(end, "K") ? 10 : !strcmp(end, "M") ? 20 : !strcmp(end, "G") ? 30 : -1;
	if (shift < 0 || n > (STORE_STREAM_RING_MAX >> shift))
		return -EINVAL;
	n <<= shift;
	if (n < RING_MIN)
		return -EINVAL;
	*out = n;
	return 0;
}

static const char *const stat_names[] = {XATTR_PREFIX "readers", XATTR_PREFIX "writers",
					 XATTR_PREFIX "written", XATTR_PREFIX "oldest",
					 XATTR_PREFIX "dropped", XATTR_PREFIX "subscriptions",
					 XATTR_PREFIX "home", NULL};

bool fs_stream_stat_name(const char *name)
{
	return g_strv_contains(stat_names, name);
}

void fs_stream_list_stats(GString *names)
{
	for (const char *const *n = stat_names; *n; n++)
		g_string_append_len(names, *n, (gssize)strlen(*n) + 1);
}

int fs_stream_check_xattr(const char *name, const char *value, size_t size)
{
	uint64_t ring;

	if (!g_str_has_prefix(name, XATTR_PREFIX))
		return 0;
	if (!strcmp(name, XATTR_STREAM))
		return value_is(value, size, "1") || value_is(value, size, "0") ? 0 : -EINVAL;
	if (!strcmp(name, XATTR_POLICY))
		return value_is(value, size, "live") || value_is(value, size, "lossless") ? 0 : -EINVAL;
	if (!strcmp(name, XATTR_START))
		return value_is(value, size, "oldest") || value_is(value, size, "live") ? 0 : -EINVAL;
	if (!strcmp(name, XATTR_RING))
		return parse_ring(value, size, &ring);
	return fs_stream_stat_name(name) ? -EPERM : -EINVAL;
}

/* The xattr's value as a string, or NULL. */
static char *xattr_text(struct meta *m, uint64_t ino, const char *name)
{
	char buf[64];
	int n = meta_getxattr(m, ino, name, buf, sizeof(buf) - 1);

	if (n < 0)
		return NULL;
	return g_strndup(buf, (gsize)n);
}

void fs_stream_conf_load(struct meta *m, uint64_t ino, struct fs_stream_conf *c)
{
	g_autofree char *policy = xattr_text(m, ino, XATTR_POLICY);
	g_autofree char *start = xattr_text(m, ino, XATTR_START);
	g_autofree char *ring = xattr_text(m, ino, XATTR_RING);

	c->lossless = policy && !strcmp(policy, "lossless");
	c->start_live = start && !strcmp(start, "live");
	if (!ring || parse_ring(ring, strlen(ring), &c->ring_bytes))
		c->ring_bytes = STORE_STREAM_RING_DEFAULT;
}

bool fs_stream_dir(struct meta *m, uint64_t dir)
{
	g_autofree char *v = xattr_text(m, dir, XATTR_STREAM);

	return v && !strcmp(v, "1");
}

int fs_stream_make(struct meta *m, uint64_t parent, const char *name, uint32_t mode,
		   uint32_t uid, uint32_t gid, struct meta_attr *out)
{
	static const char *const inherited[] = {XATTR_POLICY, XATTR_RING, XATTR_START};
	int rc = meta_mknod(m, parent, name, META_S_IFSTREAM | (mode & 07777), uid, gid, out);

	/* The stream keeps the directory's settings of its creation. */
	for (size_t i = 0; rc == 0 && i < G_N_ELEMENTS(inherited); i++) {
		g_autofree char *v = xattr_text(m, parent, inherited[i]);

		if (v)
			rc = meta_setxattr(m, out->ino, inherited[i], v, strlen(v), 0);
	}
	return rc;
}

/* dir, relative to the root, made a stream directory (created if missing). */
int fs_stream_mark_dir(struct meta *m, const char *path)
{
	char **names = g_strsplit(path, "/", -1);
	uint64_t ino = META_ROOT_INO;
	int rc = 0;

	for (char **n = names; rc == 0 && *n; n++) {
		struct meta_attr a;

		if (!**n || !strcmp(*n, "."))
			continue;
		rc = meta_lookup(m, ino, *n, &a);
		if (rc == -ENOENT)
			rc = meta_mkdir(m, ino, *n, 0755, getuid(), getgid(), &a);
		if (rc == 0 && !S_ISDIR(a.mode))
			rc = -ENOTDIR;
		ino = a.ino;
	}
	g_strfreev(names);
	if (rc == 0)
		rc = meta_setxattr(m, ino, XATTR_STREAM, "1", 1, 0);
	return rc;
}
