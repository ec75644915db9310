/*
 * xfer: a session as a portable file: export (op export) and import (op
 * import).  An export goes out a little at a time, as the client reads:
 * whenever its output has drained below half of max-output, a store
 * job reads the next chunks and turns up to that room and the loop
 * sends them, so a cache of any size never sits whole in memory and the
 * loop never reads the database; the session takes no job meanwhile,
 * so the file is one consistent state.
 * The file format is in sinkd-protocol(7) and xfer.c.
 */
#ifndef SINKD_XFER_H
#define SINKD_XFER_H

struct client;

/* Sends more of c's export if its output has room; ends it when done. */
void xfer_pump(struct client *);
/* Drops c's export, if any (the client is going). */
void xfer_end(struct client *);
/* Drops c's import parts so far. */
void xfer_import_drop(struct client *);

#endif
