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
 * database, the cluster's own by default (meta_load). `shardfs meta backup`
 * writes a backup into the cluster (store_backup_write, as mounts do on
 * their own), `backups` lists them, and `restore --from-cluster` loads the
 * newest (or --backup SEQ) into the cluster file's empty database with
 * nothing but the nodes and the certificates.
 */
#define G_LOG_DOMAIN "shardfs"

#include "shardfs.h"
#include "store/meta/meta.h"
#include "store/store.h"

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
		fprintf(stderr, "shardfs meta migrate: %s: %s\n", safe_from, meta_open_reason(rc));
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
		fprintf(stderr, "shardfs meta check: %s: %s\n", safe, meta_open_reason(rc));
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
		fprintf(stderr, "shardfs meta dump: %s: %s\n", safe, meta_open_reason(rc));
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

static char *seq_time(uint64_t seq)
{
	GDateTime *t = g_date_time_new_from_unix_utc((gint64)(seq / 1000000000));
	char *text = g_date_time_format_iso8601(t);

	g_date_time_unref(t);
	return text;
}

static struct store *open_store(const char *what, const char *conf)
{
	struct store *s = NULL;
	GError *err = NULL;

	if (store_open(conf, NULL, &s, &err)) {
		fprintf(stderr, "shardfs meta %s: %s\n", what, err->message);
		g_error_free(err);
	}
	return s;
}

/* A backup into the cluster now, as a mount makes them. */
static int backup(const char *conf)
{
	g_autofree char *url = meta_url_of(conf);
	struct store *s = open_store("backup", conf);
	struct meta *m = NULL;
	struct store_backup b;
	GError *err = NULL;
	int rc = !s ? -EIO : url ? meta_open(url, &m) : -ENOENT;

	if (s && rc < 0)
		fprintf(stderr, "shardfs meta backup: metadata: %s\n", meta_open_reason(rc));
	if (rc == 0 && (rc = store_backup_write(s, m, STORE_BACKUPS_KEPT, &b, &err))) {
		fprintf(stderr, "shardfs meta backup: %s\n", err->message);
		g_error_free(err);
	}
	if (rc == 0) {
		g_autofree char *when = seq_time(b.seq);

		printf("backup %" G_GUINT64_FORMAT " (%s): %" G_GUINT64_FORMAT " rows, %"
		       G_GUINT64_FORMAT " bytes, in the cluster\n", b.seq, when, b.rows, b.length);
	}
	meta_close(m);
	store_close(s);
	return rc ? SHARDFS_EXIT_FAIL : 0;
}

static int backups(const char *conf)
{
	struct store *s = open_store("backups", conf);
	uint64_t *seqs = NULL;
	unsigned n = 0;
	int rc = s ? store_backup_list(s, &seqs, &n) : -EIO;

	if (s && rc)
		fprintf(stderr, "shardfs meta backups: no node answers\n");
	for (unsigned i = 0; rc == 0 && i < n; i++) {
		g_autofree char *when = seq_time(seqs[i]);

		printf("%" G_GUINT64_FORMAT " %s\n", seqs[i], when);
	}
	g_free(seqs);
	store_close(s);
	return rc ? SHARDFS_EXIT_FAIL : 0;
}

/* The sessions of the backup were mounts of the lost database: their
 * open files and locks go now, not a lease after the first mount. */
static int end_restored_sessions(const char *url)
{
	struct meta *m;
	unsigned ended;
	int rc = meta_open(url, &m);

	if (rc == 0)
		rc = meta_session_end_all(m, &ended);
	meta_close(m);
	return rc;
}

/* The backup's dump through a temporary file (meta_load reads a stream
 * once; the nodes are read first, whole, so that a load never waits on
 * them). */
static int restore_from(struct store *s, uint64_t seq, const char *url)
{
	g_autofree char *safe = meta_url_safe(url);
	struct store_backup b;
	GError *err = NULL;
	uint64_t rows = 0;
	FILE *tmp = tmpfile();
	int rc = tmp ? store_backup_read(s, seq, tmp, &b, &err) : -errno;

	if (rc == 0 && (fflush(tmp) || fseek(tmp, 0, SEEK_SET)))
		rc = -errno;
	if (rc == 0)
		rc = meta_load(url, tmp, &rows, &err);
	if (tmp)
		fclose(tmp);
	if (rc == 0)
		rc = end_restored_sessions(url);
	g_autofree char *when = seq_time(seq);
	if (rc < 0) {
		fprintf(stderr, "shardfs meta restore: the backup of %s into %s: %s (nothing was"
				" restored)\n", when, safe, err ? err->message : g_strerror(-rc));
		g_clear_error(&err);
		return SHARDFS_EXIT_FAIL;
	}
	printf("restored the backup of %s (%" G_GUINT64_FORMAT " rows) into %s, checked;"
	       " what changed after it is lost\n", when, rows, safe);
	return 0;
}

static int restore(const char *conf, guint64 seq)
{
	g_autofree char *url = meta_url_of(conf);
	struct store *s = url ? open_store("restore", conf) : NULL;
	uint64_t *seqs = NULL;
	unsigned n = 0;
	int rc = s ? store_backup_list(s, &seqs, &n) : -EIO;

	if (!url)
		fprintf(stderr, "shardfs meta restore: %s names no metadata ([cluster] meta)\n", conf);
	else if (s && rc)
		fprintf(stderr, "shardfs meta restore: no node answers\n");
	else if (s && n == 0)
		fprintf(stderr, "shardfs meta restore: the nodes hold no backup of the metadata\n");
	bool found = !seq && n;
	for (unsigned i = 0; !found && i < n; i++)
		found = seqs[i] == seq;
	if (rc == 0 && n && !found)
		fprintf(stderr, "shardfs meta restore: no backup %" G_GUINT64_FORMAT
				" (shardfs meta backups lists them)\n", seq);
	rc = rc == 0 && found ? restore_from(s, seq ? seq : seqs[0], url) : SHARDFS_EXIT_FAIL;
	g_free(seqs);
	store_close(s);
	return rc;
}

static int usage(void)
{
	fprintf(stderr, "usage: shardfs meta check [-c CLUSTER]\n"
			"       shardfs meta migrate --to URL [-c CLUSTER]\n"
			"       shardfs meta dump [-c CLUSTER] [FILE|-]\n"
			"       shardfs meta load [-c CLUSTER | --to URL] [FILE|-]\n"
			"       shardfs meta backup [-c CLUSTER]\n"
			"       shardfs meta backups [-c CLUSTER]\n"
			"       shardfs meta restore --from-cluster [--backup SEQ] [-c CLUSTER]\n");
	return SHARDFS_EXIT_USAGE;
}

int cmd_meta(int argc, char **argv)
{
	g_autofree char *named = NULL, *to = NULL, *conf = NULL;
	gboolean from_cluster = FALSE;
	gint64 seq = 0;
	GOptionEntry entries[] = {
		{"from-cluster", 0, 0, G_OPTION_ARG_NONE, &from_cluster, "restore from the backups the nodes hold", NULL},
		{"backup", 0, 0, G_OPTION_ARG_INT64, &seq, "the backup to restore (default: the newest)", "SEQ"},
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &named, "cluster file or directory (default: $SHARDFS_CONF)", "CLUSTER"},
		{"to", 0, 0, G_OPTION_ARG_STRING, &to, "the empty database to move the namespace or load the dump into", "URL"},
		G_OPTION_ENTRY_NULL,
	};

	if (!tools_parse(argc, argv, entries, "check | migrate --to URL | dump [FILE] | load [FILE]"
			 " | backup | backups | restore --from-cluster - check the namespace, move it"
			 " into another metadata database (sqlite:///PATH or postgresql://...), write"
			 " it as a dump, load a dump into an empty database, back it up into the"
			 " cluster, list those backups, or restore the newest"))
		return SHARDFS_EXIT_USAGE;
	const char *what = argc >= 2 ? argv[1] : "";
	const char *file = argc == 3 ? argv[2] : NULL;
	gboolean is_check = argc == 2 && !strcmp(what, "check") && !to;
	gboolean is_migrate = argc == 2 && !strcmp(what, "migrate") && to;
	gboolean is_dump = (argc == 2 || argc == 3) && !strcmp(what, "dump") && !to;
	gboolean is_load = (argc == 2 || argc == 3) && !strcmp(what, "load") && !(to && named);
	gboolean is_backup = argc == 2 && !strcmp(what, "backup") && !to;
	gboolean is_backups = argc == 2 && !strcmp(what, "backups") && !to;
	gboolean is_restore = argc == 2 && !strcmp(what, "restore") && from_cluster && !to &&
			      seq >= 0;

	if (!is_check && !is_migrate && !is_dump && !is_load && !is_backup && !is_backups &&
	    !is_restore)
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
	if (is_backup || is_backups)
		return is_backup ? backup(conf) : backups(conf);
	if (is_restore)
		return restore(conf, (guint64)seq);
	return is_check ? check(conf) : migrate(conf, to);
}
