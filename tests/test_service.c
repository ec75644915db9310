/*
 * test_service: sinkd as a service that others cannot subvert and that
 * says what went wrong.  One writer per database (a second sinkd is
 * refused, naming the first's pid); a socket only in a directory no one
 * else can write; `sink` talks only to a server run by its own user,
 * root or the service's user; settings that would fail every turn are
 * refused at startup and by -n; a shutdown that cannot save exits
 * non-zero naming the sessions; systemd's socket activation, readiness
 * and watchdog keep-alives.  Real sinkd processes on private paths.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon_harness.h"
#include "proto.h"

#define NOBODY 65534

static char model[600];

static void
setup(void)
{
	dh_setup("service", 0);
	dh_write_model(model, sizeof model, "tiny", 1);
}

static void
tmp_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", dh_tmpdir(), name);
}

/* The whole of a small file, NUL-terminated, in a static buffer. */
static const char *
slurp(const char *path)
{
	static char buf[16384];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return "";
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* Waits for p to exit, 20 s at most: its status, 128 + signal, or -1. */
static int
wait_exit(pid_t p)
{
	int st, i;

	for (i = 0; i < 2000; i++) {
		if (waitpid(p, &st, WNOHANG) == p)
			return WIFEXITED(st) ? WEXITSTATUS(st) :
			    128 + WTERMSIG(st);
		usleep(10000);
	}
	kill(p, SIGKILL);
	waitpid(p, &st, 0);
	return -1;
}

/*
 * Starts argv (NULL-terminated), its stdout and stderr into out, stdin
 * closed.  With lfd >= 0, as systemd's socket activation would: lfd is
 * fd 3, LISTEN_FDS=1 and LISTEN_PID its own pid.
 */
static pid_t
spawn(const char *out, const char *const *argv, int lfd)
{
	char pid[32];
	pid_t p = fork();
	int fd;

	ck_assert_int_ge(p, 0);
	if (p == 0) {
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
		    (lfd >= 0 && dup2(lfd, 3) < 0))
			_exit(126);
		close(0);
		if (lfd >= 0) {
			snprintf(pid, sizeof pid, "%d", (int)getpid());
			setenv("LISTEN_PID", pid, 1);
			setenv("LISTEN_FDS", "1", 1);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return p;
}

/* Runs argv to its end as wait_exit says, its output in out. */
static int
run(const char *out, const char *const *argv)
{
	return wait_exit(spawn(out, argv, -1));
}

/* sinkd with these arguments (after -m model), run to its end. */
static int
run_sinkd(const char *out, const char *a1, const char *a2, const char *a3,
    const char *a4, const char *a5, const char *a6)
{
	const char *argv[] = { dh_bin("sinkd"), "-m", model, "-c", "/dev/null",
		a1, a2, a3, a4, a5, a6, NULL };

	return run(out, argv);
}

static void
expect_in(const char *out, const char *want, const char *what)
{
	const char *got = slurp(out);

	ck_assert_msg(strstr(got, want) != NULL, "%s: '%s' not in: %s", what,
	    want, got);
}

/*
 * A second sinkd on the same database is refused (exit 2) with the
 * first's pid, on another socket too, and the first serves on; once the
 * first has stopped, the database is free again.
 */
START_TEST(one_writer_per_database)
{
	char db[512], out[512], sock2[512], want[64];
	struct dh_conn c;

	tmp_path(db, sizeof db, "one.db");
	tmp_path(out, sizeof out, "second.out");
	tmp_path(sock2, sizeof sock2, "sock2");
	dh_start(model, NULL, "--db", db, NULL);
	ck_assert_int_eq(run_sinkd(out, "--db", db, "--socket", sock2,
	    NULL, NULL), 2);
	snprintf(want, sizeof want, "in use by another sinkd (pid %d)",
	    (int)dh_pid());
	expect_in(out, want, "second sinkd");
	ck_assert_int_ne(access(sock2, F_OK), 0);
	dh_open(&c);
	dh_rq(&c, "list", 1, "");
	dh_expect(&c, "ok", 1);
	dh_close(&c);
	dh_stop();
	dh_start(model, NULL, "--db", db, NULL);
	dh_stop();
}
END_TEST

/* A socket directory someone else could write is refused, exit 2. */
START_TEST(socket_dir_must_be_private)
{
	char dir[512], sock[600], out[512], link[512];

	tmp_path(out, sizeof out, "dir.out");
	tmp_path(dir, sizeof dir, "open");
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chmod(dir, 01777), 0);
	snprintf(sock, sizeof sock, "%s/sock", dir);
	ck_assert_int_eq(run_sinkd(out, "--socket", sock, "--db", ":memory:",
	    NULL, NULL), 2);
	expect_in(out, "writable by other users (mode 1777)", "mode 1777");
	ck_assert_int_ne(access(sock, F_OK), 0);

	/* A link, even to a private directory: it could be re-pointed. */
	tmp_path(link, sizeof link, "link");
	ck_assert_int_eq(chmod(dir, 0700), 0);
	ck_assert_int_eq(symlink(dir, link), 0);
	snprintf(sock, sizeof sock, "%s/sock", link);
	ck_assert_int_eq(run_sinkd(out, "--socket", sock, "--db", ":memory:",
	    NULL, NULL), 2);
	expect_in(out, "is not a directory", "a symbolic link");

	if (geteuid() != 0) {
		printf("SKIP: socket_dir_must_be_private: a directory of "
		    "another user needs root\n");
		return;
	}
	tmp_path(dir, sizeof dir, "theirs");
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chown(dir, NOBODY, NOBODY), 0);
	snprintf(sock, sizeof sock, "%s/sock", dir);
	ck_assert_int_eq(run_sinkd(out, "--socket", sock, "--db", ":memory:",
	    NULL, NULL), 2);
	expect_in(out, "belongs to uid 65534", "another user's directory");
	ck_assert_int_ne(access(sock, F_OK), 0);
}
END_TEST

/*
 * A server of another user at the socket's path (a fake sinkd that got
 * there first): sink refuses before sending a byte.  Needs root to be
 * another user.
 */
START_TEST(client_checks_the_server)
{
	char dir[512], sock[600], out[512], got[32] = "";
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int p[2], fd, cfd, st;
	ssize_t n = 0, r;
	pid_t pid;
	struct pollfd pfd;

	if (geteuid() != 0) {
		printf("SKIP: client_checks_the_server: a server of another "
		    "user needs root\n");
		return;
	}
	/* Outside the private temp dir: nobody must reach it. */
	snprintf(dir, sizeof dir, "/tmp/sinkd-test-fake-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 0755), 0);
	ck_assert_int_eq(chown(dir, NOBODY, NOBODY), 0);
	snprintf(sock, sizeof sock, "%s/sock", dir);
	tmp_path(out, sizeof out, "fake.out");
	ck_assert_int_eq(pipe(p), 0);
	if ((pid = fork()) == 0) {
		/* The fake: nobody, counting what a client sends in 2 s. */
		if (setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
			_exit(1);
		snprintf(sun.sun_path, sizeof sun.sun_path, "%.100s", sock);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sun,
		    sizeof sun) != 0 || chmod(sock, 0666) != 0 ||
		    listen(fd, 4) != 0)
			_exit(2);
		if (write(p[1], "L", 1) != 1)
			_exit(3);
		if ((cfd = accept(fd, NULL, NULL)) < 0)
			_exit(4);
		pfd.fd = cfd;
		pfd.events = POLLIN;
		while (poll(&pfd, 1, 2000) > 0 &&
		    (r = read(cfd, got, sizeof got)) > 0)
			n += r;
		snprintf(got, sizeof got, "%zd", n);
		if (write(p[1], got, strlen(got)) < 0)
			_exit(5);
		_exit(0);
	}
	ck_assert_int_gt(pid, 0);
	close(p[1]);
	ck_assert_int_eq(read(p[0], got, 1), 1);
	{
		const char *argv[] = { dh_bin("sink"), "--socket", sock, "ls",
			NULL };
		ck_assert_int_ne(run(out, argv), 0);
	}
	expect_in(out, "served by uid 65534", "sink against a fake");
	memset(got, 0, sizeof got);
	ck_assert_int_gt(read(p[0], got, sizeof got - 1), 0);
	close(p[0]);
	waitpid(pid, &st, 0);
	unlink(sock);
	rmdir(dir);
	ck_assert_msg(strcmp(got, "0") == 0, "sink sent %s bytes to the fake",
	    got);
}
END_TEST

/*
 * Runs `sink --socket sock ls` as uid nobody with primary group gid and
 * the supplementary groups given (n of them), its output in out.  The
 * binary is copied into dir first: the build tree may be closed to
 * nobody.
 */
static int
sink_as_nobody(const char *dir, const char *sock, gid_t gid,
    const gid_t *groups, size_t n, const char *out)
{
	char cmd[1400], sink[600];
	const char *argv[] = { sink, "--socket", sock, "ls", NULL };
	pid_t pid;
	int fd;

	snprintf(sink, sizeof sink, "%s/sink", dir);
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", dh_bin("sink"), sink);
	ck_assert_int_eq(system(cmd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0666);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
		    setgroups(n, groups) != 0 || setgid(gid) != 0 ||
		    setuid(NOBODY) != 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return wait_exit(pid);
}

/*
 * --group: a member (by a supplementary group, as the kernel saw it at
 * connect time) is served; anyone else who reaches the socket is told
 * `denied` before the connection closes.  Needs root to be others.
 */
START_TEST(group_members_only)
{
	char dir[512], sock[600], out[512], cmd[700];
	gid_t nogroup = NOBODY, none[1] = { 0 };
	pid_t p;
	int i;

	if (geteuid() != 0) {
		printf("SKIP: group_members_only: other users need root\n");
		return;
	}
	snprintf(dir, sizeof dir, "/tmp/sinkd-test-group-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 0755), 0);
	snprintf(sock, sizeof sock, "%s/sock", dir);
	tmp_path(out, sizeof out, "group.sinkd.out");
	{
		const char *argv[] = { dh_bin("sinkd"), "-m", model, "-c",
			"/dev/null", "--db", ":memory:", "--socket", sock,
			"--group", "nogroup", NULL };
		p = spawn(out, argv, -1);
	}
	tmp_path(out, sizeof out, "group.out");
	for (i = 0; i < 500 && access(sock, F_OK) != 0; i++)
		usleep(20000);
	usleep(100000);
	ck_assert_int_eq(sink_as_nobody(dir, sock, 1, &nogroup, 1, out), 0);
	expect_in(out, "no sessions", "a member of the group");
	/* Past the socket's 0660, the daemon's own check. */
	ck_assert_int_eq(chmod(sock, 0666), 0);
	ck_assert_int_eq(sink_as_nobody(dir, sock, 1, none, 0, out), 1);
	expect_in(out, "denied: uid 65534 may not use this sinkd",
	    "not a member");
	expect_in(out, "members of group nogroup", "the message says who may");
	kill(p, SIGTERM);
	ck_assert_int_eq(wait_exit(p), 0);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Defaults under which no turn could run: refused by -n and at start. */
START_TEST(settings_checked_as_a_turn_would)
{
	char out[512], conf[512];
	FILE *f;

	tmp_path(out, sizeof out, "n.out");
	ck_assert_int_eq(run_sinkd(out, "-n", "--cache", "3", "--sinks", "4",
	    NULL), 2);
	expect_in(out, "4 sinks do not fit a cache of 3", "-n, sinks");
	ck_assert_int_eq(run_sinkd(out, "--cache", "3", "--sinks", "4",
	    "--db", ":memory:"), 2);
	expect_in(out, "would fail every turn", "start, sinks");
	ck_assert_int_eq(run_sinkd(out, "-n", "--cache", "100000000", NULL,
	    NULL, NULL), 2);
	expect_in(out, "--cache", "-n, cache over its range");
	ck_assert_int_eq(run_sinkd(out, "-n", "--mode", "sliding", NULL, NULL,
	    NULL), 2);
	expect_in(out, "'sliding' is not a cache mode", "-n, mode");
	ck_assert_int_eq(run_sinkd(out, "-n", "--kv", "q8", NULL, NULL, NULL),
	    2);
	expect_in(out, "'q8' is not a KV type", "-n, kv");
	tmp_path(conf, sizeof conf, "bad-defaults.conf");
	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	fputs("cache = 4\nsinks = 4\n", f);
	fclose(f);
	{
		const char *argv[] = { dh_bin("sinkd"), "-m", model, "-c", conf,
			"-n", NULL };
		ck_assert_int_eq(run(out, argv), 2);
	}
	expect_in(out, "4 sinks do not fit a cache of 4", "sinkd.conf");
	/* What a turn would accept passes: window mode keeps no sinks. */
	ck_assert_int_eq(run_sinkd(out, "-n", "--cache", "3", "--mode",
	    "window", NULL), 0);
	ck_assert_int_eq(run_sinkd(out, "-n", "--cache", "5", "--sinks", "4",
	    NULL), 0);
}
END_TEST

/* Runs a chat turn to its end: whether its snapshot was saved. */
static int
turn(struct dh_conn *c, uint64_t id, const char *name, uint64_t max)
{
	struct proto_msg *m;
	int saved = -1;

	dh_rq(c, "chat", id, "ssub", "name", name, "text", "once upon a time",
	    "max_tokens", max, "ignore_eos", 1);
	while ((m = dh_next(c)) != NULL && !dh_is_kind(m, "done"))
		ck_assert_msg(!dh_is_kind(m, "error"), "turn %llu failed",
		    (unsigned long long)id);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(proto_map_get_bool(proto_get(m, "usage"), "saved", 1,
	    &saved, NULL), 0);
	return saved;
}

/*
 * A full disk at shutdown: the turns that could not be saved are lost,
 * so sinkd says which sessions and exits 3, not 0.
 */
START_TEST(unsaved_at_shutdown_is_an_error)
{
	char db[512], log[512];
	struct dh_conn c;
	uint64_t id = 1;
	int i;

	tmp_path(db, sizeof db, "full.db");
	tmp_path(log, sizeof log, "full.log");
	dh_start(model, NULL, "-t", "1", "--db", db, "--db-max-size", "160K",
	    "--log", log, NULL);
	dh_open(&c);
	dh_rq(&c, "create", id, "su", "name", "hog", "cache", (uint64_t)1024);
	dh_expect(&c, "ok", id++);
	for (i = 0; i < 8; i++)
		turn(&c, id++, "hog", 100);
	dh_rq(&c, "create", id, "su", "name", "late", "cache", (uint64_t)64);
	dh_expect(&c, "ok", id++);
	ck_assert_int_eq(turn(&c, id++, "late", 30), 0);
	dh_close(&c);
	kill(dh_pid(), SIGTERM);
	ck_assert_int_eq(dh_wait(), 3);
	expect_in(log, "not saved, their last turns are lost: ", "log");
	expect_in(log, "'late'", "log names the session");

	/* With room, a turn is saved and the stop is clean again. */
	dh_start(model, NULL, "-t", "1", "--db", db, NULL);
	dh_open(&c);
	dh_rq(&c, "create", id, "su", "name", "roomy", "cache", (uint64_t)64);
	dh_expect(&c, "ok", id++);
	ck_assert_int_eq(turn(&c, id++, "roomy", 5), 1);
	dh_close(&c);
	dh_stop();
}
END_TEST

/* A datagram socket in the temp dir that plays systemd's NOTIFY_SOCKET. */
static int
notify_socket(char *path, size_t size)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	tmp_path(path, size, "notify");
	unlink(path);
	snprintf(sun.sun_path, sizeof sun.sun_path, "%.100s", path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	return fd;
}

/* Counts datagrams equal to what for up to ms milliseconds. */
static int
count_notes(int fd, const char *what, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct timespec t0, t;
	char buf[256];
	ssize_t n;
	int count = 0, left = ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (left > 0 && poll(&p, 1, left) > 0) {
		n = recv(fd, buf, sizeof buf - 1, 0);
		if (n > 0) {
			buf[n] = '\0';
			count += strcmp(buf, what) == 0;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		left = ms - (int)((t.tv_sec - t0.tv_sec) * 1000 +
		    (t.tv_nsec - t0.tv_nsec) / 1000000);
	}
	return count;
}

/*
 * Type=notify with WatchdogSec=: READY=1 once serving, WATCHDOG=1 from
 * the loop about twice per interval, STOPPING=1 at SIGTERM; a watchdog
 * meant for another pid is not ours to feed.
 */
START_TEST(notify_and_watchdog)
{
	char path[512], pid[32];
	int fd = notify_socket(path, sizeof path), n;

	setenv("NOTIFY_SOCKET", path, 1);
	setenv("WATCHDOG_USEC", "100000", 1);
	dh_start(model, NULL, NULL);
	ck_assert_int_eq(count_notes(fd, "READY=1", 300), 1);
	n = count_notes(fd, "WATCHDOG=1", 1000);
	ck_assert_msg(n >= 10 && n <= 30, "%d keep-alives in 1 s at 100 ms",
	    n);
	kill(dh_pid(), SIGTERM);
	ck_assert_int_ge(count_notes(fd, "STOPPING=1", 1000), 1);
	ck_assert_int_eq(dh_wait(), 0);

	snprintf(pid, sizeof pid, "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	dh_start(model, NULL, NULL);
	ck_assert_int_eq(count_notes(fd, "WATCHDOG=1", 500), 0);
	dh_stop();
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	close(fd);
}
END_TEST

/* sinkd on a passed socket lfd (see spawn), its output in out. */
static pid_t
start_activated(int lfd, const char *out)
{
	const char *argv[] = { dh_bin("sinkd"), "-m", model, "-c", "/dev/null",
		"--db", ":memory:", "--socket", "/nonexistent/ignored", NULL };

	return spawn(out, argv, lfd);
}

/*
 * Socket activation: sinkd serves on the socket it was passed (not the
 * --socket it was given), and leaves the socket file to systemd when it
 * stops.  A passed fd that is not a listening socket is refused.
 */
START_TEST(socket_activation)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char out[512], sock[512];
	struct dh_conn c;
	int lfd, i, p2[2];
	pid_t p;

	tmp_path(sock, sizeof sock, "activated");
	tmp_path(out, sizeof out, "activated.out");
	snprintf(sun.sun_path, sizeof sun.sun_path, "%.100s", sock);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof sun), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);
	p = start_activated(lfd, out);
	/* A client may connect before sinkd runs: the kernel queues it. */
	memset(&c, 0, sizeof c);
	c.buf = malloc(DH_BUF);
	ck_assert_ptr_nonnull(c.buf);
	c.fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(c.fd, (struct sockaddr *)&sun, sizeof sun), 0);
	dh_rq(&c, "list", 1, "");
	dh_expect(&c, "ok", 1);
	dh_close(&c);
	expect_in(out, "listening on the socket systemd passed", "log");
	kill(p, SIGTERM);
	ck_assert_int_eq(wait_exit(p), 0);
	ck_assert_int_eq(access(sock, F_OK), 0);
	close(lfd);

	/* A pipe where the socket should be. */
	ck_assert_int_eq(pipe(p2), 0);
	p = start_activated(p2[0], out);
	i = wait_exit(p);
	ck_assert_msg(i == 2, "exit %d: %s", i, slurp(out));
	expect_in(out, "not a listening Unix stream socket", "a pipe");
	close(p2[0]);
	close(p2[1]);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("service");
	TCase *tc = tcase_create("service");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, setup, dh_teardown);
	tcase_add_checked_fixture(tc, NULL, dh_each_teardown);
	tcase_add_test(tc, one_writer_per_database);
	tcase_add_test(tc, socket_dir_must_be_private);
	tcase_add_test(tc, client_checks_the_server);
	tcase_add_test(tc, group_members_only);
	tcase_add_test(tc, settings_checked_as_a_turn_would);
	tcase_add_test(tc, unsaved_at_shutdown_is_an_error);
	tcase_add_test(tc, notify_and_watchdog);
	tcase_add_test(tc, socket_activation);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
