/*
 * cmd_session: the subcommands that manage sessions and ask about the
 * daemon: one request each, its reply shown by the writer.
 */
#include "cmd.h"

#include <string.h>

/* A request whose only key (if any) is the session name. */
static int
named(struct cmd_ctx *c, enum proto_op op, const char *name)
{
	uint64_t id;
	int r;

	c->out.session = name;
	id = conn_begin(c->conn, op, name != NULL);
	if (name != NULL) {
		proto_pack_key(conn_out(c->conn), "name");
		proto_pack_cstr(conn_out(c->conn), name);
	}
	if ((r = cmd_send(c, op)) != 0)
		return r;
	return cmd_request(c, id, op);
}

int
cmd_ls(struct cmd_ctx *c)
{
	int r;

	if ((r = cmd_connect(c)) != 0)
		return r;
	return named(c, PROTO_OP_LIST, NULL);
}

int
cmd_status(struct cmd_ctx *c)
{
	int r;

	if ((r = cmd_connect(c)) != 0)
		return r;
	return named(c, PROTO_OP_STATUS, NULL);
}

int
cmd_templates(struct cmd_ctx *c)
{
	int r;

	if ((r = cmd_connect(c)) != 0)
		return r;
	return named(c, PROTO_OP_TEMPLATES, NULL);
}

int
cmd_show(struct cmd_ctx *c)
{
	const char *name = cmd_name_arg(c, 0);
	uint64_t id;
	int r;

	if ((r = cmd_connect(c)) != 0)
		return r;
	if (c->o.turns < 0)
		return named(c, PROTO_OP_INFO, name);
	c->out.session = name;
	id = conn_begin(c->conn, PROTO_OP_INFO, 2);
	proto_pack_key(conn_out(c->conn), "name");
	proto_pack_cstr(conn_out(c->conn), name);
	proto_pack_key(conn_out(c->conn), "turns");
	proto_pack_u64(conn_out(c->conn), (uint64_t)c->o.turns);
	if ((r = cmd_send(c, PROTO_OP_INFO)) != 0)
		return r;
	return cmd_request(c, id, PROTO_OP_INFO);
}

static void
pack_str_opt(struct proto_out *o, const char *key, const char *value)
{
	if (value == NULL)
		return;
	proto_pack_key(o, key);
	proto_pack_cstr(o, value);
}

static void
pack_long_opt(struct proto_out *o, const char *key, long value)
{
	if (value < 0)
		return;
	proto_pack_key(o, key);
	proto_pack_u64(o, (uint64_t)value);
}

int
cmd_new(struct cmd_ctx *c)
{
	const struct cmd_opts *opt = &c->o;
	struct proto_out *o;
	uint64_t id;
	size_t n;
	int r;

	if ((r = cmd_connect(c)) != 0)
		return r;
	c->out.session = opt->argv[0];
	n = 1 + (opt->system != NULL) + (opt->tmpl != NULL) +
	    (opt->mode != NULL) +
	    (opt->kv != NULL) + (opt->cache >= 0) + (opt->sinks >= 0) +
	    cmd_sampling_pairs(opt);
	id = conn_begin(c->conn, PROTO_OP_CREATE, n);
	o = conn_out(c->conn);
	pack_str_opt(o, "name", opt->argv[0]);
	pack_str_opt(o, "system", opt->system);
	pack_str_opt(o, "template", opt->tmpl);
	pack_str_opt(o, "mode", opt->mode);
	pack_str_opt(o, "kv", opt->kv);
	pack_long_opt(o, "cache", opt->cache);
	pack_long_opt(o, "sinks", opt->sinks);
	cmd_pack_sampling(o, opt);
	if ((r = cmd_send(c, PROTO_OP_CREATE)) != 0)
		return r;
	return cmd_request(c, id, PROTO_OP_CREATE);
}

/* Each NAME in turn, as rm(1) does: a failure does not stop the rest. */
int
cmd_rm(struct cmd_ctx *c)
{
	int i, r, rc = EXIT_OK;

	if ((r = cmd_connect(c)) != 0)
		return r;
	for (i = 0; i < c->o.argc; i++) {
		r = named(c, PROTO_OP_DELETE, c->o.argv[i]);
		if (r == EXIT_INTR)
			return r;
		if (r != EXIT_OK)
			rc = r;
	}
	return rc;
}

int
cmd_reset(struct cmd_ctx *c)
{
	int r;

	if ((r = cmd_connect(c)) != 0)
		return r;
	return named(c, PROTO_OP_RESET, cmd_name_arg(c, 0));
}

/*
 * Another sink's request can only be cancelled through its session: the
 * daemon's cancel takes a session name as well as a request id of this
 * connection.  Nothing running is exit 1, as pkill(1) does.
 */
int
cmd_cancel(struct cmd_ctx *c)
{
	struct conn_msg m;
	uint64_t id;
	int r, cancelled = 0;

	if ((r = cmd_connect(c)) != 0)
		return r;
	c->out.session = cmd_session(c);
	id = conn_begin(c->conn, PROTO_OP_CANCEL, 1);
	proto_pack_key(conn_out(c->conn), "name");
	proto_pack_cstr(conn_out(c->conn), cmd_session(c));
	if ((r = cmd_send(c, PROTO_OP_CANCEL)) != 0 ||
	    (r = cmd_wait(c, id, PROTO_OP_CANCEL, 0, NULL, &m)) != 0)
		return r;
	if (m.kind == PROTO_K_OK &&
	    proto_get_bool(&m.msg, "cancelled", 0, &cancelled, NULL) != 0)
		cancelled = 0;
	if ((r = cmd_end(c, PROTO_OP_CANCEL, 0, &m)) != 0)
		return r;
	return cancelled ? EXIT_OK : EXIT_FAIL;
}
