/*
 * quant_ql: the exact reference conversions of the 32-element block types
 * beside Q8_0 and Q4_0: Q4_1, Q5_0, Q5_1 (linear, with a minimum or a
 * fifth bit) and IQ4_NL, IQ4_XS (nibbles into a fixed non-linear
 * codebook).  Layouts in quant.h.  The quantizers are simple (absmax or
 * min-max per block, nearest codebook entry): they exist so that
 * sinkd-mkmodel can write these types, not to compete with llama.cpp's.
 */
#include "quant_ql.h"

#include <math.h>
#include <string.h>

const int8_t quant_iq4_values[16] = {
	-127, -104, -83, -65, -49, -35, -22, -10,
	1, 13, 25, 38, 53, 69, 89, 113,
};

static uint32_t
ld_qh(const uint8_t *qh)
{
	return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 |
	    (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void
st_qh(uint8_t *qh, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		qh[i] = (uint8_t)(v >> 8 * i);
}

/* Element j (0..31) of a block's nibbles, plus bit j of qh as bit 4. */
static int
nib(const uint8_t *q, int j)
{
	return j < QK / 2 ? q[j] & 15 : q[j - QK / 2] >> 4;
}

static int
nib5(const uint8_t *q, uint32_t qh, int j)
{
	return nib(q, j) | (int)((qh >> j) & 1) << 4;
}

static void
set_nib(uint8_t *q, int j, int v)
{
	if (j < QK / 2)
		q[j] = (uint8_t)((q[j] & 0xf0) | v);
	else
		q[j - QK / 2] = (uint8_t)((q[j - QK / 2] & 0x0f) | v << 4);
}

/* The 6-bit scale of IQ4_XS sub-block j. */
int
quant_xs_scale(const struct block_iq4_xs *b, int j)
{
	return ((b->sl[j / 2] >> 4 * (j % 2)) & 15) |
	    ((b->sh >> 2 * j) & 3) << 4;
}

static void
iq4_block(float d, const uint8_t *q, float *dst)
{
	int j;

	for (j = 0; j < QK; j++)
		dst[j] = d * (float)quant_iq4_values[nib(q, j)];
}

int
quant_ql_dequantize(uint32_t type, const void *src, float *dst, size_t n)
{
	size_t i, nb = n / QK;
	float d, m;
	uint32_t qh;
	int j;

	switch (type) {
	case QT_Q4_1:
		for (i = 0; i < nb; i++) {
			const struct block_q4_1 *b = (const struct block_q4_1 *)src + i;
			d = fp16_to_f32(b->d);
			m = fp16_to_f32(b->m);
			for (j = 0; j < QK; j++)
				dst[i * QK + j] = d * (float)nib(b->q, j) + m;
		}
		return 1;
	case QT_Q5_0:
		for (i = 0; i < nb; i++) {
			const struct block_q5_0 *b = (const struct block_q5_0 *)src + i;
			d = fp16_to_f32(b->d);
			qh = ld_qh(b->qh);
			for (j = 0; j < QK; j++)
				dst[i * QK + j] = d * (float)(nib5(b->q, qh, j) - 16);
		}
		return 1;
	case QT_Q5_1:
		for (i = 0; i < nb; i++) {
			const struct block_q5_1 *b = (const struct block_q5_1 *)src + i;
			d = fp16_to_f32(b->d);
			m = fp16_to_f32(b->m);
			qh = ld_qh(b->qh);
			for (j = 0; j < QK; j++)
				dst[i * QK + j] = d * (float)nib5(b->q, qh, j) + m;
		}
		return 1;
	case QT_IQ4_NL:
		for (i = 0; i < nb; i++) {
			const struct block_iq4_nl *b = (const struct block_iq4_nl *)src + i;
			iq4_block(fp16_to_f32(b->d), b->q, dst + i * QK);
		}
		return 1;
	case QT_IQ4_XS:
		for (i = 0; i < n / QK_XS; i++) {
			const struct block_iq4_xs *b = (const struct block_iq4_xs *)src + i;
			d = fp16_to_f32(b->d);
			for (j = 0; j < QK_XS / QK; j++)
				iq4_block(d * (float)(quant_xs_scale(b, j) - 32),
				    b->q + j * QK / 2, dst + i * QK_XS + j * QK);
		}
		return 1;
	}
	return 0;
}

static int
clampi(long v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : (int)v;
}

/* The block's element of largest magnitude, sign kept. */
static float
signed_absmax(const float *x, int n)
{
	float max = 0.0f, amax = 0.0f;
	int j;

	for (j = 0; j < n; j++) {
		if (fabsf(x[j]) > amax) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	}
	return max;
}

/*
 * Min-max: m is the minimum, d spans the range in top steps.  q is chosen
 * against d and m as stored (rounded to fp16), so the error is what the
 * file will give.
 */
static void
quantize_minmax(const float *x, int top, uint16_t *dh, uint16_t *mh, int *q)
{
	float lo = x[0], hi = x[0], d, m, id;
	int j;

	for (j = 1; j < QK; j++) {
		lo = x[j] < lo ? x[j] : lo;
		hi = x[j] > hi ? x[j] : hi;
	}
	*dh = f32_to_fp16((hi - lo) / (float)top);
	*mh = f32_to_fp16(lo);
	d = fp16_to_f32(*dh);
	m = fp16_to_f32(*mh);
	id = d != 0.0f ? 1.0f / d : 0.0f;
	for (j = 0; j < QK; j++)
		q[j] = clampi(lrintf((x[j] - m) * id), 0, top);
}

/* Absmax: the extreme maps to -half, the other end clamps at half - 1. */
static void
quantize_absmax(const float *x, int half, uint16_t *dh, int *q)
{
	float d, id;
	int j;

	*dh = f32_to_fp16(signed_absmax(x, QK) / (float)-half);
	d = fp16_to_f32(*dh);
	id = d != 0.0f ? 1.0f / d : 0.0f;
	for (j = 0; j < QK; j++)
		q[j] = clampi(lrintf(x[j] * id), -half, half - 1) + half;
}

/* Binary search between midpoints (the codebook is sorted); ties go low. */
static int
iq4_nearest(float v)
{
	int lo = 0, hi = 15, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (v > ((float)quant_iq4_values[mid] +
		    (float)quant_iq4_values[mid + 1]) / 2.0f)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Nibbles of one codebook block of scale d (as stored) into q[16]. */
static void
iq4_nibbles(const float *x, float d, uint8_t *q)
{
	float id = d != 0.0f ? 1.0f / d : 0.0f;
	int j;

	memset(q, 0, QK / 2);
	for (j = 0; j < QK; j++)
		set_nib(q, j, iq4_nearest(x[j] * id));
}

static void
pack(uint8_t *q, const int *v, uint32_t *qh)
{
	int j;

	memset(q, 0, QK / 2);
	*qh = 0;
	for (j = 0; j < QK; j++) {
		set_nib(q, j, v[j] & 15);
		*qh |= (uint32_t)(v[j] >> 4 & 1) << j;
	}
}

static void
quantize_xs(const float *x, struct block_iq4_xs *b)
{
	float dl[QK_XS / QK], d, id;
	int j, s;

	/* Each sub-block's own absmax scale, then those to 6 bits. */
	for (j = 0; j < QK_XS / QK; j++)
		dl[j] = signed_absmax(x + j * QK, QK) / -127.0f;
	b->d = f32_to_fp16(signed_absmax(dl, QK_XS / QK) / -32.0f);
	d = fp16_to_f32(b->d);
	id = d != 0.0f ? 1.0f / d : 0.0f;
	b->sh = 0;
	memset(b->sl, 0, sizeof b->sl);
	for (j = 0; j < QK_XS / QK; j++) {
		s = clampi(lrintf(dl[j] * id), -32, 31) + 32;
		b->sl[j / 2] |= (uint8_t)((s & 15) << 4 * (j % 2));
		b->sh |= (uint16_t)((s >> 4) << 2 * j);
		iq4_nibbles(x + j * QK, d * (float)(s - 32), b->q + j * QK / 2);
	}
}

int
quant_ql_quantize(uint32_t type, const float *src, void *dst, size_t n)
{
	size_t i, nb = n / QK;
	int q[QK];
	uint32_t qh;

	switch (type) {
	case QT_Q4_1:
		for (i = 0; i < nb; i++) {
			struct block_q4_1 *b = (struct block_q4_1 *)dst + i;
			quantize_minmax(src + i * QK, 15, &b->d, &b->m, q);
			pack(b->q, q, &qh);
		}
		return 1;
	case QT_Q5_0:
		for (i = 0; i < nb; i++) {
			struct block_q5_0 *b = (struct block_q5_0 *)dst + i;
			quantize_absmax(src + i * QK, 16, &b->d, q);
			pack(b->q, q, &qh);
			st_qh(b->qh, qh);
		}
		return 1;
	case QT_Q5_1:
		for (i = 0; i < nb; i++) {
			struct block_q5_1 *b = (struct block_q5_1 *)dst + i;
			quantize_minmax(src + i * QK, 31, &b->d, &b->m, q);
			pack(b->q, q, &qh);
			st_qh(b->qh, qh);
		}
		return 1;
	case QT_IQ4_NL:
		for (i = 0; i < nb; i++) {
			struct block_iq4_nl *b = (struct block_iq4_nl *)dst + i;
			b->d = f32_to_fp16(signed_absmax(src + i * QK, QK) /
			    -127.0f);
			iq4_nibbles(src + i * QK, fp16_to_f32(b->d), b->q);
		}
		return 1;
	case QT_IQ4_XS:
		for (i = 0; i < n / QK_XS; i++)
			quantize_xs(src + i * QK_XS, (struct block_iq4_xs *)dst + i);
		return 1;
	}
	return 0;
}
