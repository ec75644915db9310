/*
 * intr: SIGINT turned into a readable pipe (see intr.h).  The handler
 * does nothing but write one byte: everything else happens in the code
 * that polls the pipe.
 */
#include "intr.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

static int intr_pipe[2] = { -1, -1 };

static void
intr_handler(int sig)
{
	int saved = errno;
	char c = 'i';
	ssize_t n;

	(void)sig;
	/* A full pipe already says "interrupted": a failed write is fine. */
	n = write(intr_pipe[1], &c, 1);
	(void)n;
	errno = saved;
}

int
intr_init(char *cause)
{
	struct sigaction sa;

	if (intr_pipe[0] != -1)
		return 0;
	if (pipe2(intr_pipe, O_CLOEXEC | O_NONBLOCK) == -1)
		return err_set(cause, "pipe: %s", strerror(errno));
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = intr_handler;
	sigemptyset(&sa.sa_mask);
	/* Blocking calls restart; waking up is the pipe's job. */
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGINT, &sa, NULL) == -1)
		return err_set(cause, "sigaction: %s", strerror(errno));
	return 0;
}

int
intr_fd(void)
{
	return intr_pipe[0];
}

int
intr_take(void)
{
	char buf[64];
	ssize_t n;
	int count = 0;

	if (intr_pipe[0] == -1)
		return 0;
	while ((n = read(intr_pipe[0], buf, sizeof buf)) > 0)
		count += (int)n;
	return count;
}
