/*
 * quant_mix: K-quant mixtures (sinkd-mkmodel --type Q4_K_M,
 * Q5_K_M, Q3_K_M): which type each weight matrix gets, in the manner of
 * llama-quantize's *_M presets.
 *
 * The rule (i: layer index, n: layer count; "more bits" layers are the
 * first and last eighth, i < n / 8 or i >= 7n / 8, and every third one
 * in between, (i - n / 8) % 3 == 2: about half of them in all):
 *   Q4_K_M: Q4_K; Q6_K for the output matrix (token_embd when tied) and
 *           for attn_v and ffn_down in the more-bits layers.
 *   Q5_K_M: the same with Q5_K as the base.
 *   Q3_K_M: Q3_K for attn_q, attn_k, ffn_gate, ffn_up (and token_embd
 *           when not tied); Q4_K for attn_output and ffn_down; Q5_K for
 *           attn_v; Q6_K for the output matrix.
 */
#ifndef SINKD_QUANT_MIX_H
#define SINKD_QUANT_MIX_H

#include <stdint.h>

enum quant_mix {
	QUANT_MIX_NONE = 0,
	QUANT_MIX_Q3_K_M,
	QUANT_MIX_Q4_K_M,
	QUANT_MIX_Q5_K_M,
};

/* The mixture called name (case-insensitive), QUANT_MIX_NONE if none. */
enum quant_mix quant_mix_from_name(const char *name);
const char *quant_mix_name(enum quant_mix);
/* Base type of a mixture (what most matrices get). */
uint32_t quant_mix_base(enum quant_mix);
/*
 * Type of the 2-D tensor name ("blk.3.attn_v.weight", "output.weight",
 * "token_embd.weight") in a model of n_layer layers; tied: token_embd
 * is also the output matrix.
 */
uint32_t quant_mix_type(enum quant_mix, const char *name, int n_layer,
    int tied);

#endif
