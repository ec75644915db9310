/*
 * test_gguf: the GGUF reader and writer.  Round-trips every value type and
 * several tensor types through a temp dir, reads the shared stories260K
 * model, and feeds the reader truncated, bit-flipped and hand-broken files,
 * each of which must open or fail with a message, never crash.
 */
#include <sys/stat.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"

#define PATH_BUF	512
#define QT_Q6_K		14

#ifdef __SANITIZE_ADDRESS__
const char *__asan_default_options(void);

/* A count the reader failed to bound shows up as a huge allocation. */
const char *
__asan_default_options(void)
{
	return "max_allocation_size_mb=64";
}
#endif

struct tdir {
	char dir[PATH_BUF];
};

static void
td_init(struct tdir *td)
{
	const char *base = getenv("TMPDIR");

	snprintf(td->dir, sizeof td->dir, "%s/test_gguf.XXXXXX",
	    base != NULL && *base != '\0' ? base : "/tmp");
	ck_assert_msg(mkdtemp(td->dir) != NULL, "mkdtemp: %s", strerror(errno));
}

static void
td_path(const struct tdir *td, const char *name, char *out)
{
	if (snprintf(out, PATH_BUF, "%s/%s", td->dir, name) >= PATH_BUF)
		ck_abort_msg("path too long in %s", td->dir);
}

static void
td_fini(struct tdir *td)
{
	char path[PATH_BUF];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(td->dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		td_path(td, de->d_name, path);
		if (rmdir(path) == -1)
			unlink(path);
	}
	closedir(d);
	rmdir(td->dir);
}

static uint8_t
pat_byte(uint8_t seed, size_t i)
{
	return (uint8_t)(seed + i * 7 + (i >> 8));
}

static int
fill_pat(void *arg, void *buf, size_t n, char *cause)
{
	uint8_t seed = *(const uint8_t *)arg;
	unsigned char *b = buf;
	size_t i;

	(void)cause;
	for (i = 0; i < n; i++)
		b[i] = pat_byte(seed, i);
	return 0;
}

static int
fill_fail(void *arg, void *buf, size_t n, char *cause)
{
	(void)arg;
	(void)buf;
	(void)n;
	return err_set(cause, "synthetic fill failure");
}

struct tcase_def {
	const char *name;
	uint32_t n_dims;
	uint64_t ne[GGUF_MAX_DIMS];
	uint32_t type;
	uint64_t nbytes;
	uint8_t seed;
};

static const struct tcase_def tensors[] = {
	{ "tok.f32", 2, { 8, 3, 1, 1 }, QT_F32, 96, 1 },
	{ "w.f16", 3, { 16, 2, 2, 1 }, QT_F16, 128, 2 },
	{ "w.q8", 2, { 64, 2, 1, 1 }, QT_Q8_0, 136, 3 },
	{ "w.q4", 4, { 32, 1, 1, 2 }, QT_Q4_0, 36, 4 },
	{ "w.q6k", 1, { 256, 1, 1, 1 }, QT_Q6_K, 210, 5 },
	{ "w.q41", 2, { 32, 2, 1, 1 }, QT_Q4_1, 40, 6 },
	{ "w.q50", 2, { 64, 1, 1, 1 }, QT_Q5_0, 44, 7 },
	{ "w.q51", 1, { 96, 1, 1, 1 }, QT_Q5_1, 72, 8 },
	{ "w.iq4nl", 3, { 32, 1, 3, 1 }, QT_IQ4_NL, 54, 9 },
	{ "w.iq4xs", 2, { 512, 1, 1, 1 }, QT_IQ4_XS, 272, 10 },
};
#define N_TENSORS (sizeof(tensors) / sizeof(tensors[0]))

static const uint8_t a_u8[] = { 1, 2, 255 };
static const int8_t a_i8[] = { -1, 0, 127, -128 };
static const uint16_t a_u16[] = { 0, 65535 };
static const int16_t a_i16[] = { -32768, 5 };
static const uint32_t a_u32[] = { 7, 4000000000u, 0 };
static const int32_t a_i32[] = { -2000000000, 3 };
static const float a_f32[] = { 0.5f, -1e30f, 3.25f };
static const uint8_t a_bool[] = { 1, 0, 1 };
static const uint64_t a_u64[] = { UINT64_MAX, 1 };
static const int64_t a_i64[] = { INT64_MIN, -1, 42 };
static const double a_f64[] = { 1e300, -0.125 };

struct arr_def {
	const char *key;
	uint32_t type;
	const void *data;
	uint64_t n;
};

static const struct arr_def arrays[] = {
	{ "a.u8", GGUF_UINT8, a_u8, 3 },
	{ "a.i8", GGUF_INT8, a_i8, 4 },
	{ "a.u16", GGUF_UINT16, a_u16, 2 },
	{ "a.i16", GGUF_INT16, a_i16, 2 },
	{ "a.u32", GGUF_UINT32, a_u32, 3 },
	{ "a.i32", GGUF_INT32, a_i32, 2 },
	{ "a.f32", GGUF_FLOAT32, a_f32, 3 },
	{ "a.bool", GGUF_BOOL, a_bool, 3 },
	{ "a.u64", GGUF_UINT64, a_u64, 2 },
	{ "a.i64", GGUF_INT64, a_i64, 3 },
	{ "a.f64", GGUF_FLOAT64, a_f64, 2 },
	{ "a.empty", GGUF_UINT32, NULL, 0 },
};
#define N_ARRAYS (sizeof(arrays) / sizeof(arrays[0]))

static const struct gguf_str a_str[] = {
	{ "a", 1 }, { "", 0 }, { "x\0y", 3 }, { "\xff\xfe", 2 },
	{ "tokenizer piece", 15 },
};
#define N_STRS (sizeof(a_str) / sizeof(a_str[0]))

static void
copy_scalar(struct gguf_writer *w, const char *key, uint32_t type,
    uint64_t u, int64_t i, double f)
{
	struct gguf_kv kv;

	memset(&kv, 0, sizeof kv);
	kv.key.ptr = key;
	kv.key.len = strlen(key);
	kv.type = type;
	if (type == GGUF_FLOAT64 || type == GGUF_FLOAT32)
		kv.v.f64 = f;
	else if (type == GGUF_INT8 || type == GGUF_INT16 ||
	    type == GGUF_INT64)
		kv.v.i64 = i;
	else
		kv.v.u64 = u;
	gguf_writer_copy_kv(w, &kv);
}

static void
add_values(struct gguf_writer *w)
{
	size_t i;

	gguf_writer_add_str(w, "general.architecture", "test");
	copy_scalar(w, "t.u8", GGUF_UINT8, 200, 0, 0);
	copy_scalar(w, "t.i8", GGUF_INT8, 0, -100, 0);
	copy_scalar(w, "t.u16", GGUF_UINT16, 60000, 0, 0);
	copy_scalar(w, "t.i16", GGUF_INT16, 0, -30000, 0);
	gguf_writer_add_u32(w, "t.u32", 4000000000u);
	gguf_writer_add_i32(w, "t.i32", -2000000000);
	gguf_writer_add_f32(w, "t.f32", 1.5f);
	gguf_writer_add_bool(w, "t.bool", 1);
	gguf_writer_add_str(w, "t.str", "hello, gguf");
	gguf_writer_add_u64(w, "t.u64", 0xFFFFFFFFFFFFFFF0ull);
	copy_scalar(w, "t.i64", GGUF_INT64, 0, INT64_MIN + 5, 0);
	copy_scalar(w, "t.f64", GGUF_FLOAT64, 0, 0, -2.25e300);
	gguf_writer_add_u32(w, "dup.one", 1);
	gguf_writer_add_u32(w, "dup.two", 2);
	for (i = 0; i < N_ARRAYS; i++)
		gguf_writer_add_arr(w, arrays[i].key, arrays[i].type,
		    arrays[i].data, arrays[i].n);
	gguf_writer_add_arr_str(w, "a.str", a_str, N_STRS);
	gguf_writer_add_arr_str(w, "a.nostr", NULL, 0);
}

#define N_FIXTURE_KV (15 + N_ARRAYS + 2)

/* Writes the fixture; align 0 leaves the default (no alignment key). */
static void
make_fixture(const struct tdir *td, char *path, uint32_t align)
{
	struct gguf_writer *w = gguf_writer_new();
	char cause[ERR_LEN];
	size_t i;

	ck_assert_ptr_nonnull(w);
	td_path(td, align != 0 ? "fixture64.gguf" : "fixture.gguf", path);
	if (align != 0)
		gguf_writer_set_alignment(w, align);
	add_values(w);
	for (i = 0; i < N_TENSORS; i++)
		gguf_writer_add_tensor(w, tensors[i].name, tensors[i].n_dims,
		    tensors[i].ne, tensors[i].type, fill_pat,
		    (void *)&tensors[i].seed);
	ck_assert_msg(gguf_writer_write(w, path, cause) == 0, "%s", cause);
	gguf_writer_free(w);
}

static struct gguf_file *
open_ok(const char *path)
{
	char cause[ERR_LEN] = "";
	struct gguf_file *f = gguf_open(path, cause);

	ck_assert_msg(f != NULL, "gguf_open: %s", cause);
	return f;
}

static const struct gguf_kv *
kv_of(const struct gguf_file *f, const char *key, uint32_t type)
{
	const struct gguf_kv *kv = gguf_find_kv(f, key);

	ck_assert_msg(kv != NULL, "key %s missing", key);
	ck_assert_msg(kv->type == type, "key %s has type %s", key,
	    gguf_vtype_name(kv->type));
	return kv;
}

static void
check_scalars(const struct gguf_file *f)
{
	struct gguf_str s;

	ck_assert_uint_eq(kv_of(f, "t.u8", GGUF_UINT8)->v.u64, 200);
	ck_assert_int_eq(kv_of(f, "t.i8", GGUF_INT8)->v.i64, -100);
	ck_assert_uint_eq(kv_of(f, "t.u16", GGUF_UINT16)->v.u64, 60000);
	ck_assert_int_eq(kv_of(f, "t.i16", GGUF_INT16)->v.i64, -30000);
	ck_assert_uint_eq(kv_of(f, "t.u32", GGUF_UINT32)->v.u64, 4000000000u);
	ck_assert_int_eq(kv_of(f, "t.i32", GGUF_INT32)->v.i64, -2000000000);
	ck_assert(kv_of(f, "t.f32", GGUF_FLOAT32)->v.f64 == 1.5);
	ck_assert_uint_eq(kv_of(f, "t.bool", GGUF_BOOL)->v.u64, 1);
	s = kv_of(f, "t.str", GGUF_STRING)->v.str;
	ck_assert(gguf_str_eq(s, "hello, gguf"));
	ck_assert(kv_of(f, "t.u64", GGUF_UINT64)->v.u64 ==
	    0xFFFFFFFFFFFFFFF0ull);
	ck_assert(kv_of(f, "t.i64", GGUF_INT64)->v.i64 == INT64_MIN + 5);
	ck_assert(kv_of(f, "t.f64", GGUF_FLOAT64)->v.f64 == -2.25e300);
}

static void
check_arrays(const struct gguf_file *f)
{
	const struct gguf_kv *kv;
	size_t i;

	for (i = 0; i < N_ARRAYS; i++) {
		kv = kv_of(f, arrays[i].key, GGUF_ARRAY);
		ck_assert_uint_eq(kv->arr_type, arrays[i].type);
		ck_assert_uint_eq(kv->arr_n, arrays[i].n);
		if (arrays[i].n > 0)
			ck_assert_mem_eq(kv->arr_data, arrays[i].data,
			    arrays[i].n * gguf_vtype_size(arrays[i].type));
	}
	kv = kv_of(f, "a.str", GGUF_ARRAY);
	ck_assert_uint_eq(kv->arr_type, GGUF_STRING);
	ck_assert_uint_eq(kv->arr_n, N_STRS);
	for (i = 0; i < N_STRS; i++) {
		ck_assert_uint_eq(kv->arr_strs[i].len, a_str[i].len);
		if (a_str[i].len > 0)
			ck_assert_mem_eq(kv->arr_strs[i].ptr, a_str[i].ptr,
			    a_str[i].len);
	}
	kv = kv_of(f, "a.nostr", GGUF_ARRAY);
	ck_assert_uint_eq(kv->arr_type, GGUF_STRING);
	ck_assert_uint_eq(kv->arr_n, 0);
	/* Converting accessors, including unaligned packed elements. */
	ck_assert_int_eq(gguf_arr_int(gguf_find_kv(f, "a.i8"), 3), -128);
	ck_assert_int_eq(gguf_arr_int(gguf_find_kv(f, "a.u32"), 1),
	    4000000000);
	ck_assert(gguf_arr_int(gguf_find_kv(f, "a.u64"), 0) == INT64_MAX);
	ck_assert(gguf_arr_int(gguf_find_kv(f, "a.i64"), 0) == INT64_MIN);
	ck_assert(gguf_arr_float(gguf_find_kv(f, "a.f32"), 2) == 3.25);
	ck_assert(gguf_arr_float(gguf_find_kv(f, "a.f64"), 1) == -0.125);
	ck_assert(gguf_arr_float(gguf_find_kv(f, "a.i16"), 0) == -32768.0);
	ck_assert_int_eq(gguf_arr_int(gguf_find_kv(f, "a.bool"), 2), 1);
	ck_assert_int_eq(gguf_arr_int(gguf_find_kv(f, "a.u8"), 3), 0);
	ck_assert_int_eq(gguf_arr_int(gguf_find_kv(f, "a.str"), 0), 0);
}

static void
check_tensors(const struct gguf_file *f, uint32_t align)
{
	const struct gguf_tensor *t;
	const unsigned char *d;
	size_t i, j;

	ck_assert_uint_eq(gguf_n_tensors(f), N_TENSORS);
	for (i = 0; i < N_TENSORS; i++) {
		t = gguf_find_tensor(f, tensors[i].name);
		ck_assert_ptr_nonnull(t);
		ck_assert_ptr_eq(t, gguf_tensor_at(f, i));
		ck_assert_uint_eq(t->n_dims, tensors[i].n_dims);
		for (j = 0; j < GGUF_MAX_DIMS; j++)
			ck_assert_uint_eq(t->ne[j], tensors[i].ne[j]);
		ck_assert_uint_eq(t->type, tensors[i].type);
		ck_assert_uint_eq(t->nbytes, tensors[i].nbytes);
		ck_assert_uint_eq(t->offset % align, 0);
		ck_assert_uint_eq((uintptr_t)t->data % align, 0);
		d = t->data;
		for (j = 0; j < t->nbytes; j++)
			ck_assert_uint_eq(d[j], pat_byte(tensors[i].seed, j));
	}
	ck_assert_ptr_null(gguf_find_tensor(f, "w.q"));
	ck_assert_ptr_null(gguf_find_tensor(f, "w.q8x"));
	ck_assert_ptr_null(gguf_tensor_at(f, N_TENSORS));
}

START_TEST(test_roundtrip)
{
	struct tdir td;
	char path[PATH_BUF];
	struct gguf_file *f;
	uint64_t i;

	td_init(&td);
	make_fixture(&td, path, 0);
	f = open_ok(path);
	ck_assert_uint_eq(gguf_version(f), 3);
	ck_assert_uint_eq(gguf_alignment(f), 32);
	ck_assert_uint_eq(gguf_n_kv(f), N_FIXTURE_KV);
	for (i = 0; i < gguf_n_kv(f); i++)
		ck_assert_ptr_nonnull(gguf_kv_at(f, i));
	ck_assert_ptr_null(gguf_kv_at(f, gguf_n_kv(f)));
	ck_assert(gguf_str_eq(gguf_kv_at(f, 0)->key, "general.architecture"));
	ck_assert_ptr_null(gguf_find_kv(f, "general.alignment"));
	ck_assert_ptr_null(gguf_find_kv(f, "t.u"));
	ck_assert_ptr_null(gguf_find_kv(f, ""));
	check_scalars(f);
	check_arrays(f);
	check_tensors(f, 32);
	printf("roundtrip: %zu bytes, %" PRIu64 " keys, %" PRIu64 " tensors, "
	    "index %zu bytes\n", gguf_file_size(f), gguf_n_kv(f),
	    gguf_n_tensors(f), gguf_heap_bytes(f));
	gguf_close(f);
	td_fini(&td);
}
END_TEST

START_TEST(test_roundtrip_align64)
{
	struct tdir td;
	char path[PATH_BUF];
	struct gguf_file *f;
	uint32_t a;

	td_init(&td);
	make_fixture(&td, path, 64);
	f = open_ok(path);
	ck_assert_uint_eq(gguf_alignment(f), 64);
	ck_assert_uint_eq(gguf_n_kv(f), N_FIXTURE_KV + 1);
	ck_assert_int_eq(gguf_get_u32(f, "general.alignment", &a, NULL), 0);
	ck_assert_uint_eq(a, 64);
	check_scalars(f);
	check_arrays(f);
	check_tensors(f, 64);
	gguf_close(f);
	td_fini(&td);
}
END_TEST

START_TEST(test_getters)
{
	struct tdir td;
	char path[PATH_BUF], cause[ERR_LEN];
	struct gguf_file *f;
	const struct gguf_kv *kv = NULL;
	struct gguf_str s;
	uint32_t u = 12345;
	double d;
	int b = -1;

	td_init(&td);
	make_fixture(&td, path, 0);
	f = open_ok(path);
	ck_assert_int_eq(gguf_get_u32(f, "t.u8", &u, cause), 0);
	ck_assert_uint_eq(u, 200);
	ck_assert_int_eq(gguf_get_u32(f, "t.u64", &u, NULL), -1);
	ck_assert_int_eq(gguf_get_u32(f, "t.i8", &u, cause), -1);
	ck_assert_msg(strstr(cause, "'t.i8'") && strstr(cause, "negative"),
	    "%s", cause);
	ck_assert_int_eq(gguf_get_u32(f, "t.f32", &u, cause), -1);
	ck_assert_msg(strstr(cause, "t.f32") && strstr(cause, "FLOAT32"),
	    "%s", cause);
	u = 12345;
	ck_assert_int_eq(gguf_get_u32(f, "no.such.key", &u, cause), 1);
	ck_assert_uint_eq(u, 12345);
	ck_assert_int_eq(gguf_get_f64(f, "t.f32", &d, cause), 0);
	ck_assert(d == 1.5);
	ck_assert_int_eq(gguf_get_f64(f, "t.f64", &d, cause), 0);
	ck_assert(d == -2.25e300);
	ck_assert_int_eq(gguf_get_f64(f, "t.u32", &d, cause), -1);
	ck_assert_int_eq(gguf_get_bool(f, "t.bool", &b, cause), 0);
	ck_assert_int_eq(b, 1);
	ck_assert_int_eq(gguf_get_bool(f, "t.u8", &b, cause), -1);
	ck_assert_int_eq(gguf_get_str(f, "t.str", &s, cause), 0);
	ck_assert(gguf_str_eq(s, "hello, gguf"));
	ck_assert_int_eq(gguf_get_str(f, "a.str", &s, cause), -1);
	ck_assert_msg(strstr(cause, "array of STRING") != NULL, "%s", cause);
	ck_assert_int_eq(gguf_get_arr(f, "a.f32", GGUF_FLOAT32, &kv, cause), 0);
	ck_assert_uint_eq(kv->arr_n, 3);
	ck_assert_int_eq(gguf_get_arr(f, "a.f32", GGUF_INT32, &kv, cause), -1);
	ck_assert_msg(strstr(cause, "a.f32") && strstr(cause, "INT32"), "%s",
	    cause);
	ck_assert_int_eq(gguf_get_arr(f, "t.u32", GGUF_UINT32, &kv, cause), -1);
	ck_assert_int_eq(gguf_get_arr(f, "nope", GGUF_UINT32, &kv, cause), 1);
	ck_assert_str_eq(gguf_vtype_name(GGUF_FLOAT64), "FLOAT64");
	ck_assert_str_eq(gguf_vtype_name(99), "unknown");
	gguf_close(f);
	td_fini(&td);
}
END_TEST

/* Expects gguf_writer_write to fail with a message containing needle. */
static void
write_fails(struct gguf_writer *w, const struct tdir *td, const char *needle)
{
	char path[PATH_BUF], tmp[PATH_BUF + 8], cause[ERR_LEN] = "";

	td_path(td, "bad-out.gguf", path);
	ck_assert_int_eq(gguf_writer_write(w, path, cause), -1);
	printf("  writer: %s\n", cause);
	ck_assert_msg(strstr(cause, needle) != NULL, "'%s' lacks '%s'", cause,
	    needle);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	ck_assert_int_eq(access(path, F_OK), -1);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	gguf_writer_free(w);
}

START_TEST(test_writer_errors)
{
	static const uint64_t ne33[] = { 33, 2 }, ne32[] = { 32 };
	static const uint8_t bad_bool[] = { 0, 2 };
	struct gguf_writer *w;
	struct tdir td;

	td_init(&td);
	w = gguf_writer_new();
	gguf_writer_add_tensor(w, "x", 2, ne33, QT_Q8_0, NULL, NULL);
	write_fails(w, &td, "block size 32");
	w = gguf_writer_new();
	gguf_writer_add_u32(w, "k", 1);
	gguf_writer_add_str(w, "k", "again");
	write_fails(w, &td, "duplicate key 'k'");
	w = gguf_writer_new();
	gguf_writer_add_tensor(w, "x", 1, ne32, QT_F32, NULL, NULL);
	gguf_writer_add_tensor(w, "x", 1, ne32, QT_F16, NULL, NULL);
	write_fails(w, &td, "duplicate tensor name 'x'");
	w = gguf_writer_new();
	gguf_writer_add_tensor(w, "a", 1, ne32, QT_F32, NULL, NULL);
	gguf_writer_add_tensor(w, "b", 1, ne32, QT_F32, fill_fail, NULL);
	write_fails(w, &td, "synthetic fill failure");
	w = gguf_writer_new();
	gguf_writer_set_alignment(w, 48);
	write_fails(w, &td, "power of two");
	w = gguf_writer_new();
	gguf_writer_add_arr(w, "b", GGUF_BOOL, bad_bool, 2);
	write_fails(w, &td, "not 0 or 1");
	w = gguf_writer_new();
	gguf_writer_add_tensor(w, "x", 0, ne32, QT_F32, NULL, NULL);
	write_fails(w, &td, "dimensions");
	w = gguf_writer_new();
	gguf_writer_add_i32(w, "general.alignment", 64);
	write_fails(w, &td, "UINT32");
	w = gguf_writer_new();
	gguf_writer_add_u32(w, "", 1);
	write_fails(w, &td, "key name length 0");
	td_fini(&td);
}
END_TEST

START_TEST(test_writer_zero_fill)
{
	static const uint64_t ne[] = { 32, 3 };
	struct gguf_writer *w = gguf_writer_new();
	const struct gguf_tensor *t;
	struct gguf_file *f;
	struct tdir td;
	char path[PATH_BUF], cause[ERR_LEN];
	const unsigned char *d;
	size_t i;

	td_init(&td);
	td_path(&td, "zero.gguf", path);
	gguf_writer_add_tensor(w, "z", 2, ne, QT_Q4_0, NULL, NULL);
	ck_assert_msg(gguf_writer_write(w, path, cause) == 0, "%s", cause);
	gguf_writer_free(w);
	f = open_ok(path);
	ck_assert_uint_eq(gguf_n_kv(f), 0);
	t = gguf_find_tensor(f, "z");
	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(t->nbytes, 3 * 18);
	d = t->data;
	for (i = 0; i < t->nbytes; i++)
		ck_assert_uint_eq(d[i], 0);
	gguf_close(f);
	td_fini(&td);
}
END_TEST

static int
kv_equal(const struct gguf_kv *a, const struct gguf_kv *b)
{
	uint64_t i;

	if (a->key.len != b->key.len ||
	    memcmp(a->key.ptr, b->key.ptr, a->key.len) != 0 ||
	    a->type != b->type)
		return 0;
	if (a->type == GGUF_STRING)
		return a->v.str.len == b->v.str.len &&
		    memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len) == 0;
	if (a->type != GGUF_ARRAY)
		return a->v.u64 == b->v.u64;
	if (a->arr_type != b->arr_type || a->arr_n != b->arr_n)
		return 0;
	if (a->arr_type != GGUF_STRING)
		return a->arr_n == 0 || memcmp(a->arr_data, b->arr_data,
		    a->arr_n * gguf_vtype_size(a->arr_type)) == 0;
	for (i = 0; i < a->arr_n; i++) {
		if (a->arr_strs[i].len != b->arr_strs[i].len ||
		    memcmp(a->arr_strs[i].ptr, b->arr_strs[i].ptr,
		    a->arr_strs[i].len) != 0)
			return 0;
	}
	return 1;
}

static int
fill_copy(void *arg, void *buf, size_t n, char *cause)
{
	(void)cause;
	memcpy(buf, ((const struct gguf_tensor *)arg)->data, n);
	return 0;
}

/* Copies every key and tensor of f through the writer and compares. */
static void
copy_and_compare(const struct gguf_file *f, const char *path)
{
	struct gguf_writer *w = gguf_writer_new();
	const struct gguf_tensor *t, *u;
	const struct gguf_kv *kv;
	struct gguf_file *g;
	char cause[ERR_LEN], key[256];
	uint64_t i;

	for (i = 0; i < gguf_n_kv(f); i++)
		gguf_writer_copy_kv(w, gguf_kv_at(f, i));
	for (i = 0; i < gguf_n_tensors(f); i++) {
		t = gguf_tensor_at(f, i);
		snprintf(key, sizeof key, "%.*s", (int)t->name.len, t->name.ptr);
		gguf_writer_add_tensor(w, key, t->n_dims, t->ne, t->type,
		    fill_copy, (void *)t);
	}
	ck_assert_msg(gguf_writer_write(w, path, cause) == 0, "%s", cause);
	gguf_writer_free(w);
	g = open_ok(path);
	ck_assert_uint_eq(gguf_n_kv(g), gguf_n_kv(f));
	ck_assert_uint_eq(gguf_n_tensors(g), gguf_n_tensors(f));
	for (i = 0; i < gguf_n_kv(f); i++) {
		kv = gguf_kv_at(f, i);
		snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
		ck_assert_msg(kv_equal(kv, gguf_find_kv(g, key)), "key %s", key);
	}
	for (i = 0; i < gguf_n_tensors(f); i++) {
		t = gguf_tensor_at(f, i);
		u = gguf_tensor_at(g, i);
		ck_assert(t->name.len == u->name.len && t->type == u->type &&
		    t->nbytes == u->nbytes && t->n_dims == u->n_dims);
		ck_assert_mem_eq(t->ne, u->ne, sizeof t->ne);
		ck_assert(memcmp(t->data, u->data, t->nbytes) == 0);
	}
	gguf_close(g);
}

START_TEST(test_copy_roundtrip)
{
	struct tdir td;
	char path[PATH_BUF], copy[PATH_BUF];
	struct gguf_file *f;

	td_init(&td);
	make_fixture(&td, path, 64);
	td_path(&td, "copy.gguf", copy);
	f = open_ok(path);
	copy_and_compare(f, copy);
	gguf_close(f);
	td_fini(&td);
}
END_TEST

static int
shared_model(char *out, size_t cap)
{
	const char *shared = getenv("SINKD_SHARED");

	if (shared == NULL || *shared == '\0')
		shared = "../shared";
	snprintf(out, cap, "%s/models/stories260K.gguf", shared);
	if (access(out, R_OK) == 0)
		return 0;
	printf("SKIP: %s not readable (set SINKD_SHARED to the shared "
	    "folder)\n", out);
	return -1;
}

static unsigned
count_blocks(const struct gguf_file *f)
{
	const struct gguf_tensor *t;
	unsigned seen[64] = { 0 }, n = 0, b;
	uint64_t i;

	for (i = 0; i < gguf_n_tensors(f); i++) {
		t = gguf_tensor_at(f, i);
		if (t->name.len > 4 && memcmp(t->name.ptr, "blk.", 4) == 0 &&
		    sscanf(t->name.ptr + 4, "%u", &b) == 1 && b < 64 &&
		    seen[b]++ == 0)
			n++;
	}
	return n;
}

START_TEST(test_stories260k)
{
	char path[PATH_BUF], copy[PATH_BUF], cause[ERR_LEN];
	const struct gguf_tensor *t;
	const struct gguf_kv *kv;
	struct gguf_file *f;
	struct gguf_str arch;
	struct tdir td;
	uint32_t blocks = 0;

	if (shared_model(path, sizeof path) == -1)
		return;
	f = open_ok(path);
	ck_assert_int_eq(gguf_get_str(f, "general.architecture", &arch, cause),
	    0);
	ck_assert_int_eq(gguf_get_u32(f, "llama.block_count", &blocks, cause),
	    0);
	t = gguf_find_tensor(f, "token_embd.weight");
	ck_assert_ptr_nonnull(t);
	printf("stories260K: v%" PRIu32 ", %zu bytes, %" PRIu64 " keys, %"
	    PRIu64 " tensors, alignment %" PRIu32 ", arch '%.*s', "
	    "block_count %" PRIu32 ", %u blk.N groups\n", gguf_version(f),
	    gguf_file_size(f), gguf_n_kv(f), gguf_n_tensors(f),
	    gguf_alignment(f), (int)arch.len, arch.ptr, blocks,
	    count_blocks(f));
	printf("stories260K: token_embd.weight n_dims %" PRIu32 " ne [%" PRIu64
	    ", %" PRIu64 "] type %s\n", t->n_dims, t->ne[0], t->ne[1],
	    qtype_name(t->type));
	ck_assert(gguf_str_eq(arch, "llama"));
	ck_assert_uint_eq(blocks, 5);
	ck_assert_uint_eq(count_blocks(f), 5);
	ck_assert_uint_eq(t->n_dims, 2);
	ck_assert_uint_eq(t->ne[0], 64);
	ck_assert_uint_eq(t->ne[1], 512);
	ck_assert_uint_eq(t->type, QT_F32);
	ck_assert_int_eq(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING,
	    &kv, cause), 0);
	printf("stories260K: %" PRIu64 " tokens, token 1 '%.*s'\n", kv->arr_n,
	    (int)kv->arr_strs[1].len, kv->arr_strs[1].ptr);
	ck_assert_uint_eq(kv->arr_n, 512);
	ck_assert(gguf_str_eq(kv->arr_strs[1], "<s>"));
	td_init(&td);
	td_path(&td, "stories-copy.gguf", copy);
	copy_and_compare(f, copy);
	td_fini(&td);
	gguf_close(f);
}
END_TEST

/* ---- bad input ---- */

static unsigned char *
load(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *b;
	int fd = open(path, O_RDONLY);

	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(read(fd, b, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static void
store(const char *path, const void *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(write(fd, b, len), (ssize_t)len);
	close(fd);
}

static void
put32(unsigned char *b, uint32_t v)
{
	size_t i;

	for (i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static void
put64(unsigned char *b, uint64_t v)
{
	size_t i;

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
get64(const unsigned char *b)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

/* Offset just past the gguf string `name` (its length, then bytes). */
static size_t
locate(const unsigned char *b, size_t len, const char *name)
{
	size_t n = strlen(name), i;
	unsigned char pat[8];

	put64(pat, n);
	for (i = 0; i + 8 + n <= len; i++) {
		if (memcmp(b + i, pat, 8) == 0 && memcmp(b + i + 8, name, n) == 0)
			return i + 8 + n;
	}
	ck_abort_msg("'%s' not found in the fixture", name);
	return 0;
}

enum tfield { F_NDIMS, F_NE0, F_TYPE, F_OFFSET };

static size_t
tensor_field(const unsigned char *b, size_t len, const char *name,
    enum tfield which)
{
	size_t p = locate(b, len, name);
	uint32_t nd = b[p];

	switch (which) {
	case F_NDIMS:
		return p;
	case F_NE0:
		return p + 4;
	case F_TYPE:
		return p + 4 + 8 * nd;
	default:
		return p + 8 + 8 * nd;
	}
}

static void
expect_fail(const char *path, const char *needle)
{
	char cause[ERR_LEN] = "";
	struct gguf_file *f = gguf_open(path, cause);

	ck_assert_msg(f == NULL, "%s opened but should not", path);
	printf("  %s\n", cause);
	ck_assert_msg(strncmp(cause, path, strlen(path)) == 0,
	    "'%s' does not name the file", cause);
	ck_assert_msg(strstr(cause, needle) != NULL, "'%s' lacks '%s'", cause,
	    needle);
}

/* The fixture, loaded into memory for patching. */
struct patch {
	struct tdir td;
	char path[PATH_BUF];
	unsigned char *b;
	size_t len;
};

static void
patch_begin(struct patch *p, uint32_t align)
{
	td_init(&p->td);
	make_fixture(&p->td, p->path, align);
	p->b = load(p->path, &p->len);
}

static void
patch_end(struct patch *p, const char *needle)
{
	store(p->path, p->b, p->len);
	expect_fail(p->path, needle);
	free(p->b);
	td_fini(&p->td);
}

START_TEST(test_missing_dir_empty)
{
	struct tdir td;
	char path[PATH_BUF];

	td_init(&td);
	td_path(&td, "nonexistent.gguf", path);
	expect_fail(path, strerror(ENOENT));
	expect_fail(td.dir, strerror(EISDIR));
	td_path(&td, "empty.gguf", path);
	store(path, "", 0);
	expect_fail(path, "empty");
	store(path, "GG", 2);
	expect_fail(path, "bad magic");
	td_fini(&td);
}
END_TEST

START_TEST(test_bad_magic)
{
	struct patch p;

	patch_begin(&p, 0);
	p.b[0] = 'X';
	patch_end(&p, "not a GGUF file (bad magic)");
}
END_TEST

START_TEST(test_versions)
{
	static const struct {
		uint32_t v;
		const char *needle;
	} cases[] = {
		{ 1, "version 1 is not supported" },
		{ 4, "version 4 is not supported" },
		{ 0, "version 0" },
		{ 0x03000000, "big-endian" },
	};
	struct gguf_file *f;
	struct patch p;
	size_t i;

	patch_begin(&p, 0);
	put32(p.b + 4, 2);
	store(p.path, p.b, p.len);
	f = open_ok(p.path);
	ck_assert_uint_eq(gguf_version(f), 2);
	gguf_close(f);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		put32(p.b + 4, cases[i].v);
		store(p.path, p.b, p.len);
		expect_fail(p.path, cases[i].needle);
	}
	free(p.b);
	td_fini(&p.td);
}
END_TEST

struct span {
	uintptr_t base;
	size_t size;
	unsigned sum;
};

/* Reads n bytes at p, which must lie inside the mapped file. */
static void
touch(struct span *sp, const void *p, uint64_t n)
{
	const unsigned char *b = p;
	uint64_t i;

	if (n == 0)
		return;
	ck_assert((uintptr_t)b >= sp->base && n <= sp->size &&
	    (uintptr_t)b - sp->base <= sp->size - n);
	for (i = 0; i < n; i++)
		sp->sum += b[i];
}

static void
touch_kv(struct span *sp, const struct gguf_kv *kv)
{
	uint64_t j;

	touch(sp, kv->key.ptr, kv->key.len);
	if (kv->type == GGUF_STRING)
		touch(sp, kv->v.str.ptr, kv->v.str.len);
	if (kv->type != GGUF_ARRAY)
		return;
	if (kv->arr_type != GGUF_STRING) {
		touch(sp, kv->arr_data,
		    kv->arr_n * gguf_vtype_size(kv->arr_type));
		return;
	}
	for (j = 0; j < kv->arr_n; j++)
		touch(sp, kv->arr_strs[j].ptr, kv->arr_strs[j].len);
}

/* Reads everything an opened file exposes, checking it lies in the map. */
static void
exercise(const struct gguf_file *f)
{
	const struct gguf_tensor *t;
	struct span sp = { 0, gguf_file_size(f), 0 };
	uint64_t i;

	ck_assert_msg(gguf_heap_bytes(f) <= 2 * sp.size + 4096,
	    "index of %zu bytes for a %zu-byte file", gguf_heap_bytes(f),
	    sp.size);
	/* The first name's bytes follow the 24-byte header and its length. */
	if (gguf_n_kv(f) > 0)
		sp.base = (uintptr_t)gguf_kv_at(f, 0)->key.ptr - 32;
	else if (gguf_n_tensors(f) > 0)
		sp.base = (uintptr_t)gguf_tensor_at(f, 0)->name.ptr - 32;
	for (i = 0; i < gguf_n_kv(f); i++)
		touch_kv(&sp, gguf_kv_at(f, i));
	for (i = 0; i < gguf_n_tensors(f); i++) {
		t = gguf_tensor_at(f, i);
		touch(&sp, t->name.ptr, t->name.len);
		touch(&sp, t->data, t->nbytes);
		ck_assert(t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS);
	}
}

struct tally {
	unsigned opened;
	unsigned failed;
};

static void
try_open(const char *path, struct tally *ty)
{
	char cause[ERR_LEN] = "";
	struct gguf_file *f = gguf_open(path, cause);

	if (f != NULL) {
		exercise(f);
		gguf_close(f);
		ty->opened++;
		return;
	}
	ck_assert_msg(strncmp(cause, path, strlen(path)) == 0 &&
	    strlen(cause) > strlen(path) + 2, "bad message '%s'", cause);
	ty->failed++;
}

/* Where the fixture's data section starts (it ends at the last tensor). */
static size_t
data_start(const char *path)
{
	struct gguf_file *f = open_ok(path);
	const struct gguf_tensor *t;
	uint64_t i, end = 0;
	size_t r;

	for (i = 0; i < gguf_n_tensors(f); i++) {
		t = gguf_tensor_at(f, i);
		if (t->offset + t->nbytes > end)
			end = t->offset + t->nbytes;
	}
	r = gguf_file_size(f) - (size_t)end;
	gguf_close(f);
	return r;
}

START_TEST(test_truncation)
{
	static const char *const classes[] = {
		"file is empty", "bad magic", "truncated in header",
		"key count", "tensor count", "strings cannot fit",
		"truncated in key", "array element", "truncated in tensor",
		"truncated before the data section", "runs past the end",
	};
	int seen[sizeof classes / sizeof classes[0]] = { 0 };
	char path[PATH_BUF], cause[ERR_LEN];
	struct tdir td;
	size_t len, n, c;
	int fd;

	td_init(&td);
	make_fixture(&td, path, 0);
	free(load(path, &len));
	ck_assert_int_ne(fd = open(path, O_RDWR), -1);
	for (n = len; n-- > 0;) {
		ck_assert_int_eq(ftruncate(fd, (off_t)n), 0);
		cause[0] = '\0';
		ck_assert_msg(gguf_open(path, cause) == NULL, "prefix %zu opened",
		    n);
		ck_assert_msg(strstr(cause, path) == cause && strlen(cause) >
		    strlen(path) + 2, "prefix %zu: bad message '%s'", n, cause);
		for (c = 0; c < sizeof classes / sizeof classes[0]; c++) {
			if (strstr(cause, classes[c]) != NULL && !seen[c]++)
				printf("  prefix %zu: %s\n", n, cause);
		}
	}
	close(fd);
	for (c = 0; c < sizeof classes / sizeof classes[0]; c++)
		ck_assert_msg(seen[c] > 0, "no prefix gave '%s'", classes[c]);
	printf("truncation: all %zu prefixes rejected\n", len);
	td_fini(&td);
}
END_TEST

START_TEST(test_bitflips)
{
	static const uint8_t xors[] = { 0xff, 0x80, 0x01 };
	struct tally ty = { 0, 0 };
	char path[PATH_BUF];
	struct tdir td;
	unsigned char *b, c;
	size_t len, end, i, x;
	int fd;

	td_init(&td);
	make_fixture(&td, path, 0);
	b = load(path, &len);
	end = data_start(path);
	ck_assert_int_ne(fd = open(path, O_RDWR), -1);
	for (i = 0; i < end; i++) {
		for (x = 0; x < sizeof xors; x++) {
			c = b[i] ^ xors[x];
			ck_assert_int_eq(pwrite(fd, &c, 1, (off_t)i), 1);
			try_open(path, &ty);
		}
		ck_assert_int_eq(pwrite(fd, &b[i], 1, (off_t)i), 1);
	}
	close(fd);
	printf("bitflips over %zu metadata bytes: %u opened, %u rejected\n",
	    end, ty.opened, ty.failed);
	ck_assert(ty.opened > 0 && ty.failed > 0);
	free(b);
	td_fini(&td);
}
END_TEST

START_TEST(test_huge_counts)
{
	struct tally ty = { 0, 0 };
	char path[PATH_BUF];
	struct tdir td;
	unsigned char *b, v[8];
	uint64_t vals[4];
	size_t len, end, i, k;
	int fd;

	td_init(&td);
	make_fixture(&td, path, 0);
	b = load(path, &len);
	end = data_start(path);
	vals[0] = UINT64_MAX;
	vals[1] = 1ull << 63;
	vals[2] = 1ull << 32;
	vals[3] = len;
	ck_assert_int_ne(fd = open(path, O_RDWR), -1);
	for (i = 0; i + 8 <= end; i++) {
		for (k = 0; k < 4; k++) {
			put64(v, vals[k]);
			ck_assert_int_eq(pwrite(fd, v, 8, (off_t)i), 8);
			try_open(path, &ty);
		}
		ck_assert_int_eq(pwrite(fd, b + i, 8, (off_t)i), 8);
	}
	close(fd);
	printf("huge 8-byte values at %zu offsets: %u opened, %u rejected\n",
	    end - 7, ty.opened, ty.failed);
	ck_assert(ty.failed > 0);
	free(b);
	td_fini(&td);
}
END_TEST

START_TEST(test_header_counts)
{
	struct patch p;

	patch_begin(&p, 0);
	put64(p.b + 16, UINT64_MAX);
	store(p.path, p.b, p.len);
	expect_fail(p.path, "key count 18446744073709551615 cannot fit");
	put64(p.b + 16, N_FIXTURE_KV);
	put64(p.b + 8, 1ull << 40);
	patch_end(&p, "tensor count 1099511627776 cannot fit");
}
END_TEST

START_TEST(test_misaligned)
{
	struct patch p;
	size_t o;

	patch_begin(&p, 0);
	o = tensor_field(p.b, p.len, "w.q8", F_OFFSET);
	put64(p.b + o, get64(p.b + o) + 8);
	patch_end(&p, "tensor 2 ('w.q8'): offset");
}
END_TEST

START_TEST(test_misaligned_msg)
{
	struct patch p;
	size_t o;

	patch_begin(&p, 0);
	o = tensor_field(p.b, p.len, "w.q8", F_OFFSET);
	put64(p.b + o, 123);
	patch_end(&p, "offset 123 is not a multiple of the alignment 32");
}
END_TEST

START_TEST(test_past_end)
{
	struct patch p;
	size_t o;

	patch_begin(&p, 0);
	o = tensor_field(p.b, p.len, "w.q6k", F_OFFSET);
	put64(p.b + o, get64(p.b + o) + 1024);
	patch_end(&p, "runs past the end of the file");
}
END_TEST

START_TEST(test_size_overflow)
{
	struct patch p;
	size_t o;

	patch_begin(&p, 0);
	o = tensor_field(p.b, p.len, "tok.f32", F_NE0);
	put64(p.b + o + 8, 1ull << 62);
	patch_end(&p, "size overflows");
}
END_TEST

START_TEST(test_overlap)
{
	struct patch p;
	size_t a, b;

	patch_begin(&p, 0);
	a = tensor_field(p.b, p.len, "w.q8", F_OFFSET);
	b = tensor_field(p.b, p.len, "w.q4", F_OFFSET);
	memcpy(p.b + b, p.b + a, 8);
	patch_end(&p, "overlap");
}
END_TEST

START_TEST(test_dup_key)
{
	struct patch p;

	patch_begin(&p, 0);
	memcpy(p.b + locate(p.b, p.len, "dup.two") - 3, "one", 3);
	patch_end(&p, "duplicate key 'dup.one'");
}
END_TEST

START_TEST(test_dup_tensor)
{
	struct patch p;

	patch_begin(&p, 0);
	p.b[locate(p.b, p.len, "w.q4") - 1] = '8';
	patch_end(&p, "duplicate tensor name 'w.q8'");
}
END_TEST

START_TEST(test_unknown_type)
{
	struct patch p;

	patch_begin(&p, 0);
	put32(p.b + tensor_field(p.b, p.len, "w.f16", F_TYPE), 99);
	patch_end(&p, "tensor 1 ('w.f16'): unknown tensor type id 99");
}
END_TEST

START_TEST(test_ndims)
{
	struct patch p;
	size_t o;

	patch_begin(&p, 0);
	o = tensor_field(p.b, p.len, "w.q8", F_NDIMS);
	put32(p.b + o, 0);
	store(p.path, p.b, p.len);
	expect_fail(p.path, "0 dimensions, expected 1 to 4");
	put32(p.b + o, 5);
	patch_end(&p, "5 dimensions, expected 1 to 4");
}
END_TEST

START_TEST(test_block_multiple)
{
	struct patch p;
	size_t o;

	patch_begin(&p, 0);
	o = tensor_field(p.b, p.len, "w.q8", F_NE0);
	put64(p.b + o, 33);
	store(p.path, p.b, p.len);
	expect_fail(p.path, "ne[0] = 33 is not a multiple of the Q8_0 block "
	    "size 32");
	put64(p.b + o, 0);
	patch_end(&p, "ne[0] is 0");
}
END_TEST

/* IQ4_XS rows are whole super-blocks of 256, whatever 32 divides. */
START_TEST(test_block_multiple_xs)
{
	struct patch p;

	patch_begin(&p, 0);
	put64(p.b + tensor_field(p.b, p.len, "w.iq4xs", F_NE0), 288);
	patch_end(&p, "ne[0] = 288 is not a multiple of the IQ4_XS block "
	    "size 256");
}
END_TEST

START_TEST(test_bad_bool)
{
	struct patch p;
	size_t o;

	patch_begin(&p, 0);
	o = locate(p.b, p.len, "t.bool");
	p.b[o + 4] = 2;
	store(p.path, p.b, p.len);
	expect_fail(p.path, "('t.bool'): BOOL value 2 is not 0 or 1");
	p.b[o + 4] = 1;
	o = locate(p.b, p.len, "a.bool");
	p.b[o + 16 + 1] = 7;
	patch_end(&p, "array element 1: BOOL value 7 is not 0 or 1");
}
END_TEST

START_TEST(test_value_types)
{
	struct patch p;
	size_t o, a;

	patch_begin(&p, 0);
	o = locate(p.b, p.len, "t.u32");
	put32(p.b + o, 13);
	store(p.path, p.b, p.len);
	expect_fail(p.path, "('t.u32') has unknown value type 13");
	put32(p.b + o, GGUF_UINT32);
	a = locate(p.b, p.len, "a.u8");
	put32(p.b + a + 4, GGUF_ARRAY);
	store(p.path, p.b, p.len);
	expect_fail(p.path, "('a.u8') is an array of arrays");
	put32(p.b + a + 4, 200);
	patch_end(&p, "unknown array element type 200");
}
END_TEST

START_TEST(test_array_counts)
{
	struct patch p;
	size_t o;

	patch_begin(&p, 0);
	o = locate(p.b, p.len, "a.str");
	put64(p.b + o + 8, 1ull << 40);
	store(p.path, p.b, p.len);
	expect_fail(p.path, "1099511627776 strings cannot fit");
	put64(p.b + o + 8, N_STRS);
	o = locate(p.b, p.len, "a.u32");
	put64(p.b + o + 8, UINT64_MAX);
	patch_end(&p, "array of 18446744073709551615 UINT32 needs more");
}
END_TEST

START_TEST(test_bad_alignment)
{
	struct patch p;
	size_t o;

	patch_begin(&p, 64);
	o = locate(p.b, p.len, "general.alignment");
	put32(p.b + o + 4, 48);
	store(p.path, p.b, p.len);
	expect_fail(p.path, "general.alignment 48 is not a nonzero power of "
	    "two");
	put32(p.b + o + 4, 0);
	store(p.path, p.b, p.len);
	expect_fail(p.path, "general.alignment 0 is not");
	put32(p.b + o + 4, 64);
	put32(p.b + o, GGUF_INT32);
	store(p.path, p.b, p.len);
	expect_fail(p.path, "has type INT32, expected UINT32");
	/* 128 is valid but the writer's 64-aligned offsets are not. */
	put32(p.b + o, GGUF_UINT32);
	put32(p.b + o + 4, 128);
	patch_end(&p, "not a multiple of the alignment 128");
}
END_TEST

START_TEST(test_name_lengths)
{
	struct patch p;

	patch_begin(&p, 0);
	put64(p.b + 24, 0);
	store(p.path, p.b, p.len);
	expect_fail(p.path, "key 0 has an empty name");
	put64(p.b + 24, 70000);
	patch_end(&p, "key 0 name length 70000 exceeds 65535");
}
END_TEST

START_TEST(test_not_regular)
{
	struct tdir td;
	char path[PATH_BUF];

	td_init(&td);
	td_path(&td, "fifo", path);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	expect_fail(path, "not a regular file");
	td_fini(&td);
}
END_TEST

static TCase *
tcase(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);

	/* Generous for valgrind; natively the whole suite takes ~1 s. */
	tcase_set_timeout(tc, 300);
	suite_add_tcase(s, tc);
	return tc;
}

/*
 * K-quant tensors (256 per block): random blocks load and dequantize
 * (every bit pattern is a valid block), a row that is not whole blocks is
 * refused naming the tensor and its type, and a cut data section too.
 */
static const uint32_t k_types[] = { 10, 11, 12, 13, 14 }; /* Q2_K..Q6_K */

static void
make_k_fixture(const struct tdir *td, char *path)
{
	static const uint8_t seeds[] = { 3, 5, 7, 11, 13 };
	struct gguf_writer *w = gguf_writer_new();
	char cause[ERR_LEN], name[32];
	uint64_t ne[2] = { 512, 3 };
	size_t i;

	ck_assert_ptr_nonnull(w);
	td_path(td, "k.gguf", path);
	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof name, "k.%s", qtype_name(k_types[i]));
		gguf_writer_add_tensor(w, name, 2, ne, k_types[i], fill_pat,
		    (void *)&seeds[i]);
	}
	ck_assert_msg(gguf_writer_write(w, path, cause) == 0, "%s", cause);
	gguf_writer_free(w);
}

START_TEST(test_k_blocks)
{
	char path[PATH_BUF], name[32], msg[128];
	float row[512];
	struct gguf_file *f;
	struct tdir td;
	unsigned char *b;
	size_t len, i, r, o;
	int fd;

	td_init(&td);
	make_k_fixture(&td, path);
	f = open_ok(path);
	for (i = 0; i < 5; i++) {
		const struct gguf_tensor *t = gguf_tensor_at(f, i);

		ck_assert_uint_eq(t->type, k_types[i]);
		ck_assert_uint_eq(t->nbytes, 3 * 2 * qtype_block_bytes(t->type));
		for (r = 0; r < 3; r++)
			quant_dequantize_row(t->type, (const char *)t->data +
			    r * t->nbytes / 3, row, 512);
	}
	gguf_close(f);
	b = load(path, &len);
	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof name, "k.%s", qtype_name(k_types[i]));
		o = tensor_field(b, len, name, F_NE0);
		put64(b + o, 300);
		store(path, b, len);
		snprintf(msg, sizeof msg, "tensor %zu ('%s'): ne[0] = 300 is "
		    "not a multiple of the %s block size 256", i, name,
		    qtype_name(k_types[i]));
		expect_fail(path, msg);
		put64(b + o, 512);
	}
	store(path, b, len);
	ck_assert_int_ne(fd = open(path, O_RDWR), -1);
	ck_assert_int_eq(ftruncate(fd, (off_t)len - 1), 0);
	close(fd);
	expect_fail(path, "runs past the end");
	free(b);
	td_fini(&td);
}
END_TEST

static Suite *
gguf_suite(void)
{
	Suite *s = suite_create("gguf");
	TCase *tc;

	tc = tcase(s, "roundtrip");
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_roundtrip_align64);
	tcase_add_test(tc, test_getters);
	tcase_add_test(tc, test_writer_errors);
	tcase_add_test(tc, test_writer_zero_fill);
	tcase_add_test(tc, test_copy_roundtrip);
	tc = tcase(s, "shared");
	tcase_add_test(tc, test_stories260k);
	tc = tcase(s, "fuzz");
	tcase_add_test(tc, test_truncation);
	tcase_add_test(tc, test_bitflips);
	tcase_add_test(tc, test_huge_counts);
	tc = tcase(s, "bad");
	tcase_add_test(tc, test_missing_dir_empty);
	tcase_add_test(tc, test_not_regular);
	tcase_add_test(tc, test_bad_magic);
	tcase_add_test(tc, test_versions);
	tcase_add_test(tc, test_header_counts);
	tcase_add_test(tc, test_misaligned);
	tcase_add_test(tc, test_misaligned_msg);
	tcase_add_test(tc, test_past_end);
	tcase_add_test(tc, test_size_overflow);
	tcase_add_test(tc, test_overlap);
	tcase_add_test(tc, test_dup_key);
	tcase_add_test(tc, test_dup_tensor);
	tcase_add_test(tc, test_unknown_type);
	tcase_add_test(tc, test_ndims);
	tcase_add_test(tc, test_block_multiple);
	tcase_add_test(tc, test_block_multiple_xs);
	tcase_add_test(tc, test_k_blocks);
	tcase_add_test(tc, test_bad_bool);
	tcase_add_test(tc, test_value_types);
	tcase_add_test(tc, test_array_counts);
	tcase_add_test(tc, test_bad_alignment);
	tcase_add_test(tc, test_name_lengths);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(gguf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
