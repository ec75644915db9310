/*
 * store_int: what store.c and store_sess.c share: the connection and
 * its lock.  Not for use outside store/.
 */
#ifndef SINKD_STORE_INT_H
#define SINKD_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>

#include "store.h"

struct store {
	sqlite3 *db;
	pthread_mutex_t lock;	/* held for a whole call */
	int found;		/* user_version when opened */
	unsigned pause_ms;	/* test hook: SINKD_TEST_SAVE_PAUSE_MS */
	int lock_fd;		/* PATH.lock, held while open; -1: none */
};

/* Runs constant SQL (no parameters); 0, or -1 with SQLite's message. */
int store_exec(struct store *, const char *sql, char *cause);

#endif
