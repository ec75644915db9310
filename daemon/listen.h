/*
 * listen: the listening socket and who may connect through it.  sinkd
 * binds its own socket in a directory that only its user (or root) can
 * write, else a hostile user could have put a socket of their own there
 * first; or it takes the socket systemd passed (socket activation).
 * Each connection's peer (SO_PEERCRED) must be sinkd's own user, root,
 * or a member of --group.
 */
#ifndef SINKD_LISTEN_H
#define SINKD_LISTEN_H

#include "daemon.h"

/*
 * Starts accepting on d->base: 0, or -1 with cause (a path that is not
 * safe, another sinkd serving it, a passed fd that is not a socket).
 */
int listen_start(struct daemon *, char *cause);
/* No new connections; removes the socket file if sinkd made it. */
void listen_stop(struct daemon *);

#endif
