/*
 * test_stream: the attention-sink cache against the naive StreamingLLM
 * cache of tests/reference.c (every cached key re-rotated to its place
 * on every step), over streams several times the cache size: streaming,
 * window and pinned caches, prefill chunks that evict as they go, f16
 * storage, the recompute baseline, streams shifted tens of millions of
 * tokens on, and the errors for options that cannot work.
 */
#include <check.h>
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "pool.h"
#include "quant.h"
#include "reference.h"
#include "seq.h"
#include "synth.h"
#include "tenv.h"

#define TOL 1e-5 /* engine (float) against the naive cache (double) */

static const char story_text[] =
    "Once upon a time, there was a little girl named Lily. She loved to "
    "play outside in the park with her friends. One day, she saw a big red "
    "ball under a tree. She wanted to play with it, but it was too high. "
    "Lily asked her mom for help. Her mom said, \"Let's get a stick and "
    "try to reach it.\" They found a long stick and tried to get the ball.";

static void
setup(void)
{
	tenv_setup("stream");
}

static void
make_synth(const char *arch, char *path, size_t len)
{
	struct synth_opts o = { .arch = arch, .type = QT_F32, .seed = 7 };
	char cause[ERR_LEN] = "";

	synth_shape(&o, "tiny", NULL);
	snprintf(path, len, "%s/%s.gguf", tenv_dir, arch);
	if (access(path, R_OK) != 0)
		ck_assert_msg(synth_write(&o, path, cause) == 0, "%s", cause);
}

/* n token ids: the story's tokens (BOS first) over and over. */
static int32_t *
story_ids(const struct model *m, size_t n)
{
	int32_t *ids = malloc(n * sizeof *ids), *t;
	size_t nt, i;

	ck_assert_int_eq(tok_encode(m->tok, story_text, strlen(story_text), 1,
	    &t, &nt, NULL), 0);
	for (i = 0; i < n; i++)
		ids[i] = i < nt ? t[i] : t[1 + (i - nt) % (nt - 1)];
	free(t);
	return ids;
}

/* Varied ids for synthetic models (no tokenizer text needed). */
static int32_t *
synth_ids(const struct model *m, size_t n)
{
	int32_t *ids = malloc(n * sizeof *ids);
	size_t i;

	for (i = 0; i < n; i++)
		ids[i] = (int32_t)((i * 37 + 5 + i * i % 11) % (size_t)
		    m->hp.n_vocab);
	return ids;
}

static struct seq_opts
opts(enum seq_mode mode, int cache, int sinks, int pin, enum kv_type kv)
{
	struct seq_opts o;

	seq_opts_default(&o);
	o.mode = mode;
	o.n_cache = cache;
	o.n_sink = sinks;
	o.n_pin = pin;
	o.kv_type = kv;
	return o;
}

/*
 * Engine logits after every token of ids, fed in chunks whose sizes
 * cycle through chunk[0..nc).
 */
static float *
engine_stream(struct model *m, const struct seq_opts *o, const int32_t *ids,
    size_t n, const size_t *chunk, size_t nc)
{
	size_t nv = (size_t)m->hp.n_vocab, i, c, k = 0;
	float *lg = malloc(n * nv * sizeof *lg);
	char cause[ERR_LEN] = "";
	struct seq *s = seq_new(m, o, cause);
	struct seq_work *w = seq_work_new(m, 64, cause);

	ck_assert_msg(s != NULL && w != NULL, "%s", cause);
	for (i = 0; i < n; i += c) {
		c = chunk[k++ % nc];
		c = c < n - i ? c : n - i;
		ck_assert_msg(seq_eval(s, w, tenv_pool, ids + i, c,
		    lg + i * nv, 1, cause) == 0, "%s", cause);
	}
	seq_work_free(w);
	seq_free(s);
	return lg;
}

static double *
naive_stream(const char *path, int cap, int sinks, int f16,
    const int32_t *ids, size_t n)
{
	struct ref_model *r = ref_open(path, NULL);
	struct ref_stream *rs;
	size_t nv, i;
	double *lg;

	ck_assert_ptr_nonnull(r);
	nv = (size_t)ref_n_vocab(r);
	lg = malloc(n * nv * sizeof *lg);
	rs = ref_stream_new(r, cap, sinks, f16);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(ref_stream_step(rs, ids[i], lg + i * nv), 0);
	ref_stream_free(rs);
	ref_close(r);
	return lg;
}

/* Worst over the steps of max |a - b| / max |b| within a step. */
static double
worst_err(const float *a, const double *b, size_t n, size_t nv)
{
	double worst = 0.0, mx, md;
	size_t t, i;

	for (t = 0; t < n; t++) {
		mx = 1e-30;
		md = 0.0;
		for (i = 0; i < nv; i++) {
			mx = fmax(mx, fabs(b[t * nv + i]));
			md = fmax(md, fabs((double)a[t * nv + i] - b[t * nv + i]));
		}
		worst = fmax(worst, md / mx);
	}
	return worst;
}

static double
worst_diff(const float *a, const float *b, size_t n, size_t nv)
{
	double *bd = malloc(n * nv * sizeof *bd), e;
	size_t i;

	for (i = 0; i < n * nv; i++)
		bd[i] = b[i];
	e = worst_err(a, bd, n, nv);
	free(bd);
	return e;
}

static const size_t one[] = { 1 };
static const size_t mixed[] = { 9, 64, 3, 100, 1, 13, 8, 2 };

/*
 * The engine in one configuration against the naive cache, fed token by
 * token and in mixed chunks; and the two feeds against each other.
 */
static void
check_against_naive_pd(const char *path, const char *what,
    const struct seq_opts *o, int naive_sinks, size_t n, double tol,
    double pd_tol)
{
	struct model *m = tenv_open_model(path);
	size_t nv = (size_t)m->hp.n_vocab;
	int32_t *ids = tenv_have_stories && strcmp(path, tenv_stories) == 0 ?
	    story_ids(m, n) : synth_ids(m, n);
	float *dec = engine_stream(m, o, ids, n, one, 1);
	float *pre = engine_stream(m, o, ids, n, mixed,
	    sizeof mixed / sizeof mixed[0]);
	double *ref = naive_stream(path, o->n_cache, naive_sinks,
	    o->kv_type == KV_F16, ids, n);
	double ed = worst_err(dec, ref, n, nv), ep = worst_err(pre, ref, n, nv);
	double epd = worst_diff(pre, dec, n, nv);

	printf("%s: cache %d, %d sinks, %zu tokens: decode vs naive %.2e, "
	    "chunks vs naive %.2e, chunks vs decode %.2e\n", what, o->n_cache,
	    naive_sinks, n, ed, ep, epd);
	ck_assert_msg(ed <= tol, "%s: decode vs naive %g", what, ed);
	ck_assert_msg(ep <= tol, "%s: chunks vs naive %g", what, ep);
	ck_assert_msg(epd <= pd_tol, "%s: chunks vs decode %g", what, epd);
	free(dec);
	free(pre);
	free(ref);
	free(ids);
	model_close(m);
}

static void
check_against_naive(const char *path, const char *what,
    const struct seq_opts *o, int naive_sinks, size_t n, double tol)
{
	check_against_naive_pd(path, what, o, naive_sinks, n, tol, TOL);
}

START_TEST(streaming_matches_naive_stories)
{
	struct seq_opts o = opts(SEQ_STREAMING, 64, 4, 0, KV_F32);

	NEED_STORIES();
	check_against_naive(tenv_stories, "stories260K streaming", &o, 4,
	    5 * 64, TOL);
}
END_TEST

START_TEST(streaming_matches_naive_synth)
{
	static const char *const arch[] = { "llama", "qwen2" };
	struct seq_opts o = opts(SEQ_STREAMING, 24, 4, 0, KV_F32);
	char path[512], what[64];

	make_synth(arch[_i], path, sizeof path);
	snprintf(what, sizeof what, "%s streaming", arch[_i]);
	check_against_naive(path, what, &o, 4, 5 * 24, TOL);
	o = opts(SEQ_STREAMING, 24, 1, 0, KV_F32);
	snprintf(what, sizeof what, "%s one sink", arch[_i]);
	check_against_naive(path, what, &o, 1, 5 * 24, TOL);
	o = opts(SEQ_WINDOW, 20, -1, 0, KV_F32);
	snprintf(what, sizeof what, "%s window", arch[_i]);
	check_against_naive(path, what, &o, 0, 5 * 20, TOL);
	o = opts(SEQ_STREAMING, 32, 4, 10, KV_F32);
	snprintf(what, sizeof what, "%s pinned 10", arch[_i]);
	check_against_naive(path, what, &o, 10, 5 * 32, TOL);
}
END_TEST

/*
 * Half-float storage: the naive cache rounds raw keys, the engine
 * rotated ones, so they agree to f16 precision.  Chunked and
 * token-by-token feeds compute K and V through sgemm and matvec, which
 * differ in the last float bit; now and then that puts a value on the
 * other side of a half-float rounding step.  stories260K is touchy:
 * f16 storage alone moves its logits by up to ~2e-3 (measured against
 * f32 storage with no eviction at all), so its bounds are wider; a
 * wrong row or position shows as errors of 1e-1 and more.
 */
START_TEST(streaming_f16)
{
	struct seq_opts o = opts(SEQ_STREAMING, 24, 4, 0, KV_F16);
	char path[512];

	make_synth("llama", path, sizeof path);
	check_against_naive_pd(path, "llama f16", &o, 4, 5 * 24, 2e-3, 1e-4);
	if (tenv_have_stories) {
		o.n_cache = 64;
		check_against_naive_pd(tenv_stories, "stories260K f16", &o, 4,
		    5 * 64, 5e-3, 2e-3);
	}
}
END_TEST

/* Dense is the plain forward pass: the naive cache never evicting. */
START_TEST(dense_matches_naive)
{
	struct seq_opts o = opts(SEQ_DENSE, 100, -1, 0, KV_F32);
	char path[512];

	make_synth("qwen2", path, sizeof path);
	check_against_naive(path, "qwen2 dense", &o, 0, 100, TOL);
}
END_TEST

/*
 * Recompute: once the cache is full, each token's logits are those of a
 * fresh forward pass over the sinks, the window's newest tokens and it.
 */
static void
check_recompute(const char *path, const char *what)
{
	struct seq_opts o = opts(SEQ_RECOMPUTE, 16, 2, 0, KV_F32);
	size_t n = 48, nv, t, i, cap = 16, s = 2;
	int32_t *ids, win[16];
	struct model *m;
	struct ref_model *r;
	float *got;
	double *lg, *ref, e = 0.0;

	m = tenv_open_model(path);
	nv = (size_t)m->hp.n_vocab;
	ids = synth_ids(m, n);
	got = engine_stream(m, &o, ids, n, mixed, sizeof mixed / sizeof
	    mixed[0]);
	r = ref_open(path, NULL);
	lg = malloc(cap * nv * sizeof *lg);
	ref = malloc(n * nv * sizeof *ref);
	for (t = 0; t < n; t++) {
		size_t len = t + 1 < cap ? t + 1 : cap;
		for (i = 0; i < len; i++)
			win[i] = t + 1 <= cap ? ids[i] : i < s ? ids[i] :
			    ids[t + 1 - (cap - i)];
		ck_assert_int_eq(ref_forward(r, win, len, lg, NULL), 0);
		memcpy(ref + t * nv, lg + (len - 1) * nv, nv * sizeof *lg);
	}
	e = worst_err(got, ref, n, nv);
	printf("%s recompute: cache 16, 2 sinks, 48 tokens vs fresh passes "
	    "%.2e\n", what, e);
	ck_assert_msg(e <= TOL, "%s recompute vs fresh passes %g", what, e);
	free(got);
	free(lg);
	free(ref);
	free(ids);
	ref_close(r);
	model_close(m);
}

START_TEST(recompute_matches_fresh_passes)
{
	char path[512];

	make_synth("llama", path, sizeof path);
	check_recompute(path, "llama");
}
END_TEST

/*
 * Sliding-window layers (gemma2's even layers; every layer of a
 * mistral-style llama) under every cache mode.  A window of 6 inside
 * caches of 16-24 with 2-10 sinks: the layer sees the entries within 6
 * cache positions of the query, sinks only while that close (see
 * seq_fwd.c).  The naive cache does the same by its own code: it
 * recomputes every position as a place in the cache and masks by it.
 */
static void
make_swa(const char *arch, char *path, size_t len)
{
	struct synth_opts o = { .arch = arch, .type = QT_F32, .seed = 11,
		.n_swa = 6, .attn_softcap = 0.5f, .final_softcap = 1.0f,
		.tied = strcmp(arch, "gemma2") == 0 };
	char cause[ERR_LEN] = "";

	synth_shape(&o, "tiny", NULL);
	snprintf(path, len, "%s/%s-swa.gguf", tenv_dir, arch);
	if (access(path, R_OK) != 0)
		ck_assert_msg(synth_write(&o, path, cause) == 0, "%s", cause);
}

START_TEST(sliding_window_every_mode)
{
	static const char *const arch[] = { "gemma2", "llama" };
	struct seq_opts o;
	char path[512], what[64];

	make_swa(arch[_i], path, sizeof path);
	o = opts(SEQ_STREAMING, 24, 4, 0, KV_F32);
	snprintf(what, sizeof what, "%s swa streaming", arch[_i]);
	check_against_naive(path, what, &o, 4, 5 * 24, TOL);
	o = opts(SEQ_STREAMING, 24, 10, 0, KV_F32);
	snprintf(what, sizeof what, "%s swa 10 sinks", arch[_i]);
	check_against_naive(path, what, &o, 10, 5 * 24, TOL);
	o = opts(SEQ_WINDOW, 20, -1, 0, KV_F32);
	snprintf(what, sizeof what, "%s swa window", arch[_i]);
	check_against_naive(path, what, &o, 0, 5 * 20, TOL);
	o = opts(SEQ_DENSE, 100, -1, 0, KV_F32);
	snprintf(what, sizeof what, "%s swa dense", arch[_i]);
	check_against_naive(path, what, &o, 0, 100, TOL);
	/* f16 flips as in streaming_f16, a little louder with soft-caps. */
	o = opts(SEQ_STREAMING, 24, 4, 0, KV_F16);
	snprintf(what, sizeof what, "%s swa f16", arch[_i]);
	check_against_naive_pd(path, what, &o, 4, 5 * 24, 2e-3, 5e-4);
	snprintf(what, sizeof what, "%s swa", arch[_i]);
	check_recompute(path, what);
}
END_TEST

/* What the probe saw: the worst breach of the window, and the calls. */
struct swa_probe {
	int n_swa, dense;
	atomic_int calls, breaches, full_ok; /* probes run on several threads */
	int64_t step;
};

static void
swa_probe_fn(void *arg, int layer, int head, const float *wts, int32_t n)
{
	struct swa_probe *p = arg;
	int32_t j, nz = 0;

	(void)head;
	p->calls++;
	for (j = 0; j < n; j++) {
		nz += wts[j] != 0.0f;
		/* dense: slot j is position j, the query is at n - 1 */
		if (layer % 2 == 0 && p->dense && wts[j] != 0.0f &&
		    n - 1 - j >= p->n_swa)
			p->breaches++;
	}
	if (layer % 2 == 0 && nz > p->n_swa)
		p->breaches++;
	/* the full-attention layers do see every slot */
	if (layer % 2 == 1 && nz != n)
		p->full_ok = 0;
}

/* An SWA layer never attends beyond its window, whatever the mode. */
START_TEST(sliding_window_layers_stay_in_window)
{
	static const enum seq_mode modes[] = { SEQ_STREAMING, SEQ_WINDOW,
		SEQ_RECOMPUTE, SEQ_DENSE };
	struct swa_probe p;
	struct seq_opts o;
	struct model *m;
	struct seq *s;
	struct seq_work *w;
	char path[512], cause[ERR_LEN] = "";
	int32_t *ids;
	size_t i, n = 60;
	float *lg;

	make_swa("gemma2", path, sizeof path);
	m = tenv_open_model(path);
	ids = synth_ids(m, n);
	lg = malloc((size_t)m->hp.n_vocab * sizeof *lg);
	o = opts(modes[_i], _i == 3 ? 64 : 20, _i == 0 || _i == 2 ? 4 : -1,
	    0, KV_F32);
	memset(&p, 0, sizeof p);
	p.n_swa = m->hp.n_swa;
	p.dense = modes[_i] == SEQ_DENSE;
	atomic_init(&p.calls, 0);
	atomic_init(&p.breaches, 0);
	atomic_init(&p.full_ok, 1);
	s = seq_new(m, &o, cause);
	w = seq_work_new(m, 0, cause);
	ck_assert_msg(s != NULL && w != NULL, "%s", cause);
	seq_set_probe(s, swa_probe_fn, &p);
	ck_assert_int_eq(seq_eval(s, w, tenv_pool, ids, 60 < o.n_cache ? 60 :
	    (size_t)o.n_cache, lg, 0, cause), 0);
	for (i = (size_t)o.n_cache; i < n && !p.dense; i++)
		ck_assert_int_eq(seq_eval(s, w, tenv_pool, ids + i, 1, lg, 0,
		    cause), 0);
	printf("gemma2 %s: %d probe calls, %d window breaches\n",
	    seq_mode_name(modes[_i]), atomic_load(&p.calls),
	    atomic_load(&p.breaches));
	ck_assert_int_gt(atomic_load(&p.calls), 0);
	ck_assert_int_eq(atomic_load(&p.breaches), 0);
	ck_assert(atomic_load(&p.full_ok));
	seq_work_free(w);
	seq_free(s);
	free(lg);
	free(ids);
	model_close(m);
}
END_TEST

/*
 * Positions stay exact far into a stream: a copy of the stream moved
 * ~30 million tokens on gives the same logits as the original, token by
 * token and in chunks.  Float positions would be off by whole radians.
 */
START_TEST(shifted_stream_is_exact)
{
	struct seq_opts o = opts(SEQ_STREAMING, 24, 4, 0, KV_F32);
	size_t n = 120, nv, i, c, k = 0;
	int64_t d = 20 * (30000000 / 20);
	struct seq *a, *b;
	struct seq_work *w;
	struct seq_info ia, ib;
	char path[512], cause[ERR_LEN] = "";
	struct model *m;
	int32_t *ids;
	float *la, *lb;
	double e;

	make_synth(_i ? "qwen2" : "llama", path, sizeof path);
	m = tenv_open_model(path);
	nv = (size_t)m->hp.n_vocab;
	ids = synth_ids(m, n);
	a = seq_new(m, &o, NULL);
	b = seq_new(m, &o, NULL);
	w = seq_work_new(m, 64, NULL);
	la = malloc(n * nv * sizeof *la);
	lb = malloc(n * nv * sizeof *lb);
	ck_assert_int_eq(seq_eval(a, w, tenv_pool, ids, 60, NULL, 0, NULL), 0);
	ck_assert_int_eq(seq_eval(b, w, tenv_pool, ids, 60, NULL, 0, NULL), 0);
	ck_assert_int_eq(seq_shift_stream(b, 7, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "multiple of the window"));
	ck_assert_msg(seq_shift_stream(b, d, cause) == 0, "%s", cause);
	for (i = 60; i < n; i += c) {
		c = mixed[k++ % (sizeof mixed / sizeof mixed[0])];
		c = c < n - i ? c : n - i;
		ck_assert_int_eq(seq_eval(a, w, tenv_pool, ids + i, c,
		    la + i * nv, 1, NULL), 0);
		ck_assert_int_eq(seq_eval(b, w, tenv_pool, ids + i, c,
		    lb + i * nv, 1, NULL), 0);
	}
	seq_get_info(a, &ia);
	seq_get_info(b, &ib);
	ck_assert_int_eq(ib.n_seen - ia.n_seen, d);
	ck_assert_int_eq(ib.n_evicted - ia.n_evicted, d);
	e = worst_diff(lb + 60 * nv, la + 60 * nv, n - 60, nv);
	printf("stream shifted by %lld tokens: logits differ by %.2e\n",
	    (long long)d, e);
	ck_assert_msg(e <= TOL, "shifted stream differs by %g", e);
	free(la);
	free(lb);
	free(ids);
	seq_work_free(w);
	seq_free(a);
	seq_free(b);
	model_close(m);
}
END_TEST

/* Every chunk of a into b, with the stream position and the slots' tokens. */
static void
copy_state(const struct seq *a, struct seq *b, int all, const struct model *m)
{
	size_t bytes = seq_chunk_bytes(a);
	char *buf = malloc(bytes), cause[ERR_LEN] = "";
	struct seq_info si;
	int32_t c;
	int l;

	for (l = 0; l < m->hp.n_layer; l++)
		for (c = 0; c < seq_n_chunks(a); c++) {
			if (!all && !seq_chunk_dirty(a, l, c))
				continue;
			seq_chunk_get(a, l, c, buf);
			seq_chunk_set(b, l, c, buf);
		}
	seq_get_info(a, &si);
	ck_assert_msg(seq_restore(b, si.n_seen, seq_tokens(a), cause) == 0,
	    "%s", cause);
	free(buf);
}

/* n tokens into s, the logits of each into lg. */
static void
feed(struct seq *s, struct seq_work *w, const int32_t *ids, size_t n,
    float *lg)
{
	ck_assert_int_eq(seq_eval(s, w, tenv_pool, ids, n, lg, 1, NULL), 0);
}

/*
 * A snapshot restored into a fresh sequence continues bit for bit, in
 * every mode and KV type; after seq_clean only the chunks the next
 * tokens wrote are dirty, and those alone bring a copy up to date.
 */
START_TEST(snapshot_restore_is_exact)
{
	static const enum seq_mode modes[] = { SEQ_STREAMING, SEQ_STREAMING,
		SEQ_WINDOW, SEQ_RECOMPUTE, SEQ_DENSE };
	static const enum kv_type kvs[] = { KV_F32, KV_F16, KV_F32, KV_F32,
		KV_F32 };
	struct seq_opts o = opts(modes[_i], 100, modes[_i] == SEQ_STREAMING ?
	    4 : -1, 0, kvs[_i]);
	size_t n = modes[_i] == SEQ_DENSE ? 70 : 260, nv, k = 12;
	struct seq *a, *b, *c;
	struct seq_work *w;
	char path[512];
	struct model *m;
	int32_t *ids, ch, dirty = 0;
	float *la, *lb;
	int l;

	make_synth("llama", path, sizeof path);
	m = tenv_open_model(path);
	nv = (size_t)m->hp.n_vocab;
	ids = synth_ids(m, n + 2 * k);
	a = seq_new(m, &o, NULL);
	b = seq_new(m, &o, NULL);
	c = seq_new(m, &o, NULL);
	w = seq_work_new(m, 64, NULL);
	la = malloc(k * nv * sizeof *la);
	lb = malloc(k * nv * sizeof *lb);
	feed(a, w, ids, n, NULL);
	copy_state(a, b, 1, m);
	copy_state(a, c, 1, m);
	seq_clean(a);
	feed(a, w, ids + n, k, la);
	feed(b, w, ids + n, k, lb);
	ck_assert_msg(memcmp(la, lb, k * nv * sizeof *la) == 0,
	    "mode %d: restored logits differ", _i);
	for (l = 0; l < m->hp.n_layer; l++)
		for (ch = 0; ch < seq_n_chunks(a); ch++)
			dirty += seq_chunk_dirty(a, l, ch);
	ck_assert_int_gt(dirty, 0);
	ck_assert_int_le(dirty, modes[_i] == SEQ_RECOMPUTE ? 2 *
	    seq_n_chunks(a) : 2 * m->hp.n_layer);
	copy_state(a, c, 0, m); /* the dirty chunks only */
	feed(a, w, ids + n + k, k, la);
	feed(c, w, ids + n + k, k, lb);
	ck_assert_msg(memcmp(la, lb, k * nv * sizeof *la) == 0,
	    "mode %d: incrementally restored logits differ", _i);
	printf("snapshot mode %s/%s: restored exactly; %d dirty chunks "
	    "after %zu tokens\n", seq_mode_name(modes[_i]),
	    seq_kv_name(kvs[_i]), dirty, k);
	free(la);
	free(lb);
	free(ids);
	seq_work_free(w);
	seq_free(a);
	seq_free(b);
	seq_free(c);
	model_close(m);
}
END_TEST

/* Counters and the memory report. */
START_TEST(info_reports_memory_and_eviction)
{
	struct seq_opts o = opts(SEQ_STREAMING, 40, -1, 0, KV_F16);
	char path[512];
	struct model *m;
	struct seq *s;
	struct seq_work *w;
	struct seq_info si;
	int32_t *ids;

	make_synth("llama", path, sizeof path);
	m = tenv_open_model(path);
	ids = synth_ids(m, 100);
	s = seq_new(m, &o, NULL);
	w = seq_work_new(m, 0, NULL);
	ck_assert_int_eq(seq_eval(s, w, tenv_pool, ids, 100, NULL, 0, NULL), 0);
	seq_get_info(s, &si);
	ck_assert_int_eq(si.n_sink, 4);
	ck_assert_int_eq(si.n_cache, 40);
	ck_assert_int_eq(si.n_cached, 40);
	ck_assert_int_eq(si.n_seen, 100);
	ck_assert_int_eq(si.n_evicted, 60);
	/* tiny: 2 KV heads of 16, 2 bytes each, K and V. */
	ck_assert_uint_eq(si.token_layer_bytes, 2 * 2 * 16 * 2);
	ck_assert_uint_eq(si.bytes, 40 * (2 * si.token_layer_bytes + 4));
	seq_reset(s);
	seq_get_info(s, &si);
	ck_assert_int_eq(si.n_cached, 0);
	ck_assert_int_eq(si.n_evicted, 0);
	free(ids);
	seq_work_free(w);
	seq_free(s);
	model_close(m);
}
END_TEST

static void
expect_bad(const struct model *m, struct seq_opts o, const char *what)
{
	char cause[ERR_LEN] = "";

	ck_assert_ptr_null(seq_new(m, &o, cause));
	ck_assert_msg(strstr(cause, what) != NULL, "'%s' lacks '%s'", cause,
	    what);
}

START_TEST(bad_options_are_named)
{
	char path[512];
	struct model *m;
	struct seq_opts o;
	enum seq_mode mode;
	enum kv_type kt;

	make_synth("llama", path, sizeof path);
	m = tenv_open_model(path);
	expect_bad(m, opts(SEQ_STREAMING, 4, 4, 0, KV_F32),
	    "4 sinks do not fit a cache of 4");
	expect_bad(m, opts(SEQ_STREAMING, 8, 9, 0, KV_F32),
	    "9 sinks do not fit a cache of 8");
	expect_bad(m, opts(SEQ_STREAMING, 16, 4, 16, KV_F32),
	    "pinned prefix of 16 tokens does not fit a cache of 16");
	expect_bad(m, opts(SEQ_WINDOW, 16, 2, 0, KV_F32),
	    "window mode keeps no sinks");
	expect_bad(m, opts(SEQ_STREAMING, -5, 4, 0, KV_F32), "out of range");
	expect_bad(m, opts(SEQ_STREAMING, 16, -3, 0, KV_F32), "negative");
	expect_bad(m, opts((enum seq_mode)9, 16, 4, 0, KV_F32),
	    "unknown cache mode");
	o = opts(SEQ_DENSE, 1 << 20, -1, 0, KV_F32);
	o.max_bytes = 1 << 20;
	expect_bad(m, o, "over the limit");
	ck_assert_int_eq(seq_mode_parse("Recompute", &mode), 0);
	ck_assert_int_eq(mode, SEQ_RECOMPUTE);
	ck_assert_int_eq(seq_mode_parse("fast", &mode), -1);
	ck_assert_int_eq(seq_kv_parse("f16", &kt), 0);
	ck_assert_int_eq(kt, KV_F16);
	ck_assert_int_eq(seq_kv_parse("q8_0", &kt), -1);
	/* The smallest streaming cache: the sinks and one window slot. */
	o = opts(SEQ_STREAMING, 5, 4, 0, KV_F32);
	check_against_naive(path, "llama sinks + 1", &o, 4, 30, TOL);
	model_close(m);
}
END_TEST

static Suite *
stream_suite(void)
{
	Suite *s = suite_create("stream");
	TCase *tc = tcase_create("stream");

	tcase_add_unchecked_fixture(tc, setup, tenv_teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, streaming_matches_naive_stories);
	tcase_add_loop_test(tc, streaming_matches_naive_synth, 0, 2);
	tcase_add_test(tc, streaming_f16);
	tcase_add_test(tc, dense_matches_naive);
	tcase_add_test(tc, recompute_matches_fresh_passes);
	tcase_add_loop_test(tc, sliding_window_every_mode, 0, 2);
	tcase_add_loop_test(tc, sliding_window_layers_stay_in_window, 0, 4);
	tcase_add_loop_test(tc, shifted_stream_is_exact, 0, 2);
	tcase_add_test(tc, info_reports_memory_and_eviction);
	tcase_add_loop_test(tc, snapshot_restore_is_exact, 0, 5);
	tcase_add_test(tc, bad_options_are_named);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(stream_suite());
	int failed;

	/* The tenv_pool's threads live in this process: no forking. */
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
