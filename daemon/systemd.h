/*
 * systemd: what sinkd speaks of systemd's service protocol, without
 * libsystemd: state notifications (READY=1, STOPPING=1, STATUS=...,
 * WATCHDOG=1) to $NOTIFY_SOCKET, the watchdog interval from
 * $WATCHDOG_USEC, and a listening socket handed over by socket
 * activation ($LISTEN_FDS, $LISTEN_PID).  Each reads its variables once
 * and only when they are meant for this process; without systemd every
 * call is a no-op.
 */
#ifndef SINKD_SYSTEMD_H
#define SINKD_SYSTEMD_H

#include <stdint.h>

/* Sends one notification datagram ("READY=1", ...); quiet without it. */
void systemd_notify(const char *state);

/* Microseconds between keep-alives systemd wants (0: no watchdog). */
uint64_t systemd_watchdog_usec(void);

/*
 * The listening socket systemd passed: its fd (non-blocking and
 * close-on-exec now), 0 when none was passed (then the caller binds its
 * own), or -1 with cause when what was passed is not one listening Unix
 * stream socket.  The variables are removed so no child inherits them.
 */
int systemd_listen_fd(char *cause);

#endif
