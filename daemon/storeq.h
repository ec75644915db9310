/*
 * storeq: the store thread and its queue.  Everything that writes the
 * database while sinkd serves (a turn's snapshot, the snapshots of
 * create, reset, eviction and import, fork, delete) runs here, one job
 * at a time in the order submitted, so that neither the event loop nor
 * the worker ever waits on SQLite or on an fsync, and the jobs of a
 * session see each other in order (a snapshot then a fork of it; a save
 * then a delete).
 *
 * A job is two calls: run(arg) on the store thread, then, once it has
 * returned, done(arg) on the loop thread (storeq_complete, when
 * storeq_fd is readable; done may be NULL).  Completions are announced
 * through an eventfd written when the finished list goes from empty to
 * non-empty, as the worker's events are.
 *
 * Threads: submit from any thread; storeq_complete, storeq_drain and
 * storeq_free from the loop thread only.  The queue, the finished list
 * and the counts are under the lock; nothing else is shared.
 */
#ifndef SINKD_STOREQ_H
#define SINKD_STOREQ_H

#include <stddef.h>

typedef void storeq_fn(void *arg);

struct storeq;

/*
 * Starts the thread (named sinkd-store), nice steps below the priority
 * of the thread that starts it (capped at nice 19; 0: the same).
 */
struct storeq *storeq_new(int nice, char *cause);
/* Drains the queue (running every done), then stops the thread. */
void storeq_free(struct storeq *);
int storeq_fd(const struct storeq *);
/*
 * Queues a job.  Never fails: out of memory it waits for some, since
 * running the job out of order would break the order of its session.
 */
void storeq_submit(struct storeq *, storeq_fn *run, storeq_fn *done,
    void *arg);
/* The done calls of the jobs finished so far, oldest first (the loop). */
void storeq_complete(struct storeq *);
/*
 * Waits until every job has run and completes them, and those their
 * done calls queue too (at shutdown).
 */
void storeq_drain(struct storeq *);
struct storeq_stats {
	size_t pending;	/* jobs queued or running, not yet completed */
	int niced;	/* steps nicer the thread got (0 until it starts) */
};
void storeq_get_stats(struct storeq *, struct storeq_stats *);

#endif
