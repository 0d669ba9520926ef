/*
 * test_meta_model.c - a randomized model test of the metadata engine:
 * tens of thousands of namespace operations applied both to the engine
 * and to a small in-memory POSIX tree, comparing every result.
 *
 * The model encodes Linux's rules, including which error wins when several
 * apply, as path resolution and the system calls order them: the parent
 * first (ENOENT, ENOTDIR), then "." and "..", then the name itself, then
 * the rules of the operation (rename in the order of do_renameat2 and
 * vfs_rename). Where the kernel would walk a path but the engine takes one
 * name, the engine's documented choices stand: an empty name is ENOENT, a
 * name with '/' EINVAL, and rename of "." or ".." EINVAL (as POSIX says;
 * Linux says EBUSY). create without excl returns an existing regular file
 * as meta.h documents, and a stream or symlink alike: the kernel follows
 * symlinks and opens existing files before it asks a filesystem to create.
 *
 * Names come from a small pool so that collisions and errors are frequent;
 * parents are mostly live directories, sometimes other files (ENOTDIR) or
 * removed inodes (ENOENT: the engine never reuses inode numbers). Each
 * operation checks its result and the attributes of what it touched; the
 * whole tree, the inode count and meta_check() are compared every
 * COMPARE_EVERY operations and at the end.
 *
 * SHARDFS_MODEL_SEED replays a run, SHARDFS_MODEL_OPS changes its length,
 * SHARDFS_MODEL_TRACE=1 prints every operation.
 */
#include "store/meta/meta.h"
#include "fixture.h"
#include "meta_fixture.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define DEFAULT_SEED 20261123u
#define DEFAULT_OPS 20000l
#define COMPARE_EVERY 1000l
#define POOL_NAMES 8
#define XATTR_NAMES 3
#define VALUE_MAX 8
/* beyond this many inodes, removals get more frequent */
#define LIVE_TARGET 200u
/* a directory holds at most the pool's names and the 255-byte one, so a
 * listing that needs more pages than this does not end */
#define MAX_PAGES (2 * POOL_NAMES + 4)

/* ---- the model ---- */

struct node {
	uint64_t ino;	     /* the engine's number for this inode */
	uint32_t type;	     /* S_IFMT bits */
	uint32_t links;	     /* entries naming it (non-directories) */
	uint64_t size;	     /* regular files and symlinks */
	char *target;	     /* symlinks */
	GHashTable *entries; /* directories: name -> struct node */
	struct node *parent; /* directories; the root is its own */
	GHashTable *xattrs;  /* name -> GBytes */
	bool dead;
};

struct model {
	struct node *root;
	GHashTable *by_ino; /* engine inode number -> node, removed ones too */
	GPtrArray *live;    /* every live node */
	GPtrArray *dirs;    /* live directories */
	GPtrArray *dead;    /* removed nodes, to ask the engine about */
};

struct run {
	struct meta *m;
	char *dir, *url;
	struct model model;
	GRand *rng;
	guint32 seed;
	long op;
	bool trace;
	char desc[160];	   /* the operation under way, for failure messages */
	GHashTable *stats; /* "op outcome" -> count, of the random operations */
	bool comparing;	   /* in a whole-tree comparison: not counted */
};

static char long_name[META_NAME_MAX + 2]; /* one byte too long */
static char max_name[META_NAME_MAX + 1];  /* exactly as long as allowed */
static const char *const pool[POOL_NAMES] = {"a", "b", "c", "d", "e", "f", "g", "h"};
static const char *const odd_names[] = {"", ".", "..", "x/y", long_name, max_name};
/* trusted.* is allowed on every file type to uid 0; the VFS keeps user.*
 * off symlinks and FIFOs before a filesystem sees the call. */
static const char *const xattr_pool[XATTR_NAMES] = {"trusted.a", "trusted.b", "trusted.c"};

static bool is_dir(const struct node *n)
{
	return n->type == S_IFDIR;
}

static struct node *node_new(struct model *md, uint64_t ino, uint32_t type)
{
	struct node *n = g_new0(struct node, 1);

	n->ino = ino;
	n->type = type;
	n->xattrs =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_bytes_unref);
	if (type == S_IFDIR) {
		n->entries = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		g_ptr_array_add(md->dirs, n);
	}
	g_hash_table_insert(md->by_ino, &n->ino, n);
	g_ptr_array_add(md->live, n);
	return n;
}

static void node_free(struct node *n)
{
	if (n->entries)
		g_hash_table_unref(n->entries);
	g_hash_table_unref(n->xattrs);
	g_free(n->target);
	g_free(n);
}

static void model_init(struct model *md)
{
	md->by_ino =
	    g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, (GDestroyNotify)node_free);
	md->live = g_ptr_array_new();
	md->dirs = g_ptr_array_new();
	md->dead = g_ptr_array_new();
	md->root = node_new(md, META_ROOT_INO, S_IFDIR);
	md->root->parent = md->root;
}

static void model_fini(struct model *md)
{
	g_ptr_array_free(md->live, TRUE);
	g_ptr_array_free(md->dirs, TRUE);
	g_ptr_array_free(md->dead, TRUE);
	g_hash_table_destroy(md->by_ino);
}

static struct node *child(const struct node *dir, const char *name)
{
	return g_hash_table_lookup(dir->entries, name);
}

static uint32_t nlink_of(const struct node *n)
{
	GHashTableIter it;
	gpointer v;
	uint32_t subdirs = 0;

	if (!is_dir(n))
		return n->links;
	g_hash_table_iter_init(&it, n->entries);
	while (g_hash_table_iter_next(&it, NULL, &v))
		subdirs += is_dir(v);
	return 2 + subdirs;
}

static void node_kill(struct model *md, struct node *n)
{
	n->dead = true;
	g_ptr_array_remove_fast(md->live, n);
	if (is_dir(n))
		g_ptr_array_remove_fast(md->dirs, n);
	g_ptr_array_add(md->dead, n);
}

static void attach(struct node *dir, const char *name, struct node *n)
{
	g_hash_table_insert(dir->entries, g_strdup(name), n);
	if (is_dir(n))
		n->parent = dir;
	else
		n->links++;
}

/* Takes entry name out of dir; its inode goes with its last link (no
 * file is open in this test). */
static void detach(struct model *md, struct node *dir, const char *name)
{
	struct node *n = child(dir, name);

	g_hash_table_remove(dir->entries, name);
	if (is_dir(n) || --n->links == 0)
		node_kill(md, n);
}

/* dir is n or one of n's ancestors. */
static bool contains(const struct node *dir, const struct node *n)
{
	for (;; n = n->parent) {
		if (n == dir)
			return true;
		if (n->parent == n)
			return false;
	}
}

/* ---- the rules ---- */

static bool is_dot(const char *name)
{
	return !strcmp(name, ".") || !strcmp(name, "..");
}

/* What the engine says of a name it cannot take, once the parent is known
 * to be a directory. */
static int name_error(const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return -ENOENT;
	if (n > META_NAME_MAX)
		return -ENAMETOOLONG;
	return strchr(name, '/') ? -EINVAL : 0;
}

/* Path resolution of a parent: it must exist and be a directory. */
static int dir_error(const struct node *dir)
{
	return dir->dead ? -ENOENT : is_dir(dir) ? 0 : -ENOTDIR;
}

static int model_lookup(const struct node *dir, const char *name, struct node **out)
{
	int rc = dir_error(dir);

	if (rc == 0 && is_dot(name)) {
		*out = strcmp(name, ".") ? dir->parent : (struct node *)dir;
		return 0;
	}
	if (rc == 0)
		rc = name_error(name);
	if (rc == 0)
		*out = child(dir, name);
	return rc ? rc : *out ? 0 : -ENOENT;
}

/* open(2) with O_CREAT: *existing is set when an existing file is opened. */
static int model_create(const struct node *dir, const char *name, bool excl, struct node **existing)
{
	int rc = dir_error(dir);

	*existing = NULL;
	if (rc == 0 && is_dot(name))
		return excl ? -EEXIST : -EISDIR; /* "dir/." names a directory */
	if (rc == 0)
		rc = name_error(name);
	if (rc < 0)
		return rc;
	*existing = child(dir, name);
	if (*existing && (excl || is_dir(*existing)))
		return excl ? -EEXIST : -EISDIR;
	return 0;
}

/* mkdir, mknod, symlink: filename_create(). */
static int model_make(const struct node *dir, const char *name)
{
	int rc = dir_error(dir);

	if (rc == 0 && is_dot(name))
		rc = -EEXIST;
	if (rc == 0)
		rc = name_error(name);
	if (rc == 0 && child(dir, name))
		rc = -EEXIST;
	return rc;
}

/* link(2): the source is resolved first, then the new name; a directory
 * is refused last, by vfs_link(). */
static int model_link(const struct node *src, const struct node *dir, const char *name)
{
	if (src->dead)
		return -ENOENT;
	int rc = model_make(dir, name);

	return rc ? rc : is_dir(src) ? -EPERM : 0;
}

static int model_unlink(const struct node *dir, const char *name)
{
	int rc = dir_error(dir);
	struct node *n;

	if (rc == 0 && is_dot(name))
		rc = -EISDIR;
	if (rc == 0)
		rc = name_error(name);
	if (rc < 0)
		return rc;
	n = child(dir, name);
	return !n ? -ENOENT : is_dir(n) ? -EISDIR : 0;
}

static int model_rmdir(const struct node *dir, const char *name)
{
	int rc = dir_error(dir);
	struct node *n;

	if (rc == 0 && is_dot(name))
		rc = strcmp(name, ".") ? -ENOTEMPTY : -EINVAL;
	if (rc == 0)
		rc = name_error(name);
	if (rc < 0)
		return rc;
	n = child(dir, name);
	if (!n)
		return -ENOENT;
	if (!is_dir(n))
		return -ENOTDIR;
	return g_hash_table_size(n->entries) ? -ENOTEMPTY : 0;
}

enum plan { PLAN_NOTHING, PLAN_MOVE, PLAN_EXCHANGE };

struct rename_case {
	struct node *from, *to;
	const char *name, *newname;
	unsigned flags;
	struct node *src, *dst; /* dst NULL if newname is free */
	enum plan plan;
	const char *why; /* which rule decided, for the statistics */
};

static int decided(struct rename_case *c, const char *why, int rc)
{
	c->why = why;
	return rc;
}

/* The rules once both entries are looked up, in the kernel's order. */
static int rename_rules(struct rename_case *c)
{
	bool exchange = c->flags & META_RENAME_EXCHANGE;

	if (c->dst && (c->flags & META_RENAME_NOREPLACE))
		return decided(c, "noreplace over an entry", -EEXIST);
	if (!c->dst && exchange)
		return decided(c, "exchange with nothing", -ENOENT);
	if (is_dir(c->src) && contains(c->src, c->to))
		return decided(c, "into its own subtree", -EINVAL);
	if (c->dst && is_dir(c->dst) && contains(c->dst, c->from))
		return decided(c, "over an ancestor", exchange ? -EINVAL : -ENOTEMPTY);
	if (c->dst == c->src)
		return decided(c, "onto the same inode", 0);
	c->plan = exchange ? PLAN_EXCHANGE : PLAN_MOVE;
	if (exchange)
		return decided(c, "exchange", 0);
	if (!c->dst)
		return decided(c, "move", 0);
	if (is_dir(c->src) && !is_dir(c->dst))
		return decided(c, "dir over non-dir", -ENOTDIR);
	if (!is_dir(c->src) && is_dir(c->dst))
		return decided(c, "non-dir over dir", -EISDIR);
	if (is_dir(c->dst) && g_hash_table_size(c->dst->entries))
		return decided(c, "dir over non-empty dir", -ENOTEMPTY);
	return decided(c, is_dir(c->dst) ? "dir over empty dir" : "replace non-dir", 0);
}

static int model_rename(struct rename_case *c)
{
	unsigned both = META_RENAME_NOREPLACE | META_RENAME_EXCHANGE;
	int rc;

	c->plan = PLAN_NOTHING;
	if ((c->flags & ~both) || c->flags == both)
		return decided(c, "bad flags", -EINVAL);
	rc = dir_error(c->from) ?: dir_error(c->to);
	if (rc == 0 && (is_dot(c->name) || is_dot(c->newname)))
		return decided(c, "dot name", -EINVAL);
	if (rc == 0)
		rc = name_error(c->name);
	if (rc == 0 && !(c->src = child(c->from, c->name)))
		rc = -ENOENT;
	if (rc == 0)
		rc = name_error(c->newname);
	if (rc < 0)
		return rc;
	c->dst = child(c->to, c->newname);
	return rename_rules(c);
}

static void apply_rename(struct model *md, const struct rename_case *c)
{
	if (c->plan == PLAN_EXCHANGE) {
		g_hash_table_insert(c->from->entries, g_strdup(c->name), c->dst);
		g_hash_table_insert(c->to->entries, g_strdup(c->newname), c->src);
		if (is_dir(c->src))
			c->src->parent = c->to;
		if (is_dir(c->dst))
			c->dst->parent = c->from;
	} else if (c->plan == PLAN_MOVE) {
		/* the entry moves: the link count of a non-directory stays */
		g_hash_table_remove(c->from->entries, c->name);
		if (c->dst)
			detach(md, c->to, c->newname);
		g_hash_table_insert(c->to->entries, g_strdup(c->newname), c->src);
		if (is_dir(c->src))
			c->src->parent = c->to;
	}
}

/* ---- reporting ---- */

static void describe(struct run *r, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void describe(struct run *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_vsnprintf(r->desc, sizeof(r->desc), fmt, ap);
	va_end(ap);
	if (r->trace)
		printf("%ld: %s\n", r->op, r->desc);
}

static void mismatch(struct run *r, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void mismatch(struct run *r, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "meta model: seed %u, operation %ld: %s: ", r->seed, r->op, r->desc);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	fail();
}

static const char *err_name(int rc)
{
	return rc == 0 ? "ok" : rc > 0 ? "a length" : strerrorname_np(-rc) ?: "?";
}

/* A short form of a name for messages. */
static const char *shown(const char *name)
{
	if (name == long_name)
		return "<256 bytes>";
	return name == max_name ? "<255 bytes>" : name;
}

static void count(struct run *r, const char *op, const char *outcome)
{
	if (r->comparing)
		return;
	char *key = g_strdup_printf("%-9s %s", op, outcome);
	gpointer n = g_hash_table_lookup(r->stats, key);

	g_hash_table_insert(r->stats, key, GSIZE_TO_POINTER(GPOINTER_TO_SIZE(n) + 1));
}

/* The engine's result must be the model's. */
static void expect_rc(struct run *r, const char *op, int want, int got)
{
	if (got != want)
		mismatch(r, "engine returns %d (%s), the model %d (%s)", got, err_name(got), want,
			 err_name(want));
	count(r, op, err_name(want));
}

static void expect_attr(struct run *r, const struct node *n, const struct meta_attr *a)
{
	if (a->ino != n->ino)
		mismatch(r, "inode %" PRIu64 ", the model's is %" PRIu64, a->ino, n->ino);
	if ((a->mode & S_IFMT) != n->type)
		mismatch(r, "inode %" PRIu64 " has type 0%o, the model 0%o", n->ino,
			 a->mode & S_IFMT, n->type);
	if (a->nlink != nlink_of(n))
		mismatch(r, "inode %" PRIu64 " has nlink %u, the model %u", n->ino, a->nlink,
			 nlink_of(n));
	if (!is_dir(n) && a->size != n->size)
		mismatch(r, "inode %" PRIu64 " has size %" PRIu64 ", the model %" PRIu64, n->ino,
			 a->size, n->size);
}

/* getattr of n agrees with the model, or is ENOENT for a removed inode. */
static void expect_node(struct run *r, const struct node *n)
{
	struct meta_attr a;
	int rc = meta_getattr(r->m, n->ino, &a);

	if (rc != (n->dead ? -ENOENT : 0))
		mismatch(r, "getattr of inode %" PRIu64 " returns %s, the model %s", n->ino,
			 err_name(rc), n->dead ? "ENOENT" : "ok");
	if (rc == 0)
		expect_attr(r, n, &a);
}

/* ---- picking arguments ---- */

static bool chance(struct run *r, double p)
{
	return g_rand_double(r->rng) < p;
}

static gpointer pick_from(struct run *r, GPtrArray *a)
{
	return g_ptr_array_index(a, g_rand_int_range(r->rng, 0, (gint32)a->len));
}

static const char *pick_name(struct run *r)
{
	if (chance(r, 0.04))
		return odd_names[g_rand_int_range(r->rng, 0, G_N_ELEMENTS(odd_names))];
	return pool[g_rand_int_range(r->rng, 0, POOL_NAMES)];
}

/* Mostly a name dir holds, so that operations on entries mostly find one. */
static const char *pick_entry_name(struct run *r, const struct node *dir)
{
	guint n;

	if (dir->dead || !is_dir(dir) || !g_hash_table_size(dir->entries) || chance(r, 0.35))
		return pick_name(r);
	gpointer *names = g_hash_table_get_keys_as_array(dir->entries, &n);
	const char *name = names[g_rand_int_range(r->rng, 0, (gint32)n)];

	g_free(names);
	return name; /* owned by dir->entries: use before changing dir */
}

/* Any inode: mostly a live one, sometimes a removed one. */
static struct node *pick_node(struct run *r)
{
	if (r->model.dead->len && chance(r, 0.04))
		return pick_from(r, r->model.dead);
	return pick_from(r, r->model.live);
}

/* A parent: mostly a live directory, sometimes anything else. */
static struct node *pick_parent(struct run *r)
{
	return chance(r, 0.9) ? pick_from(r, r->model.dirs) : pick_node(r);
}

/* ---- operations ---- */

static void op_lookup(struct run *r)
{
	struct node *dir = pick_parent(r), *want = NULL;
	const char *name = pick_entry_name(r, dir);
	struct meta_attr a;
	int rc = model_lookup(dir, name, &want);

	describe(r, "lookup %" PRIu64 "/%s", dir->ino, shown(name));
	expect_rc(r, "lookup", rc, meta_lookup(r->m, dir->ino, name, &a));
	if (rc == 0)
		expect_attr(r, want, &a);
}

static void op_getattr(struct run *r)
{
	struct node *n = pick_node(r);

	describe(r, "getattr %" PRIu64, n->ino);
	expect_node(r, n);
	count(r, "getattr", n->dead ? "ENOENT" : "ok");
}

/* A node the engine just made, entered in the model. */
static struct node *made(struct run *r, struct node *dir, const char *name, uint32_t type,
			 const struct meta_attr *a)
{
	struct node *n;

	if (g_hash_table_contains(r->model.by_ino, &a->ino))
		mismatch(r, "new inode %" PRIu64 " reuses a number", a->ino);
	n = node_new(&r->model, a->ino, type);
	attach(dir, name, n);
	return n;
}

static void op_create(struct run *r)
{
	struct node *dir = pick_parent(r), *existing;
	const char *name = pick_name(r);
	bool excl = chance(r, 0.5);
	struct meta_attr a;
	int rc = model_create(dir, name, excl, &existing);

	describe(r, "create %" PRIu64 "/%s%s", dir->ino, shown(name), excl ? " excl" : "");
	expect_rc(r, excl ? "create-x" : "create", rc,
		  meta_create(r->m, dir->ino, name, 0644, 0, 0, excl, &a));
	if (rc == 0)
		expect_attr(r, existing ? existing : made(r, dir, name, S_IFREG, &a), &a);
}

static int make_in_engine(struct run *r, uint32_t type, uint64_t dir, const char *name,
			  const char *target, struct meta_attr *a)
{
	if (type == S_IFDIR)
		return meta_mkdir(r->m, dir, name, 0755, 0, 0, a);
	if (type == S_IFLNK)
		return meta_symlink(r->m, dir, name, target, 0, 0, a);
	return meta_mknod(r->m, dir, name, META_S_IFSTREAM | 0644, 0, 0, a);
}

/* mkdir, symlink, or mknod of a stream. */
static void op_make(struct run *r, uint32_t type)
{
	static const char *const ops[] = {[0] = "mknod", [1] = "mkdir", [2] = "symlink"};
	const char *op = ops[(type == S_IFDIR) + 2 * (type == S_IFLNK)];
	struct node *dir = pick_parent(r), *n;
	const char *name = pick_name(r);
	char target[16];
	struct meta_attr a;
	int rc = model_make(dir, name);

	g_snprintf(target, sizeof(target), "t%d", g_rand_int_range(r->rng, 0, 100000));
	describe(r, "%s %" PRIu64 "/%s", op, dir->ino, shown(name));
	expect_rc(r, op, rc, make_in_engine(r, type, dir->ino, name, target, &a));
	if (rc < 0)
		return;
	n = made(r, dir, name, type, &a);
	if (type == S_IFLNK) {
		n->target = g_strdup(target);
		n->size = strlen(target);
	}
	expect_attr(r, n, &a);
}

static void op_link(struct run *r)
{
	struct node *src = pick_node(r), *dir = pick_parent(r);
	const char *name = pick_name(r);
	struct meta_attr a;
	int rc = model_link(src, dir, name);

	describe(r, "link %" PRIu64 " to %" PRIu64 "/%s", src->ino, dir->ino, shown(name));
	expect_rc(r, "link", rc, meta_link(r->m, src->ino, dir->ino, name, &a));
	if (rc < 0)
		return;
	attach(dir, name, src);
	expect_attr(r, src, &a);
}

/* unlink or rmdir of dir/name */
static void remove_entry(struct run *r, struct node *dir, const char *entry, bool rmdir)
{
	char *name = g_strdup(entry); /* entry may be a key of dir->entries */
	int rc = rmdir ? model_rmdir(dir, name) : model_unlink(dir, name);
	struct node *victim;

	describe(r, "%s %" PRIu64 "/%s", rmdir ? "rmdir" : "unlink", dir->ino, shown(name));
	expect_rc(r, rmdir ? "rmdir" : "unlink", rc,
		  rmdir ? meta_rmdir(r->m, dir->ino, name) : meta_unlink(r->m, dir->ino, name));
	if (rc == 0) {
		victim = child(dir, name);
		detach(&r->model, dir, name);
		expect_node(r, victim);
		expect_node(r, dir);
	}
	g_free(name);
}

static void op_remove(struct run *r, bool rmdir)
{
	struct node *dir = pick_parent(r);

	remove_entry(r, dir, pick_entry_name(r, dir), rmdir);
}

/* Removes a leaf below a random directory, with the call its type asks
 * for: keeps the tree small, so that names collide. */
static void op_prune(struct run *r)
{
	struct node *dir = pick_from(r, r->model.dirs), *n;
	gpointer *names;
	guint count;

	while (g_hash_table_size(dir->entries)) {
		names = g_hash_table_get_keys_as_array(dir->entries, &count);
		const char *name = names[g_rand_int_range(r->rng, 0, (gint32)count)];

		g_free(names);
		n = child(dir, name);
		if (!is_dir(n) || !g_hash_table_size(n->entries)) {
			remove_entry(r, dir, name, is_dir(n));
			return;
		}
		dir = n;
	}
}

static unsigned pick_rename_flags(struct run *r)
{
	int p = g_rand_int_range(r->rng, 0, 100);

	if (p < 55)
		return 0;
	if (p < 70)
		return META_RENAME_NOREPLACE;
	if (p < 96)
		return META_RENAME_EXCHANGE;
	return p < 98 ? META_RENAME_NOREPLACE | META_RENAME_EXCHANGE : 1u << 3;
}

static void op_rename(struct run *r)
{
	struct rename_case c = {.from = pick_parent(r)};
	char *name = g_strdup(pick_entry_name(r, c.from)), *newname;
	int rc;

	c.to = chance(r, 0.08) ? c.from : pick_parent(r);
	newname = g_strdup(c.to == c.from && chance(r, 0.5) ? name : pick_entry_name(r, c.to));
	c.name = name;
	c.newname = newname;
	c.flags = pick_rename_flags(r);
	rc = model_rename(&c);
	describe(r, "rename %" PRIu64 "/%s to %" PRIu64 "/%s flags %u", c.from->ino, shown(name),
		 c.to->ino, shown(newname), c.flags);
	expect_rc(r, "rename", rc,
		  meta_rename(r->m, c.from->ino, name, c.to->ino, newname, c.flags));
	if (c.why)
		count(r, "rename", c.why);
	if (rc == 0) {
		apply_rename(&r->model, &c);
		expect_node(r, c.from);
		expect_node(r, c.to);
		expect_node(r, c.src);
		if (c.dst)
			expect_node(r, c.dst);
	}
	g_free(name);
	g_free(newname);
}

static void op_truncate(struct run *r)
{
	struct node *n = pick_node(r);
	struct meta_setattr set = {.mask = META_SET_SIZE};
	struct meta_attr a;
	/* A stream's size is the length its writers report. */
	bool sized = n->type == S_IFREG || n->type == META_S_IFSTREAM;
	int rc = n->dead ? -ENOENT : is_dir(n) ? -EISDIR : !sized ? -EINVAL : 0;

	set.size = (uint64_t)g_rand_int_range(r->rng, 0, 1 << 20);
	describe(r, "setattr size %" PRIu64 " of %" PRIu64, set.size, n->ino);
	expect_rc(r, "truncate", rc, meta_setattr(r->m, n->ino, &set, &a));
	if (rc < 0)
		return;
	n->size = set.size;
	expect_attr(r, n, &a);
}

struct listing {
	GHashTable *seen; /* name -> struct meta_attr (ino and mode) */
	uint64_t cookie;
	unsigned got; /* entries in the last page */
	bool repeated;
};

static int collect(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	struct listing *l = arg;
	struct meta_attr *a = g_new0(struct meta_attr, 1);

	a->ino = ino;
	a->mode = mode;
	l->repeated |= g_hash_table_contains(l->seen, name);
	g_hash_table_insert(l->seen, g_strdup(name), a);
	l->cookie = cookie;
	l->got++;
	return 0;
}

static void expect_listing(struct run *r, const struct node *dir, const struct listing *l)
{
	GHashTableIter it;
	gpointer name, n;

	if (l->repeated)
		mismatch(r, "readdir of %" PRIu64 " lists an entry twice", dir->ino);
	if (g_hash_table_size(l->seen) != g_hash_table_size(dir->entries))
		mismatch(r, "readdir of %" PRIu64 " lists %u entries, the model has %u", dir->ino,
			 g_hash_table_size(l->seen), g_hash_table_size(dir->entries));
	g_hash_table_iter_init(&it, dir->entries);
	while (g_hash_table_iter_next(&it, &name, &n)) {
		const struct meta_attr *a = g_hash_table_lookup(l->seen, name);
		const struct node *want = n;

		if (!a || a->ino != want->ino || (a->mode & S_IFMT) != want->type)
			mismatch(r, "readdir of %" PRIu64 " lists %s wrongly or not at all",
				 dir->ino, shown(name));
	}
}

/* Lists dir in pages of page entries; 0 or the engine's error. */
static int list_dir(struct run *r, const struct node *dir, unsigned page, struct listing *l)
{
	int rc, pages = 0;

	l->seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	l->cookie = 0;
	l->repeated = false;
	do {
		l->got = 0;
		rc = meta_readdir(r->m, dir->ino, l->cookie, page, collect, l);
		if (l->got > page)
			mismatch(r, "a readdir page of %u holds %u entries", page, l->got);
		if (++pages > MAX_PAGES)
			mismatch(r, "readdir of %" PRIu64 " does not end", dir->ino);
	} while (rc == 0 && l->got > 0);
	return rc;
}

static void compare_listing(struct run *r, const struct node *dir, unsigned page)
{
	struct listing l;
	int rc = dir_error(dir);

	expect_rc(r, page < 100 ? "readdir-p" : "readdir", rc, list_dir(r, dir, page, &l));
	if (rc == 0)
		expect_listing(r, dir, &l);
	g_hash_table_destroy(l.seen);
}

static void op_readdir(struct run *r)
{
	struct node *dir = pick_parent(r);
	unsigned page = chance(r, 0.5) ? 1000 : (unsigned)g_rand_int_range(r->rng, 1, 4);

	describe(r, "readdir %" PRIu64 " in pages of %u", dir->ino, page);
	compare_listing(r, dir, page);
}

static const char *pick_xattr(struct run *r)
{
	return xattr_pool[g_rand_int_range(r->rng, 0, XATTR_NAMES)];
}

static int model_setxattr(const struct node *n, const char *name, int flags)
{
	bool there = !n->dead && g_hash_table_contains(n->xattrs, name);

	if (n->dead)
		return -ENOENT;
	if (there && (flags & META_XATTR_CREATE))
		return -EEXIST;
	return !there && (flags & META_XATTR_REPLACE) ? -ENODATA : 0;
}

/* An inode, more often one that has xattrs, so that gets find some. */
static struct node *pick_xattr_node(struct run *r)
{
	struct node *n = pick_node(r);

	for (int i = 0; i < 8 && !g_hash_table_size(n->xattrs); i++)
		n = pick_node(r);
	return n;
}

static void op_setxattr(struct run *r)
{
	struct node *n = pick_xattr_node(r);
	const char *name = pick_xattr(r);
	int flags = g_rand_int_range(r->rng, 0, 4), rc = model_setxattr(n, name, flags);
	uint8_t value[VALUE_MAX];
	size_t len = (size_t)g_rand_int_range(r->rng, 0, VALUE_MAX + 1);

	for (size_t i = 0; i < len; i++)
		value[i] = (uint8_t)g_rand_int(r->rng);
	describe(r, "setxattr %" PRIu64 " %s, %zu bytes, flags %d", n->ino, name, len, flags);
	expect_rc(r, "setxattr", rc, meta_setxattr(r->m, n->ino, name, value, len, flags));
	if (rc == 0)
		g_hash_table_insert(n->xattrs, g_strdup(name), g_bytes_new(value, len));
}

/* getxattr(2): size 0 asks for the length; a short buffer is ERANGE. */
static int model_getxattr(const struct node *n, const char *name, size_t size, GBytes **value)
{
	if (n->dead)
		return -ENOENT;
	*value = g_hash_table_lookup(n->xattrs, name);
	if (!*value)
		return -ENODATA;
	if (size && g_bytes_get_size(*value) > size)
		return -ERANGE;
	return (int)g_bytes_get_size(*value);
}

static void expect_xattr(struct run *r, const struct node *n, const char *name, size_t size)
{
	uint8_t buf[VALUE_MAX];
	GBytes *value = NULL;
	int rc = model_getxattr(n, name, size, &value);

	expect_rc(r, "getxattr", rc, meta_getxattr(r->m, n->ino, name, size ? buf : NULL, size));
	if (rc > 0 && size && memcmp(buf, g_bytes_get_data(value, NULL), (size_t)rc))
		mismatch(r, "xattr %s of %" PRIu64 " holds other bytes", name, n->ino);
}

static void op_getxattr(struct run *r)
{
	struct node *n = pick_xattr_node(r);
	const char *name = pick_xattr(r);
	size_t size = (size_t)g_rand_int_range(r->rng, 0, VALUE_MAX + 1);

	describe(r, "getxattr %" PRIu64 " %s into %zu bytes", n->ino, name, size);
	expect_xattr(r, n, name, size);
}

/* ---- whole-tree comparison ---- */

static void expect_symlink(struct run *r, const struct node *n)
{
	char *target = NULL;
	int rc = meta_readlink(r->m, n->ino, &target);

	if (rc != 0 || strcmp(target, n->target))
		mismatch(r, "readlink of %" PRIu64 " returns %d \"%s\", the model \"%s\"", n->ino,
			 rc, target ? target : "", n->target);
	g_free(target);
}

static void expect_xattr_list(struct run *r, const struct node *n)
{
	char list[XATTR_NAMES * 16];
	int len = meta_listxattr(r->m, n->ino, list, sizeof(list));
	unsigned names = 0;

	if (len < 0)
		mismatch(r, "listxattr of %" PRIu64 " returns %s", n->ino, err_name(len));
	for (int at = 0; at < len; at += (int)strlen(list + at) + 1, names++)
		if (!g_hash_table_contains(n->xattrs, list + at))
			mismatch(r, "inode %" PRIu64 " has xattr %s, the model not", n->ino,
				 list + at);
	if (names != g_hash_table_size(n->xattrs))
		mismatch(r, "inode %" PRIu64 " has %u xattrs, the model %u", n->ino, names,
			 g_hash_table_size(n->xattrs));
	for (int i = 0; i < XATTR_NAMES; i++)
		expect_xattr(r, n, xattr_pool[i], VALUE_MAX);
}

static void compare_node(struct run *r, const struct node *n, GHashTable *seen)
{
	if (!g_hash_table_add(seen, (gpointer)n))
		return; /* another link of a file already compared */
	expect_node(r, n);
	if (n->type == S_IFLNK)
		expect_symlink(r, n);
	expect_xattr_list(r, n);
}

static void compare_dir(struct run *r, const struct node *dir, GHashTable *seen)
{
	struct meta_attr a;
	GHashTableIter it;
	gpointer n;

	compare_node(r, dir, seen);
	compare_listing(r, dir, 1000);
	if (meta_lookup(r->m, dir->ino, "..", &a) != 0 || a.ino != dir->parent->ino)
		mismatch(r, "\"..\" of %" PRIu64 " is not %" PRIu64, dir->ino, dir->parent->ino);
	g_hash_table_iter_init(&it, dir->entries);
	while (g_hash_table_iter_next(&it, NULL, &n)) {
		if (is_dir(n))
			compare_dir(r, n, seen);
		else
			compare_node(r, n, seen);
	}
}

/* Both trees hold the same entries and inodes, the engine no other inode,
 * and the engine's own check finds nothing wrong. */
static void compare_trees(struct run *r)
{
	GHashTable *seen = g_hash_table_new(NULL, NULL);
	struct meta_statfs sf = {0};
	char *report = NULL;

	describe(r, "whole-tree comparison");
	r->comparing = true;
	compare_dir(r, r->model.root, seen);
	r->comparing = false;
	if (g_hash_table_size(seen) != r->model.live->len)
		mismatch(r, "%u inodes reachable, the model has %u live", g_hash_table_size(seen),
			 r->model.live->len);
	if (meta_statfs(r->m, &sf) != 0 || sf.inodes != r->model.live->len)
		mismatch(r, "the engine holds %" PRIu64 " inodes, the model %u", sf.inodes,
			 r->model.live->len);
	if (meta_check(r->m, &report) != 0)
		mismatch(r, "meta_check: %s", report);
	g_free(report);
	g_hash_table_destroy(seen);
}

/* ---- the run ---- */

static void run_one(struct run *r)
{
	int p = g_rand_int_range(r->rng, 0, 100);

	if (r->model.live->len > LIVE_TARGET && chance(r, 0.3))
		op_prune(r);
	else if (p < 12)
		op_lookup(r);
	else if (p < 17)
		op_getattr(r);
	else if (p < 29)
		op_create(r);
	else if (p < 37)
		op_make(r, S_IFDIR);
	else if (p < 40)
		op_make(r, META_S_IFSTREAM);
	else if (p < 44)
		op_make(r, S_IFLNK);
	else if (p < 50)
		op_link(r);
	else if (p < 59)
		op_remove(r, false);
	else if (p < 66)
		op_remove(r, true);
	else if (p < 85)
		op_rename(r);
	else if (p < 89)
		op_truncate(r);
	else if (p < 93)
		op_readdir(r);
	else if (p < 97)
		op_setxattr(r);
	else
		op_getxattr(r);
}

static long env_long(const char *name, long fallback)
{
	const char *s = g_getenv(name);

	return s && *s ? (long)g_ascii_strtoll(s, NULL, 0) : fallback;
}

static int compare_keys(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* How often each outcome came up: proof that the rare cases were reached. */
static void print_stats(struct run *r)
{
	guint n;
	gpointer *keys = g_hash_table_get_keys_as_array(r->stats, &n);

	qsort(keys, n, sizeof(*keys), compare_keys);
	for (guint i = 0; i < n; i++)
		printf("  %-42s %zu\n", (char *)keys[i],
		       GPOINTER_TO_SIZE(g_hash_table_lookup(r->stats, keys[i])));
	g_free(keys);
}

static int setup(void **state)
{
	struct run *r = g_new0(struct run, 1);

	memset(long_name, 'l', sizeof(long_name) - 1);
	memset(max_name, 'm', sizeof(max_name) - 1);
	r->dir = test_mkdtemp();
	r->url = test_meta_url(r->dir);
	assert_int_equal(meta_create_db(r->url, 0, 0), 0);
	assert_int_equal(meta_open(r->url, &r->m), 0);
	model_init(&r->model);
	r->seed = (guint32)env_long("SHARDFS_MODEL_SEED", DEFAULT_SEED);
	r->rng = g_rand_new_with_seed(r->seed);
	r->trace = env_long("SHARDFS_MODEL_TRACE", 0) != 0;
	r->stats = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct run *r = *state;

	meta_close(r->m);
	test_meta_url_drop(r->url);
	test_rmdir(r->dir);
	model_fini(&r->model);
	g_rand_free(r->rng);
	g_hash_table_destroy(r->stats);
	g_free(r->dir);
	g_free(r->url);
	g_free(r);
	return 0;
}

/* Random namespace operations give the engine's results and the model's,
 * error for error, and leave the same tree. */
static void test_random_namespace(void **state)
{
	struct run *r = *state;
	long ops = env_long("SHARDFS_MODEL_OPS", DEFAULT_OPS);
	gint64 start = g_get_monotonic_time();

	printf("meta model: seed %u (replay with SHARDFS_MODEL_SEED=%u), %ld operations\n", r->seed,
	       r->seed, ops);
	fflush(stdout); /* before any failure message on stderr */
	for (r->op = 1; r->op <= ops; r->op++) {
		run_one(r);
		if (r->op % COMPARE_EVERY == 0)
			compare_trees(r);
	}
	compare_trees(r);
	printf("meta model: %ld operations in %.1f s, %u live inodes at the end\n", ops,
	       (double)(g_get_monotonic_time() - start) / 1e6, r->model.live->len);
	print_stats(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_random_namespace, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
