/*
 * store_sess: sessions in the store: snapshots (row, dirty KV chunks,
 * new turns) in one transaction, loading them back, listing, deleting,
 * forking inside the database, and reading the transcript.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seq.h"
#include "store_int.h"

static int
db_err(struct store *s, char *cause)
{
	return err_set(cause, "%s", sqlite3_errmsg(s->db));
}

static int
prepare(struct store *s, const char *sql, sqlite3_stmt **st, char *cause)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return db_err(s, cause);
	}
	return 0;
}

/* Steps a statement that returns no rows, then finalizes it. */
static int
run(struct store *s, sqlite3_stmt *st, char *cause)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		db_err(s, cause);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* A statement on one session's rows: "... WHERE session = ?". */
static int
by_session(struct store *s, const char *sql, const char *name, char *cause)
{
	sqlite3_stmt *st;

	if (prepare(s, sql, &st, cause) != 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return run(s, st, cause);
}

static int
save_row(struct store *s, const struct store_row *r, char *cause)
{
	sqlite3_stmt *st;

	if (prepare(s, "INSERT OR REPLACE INTO sessions(name, owner, created, "
	    "used, fingerprint, options, state, template) VALUES(?, ?, ?, ?, "
	    "?, ?, ?, ?)", &st, cause) != 0)
		return -1;
	sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, r->owner);
	sqlite3_bind_int64(st, 3, r->created);
	sqlite3_bind_int64(st, 4, r->used);
	sqlite3_bind_text(st, 5, r->fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(st, 6, r->options, r->options_len, SQLITE_STATIC);
	sqlite3_bind_blob64(st, 7, r->state, r->state_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, r->tmpl[0] != '\0' ? r->tmpl : "plain", -1,
	    SQLITE_STATIC);
	return run(s, st, cause);
}

static int
save_chunks(struct store *s, const struct store_snap *sn, uint64_t *bytes,
    char *cause)
{
	const struct seq *q = sn->seq;
	size_t len = seq_chunk_bytes(q);
	void *buf = malloc(len);
	sqlite3_stmt *st = NULL;
	int32_t c;
	int l, rc = 0;

	if (buf == NULL)
		return err_set(cause, "out of memory");
	if (prepare(s, "INSERT OR REPLACE INTO kv_chunks VALUES(?, ?, ?, ?, ?)",
	    &st, cause) != 0)
		rc = -1;
	for (l = 0; rc == 0 && l < sn->n_layer; l++) {
		for (c = 0; rc == 0 && c < seq_n_chunks(q); c++) {
			if (!seq_chunk_dirty(q, l, c))
				continue;
			seq_chunk_get(q, l, c, buf);
			sqlite3_reset(st);
			sqlite3_bind_text(st, 1, sn->row->name, -1,
			    SQLITE_STATIC);
			sqlite3_bind_int(st, 2, l);
			sqlite3_bind_int(st, 3, c);
			sqlite3_bind_int64(st, 4, store_crc(buf, len));
			sqlite3_bind_blob64(st, 5, buf, len, SQLITE_STATIC);
			if (sqlite3_step(st) != SQLITE_DONE)
				rc = db_err(s, cause);
			*bytes += len;
		}
	}
	sqlite3_finalize(st);
	free(buf);
	return rc;
}

void
store_ids_put(uint8_t *b, const int32_t *t, size_t n)
{
	size_t i;
	uint32_t v;

	for (i = 0; i < n; i++) {
		v = (uint32_t)t[i];
		b[4 * i] = (uint8_t)v;
		b[4 * i + 1] = (uint8_t)(v >> 8);
		b[4 * i + 2] = (uint8_t)(v >> 16);
		b[4 * i + 3] = (uint8_t)(v >> 24);
	}
}

void
store_ids_get(int32_t *t, const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		t[i] = (int32_t)((uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] <<
		    8 | (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] <<
		    24);
}

static int
save_turns(struct store *s, const struct store_snap *sn, char *cause)
{
	sqlite3_stmt *st;
	uint8_t *b;
	size_t i;
	int rc = 0;

	if (sn->n_turns == 0)
		return 0;
	if (prepare(s, "INSERT OR REPLACE INTO turns VALUES(?, ?, ?, ?, ?)",
	    &st, cause) != 0)
		return -1;
	for (i = 0; rc == 0 && i < sn->n_turns; i++) {
		const struct store_turn *t = &sn->turns[i];
		if ((b = malloc(t->n_toks * 4 + 1)) == NULL) {
			rc = err_set(cause, "out of memory");
			break;
		}
		store_ids_put(b, t->toks, t->n_toks);
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, sn->row->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, sn->first_turn + (int64_t)i);
		sqlite3_bind_int(st, 3, t->role);
		sqlite3_bind_blob64(st, 4, t->len ? t->text : "", t->len,
		    SQLITE_STATIC);
		sqlite3_bind_blob64(st, 5, b, t->n_toks * 4, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_err(s, cause);
		free(b);
	}
	sqlite3_finalize(st);
	return rc;
}

/* The session's chunks, and with turns its transcript too. */
static int
drop_contents(struct store *s, const char *name, int turns, char *cause)
{
	if (by_session(s, "DELETE FROM kv_chunks WHERE session = ?", name,
	    cause) != 0)
		return -1;
	if (!turns)
		return 0;
	return by_session(s, "DELETE FROM turns WHERE session = ?", name,
	    cause);
}

/*
 * Tests kill sinkd in the middle of a snapshot: with the environment's
 * SINKD_TEST_SAVE_PAUSE_MS, each one waits that long before COMMIT.
 */
static int
test_pause(const struct store *s)
{
	if (s->pause_ms > 0)
		usleep(s->pause_ms * 1000u);
	return 0;
}

/* Takes the lock and opens a write transaction; unlocked on failure. */
static int
txn_begin(struct store *s, char *cause)
{
	pthread_mutex_lock(&s->lock);
	if (store_exec(s, "BEGIN IMMEDIATE", cause) != 0) {
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
	return 0;
}

/* Commits when ok (0 so far), else rolls back; unlocks.  0 or -1. */
static int
txn_end(struct store *s, int ok, char *cause)
{
	if (ok == 0 && store_exec(s, "COMMIT", cause) == 0) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	store_exec(s, "ROLLBACK", NULL);
	pthread_mutex_unlock(&s->lock);
	return -1;
}

/* Takes the lock and prepares a query; unlocked on failure. */
static int
read_begin(struct store *s, const char *sql, sqlite3_stmt **st, char *cause)
{
	pthread_mutex_lock(&s->lock);
	if (prepare(s, sql, st, cause) != 0) {
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
	return 0;
}

/*
 * Ends a query whose rows were read up to step result rc (stop: the
 * caller's callback stopped it, negative for an error); unlocks.
 */
static int
read_end(struct store *s, sqlite3_stmt *st, int rc, int stop, char *cause)
{
	if (!stop && rc != SQLITE_DONE)
		db_err(s, cause);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return stop < 0 || (!stop && rc != SQLITE_DONE) ? -1 : 0;
}

int
store_save(struct store *s, const struct store_snap *sn, uint64_t *bytes,
    char *cause)
{
	uint64_t b = 0;
	int rc;

	if (txn_begin(s, cause) != 0)
		return -1;
	rc = (sn->replace && drop_contents(s, sn->row->name, sn->replace == 2,
	    cause) != 0) || save_row(s, sn->row, cause) != 0 ||
	    (sn->seq != NULL && save_chunks(s, sn, &b, cause) != 0) ||
	    save_turns(s, sn, cause) != 0 || test_pause(s) != 0 ? -1 : 0;
	if (txn_end(s, rc, cause) != 0)
		return -1;
	if (bytes != NULL)
		*bytes = b;
	return 0;
}

int
store_delete(struct store *s, const char *name, char *cause)
{
	if (txn_begin(s, cause) != 0)
		return -1;
	return txn_end(s, drop_contents(s, name, 1, cause) != 0 ||
	    by_session(s, "DELETE FROM sessions WHERE name = ?", name,
	    cause) != 0 ? -1 : 0, cause);
}

/* "INSERT ... SELECT ?1, ... WHERE session = ?2": to's copy of from's. */
static int
copy_rows(struct store *s, const char *sql, const char *to, const char *from,
    char *cause)
{
	sqlite3_stmt *st;

	if (prepare(s, sql, &st, cause) != 0)
		return -1;
	sqlite3_bind_text(st, 1, to, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, from, -1, SQLITE_STATIC);
	return run(s, st, cause);
}

int
store_fork(struct store *s, const char *from, const struct store_row *to,
    char *cause)
{
	if (txn_begin(s, cause) != 0)
		return -1;
	return txn_end(s, save_row(s, to, cause) != 0 || copy_rows(s,
	    "INSERT INTO kv_chunks SELECT ?1, layer, chunk, crc, data FROM "
	    "kv_chunks WHERE session = ?2", to->name, from, cause) != 0 ||
	    copy_rows(s, "INSERT INTO turns SELECT ?1, seq, role, text, "
	    "tokens FROM turns WHERE session = ?2", to->name, from,
	    cause) != 0 ? -1 : 0, cause);
}

static void *
dup_blob(sqlite3_stmt *st, int col, size_t *len)
{
	const void *b = sqlite3_column_blob(st, col);
	void *p;

	*len = (size_t)sqlite3_column_bytes(st, col);
	if ((p = malloc(*len + 1)) != NULL && *len > 0)
		memcpy(p, b, *len);
	return p;
}

/*
 * Columns name, owner, created, used, fingerprint and (column tcol) the
 * template into r (no blobs).
 */
static void
read_row(sqlite3_stmt *st, struct store_row *r, int tcol)
{
	const unsigned char *t;

	memset(r, 0, sizeof *r);
	t = sqlite3_column_text(st, 0);
	snprintf(r->name, sizeof r->name, "%s", t != NULL ? (const char *)t :
	    "");
	r->owner = (uint32_t)sqlite3_column_int64(st, 1);
	r->created = sqlite3_column_int64(st, 2);
	r->used = sqlite3_column_int64(st, 3);
	t = sqlite3_column_text(st, 4);
	snprintf(r->fingerprint, sizeof r->fingerprint, "%s", t != NULL ?
	    (const char *)t : "");
	t = sqlite3_column_text(st, tcol);
	snprintf(r->tmpl, sizeof r->tmpl, "%s", t != NULL ? (const char *)t :
	    "plain");
}

int
store_load_row(struct store *s, const char *name, struct store_row *r,
    void **options, void **state, char *cause)
{
	sqlite3_stmt *st;
	int rc;

	*options = *state = NULL;
	if (read_begin(s, "SELECT name, owner, created, used, fingerprint, "
	    "options, state, template FROM sessions WHERE name = ?", &st,
	    cause) != 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		read_row(st, r, 7);
		*options = dup_blob(st, 5, &r->options_len);
		*state = dup_blob(st, 6, &r->state_len);
		r->options = *options;
		r->state = *state;
	} else if (rc != SQLITE_DONE)
		db_err(s, cause);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	if (rc == SQLITE_DONE)
		return 1;
	if (rc != SQLITE_ROW)
		return -1;
	if (*options == NULL || *state == NULL) {
		free(*options);
		free(*state);
		*options = *state = NULL;
		return err_set(cause, "out of memory");
	}
	return 0;
}

/* One stored chunk into q, after its size, place and CRC are checked. */
static int
load_chunk(sqlite3_stmt *st, struct seq *q, int n_layer, char *cause)
{
	int l = sqlite3_column_int(st, 0);
	int32_t c = sqlite3_column_int(st, 1);
	uint32_t crc = (uint32_t)sqlite3_column_int64(st, 2);
	const void *data = sqlite3_column_blob(st, 3);
	size_t len = (size_t)sqlite3_column_bytes(st, 3);

	if (store_chunk_check(l, c, crc, data, len, n_layer, seq_n_chunks(q),
	    seq_chunk_bytes(q), cause) != 0)
		return -1;
	seq_chunk_set(q, l, c, data);
	return 0;
}

int
store_load_chunks(struct store *s, const char *name, struct seq *q,
    int n_layer, char *cause)
{
	sqlite3_stmt *st;
	int rc = SQLITE_DONE, bad = 0;

	if (read_begin(s, "SELECT layer, chunk, crc, data FROM kv_chunks WHERE "
	    "session = ?", &st, cause) != 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	while (!bad && (rc = sqlite3_step(st)) == SQLITE_ROW)
		bad = load_chunk(st, q, n_layer, cause) != 0;
	if (!bad && rc != SQLITE_DONE)
		db_err(s, cause);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return bad || rc != SQLITE_DONE ? -1 : 0;
}

int
store_list(struct store *s, store_row_fn *fn, void *arg, char *cause)
{
	sqlite3_stmt *st;
	struct store_row r;
	int rc, stop = 0;

	if (read_begin(s, "SELECT name, owner, created, used, fingerprint, "
	    "options, state, (SELECT count(*) FROM turns WHERE session = "
	    "name), template FROM sessions ORDER BY name", &st,
	    cause) != 0)
		return -1;
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		read_row(st, &r, 8);
		r.options = sqlite3_column_blob(st, 5);
		r.options_len = (size_t)sqlite3_column_bytes(st, 5);
		r.state = sqlite3_column_blob(st, 6);
		r.state_len = (size_t)sqlite3_column_bytes(st, 6);
		stop = fn(arg, &r, sqlite3_column_int64(st, 7));
	}
	return read_end(s, st, rc, stop, cause);
}

static int32_t *
unpack_tokens(const uint8_t *b, size_t bytes, size_t *n)
{
	int32_t *t = malloc(bytes + sizeof *t);

	*n = bytes / 4;
	if (t != NULL)
		store_ids_get(t, b, *n);
	return t;
}

int
store_turns(struct store *s, const char *name, int64_t from, int64_t max,
    store_turn_fn *fn, void *arg, char *cause)
{
	sqlite3_stmt *st;
	struct store_turn t;
	int32_t *toks;
	int rc, stop = 0;

	if (read_begin(s, "SELECT seq, role, text, tokens FROM turns WHERE "
	    "session = ? AND seq >= ? ORDER BY seq LIMIT ?", &st,
	    cause) != 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, from);
	sqlite3_bind_int64(st, 3, max);
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		t.role = sqlite3_column_int(st, 1);
		t.text = sqlite3_column_blob(st, 2);
		t.len = (size_t)sqlite3_column_bytes(st, 2);
		if (t.text == NULL)
			t.text = "";
		toks = unpack_tokens(sqlite3_column_blob(st, 3),
		    (size_t)sqlite3_column_bytes(st, 3), &t.n_toks);
		if (toks == NULL) {
			stop = err_set(cause, "out of memory");
			break;
		}
		t.toks = toks;
		stop = fn(arg, sqlite3_column_int64(st, 0), &t);
		free(toks);
	}
	return read_end(s, st, rc, stop, cause);
}

int
store_chunks(struct store *s, const char *name, store_chunk_fn *fn, void *arg,
    char *cause)
{
	return store_chunks_after(s, name, -1, -1, INT64_MAX, fn, arg, cause);
}

int
store_chunks_after(struct store *s, const char *name, int layer,
    int32_t chunk, int64_t max, store_chunk_fn *fn, void *arg, char *cause)
{
	sqlite3_stmt *st;
	int rc, stop = 0;

	if (read_begin(s, "SELECT layer, chunk, crc, data FROM kv_chunks WHERE "
	    "session = ? AND (layer, chunk) > (?, ?) ORDER BY layer, chunk "
	    "LIMIT ?", &st, cause) != 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, layer);
	sqlite3_bind_int(st, 3, chunk);
	sqlite3_bind_int64(st, 4, max);
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW)
		stop = fn(arg, sqlite3_column_int(st, 0),
		    sqlite3_column_int(st, 1),
		    (uint32_t)sqlite3_column_int64(st, 2),
		    sqlite3_column_blob(st, 3),
		    (size_t)sqlite3_column_bytes(st, 3));
	return read_end(s, st, rc, stop, cause);
}
