/*
 * meta.c - `shardfs meta check [-c CLUSTER]`: the integrity check of the
 * cluster's namespace (meta_check), on either engine; and `shardfs meta
 * migrate --to URL [-c CLUSTER]`: moves the namespace into another
 * metadata database (SQLite to PostgreSQL, or back) and points the
 * cluster file at it.
 *
 * Refused while a mount or repair worker of the cluster runs (a session
 * heard from lately), since what it wrote after the copy would be lost.
 * The copy is checked (meta_check) before the cluster file changes; the
 * old database stays as it was, for the user to keep or remove.
 *
 * `shardfs meta dump [FILE|-]` writes the namespace as a dump (meta_dump)
 * and `shardfs meta load [--to URL] [FILE|-]` loads one into an empty
 * database, the cluster's own by default (meta_load).
 */
#define G_LOG_DOMAIN "shardfs"

#include "shardfs.h"
#include "store/meta/meta.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Three missed heartbeats of a mount (every 5 s): it is gone. */
#define LIVE_WITHIN_S 15

/* Points the cluster file at url, keeping its comments. */
static gboolean point_conf_at(const char *conf, const char *url, GError **err)
{
	GKeyFile *kf = g_key_file_new();
	gboolean ok = g_key_file_load_from_file(kf, conf, G_KEY_FILE_KEEP_COMMENTS, err);

	if (ok) {
		g_key_file_set_string(kf, "cluster", "meta", url);
		ok = g_key_file_save_to_file(kf, conf, err);
	}
	g_key_file_free(kf);
	return ok;
}

static char *meta_url_of(const char *conf)
{
	GKeyFile *kf = g_key_file_new();
	char *url = NULL;

	if (g_key_file_load_from_file(kf, conf, G_KEY_FILE_NONE, NULL))
		url = g_key_file_get_string(kf, "cluster", "meta", NULL);
	g_key_file_free(kf);
	return url;
}

static int migrate(const char *conf, const char *to)
{
	g_autofree char *from_url = meta_url_of(conf);
	g_autofree char *safe_from = from_url ? meta_url_safe(from_url) : NULL;
	g_autofree char *safe_to = meta_url_safe(to);
	struct meta *from = NULL;
	unsigned live = 0;
	uint64_t rows = 0;
	GError *err = NULL;
	int rc;

	if (!from_url) {
		fprintf(stderr, "shardfs meta migrate: %s names no metadata ([cluster] meta)\n", conf);
		return SHARDFS_EXIT_FAIL;
	}
	if ((rc = meta_open(from_url, &from)) < 0) {
		fprintf(stderr, "shardfs meta migrate: %s: %s\n", safe_from, g_strerror(-rc));
		return SHARDFS_EXIT_FAIL;
	}
	rc = meta_session_live(from, LIVE_WITHIN_S, &live);
	if (rc == 0 && live) {
		fprintf(stderr, "shardfs meta migrate: %u mount%s or repair worker%s of this cluster"
				" still run%s; stop them first (nothing was changed)\n", live,
			live == 1 ? "" : "s", live == 1 ? "" : "s", live == 1 ? "s" : "");
		meta_close(from);
		return SHARDFS_EXIT_FAIL;
	}
	if (rc == 0)
		rc = meta_copy_to(from, to, &rows);
	meta_close(from);
	if (rc == -EEXIST) {
		fprintf(stderr, "shardfs meta migrate: %s already holds a shardfs namespace;"
				" give an empty database (nothing was changed)\n", safe_to);
		return SHARDFS_EXIT_FAIL;
	}
	if (rc < 0) {
		fprintf(stderr, "shardfs meta migrate: copying into %s: %s (the cluster still uses %s)\n",
			safe_to, g_strerror(-rc), safe_from);
		return SHARDFS_EXIT_FAIL;
	}
	if (!point_conf_at(conf, to, &err)) {
		fprintf(stderr, "shardfs meta migrate: copied, but %s: %s\n", conf, err->message);
		g_error_free(err);
		return SHARDFS_EXIT_FAIL;
	}
	printf("copied %" G_GUINT64_FORMAT " rows from %s to %s, checked; %s now uses %s"
	       " (the old database is left as it was)\n", rows, safe_from, safe_to, conf, safe_to);
	return 0;
}

static int check(const char *conf)
{
	g_autofree char *url = meta_url_of(conf);
	g_autofree char *safe = url ? meta_url_safe(url) : g_strdup("(none)");
	struct meta *m = NULL;
	char *report = NULL;
	int rc = url ? meta_open(url, &m) : -ENOENT;

	if (rc < 0) {
		fprintf(stderr, "shardfs meta check: %s: %s\n", safe, g_strerror(-rc));
		return SHARDFS_EXIT_FAIL;
	}
	rc = meta_check(m, &report);
	meta_close(m);
	if (rc == 0)
		printf("metadata %s: clean\n", safe);
	else
		printf("metadata %s: NOT clean\n%s", safe, report ? report : "");
	g_free(report);
	return rc == 0 ? 0 : SHARDFS_EXIT_FAIL;
}

/* To FILE through FILE.tmp, renamed once whole: a dump that fails
 * leaves no file that looks like one. */
static int dump(const char *conf, const char *file)
{
	g_autofree char *url = meta_url_of(conf);
	g_autofree char *safe = url ? meta_url_safe(url) : g_strdup("(none)");
	gboolean to_stdout = !file || !strcmp(file, "-");
	g_autofree char *tmp = to_stdout ? NULL : g_strconcat(file, ".tmp", NULL);
	struct meta *m = NULL;
	GError *err = NULL;
	uint64_t rows = 0;
	int rc = url ? meta_open(url, &m) : -ENOENT;

	if (rc < 0) {
		fprintf(stderr, "shardfs meta dump: %s: %s\n", safe, g_strerror(-rc));
		return SHARDFS_EXIT_FAIL;
	}
	FILE *out = to_stdout ? stdout : fopen(tmp, "w");
	if (!out) {
		fprintf(stderr, "shardfs meta dump: %s: %s\n", tmp, g_strerror(errno));
		meta_close(m);
		return SHARDFS_EXIT_FAIL;
	}
	rc = meta_dump(m, out, &rows, &err);
	meta_close(m);
	if (!to_stdout && (fsync(fileno(out)) | fclose(out)) && rc == 0)
		rc = -errno;
	if (!to_stdout && rc == 0 && rename(tmp, file))
		rc = -errno;
	if (rc < 0) {
		fprintf(stderr, "shardfs meta dump: %s\n", err ? err->message : g_strerror(-rc));
		g_clear_error(&err);
		if (tmp)
			unlink(tmp);
		return SHARDFS_EXIT_FAIL;
	}
	fprintf(stderr, "dumped %" G_GUINT64_FORMAT " rows of %s%s%s\n", rows, safe,
		to_stdout ? "" : " to ", to_stdout ? "" : file);
	return 0;
}

static int load(const char *url, const char *file)
{
	g_autofree char *safe = meta_url_safe(url);
	gboolean from_stdin = !file || !strcmp(file, "-");
	FILE *in = from_stdin ? stdin : fopen(file, "r");
	GError *err = NULL;
	uint64_t rows = 0;

	if (!in) {
		fprintf(stderr, "shardfs meta load: %s: %s\n", file, g_strerror(errno));
		return SHARDFS_EXIT_FAIL;
	}
	int rc = meta_load(url, in, &rows, &err);

	if (!from_stdin)
		fclose(in);
	if (rc < 0) {
		fprintf(stderr, "shardfs meta load: %s%s%s: %s (nothing was loaded)\n",
			from_stdin ? "" : file, from_stdin ? "" : " into ", safe, err->message);
		g_error_free(err);
		return SHARDFS_EXIT_FAIL;
	}
	printf("loaded %" G_GUINT64_FORMAT " rows into %s, checked\n", rows, safe);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: shardfs meta check [-c CLUSTER]\n"
			"       shardfs meta migrate --to URL [-c CLUSTER]\n"
			"       shardfs meta dump [-c CLUSTER] [FILE|-]\n"
			"       shardfs meta load [-c CLUSTER | --to URL] [FILE|-]\n");
	return SHARDFS_EXIT_USAGE;
}

int cmd_meta(int argc, char **argv)
{
	g_autofree char *named = NULL, *to = NULL, *conf = NULL;
	GOptionEntry entries[] = {
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &named, "cluster file or directory (default: $SHARDFS_CONF)", "CLUSTER"},
		{"to", 0, 0, G_OPTION_ARG_STRING, &to, "the empty database to move the namespace or load the dump into", "URL"},
		G_OPTION_ENTRY_NULL,
	};

	if (!tools_parse(argc, argv, entries, "check | migrate --to URL | dump [FILE] | load [FILE]"
			 " - check the namespace, move it into another metadata database"
			 " (sqlite:///PATH or postgresql://...), write it as a dump, or load a dump"
			 " into an empty database"))
		return SHARDFS_EXIT_USAGE;
	const char *what = argc >= 2 ? argv[1] : "";
	const char *file = argc == 3 ? argv[2] : NULL;
	gboolean is_check = argc == 2 && !strcmp(what, "check") && !to;
	gboolean is_migrate = argc == 2 && !strcmp(what, "migrate") && to;
	gboolean is_dump = (argc == 2 || argc == 3) && !strcmp(what, "dump") && !to;
	gboolean is_load = (argc == 2 || argc == 3) && !strcmp(what, "load") && !(to && named);

	if (!is_check && !is_migrate && !is_dump && !is_load)
		return usage();
	if (is_load && to)
		return load(to, file);
	int rc = tools_cluster_file("meta", named, &conf);

	if (rc)
		return rc;
	if (is_load) {
		g_autofree char *url = meta_url_of(conf);

		if (!url) {
			fprintf(stderr, "shardfs meta load: %s names no metadata ([cluster] meta)\n",
				conf);
			return SHARDFS_EXIT_FAIL;
		}
		return load(url, file);
	}
	if (is_dump)
		return dump(conf, file);
	return is_check ? check(conf) : migrate(conf, to);
}
