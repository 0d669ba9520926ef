/*
 * test_store_erasure.c - encode and decode through every backend that
 * loads: any k of k+m fragments rebuild the part, and data fragments hold
 * the plain bytes at the offsets range reads rely on.
 */
#include "store/erasure.h"

#include <glib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static const char *const backend_names[] = {"isa_l_rs_cauchy", "liberasurecode_rs_vand"};
static const size_t lengths[] = {1, 2, 7, 4096, 65537, (8u << 20) - 1, 8u << 20};

static uint8_t *random_bytes(size_t len, uint32_t seed)
{
	GRand *g = g_rand_new_with_seed(seed);
	uint8_t *b = g_malloc(len);

	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)g_rand_int(g);
	g_rand_free(g);
	return b;
}

/* Data fragment i carries plain bytes [i*c, (i+1)*c) after its header. */
static void check_layout(const struct erasure *e, const uint8_t *plain, size_t len,
			 const struct erasure_fragments *f)
{
	size_t c = erasure_chunk_size(e, len);

	assert_int_equal(f->frag_len, ERASURE_HEADER_SIZE + c);
	assert_int_equal(erasure_fragment_size(e, len), f->frag_len);
	for (unsigned i = 0; i < erasure_k(e); i++) {
		size_t from = i * c, n = from >= len ? 0 : MIN(c, len - from);

		if (n)
			assert_memory_equal(f->frag[i] + ERASURE_HEADER_SIZE, plain + from, n);
	}
}

/* Every choice of k fragments out of k+m decodes to the plain part. */
static void check_every_subset(const struct erasure *e, const uint8_t *plain, size_t len,
			       const struct erasure_fragments *f)
{
	unsigned total = erasure_k(e) + erasure_m(e);
	uint8_t *out = g_malloc(len);

	for (unsigned mask = 0; mask < (1u << total); mask++) {
		uint8_t *sel[ERASURE_MAX_FRAGMENTS];
		unsigned n = 0;

		for (unsigned i = 0; i < total; i++)
			if (mask & (1u << i))
				sel[n++] = f->frag[i];
		if (n != erasure_k(e))
			continue;
		memset(out, 0, len);
		assert_int_equal(erasure_decode(e, sel, n, f->frag_len, out, len), 0);
		assert_memory_equal(out, plain, len);
	}
	g_free(out);
}

static void round_trip(const char *backend, unsigned k, unsigned m)
{
	struct erasure *e = NULL;
	int rc = erasure_new(k, m, backend, &e);

	if (rc == -ENOTSUP) {
		printf("backend %s not available\n", backend);
		return;
	}
	assert_int_equal(rc, 0);
	for (size_t l = 0; l < G_N_ELEMENTS(lengths); l++) {
		uint8_t *plain = random_bytes(lengths[l], (uint32_t)l);
		struct erasure_fragments f = {0};

		assert_int_equal(erasure_encode(e, plain, lengths[l], &f), 0);
		check_layout(e, plain, lengths[l], &f);
		check_every_subset(e, plain, lengths[l], &f);
		erasure_fragments_release(e, &f);
		g_free(plain);
	}
	erasure_free(e);
}

/* Round trips through both backends, for 2+1 and 4+2. */
static void test_round_trips(void **state)
{
	(void)state;
	for (size_t b = 0; b < G_N_ELEMENTS(backend_names); b++) {
		round_trip(backend_names[b], 2, 1);
		round_trip(backend_names[b], 4, 2);
	}
}

/* The default is ISA-L, which the installed packages provide. */
static void test_default_backend_is_isal(void **state)
{
	(void)state;
	struct erasure *e = NULL;

	assert_int_equal(erasure_new(4, 2, NULL, &e), 0);
	assert_string_equal(erasure_backend(e), "isa_l_rs_cauchy");
	erasure_free(e);
}

/* Too few fragments, or a fragment with a damaged header among exactly k,
 * is an error rather than wrong bytes. */
static void test_too_few_fragments(void **state)
{
	(void)state;
	struct erasure *e = NULL;
	struct erasure_fragments f = {0};
	uint8_t *plain = random_bytes(100000, 9), out[100000];

	assert_int_equal(erasure_new(4, 2, NULL, &e), 0);
	assert_int_equal(erasure_encode(e, plain, sizeof(out), &f), 0);
	assert_int_equal(erasure_decode(e, f.frag, 3, f.frag_len, out, sizeof(out)), -EINVAL);
	f.frag[1][0] ^= 0xff; /* inside the header */
	assert_int_equal(erasure_decode(e, f.frag, 4, f.frag_len, out, sizeof(out)), -EINVAL);
	assert_int_equal(erasure_decode(e, f.frag, 6, f.frag_len, out, sizeof(out)), 0);
	assert_memory_equal(out, plain, sizeof(out));
	erasure_fragments_release(e, &f);
	erasure_free(e);
	g_free(plain);
}

/* Bad parameters are refused. */
static void test_bad_parameters(void **state)
{
	(void)state;
	struct erasure *e = NULL;

	assert_int_equal(erasure_new(0, 2, NULL, &e), -EINVAL);
	assert_int_equal(erasure_new(4, 0, NULL, &e), -EINVAL);
	assert_int_equal(erasure_new(30, 3, NULL, &e), -EINVAL);
	assert_int_equal(erasure_new(4, 2, "nosuch", &e), -EINVAL);
	assert_null(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_default_backend_is_isal),
		cmocka_unit_test(test_too_few_fragments),
		cmocka_unit_test(test_bad_parameters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
