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
#include <stdint.h>

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
/*
 * k single rows X[j] (decode rows of different sequences) through up to
 * 4 matrices of one input, into Y[m * k + j] (W[m]->rows floats each):
 * each activation is prepared once and W is read from memory once for
 * all of them (tiles of rows stay in cache while every activation is
 * dotted).  Each Y row is memcmp-equal to matmul's of that row alone.
 */
#define MATMUL_MULTI_MAX 16
int matmul_multi(struct pool *, int nw, const struct wmat *const *W,
    size_t k, const float *const *X, float *const *Y,
    struct matmul_scratch *, char *cause);
/*
 * Grows the scratch to what any call on W with up to n rows (matmul's
 * or matmul_multi's) and nth threads needs, so that a caller can fail before it changes anything.
 */
int matmul_reserve(struct matmul_scratch *, const struct wmat *W, size_t n,
    int nth, char *cause);
void matmul_scratch_free(struct matmul_scratch *);

/*
 * Attention of one head for a chunk of n queries through sgemm, over L
 * gathered rows of K and V (hd floats, ldk apart) whose first n_sink are
 * the cache's sinks.  Query t sees rows [0, ns[t]) scored with Qs[t]
 * (or Q[t] when Qs is NULL) and rows [lo[t], hi[t]) scored with Q[t]:
 *   out[t] = softmax(scale * scores) V
 * Q and Qs rows are ldq apart, out rows ldo; S is n x L floats of
 * scratch.  Single-threaded: callers run heads in parallel.
 */
struct matmul_band {
	const float *Q, *Qs, *K, *V;
	size_t ldq, ldk, n, L, n_sink, hd, ldo;
	const int32_t *ns, *lo, *hi;
	const int32_t *s0;	/* NULL, or rows [0, s0[t]) hidden too */
	float scale;
	float softcap;		/* > 0: scores soft-capped */
	float *out, *S;
};

void matmul_attn_band(const struct matmul_band *);

#endif
