/*
 * conn: the client's end of a connection to sinkd: the Unix socket,
 * framing in both directions (proto.h), request ids, and waits that a
 * Ctrl-C (intr.h) can break.  It knows nothing of what the requests mean.
 */
#ifndef SINK_CONN_H
#define SINK_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/*
 * Largest frame accepted from the daemon.  Replies are small, but an
 * info reply quotes recent turns, so allow well past the daemon's own
 * request limit (PROTO_MAX_FRAME).
 */
#define CONN_MAX_IN (16u << 20)
/* Largest frame sent when the daemon did not say its limit: its maximum. */
#define CONN_MAX_OUT (64u << 20)

/* What conn_read and conn_send return. */
#define CONN_ERR -1	/* cause says what */
#define CONN_EOF 0	/* the daemon closed the connection */
#define CONN_MSG 1	/* a message was read */
#define CONN_INTR 2	/* the interrupt descriptor became readable */

struct conn;

/* One message from the daemon, with the two keys every message has. */
struct conn_msg {
	struct proto_msg msg;
	uint64_t	 id;
	enum proto_kind	 kind;	/* PROTO_K_COUNT: unknown to us */
	const char	*kind_name;
	/* For kind error: the code (PROTO_E_COUNT if unknown) and message. */
	enum proto_err	 err;
	const char	*code;
	const char	*message;
};

/*
 * The system-wide service's socket (sinkd.socket; $SINKD_SYSTEM_SOCKET
 * overrides it) and its user.
 */
#define CONN_SYSTEM_SOCKET "/run/sinkd/sock"
#define CONN_SYSTEM_USER "sinkd"

/*
 * The socket to use: $SINKD_SOCKET, then $XDG_RUNTIME_DIR/sinkd/sock
 * (when that is an absolute path), then /tmp/sinkd-UID/sock, as sinkd
 * chooses its own; when that one does not exist and the system-wide
 * service's does ($SINKD_SYSTEM_SOCKET, else CONN_SYSTEM_SOCKET), that.  0, or -1 with cause if it does not fit.
 */
int	conn_default_path(char *buf, size_t size, char *cause);

/*
 * Connects, and checks who serves path (SO_PEERCRED: ourselves, root
 * or CONN_SYSTEM_USER) before anything is sent.  NULL with cause on
 * failure; *refused is set to 1 when nothing listens at path (no such
 * file, refused, not a socket), where the caller may suggest starting
 * the daemon.
 */
struct conn *conn_open(const char *path, int *refused, char *cause);
void	conn_close(struct conn *);
const char *conn_path(const struct conn *);

/* A descriptor whose readability breaks any wait (intr_fd()), or -1. */
void	conn_set_intr(struct conn *, int fd);
/* The largest request the daemon takes, when it said so. */
void	conn_set_max_out(struct conn *, size_t);
size_t	conn_max_out(const struct conn *);

/*
 * Starts a request: packs a map of 2 + n_more pairs beginning with op
 * and a new id, and returns the id.  The caller packs the n_more other
 * pairs into conn_out() and calls conn_send.
 */
uint64_t conn_begin(struct conn *, enum proto_op, size_t n_more);
struct proto_out *conn_out(struct conn *);
/*
 * Finishes and writes the frame begun by conn_begin.  CONN_MSG (sent),
 * CONN_EOF (the daemon closed the connection), CONN_INTR, or CONN_ERR
 * with cause (the message could not be built: too large, say).  After
 * CONN_INTR the frame may be partly written: close the connection.
 */
int	conn_send(struct conn *, char *cause);

/*
 * Reads the next message, waiting for it.  CONN_MSG fills *m (free with
 * conn_msg_free), CONN_EOF when the daemon closed the connection (even
 * mid-frame), CONN_INTR, or CONN_ERR with cause when the daemon sent
 * something that is not a message (the connection is then unusable).
 */
int	conn_read(struct conn *, struct conn_msg *m, char *cause);
void	conn_msg_free(struct conn_msg *);

#endif
