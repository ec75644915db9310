/*
 * xfer: see xfer.h.
 *
 * An export file is frames as on the socket (sinkd-protocol(7)): a head
 * {"format": "sinkd-session", "version": 1, "name", "model",
 * "fingerprint", "created", "used", "options", "state", "turns",
 * "template" (the chat format; absent in older files: plain)}, one
 * frame per KV chunk {"layer", "chunk", "crc", "data"}, one per turn
 * {"n", "role", "text", "tokens"}, and {"end": the frames before it}.
 */
#include "xfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "persist.h"
#include "req.h"
#include "snap.h"
#include "store.h"
#include "storeq.h"

/* Chunks read from the store at a time, between looks at the budget. */
#define EXPORT_BATCH 8

enum { X_HEAD, X_CHUNKS, X_TURNS, X_END, X_DONE };

/*
 * An export under way: the client's, until sent or the client goes.
 * Threads: while `reading`, a store job (read_run) owns everything but
 * c, reading and abandoned, which are the loop's; the loop takes the
 * rest back in read_done.
 */
struct xfer_out {
	struct daemon *d;
	struct client *c;
	uint64_t id;
	char name[PROTO_NAME_MAX + 1];
	int reading;		/* a read is queued or running */
	int abandoned;		/* the client went meanwhile */
	size_t budget;		/* bytes the read may add to out */
	int phase;
	int failed;		/* code and cause say why */
	enum proto_err code;
	int layer;		/* the last chunk sent */
	int32_t chunk;
	int64_t turn;		/* the next turn to send */
	int64_t n_turns;
	struct proto_out frame, msg;
	uint8_t *out;		/* finished DATA messages, for the client */
	size_t out_len, out_cap;
	uint64_t frames, bytes;
	int got;		/* rows in the last batch */
	char cause[ERR_LEN];
};

/* Keeps a finished message for the loop to send. */
static int
keep(struct xfer_out *e, const char *data, size_t len)
{
	size_t cap;
	uint8_t *b;

	if (e->out_len + len > e->out_cap) {
		cap = (e->out_len + len) * 2;
		if ((b = realloc(e->out, cap)) == NULL)
			return err_set(e->cause, "out of memory");
		e->out = b;
		e->out_cap = cap;
	}
	memcpy(e->out + e->out_len, data, len);
	e->out_len += len;
	return 0;
}

/* The frame being built is done: it goes to the client, as DATA. */
static int
ship(struct xfer_out *e)
{
	const char *data, *msg;
	size_t len, mlen;

	if (proto_out_finish(&e->frame, XFER_FRAME_MAX, &data, &len,
	    e->cause) != 0)
		return -1;
	proto_out_reset(&e->msg);
	proto_encode_head(&e->msg, e->id, PROTO_K_DATA, 1);
	proto_put_bin(&e->msg, "data", data, len);
	if (proto_out_finish(&e->msg, XFER_FRAME_MAX + 64, &msg, &mlen,
	    e->cause) != 0 || keep(e, msg, mlen) != 0)
		return -1;
	e->frames++;
	e->bytes += len;
	proto_out_reset(&e->frame);
	return 0;
}

static int
export_chunk(void *arg, int layer, int32_t chunk, uint32_t crc,
    const void *data, size_t len)
{
	struct xfer_out *e = arg;

	proto_pack_map(&e->frame, 4);
	proto_put_u64(&e->frame, "layer", (uint64_t)layer);
	proto_put_u64(&e->frame, "chunk", (uint64_t)chunk);
	proto_put_u64(&e->frame, "crc", crc);
	proto_put_bin(&e->frame, "data", data, len);
	e->layer = layer;
	e->chunk = chunk;
	e->got++;
	return ship(e);
}

static int
export_turn(void *arg, int64_t n, const struct store_turn *t)
{
	struct xfer_out *e = arg;
	uint8_t *b = malloc(t->n_toks * 4 + 1);

	if (b == NULL)
		return err_set(e->cause, "out of memory");
	store_ids_put(b, t->toks, t->n_toks);
	proto_pack_map(&e->frame, 4);
	proto_put_u64(&e->frame, "n", (uint64_t)n);
	proto_put_u64(&e->frame, "role", (uint64_t)t->role);
	proto_put_bin(&e->frame, "text", t->text, t->len);
	proto_put_bin(&e->frame, "tokens", b, t->n_toks * 4);
	free(b);
	e->turn = n + 1;
	e->got++;
	return ship(e);
}

static void
export_head(struct xfer_out *e, const struct model *m,
    const struct store_row *row)
{
	struct proto_out *f = &e->frame;

	proto_pack_map(f, 11);
	proto_put_cstr(f, "format", "sinkd-session");
	proto_put_u64(f, "version", 1);
	proto_put_cstr(f, "name", row->name);
	proto_put_cstr(f, "model", m->desc);
	proto_put_cstr(f, "fingerprint", row->fingerprint);
	proto_put_i64(f, "created", row->created);
	proto_put_i64(f, "used", row->used);
	proto_put_bin(f, "options", row->options, row->options_len);
	proto_put_bin(f, "state", row->state, row->state_len);
	proto_put_u64(f, "turns", (uint64_t)e->n_turns);
	proto_put_cstr(f, "template", row->tmpl[0] != '\0' ? row->tmpl :
	    "plain");
}

/* The session's export is over: it may take jobs again. */
static void
finish(struct xfer_out *e)
{
	struct session *s = sess_find(&e->d->sessions, e->name,
	    strlen(e->name));

	if (e->c != NULL)
		e->c->export = NULL;
	if (s != NULL) {
		s->exporting = 0;
		daemon_run_next(e->d, s);
	}
	proto_out_free(&e->frame);
	proto_out_free(&e->msg);
	free(e->out);
	free(e);
}

/* The head: the session's row, as the store has it. */
static int
read_head(struct xfer_out *e, struct store *st)
{
	struct store_row row;
	void *opt, *state;
	int rc;

	if ((rc = store_load_row(st, e->name, &row, &opt, &state,
	    e->cause)) != 0) {
		e->code = PROTO_E_STORE;
		if (rc == 1)
			err_set(e->cause, "not in the database");
		return -1;
	}
	export_head(e, e->d->model, &row);
	free(opt);
	free(state);
	e->phase = X_CHUNKS;
	return ship(e);
}

/* One batch: the head, some chunks, or some turns, or the end. */
static int
step(struct xfer_out *e, struct store *st)
{
	e->got = 0;
	switch (e->phase) {
	case X_HEAD:
		return read_head(e, st);
	case X_CHUNKS:
		if (store_chunks_after(st, e->name, e->layer, e->chunk,
		    EXPORT_BATCH, export_chunk, e, e->cause) != 0)
			return -1;
		if (e->got < EXPORT_BATCH)
			e->phase = X_TURNS;
		return 0;
	case X_TURNS:
		if (e->turn < e->n_turns && store_turns(st, e->name, e->turn,
		    EXPORT_BATCH, export_turn, e, e->cause) != 0)
			return -1;
		if (e->got < EXPORT_BATCH || e->turn >= e->n_turns)
			e->phase = X_END;
		return 0;
	default:
		proto_pack_map(&e->frame, 1);
		proto_put_u64(&e->frame, "end", e->frames);
		e->phase = X_DONE;
		return ship(e);
	}
}

/*
 * On the store thread: batches until the budget is full or the file
 * is all read.  The loop never waits on these reads, and the store's
 * order puts them after the session's last snapshot.
 */
static void
read_run(void *arg)
{
	struct xfer_out *e = arg;

	while (!e->failed && e->phase != X_DONE && e->out_len < e->budget) {
		if (step(e, e->d->store) != 0) {
			e->failed = 1;
			if (e->code == 0)
				e->code = PROTO_E_STORE;
		}
	}
}

static void
send_end(struct xfer_out *e)
{
	struct proto_out o;

	proto_out_init(&o);
	if (e->failed) {
		log_warn("export of '%s' failed: %s", e->name, e->cause);
		proto_encode_error(&o, e->id, e->code, "export of '%s' "
		    "failed: %s", e->name, e->cause);
	} else {
		log_info("session '%s' exported: %llu bytes", e->name,
		    (unsigned long long)e->bytes);
		proto_encode_head(&o, e->id, PROTO_K_OK, 2);
		proto_put_u64(&o, "frames", e->frames);
		proto_put_u64(&o, "bytes", e->bytes);
	}
	send_out(e->c, &o, e->id);
	proto_out_free(&o);
}

/* On the loop: what was read goes out; then more, or the end. */
static void
read_done(void *arg)
{
	struct xfer_out *e = arg;

	e->reading = 0;
	if (e->abandoned) {
		finish(e);
		return;
	}
	if (e->out_len > 0)
		client_send(e->c, (const char *)e->out, e->out_len);
	e->out_len = 0;
	if (e->failed || e->phase == X_DONE) {
		send_end(e);
		finish(e);
		return;
	}
	xfer_pump(e->c);
}

void
xfer_pump(struct client *c)
{
	struct xfer_out *e = c->export;
	size_t room = (size_t)c->d->conf->max_output / 2, q;

	if (e == NULL || e->reading || (q = client_queued(c)) >= room)
		return;
	e->reading = 1;
	e->budget = room - q;
	storeq_submit(c->d->storeq, read_run, read_done, e);
}

void
xfer_import_drop(struct client *c)
{
	c->d->import_bytes -= c->import_len;
	free(c->import);
	c->import = NULL;
	c->import_len = c->import_cap = 0;
}

void
xfer_end(struct client *c)
{
	struct xfer_out *e = c->export;

	if (e == NULL)
		return;
	/* A read under way ends on its own: read_done frees it. */
	c->export = NULL;
	e->c = NULL;
	if (e->reading)
		e->abandoned = 1;
	else
		finish(e);
}

/*
 * Starts an export: the store thread reads it a budget at a time as the
 * client reads (xfer_pump), the head first; the reply (ok, or an error)
 * comes at the end.
 */
int
op_export(struct req *r)
{
	struct xfer_out *e;
	struct session *s;
	int rc;

	if (find_session(r, &s) != 0)
		return -1;
	if ((rc = settled(r, s)) != 0)
		return rc > 0 ? 0 : -1;
	if (r->c->export != NULL)
		return req_err(r, PROTO_E_BUSY, "this connection is already "
		    "exporting a session");
	if ((e = calloc(1, sizeof *e)) == NULL)
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	e->d = r->d;
	e->c = r->c;
	e->id = r->id;
	snprintf(e->name, sizeof e->name, "%s", s->name);
	e->layer = e->chunk = -1;
	e->n_turns = s->n_stored;
	e->phase = X_HEAD;
	proto_out_init(&e->frame);
	proto_out_init(&e->msg);
	r->c->export = e;
	s->exporting = 1;
	xfer_pump(r->c);
	return 0;
}
