/*
 * worker: the compute thread (see worker.h), its queues and its
 * scheduler.  The steps of a job (formatting, prefill, sampling, stop
 * strings) are gen.c's; the worker packs the steps of every job that
 * can take one into a batch, one forward pass for all of them
 * (continuous batching).
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
	struct job *run, *run_tail;	/* submitted, not yet taken */
	struct wevent *ev, *ev_tail;	/* events for the loop */
	int efd;
	int quit;
	struct worker_stats stats;	/* under the lock */
	struct gen gen;			/* compute state: pool, work */
	struct storeq *sq;		/* where finished jobs are saved */

	/* The worker thread's own. */
	struct job **act;		/* jobs taking turns, next first */
	size_t n_act, cap_act;
	struct job **order;		/* the next turn order, being made */
	struct seq_seg *seg;		/* this step's batch */
	struct job **segj;		/* whose each segment is */
	unsigned char *served;		/* per act: 1 served, 2 finished */
	size_t n_seg, max_seg;
	int max_batch, chunk;

	/*
	 * Prompt chunks going in by stages (half a layer each) beside
	 * decode steps: the pass, whose chunks they are, their segments,
	 * and the times that size each step's share (EWMAs, seconds).
	 */
	struct seq_pass *pass;
	struct job **pj;		/* [chunk] */
	struct seq_seg *pseg;		/* [chunk] */
	size_t n_pj;
	size_t n_wait, n_dec;	/* this step: jobs prefilling, decoding */
	int share;		/* % a decode step may grow by */
	double t_dec;		/* a step's decode rows */
	double t_row[2];	/* a row of an attention stage, of an FFN one */
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

/* Room for n jobs taking turns. */
static int
act_reserve(struct worker *w, size_t n)
{
	struct job **a, **o;
	unsigned char *sv;
	size_t cap;

	if (n <= w->cap_act)
		return 0;
	cap = w->cap_act ? w->cap_act : 16;
	while (cap < n)
		cap *= 2;
	if ((a = realloc(w->act, cap * sizeof *a)) == NULL)
		return -1;
	w->act = a;
	if ((o = realloc(w->order, cap * sizeof *o)) == NULL)
		return -1;
	w->order = o;
	if ((sv = realloc(w->served, cap)) == NULL)
		return -1;
	w->served = sv;
	w->cap_act = cap;
	return 0;
}

/*
 * Submitted jobs join the turns at the back; with none running, waits
 * for one.  -1 once told to quit with nothing left to do.
 */
static int
take_new(struct worker *w)
{
	struct job *j, *next;
	size_t n = 0;

	pthread_mutex_lock(&w->lock);
	while (w->n_act == 0 && w->run == NULL && !w->quit)
		pthread_cond_wait(&w->wake, &w->lock);
	for (j = w->run; j != NULL; j = j->next)
		n++;
	/* Out of memory: the new jobs wait for the next step. */
	if (n > 0 && act_reserve(w, w->n_act + n) == 0) {
		for (j = w->run; j != NULL; j = next) {
			next = j->next;
			j->next = NULL;
			w->act[w->n_act++] = j;
		}
		w->run = w->run_tail = NULL;
	}
	n = w->n_act == 0 && w->run == NULL && w->quit;
	pthread_mutex_unlock(&w->lock);
	if (w->n_act == 0 && !n)
		usleep(1000);
	return n ? -1 : 0;
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

/* A finished job goes to the store thread; the worker goes on. */
static void
retire(struct worker *w, struct job *j)
{
	struct wsave *ws;

	while ((ws = malloc(sizeof *ws)) == NULL)
		usleep(1000);
	ws->w = w;
	ws->j = j;
	storeq_submit(w->sq, save_run, NULL, ws);
}

static void
add_segment(struct worker *w, struct job *j, size_t i)
{
	w->segj[w->n_seg++] = j;
	w->served[i] = 1;
}

/* Moves an estimate towards a new reading (the first one sets it). */
static void
ewma(double *e, double x)
{
	*e = *e > 0.0 ? *e + (x - *e) / 8.0 : x;
}

/* Whether j has a chunk in the pass. */
static int
in_pass(const struct worker *w, const struct job *j)
{
	size_t i;

	for (i = 0; i < w->n_pj; i++)
		if (w->pj[i] == j)
			return 1;
	return 0;
}

/*
 * j, prefilling, takes the next chunk of its prompt if the step's
 * budget of prompt tokens has room (the first always has): into the
 * pass, which runs in stages (run_pass), or, when the chunk cannot run
 * in stages (seq_pass_add says why), as a segment of the batch.  A chunk
 * that would pass the budget waits rather than being cut, so that a
 * prompt is cut the same way whatever runs beside it.  GEN_DONE when
 * the chunk failed at once.
 */
static int
take_chunk(struct worker *w, struct job *j, size_t i, size_t *budget,
    int *any)
{
	struct seq_seg *sg = &w->pseg[w->n_pj];
	size_t c = gen_segment(j, (size_t)w->chunk, sg);
	int r;

	if (*any && c > *budget)
		return GEN_MORE;
	r = seq_pass_add(w->pass, w->gen.work, w->gen.pool, sg);
	if (r < 0)
		return gen_after(j, sg, (size_t)w->chunk, emit, w);
	*budget -= c < *budget ? c : *budget;
	*any = 1;
	if (r == 0) {
		w->pj[w->n_pj++] = j;
		w->served[i] = 1;
	} else {
		w->seg[w->n_seg] = *sg;
		add_segment(w, j, i);
	}
	return GEN_MORE;
}

/*
 * This step's batch, in turn order: every generating job's next token,
 * up to max_batch of them; and, unless a pass is under way, prompt
 * chunks of up to chunk tokens in all, which stay in the pass until
 * they are all in (many steps beside decode rows, one alone), their
 * jobs then going to the back.  A chunk is cut to --chunk whatever runs
 * beside it, and its stages compute what the whole chunk would: no
 * prompt's results depend on its company.
 */
static void
pick(struct worker *w)
{
	size_t i, n_dec = 0, budget = (size_t)w->chunk;
	int open = seq_pass_left(w->pass) == 0, any = 0;
	struct job *j;

	w->n_seg = 0;
	w->n_wait = 0;
	for (i = 0; i < w->n_act; i++) {
		j = w->act[i];
		w->served[i] = 0;
		if (!open && in_pass(w, j)) {
			/* Its cancel is seen once its chunk is in. */
			w->served[i] = 1;
			w->n_wait++;
		} else if (gen_begin(&w->gen, j, emit, w) == GEN_DONE) {
			w->served[i] = 2;
		} else if (gen_prefilling(j)) {
			w->n_wait++;
			if (open && take_chunk(w, j, i, &budget, &any) ==
			    GEN_DONE)
				w->served[i] = 2;
		} else if (n_dec < (size_t)w->max_batch) {
			if (gen_sample(&w->gen, j, emit, w) == GEN_DONE) {
				w->served[i] = 2;
				continue;
			}
			gen_segment(j, 1, &w->seg[w->n_seg]);
			n_dec++;
			add_segment(w, j, i);
		}
	}
	w->n_dec = n_dec;
}

/*
 * The batch's forward pass.  A batch that cannot run as a whole (out of
 * memory) runs a segment at a time, so that only a segment that cannot
 * run at all fails, and only its job.
 */
static void
eval(struct worker *w)
{
	char cause[ERR_LEN] = "";
	size_t i, rows = 0;
	double t0 = gen_now();

	if (w->n_seg == 0)
		return;
	for (i = 0; i < w->n_seg; i++)
		rows += w->seg[i].n;
	if (seq_eval_batch(w->gen.work, w->gen.pool, w->seg, w->n_seg,
	    cause) >= 0) {
		/* What decode rows alone take: the pass's yardstick. */
		if (rows == w->n_seg)
			ewma(&w->t_dec, gen_now() - t0);
		return;
	}
	log_debug("worker: batch of %zu segments: %s; one at a time",
	    w->n_seg, cause);
	for (i = 0; i < w->n_seg; i++) {
		if (seq_eval_batch(w->gen.work, w->gen.pool, &w->seg[i], 1,
		    cause) < 0) {
			w->seg[i].failed = 1;
			snprintf(w->seg[i].cause, sizeof w->seg[i].cause, "%s",
			    cause);
		}
	}
}

/* Whether a job with a chunk in the pass was told to stop. */
static int
cancelled(const struct worker *w)
{
	size_t i;

	for (i = 0; i < w->n_pj; i++)
		if (atomic_load(&w->pj[i]->stop) != STOP_NONE)
			return 1;
	return 0;
}

/*
 * The step's stages of the prompts' pass, after its decode rows: with
 * none, or a job of the pass cancelled, the whole rest of the chunk;
 * beside decode rows, stages while the time they take stays within
 * share% of what the decode rows take (one stage at least), so that a
 * long prompt makes every stream's steps at most that much longer, plus
 * half a layer of one chunk at worst.
 */
static void
run_pass(struct worker *w)
{
	int total = seq_pass_stages(w->gen.m), left = seq_pass_left(w->pass);
	double budget = w->t_dec * w->share / 100.0, spent = 0.0, t0, dt;
	double rows = 0.0;
	size_t i;
	int st;

	/* More sessions waiting to start than streaming: a larger share. */
	if (w->n_wait > w->n_dec && w->n_dec > 0)
		budget *= (double)w->n_wait / (double)w->n_dec;
	if (w->n_seg == 0 || cancelled(w)) {
		seq_pass_run(w->pass, w->gen.work, w->gen.pool, left);
		return;
	}
	for (i = 0; i < w->n_pj; i++)
		rows += (double)w->pseg[i].n;
	/* Times per row: a short prompt's whole pass may fit in one step. */
	do {
		st = (total - left) % 2;
		t0 = gen_now();
		left = seq_pass_run(w->pass, w->gen.work, w->gen.pool, 1);
		dt = gen_now() - t0;
		spent += dt;
		ewma(&w->t_row[st], dt / rows);
	} while (left > 0 && spent + rows * w->t_row[(total - left) % 2] <=
	    budget);
}

/* The step's figures, for `sink status`. */
static void
count_step(struct worker *w)
{
	size_t i, rows = 0, dec = 0;

	for (i = 0; i < w->n_seg; i++) {
		rows += w->seg[i].n;
		dec += !gen_prefilling(w->segj[i]);
	}
	if (w->n_pj > 0 && seq_pass_left(w->pass) == 0)
		for (i = 0; i < w->n_pj; i++)
			rows += w->pseg[i].n;
	pthread_mutex_lock(&w->lock);
	w->stats.steps++;
	w->stats.rows += rows;
	w->stats.decode_rows += dec;
	w->stats.prefill_rows += rows - dec;
	if (w->n_seg > w->stats.max_segments)
		w->stats.max_segments = w->n_seg;
	if (rows > w->stats.max_rows)
		w->stats.max_rows = rows;
	pthread_mutex_unlock(&w->lock);
}

/*
 * The next turn order: jobs not served this step first, as they were,
 * then the served ones, as they were; finished ones leave.  So a job
 * left out of a full step is first in the next.
 */
static void
reorder(struct worker *w)
{
	size_t i, n = 0;

	for (i = 0; i < w->n_act; i++)
		if (w->served[i] == 0)
			w->order[n++] = w->act[i];
	for (i = 0; i < w->n_act; i++)
		if (w->served[i] == 1)
			w->order[n++] = w->act[i];
	for (i = 0; i < w->n_act; i++)
		if (w->served[i] == 2)
			retire(w, w->act[i]);
	memcpy(w->act, w->order, n * sizeof *w->act);
	w->n_act = n;
}

/* Marks the jobs that finished with their segment, or their pass. */
static void
after(struct worker *w)
{
	size_t i, k = 0;

	count_step(w);
	if (w->n_pj > 0 && seq_pass_left(w->pass) == 0) {
		for (i = 0; i < w->n_pj; i++) {
			for (k = 0; w->act[k] != w->pj[i]; k++)
				;
			if (gen_after(w->pj[i], &w->pseg[i], (size_t)w->chunk,
			    emit, w) == GEN_DONE)
				w->served[k] = 2;
		}
		w->n_pj = 0;
		k = 0;
	}
	for (i = 0; i < w->n_seg; i++) {
		/* Segments are in turn order: find the job's place. */
		while (w->act[k] != w->segj[i])
			k++;
		if (gen_after(w->segj[i], &w->seg[i], (size_t)w->chunk, emit,
		    w) == GEN_DONE)
			w->served[k] = 2;
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	while (take_new(w) == 0) {
		if (w->n_act == 0)
			continue;
		pick(w);
		eval(w);
		if (seq_pass_left(w->pass) > 0)
			run_pass(w);
		after(w);
		reorder(w);
	}
	return NULL;
}

struct worker *
worker_new(const struct model *m, const struct tmpl *tm, struct store *st,
    struct storeq *sq, const struct worker_opts *o, char *cause)
{
	struct worker *w = calloc(1, sizeof *w);

	if (w == NULL) {
		err_set(cause, "out of memory");
		return NULL;
	}
	w->sq = sq;
	w->max_batch = o->max_batch;
	w->chunk = o->chunk;
	w->share = o->prefill_share;
	/* Every decode row, and prefill chunks of a token each at worst. */
	w->max_seg = (size_t)o->max_batch + (size_t)o->chunk;
	w->stats.max_batch = o->max_batch;
	w->stats.chunk = o->chunk;
	w->stats.prefill_share = o->prefill_share;
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	if (w->efd < 0) {
		err_set(cause, "eventfd: %s", strerror(errno));
		goto fail;
	}
	w->seg = calloc(w->max_seg, sizeof *w->seg);
	w->segj = calloc(w->max_seg, sizeof *w->segj);
	if (w->seg == NULL || w->segj == NULL) {
		err_set(cause, "out of memory");
		goto fail;
	}
	/* A step's rows: max_batch tokens and chunk more at most. */
	if (gen_init(&w->gen, m, tm, st, o->threads, o->max_batch + o->chunk,
	    cause) != 0 ||
	    (w->pass = seq_pass_new(m, (size_t)o->chunk, cause)) == NULL)
		goto fail;
	w->pj = calloc((size_t)o->chunk, sizeof *w->pj);
	w->pseg = calloc((size_t)o->chunk, sizeof *w->pseg);
	if (w->pj == NULL || w->pseg == NULL) {
		err_set(cause, "out of memory");
		goto fail;
	}
	/* The work area, the pass and the worker's records of its chunks. */
	w->stats.scratch = seq_work_bytes(w->gen.work) +
	    seq_pass_bytes(w->pass) + (uint64_t)o->chunk * (sizeof *w->pj +
	    sizeof *w->pseg);
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		err_set(cause, "cannot start the worker thread");
		goto fail;
	}
	(void)pthread_setname_np(w->thread, "sinkd-worker");
	return w;
fail:
	seq_pass_free(w->pass);
	free(w->pj);
	free(w->pseg);
	gen_free(&w->gen);
	free(w->seg);
	free(w->segj);
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
	seq_pass_free(w->pass);
	free(w->pj);
	free(w->pseg);
	gen_free(&w->gen);
	free(w->seg);
	free(w->segj);
	free(w->act);
	free(w->order);
	free(w->served);
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

void
worker_get_stats(struct worker *w, struct worker_stats *st)
{
	pthread_mutex_lock(&w->lock);
	*st = w->stats;
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
