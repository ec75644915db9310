/*
 * kernels_x86: what the SIMD files kernels_x86.c, kernels_gemm_x86.c and
 * kernels_attn_x86.c share: the target attributes each ISA's functions
 * are compiled with, small load helpers, and the GEMM and attention entry
 * points the ISA tables use.  Included only by those files.
 */
#ifndef SINKD_KERNELS_X86_H
#define SINKD_KERNELS_X86_H

#include "kernels_int.h"

#ifdef KERN_HAVE_X86

#include <immintrin.h>
#include <string.h>

#include "quant.h"

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define T_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw," \
    "avx512vl,avx512vnni")))
#define INLINE static inline __attribute__((always_inline))

#define Q8_BYTES 34
#define Q4_BYTES 18

static inline uint64_t
ld_u16(const uint8_t *p)
{
	uint16_t h;

	memcpy(&h, p, sizeof h);
	return h;
}

T_AVX2 INLINE __m256i
ld256(const void *p)
{
	return _mm256_loadu_si256((const __m256i *)p);
}

/* kern_impl.gemm for each ISA (kernels_gemm_x86.c). */
void kern_gemm_avx2(uint32_t wtype, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows);
void kern_gemm_avx512(uint32_t wtype, const uint8_t *w, size_t rb,
    size_t n, const void *xs, size_t m, float *y, size_t ldy, size_t nrows);

/*
 * matvec of Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS rows for each ISA
 * (kernels_ql_x86.c); 0 (and nothing done) for any other type.
 */
int kern_ql_matvec_avx2(uint32_t wtype, const uint8_t *w, size_t rb,
    size_t n, const void *xq, float *y, size_t nrows);
int kern_ql_matvec_avx512(uint32_t wtype, const uint8_t *w, size_t rb,
    size_t n, const void *xq, float *y, size_t nrows);

/*
 * Block b of a row of those types expanded to 32 bytes for the GEMM's
 * repacking (kernels_ql_x86.c, which says how); returns its scale.
 */
float kern_ql_expand_avx512(uint32_t wtype, const uint8_t *row, size_t b,
    uint8_t *out);
float kern_ql_expand_avx2(uint32_t wtype, const uint8_t *row, size_t b,
    uint8_t *out, uint8_t *mag);

/* kern_gemm of the same types (kernels_gemm_ql_x86.c); 0 for others. */
int kern_ql_gemm_avx2(uint32_t wtype, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows);
int kern_ql_gemm_avx512(uint32_t wtype, const uint8_t *w, size_t rb,
    size_t n, const void *xs, size_t m, float *y, size_t ldy, size_t nrows);

/* kern_panel_gemm's kernel (kernels_panel_x86.c); pk at row r0's panel. */
void kern_panel_gemm_avx512(uint32_t wtype, const uint8_t *pk, size_t n,
    const void *xs, size_t m, float *const *y, size_t r0, size_t nrows);

/* kern_impl.attn for each ISA (kernels_attn_x86.c). */
void kern_attn_avx2(const struct kern_attn_args *);
void kern_attn_avx512(const struct kern_attn_args *);
/* kern_softmax for each ISA (kernels_attn_x86.c). */
void kern_softmax_avx2(float *scores, size_t n_q, size_t len);
void kern_softmax_avx512(float *scores, size_t n_q, size_t len);
void kern_silu_mul_avx512(float *g, const float *u, size_t n);

#endif /* KERN_HAVE_X86 */

#endif
