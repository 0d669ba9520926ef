/*
 * scrubber.h - a node's background scrub: every interval, one pass of
 * wal_scrub_paced over the whole store at a bounded rate. A record found
 * corrupt is marked in the index (reads then answer NET_ECORRUPT, and a
 * reader rebuilds the shard's bytes from the others) and logged with its
 * shard's key.
 */
#ifndef SHARDFS_NODE_SCRUBBER_H
#define SHARDFS_NODE_SCRUBBER_H

#include <glib.h>
#include <stdint.h>

struct wal;
struct node_scrubber;

/* Starts the thread: the first pass one interval after the start. */
struct node_scrubber *node_scrubber_start(struct wal *w, uint32_t node_id, unsigned interval_s,
					  uint64_t bytes_per_s);
/* Ends a pass in progress within a tenth of a second and joins; NULL: no-op. */
void node_scrubber_stop(struct node_scrubber *s);
/* Passes, bytes checked, corrupt records found, the running pass's
 * progress, in Prometheus's text format. */
void node_scrubber_metrics(struct node_scrubber *s, GString *out);

#endif
