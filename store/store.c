/*
 * store: see store.h.
 *
 * Schema, version 1 (PRAGMA user_version = 1):
 *   meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)
 *       'created' (Unix seconds), 'writer' (the sinkd that created it)
 *   sessions(name TEXT PRIMARY KEY, owner INTEGER NOT NULL,
 *       created INTEGER NOT NULL, used INTEGER NOT NULL,
 *       fingerprint TEXT NOT NULL,     -- the model's (model.h)
 *       options BLOB NOT NULL,         -- cache policy, sampling defaults
 *       state BLOB NOT NULL)           -- counters, token ring, rng
 *   kv_chunks(session TEXT NOT NULL, layer INTEGER NOT NULL,
 *       chunk INTEGER NOT NULL, crc INTEGER NOT NULL, data BLOB NOT NULL,
 *       PRIMARY KEY (session, layer, chunk))
 *                                      -- KV_CHUNK slots of one layer
 *   turns(session TEXT NOT NULL, seq INTEGER NOT NULL,
 *       role INTEGER NOT NULL, text BLOB NOT NULL,
 *       PRIMARY KEY (session, seq))
 * Migrations run forward, one version at a time, each in a transaction;
 * a file with a higher user_version than STORE_SCHEMA is not touched.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "seq.h"

struct store {
	sqlite3 *db;
	int found;	/* user_version when opened */
};

static const char *const schema_v1[] = {
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
	"CREATE TABLE sessions(name TEXT PRIMARY KEY, owner INTEGER NOT NULL,"
	" created INTEGER NOT NULL, used INTEGER NOT NULL,"
	" fingerprint TEXT NOT NULL, options BLOB NOT NULL,"
	" state BLOB NOT NULL)",
	"CREATE TABLE kv_chunks(session TEXT NOT NULL, layer INTEGER NOT NULL,"
	" chunk INTEGER NOT NULL, crc INTEGER NOT NULL, data BLOB NOT NULL,"
	" PRIMARY KEY (session, layer, chunk))",
	"CREATE TABLE turns(session TEXT NOT NULL, seq INTEGER NOT NULL,"
	" role INTEGER NOT NULL, text BLOB NOT NULL,"
	" PRIMARY KEY (session, seq))",
	"INSERT INTO meta VALUES('created', strftime('%s','now'))",
	"PRAGMA user_version = 1",
	NULL,
};

/* Every migration: migrations[v] takes a database from v to v + 1. */
static const char *const *const migrations[STORE_SCHEMA] = { schema_v1 };

static int
exec(struct store *s, const char *sql, char *cause)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		err_set(cause, "%s", msg != NULL ? msg :
		    sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int
user_version(struct store *s, int *v, char *cause)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st,
	    NULL) != SQLITE_OK)
		return err_set(cause, "%s", sqlite3_errmsg(s->db));
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return err_set(cause, "%s", sqlite3_errmsg(s->db));
	return 0;
}

/* One version forward, in one transaction. */
static int
migrate(struct store *s, int from, char *cause)
{
	const char *const *sql;

	if (exec(s, "BEGIN IMMEDIATE", cause) != 0)
		return -1;
	for (sql = migrations[from]; *sql != NULL; sql++) {
		if (exec(s, *sql, cause) != 0) {
			exec(s, "ROLLBACK", NULL);
			return -1;
		}
	}
	return exec(s, "COMMIT", cause);
}

/* The file exists with mode 0600 before SQLite opens it. */
static int
create_private(const char *path, char *cause)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return err_set(cause, "%s: %s", path, strerror(errno));
	close(fd);
	return 0;
}

static int
bring_up(struct store *s, const char *path, char *cause)
{
	char why[ERR_LEN];
	int v = 0;

	/* The version first: a newer file must not even change journal. */
	if (user_version(s, &v, why) != 0)
		return err_set(cause, "%s: %s", path, why);
	s->found = v;
	if (v > STORE_SCHEMA)
		return err_set(cause, "%s was written by a newer sinkd (schema "
		    "%d; this one knows %d): not touching it", path, v,
		    STORE_SCHEMA);
	if (exec(s, "PRAGMA journal_mode=WAL", why) != 0 ||
	    exec(s, "PRAGMA synchronous=FULL", why) != 0)
		return err_set(cause, "%s: %s", path, why);
	for (; v < STORE_SCHEMA; v++) {
		if (migrate(s, v, why) != 0)
			return err_set(cause, "%s: migrating to schema %d: %s",
			    path, v + 1, why);
	}
	return 0;
}

struct store *
store_open(const char *path, char *cause)
{
	struct store *s = calloc(1, sizeof *s);

	if (s == NULL) {
		err_set(cause, "out of memory");
		return NULL;
	}
	if (create_private(path, cause) != 0)
		goto fail;
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		err_set(cause, "%s: %s", path, s->db != NULL ?
		    sqlite3_errmsg(s->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 2000);
	if (bring_up(s, path, cause) != 0)
		goto fail;
	return s;
fail:
	store_close(s);
	return NULL;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	sqlite3_close(s->db);
	free(s);
}

int
store_found_version(const struct store *s)
{
	return s->found;
}

int
store_check(struct store *s, char *cause)
{
	sqlite3_stmt *st;
	const unsigned char *t;
	int rc, ok = 1;

	if (sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st,
	    NULL) != SQLITE_OK)
		return err_set(cause, "%s", sqlite3_errmsg(s->db));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		t = sqlite3_column_text(st, 0);
		if (t == NULL || strcmp((const char *)t, "ok") != 0) {
			if (ok)
				err_set(cause, "%s", t != NULL ?
				    (const char *)t : "integrity check failed");
			ok = 0;
		}
	}
	if (rc != SQLITE_DONE && ok)
		err_set(cause, "%s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return ok && rc == SQLITE_DONE ? 0 : -1;
}

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void
crc_init(void)
{
	uint32_t k;
	int i, j;

	for (i = 0; i < 256; i++) {
		for (k = (uint32_t)i, j = 0; j < 8; j++)
			k = k & 1 ? 0xedb88320u ^ (k >> 1) : k >> 1;
		crc_table[i] = k;
	}
}

uint32_t
store_crc32(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t c = 0xffffffffu;

	pthread_once(&crc_once, crc_init);
	while (len-- > 0)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static int
save_row(struct store *s, const struct store_row *r, char *cause)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO sessions "
	    "VALUES(?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		return err_set(cause, "%s", sqlite3_errmsg(s->db));
	sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, r->owner);
	sqlite3_bind_int64(st, 3, r->created);
	sqlite3_bind_int64(st, 4, r->used);
	sqlite3_bind_text(st, 5, r->fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, r->options, (int)r->options_len,
	    SQLITE_STATIC);
	sqlite3_bind_blob(st, 7, r->state, (int)r->state_len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return err_set(cause, "%s", sqlite3_errmsg(s->db));
	return 0;
}

static int
save_chunks(struct store *s, const char *name, const struct seq *q,
    int n_layer, int full, char *cause)
{
	size_t bytes = seq_chunk_bytes(q);
	void *buf = malloc(bytes);
	sqlite3_stmt *st = NULL;
	int32_t c;
	int l, rc = 0;

	if (buf == NULL)
		return err_set(cause, "out of memory");
	if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO kv_chunks "
	    "VALUES(?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		rc = err_set(cause, "%s", sqlite3_errmsg(s->db));
	for (l = 0; rc == 0 && l < n_layer; l++) {
		for (c = 0; rc == 0 && c < seq_n_chunks(q); c++) {
			if (!full && !seq_chunk_dirty(q, l, c))
				continue;
			seq_chunk_get(q, l, c, buf);
			sqlite3_reset(st);
			sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
			sqlite3_bind_int(st, 2, l);
			sqlite3_bind_int(st, 3, c);
			sqlite3_bind_int64(st, 4, store_crc32(buf, bytes));
			sqlite3_bind_blob(st, 5, buf, (int)bytes,
			    SQLITE_STATIC);
			if (sqlite3_step(st) != SQLITE_DONE)
				rc = err_set(cause, "%s", sqlite3_errmsg(s->db));
		}
	}
	sqlite3_finalize(st);
	free(buf);
	return rc;
}

int
store_save(struct store *s, const struct store_row *r, const struct seq *q,
    int n_layer, int full, char *cause)
{
	if (exec(s, "BEGIN IMMEDIATE", cause) != 0)
		return -1;
	if (save_row(s, r, cause) != 0 ||
	    save_chunks(s, r->name, q, n_layer, full, cause) != 0 ||
	    exec(s, "COMMIT", cause) != 0) {
		exec(s, "ROLLBACK", NULL);
		return -1;
	}
	return 0;
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

int
store_load_row(struct store *s, const char *name, struct store_row *r,
    void **options, void **state, char *cause)
{
	sqlite3_stmt *st;
	const unsigned char *fp;
	int rc;

	*options = *state = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT owner, created, used, "
	    "fingerprint, options, state FROM sessions WHERE name = ?", -1,
	    &st, NULL) != SQLITE_OK)
		return err_set(cause, "%s", sqlite3_errmsg(s->db));
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(r, 0, sizeof *r);
		snprintf(r->name, sizeof r->name, "%s", name);
		r->owner = (uint32_t)sqlite3_column_int64(st, 0);
		r->created = sqlite3_column_int64(st, 1);
		r->used = sqlite3_column_int64(st, 2);
		fp = sqlite3_column_text(st, 3);
		snprintf(r->fingerprint, sizeof r->fingerprint, "%s",
		    fp != NULL ? (const char *)fp : "");
		*options = dup_blob(st, 4, &r->options_len);
		*state = dup_blob(st, 5, &r->state_len);
		r->options = *options;
		r->state = *state;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 1;
	if (rc != SQLITE_ROW)
		return err_set(cause, "%s", sqlite3_errmsg(s->db));
	if (*options == NULL || *state == NULL)
		return err_set(cause, "out of memory");
	return 0;
}

/* One stored chunk into q, after its size, place and CRC are checked. */
static int
load_chunk(sqlite3_stmt *st, struct seq *q, int n_layer, const char *name,
    char *cause)
{
	int l = sqlite3_column_int(st, 0);
	int32_t c = sqlite3_column_int(st, 1);
	uint32_t crc = (uint32_t)sqlite3_column_int64(st, 2);
	const void *data = sqlite3_column_blob(st, 3);
	size_t len = (size_t)sqlite3_column_bytes(st, 3);

	if (l < 0 || l >= n_layer || c < 0 || c >= seq_n_chunks(q) ||
	    len != seq_chunk_bytes(q))
		return err_set(cause, "session '%s': chunk %d of layer %d does "
		    "not fit this cache", name, c, l);
	if (store_crc32(data, len) != crc)
		return err_set(cause, "session '%s': chunk %d of layer %d is "
		    "damaged (CRC mismatch)", name, c, l);
	seq_chunk_set(q, l, c, data);
	return 0;
}

int
store_load_chunks(struct store *s, const char *name, struct seq *q,
    int n_layer, char *cause)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "SELECT layer, chunk, crc, data FROM "
	    "kv_chunks WHERE session = ?", -1, &st, NULL) != SQLITE_OK)
		return err_set(cause, "%s", sqlite3_errmsg(s->db));
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (load_chunk(st, q, n_layer, name, cause) != 0) {
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return err_set(cause, "%s", sqlite3_errmsg(s->db));
	return 0;
}
