/*
 * kernels_int: what kernels.c shares with the SIMD files kernels*_x86.c
 * and with nothing else: the layout of a prepared activation and the
 * per-ISA entry points.
 *
 * A prepared activation for a quantized weight type (n elements, nb = n/32
 * blocks) is three arrays back to back, q 64-byte aligned inside the
 * buffer so that SIMD loads of it never straddle cache lines:
 *
 *	int8_t  q[];	x quantized per block: x[i] ~= d * q, |q| <= 127
 *	float   d[nb];	the block scales
 *	int32_t c[nb];	integer corrections, see below
 *
 * The SIMD kernels dot the weights as unsigned bytes (Q8_0 flipped by
 * +128, Q4_0 nibbles 0..15 without the -8); adding c gives back the exact
 * signed block dot.  With s the sum of a block's q:
 *
 * Q8_0: q, d and c in block order; c = -128 * s, added to the block sum.
 *
 * Q4_0: the order suits nibbles, whose low halves hold elements 0..15 of
 * a block and high halves 16..31.  q is stored by pairs of blocks (A, B) as
 * A[0..15] B[0..15] A[16..31] B[16..31], so one 32-byte load of x matches
 * the low (or high) nibbles of two blocks; a last unpaired block has a
 * zero partner.  c = -8 * s is the whole block's correction.  Within every
 * full group of eight blocks, d and c are in the order the kernels' sums
 * come out: 0 2 4 6 1 3 5 7 (kern_xq_slot).
 *
 * Q4_1, Q5_1, Q5_0, IQ4_NL, IQ4_XS (kern_ql_type): q, d and c in block
 * order, as Q8_0.  Q4_1 and Q5_1 carry c = s, the block sum, for their
 * m * dx * s term; Q5_0 carries c = -16 * s (its values are dotted as
 * 0..31, without the -16) and IQ4_NL / IQ4_XS c = -128 * s (codebook
 * values dotted as K + 128).
 *
 * c always completes a whole block's integer sum: never split it over
 * partial sums that are scaled apart (their offsets cancel only in exact
 * arithmetic).
 *
 * For float weight types the prepared activation is x itself as f32.
 *
 * The prepared activations of kern_gemm keep every block in natural
 * order, one token every kern_xs_stride bytes, with the same c:
 *
 *	int8_t  q[n];	as above
 *	float   d[nb];
 *	int32_t c[nb];	-128 * s for Q8_0, -8 * s for Q4_0, s for Q4_1 and
 *			Q5_1, -16 * s for Q5_0, -128 * s for IQ4_NL / IQ4_XS
 *
 * c is the whole block's correction for weights dotted as w + 128 (Q8_0,
 * the IQ4 codebook) or as the bare nibbles (Q4_0, Q5_0 with its fifth
 * bit), or the sum itself for the m term of Q4_1 and Q5_1.
 */
#ifndef SINKD_KERNELS_INT_H
#define SINKD_KERNELS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "quant.h"

struct kern_xq {
	const int8_t *q;
	const float *d;
	const int32_t *c;
};

/* Views a prepared quantized activation of n elements. */
struct kern_xq kern_xq_view(const void *xq, uint32_t wtype, size_t n);

/* Views the prepared activation of token t of xs. */
struct kern_xq kern_xs_view(const void *xs, uint32_t wtype, size_t n,
    size_t t);

/* Where block b's d and c are. */
static inline size_t
kern_xq_slot(uint32_t wtype, size_t nb, size_t b)
{
	size_t j = b % 8;

	if (wtype != QT_Q4_0 || b >= nb / 8 * 8)
		return b;
	return b - j + (j % 2) * 4 + j / 2;
}

/* Where element i of x is in q. */
static inline size_t
kern_xq_qpos(uint32_t wtype, size_t i)
{
	size_t b = i / QK, j = i % QK;

	if (wtype != QT_Q4_0)
		return i;
	return b / 2 * 2 * QK + j / 16 * 32 + b % 2 * 16 + j % 16;
}


/*
 * The 32-element block types of kernels_ql.c: Q4_1, Q5_0, Q5_1, IQ4_NL,
 * IQ4_XS.  kern_ql_unpack gives block b (of 32 elements) of a row as
 * x = d * w + m, with w the stored integers (Q4_1 0..15, Q5_1 0..31,
 * Q5_0 -16..15, IQ4 codebook values) and m 0 where the type has none.
 * kern_ql_row is the portable dot of a row against a prepared activation
 * in natural block order (both kern_prepare_x's and kern_prepare_xs's).
 */
int kern_ql_type(uint32_t wtype);
void kern_ql_unpack(uint32_t wtype, const uint8_t *row, size_t b,
    int8_t w[QK], float *d, float *m);
float kern_ql_row(uint32_t wtype, const uint8_t *row, size_t n,
    struct kern_xq v);

/*
 * The panel kernel (kernels_panel_x86.c) takes the tokens in tiles of
 * PANEL_T, and the last few in tiles of 4, 2 and 1: kern_panel_tile(m)
 * is the size of the next tile when m tokens are left.
 *
 * The Q4_0 and Q8_0 panels read their activations by tile
 * (kern_panel_prepare): a tile of nt tokens is nb pieces of
 * PANEL_XB * nt bytes, piece b holding block b of every token of the
 * tile as kern_prepare_xs makes it,
 *
 *	int8_t  q[nt][32];	token i's codes
 *	float   d[nt];
 *	int32_t c[nt];
 *
 * and tile after tile in token order (the tile of tokens t.. starts at
 * byte t * nb * PANEL_XB).  The K-quant panels read kern_prepare_xs's
 * layout itself.
 */
#define PANEL_T 8
#define PANEL_XB 40

static inline size_t
kern_panel_tile(size_t m)
{
	return m >= PANEL_T ? PANEL_T : m >= 4 ? 4 : m >= 2 ? 2 : 1;
}

/* The K-quant panels' layouts per superblock (kernels_panel.c). */
#define PANEL_K_SC 2048
#define PANEL_K_D 2240
#define PANEL_K_M 2272
#define PANEL_K_BYTES 2304
#define PANEL_K5_QH 2304
#define PANEL_K5_BYTES 2816
#define PANEL_K6_QH 2048
#define PANEL_K6_SC 3072
#define PANEL_K6_BYTES 3328

/*
 * Turns each query's len scores (already scaled) into softmax weights
 * that sum to 1, in place.
 */
void kern_softmax_rows(float *scores, size_t n_q, size_t len);

/*
 * One ISA's kernels.  matvec computes nrows rows starting at w (row r at
 * w + r * row_bytes) into y[0..nrows); gemm the same rows for m tokens
 * into y[t * ldy + r].
 */
struct kern_impl {
	void (*matvec)(uint32_t wtype, const uint8_t *w, size_t row_bytes,
	    size_t n, const void *xq, float *y, size_t nrows);
	void (*gemm)(uint32_t wtype, const uint8_t *w, size_t row_bytes,
	    size_t n, const void *xs, size_t m, float *y, size_t ldy,
	    size_t nrows);
	float (*dot_f32)(const float *, const float *, size_t);
	void (*attn)(const struct kern_attn_args *);
	void (*softmax)(float *scores, size_t n_q, size_t len);
	/*
	 * Optional (NULL: kern_matvec_multi calls matvec per activation):
	 * the same rows against k activations, y[j][r], each weight block
	 * unpacked once for all of them.  0 when it does not take wtype.
	 * Each y[j][r] must be bit-identical to matvec's for xq[j].
	 */
	int (*matvec_multi)(uint32_t wtype, const uint8_t *w,
	    size_t row_bytes, size_t n, const void *const *xq, size_t k,
	    float *const *y, size_t nrows);
	/*
	 * Optional (NULL: kern_quant_row_portable): nb blocks of 32 floats
	 * to int8, kern_quant_row_portable's bytes exactly.
	 */
	void (*quant_row)(const float *x, size_t nb, int8_t *q, float *d,
	    int32_t *c, int32_t off);
	/* Optional (NULL: kern_argmax_portable): kern_argmax's index. */
	size_t (*argmax)(const float *x, size_t n);
	/* Optional (NULL: kern_silu_mul_portable, libm's expf). */
	void (*silu_mul)(float *g, const float *u, size_t n);
	/* Optional (NULL: kk_quant_portable): its bytes exactly. */
	void (*quant_k)(const float *x, size_t n, int8_t *q, float *d,
	    int16_t *s);
};

/* kk_quant_portable's bytes by the current ISA's quantizer. */
void kern_quant_k(const float *x, size_t n, int8_t *q, float *d,
    int16_t *s);

size_t kern_argmax_portable(const float *x, size_t n);
void kern_silu_mul_portable(float *g, const float *u, size_t n);
/*
 * Activation blocks for the integer kernels: block b of x to q[32b..],
 * each x / d rounded to nearest (even on ties) and clamped to +-127, a
 * NaN to 0, with d[b] = amax / 127 (NaNs skipped; d = 0 gives zeros) and
 * c[b] = off times the block's sum of q.  Division, not a reciprocal:
 * every ISA gives the same bytes, so an activation is the same whichever
 * kernel prepared it.
 */
void kern_quant_row_portable(const float *x, size_t nb, int8_t *q, float *d,
    int32_t *c, int32_t off);

extern const struct kern_impl kern_impl_portable;
#if defined(__x86_64__) || defined(__i386__)
#define KERN_HAVE_X86 1
extern const struct kern_impl kern_impl_avx2;
extern const struct kern_impl kern_impl_avx512;
#endif

#endif
