/*
 * kernels_panel_x86: the AVX-512 kernel over panels (kernels_panel.c
 * says the layout and why).  For each panel of 16 rows it runs tiles of
 * up to PANEL_T tokens over every block: the block's steps are loaded
 * (Q4_0's nibbles split) once per tile and dotted against each token's
 * four bytes at a time, broadcast, so every lane ends with one row's
 * exact block sum; one convert and one FMA per block and token then
 * serve 16 rows, and the 16 results are stored as they are.
 */
#include "kernels_x86.h"

#ifdef KERN_HAVE_X86

#define PANEL_T 8
/*
 * The first tile of a panel reads it from memory: prefetched this far
 * ahead in the quants (and an eighth of it in the scales, which come
 * eight times slower), as the row kernels do.
 */
#define PANEL_AHEAD 1024
#define PANEL_ACC 8

struct panel_x {
	const uint8_t *q[PANEL_T];
	const float *d[PANEL_T];
	const int32_t *c[PANEL_T];
};

static int32_t
x_bytes(const uint8_t *p)
{
	int32_t v;

	memcpy(&v, p, sizeof v);
	return v;
}

/*
 * Block b's 8 steps of one panel as unsigned bytes.  Q4_0's high nibbles
 * stay in place (x16): their dot is shifted back down, exactly, after
 * the sum (hi_x16 says which steps these are).
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
    const struct panel_x *x, float *const *y, size_t r, __mmask16 last,
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
#pragma GCC unroll 8
		for (g = 0; g < ng; g++) {
			const uint8_t *p = pk + g * gb + b * qb;
			const uint16_t *sc = (const uint16_t *)(const void *)
			    (pk + g * gb + nb * qb) + b * 16;

			if (pf) {
				for (k = 0; k < (int)qb / 64; k++)
					_mm_prefetch((const char *)p +
					    PANEL_AHEAD + 64 * k, _MM_HINT_T0);
				if (b % 2 == 0)
					_mm_prefetch((const char *)sc +
					    PANEL_AHEAD / 8, _MM_HINT_T0);
			}
			dw = _mm512_cvtph_ps(_mm256_load_si256(
			    (const __m256i *)(const void *)sc));
			panel_steps(p, q8, wk);
#pragma GCC unroll 8
			for (t = 0; t < nt; t++)
				acc[g * nt + t] = _mm512_fmadd_ps(
				    _mm512_cvtepi32_ps(panel_dot(wk, q8,
				    x->q[t] + b * QK, x->c[t][b])),
				    _mm512_mul_ps(dw, _mm512_set1_ps(
				    x->d[t][b])), acc[g * nt + t]);
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

/* Panels at once for a tile of nt tokens (their product <= PANEL_ACC). */
static int
panels_for(size_t nt)
{
	return nt >= 8 ? 1 : nt >= 4 ? 2 : nt >= 2 ? 4 : 8;
}

#define PANEL_TILE(P, R, M, NG, NT) do {				\
	if (q8)								\
		panel_tile(P, gb, nb, 1, &x, y + t, r0 + (R), M,	\
		    t == 0, NG, NT);					\
	else								\
		panel_tile(P, gb, nb, 0, &x, y + t, r0 + (R), M,	\
		    t == 0, NG, NT);					\
} while (0)

/* The ng panels together when the tile takes that many, else apart. */
#define PANEL_TILES(NT) do {						\
	int g_;								\
									\
	if (ng == panels_for(NT)) {					\
		PANEL_TILE(p, r, last, panels_for(NT), NT);		\
		break;							\
	}								\
	for (g_ = 0; g_ < ng; g_++)					\
		PANEL_TILE(p + (size_t)g_ * gb, r + 16 * (size_t)g_,	\
		    g_ == ng - 1 ? last : (__mmask16)0xffff, 1, NT);	\
} while (0)

/* Tiles of tokens for the panels at r (ng of them, or one). */
T_AVX512 static void
panel_rows(const uint8_t *p, size_t gb, size_t nb, int q8, size_t st,
    const uint8_t *xs, size_t m, float *const *y, size_t r0, size_t r,
    int ng, __mmask16 last)
{
	struct panel_x x;
	const uint8_t *b;
	size_t t, tt, i;

	for (t = 0; t < m; t += tt) {
		tt = m - t >= PANEL_T ? PANEL_T : m - t >= 4 ? 4 :
		    m - t >= 2 ? 2 : 1;
		/* kern_xs_view's layout, without its calls per tile. */
		for (i = 0; i < tt; i++) {
			b = xs + (t + i) * st;
			x.q[i] = b;
			x.d[i] = (const float *)(const void *)(b + nb * QK);
			x.c[i] = (const int32_t *)(const void *)(b + nb * QK +
			    nb * sizeof(float));
		}
		if (tt == PANEL_T)
			PANEL_TILES(PANEL_T);
		else if (tt == 4)
			PANEL_TILES(4);
		else if (tt == 2)
			PANEL_TILES(2);
		else
			PANEL_TILES(1);
	}
}

T_AVX512 void
kern_panel_gemm_avx512(uint32_t wtype, const uint8_t *pk, size_t n,
    const void *xs, size_t m, float *const *y, size_t r0, size_t nrows)
{
	size_t nb = n / QK, r, left, st = kern_xs_stride(wtype, n);
	size_t gb = nb * (wtype == QT_Q8_0 ? 512 : 256) + (nb * 32 + 63) / 64 *
	    64;
	size_t tile = m >= PANEL_T ? PANEL_T : m >= 4 ? 4 : m >= 2 ? 2 : 1;
	int q8 = wtype == QT_Q8_0, ng;
	__mmask16 last;

	for (r = 0; r < nrows; r += 16 * (size_t)ng) {
		left = (nrows - r + 15) / 16;
		ng = left >= (size_t)panels_for(tile) ? panels_for(tile) : 1;
		left = nrows - r - 16 * (size_t)(ng - 1);
		last = (__mmask16)(left >= 16 ? 0xffffu : (1u << left) - 1);
		panel_rows(pk + r / 16 * gb, gb, nb, q8, st, xs, m, y, r0, r,
		    ng, last);
	}
}

#endif /* KERN_HAVE_X86 */
