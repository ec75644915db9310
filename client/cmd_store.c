/*
 * cmd_store: the subcommands over a session's stored life: log (the
 * whole transcript, fetched a page at a time so that no size of it is
 * held in memory at once), rebuild (a new cache from the transcript)
 * and fork (a copy under a new name).
 */
#include "cmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Turns asked for per log request (the daemon may send fewer). */
#define LOG_PAGE 500
/* A from past any transcript: the reply has its total and no turns. */
#define LOG_PAST_END ((uint64_t)INT64_MAX)

/*
 * One log request.  0 with *m the ok reply, its total in *total and its
 * turns in *turns; or an exit status after saying why (the reply, an
 * error, shown and freed).
 */
static int
log_page(struct cmd_ctx *c, const char *name, uint64_t from, uint64_t max,
    struct conn_msg *m, uint64_t *total, const msgpack_object **turns)
{
	char cause[ERR_LEN];
	uint64_t id;
	int r;

	id = conn_begin(c->conn, PROTO_OP_LOG, 3);
	proto_put_cstr(conn_out(c->conn), "name", name);
	proto_put_u64(conn_out(c->conn), "from", from);
	proto_put_u64(conn_out(c->conn), "max", max);
	if ((r = cmd_send(c, PROTO_OP_LOG)) != 0 ||
	    (r = cmd_wait(c, id, PROTO_OP_LOG, 0, NULL, m)) != 0)
		return r;
	if (m->kind != PROTO_K_OK)
		return cmd_end(c, PROTO_OP_LOG, 0, m);
	*turns = proto_get(&m->msg, "turns");
	if (proto_get_u64(&m->msg, "total", 1, 0, UINT64_MAX, total,
	    cause) != 0 || *turns == NULL ||
	    (*turns)->type != MSGPACK_OBJECT_ARRAY) {
		fprintf(stderr, "sink: the daemon's log reply is not "
		    "understood: %s\n", *turns == NULL ? "no turns" : cause);
		conn_msg_free(m);
		return EXIT_FAIL;
	}
	return 0;
}

/*
 * Shows the turns of a page that go on from *next without a gap, up to
 * end; returns how many.  A page that does not start at *next is not
 * used at all: the caller asks again from *next.
 */
static uint64_t
log_show(struct cmd_ctx *c, const msgpack_object *turns, uint64_t *next,
    uint64_t end)
{
	const msgpack_object *t;
	uint64_t n, shown = 0;
	uint32_t i;

	for (i = 0; i < turns->via.array.size && *next < end; i++) {
		t = &turns->via.array.ptr[i];
		if (t->type != MSGPACK_OBJECT_MAP || proto_map_get_u64(t, "n",
		    1, 0, UINT64_MAX, &n, NULL) != 0 || n != *next)
			break;
		c->out.ops->turn(&c->out, t);
		(*next)++;
		shown++;
	}
	fflush(c->out.fp);
	return shown;
}

/* Where a log starts: --from, or the last --turns turns after it. */
static int
log_start(struct cmd_ctx *c, const char *name, uint64_t *next,
    uint64_t *end)
{
	const msgpack_object *turns;
	struct conn_msg m;
	uint64_t total;
	int r;

	*next = c->o.from >= 0 ? (uint64_t)c->o.from : 0;
	*end = UINT64_MAX;
	if (c->o.turns < 0)
		return 0;
	if ((r = log_page(c, name, LOG_PAST_END, 1, &m, &total,
	    &turns)) != 0)
		return r;
	conn_msg_free(&m);
	*end = total;
	if (total > (uint64_t)c->o.turns && total - (uint64_t)c->o.turns >
	    *next)
		*next = total - (uint64_t)c->o.turns;
	return 0;
}

/* Says so when nothing was shown; an exit status for stdout's state. */
static int
log_finish(struct cmd_ctx *c, const char *name, uint64_t shown,
    uint64_t total)
{
	if (shown == 0 && !c->o.quiet && !c->o.json) {
		if (total == 0)
			fprintf(stderr, "sink: session %s has no turns yet\n",
			    name);
		else
			fprintf(stderr, "sink: session %s has %llu turn%s "
			    "(numbered from 0): none to show\n", name,
			    (unsigned long long)total, total == 1 ? "" : "s");
	}
	if (fflush(c->out.fp) != 0 || ferror(c->out.fp)) {
		fprintf(stderr, "sink: writing stdout: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/*
 * The transcript from its start (or --from, or the last --turns), as it
 * stood at the first reply: turns added meanwhile are left for the next
 * log.  Each page is shown and freed before the next is asked for.
 */
int
cmd_log(struct cmd_ctx *c)
{
	const char *name = cmd_name_arg(c, 0);
	const msgpack_object *turns;
	struct conn_msg m;
	uint64_t next, end, total = 0, shown = 0, got;
	int r;

	if ((r = cmd_connect(c)) != 0)
		return r;
	c->out.session = name;
	if ((r = log_start(c, name, &next, &end)) != 0)
		return r;
	while (next < end) {
		if ((r = log_page(c, name, next, end - next < LOG_PAGE ?
		    end - next : LOG_PAGE, &m, &total, &turns)) != 0)
			return r;
		if (end == UINT64_MAX)
			end = total;
		got = log_show(c, turns, &next, end);
		conn_msg_free(&m);
		shown += got;
		if (got > 0)
			continue;
		/* Nothing usable: reset meanwhile, or a page with a gap. */
		if (total <= next)
			break;
		fprintf(stderr, "sink: the daemon's log of session %s does "
		    "not go on from turn %llu of %llu\n", name,
		    (unsigned long long)next, (unsigned long long)total);
		return EXIT_FAIL;
	}
	return log_finish(c, name, shown, end == UINT64_MAX ? total : end);
}

int
cmd_rebuild(struct cmd_ctx *c)
{
	const char *name = cmd_name_arg(c, 0);
	struct conn_msg m;
	uint64_t id;
	int cancelled = 0, r;

	if ((r = cmd_connect(c)) != 0)
		return r;
	c->out.session = name;
	id = conn_begin(c->conn, PROTO_OP_REBUILD, 1);
	proto_put_cstr(conn_out(c->conn), "name", name);
	if ((r = cmd_send(c, PROTO_OP_REBUILD)) != 0 ||
	    (r = cmd_wait(c, id, PROTO_OP_REBUILD, 1, &cancelled, &m)) != 0)
		return r;
	return cmd_end(c, PROTO_OP_REBUILD, cancelled, &m);
}

int
cmd_fork(struct cmd_ctx *c)
{
	uint64_t id;
	int r;

	if ((r = cmd_connect(c)) != 0)
		return r;
	c->out.session = c->o.argv[0];
	id = conn_begin(c->conn, PROTO_OP_FORK, 2);
	proto_put_cstr(conn_out(c->conn), "name", c->o.argv[0]);
	proto_put_cstr(conn_out(c->conn), "new", c->o.argv[1]);
	if ((r = cmd_send(c, PROTO_OP_FORK)) != 0)
		return r;
	return cmd_request(c, id, PROTO_OP_FORK);
}
