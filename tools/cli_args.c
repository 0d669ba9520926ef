/*
 * cli_args.c - the subcommands' option parser (cli_args.h).
 */
#include "cli_args.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

gboolean tools_parse_args(int *argc, char ***argv, const GOptionEntry *entries,
			  const char *summary)
{
	GOptionContext *ctx = g_option_context_new(summary);
	GError *err = NULL;
	gboolean ok;

	g_option_context_add_main_entries(ctx, entries, NULL);
	ok = g_option_context_parse(ctx, argc, argv, &err);
	if (!ok) {
		fprintf(stderr, "shardfs: %s\n", err->message);
		g_error_free(err);
	}
	g_option_context_free(ctx);
	return ok;
}

char *tools_iec_size(uint64_t bytes)
{
	GString *s = g_string_new(NULL);
	char *text = g_format_size_full(bytes, G_FORMAT_SIZE_IEC_UNITS);

	g_string_assign(s, text);
	g_string_replace(s, "\u00a0", " ", 0);
	g_free(text);
	return g_string_free(s, FALSE);
}

int tools_cluster_file(const char *cmd, const char *named, char **out)
{
	const char *given = named ? named : g_getenv("SHARDFS_CONF");
	struct stat st;
	char *path;
	const char *why;

	if (!given || !*given) {
		fprintf(stderr, "shardfs %s: no cluster named: give -c CLUSTER.conf or a cluster"
				" directory, or set SHARDFS_CONF\n", cmd);
		return SHARDFS_EXIT_USAGE;
	}
	gboolean is_dir = stat(given, &st) == 0 && S_ISDIR(st.st_mode);

	path = is_dir ? g_build_filename(given, "cluster.conf", NULL) : g_strdup(given);
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
		*out = path;
		return 0;
	}
	if (is_dir)
		why = "a directory without cluster.conf";
	else if (access(path, F_OK) == 0)
		why = "not a cluster file";
	else
		why = g_strerror(errno);
	fprintf(stderr, "shardfs %s: %s%s: %s\n", cmd, given, named ? "" : " (SHARDFS_CONF)", why);
	g_free(path);
	return SHARDFS_EXIT_FAIL;
}
