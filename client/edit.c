/*
 * edit: line editing and history at the chat prompt (see edit.h).
 */
#include "edit.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "err.h"
#include "intr.h"
#include "path.h"

static char	 edit_path[PATH_MAX];	/* the history file, or "" */
static int	 edit_warned;		/* once about a failed save */
/* What the line handler got: set when a line (or Ctrl-D) ended. */
static int	 edit_done;
static char	*edit_got;

/* $XDG_STATE_HOME/sinkd/chat_history, else under ~/.local/state. */
static void
edit_find_path(void)
{
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	int n = -1;

	if (xdg != NULL && *xdg == '/')
		n = snprintf(edit_path, sizeof edit_path,
		    "%s/sinkd/chat_history", xdg);
	else if (home != NULL && *home == '/')
		n = snprintf(edit_path, sizeof edit_path,
		    "%s/.local/state/sinkd/chat_history", home);
	if (n < 0 || (size_t)n >= sizeof edit_path)
		edit_path[0] = '\0';
}

void
edit_open(void)
{
	/*
	 * libedit decodes what is typed by the locale, and drops what the
	 * locale cannot decode (all of UTF-8 but ASCII in "C"): the protocol
	 * is UTF-8, so a locale of another charset gives way to C.UTF-8.
	 */
	if (setlocale(LC_CTYPE, "") == NULL ||
	    strcmp(nl_langinfo(CODESET), "UTF-8") != 0)
		setlocale(LC_CTYPE, "C.UTF-8");
	rl_readline_name = "sink";
	rl_instream = stdin;
	/* The prompt on stderr, as without libedit: stdout is replies. */
	rl_outstream = stderr;
	/* Ctrl-C is intr.c's: libedit must not take SIGINT over. */
	rl_catch_signals = 0;
	using_history();
	stifle_history(EDIT_HISTORY);
	edit_find_path();
	if (edit_path[0] != '\0')
		read_history(edit_path);
}

void
edit_close(void)
{
	clear_history();
}

static void
edit_handler(char *line)
{
	edit_got = line;
	edit_done = 1;
}

int
edit_line(const char *prompt, char **line, char *cause)
{
	struct pollfd pfd[2];
	int r = 1;

	edit_done = 0;
	edit_got = NULL;
	pfd[0].fd = STDIN_FILENO;
	pfd[0].events = POLLIN;
	pfd[1].fd = intr_fd();
	pfd[1].events = POLLIN;
	rl_callback_handler_install(prompt, edit_handler);
	while (!edit_done) {
		if (poll(pfd, pfd[1].fd != -1 ? 2 : 1, -1) == -1) {
			if (errno == EINTR)
				continue;
			r = err_set(cause, "poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].fd != -1 && pfd[1].revents != 0) {
			intr_take();
			r = -2;
			break;
		}
		/*
		 * libedit says nothing of a read that fails: a terminal that
		 * hung up would be polled readable for ever.
		 */
		if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			break;
		if (pfd[0].revents & POLLIN)
			rl_callback_read_char();
	}
	/* Leaves the terminal as it was: the reply prints in cooked mode. */
	rl_callback_handler_remove();
	if (r != 1) {
		free(edit_got);
		return r;
	}
	if (edit_got == NULL)
		return 0;
	*line = edit_got;
	return 1;
}

void
edit_remember(const char *line)
{
	int fd, r;

	if (*line == '\0' || strlen(line) > EDIT_HISTORY_LINE)
		return;
	add_history(line);
	if (edit_path[0] == '\0')
		return;
	/*
	 * write_history() creates with fopen's 0666: make the file 0600
	 * first, so a conversation is never readable by others.
	 */
	if (path_make_dirs(edit_path, NULL) == 0 &&
	    (fd = open(edit_path, O_WRONLY | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) != -1) {
		r = fchmod(fd, 0600);
		close(fd);
		if (r == 0 && (r = write_history(edit_path)) == 0)
			return;
		if (r > 0)
			errno = r;
	}
	if (!edit_warned)
		fprintf(stderr, "sink: warning: cannot save the history in "
		    "%s: %s\n", edit_path, strerror(errno));
	edit_warned = 1;
}
