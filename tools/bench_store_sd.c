/*
 * bench_store_sd: the sinkd that `sinkd-bench store` drives: started on
 * a private socket and database, spoken to one request at a time (each
 * read up to its last message), and stopped; see bench_store.h.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_store.h"
#include "opt.h"
#include "proto.h"

#define REPLY_WAIT_MS 600000	/* a long feed on a slow machine */
#define DB_FILE "store.db"

typedef int final_fn(void *arg, const struct proto_msg *, char *cause);

static int
sd_connect(struct sd *d)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", d->sock);
	d->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (d->fd >= 0 && connect(d->fd, (struct sockaddr *)&sun,
	    sizeof sun) == 0)
		return 0;
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	return -1;
}

static void
sd_exec(const struct sd *d, long max_sessions)
{
	const struct sopts *o = d->o;
	char t[32], c[32], ms[32];

	snprintf(t, sizeof t, "%ld", o->threads);
	snprintf(c, sizeof c, "%ld", o->cache);
	snprintf(ms, sizeof ms, "%ld", max_sessions);
	/* Should the benchmark die, its sinkd ends too. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* -c /dev/null: no sinkd.conf of the user's changes the figures. */
	execl(o->sinkd, o->sinkd, "-c", "/dev/null", "-m", o->model,
	    "--socket", d->sock, "--db", d->db, "-t", t, "--cache", c, "--kv",
	    o->kv, "--max-sessions", ms, "--max-tokens", "16777216",
	    "--log-level", "warn", (char *)NULL);
	fprintf(stderr, "sinkd-bench store: cannot run %s: %s\n", o->sinkd,
	    strerror(errno));
	_exit(127);
}

int
sd_start(struct sd *d, long max_sessions, char *cause)
{
	int i, st;

	fflush(stdout);
	if ((d->pid = fork()) < 0)
		return err_set(cause, "fork: %s", strerror(errno));
	if (d->pid == 0)
		sd_exec(d, max_sessions);
	for (i = 0; i < 1200; i++) {
		if (sd_connect(d) == 0)
			return 0;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = -1;
			return err_set(cause, "%s exited before serving "
			    "(status %d; its message is above)", d->o->sinkd,
			    WIFEXITED(st) ? WEXITSTATUS(st) : 128 +
			    WTERMSIG(st));
		}
		usleep(50000);
	}
	return err_set(cause, "%s did not start on %s in 60 s", d->o->sinkd,
	    d->sock);
}

int
sd_stop(struct sd *d, char *cause)
{
	int st = 0;

	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	d->len = d->used = 0;
	if (d->pid <= 0)
		return 0;
	kill(d->pid, SIGTERM);
	waitpid(d->pid, &st, 0);
	d->pid = -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	return err_set(cause, "sinkd ended with %s %d", WIFEXITED(st) ?
	    "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) :
	    WTERMSIG(st));
}

/* Reads more bytes, waiting at most REPLY_WAIT_MS. */
static int
sd_read(struct sd *d, char *cause)
{
	struct pollfd p = { .fd = d->fd, .events = POLLIN };
	uint8_t *b;
	ssize_t n;

	if (d->len == d->cap) {
		if ((b = realloc(d->buf, d->cap * 2 + 65536)) == NULL)
			return err_set(cause, "out of memory");
		d->buf = b;
		d->cap = d->cap * 2 + 65536;
	}
	if (poll(&p, 1, REPLY_WAIT_MS) == 0)
		return err_set(cause, "no reply from sinkd in %d s",
		    REPLY_WAIT_MS / 1000);
	n = read(d->fd, d->buf + d->len, d->cap - d->len);
	if (n < 0 && errno == EINTR)
		return 0;
	if (n <= 0)
		return err_set(cause, "sinkd closed the connection");
	d->len += (size_t)n;
	return 0;
}

/* The next message into m; it lives until the next call. */
static int
sd_next(struct sd *d, struct proto_msg *m, char *cause)
{
	size_t body;
	int rc;

	if (d->used > 0) {
		memmove(d->buf, d->buf + d->used, d->len - d->used);
		d->len -= d->used;
		d->used = 0;
	}
	while ((rc = proto_frame_check(d->buf, d->len, PROTO_MAX_FRAME * 16,
	    &body, cause)) == 0) {
		if (sd_read(d, cause) != 0)
			return -1;
	}
	if (rc < 0 || proto_msg_parse(m, d->buf + 4, body, cause) != 0)
		return -1;
	d->used = 4 + body;
	return 0;
}

/* Handles one message: 1 when it ends the request. */
static int
sd_handle(const struct proto_msg *m, final_fn *fn, void *arg, char *cause)
{
	const char *k, *s = "", *code = "";
	size_t kl, sl = 0, cl = 0;

	if (proto_get_str(m, "kind", 1, 16, &k, &kl, cause) != 0)
		return -1;
	if (kl == 5 && memcmp(k, "error", 5) == 0) {
		proto_get_str(m, "code", 0, 64, &code, &cl, NULL);
		proto_get_str(m, "message", 0, 4096, &s, &sl, NULL);
		return err_set(cause, "sinkd: %.*s: %.*s", (int)cl, code,
		    (int)sl, s);
	}
	if (kl == 7 && memcmp(k, "warning", 7) == 0) {
		/* A snapshot that failed says so here: the figures lie. */
		proto_get_str(m, "message", 0, 4096, &s, &sl, NULL);
		return err_set(cause, "sinkd warns: %.*s", (int)sl, s);
	}
	if ((kl == 2 && memcmp(k, "ok", 2) == 0) || (kl == 4 &&
	    memcmp(k, "done", 4) == 0))
		return fn != NULL && fn(arg, m, cause) != 0 ? -1 : 1;
	return 0;	/* tokens, progress */
}

/* Sends a request and reads up to its last message. */
static int
sd_call(struct sd *d, struct proto_out *out, final_fn *fn, void *arg,
    char *cause)
{
	struct proto_msg m;
	const char *data;
	size_t len, off;
	ssize_t n;
	int rc;

	if (proto_out_finish(out, PROTO_MAX_FRAME, &data, &len, cause) != 0)
		return -1;
	for (off = 0; off < len; off += (size_t)n) {
		if ((n = write(d->fd, data + off, len - off)) <= 0)
			return err_set(cause, "write to sinkd: %s",
			    strerror(errno));
	}
	do {
		if (sd_next(d, &m, cause) != 0)
			return -1;
		rc = sd_handle(&m, fn, arg, cause);
		proto_msg_free(&m);
	} while (rc == 0);
	return rc < 0 ? -1 : 0;
}

static int
get_usage(void *arg, const struct proto_msg *m, char *cause)
{
	struct usage *u = arg;
	const msgpack_object *o = proto_get(m, "usage");
	char w[ERR_LEN];

	if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
		return err_set(cause, "sinkd's done message has no usage");
	if (proto_map_get_f64(o, "prefill_ms", 1, 0, 1e12, &u->prefill_ms, w) ||
	    proto_map_get_f64(o, "decode_ms", 1, 0, 1e12, &u->decode_ms, w) ||
	    proto_map_get_f64(o, "load_ms", 1, 0, 1e12, &u->load_ms, w) ||
	    proto_map_get_f64(o, "save_ms", 1, 0, 1e12, &u->save_ms, w) ||
	    proto_map_get_u64(o, "saved_bytes", 1, 0, UINT64_MAX,
	    &u->saved_bytes, w) || proto_map_get_u64(o, "prompt_tokens", 1, 0,
	    UINT64_MAX, &u->prompt, w) || proto_map_get_u64(o,
	    "generated_tokens", 1, 0, UINT64_MAX, &u->generated, w) ||
	    proto_map_get_u64(o, "evicted_tokens", 1, 0, UINT64_MAX,
	    &u->evicted, w) || proto_map_get_bool(o, "saved", 1, &u->saved, w))
		return err_set(cause, "sinkd's usage: %s", w);
	if (!u->saved)
		return err_set(cause, "sinkd did not save the turn");
	return 0;
}

static int
get_bytes(void *arg, const struct proto_msg *m, char *cause)
{
	const msgpack_object *o = proto_get(m, "session");

	if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
		return err_set(cause, "sinkd's create reply has no session");
	return proto_map_get_u64(o, "bytes", 1, 0, UINT64_MAX, arg, cause);
}

struct strbuf {
	char *s;
	size_t size;
};

static int
get_model(void *arg, const struct proto_msg *m, char *cause)
{
	struct strbuf *b = arg;
	const char *s;
	size_t len;

	if (proto_get_str(m, "model", 1, 4096, &s, &len, cause) != 0)
		return -1;
	snprintf(b->s, b->size, "%.*s", (int)len, s);
	return 0;
}

static void
head(struct proto_out *out, struct sd *d, const char *op, size_t pairs)
{
	proto_pack_map(out, pairs);
	proto_put_cstr(out, "op", op);
	proto_put_u64(out, "id", ++d->id);
}

int
sd_create(struct sd *d, const char *name, uint64_t *bytes, char *cause)
{
	struct proto_out out;
	int rc;

	proto_out_init(&out);
	head(&out, d, "create", 5);
	proto_put_cstr(&out, "name", name);
	proto_put_u64(&out, "cache", (uint64_t)d->o->cache);
	proto_put_cstr(&out, "kv", d->o->kv);
	rc = sd_call(d, &out, get_bytes, bytes, cause);
	proto_out_free(&out);
	return rc;
}

int
sd_status(struct sd *d, char *model, size_t size, char *cause)
{
	struct strbuf b = { model, size };
	struct proto_out out;
	int rc;

	proto_out_init(&out);
	head(&out, d, "status", 2);
	rc = sd_call(d, &out, get_model, &b, cause);
	proto_out_free(&out);
	return rc;
}

int
sd_turn(struct sd *d, const char *name, const char *text, long max_tokens,
    struct usage *u, char *cause)
{
	struct proto_out out;
	double t0;
	int rc;

	memset(u, 0, sizeof *u);
	proto_out_init(&out);
	head(&out, d, max_tokens > 0 ? "complete" : "feed", max_tokens > 0 ?
	    6 : 4);
	proto_put_cstr(&out, "name", name);
	proto_put_cstr(&out, "text", text);
	if (max_tokens > 0) {
		proto_put_u64(&out, "max_tokens", (uint64_t)max_tokens);
		proto_put_bool(&out, "ignore_eos", 1);
	}
	t0 = opt_now();
	rc = sd_call(d, &out, get_usage, u, cause);
	u->wall_ms = (opt_now() - t0) * 1e3;
	proto_out_free(&out);
	return rc;
}

uint64_t
sd_file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

void
sd_csv(struct sd *d, const char *part, long n, const char *name,
    const struct usage *u)
{
	if (d->csv == NULL)
		return;
	fprintf(d->csv, "%s,%ld,%s,%llu,%llu,%.3f,%.3f,%.3f,%llu,%.3f,%.3f,"
	    "%llu,%llu\n", part, n, name, (unsigned long long)u->prompt,
	    (unsigned long long)u->generated, u->prefill_ms, u->decode_ms,
	    u->save_ms, (unsigned long long)u->saved_bytes, u->load_ms,
	    u->wall_ms, (unsigned long long)sd_file_size(d->db),
	    (unsigned long long)sd_file_size(d->wal));
}

int
sd_init(struct sd *d, const struct sopts *o, char *cause)
{
	const char *tmp = o->dir != NULL ? o->dir : getenv("TMPDIR");
	size_t len;

	memset(d, 0, sizeof *d);
	d->o = o;
	d->fd = d->pid = -1;
	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(d->dir, sizeof d->dir, "%s/sinkd-bench-store-XXXXXX", tmp);
	if ((len = strlen(d->dir)) + sizeof "/sock" > sizeof d->sock) {
		err_set(cause, "%s: too long a path for a socket", d->dir);
		d->dir[0] = '\0';
		return -1;
	}
	if (mkdtemp(d->dir) == NULL) {
		err_set(cause, "%s: %s", d->dir, strerror(errno));
		d->dir[0] = '\0';
		return -1;
	}
	memcpy(d->sock, d->dir, len);
	memcpy(d->sock + len, "/sock", sizeof "/sock");
	sd_set_db(d, DB_FILE);
	if (o->csv != NULL && (d->csv = fopen(o->csv, "w")) == NULL)
		return err_set(cause, "%s: %s", o->csv, strerror(errno));
	if (d->csv != NULL)
		fprintf(d->csv, "part,n,session,prompt_tokens,generated_tokens,"
		    "prefill_ms,decode_ms,save_ms,saved_bytes,load_ms,wall_ms,"
		    "db_bytes,wal_bytes\n");
	return 0;
}

void
sd_set_db(struct sd *d, const char *file)
{
	snprintf(d->db, sizeof d->db, "%s/%s", d->dir, file);
	snprintf(d->wal, sizeof d->wal, "%s/%s-wal", d->dir, file);
}

void
sd_cleanup(struct sd *d)
{
	static const char *const f[] = { "sock", DB_FILE, DB_FILE "-wal",
		DB_FILE "-shm", DB_FILE ".lock" };
	char p[PATH_MAX + 32];
	size_t i;

	sd_stop(d, NULL);
	free(d->buf);
	if (d->csv != NULL)
		fclose(d->csv);
	if (d->dir[0] == '\0')
		return;
	if (d->o->keep) {
		fprintf(stderr, "sinkd-bench store: kept %s\n", d->db);
		return;
	}
	for (i = 0; i < sizeof f / sizeof f[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", d->dir, f[i]);
		unlink(p);
	}
	rmdir(d->dir);
}
