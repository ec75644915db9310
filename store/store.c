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
 *       tokens BLOB NOT NULL,          -- int32 ids, little-endian
 *       PRIMARY KEY (session, seq))    -- seq: 0, 1, ... per session
 * Version 2 adds the chat format a session's turns are written in:
 *   sessions(..., template TEXT NOT NULL DEFAULT 'plain')
 *                                      -- a chat template family (chat.h);
 *                                      -- older sessions are 'plain'
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

#include "crc.h"
#include "err.h"
#include "store_int.h"


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
	" role INTEGER NOT NULL, text BLOB NOT NULL, tokens BLOB NOT NULL,"
	" PRIMARY KEY (session, seq))",
	"INSERT INTO meta VALUES('created', strftime('%s','now'))",
	"PRAGMA user_version = 1",
	NULL,
};

static const char *const schema_v2[] = {
	"ALTER TABLE sessions ADD COLUMN template TEXT NOT NULL"
	" DEFAULT 'plain'",
	"PRAGMA user_version = 2",
	NULL,
};

/* Every migration: migrations[v] takes a database from v to v + 1. */
static const char *const *const migrations[STORE_SCHEMA] = { schema_v1,
	schema_v2 };

int
store_exec(struct store *s, const char *sql, char *cause)
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

	if (store_exec(s, "BEGIN IMMEDIATE", cause) != 0)
		return -1;
	for (sql = migrations[from]; *sql != NULL; sql++) {
		if (store_exec(s, *sql, cause) != 0) {
			store_exec(s, "ROLLBACK", NULL);
			return -1;
		}
	}
	return store_exec(s, "COMMIT", cause);
}

/*
 * One sinkd writes a database at a time: two would each snapshot their
 * own idea of a session and the file would hold one's cache with the
 * other's transcript.  SQLite's own locks only serialize transactions, so
 * the writer holds an open-file-description lock on PATH.lock for as long
 * as the store is open; the kernel drops it when the process dies, so a
 * kill -9 leaves nothing stale.  The file holds the holder's pid, for the
 * refusal's message.  Readers (--check-db, backups) take no lock.
 */
static int
take_lock(struct store *s, const char *path, char *cause)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char lp[4096], buf[32];
	ssize_t n;
	long pid;

	if (snprintf(lp, sizeof lp, "%s.lock", path) >= (int)sizeof lp)
		return err_set(cause, "%s: the path is too long", path);
	if ((s->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return err_set(cause, "%s: %s", lp, strerror(errno));
	if (fcntl(s->lock_fd, F_OFD_SETLK, &fl) != 0) {
		if (errno != EAGAIN && errno != EACCES)
			return err_set(cause, "%s: %s", lp, strerror(errno));
		n = pread(s->lock_fd, buf, sizeof buf - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		pid = strtol(buf, NULL, 10);
		if (pid > 0)
			return err_set(cause, "%s is in use by another sinkd "
			    "(pid %ld): stop it first, or give this one "
			    "another --db", path, pid);
		return err_set(cause, "%s is in use by another sinkd: stop it "
		    "first, or give this one another --db", path);
	}
	n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (ftruncate(s->lock_fd, 0) != 0 || pwrite(s->lock_fd, buf,
	    (size_t)n, 0) != n)
		return err_set(cause, "%s: %s", lp, strerror(errno));
	return 0;
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
	/*
	 * The WAL keeps the size of the largest transaction (a full cache:
	 * tens of MB) unless told to give the space back after a checkpoint.
	 */
	if (store_exec(s, "PRAGMA journal_mode=WAL", why) != 0 ||
	    store_exec(s, "PRAGMA synchronous=FULL", why) != 0 ||
	    store_exec(s, "PRAGMA journal_size_limit=67108864", why) != 0)
		return err_set(cause, "%s: %s", path, why);
	for (; v < STORE_SCHEMA; v++) {
		if (migrate(s, v, why) != 0)
			return err_set(cause, "%s: migrating to schema %d: %s",
			    path, v + 1, why);
	}
	return 0;
}

static struct store *
open_db(const char *path, int readonly, char *cause)
{
	struct store *s = calloc(1, sizeof *s);
	int mem = strcmp(path, STORE_MEMORY) == 0;
	int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	pthread_mutexattr_t ma;

	if (s == NULL) {
		err_set(cause, "out of memory");
		return NULL;
	}
	s->lock_fd = -1;

	/* Recursive: a listing's callback may read more of the store. */
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&s->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	if (readonly && !mem && access(path, R_OK) != 0) {
		err_set(cause, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!readonly && !mem && (create_private(path, cause) != 0 ||
	    take_lock(s, path, cause) != 0))
		goto fail;
	if (sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX,
	    NULL) != SQLITE_OK) {
		err_set(cause, "%s: %s", path, s->db != NULL ?
		    sqlite3_errmsg(s->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 2000);
	if (getenv("SINKD_TEST_SAVE_PAUSE_MS") != NULL)
		s->pause_ms = (unsigned)atoi(getenv("SINKD_TEST_SAVE_PAUSE_MS"));
	if (readonly) {
		if (user_version(s, &s->found, cause) != 0)
			goto fail;
	} else if (bring_up(s, path, cause) != 0)
		goto fail;
	return s;
fail:
	store_close(s);
	return NULL;
}

struct store *
store_open(const char *path, char *cause)
{
	return open_db(path, 0, cause);
}

struct store *
store_open_readonly(const char *path, char *cause)
{
	return open_db(path, 1, cause);
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	sqlite3_close(s->db);
	/* After the connection: the lock outlives every write. */
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void
store_limit(struct store *s, uint64_t max_bytes)
{
	char sql[64];
	long long pages = max_bytes == 0 ? 1073741823LL :
	    (long long)(max_bytes / 4096);

	/* PRAGMA takes no parameters: the SQL holds only this integer. */
	snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld",
	    pages > 1 ? pages : 1);
	pthread_mutex_lock(&s->lock);
	store_exec(s, sql, NULL);
	pthread_mutex_unlock(&s->lock);
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

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st,
	    NULL) != SQLITE_OK) {
		err_set(cause, "%s", sqlite3_errmsg(s->db));
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
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
	pthread_mutex_unlock(&s->lock);
	return ok && rc == SQLITE_DONE ? 0 : -1;
}

uint32_t
store_crc(const void *data, size_t len)
{
	return crc_32c(0, data, len);
}

int
store_chunk_check(int layer, int32_t chunk, uint32_t crc, const void *data,
    size_t len, int n_layer, int32_t n_chunks, size_t want, char *cause)
{
	if (layer < 0 || layer >= n_layer || chunk < 0 || chunk >= n_chunks)
		return err_set(cause, "chunk %d of layer %d lies outside the "
		    "session's cache", chunk, layer);
	if (len != want)
		return err_set(cause, "chunk %d of layer %d is %zu bytes, not "
		    "%zu", chunk, layer, len, want);
	if (store_crc(data, len) != crc)
		return err_set(cause, "chunk %d of layer %d is damaged (CRC "
		    "mismatch)", chunk, layer);
	return 0;
}
