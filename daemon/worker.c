/*
 * worker: the compute thread (see worker.h) and its queues.  The steps
 * of a job (formatting, prefill, sampling, stop strings) are gen.c's.
 */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "gen.h"
#include "log.h"
#include "pool.h"
#include "storeq.h"

struct worker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job *run, *run_tail;	/* jobs taking turns */
	struct wevent *ev, *ev_tail;	/* events for the loop */
	int efd;
	int quit;
	struct gen gen;			/* compute state: pool, work */
	struct storeq *sq;		/* where finished jobs are saved */
};

/* A finished job on its way through the store thread. */
struct wsave {
	struct worker *w;
	struct job *j;
};

static void
push_event(struct worker *w, struct wevent *e)
{
	uint64_t one = 1;
	int was_empty;

	pthread_mutex_lock(&w->lock);
	was_empty = w->ev == NULL;
	if (w->ev_tail != NULL)
		w->ev_tail->next = e;
	else
		w->ev = e;
	w->ev_tail = e;
	pthread_mutex_unlock(&w->lock);
	if (was_empty && write(w->efd, &one, sizeof one) < 0 &&
	    errno != EAGAIN)
		log_error("worker: eventfd: %s", strerror(errno));
}

/* gen.c's way to send: copies text. */
static void
emit(void *arg, const struct job *j, enum proto_kind kind, const char *text,
    size_t len, int32_t token)
{
	struct worker *w = arg;
	struct wevent *e = calloc(1, sizeof *e);

	if (e == NULL || (text != NULL && len > 0 && (e->text =
	    malloc(len)) == NULL)) {
		free(e);
		log_error("worker: out of memory for an event");
		return;
	}
	if (text != NULL && len > 0)
		memcpy(e->text, text, len);
	e->client = j->client;
	e->id = j->id;
	e->kind = kind;
	e->len = len;
	e->token = token;
	e->job = (struct job *)(uintptr_t)j; /* alive until its DONE */
	push_event(w, e);
}

static void
finish(struct worker *w, struct job *j)
{
	struct wevent *e = calloc(1, sizeof *e);

	if (e == NULL) {
		/* Nothing else can hand the job back: wait for memory. */
		while ((e = calloc(1, sizeof *e)) == NULL)
			usleep(1000);
	}
	e->client = j->client;
	e->id = j->id;
	e->kind = PROTO_K_DONE;
	e->job = j;
	push_event(w, e);
}

/* The next job to step, or NULL when told to quit. */
static struct job *
next_job(struct worker *w)
{
	struct job *j;

	pthread_mutex_lock(&w->lock);
	while (w->run == NULL && !w->quit)
		pthread_cond_wait(&w->wake, &w->lock);
	j = w->run;
	if (j != NULL) {
		w->run = j->next;
		if (w->run == NULL)
			w->run_tail = NULL;
		j->next = NULL;
	}
	pthread_mutex_unlock(&w->lock);
	return j;
}

static void
requeue(struct worker *w, struct job *j)
{
	pthread_mutex_lock(&w->lock);
	j->next = NULL;
	if (w->run_tail != NULL)
		w->run_tail->next = j;
	else
		w->run = j;
	w->run_tail = j;
	pthread_mutex_unlock(&w->lock);
}

/*
 * On the store thread: the job's snapshot, then its DONE.  The session
 * is still the job's until the loop has the DONE, so nobody else
 * touches its cache meanwhile, and the client hears the turn is saved
 * only once the transaction has committed.  gen_save reads only what
 * gen_init set (model, store), never the worker's scratch.
 */
static void
save_run(void *arg)
{
	struct wsave *ws = arg;

	gen_save(&ws->w->gen, ws->j, emit, ws->w);
	finish(ws->w, ws->j);
	free(ws);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct wsave *ws;
	struct job *j;

	while ((j = next_job(w)) != NULL) {
		if (gen_step(&w->gen, j, emit, w) == GEN_MORE) {
			requeue(w, j);
			continue;
		}
		/* The snapshot's fsync is the store thread's: on we go. */
		while ((ws = malloc(sizeof *ws)) == NULL)
			usleep(1000);
		ws->w = w;
		ws->j = j;
		storeq_submit(w->sq, save_run, NULL, ws);
	}
	return NULL;
}

struct worker *
worker_new(const struct model *m, const struct tmpl *tm, struct store *st,
    struct storeq *sq, int threads, char *cause)
{
	struct worker *w = calloc(1, sizeof *w);

	if (w == NULL) {
		err_set(cause, "out of memory");
		return NULL;
	}
	w->sq = sq;
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	if (w->efd < 0) {
		err_set(cause, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (gen_init(&w->gen, m, tm, st, threads, cause) != 0)
		goto fail;
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		err_set(cause, "cannot start the worker thread");
		goto fail;
	}
	return w;
fail:
	gen_free(&w->gen);
	if (w->efd >= 0)
		close(w->efd);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	free(w);
	return NULL;
}

void
worker_free(struct worker *w)
{
	struct wevent *e;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->quit = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	while ((e = worker_take(w)) != NULL)
		wevent_free(e);
	gen_free(&w->gen);
	close(w->efd);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	free(w);
}

int
worker_fd(const struct worker *w)
{
	return w->efd;
}

void
worker_submit(struct worker *w, struct job *j)
{
	requeue(w, j);
	pthread_mutex_lock(&w->lock);
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

struct wevent *
worker_take(struct worker *w)
{
	struct wevent *e;
	uint64_t n;

	if (read(w->efd, &n, sizeof n) < 0 && errno != EAGAIN)
		log_error("worker: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&w->lock);
	e = w->ev;
	w->ev = w->ev_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	return e;
}

void
wevent_free(struct wevent *e)
{
	struct wevent *n;

	for (; e != NULL; e = n) {
		n = e->next;
		free(e->text);
		free(e);
	}
}
