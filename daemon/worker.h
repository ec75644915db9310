/*
 * worker: the thread that runs the forward passes, so that the event
 * loop never does.  Jobs of different sessions share it by continuous
 * batching: each step is one forward pass over a batch holding the next
 * token of every generating job (up to max_batch of them), then part of
 * one prompt's chunk (at most `chunk` tokens, cut the same whatever runs
 * beside it): alone, the whole chunk; beside decode rows, as many
 * stages (half a layer each) as fit in prefill_share% of the time the
 * decode rows took, so that a long prompt makes the streams beside it
 * at most that much slower, not a chunk a step.  A job submitted joins
 * at the next step, a cancelled one leaves at the next step (once its
 * chunk in flight is in), and jobs left out of a full step go first in
 * the next.  Results go back as events through a locked queue; an
 * eventfd is written when the queue goes from empty to non-empty, and
 * the loop drains it.  A finished job goes to the store thread
 * (storeq.h), which takes its snapshot and then sends its DONE event:
 * the worker goes on with the other jobs meanwhile, and neither it nor
 * the loop waits on the disk.
 *
 * Threads: the run queue, the event queue, the figures and quit are
 * under the lock (the loop submits, takes and reads the figures, the
 * worker steps, the store thread pushes DONE events and warnings
 * through the same lock).  The turn order and the batch are the worker
 * thread's alone.  gen is the worker's, but for gen_save's reads of
 * what gen_init set, on the store thread.
 */
#ifndef SINKD_WORKER_H
#define SINKD_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "job.h"
#include "model.h"

/* An event for a client: a token, a warning, or the end of a job. */
struct wevent {
	uint64_t client, id;
	enum proto_kind kind;	/* TOKEN, WARNING, or DONE (see job) */
	char *text;		/* owned */
	size_t len;
	int32_t token;
	struct job *job;	/* DONE: the finished job, back to the loop */
	struct wevent *next;
};

struct worker_opts {
	int threads;
	int max_batch;	/* generating jobs in one step, at most */
	int chunk;	/* a prompt's chunk: tokens one pass takes, at most */
	int prefill_share; /* % a prompt may lengthen decode steps by */
};

/* What the scheduler has done, for `sink status`. */
struct worker_stats {
	int max_batch, chunk, prefill_share;
	uint64_t scratch;		/* bytes of the batch's work area */
	uint64_t steps, rows;		/* forward passes, tokens in them */
	uint64_t decode_rows, prefill_rows;
	size_t max_segments, max_rows;	/* the largest step */
};

struct worker;
struct store;
struct storeq;
struct tmpl;

/* After each job its session is saved into st (gen_save) through sq. */
struct worker *worker_new(const struct model *, const struct tmpl *,
    struct store *st, struct storeq *sq, const struct worker_opts *,
    char *cause);
/* Stops the thread; call when no job is running or being saved. */
void worker_free(struct worker *);
int worker_fd(const struct worker *);
/* Thread-safe.  The job must be its session's only running job. */
void worker_submit(struct worker *, struct job *);
void worker_get_stats(struct worker *, struct worker_stats *);
/* All events so far, oldest first; the caller frees them. */
struct wevent *worker_take(struct worker *);
void wevent_free(struct wevent *);

#endif
