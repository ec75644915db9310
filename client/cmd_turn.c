/*
 * cmd_turn: the subcommands that send text: one chat turn (the default
 * subcommand), one completion, and feed.  Input from the arguments and
 * stdin is gathered before connecting, so a slow producer upstream of a
 * pipe does not hold a connection open.
 */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

/* Stdin is sent to feed in pieces of at most this many bytes. */
#define FEED_CHUNK (256u << 10)

int
cmd_turn(struct cmd_ctx *c, enum proto_op op, const char *text, size_t len,
    int *cancelled)
{
	struct proto_out *o;
	struct conn_msg m;
	uint64_t id;
	size_t i;
	int create = !c->o.no_create, r;

	id = conn_begin(c->conn, op, 2 + create + (c->o.n_stop > 0) +
	    cmd_sampling_pairs(&c->o));
	o = conn_out(c->conn);
	proto_pack_key(o, "name");
	proto_pack_cstr(o, cmd_session(c));
	proto_pack_key(o, "text");
	proto_pack_str(o, text, len);
	if (create) {
		proto_pack_key(o, "create");
		proto_pack_bool(o, 1);
	}
	if (c->o.n_stop > 0) {
		proto_pack_key(o, "stop");
		proto_pack_array(o, c->o.n_stop);
		for (i = 0; i < c->o.n_stop; i++)
			proto_pack_cstr(o, c->o.stop[i]);
	}
	cmd_pack_sampling(o, &c->o);
	if ((r = cmd_send(c, op)) != 0)
		return r;
	*cancelled = 0;
	out_reply_begin(&c->out);
	if ((r = cmd_wait(c, id, op, 1, cancelled, &m)) != 0)
		return r;
	return cmd_end(c, op, *cancelled, &m);
}

/* The arguments joined by spaces, a blank line, then stdin. */
static int
gather(struct cmd_ctx *c, char **textp, size_t *lenp)
{
	char *in, *text;
	size_t in_len, len = 0, n;
	int i, r;

	if ((r = cmd_read_stdin(c, &in, &in_len)) != 0)
		return r;
	for (i = 0; i < c->o.argc; i++)
		len += strlen(c->o.argv[i]) + 1;
	if ((text = malloc(len + 2 + in_len + 1)) == NULL) {
		free(in);
		fprintf(stderr, "sink: out of memory\n");
		return EXIT_FAIL;
	}
	len = 0;
	for (i = 0; i < c->o.argc; i++) {
		n = strlen(c->o.argv[i]);
		memcpy(text + len, c->o.argv[i], n);
		len += n;
		text[len++] = i + 1 < c->o.argc ? ' ' : '\0';
	}
	if (len > 0)
		len--;
	cmd_fix_utf8(text, len, "the text");
	if (len > 0 && in_len > 0) {
		memcpy(text + len, "\n\n", 2);
		len += 2;
	}
	if (in_len > 0)
		memcpy(text + len, in, in_len);
	len += in_len;
	text[len] = '\0';
	free(in);
	*textp = text;
	*lenp = len;
	return 0;
}

static int
send_text(struct cmd_ctx *c, enum proto_op op)
{
	char *text;
	size_t len;
	int cancelled = 0, r;

	if ((r = gather(c, &text, &len)) != 0)
		return r;
	if (len == 0) {
		free(text);
		fprintf(stderr, "sink: nothing to send: give TEXT, pipe it to "
		    "stdin, or use sink chat\n");
		return isatty(STDIN_FILENO) ? EXIT_USAGE : EXIT_FAIL;
	}
	if ((r = cmd_connect(c)) == 0) {
		if (c->max_prompt > 0 && len > c->max_prompt) {
			fprintf(stderr, "sink: the text is %zu bytes, over the "
			    "daemon's limit of %llu (sink feed takes input of "
			    "any size)\n", len,
			    (unsigned long long)c->max_prompt);
			r = EXIT_FAIL;
		} else
			r = cmd_turn(c, op, text, len, &cancelled);
	}
	free(text);
	return r;
}

int
cmd_say(struct cmd_ctx *c)
{
	return send_text(c, PROTO_OP_CHAT);
}

int
cmd_complete(struct cmd_ctx *c)
{
	return send_text(c, PROTO_OP_COMPLETE);
}

/* Stdin in pieces, cut after a newline or at least between characters. */
struct feeder {
	char	*buf;
	size_t	 len, cap;
	int	 eof;
};

/*
 * The length of the next piece (0 at the end), or -1/-2 as cmd_read_fd.
 * A piece is at most cap bytes; one that does not end the input ends
 * after a newline in its second half, or else between two characters.
 */
static ssize_t
next_piece(struct feeder *f, char *cause)
{
	size_t avail, cut, i;
	ssize_t n;

	while (!f->eof && f->len < f->cap) {
		n = cmd_read_fd(STDIN_FILENO, f->buf + f->len, f->cap - f->len,
		    cause);
		if (n < 0)
			return n;
		if (n == 0)
			f->eof = 1;
		f->len += (size_t)n;
	}
	if (f->eof && f->len <= f->cap)
		return (ssize_t)f->len;
	avail = f->len < f->cap ? f->len : f->cap;
	for (cut = avail; cut > avail / 2; cut--)
		if (f->buf[cut - 1] == '\n')
			return (ssize_t)cut;
	/* Keep a character cut short at the end for the next piece. */
	i = avail - 1;
	while (i > 0 && i + 4 > avail && ((unsigned char)f->buf[i] & 0xc0) ==
	    0x80)
		i--;
	if (i > 0 && proto_utf8_seq((const uint8_t *)f->buf + i,
	    avail - i) == 0)
		return (ssize_t)i;
	return (ssize_t)avail;
}

static void
fed_usage(struct out_fed *fed, const struct conn_msg *m)
{
	const msgpack_object *u = proto_get(&m->msg, "usage");
	uint64_t v;
	double ms;

	if (u == NULL)
		return;
	if (proto_map_get_u64(u, "prompt_tokens", 1, 0, UINT64_MAX, &v,
	    NULL) == 0)
		fed->tokens += v;
	if (proto_map_get_f64(u, "prefill_ms", 1, 0, 1e300, &ms, NULL) == 0)
		fed->ms += ms;
	fed->have_cache =
	    proto_map_get_u64(u, "cached_tokens", 1, 0, UINT64_MAX,
	    &fed->cached, NULL) == 0 &&
	    proto_map_get_u64(u, "seen_tokens", 1, 0, UINT64_MAX, &fed->seen,
	    NULL) == 0 &&
	    proto_map_get_u64(u, "evicted_tokens", 1, 0, UINT64_MAX,
	    &fed->evicted, NULL) == 0;
}

/* Creates the session for a feed; 0 or an exit status. */
static int
feed_create(struct cmd_ctx *c)
{
	uint64_t id;
	int r;

	id = conn_begin(c->conn, PROTO_OP_CREATE, 1);
	proto_pack_key(conn_out(c->conn), "name");
	proto_pack_cstr(conn_out(c->conn), cmd_session(c));
	if ((r = cmd_send(c, PROTO_OP_CREATE)) != 0)
		return r;
	c->out.quiet++;		/* no "session NAME: ..." line */
	r = cmd_request(c, id, PROTO_OP_CREATE);
	c->out.quiet--;
	return r;
}

/* One piece: 0 when fed, or an exit status. */
static int
feed_piece(struct cmd_ctx *c, const char *text, size_t len,
    struct out_fed *fed)
{
	struct conn_msg m;
	uint64_t id;
	int cancelled = 0, r, tries;

	for (tries = 0;; tries++) {
		id = conn_begin(c->conn, PROTO_OP_FEED, 3);
		proto_pack_key(conn_out(c->conn), "name");
		proto_pack_cstr(conn_out(c->conn), cmd_session(c));
		proto_pack_key(conn_out(c->conn), "text");
		proto_pack_str(conn_out(c->conn), text, len);
		/* Ignored by a daemon without it: then create, once. */
		proto_pack_key(conn_out(c->conn), "create");
		proto_pack_bool(conn_out(c->conn), !c->o.no_create);
		if ((r = cmd_send(c, PROTO_OP_FEED)) != 0 ||
		    (r = cmd_wait(c, id, PROTO_OP_FEED, 1, &cancelled,
		    &m)) != 0)
			return r;
		if (tries > 0 || c->o.no_create || m.kind != PROTO_K_ERROR ||
		    m.err != PROTO_E_NO_SUCH_SESSION)
			break;
		conn_msg_free(&m);
		if ((r = feed_create(c)) != 0)
			return r;
	}
	if (m.kind == PROTO_K_DONE)
		fed_usage(fed, &m);
	fed->chunks++;
	fed->bytes += len;
	return cmd_end(c, PROTO_OP_FEED, cancelled, &m);
}

static int
feed_all(struct cmd_ctx *c, struct feeder *f, struct out_fed *fed)
{
	char cause[ERR_LEN];
	ssize_t n;
	size_t bad = 0;
	int r;

	while ((n = next_piece(f, cause)) > 0) {
		bad += cmd_fix_utf8(f->buf, (size_t)n, NULL);
		if ((r = feed_piece(c, f->buf, (size_t)n, fed)) != 0)
			return r;
		memmove(f->buf, f->buf + n, f->len - (size_t)n);
		f->len -= (size_t)n;
	}
	if (bad > 0)
		fprintf(stderr, "sink: warning: stdin is not valid UTF-8: %zu "
		    "byte%s sent as '?'\n", bad, bad == 1 ? "" : "s");
	if (n == -2)
		return EXIT_INTR;
	if (n == -1) {
		fprintf(stderr, "sink: reading stdin: %s\n", cause);
		return EXIT_FAIL;
	}
	return 0;
}

int
cmd_feed(struct cmd_ctx *c)
{
	struct out_fed fed;
	struct feeder f;
	ssize_t n;
	char cause[ERR_LEN];
	int r;

	if (isatty(STDIN_FILENO)) {
		fprintf(stderr, "sink: feed reads stdin: sink feed -s NAME "
		    "< FILE\n");
		return EXIT_USAGE;
	}
	memset(&f, 0, sizeof f);
	memset(&fed, 0, sizeof fed);
	f.cap = FEED_CHUNK;
	if ((f.buf = malloc(f.cap)) == NULL) {
		fprintf(stderr, "sink: out of memory\n");
		return EXIT_FAIL;
	}
	/* An empty stdin is a mistake worth a message, not a connection. */
	if ((n = next_piece(&f, cause)) <= 0) {
		free(f.buf);
		if (n == -2)
			return EXIT_INTR;
		fprintf(stderr, "sink: %s\n", n == 0 ? "nothing to feed: stdin "
		    "is empty" : cause);
		return EXIT_FAIL;
	}
	if ((r = cmd_connect(c)) == 0) {
		/* Pieces must fit the daemon's limits with room for keys. */
		if (c->max_prompt > 0 && c->max_prompt < f.cap)
			f.cap = c->max_prompt;
		if (conn_max_out(c->conn) - 256 < f.cap)
			f.cap = conn_max_out(c->conn) - 256;
		if ((r = feed_all(c, &f, &fed)) == 0)
			c->out.ops->fed(&c->out, &fed);
	}
	free(f.buf);
	return r;
}
