/*
 * ops.c - the FUSE low-level operations: one fs_xxx function per request,
 * each replying exactly once. Namespace requests are one metadata
 * transaction each; file data goes through file.c.
 *
 * Errors reach the kernel as errno values: metadata errors already are;
 * store errors are reported as EIO by file.c.
 */
#define G_LOG_DOMAIN "shardfs-fuse"

#include "fs_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

#define BLKSIZE (1u << 20)
#define DIRECT_READ_MIN (64u << 20) /* a first read this big bypasses the page cache */

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The metadata's attributes a, with the size and attribute changes of a
 * file open here that are not yet committed. */
static void open_view(struct fs *fs, struct meta_attr *a)
{
	uint64_t size;

	g_mutex_lock(&fs->lock);
	struct fs_inode *in = S_ISREG(a->mode) ? fs_inode_find(fs, a->ino) : NULL;
	if (in && fs_inode_size(in, &size))
		a->size = size;
	if (in)
		fs_inode_attrs(in, a);
	g_mutex_unlock(&fs->lock);
}

static void to_stat(struct fs *fs, const struct meta_attr *stored, struct stat *st)
{
	struct meta_attr view = *stored, *a = &view;

	open_view(fs, a);
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	if (META_S_ISSTREAM(a->mode)) { /* a FIFO would be the kernel's own pipe */
		st->st_mode = S_IFREG | (a->mode & 07777);
		st->st_size = (off_t)fs_stream_size(fs, a->ino, a->size);
	}
	st->st_blksize = BLKSIZE;
	st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
	st->st_atim = (struct timespec){a->atime_ns / 1000000000, a->atime_ns % 1000000000};
	st->st_mtim = (struct timespec){a->mtime_ns / 1000000000, a->mtime_ns % 1000000000};
	st->st_ctim = (struct timespec){a->ctime_ns / 1000000000, a->ctime_ns % 1000000000};
}

/* A stream's size grows while it is written: never cached. */
static double attr_timeout(const struct fs *fs, const struct meta_attr *a)
{
	return META_S_ISSTREAM(a->mode) ? 0 : fs->attr_timeout;
}

/* ---- the kernel's references (struct fs_lookup) ---- */

/* Counts one reference to ino, before the reply that gives it: a forget
 * cannot come first. */
static void lookup_hold(struct fs *fs, uint64_t ino)
{
	g_mutex_lock(&fs->lock);
	struct fs_lookup *l = g_hash_table_lookup(fs->lookups, &ino);

	if (!l) {
		uint64_t *key = g_new(uint64_t, 1);

		*key = ino;
		l = g_new0(struct fs_lookup, 1);
		g_hash_table_insert(fs->lookups, key, l);
	}
	l->n++;
	g_mutex_unlock(&fs->lock);
}

/* Drops n references; after the last one, the pin goes after a grace. */
static void lookup_drop(struct fs *fs, uint64_t ino, uint64_t n)
{
	g_mutex_lock(&fs->lock);
	struct fs_lookup *l = g_hash_table_lookup(fs->lookups, &ino);

	if (l && l->n <= n) {
		if (l->pinned) {
			gint64 due = g_get_monotonic_time() + FS_PIN_GRACE_S * G_USEC_PER_SEC;
			struct fs_unpin u = {.ino = ino, .due = due};

			g_array_append_val(fs->unpins, u);
		}
		g_hash_table_remove(fs->lookups, &ino);
	} else if (l) {
		l->n -= n;
	}
	g_mutex_unlock(&fs->lock);
}

/* Before a request that may take the last name of parent/name: a regular
 * file the kernel references is held open for this mount until the
 * kernel forgets it. A reference is held meanwhile, so that a forget
 * cannot look for the pin before it exists. */
static void pin_victim(struct fs *fs, struct meta *m, uint64_t parent, const char *name)
{
	struct meta_attr a;
	bool pin = false;

	if (meta_lookup(m, parent, name, &a) || !S_ISREG(a.mode))
		return;
	g_mutex_lock(&fs->lock);
	struct fs_lookup *l = g_hash_table_lookup(fs->lookups, &a.ino);
	if (l && !l->pinned) {
		l->n++;
		l->pinned = pin = true;
	}
	g_mutex_unlock(&fs->lock);
	if (!pin)
		return;
	if (meta_open_file(m, fs_sid(fs), a.ino)) {
		g_mutex_lock(&fs->lock);
		if ((l = g_hash_table_lookup(fs->lookups, &a.ino)))
			l->pinned = false;
		g_mutex_unlock(&fs->lock);
	}
	lookup_drop(fs, a.ino, 1);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	lookup_drop(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		lookup_drop(fs_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* A request naming an inode that no longer exists (its name was cached
 * by this kernel before another mount removed it): ESTALE makes the
 * kernel look the path up again, where ENOENT would fail the call. */
static int stale(int rc)
{
	return rc == -ENOENT ? -ESTALE : rc;
}

static void reply_entry(fuse_req_t req, const struct meta_attr *a)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param e = {.ino = a->ino, .generation = a->generation,
				     .attr_timeout = attr_timeout(fs, a),
				     .entry_timeout = fs->entry_timeout};

	to_stat(fs, a, &e.attr);
	lookup_hold(fs, a->ino);
	if (fuse_reply_entry(req, &e)) /* interrupted: the kernel took nothing */
		lookup_drop(fs, a->ino, 1);
}

/* Replies with the entry, or the error. */
static void entry_or_err(fuse_req_t req, int rc, const struct meta_attr *a)
{
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_entry(req, a);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct meta *m = fs_meta_take(fs);
	struct meta_attr a;
	int rc = meta_lookup(m, parent, name, &a);

	fs_meta_give(fs, m);
	if (rc == -ENOENT) { /* a negative entry, cached like a positive one */
		struct fuse_entry_param e = {.ino = 0, .entry_timeout = fs->entry_timeout};
		fuse_reply_entry(req, &e);
		return;
	}
	entry_or_err(req, rc, &a);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct meta *m = fs_meta_take(fs);
	struct meta_attr a;
	struct stat st;
	int rc = stale(meta_getattr(m, ino, &a));

	(void)fi;
	fs_meta_give(fs, m);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	to_stat(fs, &a, &st);
	fuse_reply_attr(req, &st, attr_timeout(fs, &a));
}

/*
 * The mount clears set-user-ID and set-group-ID bits itself (it asks for
 * FUSE_CAP_HANDLE_KILLPRIV): on any chown, and on a write or truncation
 * by an unprivileged caller. Otherwise the kernel reads the attributes
 * anew (a GETATTR) before every chown, to compute the mode it would send.
 * Privileged is uid 0 here: the request does not carry CAP_FSETID.
 */
static bool privileged(fuse_req_t req)
{
	return fuse_req_ctx(req)->uid == 0;
}

/* Counts a change of ino's attributes this mount committed, if the file
 * is open here (see fs_inode_defer_attrs). */
static void attrs_changed(struct fs *fs, uint64_t ino)
{
	g_mutex_lock(&fs->lock);
	struct fs_inode *in = fs_inode_find(fs, ino);
	if (in)
		fs_inode_attrs_changed(in);
	g_mutex_unlock(&fs->lock);
}

static int kill_suidgid(struct fs *fs, fuse_ino_t ino, struct fs_inode *in)
{
	static const struct meta_setattr kill = {.mask = META_SET_KILL_SUIDGID};

	if (in && fs_inode_defer_attrs(fs, in, &kill, NULL, 0))
		return 0;
	struct meta *m = fs_meta_take(fs);
	int rc = meta_setattr(m, ino, &kill, NULL);
	fs_meta_give(fs, m);
	attrs_changed(fs, ino);
	return rc;
}

/* After an unprivileged write: the bits go at the commit (whatever the
 * mode is then); a mode the kernel has cached with them is dropped. */
static int kill_suidgid_on_write(struct fs *fs, fuse_ino_t ino, struct fs_inode *in)
{
	int rc = kill_suidgid(fs, ino, in);
	uint32_t mode = __atomic_load_n(&in->mode, __ATOMIC_RELAXED);

	if (rc == 0 && (mode & (S_ISUID | S_ISGID))) {
		__atomic_store_n(&in->mode, meta_mode_without_suidgid(mode), __ATOMIC_RELAXED);
		fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0); /* attributes only */
	}
	return rc;
}

/* Records the mode a file open here now has, with its kept changes (see
 * kill_suidgid_on_write). */
static void note_mode(struct fs *fs, const struct meta_attr *stored)
{
	struct meta_attr view = *stored;

	g_mutex_lock(&fs->lock);
	struct fs_inode *in = fs_inode_find(fs, view.ino);
	if (in) {
		fs_inode_attrs(in, &view);
		__atomic_store_n(&in->mode, view.mode, __ATOMIC_RELAXED);
	}
	g_mutex_unlock(&fs->lock);
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* Truncation goes through the file's open state, opened here if needed. */
static int set_size(struct fs *fs, fuse_ino_t ino, uint64_t size, struct fuse_file_info *fi)
{
	struct fs_inode *in = fi ? (struct fs_inode *)(uintptr_t)fi->fh : NULL;
	int rc = 0;

	if (in)
		return fs_inode_truncate(fs, in, size);
	if ((rc = fs_inode_open(fs, ino, false, &in)))
		return rc;
	rc = fs_inode_truncate(fs, in, size);
	int rc2 = fs_inode_release(fs, in);
	return rc ? rc : rc2;
}

static bool is_stream(struct fs *fs, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fi)
		return fs_stream_fh(fi);
	struct meta *m = fs_meta_take(fs);
	struct meta_attr a;
	bool stream = meta_getattr(m, ino, &a) == 0 && META_S_ISSTREAM(a.mode);
	fs_meta_give(fs, m);
	return stream;
}

/* A change that may take access away from someone: another owner, or
 * permission bits cleared. Such a change is not kept for a later commit:
 * other mounts see it at once. */
static bool narrows_access(const struct meta_attr *now, const struct meta_setattr *set)
{
	if ((set->mask & META_SET_UID) && set->uid != now->uid)
		return true;
	if ((set->mask & META_SET_GID) && set->gid != now->gid)
		return true;
	return (set->mask & META_SET_MODE) && (now->mode & 0777 & ~set->mode);
}

/* set without the mode, owner and group it would not change (tar's
 * fchown to the owner the file has): nothing to keep of them. */
static struct meta_setattr changes_only(const struct meta_setattr *set, const struct meta_attr *now)
{
	struct meta_setattr c = *set;

	if ((c.mask & META_SET_MODE) && (c.mode & 07777) == (now->mode & 07777))
		c.mask &= ~META_SET_MODE;
	if ((c.mask & META_SET_UID) && c.uid == now->uid)
		c.mask &= ~META_SET_UID;
	if ((c.mask & META_SET_GID) && c.gid == now->gid)
		c.mask &= ~META_SET_GID;
	return c;
}

/*
 * Makes set's changes now or keeps them; *a as the mount shows them.
 * Attribute changes to a file whose content this mount has not committed
 * yet go with that content's commit (a transaction of their own each was
 * most of a small file's metadata work: tar sets times, owner and mode of
 * every file it writes). Other mounts see them at the close, as they see
 * the content. The open state is held from before the attributes are
 * read, so that the read can serve as the stored state a kept change is
 * guarded by, unless this mount changed them in between.
 */
static int set_attrs(struct fs *fs, fuse_ino_t ino, struct fuse_file_info *fi,
		     const struct meta_setattr *set, struct meta_attr *a)
{
	struct fs_inode *in = fi && fs_stream_fh(fi) ? NULL : fs_inode_hold(fs, ino);
	uint64_t changes = in ? fs_inode_attr_changes(in) : 0;
	struct meta *m = fs_meta_take(fs);
	int rc = meta_getattr(m, ino, a);

	fs_meta_give(fs, m);
	if (rc || !set->mask) {
		if (in)
			fs_inode_release(fs, in);
		return rc;
	}
	struct meta_attr view = *a;

	open_view(fs, &view);
	struct meta_setattr keep = changes_only(set, &view);
	bool kept = in && !narrows_access(&view, &keep) &&
		    fs_inode_defer_attrs(fs, in, &keep, a, changes);
	/* the last open if every handle closed meanwhile: it commits them */
	if (in && fs_inode_release(fs, in))
		kept = false;
	if (kept) {
		meta_setattr_apply(&keep, 0, a); /* the reply shows it, committed or not */
		return 0;
	}
	/* What is uncommitted goes first: its commit would stamp the mtime
	 * and carries the changes kept so far, which this one follows. A
	 * failed open state is reported by its close, not by this change. */
	fs_inode_flush_if_open(fs, ino);
	m = fs_meta_take(fs);
	rc = meta_setattr(m, ino, set, a);
	fs_meta_give(fs, m);
	attrs_changed(fs, ino);
	return rc;
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct meta_setattr set = {0};
	struct meta_attr a;
	int rc = 0;

	if ((to_set & FUSE_SET_ATTR_SIZE) && !is_stream(fs, ino, fi)) { /* streams: offsets go on */
		rc = set_size(fs, ino, (uint64_t)attr->st_size, fi);
		if (!privileged(req))
			set.mask |= META_SET_KILL_SUIDGID;
	}
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
		set.mask |= META_SET_KILL_SUIDGID; /* any chown, as the kernel's own */
	if (to_set & FUSE_SET_ATTR_MODE) {
		set.mask |= META_SET_MODE;
		set.mode = attr->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		set.mask |= META_SET_UID;
		set.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		set.mask |= META_SET_GID;
		set.gid = attr->st_gid;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		set.mask |= META_SET_ATIME;
		set.atime_ns = to_set & FUSE_SET_ATTR_ATIME_NOW ? g_get_real_time() * 1000 : ts_ns(&attr->st_atim);
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		set.mask |= META_SET_MTIME;
		set.mtime_ns = to_set & FUSE_SET_ATTR_MTIME_NOW ? g_get_real_time() * 1000 : ts_ns(&attr->st_mtim);
	}
	if (rc == 0)
		rc = set_attrs(fs, ino, fi, &set, &a);
	if (rc == 0 && set.mask)
		note_mode(fs, &a);
	rc = stale(rc);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct stat st;
	to_stat(fs, &a, &st);
	fuse_reply_attr(req, &st, attr_timeout(fs, &a));
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct meta *m = fs_meta_take(fs);
	char *target = NULL;
	int rc = meta_readlink(m, ino, &target);

	fs_meta_give(fs, m);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, target);
	g_free(target);
}

/* How make_file left a regular file it returns. */
enum made { MADE_NOT_OPENED, MADE_OPENED, EXISTING_OPENED };

/* A regular file, or a stream in a stream directory; without excl an
 * existing file is opened as it is. With a session (sid), a regular file
 * is also opened for it in the same transaction (*how says so). */
static int make_file(struct meta *m, uint64_t sid, uint64_t parent, const char *name,
		     uint32_t mode, const struct fuse_ctx *ctx, bool excl, struct meta_attr *a,
		     enum made *how)
{
	*how = MADE_NOT_OPENED;
	if (!fs_stream_dir(m, parent)) {
		bool made = false;
		int rc = sid ? meta_create_open(m, sid, parent, name, mode, ctx->uid, ctx->gid, excl, a,
						&made)
			     : meta_create(m, parent, name, mode, ctx->uid, ctx->gid, excl, a);

		if (rc == 0 && sid && S_ISREG(a->mode))
			*how = made ? MADE_OPENED : EXISTING_OPENED;
		return rc;
	}
	int rc = fs_stream_make(m, parent, name, mode, ctx->uid, ctx->gid, a);
	if (rc == -EEXIST && !excl && (rc = meta_lookup(m, parent, name, a)) == 0 &&
	    S_ISDIR(a->mode))
		rc = -EISDIR;
	return rc;
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct meta *m = fs_meta_take(fs);
	struct meta_attr a;
	enum made how;
	int rc;

	(void)rdev;
	mode &= ~ctx->umask;
	if (!S_ISREG(mode))
		rc = -EPERM; /* devices, sockets and FIFOs are not kept */
	else
		rc = make_file(m, 0, parent, name, mode, ctx, true, &a, &how);
	fs_meta_give(fs, m);
	entry_or_err(req, rc, &a);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct meta *m = fs_meta_take(fs);
	struct meta_attr a;
	int rc = meta_mkdir(m, parent, name, mode & ~ctx->umask, ctx->uid, ctx->gid, &a);

	fs_meta_give(fs, m);
	entry_or_err(req, rc, &a);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct meta *m = fs_meta_take(fs);

	pin_victim(fs, m, parent, name);
	int rc = meta_unlink(m, parent, name);

	fs_meta_give(fs, m);
	fuse_reply_err(req, -rc);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct meta *m = fs_meta_take(fs);
	int rc = meta_rmdir(m, parent, name);

	fs_meta_give(fs, m);
	fuse_reply_err(req, -rc);
}

static void fs_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct meta *m = fs_meta_take(fs);
	struct meta_attr a;
	int rc = meta_symlink(m, parent, name, target, ctx->uid, ctx->gid, &a);

	fs_meta_give(fs, m);
	entry_or_err(req, rc, &a);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	struct meta *m = fs_meta_take(fs);

	if (!(flags & META_RENAME_EXCHANGE))
		pin_victim(fs, m, newparent, newname);
	int rc = meta_rename(m, parent, name, newparent, newname, flags);

	fs_meta_give(fs, m);
	fuse_reply_err(req, -rc);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fs *fs = fs_of(req);
	struct meta *m = fs_meta_take(fs);
	struct meta_attr a;
	int rc = meta_link(m, ino, newparent, newname, &a);

	fs_meta_give(fs, m);
	entry_or_err(req, rc, &a);
}

/* keep_cache when the content is what this mount saw at its last open. */
static bool unchanged_since_seen(struct fs *fs, const struct meta_attr *a)
{
	g_mutex_lock(&fs->lock);
	struct fs_seen *s = g_hash_table_lookup(fs->seen, &a->ino);
	bool same = s && s->mtime_ns == a->mtime_ns && s->size == a->size;
	if (!s) {
		uint64_t *key = g_new(uint64_t, 1);

		*key = a->ino;
		s = g_new(struct fs_seen, 1);
		g_hash_table_insert(fs->seen, key, s);
	}
	s->mtime_ns = a->mtime_ns;
	s->size = a->size;
	g_mutex_unlock(&fs->lock);
	return same;
}

/*
 * Where the kernel's page cache would hold data no later read uses, a
 * handle does direct I/O (when the kernel keeps it coherent, mount.c):
 * - a write-only handle: the next open after a write drops the file's
 *   pages anyway (close-to-open), so caching what it writes only costs a
 *   copy into fresh pages per byte;
 * - the first read of a big file since it changed: a sequential read of
 *   gigabytes would fill the cache with pages a later open of the same
 *   content uses only if they survive until then. The open after it
 *   (same content) reads through the cache and keeps it (keep_cache).
 * Mappings still work (shared ones through the page cache), and a reader
 * still sees a writer's unflushed bytes at once.
 */
static bool past_page_cache(struct fs *fs, const struct fuse_file_info *fi,
			    const struct meta_attr *a)
{
	int access = fi->flags & O_ACCMODE;

	if (!__atomic_load_n(&fs->direct_io, __ATOMIC_RELAXED))
		return false;
	return access == O_WRONLY ||
	       (access == O_RDONLY && !fi->keep_cache && a->size >= DIRECT_READ_MIN);
}

static void forget_seen(struct fs *fs, uint64_t ino)
{
	g_mutex_lock(&fs->lock);
	g_hash_table_remove(fs->seen, &ino);
	g_mutex_unlock(&fs->lock);
}

/* O_TRUNC of a file that existed, by an unprivileged caller: its set-ID
 * bits go, those of the mode this mount shows. */
static int truncate_at_open(fuse_req_t req, struct fs_inode *in, const struct meta_attr *a)
{
	struct fs *fs = fs_of(req);
	struct meta_attr view = *a;
	int rc = fs_inode_truncate(fs, in, 0);

	open_view(fs, &view);
	if (rc == 0 && (view.mode & (S_ISUID | S_ISGID)) && !privileged(req))
		rc = kill_suidgid(fs, a->ino, in);
	return rc;
}

/* The data state of a regular file whose open is recorded; the record
 * goes again if it fails. made: a is the file a create just made. */
static int open_state(fuse_req_t req, const struct meta_attr *a, bool made,
		      struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *in;
	int rc = fs_inode_open(fs, a->ino, made && a->size == 0, &in);

	if (rc == 0)
		note_mode(fs, a);
	if (rc == 0 && (fi->flags & O_TRUNC) && !made && (rc = truncate_at_open(req, in, a)))
		fs_inode_release(fs, in);
	if (rc) {
		struct meta *m = fs_meta_take(fs);

		meta_close_file(m, fs_sid(fs), a->ino);
		fs_meta_give(fs, m);
		return rc;
	}
	fi->fh = (uintptr_t)in;
	if ((fi->flags & O_ACCMODE) == O_RDONLY)
		fi->keep_cache = unchanged_since_seen(fs, a);
	else
		forget_seen(fs, a->ino);
	fi->direct_io = past_page_cache(fs, fi, a);
	/* Close-to-open: the kernel drops the pages at this open, but its
	 * attributes may be up to attr_timeout old, and a read stops at the
	 * size it has cached. They are refreshed at their next use. A file
	 * this create made is one the kernel does not know yet. */
	if (!fi->keep_cache && !made)
		fuse_lowlevel_notify_inval_inode(fs->se, a->ino, -1, 0);
	return 0;
}

/* Opens the data state of a regular file and records the open. */
static int open_file(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct meta *m = fs_meta_take(fs);
	struct meta_attr a;
	int rc = meta_getattr(m, ino, &a);

	if (rc == 0 && META_S_ISSTREAM(a.mode)) {
		fs_meta_give(fs, m);
		return fs_stream_open(fs, &a, fi);
	}
	if (rc == 0 && !S_ISREG(a.mode))
		rc = S_ISDIR(a.mode) ? -EISDIR : -EINVAL;
	if (rc == 0)
		rc = meta_open_file(m, fs_sid(fs), ino);
	fs_meta_give(fs, m);
	return rc ? stale(rc) : open_state(req, &a, false, fi);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int rc = open_file(req, ino, fi);

	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_open(req, fi);
}


static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct meta *m = fs_meta_take(fs);
	struct meta_attr a;
	enum made how;
	int rc = make_file(m, fs_sid(fs), parent, name, mode & ~ctx->umask, ctx,
			   (fi->flags & O_EXCL) != 0, &a, &how);

	fs_meta_give(fs, m);
	if (rc == 0 && how == MADE_NOT_OPENED)
		rc = open_file(req, a.ino, fi);
	else if (rc == 0)
		rc = open_state(req, &a, how == MADE_OPENED, fi);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e = {.ino = a.ino, .generation = a.generation,
				     .attr_timeout = attr_timeout(fs, &a),
				     .entry_timeout = fs->entry_timeout};
	to_stat(fs, &a, &e.attr);
	lookup_hold(fs, a.ino);
	if (fuse_reply_create(req, &e, fi))
		lookup_drop(fs, a.ino, 1);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	if (fs_stream_fh(fi)) {
		fs_stream_read(req, fi, size);
		return;
	}
	struct fs_inode *in = (struct fs_inode *)(uintptr_t)fi->fh;
	char *buf = g_try_malloc(size ? size : 1);
	ssize_t n = buf ? fs_inode_read(fs_of(req), in, (uint64_t)off, buf, size) : -ENOMEM;

	(void)ino;
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	g_free(buf);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	if (fs_stream_fh(fi)) {
		fs_stream_write(req, fi, buf, size);
		return;
	}
	struct fs_inode *in = (struct fs_inode *)(uintptr_t)fi->fh;
	ssize_t n = fs_inode_write(fs_of(req), in, (uint64_t)off, buf, size);

	if (n > 0 && !privileged(req) && kill_suidgid_on_write(fs_of(req), ino, in))
		n = -EIO;
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

/* A stream's bytes are on its home node once each write returned. */
static int flush_file(fuse_req_t req, struct fuse_file_info *fi)
{
	if (fs_stream_fh(fi))
		return 0;
	return fs_inode_flush(fs_of(req), (struct fs_inode *)(uintptr_t)fi->fh);
}

/* Every close: the closing process's POSIX locks of the file go. */
static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int rc = flush_file(req, fi);

	if (fs_locks_release(fs_of(req), ino, META_LOCK_POSIX, fi->lock_owner) && !rc)
		rc = -EIO;
	fuse_reply_err(req, -rc);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	fuse_reply_err(req, -flush_file(req, fi));
}

/* The last close of an open file: its flock lock goes. */
static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);

	if (fi->flock_release)
		fs_locks_release(fs, ino, META_LOCK_FLOCK, fi->lock_owner);
	if (fs_stream_fh(fi)) {
		fs_stream_release(fs, fi);
		fuse_reply_err(req, 0);
		return;
	}
	int rc = fs_inode_release(fs, (struct fs_inode *)(uintptr_t)fi->fh);

	g_mutex_lock(&fs->lock);
	g_array_append_val(fs->closes, ino);
	bool full = fs->closes->len >= FS_CLOSES_MAX;
	bool closed = !fs_inode_find(fs, ino);
	g_mutex_unlock(&fs->lock);
	if (closed)
		fs_locks_forget(fs, ino);
	if (full) {
		struct meta *m = fs_meta_take(fs);

		fs_closes_drop(fs, m);
		fs_meta_give(fs, m);
	}
	fuse_reply_err(req, -rc);
}

/* ---- directories ---- */

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
};

static bool dir_add(struct dirbuf *d, const char *name, uint64_t ino, uint32_t mode, off_t next)
{
	struct stat st = {.st_ino = ino, .st_mode = mode};
	size_t need = fuse_add_direntry(d->req, NULL, 0, name, NULL, 0);

	if (d->used + need > d->size)
		return false;
	fuse_add_direntry(d->req, d->buf + d->used, d->size - d->used, name, &st, next);
	d->used += need;
	return true;
}

/* Offsets: 1 after ".", 2 after "..", then 2 + the entry's cookie. */
static int dir_entry(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	if (META_S_ISSTREAM(mode))
		mode = S_IFREG | (mode & 07777);
	return dir_add(arg, name, ino, mode, (off_t)(cookie + 2)) ? 0 : 1;
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct dirbuf d = {.req = req, .buf = g_malloc(size), .size = size};
	int rc = 0;

	(void)fi;
	if (off < 1 && !dir_add(&d, ".", ino, S_IFDIR, 1))
		goto out;
	if (off < 2 && !dir_add(&d, "..", ino, S_IFDIR, 2))
		goto out;
	struct meta *m = fs_meta_take(fs);
	rc = meta_readdir(m, ino, off >= 2 ? (uint64_t)off - 2 : 0, 4096, dir_entry, &d);
	fs_meta_give(fs, m);
out:
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, d.buf, d.used);
	g_free(d.buf);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct statvfs sv = {.f_bsize = 4096, .f_frsize = 4096, .f_namemax = META_NAME_MAX};
	struct meta_statfs ms = {0};
	uint64_t total = 0, avail = 0;
	struct meta *m = fs_meta_take(fs);

	(void)ino;
	meta_statfs(m, &ms);
	fs_meta_give(fs, m);
	store_capacity(fs->store, &total, &avail);
	sv.f_blocks = total / sv.f_frsize;
	sv.f_bfree = sv.f_bavail = avail / sv.f_frsize;
	sv.f_files = ms.inodes + (1u << 30);
	sv.f_ffree = sv.f_favail = 1u << 30;
	fuse_reply_statfs(req, &sv);
}

/* ---- xattrs ---- */

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	if (fs_xattr_reply_set(req, name))
		return;
	struct fs *fs = fs_of(req);
	int rc = fs_stream_check_xattr(name, value, size);

	if (rc == 0) {
		struct meta *m = fs_meta_take(fs);
		rc = meta_setxattr(m, ino, name, value, size, flags);
		fs_meta_give(fs, m);
	}
	fuse_reply_err(req, -rc);
}

static void reply_sized(fuse_req_t req, int rc, size_t size, const char *buf)
{
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)rc);
	else
		fuse_reply_buf(req, buf, (size_t)rc);
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	if (fs_xattr_reply_get(req, name))
		return;
	struct fs *fs = fs_of(req);
	char *buf = g_malloc(size ? size : 1);
	int rc;

	if (fs_stream_stat_name(name)) { /* asks the home node */
		rc = fs_stream_stat_xattr(fs, ino, name, buf, size);
	} else {
		struct meta *m = fs_meta_take(fs);
		rc = meta_getxattr(m, ino, name, buf, size);
		fs_meta_give(fs, m);
	}
	reply_sized(req, rc, size, buf);
	g_free(buf);
}

/* The stored names of a stream, and its statistics (getfattr -d shows
 * them); -errno. */
static int list_stream_xattrs(struct meta *m, uint64_t ino, GString *names)
{
	int len = meta_listxattr(m, ino, NULL, 0);

	if (len < 0)
		return len;
	g_string_set_size(names, (gsize)len);
	if (len > 0 && (len = meta_listxattr(m, ino, names->str, (size_t)len)) < 0)
		return len;
	fs_stream_list_stats(names);
	return 0;
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = fs_of(req);
	struct meta *m = fs_meta_take(fs);
	struct meta_attr a;
	GString *names = g_string_new(NULL);
	int rc = meta_getattr(m, ino, &a);

	if (rc == 0 && META_S_ISSTREAM(a.mode)) {
		rc = list_stream_xattrs(m, ino, names);
		if (rc == 0)
			rc = size && names->len > size ? -ERANGE : (int)names->len;
	} else if (rc == 0) {
		g_string_set_size(names, size);
		rc = meta_listxattr(m, ino, names->str, size);
	}
	fs_meta_give(fs, m);
	reply_sized(req, rc, size, names->str);
	g_string_free(names, TRUE);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct meta *m = fs_meta_take(fs);
	int rc = meta_removexattr(m, ino, name);

	fs_meta_give(fs, m);
	fuse_reply_err(req, -rc);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = BLKSIZE;
	conn->max_readahead = BLKSIZE;
	/* Writeback caching would let close() return before the data is
	 * stored, breaking close-to-open and error reporting. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* FUSE_CAP_HANDLE_KILLPRIV: see privileged(); mount.c's session I/O
	 * is what tells the kernel. */
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	/* A stream READ answered short must end the read(2): parallel
	 * direct I/O requests would put later bytes after a hole. */
	conn->want &= ~FUSE_CAP_ASYNC_DIO;
	/* Locks are the metadata's (lock.c), so that every mount sees them. */
	conn->want |= conn->capable & (FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.fsync = fs_fsync,
	.release = fs_release,
	.readdir = fs_readdir,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	.getlk = fs_getlk,
	.setlk = fs_setlk,
	.flock = fs_flock,
};
