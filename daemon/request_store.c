/*
 * request_store: the handlers of the store's ops: log (the transcript),
 * rebuild (a cache from the transcript), fork, export and import.
 * Export files are frames as on the socket (sinkd-protocol(7)): a head
 * {"format": "sinkd-session", "version": 1, "name", "model",
 * "fingerprint", "created", "used", "options", "state", "turns"}, one
 * frame per KV chunk {"layer", "chunk", "crc", "data"}, one per turn
 * {"n", "role", "text", "tokens"}, and {"end": frames before it}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "persist.h"
#include "req.h"
#include "snap.h"
#include "store.h"

static int
tlist_add(struct tlist *l, int64_t n, int role, const char *text,
    size_t len)
{
	size_t cap;
	void *v;

	if (l->count > 0 && l->bytes + len > l->max_bytes)
		return 1; /* enough for one reply */
	if (l->count == l->cap) {
		cap = l->cap ? l->cap * 2 : 16;
		if ((v = realloc(l->v, cap * sizeof *l->v)) == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if ((l->v[l->count].text = malloc(len + 1)) == NULL)
		return -1;
	memcpy(l->v[l->count].text, text, len);
	l->v[l->count].len = len;
	l->v[l->count].n = n;
	l->v[l->count].role = role;
	l->count++;
	l->bytes += len;
	return 0;
}

static int
tlist_stored(void *arg, int64_t n, const struct store_turn *t)
{
	return tlist_add(arg, n, t->role, t->text, t->len);
}

void
tlist_free(struct tlist *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		free(l->v[i].text);
	free(l->v);
}

/* Turns from..from+max-1 of s (stored ones, then those in memory). */
int
get_turns(struct req *r, const struct session *s, int64_t from, int64_t max,
    struct tlist *l)
{
	int64_t n;
	size_t i;
	int rc = 0;

	memset(l, 0, sizeof *l);
	l->max_bytes = REPLY_MAX / 2;
	if (from < s->n_stored && store_turns(r->d->store, s->name, from,
	    max, tlist_stored, l, r->cause) != 0) {
		tlist_free(l);
		return req_err(r, PROTO_E_STORE, "%s", r->cause);
	}
	/* The turns in memory follow only a stored part that reached them. */
	if (from < s->n_stored && (l->count == 0 ||
	    l->v[l->count - 1].n != s->n_stored - 1))
		return 0;
	for (i = 0; rc == 0 && i < s->n_turns; i++) {
		n = s->n_stored + (int64_t)i;
		if (n < from || (int64_t)l->count >= max)
			continue;
		rc = tlist_add(l, n, (int)s->turns[i].role, s->turns[i].text,
		    s->turns[i].len);
	}
	if (rc < 0) {
		tlist_free(l);
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	}
	return 0;
}

void
pack_turns(struct proto_out *o, const struct tlist *l)
{
	size_t i;

	proto_pack_array(o, l->count);
	for (i = 0; i < l->count; i++) {
		proto_pack_map(o, 3);
		proto_put_u64(o, "n", (uint64_t)l->v[i].n);
		proto_put_cstr(o, "role", role_name((enum turn_role)
		    l->v[i].role));
		proto_pack_key(o, "text");
		proto_pack_str(o, l->v[i].text, l->v[i].len);
	}
}

/* A page of the whole transcript: turns from `from`, at most `max`. */
int
op_log(struct req *r)
{
	struct session *s;
	struct proto_out *o;
	struct tlist l;
	uint64_t from = 0, max = 1000;

	if (find_session(r, &s) != 0)
		return -1;
	if (proto_get_u64(r->msg, "from", 0, 0, INT64_MAX, &from,
	    r->cause) < 0 || proto_get_u64(r->msg, "max", 0, 1, 100000, &max,
	    r->cause) < 0)
		return bad(r);
	if (get_turns(r, s, (int64_t)from, (int64_t)max, &l) != 0)
		return -1;
	o = ok(r, 2);
	proto_put_u64(o, "total", turn_count(s));
	proto_pack_key(o, "turns");
	pack_turns(o, &l);
	tlist_free(&l);
	return reply(r);
}


/* The session may be copied out: idle, and all of it in the store. */
static int
settled(struct req *r, struct session *s)
{
	if (s->running != NULL || s->queue != NULL)
		return req_err(r, PROTO_E_BUSY, "session '%s' is running a "
		    "request: wait for it or cancel it", s->name);
	if (s->dirty && persist_save(r->d, s, 0, r->cause) != 0)
		return req_err(r, PROTO_E_STORE, "%s", r->cause);
	return 0;
}

/*
 * A new cache from the transcript: the pinned prefix (the system prompt)
 * and the most recent turns that fit.  Works on damaged sessions and on
 * those made with another model; the worker replies when it is done.
 */
int
op_rebuild(struct req *r)
{
	struct session *s;
	struct job *j;
	int32_t *pin = NULL;
	size_t n_pin = 0;

	if (find_session(r, &s) != 0)
		return -1;
	if (s->system != NULL && system_tokens(r, s->system,
	    strlen(s->system), &pin, &n_pin) != 0)
		return -1;
	if ((j = job_new(r, s, JOB_REBUILD)) == NULL) {
		free(pin);
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	}
	j->prefix = pin;
	j->n_prefix = n_pin;
	log_info("session '%s': rebuilding from its transcript", s->name);
	return enqueue(r, j);
}

int
op_fork(struct req *r)
{
	struct session *s, *n;
	struct store_row row;
	void *opt, *state;
	const char *to;
	size_t len;
	int rc;

	if (find_session(r, &s) != 0)
		return -1;
	if (proto_get_str(r->msg, "new", 1, PROTO_NAME_MAX * 4, &to, &len,
	    r->cause) != 0)
		return bad(r);
	if (!proto_session_name_ok(to, len))
		return req_err(r, PROTO_E_INVALID_NAME, "session names are 1 "
		    "to 64 ASCII letters, digits, '-', '_' and '.', not "
		    "starting with '.'");
	if (sess_find(&r->d->sessions, to, len) != NULL)
		return req_err(r, PROTO_E_EXISTS, "session '%.*s' exists",
		    (int)len, to);
	if (settled(r, s) != 0)
		return -1;
	if ((rc = store_load_row(r->d->store, s->name, &row, &opt, &state,
	    r->cause)) != 0)
		return req_err(r, PROTO_E_STORE, "session '%s': %s", s->name,
		    rc == 1 ? "not in the database" : r->cause);
	snprintf(row.name, sizeof row.name, "%.*s", (int)len, to);
	row.owner = (uint32_t)r->c->uid;
	row.created = row.used = (int64_t)time(NULL);
	n = NULL;
	if (store_fork(r->d->store, s->name, &row, r->cause) != 0)
		rc = req_err(r, PROTO_E_STORE, "fork of '%s': %s", s->name,
		    r->cause);
	else if ((n = snap_from_row(r->d->model, &row, s->n_stored,
	    r->cause)) == NULL || sess_add(&r->d->sessions, n, r->cause) != 0) {
		session_free(n);
		n = NULL;
		store_delete(r->d->store, row.name, NULL);
		rc = req_err(r, PROTO_E_INTERNAL, "%s", r->cause);
	}
	free(opt);
	free(state);
	if (n == NULL)
		return -1;
	persist_touch(r->d, n);
	log_info("session '%s' forked from '%s'", n->name, s->name);
	proto_pack_key(ok(r, 1), "session");
	pack_detail(&r->out, n);
	return reply(r);
}

/* An export frame fits one data message. */
#define EXPORT_FRAME_MAX (REPLY_MAX - 1024)

/* Export: each frame of the file goes out as one data message. */
struct exporter {
	struct req *r;
	struct proto_out frame, msg;
	uint64_t frames, bytes;
	int failed;
};

/* The frame being built is done: it goes to the client. */
static int
ship(struct exporter *e)
{
	const char *data;
	size_t len;

	if (proto_out_finish(&e->frame, EXPORT_FRAME_MAX, &data, &len,
	    e->r->cause) != 0) {
		e->failed = 1;
		return -1;
	}
	proto_out_reset(&e->msg);
	proto_encode_head(&e->msg, e->r->id, PROTO_K_DATA, 1);
	proto_put_bin(&e->msg, "data", data, len);
	send_out(e->r->c, &e->msg, e->r->id);
	e->frames++;
	e->bytes += len;
	proto_out_reset(&e->frame);
	return 0;
}

static int
export_chunk(void *arg, int layer, int32_t chunk, uint32_t crc,
    const void *data, size_t len)
{
	struct exporter *e = arg;

	proto_pack_map(&e->frame, 4);
	proto_put_u64(&e->frame, "layer", (uint64_t)layer);
	proto_put_u64(&e->frame, "chunk", (uint64_t)chunk);
	proto_put_u64(&e->frame, "crc", crc);
	proto_put_bin(&e->frame, "data", data, len);
	return ship(e);
}

static int
export_turn(void *arg, int64_t n, const struct store_turn *t)
{
	struct exporter *e = arg;
	uint8_t *b = malloc(t->n_toks * 4 + 1);
	size_t i;

	if (b == NULL)
		return -1;
	for (i = 0; i < t->n_toks; i++) {
		uint32_t v = (uint32_t)t->toks[i];
		b[4 * i] = (uint8_t)v;
		b[4 * i + 1] = (uint8_t)(v >> 8);
		b[4 * i + 2] = (uint8_t)(v >> 16);
		b[4 * i + 3] = (uint8_t)(v >> 24);
	}
	proto_pack_map(&e->frame, 4);
	proto_put_u64(&e->frame, "n", (uint64_t)n);
	proto_put_u64(&e->frame, "role", (uint64_t)t->role);
	proto_put_bin(&e->frame, "text", t->text, t->len);
	proto_put_bin(&e->frame, "tokens", b, t->n_toks * 4);
	free(b);
	return ship(e);
}

static void
export_head(struct exporter *e, const struct store_row *row, int64_t turns)
{
	struct proto_out *f = &e->frame;

	proto_pack_map(f, 10);
	proto_put_cstr(f, "format", "sinkd-session");
	proto_put_u64(f, "version", 1);
	proto_put_cstr(f, "name", row->name);
	proto_put_cstr(f, "model", e->r->d->model->desc);
	proto_put_cstr(f, "fingerprint", row->fingerprint);
	proto_put_i64(f, "created", row->created);
	proto_put_i64(f, "used", row->used);
	proto_put_bin(f, "options", row->options, row->options_len);
	proto_put_bin(f, "state", row->state, row->state_len);
	proto_put_u64(f, "turns", (uint64_t)turns);
}

int
op_export(struct req *r)
{
	struct exporter e = { .r = r };
	struct session *s;
	struct store_row row;
	void *opt, *state;
	int rc;

	if (find_session(r, &s) != 0 || settled(r, s) != 0)
		return -1;
	if ((rc = store_load_row(r->d->store, s->name, &row, &opt, &state,
	    r->cause)) != 0)
		return req_err(r, PROTO_E_STORE, "session '%s': %s", s->name,
		    rc == 1 ? "not in the database" : r->cause);
	proto_out_init(&e.frame);
	proto_out_init(&e.msg);
	export_head(&e, &row, s->n_stored);
	rc = ship(&e);
	if (rc == 0)
		rc = store_chunks(r->d->store, s->name, export_chunk, &e,
		    r->cause);
	if (rc == 0)
		rc = store_turns(r->d->store, s->name, 0, INT64_MAX,
		    export_turn, &e, r->cause);
	if (rc == 0) {
		proto_pack_map(&e.frame, 1);
		proto_put_u64(&e.frame, "end", e.frames);
		rc = ship(&e);
	}
	proto_out_free(&e.frame);
	proto_out_free(&e.msg);
	free(opt);
	free(state);
	if (rc != 0)
		return req_err(r, PROTO_E_STORE, "export of '%s' failed: %s",
		    s->name, r->cause);
	log_info("session '%s' exported: %llu bytes", s->name,
	    (unsigned long long)e.bytes);
	proto_put_u64(ok(r, 2), "frames", e.frames);
	proto_put_u64(&r->out, "bytes", e.bytes);
	return reply(r);
}

/* Import: the file arrives in parts ("more": true), then is read whole. */
struct importer {
	struct req *r;
	struct session *s;
	const struct model *m;
	int64_t next_turn;
	uint64_t frames;
	int ended;
};

static int
import_chunk(struct importer *im, const struct proto_msg *f)
{
	struct req *r = im->r;
	struct seq *q = im->s->seq;
	uint64_t layer, chunk, crc;
	const void *data;
	size_t len;

	if (proto_get_u64(f, "layer", 1, 0, (uint64_t)im->m->hp.n_layer - 1,
	    &layer, r->cause) || proto_get_u64(f, "chunk", 1, 0,
	    (uint64_t)seq_n_chunks(q) - 1, &chunk, r->cause) ||
	    proto_get_u64(f, "crc", 1, 0, UINT32_MAX, &crc, r->cause) ||
	    proto_get_bin(f, "data", 1, seq_chunk_bytes(q), &data, &len,
	    r->cause))
		return -1;
	if (len != seq_chunk_bytes(q))
		return err_set(r->cause, "chunk %llu of layer %llu is %zu bytes, "
		    "not %zu", (unsigned long long)chunk,
		    (unsigned long long)layer, len, seq_chunk_bytes(q));
	if (store_crc32(data, len) != (uint32_t)crc)
		return err_set(r->cause, "chunk %llu of layer %llu is damaged "
		    "(CRC mismatch)", (unsigned long long)chunk,
		    (unsigned long long)layer);
	seq_chunk_set(q, (int)layer, (int32_t)chunk, data);
	return 0;
}

static int
import_turn(struct importer *im, const struct proto_msg *f)
{
	struct req *r = im->r;
	uint64_t n, role;
	const void *text, *tb;
	size_t tl, bl, i;
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
	for (i = 0; i < bl / 4; i++) {
		const uint8_t *p = (const uint8_t *)tb + 4 * i;
		ids[i] = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 |
		    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
	}
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
	struct proto_msg h;
	struct store_row row = { 0 };
	const char *fmt, *nm, *fp;
	size_t fl, nl, fpl;
	uint64_t version = 0;
	int rc = -1;

	if (proto_msg_parse(&h, body, len, r->cause) != 0)
		return req_err(r, PROTO_E_BAD_REQUEST, "not a sinkd export: %s",
		    r->cause);
	if (proto_get_str(&h, "format", 1, 64, &fmt, &fl, r->cause) != 0 ||
	    strcmp(fmt, "sinkd-session") != 0) {
		req_err(r, PROTO_E_BAD_REQUEST, "not a sinkd export (no "
		    "format 'sinkd-session' in its first frame)");
		goto out;
	}
	if (proto_get_u64(&h, "version", 1, 1, UINT32_MAX, &version,
	    r->cause) || version > 1 || proto_get_str(&h, "name", 1,
	    PROTO_NAME_MAX, &nm, &nl, r->cause) || proto_get_str(&h,
	    "fingerprint", 1, 64, &fp, &fpl, r->cause) || proto_get_i64(&h,
	    "created", 1, 0, INT64_MAX, &row.created, r->cause) ||
	    proto_get_i64(&h, "used", 1, 0, INT64_MAX, &row.used, r->cause) ||
	    proto_get_bin(&h, "options", 1, 1 << 26, &row.options,
	    &row.options_len, r->cause) || proto_get_bin(&h, "state", 1,
	    1 << 30, &row.state, &row.state_len, r->cause)) {
		if (r->cause[0] == '\0' || version > 1)
			snprintf(r->cause, sizeof r->cause, "export version "
			    "%llu is newer than this sinkd's 1",
			    (unsigned long long)version);
		req_err(r, PROTO_E_BAD_REQUEST, "export head: %s", r->cause);
		goto out;
	}
	if (strcmp(fp, im->m->fingerprint) != 0) {
		req_err(r, PROTO_E_WRONG_MODEL, "this export was made with "
		    "another model (fingerprint %.12s; this sinkd runs %s, "
		    "%.12s): import it where that model runs", fp,
		    im->m->desc, im->m->fingerprint);
		goto out;
	}
	if (name_len == 0) {
		name = nm;
		name_len = nl;
	}
	if (!proto_session_name_ok(name, name_len)) {
		req_err(r, PROTO_E_INVALID_NAME, "'%.*s' is not a session name",
		    (int)(name_len > 64 ? 64 : name_len), name);
		goto out;
	}
	if (sess_find(&r->d->sessions, name, name_len) != NULL) {
		req_err(r, PROTO_E_EXISTS, "session '%.*s' exists: give "
		    "another name", (int)name_len, name);
		goto out;
	}
	snprintf(row.name, sizeof row.name, "%.*s", (int)name_len, name);
	snprintf(row.fingerprint, sizeof row.fingerprint, "%s", fp);
	row.owner = (uint32_t)r->c->uid;
	if ((im->s = snap_from_row(im->m, &row, 0, r->cause)) == NULL) {
		req_err(r, PROTO_E_INTERNAL, "%s", r->cause);
		goto out;
	}
	if (im->s->damaged[0] != '\0') {
		req_err(r, PROTO_E_BAD_REQUEST, "the export cannot be used: %s",
		    im->s->damaged);
		goto out;
	}
	if ((im->s->seq = seq_new(im->m, &im->s->so, r->cause)) == NULL ||
	    (im->s->smp = sampler_new(&im->s->sp, im->m->hp.n_vocab,
	    r->cause)) == NULL) {
		req_err(r, PROTO_E_BAD_REQUEST, "the export's cache: %s",
		    r->cause);
		goto out;
	}
	/* The state is restored once the chunks are in: keep it. */
	rc = 0;
out:
	proto_msg_free(&h);
	return rc;
}

/* Reads a whole export into a new session; -1 with the error set. */
static int
import_all(struct req *r, const uint8_t *buf, size_t len, const char *name,
    size_t name_len, struct session **out)
{
	struct importer im = { .r = r, .m = r->d->model, .frames = 1 };
	const uint8_t *state;
	size_t bl, at = 0, state_len;
	struct proto_msg h;
	char why[ERR_LEN];
	int rc;

	*out = NULL;
	if ((rc = proto_frame_check(buf, len, EXPORT_FRAME_MAX, &bl,
	    r->cause)) != 1)
		return req_err(r, PROTO_E_BAD_REQUEST, "not a sinkd export%s%s",
		    rc < 0 ? ": " : " (cut short)", rc < 0 ? r->cause : "");
	if (import_head(&im, buf + 4, bl, name, name_len) != 0) {
		session_free(im.s);
		return -1;
	}
	/* The head again, for its state blob (the message is freed). */
	proto_msg_parse(&h, buf + 4, bl, NULL);
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
	proto_get_bin(&h, "state", 1, 1 << 30, (const void **)&state,
	    &state_len, NULL);
	if (snap_restore_state(im.s, im.m, state, state_len, why) != 0) {
		rc = req_err(r, PROTO_E_BAD_REQUEST, "the export's state: %s",
		    why);
		goto fail;
	}
	proto_msg_free(&h);
	seq_get_info(im.s->seq, &im.s->info);
	im.s->resident = 1;
	*out = im.s;
	return 0;
fail:
	proto_msg_free(&h);
	session_free(im.s);
	return rc;
}

static int
import_append(struct req *r, const void *data, size_t len)
{
	struct client *c = r->c;
	uint64_t limit = (uint64_t)r->d->conf->max_memory + (256u << 20);
	size_t cap;
	uint8_t *b;

	if (c->import_len + len > limit) {
		free(c->import);
		c->import = NULL;
		c->import_len = c->import_cap = 0;
		return req_err(r, PROTO_E_TOO_LARGE, "the import is over %llu "
		    "bytes (max-memory and 256 MiB of transcript)",
		    (unsigned long long)limit);
	}
	if (c->import_len + len > c->import_cap) {
		cap = (c->import_len + len) * 2;
		if ((b = realloc(c->import, cap)) == NULL)
			return req_err(r, PROTO_E_INTERNAL, "out of memory");
		c->import = b;
		c->import_cap = cap;
	}
	memcpy(c->import + c->import_len, data, len);
	c->import_len += len;
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
	free(c->import);
	c->import = NULL;
	c->import_len = c->import_cap = 0;
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
	pack_detail(&r->out, s);
	return reply(r);
}
