/*
 * gen: the steps of a job on the worker thread: formatting a turn for
 * the model, prefill a chunk at a time, then sampling one token at a
 * time with stop strings, and the usage figures at the end.  The forward
 * passes themselves are the worker's, batched with other jobs' steps.
 */
#ifndef SINKD_GEN_H
#define SINKD_GEN_H

#include "job.h"
#include "model.h"
#include "pool.h"
#include "seq.h"
#include "tmpl.h"

enum { GEN_MORE, GEN_DONE };


/*
 * A message for the job's client: TOKEN (text, len, token), WARNING
 * (text, len), or PROGRESS of a long prefill (len = tokens done, token
 * unused, text NULL).
 */
typedef void gen_emit_fn(void *arg, const struct job *, enum proto_kind,
    const char *text, size_t len, int32_t token);

struct store;

struct gen {
	const struct model *m;
	const struct tmpl *tm;	/* the chat formats */
	struct store *store;
	struct pool *pool;
	struct seq_work *work;
	int32_t n_batch;
};

/*
 * The pinned prefix in chat format c: BOS (the template's or the
 * tokenizer's) and the system block of text (NULL: none).
 */
int gen_system_tokens(const struct chat *c, const struct tok *,
    const char *text, size_t len, int32_t **ids, size_t *n, char *cause);

/* Monotonic seconds: the jobs' timings and the worker's. */
double gen_now(void);

/* Scratch for batches of up to n_batch rows. */
int gen_init(struct gen *, const struct model *, const struct tmpl *,
    struct store *, int threads, int32_t n_batch, char *cause);
void gen_free(struct gen *);

/*
 * A job's part in a step of the worker (worker.c packs the parts of
 * many jobs into one batch).  Each returns GEN_MORE, or GEN_DONE with
 * j's outcome filled in and what was held back sent.
 *
 * gen_begin comes first in every step: the first loads a session that
 * is only in the store and formats the turn; any sees a cancel.  Then a
 * job still prefilling (gen_prefilling) takes a chunk; one generating
 * samples its next token (gen_sample), which the step evaluates.
 * gen_segment describes the job's part of the batch, chunks of at most
 * max tokens (cut by seq_chunk_len, so a prompt is cut the same way
 * whatever else is in the batch); it returns the rows.  gen_after takes
 * the outcome of that segment, with a PROGRESS message each time the
 * prompt passes a multiple of every tokens.
 */
int gen_begin(struct gen *, struct job *, gen_emit_fn *, void *arg);
int gen_prefilling(const struct job *);
int gen_sample(struct gen *, struct job *, gen_emit_fn *, void *arg);
size_t gen_segment(const struct job *, size_t max, struct seq_seg *);
int gen_after(struct job *, const struct seq_seg *, size_t every,
    gen_emit_fn *, void *arg);
/*
 * After the last step, on the store thread (worker.c): the session's
 * snapshot, with the job's turns.  Reads only what gen_init set.
 * A snapshot that fails is a WARNING to the client; the session stays
 * as it is in memory and the next snapshot catches up.
 */
void gen_save(struct gen *, struct job *, gen_emit_fn *, void *arg);

#endif
