/*
 * kernels: the hot loops.  Matrix-vector products of weight rows (any
 * supported type) with an activation vector, and for quantized weights
 * products with many activations at once (prefill), in a portable C
 * version and SIMD versions (AVX2, AVX-512 with VNNI) chosen at run time.
 * kernels*_x86.c and matmul.c are the only places with SIMD intrinsics.
 *
 * Quantized weights are dotted against an activation quantized to 8 bits
 * per block of 32 (integer dot products); float weights against f32.
 * Every ISA gives the same results as the portable one within float
 * rounding (integer parts are exact).
 */
#ifndef SINKD_KERNELS_H
#define SINKD_KERNELS_H

#include <stddef.h>
#include <stdint.h>

enum kern_isa {
	KERN_ISA_PORTABLE = 0,
	KERN_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
	KERN_ISA_AVX512 = 2, /* AVX-512 F/BW/VL + VNNI */
};

/* Best ISA this CPU supports (detected once). */
enum kern_isa kern_best_isa(void);
/* Selects the ISA used from now on (process-wide); -1 if the CPU lacks it. */
int kern_use_isa(enum kern_isa);
enum kern_isa kern_current_isa(void);
const char *kern_isa_name(enum kern_isa);

/* Bytes of the prepared activation for a row length n against wtype. */
size_t kern_xq_bytes(uint32_t wtype, size_t n);
/*
 * Prepares x (n floats, n a multiple of 32 for quantized types, of 256
 * for the K-quants, whose kernels are kernels_k*.c) into xq.
 */
void kern_prepare_x(uint32_t wtype, const float *x, size_t n, void *xq);
/*
 * y[r - r0] = dot(row r of w, x) for r in [r0, r1); rows are row_bytes
 * apart and n elements long; xq comes from kern_prepare_x(wtype, ...).
 */
void kern_matvec(uint32_t wtype, const void *w, size_t row_bytes, size_t n,
    const void *xq, float *y, size_t r0, size_t r1);
/*
 * The same rows against k activations: y[j][r - r0] is exactly (bit for
 * bit) what kern_matvec gives for xq[j].  Meant for a tile of rows small
 * enough to stay in cache while every activation is dotted.
 */
void kern_matvec_multi(uint32_t wtype, const void *w, size_t row_bytes,
    size_t n, const void *const *xq, size_t k, float *const *y, size_t r0,
    size_t r1);

/*
 * Many tokens at once (prefill), for quantized weights only.  The m
 * activations are prepared together, each quantized exactly as by
 * kern_prepare_x, into kern_xs_stride bytes apart (a 64-byte multiple:
 * give xs 64-byte alignment for speed).  x is m rows, ldx floats apart.
 */
size_t kern_xs_stride(uint32_t wtype, size_t n);
void kern_prepare_xs(uint32_t wtype, const float *x, size_t ldx, size_t n,
    size_t m, void *xs);
/*
 * y[t * ldy + r] = dot(row r of w, x_t) for t in [0, m), r in [r0, r1):
 * y is indexed by the absolute row, like matmul's Y[t][row].  Agrees with
 * kern_matvec on the same x within float rounding.
 */
void kern_gemm(uint32_t wtype, const void *w, size_t row_bytes, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t r0, size_t r1);

/*
 * Panels (kernels_panel.c): Q4_0, Q8_0, Q4_K, Q5_K and Q6_K rows repacked
 * once into the layout the AVX-512 kernel reads directly; the same bytes
 * as the rows.
 * kern_panel_bytes is 0 for types without a panel layout.
 * kern_panel_gemm runs only while kern_panel_usable() (AVX-512 is the
 * current ISA): y[t][r] = dot(row r, x_t) for t < m, r in [r0, r1),
 * r0 a multiple of 16, xs prepared by kern_panel_prepare for the same m;
 * bit-identical to kern_gemm on the rows themselves, whatever m and the
 * row range.
 *
 * kern_panel_prepare quantizes tokens [t0, t1) of m (x at token t0,
 * rows ldx floats apart) exactly as kern_prepare_xs does, into their
 * places among m in kern_panel_xs_bytes(wtype, n, m) bytes of xs: the
 * tokens of a batch may be prepared in parts, by different threads.
 */
int kern_panel_type(uint32_t wtype);
size_t kern_panel_bytes(uint32_t wtype, size_t rows, size_t n);
void kern_panel_pack(uint32_t wtype, const void *w, size_t row_bytes,
    size_t rows, size_t n, void *pk);
int kern_panel_usable(void);
size_t kern_panel_xs_bytes(uint32_t wtype, size_t n, size_t m);
void kern_panel_prepare(uint32_t wtype, const float *x, size_t ldx,
    size_t n, size_t m, size_t t0, size_t t1, void *xs);
void kern_panel_gemm(uint32_t wtype, const void *pk, size_t n,
    const void *xs, size_t m, float *const *y, size_t r0, size_t r1);

/* Plain f32 dot product (sinkd-bench's bandwidth probe streams with it). */
float kern_dot_f32(const float *a, const float *b, size_t n);

/*
 * Attention of n_q query heads that share one KV head (grouped-query
 * attention) over cached rows given as spans.  Each span is a run of len
 * key and value rows, kv_stride elements apart, of f32 or (kv_f16) IEEE
 * half floats, with its own queries: the StreamingLLM cache scores its
 * sinks and its window with queries rotated to different positions.
 * For each query i < n_q, over all rows j of all spans in order,
 *   out_i = softmax_j(scale * q_span(j),i . k_j) v_j
 * (the scaled scores soft-capped first when softcap > 0, as gemma2's)
 * with query i of a span at span.q + i * q_stride and out_i at
 * out + i * out_stride.  scores is scratch for n_q * (total rows) floats,
 * which on return hold the softmax weights, query by query.  No rows
 * give zero outputs.
 */
struct kern_attn_span {
	const void *k, *v;
	size_t len;
	const float *q;
};

#define KERN_ATTN_MAX_SPANS 4
#define KERN_ATTN_ROW_MAX 1024 /* largest head size (model.c checks) */

struct kern_attn_args {
	const struct kern_attn_span *span;
	size_t n_span;	 /* at most KERN_ATTN_MAX_SPANS */
	size_t n_q, q_stride, kv_stride, hd, out_stride;
	int kv_f16;
	float scale;
	float softcap;	 /* > 0: scores become c * tanh(s / c) */
	float *scores, *out;
	size_t len;	 /* total rows: set by kern_attn */
};

void kern_attn(const struct kern_attn_args *);
/* x[i] = c * tanh(x[i] / c) over n floats (attention soft-capping). */
void kern_softcap(float *x, size_t n, float c);

/*
 * x[0..n) = softmax(x[0..n)) in place, vectorized.  Entries of -inf
 * come out as at most 2e-38: callers that mask zero them afterwards.
 */
void kern_softmax(float *x, size_t n);

/*
 * The index of the greatest of x[0..n): the first of equals (0.0 and
 * -0.0 are equal), NaNs skipped, 0 when x[0] is NaN or n < 2 (exactly
 * what a scalar loop keeping the first strictly greater gives).
 */
size_t kern_argmax(const float *x, size_t n);

/*
 * g[i] = SiLU(g[i]) * u[i] = g[i] / (1 + e^-g[i]) * u[i] (the SwiGLU
 * gate); vectorized ISAs use their own exp, within a few ulp of expf.
 */
void kern_silu_mul(float *g, const float *u, size_t n);

#endif
