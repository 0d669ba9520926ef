/*
 * bench_meta.c - `shardfs bench meta`: operation rates of the metadata
 * engines: a fresh SQLite database on local disk, and (--engine postgres
 * or both) fresh databases on a PostgreSQL server, a throwaway one in
 * the scratch directory (tools/local_pg.h) unless --url names one where
 * the bench may create and drop databases. With both, the ratios of
 * PostgreSQL to SQLite are printed beside its goals.
 *
 * Two configurations, each on a database of its own made with
 * meta_create_db: 1 thread, and THREADS threads (default 8). Every thread
 * has its own struct meta (one connection), as the mount's worker threads
 * will. In each configuration:
 *   creates   each thread makes COUNT / threads new files with meta_create,
 *             round-robin over 4 directories of its own: writers never
 *             share a directory, so they contend only for the database's
 *             write lock, as unrelated writers of a mount do
 *   lookups   meta_lookup of a random existing name (any thread's), then
 *             meta_getattr of the inode found, as a stat() after a path
 *             walk does; each call counts as one operation; for SECONDS
 *   readdir   meta_readdir in pages of 128 entries (about one 4 KiB FUSE
 *             readdir buffer) through the thread's own directories, over
 *             and over, for SECONDS
 * Databases, directories, connections and threads are set up outside the
 * timed part, and a gate starts the threads of a phase together. Next to
 * each rate the CPU time of the process per operation is printed: on a
 * shared machine it varies much less from run to run than the rate.
 *
 * Everything lives in a new directory (under --dir, default /var/tmp,
 * which stays on disk where /tmp may be a tmpfs), removed at the end.
 */
#define G_LOG_DOMAIN "shardfs"

#include "bench.h"
#include "kit.h"
#include "tools/cli_args.h"
#include "tools/local_pg.h"
#include "store/meta/meta.h"

#include <libpq-fe.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIRS_PER_THREAD 4u
#define READDIR_PAGE 128u
#define DEADLINE_CHECK_EVERY 64u /* operations between two looks at the clock */
#define CREATE_GOAL_PER_S 20000
#define LOOKUP_GOAL_PER_S 100000

struct bench_opts {
	char *dir;
	char *engine; /* sqlite, postgres, both */
	char *url;    /* a PostgreSQL server's database, or NULL: a throwaway one */
	gint count;
	gint threads;
	gdouble seconds;
	gboolean json;
};

/* What a phase achieved: operations (or entries) per second, and the
 * process's CPU time per operation, which a busy machine disturbs less. */
struct figure {
	double per_s;
	double cpu_us;
};

struct rates {
	struct figure creates, lookups, readdir_entries;
};

/* Holds the threads of a phase until all of them are ready. */
struct gate {
	GMutex lock;
	GCond cond;
	unsigned waiting; /* lock */
	gboolean open;	  /* lock */
	gint64 deadline;  /* monotonic microseconds; set before opening */
};

struct worker;
typedef int (*phase_fn)(struct worker *w);

struct worker {
	struct meta *m;
	unsigned id;
	unsigned nworkers;
	unsigned files;		  /* files each worker creates */
	const uint64_t *all_dirs; /* every worker's directories, DIRS_PER_THREAD each */
	uint64_t rng;		  /* xorshift state, never 0 */
	struct gate *gate;
	phase_fn phase;
	uint64_t ops; /* operations (or readdir entries) done in the phase */
	int rc;
};

static const uint64_t *worker_dirs(const struct worker *w, unsigned id)
{
	return w->all_dirs + (size_t)id * DIRS_PER_THREAD;
}

static uint32_t next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return (uint32_t)(*state >> 32);
}

static void file_name(char *buf, size_t size, unsigned i)
{
	g_snprintf(buf, size, "file-%08u", i);
}

static bool past_deadline(const struct worker *w)
{
	return w->ops % DEADLINE_CHECK_EVERY == 0 && g_get_monotonic_time() >= w->gate->deadline;
}

static int phase_create(struct worker *w)
{
	const uint64_t *dirs = worker_dirs(w, w->id);
	struct meta_attr a;
	char name[32];

	for (unsigned i = 0; i < w->files; i++) {
		file_name(name, sizeof(name), i);
		int rc = meta_create(w->m, dirs[i % DIRS_PER_THREAD], name, 0644, 0, 0, true, &a);

		if (rc < 0)
			return rc;
		w->ops++;
	}
	return 0;
}

static int phase_lookup(struct worker *w)
{
	struct meta_attr a;
	char name[32];

	while (!past_deadline(w)) {
		unsigned owner = next_random(&w->rng) % w->nworkers;
		unsigned i = next_random(&w->rng) % w->files;
		uint64_t dir = worker_dirs(w, owner)[i % DIRS_PER_THREAD];
		int rc;

		file_name(name, sizeof(name), i);
		rc = meta_lookup(w->m, dir, name, &a);
		if (rc == 0)
			rc = meta_getattr(w->m, a.ino, &a);
		if (rc < 0)
			return rc;
		w->ops += 2;
	}
	return 0;
}

struct page {
	unsigned entries;
	uint64_t cookie;
};

static int count_entry(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	struct page *p = arg;

	(void)name;
	(void)ino;
	(void)mode;
	p->entries++;
	p->cookie = cookie;
	return 0;
}

/* Reads one directory to its end, page by page; stops early at the deadline. */
static int read_whole_dir(struct worker *w, uint64_t dir)
{
	struct page p = {.entries = READDIR_PAGE};

	while (p.entries == READDIR_PAGE && g_get_monotonic_time() < w->gate->deadline) {
		int rc;

		p.entries = 0;
		rc = meta_readdir(w->m, dir, p.cookie, READDIR_PAGE, count_entry, &p);
		if (rc < 0)
			return rc;
		w->ops += p.entries;
	}
	return 0;
}

static int phase_readdir(struct worker *w)
{
	const uint64_t *dirs = worker_dirs(w, w->id);

	for (unsigned pass = 0; g_get_monotonic_time() < w->gate->deadline; pass++) {
		int rc = read_whole_dir(w, dirs[pass % DIRS_PER_THREAD]);

		if (rc < 0)
			return rc;
	}
	return 0;
}

static gpointer worker_main(gpointer arg)
{
	struct worker *w = arg;

	g_mutex_lock(&w->gate->lock);
	w->gate->waiting++;
	g_cond_broadcast(&w->gate->cond);
	while (!w->gate->open)
		g_cond_wait(&w->gate->cond, &w->gate->lock);
	g_mutex_unlock(&w->gate->lock);
	w->rc = w->phase(w);
	return NULL;
}

/* Waits for n threads at the gate, then lets them go; returns the start time. */
static gint64 gate_open(struct gate *g, unsigned n, double seconds)
{
	gint64 t0;

	g_mutex_lock(&g->lock);
	while (g->waiting < n)
		g_cond_wait(&g->cond, &g->lock);
	t0 = g_get_monotonic_time();
	g->deadline = t0 + (gint64)(seconds * 1e6);
	g->open = TRUE;
	g_cond_broadcast(&g->cond);
	g_mutex_unlock(&g->lock);
	return t0;
}

/* Runs fn on every worker at once; 0 with *out, or a negative errno. */
static int run_phase(struct worker *ws, unsigned n, phase_fn fn, double seconds, struct figure *out)
{
	struct gate gate = {0};
	GThread **threads = g_new(GThread *, n);
	uint64_t ops = 0;
	int rc = 0;

	g_mutex_init(&gate.lock);
	g_cond_init(&gate.cond);
	for (unsigned i = 0; i < n; i++) {
		ws[i].gate = &gate;
		ws[i].phase = fn;
		ws[i].ops = 0;
		threads[i] = g_thread_new("bench-meta", worker_main, &ws[i]);
	}
	double cpu0 = bench_cpu_self_s();
	gint64 t0 = gate_open(&gate, n, seconds);

	for (unsigned i = 0; i < n; i++) {
		g_thread_join(threads[i]);
		ops += ws[i].ops;
		rc = rc ?: ws[i].rc;
	}
	double secs = (double)(g_get_monotonic_time() - t0) / 1e6;

	out->per_s = (double)ops / secs;
	out->cpu_us = ops ? (bench_cpu_self_s() - cpu0) * 1e6 / (double)ops : 0;
	g_free(threads);
	g_mutex_clear(&gate.lock);
	g_cond_clear(&gate.cond);
	return rc;
}

/* Opens worker id's connection and makes its directories. */
static int worker_init(struct worker *w, const char *url, unsigned id, unsigned n, unsigned files,
		       uint64_t *all_dirs)
{
	struct meta_attr a;
	int rc;

	*w = (struct worker){.id = id,
			     .nworkers = n,
			     .files = files,
			     .all_dirs = all_dirs,
			     .rng = 0x9e3779b97f4a7c15ull * (id + 1)};
	rc = meta_open(url, &w->m);
	for (unsigned k = 0; rc == 0 && k < DIRS_PER_THREAD; k++) {
		char *name = g_strdup_printf("thread-%u-dir-%u", id, k);

		rc = meta_mkdir(w->m, META_ROOT_INO, name, 0755, 0, 0, &a);
		if (rc == 0)
			all_dirs[id * DIRS_PER_THREAD + k] = a.ino;
		g_free(name);
	}
	return rc;
}

/* One configuration: a new database, n threads, the three phases. */
/* url with its database name (the path of a postgresql:// URL) db. */
static char *url_with_db(const char *url, const char *db)
{
	const char *auth = strstr(url, "://");
	const char *path = auth ? auth + 3 + strcspn(auth + 3, "/?") : url;
	const char *query = path + strcspn(path, "?");

	return g_strdup_printf("%.*s/%s%s", (int)(path - url), url, db, query);
}

/* SQL on a server's database, for making and dropping the bench's own. */
static int server_exec(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
	int rc = r && PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -EIO;

	if (rc)
		fprintf(stderr, "shardfs: bench meta: %s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return rc;
}

static char *bench_db_name(unsigned n)
{
	return g_strdup_printf("shardfs_bench_%d_%u", (int)getpid(), n);
}

/* One configuration: a new database, n threads, the three phases. A
 * server's database (server set) is dropped at the end. */
static int run_config(const struct bench_opts *o, const char *scratch, unsigned n,
		      struct rates *out, const char *server)
{
	g_autofree char *db = bench_db_name(n);
	g_autofree char *create = g_strdup_printf("CREATE DATABASE %s", db);
	g_autofree char *drop = g_strdup_printf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
	char *url = server ? url_with_db(server, db)
			   : g_strdup_printf("sqlite://%s/meta-%u-threads.db", scratch, n);

	if (server && server_exec(server, create) < 0) {
		g_free(url);
		return -EIO;
	}
	struct worker *ws = g_new0(struct worker, n);
	uint64_t *all_dirs = g_new0(uint64_t, (size_t)n * DIRS_PER_THREAD);
	const struct {
		phase_fn fn;
		double seconds;
		struct figure *out;
	} phases[] = {
	    {phase_create, 0, &out->creates},
	    {phase_lookup, o->seconds, &out->lookups},
	    {phase_readdir, o->seconds, &out->readdir_entries},
	};
	int rc = meta_create_db(url, getuid(), getgid());

	for (unsigned i = 0; rc == 0 && i < n; i++)
		rc = worker_init(&ws[i], url, i, n, (unsigned)o->count / n, all_dirs);
	for (size_t i = 0; rc == 0 && i < G_N_ELEMENTS(phases); i++)
		rc = run_phase(ws, n, phases[i].fn, phases[i].seconds, phases[i].out);
	for (unsigned i = 0; i < n; i++)
		meta_close(ws[i].m);
	if (server)
		server_exec(server, drop);
	g_free(all_dirs);
	g_free(ws);
	g_free(url);
	return rc;
}

/* The rows of the table and the names of the JSON fields. */
static const struct row {
	const char *label;
	const char *json; /* figure name: NAME_per_s, NAME_cpu_us */
	size_t offset;	  /* of its struct figure in struct rates */
	int goal;	  /* per second with 1 thread; 0: none */
} rows[] = {
    {"creates", "creates", offsetof(struct rates, creates), CREATE_GOAL_PER_S},
    {"lookups + getattrs (calls)", "lookups", offsetof(struct rates, lookups), LOOKUP_GOAL_PER_S},
    {"readdir entries (128 a page)", "readdir_entries", offsetof(struct rates, readdir_entries), 0},
};

static const struct figure *figure_of(const struct rates *r, const struct row *row)
{
	return (const struct figure *)((const char *)r + row->offset);
}

/* goals: SQLite's (PostgreSQL's are ratios, print_ratios). */
static void print_table(const struct bench_opts *o, const char *where, const struct rates *one,
			const struct rates *many, gboolean goals)
{
	static const struct bench_col groups[] = {
		BENCH_COL("", -30, 0),
		BENCH_COL("", 20, 0),
		BENCH_COL("", 20, 0),
		BENCH_COL("", 16, 0),
	};
	static const struct bench_col cols[] = {
		BENCH_COL("", -30, 0),
		BENCH_COL("per s", 11, 0),
		BENCH_COL("CPU us", 8, 2),
		BENCH_COL("per s", 11, 0),
		BENCH_COL("CPU us", 8, 2),
		BENCH_COL("1 thread, per s", 16, 0),
	};
	struct bench_row row;
	char label[32];

	printf("shardfs bench meta: %d files, %s, one connection per thread\n\n", o->count, where);
	g_snprintf(label, sizeof(label), "%d threads", o->threads);
	bench_row_start(&row, groups, G_N_ELEMENTS(groups));
	bench_row_text(&row, "");
	bench_row_text(&row, "1 thread");
	bench_row_text(&row, label);
	bench_row_text(&row, "goal");
	bench_row_end(&row);
	bench_table_head(cols, G_N_ELEMENTS(cols));
	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		const struct figure *a = figure_of(one, &rows[i]), *b = figure_of(many, &rows[i]);
		char goal[32] = "-";

		if (rows[i].goal && goals)
			g_snprintf(goal, sizeof(goal), "%11d (%s)", rows[i].goal,
				   a->per_s >= rows[i].goal ? "met" : "missed");
		bench_row_start(&row, cols, G_N_ELEMENTS(cols));
		bench_row_text(&row, rows[i].label);
		bench_row_num(&row, a->per_s);
		bench_row_num(&row, a->cpu_us);
		bench_row_num(&row, b->per_s);
		bench_row_num(&row, b->cpu_us);
		bench_row_text(&row, goal);
		bench_row_end(&row);
	}
	printf("\nCPU us: CPU time of the whole process per operation (per entry for readdir)\n");
}

/* NAME_per_s and NAME_cpu_us; with _N after each for n threads (n > 1). */
static void json_figure(struct bench_json *j, const char *name, const struct figure *f, int n)
{
	g_autofree char *suffix = n > 1 ? g_strdup_printf("_%d", n) : g_strdup("");
	g_autofree char *per_s = g_strconcat(name, "_per_s", suffix, NULL);
	g_autofree char *cpu_us = g_strconcat(name, "_cpu_us", suffix, NULL);

	bench_json_num(j, per_s, f->per_s, 0);
	bench_json_num(j, cpu_us, f->cpu_us, 3);
}

/* The figures of one engine's runs; prefix "" for SQLite, "pg_" for
 * PostgreSQL. */
static void json_engine(struct bench_json *j, const struct bench_opts *o, const char *prefix,
			const struct rates *one, const struct rates *many, gboolean goals)
{
	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		g_autofree char *name = g_strconcat(prefix, rows[i].json, NULL);

		json_figure(j, name, figure_of(one, &rows[i]), 1);
		json_figure(j, name, figure_of(many, &rows[i]), o->threads);
		if (rows[i].goal && goals) {
			g_autofree char *goal = g_strconcat(rows[i].json, "_goal_per_s", NULL);

			bench_json_int(j, goal, rows[i].goal);
		}
	}
}

/* Goals of PostgreSQL's creates: against SQLite's with 1 thread, and
 * N threads against 1. */
#define PG_CREATES_RATIO_GOAL 0.3
#define PG_CREATES_SCALING_GOAL 3.0

struct engines {
	gboolean sqlite, pg;
	struct rates one, many, pg_one, pg_many;
	char *pg_where;
};

static void print_json(const struct bench_opts *o, const struct engines *e)
{
	struct bench_json j;

	bench_json_init(&j, FALSE);
	bench_json_str(&j, "bench", "meta");
	bench_json_str(&j, "engine", o->engine);
	bench_json_int(&j, "count", o->count);
	bench_json_int(&j, "threads", o->threads);
	bench_json_num(&j, "seconds", o->seconds, 2);
	if (e->sqlite)
		json_engine(&j, o, "", &e->one, &e->many, TRUE);
	if (e->pg)
		json_engine(&j, o, "pg_", &e->pg_one, &e->pg_many, FALSE);
	if (e->sqlite && e->pg && e->one.creates.per_s > 0 && e->pg_one.creates.per_s > 0) {
		bench_json_num(&j, "pg_creates_ratio", e->pg_one.creates.per_s / e->one.creates.per_s, 3);
		bench_json_num(&j, "pg_creates_ratio_goal", PG_CREATES_RATIO_GOAL, 2);
	}
	if (e->pg && e->pg_one.creates.per_s > 0) {
		bench_json_num(&j, "pg_creates_scaling",
			       e->pg_many.creates.per_s / e->pg_one.creates.per_s, 3);
		bench_json_num(&j, "pg_creates_scaling_goal", PG_CREATES_SCALING_GOAL, 2);
	}
	bench_json_print(&j);
}

static void print_ratios(const struct bench_opts *o, const struct engines *e)
{
	double ratio = e->one.creates.per_s > 0 ? e->pg_one.creates.per_s / e->one.creates.per_s : 0;
	double scaling = e->pg_one.creates.per_s > 0 ?
				 e->pg_many.creates.per_s / e->pg_one.creates.per_s : 0;

	printf("\nPostgreSQL creates, 1 thread, against SQLite's: %.2f (goal %.1f, %s)\n", ratio,
	       PG_CREATES_RATIO_GOAL, ratio >= PG_CREATES_RATIO_GOAL ? "met" : "missed");
	printf("PostgreSQL creates, %d threads against 1:       %.2f (goal %.1f, %s)\n",
	       o->threads, scaling, PG_CREATES_SCALING_GOAL,
	       scaling >= PG_CREATES_SCALING_GOAL ? "met" : "missed");
}

/* A new directory for the databases: under --dir, else under /var/tmp. */
static char *make_scratch(const char *parent)
{
	char *scratch;

	if (parent && g_mkdir_with_parents(parent, 0755) < 0) {
		fprintf(stderr, "shardfs: cannot create %s: %s\n", parent, g_strerror(errno));
		return NULL;
	}
	scratch = g_build_filename(parent ? parent : "/var/tmp", "shardfs-bench-meta-XXXXXX", NULL);
	if (!g_mkdtemp(scratch)) {
		fprintf(stderr, "shardfs: cannot create %s: %s\n", scratch, g_strerror(errno));
		g_free(scratch);
		return NULL;
	}
	return scratch;
}

/* Both configurations on one engine: SQLite in scratch, or databases on
 * server. */
static int run_engine(const struct bench_opts *o, const char *scratch, const char *server,
		      struct rates *one, struct rates *many)
{
	int rc = run_config(o, scratch, 1, one, server);

	return rc ? rc : run_config(o, scratch, (unsigned)o->threads, many, server);
}

/* The PostgreSQL runs: on --url's server, or a throwaway one. */
static int run_pg(const struct bench_opts *o, const char *scratch, struct engines *e)
{
	struct local_pg pg;
	int rc;

	if (o->url) {
		e->pg_where = meta_url_safe(o->url);
		return run_engine(o, scratch, o->url, &e->pg_one, &e->pg_many);
	}
	if (chmod(scratch, 0755) < 0 || !local_pg_init(&pg, scratch))
		return -EIO;
	rc = local_pg_create(&pg, "127.0.0.1") < 0 ? -EIO : 0;
	e->pg_where = g_strdup_printf("PostgreSQL, a throwaway server in %s", pg.dir);
	if (rc == 0)
		rc = run_engine(o, scratch, pg.url, &e->pg_one, &e->pg_many);
	local_pg_stop(&pg);
	local_pg_fini(&pg);
	return rc;
}

static int run(const struct bench_opts *o)
{
	struct engines e = {.sqlite = strcmp(o->engine, "postgres") != 0,
			    .pg = strcmp(o->engine, "sqlite") != 0};
	char *scratch = make_scratch(o->dir);
	int rc = 0;

	if (!scratch)
		return -EIO;
	if (e.sqlite)
		rc = run_engine(o, scratch, NULL, &e.one, &e.many);
	if (rc == 0 && e.pg)
		rc = run_pg(o, scratch, &e);
	if (rc < 0) {
		fprintf(stderr, "shardfs: bench meta failed: %s\n", g_strerror(-rc));
	} else if (o->json) {
		print_json(o, &e);
	} else {
		g_autofree char *sqlite_where = g_strdup_printf("SQLite in %s", scratch);

		if (e.sqlite)
			print_table(o, sqlite_where, &e.one, &e.many, TRUE);
		if (e.sqlite && e.pg)
			printf("\n");
		if (e.pg)
			print_table(o, e.pg_where, &e.pg_one, &e.pg_many, FALSE);
		if (e.sqlite && e.pg)
			print_ratios(o, &e);
	}
	bench_remove_tree(scratch);
	g_free(scratch);
	g_free(e.pg_where);
	return rc;
}

int cmd_bench_meta(int argc, char **argv)
{
	struct bench_opts o = {.count = 50000, .threads = 8, .seconds = 1.0};
	GOptionEntry entries[] = {
	    {"count", 'n', 0, G_OPTION_ARG_INT, &o.count,
	     "files created in each configuration (default 50000)", "N"},
	    {"threads", 't', 0, G_OPTION_ARG_INT, &o.threads,
	     "threads of the parallel configuration (default 8)", "N"},
	    {"seconds", 0, 0, G_OPTION_ARG_DOUBLE, &o.seconds,
	     "duration of the lookup and readdir phases (default 1)", "S"},
	    {"dir", 'd', 0, G_OPTION_ARG_FILENAME, &o.dir,
	     "where to make the scratch directory (default /var/tmp)", "DIR"},
	    {"engine", 0, 0, G_OPTION_ARG_STRING, &o.engine,
	     "sqlite (default), postgres or both", "ENGINE"},
	    {"url", 0, 0, G_OPTION_ARG_STRING, &o.url,
	     "a PostgreSQL database URL on a server where the bench may create databases"
	     " (default: a throwaway local server)", "URL"},
	    {"json", 0, 0, G_OPTION_ARG_NONE, &o.json, "print one JSON object", NULL},
	    {NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	int rc;

	if (!tools_parse(argc, argv, entries,
			 "- metadata creates, lookups and readdir on SQLite and PostgreSQL"))
		return SHARDFS_EXIT_USAGE;
	if (!o.engine)
		o.engine = g_strdup("sqlite");
	if (o.threads < 2 || o.threads > 64 || o.count < 16 * o.threads || o.seconds <= 0 ||
	    o.seconds > 600 || !g_strv_contains((const char *const[]){"sqlite", "postgres", "both", NULL}, o.engine)) {
		fprintf(stderr, "shardfs: --threads must be 2..64, --count at least 16 per thread, "
				"--seconds 0..600, --engine sqlite, postgres or both\n");
		g_free(o.dir);
		g_free(o.engine);
		g_free(o.url);
		return SHARDFS_EXIT_USAGE;
	}
	rc = run(&o);
	g_free(o.dir);
	g_free(o.engine);
	g_free(o.url);
	return rc < 0 ? SHARDFS_EXIT_FAIL : 0;
}
