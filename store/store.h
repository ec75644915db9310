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

#endif
