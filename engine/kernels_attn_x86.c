/*
 * kernels_attn_x86: the AVX2 and AVX-512 versions of kern_attn, with
 * the vectorized softmax they use, and the gate's SiLU on AVX-512 (the
 * same exp).  Compiled per function with target attributes like
 * kernels_x86.c, whose ISA tables point here.
 */
#include "kernels_x86.h"

#ifdef KERN_HAVE_X86

/*
 * Attention (kern_attn).  Each key row is loaded once and dotted with up
 * to four queries at a time; their four partial-sum vectors are reduced
 * together to one vector of four scores.  Then, a vector of hd at a time,
 * each value row is loaded once and accumulated into up to eight queries'
 * outputs held in registers.  K and V are read once per call, whatever
 * n_q; q, the scores and the outputs stay in L1.
 *
 * The loops ask for the row ATTN_AHEAD ahead.  That halved attention
 * time when the cache stored rows token-major (a head's part a few lines
 * out of every kv_stride floats); with kv.c's head-major rows it is
 * worth little but still no loss (TinyLlama Q4_0, one thread, 2000 tokens
 * of context: 25.0 tok/s median with it, 24.3 without).
 *
 * Each span (the cache's sinks, its window) has its own queries, and
 * rows may be f32 or f16 (converted as they are loaded).
 */
#define ATTN_QK 4 /* queries per key-row pass */
#define ATTN_PV 8 /* queries per value-row pass */
#define ATTN_AHEAD 16

/* Prefetches bytes [c, c + n) of row j + ATTN_AHEAD of m, if any. */
INLINE void
attn_prefetch(const void *m, size_t stride, size_t len, size_t j, size_t c,
    size_t n)
{
	const char *p;
	size_t b;

	if (j + ATTN_AHEAD >= len)
		return;
	p = (const char *)m + (j + ATTN_AHEAD) * stride + c;
	for (b = 0; b < n; b += 64)
		_mm_prefetch(p + b, _MM_HINT_T0);
}

/* [sum a, sum b, sum c, sum d] */
T_AVX2 INLINE __m128
reduce4_avx2(__m256 a, __m256 b, __m256 c, __m256 d)
{
	__m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));

	return _mm_add_ps(_mm256_castps256_ps128(t),
	    _mm256_extractf128_ps(t, 1));
}

T_AVX2 INLINE __m256i
mask_avx2(size_t left)
{
	return _mm256_cmpgt_epi32(_mm256_set1_epi32(left < 8 ? (int)left : 8),
	    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Stores scale * r[i] as query i0 + i's score of (all-span) row col. */
INLINE void
put_scores(const struct kern_attn_args *a, size_t i0, size_t col, __m128 r,
    const int nq)
{
	float f[4];
	int i;

	memcpy(f, &r, sizeof f);
	for (i = 0; i < nq; i++)
		a->scores[(i0 + (size_t)i) * a->len + col] = f[i] * a->scale;
}

/* Elements [off, off + min(left, 8)) of a row of f32 or f16. */
T_AVX2 INLINE __m256
load8_avx2(const void *row, size_t off, size_t left, const int f16)
{
	uint16_t t[8];

	if (!f16)
		return _mm256_maskload_ps((const float *)row + off,
		    mask_avx2(left));
	if (left >= 8)
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(
		    (const uint16_t *)row + off)));
	memset(t, 0, sizeof t);
	memcpy(t, (const uint16_t *)row + off, left * sizeof(uint16_t));
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)t));
}

/* The bytes of one K or V row. */
INLINE size_t
row_bytes(const struct kern_attn_args *a, const int f16)
{
	return a->kv_stride * (f16 ? sizeof(uint16_t) : sizeof(float));
}

INLINE const void *
row_at(const struct kern_attn_args *a, const void *m, size_t j, const int f16)
{
	return (const char *)m + j * row_bytes(a, f16);
}

T_AVX2 INLINE void
qk_avx2(const struct kern_attn_args *a, size_t i0,
    const struct kern_attn_span *sp, size_t col, size_t j, const int f16,
    const int nq)
{
	const void *kr = row_at(a, sp->k, j, f16);
	const float *q = sp->q + i0 * a->q_stride;
	__m256 acc[ATTN_QK], kc;
	__m256i m;
	size_t c;
	int i;

	for (i = 0; i < ATTN_QK; i++)
		acc[i] = _mm256_setzero_ps();
	for (c = 0; c < a->hd; c += 8) {
		m = mask_avx2(a->hd - c);
		kc = load8_avx2(kr, c, a->hd - c, f16);
#pragma GCC unroll 8
		for (i = 0; i < nq; i++)
			acc[i] = _mm256_fmadd_ps(kc, _mm256_maskload_ps(q +
			    (size_t)i * a->q_stride + c, m), acc[i]);
	}
	put_scores(a, i0, col + j, reduce4_avx2(acc[0], acc[1], acc[2],
	    acc[3]), nq);
}

T_AVX2 INLINE void
pv_avx2(const struct kern_attn_args *a, size_t i0, size_t c, const int f16,
    const int nq)
{
	const struct kern_attn_span *sp;
	const float *p;
	__m256 acc[ATTN_PV], vj;
	size_t j, s, col;
	int i;

#pragma GCC unroll 8
	for (i = 0; i < nq; i++)
		acc[i] = _mm256_setzero_ps();
	for (s = 0, col = 0; s < a->n_span; col += a->span[s++].len) {
		sp = &a->span[s];
		p = a->scores + i0 * a->len + col;
		for (j = 0; j < sp->len; j++) {
			attn_prefetch(sp->v, row_bytes(a, f16), sp->len, j,
			    c * (f16 ? 2 : 4), 1);
			vj = load8_avx2(row_at(a, sp->v, j, f16), c, a->hd - c,
			    f16);
#pragma GCC unroll 8
			for (i = 0; i < nq; i++)
				acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(p +
				    (size_t)i * a->len + j), vj, acc[i]);
		}
	}
#pragma GCC unroll 8
	for (i = 0; i < nq; i++)
		_mm256_maskstore_ps(a->out + (i0 + (size_t)i) * a->out_stride +
		    c, mask_avx2(a->hd - c), acc[i]);
}

/* The passes for a runtime number of queries, as fixed-size groups. */
#define ATTN_GROUPS(F, MAX, ...) do {					\
	size_t i0_, n_;							\
									\
	for (i0_ = 0; i0_ < a->n_q; i0_ += n_) {			\
		n_ = a->n_q - i0_;					\
		n_ = n_ >= MAX ? MAX : n_ >= 4 ? 4 : n_;		\
		if (n_ == MAX)						\
			F(a, i0_, __VA_ARGS__, MAX);			\
		else if (n_ == 4)					\
			F(a, i0_, __VA_ARGS__, 4);			\
		else if (n_ == 3)					\
			F(a, i0_, __VA_ARGS__, 3);			\
		else if (n_ == 2)					\
			F(a, i0_, __VA_ARGS__, 2);			\
		else							\
			F(a, i0_, __VA_ARGS__, 1);			\
	}								\
} while (0)

T_AVX512 INLINE __mmask16
mask_avx512(size_t left)
{
	return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/*
 * exp(x) for x <= 0, as in the softmax after subtracting the max: x =
 * n ln2 + r with |r| <= ln2 / 2 (ln2 split in two so n ln2 is exact
 * enough), e^r by its Taylor series to r^7 (truncation under 6e-9), times
 * 2^n.  Below -87, where e^x nears the smallest normal float, it returns
 * about e^-87 instead: nothing next to the max's weight of 1.  Measured
 * against double exp on every third float in [-87, 0]: under 1 ulp.
 */
#define EXP_MIN (-87.0f)
#define EXP_LOG2E 1.44269504f
#define EXP_LN2_HI 0.693145751953125f
#define EXP_LN2_LO 1.428606765330187e-06f
#define EXP_POLY(FMA, SET, r) FMA(FMA(FMA(FMA(FMA(FMA(FMA(SET(1.0f / 5040),\
	r, SET(1.0f / 720)), r, SET(1.0f / 120)), r, SET(1.0f / 24)), r,	\
	SET(1.0f / 6)), r, SET(0.5f)), r, SET(1.0f)), r, SET(1.0f))

T_AVX2 INLINE __m256
exp_avx2(__m256 x)
{
	__m256 n, r;

	x = _mm256_max_ps(_mm256_set1_ps(EXP_MIN), x);
	n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXP_LOG2E)),
	    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), r);
	return _mm256_mul_ps(EXP_POLY(_mm256_fmadd_ps, _mm256_set1_ps, r),
	    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(
	    _mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23)));
}

T_AVX512 INLINE __m512
exp_avx512(__m512 x)
{
	__m512 n, r;

	x = _mm512_max_ps(_mm512_set1_ps(EXP_MIN), x);
	n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EXP_LOG2E)),
	    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), r);
	return _mm512_scalef_ps(EXP_POLY(_mm512_fmadd_ps, _mm512_set1_ps, r),
	    n);
}

/* kern_softmax_rows, eight lanes at a time. */
T_AVX2 void
kern_softmax_avx2(float *scores, size_t n_q, size_t len)
{
	__m256 mx, sum, e;
	__m256i m;
	float *s;
	size_t i, j;

	for (i = 0; i < n_q; i++) {
		s = scores + i * len;
		mx = _mm256_set1_ps(s[0]);
		for (j = 0; j < len; j += 8)
			mx = _mm256_max_ps(mx, _mm256_maskload_ps(s + j,
			    mask_avx2(len - j)));
		mx = _mm256_max_ps(mx, _mm256_permute2f128_ps(mx, mx, 1));
		mx = _mm256_max_ps(mx, _mm256_permute_ps(mx, 0x4e));
		mx = _mm256_max_ps(mx, _mm256_permute_ps(mx, 0xb1));
		sum = _mm256_setzero_ps();
		for (j = 0; j < len; j += 8) {
			m = mask_avx2(len - j);
			e = _mm256_and_ps(exp_avx2(_mm256_sub_ps(
			    _mm256_maskload_ps(s + j, m), mx)),
			    _mm256_castsi256_ps(m));
			sum = _mm256_add_ps(sum, e);
			_mm256_maskstore_ps(s + j, m, e);
		}
		sum = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_set1_ps(
		    _mm_cvtss_f32(reduce4_avx2(sum, sum, sum, sum))));
		for (j = 0; j < len; j += 8) {
			m = mask_avx2(len - j);
			_mm256_maskstore_ps(s + j, m, _mm256_mul_ps(sum,
			    _mm256_maskload_ps(s + j, m)));
		}
	}
}

T_AVX512 void
kern_softmax_avx512(float *scores, size_t n_q, size_t len)
{
	__m512 mx, sum, e;
	__mmask16 m;
	float *s, inv;
	size_t i, j;

	for (i = 0; i < n_q; i++) {
		s = scores + i * len;
		mx = _mm512_set1_ps(s[0]);
		for (j = 0; j < len; j += 16)
			mx = _mm512_mask_max_ps(mx, mask_avx512(len - j), mx,
			    _mm512_maskz_loadu_ps(mask_avx512(len - j), s + j));
		mx = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
		sum = _mm512_setzero_ps();
		for (j = 0; j < len; j += 16) {
			m = mask_avx512(len - j);
			e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m,
			    s + j), mx));
			sum = _mm512_mask_add_ps(sum, m, sum, e);
			_mm512_mask_storeu_ps(s + j, m, e);
		}
		inv = 1.0f / _mm512_reduce_add_ps(sum);
		for (j = 0; j < len; j += 16) {
			m = mask_avx512(len - j);
			_mm512_mask_storeu_ps(s + j, m, _mm512_mul_ps(
			    _mm512_set1_ps(inv), _mm512_maskz_loadu_ps(m, s + j)));
		}
	}
}

/*
 * kern_silu_mul: g = g / (1 + e^-g) * u as the portable loop writes it,
 * e^-g by exp_avx512, whose scalef is right above 0 too (e^-g overflows
 * to inf below g = -88.7, and g / inf is -0 as with expf).  Within a few
 * ulp of the libm loop (test_silu_mul); expf per element was 4% of an
 * 8-session decode step.
 */
T_AVX512 void
kern_silu_mul_avx512(float *g, const float *u, size_t n)
{
	const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
	__m512 x, e;
	__mmask16 m;
	size_t i;

	for (i = 0; i < n; i += 16) {
		m = mask_avx512(n - i);
		x = _mm512_maskz_loadu_ps(m, g + i);
		e = exp_avx512(_mm512_castsi512_ps(_mm512_xor_si512(
		    _mm512_castps_si512(x), sign)));
		x = _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(
		    _mm512_set1_ps(1.0f), e)), _mm512_maskz_loadu_ps(m, u + i));
		_mm512_mask_storeu_ps(g + i, m, x);
	}
}

/* Scores of every span's rows, softmax, then the values. */
#define ATTN_BODY(QK, PV, SOFTMAX, VEC, f16) do {			\
	const struct kern_attn_span *sp_;				\
	size_t s_, col_, j_, c_;					\
									\
	for (s_ = 0, col_ = 0; s_ < a->n_span; col_ += sp_->len, s_++) {\
		sp_ = &a->span[s_];					\
		for (j_ = 0; j_ < sp_->len; j_++) {			\
			attn_prefetch(sp_->k, row_bytes(a, f16),	\
			    sp_->len, j_, 0, a->hd * (f16 ? 2 : 4));	\
			ATTN_GROUPS(QK, ATTN_QK, sp_, col_, j_, f16);	\
		}							\
	}								\
	if (a->softcap > 0.0f)						\
		kern_softcap(a->scores, a->n_q * a->len, a->softcap);	\
	SOFTMAX(a->scores, a->n_q, a->len);				\
	for (c_ = 0; c_ < a->hd; c_ += VEC)				\
		ATTN_GROUPS(PV, ATTN_PV, c_, f16);			\
} while (0)

T_AVX2 void
kern_attn_avx2(const struct kern_attn_args *a)
{
	if (a->kv_f16)
		ATTN_BODY(qk_avx2, pv_avx2, kern_softmax_avx2, 8, 1);
	else
		ATTN_BODY(qk_avx2, pv_avx2, kern_softmax_avx2, 8, 0);
}

T_AVX512 INLINE __m256
fold_avx512(__m512 v)
{
	return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(
	    _mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* Elements [off, off + 16) under mask m of a row of f32 or f16. */
T_AVX512 INLINE __m512
load16_avx512(const void *row, size_t off, __mmask16 m, const int f16)
{
	if (f16)
		return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m,
		    (const uint16_t *)row + off));
	return _mm512_maskz_loadu_ps(m, (const float *)row + off);
}

T_AVX512 INLINE void
qk_avx512(const struct kern_attn_args *a, size_t i0,
    const struct kern_attn_span *sp, size_t col, size_t j, const int f16,
    const int nq)
{
	const void *kr = row_at(a, sp->k, j, f16);
	const float *q = sp->q + i0 * a->q_stride;
	__m512 acc[ATTN_QK], kc;
	__mmask16 m;
	size_t c;
	int i;

	for (i = 0; i < ATTN_QK; i++)
		acc[i] = _mm512_setzero_ps();
	for (c = 0; c < a->hd; c += 16) {
		m = mask_avx512(a->hd - c);
		kc = load16_avx512(kr, c, m, f16);
#pragma GCC unroll 8
		for (i = 0; i < nq; i++)
			acc[i] = _mm512_fmadd_ps(kc, _mm512_maskz_loadu_ps(m,
			    q + (size_t)i * a->q_stride + c), acc[i]);
	}
	put_scores(a, i0, col + j, reduce4_avx2(fold_avx512(acc[0]),
	    fold_avx512(acc[1]), fold_avx512(acc[2]), fold_avx512(acc[3])), nq);
}

T_AVX512 INLINE void
pv_avx512(const struct kern_attn_args *a, size_t i0, size_t c, const int f16,
    const int nq)
{
	const struct kern_attn_span *sp;
	__mmask16 m = mask_avx512(a->hd - c);
	const float *p;
	__m512 acc[ATTN_PV], vj;
	size_t j, s, col;
	int i;

#pragma GCC unroll 8
	for (i = 0; i < nq; i++)
		acc[i] = _mm512_setzero_ps();
	for (s = 0, col = 0; s < a->n_span; col += a->span[s++].len) {
		sp = &a->span[s];
		p = a->scores + i0 * a->len + col;
		for (j = 0; j < sp->len; j++) {
			attn_prefetch(sp->v, row_bytes(a, f16), sp->len, j,
			    c * (f16 ? 2 : 4), 1);
			vj = load16_avx512(row_at(a, sp->v, j, f16), c, m, f16);
#pragma GCC unroll 8
			for (i = 0; i < nq; i++)
				acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(p[
				    (size_t)i * a->len + j]), vj, acc[i]);
		}
	}
#pragma GCC unroll 8
	for (i = 0; i < nq; i++)
		_mm512_mask_storeu_ps(a->out + (i0 + (size_t)i) * a->out_stride +
		    c, m, acc[i]);
}

T_AVX512 void
kern_attn_avx512(const struct kern_attn_args *a)
{
	if (a->kv_f16)
		ATTN_BODY(qk_avx512, pv_avx512, kern_softmax_avx512, 16, 1);
	else
		ATTN_BODY(qk_avx512, pv_avx512, kern_softmax_avx512, 16, 0);
}

#endif /* KERN_HAVE_X86 */
