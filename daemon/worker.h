/*
 * worker: the thread that runs the forward passes, so that the event
 * loop never does.  Jobs of different sessions share it fairly: each
 * step is one prefill chunk or one generated token of one job, and jobs
 * take turns.  Results go back as events through a locked queue; an
 * eventfd is written when the queue goes from empty to non-empty, and
 * the loop drains it.  A finished job goes to the store thread
 * (storeq.h), which takes its snapshot and then sends its DONE event:
 * the worker goes on with the other jobs meanwhile, and neither it nor
 * the loop waits on the disk.
 *
 * Threads: the run queue, the event queue and quit are under the lock
 * (the loop submits and takes, the worker steps, the store thread pushes
 * DONE events and warnings through the same lock).  gen is the worker's,
 * but for gen_save's reads of what gen_init set, on the store thread.
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

struct worker;
struct store;
struct storeq;
struct tmpl;

/* After each job its session is saved into st (gen_save) through sq. */
struct worker *worker_new(const struct model *, const struct tmpl *,
    struct store *st, struct storeq *sq, int threads, char *cause);
/* Stops the thread; call when no job is running or being saved. */
void worker_free(struct worker *);
int worker_fd(const struct worker *);
/* Thread-safe.  The job must be its session's only running job. */
void worker_submit(struct worker *, struct job *);
/* All events so far, oldest first; the caller frees them. */
struct wevent *worker_take(struct worker *);
void wevent_free(struct wevent *);

#endif
