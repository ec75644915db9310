/*
 * fuzz_proto: what must hold for any input to the wire decoder.  A
 * libFuzzer entry point, and proto_fuzz_one(), which test_proto's seeded
 * mutation test calls on each variant, so both check the same things:
 *
 *	- nothing crashes, leaks or reads out of bounds (the sanitizers);
 *	- proto_validate and proto_msg_parse agree: parse fails on what
 *	  validate rejects, and succeeds on what it accepts unless a map
 *	  repeats a key;
 *	- every accessor copes with every parsed message;
 *	- a parsed message re-encodes to a frame the decoder accepts, which
 *	  re-encodes to the same bytes;
 *	- proto_utf8_sanitize always yields valid UTF-8 and leaves valid
 *	  UTF-8 alone.
 *
 * The input is read as frames back to back (as the daemon reads a
 * socket), and whole as one body.
 *
 * libFuzzer (clang):
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -Iengine -Iproto \
 *	    engine/err.c proto/proto.c proto/proto_dec.c proto/proto_enc.c \
 *	    tests/fuzz_proto.c \
 *	    $(pkg-config --cflags --libs msgpack) -o fuzz_proto
 *	./fuzz_proto -max_len=4096 -max_total_time=120 CORPUS_DIR
 * With -DFUZZ_PROTO_MAIN instead of -fsanitize=fuzzer it builds with any
 * compiler and replays the files named on its command line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	proto_fuzz_one(const uint8_t *, size_t);

#define REQUIRE(e)							\
	do {								\
		if (!(e)) {						\
			fprintf(stderr, "fuzz_proto: line %d: %s\n",	\
			    __LINE__, #e);				\
			abort();					\
		}							\
	} while (0)

/* Calls every accessor for likely keys, descending into nested maps. */
static void
poke(const msgpack_object *map)
{
	static const char *const keys[] = { "op", "id", "name", "text",
	    "stop", "temp", "create", "opts", "a", "k", "k3", "s8", "deep",
	    "d", "" };
	const msgpack_object *sub;
	const char *s, *ss[4];
	size_t i, slen, lens[4], n;
	char cause[ERR_LEN];
	uint64_t u;
	int64_t v;
	double d;
	int b, r;

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		r = proto_map_get_str(map, keys[i], i & 1, 64, &s, &slen,
		    cause);
		REQUIRE(r != 0 || (slen <= 64 && s[slen] == '\0'));
		r = proto_map_get_u64(map, keys[i], 1, 0, UINT64_MAX, &u, NULL);
		REQUIRE(r == 0 || r == -1);
		proto_map_get_i64(map, keys[i], 0, -5, 5, &v, cause);
		r = proto_map_get_f64(map, keys[i], 0, -1e308, 1e308, &d, NULL);
		REQUIRE(r != 0 || (d >= -1e308 && d <= 1e308));
		proto_map_get_bool(map, keys[i], 1, &b, cause);
		r = proto_map_get_str_array(map, keys[i], 4, 8, ss, lens, &n,
		    cause);
		REQUIRE(r != 0 || n <= 4);
		sub = proto_map_get(map, keys[i]);
		if (sub != NULL && sub->type == MSGPACK_OBJECT_MAP)
			poke(sub);
	}
}

static void
reencode(const struct proto_msg *m)
{
	struct proto_out o1, o2;
	struct proto_msg m2;
	const char *d1, *d2;
	size_t l1, l2;
	char cause[ERR_LEN];

	proto_out_init(&o1);
	proto_out_init(&o2);
	proto_pack_object(&o1, &m->root);
	REQUIRE(proto_out_finish(&o1, PROTO_MAX_FRAME, &d1, &l1, cause) == 0);
	REQUIRE(proto_msg_parse(&m2, (const uint8_t *)d1 + 4, l1 - 4,
	    cause) == 0);
	proto_pack_object(&o2, &m2.root);
	REQUIRE(proto_out_finish(&o2, PROTO_MAX_FRAME, &d2, &l2, cause) == 0);
	REQUIRE(l1 == l2 && memcmp(d1, d2, l1) == 0);
	proto_msg_free(&m2);
	proto_out_free(&o1);
	proto_out_free(&o2);
}

static void
text(const uint8_t *data, size_t size)
{
	char *c = malloc(size + 1);
	enum proto_op op;

	REQUIRE(c != NULL);
	if (size > 0)
		memcpy(c, data, size);
	proto_utf8_sanitize(c, size);
	REQUIRE(proto_utf8_valid((const uint8_t *)c, size));
	if (proto_utf8_valid(data, size))
		REQUIRE(size == 0 || memcmp(c, data, size) == 0);
	if (proto_session_name_ok((const char *)data, size))
		REQUIRE(size >= 1 && size <= PROTO_NAME_MAX && data[0] != '.');
	if (proto_op_parse((const char *)data, size, &op) == 0)
		REQUIRE(strlen(proto_op_name(op)) == size);
	free(c);
}

/* One body; 1 if it parsed. */
int
proto_fuzz_one(const uint8_t *body, size_t len)
{
	struct proto_msg m;
	char cause[ERR_LEN];
	int rv, rp;

	rv = proto_validate(body, len, cause);
	rp = proto_msg_parse(&m, body, len, cause);
	if (rp == -1) {
		REQUIRE(m.zone == NULL);
		REQUIRE(rv == -1 || strstr(cause, "twice") != NULL);
		return 0;
	}
	REQUIRE(rp == 0 && rv == 0);
	REQUIRE(m.root.type == MSGPACK_OBJECT_MAP);
	poke(&m.root);
	reencode(&m);
	proto_msg_free(&m);
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char cause[ERR_LEN];
	size_t off = 0, body;
	int r;

	while ((r = proto_frame_check(data + off, size - off, 4096, &body,
	    cause)) == 1) {
		REQUIRE(body >= 1 && body <= 4096 && 4 + body <= size - off);
		proto_fuzz_one(data + off + 4, body);
		off += 4 + body;
	}
	REQUIRE(r == 0 || r == -1);
	proto_fuzz_one(data, size);
	text(data, size);
	return 0;
}

#ifdef FUZZ_PROTO_MAIN
int
main(int argc, char **argv)
{
	uint8_t *buf = malloc(1 << 20);
	size_t n;
	FILE *f;
	int i;

	if (buf == NULL)
		return 1;
	for (i = 1; i < argc; i++) {
		if ((f = fopen(argv[i], "rb")) == NULL) {
			perror(argv[i]);
			return 1;
		}
		n = fread(buf, 1, 1 << 20, f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
	}
	free(buf);
	printf("fuzz_proto: %d inputs replayed\n", argc - 1);
	return 0;
}
#endif
