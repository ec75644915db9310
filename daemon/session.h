/*
 * session: a named conversation: its sequence (the attention-sink cache
 * over the shared model), its options and sampler, its transcript, and
 * the requests waiting for it.  A session is resident (its cache in
 * memory) or only in the store, to be loaded by the worker when a job
 * needs it (snap.h).  The transcript in memory holds only the turns not
 * yet in the store.
 *
 * Threads: sessions belong to the loop thread.  While a job runs
 * (running != NULL) the worker alone touches the sequence and the
 * sampler, then the store thread, which writes the job's snapshot (it
 * reads the turns and writes replace) before the loop hears that the
 * job is done.  While store jobs of the session are queued (storing > 0,
 * persist.h), the store thread may touch the sequence, the sampler, the
 * turns in memory and replace; the loop starts no job on it, parks the
 * requests that need them (parked), and changes none of the fields a
 * snapshot reads (options, counts, chatted, text_below) until the jobs'
 * done calls.
 */
#ifndef SINKD_SESSION_H
#define SINKD_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "err.h"
#include "model.h"
#include "proto.h"
#include "sampler.h"
#include "seq.h"

enum turn_role { ROLE_USER, ROLE_ASSISTANT, ROLE_CONTEXT };

struct turn {
	enum turn_role role;
	char *text;	/* len bytes, NUL-terminated, may hold NULs */
	size_t len;
	int32_t *toks;	/* the ids that went into the cache for it */
	size_t n_toks;
};

struct job;

/* A request that waits for the session's store jobs (request.c). */
struct parked {
	uint64_t client;	/* its client's serial */
	uint8_t *body;		/* the frame, owned */
	size_t len;
	struct parked *next;
};

struct session {
	char name[PROTO_NAME_MAX + 1];
	uid_t owner;
	struct seq_opts so;
	struct seq *seq;	/* NULL: not loaded (the worker's, in a job) */
	struct sampler_params sp;
	int32_t max_tokens;
	struct sampler *smp;	/* NULL when seq is */
	char *system;
	int fmt;		/* its chat format: a chat.h family */
	int chatted;		/* the chat format's first turn is done */
	struct turn *turns;	/* not yet in the store */
	size_t n_turns, cap_turns;
	int64_t n_stored;	/* turns in the store, before those */
	int resident;		/* the loop's view: loaded, or loading */
	int dirty;		/* the last snapshot failed */
	int replace;		/* (then) what it had to replace (snap_save) */
	char damaged[ERR_LEN];	/* why the stored state is unusable */
	int foreign;		/* stored by another model: ids mean nothing */
	int64_t text_below;	/* stored turns below it: another model's ids */
	int exporting;		/* a client reads it out: no job may start */
	uint64_t tick;		/* last use, for least-recently-used */
	time_t created, used;
	struct seq_info info;	/* as of the end of the last job */
	struct job *running;	/* at most one job at a time */
	struct job *queue, *queue_tail;
	int n_queued;
	int storing;		/* store jobs of it queued (persist.h) */
	struct parked *parked;	/* requests waiting for them (request.c) */
	int dead;		/* deleted: freed when its jobs end */
	uint64_t del_client, del_id;	/* (then) the delete to answer */
};

struct sess_table {
	struct session **v;
	size_t n, cap;
};

const char *role_name(enum turn_role);

struct session *session_new(const struct model *, const char *name,
    uid_t owner, const struct seq_opts *, const struct sampler_params *,
    int32_t max_tokens, const char *system, char *cause);
/* A session known from the store: no cache or sampler until loaded. */
struct session *session_stored(const char *name, uid_t owner,
    const struct seq_opts *, const struct sampler_params *,
    int32_t max_tokens, const char *system, char *cause);
void session_free(struct session *);
/* Frees the cache and the sampler; resident is the caller's to clear. */
void session_unload(struct session *);
/* Takes a copy of text and of the ids. */
int session_add_turn(struct session *, enum turn_role, const char *text,
    size_t len, const int32_t *toks, size_t n_toks, char *cause);
/* Frees the turns in memory (they are in the store now). */
void session_drop_turns(struct session *);
/*
 * A snapshot succeeded: it stored the turns in memory and n_more after
 * them (a job's own), and nothing is owed.
 */
void session_saved(struct session *, size_t n_more);
/*
 * Empties cache and transcript and restarts the random stream from the
 * seed; keeps options and the system prompt.  Loads a fresh cache when
 * the session had none.
 */
int session_reset(struct session *, const struct model *, char *cause);

struct session *sess_find(const struct sess_table *, const char *name,
    size_t len);
int sess_add(struct sess_table *, struct session *, char *cause);
void sess_remove(struct sess_table *, struct session *);
void sess_table_free(struct sess_table *);

#endif
