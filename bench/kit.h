/*
 * kit.h - the measuring kit every `shardfs bench` mode shares: clocks,
 * CPU time and RSS of this process, its children and other pids, page
 * cache dropping, commands run and timed, and the two ways figures are
 * printed (a fixed-width table, one JSON object).
 *
 * Figures are read from /proc and rusage as they are: a pid that is gone
 * reads as -1 KiB or 0 CPU seconds rather than an error, since a bench
 * prints what it saw and its exit status says only whether it ran.
 *
 * The table and JSON writers print with printf's %f, so the figures look
 * exactly as each bench printed them before it used the kit. Not
 * thread-safe: the main thread prints.
 */
#ifndef SHARDFS_BENCH_KIT_H
#define SHARDFS_BENCH_KIT_H

#include <glib.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

/* ---- time, CPU, memory ---- */

/* Monotonic seconds. */
double bench_now_s(void);

/* User + system seconds of a rusage. */
double bench_rusage_cpu_s(const struct rusage *ru);

/* User + system seconds this process has used so far. */
double bench_cpu_self_s(void);

/* CPU seconds (user + system) process pid has used so far, or 0. */
double bench_proc_cpu_s(pid_t pid);

/* A kB field of /proc/PID/status ("VmRSS:", "VmHWM:") in KiB, or -1. */
long bench_proc_status_kib(pid_t pid, const char *field);

/* VmRSS and VmHWM (peak) of pid in MiB; -1/1024 when gone. */
double bench_proc_rss_mib(pid_t pid);
double bench_proc_peak_rss_mib(pid_t pid);

/* ---- page cache ---- */

/* Writes out and drops the page cache of one file. */
void bench_drop_file_cache(const char *path);

/* bench_drop_file_cache of every file directly under dir. */
void bench_drop_dir_cache(const char *dir);

/* Drops the kernel's dentries and inodes (not the page cache): root only;
 * FALSE if not allowed. */
gboolean bench_drop_dentries(void);

/* ---- commands and files ---- */

/*
 * Runs argv (argv[0] searched in PATH) and waits for it. Its stdout goes
 * into *out (to be g_free'd) when out is given, else to /dev/null; stderr
 * is this process's. Returns 0 if it exited with status 0, else -1 (the
 * reason printed when it could not be started).
 */
int bench_run(char **argv, char **out);

/* `shardfs bench net --size MIB` (self: the binary), the transport's
 * ceiling that other benches compare with: MiB/s of one connection's
 * puts and gets. 0, or -1 if it failed. */
int bench_measure_net(const char *self, int size_mib, double *put, double *get);

/* Starts `shardfs ARGS` (self: the binary) with SHARDFS_CONF=conf and a
 * pipe to its stdin, whose end is *to_child. The pid, or -1. */
pid_t bench_spawn_piped(const char *self, const char *conf, char **args, int *to_child);

/* Waits for child pid (retrying EINTR); its rusage in *ru when given.
 * 0 if it exited with status 0, else -1. */
int bench_reap(pid_t pid, struct rusage *ru);

/* rm -rf path. */
void bench_remove_tree(const char *path);

/* Writes all n bytes (retrying short writes and EINTR); 0 or -1. */
int bench_write_all(int fd, const uint8_t *p, size_t n);

/* ---- tables ---- */

/* One column of a table. Cells are separated by one space (plus gap). */
struct bench_col {
	const char *head; /* for bench_table_head; NULL ends the heading */
	int width;	  /* printf field width; negative: left-aligned */
	int digits;	  /* after the point, for numbers */
	const char *unit; /* glued after a number, inside the width ("M"); may be NULL */
	int gap;	  /* spaces before the cell beyond the usual one */
};

#define BENCH_COL(h, w, d) {.head = (h), .width = (w), .digits = (d), .unit = NULL, .gap = 0}
#define BENCH_COL_UNIT(h, w, d, u) {.head = (h), .width = (w), .digits = (d), .unit = (u), .gap = 0}
/* A last column of text, headless, g more spaces before it. */
#define BENCH_COL_GAP(g) {.head = NULL, .width = 0, .digits = 0, .unit = NULL, .gap = (g)}

/* A row being printed, cell by cell, to stdout. */
struct bench_row {
	const struct bench_col *cols;
	unsigned ncols, at;
};

/* Prints the heads of cols up to the first NULL one, as a row. */
void bench_table_head(const struct bench_col *cols, unsigned ncols);

void bench_row_start(struct bench_row *r, const struct bench_col *cols, unsigned ncols);
void bench_row_text(struct bench_row *r, const char *text);
/* A number with its column's digits, or with digits given. */
void bench_row_num(struct bench_row *r, double v);
void bench_row_num_digits(struct bench_row *r, double v, int digits);
/* Ends the line; a row may have fewer cells than columns. */
void bench_row_end(struct bench_row *r);

/* ---- JSON ---- */

#define BENCH_JSON_DEPTH 4

/* One JSON object being built; printed on one line by bench_json_print. */
struct bench_json {
	GString *out;
	const char *comma, *colon;
	unsigned depth;			   /* containers open; the outer object is 1 */
	char close[BENCH_JSON_DEPTH];	   /* what ends each */
	gboolean more[BENCH_JSON_DEPTH];   /* an element is already in it */
};

/* Starts the object; spaced: ", " and ": " between items, else "," and ":". */
void bench_json_init(struct bench_json *j, gboolean spaced);

/* Members (key given) or array elements (key NULL). */
void bench_json_str(struct bench_json *j, const char *key, const char *v);
void bench_json_int(struct bench_json *j, const char *key, long long v);
void bench_json_num(struct bench_json *j, const char *key, double v, int digits);
void bench_json_bool(struct bench_json *j, const char *key, gboolean v);
void bench_json_array(struct bench_json *j, const char *key);
void bench_json_object(struct bench_json *j, const char *key);
/* Ends the innermost array or object opened. */
void bench_json_end(struct bench_json *j);

/* Ends every container, prints the object and a newline, frees it. */
void bench_json_print(struct bench_json *j);

#endif
