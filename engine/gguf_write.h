/*
 * gguf_write: builds a GGUF v3 file (metadata, then tensors streamed from
 * callbacks) for sinkd-mkmodel and for test fixtures made at test time.
 * Keys and tensor names are copied; tensor data is produced at write time
 * so multi-GiB models never sit in memory whole.
 */
#ifndef SINKD_GGUF_WRITE_H
#define SINKD_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

struct gguf_writer;

/* Fills buf (nbytes, the tensor's full size) with the tensor's data. */
typedef int (*gguf_fill_fn)(void *arg, void *buf, size_t nbytes, char *cause);

struct gguf_writer *gguf_writer_new(void);
void gguf_writer_free(struct gguf_writer *);

/* Alignment of the data section and each tensor (default 32). */
void gguf_writer_set_alignment(struct gguf_writer *, uint32_t align);

void gguf_writer_add_u32(struct gguf_writer *, const char *key, uint32_t v);
void gguf_writer_add_i32(struct gguf_writer *, const char *key, int32_t v);
void gguf_writer_add_u64(struct gguf_writer *, const char *key, uint64_t v);
void gguf_writer_add_f32(struct gguf_writer *, const char *key, float v);
void gguf_writer_add_bool(struct gguf_writer *, const char *key, int v);
void gguf_writer_add_str(struct gguf_writer *, const char *key, const char *v);
void gguf_writer_add_arr(struct gguf_writer *, const char *key,
    uint32_t elem_type, const void *data, uint64_t n); /* fixed-size elems */
void gguf_writer_add_arr_str(struct gguf_writer *, const char *key,
    const struct gguf_str *strs, uint64_t n);
/* Copies a key-value pair (any type, arrays included) from another file. */
void gguf_writer_copy_kv(struct gguf_writer *, const struct gguf_kv *kv);

/*
 * ne[0] varies fastest.  fill is called once, during gguf_writer_write;
 * a NULL fill writes zeros.
 */
void gguf_writer_add_tensor(struct gguf_writer *, const char *name,
    uint32_t n_dims, const uint64_t *ne, uint32_t type, gguf_fill_fn fill,
    void *arg);

/*
 * Writes the file (to path.tmp, then renamed).  Allocation failures while
 * adding are remembered and reported here.  0 or -1 with cause.
 */
int gguf_writer_write(struct gguf_writer *, const char *path, char *cause);

#endif
