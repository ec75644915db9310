/*
 * persist: see persist.h.
 */
#include "persist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "log.h"
#include "req.h"
#include "request.h"
#include "snap.h"
#include "store.h"
#include "storeq.h"

struct lister {
	struct daemon *d;
	char *cause;
	size_t n, damaged;
};

static int
list_one(void *arg, const struct store_row *r, int64_t n_turns)
{
	struct lister *l = arg;
	struct session *s = snap_from_row(l->d->model, r, n_turns, l->cause);

	if (s == NULL || sess_add(&l->d->sessions, s, l->cause) != 0) {
		session_free(s);
		return -1;
	}
	l->n++;
	if (s->damaged[0] != '\0') {
		l->damaged++;
		log_warn("session '%s': %s", s->name, s->damaged);
	}
	return 0;
}

struct pjob *
persist_job(struct daemon *d, struct session *s, pjob_fn *run, pjob_fn *done)
{
	struct pjob *p = calloc(1, sizeof *p);

	if (p != NULL) {
		p->d = d;
		p->s = s;
		p->run = run;
		p->done = done;
	}
	return p;
}

static void
pjob_run(void *arg)
{
	struct pjob *p = arg;

	p->run(p);
}

/* On the loop: the op's done, then the session may go on. */
static void
pjob_done(void *arg)
{
	struct pjob *p = arg;
	struct daemon *d = p->d;
	struct session *s = p->s;

	if (s != NULL)
		s->storing--;
	p->done(p);
	if ((s = p->s) != NULL && s->storing == 0) {
		request_unpark(d, s);
		if (!s->dead)
			daemon_run_next(d, s);
	}
	free(p);
}

void
persist_submit(struct daemon *d, struct pjob *p)
{
	if (p->s != NULL)
		p->s->storing++;
	storeq_submit(d->storeq, pjob_run, pjob_done, p);
}

/* The store thread's part of a snapshot of an idle session. */
void
persist_save_run(struct pjob *p)
{
	struct session *s = p->s;

	p->rc = snap_save(p->d->store, p->d->model, s, s->chatted, NULL, 0,
	    p->replace, NULL, p->cause);
	if (p->rc == 0 && p->evict)
		session_unload(s);
}

void
persist_saved(struct pjob *p)
{
	struct session *s = p->s;

	if (p->rc != 0) {
		s->dirty = 1;
		if (p->evict)
			s->resident = 1;	/* it stays until saved */
		log_warn("session '%s' was not saved: %s", s->name, p->cause);
	} else
		session_saved(s, 0);
}

static void
save_done(struct pjob *p)
{
	struct client *c;
	struct proto_out o;

	persist_saved(p);
	if (p->client == 0 || (c = client_find(p->d, p->client)) == NULL)
		return;
	proto_out_init(&o);
	proto_encode_head(&o, p->id, PROTO_K_OK, 1);
	if (p->detail) {
		proto_pack_key(&o, "session");
		pack_detail(&o, &p->d->tmpl, p->s);
	} else
		proto_put_bool(&o, "saved", p->rc == 0);
	send_out(c, &o, p->id);
	proto_out_free(&o);
}

int
persist_save_bg(struct daemon *d, struct session *s, int replace,
    uint64_t client, uint64_t id, int detail)
{
	struct pjob *p;

	if (s->seq == NULL)
		return -1;
	if ((p = persist_job(d, s, persist_save_run, save_done)) == NULL) {
		s->dirty = 1;
		if (replace > s->replace)
			s->replace = replace;
		log_warn("session '%s' was not saved: out of memory", s->name);
		return -1;
	}
	p->replace = replace;
	p->client = client;
	p->id = id;
	p->detail = detail;
	persist_submit(d, p);
	return 0;
}

static int
evict_bg(struct daemon *d, struct session *s)
{
	struct pjob *p = persist_job(d, s, persist_save_run, save_done);

	if (p == NULL)
		return -1;
	p->evict = 1;
	persist_submit(d, p);
	return 0;
}

int
persist_name_taken(const struct daemon *d, const char *name, size_t len)
{
	size_t i;

	if (sess_find(&d->sessions, name, len) != NULL)
		return 1;
	for (i = 0; i < d->n_reserved; i++)
		if (strlen(d->reserved[i]) == len &&
		    memcmp(d->reserved[i], name, len) == 0)
			return 1;
	return 0;
}

int
persist_reserve(struct daemon *d, const char *name)
{
	char **v, *n;

	if ((n = strdup(name)) == NULL || (v = realloc(d->reserved,
	    (d->n_reserved + 1) * sizeof *v)) == NULL) {
		free(n);
		return -1;
	}
	d->reserved = v;
	d->reserved[d->n_reserved++] = n;
	return 0;
}

void
persist_release(struct daemon *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->n_reserved; i++) {
		if (strcmp(d->reserved[i], name) == 0) {
			free(d->reserved[i]);
			d->reserved[i] = d->reserved[--d->n_reserved];
			break;
		}
	}
	if (d->n_reserved == 0) {
		free(d->reserved);
		d->reserved = NULL;
	}
}

static void
delete_run(struct pjob *p)
{
	p->rc = store_delete(p->d->store, p->s->name, p->cause);
}

static void
delete_done(struct pjob *p)
{
	struct session *s = p->s;
	struct client *c = client_find(p->d, s->del_client);
	struct proto_out o;

	proto_out_init(&o);
	if (p->rc != 0) {
		log_error("session '%s' not deleted: %s", s->name, p->cause);
		s->dead = 0;	/* it stays, as the file has it */
		proto_encode_error(&o, s->del_id, PROTO_E_STORE, "session '%s' "
		    "could not be deleted from the database: %s", s->name,
		    p->cause);
	} else
		proto_encode_head(&o, s->del_id, PROTO_K_OK, 0);
	if (c != NULL)
		send_out(c, &o, s->del_id);
	proto_out_free(&o);
	if (p->rc != 0)
		return;
	log_info("session '%s' deleted", s->name);
	sess_remove(&p->d->sessions, s);
	/* Requests parked on it now find no such session. */
	request_unpark(p->d, s);
	session_free(s);
	p->s = NULL;
}

void
persist_delete(struct daemon *d, struct session *s)
{
	struct pjob *p;

	s->dead = 1;
	while ((p = persist_job(d, s, delete_run, delete_done)) == NULL)
		usleep(1000);	/* nothing else can answer it */
	persist_submit(d, p);
}

int
persist_open(struct daemon *d, char *cause)
{
	struct lister l = { .d = d, .cause = cause };
	char why[ERR_LEN];

	if ((d->store = store_open(d->conf->db, cause)) == NULL)
		return -1;
	if (d->conf->db_max_size > 0)
		store_limit(d->store, (uint64_t)d->conf->db_max_size);
	if (store_list(d->store, list_one, &l, why) != 0)
		return err_set(cause, "%s: cannot list the sessions: %s (sinkd "
		    "--check-db says more)", d->conf->db, why);
	log_info("database %s: %zu sessions%s", d->conf->db, l.n,
	    l.damaged > 0 ? ", some damaged (see above)" : "");
	return 0;
}

int
persist_save(struct daemon *d, struct session *s, int replace, char *cause)
{
	char why[ERR_LEN];

	if (s->seq == NULL)
		return 0;
	if (snap_save(d->store, d->model, s, s->chatted, NULL, 0, replace,
	    NULL, why) != 0) {
		s->dirty = 1;
		log_warn("session '%s' was not saved: %s", s->name, why);
		return err_set(cause, "session '%s' was not saved: %s", s->name,
		    why);
	}
	session_saved(s, 0);
	return 0;
}

size_t
persist_flush(struct daemon *d, char *names, size_t size)
{
	size_t i, n = 0, len = 0;
	struct session *s;
	int w;

	names[0] = '\0';
	for (i = 0; i < d->sessions.n; i++) {
		s = d->sessions.v[i];
		if (!s->dirty || s->running != NULL || s->dead ||
		    persist_save(d, s, 0, NULL) == 0)
			continue;
		n++;
		w = snprintf(names + len, size - len, "%s'%s'", len > 0 ?
		    ", " : "", s->name);
		if (w > 0 && (size_t)w < size - len)
			len += (size_t)w;
	}
	return n;
}

void
persist_touch(struct daemon *d, struct session *s)
{
	s->tick = ++d->tick;
}

uint64_t
persist_resident(const struct daemon *d, size_t *n)
{
	uint64_t b = 0;
	size_t i;

	*n = 0;
	for (i = 0; i < d->sessions.n; i++) {
		if (d->sessions.v[i]->resident) {
			b += d->sessions.v[i]->info.bytes;
			(*n)++;
		}
	}
	return b;
}

/* The least recently used session that may leave memory, or NULL. */
static struct session *
victim(struct daemon *d, const struct session *keep)
{
	struct session *best = NULL, *s;
	size_t i;

	for (i = 0; i < d->sessions.n; i++) {
		s = d->sessions.v[i];
		if (s == keep || !s->resident || s->running != NULL ||
		    s->queue != NULL || s->dead || s->storing > 0 ||
		    s->parked != NULL)
			continue;
		if (best == NULL || s->tick < best->tick)
			best = s;
	}
	return best;
}

void
persist_budget(struct daemon *d, const struct session *keep,
    uint64_t need_bytes, size_t need_n)
{
	struct session *s;
	uint64_t bytes;
	size_t n, tried = 0;

	for (;;) {
		bytes = persist_resident(d, &n);
		if (n + need_n <= (size_t)d->conf->max_sessions &&
		    (d->conf->max_memory == 0 || bytes + need_bytes <=
		    (uint64_t)d->conf->max_memory))
			return;
		if ((s = victim(d, keep)) == NULL || tried++ > d->sessions.n)
			return; /* all in use: over budget until they end */
		log_debug("session '%s' leaves memory (least recently used)",
		    s->name);
		/*
		 * A session whose last snapshot failed is saved first, on
		 * the store thread, which unloads it if that works.  It
		 * counts as gone meanwhile; if the save fails it is back.
		 */
		if (s->dirty && evict_bg(d, s) == 0) {
			s->resident = 0;
			continue;
		}
		if (s->dirty) {
			s->tick = ++d->tick;
			continue;
		}
		session_unload(s);
		s->resident = 0;
	}
}
