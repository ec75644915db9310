/*
 * test_daemon_store: the store thread, from outside.  A large import, or
 * a fork of a full session, does not hold up another client's token
 * stream (its largest gap between two tokens stays near its gap
 * without them: the event loop does no SQLite work), and a turn is
 * reported saved only once its snapshot has committed (kill -9 right
 * after the reply: the turn is there after a restart).  The store
 * thread runs --store-nice steps below the daemon.
 */
#include <check.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon_harness.h"
#include "model.h"
#include "proto.h"
#include "seq.h"
#include "store.h"

/*
 * The big session: about 100 MiB of cache on the "small" model, or
 * $SINKD_TEST_STORE_MIB; with $SINKD_TEST_NO_TIMING set the gaps are
 * printed, not checked (under ThreadSanitizer: tools/test-all.sh).
 */
#define BIG_MIB 100
#define PART (512u << 10)	/* an import's parts */

static const char *const std_args[] = { "-t", "1", "--max-tokens",
	"1000000", NULL };
static char small[600], db[600];

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint32_t
be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	    (uint32_t)b[2] << 8 | b[3];
}

/* Appends a finished frame to buf. */
static void
append(uint8_t **buf, size_t *len, struct proto_out *o)
{
	const char *data;
	size_t n;

	ck_assert_int_eq(proto_out_finish(o, 1u << 30, &data, &n, NULL), 0);
	*buf = realloc(*buf, *len + n);
	ck_assert_ptr_nonnull(*buf);
	memcpy(*buf + *len, data, n);
	*len += n;
}

/* Export's data messages, concatenated: the file. */
static uint8_t *
export(struct dh_conn *c, uint64_t id, const char *name, size_t *len)
{
	struct proto_msg *m;
	const void *d;
	uint8_t *buf = NULL;
	size_t n;

	*len = 0;
	dh_rq(c, "export", id, "s", "name", name);
	while ((m = dh_next(c)) != NULL && dh_is_kind(m, "data")) {
		ck_assert_int_eq(proto_get_bin(m, "data", 1, SIZE_MAX, &d, &n,
		    NULL), 0);
		buf = realloc(buf, *len + n);
		ck_assert_ptr_nonnull(buf);
		memcpy(buf + *len, d, n);
		*len += n;
	}
	ck_assert(m != NULL && dh_is_kind(m, "ok") && dh_id_of(m) == id);
	return buf;
}

/* The big session's options, here and in the daemon. */
static uint64_t
big_cache(void)
{
	const char *e = getenv("SINKD_TEST_STORE_MIB");
	long mib = e != NULL ? strtol(e, NULL, 10) : BIG_MIB;

	/* small: 8 layers of 128 K and 128 V floats a token: 8 KiB. */
	return (uint64_t)(mib > 0 ? mib : BIG_MIB) * 128;
}

static void
create_big(struct dh_conn *c, uint64_t id, const char *name)
{
	dh_rq(c, "create", id, "sssu", "name", name, "mode", "streaming",
	    "kv", "f32", "cache", big_cache());
	dh_expect(c, "ok", id);
}

/*
 * The export of a fresh big session with every chunk of its cache in it
 * (pseudo-random data, right CRCs): a file of about BIG_MIB MiB that
 * imports as a session.
 */
static uint8_t *
big_file(const uint8_t *fresh, size_t flen, size_t *len)
{
	struct model *m;
	struct seq_opts so;
	struct seq *q;
	struct proto_out o;
	char cause[ERR_LEN];
	uint8_t *buf = NULL, *chunk;
	size_t hl = be32(fresh), cb, i;
	uint64_t frames = 1, x = 88172645463325252ull;
	int32_t nc, c;
	int l;

	ck_assert_uint_gt(flen, 4 + hl);
	m = model_open(small, NULL, cause);
	ck_assert_msg(m != NULL, "%s", cause);
	seq_opts_default(&so);
	so.mode = SEQ_STREAMING;
	so.n_cache = (int32_t)big_cache();
	ck_assert_int_eq(seq_kv_parse("f32", &so.kv_type), 0);
	q = seq_new(m, &so, cause);
	ck_assert_msg(q != NULL, "%s", cause);
	nc = seq_n_chunks(q);
	cb = seq_chunk_bytes(q);
	chunk = malloc(cb);
	ck_assert_ptr_nonnull(chunk);
	*len = 4 + hl;
	buf = malloc(*len);
	memcpy(buf, fresh, *len);
	for (l = 0; l < m->hp.n_layer; l++) {
		for (c = 0; c < nc; c++) {
			for (i = 0; i + 4 <= cb; i += 4) {
				/* Small floats: any bits would do, but sane. */
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				uint32_t f = 0x3c000000u | (uint32_t)(x & 0xffffff);
				memcpy(chunk + i, &f, 4);
			}
			proto_out_init(&o);
			proto_pack_map(&o, 4);
			proto_put_u64(&o, "layer", (uint64_t)l);
			proto_put_u64(&o, "chunk", (uint64_t)c);
			proto_put_u64(&o, "crc", store_crc(chunk, cb));
			proto_put_bin(&o, "data", chunk, cb);
			append(&buf, len, &o);
			proto_out_free(&o);
			frames++;
		}
	}
	proto_out_init(&o);
	proto_pack_map(&o, 1);
	proto_put_u64(&o, "end", frames);
	append(&buf, len, &o);
	proto_out_free(&o);
	free(chunk);
	seq_free(q);
	model_close(m);
	return buf;
}

/* Sends buf in parts; the last one's reply is read and returned. */
static int
import(struct dh_conn *c, uint64_t id, const uint8_t *buf, size_t len,
    const char *name)
{
	struct proto_out o;
	struct proto_msg *m;
	const char *data;
	size_t at = 0, n, flen;
	int more;

	do {
		n = len - at < PART ? len - at : PART;
		more = at + n < len;
		proto_out_init(&o);
		proto_pack_map(&o, 5);
		proto_put_cstr(&o, "op", "import");
		proto_put_u64(&o, "id", id);
		proto_put_bin(&o, "data", buf + at, n);
		proto_put_bool(&o, "more", more);
		proto_put_cstr(&o, "name", name);
		ck_assert_int_eq(proto_out_finish(&o, PROTO_MAX_FRAME, &data,
		    &flen, NULL), 0);
		dh_send_raw(c, data, flen);
		proto_out_free(&o);
		at += n;
		if (more)
			dh_expect(c, "ok", id);
	} while (more);
	m = dh_next(c);
	return m != NULL && dh_is_kind(m, "ok") ? 0 : -1;
}

/* Gaps between tokens of a stream, in seconds. */
struct gaps {
	double last, max, sum;
	long n;
};

static void
gap_add(struct gaps *g, double t)
{
	double d;

	if (g->last > 0) {
		d = t - g->last;
		if (d > g->max)
			g->max = d;
		g->sum += d;
		g->n++;
	}
	g->last = t;
}

/* Reads tokens of request id for secs seconds (or until pid exits). */
static void
watch(struct dh_conn *c, uint64_t id, struct gaps *g, double secs, pid_t pid,
    int *status)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	struct proto_msg *m;
	double end = now() + secs;

	for (;;) {
		while ((m = dh_pop(c)) != NULL) {
			ck_assert_int_eq(dh_id_of(m), id);
			ck_assert_msg(dh_is_kind(m, "token"), "the stream "
			    "ended");
			gap_add(g, now());
		}
		if (pid > 0 && waitpid(pid, status, WNOHANG) == pid)
			return;
		if (pid <= 0 && now() > end)
			return;
		ck_assert_msg(poll(&pfd, 1, 20000) == 1, "no token in 20 s");
		ck_assert_int_gt(dh_fill(c), 0);
	}
}

/* A stream on session s of connection a that goes on until cancelled. */
static void
stream_start(struct dh_conn *a, uint64_t id, const char *s)
{
	dh_rq(a, "complete", id, "ssub", "name", s, "text", "Once upon a time",
	    "max_tokens", (uint64_t)1000000, "ignore_eos", 1);
}

static void
stream_stop(struct dh_conn *a, uint64_t id, uint64_t cid)
{
	struct proto_msg *m;

	int ok = 0;

	/* The cancel's ok comes first, then the stream's done. */
	dh_rq(a, "cancel", cid, "u", "target", id);
	while ((m = dh_next(a)) != NULL && !(dh_is_kind(m, "done") &&
	    dh_id_of(m) == id))
		ok |= dh_is_kind(m, "ok") && dh_id_of(m) == cid;
	ck_assert_ptr_nonnull(m);
	ck_assert(ok);
}

/*
 * The bound: a few of the stream's largest gaps alone, and never less
 * than 500 ms, so that a loaded 2-core machine (the store thread's
 * work competes with the worker for the cores) does not fail it, while
 * the loop reading 100 MiB and writing it to SQLite (several seconds)
 * does.
 */
static double
bound(const struct gaps *alone)
{
	double b = 8 * alone->max;

	return b > 0.5 ? b : 0.5;
}

START_TEST(import_and_fork_do_not_stall_streams)
{
	struct dh_conn a, b;
	struct gaps alone = { 0 }, during = { 0 }, forking = { 0 };
	struct gaps exporting = { 0 };
	uint8_t *fresh, *file;
	size_t flen, len;
	double t;
	pid_t pid;
	int status = -1;

	dh_start(small, std_args, "--db", db, NULL);
	dh_open(&a);
	dh_open(&b);
	create_big(&b, 1, "fresh");
	fresh = export(&b, 2, "fresh", &flen);
	file = big_file(fresh, flen, &len);
	free(fresh);
	dh_rq(&a, "create", 1, "su", "name", "s", "cache", (uint64_t)256);
	dh_expect(&a, "ok", 1);

	/* The stream alone. */
	stream_start(&a, 2, "s");
	watch(&a, 2, &alone, 1.0, 0, NULL);

	/* The same stream while another client imports the big file. */
	t = now();
	if ((pid = fork()) == 0)
		_exit(import(&b, 3, file, len, "big") == 0 ? 0 : 1);
	ck_assert_int_gt(pid, 0);
	during.last = 0;
	watch(&a, 2, &during, 0, pid, &status);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the import failed");
	printf("import of %.1f MiB took %.2f s; the stream's largest gap "
	    "%.1f ms alone (mean %.2f ms), %.1f ms during the import "
	    "(mean %.2f ms)\n", (double)len / (1 << 20), now() - t,
	    alone.max * 1e3, alone.sum / (double)alone.n * 1e3,
	    during.max * 1e3, during.sum / (double)during.n * 1e3);
	/* The child read the reply from b's socket: b is spent. */
	dh_close(&b);

	/* A fork of the full session, copied inside the database. */
	dh_open(&b);
	t = now();
	if ((pid = fork()) == 0) {
		struct proto_msg *m;

		dh_rq(&b, "fork", 1, "ss", "name", "big", "new", "big2");
		m = dh_next(&b);
		_exit(m != NULL && dh_is_kind(m, "ok") ? 0 : 1);
	}
	ck_assert_int_gt(pid, 0);
	watch(&a, 2, &forking, 0, pid, &status);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the fork failed");
	printf("fork of it took %.2f s; the stream's largest gap %.1f ms\n",
	    now() - t, forking.max * 1e3);
	dh_close(&b);

	/* An export of the full session, read on the store thread. */
	dh_open(&b);
	t = now();
	if ((pid = fork()) == 0) {
		uint8_t *out = export(&b, 1, "big2", &flen);

		_exit(flen > len / 2 && out != NULL ? 0 : 1);
	}
	ck_assert_int_gt(pid, 0);
	watch(&a, 2, &exporting, 0, pid, &status);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the export failed");
	printf("export of it took %.2f s; the stream's largest gap %.1f ms\n",
	    now() - t, exporting.max * 1e3);
	dh_close(&b);

	/* An export its client leaves half read: the session is free after. */
	dh_open(&b);
	dh_rq(&b, "export", 1, "s", "name", "big");
	dh_expect(&b, "data", 1);
	dh_close(&b);
	dh_open(&b);
	for (t = now(); now() - t < 10; usleep(20000)) {
		struct proto_msg *m;

		dh_rq(&b, "feed", 5, "ss", "name", "big", "text", "Once");
		m = dh_next(&b);
		ck_assert_ptr_nonnull(m);
		if (dh_is_kind(m, "done"))
			break;
		ck_assert_msg(dh_is_kind(m, "error"), "feed: no done");
	}
	ck_assert_msg(now() - t < 10, "the session stayed exporting after "
	    "its client went");
	stream_stop(&a, 2, 3);

	ck_assert_msg(during.n > 10 || getenv("SINKD_TEST_NO_TIMING") != NULL,
	    "only %ld tokens during the import", during.n);
	if (getenv("SINKD_TEST_NO_TIMING") != NULL)
		goto untimed;
	ck_assert_msg(during.max <= bound(&alone), "a gap of %.1f ms in the "
	    "stream during the import (%.1f ms alone)", during.max * 1e3,
	    alone.max * 1e3);
	ck_assert_msg(forking.max <= bound(&alone), "a gap of %.1f ms in the "
	    "stream during the fork (%.1f ms alone)", forking.max * 1e3,
	    alone.max * 1e3);
	ck_assert_msg(exporting.max <= bound(&alone), "a gap of %.1f ms in the "
	    "stream during the export (%.1f ms alone)", exporting.max * 1e3,
	    alone.max * 1e3);
untimed:
	/* Both copies are whole: they answer, with the file's cache. */
	dh_rq(&b, "info", 2, "s", "name", "big2");
	dh_expect(&b, "ok", 2);
	dh_close(&a);
	dh_close(&b);
	free(file);
	dh_stop();
}
END_TEST

/* Turns of a session, from info. */
static uint64_t
turns(struct dh_conn *c, uint64_t id, const char *name)
{
	struct proto_msg *m;
	uint64_t v = 0;

	dh_rq(c, "info", id, "s", "name", name);
	m = dh_expect(c, "ok", id);
	ck_assert_int_eq(proto_map_get_u64(proto_get(m, "session"), "turns",
	    1, 0, UINT64_MAX, &v, NULL), 0);
	return v;
}

/*
 * kill -9 as soon as a turn's "done" (saved) has arrived: after the
 * restart the turn is there, every time.  The snapshot is made slow
 * (the test hook pauses before its COMMIT), so a "done" sent before
 * the commit would be caught.
 */
START_TEST(saved_means_committed)
{
	struct dh_conn c;
	struct proto_msg *m;
	const msgpack_object *u;
	int k, saved;
	double t;

	for (k = 0; k < 4; k++) {
		setenv("SINKD_TEST_SAVE_PAUSE_MS", "300", 1);
		dh_start(small, std_args, "--db", db, NULL);
		unsetenv("SINKD_TEST_SAVE_PAUSE_MS");
		dh_open(&c);
		if (k == 0) {
			dh_rq(&c, "create", 1, "s", "name", "t");
			dh_expect(&c, "ok", 1);
		}
		ck_assert_uint_eq(turns(&c, 2, "t"), 2 * (uint64_t)k);
		t = now();
		dh_rq(&c, "chat", 3, "ssu", "name", "t", "text", "hello",
		    "max_tokens", (uint64_t)3);
		while ((m = dh_next(&c)) != NULL && dh_is_kind(m, "token"))
			;
		ck_assert(m != NULL && dh_is_kind(m, "done"));
		u = proto_get(m, "usage");
		ck_assert_int_eq(proto_map_get_bool(u, "saved", 1, &saved,
		    NULL), 0);
		ck_assert(saved);
		kill(dh_pid(), SIGKILL);
		ck_assert_int_eq(dh_wait(), 128 + SIGKILL);
		/* The pause was inside the turn: done came after the commit. */
		ck_assert_msg(now() - t >= 0.3, "done after %.3f s, before the "
		    "snapshot's commit", now() - t);
		dh_close(&c);
	}
	dh_start(small, std_args, "--db", db, NULL);
	dh_open(&c);
	ck_assert_uint_eq(turns(&c, 1, "t"), 8);
	dh_close(&c);
	dh_stop();
}
END_TEST

/* The first line of /proc/PID/task/TID/NAME, without its newline. */
static int
task_line(pid_t pid, const char *tid, const char *name, char *buf,
    size_t size)
{
	char path[300];
	FILE *f;
	int ok;

	snprintf(path, sizeof path, "/proc/%d/task/%s/%s", (int)pid, tid,
	    name);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	ok = fgets(buf, (int)size, f) != NULL;
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return ok ? 0 : -1;
}

/*
 * The niceness of the daemon's thread named comm, or of its main thread
 * for NULL; -100 if there is no such thread.
 */
static int
task_nice(pid_t pid, const char *comm)
{
	char path[64], buf[512], *p;
	struct dirent *e;
	int nice = -100;
	DIR *d;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	ck_assert_ptr_nonnull(d = opendir(path));
	while (nice == -100 && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (comm == NULL && atoi(e->d_name) != (int)pid)
			continue;
		if (comm != NULL && (task_line(pid, e->d_name, "comm", buf,
		    sizeof buf) != 0 || strcmp(buf, comm) != 0))
			continue;
		/* After the name in parentheses, nice is the 17th field. */
		if (task_line(pid, e->d_name, "stat", buf, sizeof buf) == 0 &&
		    (p = strrchr(buf, ')')) != NULL)
			ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d "
			    "%*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %d",
			    &nice), 1);
	}
	closedir(d);
	return nice;
}

/* A figure of status's store map. */
static uint64_t
store_stat(struct dh_conn *c, uint64_t id, const char *key)
{
	struct proto_msg *m;
	uint64_t v = UINT64_MAX;

	dh_rq(c, "status", id, "");
	m = dh_expect(c, "ok", id);
	ck_assert_int_eq(proto_map_get_u64(proto_get(m, "store"), key, 1, 0,
	    UINT64_MAX, &v, NULL), 0);
	return v;
}

/*
 * sinkd-store runs --store-nice steps below the main thread (10 by
 * default, capped at 19), so that an import or a fork leaves the cores
 * to the streams; 0 keeps it level.
 */
START_TEST(store_thread_runs_nicer)
{
	static const char *const steps[] = { NULL, "0", "3" };
	struct dh_conn c;
	int k, base, want, got;
	double t;

	for (k = 0; k < 3; k++) {
		if (steps[k] == NULL)
			dh_start(small, std_args, "--db", db, NULL);
		else
			dh_start(small, std_args, "--db", db, "--store-nice",
			    steps[k], NULL);
		base = task_nice(dh_pid(), NULL);
		ck_assert_int_ne(base, -100);
		want = base + (steps[k] == NULL ? 10 : atoi(steps[k]));
		want = want > 19 ? 19 : want;
		/* The thread lowers its own priority as it starts. */
		t = now();
		while ((got = task_nice(dh_pid(), "sinkd-store")) != want &&
		    now() - t < 5)
			usleep(10000);
		ck_assert_msg(got == want, "--store-nice %s: the store thread "
		    "at nice %d, the daemon at %d (want %d)", steps[k] ?
		    steps[k] : "(default)", got, base, want);
		ck_assert_int_eq(task_nice(dh_pid(), "sinkd-worker"), base);
		dh_open(&c);
		/* status says the steps taken, less than asked if capped. */
		ck_assert_uint_eq(store_stat(&c, 1, "nice"), (uint64_t)(want -
		    base));
		dh_close(&c);
		dh_stop();
	}
}
END_TEST

/*
 * status counts the store's jobs not yet done: a turn's snapshot, made
 * slow by the test hook, between its last token and its done.
 */
START_TEST(status_counts_pending_saves)
{
	struct dh_conn a, b;
	struct proto_msg *m;
	uint64_t pend;
	double t;
	int n;

	setenv("SINKD_TEST_SAVE_PAUSE_MS", "1500", 1);
	dh_start(small, std_args, "--db", db, NULL);
	unsetenv("SINKD_TEST_SAVE_PAUSE_MS");
	dh_open(&a);
	dh_open(&b);
	dh_rq(&a, "create", 1, "s", "name", "p");
	dh_expect(&a, "ok", 1);
	ck_assert_uint_eq(store_stat(&b, 2, "pending"), 0);
	dh_rq(&a, "chat", 3, "ssub", "name", "p", "text", "hello",
	    "max_tokens", (uint64_t)2, "ignore_eos", 1);
	for (n = 0; n < 2; n++) {
		ck_assert_ptr_nonnull(m = dh_next(&a));
		ck_assert(dh_is_kind(m, "token"));
	}
	/* The turn has ended; its snapshot waits 1.5 s to commit. */
	t = now();
	while ((pend = store_stat(&b, 4, "pending")) == 0 && now() - t < 1)
		usleep(10000);
	ck_assert_uint_eq(pend, 1);
	while ((m = dh_next(&a)) != NULL && !dh_is_kind(m, "done"))
		;
	ck_assert_ptr_nonnull(m);
	/* The job itself is complete once the loop has seen it end. */
	t = now();
	while ((pend = store_stat(&b, 5, "pending")) != 0 && now() - t < 5)
		usleep(10000);
	ck_assert_uint_eq(pend, 0);
	dh_close(&a);
	dh_close(&b);
	dh_stop();
}
END_TEST

static void
setup(void)
{
	dh_setup("store", 0);
	dh_write_model(small, sizeof small, "small", 4);
}

static void
each_setup(void)
{
	static int n;

	snprintf(db, sizeof db, "%s/store%d.db", dh_tmpdir(), n++);
}

static Suite *
store_suite(void)
{
	Suite *s = suite_create("daemon_store");
	TCase *tc = tcase_create("store");

	tcase_add_unchecked_fixture(tc, setup, dh_teardown);
	tcase_add_checked_fixture(tc, each_setup, dh_each_teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, store_thread_runs_nicer);
	tcase_add_test(tc, status_counts_pending_saves);
	tcase_add_test(tc, saved_means_committed);
	tcase_add_test(tc, import_and_fork_do_not_stall_streams);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
