/*
 * test_model: the engine's forward pass against tests/reference.c, on the
 * real stories260K model and on synthetic models of every weight type,
 * plus prefill-versus-decode agreement and bad-input errors.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_write.h"
#include "matmul.h"
#include "model.h"
#include "pool.h"
#include "quant.h"
#include "reference.h"
#include "seq.h"
#include "sha256.h"
#include "synth.h"
#include "tenv.h"

static const char story_text[] =
    "Once upon a time, there was a little girl named Lily. She loved to "
    "play outside in the park with her friends. One day, she saw a big red "
    "ball under a tree. She wanted to play with it, but it was too high. "
    "Lily asked her mom for help. Her mom said, \"Let's get a stick and "
    "try to reach it.\" They found a long stick and tried to get the ball. "
    "After a few tries, the ball fell down. Lily was so happy! She said "
    "thank you to her mom and ran to play with her friends. They played "
    "with the ball all day long. When the sun went down, Lily went home "
    "and told her dad about her fun day. Her dad smiled and gave her a big "
    "hug. Lily went to bed and dreamed about the red ball and the park.";

/* Largest |a - b| over n, relative to the largest |b|. */
static double
rel_err(const float *a, const double *b, size_t n)
{
	double max_abs = 1e-30, max_diff = 0.0;
	size_t i;

	for (i = 0; i < n; i++) {
		max_abs = fmax(max_abs, fabs(b[i]));
		max_diff = fmax(max_diff, fabs((double)a[i] - b[i]));
	}
	return max_diff / max_abs;
}

static void
setup(void)
{
	tenv_setup("model");
}

/* seq_eval with a work area made for the call. */
static int
eval_on(struct model *m, struct seq *s, const int32_t *ids, size_t n,
    float *lg, int all, char *cause)
{
	struct seq_work *w = seq_work_new(m, 0, cause);
	int rc;

	ck_assert_ptr_nonnull(w);
	rc = seq_eval(s, w, tenv_pool, ids, n, lg, all, cause);
	seq_work_free(w);
	return rc;
}

/* Engine logits for every position of ids, in one prefill. */
static float *
engine_logits(struct model *m, const int32_t *ids, size_t n)
{
	struct seq *s = seq_new(m, NULL, NULL);
	float *lg = malloc(n * (size_t)m->hp.n_vocab * sizeof *lg);
	char cause[ERR_LEN] = "";

	ck_assert_ptr_nonnull(s);
	ck_assert_msg(eval_on(m, s, ids, n, lg, 1, cause) == 0, "%s", cause);
	seq_free(s);
	return lg;
}

static double *
ref_logits(const char *path, const int32_t *ids, size_t n)
{
	char cause[ERR_LEN] = "";
	struct ref_model *r = ref_open(path, cause);
	double *lg;

	ck_assert_msg(r != NULL, "ref_open: %s", cause);
	lg = malloc(n * (size_t)ref_n_vocab(r) * sizeof *lg);
	ck_assert(ref_forward(r, ids, n, lg, cause) == 0);
	ref_close(r);
	return lg;
}

START_TEST(stories_logits_match_reference)
{
	struct model *m;
	int32_t *ids;
	size_t n, t, nv;
	float *lg;
	double *ref, worst = 0.0;

	NEED_STORIES();
	m = tenv_open_model(tenv_stories);
	ck_assert_int_eq(tok_encode(m->tok, story_text, strlen(story_text), 1,
	    &ids, &n, NULL), 0);
	ck_assert_uint_ge(n, 200);
	nv = (size_t)m->hp.n_vocab;
	lg = engine_logits(m, ids, n);
	ref = ref_logits(tenv_stories, ids, n);
	for (t = 0; t < n; t++) {
		double e = rel_err(lg + t * nv, ref + t * nv, nv);
		worst = fmax(worst, e);
		ck_assert_msg(e < 1e-4, "position %zu: relative error %g", t, e);
	}
	printf("stories260K: %zu positions, worst relative error %.2e\n", n,
	    worst);
	free(lg);
	free(ref);
	free(ids);
	model_close(m);
}
END_TEST

static int32_t
argmax_d(const double *v, size_t n)
{
	size_t i, b = 0;

	for (i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return (int32_t)b;
}

static int32_t
argmax_f(const float *v, size_t n)
{
	size_t i, b = 0;

	for (i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return (int32_t)b;
}

START_TEST(stories_greedy_matches_reference)
{
	enum { GEN = 40 };
	struct model *m;
	struct ref_model *r;
	struct seq *s;
	struct seq_work *w;
	int32_t *ids, all[256], id;
	size_t n, nv, i;
	float *lg;
	double *rl;
	char text[4096] = "", piece[64];
	int len;

	NEED_STORIES();
	m = tenv_open_model(tenv_stories);
	r = ref_open(tenv_stories, NULL);
	nv = (size_t)m->hp.n_vocab;
	ck_assert_int_eq(tok_encode(m->tok, "Once upon a time", 16, 1, &ids,
	    &n, NULL), 0);
	memcpy(all, ids, n * sizeof *ids);
	s = seq_new(m, NULL, NULL);
	lg = malloc(nv * sizeof *lg);
	rl = malloc((n + GEN) * nv * sizeof *rl);
	w = seq_work_new(m, 0, NULL);
	ck_assert_int_eq(seq_eval(s, w, tenv_pool, ids, n, lg, 0, NULL), 0);
	for (i = 0; i < GEN; i++) {
		ck_assert_int_eq(ref_forward(r, all, n + i, rl, NULL), 0);
		id = argmax_f(lg, nv);
		ck_assert_int_eq(id, argmax_d(rl + (n + i - 1) * nv, nv));
		len = tok_piece(m->tok, all[n + i - 1], id, piece,
		    sizeof piece - 1);
		ck_assert(len >= 0 && len < (int)sizeof piece);
		piece[len] = '\0';
		strncat(text, piece, sizeof text - strlen(text) - 1);
		all[n + i] = id;
		ck_assert_int_eq(seq_eval(s, w, tenv_pool, &id, 1, lg, 0,
		    NULL), 0);
	}
	seq_work_free(w);
	printf("greedy: Once upon a time%s\n", text);
	free(lg);
	free(rl);
	free(ids);
	seq_free(s);
	ref_close(r);
	model_close(m);
}
END_TEST

/* Logits of n tokens fed one at a time, all positions. */
static float *
stepwise_logits(struct model *m, const int32_t *ids, size_t n)
{
	struct seq *s = seq_new(m, NULL, NULL);
	struct seq_work *w = seq_work_new(m, 0, NULL);
	size_t nv = (size_t)m->hp.n_vocab, i;
	float *lg = malloc(n * nv * sizeof *lg);

	for (i = 0; i < n; i++)
		ck_assert_int_eq(seq_eval(s, w, tenv_pool, ids + i, 1,
		    lg + i * nv, 0, NULL), 0);
	seq_work_free(w);
	seq_free(s);
	return lg;
}

static double
max_rel_diff(const float *a, const float *b, size_t n)
{
	double max_abs = 1e-30, d = 0.0;
	size_t i;

	for (i = 0; i < n; i++) {
		max_abs = fmax(max_abs, fabs((double)b[i]));
		d = fmax(d, fabs((double)a[i] - b[i]));
	}
	return d / max_abs;
}

START_TEST(stories_prefill_equals_steps)
{
	struct model *m;
	int32_t *ids;
	size_t n, nv, t;
	float *a, *b;

	NEED_STORIES();
	m = tenv_open_model(tenv_stories);
	ck_assert_int_eq(tok_encode(m->tok, story_text, 300, 1, &ids, &n,
	    NULL), 0);
	nv = (size_t)m->hp.n_vocab;
	a = engine_logits(m, ids, n);
	b = stepwise_logits(m, ids, n);
	for (t = 0; t < n; t++)
		ck_assert_msg(max_rel_diff(a + t * nv, b + t * nv, nv) < 1e-5,
		    "position %zu differs: %g", t,
		    max_rel_diff(a + t * nv, b + t * nv, nv));
	free(a);
	free(b);
	free(ids);
	model_close(m);
}
END_TEST

static const uint32_t synth_types[] = { QT_F32, QT_F16, QT_BF16, QT_Q8_0,
	QT_Q4_0 };
/*
 * Prefill and decode both dot quantized weights with an activation
 * quantized to 8 bits per block of 32: allow for that rounding against
 * the reference, which on these tiny random models moves logits by ~2% of
 * the largest.  Float weights see f32 activations.  Prefill and decode
 * quantize the same activations, so they must agree closely with each
 * other whatever the type.
 */
static const double decode_tol[] = { 1e-5, 1e-5, 1e-5, 5e-2, 5e-2 };
static const double prefill_tol[] = { 1e-4, 1e-4, 1e-4, 5e-2, 5e-2 };
#define PREFILL_DECODE_TOL 1e-5

static void
make_synth(const char *arch, uint32_t type, char *path, size_t len)
{
	struct synth_opts o = { .arch = arch, .type = type, .seed = 42 };
	char cause[ERR_LEN] = "";

	synth_shape(&o, "tiny", NULL);
	snprintf(path, len, "%s/%s-%s.gguf", tenv_dir, arch, qtype_name(type));
	ck_assert_msg(synth_write(&o, path, cause) == 0, "synth: %s", cause);
}

static void
check_synth(const char *arch, int ti)
{
	uint32_t type = synth_types[ti];
	int32_t ids[48];
	char path[512];
	struct model *m;
	size_t n = sizeof ids / sizeof ids[0], nv, t, i;
	float *pre, *dec;
	double *ref, ep = 0, ed = 0, epd = 0;

	make_synth(arch, type, path, sizeof path);
	m = tenv_open_model(path);
	nv = (size_t)m->hp.n_vocab;
	for (i = 0; i < n; i++)
		ids[i] = (int32_t)((i * 37 + 5) % nv);
	pre = engine_logits(m, ids, n);
	dec = stepwise_logits(m, ids, n);
	ref = ref_logits(path, ids, n);
	for (t = 0; t < n; t++) {
		ep = fmax(ep, rel_err(pre + t * nv, ref + t * nv, nv));
		ed = fmax(ed, rel_err(dec + t * nv, ref + t * nv, nv));
		epd = fmax(epd, max_rel_diff(pre + t * nv, dec + t * nv, nv));
	}
	printf("%s %s: prefill error %.2e, decode error %.2e, prefill vs "
	    "decode %.2e\n", arch, qtype_name(type), ep, ed, epd);
	ck_assert_msg(ep < prefill_tol[ti], "%s prefill error %g",
	    qtype_name(type), ep);
	ck_assert_msg(ed < decode_tol[ti], "%s decode error %g",
	    qtype_name(type), ed);
	ck_assert_msg(epd < PREFILL_DECODE_TOL, "%s prefill vs decode %g",
	    qtype_name(type), epd);
	free(pre);
	free(dec);
	free(ref);
	model_close(m);
}

START_TEST(synth_llama_types_match_reference)
{
	check_synth("llama", _i);
}
END_TEST

START_TEST(synth_qwen2_types_match_reference)
{
	check_synth("qwen2", _i);
}
END_TEST

static void
expect_open_error(const char *path, const char *needle)
{
	char cause[ERR_LEN] = "";
	struct model *m = model_open(path, NULL, cause);

	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(cause, needle) != NULL, "error '%s' lacks '%s'",
	    cause, needle);
}

START_TEST(bad_models_are_refused)
{
	char path[512];
	struct gguf_writer *w;

	expect_open_error("/nonexistent/model.gguf", "No such file");
	/* An architecture we do not run. */
	snprintf(path, sizeof path, "%s/falcon.gguf", tenv_dir);
	w = gguf_writer_new();
	gguf_writer_add_str(w, "general.architecture", "falcon");
	ck_assert_int_eq(gguf_writer_write(w, path, NULL), 0);
	gguf_writer_free(w);
	expect_open_error(path, "'falcon' is not supported");
	/* A tensor type we do not run yet: names the type and the tensor. */
	{
		struct synth_opts o = { .arch = "llama", .type = QT_Q8_0,
			.output_type = 16 /* IQ2_XXS */ };
		synth_shape(&o, "tiny", NULL);
		o.n_embd = 256;
		snprintf(path, sizeof path, "%s/q6k.gguf", tenv_dir);
		ck_assert_int_eq(synth_write(&o, path, NULL), 0);
		expect_open_error(path, "'output.weight' has type IQ2_XXS");
	}
}
END_TEST

/* SHA-256 against the standard's vectors, and the model fingerprint. */
START_TEST(fingerprints)
{
	static const char *const in[] = { "", "abc",
	    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq" };
	static const char *const want[] = {
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" };
	struct synth_opts o = { .arch = "llama", .type = QT_F32, .seed = 1 };
	char path[512], path2[600], hex[65];
	struct model *a, *b, *c;
	struct sha256 h;
	uint8_t d[32];
	size_t i;

	for (i = 0; i < 3; i++) {
		sha256_init(&h);
		sha256_update(&h, in[i], strlen(in[i]));
		sha256_final(&h, d);
		sha256_hex(d, hex);
		ck_assert_str_eq(hex, want[i]);
	}
	make_synth("llama", QT_F32, path, sizeof path);
	synth_shape(&o, "tiny", NULL);
	o.n_layer = 3; /* another layout */
	snprintf(path2, sizeof path2, "%s/other.gguf", tenv_dir);
	ck_assert_int_eq(synth_write(&o, path2, NULL), 0);
	a = tenv_open_model(path);
	b = tenv_open_model(path);
	c = tenv_open_model(path2);
	ck_assert_uint_eq(strlen(a->fingerprint), 64);
	ck_assert_str_eq(a->fingerprint, b->fingerprint);
	ck_assert_str_ne(a->fingerprint, c->fingerprint);
	model_close(a);
	model_close(b);
	model_close(c);
}
END_TEST

START_TEST(seq_refuses_bad_tokens_and_overflow)
{
	struct seq_opts so;
	char path[512], cause[ERR_LEN] = "";
	struct model *m;
	struct seq *s;
	struct seq_info si;
	int32_t ids[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, bad = 100000;

	make_synth("llama", QT_F32, path, sizeof path);
	m = tenv_open_model(path);
	seq_opts_default(&so);
	so.mode = SEQ_DENSE;
	so.n_cache = 8;
	s = seq_new(m, &so, NULL);
	ck_assert_int_eq(eval_on(m, s, &bad, 1, NULL, 0, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "outside the vocabulary"));
	ck_assert_int_eq(eval_on(m, s, ids, 9, NULL, 0, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "dense cache is full"));
	seq_get_info(s, &si);
	ck_assert_int_eq(si.n_seen, 0);
	ck_assert_int_eq(eval_on(m, s, ids, 8, NULL, 0, cause), 0);
	seq_get_info(s, &si);
	ck_assert_int_eq(si.n_seen, 8);
	ck_assert_int_eq(eval_on(m, s, ids, 1, NULL, 0, cause), -1);
	seq_reset(s);
	seq_get_info(s, &si);
	ck_assert_int_eq(si.n_seen, 0);
	seq_free(s);
	model_close(m);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("model");
	TCase *tc = tcase_create("forward");
	SRunner *sr;
	int failed;

	tcase_add_unchecked_fixture(tc, setup, tenv_teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, stories_logits_match_reference);
	tcase_add_test(tc, stories_greedy_matches_reference);
	tcase_add_test(tc, stories_prefill_equals_steps);
	tcase_add_loop_test(tc, synth_llama_types_match_reference, 0, 5);
	tcase_add_loop_test(tc, synth_qwen2_types_match_reference, 0, 5);
	tcase_add_test(tc, bad_models_are_refused);
	tcase_add_test(tc, seq_refuses_bad_tokens_and_overflow);
	tcase_add_test(tc, fingerprints);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
