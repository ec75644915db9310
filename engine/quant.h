/*
 * quant: tensor element types (ggml's numbering, as stored in GGUF),
 * their block layouts, scalar half-precision conversions, and reference
 * (portable, exact) quantize/dequantize of rows.
 *
 * Block layouts (little-endian), QK = 32 elements per block:
 *   Q8_0: fp16 d; int8 q[32];               x[i] = d * q[i]          34 B
 *   Q4_0: fp16 d; uint8 q[16];              x[i]    = d * ((q[i] & 15) - 8)
 *                                           x[i+16] = d * ((q[i] >> 4) - 8)   18 B
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
	QT_Q8_0 = 8,
	QT_BF16 = 30,
};

#define QK 32

struct block_q8_0 {
	uint16_t d;
	int8_t q[QK];
};

struct block_q4_0 {
	uint16_t d;
	uint8_t q[QK / 2];
};

/* Name of any ggml type id ("Q6_K", "IQ2_XS", ...), "unknown" otherwise. */
const char *qtype_name(uint32_t type);
/* Type id for a name accepted by qtype_name (case-insensitive), -1 if none. */
int qtype_from_name(const char *name);
/*
 * 1 for the types sinkd computes with (F32, F16, BF16, Q8_0, Q4_0, and
 * the K-quants Q2_K..Q6_K of quant_k.h).
 */
int qtype_supported(uint32_t type);
/*
 * Elements per block and bytes per block for every type GGUF may carry,
 * supported or not (so a file with K-quants still validates and the error
 * can name the type); 0 for ids ggml never defined.
 */
uint32_t qtype_block_elems(uint32_t type);
size_t qtype_block_bytes(uint32_t type);
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
