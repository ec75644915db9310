/*
 * store: the SQLite database that keeps conversations across restarts.
 * Owns the connection, the schema and its migrations, and the prepared
 * statements.  This first part opens, creates and versions the
 * database; sessions, KV chunks and transcripts come with the snapshot
 * code.  The schema is documented in store.c.
 */
#ifndef SINKD_STORE_H
#define SINKD_STORE_H

#include <stdint.h>

#include "err.h"

#define STORE_SCHEMA 1	/* PRAGMA user_version of a current database */

struct store;

/*
 * Opens (creating when absent, mode 0600) the database at path in WAL
 * mode and brings its schema up to STORE_SCHEMA.  A database written by
 * a newer sinkd is refused and left untouched.  NULL with cause.
 */
struct store *store_open(const char *path, char *cause);
void store_close(struct store *);
/* The schema version found on disk when opened (0: a new file). */
int store_found_version(const struct store *);
/* PRAGMA integrity_check: 0 when the file is sound, -1 with cause. */
int store_check(struct store *, char *cause);

/* A session's row; options and state are the daemon's opaque blobs. */
struct store_row {
	char name[65];
	uint32_t owner;
	int64_t created, used;
	char fingerprint[65];
	const void *options, *state;
	size_t options_len, state_len;
};

struct seq;

/*
 * One snapshot, one transaction: the row, and the sequence's chunks
 * that are dirty (all of them with full), each with its CRC-32.  On
 * success the caller may seq_clean; on failure nothing changed on disk.
 */
int store_save(struct store *, const struct store_row *, const struct seq *,
    int n_layer, int full, char *cause);
/*
 * The row of a session (blobs malloc'd into *options and *state, owned
 * by the caller); 1 when there is none.
 */
int store_load_row(struct store *, const char *name, struct store_row *,
    void **options, void **state, char *cause);
/* Every stored chunk of a session into s; a bad CRC is an error. */
int store_load_chunks(struct store *, const char *name, struct seq *,
    int n_layer, char *cause);
uint32_t store_crc32(const void *, size_t);

#endif
