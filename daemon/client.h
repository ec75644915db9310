/*
 * client: one connection.  Reads whole frames (as many as have arrived,
 * each checked against the frame limit before anything is allocated)
 * and hands them to request.c; queues replies on a bufferevent whose
 * output is capped: past max_output the client's running requests are
 * cancelled.  Only the loop thread touches it.
 */
#ifndef SINKD_CLIENT_H
#define SINKD_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct daemon;
struct bufferevent;

struct xfer_out;

struct client {
	struct daemon *d;
	uint64_t serial;
	struct bufferevent *bev;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int closing;	/* flush what is queued, then close */
	int paused;	/* not reading: too much output is queued */
	uint8_t *import;	/* an import's parts so far (op import) */
	size_t import_len, import_cap;
	struct xfer_out *export;	/* an export being sent (xfer.c) */
	struct client *next;
};

/* Takes fd (accepted, credentials checked). */
struct client *client_new(struct daemon *, int fd, uid_t, gid_t, pid_t);
struct client *client_find(struct daemon *, uint64_t serial);
void client_send(struct client *, const char *data, size_t len);
size_t client_queued(const struct client *);
/* Sends a last error (id 0), then closes once it is written. */
void client_fail(struct client *, int code, const char *msg);
void client_close_all(struct daemon *);

#endif
