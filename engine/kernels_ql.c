/*
 * kernels_ql: the portable kernels of Q4_1, Q5_0, Q5_1, IQ4_NL and IQ4_XS,
 * the definition their SIMD versions (kernels_ql_x86.c) are checked
 * against: exact integer block dots, then the block's float scales.
 */
#include "kernels_int.h"

#include <string.h>

#include "quant_ql.h"

int
kern_ql_type(uint32_t wtype)
{
	return wtype == QT_Q4_1 || wtype == QT_Q5_0 || wtype == QT_Q5_1 ||
	    wtype == QT_IQ4_NL || wtype == QT_IQ4_XS;
}

static float
half(const uint8_t *p)
{
	uint16_t h;

	memcpy(&h, p, sizeof h);
	return fp16_to_f32(h);
}

static uint32_t
ld_qh(const uint8_t *p)
{
	uint32_t u;

	memcpy(&u, p, sizeof u);
	return u; /* little-endian hosts only, as the whole engine */
}

/* Nibbles q[16] of 32 elements: low halves 0..15, high halves 16..31. */
static void
nibbles(const uint8_t *q, int8_t *w)
{
	int j;

	for (j = 0; j < QK / 2; j++) {
		w[j] = (int8_t)(q[j] & 15);
		w[j + QK / 2] = (int8_t)(q[j] >> 4);
	}
}

static void
fifth_bit(uint32_t qh, int8_t *w, int off)
{
	int j;

	for (j = 0; j < QK; j++)
		w[j] = (int8_t)(w[j] + (int)((qh >> j) & 1) * 16 + off);
}

static void
codebook(int8_t *w)
{
	int j;

	for (j = 0; j < QK; j++)
		w[j] = quant_iq4_values[w[j]];
}

void
kern_ql_unpack(uint32_t wtype, const uint8_t *row, size_t b, int8_t w[QK],
    float *d, float *m)
{
	const uint8_t *p;
	struct block_iq4_xs xs;

	*m = 0.0f;
	switch (wtype) {
	case QT_Q4_1:
		p = row + b * sizeof(struct block_q4_1);
		*d = half(p);
		*m = half(p + 2);
		nibbles(p + 4, w);
		break;
	case QT_Q5_0:
		p = row + b * sizeof(struct block_q5_0);
		*d = half(p);
		nibbles(p + 6, w);
		fifth_bit(ld_qh(p + 2), w, -16);
		break;
	case QT_Q5_1:
		p = row + b * sizeof(struct block_q5_1);
		*d = half(p);
		*m = half(p + 2);
		nibbles(p + 8, w);
		fifth_bit(ld_qh(p + 4), w, 0);
		break;
	case QT_IQ4_NL:
		p = row + b * sizeof(struct block_iq4_nl);
		*d = half(p);
		nibbles(p + 2, w);
		codebook(w);
		break;
	case QT_IQ4_XS:
		p = row + b / 8 * sizeof xs;
		memcpy(&xs, p, 8);
		*d = half(p) * (float)(quant_xs_scale(&xs, (int)(b % 8)) - 32);
		nibbles(p + 8 + b % 8 * QK / 2, w);
		codebook(w);
		break;
	default:
		memset(w, 0, QK);
		*d = 0.0f;
		break;
	}
}

float
kern_ql_row(uint32_t wtype, const uint8_t *row, size_t n, struct kern_xq v)
{
	size_t b;
	float acc = 0.0f, d, m;
	int8_t w[QK];
	int32_t s, sx;
	int j;

	for (b = 0; b < n / QK; b++) {
		kern_ql_unpack(wtype, row, b, w, &d, &m);
		s = 0;
		sx = 0;
		for (j = 0; j < QK; j++) {
			s += w[j] * v.q[b * QK + j];
			sx += v.q[b * QK + j];
		}
		acc += (float)s * (d * v.d[b]) + (float)sx * (m * v.d[b]);
	}
	return acc;
}
