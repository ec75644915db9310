/*
 * kernels_k: the kernels for K-quant weights (quant_k.h), behind the
 * kern_* entry points of kernels.h, which hand K types over to the
 * kk_* functions here.  Shared by kernels_k.c (activation preparation,
 * the portable kernels, ISA dispatch) and kernels_k_x86.c (AVX2 and
 * AVX-512) and nothing else.
 *
 * A prepared activation (for matvec and, one per token, for the GEMM) is
 * n int8 and two small arrays back to back, from a 64-byte boundary:
 *
 *	int8_t  q[n];		x quantized per block of 256: x ~= d * q,
 *				|q| <= 127 (Q8_K-like)
 *	float   d[n / 256];	the block scales
 *	int16_t s[n / 16];	the sum of q over each run of 16
 *
 * With a weight block in the unpacked form of quant_k.h (codes u, group
 * scales sc and mins m, factors D and M), its exact dot with x is
 *	dx * (D * A - M * B),  A = sum_g sc_g sum_{i in g} u_i q_i,
 *			       B = sum_g m_g s_g
 * A and B are exact int32 (|A| < 2^29, |B| < 2^28); for Q6_K and Q3_K,
 * where D == M, the kernels take D * (A - B), also exact, as one.
 */
#ifndef SINKD_KERNELS_K_H
#define SINKD_KERNELS_K_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "quant_k.h"

struct kk_x {
	const int8_t *q;
	const float *d;
	const int16_t *s;
};

/* Bytes of one prepared activation of n elements (a 64-byte multiple). */
size_t kk_x_bytes(size_t n);
/* Views the prepared activation at p (64-byte aligned). */
struct kk_x kk_x_at(const void *p, size_t n);
/* 1 for the types whose D equals M (A - B taken as one integer). */
int kk_joint(uint32_t type);

/*
 * An activation of n (a multiple of 256) as the K kernels take it: per
 * block of 256, q = x / d rounded to nearest (even on ties), clamped to
 * +-127, NaN 0, with d = amax / 127 (NaNs skipped); s holds the sums of
 * every 16 q.  The portable version; kern_quant_k picks the ISA's, which
 * must give the same bytes.
 */
void kk_quant_portable(const float *x, size_t n, int8_t *q, float *d,
    int16_t *s);

/* The kern_* entry points for K types (kernels.c calls them). */
size_t kk_xq_bytes(size_t n);
void kk_prepare_x(const float *x, size_t n, void *xq);
size_t kk_xs_stride(size_t n);
void kk_prepare_xs(const float *x, size_t ldx, size_t n, size_t m,
    void *xs);
void kk_matvec(enum kern_isa, uint32_t type, const uint8_t *w, size_t rb,
    size_t n, const void *xq, float *y, size_t nrows);
void kk_gemm(enum kern_isa, uint32_t type, const uint8_t *w, size_t rb,
    size_t n, const void *xs, size_t m, float *y, size_t ldy,
    size_t nrows);

/* Per ISA (kernels_k_x86.c); xs tokens are kk_xs_stride(n) apart. */
void kk_matvec_avx2(uint32_t type, const uint8_t *w, size_t rb, size_t n,
    struct kk_x x, float *y, size_t nrows);
void kk_matvec_avx512(uint32_t type, const uint8_t *w, size_t rb,
    size_t n, struct kk_x x, float *y, size_t nrows);
void kk_gemm_avx2(uint32_t type, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows);
void kk_gemm_avx512(uint32_t type, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows);

#endif
