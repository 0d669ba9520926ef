/*
 * test_wal_crash.c - kill -9 of a process writing to the store.
 *
 * A child process runs writer threads (puts of random sizes, deletes) with
 * background compaction and checkpoints, and tells the parent through a
 * pipe of each operation before it starts and after it is acknowledged. The
 * parent kills it with SIGKILL at a random moment, reopens the store and
 * checks that every key holds exactly what its last acknowledged operation
 * left (or what the one operation in flight would have left), byte for
 * byte. The same store goes through every round.
 */
#include "wal/wal.h"
#include "crash_model.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#define KEYS 256
#define THREADS 4
#define ROUNDS 24

static void crash_options(struct wal_options *o, const char *dir)
{
	test_wal_options(o, dir);
	o->segment_size = 512u << 10;
	o->max_payload = 128u << 10;
	o->checkpoint_every = 2;
	o->compact_threshold = 0.5;
	o->compact_interval_ms = 20;
}

static void pipe_write(int fd, const char *line, size_t len)
{
	/* Lines are shorter than PIPE_BUF, so each write is atomic. */
	if (write(fd, line, len) != (ssize_t)len)
		_exit(4);
}

static void pipe_intent(void *arg, uint64_t id, bool put, uint64_t version, uint32_t len)
{
	char line[96];
	int n = snprintf(line, sizeof(line), "%c %llu %llu %u\n", put ? 'P' : 'D',
			 (unsigned long long)id, (unsigned long long)version, len);

	pipe_write(*(int *)arg, line, (size_t)n);
}

static void pipe_ack(void *arg, uint64_t id)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "A %llu\n", (unsigned long long)id);

	pipe_write(*(int *)arg, line, (size_t)n);
}

static void child_main(const char *dir, int fd, guint32 seed, uint64_t version_base)
{
	struct workload_sink sink = {pipe_intent, pipe_ack, &fd};
	struct workload wl[THREADS];
	GThread *th[THREADS];
	volatile gint stop = 0;
	struct wal_options o;
	struct wal *w;

	crash_options(&o, dir);
	o.background_compaction = true;
	if (wal_open(&o, &w) < 0)
		_exit(3);
	for (unsigned i = 0; i < THREADS; i++) {
		wl[i] = (struct workload){w, i, THREADS, KEYS, version_base, 64u << 10, seed + i,
					  &sink, &stop, 0};
		th[i] = g_thread_new("writer", workload_main, &wl[i]);
	}
	for (unsigned i = 0; i < THREADS; i++)
		g_thread_join(th[i]);
	_exit(2); /* only a failed operation gets here */
}

static void apply_line(struct crash_model *m, char *line)
{
	unsigned long long id, version;
	unsigned len;

	if (sscanf(line, "P %llu %llu %u", &id, &version, &len) == 3)
		crash_model_intent(m, id, true, version, len);
	else if (sscanf(line, "D %llu %llu", &id, &version) == 2)
		crash_model_intent(m, id, false, version, 0);
	else if (sscanf(line, "A %llu", &id) == 1)
		crash_model_ack(m, id);
	else
		fail_msg("bad line from the child: %s", line);
}

/* Reads the pipe until the deadline (then kills the child) and to EOF. */
static void follow_child(pid_t pid, int fd, gint64 deadline, struct crash_model *m)
{
	GString *buf = g_string_new(NULL);
	bool killed = false;
	char chunk[4096];

	for (;;) {
		gint64 left = deadline - g_get_monotonic_time();
		struct pollfd pfd = {fd, POLLIN, 0};

		if (!killed && left <= 0) {
			kill(pid, SIGKILL);
			killed = true;
		}
		if (poll(&pfd, 1, killed ? 1000 : (int)(left / 1000) + 1) <= 0)
			continue;
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n <= 0)
			break;
		g_string_append_len(buf, chunk, n);
		char *nl;

		while ((nl = memchr(buf->str, '\n', buf->len))) {
			*nl = '\0';
			apply_line(m, buf->str);
			g_string_erase(buf, 0, nl - buf->str + 1);
		}
	}
	if (!killed)
		kill(pid, SIGKILL);
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	g_string_free(buf, TRUE);
}

/* Every acknowledged write survives kill -9, byte-exact, at any moment. */
static void test_kill9_loses_nothing_acknowledged(void **state)
{
	struct crash_run r;
	struct wal_options o;

	(void)state;
	crash_run_init(&r);
	crash_options(&o, r.dir);
	for (int round = 0; round < ROUNDS; round++) {
		int p[2];
		pid_t pid;

		assert_int_equal(pipe(p), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			child_main(r.dir, p[1], r.seed + (guint32)round * 16, (uint64_t)(round + 1) << 32);
		}
		close(p[1]);
		follow_child(pid, p[0], g_get_monotonic_time() + g_rand_int_range(r.rng, 20, 400) * 1000,
			     r.m);
		close(p[0]);
		assert_int_equal(crash_run_verify(&r, &o, KEYS), 0);
	}
	assert_true(crash_run_finish(&r, ROUNDS, "kills") > 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill9_loses_nothing_acknowledged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
