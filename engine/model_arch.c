/*
 * model_arch: the table of architectures sinkd runs, one entry each.
 * The loader (model.c) reads which tensors and keys an entry implies;
 * the forward pass (seq_fwd.c) reads the rest.  What each field means
 * and what a new entry must pass: HACKING, "Adding an architecture".
 */
#include "model.h"

#include <string.h>

/* LongRoPE (Phi-3 128k): two factor sets switched on context length. */
static const char *const phi3_refuse[] = { "rope_factors_long.weight",
	"rope_factors_short.weight", NULL };

static const struct model_arch archs[] = {
	{
		/* Also Llama-3.x (rope_freqs) and mistral (sliding window). */
		.name = "llama",
		.act = ACT_SILU,
		.rope_freqs = 1,
		.swa = SWA_ALL,
	},
	{
		.name = "qwen2",
		.rope_neox = 1,
		.act = ACT_SILU,
		.qkv_bias = 1,
	},
	{
		.name = "qwen3",
		.rope_neox = 1,
		.act = ACT_SILU,
		.qk_norm = 1,
	},
	{
		.name = "phi3",
		.rope_neox = 1,
		.act = ACT_SILU,
		.fused_qkv = 1,
		.fused_gate_up = 1,
		/*
		 * Phi-3's files carry a sliding_window (2047 in a 4096
		 * context) that llama.cpp ignores, as the checkpoints are
		 * used everywhere but in flash-attention training code: so
		 * do we, to compute what the files are known to compute.
		 */
		.swa = SWA_NONE,
		.refuse = phi3_refuse,
	},
	{
		.name = "gemma2",
		.rope_neox = 1,
		.act = ACT_GELU_TANH,
		.post_norms = 1,
		.embd_scale = 1,
		.softcaps = 1,
		.swa = SWA_EVEN,
		.embd_scale_layers = 46,
	},
};

#define N_ARCHS (sizeof archs / sizeof archs[0])

const struct model_arch *
model_arch_find(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < N_ARCHS; i++) {
		if (strlen(archs[i].name) == len &&
		    memcmp(archs[i].name, s, len) == 0)
			return &archs[i];
	}
	return NULL;
}

void
model_arch_list(char *buf, size_t len)
{
	size_t i;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (i = 0; i < N_ARCHS; i++) {
		if (i > 0)
			strncat(buf, ", ", len - strlen(buf) - 1);
		strncat(buf, archs[i].name, len - strlen(buf) - 1);
	}
}
