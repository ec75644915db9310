/*
 * import: op import, a session from an export file (the format is
 * xfer.c's).  The file arrives in parts ("more": true) into the
 * client's buffer; the whole is then read on the store thread, and the
 * session saved there too, so that a large import holds up no stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "log.h"
#include "persist.h"
#include "req.h"
#include "request.h"
#include "snap.h"
#include "store.h"
#include "xfer.h"

/* Import: the file arrives in parts ("more": true), then is read whole. */
struct importer {
	struct req *r;		/* its code and cause (no client here) */
	uint32_t uid;		/* who imports */
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
	snprintf(row.name, sizeof row.name, "%.*s", (int)name_len, name);
	snprintf(row.fingerprint, sizeof row.fingerprint, "%s", fp);
	row.owner = im->uid;
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
import_all(struct req *r, uint32_t uid, const uint8_t *buf, size_t len,
    const char *name, size_t name_len, struct session **out)
{
	struct importer im = { .r = r, .uid = uid, .m = r->d->model,
		.frames = 1 };
	size_t bl, at = 0;
	char why[ERR_LEN];
	int rc;

	*out = NULL;
	if ((rc = proto_frame_check(buf, len, XFER_FRAME_MAX, &bl,
	    r->cause)) != 1)
		return req_err(r, PROTO_E_BAD_REQUEST, "not a sinkd export%s%s",
		    rc < 0 ? ": " : " (cut short)", rc < 0 ? r->cause : "");
	r->cause[0] = '\0';
	if ((rc = import_head(&im, buf + 4, bl, name, name_len)) != 0)
		goto fail;
	at = 4 + bl;
	while (!im.ended && at < len) {
		if ((rc = proto_frame_check(buf + at, len - at,
		    XFER_FRAME_MAX, &bl, r->cause)) != 1 ||
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

/*
 * An import under way.  The file is read into a session on the store
 * thread (parsing, CRCs, the cache: a large file takes a while), then
 * on the loop the session joins the table, and its first snapshot is a
 * store job of its own; the client is answered after it has committed.
 */
struct importing {
	struct req r;		/* d, id, code and cause; no client */
	uint32_t uid;
	uint8_t *buf;		/* the file, taken from the client */
	size_t len;
	char name[PROTO_NAME_MAX * 4 + 1];	/* asked for; "": the file's */
	size_t name_len;
	struct session *s;
};

static void
importing_free(struct importing *im)
{
	free(im->buf);
	proto_out_free(&im->r.out);
	free(im);
}

static void
send_error(struct daemon *d, uint64_t client, uint64_t id,
    enum proto_err code, const char *cause)
{
	struct client *c = client_find(d, client);
	struct proto_out o;

	if (c == NULL)
		return;
	proto_out_init(&o);
	proto_encode_error(&o, id, code, "%s", cause);
	send_out(c, &o, id);
	proto_out_free(&o);
}

static void
read_run(struct pjob *p)
{
	struct importing *im = p->arg;

	p->rc = import_all(&im->r, im->uid, im->buf, im->len, im->name,
	    im->name_len, &im->s);
}

/* The first snapshot has committed, or not. */
static void
saved_done(struct pjob *p)
{
	struct daemon *d = p->d;
	struct session *s = p->s;
	struct client *c;
	struct proto_out o;

	if (p->rc != 0) {
		log_warn("session '%s' was not imported: %s", s->name,
		    p->cause);
		send_error(d, p->client, p->id, PROTO_E_STORE, p->cause);
		if (s->dead)
			return;	/* its delete, queued behind, frees it */
		request_stop_session(d, s, STOP_USER);
		sess_remove(&d->sessions, s);
		request_unpark(d, s);
		session_free(s);
		p->s = NULL;
		return;
	}
	session_saved(s, 0);
	log_info("session '%s' imported by uid %u", s->name,
	    (unsigned)s->owner);
	if ((c = client_find(d, p->client)) == NULL)
		return;
	proto_out_init(&o);
	proto_encode_head(&o, p->id, PROTO_K_OK, 1);
	proto_pack_key(&o, "session");
	pack_detail(&o, &d->tmpl, s);
	send_out(c, &o, p->id);
	proto_out_free(&o);
}

/* The file is read: the session joins, and its snapshot is queued. */
static void
read_done(struct pjob *p)
{
	struct importing *im = p->arg;
	struct daemon *d = p->d;
	struct session *s = im->s;
	struct pjob *save;
	char cause[ERR_LEN];

	d->import_bytes -= im->len;
	if (p->rc != 0) {
		send_error(d, p->client, p->id, im->r.code, im->r.cause);
		importing_free(im);
		return;
	}
	im->s = NULL;
	if (persist_name_taken(d, s->name, strlen(s->name))) {
		snprintf(cause, sizeof cause, "session '%s' exists: give "
		    "another name", s->name);
		send_error(d, p->client, p->id, PROTO_E_EXISTS, cause);
		session_free(s);
		importing_free(im);
		return;
	}
	persist_budget(d, NULL, s->info.bytes, 1);
	if ((save = persist_job(d, s, persist_save_run, saved_done)) == NULL ||
	    sess_add(&d->sessions, s, cause) != 0) {
		free(save);
		send_error(d, p->client, p->id, PROTO_E_INTERNAL,
		    "out of memory");
		session_free(s);
		importing_free(im);
		return;
	}
	persist_touch(d, s);
	save->replace = 2;
	save->client = p->client;
	save->id = p->id;
	persist_submit(d, save);
	importing_free(im);
}

int
op_import(struct req *r)
{
	struct client *c = r->c;
	struct importing *im;
	struct pjob *p;
	const void *data;
	const char *name = "";
	size_t len, nl = 0;
	int more = 0;

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
	im = calloc(1, sizeof *im);
	p = persist_job(r->d, NULL, read_run, read_done);
	if (im == NULL || p == NULL) {
		free(im);
		free(p);
		xfer_import_drop(c);
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	}
	im->r.d = r->d;
	im->r.id = r->id;
	proto_out_init(&im->r.out);
	im->uid = (uint32_t)c->uid;
	memcpy(im->name, name, nl);
	im->name_len = nl;
	/* The file is the job's now; it still counts in import_bytes. */
	im->buf = c->import;
	im->len = c->import_len;
	c->import = NULL;
	c->import_len = c->import_cap = 0;
	p->client = c->serial;
	p->id = r->id;
	p->arg = im;
	persist_submit(r->d, p);
	return 0;
}
