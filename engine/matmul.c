/*
 * matmul: the only caller of cblas.  Decode (n small) uses kern_matvec
 * split by rows across the pool; prefill dequantizes MM_CHUNK_FLOATS of
 * weights at a time (in parallel) and hands them to sgemm.
 */
#include "matmul.h"

#include <cblas.h>
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

void
matmul_set_blas_threads(int n)
{
	openblas_set_num_threads(n);
}

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

struct matvec_job {
	const struct wmat *W;
	const void *xq;
	float *y;
};

static void
matvec_slice(void *arg, int ith, int nth)
{
	struct matvec_job *j = arg;
	long lo, hi;

	/* Slices of 16 rows keep each thread's writes off shared lines. */
	pool_split(j->W->rows, ith, nth, 16, &lo, &hi);
	if (lo < hi)
		kern_matvec(j->W->type, j->W->data, j->W->row_bytes,
		    (size_t)j->W->cols, j->xq, j->y + lo, (size_t)lo,
		    (size_t)hi);
}

static int
matmul_rows(struct pool *pool, const struct wmat *W, const float *X,
    size_t n, float *Y, size_t ldy, struct matmul_scratch *s, char *cause)
{
	struct matvec_job j = { .W = W };
	size_t xb = kern_xq_bytes(W->type, (size_t)W->cols), i;

	if (scratch_reserve(s, xb, cause) != 0)
		return -1;
	for (i = 0; i < n; i++) {
		kern_prepare_x(W->type, X + i * (size_t)W->cols,
		    (size_t)W->cols, s->buf);
		j.xq = s->buf;
		j.y = Y + i * ldy;
		if ((size_t)W->rows * W->row_bytes < MM_PARALLEL_MIN_BYTES)
			matvec_slice(&j, 0, 1);
		else
			pool_run(pool, matvec_slice, &j);
	}
	return 0;
}

struct dequant_job {
	const struct wmat *W;
	long r0, nr;
	float *dst;
};

static void
dequant_slice(void *arg, int ith, int nth)
{
	struct dequant_job *j = arg;
	const char *src = j->W->data;
	long lo, hi, r;

	pool_split(j->nr, ith, nth, 1, &lo, &hi);
	for (r = lo; r < hi; r++)
		quant_dequantize_row(j->W->type,
		    src + (size_t)(j->r0 + r) * j->W->row_bytes,
		    j->dst + (size_t)r * (size_t)j->W->cols, (size_t)j->W->cols);
}

static int
matmul_gemm(struct pool *pool, const struct wmat *W, const float *X,
    size_t n, float *Y, size_t ldy, struct matmul_scratch *s, char *cause)
{
	long cols = W->cols, chunk, r0;
	struct dequant_job j = { .W = W };

	if (W->type == QT_F32) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n,
		    (int)W->rows, (int)cols, 1.0f, X, (int)cols, W->data,
		    (int)cols, 0.0f, Y, (int)ldy);
		return 0;
	}
	chunk = MM_CHUNK_FLOATS / cols;
	chunk = chunk < 16 ? 16 : chunk;
	chunk = chunk > W->rows ? W->rows : chunk;
	if (scratch_reserve(s, (size_t)chunk * (size_t)cols * sizeof(float),
	    cause) != 0)
		return -1;
	j.dst = s->buf;
	for (r0 = 0; r0 < W->rows; r0 += chunk) {
		j.r0 = r0;
		j.nr = W->rows - r0 < chunk ? W->rows - r0 : chunk;
		pool_run(pool, dequant_slice, &j);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n,
		    (int)j.nr, (int)cols, 1.0f, X, (int)cols, j.dst, (int)cols,
		    0.0f, Y + r0, (int)ldy);
	}
	return 0;
}

int
matmul(struct pool *pool, const struct wmat *W, const float *X, size_t n,
    float *Y, size_t ldy, struct matmul_scratch *s, char *cause)
{
	if (n < MM_GEMM_MIN_ROWS)
		return matmul_rows(pool, W, X, n, Y, ldy, s, cause);
	return matmul_gemm(pool, W, X, n, Y, ldy, s, cause);
}
