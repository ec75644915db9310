/*
 * seq: a sequence's cache policy and stream.  Checks the options, owns
 * the cache (kv.c) and the rope tables, cuts input into chunks the
 * forward pass (seq_fwd.c) takes, and runs the recompute baseline.
 */
#include "seq.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernels.h"
#include "mem.h"
#include "quant.h"
#include "seq_int.h"

static const char *const mode_names[] = {
	[SEQ_STREAMING] = "streaming",
	[SEQ_WINDOW] = "window",
	[SEQ_RECOMPUTE] = "recompute",
	[SEQ_DENSE] = "dense",
};

void
seq_opts_default(struct seq_opts *o)
{
	memset(o, 0, sizeof *o);
	o->mode = SEQ_STREAMING;
	o->n_sink = -1;
	o->kv_type = KV_F32;
}

int
seq_mode_parse(const char *s, enum seq_mode *m)
{
	size_t i;

	for (i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++) {
		if (strcasecmp(s, mode_names[i]) == 0) {
			*m = (enum seq_mode)i;
			return 0;
		}
	}
	return -1;
}

const char *
seq_mode_name(enum seq_mode m)
{
	return (unsigned)m < sizeof mode_names / sizeof mode_names[0] ?
	    mode_names[m] : "?";
}

int
seq_kv_parse(const char *s, enum kv_type *t)
{
	if (strcasecmp(s, "f32") == 0)
		*t = KV_F32;
	else if (strcasecmp(s, "f16") == 0)
		*t = KV_F16;
	else
		return -1;
	return 0;
}

const char *
seq_kv_name(enum kv_type t)
{
	return t == KV_F16 ? "f16" : "f32";
}

/* Options with defaults filled in; n_sink becomes the sinks in effect. */
static void
resolve(const struct seq_opts *in, struct seq_opts *o)
{
	if (in != NULL)
		*o = *in;
	else
		seq_opts_default(o);
	if (o->n_cache == 0)
		o->n_cache = SEQ_DEFAULT_CACHE;
	if (o->n_sink == -1)
		o->n_sink = o->mode == SEQ_STREAMING ? SEQ_DEFAULT_SINKS : 0;
	if (o->mode == SEQ_DENSE)
		o->n_sink = o->n_pin = 0; /* nothing is evicted: no sinks */
	else if (o->n_pin > o->n_sink && o->n_sink >= 0)
		o->n_sink = o->n_pin;
}

static int
check_shape(const struct seq_opts *in, const struct seq_opts *o,
    char *cause)
{
	if (o->n_cache < 1 || o->n_cache > SEQ_MAX_CACHE)
		return err_set(cause, "cache size %d is out of range (1 to %d "
		    "tokens)", o->n_cache, SEQ_MAX_CACHE);
	if (in->n_sink < -1)
		return err_set(cause, "sink count %d is negative", in->n_sink);
	if (in->n_pin < 0)
		return err_set(cause, "pinned prefix %d is negative", in->n_pin);
	if (o->mode == SEQ_WINDOW && (in->n_sink > 0 || in->n_pin > 0))
		return err_set(cause, "window mode keeps no sinks and no pinned "
		    "prefix; use streaming mode for them");
	if (in->n_pin > 0 && in->n_pin >= o->n_cache)
		return err_set(cause, "a pinned prefix of %d tokens does not "
		    "fit a cache of %d (at least one window slot is needed)",
		    in->n_pin, o->n_cache);
	if (o->n_sink >= o->n_cache)
		return err_set(cause, "%d sinks do not fit a cache of %d: the "
		    "cache must hold the sinks and at least one window token",
		    o->n_sink, o->n_cache);
	return 0;
}

int
seq_check_opts(const struct model *m, const struct seq_opts *in,
    char *cause)
{
	struct seq_opts o, def;
	uint64_t bytes, max;

	if (in == NULL) {
		seq_opts_default(&def);
		in = &def;
	}
	if ((unsigned)in->mode > SEQ_DENSE)
		return err_set(cause, "unknown cache mode %d", (int)in->mode);
	if (in->kv_type != KV_F32 && in->kv_type != KV_F16)
		return err_set(cause, "unknown KV type %d", (int)in->kv_type);
	resolve(in, &o);
	if (check_shape(in, &o, cause) != 0)
		return -1;
	bytes = kv_total_bytes(&m->hp, o.kv_type, o.n_cache);
	max = o.max_bytes != 0 ? o.max_bytes : mem_half_ram();
	if (bytes > max)
		return err_set(cause, "a cache of %d tokens needs %.1f MiB, over "
		    "the limit of %.1f MiB", o.n_cache, (double)bytes /
		    (1 << 20), (double)max / (1 << 20));
	return 0;
}

struct seq *
seq_new(const struct model *m, const struct seq_opts *in, char *cause)
{
	struct seq_opts o;
	struct seq *s;

	if (seq_check_opts(m, in, cause) != 0)
		return NULL;
	resolve(in, &o);
	if ((s = calloc(1, sizeof *s)) == NULL) {
		err_set(cause, "out of memory");
		return NULL;
	}
	s->m = m;
	s->mode = o.mode;
	if (rope_init(&s->rope, &m->hp, cause) != 0 ||
	    kv_init(&s->kv, &m->hp, o.kv_type, o.n_cache, o.n_sink,
	    o.mode != SEQ_DENSE, cause) != 0) {
		seq_free(s);
		return NULL;
	}
	return s;
}

void
seq_free(struct seq *s)
{
	if (s == NULL)
		return;
	kv_free(&s->kv);
	rope_free(&s->rope);
	free(s);
}

void
seq_get_info(const struct seq *s, struct seq_info *i)
{
	memset(i, 0, sizeof *i);
	i->mode = s->mode;
	i->kv_type = s->kv.type;
	i->n_cache = s->kv.cap;
	i->n_sink = s->kv.n_sink;
	i->n_cached = kv_n_cached(&s->kv);
	i->n_seen = s->kv.n_seen;
	i->n_evicted = kv_n_evicted(&s->kv);
	i->token_layer_bytes = kv_token_layer_bytes(&s->m->hp, s->kv.type);
	i->bytes = kv_total_bytes(&s->m->hp, s->kv.type, s->kv.cap);
}

void
seq_reset(struct seq *s)
{
	kv_clear(&s->kv);
}

void
seq_set_probe(struct seq *s, seq_probe_fn *fn, void *arg)
{
	s->probe = fn;
	s->probe_arg = arg;
}

static void *
alloc_floats(size_t n)
{
	void *p;

	if (posix_memalign(&p, 64, n * sizeof(float) + 64) != 0)
		return NULL;
	memset(p, 0, n * sizeof(float));
	return p;
}

static int
work_alloc(struct seq_work *w, const struct model_hparams *hp)
{
	size_t nb = (size_t)w->n_batch;

	w->x = alloc_floats(nb * (size_t)hp->n_embd);
	w->xn = alloc_floats(nb * (size_t)hp->n_embd);
	w->q = alloc_floats(nb * (size_t)w->q_dim);
	w->qs = alloc_floats(nb * (size_t)w->q_dim);
	w->att = alloc_floats(nb * (size_t)w->q_dim);
	w->kc = alloc_floats(nb * (size_t)w->kv_dim);
	w->vc = alloc_floats(nb * (size_t)w->kv_dim);
	w->g = alloc_floats(nb * (size_t)hp->n_ff);
	w->u = alloc_floats(nb * (size_t)hp->n_ff);
	w->cs = alloc_floats(nb * (size_t)hp->n_rot);
	w->cs_sink = alloc_floats(nb * (size_t)hp->n_rot);
	w->pos = calloc(nb, sizeof(int64_t));
	w->ns = calloc(nb, sizeof(int32_t));
	w->lo = calloc(nb, sizeof(int32_t));
	w->hi = calloc(nb, sizeof(int32_t));
	w->s0 = calloc(nb, sizeof(int32_t));
	w->slo = calloc(nb, sizeof(int32_t));
	w->mx = calloc(nb, sizeof *w->mx);
	w->my = calloc(3 * nb, sizeof *w->my);
	w->aj = calloc(nb, sizeof *w->aj);
	return w->x && w->xn && w->q && w->qs && w->att && w->kc && w->vc &&
	    w->g && w->u && w->cs && w->cs_sink && w->pos && w->ns && w->lo &&
	    w->hi && w->s0 && w->slo && w->mx && w->my && w->aj ? 0 : -1;
}

struct seq_work *
seq_work_new(const struct model *m, int32_t n_batch, char *cause)
{
	struct seq_work *w;

	if (n_batch < 0 || n_batch > 65536) {
		err_set(cause, "batch size %d is out of range (1 to 65536)",
		    n_batch);
		return NULL;
	}
	if ((w = calloc(1, sizeof *w)) == NULL) {
		err_set(cause, "out of memory");
		return NULL;
	}
	w->m = m;
	w->n_batch = n_batch > 0 ? n_batch : 512;
	w->q_dim = m->hp.n_head * m->hp.head_dim;
	w->kv_dim = m->hp.n_head_kv * m->hp.head_dim;
	if (work_alloc(w, &m->hp) != 0) {
		err_set(cause, "out of memory for a %d-token batch",
		    w->n_batch);
		seq_work_free(w);
		return NULL;
	}
	return w;
}

size_t
seq_work_bytes(const struct seq_work *w)
{
	const struct model_hparams *hp = &w->m->hp;
	size_t per_row = 2 * (size_t)hp->n_embd + 3 * (size_t)w->q_dim +
	    2 * (size_t)w->kv_dim + 2 * (size_t)hp->n_ff +
	    2 * (size_t)hp->n_rot;

	/*
	 * The floats, the per-row positions and bounds, matmul_multi's rows,
	 * the decode rows' attention jobs.
	 */
	return (size_t)w->n_batch * (per_row * sizeof(float) +
	    sizeof(int64_t) + 5 * sizeof(int32_t) + 4 * sizeof(float *) +
	    sizeof(struct attn_job));
}

void
seq_work_free(struct seq_work *w)
{
	if (w == NULL)
		return;
	free(w->x);
	free(w->xn);
	free(w->q);
	free(w->qs);
	free(w->att);
	free(w->kc);
	free(w->vc);
	free(w->g);
	free(w->u);
	free(w->cs);
	free(w->cs_sink);
	free(w->pos);
	free(w->ns);
	free(w->lo);
	free(w->hi);
	free(w->s0);
	free(w->slo);
	free(w->mx);
	free(w->my);
	free(w->aj);
	free(w->kg);
	free(w->vg);
	free(w->scores);
	free(w->rtok);
	matmul_scratch_free(&w->mm);
	free(w);
}

/*
 * Tokens in the next chunk.  Chunks that evict gather the window before
 * them, so they stay near the window's size: a chunk much longer than
 * the window would compute scores mostly outside every token's band.
 */
size_t
seq_chunk_len(const struct seq *s, size_t left, size_t max)
{
	size_t c = left < max ? left : max;
	size_t lim = s->kv.n_win > 32 ? (size_t)s->kv.n_win : 32;

	if (s->probe != NULL)
		return 1;
	if (s->kv.evict && s->kv.n_seen + (int64_t)c > s->kv.cap && c > lim)
		c = lim;
	return c;
}

static size_t
next_chunk(const struct seq *s, const struct seq_work *w, size_t left)
{
	return seq_chunk_len(s, left, (size_t)w->n_batch);
}

static float *
logits_at(float *logits, int all, size_t i, size_t c, size_t n, size_t nv)
{
	if (logits == NULL)
		return NULL;
	if (all)
		return logits + i * nv;
	return i + c == n ? logits : NULL;
}

/*
 * One token past a full cache, the recompute way: the cached tokens
 * (sinks, then the window's newest n_win - 1) and the new one are
 * encoded from scratch at positions 0..cap-1; then the token ring is
 * put back in stream order for the next step.
 */
static void
recompute_one(struct seq *s, struct seq_work *w, struct pool *pool,
    int32_t token, float *logits)
{
	struct kv *kv = &s->kv;
	int64_t a = kv->n_seen, b;
	size_t n = (size_t)kv->cap, i, c;

	for (b = 0; b < kv->n_sink; b++)
		w->rtok[b] = kv->tok[b];
	for (b = a - kv->n_win + 1; b < a; b++)
		w->rtok[kv->n_sink + (b - (a - kv->n_win + 1))] =
		    kv->tok[kv_slot(kv, b)];
	w->rtok[n - 1] = token;
	kv->n_seen = 0;
	for (i = 0; i < n; i += c) {
		c = n - i < (size_t)w->n_batch ? n - i : (size_t)w->n_batch;
		seq_fwd_chunk(s, w, pool, w->rtok + i, c, i + c == n ? logits :
		    NULL, 0);
	}
	kv->n_seen = a + 1;
	kv_put_tokens(kv, a - kv->n_win + 1, w->rtok + kv->n_sink,
	    (size_t)kv->n_win);
}

static int
eval_recompute(struct seq *s, struct seq_work *w, struct pool *pool,
    const int32_t *tokens, size_t n, float *logits, int all, char *cause)
{
	size_t nv = (size_t)s->m->hp.n_vocab, i, c, cap = (size_t)s->kv.cap;
	size_t nb = (size_t)w->n_batch;

	if (seq_fwd_reserve(s, w, pool, nb < cap ? nb : cap, 0, cause) != 0)
		return -1;
	if (w->rtok_cap < cap) {
		free(w->rtok);
		w->rtok_cap = 0;
		if ((w->rtok = calloc(cap, sizeof(int32_t))) == NULL)
			return err_set(cause, "out of memory");
		w->rtok_cap = cap;
	}
	for (i = 0; i < n; i += c) {
		if (s->kv.n_seen < s->kv.cap) {
			/* Until the cache is full, recompute is dense. */
			c = next_chunk(s, w, n - i);
			if (c > cap - (size_t)s->kv.n_seen)
				c = cap - (size_t)s->kv.n_seen;
			seq_fwd_chunk(s, w, pool, tokens + i, c,
			    logits_at(logits, all, i, c, n, nv), all);
			continue;
		}
		c = 1;
		recompute_one(s, w, pool, tokens[i], logits_at(logits, all, i,
		    1, n, nv));
	}
	return 0;
}

int
seq_check_input(const struct seq *s, const struct seq_work *w,
    const int32_t *tokens, size_t n, char *cause)
{
	int32_t nv = s->m->hp.n_vocab;
	size_t i;

	if (w->m != s->m)
		return err_set(cause, "work area made for another model");
	if (n == 0)
		return err_set(cause, "no tokens to evaluate");
	for (i = 0; i < n; i++) {
		if (tokens[i] < 0 || tokens[i] >= nv)
			return err_set(cause, "token id %d is outside the "
			    "vocabulary (0..%d)", tokens[i], nv - 1);
	}
	if (!s->kv.evict && n > (size_t)(s->kv.cap - s->kv.n_seen))
		return err_set(cause, "the dense cache is full: %zu more tokens "
		    "do not fit, %lld of its %d are used (dense mode never "
		    "evicts; use streaming or a larger cache)", n,
		    (long long)s->kv.n_seen, s->kv.cap);
	return 0;
}

int
seq_eval(struct seq *s, struct seq_work *w, struct pool *pool,
    const int32_t *tokens, size_t n, float *logits, int all, char *cause)
{
	size_t nv = (size_t)s->m->hp.n_vocab, i, c;

	if (seq_check_input(s, w, tokens, n, cause) != 0)
		return -1;
	if (s->mode == SEQ_RECOMPUTE)
		return eval_recompute(s, w, pool, tokens, n, logits, all,
		    cause);
	if (seq_fwd_reserve(s, w, pool, next_chunk(s, w, n), 0, cause) != 0)
		return -1;
	for (i = 0; i < n; i += c) {
		c = next_chunk(s, w, n - i);
		seq_fwd_chunk(s, w, pool, tokens + i, c, logits_at(logits, all,
		    i, c, n, nv), all);
	}
	return 0;
}

/*
 * Whether a segment cannot join the shared pass: recompute past a full
 * cache re-encodes the whole cache per token, a probe goes token by
 * token, and a segment longer than its chunk is several passes.  Such
 * segments run alone through seq_eval, with the same results.
 */
int
seq_runs_alone(const struct seq *s, const struct seq_work *w, size_t n)
{
	if (s->mode == SEQ_RECOMPUTE && s->kv.n_seen + (int64_t)n > s->kv.cap)
		return 1;
	return s->probe != NULL || seq_chunk_len(s, n, (size_t)w->n_batch) < n;
}

int
seq_eval_batch(struct seq_work *w, struct pool *pool, struct seq_seg *seg,
    size_t n_seg, char *cause)
{
	struct fwd_seg *sg;
	size_t i, rows = 0, n_sg = 0;
	int failed = 0;

	for (i = 0; i < n_seg; i++)
		rows += seg[i].n;
	if (rows > (size_t)w->n_batch)
		return err_set(cause, "a batch of %zu rows does not fit a work "
		    "area of %d", rows, w->n_batch);
	if ((sg = calloc(n_seg > 0 ? n_seg : 1, sizeof *sg)) == NULL)
		return err_set(cause, "out of memory");
	for (i = 0; i < n_seg; i++) {
		seg[i].failed = 0;
		seg[i].cause[0] = '\0';
		if (seq_check_input(seg[i].s, w, seg[i].tokens, seg[i].n,
		    seg[i].cause) != 0) {
			seg[i].failed = 1;
			failed++;
			continue;
		}
		if (seq_runs_alone(seg[i].s, w, seg[i].n))
			continue;
		/* Scratch for every joining segment before anything runs. */
		if (seq_fwd_reserve(seg[i].s, w, pool, seg[i].n, rows,
		    cause) != 0) {
			free(sg);
			return -1;
		}
		sg[n_sg].s = seg[i].s;
		sg[n_sg].tokens = seg[i].tokens;
		sg[n_sg].n = seg[i].n;
		sg[n_sg].logits = seg[i].logits;
		sg[n_sg++].all = seg[i].all;
	}
	for (i = 0; i < n_seg; i++) {
		if (seg[i].failed || !seq_runs_alone(seg[i].s, w, seg[i].n))
			continue;
		if (seq_eval(seg[i].s, w, pool, seg[i].tokens, seg[i].n,
		    seg[i].logits, seg[i].all, seg[i].cause) != 0) {
			seg[i].failed = 1;
			failed++;
		}
	}
	if (n_sg > 0)
		seq_fwd_batch(w, pool, sg, n_sg);
	free(sg);
	return failed;
}

/* Rotates one stored row (f32 or f16) by the angles in cs. */
static void
rotate_row(const struct seq *s, void *row, const float *cs)
{
	float buf[KERN_ATTN_ROW_MAX];
	uint16_t *h = row;
	int32_t d, hd = s->kv.head_dim;

	if (s->kv.type == KV_F32) {
		rope_apply(&s->rope, cs, row, 1, (size_t)hd, 1);
		return;
	}
	for (d = 0; d < hd; d++)
		buf[d] = fp16_to_f32(h[d]);
	rope_apply(&s->rope, cs, buf, 1, (size_t)hd, 1);
	for (d = 0; d < hd; d++)
		h[d] = f32_to_fp16(buf[d]);
}

int
seq_shift_stream(struct seq *s, int64_t d, char *cause)
{
	struct kv *kv = &s->kv;
	float cs[2 * KERN_ATTN_ROW_MAX];
	int32_t l, h, slot;

	if (!kv->evict || s->mode == SEQ_RECOMPUTE || kv->n_seen < kv->cap)
		return err_set(cause, "only a full streaming or window cache "
		    "can be shifted");
	if (d <= 0 || d % kv->n_win != 0)
		return err_set(cause, "shift %lld is not a positive multiple of "
		    "the window %d", (long long)d, kv->n_win);
	rope_table(&s->rope, &d, 1, cs);
	for (l = 0; l < kv->n_layer; l++)
		for (h = 0; h < kv->n_head_kv; h++)
			for (slot = kv->n_sink; slot < kv->cap; slot++)
				rotate_row(s, (void *)(uintptr_t)kv_k_row(kv, l,
				    h, slot), cs);
	kv_dirty_all(kv);
	kv->n_seen += d;
	return 0;
}

int32_t
seq_n_chunks(const struct seq *s)
{
	return kv_n_chunks(&s->kv);
}

size_t
seq_chunk_bytes(const struct seq *s)
{
	return kv_chunk_bytes(&s->kv);
}

void
seq_chunk_get(const struct seq *s, int layer, int32_t chunk, void *buf)
{
	kv_chunk_get(&s->kv, layer, chunk, buf);
}

void
seq_chunk_set(struct seq *s, int layer, int32_t chunk, const void *buf)
{
	kv_chunk_set(&s->kv, layer, chunk, buf);
}

int
seq_chunk_dirty(const struct seq *s, int layer, int32_t chunk)
{
	return kv_chunk_dirty(&s->kv, layer, chunk);
}

void
seq_clean(struct seq *s)
{
	kv_clean(&s->kv);
}

const int32_t *
seq_tokens(const struct seq *s)
{
	return s->kv.tok;
}

int
seq_restore(struct seq *s, int64_t n_seen, const int32_t *tokens,
    char *cause)
{
	int32_t i, nv = s->m->hp.n_vocab;

	/* Far past any real stream, and far from overflowing a position. */
	if (n_seen < 0 || n_seen > SEQ_MAX_SEEN || (!s->kv.evict &&
	    n_seen > s->kv.cap))
		return err_set(cause, "stream position %lld does not fit this "
		    "cache", (long long)n_seen);
	for (i = 0; i < s->kv.cap; i++) {
		if (tokens[i] < 0 || tokens[i] >= nv)
			return err_set(cause, "slot %d holds token %d, outside "
			    "the vocabulary", i, tokens[i]);
	}
	memcpy(s->kv.tok, tokens, (size_t)s->kv.cap * sizeof *tokens);
	s->kv.n_seen = n_seen;
	return 0;
}
