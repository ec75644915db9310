/*
 * bench_multi: kern_matvec_multi against k separate kern_matvec passes,
 * single thread, on TinyLlama-sized matrices (5632 x 2048) cycled
 * through ~512 MB of copies so that weights come from memory.  For k =
 * 1, 2, 4, 8, 16 activations it prints the rate in weight rows times
 * activations per microsecond for three ways: "separate" (each
 * activation streams the whole matrix, what k sessions did before
 * batches), "tiled" (32 KB tiles of rows, kern_matvec per activation on
 * each: matmul_multi's fallback) and "multi" (the same tiles through
 * kern_matvec_multi), and multi's speed-up over one activation alone
 * (separate, k = 1), and "panel": the same matrices repacked into
 * panels (kernels_panel.c) through kern_panel_gemm.  A development
 * tool: it prints instead of failing politely.
 *
 *   tools/bench-multi [TYPE,...] [MIB]   (default Q4_0,Q8_0 and 512)
 *
 * MIB sets how much the copies fill: a few MiB keeps the matrix in cache
 * (the kernels' own speed), 512 makes every pass read memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"
#include "quant.h"

#define ROWS	5632
#define COLS	2048
#define KMAX	16
#define TILE	(32 * 1024)

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

enum way { SEPARATE, TILED, MULTI, PANEL };
static const char *const way_names[] = { "separate", "tiled", "multi",
    "panel" };

/* Bytes the copies fill (MIB). */
static double total = 512.0 * 1024 * 1024;

/* The panels of the copies and the activations in the GEMM's layout. */
static const unsigned char *panels;
static const void *xs;

/* Seconds for one pass of every matrix against k activations. */
static double
pass(uint32_t t, const unsigned char *w, size_t rb, size_t nmat,
    void *const *xq, float *const *y, size_t k, enum way way)
{
	size_t mb = rb * ROWS, tile = TILE / rb, m, r, r1, a;
	float *yt[KMAX];
	double t0 = now();

	for (m = 0; m < nmat; m++) {
		if (way == PANEL) {
			kern_panel_gemm(t, panels + m * kern_panel_bytes(t,
			    ROWS, COLS), COLS, xs, k, y, 0, ROWS);
			continue;
		}
		if (way == SEPARATE) {
			for (a = 0; a < k; a++)
				kern_matvec(t, w + m * mb, rb, COLS, xq[a],
				    y[a], 0, ROWS);
			continue;
		}
		for (r = 0; r < ROWS; r = r1) {
			r1 = r + tile < ROWS ? r + tile : ROWS;
			for (a = 0; a < k; a++)
				yt[a] = y[a] + r;
			if (way == MULTI)
				kern_matvec_multi(t, w + m * mb, rb, COLS,
				    (const void *const *)xq, k, yt, r, r1);
			else
				for (a = 0; a < k; a++)
					kern_matvec(t, w + m * mb, rb, COLS,
					    xq[a], yt[a], r, r1);
		}
	}
	return now() - t0;
}

static void
bench(uint32_t t)
{
	static const size_t ks[] = { 1, 2, 4, 8, 16 };
	uint64_t rb64;
	size_t rb, mb, nmat, i, a, ki;
	unsigned char *w, *pk = NULL, *xsb = NULL;
	void *xq[KMAX];
	float *y[KMAX], x[COLS], *xf = malloc(KMAX * COLS * sizeof(float));
	unsigned seed = 1;
	double base = 0, best, rate, top;
	int way, rep;

	qtype_row_bytes(t, COLS, &rb64);
	rb = (size_t)rb64;
	mb = rb * ROWS;
	nmat = (size_t)(total / (double)mb) + 1;
	if ((w = malloc(mb * nmat)) == NULL || xf == NULL) {
		fprintf(stderr, "out of memory\n");
		free(w);
		free(xf);
		return;
	}
	for (i = 0; i < ROWS; i++) {
		for (a = 0; a < COLS; a++)
			x[a] = frand(&seed);
		quant_quantize_row(t, x, w + i * rb, COLS);
	}
	for (i = 1; i < nmat; i++)
		memcpy(w + i * mb, w, mb);
	if (kern_panel_type(t) && kern_panel_usable() &&
	    (pk = aligned_alloc(64, kern_panel_bytes(t, ROWS, COLS) * nmat)) != NULL &&
	    (xsb = aligned_alloc(64, kern_panel_xs_bytes(t, COLS, KMAX))) !=
	    NULL) {
		for (i = 0; i < nmat; i++)
			kern_panel_pack(t, w, rb, ROWS, COLS, pk + i *
			    kern_panel_bytes(t, ROWS, COLS));
	}
	panels = pk;
	xs = xsb;
	for (a = 0; a < KMAX; a++) {
		for (i = 0; i < COLS; i++)
			xf[a * COLS + i] = frand(&seed);
		xq[a] = malloc(kern_xq_bytes(t, COLS));
		y[a] = malloc(ROWS * sizeof(float));
		kern_prepare_x(t, xf + a * COLS, COLS, xq[a]);
	}
	printf("%-5s %-8s  k  %9s %9s %9s %9s  (rows x activations / us)  "
	    "best vs k=1\n", qtype_name(t),
	    kern_isa_name(kern_current_isa()), way_names[0], way_names[1],
	    way_names[2], way_names[3]);
	for (ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
		printf("%-14s %2zu", "", ks[ki]);
		top = 0;
		for (way = SEPARATE; way <= PANEL; way++) {
			best = 0;
			if (way == PANEL && pk == NULL) {
				printf(" %9s", "-");
				continue;
			}
			/* Panels read their k tokens in tiles made for k. */
			if (way == PANEL)
				kern_panel_prepare(t, xf, COLS, COLS, ks[ki], 0,
				    ks[ki], xsb);
			for (rep = 0; rep < 3; rep++) {
				rate = (double)(ROWS * nmat * ks[ki]) / pass(t,
				    w, rb, nmat, xq, y, ks[ki],
				    (enum way)way) / 1e6;
				best = rate > best ? rate : best;
			}
			if (way == SEPARATE && ki == 0)
				base = best;
			printf(" %9.0f", best);
			top = best > top ? best : top;
		}
		printf("  %38.2fx\n", top / base);
		fflush(stdout);
	}
	for (a = 0; a < KMAX; a++) {
		free(xq[a]);
		free(y[a]);
	}
	free(w);
	free(xf);
	free(pk);
	free(xsb);
}

int
main(int argc, char **argv)
{
	const char *list = argc > 1 ? argv[1] : "Q4_0,Q8_0";
	uint32_t t;

	if (argc > 2 && !((total = atof(argv[2]) * 1024 * 1024) > 0)) {
		fprintf(stderr, "bench-multi: MIB must be a positive number of "
		    "MiB, not '%s'\nusage: bench-multi [TYPE,...] [MIB]\n",
		    argv[2]);
		return 2;
	}
	for (t = 0; t < 64; t++) {
		const char *name = qtype_name(t);
		const char *p = strstr(list, name);
		size_t len = strlen(name);

		if (!qtype_supported(t) || p == NULL || (p != list &&
		    p[-1] != ',') || (p[len] != '\0' && p[len] != ','))
			continue;
		bench(t);
	}
	return 0;
}
