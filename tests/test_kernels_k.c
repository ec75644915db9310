/*
 * test_kernels_k: the K-quant kernels.  Every ISA's matvec against the
 * portable one and against a double-precision dot of the dequantized
 * weights with the activation as prepared; the GEMM against matvec on
 * every ISA, for odd token, row and block counts and row sub-ranges; the
 * prepared activation itself.
 *
 * Tolerance: the integer block sums are exact on every ISA, so results
 * differ only by float rounding of a few products per block and of the
 * accumulation: relative 1e-5 of the sum of the magnitudes of the terms
 * the kernels add (|D sc u x| and |M m x|, which for types with mins can
 * exceed sum |w x|); float's 2^-24 per operation over at most a few
 * dozen roundings per element stays far below that.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kernels_k.h"
#include "quant.h"
#include "quant_k.h"

static const uint32_t ktypes[] = { QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K,
	QT_Q6_K };
#define NK (sizeof(ktypes) / sizeof(ktypes[0]))
#define CANARY 12345.0f

static uint32_t
rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static float
frnd(uint32_t *s)
{
	return (float)(rnd(s) >> 8) / 8388608.0f - 1.0f;
}

struct kmat {
	uint8_t *buf, *w; /* w = buf + 2: rows only 2-byte aligned */
	size_t rb, rows, n;
	float *deq;  /* dequantized */
	float *mag;  /* |D sc u| + |M m| per element: the terms' sizes */
};

/* Offsets of a block's fp16 factors: d, and dmin or -1. */
static void
factor_offsets(uint32_t t, int *od, int *om)
{
	*om = -1;
	switch (t) {
	case QT_Q2_K: *od = 80; *om = 82; break;
	case QT_Q3_K: *od = 108; break;
	case QT_Q6_K: *od = 208; break;
	default: *od = 0; *om = 2; break;
	}
}

/*
 * Random bytes for every block (negative Q6_K and Q3_K scales, every
 * code and scale bit pattern, which a quantizer may never write), with
 * the fp16 factors set to ordinary values in [2^-10, 2^-4).
 */
static void
blocks_random(uint8_t *w, uint32_t t, size_t nblocks, uint32_t *seed)
{
	size_t bs = qtype_block_bytes(t), b, i;
	uint16_t h;
	int od, om;

	factor_offsets(t, &od, &om);
	for (b = 0; b < nblocks; b++) {
		for (i = 0; i < bs; i++)
			w[b * bs + i] = (uint8_t)rnd(seed);
		h = (uint16_t)(0x1400 + rnd(seed) % 0x1800);
		memcpy(w + b * bs + od, &h, 2);
		h = (uint16_t)(0x1400 + rnd(seed) % 0x1800);
		if (om >= 0)
			memcpy(w + b * bs + om, &h, 2);
	}
}

static int raw_blocks; /* kmat_random: random bytes, not quantized rows */

static void
kmat_random(struct kmat *m, uint32_t t, size_t n, size_t rows,
    uint32_t seed)
{
	float *row = malloc(n * sizeof(float));
	struct qk_unpacked u;
	size_t r, i, b;
	uint64_t rb;
	float mag, shift;

	ck_assert_ptr_nonnull(row);
	ck_assert_int_eq(qtype_row_bytes(t, n, &rb), 0);
	m->rb = (size_t)rb;
	m->rows = rows;
	m->n = n;
	m->buf = malloc(m->rb * rows + 2);
	m->deq = malloc(rows * n * sizeof(float));
	m->mag = malloc(rows * n * sizeof(float));
	ck_assert(m->buf != NULL && m->deq != NULL && m->mag != NULL);
	m->w = m->buf + 2;
	for (r = 0; r < rows; r++) {
		mag = ldexpf(1.0f, (int)(rnd(&seed) % 9) - 6);
		shift = r % 2 ? 0.3f * mag : 0.0f;
		for (i = 0; i < n; i++)
			row[i] = shift + mag * frnd(&seed);
		if (raw_blocks)
			blocks_random(m->w + r * m->rb, t, n / QK_K, &seed);
		else
			quant_quantize_row(t, row, m->w + r * m->rb, n);
		quant_dequantize_row(t, m->w + r * m->rb, m->deq + r * n, n);
		for (b = 0; b < n / QK_K; b++) {
			qk_unpack(t, m->w + r * m->rb + b *
			    qtype_block_bytes(t), &u);
			for (i = 0; i < QK_K; i++)
				m->mag[r * n + b * QK_K + i] = fabsf(u.D *
				    (float)u.sc[i / 16] * (float)u.u[i]) +
				    fabsf(u.M * (float)u.m[i / 16]);
		}
	}
	free(row);
}

static void
kmat_free(struct kmat *m)
{
	free(m->buf);
	free(m->deq);
	free(m->mag);
}

static float *
x_random(size_t n, uint32_t seed)
{
	float *x = malloc(n * sizeof(float));
	size_t i;

	ck_assert_ptr_nonnull(x);
	for (i = 0; i < n; i++)
		x[i] = 2.0f * frnd(&seed);
	if (n >= 512) /* a zero block: scale 0 */
		memset(x + 256, 0, 256 * sizeof(float));
	x[n / 3] = 30.0f;	/* an outlier */
	return x;
}

static struct kk_x
view(const void *xq, size_t n)
{
	const uint8_t *p = xq;

	p += (64 - (uintptr_t)p % 64) % 64;
	return kk_x_at(p, n);
}

/* x as the kernels see it, and the check of the prepared arrays. */
static void
x_seen(const void *xq, size_t n, const float *x, float *xd)
{
	struct kk_x v = view(xq, n);
	size_t i, g;
	int s;

	for (i = 0; i < n; i++) {
		ck_assert_int_le(abs(v.q[i]), 127);
		xd[i] = v.d[i / QK_K] * (float)v.q[i];
		ck_assert_msg(fabsf(xd[i] - x[i]) <= 0.5f * v.d[i / QK_K] *
		    1.0001f, "x[%zu] = %g prepared as %g", i, x[i], xd[i]);
	}
	for (g = 0; g < n / 16; g++) {
		for (s = 0, i = 0; i < 16; i++)
			s += v.q[16 * g + i];
		ck_assert_int_eq(v.s[g], s);
	}
}

static void
refs(const struct kmat *m, size_t r, const float *xd, double *dot,
    double *mag)
{
	size_t i;

	*dot = *mag = 0.0;
	for (i = 0; i < m->n; i++) {
		*dot += (double)m->deq[r * m->n + i] * xd[i];
		*mag += (double)m->mag[r * m->n + i] * fabs((double)xd[i]);
	}
}

static void
check_matvec(uint32_t t, size_t n, size_t nr, uint32_t seed)
{
	size_t r0 = nr > 2 ? 3 : 0, r, isa;
	struct kmat m;
	float *x = x_random(n, seed), *xd = malloc(n * sizeof(float));
	float ref[40], y[41];
	void *xq = malloc(kern_xq_bytes(t, n) + 1);
	double dot, mag;

	ck_assert(xd != NULL && xq != NULL && nr < 40);
	kmat_random(&m, t, n, r0 + nr, seed * 31 + 5);
	/* An odd address: the activation aligns itself. */
	kern_prepare_x(t, x, n, (char *)xq + 1);
	x_seen((char *)xq + 1, n, x, xd);
	for (isa = 0; isa <= (size_t)kern_best_isa(); isa++) {
		ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
		for (r = 0; r <= nr; r++)
			y[r] = CANARY;
		kern_matvec(t, m.w, m.rb, n, (char *)xq + 1, y, r0, r0 + nr);
		ck_assert_float_eq(y[nr], CANARY);
		if (isa == 0)
			memcpy(ref, y, nr * sizeof(float));
		for (r = 0; r < nr; r++) {
			refs(&m, r0 + r, xd, &dot, &mag);
			ck_assert_msg(fabs(y[r] - dot) <= 1e-5 * mag + 1e-30,
			    "%s n=%zu row %zu %s: %.9g vs exact %.9g (mag %g)",
			    qtype_name(t), n, r0 + r,
			    kern_isa_name((enum kern_isa)isa), y[r], dot, mag);
			ck_assert_msg(fabs(y[r] - ref[r]) <= 1e-5 * mag + 1e-30,
			    "%s n=%zu row %zu %s: %.9g vs portable %.9g",
			    qtype_name(t), n, r0 + r,
			    kern_isa_name((enum kern_isa)isa), y[r], ref[r]);
		}
	}
	kern_use_isa(kern_best_isa());
	kmat_free(&m);
	free(x);
	free(xd);
	free(xq);
}

static const size_t lens[] = { 256, 512, 768, 2048, 5632 };
static const size_t nrows_list[] = { 1, 2, 5, 17, 33 };

START_TEST(matvec_every_isa)
{
	size_t li, ri;

	for (li = 0; li < sizeof lens / sizeof lens[0]; li++)
		for (ri = 0; ri < sizeof nrows_list / sizeof(size_t); ri++)
			check_matvec(ktypes[_i], lens[li], nrows_list[ri],
			    (uint32_t)(11 + 100 * li + ri + 1000 * _i));
}
END_TEST

/* kern_gemm of m tokens over rows [r0, r1) against kern_matvec. */
static void
check_gemm(uint32_t t, size_t n, size_t m, size_t r0, size_t r1,
    uint32_t seed)
{
	size_t rows = r1 + 2, ldy = rows + 3, stride = kern_xs_stride(t, n);
	size_t tk, r, isa;
	struct kmat w;
	float *x = malloc(m * n * sizeof(float));
	float *y = malloc(m * ldy * sizeof(float));
	float *yv = malloc(rows * sizeof(float)), *xd = malloc(n * sizeof(float));
	void *xs = aligned_alloc(64, stride * m);
	void *xq = malloc(kern_xq_bytes(t, n));
	double dot, mag;

	ck_assert(x && y && yv && xd && xs && xq);
	ck_assert_uint_eq(stride % 64, 0);
	kmat_random(&w, t, n, rows, seed);
	for (tk = 0; tk < m; tk++) {
		float *xt = x_random(n, seed + (uint32_t)tk * 17 + 1);

		memcpy(x + tk * n, xt, n * sizeof(float));
		free(xt);
	}
	kern_prepare_xs(t, x, n, n, m, xs);
	for (isa = 0; isa <= (size_t)kern_best_isa(); isa++) {
		ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
		for (r = 0; r < m * ldy; r++)
			y[r] = CANARY;
		kern_gemm(t, w.w, w.rb, n, xs, m, y, ldy, r0, r1);
		for (tk = 0; tk < m; tk++) {
			/* Token tk prepared alone is the same activation. */
			kern_prepare_x(t, x + tk * n, n, xq);
			x_seen(xq, n, x + tk * n, xd);
			ck_assert_mem_eq(view(xq, n).q, (const int8_t *)xs +
			    tk * stride, n);
			kern_matvec(t, w.w, w.rb, n, xq, yv, r0, r1);
			for (r = 0; r < ldy; r++) {
				float g = y[tk * ldy + r];

				if (r < r0 || r >= r1) {
					ck_assert_float_eq(g, CANARY);
					continue;
				}
				refs(&w, r, xd, &dot, &mag);
				ck_assert_msg(fabs(g - yv[r - r0]) <= 1e-5 * mag +
				    1e-30, "%s %s n=%zu m=%zu token %zu row %zu:"
				    " gemm %.9g vs matvec %.9g", qtype_name(t),
				    kern_isa_name((enum kern_isa)isa), n, m, tk, r,
				    g, yv[r - r0]);
				ck_assert(fabs(g - dot) <= 1e-5 * mag + 1e-30);
			}
		}
	}
	kern_use_isa(kern_best_isa());
	kmat_free(&w);
	free(x);
	free(y);
	free(yv);
	free(xd);
	free(xs);
	free(xq);
}

START_TEST(gemm_matches_matvec)
{
	static const size_t ms[] = { 1, 2, 3, 4, 5, 8, 9, 13, 17 };
	static const size_t spans[][2] = { { 0, 1 }, { 0, 16 }, { 3, 20 },
		{ 5, 38 }, { 16, 33 } };
	uint32_t t = ktypes[_i];
	size_t a, b;

	for (a = 0; a < sizeof ms / sizeof ms[0]; a++)
		for (b = 0; b < sizeof spans / sizeof spans[0]; b++)
			check_gemm(t, (a % 3 + 1) * 256 + (a == 4 ? 4096 : 0),
			    ms[a], spans[b][0], spans[b][1],
			    (uint32_t)(3 + a * 10 + b + 100 * _i));
}
END_TEST

/* The same on blocks of random bytes. */
START_TEST(random_blocks_every_isa)
{
	raw_blocks = 1;
	check_matvec(ktypes[_i], 768, 17, 501 + (uint32_t)_i);
	check_matvec(ktypes[_i], 2048, 5, 601 + (uint32_t)_i);
	check_gemm(ktypes[_i], 512, 9, 3, 38, 701 + (uint32_t)_i);
	check_gemm(ktypes[_i], 1280, 13, 0, 17, 801 + (uint32_t)_i);
	raw_blocks = 0;
}
END_TEST

/* NaN and infinity in x: no crash, finite scale, NaN as 0. */
START_TEST(prepare_nonfinite)
{
	size_t n = 512, i;
	float *x = x_random(n, 5), *xd = malloc(n * sizeof(float));
	void *xq = malloc(kern_xq_bytes(QT_Q4_K, n));
	struct kk_x v;

	ck_assert(xd != NULL && xq != NULL);
	x[3] = NAN;
	x[300] = INFINITY;
	kern_prepare_x(QT_Q4_K, x, n, xq);
	v = view(xq, n);
	ck_assert(isfinite(v.d[0]));
	ck_assert_int_eq(v.q[3], 0);
	for (i = 0; i < n; i++)
		ck_assert_int_le(abs(v.q[i]), 127);
	free(x);
	free(xd);
	free(xq);
}
END_TEST

static Suite *
kernels_k_suite(void)
{
	Suite *s = suite_create("kernels_k");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, matvec_every_isa, 0, NK);
	tcase_add_loop_test(tc, gemm_matches_matvec, 0, NK);
	tcase_add_loop_test(tc, random_blocks_every_isa, 0, NK);
	tcase_add_test(tc, prepare_nonfinite);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(kernels_k_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
