/*
 * bench_kernels_quick: a rough single-thread measure of kern_matvec's
 * weight streaming rate (GB/s of weight bytes) per ISA and weight type,
 * on a TinyLlama-sized matrix (5632 x 2048) cycled through enough
 * copies (~1 GB) that nothing stays in cache; best of 5 passes.  With
 * -t N, N threads split the rows of each matrix and the rate is their
 * total.  A development tool, not part of the product; it prints instead
 * of failing politely.
 */
#include <pthread.h>
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

struct job {
	uint32_t t;
	const unsigned char *w;
	size_t rb, mb, nmat, r0, r1;
	const void *xq;
	float *y;
	enum kern_isa isa;
};

static void *
run_job(void *arg)
{
	struct job *j = arg;
	size_t k;

	kern_use_isa(j->isa);
	for (k = 0; k < j->nmat; k++)
		kern_matvec(j->t, j->w + k * j->mb, j->rb, COLS, j->xq,
		    j->y + j->r0, j->r0, j->r1);
	return NULL;
}

/* One pass over all matrices with nthr threads; seconds taken. */
static double
pass(struct job *proto, int nthr)
{
	pthread_t tid[16];
	struct job jobs[16];
	int started[16];
	double t0 = now();
	int i;

	for (i = 0; i < nthr; i++) {
		jobs[i] = *proto;
		jobs[i].r0 = ROWS * (size_t)i / (size_t)nthr;
		jobs[i].r1 = ROWS * (size_t)(i + 1) / (size_t)nthr;
		started[i] = pthread_create(&tid[i], NULL, run_job,
		    &jobs[i]) == 0;
		if (!started[i])
			run_job(&jobs[i]);
	}
	for (i = 0; i < nthr; i++)
		if (started[i])
			pthread_join(tid[i], NULL);
	return now() - t0;
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
bench(uint32_t t, int nthr)
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
	if (y == NULL || xq == NULL || (w = make_mats(t, rb, nmat)) == NULL) {
		fprintf(stderr, "out of memory\n");
		free(y);
		free(xq);
		return;
	}
	for (k = 0; k < COLS; k++)
		x[k] = frand(&seed);
	kern_prepare_x(t, x, COLS, xq);
	for (isa = 0; isa <= (int)kern_best_isa(); isa++) {
		struct job j = { t, w, rb, mb, nmat, 0, ROWS, xq, y,
		    (enum kern_isa)isa };
		double best = 0, gbs;
		int rep;

		for (rep = 0; rep < (isa == 0 ? 1 : 5); rep++) {
			gbs = (double)(mb * nmat) / pass(&j, nthr) / 1e9;
			best = gbs > best ? gbs : best;
		}
		printf("%-5s %-8s %d thread%s %6.2f GB/s\n", qtype_name(t),
		    kern_isa_name((enum kern_isa)isa), nthr,
		    nthr > 1 ? "s" : "", best);
	}
	free(w);
	free(y);
	free(xq);
}

/* Whether name is one of the comma-separated names in list. */
static int
listed(const char *list, const char *name)
{
	size_t len = strlen(name);
	const char *p;

	for (p = list; (p = strstr(p, name)) != NULL; p += len) {
		if ((p == list || p[-1] == ',') && (p[len] == '\0' ||
		    p[len] == ','))
			return 1;
	}
	return 0;
}

/* bench_kernels_quick [-t threads] [TYPE,...] */
int
main(int argc, char **argv)
{
	uint32_t types[] = { QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
		QT_IQ4_NL, QT_IQ4_XS, QT_F16, QT_BF16, QT_F32,
		QT_Q4_K, QT_Q6_K, QT_Q5_K, QT_Q3_K, QT_Q2_K };
	const char *only = NULL;
	int nthr = 1, i;
	size_t k;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
			nthr = atoi(argv[++i]);
		else
			only = argv[i];
	}
	if (nthr < 1 || nthr > 16)
		nthr = 1;
	for (k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
		if (only != NULL && !listed(only, qtype_name(types[k])))
			continue;
		bench(types[k], nthr);
	}
	return 0;
}
