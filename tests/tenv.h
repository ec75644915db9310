/*
 * tenv: what the engine test suites share: a private temporary
 * folder, the path of the real stories260K model (from $SINKD_SHARED)
 * and whether it is there, a two-thread pool, and opening a model that
 * must open.  Suites using the pool run without forking (its threads
 * live in the test process).
 */
#ifndef SINKD_TENV_H
#define SINKD_TENV_H

#include <stdio.h>

#include "model.h"
#include "pool.h"

extern char tenv_dir[64];	  /* the temporary folder */
extern char tenv_stories[4096];
extern int tenv_have_stories;
extern struct pool *tenv_pool;

/* Makes /tmp/sinkd-test-NAME-XXXXXX, finds stories260K, starts the pool. */
void tenv_setup(const char *name);
void tenv_teardown(void);
struct model *tenv_open_model(const char *path);

/* In a test: skip it, visibly, when stories260K is not there. */
#define NEED_STORIES() do {						\
	if (!tenv_have_stories) {					\
		printf("SKIP: %s not found (set SINKD_SHARED)\n",	\
		    tenv_stories);					\
		return;							\
	}								\
} while (0)

#endif
