/*
 * fuzz_quant: what must hold for any bytes in a tensor of a type sinkd
 * computes (a corrupt or hostile model file: the GGUF reader checks sizes,
 * never the blocks' contents).  A libFuzzer entry point, and
 * quant_fuzz_one(), which test_kernels' random-block test calls on seeded
 * inputs, so both check the same things:
 *
 *	- dequantizing, matvec and GEMM on every ISA never crash or read out
 *	  of bounds (the sanitizers), whatever the scales (inf, NaN, huge);
 *	- where the dequantized weights are finite and moderate, every ISA's
 *	  matvec and GEMM agree with the portable matvec within float
 *	  rounding (1e-5 of sum |w x|).
 *
 * Input: byte 0 picks the type among the supported ones, byte 1 the row
 * count (1..4), the rest is the rows' bytes (as many whole rows of whole
 * blocks as fit).
 *
 * libFuzzer (clang): tools/fuzz.sh builds it with the engine's quant and
 * kernels files.  With -DFUZZ_QUANT_MAIN it replays files instead.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"
#include "quant_k.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	quant_fuzz_one(const uint8_t *, size_t);

#define REQUIRE(e)							\
	do {								\
		if (!(e)) {						\
			fprintf(stderr, "fuzz_quant: %s:%d: %s\n",	\
			    __FILE__, __LINE__, #e);			\
			abort();					\
		}							\
	} while (0)

#define MAX_N 1024
#define GEMM_M 5

static int
n_supported(void)
{
	int i = 0;

	while (qtype_supported_nth(i) >= 0)
		i++;
	return i;
}

/*
 * The minimum (offset) of element i for the types whose kernels sum d * q
 * and the minimum apart in floats, 0 for the others (Q3_K and Q6_K
 * subtract theirs in integers, exactly).
 */
static float
element_min(uint32_t t, const uint8_t *row, size_t i)
{
	size_t bs = qtype_block_bytes(t);
	struct qk_unpacked u;
	uint16_t h;

	switch (t) {
	case QT_Q4_1:
	case QT_Q5_1:
		memcpy(&h, row + i / 32 * bs + 2, 2);
		return fp16_to_f32(h);
	case QT_Q2_K:
	case QT_Q4_K:
	case QT_Q5_K:
		qk_unpack(t, row + i / QK_K * bs, &u);
		return u.M * (float)u.m[i % QK_K / 16];
	default:
		return 0.0f;
	}
}

/*
 * Whether the tolerance check applies (finite, moderate weights), and
 * the magnitude it scales with: sum |w x|, plus 2 |m| |x| for the types
 * with a minimum, whose kernels sum d * q and m apart (|d q| <= |w| + |m|):
 * those two cancel where w is small, each rounded at its own magnitude
 * (a Q2_K group of w = 0 from d q = m = 27780 did).
 */
static int
moderate(uint32_t t, const uint8_t *row, const float *w, size_t n,
    const float *x, double *mag)
{
	size_t i;
	float m;

	*mag = 0.0;
	for (i = 0; i < n; i++) {
		if (!(fabsf(w[i]) < 1e4f))
			return 0;
		*mag += fabs((double)w[i] * x[i]);
		m = element_min(t, row, i);
		if (!(fabsf(m) < 1e4f))
			return 0;
		*mag += 2.0 * fabs((double)m * x[i]);
	}
	return 1;
}

static void
check_rows(uint32_t t, const uint8_t *w, size_t rb, size_t n, size_t rows,
    const float *x)
{
	static float deq[4 * MAX_N], ref[4], y[4], yg[GEMM_M * 4];
	static _Alignas(64) uint8_t xq[2 * MAX_N * 4 + 4096];
	static _Alignas(64) uint8_t xs[GEMM_M * (MAX_N * 2 + 128)];
	double mag;
	size_t r, k;
	int isa, quantized = kern_xs_stride(t, n) > 0;

	REQUIRE(kern_xq_bytes(t, n) <= sizeof xq);
	REQUIRE(!quantized || GEMM_M * kern_xs_stride(t, n) <= sizeof xs);
	for (r = 0; r < rows; r++)
		quant_dequantize_row(t, w + r * rb, deq + r * n, n);
	kern_prepare_x(t, x, n, xq);
	if (quantized)
		kern_prepare_xs(t, x, 0, n, GEMM_M, xs);
	REQUIRE(kern_use_isa(KERN_ISA_PORTABLE) == 0);
	kern_matvec(t, w, rb, n, xq, ref, 0, rows);
	for (isa = 0; isa <= (int)kern_best_isa(); isa++) {
		REQUIRE(kern_use_isa((enum kern_isa)isa) == 0);
		kern_matvec(t, w, rb, n, xq, y, 0, rows);
		if (quantized)
			kern_gemm(t, w, rb, n, xs, GEMM_M, yg, rows, 0, rows);
		for (r = 0; r < rows; r++) {
			if (!moderate(t, w + r * rb, deq + r * n, n, x, &mag))
				continue;
			REQUIRE(fabs((double)y[r] - ref[r]) <= 1e-5 * mag +
			    1e-30);
			for (k = 0; k < GEMM_M && quantized; k++)
				REQUIRE(fabs((double)yg[k * rows + r] - ref[r]) <=
				    1e-5 * mag + 1e-30);
		}
	}
	kern_use_isa(kern_best_isa());
}

int
quant_fuzz_one(const uint8_t *data, size_t len)
{
	static float x[MAX_N];
	uint32_t t;
	size_t rows, be, bs, nb, i;

	if (len < 2)
		return 0;
	t = (uint32_t)qtype_supported_nth(data[0] % n_supported());
	rows = (size_t)data[1] % 4 + 1;
	be = qtype_block_elems(t);
	bs = qtype_block_bytes(t);
	nb = (len - 2) / rows / bs;
	if (nb * be > MAX_N)
		nb = MAX_N / be;
	if (be == 1) /* float rows: whole blocks of 32, as x is prepared */
		nb = nb / 32 * 32;
	if (nb == 0)
		return 0;
	for (i = 0; i < nb * be; i++)
		x[i] = (float)((int)(i * 37 % 255) - 127) / 64.0f;
	check_rows(t, data + 2, nb * bs, nb * be, rows, x);
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	quant_fuzz_one(data, len);
	return 0;
}

#ifdef FUZZ_QUANT_MAIN
int
main(int argc, char **argv)
{
	static uint8_t buf[1 << 16];
	size_t n;
	FILE *f;
	int i;

	for (i = 1; i < argc; i++) {
		if ((f = fopen(argv[i], "rb")) == NULL) {
			perror(argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof buf, f);
		fclose(f);
		quant_fuzz_one(buf, n);
	}
	return 0;
}
#endif
