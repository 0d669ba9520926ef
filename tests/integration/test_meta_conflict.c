/*
 * test_meta_conflict.c - the checks that tell whether a metadata database
 * several processes changed at once is sound: meta_check() and a walk of
 * the tree from the root through the public interface only (every
 * directory reached exactly once, link counts equal to the entries naming
 * a file, directories at 2 + subdirectories, ".." pointing back, no inode
 * outside the tree). The cases here damage a database with raw SQL behind
 * the engine's back and prove that both name what they exist to find.
 */
#include "store/meta.h"
#include "wal_test.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <cmocka.h>

#define ROOT META_ROOT_INO
#define READDIR_PAGE 32

struct fx {
	char *dir, *path, *url;
	struct meta *m;
};

static int setup(void **state)
{
	struct fx *f = g_new0(struct fx, 1);

	f->dir = test_mkdtemp();
	f->path = g_strdup_printf("%s/meta.db", f->dir);
	f->url = g_strdup_printf("sqlite://%s", f->path);
	assert_int_equal(meta_create_db(f->url, 1000, 1000), 0);
	assert_int_equal(meta_open(f->url, &f->m), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	meta_close(f->m);
	test_rmdir(f->dir);
	g_free(f->dir);
	g_free(f->path);
	g_free(f->url);
	g_free(f);
	return 0;
}

static uint64_t mkdir_ok(struct meta *m, uint64_t parent, const char *name)
{
	struct meta_attr a;

	assert_int_equal(meta_mkdir(m, parent, name, 0755, 1, 2, &a), 0);
	return a.ino;
}

static uint64_t create_ok(struct meta *m, uint64_t parent, const char *name)
{
	struct meta_attr a;

	assert_int_equal(meta_create(m, parent, name, 0644, 1, 2, true, &a), 0);
	return a.ino;
}

static void link_ok(struct meta *m, uint64_t ino, uint64_t parent, const char *name)
{
	assert_int_equal(meta_link(m, ino, parent, name, NULL), 0);
}

/* ---- the tree walk ---- */

struct entry {
	uint64_t ino;
	uint32_t mode;
};

struct listing {
	GArray *entries;
	uint64_t cookie;
};

static int listing_add(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	struct listing *l = arg;
	struct entry e = {ino, mode};

	(void)name;
	g_array_append_val(l->entries, e);
	l->cookie = cookie;
	return 0;
}

/* Every entry of dir, page by page. */
static GArray *dir_list(struct meta *m, uint64_t dir)
{
	struct listing l = {g_array_new(FALSE, FALSE, sizeof(struct entry)), 0};

	for (;;) {
		guint before = l.entries->len;

		assert_int_equal(meta_readdir(m, dir, l.cookie, READDIR_PAGE, listing_add, &l), 0);
		if (l.entries->len == before)
			return l.entries;
	}
}

struct census {
	struct meta *m;
	GHashTable *dirs;  /* directory ino -> its parent, each reached once */
	GHashTable *links; /* other ino -> entries naming it */
	GQueue todo;	   /* directories still to list */
	GString *problems;
};

static void census_problem(struct census *t, const char *format, ...) G_GNUC_PRINTF(2, 3);

static void census_problem(struct census *t, const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	g_string_append_vprintf(t->problems, format, ap);
	va_end(ap);
	g_string_append_c(t->problems, '\n');
}

static void census_entry(struct census *t, uint64_t dir, const struct entry *e, unsigned *subdirs)
{
	struct meta_attr a;
	gpointer key = GSIZE_TO_POINTER(e->ino);
	int rc = meta_getattr(t->m, e->ino, &a);

	if (rc < 0 || (a.mode & S_IFMT) != (e->mode & S_IFMT)) {
		census_problem(t,
			       "entry of %" G_GUINT64_FORMAT " in %" G_GUINT64_FORMAT
			       ": getattr %d, type %o listed as %o",
			       e->ino, dir, rc, rc < 0 ? 0 : a.mode & S_IFMT, e->mode & S_IFMT);
		return;
	}
	if (!S_ISDIR(a.mode)) {
		g_hash_table_insert(
		    t->links, key,
		    GUINT_TO_POINTER(GPOINTER_TO_UINT(g_hash_table_lookup(t->links, key)) + 1));
		return;
	}
	(*subdirs)++;
	if (g_hash_table_contains(t->dirs, key)) {
		census_problem(t,
			       "directory %" G_GUINT64_FORMAT " reached twice (a cycle or a"
			       " second entry), again in %" G_GUINT64_FORMAT,
			       e->ino, dir);
		return; /* listing it again could loop for ever */
	}
	g_hash_table_insert(t->dirs, key, GSIZE_TO_POINTER(dir));
	g_queue_push_tail(&t->todo, key);
}

/* Lists dir: its link count and ".." must agree with what the walk found. */
static void census_dir(struct census *t, uint64_t dir)
{
	GArray *entries = dir_list(t->m, dir);
	uint64_t parent = GPOINTER_TO_SIZE(g_hash_table_lookup(t->dirs, GSIZE_TO_POINTER(dir)));
	unsigned subdirs = 0;
	struct meta_attr a;

	for (guint i = 0; i < entries->len; i++)
		census_entry(t, dir, &g_array_index(entries, struct entry, i), &subdirs);
	g_array_free(entries, TRUE);
	assert_int_equal(meta_getattr(t->m, dir, &a), 0);
	if (a.nlink != 2 + subdirs)
		census_problem(t, "directory %" G_GUINT64_FORMAT ": nlink %u, %u subdirectories",
			       dir, a.nlink, subdirs);
	assert_int_equal(meta_lookup(t->m, dir, "..", &a), 0);
	if (a.ino != parent)
		census_problem(t,
			       "directory %" G_GUINT64_FORMAT ": \"..\" is %" G_GUINT64_FORMAT
			       ", its entry is in %" G_GUINT64_FORMAT,
			       dir, a.ino, parent);
}

static void census_check_links(struct census *t)
{
	GHashTableIter it;
	gpointer key, count;
	struct meta_attr a;

	g_hash_table_iter_init(&it, t->links);
	while (g_hash_table_iter_next(&it, &key, &count)) {
		assert_int_equal(meta_getattr(t->m, GPOINTER_TO_SIZE(key), &a), 0);
		if (a.nlink != GPOINTER_TO_UINT(count))
			census_problem(t, "file %zu: nlink %u, %u entries", GPOINTER_TO_SIZE(key),
				       a.nlink, GPOINTER_TO_UINT(count));
	}
}

/* Walks the namespace from the root through the public interface only;
 * returns a description of what is wrong, or NULL. No file may be open:
 * every inode must then be in the tree. */
static char *tree_problems(struct meta *m)
{
	struct census t = {m, g_hash_table_new(NULL, NULL), g_hash_table_new(NULL, NULL),
			   G_QUEUE_INIT, g_string_new(NULL)};
	struct meta_statfs sf;
	gpointer dir;
	guint inodes;

	g_hash_table_insert(t.dirs, GSIZE_TO_POINTER(ROOT), GSIZE_TO_POINTER(ROOT));
	g_queue_push_tail(&t.todo, GSIZE_TO_POINTER(ROOT));
	while ((dir = g_queue_pop_head(&t.todo)))
		census_dir(&t, GPOINTER_TO_SIZE(dir));
	census_check_links(&t);
	inodes = g_hash_table_size(t.dirs) + g_hash_table_size(t.links);
	assert_int_equal(meta_statfs(m, &sf), 0);
	if (sf.inodes != inodes)
		census_problem(&t, "%" G_GUINT64_FORMAT " inodes, %u in the tree", sf.inodes,
			       inodes);
	print_message("tree: %u directories, %u other inodes\n", g_hash_table_size(t.dirs),
		      g_hash_table_size(t.links));
	g_hash_table_destroy(t.dirs);
	g_hash_table_destroy(t.links);
	return g_string_free(t.problems, t.problems->len == 0);
}

/* ---- meta_check against damage done behind the engine's back ---- */

static void raw_exec(const struct fx *f, const char *text)
{
	sqlite3 *db;
	char *err = NULL;

	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, text, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", text, err);
	sqlite3_close(db);
}

static void raw_execf(const struct fx *f, const char *format, ...) G_GNUC_PRINTF(2, 3);

static void raw_execf(const struct fx *f, const char *format, ...)
{
	va_list ap;
	char *text;

	va_start(ap, format);
	text = g_strdup_vprintf(format, ap);
	va_end(ap);
	raw_exec(f, text);
	g_free(text);
}

static void assert_check_names(struct meta *m, const char *problem)
{
	char *report = NULL;

	assert_int_equal(meta_check(m, &report), -EUCLEAN);
	assert_non_null(report);
	if (!strstr(report, problem))
		fail_msg("meta_check report lacks \"%s\":\n%s", problem, report);
	g_free(report);
}

/* A sound namespace with links and nested directories checks clean, with
 * an empty report. */
static void test_check_sound(void **state)
{
	struct fx *f = *state;
	uint64_t d = mkdir_ok(f->m, ROOT, "d"), file = create_ok(f->m, d, "f");
	char *report = NULL;

	mkdir_ok(f->m, d, "sub");
	link_ok(f->m, file, ROOT, "g");
	assert_int_equal(meta_check(f->m, &report), 0);
	assert_string_equal(report, "");
	g_free(report);
}

/* An entry whose inode row is gone is reported. */
static void test_check_dangling_entry(void **state)
{
	struct fx *f = *state;
	uint64_t file = create_ok(f->m, ROOT, "f");

	raw_execf(f, "DELETE FROM inodes WHERE ino = %" G_GUINT64_FORMAT, file);
	assert_check_names(f->m, "entries pointing to no inode");
}

/* A file's link count that disagrees with its entries is reported. */
static void test_check_file_nlink(void **state)
{
	struct fx *f = *state;
	uint64_t file = create_ok(f->m, ROOT, "f");

	link_ok(f->m, file, ROOT, "g");
	raw_execf(f, "UPDATE inodes SET nlink = 3 WHERE ino = %" G_GUINT64_FORMAT, file);
	assert_check_names(f->m, "files whose link count differs from their entries");
}

/* A directory's link count that ignores a subdirectory is reported. */
static void test_check_dir_nlink(void **state)
{
	struct fx *f = *state;
	uint64_t d = mkdir_ok(f->m, ROOT, "d");

	mkdir_ok(f->m, d, "sub");
	raw_execf(f, "UPDATE inodes SET nlink = 2 WHERE ino = %" G_GUINT64_FORMAT, d);
	assert_check_names(f->m, "directories whose link count is not 2 + subdirectories");
}

/* A directory with a second entry (a hard-linked directory) is reported. */
static void test_check_dir_two_entries(void **state)
{
	struct fx *f = *state;
	uint64_t d = mkdir_ok(f->m, ROOT, "d");

	raw_execf(f,
		  "INSERT INTO dentries (parent, name, ino) VALUES (1, CAST('again' AS BLOB), "
		  "%" G_GUINT64_FORMAT ")",
		  d);
	assert_check_names(f->m, "directories with other than one entry");
}

/* Moves directory a into its own subdirectory b with every count and
 * parent pointer made to match: a cycle cut off from the root, which only
 * reachability can find. */
static void raw_detach_cycle(const struct fx *f, uint64_t a, uint64_t b)
{
	raw_execf(f,
		  "UPDATE dentries SET parent = %" G_GUINT64_FORMAT " WHERE ino = %" G_GUINT64_FORMAT ";"
		  " UPDATE inodes SET parent = %" G_GUINT64_FORMAT " WHERE ino = %" G_GUINT64_FORMAT ";"
		  " UPDATE inodes SET nlink = 2 WHERE ino = 1;"
		  " UPDATE inodes SET nlink = 3 WHERE ino = %" G_GUINT64_FORMAT,
		  b, a, b, a, b);
}

/* Two directories moved into each other and cut off from the root are
 * found. */
static void test_check_detached_cycle(void **state)
{
	struct fx *f = *state;
	uint64_t a = mkdir_ok(f->m, ROOT, "a"), b = mkdir_ok(f->m, a, "b");

	raw_detach_cycle(f, a, b);
	assert_check_names(f->m, "inodes neither reachable from the root nor open");
}

/* Damage below the SQL level (an index that no longer matches its table)
 * is caught by SQLite's integrity_check. */
static void test_check_broken_index(void **state)
{
	struct fx *f = *state;

	char name[16];

	for (int i = 0; i < 20; i++) {
		g_snprintf(name, sizeof(name), "file%02d", i);
		create_ok(f->m, ROOT, name);
	}
	meta_close(f->m); /* the engine re-reads the schema on open */
	f->m = NULL;
	raw_exec(f,
		 "PRAGMA writable_schema = ON;"
		 " UPDATE sqlite_schema SET sql = 'CREATE INDEX dentries_by_ino ON dentries (name)'"
		 " WHERE name = 'dentries_by_ino';");
	assert_int_equal(meta_open(f->url, &f->m), 0);
	assert_check_names(f->m, "SQLite integrity_check is not ok");
}

/* The walk finds a wrong file link count, a
 * directory with two entries and a subtree cut off from the root. */
static void test_walk_finds_damage(void **state)
{
	struct fx *f = *state;
	uint64_t file = create_ok(f->m, ROOT, "f"), d = mkdir_ok(f->m, ROOT, "d");
	uint64_t x = mkdir_ok(f->m, ROOT, "x");
	char *problems;

	mkdir_ok(f->m, x, "y");
	raw_execf(f, "UPDATE inodes SET nlink = 5 WHERE ino = %" G_GUINT64_FORMAT, file);
	raw_execf(f,
		  "INSERT INTO dentries (parent, name, ino) VALUES (1, CAST('again' AS BLOB), "
		  "%" G_GUINT64_FORMAT ")",
		  d);
	raw_execf(f, "DELETE FROM dentries WHERE ino = %" G_GUINT64_FORMAT, x);
	problems = tree_problems(f->m);
	assert_non_null(problems);
	print_message("%s", problems);
	assert_non_null(strstr(problems, ": nlink 5, 1 entries"));
	assert_non_null(strstr(problems, "reached twice"));
	assert_non_null(strstr(problems, "5 inodes, 3 in the tree")); /* x and y cut off */
	g_free(problems);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_check_sound),
		T(test_check_dangling_entry),
		T(test_check_file_nlink),
		T(test_check_dir_nlink),
		T(test_check_dir_two_entries),
		T(test_check_detached_cycle),
		T(test_check_broken_index),
		T(test_walk_finds_damage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
