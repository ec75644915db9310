/*
 * req: what the request handlers share (request.c, request_store.c):
 * the request being served, replies and errors, session lookup, jobs.
 * Not for use outside the two.
 */
#ifndef SINKD_REQ_H
#define SINKD_REQ_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "daemon.h"
#include "job.h"
#include "proto.h"
#include "session.h"

/* The largest reply: far above any request, bounded all the same. */
#define REPLY_MAX (PROTO_MAX_FRAME * 16)
/* An export file's frame fits one data message (xfer.c, import.c). */
#define XFER_FRAME_MAX (REPLY_MAX - 1024)

struct req {
	struct daemon *d;
	struct client *c;
	struct proto_msg *msg;
	const uint8_t *body;	/* the frame msg was parsed from */
	size_t body_len;
	uint64_t id;
	struct proto_out out;
	enum proto_err code;
	char cause[ERR_LEN];
};

typedef int req_fn(struct req *);

/* -1, with the error the request will be answered with. */
int req_err(struct req *, enum proto_err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* -1: a bad request, r->cause already says why. */
int bad(struct req *);
/* Sends a finished message; one too large becomes an error. */
void send_out(struct client *, struct proto_out *, uint64_t id);
/* Starts an ok reply with n more pairs; reply() sends it. */
struct proto_out *ok(struct req *, size_t n);
int reply(struct req *);

/* The session named by key "name", if this client may use it. */
int find_session(struct req *, struct session **);
/* 0 if s may take turns; -1 (damaged) if not. */
int usable(struct req *, const struct session *);
const char *state_name(const struct session *);
uint64_t turn_count(const struct session *);
void pack_detail(struct proto_out *, const struct tmpl *,
    const struct session *);

/*
 * The pinned prefix in chat format fmt: BOS, then the system prompt
 * (text NULL: none) as the format has it.
 */
int system_tokens(struct req *, int fmt, const char *text, size_t len,
    int32_t **ids, size_t *n);
struct job *job_new(struct req *, struct session *, enum job_kind);
/* Queues j behind its session's running job; busy when full. */
int enqueue(struct req *, struct job *);

/* Turns of a transcript, copied out of the store and memory. */
struct tlist {
	struct { int64_t n; int role; char *text; size_t len; } *v;
	size_t count, cap, bytes, max_bytes;
	int full;	/* a turn did not fit in max_bytes */
};
/*
 * Replies to a log (info 0: the page from..from+max-1 and the total) or
 * an info (info 1: the session and those turns as its recent ones).
 * Stored turns are read on the store thread and the reply comes when
 * they are, perhaps after replies to later requests; 0, or -1 with the
 * error.
 */
int reply_turns(struct req *, const struct session *, int info,
    int64_t from, int64_t max);
void pack_turns(struct proto_out *, const struct tlist *);
void tlist_free(struct tlist *);

/*
 * 0 if s may be copied out: idle, no export running, all of it in the
 * store; 1 when the request was parked until it is (a snapshot owed is
 * queued, or one is being written); else -1 (busy, out of memory).
 */
int settled(struct req *, struct session *);
/*
 * Parks the request on s until its store jobs are done, when it is
 * handled again from the start (1); -1 when out of memory.
 */
int park(struct req *, struct session *);

/*
 * Sampling keys of create, chat and complete; *any has bit 1 when one
 * is given, bit 2 when the seed is.
 */
int get_sampling(struct req *, struct sampler_params *, int *any);
/*
 * A new session from the request's keys (with_opts: create's too); its
 * first snapshot is queued.  -1 with the error; 0: with_opts, the
 * request is answered once the snapshot is done; 1: answer it now.
 */
int new_session(struct req *, const char *name, size_t len, int with_opts,
    struct session **out);

/* The session ops (request_sess.c). */
req_fn op_hello, op_list, op_info, op_create, op_delete, op_reset;

/* The store's ops (request_store.c, xfer.c). */
req_fn op_log, op_rebuild, op_fork, op_export, op_import, op_templates;

#endif
