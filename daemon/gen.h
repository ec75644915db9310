/*
 * gen: the steps of a job on the worker thread: formatting a turn for
 * the model, prefill a chunk at a time, then sampling one token at a
 * time with stop strings, and the usage figures at the end.
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

int gen_init(struct gen *, const struct model *, const struct tmpl *,
    struct store *, int threads, char *cause);
void gen_free(struct gen *);
/*
 * One step of j: GEN_MORE, or GEN_DONE with j's outcome filled in.  The
 * first step loads a session that is only in the store.
 */
int gen_step(struct gen *, struct job *, gen_emit_fn *, void *arg);
/*
 * After the last step, on the store thread (worker.c): the session's
 * snapshot, with the job's turns.  Reads only what gen_init set.
 * A snapshot that fails is a WARNING to the client; the session stays
 * as it is in memory and the next snapshot catches up.
 */
void gen_save(struct gen *, struct job *, gen_emit_fn *, void *arg);

#endif
