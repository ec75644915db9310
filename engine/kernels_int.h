/*
 * kernels_int: what kernels.c shares with the SIMD file kernels_x86.c and
 * with nothing else: the layout of a prepared activation and the per-ISA
 * entry points.
 *
 * A prepared activation for a quantized weight type (n elements, nb = n/32
 * blocks) is three arrays back to back, so that SIMD code loads each one
 * with plain vector loads:
 *
 *	int8_t  q[n];	x[i] ~= d[i / 32] * q[i], |q| <= 127
 *	float   d[nb];
 *	int32_t hc[nb];	half correction, see below
 *
 * The SIMD kernels dot the weights as unsigned bytes (Q8_0 flipped by
 * +128, Q4_0 nibbles 0..15 without the -8) and reduce each block to two
 * half sums; adding hc to each half gives back the exact signed dot:
 * hc = -off * sum(q of the block) / 2 with off = 128 (Q8_0) or 8 (Q4_0).
 * For float weight types the prepared activation is x itself as f32.
 */
#ifndef SINKD_KERNELS_INT_H
#define SINKD_KERNELS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

struct kern_xq {
	const int8_t *q;
	const float *d;
	const int32_t *hc;
};

/* Views a prepared quantized activation of n elements. */
struct kern_xq kern_xq_view(const void *xq, size_t n);

/*
 * One ISA's kernels.  matvec computes nrows rows starting at w (row r at
 * w + r * row_bytes) into y[0..nrows).
 */
struct kern_impl {
	void (*matvec)(uint32_t wtype, const uint8_t *w, size_t row_bytes,
	    size_t n, const void *xq, float *y, size_t nrows);
	float (*dot_f32)(const float *, const float *, size_t);
	void (*axpy_f32)(float, const float *, float *, size_t);
};

extern const struct kern_impl kern_impl_portable;
#if defined(__x86_64__) || defined(__i386__)
#define KERN_HAVE_X86 1
extern const struct kern_impl kern_impl_avx2;
extern const struct kern_impl kern_impl_avx512;
#endif

#endif
