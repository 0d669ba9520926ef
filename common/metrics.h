/*
 * metrics.h - what nodes and mounts measure for Prometheus: histograms
 * that many threads fill without a lock, and the text exposition format
 * (version 0.0.4) they and the counters of each module are written in.
 *
 * Names follow Prometheus's conventions: a shardfs_ prefix, base units in
 * the name (_seconds, _bytes), _total on counters. The process_* family
 * uses the names every Prometheus client library uses for them.
 *
 * A histogram is a fixed set of buckets (METRICS_*_BUCKETS below) chosen
 * for its kind of value; observing one is a few relaxed atomic adds.
 */
#ifndef SHARDFS_COMMON_METRICS_H
#define SHARDFS_COMMON_METRICS_H

#include <glib.h>
#include <stdint.h>

/* The upper bounds of a histogram's buckets, ascending, in the unit of
 * the exposition (seconds for latencies); +Inf is implied. What is
 * observed is an integer that times unit is in that unit. */
struct metrics_buckets {
	const double *le;
	unsigned n;  /* at most METRICS_MAX_BUCKETS */
	double unit; /* 1e-9: nanoseconds observed, seconds shown */
};

#define METRICS_MAX_BUCKETS 20

/* Latencies from 50 us to 10 s, observed in nanoseconds. */
extern const struct metrics_buckets metrics_latency_buckets;
/* Small counts (records per group commit): 1, 2, 4 ... 1024. */
extern const struct metrics_buckets metrics_count_buckets;

struct metrics_hist {
	const struct metrics_buckets *b;
	uint64_t counts[METRICS_MAX_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
	uint64_t sum;			      /* of what was observed, in its units */
};

void metrics_hist_init(struct metrics_hist *h, const struct metrics_buckets *b);
/* Any thread, no lock: relaxed atomic adds. A reader may see a count and
 * sum one observation apart, which Prometheus tolerates. */
void metrics_hist_observe(struct metrics_hist *h, uint64_t v);

/* ---- the exposition text ---- */

/* "# HELP" and "# TYPE" lines of a family; type is counter, gauge or
 * histogram. */
void metrics_family(GString *out, const char *name, const char *type, const char *help);
/* One sample; labels is NULL or the inside of the braces, already quoted
 * (for example: op="read"). */
void metrics_sample(GString *out, const char *name, const char *labels, double v);
void metrics_sample_u64(GString *out, const char *name, const char *labels, uint64_t v);
/* A family of one sample without labels. */
void metrics_one(GString *out, const char *name, const char *type, const char *help, double v);
/* The _bucket, _sum and _count samples of a histogram. */
void metrics_hist_write(GString *out, const char *name, const char *labels,
			const struct metrics_hist *h);
/* process_resident_memory_bytes, process_cpu_seconds_total,
 * process_start_time_seconds and process_open_fds, from /proc. */
void metrics_process(GString *out);

#endif
