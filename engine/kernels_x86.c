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
 *
 * The int8 GEMM (prefill) lives in kernels_gemm_x86.c, attention in
 * kernels_attn_x86.c.
 */
#include "kernels_x86.h"
#include "quant_k.h"

#ifdef KERN_HAVE_X86

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

/*
 * CORRECT (the +128 kernels): the half sums are folded into whole block
 * sums before c is added, so that the integers converted are the exact
 * block dots; half sums each corrected by half of c would be off by
 * 64 * (the halves' difference of x sums), which cancels in exact
 * arithmetic but not once scaled: on a block of zeros with a large scale
 * it came out as a visible error (tests/fuzz_quant.c found it).
 */
#define ROW_Q8(BLOCK, CORRECT) do {					\
	__m256 acc = _mm256_setzero_ps();				\
	__m128 acc4 = _mm_setzero_ps();					\
	const uint8_t *p;						\
	const int8_t *x;						\
	__m128i s4;							\
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
		if (CORRECT) {						\
			s4 = _mm_add_epi32(_mm_add_epi32(		\
			    _mm256_castsi256_si128(h),			\
			    _mm256_extracti128_si256(h, 1)),		\
			    _mm_loadu_si128((const __m128i *)(v.c + b)));\
			acc4 = _mm_fmadd_ps(_mm_cvtepi32_ps(s4),	\
			    _mm_mul_ps(_mm256_castps256_ps128(		\
			    scales_q8(p)), _mm_loadu_ps(v.d + b)), acc4);\
			continue;					\
		}							\
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h),		\
		    _mm256_mul_ps(scales_q8(p),				\
		    _mm256_castsi256_ps(ld128x2(v.d + b))), acc);	\
	}								\
	sum = hsum_avx2(_mm256_add_ps(acc, _mm256_set_m128(		\
	    _mm_setzero_ps(), acc4)));					\
	for (; b < nb; b++) {						\
		p = row + b * Q8_BYTES;					\
		h = BLOCK(p, v.q + b * QK);				\
		sum += tail_block(hsum_i32_avx2(h) +			\
		    (CORRECT ? v.c[b] : 0), p, v.d[b]);			\
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
		if (!kern_ql_matvec_avx2(wtype, w, rb, n, xq, y, nrows))
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
		if (!kern_ql_matvec_avx512(wtype, w, rb, n, xq, y, nrows))
			memset(y, 0, nrows * sizeof(float));
		break;
	}
}

/*
 * Several activations (matmul_multi's decode rows), Q8_0 on AVX-512:
 * each group of four weight blocks is loaded and flipped once and dotted
 * with every activation, whose float steps are exactly those of
 * row_q8_avx512 alone (same order, same operations per accumulator,
 * same tails): the results are bit-identical, which batches rely on.
 * The integer sums are exact whatever the grouping.  Q4_0 has no such
 * kernel: the same scheme ran slower than matvec per activation over
 * a cached tile (bench-multi, 1 thread, rows x activations/us at k=16:
 * 22 against 27): its cost is the per-activation dot and reduction,
 * which sharing the nibble unpacking does not touch.
 */
#define MULTI_MAX 16

/*
 * Activations go four at a time, each row once for every group while it
 * is in L1; K is a constant once inlined.  The accumulators are named
 * variables, not an array: an array indexed in a loop can stay in
 * memory, a store-to-load latency on every FMA.
 */
#define MULTI_GROUP 4

/* One activation's step of a Q8_0 group: ROW_Q8's (CORRECT) exactly. */
T_AVX512 INLINE __m128
q8_step(const __m256i *u, __m128 sc, struct kern_xq v, size_t b, __m128 acc)
{
	const int8_t *x = v.q + b * QK;
	__m256i h;
	__m128i s4;

	h = reduce_q8(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u[0],
	    ld256(x)), _mm256_dpbusd_epi32(_mm256_setzero_si256(), u[1],
	    ld256(x + QK)), _mm256_dpbusd_epi32(_mm256_setzero_si256(), u[2],
	    ld256(x + 2 * QK)), _mm256_dpbusd_epi32(_mm256_setzero_si256(),
	    u[3], ld256(x + 3 * QK)));
	s4 = _mm_add_epi32(_mm_add_epi32(_mm256_castsi256_si128(h),
	    _mm256_extracti128_si256(h, 1)), _mm_loadu_si128(
	    (const __m128i *)(v.c + b)));
	return _mm_fmadd_ps(_mm_cvtepi32_ps(s4), _mm_mul_ps(sc,
	    _mm_loadu_ps(v.d + b)), acc);
}

/* A Q8_0 row's end for one activation: ROW_Q8's reduction and tail. */
T_AVX512 INLINE float
tail_q8_avx512(const uint8_t *row, size_t b, size_t nb, struct kern_xq v,
    __m128 acc4)
{
	const uint8_t *p;
	float sum;

	/* Its zero 256-bit half too: 0 + -0 is +0. */
	sum = hsum_avx2(_mm256_add_ps(_mm256_setzero_ps(),
	    _mm256_set_m128(_mm_setzero_ps(), acc4)));
	for (; b < nb; b++) {
		p = row + b * Q8_BYTES;
		sum += tail_block(hsum_i32_avx2(block_q8_avx512(p, v.q + b *
		    QK)) + v.c[b], p, v.d[b]);
	}
	return sum;
}

T_AVX512 INLINE void
row_q8_group(const uint8_t *row, size_t nb, const struct kern_xq *v,
    const size_t K, float *const *y, size_t r)
{
	__m128 a0 = _mm_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, sc;
	__m256i u[4];
	const uint8_t *p;
	size_t b;
	int i;

	for (b = 0; b + 4 <= nb; b += 4) {
		p = row + b * Q8_BYTES;
		prefetch(p, 3);
		for (i = 0; i < 4; i++)
			u[i] = _mm256_xor_si256(ld256(p + (size_t)i * Q8_BYTES +
			    2), _mm256_set1_epi8(-128));
		sc = _mm256_castps256_ps128(scales_q8(p));
		a0 = q8_step(u, sc, v[0], b, a0);
		if (K > 1)
			a1 = q8_step(u, sc, v[1], b, a1);
		if (K > 2)
			a2 = q8_step(u, sc, v[2], b, a2);
		if (K > 3)
			a3 = q8_step(u, sc, v[3], b, a3);
	}
	y[0][r] = tail_q8_avx512(row, b, nb, v[0], a0);
	if (K > 1)
		y[1][r] = tail_q8_avx512(row, b, nb, v[1], a1);
	if (K > 2)
		y[2][r] = tail_q8_avx512(row, b, nb, v[2], a2);
	if (K > 3)
		y[3][r] = tail_q8_avx512(row, b, nb, v[3], a3);
}

/* Every row against every activation, four activations at a time. */
T_AVX512 static void
multi_q8_avx512(const uint8_t *w, size_t rb, size_t nb,
    const struct kern_xq *v, size_t k, float *const *y, size_t nrows)
{
	size_t r, a0;

	for (r = 0; r < nrows; r++) {
		for (a0 = 0; a0 + MULTI_GROUP <= k; a0 += MULTI_GROUP)
			row_q8_group(w + r * rb, nb, v + a0, MULTI_GROUP,
			    y + a0, r);
		switch (k - a0) {
		case 3: row_q8_group(w + r * rb, nb, v + a0, 3, y + a0, r);
			break;
		case 2: row_q8_group(w + r * rb, nb, v + a0, 2, y + a0, r);
			break;
		case 1: row_q8_group(w + r * rb, nb, v + a0, 1, y + a0, r);
			break;
		}
	}
}

T_AVX512 static int
matvec_multi_avx512(uint32_t wtype, const uint8_t *w, size_t rb, size_t n,
    const void *const *xq, size_t k, float *const *y, size_t nrows)
{
	struct kern_xq v[MULTI_MAX];
	size_t a;

	if (wtype != QT_Q8_0 || k > MULTI_MAX)
		return 0;
	for (a = 0; a < k; a++)
		v[a] = kern_xq_view(xq[a], wtype, n);
	multi_q8_avx512(w, rb, n / QK, v, k, y, nrows);
	return 1;
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

/*
 * Activation quantizers, 16 lanes at a time, giving the portable bytes:
 * vmaxps returns its second operand when either is NaN, which skips NaNs
 * in amax and sends them to the clamp's bound, where the ordered mask
 * zeroes them; vdivps and vcvtps2dq (nearest even) are the scalar
 * division and lrintf.
 *
 * 16 of x / d as int32 (the scalar rule), stored as int8 at q.
 */
T_AVX512 INLINE __m512i
quant16_avx512(__m512 v, __m512 vd, int8_t *q)
{
	__m512 t = _mm512_div_ps(v, vd);
	__mmask16 ord = _mm512_cmp_ps_mask(t, t, _CMP_ORD_Q);
	__m512i iq;

	t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-127.0f)),
	    _mm512_set1_ps(127.0f));
	iq = _mm512_maskz_cvtps_epi32(ord, t);
	_mm_storeu_si128((__m128i *)(void *)q, _mm512_cvtepi32_epi8(iq));
	return iq;
}

/* amax / 127 of nv vectors at x, NaNs skipped. */
T_AVX512 INLINE float
quant_scale_avx512(const float *x, int nv)
{
	__m512 m = _mm512_setzero_ps();
	int i;

	for (i = 0; i < nv; i++)
		m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * i)),
		    m);
	return _mm512_reduce_max_ps(m) / 127.0f;
}

/* kern_quant_row_portable's bytes. */
T_AVX512 static void
quant_row_avx512(const float *x, size_t nb, int8_t *q, float *d, int32_t *c,
    int32_t off)
{
	__m512 vd;
	__m512i s;
	size_t b;
	float db;

	for (b = 0; b < nb; b++, x += QK, q += QK) {
		d[b] = db = quant_scale_avx512(x, 2);
		if (db == 0.0f) {
			memset(q, 0, QK);
			c[b] = 0;
			continue;
		}
		vd = _mm512_set1_ps(db);
		s = quant16_avx512(_mm512_loadu_ps(x), vd, q);
		s = _mm512_add_epi32(s, quant16_avx512(_mm512_loadu_ps(x + 16),
		    vd, q + 16));
		c[b] = off * _mm512_reduce_add_epi32(s);
	}
}

/* kk_quant_portable's bytes: blocks of 256, a sum per 16. */
T_AVX512 static void
quant_k_avx512(const float *x, size_t n, int8_t *q, float *d, int16_t *s)
{
	__m512 vd;
	size_t b;
	float db;
	int i;

	for (b = 0; b < n / QK_K; b++, x += QK_K, q += QK_K, s += 16) {
		d[b] = db = quant_scale_avx512(x, QK_K / 16);
		if (db == 0.0f) {
			memset(q, 0, QK_K);
			memset(s, 0, 16 * sizeof *s);
			continue;
		}
		vd = _mm512_set1_ps(db);
		for (i = 0; i < QK_K / 16; i++)
			s[i] = (int16_t)_mm512_reduce_add_epi32(quant16_avx512(
			    _mm512_loadu_ps(x + 16 * i), vd, q + 16 * i));
	}
}

/*
 * kern_argmax_portable's index in two passes: the maximum (vmaxps keeps
 * its second operand, the running maximum, against a NaN), then the
 * first element equal to it, which is where the scalar loop stops
 * moving.  Sampling 8 sessions' 32000 logits was 1.7% of a step, run by
 * one thread while the other waited.
 */
T_AVX512 static size_t
argmax_avx512(const float *x, size_t n)
{
	__m512 m;
	__mmask16 k;
	float best;
	size_t i;

	if (n < 2 || x[0] != x[0])
		return 0;
	m = _mm512_set1_ps(x[0]);
	for (i = 0; i + 16 <= n; i += 16)
		m = _mm512_max_ps(_mm512_loadu_ps(x + i), m);
	best = _mm512_reduce_max_ps(m);
	for (; i < n; i++)
		best = x[i] > best ? x[i] : best;
	m = _mm512_set1_ps(best);
	for (i = 0; i + 16 <= n; i += 16) {
		k = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), m, _CMP_EQ_OQ);
		if (k != 0)
			return i + (size_t)__builtin_ctz(k);
	}
	for (; i < n && x[i] != best; i++)
		;
	return i < n ? i : 0;
}

const struct kern_impl kern_impl_avx2 = {
	matvec_avx2, kern_gemm_avx2, dot_avx2,
	kern_attn_avx2, kern_softmax_avx2, NULL, NULL, NULL, NULL, NULL,
};

const struct kern_impl kern_impl_avx512 = {
	matvec_avx512, kern_gemm_avx512, dot_avx512,
	kern_attn_avx512, kern_softmax_avx512, matvec_multi_avx512,
	quant_row_avx512, argmax_avx512, kern_silu_mul_avx512, quant_k_avx512,
};

#endif /* KERN_HAVE_X86 */
