/* reference: see reference.h.  Clarity over speed, on purpose. */
#include "reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gguf.h"
#include "quant.h"

struct ref_layer {
	double *attn_norm, *wq, *wk, *wv, *bq, *bk, *bv, *wo;
	double *q_norm, *k_norm, *post_attn;	/* NULL when absent */
	double *ffn_norm, *wg, *wu, *wd, *post_ffn;
	int swa;
};

struct ref_model {
	int neox, gelu;
	int n_vocab, n_embd, n_layer, n_head, n_kv, hd, n_ff, n_rot, n_swa;
	double eps, base, scale, embd_scale, attn_cap, final_cap;
	double *rope_freqs;	/* each pair's frequency divisor, or NULL */
	double *embd, *out_norm, *out;
	struct ref_layer *L;
};

static uint32_t
u32_or(const struct gguf_file *g, const char *arch, const char *k,
    uint32_t def)
{
	char name[128];
	uint32_t v = def;

	snprintf(name, sizeof name, "%s.%s", arch, k);
	gguf_get_u32(g, name, &v, NULL);
	return v;
}

static double
f64_or(const struct gguf_file *g, const char *arch, const char *k, double def)
{
	char name[128];
	double v = def;

	snprintf(name, sizeof name, "%s.%s", arch, k);
	gguf_get_f64(g, name, &v, NULL);
	return v;
}

/* The whole tensor as doubles; NULL if absent. */
static double *
load(const struct gguf_file *g, const char *name)
{
	const struct gguf_tensor *t = gguf_find_tensor(g, name);
	uint64_t rb, rows, r, i, n;
	float *row;
	double *d;

	if (t == NULL)
		return NULL;
	qtype_row_bytes(t->type, t->ne[0], &rb);
	rows = t->ne[1] * t->ne[2] * t->ne[3];
	n = t->ne[0];
	d = malloc(rows * n * sizeof *d);
	row = malloc(n * sizeof *row);
	for (r = 0; r < rows; r++) {
		quant_dequantize_row(t->type, (const char *)t->data + r * rb, row,
		    n);
		for (i = 0; i < n; i++)
			d[r * n + i] = row[i];
	}
	free(row);
	return d;
}

static double *
load_blk(const struct gguf_file *g, int il, const char *what)
{
	char name[96];

	snprintf(name, sizeof name, "blk.%d.%s", il, what);
	return load(g, name);
}

/* Rows [r0, r0 + n) of a matrix of `cols` columns, copied. */
static double *
rows_of(const double *w, size_t r0, size_t n, size_t cols)
{
	double *d = malloc(n * cols * sizeof *d);

	memcpy(d, w + r0 * cols, n * cols * sizeof *d);
	return d;
}

static void
load_layers(struct ref_model *m, const struct gguf_file *g, int swa_even)
{
	size_t e = (size_t)m->n_embd, qd = (size_t)m->n_head * m->hd;
	size_t kvd = (size_t)m->n_kv * m->hd, f = (size_t)m->n_ff;
	double *fused;
	int il;

	m->L = calloc((size_t)m->n_layer, sizeof *m->L);
	for (il = 0; il < m->n_layer; il++) {
		struct ref_layer *l = &m->L[il];
		l->attn_norm = load_blk(g, il, "attn_norm.weight");
		if ((fused = load_blk(g, il, "attn_qkv.weight")) != NULL) {
			/* phi3: Q rows, then K, then V */
			l->wq = rows_of(fused, 0, qd, e);
			l->wk = rows_of(fused, qd, kvd, e);
			l->wv = rows_of(fused, qd + kvd, kvd, e);
			free(fused);
		} else {
			l->wq = load_blk(g, il, "attn_q.weight");
			l->wk = load_blk(g, il, "attn_k.weight");
			l->wv = load_blk(g, il, "attn_v.weight");
		}
		l->bq = load_blk(g, il, "attn_q.bias");
		l->bk = load_blk(g, il, "attn_k.bias");
		l->bv = load_blk(g, il, "attn_v.bias");
		l->q_norm = load_blk(g, il, "attn_q_norm.weight");
		l->k_norm = load_blk(g, il, "attn_k_norm.weight");
		l->wo = load_blk(g, il, "attn_output.weight");
		l->post_attn = load_blk(g, il, "post_attention_norm.weight");
		l->ffn_norm = load_blk(g, il, "ffn_norm.weight");
		l->wu = load_blk(g, il, "ffn_up.weight");
		l->wg = load_blk(g, il, "ffn_gate.weight");
		if (l->wg == NULL) {
			/* phi3: ffn_up holds the gate rows, then the up rows */
			fused = l->wu;
			l->wg = rows_of(fused, 0, f, e);
			l->wu = rows_of(fused, f, f, e);
			free(fused);
		}
		l->wd = load_blk(g, il, "ffn_down.weight");
		l->post_ffn = load_blk(g, il, "post_ffw_norm.weight");
		l->swa = m->n_swa > 0 && (!swa_even || il % 2 == 0);
	}
}

struct ref_model *
ref_open(const char *path, char *cause)
{
	struct gguf_file *g = gguf_open(path, cause);
	struct ref_model *m;
	struct gguf_str arch;
	char a[16];

	if (g == NULL)
		return NULL;
	m = calloc(1, sizeof *m);
	gguf_get_str(g, "general.architecture", &arch, NULL);
	snprintf(a, sizeof a, "%.*s", (int)arch.len, arch.ptr);
	/* Only llama rotates interleaved pairs. */
	m->neox = strcmp(a, "llama") != 0;
	m->gelu = strcmp(a, "gemma2") == 0;
	m->n_embd = (int)u32_or(g, a, "embedding_length", 0);
	m->n_layer = (int)u32_or(g, a, "block_count", 0);
	m->n_head = (int)u32_or(g, a, "attention.head_count", 0);
	m->n_kv = (int)u32_or(g, a, "attention.head_count_kv", m->n_head);
	m->n_ff = (int)u32_or(g, a, "feed_forward_length", 0);
	m->hd = (int)u32_or(g, a, "attention.key_length",
	    (uint32_t)(m->n_embd / m->n_head));
	m->n_rot = (int)u32_or(g, a, "rope.dimension_count", m->hd);
	/* Windows: gemma2's even layers, every layer of a llama file
	 * (mistral); qwen and phi3 files may carry the key, unused. */
	m->n_swa = strcmp(a, "llama") == 0 || m->gelu ?
	    (int)u32_or(g, a, "attention.sliding_window", 0) : 0;
	m->embd_scale = m->gelu ? sqrt((double)m->n_embd) : 1.0;
	m->attn_cap = f64_or(g, a, "attn_logit_softcapping", 0.0);
	m->final_cap = f64_or(g, a, "final_logit_softcapping", 0.0);
	m->rope_freqs = load(g, "rope_freqs.weight");
	m->eps = f64_or(g, a, "attention.layer_norm_rms_epsilon", 1e-5);
	m->base = f64_or(g, a, "rope.freq_base", 10000.0);
	m->scale = f64_or(g, a, "rope.scaling.factor", 1.0);
	m->embd = load(g, "token_embd.weight");
	m->n_vocab = (int)gguf_find_tensor(g, "token_embd.weight")->ne[1];
	m->out_norm = load(g, "output_norm.weight");
	m->out = load(g, "output.weight");
	if (m->out == NULL)
		m->out = load(g, "token_embd.weight");
	load_layers(m, g, m->gelu);
	gguf_close(g);
	return m;
}

void
ref_close(struct ref_model *m)
{
	int il;

	if (m == NULL)
		return;
	for (il = 0; il < m->n_layer; il++) {
		struct ref_layer *l = &m->L[il];
		double *all[] = { l->attn_norm, l->wq, l->wk, l->wv, l->bq,
			l->bk, l->bv, l->wo, l->ffn_norm, l->wg, l->wu, l->wd,
			l->q_norm, l->k_norm, l->post_attn, l->post_ffn };
		for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
			free(all[i]);
	}
	free(m->L);
	free(m->rope_freqs);
	free(m->embd);
	free(m->out_norm);
	free(m->out);
	free(m);
}

int
ref_n_vocab(const struct ref_model *m)
{
	return m->n_vocab;
}

/* y[rows] = W[rows][cols] x[cols] (+ b) */
static void
mv(const double *W, const double *b, const double *x, double *y, int rows,
    int cols)
{
	for (int r = 0; r < rows; r++) {
		double s = b != NULL ? b[r] : 0.0;
		for (int c = 0; c < cols; c++)
			s += W[(size_t)r * cols + c] * x[c];
		y[r] = s;
	}
}

static void
norm(const double *x, const double *w, double *y, int n, double eps)
{
	double ss = 0.0;

	for (int i = 0; i < n; i++)
		ss += x[i] * x[i];
	ss = 1.0 / sqrt(ss / n + eps);
	for (int i = 0; i < n; i++)
		y[i] = x[i] * ss * w[i];
}

/* Rotates one head vector to position pos. */
static void
rope(const struct ref_model *m, double *v, long pos)
{
	for (int i = 0; i < m->n_rot / 2; i++) {
		double theta = (double)pos / m->scale *
		    pow(m->base, -2.0 * i / m->n_rot) /
		    (m->rope_freqs != NULL ? m->rope_freqs[i] : 1.0);
		int a = m->neox ? i : 2 * i, b = m->neox ? i + m->n_rot / 2 :
		    2 * i + 1;
		double x0 = v[a], x1 = v[b];
		v[a] = x0 * cos(theta) - x1 * sin(theta);
		v[b] = x0 * sin(theta) + x1 * cos(theta);
	}
}

/*
 * Attention output for query position t over keys/values 0..t, or, in
 * a sliding-window layer, over the positions j with t - j < n_swa.
 */
static void
attend(const struct ref_model *m, int swa, const double *q, const double *K,
    const double *V, size_t t, double *out)
{
	int kvd = m->n_kv * m->hd;
	double *p = malloc((t + 1) * sizeof *p);
	size_t lo = swa && t + 1 > (size_t)m->n_swa ? t + 1 - (size_t)m->n_swa :
	    0;

	for (int h = 0; h < m->n_head; h++) {
		int kh = h / (m->n_head / m->n_kv);
		double max = -INFINITY, sum = 0.0;
		for (size_t j = lo; j <= t; j++) {
			double s = 0.0;
			for (int i = 0; i < m->hd; i++)
				s += q[h * m->hd + i] * K[j * kvd + kh * m->hd + i];
			p[j] = s / sqrt((double)m->hd);
			if (m->attn_cap > 0.0)
				p[j] = m->attn_cap * tanh(p[j] / m->attn_cap);
			max = p[j] > max ? p[j] : max;
		}
		for (size_t j = lo; j <= t; j++)
			sum += p[j] = exp(p[j] - max);
		for (int i = 0; i < m->hd; i++) {
			double o = 0.0;
			for (size_t j = lo; j <= t; j++)
				o += p[j] / sum * V[j * kvd + kh * m->hd + i];
			out[h * m->hd + i] = o;
		}
	}
	free(p);
}

/* Per-head RMSNorm (qwen3's q/k norms) of n_heads heads, if w. */
static void
head_norms(const struct ref_model *m, const double *w, double *v,
    int n_heads)
{
	if (w == NULL)
		return;
	for (int h = 0; h < n_heads; h++)
		norm(v + h * m->hd, w, v + h * m->hd, m->hd, m->eps);
}

static double
act(const struct ref_model *m, double g)
{
	if (m->gelu)
		return 0.5 * g * (1.0 + tanh(0.7978845608028654 * (g +
		    0.044715 * g * g * g))); /* sqrt(2 / pi) */
	return g / (1.0 + exp(-g));
}

/* The embedding of token tok into x. */
static void
embed_ref(const struct ref_model *m, int32_t tok, double *x)
{
	for (int i = 0; i < m->n_embd; i++)
		x[i] = m->embd[(size_t)tok * m->n_embd + i] * m->embd_scale;
}

/* Final norm and lm head into logits, soft-capped when the model says. */
static void
head_ref(const struct ref_model *m, const double *x, double *xn,
    double *logits)
{
	norm(x, m->out_norm, xn, m->n_embd, m->eps);
	mv(m->out, NULL, xn, logits, m->n_vocab, m->n_embd);
	if (m->final_cap > 0.0)
		for (int i = 0; i < m->n_vocab; i++)
			logits[i] = m->final_cap * tanh(logits[i] /
			    m->final_cap);
}

/*
 * The rest of a layer after attention, for one position: the output
 * projection and the residual, then the feed-forward block and its
 * residual, into x.  xn, tmp, g and u are scratch.
 */
static void
finish_layer(const struct ref_model *m, const struct ref_layer *l,
    const double *att, double *x, double *xn, double *tmp, double *g,
    double *u)
{
	int e = m->n_embd, qd = m->n_head * m->hd;

	mv(l->wo, NULL, att, tmp, e, qd);
	if (l->post_attn != NULL)
		norm(tmp, l->post_attn, tmp, e, m->eps);
	for (int i = 0; i < e; i++)
		x[i] += tmp[i];
	norm(x, l->ffn_norm, xn, e, m->eps);
	mv(l->wg, NULL, xn, g, m->n_ff, e);
	mv(l->wu, NULL, xn, u, m->n_ff, e);
	for (int i = 0; i < m->n_ff; i++)
		g[i] = act(m, g[i]) * u[i];
	mv(l->wd, NULL, g, tmp, e, m->n_ff);
	if (l->post_ffn != NULL)
		norm(tmp, l->post_ffn, tmp, e, m->eps);
	for (int i = 0; i < e; i++)
		x[i] += tmp[i];
}

int
ref_forward(struct ref_model *m, const int32_t *tok, size_t n, double *logits,
    char *cause)
{
	int e = m->n_embd, kvd = m->n_kv * m->hd, qd = m->n_head * m->hd;
	double *x = calloc(n * (size_t)e, sizeof *x);
	double *K = calloc(n * (size_t)kvd, sizeof *K);
	double *V = calloc(n * (size_t)kvd, sizeof *V);
	double *xn = calloc((size_t)e, sizeof *xn), *q = calloc((size_t)qd, 8);
	double *att = calloc((size_t)qd, 8), *tmp = calloc((size_t)e, 8);
	double *g = calloc((size_t)m->n_ff, 8), *u = calloc((size_t)m->n_ff, 8);

	for (size_t t = 0; t < n; t++) {
		if (tok[t] < 0 || tok[t] >= m->n_vocab)
			return err_set(cause, "bad token %d", tok[t]);
		embed_ref(m, tok[t], x + t * e);
	}
	for (int il = 0; il < m->n_layer; il++) {
		const struct ref_layer *l = &m->L[il];
		/* K and V of every position first, then each query. */
		for (size_t t = 0; t < n; t++) {
			norm(x + t * e, l->attn_norm, xn, e, m->eps);
			mv(l->wk, l->bk, xn, K + t * kvd, kvd, e);
			mv(l->wv, l->bv, xn, V + t * kvd, kvd, e);
			head_norms(m, l->k_norm, K + t * kvd, m->n_kv);
			for (int h = 0; h < m->n_kv; h++)
				rope(m, K + t * kvd + h * m->hd, (long)t);
		}
		for (size_t t = 0; t < n; t++) {
			double *xt = x + t * e;
			norm(xt, l->attn_norm, xn, e, m->eps);
			mv(l->wq, l->bq, xn, q, qd, e);
			head_norms(m, l->q_norm, q, m->n_head);
			for (int h = 0; h < m->n_head; h++)
				rope(m, q + h * m->hd, (long)t);
			attend(m, l->swa, q, K, V, t, att);
			finish_layer(m, l, att, xt, xn, tmp, g, u);
		}
	}
	for (size_t t = 0; t < n; t++)
		head_ref(m, x + t * e, xn, logits + t * (size_t)m->n_vocab);
	free(x); free(K); free(V); free(xn); free(q); free(att); free(tmp);
	free(g); free(u);
	return 0;
}

struct ref_stream {
	struct ref_model *m;
	int cap, n_sink, f16, len;
	double **K, **V; /* per layer: [cap][kvd], raw, in cache order */
};

struct ref_stream *
ref_stream_new(struct ref_model *m, int cap, int n_sink, int f16)
{
	struct ref_stream *rs = calloc(1, sizeof *rs);
	size_t kvd = (size_t)m->n_kv * (size_t)m->hd;

	rs->m = m;
	rs->cap = cap;
	rs->n_sink = n_sink;
	rs->f16 = f16;
	rs->K = calloc((size_t)m->n_layer, sizeof *rs->K);
	rs->V = calloc((size_t)m->n_layer, sizeof *rs->V);
	for (int il = 0; il < m->n_layer; il++) {
		rs->K[il] = calloc((size_t)cap * kvd, sizeof(double));
		rs->V[il] = calloc((size_t)cap * kvd, sizeof(double));
	}
	return rs;
}

void
ref_stream_free(struct ref_stream *rs)
{
	if (rs == NULL)
		return;
	for (int il = 0; il < rs->m->n_layer; il++) {
		free(rs->K[il]);
		free(rs->V[il]);
	}
	free(rs->K);
	free(rs->V);
	free(rs);
}

static void
round_f16(double *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] = fp16_to_f32(f32_to_fp16((float)v[i]));
}

/*
 * Stores the new token's raw K and V of one layer at the cache's end,
 * first shifting out the oldest window entry when the cache is full.
 */
static void
stream_put(struct ref_stream *rs, int il, const double *k, const double *v)
{
	size_t kvd = (size_t)rs->m->n_kv * (size_t)rs->m->hd;
	size_t at = (size_t)rs->len, s = (size_t)rs->n_sink;

	if (rs->len == rs->cap) {
		at = (size_t)rs->cap - 1;
		memmove(rs->K[il] + s * kvd, rs->K[il] + (s + 1) * kvd,
		    (at - s) * kvd * sizeof(double));
		memmove(rs->V[il] + s * kvd, rs->V[il] + (s + 1) * kvd,
		    (at - s) * kvd * sizeof(double));
	}
	memcpy(rs->K[il] + at * kvd, k, kvd * sizeof(double));
	memcpy(rs->V[il] + at * kvd, v, kvd * sizeof(double));
	if (rs->f16) {
		round_f16(rs->K[il] + at * kvd, kvd);
		round_f16(rs->V[il] + at * kvd, kvd);
	}
}

int
ref_stream_step(struct ref_stream *rs, int32_t token, double *logits)
{
	struct ref_model *m = rs->m;
	int e = m->n_embd, kvd = m->n_kv * m->hd, qd = m->n_head * m->hd;
	int n = rs->len < rs->cap ? rs->len + 1 : rs->cap;

	if (token < 0 || token >= m->n_vocab)
		return -1;
	double *x = calloc((size_t)e, 8), *xn = calloc((size_t)e, 8);
	double *q = calloc((size_t)qd, 8), *att = calloc((size_t)qd, 8);
	double *k = calloc((size_t)kvd, 8), *v = calloc((size_t)kvd, 8);
	double *Kr = calloc((size_t)n * (size_t)kvd, 8);
	double *tmp = calloc((size_t)e, 8), *g = calloc((size_t)m->n_ff, 8);
	double *u = calloc((size_t)m->n_ff, 8);

	embed_ref(m, token, x);
	for (int il = 0; il < m->n_layer; il++) {
		const struct ref_layer *l = &m->L[il];
		norm(x, l->attn_norm, xn, e, m->eps);
		mv(l->wk, l->bk, xn, k, kvd, e);
		mv(l->wv, l->bv, xn, v, kvd, e);
		head_norms(m, l->k_norm, k, m->n_kv);
		stream_put(rs, il, k, v);
		/* Every cached key rotated to its place, every step. */
		memcpy(Kr, rs->K[il], (size_t)n * kvd * sizeof *Kr);
		for (int j = 0; j < n; j++)
			for (int h = 0; h < m->n_kv; h++)
				rope(m, Kr + (size_t)j * kvd + h * m->hd, j);
		mv(l->wq, l->bq, xn, q, qd, e);
		head_norms(m, l->q_norm, q, m->n_head);
		for (int h = 0; h < m->n_head; h++)
			rope(m, q + h * m->hd, n - 1);
		/* Positions are places in the cache, the window's too. */
		attend(m, l->swa, q, Kr, rs->V[il], (size_t)n - 1, att);
		finish_layer(m, l, att, x, xn, tmp, g, u);
	}
	rs->len = n;
	head_ref(m, x, xn, logits);
	free(x); free(xn); free(q); free(att); free(k); free(v); free(Kr);
	free(tmp); free(g); free(u);
	return 0;
}
