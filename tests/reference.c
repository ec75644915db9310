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
	double *ffn_norm, *wg, *wu, *wd;
};

struct ref_model {
	int neox;
	int n_vocab, n_embd, n_layer, n_head, n_kv, hd, n_ff, n_rot;
	double eps, base, scale;
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

static void
load_layers(struct ref_model *m, const struct gguf_file *g)
{
	int il;

	m->L = calloc((size_t)m->n_layer, sizeof *m->L);
	for (il = 0; il < m->n_layer; il++) {
		struct ref_layer *l = &m->L[il];
		l->attn_norm = load_blk(g, il, "attn_norm.weight");
		l->wq = load_blk(g, il, "attn_q.weight");
		l->wk = load_blk(g, il, "attn_k.weight");
		l->wv = load_blk(g, il, "attn_v.weight");
		l->bq = load_blk(g, il, "attn_q.bias");
		l->bk = load_blk(g, il, "attn_k.bias");
		l->bv = load_blk(g, il, "attn_v.bias");
		l->wo = load_blk(g, il, "attn_output.weight");
		l->ffn_norm = load_blk(g, il, "ffn_norm.weight");
		l->wg = load_blk(g, il, "ffn_gate.weight");
		l->wu = load_blk(g, il, "ffn_up.weight");
		l->wd = load_blk(g, il, "ffn_down.weight");
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
	m->neox = strcmp(a, "qwen2") == 0;
	m->n_embd = (int)u32_or(g, a, "embedding_length", 0);
	m->n_layer = (int)u32_or(g, a, "block_count", 0);
	m->n_head = (int)u32_or(g, a, "attention.head_count", 0);
	m->n_kv = (int)u32_or(g, a, "attention.head_count_kv", m->n_head);
	m->n_ff = (int)u32_or(g, a, "feed_forward_length", 0);
	m->hd = m->n_embd / m->n_head;
	m->n_rot = (int)u32_or(g, a, "rope.dimension_count", m->hd);
	m->eps = f64_or(g, a, "attention.layer_norm_rms_epsilon", 1e-5);
	m->base = f64_or(g, a, "rope.freq_base", 10000.0);
	m->scale = f64_or(g, a, "rope.scaling.factor", 1.0);
	m->embd = load(g, "token_embd.weight");
	m->n_vocab = (int)gguf_find_tensor(g, "token_embd.weight")->ne[1];
	m->out_norm = load(g, "output_norm.weight");
	m->out = load(g, "output.weight");
	if (m->out == NULL)
		m->out = load(g, "token_embd.weight");
	load_layers(m, g);
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
			l->bk, l->bv, l->wo, l->ffn_norm, l->wg, l->wu, l->wd };
		for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
			free(all[i]);
	}
	free(m->L);
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
		    pow(m->base, -2.0 * i / m->n_rot);
		int a = m->neox ? i : 2 * i, b = m->neox ? i + m->n_rot / 2 :
		    2 * i + 1;
		double x0 = v[a], x1 = v[b];
		v[a] = x0 * cos(theta) - x1 * sin(theta);
		v[b] = x0 * sin(theta) + x1 * cos(theta);
	}
}

/* Attention output for query position t over keys/values 0..t. */
static void
attend(const struct ref_model *m, const double *q, const double *K,
    const double *V, size_t t, double *out)
{
	int kvd = m->n_kv * m->hd;
	double *p = malloc((t + 1) * sizeof *p);

	for (int h = 0; h < m->n_head; h++) {
		int kh = h / (m->n_head / m->n_kv);
		double max = -INFINITY, sum = 0.0;
		for (size_t j = 0; j <= t; j++) {
			double s = 0.0;
			for (int i = 0; i < m->hd; i++)
				s += q[h * m->hd + i] * K[j * kvd + kh * m->hd + i];
			p[j] = s / sqrt((double)m->hd);
			max = p[j] > max ? p[j] : max;
		}
		for (size_t j = 0; j <= t; j++)
			sum += p[j] = exp(p[j] - max);
		for (int i = 0; i < m->hd; i++) {
			double o = 0.0;
			for (size_t j = 0; j <= t; j++)
				o += p[j] / sum * V[j * kvd + kh * m->hd + i];
			out[h * m->hd + i] = o;
		}
	}
	free(p);
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
	for (int i = 0; i < e; i++)
		x[i] += tmp[i];
	norm(x, l->ffn_norm, xn, e, m->eps);
	mv(l->wg, NULL, xn, g, m->n_ff, e);
	mv(l->wu, NULL, xn, u, m->n_ff, e);
	for (int i = 0; i < m->n_ff; i++)
		g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
	mv(l->wd, NULL, g, tmp, e, m->n_ff);
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
		memcpy(x + t * e, m->embd + (size_t)tok[t] * e, e * sizeof *x);
	}
	for (int il = 0; il < m->n_layer; il++) {
		const struct ref_layer *l = &m->L[il];
		/* K and V of every position first, then each query. */
		for (size_t t = 0; t < n; t++) {
			norm(x + t * e, l->attn_norm, xn, e, m->eps);
			mv(l->wk, l->bk, xn, K + t * kvd, kvd, e);
			mv(l->wv, l->bv, xn, V + t * kvd, kvd, e);
			for (int h = 0; h < m->n_kv; h++)
				rope(m, K + t * kvd + h * m->hd, (long)t);
		}
		for (size_t t = 0; t < n; t++) {
			double *xt = x + t * e;
			norm(xt, l->attn_norm, xn, e, m->eps);
			mv(l->wq, l->bq, xn, q, qd, e);
			for (int h = 0; h < m->n_head; h++)
				rope(m, q + h * m->hd, (long)t);
			attend(m, q, K, V, t, att);
			finish_layer(m, l, att, xt, xn, tmp, g, u);
		}
	}
	for (size_t t = 0; t < n; t++) {
		norm(x + t * e, m->out_norm, xn, e, m->eps);
		mv(m->out, NULL, xn, logits + t * (size_t)m->n_vocab, m->n_vocab,
		    e);
	}
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

	memcpy(x, m->embd + (size_t)token * e, e * sizeof *x);
	for (int il = 0; il < m->n_layer; il++) {
		const struct ref_layer *l = &m->L[il];
		norm(x, l->attn_norm, xn, e, m->eps);
		mv(l->wk, l->bk, xn, k, kvd, e);
		mv(l->wv, l->bv, xn, v, kvd, e);
		stream_put(rs, il, k, v);
		/* Every cached key rotated to its place, every step. */
		memcpy(Kr, rs->K[il], (size_t)n * kvd * sizeof *Kr);
		for (int j = 0; j < n; j++)
			for (int h = 0; h < m->n_kv; h++)
				rope(m, Kr + (size_t)j * kvd + h * m->hd, j);
		mv(l->wq, l->bq, xn, q, qd, e);
		for (int h = 0; h < m->n_head; h++)
			rope(m, q + h * m->hd, n - 1);
		attend(m, q, Kr, rs->V[il], (size_t)n - 1, att);
		finish_layer(m, l, att, x, xn, tmp, g, u);
	}
	rs->len = n;
	norm(x, m->out_norm, xn, e, m->eps);
	mv(m->out, NULL, xn, logits, m->n_vocab, e);
	free(x); free(xn); free(q); free(att); free(k); free(v); free(Kr);
	free(tmp); free(g); free(u);
	return 0;
}
