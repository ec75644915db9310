/*
 * gguf: read-only access to a GGUF (v2/v3) file mapped into memory.
 *
 * gguf_open() maps the file and validates all of it before returning:
 * every header field, key, string and array length, value type, tensor
 * dimension, type, offset, size and alignment.  After a successful open
 * nothing in the file is trusted again and no accessor can fail on bytes:
 * strings and arrays point into the mapping and carry their lengths.
 * Strings are NOT NUL-terminated.
 *
 * The file layout is documented at the top of gguf.c.
 */
#ifndef SINKD_GGUF_H
#define SINKD_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum gguf_vtype {
	GGUF_UINT8 = 0,
	GGUF_INT8 = 1,
	GGUF_UINT16 = 2,
	GGUF_INT16 = 3,
	GGUF_UINT32 = 4,
	GGUF_INT32 = 5,
	GGUF_FLOAT32 = 6,
	GGUF_BOOL = 7,
	GGUF_STRING = 8,
	GGUF_ARRAY = 9,
	GGUF_UINT64 = 10,
	GGUF_INT64 = 11,
	GGUF_FLOAT64 = 12,
};

#define GGUF_MAX_DIMS 4

struct gguf_str {
	const char *ptr; /* into the mapping, not NUL-terminated */
	uint64_t len;
};

struct gguf_kv {
	struct gguf_str key;
	uint32_t type; /* enum gguf_vtype */
	union {
		uint64_t u64; /* UINT8/16/32/64, BOOL */
		int64_t i64;  /* INT8/16/32/64 */
		double f64;   /* FLOAT32/64 */
		struct gguf_str str;
	} v;
	/* type == GGUF_ARRAY: */
	uint32_t arr_type;	  /* element type; never GGUF_ARRAY */
	uint64_t arr_n;		  /* element count */
	const void *arr_data;	  /* fixed-size elements, packed little-endian */
	const struct gguf_str *arr_strs; /* arr_type == GGUF_STRING: arr_n strings */
};

struct gguf_tensor {
	struct gguf_str name;
	uint32_t n_dims;
	uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] varies fastest; unused dims are 1 */
	uint32_t type;		    /* ggml type id, see quant.h */
	uint64_t offset;	    /* from the start of the data section */
	uint64_t nbytes;
	const void *data; /* into the mapping, aligned to the file's alignment */
};

struct gguf_file;

/* Maps and validates path.  NULL with cause filled on any problem. */
struct gguf_file *gguf_open(const char *path, char *cause);
void gguf_close(struct gguf_file *);
/*
 * Tells the kernel the tensor data will not be read again (the caller
 * copied it): its pages leave this process's resident set.  Metadata
 * stays mapped.  Reading tensor data afterwards still works, from disk.
 */
void gguf_release_data(struct gguf_file *);

uint32_t gguf_version(const struct gguf_file *);
size_t gguf_file_size(const struct gguf_file *);
uint64_t gguf_n_kv(const struct gguf_file *);
const struct gguf_kv *gguf_kv_at(const struct gguf_file *, uint64_t i);
uint64_t gguf_n_tensors(const struct gguf_file *);
/*
 * The file's header bytes: magic, metadata and tensor infos (names,
 * shapes, types, offsets), everything before the tensor data; and the
 * file's size.
 */
void gguf_header(const struct gguf_file *, const void **p, size_t *len,
    uint64_t *file_size);
const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *, uint64_t i);

/* Lookups by NUL-terminated name; NULL when absent. */
const struct gguf_kv *gguf_find_kv(const struct gguf_file *, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *,
    const char *name);

/*
 * Typed getters.  Return 0 and set *out when key exists with a compatible
 * type (any integer type for the int getters when the value fits, FLOAT32
 * or FLOAT64 for gguf_get_f64); 1 when the key is absent (out untouched);
 * -1 with cause naming the key when present with a wrong type or range.
 */
int gguf_get_u32(const struct gguf_file *, const char *key, uint32_t *out,
    char *cause);
int gguf_get_f64(const struct gguf_file *, const char *key, double *out,
    char *cause);
int gguf_get_bool(const struct gguf_file *, const char *key, int *out,
    char *cause);
int gguf_get_str(const struct gguf_file *, const char *key,
    struct gguf_str *out, char *cause);
/* Array of given element type; returns the kv in *out. */
int gguf_get_arr(const struct gguf_file *, const char *key, uint32_t elem_type,
    const struct gguf_kv **out, char *cause);

/* 1 when s equals the NUL-terminated c string. */
int gguf_str_eq(struct gguf_str s, const char *c);

const char *gguf_vtype_name(uint32_t type);
/* Encoded size of a fixed-size value type; 0 for STRING, ARRAY, unknown. */
size_t gguf_vtype_size(uint32_t type);

/*
 * Element i of a numeric or BOOL array, converted (arr_data is packed, so
 * it may be unaligned for direct loads).  0 when kv is not such an array or
 * i >= arr_n; gguf_arr_int gives 0 for float elements and clamps UINT64
 * values above INT64_MAX.
 */
int64_t gguf_arr_int(const struct gguf_kv *, uint64_t i);
double gguf_arr_float(const struct gguf_kv *, uint64_t i);

/* Alignment of the data section and of every tensor's offset. */
uint32_t gguf_alignment(const struct gguf_file *);
/* Heap bytes held by the index (diagnostics; tests bound it by file size). */
size_t gguf_heap_bytes(const struct gguf_file *);

#endif
