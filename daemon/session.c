/*
 * session: see session.h.
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

const char *
role_name(enum turn_role r)
{
	return r == ROLE_USER ? "user" : r == ROLE_ASSISTANT ? "assistant" :
	    "context";
}

struct session *
session_stored(const char *name, uid_t owner, const struct seq_opts *so,
    const struct sampler_params *sp, int32_t max_tokens, const char *system,
    char *cause)
{
	struct session *s = calloc(1, sizeof *s);

	if (s == NULL) {
		err_set(cause, "out of memory");
		return NULL;
	}
	snprintf(s->name, sizeof s->name, "%s", name);
	s->owner = owner;
	s->so = *so;
	s->sp = *sp;
	s->max_tokens = max_tokens;
	s->created = s->used = time(NULL);
	if (system != NULL && (s->system = strdup(system)) == NULL) {
		err_set(cause, "out of memory");
		session_free(s);
		return NULL;
	}
	return s;
}

/* A fresh cache and sampler. */
static int
load_fresh(struct session *s, const struct model *m, char *cause)
{
	session_unload(s);
	if ((s->seq = seq_new(m, &s->so, cause)) == NULL ||
	    (s->smp = sampler_new(&s->sp, m->hp.n_vocab, cause)) == NULL) {
		session_unload(s);
		return -1;
	}
	seq_get_info(s->seq, &s->info);
	s->resident = 1;
	return 0;
}

struct session *
session_new(const struct model *m, const char *name, uid_t owner,
    const struct seq_opts *so, const struct sampler_params *sp,
    int32_t max_tokens, const char *system, char *cause)
{
	struct session *s = session_stored(name, owner, so, sp, max_tokens,
	    system, cause);

	if (s != NULL && load_fresh(s, m, cause) != 0) {
		session_free(s);
		return NULL;
	}
	return s;
}

void
session_unload(struct session *s)
{
	sampler_free(s->smp);
	seq_free(s->seq);
	s->smp = NULL;
	s->seq = NULL;
}

void
session_drop_turns(struct session *s)
{
	size_t i;

	for (i = 0; i < s->n_turns; i++) {
		free(s->turns[i].text);
		free(s->turns[i].toks);
	}
	free(s->turns);
	s->turns = NULL;
	s->n_turns = s->cap_turns = 0;
}

void
session_free(struct session *s)
{
	struct parked *p, *n;

	if (s == NULL)
		return;
	for (p = s->parked; p != NULL; p = n) {
		n = p->next;
		free(p->body);
		free(p);
	}
	session_drop_turns(s);
	session_unload(s);
	free(s->system);
	free(s);
}

void
session_saved(struct session *s, size_t n_more)
{
	s->n_stored += (int64_t)(s->n_turns + n_more);
	session_drop_turns(s);
	s->dirty = 0;
}

int
session_add_turn(struct session *s, enum turn_role role, const char *text,
    size_t len, const int32_t *toks, size_t n_toks, char *cause)
{
	struct turn *t;
	size_t cap;

	if (s->n_turns == s->cap_turns) {
		cap = s->cap_turns ? s->cap_turns * 2 : 8;
		if ((t = realloc(s->turns, cap * sizeof *t)) == NULL)
			return err_set(cause, "out of memory");
		s->turns = t;
		s->cap_turns = cap;
	}
	t = &s->turns[s->n_turns];
	t->toks = malloc(n_toks * sizeof *toks + 1);
	if ((t->text = malloc(len + 1)) == NULL || t->toks == NULL) {
		free(t->text);
		free(t->toks);
		return err_set(cause, "out of memory");
	}
	memcpy(t->text, text, len);
	t->text[len] = '\0';
	t->len = len;
	if (n_toks > 0)
		memcpy(t->toks, toks, n_toks * sizeof *toks);
	t->n_toks = n_toks;
	t->role = role;
	s->n_turns++;
	return 0;
}

int
session_reset(struct session *s, const struct model *m, char *cause)
{
	if (load_fresh(s, m, cause) != 0)
		return -1;
	session_drop_turns(s);
	s->n_stored = 0;
	s->chatted = 0;
	s->foreign = 0;
	s->text_below = 0;
	s->damaged[0] = '\0';
	return 0;
}

struct session *
sess_find(const struct sess_table *t, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		if (strlen(t->v[i]->name) == len &&
		    memcmp(t->v[i]->name, name, len) == 0)
			return t->v[i];
	}
	return NULL;
}

int
sess_add(struct sess_table *t, struct session *s, char *cause)
{
	struct session **v;
	size_t cap;

	if (t->n == t->cap) {
		cap = t->cap ? t->cap * 2 : 16;
		if ((v = realloc(t->v, cap * sizeof *v)) == NULL)
			return err_set(cause, "out of memory");
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = s;
	return 0;
}

void
sess_remove(struct sess_table *t, struct session *s)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		if (t->v[i] == s) {
			t->v[i] = t->v[--t->n];
			return;
		}
	}
}

void
sess_table_free(struct sess_table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		session_free(t->v[i]);
	free(t->v);
	memset(t, 0, sizeof *t);
}
