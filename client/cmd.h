/*
 * cmd: sink's subcommands.  Each is one entry in the table of sink.c and
 * one function taking the parsed command line; the helpers here are what
 * they share: connecting with the handshake, sending a request, and
 * waiting for its end while every message goes to the writer (out.h).
 * A command returns the process's exit status.
 */
#ifndef SINK_CMD_H
#define SINK_CMD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "conn.h"
#include "out.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "dev"
#endif

#define CMD_MAX_STOP 16
#define CMD_MAX_INPUT (1u << 20)	/* default --max-input */
#define CMD_DEFAULT_SESSION "default"

/* Exit statuses. */
#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3	/* no daemon answers on the socket */
#define EXIT_INTR 130

/*
 * The command line.  Unset numbers are -1 (temperatures and
 * probabilities: a negative value); has_seed says whether seed is set.
 */
struct cmd_opts {
	const char	*socket;
	const char	*session;	/* -s, or NULL */
	const char	*system, *mode, *kv;
	const char	*tmpl;		/* --template, or NULL */
	const char	*output;	/* -o, or NULL */
	int		 json, quiet, verbose, no_create;
	long		 max_tokens, cache, sinks, top_k, turns, from;
	double		 temp, top_p, min_p, repeat_penalty;
	uint64_t	 seed;
	int		 has_seed;
	const char	*stop[CMD_MAX_STOP];
	size_t		 n_stop;
	size_t		 max_input;
	/* The arguments after the subcommand. */
	int		 argc;
	char		**argv;
};

struct cmd_ctx {
	struct cmd_opts	 o;
	struct conn	*conn;
	struct out	 out;
	char		 socket[256];
	uint64_t	 max_prompt;	/* from hello, 0 when not said */
	uint64_t	 cancel_id;	/* the last cancel sent for Ctrl-C */
	int		 broken;	/* the connection cannot be used */
	int		 gone;		/* the daemon hung up on it */
	int		 heard;		/* cmd_wait read a message for its id */
	/*
	 * When set, cmd_wait hands data messages here instead of to the
	 * writer; a non-zero return is an exit status that ends the wait
	 * (the connection is then broken: the rest goes unread).
	 */
	int		(*on_data)(struct cmd_ctx *, const struct conn_msg *);
	void		*data_arg;
};

/*
 * The subcommand table.  opts is a mask of the CMD_O_* option groups the
 * subcommand accepts beside the global ones.
 */
#define CMD_O_SESSION	0x01	/* -s NAME */
#define CMD_O_TURN	0x02	/* --stop, --max-input */
#define CMD_O_NOCREATE	0x04	/* --no-create */
#define CMD_O_SAMPLE	0x08	/* -n, --temp, --seed, --top-k... */
#define CMD_O_CREATE	0x10	/* --system, --cache, --mode... */
#define CMD_O_SHOW	0x20	/* --turns */
#define CMD_O_LOG	0x40	/* --from */
#define CMD_O_OUTPUT	0x80	/* -o FILE */

/* What a subcommand's arguments are. */
#define CMD_A_NAMES	0	/* session names */
#define CMD_A_TEXT	1	/* free text */
#define CMD_A_FILE	2	/* a file, then session names */

/*
 * name is NULL for the default subcommand, one chat turn; usage follows
 * "sink [options] "; max_args -1 is any number; args is one of CMD_A_*;
 * need says what fewer than min_args lacks ("sink NAME needs ...").
 */
struct cmd_entry {
	const char	*name;
	const char	*usage;
	unsigned	 opts;
	int		 min_args, max_args;
	int		 args;
	const char	*need;
	int		 (*exec)(struct cmd_ctx *);
};

/* Connects, sends hello, checks the reply.  0 or an exit status. */
int	cmd_connect(struct cmd_ctx *);
/*
 * As cmd_connect, but when nothing listens on the socket (or the daemon
 * hangs up during the hello) returns -1 without a word: for retrying.
 */
int	cmd_connect_quiet(struct cmd_ctx *);
void	cmd_disconnect(struct cmd_ctx *);

/* The session named by -s, or "default". */
const char *cmd_session(const struct cmd_ctx *);
/* The NAME argument at index i when given, else cmd_session(). */
const char *cmd_name_arg(const struct cmd_ctx *, int i);

/*
 * The sampling keys given on the command line (temp, top_k, top_p, min_p,
 * repeat_penalty, seed, max_tokens): how many, then packed.
 */
size_t	cmd_sampling_pairs(const struct cmd_opts *);
void	cmd_pack_sampling(struct proto_out *, const struct cmd_opts *);

/*
 * Sends the request begun with conn_begin.  0, or an exit status after
 * saying why (reading the daemon's last words when it hung up).
 */
int	cmd_send(struct cmd_ctx *, enum proto_op);

/*
 * Waits for the end of request id (of operation op), handing tokens and
 * warnings to the writer as they come.  Returns 0 with *end holding the
 * final ok, done or error message (unshown: pass it to cmd_end), or an
 * exit status after saying why.  When cancellable, a first Ctrl-C sends
 * cancel for id and the wait goes on (*cancelled = 1); a second returns
 * EXIT_INTR at once (*cancelled = 2, the connection broken), as does one
 * during a request that is not cancellable.
 */
int	cmd_wait(struct cmd_ctx *, uint64_t id, enum proto_op op,
	    int cancellable, int *cancelled, struct conn_msg *end);

/*
 * Shows the final message, frees it, and returns the exit status it
 * means: 0 for ok and done, 1 for error, 130 for a reply cancelled by
 * Ctrl-C (cancelled set).
 */
int	cmd_end(struct cmd_ctx *, enum proto_op, int cancelled,
	    struct conn_msg *end);

/* cmd_wait then cmd_end, for requests that end with a plain reply. */
int	cmd_request(struct cmd_ctx *, uint64_t id, enum proto_op);

/*
 * read(2) that a Ctrl-C breaks: bytes read, 0 at end of file, -1 with
 * cause, or -2 when interrupted.
 */
ssize_t	cmd_read_fd(int fd, void *buf, size_t size, char *cause);
/*
 * Reads all of stdin (at most --max-input bytes) into a malloc'd buffer;
 * *buf NULL when stdin is a terminal.  0, or an exit status.
 */
int	cmd_read_stdin(struct cmd_ctx *, char **buf, size_t *len);
/*
 * Makes text valid UTF-8 by replacing each stray byte with '?'; returns
 * how many, and says so on stderr when what (the text's name) is given.
 */
size_t	cmd_fix_utf8(char *text, size_t len, const char *what);

/*
 * The subcommands (cmd_turn.c, cmd_chat.c, cmd_session.c, cmd_store.c,
 * cmd_xfer.c).
 */
int	cmd_say(struct cmd_ctx *);
int	cmd_complete(struct cmd_ctx *);
int	cmd_feed(struct cmd_ctx *);
int	cmd_chat(struct cmd_ctx *);
int	cmd_ls(struct cmd_ctx *);
int	cmd_show(struct cmd_ctx *);
int	cmd_new(struct cmd_ctx *);
int	cmd_rm(struct cmd_ctx *);
int	cmd_reset(struct cmd_ctx *);
int	cmd_cancel(struct cmd_ctx *);
int	cmd_status(struct cmd_ctx *);
int	cmd_templates(struct cmd_ctx *);
int	cmd_log(struct cmd_ctx *);
int	cmd_rebuild(struct cmd_ctx *);
int	cmd_fork(struct cmd_ctx *);
int	cmd_export(struct cmd_ctx *);
int	cmd_import(struct cmd_ctx *);

/* A chat or complete turn: sends text and streams the reply. */
int	cmd_turn(struct cmd_ctx *, enum proto_op, const char *text,
	    size_t len, int *cancelled);

#endif
