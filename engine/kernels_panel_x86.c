/*
 * kernels_panel_x86: the AVX-512 kernel over panels (kernels_panel.c
 * says the layout and why).  For each panel of 16 rows it runs tiles of
 * up to PANEL_T tokens over every block: the block's steps are loaded
 * (Q4_0's nibbles split) once per tile and dotted against each token's
 * four bytes at a time, broadcast, so every lane ends with one row's
 * exact block sum; one convert and one FMA per block and token then
 * serve 16 rows, and the 16 results are stored as they are.  Q4_0 and
 * Q8_0 read the tile's activations as kern_panel_prepare lays them out
 * (kernels_int.h): one pointer reaches every token's block at a fixed
 * offset, where a pointer per token (three streams each) spilled.
 */
#include "kernels_x86.h"
#include "quant_k.h"

#ifdef KERN_HAVE_X86

/*
 * The first tile of a panel reads it from memory: prefetched this far
 * ahead in the quants (and an eighth of it in the scales, which come
 * eight times slower), as the row kernels do.  A tile of nt tokens
 * spends nt times as long on each byte, so the same lead in time is
 * more bytes: with 1 token 1024 is best; with 8, twelve blocks (3072
 * bytes of Q4_0, 6144 of Q8_0: a tile spends about as long on a block of
 * either).  1024 there left Q8_0's single stream starved; 8192 for both
 * kept too many lines in flight (Q4_0 ~10% slower in a one-thread sweep
 * of 1024..8192, Q8_0 best from 3072 to 6144).
 */
#define PANEL_AHEAD(nt, qb) ((nt) >= 8 ? 12 * (qb) : (nt) >= 4 ? 2048 : 1024)
/*
 * A tile of eight tokens also asks for the block PANEL_L2_AHEAD blocks
 * on into L2.  Its arithmetic leaves the loads few slots, and twelve
 * blocks of lead alone did not hide memory: one thread streaming a
 * 75 MB Q4_0 matrix took 2.4 ns per 16 rows x block x token against
 * 1.76 with the matrix in L2, 2.1 with the L2 prefetch (20 to 48
 * blocks all gained, 24 best).  T0 leads of 4 to 24 blocks beside it
 * made no difference.
 */
#define PANEL_L2_AHEAD 24
/*
 * And Q4_0's asks for the block 96 on (T2) as well: 8 sessions' steps
 * (TinyLlama Q4_0, 2 threads, alternating in one process) 28.9 -> 27.5-
 * 27.7 ms and 30.1 -> 28.5-28.7 in another phase; 128 and 160 blocks
 * about as good, 48 worse.  Q8_0's 8-session steps lost 5% with it (46.0
 * -> 48.3 ms; 48 blocks: 50.4), and 16 or 4 sessions did not change.
 */
#define PANEL_L3_AHEAD 96
#define PANEL_ACC 8
/* Superblocks ahead that a K-quant panel's first tile prefetches. */
#define PANEL_K_AHEAD 2

/*
 * The ng panels at p for a tile of NT tokens: together when FOR(NT)
 * (the panels a tile of NT takes at once) is ng, else one by one.
 * TILE(P, R, MASK, NG, NT) runs the tile kernel.
 */
#define PANEL_GROUPS(NT, FOR, TILE) do {				\
	int g_;								\
									\
	if (ng == FOR(NT)) {						\
		TILE(p, r, last, FOR(NT), NT);				\
		break;							\
	}								\
	for (g_ = 0; g_ < ng; g_++)					\
		TILE(p + (size_t)g_ * gb, r + 16 * (size_t)g_,		\
		    g_ == ng - 1 ? last : (__mmask16)0xffff, 1, NT);	\
} while (0)

/* TILES(NT) with NT a constant equal to tt (the kernels unroll on it). */
#define PANEL_BY_TILE(tt, TILES) do {					\
	if ((tt) == PANEL_T)						\
		TILES(PANEL_T);						\
	else if ((tt) == 4)						\
		TILES(4);						\
	else if ((tt) == 2)						\
		TILES(2);						\
	else								\
		TILES(1);						\
} while (0)

static float
ld_f32(const uint8_t *p)
{
	float v;

	memcpy(&v, p, sizeof v);
	return v;
}

static int32_t
x_bytes(const uint8_t *p)
{
	int32_t v;

	memcpy(&v, p, sizeof v);
	return v;
}

/* Token t's codes, d and c in block xb of a tile of nt (kernels_int.h). */
#define XT_Q(xb, t) ((xb) + 32 * (t))
#define XT_D(xb, nt, t) ld_f32((xb) + 32 * (nt) + 4 * (t))
#define XT_C(xb, nt, t) x_bytes((xb) + 36 * (nt) + 4 * (t))

/*
 * Block b's 8 steps of one panel as unsigned bytes.  Q4_0's high nibbles
 * stay in place (x16), saving a shift per step: panel_dot shifts their
 * sum back down, exactly.
 */
T_AVX512 INLINE void
panel_steps(const uint8_t *p, int q8, __m512i wk[8])
{
	const __m512i lo4 = _mm512_set1_epi8(15);
	const __m512i hi4 = _mm512_set1_epi8((char)0xf0);
	__m512i raw;
	int k;

	if (q8) {
#pragma GCC unroll 8
		for (k = 0; k < 8; k++)
			wk[k] = _mm512_load_si512(p + 64 * k);
		return;
	}
#pragma GCC unroll 4
	for (k = 0; k < 4; k++) {
		raw = _mm512_load_si512(p + 64 * k);
		wk[k] = _mm512_and_si512(raw, lo4);
		wk[k + 4] = _mm512_and_si512(raw, hi4);
	}
}

/*
 * The exact block sums of 16 rows against one token: c plus the dots of
 * the 8 steps, in two chains (with one token their latency, not their
 * count, sets the pace).  Q4_0's second chain holds 16 times the high
 * nibbles' dot, a multiple of 16.
 */
T_AVX512 INLINE __m512i
panel_dot(const __m512i wk[8], int q8, const uint8_t *xq, int32_t c)
{
	__m512i s = _mm512_set1_epi32(c), s2 = _mm512_setzero_si512();
	int k;

	if (q8) {
#pragma GCC unroll 4
		for (k = 0; k < 8; k += 2) {
			s = _mm512_dpbusd_epi32(s, wk[k],
			    _mm512_set1_epi32(x_bytes(xq + 4 * k)));
			s2 = _mm512_dpbusd_epi32(s2, wk[k + 1],
			    _mm512_set1_epi32(x_bytes(xq + 4 * k + 4)));
		}
		return _mm512_add_epi32(s, s2);
	}
#pragma GCC unroll 4
	for (k = 0; k < 4; k++) {
		s = _mm512_dpbusd_epi32(s, wk[k],
		    _mm512_set1_epi32(x_bytes(xq + 4 * k)));
		s2 = _mm512_dpbusd_epi32(s2, wk[k + 4],
		    _mm512_set1_epi32(x_bytes(xq + 16 + 4 * k)));
	}
	return _mm512_add_epi32(s, _mm512_srai_epi32(s2, 4));
}

/*
 * ng panels (gb bytes apart) for nt tokens.  With few tokens a panel
 * is read from memory once and dotted a few times, and one stream per
 * thread cannot keep enough reads in flight (about 20 GB/s against 30
 * for plain loads): the ng panels go through the blocks together, each
 * its own stream, prefetched PANEL_AHEAD ahead.  ng * nt accumulators.
 */
T_AVX512 INLINE void
panel_tile(const uint8_t *pk, size_t gb, size_t nb, int q8,
    const uint8_t *xt, float *const *y, size_t r, __mmask16 last,
    int pf, const int ng, const int nt)
{
	size_t qb = q8 ? 512 : 256, b;
	__m512 acc[PANEL_ACC], dw;
	__m512i wk[8];
	int g, t, k;

#pragma GCC unroll 8
	for (t = 0; t < ng * nt; t++)
		acc[t] = _mm512_setzero_ps();
	for (b = 0; b < nb; b++) {
		const uint8_t *xb = xt + b * PANEL_XB * (size_t)nt;

#pragma GCC unroll 8
		for (g = 0; g < ng; g++) {
			const uint8_t *p = pk + g * gb + b * qb;
			const uint16_t *sc = (const uint16_t *)(const void *)
			    (pk + g * gb + nb * qb) + b * 16;

			if (pf) {
				for (k = 0; k < (int)qb / 64; k++)
					_mm_prefetch((const char *)p +
					    PANEL_AHEAD(nt, qb) + 64 * k,
					    _MM_HINT_T0);
				for (k = 0; nt >= PANEL_T && k < (int)qb / 64;
				    k++)
					_mm_prefetch((const char *)p +
					    PANEL_L2_AHEAD * qb + 64 * k,
					    _MM_HINT_T1);
				for (k = 0; !q8 && nt >= PANEL_T &&
				    k < (int)qb / 64; k++)
					_mm_prefetch((const char *)p +
					    PANEL_L3_AHEAD * qb + 64 * k,
					    _MM_HINT_T2);
				if (b % 2 == 0)
					_mm_prefetch((const char *)sc +
					    PANEL_AHEAD(nt, qb) / 8,
					    _MM_HINT_T0);
			}
			dw = _mm512_cvtph_ps(_mm256_load_si256(
			    (const __m256i *)(const void *)sc));
			panel_steps(p, q8, wk);
#pragma GCC unroll 8
			for (t = 0; t < nt; t++)
				acc[g * nt + t] = _mm512_fmadd_ps(
				    _mm512_cvtepi32_ps(panel_dot(wk, q8,
				    XT_Q(xb, t), XT_C(xb, nt, t))),
				    _mm512_mul_ps(dw, _mm512_set1_ps(
				    XT_D(xb, nt, t))), acc[g * nt + t]);
		}
	}
#pragma GCC unroll 8
	for (g = 0; g < ng; g++) {
#pragma GCC unroll 8
		for (t = 0; t < nt; t++)
			_mm512_mask_storeu_ps(y[t] + r + 16 * (size_t)g,
			    g == ng - 1 ? last : (__mmask16)0xffff,
			    acc[g * nt + t]);
	}
}

/* Token t's K activation (kernels_k.h's layout, stride apart). */
struct panel_kx {
	const uint8_t *q[PANEL_T];
	const float *d[PANEL_T];
	const int16_t *s[PANEL_T];
};

/*
 * The sums of 16 of superblock b as the mins want them: word i holds
 * the sums of groups (of 32) 4h + o and 4h + o + 2, i = 2h + o, as two
 * int16 (each at most 32 * 127 in magnitude), matching the mins' bytes
 * 0 and 2 (o = 0) or 1 and 3 (o = 1) of a packed word.
 */
static int32_t
kx_pair(const int16_t *s, size_t b, int i)
{
	const int16_t *p = s + b * 16 + 8 * (i / 2) + 2 * (i % 2);
	uint16_t lo = (uint16_t)(p[0] + p[1]), hi = (uint16_t)(p[4] + p[5]);

	return (int32_t)((uint32_t)lo | (uint32_t)hi << 16);
}

/*
 * The scales and mins of 16 rows from their packed 12 bytes (lanes of
 * words w0, w1, w2): sc[h] holds the scales of groups 4h..4h+3 as bytes,
 * mn[2h + o] the mins of groups 4h + o and 4h + o + 2 as int16.
 */
T_AVX512 INLINE void
unpack_scales_k(const uint8_t *p, __m512i sc[2], __m512i mn[4])
{
	const __m512i m6 = _mm512_set1_epi32(0x3f3f3f3f);
	const __m512i m4 = _mm512_set1_epi32(0x0f0f0f0f);
	const __m512i m2 = _mm512_set1_epi32(0x03030303);
	const __m512i w8 = _mm512_set1_epi32(0x00ff00ff);
	__m512i w0 = _mm512_load_si512(p), w1 = _mm512_load_si512(p + 64);
	__m512i w2 = _mm512_load_si512(p + 128), ml, mh;

	sc[0] = _mm512_and_si512(w0, m6);
	sc[1] = _mm512_or_si512(_mm512_and_si512(w2, m4), _mm512_slli_epi32(
	    _mm512_and_si512(_mm512_srli_epi32(w0, 6), m2), 4));
	ml = _mm512_and_si512(w1, m6);
	mh = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, 4), m4),
	    _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w1, 6), m2),
	    4));
	mn[0] = _mm512_and_si512(ml, w8);
	mn[1] = _mm512_and_si512(_mm512_srli_epi32(ml, 8), w8);
	mn[2] = _mm512_and_si512(mh, w8);
	mn[3] = _mm512_and_si512(_mm512_srli_epi32(mh, 8), w8);
}

/* Byte g of each lane of v, as int32. */
T_AVX512 INLINE __m512i
lane_byte(__m512i v, int g)
{
	return _mm512_and_si512(_mm512_srli_epi32(v, 8 * g),
	    _mm512_set1_epi32(0xff));
}

/*
 * Pair j's codes of one Q5_K step: the nibbles of raw (low: group 2j,
 * high: 2j + 1) with the fifth bits of qh, bit 2j or 2j + 1 of each
 * byte, brought to bit 4 by a dword rotation (kernels_k_x86.c's
 * rot_to4 trick: by 4 - bit, mod 32, every byte's bit lands in place).
 */
T_AVX512 INLINE void
q5_codes(__m512i raw, __m512i qh, int j, __m512i *wl, __m512i *wh)
{
	const __m512i lo4 = _mm512_set1_epi8(15);
	const __m512i b4 = _mm512_set1_epi8(16);
	__m512i hl = _mm512_rolv_epi32(qh, _mm512_set1_epi32((4 - 2 * j) &
	    31));
	__m512i hh = _mm512_rolv_epi32(qh, _mm512_set1_epi32((3 - 2 * j) &
	    31));

	/* 0xea: (a & b) | c, c the fifth bits alone. */
	*wl = _mm512_ternarylogic_epi32(raw, lo4, _mm512_and_si512(hl, b4),
	    0xea);
	*wh = _mm512_ternarylogic_epi32(_mm512_srli_epi16(raw, 4), lo4,
	    _mm512_and_si512(hh, b4), 0xea);
}

/*
 * Q4_K / Q5_K (q5): one panel for nt tokens.  Per superblock and pair
 * of groups the 8 raw steps give group 2j's codes (low nibbles) and
 * group 2j + 1's: Q4_K's as 16 times the codes (high nibbles in place,
 * the sum shifted back), Q5_K's with their fifth bits (q5_codes).  A
 * adds each group's sum times its scale, B the mins times the token's
 * group sums, and the float steps are kern_gemm's: A * (D dx), then
 * minus B * (M dx).
 */
T_AVX512 INLINE void
panel_tile_k(const int q5, const uint8_t *pk, size_t nb,
    const struct panel_kx *x, float *const *y, size_t r, __mmask16 last,
    int pf, const int nt)
{
	const __m512i lo4 = _mm512_set1_epi8(15);
	const __m512i hi4 = _mm512_set1_epi8((char)0xf0);
	const size_t kb = q5 ? PANEL_K5_BYTES : PANEL_K_BYTES;
	__m512 acc[PANEL_T], dd, dm;
	__m512i a[PANEL_T], wl[8], wh[8], raw, sl, sh, s, s2, bm, sc[2];
	__m512i mn[4];
	size_t b;
	int t, j, k, i;

#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
		acc[t] = _mm512_setzero_ps();
	for (b = 0; b < nb; b++) {
		const uint8_t *p = pk + b * kb;

		if (pf) {
			for (k = 0; k < (int)kb / 64; k++)
				_mm_prefetch((const char *)p +
				    PANEL_K_AHEAD * kb + 64 * k,
				    _MM_HINT_T0);
		}
#pragma GCC unroll 8
		for (t = 0; t < nt; t++)
			a[t] = _mm512_setzero_si512();
		unpack_scales_k(p + PANEL_K_SC, sc, mn);
		for (j = 0; j < 4; j++) {
#pragma GCC unroll 8
			for (k = 0; k < 8; k++) {
				raw = _mm512_load_si512(p + 512 * j +
				    64 * k);
				if (q5) {
					q5_codes(raw, _mm512_load_si512(
					    p + PANEL_K5_QH + 64 * k),
					    j, &wl[k], &wh[k]);
					continue;
				}
				wl[k] = _mm512_and_si512(raw, lo4);
				wh[k] = _mm512_and_si512(raw, hi4);
			}
			sl = lane_byte(sc[j / 2], 2 * (j % 2));
			sh = lane_byte(sc[j / 2], 2 * (j % 2) + 1);
#pragma GCC unroll 8
			for (t = 0; t < nt; t++) {
				const uint8_t *xq = x->q[t] + b * QK_K +
				    64 * j;

				s = _mm512_setzero_si512();
				s2 = _mm512_setzero_si512();
#pragma GCC unroll 8
				for (k = 0; k < 8; k++) {
					s = _mm512_dpbusd_epi32(s,
					    wl[k], _mm512_set1_epi32(
					    x_bytes(xq + 4 * k)));
					s2 = _mm512_dpbusd_epi32(s2,
					    wh[k], _mm512_set1_epi32(
					    x_bytes(xq + 32 + 4 * k)));
				}
				if (!q5)
					s2 = _mm512_srai_epi32(s2, 4);
				a[t] = _mm512_add_epi32(a[t],
				    _mm512_add_epi32(
				    _mm512_mullo_epi32(s, sl),
				    _mm512_mullo_epi32(s2, sh)));
			}
		}
		dd = _mm512_cvtph_ps(_mm256_load_si256(
		    (const __m256i *)(const void *)(p + PANEL_K_D)));
		dm = _mm512_cvtph_ps(_mm256_load_si256(
		    (const __m256i *)(const void *)(p + PANEL_K_M)));
#pragma GCC unroll 8
		for (t = 0; t < nt; t++) {
			bm = _mm512_setzero_si512();
#pragma GCC unroll 4
			for (i = 0; i < 4; i++)
				bm = _mm512_add_epi32(bm,
				    _mm512_madd_epi16(mn[i],
				    _mm512_set1_epi32(kx_pair(x->s[t],
				    b, i))));
			acc[t] = _mm512_fmadd_ps(
			    _mm512_cvtepi32_ps(a[t]), _mm512_mul_ps(dd,
			    _mm512_set1_ps(x->d[t][b])),
			    acc[t]);
			acc[t] = _mm512_fnmadd_ps(
			    _mm512_cvtepi32_ps(bm), _mm512_mul_ps(dm,
			    _mm512_set1_ps(x->d[t][b])),
			    acc[t]);
		}
	}
#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
		_mm512_mask_storeu_ps(y[t] + r, last, acc[t]);
}

/*
 * Token's 16-sums of superblock b as Q6_K's scale words want them: word
 * i = 2s + o of a scale step s pairs groups 4s + o and 4s + o + 2.
 */
static int32_t
kx_pair6(const int16_t *s, size_t b, int i)
{
	const int16_t *p = s + b * 16 + 4 * (i / 2) + i % 2;

	return (int32_t)((uint32_t)(uint16_t)p[0] | (uint32_t)(uint16_t)p[2] <<
	    16);
}

/* Byte g of each lane of v, sign-extended to int32. */
T_AVX512 INLINE __m512i
lane_sbyte(__m512i v, int g)
{
	return _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * g), 24);
}

/*
 * Q6_K: one panel for nt tokens.  Four ql steps give a group of 16 in
 * their low nibbles (group 8h + i) and one in their high (8h + 4 + i),
 * each topped with two bits of the qh step their bytes share (rotated
 * to bits 4-5 as in q5_codes).  The codes are q + 32: A sums each
 * group's dot times its scale, B 32 times the scales times the token's
 * 16-sums, and kern_gemm's float step follows: (A - B) * (D dx).
 */
T_AVX512 INLINE void
panel_tile_k6(const uint8_t *pk, size_t nb, const struct panel_kx *x,
    float *const *y, size_t r, __mmask16 last, int pf, const int nt)
{
	const __m512i lo4 = _mm512_set1_epi8(15);
	const __m512i b45 = _mm512_set1_epi8(0x30);
	__m512 acc[PANEL_T], dd;
	__m512i a[PANEL_T], wl[4], wh[4], raw, qh, sv[4], sl, sh, s, s2, bm;
	__m512i sp[8];
	size_t b;
	int t, h, i, k, c;

#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
		acc[t] = _mm512_setzero_ps();
	for (b = 0; b < nb; b++) {
		const uint8_t *p = pk + b * PANEL_K6_BYTES;
		const uint8_t *dp = pk + nb * PANEL_K6_BYTES + b * 32;

		/* PANEL_K_AHEAD superblocks on, and their d's. */
		if (pf) {
			for (k = 0; k < PANEL_K6_BYTES / 64; k++)
				_mm_prefetch((const char *)p +
				    PANEL_K_AHEAD * PANEL_K6_BYTES + 64 * k,
				    _MM_HINT_T0);
			if (b % 2 == 0)
				_mm_prefetch((const char *)dp + 64,
				    _MM_HINT_T0);
		}
#pragma GCC unroll 8
		for (t = 0; t < nt; t++)
			a[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
		for (k = 0; k < 4; k++)
			sv[k] = _mm512_load_si512(p + PANEL_K6_SC +
			    64 * k);
		for (h = 0; h < 2; h++) {
			for (i = 0; i < 4; i++) {
#pragma GCC unroll 4
				for (k = 0; k < 4; k++) {
					/* ql bytes 16i + 4k.., the qh
					 * bytes of the same l % 32. */
					c = 4 * i + k;
					raw = _mm512_load_si512(p +
					    64 * (16 * h + c));
					qh = _mm512_load_si512(p +
					    PANEL_K6_QH + 64 * (8 * h +
					    c % 8));
					wl[k] = _mm512_ternarylogic_epi32(
					    raw, lo4, _mm512_and_si512(
					    _mm512_rolv_epi32(qh,
					    _mm512_set1_epi32((4 - 2 *
					    (i / 2)) & 31)), b45), 0xea);
					wh[k] = _mm512_ternarylogic_epi32(
					    _mm512_srli_epi16(raw, 4), lo4,
					    _mm512_and_si512(
					    _mm512_rolv_epi32(qh,
					    _mm512_set1_epi32((32 - 2 *
					    (i / 2)) & 31)), b45), 0xea);
				}
				/* Groups 8h + i and 8h + 4 + i. */
				sl = lane_sbyte(sv[2 * h], i);
				sh = lane_sbyte(sv[2 * h + 1], i);
#pragma GCC unroll 8
				for (t = 0; t < nt; t++) {
					const uint8_t *xq = x->q[t] +
					    b * QK_K + 128 * h + 16 * i;

					s = _mm512_setzero_si512();
					s2 = _mm512_setzero_si512();
#pragma GCC unroll 4
					for (k = 0; k < 4; k++) {
						s = _mm512_dpbusd_epi32(
						    s, wl[k],
						    _mm512_set1_epi32(
						    x_bytes(xq + 4 * k)));
						s2 = _mm512_dpbusd_epi32(
						    s2, wh[k],
						    _mm512_set1_epi32(
						    x_bytes(xq + 64 +
						    4 * k)));
					}
					a[t] = _mm512_add_epi32(a[t],
					    _mm512_add_epi32(
					    _mm512_mullo_epi32(s, sl),
					    _mm512_mullo_epi32(s2, sh)));
				}
			}
		}
		/* Scale words as int16 pairs (groups 4s + o, + 2). */
#pragma GCC unroll 4
		for (k = 0; k < 4; k++) {
			sp[2 * k] = _mm512_srai_epi16(
			    _mm512_slli_epi16(sv[k], 8), 8);
			sp[2 * k + 1] = _mm512_srai_epi16(sv[k], 8);
		}
		dd = _mm512_cvtph_ps(_mm256_load_si256(
		    (const __m256i *)(const void *)dp));
#pragma GCC unroll 8
		for (t = 0; t < nt; t++) {
			bm = _mm512_setzero_si512();
#pragma GCC unroll 8
			for (k = 0; k < 8; k++)
				bm = _mm512_add_epi32(bm,
				    _mm512_madd_epi16(sp[k],
				    _mm512_set1_epi32(kx_pair6(x->s[t],
				    b, k))));
			acc[t] = _mm512_fmadd_ps(
			    _mm512_cvtepi32_ps(_mm512_sub_epi32(a[t],
			    _mm512_slli_epi32(bm, 5))), _mm512_mul_ps(dd,
			    _mm512_set1_ps(x->d[t][b])),
			    acc[t]);
		}
	}
#pragma GCC unroll 8
	for (t = 0; t < nt; t++)
		_mm512_mask_storeu_ps(y[t] + r, last, acc[t]);
}

#define PANEL_TILE_K(NT) do {					\
	if (wtype == QT_Q6_K)						\
		panel_tile_k6(p, nb, &kx, y + t, r, last, t == 0, NT);	\
	else if (wtype == QT_Q5_K)					\
		panel_tile_k(1, p, nb, &kx, y + t, r, last, t == 0, NT); \
	else								\
		panel_tile_k(0, p, nb, &kx, y + t, r, last, t == 0, NT); \
} while (0)

/* Tiles of tokens for the K-quant panel p (rows r..r + 15 of y). */
T_AVX512 static void
panel_rows_k(uint32_t wtype, const uint8_t *p, size_t n, size_t st,
    const uint8_t *xs, size_t m, float *const *y, size_t r, __mmask16 last)
{
	size_t nb = n / QK_K, t, tt, i;
	struct panel_kx kx;
	const uint8_t *b;

	for (t = 0; t < m; t += tt) {
		tt = kern_panel_tile(m - t);
		for (i = 0; i < tt; i++) {
			b = xs + (t + i) * st;
			kx.q[i] = b;
			kx.d[i] = (const float *)(const void *)(b + n);
			kx.s[i] = (const int16_t *)(const void *)(b + n +
			    nb * sizeof(float));
		}
		PANEL_BY_TILE(tt, PANEL_TILE_K);
	}
}

/*
 * K-quant panels one at a time, whatever the tile: a K panel's
 * superblock is 2304 to 3328 bytes, so the several panels Q4_0's small
 * tiles take at once (panels_for) are as many streams of 40-odd lines
 * each, which overflowed L1 before they were used.  One panel and a
 * prefetch PANEL_K_AHEAD superblocks on measured best on TinyLlama
 * Q5_K_M, 2 threads: decode 74 tok/s against 57 with eight panels per
 * tile of one token (and 60 on the rows), 2 and 4 sessions 97 and 158
 * tok/s against 68 and 124 with four and two panels.
 */
T_AVX512 static void
panel_gemm_k(uint32_t wtype, const uint8_t *pk, size_t n, const void *xs,
    size_t m, float *const *y, size_t r0, size_t nrows)
{
	size_t gb = kern_panel_bytes(wtype, 16, n), r, left;
	size_t st = kern_xs_stride(wtype, n);

	for (r = 0; r < nrows; r += 16) {
		left = nrows - r;
		panel_rows_k(wtype, pk + r / 16 * gb, n, st, xs, m, y, r0 + r,
		    (__mmask16)(left >= 16 ? 0xffffu : (1u << left) - 1));
	}
}

/* Panels at once for a tile of nt tokens (their product <= PANEL_ACC). */
static int
panels_for(size_t nt)
{
	return nt >= 8 ? 1 : nt >= 4 ? 2 : nt >= 2 ? 4 : 8;
}

#define PANEL_TILE(P, R, M, NG, NT) do {				\
	if (q8)								\
		panel_tile(P, gb, nb, 1, xt, y + t, r0 + (R), M,	\
		    t == 0, NG, NT);					\
	else								\
		panel_tile(P, gb, nb, 0, xt, y + t, r0 + (R), M,	\
		    t == 0, NG, NT);					\
} while (0)

#define PANEL_TILES(NT) PANEL_GROUPS(NT, panels_for, PANEL_TILE)

/* Tiles of tokens for the panels at r (ng of them, or one). */
T_AVX512 static void
panel_rows(const uint8_t *p, size_t gb, size_t nb, int q8,
    const uint8_t *xs, size_t m, float *const *y, size_t r0, size_t r,
    int ng, __mmask16 last)
{
	const uint8_t *xt;
	size_t t, tt;

	for (t = 0; t < m; t += tt) {
		tt = kern_panel_tile(m - t);
		xt = xs + t * nb * PANEL_XB;
		PANEL_BY_TILE(tt, PANEL_TILES);
	}
}

T_AVX512 void
kern_panel_gemm_avx512(uint32_t wtype, const uint8_t *pk, size_t n,
    const void *xs, size_t m, float *const *y, size_t r0, size_t nrows)
{
	size_t nb = n / QK, r, left;
	size_t gb = nb * (wtype == QT_Q8_0 ? 512 : 256) + (nb * 32 + 63) / 64 *
	    64;
	size_t tile = kern_panel_tile(m);
	int q8 = wtype == QT_Q8_0, ng;
	__mmask16 last;

	if (qk_is_k(wtype)) {
		panel_gemm_k(wtype, pk, n, xs, m, y, r0, nrows);
		return;
	}
	for (r = 0; r < nrows; r += 16 * (size_t)ng) {
		left = (nrows - r + 15) / 16;
		ng = left >= (size_t)panels_for(tile) ? panels_for(tile) : 1;
		left = nrows - r - 16 * (size_t)(ng - 1);
		last = (__mmask16)(left >= 16 ? 0xffffu : (1u << left) - 1);
		panel_rows(pk + r / 16 * gb, gb, nb, q8, xs, m, y, r0, r,
		    ng, last);
	}
}

#endif /* KERN_HAVE_X86 */
