/*
 * seq_fwd: the forward pass of a llama-family transformer over a batch
 * of segments (chunks of different sequences), with attention over each
 * sequence's attention-sink cache (seq_attn.c).  Every layer does
 *   h = x + pnorm(Wo * attn(rope(qn(Wq*norm(x))), rope(kn(Wk*norm(x))),
 *       Wv*norm(x)))
 *   x = h + pnorm(Wdown * (act(Wgate*norm(h)) * Wup*norm(h)))
 * where the architecture (model_arch.c) says which of the per-head q/k
 * norms qn, kn and the post-norms pnorm exist, the activation (SiLU or
 * GELU-tanh), the embedding scale, the soft-caps of attention scores
 * and logits, and which layers attend through a sliding window.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"
#include "seq_int.h"

/*
 * The squares go to four partial sums, added in a fixed order at the
 * end: one running sum was a chain of dependent adds (4 cycles an
 * element), and the norms run on one thread while the pool waits.
 */
static void
rmsnorm(const float *x, const float *w, float *out, int n, float eps)
{
	double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
	float scale;
	int i;

	for (i = 0; i + 4 <= n; i += 4) {
		s0 += (double)x[i] * x[i];
		s1 += (double)x[i + 1] * x[i + 1];
		s2 += (double)x[i + 2] * x[i + 2];
		s3 += (double)x[i + 3] * x[i + 3];
	}
	for (; i < n; i++)
		s0 += (double)x[i] * x[i];
	scale = (float)(1.0 / sqrt(((s0 + s1) + (s2 + s3)) / n + eps));
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

/* RMSNorm of each head_dim-sized piece of n rows of n_heads heads. */
static void
head_norm(float *y, const float *w, size_t n, int n_heads, int hd,
    size_t ld, float eps)
{
	size_t t;
	int h;

	if (w == NULL)
		return;
	for (t = 0; t < n; t++)
		for (h = 0; h < n_heads; h++)
			rmsnorm(y + t * ld + (size_t)h * (size_t)hd, w,
			    y + t * ld + (size_t)h * (size_t)hd, hd, eps);
}

/* g = act(g) * u over n floats. */
static void
gate(float *g, const float *u, size_t n, enum model_act act)
{
	const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
	size_t i;
	float x;

	if (act == ACT_SILU) {
		kern_silu_mul(g, u, n);
		return;
	}
	for (i = 0; i < n; i++) {
		x = g[i];
		g[i] = 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x *
		    x))) * u[i];
	}
}

struct gate_job {
	float *g;
	const float *u;
	size_t n;
	enum model_act act;
};

static void
gate_slice(void *arg, int ith, int nth)
{
	const struct gate_job *j = arg;
	long lo, hi;

	pool_split((long)j->n, ith, nth, 64, &lo, &hi);
	if (hi > lo)
		gate(j->g + lo, j->u + lo, (size_t)(hi - lo), j->act);
}

/*
 * gate over the pool once there is enough of it (a batch's rows: one
 * expf each, a few ms a step on the calling thread alone); each element
 * is the same function of its own inputs, so the same bits either way.
 */
static void
gate_all(struct pool *pool, float *g, const float *u, size_t n,
    enum model_act act)
{
	struct gate_job j = { .g = g, .u = u, .n = n, .act = act };

	if (n < 16384 || pool_threads(pool) < 2) {
		gate(g, u, n, act);
		return;
	}
	pool_run(pool, gate_slice, &j);
}

/*
 * A segment's rows seen as a work area of their own, for seq_attn.c:
 * the per-row arrays shifted by r0 rows; the attention scratch (kg, vg,
 * scores) is shared, as segments run their attention one after another.
 */
static void
seg_view(const struct seq_work *w, size_t r0, struct seq_work *v)
{
	const struct model_hparams *hp = &w->m->hp;

	*v = *w;
	v->x += r0 * (size_t)hp->n_embd;
	v->xn += r0 * (size_t)hp->n_embd;
	v->q += r0 * (size_t)w->q_dim;
	v->qs += r0 * (size_t)w->q_dim;
	v->att += r0 * (size_t)w->q_dim;
	v->kc += r0 * (size_t)w->kv_dim;
	v->vc += r0 * (size_t)w->kv_dim;
	v->g += r0 * (size_t)hp->n_ff;
	v->u += r0 * (size_t)hp->n_ff;
	v->cs += r0 * (size_t)hp->n_rot;
	v->cs_sink += r0 * (size_t)hp->n_rot;
	v->pos += r0;
	v->ns += r0;
	v->lo += r0;
	v->hi += r0;
	v->s0 += r0;
	v->slo += r0;
}

/*
 * Y[m] = X * W[m]^T over every row of the batch (X rows ldx floats
 * apart, Y[m]'s ld[m]).  The 1-token segments' rows (decode) go through
 * matmul_multi together: the weights are read once for all of them.  A
 * longer segment (prefill) keeps its own call, the very one it makes
 * alone: arithmetic-bound, it gains nothing from company.  Either way
 * each row gets the same bits as alone (matmul_multi's promise).
 */
static void
batch_matmul(struct seq_work *w, struct pool *pool, const struct fwd_seg *sg,
    size_t n_seg, int nw, const struct wmat *const *W, const float *X,
    size_t ldx, float *const *Y, const size_t *ld)
{
	float *y[3];
	size_t i, k = 0, j;
	int m;

	for (i = 0; i < n_seg; i++) {
		if (sg[i].n == 1) {
			w->mx[k++] = X + sg[i].r0 * ldx;
			continue;
		}
		for (m = 0; m < nw; m++)
			y[m] = Y[m] + sg[i].r0 * ld[m];
		matmul_many(pool, nw, W, X + sg[i].r0 * ldx, sg[i].n, y, ld,
		    &w->mm, NULL);
	}
	if (k == 0)
		return;
	for (i = 0, j = 0; i < n_seg; i++) {
		if (sg[i].n != 1)
			continue;
		for (m = 0; m < nw; m++)
			w->my[(size_t)m * k + j] = Y[m] + sg[i].r0 * ld[m];
		j++;
	}
	matmul_multi(pool, nw, W, k, w->mx, w->my, &w->mm, NULL);
}

/* The first half of layer il: attention, added to the residual x. */
static void
layer_attn(struct seq_work *w, struct pool *pool, struct fwd_seg *sg,
    size_t n_seg, size_t n, int il)
{
	const struct model_hparams *hp = &w->m->hp;
	const struct model_layer *ly = &w->m->layers[il];
	size_t e = (size_t)hp->n_embd, i, nd = 0;
	const struct wmat *qkv_w[3] = { &ly->wq, &ly->wk, &ly->wv };
	const struct wmat *wo = &ly->wo;
	float *qkv_y[3] = { w->q, w->kc, w->vc };
	size_t qkv_ld[3] = { (size_t)w->q_dim, (size_t)w->kv_dim,
		(size_t)w->kv_dim };
	struct seq_work v;

	/* Scratch was reserved for these shapes: the calls cannot fail. */
	rmsnorm_rows(w->x, ly->attn_norm, w->xn, n, hp->n_embd, hp->rms_eps);
	batch_matmul(w, pool, sg, n_seg, 3, qkv_w, w->xn, e, qkv_y, qkv_ld);
	add_bias(w->q, ly->bq, n, w->q_dim);
	add_bias(w->kc, ly->bk, n, w->kv_dim);
	add_bias(w->vc, ly->bv, n, w->kv_dim);
	head_norm(w->q, ly->q_norm, n, hp->n_head, hp->head_dim,
	    (size_t)w->q_dim, hp->rms_eps);
	head_norm(w->kc, ly->k_norm, n, hp->n_head_kv, hp->head_dim,
	    (size_t)w->kv_dim, hp->rms_eps);
	/* Decode rows' attention in one pool run: fewer joins per layer. */
	for (i = 0; i < n_seg; i++) {
		if (sg[i].n == 1) {
			w->aj[nd].s = sg[i].s;
			w->aj[nd].ck = &sg[i].ck;
			seg_view(w, sg[i].r0, &w->aj[nd++].view);
			continue;
		}
		seg_view(w, sg[i].r0, &v);
		seq_attn(sg[i].s, &v, pool, il, &sg[i].ck);
	}
	if (nd > 0)
		seq_attn_decode(pool, il, w->aj, nd);
	batch_matmul(w, pool, sg, n_seg, 1, &wo, w->att, (size_t)w->q_dim,
	    &w->xn, &e);
	if (ly->post_attn_norm != NULL)
		rmsnorm_rows(w->xn, ly->post_attn_norm, w->xn, n, hp->n_embd,
		    hp->rms_eps);
	for (i = 0; i < n * e; i++)
		w->x[i] += w->xn[i];
}

/* The second half: the feed-forward block, added to x. */
static void
layer_ffn(struct seq_work *w, struct pool *pool, struct fwd_seg *sg,
    size_t n_seg, size_t n, int il)
{
	const struct model_hparams *hp = &w->m->hp;
	const struct model_layer *ly = &w->m->layers[il];
	size_t e = (size_t)hp->n_embd, f = (size_t)hp->n_ff, i;
	const struct wmat *ffn_w[2] = { &ly->w_gate, &ly->w_up };
	const struct wmat *wd = &ly->w_down;
	float *ffn_y[2] = { w->g, w->u };
	size_t ffn_ld[2] = { f, f };

	rmsnorm_rows(w->x, ly->ffn_norm, w->xn, n, hp->n_embd, hp->rms_eps);
	batch_matmul(w, pool, sg, n_seg, 2, ffn_w, w->xn, e, ffn_y, ffn_ld);
	gate_all(pool, w->g, w->u, n * f, hp->arch->act);
	batch_matmul(w, pool, sg, n_seg, 1, &wd, w->g, f, &w->xn, &e);
	if (ly->post_ffn_norm != NULL)
		rmsnorm_rows(w->xn, ly->post_ffn_norm, w->xn, n, hp->n_embd,
		    hp->rms_eps);
	for (i = 0; i < n * e; i++)
		w->x[i] += w->xn[i];
}

void
seq_fwd_embed(const struct seq *s, float *x, const int32_t *tokens,
    size_t n)
{
	const struct wmat *m = &s->m->tok_embd;
	size_t t, i, e = (size_t)m->cols;
	float k;

	for (t = 0; t < n; t++)
		quant_dequantize_row(m->type, (const char *)m->data +
		    (size_t)tokens[t] * m->row_bytes, x + t * e, e);
	if (!s->m->hp.arch->embd_scale)
		return;
	k = sqrtf((float)e);
	for (i = 0; i < n * e; i++)
		x[i] *= k;
}

/*
 * The logits each segment asked for.  A single row's (the last token's,
 * or the only one's) joins the others' in one matmul_multi over the
 * output matrix, the largest of the model; every row of a longer
 * segment's goes through its own matmul, as alone.
 */
static void
batch_logits(struct seq_work *w, struct pool *pool, struct fwd_seg *sg,
    size_t n_seg)
{
	const struct model *m = w->m;
	const struct model_hparams *hp = &m->hp;
	size_t e = (size_t)hp->n_embd, nv = (size_t)hp->n_vocab, i, k = 0;
	const struct wmat *out = &m->output;
	size_t last;

	for (i = 0; i < n_seg; i++) {
		if (sg[i].logits == NULL)
			continue;
		if (sg[i].all && sg[i].n > 1) {
			rmsnorm_rows(w->x + sg[i].r0 * e, m->output_norm,
			    w->xn + sg[i].r0 * e, sg[i].n, hp->n_embd,
			    hp->rms_eps);
			matmul(pool, &m->output, w->xn + sg[i].r0 * e, sg[i].n,
			    sg[i].logits, nv, &w->mm, NULL);
			if (hp->final_softcap > 0.0f)
				kern_softcap(sg[i].logits, sg[i].n * nv,
				    hp->final_softcap);
			continue;
		}
		last = (sg[i].r0 + sg[i].n - 1) * e;
		rmsnorm(w->x + last, m->output_norm, w->xn + last, hp->n_embd,
		    hp->rms_eps);
		w->mx[k] = w->xn + last;
		w->my[k++] = sg[i].logits;
	}
	if (k == 0)
		return;
	matmul_multi(pool, 1, &out, k, w->mx, w->my, &w->mm, NULL);
	if (hp->final_softcap > 0.0f)
		for (i = 0; i < k; i++)
			kern_softcap(w->my[i], nv, hp->final_softcap);
}

size_t
seq_fwd_plan(struct seq_work *w, struct fwd_seg *sg, size_t n_seg)
{
	size_t n = 0, i;
	struct seq_work v;

	for (i = 0; i < n_seg; i++) {
		sg[i].r0 = n;
		n += sg[i].n;
		seg_view(w, sg[i].r0, &v);
		seq_attn_plan(sg[i].s, &v, sg[i].s->kv.n_seen, sg[i].n,
		    &sg[i].ck);
	}
	return n;
}

void
seq_fwd_stages(struct seq_work *w, struct pool *pool, struct fwd_seg *sg,
    size_t n_seg, size_t n, int from, int to)
{
	int st;

	for (st = from; st < to; st++) {
		if (st % 2 == 0)
			layer_attn(w, pool, sg, n_seg, n, st / 2);
		else
			layer_ffn(w, pool, sg, n_seg, n, st / 2);
	}
}

void
seq_fwd_end(struct seq_work *w, struct pool *pool, struct fwd_seg *sg,
    size_t n_seg)
{
	size_t i;

	for (i = 0; i < n_seg; i++) {
		kv_put_tokens(&sg[i].s->kv, sg[i].ck.a0, sg[i].tokens,
		    sg[i].n);
		sg[i].s->kv.n_seen += (int64_t)sg[i].n;
	}
	batch_logits(w, pool, sg, n_seg);
}

void
seq_fwd_batch(struct seq_work *w, struct pool *pool, struct fwd_seg *sg,
    size_t n_seg)
{
	size_t e = (size_t)w->m->hp.n_embd, n, i;

	n = seq_fwd_plan(w, sg, n_seg);
	for (i = 0; i < n_seg; i++)
		seq_fwd_embed(sg[i].s, w->x + sg[i].r0 * e, sg[i].tokens,
		    sg[i].n);
	seq_fwd_stages(w, pool, sg, n_seg, n, 0, SEQ_FWD_STAGES(w->m));
	seq_fwd_end(w, pool, sg, n_seg);
}

void
seq_fwd_chunk(struct seq *s, struct seq_work *w, struct pool *pool,
    const int32_t *tokens, size_t n, float *logits, int all)
{
	struct fwd_seg sg = { .s = s, .tokens = tokens, .n = n,
	    .logits = logits, .all = all };

	seq_fwd_batch(w, pool, &sg, 1);
}

static void *
alloc_floats(size_t n)
{
	void *p;

	if (posix_memalign(&p, 64, n * sizeof(float) + 64) != 0)
		return NULL;
	return p;
}

/* Every weight's matmul scratch for chunks of up to n rows. */
static int
reserve_matmul(const struct model *m, struct seq_work *w, size_t n, int nth,
    char *cause)
{
	const struct model_layer *ly;
	int il;

	for (il = 0; il < m->hp.n_layer; il++) {
		ly = &m->layers[il];
		if (matmul_reserve(&w->mm, &ly->wq, n, nth, cause) ||
		    matmul_reserve(&w->mm, &ly->wk, n, nth, cause) ||
		    matmul_reserve(&w->mm, &ly->wv, n, nth, cause) ||
		    matmul_reserve(&w->mm, &ly->wo, n, nth, cause) ||
		    matmul_reserve(&w->mm, &ly->w_gate, n, nth, cause) ||
		    matmul_reserve(&w->mm, &ly->w_up, n, nth, cause) ||
		    matmul_reserve(&w->mm, &ly->w_down, n, nth, cause))
			return -1;
	}
	if (matmul_reserve(&w->mm, &m->output, n, nth, cause) != 0)
		return -1;
	return matmul_reserve(&w->mm, &m->output, 1, nth, cause);
}

int
seq_fwd_reserve(struct seq *s, struct seq_work *w, struct pool *pool,
    size_t n, size_t rows_all, char *cause)
{
	const struct model_hparams *hp = &s->m->hp;
	size_t rows = (size_t)s->kv.cap + n, nth = (size_t)pool_threads(pool);
	size_t group = (size_t)(hp->n_head / hp->n_head_kv), per;

	per = (n >= ATTN_GEMM_MIN ? n : group) * rows;
	if (w->g_rows < rows) {
		free(w->kg);
		free(w->vg);
		w->g_rows = 0;
		w->kg = alloc_floats(rows * (size_t)w->kv_dim);
		w->vg = alloc_floats(rows * (size_t)w->kv_dim);
		if (w->kg == NULL || w->vg == NULL)
			return err_set(cause, "out of memory for attention");
		w->g_rows = rows;
	}
	if (w->scores_cap < nth * per) {
		free(w->scores);
		w->scores_cap = 0;
		if ((w->scores = alloc_floats(nth * per)) == NULL)
			return err_set(cause, "out of memory for attention");
		w->scores_cap = nth * per;
	}
	return reserve_matmul(s->m, w, rows_all > n ? rows_all : n, (int)nth,
	    cause);
}
