/*
 * test_quant_k: the K-quant formats.  Dequantization against a decoder
 * written here from the layouts in quant_k.h, loop by loop the way the
 * format stores each half and chunk (not per element as quant_k.c does),
 * on random bytes (every scale bit pattern, fp16 infinities and NaNs
 * included); the unpacked form against dequantization; quantize then
 * dequantize within bounds derived from each format's step sizes.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "quant_k.h"

static const uint32_t ktypes[] = { QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K,
	QT_Q6_K };
#define NK (sizeof(ktypes) / sizeof(ktypes[0]))

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

static uint16_t
rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* Six-bit field j of the 12 packed Q4_K/Q5_K bytes: (scale, min). */
static void
ref_sm(const uint8_t *s, int j, int *sc, int *m)
{
	if (j < 4) {
		*sc = s[j] % 64;
		*m = s[4 + j] % 64;
		return;
	}
	*sc = s[8 + j - 4] % 16 + (s[j - 4] / 64) * 16;
	*m = s[8 + j - 4] / 16 + (s[j] / 64) * 16;
}

static void
ref_q4_k(const uint8_t *b, float *y)
{
	float d = fp16_to_f32(rd16(b)), dmin = fp16_to_f32(rd16(b + 2));
	const uint8_t *sc = b + 4, *qs = b + 16;
	int c, l, s0, m0, s1, m1;

	for (c = 0; c < 4; c++) {
		ref_sm(sc, 2 * c, &s0, &m0);
		ref_sm(sc, 2 * c + 1, &s1, &m1);
		for (l = 0; l < 32; l++) {
			y[64 * c + l] = d * (float)s0 * (float)(qs[32 * c + l] %
			    16) - dmin * (float)m0;
			y[64 * c + 32 + l] = d * (float)s1 * (float)(qs[32 * c +
			    l] / 16) - dmin * (float)m1;
		}
	}
}

static void
ref_q5_k(const uint8_t *b, float *y)
{
	float d = fp16_to_f32(rd16(b)), dmin = fp16_to_f32(rd16(b + 2));
	const uint8_t *sc = b + 4, *qh = b + 16, *qs = b + 48;
	int c, l, s0, m0, s1, m1, lo, hi;

	for (c = 0; c < 4; c++) {
		ref_sm(sc, 2 * c, &s0, &m0);
		ref_sm(sc, 2 * c + 1, &s1, &m1);
		for (l = 0; l < 32; l++) {
			lo = qs[32 * c + l] % 16 + ((qh[l] >> (2 * c)) & 1) * 16;
			hi = qs[32 * c + l] / 16 + ((qh[l] >> (2 * c + 1)) & 1) *
			    16;
			y[64 * c + l] = d * (float)s0 * (float)lo -
			    dmin * (float)m0;
			y[64 * c + 32 + l] = d * (float)s1 * (float)hi -
			    dmin * (float)m1;
		}
	}
}

static void
ref_q6_k(const uint8_t *b, float *y)
{
	const uint8_t *ql = b, *qh = b + 128;
	const int8_t *sc = (const int8_t *)(b + 192);
	float d = fp16_to_f32(rd16(b + 208));
	int h, l, q[4], k;

	for (h = 0; h < 2; h++) {
		for (l = 0; l < 32; l++) {
			q[0] = ql[64 * h + l] % 16;
			q[1] = ql[64 * h + 32 + l] % 16;
			q[2] = ql[64 * h + l] / 16;
			q[3] = ql[64 * h + 32 + l] / 16;
			for (k = 0; k < 4; k++) {
				q[k] += ((qh[32 * h + l] >> (2 * k)) & 3) * 16;
				y[128 * h + 32 * k + l] = d * (float)sc[8 * h +
				    2 * k + l / 16] * (float)(q[k] - 32);
			}
		}
	}
}

static int
ref_q3_scale(const uint8_t *s, int j)
{
	static const int lo_byte[16] = { 0, 1, 2, 3, 4, 5, 6, 7,
		0, 1, 2, 3, 4, 5, 6, 7 };
	int lo = j < 8 ? s[lo_byte[j]] % 16 : s[lo_byte[j]] / 16;
	int hi = (s[8 + j % 4] >> (2 * (j / 4))) % 4;

	return lo + 16 * hi - 32;
}

static void
ref_q3_k(const uint8_t *b, float *y)
{
	const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
	float d = fp16_to_f32(rd16(b + 108));
	int h, k, l, q;

	for (h = 0; h < 2; h++)
		for (k = 0; k < 4; k++)
			for (l = 0; l < 32; l++) {
				q = (qs[32 * h + l] >> (2 * k)) % 4;
				if (!((hm[l] >> (4 * h + k)) & 1))
					q -= 4;
				y[128 * h + 32 * k + l] = d * (float)ref_q3_scale(
				    sc, 8 * h + 2 * k + l / 16) * (float)q;
			}
}

static void
ref_q2_k(const uint8_t *b, float *y)
{
	const uint8_t *sc = b, *qs = b + 16;
	float d = fp16_to_f32(rd16(b + 80)), dmin = fp16_to_f32(rd16(b + 82));
	int h, k, l, q, s;

	for (h = 0; h < 2; h++)
		for (k = 0; k < 4; k++)
			for (l = 0; l < 32; l++) {
				q = (qs[32 * h + l] >> (2 * k)) % 4;
				s = sc[8 * h + 2 * k + l / 16];
				y[128 * h + 32 * k + l] = d * (float)(s % 16) *
				    (float)q - dmin * (float)(s / 16);
			}
}

static void
ref_block(uint32_t t, const uint8_t *b, float *y)
{
	switch (t) {
	case QT_Q2_K: ref_q2_k(b, y); break;
	case QT_Q3_K: ref_q3_k(b, y); break;
	case QT_Q4_K: ref_q4_k(b, y); break;
	case QT_Q5_K: ref_q5_k(b, y); break;
	default: ref_q6_k(b, y); break;
	}
}

/* Offsets of a type's fp16 factors (d, and dmin or -1). */
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

static int
same_float(float a, float b)
{
	return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* Random bytes; some blocks get extreme or ordinary factors. */
START_TEST(dequantize_matches_layout)
{
	uint32_t t = ktypes[_i], seed = 99 + _i;
	size_t bs = qtype_block_bytes(t), nb = 64, i, e;
	static const uint16_t extreme[] = { 0x7bff, 0x0001, 0x8001, 0x7c00,
		0x3c00, 0xbc00, 0x0000, 0x7e00 };
	uint8_t *blk = malloc(bs * nb);
	float *got = malloc(nb * QK_K * sizeof(float)), ref[QK_K];
	int od, om, mismatches = 0;

	ck_assert_ptr_nonnull(blk);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(bs, t == QT_Q2_K ? 84 : t == QT_Q3_K ? 110 :
	    t == QT_Q4_K ? 144 : t == QT_Q5_K ? 176 : 210);
	factor_offsets(t, &od, &om);
	for (i = 0; i < bs * nb; i++)
		blk[i] = (uint8_t)rnd(&seed);
	for (i = 0; i < nb; i++) {
		uint16_t d = i < 8 ? extreme[i] : i < 40 ? (uint16_t)(0x2000 +
		    rnd(&seed) % 0x2000) : (uint16_t)rnd(&seed);

		memcpy(blk + i * bs + od, &d, 2);
		if (om >= 0)
			memcpy(blk + i * bs + om, &d, 2);
	}
	quant_dequantize_row(t, blk, got, nb * QK_K);
	for (i = 0; i < nb; i++) {
		ref_block(t, blk + i * bs, ref);
		for (e = 0; e < QK_K; e++)
			mismatches += !same_float(got[i * QK_K + e], ref[e]);
	}
	ck_assert_msg(mismatches == 0, "%s: %d elements differ",
	    qtype_name(t), mismatches);
	free(blk);
	free(got);
}
END_TEST

/* The kernels' unpacked form means the same numbers. */
START_TEST(unpacked_form_matches)
{
	uint32_t t = ktypes[_i], seed = 7 + _i;
	size_t bs = qtype_block_bytes(t), i, e;
	uint8_t blk[256];
	float y[QK_K], v;
	struct qk_unpacked u;
	int od, om;

	factor_offsets(t, &od, &om);
	for (i = 0; i < 200; i++) {
		uint16_t d = (uint16_t)(0x2000 + rnd(&seed) % 0x2000);

		for (e = 0; e < bs; e++)
			blk[e] = (uint8_t)rnd(&seed);
		memcpy(blk + od, &d, 2);
		if (om >= 0)
			memcpy(blk + om, &d, 2);
		ref_block(t, blk, y);
		qk_unpack(t, blk, &u);
		for (e = 0; e < QK_K; e++) {
			ck_assert_uint_le(u.u[e], 63);
			v = u.D * (float)u.sc[e / 16] * (float)u.u[e] -
			    u.M * (float)u.m[e / 16];
			ck_assert_msg(fabsf(v - y[e]) <= 1e-5f * (fabsf(u.D) *
			    64 * 128 + fabsf(u.M) * 4096), "%s block %zu elem "
			    "%zu: %g vs %g", qtype_name(t), i, e, v, y[e]);
		}
	}
}
END_TEST

/*
 * Worst error as a fraction of the block's largest |x| (A), from the
 * quantizers' steps: a code is off by at most half a step, a step is the
 * sub-block's range over the code count plus one scale unit (scales are
 * rounded up), and a min is off by half its unit.  Q4_K: range <= 2A
 * over 15 codes, units of 1/63: (2/15)(1 + 1/63)/2 + 1/126 = 0.0757.
 */
static double
error_bound(uint32_t t)
{
	switch (t) {
	case QT_Q2_K: return (2.0 / 3) * (1 + 1.0 / 15) / 2 + 1.0 / 30;
	case QT_Q3_K: return (1.0 / 3) * (1 + 1.0 / 31) / 2;
	case QT_Q4_K: return (2.0 / 15) * (1 + 1.0 / 63) / 2 + 1.0 / 126;
	case QT_Q5_K: return (2.0 / 31) * (1 + 1.0 / 63) / 2 + 1.0 / 126;
	default: return (1.0 / 31) * (1 + 1.0 / 127) / 2;
	}
}

START_TEST(quantize_error_bound)
{
	uint32_t t = ktypes[_i], seed = 1234 + _i;
	size_t n = 16 * QK_K, i, b;
	float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
	uint8_t *q = malloc(qtype_block_bytes(t) * (n / QK_K));
	double worst = 0.0, sum = 0.0, amax, e;

	ck_assert_ptr_nonnull(x);
	ck_assert_ptr_nonnull(y);
	ck_assert_ptr_nonnull(q);
	for (b = 0; b < n / QK_K; b++) {
		float mag = ldexpf(1.0f, (int)(rnd(&seed) % 13) - 8);
		float shift = b % 3 == 0 ? 0.5f * mag : 0.0f; /* lopsided */

		for (i = 0; i < QK_K; i++)
			x[b * QK_K + i] = shift + mag * frnd(&seed) *
			    (i % 16 == 5 ? 1.0f : (float)(i % 7 + 1) / 8);
	}
	memset(x + 3 * QK_K, 0, QK_K * sizeof(float)); /* all zero */
	quant_quantize_row(t, x, q, n);
	quant_dequantize_row(t, q, y, n);
	for (b = 0; b < n / QK_K; b++) {
		amax = 0.0;
		for (i = 0; i < QK_K; i++)
			amax = fmax(amax, fabs(x[b * QK_K + i]));
		for (i = 0; i < QK_K; i++) {
			e = fabs((double)y[b * QK_K + i] - x[b * QK_K + i]);
			ck_assert_msg(e <= error_bound(t) * amax * 1.001,
			    "%s block %zu elem %zu: %g for %g (amax %g)",
			    qtype_name(t), b, i, y[b * QK_K + i],
			    x[b * QK_K + i], amax);
			if (amax > 0)
				worst = fmax(worst, e / amax);
			sum += amax > 0 ? e / amax : 0.0;
		}
		if (b == 3)
			for (i = 0; i < QK_K; i++)
				ck_assert_float_eq(y[b * QK_K + i], 0.0f);
	}
	/* Not all at the bound: mean error well under the worst case. */
	ck_assert_msg(sum / (double)n < 0.5 * error_bound(t),
	    "%s: mean error %g", qtype_name(t), sum / (double)n);
	ck_assert(worst > 0.0);
	free(x);
	free(y);
	free(q);
}
END_TEST

START_TEST(types_supported)
{
	size_t i;

	for (i = 0; i < NK; i++) {
		ck_assert(qtype_supported(ktypes[i]));
		ck_assert(qk_is_k(ktypes[i]));
		ck_assert_uint_eq(qtype_block_elems(ktypes[i]), QK_K);
	}
	ck_assert(!qk_is_k(QT_Q4_0));
	ck_assert(!qk_is_k(15)); /* Q8_K: activations only */
	ck_assert(!qtype_supported(15));
	ck_assert_uint_eq(sizeof(struct block_q2_k), 84);
	ck_assert_uint_eq(sizeof(struct block_q3_k), 110);
	ck_assert_uint_eq(sizeof(struct block_q4_k), 144);
	ck_assert_uint_eq(sizeof(struct block_q5_k), 176);
	ck_assert_uint_eq(sizeof(struct block_q6_k), 210);
}
END_TEST

static Suite *
quant_k_suite(void)
{
	Suite *s = suite_create("quant_k");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, types_supported);
	tcase_add_loop_test(tc, dequantize_matches_layout, 0, NK);
	tcase_add_loop_test(tc, unpacked_form_matches, 0, NK);
	tcase_add_loop_test(tc, quantize_error_bound, 0, NK);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(quant_k_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
