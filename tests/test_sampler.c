/* test_sampler: each sampling step on small hand-made distributions. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "sampler.h"

static struct sampler *
make(float temp, int32_t k, float p, float minp, float pen, uint64_t seed,
    int32_t nv)
{
	struct sampler_params sp;
	struct sampler *s;

	sampler_defaults(&sp);
	sp.temp = temp;
	sp.top_k = k;
	sp.top_p = p;
	sp.min_p = minp;
	sp.repeat_penalty = pen;
	sp.seed = seed;
	s = sampler_new(&sp, nv, NULL);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* Draws n samples from logits log(probs) and counts each id. */
static void
histogram(struct sampler *s, const float *probs, int nv, int n, int *count)
{
	float lg[8];
	int i, j;

	memset(count, 0, (size_t)nv * sizeof *count);
	for (i = 0; i < n; i++) {
		for (j = 0; j < nv; j++)
			lg[j] = logf(probs[j]);
		count[sampler_sample(s, lg)]++;
	}
}

START_TEST(greedy_takes_first_maximum)
{
	struct sampler *s = make(0.0f, 40, 0.95f, 0.05f, 1.0f, 1, 5);
	float lg[5] = { 0.1f, 3.0f, -1.0f, 3.0f, 2.0f };

	ck_assert_int_eq(sampler_sample(s, lg), 1);
	sampler_free(s);
}
END_TEST

START_TEST(frequencies_follow_probabilities)
{
	const float p[3] = { 0.5f, 0.3f, 0.2f };
	struct sampler *s = make(1.0f, 0, 1.0f, 0.0f, 1.0f, 7, 3);
	int c[3], n = 40000, i;

	histogram(s, p, 3, n, c);
	for (i = 0; i < 3; i++)
		ck_assert_msg(fabs((double)c[i] / n - p[i]) < 0.015,
		    "id %d: %d of %d", i, c[i], n);
	sampler_free(s);
}
END_TEST

START_TEST(temperature_sharpens)
{
	const float p[3] = { 0.5f, 0.3f, 0.2f };
	struct sampler *s = make(0.5f, 0, 1.0f, 0.0f, 1.0f, 7, 3);
	int c[3], n = 40000;

	/* At T = 0.5 probabilities go as p^2: 25/38, 9/38, 4/38. */
	histogram(s, p, 3, n, c);
	ck_assert(fabs((double)c[0] / n - 25.0 / 38) < 0.015);
	ck_assert(fabs((double)c[2] / n - 4.0 / 38) < 0.015);
	sampler_free(s);
}
END_TEST

START_TEST(truncations_drop_the_tail)
{
	const float p[4] = { 0.45f, 0.3f, 0.2f, 0.05f };
	int c[4];
	struct sampler *s;

	s = make(1.0f, 2, 1.0f, 0.0f, 1.0f, 3, 4); /* top-k 2 */
	histogram(s, p, 4, 5000, c);
	ck_assert(c[0] > 0 && c[1] > 0 && c[2] == 0 && c[3] == 0);
	sampler_free(s);
	s = make(1.0f, 0, 0.9f, 0.0f, 1.0f, 3, 4); /* top-p 0.9 */
	histogram(s, p, 4, 5000, c);
	ck_assert(c[0] > 0 && c[1] > 0 && c[2] > 0 && c[3] == 0);
	sampler_free(s);
	s = make(1.0f, 0, 1.0f, 0.5f, 1.0f, 3, 4); /* min-p 0.5 x 0.45 */
	histogram(s, p, 4, 5000, c);
	ck_assert(c[0] > 0 && c[1] > 0 && c[2] == 0 && c[3] == 0);
	sampler_free(s);
}
END_TEST

START_TEST(repetition_penalty_demotes_seen_tokens)
{
	struct sampler *s = make(0.0f, 40, 1.0f, 0.0f, 1.5f, 1, 3);
	float lg[3] = { 2.0f, 1.9f, -5.0f };

	sampler_accept(s, 0);
	sampler_accept(s, 0);
	ck_assert_int_eq(sampler_sample(s, lg), 1);
	/* Negative logits are multiplied, so they fall further. */
	ck_assert_float_eq_tol(lg[0], 2.0f / 1.5f, 1e-6f);
	sampler_free(s);
}
END_TEST

START_TEST(same_seed_same_stream_and_state_restores)
{
	const float p[4] = { 0.25f, 0.25f, 0.25f, 0.25f };
	struct sampler *a = make(1.0f, 0, 1.0f, 0.0f, 1.0f, 99, 4);
	struct sampler *b = make(1.0f, 0, 1.0f, 0.0f, 1.0f, 99, 4);
	struct sampler *c = make(1.0f, 0, 1.0f, 0.0f, 1.0f, 100, 4);
	uint64_t st[4];
	int ra[64], rb[64], i, j, differ = 0;
	float lg[4];

	for (i = 0; i < 64; i++) {
		for (j = 0; j < 4; j++)
			lg[j] = logf(p[j]);
		ra[i] = sampler_sample(a, lg);
		for (j = 0; j < 4; j++)
			lg[j] = logf(p[j]);
		ck_assert_int_eq(sampler_sample(b, lg), ra[i]);
		for (j = 0; j < 4; j++)
			lg[j] = logf(p[j]);
		differ += sampler_sample(c, lg) != ra[i];
	}
	ck_assert_int_gt(differ, 10);
	sampler_rng_get(a, st);
	for (i = 0; i < 64; i++) {
		for (j = 0; j < 4; j++)
			lg[j] = logf(p[j]);
		ra[i] = sampler_sample(a, lg);
	}
	sampler_rng_set(b, st);
	for (i = 0; i < 64; i++) {
		for (j = 0; j < 4; j++)
			lg[j] = logf(p[j]);
		rb[i] = sampler_sample(b, lg);
	}
	ck_assert_mem_eq(ra, rb, sizeof ra);
	sampler_free(a);
	sampler_free(b);
	sampler_free(c);
}
END_TEST

START_TEST(bad_parameters_are_named)
{
	struct sampler_params sp;
	char cause[ERR_LEN];

	sampler_defaults(&sp);
	sp.top_p = 0.0f;
	ck_assert_int_eq(sampler_check(&sp, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "top-p"));
	sampler_defaults(&sp);
	sp.temp = -1.0f;
	ck_assert_ptr_null(sampler_new(&sp, 10, cause));
	ck_assert_ptr_nonnull(strstr(cause, "temperature"));
	sampler_defaults(&sp);
	sp.min_p = NAN;
	ck_assert_int_eq(sampler_check(&sp, cause), -1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("sampler");
	TCase *tc = tcase_create("sampler");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, greedy_takes_first_maximum);
	tcase_add_test(tc, frequencies_follow_probabilities);
	tcase_add_test(tc, temperature_sharpens);
	tcase_add_test(tc, truncations_drop_the_tail);
	tcase_add_test(tc, repetition_penalty_demotes_seen_tokens);
	tcase_add_test(tc, same_seed_same_stream_and_state_restores);
	tcase_add_test(tc, bad_parameters_are_named);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
