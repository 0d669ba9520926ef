/*
 * meta_check.c - the integrity check of the metadata engine (meta.h):
 * each rule of the namespace and of file contents as one SQL count of
 * offending rows, then the engine's own check of its storage (SQLite's
 * integrity_check). Read only; a check
 * that cannot run counts as failed, never as passed. Calls only the core.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

/* META_INLINE_MAX as SQL text */
#define INLINE_MAX_SQL "16384"
G_STATIC_ASSERT(META_INLINE_MAX == 16384);

struct check {
	const char *what;
	const char *sql; /* counts offending rows */
};

static const struct check checks[] = {
	{"entries pointing to no inode",
	 "SELECT count(*) FROM dentries d LEFT JOIN inodes i ON i.ino = d.ino WHERE i.ino IS NULL"},
	{"entries in a parent that is no directory",
	 "SELECT count(*) FROM dentries d LEFT JOIN inodes p ON p.ino = d.parent"
	 " WHERE p.ino IS NULL OR (p.mode & 61440) != 16384"},
	{"files whose link count differs from their entries",
	 "SELECT count(*) FROM inodes i WHERE (i.mode & 61440) != 16384"
	 " AND i.nlink != (SELECT count(*) FROM dentries d WHERE d.ino = i.ino)"},
	{"directories whose link count is not 2 + subdirectories",
	 "SELECT count(*) FROM inodes i WHERE (i.mode & 61440) = 16384 AND i.nlink != 2 +"
	 " (SELECT count(*) FROM dentries d JOIN inodes c ON c.ino = d.ino"
	 "  WHERE d.parent = i.ino AND (c.mode & 61440) = 16384)"},
	{"directories with other than one entry (the root: none)",
	 "SELECT count(*) FROM inodes i WHERE (i.mode & 61440) = 16384 AND"
	 " (SELECT count(*) FROM dentries d WHERE d.ino = i.ino) != CASE WHEN i.ino = 1 THEN 0 ELSE 1 END"},
	{"directories whose parent pointer disagrees with their entry",
	 "SELECT count(*) FROM dentries d JOIN inodes i ON i.ino = d.ino"
	 " WHERE (i.mode & 61440) = 16384 AND i.parent != d.parent"},
	{"inodes neither reachable from the root nor open",
	 "WITH RECURSIVE r(ino) AS (SELECT CAST(1 AS BIGINT) UNION SELECT d.ino FROM dentries d JOIN r ON d.parent = r.ino)"
	 " SELECT count(*) FROM inodes WHERE ino NOT IN (SELECT ino FROM r)"
	 " AND ino NOT IN (SELECT ino FROM open_files)"},
	{"parts of no inode",
	 "SELECT count(*) FROM parts p LEFT JOIN inodes i ON i.ino = p.ino WHERE i.ino IS NULL"},
	{"inline data of no regular file",
	 "SELECT count(*) FROM inline_data d LEFT JOIN inodes i ON i.ino = d.ino"
	 " WHERE i.ino IS NULL OR (i.mode & 61440) != 32768"},
	{"files with both inline data and parts",
	 "SELECT count(*) FROM inline_data d WHERE EXISTS (SELECT 1 FROM parts p WHERE p.ino = d.ino)"},
	{"inline data longer than its file or than the inline limit",
	 "SELECT count(*) FROM inline_data d JOIN inodes i ON i.ino = d.ino"
	 " WHERE length(d.data) > i.size OR length(d.data) > " INLINE_MAX_SQL},
};

int meta_check(struct meta *m, char **report)
{
	GString *out = g_string_new(NULL);

	g_mutex_lock(&m->lock);
	for (size_t i = 0; i < G_N_ELEMENTS(checks); i++) {
		/* A check that cannot run is a failed check, never a passed one. */
		struct meta_stmt *s = meta_stmt_text(m, checks[i].sql);
		int step = s ? meta_step(s) : -EIO;

		if (step != META_ROW)
			g_string_append_printf(out, "check \"%s\" could not run: %s\n", checks[i].what,
					       g_strerror(step < 0 ? -step : EIO));
		else if (meta_col_int(s, 0) != 0)
			g_string_append_printf(out, "%lld %s\n", (long long)meta_col_int(s, 0),
					       checks[i].what);
		meta_stmt_free(s);
	}
	m->engine->integrity(m, out);
	g_mutex_unlock(&m->lock);
	int rc = out->len ? -EUCLEAN : 0;

	if (report)
		*report = g_string_free(out, FALSE);
	else
		g_string_free(out, TRUE);
	return rc;
}
