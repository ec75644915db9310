/*
 * store: the SQLite database that keeps conversations across restarts.
 * Owns the connection, the schema and its migrations, and the prepared
 * statements.  Sessions are rows with two opaque blobs (the daemon's
 * options and state), KV chunks with a CRC-32 each, and transcript turns.
 * One snapshot is one transaction.  The schema is documented in store.c.
 *
 * A store may be used from several threads: every call holds the
 * store's lock for its whole transaction.  In sinkd the store thread
 * (daemon/storeq.h) makes every write while serving, the worker reads
 * (loading a session, a rebuild's turns), and the loop reads (export,
 * log) and writes only before serving and after the store thread has
 * drained at shutdown.
 */
#ifndef SINKD_STORE_H
#define SINKD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define STORE_SCHEMA 2	/* PRAGMA user_version of a current database */
#define STORE_MEMORY ":memory:" /* a path: a database that dies with us */

struct store;

/*
 * Opens (creating when absent, mode 0600) the database at path in WAL
 * mode and brings its schema up to STORE_SCHEMA.  A database written by
 * a newer sinkd is refused and left untouched.  store_open holds an
 * exclusive lock on PATH.lock until store_close: a database another
 * process (or another store) has open for writing is refused, naming its
 * pid.  store_open_readonly locks, creates, migrates and writes nothing
 * (for --check-db).  NULL with cause.
 */
struct store *store_open(const char *path, char *cause);
struct store *store_open_readonly(const char *path, char *cause);
void store_close(struct store *);
/* The schema version found on disk when opened (0: a new file). */
int store_found_version(const struct store *);
/* PRAGMA integrity_check: 0 when the file is sound, -1 with cause. */
int store_check(struct store *, char *cause);
/* Caps the file at max_bytes (0: no cap), for tests of a full disk. */
void store_limit(struct store *, uint64_t max_bytes);

/* A session's row; options and state are the daemon's opaque blobs. */
struct store_row {
	char name[65];
	uint32_t owner;
	int64_t created, used;
	char fingerprint[65];
	const void *options, *state;
	size_t options_len, state_len;
	char tmpl[32];	/* the chat format's name ("plain" before schema 2) */
};

/* A transcript turn: role as the daemon numbers it, text, token ids. */
struct store_turn {
	int role;
	const char *text;
	size_t len;
	const int32_t *toks;
	size_t n_toks;
};

struct seq;

/*
 * One snapshot.  The row always; the sequence's chunks that are dirty
 * (none when seq is NULL); turns appended as numbers first_turn,
 * first_turn + 1, ...  replace 1: the session's stored chunks go first
 * (a rebuild: a chunk never written since is all zeros, as a missing one
 * loads); 2: its turns too (a reset, an import).
 */
struct store_snap {
	const struct store_row *row;
	const struct seq *seq;
	int n_layer;
	int replace;
	const struct store_turn *turns;
	size_t n_turns;
	int64_t first_turn;
};

/*
 * Writes a snapshot in one transaction: on success the caller may
 * seq_clean; on failure nothing changed on disk.  (Test hook: with
 * SINKD_TEST_SAVE_PAUSE_MS=N in the environment, each waits N ms just
 * before its COMMIT, so that a test can kill sinkd mid-snapshot.)  The bytes written
 * (chunk data) go to *bytes when it is not NULL.
 */
int store_save(struct store *, const struct store_snap *, uint64_t *bytes,
    char *cause);
/* Removes a session, its chunks and its turns. */
int store_delete(struct store *, const char *name, char *cause);
/*
 * A new session `to` (its row given) with from's chunks and turns,
 * copied inside the database in one transaction.
 */
int store_fork(struct store *, const char *from, const struct store_row *to,
    char *cause);

/*
 * The row of a session (blobs malloc'd into *options and *state, owned
 * by the caller); 1 when there is none.
 */
int store_load_row(struct store *, const char *name, struct store_row *,
    void **options, void **state, char *cause);
/* Every stored chunk of a session into s; a bad CRC is an error. */
int store_load_chunks(struct store *, const char *name, struct seq *,
    int n_layer, char *cause);

/* Every session row, in name order; fn returning non-zero stops. */
typedef int store_row_fn(void *arg, const struct store_row *, int64_t turns);
int store_list(struct store *, store_row_fn *, void *arg, char *cause);

/* Turns from..from+max-1 of a session, in order; fn as above. */
typedef int store_turn_fn(void *arg, int64_t n, const struct store_turn *);
int store_turns(struct store *, const char *name, int64_t from, int64_t max,
    store_turn_fn *, void *arg, char *cause);

/* The stored chunks of a session as they are, CRC unchecked, in order. */
typedef int store_chunk_fn(void *arg, int layer, int32_t chunk, uint32_t crc,
    const void *data, size_t len);
int store_chunks(struct store *, const char *name, store_chunk_fn *,
    void *arg, char *cause);
/* At most max of them, those after (layer, chunk) in that order. */
int store_chunks_after(struct store *, const char *name, int layer,
    int32_t chunk, int64_t max, store_chunk_fn *, void *arg, char *cause);

/* Token ids as stored and exported: int32 little-endian on any host. */
void store_ids_put(uint8_t *b, const int32_t *ids, size_t n);
void store_ids_get(int32_t *ids, const uint8_t *b, size_t n);

/* A chunk's checksum: CRC-32C (engine/crc.h). */
uint32_t store_crc(const void *, size_t);
/*
 * Whether a chunk (from the database or an export file) fits a cache of
 * n_layer layers of n_chunks chunks of want bytes, and its CRC holds: 0,
 * or -1 with cause naming the chunk and what is wrong.
 */
int store_chunk_check(int layer, int32_t chunk, uint32_t crc,
    const void *data, size_t len, int n_layer, int32_t n_chunks,
    size_t want, char *cause);

#endif
