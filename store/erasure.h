/*
 * erasure.h - erasure coding of parts into k data + m parity fragments
 * (liberasurecode; this is the only file that includes it).
 *
 * Backend: ISA-L Cauchy Reed-Solomon (isa_l_rs_cauchy: fast and decodable
 * for every k+m) when libisal.so.2 loads, else liberasurecode's built-in
 * Reed-Solomon (liberasurecode_rs_vand). Fragment checksums are off: the
 * node's WAL checksums every stored byte and the manifest holds an xxh3-128
 * of every plain part.
 *
 * Fragment layout (liberasurecode's, relied on by range reads and checked
 * by the unit tests):
 *   OFFSET SIZE  MEANING
 *        0   80  liberasurecode fragment header (index, sizes, backend)
 *       80   c   payload; for data fragment i (i < k) it is plain bytes
 *                [i*c, (i+1)*c) of the part, zero-padded past its end
 * where c = erasure_chunk_size(len). So a byte range of a part is a byte
 * range of at most a few data fragments, and a small read moves only it.
 *
 * Threading: an erasure is created once and then shared; encode and decode
 * may run on any number of threads at once (each call allocates its own
 * buffers).
 */
#ifndef SHARDFS_STORE_ERASURE_H
#define SHARDFS_STORE_ERASURE_H

#include <stddef.h>
#include <stdint.h>

#define ERASURE_HEADER_SIZE 80u
#define ERASURE_MAX_FRAGMENTS 32u

struct erasure;

/* The fragments of one encoded part, owned by the erasure's library. */
struct erasure_fragments {
	uint8_t *frag[ERASURE_MAX_FRAGMENTS]; /* k data, then m parity */
	size_t frag_len;		       /* each, header included */
	void *data_, *parity_;		       /* for erasure_fragments_release */
};

/*
 * A code of k data + m parity fragments. backend: "isa_l_rs_cauchy",
 * "liberasurecode_rs_vand", or NULL for the first that loads. -EINVAL for
 * k or m out of range or an unknown backend name; -ENOTSUP if no backend
 * loads.
 */
int erasure_new(unsigned k, unsigned m, const char *backend, struct erasure **out);
void erasure_free(struct erasure *e);
const char *erasure_backend(const struct erasure *e);
unsigned erasure_k(const struct erasure *e);
unsigned erasure_m(const struct erasure *e);

/* Payload bytes per fragment for a part of len bytes (len > 0). */
size_t erasure_chunk_size(const struct erasure *e, size_t len);
/* Whole fragment, header included. */
size_t erasure_fragment_size(const struct erasure *e, size_t len);

/* Encodes len > 0 bytes; release out with erasure_fragments_release.
 * -EINVAL, -ENOMEM. */
int erasure_encode(const struct erasure *e, const void *data, size_t len,
		   struct erasure_fragments *out);
void erasure_fragments_release(const struct erasure *e, struct erasure_fragments *f);

/*
 * Rebuilds the len plain bytes of a part into out from n >= k whole
 * fragments of frag_len bytes each (any order, any k of them). -EINVAL if
 * too few fragments or their headers disagree (a damaged fragment may
 * also decode to wrong bytes: callers check the part checksum), -ENOMEM.
 */
int erasure_decode(const struct erasure *e, uint8_t *const *frags, unsigned n, size_t frag_len,
		   void *out, size_t len);

#endif
