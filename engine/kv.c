/*
 * kv: storage and slot arithmetic of the attention-sink cache (the
 * layout is described in kv.h).
 */
#include "kv.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "quant.h"

static size_t
elem_bytes(enum kv_type t)
{
	return t == KV_F16 ? sizeof(uint16_t) : sizeof(float);
}

size_t
kv_token_layer_bytes(const struct model_hparams *hp, enum kv_type t)
{
	return 2 * (size_t)hp->n_head_kv * (size_t)hp->head_dim *
	    elem_bytes(t);
}

uint64_t
kv_total_bytes(const struct model_hparams *hp, enum kv_type t, int32_t cap)
{
	return (uint64_t)cap * ((uint64_t)hp->n_layer *
	    kv_token_layer_bytes(hp, t) + sizeof(int32_t));
}

int
kv_init(struct kv *kv, const struct model_hparams *hp, enum kv_type t,
    int32_t cap, int32_t n_sink, int evict, char *cause)
{
	size_t half = (size_t)cap * (size_t)hp->n_layer *
	    kv_token_layer_bytes(hp, t) / 2;

	memset(kv, 0, sizeof *kv);
	if (cap < 1 || n_sink < 0 || n_sink >= cap)
		return err_set(cause, "a cache of %d tokens cannot keep %d "
		    "sinks and a window", cap, n_sink);
	kv->type = t;
	kv->n_layer = hp->n_layer;
	kv->n_head_kv = hp->n_head_kv;
	kv->head_dim = hp->head_dim;
	kv->cap = cap;
	kv->n_sink = n_sink;
	kv->n_win = cap - n_sink;
	kv->evict = evict;
	/* calloc: untouched slots cost no resident memory. */
	kv->k = calloc(1, half);
	kv->v = calloc(1, half);
	kv->tok = calloc((size_t)cap, sizeof(int32_t));
	kv->dirty = calloc((size_t)kv->n_layer * (size_t)kv_n_chunks(kv), 1);
	if (kv->k == NULL || kv->v == NULL || kv->tok == NULL ||
	    kv->dirty == NULL) {
		kv_free(kv);
		return err_set(cause, "out of memory for a cache of %d tokens "
		    "(%.1f MiB)", cap, (double)kv_total_bytes(hp, t, cap) /
		    (1 << 20));
	}
	return 0;
}

void
kv_free(struct kv *kv)
{
	free(kv->k);
	free(kv->v);
	free(kv->tok);
	free(kv->dirty);
	kv->k = kv->v = NULL;
	kv->tok = NULL;
	kv->dirty = NULL;
}

void
kv_clear(struct kv *kv)
{
	kv->n_seen = 0;
}

int32_t
kv_n_cached(const struct kv *kv)
{
	return kv->n_seen < kv->cap ? (int32_t)kv->n_seen : kv->cap;
}

int64_t
kv_n_evicted(const struct kv *kv)
{
	return kv->n_seen > kv->cap ? kv->n_seen - kv->cap : 0;
}

int32_t
kv_slot(const struct kv *kv, int64_t a)
{
	if (a < kv->n_sink)
		return (int32_t)a;
	return kv->n_sink + (int32_t)((a - kv->n_sink) % kv->n_win);
}

int64_t
kv_win_lo(const struct kv *kv, int64_t a)
{
	int64_t lo = a - kv->n_win + 1;

	return lo > kv->n_sink ? lo : kv->n_sink;
}

int64_t
kv_pos(const struct kv *kv, int64_t a)
{
	return a < kv->cap ? a : kv->cap - 1;
}

static size_t
row_offset(const struct kv *kv, int layer, int head, int32_t slot)
{
	return (((size_t)layer * (size_t)kv->n_head_kv + (size_t)head) *
	    (size_t)kv->cap + (size_t)slot) * (size_t)kv->head_dim *
	    elem_bytes(kv->type);
}

const void *
kv_k_row(const struct kv *kv, int layer, int head, int32_t slot)
{
	return (const char *)kv->k + row_offset(kv, layer, head, slot);
}

const void *
kv_v_row(const struct kv *kv, int layer, int head, int32_t slot)
{
	return (const char *)kv->v + row_offset(kv, layer, head, slot);
}

static void
put_row(const struct kv *kv, void *dst, const float *src)
{
	uint16_t *h = dst;
	int32_t d;

	if (kv->type == KV_F32) {
		memcpy(dst, src, (size_t)kv->head_dim * sizeof(float));
		return;
	}
	for (d = 0; d < kv->head_dim; d++)
		h[d] = f32_to_fp16(src[d]);
}

/* The first index of a0..a0+n-1 whose data survives the chunk. */
static int64_t
first_kept(const struct kv *kv, int64_t a0, size_t n)
{
	int64_t end = a0 + (int64_t)n, lo = end - kv->n_win;

	if (lo <= a0 || lo <= kv->n_sink)
		return a0;
	/* Sinks of the chunk are kept too: they are handled apart. */
	return lo;
}

void
kv_write(struct kv *kv, int layer, int64_t a0, const float *k,
    const float *v, size_t n, size_t ld)
{
	int64_t a, end = a0 + (int64_t)n, from = first_kept(kv, a0, n);
	int32_t slot, h;
	size_t t;

	for (a = a0; a < end; a++) {
		if (a >= kv->n_sink && a < from)
			continue;
		t = (size_t)(a - a0);
		slot = kv_slot(kv, a);
		kv->dirty[(size_t)layer * (size_t)kv_n_chunks(kv) +
		    (size_t)(slot / KV_CHUNK)] = 1;
		for (h = 0; h < kv->n_head_kv; h++) {
			size_t o = (size_t)h * (size_t)kv->head_dim;
			put_row(kv, (char *)kv->k + row_offset(kv, layer, h,
			    slot), k + t * ld + o);
			put_row(kv, (char *)kv->v + row_offset(kv, layer, h,
			    slot), v + t * ld + o);
		}
	}
}

void
kv_put_tokens(struct kv *kv, int64_t a0, const int32_t *tok, size_t n)
{
	int64_t a, end = a0 + (int64_t)n, from = first_kept(kv, a0, n);

	for (a = a0; a < end; a++) {
		if (a >= kv->n_sink && a < from)
			continue;
		kv->tok[kv_slot(kv, a)] = tok[a - a0];
	}
}

static void
get_row(const struct kv *kv, const void *src, float *dst)
{
	const uint16_t *h = src;
	int32_t d;

	if (kv->type == KV_F32) {
		memcpy(dst, src, (size_t)kv->head_dim * sizeof(float));
		return;
	}
	for (d = 0; d < kv->head_dim; d++)
		dst[d] = fp16_to_f32(h[d]);
}

void
kv_gather(const struct kv *kv, int layer, int64_t a0, int64_t a1, float *k,
    float *v, size_t ld_rows, size_t row)
{
	size_t hd = (size_t)kv->head_dim, o;
	int64_t a;
	int32_t h, slot;

	for (a = a0; a < a1; a++, row++) {
		slot = kv_slot(kv, a);
		for (h = 0; h < kv->n_head_kv; h++) {
			o = ((size_t)h * ld_rows + row) * hd;
			get_row(kv, kv_k_row(kv, layer, h, slot), k + o);
			get_row(kv, kv_v_row(kv, layer, h, slot), v + o);
		}
	}
}

int32_t
kv_n_chunks(const struct kv *kv)
{
	return (kv->cap + KV_CHUNK - 1) / KV_CHUNK;
}

size_t
kv_chunk_bytes(const struct kv *kv)
{
	return 2 * (size_t)kv->n_head_kv * KV_CHUNK * (size_t)kv->head_dim *
	    elem_bytes(kv->type);
}

/* Slots of chunk c that exist (the last may be short). */
static int32_t
chunk_rows(const struct kv *kv, int32_t c)
{
	int32_t n = kv->cap - c * KV_CHUNK;

	return n < KV_CHUNK ? n : KV_CHUNK;
}

/* Copies a chunk between the cache and buf, in the layout of kv.h. */
static void
chunk_copy(const struct kv *kv, int layer, int32_t c, char *buf, int out)
{
	size_t row = (size_t)kv->head_dim * elem_bytes(kv->type);
	size_t n = (size_t)chunk_rows(kv, c) * row, full = KV_CHUNK * row;
	int32_t h, m;

	for (m = 0; m < 2; m++) {
		for (h = 0; h < kv->n_head_kv; h++, buf += full) {
			char *p = (char *)(m == 0 ? kv->k : kv->v) +
			    row_offset(kv, layer, h, c * KV_CHUNK);
			if (out) {
				memcpy(buf, p, n);
				memset(buf + n, 0, full - n);
			} else
				memcpy(p, buf, n);
		}
	}
}

void
kv_chunk_get(const struct kv *kv, int layer, int32_t chunk, void *buf)
{
	chunk_copy(kv, layer, chunk, buf, 1);
}

void
kv_chunk_set(struct kv *kv, int layer, int32_t chunk, const void *buf)
{
	chunk_copy(kv, layer, chunk, (char *)(uintptr_t)buf, 0);
	kv->dirty[(size_t)layer * (size_t)kv_n_chunks(kv) + (size_t)chunk] = 1;
}

int
kv_chunk_dirty(const struct kv *kv, int layer, int32_t chunk)
{
	return kv->dirty[(size_t)layer * (size_t)kv_n_chunks(kv) +
	    (size_t)chunk];
}

void
kv_clean(struct kv *kv)
{
	memset(kv->dirty, 0, (size_t)kv->n_layer * (size_t)kv_n_chunks(kv));
}

void
kv_dirty_all(struct kv *kv)
{
	memset(kv->dirty, 1, (size_t)kv->n_layer * (size_t)kv_n_chunks(kv));
}
