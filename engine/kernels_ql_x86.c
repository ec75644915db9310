/*
 * kernels_ql_x86: AVX2 and AVX-512 matvec of the 32-element block types
 * Q4_1, Q5_0, Q5_1, IQ4_NL and IQ4_XS, in the manner of kernels_x86.c's
 * Q8_0 (which see for why rows go one at a time and blocks four at a
 * time): each block's 32 weights are expanded to 32 bytes in element
 * order, dotted against the activation's block into eight int32 lanes,
 * and four blocks are reduced together to their four block sums so that
 * one conversion and one FMA by (row scale * x scale) serve them.
 *
 * Expansion: nibbles become [low halves | high halves] with one shift;
 * the fifth bit of Q5 comes from qh by a byte shuffle and compare (AVX2)
 * or straight from a mask register (AVX-512); the IQ4 codebook is a byte
 * shuffle (pshufb) of the nibbles.  Linear values (0..31) are unsigned,
 * dotted with maddubs (AVX2, 2 * 31 * 127 cannot saturate) or dpbusd.
 * Codebook values are signed: AVX2 moves their signs onto x as for Q8_0;
 * AVX-512 shuffles from the codebook + 128 and lets the prepared c
 * (kernels_int.h) take 128 * sum(x) back out of each whole block sum.
 * Q4_1 and Q5_1 add their m * dx * s term from c = s in a separate
 * accumulator.
 */
#include "kernels_x86.h"

#ifdef KERN_HAVE_X86

#include "quant_ql.h"

#define PREFETCH_AHEAD 4096 /* as kernels_x86.c, measured there */

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

static inline uint32_t
ld_u32(const uint8_t *p)
{
	uint32_t u;

	memcpy(&u, p, sizeof u);
	return u;
}

T_AVX2 INLINE float
hsum_ps(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v),
	    _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

T_AVX2 INLINE int32_t
hsum_i32(__m256i v)
{
	__m128i s = _mm_add_epi32(_mm256_castsi256_si128(v),
	    _mm256_extracti128_si256(v, 1));

	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
	return _mm_cvtsi128_si32(s);
}

T_AVX2 INLINE __m256i
reduce4(__m256i a, __m256i b, __m256i c, __m256i d)
{
	return _mm256_hadd_epi32(_mm256_hadd_epi32(a, b),
	    _mm256_hadd_epi32(c, d));
}

/* The fp16 at p, p + bs, p + 2 bs, p + 3 bs as four floats. */
T_AVX2 INLINE __m128
halves4(const uint8_t *p, size_t bs)
{
	uint64_t h;

	h = ld_u16(p) | ld_u16(p + bs) << 16 | ld_u16(p + 2 * bs) << 32 |
	    ld_u16(p + 3 * bs) << 48;
	return _mm_cvtph_ps(_mm_set1_epi64x((long long)h));
}

/* 16 bytes of nibbles as 32 bytes 0..15 in element order. */
T_AVX2 INLINE __m256i
nibbles(const uint8_t *q)
{
	__m128i v = ld128(q);

	return _mm256_and_si256(_mm256_inserti128_si256(
	    _mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1),
	    _mm256_set1_epi8(15));
}

/* 16 at byte j where bit j of qh is set. */
T_AVX2 INLINE __m256i
bit5_avx2(uint32_t qh)
{
	const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0,
	    1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2,
	    3, 3, 3, 3, 3, 3, 3, 3);
	const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
	__m256i t = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), sel);

	t = _mm256_cmpeq_epi8(_mm256_and_si256(t, bit), bit);
	return _mm256_and_si256(t, _mm256_set1_epi8(16));
}

T_AVX512 INLINE __m256i
bit5_avx512(uint32_t qh)
{
	return _mm256_maskz_mov_epi8((__mmask32)qh, _mm256_set1_epi8(16));
}

T_AVX2 INLINE __m256i
dot_u_avx2(__m256i w, const int8_t *x)
{
	return _mm256_madd_epi16(_mm256_maddubs_epi16(w, ld256(x)),
	    _mm256_set1_epi16(1));
}

T_AVX512 INLINE __m256i
dot_u_avx512(__m256i w, const int8_t *x)
{
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, ld256(x));
}

/* Unsigned values: Q4_1 nibbles, Q5_0 / Q5_1 nibbles + fifth bit. */
T_AVX2 INLINE __m256i
blk_q4_1_avx2(const uint8_t *p, const int8_t *x)
{
	return dot_u_avx2(nibbles(p + 4), x);
}

T_AVX512 INLINE __m256i
blk_q4_1_avx512(const uint8_t *p, const int8_t *x)
{
	return dot_u_avx512(nibbles(p + 4), x);
}

T_AVX2 INLINE __m256i
blk_q5_0_avx2(const uint8_t *p, const int8_t *x)
{
	return dot_u_avx2(_mm256_or_si256(nibbles(p + 6),
	    bit5_avx2(ld_u32(p + 2))), x);
}

T_AVX512 INLINE __m256i
blk_q5_0_avx512(const uint8_t *p, const int8_t *x)
{
	return dot_u_avx512(_mm256_or_si256(nibbles(p + 6),
	    bit5_avx512(ld_u32(p + 2))), x);
}

T_AVX2 INLINE __m256i
blk_q5_1_avx2(const uint8_t *p, const int8_t *x)
{
	return dot_u_avx2(_mm256_or_si256(nibbles(p + 8),
	    bit5_avx2(ld_u32(p + 4))), x);
}

T_AVX512 INLINE __m256i
blk_q5_1_avx512(const uint8_t *p, const int8_t *x)
{
	return dot_u_avx512(_mm256_or_si256(nibbles(p + 8),
	    bit5_avx512(ld_u32(p + 4))), x);
}

/* Codebook values at the nibbles q[16]: signed for AVX2, + 128 for VNNI. */
T_AVX2 INLINE __m256i
iq4_avx2(const uint8_t *q, const int8_t *x)
{
	const __m256i k = _mm256_broadcastsi128_si256(ld128(quant_iq4_values));
	__m256i w = _mm256_shuffle_epi8(k, nibbles(q));

	return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w),
	    _mm256_sign_epi8(ld256(x), w)), _mm256_set1_epi16(1));
}

T_AVX512 INLINE __m256i
iq4_avx512(const uint8_t *q, const int8_t *x)
{
	const __m256i k = _mm256_xor_si256(_mm256_broadcastsi128_si256(
	    ld128(quant_iq4_values)), _mm256_set1_epi8(-128));

	return dot_u_avx512(_mm256_shuffle_epi8(k, nibbles(q)), x);
}

T_AVX2 INLINE __m256i
blk_iq4_nl_avx2(const uint8_t *p, const int8_t *x)
{
	return iq4_avx2(p + 2, x);
}

T_AVX512 INLINE __m256i
blk_iq4_nl_avx512(const uint8_t *p, const int8_t *x)
{
	return iq4_avx512(p + 2, x);
}

/*
 * One row of 32-element blocks of BS bytes, fp16 d first (and m next when
 * HAS_M).  The half sums of four blocks fold into their four exact block
 * sums (CORRECT: plus c) before anything is scaled.
 */
#define ROW_QL(BS, BLOCK, CORRECT, HAS_M) do {				\
	__m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps(), dx;	\
	const uint8_t *p;						\
	const int8_t *x;						\
	__m128i s4;							\
	__m256i h;							\
	size_t b;							\
	float sum;							\
	int32_t s;							\
									\
	for (b = 0; b + 4 <= nb; b += 4) {				\
		p = row + b * (BS);					\
		x = v.q + b * QK;					\
		prefetch(p, 2);						\
		h = reduce4(BLOCK(p, x), BLOCK(p + (BS), x + QK),	\
		    BLOCK(p + 2 * (BS), x + 2 * QK),			\
		    BLOCK(p + 3 * (BS), x + 3 * QK));			\
		s4 = _mm_add_epi32(_mm256_castsi256_si128(h),		\
		    _mm256_extracti128_si256(h, 1));			\
		if (CORRECT)						\
			s4 = _mm_add_epi32(s4, ld128(v.c + b));		\
		dx = _mm_loadu_ps(v.d + b);				\
		acc = _mm_fmadd_ps(_mm_cvtepi32_ps(s4),			\
		    _mm_mul_ps(halves4(p, (BS)), dx), acc);		\
		if (HAS_M)						\
			accm = _mm_fmadd_ps(_mm_cvtepi32_ps(ld128(v.c + b)),\
			    _mm_mul_ps(halves4(p + 2, (BS)), dx), accm);\
	}								\
	sum = hsum_ps(_mm256_set_m128(accm, acc));			\
	for (; b < nb; b++) {						\
		p = row + b * (BS);					\
		s = hsum_i32(BLOCK(p, v.q + b * QK)) +			\
		    (CORRECT ? v.c[b] : 0);				\
		sum += (float)s * (fp16_to_f32((uint16_t)ld_u16(p)) *	\
		    v.d[b]);						\
		if (HAS_M)						\
			sum += (float)v.c[b] * (fp16_to_f32(		\
			    (uint16_t)ld_u16(p + 2)) * v.d[b]);		\
	}								\
	return sum;							\
} while (0)

/*
 * IQ4_XS: a super-block's eight 6-bit scales come out of sh and sl with
 * variable shifts, as eight floats d * (s - 32) in sub-block order; the
 * two groups of four sub-blocks reduce to [0 1 2 3 | 0 1 2 3] and
 * [4 5 6 7 | 4 5 6 7], folded into [0 .. 7] for one FMA.
 */
T_AVX2 INLINE __m256
xs_scales(const uint8_t *p)
{
	__m256i hi = _mm256_srlv_epi32(_mm256_set1_epi32((int)ld_u16(p + 2)),
	    _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
	__m256i lo = _mm256_srlv_epi32(_mm256_set1_epi32((int)ld_u32(p + 4)),
	    _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
	__m256i s = _mm256_or_si256(_mm256_and_si256(lo,
	    _mm256_set1_epi32(15)), _mm256_slli_epi32(_mm256_and_si256(hi,
	    _mm256_set1_epi32(3)), 4));

	/* d by F16C, broadcast: fp16_to_f32 is a call into quant.c. */
	return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(s,
	    _mm256_set1_epi32(32))), _mm256_cvtph_ps(_mm_set1_epi16(
	    (short)ld_u16(p))));
}

#define XS_BYTES 136

#define ROW_XS(IQ4, CORRECT) do {					\
	__m256 acc = _mm256_setzero_ps();				\
	const uint8_t *p, *q;						\
	const int8_t *x;						\
	__m256i h0, h1, h;						\
	size_t b;							\
									\
	for (b = 0; b < nb; b += 8) {					\
		p = row + b / 8 * XS_BYTES;				\
		q = p + 8;						\
		x = v.q + b * QK;					\
		prefetch(p, 3);						\
		h0 = reduce4(IQ4(q, x), IQ4(q + 16, x + QK),		\
		    IQ4(q + 32, x + 2 * QK), IQ4(q + 48, x + 3 * QK));	\
		h1 = reduce4(IQ4(q + 64, x + 4 * QK),			\
		    IQ4(q + 80, x + 5 * QK), IQ4(q + 96, x + 6 * QK),	\
		    IQ4(q + 112, x + 7 * QK));				\
		h = _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1,	\
		    0x20), _mm256_permute2x128_si256(h0, h1, 0x31));	\
		if (CORRECT)						\
			h = _mm256_add_epi32(h, ld256(v.c + b));	\
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h),		\
		    _mm256_mul_ps(xs_scales(p), _mm256_loadu_ps(v.d + b)),\
		    acc);						\
	}								\
	return hsum_ps(acc);						\
} while (0)

T_AVX2 INLINE float
row_q4_1_avx2(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_QL(20, blk_q4_1_avx2, 0, 1);
}

T_AVX2 INLINE float
row_q5_0_avx2(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_QL(22, blk_q5_0_avx2, 1, 0);
}

T_AVX2 INLINE float
row_q5_1_avx2(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_QL(24, blk_q5_1_avx2, 0, 1);
}

T_AVX2 INLINE float
row_iq4_nl_avx2(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_QL(18, blk_iq4_nl_avx2, 0, 0);
}

T_AVX2 INLINE float
row_iq4_xs_avx2(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_XS(iq4_avx2, 0);
}

T_AVX512 INLINE float
row_q4_1_avx512(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_QL(20, blk_q4_1_avx512, 0, 1);
}

T_AVX512 INLINE float
row_q5_0_avx512(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_QL(22, blk_q5_0_avx512, 1, 0);
}

T_AVX512 INLINE float
row_q5_1_avx512(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_QL(24, blk_q5_1_avx512, 0, 1);
}

T_AVX512 INLINE float
row_iq4_nl_avx512(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_QL(18, blk_iq4_nl_avx512, 1, 0);
}

T_AVX512 INLINE float
row_iq4_xs_avx512(const uint8_t *row, size_t nb, struct kern_xq v)
{
	ROW_XS(iq4_avx512, 1);
}

/*
 * Block b of a row as 32 bytes in element order, for the GEMM's repacking
 * (kernels_gemm_ql_x86.c): linear values unsigned (Q5_0 with its +16),
 * codebook values + 128 (AVX-512) or signed with their magnitudes in
 * mag (AVX2).  Returns the block's scale (IQ4_XS: its sub-block's).
 */
T_AVX512 float
kern_ql_expand_avx512(uint32_t wtype, const uint8_t *row, size_t b,
    uint8_t *out)
{
	const __m256i k = _mm256_xor_si256(_mm256_broadcastsi128_si256(
	    ld128(quant_iq4_values)), _mm256_set1_epi8(-128));
	const uint8_t *p;
	__m256i v;
	float d;

	switch (wtype) {
	case QT_Q4_1:
		p = row + b * 20;
		v = nibbles(p + 4);
		break;
	case QT_Q5_0:
		p = row + b * 22;
		v = _mm256_or_si256(nibbles(p + 6), bit5_avx512(ld_u32(p + 2)));
		break;
	case QT_Q5_1:
		p = row + b * 24;
		v = _mm256_or_si256(nibbles(p + 8), bit5_avx512(ld_u32(p + 4)));
		break;
	case QT_IQ4_NL:
		p = row + b * 18;
		v = _mm256_shuffle_epi8(k, nibbles(p + 2));
		break;
	default: /* IQ4_XS */
		p = row + b / 8 * XS_BYTES;
		d = fp16_to_f32((uint16_t)ld_u16(p)) * (float)(quant_xs_scale(
		    (const struct block_iq4_xs *)(const void *)p,
		    (int)(b % 8)) - 32);
		_mm256_storeu_si256((__m256i *)(void *)out,
		    _mm256_shuffle_epi8(k, nibbles(p + 8 + b % 8 * 16)));
		return d;
	}
	_mm256_storeu_si256((__m256i *)(void *)out, v);
	return fp16_to_f32((uint16_t)ld_u16(p));
}

T_AVX2 float
kern_ql_expand_avx2(uint32_t wtype, const uint8_t *row, size_t b,
    uint8_t *out, uint8_t *mag)
{
	const __m256i k = _mm256_broadcastsi128_si256(ld128(quant_iq4_values));
	const uint8_t *p;
	__m256i v;
	float d;

	switch (wtype) {
	case QT_Q4_1:
		p = row + b * 20;
		v = nibbles(p + 4);
		break;
	case QT_Q5_0:
		p = row + b * 22;
		v = _mm256_or_si256(nibbles(p + 6), bit5_avx2(ld_u32(p + 2)));
		break;
	case QT_Q5_1:
		p = row + b * 24;
		v = _mm256_or_si256(nibbles(p + 8), bit5_avx2(ld_u32(p + 4)));
		break;
	case QT_IQ4_NL:
		p = row + b * 18;
		v = _mm256_shuffle_epi8(k, nibbles(p + 2));
		_mm256_storeu_si256((__m256i *)(void *)mag,
		    _mm256_abs_epi8(v));
		break;
	default: /* IQ4_XS */
		p = row + b / 8 * XS_BYTES;
		d = fp16_to_f32((uint16_t)ld_u16(p)) * (float)(quant_xs_scale(
		    (const struct block_iq4_xs *)(const void *)p,
		    (int)(b % 8)) - 32);
		v = _mm256_shuffle_epi8(k, nibbles(p + 8 + b % 8 * 16));
		_mm256_storeu_si256((__m256i *)(void *)mag,
		    _mm256_abs_epi8(v));
		_mm256_storeu_si256((__m256i *)(void *)out, v);
		return d;
	}
	_mm256_storeu_si256((__m256i *)(void *)out, v);
	return fp16_to_f32((uint16_t)ld_u16(p));
}

/* One specialized loop per type, rows one at a time. */
#define MATVEC_QL(ISA) do {						\
	struct kern_xq v = kern_xq_view(xq, wtype, n);			\
	size_t r, nb = n / QK;						\
									\
	switch (wtype) {						\
	case QT_Q4_1:							\
		for (r = 0; r < nrows; r++)				\
			y[r] = row_q4_1_##ISA(w + r * rb, nb, v);	\
		return 1;						\
	case QT_Q5_0:							\
		for (r = 0; r < nrows; r++)				\
			y[r] = row_q5_0_##ISA(w + r * rb, nb, v);	\
		return 1;						\
	case QT_Q5_1:							\
		for (r = 0; r < nrows; r++)				\
			y[r] = row_q5_1_##ISA(w + r * rb, nb, v);	\
		return 1;						\
	case QT_IQ4_NL:							\
		for (r = 0; r < nrows; r++)				\
			y[r] = row_iq4_nl_##ISA(w + r * rb, nb, v);	\
		return 1;						\
	case QT_IQ4_XS:							\
		for (r = 0; r < nrows; r++)				\
			y[r] = row_iq4_xs_##ISA(w + r * rb, nb, v);	\
		return 1;						\
	}								\
	return 0;							\
} while (0)

T_AVX2 int
kern_ql_matvec_avx2(uint32_t wtype, const uint8_t *w, size_t rb, size_t n,
    const void *xq, float *y, size_t nrows)
{
	MATVEC_QL(avx2);
}

T_AVX512 int
kern_ql_matvec_avx512(uint32_t wtype, const uint8_t *w, size_t rb,
    size_t n, const void *xq, float *y, size_t nrows)
{
	MATVEC_QL(avx512);
}

#endif /* KERN_HAVE_X86 */
