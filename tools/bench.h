/*
 * bench: what the sinkd-bench commands share: summary statistics and
 * each command's entry point (argv[0] is the command's name).
 */
#ifndef SINKD_BENCH_H
#define SINKD_BENCH_H

#include <stdint.h>

struct stats {
	double median, min, max;
};

/* Sorts v in place. */
struct stats stats_of(double *v, int n);

int bench_corpus(int argc, char **argv);
int bench_ppl(int argc, char **argv);
int bench_attn(int argc, char **argv);
int bench_latency(int argc, char **argv);
int bench_daemon(int argc, char **argv);
int bench_store(int argc, char **argv);
int bench_batch(int argc, char **argv);

#endif
