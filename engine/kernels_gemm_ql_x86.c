/*
 * kernels_gemm_ql_x86: kern_gemm (prefill) of Q4_1, Q5_0, Q5_1, IQ4_NL and
 * IQ4_XS for AVX2 and AVX-512, the scheme of kernels_gemm_x86.c (which
 * see): a panel of L rows (16, or 8 for AVX2) is repacked GEMM_KB blocks
 * of 32 at a time into per-block row scales and eight steps of L lanes of
 * four weight bytes; the steps stay in registers across a tile of tokens
 * and one dpbusd per step advances all L rows.
 *
 * The repacking expands blocks with the matvec's SIMD expanders
 * (kern_ql_expand_*: paid once per panel, shared by all its tokens) into
 *   Q4_1, Q5_1: the unsigned values, plus the row minimums m, whose term
 *               m * dx * s comes from c = s (kernels_int.h) in one more FMA;
 *   Q5_0:       values + 16 (0..31), the token's c = -16 s taking it out;
 *   IQ4:        codebook values + 128, c = -128 s (AVX-512), or for AVX2
 *               (whose maddubs would saturate on them) |w| then w, the
 *               signs moved onto x as Q8_0 does;
 * IQ4_XS's sub-block scales d * (s - 32) become the per-block row scales,
 * so that from there it is IQ4_NL.
 */
#include "kernels_x86.h"

#ifdef KERN_HAVE_X86

#define GEMM_KB 32
#define GEMM_T 8
/* Per block and lane: scale, minimum, 8 steps (16 signed). */
#define PK_LANE_BYTES (4 + 4 + 4 * 16)

enum pk_mode {
	PK_UNSIGNED,	/* values as unsigned bytes, dotted from c */
	PK_MIN,		/* unsigned, dotted from 0, plus the m term */
	PK_SIGNED,	/* |w| steps then w steps, dotted from 0 (AVX2) */
};

static enum pk_mode
pk_mode(uint32_t wtype, int avx2)
{
	if (wtype == QT_Q4_1 || wtype == QT_Q5_1)
		return PK_MIN;
	if (avx2 && (wtype == QT_IQ4_NL || wtype == QT_IQ4_XS))
		return PK_SIGNED;
	return PK_UNSIGNED;
}

static size_t
pk_block_bytes(int lanes, enum pk_mode mode)
{
	return (size_t)lanes * (4 + (mode == PK_MIN ? 4 : 0) +
	    32 * (mode == PK_SIGNED ? 2 : 1));
}

/*
 * Blocks [b0, b0 + nb) of nrows <= lanes rows; missing rows are zero.
 * Each row's block comes expanded by the ISA's kern_ql_expand (avx2:
 * lanes 8), already in the byte form the mode wants.
 */
static void
repack_ql(uint32_t wtype, const uint8_t *w, size_t rb, size_t nrows,
    int lanes, enum pk_mode mode, size_t b0, size_t nb, uint8_t *out)
{
	uint8_t *q, u[QK], a[QK];
	float *dw, *mw;
	size_t b;
	int r, k;

	memset(out, 0, nb * pk_block_bytes(lanes, mode));
	for (b = 0; b < nb; b++) {
		dw = (float *)(void *)(out + b * pk_block_bytes(lanes, mode));
		mw = dw + lanes;
		q = (uint8_t *)(mode == PK_MIN ? mw + lanes : mw);
		for (r = 0; r < (int)nrows; r++) {
			const uint8_t *row = w + (size_t)r * rb;

			dw[r] = lanes == 16 ? kern_ql_expand_avx512(wtype, row,
			    b0 + b, u) : kern_ql_expand_avx2(wtype, row,
			    b0 + b, u, a);
			if (mode == PK_MIN)
				mw[r] = fp16_to_f32((uint16_t)ld_u16(row +
				    (b0 + b) * qtype_block_bytes(wtype) + 2));
			if (mode == PK_SIGNED)
				for (k = 0; k < 8; k++) {
					memcpy(q + 4 * (k * lanes + r),
					    a + 4 * k, 4);
					memcpy(q + 4 * ((8 + k) * lanes + r),
					    u + 4 * k, 4);
				}
			else
				for (k = 0; k < 8; k++)
					memcpy(q + 4 * (k * lanes + r),
					    u + 4 * k, 4);
		}
	}
}

struct xs_tile {
	const uint8_t *q, *d, *c;
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
	int32_t c;

	memcpy(&c, x->c + (size_t)t * x->stride + b * 4, sizeof c);
	return c;
}

static int32_t
x_step(const struct xs_tile *x, int t, size_t b, int k)
{
	int32_t s;

	memcpy(&s, x->q + (size_t)t * x->stride + b * QK + 4 * k, sizeof s);
	return s;
}

T_AVX512 INLINE void
tile_ql_avx512(const uint8_t *pk, size_t nb, enum pk_mode mode,
    const struct xs_tile *x, float *y, size_t ldy, __mmask16 mask,
    int first, const int nt)
{
	__m512 acc[GEMM_T], dw, mw = _mm512_setzero_ps();
	__m512i wk[8], s;
	size_t b;
	int t, k, st = mode == PK_MIN ? 2 : 1;
	float dx;

#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
		acc[t] = first ? _mm512_setzero_ps() :
		    _mm512_maskz_loadu_ps(mask, y + (size_t)t * ldy);
	for (b = 0; b < nb; b++) {
		const uint8_t *p = pk + b * pk_block_bytes(16, mode);

		dw = _mm512_loadu_ps((const float *)(const void *)p);
		if (mode == PK_MIN)
			mw = _mm512_loadu_ps((const float *)(const void *)
			    (p + 64));
#pragma GCC unroll 8
		for (k = 0; k < 8; k++)
			wk[k] = _mm512_loadu_si512(p + 64 * (k + st));
#pragma GCC unroll 8
		for (t = 0; t < nt; t++) {
			s = _mm512_set1_epi32(mode == PK_MIN ? 0 :
			    x_c(x, t, b));
#pragma GCC unroll 8
			for (k = 0; k < 8; k++)
				s = _mm512_dpbusd_epi32(s, wk[k],
				    _mm512_set1_epi32(x_step(x, t, b, k)));
			dx = x_d(x, t, b);
			acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
			    _mm512_mul_ps(dw, _mm512_set1_ps(dx)), acc[t]);
			if (mode == PK_MIN)
				acc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(dx *
				    (float)x_c(x, t, b)), acc[t]);
		}
	}
#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
		_mm512_mask_storeu_ps(y + (size_t)t * ldy, mask, acc[t]);
}

/* One token's block dot over the 8 lanes of an AVX2 panel block. */
T_AVX2 INLINE __m256i
tile_block_ql_avx2(const uint8_t *q, enum pk_mode mode,
    const struct xs_tile *x, int t, size_t b)
{
	const __m256i one = _mm256_set1_epi16(1);
	__m256i s = _mm256_set1_epi32(mode == PK_UNSIGNED ? x_c(x, t, b) : 0);
	__m256i xb, wk;
	int k;

#pragma GCC unroll 8
	for (k = 0; k < 8; k++) {
		xb = _mm256_set1_epi32(x_step(x, t, b, k));
		wk = ld256(q + 32 * k);
		if (mode == PK_SIGNED)
			xb = _mm256_sign_epi8(xb, ld256(q + 32 * (k + 8)));
		s = _mm256_add_epi32(s, _mm256_madd_epi16(
		    _mm256_maddubs_epi16(wk, xb), one));
	}
	return s;
}

T_AVX2 INLINE void
tile_ql_avx2(const uint8_t *pk, size_t nb, enum pk_mode mode,
    const struct xs_tile *x, float *y, size_t ldy, size_t nr, int first,
    const int nt)
{
	__m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nr),
	    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
	__m256 acc[GEMM_T], dw, mw = _mm256_setzero_ps();
	int t, st = mode == PK_MIN ? 2 : 1;
	size_t b;
	float dx;

#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
		acc[t] = first ? _mm256_setzero_ps() :
		    _mm256_maskload_ps(y + (size_t)t * ldy, mask);
	for (b = 0; b < nb; b++) {
		const uint8_t *p = pk + b * pk_block_bytes(8, mode);

		dw = _mm256_loadu_ps((const float *)(const void *)p);
		if (mode == PK_MIN)
			mw = _mm256_loadu_ps((const float *)(const void *)
			    (p + 32));
#pragma GCC unroll 8
		for (t = 0; t < nt; t++) {
			dx = x_d(x, t, b);
			acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(
			    tile_block_ql_avx2(p + 32 * st, mode, x, t, b)),
			    _mm256_mul_ps(dw, _mm256_set1_ps(dx)), acc[t]);
			if (mode == PK_MIN)
				acc[t] = _mm256_fmadd_ps(mw, _mm256_set1_ps(dx *
				    (float)x_c(x, t, b)), acc[t]);
		}
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

/* The mode a constant in each expansion: one specialized tile each. */
#define TILE_AVX512_U(NT) tile_ql_avx512(pk, kb, PK_UNSIGNED, &x,	\
	y + t * ldy + r, ldy, mask, b0 == 0, NT)
#define TILE_AVX512_M(NT) tile_ql_avx512(pk, kb, PK_MIN, &x,		\
	y + t * ldy + r, ldy, mask, b0 == 0, NT)
#define TILE_AVX2_U(NT) tile_ql_avx2(pk, kb, PK_UNSIGNED, &x,		\
	y + t * ldy + r, ldy, nr, b0 == 0, NT)
#define TILE_AVX2_M(NT) tile_ql_avx2(pk, kb, PK_MIN, &x,		\
	y + t * ldy + r, ldy, nr, b0 == 0, NT)
#define TILE_AVX2_S(NT) tile_ql_avx2(pk, kb, PK_SIGNED, &x,		\
	y + t * ldy + r, ldy, nr, b0 == 0, NT)

T_AVX512 int
kern_ql_gemm_avx512(uint32_t wtype, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows)
{
	_Alignas(64) uint8_t pk[GEMM_KB * 16 * PK_LANE_BYTES];
	enum pk_mode mode = pk_mode(wtype, 0);
	size_t nb = n / QK, r, nr, b0, kb;
	__mmask16 mask;

	if (!kern_ql_type(wtype))
		return 0;
	for (r = 0; r < nrows; r += 16) {
		nr = nrows - r < 16 ? nrows - r : 16;
		mask = (__mmask16)((1u << nr) - 1);
		for (b0 = 0; b0 < nb; b0 += GEMM_KB) {
			kb = nb - b0 < GEMM_KB ? nb - b0 : GEMM_KB;
			repack_ql(wtype, w + r * rb, rb, nr, 16, mode, b0, kb,
			    pk);
			if (mode == PK_MIN)
				GEMM_TOKENS(TILE_AVX512_M);
			else
				GEMM_TOKENS(TILE_AVX512_U);
		}
	}
	return 1;
}

T_AVX2 int
kern_ql_gemm_avx2(uint32_t wtype, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows)
{
	_Alignas(64) uint8_t pk[GEMM_KB * 8 * PK_LANE_BYTES];
	enum pk_mode mode = pk_mode(wtype, 1);
	size_t nb = n / QK, r, nr, b0, kb;

	if (!kern_ql_type(wtype))
		return 0;
	for (r = 0; r < nrows; r += 8) {
		nr = nrows - r < 8 ? nrows - r : 8;
		for (b0 = 0; b0 < nb; b0 += GEMM_KB) {
			kb = nb - b0 < GEMM_KB ? nb - b0 : GEMM_KB;
			repack_ql(wtype, w + r * rb, rb, nr, 8, mode, b0, kb,
			    pk);
			if (mode == PK_MIN)
				GEMM_TOKENS(TILE_AVX2_M);
			else if (mode == PK_SIGNED)
				GEMM_TOKENS(TILE_AVX2_S);
			else
				GEMM_TOKENS(TILE_AVX2_U);
		}
	}
	return 1;
}

#endif /* KERN_HAVE_X86 */
