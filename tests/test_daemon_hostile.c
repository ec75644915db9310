/*
 * test_daemon_hostile: a real sinkd on a private socket against hostile
 * clients: random bytes, impossible and truncated frames, deep nesting,
 * every wrong type for every key of every op, invalid UTF-8, hostile
 * session names, a client that never reads, bad ops and ids.  After each
 * phase the daemon must answer status on a fresh connection, and a
 * bystander session made at the start must be exactly as it was, and
 * still chat.  Frames are packed with msgpack-c directly, since proto's
 * encoder refuses to write most of them.  What sinkd-protocol(7) leaves
 * open is asserted as sinkd does it: a body breaking proto.h's rules
 * (invalid UTF-8, nesting, key types, repeated keys) is fatal to the
 * connection like a bad frame; a bad key in a good frame is not.
 */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon_harness.h"
#include "proto.h"

/* A frame under construction: 4 length bytes, then whatever is packed. */
struct raw {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

/* The bystander's state from info: its session map and transcript. */
struct snap {
	uint8_t b[16384];
	size_t len;
	uint64_t turns, seen;
};

static struct snap by_snap;

/* The arguments every sinkd here gets, before a test's own. */
static const char *const std_args[] = { "-t", "1", "--max-tokens",
	"1000000", "--log-level", "warn", NULL };
static char model[600];

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Best effort: the daemon may hang up on a hostile client at any time. */
static void
send_try(int fd, const void *p, size_t n)
{
	(void)!send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void
raw_init(struct raw *r)
{
	static const char len[4];

	msgpack_sbuffer_init(&r->sb);
	msgpack_sbuffer_write(&r->sb, len, 4);
	msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
}

static void
raw_str(struct raw *r, const char *s, size_t len)
{
	msgpack_pack_str(&r->pk, len);
	msgpack_pack_str_body(&r->pk, s, len);
}

static void
raw_cstr(struct raw *r, const char *s)
{
	raw_str(r, s, strlen(s));
}

/* {op, id, and n more pairs}. */
static void
raw_head(struct raw *r, const char *op, uint64_t id, size_t n)
{
	raw_init(r);
	msgpack_pack_map(&r->pk, 2 + n);
	raw_cstr(r, "op");
	raw_cstr(r, op);
	raw_cstr(r, "id");
	msgpack_pack_uint64(&r->pk, id);
}

/* Sets the length, sends the frame (of n bytes, 0: all), frees it. */
static void
raw_send(struct dh_conn *c, struct raw *r, size_t n)
{
	size_t body = r->sb.size - 4;
	uint8_t *p = (uint8_t *)r->sb.data;

	p[0] = (uint8_t)(body >> 24);
	p[1] = (uint8_t)(body >> 16);
	p[2] = (uint8_t)(body >> 8);
	p[3] = (uint8_t)body;
	dh_send_raw(c, p, n == 0 ? r->sb.size : n);
	msgpack_sbuffer_destroy(&r->sb);
}

/* A protocol error: bad_request (or codes) for id 0, then the hang-up. */
static void
expect_fatal(struct dh_conn *c, const char *codes, const char *what)
{
	dh_expect_error(c, 0, codes, what);
	ck_assert_msg(dh_next(c) == NULL, "%s: connection left open", what);
}

/* The daemon is running and answers status on a fresh connection: rss. */
static uint64_t
alive(const char *phase)
{
	struct dh_conn c;
	struct proto_msg *m;
	uint64_t rss = 0;
	int st;

	ck_assert_msg(waitpid(dh_pid(), &st, WNOHANG) == 0, "%s: sinkd "
	    "died (status %d)", phase, st);
	dh_open(&c);
	dh_rq(&c, "status", 424242, "");
	m = dh_expect(&c, "ok", 424242);
	ck_assert_int_eq(proto_get_u64(m, "rss", 1, 1, UINT64_MAX, &rss,
	    NULL), 0);
	dh_close(&c);
	return rss;
}

static void
snapshot(const char *name, struct snap *s)
{
	struct dh_conn c;
	struct proto_msg *m;
	struct proto_out o;
	const msgpack_object *sess, *recent;
	const char *data;
	size_t len;

	dh_open(&c);
	dh_rq(&c, "info", 77, "su", "name", name, "turns", (uint64_t)1000);
	m = dh_expect(&c, "ok", 77);
	ck_assert_ptr_nonnull(sess = proto_get(m, "session"));
	ck_assert_ptr_nonnull(recent = proto_get(m, "recent"));
	proto_out_init(&o);
	proto_pack_map(&o, 2);
	proto_pack_key(&o, "session");
	proto_pack_object(&o, sess);
	proto_pack_key(&o, "recent");
	proto_pack_object(&o, recent);
	ck_assert_int_eq(proto_out_finish(&o, sizeof s->b, &data, &len, NULL),
	    0);
	memcpy(s->b, data, len);
	s->len = len;
	s->turns = s->seen = 0;
	proto_map_get_u64(sess, "turns", 1, 0, UINT64_MAX, &s->turns, NULL);
	proto_map_get_u64(sess, "seen", 1, 0, UINT64_MAX, &s->seen, NULL);
	proto_out_free(&o);
	dh_close(&c);
}

/* The bystander: a session with a transcript, made before any hostility. */
static void
bystander_begin(void)
{
	struct dh_conn c;
	int n;

	dh_open(&c);
	dh_rq(&c, "create", 1, "suuf", "name", "bystander", "cache",
	    (uint64_t)64, "sinks", (uint64_t)4, "temp", 0.0);
	dh_expect(&c, "ok", 1);
	dh_rq(&c, "chat", 2, "ssub", "name", "bystander", "text", "hello there",
	    "max_tokens", (uint64_t)8, "ignore_eos", 1);
	ck_assert_str_eq(dh_drain(&c, 2, NULL, 0, NULL, 0, &n), "length");
	ck_assert_int_eq(n, 8);
	dh_close(&c);
	snapshot("bystander", &by_snap);
	ck_assert_uint_eq(by_snap.turns, 2);
}

/* After a phase: sinkd alive, the bystander untouched. */
static void
unharmed(const char *phase)
{
	struct snap now;

	alive(phase);
	snapshot("bystander", &now);
	ck_assert_msg(now.len == by_snap.len && memcmp(now.b, by_snap.b,
	    now.len) == 0, "%s: the bystander changed (turns %llu -> %llu, "
	    "seen %llu -> %llu)", phase, (unsigned long long)by_snap.turns,
	    (unsigned long long)now.turns, (unsigned long long)by_snap.seen,
	    (unsigned long long)now.seen);
}

/* The bystander still chats, and only then changes. */
static void
bystander_end(void)
{
	struct dh_conn c;
	struct snap now;
	int n;

	dh_open(&c);
	dh_rq(&c, "chat", 3, "ssub", "name", "bystander", "text", "and now?",
	    "max_tokens", (uint64_t)4, "ignore_eos", 1);
	ck_assert_str_eq(dh_drain(&c, 3, NULL, 0, NULL, 0, &n), "length");
	ck_assert_int_eq(n, 4);
	dh_close(&c);
	snapshot("bystander", &now);
	ck_assert_uint_eq(now.turns, by_snap.turns + 2);
	ck_assert_uint_gt(now.seen, by_snap.seen);
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Whatever a hostile connection got back: whole frames, all errors. */
static int
replies_ok(int fd)
{
	static uint8_t buf[1 << 16];
	size_t len = 0, body, off = 0;
	struct proto_msg m;
	ssize_t n;
	int got = 0;

	while (len < sizeof buf && (n = recv(fd, buf + len, sizeof buf - len,
	    MSG_DONTWAIT)) > 0)
		len += (size_t)n;
	while (off < len) {
		ck_assert_int_eq(proto_frame_check(buf + off, len - off,
		    sizeof buf, &body, NULL), 1);
		ck_assert_int_eq(proto_msg_parse(&m, buf + off + 4, body, NULL),
		    0);
		ck_assert(dh_is_kind(&m, "error"));
		proto_msg_free(&m);
		off += 4 + body;
		got++;
	}
	return got;
}

/* One connection's worth of noise, in one of four shapes. */
static size_t
noise(uint8_t *b, size_t cap, uint64_t *s, int shape)
{
	size_t n = 512 + rnd(s) % (cap - 1024), i, l;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)rnd(s);
	if (shape == 0)
		return n; /* a random length: mostly far over the limit */
	for (i = 0; i + 5 < n; i += 4 + l) {
		l = shape == 1 ? 1 + rnd(s) % 8192 : 1 + rnd(s) % 300;
		b[i] = 0;
		b[i + 1] = 0;
		b[i + 2] = (uint8_t)(l >> 8);
		b[i + 3] = (uint8_t)l;
		if (shape == 3)
			b[i + 4] = 0x80 | (uint8_t)(rnd(s) % 16); /* a map */
		if (shape == 1)
			break;
	}
	return n;
}

START_TEST(random_bytes)
{
	static uint8_t b[6144];
	int linger[200], n_linger = 0, i, errors = 0;
	uint64_t s = 0x5eed5eed;

	dh_start(model, std_args, "--max-clients", "300", NULL);
	bystander_begin();
	for (i = 0; i < 200; i++) {
		int fd = dh_dial();
		send_try(fd, b, noise(b, sizeof b, &s, i % 4));
		if (rnd(&s) % 2)
			close(fd);
		else
			linger[n_linger++] = fd;
		if (i % 50 == 49)
			alive("random bytes");
	}
	unharmed("random bytes, lingering");
	usleep(200000);
	for (i = 0; i < n_linger; i++) {
		errors += replies_ok(linger[i]);
		close(linger[i]);
	}
	ck_assert_int_ge(errors, n_linger / 2); /* the noise was answered */
	unharmed("random bytes");
	bystander_end();
	dh_stop();
}
END_TEST

/* Impossible lengths: an error, the hang-up, nothing allocated. */
static void
huge_lengths(void)
{
	static const uint32_t lens[] = { 0xffffffffu, 0x80000000u,
		0x7fffffffu, 0x01000000u, PROTO_MAX_FRAME + 1, 0 };
	uint8_t hdr[64] = { 0 };
	struct dh_conn c;
	size_t i;

	for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		dh_open(&c);
		hdr[0] = (uint8_t)(lens[i] >> 24);
		hdr[1] = (uint8_t)(lens[i] >> 16);
		hdr[2] = (uint8_t)(lens[i] >> 8);
		hdr[3] = (uint8_t)lens[i];
		memset(hdr + 4, 0x80, sizeof hdr - 4);
		dh_send_raw(&c, hdr, sizeof hdr);
		expect_fatal(&c, lens[i] == 0 ? "bad_request" : "too_large",
		    "huge length");
		dh_close(&c);
	}
	/* After a good frame on the same connection: answered, then fatal. */
	dh_open(&c);
	dh_rq(&c, "status", 5, "");
	memset(hdr, 0xff, 4);
	dh_send_raw(&c, hdr, 4);
	dh_expect(&c, "ok", 5);
	expect_fatal(&c, "too_large", "huge length after a good frame");
	dh_close(&c);
}

/* A frame that would create a session, cut at every byte, then closed. */
static void
truncated(void)
{
	struct raw r;
	struct dh_conn c, hold;
	size_t k, n;

	raw_head(&r, "chat", 9, 4);
	raw_cstr(&r, "name");
	raw_cstr(&r, "cut");
	raw_cstr(&r, "text");
	raw_cstr(&r, "hello");
	raw_cstr(&r, "create");
	msgpack_pack_true(&r.pk);
	raw_cstr(&r, "max_tokens");
	msgpack_pack_uint64(&r.pk, 2);
	n = r.sb.size;
	for (k = 1; k < n; k++) {
		struct raw copy;
		raw_init(&copy);
		msgpack_sbuffer_write(&copy.sb, r.sb.data + 4, n - 4);
		dh_open(&c);
		raw_send(&c, &copy, k);
		dh_close(&c);
	}
	dh_open(&hold); /* one that stays, half a frame sent */
	raw_send(&hold, &r, n / 2);
	unharmed("truncated frames");
	dh_close(&hold);
	dh_open(&c);
	dh_rq(&c, "info", 1, "s", "name", "cut");
	dh_expect_error(&c, 1, "no_such_session", "a cut frame was served");
	dh_close(&c);
}

/* A frame longer than what comes: the daemon waits, serving others. */
static void
short_body(uint32_t declared)
{
	uint8_t b[600];
	struct dh_conn c;
	int64_t t0;

	memset(b, 0xa1, sizeof b);
	b[0] = (uint8_t)(declared >> 24);
	b[1] = (uint8_t)(declared >> 16);
	b[2] = (uint8_t)(declared >> 8);
	b[3] = (uint8_t)declared;
	b[4] = 0x81;
	dh_open(&c);
	dh_send_raw(&c, b, sizeof b);
	t0 = now_ms();
	alive("short body");
	ck_assert_int_lt(now_ms() - t0, 500);
	usleep(1000000);
	dh_close(&c);
	alive("short body, closed");
}

/* Body rules other than nesting and UTF-8: fatal, like a bad frame. */
#define V(bytes, why) { bytes, sizeof bytes - 1, why }
static const struct body {
	const char *bytes;
	size_t len;
	const char *why;
} bodies[] = {
	V("\x82\xa2op\xa6status\xa2id\x01\xc0", "a byte after the map"),
	V("\x82\xa2op\xa6status\x01\x01", "an integer key"),
	V("\x82\xa2op\xa6status\xa2op\xa6status", "a key twice"),
	V("\x83\xa2op\xa6status\xa2id\x01", "a pair short"),
	V("\x82\xa2op\xa6status\xa2id\xc1", "the byte 0xc1"),
	V("\x92\xa2op\xa6status", "an array, not a map"),
	V("\x82\xa2op\xa6status\xa2id\xdb\xff\xff\xff\xff",
	    "a str32 of 4 GiB"),
};
#undef V

static void
body_rules(void)
{
	uint8_t b[64];
	struct dh_conn c;
	size_t i;

	for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		memset(b, 0, 4);
		b[3] = (uint8_t)bodies[i].len;
		memcpy(b + 4, bodies[i].bytes, bodies[i].len);
		dh_open(&c);
		dh_send_raw(&c, b, 4 + bodies[i].len);
		expect_fatal(&c, "bad_request", bodies[i].why);
		dh_close(&c);
	}
}

START_TEST(bad_frames)
{
	dh_start(model, std_args, NULL);
	bystander_begin();
	huge_lengths();
	body_rules();
	unharmed("huge lengths, body rules");
	truncated();
	unharmed("truncated frames");
	short_body(1000);
	short_body(PROTO_MAX_FRAME);
	unharmed("short bodies");
	bystander_end();
	dh_stop();
}
END_TEST

/*
 * {op: status, id: 1, x: <depth containers>}: the message nests depth + 1
 * deep.  Maps or arrays, of one element, fix or 32-bit counts.
 */
static void
nested(struct dh_conn *c, int depth, int map, int big)
{
	struct raw r;
	int i;

	raw_head(&r, "status", 1, 1);
	raw_cstr(&r, "x");
	for (i = 0; i < depth; i++) {
		if (big)
			msgpack_sbuffer_write(&r.sb, map ? "\xdf\0\0\0\1" :
			    "\xdd\0\0\0\1", 5);
		else if (map)
			msgpack_pack_map(&r.pk, 1);
		else
			msgpack_pack_array(&r.pk, 1);
		if (map)
			raw_cstr(&r, "a");
	}
	msgpack_pack_nil(&r.pk);
	raw_send(c, &r, 0);
}

START_TEST(deep_nesting)
{
	struct dh_conn c;
	int map, big;

	dh_start(model, std_args, NULL);
	bystander_begin();
	for (map = 0; map < 2; map++) {
		for (big = 0; big < 2; big++) {
			dh_open(&c);
			nested(&c, 7, map, big); /* depth 8 */
			dh_expect(&c, "ok", 1);
			nested(&c, 8, map, big); /* depth 9 */
			expect_fatal(&c, "bad_request", "nesting 9");
			dh_close(&c);
			dh_open(&c);
			nested(&c, 10000, map, big);
			expect_fatal(&c, "bad_request", "nesting 10000");
			dh_close(&c);
		}
	}
	unharmed("deep nesting");
	bystander_end();
	dh_stop();
}
END_TEST

/*
 * Wrong values, and which keys they are wrong for.  A_* are arrays for
 * stop: their type is right, their elements are not.
 */
enum wrong { W_NIL, W_TRUE, W_NEG, W_HUGE, W_FLOAT, W_STR, W_BIN, W_ARR,
	W_MAP, W_EXT, W_ONE, W_ZERO, W_NAN, W_INF, W_OVER, A_INT, A_NIL,
	A_NINE, A_LONG, A_EMPTY, A_NEST, W_COUNT };

#define B(w) (1u << (w))
#define COMMON (B(W_NIL) | B(W_TRUE) | B(W_NEG) | B(W_FLOAT) | B(W_STR) | \
	B(W_BIN) | B(W_ARR) | B(W_MAP) | B(W_EXT))
#define K_STR ((COMMON & ~B(W_STR)) | B(W_HUGE) | B(W_ONE))
#define K_UINT (COMMON | B(W_HUGE))
#define K_UINT1 (K_UINT | B(W_ZERO))
#define K_SEED COMMON
#define K_NUM ((COMMON & ~B(W_FLOAT)) | B(W_HUGE) | B(W_NAN) | B(W_INF))
#define K_BOOL ((COMMON & ~B(W_TRUE)) | B(W_HUGE) | B(W_ONE) | B(W_ZERO))
#define K_STOPS ((COMMON & ~B(W_ARR)) | B(W_HUGE) | B(A_INT) | B(A_NIL) | \
	B(A_NINE) | B(A_LONG) | B(A_EMPTY) | B(A_NEST))
#define K_ID (K_UINT1 | B(W_OVER))
#define K_BIN ((COMMON & ~B(W_BIN)) | B(W_HUGE) | B(W_ONE))

static const struct key {
	const char *key;
	unsigned wrong;
} keys[] = {
	{ "id", K_ID }, { "op", K_STR }, { "name", K_STR },
	{ "text", K_STR }, { "cache", K_UINT1 }, { "sinks", K_UINT },
	{ "mode", K_STR }, { "kv", K_STR }, { "system", K_STR },
	{ "temp", K_NUM }, { "top_k", K_UINT }, { "top_p", K_NUM },
	{ "min_p", K_NUM }, { "repeat_penalty", K_NUM }, { "seed", K_SEED },
	{ "max_tokens", K_UINT1 }, { "stop", K_STOPS }, { "create", K_BOOL },
	{ "ignore_eos", K_BOOL }, { "target", K_UINT1 }, { "turns", K_UINT },
	{ "proto", K_UINT }, { "from", K_UINT }, { "max", K_UINT1 },
	{ "new", K_STR }, { "data", K_BIN }, { "more", K_BOOL },
};

#define SAMPLING "temp", "top_k", "top_p", "min_p", "repeat_penalty", "seed"

/* The keys each op takes (id and op: every op), from sinkd-protocol(7). */
static const struct op {
	const char *op;
	const char *keys[16];
} ops[] = {
	{ "hello", { "proto" } },
	{ "create", { "name", "mode", "cache", "sinks", "kv", "system",
	    SAMPLING, "max_tokens" } },
	{ "list", { NULL } },
	{ "info", { "name", "turns" } },
	{ "delete", { "name" } },
	{ "reset", { "name" } },
	{ "chat", { "name", "text", "create", "max_tokens", "stop",
	    "ignore_eos", SAMPLING } },
	{ "complete", { "name", "text", "create", "max_tokens", "stop",
	    "ignore_eos", SAMPLING } },
	{ "feed", { "name", "text" } },
	{ "cancel", { "target" } },
	{ "status", { NULL } },
	{ "shutdown", { NULL } },
	{ "log", { "name", "from", "max" } },
	{ "rebuild", { "name" } },
	{ "fork", { "name", "new" } },
	{ "export", { "name" } },
	{ "import", { "data", "more", "name" } },
};

/* The wrong values as MessagePack bytes; A_LONG is made by pack_wrong. */
#define V(name, bytes) { name, bytes, sizeof bytes - 1 }
static const struct wrong_val {
	const char *name, *bytes;
	size_t len;
} wrongs[W_COUNT] = {
	V("nil", "\xc0"), V("true", "\xc3"), V("-1", "\xff"),
	V("2^64-1", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
	V("1.5", "\xcb\x3f\xf8\0\0\0\0\0\0"), V("a string", "\xa1" "7"),
	V("a bin", "\xc4\x01" "7"), V("an array", "\x91\x01"),
	V("a map", "\x81\xa1" "a" "\x01"), V("an ext", "\xd4\x05" "7"),
	V("1", "\x01"), V("0", "\x00"), V("NaN", "\xcb\x7f\xf8\0\0\0\0\0\0"),
	V("inf", "\xcb\x7f\xf0\0\0\0\0\0\0"),
	V("2^53+1", "\xcf\0\x20\0\0\0\0\0\x01"),
	V("an int in the array", "\x92\xa1x\x01"),
	V("nil in the array", "\x91\xc0"),
	V("9 strings", "\x99\xa1g\xa1h\xa1i\xa1j\xa1k\xa1l\xa1m\xa1n\xa1o"),
	V("257 bytes", ""), V("an empty string", "\x91\xa0"),
	V("an array in the array", "\x91\x91\xa1x"),
};
#undef V

static void
pack_wrong(struct raw *r, enum wrong w)
{
	char long_stop[257];

	if (w == A_LONG) {
		memset(long_stop, 'z', sizeof long_stop);
		msgpack_pack_array(&r->pk, 1);
		raw_str(r, long_stop, sizeof long_stop);
	} else
		msgpack_sbuffer_write(&r->sb, wrongs[w].bytes, wrongs[w].len);
}

static unsigned create_serial;

/* A right value of key for op: the request is served if all are right. */
static void
pack_right(struct raw *r, const char *op, const char *key)
{
	char name[32];

	if ((strcmp(key, "name") == 0 && strcmp(op, "create") == 0) ||
	    strcmp(key, "new") == 0) {
		snprintf(name, sizeof name, "made%u", create_serial++);
		raw_cstr(r, name);
	} else if (strcmp(key, "name") == 0 && strcmp(op, "import") == 0)
		raw_cstr(r, "imported");
	else if (strcmp(key, "data") == 0) {
		/* A part of a file still to come: kept, not yet read. */
		msgpack_pack_bin(&r->pk, 3);
		msgpack_pack_bin_body(&r->pk, "abc", 3);
	} else if (strcmp(key, "more") == 0)
		msgpack_pack_true(&r->pk);
	else if (strcmp(key, "name") == 0)
		raw_cstr(r, "victim");
	else if (strcmp(key, "mode") == 0)
		raw_cstr(r, "streaming");
	else if (strcmp(key, "kv") == 0)
		raw_cstr(r, "f16");
	else if (strcmp(key, "text") == 0 || strcmp(key, "system") == 0)
		raw_cstr(r, "be brief");
	else if (strcmp(key, "stop") == 0) {
		msgpack_pack_array(&r->pk, 1);
		raw_cstr(r, "zzz");
	} else if (strcmp(key, "create") == 0 || strcmp(key, "ignore_eos") ==
	    0)
		msgpack_pack_false(&r->pk);
	else if (strcmp(key, "temp") == 0 || strcmp(key, "top_p") == 0 ||
	    strcmp(key, "min_p") == 0 || strcmp(key, "repeat_penalty") == 0)
		msgpack_pack_double(&r->pk, key[0] == 'r' ? 1.1 : 0.5);
	else if (strcmp(key, "cache") == 0 || strcmp(key, "target") == 0)
		msgpack_pack_uint64(&r->pk, key[0] == 'c' ? 128 : 999);
	else
		msgpack_pack_uint64(&r->pk, strcmp(key, "top_k") == 0 ? 5 :
		    strcmp(key, "sinks") == 0 ? 2 : 1);
}

/*
 * {op, id, every key of op right}, except bad (a key of op, or "id" or
 * "op") which gets w; NULL: all right.
 */
static void
send_op(struct dh_conn *c, const struct op *o, uint64_t id, const char *bad,
    enum wrong w)
{
	struct raw r;
	size_t n, i;

	for (n = 0; n < 16 && o->keys[n] != NULL; n++)
		;
	raw_init(&r);
	msgpack_pack_map(&r.pk, 2 + n);
	raw_cstr(&r, "op");
	if (bad != NULL && strcmp(bad, "op") == 0)
		pack_wrong(&r, w);
	else
		raw_cstr(&r, o->op);
	raw_cstr(&r, "id");
	if (bad != NULL && strcmp(bad, "id") == 0)
		pack_wrong(&r, w);
	else
		msgpack_pack_uint64(&r.pk, id);
	for (i = 0; i < n; i++) {
		raw_cstr(&r, o->keys[i]);
		if (bad != NULL && strcmp(bad, o->keys[i]) == 0)
			pack_wrong(&r, w);
		else
			pack_right(&r, o->op, o->keys[i]);
	}
	raw_send(c, &r, 0);
}

/* Reads id's messages (data, warnings, progress) up to one of kind. */
static void
skip_to(struct dh_conn *c, uint64_t id, const char *kind)
{
	struct proto_msg *m;

	while ((m = dh_next(c)) != NULL && !dh_is_kind(m, kind)) {
		ck_assert_int_eq(dh_id_of(m), id);
		ck_assert(!dh_is_kind(m, "error"));
	}
	ck_assert(m != NULL && dh_id_of(m) == id);
}

/* Every op, all keys right (but shutdown and delete): served. */
static void
right_requests(struct dh_conn *c)
{
	size_t i;
	int n;

	for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		if (strcmp(ops[i].op, "shutdown") == 0 ||
		    strcmp(ops[i].op, "delete") == 0)
			continue;
		send_op(c, &ops[i], 100 + i, NULL, W_NIL);
		if (strcmp(ops[i].op, "chat") == 0 || strcmp(ops[i].op,
		    "complete") == 0 || strcmp(ops[i].op, "feed") == 0)
			dh_drain(c, 100 + i, NULL, 0, NULL, 0, &n);
		else if (strcmp(ops[i].op, "rebuild") == 0)
			skip_to(c, 100 + i, "done");
		else if (strcmp(ops[i].op, "export") == 0)
			skip_to(c, 100 + i, "ok");
		else
			dh_expect(c, "ok", 100 + i);
	}
}

static unsigned
wrongs_for(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strcmp(keys[i].key, key) == 0)
			return keys[i].wrong;
	ck_abort_msg("no wrong values for key %s", key);
	return 0;
}

/* Each wrong value of key in op: an error, then status still served. */
static int
wrong_key(struct dh_conn *c, const struct op *o, const char *key, uint64_t *id)
{
	unsigned mask = wrongs_for(key);
	char what[96];
	int w, sent = 0;

	for (w = 0; w < W_COUNT; w++) {
		if (!(mask & B(w)))
			continue;
		snprintf(what, sizeof what, "%s: key %s, wrong value %s",
		    o->op, key, wrongs[w].name);
		send_op(c, o, *id, key, (enum wrong)w);
		dh_rq(c, "status", *id + 1, "");
		dh_expect_error(c, strcmp(key, "id") == 0 ? 0 : *id,
		    "bad_request", what);
		dh_expect(c, "ok", *id + 1);
		*id += 2;
		sent++;
	}
	return sent;
}

static size_t
session_count(struct dh_conn *c)
{
	struct proto_msg *m;
	const msgpack_object *a;

	dh_rq(c, "list", 9999, "");
	m = dh_expect(c, "ok", 9999);
	ck_assert_ptr_nonnull(a = proto_get(m, "sessions"));
	ck_assert_int_eq(a->type, MSGPACK_OBJECT_ARRAY);
	return a->via.array.size;
}

START_TEST(wrong_types)
{
	struct dh_conn c;
	struct snap victim, after;
	uint64_t id = 1000;
	size_t i, j, before;
	int sent = 0;

	dh_start(model, std_args, NULL);
	bystander_begin();
	dh_open(&c);
	dh_rq(&c, "create", 1, "s", "name", "victim");
	dh_expect(&c, "ok", 1);
	right_requests(&c);
	snapshot("victim", &victim);
	before = session_count(&c);
	for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		sent += wrong_key(&c, &ops[i], "id", &id);
		sent += wrong_key(&c, &ops[i], "op", &id);
		for (j = 0; j < 16 && ops[i].keys[j] != NULL; j++)
			sent += wrong_key(&c, &ops[i], ops[i].keys[j], &id);
	}
	ck_assert_int_gt(sent, 600);
	ck_assert_uint_eq(session_count(&c), before); /* none was made */
	dh_close(&c);
	snapshot("victim", &after);
	ck_assert_msg(after.len == victim.len && memcmp(after.b, victim.b,
	    after.len) == 0, "a refused request changed its session");
	unharmed("wrong types");
	bystander_end();
	dh_stop();
}
END_TEST

/*
 * A refused chat with create makes no session (bad_request must mean
 * nothing happened).
 */
START_TEST(refused_chat_creates_nothing)
{
	struct dh_conn c;
	struct raw r;

	dh_start(model, std_args, NULL);
	dh_open(&c);
	raw_head(&r, "chat", 1, 3);
	raw_cstr(&r, "name");
	raw_cstr(&r, "fresh");
	raw_cstr(&r, "create");
	msgpack_pack_true(&r.pk);
	raw_cstr(&r, "text");
	msgpack_pack_uint64(&r.pk, 5);
	raw_send(&c, &r, 0);
	dh_expect_error(&c, 1, "bad_request", "chat with a number for text");
	dh_rq(&c, "info", 2, "s", "name", "fresh");
	dh_expect_error(&c, 2, "no_such_session",
	    "refused chat made a session");
	dh_close(&c);
	dh_stop();
}
END_TEST

/* {op, id: 1, name, text, key: value}: the body a bad string goes in. */
static void
utf8_frame(struct dh_conn *c, int where, const char *bad, size_t len)
{
	struct raw r;

	raw_head(&r, where == 3 ? "chat" : "info", 1, 3);
	raw_cstr(&r, "name");
	if (where == 0)
		raw_str(&r, bad, len);
	else
		raw_cstr(&r, "bystander");
	raw_cstr(&r, "text");
	if (where == 3)
		raw_str(&r, bad, len);
	else
		raw_cstr(&r, "hi");
	if (where == 1)
		raw_str(&r, bad, len); /* a key */
	else
		raw_cstr(&r, where == 4 ? "stop" : "k");
	if (where == 2)
		raw_str(&r, bad, len); /* an unknown key's value */
	else if (where == 4) {
		msgpack_pack_array(&r.pk, 1);
		raw_str(&r, bad, len);
	} else
		msgpack_pack_nil(&r.pk);
	raw_send(c, &r, 0);
}

START_TEST(invalid_utf8)
{
	static const char *const bad[] = { "\xff", "\x80", "a\xc0\x80",
		"\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ab\xc3",
		"\xe2\x82", "\xf8\x88\x80\x80\x80", "\xc3\x28", "x\xfe" };
	static const char good[] = "nul\0in it, \xf4\x8f\xbf\xbf, "
	    "\xef\xbf\xbf, \xc3\xa9";
	struct dh_conn c;
	struct raw r;
	size_t i;
	int where, n;

	dh_start(model, std_args, NULL);
	bystander_begin();
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		for (where = 0; where < 5; where++) {
			dh_open(&c);
			utf8_frame(&c, where, bad[i], strlen(bad[i]));
			expect_fatal(&c, "bad_request", "invalid UTF-8");
			dh_close(&c);
		}
	}
	unharmed("invalid UTF-8");
	dh_open(&c); /* the edges of valid UTF-8 are text like any */
	raw_head(&r, "chat", 1, 4);
	raw_cstr(&r, "name");
	raw_cstr(&r, "edges");
	raw_cstr(&r, "create");
	msgpack_pack_true(&r.pk);
	raw_cstr(&r, "max_tokens");
	msgpack_pack_uint64(&r.pk, 3);
	raw_cstr(&r, "text");
	raw_str(&r, good, sizeof good - 1);
	raw_send(&c, &r, 0);
	dh_drain(&c, 1, NULL, 0, NULL, 0, &n);
	dh_close(&c);
	unharmed("valid UTF-8 edges");
	bystander_end();
	dh_stop();
}
END_TEST

/* Nothing new in the empty rundir; only the model and sockets around it. */
static void
no_files(void)
{
	char path[1200];
	struct dirent *e;
	struct stat st;
	DIR *d;

	ck_assert_ptr_nonnull(d = opendir(dh_rundir()));
	while ((e = readdir(d)) != NULL)
		ck_assert_msg(strcmp(e->d_name, ".") == 0 ||
		    strcmp(e->d_name, "..") == 0, "%s appeared in %s",
		    e->d_name, dh_rundir());
	closedir(d);
	ck_assert_ptr_nonnull(d = opendir(dh_tmpdir()));
	while ((e = readdir(d)) != NULL) {
		snprintf(path, sizeof path, "%s/%s", dh_tmpdir(), e->d_name);
		ck_assert_int_eq(lstat(path, &st), 0);
		ck_assert_msg(e->d_name[0] == '.' || S_ISSOCK(st.st_mode) ||
		    strcmp(e->d_name, "tiny.gguf") == 0 ||
		    strcmp(e->d_name, "run") == 0, "%s appeared in %s",
		    e->d_name, dh_tmpdir());
	}
	closedir(d);
}

/* op on a hostile name: refused with one of codes. */
static void
bad_name(struct dh_conn *c, const char *op, const char *name, size_t len,
    const char *codes, uint64_t id)
{
	struct raw r;
	char what[96];

	raw_head(&r, op, id, strcmp(op, "chat") == 0 ? 3 : 1);
	raw_cstr(&r, "name");
	raw_str(&r, name, len);
	if (strcmp(op, "chat") == 0) {
		raw_cstr(&r, "text");
		raw_cstr(&r, "hi");
		raw_cstr(&r, "create");
		msgpack_pack_true(&r.pk);
	}
	raw_send(c, &r, 0);
	snprintf(what, sizeof what, "%s '%.*s' (%zu bytes)", op,
	    len > 40 ? 40 : (int)len, name, len);
	dh_expect_error(c, id, codes, what);
}

/* A hostile name in every op that takes one: refused, never served. */
static void
name_everywhere(struct dh_conn *c, const char *name, size_t len, uint64_t *id)
{
	static const char *const lookups[] = { "info", "delete", "reset",
		"feed" };
	size_t i;

	bad_name(c, "create", name, len, "invalid_name|bad_request", (*id)++);
	bad_name(c, "chat", name, len, "invalid_name|bad_request", (*id)++);
	for (i = 0; i < 4; i++)
		bad_name(c, lookups[i], name, len,
		    "no_such_session|invalid_name|bad_request", (*id)++);
}

#define V(s) { s, sizeof s - 1 }
static const struct name {
	const char *s;
	size_t len;
} names[] = {
	V("a/b"), V("/etc/passwd"), V(".."), V("../x"), V("."), V(".hidden"),
	V(""), V("bystander/.."), V("bystander/"), V("a b"), V("\xc3\xa9"),
	V("by*"), V("x\n"), V("a\0b"), V("bystander\0x"),
	V("nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"),
};
#undef V

START_TEST(hostile_names)
{
	static char big[10240];
	struct dh_conn c;
	uint64_t id = 1;
	size_t i;

	ck_assert_uint_eq(names[sizeof names / sizeof names[0] - 1].len, 65);
	dh_start(model, std_args, NULL);
	bystander_begin();
	memset(big, 'a', sizeof big);
	dh_open(&c);
	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		name_everywhere(&c, names[i].s, names[i].len, &id);
	name_everywhere(&c, big, sizeof big, &id);
	ck_assert_uint_eq(session_count(&c), 1);
	dh_rq(&c, "create", id, "s", "name", names[i - 1].s + 1); /* 64: fine */
	dh_expect(&c, "ok", id);
	dh_rq(&c, "delete", id + 1, "s", "name", names[i - 1].s + 1);
	dh_expect(&c, "ok", id + 1);
	dh_close(&c);
	no_files();
	unharmed("hostile names");
	bystander_end();
	dh_stop();
}
END_TEST

/* Waits until no session generates; fails after ms. */
static void
idle(int ms, const char *what)
{
	struct dh_conn c;
	struct proto_msg *m;
	uint64_t busy = 1;
	int64_t t0 = now_ms();

	dh_open(&c);
	for (;;) {
		dh_rq(&c, "status", 5, "");
		m = dh_expect(&c, "ok", 5);
		ck_assert_int_eq(proto_get_u64(m, "busy", 1, 0, 1000, &busy,
		    NULL), 0);
		if (busy == 0 || now_ms() - t0 > ms)
			break;
		usleep(20000);
	}
	ck_assert_msg(busy == 0, "%s: still generating after %d ms", what, ms);
	dh_close(&c);
}

START_TEST(never_reads)
{
	static struct dh_conn a, b;
	struct proto_msg *m;
	int rcv = 4096, n, tokens = 0;
	uint64_t rss;

	dh_start(model, std_args, "--max-output", "65536", NULL);
	bystander_begin();
	dh_open(&a);
	setsockopt(a.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
	dh_rq(&a, "chat", 1, "ssbub", "name", "hog", "text", "go", "create", 1,
	    "max_tokens", (uint64_t)200000, "ignore_eos", 1);
	dh_open(&b);
	dh_rq(&b, "chat", 1, "ssbubf", "name", "reader", "text", "hi", "create",
	    1, "max_tokens", (uint64_t)300, "ignore_eos", 1, "temp", 0.0);
	ck_assert_str_eq(dh_drain(&b, 1, NULL, 0, NULL, 0, &n), "length");
	ck_assert_int_eq(n, 300);
	dh_close(&b);
	/* The hog was stopped long before its 200000 tokens. */
	idle(20000, "a client that never reads");
	rss = alive("a client that never reads");
	ck_assert_msg(rss < 200u << 20, "rss %llu bytes",
	    (unsigned long long)rss);
	while ((m = dh_next(&a)) != NULL && dh_is_kind(m, "token"))
		tokens++;
	ck_assert_msg(m != NULL && dh_is_kind(m, "error") &&
	    dh_code_is(m, "overflow") && dh_id_of(m) == 1, "no overflow");
	ck_assert_int_lt(tokens, 100000);
	dh_close(&a);
	unharmed("a client that never reads");
	bystander_end();
	dh_stop();
}
END_TEST

/*
 * A client that does not read, then sends a bad frame: sinkd is done
 * with it, so its request must stop (not run to max_tokens for nobody).
 */
START_TEST(never_reads_then_bad_frame)
{
	static struct dh_conn a;
	int rcv = 4096;

	dh_start(model, std_args, "--max-output", "65536", NULL);
	bystander_begin();
	dh_open(&a);
	setsockopt(a.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
	dh_rq(&a, "chat", 1, "ssbub", "name", "hog", "text", "go", "create", 1,
	    "max_tokens", (uint64_t)200000, "ignore_eos", 1);
	usleep(50000);
	dh_send_raw(&a, "\0\0\0\0", 4); /* length 0: a protocol error */
	idle(5000, "a client that never reads, after a bad frame");
	dh_close(&a);
	unharmed("a client that never reads, after a bad frame");
	bystander_end();
	dh_stop();
}
END_TEST

/* A raw request of n pairs (op, id as given; absent if NULL/-1). */
static void
ops_and_ids(struct dh_conn *c, const char *op, size_t oplen, int64_t id)
{
	struct raw r;

	raw_init(&r);
	msgpack_pack_map(&r.pk, (op != NULL) + (id >= 0));
	if (op != NULL) {
		raw_cstr(&r, "op");
		raw_str(&r, op, oplen);
	}
	if (id >= 0) {
		raw_cstr(&r, "id");
		msgpack_pack_uint64(&r.pk, (uint64_t)id);
	}
	raw_send(c, &r, 0);
}

START_TEST(bad_ops_and_ids)
{
	static const char *const unknown[] = { "frobnicate", "", "STATUS",
		"stat", "status ", "\xd1\x81\xd1\x82\xd0\xb0\xd1\x82\xd1"
		"\x83\xd1\x81", "statusstatusstatusstatusstatus12" };
	static char long_op[1001];
	struct dh_conn c;
	size_t i;
	int64_t id = 1;

	dh_start(model, std_args, NULL);
	bystander_begin();
	memset(long_op, 'x', sizeof long_op - 1);
	dh_open(&c);
	for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
		ops_and_ids(&c, unknown[i], strlen(unknown[i]), id);
		dh_expect_error(&c, (uint64_t)id++, "unknown_op", unknown[i]);
	}
	ops_and_ids(&c, "status\0", 7, id);
	dh_expect_error(&c, (uint64_t)id++, "unknown_op", "status NUL");
	ops_and_ids(&c, long_op, sizeof long_op - 1, id);
	dh_expect_error(&c, (uint64_t)id++, "unknown_op|bad_request",
	    "long op");
	ops_and_ids(&c, NULL, 0, id);
	dh_expect_error(&c, (uint64_t)id++, "bad_request", "missing op");
	ops_and_ids(&c, "status", 6, -1);
	dh_expect_error(&c, 0, "bad_request", "missing id");
	ops_and_ids(&c, NULL, 0, -1);
	dh_expect_error(&c, 0, "bad_request", "empty map");
	ops_and_ids(&c, "status", 6, 0);
	dh_expect_error(&c, 0, "bad_request", "id 0");
	ops_and_ids(&c, "status", 6, (int64_t)PROTO_ID_MAX + 1);
	dh_expect_error(&c, 0, "bad_request", "id 2^53 + 1");
	ops_and_ids(&c, "status", 6, INT64_MAX);
	dh_expect_error(&c, 0, "bad_request", "id 2^63 - 1");
	ops_and_ids(&c, "status", 6, (int64_t)PROTO_ID_MAX);
	dh_expect(&c, "ok", PROTO_ID_MAX); /* the largest id is fine */
	dh_rq(&c, "status", 1, "");
	dh_expect(&c, "ok", 1);
	dh_close(&c);
	unharmed("bad ops and ids");
	bystander_end();
	dh_stop();
}
END_TEST

/* sinkd runs in an empty rundir, to show it writes no files there. */
static void
setup(void)
{
	dh_setup("hostile", 1);
	dh_write_model(model, sizeof model, "tiny", 1);
}

static Suite *
hostile_suite(void)
{
	Suite *s = suite_create("daemon_hostile");
	TCase *tc = tcase_create("hostile");

	tcase_add_unchecked_fixture(tc, setup, dh_teardown);
	tcase_add_checked_fixture(tc, NULL, dh_each_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, random_bytes);
	tcase_add_test(tc, bad_frames);
	tcase_add_test(tc, deep_nesting);
	tcase_add_test(tc, wrong_types);
	tcase_add_test(tc, refused_chat_creates_nothing);
	tcase_add_test(tc, invalid_utf8);
	tcase_add_test(tc, hostile_names);
	tcase_add_test(tc, never_reads);
	tcase_add_test(tc, never_reads_then_bad_frame);
	tcase_add_test(tc, bad_ops_and_ids);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(hostile_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
