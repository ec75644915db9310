/*
 * bench_dconn: one client connection of `sinkd-bench daemon`.  Requests
 * go out whole (blocking writes: the daemon reads while it works); every
 * reply is handled as it is read, and a token's time is when its bytes
 * arrived, which is what a client sees.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench_daemon.h"
#include "err.h"
#include "opt.h"

void
dconn_init(struct dconn *c, int n)
{
	int i;

	memset(c, 0, (size_t)n * sizeof *c);
	for (i = 0; i < n; i++)
		c[i].fd = -1;
}

int
dconn_open(struct dconn *c, const char *sock, char *cause)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	memset(c, 0, sizeof *c);
	c->fd = -1;
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

void
dconn_close(struct dconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c->gaps);
	free(c->data);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

int
dconn_send(struct dconn *c, struct proto_out *out, char *cause)
{
	const char *data;
	size_t len, off = 0;
	ssize_t n;

	if (proto_out_finish(out, 16u << 20, &data, &len, cause) != 0)
		return -1;
	c->t_send = opt_now();
	c->sent++;
	while (off < len) {
		if ((n = write(c->fd, data + off, len - off)) < 0) {
			if (errno == EINTR)
				continue;
			return err_set(cause, "write: %s", strerror(errno));
		}
		off += (size_t)n;
	}
	return 0;
}

static int
on_token(struct dconn *c, double now)
{
	struct dgap *g;

	if (c->turn_tokens++ == 0)
		c->t_first = now;
	else {
		if (c->n_gaps == c->gaps_cap) {
			c->gaps_cap = c->gaps_cap ? c->gaps_cap * 2 : 256;
			g = realloc(c->gaps, (size_t)c->gaps_cap * sizeof *g);
			if (g == NULL)
				return -1;
			c->gaps = g;
		}
		c->gaps[c->n_gaps].t = now;
		c->gaps[c->n_gaps++].gap = now - c->t_last;
	}
	c->t_last = now;
	c->tokens++;
	return 0;
}

static int
on_data(struct dconn *c, const struct proto_msg *m, char *cause)
{
	const void *b;
	size_t len, cap;
	uint8_t *p;

	if (proto_get_bin(m, "data", 1, 16u << 20, &b, &len, cause) != 0)
		return -1;
	if (c->data_len + len > c->data_cap) {
		cap = c->data_cap ? c->data_cap : 1 << 20;
		while (cap < c->data_len + len)
			cap *= 2;
		if ((p = realloc(c->data, cap)) == NULL)
			return err_set(cause, "out of memory");
		c->data = p;
		c->data_cap = cap;
	}
	memcpy(c->data + c->data_len, b, len);
	c->data_len += len;
	return 0;
}

/* One message: a token, export data, a final reply or an error. */
static int
on_message(struct dconn *c, const struct proto_msg *m, double now,
    char *cause)
{
	const char *k, *msg = "";
	size_t kl, ml = 0;

	if (proto_get_str(m, "kind", 1, 16, &k, &kl, cause) != 0)
		return -1;
	if (kl == 5 && memcmp(k, "token", 5) == 0) {
		if (on_token(c, now) != 0)
			return err_set(cause, "out of memory");
	} else if (kl == 4 && memcmp(k, "data", 4) == 0) {
		if (c->keep_data && on_data(c, m, cause) != 0)
			return -1;
	} else if (kl == 5 && memcmp(k, "error", 5) == 0) {
		proto_get_str(m, "message", 0, 1024, &msg, &ml, NULL);
		return err_set(cause, "sinkd: %.*s", (int)ml, msg);
	} else if ((kl == 4 && memcmp(k, "done", 4) == 0) ||
	    (kl == 2 && memcmp(k, "ok", 2) == 0) ||
	    (kl == 7 && memcmp(k, "session", 7) == 0)) {
		c->finals++;
		c->t_final = now;
		c->turn_tokens = 0;
	}
	/* Anything else (progress, warning) ends nothing. */
	return 0;
}

int
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
	    32u << 20, &body, cause)) == 1) {
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

int
dconn_pump(struct dconn *c, int n, int ms, char *cause)
{
	struct pollfd pfd[DB_MAX_SESS + 4];
	int i, k = 0, idx[DB_MAX_SESS + 4];

	for (i = 0; i < n && k < DB_MAX_SESS + 4; i++) {
		if (c[i].fd < 0)
			continue;
		pfd[k].fd = c[i].fd;
		pfd[k].events = POLLIN;
		idx[k++] = i;
	}
	if (poll(pfd, (nfds_t)k, ms) < 0 && errno != EINTR)
		return err_set(cause, "poll: %s", strerror(errno));
	for (i = 0; i < k; i++)
		if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    dconn_read(&c[idx[i]], cause) != 0)
			return -1;
	return 0;
}

int
dconn_wait(struct dconn *c, int finals, char *cause)
{
	double end = opt_now() + 600;

	while (c->finals < finals) {
		if (opt_now() > end)
			return err_set(cause, "no reply from sinkd in 600 s");
		if (dconn_pump(c, 1, 1000, cause) != 0)
			return -1;
	}
	return 0;
}

int
dconn_create(struct dconn *c, const char *name, long cache, char *cause)
{
	struct proto_out out;
	int rc;

	proto_out_init(&out);
	proto_pack_map(&out, cache > 0 ? 6 : 5);
	proto_put_cstr(&out, "op", "create");
	proto_put_u64(&out, "id", 1);
	proto_put_cstr(&out, "name", name);
	if (cache > 0)
		proto_put_u64(&out, "cache", (uint64_t)cache);
	proto_put_cstr(&out, "kv", "f32");
	proto_put_f64(&out, "temp", 0.0);
	rc = dconn_send(c, &out, cause);
	proto_out_free(&out);
	return rc;
}

int
dconn_complete(struct dconn *c, const char *name, const char *text,
    long max_tokens, char *cause)
{
	struct proto_out out;
	int rc;

	proto_out_init(&out);
	proto_pack_map(&out, 6);
	proto_put_cstr(&out, "op", "complete");
	proto_put_u64(&out, "id", 2);
	proto_put_cstr(&out, "name", name);
	proto_put_cstr(&out, "text", text);
	proto_put_u64(&out, "max_tokens", (uint64_t)max_tokens);
	proto_put_bool(&out, "ignore_eos", 1);
	rc = dconn_send(c, &out, cause);
	proto_out_free(&out);
	return rc;
}

/* op NAME: the requests whose only key is the session's name. */
static int
name_op(struct dconn *c, const char *op, const char *name, char *cause)
{
	struct proto_out out;
	int rc;

	proto_out_init(&out);
	proto_pack_map(&out, 3);
	proto_put_cstr(&out, "op", op);
	proto_put_u64(&out, "id", 3);
	proto_put_cstr(&out, "name", name);
	rc = dconn_send(c, &out, cause);
	proto_out_free(&out);
	return rc;
}

int
dconn_delete(struct dconn *c, const char *name, char *cause)
{
	return name_op(c, "delete", name, cause);
}

int
dconn_feed(struct dconn *c, const char *name, const char *text, char *cause)
{
	struct proto_out out;
	int rc;

	proto_out_init(&out);
	proto_pack_map(&out, 4);
	proto_put_cstr(&out, "op", "feed");
	proto_put_u64(&out, "id", 4);
	proto_put_cstr(&out, "name", name);
	proto_put_cstr(&out, "text", text);
	rc = dconn_send(c, &out, cause);
	proto_out_free(&out);
	return rc;
}

int
dconn_run_turn(struct dconn *c, const char *name, long cache, long n,
    char *cause)
{
	int f = c->finals;

	if (dconn_create(c, name, cache, cause) != 0 ||
	    dconn_complete(c, name, DB_PROMPT, n, cause) != 0)
		return -1;
	return dconn_wait(c, f + 2, cause);
}
