/*
 * stream.h - the client side of stream files: handles on a stream kept in
 * a ring on its home node (the first node the hash ring names for the
 * stream's id that answers). The mount keeps one reader handle per stream
 * and fans out to its own readers (fuse/stream.c).
 */
#ifndef SHARDFS_STORE_STREAM_H
#define SHARDFS_STORE_STREAM_H

#include "store/store.h"

#define STORE_STREAM_RING_DEFAULT (8ull << 20)
#define STORE_STREAM_RING_MAX (1ull << 30)

struct store_stream;

struct store_stream_options {
	bool writer;
	bool lossless;	     /* writers wait for the slowest reader */
	uint64_t ring_bytes; /* 0: the node's default (8 MiB) */
	uint64_t base;	     /* the stream's length as the metadata knows it */
};

/* Where a stream stands on its home node. */
struct store_stream_stat {
	uint64_t head, oldest, ring_bytes, dropped, chunks;
	unsigned writers, readers, subscriptions;
	bool lossless;
	uint32_t node; /* the home node: the one that answered */
};

/* Opens a handle; *head and *oldest (may be NULL) tell where the stream
 * stands. -EIO-like errors of the transport when no home node answers. */
int store_stream_open(struct store *s, const uint8_t id[16], const struct store_stream_options *o,
		      struct store_stream **out, uint64_t *head, uint64_t *oldest);
/* Closes the handle on the node (errors are only reported) and frees it;
 * *head (may be NULL) = the stream's length as the node then knew it. */
int store_stream_close(struct store_stream *h, uint64_t *head);
/* Appends one chunk whole; *at = its first byte. -EAGAIN: a lossless
 * stream is full for now, nothing appended, call again. */
int store_stream_append(struct store_stream *h, const void *buf, size_t n, uint64_t *at);
/*
 * One read from position pos, waiting at most about a second for data:
 * *first = the position of buf[0] (beyond pos if the reader fell out of
 * the ring), *got bytes (0: nothing yet, ask again). STORE_EEOF once every
 * writer closed and the reader has everything. local_readers is only for
 * the node's statistics.
 */
int store_stream_read(struct store_stream *h, uint64_t pos, void *buf, size_t cap,
		      uint32_t local_readers, uint64_t *first, size_t *got);
/* Renews the handle's lease (handles idle for 15 s are dropped). */
int store_stream_keep(struct store_stream *h);
/* -ENOENT if the home node holds no such stream. */
int store_stream_stat(struct store *s, const uint8_t id[16], struct store_stream_stat *st);

#endif
