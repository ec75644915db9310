/*
 * gguf_write: builds GGUF v3 files.  Key-value pairs are serialized as
 * they are added; tensors are only described until gguf_writer_write lays
 * them out at aligned offsets and streams each from its fill callback.
 * Owns the serialized metadata, copies of the names, and the temporary
 * file until it is renamed into place.
 *
 * general.alignment is not serialized with the other keys: it decides the
 * layout, so it is kept as the writer's alignment and written first.
 */
#include "gguf_write.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quant.h"

#define NAME_MAX_LEN	65535
#define DEFAULT_ALIGN	32
#define ALIGN_KEY	"general.alignment"

struct wtensor {
	char *name;
	uint32_t n_dims;
	uint32_t type;
	uint64_t ne[GGUF_MAX_DIMS];
	uint64_t nbytes;
	uint64_t offset;
	gguf_fill_fn fill;
	void *arg;
};

struct wkey {
	size_t off; /* of the key's bytes in meta */
	size_t len;
};

struct gguf_writer {
	unsigned char *meta;
	size_t meta_len;
	size_t meta_cap;
	struct wkey *keys;
	size_t n_keys;
	size_t keys_cap;
	struct wtensor *tensors;
	size_t n_tensors;
	size_t tensors_cap;
	uint32_t align;
	int align_set;
	int failed;
	char err[ERR_LEN];
};

struct out {
	FILE *fp;
	uint64_t pos;
};

static int wfail(struct gguf_writer *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* Remembers the first problem for gguf_writer_write to report. */
static int
wfail(struct gguf_writer *w, const char *fmt, ...)
{
	va_list ap;

	if (w->failed)
		return -1;
	w->failed = 1;
	va_start(ap, fmt);
	vsnprintf(w->err, sizeof w->err, fmt, ap);
	va_end(ap);
	return -1;
}

/* p grown to hold need elements; NULL (p still valid) on failure. */
static void *
grow(struct gguf_writer *w, void *p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap > 0 ? *cap : 16;
	void *np;

	if (need <= *cap)
		return p;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elem) {
			wfail(w, "out of memory");
			return NULL;
		}
		ncap *= 2;
	}
	if ((np = realloc(p, ncap * elem)) == NULL) {
		wfail(w, "out of memory");
		return NULL;
	}
	*cap = ncap;
	return np;
}

static int
put(struct gguf_writer *w, const void *b, size_t n)
{
	unsigned char *np;

	if (n > SIZE_MAX - w->meta_len)
		return wfail(w, "out of memory");
	np = grow(w, w->meta, &w->meta_cap, w->meta_len + n, 1);
	if (np == NULL)
		return -1;
	w->meta = np;
	if (n > 0)
		memcpy(w->meta + w->meta_len, b, n);
	w->meta_len += n;
	return 0;
}

static int
put_le(struct gguf_writer *w, uint64_t v, size_t n)
{
	unsigned char b[8];
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	return put(w, b, n);
}

static int
put_str(struct gguf_writer *w, const char *s, uint64_t len)
{
	if (put_le(w, len, 8) == -1)
		return -1;
	return put(w, s, (size_t)len);
}

static int
is_align_key(const char *key, size_t len)
{
	return len == strlen(ALIGN_KEY) && memcmp(key, ALIGN_KEY, len) == 0;
}

static void
set_align(struct gguf_writer *w, uint64_t v)
{
	if (v == 0 || v > UINT32_MAX || (v & (v - 1)) != 0) {
		wfail(w, "alignment %" PRIu64 " is not a nonzero power of two",
		    v);
		return;
	}
	w->align = (uint32_t)v;
	w->align_set = 1;
}

/* Checks the key and writes it with the value type. */
static int
begin_kv(struct gguf_writer *w, const char *key, size_t len, uint32_t type)
{
	struct wkey *nk;
	size_t i;

	if (w->failed)
		return -1;
	if (len == 0 || len > NAME_MAX_LEN)
		return wfail(w, "key name length %zu is not 1 to %d", len,
		    NAME_MAX_LEN);
	if (is_align_key(key, len))
		return wfail(w, "key '%s' must be a UINT32", ALIGN_KEY);
	for (i = 0; i < w->n_keys; i++) {
		if (w->keys[i].len == len &&
		    memcmp(w->meta + w->keys[i].off, key, len) == 0)
			return wfail(w, "duplicate key '%.*s'", (int)len, key);
	}
	nk = grow(w, w->keys, &w->keys_cap, w->n_keys + 1, sizeof *nk);
	if (nk == NULL)
		return -1;
	w->keys = nk;
	if (put_le(w, len, 8) == -1)
		return -1;
	w->keys[w->n_keys].off = w->meta_len;
	w->keys[w->n_keys].len = len;
	if (put(w, key, len) == -1 || put_le(w, type, 4) == -1)
		return -1;
	w->n_keys++;
	return 0;
}

static void
add_scalar(struct gguf_writer *w, const char *key, uint32_t type,
    uint64_t bits)
{
	if (begin_kv(w, key, strlen(key), type) == 0)
		put_le(w, bits, gguf_vtype_size(type));
}

/* Checks a fixed-size array before its key is written. */
static int
check_arr(struct gguf_writer *w, uint32_t et, const void *data, uint64_t n)
{
	const unsigned char *b = data;
	size_t es = gguf_vtype_size(et);
	uint64_t i;

	if (es == 0)
		return wfail(w, "array element type %" PRIu32 " (%s) is not a "
		    "fixed-size type", et, gguf_vtype_name(et));
	if (n > SIZE_MAX / es)
		return wfail(w, "array of %" PRIu64 " elements is too large", n);
	if (n > 0 && data == NULL)
		return wfail(w, "array of %" PRIu64 " elements has no data", n);
	for (i = 0; et == GGUF_BOOL && i < n; i++) {
		if (b[i] > 1)
			return wfail(w, "BOOL array element %" PRIu64 " is %u, "
			    "not 0 or 1", i, b[i]);
	}
	return 0;
}

static void
put_arr(struct gguf_writer *w, uint32_t et, const void *data, uint64_t n)
{
	if (put_le(w, et, 4) == -1 || put_le(w, n, 8) == -1)
		return;
	put(w, data, (size_t)n * gguf_vtype_size(et));
}

static void
put_arr_str(struct gguf_writer *w, const struct gguf_str *strs, uint64_t n)
{
	uint64_t i;

	if (put_le(w, GGUF_STRING, 4) == -1 || put_le(w, n, 8) == -1)
		return;
	for (i = 0; i < n; i++) {
		if (put_str(w, strs[i].ptr, strs[i].len) == -1)
			return;
	}
}

struct gguf_writer *
gguf_writer_new(void)
{
	struct gguf_writer *w = calloc(1, sizeof *w);

	if (w != NULL)
		w->align = DEFAULT_ALIGN;
	return w;
}

void
gguf_writer_free(struct gguf_writer *w)
{
	size_t i;

	if (w == NULL)
		return;
	for (i = 0; i < w->n_tensors; i++)
		free(w->tensors[i].name);
	free(w->tensors);
	free(w->keys);
	free(w->meta);
	free(w);
}

void
gguf_writer_set_alignment(struct gguf_writer *w, uint32_t align)
{
	set_align(w, align);
}

void
gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
	if (is_align_key(key, strlen(key)))
		set_align(w, v);
	else
		add_scalar(w, key, GGUF_UINT32, v);
}

void
gguf_writer_add_i32(struct gguf_writer *w, const char *key, int32_t v)
{
	add_scalar(w, key, GGUF_INT32, (uint32_t)v);
}

void
gguf_writer_add_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
	add_scalar(w, key, GGUF_UINT64, v);
}

void
gguf_writer_add_f32(struct gguf_writer *w, const char *key, float v)
{
	uint32_t bits;

	memcpy(&bits, &v, sizeof bits);
	add_scalar(w, key, GGUF_FLOAT32, bits);
}

void
gguf_writer_add_bool(struct gguf_writer *w, const char *key, int v)
{
	add_scalar(w, key, GGUF_BOOL, v != 0);
}

void
gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *v)
{
	if (begin_kv(w, key, strlen(key), GGUF_STRING) == 0)
		put_str(w, v, strlen(v));
}

void
gguf_writer_add_arr(struct gguf_writer *w, const char *key,
    uint32_t elem_type, const void *data, uint64_t n)
{
	if (w->failed || check_arr(w, elem_type, data, n) == -1)
		return;
	if (begin_kv(w, key, strlen(key), GGUF_ARRAY) == 0)
		put_arr(w, elem_type, data, n);
}

void
gguf_writer_add_arr_str(struct gguf_writer *w, const char *key,
    const struct gguf_str *strs, uint64_t n)
{
	if (begin_kv(w, key, strlen(key), GGUF_ARRAY) == 0)
		put_arr_str(w, strs, n);
}

/* A scalar's encoding, from the decoded value a reader produced. */
static uint64_t
scalar_bits(const struct gguf_kv *kv)
{
	uint64_t bits;
	uint32_t b32;
	float f;

	switch (kv->type) {
	case GGUF_INT8:
	case GGUF_INT16:
	case GGUF_INT32:
	case GGUF_INT64:
		return (uint64_t)kv->v.i64;
	case GGUF_FLOAT32:
		f = (float)kv->v.f64;
		memcpy(&b32, &f, sizeof b32);
		return b32;
	case GGUF_FLOAT64:
		memcpy(&bits, &kv->v.f64, sizeof bits);
		return bits;
	case GGUF_BOOL:
		return kv->v.u64 != 0;
	default:
		return kv->v.u64;
	}
}

void
gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv)
{
	const char *key = kv->key.ptr;
	size_t len = (size_t)kv->key.len;

	if (w->failed)
		return;
	if (kv->type > GGUF_FLOAT64) {
		wfail(w, "key '%.*s' has unknown type %" PRIu32, (int)len, key,
		    kv->type);
		return;
	}
	if (kv->type == GGUF_UINT32 && is_align_key(key, len)) {
		set_align(w, kv->v.u64);
		return;
	}
	if (kv->type == GGUF_ARRAY && kv->arr_type != GGUF_STRING &&
	    check_arr(w, kv->arr_type, kv->arr_data, kv->arr_n) == -1)
		return;
	if (begin_kv(w, key, len, kv->type) == -1)
		return;
	if (kv->type == GGUF_STRING)
		put_str(w, kv->v.str.ptr, kv->v.str.len);
	else if (kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING)
		put_arr_str(w, kv->arr_strs, kv->arr_n);
	else if (kv->type == GGUF_ARRAY)
		put_arr(w, kv->arr_type, kv->arr_data, kv->arr_n);
	else
		put_le(w, scalar_bits(kv), gguf_vtype_size(kv->type));
}

/* Validates a tensor's shape and type and computes its size. */
static int
describe(struct gguf_writer *w, struct wtensor *t, const char *name)
{
	uint32_t be = qtype_block_elems(t->type);
	uint64_t row, rows;
	uint32_t d;

	if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
		return wfail(w, "tensor '%s': %" PRIu32 " dimensions, expected "
		    "1 to %d", name, t->n_dims, GGUF_MAX_DIMS);
	for (d = 0; d < GGUF_MAX_DIMS; d++) {
		if (t->ne[d] == 0)
			return wfail(w, "tensor '%s': ne[%" PRIu32 "] is 0",
			    name, d);
	}
	if (be == 0)
		return wfail(w, "tensor '%s': unknown type id %" PRIu32, name,
		    t->type);
	if (t->ne[0] % be != 0)
		return wfail(w, "tensor '%s': ne[0] = %" PRIu64 " is not a "
		    "multiple of the %s block size %" PRIu32, name, t->ne[0],
		    qtype_name(t->type), be);
	if (qtype_row_bytes(t->type, t->ne[0], &row) == -1 ||
	    __builtin_mul_overflow(t->ne[1], t->ne[2], &rows) ||
	    __builtin_mul_overflow(rows, t->ne[3], &rows) ||
	    __builtin_mul_overflow(row, rows, &t->nbytes) ||
	    t->nbytes > SIZE_MAX)
		return wfail(w, "tensor '%s': size overflows", name);
	return 0;
}

void
gguf_writer_add_tensor(struct gguf_writer *w, const char *name,
    uint32_t n_dims, const uint64_t *ne, uint32_t type, gguf_fill_fn fill,
    void *arg)
{
	struct wtensor t, *nt;
	size_t i, len = strlen(name);
	uint32_t d;

	if (w->failed)
		return;
	if (len == 0 || len > NAME_MAX_LEN) {
		wfail(w, "tensor name length %zu is not 1 to %d", len,
		    NAME_MAX_LEN);
		return;
	}
	for (i = 0; i < w->n_tensors; i++) {
		if (strcmp(w->tensors[i].name, name) == 0) {
			wfail(w, "duplicate tensor name '%s'", name);
			return;
		}
	}
	memset(&t, 0, sizeof t);
	t.n_dims = n_dims;
	t.type = type;
	for (d = 0; d < GGUF_MAX_DIMS; d++)
		t.ne[d] = d < n_dims ? ne[d] : 1;
	t.fill = fill;
	t.arg = arg;
	if (describe(w, &t, name) == -1)
		return;
	nt = grow(w, w->tensors, &w->tensors_cap, w->n_tensors + 1, sizeof t);
	if (nt == NULL)
		return;
	w->tensors = nt;
	if ((t.name = strdup(name)) == NULL) {
		wfail(w, "out of memory");
		return;
	}
	w->tensors[w->n_tensors++] = t;
}

static uint64_t
align_up(uint64_t v, uint32_t align)
{
	return v + (align - v % align) % align;
}

/* Assigns data offsets; -1 when they overflow. */
static int
layout(struct gguf_writer *w)
{
	uint64_t off = 0;
	size_t i;

	for (i = 0; i < w->n_tensors; i++) {
		if (off > UINT64_MAX - w->align)
			return -1;
		off = align_up(off, w->align);
		w->tensors[i].offset = off;
		if (__builtin_add_overflow(off, w->tensors[i].nbytes, &off))
			return -1;
	}
	return 0;
}

static int
out_bytes(struct out *o, const void *b, size_t n)
{
	if (n > 0 && fwrite(b, 1, n, o->fp) != n)
		return -1;
	o->pos += n;
	return 0;
}

static int
out_le(struct out *o, uint64_t v, size_t n)
{
	unsigned char b[8];
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	return out_bytes(o, b, n);
}

static int
out_pad(struct out *o, uint64_t to)
{
	static const unsigned char zeros[64];
	size_t n;

	while (o->pos < to) {
		n = to - o->pos < sizeof zeros ? (size_t)(to - o->pos) :
		    sizeof zeros;
		if (out_bytes(o, zeros, n) == -1)
			return -1;
	}
	return 0;
}

static int
out_meta(const struct gguf_writer *w, struct out *o)
{
	const struct wtensor *t;
	size_t i;
	uint32_t d;

	if (out_bytes(o, "GGUF", 4) == -1 || out_le(o, 3, 4) == -1 ||
	    out_le(o, w->n_tensors, 8) == -1 ||
	    out_le(o, w->n_keys + (w->align_set ? 1 : 0), 8) == -1)
		return -1;
	if (w->align_set && (out_le(o, strlen(ALIGN_KEY), 8) == -1 ||
	    out_bytes(o, ALIGN_KEY, strlen(ALIGN_KEY)) == -1 ||
	    out_le(o, GGUF_UINT32, 4) == -1 || out_le(o, w->align, 4) == -1))
		return -1;
	if (out_bytes(o, w->meta, w->meta_len) == -1)
		return -1;
	for (i = 0; i < w->n_tensors; i++) {
		t = &w->tensors[i];
		if (out_le(o, strlen(t->name), 8) == -1 ||
		    out_bytes(o, t->name, strlen(t->name)) == -1 ||
		    out_le(o, t->n_dims, 4) == -1)
			return -1;
		for (d = 0; d < t->n_dims; d++) {
			if (out_le(o, t->ne[d], 8) == -1)
				return -1;
		}
		if (out_le(o, t->type, 4) == -1 || out_le(o, t->offset, 8) == -1)
			return -1;
	}
	return out_pad(o, align_up(o->pos, w->align));
}

static int
out_tensor(const struct wtensor *t, struct out *o, const char *path,
    char *cause)
{
	char sub[ERR_LEN];
	size_t n = (size_t)t->nbytes;
	void *buf;
	int rc;

	buf = t->fill != NULL ? malloc(n) : calloc(1, n);
	if (buf == NULL)
		return err_set(cause, "%s: tensor '%s': cannot allocate %zu "
		    "bytes", path, t->name, n);
	sub[0] = '\0';
	if (t->fill != NULL && t->fill(t->arg, buf, n, sub) != 0) {
		free(buf);
		return err_set(cause, "%s: tensor '%s': %s", path, t->name,
		    sub[0] != '\0' ? sub : "fill callback failed");
	}
	rc = out_bytes(o, buf, n);
	free(buf);
	if (rc == -1)
		return err_set(cause, "%s.tmp: %s", path, strerror(errno));
	return 0;
}

static int
out_file(const struct gguf_writer *w, FILE *fp, const char *path,
    char *cause)
{
	struct out o = { fp, 0 };
	uint64_t data_start;
	size_t i;

	if (out_meta(w, &o) == -1)
		return err_set(cause, "%s.tmp: %s", path, strerror(errno));
	data_start = o.pos;
	for (i = 0; i < w->n_tensors; i++) {
		if (out_pad(&o, data_start + w->tensors[i].offset) == -1)
			return err_set(cause, "%s.tmp: %s", path,
			    strerror(errno));
		if (out_tensor(&w->tensors[i], &o, path, cause) == -1)
			return -1;
	}
	return 0;
}

int
gguf_writer_write(struct gguf_writer *w, const char *path, char *cause)
{
	char *tmp;
	FILE *fp;
	int rc;

	if (w->failed)
		return err_set(cause, "%s: %s", path, w->err);
	if (layout(w) == -1)
		return err_set(cause, "%s: tensor data exceeds 64-bit offsets",
		    path);
	if (asprintf(&tmp, "%s.tmp", path) == -1)
		return err_set(cause, "%s: out of memory", path);
	if ((fp = fopen(tmp, "wb")) == NULL) {
		rc = err_set(cause, "%s: %s", tmp, strerror(errno));
		free(tmp);
		return rc;
	}
	rc = out_file(w, fp, path, cause);
	if (fclose(fp) != 0 && rc == 0)
		rc = err_set(cause, "%s: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, path) == -1)
		rc = err_set(cause, "%s: rename from %s: %s", path, tmp,
		    strerror(errno));
	if (rc == -1)
		unlink(tmp);
	free(tmp);
	return rc;
}
