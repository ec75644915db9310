/*
 * quant_mix: per-tensor types of the K-quant mixtures (rule in
 * quant_mix.h).
 */
#include "quant_mix.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "quant_k.h"

static const char *const names[] = {
	[QUANT_MIX_NONE] = "none",
	[QUANT_MIX_Q3_K_M] = "Q3_K_M",
	[QUANT_MIX_Q4_K_M] = "Q4_K_M",
	[QUANT_MIX_Q5_K_M] = "Q5_K_M",
};

enum quant_mix
quant_mix_from_name(const char *name)
{
	int i;

	for (i = QUANT_MIX_Q3_K_M; i <= QUANT_MIX_Q5_K_M; i++) {
		if (strcasecmp(name, names[i]) == 0)
			return (enum quant_mix)i;
	}
	return QUANT_MIX_NONE;
}

const char *
quant_mix_name(enum quant_mix m)
{
	return names[m];
}

uint32_t
quant_mix_base(enum quant_mix m)
{
	switch (m) {
	case QUANT_MIX_Q3_K_M: return QT_Q3_K;
	case QUANT_MIX_Q5_K_M: return QT_Q5_K;
	default: return QT_Q4_K;
	}
}

static int
more_bits(int i, int n)
{
	return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* "blk.I.WHAT.weight": the layer and whether WHAT is what. */
static int
is_layer_tensor(const char *name, const char *what, int *layer)
{
	char w[32];

	return sscanf(name, "blk.%d.%31[^.]", layer, w) == 2 &&
	    strcmp(w, what) == 0;
}

uint32_t
quant_mix_type(enum quant_mix m, const char *name, int n_layer, int tied)
{
	uint32_t base = quant_mix_base(m);
	int il = 0;

	if (strcmp(name, "output.weight") == 0 ||
	    (tied && strcmp(name, "token_embd.weight") == 0))
		return QT_Q6_K;
	if (m == QUANT_MIX_Q3_K_M) {
		if (is_layer_tensor(name, "attn_v", &il))
			return QT_Q5_K;
		if (is_layer_tensor(name, "attn_output", &il) ||
		    is_layer_tensor(name, "ffn_down", &il))
			return QT_Q4_K;
		return base;
	}
	if ((is_layer_tensor(name, "attn_v", &il) ||
	    is_layer_tensor(name, "ffn_down", &il)) && more_bits(il, n_layer))
		return QT_Q6_K;
	return base;
}
