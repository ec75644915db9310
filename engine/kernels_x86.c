/*
 * kernels_x86: the AVX2 and AVX-512 versions of the kernels in kernels.c.
 * Each function is compiled for its ISA with a target attribute, so the
 * file builds without -march flags; kernels.c only calls these after
 * checking the CPU.
 *
 * Rows are done one at a time, start to end: the rows of a matrix are
 * contiguous, so the weights form one sequential stream, which is what
 * the hardware prefetcher follows best (reading four rows side by side
 * measured at half the bandwidth).  x stays in L1 and is reloaded freely.
 *
 * In a quantized row each block's integer dot leaves several int32 lanes;
 * groups of blocks are reduced together to one vector of per-block sums
 * so that one int-to-float conversion, one scale multiply and one FMA
 * serve the whole group.  Weights are dotted as unsigned bytes where that
 * saves work and the integer correction carried by the prepared activation
 * (kernels_int.h) makes every block sum exact.  The AVX-512 versions use
 * 256-bit VNNI: on the development machine (Zen 4) 512-bit operations
 * have half the rate, and gathering two blocks into one register costs
 * more shuffles than it saves.
 */
#include "kernels_int.h"

#ifdef KERN_HAVE_X86

#include <immintrin.h>
#include <string.h>

#include "quant.h"

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define T_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw," \
    "avx512vl,avx512vnni")))
#define INLINE static inline __attribute__((always_inline))

#define Q8_BYTES 34
#define Q4_BYTES 18

/*
 * Weights are read once, as one sequential stream.  For quantized rows
 * the hardware prefetcher alone leaves the core waiting on memory between
 * bursts of work, so those loops also ask for the bytes this far ahead
 * (non-temporal: used within microseconds, never again).  Measured on the
 * development machine: 4 KB best, 2 KB and 6 KB close; the lighter float
 * loops stream faster without it.
 */
#define PREFETCH_AHEAD 4096

T_AVX2 INLINE void
prefetch(const uint8_t *p, int lines)
{
	int k;

	for (k = 0; k < lines; k++)
		_mm_prefetch((const char *)p + PREFETCH_AHEAD + 64 * k,
		    _MM_HINT_NTA);
}

static uint64_t
ld_u16(const uint8_t *p)
{
	uint16_t h;

	memcpy(&h, p, sizeof h);
	return h;
}

T_AVX2 INLINE __m256i
ld256(const void *p)
{
	return _mm256_loadu_si256((const __m256i *)p);
}

T_AVX2 INLINE __m128i
ld128(const void *p)
{
	return _mm_loadu_si128((const __m128i *)p);
}

T_AVX2 INLINE __m256i
ld128x2(const void *p)
{
	return _mm256_broadcastsi128_si256(ld128(p));
}

T_AVX2 INLINE float
hsum_avx2(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v),
	    _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

T_AVX2 INLINE int32_t
hsum_i32x4(__m128i s)
{
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
	return _mm_cvtsi128_si32(s);
}

T_AVX2 INLINE int32_t
hsum_i32_avx2(__m256i v)
{
	return hsum_i32x4(_mm_add_epi32(_mm256_castsi256_si128(v),
	    _mm256_extracti128_si256(v, 1)));
}

/* A block outside the groups the loops take: s is its exact dot. */
static float
tail_block(int32_t s, const uint8_t *blk, float dx)
{
	return (float)s * (fp16_to_f32((uint16_t)ld_u16(blk)) * dx);
}

/*
 * Q8_0: four blocks a step, each dotted into eight lanes and reduced with
 * the others to per-block half sums [a b c d | a b c d] (low halves, then
 * high), matching scales_q8().
 */
T_AVX2 INLINE __m256
scales_q8(const uint8_t *p)
{
	uint64_t h;

	h = ld_u16(p) | ld_u16(p + Q8_BYTES) << 16 |
	    ld_u16(p + 2 * Q8_BYTES) << 32 | ld_u16(p + 3 * Q8_BYTES) << 48;
	return _mm256_cvtph_ps(_mm_set1_epi64x((long long)h));
}

T_AVX2 INLINE __m256i
reduce_q8(__m256i a, __m256i b, __m256i c, __m256i d)
{
	return _mm256_hadd_epi32(_mm256_hadd_epi32(a, b),
	    _mm256_hadd_epi32(c, d));
}

/* AVX2 has no unsigned * signed dot: move w's signs onto x instead. */
T_AVX2 INLINE __m256i
block_q8_avx2(const uint8_t *blk, const int8_t *x)
{
	__m256i w = ld256(blk + 2);

	return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w),
	    _mm256_sign_epi8(ld256(x), w)), _mm256_set1_epi16(1));
}

/* w + 128 is unsigned; c takes the 128 * sum(x) back out. */
T_AVX512 INLINE __m256i
block_q8_avx512(const uint8_t *blk, const int8_t *x)
{
	__m256i u = _mm256_xor_si256(ld256(blk + 2), _mm256_set1_epi8(-128));

	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, ld256(x));
}

#define ROW_Q8(BLOCK, CORRECT) do {					\
	__m256 acc = _mm256_setzero_ps();				\
	const uint8_t *p;						\
	const int8_t *x;						\
	__m256i h;							\
	size_t b;							\
	float sum;							\
									\
	for (b = 0; b + 4 <= nb; b += 4) {				\
		p = row + b * Q8_BYTES;					\
		x = v.q + b * QK;					\
		prefetch(p, 3);						\
		h = reduce_q8(BLOCK(p, x), BLOCK(p + Q8_BYTES, x + QK),	\
		    BLOCK(p + 2 * Q8_BYTES, x + 2 * QK),		\
		    BLOCK(p + 3 * Q8_BYTES, x + 3 * QK));		\
		if (CORRECT)						\
			h = _mm256_add_epi32(h, ld128x2(v.c + b));	\
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h),		\
		    _mm256_mul_ps(scales_q8(p),				\
		    _mm256_castsi256_ps(ld128x2(v.d + b))), acc);	\
	}								\
	sum = hsum_avx2(acc);						\
	for (; b < nb; b++) {						\
		p = row + b * Q8_BYTES;					\
		h = BLOCK(p, v.q + b * QK);				\
		sum += tail_block(hsum_i32_avx2(h) +			\
		    (CORRECT ? 2 * v.c[b] : 0), p, v.d[b]);		\
	}								\
	return sum;							\
} while (0)

T_AVX2 INLINE float
row_q8_avx2(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_Q8(block_q8_avx2, 0);
}

T_AVX512 INLINE float
row_q8_avx512(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_Q8(block_q8_avx512, 1);
}

/*
 * Q4_0: blocks go in pairs (A, B) whose low nibbles share one vector and
 * high nibbles another, against x stored to match (kernels_int.h); each
 * pair leaves four lanes per block, small enough (8 * 15 * 127) to reduce
 * four pairs with saturating packs that never saturate.  The result is
 * per-block sums in the order 0 2 4 6 1 3 5 7, as d, c and scales_q4().
 */
T_AVX2 INLINE __m256
scales_q4(const uint8_t *p)
{
	const size_t bs = Q4_BYTES;
	uint64_t e, o;

	e = ld_u16(p) | ld_u16(p + 2 * bs) << 16 | ld_u16(p + 4 * bs) << 32 |
	    ld_u16(p + 6 * bs) << 48;
	o = ld_u16(p + bs) | ld_u16(p + 3 * bs) << 16 |
	    ld_u16(p + 5 * bs) << 32 | ld_u16(p + 7 * bs) << 48;
	return _mm256_cvtph_ps(_mm_set_epi64x((long long)o, (long long)e));
}

T_AVX2 INLINE __m256i
reduce_q4(__m256i ab, __m256i cd, __m256i ef, __m256i gh)
{
	const __m256i one = _mm256_set1_epi16(1);
	__m256i t, u;

	t = _mm256_madd_epi16(_mm256_packs_epi32(ab, cd), one);
	u = _mm256_madd_epi16(_mm256_packs_epi32(ef, gh), one);
	return _mm256_madd_epi16(_mm256_packs_epi32(t, u), one);
}

/* [A | B] nibbles of the pair at p, or [A | A] for a last lone block. */
T_AVX2 INLINE __m256i
pair_q4(const uint8_t *p, int lone)
{
	if (lone)
		return ld128x2(p + 2);
	return _mm256_inserti128_si256(_mm256_castsi128_si256(ld128(p + 2)),
	    ld128(p + 2 + Q4_BYTES), 1);
}

T_AVX2 INLINE __m256i
pair_q4_avx2(const uint8_t *p, const int8_t *x, int lone)
{
	const __m256i m = _mm256_set1_epi8(15);
	__m256i q = pair_q4(p, lone), lo, hi;

	lo = _mm256_maddubs_epi16(_mm256_and_si256(q, m), ld256(x));
	hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 4),
	    m), ld256(x + 32));
	return _mm256_madd_epi16(_mm256_add_epi16(lo, hi),
	    _mm256_set1_epi16(1));
}

T_AVX512 INLINE __m256i
pair_q4_avx512(const uint8_t *p, const int8_t *x, int lone)
{
	const __m256i m = _mm256_set1_epi8(15);
	__m256i q = pair_q4(p, lone), s;

	s = _mm256_dpbusd_epi32(_mm256_setzero_si256(),
	    _mm256_and_si256(q, m), ld256(x));
	return _mm256_dpbusd_epi32(s,
	    _mm256_and_si256(_mm256_srli_epi16(q, 4), m), ld256(x + 32));
}

#define ROW_Q4(PAIR) do {						\
	__m256 acc = _mm256_setzero_ps();				\
	const uint8_t *p;						\
	const int8_t *x;						\
	__m128i lo, hi;							\
	__m256i h;							\
	size_t b;							\
	float sum;							\
									\
	for (b = 0; b + 8 <= nb; b += 8) {				\
		p = row + b * Q4_BYTES;					\
		x = v.q + b * QK;					\
		prefetch(p, 3);						\
		h = reduce_q4(PAIR(p, x, 0),				\
		    PAIR(p + 2 * Q4_BYTES, x + 2 * QK, 0),		\
		    PAIR(p + 4 * Q4_BYTES, x + 4 * QK, 0),		\
		    PAIR(p + 6 * Q4_BYTES, x + 6 * QK, 0));		\
		h = _mm256_add_epi32(h, ld256(v.c + b));		\
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h),		\
		    _mm256_mul_ps(scales_q4(p),				\
		    _mm256_loadu_ps(v.d + b)), acc);			\
	}								\
	sum = hsum_avx2(acc);						\
	for (; b < nb; b += 2) {					\
		p = row + b * Q4_BYTES;					\
		h = PAIR(p, v.q + b * QK, b + 1 == nb);			\
		lo = _mm256_castsi256_si128(h);				\
		hi = _mm256_extracti128_si256(h, 1);			\
		sum += tail_block(hsum_i32x4(lo) + v.c[b], p, v.d[b]);	\
		if (b + 1 < nb)						\
			sum += tail_block(hsum_i32x4(hi) + v.c[b + 1],	\
			    p + Q4_BYTES, v.d[b + 1]);			\
	}								\
	return sum;							\
} while (0)

T_AVX2 INLINE float
row_q4_avx2(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_Q4(pair_q4_avx2);
}

T_AVX512 INLINE float
row_q4_avx512(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_Q4(pair_q4_avx512);
}

/* Float weights as f32, 8 at element i. */
T_AVX2 INLINE __m256
wload_avx2(uint32_t t, const uint8_t *row, size_t i)
{
	__m128i h;

	if (t == QT_F32)
		return _mm256_loadu_ps((const float *)(const void *)(row +
		    4 * i));
	h = _mm_loadu_si128((const __m128i *)(const void *)(row + 2 * i));
	if (t == QT_F16)
		return _mm256_cvtph_ps(h);
	return _mm256_castsi256_ps(_mm256_slli_epi32(
	    _mm256_cvtepu16_epi32(h), 16));
}

static float
welem(uint32_t t, const uint8_t *row, size_t i)
{
	float f;

	if (t == QT_F32) {
		memcpy(&f, row + 4 * i, sizeof f);
		return f;
	}
	if (t == QT_F16)
		return fp16_to_f32((uint16_t)ld_u16(row + 2 * i));
	return bf16_to_f32((uint16_t)ld_u16(row + 2 * i));
}

T_AVX2 INLINE float
row_f_avx2(uint32_t t, const uint8_t *row, size_t n, const float *x)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	size_t i;
	float sum;

	for (i = 0; i + 16 <= n; i += 16) {
		a0 = _mm256_fmadd_ps(wload_avx2(t, row, i),
		    _mm256_loadu_ps(x + i), a0);
		a1 = _mm256_fmadd_ps(wload_avx2(t, row, i + 8),
		    _mm256_loadu_ps(x + i + 8), a1);
	}
	if (i + 8 <= n) {
		a0 = _mm256_fmadd_ps(wload_avx2(t, row, i),
		    _mm256_loadu_ps(x + i), a0);
		i += 8;
	}
	sum = hsum_avx2(_mm256_add_ps(a0, a1));
	for (; i < n; i++)
		sum += welem(t, row, i) * x[i];
	return sum;
}

T_AVX2 static void
matvec_avx2(uint32_t wtype, const uint8_t *w, size_t rb, size_t n,
    const void *xq, float *y, size_t nrows)
{
	size_t r, nb = n / QK;
	struct kern_xq v;

	/* One row at a time, constant types: one specialized loop each. */
	switch (wtype) {
	case QT_Q8_0:
		v = kern_xq_view(xq, wtype, n);
		for (r = 0; r < nrows; r++)
			y[r] = row_q8_avx2(w + r * rb, nb, v);
		break;
	case QT_Q4_0:
		v = kern_xq_view(xq, wtype, n);
		for (r = 0; r < nrows; r++)
			y[r] = row_q4_avx2(w + r * rb, nb, v);
		break;
	case QT_F32:
		for (r = 0; r < nrows; r++)
			y[r] = row_f_avx2(QT_F32, w + r * rb, n, xq);
		break;
	case QT_F16:
		for (r = 0; r < nrows; r++)
			y[r] = row_f_avx2(QT_F16, w + r * rb, n, xq);
		break;
	case QT_BF16:
		for (r = 0; r < nrows; r++)
			y[r] = row_f_avx2(QT_BF16, w + r * rb, n, xq);
		break;
	default:
		memset(y, 0, nrows * sizeof(float));
		break;
	}
}

/* Float weights as f32, the elements of m at element i. */
T_AVX512 INLINE __m512
wload_avx512(uint32_t t, const uint8_t *row, size_t i, __mmask16 m)
{
	__m256i h;

	if (t == QT_F32)
		return _mm512_maskz_loadu_ps(m, row + 4 * i);
	h = _mm256_maskz_loadu_epi16(m, row + 2 * i);
	if (t == QT_F16)
		return _mm512_cvtph_ps(h);
	return _mm512_castsi512_ps(_mm512_slli_epi32(
	    _mm512_cvtepu16_epi32(h), 16));
}

T_AVX512 INLINE float
row_f_avx512(uint32_t t, const uint8_t *row, size_t n, const float *x)
{
	__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
	const __mmask16 all = 0xffff;
	__mmask16 m;
	size_t i;

	for (i = 0; i + 32 <= n; i += 32) {
		a0 = _mm512_fmadd_ps(wload_avx512(t, row, i, all),
		    _mm512_loadu_ps(x + i), a0);
		a1 = _mm512_fmadd_ps(wload_avx512(t, row, i + 16, all),
		    _mm512_loadu_ps(x + i + 16), a1);
	}
	for (; i < n; i += 16) {
		m = n - i >= 16 ? all : (__mmask16)((1u << (n - i)) - 1);
		a0 = _mm512_fmadd_ps(wload_avx512(t, row, i, m),
		    _mm512_maskz_loadu_ps(m, x + i), a0);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

T_AVX512 static void
matvec_avx512(uint32_t wtype, const uint8_t *w, size_t rb, size_t n,
    const void *xq, float *y, size_t nrows)
{
	size_t r, nb = n / QK;
	struct kern_xq v;

	/* One row at a time, constant types: one specialized loop each. */
	switch (wtype) {
	case QT_Q8_0:
		v = kern_xq_view(xq, wtype, n);
		for (r = 0; r < nrows; r++)
			y[r] = row_q8_avx512(w + r * rb, nb, v);
		break;
	case QT_Q4_0:
		v = kern_xq_view(xq, wtype, n);
		for (r = 0; r < nrows; r++)
			y[r] = row_q4_avx512(w + r * rb, nb, v);
		break;
	case QT_F32:
		for (r = 0; r < nrows; r++)
			y[r] = row_f_avx512(QT_F32, w + r * rb, n, xq);
		break;
	case QT_F16:
		for (r = 0; r < nrows; r++)
			y[r] = row_f_avx512(QT_F16, w + r * rb, n, xq);
		break;
	case QT_BF16:
		for (r = 0; r < nrows; r++)
			y[r] = row_f_avx512(QT_BF16, w + r * rb, n, xq);
		break;
	default:
		memset(y, 0, nrows * sizeof(float));
		break;
	}
}

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

T_AVX512 static void
gemm_avx512(uint32_t wtype, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows)
{
	_Alignas(64) uint8_t pk[GEMM_KB * 16 * 36];
	size_t nb = n / QK, r, nr, b0, kb;
	__mmask16 mask;

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

T_AVX2 static void
gemm_avx2(uint32_t wtype, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows)
{
	_Alignas(64) uint8_t pk[GEMM_KB * 8 * 68];
	size_t nb = n / QK, r, nr, b0, kb;
	int mode = wtype == QT_Q8_0 ? PK_Q8_SIGNED : 0;

	for (r = 0; r < nrows; r += 8) {
		nr = nrows - r < 8 ? nrows - r : 8;
		for (b0 = 0; b0 < nb; b0 += GEMM_KB) {
			kb = nb - b0 < GEMM_KB ? nb - b0 : GEMM_KB;
			repack(wtype, w + r * rb, rb, nr, 8, mode, b0, kb, pk);
			GEMM_TOKENS(TILE_AVX2);
		}
	}
}

T_AVX2 static float
dot_avx2(const float *a, const float *b, size_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	float sum;
	size_t i;

	for (i = 0; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i),
		    _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8),
		    _mm256_loadu_ps(b + i + 8), s1);
	}
	if (i + 8 <= n) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i),
		    _mm256_loadu_ps(b + i), s0);
		i += 8;
	}
	sum = hsum_avx2(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		sum += a[i] * b[i];
	return sum;
}

T_AVX2 static void
axpy_avx2(float a, const float *x, float *y, size_t n)
{
	__m256 av = _mm256_set1_ps(a);
	size_t i;

	for (i = 0; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(av,
		    _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * x[i];
}

T_AVX512 static float
dot_avx512(const float *a, const float *b, size_t n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	__mmask16 m;
	size_t i;

	for (i = 0; i + 32 <= n; i += 32) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i),
		    _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16),
		    _mm512_loadu_ps(b + i + 16), s1);
	}
	for (; i < n; i += 16) {
		m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
		s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i),
		    _mm512_maskz_loadu_ps(m, b + i), s0);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

T_AVX512 static void
axpy_avx512(float a, const float *x, float *y, size_t n)
{
	__m512 av = _mm512_set1_ps(a);
	__mmask16 m;
	size_t i;

	for (i = 0; i < n; i += 16) {
		m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
		_mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av,
		    _mm512_maskz_loadu_ps(m, x + i),
		    _mm512_maskz_loadu_ps(m, y + i)));
	}
}

const struct kern_impl kern_impl_avx2 = {
	matvec_avx2, gemm_avx2, dot_avx2, axpy_avx2,
};

const struct kern_impl kern_impl_avx512 = {
	matvec_avx512, gemm_avx512, dot_avx512, axpy_avx512,
};

#endif /* KERN_HAVE_X86 */
