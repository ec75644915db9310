/*
 * rope: rotary position embedding.  Owns the per-pair frequencies of a
 * model and turns integer positions into cos/sin tables.  Angles are
 * computed in double from 64-bit positions, then rounded once to float,
 * so a token at stream position 30,000,000 is rotated as exactly as one
 * at position 3: nothing is accumulated and no position passes through
 * float.
 */
#ifndef SINKD_ROPE_H
#define SINKD_ROPE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

struct rope {
	int n_rot, head_dim, neox;
	double *inv_freq; /* [n_rot / 2] */
};

int rope_init(struct rope *, const struct model_hparams *, char *cause);
void rope_free(struct rope *);

/* cs[t][i] = (cos, sin) of pos[t] * inv_freq[i]: n * n_rot floats. */
void rope_table(const struct rope *, const int64_t *pos, size_t n, float *cs);

/*
 * Rotates every head of n rows of vectors (n_heads heads of head_dim,
 * rows ld floats apart) by the angles of row t of the table.
 */
void rope_apply(const struct rope *, const float *cs, float *v, size_t n,
    size_t ld, int n_heads);

#endif
