/*
 * meta_namespace.c - the namespace of the metadata engine (meta.h):
 * lookup, create (and create-and-open), mkdir, mknod, symlink, readlink,
 * link, unlink, rmdir, rename, getattr and setattr, readdir, statfs.
 *
 * Each write is one transaction of the core (meta_tx_loop), so link
 * counts, directory emptiness and the rename rules hold under concurrent
 * processes. The checks run in the order the kernel makes them, so that
 * the error reported when several apply is the one POSIX callers expect.
 * Invariants kept: a file's nlink is its number of entries, a directory's
 * 2 + its subdirectories; a directory's parent pointer matches its entry;
 * an inode whose last link goes stays while a session has it open
 * (meta_session.c releases it at the last close).
 *
 * Calls down to the core (meta_sql.c) and, for create-and-open, to
 * meta_session.c; meta_manifest.c calls meta_setattr_locked here.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#define S_TYPE(mode) ((mode) & S_IFMT)
#define TARGET_MAX 4096u

/* A directory entry as the write paths see it. */
struct dentry {
	int64_t id;
	uint64_t ino;
	uint32_t mode;
};

/* 0 if ino is a directory; -ENOENT, -ENOTDIR. */
static int dir_check(struct meta *m, uint64_t ino)
{
	struct meta_attr a;
	int rc = meta_getattr_locked(m, ino, &a);

	return rc < 0 ? rc : S_ISDIR(a.mode) ? 0 : -ENOTDIR;
}

static bool is_dot(const char *name)
{
	return !strcmp(name, ".") || !strcmp(name, "..");
}

static int name_check(const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return -ENOENT;
	if (n > META_NAME_MAX)
		return -ENAMETOOLONG;
	return strchr(name, '/') ? -EINVAL : 0;
}

/* The checks of parent/name in the order a path walk makes them: the
 * parent must be a directory (-ENOENT, -ENOTDIR) before "." or ".." (then
 * dot_rc) or a bad name (name_check) can be told. */
static int entry_check(struct meta *m, uint64_t parent, const char *name, int dot_rc)
{
	int rc = dir_check(m, parent);

	if (rc == 0 && is_dot(name))
		rc = dot_rc;
	return rc ?: name_check(name);
}

/* The entry parent/name: 0 with *d, -ENOENT, or an SQL error. */
static int find_dentry(struct meta *m, uint64_t parent, const char *name, struct dentry *d)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_DENTRY);
	int rc;

	meta_bind_int(s, 1, (int64_t)parent);
	meta_bind_name(s, 2, name);
	rc = meta_step(s);
	if (rc == META_ROW) {
		d->id = meta_col_int(s, 0);
		d->ino = (uint64_t)meta_col_int(s, 1);
		d->mode = (uint32_t)meta_col_int(s, 2);
	}
	rc = rc == META_ROW ? 0 : rc == META_DONE ? -ENOENT : meta_sql_errno(m, rc);
	meta_reset(s);
	return rc;
}

static int touch_dir(struct meta *m, uint64_t dir, int64_t now)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_TOUCH_DIR);

	meta_bind_int(s, 1, (int64_t)dir);
	meta_bind_int(s, 2, now);
	return meta_run(m, s);
}

static int add_nlink(struct meta *m, uint64_t ino, int delta, int64_t now)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_ADD_NLINK);

	meta_bind_int(s, 1, (int64_t)ino);
	meta_bind_int(s, 2, delta);
	meta_bind_int(s, 3, now);
	return meta_run(m, s);
}

static bool has_children(struct meta *m, uint64_t dir)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_HAS_CHILDREN);
	bool yes;

	meta_bind_int(s, 1, (int64_t)dir);
	yes = meta_step(s) == META_ROW;
	meta_reset(s);
	return yes;
}

/* One link of a non-directory went away; the inode goes with its last
 * link unless a session still has it open. */
static int drop_link(struct meta *m, uint64_t ino, int64_t now)
{
	struct meta_attr a;
	int rc = add_nlink(m, ino, -1, now);

	if (rc == 0)
		rc = meta_getattr_locked(m, ino, &a);
	if (rc == 0 && a.nlink == 0 && meta_count_by_ino(m, META_Q_OPEN_COUNT, ino) == 0)
		rc = meta_destroy_inode(m, ino);
	return rc;
}

static void new_object_id(uint8_t id[16])
{
	for (int i = 0; i < 4; i++)
		((uint32_t *)id)[i] = g_random_int();
}

/* Inserts an inode and its entry in parent; *out its attributes. */
static int make_node(struct meta *m, uint64_t parent, const char *name, uint32_t mode,
		     uint32_t uid, uint32_t gid, const char *target, struct meta_attr *out)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_INSERT_INODE);
	int64_t now = meta_now_ns();
	bool dir = S_ISDIR(mode);
	uint8_t object_id[16];
	uint64_t ino;
	int rc;

	meta_bind_int(s, 1, mode);
	meta_bind_int(s, 2, uid);
	meta_bind_int(s, 3, gid);
	meta_bind_int(s, 4, dir ? 2 : 1);
	meta_bind_int(s, 5, target ? (int64_t)strlen(target) : 0);
	meta_bind_int(s, 6, now);
	if (dir)
		meta_bind_int(s, 7, (int64_t)parent);
	if (target)
		meta_bind_blob(s, 8, target, strlen(target));
	if (S_ISREG(mode)) {
		new_object_id(object_id);
		meta_bind_blob(s, 9, object_id, 16);
	}
	rc = meta_step(s); /* RETURNING ino */
	ino = rc == META_ROW ? (uint64_t)meta_col_int(s, 0) : 0;
	meta_reset(s);
	if (rc != META_ROW)
		return rc == META_DONE ? -EIO : rc;
	s = meta_stmt(m, META_Q_INSERT_DENTRY);
	meta_bind_int(s, 1, (int64_t)parent);
	meta_bind_name(s, 2, name);
	meta_bind_int(s, 3, (int64_t)ino);
	rc = meta_run(m, s);
	if (rc == 0 && dir)
		rc = add_nlink(m, parent, 1, now);
	if (rc == 0)
		rc = touch_dir(m, parent, now);
	if (rc == 0 && out)
		rc = meta_getattr_locked(m, ino, out);
	return rc;
}

/* The checks every creation shares: parent a directory, name valid and free. */
static int creation_check(struct meta *m, uint64_t parent, const char *name)
{
	struct dentry d;
	int rc = entry_check(m, parent, name, -EEXIST);

	if (rc == 0) {
		rc = find_dentry(m, parent, name, &d);
		rc = rc == 0 ? -EEXIST : rc == -ENOENT ? 0 : rc;
	}
	return rc;
}

/*
 * What creation_check and make_node do, with the same errors, in one
 * statement on engines that have it (PostgreSQL, where it saves seven
 * round trips of eight); with sid, the new file is opened too. -ENOSYS
 * where the generic path must run instead: other engines, and names that
 * the checks' order must tell ("." and "..", bad names).
 */
static int make_node_at_once(struct meta *m, uint64_t sid, uint64_t parent, const char *name,
			     uint32_t mode, uint32_t uid, uint32_t gid, struct meta_attr *out)
{
	struct meta_tx t = META_TX_ALONE(m);
	int64_t now = meta_now_ns();
	uint8_t object_id[16];
	int rc = 0;

	if (!m->engine->make_node_at_once || is_dot(name) || name_check(name) != 0)
		return -ENOSYS;
	new_object_id(object_id);
	while (meta_tx_loop(&t, &rc)) {
		struct meta_stmt *s = meta_stmt(m, META_Q_MAKE_NODE);

		meta_bind_int(s, 1, (int64_t)parent);
		meta_bind_name(s, 2, name);
		meta_bind_int(s, 3, mode);
		meta_bind_int(s, 4, uid);
		meta_bind_int(s, 5, gid);
		meta_bind_int(s, 6, now);
		if (S_ISREG(mode))
			meta_bind_blob(s, 7, object_id, 16);
		meta_bind_int(s, 8, (int64_t)sid);
		rc = meta_step(s);
		if (rc == META_ROW && (rc = (int)meta_col_int(s, 10)) == 0 && out)
			meta_attr_read(s, out);
		else if (rc == META_DONE)
			rc = -EIO;
		meta_reset(s);
	}
	return rc;
}

static int create_typed(struct meta *m, uint64_t parent, const char *name, uint32_t mode,
			uint32_t uid, uint32_t gid, const char *target, struct meta_attr *out)
{
	struct meta_tx t = META_TX(m);
	int rc = target ? -ENOSYS : make_node_at_once(m, 0, parent, name, mode, uid, gid, out);

	if (rc != -ENOSYS)
		return rc;
	rc = 0;

	while (meta_tx_loop(&t, &rc)) {
		rc = creation_check(m, parent, name);
		if (rc == 0)
			rc = make_node(m, parent, name, mode, uid, gid, target, out);
	}
	return rc;
}

/* sid 0: no open record. */
static int create_file(struct meta *m, uint64_t sid, uint64_t parent, const char *name,
		       uint32_t mode, uint32_t uid, uint32_t gid, bool excl, struct meta_attr *out,
		       bool *made)
{
	struct meta_tx t = META_TX(m);
	struct dentry d;
	int rc = make_node_at_once(m, sid, parent, name, S_IFREG | (mode & 07777), uid, gid, out);

	*made = rc == 0;
	if (rc != -ENOSYS && (rc != -EEXIST || excl))
		return rc;
	rc = 0; /* the generic path, which also answers an existing name */
	while (meta_tx_loop(&t, &rc)) {
		*made = false;
		rc = creation_check(m, parent, name);
		if (rc == -EEXIST && !excl && is_dot(name))
			rc = -EISDIR; /* "dir/." and "dir/.." name directories, as any other */
		else if (rc == -EEXIST && !excl && find_dentry(m, parent, name, &d) == 0)
			rc = S_ISDIR(d.mode) ? -EISDIR : meta_getattr_locked(m, d.ino, out);
		else if (rc == 0 && (rc = make_node(m, parent, name, S_IFREG | (mode & 07777), uid,
						    gid, NULL, out)) == 0)
			*made = true;
		if (rc == 0 && sid && S_ISREG(out->mode))
			rc = meta_open_locked(m, sid, out->ino);
	}
	*made = *made && rc == 0;
	return rc;
}

int meta_create(struct meta *m, uint64_t parent, const char *name, uint32_t mode, uint32_t uid,
		uint32_t gid, bool excl, struct meta_attr *out)
{
	bool made;

	return create_file(m, 0, parent, name, mode, uid, gid, excl, out, &made);
}

int meta_create_open(struct meta *m, uint64_t sid, uint64_t parent, const char *name,
		     uint32_t mode, uint32_t uid, uint32_t gid, bool excl, struct meta_attr *out,
		     bool *made)
{
	*made = false;
	return sid ? create_file(m, sid, parent, name, mode, uid, gid, excl, out, made) : -EINVAL;
}

int meta_mkdir(struct meta *m, uint64_t parent, const char *name, uint32_t mode, uint32_t uid,
	       uint32_t gid, struct meta_attr *out)
{
	return create_typed(m, parent, name, S_IFDIR | (mode & 07777), uid, gid, NULL, out);
}

int meta_mknod(struct meta *m, uint64_t parent, const char *name, uint32_t mode, uint32_t uid,
	       uint32_t gid, struct meta_attr *out)
{
	if (S_TYPE(mode) != META_S_IFSTREAM)
		return -EPERM;
	return create_typed(m, parent, name, mode & (S_IFMT | 07777), uid, gid, NULL, out);
}

int meta_symlink(struct meta *m, uint64_t parent, const char *name, const char *target,
		 uint32_t uid, uint32_t gid, struct meta_attr *out)
{
	size_t n = strlen(target);

	if (n == 0)
		return -ENOENT;
	if (n >= TARGET_MAX)
		return -ENAMETOOLONG;
	return create_typed(m, parent, name, S_IFLNK | 0777, uid, gid, target, out);
}

#define PATH_DEPTH_MAX 4096

/* The entry of ino: parent and name prepended to *path. */
static int prepend_entry(struct meta *m, uint64_t *ino, GString *path)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_ENTRY_OF);
	int rc;

	meta_bind_int(s, 1, (int64_t)*ino);
	rc = meta_step(s);
	if (rc == META_ROW) {
		size_t n;
		const char *name = meta_col_blob(s, 1, &n);

		*ino = (uint64_t)meta_col_int(s, 0);
		g_string_prepend_len(path, name, (gssize)n);
		g_string_prepend_c(path, '/');
	}
	rc = rc == META_ROW ? 0 : rc == META_DONE ? -ENOENT : meta_sql_errno(m, rc);
	meta_reset(s);
	return rc;
}

int meta_path_of(struct meta *m, uint64_t ino, char **path)
{
	GString *p = g_string_new(NULL);
	int rc = 0;

	g_mutex_lock(&m->lock);
	for (int depth = 0; rc == 0 && ino != META_ROOT_INO; depth++)
		rc = depth < PATH_DEPTH_MAX ? prepend_entry(m, &ino, p) : -ENOENT;
	g_mutex_unlock(&m->lock);
	if (rc == 0 && p->len == 0)
		g_string_assign(p, "/");
	*path = rc == 0 ? g_string_free(p, FALSE) : (g_string_free(p, TRUE), NULL);
	return rc;
}

int meta_readlink(struct meta *m, uint64_t ino, char **target)
{
	struct meta_stmt *s;
	int rc;

	g_mutex_lock(&m->lock);
	s = meta_stmt(m, META_Q_READLINK);
	meta_bind_int(s, 1, (int64_t)ino);
	rc = meta_step(s);
	if (rc == META_ROW && !S_ISLNK((uint32_t)meta_col_int(s, 0))) {
		rc = -EINVAL;
	} else if (rc == META_ROW) {
		size_t n;
		const char *p = meta_col_blob(s, 1, &n);

		*target = g_strndup(p, n);
		rc = 0;
	} else {
		rc = rc == META_DONE ? -ENOENT : meta_sql_errno(m, rc);
	}
	meta_reset(s);
	g_mutex_unlock(&m->lock);
	return rc;
}

static int link_locked(struct meta *m, uint64_t ino, uint64_t newparent, const char *newname,
		       struct meta_attr *out)
{
	struct meta_attr a;
	int rc = meta_getattr_locked(m, ino, &a);

	if (rc == 0)
		rc = creation_check(m, newparent, newname);
	/* as link(2): the new name is resolved before a directory is refused */
	if (rc == 0 && S_ISDIR(a.mode))
		rc = -EPERM;
	/* as link(2): a file already unlinked (open, nlink 0) is not revived */
	if (rc == 0 && a.nlink == 0)
		rc = -ENOENT;
	if (rc == 0) {
		struct meta_stmt *s = meta_stmt(m, META_Q_INSERT_DENTRY);
		int64_t now = meta_now_ns();

		meta_bind_int(s, 1, (int64_t)newparent);
		meta_bind_name(s, 2, newname);
		meta_bind_int(s, 3, (int64_t)ino);
		rc = meta_run(m, s);
		if (rc == 0)
			rc = add_nlink(m, ino, 1, now);
		if (rc == 0)
			rc = touch_dir(m, newparent, now);
		if (rc == 0 && out)
			rc = meta_getattr_locked(m, ino, out);
	}
	return rc;
}

int meta_link(struct meta *m, uint64_t ino, uint64_t newparent, const char *newname,
	      struct meta_attr *out)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc))
		rc = link_locked(m, ino, newparent, newname, out);
	return rc;
}

static int delete_dentry(struct meta *m, int64_t id)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_DELETE_DENTRY);

	meta_bind_int(s, 1, id);
	return meta_run(m, s);
}

/* Removes entry d of parent (a file or an empty directory). */
static int remove_entry(struct meta *m, uint64_t parent, const struct dentry *d, int64_t now)
{
	int rc = delete_dentry(m, d->id);

	if (rc == 0 && S_ISDIR(d->mode)) {
		rc = meta_destroy_inode(m, d->ino);
		if (rc == 0)
			rc = add_nlink(m, parent, -1, now);
	} else if (rc == 0) {
		rc = drop_link(m, d->ino, now);
	}
	if (rc == 0)
		rc = touch_dir(m, parent, now);
	return rc;
}

static int unlink_locked(struct meta *m, uint64_t parent, const char *name)
{
	struct dentry d;
	int rc = entry_check(m, parent, name, -EISDIR);
	if (rc == 0)
		rc = find_dentry(m, parent, name, &d);
	if (rc == 0 && S_ISDIR(d.mode))
		rc = -EISDIR;
	if (rc == 0)
		rc = remove_entry(m, parent, &d, meta_now_ns());
	return rc;
}

int meta_unlink(struct meta *m, uint64_t parent, const char *name)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc))
		rc = unlink_locked(m, parent, name);
	return rc;
}

static int rmdir_locked(struct meta *m, uint64_t parent, const char *name)
{
	struct dentry d;
	int rc = entry_check(m, parent, name, strcmp(name, ".") ? -ENOTEMPTY : -EINVAL);
	if (rc == 0)
		rc = find_dentry(m, parent, name, &d);
	if (rc == 0 && !S_ISDIR(d.mode))
		rc = -ENOTDIR;
	if (rc == 0 && has_children(m, d.ino))
		rc = -ENOTEMPTY;
	if (rc == 0)
		rc = remove_entry(m, parent, &d, meta_now_ns());
	return rc;
}

int meta_rmdir(struct meta *m, uint64_t parent, const char *name)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc))
		rc = rmdir_locked(m, parent, name);
	return rc;
}

/* -EINVAL if dir is ancestor (or equal) of node: a directory cannot move
 * into its own subtree. */
static int subtree_check(struct meta *m, uint64_t dir, uint64_t node)
{
	for (uint64_t cur = node;;) {
		if (cur == dir)
			return -EINVAL;
		if (cur == META_ROOT_INO)
			return 0;
		struct meta_stmt *s = meta_stmt(m, META_Q_PARENT_OF);

		meta_bind_int(s, 1, (int64_t)cur);
		if (meta_step(s) != META_ROW) {
			meta_reset(s);
			return -ENOENT;
		}
		cur = (uint64_t)meta_col_int(s, 0);
		meta_reset(s);
	}
}

static int set_parent(struct meta *m, uint64_t dir, uint64_t parent)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_SET_PARENT);

	meta_bind_int(s, 1, (int64_t)dir);
	meta_bind_int(s, 2, (int64_t)parent);
	return meta_run(m, s);
}

/* A directory moves from one parent to another: parent pointer and the
 * parents' link counts (each subdirectory's ".." is a link). */
static int reparent_dir(struct meta *m, uint64_t dir, uint64_t from, uint64_t to, int64_t now)
{
	int rc = 0;

	if (from == to)
		return 0;
	rc = set_parent(m, dir, to);
	if (rc == 0)
		rc = add_nlink(m, from, -1, now);
	if (rc == 0)
		rc = add_nlink(m, to, 1, now);
	return rc;
}

static int exchange(struct meta *m, uint64_t parent, const struct dentry *a, uint64_t newparent,
		    const struct dentry *b, int64_t now)
{
	int rc = 0;
	struct meta_stmt *s;

	for (int i = 0; rc == 0 && i < 2; i++) {
		s = meta_stmt(m, META_Q_SET_DENTRY_INO);
		meta_bind_int(s, 1, i ? b->id : a->id);
		meta_bind_int(s, 2, (int64_t)(i ? a->ino : b->ino));
		rc = meta_run(m, s);
	}
	if (rc == 0 && S_ISDIR(a->mode))
		rc = reparent_dir(m, a->ino, parent, newparent, now);
	if (rc == 0 && S_ISDIR(b->mode))
		rc = reparent_dir(m, b->ino, newparent, parent, now);
	if (rc == 0)
		rc = meta_set_ctime(m, a->ino, now);
	if (rc == 0)
		rc = meta_set_ctime(m, b->ino, now);
	return rc;
}

/* The POSIX rules for replacing dst with src. */
static int replace_check(struct meta *m, const struct dentry *src, const struct dentry *dst)
{
	if (S_ISDIR(src->mode) && !S_ISDIR(dst->mode))
		return -ENOTDIR;
	if (!S_ISDIR(src->mode) && S_ISDIR(dst->mode))
		return -EISDIR;
	if (S_ISDIR(dst->mode) && has_children(m, dst->ino))
		return -ENOTEMPTY;
	return 0;
}

/*
 * The rules of renameat2(2) once both entries are looked up (dst NULL if
 * newname is free), in the order Linux applies them, so that the error
 * reported when several apply is the kernel's: NOREPLACE and EXCHANGE
 * first, then loops (a directory into its own subtree: EINVAL; over one
 * of the source's ancestors: ENOTEMPTY, or EINVAL for an exchange), then
 * two names of one inode (1: nothing to do, success), then the rules for
 * replacing. 0 to go on.
 */
static int rename_check(struct meta *m, uint64_t parent, const struct dentry *src,
			uint64_t newparent, const struct dentry *dst, unsigned flags)
{
	bool swap = flags & META_RENAME_EXCHANGE;
	int rc = 0;

	if (dst && (flags & META_RENAME_NOREPLACE))
		return -EEXIST;
	if (!dst && swap)
		return -ENOENT;
	if (S_ISDIR(src->mode))
		rc = subtree_check(m, src->ino, newparent);
	if (rc == 0 && dst && S_ISDIR(dst->mode)) {
		rc = subtree_check(m, dst->ino, parent);
		rc = rc == -EINVAL && !swap ? -ENOTEMPTY : rc;
	}
	if (rc == 0 && dst && dst->ino == src->ino)
		return 1;
	return rc || swap || !dst ? rc : replace_check(m, src, dst);
}

static int move(struct meta *m, uint64_t parent, const struct dentry *src, uint64_t newparent,
		const char *newname, const struct dentry *dst, int64_t now)
{
	int rc = dst ? remove_entry(m, newparent, dst, now) : 0;

	if (rc == 0) {
		struct meta_stmt *s = meta_stmt(m, META_Q_MOVE_DENTRY);

		meta_bind_int(s, 1, src->id);
		meta_bind_int(s, 2, (int64_t)newparent);
		meta_bind_name(s, 3, newname);
		rc = meta_run(m, s);
	}
	if (rc == 0 && S_ISDIR(src->mode))
		rc = reparent_dir(m, src->ino, parent, newparent, now);
	if (rc == 0)
		rc = meta_set_ctime(m, src->ino, now);
	return rc;
}

/* 1: nothing to change (see move). */
static int rename_locked(struct meta *m, uint64_t parent, const char *name, uint64_t newparent,
			 const char *newname, unsigned flags)
{
	struct dentry src, dst;
	bool has_dst = false;
	int64_t now = meta_now_ns();
	/* as renameat2(2) resolves them: both parents, then the names */
	int rc = dir_check(m, parent) ?: dir_check(m, newparent);
	if (rc == 0 && (is_dot(name) || is_dot(newname)))
		rc = -EINVAL;
	if (rc == 0)
		rc = name_check(name) ?: find_dentry(m, parent, name, &src);
	if (rc == 0)
		rc = name_check(newname);
	if (rc == 0) {
		rc = find_dentry(m, newparent, newname, &dst);
		has_dst = rc == 0;
		rc = rc == -ENOENT ? 0 : rc;
	}
	if (rc == 0)
		rc = rename_check(m, parent, &src, newparent, has_dst ? &dst : NULL, flags);
	if (rc == 0 && (flags & META_RENAME_EXCHANGE))
		rc = exchange(m, parent, &src, newparent, &dst, now);
	else if (rc == 0)
		rc = move(m, parent, &src, newparent, newname, has_dst ? &dst : NULL, now);
	if (rc == 0)
		rc = touch_dir(m, parent, now);
	if (rc == 0 && newparent != parent)
		rc = touch_dir(m, newparent, now);
	return rc;
}

int meta_rename(struct meta *m, uint64_t parent, const char *name, uint64_t newparent,
		const char *newname, unsigned flags)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	if (flags & ~(META_RENAME_NOREPLACE | META_RENAME_EXCHANGE) ||
	    flags == (META_RENAME_NOREPLACE | META_RENAME_EXCHANGE))
		return -EINVAL;
	while (meta_tx_loop(&t, &rc))
		rc = rename_locked(m, parent, name, newparent, newname, flags);
	return rc;
}

/* "." and "..": the directory itself or its parent (the root's is itself). */
static int lookup_dot(struct meta *m, uint64_t parent, const char *name, struct meta_attr *out)
{
	uint64_t target = parent;
	struct meta_stmt *s;
	int rc = dir_check(m, parent);

	if (rc == 0 && !strcmp(name, "..") && parent != META_ROOT_INO) {
		s = meta_stmt(m, META_Q_PARENT_OF);
		meta_bind_int(s, 1, (int64_t)parent);
		rc = meta_step(s) == META_ROW ? 0 : -ENOENT;
		target = (uint64_t)meta_col_int(s, 0);
		meta_reset(s);
	}
	return rc ?: meta_getattr_locked(m, target, out);
}

static int lookup_entry(struct meta *m, uint64_t parent, const char *name, struct meta_attr *out)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_LOOKUP);
	int rc;

	meta_bind_int(s, 1, (int64_t)parent);
	meta_bind_name(s, 2, name);
	rc = meta_step(s);
	if (rc == META_ROW && !meta_col_null(s, 0)) {
		meta_attr_read(s, out);
		rc = 0;
	} else if (rc == META_ROW) { /* the parent, without the name */
		rc = S_ISDIR((uint32_t)meta_col_int(s, 10)) ? -ENOENT : -ENOTDIR;
	} else {
		rc = rc == META_DONE ? -ENOENT : meta_sql_errno(m, rc);
	}
	meta_reset(s);
	return rc;
}

int meta_lookup(struct meta *m, uint64_t parent, const char *name, struct meta_attr *out)
{
	int rc;

	g_mutex_lock(&m->lock);
	rc = name_check(name);
	if (rc < 0) /* a path walk resolves the parent before it reads the name */
		rc = dir_check(m, parent) ?: rc;
	else if (is_dot(name))
		rc = lookup_dot(m, parent, name, out);
	else
		rc = lookup_entry(m, parent, name, out);
	g_mutex_unlock(&m->lock);
	return rc;
}

int meta_getattr(struct meta *m, uint64_t ino, struct meta_attr *out)
{
	int rc;

	g_mutex_lock(&m->lock);
	rc = meta_getattr_locked(m, ino, out);
	g_mutex_unlock(&m->lock);
	return rc;
}

/* Inline content past a new, smaller size goes; a larger size needs
 * nothing, since bytes past the content read as zeros. */
static int cut_inline(struct meta *m, uint64_t ino, uint64_t size)
{
	struct meta_stmt *s = meta_stmt(m, META_Q_CUT_INLINE);

	meta_bind_int(s, 1, (int64_t)ino);
	meta_bind_int(s, 2, (int64_t)MIN(size, (uint64_t)INT64_MAX));
	return meta_run(m, s);
}

/* Whether field f of set applies to what a holds (its guard). */
static bool applies(const struct meta_setattr *set, unsigned f, uint32_t now, uint32_t base)
{
	return (set->mask & f) && (!(set->guard & f) || now == base);
}

uint32_t meta_mode_without_suidgid(uint32_t mode)
{
	return mode & ~(S_ISUID | ((mode & S_IXGRP) ? S_ISGID : 0));
}

void meta_setattr_apply(const struct meta_setattr *set, int64_t now, struct meta_attr *a)
{
	if (applies(set, META_SET_MODE, a->mode & 07777, set->base_mode))
		a->mode = S_TYPE(a->mode) | (set->mode & 07777);
	else if ((set->mask & META_SET_KILL_SUIDGID) && S_ISREG(a->mode))
		a->mode = meta_mode_without_suidgid(a->mode);
	if (applies(set, META_SET_UID, a->uid, set->base_uid))
		a->uid = set->uid;
	if (applies(set, META_SET_GID, a->gid, set->base_gid))
		a->gid = set->gid;
	if (set->mask & META_SET_SIZE) {
		a->size = set->size;
		a->mtime_ns = now;
	}
	if (set->mask & META_SET_ATIME)
		a->atime_ns = set->atime_ns;
	if (set->mask & META_SET_MTIME)
		a->mtime_ns = set->mtime_ns;
}

int meta_setattr_from(struct meta *m, uint64_t ino, const struct meta_setattr *set,
		      struct meta_attr *a, struct meta_attr *out)
{
	if ((set->mask & META_SET_SIZE) && !S_ISREG(a->mode) &&
	    S_TYPE(a->mode) != META_S_IFSTREAM) /* a stream's size: bytes written */
		return S_ISDIR(a->mode) ? -EISDIR : -EINVAL;
	int64_t now = meta_now_ns();
	struct meta_stmt *s = meta_stmt(m, META_Q_SETATTR);
	uint32_t mode = a->mode;
	int rc;

	meta_setattr_apply(set, now, a);
	if (set->mask == META_SET_KILL_SUIDGID && a->mode == mode) {
		if (out) /* nothing to clear: nothing changes, not even ctime */
			*out = *a;
		return 0;
	}
	a->ctime_ns = now;
	meta_bind_int(s, 1, (int64_t)ino);
	meta_bind_int(s, 2, a->mode);
	meta_bind_int(s, 3, a->uid);
	meta_bind_int(s, 4, a->gid);
	meta_bind_int(s, 5, (int64_t)a->size);
	meta_bind_int(s, 6, a->atime_ns);
	meta_bind_int(s, 7, a->mtime_ns);
	meta_bind_int(s, 8, a->ctime_ns);
	rc = meta_sql_errno(m, meta_step(s));
	meta_reset(s);
	if (rc == 0 && (set->mask & META_SET_SIZE))
		rc = cut_inline(m, ino, a->size);
	if (rc == 0 && out)
		*out = *a;
	return rc;
}

int meta_setattr_locked(struct meta *m, uint64_t ino, const struct meta_setattr *set,
			struct meta_attr *out)
{
	struct meta_attr a;
	int rc = meta_getattr_locked(m, ino, &a);

	return rc ? rc : meta_setattr_from(m, ino, set, &a, out);
}

int meta_setattr(struct meta *m, uint64_t ino, const struct meta_setattr *set,
		 struct meta_attr *out)
{
	struct meta_tx t = META_TX(m);
	int rc = 0;

	while (meta_tx_loop(&t, &rc))
		rc = meta_setattr_locked(m, ino, set, out);
	return rc;
}

int meta_readdir(struct meta *m, uint64_t ino, uint64_t cookie, unsigned max, meta_dirent_fn fn,
		 void *arg)
{
	struct meta_stmt *s;
	int rc;

	g_mutex_lock(&m->lock);
	rc = dir_check(m, ino);
	if (rc < 0)
		goto out;
	s = meta_stmt(m, META_Q_READDIR);
	meta_bind_int(s, 1, (int64_t)ino);
	meta_bind_int(s, 2, (int64_t)cookie);
	meta_bind_int(s, 3, max);
	while ((rc = meta_step(s)) == META_ROW) {
		size_t n;
		const char *p = meta_col_blob(s, 1, &n);
		char *name = g_strndup(p, n);
		int stop = fn(arg, name, (uint64_t)meta_col_int(s, 2),
			      (uint32_t)meta_col_int(s, 3), (uint64_t)meta_col_int(s, 0));

		g_free(name);
		if (stop)
			break;
	}
	rc = rc == META_ROW || rc == META_DONE ? 0 : meta_sql_errno(m, rc);
	meta_reset(s);
out:
	g_mutex_unlock(&m->lock);
	return rc;
}

int meta_statfs(struct meta *m, struct meta_statfs *out)
{
	struct meta_stmt *s;
	int rc;

	g_mutex_lock(&m->lock);
	s = meta_stmt(m, META_Q_TOTALS);
	rc = meta_step(s);
	if (rc == META_ROW) {
		out->inodes = (uint64_t)meta_col_int(s, 0);
		out->bytes = (uint64_t)meta_col_int(s, 1);
	}
	rc = rc == META_ROW ? 0 : meta_sql_errno(m, rc);
	meta_reset(s);
	g_mutex_unlock(&m->lock);
	return rc;
}
