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

/* An export frame fits one data message. */
#define EXPORT_FRAME_MAX (REPLY_MAX - 1024)
/* Chunks read from the store at a time, between looks at the output. */
#define EXPORT_BATCH 8

enum { X_CHUNKS, X_TURNS, X_END };

/* An export under way: the client's, until sent or the client goes. */
struct xfer_out {
	struct client *c;
	uint64_t id;
	char name[PROTO_NAME_MAX + 1];
	int phase;
	int layer;		/* the last chunk sent */
	int32_t chunk;
	int64_t turn;		/* the next turn to send */
	int64_t n_turns;
	struct proto_out frame, msg;
	uint64_t frames, bytes;
	int got;		/* rows in the last batch */
	char cause[ERR_LEN];
};

/* The frame being built is done: it goes to the client. */
static int
ship(struct xfer_out *e)
{
	const char *data;
	size_t len;

	if (proto_out_finish(&e->frame, EXPORT_FRAME_MAX, &data, &len,
	    e->cause) != 0)
		return -1;
	proto_out_reset(&e->msg);
	proto_encode_head(&e->msg, e->id, PROTO_K_DATA, 1);
	proto_put_bin(&e->msg, "data", data, len);
	send_out(e->c, &e->msg, e->id);
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
finish(struct client *c)
{
	struct xfer_out *e = c->export;
	struct session *s = sess_find(&c->d->sessions, e->name,
	    strlen(e->name));

	c->export = NULL;
	if (s != NULL) {
		s->exporting = 0;
		daemon_run_next(c->d, s);
	}
	proto_out_free(&e->frame);
	proto_out_free(&e->msg);
	free(e);
}

/* One batch: some chunks, or some turns, or the end. */
static int
step(struct xfer_out *e, struct store *st)
{
	e->got = 0;
	switch (e->phase) {
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
		return ship(e);
	}
}

void
xfer_pump(struct client *c)
{
	struct xfer_out *e = c->export;
	struct proto_out o;
	size_t room = (size_t)c->d->conf->max_output / 2;
	int done;

	while (client_queued(c) < room) {
		done = e->phase == X_END;
		if (step(e, c->d->store) != 0) {
			log_warn("export of '%s' failed: %s", e->name, e->cause);
			proto_out_init(&o);
			proto_encode_error(&o, e->id, PROTO_E_STORE, "export of "
			    "'%s' failed: %s", e->name, e->cause);
			send_out(c, &o, e->id);
			proto_out_free(&o);
			finish(c);
			return;
		}
		if (!done)
			continue;
		log_info("session '%s' exported: %llu bytes", e->name,
		    (unsigned long long)e->bytes);
		proto_out_init(&o);
		proto_encode_head(&o, e->id, PROTO_K_OK, 2);
		proto_put_u64(&o, "frames", e->frames);
		proto_put_u64(&o, "bytes", e->bytes);
		send_out(c, &o, e->id);
		proto_out_free(&o);
		finish(c);
		return;
	}
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
	if (c->export != NULL)
		finish(c);
}

/*
 * Starts an export: the head goes out now, the rest as the client
 * reads (xfer_pump), the reply (ok, or an error) at the end.
 */
int
op_export(struct req *r)
{
	struct xfer_out *e;
	struct session *s;
	struct store_row row;
	void *opt, *state;
	int rc;

	if (find_session(r, &s) != 0 || settled(r, s) != 0)
		return -1;
	if (r->c->export != NULL)
		return req_err(r, PROTO_E_BUSY, "this connection is already "
		    "exporting a session");
	if ((rc = store_load_row(r->d->store, s->name, &row, &opt, &state,
	    r->cause)) != 0)
		return req_err(r, PROTO_E_STORE, "session '%s': %s", s->name,
		    rc == 1 ? "not in the database" : r->cause);
	if ((e = calloc(1, sizeof *e)) == NULL) {
		free(opt);
		free(state);
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	}
	e->c = r->c;
	e->id = r->id;
	snprintf(e->name, sizeof e->name, "%s", s->name);
	e->layer = e->chunk = -1;
	e->n_turns = s->n_stored;
	proto_out_init(&e->frame);
	proto_out_init(&e->msg);
	export_head(e, r->d->model, &row);
	free(opt);
	free(state);
	r->c->export = e;
	s->exporting = 1;
	if (ship(e) != 0) {
		req_err(r, PROTO_E_INTERNAL, "%s", e->cause);
		finish(r->c);
		return -1;
	}
	xfer_pump(r->c);
	return 0;
}

/* Import: the file arrives in parts ("more": true), then is read whole. */
struct importer {
	struct req *r;
	struct session *s;
	const struct model *m;
	int64_t next_turn;
	uint64_t frames;
	int ended;
	struct proto_msg head;	/* the first frame, while the rest is read */
	int have_head;
	const void *state;	/* its state blob, in head */
	size_t state_len;
};

static int
import_chunk(struct importer *im, const struct proto_msg *f)
{
	struct req *r = im->r;
	struct seq *q = im->s->seq;
	uint64_t layer, chunk, crc;
	const void *data;
	size_t len;

	/* Types here; place, size and CRC in store_chunk_check. */
	if (proto_get_u64(f, "layer", 1, 0, INT32_MAX, &layer, r->cause) ||
	    proto_get_u64(f, "chunk", 1, 0, INT32_MAX, &chunk, r->cause) ||
	    proto_get_u64(f, "crc", 1, 0, UINT32_MAX, &crc, r->cause) ||
	    proto_get_bin(f, "data", 1, SIZE_MAX, &data, &len, r->cause))
		return -1;
	if (store_chunk_check((int)layer, (int32_t)chunk, (uint32_t)crc, data,
	    len, im->m->hp.n_layer, seq_n_chunks(q), seq_chunk_bytes(q),
	    r->cause) != 0)
		return -1;
	seq_chunk_set(q, (int)layer, (int32_t)chunk, data);
	return 0;
}

static int
import_turn(struct importer *im, const struct proto_msg *f)
{
	struct req *r = im->r;
	uint64_t n, role;
	const void *text, *tb;
	size_t tl, bl;
	int32_t *ids;
	char *t;
	int rc;

	if (proto_get_u64(f, "n", 1, 0, INT64_MAX, &n, r->cause) ||
	    proto_get_u64(f, "role", 1, 0, ROLE_CONTEXT, &role, r->cause) ||
	    proto_get_bin(f, "text", 1, SIZE_MAX, &text, &tl, r->cause) ||
	    proto_get_bin(f, "tokens", 1, SIZE_MAX, &tb, &bl, r->cause))
		return -1;
	if ((int64_t)n != im->next_turn || bl % 4 != 0)
		return err_set(r->cause, "turn %llu is out of order or its "
		    "tokens are cut", (unsigned long long)n);
	ids = malloc(bl + 4);
	t = malloc(tl + 1);
	if (ids == NULL || t == NULL) {
		free(ids);
		free(t);
		return err_set(r->cause, "out of memory");
	}
	store_ids_get(ids, tb, bl / 4);
	memcpy(t, text, tl);
	proto_utf8_sanitize(t, tl);
	rc = session_add_turn(im->s, (enum turn_role)role, t, tl, ids, bl / 4,
	    r->cause);
	free(ids);
	free(t);
	im->next_turn++;
	return rc;
}

/* One frame after the head. */
static int
import_frame(struct importer *im, const uint8_t *body, size_t len)
{
	struct proto_msg f;
	uint64_t end;
	int rc;

	if (proto_msg_parse(&f, body, len, im->r->cause) != 0)
		return -1;
	if (proto_get(&f, "layer") != NULL)
		rc = import_chunk(im, &f);
	else if (proto_get(&f, "n") != NULL)
		rc = import_turn(im, &f);
	else if ((rc = proto_get_u64(&f, "end", 1, 0, UINT64_MAX, &end,
	    im->r->cause)) == 0) {
		im->ended = 1;
		if (end != im->frames)
			rc = err_set(im->r->cause, "the file says %llu frames, "
			    "it holds %llu", (unsigned long long)end,
			    (unsigned long long)im->frames);
	}
	proto_msg_free(&f);
	im->frames++;
	return rc;
}

/* The head: the session it describes, with its cache and sampler. */
static int
import_head(struct importer *im, const uint8_t *body, size_t len,
    const char *name, size_t name_len)
{
	struct req *r = im->r;
	struct proto_msg *h = &im->head;
	struct store_row row = { 0 };
	const char *fmt, *nm, *fp, *tp;
	size_t fl, nl, fpl, tl;
	int rc;
	uint64_t version;

	if (proto_msg_parse(h, body, len, r->cause) != 0)
		return req_err(r, PROTO_E_BAD_REQUEST, "not a sinkd export: %s",
		    r->cause);
	im->have_head = 1;
	if (proto_get_str(h, "format", 1, 64, &fmt, &fl, r->cause) != 0 ||
	    strcmp(fmt, "sinkd-session") != 0)
		return req_err(r, PROTO_E_BAD_REQUEST, "not a sinkd export (no "
		    "format 'sinkd-session' in its first frame)");
	if (proto_get_u64(h, "version", 1, 1, UINT32_MAX, &version,
	    r->cause) == 0 && version > 1)
		return req_err(r, PROTO_E_BAD_REQUEST, "export version %llu "
		    "is newer than this sinkd's 1", (unsigned long long)version);
	if (r->cause[0] != '\0' || proto_get_str(h, "name", 1,
	    PROTO_NAME_MAX, &nm, &nl, r->cause) || proto_get_str(h,
	    "fingerprint", 1, 64, &fp, &fpl, r->cause) || proto_get_i64(h,
	    "created", 1, 0, INT64_MAX, &row.created, r->cause) ||
	    proto_get_i64(h, "used", 1, 0, INT64_MAX, &row.used, r->cause) ||
	    proto_get_bin(h, "options", 1, 1 << 26, &row.options,
	    &row.options_len, r->cause) || proto_get_bin(h, "state", 1,
	    1 << 30, &im->state, &im->state_len, r->cause))
		return req_err(r, PROTO_E_BAD_REQUEST, "export head: %s",
		    r->cause);
	row.state = im->state;
	row.state_len = im->state_len;
	if ((rc = proto_get_str(h, "template", 0, sizeof row.tmpl - 1, &tp,
	    &tl, r->cause)) < 0)
		return req_err(r, PROTO_E_BAD_REQUEST, "export head: %s",
		    r->cause);
	snprintf(row.tmpl, sizeof row.tmpl, "%.*s", rc == 0 ? (int)tl : 5,
	    rc == 0 ? tp : "plain");
	if (strcmp(fp, im->m->fingerprint) != 0)
		return req_err(r, PROTO_E_WRONG_MODEL, "this export was made "
		    "with another model (fingerprint %.12s; this sinkd runs %s, "
		    "%.12s): import it where that model runs", fp,
		    im->m->desc, im->m->fingerprint);
	if (name_len == 0) {
		name = nm;
		name_len = nl;
	}
	if (!proto_session_name_ok(name, name_len))
		return req_err(r, PROTO_E_INVALID_NAME, "'%.*s' is not a "
		    "session name", (int)(name_len > 64 ? 64 : name_len), name);
	if (sess_find(&r->d->sessions, name, name_len) != NULL)
		return req_err(r, PROTO_E_EXISTS, "session '%.*s' exists: give "
		    "another name", (int)name_len, name);
	snprintf(row.name, sizeof row.name, "%.*s", (int)name_len, name);
	snprintf(row.fingerprint, sizeof row.fingerprint, "%s", fp);
	row.owner = (uint32_t)r->c->uid;
	if ((im->s = snap_from_row(im->m, &row, 0, r->cause)) == NULL)
		return req_err(r, PROTO_E_INTERNAL, "%s", r->cause);
	if (im->s->damaged[0] != '\0')
		return req_err(r, PROTO_E_BAD_REQUEST, "the export cannot be "
		    "used: %s", im->s->damaged);
	if ((im->s->seq = seq_new(im->m, &im->s->so, r->cause)) == NULL ||
	    (im->s->smp = sampler_new(&im->s->sp, im->m->hp.n_vocab,
	    r->cause)) == NULL)
		return req_err(r, PROTO_E_BAD_REQUEST, "the export's cache: %s",
		    r->cause);
	/* The state (im->state) is restored once the chunks are in. */
	return 0;
}

/* Reads a whole export into a new session; -1 with the error set. */
static int
import_all(struct req *r, const uint8_t *buf, size_t len, const char *name,
    size_t name_len, struct session **out)
{
	struct importer im = { .r = r, .m = r->d->model, .frames = 1 };
	size_t bl, at = 0;
	char why[ERR_LEN];
	int rc;

	*out = NULL;
	if ((rc = proto_frame_check(buf, len, EXPORT_FRAME_MAX, &bl,
	    r->cause)) != 1)
		return req_err(r, PROTO_E_BAD_REQUEST, "not a sinkd export%s%s",
		    rc < 0 ? ": " : " (cut short)", rc < 0 ? r->cause : "");
	r->cause[0] = '\0';
	if ((rc = import_head(&im, buf + 4, bl, name, name_len)) != 0)
		goto fail;
	at = 4 + bl;
	while (!im.ended && at < len) {
		if ((rc = proto_frame_check(buf + at, len - at,
		    EXPORT_FRAME_MAX, &bl, r->cause)) != 1 ||
		    import_frame(&im, buf + at + 4, bl) != 0) {
			snprintf(why, sizeof why, "%s", rc == 0 ? "the file "
			    "is cut short" : r->cause);
			rc = req_err(r, PROTO_E_BAD_REQUEST, "frame %llu of the "
			    "export: %s", (unsigned long long)im.frames + 1,
			    why);
			goto fail;
		}
		at += 4 + bl;
	}
	if (!im.ended) {
		rc = req_err(r, PROTO_E_BAD_REQUEST, "the export is cut short "
		    "(no end frame)");
		goto fail;
	}
	if (snap_restore_state(im.s, im.m, im.state, im.state_len, why) !=
	    0) {
		rc = req_err(r, PROTO_E_BAD_REQUEST, "the export's state: %s",
		    why);
		goto fail;
	}
	proto_msg_free(&im.head);
	seq_get_info(im.s->seq, &im.s->info);
	im.s->resident = 1;
	*out = im.s;
	return 0;
fail:
	if (im.have_head)
		proto_msg_free(&im.head);
	session_free(im.s);
	return rc;
}

static int
import_append(struct req *r, const void *data, size_t len)
{
	struct client *c = r->c;
	struct daemon *d = r->d;
	uint64_t limit = (d->conf->max_memory > 0 ?
	    (uint64_t)d->conf->max_memory : UINT64_C(4) << 30) + (256u << 20);
	size_t cap;
	uint8_t *b;

	/* One budget for every import under way, not one per client. */
	if (d->import_bytes + len > limit) {
		xfer_import_drop(c);
		return req_err(r, PROTO_E_TOO_LARGE, "imports under way would "
		    "hold over %llu bytes (max-memory and 256 MiB of "
		    "transcript): try again later", (unsigned long long)limit);
	}
	if (c->import_len + len > c->import_cap) {
		cap = (c->import_len + len) * 2;
		if (cap > limit)
			cap = c->import_len + len;
		if ((b = realloc(c->import, cap)) == NULL)
			return req_err(r, PROTO_E_INTERNAL, "out of memory");
		c->import = b;
		c->import_cap = cap;
	}
	memcpy(c->import + c->import_len, data, len);
	c->import_len += len;
	d->import_bytes += len;
	return 0;
}

int
op_import(struct req *r)
{
	struct client *c = r->c;
	struct session *s;
	const void *data;
	const char *name = "";
	size_t len, nl = 0;
	int more = 0, rc;

	if (proto_get_bin(r->msg, "data", 1, SIZE_MAX, &data, &len,
	    r->cause) != 0 || proto_get_bool(r->msg, "more", 0, &more,
	    r->cause) < 0 || proto_get_str(r->msg, "name", 0,
	    PROTO_NAME_MAX * 4, &name, &nl, r->cause) < 0)
		return bad(r);
	if (import_append(r, data, len) != 0)
		return -1;
	if (more) {
		proto_put_u64(ok(r, 1), "received", c->import_len);
		return reply(r);
	}
	rc = import_all(r, c->import, c->import_len, name, nl, &s);
	xfer_import_drop(c);
	if (rc != 0)
		return -1;
	persist_budget(r->d, NULL, s->info.bytes, 1);
	if (sess_add(&r->d->sessions, s, r->cause) != 0) {
		session_free(s);
		return req_err(r, PROTO_E_INTERNAL, "%s", r->cause);
	}
	persist_touch(r->d, s);
	if (persist_save(r->d, s, 2, r->cause) != 0) {
		sess_remove(&r->d->sessions, s);
		session_free(s);
		return req_err(r, PROTO_E_STORE, "%s", r->cause);
	}
	log_info("session '%s' imported by uid %u", s->name,
	    (unsigned)r->c->uid);
	proto_pack_key(ok(r, 1), "session");
	pack_detail(&r->out, &r->d->tmpl, s);
	return reply(r);
}
