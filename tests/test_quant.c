/*
 * test_quant: half-precision conversions (exhaustive where the domain is
 * small), block quantization error bounds, and the type tables.
 */
#include <check.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "kernels.h"
#include "quant.h"

/* The f32 nearest to h, computed independently from the IEEE definition. */
static double
half_value(uint16_t h)
{
	int e = (h >> 10) & 31, m = h & 1023;
	double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);

	return (h & 0x8000) ? -v : v;
}

START_TEST(fp16_decode_exhaustive)
{
	uint32_t h;

	for (h = 0; h < 65536; h++) {
		float f = fp16_to_f32((uint16_t)h);
		int e = (h >> 10) & 31;
		if (e == 31) {
			ck_assert((h & 1023) ? isnan(f) : isinf(f));
			continue;
		}
		ck_assert_msg((double)f == half_value((uint16_t)h),
		    "half %04x -> %g", h, (double)f);
		ck_assert_uint_eq(f32_to_fp16(f), h); /* exact round trip */
	}
}
END_TEST

/* Encoding rounds to the nearest half, ties to even mantissa. */
START_TEST(fp16_encode_rounds_to_nearest_even)
{
	uint32_t h;

	for (h = 0; h < 0x7bff; h++) { /* positive finite, below max */
		double lo = half_value((uint16_t)h);
		double hi = half_value((uint16_t)(h + 1));
		float mid = (float)((lo + hi) / 2);
		float below = nextafterf(mid, 0.0f), above = nextafterf(mid, 1e9f);
		uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;

		if ((double)mid == (lo + hi) / 2)
			ck_assert_uint_eq(f32_to_fp16(mid), even);
		ck_assert_uint_eq(f32_to_fp16(below), h);
		ck_assert_uint_eq(f32_to_fp16(above), h + 1);
		ck_assert_uint_eq(f32_to_fp16(-below), h | 0x8000);
	}
	ck_assert_uint_eq(f32_to_fp16(1e6f), 0x7c00);
	ck_assert_uint_eq(f32_to_fp16(-INFINITY), 0xfc00);
	ck_assert(isnan(fp16_to_f32(f32_to_fp16(NAN))));
}
END_TEST

START_TEST(bf16_round_trip_and_rounding)
{
	uint32_t h;
	float f;

	for (h = 0; h < 65536; h++) {
		f = bf16_to_f32((uint16_t)h);
		if (isnan(f))
			continue;
		ck_assert_uint_eq(f32_to_bf16(f), h);
	}
	/* 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties to even. */
	ck_assert_uint_eq(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
	ck_assert_uint_eq(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
	ck_assert(isnan(bf16_to_f32(f32_to_bf16(NAN))));
}
END_TEST

static void
random_row(float *x, size_t n, unsigned seed)
{
	size_t i;

	srand(seed);
	for (i = 0; i < n; i++)
		x[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * 4.0f;
	x[5] = 7.5f; /* one outlier per row sets a block's scale */
}

/* Per block of the type (IQ4_XS: its super-block of 256). */
static void
check_error_bound(uint32_t type, double steps, double frac)
{
	enum { N = 1024 };
	float x[N], y[N];
	unsigned char buf[N * 4];
	size_t b, j, bk = qtype_block_elems(type);

	random_row(x, N, type);
	quant_quantize_row(type, x, buf, N);
	quant_dequantize_row(type, buf, y, N);
	for (b = 0; b < N / bk; b++) {
		float amax = 0.0f;
		for (j = 0; j < bk; j++)
			amax = fmaxf(amax, fabsf(x[b * bk + j]));
		/* frac of a step, plus fp16 rounding of the scale. */
		for (j = 0; j < bk; j++)
			ck_assert_msg(fabsf(x[b * bk + j] - y[b * bk + j]) <=
			    amax / steps * frac * 1.01f + amax * 1e-3f,
			    "%s block %zu elem %zu: %g -> %g", qtype_name(type),
			    b, j, (double)x[b * bk + j], (double)y[b * bk + j]);
	}
}

START_TEST(q8_0_error_bound)
{
	check_error_bound(QT_Q8_0, 127.0, 0.5);
}
END_TEST

START_TEST(q4_0_error_bound)
{
	/* Q4_0 spans -8..7 steps: the end opposite the extreme clamps. */
	check_error_bound(QT_Q4_0, 8.0, 1.0);
}
END_TEST

/* Min-max: half a step of (max - min) / 15, (max - min) <= 2 amax. */
START_TEST(q4_1_error_bound)
{
	check_error_bound(QT_Q4_1, 15.0, 1.0);
}
END_TEST

START_TEST(q5_0_error_bound)
{
	check_error_bound(QT_Q5_0, 16.0, 1.0);
}
END_TEST

START_TEST(q5_1_error_bound)
{
	check_error_bound(QT_Q5_1, 31.0, 1.0);
}
END_TEST

/*
 * The codebook's widest gap is 23 (-127 to -104): half of it, 11.5 of the
 * 127 steps of the extreme; the far end stops at 113, 14 short of 127.
 */
START_TEST(iq4_nl_error_bound)
{
	check_error_bound(QT_IQ4_NL, 127.0, 14.0);
}
END_TEST

/*
 * IQ4_XS as IQ4_NL per sub-block, plus the 6-bit sub-block scales: off by
 * at most half of 1/32 of the super-block's largest (1/64), or 1/32 where
 * +32 clamps to 31: 14/127 + 1/32 of the super-block's amax (19.0 / 127).
 */
START_TEST(iq4_xs_error_bound)
{
	check_error_bound(QT_IQ4_XS, 127.0, 19.0);
}
END_TEST

static uint32_t
xrnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Scales worth trying: extremes, subnormals, zeros, both signs. */
static uint16_t
some_half(uint32_t *seed)
{
	static const uint16_t special[] = { 0x0000, 0x8000, 0x0001, 0x83ff,
		0x7bff, 0xfbff, 0x3c00, 0x0400, 0x1234 };
	uint32_t r = xrnd(seed);

	if (r % 3 == 0)
		return special[(r >> 8) % (sizeof special / sizeof special[0])];
	/* Any finite half: inf and nan exponents are left out. */
	return (uint16_t)((r >> 8) & 0xffff) % 0x7c00 |
	    (uint16_t)(r & 0x8000);
}

static float
half_at(const uint8_t *p)
{
	return (float)half_value((uint16_t)(p[0] | p[1] << 8));
}

/* The codebook as quant.h documents it, typed in again. */
static const int iq4_k[16] = { -127, -104, -83, -65, -49, -35, -22, -10,
	1, 13, 25, 38, 53, 69, 89, 113 };

/* Element j of the 32 whose nibbles are at q: 0..15 low, 16..31 high. */
static int
test_nib(const uint8_t *q, int j)
{
	return j < 16 ? q[j] & 15 : q[j - 16] >> 4;
}

static int
test_bit(const uint8_t *qh, int j)
{
	return (qh[j / 8] >> (j % 8)) & 1;
}

/*
 * Block of elements starting at raw byte p, decoded straight from quant.h's
 * layout comment, one element at a time, into y (32 or 256 elements).
 */
static void
decode_block(uint32_t t, const uint8_t *p, float *y)
{
	float d = half_at(p), m, dl;
	int j, s;

	switch (t) {
	case QT_Q4_1:
		m = half_at(p + 2);
		for (j = 0; j < 32; j++)
			y[j] = d * (float)test_nib(p + 4, j) + m;
		break;
	case QT_Q5_0:
		for (j = 0; j < 32; j++)
			y[j] = d * (float)(test_nib(p + 6, j) +
			    16 * test_bit(p + 2, j) - 16);
		break;
	case QT_Q5_1:
		m = half_at(p + 2);
		for (j = 0; j < 32; j++)
			y[j] = d * (float)(test_nib(p + 8, j) +
			    16 * test_bit(p + 4, j)) + m;
		break;
	case QT_IQ4_NL:
		for (j = 0; j < 32; j++)
			y[j] = d * (float)iq4_k[test_nib(p + 2, j)];
		break;
	case QT_IQ4_XS:
		for (j = 0; j < 256; j++) {
			int sb = j / 32;
			s = (p[4 + sb / 2] >> (sb % 2 ? 4 : 0) & 15) |
			    ((p[2] | p[3] << 8) >> (2 * sb) & 3) << 4;
			dl = d * (float)(s - 32);
			y[j] = dl * (float)iq4_k[test_nib(p + 8 + 16 * sb,
			    j % 32)];
		}
		break;
	}
}

static const uint32_t new_types[] = { QT_Q4_1, QT_Q5_0, QT_Q5_1,
	QT_IQ4_NL, QT_IQ4_XS };

/*
 * Random bytes (every nibble, bit and scale pattern) with scales from
 * some_half, three blocks a row: the dequantized row must equal the
 * straightforward decode bit for bit.
 */
START_TEST(new_types_decode_exact)
{
	enum { NB = 3, ROUNDS = 400 };
	uint32_t t = new_types[_i], seed = 77 + (uint32_t)_i;
	size_t bs = qtype_block_bytes(t), be = qtype_block_elems(t), i, b;
	uint8_t raw[NB * 136];
	float y[NB * 256], want[NB * 256];
	uint16_t h;
	int k;

	ck_assert_uint_le(NB * bs, sizeof raw);
	for (k = 0; k < ROUNDS; k++) {
		for (i = 0; i < NB * bs; i++)
			raw[i] = (uint8_t)xrnd(&seed);
		for (b = 0; b < NB; b++) {
			h = some_half(&seed);
			memcpy(raw + b * bs, &h, 2);
			if (t == QT_Q4_1 || t == QT_Q5_1) {
				h = some_half(&seed);
				memcpy(raw + b * bs + 2, &h, 2);
			}
			decode_block(t, raw + b * bs, want + b * be);
		}
		quant_dequantize_row(t, raw, y, NB * be);
		for (i = 0; i < NB * be; i++)
			if (memcmp(&y[i], &want[i], 4) != 0 &&
			    !(isnan(y[i]) && isnan(want[i])))
				ck_assert_msg(0, "%s round %d elem %zu: %a, "
				    "want %a", qtype_name(t), k, i,
				    (double)y[i], (double)want[i]);
	}
}
END_TEST

/* Quantized blocks obey the layout: re-decoding them gives the row. */
START_TEST(new_types_quantize_layout)
{
	enum { N = 512 };
	uint32_t t = new_types[_i];
	size_t bs = qtype_block_bytes(t), be = qtype_block_elems(t), b, i;
	float x[N], y[N], want[N];
	uint8_t buf[N * 2];

	random_row(x, N, 5 + (unsigned)_i);
	memset(x + 64, 0, 32 * sizeof(float)); /* an all-zero block */
	for (i = 96; i < 128; i++)	/* and a constant one */
		x[i] = -0.25f;
	quant_quantize_row(t, x, buf, N);
	for (b = 0; b < N / be; b++)
		decode_block(t, buf + b * bs, want + b * be);
	quant_dequantize_row(t, buf, y, N);
	for (i = 0; i < N; i++) {
		ck_assert_float_eq(y[i], want[i]);
		ck_assert(isfinite(y[i]));
	}
	for (i = 64; i < 96; i++)
		ck_assert_float_eq_tol(y[i], 0.0f, 1e-6f);
	for (i = 96; i < 128 && t != QT_IQ4_XS; i++)
		ck_assert_float_eq_tol(y[i], -0.25f, 0.25f * 0.02f);
}
END_TEST

/*
 * llama.cpp's own files of these types (../shared/ref, README there): the
 * same random master as llama3-F16.gguf, so every 2-D tensor must
 * dequantize close to the F16 one: relative RMS error under 4-bit
 * (0.15) or 5-bit (0.08) rounding of a Gaussian, where a wrong layout
 * gives ~1 or more.  Each tensor's rows then go through kern_matvec on
 * every ISA against a double dot of the dequantized rows: within 1% of
 * sum |w x| (the 8-bit activation's rounding, ~0.4% per element).
 */
static const double ref_tol[] = { 0.15, 0.08, 0.08, 0.15, 0.15 };

static float *
tensor_f32(const struct gguf_tensor *t)
{
	size_t n = (size_t)(t->ne[0] * t->ne[1]), r, rb = (size_t)(t->nbytes /
	    t->ne[1]);
	float *y = malloc(n * sizeof(float));

	ck_assert_ptr_nonnull(y);
	for (r = 0; r < t->ne[1]; r++)
		quant_dequantize_row(t->type, (const char *)t->data + r * rb,
		    y + r * t->ne[0], (size_t)t->ne[0]);
	return y;
}

static void
ref_matvec(const struct gguf_tensor *t, const float *w)
{
	size_t n = (size_t)t->ne[0], rows = (size_t)t->ne[1], r, i;
	size_t rb = (size_t)(t->nbytes / t->ne[1]);
	float *x = malloc(n * sizeof(float)), *y = malloc(rows * sizeof(float));
	void *xq = malloc(kern_xq_bytes(t->type, n));
	uint32_t seed = 5;
	double dot, mag;
	int isa;

	ck_assert(x != NULL && y != NULL && xq != NULL);
	for (i = 0; i < n; i++)
		x[i] = (float)(xrnd(&seed) % 2001) / 1000.0f - 1.0f;
	kern_prepare_x(t->type, x, n, xq);
	for (isa = 0; isa <= (int)kern_best_isa(); isa++) {
		ck_assert_int_eq(kern_use_isa((enum kern_isa)isa), 0);
		kern_matvec(t->type, t->data, rb, n, xq, y, 0, rows);
		for (r = 0; r < rows; r++) {
			dot = mag = 0.0;
			for (i = 0; i < n; i++) {
				dot += (double)w[r * n + i] * x[i];
				mag += fabs((double)w[r * n + i] * x[i]);
			}
			if (fabs(y[r] - dot) <= 0.01 * mag)
				continue;
			ck_assert_msg(0, "%.*s row %zu isa %s: %g vs %g",
			    (int)t->name.len,
			    t->name.ptr, r, kern_isa_name((enum kern_isa)isa),
			    (double)y[r], dot);
		}
	}
	kern_use_isa(kern_best_isa());
	free(x);
	free(y);
	free(xq);
}

START_TEST(ref_files_dequantize)
{
	const char *shared = getenv("SINKD_SHARED");
	uint32_t type = new_types[_i];
	char path[4096], ref[4096], cause[ERR_LEN], name[128];
	struct gguf_file *g, *f;
	const struct gguf_tensor *t, *tf;
	double err, sq, worst = 0.0;
	uint64_t i, k, n2 = 0;
	float *a, *b;

	snprintf(path, sizeof path, "%s/ref/llama3-%s.gguf",
	    shared != NULL ? shared : "../shared", qtype_name(type));
	snprintf(ref, sizeof ref, "%s/ref/llama3-F16.gguf",
	    shared != NULL ? shared : "../shared");
	if (access(path, R_OK) != 0 || access(ref, R_OK) != 0) {
		printf("SKIP: %s not found (set SINKD_SHARED)\n", path);
		return;
	}
	g = gguf_open(path, cause);
	ck_assert_msg(g != NULL, "%s: %s", path, cause);
	f = gguf_open(ref, cause);
	ck_assert_msg(f != NULL, "%s: %s", ref, cause);
	for (i = 0; i < gguf_n_tensors(g); i++) {
		t = gguf_tensor_at(g, i);
		if (t->n_dims != 2)
			continue;
		snprintf(name, sizeof name, "%.*s", (int)t->name.len,
		    t->name.ptr);
		ck_assert_msg(t->type == type, "%s is %s", name,
		    qtype_name(t->type));
		tf = gguf_find_tensor(f, name);
		ck_assert_msg(tf != NULL && tf->ne[0] == t->ne[0] &&
		    tf->ne[1] == t->ne[1], "%s: no F16 twin", name);
		a = tensor_f32(t);
		b = tensor_f32(tf);
		err = sq = 0.0;
		/* (a NaN or inf in a makes err one too, and fails) */
		for (k = 0; k < t->ne[0] * t->ne[1]; k++) {
			err += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
			sq += (double)b[k] * b[k];
		}
		err = sqrt(err / sq);
		worst = fmax(worst, err);
		ck_assert_msg(err < ref_tol[_i], "%s %s: relative RMS error "
		    "%g", qtype_name(type), name, err);
		ref_matvec(t, a);
		free(a);
		free(b);
		n2++;
	}
	printf("%s: %" PRIu64 " tensors, worst relative RMS error vs F16 "
	    "%.3f\n", qtype_name(type), n2, worst);
	ck_assert_uint_eq(n2, 15);
	gguf_close(g);
	gguf_close(f);
}
END_TEST

START_TEST(q4_0_layout)
{
	struct block_q4_0 b;
	float y[QK];
	int j;

	b.d = f32_to_fp16(0.5f);
	for (j = 0; j < QK / 2; j++)
		b.q[j] = (uint8_t)(j | (15 - j) << 4);
	quant_dequantize_row(QT_Q4_0, &b, y, QK);
	for (j = 0; j < QK / 2; j++) {
		ck_assert_float_eq(y[j], 0.5f * (float)(j - 8));
		ck_assert_float_eq(y[j + 16], 0.5f * (float)(7 - j));
	}
}
END_TEST

START_TEST(type_tables)
{
	uint64_t rb;
	int i;

	ck_assert_uint_eq(sizeof(struct block_q8_0), 34);
	ck_assert_uint_eq(sizeof(struct block_q4_0), 18);
	ck_assert_int_eq(qtype_row_bytes(QT_Q8_0, 64, &rb), 0);
	ck_assert_uint_eq(rb, 68);
	ck_assert_int_eq(qtype_row_bytes(QT_Q4_0, 33, &rb), -1);
	ck_assert_int_eq(qtype_row_bytes(14, 512, &rb), 0); /* Q6_K */
	ck_assert_uint_eq(rb, 420);
	ck_assert_str_eq(qtype_name(14), "Q6_K");
	ck_assert_str_eq(qtype_name(4), "unknown");
	ck_assert_int_eq(qtype_from_name("q8_0"), QT_Q8_0);
	ck_assert_int_eq(qtype_from_name("bogus"), -1);
	ck_assert(qtype_supported(QT_BF16));
	ck_assert(qtype_supported(14)); /* Q6_K */
	ck_assert_uint_eq(sizeof(struct block_q4_1), 20);
	ck_assert_uint_eq(sizeof(struct block_q5_0), 22);
	ck_assert_uint_eq(sizeof(struct block_q5_1), 24);
	ck_assert_uint_eq(sizeof(struct block_iq4_nl), 18);
	ck_assert_uint_eq(sizeof(struct block_iq4_xs), 136);
	ck_assert_uint_eq(qtype_block_bytes(QT_IQ4_XS), 136);
	ck_assert_uint_eq(qtype_block_elems(QT_IQ4_XS), 256);
	ck_assert(qtype_supported(QT_Q5_1) && qtype_supported(QT_IQ4_XS));
	ck_assert(!qtype_supported(17)); /* IQ2_XS */
	ck_assert(!qtype_supported(16)); /* IQ2_XXS */
	ck_assert_int_eq(qtype_supported_nth(0), QT_F32);
	ck_assert_int_eq(qtype_supported_nth(-1), -1);
	for (i = 0; qtype_supported_nth(i) >= 0; i++) {
		ck_assert(qtype_supported((uint32_t)qtype_supported_nth(i)));
		if (i > 0)
			ck_assert_int_lt(qtype_supported_nth(i - 1),
			    qtype_supported_nth(i));
	}
	ck_assert_int_ge(i, 15);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("quant");
	TCase *tc = tcase_create("quant");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, fp16_decode_exhaustive);
	tcase_add_test(tc, fp16_encode_rounds_to_nearest_even);
	tcase_add_test(tc, bf16_round_trip_and_rounding);
	tcase_add_test(tc, q8_0_error_bound);
	tcase_add_test(tc, q4_0_error_bound);
	tcase_add_test(tc, q4_0_layout);
	tcase_add_test(tc, q4_1_error_bound);
	tcase_add_test(tc, q5_0_error_bound);
	tcase_add_test(tc, q5_1_error_bound);
	tcase_add_test(tc, iq4_nl_error_bound);
	tcase_add_test(tc, iq4_xs_error_bound);
	tcase_add_loop_test(tc, new_types_decode_exact, 0, 5);
	tcase_add_loop_test(tc, new_types_quantize_layout, 0, 5);
	tcase_add_loop_test(tc, ref_files_dequantize, 0, 5);
	tcase_add_test(tc, type_tables);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
