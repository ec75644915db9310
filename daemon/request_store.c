/*
 * request_store: the handlers of the store's ops that stay inside the
 * daemon: log (the transcript), rebuild (a cache from the transcript)
 * and fork.  Export and import are xfer.c's.
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


int
settled(struct req *r, struct session *s)
{
	if (s->running != NULL || s->queue != NULL || s->exporting)
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
		req_err(r, PROTO_E_STORE, "fork of '%s': %s", s->name,
		    r->cause);
	else if ((n = snap_from_row(r->d->model, &row, s->n_stored,
	    r->cause)) == NULL || sess_add(&r->d->sessions, n, r->cause) != 0) {
		session_free(n);
		n = NULL;
		store_delete(r->d->store, row.name, NULL);
		req_err(r, PROTO_E_INTERNAL, "%s", r->cause);
	}
	free(opt);
	free(state);
	if (n == NULL)
		return -1;
	persist_touch(r->d, n);
	log_info("session '%s' forked from '%s'", n->name, s->name);
	proto_pack_key(ok(r, 1), "session");
	pack_detail(&r->out, &r->d->tmpl, n);
	return reply(r);
}

