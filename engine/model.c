/*
 * model: hyperparameters and weight views of a llama / qwen2 GGUF.
 *
 * Tensor names and shapes (ne[0] is the row length):
 *   token_embd.weight        [n_embd, n_vocab]
 *   output_norm.weight       [n_embd]                 (F32)
 *   output.weight            [n_embd, n_vocab]        (absent when tied)
 *   blk.N.attn_norm.weight   [n_embd]
 *   blk.N.attn_q.weight      [n_embd, n_head * head_dim]   (+ .bias, qwen2)
 *   blk.N.attn_k.weight      [n_embd, n_head_kv * head_dim] (+ .bias)
 *   blk.N.attn_v.weight      [n_embd, n_head_kv * head_dim] (+ .bias)
 *   blk.N.attn_output.weight [n_head * head_dim, n_embd]
 *   blk.N.ffn_norm.weight    [n_embd]
 *   blk.N.ffn_gate.weight    [n_embd, n_ff]
 *   blk.N.ffn_up.weight      [n_embd, n_ff]
 *   blk.N.ffn_down.weight    [n_ff, n_embd]
 */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"
#include "sha256.h"

static void fingerprint(struct model *);

static const char *const arch_names[] = {
	[ARCH_LLAMA] = "llama",
	[ARCH_QWEN2] = "qwen2",
};

const char *
model_arch_name(enum model_arch a)
{
	return arch_names[a];
}

static int
read_arch(const struct gguf_file *g, enum model_arch *arch, char *cause)
{
	struct gguf_str s;
	size_t i;

	if (gguf_get_str(g, "general.architecture", &s, cause) != 0) {
		if (gguf_find_kv(g, "general.architecture") == NULL)
			err_set(cause, "general.architecture is missing");
		return -1;
	}
	for (i = 0; i < sizeof arch_names / sizeof arch_names[0]; i++) {
		if (gguf_str_eq(s, arch_names[i])) {
			*arch = (enum model_arch)i;
			return 0;
		}
	}
	return err_set(cause,
	    "architecture '%.*s' is not supported (supported: llama, qwen2)",
	    (int)(s.len > 64 ? 64 : s.len), s.ptr);
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

static int
read_rope_scaling(const struct gguf_file *g, const char *arch,
    struct model_hparams *hp, char *cause)
{
	char name[128];
	struct gguf_str type;
	int rc;

	hp->rope_scale = 1.0;
	snprintf(name, sizeof name, "%s.rope.scaling.type", arch);
	rc = gguf_get_str(g, name, &type, cause);
	if (rc < 0)
		return -1;
	if (rc == 0 && !gguf_str_eq(type, "none") &&
	    !gguf_str_eq(type, "linear"))
		return err_set(cause, "%s '%.*s' is not supported "
		    "(supported: none, linear)", name,
		    (int)(type.len > 32 ? 32 : type.len), type.ptr);
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
	    hp->n_ff < 1 || hp->n_ctx_train < 1)
		return err_set(cause, "embedding, block, head, feed-forward and "
		    "context sizes must all be positive");
	if (hp->n_embd % hp->n_head != 0)
		return err_set(cause, "embedding length %d is not a multiple of "
		    "the head count %d", hp->n_embd, hp->n_head);
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
	return 0;
}

static int
read_hparams(const struct gguf_file *g, struct model_hparams *hp, char *cause)
{
	const char *a;
	double eps;

	memset(hp, 0, sizeof *hp);
	if (read_arch(g, &hp->arch, cause) != 0)
		return -1;
	a = arch_names[hp->arch];
	if (arch_u32(g, a, "context_length", -1, &hp->n_ctx_train, cause) ||
	    arch_u32(g, a, "embedding_length", -1, &hp->n_embd, cause) ||
	    arch_u32(g, a, "block_count", -1, &hp->n_layer, cause) ||
	    arch_u32(g, a, "feed_forward_length", -1, &hp->n_ff, cause) ||
	    arch_u32(g, a, "attention.head_count", -1, &hp->n_head, cause))
		return -1;
	if (hp->n_head < 1)
		return err_set(cause, "%s.attention.head_count is 0", a);
	hp->head_dim = hp->n_embd / hp->n_head;
	if (arch_u32(g, a, "attention.head_count_kv", hp->n_head,
	    &hp->n_head_kv, cause) ||
	    arch_u32(g, a, "rope.dimension_count", hp->head_dim, &hp->n_rot,
	    cause) ||
	    arch_f64(g, a, "attention.layer_norm_rms_epsilon", 1e-5, &eps,
	    cause) ||
	    arch_f64(g, a, "rope.freq_base", 10000.0, &hp->rope_base, cause) ||
	    read_rope_scaling(g, a, hp, cause))
		return -1;
	hp->rms_eps = (float)eps;
	/* llama GGUFs store Q/K permuted for interleaved pairs; qwen2 does not. */
	hp->rope_neox = hp->arch == ARCH_QWEN2;
	return check_hparams(hp, cause);
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
		err_set(cause, "tensor '%s' has type %s, which sinkd does not "
		    "support yet (supported: F32, F16, BF16, Q8_0, Q4_0, "
		    "Q2_K..Q6_K)", name,
		    qtype_name(t->type));
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
	char *arena;
	size_t used;
};

#define ARENA_ALIGN 64

static void *
loader_take(struct loader *l, size_t n)
{
	void *p = l->sizing ? NULL : l->arena + l->used;

	l->used += (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
	return p;
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

static int
load_layer(struct loader *l, const struct model_hparams *hp, int il,
    struct model_layer *ly, char *cause)
{
	int64_t e = hp->n_embd, q = (int64_t)hp->n_head * hp->head_dim;
	int64_t kv = (int64_t)hp->n_head_kv * hp->head_dim, f = hp->n_ff;
	int bias = hp->arch == ARCH_QWEN2;
	char n[12][64];
	static const char *const suffix[12] = { "attn_norm.weight",
		"attn_q.weight", "attn_k.weight", "attn_v.weight",
		"attn_q.bias", "attn_k.bias", "attn_v.bias",
		"attn_output.weight", "ffn_norm.weight", "ffn_gate.weight",
		"ffn_up.weight", "ffn_down.weight" };
	int i;

	for (i = 0; i < 12; i++)
		snprintf(n[i], sizeof n[i], "blk.%d.%s", il, suffix[i]);
	if (load_vec(l, &ly->attn_norm, n[0], e, 1, cause) ||
	    load_mat(l, &ly->wq, n[1], q, e, 1, cause) ||
	    load_mat(l, &ly->wk, n[2], kv, e, 1, cause) ||
	    load_mat(l, &ly->wv, n[3], kv, e, 1, cause) ||
	    (bias && (load_vec(l, &ly->bq, n[4], q, 1, cause) ||
	    load_vec(l, &ly->bk, n[5], kv, 1, cause) ||
	    load_vec(l, &ly->bv, n[6], kv, 1, cause))) ||
	    load_mat(l, &ly->wo, n[7], e, q, 1, cause) ||
	    load_vec(l, &ly->ffn_norm, n[8], e, 1, cause) ||
	    load_mat(l, &ly->w_gate, n[9], f, e, 1, cause) ||
	    load_mat(l, &ly->w_up, n[10], f, e, 1, cause) ||
	    load_mat(l, &ly->w_down, n[11], e, f, 1, cause))
		return -1;
	return 0;
}

static int
load_weights(struct loader *l, struct model *m, char *cause)
{
	const struct model_hparams *hp = &m->hp;
	int il, rc;

	if (load_mat(l, &m->tok_embd, "token_embd.weight", hp->n_vocab,
	    hp->n_embd, 1, cause) ||
	    load_vec(l, &m->output_norm, "output_norm.weight", hp->n_embd, 1,
	    cause))
		return -1;
	rc = load_mat(l, &m->output, "output.weight", hp->n_vocab, hp->n_embd,
	    0, cause);
	if (rc < 0)
		return -1;
	if (rc == 1)
		m->output = m->tok_embd; /* tied embeddings */
	for (il = 0; il < hp->n_layer; il++) {
		if (load_layer(l, hp, il, &m->layers[il], cause) != 0)
			return -1;
	}
	return 0;
}

static int
place_weights(struct model *m, int use_mmap, char *cause)
{
	struct loader l = { .g = m->gguf, .sizing = 1, .use_mmap = use_mmap };

	if (load_weights(&l, m, cause) != 0)
		return -1;
	if (l.used > 0) {
		if (posix_memalign(&m->weights, ARENA_ALIGN, l.used) != 0) {
			m->weights = NULL;
			return err_set(cause, "out of memory for %zu MiB of "
			    "weights (try --mmap)", l.used >> 20);
		}
		m->weights_size = l.used;
	}
	l.sizing = 0;
	l.arena = m->weights;
	l.used = 0;
	return load_weights(&l, m, cause);
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
	    model_arch_name(hp->arch), hp->n_layer, hp->n_embd,
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
	if (read_hparams(m->gguf, &m->hp, why) != 0)
		goto fail;
	if ((m->tok = tok_open(m->gguf, why)) == NULL)
		goto fail;
	m->hp.n_vocab = tok_n_vocab(m->tok);
	/* Each block has 9+ tensors: a block count the file cannot back is
	 * refused before it sizes an allocation. */
	if ((uint64_t)m->hp.n_layer * 9 > gguf_n_tensors(m->gguf)) {
		err_set(why, "block_count %d needs at least %lld tensors, the "
		    "file has %llu", m->hp.n_layer, 9LL * m->hp.n_layer,
		    (unsigned long long)gguf_n_tensors(m->gguf));
		goto fail;
	}
	m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
	if (m->layers == NULL) {
		err_set(why, "out of memory");
		goto fail;
	}
	if (place_weights(m, opts != NULL && opts->use_mmap, why) != 0)
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
	free(m->weights);
	free(m);
}
