/*
 * job: one request's work on a session, handed from the loop thread to
 * the worker, then to the store thread for its snapshot (gen_save), and
 * back to the loop with the DONE event.  The loop fills the request
 * part; the worker owns the rest while the job steps, then the store
 * thread (saved, n_saved_turns, t_save, save_bytes and the warnings);
 * each hand-over goes through a locked queue.  `stop` is the one field
 * the loop and the others touch at once (atomic).
 */
#ifndef SINKD_JOB_H
#define SINKD_JOB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "proto.h"
#include "sampler.h"
#include "seq.h"

/*
 * JOB_PREFIX feeds prefix (a system prompt); JOB_REBUILD makes a new
 * cache from prefix and the most recent turns of the transcript.
 */
enum job_kind { JOB_CHAT, JOB_COMPLETE, JOB_FEED, JOB_PREFIX, JOB_REBUILD };

/* Why a job was told to stop (job.stop). */
enum job_stop { STOP_NONE, STOP_USER, STOP_GONE, STOP_OVERFLOW,
	STOP_SHUTDOWN };

#define JOB_MAX_STOPS 8

struct session;

struct job {
	/* The request, filled by the loop. */
	uint64_t client;	/* client serial; 0: internal */
	uint64_t id;		/* request id */
	enum job_kind kind;
	struct session *s;
	char *text;		/* owned */
	size_t text_len;
	int32_t *prefix;	/* JOB_PREFIX: tokens to feed (owned) */
	size_t n_prefix;
	int32_t max_tokens;
	struct sampler_params sp;
	int sp_override;	/* sample with sp this turn: bit 1 set; bit
				 * 2: with its own seed, not the session's
				 * random state */
	int ignore_eos;		/* generate max_tokens whatever */
	char *stops[JOB_MAX_STOPS];
	size_t n_stops;
	atomic_int stop;	/* enum job_stop */

	/* The worker's, while the job runs. */
	int32_t *toks;
	size_t n_toks, fed;
	float *logits;
	struct sampler *tmp_smp;
	int32_t prev, generated;
	int32_t next_id;	/* sampled, for the next step to evaluate */
	char *reply;		/* generated text */
	size_t reply_len, reply_cap, sent;
	int32_t *gen;		/* generated ids that went into the cache */
	size_t n_gen, cap_gen;
	double t_start, t_prefill, t_decode;
	size_t n_prompt;
	size_t n_sys;		/* toks begin with a system prompt this long */
	const struct chat *chat;	/* the session's chat format */
	int32_t end_ids[8];	/* chat turns: the ids that end the reply */
	size_t n_end_ids;
	int32_t eot_after;	/* test hook (gen.c); -1: off */

	/* The outcome, read by the loop after the done event. */
	enum proto_finish finish;
	int failed;
	enum proto_err err_code;
	char err[3 * ERR_LEN];	/* room for a long name three times */
	struct seq_info info;
	int chatted;		/* the session's chat state after the job */
	int load_failed;	/* the stored session could not be loaded */
	struct seq *old_seq;	/* JOB_REBUILD: the cache it replaces, */
	struct sampler *old_smp;	/* back in place if it fails */
	int swapped;		/* (while the new ones are in the session) */
	char why[ERR_LEN];	/* (then) why, for the session's record */
	size_t n_rebuilt_turns;	/* JOB_REBUILD: turns re-encoded */
	int saved;		/* the snapshot after the job is committed */
	size_t n_saved_turns;	/* the job's own turns in it */
	double t_save;		/* seconds the snapshot took */
	double t_load;		/* seconds loading the session took, or 0 */
	uint64_t save_bytes;	/* KV bytes it wrote */

	struct job *next;	/* in a session's queue or the run queue */
};

void job_free(struct job *);

#endif
