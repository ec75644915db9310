/*
 * model: hyperparameters and weight views of a GGUF of an architecture
 * of model_arch.c's table.
 *
 * Tensor names and shapes (ne[0] is the row length; q = n_head *
 * head_dim, kv = n_head_kv * head_dim):
 *   token_embd.weight        [n_embd, n_vocab]
 *   output_norm.weight       [n_embd]                 (F32)
 *   output.weight            [n_embd, n_vocab]        (absent when tied)
 *   rope_freqs.weight        [n_rot / 2]              (optional, llama)
 *   blk.N.attn_norm.weight   [n_embd]
 *   blk.N.attn_q.weight      [n_embd, q]     (+ .bias, qwen2)
 *   blk.N.attn_k.weight      [n_embd, kv]    (+ .bias)
 *   blk.N.attn_v.weight      [n_embd, kv]    (+ .bias)
 *   blk.N.attn_qkv.weight    [n_embd, q + 2 kv]  (fused: Q, K, V rows)
 *   blk.N.attn_q_norm.weight [head_dim]      (qk_norm), attn_k_norm too
 *   blk.N.attn_output.weight [q, n_embd]
 *   blk.N.post_attention_norm.weight [n_embd]    (post_norms)
 *   blk.N.ffn_norm.weight    [n_embd]
 *   blk.N.ffn_gate.weight    [n_embd, n_ff]
 *   blk.N.ffn_up.weight      [n_embd, n_ff]  ([n_embd, 2 n_ff] fused:
 *                                             gate rows, then up rows)
 *   blk.N.ffn_down.weight    [n_ff, n_embd]
 *   blk.N.post_ffw_norm.weight [n_embd]      (post_norms)
 */
#include "model.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "mem.h"
#include "quant.h"
#include "sha256.h"

static void fingerprint(struct model *);

static int
read_arch(const struct gguf_file *g, const struct model_arch **arch,
    char *cause)
{
	char list[256];
	struct gguf_str s;

	if (gguf_get_str(g, "general.architecture", &s, cause) != 0) {
		if (gguf_find_kv(g, "general.architecture") == NULL)
			err_set(cause, "general.architecture is missing");
		return -1;
	}
	if ((*arch = model_arch_find(s.ptr, s.len)) != NULL)
		return 0;
	model_arch_list(list, sizeof list);
	return err_set(cause,
	    "architecture '%.*s' is not supported (supported: %s)",
	    (int)(s.len > 64 ? 64 : s.len), s.ptr, list);
}

/* An architecture-scoped u32 key; required unless def >= 0. */
static int
arch_u32(const struct gguf_file *g, const char *arch, const char *key,
    long def, int32_t *out, char *cause)
{
	char name[128];
	uint32_t v;
	int rc;

	snprintf(name, sizeof name, "%s.%s", arch, key);
	rc = gguf_get_u32(g, name, &v, cause);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		if (def < 0)
			return err_set(cause, "%s is missing", name);
		v = (uint32_t)def;
	}
	if (v > 1u << 24)
		return err_set(cause, "%s = %u is out of range", name, v);
	*out = (int32_t)v;
	return 0;
}

static int
arch_f64(const struct gguf_file *g, const char *arch, const char *key,
    double def, double *out, char *cause)
{
	char name[128];
	int rc;

	snprintf(name, sizeof name, "%s.%s", arch, key);
	rc = gguf_get_f64(g, name, out, cause);
	if (rc == 1)
		*out = def;
	return rc < 0 ? -1 : 0;
}

/*
 * Llama-3.x frequency divisors from rope.scaling.* keys, the way the
 * files that carry rope_freqs.weight computed theirs: wavelengths
 * shorter than original_context / high_freq_factor keep their
 * frequency, longer than original_context / low_freq_factor are divided
 * by factor, and the band between is interpolated.
 */
static int
llama3_factors(const struct gguf_file *g, const char *arch,
    struct model *m, char *cause)
{
	struct model_hparams *hp = &m->hp;
	double factor, lo, hi, ctx, freq, wl, smooth;
	int i, half = hp->n_rot / 2;
	int32_t octx;

	if (arch_f64(g, arch, "rope.scaling.factor", 8.0, &factor, cause) ||
	    arch_f64(g, arch, "rope.scaling.low_freq_factor", 1.0, &lo,
	    cause) ||
	    arch_f64(g, arch, "rope.scaling.high_freq_factor", 4.0, &hi,
	    cause) ||
	    arch_u32(g, arch, "rope.scaling.original_context_length", 8192,
	    &octx, cause))
		return -1;
	ctx = octx;
	if (!(factor >= 1.0 && factor <= 1e3 && lo > 0.0 && hi > lo &&
	    ctx >= 1.0 && ctx <= 1e9))
		return err_set(cause, "llama3 rope scaling: factor %g, "
		    "low_freq_factor %g, high_freq_factor %g, original "
		    "context %g are out of range", factor, lo, hi, ctx);
	if ((m->rope_freqs = calloc((size_t)half, sizeof(float))) == NULL)
		return err_set(cause, "out of memory");
	for (i = 0; i < half; i++) {
		freq = pow(hp->rope_base, -2.0 * i / hp->n_rot);
		wl = 2.0 * 3.14159265358979323846 / freq;
		if (wl < ctx / hi)
			m->rope_freqs[i] = 1.0f;
		else if (wl > ctx / lo)
			m->rope_freqs[i] = (float)factor;
		else {
			smooth = (ctx / wl - lo) / (hi - lo);
			m->rope_freqs[i] = (float)(1.0 / ((1.0 - smooth) /
			    factor + smooth));
		}
	}
	hp->rope_freqs = m->rope_freqs;
	return 0;
}

static int
read_rope_scaling(const struct gguf_file *g, const char *arch,
    struct model *m, char *cause)
{
	struct model_hparams *hp = &m->hp;
	char name[128];
	struct gguf_str type;
	int rc;

	hp->rope_scale = 1.0;
	snprintf(name, sizeof name, "%s.rope.scaling.type", arch);
	rc = gguf_get_str(g, name, &type, cause);
	if (rc < 0)
		return -1;
	if (rc == 0 && gguf_str_eq(type, "llama3") && hp->arch->rope_freqs)
		return llama3_factors(g, arch, m, cause);
	if (rc == 0 && !gguf_str_eq(type, "none") &&
	    !gguf_str_eq(type, "linear"))
		return err_set(cause, "%s '%.*s' is not supported "
		    "(supported: none, linear%s)", name,
		    (int)(type.len > 32 ? 32 : type.len), type.ptr,
		    hp->arch->rope_freqs ? ", llama3" : "");
	if (rc == 0 && gguf_str_eq(type, "none"))
		return 0;
	if (arch_f64(g, arch, "rope.scaling.factor", 1.0, &hp->rope_scale,
	    cause) != 0)
		return -1;
	if (hp->rope_scale == 1.0 && arch_f64(g, arch, "rope.scale_linear",
	    1.0, &hp->rope_scale, cause) != 0)
		return -1;
	if (hp->rope_scale == 0.0) /* "factor 0" means unscaled in the wild */
		hp->rope_scale = 1.0;
	if (!(hp->rope_scale >= 1e-3 && hp->rope_scale <= 1e3))
		return err_set(cause, "rope scaling factor %g is out of range",
		    hp->rope_scale);
	return 0;
}

static int
check_hparams(const struct model_hparams *hp, char *cause)
{
	if (hp->n_embd < 1 || hp->n_layer < 1 || hp->n_head < 1 ||
	    hp->n_ff < 1 || hp->n_ctx_train < 1 || hp->head_dim < 1)
		return err_set(cause, "embedding, block, head, feed-forward and "
		    "context sizes must all be positive");
	if (hp->n_head_kv < 1 || hp->n_head % hp->n_head_kv != 0)
		return err_set(cause, "head count %d is not a multiple of the "
		    "KV head count %d", hp->n_head, hp->n_head_kv);
	if (hp->head_dim > KERN_ATTN_ROW_MAX)
		return err_set(cause, "head size %d is over the supported %d",
		    hp->head_dim, KERN_ATTN_ROW_MAX);
	if (hp->n_rot < 2 || hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
		return err_set(cause, "rope dimension count %d must be even and "
		    "at most the head size %d", hp->n_rot, hp->head_dim);
	if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f))
		return err_set(cause, "RMS norm epsilon %g is out of range",
		    (double)hp->rms_eps);
	if (!(hp->rope_base > 1.0 && hp->rope_base < 1e12))
		return err_set(cause, "rope frequency base %g is out of range",
		    hp->rope_base);
	if (hp->arch->swa == SWA_EVEN && hp->n_swa < 1)
		return err_set(cause, "%s.attention.sliding_window is missing "
		    "or 0", hp->arch->name);
	if (!(hp->attn_softcap >= 0.0f && hp->attn_softcap < 1e6f &&
	    hp->final_softcap >= 0.0f && hp->final_softcap < 1e6f))
		return err_set(cause, "soft-capping values %g, %g are out of "
		    "range", (double)hp->attn_softcap,
		    (double)hp->final_softcap);
	return 0;
}

/* Head size: key_length when given (gemma2), which value_length equals. */
static int
read_head_dim(const struct gguf_file *g, const char *a,
    struct model_hparams *hp, char *cause)
{
	char k[96];
	int32_t vl;

	snprintf(k, sizeof k, "%s.attention.key_length", a);
	if (gguf_find_kv(g, k) == NULL && hp->n_embd % hp->n_head != 0)
		return err_set(cause, "embedding length %d is not a multiple "
		    "of the head count %d", hp->n_embd, hp->n_head);
	if (arch_u32(g, a, "attention.key_length", hp->n_embd / hp->n_head,
	    &hp->head_dim, cause) ||
	    arch_u32(g, a, "attention.value_length", hp->head_dim, &vl,
	    cause))
		return -1;
	if (vl != hp->head_dim)
		return err_set(cause, "%s.attention.value_length %d differs "
		    "from key_length %d (not supported)", a, vl, hp->head_dim);
	return 0;
}

/* Sliding window and soft-caps, as far as the architecture has them. */
static int
read_arch_extras(const struct gguf_file *g, const char *a,
    struct model_hparams *hp, char *cause)
{
	double ac = 0.0, fc = 0.0;

	if (hp->arch->swa != SWA_NONE && arch_u32(g, a,
	    "attention.sliding_window", 0, &hp->n_swa, cause))
		return -1;
	if (hp->arch->softcaps && (arch_f64(g, a, "attn_logit_softcapping",
	    0.0, &ac, cause) || arch_f64(g, a, "final_logit_softcapping",
	    0.0, &fc, cause)))
		return -1;
	hp->attn_softcap = (float)ac;
	hp->final_softcap = (float)fc;
	return 0;
}

static int
read_hparams(const struct gguf_file *g, struct model *m, char *cause)
{
	struct model_hparams *hp = &m->hp;
	const char *a;
	double eps;

	memset(hp, 0, sizeof *hp);
	if (read_arch(g, &hp->arch, cause) != 0)
		return -1;
	a = hp->arch->name;
	if (arch_u32(g, a, "context_length", -1, &hp->n_ctx_train, cause) ||
	    arch_u32(g, a, "embedding_length", -1, &hp->n_embd, cause) ||
	    arch_u32(g, a, "block_count", -1, &hp->n_layer, cause) ||
	    arch_u32(g, a, "feed_forward_length", -1, &hp->n_ff, cause) ||
	    arch_u32(g, a, "attention.head_count", -1, &hp->n_head, cause))
		return -1;
	if (hp->n_head < 1)
		return err_set(cause, "%s.attention.head_count is 0", a);
	if (read_head_dim(g, a, hp, cause) ||
	    arch_u32(g, a, "attention.head_count_kv", hp->n_head,
	    &hp->n_head_kv, cause) ||
	    arch_u32(g, a, "rope.dimension_count", hp->head_dim, &hp->n_rot,
	    cause) ||
	    arch_f64(g, a, "attention.layer_norm_rms_epsilon", 1e-5, &eps,
	    cause) ||
	    arch_f64(g, a, "rope.freq_base", 10000.0, &hp->rope_base, cause) ||
	    read_arch_extras(g, a, hp, cause))
		return -1;
	hp->rms_eps = (float)eps;
	/* llama GGUFs store Q/K permuted for interleaved pairs; others not. */
	hp->rope_neox = hp->arch->rope_neox;
	hp->attn_scale = 1.0f / sqrtf((float)(hp->head_dim > 0 ?
	    hp->head_dim : 1));
	if (hp->n_layer == hp->arch->embd_scale_layers)
		hp->attn_scale = 1.0f / sqrtf((float)hp->n_embd / hp->n_head);
	if (check_hparams(hp, cause) != 0)
		return -1;
	/* After the checks: the factors need a sane n_rot and base. */
	return read_rope_scaling(g, a, m, cause);
}

/* The data of tensor `name`, checked to be rows x cols of a usable type. */
static const struct gguf_tensor *
find_tensor(const struct gguf_file *g, const char *name, int64_t rows,
    int64_t cols, int required, char *cause)
{
	const struct gguf_tensor *t = gguf_find_tensor(g, name);

	if (t == NULL) {
		if (required)
			err_set(cause, "tensor '%s' is missing", name);
		else if (cause != NULL)
			cause[0] = '\0';
		return NULL;
	}
	if ((int64_t)t->ne[0] != cols || (int64_t)t->ne[1] != rows ||
	    t->ne[2] != 1 || t->ne[3] != 1) {
		err_set(cause, "tensor '%s' has shape [%llu, %llu, %llu, %llu], "
		    "expected [%lld, %lld]", name, (unsigned long long)t->ne[0],
		    (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
		    (unsigned long long)t->ne[3], (long long)cols,
		    (long long)rows);
		return NULL;
	}
	if (!qtype_supported(t->type)) {
		char names[320];

		qtype_supported_names(names, sizeof names, ", ");
		err_set(cause, "tensor '%s' has type %s, which sinkd does not "
		    "support yet (supported: %s)", name, qtype_name(t->type),
		    names);
		return NULL;
	}
	return t;
}

/*
 * Weights are placed in two passes over the same code: the first only
 * adds up the bytes needed, the second copies (or, with use_mmap, points
 * into the mapping).  Vectors (norms, biases) are always f32 afterwards.
 */
struct loader {
	const struct gguf_file *g;
	int sizing;
	int use_mmap;
	int panels;	/* repack the panel types (kernels.h) */
	char *arena;
	size_t used;
	size_t panel_used;
};

#define ARENA_ALIGN 64

static void *
loader_take(struct loader *l, size_t n)
{
	void *p = l->sizing ? NULL : l->arena + l->used;

	l->used += (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
	return p;
}

/* w's rows (at data) repacked into a panel; -1 for a type without. */
static int
load_panel(struct loader *l, struct wmat *w, const void *data)
{
	size_t n = kern_panel_bytes(w->type, (size_t)w->rows,
	    (size_t)w->cols);
	void *dst;

	if (n == 0)
		return -1;
	dst = loader_take(l, n);
	l->panel_used += n;
	if (dst != NULL)
		kern_panel_pack(w->type, data, w->row_bytes, (size_t)w->rows,
		    (size_t)w->cols, dst);
	w->pk = dst;
	return 0;
}

static int
load_mat(struct loader *l, struct wmat *w, const char *name, int64_t rows,
    int64_t cols, int required, char *cause)
{
	const struct gguf_tensor *t;
	uint64_t rb;
	void *dst;

	t = find_tensor(l->g, name, rows, cols, required, cause);
	if (t == NULL)
		return required || (cause != NULL && cause[0] != '\0') ? -1 : 1;
	qtype_row_bytes(t->type, t->ne[0], &rb);
	w->type = t->type;
	w->rows = rows;
	w->cols = cols;
	w->row_bytes = (size_t)rb;
	if (l->use_mmap) {
		w->data = t->data;
		return 0;
	}
	if (l->panels && load_panel(l, w, t->data) == 0) {
		/* The panel replaces the copy; the rows as stored stay in
		 * the mapping for a kernel of another ISA (tests). */
		w->data = t->data;
		return 0;
	}
	dst = loader_take(l, t->nbytes);
	if (dst != NULL)
		memcpy(dst, t->data, t->nbytes);
	w->data = dst;
	return 0;
}

static int
load_vec(struct loader *l, const float **v, const char *name, int64_t n,
    int required, char *cause)
{
	struct wmat w;
	float *dst;
	int rc;
	int use_mmap = l->use_mmap;

	l->use_mmap = 1; /* look without copying; converted below */
	rc = load_mat(l, &w, name, 1, n, required, cause);
	l->use_mmap = use_mmap;
	if (rc != 0)
		return rc;
	if (w.type == QT_F32 && use_mmap) {
		*v = w.data;
		return 0;
	}
	dst = loader_take(l, (size_t)n * sizeof(float));
	if (dst != NULL)
		quant_dequantize_row(w.type, w.data, dst, (size_t)n);
	*v = dst;
	return 0;
}

/*
 * The tensors of a block, for every architecture: each is loaded when
 * the architecture has what `need` names.  Fused tensors land in the
 * scratch of struct layer_load and are split into views afterwards.
 */
enum dim { D_1, D_E, D_Q, D_KV, D_F, D_F2, D_QKV, D_HD };

enum need {
	N_ALL = 1 << 0,
	N_SPLIT_QKV = 1 << 1,	/* not fused_qkv */
	N_FUSED_QKV = 1 << 2,
	N_BIAS = 1 << 3,
	N_QK_NORM = 1 << 4,
	N_POST = 1 << 5,
	N_SPLIT_FFN = 1 << 6,	/* not fused_gate_up */
	N_FUSED_FFN = 1 << 7,
};

struct layer_load {
	struct model_layer ly;
	struct wmat qkv, gate_up; /* fused, before the split */
};

struct tspec {
	const char *suffix;
	unsigned need;
	int vec;		/* 1-D, kept as f32 */
	enum dim rows, cols;
	size_t off;		/* in struct layer_load */
};

#define LY(f) offsetof(struct layer_load, ly.f)
static const struct tspec layer_tensors[] = {
	{ "attn_norm.weight", N_ALL, 1, D_1, D_E, LY(attn_norm) },
	{ "attn_q.weight", N_SPLIT_QKV, 0, D_Q, D_E, LY(wq) },
	{ "attn_k.weight", N_SPLIT_QKV, 0, D_KV, D_E, LY(wk) },
	{ "attn_v.weight", N_SPLIT_QKV, 0, D_KV, D_E, LY(wv) },
	{ "attn_qkv.weight", N_FUSED_QKV, 0, D_QKV, D_E,
	    offsetof(struct layer_load, qkv) },
	{ "attn_q.bias", N_BIAS, 1, D_1, D_Q, LY(bq) },
	{ "attn_k.bias", N_BIAS, 1, D_1, D_KV, LY(bk) },
	{ "attn_v.bias", N_BIAS, 1, D_1, D_KV, LY(bv) },
	{ "attn_q_norm.weight", N_QK_NORM, 1, D_1, D_HD, LY(q_norm) },
	{ "attn_k_norm.weight", N_QK_NORM, 1, D_1, D_HD, LY(k_norm) },
	{ "attn_output.weight", N_ALL, 0, D_E, D_Q, LY(wo) },
	{ "post_attention_norm.weight", N_POST, 1, D_1, D_E,
	    LY(post_attn_norm) },
	{ "ffn_norm.weight", N_ALL, 1, D_1, D_E, LY(ffn_norm) },
	{ "ffn_gate.weight", N_SPLIT_FFN, 0, D_F, D_E, LY(w_gate) },
	{ "ffn_up.weight", N_SPLIT_FFN, 0, D_F, D_E, LY(w_up) },
	{ "ffn_up.weight", N_FUSED_FFN, 0, D_F2, D_E,
	    offsetof(struct layer_load, gate_up) },
	{ "ffn_down.weight", N_ALL, 0, D_E, D_F, LY(w_down) },
	{ "post_ffw_norm.weight", N_POST, 1, D_1, D_E, LY(post_ffn_norm) },
};
#undef LY

static unsigned
arch_needs(const struct model_arch *a)
{
	return N_ALL | (a->fused_qkv ? N_FUSED_QKV : N_SPLIT_QKV) |
	    (a->qkv_bias ? N_BIAS : 0) | (a->qk_norm ? N_QK_NORM : 0) |
	    (a->post_norms ? N_POST : 0) |
	    (a->fused_gate_up ? N_FUSED_FFN : N_SPLIT_FFN);
}

static int64_t
dim_of(const struct model_hparams *hp, enum dim d)
{
	int64_t q = (int64_t)hp->n_head * hp->head_dim;
	int64_t kv = (int64_t)hp->n_head_kv * hp->head_dim;

	switch (d) {
	case D_1: return 1;
	case D_E: return hp->n_embd;
	case D_Q: return q;
	case D_KV: return kv;
	case D_F: return hp->n_ff;
	case D_F2: return 2 * (int64_t)hp->n_ff;
	case D_QKV: return q + 2 * kv;
	case D_HD: return hp->head_dim;
	}
	return 0;
}

/* Rows [r0, r0 + n) of w, as a matrix of its own. */
static struct wmat
wmat_rows(const struct wmat *w, int64_t r0, int64_t n)
{
	struct wmat v = *w;

	v.rows = n;
	v.data = w->data == NULL ? NULL :
	    (const char *)w->data + (size_t)r0 * w->row_bytes;
	/* A view starting inside a panel cannot use it. */
	v.pk = w->pk == NULL || r0 % 16 != 0 ? NULL : (const char *)w->pk +
	    kern_panel_bytes(w->type, (size_t)r0, (size_t)w->cols);
	return v;
}

static int
load_layer(struct loader *l, const struct model_hparams *hp, int il,
    struct model_layer *ly, char *cause)
{
	unsigned need = arch_needs(hp->arch);
	int64_t q = dim_of(hp, D_Q), kv = dim_of(hp, D_KV), f = hp->n_ff;
	struct layer_load ll;
	const struct tspec *t;
	char name[96];
	size_t i;
	void *dst;

	memset(&ll, 0, sizeof ll);
	for (i = 0; i < sizeof layer_tensors / sizeof layer_tensors[0]; i++) {
		t = &layer_tensors[i];
		if ((t->need & need) == 0)
			continue;
		snprintf(name, sizeof name, "blk.%d.%s", il, t->suffix);
		dst = (char *)&ll + t->off;
		if (t->vec ? load_vec(l, dst, name, dim_of(hp, t->cols), 1,
		    cause) : load_mat(l, dst, name, dim_of(hp, t->rows),
		    dim_of(hp, t->cols), 1, cause))
			return -1;
	}
	if (hp->arch->fused_qkv) {
		ll.ly.wq = wmat_rows(&ll.qkv, 0, q);
		ll.ly.wk = wmat_rows(&ll.qkv, q, kv);
		ll.ly.wv = wmat_rows(&ll.qkv, q + kv, kv);
	}
	if (hp->arch->fused_gate_up) {
		ll.ly.w_gate = wmat_rows(&ll.gate_up, 0, f);
		ll.ly.w_up = wmat_rows(&ll.gate_up, f, f);
	}
	ll.ly.swa = hp->n_swa > 0 && (hp->arch->swa == SWA_ALL ||
	    (hp->arch->swa == SWA_EVEN && il % 2 == 0));
	*ly = ll.ly;
	return 0;
}

/* Tensors the architecture's entry says this code cannot run. */
static int
refuse_tensors(const struct gguf_file *g, const struct model_arch *a,
    char *cause)
{
	const char *const *r;

	for (r = a->refuse; r != NULL && *r != NULL; r++) {
		if (gguf_find_tensor(g, *r) != NULL)
			return err_set(cause, "tensor '%s' (%s rope "
			    "scaling) is not supported", *r, a->name);
	}
	return 0;
}

/* rope_freqs.weight: divisors of each pair's rotation frequency. */
static int
load_rope_freqs(struct loader *l, struct model *m, char *cause)
{
	struct model_hparams *hp = &m->hp;
	const float *f;
	int rc, i;

	if (!hp->arch->rope_freqs) {
		if (gguf_find_tensor(l->g, "rope_freqs.weight") != NULL)
			return err_set(cause, "tensor 'rope_freqs.weight' is "
			    "not used by %s", hp->arch->name);
		return 0;
	}
	rc = load_vec(l, &f, "rope_freqs.weight", hp->n_rot / 2, 0, cause);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (l->sizing)
		return 0;
	for (i = 0; i < hp->n_rot / 2; i++) {
		if (!(f[i] > 0.0f && f[i] < 1e6f))
			return err_set(cause, "rope_freqs.weight[%d] = %g is "
			    "out of range", i, (double)f[i]);
	}
	/* The tensor wins over rope.scaling.type llama3 keys. */
	hp->rope_freqs = f;
	return 0;
}

static int
load_weights(struct loader *l, struct model *m, char *cause)
{
	const struct model_hparams *hp = &m->hp;
	int il, rc, panels = l->panels;

	if (refuse_tensors(l->g, hp->arch, cause))
		return -1;
	/* The embedding's rows are read by token: always a copy, so that
	 * nothing is read from the file after loading (a file rewritten
	 * in place must not bring the daemon down with SIGBUS). */
	l->panels = 0;
	rc = load_mat(l, &m->tok_embd, "token_embd.weight", hp->n_vocab,
	    hp->n_embd, 1, cause);
	l->panels = panels;
	if (rc != 0 ||
	    load_vec(l, &m->output_norm, "output_norm.weight", hp->n_embd, 1,
	    cause) ||
	    load_rope_freqs(l, m, cause))
		return -1;
	rc = load_mat(l, &m->output, "output.weight", hp->n_vocab, hp->n_embd,
	    0, cause);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		m->output = m->tok_embd; /* tied embeddings */
		if (panels && !l->use_mmap)
			(void)load_panel(l, &m->output, m->tok_embd.data);
	}
	for (il = 0; il < hp->n_layer; il++) {
		if (load_layer(l, hp, il, &m->layers[il], cause) != 0)
			return -1;
	}
	return 0;
}

static int
place_weights(struct model *m, int use_mmap, int panels, char *cause)
{
	struct loader l = { .g = m->gguf, .sizing = 1, .use_mmap = use_mmap,
	    .panels = panels };

	if (load_weights(&l, m, cause) != 0)
		return -1;
	if (l.used > 0) {
		if ((m->weights = mem_huge_alloc(l.used)) == NULL)
			return err_set(cause, "out of memory for %zu MiB of "
			    "weights (try --mmap)", l.used >> 20);
		m->weights_size = l.used;
	}
	l.sizing = 0;
	l.arena = m->weights;
	l.used = 0;
	l.panel_used = 0;
	if (load_weights(&l, m, cause) != 0)
		return -1;
	m->panel_bytes = l.panel_used;
	return 0;
}

static size_t
count_params(const struct model *m)
{
	const struct gguf_file *g = m->gguf;
	size_t n = 0;
	uint64_t i;

	for (i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		n += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
	}
	return n;
}

static void
describe(struct model *m)
{
	const struct model_hparams *hp = &m->hp;
	double p = (double)m->n_params;
	const char *unit = p >= 1e9 ? "B" : p >= 1e6 ? "M" : "K";
	double div = p >= 1e9 ? 1e9 : p >= 1e6 ? 1e6 : 1e3;

	snprintf(m->desc, sizeof m->desc, "%s %dL %dd %s (%.1f%s params)",
	    hp->arch->name, hp->n_layer, hp->n_embd,
	    qtype_name(m->layers[0].wq.type), p / div, unit);
}

struct model *
model_open(const char *path, const struct model_opts *opts, char *cause)
{
	char why[ERR_LEN];
	struct model *m;

	if ((m = calloc(1, sizeof *m)) == NULL) {
		err_set(cause, "out of memory");
		return NULL;
	}
	if ((m->gguf = gguf_open(path, cause)) == NULL)
		goto fail_quiet;
	if (read_hparams(m->gguf, m, why) != 0)
		goto fail;
	if ((m->tok = tok_open(m->gguf, why)) == NULL)
		goto fail;
	m->hp.n_vocab = tok_n_vocab(m->tok);
	/* Each block has 6+ tensors: a block count the file cannot back is
	 * refused before it sizes an allocation. */
	if ((uint64_t)m->hp.n_layer * 6 > gguf_n_tensors(m->gguf)) {
		err_set(why, "block_count %d needs at least %lld tensors, the "
		    "file has %llu", m->hp.n_layer, 6LL * m->hp.n_layer,
		    (unsigned long long)gguf_n_tensors(m->gguf));
		goto fail;
	}
	m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
	if (m->layers == NULL) {
		err_set(why, "out of memory");
		goto fail;
	}
	/* Panels are built for the best ISA: one switched to later (tests)
	 * reads the rows as stored instead. */
	if (place_weights(m, opts != NULL && opts->use_mmap, kern_best_isa() ==
	    KERN_ISA_AVX512 && (opts == NULL || !opts->no_panels), why) != 0)
		goto fail;
	/* The copies are what runs: the file's pages need not stay resident. */
	if (opts == NULL || !opts->use_mmap)
		gguf_release_data(m->gguf);
	m->n_params = count_params(m);
	describe(m);
	fingerprint(m);
	return m;
fail:
	err_set(cause, "%s: %s", path, why);
fail_quiet:
	model_close(m);
	return NULL;
}

static void
fingerprint(struct model *m)
{
	struct sha256 h;
	const void *p;
	size_t len;
	uint64_t size;
	uint8_t d[32], le[8];
	int i;

	gguf_header(m->gguf, &p, &len, &size);
	for (i = 0; i < 8; i++)
		le[i] = (uint8_t)(size >> (8 * i));
	sha256_init(&h);
	sha256_update(&h, p, len);
	sha256_update(&h, le, sizeof le);
	sha256_final(&h, d);
	sha256_hex(d, m->fingerprint);
}

void
model_close(struct model *m)
{
	if (m == NULL)
		return;
	tok_free(m->tok);
	gguf_close(m->gguf);
	free(m->layers);
	mem_huge_free(m->weights, m->weights_size);
	free(m->rope_freqs);
	free(m);
}
