/*
 * quant_k: the K-quant weight types (Q2_K .. Q6_K): their block layouts,
 * exact dequantization, a simple quantizer for each, and the common
 * "unpacked" form the kernels (kernels_k*.c) compute with.
 *
 * Super-blocks of QK_K = 256 elements, little-endian, fp16 = IEEE half.
 * Element e of a block lies in sub-block e / 16 (or e / 32), below.
 *
 * Q4_K (144 B): fp16 d; fp16 dmin; uint8 scales[12]; uint8 qs[128].
 *   8 sub-blocks of 32, each with a 6-bit scale sc[j] and min m[j]:
 *     j < 4:  sc = scales[j] & 63,   m = scales[j + 4] & 63
 *     j >= 4: sc = (scales[j + 4] & 15) | (scales[j - 4] >> 6) << 4
 *             m  = (scales[j + 4] >> 4) | (scales[j] >> 6) << 4
 *   Element 64c + l (c < 4, l < 32) is the low nibble of qs[32c + l],
 *   element 64c + 32 + l its high nibble; sub-block j = e / 32.
 *     x = (d * sc) * q - (dmin * m)
 * Q5_K (176 B): fp16 d; fp16 dmin; uint8 scales[12]; uint8 qh[32];
 *   uint8 qs[128].  As Q4_K, plus a fifth bit: element 64c + l takes bit
 *   2c of qh[l] as its bit 4, element 64c + 32 + l bit 2c + 1.
 * Q6_K (210 B): uint8 ql[128]; uint8 qh[64]; int8 scales[16]; fp16 d.
 *   Element 128h + 32k + l (h < 2, k < 4, l < 32): low four bits from
 *   ql[64h + 32 (k & 1) + l] (low nibble for k < 2, high for k >= 2),
 *   bits 4-5 from (qh[32h + l] >> 2k) & 3.
 *     x = (d * scales[e / 16]) * (q - 32)
 * Q3_K (110 B): uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; fp16 d.
 *   Element 128h + 32k + l: two bits (qs[32h + l] >> 2k) & 3, and bit
 *   4h + k of hmask[l]; q = low2 - (that bit ? 0 : 4), in -4..3.
 *   16 sub-blocks of 16 with 6-bit scales s (j = e / 16):
 *     s = (j < 8 ? scales[j] & 15 : scales[j - 8] >> 4)
 *         | ((scales[8 + j % 4] >> 2 (j / 4)) & 3) << 4
 *     x = (d * (s - 32)) * q
 * Q2_K (84 B): uint8 scales[16]; uint8 qs[64]; fp16 d; fp16 dmin.
 *   Element 128h + 32k + l: q = (qs[32h + l] >> 2k) & 3; sub-block
 *   j = e / 16 has scale scales[j] & 15 and min scales[j] >> 4:
 *     x = (d * sc) * q - (dmin * m)
 * Q8_K (292 B, activations only in ggml; not a weight type here).
 *
 * The unpacked form of any of them: unsigned codes u (0..63), per
 * sub-block of 16 an integer scale sc and an integer "min" m, and two
 * float factors D and M, with
 *     x[e] = D * sc[e / 16] * u[e] - M * m[e / 16]
 * (Q6_K: u = q + 32, m = 32 sc; Q3_K: u = q + 4, sc = s - 32, m = 4 sc).
 * This is equal in exact arithmetic, not bit for bit in float, to the
 * dequantization above: it is what integer dot products need.
 */
#ifndef SINKD_QUANT_K_H
#define SINKD_QUANT_K_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"

#define QK_K 256

struct block_q4_k {
	uint16_t d, dmin;
	uint8_t scales[12];
	uint8_t qs[QK_K / 2];
};

struct block_q5_k {
	uint16_t d, dmin;
	uint8_t scales[12];
	uint8_t qh[QK_K / 8];
	uint8_t qs[QK_K / 2];
};

struct block_q6_k {
	uint8_t ql[QK_K / 2];
	uint8_t qh[QK_K / 4];
	int8_t scales[QK_K / 16];
	uint16_t d;
};

struct block_q3_k {
	uint8_t hmask[QK_K / 8];
	uint8_t qs[QK_K / 4];
	uint8_t scales[12];
	uint16_t d;
};

struct block_q2_k {
	uint8_t scales[QK_K / 16];
	uint8_t qs[QK_K / 4];
	uint16_t d, dmin;
};

struct qk_unpacked {
	float D, M;
	int16_t sc[QK_K / 16];
	int16_t m[QK_K / 16];
	uint8_t u[QK_K];
};

/* 1 for Q2_K .. Q6_K. */
int qk_is_k(uint32_t type);
/* Scale and min j (0..7) of a Q4_K / Q5_K block's 12 packed bytes. */
void qk_scale_min(const uint8_t *scales, int j, int *sc, int *m);
/* Scale j (0..15) of a Q3_K block, 0..63 (before the -32). */
int qk_q3_scale(const uint8_t *scales, int j);

/* n a multiple of QK_K. */
void qk_dequantize_row(uint32_t type, const void *src, float *dst, size_t n);
void qk_quantize_row(uint32_t type, const float *src, void *dst, size_t n);
/* One block of type at blk into the unpacked form. */
void qk_unpack(uint32_t type, const uint8_t *blk, struct qk_unpacked *out);

#endif
