/*
 * bench_wal.c - `shardfs bench wal`: the shard store against the raw disk.
 *
 * In one run, on one directory of one disk:
 *   dd write     dd bs=1M conv=fsync of SIZE (the physical limit), and
 *                dd bs=1M oflag=direct as a second reference
 *   append       SIZE of 1 MiB shards, each acknowledged only once durable,
 *                with a window of shards in flight as a node has
 *   read         the same shards read back and compared, page cache dropped
 *   dd read      dd bs=1M of the dd file, page cache dropped
 *   concurrent   WRITERS threads each appending 64 KiB records one at a time
 *                (waiting for each ack): only group commit makes this fast
 * Ratios are to dd on the same disk in the same run, because the machine is
 * shared and absolute figures drift from run to run.
 */
#define G_LOG_DOMAIN "shardfs"

#include "bench.h"
#include "common/waiter.h"
#include "kit.h"
#include "tools/cli_args.h"
#include "wal/wal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct bench_opts {
	char *dir;
	gint size_mib;
	gint writers;
	gint record_kib;
	gint window;
	gboolean json;
	gboolean keep;
};

struct results {
	double dd_write, dd_direct, append, read, dd_read, concurrent; /* MiB/s */
	double append_per_sync, concurrent_per_sync;
	double peak_rss_mib;
};

/* Runs dd with one extra operand (or none) and returns its MiB/s, or a
 * negative value. */
static double run_dd(const char *in, const char *out, int mib, const char *extra)
{
	char *ifarg = g_strconcat("if=", in, NULL), *ofarg = g_strconcat("of=", out, NULL);
	char *count = g_strdup_printf("count=%d", mib);
	char *argv[] = {"dd", ifarg, ofarg, "bs=1M", count, "status=none", (char *)extra, NULL};
	GError *err = NULL;
	gint status = 0;
	double t0 = bench_now_s(), rate = -1;

	if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status,
			  &err))
		fprintf(stderr, "shardfs: cannot run dd: %s\n", err->message);
	else if (!g_spawn_check_wait_status(status, &err))
		fprintf(stderr, "shardfs: dd failed: %s\n", err->message);
	else
		rate = mib / (bench_now_s() - t0);
	g_clear_error(&err);
	g_free(ifarg);
	g_free(ofarg);
	g_free(count);
	return rate;
}

static struct wal_key bench_key(uint32_t object, uint32_t part)
{
	struct wal_key k = {.part = part};

	memcpy(k.object_id, &object, sizeof(object));
	return k;
}

static int open_store(const char *dir, struct wal **w)
{
	struct wal_options o;
	int rc;

	wal_options_default(&o);
	o.dir = dir;
	o.background_compaction = FALSE;
	rc = wal_open(&o, w);
	if (rc < 0)
		fprintf(stderr, "shardfs: cannot open store %s: %s\n", dir, common_strerror(rc));
	return rc;
}

static double syncs_per_record(struct wal *w)
{
	struct wal_stats st;

	wal_get_stats(w, &st);
	return st.syncs ? (double)st.appends / (double)st.syncs : 0;
}

static int bench_append(struct wal *w, const uint8_t *data, int count, int window,
			struct results *res)
{
	struct common_waiter in_flight;
	double t0 = bench_now_s();
	int rc = 0;

	common_waiter_init(&in_flight, 0);
	for (int i = 0; i < count && rc == 0; i++) {
		struct wal_key k = bench_key(1, (uint32_t)i);

		rc = common_waiter_wait_below(&in_flight, (unsigned)window);
		if (rc)
			break;
		common_waiter_add(&in_flight, 1);
		rc = wal_put_async(w, &k, data, 1u << 20, common_waiter_done_cb, &in_flight);
		if (rc < 0)
			common_waiter_done(&in_flight, rc);
	}
	int failed = common_waiter_wait(&in_flight);

	rc = rc ? rc : failed;
	res->append = count / (bench_now_s() - t0);
	res->append_per_sync = syncs_per_record(w);
	common_waiter_fini(&in_flight);
	return rc;
}

static int bench_read(struct wal *w, const uint8_t *data, int count, struct results *res)
{
	uint8_t *buf = g_malloc(1u << 20);
	double t0 = bench_now_s();
	int rc = 0;

	for (int i = 0; i < count && rc == 0; i++) {
		struct wal_key k = bench_key(1, (uint32_t)i);
		ssize_t n = wal_read(w, &k, 0, buf, 1u << 20);

		if (n != 1 << 20 || memcmp(buf, data, 1u << 20) != 0)
			rc = n < 0 ? (int)n : -EIO;
	}
	res->read = count / (bench_now_s() - t0);
	g_free(buf);
	return rc;
}

struct writer_arg {
	struct wal *w;
	const uint8_t *data;
	uint32_t id;
	int records;
	size_t record_len;
	int rc;
};

static gpointer writer_main(gpointer p)
{
	struct writer_arg *a = p;

	for (int i = 0; i < a->records && a->rc == 0; i++) {
		struct wal_key k = bench_key(100 + a->id, (uint32_t)i);

		a->rc = wal_put(a->w, &k, a->data, a->record_len);
	}
	return NULL;
}

static int bench_concurrent(struct wal *w, const uint8_t *data, const struct bench_opts *o,
			    struct results *res)
{
	size_t record = (size_t)o->record_kib << 10;
	int records = (int)(((uint64_t)o->size_mib << 20) / record / (uint64_t)o->writers);
	struct writer_arg *args = g_new0(struct writer_arg, o->writers);
	GThread **threads = g_new0(GThread *, o->writers);
	double t0 = bench_now_s();
	int rc = 0;

	for (int i = 0; i < o->writers; i++) {
		args[i] = (struct writer_arg){w, data, (uint32_t)i, records, record, 0};
		threads[i] = g_thread_new("bench-writer", writer_main, &args[i]);
	}
	for (int i = 0; i < o->writers; i++) {
		g_thread_join(threads[i]);
		rc = rc ? rc : args[i].rc;
	}
	res->concurrent = (double)records * (double)o->writers * (double)record / (1 << 20) /
			  (bench_now_s() - t0);
	res->concurrent_per_sync = syncs_per_record(w);
	g_free(threads);
	g_free(args);
	return rc;
}

static const struct bench_col table_cols[] = {
	BENCH_COL("", -40, 0),
	BENCH_COL("MiB/s", 10, 1),
	BENCH_COL("vs dd", 8, 2),
};

static void table_row(const char *label, double mibs, double vs_dd)
{
	struct bench_row row;

	bench_row_start(&row, table_cols, G_N_ELEMENTS(table_cols));
	bench_row_text(&row, label);
	bench_row_num(&row, mibs);
	bench_row_num(&row, vs_dd);
	bench_row_end(&row);
}

static void print_table(const struct bench_opts *o, const struct results *r)
{
	char label[64];

	printf("shardfs bench wal: %d MiB in %s\n\n", o->size_mib, o->dir);
	bench_table_head(table_cols, G_N_ELEMENTS(table_cols));
	table_row("dd bs=1M conv=fsync", r->dd_write, 1);
	table_row("dd bs=1M oflag=direct (reference)", r->dd_direct, r->dd_direct / r->dd_write);
	table_row("wal append 1 MiB, acked after fsync", r->append, r->append / r->dd_write);
	table_row("dd read bs=1M (cache dropped)", r->dd_read, 1);
	table_row("wal read 1 MiB (cache dropped)", r->read, r->read / r->dd_read);
	g_snprintf(label, sizeof(label), "wal %d writers x %d KiB, each acked", o->writers,
		   o->record_kib);
	table_row(label, r->concurrent, r->concurrent / r->dd_write);
	printf("\nrecords per fsync: %.1f (append), %.1f (concurrent); peak RSS %.1f MiB\n",
	       r->append_per_sync, r->concurrent_per_sync, r->peak_rss_mib);
}

static void print_json(const struct bench_opts *o, const struct results *r)
{
	struct bench_json j;

	bench_json_init(&j, FALSE);
	bench_json_str(&j, "bench", "wal");
	bench_json_int(&j, "size_mib", o->size_mib);
	bench_json_num(&j, "dd_write_mibs", r->dd_write, 1);
	bench_json_num(&j, "dd_direct_mibs", r->dd_direct, 1);
	bench_json_num(&j, "append_mibs", r->append, 1);
	bench_json_num(&j, "append_ratio", r->append / r->dd_write, 3);
	bench_json_num(&j, "dd_read_mibs", r->dd_read, 1);
	bench_json_num(&j, "read_mibs", r->read, 1);
	bench_json_num(&j, "read_ratio", r->read / r->dd_read, 3);
	bench_json_int(&j, "concurrent_writers", o->writers);
	bench_json_int(&j, "concurrent_record_kib", o->record_kib);
	bench_json_num(&j, "concurrent_mibs", r->concurrent, 1);
	bench_json_num(&j, "concurrent_ratio", r->concurrent / r->dd_write, 3);
	bench_json_num(&j, "append_records_per_sync", r->append_per_sync, 2);
	bench_json_num(&j, "concurrent_records_per_sync", r->concurrent_per_sync, 2);
	bench_json_num(&j, "peak_rss_mib", r->peak_rss_mib, 1);
	bench_json_print(&j);
}

static gboolean enough_space(const struct bench_opts *o)
{
	struct statvfs sv;
	uint64_t need = (uint64_t)o->size_mib * 3 * (1 << 20) / 10 * 11; /* dd, then two stores */

	if (statvfs(o->dir, &sv) < 0 || (uint64_t)sv.f_bavail * sv.f_frsize >= need)
		return TRUE;
	fprintf(stderr, "shardfs: %s has %llu MiB free, the bench needs %llu MiB (3 x --size)\n",
		o->dir, (unsigned long long)((uint64_t)sv.f_bavail * sv.f_frsize >> 20),
		(unsigned long long)(need >> 20));
	return FALSE;
}

static int run(struct bench_opts *o)
{
	char *seq_dir = g_build_filename(o->dir, "append", NULL);
	char *conc_dir = g_build_filename(o->dir, "concurrent", NULL);
	char *dd_file = g_build_filename(o->dir, "dd.bin", NULL);
	uint8_t *data = g_malloc(1u << 20);
	struct results res = {0};
	struct wal *w = NULL;
	int rc;

	for (size_t i = 0; i < (1u << 20) / 4; i++)
		((uint32_t *)data)[i] = g_random_int();
	res.dd_write = run_dd("/dev/zero", dd_file, o->size_mib, "conv=fsync");
	bench_drop_dir_cache(o->dir);
	res.dd_read = run_dd(dd_file, "/dev/null", o->size_mib, NULL);
	unlink(dd_file);
	res.dd_direct = run_dd("/dev/zero", dd_file, o->size_mib, "oflag=direct");
	unlink(dd_file);
	rc = res.dd_write > 0 && res.dd_read > 0 && res.dd_direct > 0 ? 0 : -EIO;
	if (rc == 0)
		rc = open_store(seq_dir, &w);
	if (rc == 0)
		rc = bench_append(w, data, o->size_mib, o->window, &res);
	if (rc == 0) {
		bench_drop_dir_cache(seq_dir);
		rc = bench_read(w, data, o->size_mib, &res);
	}
	wal_close(w);
	w = NULL;
	if (rc == 0)
		rc = open_store(conc_dir, &w);
	if (rc == 0)
		rc = bench_concurrent(w, data, o, &res);
	wal_close(w);
	res.peak_rss_mib = bench_proc_peak_rss_mib(getpid());
	if (rc < 0)
		fprintf(stderr, "shardfs: bench wal failed: %s\n", common_strerror(rc));
	else if (o->json)
		print_json(o, &res);
	else
		print_table(o, &res);
	g_free(data);
	g_free(dd_file);
	g_free(conc_dir);
	g_free(seq_dir);
	return rc;
}

int cmd_bench_wal(int argc, char **argv)
{
	struct bench_opts o = {.size_mib = 2048, .writers = 32, .record_kib = 64, .window = 32};
	GOptionEntry entries[] = {
		{"dir", 'd', 0, G_OPTION_ARG_FILENAME, &o.dir, "directory on the disk to measure (default: a new one under ./)", "DIR"},
		{"size", 's', 0, G_OPTION_ARG_INT, &o.size_mib, "MiB written by each phase (default 2048)", "MIB"},
		{"writers", 'w', 0, G_OPTION_ARG_INT, &o.writers, "concurrent writers (default 32)", "N"},
		{"record-kib", 0, 0, G_OPTION_ARG_INT, &o.record_kib, "record size of the concurrent phase (default 64)", "KIB"},
		{"window", 0, 0, G_OPTION_ARG_INT, &o.window, "1 MiB appends in flight (default 32)", "N"},
		{"json", 0, 0, G_OPTION_ARG_NONE, &o.json, "print one JSON object", NULL},
		{"keep", 0, 0, G_OPTION_ARG_NONE, &o.keep, "keep the files written", NULL},
		{NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	gboolean made_dir = FALSE;
	int rc;

	if (!tools_parse(argc, argv, entries, "- durable shard appends and reads vs dd"))
		return SHARDFS_EXIT_USAGE;
	if (o.size_mib < 1 || o.writers < 1 || o.record_kib < 1 || o.record_kib > 32768 ||
	    o.window < 1) {
		fprintf(stderr, "shardfs: --size, --writers, --window must be positive, --record-kib 1..32768\n");
		return SHARDFS_EXIT_USAGE;
	}
	if (!o.dir) {
		o.dir = g_strdup("shardfs-bench-XXXXXX");
		if (!g_mkdtemp(o.dir)) {
			fprintf(stderr, "shardfs: cannot create %s: %s\n", o.dir, g_strerror(errno));
			return SHARDFS_EXIT_FAIL;
		}
		made_dir = TRUE;
	} else if (g_mkdir_with_parents(o.dir, 0755) < 0) {
		fprintf(stderr, "shardfs: cannot create %s: %s\n", o.dir, g_strerror(errno));
		return SHARDFS_EXIT_FAIL;
	}
	rc = enough_space(&o) ? run(&o) : -ENOSPC;
	if (!o.keep) {
		char *sub[] = {"append", "concurrent", NULL};

		for (int i = 0; sub[i]; i++) {
			g_autofree char *path = g_build_filename(o.dir, sub[i], NULL);

			bench_remove_tree(path);
		}
		if (made_dir)
			rmdir(o.dir);
	}
	g_free(o.dir);
	return rc < 0 ? SHARDFS_EXIT_FAIL : 0;
}
