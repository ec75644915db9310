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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_harness.h"
#include "proto.h"
#include "request.h"

/* The arguments every sinkd here gets, before a test's own. */
static const char *const std_args[] = { "-t", "1", "--max-tokens",
	"1000000", NULL };
static char model[600];

static void
setup(void)
{
	dh_setup("daemon", 0);
	dh_write_model(model, sizeof model, "tiny", 1);
}

START_TEST(sessions_and_chat)
{
	struct dh_conn c;
	struct proto_msg *m;
	const msgpack_object *arr;
	char text[65536];
	int n;

	dh_start(model, std_args, NULL);
	dh_open(&c);
	dh_rq(&c, "hello", 1, "u", "proto", (uint64_t)1);
	dh_expect(&c, "ok", 1);
	dh_rq(&c, "hello", 2, "u", "proto", (uint64_t)7);
	dh_expect_error(&c, 2, "version", NULL);
	dh_rq(&c, "create", 3, "suu", "name", "s1", "cache", (uint64_t)32,
	    "sinks", (uint64_t)2);
	dh_expect(&c, "ok", 3);
	dh_rq(&c, "create", 4, "s", "name", "s1");
	dh_expect_error(&c, 4, "exists", NULL);
	dh_rq(&c, "create", 5, "s", "name", "../x");
	dh_expect_error(&c, 5, "invalid_name", NULL);
	dh_rq(&c, "create", 6, "su", "name", "s2", "cache", (uint64_t)2);
	dh_expect_error(&c, 6, "bad_request", NULL);
	/* A reply far longer than the cache: the stream evicts as it goes. */
	dh_rq(&c, "chat", 7, "ssubf", "name", "s1", "text", "hello there",
	    "max_tokens", (uint64_t)80, "ignore_eos", 1, "temp", 0.0);
	ck_assert_str_eq(dh_drain(&c, 7, text, sizeof text, NULL, 0, &n),
	    "length");
	ck_assert_int_ge(n, 1);
	dh_rq(&c, "info", 8, "s", "name", "s1");
	m = dh_expect(&c, "ok", 8);
	arr = proto_get(m, "recent");
	ck_assert_ptr_nonnull(arr);
	ck_assert_int_eq(arr->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_int_eq(arr->via.array.size, 2);
	dh_rq(&c, "feed", 9, "ss", "name", "s1", "text", "some context");
	ck_assert_str_eq(dh_drain(&c, 9, text, sizeof text, NULL, 0, &n),
	    "fed");
	dh_rq(&c, "complete", 10, "ssu", "name", "s1", "text", "and then",
	    "max_tokens", (uint64_t)5);
	dh_drain(&c, 10, text, sizeof text, NULL, 0, &n);
	ck_assert_int_le(n, 5);
	dh_rq(&c, "list", 11, "");
	m = dh_expect(&c, "ok", 11);
	ck_assert_int_eq(proto_get(m, "sessions")->via.array.size, 1);
	dh_rq(&c, "reset", 12, "s", "name", "s1");
	dh_expect(&c, "ok", 12);
	dh_rq(&c, "delete", 13, "s", "name", "s1");
	dh_expect(&c, "ok", 13);
	dh_rq(&c, "info", 14, "s", "name", "s1");
	dh_expect_error(&c, 14, "no_such_session", NULL);
	dh_rq(&c, "status", 15, "");
	dh_expect(&c, "ok", 15);
	dh_rq(&c, "frobnicate", 16, "");
	dh_expect_error(&c, 16, "unknown_op", NULL);
	dh_rq(&c, "chat", 17, "ssb", "name", "new", "text", "hi", "create", 1);
	dh_drain(&c, 17, text, sizeof text, NULL, 0, &n);
	dh_close(&c);
	dh_stop();
}
END_TEST

/* Two sessions stream at once on one connection; status answers too. */
START_TEST(requests_in_flight)
{
	struct dh_conn c;
	struct proto_msg *m;
	int done = 0, got[2] = { 0, 0 }, status = 0;

	dh_start(model, std_args, NULL);
	dh_open(&c);
	dh_rq(&c, "chat", 1, "ssbub", "name", "a", "text", "one", "create", 1,
	    "max_tokens", (uint64_t)60, "ignore_eos", 1);
	dh_rq(&c, "chat", 2, "ssbub", "name", "b", "text", "two", "create", 1,
	    "max_tokens", (uint64_t)60, "ignore_eos", 1);
	dh_rq(&c, "status", 3, "");
	while (done < 2 && (m = dh_next(&c)) != NULL) {
		uint64_t id = dh_id_of(m);
		if (id == 3) {
			ck_assert(dh_is_kind(m, "ok"));
			status = 1;
		} else if (dh_is_kind(m, "token"))
			got[id - 1]++;
		else if (dh_is_kind(m, "done"))
			done++;
	}
	ck_assert_int_eq(done, 2);
	ck_assert(status);
	ck_assert_int_eq(got[0], 60); /* one event per token */
	ck_assert_int_eq(got[1], 60);
	dh_close(&c);
	dh_stop();
}
END_TEST

/* A queue of one: the third request on a session is refused. */
START_TEST(busy_and_cancel)
{
	struct dh_conn c;
	struct proto_msg *m;
	char text[1 << 16];
	int n, cancelled = 0, finished = 0, queued_cancelled = 0;

	dh_start(model, std_args, "--max-queue", "1", NULL);
	dh_open(&c);
	dh_rq(&c, "create", 1, "s", "name", "s");
	dh_expect(&c, "ok", 1);
	dh_rq(&c, "chat", 2, "ssub", "name", "s", "text", "x", "max_tokens",
	    (uint64_t)100000, "ignore_eos", 1);
	dh_rq(&c, "chat", 3, "ssu", "name", "s", "text", "y", "max_tokens",
	    (uint64_t)3);
	dh_rq(&c, "chat", 4, "ss", "name", "s", "text", "z");
	dh_rq(&c, "cancel", 5, "u", "target", (uint64_t)3);
	dh_rq(&c, "cancel", 6, "u", "target", (uint64_t)2);
	while (finished < 5 && (m = dh_next(&c)) != NULL) {
		uint64_t id = dh_id_of(m);
		if (dh_is_kind(m, "token"))
			continue;
		finished++;
		if (id == 4)
			ck_assert(dh_is_kind(m, "error") &&
			    dh_code_is(m, "busy"));
		if (id == 3 && dh_is_kind(m, "error"))
			queued_cancelled = 1;
		if (id == 2 && dh_is_kind(m, "done"))
			cancelled = 1;
	}
	ck_assert(queued_cancelled);
	ck_assert(cancelled);
	/* The session is idle and usable again. */
	dh_rq(&c, "chat", 7, "ssu", "name", "s", "text", "again", "max_tokens",
	    (uint64_t)4);
	dh_drain(&c, 7, text, sizeof text, NULL, 0, &n);
	dh_close(&c);
	dh_stop();
}
END_TEST

/* A client that goes away mid-reply leaves a usable session. */
START_TEST(vanishing_client)
{
	struct dh_conn c, d;
	char text[1 << 16];
	int n, i;

	dh_start(model, std_args, NULL);
	dh_open(&c);
	dh_rq(&c, "chat", 1, "ssbub", "name", "v", "text", "go", "create", 1,
	    "max_tokens", (uint64_t)1000000, "ignore_eos", 1);
	dh_expect(&c, "token", 1);
	dh_close(&c);
	dh_open(&d);
	for (i = 0; i < 100; i++) { /* the turn stops at a token boundary */
		struct proto_msg *m;
		dh_rq(&d, "status", 100 + (uint64_t)i, "");
		m = dh_expect(&d, "ok", 100 + (uint64_t)i);
		uint64_t busy = 1;
		proto_get_u64(m, "busy", 1, 0, 1000, &busy, NULL);
		if (busy == 0)
			break;
		usleep(20000);
	}
	ck_assert_int_lt(i, 100);
	dh_rq(&d, "chat", 2, "ssu", "name", "v", "text", "again", "max_tokens",
	    (uint64_t)3);
	dh_drain(&d, 2, text, sizeof text, NULL, 0, &n);
	dh_close(&d);
	dh_stop();
}
END_TEST

/* A client that does not read: its reply is cancelled, sinkd lives. */
START_TEST(slow_reader)
{
	struct dh_conn c, d;
	struct proto_msg *m;
	int overflow = 0, rcv = 4096;

	dh_start(model, std_args, "--max-output", "8192", NULL);
	dh_open(&c);
	setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
	dh_rq(&c, "chat", 1, "ssbub", "name", "slow", "text", "go", "create", 1,
	    "max_tokens", (uint64_t)200000, "ignore_eos", 1);
	sleep(2);
	while ((m = dh_next(&c)) != NULL) {
		if (dh_is_kind(m, "token"))
			continue;
		overflow = dh_is_kind(m, "error") && dh_code_is(m, "overflow");
		break;
	}
	ck_assert(overflow);
	dh_close(&c);
	dh_open(&d);
	dh_rq(&d, "status", 2, "");
	dh_expect(&d, "ok", 2);
	dh_close(&d);
	dh_stop();
}
END_TEST

/*
 * A client that sends many requests and reads nothing: sinkd stops
 * reading from it once its replies pile up, and resumes when the client
 * reads; no reply is lost, none reordered.
 */
START_TEST(flood_without_reading)
{
	struct dh_conn c;
	struct proto_out o;
	const char *data;
	size_t len, off = 0, got = 0;
	uint8_t *all = malloc(3000 * 64);
	uint64_t i, n = 3000;
	ssize_t w;

	dh_start(model, std_args, "--max-output", "8192", NULL);
	dh_open(&c);
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
		dh_expect(&c, "ok", ++got);
	}
	ck_assert_uint_eq(off, len);
	(void)data;
	free(all);
	dh_close(&c);
	dh_stop();
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
	struct dh_conn c;
	size_t i;

	dh_start(model, std_args, NULL);
	for (i = 0; i < 4; i++) {
		dh_open(&c);
		dh_send_raw(&c, frames[i], lens[i]);
		dh_expect_error(&c, 0, codes[i], NULL);
		ck_assert_ptr_null(dh_next(&c)); /* closed */
		dh_close(&c);
	}
	dh_open(&c);
	dh_rq(&c, "chat", 1, "s", "name", "x"); /* no text, no session */
	dh_expect_error(&c, 1, "no_such_session", NULL);
	dh_rq(&c, "create", 2, "su", "name", "x", "cache", (uint64_t)1 << 40);
	dh_expect_error(&c, 2, "bad_request", NULL);
	dh_rq(&c, "create", 3, "ss", "name", "x", "mode", "fast");
	dh_expect_error(&c, 3, "bad_request", NULL);
	dh_rq(&c, "status", 4, "");
	dh_expect(&c, "ok", 4);
	dh_close(&c);
	dh_stop();
}
END_TEST

/* SIGTERM mid-reply: the reply ends (cancelled), sinkd exits 0. */
START_TEST(sigterm_mid_reply)
{
	struct dh_conn c;
	char text[1 << 16];
	int n;

	dh_start(model, std_args, NULL);
	dh_open(&c);
	dh_rq(&c, "chat", 1, "ssbub", "name", "t", "text", "go", "create", 1,
	    "max_tokens", (uint64_t)1000000, "ignore_eos", 1);
	dh_expect(&c, "token", 1);
	kill(dh_pid(), SIGTERM);
	ck_assert_str_eq(dh_drain(&c, 1, text, sizeof text, NULL, 0, &n),
	    "cancelled");
	ck_assert_int_eq(dh_wait(), 0);
	ck_assert_int_ne(access(dh_sock(), F_OK), 0); /* the socket is gone */
	dh_close(&c);
}
END_TEST

/*
 * A peer of another user is refused (SO_PEERCRED): only the daemon's
 * user and root are served; the refused one is told `denied`, and its
 * request is never answered.  Needs root to become another user.
 */
START_TEST(other_users_refused)
{
	pid_t pid;
	int st;

	if (geteuid() != 0) {
		printf("SKIP: other_users_refused needs root\n");
		return;
	}
	dh_start(model, std_args, NULL);
	chmod(dh_tmpdir(), 0755);
	chmod(dh_sock(), 0666); /* let the socket mode not be what refuses */
	if ((pid = fork()) == 0) {
		/* No check asserts here: this is not the test's process. */
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		static const char status[] = "\0\0\0\x0f\x82\xa2op\xa6status"
		    "\xa2id\x01";
		char b[1024];
		size_t got = 0;
		ssize_t n;
		int fd;
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(3);
		snprintf(sun.sun_path, sizeof sun.sun_path, "%s", dh_sock());
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
		    connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
			_exit(4);
		signal(SIGPIPE, SIG_IGN);
		(void)!write(fd, status, sizeof status - 1);
		/* refused: one error frame, then the end */
		while (got < sizeof b && (n = read(fd, b + got,
		    sizeof b - got)) > 0)
			got += (size_t)n;
		if (memmem(b, got, "denied", 6) == NULL)
			_exit(5);
		_exit(memmem(b, got, "\xa2ok", 3) == NULL ? 0 : 6);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
	dh_stop();
}
END_TEST

/*
 * A turn's own seed makes it reproducible and different from another
 * seed's; a reply may hold NUL bytes and the transcript keeps them.
 */
START_TEST(turn_seeds)
{
	struct dh_conn c;
	char a[8192], b[8192], d[8192];
	int n;

	dh_start(model, std_args, NULL);
	dh_open(&c);
	dh_rq(&c, "complete", 1, "ssbuub", "name", "x", "text", "Once upon",
	    "create", 1, "max_tokens", (uint64_t)40, "seed", (uint64_t)1,
	    "ignore_eos", 1);
	dh_drain(&c, 1, a, sizeof a, NULL, 0, &n);
	dh_rq(&c, "complete", 2, "ssbuub", "name", "y", "text", "Once upon",
	    "create", 1, "max_tokens", (uint64_t)40, "seed", (uint64_t)2,
	    "ignore_eos", 1);
	dh_drain(&c, 2, b, sizeof b, NULL, 0, &n);
	dh_rq(&c, "complete", 3, "ssbuub", "name", "z", "text", "Once upon",
	    "create", 1, "max_tokens", (uint64_t)40, "seed", (uint64_t)1,
	    "ignore_eos", 1);
	dh_drain(&c, 3, d, sizeof d, NULL, 0, &n);
	ck_assert_str_ne(a, b);
	ck_assert_str_eq(a, d);
	dh_close(&c);
	dh_stop();
}
END_TEST

/* A long text reports its encoding as it goes: progress, then done. */
START_TEST(progress_of_a_long_feed)
{
	struct dh_conn c;
	struct proto_msg *m;
	static char text[20000];
	uint64_t done, total, last = 0;
	int n = 0;
	size_t i;

	for (i = 0; i + 1 < sizeof text; i++)
		text[i] = "abcde fghij "[i % 12];
	dh_start(model, std_args, NULL);
	dh_open(&c);
	dh_rq(&c, "feed", 1, "ssb", "name", "p", "text", text, "create", 1);
	while ((m = dh_next(&c)) != NULL && dh_is_kind(m, "progress")) {
		ck_assert_int_eq(proto_get_u64(m, "done", 1, 1, 1 << 30, &done,
		    NULL), 0);
		ck_assert_int_eq(proto_get_u64(m, "total", 1, 1, 1 << 30,
		    &total, NULL), 0);
		ck_assert(done > last && done < total);
		last = done;
		n++;
	}
	ck_assert_msg(n >= 2, "%d progress messages", n);
	ck_assert(dh_is_kind(m, "done") && dh_id_of(m) == 1);
	dh_close(&c);
	dh_stop();
}
END_TEST

/* The limits: clients, prompt size; and the shutdown op. */
START_TEST(limits_and_shutdown)
{
	struct dh_conn a, b;
	char big[300];

	dh_start(model, std_args, "--max-clients", "1", "--max-prompt", "100",
	    NULL);
	usleep(200000); /* start_daemon's probe connection is gone */
	dh_open(&a);
	dh_rq(&a, "status", 1, "");
	dh_expect(&a, "ok", 1);
	dh_open(&b);
	dh_expect_error(&b, 0, "limit", NULL);
	ck_assert_ptr_null(dh_next(&b));
	dh_close(&b);
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	dh_rq(&a, "chat", 2, "ssb", "name", "p", "text", big, "create", 1);
	dh_expect_error(&a, 2, "too_large", NULL);
	dh_rq(&a, "shutdown", 3, "");
	dh_expect(&a, "ok", 3);
	ck_assert_int_eq(dh_wait(), 0);
	dh_close(&a);
}
END_TEST

/* SIGHUP reopens the log file, after a rotation. */
START_TEST(sighup_reopens_log)
{
	char log[700], old[720], cmd[1600];
	int i;

	snprintf(log, sizeof log, "%s/sinkd.log", dh_tmpdir());
	snprintf(old, sizeof old, "%s.1", log);
	dh_start(model, std_args, "--log", log, NULL);
	ck_assert_int_eq(rename(log, old), 0);
	kill(dh_pid(), SIGHUP);
	for (i = 0; i < 100 && access(log, F_OK) != 0; i++)
		usleep(20000);
	snprintf(cmd, sizeof cmd, "grep -q 'log reopened' %s && grep -q "
	    "serving %s", log, old);
	ck_assert_int_eq(system(cmd), 0);
	dh_stop();
}
END_TEST

/* A second sinkd on the same socket is refused; a stale one replaced. */
START_TEST(socket_ownership)
{
	char cmd[2048];
	const char *bin = getenv("SINKD_BUILDDIR");

	dh_start(model, std_args, NULL);
	/* A database of its own: the user's default one is not the test's. */
	snprintf(cmd, sizeof cmd, "%s/sinkd -m %s --socket %s --db %s/other.db "
	    "2>%s/err; test $? -ne 0 && grep -q 'already serves' %s/err",
	    bin != NULL ? bin : ".", model, dh_sock(), dh_tmpdir(),
	    dh_tmpdir(), dh_tmpdir());
	ck_assert_int_eq(system(cmd), 0);
	kill(dh_pid(), SIGKILL);
	dh_wait();
	ck_assert_int_eq(access(dh_sock(), F_OK), 0); /* stale, left by -9 */
	dh_start(model, std_args, NULL);
	dh_stop();
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

	tcase_add_unchecked_fixture(tc, setup, dh_teardown);
	tcase_add_checked_fixture(tc, NULL, dh_each_teardown);
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
