/*
 * kernels_k: K-quant activations (prepared per block of 256, layout in
 * kernels_k.h), the portable kernels that define what the SIMD ones in
 * kernels_k_x86.c compute, and the choice between them by ISA.
 */
#include "kernels_k.h"

#include <math.h>
#include <string.h>

#include "kernels_int.h"
#include "quant.h"

#define KK_ALIGN 64

size_t
kk_x_bytes(size_t n)
{
	size_t b = n + n / QK_K * sizeof(float) + n / 16 * sizeof(int16_t);

	return (b + KK_ALIGN - 1) / KK_ALIGN * KK_ALIGN;
}

struct kk_x
kk_x_at(const void *p, size_t n)
{
	const uint8_t *b = p;
	struct kk_x x;

	x.q = (const int8_t *)b;
	x.d = (const float *)(const void *)(b + n);
	x.s = (const int16_t *)(const void *)(b + n + n / QK_K *
	    sizeof(float));
	return x;
}

int
kk_joint(uint32_t type)
{
	return type == QT_Q6_K || type == QT_Q3_K;
}

static const void *
align_up(const void *p)
{
	uintptr_t u = (uintptr_t)p;

	return (const void *)(u + (KK_ALIGN - u % KK_ALIGN) % KK_ALIGN);
}

/* Rounds to the nearest int8 in [-127, 127]; NaN becomes 0. */
static int8_t
round_q(float v)
{
	if (!(v >= -127.0f))
		return v < 0.0f ? -127 : 0;
	if (v > 127.0f)
		return 127;
	return (int8_t)lrintf(v);
}

/* One activation: the blocks' q, d and 16-sums at p. */
static void
prepare_one(const float *x, size_t n, void *p)
{
	struct kk_x v = kk_x_at(p, n);

	kern_quant_k(x, n, (int8_t *)v.q, (float *)v.d, (int16_t *)v.s);
}

void
kk_quant_portable(const float *x, size_t n, int8_t *q, float *dp,
    int16_t *sp)
{
	size_t b, i;
	float amax, d;

	for (b = 0; b < n / QK_K; b++) {
		const float *xb = x + b * QK_K;

		/* Not fmaxf (a library call); a NaN is skipped, then zeroed. */
		amax = 0.0f;
		for (i = 0; i < QK_K; i++)
			amax = fabsf(xb[i]) > amax ? fabsf(xb[i]) : amax;
		d = amax / 127.0f;
		for (i = 0; i < QK_K; i++)
			q[b * QK_K + i] = d != 0.0f ? round_q(xb[i] / d) : 0;
		dp[b] = d;
	}
	for (b = 0; b < n / 16; b++) {
		int s = 0;

		for (i = 0; i < 16; i++)
			s += q[b * 16 + i];
		sp[b] = (int16_t)s;
	}
}

size_t
kk_xq_bytes(size_t n)
{
	return KK_ALIGN + kk_x_bytes(n);
}

void
kk_prepare_x(const float *x, size_t n, void *xq)
{
	prepare_one(x, n, (void *)align_up(xq));
}

size_t
kk_xs_stride(size_t n)
{
	return kk_x_bytes(n);
}

void
kk_prepare_xs(const float *x, size_t ldx, size_t n, size_t m, void *xs)
{
	size_t t;

	for (t = 0; t < m; t++)
		prepare_one(x + t * ldx, n, (char *)xs + t * kk_x_bytes(n));
}

/* Portable: every block unpacked, then the integer sums of kernels_k.h. */
static float
row_portable(uint32_t type, const uint8_t *row, size_t n, struct kk_x x)
{
	size_t bs = qtype_block_bytes(type), b;
	struct qk_unpacked u;
	float acc = 0.0f;
	int32_t a, bm, s;
	int g, i;

	for (b = 0; b < n / QK_K; b++) {
		const int8_t *q = x.q + b * QK_K;

		qk_unpack(type, row + b * bs, &u);
		a = bm = 0;
		for (g = 0; g < 16; g++) {
			s = 0;
			for (i = 0; i < 16; i++)
				s += u.u[16 * g + i] * q[16 * g + i];
			a += u.sc[g] * s;
			bm += u.m[g] * x.s[b * 16 + g];
		}
		if (kk_joint(type))
			acc += (float)(a - bm) * (u.D * x.d[b]);
		else
			acc += (float)a * (u.D * x.d[b]) -
			    (float)bm * (u.M * x.d[b]);
	}
	return acc;
}

void
kk_matvec(enum kern_isa isa, uint32_t type, const uint8_t *w, size_t rb,
    size_t n, const void *xq, float *y, size_t nrows)
{
	struct kk_x x = kk_x_at(align_up(xq), n);
	size_t r;

#ifdef KERN_HAVE_X86
	if (isa == KERN_ISA_AVX2) {
		kk_matvec_avx2(type, w, rb, n, x, y, nrows);
		return;
	}
	if (isa == KERN_ISA_AVX512) {
		kk_matvec_avx512(type, w, rb, n, x, y, nrows);
		return;
	}
#endif
	(void)isa;
	for (r = 0; r < nrows; r++)
		y[r] = row_portable(type, w + r * rb, n, x);
}

void
kk_gemm(enum kern_isa isa, uint32_t type, const uint8_t *w, size_t rb,
    size_t n, const void *xs, size_t m, float *y, size_t ldy, size_t nrows)
{
	size_t t, r;

#ifdef KERN_HAVE_X86
	if (isa == KERN_ISA_AVX2) {
		kk_gemm_avx2(type, w, rb, n, xs, m, y, ldy, nrows);
		return;
	}
	if (isa == KERN_ISA_AVX512) {
		kk_gemm_avx512(type, w, rb, n, xs, m, y, ldy, nrows);
		return;
	}
#endif
	(void)isa;
	for (t = 0; t < m; t++)
		for (r = 0; r < nrows; r++)
			y[t * ldy + r] = row_portable(type, w + r * rb, n,
			    kk_x_at((const char *)xs + t * kk_x_bytes(n), n));
}
