/*
 * test_kernels: every ISA the CPU has against the portable kernels and
 * against double-precision references built from quant.c's dequantized
 * rows; exact agreement where all values are small integers; the
 * quantized GEMM against matvec; ISA selection; the f32 helpers and
 * attention.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kernels_int.h"
#include "quant.h"
#include "quant_k.h"

static const uint32_t types[] = { QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0,
	QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_IQ4_NL, QT_IQ4_XS };
/* The quantized types, for the GEMM and activation loops. */
static const uint32_t qtypes[] = { QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0,
	QT_Q5_1, QT_IQ4_NL, QT_IQ4_XS };
#define NQTYPES (sizeof(qtypes) / sizeof(qtypes[0]))
#define NTYPES (sizeof(types) / sizeof(types[0]))
/*
 * Beside the usual sizes, 352 and 480 leave every kind of tail; 256 and
 * 1280 are one and five IQ4_XS super-blocks (which skips the others).
 */
static const size_t lens[] = { 32, 64, 96, 256, 352, 480, 1280, 2048,
	5632 };
static const size_t nrows_list[] = { 1, 3, 5, 17 };

#define CANARY 12345.0f

/* xorshift: the same numbers on every run and platform. */
static uint32_t
rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Uniform in [-1, 1). */
static float
frnd(uint32_t *s)
{
	return (float)(rnd(s) >> 8) / 8388608.0f - 1.0f;
}

static int
is_quant(uint32_t t)
{
	return t != QT_F32 && t != QT_F16 && t != QT_BF16;
}

/* n is a whole number of t's blocks. */
static int
fits(uint32_t t, size_t n)
{
	return n % qtype_block_elems(t) == 0;
}

/* c of a prepared activation per block sum, as kernels_int.h says. */
static int32_t
want_c(uint32_t t)
{
	switch (t) {
	case QT_Q8_0:
	case QT_IQ4_NL:
	case QT_IQ4_XS:
		return -128;
	case QT_Q4_0:
		return -8;
	case QT_Q5_0:
		return -16;
	default:
		return 1;
	}
}

struct mat {
	uint8_t *buf;
	uint8_t *w;	/* buf + 2: rows only 2-byte aligned, as in a mapping */
	size_t rb;
	size_t rows;
	size_t n;
	float *deq;	/* rows * n, quant_dequantize_row of each row */
};

static void
mat_alloc(struct mat *m, uint32_t t, size_t n, size_t rows)
{
	uint64_t rb;

	ck_assert_int_eq(qtype_row_bytes(t, n, &rb), 0);
	m->rb = (size_t)rb;
	m->rows = rows;
	m->n = n;
	m->buf = malloc(m->rb * rows + 2);
	m->deq = malloc(rows * n * sizeof(float));
	ck_assert_ptr_nonnull(m->buf);
	ck_assert_ptr_nonnull(m->deq);
	m->w = m->buf + 2;
}

static void
mat_dequantize(struct mat *m, uint32_t t)
{
	size_t r;

	for (r = 0; r < m->rows; r++)
		quant_dequantize_row(t, m->w + r * m->rb, m->deq + r * m->n,
		    m->n);
}

/* Rows of random magnitude quantized by quant.c. */
static void
mat_random(struct mat *m, uint32_t t, size_t n, size_t rows, uint32_t seed)
{
	float *row = malloc(n * sizeof(float));
	size_t r, i;
	float mag;

	ck_assert_ptr_nonnull(row);
	mat_alloc(m, t, n, rows);
	for (r = 0; r < rows; r++) {
		mag = ldexpf(1.0f, (int)(rnd(&seed) % 9) - 4);
		for (i = 0; i < n; i++)
			row[i] = mag * frnd(&seed);
		quant_quantize_row(t, row, m->w + r * m->rb, n);
	}
	mat_dequantize(m, t);
	free(row);
}

static void
mat_free(struct mat *m)
{
	free(m->buf);
	free(m->deq);
}

/* Random x with an all-zero block (scale 0) and an outlier. */
static float *
x_random(size_t n, uint32_t seed)
{
	float *x = malloc(n * sizeof(float));
	size_t i;

	ck_assert_ptr_nonnull(x);
	for (i = 0; i < n; i++)
		x[i] = 3.0f * frnd(&seed);
	if (n >= 64)
		memset(x + 32, 0, 32 * sizeof(float));
	x[n / 2] = 40.0f;
	return x;
}

/* The scale of element i of a prepared activation. */
static float
xq_d(uint32_t t, struct kern_xq v, size_t n, size_t i)
{
	return v.d[kern_xq_slot(t, n / QK, i / QK)];
}

/* The activation the kernels actually see, as floats. */
static void
xq_dequantize(uint32_t t, const void *xq, size_t n, float *out)
{
	struct kern_xq v;
	size_t i;

	if (!is_quant(t)) {
		memcpy(out, xq, n * sizeof(float));
		return;
	}
	v = kern_xq_view(xq, t, n);
	for (i = 0; i < n; i++)
		out[i] = xq_d(t, v, n, i) * (float)v.q[kern_xq_qpos(t, i)];
}

/* Bound on |dot(w, x) - dot(w, x as prepared)|: sum |w| * step / 2. */
static double
xq_bound(uint32_t t, const float *w, const void *xq, size_t n)
{
	struct kern_xq v;
	double bound = 0.0;
	size_t i;

	if (!is_quant(t))
		return 0.0;
	v = kern_xq_view(xq, t, n);
	for (i = 0; i < n; i++)
		bound += fabs((double)w[i]) * (double)xq_d(t, v, n, i) * 0.5;
	return bound * (1.0 + 1e-6);
}

static void
ref_dot(const float *w, const float *x, size_t n, double *dot, double *mag)
{
	size_t i;

	*dot = 0.0;
	*mag = 0.0;
	for (i = 0; i < n; i++) {
		*dot += (double)w[i] * (double)x[i];
		*mag += fabs((double)w[i] * (double)x[i]);
	}
}

static void *
xq_prepare(uint32_t t, const float *x, size_t n)
{
	void *xq = malloc(kern_xq_bytes(t, n));

	ck_assert_ptr_nonnull(xq);
	kern_prepare_x(t, x, n, xq);
	return xq;
}

/* Runs rows [r0, r0 + nr) and checks nothing past y[nr) is written. */
static void
run_matvec(uint32_t t, const struct mat *m, const void *xq, size_t r0,
    size_t nr, float *y)
{
	size_t i;

	for (i = 0; i <= nr; i++)
		y[i] = CANARY;
	kern_matvec(t, m->w, m->rb, m->n, xq, y, r0, r0 + nr);
	ck_assert_float_eq(y[nr], CANARY);
}

struct case_ctx {
	uint32_t t;
	size_t n;
	const float *x;		/* as given */
	const float *xd;	/* as prepared, dequantized */
	const void *xq;
	enum kern_isa isa;
};

/* One row's result y against the portable one and the references. */
static void
check_row(const struct case_ctx *c, const float *w, size_t row, float y,
    float ref)
{
	const char *isa = kern_isa_name(c->isa), *tn = qtype_name(c->t);
	double dot, mag, xdot, xmag;

	ref_dot(w, c->xd, c->n, &dot, &mag);
	ck_assert_msg(fabs(y - ref) <= 1e-5 * mag + 1e-30,
	    "%s n=%zu row %zu isa %s: %.9g vs portable %.9g", tn, c->n, row,
	    isa, y, ref);
	ck_assert_msg(fabs(y - dot) <= 1e-5 * mag + 1e-30,
	    "%s n=%zu row %zu isa %s: %.9g vs exact %.9g", tn, c->n, row,
	    isa, y, dot);
	/* Quantizing x costs at most half a step per element. */
	ref_dot(w, c->x, c->n, &xdot, &xmag);
	ck_assert_msg(fabs(y - xdot) <= xq_bound(c->t, w, c->xq, c->n) +
	    1e-5 * mag + 1e-30, "%s n=%zu row %zu: %.9g vs unquantized x %.9g",
	    tn, c->n, row, y, xdot);
	ck_assert(c->n < 2048 || fabs(y - xdot) <= 0.01 * xmag);
}

/* One type, length and row count (from row 2 if several) on every ISA. */
static void
check_case(uint32_t t, size_t n, size_t nr, uint32_t seed)
{
	struct mat m;
	size_t r0 = nr > 1 ? 2 : 0, r, isa;
	float *x = x_random(n, seed), *xd = malloc(n * sizeof(float));
	float ref[20], y[20];
	void *xq = xq_prepare(t, x, n);
	struct case_ctx c = { t, n, x, xd, xq, KERN_ISA_PORTABLE };

	ck_assert_ptr_nonnull(xd);
	mat_random(&m, t, n, r0 + nr, seed * 7 + 1);
	xq_dequantize(t, xq, n, xd);
	ck_assert_int_eq(kern_use_isa(KERN_ISA_PORTABLE), 0);
	run_matvec(t, &m, xq, r0, nr, ref);
	for (isa = 0; isa <= (size_t)kern_best_isa(); isa++) {
		c.isa = (enum kern_isa)isa;
		ck_assert_int_eq(kern_use_isa(c.isa), 0);
		run_matvec(t, &m, xq, r0, nr, y);
		for (r = 0; r < nr; r++)
			check_row(&c, m.deq + (r0 + r) * n, r0 + r, y[r],
			    ref[r]);
	}
	kern_use_isa(kern_best_isa());
	mat_free(&m);
	free(x);
	free(xd);
	free(xq);
}

START_TEST(test_matvec_type)
{
	uint32_t t = types[_i];
	size_t li, ri;

	for (li = 0; li < sizeof(lens) / sizeof(lens[0]); li++)
		for (ri = 0; ri < sizeof(nrows_list) / sizeof(size_t); ri++)
			if (fits(t, lens[li]))
				check_case(t, lens[li], nrows_list[ri],
			    (uint32_t)(1 + 100 * li + ri + 1000 * _i));
}
END_TEST

/* Float weights take any length, not only whole blocks. */
START_TEST(test_matvec_odd_lengths)
{
	static const size_t odd[] = { 1, 7, 15, 17, 45, 100 };
	uint32_t t = types[_i];
	size_t k;

	if (is_quant(t))
		return;
	for (k = 0; k < sizeof(odd) / sizeof(odd[0]); k++)
		check_case(t, odd[k], 5, (uint32_t)(77 + k));
}
END_TEST

/* kern_prepare_xs of m tokens, rows of x ldx apart (0: m copies). */
static void *
xs_prepare(uint32_t t, const float *x, size_t ldx, size_t n, size_t m)
{
	void *xs = aligned_alloc(64, kern_xs_stride(t, n) * m);

	ck_assert_ptr_nonnull(xs);
	ck_assert_uint_eq(kern_xs_stride(t, n) % 64, 0);
	memset(xs, 0, kern_xs_stride(t, n) * m); /* padding, for memcmp */
	kern_prepare_xs(t, x, ldx, n, m, xs);
	return xs;
}

/*
 * kern_gemm of rows [r0, r0 + nr) for m tokens into y (m rows of ldy =
 * r0 + nr + 2): checks nothing outside the rows' columns is written.
 */
static float *
run_gemm(uint32_t t, const struct mat *w, const void *xs, size_t m,
    size_t r0, size_t nr)
{
	size_t ldy = r0 + nr + 2, i, c;
	float *y = malloc(m * ldy * sizeof(float));

	ck_assert_ptr_nonnull(y);
	for (i = 0; i < m * ldy; i++)
		y[i] = CANARY;
	kern_gemm(t, w->w, w->rb, w->n, xs, m, y, ldy, r0, r0 + nr);
	for (i = 0; i < m; i++)
		for (c = 0; c < ldy; c++)
			if (c < r0 || c >= r0 + nr)
				ck_assert_float_eq(y[i * ldy + c], CANARY);
	return y;
}

/* Integer data as exact_case: every token of every ISA exactly. */
static void
exact_gemm(uint32_t t, const struct mat *w, const float *x)
{
	enum { M = 11 };
	void *xs = xs_prepare(t, x, 0, w->n, M);
	size_t r, i, isa;
	double dot, mag;
	float *y;

	for (isa = 0; isa <= (size_t)kern_best_isa(); isa++) {
		ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
		y = run_gemm(t, w, xs, M, 1, w->rows - 1);
		for (r = 1; r < w->rows; r++) {
			ref_dot(w->deq + r * w->n, x, w->n, &dot, &mag);
			for (i = 0; i < M; i++)
				ck_assert_msg(y[i * (w->rows + 2) + r] ==
				    (float)dot, "gemm %s n=%zu isa %s",
				    qtype_name(t), w->n,
				    kern_isa_name((enum kern_isa)isa));
		}
		free(y);
	}
	kern_use_isa(kern_best_isa());
	free(xs);
}

/*
 * The scales of raw block b of a row: d = 1, m = -3 for the types with a
 * minimum; IQ4_XS's sub-block scales each -1, 0 or 1 (32 +- 1: the sum
 * stays below 2^24).
 */
static void
exact_scales(uint32_t t, uint8_t *blk, uint32_t *seed)
{
	static const uint8_t lo[3] = { 15, 0, 1 }, hi[3] = { 1, 2, 2 };
	uint16_t sh = 0;
	int j, k;

	memcpy(blk, &(uint16_t){ 0x3c00 }, 2);
	if (t == QT_Q4_1 || t == QT_Q5_1)
		memcpy(blk + 2, &(uint16_t){ 0xc200 }, 2);
	if (t != QT_IQ4_XS)
		return;
	memset(blk + 4, 0, 4);
	for (j = 0; j < 8; j++) {
		k = (int)(rnd(seed) % 3);
		blk[4 + j / 2] |= (uint8_t)(lo[k] << 4 * (j % 2));
		sh |= (uint16_t)(hi[k] << 2 * j);
	}
	memcpy(blk + 2, &sh, 2);
}

/*
 * Raw weight bytes of every value (Q8_0's -128 too, which quant.c never
 * writes), scales of exactly 1, and x of small integers with 127 in every
 * block so that x's scale is exactly 1: every sum is an integer below
 * 2^24, so every ISA must give exactly the integer dot product.
 */
static void
exact_case(uint32_t t, size_t n, uint32_t seed)
{
	enum { ROWS = 6 };
	size_t bs = qtype_block_bytes(t), r, i, b, isa;
	float *x = malloc(n * sizeof(float)), y[ROWS + 1];
	struct mat m;
	void *xq;
	double dot, mag;

	ck_assert_ptr_nonnull(x);
	mat_alloc(&m, t, n, ROWS);
	for (i = 0; i < m.rb * ROWS; i++)
		m.w[i] = (uint8_t)rnd(&seed);
	for (r = 0; r < ROWS; r++)
		for (b = 0; b < n / qtype_block_elems(t); b++)
			exact_scales(t, m.w + r * m.rb + b * bs, &seed);
	mat_dequantize(&m, t);
	for (i = 0; i < n; i++)
		x[i] = (float)((int)(rnd(&seed) % 255) - 127);
	for (b = 0; b < n / QK; b++)
		x[b * QK + rnd(&seed) % QK] = (b & 1) ? 127.0f : -127.0f;
	xq = xq_prepare(t, x, n);
	for (isa = 0; isa <= (size_t)kern_best_isa(); isa++) {
		ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
		run_matvec(t, &m, xq, 0, ROWS, y);
		for (r = 0; r < ROWS; r++) {
			ref_dot(m.deq + r * n, x, n, &dot, &mag);
			ck_assert_msg(y[r] == (float)dot,
			    "%s n=%zu row %zu isa %s: %.9g, exact %.9g",
			    qtype_name(t), n, r,
			    kern_isa_name((enum kern_isa)isa), y[r], dot);
		}
	}
	kern_use_isa(kern_best_isa());
	exact_gemm(t, &m, x);
	mat_free(&m);
	free(x);
	free(xq);
}

START_TEST(test_matvec_exact_integers)
{
	static const size_t ns[] = { 32, 96, 128, 160, 256, 320, 352, 480,
		512 };
	size_t k, ti;

	for (k = 0; k < sizeof(ns) / sizeof(ns[0]); k++)
		for (ti = 0; ti < NQTYPES; ti++)
			if (fits(qtypes[ti], ns[k]))
				exact_case(qtypes[ti], ns[k],
				    (uint32_t)(11 + k + 20 * ti));
}
END_TEST

/* Small integer weights are exact in every float type. */
START_TEST(test_matvec_exact_float_types)
{
	enum { ROWS = 5, N = 333 };
	float row[N], x[N], y[ROWS + 1];
	uint32_t t = types[_i], seed = 5;
	struct mat m;
	size_t r, i, isa;
	double dot, mag;
	void *xq;

	if (is_quant(t))
		return;
	mat_alloc(&m, t, N, ROWS);
	for (r = 0; r < ROWS; r++) {
		for (i = 0; i < N; i++)
			row[i] = (float)((int)(rnd(&seed) % 61) - 30);
		quant_quantize_row(t, row, m.w + r * m.rb, N);
	}
	mat_dequantize(&m, t);
	for (i = 0; i < N; i++)
		x[i] = (float)((int)(rnd(&seed) % 41) - 20);
	xq = xq_prepare(t, x, N);
	for (isa = 0; isa <= (size_t)kern_best_isa(); isa++) {
		ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
		run_matvec(t, &m, xq, 0, ROWS, y);
		for (r = 0; r < ROWS; r++) {
			ref_dot(m.deq + r * N, x, N, &dot, &mag);
			ck_assert_float_eq(y[r], (float)dot);
		}
	}
	kern_use_isa(kern_best_isa());
	mat_free(&m);
	free(xq);
}
END_TEST

/* m tokens of x (n + 3 floats apart) through kern_gemm on every ISA. */
static void
gemm_case(uint32_t t, size_t n, size_t m, size_t nr, uint32_t seed)
{
	size_t r0 = 3, ldx = n + 3, ldy = r0 + nr + 2, i, r, isa;
	float *x = x_random(ldx * m, seed), *xd = malloc(n * sizeof(float));
	float *ref = malloc(m * nr * sizeof(float)), *y;
	void *xs = xs_prepare(t, x, ldx, n, m), *xq;
	double dot, mag;
	struct mat w;

	ck_assert(xd != NULL && ref != NULL);
	mat_random(&w, t, n, r0 + nr, seed * 3 + 1);
	ck_assert_int_eq(kern_use_isa(KERN_ISA_PORTABLE), 0);
	for (i = 0; i < m; i++) {
		xq = xq_prepare(t, x + i * ldx, n);
		kern_matvec(t, w.w, w.rb, n, xq, ref + i * nr, r0, r0 + nr);
		free(xq);
	}
	for (isa = 0; isa <= (size_t)kern_best_isa(); isa++) {
		ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
		y = run_gemm(t, &w, xs, m, r0, nr);
		for (i = 0; i < m; i++) {
			xq = xq_prepare(t, x + i * ldx, n);
			xq_dequantize(t, xq, n, xd);
			free(xq);
			for (r = 0; r < nr; r++) {
				ref_dot(w.deq + (r0 + r) * n, xd, n, &dot,
				    &mag);
				ck_assert_msg(fabs(y[i * ldy + r0 + r] -
				    ref[i * nr + r]) <= 1e-5 * mag + 1e-30,
				    "gemm %s n=%zu m=%zu row %zu token %zu "
				    "isa %s: %.9g vs matvec %.9g",
				    qtype_name(t), n, m, r, i,
				    kern_isa_name((enum kern_isa)isa),
				    y[i * ldy + r0 + r], ref[i * nr + r]);
			}
		}
		free(y);
	}
	kern_use_isa(kern_best_isa());
	mat_free(&w);
	free(x);
	free(xd);
	free(ref);
	free(xs);
}

/* Lengths across the repacking chunk, every token tile, partial panels. */
START_TEST(test_gemm_matches_matvec)
{
	static const size_t ns[] = { 32, 96, 256, 1024, 1056, 1280, 2080 };
	static const size_t ms[] = { 1, 2, 3, 8, 15, 21 };
	static const size_t nrs[] = { 1, 7, 16, 37 };
	uint32_t t = qtypes[_i];
	size_t a, b, c;

	for (a = 0; a < sizeof(ns) / sizeof(ns[0]); a++)
		if (fits(t, ns[a]))
		for (b = 0; b < sizeof(ms) / sizeof(ms[0]); b++)
			for (c = 0; c < sizeof(nrs) / sizeof(nrs[0]); c++)
				gemm_case(t, ns[a], ms[b], nrs[c],
				    (uint32_t)(7 + 100 * a + 10 * b + c));
}
END_TEST

/*
 * kern_panel_prepare of m tokens in two parts, the second first (the
 * parts of a batch are prepared by different threads), split inside a
 * tile.  For Q4_0 and Q8_0 every block of every token must sit where
 * kernels_int.h says, with kern_prepare_xs's bytes (xs); the K-quants
 * take xs's layout itself.
 */
static void *
panel_prepare(uint32_t t, const float *x, size_t n, size_t m, const void *xs)
{
	size_t bytes = kern_panel_xs_bytes(t, n, m), h = m / 2 + m % 3 / 2;
	size_t nb = n / QK, first, nt, tok, b;
	uint8_t *xp = aligned_alloc(64, (bytes + 63) / 64 * 64);
	struct kern_xq v;
	const uint8_t *piece;

	ck_assert_ptr_nonnull(xp);
	ck_assert_uint_eq(bytes % 64, 0);
	memset(xp, 0, bytes);
	kern_panel_prepare(t, x + h * n, n, n, m, h, m, xp);
	kern_panel_prepare(t, x, n, n, m, 0, h, xp);
	if (qk_is_k(t)) {
		ck_assert_uint_eq(bytes, m * kern_xs_stride(t, n));
		ck_assert(memcmp(xp, xs, bytes) == 0);
		return xp;
	}
	ck_assert_uint_le(bytes, m * kern_xs_stride(t, n));
	for (first = 0; first < m; first += nt) {
		nt = kern_panel_tile(m - first);
		for (tok = first; tok < first + nt; tok++) {
			v = kern_xs_view(xs, t, n, tok);
			for (b = 0; b < nb; b++) {
				piece = xp + (first * nb + b * nt) * PANEL_XB;
				ck_assert(memcmp(piece + QK * (tok - first),
				    v.q + QK * b, QK) == 0);
				ck_assert(memcmp(piece + QK * nt + 4 * (tok -
				    first), &v.d[b], 4) == 0);
				ck_assert(memcmp(piece + (QK + 4) * nt + 4 *
				    (tok - first), &v.c[b], 4) == 0);
			}
		}
	}
	return xp;
}

/*
 * Panels (kernels_panel.c): rows [r0, r1) of a matrix repacked at "load"
 * through kern_panel_gemm give exactly kern_gemm's floats on the rows as
 * stored, for every token count (each tile size and the fused panel
 * groups), partial last panels, row ranges starting at any panel, and
 * write nothing outside the range.  The tokens' outputs are one block at
 * a stride (uniform: what K-quant prefill takes to kern_gemm, from
 * PANEL_ROWS_GEMM_MIN tokens) or the same block in reverse order.
 */
static void
panel_case(uint32_t t, size_t n, size_t rows, size_t m, size_t r0,
    int uniform, uint32_t seed)
{
	size_t r1 = rows, ldy = rows + 2, i, c, pb = kern_panel_bytes(t, rows,
	    n);
	float *x = x_random(n * m, seed), *want, **y, *yb;
	uint8_t *pk = aligned_alloc(64, (pb + 63) / 64 * 64);
	void *xs = xs_prepare(t, x, n, n, m), *xp = panel_prepare(t, x, n, m,
	    xs);
	struct mat w;

	ck_assert(pk != NULL && (y = malloc(m * sizeof *y)) != NULL);
	ck_assert_ptr_nonnull(yb = malloc(m * ldy * sizeof(float)));
	mat_random(&w, t, n, rows, seed * 7 + 3);
	kern_panel_pack(t, w.w, w.rb, rows, n, pk);
	want = run_gemm(t, &w, xs, m, r0, r1 - r0);
	for (i = 0; i < m; i++) {
		y[i] = yb + (uniform ? i : m - 1 - i) * ldy;
		for (c = 0; c < ldy; c++)
			y[i][c] = CANARY;
	}
	kern_panel_gemm(t, pk, n, xp, m, y, r0, r1);
	for (i = 0; i < m; i++) {
		for (c = 0; c < ldy; c++) {
			if (c < r0 || c >= r1)
				ck_assert_float_eq(y[i][c], CANARY);
			else
				ck_assert_msg(memcmp(&y[i][c], &want[i *
				    (r1 + 2) + c], sizeof(float)) == 0,
				    "panel %s n=%zu rows=%zu m=%zu r0=%zu row "
				    "%zu token %zu: %.9g vs gemm %.9g",
				    qtype_name(t), n, rows, m, r0, c, i,
				    y[i][c], want[i * (r1 + 2) + c]);
		}
	}
	free(yb);
	mat_free(&w);
	free(want);
	free(y);
	free(pk);
	free(xs);
	free(xp);
	free(x);
}

START_TEST(test_panel_matches_gemm)
{
	static const uint32_t pt[] = { QT_Q4_0, QT_Q8_0, QT_Q4_K, QT_Q5_K,
	    QT_Q6_K };
	static const size_t ns[] = { 32, 96, 2080 }, nk[] = { 256, 512, 2304 };
	static const size_t rows[] = { 1, 16, 17, 40, 150 };
	static const size_t ms[] = { 1, 2, 3, 4, 5, 7, 8, 9, 17, 260 };
	size_t a, b, c, r0;
	int u;
	uint32_t t = pt[_i];

	ck_assert(kern_panel_type(t));
	if (t == QT_Q6_K) {
		/* Two superblocks, then their 2 x 32 bytes of d. */
		ck_assert_uint_eq(kern_panel_bytes(t, 17, 512), 2 * (2 *
		    3328 + 64));
		ck_assert_uint_eq(kern_panel_bytes(t, 16, 768), 3 * 3328 +
		    128);
	} else if (t == QT_Q4_K || t == QT_Q5_K) {
		ck_assert_uint_eq(kern_panel_bytes(t, 17, 512), 2 * 2 *
		    (t == QT_Q4_K ? 2304 : 2816));
		ck_assert_uint_eq(kern_panel_bytes(t, 16, 96), 0);
	} else {
		ck_assert_uint_eq(kern_panel_bytes(t, 17, 64), 2 * 2 *
		    (t == QT_Q8_0 ? 544 : 288));
	}
	ck_assert_uint_eq(kern_panel_bytes(QT_Q4_1, 16, 64), 0);
	if (kern_best_isa() != KERN_ISA_AVX512) {
		printf("SKIP panels: no AVX-512 VNNI on this CPU\n");
		ck_assert(!kern_panel_usable());
		return;
	}
	ck_assert_int_eq(kern_use_isa(KERN_ISA_AVX2), 0);
	ck_assert(!kern_panel_usable());
	ck_assert_int_eq(kern_use_isa(KERN_ISA_AVX512), 0);
	ck_assert(kern_panel_usable());
	for (a = 0; a < sizeof(ns) / sizeof(ns[0]); a++)
		for (b = 0; b < sizeof(rows) / sizeof(rows[0]); b++)
			for (c = 0; c < sizeof(ms) / sizeof(ms[0]); c++)
				for (r0 = 0; r0 < rows[b]; r0 += 32)
				/* (Prefill sizes: only the K-quants take
				 * another path, and n = 2304 adds nothing.) */
				for (u = 0; u < (ms[c] <= 17 ? 1 : qk_is_k(t)
				    && a < 2 ? 2 : 0); u++)
					panel_case(t, qk_is_k(t) ? nk[a] :
					    ns[a], rows[b], ms[c], r0, u == 0,
					    (uint32_t)(11 + 97 * a + 13 * b +
					    c + r0));
}
END_TEST

/*
 * The prepared activation: round to nearest of x / (absmax / 127), in the
 * layout kernels_int.h describes, for lengths with and without a last
 * unpaired block and a partial group of eight.
 */
/* kern_prepare_xs: the same numbers as v in natural order, 2 tokens. */
static void
check_prepared_xs(uint32_t t, size_t n, const float *x, struct kern_xq v)
{
	void *xs = xs_prepare(t, x, 0, n, 2);
	size_t i, b, nb = n / QK, k, slot;
	struct kern_xq s;
	int32_t sum;

	for (k = 0; k < 2; k++) {
		s = kern_xs_view(xs, t, n, k);
		for (b = 0; b < nb; b++) {
			slot = kern_xq_slot(t, nb, b);
			ck_assert_float_eq(s.d[b], v.d[slot]);
			sum = 0;
			for (i = b * QK; i < (b + 1) * QK; i++) {
				ck_assert_int_eq(s.q[i],
				    v.q[kern_xq_qpos(t, i)]);
				sum += s.q[i];
			}
			ck_assert_int_eq(s.c[b], want_c(t) * sum);
		}
	}
	free(xs);
}

static void
check_prepared(uint32_t t, size_t n)
{
	float *x = x_random(n, (uint32_t)(99 + n));
	void *xq = malloc(kern_xq_bytes(t, n) + 1);
	struct kern_xq v;
	size_t i, b, nb = n / QK, slot;
	int32_t sum, amax, q;
	float d;

	ck_assert_ptr_nonnull(xq);
	/* Any alignment of the caller's buffer. */
	kern_prepare_x(t, x, n, (char *)xq + 1);
	v = kern_xq_view((char *)xq + 1, t, n);
	ck_assert_uint_eq((uintptr_t)v.q % 64, 0);
	for (b = 0; b < nb; b++) {
		slot = kern_xq_slot(t, nb, b);
		d = v.d[slot];
		sum = amax = 0;
		for (i = b * QK; i < (b + 1) * QK; i++) {
			q = v.q[kern_xq_qpos(t, i)];
			ck_assert_int_le(abs(q), 127);
			ck_assert_float_le(fabsf(x[i] - d * (float)q),
			    0.5001f * d + 1e-30f);
			sum += q;
			amax = abs(q) > amax ? abs(q) : amax;
		}
		ck_assert_int_eq(amax, d == 0.0f ? 0 : 127);
		ck_assert_int_eq(v.c[slot], want_c(t) * sum);
	}
	if (n >= 128) /* the all-zero block (x_random) */
		ck_assert_float_eq(v.d[kern_xq_slot(t, nb, 1)], 0.0f);
	if (t == QT_Q4_0 && nb % 2) /* the zero partner */
		for (i = 0; i < 16; i++)
			ck_assert(v.q[(nb - 1) * QK + 16 + i] == 0 &&
			    v.q[(nb - 1) * QK + 48 + i] == 0);
	check_prepared_xs(t, n, x, v);
	free(x);
	free(xq);
}

START_TEST(test_prepare_x)
{
	static const size_t ns[] = { 32, 64, 96, 256, 288, 2048, 2080 };
	uint32_t t = qtypes[_i];
	size_t k, i, j;
	void *xq;

	for (k = 0; k < sizeof(ns) / sizeof(ns[0]); k++)
		check_prepared(t, ns[k]);
	/* The layout helpers are permutations of the right size. */
	for (i = 0; i < 32; i++)
		for (j = 0; j < i; j++)
			ck_assert_uint_ne(kern_xq_slot(t, 32, i),
			    kern_xq_slot(t, 32, j));
	for (i = 0; i < 256; i++)
		ck_assert_uint_lt(kern_xq_qpos(t, i), 256);
	xq = malloc(kern_xq_bytes(QT_F16, 2));
	ck_assert_ptr_nonnull(xq);
	kern_prepare_x(QT_F16, (float[]){ 1.5f, -2.0f }, 2, xq);
	ck_assert_float_eq(((float *)xq)[0], 1.5f);
	ck_assert_float_eq(((float *)xq)[1], -2.0f);
	free(xq);
}
END_TEST

/* NaN and inf in x must not reach undefined conversions. */
/* In tests/fuzz_quant.c, linked in: the checks for any one input. */
int	quant_fuzz_one(const uint8_t *, size_t);

/*
 * Random bytes as rows of every supported type (every scale pattern, inf
 * and NaN included) through fuzz_quant's checks: no crash, and every ISA
 * equal to the portable matvec wherever the weights are moderate.  Half
 * the inputs get small finite scales so that the comparison runs often.
 */
START_TEST(test_random_blocks)
{
	static uint8_t buf[6000];
	uint32_t seed = 2024;
	size_t k, len, i, bs, ok = 0;
	uint32_t t;
	int nt = 0;

	while (qtype_supported_nth(nt) >= 0)
		nt++;
	for (k = 0; k < 1500; k++) {
		len = 2 + rnd(&seed) % (sizeof buf - 2);
		for (i = 0; i < len; i++)
			buf[i] = (uint8_t)rnd(&seed);
		buf[0] = (uint8_t)(k % (size_t)nt);
		t = (uint32_t)qtype_supported_nth(buf[0]);
		bs = qtype_block_bytes(t);
		if (k % 2 == 0 && qtype_block_elems(t) > 1)
			for (i = 2; i + bs <= len; i += bs) {
				buf[i + 1] &= 0x3b; /* |d| < 1 */
				if (t == QT_Q4_1 || t == QT_Q5_1)
					buf[i + 3] &= 0x3b;
			}
		ok += (size_t)quant_fuzz_one(buf, len);
	}
	ck_assert_uint_gt(ok, 1000);
}
END_TEST

/*
 * A block whose weights are (near) zero under a huge scale, after blocks
 * of ordinary ones: the +128 kernels' offsets must cancel in integers,
 * before scaling (fuzz_quant found the AVX-512 Q8_0 kernel adding half
 * of c to each half block: 1e-3 off on a result of 0.7).
 */
START_TEST(test_zero_block_big_scale)
{
	static const uint32_t ts[] = { QT_Q8_0, QT_IQ4_NL };
	enum { NB = 8, N = NB * QK };
	uint8_t row[NB * 34];
	float x[N], ref, y, w[N];
	size_t k, i, bs;
	double mag;
	void *xq;
	int isa;

	for (i = 0; i < N; i++)
		x[i] = (float)((int)(i * 37 % 255) - 127) / 64.0f;
	for (k = 0; k < sizeof ts / sizeof ts[0]; k++) {
		bs = qtype_block_bytes(ts[k]);
		/* Q8_0 q = -104, IQ4_NL nibbles 2 (-83); then q 0 / nibbles 8 (1). */
		memset(row, ts[k] == QT_Q8_0 ? 0x98 : 0x22, sizeof row);
		for (i = 0; i < NB - 1; i++)
			memcpy(row + i * bs, &(uint16_t){ 0x9898 }, 2);
		memset(row + (NB - 1) * bs, ts[k] == QT_Q8_0 ? 0 : 0x88, bs);
		memcpy(row + (NB - 1) * bs, &(uint16_t){ 0xe200 }, 2);
		quant_dequantize_row(ts[k], row, w, N);
		mag = 0.0;
		for (i = 0; i < N; i++)
			mag += fabs((double)w[i] * x[i]);
		xq = xq_prepare(ts[k], x, N);
		ck_assert_int_eq(kern_use_isa(KERN_ISA_PORTABLE), 0);
		kern_matvec(ts[k], row, bs * NB, N, xq, &ref, 0, 1);
		for (isa = 1; isa <= (int)kern_best_isa(); isa++) {
			ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
			kern_matvec(ts[k], row, bs * NB, N, xq, &y, 0, 1);
			ck_assert_msg(fabs((double)y - ref) <= 1e-6 * mag,
			    "%s isa %s: %.9g vs portable %.9g",
			    qtype_name(ts[k]), kern_isa_name((enum kern_isa)isa),
			    (double)y, (double)ref);
		}
		kern_use_isa(kern_best_isa());
		free(xq);
	}
}
END_TEST

/*
 * The fuzzer's own rule on blocks whose weights are 0 as d q - m with both
 * terms large (d q = m = 9000): the kernels subtract the minimum in
 * floats, so the tolerance must scale with it too.  fuzz_quant found a
 * Q2_K row (AVX2 0.01 off on 29.5) that failed a rule scaled by |w| only.
 */
START_TEST(test_min_cancels)
{
	static const uint32_t ts[] = { QT_Q2_K, QT_Q4_K, QT_Q5_K };
	enum { NB = 3 };
	uint8_t buf[2 + NB * 256];
	struct block_q2_k *b2;
	struct block_q4_k *b4;
	struct block_q5_k *b5;
	size_t k, b, i, bs;
	uint8_t *blk;
	int nth;

	for (k = 0; k < sizeof ts / sizeof ts[0]; k++) {
		for (nth = 0; qtype_supported_nth(nth) != (int)ts[k]; nth++)
			ck_assert_int_ge(qtype_supported_nth(nth), 0);
		bs = qtype_block_bytes(ts[k]);
		memset(buf, 0, sizeof buf);
		buf[0] = (uint8_t)nth;
		buf[1] = 0; /* one row */
		for (b = 0; b < NB; b++) {
			/* All scales and mins at their maximum; codes 1. */
			blk = buf + 2 + b * bs;
			for (i = 0; i < bs; i++)
				blk[i] = (uint8_t)(b == 1 ? i * 37 : 0xff);
			b2 = (void *)blk;
			b4 = (void *)blk;
			b5 = (void *)blk;
			switch (ts[k]) {
			case QT_Q2_K: /* 600 * 15 * 1 - 600 * 15 */
				memset(b2->qs, b == 1 ? 0x1b : 0x55,
				    sizeof b2->qs);
				b2->d = b2->dmin = f32_to_fp16(b == 1 ? 0.01f :
				    600.0f);
				break;
			case QT_Q5_K:
				memset(b5->qh, 0, sizeof b5->qh);
				if (b != 1)
					memset(b5->qs, 0x11, sizeof b5->qs);
				/* fall through */
			default: /* 9450 * 1 - 150 * 63 */
				if (ts[k] == QT_Q4_K && b != 1)
					memset(b4->qs, 0x11, sizeof b4->qs);
				b4->d = b4->dmin = f32_to_fp16(b == 1 ? 0.01f :
				    150.0f);
				break;
			}
		}
		ck_assert_int_eq(quant_fuzz_one(buf, 2 + NB * bs), 1);
	}
}
END_TEST

START_TEST(test_prepare_nonfinite)
{
	float x[64];
	void *xq = malloc(kern_xq_bytes(QT_Q8_0, 64));
	struct kern_xq v = kern_xq_view(xq, QT_Q8_0, 64);
	size_t i;

	ck_assert_ptr_nonnull(xq);
	for (i = 0; i < 64; i++)
		x[i] = 1.0f;
	x[3] = NAN;
	x[40] = INFINITY;
	kern_prepare_x(QT_Q8_0, x, 64, xq);
	ck_assert_int_eq(v.q[3], 0);
	ck_assert_int_eq(v.q[0], 127);
	ck_assert_int_le(abs(v.q[41]), 127);
	free(xq);
}
END_TEST

/*
 * Block b of a row for test_quant_row: random magnitudes from 1e-30 to
 * 1e30, then in some blocks ties (amax 127 d: x / d lands on k + 0.5),
 * NaN, infinities, signed zeros, denormals and a d that underflows.
 */
static void
quant_row_block(float *x, size_t b, uint32_t *seed)
{
	size_t i;
	float scale = powf(10.0f, (float)(int)(rnd(seed) % 61) - 30.0f);

	for (i = 0; i < QK; i++)
		x[i] = scale * ((float)(int)(rnd(seed) % 2001) - 1000.0f) /
		    1000.0f;
	switch (b % 8) {
	case 1: /* ties: d = 3, x = 3 (k + 0.5) */
		x[0] = 381.0f;
		for (i = 1; i < QK; i++)
			x[i] = 3.0f * ((float)(int)(i * 7 % 254) - 126.5f);
		break;
	case 2:
		x[5] = NAN;
		x[9] = -NAN;
		break;
	case 3:
		x[2] = INFINITY;
		x[30] = -INFINITY;
		break;
	case 4: /* all zeros, one negative */
		for (i = 0; i < QK; i++)
			x[i] = 0.0f;
		x[7] = -0.0f;
		break;
	case 5: /* denormals: amax / 127 underflows to 0 */
		for (i = 0; i < QK; i++)
			x[i] = (float)(int)(i % 5) * 1e-45f;
		break;
	case 6: /* every element NaN */
		for (i = 0; i < QK; i++)
			x[i] = NAN;
		break;
	}
}

/*
 * kern_prepare_xs on every ISA: the portable quantizer's bytes exactly
 * (q, d and c; for Q4_K's blocks of 256, q, d and the sums of 16),
 * whatever the values (a batch's activations must be the same bytes
 * whichever kernel set prepared them).
 */
START_TEST(test_quant_row)
{
	static const uint32_t ts[] = { QT_Q8_0, QT_Q4_0, QT_Q4_K };
	enum { NB = 48, N = NB * QK };
	size_t k, b, st;
	uint32_t seed = 77;
	float *x = malloc(N * sizeof(float));
	char *ref, *got;
	int isa;

	ck_assert_ptr_nonnull(x);
	for (b = 0; b < NB; b++)
		quant_row_block(x + b * QK, b, &seed);
	/* The last 256 all zeros but one denormal: Q4_K's d = 0. */
	for (b = 40 * QK; b < N; b++)
		x[b] = b == N - 3 ? 1e-45f : 0.0f;
	for (k = 0; k < sizeof ts / sizeof ts[0]; k++) {
		st = kern_xs_stride(ts[k], N);
		ref = aligned_alloc(64, st);
		got = aligned_alloc(64, st);
		ck_assert(ref != NULL && got != NULL);
		memset(ref, 0x5a, st);
		ck_assert_int_eq(kern_use_isa(KERN_ISA_PORTABLE), 0);
		kern_prepare_xs(ts[k], x, N, N, 1, ref);
		for (isa = 1; isa <= (int)kern_best_isa(); isa++) {
			ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
			memset(got, 0x5a, st);
			kern_prepare_xs(ts[k], x, N, N, 1, got);
			for (b = 0; b < st; b++)
				ck_assert_msg(ref[b] == got[b],
				    "%s isa %s: byte %zu %d vs portable %d",
				    qtype_name(ts[k]),
				    kern_isa_name((enum kern_isa)isa), b,
				    got[b], ref[b]);
		}
		free(ref);
		free(got);
	}
	kern_use_isa(kern_best_isa());
	/* The cases are there: a tie, a NaN, an infinity, d = 0. */
	ck_assert(isnan(x[2 * QK + 5]) && isinf(x[3 * QK + 2]));
	ck_assert_float_eq(x[QK + 1] / 3.0f, -119.5f);
	ck_assert_float_eq(x[5 * QK + 4] / 127.0f, 0.0f);
	free(x);
}
END_TEST

/*
 * kern_argmax on every ISA against the scalar rule: ties (first wins),
 * 0.0 against -0.0, NaNs (skipped; first: 0), infinities, every length
 * around the vector width, and vocabulary-sized rows.
 */
START_TEST(test_argmax)
{
	enum { N = 32003 };
	float *x = malloc(N * sizeof(float));
	uint32_t seed = 5;
	size_t n, i, want, k;
	int isa, c;

	ck_assert_ptr_nonnull(x);
	for (k = 0; k < 400; k++) {
		n = k < 40 ? k : k < 399 ? 1 + rnd(&seed) % 200 : N;
		c = (int)(k % 6);
		for (i = 0; i < n; i++)
			x[i] = c == 0 ? (float)(int)(rnd(&seed) % 7) :
			    (float)(int)(rnd(&seed) % 2001) - 1000.0f;
		if (n > 3 && c == 1)
			x[rnd(&seed) % n] = NAN;
		if (n > 3 && c == 2)
			x[0] = NAN;
		if (n > 3 && c == 3) {
			for (i = 0; i < n; i++)
				x[i] = (rnd(&seed) & 1) ? 0.0f : -0.0f;
		}
		if (n > 3 && c == 4)
			x[n - 1] = INFINITY;
		want = kern_argmax_portable(x, n);
		for (isa = 0; isa <= (int)kern_best_isa(); isa++) {
			ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
			ck_assert_msg(kern_argmax(x, n) == want,
			    "isa %s n %zu case %d: %zu vs %zu",
			    kern_isa_name((enum kern_isa)isa), n, c,
			    kern_argmax(x, n), want);
		}
	}
	kern_use_isa(kern_best_isa());
	/* The rule itself: the first of equal maxima; NaN first gives 0. */
	ck_assert_uint_eq(kern_argmax((float[]){ 1, 3, 2, 3 }, 4), 1);
	ck_assert_uint_eq(kern_argmax((float[]){ NAN, 3, 2, 3 }, 4), 0);
	ck_assert_uint_eq(kern_argmax((float[]){ -0.0f, 0.0f }, 2), 0);
	free(x);
}
END_TEST

/*
 * kern_silu_mul on every ISA against the libm loop: within 4e-7
 * relative (a few ulp: the vector exp is under 1 ulp, then one add, one
 * division and one product round as in the loop) over [-100, 100] in
 * steps of 1/1024, past both ends of exp's range, and at signed zeros.
 */
START_TEST(test_silu_mul)
{
	enum { N = 204800 + 8 };
	float *g = malloc(N * sizeof(float)), *u = malloc(N * sizeof(float));
	float *ref = malloc(N * sizeof(float)), *x = malloc(N * sizeof(float));
	uint32_t seed = 11;
	double err, worst = 0.0;
	size_t i, n;
	int isa;

	ck_assert(g != NULL && u != NULL && ref != NULL && x != NULL);
	for (i = 0; i < N - 8; i++)
		x[i] = -100.0f + (float)i / 1024.0f;
	memcpy(x + N - 8, (float[]){ 0.0f, -0.0f, 88.7f, -88.8f, 90.0f,
	    -90.0f, 1e30f, -1e30f }, 8 * sizeof(float));
	for (i = 0; i < N; i++)
		u[i] = (float)(int)(rnd(&seed) % 2001 - 1000) / 250.0f;
	memcpy(ref, x, N * sizeof(float));
	kern_silu_mul_portable(ref, u, N);
	for (isa = 0; isa <= (int)kern_best_isa(); isa++) {
		ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
		/* Odd lengths: the masked tails. */
		for (n = N; n > N - 40; n -= 13) {
			memcpy(g, x, N * sizeof(float));
			kern_silu_mul(g, u, n);
			for (i = 0; i < N; i++) {
				err = fabs((double)g[i] - ref[i]);
				if (i >= n)
					ck_assert_float_eq(g[i], x[i]);
				else
					ck_assert_msg(err <= 4e-7 * fabs(
					    (double)ref[i]) + 1e-37,
					    "isa %s x %.9g u %.9g: %.9g vs %.9g",
					    kern_isa_name((enum kern_isa)isa),
					    (double)x[i], (double)u[i],
					    (double)g[i], (double)ref[i]);
				if (i < n && ref[i] != 0.0f &&
				    err / fabs((double)ref[i]) > worst)
					worst = err / fabs((double)ref[i]);
			}
		}
	}
	kern_use_isa(kern_best_isa());
	fprintf(stderr, "silu_mul: worst relative error %.3g\n", worst);
	free(g);
	free(u);
	free(ref);
	free(x);
}
END_TEST

START_TEST(test_isa_selection)
{
	enum kern_isa best = kern_best_isa();
	int isa;

#if defined(__GNUC__) && !defined(__clang__) && \
    (defined(__x86_64__) || defined(__i386__))
	/*
	 * A second opinion: libgcc's, which checks the OS state too.  (F16C
	 * comes with AVX2 on every CPU libgcc knows.)
	 */
	if (__builtin_cpu_supports("avx512f") &&
	    __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") &&
	    __builtin_cpu_supports("avx512vnni"))
		ck_assert_int_eq(best, KERN_ISA_AVX512);
	else if (__builtin_cpu_supports("avx2") &&
	    __builtin_cpu_supports("fma"))
		ck_assert_int_eq(best, KERN_ISA_AVX2);
	else
		ck_assert_int_eq(best, KERN_ISA_PORTABLE);
#endif
	printf("kernels: best ISA %s\n", kern_isa_name(best));
	for (isa = KERN_ISA_PORTABLE; isa <= KERN_ISA_AVX512; isa++) {
		ck_assert_str_ne(kern_isa_name((enum kern_isa)isa), "unknown");
		if (isa <= (int)best) {
			ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
			ck_assert_int_eq(kern_current_isa(), isa);
		} else {
			ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), -1);
			ck_assert_int_eq(kern_current_isa(), best);
		}
	}
	ck_assert_int_eq(kern_use_isa((enum kern_isa)3), -1);
	ck_assert_int_eq(kern_use_isa((enum kern_isa)-1), -1);
	ck_assert_int_eq(kern_current_isa(), best);
	ck_assert_int_eq(kern_best_isa(), best);
}
END_TEST

START_TEST(test_dot)
{
	static const size_t ns[] = {
		0, 1, 7, 8, 15, 16, 17, 31, 33, 100, 1000
	};
	float a[1001], b[1001];
	uint32_t seed = 3;
	size_t k, i, isa;
	double dot, mag;

	for (i = 0; i < 1001; i++) {
		a[i] = frnd(&seed);
		b[i] = frnd(&seed);
	}
	for (isa = 0; isa <= (size_t)kern_best_isa(); isa++) {
		ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
		for (k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
			ref_dot(a, b, ns[k], &dot, &mag);
			ck_assert(fabs(kern_dot_f32(a, b, ns[k]) - dot) <=
			    1e-6 * mag);
		}
	}
	kern_use_isa(kern_best_isa());
}
END_TEST

/*
 * Attention of one query over the len rows of k and v, in double, with
 * rows [0, split) scored by q0 and the rest by q1 (the sinks' and the
 * window's queries of the StreamingLLM cache).
 */
static void
ref_attn(const float *q0, const float *q1, size_t split, const float *k,
    const float *v, size_t kvs, size_t hd, size_t len, double scale,
    double cap, double *out)
{
	double max = -INFINITY, sum = 0.0, *p;
	size_t j, d;

	p = calloc(len, sizeof(double));
	ck_assert_ptr_nonnull(p);
	for (j = 0; j < len; j++) {
		for (d = 0; d < hd; d++)
			p[j] += (double)(j < split ? q0 : q1)[d] * k[j * kvs + d];
		p[j] *= scale;
		if (cap > 0.0) /* gemma2's soft-capping */
			p[j] = cap * tanh(p[j] / cap);
		max = p[j] > max ? p[j] : max;
	}
	for (j = 0; j < len; j++)
		sum += p[j] = exp(p[j] - max);
	for (d = 0; d < hd; d++)
		out[d] = 0.0;
	for (j = 0; j < len; j++)
		for (d = 0; d < hd; d++)
			out[d] += p[j] / sum * v[j * kvs + d];
	free(p);
}

struct attn_case {
	size_t n_q, hd, len, qs, kvs, os, split;
	int f16;
	float cap;
	float *q, *q1, *k, *v, *scores, *out;
	uint16_t *kh, *vh; /* k and v as halves, for f16 cases */
};

/*
 * Runs kern_attn over the rows cut into spans at split and in the
 * middle of the rest, the first span with queries q, the others q1.
 */
static void
attn_run(const struct attn_case *c)
{
	struct kern_attn_span sp[3];
	struct kern_attn_args a = { .span = sp, .n_q = c->n_q,
		.q_stride = c->qs, .kv_stride = c->kvs, .hd = c->hd,
		.out_stride = c->os, .kv_f16 = c->f16,
		.scale = 1.0f / sqrtf((float)c->hd), .softcap = c->cap,
		.scores = c->scores, .out = c->out };
	size_t cut[4] = { 0, c->split, c->split + (c->len - c->split) / 2,
		c->len }, i, es = c->f16 ? 2 : 4;
	const char *k = c->f16 ? (const char *)c->kh : (const char *)c->k;
	const char *v = c->f16 ? (const char *)c->vh : (const char *)c->v;

	for (i = 0; i < 3; i++) {
		sp[i].k = k + cut[i] * c->kvs * es;
		sp[i].v = v + cut[i] * c->kvs * es;
		sp[i].len = cut[i + 1] - cut[i];
		sp[i].q = i == 0 ? c->q : c->q1;
	}
	a.n_span = 3;
	kern_attn(&a);
}

static void
attn_check(const struct attn_case *c, enum kern_isa isa)
{
	double ref[160];
	size_t i, d;

	for (i = 0; i < c->n_q * c->os + 1; i++)
		c->out[i] = CANARY;
	c->scores[c->n_q * c->len] = CANARY;
	attn_run(c);
	for (i = 0; i < c->n_q; i++) {
		ref_attn(c->q + i * c->qs, c->q1 + i * c->qs, c->split, c->k,
		    c->v, c->kvs, c->hd, c->len, 1.0 / sqrt((double)c->hd),
		    c->cap, ref);
		for (d = 0; d < c->hd; d++)
			ck_assert_msg(fabs(c->out[i * c->os + d] - ref[d]) <=
			    2e-6, "attn isa %s f16 %d n_q=%zu hd=%zu len=%zu "
			    "split %zu q %zu [%zu]: %.9g vs %.9g",
			    kern_isa_name(isa), c->f16, c->n_q, c->hd, c->len,
			    c->split, i, d, c->out[i * c->os + d], ref[d]);
		for (d = c->hd; d < c->os && i + 1 < c->n_q; d++)
			ck_assert_float_eq(c->out[i * c->os + d], CANARY);
	}
	ck_assert_float_eq(c->out[(c->n_q - 1) * c->os + c->hd], CANARY);
	ck_assert_float_eq(c->scores[c->n_q * c->len], CANARY);
}

/* Keys and values exactly representable as halves, for f16 cases. */
static void
attn_fill(struct attn_case *c, size_t n, uint32_t *seed)
{
	size_t i;

	for (i = 0; i < 8 * 160; i++) {
		c->q[i] = 4.0f * frnd(seed);
		c->q1[i] = 4.0f * frnd(seed);
	}
	for (i = 0; i < n; i++) {
		c->kh[i] = f32_to_fp16(frnd(seed));
		c->vh[i] = f32_to_fp16(frnd(seed));
		c->k[i] = fp16_to_f32(c->kh[i]);
		c->v[i] = fp16_to_f32(c->vh[i]);
	}
}

static void
attn_cases(struct attn_case *c, enum kern_isa isa)
{
	static const size_t nqs[] = { 1, 2, 3, 4, 5, 8 };
	static const size_t hds[] = { 8, 20, 64, 128 };
	static const size_t lens_a[] = { 1, 2, 7, 16, 33, 301 };
	size_t a, b, l, f;

	for (f = 0; f < 2; f++)
	for (a = 0; a < sizeof(nqs) / sizeof(nqs[0]); a++)
	for (b = 0; b < sizeof(hds) / sizeof(hds[0]); b++)
	for (l = 0; l < sizeof(lens_a) / sizeof(lens_a[0]); l++) {
		c->f16 = (int)f;
		c->n_q = nqs[a];
		c->hd = hds[b];
		c->len = lens_a[l];
		c->split = c->len < 4 ? c->len / 2 : 4;
		c->qs = c->hd + 3;
		c->kvs = 2 * c->hd + 5;
		c->os = c->hd + 2;
		/* every other shape soft-capped, tightly enough to matter */
		c->cap = (a + b + l) % 2 ? 1.5f : 0.0f;
		attn_check(c, isa);
	}
}

START_TEST(test_attn)
{
	struct attn_case c;
	size_t isa, n = 8 * 160 * 301;
	uint32_t seed = 11;

	c.q = malloc(8 * 160 * sizeof(float));
	c.q1 = malloc(8 * 160 * sizeof(float));
	c.k = malloc(n * sizeof(float));
	c.v = malloc(n * sizeof(float));
	c.kh = malloc(n * sizeof(uint16_t));
	c.vh = malloc(n * sizeof(uint16_t));
	c.scores = malloc((8 * 301 + 1) * sizeof(float));
	c.out = malloc((8 * 160 + 1) * sizeof(float));
	ck_assert(c.q && c.q1 && c.k && c.v && c.kh && c.vh && c.scores &&
	    c.out);
	/* Queries of 4 units give scores of a few units: a peaked softmax. */
	attn_fill(&c, n, &seed);
	for (isa = 0; isa <= (size_t)kern_best_isa(); isa++) {
		ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
		attn_cases(&c, (enum kern_isa)isa);
	}
	kern_use_isa(kern_best_isa());
	free(c.q);
	free(c.q1);
	free(c.k);
	free(c.v);
	free(c.kh);
	free(c.vh);
	free(c.scores);
	free(c.out);
}
END_TEST

/*
 * One key: the output is its value row and the weight left in scores is
 * 1; no rows at all: zeros.
 */
START_TEST(test_attn_edges)
{
	float q[16], k[16], v[16], out[16], sc[2];
	struct kern_attn_span sp = { k, v, 1, q };
	struct kern_attn_args a = { .span = &sp, .n_span = 1, .n_q = 1,
		.q_stride = 16, .kv_stride = 16, .hd = 16, .out_stride = 16,
		.scale = 100.0f, .scores = sc, .out = out };
	size_t i, isa;
	uint32_t seed = 5;

	for (i = 0; i < 16; i++) {
		q[i] = frnd(&seed);
		k[i] = frnd(&seed);
		v[i] = frnd(&seed);
	}
	for (isa = 0; isa <= (size_t)kern_best_isa(); isa++) {
		ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
		sp.len = 1;
		kern_attn(&a);
		for (i = 0; i < 16; i++)
			ck_assert_float_eq_tol(out[i], v[i], 1e-7f);
		ck_assert_float_eq_tol(sc[0], 1.0f, 1e-7f);
		sp.len = 0;
		kern_attn(&a);
		for (i = 0; i < 16; i++)
			ck_assert_float_eq(out[i], 0.0f);
	}
	kern_use_isa(kern_best_isa());
}
END_TEST

static Suite *
kernels_suite(void)
{
	Suite *s = suite_create("kernels");
	TCase *tc = tcase_create("kernels");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_isa_selection);
	tcase_add_loop_test(tc, test_matvec_type, 0, NTYPES);
	tcase_add_loop_test(tc, test_matvec_odd_lengths, 0, NTYPES);
	tcase_add_test(tc, test_matvec_exact_integers);
	tcase_add_loop_test(tc, test_gemm_matches_matvec, 0, NQTYPES);
	tcase_add_loop_test(tc, test_panel_matches_gemm, 0, 5);
	tcase_add_loop_test(tc, test_matvec_exact_float_types, 0, NTYPES);
	tcase_add_loop_test(tc, test_prepare_x, 0, NQTYPES);
	tcase_add_test(tc, test_prepare_nonfinite);
	tcase_add_test(tc, test_quant_row);
	tcase_add_test(tc, test_argmax);
	tcase_add_test(tc, test_silu_mul);
	tcase_add_test(tc, test_random_blocks);
	tcase_add_test(tc, test_zero_block_big_scale);
	tcase_add_test(tc, test_min_cancels);
	tcase_add_test(tc, test_dot);
	tcase_add_test(tc, test_attn);
	tcase_add_test(tc, test_attn_edges);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(kernels_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
