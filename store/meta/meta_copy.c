/*
 * meta_copy.c - the whole namespace into another database, of either
 * engine (meta_copy_to, for `shardfs meta migrate`). Calls only the core.
 *
 * Every table is copied row by row with its keys, so inode numbers,
 * readdir cookies and garbage ids stay what they were; the target's
 * self-growing keys are then set to go on after them (keys_follow). The
 * source is read inside one transaction (one snapshot; on SQLite its
 * write lock, so nothing changes under the copy), the target written in
 * one durable transaction: a copy that fails leaves no rows there.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

/* The tables of the current schema (META_SCHEMA_VERSION 11) that dumps and
 * copies keep, each with the schema that brought it: version 6 added
 * none, and 7's node_health, 8's repair_workers, 9's repair_leases and
 * 11's rebalance_workers are learnt anew. */
G_STATIC_ASSERT(META_SCHEMA_VERSION == 11);
const struct meta_table meta_tables[] = {
	{"inodes", "ino, mode, uid, gid, nlink, size, atime, mtime, ctime, generation, parent,"
		   " target, object_id", "iiiiiiiiiiibb", 1, 1},
	{"dentries", "id, parent, name, ino", "iibi", 1, 1},
	{"xattrs", "ino, name, value", "ibb", 2, 1},
	{"parts", "ino, idx, length, checksum, k, m, nodes, object_id, missing", "iiibiibbi", 2, 3},
	{"garbage", "id, object_id, idx, length, k, m, nodes", "ibiiiib", 1, 1},
	{"sessions", "sid, host, heartbeat, lease", "itii", 1, 5},
	{"open_files", "sid, ino, count", "iii", 2, 1},
	{"inline_data", "ino, data", "ib", 1, 2},
	{"nodes", "id, identity, since", "iti", 1, 4},
	{"locks", "id, ino, kind, sid, owner, type, lstart, lend, pid", "iiiiiiiii", 1, 5},
	{"cluster", "id", "t", 1, 5},
	{"members", "id, host, port, zone, weight, state, changed", "ititiii", 1, 10},
};
const size_t meta_ntables = G_N_ELEMENTS(meta_tables);

char *meta_table_insert_sql(const struct meta_table *t)
{
	GString *s = g_string_new(NULL);

	g_string_printf(s, "INSERT INTO %s (%s) VALUES (", t->name, t->columns);
	for (size_t i = 0; t->kinds[i]; i++)
		g_string_append_printf(s, "%s?%zu", i ? ", " : "", i + 1);
	g_string_append_c(s, ')');
	return g_string_free(s, FALSE);
}

/* One row of sel bound to ins; a NULL column stays unbound (NULL). Text
 * is bound NUL-ended, from copies kept in keep until the row is sent. */
static void bind_row(struct meta_stmt *sel, struct meta_stmt *ins, const char *kinds,
		     GPtrArray *keep)
{
	for (int c = 0; kinds[c]; c++) {
		size_t n;
		const void *p;

		if (meta_col_null(sel, c))
			continue;
		if (kinds[c] == 'i') {
			meta_bind_int(ins, c + 1, meta_col_int(sel, c));
			continue;
		}
		p = meta_col_blob(sel, c, &n);
		if (!p)
			p = ""; /* an empty value comes without a pointer: it is no NULL */
		if (kinds[c] == 'b') {
			meta_bind_blob(ins, c + 1, p, n);
		} else {
			char *text = g_strndup(p, n);

			g_ptr_array_add(keep, text);
			meta_bind_text(ins, c + 1, text);
		}
	}
}

static int copy_table(struct meta *from, struct meta *to, const struct meta_table *t,
		      uint64_t *rows)
{
	g_autofree char *select = g_strdup_printf("SELECT %s FROM %s", t->columns, t->name);
	g_autofree char *insert = meta_table_insert_sql(t);
	struct meta_stmt *sel = meta_stmt_text(from, select), *ins = meta_stmt_text(to, insert);
	GPtrArray *keep = g_ptr_array_new_with_free_func(g_free);
	int rc = sel && ins ? 0 : -EIO, step = META_DONE;

	while (rc == 0 && (step = meta_step(sel)) == META_ROW) {
		meta_reset(ins);
		bind_row(sel, ins, t->kinds, keep);
		rc = meta_sql_errno(to, meta_step(ins));
		g_ptr_array_set_size(keep, 0);
		*rows += rc == 0;
	}
	g_ptr_array_free(keep, TRUE);
	if (rc == 0 && step != META_DONE)
		rc = step < 0 ? step : -EIO;
	meta_stmt_free(sel);
	meta_stmt_free(ins);
	return rc;
}

static int copy_tables(struct meta *from, struct meta *to, uint64_t *rows)
{
	int rc = 0;

	*rows = 0;
	for (size_t i = 0; rc == 0 && i < meta_ntables; i++)
		rc = copy_table(from, to, &meta_tables[i], rows);
	if (rc == 0 && to->engine->keys_follow)
		rc = to->engine->keys_follow(to);
	return rc;
}

int meta_copy_to(struct meta *from, const char *to_url, uint64_t *rows)
{
	struct meta *to;
	char *report = NULL;
	int rc = meta_create_schema(to_url, &to);

	*rows = 0;
	if (rc < 0)
		return rc;
	g_mutex_lock(&from->lock);
	rc = from->engine->begin(from, false);
	if (rc == 0) {
		struct meta_tx t = META_TX_DURABLE(to);

		while (meta_tx_loop(&t, &rc))
			rc = copy_tables(from, to, rows);
		from->engine->rollback(from, false);
	}
	g_mutex_unlock(&from->lock);
	if (rc == 0 && meta_check(to, &report) < 0) {
		g_warning("the copy does not check clean: %s", report);
		rc = -EUCLEAN;
	}
	g_free(report);
	meta_close(to);
	return rc;
}
