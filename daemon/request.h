/*
 * request: one table entry and one handler per operation of
 * sinkd-protocol(7).  Handlers get the request (client, id, message)
 * and reply through it, never through the socket; an operation that
 * starts work on the worker replies later, from daemon.c.
 */
#ifndef SINKD_REQUEST_H
#define SINKD_REQUEST_H

#include <stddef.h>
#include <stdint.h>

struct client;
struct job;
struct daemon;
struct session;

/* Handles one frame body from c. */
void request_handle(struct client *c, const uint8_t *body, size_t len);
/* The names of the operations the table implements, NULL-terminated. */
const char *const *request_ops(void);
/* Sends a finished job's last message to its client (daemon.c). */
void request_job_done(struct daemon *, struct job *);
/* Handles again the requests parked on s (its store jobs are done). */
void request_unpark(struct daemon *, struct session *);
/* Handles a frame of c again (a parked request). */
void request_redo(struct client *c, const uint8_t *body, size_t len);
/* Stops a session's running job and drops its queue (shutdown). */
void request_stop_session(struct daemon *, struct session *, int why);
/*
 * Sends a worker event (token, warning, progress) to its client; text
 * is the event's own buffer, masked for invalid UTF-8 in place.
 */
void request_job_event(struct daemon *, struct job *, int kind,
    char *text, size_t len, int32_t token);

#endif
