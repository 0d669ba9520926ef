/*
 * scrub.c - `shardfs scrub [-c CLUSTER] [--deep] [--json] [--grace S]
 * [--dry-run]`: checks the cluster's shards against the manifests
 * (store_scrub): a shard a manifest names that its node lacks is marked
 * for repair, a shard no manifest names and older than the grace period
 * is deleted; --deep also reads every part and checks its checksum.
 *
 * Exit status 0 when nothing is left wrong (whatever was found was
 * fixed), 1 when something is: a node did not answer, a missing shard
 * could not be marked, a part does not read, an orphan could not be
 * deleted, or anything was found with --dry-run.
 */
#define G_LOG_DOMAIN "shardfs"

#include "client.h"
#include "common/error.h"
#include "shardfs.h"
#include "store/store.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <unistd.h>

static bool left_wrong(const struct store_scrub_stats *st, bool dry_run)
{
	uint64_t orphans_left = st->orphans_found - st->orphans_young - st->orphans_deleted;

	if (dry_run)
		return st->nodes_answered < st->nodes || st->missing_found || st->orphans_found >
		       st->orphans_young || st->parts_unreadable;
	return st->nodes_answered < st->nodes || st->missing_found > st->missing_marked ||
	       orphans_left || st->parts_unreadable;
}

/* The paths of the unreadable inodes ("" for one without a name). */
static char **unreadable_paths(struct meta *m, const struct store_scrub_stats *st)
{
	char **paths = g_new0(char *, st->unreadable_inos->len + 1);

	for (guint i = 0; i < st->unreadable_inos->len; i++)
		if (meta_path_of(m, g_array_index(st->unreadable_inos, uint64_t, i), &paths[i]))
			paths[i] = g_strdup("");
	return paths;
}

static void print_text(const struct store_scrub_stats *st, const struct store_scrub_options *o,
		       char **paths)
{
	printf("nodes:   %u of %u answered\n", st->nodes_answered, st->nodes);
	printf("parts:   %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT " bytes), %" G_GUINT64_FORMAT
	       " shards named by the manifests, %" G_GUINT64_FORMAT " held by the nodes (and %"
	       G_GUINT64_FORMAT " of metadata backups)\n", st->parts, st->bytes, st->shards_named,
	       st->shards_listed, st->backup_shards);
	printf("missing: %" G_GUINT64_FORMAT " found, %" G_GUINT64_FORMAT " marked for repair\n",
	       st->missing_found, st->missing_marked);
	printf("orphans: %" G_GUINT64_FORMAT " found, %" G_GUINT64_FORMAT " deleted, %" G_GUINT64_FORMAT
	       " kept (younger than %" G_GUINT64_FORMAT " s)\n", st->orphans_found,
	       st->orphans_deleted, st->orphans_young, o->grace_s);
	if (o->deep)
		printf("deep:    %" G_GUINT64_FORMAT " parts read, %" G_GUINT64_FORMAT " corrupt shard"
		       " reads read around (repair rewrites those shards), %" G_GUINT64_FORMAT " parts unreadable\n",
		       st->parts_read, st->corrupt_reads, st->parts_unreadable);
	for (guint i = 0; i < st->unreadable_inos->len; i++)
		printf("unreadable: %s (inode %" G_GUINT64_FORMAT ")\n",
		       paths[i][0] ? paths[i] : "a file with no name",
		       g_array_index(st->unreadable_inos, uint64_t, i));
	if (o->dry_run)
		printf("dry run: nothing was changed\n");
}

static void member(JsonBuilder *b, const char *name, uint64_t v)
{
	json_builder_set_member_name(b, name);
	json_builder_add_int_value(b, (gint64)v);
}

static void print_json(const struct store_scrub_stats *st, const struct store_scrub_options *o,
		       char **paths, bool clean)
{
	JsonBuilder *b = json_builder_new();

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "deep");
	json_builder_add_boolean_value(b, o->deep);
	json_builder_set_member_name(b, "dry_run");
	json_builder_add_boolean_value(b, o->dry_run);
	member(b, "grace_s", o->grace_s);
	member(b, "nodes", st->nodes);
	member(b, "nodes_answered", st->nodes_answered);
	member(b, "parts", st->parts);
	member(b, "bytes", st->bytes);
	member(b, "shards_named", st->shards_named);
	member(b, "shards_listed", st->shards_listed);
	member(b, "backup_shards", st->backup_shards);
	member(b, "missing_found", st->missing_found);
	member(b, "missing_marked", st->missing_marked);
	member(b, "orphans_found", st->orphans_found);
	member(b, "orphans_deleted", st->orphans_deleted);
	member(b, "orphans_young", st->orphans_young);
	member(b, "parts_read", st->parts_read);
	member(b, "parts_unreadable", st->parts_unreadable);
	member(b, "corrupt_reads", st->corrupt_reads);
	json_builder_set_member_name(b, "unreadable_inodes");
	json_builder_begin_array(b);
	for (guint i = 0; i < st->unreadable_inos->len; i++)
		json_builder_add_int_value(b, (gint64)g_array_index(st->unreadable_inos, uint64_t, i));
	json_builder_end_array(b);
	json_builder_set_member_name(b, "unreadable_paths");
	json_builder_begin_array(b);
	for (guint i = 0; i < st->unreadable_inos->len; i++)
		json_builder_add_string_value(b, paths[i]);
	json_builder_end_array(b);
	json_builder_set_member_name(b, "clean");
	json_builder_add_boolean_value(b, clean);
	json_builder_end_object(b);

	tools_print_json(b);
}

int cmd_scrub(int argc, char **argv)
{
	char *config = NULL;
	gboolean deep = FALSE, json = FALSE, dry_run = FALSE;
	gint64 grace = STORE_SCRUB_GRACE_DEFAULT_S;
	const GOptionEntry entries[] = {
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &config,
		 "cluster file or directory (default: $SHARDFS_CONF)", "CLUSTER"},
		{"deep", 0, 0, G_OPTION_ARG_NONE, &deep,
		 "also read every part and check it against its checksum", NULL},
		{"json", 0, 0, G_OPTION_ARG_NONE, &json, "print one JSON object", NULL},
		{"grace", 0, 0, G_OPTION_ARG_INT64, &grace,
		 "seconds an orphan shard must be old to be deleted (" G_STRINGIFY(
			 STORE_SCRUB_GRACE_DEFAULT_S) "): younger ones may be a write in progress",
		 "S"},
		{"dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry_run, "count only, change nothing", NULL},
		G_OPTION_ENTRY_NULL};
	struct client c;

	if (!tools_parse(argc, argv, entries, "- check every shard against the manifests"))
		return SHARDFS_EXIT_USAGE;
	if (argc > 1 || grace < 0 || grace > 10 * 365 * 86400LL) {
		fprintf(stderr, "shardfs scrub: no argument but options (grace 0..315360000 s)\n");
		g_free(config);
		return SHARDFS_EXIT_USAGE;
	}
	int rc = client_open(&c, "scrub", config);

	g_free(config);
	if (rc)
		return rc;
	struct store_scrub_options o = {.deep = deep, .dry_run = dry_run, .grace_s = (uint64_t)grace};
	struct store_scrub_stats st;
	struct tools_bar bar = {.on = !json && isatty(STDERR_FILENO), .what = "scrub",
				.start = g_get_monotonic_time()};

	rc = store_scrub(c.store, c.meta, &o, &st, tools_bar_show, &bar);
	if (bar.on)
		fprintf(stderr, "\r\033[K");
	char **paths = rc ? NULL : unreadable_paths(c.meta, &st);

	client_close(&c);
	if (rc) {
		fprintf(stderr, "shardfs scrub: metadata: %s\n", common_strerror(rc));
		store_scrub_stats_free(&st);
		return SHARDFS_EXIT_FAIL;
	}
	bool wrong = left_wrong(&st, dry_run);

	if (json)
		print_json(&st, &o, paths, !wrong);
	else
		print_text(&st, &o, paths);
	g_strfreev(paths);
	store_scrub_stats_free(&st);
	return wrong ? SHARDFS_EXIT_FAIL : 0;
}
