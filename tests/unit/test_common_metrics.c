/*
 * test_common_metrics.c - histograms and the Prometheus text format: an
 * observation lands in the first bucket whose bound holds it, buckets
 * are written cumulative with +Inf, _sum in the exposition's unit, and
 * the lines have the shapes the format wants; observations from several
 * threads are all counted.
 */
#include "common/metrics.h"

#include <glib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

static void test_latency_histogram_text(void **state)
{
	struct metrics_hist h;
	GString *out = g_string_new(NULL);

	(void)state;
	metrics_hist_init(&h, &metrics_latency_buckets);
	metrics_hist_observe(&h, 50000);	 /* 50 us: on the first bound */
	metrics_hist_observe(&h, 700000);	 /* 0.7 ms: le 0.001 */
	metrics_hist_observe(&h, 30000000000ull); /* 30 s: only +Inf */
	metrics_family(out, "shardfs_x_seconds", "histogram", "A test.");
	metrics_hist_write(out, "shardfs_x_seconds", "op=\"put\"", &h);
	assert_non_null(strstr(out->str, "# HELP shardfs_x_seconds A test.\n"
					 "# TYPE shardfs_x_seconds histogram\n"
					 "shardfs_x_seconds_bucket{op=\"put\",le=\"5e-05\"} 1\n"
					 "shardfs_x_seconds_bucket{op=\"put\",le=\"0.0001\"} 1\n"));
	assert_non_null(strstr(out->str, "shardfs_x_seconds_bucket{op=\"put\",le=\"0.0005\"} 1\n"
					 "shardfs_x_seconds_bucket{op=\"put\",le=\"0.001\"} 2\n"));
	assert_non_null(strstr(out->str, "shardfs_x_seconds_bucket{op=\"put\",le=\"10\"} 2\n"
					 "shardfs_x_seconds_bucket{op=\"put\",le=\"+Inf\"} 3\n"
					 "shardfs_x_seconds_sum{op=\"put\"} 30.00075\n"
					 "shardfs_x_seconds_count{op=\"put\"} 3\n"));
	g_string_free(out, TRUE);
}

static void test_samples_without_labels(void **state)
{
	struct metrics_hist h;
	GString *out = g_string_new(NULL);

	(void)state;
	metrics_hist_init(&h, &metrics_count_buckets);
	metrics_hist_observe(&h, 3);
	metrics_hist_write(out, "shardfs_n", NULL, &h);
	metrics_one(out, "shardfs_y_total", "counter", "Ys.", 12345678901.0);
	metrics_sample_u64(out, "shardfs_z", "a=\"b\"", UINT64_MAX);
	assert_non_null(strstr(out->str, "shardfs_n_bucket{le=\"2\"} 0\nshardfs_n_bucket{le=\"4\"} 1\n"));
	assert_non_null(strstr(out->str, "shardfs_n_sum 3\nshardfs_n_count 1\n"));
	assert_non_null(strstr(out->str, "# TYPE shardfs_y_total counter\nshardfs_y_total 12345678901\n"));
	assert_non_null(strstr(out->str, "shardfs_z{a=\"b\"} 18446744073709551615\n"));
	g_string_free(out, TRUE);
}

static gpointer observe_many(gpointer p)
{
	for (int i = 0; i < 100000; i++)
		metrics_hist_observe(p, (uint64_t)(i % 7) * 1000000);
	return NULL;
}

static void test_threads_lose_no_observation(void **state)
{
	struct metrics_hist h;
	GThread *t[4];
	uint64_t n = 0;

	(void)state;
	metrics_hist_init(&h, &metrics_latency_buckets);
	for (int i = 0; i < 4; i++)
		t[i] = g_thread_new("observe", observe_many, &h);
	for (int i = 0; i < 4; i++)
		g_thread_join(t[i]);
	for (unsigned i = 0; i <= h.b->n; i++)
		n += h.counts[i];
	assert_int_equal(n, 400000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_latency_histogram_text),
		cmocka_unit_test(test_samples_without_labels),
		cmocka_unit_test(test_threads_lose_no_observation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
