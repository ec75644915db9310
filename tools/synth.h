/*
 * synth: writes synthetic llama / qwen2 / qwen3 / phi3 / gemma2 GGUF
 * models with seeded random
 * weights at real shapes, for benchmarks and test fixtures.  The same
 * options and seed always give the same file.
 */
#ifndef SINKD_SYNTH_H
#define SINKD_SYNTH_H

#include <stdint.h>

#include "err.h"

struct synth_opts {
	const char *arch;	/* llama, qwen2, qwen3, phi3 or gemma2 */
	uint32_t type;		/* type of the 2-D weights (quant.h) */
	int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx, n_vocab;
	int32_t head_dim;	/* 0: n_embd / n_head; else key_length */
	float rope_base;
	int tied;		/* no output.weight: reuse token_embd */
	int output_type;	/* type of output.weight; 0: as the others.
				 * Types sinkd cannot compute are written
				 * as zeros (to test their refusal). */
	int32_t n_swa;		/* attention.sliding_window (llama: every
				 * layer; gemma2: even layers, 0 there
				 * means 4096) */
	float attn_softcap;	/* gemma2; 0: 50 */
	float final_softcap;	/* gemma2; 0: 30 */
	int rope_freqs;		/* llama: Llama-3.1's factors (8, 1, 4,
				 * 8192) in rope_freqs.weight ... */
	int rope_llama3_keys;	/* ... or as rope.scaling.* keys */
	uint64_t seed;
	int mix;		/* enum quant_mix: per-tensor types (then
				 * type is the mixture's base type) */
	const char *vocab_from;	/* copy tokenizer.* keys from this GGUF */
	const char *chat_template;	/* tokenizer.chat_template from a file */
};

/* Fills a named shape ("tinyllama-1.1b", "gemma2-2b", "tiny", ...); -1 if
 * unknown. */
int synth_shape(struct synth_opts *, const char *name, char *cause);
/* Checks the options for consistency, naming the first bad one. */
int synth_check(const struct synth_opts *, char *cause);
int synth_write(const struct synth_opts *, const char *path, char *cause);

#endif
