/*
 * gguf_int: what gguf.c (open and validation) and gguf_get.c (read access)
 * share about an opened file.  Not for use outside engine/gguf*.c.
 */
#ifndef SINKD_GGUF_INT_H
#define SINKD_GGUF_INT_H

#include "gguf.h"

#define N_VTYPES	13
#define SHOW_MAX	48

struct gguf_file {
	char *path;
	void *map;
	size_t size;
	uint32_t version;
	uint32_t alignment;
	size_t data_start;
	uint64_t n_kv;
	uint64_t n_tensors;
	uint64_t n_strs;
	struct gguf_kv *kvs;
	struct gguf_tensor *tensors;
	struct gguf_str *strs; /* the elements of every string array */
	const struct gguf_kv **kv_by_name;
	const struct gguf_tensor **t_by_name;
	size_t heap;
};

/* A name as shown in messages: bounded, control bytes masked. */
struct shown {
	char s[SHOW_MAX + 4];
};

/* Bytes of a fixed-size value type, 0 for STRING and ARRAY. */
extern const uint8_t gguf_vtype_size_tab[N_VTYPES];

/* Decodes a fixed-size little-endian value of type t into kv->v. */
void gguf_decode_value(uint32_t t, const unsigned char *b,
    struct gguf_kv *kv);
struct shown gguf_show(struct gguf_str n);
int gguf_cmp_bytes(const char *a, uint64_t alen, const char *b,
    uint64_t blen);

#endif
