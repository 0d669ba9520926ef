/*
 * cli_args.c - the subcommands' option parser (cli_args.h).
 */
#include "cli_args.h"

#include <stdio.h>

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
