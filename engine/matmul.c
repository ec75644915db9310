/*
 * matmul: the only caller of cblas.  Decode (n small) uses kern_matvec
 * split by rows across the pool; prefill splits rows the same way and
 * runs single-threaded sgemm on each thread's dequantized rows.
 */
#include "matmul.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"

/* Below this many rows of X, per-row matvec beats dequantize + sgemm. */
#define MM_GEMM_MIN_ROWS 4
/* Matrices smaller than this are not worth waking other threads for. */
#define MM_PARALLEL_MIN_BYTES (128 * 1024)
/* Weights dequantized per sgemm call: 2 MiB of f32 stays in L2/L3. */
#define MM_CHUNK_FLOATS (512 * 1024)

void openblas_set_num_threads(int);

static int
scratch_reserve(struct matmul_scratch *s, size_t n, char *cause)
{
	void *p;

	if (s->cap >= n)
		return 0;
	free(s->buf);
	s->buf = NULL;
	s->cap = 0;
	if (posix_memalign(&p, 64, n) != 0)
		return err_set(cause, "out of memory for %zu bytes of scratch",
		    n);
	s->buf = p;
	s->cap = n;
	return 0;
}

void
matmul_scratch_free(struct matmul_scratch *s)
{
	free(s->buf);
	s->buf = NULL;
	s->cap = 0;
}

/*
 * Rows are handed out in chunks from a shared counter rather than split
 * evenly up front: on these shared machines one core often streams
 * slower than the other, and an even split left the fast thread spinning
 * (27% of decode samples in pool_run/pool_main).
 */
#define MV_CHUNK_ROWS 64

/*
 * Several matrices with the same input (Q, K, V; gate, up) share one
 * prepared activation and one fork-join.  Each matrix's rows sit at an
 * offset of the shared counter rounded up to a whole chunk, so no chunk
 * spans two matrices.
 */
#define MV_MAX 4

struct matvec_job {
	int nw;
	const struct wmat *W[MV_MAX];
	float *y[MV_MAX];
	long off[MV_MAX + 1]; /* chunk-aligned start of each matrix */
	const void *xq;
	atomic_long next;
};

static void
matvec_slice(void *arg, int ith, int nth)
{
	struct matvec_job *j = arg;
	const struct wmat *W;
	long lo, hi;
	int m = 0;

	(void)ith;
	(void)nth;
	while ((lo = atomic_fetch_add_explicit(&j->next, MV_CHUNK_ROWS,
	    memory_order_relaxed)) < j->off[j->nw]) {
		while (lo >= j->off[m + 1])
			m++;
		W = j->W[m];
		lo -= j->off[m];
		hi = lo + MV_CHUNK_ROWS < W->rows ? lo + MV_CHUNK_ROWS : W->rows;
		if (lo < hi)
			kern_matvec(W->type, W->data, W->row_bytes,
			    (size_t)W->cols, j->xq, j->y[m] + lo, (size_t)lo,
			    (size_t)hi);
	}
}

/* 1 when the matrices can share a prepared activation. */
static int
same_input(int nw, const struct wmat *const *W)
{
	int i;

	for (i = 1; i < nw; i++) {
		if (W[i]->type != W[0]->type || W[i]->cols != W[0]->cols)
			return 0;
	}
	return nw <= MV_MAX;
}

static int
matmul_rows(struct pool *pool, int nw, const struct wmat *const *W,
    const float *X, size_t n, float *const *Y, const size_t *ldy,
    struct matmul_scratch *s, char *cause)
{
	struct matvec_job j = { .nw = nw };
	size_t cols = (size_t)W[0]->cols, bytes = 0, i;
	int m;

	if (scratch_reserve(s, kern_xq_bytes(W[0]->type, cols), cause) != 0)
		return -1;
	for (m = 0; m < nw; m++) {
		j.W[m] = W[m];
		j.off[m + 1] = j.off[m] + (W[m]->rows + MV_CHUNK_ROWS - 1) /
		    MV_CHUNK_ROWS * MV_CHUNK_ROWS;
		bytes += (size_t)W[m]->rows * W[m]->row_bytes;
	}
	j.xq = s->buf;
	for (i = 0; i < n; i++) {
		kern_prepare_x(W[0]->type, X + i * cols, cols, s->buf);
		for (m = 0; m < nw; m++)
			j.y[m] = Y[m] + i * ldy[m];
		atomic_init(&j.next, 0);
		if (bytes < MM_PARALLEL_MIN_BYTES)
			matvec_slice(&j, 0, 1);
		else
			pool_run(pool, matvec_slice, &j);
	}
	return 0;
}

/*
 * Prefill: each pool thread takes its own slice of W's rows, dequantizes
 * MM_CHUNK_FLOATS of them at a time into its own buffer and runs a
 * single-threaded sgemm on them.  OpenBLAS's own threads stay off: on
 * two cores they fought our workers for the CPU and spun in sched_yield.
 */
struct gemm_job {
	const struct wmat *W;
	const float *X;
	size_t n, ldy;
	float *Y;
	float *bufs; /* per thread: chunk * cols floats */
	long chunk;
};

static void
gemm_slice(void *arg, int ith, int nth)
{
	struct gemm_job *j = arg;
	const struct wmat *W = j->W;
	long cols = W->cols, lo, hi, r0, nr, r;
	float *buf = j->bufs + (size_t)ith * (size_t)j->chunk * (size_t)cols;
	const float *B;

	pool_split(W->rows, ith, nth, 16, &lo, &hi);
	for (r0 = lo; r0 < hi; r0 += nr) {
		nr = hi - r0 < j->chunk ? hi - r0 : j->chunk;
		if (W->type == QT_F32) {
			B = (const float *)((const char *)W->data +
			    (size_t)r0 * W->row_bytes);
		} else {
			for (r = 0; r < nr; r++)
				quant_dequantize_row(W->type,
				    (const char *)W->data + (size_t)(r0 + r) *
				    W->row_bytes, buf + (size_t)r * (size_t)cols,
				    (size_t)cols);
			B = buf;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->n,
		    (int)nr, (int)cols, 1.0f, j->X, (int)cols, B, (int)cols,
		    0.0f, j->Y + r0, (int)j->ldy);
	}
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void
blas_single_threaded(void)
{
	openblas_set_num_threads(1);
}

static int
matmul_gemm(struct pool *pool, const struct wmat *W, const float *X,
    size_t n, float *Y, size_t ldy, struct matmul_scratch *s, char *cause)
{
	struct gemm_job j = { .W = W, .X = X, .n = n, .Y = Y, .ldy = ldy };
	size_t nth = (size_t)pool_threads(pool);

	pthread_once(&blas_once, blas_single_threaded);
	j.chunk = MM_CHUNK_FLOATS / W->cols;
	j.chunk = j.chunk < 16 ? 16 : j.chunk;
	if (W->type != QT_F32 && scratch_reserve(s, nth * (size_t)j.chunk *
	    (size_t)W->cols * sizeof(float), cause) != 0)
		return -1;
	j.bufs = s->buf;
	pool_run(pool, gemm_slice, &j);
	return 0;
}

int
matmul_many(struct pool *pool, int nw, const struct wmat *const *W,
    const float *X, size_t n, float *const *Y, const size_t *ldy,
    struct matmul_scratch *s, char *cause)
{
	int m;

	if (n < MM_GEMM_MIN_ROWS && same_input(nw, W))
		return matmul_rows(pool, nw, W, X, n, Y, ldy, s, cause);
	for (m = 0; m < nw; m++) {
		if (matmul(pool, W[m], X, n, Y[m], ldy[m], s, cause) != 0)
			return -1;
	}
	return 0;
}

int
matmul(struct pool *pool, const struct wmat *W, const float *X, size_t n,
    float *Y, size_t ldy, struct matmul_scratch *s, char *cause)
{
	if (n < MM_GEMM_MIN_ROWS)
		return matmul_rows(pool, 1, &W, X, n, &Y, &ldy, s, cause);
	return matmul_gemm(pool, W, X, n, Y, ldy, s, cause);
}
