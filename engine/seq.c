/*
 * seq: the forward pass of a llama-family transformer for one sequence.
 *
 * For a chunk of n tokens at positions p0..p0+n-1, every layer does
 *   h = x + Wo * attn(rope(Wq*norm(x)), rope(Wk*norm(x)), Wv*norm(x))
 *   x = h + Wdown * (silu(Wgate*norm(h)) * Wup*norm(h))
 * with causal attention over the cache.  Keys are cached already rotated
 * at their position.  Rotation angles are computed in double precision
 * from integer positions, so they stay exact however long the stream.
 */
#include "seq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "matmul.h"
#include "quant.h"

struct seq {
	const struct model *m;
	int32_t n_ctx, n_batch, n_past;
	int32_t q_dim, kv_dim;
	float *k, *v;	/* [n_layer][n_ctx][kv_dim] */
	float *x, *xn;	/* [n_batch][n_embd] */
	float *q, *kc, *vc, *att; /* [n_batch][q_dim or kv_dim] */
	float *g, *u;	/* [n_batch][n_ff] */
	float *rope;	/* [n_batch][n_rot/2][2]: cos, sin */
	double *inv_freq; /* [n_rot/2] */
	float *scores;	/* [threads][scores_per_thread] */
	int scores_threads;
	size_t scores_per_thread; /* n_ctx, or n_batch * n_ctx for sgemm */
	struct matmul_scratch mm;
};

static void *
zalloc_floats(size_t n)
{
	void *p;

	if (posix_memalign(&p, 64, n * sizeof(float) + 64) != 0)
		return NULL;
	memset(p, 0, n * sizeof(float));
	return p;
}

static void
seq_init_rope(struct seq *s)
{
	const struct model_hparams *hp = &s->m->hp;
	int i;

	for (i = 0; i < hp->n_rot / 2; i++)
		s->inv_freq[i] = pow(hp->rope_base, -2.0 * i / hp->n_rot) /
		    hp->rope_scale;
}

static int
seq_alloc(struct seq *s)
{
	const struct model_hparams *hp = &s->m->hp;
	size_t nb = (size_t)s->n_batch, cache;

	cache = (size_t)hp->n_layer * (size_t)s->n_ctx * (size_t)s->kv_dim;
	s->k = zalloc_floats(cache);
	s->v = zalloc_floats(cache);
	s->x = zalloc_floats(nb * (size_t)hp->n_embd);
	s->xn = zalloc_floats(nb * (size_t)hp->n_embd);
	s->q = zalloc_floats(nb * (size_t)s->q_dim);
	s->att = zalloc_floats(nb * (size_t)s->q_dim);
	s->kc = zalloc_floats(nb * (size_t)s->kv_dim);
	s->vc = zalloc_floats(nb * (size_t)s->kv_dim);
	s->g = zalloc_floats(nb * (size_t)hp->n_ff);
	s->u = zalloc_floats(nb * (size_t)hp->n_ff);
	s->rope = zalloc_floats(nb * (size_t)hp->n_rot);
	s->inv_freq = calloc((size_t)hp->n_rot / 2, sizeof(double));
	return s->k && s->v && s->x && s->xn && s->q && s->att && s->kc &&
	    s->vc && s->g && s->u && s->rope && s->inv_freq ? 0 : -1;
}

struct seq *
seq_new(const struct model *m, const struct seq_opts *o, char *cause)
{
	const struct model_hparams *hp = &m->hp;
	struct seq *s;

	if ((s = calloc(1, sizeof *s)) == NULL) {
		err_set(cause, "out of memory");
		return NULL;
	}
	s->m = m;
	s->n_ctx = o != NULL && o->n_ctx > 0 ? o->n_ctx :
	    hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
	s->n_batch = o != NULL && o->n_batch > 0 ? o->n_batch : 512;
	if (s->n_batch > s->n_ctx)
		s->n_batch = s->n_ctx;
	s->q_dim = hp->n_head * hp->head_dim;
	s->kv_dim = hp->n_head_kv * hp->head_dim;
	if (s->n_ctx > (1 << 24)) {
		err_set(cause, "context of %d tokens is too large", s->n_ctx);
		seq_free(s);
		return NULL;
	}
	if (seq_alloc(s) != 0) {
		err_set(cause, "out of memory for a %d-token context", s->n_ctx);
		seq_free(s);
		return NULL;
	}
	seq_init_rope(s);
	return s;
}

void
seq_free(struct seq *s)
{
	if (s == NULL)
		return;
	free(s->k);
	free(s->v);
	free(s->x);
	free(s->xn);
	free(s->q);
	free(s->att);
	free(s->kc);
	free(s->vc);
	free(s->g);
	free(s->u);
	free(s->rope);
	free(s->inv_freq);
	free(s->scores);
	matmul_scratch_free(&s->mm);
	free(s);
}

int32_t
seq_n_past(const struct seq *s)
{
	return s->n_past;
}

int32_t
seq_n_ctx(const struct seq *s)
{
	return s->n_ctx;
}

void
seq_reset(struct seq *s)
{
	s->n_past = 0;
}

static void
rmsnorm(const float *x, const float *w, float *out, int n, float eps)
{
	double ss = 0.0;
	float scale;
	int i;

	for (i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	scale = (float)(1.0 / sqrt(ss / n + eps));
	for (i = 0; i < n; i++)
		out[i] = x[i] * scale * w[i];
}

static void
rmsnorm_rows(const float *x, const float *w, float *out, size_t n, int dim,
    float eps)
{
	size_t i;

	for (i = 0; i < n; i++)
		rmsnorm(x + i * dim, w, out + i * dim, dim, eps);
}

/* cos/sin for every token of the chunk, once for all layers. */
static void
rope_table(struct seq *s, size_t n)
{
	int half = s->m->hp.n_rot / 2, i;
	size_t t;

	for (t = 0; t < n; t++) {
		double pos = (double)(s->n_past + (int32_t)t);
		float *cs = s->rope + t * (size_t)half * 2;
		for (i = 0; i < half; i++) {
			double a = pos * s->inv_freq[i];
			cs[2 * i] = (float)cos(a);
			cs[2 * i + 1] = (float)sin(a);
		}
	}
}

/* Rotates every head of n rows of vectors (n_heads * head_dim wide). */
static void
rope_apply(const struct seq *s, float *v, size_t n, int n_heads)
{
	const struct model_hparams *hp = &s->m->hp;
	int half = hp->n_rot / 2, h, i;
	int stride = hp->rope_neox ? 1 : 2, off = hp->rope_neox ? half : 1;
	size_t t;

	for (t = 0; t < n; t++) {
		const float *cs = s->rope + t * (size_t)half * 2;
		for (h = 0; h < n_heads; h++) {
			float *p = v + (t * (size_t)n_heads + (size_t)h) *
			    (size_t)hp->head_dim;
			for (i = 0; i < half; i++) {
				float *a = p + i * stride, *b = a + off;
				float x0 = *a, x1 = *b;
				*a = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
				*b = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
			}
		}
	}
}

static void
add_bias(float *y, const float *b, size_t n, int dim)
{
	size_t t;
	int i;

	if (b == NULL)
		return;
	for (t = 0; t < n; t++)
		for (i = 0; i < dim; i++)
			y[t * dim + i] += b[i];
}

/* From this many tokens on, attention runs per head through sgemm. */
#define ATTN_GEMM_MIN 8

struct attn_job {
	struct seq *s;
	int layer;
	size_t n; /* tokens in the chunk */
	long per; /* query heads per job (attn_slice) */
};

/*
 * Causal attention over the cache of the query heads [h0, h0 + nh) of
 * chunk token t, which share one KV head.
 */
static void
attn_heads(struct seq *s, int layer, size_t t, int h0, int nh, float *scores)
{
	const struct model_hparams *hp = &s->m->hp;
	size_t hd = (size_t)hp->head_dim, kvh = (size_t)(h0 /
	    (hp->n_head / hp->n_head_kv));
	size_t base = (size_t)layer * (size_t)s->n_ctx * (size_t)s->kv_dim;
	size_t qo = (t * (size_t)hp->n_head + (size_t)h0) * hd;

	kern_attn(s->q + qo, (size_t)nh, hd, s->k + base + kvh * hd,
	    s->v + base + kvh * hd, (size_t)s->kv_dim, hd,
	    (size_t)s->n_past + t + 1, 1.0f / sqrtf((float)hd), scores,
	    s->att + qo, hd);
}

/* Whole heads through sgemm, for chunks of many tokens. */
static void
attn_gemm_slice(void *arg, int ith, int nth)
{
	struct attn_job *j = arg;
	struct seq *s = j->s;
	const struct model_hparams *hp = &s->m->hp;
	size_t hd = (size_t)hp->head_dim, L = (size_t)s->n_past + j->n;
	size_t base = (size_t)j->layer * (size_t)s->n_ctx * (size_t)s->kv_dim;
	long lo, hi, h, kvh;

	pool_split(hp->n_head, ith, nth, 1, &lo, &hi);
	for (h = lo; h < hi; h++) {
		kvh = h / (hp->n_head / hp->n_head_kv);
		matmul_attn_head(s->q + (size_t)h * hd, (size_t)s->q_dim,
		    s->k + base + (size_t)kvh * hd, s->v + base +
		    (size_t)kvh * hd, (size_t)s->kv_dim, j->n, L,
		    (size_t)s->n_past, hd, 1.0f / sqrtf((float)hd),
		    s->att + (size_t)h * hd, (size_t)s->q_dim,
		    s->scores + (size_t)ith * s->scores_per_thread);
	}
}

/*
 * Per-token attention, one job per (token, KV head) so that each cached
 * key and value row is read once for all the heads sharing it.  With
 * fewer such jobs than threads, a group's heads are split further.
 */
static void
attn_slice(void *arg, int ith, int nth)
{
	struct attn_job *j = arg;
	struct seq *s = j->s;
	long lo, hi, i, n_kv = s->m->hp.n_head_kv, per = j->per, sub;

	sub = (s->m->hp.n_head / n_kv) / per;
	pool_split((long)j->n * n_kv * sub, ith, nth, 1, &lo, &hi);
	for (i = lo; i < hi; i++)
		attn_heads(s, j->layer, (size_t)(i / (n_kv * sub)),
		    (int)(i % (n_kv * sub) * per), (int)per,
		    s->scores + (size_t)ith * s->scores_per_thread);
}

/* Heads per attn_slice job: the whole group unless threads would idle. */
static long
attn_per_job(const struct model_hparams *hp, size_t n, int nth)
{
	long per = hp->n_head / hp->n_head_kv;

	while (per % 2 == 0 && (long)n * hp->n_head / per < nth)
		per /= 2;
	return per;
}

static int
attention(struct seq *s, struct pool *pool, int layer, size_t n, char *cause)
{
	const struct model_hparams *hp = &s->m->hp;
	size_t off = ((size_t)layer * (size_t)s->n_ctx + (size_t)s->n_past) *
	    (size_t)s->kv_dim;
	struct attn_job j = { .s = s, .layer = layer, .n = n };
	int nth = pool_threads(pool), gemm = n >= ATTN_GEMM_MIN;
	size_t per;

	j.per = attn_per_job(hp, n, nth);
	per = (size_t)s->n_ctx * (gemm ? (size_t)s->n_batch : (size_t)j.per);

	if (s->scores_threads < nth || s->scores_per_thread < per) {
		free(s->scores);
		s->scores = zalloc_floats((size_t)nth * per);
		s->scores_threads = s->scores != NULL ? nth : 0;
		s->scores_per_thread = s->scores != NULL ? per : 0;
		if (s->scores == NULL)
			return err_set(cause, "out of memory for attention");
	}
	rope_apply(s, s->q, n, hp->n_head);
	rope_apply(s, s->kc, n, hp->n_head_kv);
	memcpy(s->k + off, s->kc, n * (size_t)s->kv_dim * sizeof(float));
	memcpy(s->v + off, s->vc, n * (size_t)s->kv_dim * sizeof(float));
	pool_run(pool, gemm ? attn_gemm_slice : attn_slice, &j);
	return 0;
}

static int
layer_forward(struct seq *s, struct pool *pool, int il, size_t n,
    char *cause)
{
	const struct model_hparams *hp = &s->m->hp;
	const struct model_layer *ly = &s->m->layers[il];
	size_t e = (size_t)hp->n_embd, f = (size_t)hp->n_ff, i;
	const struct wmat *qkv_w[3] = { &ly->wq, &ly->wk, &ly->wv };
	const struct wmat *ffn_w[2] = { &ly->w_gate, &ly->w_up };
	float *qkv_y[3] = { s->q, s->kc, s->vc }, *ffn_y[2] = { s->g, s->u };
	size_t qkv_ld[3] = { (size_t)s->q_dim, (size_t)s->kv_dim,
		(size_t)s->kv_dim }, ffn_ld[2] = { f, f };

	rmsnorm_rows(s->x, ly->attn_norm, s->xn, n, hp->n_embd, hp->rms_eps);
	if (matmul_many(pool, 3, qkv_w, s->xn, n, qkv_y, qkv_ld, &s->mm,
	    cause) != 0)
		return -1;
	add_bias(s->q, ly->bq, n, s->q_dim);
	add_bias(s->kc, ly->bk, n, s->kv_dim);
	add_bias(s->vc, ly->bv, n, s->kv_dim);
	if (attention(s, pool, il, n, cause) != 0 ||
	    matmul(pool, &ly->wo, s->att, n, s->xn, e, &s->mm, cause))
		return -1;
	for (i = 0; i < n * e; i++)
		s->x[i] += s->xn[i];
	rmsnorm_rows(s->x, ly->ffn_norm, s->xn, n, hp->n_embd, hp->rms_eps);
	if (matmul_many(pool, 2, ffn_w, s->xn, n, ffn_y, ffn_ld, &s->mm,
	    cause) != 0)
		return -1;
	for (i = 0; i < n * f; i++)
		s->g[i] = s->g[i] / (1.0f + expf(-s->g[i])) * s->u[i];
	if (matmul(pool, &ly->w_down, s->g, n, s->xn, e, &s->mm, cause))
		return -1;
	for (i = 0; i < n * e; i++)
		s->x[i] += s->xn[i];
	return 0;
}

static void
embed(struct seq *s, const int32_t *tokens, size_t n)
{
	const struct wmat *w = &s->m->tok_embd;
	size_t t;

	for (t = 0; t < n; t++)
		quant_dequantize_row(w->type, (const char *)w->data +
		    (size_t)tokens[t] * w->row_bytes, s->x + t * (size_t)w->cols,
		    (size_t)w->cols);
}

/* One chunk of at most n_batch tokens. */
static int
eval_chunk(struct seq *s, struct pool *pool, const int32_t *tokens, size_t n,
    float *logits, int all, char *cause)
{
	const struct model_hparams *hp = &s->m->hp;
	const float *last;
	int il;

	embed(s, tokens, n);
	rope_table(s, n);
	for (il = 0; il < hp->n_layer; il++) {
		if (layer_forward(s, pool, il, n, cause) != 0)
			return -1;
	}
	if (logits == NULL)
		return 0;
	if (all) {
		rmsnorm_rows(s->x, s->m->output_norm, s->xn, n, hp->n_embd,
		    hp->rms_eps);
		return matmul(pool, &s->m->output, s->xn, n, logits,
		    (size_t)hp->n_vocab, &s->mm, cause);
	}
	last = s->x + (n - 1) * (size_t)hp->n_embd;
	rmsnorm(last, s->m->output_norm, s->xn, hp->n_embd, hp->rms_eps);
	return matmul(pool, &s->m->output, s->xn, 1, logits,
	    (size_t)hp->n_vocab, &s->mm, cause);
}

int
seq_eval(struct seq *s, struct pool *pool, const int32_t *tokens, size_t n,
    float *logits, int all, char *cause)
{
	int32_t n_past0 = s->n_past;
	size_t i, c, nv = (size_t)s->m->hp.n_vocab;

	if (n == 0)
		return err_set(cause, "no tokens to evaluate");
	if (n > (size_t)(s->n_ctx - s->n_past))
		return err_set(cause, "%zu more tokens do not fit: %d of the "
		    "context's %d are used", n, s->n_past, s->n_ctx);
	for (i = 0; i < n; i++) {
		if (tokens[i] < 0 || tokens[i] >= (int32_t)nv)
			return err_set(cause, "token id %d is outside the "
			    "vocabulary (0..%zu)", tokens[i], nv - 1);
	}
	for (i = 0; i < n; i += c) {
		c = n - i < (size_t)s->n_batch ? n - i : (size_t)s->n_batch;
		if (eval_chunk(s, pool, tokens + i, c,
		    logits == NULL ? NULL : all ? logits + i * nv :
		    i + c == n ? logits : NULL, all, cause) != 0) {
			s->n_past = n_past0;
			return -1;
		}
		s->n_past += (int32_t)c;
	}
	return 0;
}
