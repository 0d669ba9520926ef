/*
 * test_meta_vfs.c - how the metadata engine writes its write-ahead log
 * (store/meta_vfs.c gathers a transaction's frames into one write; the
 * checkpoint policy of store/meta_db.c): commits are visible to other
 * connections at once, a failed WAL write fails its commit, killing the
 * process loses no acknowledged commit, and the WAL stays bounded under
 * writers that never pause.
 */
#include "store/meta/meta.h"
#include "fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#define ROOT META_ROOT_INO
#define BIG_PARTS 20000 /* a manifest of about 1.5 MiB: more than one gathered write */

struct fx {
	char *dir, *url, *wal;
};

static int setup(void **state)
{
	struct fx *f = g_new0(struct fx, 1);

	f->dir = test_mkdtemp();
	f->url = g_strdup_printf("sqlite://%s/meta.db", f->dir);
	f->wal = g_strdup_printf("%s/meta.db-wal", f->dir);
	assert_int_equal(meta_create_db(f->url, 1000, 1000), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	test_rmdir(f->dir);
	g_free(f->dir);
	g_free(f->url);
	g_free(f->wal);
	g_free(f);
	return 0;
}

static struct meta *open_ok(const struct fx *f)
{
	struct meta *m;

	assert_int_equal(meta_open(f->url, &m), 0);
	return m;
}

static void check_sound(const struct fx *f)
{
	struct meta *m = open_ok(f);
	char *report = NULL;

	assert_int_equal(meta_check(m, &report), 0);
	g_free(report);
	meta_close(m);
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : 0;
}

static struct meta_part *big_manifest(void)
{
	struct meta_part *parts = g_new0(struct meta_part, BIG_PARTS);

	for (uint32_t i = 0; i < BIG_PARTS; i++) {
		parts[i] = (struct meta_part){.index = i, .length = 1u << 20, .k = 10, .m = 4};
		for (int n = 0; n < 14; n++)
			parts[i].nodes[n] = (uint16_t)(i + n);
		memset(parts[i].checksum, (int)i, 16);
	}
	return parts;
}

/* Another connection sees a commit as soon as it returns, a small one and
 * one larger than the gathering buffer alike. */
static void test_commits_visible_at_once(void **state)
{
	struct fx *f = *state;
	struct meta *a = open_ok(f), *b = open_ok(f);
	uint8_t oid[16] = "object-0123456!", got_oid[16];
	struct meta_part *parts = big_manifest(), *back;
	struct meta_attr attr;
	unsigned n;

	for (int i = 0; i < 50; i++) {
		char name[16];

		g_snprintf(name, sizeof(name), "f%d", i);
		assert_int_equal(meta_create(a, ROOT, name, 0644, 1, 1, true, &attr), 0);
		assert_int_equal(meta_lookup(b, ROOT, name, &attr), 0);
	}
	assert_int_equal(meta_commit_manifest(a, attr.ino, oid, 1, parts, BIG_PARTS, NULL, false), 0);
	assert_int_equal(meta_get_manifest(b, attr.ino, got_oid, &back, &n), 0);
	assert_int_equal(n, BIG_PARTS);
	memcpy(parts[BIG_PARTS - 1].object_id, oid, 16); /* parts without an id take the file's */
	assert_memory_equal(&back[BIG_PARTS - 1], &parts[BIG_PARTS - 1], sizeof(parts[0]));
	g_free(back);
	g_free(parts);
	meta_close(a);
	meta_close(b);
	check_sound(f);
}

/* A commit whose WAL write fails (the file size limit stands in for a full
 * disk) reports the error, is seen by nobody, and the connection goes on. */
static void test_failed_wal_write_fails_commit(void **state)
{
	struct fx *f = *state;
	struct meta *a = open_ok(f), *b = open_ok(f);
	struct rlimit old, tight;
	struct meta_attr attr;
	int rc;

	assert_int_equal(meta_create(a, ROOT, "before", 0644, 1, 1, true, &attr), 0);
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	tight = old;
	tight.rlim_cur = (rlim_t)file_size(f->wal) + 512;
	setrlimit(RLIMIT_FSIZE, &tight);
	rc = meta_create(a, ROOT, "refused", 0644, 1, 1, true, &attr);
	setrlimit(RLIMIT_FSIZE, &old);
	assert_true(rc == -ENOSPC || rc == -EIO);
	assert_int_equal(meta_lookup(b, ROOT, "refused", &attr), -ENOENT);
	assert_int_equal(meta_lookup(a, ROOT, "refused", &attr), -ENOENT);
	assert_int_equal(meta_create(a, ROOT, "after", 0644, 1, 1, true, &attr), 0);
	assert_int_equal(meta_lookup(b, ROOT, "after", &attr), 0);
	meta_close(a);
	meta_close(b);
	check_sound(f);
}

/* The child: creates files in dir until killed, telling the parent the
 * number of each create that returned; every tenth file also gets a large
 * xattr and a manifest, so that transactions of many frames are cut too. */
static _Noreturn void create_until_killed(const char *url, const char *dir, int ack_fd)
{
	uint8_t oid[16] = "object-0123456!", value[3000] = {7};
	struct meta_part parts[200];
	struct meta_attr d, a;
	struct meta *m;

	for (int i = 0; i < 200; i++)
		parts[i] = (struct meta_part){.index = (uint32_t)i, .length = 1, .k = 2, .m = 1};
	if (meta_open(url, &m) < 0 || meta_mkdir(m, ROOT, dir, 0755, 1, 1, &d) < 0)
		_exit(1);
	for (int i = 0;; i++) {
		char name[16];

		g_snprintf(name, sizeof(name), "f%d", i);
		if (meta_create(m, d.ino, name, 0644, 1, 1, true, &a) < 0)
			_exit(1);
		if (i % 10 == 0 &&
		    (meta_setxattr(m, a.ino, "user.x", value, sizeof(value), 0) < 0 ||
		     meta_commit_manifest(m, a.ino, oid, 200, parts, 200, NULL, false) < 0))
			_exit(1);
		if (write(ack_fd, &i, sizeof(i)) != sizeof(i))
			_exit(1);
	}
}

/* Every file whose create was acknowledged before the kill is there. */
static void check_acknowledged(const struct fx *f, const char *dir, int ack_fd)
{
	struct meta *m = open_ok(f);
	struct meta_attr d = {0}, a;
	int i, last = -1;

	while (read(ack_fd, &i, sizeof(i)) == sizeof(i))
		last = i;
	if (last >= 0)
		assert_int_equal(meta_lookup(m, ROOT, dir, &d), 0);
	for (i = 0; i <= last; i++) {
		char name[16];

		g_snprintf(name, sizeof(name), "f%d", i);
		assert_int_equal(meta_lookup(m, d.ino, name, &a), 0);
	}
	meta_close(m);
}

/* SIGKILL at random moments loses no create that had returned, and leaves
 * a sound namespace. */
static void test_kill_loses_no_acknowledged_commit(void **state)
{
	struct fx *f = *state;
	guint32 seed = g_random_int();
	GRand *rand = g_rand_new_with_seed(seed);

	print_message("seed %u\n", seed);
	for (int round = 0; round < 12; round++) {
		char dir[16];
		int ack[2];
		pid_t child;

		g_snprintf(dir, sizeof(dir), "round-%d", round);
		assert_int_equal(pipe(ack), 0);
		child = fork();
		assert_true(child >= 0);
		if (child == 0) {
			close(ack[0]);
			create_until_killed(f->url, dir, ack[1]);
		}
		close(ack[1]);
		g_usleep((gulong)g_rand_int_range(rand, 20000, 300000));
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		check_acknowledged(f, dir, ack[0]);
		close(ack[0]);
	}
	check_sound(f);
	g_rand_free(rand);
}

struct writer {
	const char *url;
	int id;
	int rc;
};

static gpointer write_files(gpointer arg)
{
	struct writer *w = arg;
	struct meta_attr d, a;
	char name[32];
	struct meta *m;

	w->rc = meta_open(w->url, &m);
	g_snprintf(name, sizeof(name), "writer-%d", w->id);
	if (w->rc == 0)
		w->rc = meta_mkdir(m, ROOT, name, 0755, 1, 1, &d);
	for (int i = 0; w->rc == 0 && i < 2500; i++) {
		g_snprintf(name, sizeof(name), "f%d", i);
		w->rc = meta_create(m, d.ino, name, 0644, 1, 1, true, &a);
	}
	meta_close(m);
	return NULL;
}

/* Writers that never pause still let the WAL start over: with SQLite's own
 * checkpoint policy it grew to 90 MiB in this test, and without bound. */
static void test_wal_bounded_under_busy_writers(void **state)
{
	struct fx *f = *state;
	struct meta *keep = open_ok(f); /* keeps the WAL from going at the last close */
	struct writer w[4];
	GThread *t[4];

	for (int i = 0; i < 4; i++) {
		w[i] = (struct writer){.url = f->url, .id = i};
		t[i] = g_thread_new("writer", write_files, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		g_thread_join(t[i]);
		assert_int_equal(w[i].rc, 0);
	}
	print_message("WAL %.1f MiB after 10000 creates\n", file_size(f->wal) / 1048576.0);
	assert_true(file_size(f->wal) < (40 << 20));
	meta_close(keep);
	check_sound(f);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_commits_visible_at_once),
	    T(test_failed_wal_write_fails_commit),
	    T(test_kill_loses_no_acknowledged_commit),
	    T(test_wal_bounded_under_busy_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
