/*
 * tlogits: what the model suites compare: the engine's logits of a
 * sequence (one prefill, or a token at a time), the reference forward
 * pass's (tests/reference.c), and how far two sets of logits are apart.
 * Failures end the test (check assertions); the caller frees the arrays.
 */
#ifndef SINKD_TLOGITS_H
#define SINKD_TLOGITS_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* n positions x n_vocab logits, in one prefill or fed one at a time. */
float *tlogits_prefill(struct model *, const int32_t *ids, size_t n);
float *tlogits_stepwise(struct model *, const int32_t *ids, size_t n);
/* The reference's logits of the model file at path, in doubles. */
double *tlogits_ref(const char *path, const int32_t *ids, size_t n);
/* Largest |a - b| over n, relative to the largest |b|. */
double tlogits_rel_err(const float *a, const double *b, size_t n);
double tlogits_rel_diff(const float *a, const float *b, size_t n);

#endif
