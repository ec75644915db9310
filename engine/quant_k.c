/*
 * quant_k: the K-quant block formats (layouts in quant_k.h): exact
 * dequantization, a simple quantizer per type (per sub-block min/max or
 * absmax, scales rounded up so that every value stays in range), and the
 * unpacked form the kernels use.
 */
#include "quant_k.h"

#include <math.h>
#include <string.h>

#include "quant.h"

int
qk_is_k(uint32_t type)
{
	return type >= QT_Q2_K && type <= QT_Q6_K;
}

void
qk_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
	if (j < 4) {
		*sc = s[j] & 63;
		*m = s[j + 4] & 63;
	} else {
		*sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
		*m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
	}
}

int
qk_q3_scale(const uint8_t *s, int j)
{
	int lo = j < 8 ? s[j] & 15 : s[j - 8] >> 4;

	return lo | ((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4;
}

/* Code of element e of a Q4_K / Q5_K block's qs (0..15). */
static int
nib_k(const uint8_t *qs, int e)
{
	int c = e / 64, l = e % 32;

	return (e % 64) < 32 ? qs[32 * c + l] & 15 : qs[32 * c + l] >> 4;
}

/* Fifth bit of element e of a Q5_K block, as 0 or 16. */
static int
q5_high(const uint8_t *qh, int e)
{
	int c = e / 64, l = e % 32, bit = 2 * c + ((e % 64) >= 32);

	return ((qh[l] >> bit) & 1) << 4;
}

/* Two-bit code of element e of a Q2_K / Q3_K block's qs. */
static int
crumb(const uint8_t *qs, int e)
{
	int h = e / 128, k = (e % 128) / 32, l = e % 32;

	return (qs[32 * h + l] >> (2 * k)) & 3;
}

static int
q3_value(const struct block_q3_k *b, int e)
{
	int h = e / 128, k = (e % 128) / 32, l = e % 32;
	int hb = (b->hmask[l] >> (4 * h + k)) & 1;

	return crumb(b->qs, e) - (hb ? 0 : 4);
}

/* Unsigned six-bit code of element e of a Q6_K block (0..63). */
static int
q6_code(const struct block_q6_k *b, int e)
{
	int h = e / 128, k = (e % 128) / 32, l = e % 32;
	int lo = b->ql[64 * h + 32 * (k & 1) + l];

	lo = k < 2 ? lo & 15 : lo >> 4;
	return lo | ((b->qh[32 * h + l] >> (2 * k)) & 3) << 4;
}

void
qk_unpack(uint32_t type, const uint8_t *blk, struct qk_unpacked *o)
{
	int e, j, sc, m;

	switch (type) {
	case QT_Q4_K:
	case QT_Q5_K: {
		const struct block_q5_k *b5 = (const void *)blk;
		const struct block_q4_k *b4 = (const void *)blk;

		o->D = fp16_to_f32(b4->d);
		o->M = fp16_to_f32(b4->dmin);
		for (j = 0; j < 8; j++) {
			qk_scale_min(b4->scales, j, &sc, &m);
			o->sc[2 * j] = o->sc[2 * j + 1] = (int16_t)sc;
			o->m[2 * j] = o->m[2 * j + 1] = (int16_t)m;
		}
		for (e = 0; e < QK_K; e++)
			o->u[e] = type == QT_Q4_K ? (uint8_t)nib_k(b4->qs, e) :
			    (uint8_t)(nib_k(b5->qs, e) | q5_high(b5->qh, e));
		break;
	}
	case QT_Q6_K: {
		const struct block_q6_k *b = (const void *)blk;

		o->D = o->M = fp16_to_f32(b->d);
		for (j = 0; j < 16; j++) {
			o->sc[j] = b->scales[j];
			o->m[j] = (int16_t)(32 * b->scales[j]);
		}
		for (e = 0; e < QK_K; e++)
			o->u[e] = (uint8_t)q6_code(b, e);
		break;
	}
	case QT_Q3_K: {
		const struct block_q3_k *b = (const void *)blk;

		o->D = o->M = fp16_to_f32(b->d);
		for (j = 0; j < 16; j++) {
			o->sc[j] = (int16_t)(qk_q3_scale(b->scales, j) - 32);
			o->m[j] = (int16_t)(4 * o->sc[j]);
		}
		for (e = 0; e < QK_K; e++)
			o->u[e] = (uint8_t)(q3_value(b, e) + 4);
		break;
	}
	case QT_Q2_K: {
		const struct block_q2_k *b = (const void *)blk;

		o->D = fp16_to_f32(b->d);
		o->M = fp16_to_f32(b->dmin);
		for (j = 0; j < 16; j++) {
			o->sc[j] = b->scales[j] & 15;
			o->m[j] = b->scales[j] >> 4;
		}
		for (e = 0; e < QK_K; e++)
			o->u[e] = (uint8_t)crumb(b->qs, e);
		break;
	}
	}
}

/* Dequantization: the products grouped as the formats define them. */

static void
deq_q4_k(const struct block_q4_k *b, float *y)
{
	float d = fp16_to_f32(b->d), dmin = fp16_to_f32(b->dmin);
	int e, sc, m;

	for (e = 0; e < QK_K; e++) {
		qk_scale_min(b->scales, e / 32, &sc, &m);
		y[e] = d * (float)sc * (float)nib_k(b->qs, e) - dmin * (float)m;
	}
}

static void
deq_q5_k(const struct block_q5_k *b, float *y)
{
	float d = fp16_to_f32(b->d), dmin = fp16_to_f32(b->dmin);
	int e, sc, m;

	for (e = 0; e < QK_K; e++) {
		qk_scale_min(b->scales, e / 32, &sc, &m);
		y[e] = d * (float)sc * (float)(nib_k(b->qs, e) |
		    q5_high(b->qh, e)) - dmin * (float)m;
	}
}

static void
deq_q6_k(const struct block_q6_k *b, float *y)
{
	float d = fp16_to_f32(b->d);
	int e;

	for (e = 0; e < QK_K; e++)
		y[e] = d * (float)b->scales[e / 16] * (float)(q6_code(b, e) - 32);
}

static void
deq_q3_k(const struct block_q3_k *b, float *y)
{
	float d = fp16_to_f32(b->d);
	int e;

	for (e = 0; e < QK_K; e++)
		y[e] = d * (float)(qk_q3_scale(b->scales, e / 16) - 32) *
		    (float)q3_value(b, e);
}

static void
deq_q2_k(const struct block_q2_k *b, float *y)
{
	float d = fp16_to_f32(b->d), dmin = fp16_to_f32(b->dmin);
	int e, s;

	for (e = 0; e < QK_K; e++) {
		s = b->scales[e / 16];
		y[e] = d * (float)(s & 15) * (float)crumb(b->qs, e) -
		    dmin * (float)(s >> 4);
	}
}

static size_t
block_bytes(uint32_t type)
{
	return qtype_block_bytes(type);
}

void
qk_dequantize_row(uint32_t type, const void *src, float *dst, size_t n)
{
	const uint8_t *p = src;
	size_t i, bs = block_bytes(type);

	for (i = 0; i < n / QK_K; i++, p += bs, dst += QK_K) {
		switch (type) {
		case QT_Q4_K: deq_q4_k((const void *)p, dst); break;
		case QT_Q5_K: deq_q5_k((const void *)p, dst); break;
		case QT_Q6_K: deq_q6_k((const void *)p, dst); break;
		case QT_Q3_K: deq_q3_k((const void *)p, dst); break;
		case QT_Q2_K: deq_q2_k((const void *)p, dst); break;
		}
	}
}

/*
 * Quantization.  Each sub-block gets the float scale (and min) it needs;
 * those are then quantized against the block's largest, rounding scales
 * up so the sub-block's range still fits in its codes, and the codes are
 * computed from the stored (rounded) values.
 */

/*
 * The half at or above f (f >= 0, finite): a factor rounded down would
 * leave the largest sub-block needing a scale one past the maximum.
 */
static float
fp16_round(float f, uint16_t *h)
{
	*h = f32_to_fp16(f);
	if (fp16_to_f32(*h) < f && *h < 0x7bff)
		(*h)++;
	return fp16_to_f32(*h);
}

static int
clampi(long v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : (int)v;
}

/* Integer multiple of unit covering v (0 when unit is 0), at most max. */
static int
ceil_units(float v, float unit, int max)
{
	if (!(unit > 0.0f) || !(v > 0.0f))
		return 0;
	return clampi((long)ceilf(v / unit), 0, max);
}

static int
round_units(float v, float unit, int max)
{
	if (!(unit > 0.0f) || !(v > 0.0f))
		return 0;
	return clampi(lrintf(v / unit), 0, max);
}

/* x ~= step * q - off with q in [0, qmax] for ns sub-blocks of len. */
struct minmax_sub {
	float step[16], off[16];
};

static void
minmax_subs(const float *x, int ns, int len, int qmax, struct minmax_sub *s)
{
	int j, i;

	for (j = 0; j < ns; j++) {
		float lo = 0.0f, hi = 0.0f;

		for (i = 0; i < len; i++) {
			lo = x[j * len + i] < lo ? x[j * len + i] : lo;
			hi = x[j * len + i] > hi ? x[j * len + i] : hi;
		}
		s->step[j] = (hi - lo) / (float)qmax;
		s->off[j] = -lo;
	}
}

static float
max_of(const float *v, int n)
{
	float m = 0.0f;
	int i;

	for (i = 0; i < n; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

/* Codes of x for the stored step d * sc and offset dmin * m. */
static int
code_of(float x, float step, float off, int qmax)
{
	if (!(step > 0.0f))
		return 0;
	return clampi(lrintf((x + off) / step), 0, qmax);
}

/* Q4_K / Q5_K: 8 sub-blocks of 32, 6-bit scales and mins. */
static void
quant_q45_k(const float *x, uint8_t *scales, uint16_t *dh, uint16_t *mh,
    int qmax, uint8_t *codes)
{
	struct minmax_sub s;
	int sc[8], m[8], j, i;
	float d, dmin;

	minmax_subs(x, 8, 32, qmax, &s);
	d = fp16_round(max_of(s.step, 8) / 63.0f, dh);
	dmin = fp16_round(max_of(s.off, 8) / 63.0f, mh);
	for (j = 0; j < 8; j++) {
		sc[j] = ceil_units(s.step[j], d, 63);
		m[j] = round_units(s.off[j], dmin, 63);
		for (i = 0; i < 32; i++)
			codes[32 * j + i] = (uint8_t)code_of(x[32 * j + i],
			    d * (float)sc[j], dmin * (float)m[j], qmax);
	}
	for (j = 0; j < 4; j++) {
		scales[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
		scales[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
		scales[j + 8] = (uint8_t)((sc[j + 4] & 15) |
		    (m[j + 4] & 15) << 4);
	}
}

static void
quant_q4_k(const float *x, struct block_q4_k *b)
{
	uint8_t q[QK_K];
	int e;

	quant_q45_k(x, b->scales, &b->d, &b->dmin, 15, q);
	memset(b->qs, 0, sizeof b->qs);
	for (e = 0; e < QK_K; e++)
		b->qs[32 * (e / 64) + e % 32] |= (uint8_t)((e % 64) < 32 ?
		    q[e] : q[e] << 4);
}

static void
quant_q5_k(const float *x, struct block_q5_k *b)
{
	uint8_t q[QK_K];
	int e;

	quant_q45_k(x, b->scales, &b->d, &b->dmin, 31, q);
	memset(b->qs, 0, sizeof b->qs);
	memset(b->qh, 0, sizeof b->qh);
	for (e = 0; e < QK_K; e++) {
		int c = e / 64, l = e % 32, up = (e % 64) >= 32;

		b->qs[32 * c + l] |= (uint8_t)(up ? (q[e] & 15) << 4 :
		    q[e] & 15);
		b->qh[l] |= (uint8_t)((q[e] >> 4) << (2 * c + up));
	}
}

/* Symmetric: 16 sub-blocks of 16, x ~= step * q, q in [-qneg, qpos]. */
static void
absmax_steps(const float *x, int qpos, float *step)
{
	int j, i;

	for (j = 0; j < 16; j++) {
		float a = 0.0f;

		for (i = 0; i < 16; i++)
			a = fabsf(x[16 * j + i]) > a ? fabsf(x[16 * j + i]) : a;
		step[j] = a / (float)qpos;
	}
}

static int
sym_code(float x, float step, int qneg, int qpos)
{
	if (!(step > 0.0f))
		return 0;
	return clampi(lrintf(x / step), -qneg, qpos);
}

static void
quant_q6_k(const float *x, struct block_q6_k *b)
{
	float step[16], d;
	int sc[16], j, e;

	absmax_steps(x, 31, step);
	d = fp16_round(max_of(step, 16) / 127.0f, &b->d);
	for (j = 0; j < 16; j++) {
		sc[j] = ceil_units(step[j], d, 127);
		b->scales[j] = (int8_t)sc[j];
	}
	memset(b->ql, 0, sizeof b->ql);
	memset(b->qh, 0, sizeof b->qh);
	for (e = 0; e < QK_K; e++) {
		int h = e / 128, k = (e % 128) / 32, l = e % 32;
		int q = sym_code(x[e], d * (float)sc[e / 16], 32, 31) + 32;

		b->ql[64 * h + 32 * (k & 1) + l] |= (uint8_t)(k < 2 ?
		    q & 15 : (q & 15) << 4);
		b->qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * k));
	}
}

static void
quant_q3_k(const float *x, struct block_q3_k *b)
{
	float step[16], d;
	int sc[16], j, e;

	absmax_steps(x, 3, step);
	d = fp16_round(max_of(step, 16) / 31.0f, &b->d);
	memset(b->scales, 0, sizeof b->scales);
	for (j = 0; j < 16; j++) {
		int s;

		sc[j] = ceil_units(step[j], d, 31);
		s = sc[j] + 32;
		b->scales[j % 8] |= (uint8_t)(j < 8 ? s & 15 : (s & 15) << 4);
		b->scales[8 + j % 4] |= (uint8_t)((s >> 4) << (2 * (j / 4)));
	}
	memset(b->qs, 0, sizeof b->qs);
	memset(b->hmask, 0, sizeof b->hmask);
	for (e = 0; e < QK_K; e++) {
		int h = e / 128, k = (e % 128) / 32, l = e % 32;
		int q = sym_code(x[e], d * (float)sc[e / 16], 4, 3) + 4;

		b->qs[32 * h + l] |= (uint8_t)((q & 3) << (2 * k));
		b->hmask[l] |= (uint8_t)((q >> 2) << (4 * h + k));
	}
}

static void
quant_q2_k(const float *x, struct block_q2_k *b)
{
	struct minmax_sub s;
	float d, dmin;
	int sc[16], m[16], j, e;

	minmax_subs(x, 16, 16, 3, &s);
	d = fp16_round(max_of(s.step, 16) / 15.0f, &b->d);
	dmin = fp16_round(max_of(s.off, 16) / 15.0f, &b->dmin);
	for (j = 0; j < 16; j++) {
		sc[j] = ceil_units(s.step[j], d, 15);
		m[j] = round_units(s.off[j], dmin, 15);
		b->scales[j] = (uint8_t)(sc[j] | m[j] << 4);
	}
	memset(b->qs, 0, sizeof b->qs);
	for (e = 0; e < QK_K; e++) {
		int q = code_of(x[e], d * (float)sc[e / 16],
		    dmin * (float)m[e / 16], 3);

		b->qs[32 * (e / 128) + e % 32] |= (uint8_t)(q <<
		    (2 * ((e % 128) / 32)));
	}
}

void
qk_quantize_row(uint32_t type, const float *src, void *dst, size_t n)
{
	uint8_t *p = dst;
	size_t i, bs = block_bytes(type);

	for (i = 0; i < n / QK_K; i++, p += bs, src += QK_K) {
		switch (type) {
		case QT_Q4_K: quant_q4_k(src, (void *)p); break;
		case QT_Q5_K: quant_q5_k(src, (void *)p); break;
		case QT_Q6_K: quant_q6_k(src, (void *)p); break;
		case QT_Q3_K: quant_q3_k(src, (void *)p); break;
		case QT_Q2_K: quant_q2_k(src, (void *)p); break;
		}
	}
}
