/*
 * meta_fixture.c - the metadata database of a test and namespace steps
 * that must succeed (meta_fixture.h).
 */
#include "meta_fixture.h"

#include <glib.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

uint64_t test_mkdir_ok(struct meta *m, uint64_t parent, const char *name)
{
	struct meta_attr a;

	assert_int_equal(meta_mkdir(m, parent, name, 0755, 1, 2, &a), 0);
	return a.ino;
}

uint64_t test_create_ok(struct meta *m, uint64_t parent, const char *name)
{
	struct meta_attr a;

	assert_int_equal(meta_create(m, parent, name, 0644, 1, 2, true, &a), 0);
	return a.ino;
}

bool test_meta_is_pg(void)
{
	const char *base = g_getenv("SHARDFS_TEST_PG");

	return base && *base;
}

/* Runs SQL on a server's database; a failure fails the test. */
static void pg_exec(const char *conninfo, const char *sql)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r;

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("test server: %s", PQerrorMessage(c));
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("test server: %s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
}

static void maintenance(const char *sql)
{
	pg_exec(g_getenv("SHARDFS_TEST_PG"), sql);
}

void test_meta_raw_exec(const char *url, const char *sql)
{
	sqlite3 *db;
	char *err = NULL;

	if (!g_str_has_prefix(url, "sqlite://")) {
		pg_exec(url, sql);
		return;
	}
	if (sqlite3_open_v2(url + strlen("sqlite://"), &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		fail_msg("cannot open %s", url);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
	sqlite3_close(db);
}

/* The maintenance URL with another database name. */
static char *url_of(const char *db)
{
	const char *base = g_getenv("SHARDFS_TEST_PG");
	const char *q = strchr(base, '?');

	return g_strdup_printf("postgresql:///%s%s", db, q ? q : "");
}

char *test_meta_url(const char *dir)
{
	static int made;

	if (!test_meta_is_pg())
		return g_strdup_printf("sqlite://%s/meta.db", dir);
	char *db = g_strdup_printf("test_%d_%d", (int)getpid(), ++made);
	char *sql = g_strdup_printf("CREATE DATABASE %s", db);
	char *url = url_of(db);

	maintenance(sql);
	g_free(sql);
	g_free(db);
	return url;
}

void test_meta_url_drop(const char *url)
{
	if (!g_str_has_prefix(url, "postgresql:///"))
		return;
	const char *db = url + strlen("postgresql:///");
	char *name = g_strndup(db, strcspn(db, "?"));
	char *sql = g_strdup_printf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name);

	maintenance(sql);
	g_free(sql);
	g_free(name);
}
