/*
 * test_meta_conflict.c - two processes change one metadata database at the
 * same time, with operations chosen to collide: renames of files and
 * directories across directories (directories into each other, so that a
 * wrong engine would make a cycle or cut a subtree loose), RENAME_EXCHANGE,
 * create/unlink, link/unlink and mkdir/rmdir of the same few names, and
 * now and then a fresh connection. Each call must succeed or fail with an
 * errno POSIX gives for it when the namespace changed under it; -EBUSY and
 * -EIO (the database itself failing under contention) are never right.
 *
 * Every write is one transaction, so every committed state must be sound:
 * the parent samples them with meta_check() while the children run.
 * Afterwards it runs meta_check() again and walks the tree from the root
 * itself: every directory reached exactly once, link counts equal to the
 * entries naming a file, directories at 2 + subdirectories, ".." pointing
 * back, no inode outside the tree. The check cases damage a database with
 * raw SQL behind the engine's back and prove that meta_check() and the
 * walk name what they exist to find.
 *
 * Each child opens its own connection after fork(): a SQLite connection
 * never crosses a fork. Children report through a shared anonymous mapping
 * and their exit status and never call cmocka, whose jump buffers belong
 * to the parent. The seed is printed; SHARDFS_SEED=<n> replays the
 * children's choices (not the interleaving of the two processes).
 */
#include "store/meta/meta.h"
#include "fixture.h"
#include "meta_fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#define ROOT META_ROOT_INO
#define CHILDREN 2
#define OPS_PER_CHILD 20000
#define CHILD_SECONDS 30
#define DIR_POOL_MAX 64
#define ERRNO_SLOTS 256
#define READDIR_PAGE 32

/* Few names, shared by files and directories, so that the two children
 * keep meeting on the same entries. */
static const char *const names[] = {"a", "b", "c", "d", "e", "f"};

enum op {
	OP_RENAME,
	OP_RENAME_NOREPLACE,
	OP_EXCHANGE,
	OP_MOVE_DIR,
	OP_CREATE,
	OP_UNLINK,
	OP_LINK,
	OP_MKDIR,
	OP_RMDIR,
	OP_READDIR,
	OP_REOPEN,
	OP_COUNT,
};

struct op_kind {
	const char *name;
	unsigned weight;
	/* What the call may fail with when another process changed the
	 * namespace under it (0 ends the list). Linux's EISDIR for unlink of
	 * a directory is there next to POSIX's EPERM. */
	int allowed[8];
};

static const struct op_kind kinds[OP_COUNT] = {
	[OP_RENAME] = {"rename", 16, {ENOENT, ENOTDIR, EISDIR, EINVAL, ENOTEMPTY, EEXIST, EMLINK}},
	[OP_RENAME_NOREPLACE] = {"rename-noreplace", 4, {ENOENT, ENOTDIR, EINVAL, EEXIST, EMLINK}},
	[OP_EXCHANGE] = {"rename-exchange", 8, {ENOENT, ENOTDIR, EINVAL}},
	/* rename or exchange of a known directory into another one, often
	 * its own descendant: the cycle attempts */
	[OP_MOVE_DIR] = {"move-dir", 14, {ENOENT, ENOTDIR, EISDIR, EINVAL, ENOTEMPTY, EEXIST, EMLINK}},
	[OP_CREATE] = {"create", 10, {ENOENT, ENOTDIR, EEXIST, EISDIR}},
	[OP_UNLINK] = {"unlink", 10, {ENOENT, ENOTDIR, EISDIR, EPERM}},
	[OP_LINK] = {"link", 10, {ENOENT, ENOTDIR, EEXIST, EPERM, EMLINK}},
	[OP_MKDIR] = {"mkdir", 10, {ENOENT, ENOTDIR, EEXIST, EMLINK}},
	[OP_RMDIR] = {"rmdir", 12, {ENOENT, ENOTDIR, ENOTEMPTY, EEXIST}},
	[OP_READDIR] = {"readdir-walk", 4, {ENOENT}},
	/* mounts and CLI runs come and go while others write */
	[OP_REOPEN] = {"close+open", 1, {0}},
};

/* What one child did; lives in memory shared with the parent. */
struct child_report {
	guint32 seed;
	unsigned ops;
	unsigned wrong;		 /* calls that failed in a way POSIX does not allow */
	gint64 start_us, end_us; /* monotonic clock, shared by the processes */
	unsigned ok[OP_COUNT];
	unsigned refused[OP_COUNT][ERRNO_SLOTS];
};

struct child {
	unsigned id;
	const char *url;
	struct meta *m;
	GRand *rng;
	GArray *dirs; /* directory inos seen lately; any may be gone by now */
	struct child_report *rep;
	char what[160]; /* the call under way, for a failure message */
};

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

	meta_close(f->m);
	test_meta_url_drop(f->url);
	test_rmdir(f->dir);
	g_free(f->dir);
	g_free(f->url);
	g_free(f);
	return 0;
}

static void link_ok(struct meta *m, uint64_t ino, uint64_t parent, const char *name)
{
	assert_int_equal(meta_link(m, ino, parent, name, NULL), 0);
}

/* Prints and frees text, then fails: a cmocka failure jumps out of the
 * test, so nothing after it would free. */
static void fail_freeing(const char *what, char *text)
{
	print_message("%s:\n%s", what, text ? text : "");
	g_free(text);
	fail();
}

/* ---- the children ---- */

static bool errno_allowed(enum op op, int err)
{
	for (const int *e = kinds[op].allowed; *e; e++)
		if (*e == err)
			return true;
	return false;
}

static uint64_t pick_dir(struct child *c)
{
	return g_array_index(c->dirs, uint64_t, g_rand_int_range(c->rng, 0, (gint32)c->dirs->len));
}

/* Any directory of the pool but the root (the pool always starts with
 * it); the root itself if the tree has no other. */
static uint64_t pick_subdir(struct child *c)
{
	if (c->dirs->len < 2)
		return ROOT;
	return g_array_index(c->dirs, uint64_t, g_rand_int_range(c->rng, 1, (gint32)c->dirs->len));
}

static const char *pick_name(struct child *c)
{
	return names[g_rand_int_range(c->rng, 0, G_N_ELEMENTS(names))];
}

static enum op pick_op(struct child *c)
{
	unsigned total = 0, r;

	for (int i = 0; i < OP_COUNT; i++)
		total += kinds[i].weight;
	r = (unsigned)g_rand_int_range(c->rng, 0, (gint32)total);
	for (int i = 0; i < OP_COUNT; i++) {
		if (r < kinds[i].weight)
			return (enum op)i;
		r -= kinds[i].weight;
	}
	g_assert_not_reached();
}

static void pool_add(struct child *c, uint64_t dir)
{
	if (c->dirs->len < DIR_POOL_MAX)
		g_array_append_val(c->dirs, dir);
}

static int do_rename(struct child *c, unsigned flags)
{
	uint64_t from = pick_dir(c), to = pick_dir(c);
	const char *name = pick_name(c), *newname = pick_name(c);

	g_snprintf(c->what, sizeof(c->what),
		   "rename(%" G_GUINT64_FORMAT "/%s -> %" G_GUINT64_FORMAT "/%s, flags %u)", from,
		   name, to, newname, flags);
	return meta_rename(c->m, from, name, to, newname, flags);
}

struct name_search {
	uint64_t ino;
	char name[META_NAME_MAX + 1];
	uint64_t cookie;
	bool found;
};

static int name_match(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	struct name_search *ns = arg;

	(void)mode;
	ns->cookie = cookie;
	if (ino != ns->ino)
		return 0;
	g_strlcpy(ns->name, name, sizeof(ns->name));
	ns->found = true;
	return 1;
}

/* The current parent and name of directory dir, or -ENOENT once it moved
 * or went; names are reached through the interface only, as a path walk
 * would. */
static int dir_path(struct child *c, uint64_t dir, uint64_t *parent, struct name_search *ns)
{
	struct meta_attr a;
	uint64_t cookie;
	int rc = dir == ROOT ? -ENOENT : meta_lookup(c->m, dir, "..", &a);

	*ns = (struct name_search){.ino = dir};
	if (rc < 0) /* gone, or an empty tree with nothing to move */
		return rc;
	do {
		cookie = ns->cookie;
		rc = meta_readdir(c->m, a.ino, cookie, READDIR_PAGE, name_match, ns);
	} while (rc == 0 && !ns->found && ns->cookie != cookie);
	*parent = a.ino;
	return rc < 0 ? rc : ns->found ? 0 : -ENOENT;
}

/* Moves (or exchanges) a known directory into another known one. */
static int do_move_dir(struct child *c)
{
	uint64_t dir = pick_subdir(c), to = pick_dir(c), parent = 0;
	const char *newname = pick_name(c);
	unsigned flags = g_rand_int_range(c->rng, 0, 4) ? 0 : META_RENAME_EXCHANGE;
	struct name_search ns;
	int rc;

	g_snprintf(c->what, sizeof(c->what), "path of directory %" G_GUINT64_FORMAT, dir);
	rc = dir_path(c, dir, &parent, &ns);
	if (rc < 0)
		return rc;
	g_snprintf(c->what, sizeof(c->what),
		   "rename(dir %" G_GUINT64_FORMAT " = %" G_GUINT64_FORMAT
		   "/%s -> %" G_GUINT64_FORMAT "/%s, flags %u)",
		   dir, parent, ns.name, to, newname, flags);
	return meta_rename(c->m, parent, ns.name, to, newname, flags);
}

static int do_create(struct child *c)
{
	uint64_t dir = pick_dir(c);
	const char *name = pick_name(c);
	bool excl = g_rand_boolean(c->rng);

	g_snprintf(c->what, sizeof(c->what), "create(%" G_GUINT64_FORMAT "/%s, excl %d)", dir, name,
		   excl);
	return meta_create(c->m, dir, name, 0644, 1, 2, excl, NULL);
}

static int do_unlink(struct child *c)
{
	uint64_t dir = pick_dir(c);
	const char *name = pick_name(c);

	g_snprintf(c->what, sizeof(c->what), "unlink(%" G_GUINT64_FORMAT "/%s)", dir, name);
	return meta_unlink(c->m, dir, name);
}

/* link(old, new) by path: a missing old path fails as link(2) would. */
static int do_link(struct child *c)
{
	uint64_t from = pick_dir(c), to = pick_dir(c);
	const char *name = pick_name(c), *newname = pick_name(c);
	struct meta_attr a;
	int rc;

	g_snprintf(c->what, sizeof(c->what), "lookup(%" G_GUINT64_FORMAT "/%s) for link", from,
		   name);
	rc = meta_lookup(c->m, from, name, &a);
	if (rc < 0)
		return rc;
	g_snprintf(c->what, sizeof(c->what),
		   "link(%" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT "/%s) -> %" G_GUINT64_FORMAT
		   "/%s)",
		   a.ino, from, name, to, newname);
	return meta_link(c->m, a.ino, to, newname, NULL);
}

static int do_mkdir(struct child *c)
{
	uint64_t dir = pick_dir(c);
	const char *name = pick_name(c);
	struct meta_attr a;
	int rc;

	g_snprintf(c->what, sizeof(c->what), "mkdir(%" G_GUINT64_FORMAT "/%s)", dir, name);
	rc = meta_mkdir(c->m, dir, name, 0755, 1, 2, &a);
	if (rc == 0)
		pool_add(c, a.ino);
	return rc;
}

static int do_rmdir(struct child *c)
{
	uint64_t dir = pick_dir(c);
	const char *name = pick_name(c);

	g_snprintf(c->what, sizeof(c->what), "rmdir(%" G_GUINT64_FORMAT "/%s)", dir, name);
	return meta_rmdir(c->m, dir, name);
}

static int pool_collect(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	struct child *c = arg;

	(void)name;
	(void)cookie;
	if (S_ISDIR(mode))
		pool_add(c, ino);
	return 0;
}

/* Rebuilds the directory pool breadth-first from the root, so that this
 * child also moves directories the other one made, and deep ones. A
 * directory removed meanwhile is skipped; any other error is returned. */
static int do_readdir_walk(struct child *c)
{
	int result = 0;

	g_array_set_size(c->dirs, 0);
	pool_add(c, ROOT);
	for (guint i = 0; i < c->dirs->len; i++) {
		uint64_t dir = g_array_index(c->dirs, uint64_t, i);
		int rc;

		g_snprintf(c->what, sizeof(c->what), "readdir(%" G_GUINT64_FORMAT ")", dir);
		/* one page: a pool is a sample, not a listing */
		rc = meta_readdir(c->m, dir, 0, READDIR_PAGE, pool_collect, c);
		if (rc == -ENOENT)
			result = rc;
		else if (rc < 0)
			return rc;
	}
	return result;
}

/* A failed open keeps the old connection, so the run goes on. */
static int do_reopen(struct child *c)
{
	struct meta *m;
	int rc;

	g_snprintf(c->what, sizeof(c->what), "meta_open(%s)", c->url);
	rc = meta_open(c->url, &m);
	if (rc == 0) {
		meta_close(c->m);
		c->m = m;
	}
	return rc;
}

static int run_op(struct child *c, enum op op)
{
	switch (op) {
	case OP_RENAME:
		return do_rename(c, 0);
	case OP_RENAME_NOREPLACE:
		return do_rename(c, META_RENAME_NOREPLACE);
	case OP_EXCHANGE:
		return do_rename(c, META_RENAME_EXCHANGE);
	case OP_MOVE_DIR:
		return do_move_dir(c);
	case OP_CREATE:
		return do_create(c);
	case OP_UNLINK:
		return do_unlink(c);
	case OP_LINK:
		return do_link(c);
	case OP_MKDIR:
		return do_mkdir(c);
	case OP_RMDIR:
		return do_rmdir(c);
	case OP_READDIR:
		return do_readdir_walk(c);
	case OP_REOPEN:
		return do_reopen(c);
	case OP_COUNT:
		break;
	}
	g_assert_not_reached();
}

static void record(struct child *c, enum op op, int rc, unsigned index)
{
	struct child_report *rep = c->rep;

	if (rc == 0) {
		rep->ok[op]++;
	} else if (rc < 0 && -rc < ERRNO_SLOTS && errno_allowed(op, -rc)) {
		rep->refused[op][-rc]++;
	} else {
		rep->wrong++;
		fprintf(stderr, "child %u (seed %u) op #%u: %s returned %d (%s)\n", c->id,
			rep->seed, index, c->what, rc, rc < 0 ? g_strerror(-rc) : "positive");
	}
}

/* Waits until the parent closes the write end: both children start together. */
static void wait_for_start(int fd)
{
	char byte;

	while (read(fd, &byte, 1) < 0 && errno == EINTR)
		;
}

/* One child's whole life; returns its exit status (0: every call behaved). */
static int child_main(const char *url, unsigned id, int start_fd, struct child_report *rep)
{
	struct child c = {.id = id, .url = url, .rep = rep};
	gint64 deadline;
	int rc = meta_open(url, &c.m);

	if (rc < 0) {
		fprintf(stderr, "child %u: meta_open: %s\n", id, g_strerror(-rc));
		return 2;
	}
	c.rng = g_rand_new_with_seed(rep->seed);
	c.dirs = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	wait_for_start(start_fd);
	rep->start_us = g_get_monotonic_time();
	deadline = rep->start_us + CHILD_SECONDS * G_USEC_PER_SEC;
	record(&c, OP_READDIR, do_readdir_walk(&c), 0);
	for (unsigned i = 1; i < OPS_PER_CHILD && g_get_monotonic_time() < deadline; i++) {
		enum op op = pick_op(&c);

		record(&c, op, run_op(&c, op), i);
		rep->ops = i + 1;
	}
	rep->end_us = g_get_monotonic_time();
	meta_close(c.m);
	g_array_free(c.dirs, TRUE);
	g_rand_free(c.rng);
	return rep->wrong ? 1 : 0;
}

/* ---- the parent ---- */

/* Directories inside each other and files with several links, under the
 * same names the children use. */
static void tree_build(const char *url)
{
	struct meta *m;

	assert_int_equal(meta_open(url, &m), 0);
	uint64_t a = test_mkdir_ok(m, ROOT, "a"), b = test_mkdir_ok(m, ROOT, "b");
	uint64_t ab = test_mkdir_ok(m, a, "b"), abc = test_mkdir_ok(m, ab, "c");
	uint64_t c = test_create_ok(m, ROOT, "c");

	test_mkdir_ok(m, b, "a");
	test_mkdir_ok(m, ROOT, "d");
	test_mkdir_ok(m, abc, "a");
	test_create_ok(m, a, "d");
	test_create_ok(m, b, "e");
	link_ok(m, c, ab, "f");
	link_ok(m, c, abc, "e");
	meta_close(m); /* no connection may be open across fork() */
}

static guint32 base_seed(void)
{
	const char *env = getenv("SHARDFS_SEED");

	return env ? (guint32)strtoul(env, NULL, 0) : (guint32)g_get_real_time();
}

static void print_refusals(const struct child_report *reps, enum op op)
{
	for (int e = 1; e < ERRNO_SLOTS; e++) {
		unsigned n = 0;

		for (int i = 0; i < CHILDREN; i++)
			n += reps[i].refused[op][e];
		if (n)
			printf(" %s %u", strerrorname_np(e), n);
	}
}

/* How long all children ran at the same time: a run without overlap
 * would prove nothing. */
static double overlap_seconds(const struct child_report *reps)
{
	gint64 start = reps[0].start_us, end = reps[0].end_us;

	for (int i = 1; i < CHILDREN; i++) {
		start = MAX(start, reps[i].start_us);
		end = MIN(end, reps[i].end_us);
	}
	return end > start ? (double)(end - start) / G_USEC_PER_SEC : 0;
}

static void print_reports(const struct child_report *reps)
{
	for (int i = 0; i < CHILDREN; i++)
		printf("child %d seed %u: %u ops in %.2f s, %u wrong\n", i, reps[i].seed,
		       reps[i].ops, (double)(reps[i].end_us - reps[i].start_us) / G_USEC_PER_SEC,
		       reps[i].wrong);
	printf("all children running for %.2f s\n", overlap_seconds(reps));
	for (int op = 0; op < OP_COUNT; op++) {
		unsigned ok = 0;

		for (int i = 0; i < CHILDREN; i++)
			ok += reps[i].ok[op];
		printf("  %-17s ok %5u, refused:", kinds[op].name, ok);
		print_refusals(reps, (enum op)op);
		printf("\n");
	}
	fflush(stdout);
}

/* Reaps the children that ended (their pid becomes 0); how many still run. */
static unsigned reap(pid_t *pids, int *status)
{
	unsigned running = 0;

	for (int i = 0; i < CHILDREN; i++) {
		pid_t got = pids[i] ? waitpid(pids[i], &status[i], WNOHANG) : 0;

		assert_true(got >= 0);
		if (got == pids[i])
			pids[i] = 0;
		running += pids[i] != 0;
	}
	return running;
}

/* Every write is one transaction, so every state the children commit must
 * be sound, not only the last: samples them with meta_check until both
 * ended. Returns the first report that was not clean, or NULL. */
static char *check_while_running(const char *url, pid_t *pids, int *status, unsigned *checks)
{
	struct meta *m;
	char *bad = NULL;

	assert_int_equal(meta_open(url, &m), 0); /* opened after the fork, the parent's own */
	do {
		char *report = NULL;

		if (meta_check(m, &report) != 0 && !bad)
			bad = g_steal_pointer(&report);
		g_free(report);
		(*checks)++;
		g_usleep(20000); /* leave the two CPUs mostly to the children */
	} while (reap(pids, status));
	meta_close(m);
	return bad;
}

/* Forks the children, lets them go at once, checks the database while
 * they run and waits for both. */
static void run_children(const char *url, struct child_report *reps)
{
	pid_t pids[CHILDREN];
	int start[2], status[CHILDREN];
	unsigned checks = 0;
	char *bad;

	assert_int_equal(pipe(start), 0);
	fflush(NULL); /* or the children would print the parent's buffers again */
	for (int i = 0; i < CHILDREN; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			close(start[1]);
			_exit(child_main(url, (unsigned)i, start[0], &reps[i]));
		}
	}
	close(start[0]);
	close(start[1]);
	bad = check_while_running(url, pids, status, &checks);
	print_reports(reps);
	printf("meta_check while running: %u runs, %s\n", checks, bad ? "NOT CLEAN" : "all clean");
	if (bad)
		fail_freeing("meta_check while the children ran", bad);
	for (int i = 0; i < CHILDREN; i++)
		if (!WIFEXITED(status[i]) || WEXITSTATUS(status[i]) != 0)
			fail_msg("child %d ended with status %#x", i, status[i]);
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

static void tree_check(struct meta *m)
{
	char *problems = tree_problems(m);

	if (problems)
		fail_freeing("the walk from the root finds", problems);
}

static void check_clean(struct meta *m)
{
	char *report = NULL;
	int rc = meta_check(m, &report);

	if (rc != 0)
		fail_freeing("meta_check is not clean", report);
	g_free(report);
}

/* Two processes renaming, exchanging, linking, creating and removing the
 * same names at once leave a namespace that meta_check and a walk from the
 * root find sound, and no call fails outside what POSIX allows. */
static void test_two_processes_conflict(void **state)
{
	struct fx *f = *state;
	struct child_report *reps;
	guint32 seed = base_seed();

	meta_close(f->m);
	f->m = NULL;
	tree_build(f->url);
	reps = mmap(NULL, sizeof(*reps) * CHILDREN, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(reps != MAP_FAILED);
	memset(reps, 0, sizeof(*reps) * CHILDREN);
	for (int i = 0; i < CHILDREN; i++)
		reps[i].seed = seed + (guint32)i;
	printf("seed %u\n", seed);
	run_children(f->url, reps);
	munmap(reps, sizeof(*reps) * CHILDREN);
	assert_int_equal(meta_open(f->url, &f->m), 0);
	check_clean(f->m);
	tree_check(f->m);
}

/* ---- meta_check against damage done behind the engine's back ---- */

/* The damage is written in SQLite's words; PostgreSQL's for its three
 * blob forms: CAST(... AS BLOB), x'HEX' and zeroblob(16). */
static char *pg_words(const char *text)
{
	GString *out = g_string_new(NULL);

	for (const char *p = text; *p;) {
		if (g_str_has_prefix(p, " AS BLOB)")) {
			g_string_append(out, " AS BYTEA)");
			p += strlen(" AS BLOB)");
		} else if (g_str_has_prefix(p, "zeroblob(16)")) {
			g_string_append(out, "decode(repeat('00', 16), 'hex')");
			p += strlen("zeroblob(16)");
		} else if ((*p == 'x' || *p == 'X') && p[1] == '\'' && (p == text || !g_ascii_isalnum(p[-1]))) {
			const char *end = strchr(p + 2, '\'');

			g_string_append_printf(out, "decode('%.*s', 'hex')", (int)(end - p - 2), p + 2);
			p = end + 1;
		} else {
			g_string_append_c(out, *p++);
		}
	}
	return g_string_free(out, FALSE);
}

static void raw_exec(const struct fx *f, const char *text)
{
	char *sql = test_meta_is_pg() ? pg_words(text) : g_strdup(text);

	test_meta_raw_exec(f->url, sql);
	g_free(sql);
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
	int rc = meta_check(m, &report);

	if (rc != -EUCLEAN || !report || !strstr(report, problem)) {
		print_message("meta_check returned %d, expected %d naming \"%s\"\n", rc, -EUCLEAN,
			      problem);
		fail_freeing("its report", report);
	}
	g_free(report);
}

/* A sound namespace with links and nested directories checks clean, with
 * an empty report. */
static void test_check_sound(void **state)
{
	struct fx *f = *state;
	uint64_t d = test_mkdir_ok(f->m, ROOT, "d"), file = test_create_ok(f->m, d, "f");
	char *report = NULL;

	test_mkdir_ok(f->m, d, "sub");
	link_ok(f->m, file, ROOT, "g");
	assert_int_equal(meta_check(f->m, &report), 0);
	assert_string_equal(report, "");
	g_free(report);
}

/* An entry whose inode row is gone is reported. */
static void test_check_dangling_entry(void **state)
{
	struct fx *f = *state;
	uint64_t file = test_create_ok(f->m, ROOT, "f");

	raw_execf(f, "DELETE FROM inodes WHERE ino = %" G_GUINT64_FORMAT, file);
	assert_check_names(f->m, "entries pointing to no inode");
}

/* A file's link count that disagrees with its entries is reported. */
static void test_check_file_nlink(void **state)
{
	struct fx *f = *state;
	uint64_t file = test_create_ok(f->m, ROOT, "f");

	link_ok(f->m, file, ROOT, "g");
	raw_execf(f, "UPDATE inodes SET nlink = 3 WHERE ino = %" G_GUINT64_FORMAT, file);
	assert_check_names(f->m, "files whose link count differs from their entries");
}

/* A directory's link count that ignores a subdirectory is reported. */
static void test_check_dir_nlink(void **state)
{
	struct fx *f = *state;
	uint64_t d = test_mkdir_ok(f->m, ROOT, "d");

	test_mkdir_ok(f->m, d, "sub");
	raw_execf(f, "UPDATE inodes SET nlink = 2 WHERE ino = %" G_GUINT64_FORMAT, d);
	assert_check_names(f->m, "directories whose link count is not 2 + subdirectories");
}

/* A directory with a second entry (a hard-linked directory) is reported. */
static void test_check_dir_two_entries(void **state)
{
	struct fx *f = *state;
	uint64_t d = test_mkdir_ok(f->m, ROOT, "d");

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
	uint64_t a = test_mkdir_ok(f->m, ROOT, "a"), b = test_mkdir_ok(f->m, a, "b");

	raw_detach_cycle(f, a, b);
	assert_check_names(f->m, "inodes neither reachable from the root nor open");
}

/* Inline data left by a removed file, next to parts, or longer than its
 * file is reported. */
static void test_check_inline_data(void **state)
{
	struct fx *f = *state;
	uint64_t a = test_create_ok(f->m, ROOT, "a"), b = test_create_ok(f->m, ROOT, "b");

	assert_int_equal(meta_commit_inline(f->m, a, "abc", 3, NULL, false), 0);
	raw_exec(f, "INSERT INTO inline_data (ino, data) VALUES (9999, x'00')");
	assert_check_names(f->m, "inline data of no regular file");
	raw_exec(f, "DELETE FROM inline_data WHERE ino = 9999");
	raw_execf(f, "UPDATE inodes SET size = 2 WHERE ino = %" G_GUINT64_FORMAT, a);
	assert_check_names(f->m, "inline data longer than its file");
	raw_execf(f, "UPDATE inodes SET size = 3 WHERE ino = %" G_GUINT64_FORMAT, a);
	assert_int_equal(meta_check(f->m, NULL), 0);
	raw_execf(f,
		  "INSERT INTO inline_data (ino, data) VALUES (%" G_GUINT64_FORMAT ", x'00');"
		  " INSERT INTO parts (ino, idx, length, checksum, k, m, nodes, object_id)"
		  " VALUES (%" G_GUINT64_FORMAT ", 0, 1, zeroblob(16), 0, 0, x'', zeroblob(16))",
		  b, b);
	assert_check_names(f->m, "files with both inline data and parts");
}

/* Damage below the SQL level (an index that no longer matches its table)
 * is caught by SQLite's integrity_check. */
static void test_check_broken_index(void **state)
{
	struct fx *f = *state;
	char name[16];

	if (test_meta_is_pg())
		skip(); /* a server keeps its indexes out of its clients' reach */
	for (int i = 0; i < 20; i++) {
		g_snprintf(name, sizeof(name), "file%02d", i);
		test_create_ok(f->m, ROOT, name);
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

/* A check that cannot run is a failed check, not a passed one: with the
 * open_files table gone the reachability query cannot run, and the
 * detached directories it exists to find must still fail meta_check. */
static void test_check_query_that_cannot_run(void **state)
{
	struct fx *f = *state;
	uint64_t a = test_mkdir_ok(f->m, ROOT, "a"), b = test_mkdir_ok(f->m, a, "b");
	char *report = NULL;
	int rc;

	raw_detach_cycle(f, a, b);
	raw_exec(f, "DROP TABLE open_files");
	rc = meta_check(f->m, &report);
	g_free(report); /* empty when it passed */
	if (rc == 0)
		fail_msg("meta_check passed a namespace it could not check");
}

/* An entry naming the root makes a cycle through it, even with the
 * root's link count raised to match. */
static void test_check_entry_naming_root(void **state)
{
	struct fx *f = *state;

	test_mkdir_ok(f->m, ROOT, "d");
	raw_exec(f, "INSERT INTO dentries (parent, name, ino) VALUES (1, CAST('loop' AS BLOB), 1);"
		    " UPDATE inodes SET nlink = nlink + 1 WHERE ino = 1");
	assert_check_names(f->m, "directories with other than one entry");
}

/* The walk the conflict test relies on finds a wrong file link count, a
 * directory with two entries and a subtree cut off from the root. */
static void test_walk_finds_damage(void **state)
{
	struct fx *f = *state;
	uint64_t file = test_create_ok(f->m, ROOT, "f"), d = test_mkdir_ok(f->m, ROOT, "d");
	uint64_t x = test_mkdir_ok(f->m, ROOT, "x");
	char *problems;

	test_mkdir_ok(f->m, x, "y");
	raw_execf(f, "UPDATE inodes SET nlink = 5 WHERE ino = %" G_GUINT64_FORMAT, file);
	raw_execf(f,
		  "INSERT INTO dentries (parent, name, ino) VALUES (1, CAST('again' AS BLOB), "
		  "%" G_GUINT64_FORMAT ")",
		  d);
	raw_execf(f, "DELETE FROM dentries WHERE ino = %" G_GUINT64_FORMAT, x);
	problems = tree_problems(f->m);
	if (!problems || !strstr(problems, ": nlink 5, 1 entries") ||
	    !strstr(problems, "reached twice") ||
	    !strstr(problems, "5 inodes, 3 in the tree")) /* x and y cut off */
		fail_freeing("the walk misses some of the damage", problems);
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
		T(test_check_inline_data),
		T(test_check_broken_index),
		T(test_check_query_that_cannot_run),
		T(test_check_entry_naming_root),
		T(test_walk_finds_damage),
		T(test_two_processes_conflict),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
