/*
 * out_store: the text writer's part for the store's ops (see out.h): the
 * one-line summaries of fork, import and export, reset's warning when
 * the database missed it, a log's turns as blocks, and the progress of
 * an import.  Summaries go to stdout, except where stdout is the data.
 */
#include "out.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "out_fmt.h"
#include "vis.h"

/* "streaming, cache 1024 tokens (4 sinks), kv f16; 12 turns, 345 cached" */
static void
summary(const msgpack_object *s, char *buf, size_t size)
{
	char shape[256];
	uint64_t turns = 0, cached = 0;

	fmt_shape(s, shape, sizeof shape);
	fmt_get_u64(s, "turns", &turns);
	fmt_get_u64(s, "cached", &cached);
	snprintf(buf, size, "%s; %" PRIu64 " turn%s, %" PRIu64 " tokens "
	    "cached", shape, turns, turns == 1 ? "" : "s", cached);
}

/* "session NEW: VERB (summary)" for the session of an ok reply. */
static void
session_line(struct out *o, const struct conn_msg *m, const char *verb)
{
	const msgpack_object *s = proto_get(&m->msg, "session");
	const char *name;
	char buf[512];

	if (o->quiet || s == NULL || s->type != MSGPACK_OBJECT_MAP)
		return;
	name = fmt_get_str(s, "name");
	summary(s, buf, sizeof buf);
	vis_printf(o->fp, o->tty, "session %s: %s (%s)\n",
	    name != NULL ? name : "?", verb, buf);
	fflush(o->fp);
}

void
out_text_forked(struct out *o, const struct conn_msg *m)
{
	char verb[128];

	snprintf(verb, sizeof verb, "forked from %s", o->session);
	session_line(o, m, verb);
}

/* The oks of the parts before the last say only "received": not shown. */
void
out_text_imported(struct out *o, const struct conn_msg *m)
{
	session_line(o, m, "imported");
}

/* Stdout is the export itself unless -o named a file. */
void
out_text_exported(struct out *o, const struct conn_msg *m)
{
	uint64_t bytes = 0, frames = 0;
	char size[32];

	fmt_get_u64(&m->msg.root, "bytes", &bytes);
	fmt_get_u64(&m->msg.root, "frames", &frames);
	fmt_size(bytes, size, sizeof size);
	if (o->file != NULL && !o->quiet) {
		fprintf(o->fp, "session %s: exported to %s (%s)\n",
		    o->session, o->file, size);
		fflush(o->fp);
	} else if (o->verbose)
		fprintf(o->note, "sink: session %s exported: %s in %" PRIu64
		    " frames\n", o->session, size, frames);
}

void
out_text_reset(struct out *o, const struct conn_msg *m)
{
	int saved = 1;

	fmt_get_bool(&m->msg.root, "saved", &saved);
	if (!saved)
		fprintf(o->note, "sink: warning: session %s was reset, but the "
		    "database was not updated: it goes on in memory, and the "
		    "next snapshot tries again\n", o->session);
	else if (o->verbose)
		fprintf(o->note, "sink: reset session %s\n", o->session);
}

/*
 * A turn as a block: a line "ROLE: #N", the text (given a newline at
 * its end when it lacks one), and a blank line before the next block.
 */
void
out_text_turn(struct out *o, const msgpack_object *t)
{
	const msgpack_object *text = proto_map_get(t, "text");
	const char *role = fmt_get_str(t, "role");
	uint64_t n = 0;
	size_t len;

	fmt_get_u64(t, "n", &n);
	if (o->n_turns++ > 0)
		fputc('\n', o->fp);
	vis_printf(o->fp, o->tty, "%s: #%" PRIu64 "\n", role != NULL ? role : "?",
	    n);
	if (text == NULL || text->type != MSGPACK_OBJECT_STR ||
	    (len = text->via.str.size) == 0)
		return;
	vis_write(o->fp, o->tty, text->via.str.ptr, len);
	if (text->via.str.ptr[len - 1] != '\n')
		fputc('\n', o->fp);
}

/* "sink: sending 1.5 MiB of 12.0 MiB (12%)", rewritten in place. */
void
out_text_sent(struct out *o, uint64_t done, uint64_t total)
{
	char a[32], b[32];

	if (o->quiet || !isatty(fileno(o->note)))
		return;
	fmt_size(done, a, sizeof a);
	if (total > 0 && done <= total) {
		fmt_size(total, b, sizeof b);
		fprintf(o->note, "\rsink: sending %s of %s (%d%%)\033[K", a, b,
		    (int)(done * 100 / total));
	} else
		fprintf(o->note, "\rsink: sending %s\033[K", a);
	fflush(o->note);
	o->progress = 1;
}
