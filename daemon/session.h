/*
 * session: a named conversation: its sequence (the attention-sink cache
 * over the shared model), its options and sampler, its transcript, and
 * the requests waiting for it.  Sessions belong to the loop thread; while
 * a job runs, the worker alone touches the sequence and the sampler.
 * Designed for the store (issue 5): everything a snapshot needs is here.
 */
#ifndef SINKD_SESSION_H
#define SINKD_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "model.h"
#include "proto.h"
#include "sampler.h"
#include "seq.h"

enum turn_role { ROLE_USER, ROLE_ASSISTANT, ROLE_CONTEXT };

struct turn {
	enum turn_role role;
	char *text;	/* len bytes, NUL-terminated, may hold NULs */
	size_t len;
};

struct job;

struct session {
	char name[PROTO_NAME_MAX + 1];
	uid_t owner;
	struct seq_opts so;
	struct seq *seq;
	struct sampler_params sp;
	int32_t max_tokens;
	struct sampler *smp;
	char *system;
	int chatted;		/* the chat format's first turn is done */
	struct turn *turns;
	size_t n_turns, cap_turns;
	time_t created, used;
	struct seq_info info;	/* as of the end of the last job */
	struct job *running;	/* at most one job at a time */
	struct job *queue, *queue_tail;
	int n_queued;
	int dead;		/* deleted: freed when its jobs end */
};

struct sess_table {
	struct session **v;
	size_t n, cap;
};

const char *role_name(enum turn_role);

struct session *session_new(const struct model *, const char *name,
    uid_t owner, const struct seq_opts *, const struct sampler_params *,
    int32_t max_tokens, const char *system, char *cause);
void session_free(struct session *);
int session_add_turn(struct session *, enum turn_role, const char *text,
    size_t len, char *cause);
/* Empties cache and transcript; keeps options and the system prompt. */
void session_reset(struct session *);

struct session *sess_find(const struct sess_table *, const char *name,
    size_t len);
int sess_add(struct sess_table *, struct session *, char *cause);
void sess_remove(struct sess_table *, struct session *);
void sess_table_free(struct sess_table *);

#endif
