/*
 * test_meta_ops.c - every metadata operation and every error code it
 * promises, on a real SQLite database in a scratch directory.
 */
#include "store/meta/meta.h"
#include "store/meta/meta_internal.h"
#include "fixture.h"
#include "meta_fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define ROOT META_ROOT_INO

struct fx {
	char *dir, *url;
	struct meta *m;
};

static int setup(void **state)
{
	struct fx *f = g_new0(struct fx, 1);

	f->dir = test_mkdtemp();
	f->url = test_meta_url(f->dir);
	assert_int_equal(meta_create_db(f->url, 1000, 1000), 0);
	assert_int_equal(meta_open(f->url, &f->m), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char *report = NULL;

	assert_int_equal(meta_check(f->m, &report), 0); /* every test leaves a sound namespace */
	g_free(report);
	meta_close(f->m);
	test_meta_url_drop(f->url);
	test_rmdir(f->dir);
	g_free(f->dir);
	g_free(f->url);
	g_free(f);
	return 0;
}

static uint32_t nlink_of(struct meta *m, uint64_t ino)
{
	struct meta_attr a;

	assert_int_equal(meta_getattr(m, ino, &a), 0);
	return a.nlink;
}

/* A new database has a root directory; opening a missing one or a URL of
 * another engine fails clearly; creating twice is refused. */
static void test_database_life_cycle(void **state)
{
	struct fx *f = *state;
	struct meta_attr a;
	struct meta *m;
	char *missing = g_strdup_printf("sqlite://%s/none.db", f->dir);

	assert_int_equal(meta_getattr(f->m, ROOT, &a), 0);
	assert_true(S_ISDIR(a.mode));
	assert_int_equal(a.uid, 1000);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(meta_schema_version(f->m), META_SCHEMA_VERSION);
	assert_int_equal(meta_open(missing, &m), -ENOENT);
	assert_int_equal(meta_open("mysql://x", &m), -EINVAL);
	assert_int_equal(meta_create_db(f->url, 0, 0), -EEXIST);
	g_free(missing);
}

/* create, lookup, getattr, with O_EXCL and without. */
static void test_create_and_lookup(void **state)
{
	struct fx *f = *state;
	struct meta_attr a, b;
	uint64_t ino = test_create_ok(f->m, ROOT, "file");

	assert_int_equal(meta_lookup(f->m, ROOT, "file", &a), 0);
	assert_int_equal(a.ino, ino);
	assert_true(S_ISREG(a.mode));
	assert_int_equal(a.mode & 07777, 0644);
	assert_int_equal(a.uid, 1);
	assert_int_equal(a.gid, 2);
	assert_int_equal(a.nlink, 1);
	assert_int_equal(meta_create(f->m, ROOT, "file", 0600, 0, 0, true, &b), -EEXIST);
	assert_int_equal(meta_create(f->m, ROOT, "file", 0600, 0, 0, false, &b), 0);
	assert_int_equal(b.ino, ino);
	assert_int_equal(meta_lookup(f->m, ROOT, "nope", &a), -ENOENT);
	assert_int_equal(meta_lookup(f->m, ino, "x", &a), -ENOTDIR);
	assert_int_equal(meta_create(f->m, ino, "x", 0644, 0, 0, true, &a), -ENOTDIR);
	assert_int_equal(meta_create(f->m, 999, "x", 0644, 0, 0, true, &a), -ENOENT);
	test_mkdir_ok(f->m, ROOT, "d");
	assert_int_equal(meta_create(f->m, ROOT, "d", 0644, 0, 0, false, &a), -EISDIR);
	/* O_CREAT on "." or "..": a directory is there, as open(2) says */
	assert_int_equal(meta_create(f->m, ROOT, ".", 0644, 0, 0, false, &a), -EISDIR);
	assert_int_equal(meta_create(f->m, ROOT, "..", 0644, 0, 0, false, &a), -EISDIR);
	assert_int_equal(meta_create(f->m, ROOT, ".", 0644, 0, 0, true, &a), -EEXIST);
}

/* Names: too long, with '/', empty, "." and "..". */
static void test_names(void **state)
{
	struct fx *f = *state;
	char longname[300];
	struct meta_attr a;
	uint64_t d = test_mkdir_ok(f->m, ROOT, "d");

	memset(longname, 'x', sizeof(longname));
	longname[256] = '\0';
	assert_int_equal(meta_create(f->m, ROOT, longname, 0644, 0, 0, true, &a), -ENAMETOOLONG);
	assert_int_equal(meta_lookup(f->m, ROOT, longname, &a), -ENAMETOOLONG);
	longname[255] = '\0';
	assert_int_equal(meta_create(f->m, ROOT, longname, 0644, 0, 0, true, &a), 0);
	assert_int_equal(meta_create(f->m, ROOT, "a/b", 0644, 0, 0, true, &a), -EINVAL);
	assert_int_equal(meta_create(f->m, ROOT, "", 0644, 0, 0, true, &a), -ENOENT);
	assert_int_equal(meta_mkdir(f->m, ROOT, ".", 0755, 0, 0, &a), -EEXIST);
	assert_int_equal(meta_mkdir(f->m, ROOT, "..", 0755, 0, 0, &a), -EEXIST);
	assert_int_equal(meta_lookup(f->m, d, ".", &a), 0);
	assert_int_equal(a.ino, d);
	assert_int_equal(meta_lookup(f->m, d, "..", &a), 0);
	assert_int_equal(a.ino, ROOT);
	assert_int_equal(meta_lookup(f->m, ROOT, "..", &a), 0);
	assert_int_equal(a.ino, ROOT);
	assert_int_equal(meta_unlink(f->m, d, "."), -EISDIR);
	assert_int_equal(meta_rmdir(f->m, d, "."), -EINVAL);
	assert_int_equal(meta_rmdir(f->m, d, ".."), -ENOTEMPTY);
	assert_int_equal(meta_rename(f->m, ROOT, "d", ROOT, ".", 0), -EINVAL);
}

/* mkdir/rmdir keep directory link counts; rmdir refuses non-empty and
 * non-directories; unlink refuses directories. */
static void test_directories(void **state)
{
	struct fx *f = *state;
	uint64_t d = test_mkdir_ok(f->m, ROOT, "d");

	assert_int_equal(nlink_of(f->m, ROOT), 3);
	test_mkdir_ok(f->m, d, "sub");
	test_create_ok(f->m, d, "file");
	assert_int_equal(nlink_of(f->m, d), 3);
	assert_int_equal(meta_rmdir(f->m, ROOT, "d"), -ENOTEMPTY);
	assert_int_equal(meta_rmdir(f->m, d, "file"), -ENOTDIR);
	assert_int_equal(meta_unlink(f->m, d, "sub"), -EISDIR);
	assert_int_equal(meta_rmdir(f->m, d, "nope"), -ENOENT);
	assert_int_equal(meta_rmdir(f->m, d, "sub"), 0);
	assert_int_equal(meta_unlink(f->m, d, "file"), 0);
	assert_int_equal(nlink_of(f->m, d), 2);
	assert_int_equal(meta_rmdir(f->m, ROOT, "d"), 0);
	assert_int_equal(nlink_of(f->m, ROOT), 2);
	assert_int_equal(meta_getattr(f->m, d, NULL), -ENOENT);
}

/* Hard links count, directories cannot be linked, the inode lives until
 * its last link goes. */
static void test_links(void **state)
{
	struct fx *f = *state;
	struct meta_attr a;
	uint64_t ino = test_create_ok(f->m, ROOT, "a"), d = test_mkdir_ok(f->m, ROOT, "d");

	assert_int_equal(meta_link(f->m, ino, d, "b", &a), 0);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(meta_link(f->m, ino, d, "b", &a), -EEXIST);
	assert_int_equal(meta_link(f->m, d, ROOT, "dlink", &a), -EPERM);
	assert_int_equal(meta_link(f->m, 999, ROOT, "x", &a), -ENOENT);
	assert_int_equal(meta_unlink(f->m, ROOT, "a"), 0);
	assert_int_equal(nlink_of(f->m, ino), 1);
	assert_int_equal(meta_unlink(f->m, d, "b"), 0);
	assert_int_equal(meta_getattr(f->m, ino, &a), -ENOENT);
	assert_int_equal(meta_unlink(f->m, d, "b"), -ENOENT);
}

/* link(2) resolves the new name before it refuses a directory: EEXIST and
 * ENOTDIR win over EPERM. */
static void test_link_directory_order(void **state)
{
	struct fx *f = *state;
	struct meta_attr a;
	uint64_t d = test_mkdir_ok(f->m, ROOT, "d"), file = test_create_ok(f->m, ROOT, "f");

	assert_int_equal(meta_link(f->m, d, ROOT, "f", &a), -EEXIST);
	assert_int_equal(meta_link(f->m, d, ROOT, ".", &a), -EEXIST);
	assert_int_equal(meta_link(f->m, d, file, "x", &a), -ENOTDIR);
	assert_int_equal(meta_link(f->m, d, 999, "x", &a), -ENOENT);
	assert_int_equal(meta_link(f->m, d, ROOT, "new", &a), -EPERM);
}

/* As in a path walk, a parent that is missing or no directory is told
 * before anything about the name ("." and "..", too long, '/', empty). */
static void test_parent_before_name(void **state)
{
	struct fx *f = *state;
	char longname[300];
	struct meta_attr a;
	uint64_t file = test_create_ok(f->m, ROOT, "f");

	memset(longname, 'x', sizeof(longname));
	longname[256] = '\0';
	assert_int_equal(meta_lookup(f->m, file, longname, &a), -ENOTDIR);
	assert_int_equal(meta_lookup(f->m, 999, "a/b", &a), -ENOENT);
	assert_int_equal(meta_create(f->m, file, "", 0644, 0, 0, true, &a), -ENOTDIR);
	assert_int_equal(meta_mkdir(f->m, file, ".", 0755, 0, 0, &a), -ENOTDIR);
	assert_int_equal(meta_symlink(f->m, 999, longname, "t", 0, 0, &a), -ENOENT);
	assert_int_equal(meta_unlink(f->m, file, "x/y"), -ENOTDIR);
	assert_int_equal(meta_unlink(f->m, file, "."), -ENOTDIR);
	assert_int_equal(meta_rmdir(f->m, 999, ".."), -ENOENT);
	assert_int_equal(meta_rename(f->m, ROOT, "f", file, "..", 0), -ENOTDIR);
	assert_int_equal(meta_rename(f->m, file, longname, ROOT, "g", 0), -ENOTDIR);
	/* the old name is looked up before the new one is read */
	assert_int_equal(meta_rename(f->m, ROOT, "none", ROOT, longname, 0), -ENOENT);
	assert_int_equal(meta_rename(f->m, ROOT, "f", ROOT, longname, 0), -ENAMETOOLONG);
	/* renameat2(2) refuses bad flags before it resolves anything */
	assert_int_equal(meta_rename(f->m, 999, "f", 999, "g", 1u << 3), -EINVAL);
}

/* Symlinks keep their target; readlink of anything else is EINVAL. */
static void test_symlinks(void **state)
{
	struct fx *f = *state;
	struct meta_attr a;
	char *target = NULL, big[5000];
	uint64_t file = test_create_ok(f->m, ROOT, "f");

	assert_int_equal(meta_symlink(f->m, ROOT, "l", "../some/where", 3, 4, &a), 0);
	assert_true(S_ISLNK(a.mode));
	assert_int_equal(a.size, 13);
	assert_int_equal(meta_readlink(f->m, a.ino, &target), 0);
	assert_string_equal(target, "../some/where");
	g_free(target);
	assert_int_equal(meta_readlink(f->m, file, &target), -EINVAL);
	assert_int_equal(meta_symlink(f->m, ROOT, "l", "x", 0, 0, &a), -EEXIST);
	memset(big, 'y', sizeof(big));
	big[4999] = '\0';
	assert_int_equal(meta_symlink(f->m, ROOT, "big", big, 0, 0, &a), -ENAMETOOLONG);
}

/* Streams are made by mknod; other node types are refused. */
static void test_mknod(void **state)
{
	struct fx *f = *state;
	struct meta_attr a;

	assert_int_equal(meta_mknod(f->m, ROOT, "live", META_S_IFSTREAM | 0644, 0, 0, &a), 0);
	assert_int_equal(a.mode & S_IFMT, META_S_IFSTREAM);
	assert_int_equal(meta_mknod(f->m, ROOT, "dev", S_IFCHR | 0644, 0, 0, &a), -EPERM);
}

/* rename: move, replace a file, replace an empty directory, the type and
 * emptiness rules, NOREPLACE, EXCHANGE, and no move into its own subtree. */
static void test_rename(void **state)
{
	struct fx *f = *state;
	struct meta_attr a;
	uint64_t d1 = test_mkdir_ok(f->m, ROOT, "d1"), d2 = test_mkdir_ok(f->m, ROOT, "d2");
	uint64_t sub = test_mkdir_ok(f->m, d1, "sub");
	uint64_t x = test_create_ok(f->m, d1, "x"), y = test_create_ok(f->m, d2, "y");

	assert_int_equal(meta_rename(f->m, d1, "x", d2, "x2", 0), 0);
	assert_int_equal(meta_lookup(f->m, d2, "x2", &a), 0);
	assert_int_equal(a.ino, x);
	assert_int_equal(meta_lookup(f->m, d1, "x", &a), -ENOENT);
	/* replace a file: the old one goes */
	assert_int_equal(meta_rename(f->m, d2, "x2", d2, "y", 0), 0);
	assert_int_equal(meta_getattr(f->m, y, &a), -ENOENT);
	/* a directory over a file, a file over a directory */
	test_create_ok(f->m, ROOT, "file");
	assert_int_equal(meta_rename(f->m, d1, "sub", ROOT, "file", 0), -ENOTDIR);
	assert_int_equal(meta_rename(f->m, ROOT, "file", ROOT, "d1", 0), -EISDIR);
	/* over a non-empty directory, then over an empty one */
	assert_int_equal(meta_rename(f->m, ROOT, "d2", ROOT, "d1", 0), -ENOTEMPTY);
	test_mkdir_ok(f->m, ROOT, "empty");
	assert_int_equal(meta_rename(f->m, d1, "sub", ROOT, "empty", 0), 0);
	assert_int_equal(nlink_of(f->m, d1), 2);
	assert_int_equal(nlink_of(f->m, ROOT), 5); /* d1, d2, empty(=sub) */
	/* into its own subtree */
	uint64_t deep = test_mkdir_ok(f->m, sub, "deep");

	assert_int_equal(meta_rename(f->m, ROOT, "empty", deep, "loop", 0), -EINVAL);
	assert_int_equal(meta_rename(f->m, ROOT, "empty", sub, "self", 0), -EINVAL);
	/* NOREPLACE */
	assert_int_equal(meta_rename(f->m, ROOT, "file", d2, "y", META_RENAME_NOREPLACE), -EEXIST);
	assert_int_equal(meta_rename(f->m, ROOT, "file", d2, "z", META_RENAME_NOREPLACE), 0);
	/* EXCHANGE a directory and a file across parents */
	assert_int_equal(meta_rename(f->m, ROOT, "empty", d2, "z", META_RENAME_EXCHANGE), 0);
	assert_int_equal(meta_lookup(f->m, d2, "z", &a), 0);
	assert_int_equal(a.ino, sub);
	assert_int_equal(meta_lookup(f->m, d2, "..", &a), 0);
	assert_int_equal(meta_lookup(f->m, sub, "..", &a), 0);
	assert_int_equal(a.ino, d2);
	assert_int_equal(nlink_of(f->m, d2), 3);
	assert_int_equal(meta_rename(f->m, ROOT, "nope", d2, "z", META_RENAME_EXCHANGE), -ENOENT);
	assert_int_equal(meta_rename(f->m, ROOT, "d1", d2, "nope", META_RENAME_EXCHANGE), -ENOENT);
	assert_int_equal(meta_rename(f->m, ROOT, "d1", ROOT, "d2",
				     META_RENAME_EXCHANGE | META_RENAME_NOREPLACE), -EINVAL);
	/* two links of one file: rename does nothing */
	uint64_t h = test_create_ok(f->m, ROOT, "h");

	assert_int_equal(meta_link(f->m, h, ROOT, "h2", &a), 0);
	assert_int_equal(meta_rename(f->m, ROOT, "h", ROOT, "h2", 0), 0);
	assert_int_equal(meta_lookup(f->m, ROOT, "h", &a), 0);
	assert_int_equal(nlink_of(f->m, h), 2);
}

/* When several rename rules apply, the error is the one renameat2(2)
 * gives: NOREPLACE before "same inode", loops before the type rules. */
static void test_rename_rule_order(void **state)
{
	struct fx *f = *state;
	struct meta_attr a;
	uint64_t d = test_mkdir_ok(f->m, ROOT, "d"), sub = test_mkdir_ok(f->m, d, "sub");
	uint64_t h = test_create_ok(f->m, ROOT, "h");

	assert_int_equal(meta_link(f->m, h, ROOT, "h2", &a), 0);
	assert_int_equal(meta_rename(f->m, ROOT, "h", ROOT, "h2", META_RENAME_NOREPLACE), -EEXIST);
	assert_int_equal(meta_rename(f->m, ROOT, "h", ROOT, "h", META_RENAME_NOREPLACE), -EEXIST);
	assert_int_equal(meta_rename(f->m, ROOT, "h", ROOT, "h2", META_RENAME_EXCHANGE), 0);
	/* a directory into its own subtree, over a file there */
	test_create_ok(f->m, sub, "file");
	assert_int_equal(meta_rename(f->m, ROOT, "d", sub, "file", 0), -EINVAL);
	/* a file over a directory that holds it */
	assert_int_equal(meta_rename(f->m, sub, "file", ROOT, "d", 0), -ENOTEMPTY);
	assert_int_equal(meta_rename(f->m, sub, "file", ROOT, "d", META_RENAME_EXCHANGE), -EINVAL);
	assert_int_equal(nlink_of(f->m, h), 2);
}

struct listing {
	GPtrArray *names;
	uint64_t cookie;
};

static int collect(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	struct listing *l = arg;

	(void)ino;
	(void)mode;
	g_ptr_array_add(l->names, g_strdup(name));
	l->cookie = cookie;
	return 0;
}

/* readdir pages by cookie: entries removed and added between pages never
 * make another entry be lost or repeated. */
static void test_readdir_paging(void **state)
{
	struct fx *f = *state;
	struct listing l = {g_ptr_array_new_with_free_func(g_free), 0};
	GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
	char name[32];

	for (int i = 0; i < 100; i++) {
		g_snprintf(name, sizeof(name), "f%03d", i);
		test_create_ok(f->m, ROOT, name);
	}
	for (int page = 0;; page++) {
		guint before = l.names->len;

		assert_int_equal(meta_readdir(f->m, ROOT, l.cookie, 7, collect, &l), 0);
		if (l.names->len == before)
			break;
		/* between pages: remove one not yet listed, add one */
		g_snprintf(name, sizeof(name), "f%03d", 99 - page);
		if (page < 10)
			meta_unlink(f->m, ROOT, name);
		g_snprintf(name, sizeof(name), "new%03d", page);
		if (page < 10)
			test_create_ok(f->m, ROOT, name);
	}
	for (guint i = 0; i < l.names->len; i++) {
		const char *n = g_ptr_array_index(l.names, i);

		assert_false(g_hash_table_contains(seen, n)); /* no repeat */
		g_hash_table_add(seen, (gpointer)n);
	}
	for (int i = 0; i < 90; i++) { /* never removed, so never lost */
		g_snprintf(name, sizeof(name), "f%03d", i);
		assert_true(g_hash_table_contains(seen, name));
	}
	assert_int_equal(meta_readdir(f->m, 999, 0, 10, collect, &l), -ENOENT);
	g_hash_table_destroy(seen);
	g_ptr_array_free(l.names, TRUE);
}

/* setattr changes what it is told to; size only on regular files. */
static void test_setattr(void **state)
{
	struct fx *f = *state;
	struct meta_attr a;
	uint64_t ino = test_create_ok(f->m, ROOT, "f"), d = test_mkdir_ok(f->m, ROOT, "d");
	struct meta_setattr set = {.mask = META_SET_MODE | META_SET_UID | META_SET_SIZE | META_SET_MTIME,
				   .mode = 0600, .uid = 77, .size = 12345, .mtime_ns = 42};

	assert_int_equal(meta_setattr(f->m, ino, &set, &a), 0);
	assert_int_equal(meta_getattr(f->m, ino, &a), 0);
	assert_true(S_ISREG(a.mode));
	assert_int_equal(a.mode & 07777, 0600);
	assert_int_equal(a.uid, 77);
	assert_int_equal(a.gid, 2);
	assert_int_equal(a.size, 12345);
	assert_int_equal(a.mtime_ns, 42);
	set.mask = META_SET_SIZE;
	assert_int_equal(meta_setattr(f->m, d, &set, &a), -EISDIR);
	assert_int_equal(meta_setattr(f->m, 999, &set, &a), -ENOENT);
}

/* Set-ID bits go as a write, truncate or chown clears them: set-group-ID
 * only with group execute; a mode set in the same call stays; nothing to
 * clear changes nothing, not even ctime. */
static void test_setattr_kill_suidgid(void **state)
{
	struct fx *f = *state;
	struct meta_attr a, b;
	uint64_t ino = test_create_ok(f->m, ROOT, "f"), d = test_mkdir_ok(f->m, ROOT, "d");
	struct meta_setattr kill = {.mask = META_SET_KILL_SUIDGID};
	struct meta_setattr mode = {.mask = META_SET_MODE, .mode = 06755};

	assert_int_equal(meta_setattr(f->m, ino, &mode, NULL), 0);
	assert_int_equal(meta_setattr(f->m, ino, &kill, &a), 0);
	assert_int_equal(a.mode & 07777, 0755);
	mode.mode = 06745; /* set-group-ID without group execute: kept */
	assert_int_equal(meta_setattr(f->m, ino, &mode, NULL), 0);
	assert_int_equal(meta_setattr(f->m, ino, &kill, &a), 0);
	assert_int_equal(a.mode & 07777, 02745);
	g_usleep(2000);
	assert_int_equal(meta_setattr(f->m, ino, &kill, NULL), 0);
	assert_int_equal(meta_getattr(f->m, ino, &b), 0);
	assert_int_equal(b.mode & 07777, 02745);
	assert_true(b.ctime_ns == a.ctime_ns);
	mode.mask |= META_SET_KILL_SUIDGID; /* the mode given wins */
	mode.mode = 04700;
	assert_int_equal(meta_setattr(f->m, ino, &mode, &a), 0);
	assert_int_equal(a.mode & 07777, 04700);
	mode = (struct meta_setattr){.mask = META_SET_MODE, .mode = 02775};
	assert_int_equal(meta_setattr(f->m, d, &mode, NULL), 0); /* directories keep theirs */
	assert_int_equal(meta_setattr(f->m, d, &kill, &a), 0);
	assert_int_equal(a.mode & 07777, 02775);
}

/* xattrs: create/replace flags, sizes, list, remove. */
static void test_xattrs(void **state)
{
	struct fx *f = *state;
	uint64_t ino = test_create_ok(f->m, ROOT, "f");
	char buf[64];

	assert_int_equal(meta_setxattr(f->m, ino, "user.a", "one", 3, 0), 0);
	assert_int_equal(meta_setxattr(f->m, ino, "user.a", "two", 3, META_XATTR_CREATE), -EEXIST);
	assert_int_equal(meta_setxattr(f->m, ino, "user.b", "x", 1, META_XATTR_REPLACE), -ENODATA);
	assert_int_equal(meta_setxattr(f->m, ino, "user.a", "three", 5, META_XATTR_REPLACE), 0);
	assert_int_equal(meta_getxattr(f->m, ino, "user.a", NULL, 0), 5);
	assert_int_equal(meta_getxattr(f->m, ino, "user.a", buf, 2), -ERANGE);
	assert_int_equal(meta_getxattr(f->m, ino, "user.a", buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "three", 5);
	assert_int_equal(meta_getxattr(f->m, ino, "user.none", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(meta_setxattr(f->m, ino, "user.b", "", 0, 0), 0);
	assert_int_equal(meta_listxattr(f->m, ino, NULL, 0), 14);
	assert_int_equal(meta_listxattr(f->m, ino, buf, sizeof(buf)), 14);
	assert_memory_equal(buf, "user.a\0user.b\0", 14);
	assert_int_equal(meta_removexattr(f->m, ino, "user.a"), 0);
	assert_int_equal(meta_removexattr(f->m, ino, "user.a"), -ENODATA);
	assert_int_equal(meta_getxattr(f->m, 999, "user.a", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(meta_unlink(f->m, ROOT, "f"), 0); /* xattrs go with the inode */
}

/* An empty xattr value and an empty xattr list read into a buffer give
 * length 0 (and copy nothing: UBSan checks memcpy is not given NULL). */
static void test_empty_xattrs(void **state)
{
	struct fx *f = *state;
	uint64_t ino = test_create_ok(f->m, ROOT, "f");
	char buf[16];

	assert_int_equal(meta_listxattr(f->m, ino, buf, sizeof(buf)), 0);
	assert_int_equal(meta_setxattr(f->m, ino, "user.empty", "", 0, 0), 0);
	assert_int_equal(meta_getxattr(f->m, ino, "user.empty", buf, sizeof(buf)), 0);
}

static struct meta_part part(uint32_t index, uint64_t len, uint16_t first_node)
{
	struct meta_part p = {.index = index, .length = len, .k = 2, .m = 1};

	for (int i = 0; i < 3; i++)
		p.nodes[i] = (uint16_t)(first_node + i);
	memset(p.checksum, (int)index + 1, 16);
	return p;
}

/* The shards a write could not place are kept with their part, and a
 * set that names a shard the part has not, or every shard, is refused. */
static void test_missing_shards_kept(void **state)
{
	struct fx *f = *state;
	uint8_t oid[16] = "object-missing!";
	struct meta_part parts[2] = {part(0, 100, 1), part(1, 50, 1)}, *back;
	unsigned n;
	uint64_t ino = test_create_ok(f->m, ROOT, "degraded");

	parts[1].missing = 1u << 2;
	assert_int_equal(meta_commit_manifest(f->m, ino, oid, 150, parts, 2, NULL, true), 0);
	assert_int_equal(meta_get_manifest(f->m, ino, oid, &back, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(back[0].missing, 0);
	assert_int_equal(back[1].missing, 1u << 2);
	assert_int_equal(back[1].nodes[2], 3);
	g_free(back);
	parts[1].missing = 1u << 3; /* a 2+1 part has shards 0..2 */
	assert_int_equal(meta_commit_manifest(f->m, ino, oid, 150, parts, 2, NULL, true), -EINVAL);
	parts[1].missing = 7; /* nothing written at all */
	assert_int_equal(meta_commit_manifest(f->m, ino, oid, 150, parts, 2, NULL, true), -EINVAL);
	assert_int_equal(meta_get_manifest(f->m, ino, oid, &back, &n), 0);
	assert_int_equal(back[1].missing, 1u << 2); /* the refused commits changed nothing */
	g_free(back);
}

/* Parts with shards missing are listed in (ino, index) order, page by
 * page; a relocation takes only while the row is as the repair read it. */
static void test_degraded_parts_and_relocation(void **state)
{
	struct fx *f = *state;
	uint8_t oid[16] = "object-degraded";
	struct meta_part parts[3] = {part(0, 100, 1), part(1, 100, 1), part(2, 50, 1)};
	struct meta_degraded *d;
	unsigned n;
	uint64_t a = test_create_ok(f->m, ROOT, "a"), b = test_create_ok(f->m, ROOT, "b");

	parts[0].missing = 1;
	parts[2].missing = 4;
	assert_int_equal(meta_commit_manifest(f->m, a, oid, 250, parts, 3, NULL, true), 0);
	assert_int_equal(meta_commit_manifest(f->m, b, oid, 250, parts, 3, NULL, true), 0);
	uint64_t count, bytes;
	assert_int_equal(meta_degraded_count(f->m, &count, &bytes), 0);
	assert_true(count == 4 && bytes == 300);
	assert_int_equal(meta_degraded_list(f->m, 0, 0, 3, &d, &n), 0);
	assert_int_equal(n, 3);
	assert_true(d[0].ino == a && d[0].part.index == 0 && d[0].part.missing == 1);
	assert_true(d[1].ino == a && d[1].part.index == 2 && d[1].part.missing == 4);
	assert_true(d[2].ino == b && d[2].part.index == 0);
	assert_memory_equal(d[2].part.object_id, oid, 16);
	struct meta_part old = d[1].part, now = old;
	g_free(d);
	assert_int_equal(meta_degraded_list(f->m, b, 0, 10, &d, &n), 0);
	assert_true(n == 1 && d[0].ino == b && d[0].part.index == 2);
	g_free(d);

	now.nodes[2] = 9;
	now.missing = 0;
	assert_int_equal(meta_part_relocate(f->m, a, &old, &now), 0);
	assert_int_equal(meta_part_relocate(f->m, a, &old, &now), -ESTALE); /* done already */
	struct meta_part *back;
	assert_int_equal(meta_get_manifest(f->m, a, oid, &back, &n), 0);
	assert_true(back[2].missing == 0 && back[2].nodes[2] == 9 && back[2].nodes[0] == 1);
	g_free(back);
	/* a rewrite meanwhile: the relocation of b's part does not take */
	old = parts[2];
	memcpy(old.object_id, oid, 16);
	now = old;
	now.missing = 0;
	assert_int_equal(meta_commit_manifest(f->m, b, oid, 100, parts, 1, NULL, true), 0);
	assert_int_equal(meta_part_relocate(f->m, b, &old, &now), -ESTALE);
	assert_int_equal(meta_degraded_list(f->m, 0, 0, 10, &d, &n), 0);
	assert_true(n == 2 && d[0].ino == a && d[0].part.index == 0);
	assert_true(d[1].ino == b && d[1].part.index == 0);
	g_free(d);
}

static struct meta_member member(uint32_t id, const char *host, uint16_t port, const char *zone)
{
	struct meta_member mb = {.id = id, .port = port, .weight = 1};

	g_strlcpy(mb.host, host, sizeof(mb.host));
	g_strlcpy(mb.zone, zone, sizeof(mb.zone));
	return mb;
}

/* Members: seeded only when there are none, added with a unique id and
 * address, drained, and removed only once they hold nothing unless
 * forced, which marks their shards missing. */
static void test_members(void **state)
{
	struct fx *f = *state;
	struct meta_member seed[2] = {member(1, "10.0.0.1", 7001, ""), member(2, "10.0.0.2", 7001, "r2")};
	struct meta_member again = member(3, "10.0.0.3", 7001, ""), *list;
	struct meta_member bad = member(0, "10.0.0.9", 7001, "");
	uint8_t oid[16] = "object-members!";
	struct meta_part parts[1] = {part(0, 100, 1)}, *back;
	uint64_t ino = test_create_ok(f->m, ROOT, "on-members"), held;
	unsigned n;

	assert_int_equal(meta_members(f->m, &list, &n), 0);
	assert_true(n == 0 && list == NULL);
	assert_int_equal(meta_members_seed(f->m, seed, 2), 0);
	assert_int_equal(meta_members_seed(f->m, &again, 1), 0); /* not empty: nothing */
	assert_int_equal(meta_members(f->m, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_true(list[1].id == 2 && !strcmp(list[1].zone, "r2") && list[1].port == 7001);
	assert_int_equal(list[1].state, META_MEMBER_ACTIVE);
	g_free(list);
	assert_int_equal(meta_member_add(f->m, &bad), -EINVAL);
	struct meta_member same_id = member(2, "10.0.0.8", 7001, "");
	struct meta_member same_addr = member(8, "10.0.0.2", 7001, "");
	assert_int_equal(meta_member_add(f->m, &same_id), -EEXIST);
	assert_int_equal(meta_member_add(f->m, &same_addr), -EEXIST);
	assert_int_equal(meta_member_add(f->m, &again), 0);
	/* node 3 holds shard 2 of the part */
	assert_int_equal(meta_commit_manifest(f->m, ino, oid, 100, parts, 1, NULL, true), 0);
	assert_int_equal(meta_node_parts(f->m, 3, &held), 0);
	assert_int_equal(held, 1);
	assert_int_equal(meta_member_set_state(f->m, 3, META_MEMBER_DRAINING), 0);
	assert_int_equal(meta_member_set_state(f->m, 9, META_MEMBER_DRAINING), -ENOENT);
	assert_int_equal(meta_member_remove(f->m, 3, false, &held), -EBUSY);
	assert_int_equal(held, 1);
	assert_int_equal(meta_member_remove(f->m, 3, true, &held), 0);
	assert_int_equal(held, 1);
	assert_int_equal(meta_get_manifest(f->m, ino, oid, &back, &n), 0);
	assert_int_equal(back[0].missing, 1u << 2);
	g_free(back);
	assert_int_equal(meta_node_parts(f->m, 3, &held), 0);
	assert_int_equal(held, 0);
	assert_int_equal(meta_member_remove(f->m, 3, false, &held), -ENOENT);
	assert_int_equal(meta_member_remove(f->m, 2, false, &held), -EBUSY); /* its shard 1 */
	assert_int_equal(meta_members(f->m, &list, &n), 0);
	assert_true(n == 2 && list[0].id == 1 && list[1].id == 2);
	g_free(list);
}

/* A node's identity is recorded at first sight and changes nothing; when
 * its store comes back as another one, the shard every part has on that
 * node (in whatever slot) is marked missing, and no other. */
static void test_node_identity_and_lost_store(void **state)
{
	struct fx *f = *state;
	uint8_t oid[16] = "object-of-nodes";
	struct meta_part parts[3] = {part(0, 100, 1), part(1, 100, 2), part(2, 100, 4)};
	struct meta_part *back;
	char id[META_IDENTITY_MAX];
	uint64_t lost, ino = test_create_ok(f->m, ROOT, "on-nodes");
	unsigned n;

	parts[1].missing = 1; /* shard 0 (node 2) was never written */
	assert_int_equal(meta_commit_manifest(f->m, ino, oid, 300, parts, 3, NULL, true), 0);
	assert_int_equal(meta_node_identity(f->m, 3, id), -ENOENT);
	assert_int_equal(meta_node_identity_set(f->m, 3, "aaaa-1", &lost), 0);
	assert_int_equal(lost, 0);
	assert_int_equal(meta_node_identity(f->m, 3, id), 0);
	assert_string_equal(id, "aaaa-1");
	assert_int_equal(meta_node_identity_set(f->m, 3, "aaaa-1", &lost), 0);
	assert_int_equal(lost, 0);
	/* node 3 holds shard 2 of part 0 and shard 1 of part 1, none of part 2 */
	assert_int_equal(meta_node_identity_set(f->m, 3, "bbbb-2", &lost), 0);
	assert_int_equal(lost, 2);
	assert_int_equal(meta_get_manifest(f->m, ino, oid, &back, &n), 0);
	assert_int_equal(back[0].missing, 1u << 2);
	assert_int_equal(back[1].missing, 1u | 1u << 1);
	assert_int_equal(back[2].missing, 0);
	g_free(back);
	assert_int_equal(meta_node_identity(f->m, 3, id), 0);
	assert_string_equal(id, "bbbb-2");
	assert_int_equal(meta_node_identity_set(f->m, 3, "", &lost), -EINVAL);
}

/* A committed manifest reads back; a new commit replaces it atomically and
 * sends the old parts to the garbage table, as does unlinking the file. */
static void test_manifests_and_garbage(void **state)
{
	struct fx *f = *state;
	uint8_t oid[16] = "object-0123456!", got_oid[16];
	struct meta_part parts[3] = {part(0, 100, 1), part(1, 100, 4), part(2, 17, 7)};
	struct meta_part *back;
	struct meta_garbage *g;
	struct meta_attr a;
	unsigned n;
	uint64_t ino = test_create_ok(f->m, ROOT, "f"), d = test_mkdir_ok(f->m, ROOT, "d");

	assert_int_equal(meta_commit_manifest(f->m, ino, oid, 217, parts, 3, NULL, true), 0);
	assert_int_equal(meta_getattr(f->m, ino, &a), 0);
	assert_int_equal(a.size, 217);
	assert_int_equal(meta_get_manifest(f->m, ino, got_oid, &back, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(got_oid, oid, 16);
	memcpy(parts[2].object_id, oid, 16); /* a part without its own id takes the file's */
	assert_memory_equal(&back[2], &parts[2], sizeof(parts[2]));
	g_free(back);
	/* Part 0 is kept (same object id and index): only 1 and 2 are garbage. */
	assert_int_equal(meta_commit_manifest(f->m, ino, oid, 100, parts, 1, NULL, false), 0);
	assert_int_equal(meta_garbage_list(f->m, 10, &g, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(g[1].part.index, 2);
	assert_int_equal(g[1].part.nodes[2], 9);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(meta_garbage_done(f->m, g[i].id), 0);
	g_free(g);
	assert_int_equal(meta_commit_manifest(f->m, d, oid, 1, parts, 1, NULL, false), -EISDIR);
	assert_int_equal(meta_unlink(f->m, ROOT, "f"), 0);
	assert_int_equal(meta_garbage_list(f->m, 10, &g, &n), 0);
	assert_int_equal(n, 1);
	g_free(g);
}

/* Parts keep their own object ids; a part rewritten under a new id sends
 * only the old one to the garbage; holes (k = 0) are stored and never
 * collected. */
static void test_manifest_part_ids_and_holes(void **state)
{
	struct fx *f = *state;
	uint8_t oid[16] = {0}, got_oid[16];
	struct meta_part parts[3] = {part(0, 100, 1), {.index = 1, .length = 100}, part(2, 5, 7)};
	struct meta_part *back;
	struct meta_garbage *g;
	unsigned n;
	uint64_t ino = test_create_ok(f->m, ROOT, "f");

	memset(parts[0].object_id, 0xa0, 16);
	memset(parts[2].object_id, 0xa2, 16);
	assert_int_equal(meta_commit_manifest(f->m, ino, oid, 205, parts, 3, NULL, true), 0);
	assert_int_equal(meta_get_manifest(f->m, ino, got_oid, &back, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(back[1].k, 0);
	assert_int_equal(back[1].length, 100);
	assert_memory_equal(back[2].object_id, parts[2].object_id, 16);
	g_free(back);
	memset(parts[2].object_id, 0xb2, 16);
	assert_int_equal(meta_commit_manifest(f->m, ino, oid, 205, parts, 3, NULL, true), 0);
	assert_int_equal(meta_garbage_list(f->m, 10, &g, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(g[0].part.index, 2);
	assert_int_equal(g[0].object_id[0], 0xa2);
	assert_int_equal(meta_garbage_done(f->m, g[0].id), 0);
	g_free(g);
	assert_int_equal(meta_unlink(f->m, ROOT, "f"), 0);
	assert_int_equal(meta_garbage_list(f->m, 10, &g, &n), 0);
	assert_int_equal(n, 2); /* parts 0 and 2, not the hole */
	g_free(g);
}

/* Reads leave no snapshot open: right after a getxattr or a manifest read,
 * the same connection sees what another connection commits next. */
static void test_reads_see_later_commits(void **state)
{
	struct fx *f = *state;
	uint8_t oid[16] = "object-0123456!";
	struct meta_part p = part(0, 10, 1), *back;
	struct meta *other;
	struct meta_attr a;
	unsigned n;
	char buf[8];
	uint64_t ino = test_create_ok(f->m, ROOT, "f"), ino2 = test_create_ok(f->m, ROOT, "g");

	assert_int_equal(meta_open(f->url, &other), 0);
	assert_int_equal(meta_setxattr(f->m, ino, "user.a", "v", 1, 0), 0);
	assert_int_equal(meta_getxattr(f->m, ino, "user.a", buf, sizeof(buf)), 1);
	assert_int_equal(meta_unlink(other, ROOT, "f"), 0);
	assert_int_equal(meta_getattr(f->m, ino, &a), -ENOENT);
	assert_int_equal(meta_commit_manifest(f->m, ino2, oid, 10, &p, 1, NULL, true), 0);
	assert_int_equal(meta_get_manifest(f->m, ino2, oid, &back, &n), 0);
	g_free(back);
	assert_int_equal(meta_unlink(other, ROOT, "g"), 0);
	assert_int_equal(meta_getattr(f->m, ino2, &a), -ENOENT);
	meta_close(other);
}

/* A file unlinked while open keeps its data until its last close; a dead
 * session's open files are released by the reaper. */
static void test_open_unlinked_files(void **state)
{
	struct fx *f = *state;
	uint64_t s1, s2, unused;
	struct meta_attr a;
	unsigned ended;
	uint64_t ino = test_create_ok(f->m, ROOT, "f"), ino2 = test_create_ok(f->m, ROOT, "g");

	assert_int_equal(meta_session_start(f->m, "host-a", 0, &s1), -EINVAL);
	assert_int_equal(meta_session_start(f->m, "host-a", 3600, &s1), 0);
	assert_int_equal(meta_session_start(f->m, "host-b", 1, &s2), 0);
	assert_int_equal(meta_open_file(f->m, s1, ino), 0);
	assert_int_equal(meta_open_file(f->m, s1, ino), 0);
	assert_int_equal(meta_unlink(f->m, ROOT, "f"), 0);
	assert_int_equal(meta_getattr(f->m, ino, &a), 0);
	assert_int_equal(a.nlink, 0);
	assert_int_equal(meta_check(f->m, NULL), 0); /* an open orphan is accounted */
	assert_int_equal(meta_link(f->m, ino, ROOT, "back", &a), -ENOENT); /* not revived */
	assert_int_equal(meta_close_file(f->m, s1, ino), 0);
	assert_int_equal(meta_getattr(f->m, ino, &a), 0);
	assert_int_equal(meta_close_file(f->m, s1, ino), 0);
	assert_int_equal(meta_getattr(f->m, ino, &a), -ENOENT);
	assert_int_equal(meta_close_file(f->m, s1, ino), -ENOENT);
	/* a session that dies with a file open */
	assert_int_equal(meta_open_file(f->m, s2, ino2), 0);
	assert_int_equal(meta_unlink(f->m, ROOT, "g"), 0);
	assert_int_equal(meta_session_heartbeat(f->m, s1), 0);
	assert_int_equal(meta_session_reap(f->m, &ended), 0);
	assert_int_equal(ended, 0);
	g_usleep(2100000); /* past s2's lease of 1 s, whole seconds */
	assert_int_equal(meta_session_heartbeat(f->m, s1), 0);
	assert_int_equal(meta_session_reap(f->m, &ended), 0);
	assert_int_equal(ended, 1); /* s1's lease is an hour */
	assert_int_equal(meta_session_heartbeat(f->m, s2), -ENOENT);
	assert_int_equal(meta_getattr(f->m, ino2, &a), -ENOENT);
	assert_int_equal(meta_session_end(f->m, s1), 0);
	assert_int_equal(meta_session_heartbeat(f->m, s1), -ENOENT);
	(void)unused;
}

/* A file created open is held by its record from the start; closes go in
 * batches, which skip records that are not there. */
static void test_create_open_and_batched_closes(void **state)
{
	struct fx *f = *state;
	struct meta_attr a, b;
	uint64_t sid, none = 4242;
	bool made;

	assert_int_equal(meta_session_start(f->m, "host-a", 30, &sid), 0);
	assert_int_equal(meta_create_open(f->m, 0, ROOT, "f", 0644, 1, 2, true, &a, &made), -EINVAL);
	assert_int_equal(meta_create_open(f->m, sid, ROOT, "f", 0644, 1, 2, true, &a, &made), 0);
	assert_true(made);
	assert_int_equal(meta_create_open(f->m, sid, ROOT, "f", 0644, 1, 2, true, &b, &made), -EEXIST);
	assert_int_equal(meta_create_open(f->m, sid, ROOT, "f", 0644, 1, 2, false, &b, &made), 0);
	assert_false(made);
	assert_int_equal(b.ino, a.ino); /* opened twice */
	assert_int_equal(meta_create_open(f->m, sid, ROOT, "g", 0644, 1, 2, true, &b, &made), 0);
	assert_int_equal(meta_unlink(f->m, ROOT, "f"), 0);
	assert_int_equal(meta_unlink(f->m, ROOT, "g"), 0);
	assert_int_equal(meta_getattr(f->m, a.ino, &a), 0);
	assert_int_equal(meta_check(f->m, NULL), 0);
	uint64_t closes[] = {a.ino, none, b.ino};
	assert_int_equal(meta_close_files(f->m, sid, closes, 3), 0);
	assert_int_equal(meta_getattr(f->m, a.ino, &a), 0); /* its second open */
	assert_int_equal(meta_getattr(f->m, b.ino, &b), -ENOENT);
	assert_int_equal(meta_close_files(f->m, sid, closes, 1), 0);
	assert_int_equal(meta_getattr(f->m, a.ino, &a), -ENOENT);
	assert_int_equal(meta_check(f->m, NULL), 0);
	assert_int_equal(meta_session_end(f->m, sid), 0);
}

/* A file is named by the path of its oldest entry; the root is "/". */
static void test_path_of(void **state)
{
	struct fx *f = *state;
	uint64_t a = test_mkdir_ok(f->m, ROOT, "a"), b = test_mkdir_ok(f->m, a, "b");
	uint64_t file = test_create_ok(f->m, b, "f");
	struct meta_attr attr;
	char *path;

	assert_int_equal(meta_path_of(f->m, file, &path), 0);
	assert_string_equal(path, "/a/b/f");
	g_free(path);
	assert_int_equal(meta_link(f->m, file, ROOT, "second", &attr), 0);
	assert_int_equal(meta_path_of(f->m, file, &path), 0);
	assert_string_equal(path, "/a/b/f");
	g_free(path);
	assert_int_equal(meta_path_of(f->m, ROOT, &path), 0);
	assert_string_equal(path, "/");
	g_free(path);
	assert_int_equal(meta_unlink(f->m, b, "f"), 0);
	assert_int_equal(meta_path_of(f->m, file, &path), 0);
	assert_string_equal(path, "/second");
	g_free(path);
	assert_int_equal(meta_path_of(f->m, 987654, &path), -ENOENT);
	assert_null(path);
}

/* The err column of shardfs_make_node's answer to a creation of "again"
 * at ctime now in the root, sent as it is. */
static int make_node_again(struct meta *m, int64_t now)
{
	char *call = g_strdup_printf("SELECT * FROM shardfs_make_node(1, 'again'::bytea, 33188,"
				     " 1, 2, %" G_GINT64_FORMAT ","
				     " '\\x000102030405060708090a0b0c0d0e0f'::bytea, 0)", now);
	struct meta_stmt *s;
	int err = 1;

	g_mutex_lock(&m->lock);
	s = meta_stmt_text(m, call);
	if (s && meta_step(s) == META_ROW)
		err = (int)meta_col_int(s, 10);
	meta_stmt_free(s);
	g_mutex_unlock(&m->lock);
	g_free(call);
	return err;
}

/* On PostgreSQL a creation is one statement, which a reply lost with its
 * connection sends again: sent twice it makes one file and answers as if
 * it had made it; a creation of the name by anyone else is refused. */
static void test_make_node_sent_again(void **state)
{
	struct fx *f = *state;
	struct listing l = {g_ptr_array_new_with_free_func(g_free), 0};
	struct meta_attr a, dir;

	if (!test_meta_is_pg())
		skip();
	assert_int_equal(make_node_again(f->m, 1234), 0);
	assert_int_equal(make_node_again(f->m, 1234), 0); /* found as its own */
	assert_int_equal(make_node_again(f->m, 1235), -EEXIST);
	assert_int_equal(meta_lookup(f->m, ROOT, "again", &a), 0);
	assert_int_equal(a.mode, S_IFREG | 0644);
	assert_int_equal(a.ctime_ns, 1234);
	assert_int_equal(a.nlink, 1);
	assert_int_equal(meta_readdir(f->m, ROOT, 0, 16, collect, &l), 0);
	assert_int_equal(l.names->len, 1);
	g_ptr_array_free(l.names, TRUE);
	assert_int_equal(meta_getattr(f->m, ROOT, &dir), 0);
	assert_int_equal(dir.mtime_ns, 1234);
	assert_int_equal(meta_create(f->m, ROOT, "again", 0644, 1, 2, true, &dir), -EEXIST);
	assert_int_equal(meta_create(f->m, ROOT, "again", 0644, 1, 2, false, &dir), 0);
	assert_int_equal(dir.ino, a.ino);
	assert_int_equal(meta_mkdir(f->m, ROOT, "again", 0755, 1, 2, &dir), -EEXIST);
	assert_int_equal(meta_mkdir(f->m, a.ino, "x", 0755, 1, 2, &dir), -ENOTDIR);
	assert_int_equal(meta_create(f->m, 999999, "x", 0644, 1, 2, true, &dir), -ENOENT);
}

/* A small file's content commits inline and reads back byte-exact; it
 * sets the size and replaces the file's parts (sent to the garbage), and
 * a later manifest commit drops it again. */
static void test_inline_commit_and_read(void **state)
{
	struct fx *f = *state;
	uint8_t oid[16] = "object-0123456!", data[META_INLINE_MAX];
	struct meta_part parts[2] = {part(0, 100, 1), part(1, 50, 4)};
	struct meta_part *back;
	struct meta_garbage *g;
	struct meta_attr a;
	unsigned n;
	void *got = NULL;
	size_t len = 0;
	uint64_t ino = test_create_ok(f->m, ROOT, "f");

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(meta_get_inline(f->m, ino, &got, &len), -ENODATA);
	assert_int_equal(meta_commit_manifest(f->m, ino, oid, 150, parts, 2, NULL, true), 0);
	assert_int_equal(meta_commit_inline(f->m, ino, data, 4096, NULL, true), 0);
	assert_int_equal(meta_getattr(f->m, ino, &a), 0);
	assert_int_equal(a.size, 4096);
	assert_int_equal(meta_get_inline(f->m, ino, &got, &len), 0);
	assert_int_equal(len, 4096);
	assert_memory_equal(got, data, 4096);
	g_free(got);
	assert_int_equal(meta_get_manifest(f->m, ino, oid, &back, &n), 0);
	assert_int_equal(n, 0);
	g_free(back);
	assert_int_equal(meta_garbage_list(f->m, 10, &g, &n), 0);
	assert_int_equal(n, 2); /* both stored parts */
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(meta_garbage_done(f->m, g[i].id), 0);
	g_free(g);
	/* the largest inline content, then back to parts */
	assert_int_equal(meta_commit_inline(f->m, ino, data, sizeof(data), NULL, false), 0);
	assert_int_equal(meta_get_inline(f->m, ino, &got, &len), 0);
	assert_int_equal(len, sizeof(data));
	assert_memory_equal(got, data, sizeof(data));
	g_free(got);
	assert_int_equal(meta_commit_manifest(f->m, ino, oid, 150, parts, 2, NULL, true), 0);
	assert_int_equal(meta_get_inline(f->m, ino, &got, &len), -ENODATA);
	assert_int_equal(meta_getattr(f->m, ino, &a), 0);
	assert_int_equal(a.size, 150);
}

/* A commit carries the attributes set while its content was written: an
 * explicit mtime overrides the commit's own stamp. */
static void test_commit_with_attributes(void **state)
{
	struct fx *f = *state;
	uint8_t oid[16] = "object-0123456!";
	struct meta_part p = part(0, 10, 1);
	struct meta_attr a;
	uint64_t ino = test_create_ok(f->m, ROOT, "f");
	struct meta_setattr attrs = {.mask = META_SET_MODE | META_SET_UID | META_SET_MTIME |
					     META_SET_ATIME,
				     .mode = 04644, .uid = 7, .mtime_ns = 1000, .atime_ns = 2000};

	assert_int_equal(meta_commit_inline(f->m, ino, "0123456789", 10, &attrs, true), 0);
	assert_int_equal(meta_getattr(f->m, ino, &a), 0);
	assert_int_equal(a.mode & 07777, 04644);
	assert_int_equal(a.uid, 7);
	assert_int_equal(a.size, 10);
	assert_true(a.mtime_ns == 1000 && a.atime_ns == 2000);
	attrs.mask = META_SET_KILL_SUIDGID;
	assert_int_equal(meta_commit_manifest(f->m, ino, oid, 10, &p, 1, &attrs, false), 0);
	assert_int_equal(meta_getattr(f->m, ino, &a), 0);
	assert_int_equal(a.mode & 07777, 0644);
	assert_true(a.mtime_ns > 1000); /* the commit's stamp */
	attrs = (struct meta_setattr){.mask = META_SET_MODE, .mode = 0600};
	assert_int_equal(meta_commit_inline(f->m, ROOT, "x", 1, &attrs, true), -EISDIR);
	assert_int_equal(meta_getattr(f->m, ROOT, &a), 0);
	assert_int_not_equal(a.mode & 07777, 0600); /* refused whole */
	/* a guarded change does not undo one made since it was kept */
	attrs = (struct meta_setattr){.mask = META_SET_MODE | META_SET_UID, .mode = 0640, .uid = 9,
				      .guard = META_SET_MODE | META_SET_UID, .base_mode = 0644,
				      .base_uid = 7};
	struct meta_setattr other = {.mask = META_SET_MODE, .mode = 0600};
	assert_int_equal(meta_setattr(f->m, ino, &other, NULL), 0);
	assert_int_equal(meta_commit_inline(f->m, ino, "abc", 3, &attrs, true), 0);
	assert_int_equal(meta_getattr(f->m, ino, &a), 0);
	assert_int_equal(a.mode & 07777, 0600);
	assert_int_equal(a.uid, 9); /* still 7: the guard holds */
}

/* Inline commits refuse what they cannot hold; an empty content keeps no
 * row; a smaller size cuts the content; unlink drops it with the file. */
static void test_inline_limits_truncate_unlink(void **state)
{
	struct fx *f = *state;
	uint8_t data[META_INLINE_MAX + 1] = {0};
	struct meta_setattr set = {.mask = META_SET_SIZE, .size = 3};
	struct meta_attr a;
	void *got = NULL;
	size_t len = 0;
	uint64_t ino = test_create_ok(f->m, ROOT, "f"), d = test_mkdir_ok(f->m, ROOT, "d");

	memcpy(data, "abcdef", 6);
	assert_int_equal(meta_commit_inline(f->m, ino, data, sizeof(data), NULL, true), -EFBIG);
	assert_int_equal(meta_commit_inline(f->m, d, data, 6, NULL, true), -EISDIR);
	assert_int_equal(meta_commit_inline(f->m, 9999, data, 6, NULL, true), -ENOENT);
	assert_int_equal(meta_get_inline(f->m, 9999, &got, &len), -ENOENT);
	assert_int_equal(meta_commit_inline(f->m, ino, data, 6, NULL, true), 0);
	assert_int_equal(meta_setattr(f->m, ino, &set, NULL), 0);
	assert_int_equal(meta_get_inline(f->m, ino, &got, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(got, "abc", 3);
	g_free(got);
	set.size = 100; /* growing keeps the content: the rest reads as zeros */
	assert_int_equal(meta_setattr(f->m, ino, &set, NULL), 0);
	assert_int_equal(meta_get_inline(f->m, ino, &got, &len), 0);
	assert_int_equal(len, 3);
	g_free(got);
	assert_int_equal(meta_commit_inline(f->m, ino, NULL, 0, NULL, true), 0);
	assert_int_equal(meta_getattr(f->m, ino, &a), 0);
	assert_int_equal(a.size, 0);
	assert_int_equal(meta_get_inline(f->m, ino, &got, &len), -ENODATA);
	assert_int_equal(meta_commit_inline(f->m, ino, data, 6, NULL, true), 0);
	assert_int_equal(meta_unlink(f->m, ROOT, "f"), 0);
	assert_int_equal(meta_get_inline(f->m, ino, &got, &len), -ENOENT);
}

/* A database of schema 1 (before inline data) with a file in it is
 * migrated on open: its file is intact and takes inline content; a schema
 * newer than this program is refused. */
static void test_schema_migration(void **state)
{
	struct fx *f = *state;
	uint8_t oid[16] = "object-0123456!";
	struct meta_part p = part(0, 10, 1), *back;
	struct meta_attr a;
	struct meta *newer;
	void *got = NULL;
	size_t len = 0;
	unsigned n;
	uint64_t ino = test_create_ok(f->m, ROOT, "old");

	assert_int_equal(meta_commit_manifest(f->m, ino, oid, 10, &p, 1, NULL, true), 0);
	meta_close(f->m);
	test_meta_raw_exec(f->url, "DROP INDEX parts_missing; ALTER TABLE parts DROP COLUMN missing;"
		       "DROP TABLE inline_data; DROP TABLE nodes; DROP INDEX parts_by_object;"
		       "DROP TABLE locks; DROP TABLE cluster; ALTER TABLE sessions DROP COLUMN lease;"
		       "DROP TABLE node_health; DROP TABLE repair_workers; DROP TABLE repair_leases;"
		       "DROP TABLE members; DROP TABLE rebalance_workers;"
		       "UPDATE schema_version SET version = 1");
	assert_int_equal(meta_open(f->url, &f->m), 0);
	assert_int_equal(meta_schema_version(f->m), META_SCHEMA_VERSION);
	assert_int_equal(meta_lookup(f->m, ROOT, "old", &a), 0);
	assert_int_equal(a.size, 10);
	assert_int_equal(meta_get_manifest(f->m, ino, oid, &back, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(back[0].missing, 0);
	g_free(back);
	assert_int_equal(meta_commit_inline(f->m, ino, "0123456789", 10, NULL, true), 0);
	assert_int_equal(meta_get_inline(f->m, ino, &got, &len), 0);
	assert_memory_equal(got, "0123456789", 10);
	g_free(got);
	test_meta_raw_exec(f->url, "UPDATE schema_version SET version = 12");
	assert_int_equal(meta_open(f->url, &newer), -EPROTO);
	test_meta_raw_exec(f->url, "UPDATE schema_version SET version = 11");
}

static struct meta_lock lk(uint64_t sid, uint64_t owner, enum meta_lock_type type, int64_t start,
			   int64_t end)
{
	return (struct meta_lock){sid, owner, type, start, end, (uint32_t)(100 + owner)};
}

static int set(struct meta *m, uint64_t ino, struct meta_lock l, struct meta_lock *conflict)
{
	return meta_lock_set(m, ino, META_LOCK_POSIX, &l, conflict);
}

/* Byte ranges conflict when they overlap and one writes; a holder's own
 * ranges are split and merged; flock is a kind apart; a session's end and
 * an inode's removal drop their locks. */
static void test_locks(void **state)
{
	struct fx *f = *state;
	struct meta_lock c, l;
	uint64_t s1, s2;
	uint64_t ino = test_create_ok(f->m, ROOT, "f");

	assert_int_equal(meta_session_start(f->m, "a", 30, &s1), 0);
	assert_int_equal(meta_session_start(f->m, "b", 30, &s2), 0);
	assert_int_equal(set(f->m, ino, lk(s1, 1, META_LOCK_WRITE, 0, 99), NULL), 0);
	assert_int_equal(set(f->m, ino, lk(s1, 2, META_LOCK_READ, 50, 60), &c), -EAGAIN);
	assert_true(c.sid == s1 && c.owner == 1 && c.type == META_LOCK_WRITE);
	assert_true(c.start == 0 && c.end == 99 && c.pid == 101);
	/* the same owner number in another session is another holder */
	assert_int_equal(set(f->m, ino, lk(s2, 1, META_LOCK_READ, 99, 99), NULL), -EAGAIN);
	assert_int_equal(set(f->m, ino, lk(s2, 1, META_LOCK_READ, 100, META_LOCK_EOF), NULL), 0);
	assert_int_equal(set(f->m, ino, lk(s1, 2, META_LOCK_READ, 150, 160), NULL), 0);
	assert_int_equal(set(f->m, ino, lk(s1, 2, META_LOCK_WRITE, 150, 160), &c), -EAGAIN);
	assert_true(c.sid == s2 && c.end == META_LOCK_EOF);
	/* a hole punched into a write lock, then downgraded in part */
	assert_int_equal(set(f->m, ino, lk(s1, 1, META_LOCK_UNLOCK, 10, 19), NULL), 0);
	assert_int_equal(set(f->m, ino, lk(s1, 3, META_LOCK_WRITE, 10, 19), NULL), 0);
	assert_int_equal(set(f->m, ino, lk(s1, 1, META_LOCK_READ, 20, 29), NULL), 0);
	l = lk(s2, 9, META_LOCK_READ, 0, 99);
	assert_int_equal(meta_lock_test(f->m, ino, META_LOCK_POSIX, &l, &c), 0);
	assert_true(c.type == META_LOCK_WRITE && c.start == 0 && c.end == 9);
	l = lk(s2, 9, META_LOCK_READ, 20, 29);
	assert_int_equal(meta_lock_test(f->m, ino, META_LOCK_POSIX, &l, &c), 0);
	assert_int_equal(c.type, META_LOCK_UNLOCK); /* reads share */
	l = lk(s1, 1, META_LOCK_WRITE, 0, 99); /* its own locks do not count */
	assert_int_equal(meta_lock_test(f->m, ino, META_LOCK_POSIX, &l, &c), 0);
	assert_true(c.owner == 3 && c.start == 10 && c.end == 19);
	/* flock is apart from POSIX locks */
	l = lk(s2, 7, META_LOCK_WRITE, 0, META_LOCK_EOF);
	assert_int_equal(meta_lock_set(f->m, ino, META_LOCK_FLOCK, &l, NULL), 0);
	l.owner = 8;
	assert_int_equal(meta_lock_set(f->m, ino, META_LOCK_FLOCK, &l, &c), -EAGAIN);
	assert_int_equal(meta_lock_release(f->m, ino, META_LOCK_FLOCK, s2, 7), 0);
	assert_int_equal(meta_lock_set(f->m, ino, META_LOCK_FLOCK, &l, NULL), 0);
	/* bad ranges, no such inode */
	assert_int_equal(set(f->m, ino, lk(s1, 1, META_LOCK_READ, -1, 5), NULL), -EINVAL);
	assert_int_equal(set(f->m, ino, lk(s1, 1, META_LOCK_READ, 6, 5), NULL), -EINVAL);
	assert_int_equal(set(f->m, 4242, lk(s1, 1, META_LOCK_READ, 0, 5), NULL), -ENOENT);
	/* the end of s1 frees all it held */
	assert_int_equal(meta_session_end(f->m, s1), 0);
	assert_int_equal(set(f->m, ino, lk(s2, 2, META_LOCK_WRITE, 0, 99), NULL), 0);
	assert_int_equal(meta_unlink(f->m, ROOT, "f"), 0);
	ino = test_create_ok(f->m, ROOT, "f");
	assert_int_equal(set(f->m, ino, lk(s2, 5, META_LOCK_WRITE, 0, 99), NULL), 0);
	assert_int_equal(meta_check(f->m, NULL), 0);
}

/*
 * Random lock operations of three holders over bytes 0..64 (64 stands for
 * everything from 64 to the end) against a model of who holds each byte:
 * every set must succeed or conflict as the model says, and tests must
 * see the model's writers.
 */
#define MODEL_BYTES 65
static void test_locks_model(void **state)
{
	struct fx *f = *state;
	enum meta_lock_type held[3][MODEL_BYTES] = {{0}};
	uint64_t sid, ino = test_create_ok(f->m, ROOT, "f");
	GRand *r = g_rand_new_with_seed(17);

	assert_int_equal(meta_session_start(f->m, "a", 30, &sid), 0);
	for (int op = 0; op < 300; op++) {
		unsigned o = (unsigned)g_rand_int_range(r, 0, 3);
		enum meta_lock_type t = (enum meta_lock_type)g_rand_int_range(r, 0, 3);
		int a = g_rand_int_range(r, 0, MODEL_BYTES), b = g_rand_int_range(r, a, MODEL_BYTES);
		bool conflict = false;

		for (int i = a; t != META_LOCK_UNLOCK && i <= b; i++)
			for (unsigned other = 0; other < 3; other++)
				conflict |= other != o && held[other][i] &&
					    (t == META_LOCK_WRITE || held[other][i] == META_LOCK_WRITE);
		int64_t end = b == MODEL_BYTES - 1 ? META_LOCK_EOF : b;
		assert_int_equal(set(f->m, ino, lk(sid, o, t, a, end), NULL), conflict ? -EAGAIN : 0);
		for (int i = a; !conflict && i <= b; i++)
			held[o][i] = t;
		for (int i = 0; op % 25 == 0 && i < MODEL_BYTES; i++) {
			struct meta_lock probe = lk(sid, 9, META_LOCK_READ, i, i), c;
			bool writer = held[0][i] == META_LOCK_WRITE || held[1][i] == META_LOCK_WRITE ||
				      held[2][i] == META_LOCK_WRITE;

			assert_int_equal(meta_lock_test(f->m, ino, META_LOCK_POSIX, &probe, &c), 0);
			assert_int_equal(c.type == META_LOCK_WRITE, writer);
		}
	}
	g_rand_free(r);
}

/* statfs counts inodes and bytes. */
static void test_statfs(void **state)
{
	struct fx *f = *state;
	struct meta_statfs sf;
	struct meta_setattr set = {.mask = META_SET_SIZE, .size = 1000};
	uint64_t ino = test_create_ok(f->m, ROOT, "f");

	assert_int_equal(meta_setattr(f->m, ino, &set, NULL), 0);
	assert_int_equal(meta_statfs(f->m, &sf), 0);
	assert_int_equal(sf.inodes, 2);
	assert_int_equal(sf.bytes, 1000);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_inline_commit_and_read), T(test_inline_limits_truncate_unlink),
		T(test_schema_migration),
		T(test_database_life_cycle), T(test_create_and_lookup), T(test_names),
		T(test_directories), T(test_links), T(test_link_directory_order),
		T(test_parent_before_name), T(test_symlinks), T(test_mknod), T(test_rename),
		T(test_rename_rule_order), T(test_readdir_paging), T(test_setattr),
		T(test_setattr_kill_suidgid), T(test_commit_with_attributes), T(test_xattrs),
		T(test_empty_xattrs), T(test_manifests_and_garbage), T(test_missing_shards_kept),
		T(test_degraded_parts_and_relocation),
		T(test_node_identity_and_lost_store),
		T(test_members),
		T(test_manifest_part_ids_and_holes), T(test_reads_see_later_commits),
		T(test_open_unlinked_files), T(test_create_open_and_batched_closes),
		T(test_make_node_sent_again), T(test_path_of), T(test_statfs),
		T(test_locks), T(test_locks_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
