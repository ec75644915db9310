/*
 * listen: see listen.h.
 */
#include "listen.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "err.h"
#include "log.h"
#include "path.h"
#include "systemd.h"

/*
 * Whether the peer on fd belongs to group g.  The kernel's record of the
 * peer's groups at connect time (SO_PEERGROUPS) is the truth; the group
 * database is the fallback for kernels without it.
 */
static int
peer_in_group(int fd, const struct ucred *cr, gid_t g)
{
	gid_t groups[256];
	socklen_t len = sizeof groups;
	struct passwd pw, *pp;
	struct group gr, *gp;
	char pbuf[4096], gbuf[16384];
	char **m;
	size_t i;

	if (cr->gid == g)
		return 1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
		for (i = 0; i < len / sizeof groups[0]; i++)
			if (groups[i] == g)
				return 1;
		return 0;
	}
	/* Separate buffers: pw_name must outlive the group lookup. */
	if (getpwuid_r(cr->uid, &pw, pbuf, sizeof pbuf, &pp) != 0 ||
	    pp == NULL ||
	    getgrgid_r(g, &gr, gbuf, sizeof gbuf, &gp) != 0 || gp == NULL)
		return 0;
	for (m = gr.gr_mem; *m != NULL; m++)
		if (strcmp(*m, pw.pw_name) == 0)
			return 1;
	return 0;
}

/* Whether a peer may talk to us: our own user, root, or the group. */
static int
allowed(const struct daemon *d, int fd, const struct ucred *cr)
{
	if (cr->uid == geteuid() || cr->uid == 0)
		return 1;
	return d->group != (gid_t)-1 && peer_in_group(fd, cr, d->group);
}

/* Tells a peer that may not use us why, then closes. */
static void
refuse(struct daemon *d, int fd, const struct ucred *cr)
{
	struct client *c;
	char msg[256];

	log_warn("connection from uid %u (pid %d) refused: not sinkd's user, "
	    "root%s", (unsigned)cr->uid, (int)cr->pid, d->group !=
	    (gid_t)-1 ? " or a member of --group" : "");
	if ((c = client_new(d, fd, cr->uid, cr->gid, cr->pid)) == NULL) {
		close(fd);
		return;
	}
	snprintf(msg, sizeof msg, "uid %u may not use this sinkd: it serves "
	    "its own user (uid %u), root%s%s", (unsigned)cr->uid,
	    (unsigned)geteuid(), d->conf->group != NULL ? " and the members "
	    "of group " : "", d->conf->group != NULL ? d->conf->group : "");
	client_fail(c, PROTO_E_DENIED, msg);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int len, void *arg)
{
	struct daemon *d = arg;
	struct ucred cr;
	socklen_t cl = sizeof cr;
	struct client *c;

	(void)l;
	(void)sa;
	(void)len;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 ||
	    cl != sizeof cr) {
		log_warn("connection refused: SO_PEERCRED: %s",
		    strerror(errno));
		close(fd);
		return;
	}
	if (!allowed(d, fd, &cr)) {
		refuse(d, fd, &cr);
		return;
	}
	if ((c = client_new(d, fd, cr.uid, cr.gid, cr.pid)) == NULL) {
		log_error("out of memory for a client");
		close(fd);
		return;
	}
	if (d->n_clients > d->conf->max_clients)
		client_fail(c, PROTO_E_LIMIT, "too many clients "
		    "(max-clients)");
}

/*
 * The socket's directory, made (mode 0700) with its parents if need be,
 * must be one that no other user could have made or can write: a real
 * directory, not a link, owned by us or root, writable by no one else.
 * Else whoever can write it could have bound a socket there before us
 * (to read what clients send), or replace ours later.
 */
static int
safe_dir(const char *path, char *cause)
{
	char dir[sizeof ((struct sockaddr_un *)0)->sun_path], *p;
	struct stat st;

	if (path_make_dirs(path, cause) != 0)
		return -1;
	snprintf(dir, sizeof dir, "%s", path);
	if ((p = strrchr(dir, '/')) == NULL)
		return err_set(cause, "socket path %s is not absolute", path);
	*(p == dir ? p + 1 : p) = '\0';
	if (lstat(dir, &st) != 0)
		return err_set(cause, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(cause, "the socket's directory %s is not a "
		    "directory (a symbolic link?): give --socket a path in a "
		    "private directory", dir);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return err_set(cause, "the socket's directory %s belongs to "
		    "uid %u, not to sinkd's user (uid %u): another user could "
		    "have put a fake sinkd there; remove it or give --socket "
		    "a path in a directory of yours", dir, (unsigned)st.st_uid,
		    (unsigned)geteuid());
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		return err_set(cause, "the socket's directory %s is writable "
		    "by other users (mode %04o): one of them could put a fake "
		    "sinkd there; chmod go-w it, or give --socket a path in a "
		    "private directory", dir, (unsigned)(st.st_mode & 07777));
	return 0;
}

/* Refuses a socket another sinkd answers on; removes a stale one. */
static int
claim_path(const struct sockaddr_un *sun, char *cause)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;
	struct stat st;

	if (fd < 0)
		return err_set(cause, "socket: %s", strerror(errno));
	rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
	close(fd);
	if (rc == 0)
		return err_set(cause, "another sinkd already serves %s",
		    sun->sun_path);
	if (lstat(sun->sun_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return err_set(cause, "%s exists and is not a socket",
			    sun->sun_path);
		log_info("removing stale socket %s", sun->sun_path);
		unlink(sun->sun_path);
	}
	return 0;
}

static int
bind_own(struct daemon *d, char *cause)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = d->conf->socket;
	int fd;

	if (strlen(path) >= sizeof sun.sun_path)
		return err_set(cause, "socket path %s is too long", path);
	strcpy(sun.sun_path, path);
	if (safe_dir(path, cause) != 0 || claim_path(&sun, cause) != 0)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) < 0)
		return err_set(cause, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
	    chmod(path, d->group != (gid_t)-1 ? 0660 : 0600) != 0 ||
	    (d->group != (gid_t)-1 && chown(path, (uid_t)-1, d->group) != 0)) {
		err_set(cause, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	d->socket_made = 1;
	return fd;
}

int
listen_start(struct daemon *d, char *cause)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t sl = sizeof sun;
	int fd, passed = 1;
	char *p;

	if ((fd = systemd_listen_fd(cause)) < 0)
		return -1;
	if (fd == 0) {
		passed = 0;
		if ((fd = bind_own(d, cause)) < 0)
			return -1;
	}
	d->listener = evconnlistener_new(d->base, accept_cb, d,
	    LEV_OPT_CLOSE_ON_FREE, 64, fd);
	if (d->listener == NULL) {
		close(fd);
		return err_set(cause, "%s: cannot listen", d->conf->socket);
	}
	if (passed) {
		/* For the log and status: where clients reach us. */
		if (getsockname(fd, (struct sockaddr *)&sun, &sl) == 0 &&
		    sun.sun_path[0] != '\0' &&
		    (p = strdup(sun.sun_path)) != NULL) {
			free(d->conf->socket);
			d->conf->socket = p;
		}
		log_info("listening on the socket systemd passed (%s)",
		    d->conf->socket);
	}
	return 0;
}

void
listen_stop(struct daemon *d)
{
	if (d->listener != NULL) {
		evconnlistener_free(d->listener);
		d->listener = NULL;
	}
	/* A passed socket is systemd's: it stays for the next start. */
	if (d->socket_made && d->conf->socket != NULL) {
		unlink(d->conf->socket);
		d->socket_made = 0;
	}
}

