/*
 * storeq: see storeq.h.  One thread; the queue is a list under a mutex,
 * the thread sleeps on a condition variable, and finished jobs go to a
 * second list that the loop empties when the eventfd says so.
 */
#include "storeq.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

struct sq_job {
	storeq_fn *run, *done;
	void *arg;
	struct sq_job *next;
};

struct storeq {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* the thread: a job, or quit */
	pthread_cond_t idle;		/* storeq_drain: a job finished */
	struct sq_job *q, *q_tail;	/* to run, oldest first */
	struct sq_job *fin, *fin_tail;	/* run, done not yet called */
	size_t pending;			/* queued + running + finished */
	size_t running;			/* queued + running */
	int efd;
	int quit;
	int nice;			/* steps below the daemon's priority */
	int niced;			/* steps taken (under the lock) */
};

static void
append(struct sq_job **head, struct sq_job **tail, struct sq_job *j)
{
	j->next = NULL;
	if (*tail != NULL)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

/*
 * The store thread's jobs can take a core for seconds (an import of a
 * large session, a fork of one), and sinkd runs as many compute
 * threads as cores: at the same priority the two halves of every
 * forward pass waited on each other while one shared its core, and the
 * streams' gaps doubled.  A few steps of niceness lets the store have
 * the cores the worker leaves idle, and a share of the rest.  Linux
 * keeps a nice value per thread, so this one alone is lowered.
 */
static int
lower_priority(int steps)
{
	id_t tid = (id_t)gettid();
	int cur, want;

	if (steps == 0)
		return 0;
	errno = 0;
	cur = getpriority(PRIO_PROCESS, tid);
	if (cur == -1 && errno != 0) {
		log_warn("store thread: cannot read its priority: %s",
		    strerror(errno));
		return 0;
	}
	want = cur + steps > 19 ? 19 : cur + steps;
	if (setpriority(PRIO_PROCESS, tid, want) != 0) {
		log_warn("store thread: cannot lower its priority to nice "
		    "%d: %s", want, strerror(errno));
		return 0;
	}
	return want - cur;
}

static void *
storeq_main(void *arg)
{
	struct storeq *q = arg;
	struct sq_job *j;
	uint64_t one = 1;
	int was_empty, niced = lower_priority(q->nice);

	pthread_mutex_lock(&q->lock);
	q->niced = niced;
	for (;;) {
		while (q->q == NULL && !q->quit)
			pthread_cond_wait(&q->wake, &q->lock);
		if ((j = q->q) == NULL)
			break;	/* quit, and nothing left to run */
		if ((q->q = j->next) == NULL)
			q->q_tail = NULL;
		pthread_mutex_unlock(&q->lock);
		j->run(j->arg);
		pthread_mutex_lock(&q->lock);
		was_empty = q->fin == NULL;
		append(&q->fin, &q->fin_tail, j);
		q->running--;
		pthread_cond_broadcast(&q->idle);
		if (was_empty && write(q->efd, &one, sizeof one) < 0 &&
		    errno != EAGAIN)
			log_error("store thread: eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

struct storeq *
storeq_new(int nice, char *cause)
{
	struct storeq *q = calloc(1, sizeof *q);

	if (q == NULL) {
		err_set(cause, "out of memory");
		return NULL;
	}
	q->nice = nice;
	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		err_set(cause, "eventfd: %s", strerror(errno));
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->wake, NULL);
	pthread_cond_init(&q->idle, NULL);
	if (pthread_create(&q->thread, NULL, storeq_main, q) != 0) {
		err_set(cause, "cannot start the store thread");
		close(q->efd);
		pthread_mutex_destroy(&q->lock);
		pthread_cond_destroy(&q->wake);
		pthread_cond_destroy(&q->idle);
		free(q);
		return NULL;
	}
	/* For top -H and ps -L; a name is only a convenience. */
	(void)pthread_setname_np(q->thread, "sinkd-store");
	return q;
}

void
storeq_free(struct storeq *q)
{
	if (q == NULL)
		return;
	storeq_drain(q);
	pthread_mutex_lock(&q->lock);
	q->quit = 1;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	storeq_complete(q);
	close(q->efd);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->wake);
	pthread_cond_destroy(&q->idle);
	free(q);
}

int
storeq_fd(const struct storeq *q)
{
	return q->efd;
}

void
storeq_submit(struct storeq *q, storeq_fn *run, storeq_fn *done, void *arg)
{
	struct sq_job *j;

	while ((j = calloc(1, sizeof *j)) == NULL)
		usleep(1000);
	j->run = run;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&q->lock);
	append(&q->q, &q->q_tail, j);
	q->pending++;
	q->running++;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
}

void
storeq_complete(struct storeq *q)
{
	struct sq_job *j, *n;
	uint64_t v;

	if (read(q->efd, &v, sizeof v) < 0 && errno != EAGAIN)
		log_error("store thread: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&q->lock);
	j = q->fin;
	q->fin = q->fin_tail = NULL;
	pthread_mutex_unlock(&q->lock);
	for (; j != NULL; j = n) {
		n = j->next;
		if (j->done != NULL)
			j->done(j->arg);
		pthread_mutex_lock(&q->lock);
		q->pending--;
		pthread_mutex_unlock(&q->lock);
		free(j);
	}
}

void
storeq_drain(struct storeq *q)
{
	size_t left;

	/* A done call may queue another job (an import's snapshot). */
	do {
		pthread_mutex_lock(&q->lock);
		while (q->running > 0)
			pthread_cond_wait(&q->idle, &q->lock);
		pthread_mutex_unlock(&q->lock);
		storeq_complete(q);
		pthread_mutex_lock(&q->lock);
		left = q->pending;
		pthread_mutex_unlock(&q->lock);
	} while (left > 0);
}

void
storeq_get_stats(struct storeq *q, struct storeq_stats *st)
{
	pthread_mutex_lock(&q->lock);
	st->pending = q->pending;
	st->niced = q->niced;
	pthread_mutex_unlock(&q->lock);
}
