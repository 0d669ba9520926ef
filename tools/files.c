/*
 * files.c - `shardfs put/get/cat/ls/rm`: files of the cluster without a
 * mount, in the namespace the mount shows.
 *
 * Every command finds the cluster with -c/--config (default: the
 * SHARDFS_CONF environment variable). Remote paths are absolute in the
 * cluster's namespace ("/a/b"; a missing leading '/' means the same).
 *
 * put writes the object while it reads its input, then commits the
 * manifest in one durable metadata transaction: a reader sees the old file
 * or the new one. A failed put leaves the old file (or no file) and
 * deletes what it sent. get and cat hold the file open in a metadata
 * session, so that a concurrent rm does not pull the shards away.
 */
#define G_LOG_DOMAIN "shardfs"

#include "net/net.h"
#include "client.h"
#include "shardfs.h"
#include "store/meta/meta.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IO_CHUNK (1u << 20)
#define GC_BATCH 256u

static char *opt_config;

static const GOptionEntry config_entry = {
	"config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config,
	"cluster file or directory (default: $SHARDFS_CONF)", "CLUSTER"};

static int fail(const char *what, const char *path, int err)
{
	fprintf(stderr, "shardfs: %s%s%s: %s\n", what, path ? " " : "", path ? path : "",
		common_strerror(err));
	return SHARDFS_EXIT_FAIL;
}

/* Deletes the shards of what was replaced or removed; what a down node
 * keeps waits for a later pass. */
static void collect_garbage(struct client *c)
{
	unsigned n;

	do {
		if (store_collect_garbage(c->store, c->meta, GC_BATCH, &n))
			return;
	} while (n == GC_BATCH);
}

/* Looks up every component of path from the root. */
static int resolve(struct meta *m, const char *path, struct meta_attr *out)
{
	char **parts = g_strsplit(path, "/", -1);
	int rc = meta_getattr(m, META_ROOT_INO, out);

	for (char **p = parts; rc == 0 && *p; p++)
		if (**p)
			rc = meta_lookup(m, out->ino, *p, out);
	g_strfreev(parts);
	return rc;
}

/* The directory that holds path, and the last component's name (g_free). */
static int resolve_parent(struct meta *m, const char *path, uint64_t *parent, char **name)
{
	g_autofree char *trimmed = g_strdup(path);
	struct meta_attr a;

	for (size_t n = strlen(trimmed); n > 1 && trimmed[n - 1] == '/'; n--)
		trimmed[n - 1] = '\0';
	char *slash = strrchr(trimmed, '/');
	*name = g_strdup(slash ? slash + 1 : trimmed);
	if (slash)
		*slash = '\0';
	int rc = resolve(m, slash ? trimmed : "", &a);
	if (rc == 0 && !S_ISDIR(a.mode))
		rc = -ENOTDIR;
	if (rc == 0 && !**name)
		rc = -EISDIR;
	if (rc == 0)
		*parent = a.ino;
	else
		g_clear_pointer(name, g_free);
	return rc;
}

/* ---- progress on a terminal ---- */

struct progress {
	bool on;
	const char *name; /* of the file, borrowed */
	uint64_t total;	  /* 0: unknown */
	uint64_t done;
	gint64 start, shown;
};

static void progress_init(struct progress *p, const char *name, uint64_t total)
{
	*p = (struct progress){.on = isatty(STDERR_FILENO), .name = name, .total = total,
			       .start = g_get_monotonic_time()};
}

static char *clock_text(double secs)
{
	unsigned s = (unsigned)secs;

	return s >= 3600 ? g_strdup_printf("%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60)
			 : g_strdup_printf("%u:%02u", s / 60, s % 60);
}

/* The bar, redrawn in place at most 5 times a second: name, done of total,
 * rate, elapsed and time left. The last call replaces it with a summary
 * line. Only on a terminal. */
static void progress_show(struct progress *p, bool last)
{
	gint64 now = g_get_monotonic_time();

	if (!p->on || (!last && now - p->shown < 200000))
		return;
	p->shown = now;
	double secs = (double)(now - p->start) / 1e6, rate = secs > 0 ? p->done / secs : 0;
	g_autofree char *done = tools_iec_size(p->done), *speed = tools_iec_size((uint64_t)rate);
	g_autofree char *elapsed = clock_text(secs);

	if (last) {
		fprintf(stderr, "\r\033[K%s: %s in %.1f s, %s/s\n", p->name, done, secs, speed);
	} else if (p->total) {
		double eta = rate > 0 ? (double)(p->total - MIN(p->done, p->total)) / rate : 0;
		g_autofree char *total = tools_iec_size(p->total), *left = clock_text(eta);

		fprintf(stderr, "\r\033[K%s  %s / %s  %5.1f%%  %s/s  %s elapsed  ETA %s", p->name,
			done, total, 100.0 * p->done / p->total, speed, elapsed, left);
	} else {
		fprintf(stderr, "\r\033[K%s  %s  %s/s  %s elapsed", p->name, done, speed, elapsed);
	}
}

/* ---- put ---- */

static int write_all_from(int fd, struct store_writer *w, struct progress *pr, uint64_t *size)
{
	uint8_t *buf = g_malloc(IO_CHUNK);
	int rc = 0;

	*size = 0;
	for (;;) {
		ssize_t n = read(fd, buf, IO_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : 0;
			break;
		}
		if ((rc = store_writer_write(w, buf, (size_t)n)))
			break;
		*size += (uint64_t)n;
		pr->done = *size;
		progress_show(pr, false);
	}
	g_free(buf);
	return rc;
}

/* Streams fd into a new object and commits it as file ino. */
static int put_object(struct client *c, int fd, const char *name, uint64_t ino, uint64_t total)
{
	struct store_writer *w;
	struct meta_part *parts = NULL;
	struct progress pr;
	unsigned nparts = 0;
	uint64_t size;
	uint8_t oid[16];

	store_object_id_new(oid);
	int rc = store_writer_new(c->store, oid, 0, &w);
	if (rc)
		return rc;
	progress_init(&pr, name, total);
	rc = write_all_from(fd, w, &pr, &size);
	if (rc == 0)
		rc = store_writer_finish(w, &parts, &nparts);
	store_writer_free(w);
	progress_show(&pr, true);
	if (rc)
		return rc;
	rc = meta_commit_manifest(c->meta, ino, oid, size, parts, nparts, NULL, true);
	if (rc)
		store_parts_delete(c->store, parts, nparts);
	g_free(parts);
	return rc;
}

static int put_target(struct client *c, const char *local, const char *remote, uint64_t *ino,
		      bool *created)
{
	struct meta_attr a;
	uint64_t parent;
	g_autofree char *name = NULL;
	int rc = resolve(c->meta, remote, &a);

	if (rc == 0 && S_ISDIR(a.mode) && strcmp(local, "-")) {
		g_autofree char *base = g_path_get_basename(local);
		g_autofree char *full = g_build_filename(remote, base, NULL);
		return put_target(c, "-", full, ino, created);
	}
	if (rc == 0 && !S_ISREG(a.mode))
		return S_ISDIR(a.mode) ? -EISDIR : -EINVAL;
	*created = rc == -ENOENT;
	if (rc && rc != -ENOENT)
		return rc;
	if ((rc = resolve_parent(c->meta, remote, &parent, &name)))
		return rc;
	rc = meta_create(c->meta, parent, name, 0644, getuid(), getgid(), false, &a);
	if (rc == 0)
		*ino = a.ino;
	return rc;
}

static void remove_new_file(struct client *c, const char *remote)
{
	uint64_t parent;
	g_autofree char *name = NULL;

	if (resolve_parent(c->meta, remote, &parent, &name) == 0)
		meta_unlink(c->meta, parent, name);
}

int cmd_put(int argc, char **argv)
{
	const GOptionEntry entries[] = {config_entry, G_OPTION_ENTRY_NULL};
	struct client c;
	struct stat st;
	uint64_t ino;
	bool created = false;

	if (!tools_parse(argc, argv, entries, "LOCAL|- REMOTE - store a file in the cluster"))
		return SHARDFS_EXIT_USAGE;
	if (argc != 3) {
		fprintf(stderr, "usage: shardfs put [-c CLUSTER.conf] LOCAL|- REMOTE\n");
		return SHARDFS_EXIT_USAGE;
	}
	const char *local = argv[1], *remote = argv[2];
	int fd = strcmp(local, "-") ? open(local, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	if (fd < 0)
		return fail("cannot open", local, -errno);
	int rc = client_open(&c, argv[0], opt_config);
	if (rc) {
		close(fd);
		return rc;
	}
	uint64_t total = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	store_note_identities(c.store, c.meta);
	rc = put_target(&c, local, remote, &ino, &created);
	if (rc == 0 && (rc = put_object(&c, fd, strcmp(local, "-") ? local : "stdin", ino, total)) &&
	    created)
		remove_new_file(&c, remote);
	if (rc == 0)
		collect_garbage(&c);
	if (fd != STDIN_FILENO)
		close(fd);
	client_close(&c);
	return rc ? fail("put", remote, rc) : 0;
}

/* ---- get and cat ---- */

static int write_all(int fd, const uint8_t *b, size_t len)
{
	while (len) {
		ssize_t n = write(fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Bytes [off, end) of a file whose content is inline: data, then zeros
 * up to its size. */
static int copy_inline(const uint8_t *data, size_t data_len, int fd, uint64_t off, uint64_t end)
{
	static const uint8_t zeros[4096];
	int rc = 0;

	if (off < data_len)
		rc = write_all(fd, data + off, (size_t)(MIN(end, (uint64_t)data_len) - off));
	for (off = MAX(off, (uint64_t)data_len); rc == 0 && off < end; off += sizeof(zeros))
		rc = write_all(fd, zeros, (size_t)MIN((uint64_t)sizeof(zeros), end - off));
	return rc;
}

/* Reads [off, off+len) of the file (len 0: to the end) into fd, with a
 * progress bar for a whole file copied to a file. */
static int copy_range(struct client *c, const char *name, const struct meta_attr *a, int fd,
		      uint64_t off, uint64_t len)
{
	struct meta_part *parts = NULL;
	struct store_reader *r;
	struct progress pr;
	unsigned nparts = 0;
	uint8_t oid[16];
	uint64_t end = len && off + len < a->size ? off + len : a->size;
	int rc = meta_get_manifest(c->meta, a->ino, oid, &parts, &nparts);

	if (rc == 0 && nparts == 0 && a->size) {
		g_autofree void *data = NULL;
		size_t data_len = 0;

		rc = meta_get_inline(c->meta, a->ino, &data, &data_len);
		if (rc == 0)
			return copy_inline(data, data_len, fd, MIN(off, end), end);
		if (rc != -ENODATA) /* none: the file is a hole of its size */
			return rc;
	}
	if (rc || (rc = store_reader_new(c->store, parts, nparts, &r))) {
		g_free(parts);
		return rc;
	}
	uint8_t *buf = g_malloc(IO_CHUNK);
	progress_init(&pr, name, end - MIN(off, end));
	pr.on = pr.on && fd != STDOUT_FILENO;
	for (uint64_t start = off; rc == 0 && off < end;) {
		ssize_t n = store_reader_read(r, off, buf, (size_t)MIN((uint64_t)IO_CHUNK, end - off));

		rc = n < 0 ? (int)n : n == 0 ? -EIO : write_all(fd, buf, (size_t)n);
		off += n > 0 ? (uint64_t)n : 0;
		pr.done = off - start;
		progress_show(&pr, false);
	}
	if (rc == 0)
		progress_show(&pr, true);
	g_free(buf);
	store_reader_free(r);
	g_free(parts);
	return rc;
}

struct range {
	gint64 offset, length; /* length 0: whole file */
};

/* Reads remote file (or a range of it) into fd, held open in a session
 * meanwhile. */
static int get_file(struct client *c, const char *remote, int fd, const struct range *range)
{
	struct meta_attr a;
	uint64_t sid;
	int rc = resolve(c->meta, remote, &a);

	if (rc == 0 && !S_ISREG(a.mode))
		rc = S_ISDIR(a.mode) ? -EISDIR : -EINVAL;
	if (rc || (rc = meta_session_start(c->meta, g_get_host_name(), META_LEASE_DEFAULT_S, &sid)))
		return rc;
	if ((rc = meta_open_file(c->meta, sid, a.ino)) == 0) {
		rc = range ? copy_range(c, remote, &a, fd, (uint64_t)range->offset,
					(uint64_t)range->length)
			   : copy_range(c, remote, &a, fd, 0, 0);
		meta_close_file(c->meta, sid, a.ino);
	}
	meta_session_end(c->meta, sid);
	return rc;
}

static int open_local_out(const char *local, const char *remote, char **path)
{
	struct stat st;

	if (stat(local, &st) == 0 && S_ISDIR(st.st_mode)) {
		g_autofree char *base = g_path_get_basename(remote);
		*path = g_build_filename(local, base, NULL);
	} else {
		*path = g_strdup(local);
	}
	int fd = open(*path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
}

int cmd_get(int argc, char **argv)
{
	const GOptionEntry entries[] = {config_entry, G_OPTION_ENTRY_NULL};
	struct client c;
	g_autofree char *path = NULL;

	if (!tools_parse(argc, argv, entries, "REMOTE LOCAL|- - copy a file out of the cluster"))
		return SHARDFS_EXIT_USAGE;
	if (argc != 3) {
		fprintf(stderr, "usage: shardfs get [-c CLUSTER.conf] REMOTE LOCAL|-\n");
		return SHARDFS_EXIT_USAGE;
	}
	int rc = client_open(&c, argv[0], opt_config);
	if (rc)
		return rc;
	bool to_stdout = !strcmp(argv[2], "-");
	int fd = to_stdout ? STDOUT_FILENO : open_local_out(argv[2], argv[1], &path);
	struct stat st;
	bool regular = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	rc = fd < 0 ? fd : get_file(&c, argv[1], fd, NULL);
	if (!to_stdout && fd >= 0 && close(fd) && rc == 0)
		rc = -errno;
	if (rc && !to_stdout && regular)
		unlink(path); /* no partial copy left behind (but never a device) */
	client_close(&c);
	return rc ? fail("get", argv[1], rc) : 0;
}

static void print_stats(struct store *s)
{
	struct store_stats st;

	store_get_stats(s, &st);
	fprintf(stderr,
		"stats: bytes_read=%" G_GUINT64_FORMAT " shard_bytes_fetched=%" G_GUINT64_FORMAT
		" parts_read=%" G_GUINT64_FORMAT " ranges_read=%" G_GUINT64_FORMAT
		" degraded_reads=%" G_GUINT64_FORMAT " hedged_reads=%" G_GUINT64_FORMAT
		" corrupt_shards=%" G_GUINT64_FORMAT "\n",
		st.bytes_read, st.shard_bytes_fetched, st.parts_read, st.ranges_read,
		st.degraded_reads, st.hedged_reads, st.corrupt_shards);
}

int cmd_cat(int argc, char **argv)
{
	struct range range = {0, 0};
	gboolean stats = FALSE;
	const GOptionEntry entries[] = {
		config_entry,
		{"offset", 'o', 0, G_OPTION_ARG_INT64, &range.offset, "start at byte OFFSET", "OFFSET"},
		{"length", 'n', 0, G_OPTION_ARG_INT64, &range.length, "print at most LENGTH bytes",
		 "LENGTH"},
		{"stats", 0, 0, G_OPTION_ARG_NONE, &stats,
		 "print read counters (bytes fetched, degraded reads, corrupt shards) on stderr", NULL},
		G_OPTION_ENTRY_NULL};
	struct client c;
	int rc = 0;

	if (!tools_parse(argc, argv, entries, "REMOTE... - print files of the cluster"))
		return SHARDFS_EXIT_USAGE;
	if (argc < 2 || range.offset < 0 || range.length < 0) {
		fprintf(stderr, "usage: shardfs cat [-c CLUSTER.conf] [-o OFFSET] [-n LENGTH] REMOTE...\n");
		return SHARDFS_EXIT_USAGE;
	}
	if ((rc = client_open(&c, argv[0], opt_config)))
		return rc;
	bool ranged = range.offset || range.length;
	for (int i = 1; i < argc && rc == 0; i++)
		if ((rc = get_file(&c, argv[i], STDOUT_FILENO, ranged ? &range : NULL)))
			fail("cat", argv[i], rc);
	if (stats)
		print_stats(c.store);
	client_close(&c);
	return rc ? SHARDFS_EXIT_FAIL : 0;
}

/* ---- ls ---- */

struct listing {
	struct meta *m;
	GPtrArray *names;
	uint64_t cookie;
};

static int add_entry(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	struct listing *l = arg;

	(void)ino;
	(void)mode;
	g_ptr_array_add(l->names, g_strdup(name));
	l->cookie = cookie;
	return 0;
}

static void mode_string(uint32_t mode, char out[11])
{
	static const char rwx[] = "rwxrwxrwx";

	out[0] = S_ISDIR(mode) ? 'd' : S_ISLNK(mode) ? 'l' : S_ISFIFO(mode) ? 'p' : '-';
	for (int i = 0; i < 9; i++)
		out[1 + i] = mode & (1u << (8 - i)) ? rwx[i] : '-';
	out[10] = '\0';
}

/* The name of user (or group) id, as ls -l shows it; the number when the
 * host has no name for it (ids from another host's users). The last one
 * asked is kept: a directory's files mostly share their owner. */
static const char *owner_name(uint32_t id, bool group)
{
	static char names[2][64];
	static uint32_t ids[2];
	static bool known[2];
	char buf[4096];
	const char *found = NULL;

	if (known[group] && ids[group] == id)
		return names[group];
	if (group) {
		struct group gr, *res = NULL;

		if (getgrgid_r((gid_t)id, &gr, buf, sizeof(buf), &res) == 0 && res)
			found = res->gr_name;
	} else {
		struct passwd pw, *res = NULL;

		if (getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &res) == 0 && res)
			found = res->pw_name;
	}
	if (found)
		g_strlcpy(names[group], found, sizeof(names[group]));
	else
		g_snprintf(names[group], sizeof(names[group]), "%u", id);
	ids[group] = id;
	known[group] = true;
	return names[group];
}

static void print_entry(const struct meta_attr *a, const char *name, bool lng)
{
	char mode[11], when[32];
	time_t t = (time_t)(a->mtime_ns / 1000000000);
	struct tm tm;

	if (!lng) {
		printf("%s\n", name);
		return;
	}
	mode_string(a->mode, mode);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M", localtime_r(&t, &tm));
	printf("%s %3u %-8s %-8s %12" G_GUINT64_FORMAT " %s %s\n", mode, a->nlink,
	       owner_name(a->uid, false), owner_name(a->gid, true), a->size, when, name);
}

static gint name_cmp(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir(struct meta *m, uint64_t dir, bool lng)
{
	struct listing l = {.m = m, .names = g_ptr_array_new_with_free_func(g_free)};
	int rc;
	guint before;

	do {
		before = l.names->len;
		rc = meta_readdir(m, dir, l.cookie, 1024, add_entry, &l);
	} while (rc == 0 && l.names->len > before);
	g_ptr_array_sort(l.names, name_cmp);
	for (guint i = 0; rc == 0 && i < l.names->len; i++) {
		struct meta_attr a;

		if (meta_lookup(m, dir, l.names->pdata[i], &a) == 0) /* gone meanwhile: skip */
			print_entry(&a, l.names->pdata[i], lng);
	}
	g_ptr_array_free(l.names, TRUE);
	return rc;
}

int cmd_ls(int argc, char **argv)
{
	gboolean lng = FALSE;
	const GOptionEntry entries[] = {
		config_entry,
		{"long", 'l', 0, G_OPTION_ARG_NONE, &lng, "mode, links, owner, size, time", NULL},
		G_OPTION_ENTRY_NULL};
	struct client c;
	struct meta_attr a;

	if (!tools_parse(argc, argv, entries, "[PATH] - list a directory of the cluster"))
		return SHARDFS_EXIT_USAGE;
	const char *path = argc > 1 ? argv[1] : "/";
	int rc = client_open(&c, argv[0], opt_config);
	if (rc)
		return rc;
	rc = resolve(c.meta, path, &a);
	if (rc == 0 && S_ISDIR(a.mode))
		rc = list_dir(c.meta, a.ino, lng);
	else if (rc == 0)
		print_entry(&a, path, lng);
	client_close(&c);
	return rc ? fail("ls", path, rc) : 0;
}

/* ---- rm ---- */

int cmd_rm(int argc, char **argv)
{
	gboolean dir = FALSE;
	const GOptionEntry entries[] = {
		config_entry,
		{"dir", 'd', 0, G_OPTION_ARG_NONE, &dir, "remove empty directories too", NULL},
		G_OPTION_ENTRY_NULL};
	struct client c;
	int rc = 0, status = 0;

	if (!tools_parse(argc, argv, entries, "PATH... - remove files of the cluster"))
		return SHARDFS_EXIT_USAGE;
	if (argc < 2) {
		fprintf(stderr, "usage: shardfs rm [-c CLUSTER.conf] [-d] PATH...\n");
		return SHARDFS_EXIT_USAGE;
	}
	if ((rc = client_open(&c, argv[0], opt_config)))
		return rc;
	for (int i = 1; i < argc; i++) {
		uint64_t parent;
		g_autofree char *name = NULL;

		rc = resolve_parent(c.meta, argv[i], &parent, &name);
		if (rc == 0)
			rc = meta_unlink(c.meta, parent, name);
		if (rc == -EISDIR && dir)
			rc = meta_rmdir(c.meta, parent, name);
		if (rc)
			status = fail("rm", argv[i], rc);
	}
	collect_garbage(&c);
	client_close(&c);
	return status;
}
