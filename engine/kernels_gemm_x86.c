/*
 * kernels_gemm_x86: the AVX2 and AVX-512 versions of kern_gemm, the
 * int8 GEMM of quantized weights against many prepared activations
 * (prefill): repacking weight rows into panels, and the token tiles that
 * consume them.  Compiled per function with target attributes like
 * kernels_x86.c, whose ISA tables point here.
 */
#include "kernels_x86.h"

#ifdef KERN_HAVE_X86

/*
 * GEMM (prefill, quantized weights).  A panel of L rows (16: the lanes of
 * a zmm; 8 for AVX2) is repacked GEMM_KB blocks at a time into a buffer
 * on the stack: per block the L row scales as f32, then eight steps of L
 * lanes of four bytes, step k holding elements 4k..4k+3 of every row's
 * block as unsigned bytes (Q8_0 + 128, Q4_0's nibbles).  One dpbusd of a
 * step against a token's four matching bytes, broadcast, advances all L
 * rows' block dots at once; after eight steps (started from the token's
 * correction c) each lane holds one row's exact block dot, and one
 * convert and one FMA by the row scales times the token's scale serve L
 * rows.  The panel's eight steps stay in registers across a tile of up to
 * GEMM_T tokens, each with its own accumulator; results come out as L
 * consecutive floats of Y[t], so nothing is reduced horizontally.
 * Repacking costs little next to the m tokens it serves, and GEMM_KB
 * keeps the panel in L1 while the tokens' x streams from L2.
 *
 * AVX2 has no unsigned * signed dot that cannot saturate on Q8_0, so its
 * Q8_0 panels keep |w| in the eight steps followed by w itself for the
 * sign trick; its Q4_0 steps sum in 16 bits (8 * 2 * 15 * 127 < 2^15).
 */
#define GEMM_KB 32
#define GEMM_T 8
#define PK_Q8_SIGNED 1 /* repack mode: |w| steps, then w steps */

static uint32_t
ld_u32(const void *p)
{
	uint32_t u;

	memcpy(&u, p, sizeof u);
	return u;
}

/* Step k (elements 4k..4k+3) of the block at blk, as unsigned bytes. */
static uint32_t
step_bytes(uint32_t wtype, const uint8_t *blk, int k)
{
	uint32_t u;

	if (wtype == QT_Q8_0)
		return ld_u32(blk + 2 + 4 * k) ^ 0x80808080u;
	u = ld_u32(blk + 2 + 4 * (k % 4));
	return (k < 4 ? u : u >> 4) & 0x0f0f0f0fu;
}

/* Four signed bytes b -> |b|, bytewise. */
static uint32_t
abs_bytes(uint32_t u)
{
	uint32_t r = 0;
	int i;

	for (i = 0; i < 4; i++) {
		int8_t b = (int8_t)(u >> 8 * i);

		r |= (uint32_t)(uint8_t)(b < 0 ? -b : b) << 8 * i;
	}
	return r;
}

static size_t
pk_block_bytes(int lanes, int mode)
{
	return (size_t)lanes * (4 + 32 * (mode == PK_Q8_SIGNED ? 2 : 1));
}

/* Blocks [b0, b0 + nb) of nrows <= lanes rows; missing rows are zero. */
static void
repack(uint32_t wtype, const uint8_t *w, size_t rb, size_t nrows, int lanes,
    int mode, size_t b0, size_t nb, uint8_t *out)
{
	size_t bs = wtype == QT_Q8_0 ? Q8_BYTES : Q4_BYTES, b;
	const uint8_t *blk;
	uint32_t *q, u;
	float *dw;
	int r, k;

	memset(out, 0, nb * pk_block_bytes(lanes, mode));
	for (b = 0; b < nb; b++) {
		dw = (float *)(void *)(out + b * pk_block_bytes(lanes, mode));
		q = (uint32_t *)(void *)(dw + lanes);
		for (r = 0; r < (int)nrows; r++) {
			blk = w + (size_t)r * rb + (b0 + b) * bs;
			dw[r] = fp16_to_f32((uint16_t)ld_u16(blk));
			for (k = 0; k < 8 && mode != PK_Q8_SIGNED; k++)
				q[k * lanes + r] = step_bytes(wtype, blk, k);
			for (k = 0; k < 8 && mode == PK_Q8_SIGNED; k++) {
				u = ld_u32(blk + 2 + 4 * k);
				q[k * lanes + r] = abs_bytes(u);
				q[(8 + k) * lanes + r] = u;
			}
		}
	}
}

/*
 * The same for AVX-512, gathering each step of the 16 rows at once (rows
 * must be under 2^31 / 16 bytes).  Missing rows get scale 0.
 */
T_AVX512 static void
repack_avx512(uint32_t wtype, const uint8_t *w, size_t rb, size_t nrows,
    size_t b0, size_t nb, uint8_t *out)
{
	const __m512i lo4 = _mm512_set1_epi8(15);
	const __m512i top = _mm512_set1_epi8(-128);
	const __m512i z = _mm512_setzero_si512();
	__m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5,
	    6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32((int)rb));
	__mmask16 m = (__mmask16)((1u << nrows) - 1);
	size_t bs = wtype == QT_Q8_0 ? Q8_BYTES : Q4_BYTES, b;
	const uint8_t *blk;
	__m512i g;
	uint8_t *p;
	int k;

	for (b = 0; b < nb; b++) {
		blk = w + (b0 + b) * bs;
		p = out + b * pk_block_bytes(16, 0);
		g = _mm512_mask_i32gather_epi32(z, m, idx, blk, 1);
		_mm512_storeu_ps(p, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g)));
		for (k = 0; k < 8; k++) {
			if (wtype == QT_Q4_0 && k >= 4)
				break;
			g = _mm512_mask_i32gather_epi32(z, m, idx,
			    blk + 2 + 4 * k, 1);
			if (wtype == QT_Q8_0) {
				_mm512_storeu_si512(p + 64 * (k + 1),
				    _mm512_xor_si512(g, top));
				continue;
			}
			_mm512_storeu_si512(p + 64 * (k + 1),
			    _mm512_and_si512(g, lo4));
			_mm512_storeu_si512(p + 64 * (k + 5), _mm512_and_si512(
			    _mm512_srli_epi32(g, 4), lo4));
		}
	}
}

/* Token t0's x from block b0, as the tiles read it. */
struct xs_tile {
	const uint8_t *q;
	const uint8_t *d;
	const uint8_t *c;
	size_t stride;
};

static struct xs_tile
xs_tile_at(const void *xs, uint32_t wtype, size_t n, size_t t0, size_t b0)
{
	struct xs_tile x;

	x.stride = kern_xs_stride(wtype, n);
	x.q = (const uint8_t *)xs + t0 * x.stride + b0 * QK;
	x.d = (const uint8_t *)xs + t0 * x.stride + n + b0 * sizeof(float);
	x.c = x.d + n / QK * sizeof(float);
	return x;
}

static float
x_d(const struct xs_tile *x, int t, size_t b)
{
	float f;

	memcpy(&f, x->d + (size_t)t * x->stride + b * sizeof f, sizeof f);
	return f;
}

static int32_t
x_c(const struct xs_tile *x, int t, size_t b)
{
	return (int32_t)ld_u32(x->c + (size_t)t * x->stride + b * 4);
}

/* Step k of token t's block b. */
static int32_t
x_step(const struct xs_tile *x, int t, size_t b, int k)
{
	return (int32_t)ld_u32(x->q + (size_t)t * x->stride + b * QK + 4 * k);
}

T_AVX512 INLINE void
tile_avx512(const uint8_t *pk, size_t nb, const struct xs_tile *x, float *y,
    size_t ldy, __mmask16 mask, int first, const int nt)
{
	__m512 acc[GEMM_T], dw;
	__m512i wk[8], s;
	size_t b;
	int t, k;

#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
		acc[t] = first ? _mm512_setzero_ps() :
		    _mm512_maskz_loadu_ps(mask, y + (size_t)t * ldy);
	for (b = 0; b < nb; b++) {
		const uint8_t *p = pk + b * pk_block_bytes(16, 0);

		dw = _mm512_loadu_ps((const float *)(const void *)p);
#pragma GCC unroll 8
		for (k = 0; k < 8; k++)
			wk[k] = _mm512_loadu_si512(p + 64 * (k + 1));
#pragma GCC unroll 8
	for (t = 0; t < nt; t++) {
			s = _mm512_set1_epi32(x_c(x, t, b));
#pragma GCC unroll 8
		for (k = 0; k < 8; k++)
				s = _mm512_dpbusd_epi32(s, wk[k],
				    _mm512_set1_epi32(x_step(x, t, b, k)));
			acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
			    _mm512_mul_ps(dw, _mm512_set1_ps(x_d(x, t, b))),
			    acc[t]);
		}
	}
#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
		_mm512_mask_storeu_ps(y + (size_t)t * ldy, mask, acc[t]);
}

T_AVX2 INLINE __m256i
tile_block_avx2(const uint8_t *p, const struct xs_tile *x, int t, size_t b,
    int q8)
{
	const __m256i one = _mm256_set1_epi16(1);
	__m256i s = _mm256_setzero_si256(), xb, wk;
	int k;

#pragma GCC unroll 8
	for (k = 0; k < 8; k++) {
		xb = _mm256_set1_epi32(x_step(x, t, b, k));
		wk = ld256(p + 32 * (k + 1));
		if (q8)
			s = _mm256_add_epi32(s, _mm256_madd_epi16(
			    _mm256_maddubs_epi16(wk, _mm256_sign_epi8(xb,
			    ld256(p + 32 * (k + 9)))), one));
		else
			s = _mm256_add_epi16(s, _mm256_maddubs_epi16(wk, xb));
	}
	if (q8)
		return s;
	return _mm256_add_epi32(_mm256_madd_epi16(s, one),
	    _mm256_set1_epi32(x_c(x, t, b)));
}

T_AVX2 INLINE void
tile_avx2(uint32_t wtype, const uint8_t *pk, size_t nb,
    const struct xs_tile *x, float *y, size_t ldy, size_t nr, int first,
    const int nt)
{
	int q8 = wtype == QT_Q8_0, mode = q8 ? PK_Q8_SIGNED : 0, t;
	__m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nr),
	    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
	__m256 acc[GEMM_T], dw;
	size_t b;

#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
		acc[t] = first ? _mm256_setzero_ps() :
		    _mm256_maskload_ps(y + (size_t)t * ldy, mask);
	for (b = 0; b < nb; b++) {
		const uint8_t *p = pk + b * pk_block_bytes(8, mode);

		dw = _mm256_loadu_ps((const float *)(const void *)p);
#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
			acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(
			    tile_block_avx2(p, x, t, b, q8)), _mm256_mul_ps(dw,
			    _mm256_set1_ps(x_d(x, t, b))), acc[t]);
	}
#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
		_mm256_maskstore_ps(y + (size_t)t * ldy, mask, acc[t]);
}

/* Tiles of GEMM_T tokens, then 4, 2, 1 for the rest. */
#define GEMM_TOKENS(TILE) do {						\
	size_t t, tt;							\
	struct xs_tile x;						\
									\
	for (t = 0; t < m; t += tt) {					\
		tt = m - t >= GEMM_T ? GEMM_T : m - t >= 4 ? 4 :	\
		    m - t >= 2 ? 2 : 1;					\
		x = xs_tile_at(xs, wtype, n, t, b0);			\
		if (tt == GEMM_T)					\
			TILE(GEMM_T);					\
		else if (tt == 4)					\
			TILE(4);					\
		else if (tt == 2)					\
			TILE(2);					\
		else							\
			TILE(1);					\
	}								\
} while (0)

#define TILE_AVX512(NT) tile_avx512(pk, kb, &x, y + t * ldy + r, ldy,	\
	mask, b0 == 0, NT)
#define TILE_AVX2(NT) tile_avx2(wtype, pk, kb, &x, y + t * ldy + r, ldy, \
	nr, b0 == 0, NT)

T_AVX512 void
kern_gemm_avx512(uint32_t wtype, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows)
{
	_Alignas(64) uint8_t pk[GEMM_KB * 16 * 36];
	size_t nb = n / QK, r, nr, b0, kb;
	__mmask16 mask;

	if (kern_ql_gemm_avx512(wtype, w, rb, n, xs, m, y, ldy, nrows))
		return;

	for (r = 0; r < nrows; r += 16) {
		nr = nrows - r < 16 ? nrows - r : 16;
		mask = (__mmask16)((1u << nr) - 1);
		for (b0 = 0; b0 < nb; b0 += GEMM_KB) {
			kb = nb - b0 < GEMM_KB ? nb - b0 : GEMM_KB;
			if (rb <= INT32_MAX / 16)
				repack_avx512(wtype, w + r * rb, rb, nr, b0,
				    kb, pk);
			else
				repack(wtype, w + r * rb, rb, nr, 16, 0, b0,
				    kb, pk);
			GEMM_TOKENS(TILE_AVX512);
		}
	}
}

T_AVX2 void
kern_gemm_avx2(uint32_t wtype, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows)
{
	_Alignas(64) uint8_t pk[GEMM_KB * 8 * 68];
	size_t nb = n / QK, r, nr, b0, kb;
	int mode = wtype == QT_Q8_0 ? PK_Q8_SIGNED : 0;

	if (kern_ql_gemm_avx2(wtype, w, rb, n, xs, m, y, ldy, nrows))
		return;

	for (r = 0; r < nrows; r += 8) {
		nr = nrows - r < 8 ? nrows - r : 8;
		for (b0 = 0; b0 < nb; b0 += GEMM_KB) {
			kb = nb - b0 < GEMM_KB ? nb - b0 : GEMM_KB;
			repack(wtype, w + r * rb, rb, nr, 8, mode, b0, kb, pk);
			GEMM_TOKENS(TILE_AVX2);
		}
	}
}

#endif /* KERN_HAVE_X86 */
