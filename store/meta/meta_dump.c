/*
 * meta_dump.c - the whole namespace as a dump, and a dump loaded into an
 * empty database of either engine (meta_dump, meta_load, for `shardfs
 * meta dump | load` and the backups). Calls only the core.
 *
 * A dump is JSON, one value per line, so that it is written and read in
 * bounded memory however many files there are:
 *
 *   {"format":"shardfs-meta-dump","version":1,"schema":5}
 *   {"table":"inodes","columns":"ino, mode, ..."}   for every table, in order,
 *   [1,16877,0,0,2,...]                             then its rows, by key
 *   {"end":{"rows":N,"sha256":"..."}}               the SHA-256 of every byte before it
 *
 * Integers are JSON numbers, byte strings base64, text strings, NULL null.
 * Nothing in it depends on the engine or the time, so a namespace moved
 * between engines dumps the same bytes. It is read in one snapshot, a page
 * of rows at a time (libpq holds a whole result in memory), and loaded in
 * one transaction that commits only once the end record and the checksum
 * were read and match: a truncated or altered dump loads nothing.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta.h"
#include "meta_internal.h"

#include <errno.h>
#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#define DUMP_FORMAT "shardfs-meta-dump"
#define DUMP_VERSION 1
/* The oldest schema whose dumps load: versions 6 to 9 added no table or
 * column that dumps keep; 10 added members, which older dumps lack (the
 * first mount then takes them from its cluster file); 11 none. */
#define DUMP_SCHEMA_MIN 5
#define PAGE_ROWS 256
/* The longest line a dump of ours has: a row of the largest xattr value
 * or inline file, in base64, with room to spare. */
#define LINE_MAX_BYTES (1u << 20)

GQuark meta_dump_error_quark(void)
{
	return g_quark_from_static_string("meta-dump-error");
}

/* ---- writing ---- */

struct dump {
	FILE *out;
	GChecksum *sum;
	JsonGenerator *gen;
	uint64_t rows;
	bool ended;
};

static bool put_line(struct dump *d, JsonNode *node)
{
	gsize n;

	json_generator_set_root(d->gen, node);
	g_autofree char *text = json_generator_to_data(d->gen, &n);
	json_node_unref(node);
	if (!d->ended) { /* the end record is not summed: it holds the sum */
		g_checksum_update(d->sum, (const guchar *)text, (gssize)n);
		g_checksum_update(d->sum, (const guchar *)"\n", 1);
	}
	return fwrite(text, 1, n, d->out) == n && fputc('\n', d->out) != EOF;
}

static JsonNode *object_node(JsonObject *o)
{
	JsonNode *node = json_node_new(JSON_NODE_OBJECT);

	json_node_take_object(node, o);
	return node;
}

static bool put_header(struct dump *d)
{
	JsonObject *o = json_object_new();

	json_object_set_string_member(o, "format", DUMP_FORMAT);
	json_object_set_int_member(o, "version", DUMP_VERSION);
	json_object_set_int_member(o, "schema", META_SCHEMA_VERSION);
	return put_line(d, object_node(o));
}

static bool put_table(struct dump *d, const struct meta_table *t)
{
	JsonObject *o = json_object_new();

	json_object_set_string_member(o, "table", t->name);
	json_object_set_string_member(o, "columns", t->columns);
	return put_line(d, object_node(o));
}

static bool put_end(struct dump *d)
{
	JsonObject *o = json_object_new(), *end = json_object_new();

	json_object_set_int_member(end, "rows", (gint64)d->rows);
	json_object_set_string_member(end, "sha256", g_checksum_get_string(d->sum));
	json_object_set_object_member(o, "end", end);
	d->ended = true;
	return put_line(d, object_node(o));
}

static bool put_row(struct dump *d, struct meta_stmt *s, const char *kinds)
{
	JsonArray *row = json_array_new();
	JsonNode *node = json_node_new(JSON_NODE_ARRAY);

	for (int c = 0; kinds[c]; c++) {
		size_t n;
		const void *p;

		if (meta_col_null(s, c)) {
			json_array_add_null_element(row);
			continue;
		}
		if (kinds[c] == 'i') {
			json_array_add_int_element(row, meta_col_int(s, c));
			continue;
		}
		p = meta_col_blob(s, c, &n);
		if (!p)
			p = ""; /* an empty value comes without a pointer: it is no NULL */
		g_autofree char *text = kinds[c] == 'b' ? g_base64_encode(p, n) : g_strndup(p, n);
		json_array_add_string_element(row, text);
	}
	json_node_take_array(node, row);
	d->rows++;
	return put_line(d, node);
}

/* The key of t: its first nkey column names, comma-separated. */
static char *key_of(const struct meta_table *t)
{
	char **cols = g_strsplit(t->columns, ", ", -1);
	char *saved = cols[t->nkey];

	cols[t->nkey] = NULL;
	char *key = g_strjoinv(", ", cols);
	cols[t->nkey] = saved;
	g_strfreev(cols);
	return key;
}

/* The key of the row s is on, to bind to ?1.. of the next page. */
struct last_key {
	int64_t ints[2];
	GBytes *blobs[2];
};

static void last_key_take(struct last_key *k, struct meta_stmt *s, const struct meta_table *t)
{
	for (unsigned c = 0; c < t->nkey; c++) {
		g_clear_pointer(&k->blobs[c], g_bytes_unref);
		if (t->kinds[c] == 'i') {
			k->ints[c] = meta_col_int(s, (int)c);
		} else {
			size_t n;
			const void *p = meta_col_blob(s, (int)c, &n);

			k->blobs[c] = g_bytes_new(p, n);
		}
	}
}

static void last_key_bind(const struct last_key *k, struct meta_stmt *s, const struct meta_table *t)
{
	for (unsigned c = 0; c < t->nkey; c++) {
		if (k->blobs[c]) {
			gsize n;
			const void *p = g_bytes_get_data(k->blobs[c], &n);

			meta_bind_blob(s, (int)c + 1, p, n);
		} else {
			meta_bind_int(s, (int)c + 1, k->ints[c]);
		}
	}
}

/* One page of t's rows after the last key (the first page: from the
 * start); *n counts them. */
static int dump_page(struct dump *d, struct meta_stmt *s, const struct meta_table *t,
		     struct last_key *k, bool first, unsigned *n)
{
	int step;

	meta_reset(s);
	if (!first)
		last_key_bind(k, s, t);
	*n = 0;
	while ((step = meta_step(s)) == META_ROW) {
		if (!put_row(d, s, t->kinds))
			return -EIO;
		last_key_take(k, s, t);
		++*n;
	}
	meta_reset(s);
	return step == META_DONE ? 0 : step < 0 ? step : -EIO;
}

static int dump_table(struct meta *m, struct dump *d, const struct meta_table *t)
{
	g_autofree char *key = key_of(t);
	g_autofree char *params = t->nkey == 1 ? g_strdup("?1") : g_strdup("?1, ?2");
	g_autofree char *head = g_strdup_printf("SELECT %s FROM %s ORDER BY %s LIMIT %u",
						t->columns, t->name, key, PAGE_ROWS);
	g_autofree char *next = g_strdup_printf("SELECT %s FROM %s WHERE (%s) > (%s) ORDER BY %s"
						" LIMIT %u", t->columns, t->name, key, params, key,
						PAGE_ROWS);
	struct meta_stmt *first = meta_stmt_text(m, head), *rest = meta_stmt_text(m, next);
	struct last_key k = {{0}, {NULL}};
	unsigned n = 0;
	int rc = first && rest ? 0 : -EIO;

	if (rc == 0 && !put_table(d, t))
		rc = -EIO;
	if (rc == 0)
		rc = dump_page(d, first, t, &k, true, &n);
	while (rc == 0 && n == PAGE_ROWS)
		rc = dump_page(d, rest, t, &k, false, &n);
	for (unsigned c = 0; c < 2; c++)
		g_clear_pointer(&k.blobs[c], g_bytes_unref);
	meta_stmt_free(first);
	meta_stmt_free(rest);
	return rc;
}

static int dump_all(struct meta *m, struct dump *d)
{
	int rc = put_header(d) ? 0 : -EIO;

	for (size_t i = 0; rc == 0 && i < meta_ntables; i++)
		rc = dump_table(m, d, &meta_tables[i]);
	if (rc == 0 && !put_end(d))
		rc = -EIO;
	if (rc == 0 && fflush(d->out))
		rc = -EIO;
	return rc;
}

int meta_dump(struct meta *m, FILE *out, uint64_t *rows, GError **err)
{
	struct dump d = {out, g_checksum_new(G_CHECKSUM_SHA256), json_generator_new(), 0, false};
	int rc;

	g_mutex_lock(&m->lock);
	rc = m->engine->begin_snapshot(m);
	if (rc == 0) {
		rc = dump_all(m, &d);
		m->engine->rollback(m, false);
	}
	g_mutex_unlock(&m->lock);
	if (rc < 0)
		g_set_error(err, META_DUMP_ERROR, -rc, "%s", ferror(out) ? "cannot write the dump"
			    : g_strerror(-rc));
	*rows = d.rows;
	g_checksum_free(d.sum);
	g_object_unref(d.gen);
	return rc;
}

/* ---- reading ---- */

struct load {
	FILE *in;
	GChecksum *sum;
	JsonParser *parser;
	uint64_t line, rows;
	char *buf;
	size_t cap;
	const struct meta_table *table; /* the rows being read are of it */
	size_t next_table;		/* meta_tables[] index expected next */
	gint64 schema;			/* of the dump */
	struct meta_stmt *insert;	/* for table */
	bool ended;
};

/* The next line, parsed; NULL at the end of the input (*rc 0) or on an
 * error (*rc < 0, err set). The line is summed unless it is the end. */
static JsonNode *read_line(struct load *l, int *rc, GError **err)
{
	ssize_t n = getline(&l->buf, &l->cap, l->in);

	*rc = 0;
	if (n < 0) {
		if (ferror(l->in))
			*rc = -EIO;
		if (ferror(l->in))
			g_set_error(err, META_DUMP_ERROR, EIO, "cannot read the dump after line %"
				    G_GUINT64_FORMAT, l->line);
		return NULL;
	}
	l->line++;
	if ((size_t)n > LINE_MAX_BYTES || n == 0 || l->buf[n - 1] != '\n') {
		*rc = -EINVAL;
		g_set_error(err, META_DUMP_ERROR, EINVAL, "line %" G_GUINT64_FORMAT ": %s",
			    l->line, l->buf[n - 1] != '\n' ? "cut short (no end of line)"
							    : "longer than any line of a dump");
		return NULL;
	}
	if (!json_parser_load_from_data(l->parser, l->buf, n - 1, NULL)) {
		*rc = -EINVAL;
		g_set_error(err, META_DUMP_ERROR, EINVAL, "line %" G_GUINT64_FORMAT ": not JSON",
			    l->line);
		return NULL;
	}
	JsonNode *root = json_parser_get_root(l->parser);
	bool is_end = JSON_NODE_HOLDS_OBJECT(root) &&
		      json_object_has_member(json_node_get_object(root), "end");
	if (!is_end)
		g_checksum_update(l->sum, (const guchar *)l->buf, n);
	return root;
}

static int bad(struct load *l, GError **err, const char *what)
{
	g_set_error(err, META_DUMP_ERROR, EINVAL, "line %" G_GUINT64_FORMAT ": %s", l->line, what);
	return -EINVAL;
}

static const char *member_string(JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member(o, name);

	return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING
		       ? json_node_get_string(n) : NULL;
}

static bool member_int(JsonObject *o, const char *name, gint64 *v)
{
	JsonNode *n = json_object_get_member(o, name);

	if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
		return false;
	*v = json_node_get_int(n);
	return true;
}

static int read_header(struct load *l, GError **err)
{
	int rc;
	JsonNode *root = read_line(l, &rc, err);
	gint64 version, schema;

	if (!root)
		return rc ? rc : bad(l, err, "empty: no dump header");
	JsonObject *o = JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
	const char *format = o ? member_string(o, "format") : NULL;
	if (!format || strcmp(format, DUMP_FORMAT) || !member_int(o, "version", &version) ||
	    !member_int(o, "schema", &schema))
		return bad(l, err, "not a shardfs metadata dump");
	if (version != DUMP_VERSION || schema < DUMP_SCHEMA_MIN || schema > META_SCHEMA_VERSION) {
		g_set_error(err, META_DUMP_ERROR, EPROTO, "a dump of format %" G_GINT64_FORMAT
			    " and schema %" G_GINT64_FORMAT "; this program reads format %d,"
			    " schema %d to %d", version, schema, DUMP_VERSION, DUMP_SCHEMA_MIN,
			    META_SCHEMA_VERSION);
		return -EPROTO;
	}
	l->schema = schema;
	return 0;
}

/* Passes over the tables that came after the dump's schema. */
static void skip_newer_tables(struct load *l)
{
	while (l->next_table < meta_ntables && meta_tables[l->next_table].since > l->schema)
		l->next_table++;
}

/* A table record: the next table of ours, with our columns. */
static int start_table(struct meta *m, struct load *l, JsonObject *o, GError **err)
{
	const char *name = member_string(o, "table"), *columns = member_string(o, "columns");

	skip_newer_tables(l);
	if (l->next_table >= meta_ntables)
		return bad(l, err, "a table after the last one");
	const struct meta_table *t = &meta_tables[l->next_table];
	if (!name || strcmp(name, t->name) || !columns || strcmp(columns, t->columns))
		return bad(l, err, "not the table or columns this program expects next");
	meta_stmt_free(l->insert);
	g_autofree char *sql = meta_table_insert_sql(t);
	l->insert = meta_stmt_text(m, sql);
	l->table = t;
	l->next_table++;
	return l->insert ? 0 : -EIO;
}

/* Binds one value of a row; the decoded bytes are kept in keep. */
static bool bind_value(struct meta_stmt *s, int c, char kind, JsonNode *v, GPtrArray *keep)
{
	if (JSON_NODE_HOLDS_NULL(v))
		return true;
	if (!JSON_NODE_HOLDS_VALUE(v))
		return false;
	GType type = json_node_get_value_type(v);
	if (kind == 'i') {
		if (type != G_TYPE_INT64)
			return false;
		meta_bind_int(s, c + 1, json_node_get_int(v));
		return true;
	}
	if (type != G_TYPE_STRING)
		return false;
	if (kind == 't') {
		meta_bind_text(s, c + 1, json_node_get_string(v));
		return true;
	}
	gsize n;
	guchar *bytes = g_base64_decode(json_node_get_string(v), &n);
	g_ptr_array_add(keep, bytes);
	meta_bind_blob(s, c + 1, bytes, n);
	return true;
}

static int insert_row(struct meta *m, struct load *l, JsonArray *row, GError **err)
{
	const char *kinds = l->table ? l->table->kinds : "";
	guint ncols = (guint)strlen(kinds);
	GPtrArray *keep = g_ptr_array_new_with_free_func(g_free);
	int rc = 0;

	if (!l->table || json_array_get_length(row) != ncols) {
		g_ptr_array_free(keep, TRUE);
		return bad(l, err, l->table ? "a row with the wrong number of columns"
					    : "a row before any table");
	}
	meta_reset(l->insert);
	for (guint c = 0; rc == 0 && c < ncols; c++)
		if (!bind_value(l->insert, (int)c, kinds[c], json_array_get_element(row, c), keep))
			rc = bad(l, err, "a value of the wrong kind");
	if (rc == 0 && (rc = meta_sql_errno(m, meta_step(l->insert))) < 0)
		g_set_error(err, META_DUMP_ERROR, -rc, "line %" G_GUINT64_FORMAT ": the row is"
			    " refused: %s", l->line, g_strerror(-rc));
	meta_reset(l->insert);
	g_ptr_array_free(keep, TRUE);
	l->rows += rc == 0;
	return rc;
}

static int check_end(struct load *l, JsonObject *end, GError **err)
{
	gint64 rows;
	const char *sha = member_string(end, "sha256");

	skip_newer_tables(l);
	if (l->next_table != meta_ntables)
		return bad(l, err, "the end comes before every table");
	if (!member_int(end, "rows", &rows) || !sha)
		return bad(l, err, "not an end record");
	if ((uint64_t)rows != l->rows || strcmp(sha, g_checksum_get_string(l->sum))) {
		g_set_error(err, META_DUMP_ERROR, EBADMSG, "line %" G_GUINT64_FORMAT ": the dump was"
			    " altered: its %s does not match what was read", l->line,
			    (uint64_t)rows != l->rows ? "row count" : "checksum");
		return -EBADMSG;
	}
	l->ended = true;
	return 0;
}

static int load_line(struct meta *m, struct load *l, JsonNode *root, GError **err)
{
	if (l->ended)
		return bad(l, err, "more after the end record");
	if (JSON_NODE_HOLDS_ARRAY(root))
		return insert_row(m, l, json_node_get_array(root), err);
	if (!JSON_NODE_HOLDS_OBJECT(root))
		return bad(l, err, "neither a row nor a record");
	JsonObject *o = json_node_get_object(root);
	if (json_object_has_member(o, "table"))
		return start_table(m, l, o, err);
	JsonNode *end = json_object_get_member(o, "end");
	if (end && JSON_NODE_HOLDS_OBJECT(end))
		return check_end(l, json_node_get_object(end), err);
	return bad(l, err, "an unknown record");
}

static int load_all(struct meta *m, struct load *l, GError **err)
{
	int rc = read_header(l, err);
	JsonNode *root;

	while (rc == 0 && (root = read_line(l, &rc, err)))
		rc = load_line(m, l, root, err);
	if (rc == 0 && !l->ended) {
		g_set_error(err, META_DUMP_ERROR, EINVAL, "cut short: the dump ends at line %"
			    G_GUINT64_FORMAT " without its end record", l->line);
		rc = -EINVAL;
	}
	if (rc == 0 && m->engine->keys_follow)
		rc = m->engine->keys_follow(m);
	return rc;
}

/* One durable transaction, not run again: the input cannot be read twice. */
static int load_in_one_transaction(struct meta *m, struct load *l, GError **err)
{
	g_mutex_lock(&m->lock);
	int rc = m->engine->begin(m, true);

	if (rc == 0) {
		rc = load_all(m, l, err);
		if (rc == 0)
			rc = m->engine->commit(m, true);
		else
			m->engine->rollback(m, true);
		if (rc < 0 && err && !*err)
			g_set_error(err, META_DUMP_ERROR, -rc, "the load did not commit: %s",
				    g_strerror(-rc));
	}
	g_mutex_unlock(&m->lock);
	return rc;
}

int meta_load(const char *url, FILE *in, uint64_t *rows, GError **err)
{
	struct meta *m;
	struct load l = {.in = in, .sum = g_checksum_new(G_CHECKSUM_SHA256),
			 .parser = json_parser_new_immutable()};
	char *report = NULL;
	int rc = meta_open_empty(url, &m);

	*rows = 0;
	if (rc == -EEXIST)
		g_set_error(err, META_DUMP_ERROR, EEXIST, "the database holds a namespace already;"
			    " a dump loads only into an empty one");
	else if (rc < 0)
		g_set_error(err, META_DUMP_ERROR, -rc, "%s", meta_open_reason(rc));
	if (rc == 0) {
		rc = load_in_one_transaction(m, &l, err);
		meta_stmt_free(l.insert);
		if (rc == 0 && meta_check(m, &report) < 0) {
			g_set_error(err, META_DUMP_ERROR, EUCLEAN, "loaded, but it does not check"
				    " clean: %s", report);
			rc = -EUCLEAN;
		}
		meta_close(m);
	}
	*rows = rc == 0 ? l.rows : 0;
	g_free(report);
	g_free(l.buf);
	g_checksum_free(l.sum);
	g_object_unref(l.parser);
	return rc;
}
