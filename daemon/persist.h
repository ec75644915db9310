/*
 * persist: the loop thread's side of the store: sessions listed from it
 * at startup, snapshots of idle sessions (create, reset, shutdown, a
 * retry after a failure), deletion, and the memory budget that sends
 * the least recently used idle sessions back to the store.  Also
 * sinkd --check-db.
 */
#ifndef SINKD_PERSIST_H
#define SINKD_PERSIST_H

#include <stdio.h>

#include "conf.h"
#include "daemon.h"
#include "session.h"

/* Opens conf->db and lists its sessions into d (none loaded). */
int persist_open(struct daemon *, char *cause);
/*
 * Snapshots an idle, loaded session now (replace as in snap_save).  On
 * success its turns in memory are dropped (they are stored); on failure
 * it is marked dirty, a warning is logged, and -1 returned with cause.
 */
int persist_save(struct daemon *, struct session *, int replace,
    char *cause);
/* Saves every dirty idle session: at shutdown. */
/*
 * Snapshots every session with unsaved changes (at shutdown): the number
 * that could not be saved, their names listed in names (cut to size).
 */
size_t persist_flush(struct daemon *, char *names, size_t size);
/* The session is being used: it becomes the most recently used. */
void persist_touch(struct daemon *, struct session *);
/*
 * Makes room for need_bytes more of cache and need_n more resident
 * sessions, unloading the least recently used idle sessions but keep.
 */
void persist_budget(struct daemon *, const struct session *keep,
    uint64_t need_bytes, size_t need_n);
/* Removes a session from the store. */
int persist_delete(struct daemon *, struct session *, char *cause);
/* Bytes of cache and number of sessions in memory. */
uint64_t persist_resident(const struct daemon *, size_t *n);

/*
 * sinkd --check-db: reads the whole database, prints what is wrong and
 * a summary to out; the exit status (0 sound, 1 problems found).  With
 * a model, each session's fingerprint is checked against it.
 */
int persist_check_db(const struct conf *, const struct model *, FILE *out);

#endif
