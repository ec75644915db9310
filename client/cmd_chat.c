/*
 * cmd_chat: the interactive loop.  One line is one turn; a line ending
 * with a backslash goes on on the next.  Lines are read with the
 * interrupt pipe in the same poll, so Ctrl-C at the prompt ends sink at
 * once, while Ctrl-C during a reply cancels only that reply.  On a
 * terminal lines are edited with libedit (edit.h); piped lines are read
 * here.  When sinkd goes away, the chat waits for it to come back and
 * sends the same line again: a line typed is never lost to a restart.
 */
#include "cmd.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edit.h"
#include "err.h"
#include "intr.h"

#define PROMPT "> "
#define PROMPT_MORE "... "
/* How long a chat waits for sinkd to come back, and how often it asks. */
#define RECONNECT_MS	500
#define RECONNECT_TRIES	60
/* Sends of one line: a daemon dying of the line is not fed it forever. */
#define RESEND_MAX	3

struct lines {
	char	*buf;
	size_t	 off, len, cap, max;
	int	 eof;
	int	 prompt;	/* stdin is a terminal: prompt on stderr */
	int	 tty;		/* and so is stderr: edited with libedit */
	char	*edited;	/* libedit's last line */
};

/*
 * The next line of stdin, without its newline and NUL-terminated, valid
 * until the next call: 1, 0 at the end, -1 with cause, -2 on Ctrl-C.
 */
static int
next_line(struct lines *l, char **line, size_t *len, char *cause)
{
	char *nl, *p;
	ssize_t n;

	for (;;) {
		nl = memchr(l->buf + l->off, '\n', l->len - l->off);
		if ((nl != NULL ? (size_t)(nl - l->buf) : l->len) - l->off >
		    l->max)
			return err_set(cause, "a line of more than %zu bytes "
			    "(--max-input raises the limit)", l->max);
		if (nl != NULL || (l->eof && l->off < l->len)) {
			*line = l->buf + l->off;
			*len = (nl != NULL ? (size_t)(nl - *line) : l->len -
			    l->off);
			l->off += *len + (nl != NULL);
			(*line)[*len] = '\0';
			return 1;
		}
		if (l->eof)
			return 0;
		memmove(l->buf, l->buf + l->off, l->len - l->off);
		l->len -= l->off;
		l->off = 0;
		if (l->len + 1 >= l->cap) {
			if ((p = realloc(l->buf, l->cap * 2)) == NULL)
				return err_set(cause, "out of memory");
			l->buf = p;
			l->cap *= 2;
		}
		/* Keep a byte for the NUL of a last line without newline. */
		n = cmd_read_fd(STDIN_FILENO, l->buf + l->len,
		    l->cap - l->len - 1, cause);
		if (n < 0)
			return (int)n;
		if (n == 0)
			l->eof = 1;
		l->len += (size_t)n;
	}
}

struct text {
	char	*s;
	size_t	 len, cap;
};

static int
text_add(struct text *t, const char *s, size_t len)
{
	char *p;
	size_t cap = t->cap > 0 ? t->cap : 256;

	while (cap < t->len + len + 1)
		cap *= 2;
	if (cap != t->cap) {
		if ((p = realloc(t->s, cap)) == NULL)
			return -1;
		t->s = p;
		t->cap = cap;
	}
	memcpy(t->s + t->len, s, len);
	t->len += len;
	t->s[t->len] = '\0';
	return 0;
}

/* A line typed at the terminal: as next_line, kept in the history. */
static int
edited_line(struct lines *l, const char *prompt, char **line, size_t *len,
    char *cause)
{
	int r;

	free(l->edited);
	l->edited = NULL;
	if ((r = edit_line(prompt, &l->edited, cause)) != 1)
		return r;
	edit_remember(l->edited);
	*line = l->edited;
	*len = strlen(*line);
	return 1;
}

/* One turn's text, joining backslash-continued lines: as next_line. */
static int
read_turn(struct lines *l, struct text *t)
{
	char cause[ERR_LEN], *line = NULL;
	size_t len = 0;
	int r, more;

	t->len = 0;
	for (more = 0;; more = 1) {
		if (l->tty)
			r = edited_line(l, more ? PROMPT_MORE : PROMPT, &line,
			    &len, cause);
		else {
			if (l->prompt)
				fputs(more ? PROMPT_MORE : PROMPT, stderr);
			r = next_line(l, &line, &len, cause);
		}
		if (r == 1 && l->tty && t->len + len > l->max)
			r = err_set(cause, "a line of more than %zu bytes "
			    "(--max-input raises the limit)", l->max);
		if (r == 1) {
			more = len > 0 && line[len - 1] == '\\';
			if (text_add(t, line, len - more) == -1 ||
			    (more && text_add(t, "\n", 1) == -1))
				r = err_set(cause, "out of memory");
			if (r == 1 && more)
				continue;
		}
		if (r == 0 && t->len > 0)
			r = 1;		/* a continued last line */
		if (r == -1)
			fprintf(stderr, "sink: reading stdin: %s\n", cause);
		if (r != 1 && l->prompt)
			fputc('\n', stderr);
		return r;
	}
}

static void
chat_help(void)
{
	fprintf(stderr,
	    "Each line is one turn; end a line with \\ to go on on the next.\n"
	    "On a terminal, lines are edited as in a shell; the up arrow\n"
	    "recalls earlier ones (kept in $XDG_STATE_HOME/sinkd/chat_history).\n"
	    "  /reset  empty this session's cache and transcript\n"
	    "  /quit   leave (as does Ctrl-D); Ctrl-C stops a reply\n");
}

static int
chat_reset(struct cmd_ctx *c)
{
	uint64_t id;
	int r;

	id = conn_begin(c->conn, PROTO_OP_RESET, 1);
	proto_pack_key(conn_out(c->conn), "name");
	proto_pack_cstr(conn_out(c->conn), cmd_session(c));
	if ((r = cmd_send(c, PROTO_OP_RESET)) != 0 ||
	    (r = cmd_request(c, id, PROTO_OP_RESET)) != 0)
		return r;
	if (!c->o.json && !c->o.quiet && !c->o.verbose)
		fprintf(stderr, "sink: session %s is empty again\n",
		    cmd_session(c));
	return 0;
}

/* Waits ms, or less for a Ctrl-C: 0, or EXIT_INTR. */
static int
chat_sleep(int ms)
{
	struct pollfd pfd;

	pfd.fd = intr_fd();
	pfd.events = POLLIN;
	if (poll(&pfd, 1, ms) == 1) {
		intr_take();
		return EXIT_INTR;
	}
	return 0;
}

/* Connects again after sinkd went away: 0, or an exit status. */
static int
chat_reconnect(struct cmd_ctx *c, int sent)
{
	int i, r;

	cmd_disconnect(c);
	fprintf(stderr, "sink: sinkd went away; reconnecting...%s\n",
	    sent ? " (the reply is lost; the line was sent)" : "");
	for (i = 0; i < RECONNECT_TRIES; i++) {
		if (i > 0 && (r = chat_sleep(RECONNECT_MS)) != 0)
			return r;
		if ((r = cmd_connect_quiet(c)) != -1) {
			if (r == 0 && !c->o.quiet)
				fprintf(stderr, "sink: reconnected\n");
			return r;
		}
		cmd_disconnect(c);
	}
	fprintf(stderr, "sink: sinkd did not come back in %d s\n",
	    RECONNECT_TRIES * RECONNECT_MS / 1000);
	return EXIT_UNREACHABLE;
}

/*
 * The line's request, sent again after a reconnection while sinkd had
 * not answered it: when it hung up before any reply to the line, the
 * line did not reach the conversation.  0 or an exit status.
 */
static int
chat_send(struct cmd_ctx *c, struct text *t, int reset)
{
	int cancelled = 0, r, sends, heard;

	for (sends = 1;; sends++) {
		c->heard = 0;
		if (reset)
			r = chat_reset(c);
		else
			r = cmd_turn(c, PROTO_OP_CHAT, t->s, t->len,
			    &cancelled);
		if (!c->gone)
			break;
		heard = c->heard;	/* the hello will set it */
		if ((r = chat_reconnect(c, heard)) != 0 || heard)
			return r;
		if (sends == RESEND_MAX) {
			fprintf(stderr, "sink: sinkd went away %d times on this "
			    "line: not sent again\n", sends);
			return 0;
		}
	}
	if (r == EXIT_INTR && cancelled == 1)
		r = 0;		/* the reply stopped; go on */
	return r;
}

/* One line typed: 0 to go on, -1 to leave, or an exit status. */
static int
chat_line(struct cmd_ctx *c, struct text *t)
{
	int r;

	if (strcmp(t->s, "/quit") == 0)
		return -1;
	if (strcmp(t->s, "/help") == 0) {
		chat_help();
		return 0;
	}
	if (t->len == strspn(t->s, " \t\n"))
		return 0;
	if (strcmp(t->s, "/reset") != 0)
		cmd_fix_utf8(t->s, t->len, "the line");
	r = chat_send(c, t, strcmp(t->s, "/reset") == 0);
	/* A failed turn (busy, say) is not the end of the conversation. */
	if (r == EXIT_FAIL && !c->broken)
		r = 0;
	return r;
}

int
cmd_chat(struct cmd_ctx *c)
{
	struct lines l;
	struct text t;
	int r;

	if ((r = cmd_connect(c)) != 0)
		return r;
	memset(&l, 0, sizeof l);
	memset(&t, 0, sizeof t);
	l.cap = 4096;
	l.max = c->o.max_input;
	l.prompt = isatty(STDIN_FILENO);
	/* libedit echoes on stderr: it must be the terminal too. */
	l.tty = l.prompt && isatty(STDERR_FILENO);
	if ((l.buf = malloc(l.cap)) == NULL) {
		fprintf(stderr, "sink: out of memory\n");
		return EXIT_FAIL;
	}
	c->out.reply_nl = 1;
	if (l.tty)
		edit_open();
	if (l.prompt && !c->o.quiet)
		fprintf(stderr, "sink: session %s; /help for help, Ctrl-D to "
		    "leave\n", cmd_session(c));
	for (;;) {
		if ((r = read_turn(&l, &t)) != 1) {
			r = r == 0 ? EXIT_OK : r == -2 ? EXIT_INTR : EXIT_FAIL;
			break;
		}
		if ((r = chat_line(c, &t)) != 0) {
			if (r == -1)
				r = EXIT_OK;
			break;
		}
	}
	if (l.tty)
		edit_close();
	free(l.edited);
	free(l.buf);
	free(t.s);
	return r;
}
