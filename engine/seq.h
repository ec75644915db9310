/*
 * seq: one sequence (a conversation's stream of tokens) over a shared
 * model: its attention-sink KV cache, its cache policy, and its forward
 * pass.  Many sequences share one read-only struct model; the scratch
 * of a forward pass lives in a struct seq_work, one per thread that
 * evaluates, so that idle sequences hold nothing but their cache.
 */
#ifndef SINKD_SEQ_H
#define SINKD_SEQ_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kv.h"
#include "model.h"
#include "pool.h"

/*
 * Cache policies.  streaming: sinks plus a rolling window, positions by
 * place in the cache (StreamingLLM).  window: the same without sinks.
 * recompute: each token past a full cache re-encodes the cached tokens
 * from scratch (the paper's sliding window with re-computation baseline;
 * exact but O(cache) forward passes per token).  dense: no eviction.
 */
enum seq_mode { SEQ_STREAMING, SEQ_WINDOW, SEQ_RECOMPUTE, SEQ_DENSE };

#define SEQ_DEFAULT_CACHE 1024
#define SEQ_DEFAULT_SINKS 4
#define SEQ_MAX_CACHE (1 << 26)
#define SEQ_MAX_SEEN (INT64_C(1) << 53) /* seq_restore's bound on n_seen */

struct seq_opts {
	enum seq_mode mode;
	int32_t n_cache;    /* sinks + window, tokens; 0: 1024 */
	int32_t n_sink;     /* -1: 4 for streaming, else 0 */
	int32_t n_pin;	    /* keep the first n_pin tokens as sinks too */
	enum kv_type kv_type;
	uint64_t max_bytes; /* cache memory cap; 0: half the machine's RAM */
};

/* The settings a sequence runs with, and where its stream stands. */
struct seq_info {
	enum seq_mode mode;
	enum kv_type kv_type;
	int32_t n_cache, n_sink; /* n_sink: sinks in effect, pin included */
	int32_t n_cached;	 /* tokens in the cache now */
	int64_t n_seen;		 /* tokens taken since creation or reset */
	int64_t n_evicted;
	size_t token_layer_bytes; /* K and V of one token in one layer */
	uint64_t bytes;		  /* the whole cache, fixed at creation */
};

struct seq;
struct seq_work;

void seq_opts_default(struct seq_opts *);
int seq_mode_parse(const char *, enum seq_mode *);
const char *seq_mode_name(enum seq_mode);
int seq_kv_parse(const char *, enum kv_type *);
const char *seq_kv_name(enum kv_type);

/* Checks opts against the model, names what is wrong; 0 or -1. */
int seq_check_opts(const struct model *, const struct seq_opts *,
    char *cause);
struct seq *seq_new(const struct model *, const struct seq_opts *,
    char *cause);
void seq_free(struct seq *);

void seq_get_info(const struct seq *, struct seq_info *);
void seq_reset(struct seq *);

/* Scratch for forward passes of up to n_batch tokens per chunk (0: 512). */
struct seq_work *seq_work_new(const struct model *, int32_t n_batch,
    char *cause);
void seq_work_free(struct seq_work *);
/*
 * Bytes of the work area sized for its batch at creation; the scratch
 * that grows with a sequence's cache (attention) is not counted.
 */
size_t seq_work_bytes(const struct seq_work *);

/*
 * Appends n tokens and runs them through the model, evicting as the
 * policy says.  With logits non-NULL it receives the next-token logits:
 * n_vocab floats for the last token, or, with all, n_vocab floats for
 * each of the n tokens in order.  0, or -1 with cause (bad token id,
 * dense cache full, out of memory); on error the sequence is left as it
 * was before the call.
 */
int seq_eval(struct seq *, struct seq_work *, struct pool *,
    const int32_t *tokens, size_t n, float *logits, int all, char *cause);

/*
 * Batches.  One call evaluates segments of different sequences (each
 * its own cache, mode, sinks and positions) in one forward pass: the
 * rows of all segments go through each layer together; the weight
 * matrices run once over all the 1-token (decode) segments' rows
 * (matmul_multi), a longer (prefill) segment keeps its own matmul, and
 * attention runs per segment against its own cache.  A segment is one
 * chunk: at most seq_chunk_len(s, n, max) of the n tokens its sequence
 * has waiting, for the caller's chunk size max <= n_batch.  A sequence
 * appears at most once per batch; the rows of all segments together fit
 * the work area's n_batch.
 *
 * Exactness: every segment gets exactly (memcmp-equal) the logits, and
 * its sequence the state, that seq_eval of the same tokens gives it
 * alone on a work area of the same n_batch; the rows of a batch never
 * mix.  (Only recompute past a full cache depends on n_batch, which
 * cuts its re-encoding; any other segment is one chunk, evaluated the
 * same for every n_batch >= its length.)  Segments that cannot share
 * the pass (recompute past a full cache, a probe set, longer than a
 * chunk) run alone through seq_eval, with the same results.
 */
struct seq_seg {
	struct seq *s;
	const int32_t *tokens;
	size_t n;
	float *logits;		/* NULL, or as seq_eval's */
	int all;
	int failed;		/* out: not evaluated, sequence unchanged */
	char cause[ERR_LEN];	/* out: why */
};

/* Tokens of the next chunk of n waiting, for chunks of at most max. */
size_t seq_chunk_len(const struct seq *, size_t n, size_t max);
/*
 * Evaluates every segment; one that cannot be (bad token id, dense cache
 * full, too long) is marked failed with its cause and the others go on.
 * Returns the number of failed segments, or -1 with cause when the batch
 * as a whole does not fit (more rows than n_batch, out of memory), in
 * which case no sequence changed.
 */
int seq_eval_batch(struct seq_work *, struct pool *, struct seq_seg *,
    size_t n_seg, char *cause);

/*
 * Passes: prompt chunks (segments, as seq_eval_batch's) evaluated a few
 * stages at a time, across calls, so that a long prompt can go in
 * beside decode steps without any of them waiting for a whole chunk.
 * A stage is half a layer (attention, or the feed-forward block):
 * seq_pass_stages of them in all.  Between calls only the chunks'
 * residual rows are kept (in the pass); the work area is free for other
 * batches, which may run between a pass's calls.  Each segment's result
 * is memcmp-equal to seq_eval_batch's: the same calls per layer, the
 * same rows, which never mix.
 *
 * seq_pass_add puts a segment in a pass that has not begun running (at
 * most max_rows rows in all, one segment per sequence): 0 once taken;
 * 1 when the segment cannot run in stages (seq_eval_batch runs such
 * segments alone: evaluate it that way); -1 with seg->failed and its
 * cause set (bad tokens, full dense cache, out of memory, no room),
 * nothing changed.  seq_pass_run runs up to k more stages and returns
 * how many are left; at 0 the sequences hold their chunks, the logits
 * asked for are filled, and the pass is empty again.  Until then each
 * sequence belongs to the pass (its chunk's keys and values are in some
 * layers only): nothing else may evaluate, snapshot or reset it, and a
 * pass given up on must still be run to its end.  Segments must stay
 * valid until then (their tokens are copied at once).
 */
struct seq_pass;
struct seq_pass *seq_pass_new(const struct model *, size_t max_rows,
    char *cause);
void seq_pass_free(struct seq_pass *);
int seq_pass_add(struct seq_pass *, struct seq_work *, struct pool *,
    struct seq_seg *);
int seq_pass_run(struct seq_pass *, struct seq_work *, struct pool *,
    int k);
/* Stages left: 0 when empty. */
int seq_pass_left(const struct seq_pass *);
/* The memory the pass holds. */
size_t seq_pass_bytes(const struct seq_pass *);
int seq_pass_stages(const struct model *);

/*
 * For analysis tools: called during decode (one token per call) with the
 * attention weights of each layer's query head over the cache slots;
 * weights[j] belongs to slot j (slots [0, n_sink) are the sinks; without
 * eviction slot j holds position j).  Evaluation goes token by token
 * while a probe is set.  The probe runs on the pool's threads, for
 * different heads at the same time: what it shares must be atomic or
 * per head.
 */
typedef void seq_probe_fn(void *arg, int layer, int head,
    const float *weights, int32_t n_slots);
void seq_set_probe(struct seq *, seq_probe_fn *, void *arg);

/*
 * Snapshots (for the store): the cache moves in chunks of KV_CHUNK
 * slots of one layer (layout in kv.h); a chunk is dirty once written,
 * until seq_clean, so that a snapshot can write only what changed.
 * seq_tokens gives the token id in each of the n_cache slots.  To
 * restore, make a sequence with the same options, set every chunk, then
 * seq_restore the stream position and the slots' tokens: it continues
 * bit for bit as the original would have.
 */
int32_t seq_n_chunks(const struct seq *);
size_t seq_chunk_bytes(const struct seq *);
void seq_chunk_get(const struct seq *, int layer, int32_t chunk, void *buf);
void seq_chunk_set(struct seq *, int layer, int32_t chunk, const void *buf);
int seq_chunk_dirty(const struct seq *, int layer, int32_t chunk);
void seq_clean(struct seq *);
const int32_t *seq_tokens(const struct seq *);
int seq_restore(struct seq *, int64_t n_seen, const int32_t *tokens,
    char *cause);

/*
 * For tests: moves the whole stream d tokens later (keys re-rotated),
 * as if d more tokens had been seen and evicted.  Only on a full,
 * evicting cache.  The logits that follow must not change.
 */
int seq_shift_stream(struct seq *, int64_t d, char *cause);

#endif
