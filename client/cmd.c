/*
 * cmd: what the subcommands share (see cmd.h): the handshake, sending,
 * the wait loop that dispatches the daemon's messages by id and kind,
 * turning a request's end into an exit status, and reading stdin.
 */
#include "cmd.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "intr.h"
#include "vis.h"

const char *
cmd_session(const struct cmd_ctx *c)
{
	return c->o.session != NULL ? c->o.session : CMD_DEFAULT_SESSION;
}

const char *
cmd_name_arg(const struct cmd_ctx *c, int i)
{
	return c->o.argc > i ? c->o.argv[i] : cmd_session(c);
}

/* The daemon hung up: show its last words if it left any. */
static int
last_words(struct cmd_ctx *c, enum proto_op op)
{
	char cause[ERR_LEN];
	struct conn_msg m;
	int r;

	c->broken = 1;
	c->gone = 1;
	out_reply_end(&c->out, c->out.tty);
	while ((r = conn_read(c->conn, &m, cause)) == CONN_MSG) {
		if (m.kind == PROTO_K_ERROR) {
			c->out.ops->message(&c->out, op, &m);
			conn_msg_free(&m);
			return EXIT_FAIL;
		}
		conn_msg_free(&m);
	}
	if (r == CONN_INTR)
		return EXIT_INTR;
	fprintf(stderr, "sink: the daemon closed the connection\n");
	return EXIT_FAIL;
}

int
cmd_send(struct cmd_ctx *c, enum proto_op op)
{
	char cause[ERR_LEN];

	switch (conn_send(c->conn, cause)) {
	case CONN_MSG:
		return 0;
	case CONN_INTR:
		c->broken = 1;	/* perhaps half a frame sent */
		return EXIT_INTR;
	case CONN_EOF:
		return last_words(c, op);
	default:
		/* Nothing was sent: the connection is still good. */
		fprintf(stderr, "sink: cannot send the %s request: %s\n",
		    proto_op_name(op), cause);
		return EXIT_FAIL;
	}
}

static int
send_cancel(struct cmd_ctx *c, uint64_t target)
{
	struct proto_out *o;

	c->cancel_id = conn_begin(c->conn, PROTO_OP_CANCEL, 1);
	o = conn_out(c->conn);
	proto_pack_key(o, "target");
	proto_pack_u64(o, target);
	return cmd_send(c, PROTO_OP_CANCEL);
}

/* A Ctrl-C during a wait: 0 to wait on, or an exit status. */
static int
interrupted(struct cmd_ctx *c, uint64_t id, int cancellable, int *cancelled)
{
	intr_take();
	if (!cancellable || *cancelled) {
		/* The reply may still come: nobody would read it. */
		c->broken = 1;
		if (cancellable)
			*cancelled = 2;
		out_reply_end(&c->out, c->out.tty);
		return EXIT_INTR;
	}
	*cancelled = 1;
	return send_cancel(c, id);
}

int
cmd_wait(struct cmd_ctx *c, uint64_t id, enum proto_op op, int cancellable,
    int *cancelled, struct conn_msg *end)
{
	char cause[ERR_LEN];
	struct conn_msg m;
	int r;

	for (;;) {
		switch (conn_read(c->conn, &m, cause)) {
		case CONN_INTR:
			r = interrupted(c, id, cancellable, cancelled);
			if (r != 0)
				return r;
			continue;
		case CONN_EOF:
			return last_words(c, op);
		case CONN_ERR:
			c->broken = 1;
			out_reply_end(&c->out, c->out.tty);
			fprintf(stderr, "sink: %s\n", cause);
			return EXIT_FAIL;
		}
		if (m.id == 0 && m.kind == PROTO_K_ERROR) {
			/* About the connection: the daemon closes it. */
			c->broken = 1;
			c->out.ops->message(&c->out, op, &m);
			conn_msg_free(&m);
			return EXIT_FAIL;
		}
		if (m.id == id)
			c->heard = 1;
		if (m.id != id) {
			/* A reply to an earlier cancel: only scripts see it. */
			if (c->o.json)
				c->out.ops->message(&c->out, PROTO_OP_CANCEL,
				    &m);
		} else if (m.kind == PROTO_K_OK || m.kind == PROTO_K_ERROR ||
		    m.kind == PROTO_K_DONE) {
			*end = m;
			return 0;
		} else if (m.kind == PROTO_K_DATA && c->on_data != NULL) {
			if ((r = c->on_data(c, &m)) != 0) {
				c->broken = 1;
				conn_msg_free(&m);
				return r;
			}
		} else
			c->out.ops->message(&c->out, op, &m);
		conn_msg_free(&m);
	}
}

int
cmd_end(struct cmd_ctx *c, enum proto_op op, int cancelled,
    struct conn_msg *end)
{
	const char *finish = NULL;
	size_t len;
	int rc = EXIT_OK;

	c->out.ops->message(&c->out, op, end);
	if (end->kind == PROTO_K_ERROR) {
		rc = cancelled && end->err == PROTO_E_CANCELLED ? EXIT_INTR :
		    EXIT_FAIL;
	} else if (end->kind == PROTO_K_DONE &&
	    proto_get_str(&end->msg, "finish", 0, 64, &finish, &len,
	    NULL) == 0 && strcmp(finish, "cancelled") == 0) {
		rc = EXIT_INTR;
		if (!cancelled) {
			/* Not our Ctrl-C: sink cancel, or the daemon. */
			fprintf(stderr, "sink: the reply was cancelled\n");
			rc = EXIT_FAIL;
		}
	}
	conn_msg_free(end);
	return rc;
}

int
cmd_request(struct cmd_ctx *c, uint64_t id, enum proto_op op)
{
	struct conn_msg m;
	int r;

	if ((r = cmd_wait(c, id, op, 0, NULL, &m)) != 0)
		return r;
	return cmd_end(c, op, 0, &m);
}

/* The daemon's limits, when its hello reply says them. */
static void
hello_limits(struct cmd_ctx *c, const struct conn_msg *m)
{
	uint64_t v;

	if (proto_get_u64(&m->msg, "max_frame", 0, 1024, CONN_MAX_OUT, &v,
	    NULL) == 0)
		conn_set_max_out(c->conn, v);
	if (proto_get_u64(&m->msg, "max_prompt", 0, 1, UINT64_MAX, &v,
	    NULL) == 0)
		c->max_prompt = v;
}

static int
hello(struct cmd_ctx *c)
{
	struct proto_out *o;
	struct conn_msg m;
	uint64_t id, major = PROTO_MAJOR;
	int r;

	id = conn_begin(c->conn, PROTO_OP_HELLO, 2);
	o = conn_out(c->conn);
	proto_pack_key(o, "proto");
	proto_pack_u64(o, PROTO_MAJOR);
	proto_pack_key(o, "client");
	proto_pack_cstr(o, "sink " PACKAGE_VERSION);
	if ((r = cmd_send(c, PROTO_OP_HELLO)) != 0 ||
	    (r = cmd_wait(c, id, PROTO_OP_HELLO, 0, NULL, &m)) != 0)
		return r;
	if (m.kind == PROTO_K_ERROR && m.err == PROTO_E_VERSION) {
		vis_printf(stderr, c->out.note_tty, "sink: version: %s (this "
		    "sink speaks protocol %d.%d: use a sink and a sinkd of the "
		    "same release)\n", m.message, PROTO_MAJOR, PROTO_MINOR);
		conn_msg_free(&m);
		return EXIT_FAIL;
	}
	if (m.kind == PROTO_K_OK) {
		proto_get_u64(&m.msg, "proto", 0, 0, UINT64_MAX, &major, NULL);
		if (major != PROTO_MAJOR) {
			fprintf(stderr, "sink: version: the daemon speaks "
			    "protocol %llu, this sink %d\n",
			    (unsigned long long)major, PROTO_MAJOR);
			conn_msg_free(&m);
			return EXIT_FAIL;
		}
		hello_limits(c, &m);
	}
	return cmd_end(c, PROTO_OP_HELLO, 0, &m);
}

static int
connect_as(struct cmd_ctx *c, int quiet)
{
	char cause[ERR_LEN];
	int refused, r;

	c->broken = c->gone = 0;
	c->conn = conn_open(c->socket, &refused, cause);
	if (c->conn == NULL) {
		if (quiet && refused)
			return -1;
		fprintf(stderr, "sink: %s%s\n", cause, refused ? " (is sinkd "
		    "running? start it with: sinkd -m MODEL)" : "");
		return EXIT_UNREACHABLE;
	}
	conn_set_intr(c->conn, intr_fd());
	r = hello(c);
	return quiet && c->gone ? -1 : r;
}

int
cmd_connect(struct cmd_ctx *c)
{
	return connect_as(c, 0);
}

int
cmd_connect_quiet(struct cmd_ctx *c)
{
	return connect_as(c, 1);
}

void
cmd_disconnect(struct cmd_ctx *c)
{
	conn_close(c->conn);
	c->conn = NULL;
}

size_t
cmd_sampling_pairs(const struct cmd_opts *o)
{
	return (o->temp >= 0) + (o->top_k >= 0) + (o->top_p >= 0) +
	    (o->min_p >= 0) + (o->repeat_penalty >= 0) + (o->has_seed != 0) +
	    (o->max_tokens >= 0);
}

void
cmd_pack_sampling(struct proto_out *out, const struct cmd_opts *o)
{
	if (o->temp >= 0) {
		proto_pack_key(out, "temp");
		proto_pack_f64(out, o->temp);
	}
	if (o->top_k >= 0) {
		proto_pack_key(out, "top_k");
		proto_pack_u64(out, (uint64_t)o->top_k);
	}
	if (o->top_p >= 0) {
		proto_pack_key(out, "top_p");
		proto_pack_f64(out, o->top_p);
	}
	if (o->min_p >= 0) {
		proto_pack_key(out, "min_p");
		proto_pack_f64(out, o->min_p);
	}
	if (o->repeat_penalty >= 0) {
		proto_pack_key(out, "repeat_penalty");
		proto_pack_f64(out, o->repeat_penalty);
	}
	if (o->has_seed) {
		proto_pack_key(out, "seed");
		proto_pack_u64(out, o->seed);
	}
	if (o->max_tokens >= 0) {
		proto_pack_key(out, "max_tokens");
		proto_pack_u64(out, (uint64_t)o->max_tokens);
	}
}

ssize_t
cmd_read_fd(int fd, void *buf, size_t size, char *cause)
{
	struct pollfd pfd[2];
	ssize_t n;

	pfd[0].fd = fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = intr_fd();
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, pfd[1].fd != -1 ? 2 : 1, -1) == -1) {
			if (errno == EINTR)
				continue;
			return err_set(cause, "poll: %s", strerror(errno));
		}
		if (pfd[1].fd != -1 && pfd[1].revents != 0) {
			intr_take();
			return -2;
		}
		if ((n = read(fd, buf, size)) >= 0)
			return n;
		if (errno != EINTR && errno != EAGAIN)
			return err_set(cause, "%s", strerror(errno));
	}
}

/* The first len bytes of stdin, or an exit status when over max. */
static int
read_upto(char **bufp, size_t *lenp, size_t max)
{
	char cause[ERR_LEN], *buf = NULL, *p;
	size_t len = 0, cap = 0, limit = max + 1;
	ssize_t n;

	for (;;) {
		/* One byte past the limit is enough to know it is past. */
		if (len == limit) {
			fprintf(stderr, "sink: stdin holds more than %zu bytes "
			    "(--max-input raises the limit; sink feed takes "
			    "input of any size)\n", max);
			free(buf);
			return EXIT_FAIL;
		}
		if (len == cap) {
			cap = cap == 0 ? 64 << 10 : cap * 2;
			if (cap > limit)
				cap = limit;
			if ((p = realloc(buf, cap)) == NULL) {
				fprintf(stderr, "sink: out of memory reading "
				    "stdin\n");
				free(buf);
				return EXIT_FAIL;
			}
			buf = p;
		}
		if ((n = cmd_read_fd(STDIN_FILENO, buf + len, cap - len,
		    cause)) == 0)
			break;
		if (n < 0) {
			free(buf);
			if (n == -2)
				return EXIT_INTR;
			fprintf(stderr, "sink: reading stdin: %s\n", cause);
			return EXIT_FAIL;
		}
		len += (size_t)n;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

int
cmd_read_stdin(struct cmd_ctx *c, char **bufp, size_t *lenp)
{
	int r;

	*bufp = NULL;
	*lenp = 0;
	if (isatty(STDIN_FILENO))
		return 0;
	if ((r = read_upto(bufp, lenp, c->o.max_input)) != 0)
		return r;
	cmd_fix_utf8(*bufp, *lenp, "stdin");
	return 0;
}

size_t
cmd_fix_utf8(char *s, size_t len, const char *what)
{
	size_t i = 0, n, bad = 0;

	while (i < len) {
		if ((n = proto_utf8_seq((const uint8_t *)s + i, len - i)) > 0) {
			i += n;
			continue;
		}
		s[i++] = '?';
		bad++;
	}
	if (bad > 0 && what != NULL)
		fprintf(stderr, "sink: warning: %s is not valid UTF-8: %zu "
		    "byte%s sent as '?'\n", what, bad, bad == 1 ? "" : "s");
	return bad;
}
