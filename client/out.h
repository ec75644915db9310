/*
 * out: how sink shows what the daemon says.  Two writers share one
 * interface: text (replies streamed as they come, tables and summaries
 * for people, notes on stderr) and JSON lines (each daemon message as one
 * JSON object on a line of stdout, for scripts).  Commands hand every
 * message to the writer and decide only their exit status.
 */
#ifndef SINK_OUT_H
#define SINK_OUT_H

#include <stdint.h>
#include <stdio.h>

#include "conn.h"

struct out;

/* The totals of a feed sent as several requests. */
struct out_fed {
	uint64_t	 tokens;	/* prompt_tokens, summed */
	uint64_t	 bytes;
	unsigned	 chunks;
	int		 have_cache;	/* the three below are known */
	uint64_t	 cached, seen, evicted;
	double		 ms;		/* prefill time, summed */
};

struct out_ops {
	/*
	 * A message about a request of operation op: token, warning, ok,
	 * error or done (or a kind this client does not know).
	 */
	void	(*message)(struct out *, enum proto_op,
		    const struct conn_msg *);
	/* After the last request of a feed. */
	void	(*fed)(struct out *, const struct out_fed *);
	/* One turn of a log reply: a map {n, role, text}. */
	void	(*turn)(struct out *, const msgpack_object *);
	/* done of total bytes sent (import); total 0 when unknown. */
	void	(*sent)(struct out *, uint64_t done, uint64_t total);
};

struct out {
	const struct out_ops *ops;
	FILE		*fp;		/* replies, results: stdout */
	FILE		*note;		/* notes, errors: stderr */
	/*
	 * fp, note are terminals: what came from the daemon is then shown
	 * through vis.h, its control characters made visible.
	 */
	int		 tty;
	int		 note_tty;
	int		 quiet;		/* -q: no summaries */
	int		 verbose;	/* -v: usage lines, the handshake */
	int		 reply_nl;	/* end each reply with a newline */
	const char	*session;	/* the command's session */
	const char	*socket;
	const char	*file;		/* export's -o FILE, import's FILE */
	uint64_t	 n_turns;	/* turns a log has shown */
	/* The reply being streamed. */
	uint64_t	 reply_len;
	int		 reply_last;	/* its last byte */
	int		 progress;	/* a progress line is on the terminal */
};

/* Sets up a writer on stdout and stderr: JSON lines when json. */
void	out_init(struct out *, int json);
/* Forgets the reply streamed so far (call before each reply). */
void	out_reply_begin(struct out *);
/* Ends a reply with a newline when it lacks one and want says so. */
void	out_reply_end(struct out *, int want);
/* Erases the progress line on stderr, if one is showing. */
void	out_progress_clear(struct out *);

/*
 * A MessagePack value as JSON: strings escaped (they are valid UTF-8:
 * proto checked), NaN and infinities as null, bin as a string of hex
 * digits, ext as null.
 */
void	out_json_value(FILE *, const msgpack_object *);

extern const struct out_ops out_text_ops;
extern const struct out_ops out_json_ops;

/*
 * The text writer's parts for the store's ops (out_store.c), called by
 * out_text.c: the ok replies of fork, import, export and reset, a log's
 * turns, and import's progress.
 */
void	out_text_forked(struct out *, const struct conn_msg *);
void	out_text_imported(struct out *, const struct conn_msg *);
void	out_text_exported(struct out *, const struct conn_msg *);
void	out_text_reset(struct out *, const struct conn_msg *);
void	out_text_turn(struct out *, const msgpack_object *);
void	out_text_sent(struct out *, uint64_t done, uint64_t total);

#endif
