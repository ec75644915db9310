/*
 * systemd: see systemd.h.  The protocol, as systemd documents it: a
 * notification is one datagram of newline-separated VAR=value to the
 * Unix socket named by $NOTIFY_SOCKET ('@' first: the abstract
 * namespace); passed fds start at 3 and number $LISTEN_FDS, meant for
 * the process whose pid is $LISTEN_PID; $WATCHDOG_USEC (for $WATCHDOG_PID
 * when set) asks for WATCHDOG=1 at least that often.
 */
#include "systemd.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define LISTEN_FDS_START 3

void
systemd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len;
	int fd;

	if (path == NULL || (*path != '/' && *path != '@') ||
	    (len = strlen(path)) >= sizeof sun.sun_path)
		return;
	memcpy(sun.sun_path, path, len);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	if (sendto(fd, state, strlen(state), 0, (struct sockaddr *)&sun,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		log_warn("NOTIFY_SOCKET: %s", strerror(errno));
	close(fd);
}

/* A decimal variable's value; 0 when unset or not a number. */
static unsigned long long
env_number(const char *name)
{
	const char *v = getenv(name);
	unsigned long long n;
	char *end;

	if (v == NULL || *v < '0' || *v > '9')
		return 0;
	errno = 0;
	n = strtoull(v, &end, 10);
	return errno != 0 || *end != '\0' ? 0 : n;
}

uint64_t
systemd_watchdog_usec(void)
{
	unsigned long long pid = env_number("WATCHDOG_PID");

	if (pid != 0 && pid != (unsigned long long)getpid())
		return 0;
	return env_number("WATCHDOG_USEC");
}

int
systemd_listen_fd(char *cause)
{
	unsigned long long pid = env_number("LISTEN_PID");
	unsigned long long n = env_number("LISTEN_FDS");
	int fd = LISTEN_FDS_START, type = 0, acc = 0, fl;
	socklen_t len = sizeof type;
	struct sockaddr_un sun;
	socklen_t sl = sizeof sun;

	if (pid == 0 || pid != (unsigned long long)getpid() || n == 0)
		return 0;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (n != 1)
		return err_set(cause, "systemd passed %llu sockets; sinkd "
		    "listens on one (ListenStream= once in sinkd.socket)", n);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sun, &sl) != 0 ||
	    sun.sun_family != AF_UNIX || type != SOCK_STREAM ||
	    (len = sizeof acc, getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc,
	    &len)) != 0 || !acc)
		return err_set(cause, "the fd systemd passed (%d) is not a "
		    "listening Unix stream socket (ListenStream= with a path "
		    "in sinkd.socket)", fd);
	/* Passed fds arrive blocking, and would leak into children. */
	if ((fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
		return err_set(cause, "fd %d: %s", fd, strerror(errno));
	return fd;
}
