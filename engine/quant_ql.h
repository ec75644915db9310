/*
 * quant_ql: reference conversions of Q4_1, Q5_0, Q5_1, IQ4_NL and IQ4_XS
 * (layouts in quant.h), called by quant.c's dispatch; the kernels use the
 * small helpers.
 */
#ifndef SINKD_QUANT_QL_H
#define SINKD_QUANT_QL_H

#include "quant.h"

/* 1 when type is one of these five and the row was converted, else 0. */
int quant_ql_dequantize(uint32_t type, const void *src, float *dst, size_t n);
int quant_ql_quantize(uint32_t type, const float *src, void *dst, size_t n);

/* The 6-bit scale (0..63, used as s - 32) of IQ4_XS sub-block j. */
int quant_xs_scale(const struct block_iq4_xs *, int j);

#endif
