/*
 * kv: one sequence's attention-sink KV cache (StreamingLLM): the keys
 * and values of every layer and the map from stream index to slot.
 *
 * The stream is every token the sequence has taken, numbered from 0.
 * Slots [0, n_sink) hold the first n_sink tokens for good (the attention
 * sinks, or a pinned prefix); slots [n_sink, cap) are a ring holding the
 * most recent n_win = cap - n_sink tokens: stream index a >= n_sink lives
 * in slot n_sink + (a - n_sink) % n_win, so a new token overwrites the
 * oldest window token in place and nothing is ever moved.  Without
 * eviction (dense) the ring never wraps and a full cache refuses tokens.
 *
 * Storage, for each layer and each KV head, is cap rows of head_dim
 * elements, f32 or IEEE half: k[layer][kv_head][slot][head_dim], and v
 * alike, so that one head's rows are contiguous for the attention loops.
 * Keys are stored rotated at their stream index (see seq.c for why that
 * makes positions exact at O(1) cost).
 */
#ifndef SINKD_KV_H
#define SINKD_KV_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum kv_type { KV_F32, KV_F16 };

struct kv {
	enum kv_type type;
	int32_t n_layer, n_head_kv, head_dim;
	int32_t cap, n_sink, n_win; /* cap = n_sink + n_win */
	int evict;		    /* 0: dense, no eviction */
	int64_t n_seen;		    /* stream index of the next token */
	void *k, *v;
	int32_t *tok;		    /* [cap]: the token in each slot */
	uint8_t *dirty;		    /* [n_layer][chunks]: written since clean */
};

/*
 * Snapshots move the cache in chunks of KV_CHUNK slots of one layer:
 * for each KV head its K rows, then for each KV head its V rows (the
 * storage type's bytes, the last chunk padded with zeros).  A chunk is
 * dirty once a row in it is written (kv_chunk_set included), until
 * kv_clean.
 */
#define KV_CHUNK 64

int32_t kv_n_chunks(const struct kv *);	/* per layer */
size_t kv_chunk_bytes(const struct kv *);
void kv_chunk_get(const struct kv *, int layer, int32_t chunk, void *buf);
void kv_chunk_set(struct kv *, int layer, int32_t chunk, const void *buf);
int kv_chunk_dirty(const struct kv *, int layer, int32_t chunk);
void kv_clean(struct kv *);
void kv_dirty_all(struct kv *);

/* Bytes of K and V for one token in one layer. */
size_t kv_token_layer_bytes(const struct model_hparams *, enum kv_type);
/* Bytes of the whole cache: K, V and the token ids. */
uint64_t kv_total_bytes(const struct model_hparams *, enum kv_type,
    int32_t cap);

int kv_init(struct kv *, const struct model_hparams *, enum kv_type,
    int32_t cap, int32_t n_sink, int evict, char *cause);
void kv_free(struct kv *);
void kv_clear(struct kv *);

/* Tokens now held. */
int32_t kv_n_cached(const struct kv *);
/* Tokens evicted so far. */
int64_t kv_n_evicted(const struct kv *);
/* The slot of stream index a. */
int32_t kv_slot(const struct kv *, int64_t a);
/* The first stream index in a's window (a itself included). */
int64_t kv_win_lo(const struct kv *, int64_t a);
/* a's position: its place in the cache once it is in. */
int64_t kv_pos(const struct kv *, int64_t a);

/*
 * Stores n tokens' K and V rows (kv_dim floats each, ld apart) of one
 * layer at stream indices a0.., converting to the storage type.  When n
 * exceeds the window, only what survives is written.
 */
void kv_write(struct kv *, int layer, int64_t a0, const float *k,
    const float *v, size_t n, size_t ld);

/* Records the token ids of stream indices a0.. (what survives of them). */
void kv_put_tokens(struct kv *, int64_t a0, const int32_t *tok, size_t n);

/* Row `slot` of a KV head's keys or values in one layer (storage type). */
const void *kv_k_row(const struct kv *, int layer, int head, int32_t slot);
const void *kv_v_row(const struct kv *, int layer, int head, int32_t slot);

/*
 * Copies the rows of stream indices [a0, a1) of one layer, all of them
 * in the cache, as f32 into k and v laid out [kv_head][ld_rows][head_dim]
 * from row `row` on.
 */
void kv_gather(const struct kv *, int layer, int64_t a0, int64_t a1,
    float *k, float *v, size_t ld_rows, size_t row);

#endif
