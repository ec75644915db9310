/*
 * test_quant: half-precision conversions (exhaustive where the domain is
 * small), block quantization error bounds, and the type tables.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

static void
check_error_bound(uint32_t type, double steps, double frac)
{
	enum { N = 256 };
	float x[N], y[N];
	unsigned char buf[N * 4];
	size_t b, j;

	random_row(x, N, type);
	quant_quantize_row(type, x, buf, N);
	quant_dequantize_row(type, buf, y, N);
	for (b = 0; b < N / QK; b++) {
		float amax = 0.0f;
		for (j = 0; j < QK; j++)
			amax = fmaxf(amax, fabsf(x[b * QK + j]));
		/* frac of a step, plus fp16 rounding of the scale. */
		for (j = 0; j < QK; j++)
			ck_assert_msg(fabsf(x[b * QK + j] - y[b * QK + j]) <=
			    amax / steps * frac * 1.01f + amax * 1e-3f,
			    "%s block %zu elem %zu: %g -> %g", qtype_name(type),
			    b, j, (double)x[b * QK + j], (double)y[b * QK + j]);
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
	ck_assert(!qtype_supported(16)); /* IQ2_XXS */
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
	tcase_add_test(tc, type_tables);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
