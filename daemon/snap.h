/*
 * snap: sessions in and out of the store.  Owns the encoding of a
 * session's options and state blobs (MessagePack maps, versioned), the
 * snapshot of a session (row, dirty KV chunks, new turns: one
 * transaction), and loading a stored session back bit for bit.
 *
 * Threads: snap_save and snap_load touch the session's cache and sampler,
 * so they run where the session is not in use by anyone else: on the
 * worker inside the session's job, or on the loop while it is idle.
 */
#ifndef SINKD_SNAP_H
#define SINKD_SNAP_H

#include "model.h"
#include "session.h"
#include "store.h"

#define SNAP_VERSION 1	/* of the blobs' layout */

/*
 * Writes s as it stands: the row, the chunks written since the last
 * snapshot (all of them with replace), the turns in memory and then
 * extra (a job's), numbered from s->n_stored.  replace: 1 drops the
 * stored chunks first, 2 the stored turns as well.  On success the
 * cache is marked clean and *bytes (if not NULL) holds the KV bytes
 * written; the caller moves the turns (they are stored now).
 */
int snap_save(struct store *, const struct model *, struct session *,
    int chatted, const struct store_turn *extra, size_t n_extra,
    int replace, uint64_t *bytes, char *cause);

/*
 * Loads a stored session's cache and sampler (s->seq, s->smp) as they
 * were at its last snapshot.  A snapshot of another model, a damaged
 * chunk or blob: -1 with cause, and s stays unloaded.
 */
int snap_load(struct store *, const struct model *, struct session *,
    char *cause);

/*
 * A session from a stored row (not loaded: snap_load does that).  A row
 * that cannot be used (another model, blobs that do not parse) still
 * gives a session, marked damaged with the reason.  NULL only when out
 * of memory.  m may be NULL: the fingerprint is not checked.
 */
struct session *snap_from_row(const struct model *, const struct store_row *,
    int64_t n_turns, char *cause);

/*
 * The stream position, slot tokens, random state and penalty history
 * of a state blob into s, whose cache and sampler exist and whose chunks
 * are set (snap_load, an import).
 */
int snap_restore_state(struct session *, const struct model *,
    const void *state, size_t len, char *cause);

/* The session's row with freshly encoded blobs (owned by the outs). */
int snap_row(const struct session *, const struct model *, int chatted,
    struct store_row *, struct proto_out *opt, struct proto_out *state,
    char *cause);

#endif
