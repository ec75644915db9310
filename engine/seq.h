/*
 * seq: one sequence's state over a shared model: its KV cache, its
 * position, and the scratch its forward pass needs.  Cheap to create; many
 * sequences share one read-only struct model.
 */
#ifndef SINKD_SEQ_H
#define SINKD_SEQ_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "pool.h"

struct seq_opts {
	int32_t n_ctx;	 /* cache capacity in tokens; 0: min(train ctx, 4096) */
	int32_t n_batch; /* tokens per forward chunk; 0: 512 */
};

struct seq;

struct seq *seq_new(const struct model *, const struct seq_opts *,
    char *cause);
void seq_free(struct seq *);

int32_t seq_n_past(const struct seq *);
int32_t seq_n_ctx(const struct seq *);
void seq_reset(struct seq *);

/*
 * Appends n tokens and runs them through the model.  With logits non-NULL
 * it receives the next-token logits: n_vocab floats for the last token,
 * or, with all, n_vocab floats for each of the n tokens in order.
 * 0, or -1 with cause (bad token id, cache full, out of memory); on error
 * the sequence is left as it was before the call.
 */
int seq_eval(struct seq *, struct pool *, const int32_t *tokens, size_t n,
    float *logits, int all, char *cause);

#endif
