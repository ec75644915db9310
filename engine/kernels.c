/*
 * kernels: ISA detection and selection, activation preparation, and the
 * portable kernels that define what every SIMD version must compute.
 * The SIMD versions live in kernels_x86.c, kernels_gemm_x86.c and
 * kernels_attn_x86.c.
 *
 * The selected ISA is the one process-wide setting (kern_use_isa);
 * everything else is a function of its arguments.
 */
#include "kernels.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "kernels_int.h"
#include "kernels_k.h"
#include "quant.h"

#ifdef KERN_HAVE_X86
#include <cpuid.h>
#endif

static pthread_once_t isa_once = PTHREAD_ONCE_INIT;
static enum kern_isa isa_best = KERN_ISA_PORTABLE; /* written once */
static int isa_cur = -1; /* atomic; -1 until selected */

#ifdef KERN_HAVE_X86
/*
 * Straight from CPUID (gcc's and clang's __builtin_cpu_supports do not
 * agree on feature names), and XCR0 for the register state the OS saves:
 * SSE and AVX, plus the opmask and upper ZMM state for AVX-512.
 */
#define XCR0_AVX	0x06u
#define XCR0_AVX512	0xe6u
#define LEAF1_AVX2	(bit_AVX | bit_FMA | bit_F16C | bit_OSXSAVE)
#define LEAF7_AVX512	(bit_AVX512F | bit_AVX512BW | bit_AVX512VL)

static uint32_t
os_xcr0(void)
{
	unsigned int lo, hi;

	__asm__ volatile ("xgetbv" : "=a" (lo), "=d" (hi) : "c" (0));
	(void)hi;
	return lo;
}

static void
isa_detect(void)
{
	unsigned int a, b1, c1, d, b7, c7;
	uint32_t xcr0;

	if (!__get_cpuid(1, &a, &b1, &c1, &d) ||
	    (c1 & LEAF1_AVX2) != LEAF1_AVX2 ||
	    !__get_cpuid_count(7, 0, &a, &b7, &c7, &d))
		return;
	xcr0 = os_xcr0();
	if ((xcr0 & XCR0_AVX) != XCR0_AVX || !(b7 & bit_AVX2))
		return;
	isa_best = KERN_ISA_AVX2;
	if ((xcr0 & XCR0_AVX512) != XCR0_AVX512 ||
	    (b7 & LEAF7_AVX512) != LEAF7_AVX512 || !(c7 & bit_AVX512VNNI))
		return;
	isa_best = KERN_ISA_AVX512;
}
#else
static void
isa_detect(void)
{
}
#endif

enum kern_isa
kern_best_isa(void)
{
	pthread_once(&isa_once, isa_detect);
	return isa_best;
}

int
kern_use_isa(enum kern_isa isa)
{
	if (isa < KERN_ISA_PORTABLE || isa > kern_best_isa())
		return -1;
	__atomic_store_n(&isa_cur, (int)isa, __ATOMIC_RELAXED);
	return 0;
}

enum kern_isa
kern_current_isa(void)
{
	int isa = __atomic_load_n(&isa_cur, __ATOMIC_RELAXED);

	return isa < 0 ? kern_best_isa() : (enum kern_isa)isa;
}

const char *
kern_isa_name(enum kern_isa isa)
{
	switch (isa) {
	case KERN_ISA_PORTABLE:
		return "portable";
	case KERN_ISA_AVX2:
		return "avx2";
	case KERN_ISA_AVX512:
		return "avx512";
	}
	return "unknown";
}

static const struct kern_impl *
impl(void)
{
#ifdef KERN_HAVE_X86
	switch (kern_current_isa()) {
	case KERN_ISA_AVX2:
		return &kern_impl_avx2;
	case KERN_ISA_AVX512:
		return &kern_impl_avx512;
	case KERN_ISA_PORTABLE:
		break;
	}
#endif
	return &kern_impl_portable;
}

static int
is_quantized(uint32_t wtype)
{
	return wtype == QT_Q8_0 || wtype == QT_Q4_0 || kern_ql_type(wtype);
}

/* c per block sum s (kernels_int.h), for kern_prepare_x and _xs alike. */
static int32_t
c_mul(uint32_t wtype)
{
	switch (wtype) {
	case QT_Q8_0:
	case QT_IQ4_NL:
	case QT_IQ4_XS:
		return -128;
	case QT_Q4_0:
		return -8;
	case QT_Q5_0:
		return -16;
	}
	return 1; /* Q4_1, Q5_1: the block sum itself, for the m term */
}

/* Bytes of q: Q4_0 pads an odd last block with a zero partner. */
static size_t
q_bytes(uint32_t wtype, size_t n)
{
	size_t nb = n / QK;

	return wtype == QT_Q4_0 ? (nb + 1) / 2 * 2 * QK : n;
}

/* Slack to align q to XQ_ALIGN whatever the caller's buffer. */
#define XQ_ALIGN 64

size_t
kern_xq_bytes(uint32_t wtype, size_t n)
{
	if (qk_is_k(wtype))
		return kk_xq_bytes(n);
	if (is_quantized(wtype))
		return XQ_ALIGN + q_bytes(wtype, n) +
		    n / QK * (sizeof(float) + sizeof(int32_t));
	return n * sizeof(float);
}

struct kern_xq
kern_xq_view(const void *xq, uint32_t wtype, size_t n)
{
	const uint8_t *p = xq;
	struct kern_xq v;

	p += (XQ_ALIGN - (uintptr_t)p % XQ_ALIGN) % XQ_ALIGN;
	v.q = (const int8_t *)p;
	p += q_bytes(wtype, n);
	v.d = (const float *)(const void *)p;
	v.c = (const int32_t *)(const void *)(p + n / QK * sizeof(float));
	return v;
}

/* Rounds to the nearest int8 in [-127, 127]; NaN becomes 0. */
static int8_t
round_q(float v)
{
	if (!(v >= -127.0f))
		return v < 0.0f ? -127 : 0;
	if (v > 127.0f)
		return 127;
	return (int8_t)lrintf(v);
}

/* Quantizes one block; returns the sum of its q. */
static int32_t
quantize_block(const float *x, int8_t *q, float *dp)
{
	float amax = 0.0f, d;
	int32_t sum = 0;
	int j;

	/* Not fmaxf: it is a library call; a NaN is skipped, then zeroed. */
	for (j = 0; j < QK; j++)
		amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
	d = amax / 127.0f;
	for (j = 0; j < QK; j++) {
		q[j] = d != 0.0f ? round_q(x[j] / d) : 0;
		sum += q[j];
	}
	*dp = d;
	return sum;
}

void
kern_quant_row_portable(const float *x, size_t nb, int8_t *q, float *d,
    int32_t *c, int32_t off)
{
	size_t b;

	for (b = 0; b < nb; b++)
		c[b] = off * quantize_block(x + b * QK, q + b * QK, d + b);
}

static void
prepare_quantized(uint32_t wtype, const float *x, size_t n, void *xq)
{
	struct kern_xq v = kern_xq_view(xq, wtype, n);
	size_t nb = n / QK, b, j, slot;
	int8_t q[QK];
	float d;
	int32_t sum;

	memset((int8_t *)v.q, 0, q_bytes(wtype, n));
	for (b = 0; b < nb; b++) {
		sum = quantize_block(x + b * QK, q, &d);
		for (j = 0; j < QK; j++)
			((int8_t *)v.q)[kern_xq_qpos(wtype, b * QK + j)] = q[j];
		slot = kern_xq_slot(wtype, nb, b);
		((float *)v.d)[slot] = d;
		((int32_t *)v.c)[slot] = c_mul(wtype) * sum;
	}
}

size_t
kern_xs_stride(uint32_t wtype, size_t n)
{
	size_t b = n + n / QK * (sizeof(float) + sizeof(int32_t));

	if (qk_is_k(wtype))
		return kk_xs_stride(n);
	return is_quantized(wtype) ? (b + XQ_ALIGN - 1) / XQ_ALIGN * XQ_ALIGN :
	    0;
}

struct kern_xq
kern_xs_view(const void *xs, uint32_t wtype, size_t n, size_t t)
{
	const uint8_t *p = (const uint8_t *)xs + t * kern_xs_stride(wtype, n);
	struct kern_xq v;

	v.q = (const int8_t *)p;
	v.d = (const float *)(const void *)(p + n);
	v.c = (const int32_t *)(const void *)(p + n + n / QK * sizeof(float));
	return v;
}

void
kern_prepare_xs(uint32_t wtype, const float *x, size_t ldx, size_t n,
    size_t m, void *xs)
{
	void (*quant)(const float *, size_t, int8_t *, float *, int32_t *,
	    int32_t);
	struct kern_xq v;
	size_t t;
	int32_t off = c_mul(wtype);

	if (qk_is_k(wtype)) {
		kk_prepare_xs(x, ldx, n, m, xs);
		return;
	}
	if (!is_quantized(wtype))
		return;
	quant = impl()->quant_row != NULL ? impl()->quant_row :
	    kern_quant_row_portable;
	for (t = 0; t < m; t++) {
		v = kern_xs_view(xs, wtype, n, t);
		quant(x + t * ldx, n / QK, (int8_t *)v.q, (float *)v.d,
		    (int32_t *)v.c, off);
	}
}

void
kern_prepare_x(uint32_t wtype, const float *x, size_t n, void *xq)
{
	if (is_quantized(wtype))
		prepare_quantized(wtype, x, n, xq);
	else if (qk_is_k(wtype))
		kk_prepare_x(x, n, xq);
	else
		memcpy(xq, x, n * sizeof(float));
}

void
kern_matvec(uint32_t wtype, const void *w, size_t row_bytes, size_t n,
    const void *xq, float *y, size_t r0, size_t r1)
{
	if (r1 <= r0)
		return;
	if (qk_is_k(wtype)) {
		kk_matvec(kern_current_isa(), wtype, (const uint8_t *)w +
		    r0 * row_bytes, row_bytes, n, xq, y, r1 - r0);
		return;
	}
	impl()->matvec(wtype, (const uint8_t *)w + r0 * row_bytes, row_bytes,
	    n, xq, y, r1 - r0);
}

void
kern_matvec_multi(uint32_t wtype, const void *w, size_t row_bytes, size_t n,
    const void *const *xq, size_t k, float *const *y, size_t r0, size_t r1)
{
	const struct kern_impl *im = impl();
	size_t j;

	if (r1 <= r0)
		return;
	if (!qk_is_k(wtype) && im->matvec_multi != NULL &&
	    im->matvec_multi(wtype, (const uint8_t *)w + r0 * row_bytes,
	    row_bytes, n, xq, k, y, r1 - r0))
		return;
	for (j = 0; j < k; j++)
		kern_matvec(wtype, w, row_bytes, n, xq[j], y[j], r0, r1);
}

void
kern_gemm(uint32_t wtype, const void *w, size_t row_bytes, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t r0, size_t r1)
{
	if (r1 <= r0 || m == 0)
		return;
	if (qk_is_k(wtype)) {
		kk_gemm(kern_current_isa(), wtype, (const uint8_t *)w +
		    r0 * row_bytes, row_bytes, n, xs, m, y + r0, ldy, r1 - r0);
		return;
	}
	if (!is_quantized(wtype))
		return;
	impl()->gemm(wtype, (const uint8_t *)w + r0 * row_bytes, row_bytes,
	    n, xs, m, y + r0, ldy, r1 - r0);
}

float
kern_dot_f32(const float *a, const float *b, size_t n)
{
	return impl()->dot_f32(a, b, n);
}

void
kern_attn(const struct kern_attn_args *in)
{
	struct kern_attn_args a = *in;
	size_t i;

	a.len = 0;
	for (i = 0; i < a.n_span; i++)
		a.len += a.span[i].len;
	if (a.len == 0) {
		for (i = 0; i < a.n_q; i++)
			memset(a.out + i * a.out_stride, 0, a.hd * sizeof(float));
		return;
	}
	impl()->attn(&a);
}

void
kern_softcap(float *x, size_t n, float c)
{
	size_t i;

	for (i = 0; i < n; i++)
		x[i] = c * tanhf(x[i] / c);
}

void
kern_softmax(float *x, size_t n)
{
	if (n > 0)
		impl()->softmax(x, 1, n);
}

size_t
kern_argmax_portable(const float *x, size_t n)
{
	size_t i, best = 0;

	for (i = 1; i < n; i++) {
		if (x[i] > x[best])
			best = i;
	}
	return best;
}

size_t
kern_argmax(const float *x, size_t n)
{
	const struct kern_impl *im = impl();

	return im->argmax != NULL ? im->argmax(x, n) :
	    kern_argmax_portable(x, n);
}

void
kern_quant_k(const float *x, size_t n, int8_t *q, float *d, int16_t *s)
{
	const struct kern_impl *im = impl();

	if (im->quant_k != NULL)
		im->quant_k(x, n, q, d, s);
	else
		kk_quant_portable(x, n, q, d, s);
}

void
kern_silu_mul_portable(float *g, const float *u, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void
kern_silu_mul(float *g, const float *u, size_t n)
{
	const struct kern_impl *im = impl();

	if (im->silu_mul != NULL)
		im->silu_mul(g, u, n);
	else
		kern_silu_mul_portable(g, u, n);
}

/* Subtracting the max keeps every exponent <= 0: no overflow. */
void
kern_softmax_rows(float *scores, size_t n_q, size_t len)
{
	float *s, max, sum, inv;
	size_t i, j;

	for (i = 0; i < n_q; i++) {
		s = scores + i * len;
		max = s[0];
		for (j = 1; j < len; j++)
			max = s[j] > max ? s[j] : max;
		sum = 0.0f;
		for (j = 0; j < len; j++) {
			s[j] = expf(s[j] - max);
			sum += s[j];
		}
		inv = 1.0f / sum;
		for (j = 0; j < len; j++)
			s[j] *= inv;
	}
}

/* Portable kernels: the reference the SIMD ones are tested against. */

static float
ld_f32(const uint8_t *p)
{
	float f;

	memcpy(&f, p, sizeof f);
	return f;
}

static uint16_t
ld_u16(const uint8_t *p)
{
	uint16_t h;

	memcpy(&h, p, sizeof h);
	return h;
}

/* Eight partial sums keep float rounding small and independent of n. */
#define ROW_FLOAT(ELEM) do {						\
	float acc[8] = { 0 }, sum = 0.0f;				\
	size_t i;							\
									\
	for (i = 0; i < n; i++)						\
		acc[i % 8] += (ELEM) * x[i];				\
	for (i = 0; i < 8; i++)						\
		sum += acc[i];						\
	return sum;							\
} while (0)

static float
row_f32(const uint8_t *row, size_t n, const float *x)
{
	ROW_FLOAT(ld_f32(row + 4 * i));
}

static float
row_f16(const uint8_t *row, size_t n, const float *x)
{
	ROW_FLOAT(fp16_to_f32(ld_u16(row + 2 * i)));
}

static float
row_bf16(const uint8_t *row, size_t n, const float *x)
{
	ROW_FLOAT(bf16_to_f32(ld_u16(row + 2 * i)));
}

static int32_t
block_dot_q8(const uint8_t *blk, const int8_t *xq)
{
	const int8_t *wq = (const int8_t *)(blk + 2);
	int32_t s = 0;
	int j;

	for (j = 0; j < QK; j++)
		s += wq[j] * xq[j];
	return s;
}

/* xlo and xhi: x of the block's elements 0..15 and 16..31. */
static int32_t
block_dot_q4(const uint8_t *blk, const int8_t *xlo, const int8_t *xhi)
{
	const uint8_t *nib = blk + 2;
	int32_t s = 0;
	int j;

	for (j = 0; j < QK / 2; j++) {
		s += ((nib[j] & 15) - 8) * xlo[j];
		s += ((nib[j] >> 4) - 8) * xhi[j];
	}
	return s;
}

/* natural: x as kern_prepare_xs lays it out, else as kern_prepare_x. */
static float
row_quant(uint32_t wtype, const uint8_t *row, size_t n, struct kern_xq v,
    int natural)
{
	uint32_t lay = natural ? QT_Q8_0 : wtype;
	size_t bsize = wtype == QT_Q8_0 ? sizeof(struct block_q8_0) :
	    sizeof(struct block_q4_0);
	size_t nb = n / QK, b, i;
	float acc = 0.0f;
	int32_t s;

	for (b = 0; b < nb; b++) {
		const uint8_t *blk = row + b * bsize;

		i = b * QK;
		if (wtype == QT_Q8_0)
			s = block_dot_q8(blk, v.q + i);
		else
			s = block_dot_q4(blk, v.q + kern_xq_qpos(lay, i),
			    v.q + kern_xq_qpos(lay, i + QK / 2));
		acc += (float)s * (fp16_to_f32(ld_u16(blk)) *
		    v.d[kern_xq_slot(lay, nb, b)]);
	}
	return acc;
}

static void
portable_matvec(uint32_t wtype, const uint8_t *w, size_t row_bytes, size_t n,
    const void *xq, float *y, size_t nrows)
{
	size_t r;

	for (r = 0; r < nrows; r++) {
		const uint8_t *row = w + r * row_bytes;

		switch (wtype) {
		case QT_F32:
			y[r] = row_f32(row, n, xq);
			break;
		case QT_F16:
			y[r] = row_f16(row, n, xq);
			break;
		case QT_BF16:
			y[r] = row_bf16(row, n, xq);
			break;
		case QT_Q8_0:
		case QT_Q4_0:
			y[r] = row_quant(wtype, row, n,
			    kern_xq_view(xq, wtype, n), 0);
			break;
		default:
			y[r] = kern_ql_type(wtype) ? kern_ql_row(wtype, row, n,
			    kern_xq_view(xq, wtype, n)) : 0.0f;
			break;
		}
	}
}

static void
portable_gemm(uint32_t wtype, const uint8_t *w, size_t row_bytes, size_t n,
    const void *xs, size_t m, float *y, size_t ldy, size_t nrows)
{
	size_t t, r;

	for (t = 0; t < m; t++)
		for (r = 0; r < nrows; r++)
			y[t * ldy + r] = kern_ql_type(wtype) ?
			    kern_ql_row(wtype, w + r * row_bytes, n,
			    kern_xs_view(xs, wtype, n, t)) :
			    row_quant(wtype, w + r * row_bytes, n,
			    kern_xs_view(xs, wtype, n, t), 1);
}

static float
portable_dot(const float *a, const float *b, size_t n)
{
	float acc[8] = { 0 }, sum = 0.0f;
	size_t i;

	for (i = 0; i < n; i++)
		acc[i % 8] += a[i] * b[i];
	for (i = 0; i < 8; i++)
		sum += acc[i];
	return sum;
}

static void
portable_axpy(float a, const float *x, float *y, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		y[i] += a * x[i];
}

/* Row j of a span's K or V as f32 in buf (or in place). */
static const float *
portable_row(const struct kern_attn_args *a, const void *m, size_t j,
    float *buf)
{
	const uint16_t *h;
	size_t d;

	if (!a->kv_f16)
		return (const float *)m + j * a->kv_stride;
	h = (const uint16_t *)m + j * a->kv_stride;
	for (d = 0; d < a->hd; d++)
		buf[d] = fp16_to_f32(h[d]);
	return buf;
}

static void
portable_attn(const struct kern_attn_args *a)
{
	const struct kern_attn_span *sp;
	float row[KERN_ATTN_ROW_MAX], *o;
	size_t i, j, s, off;

	for (s = 0, off = 0; s < a->n_span; off += a->span[s++].len) {
		sp = &a->span[s];
		for (j = 0; j < sp->len; j++) {
			const float *k = portable_row(a, sp->k, j, row);
			for (i = 0; i < a->n_q; i++)
				a->scores[i * a->len + off + j] = portable_dot(
				    sp->q + i * a->q_stride, k, a->hd) * a->scale;
		}
	}
	if (a->softcap > 0.0f)
		kern_softcap(a->scores, a->n_q * a->len, a->softcap);
	kern_softmax_rows(a->scores, a->n_q, a->len);
	for (i = 0; i < a->n_q; i++)
		memset(a->out + i * a->out_stride, 0, a->hd * sizeof(float));
	for (s = 0, off = 0; s < a->n_span; off += a->span[s++].len) {
		sp = &a->span[s];
		for (j = 0; j < sp->len; j++) {
			const float *v = portable_row(a, sp->v, j, row);
			for (i = 0; i < a->n_q; i++) {
				o = a->out + i * a->out_stride;
				portable_axpy(a->scores[i * a->len + off + j], v,
				    o, a->hd);
			}
		}
	}
}

const struct kern_impl kern_impl_portable = {
	portable_matvec, portable_gemm, portable_dot,
	portable_attn, kern_softmax_rows, NULL, kern_quant_row_portable,
	kern_argmax_portable, kern_silu_mul_portable, kk_quant_portable,
};
