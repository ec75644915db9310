/*
 * sampler: picks the next token from logits.  Greedy at temperature 0;
 * otherwise repetition penalty, top-k, top-p, min-p, temperature, then a
 * draw from an explicit, seedable, exportable RNG state (no globals), so
 * the same seed gives the same output and a stored session resumes its
 * random stream exactly.
 */
#ifndef SINKD_SAMPLER_H
#define SINKD_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct sampler_params {
	float temp;	      /* <= 0: greedy */
	int32_t top_k;	      /* 0: off */
	float top_p;	      /* 1: off */
	float min_p;	      /* 0: off */
	float repeat_penalty; /* 1: off */
	int32_t repeat_last_n; /* tokens of history the penalty looks at */
	uint64_t seed;
};

/* temp 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty (last 64), seed 0 */
void sampler_defaults(struct sampler_params *);
/* 0, or -1 with cause naming the parameter out of range. */
int sampler_check(const struct sampler_params *, char *cause);

struct sampler;

struct sampler *sampler_new(const struct sampler_params *, int32_t n_vocab,
    char *cause);
void sampler_free(struct sampler *);

/* Records a token in the penalty history (prompt and generated alike). */
void sampler_accept(struct sampler *, int32_t token);
/* Chooses a token; logits (n_vocab) are used as scratch and modified. */
int32_t sampler_sample(struct sampler *, float *logits);
/* The greedy choice: the first id of the largest logit. */
int32_t sampler_argmax(const float *logits, int32_t n);

/* The RNG's full state, to store and restore a session's random stream. */
void sampler_rng_get(const struct sampler *, uint64_t state[4]);
void sampler_rng_set(struct sampler *, const uint64_t state[4]);
/*
 * The penalty history, oldest first, into out (room for repeat_last_n
 * ids); the count.  Accepting them in order into a fresh sampler
 * restores it.
 */
size_t sampler_hist(const struct sampler *, int32_t *out);

#endif
