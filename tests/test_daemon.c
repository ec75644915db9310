/*
 * test_daemon: a real sinkd on a private socket, driven over the wire:
 * every operation, streaming, several requests in flight, queueing and
 * busy, cancel, a client that vanishes mid-reply, one that reads too
 * slowly, hostile frames, SIGTERM mid-reply, and the protocol man page
 * against the daemon's table of operations.  The model is a synthetic
 * one written at test time (no shared data needed).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto.h"
#include "quant.h"
#include "request.h"
#include "synth.h"

static char tmpdir[] = "/tmp/sinkd-test-daemon-XXXXXX";
static char model[600], sock[100];
static pid_t daemon_pid;

/* One connection: frames in, parsed messages out. */
struct conn {
	int fd;
	uint8_t buf[1 << 20];
	size_t len;
	struct proto_msg msg;
	int have;
	size_t used;	/* bytes of the frame msg was parsed from */
};

static void
make_model(void)
{
	struct synth_opts o = { .arch = "llama", .type = QT_F32, .seed = 9 };
	char cause[ERR_LEN] = "";

	synth_shape(&o, "tiny", NULL);
	snprintf(model, sizeof model, "%s/tiny.gguf", tmpdir);
	ck_assert_msg(synth_write(&o, model, cause) == 0, "%s", cause);
}

/* Whether a daemon accepts connections on sock. */
static int
answers(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), rc;

	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
	rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	close(fd);
	return rc == 0;
}

/* Starts sinkd with extra arguments (NULL-terminated). */
static void
start_daemon(const char *extra, ...)
{
	const char *bin = getenv("SINKD_BUILDDIR");
	char path[600];
	const char *argv[32];
	int n = 0, i;
	va_list ap;

	snprintf(path, sizeof path, "%s/sinkd", bin != NULL ? bin : ".");
	snprintf(sock, sizeof sock, "%.80s/s%d", tmpdir, (int)getpid() % 100000);
	argv[n++] = path;
	argv[n++] = "-m";
	argv[n++] = model;
	argv[n++] = "--socket";
	argv[n++] = sock;
	argv[n++] = "-t";
	argv[n++] = "1";
	argv[n++] = "--max-tokens";
	argv[n++] = "1000000";
	va_start(ap, extra);
	for (; extra != NULL && n < 30; extra = va_arg(ap, const char *))
		argv[n++] = extra;
	va_end(ap);
	argv[n] = NULL;
	daemon_pid = fork();
	ck_assert_int_ge(daemon_pid, 0);
	if (daemon_pid == 0) {
		execv(path, (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 500 && !answers(); i++)
		usleep(20000);
	ck_assert_msg(i < 500, "sinkd did not start");
}

/* Waits for sinkd to exit; its exit status. */
static int
wait_daemon(void)
{
	int st = 0, i;

	for (i = 0; i < 500; i++) {
		if (waitpid(daemon_pid, &st, WNOHANG) == daemon_pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 +
			    WTERMSIG(st);
		usleep(20000);
	}
	kill(daemon_pid, SIGKILL);
	waitpid(daemon_pid, &st, 0);
	return -1;
}

static void
stop_daemon(void)
{
	kill(daemon_pid, SIGTERM);
	ck_assert_int_eq(wait_daemon(), 0);
}

static void
conn_open(struct conn *c)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	memset(c, 0, sizeof *c);
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
	c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(c->fd, 0);
	ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&sun, sizeof sun),
	    0);
}

static void
conn_close(struct conn *c)
{
	if (c->have)
		proto_msg_free(&c->msg);
	c->have = 0;
	close(c->fd);
}

static void
send_raw(struct conn *c, const void *p, size_t n)
{
	ck_assert_int_eq(write(c->fd, p, n), (ssize_t)n);
}

static void
send_out(struct conn *c, struct proto_out *o)
{
	const char *data;
	size_t len;

	ck_assert_int_eq(proto_out_finish(o, PROTO_MAX_FRAME, &data, &len,
	    NULL), 0);
	send_raw(c, data, len);
	proto_out_free(o);
}

/*
 * Sends {op, id, ...}: each char of spec adds a key and a value: 's'
 * a string, 'u' a uint64_t, 'b' a flag (int), 'f' a double.
 */
static void
rq(struct conn *c, const char *op, uint64_t id, const char *spec, ...)
{
	struct proto_out o;
	va_list ap;
	const char *p;

	proto_out_init(&o);
	proto_pack_map(&o, 2 + strlen(spec));
	proto_pack_key(&o, "op");
	proto_pack_cstr(&o, op);
	proto_pack_key(&o, "id");
	proto_pack_u64(&o, id);
	va_start(ap, spec);
	for (p = spec; *p != '\0'; p++) {
		proto_pack_key(&o, va_arg(ap, const char *));
		if (*p == 's')
			proto_pack_cstr(&o, va_arg(ap, const char *));
		else if (*p == 'u')
			proto_pack_u64(&o, va_arg(ap, uint64_t));
		else if (*p == 'b')
			proto_pack_bool(&o, va_arg(ap, int));
		else
			proto_pack_f64(&o, va_arg(ap, double));
	}
	va_end(ap);
	send_out(c, &o);
}

/* The next message, or NULL when the daemon closed the connection. */
static struct proto_msg *
next(struct conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	size_t body;
	ssize_t n;
	int rc;

	if (c->have) {
		proto_msg_free(&c->msg);
		c->have = 0;
		memmove(c->buf, c->buf + c->used, c->len - c->used);
		c->len -= c->used;
	}
	for (;;) {
		rc = proto_frame_check(c->buf, c->len, sizeof c->buf - 4, &body,
		    NULL);
		ck_assert_int_ge(rc, 0);
		if (rc == 1)
			break;
		ck_assert_msg(poll(&pfd, 1, 20000) == 1, "no reply in 20 s");
		n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
		if (n <= 0)
			return NULL;
		c->len += (size_t)n;
	}
	ck_assert_int_eq(proto_msg_parse(&c->msg, c->buf + 4, body, NULL), 0);
	c->have = 1;
	c->used = 4 + body;
	return &c->msg;
}

static int
is_kind(const struct proto_msg *m, const char *kind)
{
	const char *k;
	size_t len;

	return m != NULL && proto_get_str(m, "kind", 1, 16, &k, &len, NULL) ==
	    0 && len == strlen(kind) && memcmp(k, kind, len) == 0;
}

static uint64_t
id_of(const struct proto_msg *m)
{
	uint64_t id = 0;

	proto_get_u64(m, "id", 1, 0, PROTO_ID_MAX, &id, NULL);
	return id;
}

/* The next message must be of this kind and id, with key == val if given. */
static struct proto_msg *
expect(struct conn *c, const char *kind, uint64_t id)
{
	struct proto_msg *m = next(c);
	const char *code = "", *msg = "";
	size_t l1 = 0, l2 = 0;

	ck_assert_msg(m != NULL, "connection closed, expected %s", kind);
	proto_get_str(m, "code", 0, 64, &code, &l1, NULL);
	proto_get_str(m, "message", 0, 1024, &msg, &l2, NULL);
	ck_assert_msg(is_kind(m, kind) && id_of(m) == id, "expected %s %llu, "
	    "got id %llu (%.*s: %.*s)", kind, (unsigned long long)id,
	    (unsigned long long)id_of(m), (int)l1, code, (int)l2, msg);
	return m;
}

static int
code_is(const struct proto_msg *m, const char *code)
{
	const char *got;
	size_t len;

	return proto_get_str(m, "code", 1, 64, &got, &len, NULL) == 0 &&
	    len == strlen(code) && memcmp(got, code, len) == 0;
}

static void
expect_error(struct conn *c, uint64_t id, const char *code)
{
	struct proto_msg *m = expect(c, "error", id);
	const char *got;
	size_t len;

	ck_assert_int_eq(proto_get_str(m, "code", 1, 64, &got, &len, NULL), 0);
	ck_assert_msg(len == strlen(code) && memcmp(got, code, len) == 0,
	    "error %.*s, expected %s", (int)len, got, code);
}

/* Reads a streamed reply to its end; its finish, its text in out. */
static const char *
drain(struct conn *c, uint64_t id, char *out, size_t cap, int *tokens)
{
	static char finish[32];
	struct proto_msg *m;
	const char *t;
	size_t len, n = 0;

	*tokens = 0;
	while ((m = next(c)) != NULL && is_kind(m, "token")) {
		ck_assert_int_eq(id_of(m), id);
		ck_assert_int_eq(proto_get_str(m, "text", 1, 1 << 20, &t, &len,
		    NULL), 0);
		if (n + len < cap) {
			memcpy(out + n, t, len);
			n += len;
		}
		(*tokens)++;
	}
	out[n] = '\0';
	ck_assert_msg(m != NULL && is_kind(m, "done") && id_of(m) == id,
	    "reply %llu did not end with done", (unsigned long long)id);
	ck_assert_int_eq(proto_get_str(m, "finish", 1, 16, &t, &len, NULL), 0);
	snprintf(finish, sizeof finish, "%.*s", (int)len, t);
	return finish;
}

static void
setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	make_model();
	signal(SIGPIPE, SIG_IGN);
}

/* A test that failed half-way leaves no daemon behind. */
static void
each_teardown(void)
{
	if (daemon_pid > 0 && kill(daemon_pid, 0) == 0) {
		kill(daemon_pid, SIGKILL);
		waitpid(daemon_pid, NULL, 0);
	}
	daemon_pid = 0;
}

static void
teardown(void)
{
	char cmd[700];

	each_teardown();
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

START_TEST(sessions_and_chat)
{
	struct conn c;
	struct proto_msg *m;
	const msgpack_object *arr;
	char text[65536];
	int n;

	start_daemon(NULL);
	conn_open(&c);
	rq(&c, "hello", 1, "u", "proto", (uint64_t)1);
	expect(&c, "ok", 1);
	rq(&c, "hello", 2, "u", "proto", (uint64_t)7);
	expect_error(&c, 2, "version");
	rq(&c, "create", 3, "suu", "name", "s1", "cache", (uint64_t)32,
	    "sinks", (uint64_t)2);
	expect(&c, "ok", 3);
	rq(&c, "create", 4, "s", "name", "s1");
	expect_error(&c, 4, "exists");
	rq(&c, "create", 5, "s", "name", "../x");
	expect_error(&c, 5, "invalid_name");
	rq(&c, "create", 6, "su", "name", "s2", "cache", (uint64_t)2);
	expect_error(&c, 6, "bad_request");
	/* A reply far longer than the cache: the stream evicts as it goes. */
	rq(&c, "chat", 7, "ssubf", "name", "s1", "text", "hello there",
	    "max_tokens", (uint64_t)80, "ignore_eos", 1, "temp", 0.0);
	ck_assert_str_eq(drain(&c, 7, text, sizeof text, &n), "length");
	ck_assert_int_ge(n, 1);
	rq(&c, "info", 8, "s", "name", "s1");
	m = expect(&c, "ok", 8);
	arr = proto_get(m, "recent");
	ck_assert_ptr_nonnull(arr);
	ck_assert_int_eq(arr->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_int_eq(arr->via.array.size, 2);
	rq(&c, "feed", 9, "ss", "name", "s1", "text", "some context");
	ck_assert_str_eq(drain(&c, 9, text, sizeof text, &n), "fed");
	rq(&c, "complete", 10, "ssu", "name", "s1", "text", "and then",
	    "max_tokens", (uint64_t)5);
	drain(&c, 10, text, sizeof text, &n);
	ck_assert_int_le(n, 5);
	rq(&c, "list", 11, "");
	m = expect(&c, "ok", 11);
	ck_assert_int_eq(proto_get(m, "sessions")->via.array.size, 1);
	rq(&c, "reset", 12, "s", "name", "s1");
	expect(&c, "ok", 12);
	rq(&c, "delete", 13, "s", "name", "s1");
	expect(&c, "ok", 13);
	rq(&c, "info", 14, "s", "name", "s1");
	expect_error(&c, 14, "no_such_session");
	rq(&c, "status", 15, "");
	expect(&c, "ok", 15);
	rq(&c, "frobnicate", 16, "");
	expect_error(&c, 16, "unknown_op");
	rq(&c, "chat", 17, "ssb", "name", "new", "text", "hi", "create", 1);
	drain(&c, 17, text, sizeof text, &n);
	conn_close(&c);
	stop_daemon();
}
END_TEST

/* Two sessions stream at once on one connection; status answers too. */
START_TEST(requests_in_flight)
{
	struct conn c;
	struct proto_msg *m;
	int done = 0, got[2] = { 0, 0 }, status = 0;

	start_daemon(NULL);
	conn_open(&c);
	rq(&c, "chat", 1, "ssbub", "name", "a", "text", "one", "create", 1,
	    "max_tokens", (uint64_t)60, "ignore_eos", 1);
	rq(&c, "chat", 2, "ssbub", "name", "b", "text", "two", "create", 1,
	    "max_tokens", (uint64_t)60, "ignore_eos", 1);
	rq(&c, "status", 3, "");
	while (done < 2 && (m = next(&c)) != NULL) {
		uint64_t id = id_of(m);
		if (id == 3) {
			ck_assert(is_kind(m, "ok"));
			status = 1;
		} else if (is_kind(m, "token"))
			got[id - 1]++;
		else if (is_kind(m, "done"))
			done++;
	}
	ck_assert_int_eq(done, 2);
	ck_assert(status);
	ck_assert_int_eq(got[0], 60); /* one event per token */
	ck_assert_int_eq(got[1], 60);
	conn_close(&c);
	stop_daemon();
}
END_TEST

/* A queue of one: the third request on a session is refused. */
START_TEST(busy_and_cancel)
{
	struct conn c;
	struct proto_msg *m;
	char text[1 << 16];
	int n, cancelled = 0, finished = 0, queued_cancelled = 0;

	start_daemon("--max-queue", "1", NULL);
	conn_open(&c);
	rq(&c, "create", 1, "s", "name", "s");
	expect(&c, "ok", 1);
	rq(&c, "chat", 2, "ssub", "name", "s", "text", "x", "max_tokens",
	    (uint64_t)100000, "ignore_eos", 1);
	rq(&c, "chat", 3, "ssu", "name", "s", "text", "y", "max_tokens",
	    (uint64_t)3);
	rq(&c, "chat", 4, "ss", "name", "s", "text", "z");
	rq(&c, "cancel", 5, "u", "target", (uint64_t)3);
	rq(&c, "cancel", 6, "u", "target", (uint64_t)2);
	while (finished < 5 && (m = next(&c)) != NULL) {
		uint64_t id = id_of(m);
		if (is_kind(m, "token"))
			continue;
		finished++;
		if (id == 4)
			ck_assert(is_kind(m, "error") && code_is(m, "busy"));
		if (id == 3 && is_kind(m, "error"))
			queued_cancelled = 1;
		if (id == 2 && is_kind(m, "done"))
			cancelled = 1;
	}
	ck_assert(queued_cancelled);
	ck_assert(cancelled);
	/* The session is idle and usable again. */
	rq(&c, "chat", 7, "ssu", "name", "s", "text", "again", "max_tokens",
	    (uint64_t)4);
	drain(&c, 7, text, sizeof text, &n);
	conn_close(&c);
	stop_daemon();
}
END_TEST

/* A client that goes away mid-reply leaves a usable session. */
START_TEST(vanishing_client)
{
	struct conn c, d;
	char text[1 << 16];
	int n, i;

	start_daemon(NULL);
	conn_open(&c);
	rq(&c, "chat", 1, "ssbub", "name", "v", "text", "go", "create", 1,
	    "max_tokens", (uint64_t)1000000, "ignore_eos", 1);
	expect(&c, "token", 1);
	conn_close(&c);
	conn_open(&d);
	for (i = 0; i < 100; i++) { /* the turn stops at a token boundary */
		struct proto_msg *m;
		rq(&d, "status", 100 + (uint64_t)i, "");
		m = expect(&d, "ok", 100 + (uint64_t)i);
		uint64_t busy = 1;
		proto_get_u64(m, "busy", 1, 0, 1000, &busy, NULL);
		if (busy == 0)
			break;
		usleep(20000);
	}
	ck_assert_int_lt(i, 100);
	rq(&d, "chat", 2, "ssu", "name", "v", "text", "again", "max_tokens",
	    (uint64_t)3);
	drain(&d, 2, text, sizeof text, &n);
	conn_close(&d);
	stop_daemon();
}
END_TEST

/* A client that does not read: its reply is cancelled, sinkd lives. */
START_TEST(slow_reader)
{
	struct conn c, d;
	struct proto_msg *m;
	int overflow = 0, rcv = 4096;

	start_daemon("--max-output", "8192", NULL);
	conn_open(&c);
	setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
	rq(&c, "chat", 1, "ssbub", "name", "slow", "text", "go", "create", 1,
	    "max_tokens", (uint64_t)200000, "ignore_eos", 1);
	sleep(2);
	while ((m = next(&c)) != NULL) {
		if (is_kind(m, "token"))
			continue;
		overflow = is_kind(m, "error") && code_is(m, "overflow");
		break;
	}
	ck_assert(overflow);
	conn_close(&c);
	conn_open(&d);
	rq(&d, "status", 2, "");
	expect(&d, "ok", 2);
	conn_close(&d);
	stop_daemon();
}
END_TEST

/*
 * A client that sends many requests and reads nothing: sinkd stops
 * reading from it once its replies pile up, and resumes when the client
 * reads; no reply is lost, none reordered.
 */
START_TEST(flood_without_reading)
{
	struct conn c;
	struct proto_out o;
	const char *data;
	size_t len, off = 0, got = 0;
	uint8_t *all = malloc(3000 * 64);
	uint64_t i, n = 3000;
	ssize_t w;

	start_daemon("--max-output", "8192", NULL);
	conn_open(&c);
	ck_assert_ptr_nonnull(all);
	for (i = 1, len = 0; i <= n; i++) { /* all the requests, one buffer */
		const char *d;
		size_t l;
		proto_out_init(&o);
		proto_encode_head(&o, i, PROTO_K_OK, 1); /* any map with id */
		proto_pack_key(&o, "op");
		proto_pack_cstr(&o, "status");
		ck_assert_int_eq(proto_out_finish(&o, 1 << 20, &d, &l, NULL), 0);
		memcpy(all + len, d, l);
		len += l;
		proto_out_free(&o);
	}
	/* Write without reading until the daemon stops taking them. */
	fcntl(c.fd, F_SETFL, O_NONBLOCK);
	while (off < len && (w = write(c.fd, all + off, len - off)) > 0)
		off += (size_t)w;
	sleep(1);
	fcntl(c.fd, F_SETFL, 0);
	/* Then read, writing the rest as the daemon takes it again. */
	while (got < n) {
		if (off < len && (w = send(c.fd, all + off, len - off,
		    MSG_DONTWAIT)) > 0)
			off += (size_t)w;
		expect(&c, "ok", ++got);
	}
	ck_assert_uint_eq(off, len);
	(void)data;
	free(all);
	conn_close(&c);
	stop_daemon();
}
END_TEST

/* Bad frames: an error, the connection closed, the daemon unharmed. */
START_TEST(hostile_frames)
{
	static const uint8_t zero[] = { 0, 0, 0, 0 };
	static const uint8_t huge[] = { 0x7f, 0xff, 0xff, 0xff };
	static const uint8_t killer[] = { 0, 0, 0, 5, 0xdd, 0xff, 0xff, 0xff,
		0xff };
	static const uint8_t notmap[] = { 0, 0, 0, 1, 0x05 };
	static const uint8_t *const frames[] = { zero, huge, killer, notmap };
	static const size_t lens[] = { 4, 4, 9, 5 };
	static const char *const codes[] = { "bad_request", "too_large",
		"bad_request", "bad_request" };
	struct conn c;
	size_t i;

	start_daemon(NULL);
	for (i = 0; i < 4; i++) {
		conn_open(&c);
		send_raw(&c, frames[i], lens[i]);
		expect_error(&c, 0, codes[i]);
		ck_assert_ptr_null(next(&c)); /* closed */
		conn_close(&c);
	}
	conn_open(&c);
	rq(&c, "chat", 1, "s", "name", "x"); /* no text, no session */
	expect_error(&c, 1, "no_such_session");
	rq(&c, "create", 2, "su", "name", "x", "cache", (uint64_t)1 << 40);
	expect_error(&c, 2, "bad_request");
	rq(&c, "create", 3, "ss", "name", "x", "mode", "fast");
	expect_error(&c, 3, "bad_request");
	rq(&c, "status", 4, "");
	expect(&c, "ok", 4);
	conn_close(&c);
	stop_daemon();
}
END_TEST

/* SIGTERM mid-reply: the reply ends (cancelled), sinkd exits 0. */
START_TEST(sigterm_mid_reply)
{
	struct conn c;
	char text[1 << 16];
	int n;

	start_daemon(NULL);
	conn_open(&c);
	rq(&c, "chat", 1, "ssbub", "name", "t", "text", "go", "create", 1,
	    "max_tokens", (uint64_t)1000000, "ignore_eos", 1);
	expect(&c, "token", 1);
	kill(daemon_pid, SIGTERM);
	ck_assert_str_eq(drain(&c, 1, text, sizeof text, &n), "cancelled");
	ck_assert_int_eq(wait_daemon(), 0);
	ck_assert_int_ne(access(sock, F_OK), 0); /* the socket is gone */
	conn_close(&c);
}
END_TEST

/*
 * A peer of another user is refused (SO_PEERCRED): only the daemon's
 * user and root are served.  Needs root to become another user.
 */
START_TEST(other_users_refused)
{
	pid_t pid;
	int st;

	if (geteuid() != 0) {
		printf("SKIP: other_users_refused needs root\n");
		return;
	}
	start_daemon(NULL);
	chmod(tmpdir, 0755);
	chmod(sock, 0666); /* let the socket mode not be what refuses */
	if ((pid = fork()) == 0) {
		/* No check asserts here: this is not the test's process. */
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		static const char status[] = "\0\0\0\x0f\x82\xa2op\xa6status"
		    "\xa2id\x01";
		char b[16];
		int fd;
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(3);
		snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
		    connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
			_exit(4);
		signal(SIGPIPE, SIG_IGN);
		(void)!write(fd, status, sizeof status - 1);
		/* refused: closed without a reply */
		_exit(read(fd, b, sizeof b) <= 0 ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
	stop_daemon();
}
END_TEST

/*
 * A turn's own seed makes it reproducible and different from another
 * seed's; a reply may hold NUL bytes and the transcript keeps them.
 */
START_TEST(turn_seeds)
{
	struct conn c;
	char a[8192], b[8192], d[8192];
	int n;

	start_daemon(NULL);
	conn_open(&c);
	rq(&c, "complete", 1, "ssbuub", "name", "x", "text", "Once upon",
	    "create", 1, "max_tokens", (uint64_t)40, "seed", (uint64_t)1,
	    "ignore_eos", 1);
	drain(&c, 1, a, sizeof a, &n);
	rq(&c, "complete", 2, "ssbuub", "name", "y", "text", "Once upon",
	    "create", 1, "max_tokens", (uint64_t)40, "seed", (uint64_t)2,
	    "ignore_eos", 1);
	drain(&c, 2, b, sizeof b, &n);
	rq(&c, "complete", 3, "ssbuub", "name", "z", "text", "Once upon",
	    "create", 1, "max_tokens", (uint64_t)40, "seed", (uint64_t)1,
	    "ignore_eos", 1);
	drain(&c, 3, d, sizeof d, &n);
	ck_assert_str_ne(a, b);
	ck_assert_str_eq(a, d);
	conn_close(&c);
	stop_daemon();
}
END_TEST

/* A long text reports its encoding as it goes: progress, then done. */
START_TEST(progress_of_a_long_feed)
{
	struct conn c;
	struct proto_msg *m;
	static char text[20000];
	uint64_t done, total, last = 0;
	int n = 0;
	size_t i;

	for (i = 0; i + 1 < sizeof text; i++)
		text[i] = "abcde fghij "[i % 12];
	start_daemon(NULL);
	conn_open(&c);
	rq(&c, "feed", 1, "ssb", "name", "p", "text", text, "create", 1);
	while ((m = next(&c)) != NULL && is_kind(m, "progress")) {
		ck_assert_int_eq(proto_get_u64(m, "done", 1, 1, 1 << 30, &done,
		    NULL), 0);
		ck_assert_int_eq(proto_get_u64(m, "total", 1, 1, 1 << 30,
		    &total, NULL), 0);
		ck_assert(done > last && done < total);
		last = done;
		n++;
	}
	ck_assert_msg(n >= 2, "%d progress messages", n);
	ck_assert(is_kind(m, "done") && id_of(m) == 1);
	conn_close(&c);
	stop_daemon();
}
END_TEST

/* The limits: clients, prompt size; and the shutdown op. */
START_TEST(limits_and_shutdown)
{
	struct conn a, b;
	char big[300];

	start_daemon("--max-clients", "1", "--max-prompt", "100", NULL);
	usleep(200000); /* start_daemon's probe connection is gone */
	conn_open(&a);
	rq(&a, "status", 1, "");
	expect(&a, "ok", 1);
	conn_open(&b);
	expect_error(&b, 0, "limit");
	ck_assert_ptr_null(next(&b));
	conn_close(&b);
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	rq(&a, "chat", 2, "ssb", "name", "p", "text", big, "create", 1);
	expect_error(&a, 2, "too_large");
	rq(&a, "shutdown", 3, "");
	expect(&a, "ok", 3);
	ck_assert_int_eq(wait_daemon(), 0);
	conn_close(&a);
}
END_TEST

/* SIGHUP reopens the log file, after a rotation. */
START_TEST(sighup_reopens_log)
{
	char log[700], old[720], cmd[1600];
	int i;

	snprintf(log, sizeof log, "%s/sinkd.log", tmpdir);
	snprintf(old, sizeof old, "%s.1", log);
	start_daemon("--log", log, NULL);
	ck_assert_int_eq(rename(log, old), 0);
	kill(daemon_pid, SIGHUP);
	for (i = 0; i < 100 && access(log, F_OK) != 0; i++)
		usleep(20000);
	snprintf(cmd, sizeof cmd, "grep -q 'log reopened' %s && grep -q "
	    "serving %s", log, old);
	ck_assert_int_eq(system(cmd), 0);
	stop_daemon();
}
END_TEST

/* A second sinkd on the same socket is refused; a stale one replaced. */
START_TEST(socket_ownership)
{
	char cmd[2048];
	const char *bin = getenv("SINKD_BUILDDIR");

	start_daemon(NULL);
	snprintf(cmd, sizeof cmd, "%s/sinkd -m %s --socket %s 2>%s/err; "
	    "test $? -ne 0 && grep -q 'already serves' %s/err",
	    bin != NULL ? bin : ".", model, sock, tmpdir, tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	kill(daemon_pid, SIGKILL);
	wait_daemon();
	ck_assert_int_eq(access(sock, F_OK), 0); /* stale, left by -9 */
	start_daemon(NULL);
	stop_daemon();
}
END_TEST

/* Every operation sinkd-protocol(7) names is served, and no other. */
START_TEST(man_page_lists_the_ops)
{
	const char *src = getenv("SINKD_SRCDIR");
	const char *const *ops = request_ops();
	char path[700], line[512], prev[512] = "", seen[64][32];
	FILE *f;
	int in_ops = 0, n = 0, i, j, found;

	snprintf(path, sizeof path, "%s/man/sinkd-protocol.7",
	    src != NULL ? src : "..");
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	while (fgets(line, sizeof line, f) != NULL && n < 64) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, ".SH", 3) == 0)
			in_ops = strcmp(line, ".SH OPERATIONS") == 0;
		else if (in_ops && strcmp(prev, ".TP") == 0 &&
		    strncmp(line, ".B ", 3) == 0)
			snprintf(seen[n++], sizeof seen[0], "%.31s", line + 3);
		snprintf(prev, sizeof prev, "%s", line);
	}
	fclose(f);
	ck_assert_int_gt(n, 0);
	for (i = 0; ops[i] != NULL; i++) {
		for (found = 0, j = 0; j < n; j++)
			found |= strcmp(seen[j], ops[i]) == 0;
		ck_assert_msg(found, "op %s is not in %s", ops[i], path);
	}
	for (j = 0; j < n; j++) {
		for (found = 0, i = 0; ops[i] != NULL; i++)
			found |= strcmp(seen[j], ops[i]) == 0;
		ck_assert_msg(found, "%s names op %s, sinkd does not serve it",
		    path, seen[j]);
	}
}
END_TEST

static Suite *
daemon_suite(void)
{
	Suite *s = suite_create("daemon");
	TCase *tc = tcase_create("daemon");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_add_checked_fixture(tc, NULL, each_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, man_page_lists_the_ops);
	tcase_add_test(tc, sessions_and_chat);
	tcase_add_test(tc, requests_in_flight);
	tcase_add_test(tc, busy_and_cancel);
	tcase_add_test(tc, vanishing_client);
	tcase_add_test(tc, slow_reader);
	tcase_add_test(tc, flood_without_reading);
	tcase_add_test(tc, hostile_frames);
	tcase_add_test(tc, sigterm_mid_reply);
	tcase_add_test(tc, socket_ownership);
	tcase_add_test(tc, sighup_reopens_log);
	tcase_add_test(tc, other_users_refused);
	tcase_add_test(tc, limits_and_shutdown);
	tcase_add_test(tc, progress_of_a_long_feed);
	tcase_add_test(tc, turn_seeds);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(daemon_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
