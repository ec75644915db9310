/*
 * model: a loaded model, shared read-only by every sequence.  Reads the
 * hyperparameters of a GGUF of one of the architectures of the table in
 * model_arch.c (llama, qwen2, qwen3, phi3, gemma2), checks every
 * weight's shape and type, and keeps a view of each weight (by default
 * copied out of the mapping into aligned memory, see model_open).  Owns
 * the tokenizer.
 */
#ifndef SINKD_MODEL_H
#define SINKD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "gguf.h"
#include "tokenizer.h"

enum model_act { ACT_SILU, ACT_GELU_TANH };

/* Which layers attend through a sliding window of hp.n_swa tokens. */
enum model_swa {
	SWA_NONE,
	SWA_ALL,	/* every layer, when the file gives one (mistral) */
	SWA_EVEN,	/* even layers; odd layers see everything (gemma2) */
};

/*
 * An architecture: everything the loader and the forward pass do
 * differently for it.  One entry of model_arch.c's table each; see
 * HACKING, "Adding an architecture".
 */
struct model_arch {
	const char *name;	/* general.architecture */
	int rope_neox;		/* pairs (i, i + n_rot/2) */
	enum model_act act;	/* of the gate: act(gate) * up */
	int qkv_bias;		/* attn_{q,k,v}.bias are required */
	int fused_qkv;		/* attn_qkv: rows Q, then K, then V */
	int fused_gate_up;	/* ffn_up holds gate rows, then up rows */
	int qk_norm;		/* attn_{q,k}_norm: per-head RMSNorm */
	int post_norms;		/* post_attention_norm, post_ffw_norm */
	int embd_scale;		/* embeddings times sqrt(n_embd) */
	int softcaps;		/* attn_logit_, final_logit_softcapping */
	int rope_freqs;		/* rope_freqs.weight, llama3 scaling */
	enum model_swa swa;
	/*
	 * With this block count (Gemma-2 27B), q . k is scaled by
	 * 1/sqrt(n_embd / n_head) rather than 1/sqrt(head_dim), as that
	 * model was trained (query_pre_attn_scalar); 0: never.
	 */
	int32_t embd_scale_layers;
	/* Tensors this code cannot run; their presence is refused. */
	const char *const *refuse;
};

/* The table's entry named s (len bytes), or NULL. */
const struct model_arch *model_arch_find(const char *s, size_t len);
/* "llama, qwen2, ...": the table's names into buf, for error messages. */
void model_arch_list(char *buf, size_t len);

/* A weight matrix: rows of `cols` elements of `type`, row_bytes apart. */
struct wmat {
	uint32_t type;
	int64_t rows;
	int64_t cols;
	size_t row_bytes;
	const void *data;
	/*
	 * The rows repacked for the AVX-512 kernels (kernels_panel.c), or
	 * NULL.  With a panel, data points into the file's mapping (paged
	 * back in on use) and the panel is what decode and prefill read.
	 */
	const void *pk;
};

struct model_hparams {
	const struct model_arch *arch;
	int32_t n_vocab;
	int32_t n_ctx_train;
	int32_t n_embd;
	int32_t n_layer;
	int32_t n_head;
	int32_t n_head_kv;
	int32_t head_dim; /* attention.key_length, else n_embd / n_head */
	int32_t n_ff;
	int32_t n_rot;	  /* rotated dimensions per head (<= head_dim) */
	float rms_eps;
	double rope_base;
	double rope_scale; /* linear scaling: positions are divided by this */
	int rope_neox;	   /* pairs (i, i + n_rot/2) rather than (2i, 2i+1) */
	/* Per-pair frequency divisors (rope_freqs.weight or llama3 keys). */
	const float *rope_freqs; /* [n_rot / 2] or NULL */
	float attn_softcap;	 /* scores: c * tanh(s / c); 0: none */
	float final_softcap;	 /* logits alike */
	int32_t n_swa;		 /* sliding window (tokens), 0: none */
	float attn_scale;	 /* of q . k: 1 / sqrt(head_dim) */
};

struct model_layer {
	const float *attn_norm; /* [n_embd] */
	struct wmat wq;		/* [n_head*head_dim rows][n_embd] */
	struct wmat wk;		/* [n_head_kv*head_dim][n_embd] */
	struct wmat wv;		/* [n_head_kv*head_dim][n_embd] */
	const float *bq, *bk, *bv; /* qwen2 only, else NULL */
	const float *q_norm, *k_norm; /* [head_dim], qwen3 only, else NULL */
	struct wmat wo;		/* [n_embd][n_head*head_dim] */
	const float *post_attn_norm; /* [n_embd], gemma2 only, else NULL */
	const float *ffn_norm;	/* [n_embd] */
	struct wmat w_gate;	/* [n_ff][n_embd] */
	struct wmat w_up;	/* [n_ff][n_embd] */
	struct wmat w_down;	/* [n_embd][n_ff] */
	const float *post_ffn_norm; /* [n_embd], gemma2 only, else NULL */
	int swa;		/* attends through the sliding window */
};

struct model {
	struct model_hparams hp;
	struct gguf_file *gguf;
	struct tok *tok;
	struct wmat tok_embd;	  /* [n_vocab][n_embd] */
	const float *output_norm; /* [n_embd] */
	struct wmat output;	  /* [n_vocab][n_embd]; tok_embd when tied */
	float *rope_freqs;	  /* owned, when computed from llama3 keys */
	struct model_layer *layers;
	void *weights;		/* owned copy of the tensor data, or NULL */
	size_t weights_size;
	size_t panel_bytes;	/* of weights_size, held as panels */
	size_t n_params;
	char desc[128];		/* "llama 5L 64d Q8_0 (260K params)" */
	/*
	 * SHA-256 of the GGUF header (metadata and tensor layout) and the
	 * file size, in hex: a snapshot is only ever restored into the model
	 * with the same fingerprint.
	 */
	char fingerprint[65];
};

struct model_opts {
	int use_mmap; /* compute straight from the mapping instead of a copy */
	int no_panels; /* copy panel types' rows as stored (A/B) */
};

struct model *model_open(const char *path, const struct model_opts *,
    char *cause);
void model_close(struct model *);


#endif
