/*
 * metrics.c - histograms and the Prometheus text format (metrics.h).
 * Written by hand: Debian packages no C client library for Prometheus,
 * and the format is a few line shapes.
 */
#include "metrics.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const double latency_le[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
				    0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1,
				    2.5,     5,      10};
const struct metrics_buckets metrics_latency_buckets = {latency_le, G_N_ELEMENTS(latency_le), 1e-9};

static const double count_le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
const struct metrics_buckets metrics_count_buckets = {count_le, G_N_ELEMENTS(count_le), 1};

G_STATIC_ASSERT(G_N_ELEMENTS(latency_le) <= METRICS_MAX_BUCKETS);

void metrics_hist_init(struct metrics_hist *h, const struct metrics_buckets *b)
{
	memset(h, 0, sizeof(*h));
	h->b = b;
}

void metrics_hist_observe(struct metrics_hist *h, uint64_t v)
{
	double x = (double)v * h->b->unit;
	unsigned i = 0;

	while (i < h->b->n && x > h->b->le[i])
		i++;
	__atomic_add_fetch(&h->counts[i], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&h->sum, v, __ATOMIC_RELAXED);
}

void metrics_family(GString *out, const char *name, const char *type, const char *help)
{
	g_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* In the C locale whatever the process's, as Prometheus parses it. */
static void append_value(GString *out, double v)
{
	char buf[G_ASCII_DTOSTR_BUF_SIZE];

	g_string_append(out, g_ascii_formatd(buf, sizeof(buf), "%.15g", v));
}

static void sample_head(GString *out, const char *name, const char *suffix, const char *labels)
{
	g_string_append(out, name);
	g_string_append(out, suffix);
	if (labels && *labels)
		g_string_append_printf(out, "{%s}", labels);
	g_string_append_c(out, ' ');
}

void metrics_sample(GString *out, const char *name, const char *labels, double v)
{
	sample_head(out, name, "", labels);
	append_value(out, v);
	g_string_append_c(out, '\n');
}

void metrics_sample_u64(GString *out, const char *name, const char *labels, uint64_t v)
{
	sample_head(out, name, "", labels);
	g_string_append_printf(out, "%" G_GUINT64_FORMAT "\n", v);
}

void metrics_one(GString *out, const char *name, const char *type, const char *help, double v)
{
	metrics_family(out, name, type, help);
	metrics_sample(out, name, NULL, v);
}

static void bucket_line(GString *out, const char *name, const char *labels, const char *le,
			uint64_t cumulative)
{
	g_string_append_printf(out, "%s_bucket{%s%sle=\"%s\"} %" G_GUINT64_FORMAT "\n", name,
			       labels ? labels : "", labels && *labels ? "," : "", le, cumulative);
}

void metrics_hist_write(GString *out, const char *name, const char *labels,
			const struct metrics_hist *h)
{
	uint64_t cumulative = 0;
	char le[G_ASCII_DTOSTR_BUF_SIZE];

	for (unsigned i = 0; i < h->b->n; i++) {
		cumulative += __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
		bucket_line(out, name, labels, g_ascii_formatd(le, sizeof(le), "%g", h->b->le[i]),
			    cumulative);
	}
	cumulative += __atomic_load_n(&h->counts[h->b->n], __ATOMIC_RELAXED);
	bucket_line(out, name, labels, "+Inf", cumulative);
	sample_head(out, name, "_sum", labels);
	append_value(out, (double)__atomic_load_n(&h->sum, __ATOMIC_RELAXED) * h->b->unit);
	g_string_append_c(out, '\n');
	sample_head(out, name, "_count", labels);
	g_string_append_printf(out, "%" G_GUINT64_FORMAT "\n", cumulative);
}

/* Fields 14, 15 (utime, stime in ticks) and 22 (start time in ticks since
 * boot) of /proc/self/stat, after the command name's closing parenthesis. */
static gboolean read_stat(double *cpu_s, double *start_s)
{
	char *text = NULL, *p;
	unsigned long long utime, stime, start;
	double tick = (double)sysconf(_SC_CLK_TCK);
	gboolean ok = g_file_get_contents("/proc/self/stat", &text, NULL, NULL) &&
		      (p = strrchr(text, ')')) &&
		      sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d"
				    " %*d %*d %*d %llu", &utime, &stime, &start) == 3;
	char *uptime = NULL;
	double boot_ago = 0;

	if (ok && g_file_get_contents("/proc/uptime", &uptime, NULL, NULL))
		boot_ago = g_ascii_strtod(uptime, NULL);
	if (ok) {
		*cpu_s = (double)(utime + stime) / tick;
		*start_s = (double)g_get_real_time() / 1e6 - boot_ago + (double)start / tick;
	}
	g_free(uptime);
	g_free(text);
	return ok;
}

static double rss_bytes(void)
{
	char *text = NULL;
	unsigned long long pages = 0;

	if (g_file_get_contents("/proc/self/statm", &text, NULL, NULL))
		sscanf(text, "%*u %llu", &pages);
	g_free(text);
	return (double)pages * (double)sysconf(_SC_PAGESIZE);
}

static double open_fds(void)
{
	GDir *d = g_dir_open("/proc/self/fd", 0, NULL);
	double n = 0;

	while (d && g_dir_read_name(d))
		n++;
	if (d)
		g_dir_close(d);
	return n > 0 ? n - 1 : 0; /* the directory's own descriptor */
}

void metrics_process(GString *out)
{
	double cpu = 0, start = 0;

	metrics_one(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
		    rss_bytes());
	if (read_stat(&cpu, &start)) {
		metrics_one(out, "process_cpu_seconds_total", "counter",
			    "Total user and system CPU time spent in seconds.", cpu);
		metrics_one(out, "process_start_time_seconds", "gauge",
			    "Start time of the process since unix epoch in seconds.", start);
	}
	metrics_one(out, "process_open_fds", "gauge", "Number of open file descriptors.", open_fds());
}
