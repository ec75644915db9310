/*
 * persist: see persist.h.
 */
#include "persist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "snap.h"
#include "store.h"

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
		    s->queue != NULL || s->dead)
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
		/* A session whose snapshot failed stays until one succeeds. */
		if (s->dirty && persist_save(d, s, 0, NULL) != 0) {
			s->tick = ++d->tick;
			continue;
		}
		log_debug("session '%s' leaves memory (least recently used)",
		    s->name);
		session_unload(s);
		s->resident = 0;
	}
}

int
persist_delete(struct daemon *d, struct session *s, char *cause)
{
	return store_delete(d->store, s->name, cause);
}
