/*
 * bench_daemon: `sinkd-bench daemon`, what the socket costs.  Runs the
 * same greedy continuation in the engine alone and through a real sinkd
 * (started on a private socket): decode tokens/s and first-token
 * latency of one session, then the aggregate tokens/s of 1, 4, 16 ...
 * sessions generating at once.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "model.h"
#include "opt.h"
#include "pool.h"
#include "proto.h"
#include "sampler.h"
#include "seq.h"

#define PROMPT "Once upon a time"
#define MAX_SESS 64

struct dopts {
	const char *model, *sinkd;
	long n_tokens, threads, reps, cache;
	long sess[8];
	int n_sess;
};

struct dconn {
	int fd;
	uint8_t *buf;
	size_t len, cap, used;
	double t_send, t_first, t_last;
	long tokens;
	int done;
};

/* ---- the engine alone ---- */

/* First-token latency and decode tokens/s of one greedy run. */
static int
engine_once(struct model *m, struct pool *p, const struct dopts *o,
    double *first, double *tps, char *cause)
{
	struct seq_opts so;
	struct sampler_params sp;
	struct seq *s = NULL;
	struct seq_work *w = seq_work_new(m, 256, cause);
	struct sampler *smp = NULL;
	float *lg = malloc((size_t)m->hp.n_vocab * sizeof *lg);
	int32_t *ids = NULL, id;
	size_t n;
	double t0, t1;
	long i;
	int rc = -1;

	seq_opts_default(&so);
	so.n_cache = (int32_t)o->cache;
	sampler_defaults(&sp);
	sp.temp = 0.0f;
	if (w == NULL || lg == NULL || (s = seq_new(m, &so, cause)) == NULL ||
	    (smp = sampler_new(&sp, m->hp.n_vocab, cause)) == NULL ||
	    tok_encode(m->tok, PROMPT, strlen(PROMPT), tok_add_bos(m->tok),
	    &ids, &n, cause) != 0)
		goto out;
	t0 = opt_now();
	if (seq_eval(s, w, p, ids, n, lg, 0, cause) != 0)
		goto out;
	id = sampler_sample(smp, lg);
	t1 = opt_now();
	*first = t1 - t0;
	for (i = 1; i < o->n_tokens; i++) {
		if (seq_eval(s, w, p, &id, 1, lg, 0, cause) != 0)
			goto out;
		id = sampler_sample(smp, lg);
	}
	*tps = (double)(o->n_tokens - 1) / (opt_now() - t1);
	rc = 0;
out:
	free(ids);
	free(lg);
	sampler_free(smp);
	seq_free(s);
	seq_work_free(w);
	return rc;
}

/* ---- through sinkd ---- */

static pid_t
start_sinkd(const struct dopts *o, const char *sock, char *cause)
{
	char threads[32];
	pid_t pid;
	int i, fd;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(threads, sizeof threads, "%ld", o->threads);
	if ((pid = fork()) < 0) {
		err_set(cause, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* No user settings, nothing kept: each run starts clean. */
		execl(o->sinkd, o->sinkd, "-c", "/dev/null", "-m", o->model,
		    "--socket", sock, "--db", ":memory:", "-t", threads,
		    "--max-tokens", "16777216", "--max-clients", "100",
		    "--log-level", "warn", (char *)NULL);
		fprintf(stderr, "sinkd-bench: cannot run %s: %s\n", o->sinkd,
		    strerror(errno));
		_exit(127);
	}
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
	for (i = 0; i < 600; i++) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
			close(fd);
			return pid;
		}
		close(fd);
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		usleep(50000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	err_set(cause, "%s did not start on %s", o->sinkd, sock);
	return -1;
}

static int
dconn_open(struct dconn *c, const char *sock, char *cause)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	memset(c, 0, sizeof *c);
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
	c->cap = 1 << 16;
	if ((c->buf = malloc(c->cap)) == NULL)
		return err_set(cause, "out of memory");
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sun,
	    sizeof sun) != 0)
		return err_set(cause, "%s: %s", sock, strerror(errno));
	return 0;
}

static void
dconn_close(struct dconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
}

/* create NAME (greedy, the cache size), then complete N tokens. */
static int
dconn_start(struct dconn *c, const char *name, const struct dopts *o,
    char *cause)
{
	struct proto_out out;
	const char *data;
	size_t len;
	int rc;

	proto_out_init(&out);
	proto_pack_map(&out, 5);
	proto_put_cstr(&out, "op", "create");
	proto_put_u64(&out, "id", 1);
	proto_put_cstr(&out, "name", name);
	proto_put_u64(&out, "cache", (uint64_t)o->cache);
	proto_put_f64(&out, "temp", 0.0);
	rc = proto_out_finish(&out, PROTO_MAX_FRAME, &data, &len, cause);
	if (rc == 0 && write(c->fd, data, len) != (ssize_t)len)
		rc = err_set(cause, "write: %s", strerror(errno));
	proto_out_reset(&out);
	proto_pack_map(&out, 6);
	proto_put_cstr(&out, "op", "complete");
	proto_put_u64(&out, "id", 2);
	proto_put_cstr(&out, "name", name);
	proto_put_cstr(&out, "text", PROMPT);
	proto_put_u64(&out, "max_tokens", (uint64_t)o->n_tokens);
	proto_put_bool(&out, "ignore_eos", 1);
	if (rc == 0)
		rc = proto_out_finish(&out, PROTO_MAX_FRAME, &data, &len,
		    cause);
	c->t_send = opt_now();
	if (rc == 0 && write(c->fd, data, len) != (ssize_t)len)
		rc = err_set(cause, "write: %s", strerror(errno));
	proto_out_free(&out);
	return rc;
}

/* Handles one message of c; -1 with cause on an error reply. */
static int
on_message(struct dconn *c, const struct proto_msg *m, double now,
    char *cause)
{
	const char *k, *msg = "";
	size_t kl, ml = 0;

	if (proto_get_str(m, "kind", 1, 16, &k, &kl, cause) != 0)
		return -1;
	if (kl == 5 && memcmp(k, "token", 5) == 0) {
		if (c->tokens++ == 0)
			c->t_first = now;
		c->t_last = now;
	} else if (kl == 4 && memcmp(k, "done", 4) == 0)
		c->done = 1;
	else if (kl == 5 && memcmp(k, "error", 5) == 0) {
		proto_get_str(m, "message", 0, 1024, &msg, &ml, NULL);
		return err_set(cause, "sinkd: %.*s", (int)ml, msg);
	}
	return 0;
}

/* Reads what is there and handles every whole frame; -1 on error/EOF. */
static int
dconn_read(struct dconn *c, char *cause)
{
	struct proto_msg m;
	size_t body, off = 0;
	double now;
	ssize_t n;
	int rc;

	if (c->len == c->cap) {
		uint8_t *b = realloc(c->buf, c->cap * 2);
		if (b == NULL)
			return err_set(cause, "out of memory");
		c->buf = b;
		c->cap *= 2;
	}
	if ((n = read(c->fd, c->buf + c->len, c->cap - c->len)) <= 0)
		return err_set(cause, "sinkd closed the connection");
	c->len += (size_t)n;
	now = opt_now();
	while ((rc = proto_frame_check(c->buf + off, c->len - off,
	    PROTO_MAX_FRAME * 16, &body, cause)) == 1) {
		if (proto_msg_parse(&m, c->buf + off + 4, body, cause) != 0)
			return -1;
		rc = on_message(c, &m, now, cause);
		proto_msg_free(&m);
		if (rc != 0)
			return -1;
		off += 4 + body;
	}
	if (rc < 0)
		return -1;
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
	return 0;
}

/* Runs k sessions at once to the end; their connections are filled in. */
static int
run_sessions(const struct dopts *o, const char *sock, struct dconn *c,
    int k, int round, char *cause)
{
	struct pollfd pfd[MAX_SESS];
	char name[32];
	int i, left = k;

	for (i = 0; i < k; i++) {
		snprintf(name, sizeof name, "b%d-%d", round, i);
		if (dconn_open(&c[i], sock, cause) != 0 ||
		    dconn_start(&c[i], name, o, cause) != 0)
			return -1;
		pfd[i].fd = c[i].fd;
		pfd[i].events = POLLIN;
	}
	while (left > 0) {
		if (poll(pfd, (nfds_t)k, 60000) <= 0)
			return err_set(cause, "no reply from sinkd in 60 s");
		for (i = 0; i < k; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLHUP)) || c[i].done)
				continue;
			if (dconn_read(&c[i], cause) != 0)
				return -1;
			if (c[i].done)
				left--;
		}
	}
	return 0;
}

static void
free_conns(struct dconn *c, int k)
{
	int i;

	for (i = 0; i < k; i++)
		dconn_close(&c[i]);
}

static void
init_conns(struct dconn *c, int k)
{
	int i;

	memset(c, 0, (size_t)k * sizeof *c);
	for (i = 0; i < k; i++)
		c[i].fd = -1;
}

/* One session, reps times: first-token latency and decode tokens/s. */
static int
socket_single(const struct dopts *o, const char *sock, double *first,
    double *tps, char *cause)
{
	struct dconn c;
	long r;
	int rc = 0;

	for (r = 0; r < o->reps && rc == 0; r++) {
		init_conns(&c, 1);
		rc = run_sessions(o, sock, &c, 1, (int)r, cause);
		if (rc == 0 && c.tokens != o->n_tokens)
			rc = err_set(cause, "%ld tokens, not %ld", c.tokens,
			    o->n_tokens);
		if (rc == 0) {
			first[r] = c.t_first - c.t_send;
			tps[r] = (double)(c.tokens - 1) /
			    (c.t_last - c.t_first);
		}
		free_conns(&c, 1);
	}
	return rc;
}

/* k sessions at once: aggregate tokens/s, and slowest/fastest session. */
static int
socket_many(const struct dopts *o, const char *sock, int k, double *agg,
    double *spread, char *cause)
{
	struct dconn c[MAX_SESS];
	double t0 = opt_now(), t1 = 0, lo = 1e30, hi = 0, r;
	long total = 0;
	int i, rc;

	init_conns(c, k);
	rc = run_sessions(o, sock, c, k, 1000 + k, cause);
	for (i = 0; rc == 0 && i < k; i++) {
		total += c[i].tokens;
		t1 = c[i].t_last > t1 ? c[i].t_last : t1;
		r = (double)c[i].tokens / (c[i].t_last - c[i].t_send);
		lo = r < lo ? r : lo;
		hi = r > hi ? r : hi;
	}
	free_conns(c, k);
	if (rc != 0)
		return -1;
	*agg = (double)total / (t1 - t0);
	*spread = hi / lo;
	return 0;
}

static int
daemon_args(int argc, char **argv, struct dopts *o, char *cause)
{
	static const struct option lo[] = {
		{ "sessions", required_argument, NULL, 'S' },
		{ "sinkd", required_argument, NULL, 'd' },
		{ "cache", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, bad = 0;

	while (!bad && (c = getopt_long(argc, argv, "m:n:t:r:h", lo, NULL)) !=
	    -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'd': o->sinkd = optarg; break;
		case 'n': bad = opt_long("-n", optarg, 2, 1 << 24, &o->n_tokens,
		    cause); break;
		case 't': bad = opt_long("-t", optarg, 1, 512, &o->threads,
		    cause); break;
		case 'r': bad = opt_long("-r", optarg, 1, 100, &o->reps, cause);
			break;
		case 'c': bad = opt_long("--cache", optarg, 8, SEQ_MAX_CACHE,
		    &o->cache, cause); break;
		case 'S': bad = opt_long_list("--sessions", optarg, 1, MAX_SESS,
		    o->sess, 8, &o->n_sess, cause); break;
		case 'h':
			printf("usage: sinkd-bench daemon [-m MODEL] [-n 128] "
			    "[-t THREADS] [-r 3] [--cache 1024]\n"
			    "                          [--sessions 1,4,16] "
			    "[--sinkd PATH]\n"
			    "Greedy continuation of \"%s\" in the engine alone "
			    "and through a sinkd\nstarted on a private socket "
			    "(default: the sinkd beside this program):\ndecode "
			    "tokens/s, first-token latency, and aggregate "
			    "tokens/s of\nconcurrent sessions.\n", PROMPT);
			return 1;
		default: return err_set(cause, "bad usage (see --help)");
		}
	}
	if (bad)
		return -1;
	if (o->model == NULL && (o->model = opt_default_model()) == NULL)
		return err_set(cause, "%s", opt_no_model_hint);
	return 0;
}

/* The sinkd beside argv0, unless --sinkd says. */
static void
find_sinkd(struct dopts *o, const char *argv0, char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char *slash;

	if (o->sinkd != NULL)
		return;
	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL)
			*slash = '\0';
		snprintf(buf, len, "%s/sinkd", exe);
	} else
		snprintf(buf, len, "%s", argv0);
	o->sinkd = buf;
}

static int
engine_part(const struct dopts *o, double *first, double *tps, char *cause)
{
	struct model *m = model_open(o->model, NULL, cause);
	struct pool *p = m != NULL ? pool_new((int)o->threads, cause) : NULL;
	double f, t;
	long r;
	int rc = p != NULL ? 0 : -1;

	if (rc == 0)
		rc = engine_once(m, p, o, &f, &t, cause); /* warm-up */
	for (r = 0; rc == 0 && r < o->reps; r++)
		rc = engine_once(m, p, o, &first[r], &tps[r], cause);
	if (rc == 0)
		printf("model: %s, %ld threads, cache %ld, %ld tokens\n",
		    m->desc, o->threads, o->cache, o->n_tokens);
	pool_free(p);
	model_close(m);
	return rc;
}

static int
socket_part(const struct dopts *o, const double *ef, const double *et,
    char *cause)
{
	char dir[] = "/tmp/sinkd-bench-XXXXXX", sock[64];
	double first[100], tps[100], agg, spread;
	struct stats sf, st, ef_s, et_s;
	double efc[100], etc_[100];
	pid_t pid;
	int i, rc;

	if (mkdtemp(dir) == NULL)
		return err_set(cause, "mkdtemp: %s", strerror(errno));
	snprintf(sock, sizeof sock, "%s/sock", dir);
	if ((pid = start_sinkd(o, sock, cause)) < 0) {
		rmdir(dir);
		return -1;
	}
	rc = socket_single(o, sock, first, tps, cause);
	if (rc == 0) {
		memcpy(efc, ef, (size_t)o->reps * sizeof *ef);
		memcpy(etc_, et, (size_t)o->reps * sizeof *et);
		ef_s = stats_of(efc, (int)o->reps);
		et_s = stats_of(etc_, (int)o->reps);
		sf = stats_of(first, (int)o->reps);
		st = stats_of(tps, (int)o->reps);
		printf("decode, one session: engine %.1f tok/s, through sinkd "
		    "%.1f tok/s (%.1f%%)\n", et_s.median, st.median,
		    100.0 * st.median / et_s.median);
		printf("first token: engine %.3f ms, through sinkd %.3f ms "
		    "(+%.3f ms)\n", ef_s.median * 1e3, sf.median * 1e3,
		    (sf.median - ef_s.median) * 1e3);
		printf("%10s %14s %22s\n", "sessions", "aggregate tok/s",
		    "fastest/slowest session");
	}
	for (i = 0; rc == 0 && i < o->n_sess; i++) {
		rc = socket_many(o, sock, (int)o->sess[i], &agg, &spread,
		    cause);
		if (rc == 0)
			printf("%10ld %14.1f %22.2fx\n", o->sess[i], agg,
			    spread);
		fflush(stdout);
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	unlink(sock);
	rmdir(dir);
	return rc;
}

int
bench_daemon(int argc, char **argv)
{
	struct dopts o = { .n_tokens = 128, .reps = 3, .cache = 1024,
		.threads = sysconf(_SC_NPROCESSORS_ONLN), .n_sess = 3,
		.sess = { 1, 4, 16 } };
	char cause[ERR_LEN] = "", path[PATH_MAX + 8];
	double ef[100], et[100];
	int rc;

	if ((rc = daemon_args(argc, argv, &o, cause)) != 0) {
		if (rc > 0)
			return 0;
		fprintf(stderr, "sinkd-bench daemon: %s\n", cause);
		return 2;
	}
	find_sinkd(&o, argv[0], path, sizeof path);
	signal(SIGPIPE, SIG_IGN);
	if (engine_part(&o, ef, et, cause) != 0 ||
	    socket_part(&o, ef, et, cause) != 0) {
		fprintf(stderr, "sinkd-bench daemon: %s\n", cause);
		return 1;
	}
	return 0;
}
