/*
 * quant: element types, block layouts and the exact reference conversions.
 * The SIMD paths in kernels.c and matmul.c are checked against these.
 */
#include "quant.h"
#include "quant_ql.h"
#include "quant_k.h"

#include <math.h>
#include <string.h>
#include <strings.h>

struct qtype_info {
	const char *name;
	uint32_t elems; /* per block */
	uint32_t bytes; /* per block */
};

/* ggml's type ids; gaps are ids ggml retired (Q4_2, Q4_3, ...). */
static const struct qtype_info qtypes[] = {
	[0] = { "F32", 1, 4 },
	[1] = { "F16", 1, 2 },
	[2] = { "Q4_0", 32, 18 },
	[3] = { "Q4_1", 32, 20 },
	[6] = { "Q5_0", 32, 22 },
	[7] = { "Q5_1", 32, 24 },
	[8] = { "Q8_0", 32, 34 },
	[9] = { "Q8_1", 32, 36 },
	[10] = { "Q2_K", 256, 84 },
	[11] = { "Q3_K", 256, 110 },
	[12] = { "Q4_K", 256, 144 },
	[13] = { "Q5_K", 256, 176 },
	[14] = { "Q6_K", 256, 210 },
	[15] = { "Q8_K", 256, 292 },
	[16] = { "IQ2_XXS", 256, 66 },
	[17] = { "IQ2_XS", 256, 74 },
	[18] = { "IQ3_XXS", 256, 98 },
	[19] = { "IQ1_S", 256, 50 },
	[20] = { "IQ4_NL", 32, 18 },
	[21] = { "IQ3_S", 256, 110 },
	[22] = { "IQ2_S", 256, 82 },
	[23] = { "IQ4_XS", 256, 136 },
	[24] = { "I8", 1, 1 },
	[25] = { "I16", 1, 2 },
	[26] = { "I32", 1, 4 },
	[27] = { "I64", 1, 8 },
	[28] = { "F64", 1, 8 },
	[29] = { "IQ1_M", 256, 56 },
	[30] = { "BF16", 1, 2 },
	[34] = { "TQ1_0", 256, 54 },
	[35] = { "TQ2_0", 256, 66 },
};

#define N_QTYPES (sizeof(qtypes) / sizeof(qtypes[0]))

static const struct qtype_info *
qtype_info(uint32_t type)
{
	if (type >= N_QTYPES || qtypes[type].name == NULL)
		return NULL;
	return &qtypes[type];
}

const char *
qtype_name(uint32_t type)
{
	const struct qtype_info *qi = qtype_info(type);

	return qi != NULL ? qi->name : "unknown";
}

int
qtype_from_name(const char *name)
{
	uint32_t i;

	for (i = 0; i < N_QTYPES; i++) {
		if (qtypes[i].name != NULL && strcasecmp(qtypes[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

int
qtype_supported(uint32_t type)
{
	return type == QT_F32 || type == QT_F16 || type == QT_BF16 ||
	    type == QT_Q8_0 || type == QT_Q4_0 || type == QT_Q4_1 ||
	    type == QT_Q5_0 || type == QT_Q5_1 || type == QT_IQ4_NL ||
	    type == QT_IQ4_XS || qk_is_k(type);
}

int
qtype_supported_nth(int i)
{
	uint32_t t;

	for (t = 0; t < N_QTYPES; t++) {
		if (qtype_supported(t) && i-- == 0)
			return (int)t;
	}
	return -1;
}

void
qtype_supported_names(char *buf, size_t len, const char *sep)
{
	size_t off = 0, k;
	const char *parts[2];
	int i, t, p;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (i = 0; (t = qtype_supported_nth(i)) >= 0; i++) {
		parts[0] = i > 0 ? sep : "";
		parts[1] = qtype_name((uint32_t)t);
		for (p = 0; p < 2; p++)
			for (k = 0; parts[p][k] != '\0' && off + 1 < len; k++)
				buf[off++] = parts[p][k];
	}
	buf[off] = '\0';
}

uint32_t
qtype_block_elems(uint32_t type)
{
	const struct qtype_info *qi = qtype_info(type);

	return qi != NULL ? qi->elems : 0;
}

size_t
qtype_block_bytes(uint32_t type)
{
	const struct qtype_info *qi = qtype_info(type);

	return qi != NULL ? qi->bytes : 0;
}

int
qtype_row_bytes(uint32_t type, uint64_t n, uint64_t *out)
{
	const struct qtype_info *qi = qtype_info(type);

	if (qi == NULL || n % qi->elems != 0)
		return -1;
	if (n / qi->elems > UINT64_MAX / qi->bytes)
		return -1;
	*out = n / qi->elems * qi->bytes;
	return 0;
}

static uint32_t
f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof u);
	return u;
}

static float
bits_f32(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof f);
	return f;
}

float
fp16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;

	if (exp == 0x1f) /* inf, nan */
		return bits_f32(sign | 0x7f800000 | (man << 13));
	if (exp == 0) { /* zero, subnormal: man * 2^-24 */
		float v = (float)man * 5.9604644775390625e-8f;
		return sign ? -v : v;
	}
	return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t
f32_to_fp16(float f)
{
	uint32_t u = f32_bits(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
	uint32_t au = u & 0x7fffffff;
	float a;

	if (au >= 0x7f800000) /* inf, nan (keep it a nan) */
		return sign | 0x7c00 | (au > 0x7f800000 ? 0x200 : 0);
	if (au >= 0x477ff000) /* rounds to >= 65520: overflow */
		return sign | 0x7c00;
	if (au < 0x38800000) {
		/* Subnormal half: the FPU rounds to nearest even for us. */
		a = bits_f32(au);
		return sign | (uint16_t)lrintf(a * 16777216.0f);
	}
	/* Normal: drop 13 mantissa bits, round to nearest even. */
	au += 0x0fff + ((au >> 13) & 1);
	return sign | (uint16_t)((au - (112u << 23)) >> 13);
}

float
bf16_to_f32(uint16_t h)
{
	return bits_f32((uint32_t)h << 16);
}

uint16_t
f32_to_bf16(float f)
{
	uint32_t u = f32_bits(f);

	if ((u & 0x7fffffff) > 0x7f800000) /* nan: keep it quiet and a nan */
		return (uint16_t)((u >> 16) | 0x40);
	u += 0x7fff + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

static void
dequantize_q8_0(const struct block_q8_0 *b, float *dst, size_t n)
{
	size_t i, j;

	for (i = 0; i < n / QK; i++) {
		float d = fp16_to_f32(b[i].d);
		for (j = 0; j < QK; j++)
			dst[i * QK + j] = d * (float)b[i].q[j];
	}
}

static void
dequantize_q4_0(const struct block_q4_0 *b, float *dst, size_t n)
{
	size_t i, j;

	for (i = 0; i < n / QK; i++) {
		float d = fp16_to_f32(b[i].d);
		for (j = 0; j < QK / 2; j++) {
			dst[i * QK + j] = d * (float)((b[i].q[j] & 15) - 8);
			dst[i * QK + j + QK / 2] = d * (float)((b[i].q[j] >> 4) - 8);
		}
	}
}

void
quant_dequantize_row(uint32_t type, const void *src, float *dst, size_t n)
{
	const uint16_t *h = src;
	size_t i;

	switch (type) {
	case QT_F32:
		memcpy(dst, src, n * sizeof(float));
		break;
	case QT_F16:
		for (i = 0; i < n; i++)
			dst[i] = fp16_to_f32(h[i]);
		break;
	case QT_BF16:
		for (i = 0; i < n; i++)
			dst[i] = bf16_to_f32(h[i]);
		break;
	case QT_Q8_0:
		dequantize_q8_0(src, dst, n);
		break;
	case QT_Q4_0:
		dequantize_q4_0(src, dst, n);
		break;
	default:
		if (qk_is_k(type))
			qk_dequantize_row(type, src, dst, n);
		else
			quant_ql_dequantize(type, src, dst, n);
		break;
	}
}

static float
block_absmax(const float *x)
{
	float m = 0.0f;
	size_t j;

	for (j = 0; j < QK; j++)
		m = fmaxf(m, fabsf(x[j]));
	return m;
}

static void
quantize_q8_0(const float *src, struct block_q8_0 *b, size_t n)
{
	size_t i, j;

	for (i = 0; i < n / QK; i++) {
		const float *x = src + i * QK;
		float d = block_absmax(x) / 127.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;

		b[i].d = f32_to_fp16(d);
		for (j = 0; j < QK; j++)
			b[i].q[j] = (int8_t)lrintf(x[j] * id);
	}
}

static void
quantize_q4_0(const float *src, struct block_q4_0 *b, size_t n)
{
	size_t i, j;

	for (i = 0; i < n / QK; i++) {
		const float *x = src + i * QK;
		float max = 0.0f, amax = 0.0f, d, id;

		/* The value of largest magnitude maps to -8, using the full range. */
		for (j = 0; j < QK; j++) {
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		}
		d = max / -8.0f;
		id = d != 0.0f ? 1.0f / d : 0.0f;
		b[i].d = f32_to_fp16(d);
		for (j = 0; j < QK / 2; j++) {
			int lo = (int)lrintf(x[j] * id) + 8;
			int hi = (int)lrintf(x[j + QK / 2] * id) + 8;

			lo = lo < 0 ? 0 : lo > 15 ? 15 : lo;
			hi = hi < 0 ? 0 : hi > 15 ? 15 : hi;
			b[i].q[j] = (uint8_t)(lo | (hi << 4));
		}
	}
}

void
quant_quantize_row(uint32_t type, const float *src, void *dst, size_t n)
{
	uint16_t *h = dst;
	size_t i;

	switch (type) {
	case QT_F32:
		memcpy(dst, src, n * sizeof(float));
		break;
	case QT_F16:
		for (i = 0; i < n; i++)
			h[i] = f32_to_fp16(src[i]);
		break;
	case QT_BF16:
		for (i = 0; i < n; i++)
			h[i] = f32_to_bf16(src[i]);
		break;
	case QT_Q8_0:
		quantize_q8_0(src, dst, n);
		break;
	case QT_Q4_0:
		quantize_q4_0(src, dst, n);
		break;
	default:
		if (qk_is_k(type))
			qk_quantize_row(type, src, dst, n);
		else
			quant_ql_quantize(type, src, dst, n);
		break;
	}
}
