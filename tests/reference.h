/*
 * reference: a deliberately plain llama/qwen2 forward pass for tests.
 * Every weight is dequantized to double up front, every sum accumulates
 * in double, every position is recomputed from scratch.  It shares only
 * the GGUF reader and the scalar dequantizers with the engine.
 */
#ifndef SINKD_REFERENCE_H
#define SINKD_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

struct ref_model;

struct ref_model *ref_open(const char *path, char *cause);
void ref_close(struct ref_model *);
int ref_n_vocab(const struct ref_model *);

/* logits[n][n_vocab] for every position of tokens[0..n). */
int ref_forward(struct ref_model *, const int32_t *tokens, size_t n,
    double *logits, char *cause);

#endif
