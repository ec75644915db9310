/*
 * model: a loaded model, shared read-only by every sequence.  Reads the
 * hyperparameters of a llama or qwen2 GGUF, checks every weight's shape
 * and type, and keeps a view of each weight (by default copied out of the
 * mapping into aligned memory, see model_open).  Owns the tokenizer.
 */
#ifndef SINKD_MODEL_H
#define SINKD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "gguf.h"
#include "tokenizer.h"

enum model_arch {
	ARCH_LLAMA,
	ARCH_QWEN2,
};

/* A weight matrix: rows of `cols` elements of `type`, row_bytes apart. */
struct wmat {
	uint32_t type;
	int64_t rows;
	int64_t cols;
	size_t row_bytes;
	const void *data;
};

struct model_hparams {
	enum model_arch arch;
	int32_t n_vocab;
	int32_t n_ctx_train;
	int32_t n_embd;
	int32_t n_layer;
	int32_t n_head;
	int32_t n_head_kv;
	int32_t head_dim; /* n_embd / n_head */
	int32_t n_ff;
	int32_t n_rot;	  /* rotated dimensions per head (<= head_dim) */
	float rms_eps;
	double rope_base;
	double rope_scale; /* linear scaling: positions are divided by this */
	int rope_neox;	   /* pairs (i, i + n_rot/2) rather than (2i, 2i+1) */
};

struct model_layer {
	const float *attn_norm; /* [n_embd] */
	struct wmat wq;		/* [n_head*head_dim rows][n_embd] */
	struct wmat wk;		/* [n_head_kv*head_dim][n_embd] */
	struct wmat wv;		/* [n_head_kv*head_dim][n_embd] */
	const float *bq, *bk, *bv; /* qwen2 only, else NULL */
	struct wmat wo;		/* [n_embd][n_head*head_dim] */
	const float *ffn_norm;	/* [n_embd] */
	struct wmat w_gate;	/* [n_ff][n_embd] */
	struct wmat w_up;	/* [n_ff][n_embd] */
	struct wmat w_down;	/* [n_embd][n_ff] */
};

struct model {
	struct model_hparams hp;
	struct gguf_file *gguf;
	struct tok *tok;
	struct wmat tok_embd;	  /* [n_vocab][n_embd] */
	const float *output_norm; /* [n_embd] */
	struct wmat output;	  /* [n_vocab][n_embd]; tok_embd when tied */
	struct model_layer *layers;
	void *weights;		/* owned copy of the tensor data, or NULL */
	size_t weights_size;
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
};

struct model *model_open(const char *path, const struct model_opts *,
    char *cause);
void model_close(struct model *);

const char *model_arch_name(enum model_arch);

#endif
