/*
 * crash_model.c - see crash_model.h.
 */
#include "crash_model.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

struct outcome {
	bool present;
	uint64_t version;
	uint32_t len;
};

struct key_model {
	struct outcome state;	/* after the last acknowledged operation */
	struct outcome pending; /* of the operation begun after it */
	bool has_pending;
};

struct crash_model {
	GMutex lock;
	GHashTable *keys; /* id -> struct key_model */
	uint64_t acks;
};

struct crash_model *crash_model_new(void)
{
	struct crash_model *m = g_new0(struct crash_model, 1);

	g_mutex_init(&m->lock);
	m->keys = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
	return m;
}

void crash_model_free(struct crash_model *m)
{
	g_hash_table_destroy(m->keys);
	g_mutex_clear(&m->lock);
	g_free(m);
}

static struct key_model *key_model_get(struct crash_model *m, uint64_t id)
{
	struct key_model *k = g_hash_table_lookup(m->keys, &id);

	if (!k) {
		uint64_t *key = g_new(uint64_t, 1);

		*key = id;
		k = g_new0(struct key_model, 1);
		g_hash_table_insert(m->keys, key, k);
	}
	return k;
}

void crash_model_intent(struct crash_model *m, uint64_t id, bool put, uint64_t version,
			uint32_t len)
{
	g_mutex_lock(&m->lock);
	struct key_model *k = key_model_get(m, id);

	k->pending = (struct outcome){put, version, put ? len : 0};
	k->has_pending = true;
	g_mutex_unlock(&m->lock);
}

void crash_model_ack(struct crash_model *m, uint64_t id)
{
	g_mutex_lock(&m->lock);
	struct key_model *k = key_model_get(m, id);

	if (k->has_pending) {
		k->state = k->pending;
		k->has_pending = false;
		m->acks++;
	}
	g_mutex_unlock(&m->lock);
}

uint64_t crash_model_acks(struct crash_model *m)
{
	g_mutex_lock(&m->lock);
	uint64_t n = m->acks;

	g_mutex_unlock(&m->lock);
	return n;
}

static bool outcome_equal(const struct outcome *a, const struct outcome *b)
{
	if (a->present != b->present)
		return false;
	return !a->present || (a->version == b->version && a->len == b->len);
}

/* What the store holds for id; false if it holds bytes of no version. */
static bool read_outcome(struct wal *w, uint64_t id, struct outcome *out, int *err)
{
	struct wal_key key = test_key(id);
	struct wal_shard_info info;
	uint8_t *buf;
	ssize_t n;

	*err = wal_stat(w, &key, &info);
	out->present = false;
	if (*err == -ENOENT)
		return true;
	if (*err < 0)
		return false;
	buf = g_malloc(info.length + 1);
	n = wal_read(w, &key, 0, buf, info.length + 1);
	out->present = true;
	out->len = info.length;
	bool ok = n == (ssize_t)info.length && test_payload_check(buf, info.length, id, &out->version);

	if (n < 0)
		*err = (int)n;
	g_free(buf);
	return ok;
}

int crash_model_verify(struct crash_model *m, struct wal *w, uint64_t max_id)
{
	int bad = 0;

	g_mutex_lock(&m->lock);
	for (uint64_t id = 0; id < max_id; id++) {
		struct key_model *k = key_model_get(m, id);
		struct outcome found = {0};
		int err;
		bool ok = read_outcome(w, id, &found, &err);

		if (ok && (outcome_equal(&found, &k->state) ||
			   (k->has_pending && outcome_equal(&found, &k->pending)))) {
			k->state = found;
			k->has_pending = false;
			continue;
		}
		bad++;
		fprintf(stderr,
			"key %llu: found %s v%llu len %u (err %d); acknowledged %s v%llu len %u; "
			"pending %s %s v%llu len %u\n",
			(unsigned long long)id, found.present ? "put" : "nothing",
			(unsigned long long)found.version, found.len, err,
			k->state.present ? "put" : "absent", (unsigned long long)k->state.version,
			k->state.len, k->has_pending ? "yes" : "no", k->pending.present ? "put" : "delete",
			(unsigned long long)k->pending.version, k->pending.len);
	}
	g_mutex_unlock(&m->lock);
	return bad;
}

/* ---- the rounds of a crash test ---- */

void crash_run_init(struct crash_run *r)
{
	r->dir = test_mkdtemp();
	r->m = crash_model_new();
	r->seed = (guint32)g_get_real_time();
	r->rng = g_rand_new_with_seed(r->seed);
	printf("seed %u\n", r->seed);
}

int crash_run_verify(struct crash_run *r, const struct wal_options *o, uint64_t keys)
{
	struct wal *w = NULL;
	int bad;

	assert_int_equal(wal_open(o, &w), 0);
	bad = crash_model_verify(r->m, w, keys);
	wal_close(w);
	return bad;
}

uint64_t crash_run_finish(struct crash_run *r, int rounds, const char *what)
{
	uint64_t acks = crash_model_acks(r->m);

	printf("%llu operations acknowledged over %d %s\n", (unsigned long long)acks, rounds, what);
	g_rand_free(r->rng);
	crash_model_free(r->m);
	test_rmdir(r->dir);
	g_free(r->dir);
	return acks;
}

/* ---- workload ---- */

gpointer workload_main(gpointer p)
{
	struct workload *wl = p;
	GRand *rng = g_rand_new_with_seed(wl->seed);
	uint8_t *buf = g_malloc(wl->max_len);
	uint64_t version = wl->version_base;
	int rc = 0;

	while (rc == 0 && !g_atomic_int_get(wl->stop)) {
		uint64_t id = (uint64_t)g_rand_int_range(rng, 0, (gint32)(wl->keys / wl->nthreads)) *
				      wl->nthreads + wl->thread;
		struct wal_key key = test_key(id);
		bool put = g_rand_int_range(rng, 0, 10) < 8;
		uint32_t len = (uint32_t)g_rand_int_range(rng, 16, (gint32)wl->max_len + 1);

		version++;
		wl->sink->intent(wl->sink->arg, id, put, version, len);
		if (put) {
			test_payload(buf, len, id, version);
			rc = wal_put(wl->w, &key, buf, len);
		} else {
			rc = wal_delete(wl->w, &key);
			rc = rc == -ENOENT ? 0 : rc;
		}
		if (rc == 0)
			wl->sink->ack(wl->sink->arg, id);
	}
	wl->result = rc;
	g_free(buf);
	g_rand_free(rng);
	return NULL;
}
