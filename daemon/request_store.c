/*
 * request_store: the handlers of the store's ops that stay inside the
 * daemon: log (the transcript; info's recent turns too, read on the
 * store thread), rebuild (a cache from the transcript)
 * and fork (a store job: the rows are copied on the store thread, the
 * new session is made on the loop once they are).  Export and import
 * are xfer.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "log.h"
#include "persist.h"
#include "req.h"
#include "request.h"
#include "snap.h"
#include "store.h"
#include "storeq.h"

static int
tlist_add(struct tlist *l, int64_t n, int role, const char *text,
    size_t len)
{
	size_t cap;
	void *v;

	if (l->count > 0 && l->bytes + len > l->max_bytes) {
		l->full = 1;
		return 1; /* enough for one reply */
	}
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

/*
 * A log or an info whose stored turns are read on the store thread, so
 * that the loop never waits on the database; the reply is made on the
 * loop once they are read, with the turns in memory after them.
 */
struct tread {
	struct daemon *d;
	uint64_t serial, id;	/* the client, found again at the end */
	int info;		/* op info; else op log */
	char name[PROTO_NAME_MAX + 1];
	int64_t from, max;
	struct tlist l;
	int rc;			/* tread_run's: 0, or -1 with cause */
	char cause[ERR_LEN];
	int tries;
};

static void
tlist_init(struct tlist *l)
{
	memset(l, 0, sizeof *l);
	l->max_bytes = REPLY_MAX / 2;
}

static void
tlist_pop(struct tlist *l)
{
	l->count--;
	l->bytes -= l->v[l->count].len;
	l->full = 0;
	free(l->v[l->count].text);
}

/*
 * The turns in memory after the stored ones l holds: 0, -1 out of
 * memory, or 1 when the store was read before turns it now holds were
 * written (the session counts more stored turns than the read saw), so
 * that the read must be made again.
 */
static int
tlist_memory(struct tlist *l, const struct session *s, int64_t from,
    int64_t max)
{
	int64_t n, total = s->n_stored + (int64_t)s->n_turns;
	size_t i;
	int rc = 0;

	/* A turn stored since, whose DONE the loop has not had: not yet. */
	while (l->count > 0 && l->v[l->count - 1].n >= total)
		tlist_pop(l);
	if (from < s->n_stored) {
		if ((int64_t)l->count >= max || l->full)
			return 0;	/* the page is full anyway */
		if (l->count == 0 || l->v[l->count - 1].n != s->n_stored - 1)
			return 1;
	}
	for (i = 0; rc == 0 && i < s->n_turns; i++) {
		n = s->n_stored + (int64_t)i;
		if (n < from || (int64_t)l->count >= max)
			continue;
		rc = tlist_add(l, n, (int)s->turns[i].role, s->turns[i].text,
		    s->turns[i].len);
	}
	return rc < 0 ? -1 : 0;
}

/* The reply: log's page with the total, or info's session and recent. */
static void
send_turns(struct daemon *d, struct client *c, uint64_t id, int info,
    const struct session *s, const struct tlist *l)
{
	struct proto_out o;

	proto_out_init(&o);
	proto_encode_head(&o, id, PROTO_K_OK, 2);
	if (info) {
		proto_pack_key(&o, "session");
		pack_detail(&o, &d->tmpl, s);
		proto_pack_key(&o, "recent");
	} else {
		proto_put_u64(&o, "total", turn_count(s));
		proto_pack_key(&o, "turns");
	}
	pack_turns(&o, l);
	send_out(c, &o, id);
	proto_out_free(&o);
}

static void
send_error(struct client *c, uint64_t id, enum proto_err code,
    const char *msg)
{
	struct proto_out o;

	proto_out_init(&o);
	proto_encode_error(&o, id, code, "%s", msg);
	send_out(c, &o, id);
	proto_out_free(&o);
}

/* On the store thread. */
static void
tread_run(void *arg)
{
	struct tread *t = arg;

	tlist_init(&t->l);
	t->rc = store_turns(t->d->store, t->name, t->from, t->max,
	    tlist_stored, &t->l, t->cause);
}

static void tread_done(void *);

/* On the loop: the turns in memory join them, and the reply goes. */
static void
tread_done(void *arg)
{
	struct tread *t = arg;
	struct client *c = client_find(t->d, t->serial);
	struct session *s = sess_find(&t->d->sessions, t->name,
	    strlen(t->name));
	int rc = t->rc;

	if (c == NULL || c->closing)
		goto out;
	if (s == NULL || s->dead) {
		send_error(c, t->id, PROTO_E_NO_SUCH_SESSION, "the session "
		    "went while its turns were read");
		goto out;
	}
	if (rc != 0) {
		send_error(c, t->id, PROTO_E_STORE, t->cause);
		goto out;
	}
	if ((rc = tlist_memory(&t->l, s, t->from, t->max)) == 1 &&
	    t->tries++ < 8) {
		/* Read again, after the snapshot that moved the turns. */
		tlist_free(&t->l);
		storeq_submit(t->d->storeq, tread_run, tread_done, t);
		return;
	}
	if (rc < 0)
		send_error(c, t->id, PROTO_E_INTERNAL, "out of memory");
	else
		send_turns(t->d, c, t->id, t->info, s, &t->l);
out:
	tlist_free(&t->l);
	free(t);
}

int
reply_turns(struct req *r, const struct session *s, int info, int64_t from,
    int64_t max)
{
	struct tread *t;
	struct tlist l;

	if (from >= s->n_stored) {
		/* All in memory: the reply goes now. */
		tlist_init(&l);
		if (tlist_memory(&l, s, from, max) != 0) {
			tlist_free(&l);
			return req_err(r, PROTO_E_INTERNAL, "out of memory");
		}
		send_turns(r->d, r->c, r->id, info, s, &l);
		tlist_free(&l);
		return 0;
	}
	if ((t = calloc(1, sizeof *t)) == NULL)
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	t->d = r->d;
	t->serial = r->c->serial;
	t->id = r->id;
	t->info = info;
	snprintf(t->name, sizeof t->name, "%s", s->name);
	t->from = from;
	t->max = max;
	storeq_submit(r->d->storeq, tread_run, tread_done, t);
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
	uint64_t from = 0, max = 1000;

	if (find_session(r, &s) != 0)
		return -1;
	if (proto_get_u64(r->msg, "from", 0, 0, INT64_MAX, &from,
	    r->cause) < 0 || proto_get_u64(r->msg, "max", 0, 1, 100000, &max,
	    r->cause) < 0)
		return bad(r);
	return reply_turns(r, s, 0, (int64_t)from, (int64_t)max);
}


/* A snapshot owed before a copy: the request again, or the error. */
static void
redo_done(struct pjob *p)
{
	struct parked *k = p->arg;
	struct client *c = client_find(p->d, p->client);
	struct proto_out o;

	persist_saved(p);
	if (c != NULL && p->rc == 0)
		request_redo(c, k->body, k->len);
	else if (c != NULL) {
		proto_out_init(&o);
		proto_encode_error(&o, p->id, PROTO_E_STORE, "session '%s' was "
		    "not saved: %s", p->s->name, p->cause);
		send_out(c, &o, p->id);
		proto_out_free(&o);
	}
	free(k->body);
	free(k);
}

int
settled(struct req *r, struct session *s)
{
	struct parked *k;
	struct pjob *p;

	if (s->running != NULL || s->queue != NULL || s->exporting)
		return req_err(r, PROTO_E_BUSY, "session '%s' is running a "
		    "request: wait for it or cancel it", s->name);
	/* What the store thread is writing of it, first. */
	if (s->storing > 0)
		return park(r, s);
	if (!s->dirty)
		return 0;
	k = calloc(1, sizeof *k);
	p = persist_job(r->d, s, persist_save_run, redo_done);
	if (k == NULL || p == NULL || (k->body = malloc(r->body_len +
	    1)) == NULL) {
		free(k);
		free(p);
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	}
	memcpy(k->body, r->body, r->body_len);
	k->len = r->body_len;
	p->client = r->c->serial;
	p->id = r->id;
	p->arg = k;
	persist_submit(r->d, p);
	return 1;
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
	/* In the chat format the session was made with. */
	if ((s->system != NULL || s->fmt != CHAT_PLAIN) && system_tokens(r,
	    s->fmt, s->system, s->system != NULL ? strlen(s->system) : 0,
	    &pin, &n_pin) != 0)
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

/* A fork under way: the store copies the rows inside the database. */
struct forking {
	struct store_row row;	/* the new session's */
	void *opt, *state;	/* its blobs (the source's) */
	char name[PROTO_NAME_MAX + 1];
	uint32_t owner;		/* the new session's: who forked it */
	int missing;		/* the source has no row */
};

static void
fork_run(struct pjob *p)
{
	struct forking *f = p->arg;
	struct store *st = p->d->store;

	if ((p->rc = store_load_row(st, p->s->name, &f->row, &f->opt,
	    &f->state, p->cause)) != 0) {
		f->missing = p->rc == 1;
		return;
	}
	snprintf(f->row.name, sizeof f->row.name, "%s", f->name);
	f->row.owner = f->owner;
	f->row.created = f->row.used = (int64_t)time(NULL);
	p->rc = store_fork(st, p->s->name, &f->row, p->cause);
}

/* Forgets a name in the store: a fork whose session could not be made. */
static void
undo_run(struct pjob *p)
{
	store_delete(p->d->store, p->arg, NULL);
}

static void
undo_done(struct pjob *p)
{
	free(p->arg);
}

static void
fork_done(struct pjob *p)
{
	struct forking *f = p->arg;
	struct daemon *d = p->d;
	struct client *c = client_find(d, p->client);
	struct session *n = NULL;
	struct pjob *u;
	struct proto_out o;
	char cause[ERR_LEN];

	persist_release(d, f->name);
	proto_out_init(&o);
	if (p->rc != 0)
		proto_encode_error(&o, p->id, PROTO_E_STORE, f->missing ?
		    "session '%s': not in the database" : "fork of '%s': %s",
		    p->s->name, p->cause);
	else if ((n = snap_from_row(d->model, &f->row, p->s->n_stored,
	    cause)) == NULL || sess_add(&d->sessions, n, cause) != 0) {
		session_free(n);
		n = NULL;
		if ((u = persist_job(d, NULL, undo_run, undo_done)) != NULL &&
		    (u->arg = strdup(f->name)) != NULL)
			persist_submit(d, u);
		else
			free(u);
		proto_encode_error(&o, p->id, PROTO_E_INTERNAL, "%s", cause);
	} else {
		persist_touch(d, n);
		log_info("session '%s' forked from '%s'", n->name, p->s->name);
		proto_encode_head(&o, p->id, PROTO_K_OK, 1);
		proto_pack_key(&o, "session");
		pack_detail(&o, &d->tmpl, n);
	}
	if (c != NULL)
		send_out(c, &o, p->id);
	proto_out_free(&o);
	free(f->opt);
	free(f->state);
	free(f);
}

int
op_fork(struct req *r)
{
	struct session *s;
	struct forking *f;
	struct pjob *p;
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
	if (persist_name_taken(r->d, to, len))
		return req_err(r, PROTO_E_EXISTS, "session '%.*s' exists",
		    (int)len, to);
	if ((rc = settled(r, s)) != 0)
		return rc > 0 ? 0 : -1;
	f = calloc(1, sizeof *f);
	p = persist_job(r->d, s, fork_run, fork_done);
	if (f == NULL || p == NULL) {
		free(f);
		free(p);
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	}
	snprintf(f->name, sizeof f->name, "%.*s", (int)len, to);
	if (persist_reserve(r->d, f->name) != 0) {
		free(f);
		free(p);
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	}
	p->client = r->c->serial;
	p->id = r->id;
	f->owner = (uint32_t)r->c->uid;
	p->arg = f;
	persist_submit(r->d, p);
	return 0;
}
