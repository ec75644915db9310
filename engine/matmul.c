/*
 * matmul: the only caller of cblas.  Decode (n small) uses kern_matvec
 * split by rows across the pool; prefill splits rows the same way and
 * runs kern_gemm on quantized weights (8-bit activations, as decode),
 * single-threaded sgemm on each thread's rows of float weights.
 * Matrices with a panel (wmat.pk, kernels_panel.c) run kern_panel_gemm
 * instead, for decode, batched decode and prefill alike, on activations
 * prepared by kern_panel_prepare.
 */
#include "matmul.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"
#include "quant_k.h"

/* Below this many rows of X, per-row matvec beats the GEMM paths. */
#define MM_GEMM_MIN_ROWS 4
/* Matrices smaller than this are not worth waking other threads for. */
#define MM_PARALLEL_MIN_BYTES (128 * 1024)
/* Weights dequantized per sgemm call (8 MiB of f32): measured best of
 * 1, 2 and 8 MiB on TinyLlama shapes. */
#define MM_CHUNK_FLOATS (2048 * 1024)

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
 * (27% of decode samples in pool_run/pool_main).  Chunks are long because
 * each new stream costs the hardware prefetcher a ramp-up: TinyLlama
 * Q4_0 decode ran 46 tok/s with 64-row chunks, 59 with 1024, 46 with 2048
 * (too few chunks to balance).  Small matrices still get one per thread.
 * With four or more activations a chunk is mostly arithmetic, so the
 * ramp-up matters less than the balance: 2048-row matrices were two
 * chunks, and the slower thread's lag was the faster one's wait (8
 * sessions, Q4_0: 256-row chunks 3-5% faster in 5 of 6 interleaved runs).
 */
#define MV_CHUNK_ROWS 1024
#define MV_CHUNK_ROWS_MULTI 256

/*
 * Several matrices with the same input (Q, K, V; gate, up) share one
 * prepared activation and one fork-join.  Each matrix's rows sit at an
 * offset of the shared counter rounded up to a whole chunk, so no chunk
 * spans two matrices.
 */
#define MV_MAX 4

/*
 * Several activations (the decode rows of a batch) against the same
 * matrices: each thread runs a tile of MV_TILE_BYTES of weight rows
 * against every activation before moving on, so the tile is read from
 * memory once and from cache for the other activations.  Every row's
 * dot is the same kernel call on the same bytes however rows are
 * grouped, so results do not depend on the batch.
 */
#define MV_TILE_BYTES (32 * 1024)

struct matvec_job {
	int nw;
	const struct wmat *W[MV_MAX];
	float *const *y;	/* y[m * k + j]: matrix m, activation j */
	long off[MV_MAX + 1];	/* chunk-aligned start of each matrix */
	size_t k;		/* activations */
	const void *const *xq;	/* [k] prepared */
	const void *xs;		/* or all k by kern_panel_prepare, panels */
	/*
	 * Or, when X is set, each thread prepares all k of X into its own
	 * xs (xs_own + ith * own_bytes) before its chunks: cheaper than a
	 * fork-join of its own for the preparation (see matmul_multi).
	 */
	const float *const *X;
	char *xs_own;
	size_t own_bytes;
	long chunk;		/* rows per chunk, a multiple of 16 */
	atomic_long next;
};

/* Rows [lo, hi) of matrix m for every activation, tile by tile. */
static void
matvec_tiles(const struct matvec_job *j, int m, long lo, long hi)
{
	const struct wmat *W = j->W[m];
	float *yt[MATMUL_MULTI_MAX];
	long tile, t1;
	size_t a;

	tile = (long)(MV_TILE_BYTES / W->row_bytes);
	if (tile < 1)
		tile = 1;
	for (; lo < hi; lo = t1) {
		t1 = lo + tile < hi ? lo + tile : hi;
		for (a = 0; a < j->k; a++)
			yt[a] = j->y[(size_t)m * j->k + a] + lo;
		kern_matvec_multi(W->type, W->data, W->row_bytes,
		    (size_t)W->cols, j->xq, j->k, yt, (size_t)lo, (size_t)t1);
	}
}

static void
matvec_slice(void *arg, int ith, int nth)
{
	struct matvec_job *j = arg;
	const struct wmat *W;
	const void *xs = j->xs;
	size_t cols, i;
	long lo, hi;
	int m = 0;

	(void)nth;
	if (j->X != NULL) {
		cols = (size_t)j->W[0]->cols;
		xs = j->xs_own + (size_t)ith * j->own_bytes;
		for (i = 0; i < j->k; i++)
			kern_panel_prepare(j->W[0]->type, j->X[i], cols, cols,
			    j->k, i, i + 1, (char *)xs);
	}
	while ((lo = atomic_fetch_add_explicit(&j->next, j->chunk,
	    memory_order_relaxed)) < j->off[j->nw]) {
		while (lo >= j->off[m + 1])
			m++;
		W = j->W[m];
		lo -= j->off[m];
		hi = lo + j->chunk < W->rows ? lo + j->chunk : W->rows;
		if (lo >= hi)
			continue;
		if (xs != NULL)
			kern_panel_gemm(W->type, W->pk, (size_t)W->cols, xs,
			    j->k, j->y + (size_t)m * j->k, (size_t)lo,
			    (size_t)hi);
		else if (j->k == 1)
			kern_matvec(W->type, W->data, W->row_bytes,
			    (size_t)W->cols, j->xq[0], j->y[m] + lo,
			    (size_t)lo, (size_t)hi);
		else
			matvec_tiles(j, m, lo, hi);
	}
}

/* The types kern_gemm computes (integer GEMM for prefill). */
static int
is_quantized(uint32_t type)
{
	return type == QT_Q8_0 || type == QT_Q4_0 || type == QT_Q4_1 ||
	    type == QT_Q5_0 || type == QT_Q5_1 || type == QT_IQ4_NL ||
	    type == QT_IQ4_XS || qk_is_k(type);
}

/* 1 when the matrices can share a prepared activation. */
static int
same_input(int nw, const struct wmat *const *W)
{
	int i;

	for (i = 1; i < nw; i++) {
		if (W[i]->type != W[0]->type || W[i]->cols != W[0]->cols ||
		    (W[i]->pk == NULL) != (W[0]->pk == NULL))
			return 0;
	}
	return nw <= MV_MAX;
}

/* 1 when W runs on its panel (kernels_panel.c) rather than its rows. */
static int
on_panel(const struct wmat *W)
{
	return W->pk != NULL && kern_panel_usable();
}

/* Bytes of one prepared activation, rounded to keep the next aligned. */
static size_t
xq_stride(const struct wmat *W)
{
	return (kern_xq_bytes(W->type, (size_t)W->cols) + 63) / 64 * 64;
}

/*
 * k activations (k <= MATMUL_MULTI_MAX) through nw matrices of one
 * input, into y[m * k + j]: xq holds the k prepared for the rows'
 * kernels, or xs for the panels; or, with X, each thread prepares X
 * into its own xs (own_bytes each from xs_own) and xq, xs are unused.
 */
static void
matvec_run_own(struct pool *pool, int nw, const struct wmat *const *W,
    size_t k, const void *const *xq, const void *xs, const float *const *X,
    char *xs_own, size_t own_bytes, float *const *y)
{
	struct matvec_job j = { .nw = nw, .chunk = k >= 4 ?
	    MV_CHUNK_ROWS_MULTI : MV_CHUNK_ROWS, .k = k, .xq = xq, .xs = xs,
	    .X = X, .xs_own = xs_own, .own_bytes = own_bytes, .y = y };
	size_t bytes = 0;
	long rows = 0;
	int m;

	for (m = 0; m < nw; m++)
		rows += W[m]->rows;
	if (j.chunk > rows / pool_threads(pool))
		j.chunk = rows / pool_threads(pool) / 16 * 16;
	if (j.chunk < 16)
		j.chunk = 16;
	for (m = 0; m < nw; m++) {
		j.W[m] = W[m];
		j.off[m + 1] = j.off[m] + (W[m]->rows + j.chunk - 1) /
		    j.chunk * j.chunk;
		bytes += (size_t)W[m]->rows * W[m]->row_bytes;
	}
	atomic_init(&j.next, 0);
	if (bytes < MM_PARALLEL_MIN_BYTES)
		matvec_slice(&j, 0, 1);
	else
		pool_run(pool, matvec_slice, &j);
}

/* matvec_run_own with activations already prepared. */
static void
matvec_run(struct pool *pool, int nw, const struct wmat *const *W,
    size_t k, const void *const *xq, const void *xs, float *const *y)
{
	matvec_run_own(pool, nw, W, k, xq, xs, NULL, NULL, 0, y);
}

/*
 * A few rows through panels: prepared together in the GEMM's layout and
 * run as one batch (results do not depend on the grouping).
 */
static int
panel_rows(struct pool *pool, int nw, const struct wmat *const *W,
    const float *X, size_t n, float *const *Y, const size_t *ldy,
    struct matmul_scratch *s, char *cause)
{
	size_t cols = (size_t)W[0]->cols, i;
	float *y[MV_MAX * MM_GEMM_MIN_ROWS];
	int m;

	if (scratch_reserve(s, kern_panel_xs_bytes(W[0]->type, cols, n),
	    cause) != 0)
		return -1;
	kern_panel_prepare(W[0]->type, X, cols, cols, n, 0, n, s->buf);
	for (m = 0; m < nw; m++) {
		for (i = 0; i < n; i++)
			y[(size_t)m * n + i] = Y[m] + i * ldy[m];
	}
	matvec_run(pool, nw, W, n, NULL, s->buf, y);
	return 0;
}

static int
matmul_rows(struct pool *pool, int nw, const struct wmat *const *W,
    const float *X, size_t n, float *const *Y, const size_t *ldy,
    struct matmul_scratch *s, char *cause)
{
	size_t cols = (size_t)W[0]->cols, i;
	const void *xq[1];
	float *y[MV_MAX];
	int m;

	if (on_panel(W[0]))
		return panel_rows(pool, nw, W, X, n, Y, ldy, s, cause);
	if (scratch_reserve(s, kern_xq_bytes(W[0]->type, cols), cause) != 0)
		return -1;
	xq[0] = s->buf;
	for (i = 0; i < n; i++) {
		kern_prepare_x(W[0]->type, X + i * cols, cols, s->buf);
		for (m = 0; m < nw; m++)
			y[m] = Y[m] + i * ldy[m];
		matvec_run(pool, nw, W, 1, xq, NULL, y);
	}
	return 0;
}

int
matmul_multi(struct pool *pool, int nw, const struct wmat *const *W,
    size_t k, const float *const *X, float *const *Y,
    struct matmul_scratch *s, char *cause)
{
	size_t st = xq_stride(W[0]), cols = (size_t)W[0]->cols, j0, j, k1;
	size_t own;
	const void *xq[MATMUL_MULTI_MAX];
	float *y[MV_MAX * MATMUL_MULTI_MAX];
	int panel = on_panel(W[0]), m;

	if (!same_input(nw, W)) {
		for (m = 0; m < nw; m++) {
			if (matmul_multi(pool, 1, &W[m], k, X, Y + (size_t)m *
			    k, s, cause) != 0)
				return -1;
		}
		return 0;
	}
	/*
	 * Panels: every thread quantizes all k activations into a copy of
	 * its own as its job starts.  Shared, they took a fork-join of their
	 * own before each matrix, whose waits were 3% of an 8-session step;
	 * quantizing 16 rows twice costs a few microseconds.
	 */
	k1 = k < MATMUL_MULTI_MAX ? k : MATMUL_MULTI_MAX;
	own = panel ? kern_panel_xs_bytes(W[0]->type, cols, k1) : k1 * st;
	if (scratch_reserve(s, panel ? (size_t)pool_threads(pool) * own : own,
	    cause) != 0)
		return -1;
	/* More activations than a job takes: groups of MATMUL_MULTI_MAX. */
	for (j0 = 0; j0 < k; j0 += k1) {
		k1 = k - j0 < MATMUL_MULTI_MAX ? k - j0 : MATMUL_MULTI_MAX;
		for (j = 0; j < k1; j++) {
			xq[j] = (char *)s->buf + j * st;
			if (!panel)
				kern_prepare_x(W[0]->type, X[j0 + j], cols,
				    (char *)s->buf + j * st);
			for (m = 0; m < nw; m++)
				y[(size_t)m * k1 + j] = Y[(size_t)m * k + j0 +
				    j];
		}
		if (panel)
			matvec_run_own(pool, nw, W, k1, NULL, NULL, X + j0,
			    s->buf, own, y);
		else
			matvec_run(pool, nw, W, k1, xq, NULL, y);
	}
	return 0;
}

/*
 * Prefill: pool threads take chunks of W's rows from a shared counter,
 * dequantize each into their own buffer and run a single-threaded sgemm
 * on it.  OpenBLAS's own threads stay off: on
 * two cores they fought our workers for the CPU and spun in sched_yield.
 */
struct gemm_job {
	const struct wmat *W;
	const float *X;
	size_t n, ldy;
	float *Y;
	float *bufs; /* per thread: chunk * cols floats */
	long chunk;
	atomic_long next; /* first row of the next chunk to take */
};

static void
gemm_slice(void *arg, int ith, int nth)
{
	struct gemm_job *j = arg;
	const struct wmat *W = j->W;
	long cols = W->cols, r0, nr, r;
	float *buf = j->bufs + (size_t)ith * (size_t)j->chunk * (size_t)cols;
	const float *B;

	(void)nth;
	while ((r0 = atomic_fetch_add_explicit(&j->next, j->chunk,
	    memory_order_relaxed)) < W->rows) {
		nr = W->rows - r0 < j->chunk ? W->rows - r0 : j->chunk;
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

/*
 * Prefill with quantized weights: the n activations are quantized once
 * for all the matrices of one input (split by tokens across the pool),
 * then threads take chunks of rows from a shared counter as matvec_slice
 * does and run the integer GEMM kernel over all n tokens.
 */
#define QG_CHUNK_ROWS 64

struct qgemm_job {
	struct matvec_job mv; /* W, off and next as for matvec */
	float *const *Y;
	const size_t *ldy;
	const float *X;
	size_t n;
	void *xs;
	float **yp;	/* with panels: yp[m * n + t] = Y[m] + t * ldy[m] */
};

static void
qgemm_prepare(void *arg, int ith, int nth)
{
	struct qgemm_job *j = arg;
	uint32_t t = j->mv.W[0]->type;
	size_t cols = (size_t)j->mv.W[0]->cols;
	size_t lo = j->n * (size_t)ith / (size_t)nth;
	size_t hi = j->n * (size_t)(ith + 1) / (size_t)nth;

	if (j->yp != NULL)
		kern_panel_prepare(t, j->X + lo * cols, cols, cols, j->n, lo,
		    hi, j->xs);
	else
		kern_prepare_xs(t, j->X + lo * cols, cols, cols, hi - lo,
		    (char *)j->xs + lo * kern_xs_stride(t, cols));
}

static void
qgemm_slice(void *arg, int ith, int nth)
{
	struct qgemm_job *j = arg;
	const struct wmat *W;
	long lo, hi;
	int m = 0;

	(void)ith;
	(void)nth;
	while ((lo = atomic_fetch_add_explicit(&j->mv.next, QG_CHUNK_ROWS,
	    memory_order_relaxed)) < j->mv.off[j->mv.nw]) {
		while (lo >= j->mv.off[m + 1])
			m++;
		W = j->mv.W[m];
		lo -= j->mv.off[m];
		hi = lo + QG_CHUNK_ROWS < W->rows ? lo + QG_CHUNK_ROWS :
		    W->rows;
		if (lo < hi && j->yp != NULL)
			kern_panel_gemm(W->type, W->pk, (size_t)W->cols, j->xs,
			    j->n, j->yp + (size_t)m * j->n, (size_t)lo,
			    (size_t)hi);
		else if (lo < hi)
			kern_gemm(W->type, W->data, W->row_bytes,
			    (size_t)W->cols, j->xs, j->n, j->Y[m], j->ldy[m],
			    (size_t)lo, (size_t)hi);
	}
}

/* Scratch of matmul_qgemm: the prepared tokens (as kern_prepare_xs's,
 * which kern_panel_prepare's never outgrow), then the panels' row
 * pointers (one per matrix of matmul_many and token). */
static size_t
qgemm_bytes(const struct wmat *W, size_t n)
{
	return n * kern_xs_stride(W->type, (size_t)W->cols) +
	    (W->pk != NULL ? MV_MAX * n * sizeof(float *) : 0);
}

static int
matmul_qgemm(struct pool *pool, int nw, const struct wmat *const *W,
    const float *X, size_t n, float *const *Y, const size_t *ldy,
    struct matmul_scratch *s, char *cause)
{
	struct qgemm_job j = { .mv = { .nw = nw }, .Y = Y, .ldy = ldy,
	    .X = X, .n = n };
	size_t xsb = n * kern_xs_stride(W[0]->type, (size_t)W[0]->cols), t;
	int m;

	if (scratch_reserve(s, qgemm_bytes(W[0], n), cause) != 0)
		return -1;
	j.xs = s->buf;
	if (on_panel(W[0])) {
		j.yp = (float **)(void *)((char *)s->buf + xsb);
		for (m = 0; m < nw; m++) {
			for (t = 0; t < n; t++)
				j.yp[(size_t)m * n + t] = Y[m] + t * ldy[m];
		}
	}
	for (m = 0; m < nw; m++) {
		j.mv.W[m] = W[m];
		j.mv.off[m + 1] = j.mv.off[m] + (W[m]->rows + QG_CHUNK_ROWS -
		    1) / QG_CHUNK_ROWS * QG_CHUNK_ROWS;
	}
	atomic_init(&j.mv.next, 0);
	pool_run(pool, qgemm_prepare, &j);
	pool_run(pool, qgemm_slice, &j);
	return 0;
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void
blas_single_threaded(void)
{
	openblas_set_num_threads(1);
}

/* Rows per sgemm job: small enough that each thread gets several. */
static long
gemm_chunk(const struct wmat *W, size_t nth)
{
	long chunk = MM_CHUNK_FLOATS / W->cols;

	if (chunk > W->rows / ((long)nth * 4))
		chunk = W->rows / ((long)nth * 4);
	return chunk < 16 ? 16 : chunk / 16 * 16;
}

static int
matmul_gemm(struct pool *pool, const struct wmat *W, const float *X,
    size_t n, float *Y, size_t ldy, struct matmul_scratch *s, char *cause)
{
	struct gemm_job j = { .W = W, .X = X, .n = n, .Y = Y, .ldy = ldy };
	size_t nth = (size_t)pool_threads(pool);

	pthread_once(&blas_once, blas_single_threaded);
	j.chunk = gemm_chunk(W, nth);
	atomic_init(&j.next, 0);
	if (W->type != QT_F32 && scratch_reserve(s, nth * (size_t)j.chunk *
	    (size_t)W->cols * sizeof(float), cause) != 0)
		return -1;
	j.bufs = s->buf;
	pool_run(pool, gemm_slice, &j);
	return 0;
}

int
matmul_reserve(struct matmul_scratch *s, const struct wmat *W, size_t n,
    int nth, char *cause)
{
	size_t st = xq_stride(W), g = 0, need;

	if (W->pk != NULL && kern_xs_stride(W->type, (size_t)W->cols) > st)
		st = kern_xs_stride(W->type, (size_t)W->cols);
	need = (n < MATMUL_MULTI_MAX ? n : MATMUL_MULTI_MAX) * st;
	if (W->pk != NULL) /* matmul_multi: a copy per thread */
		need *= (size_t)(nth > 0 ? nth : 1);
	if (n >= MM_GEMM_MIN_ROWS && is_quantized(W->type))
		g = qgemm_bytes(W, n);
	else if (n >= MM_GEMM_MIN_ROWS && W->type != QT_F32)
		g = (size_t)nth * (size_t)gemm_chunk(W, (size_t)nth) *
		    (size_t)W->cols * sizeof(float);
	return scratch_reserve(s, need > g ? need : g, cause);
}

int
matmul_many(struct pool *pool, int nw, const struct wmat *const *W,
    const float *X, size_t n, float *const *Y, const size_t *ldy,
    struct matmul_scratch *s, char *cause)
{
	int m;

	if (n < MM_GEMM_MIN_ROWS && same_input(nw, W))
		return matmul_rows(pool, nw, W, X, n, Y, ldy, s, cause);
	if (is_quantized(W[0]->type) && same_input(nw, W))
		return matmul_qgemm(pool, nw, W, X, n, Y, ldy, s, cause);
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
	if (is_quantized(W->type))
		return matmul_qgemm(pool, 1, &W, X, n, &Y, &ldy, s, cause);
	return matmul_gemm(pool, W, X, n, Y, ldy, s, cause);
}

/*
 * Softmax over row[0, ns) and row[lo, hi), ns <= lo; every other entry
 * zeroed.  The gap is masked with -inf so one vectorized pass covers
 * [0, hi).
 */
static void
band_softmax(float *row, size_t L, size_t s0, size_t ns, size_t lo,
    size_t hi)
{
	size_t j;

	if (hi <= ns) /* a sink token: no window yet */
		lo = hi = ns;
	for (j = 0; j < s0; j++)
		row[j] = -INFINITY;
	for (j = ns; j < lo; j++)
		row[j] = -INFINITY;
	kern_softmax(row, hi);
	if (s0 > 0)
		memset(row, 0, s0 * sizeof(float));
	if (lo > ns)
		memset(row + ns, 0, (lo - ns) * sizeof(float));
	if (L > hi)
		memset(row + hi, 0, (L - hi) * sizeof(float));
}

void
matmul_attn_band(const struct matmul_band *b)
{
	size_t t;

	pthread_once(&blas_once, blas_single_threaded);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b->n,
	    (int)b->L, (int)b->hd, b->scale, b->Q, (int)b->ldq, b->K,
	    (int)b->ldk, 0.0f, b->S, (int)b->L);
	if (b->Qs != NULL && b->n_sink > 0)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b->n,
		    (int)b->n_sink, (int)b->hd, b->scale, b->Qs, (int)b->ldq,
		    b->K, (int)b->ldk, 0.0f, b->S, (int)b->L);
	for (t = 0; t < b->n; t++) {
		if (b->softcap > 0.0f)
			kern_softcap(b->S + t * b->L, (size_t)(b->hi[t] >
			    b->ns[t] ? b->hi[t] : b->ns[t]), b->softcap);
		band_softmax(b->S + t * b->L, b->L, b->s0 != NULL ?
		    (size_t)b->s0[t] : 0, (size_t)b->ns[t], (size_t)b->lo[t],
		    (size_t)b->hi[t]);
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)b->n,
	    (int)b->hd, (int)b->L, 1.0f, b->S, (int)b->L, b->V, (int)b->ldk,
	    0.0f, b->out, (int)b->ldo);
}
