/*
 * kit.c - the measuring kit of the benches (see kit.h).
 */
#define G_LOG_DOMAIN "shardfs"

#include "kit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- time, CPU, memory ---- */

double bench_now_s(void)
{
	return (double)g_get_monotonic_time() / 1e6;
}

double bench_rusage_cpu_s(const struct rusage *ru)
{
	return (double)ru->ru_utime.tv_sec + ru->ru_utime.tv_usec / 1e6 +
	       (double)ru->ru_stime.tv_sec + ru->ru_stime.tv_usec / 1e6;
}

double bench_cpu_self_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return bench_rusage_cpu_s(&ru);
}

double bench_proc_cpu_s(pid_t pid)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
	g_autofree char *text = NULL;
	unsigned long ut = 0, st = 0;
	const char *p;

	if (!g_file_get_contents(path, &text, NULL, NULL) || !(p = strrchr(text, ')')))
		return 0;
	/* fields 14 and 15, counted after the command name */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

long bench_proc_status_kib(pid_t pid, const char *field)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)pid);
	g_autofree char *text = NULL;
	const char *at;

	if (!g_file_get_contents(path, &text, NULL, NULL) || !(at = strstr(text, field)))
		return -1;
	return strtol(at + strlen(field), NULL, 10);
}

double bench_proc_rss_mib(pid_t pid)
{
	return bench_proc_status_kib(pid, "VmRSS:") / 1024.0;
}

double bench_proc_peak_rss_mib(pid_t pid)
{
	return bench_proc_status_kib(pid, "VmHWM:") / 1024.0;
}

/* ---- page cache ---- */

void bench_drop_file_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		fdatasync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

void bench_drop_dir_cache(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;

	while (d && (name = g_dir_read_name(d))) {
		g_autofree char *path = g_build_filename(dir, name, NULL);

		bench_drop_file_cache(path);
	}
	if (d)
		g_dir_close(d);
}

gboolean bench_drop_dentries(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	gboolean ok;

	if (fd < 0)
		return FALSE;
	sync();
	ok = write(fd, "2\n", 2) == 2;
	close(fd);
	return ok;
}

/* ---- commands and files ---- */

int bench_run(char **argv, char **out)
{
	GSpawnFlags flags = G_SPAWN_SEARCH_PATH | (out ? 0 : G_SPAWN_STDOUT_TO_DEV_NULL);
	GError *err = NULL;
	gint status = 1;

	if (!g_spawn_sync(NULL, argv, NULL, flags, NULL, NULL, out, NULL, &status, &err)) {
		fprintf(stderr, "shardfs: %s\n", err->message);
		g_error_free(err);
		return -1;
	}
	return g_spawn_check_wait_status(status, NULL) ? 0 : -1;
}

static double json_number(const char *json, const char *key)
{
	g_autofree char *pat = g_strdup_printf("\"%s\":", key);
	const char *at = json ? strstr(json, pat) : NULL;

	return at ? g_ascii_strtod(at + strlen(pat), NULL) : 0;
}

int bench_measure_net(const char *self, int size_mib, double *put, double *get)
{
	g_autofree char *size = g_strdup_printf("%d", size_mib);
	char *argv[] = {(char *)self, "bench", "net", "--size", size, "--json", NULL};
	g_autofree char *out = NULL;

	if (bench_run(argv, &out))
		return -1;
	*put = json_number(out, "put_mib_s");
	*get = json_number(out, "get_mib_s");
	return *put > 0 && *get > 0 ? 0 : -1;
}

pid_t bench_spawn_piped(const char *self, const char *conf, char **args, int *to_child)
{
	int fds[2];

	if (pipe(fds))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[0], STDIN_FILENO);
		close(fds[0]);
		close(fds[1]);
		setenv("SHARDFS_CONF", conf, 1);
		execv(self, args);
		_exit(127);
	}
	close(fds[0]);
	*to_child = fds[1];
	return pid;
}

int bench_reap(pid_t pid, struct rusage *ru)
{
	struct rusage unused;
	int status = 0;
	pid_t got;

	while ((got = wait4(pid, &status, 0, ru ? ru : &unused)) < 0 && errno == EINTR)
		;
	return got == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

void bench_remove_tree(const char *path)
{
	char *rm[] = {"rm", "-rf", (char *)path, NULL};

	g_spawn_sync(NULL, rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
}

int bench_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- tables ---- */

void bench_row_start(struct bench_row *r, const struct bench_col *cols, unsigned ncols)
{
	*r = (struct bench_row){.cols = cols, .ncols = ncols};
}

/* The separator before the next cell, and that cell's column. */
static const struct bench_col *row_next(struct bench_row *r)
{
	const struct bench_col *col = &r->cols[r->at];

	g_assert(r->at < r->ncols);
	if (r->at++ > 0)
		printf("%*s", 1 + col->gap, "");
	return col;
}

void bench_row_text(struct bench_row *r, const char *text)
{
	const struct bench_col *col = row_next(r);

	printf("%*s", col->width, text);
}

void bench_row_num_digits(struct bench_row *r, double v, int digits)
{
	const struct bench_col *col = row_next(r);
	const char *unit = col->unit ? col->unit : "";
	int len = (int)strlen(unit), width = col->width < 0 ? col->width + len : col->width - len;

	printf("%*.*f%s", width, digits, v, unit);
}

void bench_row_num(struct bench_row *r, double v)
{
	bench_row_num_digits(r, v, r->cols[r->at].digits);
}

void bench_row_end(struct bench_row *r)
{
	(void)r;
	putchar('\n');
}

void bench_table_head(const struct bench_col *cols, unsigned ncols)
{
	struct bench_row r;

	bench_row_start(&r, cols, ncols);
	for (unsigned i = 0; i < ncols && cols[i].head; i++)
		bench_row_text(&r, cols[i].head);
	bench_row_end(&r);
}

/* ---- JSON ---- */

void bench_json_init(struct bench_json *j, gboolean spaced)
{
	*j = (struct bench_json){.out = g_string_new("{"),
				 .comma = spaced ? ", " : ",",
				 .colon = spaced ? ": " : ":",
				 .depth = 1,
				 .close = {'}'}};
}

/* The comma before an item, and its key. */
static void json_item(struct bench_json *j, const char *key)
{
	if (j->more[j->depth - 1])
		g_string_append(j->out, j->comma);
	j->more[j->depth - 1] = TRUE;
	if (key)
		g_string_append_printf(j->out, "\"%s\"%s", key, j->colon);
}

void bench_json_str(struct bench_json *j, const char *key, const char *v)
{
	json_item(j, key);
	g_string_append_printf(j->out, "\"%s\"", v);
}

void bench_json_int(struct bench_json *j, const char *key, long long v)
{
	json_item(j, key);
	g_string_append_printf(j->out, "%lld", v);
}

void bench_json_num(struct bench_json *j, const char *key, double v, int digits)
{
	json_item(j, key);
	g_string_append_printf(j->out, "%.*f", digits, v);
}

void bench_json_bool(struct bench_json *j, const char *key, gboolean v)
{
	json_item(j, key);
	g_string_append(j->out, v ? "true" : "false");
}

static void json_open(struct bench_json *j, const char *key, char open, char close)
{
	g_assert(j->depth < BENCH_JSON_DEPTH);
	json_item(j, key);
	g_string_append_c(j->out, open);
	j->close[j->depth] = close;
	j->more[j->depth] = FALSE;
	j->depth++;
}

void bench_json_array(struct bench_json *j, const char *key)
{
	json_open(j, key, '[', ']');
}

void bench_json_object(struct bench_json *j, const char *key)
{
	json_open(j, key, '{', '}');
}

void bench_json_end(struct bench_json *j)
{
	g_assert(j->depth > 0);
	g_string_append_c(j->out, j->close[--j->depth]);
}

void bench_json_print(struct bench_json *j)
{
	while (j->depth > 0)
		bench_json_end(j);
	printf("%s\n", j->out->str);
	g_string_free(j->out, TRUE);
	j->out = NULL;
}
