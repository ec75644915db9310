/*
 * pool: a fixed set of worker threads that run one data-parallel job at a
 * time with the calling thread (fork-join).  Decode dispatches a few
 * hundred small jobs per token, so idle workers spin briefly before they
 * sleep: waking a sleeping thread costs more than most jobs take.
 */
#ifndef SINKD_POOL_H
#define SINKD_POOL_H

#include "err.h"

/* Runs with ith in [0, nth): the slice of the work this thread does. */
typedef void (*pool_fn)(void *arg, int ith, int nth);

struct pool;

/* n_threads counts the caller: 1 means no worker threads. */
struct pool *pool_new(int n_threads, char *cause);
void pool_free(struct pool *);
int pool_threads(const struct pool *);

/* Runs fn on every thread and returns when all are done.  Not reentrant. */
void pool_run(struct pool *, pool_fn fn, void *arg);

/* [*lo, *hi) = slice ith of nth of n items, in multiples of `align`. */
void pool_split(long n, int ith, int nth, long align, long *lo, long *hi);

#endif
