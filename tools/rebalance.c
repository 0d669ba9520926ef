/*
 * rebalance.c - `shardfs rebalance [-c CLUSTER] [--dry-run] [--json]
 * [--rate MIB]`: moves the shards that are not where the ring now puts
 * them (store_rebalance), after `shardfs node add` or `node drain`, and
 * prints what moved: the share of all shards, bytes and rate.
 *
 * Exit status 0 when every shard is where the ring puts it (with
 * --dry-run: always, after showing what would move), 1 when some are
 * left: a copy failed, parts wait for repair, or too few active nodes.
 */
#define G_LOG_DOMAIN "shardfs"

#include "client.h"
#include "common/error.h"
#include "shardfs.h"
#include "store/store.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <unistd.h>

static double share(uint64_t part, uint64_t whole)
{
	return whole ? (double)part / (double)whole : 0.0;
}

static void print_text(const struct store_rebalance_stats *st, bool dry_run, double secs)
{
	g_autofree char *moved = tools_iec_size(st->bytes_moved);

	printf("parts:     %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT " shards)\n", st->parts,
	       st->shards);
	printf("misplaced: %" G_GUINT64_FORMAT " shards (%.1f%% of all)\n", st->shards_misplaced,
	       100.0 * share(st->shards_misplaced, st->shards));
	printf("%s %" G_GUINT64_FORMAT " shards, %s", dry_run ? "would move:" : "moved:    ",
	       st->shards_moved, moved);
	if (!dry_run)
		printf(" in %.1f s (%.1f MiB/s)", secs,
		       secs > 0 ? (double)st->bytes_moved / (1 << 20) / secs : 0.0);
	printf("\n");
	if (st->parts_degraded)
		printf("waiting:   %" G_GUINT64_FORMAT " parts with shards missing, for repair first\n",
		       st->parts_degraded);
	if (st->parts_stuck)
		printf("stuck:     %" G_GUINT64_FORMAT " parts: too few active nodes for all their"
		       " shards\n", st->parts_stuck);
	if (st->parts_elsewhere || st->moves_failed)
		printf("again:     %" G_GUINT64_FORMAT " parts busy or rewritten, %" G_GUINT64_FORMAT
		       " copies failed: run again\n", st->parts_elsewhere, st->moves_failed);
	if (st->nodes_out)
		printf("drained:   %u node%s now out: `shardfs node remove` takes them away\n",
		       st->nodes_out, st->nodes_out == 1 ? "" : "s");
	if (dry_run)
		printf("dry run: nothing was changed\n");
}

static void member(JsonBuilder *b, const char *name, uint64_t v)
{
	json_builder_set_member_name(b, name);
	json_builder_add_int_value(b, (gint64)v);
}

static void print_json(const struct store_rebalance_stats *st, bool dry_run, double secs,
		       bool balanced)
{
	JsonBuilder *b = json_builder_new();

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "dry_run");
	json_builder_add_boolean_value(b, dry_run);
	member(b, "parts", st->parts);
	member(b, "shards", st->shards);
	member(b, "shards_misplaced", st->shards_misplaced);
	member(b, "shards_moved", st->shards_moved);
	member(b, "bytes_moved", st->bytes_moved);
	json_builder_set_member_name(b, "moved_share");
	json_builder_add_double_value(b, share(st->shards_moved, st->shards));
	json_builder_set_member_name(b, "seconds");
	json_builder_add_double_value(b, secs);
	member(b, "parts_degraded", st->parts_degraded);
	member(b, "parts_stuck", st->parts_stuck);
	member(b, "parts_elsewhere", st->parts_elsewhere);
	member(b, "moves_failed", st->moves_failed);
	member(b, "nodes_out", st->nodes_out);
	json_builder_set_member_name(b, "balanced");
	json_builder_add_boolean_value(b, balanced);
	json_builder_end_object(b);
	tools_print_json(b);
}

static int rebalance(struct client *c, const struct store_rebalance_options *o, bool json)
{
	struct store_rebalance_stats st;
	struct tools_bar bar = {.on = !json && isatty(STDERR_FILENO), .what = "rebalance",
				.start = g_get_monotonic_time()};
	int rc = store_rebalance(c->store, c->meta, o, &st, tools_bar_show, &bar);
	double secs = (double)(g_get_monotonic_time() - bar.start) / 1e6;

	if (bar.on)
		fprintf(stderr, "\r\033[K");
	if (rc) {
		fprintf(stderr, "shardfs rebalance: metadata: %s\n", common_strerror(rc));
		return SHARDFS_EXIT_FAIL;
	}
	bool balanced = st.shards_moved == st.shards_misplaced && !st.parts_degraded &&
			!st.parts_stuck && !st.parts_elsewhere && !st.moves_failed;

	if (json)
		print_json(&st, o->dry_run, secs, balanced);
	else
		print_text(&st, o->dry_run, secs);
	return balanced || o->dry_run ? 0 : SHARDFS_EXIT_FAIL;
}

int cmd_rebalance(int argc, char **argv)
{
	char *config = NULL;
	gboolean dry_run = FALSE, json = FALSE;
	gint rate_mib = 0;
	const GOptionEntry entries[] = {
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &config,
		 "cluster file or directory (default: $SHARDFS_CONF)", "CLUSTER"},
		{"dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry_run, "show what would move, move nothing",
		 NULL},
		{"json", 0, 0, G_OPTION_ARG_NONE, &json, "print one JSON object", NULL},
		{"rate", 0, 0, G_OPTION_ARG_INT, &rate_mib, "MiB/s of shards moved at most (0: no bound)",
		 "MIB"},
		G_OPTION_ENTRY_NULL};
	struct client c;

	if (!tools_parse(argc, argv, entries, "- move shards to where the ring now places them"))
		return SHARDFS_EXIT_USAGE;
	if (argc > 1 || rate_mib < 0) {
		fprintf(stderr, "shardfs rebalance: no argument but options (--rate 0 or more)\n");
		g_free(config);
		return SHARDFS_EXIT_USAGE;
	}
	int rc = client_open(&c, "rebalance", config);

	g_free(config);
	if (rc)
		return rc;
	struct store_rebalance_options o = {.dry_run = dry_run,
					    .bytes_per_s = (uint64_t)rate_mib << 20};

	rc = rebalance(&c, &o, json);
	client_close(&c);
	return rc;
}
