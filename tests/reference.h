/*
 * reference: a deliberately plain forward pass for tests (llama, qwen2,
 * qwen3, phi3, gemma2: each architecture's conventions written out
 * again here, not taken from the engine's table).
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

/*
 * The StreamingLLM cache done the naive way, for checking the engine's:
 * raw (unrotated) keys kept in cache order, the oldest window entry
 * shifted out when full, and on every step every cached key rotated
 * afresh to its place in the cache (sinks 0..n_sink-1, then the window,
 * the query last).  f16 rounds K and V as a half-float cache stores them.
 */
struct ref_stream;

struct ref_stream *ref_stream_new(struct ref_model *, int cap, int n_sink,
    int f16);
void ref_stream_free(struct ref_stream *);
/* Appends one token; logits[n_vocab] are the next-token logits. */
int ref_stream_step(struct ref_stream *, int32_t token, double *logits);

#endif
