/*
 * local_pg.c - the PostgreSQL server of a local cluster (local_pg.h).
 *
 * Every PostgreSQL program runs as the server's user: the child drops
 * root (groups, gid, uid) between fork and exec. The data directory is
 * that user's; the password file and the TLS key in it are 0600. The
 * settings go at the end of postgresql.conf (later lines win there) and
 * pg_hba.conf is written whole, so nothing of initdb's defaults opens
 * another way in.
 */
#include "tools/local_pg.h"
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DB_USER "shardfs"
#define DB_NAME "shardfs"

/* Debian's server programs: where pg_config says, else the newest of
 * /usr/lib/postgresql/VERSION/bin. */
static char *find_bindir(void)
{
	char *out = NULL;
	char *argv[] = {"pg_config", "--bindir", NULL};

	if (g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
			 NULL, &out, NULL, NULL, NULL)) {
		g_strstrip(out);
		g_autofree char *initdb = g_build_filename(out, "initdb", NULL);

		if (g_file_test(initdb, G_FILE_TEST_IS_EXECUTABLE))
			return out;
	}
	g_free(out);
	GDir *d = g_dir_open("/usr/lib/postgresql", 0, NULL);
	char *best = NULL;
	long best_v = -1;

	for (const char *v; d && (v = g_dir_read_name(d));) {
		char *bin = g_build_filename("/usr/lib/postgresql", v, "bin", NULL);
		g_autofree char *initdb = g_build_filename(bin, "initdb", NULL);
		long n = strtol(v, NULL, 10);

		if (n > best_v && g_file_test(initdb, G_FILE_TEST_IS_EXECUTABLE)) {
			g_free(best);
			best = bin, best_v = n;
		} else {
			g_free(bin);
		}
	}
	if (d)
		g_dir_close(d);
	return best;
}

static void make_url(struct local_pg *pg)
{
	g_autofree char *host = g_uri_escape_string(pg->dir, "/", FALSE);

	g_free(pg->url);
	pg->url = g_strdup_printf("postgresql:///" DB_NAME "?host=%s&port=%u&user=" DB_USER, host,
				  pg->port);
}

gboolean local_pg_init(struct local_pg *pg, const char *dir)
{
	*pg = (struct local_pg){0};
	pg->dir = g_build_filename(dir, "pg", NULL);
	pg->data = g_build_filename(pg->dir, "data", NULL);
	pg->bindir = find_bindir();
	if (!pg->bindir) {
		fprintf(stderr, "shardfs: no PostgreSQL server here (apt-get install postgresql)\n");
		return FALSE;
	}
	/* Debian's package makes "postgres"; "nobody" serves without it */
	struct passwd *pw = getpwnam("postgres");

	if (!pw)
		pw = getpwnam("nobody");
	if (!pw) {
		fprintf(stderr, "shardfs: no unprivileged user to run PostgreSQL as\n");
		return FALSE;
	}
	pg->user = g_strdup(pw->pw_name);
	pg->uid = geteuid() == 0 ? pw->pw_uid : geteuid();
	pg->gid = geteuid() == 0 ? pw->pw_gid : getegid();
	g_autofree char *port_file = g_build_filename(pg->dir, "port", NULL);
	g_autofree char *port = NULL;

	if (g_file_get_contents(port_file, &port, NULL, NULL))
		pg->port = (uint16_t)g_ascii_strtoull(port, NULL, 10);
	make_url(pg);
	return TRUE;
}

void local_pg_fini(struct local_pg *pg)
{
	g_free(pg->dir);
	g_free(pg->data);
	g_free(pg->bindir);
	g_free(pg->user);
	g_free(pg->url);
}

gboolean local_pg_exists(const char *dir)
{
	g_autofree char *version = g_build_filename(dir, "pg", "data", "PG_VERSION", NULL);

	return g_file_test(version, G_FILE_TEST_EXISTS);
}

struct child {
	const struct local_pg *pg;
	int log_fd;
};

/* In the child, before exec: output to the log, the server's user and
 * nothing of root's. */
static void child_setup(gpointer arg)
{
	const struct child *c = arg;

	if (dup2(c->log_fd, 1) < 0 || dup2(c->log_fd, 2) < 0)
		_exit(126);
	if (geteuid() == 0 && (setgroups(0, NULL) || setgid(c->pg->gid) || setuid(c->pg->uid)))
		_exit(126);
}

/* Runs bindir/PROG ARGS... as the server's user, output appended to
 * DIR/pg/commands.log; its exit code, or -1. */
static int run_as_server(const struct local_pg *pg, const char *const *args)
{
	GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
	g_autofree char *log = g_build_filename(pg->dir, "commands.log", NULL);
	struct child c = {pg, open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)};
	gint status = -1;
	GError *err = NULL;

	g_ptr_array_add(argv, g_build_filename(pg->bindir, args[0], NULL));
	for (int i = 1; args[i]; i++)
		g_ptr_array_add(argv, g_strdup(args[i]));
	g_ptr_array_add(argv, NULL);
	if (c.log_fd >= 0 && fchown(c.log_fd, pg->uid, pg->gid) == 0 &&
	    !g_spawn_sync(pg->dir, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, child_setup, &c,
			  NULL, NULL, &status, &err)) {
		fprintf(stderr, "shardfs: %s: %s\n", args[0], err->message);
		g_error_free(err);
		status = -1;
	}
	if (c.log_fd >= 0)
		close(c.log_fd);
	g_ptr_array_free(argv, TRUE);
	return status < 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void print_failure(const struct local_pg *pg, const char *what)
{
	g_autofree char *log = g_build_filename(pg->dir, "commands.log", NULL);
	g_autofree char *text = NULL;
	gsize len = 0;

	fprintf(stderr, "shardfs: PostgreSQL %s failed (its output: %s)\n", what, log);
	if (g_file_get_contents(log, &text, &len, NULL) && len)
		fprintf(stderr, "%s", len > 1200 ? text + len - 1200 : text);
	fprintf(stderr, "shardfs: the user %s must be able to reach %s (every parent directory"
			" searchable by it)\n", pg->user, pg->dir);
}

/* A file of the server's user, mode 0600. */
static gboolean write_owned(const struct local_pg *pg, const char *path, const char *text,
			    gboolean append)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0600);
	size_t n = strlen(text);
	gboolean ok = fd >= 0 && write(fd, text, n) == (ssize_t)n && fchown(fd, pg->uid, pg->gid) == 0;

	if (fd >= 0)
		close(fd);
	if (!ok)
		fprintf(stderr, "shardfs: cannot write %s: %s\n", path, g_strerror(errno));
	return ok;
}

/* A random password, from the kernel's generator. */
static char *new_password(void)
{
	uint8_t raw[18];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	gboolean ok = fd >= 0 && read(fd, raw, sizeof(raw)) == (ssize_t)sizeof(raw);

	if (fd >= 0)
		close(fd);
	return ok ? g_base64_encode(raw, sizeof(raw)) : NULL;
}

static uint16_t free_tcp_port(const char *host)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint16_t port = 0;

	if (s >= 0 && inet_pton(AF_INET, host, &a.sin_addr) == 1 &&
	    bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (s >= 0)
		close(s);
	return port;
}

/* A value for postgresql.conf, in single quotes. */
static char *quoted(const char *s)
{
	char **parts = g_strsplit(s, "'", -1);
	char *joined = g_strjoinv("''", parts);
	char *out = g_strdup_printf("'%s'", joined);

	g_strfreev(parts);
	g_free(joined);
	return out;
}

static gboolean write_settings(struct local_pg *pg, const char *host)
{
	g_autofree char *conf = g_build_filename(pg->data, "postgresql.conf", NULL);
	g_autofree char *hba = g_build_filename(pg->data, "pg_hba.conf", NULL);
	g_autofree char *socket_dir = quoted(pg->dir), *listen = quoted(host);
	g_autofree char *settings = g_strdup_printf(
		"\n# shardfs up\nlisten_addresses = %s\nport = %u\nunix_socket_directories = %s\n"
		"unix_socket_permissions = 0700\npassword_encryption = 'scram-sha-256'\n",
		listen, pg->port, socket_dir);
	/* The socket's directory is the server user's, 0700: only it and
	 * root reach the trusted local logins. Over TCP, TLS and a password. */
	const char *rules = "local all all trust\n"
			    "hostssl all all 0.0.0.0/0 scram-sha-256\n"
			    "hostssl all all ::/0 scram-sha-256\n";

	return write_owned(pg, conf, settings, TRUE) && write_owned(pg, hba, rules, FALSE);
}

/* The first directory above pg->dir that the server's user cannot
 * search, or NULL: the server chdirs into its data by path. */
static char *unsearchable_parent(const struct local_pg *pg)
{
	char *dir = g_path_get_dirname(pg->dir);

	while (strcmp(dir, "/") != 0) {
		struct stat st;
		mode_t bit = S_IXOTH;

		if (stat(dir, &st) == 0) {
			if (st.st_uid == pg->uid)
				bit = S_IXUSR;
			else if (st.st_gid == pg->gid)
				bit = S_IXGRP;
			if (!(st.st_mode & bit))
				return dir;
		}
		char *up = g_path_get_dirname(dir);

		g_free(dir);
		dir = up;
	}
	g_free(dir);
	return NULL;
}

int local_pg_create(struct local_pg *pg, const char *host)
{
	g_autofree char *closed = geteuid() == 0 ? unsearchable_parent(pg) : NULL;

	if (closed) {
		fprintf(stderr, "shardfs: PostgreSQL runs as the user %s, which cannot enter %s:"
				" choose a directory it can reach, or let it pass (chmod o+x %s)\n",
			pg->user, closed, closed);
		return -1;
	}

	g_autofree char *pwfile = g_build_filename(pg->dir, "password", NULL);
	g_autofree char *port_file = g_build_filename(pg->dir, "port", NULL);
	g_autofree char *password = new_password();
	g_autofree char *pwopt = g_strconcat("--pwfile=", pwfile, NULL);
	g_autofree char *port = NULL;

	g_autofree char *parent = g_path_get_dirname(pg->dir);

	/* the cluster's directory is searchable: the server's user goes through it */
	if (g_mkdir_with_parents(parent, 0755) || g_mkdir_with_parents(pg->dir, 0700) ||
	    chown(pg->dir, pg->uid, pg->gid) ||
	    chmod(pg->dir, 0700)) {
		fprintf(stderr, "shardfs: cannot make %s: %s\n", pg->dir, g_strerror(errno));
		return -1;
	}
	pg->port = free_tcp_port(host);
	port = g_strdup_printf("%u\n", pg->port);
	make_url(pg);
	if (!password || !pg->port || !write_owned(pg, pwfile, password, FALSE) ||
	    !write_owned(pg, port_file, port, FALSE))
		return -1;
	const char *initdb[] = {"initdb", "-D", pg->data, "-U", DB_USER, pwopt,
				"-A", "scram-sha-256", "--auth-local=trust", "-E", "UTF8",
				"--data-checksums", NULL};

	if (run_as_server(pg, initdb) != 0) {
		print_failure(pg, "initdb");
		return -1;
	}
	if (!write_settings(pg, host) || local_pg_start(pg) < 0)
		return -1;
	g_autofree char *port_s = g_strdup_printf("%u", pg->port);
	const char *createdb[] = {"createdb", "-h", pg->dir, "-p", port_s, "-U", DB_USER, DB_NAME, NULL};

	if (run_as_server(pg, createdb) != 0) {
		print_failure(pg, "createdb");
		return -1;
	}
	return 0;
}

int local_pg_tls(struct local_pg *pg, const char *ca, const char *ca_key, const char *host)
{
	g_autofree char *crt = g_build_filename(pg->data, "server.crt", NULL);
	g_autofree char *key = g_build_filename(pg->data, "server.key", NULL);
	g_autofree char *conf = g_build_filename(pg->data, "postgresql.conf", NULL);
	GError *err = NULL;

	if (g_file_test(crt, G_FILE_TEST_EXISTS))
		return 0;
	if (!net_pki_issue(ca, ca_key, "shardfs metadata", host, TRUE, crt, key, &err)) {
		fprintf(stderr, "shardfs: the metadata server's certificate: %s\n", err->message);
		g_error_free(err);
		return -1;
	}
	if (chown(crt, pg->uid, pg->gid) || chown(key, pg->uid, pg->gid) || chmod(key, 0600) ||
	    !write_owned(pg, conf, "ssl = on\n", TRUE))
		return -1;
	const char *reload[] = {"pg_ctl", "-D", pg->data, "reload", NULL};

	return run_as_server(pg, reload) == 0 ? 0 : (print_failure(pg, "reload"), -1);
}

/* pg_ctl status: 0 while the server runs. */
static gboolean running(const struct local_pg *pg)
{
	const char *status[] = {"pg_ctl", "-D", pg->data, "status", NULL};

	return run_as_server(pg, status) == 0;
}

int local_pg_start(struct local_pg *pg)
{
	g_autofree char *log = g_build_filename(pg->dir, "server.log", NULL);
	const char *start[] = {"pg_ctl", "-D", pg->data, "-l", log, "-w", "-t", "60", "start", NULL};

	if (running(pg))
		return 1;
	if (run_as_server(pg, start) == 0)
		return 0;
	print_failure(pg, "start");
	return -1;
}

int local_pg_stop(struct local_pg *pg)
{
	const char *stop[] = {"pg_ctl", "-D", pg->data, "-m", "fast", "-w", "stop", NULL};

	if (!running(pg))
		return 1;
	if (run_as_server(pg, stop) == 0)
		return 0;
	print_failure(pg, "stop");
	return -1;
}
