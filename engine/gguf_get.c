/*
 * gguf_get: read access to a validated GGUF file: counts, lookups by name
 * (binary search over the name-sorted tables gguf.c built) and typed
 * getters that check the stored type before converting.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_int.h"

const uint8_t gguf_vtype_size_tab[N_VTYPES] = {
	1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8
};

static const char *const vtype_names[N_VTYPES] = {
	"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
	"BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"
};

uint32_t
gguf_version(const struct gguf_file *f)
{
	return f->version;
}

size_t
gguf_file_size(const struct gguf_file *f)
{
	return f->size;
}

uint32_t
gguf_alignment(const struct gguf_file *f)
{
	return f->alignment;
}

size_t
gguf_heap_bytes(const struct gguf_file *f)
{
	return f->heap;
}

uint64_t
gguf_n_kv(const struct gguf_file *f)
{
	return f->n_kv;
}

const struct gguf_kv *
gguf_kv_at(const struct gguf_file *f, uint64_t i)
{
	return i < f->n_kv ? &f->kvs[i] : NULL;
}

uint64_t
gguf_n_tensors(const struct gguf_file *f)
{
	return f->n_tensors;
}

const struct gguf_tensor *
gguf_tensor_at(const struct gguf_file *f, uint64_t i)
{
	return i < f->n_tensors ? &f->tensors[i] : NULL;
}

static int
search_kv(const void *key, const void *elem)
{
	const struct gguf_str *k = key;
	const struct gguf_kv *kv = *(const struct gguf_kv *const *)elem;

	return gguf_cmp_bytes(k->ptr, k->len, kv->key.ptr, kv->key.len);
}

static int
search_tensor(const void *key, const void *elem)
{
	const struct gguf_str *k = key;
	const struct gguf_tensor *t = *(const struct gguf_tensor *const *)elem;

	return gguf_cmp_bytes(k->ptr, k->len, t->name.ptr, t->name.len);
}

const struct gguf_kv *
gguf_find_kv(const struct gguf_file *f, const char *key)
{
	struct gguf_str k = { key, strlen(key) };
	const struct gguf_kv *const *r;

	if (f->n_kv == 0)
		return NULL;
	r = bsearch(&k, f->kv_by_name, f->n_kv, sizeof *f->kv_by_name,
	    search_kv);
	return r != NULL ? *r : NULL;
}

const struct gguf_tensor *
gguf_find_tensor(const struct gguf_file *f, const char *name)
{
	struct gguf_str k = { name, strlen(name) };
	const struct gguf_tensor *const *r;

	if (f->n_tensors == 0)
		return NULL;
	r = bsearch(&k, f->t_by_name, f->n_tensors, sizeof *f->t_by_name,
	    search_tensor);
	return r != NULL ? *r : NULL;
}

static int
is_int(uint32_t type)
{
	return type <= GGUF_INT32 || type == GGUF_UINT64 ||
	    type == GGUF_INT64;
}

static int
is_signed(uint32_t type)
{
	return type == GGUF_INT8 || type == GGUF_INT16 ||
	    type == GGUF_INT32 || type == GGUF_INT64;
}

static int
wrong_type(const struct gguf_file *f, const struct gguf_kv *kv,
    const char *want, char *cause)
{
	if (kv->type == GGUF_ARRAY)
		return err_set(cause, "%s: key '%s' is an array of %s, "
		    "expected %s", f->path, gguf_show(kv->key).s,
		    gguf_vtype_name(kv->arr_type), want);
	return err_set(cause, "%s: key '%s' has type %s, expected %s",
	    f->path, gguf_show(kv->key).s, gguf_vtype_name(kv->type), want);
}

int
gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out,
    char *cause)
{
	const struct gguf_kv *kv = gguf_find_kv(f, key);

	if (kv == NULL)
		return 1;
	if (!is_int(kv->type))
		return wrong_type(f, kv, "an integer", cause);
	if (is_signed(kv->type) && kv->v.i64 < 0)
		return err_set(cause, "%s: key '%s' value %" PRId64 " is "
		    "negative", f->path, key, kv->v.i64);
	if (kv->v.u64 > UINT32_MAX)
		return err_set(cause, "%s: key '%s' value %" PRIu64 " does not "
		    "fit in 32 bits", f->path, key, kv->v.u64);
	*out = (uint32_t)kv->v.u64;
	return 0;
}

int
gguf_get_f64(const struct gguf_file *f, const char *key, double *out,
    char *cause)
{
	const struct gguf_kv *kv = gguf_find_kv(f, key);

	if (kv == NULL)
		return 1;
	if (kv->type != GGUF_FLOAT32 && kv->type != GGUF_FLOAT64)
		return wrong_type(f, kv, "FLOAT32 or FLOAT64", cause);
	*out = kv->v.f64;
	return 0;
}

int
gguf_get_bool(const struct gguf_file *f, const char *key, int *out,
    char *cause)
{
	const struct gguf_kv *kv = gguf_find_kv(f, key);

	if (kv == NULL)
		return 1;
	if (kv->type != GGUF_BOOL)
		return wrong_type(f, kv, "BOOL", cause);
	*out = kv->v.u64 != 0;
	return 0;
}

int
gguf_get_str(const struct gguf_file *f, const char *key,
    struct gguf_str *out, char *cause)
{
	const struct gguf_kv *kv = gguf_find_kv(f, key);

	if (kv == NULL)
		return 1;
	if (kv->type != GGUF_STRING)
		return wrong_type(f, kv, "STRING", cause);
	*out = kv->v.str;
	return 0;
}

int
gguf_get_arr(const struct gguf_file *f, const char *key, uint32_t elem_type,
    const struct gguf_kv **out, char *cause)
{
	const struct gguf_kv *kv = gguf_find_kv(f, key);
	char want[64];

	if (kv == NULL)
		return 1;
	if (kv->type != GGUF_ARRAY || kv->arr_type != elem_type) {
		snprintf(want, sizeof want, "an array of %s",
		    gguf_vtype_name(elem_type));
		return wrong_type(f, kv, want, cause);
	}
	*out = kv;
	return 0;
}

int
gguf_str_eq(struct gguf_str s, const char *c)
{
	size_t n = strlen(c);

	return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

const char *
gguf_vtype_name(uint32_t type)
{
	return type < N_VTYPES ? vtype_names[type] : "unknown";
}

size_t
gguf_vtype_size(uint32_t type)
{
	return type < N_VTYPES ? gguf_vtype_size_tab[type] : 0;
}

/* Decodes element i of a fixed-size array; -1 when there is none. */
static int
arr_elem(const struct gguf_kv *kv, uint64_t i, struct gguf_kv *out)
{
	size_t es;

	if (kv->type != GGUF_ARRAY || i >= kv->arr_n ||
	    (es = gguf_vtype_size(kv->arr_type)) == 0)
		return -1;
	gguf_decode_value(kv->arr_type, (const unsigned char *)kv->arr_data + i * es,
	    out);
	return 0;
}

int64_t
gguf_arr_int(const struct gguf_kv *kv, uint64_t i)
{
	struct gguf_kv e;

	if (arr_elem(kv, i, &e) == -1 || !(is_int(kv->arr_type) ||
	    kv->arr_type == GGUF_BOOL))
		return 0;
	if (is_signed(kv->arr_type))
		return e.v.i64;
	return e.v.u64 > INT64_MAX ? INT64_MAX : (int64_t)e.v.u64;
}

double
gguf_arr_float(const struct gguf_kv *kv, uint64_t i)
{
	struct gguf_kv e;

	if (arr_elem(kv, i, &e) == -1)
		return 0;
	if (kv->arr_type == GGUF_FLOAT32 || kv->arr_type == GGUF_FLOAT64)
		return e.v.f64;
	if (is_signed(kv->arr_type))
		return (double)e.v.i64;
	return (double)e.v.u64;
}
