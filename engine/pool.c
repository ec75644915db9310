/*
 * pool: fork-join worker threads.  A job is published by bumping `gen`;
 * workers spin on it for a short while, then sleep on a condition
 * variable.  The caller runs slice 0 itself and spins until `pending`
 * reaches zero.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* About 50-100 us of spinning before a worker sleeps. */
#define POOL_SPIN 20000

struct pool_worker {
	struct pool *pool;
	pthread_t thread;
	int ith;
};

struct pool {
	int n_threads;
	struct pool_worker *workers;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	atomic_uint gen;     /* bumped once per job */
	atomic_int pending;  /* workers still running the current job */
	atomic_int sleepers; /* workers waiting on `wake` */
	atomic_int stop;
	pool_fn fn;
	void *arg;
};

static unsigned
pool_wait_job(struct pool *p, unsigned seen)
{
	unsigned g;
	int i;

	for (i = 0; i < POOL_SPIN; i++) {
		g = atomic_load_explicit(&p->gen, memory_order_acquire);
		if (g != seen)
			return g;
		if (i % 1024 == 1023)
			sched_yield();
		else
			cpu_relax();
	}
	pthread_mutex_lock(&p->lock);
	atomic_fetch_add(&p->sleepers, 1);
	while ((g = atomic_load(&p->gen)) == seen)
		pthread_cond_wait(&p->wake, &p->lock);
	atomic_fetch_sub(&p->sleepers, 1);
	pthread_mutex_unlock(&p->lock);
	return g;
}

static void *
pool_main(void *arg)
{
	struct pool_worker *w = arg;
	struct pool *p = w->pool;
	unsigned seen = 0;

	for (;;) {
		seen = pool_wait_job(p, seen);
		if (atomic_load(&p->stop))
			break;
		p->fn(p->arg, w->ith, p->n_threads);
		atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
	}
	return NULL;
}

static void
pool_publish(struct pool *p)
{
	/* seq_cst: pairs with the sleepers++ then gen load in pool_wait_job */
	atomic_fetch_add(&p->gen, 1);
	if (atomic_load(&p->sleepers) > 0) {
		pthread_mutex_lock(&p->lock);
		pthread_cond_broadcast(&p->wake);
		pthread_mutex_unlock(&p->lock);
	}
}

struct pool *
pool_new(int n_threads, char *cause)
{
	struct pool *p;
	int i, rc;

	if (n_threads < 1 || n_threads > 512) {
		err_set(cause, "thread count %d out of range 1..512", n_threads);
		return NULL;
	}
	if ((p = calloc(1, sizeof *p)) == NULL ||
	    (p->workers = calloc((size_t)n_threads, sizeof *p->workers)) == NULL) {
		free(p);
		err_set(cause, "out of memory for a thread pool");
		return NULL;
	}
	p->n_threads = n_threads;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	for (i = 1; i < n_threads; i++) {
		p->workers[i].pool = p;
		p->workers[i].ith = i;
		rc = pthread_create(&p->workers[i].thread, NULL, pool_main,
		    &p->workers[i]);
		if (rc != 0) {
			p->n_threads = i; /* join only those started */
			pool_free(p);
			err_set(cause, "cannot start thread %d: %s", i,
			    strerror(rc));
			return NULL;
		}
	}
	return p;
}

void
pool_free(struct pool *p)
{
	int i;

	if (p == NULL)
		return;
	atomic_store(&p->stop, 1);
	pool_publish(p);
	for (i = 1; i < p->n_threads; i++)
		pthread_join(p->workers[i].thread, NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake);
	free(p->workers);
	free(p);
}

int
pool_threads(const struct pool *p)
{
	return p->n_threads;
}

/*
 * Spins for the stragglers, yielding now and then: when the machine is
 * busier than our thread count, a worker may have lost its core, and
 * pure spinning would keep it from getting one back.
 */
static void
pool_wait_done(struct pool *p)
{
	unsigned i = 0;

	while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
		if (++i % 1024 == 0)
			sched_yield();
		else
			cpu_relax();
	}
}

void
pool_run(struct pool *p, pool_fn fn, void *arg)
{
	if (p->n_threads == 1) {
		fn(arg, 0, 1);
		return;
	}
	p->fn = fn;
	p->arg = arg;
	atomic_store_explicit(&p->pending, p->n_threads - 1,
	    memory_order_relaxed);
	pool_publish(p);
	fn(arg, 0, p->n_threads);
	pool_wait_done(p);
}

void
pool_split(long n, int ith, int nth, long align, long *lo, long *hi)
{
	long units = (n + align - 1) / align;
	long per = units / nth, extra = units % nth;
	long u0 = ith * per + (ith < extra ? ith : extra);
	long u1 = u0 + per + (ith < extra ? 1 : 0);

	*lo = u0 * align < n ? u0 * align : n;
	*hi = u1 * align < n ? u1 * align : n;
}
