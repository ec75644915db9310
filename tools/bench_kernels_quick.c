/*
 * bench_kernels_quick: a rough single-thread measure of kern_matvec's
 * weight streaming rate (GB/s of weight bytes) per ISA and weight type,
 * on a TinyLlama-sized matrix (5632 x 2048) cycled through enough
 * copies (~1 GB) that nothing stays in cache.  A development tool, not
 * part of the product.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"
#include "quant.h"

#define ROWS	5632
#define COLS	2048
#define TOTAL	(1024.0 * 1024 * 1024)

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float
frand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* Fills one matrix of type t; the others are copies of it. */
static unsigned char *
make_mats(uint32_t t, size_t rb, size_t nmat)
{
	size_t mb = rb * ROWS, r, i;
	unsigned char *w = malloc(mb * nmat);
	float row[COLS];
	unsigned seed = 1;

	if (w == NULL)
		return NULL;
	for (r = 0; r < ROWS; r++) {
		for (i = 0; i < COLS; i++)
			row[i] = frand(&seed);
		quant_quantize_row(t, row, w + r * rb, COLS);
	}
	for (i = 1; i < nmat; i++)
		memcpy(w + i * mb, w, mb);
	return w;
}

static void
bench(uint32_t t)
{
	uint64_t rb64;
	size_t rb, mb, nmat, k;
	unsigned char *w;
	float x[COLS], *y = malloc(ROWS * sizeof(float));
	void *xq = malloc(kern_xq_bytes(t, COLS));
	unsigned seed = 7;
	int isa;

	qtype_row_bytes(t, COLS, &rb64);
	rb = (size_t)rb64;
	mb = rb * ROWS;
	nmat = (size_t)(TOTAL / (double)mb) + 1;
	if ((w = make_mats(t, rb, nmat)) == NULL || y == NULL || xq == NULL)
		return;
	for (k = 0; k < COLS; k++)
		x[k] = frand(&seed);
	kern_prepare_x(t, x, COLS, xq);
	for (isa = 0; isa <= (int)kern_best_isa(); isa++) {
		double best = 0, t0, gbs;
		int rep;

		kern_use_isa((enum kern_isa)isa);
		for (rep = 0; rep < 3; rep++) {
			t0 = now();
			for (k = 0; k < nmat; k++)
				kern_matvec(t, w + k * mb, rb, COLS, xq, y, 0,
				    ROWS);
			gbs = (double)(mb * nmat) / (now() - t0) / 1e9;
			best = gbs > best ? gbs : best;
			if (isa == 0)
				break; /* slow; one pass is enough */
		}
		printf("%-5s %-8s %6.2f GB/s  (y[1]=%g)\n", qtype_name(t),
		    kern_isa_name((enum kern_isa)isa), best, (double)y[1]);
	}
	free(w);
	free(y);
	free(xq);
}

int
main(int argc, char **argv)
{
	uint32_t types[] = { QT_Q8_0, QT_Q4_0, QT_F16, QT_BF16, QT_F32 };
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (argc > 1 && strstr(argv[1], qtype_name(types[i])) == NULL)
			continue;
		bench(types[i]);
	}
	return 0;
}
