/*
 * checkdb: sinkd --check-db (persist.h): the database read end to end
 * without changing it: SQLite's integrity check, every session's row and
 * blobs, every KV chunk's size and CRC, the transcript's numbering.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "persist.h"
#include "snap.h"
#include "store.h"

struct check {
	FILE *out;
	const struct model *m;
	struct store *st;
	size_t sessions, bad;
	/* the session being checked */
	size_t chunks, chunk_len, turns;
	int32_t n_chunks;	/* of its cache: chunks past it are wrong */
	int64_t next_turn;
	char problem[ERR_LEN];
};

static int
check_chunk(void *arg, int layer, int32_t chunk, uint32_t crc,
    const void *data, size_t len)
{
	struct check *c = arg;

	/* Without the model, chunk sizes agree with the first one's. */
	if (c->chunks++ == 0)
		c->chunk_len = len;
	if (c->problem[0] == '\0')
		store_chunk_check(layer, chunk, crc, data, len, c->m != NULL ?
		    c->m->hp.n_layer : INT_MAX, c->n_chunks, c->chunk_len,
		    c->problem);
	return 0;
}

static int
check_turn(void *arg, int64_t n, const struct store_turn *t)
{
	struct check *c = arg;

	(void)t;
	if (n != c->next_turn && c->problem[0] == '\0')
		snprintf(c->problem, sizeof c->problem, "turn %lld is missing",
		    (long long)c->next_turn);
	c->next_turn = n + 1;
	c->turns++;
	return 0;
}

static int
check_session(void *arg, const struct store_row *r, int64_t n_turns)
{
	struct check *c = arg;
	struct session *s = snap_from_row(c->m, r, n_turns, NULL);
	char why[ERR_LEN];

	c->sessions++;
	c->chunks = c->chunk_len = c->turns = 0;
	c->n_chunks = s != NULL ? (s->so.n_cache + KV_CHUNK - 1) / KV_CHUNK :
	    0;
	c->next_turn = 0;
	c->problem[0] = '\0';
	if (s == NULL)
		snprintf(c->problem, sizeof c->problem, "out of memory");
	else if (s->damaged[0] != '\0')
		snprintf(c->problem, sizeof c->problem, "%s", s->damaged);
	if (store_chunks(c->st, r->name, check_chunk, c, why) != 0 ||
	    store_turns(c->st, r->name, 0, INT64_MAX, check_turn, c,
	    why) != 0) {
		if (c->problem[0] == '\0')
			snprintf(c->problem, sizeof c->problem, "%s", why);
	}
	if (c->problem[0] != '\0') {
		c->bad++;
		fprintf(c->out, "session '%s': %s\n", r->name, c->problem);
	} else
		fprintf(c->out, "session '%s': ok (%zu turns, %zu KV chunks, "
		    "%lld tokens seen)\n", r->name, c->turns, c->chunks,
		    s != NULL ? (long long)s->info.n_seen : 0LL);
	session_free(s);
	return 0;
}

int
persist_check_db(const struct conf *cf, const struct model *m, FILE *out)
{
	struct check c = { .out = out, .m = m };
	char cause[ERR_LEN] = "";
	int sound;

	if ((c.st = store_open_readonly(cf->db, cause)) == NULL) {
		fprintf(out, "%s: cannot be read: %s\n", cf->db, cause);
		return 1;
	}
	fprintf(out, "%s: schema %d\n", cf->db, store_found_version(c.st));
	if (store_found_version(c.st) > STORE_SCHEMA) {
		fprintf(out, "%s: written by a newer sinkd (this one knows "
		    "schema %d)\n", cf->db, STORE_SCHEMA);
		store_close(c.st);
		return 1;
	}
	if (!(sound = store_check(c.st, cause) == 0))
		fprintf(out, "%s: the file is damaged: %s\n", cf->db, cause);
	if (store_list(c.st, check_session, &c, cause) != 0) {
		fprintf(out, "%s: the sessions cannot be listed: %s\n", cf->db,
		    cause);
		sound = 0;
	}
	fprintf(out, "%zu session%s, %zu with problems%s\n", c.sessions,
	    c.sessions == 1 ? "" : "s", c.bad, sound ? "" :
	    "; the file itself is damaged");
	store_close(c.st);
	return sound && c.bad == 0 ? 0 : 1;
}
