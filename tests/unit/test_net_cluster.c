/*
 * test_net_cluster.c - the cluster file's checks: the erasure code and
 * min_shards, its default by code and the values refused with a message
 * that names the key; a file that is no key file is refused naming its
 * line, never echoing its bytes.
 */
#include "net/net.h"
#include "fixture.h"

#include <errno.h>
#include <glib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

/* Loads a cluster file of three nodes with the given [cluster] lines;
 * the loader's result, with *c on success and *msg on failure. */
static int load(const char *cluster_lines, struct net_cluster **c, char **msg)
{
	char *dir = test_mkdtemp(), *path = g_build_filename(dir, "cluster.conf", NULL);
	GString *text = g_string_new("[cluster]\nca=ca.crt\n");
	GError *err = NULL;

	g_string_append(text, cluster_lines);
	for (int id = 1; id <= 3; id++)
		g_string_append_printf(text, "[node.%d]\naddress=127.0.0.1\nport=%d\n", id, 7000 + id);
	assert_true(g_file_set_contents(path, text->str, -1, NULL));
	int rc = net_cluster_load(path, c, &err);
	*msg = err ? g_strdup(err->message) : NULL;
	g_clear_error(&err);
	g_string_free(text, TRUE);
	test_rmdir(dir);
	g_free(path);
	g_free(dir);
	return rc;
}

/* What the loader says of a file holding exactly len bytes of data. */
static char *refusal_of(const char *data, size_t len)
{
	char *dir = test_mkdtemp(), *path = g_build_filename(dir, "cluster.conf", NULL);
	struct net_cluster *c = NULL;
	GError *err = NULL;

	assert_true(g_file_set_contents(path, data, (gssize)len, NULL));
	assert_int_equal(net_cluster_load(path, &c, &err), -EINVAL);
	assert_null(c);
	char *msg = g_strdup(strstr(err->message, "cluster.conf"));
	g_error_free(err);
	test_rmdir(dir);
	g_free(path);
	g_free(dir);
	return msg;
}

static void test_unparsable_file_refused_by_line(void **state)
{
	static const char binary[] = "\x7f" "ELF\x02\x01\x00\xff\xfe[cluster]\n";
	static const char bad_line[] = "[cluster]\nca=ca.crt\nthis line is nothing\n";
	static const char open_group[] = "# a comment\n\n[cluster\nca=ca.crt\n";
	char *msg;

	(void)state;
	msg = refusal_of(binary, sizeof(binary) - 1);
	assert_string_equal(msg, "cluster.conf: not a cluster file (binary data, not text)");
	g_free(msg);
	msg = refusal_of(bad_line, sizeof(bad_line) - 1);
	assert_string_equal(msg, "cluster.conf line 3: not a [group], key=value or # comment line");
	g_free(msg);
	msg = refusal_of(open_group, sizeof(open_group) - 1);
	assert_string_equal(msg, "cluster.conf line 3: not a [group], key=value or # comment line");
	g_free(msg);
}

static unsigned min_shards_of(const char *cluster_lines)
{
	struct net_cluster *c = NULL;
	char *msg = NULL;

	assert_int_equal(load(cluster_lines, &c, &msg), 0);
	unsigned v = c->min_shards;
	net_cluster_free(c);
	return v;
}

/* k+1 by default, but never all of k+m when m >= 1; k with no parity. */
static void test_min_shards_default(void **state)
{
	(void)state;
	assert_int_equal(min_shards_of("ec=4+2\n"), 5);
	assert_int_equal(min_shards_of("ec=2+1\n"), 2);
	assert_int_equal(min_shards_of("ec=1+2\n"), 2);
	assert_int_equal(min_shards_of("ec=3+0\n"), 3);
	assert_int_equal(min_shards_of(""), 5); /* the default code, 4+2 */
}

/* An explicit value from k to k+m is taken. */
static void test_min_shards_explicit(void **state)
{
	(void)state;
	assert_int_equal(min_shards_of("ec=2+1\nmin_shards=3\n"), 3);
	assert_int_equal(min_shards_of("ec=2+1\nmin_shards=2\n"), 2);
	assert_int_equal(min_shards_of("ec=4+2\nmin_shards=4\n"), 4);
}

/* Below k, above k+m or not a number: refused, naming the key and range. */
static void test_min_shards_refused(void **state)
{
	const char *bad[] = {"ec=2+1\nmin_shards=1\n", "ec=2+1\nmin_shards=4\n",
			     "ec=2+1\nmin_shards=two\n", "ec=2+1\nmin_shards=-1\n"};

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		struct net_cluster *c = NULL;
		char *msg = NULL;

		assert_int_equal(load(bad[i], &c, &msg), -EINVAL);
		assert_null(c);
		assert_non_null(msg);
		assert_non_null(strstr(msg, "[cluster] min_shards must be 2..3 for ec 2+1"));
		g_free(msg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_min_shards_default),
		cmocka_unit_test(test_min_shards_explicit),
		cmocka_unit_test(test_min_shards_refused),
		cmocka_unit_test(test_unparsable_file_refused_by_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
