/*
 * synth: synthetic models.  Weights are uniform in +-1/sqrt(fan-in) (so
 * activations keep a sane scale through many layers), norms are near 1,
 * and each tensor draws from its own stream seeded by (seed, tensor
 * index).  Without --vocab-from, the tokenizer is a generated
 * SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, then pieces.
 */
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "quant_mix.h"

struct synth_shape {
	const char *name;
	int32_t embd, layer, head, head_kv, ff, ctx, vocab, head_dim;
};

static const struct synth_shape shapes[] = {
	{ "tinyllama-1.1b", 2048, 22, 32, 4, 5632, 2048, 32000, 0 },
	{ "llama2-7b", 4096, 32, 32, 32, 11008, 4096, 32000, 0 },
	{ "smollm-135m", 576, 30, 9, 3, 1536, 2048, 49152, 0 },
	{ "gemma2-2b", 2304, 26, 8, 4, 9216, 8192, 256000, 256 },
	{ "tiny", 64, 2, 4, 2, 96, 256, 320, 0 },
};

/* The head size: --head-dim, else n_embd / n_head. */
static int32_t
head_dim(const struct synth_opts *o)
{
	return o->head_dim > 0 ? o->head_dim : o->n_embd / o->n_head;
}

int
synth_shape(struct synth_opts *o, const char *name, char *cause)
{
	size_t i;

	for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		const struct synth_shape *s = &shapes[i];
		if (strcasecmp(name, s->name) != 0)
			continue;
		o->n_embd = s->embd;
		o->n_layer = s->layer;
		o->n_head = s->head;
		o->n_head_kv = s->head_kv;
		o->n_ff = s->ff;
		o->n_ctx = s->ctx;
		o->n_vocab = s->vocab;
		o->head_dim = s->head_dim;
		return 0;
	}
	return err_set(cause, "unknown shape '%s' (known: tinyllama-1.1b, "
	    "gemma2-2b, "
	    "llama2-7b, smollm-135m, tiny)", name);
}

static const char *const arch_names[] = { "llama", "qwen2", "qwen3", "phi3",
	"gemma2" };

static int
arch_index(const char *a)
{
	size_t i;

	for (i = 0; i < sizeof arch_names / sizeof arch_names[0]; i++)
		if (strcmp(a, arch_names[i]) == 0)
			return (int)i;
	return -1;
}

int
synth_check(const struct synth_opts *o, char *cause)
{
	uint32_t blk = qtype_block_elems(o->type);
	char names[512];

	if (arch_index(o->arch) < 0)
		return err_set(cause, "--arch '%s': choose llama, qwen2, "
		    "qwen3, phi3 or gemma2", o->arch);
	if ((o->rope_freqs || o->rope_llama3_keys) &&
	    strcmp(o->arch, "llama") != 0)
		return err_set(cause, "Llama-3 rope factors are for --arch "
		    "llama");
	if (o->n_swa < 0 || (o->n_swa > 0 && strcmp(o->arch, "llama") != 0 &&
	    strcmp(o->arch, "gemma2") != 0))
		return err_set(cause, "--sliding-window is for llama (every "
		    "layer) and gemma2 (even layers)");
	if (o->output_type > 0 && qtype_block_elems((uint32_t)o->output_type) == 0)
		return err_set(cause, "--output-type %d is not a GGUF type",
		    o->output_type);
	if (o->output_type > 0 && o->n_embd %
	    (int32_t)qtype_block_elems((uint32_t)o->output_type) != 0)
		return err_set(cause, "--n-embd %d is not a multiple of the "
		    "%s block", o->n_embd, qtype_name((uint32_t)o->output_type));
	if (!qtype_supported(o->type)) {
		qtype_supported_names(names, sizeof names, ", ");
		return err_set(cause, "--type %s is not supported (%s, Q3_K_M, "
		    "Q4_K_M, Q5_K_M)", qtype_name(o->type), names);
	}
	if (o->n_embd < 1 || o->n_layer < 1 || o->n_head < 1 ||
	    o->n_head_kv < 1 || o->n_ff < 1 || o->n_ctx < 1)
		return err_set(cause, "every size must be positive");
	if (o->head_dim < 0 || (o->head_dim == 0 && o->n_embd % o->n_head !=
	    0) || head_dim(o) % 2 != 0)
		return err_set(cause, "the head size (--head-dim, else "
		    "--n-embd / --n-head) must be even");
	if (o->n_head % o->n_head_kv != 0)
		return err_set(cause, "--n-head %d must be a multiple of "
		    "--n-head-kv %d", o->n_head, o->n_head_kv);
	if (o->n_embd % (int32_t)blk != 0 || o->n_ff % (int32_t)blk != 0 ||
	    (head_dim(o) * o->n_head_kv) % (int32_t)blk != 0 ||
	    (head_dim(o) * o->n_head) % (int32_t)blk != 0)
		return err_set(cause, "%s needs --n-embd, --n-ff and the Q "
		    "and KV widths to be multiples of %u", qtype_name(o->type),
		    blk);
	if (o->vocab_from == NULL && o->n_vocab < 259 + 16)
		return err_set(cause, "--n-vocab %d is too small for a "
		    "generated vocabulary (at least 275)", o->n_vocab);
	return 0;
}

static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float
rng_sym(uint64_t *s)
{
	return (float)((double)(rng_next(s) >> 40) * 0x1.0p-23 - 1.0);
}

struct synth_tensor {
	uint64_t seed;
	uint32_t type;
	uint64_t cols, rows;
	float center, spread; /* value = center + spread * U(-1, 1) */
	const float *values;  /* instead, when set (rope_freqs) */
};

static int
synth_fill(void *arg, void *buf, size_t nbytes, char *cause)
{
	struct synth_tensor *t = arg;
	uint64_t s = t->seed, r, i, rb;
	float *row = malloc(t->cols * sizeof *row);

	if (row == NULL)
		return err_set(cause, "out of memory");
	qtype_row_bytes(t->type, t->cols, &rb);
	if (!qtype_supported(t->type)) {
		memset(buf, 0, nbytes);
		free(row);
		return 0;
	}
	for (r = 0; r < t->rows; r++) {
		for (i = 0; i < t->cols; i++)
			row[i] = t->values != NULL ?
			    t->values[r * t->cols + i] :
			    t->center + t->spread * rng_sym(&s);
		quant_quantize_row(t->type, row, (char *)buf + r * rb, t->cols);
	}
	free(row);
	return 0;
}

struct synth_ctx {
	const struct synth_opts *o;
	struct gguf_writer *w;
	struct synth_tensor *t;
	int n;
};

static void
add_tensor(struct synth_ctx *c, const char *name, uint64_t cols,
    uint64_t rows, int is_vec)
{
	uint32_t type = is_vec ? QT_F32 : c->o->type;
	struct synth_tensor *t = &c->t[c->n];
	uint64_t ne[2] = { cols, rows };

	t->seed = c->o->seed * 0x100000001b3ULL + (uint64_t)c->n * 7919 + 1;
	if (!is_vec && c->o->mix != QUANT_MIX_NONE)
		type = quant_mix_type((enum quant_mix)c->o->mix, name,
		    c->o->n_layer, c->o->tied);
	if (!is_vec && c->o->output_type > 0 && strcmp(name, "output.weight") == 0)
		type = (uint32_t)c->o->output_type;
	t->type = type;
	t->cols = cols;
	t->rows = rows;
	t->center = is_vec ? (strstr(name, "bias") ? 0.0f : 1.0f) : 0.0f;
	t->spread = is_vec ? 0.1f : (float)(1.0 / sqrt((double)cols));
	gguf_writer_add_tensor(c->w, name, is_vec ? 1 : 2, ne, t->type,
	    synth_fill, t);
	c->n++;
}

/* A block's tensors, as each architecture's files have them. */
static void
add_layer(struct synth_ctx *c, int il)
{
	const struct synth_opts *o = c->o;
	uint64_t e = (uint64_t)o->n_embd, f = (uint64_t)o->n_ff;
	uint64_t hd = (uint64_t)head_dim(o), kv = hd * (uint64_t)o->n_head_kv;
	uint64_t q = hd * (uint64_t)o->n_head;
	int phi3 = strcmp(o->arch, "phi3") == 0;
	int gemma2 = strcmp(o->arch, "gemma2") == 0;
	char n[64];

#define T(what, cols, rows, vec) \
	(snprintf(n, sizeof n, "blk.%d.%s", il, what), \
	    add_tensor(c, n, cols, rows, vec))
	T("attn_norm.weight", e, 1, 1);
	if (phi3) {
		T("attn_qkv.weight", e, q + 2 * kv, 0);
	} else {
		T("attn_q.weight", e, q, 0);
		T("attn_k.weight", e, kv, 0);
		T("attn_v.weight", e, kv, 0);
	}
	if (strcmp(o->arch, "qwen2") == 0) {
		T("attn_q.bias", q, 1, 1);
		T("attn_k.bias", kv, 1, 1);
		T("attn_v.bias", kv, 1, 1);
	}
	if (strcmp(o->arch, "qwen3") == 0) {
		T("attn_q_norm.weight", hd, 1, 1);
		T("attn_k_norm.weight", hd, 1, 1);
	}
	T("attn_output.weight", q, e, 0);
	if (gemma2)
		T("post_attention_norm.weight", e, 1, 1);
	T("ffn_norm.weight", e, 1, 1);
	if (phi3) {
		T("ffn_up.weight", e, 2 * f, 0);
	} else {
		T("ffn_gate.weight", e, f, 0);
		T("ffn_up.weight", e, f, 0);
	}
	T("ffn_down.weight", f, e, 0);
	if (gemma2)
		T("post_ffw_norm.weight", e, 1, 1);
#undef T
}

/*
 * Llama-3.1's frequency divisors (factor 8, low_freq_factor 1,
 * high_freq_factor 4, original context 8192), as its converter
 * computes them into rope_freqs.weight.
 */
static void
llama3_factors(const struct synth_opts *o, float *out, int half)
{
	double base = o->rope_base > 0 ? o->rope_base : 10000.0, wl, sm;
	int i;

	for (i = 0; i < half; i++) {
		wl = 2.0 * 3.14159265358979323846 * pow(base, 2.0 * i /
		    (2.0 * half));
		if (wl < 8192.0 / 4.0)
			out[i] = 1.0f;
		else if (wl > 8192.0 / 1.0)
			out[i] = 8.0f;
		else {
			sm = (8192.0 / wl - 1.0) / (4.0 - 1.0);
			out[i] = (float)(1.0 / ((1.0 - sm) / 8.0 + sm));
		}
	}
}

/* Pieces "▁a".."▁z", then "▁a0"... until the vocabulary is full. */
static int
add_generated_vocab(struct gguf_writer *w, int32_t n, char *cause)
{
	struct gguf_str *s = calloc((size_t)n, sizeof *s);
	float *score = calloc((size_t)n, sizeof *score);
	int32_t *type = calloc((size_t)n, sizeof *type), i;
	char (*text)[24] = calloc((size_t)n, sizeof *text);

	if (s == NULL || score == NULL || type == NULL || text == NULL) {
		free(s); free(score); free(type); free(text);
		return err_set(cause, "out of memory for the vocabulary");
	}
	for (i = 0; i < n; i++) {
		if (i < 3)
			snprintf(text[i], sizeof text[i], "%s",
			    i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
		else if (i < 259)
			snprintf(text[i], sizeof text[i], "<0x%02X>", i - 3);
		else
			snprintf(text[i], sizeof text[i], "\xe2\x96\x81%c%.0d",
			    'a' + (i - 259) % 26, (i - 259) / 26);
		s[i] = (struct gguf_str){ text[i], strlen(text[i]) };
		type[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
		score[i] = i < 259 ? 0.0f : -(float)(i - 259);
	}
	gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
	gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", s, (uint64_t)n);
	gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, score,
	    (uint64_t)n);
	gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, type,
	    (uint64_t)n);
	gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0);
	gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1);
	gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
	/* The writer copies arrays when they are added. */
	free(s); free(score); free(type); free(text);
	return 0;
}

/* tokenizer.chat_template: the text of a file. */
static int
add_template(struct gguf_writer *w, const char *path, char *cause)
{
	FILE *f = fopen(path, "rb");
	char *t = NULL;
	long n = -1;

	if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    n < (1L << 24) && fseek(f, 0, SEEK_SET) == 0 &&
	    (t = calloc(1, (size_t)n + 1)) != NULL &&
	    fread(t, 1, (size_t)n, f) == (size_t)n && memchr(t, 0,
	    (size_t)n) == NULL)
		gguf_writer_add_str(w, "tokenizer.chat_template", t);
	else
		n = -1;
	if (f != NULL)
		fclose(f);
	free(t);
	return n < 0 ? err_set(cause, "--chat-template %s: cannot read it as "
	    "a text file of at most 16 MiB", path) : 0;
}

static int
copy_vocab(struct gguf_writer *w, const char *path, int32_t *n_vocab,
    int skip_template, char *cause)
{
	struct gguf_file *g = gguf_open(path, cause);
	const struct gguf_kv *toks;
	uint64_t i;

	if (g == NULL)
		return -1;
	if (gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_STRING, &toks,
	    cause) != 0) {
		if (gguf_find_kv(g, "tokenizer.ggml.tokens") == NULL)
			err_set(cause, "%s has no tokenizer.ggml.tokens", path);
		gguf_close(g);
		return -1;
	}
	*n_vocab = (int32_t)toks->arr_n;
	for (i = 0; i < gguf_n_kv(g); i++) {
		const struct gguf_kv *kv = gguf_kv_at(g, i);
		if (kv->key.len > 10 && memcmp(kv->key.ptr, "tokenizer.", 10) == 0 &&
		    !(skip_template && gguf_str_eq(kv->key,
		    "tokenizer.chat_template")))
			gguf_writer_copy_kv(w, kv);
	}
	gguf_close(g);
	return 0;
}

static void
add_hparams(struct gguf_writer *w, const struct synth_opts *o)
{
	char k[96];

#define KEY(s) (snprintf(k, sizeof k, "%s.%s", o->arch, s), k)
	gguf_writer_add_str(w, "general.architecture", o->arch);
	gguf_writer_add_str(w, "general.name", "sinkd synthetic");
	gguf_writer_add_u32(w, KEY("context_length"), (uint32_t)o->n_ctx);
	gguf_writer_add_u32(w, KEY("embedding_length"), (uint32_t)o->n_embd);
	gguf_writer_add_u32(w, KEY("block_count"), (uint32_t)o->n_layer);
	gguf_writer_add_u32(w, KEY("feed_forward_length"), (uint32_t)o->n_ff);
	gguf_writer_add_u32(w, KEY("attention.head_count"),
	    (uint32_t)o->n_head);
	gguf_writer_add_u32(w, KEY("attention.head_count_kv"),
	    (uint32_t)o->n_head_kv);
	gguf_writer_add_u32(w, KEY("rope.dimension_count"),
	    (uint32_t)head_dim(o));
	gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
	gguf_writer_add_f32(w, KEY("rope.freq_base"),
	    o->rope_base > 0 ? o->rope_base : 10000.0f);
	if (strcmp(o->arch, "gemma2") == 0 || o->head_dim > 0) {
		gguf_writer_add_u32(w, KEY("attention.key_length"),
		    (uint32_t)head_dim(o));
		gguf_writer_add_u32(w, KEY("attention.value_length"),
		    (uint32_t)head_dim(o));
	}
	if (strcmp(o->arch, "gemma2") == 0) {
		gguf_writer_add_u32(w, KEY("attention.sliding_window"),
		    (uint32_t)(o->n_swa > 0 ? o->n_swa : 4096));
		gguf_writer_add_f32(w, KEY("attn_logit_softcapping"),
		    o->attn_softcap > 0 ? o->attn_softcap : 50.0f);
		gguf_writer_add_f32(w, KEY("final_logit_softcapping"),
		    o->final_softcap > 0 ? o->final_softcap : 30.0f);
	} else if (o->n_swa > 0) {
		gguf_writer_add_u32(w, KEY("attention.sliding_window"),
		    (uint32_t)o->n_swa);
	}
	if (o->rope_llama3_keys) {
		gguf_writer_add_str(w, KEY("rope.scaling.type"), "llama3");
		gguf_writer_add_f32(w, KEY("rope.scaling.factor"), 8.0f);
		gguf_writer_add_f32(w, KEY("rope.scaling.low_freq_factor"),
		    1.0f);
		gguf_writer_add_f32(w, KEY("rope.scaling.high_freq_factor"),
		    4.0f);
		gguf_writer_add_u32(w,
		    KEY("rope.scaling.original_context_length"), 8192);
	}
#undef KEY
}

int
synth_write(const struct synth_opts *o, const char *path, char *cause)
{
	struct synth_ctx c = { .o = o };
	struct synth_opts v = *o;
	int il, rc = -1, half = head_dim(o) / 2;
	float *freqs = NULL;

	if (synth_check(o, cause) != 0)
		return -1;
	c.o = &v;
	c.w = gguf_writer_new();
	c.t = calloc((size_t)o->n_layer * 16 + 4, sizeof *c.t);
	freqs = calloc((size_t)half, sizeof *freqs);
	if (c.w == NULL || c.t == NULL || freqs == NULL) {
		err_set(cause, "out of memory");
		goto out;
	}
	add_hparams(c.w, o);
	if (o->vocab_from != NULL ?
	    copy_vocab(c.w, o->vocab_from, &v.n_vocab, o->chat_template != NULL,
	    cause) : add_generated_vocab(c.w, o->n_vocab, cause))
		goto out;
	if (o->chat_template != NULL && add_template(c.w, o->chat_template,
	    cause) != 0)
		goto out;
	add_tensor(&c, "token_embd.weight", (uint64_t)v.n_embd,
	    (uint64_t)v.n_vocab, 0);
	add_tensor(&c, "output_norm.weight", (uint64_t)v.n_embd, 1, 1);
	if (!o->tied)
		add_tensor(&c, "output.weight", (uint64_t)v.n_embd,
		    (uint64_t)v.n_vocab, 0);
	if (o->rope_freqs) {
		llama3_factors(o, freqs, half);
		c.t[c.n].values = freqs;
		add_tensor(&c, "rope_freqs.weight", (uint64_t)half, 1, 1);
	}
	for (il = 0; il < o->n_layer; il++)
		add_layer(&c, il);
	rc = gguf_writer_write(c.w, path, cause);
out:
	gguf_writer_free(c.w);
	free(c.t);
	free(freqs);
	return rc;
}
