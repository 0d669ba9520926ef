/*
 * erasure.c - liberasurecode behind erasure.h.
 *
 * liberasurecode allocates the fragments of every encode and the output of
 * every decode; they are handed back to it (never to free()). Its instance
 * registry is locked only on create/destroy, so a created instance is used
 * from many threads at once.
 */
#define G_LOG_DOMAIN "shardfs-store"

#include "erasure.h"

#include <erasurecode.h>
#include <errno.h>
#include <glib.h>
#include <string.h>

struct erasure {
	int desc;
	unsigned k, m;
	const char *backend;
};

static const struct {
	const char *name;
	ec_backend_id_t id;
} backends[] = {
	{"isa_l_rs_cauchy", EC_BACKEND_ISA_L_RS_CAUCHY},
	{"liberasurecode_rs_vand", EC_BACKEND_LIBERASURECODE_RS_VAND},
};

static int create(unsigned k, unsigned m, size_t b, struct erasure **out)
{
	struct ec_args args = {.k = (int)k, .m = (int)m, .hd = (int)m, .ct = CHKSUM_NONE};

	if (!liberasurecode_backend_available(backends[b].id))
		return -ENOTSUP;
	int desc = liberasurecode_instance_create(backends[b].id, &args);
	if (desc <= 0)
		return -ENOTSUP;
	struct erasure *e = g_new0(struct erasure, 1);
	e->desc = desc;
	e->k = k;
	e->m = m;
	e->backend = backends[b].name;
	*out = e;
	return 0;
}

int erasure_new(unsigned k, unsigned m, const char *backend, struct erasure **out)
{
	int rc = -EINVAL;

	if (k < 1 || m < 1 || k + m > ERASURE_MAX_FRAGMENTS)
		return -EINVAL;
	for (size_t b = 0; b < G_N_ELEMENTS(backends); b++) {
		if (backend && strcmp(backend, backends[b].name))
			continue;
		rc = create(k, m, b, out);
		if (rc == 0 || backend)
			return rc;
	}
	return rc;
}

void erasure_free(struct erasure *e)
{
	if (!e)
		return;
	liberasurecode_instance_destroy(e->desc);
	g_free(e);
}

const char *erasure_backend(const struct erasure *e)
{
	return e->backend;
}

unsigned erasure_k(const struct erasure *e)
{
	return e->k;
}

unsigned erasure_m(const struct erasure *e)
{
	return e->m;
}

size_t erasure_chunk_size(const struct erasure *e, size_t len)
{
	int c = liberasurecode_get_fragment_size(e->desc, (int)len);

	g_assert(c > 0 && len <= INT32_MAX);
	return (size_t)c;
}

size_t erasure_fragment_size(const struct erasure *e, size_t len)
{
	return ERASURE_HEADER_SIZE + erasure_chunk_size(e, len);
}

int erasure_encode(const struct erasure *e, const void *data, size_t len,
		   struct erasure_fragments *out)
{
	char **d = NULL, **p = NULL;
	uint64_t frag_len = 0;

	if (len == 0 || len > INT32_MAX)
		return -EINVAL;
	int rc = liberasurecode_encode(e->desc, data, len, &d, &p, &frag_len);
	if (rc < 0)
		return rc == -ENOMEM ? -ENOMEM : -EINVAL;
	for (unsigned i = 0; i < e->k; i++)
		out->frag[i] = (uint8_t *)d[i];
	for (unsigned i = 0; i < e->m; i++)
		out->frag[e->k + i] = (uint8_t *)p[i];
	out->frag_len = frag_len;
	out->data_ = d;
	out->parity_ = p;
	return 0;
}

void erasure_fragments_release(const struct erasure *e, struct erasure_fragments *f)
{
	if (f->data_ || f->parity_)
		liberasurecode_encode_cleanup(e->desc, f->data_, f->parity_);
	memset(f, 0, sizeof(*f));
}

int erasure_decode(const struct erasure *e, uint8_t *const *frags, unsigned n, size_t frag_len,
		   void *out, size_t len)
{
	char *avail[ERASURE_MAX_FRAGMENTS];
	unsigned navail = 0;
	char *plain = NULL;
	uint64_t plain_len = 0;

	if (frag_len <= ERASURE_HEADER_SIZE)
		return -EINVAL;
	/* A fragment whose header is damaged would steer the decoder wrong. */
	for (unsigned i = 0; i < n && navail < ERASURE_MAX_FRAGMENTS; i++)
		if (!is_invalid_fragment(e->desc, (char *)frags[i]))
			avail[navail++] = (char *)frags[i];
	if (navail < e->k)
		return -EINVAL;
	int rc = liberasurecode_decode(e->desc, avail, (int)navail, frag_len, 1, &plain, &plain_len);
	if (rc < 0)
		return rc == -ENOMEM ? -ENOMEM : -EINVAL;
	if (plain_len == len)
		memcpy(out, plain, len);
	liberasurecode_decode_cleanup(e->desc, plain);
	return plain_len == len ? 0 : -EINVAL;
}
