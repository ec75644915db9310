/*
 * matmul: Y = X * W^T for a weight matrix of any supported type, run on
 * a thread pool.  One row of X (decode) goes through the SIMD matvec
 * kernels, which stream the weights once at memory speed; many rows
 * (prefill) are bound by arithmetic instead: quantized weights go through
 * the integer GEMM kernel against activations quantized as for decode,
 * float weights through OpenBLAS sgemm on rows converted to f32 a block
 * at a time.
 */
#ifndef SINKD_MATMUL_H
#define SINKD_MATMUL_H

#include <stddef.h>

#include "model.h"
#include "pool.h"

struct matmul_scratch {
	void *buf;
	size_t cap;
};

/*
 * Y[n][W->rows] = X[n][W->cols] * W^T; Y rows are ldy floats apart.
 * Scratch grows on demand; -1 only when out of memory.
 */
int matmul(struct pool *, const struct wmat *W, const float *X, size_t n,
    float *Y, size_t ldy, struct matmul_scratch *, char *cause);
/*
 * Y[m] = X * W[m]^T for up to 4 matrices of one input (Q, K, V; gate,
 * up): decode prepares the activation once and forks once for all.
 */
int matmul_many(struct pool *, int nw, const struct wmat *const *W,
    const float *X, size_t n, float *const *Y, const size_t *ldy,
    struct matmul_scratch *, char *cause);
void matmul_scratch_free(struct matmul_scratch *);

/*
 * Causal attention of one head for a chunk of n queries, through sgemm:
 * out[t] = softmax(scale * Q[t] . K[0..first+t]) V[0..first+t], where Q
 * is n x hd (rows ldq apart), K and V are L = first + n rows (ldk apart),
 * out rows are ldo apart and S is n x L floats of scratch.  Single-
 * threaded: callers run heads in parallel.
 */
void matmul_attn_head(const float *Q, size_t ldq, const float *K,
    const float *V, size_t ldk, size_t n, size_t L, size_t first, size_t hd,
    float scale, float *out, size_t ldo, float *S);

#endif
