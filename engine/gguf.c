/*
 * gguf: maps a GGUF v2/v3 file read-only and validates all of its metadata
 * before handing it out, so the rest of sinkd can index into it without
 * checks.  Owns the mapping and the index built over it: the key and
 * tensor tables, the string-array tables and the name-sorted lookup tables.
 *
 * Layout (all little-endian):
 *	u32 magic "GGUF"; u32 version (2 or 3); u64 n_tensors; u64 n_kv
 *	n_kv times:      str key; u32 value type; value
 *	n_tensors times: str name; u32 n_dims; u64 ne[n_dims]; u32 type;
 *	                 u64 offset (relative to the data section)
 *	padding up to the alignment (general.alignment, UINT32, default 32)
 *	data section: each tensor at an aligned offset
 * A str is a u64 length and that many bytes (no NUL).  An ARRAY value is a
 * u32 element type, a u64 count and the packed elements; a BOOL is one
 * byte, 0 or 1.
 *
 * Validation makes two passes over the metadata.  The first allocates
 * nothing and only counts, so no count read from the file ever sizes an
 * allocation; the second fills tables sized by what the first found.
 */
#include "gguf.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_int.h"
#include "quant.h"

#define GGUF_MAGIC	0x46554747u	/* "GGUF" read as little-endian */
#define HEADER_BYTES	24
#define NAME_MAX_LEN	65535
#define DEFAULT_ALIGN	32
/* Smallest encodings: name length + 1 byte + type + 1-byte value ... */
#define KV_MIN_BYTES	14
/* ... and name length + 1 byte + n_dims + one ne + type + offset. */
#define TENSOR_MIN_BYTES 33




struct parse {
	const char *path;
	const unsigned char *base;
	size_t size;
	size_t pos;
	char *cause;
	struct gguf_file *f; /* NULL during the counting pass */
	uint64_t n_kv;
	uint64_t n_tensors;
	uint64_t n_strs;
	uint32_t alignment;
};


static int fail(const struct parse *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static int tfail(const struct parse *, uint64_t, const struct gguf_tensor *,
    const char *, ...) __attribute__((format(printf, 4, 5)));

static int
fail(const struct parse *p, const char *fmt, ...)
{
	char msg[ERR_LEN];
	va_list ap;

	if (p->cause == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return err_set(p->cause, "%s: %s", p->path, msg);
}

struct shown
gguf_show(struct gguf_str n)
{
	struct shown r;
	size_t i, m;
	unsigned char c;

	m = n.len < SHOW_MAX ? (size_t)n.len : SHOW_MAX;
	for (i = 0; i < m; i++) {
		c = (unsigned char)n.ptr[i];
		r.s[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (n.len > m)
		memcpy(r.s + m, "...", 4);
	else
		r.s[m] = '\0';
	return r;
}

static int
tfail(const struct parse *p, uint64_t i, const struct gguf_tensor *t,
    const char *fmt, ...)
{
	char msg[ERR_LEN];
	va_list ap;

	if (p->cause == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return fail(p, "tensor %" PRIu64 " ('%s'): %s", i, gguf_show(t->name).s,
	    msg);
}

static size_t
left(const struct parse *p)
{
	return p->size - p->pos;
}

/* The next n bytes, or NULL when fewer are left. */
static const unsigned char *
take(struct parse *p, uint64_t n)
{
	const unsigned char *b;

	if (n > left(p))
		return NULL;
	b = p->base + p->pos;
	p->pos += (size_t)n;
	return b;
}

static uint64_t
load_le(const unsigned char *b, size_t n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | b[n];
	return v;
}

static int
get_u32(struct parse *p, uint32_t *out)
{
	const unsigned char *b = take(p, 4);

	if (b == NULL)
		return -1;
	*out = (uint32_t)load_le(b, 4);
	return 0;
}

static int
get_u64(struct parse *p, uint64_t *out)
{
	const unsigned char *b = take(p, 8);

	if (b == NULL)
		return -1;
	*out = load_le(b, 8);
	return 0;
}

static int
get_str(struct parse *p, struct gguf_str *s)
{
	uint64_t len;
	const unsigned char *b;

	if (get_u64(p, &len) == -1 || (b = take(p, len)) == NULL)
		return -1;
	s->ptr = (const char *)b;
	s->len = len;
	return 0;
}

static int
get_name(struct parse *p, struct gguf_str *s, const char *what, uint64_t i)
{
	uint64_t len;

	if (get_u64(p, &len) == -1)
		return fail(p, "truncated in %s %" PRIu64 " name length", what,
		    i);
	if (len == 0)
		return fail(p, "%s %" PRIu64 " has an empty name", what, i);
	if (len > NAME_MAX_LEN)
		return fail(p, "%s %" PRIu64 " name length %" PRIu64
		    " exceeds %d", what, i, len, NAME_MAX_LEN);
	if ((s->ptr = (const char *)take(p, len)) == NULL)
		return fail(p, "truncated in %s %" PRIu64 " name", what, i);
	s->len = len;
	return 0;
}

/* Decodes one fixed-size element of type t at b into kv's value. */
void
gguf_decode_value(uint32_t t, const unsigned char *b, struct gguf_kv *kv)
{
	size_t n = gguf_vtype_size_tab[t];
	uint64_t u = load_le(b, n);
	uint32_t u32;
	float f;

	switch (t) {
	case GGUF_INT8:
	case GGUF_INT16:
	case GGUF_INT32:
	case GGUF_INT64:
		if (n < 8 && ((u >> (8 * n - 1)) & 1))
			u |= UINT64_MAX << (8 * n);
		kv->v.i64 = (int64_t)u;
		break;
	case GGUF_FLOAT32:
		u32 = (uint32_t)u;
		memcpy(&f, &u32, sizeof f);
		kv->v.f64 = f;
		break;
	case GGUF_FLOAT64:
		memcpy(&kv->v.f64, &u, sizeof u);
		break;
	default:
		kv->v.u64 = u;
		break;
	}
}

static int
parse_scalar(struct parse *p, uint64_t i, struct gguf_kv *kv)
{
	struct shown k = gguf_show(kv->key);
	const unsigned char *b;

	if (kv->type == GGUF_STRING) {
		if (get_str(p, &kv->v.str) == -1)
			return fail(p, "truncated in key %" PRIu64
			    " ('%s') string value", i, k.s);
		return 0;
	}
	if (kv->type >= N_VTYPES)
		return fail(p, "key %" PRIu64 " ('%s') has unknown value type %"
		    PRIu32, i, k.s, kv->type);
	if ((b = take(p, gguf_vtype_size_tab[kv->type])) == NULL)
		return fail(p, "truncated in key %" PRIu64 " ('%s') %s value",
		    i, k.s, gguf_vtype_name(kv->type));
	if (kv->type == GGUF_BOOL && b[0] > 1)
		return fail(p, "key %" PRIu64 " ('%s'): BOOL value %u is not "
		    "0 or 1", i, k.s, b[0]);
	gguf_decode_value(kv->type, b, kv);
	return 0;
}

static int
parse_str_array(struct parse *p, uint64_t i, struct gguf_kv *kv,
    const char *k)
{
	struct gguf_str *strs = NULL, tmp;
	uint64_t j, n = kv->arr_n;

	/* Each element takes at least its 8-byte length. */
	if (n > left(p) / 8)
		return fail(p, "truncated in key %" PRIu64 " ('%s'): %" PRIu64
		    " strings cannot fit in the %zu bytes left", i, k, n,
		    left(p));
	if (p->f != NULL && n > 0) {
		if (n > p->f->n_strs - p->n_strs)
			return fail(p, "file changed while being read");
		strs = p->f->strs + p->n_strs;
	}
	for (j = 0; j < n; j++) {
		if (get_str(p, strs != NULL ? &strs[j] : &tmp) == -1)
			return fail(p, "truncated in key %" PRIu64 " ('%s') "
			    "array element %" PRIu64, i, k, j);
	}
	kv->arr_strs = strs;
	p->n_strs += n;
	return 0;
}

static int
parse_array(struct parse *p, uint64_t i, struct gguf_kv *kv)
{
	struct shown k = gguf_show(kv->key);
	const unsigned char *b;
	uint64_t j;
	size_t es;

	if (get_u32(p, &kv->arr_type) == -1 || get_u64(p, &kv->arr_n) == -1)
		return fail(p, "truncated in key %" PRIu64 " ('%s') array "
		    "header", i, k.s);
	if (kv->arr_type == GGUF_ARRAY)
		return fail(p, "key %" PRIu64 " ('%s') is an array of arrays, "
		    "which is not supported", i, k.s);
	if (kv->arr_type >= N_VTYPES)
		return fail(p, "key %" PRIu64 " ('%s') has unknown array "
		    "element type %" PRIu32, i, k.s, kv->arr_type);
	if (kv->arr_type == GGUF_STRING)
		return parse_str_array(p, i, kv, k.s);
	es = gguf_vtype_size_tab[kv->arr_type];
	if (kv->arr_n > left(p) / es)
		return fail(p, "truncated in key %" PRIu64 " ('%s'): array of %"
		    PRIu64 " %s needs more than the %zu bytes left", i, k.s,
		    kv->arr_n, gguf_vtype_name(kv->arr_type), left(p));
	b = take(p, kv->arr_n * es);
	for (j = 0; kv->arr_type == GGUF_BOOL && j < kv->arr_n; j++) {
		if (b[j] > 1)
			return fail(p, "key %" PRIu64 " ('%s') array element %"
			    PRIu64 ": BOOL value %u is not 0 or 1", i, k.s, j,
			    b[j]);
	}
	kv->arr_data = b;
	return 0;
}

static int
take_alignment(struct parse *p, uint64_t i, const struct gguf_kv *kv)
{
	if (kv->type != GGUF_UINT32)
		return fail(p, "key %" PRIu64 " ('general.alignment') has type "
		    "%s, expected UINT32", i, gguf_vtype_name(kv->type));
	if (kv->v.u64 == 0 || (kv->v.u64 & (kv->v.u64 - 1)) != 0)
		return fail(p, "general.alignment %" PRIu64 " is not a nonzero "
		    "power of two", kv->v.u64);
	p->alignment = (uint32_t)kv->v.u64;
	return 0;
}

static int
parse_kv(struct parse *p, uint64_t i, struct gguf_kv *kv)
{
	int rc;

	if (get_name(p, &kv->key, "key", i) == -1)
		return -1;
	if (get_u32(p, &kv->type) == -1)
		return fail(p, "truncated in key %" PRIu64 " ('%s') type", i,
		    gguf_show(kv->key).s);
	if (kv->type == GGUF_ARRAY)
		rc = parse_array(p, i, kv);
	else
		rc = parse_scalar(p, i, kv);
	if (rc == -1)
		return -1;
	if (gguf_str_eq(kv->key, "general.alignment"))
		return take_alignment(p, i, kv);
	return 0;
}

static int
tensor_size(struct parse *p, uint64_t i, struct gguf_tensor *t)
{
	uint32_t be = qtype_block_elems(t->type);
	uint64_t row, rows;

	if (be == 0)
		return tfail(p, i, t, "unknown tensor type id %" PRIu32,
		    t->type);
	if (t->ne[0] % be != 0)
		return tfail(p, i, t, "ne[0] = %" PRIu64 " is not a multiple "
		    "of the %s block size %" PRIu32, t->ne[0],
		    qtype_name(t->type), be);
	if (qtype_row_bytes(t->type, t->ne[0], &row) == -1 ||
	    __builtin_mul_overflow(t->ne[1], t->ne[2], &rows) ||
	    __builtin_mul_overflow(rows, t->ne[3], &rows) ||
	    __builtin_mul_overflow(row, rows, &t->nbytes))
		return tfail(p, i, t, "size overflows 64 bits");
	if (t->offset % p->alignment != 0)
		return tfail(p, i, t, "offset %" PRIu64 " is not a multiple of "
		    "the alignment %" PRIu32, t->offset, p->alignment);
	return 0;
}

static int
parse_tensor(struct parse *p, uint64_t i, struct gguf_tensor *t)
{
	uint32_t d;

	if (get_name(p, &t->name, "tensor", i) == -1)
		return -1;
	if (get_u32(p, &t->n_dims) == -1)
		return fail(p, "truncated in tensor %" PRIu64 " ('%s') n_dims",
		    i, gguf_show(t->name).s);
	if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
		return tfail(p, i, t, "%" PRIu32 " dimensions, expected 1 to %d",
		    t->n_dims, GGUF_MAX_DIMS);
	for (d = 0; d < GGUF_MAX_DIMS; d++)
		t->ne[d] = 1;
	for (d = 0; d < t->n_dims; d++) {
		if (get_u64(p, &t->ne[d]) == -1)
			return fail(p, "truncated in tensor %" PRIu64 " ('%s') "
			    "ne[%" PRIu32 "]", i, gguf_show(t->name).s, d);
		if (t->ne[d] == 0)
			return tfail(p, i, t, "ne[%" PRIu32 "] is 0", d);
	}
	if (get_u32(p, &t->type) == -1)
		return fail(p, "truncated in tensor %" PRIu64 " ('%s') type", i,
		    gguf_show(t->name).s);
	if (get_u64(p, &t->offset) == -1)
		return fail(p, "truncated in tensor %" PRIu64 " ('%s') offset",
		    i, gguf_show(t->name).s);
	return tensor_size(p, i, t);
}

static int
parse_header(struct parse *p, uint32_t *version)
{
	uint32_t magic;

	if (get_u32(p, &magic) == -1 || magic != GGUF_MAGIC)
		return fail(p, "not a GGUF file (bad magic)");
	if (get_u32(p, version) == -1)
		return fail(p, "truncated in header version");
	if (*version == 0x02000000 || *version == 0x03000000)
		return fail(p, "big-endian GGUF files are not supported");
	if (*version != 2 && *version != 3)
		return fail(p, "GGUF version %" PRIu32 " is not supported (only "
		    "versions 2 and 3)", *version);
	if (get_u64(p, &p->n_tensors) == -1)
		return fail(p, "truncated in header tensor count");
	if (get_u64(p, &p->n_kv) == -1)
		return fail(p, "truncated in header key count");
	if (p->n_kv > left(p) / KV_MIN_BYTES)
		return fail(p, "key count %" PRIu64 " cannot fit in the %zu "
		    "bytes left", p->n_kv, left(p));
	if (p->n_tensors > (left(p) - p->n_kv * KV_MIN_BYTES) /
	    TENSOR_MIN_BYTES)
		return fail(p, "tensor count %" PRIu64 " cannot fit in the %zu "
		    "bytes left", p->n_tensors, left(p));
	return 0;
}

static int
parse_meta(struct parse *p)
{
	struct gguf_kv kv;
	struct gguf_tensor t;
	struct gguf_kv *k;
	struct gguf_tensor *tp;
	uint64_t i;

	p->pos = HEADER_BYTES;
	p->n_strs = 0;
	p->alignment = DEFAULT_ALIGN;
	for (i = 0; i < p->n_kv; i++) {
		k = p->f != NULL ? &p->f->kvs[i] : &kv;
		memset(k, 0, sizeof *k);
		if (parse_kv(p, i, k) == -1)
			return -1;
	}
	for (i = 0; i < p->n_tensors; i++) {
		tp = p->f != NULL ? &p->f->tensors[i] : &t;
		memset(tp, 0, sizeof *tp);
		if (parse_tensor(p, i, tp) == -1)
			return -1;
	}
	return 0;
}

int
gguf_cmp_bytes(const char *a, uint64_t alen, const char *b, uint64_t blen)
{
	size_t m = alen < blen ? (size_t)alen : (size_t)blen;
	int c = m > 0 ? memcmp(a, b, m) : 0;

	if (c != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

static int
cmp_kv(const void *a, const void *b)
{
	const struct gguf_kv *x = *(const struct gguf_kv *const *)a;
	const struct gguf_kv *y = *(const struct gguf_kv *const *)b;

	return gguf_cmp_bytes(x->key.ptr, x->key.len, y->key.ptr, y->key.len);
}

static int
cmp_tensor(const void *a, const void *b)
{
	const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a;
	const struct gguf_tensor *y = *(const struct gguf_tensor *const *)b;

	return gguf_cmp_bytes(x->name.ptr, x->name.len, y->name.ptr, y->name.len);
}

static int
cmp_offset(const void *a, const void *b)
{
	const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a;
	const struct gguf_tensor *y = *(const struct gguf_tensor *const *)b;

	return (x->offset > y->offset) - (x->offset < y->offset);
}

static void *
table(struct gguf_file *f, uint64_t n, size_t size)
{
	if (n == 0)
		n = 1;
	f->heap += n * size;
	return calloc(n, size);
}

static int
alloc_tables(struct gguf_file *f, const struct parse *p)
{
	f->n_kv = p->n_kv;
	f->n_tensors = p->n_tensors;
	f->n_strs = p->n_strs;
	f->kvs = table(f, f->n_kv, sizeof *f->kvs);
	f->kv_by_name = table(f, f->n_kv, sizeof *f->kv_by_name);
	f->tensors = table(f, f->n_tensors, sizeof *f->tensors);
	f->t_by_name = table(f, f->n_tensors, sizeof *f->t_by_name);
	f->strs = table(f, f->n_strs, sizeof *f->strs);
	if (f->kvs == NULL || f->kv_by_name == NULL || f->tensors == NULL ||
	    f->t_by_name == NULL || f->strs == NULL)
		return -1;
	return 0;
}

static int
check_keys(struct gguf_file *f, const struct parse *p)
{
	const struct gguf_kv **s = f->kv_by_name;
	uint64_t i;

	for (i = 0; i < f->n_kv; i++)
		s[i] = &f->kvs[i];
	if (f->n_kv > 1)
		qsort(s, f->n_kv, sizeof *s, cmp_kv);
	for (i = 1; i < f->n_kv; i++) {
		if (cmp_kv(&s[i - 1], &s[i]) == 0)
			return fail(p, "duplicate key '%s'",
			    gguf_show(s[i]->key).s);
	}
	return 0;
}

static int
check_overlaps(struct gguf_file *f, const struct parse *p)
{
	const struct gguf_tensor **s = f->t_by_name;
	const struct gguf_tensor *a, *b;
	uint64_t i;

	if (f->n_tensors > 1)
		qsort(s, f->n_tensors, sizeof *s, cmp_offset);
	for (i = 1; i < f->n_tensors; i++) {
		a = s[i - 1];
		b = s[i];
		if (a->offset + a->nbytes > b->offset)
			return fail(p, "tensors '%s' (offset %" PRIu64 ", %"
			    PRIu64 " bytes) and '%s' (offset %" PRIu64 ") "
			    "overlap", gguf_show(a->name).s, a->offset, a->nbytes,
			    gguf_show(b->name).s, b->offset);
	}
	return 0;
}

static int
check_tensors(struct gguf_file *f, const struct parse *p)
{
	const struct gguf_tensor **s = f->t_by_name;
	struct gguf_tensor *t;
	size_t data_len;
	uint64_t i;

	if (f->n_tensors == 0)
		return 0;
	if (f->data_start > f->size)
		return fail(p, "truncated before the data section (byte %zu)",
		    f->data_start);
	data_len = f->size - f->data_start;
	for (i = 0; i < f->n_tensors; i++) {
		t = &f->tensors[i];
		if (t->offset > data_len || t->nbytes > data_len - t->offset)
			return tfail(p, i, t, "data at offset %" PRIu64 " (%"
			    PRIu64 " bytes) runs past the end of the file (the "
			    "data section has %zu bytes)", t->offset, t->nbytes,
			    data_len);
		t->data = (const unsigned char *)f->map + f->data_start +
		    t->offset;
		s[i] = t;
	}
	if (check_overlaps(f, p) == -1)
		return -1;
	qsort(s, f->n_tensors, sizeof *s, cmp_tensor);
	for (i = 1; i < f->n_tensors; i++) {
		if (cmp_tensor(&s[i - 1], &s[i]) == 0)
			return fail(p, "duplicate tensor name '%s'",
			    gguf_show(s[i]->name).s);
	}
	return 0;
}

static int
index_file(struct gguf_file *f, char *cause)
{
	struct parse p;

	memset(&p, 0, sizeof p);
	p.path = f->path;
	p.base = f->map;
	p.size = f->size;
	p.cause = cause;
	if (parse_header(&p, &f->version) == -1 || parse_meta(&p) == -1)
		return -1;
	if (alloc_tables(f, &p) == -1)
		return err_set(cause, "%s: out of memory indexing the file",
		    f->path);
	p.f = f;
	if (parse_meta(&p) == -1)
		return -1;
	f->alignment = p.alignment;
	f->data_start = p.pos + (p.alignment - p.pos % p.alignment) %
	    p.alignment;
	if (check_keys(f, &p) == -1 || check_tensors(f, &p) == -1)
		return -1;
	return 0;
}

static int
map_file(struct gguf_file *f, char *cause)
{
	struct stat st;
	void *m;
	int fd;

	/* O_NONBLOCK so that a FIFO cannot hang the open. */
	if ((fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		return err_set(cause, "%s: %s", f->path, strerror(errno));
	if (fstat(fd, &st) == -1) {
		err_set(cause, "%s: %s", f->path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		err_set(cause, "%s: %s", f->path, strerror(EISDIR));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(cause, "%s: not a regular file", f->path);
		goto out;
	}
	if (st.st_size == 0) {
		err_set(cause, "%s: file is empty", f->path);
		goto out;
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED) {
		err_set(cause, "%s: mmap: %s", f->path, strerror(errno));
		goto out;
	}
	f->map = m;
	f->size = (size_t)st.st_size;
out:
	close(fd);
	return f->map != NULL ? 0 : -1;
}

struct gguf_file *
gguf_open(const char *path, char *cause)
{
	struct gguf_file *f;

	if ((f = calloc(1, sizeof *f)) == NULL ||
	    (f->path = strdup(path)) == NULL) {
		free(f);
		err_set(cause, "%s: out of memory", path);
		return NULL;
	}
	f->heap = sizeof *f + strlen(path) + 1;
	if (map_file(f, cause) == -1 || index_file(f, cause) == -1) {
		gguf_close(f);
		return NULL;
	}
	return f;
}

void
gguf_header(const struct gguf_file *f, const void **p, size_t *len,
    uint64_t *file_size)
{
	*p = f->map;
	*len = f->data_start;
	*file_size = f->size;
}

void
gguf_release_data(struct gguf_file *f)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t from;

	if (f == NULL || f->map == NULL || page <= 0)
		return;
	from = (f->data_start + (size_t)page - 1) / (size_t)page *
	    (size_t)page;
	if (from < f->size)
		madvise((char *)f->map + from, f->size - from, MADV_DONTNEED);
}

void
gguf_close(struct gguf_file *f)
{
	if (f == NULL)
		return;
	if (f->map != NULL)
		munmap(f->map, f->size);
	free(f->kvs);
	free(f->kv_by_name);
	free(f->tensors);
	free(f->t_by_name);
	free(f->strs);
	free(f->path);
	free(f);
}
