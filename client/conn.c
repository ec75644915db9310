/*
 * conn: the client's connection to sinkd (see conn.h; the frame format
 * is defined in proto.h).  Incoming bytes collect in one buffer that
 * grows up to one frame of CONN_MAX_IN; each read takes whatever the
 * socket has, so several frames per read are split here, and a frame cut
 * across reads waits for its rest.  Every wait polls the socket and the
 * interrupt descriptor together.
 */
#include "conn.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

#define CONN_IN_MIN (64u << 10)	/* first size of the input buffer */

struct conn {
	int		 fd;
	int		 intr;
	char		*path;
	/* in[in_off] starts the first unread frame; in_len bytes held. */
	uint8_t		*in;
	size_t		 in_off, in_len, in_cap;
	size_t		 max_out;
	uint64_t	 next_id;
	struct proto_out out;	/* never moved: its packer points here */
};

static const char *
system_socket(void)
{
	const char *s = getenv("SINKD_SYSTEM_SOCKET");

	return s != NULL && *s != '\0' ? s : CONN_SYSTEM_SOCKET;
}

int
conn_default_path(char *buf, size_t size, char *cause)
{
	const char *env = getenv("SINKD_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (env != NULL && *env != '\0')
		n = snprintf(buf, size, "%s", env);
	else if (xdg != NULL && *xdg == '/')
		n = snprintf(buf, size, "%s/sinkd/sock", xdg);
	else
		n = snprintf(buf, size, "/tmp/sinkd-%u/sock",
		    (unsigned)geteuid());
	if (n < 0 || (size_t)n >= size)
		return err_set(cause, "the socket path is too long");
	/* No sinkd of our own: the system-wide one, if it runs. */
	if ((env == NULL || *env == '\0') && access(buf, F_OK) != 0 &&
	    errno == ENOENT && access(system_socket(), F_OK) == 0 &&
	    strlen(system_socket()) < size)
		snprintf(buf, size, "%s", system_socket());
	return 0;
}

/*
 * Before a byte is sent, the server must run as us, as root, or as the
 * system user of the system-wide service (CONN_SYSTEM_USER): anyone else
 * may have bound that path first, in a directory they can write, to read
 * what we send.
 */
static int
peer_trusted(int fd, const char *path, char *cause)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	struct passwd pw, *pp = NULL;
	char buf[4096];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 ||
	    len != sizeof cr)
		return err_set(cause, "%s: cannot tell who serves it: %s",
		    path, strerror(errno));
	if (cr.uid == geteuid() || cr.uid == 0)
		return 0;
	if (getpwnam_r(CONN_SYSTEM_USER, &pw, buf, sizeof buf, &pp) == 0 &&
	    pp != NULL && pw.pw_uid == cr.uid)
		return 0;
	return err_set(cause, "refusing to talk to %s: it is served by uid %u "
	    "(pid %d), not by you, root or the '%s' user: another user may "
	    "be posing as sinkd", path, (unsigned)cr.uid, (int)cr.pid,
	    CONN_SYSTEM_USER);
}

static int
connect_unix(const char *path, int *refused, char *cause)
{
	struct sockaddr_un sun;
	int fd, e;

	if (strlen(path) >= sizeof sun.sun_path) {
		return err_set(cause, "cannot connect to sinkd at %s: the path "
		    "is longer than %zu bytes", path, sizeof sun.sun_path - 1);
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return err_set(cause, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
		if (peer_trusted(fd, path, cause) == 0)
			return fd;
		close(fd);
		return -1;
	}
	e = errno;
	close(fd);
	*refused = e == ENOENT || e == ECONNREFUSED || e == ENOTSOCK ||
	    e == ENOTDIR;
	if (e == EACCES && strcmp(path, system_socket()) == 0)
		return err_set(cause, "cannot connect to sinkd at %s: %s (the "
		    "system-wide sinkd serves root and the members of group "
		    "'%s')", path, strerror(e), CONN_SYSTEM_USER);
	return err_set(cause, "cannot connect to sinkd at %s: %s", path,
	    strerror(e));
}

struct conn *
conn_open(const char *path, int *refused, char *cause)
{
	struct conn *c;
	int fd;

	*refused = 0;
	if ((fd = connect_unix(path, refused, cause)) == -1)
		return NULL;
	if ((c = calloc(1, sizeof *c)) == NULL ||
	    (c->path = strdup(path)) == NULL ||
	    (c->in = malloc(CONN_IN_MIN)) == NULL) {
		if (c != NULL)
			free(c->path);
		free(c);
		close(fd);
		err_set(cause, "out of memory");
		return NULL;
	}
	c->fd = fd;
	c->intr = -1;
	c->in_cap = CONN_IN_MIN;
	c->max_out = CONN_MAX_OUT;
	c->next_id = 1;
	proto_out_init(&c->out);
	return c;
}

void
conn_close(struct conn *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	proto_out_free(&c->out);
	free(c->in);
	free(c->path);
	free(c);
}

const char *
conn_path(const struct conn *c)
{
	return c->path;
}

void
conn_set_intr(struct conn *c, int fd)
{
	c->intr = fd;
}

void
conn_set_max_out(struct conn *c, size_t max)
{
	c->max_out = max;
}

size_t
conn_max_out(const struct conn *c)
{
	return c->max_out;
}

/* Waits until the socket is ready for events: CONN_MSG, CONN_INTR. */
static int
wait_fd(struct conn *c, short events, char *cause)
{
	struct pollfd pfd[2];
	nfds_t n = 1;

	pfd[0].fd = c->fd;
	pfd[0].events = events;
	if (c->intr != -1) {
		pfd[1].fd = c->intr;
		pfd[1].events = POLLIN;
		n = 2;
	}
	for (;;) {
		if (poll(pfd, n, -1) == -1) {
			if (errno == EINTR)
				continue;
			return err_set(cause, "poll: %s", strerror(errno));
		}
		if (n == 2 && pfd[1].revents != 0)
			return CONN_INTR;
		if (pfd[0].revents != 0)
			return CONN_MSG;
	}
}

uint64_t
conn_begin(struct conn *c, enum proto_op op, size_t n_more)
{
	uint64_t id = c->next_id++;

	proto_out_reset(&c->out);
	proto_pack_map(&c->out, 2 + n_more);
	proto_pack_key(&c->out, "op");
	proto_pack_cstr(&c->out, proto_op_name(op));
	proto_pack_key(&c->out, "id");
	proto_pack_u64(&c->out, id);
	return id;
}

struct proto_out *
conn_out(struct conn *c)
{
	return &c->out;
}

int
conn_send(struct conn *c, char *cause)
{
	const char *data;
	size_t len, off = 0;
	ssize_t n;
	int r;

	if (proto_out_finish(&c->out, c->max_out, &data, &len, cause) == -1)
		return CONN_ERR;
	while (off < len) {
		n = send(c->fd, data + off, len - off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if ((r = wait_fd(c, POLLOUT, cause)) != CONN_MSG)
				return r;
			continue;
		}
		if (errno == EPIPE || errno == ECONNRESET)
			return CONN_EOF;
		return err_set(cause, "write to %s: %s", c->path,
		    strerror(errno));
	}
	return CONN_MSG;
}

/* Room for at least want bytes past in_len, dropping what was read. */
static int
make_room(struct conn *c, size_t want, char *cause)
{
	size_t cap;
	uint8_t *p;

	if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_cap - c->in_len >= want)
		return 0;
	cap = c->in_cap;
	while (cap - c->in_len < want)
		cap *= 2;
	if ((p = realloc(c->in, cap)) == NULL)
		return err_set(cause, "out of memory for a %zu-byte frame",
		    cap);
	c->in = p;
	c->in_cap = cap;
	return 0;
}

/* Reads what the socket has: CONN_MSG, CONN_EOF, CONN_INTR, CONN_ERR. */
static int
fill(struct conn *c, size_t need, char *cause)
{
	ssize_t n;
	int r;

	if (make_room(c, need, cause) == -1)
		return CONN_ERR;
	for (;;) {
		if ((r = wait_fd(c, POLLIN, cause)) != CONN_MSG)
			return r;
		n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
		if (n > 0) {
			c->in_len += (size_t)n;
			return CONN_MSG;
		}
		if (n == 0 || errno == ECONNRESET)
			return CONN_EOF;
		if (errno != EINTR && errno != EAGAIN)
			return err_set(cause, "read from %s: %s", c->path,
			    strerror(errno));
	}
}

static int
parse(struct conn_msg *m, const uint8_t *body, size_t len, char *cause)
{
	char why[ERR_LEN];
	const char *s;
	size_t n;

	if (proto_msg_parse(&m->msg, body, len, why) == -1)
		return err_set(cause, "the daemon sent a bad message: %s", why);
	if (proto_get_u64(&m->msg, "id", 1, 0, PROTO_ID_MAX, &m->id,
	    why) != 0 ||
	    proto_get_str(&m->msg, "kind", 1, 64, &s, &n, why) != 0) {
		conn_msg_free(m);
		return err_set(cause, "the daemon sent a bad message: %s", why);
	}
	m->kind_name = s;
	if (proto_kind_parse(s, n, &m->kind) == -1)
		m->kind = PROTO_K_COUNT;
	if (m->kind != PROTO_K_ERROR)
		return CONN_MSG;
	m->code = "unknown";
	m->err = PROTO_E_COUNT;
	if (proto_get_str(&m->msg, "code", 0, 64, &s, &n, why) == 0) {
		m->code = s;
		if (proto_err_parse(s, n, &m->err) == -1)
			m->err = PROTO_E_COUNT;
	}
	m->message = "";
	if (proto_get_str(&m->msg, "message", 0, 4096, &s, &n, why) == 0)
		m->message = s;
	return CONN_MSG;
}

int
conn_read(struct conn *c, struct conn_msg *m, char *cause)
{
	char why[ERR_LEN];
	const uint8_t *p;
	size_t body, have;
	int r;

	memset(m, 0, sizeof *m);
	for (;;) {
		p = c->in + c->in_off;
		have = c->in_len - c->in_off;
		r = proto_frame_check(p, have, CONN_MAX_IN, &body, why);
		if (r == -1) {
			return err_set(cause, "the daemon sent a bad frame: %s",
			    why);
		}
		if (r == 1) {
			c->in_off += 4 + body;
			return parse(m, p + 4, body, cause);
		}
		/* A whole frame's room once its length is known. */
		body = 0;
		if (have >= 4)
			body = (size_t)p[0] << 24 | (size_t)p[1] << 16 |
			    (size_t)p[2] << 8 | p[3];
		if ((r = fill(c, body + 4 > have ? body + 4 - have : 1,
		    cause)) != CONN_MSG)
			return r;
	}
}

void
conn_msg_free(struct conn_msg *m)
{
	proto_msg_free(&m->msg);
}
