/*
 * kernels_panel: quantized weights repacked once, at model load, into
 * panels: the layout the AVX-512 integer kernels read directly, so that
 * decode (one activation) and batched decode (a few) run the GEMM's
 * row-lane kernel without repacking anything per call.
 *
 * Why: the row kernels of kernels_x86.c dot one row at a time and end
 * every row with a horizontal reduction, which makes Q4_0 decode bound
 * by arithmetic (about 25 GB/s per thread) rather than by memory, and
 * reading a tile of rows once for many activations saves only memory
 * traffic.  The GEMM kernel has no reduction (one lane per row), but it
 * repacks its panel on every call, which costs as much as the arithmetic
 * when there are only a few tokens.  Repacking at load removes that.
 *
 * A panel holds 16 rows (the lanes of a zmm); the last is padded with
 * zero rows.  Panel g is nb blocks of quants followed by nb blocks of
 * scales, nb = n / 32:
 *
 *	quants of block b: S steps of 16 lanes x 4 bytes: step k, lane r
 *	    is the 4 bytes at offset 2 + 4k of row 16g + r's block b,
 *	    as stored (Q4_0: packed nibbles, S = 4; the low nibbles give
 *	    elements 4k..4k+3, the high ones 16 + 4k..), or flipped by
 *	    +128 (Q8_0, S = 8: dotted as unsigned bytes)
 *	scales of block b: the 16 rows' fp16 d, as stored
 *
 * 288 bytes per 16 Q4_0 row-blocks and 544 per Q8_0 ones: the bytes
 * of the rows themselves (plus 32 bytes of padding per panel when nb is
 * odd, which keeps every panel 64-byte aligned), so the panels cost what
 * the weights cost and a decode reads no more memory than before.  The
 * caller gives pk 64-byte alignment.
 *
 * Q4_K (superblocks of 256, eight groups of 32 with 6-bit scales and
 * mins): per superblock a panel holds PANEL_K_BYTES,
 *
 *	quants	4 x 8 steps of 16 lanes x 4 bytes: pair j, step k, lane r
 *		is qs[32j + 4k ..] of row r as stored: low nibbles are
 *		group 2j's elements 4k.., high ones group 2j + 1's
 *	scales	3 x 16 lanes x 4 bytes: the 12 bytes of packed scales and
 *		mins of each row as stored, a word at a time
 *	d, dmin	16 rows' fp16 each, as stored
 *
 * 2304 bytes for 16 superblock rows: the rows' own bytes.  The kernel
 * unpacks the scales for 16 rows at once (a few shifts a superblock);
 * stored unpacked they made the panel 8% bigger and decode, bound by
 * memory, that much slower.
 *
 * Q5_K: Q4_K's panel, then the fifth bits,
 *
 *	qh	8 steps of 16 lanes x 4 bytes: step k, lane r is
 *		qh[4k ..] of row r as stored: bit g of byte l is the fifth
 *		bit of group g's element l, so step k serves every pair
 *
 * 2816 bytes for 16 superblock rows, again the rows' own.  Its row
 * kernel (kernels_k_x86.c) joins the activation's runs and reduces
 * every row, and ran out of arithmetic before memory did (22 rows/us
 * per thread in cache against Q6_K's 33).
 *
 * Q6_K (int8 scales per 16 elements, 6-bit codes q - 32, one fp16 d):
 * nb superblocks of PANEL_K6_BYTES, then the d of each (16 rows' fp16,
 * as Q4_0's scales: 3328 is a multiple of 64 where 3360 is not),
 *
 *	ql	32 steps of 16 lanes x 4 bytes: step k, lane r is
 *		ql[4k ..] of row r as stored: byte l of half h (64 each)
 *		holds element 128h + l low and 128h + 64 + l high
 *	qh	16 steps: step k, lane r is qh[4k ..] of row r: byte l of
 *		half h (32 each) holds the top two bits of elements
 *		128h + l + 32i in bits 2i, 2i + 1
 *	scales	4 steps: step k, lane r is scales[4k ..] of row r
 *
 * 3360 bytes for 16 superblock rows (plus the last 64-byte padding).
 * On rows Q6_K ran a GEMM that repacked every call: with eight
 * activations a Q4_K_M step spent as long on its Q6_K fifth as on the
 * rest.
 *
 * Results are bit-identical to kern_gemm's (the same dpbusd sums started
 * from the token's c, the same FMA by the row scale times the token
 * scale, blocks in order) for any number of activations and any row
 * range, which keeps a batched sequence's logits equal to its logits
 * alone, and decode equal to prefill.
 */
#include "kernels_int.h"
#include "kernels_x86.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "quant_k.h"

#define PANEL_ROWS 16
/*
 * Tokens from which K-quant panels run kern_gemm on their rows
 * (panel_gemm_rows): Q5_K_M prefill (2 threads, sinkd-bench speed, one
 * chunk) on the panels vs the rows was 309 vs 251 tok/s at 128 tokens,
 * even at 256, 225 vs 259 at 512.
 */
#define PANEL_ROWS_GEMM_MIN 256

int
kern_panel_type(uint32_t wtype)
{
	return wtype == QT_Q4_0 || wtype == QT_Q8_0 || wtype == QT_Q4_K ||
	    wtype == QT_Q5_K || wtype == QT_Q6_K;
}

/* Elements per block of a panel type: superblocks for the K-quants. */
static size_t
panel_block_elems(uint32_t wtype)
{
	return qk_is_k(wtype) ? QK_K : QK;
}

/* Bytes of one block's quants in a panel (steps x 16 lanes x 4). */
static size_t
panel_qbytes(uint32_t wtype)
{
	return wtype == QT_Q8_0 ? 512 : 256;
}

/* Bytes of one panel: quants, then scales padded to keep panels
 * 64-byte aligned (the kernel's loads are aligned).  nb counts blocks of
 * the type (32 elements, or 256 for the K-quants). */
static size_t
panel_group_bytes(uint32_t wtype, size_t nb)
{
	if (wtype == QT_Q4_K)
		return nb * PANEL_K_BYTES;
	if (wtype == QT_Q5_K)
		return nb * PANEL_K5_BYTES;
	if (wtype == QT_Q6_K)
		return nb * PANEL_K6_BYTES + (nb * 2 * PANEL_ROWS + 63) / 64 *
		    64;
	return nb * panel_qbytes(wtype) + (nb * 2 * PANEL_ROWS + 63) / 64 * 64;
}

size_t
kern_panel_bytes(uint32_t wtype, size_t rows, size_t n)
{
	size_t groups = (rows + PANEL_ROWS - 1) / PANEL_ROWS;

	if (!kern_panel_type(wtype) || n % panel_block_elems(wtype) != 0)
		return 0;
	return groups * panel_group_bytes(wtype, n /
	    panel_block_elems(wtype));
}

static uint32_t
ld32(const uint8_t *p)
{
	uint32_t u;

	memcpy(&u, p, sizeof u);
	return u;
}

/* Panel g's rows [r0, r0 + nr) of w into out (zeroed rows stay zero). */
static void
pack_group(uint32_t wtype, const uint8_t *w, size_t rb, size_t nr,
    size_t nb, uint8_t *out)
{
	size_t qb = panel_qbytes(wtype), steps = qb / 64, b, k, r;
	size_t bs = wtype == QT_Q8_0 ? 34 : 18;
	uint32_t flip = wtype == QT_Q8_0 ? 0x80808080u : 0;
	uint8_t *sc = out + nb * qb;
	const uint8_t *blk;
	uint32_t u;

	for (b = 0; b < nb; b++) {
		for (r = 0; r < nr; r++) {
			blk = w + r * rb + b * bs;
			memcpy(sc + (b * PANEL_ROWS + r) * 2, blk, 2);
			for (k = 0; k < steps; k++) {
				u = ld32(blk + 2 + 4 * k) ^ flip;
				memcpy(out + b * qb + k * 64 + r * 4, &u, 4);
			}
		}
	}
}

/*
 * n bytes between a panel and a row: to the panel, or back to the row
 * when back (the K-quant layouts are pure moves, so one walk over them
 * serves kern_panel_pack and panel_gemm_rows).
 */
static void
xfer(uint8_t *panel, uint8_t *row, size_t n, int back)
{
	if (back)
		memcpy(row, panel, n);
	else
		memcpy(panel, row, n);
}

/*
 * Q4_K / Q5_K: panel rows [0, nr) of w, every superblock (layout
 * above), or back.  The two blocks share d, dmin and scales at the same
 * offsets.
 */
static void
pack_group_k(uint32_t wtype, uint8_t *w, size_t rb, size_t nr, size_t nb,
    uint8_t *out, int back)
{
	const int q5 = wtype == QT_Q5_K;
	const size_t bs = q5 ? sizeof(struct block_q5_k) :
	    sizeof(struct block_q4_k);
	const size_t kb = q5 ? PANEL_K5_BYTES : PANEL_K_BYTES;
	struct block_q4_k *k;
	struct block_q5_k *k5;
	uint8_t *qs, *p;
	size_t b, r;
	int j;

	for (b = 0; b < nb; b++) {
		p = out + b * kb;
		for (r = 0; r < nr; r++) {
			k = (void *)(w + r * rb + b * bs);
			k5 = (void *)k;
			qs = q5 ? k5->qs : k->qs;
			for (j = 0; j < 32; j++)
				xfer(p + (j / 8) * 512 + (j % 8) * 64 + r * 4,
				    qs + 4 * j, 4, back);
			for (j = 0; j < 3; j++)
				xfer(p + PANEL_K_SC + j * 64 + r * 4,
				    k->scales + 4 * j, 4, back);
			xfer(p + PANEL_K_D + r * 2, (uint8_t *)&k->d, 2, back);
			xfer(p + PANEL_K_M + r * 2, (uint8_t *)&k->dmin, 2,
			    back);
			for (j = 0; q5 && j < 8; j++)
				xfer(p + PANEL_K5_QH + j * 64 + r * 4,
				    k5->qh + 4 * j, 4, back);
		}
	}
}

/* Q6_K: panel rows [0, nr) of w (layout above), or back. */
static void
pack_group_k6(uint8_t *w, size_t rb, size_t nr, size_t nb, uint8_t *out,
    int back)
{
	struct block_q6_k *k;
	uint8_t *p, *d = out + nb * PANEL_K6_BYTES;
	size_t b, r;
	int j;

	for (b = 0; b < nb; b++) {
		p = out + b * PANEL_K6_BYTES;
		for (r = 0; r < nr; r++) {
			k = (void *)(w + r * rb + b * sizeof *k);
			for (j = 0; j < 32; j++)
				xfer(p + j * 64 + r * 4, k->ql + 4 * j, 4,
				    back);
			for (j = 0; j < 16; j++)
				xfer(p + PANEL_K6_QH + j * 64 + r * 4,
				    k->qh + 4 * j, 4, back);
			for (j = 0; j < 4; j++)
				xfer(p + PANEL_K6_SC + j * 64 + r * 4,
				    (uint8_t *)k->scales + 4 * j, 4, back);
			xfer(d + (b * PANEL_ROWS + r) * 2, (uint8_t *)&k->d, 2,
			    back);
		}
	}
}

void
kern_panel_pack(uint32_t wtype, const void *w, size_t row_bytes,
    size_t rows, size_t n, void *pk)
{
	size_t nb, gb, full, g, nr;
	uint8_t *out;

	if (!kern_panel_type(wtype))
		return;
	nb = n / panel_block_elems(wtype);
	gb = panel_group_bytes(wtype, nb);
	if (wtype == QT_Q6_K)
		full = nb * (PANEL_K6_BYTES + 2 * PANEL_ROWS);
	else if (panel_block_elems(wtype) == QK_K)
		full = gb;
	else
		full = nb * (panel_qbytes(wtype) + 2 * PANEL_ROWS);
	/* (The packers' rows are written only when unpacking.) */
	for (g = 0; g * PANEL_ROWS < rows; g++) {
		nr = rows - g * PANEL_ROWS < PANEL_ROWS ? rows - g *
		    PANEL_ROWS : PANEL_ROWS;
		out = (uint8_t *)pk + g * gb;
		/* Only what the rows do not fill is zeroed: the padding
		 * after the scales, and a last panel's missing rows. */
		if (nr < PANEL_ROWS)
			memset(out, 0, gb);
		else
			memset(out + full, 0, gb - full);
		if (wtype == QT_Q6_K)
			pack_group_k6((uint8_t *)(uintptr_t)w + g *
			    PANEL_ROWS * row_bytes, row_bytes, nr, nb, out, 0);
		else if (panel_block_elems(wtype) == QK_K)
			pack_group_k(wtype, (uint8_t *)(uintptr_t)w + g *
			    PANEL_ROWS * row_bytes, row_bytes, nr, nb, out, 0);
		else
			pack_group(wtype, (const uint8_t *)w + g * PANEL_ROWS *
			    row_bytes, row_bytes, nr, nb, out);
	}
}

/*
 * KERN_NO_PANELS leaves the panel kernel out (tools/fuzz.sh: clang's
 * fuzzer and sanitizers together took minutes over its unrolled tiles,
 * and the fuzzed entry points never reach it).
 */
#if defined(KERN_HAVE_X86) && !defined(KERN_NO_PANELS)
#define PANEL_KERNEL 1
#endif

int
kern_panel_usable(void)
{
#ifdef PANEL_KERNEL
	return kern_current_isa() == KERN_ISA_AVX512;
#else
	return 0;
#endif
}

/* The stride of y when y[t] = y[0] + t * ldy for every t < m, else 0. */
static size_t
uniform_ldy(float *const *y, size_t m)
{
	size_t ldy, t;

	if (m < 2 || y[1] <= y[0])
		return 0;
	ldy = (size_t)(y[1] - y[0]);
	for (t = 2; t < m; t++)
		if (y[t] != y[0] + t * ldy)
			return 0;
	return ldy;
}

/*
 * Prefill of a K-quant panel: rows [r0, r1) (r0 a multiple of 16) put
 * back as rows, a panel at a time, and run through kern_gemm, which
 * expands each superblock once for all m tokens where the panel kernel
 * unpacks it again for every tile of eight.  The same sums as the panel
 * kernel's (both are kern_gemm's).  -1 (nothing done) without memory or
 * a uniform y.
 */
static int
panel_gemm_rows(uint32_t wtype, const uint8_t *pk, size_t gb, size_t n,
    const void *xs, size_t m, float *const *y, size_t r0, size_t r1)
{
	size_t nb = n / QK_K, ldy = uniform_ldy(y, m), r, nr;
	uint64_t rb;
	uint8_t *rows;

	if (ldy == 0 || qtype_row_bytes(wtype, n, &rb) != 0 ||
	    (rows = malloc(PANEL_ROWS * (size_t)rb)) == NULL)
		return -1;
	for (r = r0; r < r1; r += PANEL_ROWS, pk += gb) {
		nr = r1 - r < PANEL_ROWS ? r1 - r : PANEL_ROWS;
		if (wtype == QT_Q6_K)
			pack_group_k6(rows, (size_t)rb, nr, nb,
			    (uint8_t *)(uintptr_t)pk, 1);
		else
			pack_group_k(wtype, rows, (size_t)rb, nr, nb,
			    (uint8_t *)(uintptr_t)pk, 1);
		kern_gemm(wtype, rows, (size_t)rb, n, xs, m, y[0] + r, ldy,
		    0, nr);
	}
	free(rows);
	return 0;
}

size_t
kern_panel_xs_bytes(uint32_t wtype, size_t n, size_t m)
{
	if (qk_is_k(wtype))
		return m * kern_xs_stride(wtype, n);
	if (!kern_panel_type(wtype))
		return 0;
	return (m * (n / QK) * PANEL_XB + 63) / 64 * 64;
}

/* The tile of m tokens that holds token t: its first token and size. */
static void
panel_tile_of(size_t m, size_t t, size_t *first, size_t *nt)
{
	size_t s = t / PANEL_T * PANEL_T, k;

	for (;; s += k) {
		k = kern_panel_tile(m - s);
		if (t < s + k)
			break;
	}
	*first = s;
	*nt = k;
}

/* Blocks kern_panel_prepare quantizes at a time, on its stack. */
#define PREP_BLOCKS 32

/*
 * Token t (x) into its tile: kern_prepare_xs on PREP_BLOCKS blocks at a
 * time (blocks quantize alone, so the bytes are the whole row's), each
 * block's q, d and c then copied to their places.
 */
static void
panel_prepare_token(uint32_t wtype, const float *x, size_t n, size_t m,
    size_t t, uint8_t *xs)
{
	_Alignas(64) uint8_t tmp[PREP_BLOCKS * (QK + 8) + 64];
	size_t nb = n / QK, first, nt, i, b0, k, nk;
	uint8_t *piece;

	panel_tile_of(m, t, &first, &nt);
	i = t - first;
	for (b0 = 0; b0 < nb; b0 += nk) {
		nk = nb - b0 < PREP_BLOCKS ? nb - b0 : PREP_BLOCKS;
		kern_prepare_xs(wtype, x + b0 * QK, 0, nk * QK, 1, tmp);
		for (k = 0; k < nk; k++) {
			piece = xs + (first * nb + (b0 + k) * nt) * PANEL_XB;
			memcpy(piece + QK * i, tmp + QK * k, QK);
			memcpy(piece + QK * nt + 4 * i, tmp + nk * QK + 4 * k,
			    4);
			memcpy(piece + (QK + 4) * nt + 4 * i, tmp + nk *
			    (QK + 4) + 4 * k, 4);
		}
	}
}

void
kern_panel_prepare(uint32_t wtype, const float *x, size_t ldx, size_t n,
    size_t m, size_t t0, size_t t1, void *xs)
{
	size_t t;

	if (qk_is_k(wtype)) {
		kern_prepare_xs(wtype, x, ldx, n, t1 - t0, (uint8_t *)xs +
		    t0 * kern_xs_stride(wtype, n));
		return;
	}
	if (!kern_panel_type(wtype))
		return;
	for (t = t0; t < t1; t++)
		panel_prepare_token(wtype, x + (t - t0) * ldx, n, m, t, xs);
}

void
kern_panel_gemm(uint32_t wtype, const void *pk, size_t n, const void *xs,
    size_t m, float *const *y, size_t r0, size_t r1)
{
	size_t gb = panel_group_bytes(wtype, n / panel_block_elems(wtype));

	if (r1 <= r0 || m == 0 || !kern_panel_type(wtype))
		return;
	if (qk_is_k(wtype) && m >= PANEL_ROWS_GEMM_MIN &&
	    panel_gemm_rows(wtype, (const uint8_t *)pk + r0 / PANEL_ROWS * gb,
	    gb, n, xs, m, y, r0, r1) == 0)
		return;
#ifdef PANEL_KERNEL
	kern_panel_gemm_avx512(wtype, (const uint8_t *)pk + r0 / PANEL_ROWS *
	    gb, n, xs, m, y, r0, r1 - r0);
#else
	(void)gb;
	(void)pk;
	(void)xs;
	(void)y;
#endif
}
