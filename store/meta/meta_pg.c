/*
 * meta_pg.c - the PostgreSQL engine of the metadata interface (struct
 * meta_engine), with libpq: URLs "postgresql://..." (and everything
 * libpq reads besides: PGPASSFILE, service files, sslmode, sslrootcert, a
 * unix socket as host=/dir), statements, transactions and errors.
 *
 * Statements are the core's SQL with ?N turned into $N, prepared by name
 * once per connection on their first run, and prepared again after a
 * reconnect (the server forgets them with the session). Integers go as
 * text, so that the server's own inference of each parameter's type holds
 * whatever it is (an int4 in "2 * ?1", an int8 column elsewhere); blobs go
 * as binary bytea, borrowed, with no copy or escape. Rows come back in
 * binary, so blobs are read in place; integer columns are decoded by
 * their type (int2, int4, int8, bool). A result is fetched whole, so a
 * statement may run while another one's rows are being read.
 *
 * Transactions are SERIALIZABLE: concurrent writers behave as if one ran
 * after the other, as on SQLite, but run side by side; one that fails
 * only because of another (SQLSTATE 40001, 40P01) sets m->retry and the
 * core runs it again (meta_tx_loop). Commits that are not durable run
 * with synchronous_commit off: they survive a crash of the mount at once
 * and of the server after its WAL writer's next flush (within 3 x
 * wal_writer_delay, 600 ms by default); durable commits wait for the
 * server's fsync, as every commit does by default.
 *
 * A connection that broke is made again, waiting up to reconnect_s for a
 * server that restarts: a statement outside a transaction (a read, or a
 * BEGIN) is sent again on the new connection, and a transaction that lost
 * its connection before its COMMIT is run again whole (m->retry). A
 * COMMIT whose reply is lost has an unknown outcome: it is reported as
 * -EIO and never run again here, so it cannot be applied twice.
 *
 * Failure modes: a server that cannot be reached, or refuses the login,
 * fails the connect with one logged line naming the server (never the
 * password) and -ECONNREFUSED, -EACCES or -EIO; errors of statements are
 * logged by their primary message only (their detail may quote names).
 *
 * Threading: a connection is used under m->lock only.
 */
#define G_LOG_DOMAIN "shardfs-meta"

#include "meta_internal.h"
#include "meta_schema.h"

#include <errno.h>
#include <glib.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

/*
 * A creation in one statement, so in one round trip (meta_namespace.c,
 * make_node_at_once): the generic path's eight statements cost about 1 ms
 * on a local server, this one about 0.1 ms. It runs on its own, as a READ
 * COMMITTED transaction of its own, and keeps the rules by row locks
 * rather than by serializable snapshots: the parent's row is locked first
 * (it is updated anyway), so creations in one directory take turns and
 * the second sees the first's entry; a serializable transaction that read
 * the directory before and then writes it (rmdir, rename, unlink all
 * update the parent's row) fails on the changed row and runs again. With
 * an open record it updates the session's row as well, so that a
 * serializable end of that session, which deletes the row last, runs
 * again and sees the new open record.
 *
 * Sent again after a lost reply (meta_pg.c resends a statement outside a
 * transaction), it finds its own entry, told by the same type, owner and
 * ctime to the nanosecond and, for a file, the same random object id, and
 * answers as if it had made it. err: 0, or a negative errno.
 */
#define META_PG_MAKE_NODE                                                                      \
	"CREATE OR REPLACE FUNCTION shardfs_make_node(p_parent BIGINT, p_name BYTEA, p_mode BIGINT,"      \
	" p_uid BIGINT, p_gid BIGINT, p_now BIGINT, p_object BYTEA, p_sid BIGINT)"             \
	" RETURNS TABLE (r_ino BIGINT, r_mode BIGINT, r_uid BIGINT, r_gid BIGINT,"             \
	" r_nlink BIGINT, r_size BIGINT, r_atime BIGINT, r_mtime BIGINT, r_ctime BIGINT,"      \
	" r_generation BIGINT, err INT) LANGUAGE plpgsql AS $$"                                \
	" DECLARE pmode BIGINT; found_ino BIGINT; dir BOOLEAN := (p_mode & 61440) = 16384;"    \
	" BEGIN"                                                                               \
	"  PERFORM set_config('synchronous_commit', 'off', true);"                             \
	"  SELECT i.mode INTO pmode FROM inodes i WHERE i.ino = p_parent FOR UPDATE;"          \
	"  IF NOT FOUND OR (pmode & 61440) <> 16384 THEN"                                      \
	"   RETURN QUERY SELECT 0::BIGINT, 0::BIGINT, 0::BIGINT, 0::BIGINT, 0::BIGINT,"        \
	"    0::BIGINT, 0::BIGINT, 0::BIGINT, 0::BIGINT, 0::BIGINT,"                           \
	"    CASE WHEN pmode IS NULL THEN -2 ELSE -20 END;"                                    \
	"   RETURN;"                                                                           \
	"  END IF;"                                                                            \
	"  SELECT d.ino INTO found_ino FROM dentries d"                                        \
	"   WHERE d.parent = p_parent AND d.name = p_name;"                                    \
	"  IF NOT FOUND THEN"                                                                  \
	"   INSERT INTO inodes (mode, uid, gid, nlink, size, atime, mtime, ctime, generation," \
	"    parent, object_id) VALUES (p_mode, p_uid, p_gid, CASE WHEN dir THEN 2 ELSE 1 END," \
	"    0, p_now, p_now, p_now, 0, CASE WHEN dir THEN p_parent END, p_object)"            \
	"    RETURNING ino INTO found_ino;"                                                    \
	"   INSERT INTO dentries (parent, name, ino) VALUES (p_parent, p_name, found_ino);"    \
	"   UPDATE inodes SET mtime = p_now, ctime = p_now,"                                   \
	"    nlink = nlink + CASE WHEN dir THEN 1 ELSE 0 END WHERE ino = p_parent;"            \
	"   IF p_sid <> 0 THEN"                                                                \
	"    UPDATE sessions SET heartbeat = heartbeat WHERE sid = p_sid;"                     \
	"    INSERT INTO open_files (sid, ino, count) VALUES (p_sid, found_ino, 1);"           \
	"   END IF;"                                                                           \
	"  END IF;"                                                                            \
	"  RETURN QUERY SELECT i.ino, i.mode, i.uid, i.gid, i.nlink, i.size, i.atime, i.mtime," \
	"   i.ctime, i.generation, CASE WHEN i.mode = p_mode AND i.uid = p_uid"                \
	"   AND i.gid = p_gid AND i.ctime = p_now AND i.object_id IS NOT DISTINCT FROM p_object" \
	"   THEN 0 ELSE -17 END FROM inodes i WHERE i.ino = found_ino;"                        \
	" END $$;"

static const char *const migrations[] =
	META_MIGRATIONS("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "BIGINT", "BYTEA",
			META_PG_MAKE_NODE);
G_STATIC_ASSERT(G_N_ELEMENTS(migrations) == META_SCHEMA_VERSION);

/* Type oids of pg_type.h, which libpq does not install. */
#define BOOLOID 16
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23

#define CONNECT_TIMEOUT_S "10"
/* How long operations wait for a server that went away to come back. */
/* Seconds to wait for a server that went away (meta_set_wait_timeout). */
static unsigned reconnect_s = META_WAIT_DEFAULT_S;

void meta_set_wait_timeout(unsigned seconds)
{
	__atomic_store_n(&reconnect_s, seconds, __ATOMIC_RELAXED);
}
/* Parameters a statement may have: the core's use at most 9. */
#define PARAMS_MAX 16

/* What a connection keeps besides its handle. */
struct pg_state {
	unsigned generation; /* grows at each reconnect */
	unsigned next_name;
	bool in_tx;
};

struct pg_stmt {
	struct meta *m;
	char *text; /* in $N form */
	char name[24];
	unsigned prepared_in; /* the generation it was prepared in; 0: not */
	int nparams;
	const char *values[PARAMS_MAX];
	int lengths[PARAMS_MAX];
	int formats[PARAMS_MAX];
	char ints[PARAMS_MAX][24]; /* integers as text */
	PGresult *res;
	int row; /* the current row; -1 before the first */
};

static struct pg_state *state(struct meta *m)
{
	return m->engine_state;
}

/* ---- errors ---- */

/* 40001 serialization_failure, 40P01 deadlock_detected */
static bool is_conflict(const char *code)
{
	return code && (!strcmp(code, "40001") || !strcmp(code, "40P01"));
}

static int errno_of(const char *code)
{
	if (!code)
		return -EIO; /* no server answer: the connection */
	if (!strcmp(code, "23505"))
		return -EEXIST;
	if (!strncmp(code, "23", 2))
		return -EINVAL;
	if (!strcmp(code, "53100"))
		return -ENOSPC;
	if (!strcmp(code, "53200"))
		return -ENOMEM;
	if (!strcmp(code, "25006"))
		return -EROFS;
	if (!strcmp(code, "42P01"))
		return -ENOENT; /* no such table: no schema */
	if (!strncmp(code, "28", 2))
		return -EACCES;
	return -EIO;
}

/* A failed result as a negative errno, logged unless it is a conflict the
 * core runs again or a missing table the caller asked about. */
static int result_errno(struct meta *m, const PGresult *res)
{
	const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	int rc = errno_of(code);

	if (is_conflict(code)) {
		m->retry = true;
		return -EAGAIN;
	}
	if (code && !strcmp(code, "25P02") && m->retry)
		return -EAGAIN; /* the rest of a transaction a conflict ended */
	if (rc != -ENOENT) {
		const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

		g_warning("metadata server: %s", msg ? msg : PQerrorMessage(m->db));
	}
	return rc;
}

/* ---- connections ---- */

/* The first line of libpq's message, which may run on. */
static char *first_line(const char *msg)
{
	const char *nl = strchr(msg, '\n');

	return g_strndup(msg, nl ? (gsize)(nl - msg) : strlen(msg));
}

static int connect_errno(const char *msg)
{
	if (strstr(msg, "authentication") || strstr(msg, "password") ||
	    strstr(msg, "no pg_hba.conf entry"))
		return -EACCES;
	if (strstr(msg, "Connection refused") || strstr(msg, "No such file or directory"))
		return -ECONNREFUSED;
	return -EIO;
}

/* Makes the connection again if it broke, trying for up to
 * reconnect_s (a server restarting); 0 when it is up. */
static int ensure_connected(struct meta *m)
{
	gint64 deadline = g_get_monotonic_time() +
			  (gint64)__atomic_load_n(&reconnect_s, __ATOMIC_RELAXED) * G_USEC_PER_SEC;
	gulong pause = 50000;
	bool said = false;

	if (PQstatus(m->db) == CONNECTION_OK)
		return 0;
	for (;;) {
		PQreset(m->db);
		if (PQstatus(m->db) == CONNECTION_OK)
			break;
		if (!said || g_get_monotonic_time() > deadline) {
			char *line = first_line(PQerrorMessage(m->db));

			g_warning("metadata server %s:%s: %s%s", PQhost(m->db), PQport(m->db), line,
				  said ? "; giving up" : "; trying again");
			g_free(line);
			said = true;
		}
		if (g_get_monotonic_time() > deadline)
			return -EIO;
		g_usleep(pause);
		pause = MIN(pause * 2, 1000000);
	}
	state(m)->generation++;
	state(m)->in_tx = false;
	g_message("metadata server %s:%s: connected again", PQhost(m->db), PQport(m->db));
	return 0;
}

/* Whether failed result res was the connection's: the server went away
 * or is going (SQLSTATE 57P01-57P03, class 08), which libpq may not have
 * noticed yet. The connection is then closed, to be made again. In a
 * transaction nothing of it was committed: it is run again whole. */
static bool connection_lost(struct meta *m, const PGresult *res)
{
	const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	bool lost = PQstatus(m->db) != CONNECTION_OK ||
		    (code && (!strncmp(code, "57P0", 4) || !strncmp(code, "08", 2)));

	if (!lost)
		return false;
	if (PQstatus(m->db) == CONNECTION_OK)
		PQreset(m->db); /* a server shutting down takes no more */
	if (state(m)->in_tx)
		m->retry = true;
	return true;
}

/* Whether failed result *res lost its connection outside a transaction
 * (a read, or a BEGIN): then *res is cleared, the connection made again
 * (*rc its failure) and the caller sends its statement again. */
static bool reconnected_to_resend(struct meta *m, PGresult **res, int *rc)
{
	if (PQresultStatus(*res) != PGRES_FATAL_ERROR || !connection_lost(m, *res) ||
	    state(m)->in_tx)
		return false;
	PQclear(*res);
	*res = NULL;
	*rc = ensure_connected(m);
	return true;
}

/* ---- statements ---- */

/* The core's "?N" as "$N"; the highest N in *nparams. The SQL is ours and
 * has no "?" in a literal. */
static char *dollar_params(const char *sql, int *nparams)
{
	GString *out = g_string_sized_new(strlen(sql) + 8);

	*nparams = 0;
	for (const char *p = sql; *p; p++) {
		if (*p != '?') {
			g_string_append_c(out, *p);
			continue;
		}
		char *end;
		long n = strtol(p + 1, &end, 10);

		g_string_append_printf(out, "$%ld", n);
		*nparams = MAX(*nparams, (int)n);
		p = end - 1;
	}
	return g_string_free(out, FALSE);
}

static int pg_prepare(struct meta *m, const char *sql, void **impl)
{
	struct pg_stmt *s = g_new0(struct pg_stmt, 1);

	s->m = m;
	s->text = dollar_params(sql, &s->nparams);
	if (s->nparams > PARAMS_MAX) {
		g_free(s->text);
		g_free(s);
		return -EIO;
	}
	snprintf(s->name, sizeof(s->name), "shardfs_%u", state(m)->next_name++);
	s->row = -1;
	*impl = s;
	return 0;
}

static void pg_reset(void *impl)
{
	struct pg_stmt *s = impl;

	PQclear(s->res);
	s->res = NULL;
	s->row = -1;
	for (int i = 0; i < s->nparams; i++) {
		s->values[i] = NULL;
		s->lengths[i] = 0;
		s->formats[i] = 0;
	}
}

static void pg_finalize(void *impl)
{
	struct pg_stmt *s = impl;

	pg_reset(s);
	g_free(s->text);
	g_free(s);
}

/* As SQLite does, a parameter the statement does not have is no error:
 * the core binds two to statements of one or two (meta_run_ints). */
static bool param_ok(const struct pg_stmt *s, int i)
{
	return i >= 1 && i <= s->nparams;
}

static void pg_bind_int(void *impl, int i, int64_t v)
{
	struct pg_stmt *s = impl;

	if (!param_ok(s, i))
		return;
	snprintf(s->ints[i - 1], sizeof(s->ints[0]), "%" PRId64, v);
	s->values[i - 1] = s->ints[i - 1];
	s->formats[i - 1] = 0;
}

static void pg_bind_blob(void *impl, int i, const void *p, size_t n)
{
	struct pg_stmt *s = impl;

	if (!param_ok(s, i))
		return;
	s->values[i - 1] = p ? p : "";
	s->lengths[i - 1] = (int)n;
	s->formats[i - 1] = 1;
}

static void pg_bind_text(void *impl, int i, const char *text)
{
	struct pg_stmt *s = impl;

	if (!param_ok(s, i))
		return;
	s->values[i - 1] = text;
	s->formats[i - 1] = 0;
}

/* Prepared in this connection's session, once per reconnect. */
static int prepare_on_server(struct meta *m, struct pg_stmt *s)
{
	if (s->prepared_in == state(m)->generation + 1)
		return 0;
	PGresult *res = PQprepare(m->db, s->name, s->text, s->nparams, NULL);
	int rc = 0;

	if (reconnected_to_resend(m, &res, &rc)) {
		if (rc < 0)
			return -EIO;
		res = PQprepare(m->db, s->name, s->text, s->nparams, NULL);
	}
	rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : result_errno(m, res);

	PQclear(res);
	if (rc == 0)
		s->prepared_in = state(m)->generation + 1;
	return rc;
}

static int64_t cmd_tuples(const PGresult *res)
{
	const char *n = PQcmdTuples((PGresult *)res);

	return n && *n ? g_ascii_strtoll(n, NULL, 10) : 0;
}

/* Runs s the first time it is stepped; META_DONE for a statement without
 * rows, else 0 and its rows ready. */
static int run(struct meta *m, struct pg_stmt *s)
{
	int rc = state(m)->in_tx ? 0 : ensure_connected(m);

	if (rc == 0)
		rc = prepare_on_server(m, s);
	if (rc < 0)
		return rc;
	s->res = PQexecPrepared(m->db, s->name, s->nparams, s->values, s->lengths, s->formats, 1);
	if (reconnected_to_resend(m, &s->res, &rc)) {
		if (rc < 0 || (rc = prepare_on_server(m, s)) < 0)
			return rc;
		s->res = PQexecPrepared(m->db, s->name, s->nparams, s->values, s->lengths,
					s->formats, 1);
	}
	switch (PQresultStatus(s->res)) {
	case PGRES_COMMAND_OK:
		m->changes = cmd_tuples(s->res);
		return META_DONE;
	case PGRES_TUPLES_OK:
		m->changes = cmd_tuples(s->res);
		return 0;
	default:
		return result_errno(m, s->res);
	}
}

static int pg_step(struct meta *m, void *impl)
{
	struct pg_stmt *s = impl;

	if (!s->res) {
		int rc = run(m, s);

		if (rc != 0)
			return rc;
	}
	if (PQresultStatus(s->res) != PGRES_TUPLES_OK || s->row + 1 >= PQntuples(s->res))
		return META_DONE;
	s->row++;
	return META_ROW;
}

static bool pg_col_null(void *impl, int c)
{
	struct pg_stmt *s = impl;

	return s->row < 0 || PQgetisnull(s->res, s->row, c);
}

static uint64_t big_endian(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int64_t pg_col_int(void *impl, int c)
{
	struct pg_stmt *s = impl;

	if (pg_col_null(s, c))
		return 0;
	const uint8_t *p = (const uint8_t *)PQgetvalue(s->res, s->row, c);
	int n = PQgetlength(s->res, s->row, c);

	switch (PQftype(s->res, c)) {
	case INT8OID:
		return n == 8 ? (int64_t)big_endian(p, 8) : 0;
	case INT4OID:
		return n == 4 ? (int32_t)big_endian(p, 4) : 0;
	case INT2OID:
		return n == 2 ? (int16_t)big_endian(p, 2) : 0;
	case BOOLOID:
		return n == 1 ? p[0] : 0;
	default:
		g_critical("metadata column %d is not an integer (type %u)", c, PQftype(s->res, c));
		return 0;
	}
}

static const void *pg_col_blob(void *impl, int c, size_t *n)
{
	struct pg_stmt *s = impl;

	if (pg_col_null(s, c)) {
		*n = 0;
		return NULL;
	}
	*n = (size_t)PQgetlength(s->res, s->row, c);
	return PQgetvalue(s->res, s->row, c);
}

/* ---- transactions ---- */

static int pg_exec(struct meta *m, const char *text)
{
	int rc = state(m)->in_tx ? 0 : ensure_connected(m);

	if (rc < 0)
		return rc;
	PGresult *res = PQexec(m->db, text);
	ExecStatusType st = PQresultStatus(res);

	if (reconnected_to_resend(m, &res, &rc)) {
		if (rc < 0)
			return rc;
		res = PQexec(m->db, text);
		st = PQresultStatus(res);
	}
	rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : result_errno(m, res);
	PQclear(res);
	return rc;
}

static int pg_begin(struct meta *m, bool durable)
{
	int rc = pg_exec(m, durable ? "BEGIN ISOLATION LEVEL SERIALIZABLE"
				    : "BEGIN ISOLATION LEVEL SERIALIZABLE;"
				      " SET LOCAL synchronous_commit TO off");

	state(m)->in_tx = rc == 0;
	if (rc < 0)
		pg_exec(m, "ROLLBACK");
	return rc;
}

/* A snapshot that no writer can make fail; in_tx, so that a lost
 * connection ends it rather than going on outside it. */
static int pg_begin_snapshot(struct meta *m)
{
	int rc = pg_exec(m, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");

	state(m)->in_tx = rc == 0;
	return rc;
}

/* The server answers COMMIT of a transaction an error ended with ROLLBACK. */
static int pg_commit(struct meta *m, bool durable)
{
	PGresult *res = PQexec(m->db, "COMMIT");
	int rc;

	(void)durable;
	state(m)->in_tx = false;
	if (PQresultStatus(res) == PGRES_COMMAND_OK)
		rc = strcmp(PQcmdStatus(res), "COMMIT") == 0 ? 0 : m->retry ? -EAGAIN : -EIO;
	else if (PQstatus(m->db) != CONNECTION_OK)
		rc = -EIO, g_warning("metadata server %s:%s: connection lost in a commit,"
				     " whose outcome is unknown", PQhost(m->db), PQport(m->db));
	else
		rc = result_errno(m, res);
	PQclear(res);
	return rc;
}

static void pg_rollback(struct meta *m, bool durable)
{
	(void)durable;
	if (PQstatus(m->db) == CONNECTION_OK)
		PQclear(PQexec(m->db, "ROLLBACK"));
	state(m)->in_tx = false;
}

/* Identity columns do not follow rows inserted with their value. */
static int pg_keys_follow(struct meta *m)
{
	return pg_exec(m, "SELECT setval(pg_get_serial_sequence('inodes', 'ino'),"
			  " (SELECT coalesce(max(ino), 0) + 1 FROM inodes), false);"
			  "SELECT setval(pg_get_serial_sequence('dentries', 'id'),"
			  " (SELECT coalesce(max(id), 0) + 1 FROM dentries), false);"
			  "SELECT setval(pg_get_serial_sequence('garbage', 'id'),"
			  " (SELECT coalesce(max(id), 0) + 1 FROM garbage), false);"
			  "SELECT setval(pg_get_serial_sequence('sessions', 'sid'),"
			  " (SELECT coalesce(max(sid), 0) + 1 FROM sessions), false);"
			  "SELECT setval(pg_get_serial_sequence('locks', 'id'),"
			  " (SELECT coalesce(max(id), 0) + 1 FROM locks), false)");
}

/* The server checks its own storage (checksums, WAL); nothing to add. */
static void pg_integrity(struct meta *m, GString *report)
{
	(void)m;
	(void)report;
}

static void pg_close(struct meta *m)
{
	PQfinish(m->db);
	g_free(m->engine_state);
}

static const struct meta_engine pg_engine = {
	.name = "PostgreSQL",
	.migrations = migrations,
	.make_node_at_once = true,
	.prepare = pg_prepare,
	.finalize = pg_finalize,
	.reset = pg_reset,
	.bind_int = pg_bind_int,
	.bind_blob = pg_bind_blob,
	.bind_text = pg_bind_text,
	.step = pg_step,
	.col_null = pg_col_null,
	.col_int = pg_col_int,
	.col_blob = pg_col_blob,
	.exec = pg_exec,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.begin_snapshot = pg_begin_snapshot,
	.keys_follow = pg_keys_follow,
	.integrity = pg_integrity,
	.close = pg_close,
};

/*
 * The URL's settings win over ours (they come last), and libpq reads the
 * rest of its usual sources. create means nothing here: the database is
 * the server's to make; the core creates the schema in it.
 */
int meta_pg_connect(struct meta *m, const char *url, bool create)
{
	const char *const keys[] = {"application_name", "connect_timeout", "dbname", NULL};
	const char *const values[] = {"shardfs", CONNECT_TIMEOUT_S, url, NULL};

	(void)create;
	m->engine = &pg_engine;
	m->engine_state = g_new0(struct pg_state, 1);
	m->db = PQconnectdbParams(keys, values, 1);
	if (!m->db)
		return -ENOMEM;
	if (PQstatus(m->db) != CONNECTION_OK) {
		char *line = first_line(PQerrorMessage(m->db));
		int rc = connect_errno(line);

		meta_set_open_error("server %s:%s: %s", PQhost(m->db) ? PQhost(m->db) : "?",
				    PQport(m->db) ? PQport(m->db) : "?", line);
		g_free(line);
		return rc;
	}
	return 0;
}
