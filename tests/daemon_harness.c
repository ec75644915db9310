/*
 * daemon_harness: the temp dir, the sinkd under test and connections to
 * it, shared by the daemon tests (see daemon_harness.h).  Failures are
 * check assertions: this is test code, run inside a check test.
 */
#include <check.h>
#include <limits.h>
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

#include "daemon_harness.h"
#include "quant.h"
#include "synth.h"

static char tmpdir[64], rundir[600], sock[100];
static pid_t daemon_pid;

void
dh_setup(const char *name, int run)
{
	char path[sizeof tmpdir + 16];

	snprintf(tmpdir, sizeof tmpdir, "/tmp/sinkd-test-%.20s-XXXXXX", name);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	/*
	 * A sinkd or sink a test starts without --db or --socket must not
	 * find the user's own: their defaults live under these.
	 */
	snprintf(path, sizeof path, "%s/state", tmpdir);
	setenv("XDG_STATE_HOME", path, 1);
	snprintf(path, sizeof path, "%s/config", tmpdir);
	setenv("XDG_CONFIG_HOME", path, 1);
	rundir[0] = '\0';
	if (run) {
		snprintf(rundir, sizeof rundir, "%s/run", tmpdir);
		ck_assert_int_eq(mkdir(rundir, 0700), 0);
	}
	signal(SIGPIPE, SIG_IGN);
}

/* A test that failed half-way leaves no daemon behind. */
void
dh_each_teardown(void)
{
	if (daemon_pid > 0 && kill(daemon_pid, 0) == 0) {
		kill(daemon_pid, SIGKILL);
		waitpid(daemon_pid, NULL, 0);
	}
	daemon_pid = 0;
}

void
dh_teardown(void)
{
	char cmd[700];

	dh_each_teardown();
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

const char *
dh_tmpdir(void)
{
	return tmpdir;
}

const char *
dh_rundir(void)
{
	return rundir;
}

const char *
dh_sock(void)
{
	return sock;
}

pid_t
dh_pid(void)
{
	return daemon_pid;
}

void
dh_write_model(char *path, size_t size, const char *name, int scale)
{
	struct synth_opts o = { .arch = "llama", .type = QT_F32, .seed = 9 };
	char cause[ERR_LEN] = "";

	synth_shape(&o, "tiny", NULL);
	o.n_embd *= scale;
	o.n_ff *= scale;
	o.n_layer *= scale;
	snprintf(path, size, "%s/%s.gguf", tmpdir, name);
	ck_assert_msg(synth_write(&o, path, cause) == 0, "%s", cause);
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

const char *
dh_bin(const char *name)
{
	static char path[PATH_MAX];
	const char *b = getenv("SINKD_BUILDDIR");
	char rel[PATH_MAX - 64];

	/* Absolute: sinkd may run in rundir. */
	snprintf(rel, sizeof rel, "%s/%s", b != NULL ? b : ".", name);
	ck_assert_msg(realpath(rel, path) != NULL, "no %s", rel);
	return path;
}

void
dh_start(const char *model, const char *const *base, ...)
{
	const char *path = dh_bin("sinkd"), *argv[48], *a;
	int n = 0, i;
	va_list ap;

	snprintf(sock, sizeof sock, "%.80s/s%d", tmpdir,
	    (int)getpid() % 100000);
	argv[n++] = path;
	argv[n++] = "-m";
	argv[n++] = model;
	argv[n++] = "--socket";
	argv[n++] = sock;
	/* Nothing kept unless a test gives its own --db (the last wins). */
	argv[n++] = "--db";
	argv[n++] = ":memory:";
	for (i = 0; base != NULL && base[i] != NULL && n < 24; i++)
		argv[n++] = base[i];
	va_start(ap, base);
	while ((a = va_arg(ap, const char *)) != NULL && n < 46)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	daemon_pid = fork();
	ck_assert_int_ge(daemon_pid, 0);
	if (daemon_pid == 0) {
		if (rundir[0] == '\0' || chdir(rundir) == 0)
			execv(path, (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 500 && !answers(); i++)
		usleep(20000);
	ck_assert_msg(i < 500, "sinkd did not start");
}

/* Waits for sinkd to exit: its exit status, or -1 (killed after 10 s). */
int
dh_wait(void)
{
	int st = 0, i;

	for (i = 0; i < 500; i++) {
		if (waitpid(daemon_pid, &st, WNOHANG) == daemon_pid) {
			daemon_pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 +
			    WTERMSIG(st);
		}
		usleep(20000);
	}
	kill(daemon_pid, SIGKILL);
	waitpid(daemon_pid, &st, 0);
	daemon_pid = 0;
	return -1;
}

/* SIGTERM: sinkd must exit 0. */
void
dh_stop(void)
{
	int st;

	kill(daemon_pid, SIGTERM);
	st = dh_wait();
	ck_assert_msg(st == 0, "sinkd exit status %d (-1: did not stop)", st);
}

/* Why a connection closed under us: whether sinkd is still there. */
const char *
dh_fate(void)
{
	static char buf[64];
	int st, i;

	for (i = 0; waitpid(daemon_pid, &st, WNOHANG) != daemon_pid; i++) {
		if (i == 50)
			return "sinkd still runs";
		usleep(10000); /* a dying process closes its files first */
	}
	if (WIFSIGNALED(st))
		snprintf(buf, sizeof buf, "sinkd died of signal %d",
		    WTERMSIG(st));
	else
		snprintf(buf, sizeof buf, "sinkd exited %d", WEXITSTATUS(st));
	daemon_pid = 0;
	return buf;
}

int
dh_dial(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	return fd;
}

void
dh_open(struct dh_conn *c)
{
	memset(c, 0, sizeof *c);
	c->buf = malloc(DH_BUF);
	ck_assert_ptr_nonnull(c->buf);
	c->fd = dh_dial();
}

void
dh_close(struct dh_conn *c)
{
	if (c->have)
		proto_msg_free(&c->msg);
	c->have = 0;
	free(c->buf);
	c->buf = NULL;
	close(c->fd);
}

void
dh_send_raw(struct dh_conn *c, const void *p, size_t n)
{
	ck_assert_int_eq(send(c->fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/*
 * Sends {op, id, ...} through proto's encoder: each char of spec adds a
 * key and a value: 's' a string, 'u' a uint64_t, 'b' a flag (int), 'f'
 * a double.
 */
void
dh_rq(struct dh_conn *c, const char *op, uint64_t id, const char *spec, ...)
{
	struct proto_out o;
	const char *data, *p;
	size_t len;
	va_list ap;

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
	ck_assert_int_eq(proto_out_finish(&o, PROTO_MAX_FRAME, &data, &len,
	    NULL), 0);
	dh_send_raw(c, data, len);
	proto_out_free(&o);
}

/* The next whole message already received, or NULL. */
struct proto_msg *
dh_pop(struct dh_conn *c)
{
	size_t body;
	int rc;

	if (c->have) {
		proto_msg_free(&c->msg);
		c->have = 0;
		memmove(c->buf, c->buf + c->used, c->len - c->used);
		c->len -= c->used;
	}
	rc = proto_frame_check(c->buf, c->len, DH_BUF - 4, &body, NULL);
	ck_assert_int_ge(rc, 0);
	if (rc == 0)
		return NULL;
	ck_assert_int_eq(proto_msg_parse(&c->msg, c->buf + 4, body, NULL), 0);
	c->have = 1;
	c->used = 4 + body;
	return &c->msg;
}

/* Reads what is there; 0 when the daemon closed the connection. */
ssize_t
dh_fill(struct dh_conn *c)
{
	ssize_t n;

	ck_assert_uint_lt(c->len, DH_BUF);
	n = read(c->fd, c->buf + c->len, DH_BUF - c->len);
	if (n > 0)
		c->len += (size_t)n;
	return n;
}

/* The next message, or NULL when the daemon closed the connection. */
struct proto_msg *
dh_next(struct dh_conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	struct proto_msg *m;

	while ((m = dh_pop(c)) == NULL) {
		ck_assert_msg(poll(&pfd, 1, 20000) == 1, "no reply in 20 s");
		if (dh_fill(c) <= 0) {
			ck_assert_uint_eq(c->len, 0); /* no frame cut short */
			return NULL;
		}
	}
	return m;
}

static int
str_is(const struct proto_msg *m, const char *key, const char *val)
{
	const char *k;
	size_t len;

	return m != NULL && proto_get_str(m, key, 1, 64, &k, &len, NULL) ==
	    0 && len == strlen(val) && memcmp(k, val, len) == 0;
}

int
dh_is_kind(const struct proto_msg *m, const char *kind)
{
	return str_is(m, "kind", kind);
}

int
dh_code_is(const struct proto_msg *m, const char *code)
{
	return str_is(m, "code", code);
}

uint64_t
dh_id_of(const struct proto_msg *m)
{
	uint64_t id = 0;

	proto_get_u64(m, "id", 1, 0, PROTO_ID_MAX, &id, NULL);
	return id;
}

/* The next message must be of this kind and id. */
struct proto_msg *
dh_expect(struct dh_conn *c, const char *kind, uint64_t id)
{
	struct proto_msg *m = dh_next(c);
	const char *got = "", *code = "", *msg = "";
	size_t l0 = 0, l1 = 0, l2 = 0;

	ck_assert_msg(m != NULL, "connection closed, expected %s %llu", kind,
	    (unsigned long long)id);
	proto_get_str(m, "kind", 0, 64, &got, &l0, NULL);
	proto_get_str(m, "code", 0, 64, &code, &l1, NULL);
	proto_get_str(m, "message", 0, 1024, &msg, &l2, NULL);
	ck_assert_msg(dh_is_kind(m, kind) && dh_id_of(m) == id, "expected "
	    "%s %llu, got %.*s %llu (%.*s: %.*s)", kind, (unsigned long long)id,
	    (int)l0, got, (unsigned long long)dh_id_of(m), (int)l1, code,
	    (int)l2, msg);
	return m;
}

/* An error for id whose code is one of codes ("a|b"); what: for a failure. */
void
dh_expect_error(struct dh_conn *c, uint64_t id, const char *codes,
    const char *what)
{
	struct proto_msg *m = dh_next(c);
	const char *kind = "", *got = "", *msg = "";
	size_t kl = 0, len = 0, ml = 0;
	char pat[128], one[70];

	if (what == NULL)
		what = "request";
	ck_assert_msg(m != NULL, "%s: connection closed, expected error %llu",
	    what, (unsigned long long)id);
	proto_get_str(m, "kind", 0, 64, &kind, &kl, NULL);
	proto_get_str(m, "code", 0, 64, &got, &len, NULL);
	proto_get_str(m, "message", 0, 1024, &msg, &ml, NULL);
	snprintf(pat, sizeof pat, "|%s|", codes);
	snprintf(one, sizeof one, "|%.*s|", (int)len, got);
	ck_assert_msg(dh_is_kind(m, "error") && dh_id_of(m) == id &&
	    strstr(pat, one) != NULL, "%s: got %.*s %llu %.*s (%.*s), expected "
	    "error %llu %s", what, (int)kl, kind,
	    (unsigned long long)dh_id_of(m), (int)len, got, (int)ml, msg,
	    (unsigned long long)id, codes);
}

/*
 * Reads a streamed reply to its end: its finish.  Its text goes in text
 * (of cap bytes, NUL-terminated; NULL: not kept), its token ids in ids
 * (up to max; NULL: not kept), the number of tokens in *n.
 */
const char *
dh_drain(struct dh_conn *c, uint64_t id, char *text, size_t cap,
    int32_t *ids, int max, int *n)
{
	static char finish[32];
	struct proto_msg *m;
	const char *t;
	size_t len, used = 0;
	int64_t tok;

	*n = 0;
	while ((m = dh_next(c)) != NULL && dh_is_kind(m, "token")) {
		ck_assert_int_eq(dh_id_of(m), id);
		if (text != NULL) {
			ck_assert_int_eq(proto_get_str(m, "text", 1, 1 << 20,
			    &t, &len, NULL), 0);
			if (used + len < cap) {
				memcpy(text + used, t, len);
				used += len;
			}
		}
		if (ids != NULL && *n < max) {
			ck_assert_int_eq(proto_get_i64(m, "token", 1, 0,
			    INT32_MAX, &tok, NULL), 0);
			ids[*n] = (int32_t)tok;
		}
		(*n)++;
	}
	if (text != NULL)
		text[used] = '\0';
	ck_assert_msg(m != NULL && dh_is_kind(m, "done") && dh_id_of(m) == id,
	    "reply %llu did not end with done", (unsigned long long)id);
	ck_assert_int_eq(proto_get_str(m, "finish", 1, 16, &t, &len, NULL), 0);
	snprintf(finish, sizeof finish, "%.*s", (int)len, t);
	return finish;
}
