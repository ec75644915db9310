/*
 * test_model: the engine's forward pass against tests/reference.c, on the
 * real stories260K model and on synthetic models of every architecture
 * (and its variants: tied output, rope_freqs, sliding windows) and every
 * weight type, plus prefill-versus-decode agreement and bad-input
 * errors (unknown architectures, missing, misshapen and fused tensors).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"
#include "matmul.h"
#include "model.h"
#include "pool.h"
#include "quant.h"
#include "quant_k.h"
#include "reference.h"
#include "seq.h"
#include "sha256.h"
#include "synth.h"
#include "tenv.h"
#include "tlogits.h"

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
	lg = tlogits_prefill(m, ids, n);
	ref = tlogits_ref(tenv_stories, ids, n);
	for (t = 0; t < n; t++) {
		double e = tlogits_rel_err(lg + t * nv, ref + t * nv, nv);
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
	a = tlogits_prefill(m, ids, n);
	b = tlogits_stepwise(m, ids, n);
	for (t = 0; t < n; t++)
		ck_assert_msg(tlogits_rel_diff(a + t * nv, b + t * nv,
		    nv) < 1e-5,
		    "position %zu differs: %g", t,
		    tlogits_rel_diff(a + t * nv, b + t * nv, nv));
	free(a);
	free(b);
	free(ids);
	model_close(m);
}
END_TEST

/* Every type sinkd computes, in every architecture. */
static const uint32_t synth_types[] = { QT_F32, QT_F16, QT_BF16, QT_Q8_0,
	QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_IQ4_NL, QT_IQ4_XS, QT_Q2_K,
	QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K };
/*
 * Prefill and decode both dot quantized weights with an activation
 * quantized to 8 bits per block of 32: allow for that rounding against
 * the reference, which on these tiny random models moves logits by ~2% of
 * the largest.  Float weights see f32 activations.  Prefill and decode
 * quantize the same activations, so they must agree closely with each
 * other whatever the type.
 */
/* Float weights against the reference: f32 arithmetic only. */
static int
is_float(uint32_t type)
{
	return type == QT_F32 || type == QT_F16 || type == QT_BF16;
}

/*
 * Quantized weights against the reference: the 32-element block types
 * see activations quantized per 32 (~2% of the largest logit on these
 * tiny random models, up to 3.8% with gemma2's small soft-caps); the
 * K-quants see them quantized per 256 with one scale, as llama.cpp's Q8_K,
 * which measured up to 4.9% (gemma2 Q2_K), so they get twice the room.
 */
static double
quant_tol(uint32_t type)
{
	return qk_is_k(type) ? 1e-1 : 5e-2;
}

static double
decode_tol(uint32_t type)
{
	return is_float(type) ? 1e-5 : quant_tol(type);
}

static double
prefill_tol(uint32_t type)
{
	return is_float(type) ? 1e-4 : quant_tol(type);
}

/*
 * Prefill and decode quantize the same activations, but what they
 * quantize comes through float paths (sgemm against the attention
 * kernel) that differ by ~1e-7; a value that close to an 8-bit
 * rounding boundary (odds ~1e-7 / (1/254) each, over tens of thousands
 * of values per run) rounds the other way, and the later layers carry it
 * on.  Such flips come and go with the token ids and seeds: qwen3 showed
 * 1.7e-3 in Q8_0 and 8.7e-3 in Q4_0 at seed 42, none at 43 and 44; with
 * one sequence Q5_0 showed 2e-2 on three architectures, with another
 * Q4_1 showed 2.4e-2 on gemma2 and Q5_0 nothing.  The float types keep
 * 1e-5; a wrong row or position shows as 1e-1 and more.
 */
static double
pd_tol(uint32_t type)
{
	return is_float(type) ? 1e-5 : quant_tol(type);
}

/*
 * The synthetic variants: every architecture, and llama as Llama-3.x
 * (rope_freqs, tied output, so the lm head is the quantized embedding)
 * and as mistral (a sliding window on every layer).  Windows of 8 and
 * small soft-caps so that both matter over 48 tokens.
 */
struct variant {
	const char *name, *arch;
	int tied, rope_freqs, n_swa;
	float attn_cap, final_cap;
	int head_dim;
};

static const struct variant variants[] = {
	{ "llama", "llama", 0, 0, 0, 0, 0, 0 },
	{ "qwen2", "qwen2", 0, 0, 0, 0, 0, 0 },
	{ "llama3", "llama", 1, 1, 0, 0, 0, 0 },
	{ "mistral", "llama", 0, 0, 8, 0, 0, 0 },
	/* heads of 32 over an embedding of 64: q is 128 wide, as in
	 * Qwen3-0.6B (16 x 128 over 1024) */
	{ "qwen3", "qwen3", 0, 0, 0, 0, 0, 32 },
	{ "phi3", "phi3", 0, 0, 0, 0, 0, 0 },
	{ "gemma2", "gemma2", 1, 0, 8, 0.5f, 1.0f, 0 },
};
#define N_VARIANTS (int)(sizeof variants / sizeof variants[0])
#define N_TYPES (int)(sizeof synth_types / sizeof synth_types[0])

static void
make_variant(const struct variant *v, uint32_t type, char *path, size_t len)
{
	struct synth_opts o = { .arch = v->arch, .type = type, .seed = 42,
		.tied = v->tied, .rope_freqs = v->rope_freqs, .n_swa = v->n_swa,
		.attn_softcap = v->attn_cap, .final_softcap = v->final_cap,
		.head_dim = v->head_dim };
	char cause[ERR_LEN] = "";

	synth_shape(&o, "tiny", NULL);
	o.head_dim = v->head_dim;
	if (v->rope_freqs)
		o.rope_base = 500000.0f;
	if (qtype_block_elems(type) > 64) { /* rows of whole 256-blocks */
		o.n_embd = 256;
		o.n_head_kv = o.n_head;
		o.n_ff = 512;
		if (o.head_dim > 0) /* still wider than n_embd / n_head */
			o.head_dim = 128;
	}
	snprintf(path, len, "%s/%s-%s.gguf", tenv_dir, v->name,
	    qtype_name(type));
	ck_assert_msg(synth_write(&o, path, cause) == 0, "synth: %s", cause);
}

static void
make_synth(const char *arch, uint32_t type, char *path, size_t len)
{
	struct variant v = { .name = arch, .arch = arch };

	make_variant(&v, type, path, len);
}

static void
check_synth(const struct variant *v, int ti)
{
	uint32_t type = synth_types[ti];
	int32_t ids[48];
	char path[512];
	struct model *m;
	size_t n = sizeof ids / sizeof ids[0], nv, t, i;
	float *pre, *dec;
	double *ref, ep = 0, ed = 0, epd = 0;

	make_variant(v, type, path, sizeof path);
	m = tenv_open_model(path);
	nv = (size_t)m->hp.n_vocab;
	for (i = 0; i < n; i++)
		ids[i] = (int32_t)((i * 37 + 5) % nv);
	pre = tlogits_prefill(m, ids, n);
	dec = tlogits_stepwise(m, ids, n);
	ref = tlogits_ref(path, ids, n);
	for (t = 0; t < n; t++) {
		ep = fmax(ep, tlogits_rel_err(pre + t * nv, ref + t * nv, nv));
		ed = fmax(ed, tlogits_rel_err(dec + t * nv, ref + t * nv, nv));
		epd = fmax(epd, tlogits_rel_diff(pre + t * nv, dec + t * nv,
		    nv));
	}
	printf("%s %s: prefill error %.2e, decode error %.2e, prefill vs "
	    "decode %.2e\n", v->name, qtype_name(type), ep, ed, epd);
	ck_assert_msg(ep < prefill_tol(type), "%s prefill error %g",
	    qtype_name(type), ep);
	ck_assert_msg(ed < decode_tol(type), "%s decode error %g",
	    qtype_name(type), ed);
	/*
	 * At position 0 attention has one row of weight exactly 1 on both
	 * paths: the activations are identical, so no rounding can flip and
	 * the two must agree to float rounding whatever the type.
	 */
	ck_assert_msg(tlogits_rel_diff(pre, dec, nv) < 1e-5, "%s prefill vs "
	    "decode at position 0: %g", qtype_name(type),
	    tlogits_rel_diff(pre, dec, nv));
	ck_assert_msg(epd < pd_tol(type), "%s prefill vs decode %g",
	    qtype_name(type), epd);
	free(pre);
	free(dec);
	free(ref);
	model_close(m);
}

/* Variant _i / N_TYPES in type _i % N_TYPES. */
START_TEST(synth_archs_types_match_reference)
{
	check_synth(&variants[_i / N_TYPES], _i % N_TYPES);
}
END_TEST

/* The variants' layers: which attend through a window, what is tied. */
START_TEST(synth_archs_layout)
{
	char path[512];
	struct model *m;
	int i;

	for (i = 0; i < N_VARIANTS; i++) {
		make_variant(&variants[i], QT_Q8_0, path, sizeof path);
		m = tenv_open_model(path);
		ck_assert_str_eq(m->hp.arch->name, variants[i].arch);
		ck_assert_int_eq(m->hp.n_swa, variants[i].n_swa);
		ck_assert_int_eq(m->layers[0].swa, variants[i].n_swa > 0);
		/* gemma2: odd layers see everything, mistral: none does */
		ck_assert_int_eq(m->layers[1].swa, variants[i].n_swa > 0 &&
		    strcmp(variants[i].arch, "gemma2") != 0);
		ck_assert_int_eq(m->output.data == m->tok_embd.data,
		    variants[i].tied);
		ck_assert_int_eq(m->hp.rope_freqs != NULL,
		    variants[i].rope_freqs);
		ck_assert_int_eq(m->hp.head_dim, variants[i].head_dim > 0 ?
		    variants[i].head_dim : m->hp.n_embd / m->hp.n_head);
		model_close(m);
	}
}
END_TEST

/*
 * rope.scaling.type llama3 keys give the factors the real Llama-3.1
 * converter put in ../shared/ref/llama3-F16.gguf's rope_freqs.weight
 * (same base 500000 and head size 64); and synth's rope_freqs tensor.
 */
START_TEST(llama3_rope_keys_match_rope_freqs)
{
	struct synth_opts o = { .arch = "llama", .type = QT_F32, .seed = 3,
		.rope_base = 500000.0f, .rope_llama3_keys = 1 };
	char path[512], ref[4096];
	const char *shared = getenv("SINKD_SHARED");
	struct model *k, *t, *r;
	int i, half;

	synth_shape(&o, "tiny", NULL);
	o.n_embd = 256;
	o.n_ff = 256;
	o.n_head = 4;
	snprintf(path, sizeof path, "%s/llama3-keys.gguf", tenv_dir);
	ck_assert_int_eq(synth_write(&o, path, NULL), 0);
	k = tenv_open_model(path);
	o.rope_llama3_keys = 0;
	o.rope_freqs = 1;
	snprintf(path, sizeof path, "%s/llama3-freqs.gguf", tenv_dir);
	ck_assert_int_eq(synth_write(&o, path, NULL), 0);
	t = tenv_open_model(path);
	half = k->hp.n_rot / 2;
	ck_assert_int_eq(half, 32);
	ck_assert_ptr_nonnull(k->hp.rope_freqs);
	for (i = 0; i < half; i++)
		ck_assert_float_eq_tol(k->hp.rope_freqs[i],
		    t->hp.rope_freqs[i], 1e-5f * t->hp.rope_freqs[i]);
	/* The ends are 1 and the factor; the middle is interpolated. */
	ck_assert_float_eq(k->hp.rope_freqs[0], 1.0f);
	ck_assert_float_eq(k->hp.rope_freqs[half - 1], 8.0f);
	snprintf(ref, sizeof ref, "%s/ref/llama3-F16.gguf",
	    shared != NULL ? shared : "../shared");
	if (access(ref, R_OK) == 0) {
		r = tenv_open_model(ref);
		for (i = 0; i < half; i++)
			ck_assert_msg(fabsf(k->hp.rope_freqs[i] -
			    r->hp.rope_freqs[i]) <= 1e-5f * r->hp.rope_freqs[i],
			    "factor %d: %g from keys, %g in %s", i,
			    (double)k->hp.rope_freqs[i],
			    (double)r->hp.rope_freqs[i], ref);
		model_close(r);
	} else {
		printf("SKIP: %s not found (set SINKD_SHARED)\n", ref);
	}
	model_close(k);
	model_close(t);
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
	/* One no branch computes: IQ2_XS. */
	{
		struct synth_opts o = { .arch = "llama", .type = QT_IQ4_XS,
			.output_type = 17 /* IQ2_XS */ };
		synth_shape(&o, "tiny", NULL);
		o.n_embd = 256;
		o.n_head_kv = o.n_head;
		o.n_ff = 256;
		snprintf(path, sizeof path, "%s/iq2xs.gguf", tenv_dir);
		ck_assert_int_eq(synth_write(&o, path, NULL), 0);
		expect_open_error(path, "'output.weight' has type IQ2_XS, "
		    "which sinkd does not support yet (supported: F32");
	}
}
END_TEST

/*
 * A copy of GGUF src into dst with changes: key `set_key` (if not NULL)
 * set to the string set_str or, with set_str NULL, dropped; tensor
 * `drop` left out; tensor `shrink` given ne[1] / 2 rows; tensor `add`
 * (1-D, 4 floats) added.
 */
struct rewrite {
	const char *set_key, *set_str, *drop, *shrink, *add;
};

static int
copy_fill(void *arg, void *buf, size_t nbytes, char *cause)
{
	(void)cause;
	if (arg != NULL)
		memcpy(buf, arg, nbytes);
	else
		memset(buf, 0, nbytes);
	return 0;
}

static void
rewrite_gguf(const char *src, const char *dst, const struct rewrite *rw)
{
	char cause[ERR_LEN] = "", name[256];
	struct gguf_file *g = gguf_open(src, cause);
	struct gguf_writer *w = gguf_writer_new();
	uint64_t i, ne[4];
	int set = 0;

	ck_assert_msg(g != NULL, "%s", cause);
	for (i = 0; i < gguf_n_kv(g); i++) {
		const struct gguf_kv *kv = gguf_kv_at(g, i);
		snprintf(name, sizeof name, "%.*s", (int)kv->key.len,
		    kv->key.ptr);
		if (rw->set_key != NULL && strcmp(name, rw->set_key) == 0) {
			if (rw->set_str != NULL)
				gguf_writer_add_str(w, name, rw->set_str);
			set = 1;
			continue;
		}
		gguf_writer_copy_kv(w, kv);
	}
	if (rw->set_key != NULL && !set && rw->set_str != NULL)
		gguf_writer_add_str(w, rw->set_key, rw->set_str);
	for (i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		snprintf(name, sizeof name, "%.*s", (int)t->name.len,
		    t->name.ptr);
		if (rw->drop != NULL && strcmp(name, rw->drop) == 0)
			continue;
		memcpy(ne, t->ne, sizeof ne);
		if (rw->shrink != NULL && strcmp(name, rw->shrink) == 0)
			ne[1] /= 2;
		gguf_writer_add_tensor(w, name, t->n_dims, ne, t->type,
		    copy_fill, (void *)t->data);
	}
	if (rw->add != NULL) {
		ne[0] = 4;
		gguf_writer_add_tensor(w, rw->add, 1, ne, QT_F32, copy_fill,
		    NULL);
	}
	ck_assert_msg(gguf_writer_write(w, dst, cause) == 0, "%s", cause);
	gguf_writer_free(w);
	gguf_close(g);
}

static void
expect_rewrite_error(const char *arch, const struct rewrite *rw,
    const char *needle)
{
	char src[512], dst[600];
	struct variant v = { .name = arch, .arch = arch };

	if (strcmp(arch, "gemma2") == 0)
		v.n_swa = 8;
	make_variant(&v, QT_Q8_0, src, sizeof src);
	snprintf(dst, sizeof dst, "%s/bad-%s.gguf", tenv_dir, arch);
	rewrite_gguf(src, dst, rw);
	expect_open_error(dst, needle);
}

START_TEST(bad_arch_files_are_refused)
{
	struct rewrite rw;

	/* Unknown: named, with the supported ones listed. */
	rw = (struct rewrite){ .set_key = "general.architecture",
		.set_str = "mamba" };
	expect_rewrite_error("llama", &rw, "architecture 'mamba' is not "
	    "supported (supported: llama, qwen2, qwen3, phi3, gemma2)");
	/* qwen2's tensors under qwen3's name: the q/k norms are missing. */
	rw = (struct rewrite){ .set_key = "general.architecture",
		.set_str = "qwen3" };
	expect_rewrite_error("qwen2", &rw, "qwen3.context_length is missing");
	rw = (struct rewrite){ .drop = "blk.1.attn_k_norm.weight" };
	expect_rewrite_error("qwen3", &rw,
	    "tensor 'blk.1.attn_k_norm.weight' is missing");
	rw = (struct rewrite){ .drop = "blk.0.attn_qkv.weight" };
	expect_rewrite_error("phi3", &rw,
	    "tensor 'blk.0.attn_qkv.weight' is missing");
	/* Fused tensors with the wrong row count: the expected shape. */
	rw = (struct rewrite){ .shrink = "blk.1.ffn_up.weight" };
	expect_rewrite_error("phi3", &rw, "tensor 'blk.1.ffn_up.weight' has "
	    "shape [64, 96, 1, 1], expected [64, 192]");
	rw = (struct rewrite){ .shrink = "blk.0.attn_qkv.weight" };
	expect_rewrite_error("phi3", &rw, "tensor 'blk.0.attn_qkv.weight' has "
	    "shape [64, 64, 1, 1], expected [64, 128]");
	rw = (struct rewrite){ .drop = "blk.0.post_ffw_norm.weight" };
	expect_rewrite_error("gemma2", &rw,
	    "tensor 'blk.0.post_ffw_norm.weight' is missing");
	rw = (struct rewrite){ .set_key = "gemma2.attention.sliding_window" };
	expect_rewrite_error("gemma2", &rw,
	    "gemma2.attention.sliding_window is missing");
	/* What this code cannot run is refused by name. */
	rw = (struct rewrite){ .add = "rope_factors_long.weight" };
	expect_rewrite_error("phi3", &rw, "tensor 'rope_factors_long.weight' "
	    "(phi3 rope scaling) is not supported");
	rw = (struct rewrite){ .set_key = "phi3.rope.scaling.type",
		.set_str = "longrope" };
	expect_rewrite_error("phi3", &rw, "phi3.rope.scaling.type 'longrope' "
	    "is not supported (supported: none, linear)");
	rw = (struct rewrite){ .set_key = "llama.rope.scaling.type",
		.set_str = "yarn" };
	expect_rewrite_error("llama", &rw, "(supported: none, linear, "
	    "llama3)");
	rw = (struct rewrite){ .add = "rope_freqs.weight" };
	expect_rewrite_error("qwen2", &rw,
	    "tensor 'rope_freqs.weight' is not used by qwen2");
	/* rope_freqs of the wrong length (4 for 8 pairs). */
	expect_rewrite_error("llama", &rw, "tensor 'rope_freqs.weight' has "
	    "shape [4, 1, 1, 1], expected [8, 1]");
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
	tcase_add_loop_test(tc, synth_archs_types_match_reference, 0,
	    N_VARIANTS * N_TYPES);
	tcase_add_test(tc, synth_archs_layout);
	tcase_add_test(tc, llama3_rope_keys_match_rope_freqs);
	tcase_add_test(tc, bad_arch_files_are_refused);
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
