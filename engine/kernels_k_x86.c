/*
 * kernels_k_x86: AVX2 and AVX-512 kernels for K-quant weights: decode
 * (matvec) and prefill (integer GEMM).  Every type is first decoded, in
 * registers, into the unpacked form of quant_k.h: eight vectors of 32
 * unsigned codes in element order, 16 group scales and 16 group mins as
 * bytes; one dot product then serves all five types (kernels_k.h gives
 * the integer sums it computes).  Functions are compiled per ISA with
 * target attributes, as in kernels_x86.c.
 *
 * matvec: per block, maddubs (unsigned codes times signed x; codes < 64
 * so pairs never saturate) and madd by the group scales, broadcast per
 * 16-element half of a vector; the mins or offsets come from the
 * activation's 16-sums in one more madd.  The AVX-512 build runs it for
 * Q2_K and Q3_K only; Q4_K, Q5_K and Q6_K have 512-bit VNNI rows of their
 * own (row_q45_512, row_q6_512): at 2 threads decode is not purely bound
 * by memory, the kernel's cost per block shows in tokens/s.
 *
 * GEMM: as in kernels_gemm_x86.c, a panel of L rows (16 lanes of a zmm,
 * 8 of a ymm) is repacked a few blocks at a time: per block the rows' D
 * and M, per group their scales, per pair of groups their mins as two
 * int16, then 64 steps of four codes per row.  A step against a token's
 * matching four bytes (broadcast) advances every row's group sum; the
 * group sums are scaled per lane (VNNI dpbusd then a 32-bit multiply;
 * AVX2 maddubs then madd by an int16 scale pair) into one block sum per
 * row, so nothing is reduced horizontally.
 */
#include "kernels_k.h"
#include "kernels_x86.h"

#ifdef KERN_HAVE_X86

#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 4096
#endif
#ifndef KK_PF_ROWS
#define KK_PF_ROWS 1
#endif
#ifndef PREFETCH_HINT
#define PREFETCH_HINT _MM_HINT_NTA
#endif

T_AVX2 INLINE __m128i
ld128(const void *p)
{
	return _mm_loadu_si128((const __m128i *)p);
}

T_AVX2 INLINE __m256i
splat8(int v)
{
	return _mm256_set1_epi8((char)v);
}

/*
 * Bits [from, from + w) of every byte moved to [to, to + w) and the rest
 * cleared (mask); 16-bit shifts carry nothing into the kept bits.
 */
T_AVX2 INLINE __m256i
bits_to(__m256i v, int from, int to, int mask)
{
	if (from > to)
		v = _mm256_srli_epi16(v, from - to);
	else if (to > from)
		v = _mm256_slli_epi16(v, to - from);
	return _mm256_and_si256(v, splat8(mask));
}

/* A block in registers: codes of elements 32i.., group scales, mins. */
struct kdec {
	__m256i u[8];
	__m128i sc; /* int8, group g = e / 16 */
	__m128i mn; /* uint8 mins (Q2_K, Q4_K, Q5_K) */
	float D, M;
};

/* Block bytes and kernels_k.h's "joint" types, as compile-time constants. */
static inline size_t
kbytes(uint32_t type)
{
	switch (type) {
	case QT_Q4_K: return sizeof(struct block_q4_k);
	case QT_Q5_K: return sizeof(struct block_q5_k);
	case QT_Q6_K: return sizeof(struct block_q6_k);
	case QT_Q3_K: return sizeof(struct block_q3_k);
	default: return sizeof(struct block_q2_k);
	}
}

static inline int
joint(uint32_t type)
{
	return type == QT_Q6_K || type == QT_Q3_K;
}

T_AVX2 INLINE float
half(uint16_t h)
{
	return _cvtsh_ss(h);
}

static uint32_t
ld32(const uint8_t *p)
{
	uint32_t u;

	memcpy(&u, p, sizeof u);
	return u;
}

/* Q4_K / Q5_K scales and mins, each doubled to one per group of 16. */
T_AVX2 INLINE void
dec_scales_45(const uint8_t *s, struct kdec *k)
{
	uint32_t w0 = ld32(s), w1 = ld32(s + 4), w2 = ld32(s + 8);
	uint32_t sl = w0 & 0x3f3f3f3fu, ml = w1 & 0x3f3f3f3fu;
	uint32_t sh = (w2 & 0x0f0f0f0fu) | ((w0 >> 6) & 0x03030303u) << 4;
	uint32_t mh = ((w2 >> 4) & 0x0f0f0f0fu) | ((w1 >> 6) & 0x03030303u) <<
	    4;
	__m128i sv = _mm_set_epi32(0, 0, (int)sh, (int)sl);
	__m128i mv = _mm_set_epi32(0, 0, (int)mh, (int)ml);

	k->sc = _mm_unpacklo_epi8(sv, sv);
	k->mn = _mm_unpacklo_epi8(mv, mv);
}

T_AVX2 INLINE void
dec_q4k(const uint8_t *p, struct kdec *k)
{
	const struct block_q4_k *b = (const void *)p;
	__m256i q;
	int c;

	k->D = half(b->d);
	k->M = half(b->dmin);
	dec_scales_45(b->scales, k);
#pragma GCC unroll 4
	for (c = 0; c < 4; c++) {
		q = ld256(b->qs + 32 * c);
		k->u[2 * c] = _mm256_and_si256(q, splat8(15));
		k->u[2 * c + 1] = bits_to(q, 4, 0, 15);
	}
}

T_AVX2 INLINE void
dec_q5k(const uint8_t *p, struct kdec *k)
{
	const struct block_q5_k *b = (const void *)p;
	__m256i q, h = ld256(b->qh);
	int c;

	k->D = half(b->d);
	k->M = half(b->dmin);
	dec_scales_45(b->scales, k);
#pragma GCC unroll 4
	for (c = 0; c < 4; c++) {
		q = ld256(b->qs + 32 * c);
		k->u[2 * c] = _mm256_or_si256(_mm256_and_si256(q, splat8(15)),
		    bits_to(h, 2 * c, 4, 0x10));
		k->u[2 * c + 1] = _mm256_or_si256(bits_to(q, 4, 0, 15),
		    bits_to(h, 2 * c + 1, 4, 0x10));
	}
}

T_AVX2 INLINE void
dec_q6k(const uint8_t *p, struct kdec *k)
{
	const struct block_q6_k *b = (const void *)p;
	__m256i l0, l1, h;
	int i;

	k->D = k->M = half(b->d);
	k->sc = ld128(b->scales);
	k->mn = _mm_setzero_si128();
#pragma GCC unroll 2
	for (i = 0; i < 2; i++) {
		l0 = ld256(b->ql + 64 * i);
		l1 = ld256(b->ql + 64 * i + 32);
		h = ld256(b->qh + 32 * i);
		k->u[4 * i] = _mm256_or_si256(_mm256_and_si256(l0, splat8(15)),
		    bits_to(h, 0, 4, 0x30));
		k->u[4 * i + 1] = _mm256_or_si256(_mm256_and_si256(l1,
		    splat8(15)), bits_to(h, 2, 4, 0x30));
		k->u[4 * i + 2] = _mm256_or_si256(bits_to(l0, 4, 0, 15),
		    bits_to(h, 4, 4, 0x30));
		k->u[4 * i + 3] = _mm256_or_si256(bits_to(l1, 4, 0, 15),
		    bits_to(h, 6, 4, 0x30));
	}
}

T_AVX2 INLINE void
dec_q3k(const uint8_t *p, struct kdec *k)
{
	const struct block_q3_k *b = (const void *)p;
	const uint8_t *s = b->scales;
	uint32_t w0 = ld32(s), w1 = ld32(s + 4), w2 = ld32(s + 8), a[4];
	__m256i q, hm = ld256(b->hmask);
	int i, j;

	k->D = k->M = half(b->d);
	a[0] = (w0 & 0x0f0f0f0fu) | (w2 & 0x03030303u) << 4;
	a[1] = (w1 & 0x0f0f0f0fu) | ((w2 >> 2) & 0x03030303u) << 4;
	a[2] = ((w0 >> 4) & 0x0f0f0f0fu) | ((w2 >> 4) & 0x03030303u) << 4;
	a[3] = ((w1 >> 4) & 0x0f0f0f0fu) | ((w2 >> 6) & 0x03030303u) << 4;
	k->sc = _mm_sub_epi8(_mm_set_epi32((int)a[3], (int)a[2], (int)a[1],
	    (int)a[0]), _mm_set1_epi8(32));
	k->mn = _mm_setzero_si128();
#pragma GCC unroll 2
	for (i = 0; i < 2; i++) {
		q = ld256(b->qs + 32 * i);
#pragma GCC unroll 4
		for (j = 0; j < 4; j++)
			k->u[4 * i + j] = _mm256_or_si256(bits_to(q, 2 * j, 0,
			    3), bits_to(hm, 4 * i + j, 2, 4));
	}
}

T_AVX2 INLINE void
dec_q2k(const uint8_t *p, struct kdec *k)
{
	const struct block_q2_k *b = (const void *)p;
	__m128i s = ld128(b->scales);
	__m256i q;
	int i, j;

	k->D = half(b->d);
	k->M = half(b->dmin);
	k->sc = _mm_and_si128(s, _mm_set1_epi8(15));
	k->mn = _mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(15));
#pragma GCC unroll 2
	for (i = 0; i < 2; i++) {
		q = ld256(b->qs + 32 * i);
#pragma GCC unroll 4
		for (j = 0; j < 4; j++)
			k->u[4 * i + j] = bits_to(q, 2 * j, 0, 3);
	}
}

T_AVX2 INLINE void
dec_block(uint32_t type, const uint8_t *p, struct kdec *k)
{
	switch (type) {
	case QT_Q4_K: dec_q4k(p, k); break;
	case QT_Q5_K: dec_q5k(p, k); break;
	case QT_Q6_K: dec_q6k(p, k); break;
	case QT_Q3_K: dec_q3k(p, k); break;
	default: dec_q2k(p, k); break;
	}
}

/* log2 of the offset m = off * sc of the joint types. */
static inline int
joint_shift(uint32_t type)
{
	return type == QT_Q6_K ? 5 : 2;
}

/*
 * The 16 group scales as int16, even groups in the low 128 bits and odd
 * ones in the high: one in-lane shuffle (pair_scales) then gives the
 * scales of vector i, group 2i low and 2i + 1 high.
 */
T_AVX2 INLINE __m256i
split_scales(__m128i sc)
{
	return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, _mm_setr_epi8(0, 2,
	    4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15)));
}

T_AVX2 INLINE __m256i
pair_scales(__m256i split, int i)
{
	const long long w = 0x0100010001000100LL + 0x0202020202020202LL * i;

	return _mm256_shuffle_epi8(split, _mm256_set1_epi64x(w));
}

/* Prefetch of the block this far ahead (blocks are contiguous). */
T_AVX2 INLINE void
prefetch_block(const uint8_t *p, size_t bs)
{
	size_t o;

	for (o = 0; o < bs; o += 64)
		_mm_prefetch((const char *)p + PREFETCH_AHEAD + o,
		    PREFETCH_HINT);
}

/*
 * With nr > 1 rows per pass, PREFETCH_AHEAD from one row lands in a row
 * the same pass is already reading; the block nr rows on (the next
 * pass's) is the one not yet asked for.
 */
T_AVX2 INLINE void
prefetch_rows(const uint8_t *p, size_t bs, int nr, size_t rb)
{
	size_t o;

	if (nr == 1 || KK_PF_ROWS == 0) {
		prefetch_block(p, bs);
		return;
	}
	for (o = 0; o < bs; o += 64)
		_mm_prefetch((const char *)p + (size_t)nr * rb + o,
		    PREFETCH_HINT);
}

T_AVX2 INLINE float
hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v),
	    _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

T_AVX2 INLINE float
row_k(const uint32_t type, const uint8_t *row, size_t nb, struct kk_x x)
{
	const size_t bs = kbytes(type);
	__m256 acc = _mm256_setzero_ps();
	__m256i sumi, bm, ss;
	struct kdec k;
	size_t b;
	int i;

	for (b = 0; b < nb; b++) {
		const int8_t *xq = x.q + b * QK_K;
		float dx = x.d[b];

		prefetch_block(row + b * bs, bs);
		dec_block(type, row + b * bs, &k);
		sumi = _mm256_setzero_si256();
		ss = split_scales(k.sc);
#pragma GCC unroll 8
		for (i = 0; i < 8; i++)
			sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(
			    _mm256_maddubs_epi16(k.u[i], ld256(xq + 32 * i)),
			    pair_scales(ss, i)));
		if (joint(type)) {
			bm = _mm256_madd_epi16(ld256(x.s + b * 16),
			    _mm256_cvtepi8_epi16(k.sc));
			sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(bm,
			    joint_shift(type)));
			acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi),
			    _mm256_set1_ps(k.D * dx), acc);
		} else {
			bm = _mm256_madd_epi16(ld256(x.s + b * 16),
			    _mm256_cvtepu8_epi16(k.mn));
			acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi),
			    _mm256_set1_ps(k.D * dx), acc);
			acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(bm),
			    _mm256_set1_ps(k.M * dx), acc);
		}
	}
	return hsum8(acc);
}

/* One loop per type, the type a constant inside it. */
#define MATVEC_K(ROW) do {						\
	size_t r, nb = n / QK_K;					\
									\
	switch (type) {							\
	case QT_Q4_K:							\
		for (r = 0; r < nrows; r++)				\
			y[r] = ROW(QT_Q4_K, w + r * rb, nb, x);		\
		break;							\
	case QT_Q5_K:							\
		for (r = 0; r < nrows; r++)				\
			y[r] = ROW(QT_Q5_K, w + r * rb, nb, x);		\
		break;							\
	case QT_Q6_K:							\
		for (r = 0; r < nrows; r++)				\
			y[r] = ROW(QT_Q6_K, w + r * rb, nb, x);		\
		break;							\
	case QT_Q3_K:							\
		for (r = 0; r < nrows; r++)				\
			y[r] = ROW(QT_Q3_K, w + r * rb, nb, x);		\
		break;							\
	default:							\
		for (r = 0; r < nrows; r++)				\
			y[r] = ROW(QT_Q2_K, w + r * rb, nb, x);		\
		break;							\
	}								\
} while (0)

T_AVX2 void
kk_matvec_avx2(uint32_t type, const uint8_t *w, size_t rb, size_t n,
    struct kk_x x, float *y, size_t nrows)
{
	MATVEC_K(row_k);
}

/*
 * AVX-512 decode, one function per type for Q4_K, Q5_K and Q6_K (the
 * common ones; Q2_K and Q3_K keep row_k).  A block is four zmm of 64
 * codes each, against 64 activation bytes in the same order: maddubs
 * into int16 pairs, then VNNI dpwssd multiplies the pairs by their group
 * scales (int16, one per 128-bit lane or per 256-bit half, placed by
 * vpermw) and accumulates, so each 64 codes cost three multiply-class
 * uops where row_k spends six on two ymm.  The fifth / sixth bits come
 * from qh broadcast to both halves and one vprold per vector: a dword
 * rotation by (4 - bit) mod 32 brings every byte's wanted bit to bit 4
 * of the same byte, whichever way it has to move.
 *
 * Q6_K's ql bytes 64h..64h+63 hold elements 128h.. 128h+63 in their low
 * nibbles and the next 64 in their high: the activation is read in
 * order.  Q4_K / Q5_K's 64 qs bytes hold elements 64c..64c+31 and
 * 64c+64.. in the low nibbles: the activation's two 32-byte runs are
 * joined to match, and each 256-bit half has one scale of 32.
 */
T_AVX512 INLINE __m512i
x_pair(const int8_t *xq, int off)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(ld256(xq + off)),
	    ld256(xq + off + 64), 1);
}

/* Words 0-15 from scale word a, words 16-31 from word b. */
T_AVX512 INLINE __m512i
halves_idx(int a, int b)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(
	    (short)a)), _mm256_set1_epi16((short)b), 1);
}

/* Words of 128-bit lane j from scale word 4 v + j. */
T_AVX512 INLINE __m512i
lanes_idx(int v)
{
	return _mm512_set_epi64(0x0003000300030003LL + 0x0004000400040004LL *
	    v, 0x0003000300030003LL + 0x0004000400040004LL * v,
	    0x0002000200020002LL + 0x0004000400040004LL * v,
	    0x0002000200020002LL + 0x0004000400040004LL * v,
	    0x0001000100010001LL + 0x0004000400040004LL * v,
	    0x0001000100010001LL + 0x0004000400040004LL * v,
	    0x0004000400040004LL * v, 0x0004000400040004LL * v);
}

/* Rotation bringing bit a (low half) and bit b (high half) to bit 4. */
T_AVX512 INLINE __m512i
rot_to4(int a, int b)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(
	    (4 - a) & 31)), _mm256_set1_epi32((4 - b) & 31), 1);
}

/* (a & m) | c, bitwise. */
T_AVX512 INLINE __m512i
and_or(__m512i a, __m512i m, __m512i c)
{
	return _mm512_ternarylogic_epi32(a, m, c, 0xea);
}

T_AVX512 INLINE __m512i
dot64(__m512i acc, __m512i u, __m512i x, __m512i sc)
{
	return _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(u, x), sc);
}

static uint64_t
ld64(const uint8_t *p)
{
	uint64_t u;

	memcpy(&u, p, sizeof u);
	return u;
}

/*
 * Q4_K / Q5_K's eight 6-bit scales and eight mins as int16, in the order
 * sc0-3, m0-3, sc4-7, m4-7: two 64-bit words in general registers, one
 * insert and one widening, where one vector per kind cost twice that.
 * The mins sit in the words that xs_pairs fills (see there).
 */
T_AVX512 INLINE __m256i
scales_45_512(const uint8_t *s)
{
	uint64_t lo = ld64(s), w2 = ld32(s + 8);
	uint64_t hi = ((w2 | (w2 >> 4) << 32) & 0x0f0f0f0f0f0f0f0fULL) |
	    ((lo >> 6) & 0x0303030303030303ULL) << 4;

	return _mm256_cvtepu8_epi16(_mm_set_epi64x((long long)hi,
	    (long long)(lo & 0x3f3f3f3f3f3f3f3fULL)));
}

/*
 * A block's 16-sums of the activation as sums over 32, placed as int16
 * in the words where scales_45_512 put the mins (4-7, 12-15; the scales'
 * words zero): one madd with those gives the block's min term.
 */
T_AVX512 INLINE __m256i
xs_pairs(const int16_t *xs)
{
	return _mm256_packs_epi32(_mm256_setzero_si256(), _mm256_madd_epi16(
	    ld256(xs), _mm256_set1_epi16(1)));
}

/*
 * Rows KK_ROWS512 (1, 2 or 4) at a time, sharing the activation's loads.
 * Four were 5% faster in cache but slower streaming from memory (Q4_K
 * lowest in seven interleaved rounds: four rows are four streams for the
 * hardware prefetcher), so one it is; 2 and 4 stay for measuring.
 */
#ifndef KK_ROWS512
#define KK_ROWS512 1
#endif

/*
 * One Q4_K (q5 = 0) or Q5_K (q5 = 1) block at p against the activation
 * xv (four x_pair vectors): the int32 partial sums of D's term.
 */
T_AVX512 INLINE __m512i
blk_q45(const int q5, const uint8_t *p, const __m512i *xv, __m256i *sm)
{
	const uint8_t *qs = p + (q5 ? offsetof(struct block_q5_k, qs) :
	    offsetof(struct block_q4_k, qs));
	const __m512i m4 = _mm512_set1_epi8(15), m10 = _mm512_set1_epi8(16);
	__m512i q0, q1, c0, c1, c2, c3, sw, s;

	*sm = scales_45_512(p + 4);
	sw = _mm512_castsi256_si512(*sm);
	q0 = _mm512_loadu_si512(qs);
	q1 = _mm512_loadu_si512(qs + 64);
	if (q5) {
		__m512i h = _mm512_broadcast_i64x4(ld256(p + 16));

		c0 = and_or(q0, m4, _mm512_and_si512(_mm512_rolv_epi32(h,
		    rot_to4(0, 2)), m10));
		c1 = and_or(_mm512_srli_epi16(q0, 4), m4, _mm512_and_si512(
		    _mm512_rolv_epi32(h, rot_to4(1, 3)), m10));
		c2 = and_or(q1, m4, _mm512_and_si512(_mm512_rolv_epi32(h,
		    rot_to4(4, 6)), m10));
		c3 = and_or(_mm512_srli_epi16(q1, 4), m4, _mm512_and_si512(
		    _mm512_rolv_epi32(h, rot_to4(5, 7)), m10));
	} else {
		c0 = _mm512_and_si512(q0, m4);
		c1 = _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4);
		c2 = _mm512_and_si512(q1, m4);
		c3 = _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4);
	}
	/* Scale j is word j (j < 4) or j + 4 of sw. */
	s = dot64(_mm512_setzero_si512(), c0, xv[0],
	    _mm512_permutexvar_epi16(halves_idx(0, 2), sw));
	s = dot64(s, c1, xv[1], _mm512_permutexvar_epi16(halves_idx(1, 3),
	    sw));
	s = dot64(s, c2, xv[2], _mm512_permutexvar_epi16(halves_idx(8, 10),
	    sw));
	return dot64(s, c3, xv[3], _mm512_permutexvar_epi16(halves_idx(9,
	    11), sw));
}

/*
 * nr (1, 2 or 4) Q4_K / Q5_K rows rb apart: the rows share the
 * activation loads and the joining of its runs.
 */
T_AVX512 INLINE void
rows_q45_512(const int q5, const int nr, const uint8_t *row, size_t rb,
    size_t nb, struct kk_x x, float *y)
{
	const size_t bs = q5 ? sizeof(struct block_q5_k) :
	    sizeof(struct block_q4_k);
	__m512 acc[KK_ROWS512];
	__m256 accm[KK_ROWS512];
	__m512i xv[4], s;
	__m256i sm, xs;
	size_t b;
	int j;

#pragma GCC unroll 4
	for (j = 0; j < nr; j++) {
		acc[j] = _mm512_setzero_ps();
		accm[j] = _mm256_setzero_ps();
	}
	for (b = 0; b < nb; b++) {
		const int8_t *xq = x.q + b * QK_K;
		float dx = x.d[b];

		xv[0] = x_pair(xq, 0);
		xv[1] = x_pair(xq, 32);
		xv[2] = x_pair(xq, 128);
		xv[3] = x_pair(xq, 160);
		xs = xs_pairs(x.s + b * 16);
#pragma GCC unroll 4
		for (j = 0; j < nr; j++) {
			const uint8_t *p = row + j * rb + b * bs;

			prefetch_rows(p, bs, nr, rb);
			s = blk_q45(q5, p, xv, &sm);
			acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
			    _mm512_set1_ps(half((uint16_t)ld_u16(p)) * dx),
			    acc[j]);
			accm[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(
			    _mm256_madd_epi16(xs, sm)), _mm256_set1_ps(half(
			    (uint16_t)ld_u16(p + 2)) * dx), accm[j]);
		}
	}
#pragma GCC unroll 4
	for (j = 0; j < nr; j++)
		y[j] = _mm512_reduce_add_ps(acc[j]) - hsum8(accm[j]);
}

/* One Q6_K block against the activation's 256 bytes xq and 16-sums xs. */
T_AVX512 INLINE __m512i
blk_q6(const struct block_q6_k *k, const int8_t *xq, __m256i xs)
{
	const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
	/* Bits 2k, 2k + 1 of qh to bits 4, 5: k = 0, 1 low; 2, 3 high. */
	const __m512i rlo = rot_to4(0, 2), rhi = rot_to4(4, 6);
	__m512i l0, l1, h0, h1, s, sw;
	__m256i sv, bm;

	sv = _mm256_cvtepi8_epi16(ld128(k->scales));
	sw = _mm512_castsi256_si512(sv);
	l0 = _mm512_loadu_si512(k->ql);
	l1 = _mm512_loadu_si512(k->ql + 64);
	h0 = _mm512_broadcast_i64x4(ld256(k->qh));
	h1 = _mm512_broadcast_i64x4(ld256(k->qh + 32));
	s = dot64(_mm512_setzero_si512(), and_or(l0, m4, _mm512_and_si512(
	    _mm512_rolv_epi32(h0, rlo), m30)), _mm512_loadu_si512(xq),
	    _mm512_permutexvar_epi16(lanes_idx(0), sw));
	s = dot64(s, and_or(_mm512_srli_epi16(l0, 4), m4, _mm512_and_si512(
	    _mm512_rolv_epi32(h0, rhi), m30)), _mm512_loadu_si512(xq + 64),
	    _mm512_permutexvar_epi16(lanes_idx(1), sw));
	s = dot64(s, and_or(l1, m4, _mm512_and_si512(_mm512_rolv_epi32(h1,
	    rlo), m30)), _mm512_loadu_si512(xq + 128),
	    _mm512_permutexvar_epi16(lanes_idx(2), sw));
	s = dot64(s, and_or(_mm512_srli_epi16(l1, 4), m4, _mm512_and_si512(
	    _mm512_rolv_epi32(h1, rhi), m30)), _mm512_loadu_si512(xq + 192),
	    _mm512_permutexvar_epi16(lanes_idx(3), sw));
	/* Codes are q + 32: less 32 sc times each group's x sum. */
	bm = _mm256_slli_epi32(_mm256_madd_epi16(xs, sv), 5);
	return _mm512_sub_epi32(s, _mm512_zextsi256_si512(bm));
}

/* nr (1, 2 or 4) Q6_K rows rb apart. */
T_AVX512 INLINE void
rows_q6_512(const int nr, const uint8_t *row, size_t rb, size_t nb,
    struct kk_x x, float *y)
{
	const size_t bs = sizeof(struct block_q6_k);
	__m512 acc[KK_ROWS512];
	__m256i xs;
	size_t b;
	int j;

#pragma GCC unroll 4
	for (j = 0; j < nr; j++)
		acc[j] = _mm512_setzero_ps();
	for (b = 0; b < nb; b++) {
		const int8_t *xq = x.q + b * QK_K;
		float dx = x.d[b];

		xs = ld256(x.s + b * 16);
#pragma GCC unroll 4
		for (j = 0; j < nr; j++) {
			const struct block_q6_k *k = (const void *)(row +
			    j * rb + b * bs);

			prefetch_rows((const uint8_t *)k, bs, nr, rb);
			acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(blk_q6(k,
			    xq, xs)), _mm512_set1_ps(half(k->d) * dx), acc[j]);
		}
	}
#pragma GCC unroll 4
	for (j = 0; j < nr; j++)
		y[j] = _mm512_reduce_add_ps(acc[j]);
}


T_AVX512 void
kk_matvec_avx512(uint32_t type, const uint8_t *w, size_t rb, size_t n,
    struct kk_x x, float *y, size_t nrows)
{
	size_t i = 0, kb = n / QK_K;

	switch (type) {
	case QT_Q4_K:
		for (; KK_ROWS512 == 4 && i + 4 <= nrows; i += 4)
			rows_q45_512(0, 4, w + i * rb, rb, kb, x, y + i);
		for (; KK_ROWS512 >= 2 && i + 2 <= nrows; i += 2)
			rows_q45_512(0, 2, w + i * rb, rb, kb, x, y + i);
		for (; i < nrows; i++)
			rows_q45_512(0, 1, w + i * rb, rb, kb, x, y + i);
		return;
	case QT_Q5_K:
		for (; KK_ROWS512 == 4 && i + 4 <= nrows; i += 4)
			rows_q45_512(1, 4, w + i * rb, rb, kb, x, y + i);
		for (; KK_ROWS512 >= 2 && i + 2 <= nrows; i += 2)
			rows_q45_512(1, 2, w + i * rb, rb, kb, x, y + i);
		for (; i < nrows; i++)
			rows_q45_512(1, 1, w + i * rb, rb, kb, x, y + i);
		return;
	case QT_Q6_K:
		for (; KK_ROWS512 == 4 && i + 4 <= nrows; i += 4)
			rows_q6_512(4, w + i * rb, rb, kb, x, y + i);
		for (; KK_ROWS512 >= 2 && i + 2 <= nrows; i += 2)
			rows_q6_512(2, w + i * rb, rb, kb, x, y + i);
		for (; i < nrows; i++)
			rows_q6_512(1, w + i * rb, rb, kb, x, y + i);
		return;
	default:
		MATVEC_K(row_k);
	}
}

/*
 * GEMM panels.  Per block, for L lanes (rows):
 *	float    D[L], M[L];
 *	uint32_t sc[16][L];	group scale: int32 (VNNI), or the int16
 *				pair (sc, sc) for AVX2's madd
 *	uint32_t mp[8][L];	mins of groups 2i, 2i + 1 as two int16
 *	uint32_t q[64][L];	step k: codes of elements 4k..4k+3
 * Missing rows are zero throughout.
 */
#define PK_WORDS (2 + 16 + 8 + 64)
#define PK_D 0
#define PK_M 1
#define PK_SC 2
#define PK_MP 18
#define PK_Q 26
#define GEMM_KB 4

static size_t
pk_bytes(int lanes)
{
	return (size_t)lanes * PK_WORDS * 4;
}

T_AVX2 INLINE void
repack_k(const uint32_t type, const uint8_t *w, size_t rb, size_t nrows,
    int lanes, int pairs, size_t b0, size_t nb, uint8_t *out)
{
	const size_t bs = kbytes(type);
	_Alignas(32) uint8_t u[QK_K];
	int8_t sc[16], mn[16];
	uint32_t *o;
	struct kdec k;
	size_t b, r;
	int i, m0, m1, sh = joint_shift(type);
	float f;

	memset(out, 0, nb * pk_bytes(lanes));
	for (b = 0; b < nb; b++) {
		o = (uint32_t *)(void *)(out + b * pk_bytes(lanes));
		for (r = 0; r < nrows; r++) {
			dec_block(type, w + r * rb + (b0 + b) * bs, &k);
#pragma GCC unroll 8
			for (i = 0; i < 8; i++)
				_mm256_store_si256((__m256i *)(void *)(u +
				    32 * i), k.u[i]);
			_mm_storeu_si128((__m128i *)(void *)sc, k.sc);
			_mm_storeu_si128((__m128i *)(void *)mn, k.mn);
			memcpy(&o[PK_D * lanes + r], &k.D, sizeof f);
			memcpy(&o[PK_M * lanes + r], &k.M, sizeof f);
			for (i = 0; i < 16; i++)
				o[(PK_SC + i) * lanes + r] = pairs ?
				    (uint16_t)sc[i] * 0x10001u :
				    (uint32_t)(int32_t)sc[i];
			for (i = 0; i < 8; i++) {
				m0 = joint(type) ? sc[2 * i] * (1 << sh) :
				    (uint8_t)mn[2 * i];
				m1 = joint(type) ? sc[2 * i + 1] * (1 << sh) :
				    (uint8_t)mn[2 * i + 1];
				o[(PK_MP + i) * lanes + r] = (uint16_t)m0 |
				    (uint32_t)(uint16_t)m1 << 16;
			}
			for (i = 0; i < 64; i++)
				o[(PK_Q + i) * lanes + r] = ld32(u + 4 * i);
		}
	}
}

/* Token t's prepared activation, from block b0 on. */
struct kk_tile {
	const uint8_t *base; /* token 0's activation */
	size_t stride, n, b0;
};

static const int8_t *
tile_q(const struct kk_tile *x, int t, size_t b)
{
	return (const int8_t *)(x->base + (size_t)t * x->stride) +
	    (x->b0 + b) * QK_K;
}

static float
tile_d(const struct kk_tile *x, int t, size_t b)
{
	float f;

	memcpy(&f, x->base + (size_t)t * x->stride + x->n + (x->b0 + b) * 4,
	    sizeof f);
	return f;
}

static const int16_t *
tile_s(const struct kk_tile *x, int t, size_t b)
{
	return (const int16_t *)(const void *)(x->base + (size_t)t *
	    x->stride + x->n + x->n / QK_K * 4 + (x->b0 + b) * 32);
}

#define KK_T512 8
#define KK_T2 4

T_AVX512 INLINE void
tile_k512(const int jt, const int gs, const uint8_t *pk, size_t nb,
    const struct kk_tile *x, float *y, size_t ldy, __mmask16 mask,
    int first, const int nt)
{
	__m512 acc[KK_T512], dd;
	__m512i a[KK_T512], w[8], sc, s, bm;
	const uint8_t *p, *q;
	const int8_t *xq;
	const int16_t *xs;
	size_t b;
	int t, g, i, k;

#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
		acc[t] = first ? _mm512_setzero_ps() :
		    _mm512_maskz_loadu_ps(mask, y + (size_t)t * ldy);
	for (b = 0; b < nb; b++) {
		p = pk + b * pk_bytes(16);
		q = p + 64 * PK_Q;
#pragma GCC unroll 8
		for (t = 0; t < nt; t++)
			a[t] = _mm512_setzero_si512();
		/* gs steps share a scale: 4 (groups of 16) or 8 (of 32). */
		for (g = 0; g < 16; g += gs / 4) {
			sc = _mm512_loadu_si512(p + 64 * (PK_SC + g));
#pragma GCC unroll 8
			for (k = 0; k < gs; k++)
				w[k] = _mm512_loadu_si512(q + 64 * (4 * g + k));
#pragma GCC unroll 8
			for (t = 0; t < nt; t++) {
				xq = tile_q(x, t, b) + 16 * g;
				s = _mm512_setzero_si512();
#pragma GCC unroll 8
				for (k = 0; k < gs; k++)
					s = _mm512_dpbusd_epi32(s, w[k],
					    _mm512_set1_epi32((int)ld32(
					    (const uint8_t *)xq + 4 * k)));
				a[t] = _mm512_add_epi32(a[t],
				    _mm512_mullo_epi32(s, sc));
			}
		}
		dd = _mm512_loadu_ps(p + 64 * PK_D);
#pragma GCC unroll 8
		for (t = 0; t < nt; t++) {
			xs = tile_s(x, t, b);
			bm = _mm512_setzero_si512();
#pragma GCC unroll 8
			for (i = 0; i < 8; i++)
				bm = _mm512_add_epi32(bm, _mm512_madd_epi16(
				    _mm512_loadu_si512(p + 64 * (PK_MP + i)),
				    _mm512_set1_epi32((int)ld32(
				    (const uint8_t *)(xs + 2 * i)))));
			if (jt) {
				acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(
				    _mm512_sub_epi32(a[t], bm)), _mm512_mul_ps(dd,
				    _mm512_set1_ps(tile_d(x, t, b))), acc[t]);
				continue;
			}
			acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[t]),
			    _mm512_mul_ps(dd, _mm512_set1_ps(tile_d(x, t, b))),
			    acc[t]);
			acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(bm),
			    _mm512_mul_ps(_mm512_loadu_ps(p + 64 * PK_M),
			    _mm512_set1_ps(tile_d(x, t, b))), acc[t]);
		}
	}
#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
		_mm512_mask_storeu_ps(y + (size_t)t * ldy, mask, acc[t]);
}

T_AVX2 INLINE void
tile_k2(const int jt, const uint8_t *pk, size_t nb,
    const struct kk_tile *x, float *y, size_t ldy, size_t nr, int first,
    const int nt)
{
	__m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nr),
	    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
	__m256 acc[KK_T2], dd, dm;
	__m256i a[KK_T2], w0, w1, w2, w3, sc, s01, s23, bm;
	const uint8_t *p, *q;
	const uint8_t *xq;
	const int16_t *xs;
	size_t b;
	int t, g, i;

#pragma GCC unroll 4
	for (t = 0; t < nt; t++)
		acc[t] = first ? _mm256_setzero_ps() :
		    _mm256_maskload_ps(y + (size_t)t * ldy, mask);
	for (b = 0; b < nb; b++) {
		p = pk + b * pk_bytes(8);
		q = p + 32 * PK_Q;
#pragma GCC unroll 4
		for (t = 0; t < nt; t++)
			a[t] = _mm256_setzero_si256();
		for (g = 0; g < 16; g++) {
			sc = ld256(p + 32 * (PK_SC + g));
			w0 = ld256(q + 32 * (4 * g));
			w1 = ld256(q + 32 * (4 * g + 1));
			w2 = ld256(q + 32 * (4 * g + 2));
			w3 = ld256(q + 32 * (4 * g + 3));
#pragma GCC unroll 4
			for (t = 0; t < nt; t++) {
				xq = (const uint8_t *)tile_q(x, t, b) + 16 * g;
				/* Two steps sum to < 2 * 2 * 63 * 127 < 2^15. */
				s01 = _mm256_add_epi16(_mm256_maddubs_epi16(w0,
				    _mm256_set1_epi32((int)ld32(xq))),
				    _mm256_maddubs_epi16(w1,
				    _mm256_set1_epi32((int)ld32(xq + 4))));
				s23 = _mm256_add_epi16(_mm256_maddubs_epi16(w2,
				    _mm256_set1_epi32((int)ld32(xq + 8))),
				    _mm256_maddubs_epi16(w3,
				    _mm256_set1_epi32((int)ld32(xq + 12))));
				a[t] = _mm256_add_epi32(a[t], _mm256_add_epi32(
				    _mm256_madd_epi16(s01, sc),
				    _mm256_madd_epi16(s23, sc)));
			}
		}
		dd = _mm256_loadu_ps((const float *)(const void *)(p +
		    32 * PK_D));
		dm = _mm256_loadu_ps((const float *)(const void *)(p +
		    32 * PK_M));
#pragma GCC unroll 4
		for (t = 0; t < nt; t++) {
			xs = tile_s(x, t, b);
			bm = _mm256_setzero_si256();
#pragma GCC unroll 8
			for (i = 0; i < 8; i++)
				bm = _mm256_add_epi32(bm, _mm256_madd_epi16(
				    ld256(p + 32 * (PK_MP + i)),
				    _mm256_set1_epi32((int)ld32(
				    (const uint8_t *)(xs + 2 * i)))));
			if (jt) {
				acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(
				    _mm256_sub_epi32(a[t], bm)), _mm256_mul_ps(dd,
				    _mm256_set1_ps(tile_d(x, t, b))), acc[t]);
				continue;
			}
			acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a[t]),
			    _mm256_mul_ps(dd, _mm256_set1_ps(tile_d(x, t, b))),
			    acc[t]);
			acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(bm),
			    _mm256_mul_ps(dm, _mm256_set1_ps(tile_d(x, t, b))),
			    acc[t]);
		}
	}
#pragma GCC unroll 4
	for (t = 0; t < nt; t++)
		_mm256_maskstore_ps(y + (size_t)t * ldy, mask, acc[t]);
}

/* Tiles of TMAX tokens, then 4, 2, 1 for the rest. */
#define TOKENS_K(TILE, TMAX) do {					\
	size_t t, tt;							\
									\
	for (t = 0; t < m; t += tt) {					\
		tt = m - t >= TMAX ? TMAX : m - t >= 4 ? 4 :		\
		    m - t >= 2 ? 2 : 1;					\
		x.base = (const uint8_t *)xs + t * x.stride;		\
		if (tt == TMAX)						\
			TILE(TMAX);					\
		else if (tt == 4)					\
			TILE(4);					\
		else if (tt == 2)					\
			TILE(2);					\
		else							\
			TILE(1);					\
	}								\
} while (0)

#define TILE512(NT) tile_k512(jt, gs, pk, kb, &x, y + t * ldy + r, ldy,	\
	mask, b0 == 0, NT)
#define TILE2(NT) tile_k2(jt, pk, kb, &x, y + t * ldy + r, ldy, nr,	\
	b0 == 0, NT)

T_AVX512 INLINE void
gemm_k512(const uint32_t type, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows)
{
	_Alignas(64) uint8_t pk[GEMM_KB * 16 * PK_WORDS * 4];
	struct kk_tile x = { .stride = kk_xs_stride(n), .n = n };
	size_t nb = n / QK_K, r, nr, b0, kb;
	const int jt = joint(type);
	const int gs = type == QT_Q4_K || type == QT_Q5_K ? 8 : 4;
	__mmask16 mask;

	for (r = 0; r < nrows; r += 16) {
		nr = nrows - r < 16 ? nrows - r : 16;
		mask = (__mmask16)((1u << nr) - 1);
		for (b0 = 0; b0 < nb; b0 += GEMM_KB) {
			kb = nb - b0 < GEMM_KB ? nb - b0 : GEMM_KB;
			repack_k(type, w + r * rb, rb, nr, 16, 0, b0, kb, pk);
			x.b0 = b0;
			TOKENS_K(TILE512, KK_T512);
		}
	}
}

T_AVX2 INLINE void
gemm_k2(const uint32_t type, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows)
{
	_Alignas(64) uint8_t pk[GEMM_KB * 8 * PK_WORDS * 4];
	struct kk_tile x = { .stride = kk_xs_stride(n), .n = n };
	size_t nb = n / QK_K, r, nr, b0, kb;
	const int jt = joint(type);

	for (r = 0; r < nrows; r += 8) {
		nr = nrows - r < 8 ? nrows - r : 8;
		for (b0 = 0; b0 < nb; b0 += GEMM_KB) {
			kb = nb - b0 < GEMM_KB ? nb - b0 : GEMM_KB;
			repack_k(type, w + r * rb, rb, nr, 8, 1, b0, kb, pk);
			x.b0 = b0;
			TOKENS_K(TILE2, KK_T2);
		}
	}
}

/* Constant types, so that each gets its own specialized loops. */
#define GEMM_BY_TYPE(F) do {						\
	switch (type) {							\
	case QT_Q4_K: F(QT_Q4_K, w, rb, n, xs, m, y, ldy, nrows); break; \
	case QT_Q5_K: F(QT_Q5_K, w, rb, n, xs, m, y, ldy, nrows); break; \
	case QT_Q6_K: F(QT_Q6_K, w, rb, n, xs, m, y, ldy, nrows); break; \
	case QT_Q3_K: F(QT_Q3_K, w, rb, n, xs, m, y, ldy, nrows); break; \
	default: F(QT_Q2_K, w, rb, n, xs, m, y, ldy, nrows); break;	\
	}								\
} while (0)

T_AVX512 void
kk_gemm_avx512(uint32_t type, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows)
{
	GEMM_BY_TYPE(gemm_k512);
}

T_AVX2 void
kk_gemm_avx2(uint32_t type, const uint8_t *w, size_t rb, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows)
{
	GEMM_BY_TYPE(gemm_k2);
}

#endif /* KERN_HAVE_X86 */
