/*
 * stream.c - stream files in the mount: live byte streams held in a ring on
 * their home node (store/stream.h), written and tailed through FUSE.
 *
 * Writers: every open for writing holds its own writer handle on the home
 * node, and each WRITE request is appended as one chunk. A write(2) of up
 * to max_write (1 MiB) is one request, so its bytes never interleave with
 * another writer's. Under the lossless policy a full ring answers -EAGAIN
 * and the append is retried until it fits or the writer is interrupted.
 *
 * Readers: the mount holds one subscription per stream (struct sub): one
 * reader handle on the home node, a thread long-polling it into a local
 * ring the size of the stream's, and the mount's readers of that stream,
 * each a position in the local ring. A READ with data waiting is answered
 * at once; one at the head is parked and answered by the subscription's
 * thread when data, the end of the stream or an error arrives. So tailing
 * readers hold no FUSE worker thread, and the node sends each byte to a
 * mount once whatever the number of its readers.
 *
 * Under the live policy a reader that fell behind the local ring skips to
 * its oldest byte, and bytes the subscription itself lost on the node are a
 * gap every reader skips; both count as dropped. Under the lossless policy
 * the subscription fetches only what its slowest reader has room for, so
 * the node holds the writers back.
 *
 * The end of the stream (the node's EOF once the last writer closed) or an
 * error ends a subscription: its readers get EOF or EIO after the bytes it
 * holds, and readers opening later start a new subscription, which waits
 * for the next writer.
 *
 * The node drops handles unused for NET_STREAM_LEASE_S; a keeper thread
 * renews every handle of the mount each KEEP_EVERY_S.
 *
 * A parked READ that the kernel interrupts is answered EINTR at once, from
 * libfuse's interrupt callback: the kernel makes even a killed reader's
 * read(2) wait for the answer. The callback finds the request in a table
 * of parked READs rather than through a pointer of its own, since it may
 * run after the reader is gone; the subscription's thread also answers
 * interrupted READs on each turn, for the one that came before it parked.
 */
#define G_LOG_DOMAIN "shardfs-fuse"

#include "common/byte_ring.h"
#include "fs_internal.h"
#include "store/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define FH_STREAM 1u /* low bit of fi->fh: a struct stream_file */
#define FETCH_MAX (1u << 20)
#define KEEP_EVERY_S 5
#define ROOM_WAIT_US (200 * 1000) /* a full lossless subscription looks for interrupts */

/* What this mount knows of a stream, kept until unmount (atomics). */
struct known {
	uint64_t dropped; /* bytes its readers here skipped */
	uint64_t end;	  /* past the last chunk its writers here appended */
};

/* A node handle, renewed by the keeper until it is closed. */
struct lease {
	gint refs;
	GMutex lock;
	struct store_stream *h; /* NULL once closed, lock */
	uint64_t ino;
	struct known *known; /* a writer's: its stream's (NULL for a subscription) */
};

struct sub {
	struct fs *fs;
	uint64_t ino;
	struct lease *lease;
	struct known *known;
	gint refs;	   /* its readers, its thread, openers waiting for it */
	GMutex lock;	   /* everything below */
	GCond room;	   /* lossless: a reader moved on or left */
	GCond started;	   /* starting is over */
	struct common_byte_ring ring;
	uint64_t live_from; /* the node's head when it opened */
	bool lossless;
	bool starting;	   /* its node handle is being opened */
	int start_rc;	   /* how that went */
	bool stop, eof;
	int error;
	GList *readers;
};

struct parked {
	fuse_req_t req;
	size_t size;
};

struct reader {
	struct sub *sub;
	uint64_t pos;	 /* sub->lock */
	bool nonblock;
	GQueue parked;	 /* struct parked, in arrival order, sub->lock */
};

struct stream_file {
	uint64_t ino;
	struct reader *r; /* NULL when write-only */
	struct lease *w;  /* NULL when read-only */
};

struct fs_streams {
	GMutex lock;
	GHashTable *subs;    /* ino -> struct sub that new readers join */
	GHashTable *known;   /* ino -> struct known, never freed before the mount */
	GHashTable *files;   /* struct stream_file set: open handles */
	GPtrArray *leases;   /* open node handles, for the keeper */
	GMutex parked_lock;  /* a leaf: nothing is locked under it */
	GHashTable *parked;  /* fuse_req_t -> struct sub: READs waiting, for interrupts */
	uint64_t moved;	     /* bytes appended and fetched (atomic) */
	unsigned threads;    /* subscription threads running */
	GCond threads_done;
	bool stopping;
	GCond stop_cond;
	GThread *keeper;
};

static struct fs *fs_of_req(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ---- leases ---- */

static struct lease *lease_new(struct fs_streams *ss, struct store_stream *h, uint64_t ino)
{
	struct lease *l = g_new0(struct lease, 1);

	l->refs = 1;
	g_mutex_init(&l->lock);
	l->h = h;
	l->ino = ino;
	g_mutex_lock(&ss->lock);
	g_ptr_array_add(ss->leases, l);
	g_mutex_unlock(&ss->lock);
	return l;
}

static void lease_unref(struct lease *l)
{
	if (g_atomic_int_dec_and_test(&l->refs)) {
		g_mutex_clear(&l->lock);
		g_free(l);
	}
}

/* Closes the handle on the node; *head = the stream's length then. */
static int lease_close(struct fs_streams *ss, struct lease *l, uint64_t *head)
{
	g_mutex_lock(&ss->lock);
	g_ptr_array_remove_fast(ss->leases, l);
	g_mutex_unlock(&ss->lock);
	g_mutex_lock(&l->lock);
	int rc = store_stream_close(l->h, head);
	l->h = NULL;
	g_mutex_unlock(&l->lock);
	lease_unref(l);
	return rc;
}

static void keep_all(struct fs_streams *ss)
{
	g_mutex_lock(&ss->lock);
	GPtrArray *now = g_ptr_array_sized_new(ss->leases->len);
	for (guint i = 0; i < ss->leases->len; i++) {
		struct lease *l = g_ptr_array_index(ss->leases, i);

		g_atomic_int_inc(&l->refs);
		g_ptr_array_add(now, l);
	}
	g_mutex_unlock(&ss->lock);
	for (guint i = 0; i < now->len; i++) {
		struct lease *l = g_ptr_array_index(now, i);

		g_mutex_lock(&l->lock);
		if (l->h && store_stream_keep(l->h))
			g_debug("stream %" G_GUINT64_FORMAT ": lease not renewed", l->ino);
		g_mutex_unlock(&l->lock);
		lease_unref(l);
	}
	g_ptr_array_free(now, TRUE);
}

static gpointer keeper(gpointer arg)
{
	struct fs_streams *ss = arg;

	g_mutex_lock(&ss->lock);
	while (!ss->stopping) {
		gint64 until = g_get_monotonic_time() + KEEP_EVERY_S * G_USEC_PER_SEC;

		while (!ss->stopping && g_cond_wait_until(&ss->stop_cond, &ss->lock, until))
			;
		if (ss->stopping)
			break;
		g_mutex_unlock(&ss->lock);
		keep_all(ss);
		g_mutex_lock(&ss->lock);
	}
	g_mutex_unlock(&ss->lock);
	return NULL;
}

static void sub_unref(struct sub *s)
{
	if (!g_atomic_int_dec_and_test(&s->refs))
		return;
	g_mutex_clear(&s->lock);
	g_cond_clear(&s->room);
	g_cond_clear(&s->started);
	common_byte_ring_fini(&s->ring);
	g_free(s);
}

/* ---- the readers (sub->lock) ---- */

static void skip_lost(struct sub *s, struct reader *r)
{
	uint64_t lost = common_byte_ring_skip_lost(&s->ring, &r->pos);

	if (lost)
		__atomic_add_fetch(&s->known->dropped, lost, __ATOMIC_RELAXED);
}

/* Whether a READ of r would be answered now: data, EOF or the error. */
static bool answerable(struct sub *s, struct reader *r)
{
	skip_lost(s, r);
	return r->pos < s->ring.head || s->error || s->eof;
}

/* Answers one READ of r if it can be: data, EOF or the error. */
static bool serve(struct sub *s, struct reader *r, fuse_req_t req, size_t size)
{
	struct iovec iov[2];
	int n;

	skip_lost(s, r);
	size_t len = common_byte_ring_peek(&s->ring, r->pos, size, iov, &n);
	if (len) {
		fuse_reply_iov(req, iov, n);
		r->pos += len;
		if (s->lossless)
			g_cond_signal(&s->room);
		return true;
	}
	if (s->error) {
		fuse_reply_err(req, s->error);
		return true;
	}
	if (s->eof) {
		fuse_reply_buf(req, NULL, 0);
		return true;
	}
	return false;
}

static void park(struct sub *s, struct reader *r, fuse_req_t req, size_t size)
{
	struct fs_streams *ss = s->fs->streams;
	struct parked *p = g_new(struct parked, 1);

	p->req = req;
	p->size = size;
	g_queue_push_tail(&r->parked, p);
	g_mutex_lock(&ss->parked_lock);
	g_hash_table_insert(ss->parked, req, s);
	g_mutex_unlock(&ss->parked_lock);
}

/* Before a parked READ is answered: an interrupt no longer finds it. */
static void unpark(struct sub *s, struct parked *p)
{
	struct fs_streams *ss = s->fs->streams;

	g_mutex_lock(&ss->parked_lock);
	g_hash_table_remove(ss->parked, p->req);
	g_mutex_unlock(&ss->parked_lock);
}

static void serve_parked(struct sub *s, struct reader *r)
{
	struct parked *p;

	while ((p = g_queue_peek_head(&r->parked))) {
		bool interrupted = fuse_req_interrupted(p->req);

		if (!interrupted && !answerable(s, r))
			break;
		unpark(s, p);
		if (interrupted)
			fuse_reply_err(p->req, EINTR);
		else
			serve(s, r, p->req, p->size);
		g_free(g_queue_pop_head(&r->parked));
	}
}

static void serve_all(struct sub *s)
{
	for (GList *l = s->readers; l; l = l->next)
		serve_parked(s, l->data);
}

static void fail_parked(struct sub *s, struct reader *r, int err)
{
	struct parked *p;

	while ((p = g_queue_pop_head(&r->parked))) {
		unpark(s, p);
		fuse_reply_err(p->req, err);
		g_free(p);
	}
}

/* libfuse's interrupt callback, on a session thread: a parked READ is
 * answered EINTR at once (a killed reader's read(2) waits for it). data is
 * the mount's streams, which outlive the session; the request cannot be
 * freed while this runs, so finding it parked means it is still ours. */
static void on_interrupt(fuse_req_t req, void *data)
{
	struct fs_streams *ss = data;

	g_mutex_lock(&ss->parked_lock);
	struct sub *s = g_hash_table_lookup(ss->parked, req);
	if (s)
		g_atomic_int_inc(&s->refs);
	g_mutex_unlock(&ss->parked_lock);
	if (!s)
		return;
	g_mutex_lock(&s->lock);
	for (GList *l = s->readers; l; l = l->next) {
		struct reader *r = l->data;

		for (GList *q = r->parked.head; q; q = q->next) {
			struct parked *p = q->data;

			if (p->req != req)
				continue;
			unpark(s, p);
			fuse_reply_err(req, EINTR);
			g_queue_delete_link(&r->parked, q);
			g_free(p);
			goto done;
		}
	}
done:
	g_mutex_unlock(&s->lock);
	sub_unref(s);
}

/* How much to fetch: all there is under live; under lossless what the
 * slowest reader leaves room for (0 after waiting a while for room). */
static size_t fetch_room(struct sub *s)
{
	if (!s->lossless) /* a reply never larger than the ring */
		return (size_t)MIN(FETCH_MAX, s->ring.cap);
	uint64_t slowest = s->ring.head;
	for (GList *l = s->readers; l; l = l->next)
		slowest = MIN(slowest, ((struct reader *)l->data)->pos);
	uint64_t room = common_byte_ring_room(&s->ring, slowest);
	if (room)
		return (size_t)MIN(FETCH_MAX, room);
	g_cond_wait_until(&s->room, &s->lock, g_get_monotonic_time() + ROOM_WAIT_US);
	serve_all(s); /* interrupted READs */
	return 0;
}

/* ---- subscriptions ---- */


/* One long-poll: fetches what the node has past the head. */
static void sub_fetch(struct sub *s, uint8_t *buf, size_t want)
{
	uint64_t pos = s->ring.head, first = pos;
	uint32_t readers = g_list_length(s->readers);
	size_t got = 0;

	g_mutex_unlock(&s->lock);
	int rc = store_stream_read(s->lease->h, pos, buf, want, readers, &first, &got);
	g_mutex_lock(&s->lock);
	if (rc == STORE_EEOF) {
		s->eof = true;
	} else if (rc < 0) {
		g_warning("stream %" G_GUINT64_FORMAT ": home node lost: %s", s->ino, common_strerror(rc));
		s->error = EIO;
	} else if (got && (rc = common_byte_ring_put(&s->ring, first, buf, got))) {
		s->error = -rc;
	} else {
		__atomic_add_fetch(&s->fs->streams->moved, got, __ATOMIC_RELAXED);
	}
}

static void sub_detach(struct fs_streams *ss, struct sub *s)
{
	g_mutex_lock(&ss->lock);
	if (g_hash_table_lookup(ss->subs, &s->ino) == s)
		g_hash_table_remove(ss->subs, &s->ino);
	g_mutex_unlock(&ss->lock);
}

static gpointer sub_thread(gpointer arg)
{
	struct sub *s = arg;
	struct fs_streams *ss = s->fs->streams;
	uint8_t *buf = g_malloc(FETCH_MAX);

	g_mutex_lock(&s->lock);
	while (!s->stop && !s->eof && !s->error) {
		size_t want = fetch_room(s);

		if (want && !s->stop)
			sub_fetch(s, buf, want);
		serve_all(s);
	}
	g_mutex_unlock(&s->lock);
	g_free(buf);
	sub_detach(ss, s);
	lease_close(ss, s->lease, NULL);
	sub_unref(s);
	g_mutex_lock(&ss->lock);
	if (--ss->threads == 0)
		g_cond_broadcast(&ss->threads_done);
	g_mutex_unlock(&ss->lock);
	return NULL;
}

static struct known *known_of(struct fs_streams *ss, uint64_t ino)
{
	g_mutex_lock(&ss->lock);
	struct known *k = g_hash_table_lookup(ss->known, &ino);
	if (!k) {
		uint64_t *key = g_new(uint64_t, 1);

		*key = ino;
		k = g_new0(struct known, 1);
		g_hash_table_insert(ss->known, key, k);
	}
	g_mutex_unlock(&ss->lock);
	return k;
}

static struct reader *reader_join(struct sub *s, uint64_t pos, bool nonblock)
{
	struct reader *r = g_new0(struct reader, 1);

	r->sub = s;
	r->pos = pos;
	r->nonblock = nonblock;
	g_queue_init(&r->parked);
	s->readers = g_list_prepend(s->readers, r);
	g_atomic_int_inc(&s->refs);
	return r;
}

/* A subscription not yet open on the node: openers of the stream in this
 * mount wait for it (sub->started) instead of opening one each. */
static struct sub *sub_new(struct fs *fs, uint64_t ino, const struct fs_stream_conf *c,
			   struct known *k)
{
	struct sub *s = g_new0(struct sub, 1);

	s->fs = fs;
	s->ino = ino;
	s->refs = 1; /* its thread's, once started */
	g_mutex_init(&s->lock);
	g_cond_init(&s->room);
	g_cond_init(&s->started);
	common_byte_ring_init(&s->ring, c->ring_bytes, 0);
	s->lossless = c->lossless;
	s->starting = true;
	s->known = k;
	return s;
}

/* Opens the node handle, from the node's oldest byte, and starts the
 * thread; or ends the subscription with the error. Wakes its openers. */
static void sub_begin(struct sub *s)
{
	struct fs_streams *ss = s->fs->streams;
	struct store_stream_options o = {.lossless = s->lossless, .ring_bytes = s->ring.cap};
	struct store_stream *h = NULL;
	uint64_t head = 0, oldest = 0;
	uint8_t id[16];

	fs_stream_id(s->ino, id);
	int rc = store_stream_open(s->fs->store, id, &o, &h, &head, &oldest);
	if (rc == 0)
		s->lease = lease_new(ss, h, s->ino);
	g_mutex_lock(&s->lock);
	common_byte_ring_restart(&s->ring, oldest); /* empty: nothing fetched yet */
	s->live_from = head;
	s->start_rc = rc;
	s->starting = false;
	g_cond_broadcast(&s->started);
	g_mutex_unlock(&s->lock);
	if (rc) {
		sub_detach(ss, s);
		sub_unref(s);
		return;
	}
	g_mutex_lock(&ss->lock);
	ss->threads++;
	g_mutex_unlock(&ss->lock);
	g_thread_unref(g_thread_new("stream", sub_thread, s));
}

/* The mount's subscription of ino that a new reader may join, or a new
 * one (*mine) in the table; a reference is taken for the caller. */
static struct sub *sub_find(struct fs *fs, uint64_t ino, const struct fs_stream_conf *c, bool *mine)
{
	struct fs_streams *ss = fs->streams;
	struct known *k = known_of(ss, ino);

	g_mutex_lock(&ss->lock);
	struct sub *s = g_hash_table_lookup(ss->subs, &ino);
	if (s) {
		g_mutex_lock(&s->lock);
		if (s->stop || s->eof || s->error)
			s = NULL; /* ending: a reader opening now waits for the next writer */
		else
			g_atomic_int_inc(&s->refs);
		g_mutex_unlock(&s->lock);
	}
	*mine = !s;
	if (!s) {
		s = sub_new(fs, ino, c, k);
		g_atomic_int_inc(&s->refs);
		g_hash_table_replace(ss->subs, &s->ino, s);
	}
	g_mutex_unlock(&ss->lock);
	return s;
}

static int open_reader(struct fs *fs, uint64_t ino, const struct fs_stream_conf *c, bool nonblock,
		       struct reader **out)
{
	int rc = -EAGAIN;

	for (int tries = 0; rc == -EAGAIN && tries < 3; tries++) {
		bool mine;
		struct sub *s = sub_find(fs, ino, c, &mine);

		if (mine)
			sub_begin(s);
		g_mutex_lock(&s->lock);
		while (s->starting)
			g_cond_wait(&s->started, &s->lock);
		rc = s->start_rc ? s->start_rc : s->error ? -s->error : s->stop ? -EAGAIN : 0;
		if (rc == 0) { /* one that reached EOF meanwhile gives EOF: a writer came and went */
			uint64_t pos = c->start_live ? MAX(s->ring.head, s->live_from) : s->ring.oldest;
			*out = reader_join(s, pos, nonblock);
		}
		g_mutex_unlock(&s->lock);
		sub_unref(s);
	}
	return rc == -EAGAIN ? -EIO : rc;
}

/* The reader leaves; parked READs (a reader killed while waiting) are
 * answered err. The last reader stops the subscription. */
static void reader_leave(struct reader *r, int err)
{
	struct sub *s = r->sub;

	g_mutex_lock(&s->lock);
	fail_parked(s, r, err);
	s->readers = g_list_remove(s->readers, r);
	if (!s->readers)
		s->stop = true;
	g_cond_signal(&s->room);
	g_mutex_unlock(&s->lock);
	g_free(r);
	sub_unref(s);
}

/* ---- the FUSE side ---- */

static int errno_of(int rc)
{
	return rc == -EINVAL || rc == -ENOMEM || rc == -EFBIG || rc == -EINTR ? rc : -EIO;
}

bool fs_stream_fh(const struct fuse_file_info *fi)
{
	return fi->fh & FH_STREAM;
}

static struct stream_file *file_of(const struct fuse_file_info *fi)
{
	return (struct stream_file *)(uintptr_t)(fi->fh & ~(uint64_t)FH_STREAM);
}

static int open_writer(struct fs *fs, const struct meta_attr *a, const struct fs_stream_conf *c,
		       struct lease **out)
{
	struct known *k = known_of(fs->streams, a->ino);
	/* The metadata's length may not yet have this mount's last writer's
	 * (its release runs after close(2) returned). */
	uint64_t base = MAX(a->size, __atomic_load_n(&k->end, __ATOMIC_RELAXED));
	struct store_stream_options o = {.writer = true, .lossless = c->lossless,
					 .ring_bytes = c->ring_bytes, .base = base};
	struct store_stream *h;
	uint8_t id[16];

	fs_stream_id(a->ino, id);
	int rc = store_stream_open(fs->store, id, &o, &h, NULL, NULL);
	if (rc)
		return rc;
	*out = lease_new(fs->streams, h, a->ino);
	(*out)->known = k;
	return 0;
}

int fs_stream_open(struct fs *fs, const struct meta_attr *a, struct fuse_file_info *fi)
{
	struct stream_file *sf = g_new0(struct stream_file, 1);
	int acc = fi->flags & O_ACCMODE, rc = 0;
	struct fs_stream_conf c;
	struct meta *m = fs_meta_take(fs);

	fs_stream_conf_load(m, a->ino, &c);
	fs_meta_give(fs, m);
	sf->ino = a->ino;
	if (acc != O_RDONLY)
		rc = open_writer(fs, a, &c, &sf->w);
	if (rc == 0 && acc != O_WRONLY)
		rc = open_reader(fs, a->ino, &c, fi->flags & O_NONBLOCK, &sf->r);
	if (rc) {
		if (sf->w)
			lease_close(fs->streams, sf->w, NULL);
		g_free(sf);
		g_warning("stream %" G_GUINT64_FORMAT ": open: %s", a->ino, common_strerror(rc));
		return errno_of(rc);
	}
	g_mutex_lock(&fs->streams->lock);
	g_hash_table_add(fs->streams->files, sf);
	g_mutex_unlock(&fs->streams->lock);
	fi->fh = (uintptr_t)sf | FH_STREAM;
	fi->direct_io = 1; /* the page cache would serve stale bytes */
	fi->nonseekable = 1;
	fi->keep_cache = 0;
	return 0;
}

void fs_stream_read(fuse_req_t req, struct fuse_file_info *fi, size_t size)
{
	struct reader *r = file_of(fi)->r;

	if (!r) {
		fuse_reply_err(req, EBADF);
		return;
	}
	struct sub *s = r->sub;
	if (!r->nonblock) /* before it can be parked: the callback may run at once */
		fuse_req_interrupt_func(req, on_interrupt, fs_of_req(req)->streams);
	g_mutex_lock(&s->lock);
	if (!g_queue_is_empty(&r->parked) || !serve(s, r, req, size)) {
		if (r->nonblock)
			fuse_reply_err(req, EAGAIN);
		else
			park(s, r, req, size);
	}
	g_mutex_unlock(&s->lock);
}

static void end_at_least(struct known *k, uint64_t end)
{
	uint64_t now = __atomic_load_n(&k->end, __ATOMIC_RELAXED);

	while (now < end &&
	       !__atomic_compare_exchange_n(&k->end, &now, end, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

void fs_stream_write(fuse_req_t req, struct fuse_file_info *fi, const char *buf, size_t size)
{
	struct stream_file *sf = file_of(fi);
	int rc = 0;

	if (!sf->w) {
		fuse_reply_err(req, EBADF);
		return;
	}
	uint64_t at = 0;
	if (size) /* under lossless the node asks to come back while the ring is full */
		while ((rc = store_stream_append(sf->w->h, buf, size, &at)) == -EAGAIN)
			if (fuse_req_interrupted(req)) {
				rc = -EINTR;
				break;
			}
	if (rc == 0 && size) {
		end_at_least(sf->w->known, at + size);
		__atomic_add_fetch(&fs_of_req(req)->streams->moved, size, __ATOMIC_RELAXED);
	}
	if (rc) {
		g_debug("stream %" G_GUINT64_FORMAT ": append: %s", sf->ino, common_strerror(rc));
		fuse_reply_err(req, -errno_of(rc));
	} else {
		fuse_reply_write(req, size);
	}
}

/* The stream's length goes to the metadata, where a writer's next open
 * finds it if the home node lost its ring meanwhile. */
static void record_length(struct fs *fs, uint64_t ino, uint64_t head)
{
	struct meta *m = fs_meta_take(fs);
	struct meta_attr a;

	if (meta_getattr(m, ino, &a) == 0 && head > a.size) {
		struct meta_setattr set = {.mask = META_SET_SIZE, .size = head};

		meta_setattr(m, ino, &set, NULL);
	}
	fs_meta_give(fs, m);
}

static void file_close(struct fs *fs, struct stream_file *sf, int parked_err)
{
	uint64_t head = 0;

	if (sf->r)
		reader_leave(sf->r, parked_err);
	if (sf->w) { /* from its own appends too: the home node may be gone */
		uint64_t end = __atomic_load_n(&sf->w->known->end, __ATOMIC_RELAXED);

		lease_close(fs->streams, sf->w, &head);
		record_length(fs, sf->ino, MAX(head, end));
	}
	g_free(sf);
}

void fs_stream_release(struct fs *fs, struct fuse_file_info *fi)
{
	struct stream_file *sf = file_of(fi);

	g_mutex_lock(&fs->streams->lock);
	g_hash_table_remove(fs->streams->files, sf);
	g_mutex_unlock(&fs->streams->lock);
	file_close(fs, sf, EINTR);
}

/* ---- attributes and statistics ---- */

uint64_t fs_stream_size(struct fs *fs, uint64_t ino, uint64_t stored)
{
	struct store_stream_stat st;
	uint8_t id[16];

	fs_stream_id(ino, id);
	if (store_stream_stat(fs->store, id, &st))
		return stored;
	return MAX(stored, st.head);
}

int fs_stream_stat_xattr(struct fs *fs, uint64_t ino, const char *name, char *buf, size_t size)
{
	struct store_stream_stat st = {0};
	struct meta_attr attr, *a = &attr;
	uint8_t id[16];
	struct meta *m = fs_meta_take(fs);
	int rc = meta_getattr(m, ino, a);

	fs_meta_give(fs, m);
	if (rc)
		return rc;
	if (!META_S_ISSTREAM(a->mode))
		return -ENODATA;
	fs_stream_id(a->ino, id);
	rc = store_stream_stat(fs->store, id, &st);
	if (rc && rc != -ENOENT)
		return -EIO;
	g_mutex_lock(&fs->streams->lock);
	struct known *k = g_hash_table_lookup(fs->streams->known, &a->ino);
	uint64_t mine = k ? __atomic_load_n(&k->dropped, __ATOMIC_RELAXED) : 0;
	g_mutex_unlock(&fs->streams->lock);
	const char *stat = name + strlen(FS_XATTR_PREFIX);
	uint64_t v = !strcmp(stat, "readers")	      ? st.readers
		     : !strcmp(stat, "writers")	      ? st.writers
		     : !strcmp(stat, "subscriptions") ? st.subscriptions
		     : !strcmp(stat, "home")	      ? st.node
		     : !strcmp(stat, "written")	      ? MAX(st.head, a->size)
		     : !strcmp(stat, "oldest")	      ? (rc ? a->size : st.oldest)
						      : mine;
	char text[24];
	int n = g_snprintf(text, sizeof(text), "%" G_GUINT64_FORMAT, v);
	if (size && (size_t)n > size)
		return -ERANGE;
	if (size)
		memcpy(buf, text, (size_t)n);
	return n;
}

uint64_t fs_streams_moved(struct fs *fs)
{
	return fs->streams ? __atomic_load_n(&fs->streams->moved, __ATOMIC_RELAXED) : 0;
}

/* ---- the mount's stream directories and lifetime ---- */

int fs_streams_init(struct fs *fs, const char *dirs)
{
	struct fs_streams *ss = g_new0(struct fs_streams, 1);
	int rc = 0;

	g_mutex_init(&ss->lock);
	g_cond_init(&ss->threads_done);
	g_cond_init(&ss->stop_cond);
	ss->subs = g_hash_table_new(g_int64_hash, g_int64_equal);
	ss->known = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
	ss->files = g_hash_table_new(NULL, NULL);
	ss->leases = g_ptr_array_new();
	g_mutex_init(&ss->parked_lock);
	ss->parked = g_hash_table_new(NULL, NULL);
	fs->streams = ss;
	char **list = g_strsplit(dirs ? dirs : "", ":", -1);
	struct meta *m = fs_meta_take(fs);
	for (char **d = list; rc == 0 && *d; d++)
		if (**d && (rc = fs_stream_mark_dir(m, *d)))
			g_printerr("shardfs: streams=%s: %s\n", *d, g_strerror(-rc));
	fs_meta_give(fs, m);
	g_strfreev(list);
	ss->keeper = g_thread_new("stream-keeper", keeper, ss);
	return rc;
}

void fs_streams_stop(struct fs *fs)
{
	struct fs_streams *ss = fs->streams;

	if (!ss)
		return;
	g_mutex_lock(&ss->lock);
	ss->stopping = true;
	g_cond_broadcast(&ss->stop_cond);
	GList *open = g_hash_table_get_keys(ss->files);
	g_hash_table_remove_all(ss->files);
	g_mutex_unlock(&ss->lock);
	for (GList *l = open; l; l = l->next) /* the kernel is gone: no release comes */
		file_close(fs, l->data, EIO);
	g_list_free(open);
	g_mutex_lock(&ss->lock);
	while (ss->threads)
		g_cond_wait(&ss->threads_done, &ss->lock);
	g_mutex_unlock(&ss->lock);
	if (ss->keeper)
		g_thread_join(ss->keeper);
	ss->keeper = NULL;
}

void fs_streams_free(struct fs *fs)
{
	struct fs_streams *ss = fs->streams;

	if (!ss)
		return;
	fs_streams_stop(fs);
	g_hash_table_destroy(ss->subs);
	g_hash_table_destroy(ss->known);
	g_hash_table_destroy(ss->files);
	g_ptr_array_free(ss->leases, TRUE);
	g_hash_table_destroy(ss->parked);
	g_mutex_clear(&ss->parked_lock);
	g_mutex_clear(&ss->lock);
	g_cond_clear(&ss->threads_done);
	g_cond_clear(&ss->stop_cond);
	g_free(ss);
	fs->streams = NULL;
}
