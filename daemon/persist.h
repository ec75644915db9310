/*
 * persist: the loop thread's side of the store: sessions listed from it
 * at startup, snapshots of idle sessions (create, reset, import, a retry
 * after a failure, shutdown), deletion, and the memory budget that sends
 * the least recently used idle sessions back to the store.  Also
 * sinkd --check-db.
 *
 * While serving, every write goes to the store thread as a store job
 * (struct pjob, below): the loop submits it and carries on, and its done
 * call comes back on the loop.  A store job of a session counts in
 * s->storing, which makes the session the store thread's in the ways
 * session.h says; the loop's requests on it wait (request.c parks them)
 * and its queued turns start after the last done call.  The store
 * thread runs jobs in order, so those of one session see each other.
 * Only persist_open (before serving) and persist_flush (after the loop
 * has stopped and the queue is drained) touch the store on the loop.
 */
#ifndef SINKD_PERSIST_H
#define SINKD_PERSIST_H

#include <stdio.h>

#include "conf.h"
#include "daemon.h"
#include "session.h"

struct pjob;
typedef void pjob_fn(struct pjob *);

/* A store job: run on the store thread, then done on the loop. */
struct pjob {
	struct daemon *d;
	struct session *s;	/* storing while queued; NULL: none.  done
				 * sets it NULL when it frees the session */
	pjob_fn *run, *done;
	int rc;			/* run's outcome, for done */
	char cause[ERR_LEN];
	uint64_t client, id;	/* the request to answer; 0: none */
	int replace;		/* snapshots: as in snap_save */
	int evict;		/* an eviction: unload once saved */
	int detail;		/* answer with the session's detail */
	void *arg;		/* the op's own */
};

/* A store job for s (may be NULL); NULL when out of memory. */
struct pjob *persist_job(struct daemon *, struct session *, pjob_fn *run,
    pjob_fn *done);
/* Queues p (it is freed after its done call). */
void persist_submit(struct daemon *, struct pjob *);
/*
 * Queues a snapshot of an idle, loaded session (replace as in
 * snap_save); done: the session saved, or marked dirty with a warning.
 * With client and id, they are answered {"saved": bool}, or with detail
 * {"session": the session's detail} (a create).  0, or -1 when out of
 * memory (the session is marked dirty: a later snapshot retries) or the
 * session is not loaded: nobody is answered then.
 */
int persist_save_bg(struct daemon *, struct session *, int replace,
    uint64_t client, uint64_t id, int detail);
/* A snapshot's two halves, for store jobs that do more after it. */
pjob_fn persist_save_run, persist_saved;
/*
 * Names that store jobs are making (a fork): taken, like the sessions'.
 * persist_reserve: -1 when out of memory.
 */
int persist_name_taken(const struct daemon *, const char *name, size_t len);
int persist_reserve(struct daemon *, const char *name);
void persist_release(struct daemon *, const char *name);

/* Opens conf->db and lists its sessions into d (none loaded). */
int persist_open(struct daemon *, char *cause);
/*
 * Snapshots an idle, loaded session now, on the calling thread (at
 * shutdown: persist_flush; replace as in snap_save).  On
 * success its turns in memory are dropped (they are stored); on failure
 * it is marked dirty, a warning is logged, and -1 returned with cause.
 */
int persist_save(struct daemon *, struct session *, int replace,
    char *cause);
/*
 * Snapshots every session with unsaved changes (at shutdown): the number
 * that could not be saved, their names listed in names (cut to size).
 */
size_t persist_flush(struct daemon *, char *names, size_t size);
/* The session is being used: it becomes the most recently used. */
void persist_touch(struct daemon *, struct session *);
/*
 * Makes room for need_bytes more of cache and need_n more resident
 * sessions, unloading the least recently used idle sessions but keep.
 */
void persist_budget(struct daemon *, const struct session *keep,
    uint64_t need_bytes, size_t need_n);
/*
 * Queues the removal of s from the store (s->dead is set: nobody finds
 * it meanwhile).  done: s freed and the delete answered ok, or, when
 * the store failed, s back (dead 0) and the error sent.
 */
void persist_delete(struct daemon *, struct session *);
/* Bytes of cache and number of sessions in memory. */
uint64_t persist_resident(const struct daemon *, size_t *n);

/*
 * sinkd --check-db: reads the whole database, prints what is wrong and
 * a summary to out; the exit status (0 sound, 1 problems found).  With
 * a model, each session's fingerprint is checked against it.
 */
int persist_check_db(const struct conf *, const struct model *, FILE *out);

#endif
