/*
 * quant: tensor element types (ggml's numbering, as stored in GGUF),
 * their block layouts, scalar half-precision conversions, and reference
 * (portable, exact) quantize/dequantize of rows.
 *
 * Block layouts (little-endian), QK = 32 elements per block:
 *   Q8_0: fp16 d; int8 q[32];               x[i] = d * q[i]          34 B
 *   Q4_0: fp16 d; uint8 q[16];              x[i]    = d * ((q[i] & 15) - 8)
 *                                           x[i+16] = d * ((q[i] >> 4) - 8)   18 B
 *   Q4_1: fp16 d, m; uint8 q[16];           x[i] = d * (q[i] & 15) + m
 *                                           x[i+16] = d * (q[i] >> 4) + m     20 B
 *   Q5_0: fp16 d; uint32 qh; uint8 q[16];   x[i] = d * (((q[i] & 15) |
 *                                             ((qh >> i) & 1) << 4) - 16)
 *                                           x[i+16] likewise with q[i] >> 4
 *                                             and bit i + 16 of qh         22 B
 *   Q5_1: fp16 d, m; uint32 qh; uint8 q[16];  as Q5_0 without the -16,
 *                                             plus m                       24 B
 *   IQ4_NL: fp16 d; uint8 q[16];            x[i] = d * K[q[i] & 15]
 *                                           x[i+16] = d * K[q[i] >> 4]        18 B
 *     K, the fixed non-linear codebook (quant_iq4_values): -127 -104 -83
 *     -65 -49 -35 -22 -10 1 13 25 38 53 69 89 113.
 * IQ4_XS has super-blocks of 256 elements, eight sub-blocks of 32:
 *   fp16 d; uint16 sh; uint8 sl[4]; uint8 q[128];                          136 B
 *     sub-block j (0..7) has the 6-bit scale
 *       s_j = ((sl[j / 2] >> 4 * (j % 2)) & 15) | ((sh >> 2 * j) & 3) << 4
 *     and is an IQ4_NL block of scale d * (s_j - 32) over q[16 j .. 16 j + 15].
 * (qh is stored as 4 bytes, little-endian: the structs keep it a byte array
 * so that they have no padding.)
 * F32, F16 (IEEE half) and BF16 (upper half of an f32) have block size 1.
 */
#ifndef SINKD_QUANT_H
#define SINKD_QUANT_H

#include <stddef.h>
#include <stdint.h>

enum qtype {
	QT_F32 = 0,
	QT_F16 = 1,
	QT_Q4_0 = 2,
	QT_Q4_1 = 3,
	QT_Q5_0 = 6,
	QT_Q5_1 = 7,
	QT_Q8_0 = 8,
	QT_Q2_K = 10, /* the K-quants: layouts in quant_k.h */
	QT_Q3_K = 11,
	QT_Q4_K = 12,
	QT_Q5_K = 13,
	QT_Q6_K = 14,
	QT_IQ4_NL = 20,
	QT_IQ4_XS = 23,
	QT_BF16 = 30,
};

#define QK 32
#define QK_XS 256 /* IQ4_XS super-block */

struct block_q8_0 {
	uint16_t d;
	int8_t q[QK];
};

struct block_q4_0 {
	uint16_t d;
	uint8_t q[QK / 2];
};

struct block_q4_1 {
	uint16_t d, m;
	uint8_t q[QK / 2];
};

struct block_q5_0 {
	uint16_t d;
	uint8_t qh[4];
	uint8_t q[QK / 2];
};

struct block_q5_1 {
	uint16_t d, m;
	uint8_t qh[4];
	uint8_t q[QK / 2];
};

struct block_iq4_nl {
	uint16_t d;
	uint8_t q[QK / 2];
};

struct block_iq4_xs {
	uint16_t d;
	uint16_t sh;
	uint8_t sl[QK_XS / 64];
	uint8_t q[QK_XS / 2];
};

/* The 16 values an IQ4_NL / IQ4_XS nibble indexes. */
extern const int8_t quant_iq4_values[16];

/* Name of any ggml type id ("Q6_K", "IQ2_XS", ...), "unknown" otherwise. */
const char *qtype_name(uint32_t type);
/* Type id for a name accepted by qtype_name (case-insensitive), -1 if none. */
int qtype_from_name(const char *name);
/*
 * 1 for the types sinkd computes with: F32, F16, BF16, Q8_0, Q4_0, Q4_1,
 * Q5_0, Q5_1, IQ4_NL, IQ4_XS, and the K-quants Q2_K..Q6_K of quant_k.h.
 */
int qtype_supported(uint32_t type);
/*
 * Elements per block and bytes per block for every type GGUF may carry,
 * supported or not (so a file with K-quants still validates and the error
 * can name the type); 0 for ids ggml never defined.
 */
uint32_t qtype_block_elems(uint32_t type);
size_t qtype_block_bytes(uint32_t type);
/* The i-th type sinkd computes with, in id order; -1 past the last. */
int qtype_supported_nth(int i);
/* Their names, sep between (for help and error texts), truncated to len. */
void qtype_supported_names(char *buf, size_t len, const char *sep);
/* Bytes of a row of n elements; -1 when n is not a multiple of the block. */
int qtype_row_bytes(uint32_t type, uint64_t n, uint64_t *out);

float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f); /* round to nearest even */
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f); /* round to nearest even */

/* n must be a multiple of the type's block size. */
void quant_dequantize_row(uint32_t type, const void *src, float *dst, size_t n);
void quant_quantize_row(uint32_t type, const float *src, void *dst, size_t n);

#endif
