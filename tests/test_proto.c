/*
 * test_proto: the wire format.  Round trips through the encoders and the
 * accessors; framing; hostile bodies (huge declared counts, deep nesting,
 * bad keys and UTF-8, truncation, every single byte, seeded mutations);
 * the memory a pathological but valid frame costs; names and text rules.
 * Link with tests/fuzz_proto.c, whose per-input checks the mutation test
 * runs.
 */
#include <check.h>
#include <math.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "proto.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifdef HAVE_ASAN
/* From the sanitizer runtime; gcc does not install its header. */
size_t	__sanitizer_get_current_allocated_bytes(void);
#endif

#define U8(s) ((const uint8_t *)(s))

/* In tests/fuzz_proto.c, linked in: the checks for any one input. */
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	proto_fuzz_one(const uint8_t *, size_t);

/*
 * For hot loops: check's own asserts log every passing check to the
 * parent process (a system call each), which costs seconds here.
 */
#define CHECK(e)							\
	do {								\
		if (!(e))						\
			ck_abort_msg("line %d: %s", __LINE__, #e);	\
	} while (0)

/* Bytes of heap in use now. */
static size_t
heap_now(void)
{
#ifdef HAVE_ASAN
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
#endif
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int
valid(const void *b, size_t n)
{
	char cause[ERR_LEN];

	return proto_validate(b, n, cause);
}

/* Finishes out and returns a malloc'd copy of the body. */
static uint8_t *
finish_body(struct proto_out *out, size_t *n)
{
	const char *data;
	size_t len, body;
	char cause[ERR_LEN];
	uint8_t *b;

	ck_assert_msg(proto_out_finish(out, PROTO_MAX_FRAME, &data, &len,
	    cause) == 0, "%s", cause);
	ck_assert_int_eq(proto_frame_check(U8(data), len, PROTO_MAX_FRAME,
	    &body, cause), 1);
	ck_assert_uint_eq(body + 4, len);
	b = malloc(body);
	memcpy(b, data + 4, body);
	*n = body;
	return b;
}

static const char utf[] = "h\xc3\xa9llo \xe4\xb8\x96 \xf0\x9f\x99\x82";

/* A chat request with a bit of everything. */
static void
pack_chat(struct proto_out *o)
{
	proto_pack_map(o, 10);
	proto_pack_key(o, "op");
	proto_pack_cstr(o, "chat");
	proto_pack_key(o, "id");
	proto_pack_u64(o, 7);
	proto_pack_key(o, "name");
	proto_pack_cstr(o, "review");
	proto_pack_key(o, "text");
	proto_pack_cstr(o, utf);
	proto_pack_key(o, "create");
	proto_pack_bool(o, 1);
	proto_pack_key(o, "max_tokens");
	proto_pack_u64(o, 256);
	proto_pack_key(o, "temp");
	proto_pack_f64(o, 0.7);
	proto_pack_key(o, "stop");
	proto_pack_array(o, 2);
	proto_pack_cstr(o, "\n\n");
	proto_pack_cstr(o, "###");
	proto_pack_key(o, "seed");
	proto_pack_i64(o, -5);
	proto_pack_key(o, "opts");
	proto_pack_map(o, 4);
	proto_pack_key(o, "a");
	proto_pack_array(o, 5);
	proto_pack_u64(o, 1);
	proto_pack_i64(o, -1);
	proto_pack_nil(o);
	proto_pack_bool(o, 0);
	msgpack_pack_float(&o->pk, 1.5f);
	proto_pack_key(o, "b");
	msgpack_pack_bin(&o->pk, 3);
	msgpack_pack_bin_body(&o->pk, "\0\377\1", 3);
	proto_pack_key(o, "c");
	msgpack_pack_ext(&o->pk, 2, 5);
	msgpack_pack_ext_body(&o->pk, "\1\2", 2);
	proto_pack_key(o, "k");
	proto_pack_u64(o, UINT64_MAX);
}

/* A wide message: more keys than the pairwise repeated-key check takes,
 * longer strings, an array16, nesting to the limit. */
static void
pack_wide(struct proto_out *o)
{
	char key[8], text[300];
	int i;

	memset(text, 'x', sizeof text);
	proto_pack_map(o, 24);
	for (i = 0; i < 20; i++) {
		snprintf(key, sizeof key, "k%d", i);
		proto_pack_key(o, key);
		proto_pack_i64(o, (int64_t)i * 1000003 - 9000000);
	}
	proto_pack_key(o, "s8");
	proto_pack_str(o, text, 40);
	proto_pack_key(o, "s16");
	proto_pack_str(o, text, sizeof text);
	proto_pack_key(o, "a16");
	proto_pack_array(o, 17);
	for (i = 0; i < 17; i++)
		proto_pack_f64(o, i / 3.0);
	proto_pack_key(o, "deep");
	for (i = 0; i < 6; i++) {
		proto_pack_map(o, 1);
		proto_pack_key(o, "d");
	}
	proto_pack_array(o, 1);
	proto_pack_nil(o);
}

START_TEST(round_trip_all_types)
{
	struct proto_out out;
	struct proto_msg m;
	const msgpack_object *o;
	const char *s, *ss[4];
	char cause[ERR_LEN];
	size_t n, slen, lens[4], k;
	uint64_t u = 0;
	int64_t i = 0;
	double d = 0;
	int b = -1;
	uint8_t *body;

	proto_out_init(&out);
	pack_chat(&out);
	body = finish_body(&out, &n);
	proto_out_free(&out);
	ck_assert_msg(proto_msg_parse(&m, body, n, cause) == 0, "%s", cause);
	memset(body, 0xee, n); /* the message must not point into it */
	free(body);

	ck_assert_int_eq(proto_get_str(&m, "text", 1, 100, &s, &slen, cause), 0);
	ck_assert_uint_eq(slen, strlen(utf));
	ck_assert_str_eq(s, utf); /* NUL-terminated */
	ck_assert_int_eq(proto_get_str(&m, "op", 1, 4, &s, &slen, cause), 0);
	ck_assert_str_eq(s, "chat");
	ck_assert_int_eq(proto_get_u64(&m, "id", 1, 1, PROTO_ID_MAX, &u,
	    cause), 0);
	ck_assert_uint_eq(u, 7);
	ck_assert_int_eq(proto_get_bool(&m, "create", 1, &b, cause), 0);
	ck_assert_int_eq(b, 1);
	ck_assert_int_eq(proto_get_f64(&m, "temp", 1, 0, 2, &d, cause), 0);
	ck_assert(d == 0.7);
	ck_assert_int_eq(proto_get_i64(&m, "seed", 1, INT64_MIN, INT64_MAX,
	    &i, cause), 0);
	ck_assert_int_eq(i, -5);
	ck_assert_int_eq(proto_get_str_array(&m, "stop", 4, 8, ss, lens, &k,
	    cause), 0);
	ck_assert_uint_eq(k, 2);
	ck_assert_uint_eq(lens[0], 2);
	ck_assert_str_eq(ss[1], "###");

	o = proto_get(&m, "opts");
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(proto_map_get_u64(o, "k", 1, 0, UINT64_MAX, &u,
	    cause), 0);
	ck_assert(u == UINT64_MAX);
	ck_assert_int_eq(proto_map_get_i64(o, "k", 1, INT64_MIN, INT64_MAX,
	    &i, cause), -1);
	o = proto_map_get(o, "a");
	ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(o->via.array.size, 5);
	ck_assert_int_eq(o->via.array.ptr[1].via.i64, -1);
	ck_assert_int_eq(o->via.array.ptr[2].type, MSGPACK_OBJECT_NIL);
	ck_assert_int_eq(o->via.array.ptr[3].type, MSGPACK_OBJECT_BOOLEAN);
	ck_assert_int_eq(o->via.array.ptr[4].type, MSGPACK_OBJECT_FLOAT32);
	ck_assert(o->via.array.ptr[4].via.f64 == 1.5);
	o = proto_map_get(proto_get(&m, "opts"), "b");
	ck_assert_int_eq(o->type, MSGPACK_OBJECT_BIN);
	ck_assert_uint_eq(o->via.bin.size, 3);
	ck_assert_mem_eq(o->via.bin.ptr, "\0\377\1", 3);
	o = proto_map_get(proto_get(&m, "opts"), "c");
	ck_assert_int_eq(o->type, MSGPACK_OBJECT_EXT);
	ck_assert_int_eq(o->via.ext.type, 5);
	ck_assert_mem_eq(o->via.ext.ptr, "\1\2", 2);
	proto_msg_free(&m);
	proto_msg_free(&m); /* twice is harmless */
}
END_TEST

/* Integers at every encoding boundary, both signs; embedded NULs. */
START_TEST(round_trip_integers)
{
	static const int64_t iv[] = { 0, 1, 127, 128, 255, 256, 65535,
	    65536, 4294967295LL, 4294967296LL, INT64_MAX, -1, -32, -33, -128,
	    -129, -32768, -32769, -2147483648LL, -2147483649LL, INT64_MIN };
	struct proto_out out;
	struct proto_msg m;
	char key[8], cause[ERR_LEN];
	const char *s;
	size_t n, k, slen;
	int64_t v;
	uint64_t u;
	uint8_t *body;

	proto_out_init(&out);
	proto_pack_map(&out, sizeof iv / sizeof iv[0] + 1);
	for (k = 0; k < sizeof iv / sizeof iv[0]; k++) {
		snprintf(key, sizeof key, "i%zu", k);
		proto_pack_key(&out, key);
		proto_pack_i64(&out, iv[k]);
	}
	proto_pack_key(&out, "nul");
	proto_pack_str(&out, "a\0b", 3);
	body = finish_body(&out, &n);
	ck_assert_int_eq(proto_msg_parse(&m, body, n, cause), 0);
	for (k = 0; k < sizeof iv / sizeof iv[0]; k++) {
		snprintf(key, sizeof key, "i%zu", k);
		ck_assert_int_eq(proto_get_i64(&m, key, 1, INT64_MIN,
		    INT64_MAX, &v, cause), 0);
		ck_assert_int_eq(v, iv[k]);
		ck_assert_int_eq(proto_get_u64(&m, key, 1, 0, UINT64_MAX, &u,
		    cause), iv[k] < 0 ? -1 : 0);
	}
	ck_assert_int_eq(proto_get_str(&m, "nul", 1, 3, &s, &slen, cause), 0);
	ck_assert_uint_eq(slen, 3);
	ck_assert_mem_eq(s, "a\0b", 4);
	proto_msg_free(&m);
	proto_out_free(&out);
	free(body);
}
END_TEST

/* The example in proto.h, byte for byte. */
START_TEST(documented_example)
{
	static const uint8_t want[] = { 0x00, 0x00, 0x00, 0x0f, 0x82, 0xa2,
	    'o', 'p', 0xa6, 's', 't', 'a', 't', 'u', 's', 0xa2, 'i', 'd', 0x01 };
	struct proto_out out;
	const char *data;
	size_t len;
	char cause[ERR_LEN];

	proto_out_init(&out);
	proto_pack_map(&out, 2);
	proto_pack_key(&out, "op");
	proto_pack_cstr(&out, proto_op_name(PROTO_OP_STATUS));
	proto_pack_key(&out, "id");
	proto_pack_u64(&out, 1);
	ck_assert_int_eq(proto_out_finish(&out, PROTO_MAX_FRAME, &data, &len,
	    cause), 0);
	ck_assert_uint_eq(len, sizeof want);
	ck_assert_mem_eq(data, want, sizeof want);
	proto_out_free(&out);
}
END_TEST

START_TEST(framing_prefixes)
{
	struct proto_out out;
	const char *data;
	uint8_t two[1024];
	size_t len, i, body = 0;
	char cause[ERR_LEN];

	proto_out_init(&out);
	pack_chat(&out);
	ck_assert_int_eq(proto_out_finish(&out, PROTO_MAX_FRAME, &data, &len,
	    cause), 0);
	for (i = 0; i < len; i++) {
		ck_assert_int_eq(proto_frame_check(U8(data), i,
		    PROTO_MAX_FRAME, &body, cause), 0);
	}
	ck_assert_int_eq(proto_frame_check(U8(data), len, PROTO_MAX_FRAME,
	    &body, cause), 1);
	ck_assert_uint_eq(body, len - 4);
	/* Two frames back to back: the first, then the second after it. */
	ck_assert_uint_le(2 * len, sizeof two);
	memcpy(two, data, len);
	memcpy(two + len, data, len);
	ck_assert_int_eq(proto_frame_check(two, 2 * len - 1, PROTO_MAX_FRAME,
	    &body, cause), 1);
	ck_assert_int_eq(proto_frame_check(two + 4 + body, len - 1,
	    PROTO_MAX_FRAME, &body, cause), 0);
	ck_assert_int_eq(proto_frame_check(two + len, len, PROTO_MAX_FRAME,
	    &body, cause), 1);
	ck_assert_int_eq(valid(two + len + 4, body), 0);
	proto_out_free(&out);
}
END_TEST

START_TEST(framing_limits)
{
	static const uint8_t zero[8], over[4] = { 0, 0x10, 0, 1 },
	    huge[4] = { 0xff, 0xff, 0xff, 0xff }, exact[4] = { 0, 0x10, 0, 0 };
	char cause[ERR_LEN];
	size_t body = 0;
	uint8_t *big;

	ck_assert_int_eq(proto_frame_check(zero, 3, PROTO_MAX_FRAME, &body,
	    cause), 0);
	ck_assert_int_eq(proto_frame_check(zero, 4, PROTO_MAX_FRAME, &body,
	    cause), -1);
	ck_assert_str_eq(cause, "frame of length 0");
	/* Over the limit: known from the 4 length bytes alone. */
	ck_assert_int_eq(proto_frame_check(over, 4, PROTO_MAX_FRAME, &body,
	    cause), -1);
	ck_assert_int_eq(proto_frame_check(huge, 4, PROTO_MAX_FRAME, &body,
	    cause), -1);
	ck_assert_int_eq(proto_frame_check(huge, 4, SIZE_MAX, &body, cause),
	    0);
	ck_assert_int_eq(proto_frame_check(exact, 4, PROTO_MAX_FRAME, &body,
	    cause), 0);
	big = calloc(1, 4 + PROTO_MAX_FRAME);
	memcpy(big, exact, 4);
	ck_assert_int_eq(proto_frame_check(big, 4 + PROTO_MAX_FRAME,
	    PROTO_MAX_FRAME, &body, cause), 1);
	ck_assert_uint_eq(body, PROTO_MAX_FRAME);
	ck_assert_int_eq(proto_frame_check(big, 4 + PROTO_MAX_FRAME,
	    PROTO_MAX_FRAME - 1, &body, cause), -1);
	free(big);
}
END_TEST

/* The encoder's limit: a body of exactly max_frame bytes, then one more. */
START_TEST(encoder_limits)
{
	struct proto_out out;
	const char *data;
	size_t len, fill = PROTO_MAX_FRAME - 1 - 2 - 5;
	char cause[ERR_LEN], *text = malloc(fill + 1);

	memset(text, 'y', fill + 1);
	proto_out_init(&out);
	proto_pack_map(&out, 1);
	proto_pack_key(&out, "t"); /* 2 bytes; str32 header: 5 bytes */
	proto_pack_str(&out, text, fill);
	ck_assert_int_eq(proto_out_finish(&out, PROTO_MAX_FRAME, &data, &len,
	    cause), 0);
	ck_assert_uint_eq(len, 4 + PROTO_MAX_FRAME);
	proto_out_reset(&out);
	proto_pack_map(&out, 1);
	proto_pack_key(&out, "t");
	proto_pack_str(&out, text, fill + 1);
	ck_assert_int_eq(proto_out_finish(&out, PROTO_MAX_FRAME, &data, &len,
	    cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "over the frame limit"));
	proto_out_free(&out);
	free(text);
}
END_TEST

/* Our bugs are caught when finishing, not by the peer. */
START_TEST(encoder_catches_bad_bodies)
{
	struct proto_out out;
	const char *data;
	size_t len;
	char cause[ERR_LEN];

	proto_out_init(&out);
	ck_assert_int_eq(proto_out_finish(&out, PROTO_MAX_FRAME, &data, &len,
	    cause), -1); /* empty */
	proto_pack_map(&out, 2); /* one pair short */
	proto_pack_key(&out, "a");
	proto_pack_nil(&out);
	ck_assert_int_eq(proto_out_finish(&out, PROTO_MAX_FRAME, &data, &len,
	    cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "invalid message"));
	proto_out_reset(&out);
	proto_pack_map(&out, 1); /* one pair too many */
	proto_pack_key(&out, "a");
	proto_pack_nil(&out);
	proto_pack_key(&out, "b");
	proto_pack_nil(&out);
	ck_assert_int_eq(proto_out_finish(&out, PROTO_MAX_FRAME, &data, &len,
	    cause), -1);
	proto_out_reset(&out);
	proto_pack_map(&out, 1);
	proto_pack_key(&out, "a");
	proto_pack_str(&out, "\xc0\x80", 2);
	ck_assert_int_eq(proto_out_finish(&out, PROTO_MAX_FRAME, &data, &len,
	    cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "UTF-8"));
	proto_out_reset(&out);
	proto_encode_head(&out, 3, PROTO_K_OK, 0);
	ck_assert_int_eq(proto_out_finish(&out, PROTO_MAX_FRAME, &data, &len,
	    cause), 0);
	ck_assert_uint_eq(len, 4 + 1 + 3 + 1 + 5 + 3);
	proto_out_free(&out);
}
END_TEST

START_TEST(encode_error)
{
	struct proto_out out;
	struct proto_msg m;
	const char *s;
	char cause[ERR_LEN];
	size_t n, slen;
	uint64_t id;
	uint8_t *body;
	enum proto_err e;

	proto_out_init(&out);
	proto_pack_map(&out, 5); /* half-built reply, replaced */
	proto_encode_error(&out, 42, PROTO_E_BUSY, "session '%s' is busy (%d)",
	    "x\xff\xe2\x82", 3);
	body = finish_body(&out, &n);
	ck_assert_int_eq(proto_msg_parse(&m, body, n, cause), 0);
	ck_assert_int_eq(proto_get_u64(&m, "id", 1, 0, UINT64_MAX, &id, cause),
	    0);
	ck_assert_uint_eq(id, 42);
	ck_assert_int_eq(proto_get_str(&m, "kind", 1, 16, &s, &slen, cause), 0);
	ck_assert_str_eq(s, "error");
	ck_assert_int_eq(proto_get_str(&m, "code", 1, 16, &s, &slen, cause), 0);
	ck_assert_int_eq(proto_err_parse(s, slen, &e), 0);
	ck_assert_int_eq(e, PROTO_E_BUSY);
	ck_assert_int_eq(proto_get_str(&m, "message", 1, 100, &s, &slen,
	    cause), 0);
	ck_assert_str_eq(s, "session 'x?\?\?' is busy (3)");
	ck_assert_uint_eq(m.root.via.map.size, 4);
	proto_msg_free(&m);
	proto_out_free(&out);
	free(body);
}
END_TEST

/* Huge declared counts in a handful of bytes: rejected at once, no memory. */
START_TEST(hostile_counts)
{
	static const struct {
		size_t n;
		uint8_t b[12];
	} bad[] = {
		{ 5, { 0xdf, 0xff, 0xff, 0xff, 0xff } },	/* map32 */
		{ 3, { 0xde, 0xff, 0xff } },			/* map16 */
		{ 8, { 0x81, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff } },
		{ 8, { 0x81, 0xa1, 'a', 0xdf, 0xff, 0xff, 0xff, 0xff } },
		{ 8, { 0x81, 0xa1, 'a', 0xdb, 0xff, 0xff, 0xff, 0xff } },
		{ 8, { 0x81, 0xa1, 'a', 0xc6, 0xff, 0xff, 0xff, 0xff } },
		{ 9, { 0x81, 0xa1, 'a', 0xc9, 0xff, 0xff, 0xff, 0xff, 1 } },
		{ 6, { 0x81, 0xa1, 'a', 0xdc, 0xff, 0xff } },
		{ 6, { 0x81, 0xa1, 'a', 0xda, 0xff, 0xff } },
		{ 7, { 0x81, 0xa1, 'a', 0xc8, 0xff, 0xff, 1 } },
		{ 8, { 0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 1 } }, /* key */
		{ 6, { 0x81, 0xa1, 'a', 0x92, 0x9f, 1 } }, /* nested fixarray */
		{ 9, { 0x81, 0xa1, 'a', 0x92, 0xc0, 0xdd, 0, 0, 0, } },
		{ 4, { 0x81, 0xa1, 'a', 0xcf } },	/* uint64 cut short */
		{ 4, { 0x81, 0xa1, 'a', 0xd8 } },	/* fixext16 cut short */
		{ 5, { 0x81, 0xa1, 'a', 0xc7, 0 } },	/* ext8 without type */
	};
	struct proto_msg m;
	char cause[ERR_LEN];
	size_t i, before;
	double t = now();

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		before = heap_now();
		ck_assert_msg(proto_validate(bad[i].b, bad[i].n, cause) == -1,
		    "case %zu accepted", i);
		ck_assert_int_eq(proto_msg_parse(&m, bad[i].b, bad[i].n,
		    cause), -1);
		ck_assert_ptr_null(m.zone);
		ck_assert_uint_le(heap_now(), before + 256);
	}
	ck_assert_double_lt(now() - t, 0.1);
}
END_TEST

/* The top-level map is depth 1; PROTO_MAX_DEPTH levels pass, one more not. */
START_TEST(hostile_depth)
{
	uint8_t b[1100];
	size_t i, n;
	char cause[ERR_LEN];
	int levels;

	for (levels = 1; levels <= PROTO_MAX_DEPTH + 1; levels++) {
		n = 0;
		b[n++] = 0x81; /* depth 1 */
		b[n++] = 0xa1;
		b[n++] = 'a';
		for (i = 1; i < (size_t)levels; i++)
			b[n++] = 0x91;
		b[n++] = 0xc0;
		ck_assert_int_eq(valid(b, n),
		    levels <= PROTO_MAX_DEPTH ? 0 : -1);
		/* The same with maps, and with empty innermost containers. */
		n = 0;
		for (i = 1; i < (size_t)levels; i++) {
			b[n++] = 0x81;
			b[n++] = 0xa0;
		}
		b[n++] = 0x80;
		ck_assert_int_eq(valid(b, n),
		    levels <= PROTO_MAX_DEPTH ? 0 : -1);
	}
	n = 0;
	b[n++] = 0x81;
	b[n++] = 0xa1;
	b[n++] = 'a';
	for (i = 0; i < 1000; i++)
		b[n++] = 0x91;
	b[n++] = 0xc0;
	ck_assert_int_eq(proto_validate(b, n, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "nesting deeper than 8"));
}
END_TEST

START_TEST(hostile_shapes)
{
	static const char *const not_map[] = { "\x00", "\xc0", "\xc3", "\x90",
	    "\xa0", "\xdc\x00\x00", "\xc4\x00", "\xd4\x01\x02", "\xe0", "\xc1" };
	static const char *const bad_key[] = { "\x81\x01\x01",
	    "\x81\xc4\x01" "a\x01", "\x81\x90\x01", "\x81\x80\x01",
	    "\x81\xc0\x01", "\x81\xc1\x01", "\x81\xa1" "a\x81\x01\x01",
	    "\x81\xa1" "a\x91\x81\xcb" "00000000\xc0" };
	char cause[ERR_LEN];
	size_t i;

	for (i = 0; i < sizeof not_map / sizeof not_map[0]; i++) {
		ck_assert_int_eq(proto_validate(U8(not_map[i]),
		    strlen(not_map[i]) + (not_map[i][0] == 0), cause), -1);
		ck_assert_str_eq(cause, "message is not a map");
	}
	for (i = 0; i < sizeof bad_key / sizeof bad_key[0]; i++)
		ck_assert_msg(valid(bad_key[i], strlen(bad_key[i])) == -1,
		    "bad key %zu accepted", i);
	ck_assert_int_eq(valid("\x81\xa1" "a\x01", 4), 0);
	ck_assert_int_eq(valid("\x80", 1), 0);
	ck_assert_int_eq(valid("", 0), -1);
	ck_assert_int_eq(proto_validate(U8("\x80\x00"), 2, cause), -1);
	ck_assert_str_eq(cause, "1 bytes after the message");
	ck_assert_int_eq(valid("\x80\x80", 2), -1);
	ck_assert_int_eq(valid("\x81\xa1" "a\x01\x01", 5), -1);
	ck_assert_int_eq(proto_validate(U8("\x81\xa1" "a\xc1"), 4, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "0xc1"));
	ck_assert_int_eq(valid("\x82\xa1" "a\xc1\xa1" "b\x01", 7), -1);
}
END_TEST

/* Invalid UTF-8 as a key and as a value; valid edge cases pass. */
START_TEST(hostile_utf8)
{
	static const char *const bad[] = { "\xc0\x80", "\xc1\xbf",
	    "\xe0\x80\x80", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
	    "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80",
	    "\xf5\x80\x80\x80", "\xff", "\x80", "\xbf", "\xe2\x82", "\xc3",
	    "\xe2\x28\xa1", "a\xf0\x9f\x99" };
	static const char *const good[] = { "\x7f", "\xc2\x80", "\xdf\xbf",
	    "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbf",
	    "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf" };
	uint8_t b[16];
	size_t i, l, n;

	for (i = 0; i < sizeof bad / sizeof bad[0] + sizeof good /
	    sizeof good[0]; i++) {
		int ok = i >= sizeof bad / sizeof bad[0];
		const char *s = ok ? good[i - sizeof bad / sizeof bad[0]] :
		    bad[i];

		l = strlen(s);
		n = 0;
		b[n++] = 0x81;
		b[n++] = (uint8_t)(0xa0 | l);
		memcpy(b + n, s, l);
		n += l;
		b[n++] = 0x01;
		ck_assert_msg(valid(b, n) == (ok ? 0 : -1), "key %zu", i);
		n = 0;
		b[n++] = 0x81;
		b[n++] = 0xa1;
		b[n++] = 'a';
		b[n++] = 0xd9; /* str8, to vary the header */
		b[n++] = (uint8_t)l;
		memcpy(b + n, s, l);
		n += l;
		ck_assert_msg(valid(b, n) == (ok ? 0 : -1), "value %zu", i);
		ck_assert_int_eq(proto_utf8_valid(U8(s), l), ok);
	}
}
END_TEST

/* Every proper prefix of a valid body fails, in both decoders. */
START_TEST(hostile_truncation)
{
	struct proto_out out;
	struct proto_msg m;
	char cause[ERR_LEN];
	size_t n, i;
	uint8_t *body, *copy;

	proto_out_init(&out);
	pack_chat(&out);
	body = finish_body(&out, &n);
	for (i = 0; i < n; i++) {
		copy = malloc(i + 1); /* exactly i bytes readable */
		memcpy(copy, body, i);
		ck_assert_int_eq(proto_validate(copy, i, cause), -1);
		ck_assert_int_eq(proto_msg_parse(&m, copy, i, cause), -1);
		free(copy);
	}
	ck_assert_int_eq(valid(body, n), 0);
	proto_out_free(&out);
	free(body);
}
END_TEST

START_TEST(hostile_short_bodies)
{
	uint8_t b[3];
	unsigned int x, y;

	for (x = 0; x < 256; x++) {
		b[0] = (uint8_t)x;
		CHECK(valid(b, 1) == (x == 0x80 ? 0 : -1));
		for (y = 0; y < 256; y++) {
			b[1] = (uint8_t)y;
			CHECK(valid(b, 2) == -1);
		}
	}
	/* One pair with a one-byte key and value: the key must be "". */
	b[0] = 0x81;
	for (x = 0; x < 256; x++) {
		for (y = 0; y < 256; y++) {
			int single = y <= 0x7f || y >= 0xe0 || y == 0x80 ||
			    y == 0x90 || y == 0xa0 || y == 0xc0 || y == 0xc2 ||
			    y == 0xc3;

			b[1] = (uint8_t)x;
			b[2] = (uint8_t)y;
			CHECK(valid(b, 3) == (x == 0xa0 && single ? 0 : -1));
		}
	}
}
END_TEST

/* Both decoders repeat-check: proto_validate does not, parse does. */
START_TEST(repeated_keys)
{
	struct proto_out out;
	struct proto_msg m;
	char key[8], cause[ERR_LEN];
	uint8_t *body;
	size_t n;
	int i, dup;

	ck_assert_int_eq(valid("\x82\xa1" "a\x01\xa1" "a\x02", 7), 0);
	ck_assert_int_eq(proto_msg_parse(&m, U8("\x82\xa1" "a\x01\xa1" "a\x02"),
	    7, cause), -1);
	ck_assert_str_eq(cause, "a map has the key 'a' twice");
	ck_assert_int_eq(proto_msg_parse(&m, U8("\x81\xa1" "a\x91\x82\xa0\x01"
	    "\xa0\x02"), 9, cause), -1);
	for (dup = 0; dup <= 1; dup++) { /* over SMALL_MAP: sorted */
		proto_out_init(&out);
		proto_pack_map(&out, 30);
		for (i = 0; i < 30; i++) {
			snprintf(key, sizeof key, "k%d",
			    dup && i == 29 ? 3 : i);
			proto_pack_key(&out, key);
			proto_pack_u64(&out, (uint64_t)i);
		}
		body = finish_body(&out, &n);
		ck_assert_int_eq(proto_msg_parse(&m, body, n, cause),
		    dup ? -1 : 0);
		proto_msg_free(&m);
		proto_out_free(&out);
		free(body);
	}
}
END_TEST

/* Fills b with {"a": <array32 of n items from item()>}, returns its size. */
static size_t
pathological(uint8_t *b, size_t len, int shape)
{
	size_t n = 0, i, count;

	b[n++] = 0x81;
	b[n++] = 0xa1;
	b[n++] = 'a';
	if (shape == 3) { /* a map of distinct 3-byte keys to nil */
		count = (len - n - 5) / 5;
		b[n++] = 0xdf;
	} else {
		count = len - n - 5;
		b[n++] = 0xdd;
	}
	b[n++] = (uint8_t)(count >> 24);
	b[n++] = (uint8_t)(count >> 16);
	b[n++] = (uint8_t)(count >> 8);
	b[n++] = (uint8_t)count;
	for (i = 0; i < count; i++) {
		if (shape == 3) {
			b[n++] = 0xa3;
			b[n++] = (uint8_t)(0x30 + (i & 63));
			b[n++] = (uint8_t)(0x30 + (i >> 6 & 63));
			b[n++] = (uint8_t)(0x30 + (i >> 12 & 63));
			b[n++] = 0xc0;
		} else if (shape == 0)
			b[n++] = 0xc0;
		else if (shape == 1)
			b[n++] = 0xa0;
		else
			b[n++] = (i & 1) ? 0x90 : 0xa0;
	}
	return n;
}

/* The worst memory per byte of valid input stays under 30 L. */
START_TEST(memory_bound)
{
	size_t len = PROTO_MAX_FRAME, n, before, used;
	uint8_t *b = malloc(len);
	struct proto_msg m;
	char cause[ERR_LEN];
	int shape;

	for (shape = 0; shape < 4; shape++) {
		n = pathological(b, len, shape);
		before = heap_now();
		ck_assert_msg(proto_msg_parse(&m, b, n, cause) == 0, "%s",
		    cause);
		used = heap_now() - before;
		ck_assert_msg(used <= 30 * n + 4096, "shape %d: %zu bytes for "
		    "%zu", shape, used, n);
		proto_msg_free(&m);
	}
	free(b);
}
END_TEST

static void
mutate(uint8_t *b, size_t *n, size_t cap, uint64_t *r)
{
	static const uint8_t hot[] = { 0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f,
	    0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc4, 0xc5, 0xc6, 0xc7, 0xc9, 0xca,
	    0xcb, 0xcf, 0xd3, 0xd4, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde,
	    0xdf, 0xe0, 0xed, 0xf4, 0xf5, 0xff };
	size_t k, at, nm = 1 + rnd(r) % 4;

	for (k = 0; k < nm && *n > 0; k++) {
		at = rnd(r) % *n;
		switch (rnd(r) % 8) {
		case 0:
			b[at] = (uint8_t)rnd(r);
			break;
		case 1:
		case 2:
			b[at] = hot[rnd(r) % sizeof hot];
			break;
		case 3:
			b[at] ^= (uint8_t)(1u << rnd(r) % 8);
			break;
		case 4:
			if (*n < cap) {
				memmove(b + at + 1, b + at, *n - at);
				b[at] = hot[rnd(r) % sizeof hot];
				(*n)++;
			}
			break;
		case 5:
			memmove(b + at, b + at + 1, *n - at - 1);
			(*n)--;
			break;
		case 6:
			b[at] = (uint8_t)(b[at] + 1);
			break;
		default:
			if (rnd(r) % 4 == 0)
				*n = at;
			break;
		}
	}
}

/*
 * Seeded mutations of valid bodies, and of whole frames now and then,
 * through the fuzz harness's checks (tests/fuzz_proto.c).
 */
START_TEST(mutations)
{
	struct proto_out out;
	uint8_t *base[2], b[2048];
	size_t nbase[2], n, i, ok = 0;
	uint64_t seed = 0x5eed5eed12345678ULL;

	proto_out_init(&out);
	pack_chat(&out);
	base[0] = finish_body(&out, &nbase[0]);
	proto_out_reset(&out);
	pack_wide(&out);
	base[1] = finish_body(&out, &nbase[1]);
	for (i = 0; i < 100000; i++) {
		n = nbase[i & 1];
		if (i % 16 == 0) {
			b[0] = b[1] = 0;
			b[2] = (uint8_t)(n >> 8);
			b[3] = (uint8_t)n;
			memcpy(b + 4, base[i & 1], n);
			n += 4;
			mutate(b, &n, sizeof b, &seed);
			LLVMFuzzerTestOneInput(b, n);
			continue;
		}
		memcpy(b, base[i & 1], n);
		mutate(b, &n, sizeof b, &seed);
		ok += (size_t)proto_fuzz_one(b, n);
	}
	ck_assert_uint_gt(ok, 5000); /* the success path was exercised */
	free(base[0]);
	free(base[1]);
	proto_out_free(&out);
}
END_TEST

START_TEST(accessor_errors)
{
	struct proto_msg m;
	const char *s = "untouched", *ss[2];
	char cause[ERR_LEN];
	size_t slen = 99, lens[2], n = 99;
	uint64_t u = 99;
	int64_t i = 99;
	double d = 99;
	int b = 99;
	/* {"i":5,"s":"abc","f":2.5,"b":true,"neg":-3,"arr":["a",1],
	 *  "big":["a","b","c"],"nil":nil,"nan":NaN} */
	static const char body[] = "\x89\xa1i\x05\xa1s\xa3" "abc\xa1" "f"
	    "\xcb\x40\x04\x00\x00\x00\x00\x00\x00\xa1" "b\xc3\xa3neg\xfd\xa3"
	    "arr\x92\xa1" "a\x01\xa3" "big\x93\xa1" "a\xa1" "b\xa1" "c\xa3"
	    "nil\xc0\xa3nan\xca\x7f\xc0\x00\x00";

	ck_assert_msg(proto_msg_parse(&m, U8(body), sizeof body - 1, cause) ==
	    0, "%s", cause);
	ck_assert_int_eq(proto_get_u64(&m, "i", 1, 1, 4, &u, cause), -1);
	ck_assert_str_eq(cause, "key 'i' must be an integer from 1 to 4, "
	    "not 5");
	ck_assert_int_eq(proto_get_u64(&m, "s", 1, 1, 4, &u, cause), -1);
	ck_assert_str_eq(cause, "key 's' must be an integer from 1 to 4, "
	    "not a string of 3 bytes");
	ck_assert_int_eq(proto_get_u64(&m, "neg", 1, 0, 4, &u, cause), -1);
	ck_assert_int_eq(proto_get_u64(&m, "max_tokens", 1, 1, 65536, &u,
	    cause), -1);
	ck_assert_str_eq(cause, "key 'max_tokens' is missing");
	ck_assert_int_eq(proto_get_u64(&m, "max_tokens", 0, 1, 65536, &u,
	    cause), 1);
	ck_assert_uint_eq(u, 99);
	ck_assert_int_eq(proto_get_str(&m, "x", 0, 9, &s, &slen, cause), 1);
	ck_assert_str_eq(s, "untouched");
	ck_assert_int_eq(proto_get_str(&m, "i", 1, 9, &s, &slen, cause), -1);
	ck_assert_int_eq(proto_get_str(&m, "s", 1, 2, &s, &slen, cause), -1);
	ck_assert_str_eq(cause, "key 's' must be a string of at most 2 bytes, "
	    "not a string of 3 bytes");
	ck_assert_int_eq(proto_get_i64(&m, "neg", 1, -5, -1, &i, cause), 0);
	ck_assert_int_eq(i, -3);
	ck_assert_int_eq(proto_get_i64(&m, "neg", 1, 0, 10, &i, cause), -1);
	ck_assert_int_eq(proto_get_i64(&m, "f", 1, 0, 10, &i, cause), -1);
	ck_assert_int_eq(proto_get_f64(&m, "f", 1, 0, 2, &d, cause), -1);
	ck_assert_str_eq(cause, "key 'f' must be a number from 0 to 2, not 2.5");
	ck_assert_int_eq(proto_get_f64(&m, "i", 1, 0, 10, &d, cause), 0);
	ck_assert(d == 5.0);
	ck_assert_int_eq(proto_get_f64(&m, "s", 1, 0, 10, &d, cause), -1);
	ck_assert_int_eq(proto_get_f64(&m, "nan", 1, -INFINITY, INFINITY, &d,
	    cause), -1);
	ck_assert_int_eq(proto_get_bool(&m, "i", 1, &b, cause), -1);
	ck_assert_int_eq(proto_get_bool(&m, "nil", 1, &b, cause), -1);
	ck_assert_str_eq(cause, "key 'nil' must be true or false, not nil");
	ck_assert_int_eq(proto_get_bool(&m, "b", 1, &b, cause), 0);
	ck_assert_int_eq(b, 1);
	ck_assert_int_eq(proto_get_str_array(&m, "arr", 2, 8, ss, lens, &n,
	    cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "element 1"));
	ck_assert_int_eq(proto_get_str_array(&m, "big", 2, 8, ss, lens, &n,
	    cause), -1);
	ck_assert_int_eq(proto_get_str_array(&m, "s", 2, 8, ss, lens, &n,
	    cause), -1);
	ck_assert_int_eq(proto_get_str_array(&m, "none", 2, 8, ss, lens, &n,
	    cause), 1);
	ck_assert_uint_eq(n, 99);
	ck_assert_ptr_null(proto_map_get(proto_get(&m, "i"), "x"));
	ck_assert_ptr_null(proto_map_get(NULL, "x"));
	proto_msg_free(&m);
}
END_TEST

START_TEST(session_names)
{
	char name[66];

	memset(name, 'n', sizeof name);
	ck_assert(proto_session_name_ok("default", 7));
	ck_assert(proto_session_name_ok("a.b-c_1", 7));
	ck_assert(proto_session_name_ok("Z..", 3));
	ck_assert(proto_session_name_ok(name, 64));
	ck_assert(!proto_session_name_ok(name, 65));
	ck_assert(!proto_session_name_ok("", 0));
	ck_assert(!proto_session_name_ok(".hidden", 7));
	ck_assert(!proto_session_name_ok("a/b", 3));
	ck_assert(!proto_session_name_ok("a b", 3));
	ck_assert(!proto_session_name_ok("a\0b", 3));
	ck_assert(!proto_session_name_ok("caf\xc3\xa9", 5));
	ck_assert(!proto_session_name_ok("..", 2));
}
END_TEST

START_TEST(names)
{
	/* As listed in sinkd-protocol(7). */
	static const char *const ops[] = { "hello", "create", "list", "info",
	    "delete", "reset", "chat", "complete", "feed", "cancel", "status",
	    "shutdown", "log", "rebuild", "fork", "export", "import",
	    "templates" };
	static const char *const errs[] = { "bad_request", "unknown_op",
	    "version", "no_such_session", "exists", "invalid_name", "busy",
	    "too_large", "limit", "cancelled", "overflow", "internal",
	    "damaged", "wrong_model", "store", "denied" };
	static const char *const kinds[] = { "ok", "error", "token", "warning",
	    "done", "progress", "data" };
	static const char *const fins[] = { "eos", "length", "stop",
	    "cancelled", "fed" };
	enum proto_op op;
	enum proto_err e;
	enum proto_kind k;
	enum proto_finish f;
	int i;

	ck_assert_int_eq(PROTO_OP_COUNT, 18);
	for (i = 0; i < PROTO_OP_COUNT; i++) {
		ck_assert_str_eq(proto_op_name((enum proto_op)i), ops[i]);
		ck_assert_int_eq(proto_op_parse(ops[i], strlen(ops[i]), &op), 0);
		ck_assert_int_eq(op, i);
	}
	ck_assert_int_eq(PROTO_E_COUNT, 16);
	for (i = 0; i < PROTO_E_COUNT; i++) {
		ck_assert_str_eq(proto_err_name((enum proto_err)i), errs[i]);
		ck_assert_int_eq(proto_err_parse(errs[i], strlen(errs[i]), &e),
		    0);
		ck_assert_int_eq(e, i);
	}
	ck_assert_int_eq(PROTO_K_COUNT, 7);
	for (i = 0; i < PROTO_K_COUNT; i++) {
		ck_assert_str_eq(proto_kind_name((enum proto_kind)i), kinds[i]);
		ck_assert_int_eq(proto_kind_parse(kinds[i], strlen(kinds[i]),
		    &k), 0);
		ck_assert_int_eq(k, i);
	}
	ck_assert_int_eq(PROTO_F_COUNT, 5);
	for (i = 0; i < PROTO_F_COUNT; i++) {
		ck_assert_str_eq(proto_finish_name((enum proto_finish)i),
		    fins[i]);
		ck_assert_int_eq(proto_finish_parse(fins[i], strlen(fins[i]),
		    &f), 0);
		ck_assert_int_eq(f, i);
	}
	ck_assert_str_eq(proto_op_name(PROTO_OP_COUNT), "unknown");
	ck_assert_str_eq(proto_err_name((enum proto_err)-1), "unknown");
	ck_assert_int_eq(proto_op_parse("chat", 3, &op), -1);
	ck_assert_int_eq(proto_op_parse("chats", 5, &op), -1);
	ck_assert_int_eq(proto_op_parse("", 0, &op), -1);
	ck_assert_int_eq(proto_op_parse("CHAT", 4, &op), -1);
}
END_TEST

/* An independent decoder: assemble the code point, then check it. */
static int
ref_utf8(const uint8_t *s, size_t len)
{
	static const uint32_t min[] = { 0, 0x80, 0x800, 0x10000 };
	size_t i = 0, n, k;
	uint32_t cp;

	while (i < len) {
		cp = s[i];
		if (cp < 0x80) {
			i++;
			continue;
		}
		if ((cp & 0xe0) == 0xc0) {
			n = 1;
			cp &= 0x1f;
		} else if ((cp & 0xf0) == 0xe0) {
			n = 2;
			cp &= 0x0f;
		} else if ((cp & 0xf8) == 0xf0) {
			n = 3;
			cp &= 0x07;
		} else
			return 0;
		if (len - i - 1 < n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 &&
		    cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

START_TEST(utf8_against_reference)
{
	static const uint8_t tail[] = { 0x00, 0x7f, 0x80, 0x8f, 0x90, 0xbf,
	    0xc0, 0xff };
	uint8_t s[4];
	uint32_t x;
	size_t a, b;
	char t[] = "a\xff" "b\xe2\x82";

	for (x = 0; x < 1u << 16; x++) {
		s[0] = (uint8_t)(x >> 8);
		s[1] = (uint8_t)x;
		CHECK(proto_utf8_valid(s, 1) == ref_utf8(s, 1));
		CHECK(proto_utf8_valid(s, 2) == ref_utf8(s, 2));
	}
	for (x = 0xc0u << 16; x < 1u << 24; x++) {
		s[0] = (uint8_t)(x >> 16);
		s[1] = (uint8_t)(x >> 8);
		s[2] = (uint8_t)x;
		CHECK(proto_utf8_valid(s, 3) == ref_utf8(s, 3));
	}
	for (x = 0xf0; x <= 0xf7; x++) {
		s[0] = (uint8_t)x;
		for (a = 0; a < 256; a++) {
			s[1] = (uint8_t)a;
			for (b = 0; b < sizeof tail * sizeof tail; b++) {
				s[2] = tail[b % sizeof tail];
				s[3] = tail[b / sizeof tail];
				CHECK(proto_utf8_valid(s, 4) == ref_utf8(s, 4));
				CHECK((proto_utf8_seq(s, 4) == 4) ==
				    ref_utf8(s, 4));
			}
		}
	}
	ck_assert_uint_eq(proto_utf8_seq(U8("\xe2\x82\xac"), 3), 3);
	ck_assert_uint_eq(proto_utf8_seq(U8("\xe2\x82"), 2), 0); /* held back */
	ck_assert_uint_eq(proto_utf8_seq(U8(""), 0), 0);
	proto_utf8_sanitize(t, 5);
	ck_assert_str_eq(t, "a?b??");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("proto");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60); /* sanitizers and slow machines */
	tcase_add_test(tc, round_trip_all_types);
	tcase_add_test(tc, round_trip_integers);
	tcase_add_test(tc, documented_example);
	tcase_add_test(tc, framing_prefixes);
	tcase_add_test(tc, framing_limits);
	tcase_add_test(tc, encoder_limits);
	tcase_add_test(tc, encoder_catches_bad_bodies);
	tcase_add_test(tc, encode_error);
	tcase_add_test(tc, hostile_counts);
	tcase_add_test(tc, hostile_depth);
	tcase_add_test(tc, hostile_shapes);
	tcase_add_test(tc, hostile_utf8);
	tcase_add_test(tc, hostile_truncation);
	tcase_add_test(tc, hostile_short_bodies);
	tcase_add_test(tc, repeated_keys);
	tcase_add_test(tc, memory_bound);
	tcase_add_test(tc, mutations);
	tcase_add_test(tc, accessor_errors);
	tcase_add_test(tc, session_names);
	tcase_add_test(tc, names);
	tcase_add_test(tc, utf8_against_reference);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
