/*
 * seq_attn: attention of a chunk of one sequence over its attention-sink
 * cache (seq_fwd.c runs the rest of each layer, for a whole batch).
 * Every function here sees one segment's rows as a work area of its own
 * (seq_fwd.c passes a view shifted to the segment's first row), so the
 * same code serves seq_eval and each segment of a batch.
 *
 * Sliding-window layers (gemma2's even layers, mistral) see the cache
 * entries whose cache position is within n_swa of the query's: query at
 * cache position p sees entries at p - n_swa < position <= p.  Sinks
 * are entries like any other there: they are seen while they are that
 * close and not after.  Such a layer was trained never to see a token
 * n_swa back, so keeping the sinks in view would show it something it
 * has never seen; the sinks exist for the full-attention layers, whose
 * softmax needs them.  In dense mode (no sinks, positions = stream
 * indices) this is exactly the model's own mask, 0 <= i - j < n_swa.
 *
 * Positions.  StreamingLLM places the tokens of the cache by their place
 * in it: sinks at 0..S-1, the window after them in order, the query
 * last.  Re-rotating every cached key on every step, as the reference
 * implementation does, costs O(cache) per token.  But a RoPE score only
 * depends on the difference of positions: R(p_q)q . R(p_k)k equals
 * q . R(p_k - p_q)k.  A window token's position is its stream index
 * minus the number of tokens evicted so far, the same offset for every
 * window token and for the query; so window keys are rotated once, at
 * their stream index, when they enter, and scored by the query rotated
 * at its own stream index: the differences are exactly those of cache
 * positions, however far the window has slid.  Sinks sit at positions
 * 0..S-1, which are also their stream indices, so their keys are stored
 * the same way; only their distance to the query differs from the
 * stream's, so they are scored by a second copy of the query rotated at
 * its cache position min(a, cap - 1).  That is two query rotations per
 * token and head and nothing per cached key: O(1) in the cache size
 * (below the O(n_sink) the paper asks for), and exact for any stream
 * length because every angle comes from an integer position in double
 * (rope.c).
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"
#include "seq_int.h"

static int32_t
min32(int64_t a, int64_t b)
{
	return (int32_t)(a < b ? a : b);
}

/*
 * What token t of a chunk sees in a sliding-window layer: the sinks
 * from s0[t] on and the window from slo[t] on (see the top comment).
 */
static void
swa_plan(const struct seq *s, struct seq_work *w, const struct chunk *ck)
{
	int64_t W = s->m->hp.n_swa, a, p;
	size_t t;

	if (W <= 0)
		return;
	for (t = 0; t < ck->n; t++) {
		a = ck->a0 + (int64_t)t;
		p = kv_pos(&s->kv, a);
		w->s0[t] = min32(p - W + 1 > 0 ? p - W + 1 : 0, w->ns[t]);
		w->slo[t] = w->hi[t] - W > w->lo[t] ? (int32_t)(w->hi[t] - W) :
		    w->lo[t];
	}
}

/*
 * The chunk's rows and, per token t at stream index a, what it sees in
 * gathered-row coordinates: sinks [0, ns) and window [lo, hi).  Rope
 * tables for the stream indices and, once positions and indices part,
 * for the cache positions.
 */
void
seq_attn_plan(const struct seq *s, struct seq_work *w, int64_t a0, size_t n,
    struct chunk *ck)
{
	const struct kv *kv = &s->kv;
	int64_t a, S = kv->n_sink, first_w;
	size_t t;

	ck->a0 = a0;
	ck->n = n;
	ck->n_sg = (size_t)min32(S, a0 + (int64_t)n);
	first_w = a0 > S ? a0 : S;
	ck->wlo = kv_win_lo(kv, first_w);
	ck->L = ck->n_sg + (a0 + (int64_t)n > S ? (size_t)(a0 + (int64_t)n -
	    ck->wlo) : 0);
	ck->sink_q = S > 0 && kv_pos(kv, a0 + (int64_t)n - 1) !=
	    a0 + (int64_t)n - 1;
	for (t = 0; t < n; t++) {
		a = a0 + (int64_t)t;
		w->ns[t] = min32(S, a + 1);
		w->lo[t] = w->hi[t] = 0;
		if (a >= S) {
			w->lo[t] = (int32_t)ck->n_sg + (int32_t)(kv_win_lo(kv,
			    a) - ck->wlo);
			w->hi[t] = (int32_t)ck->n_sg + (int32_t)(a - ck->wlo) +
			    1;
		}
		w->pos[t] = a;
	}
	swa_plan(s, w, ck);
	rope_table(&s->rope, w->pos, n, w->cs);
	if (ck->sink_q) {
		for (t = 0; t < n; t++)
			w->pos[t] = kv_pos(kv, a0 + (int64_t)t);
		rope_table(&s->rope, w->pos, n, w->cs_sink);
	}
}

/* The sink queries of chunk token t, head h. */
static const float *
sink_q(const struct attn_job *j, size_t t, long h)
{
	const float *q = j->ck->sink_q ? j->w->qs : j->w->q;

	return q + t * (size_t)j->w->q_dim + (size_t)h *
	    (size_t)j->s->m->hp.head_dim;
}

static void
run_probe(const struct attn_job *j, long h0, long nh, const float *scores,
    size_t len)
{
	long i;

	for (i = 0; i < nh; i++)
		j->s->probe(j->s->probe_arg, j->layer, (int)(h0 + i),
		    scores + (size_t)i * len, (int32_t)len);
}

/*
 * The spans of a decode step in a sliding-window layer: the sinks still
 * within the window and the window's last n_swa entries, which may wrap
 * around the ring (two spans).  Returns the span count.
 */
static size_t
decode_swa_spans(const struct attn_job *j, long kvh, const float *qs,
    const float *q, struct kern_attn_span *sp, int32_t *slot0)
{
	const struct kv *kv = &j->s->kv;
	int64_t a = j->ck->a0, W = j->s->m->hp.n_swa, p = kv_pos(kv, a);
	int64_t ns = min32(kv->n_sink, a + 1), s0, nw, b0;
	int32_t first, last;
	size_t n = 0;

	s0 = p - W + 1 > 0 ? p - W + 1 : 0;
	if (s0 < ns) {
		sp[n].k = kv_k_row(kv, j->layer, (int)kvh, (int32_t)s0);
		sp[n].v = kv_v_row(kv, j->layer, (int)kvh, (int32_t)s0);
		sp[n].len = (size_t)(ns - s0);
		slot0[n] = (int32_t)s0;
		sp[n++].q = qs;
	}
	if (a < kv->n_sink)
		return n;
	nw = a - kv_win_lo(kv, a) + 1;
	b0 = a - (nw < W ? nw : W) + 1;
	first = kv_slot(kv, b0);
	last = kv_slot(kv, a);
	if (first > last) { /* wrapped: [first, cap) then [n_sink, last] */
		sp[n].k = kv_k_row(kv, j->layer, (int)kvh, first);
		sp[n].v = kv_v_row(kv, j->layer, (int)kvh, first);
		sp[n].len = (size_t)(kv->cap - first);
		slot0[n] = first;
		sp[n++].q = q;
		first = kv->n_sink;
	}
	sp[n].k = kv_k_row(kv, j->layer, (int)kvh, first);
	sp[n].v = kv_v_row(kv, j->layer, (int)kvh, first);
	sp[n].len = (size_t)(last - first + 1);
	slot0[n] = first;
	sp[n++].q = q;
	return n;
}

/*
 * The probe's weights are by slot: spread a sliding-window layer's
 * (span by span) over the slots, zeros where it does not look.  For
 * analysis tools only, so the allocation does not matter.
 */
static void
probe_swa(const struct attn_job *j, long h0, long nh, const float *scores,
    const struct kern_attn_span *sp, const int32_t *slot0, size_t n_span)
{
	const struct kv *kv = &j->s->kv;
	int64_t a = j->ck->a0;
	size_t full = (size_t)min32(kv->n_sink, a + 1) + (a < kv->n_sink ? 0 :
	    (size_t)min32(a - kv->n_sink + 1, kv->n_win)), len = 0, i, k, o;
	float *wts = calloc((size_t)nh * full, sizeof *wts);
	long h;

	if (wts == NULL)
		return;
	for (i = 0; i < n_span; i++)
		len += sp[i].len;
	for (h = 0; h < nh; h++)
		for (i = 0, o = 0; i < n_span; o += sp[i++].len)
			for (k = 0; k < sp[i].len; k++)
				wts[(size_t)h * full + (size_t)slot0[i] + k] =
				    scores[(size_t)h * len + o + k];
	run_probe(j, h0, nh, wts, full);
	free(wts);
}

/* Decode: one token's heads [h0, h0 + nh) straight from the cache. */
static void
attn_decode(const struct attn_job *j, long h0, long nh, float *scores)
{
	const struct kv *kv = &j->s->kv;
	const struct model_hparams *hp = &j->s->m->hp;
	long kvh = h0 / (hp->n_head / hp->n_head_kv);
	int64_t a = j->ck->a0;
	size_t hd = (size_t)hp->head_dim;
	struct kern_attn_span sp[3];
	int32_t slot0[3];
	struct kern_attn_args ar = { .span = sp, .n_span = 2, .n_q = (size_t)nh,
		.q_stride = hd, .kv_stride = hd, .hd = hd, .out_stride = hd,
		.kv_f16 = kv->type == KV_F16, .scale = hp->attn_scale,
		.softcap = hp->attn_softcap, .scores = scores,
		.out = j->w->att + (size_t)h0 * hd };

	if (j->s->m->layers[j->layer].swa) {
		ar.n_span = decode_swa_spans(j, kvh, sink_q(j, 0, h0),
		    j->w->q + (size_t)h0 * hd, sp, slot0);
		kern_attn(&ar);
		if (j->s->probe != NULL)
			probe_swa(j, h0, nh, scores, sp, slot0, ar.n_span);
		return;
	}
	sp[0].k = kv_k_row(kv, j->layer, (int)kvh, 0);
	sp[0].v = kv_v_row(kv, j->layer, (int)kvh, 0);
	sp[0].len = (size_t)min32(kv->n_sink, a + 1);
	sp[0].q = sink_q(j, 0, h0);
	sp[1].k = kv_k_row(kv, j->layer, (int)kvh, kv->n_sink);
	sp[1].v = kv_v_row(kv, j->layer, (int)kvh, kv->n_sink);
	sp[1].len = a < kv->n_sink ? 0 : (size_t)min32(a - kv->n_sink + 1,
	    kv->n_win);
	sp[1].q = j->w->q + (size_t)h0 * hd;
	kern_attn(&ar);
	if (j->s->probe != NULL)
		run_probe(j, h0, nh, scores, sp[0].len + sp[1].len);
}

/* A few tokens: token t's heads [h0, h0 + nh) over the gathered rows. */
static void
attn_rows(const struct attn_job *j, size_t t, long h0, long nh,
    float *scores)
{
	const struct model_hparams *hp = &j->s->m->hp;
	const struct seq_work *w = j->w;
	long kvh = h0 / (hp->n_head / hp->n_head_kv);
	size_t hd = (size_t)hp->head_dim, base = (size_t)kvh * w->g_rows * hd;
	size_t qo = t * (size_t)w->q_dim + (size_t)h0 * hd;
	struct kern_attn_span sp[2];
	size_t s0 = j->ck->s0 != NULL ? (size_t)j->ck->s0[t] : 0;
	size_t lo = (size_t)j->ck->lo[t];
	struct kern_attn_args ar = { .span = sp, .n_span = 2, .n_q = (size_t)nh,
		.q_stride = hd, .kv_stride = hd, .hd = hd, .out_stride = hd,
		.scale = hp->attn_scale, .softcap = hp->attn_softcap,
		.scores = scores, .out = w->att + qo };

	sp[0].k = w->kg + base + s0 * hd;
	sp[0].v = w->vg + base + s0 * hd;
	sp[0].len = (size_t)w->ns[t] - s0;
	sp[0].q = sink_q(j, t, h0);
	sp[1].k = w->kg + base + lo * hd;
	sp[1].v = w->vg + base + lo * hd;
	sp[1].len = (size_t)w->hi[t] - lo;
	sp[1].q = w->q + qo;
	kern_attn(&ar);
}

/*
 * Jobs of (token, KV head, part of its query heads): each cached row is
 * read once for all the heads sharing it.
 */
static void
attn_slice(void *arg, int ith, int nth)
{
	struct attn_job *j = arg;
	const struct model_hparams *hp = &j->s->m->hp;
	long lo, hi, i, n_kv = hp->n_head_kv, sub, per = j->per, h0;
	float *scores = j->w->scores + (size_t)ith * j->per_thread;

	sub = (hp->n_head / n_kv) / per;
	pool_split((long)j->ck->n * n_kv * sub, ith, nth, 1, &lo, &hi);
	for (i = lo; i < hi; i++) {
		h0 = i % (n_kv * sub) * per;
		if (j->ck->n == 1)
			attn_decode(j, h0, per, scores);
		else
			attn_rows(j, (size_t)(i / (n_kv * sub)), h0, per,
			    scores);
	}
}

/* Whole heads through sgemm, for chunks of many tokens. */
static void
attn_gemm_slice(void *arg, int ith, int nth)
{
	struct attn_job *j = arg;
	const struct seq_work *w = j->w;
	const struct model_hparams *hp = &j->s->m->hp;
	size_t hd = (size_t)hp->head_dim;
	struct matmul_band b = { .ldq = (size_t)w->q_dim, .ldk = hd,
		.n = j->ck->n, .L = j->ck->L, .n_sink = j->ck->n_sg, .hd = hd,
		.ldo = (size_t)w->q_dim, .ns = w->ns, .lo = j->ck->lo,
		.hi = w->hi, .s0 = j->ck->s0, .scale = hp->attn_scale,
		.softcap = hp->attn_softcap,
		.S = w->scores + (size_t)ith * j->per_thread };
	long lo, hi, h, kvh;

	pool_split(hp->n_head, ith, nth, 1, &lo, &hi);
	for (h = lo; h < hi; h++) {
		kvh = h / (hp->n_head / hp->n_head_kv);
		b.Q = w->q + (size_t)h * hd;
		b.Qs = j->ck->sink_q ? w->qs + (size_t)h * hd : NULL;
		b.K = w->kg + (size_t)kvh * w->g_rows * hd;
		b.V = w->vg + (size_t)kvh * w->g_rows * hd;
		b.out = w->att + (size_t)h * hd;
		matmul_attn_band(&b);
	}
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

/* f16 caches round the chunk's own rows too, as decode reads them back. */
static void
put_gathered(const struct kv *kv, const float *src, float *dst)
{
	int32_t d;

	if (kv->type == KV_F32) {
		memcpy(dst, src, (size_t)kv->head_dim * sizeof(float));
		return;
	}
	for (d = 0; d < kv->head_dim; d++)
		dst[d] = fp16_to_f32(f32_to_fp16(src[d]));
}

/* The rows a chunk reads: the cache's, then the chunk's own. */
static void
gather(const struct seq *s, struct seq_work *w, int layer,
    const struct chunk *ck)
{
	const struct kv *kv = &s->kv;
	size_t hd = (size_t)kv->head_dim, t, row, o;
	int64_t a, prior_s = min32(kv->n_sink, ck->a0);
	int32_t h;

	kv_gather(kv, layer, 0, prior_s, w->kg, w->vg, w->g_rows, 0);
	if (ck->wlo < ck->a0)
		kv_gather(kv, layer, ck->wlo, ck->a0, w->kg, w->vg, w->g_rows,
		    ck->n_sg);
	for (t = 0; t < ck->n; t++) {
		a = ck->a0 + (int64_t)t;
		row = a < kv->n_sink ? (size_t)a : ck->n_sg +
		    (size_t)(a - ck->wlo);
		for (h = 0; h < kv->n_head_kv; h++) {
			o = ((size_t)h * w->g_rows + row) * hd;
			put_gathered(kv, w->kc + t * (size_t)w->kv_dim +
			    (size_t)h * hd, w->kg + o);
			put_gathered(kv, w->vc + t * (size_t)w->kv_dim +
			    (size_t)h * hd, w->vg + o);
		}
	}
}

/* The job's fields, then what comes before the scores: the ropes. */
static void
attn_setup(struct attn_job *j, struct seq *s, struct seq_work *w, int nth,
    int layer, struct chunk *ck)
{
	const struct model_hparams *hp = &s->m->hp;

	j->s = s;
	j->w = w;
	j->ck = ck;
	j->layer = layer;
	j->per = attn_per_job(hp, ck->n, nth);
	ck->s0 = s->m->layers[layer].swa ? w->s0 : NULL;
	ck->lo = s->m->layers[layer].swa ? w->slo : w->lo;
	j->per_thread = w->scores_cap / (size_t)nth;
	if (ck->sink_q) {
		memcpy(w->qs, w->q, ck->n * (size_t)w->q_dim * sizeof(float));
		rope_apply(&s->rope, w->cs_sink, w->qs, ck->n,
		    (size_t)w->q_dim, hp->n_head);
	}
	rope_apply(&s->rope, w->cs, w->q, ck->n, (size_t)w->q_dim, hp->n_head);
	rope_apply(&s->rope, w->cs, w->kc, ck->n, (size_t)w->kv_dim,
	    hp->n_head_kv);
}

void
seq_attn(struct seq *s, struct seq_work *w, struct pool *pool, int layer,
    struct chunk *ck)
{
	struct attn_job j;

	attn_setup(&j, s, w, pool_threads(pool), layer, ck);
	if (ck->n == 1) {
		/* Decode reads the cache in place, its own row included. */
		kv_write(&s->kv, layer, ck->a0, w->kc, w->vc, 1,
		    (size_t)w->kv_dim);
		pool_run(pool, attn_slice, &j);
		return;
	}
	gather(s, w, layer, ck);
	pool_run(pool, ck->n >= ATTN_GEMM_MIN ? attn_gemm_slice : attn_slice,
	    &j);
	kv_write(&s->kv, layer, ck->a0, w->kc, w->vc, ck->n, (size_t)w->kv_dim);
}

struct attn_many {
	struct attn_job *j;
	size_t n;
};

/* attn_slice's decode jobs, of every segment, split as one list. */
static void
attn_many_slice(void *arg, int ith, int nth)
{
	const struct attn_many *a = arg;
	const struct attn_job *j0 = &a->j[0];
	long each = j0->s->m->hp.n_head / j0->per, lo, hi, i;
	float *scores = j0->w->scores + (size_t)ith * j0->per_thread;

	pool_split((long)a->n * each, ith, nth, 1, &lo, &hi);
	for (i = lo; i < hi; i++)
		attn_decode(&a->j[i % (long)a->n], i / (long)a->n * j0->per,
		    j0->per, scores);
}

void
seq_attn_decode(struct pool *pool, int layer, struct attn_job *j, size_t n)
{
	struct attn_many a = { .j = j, .n = n };
	int nth = pool_threads(pool);
	size_t i;

	for (i = 0; i < n; i++) {
		attn_setup(&j[i], j[i].s, &j[i].view, nth, layer, j[i].ck);
		kv_write(&j[i].s->kv, layer, j[i].ck->a0, j[i].view.kc,
		    j[i].view.vc, 1, (size_t)j[i].view.kv_dim);
	}
	pool_run(pool, attn_many_slice, &a);
}
