/*
 * out: the writer interface (out.h) and the JSON-lines writer.  In JSON
 * mode stdout carries exactly the daemon's messages, one per line, in
 * the order they came, so that `sink --json ... | jq` sees the protocol
 * itself; client-side errors still go to stderr as text.
 */
#include "out.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vis.h"

void
out_init(struct out *o, int json)
{
	memset(o, 0, sizeof *o);
	o->ops = json ? &out_json_ops : &out_text_ops;
	o->fp = stdout;
	o->note = stderr;
	o->tty = isatty(STDOUT_FILENO);
	o->note_tty = isatty(STDERR_FILENO);
	o->reply_last = -1;
}

void
out_reply_begin(struct out *o)
{
	o->reply_len = 0;
	o->reply_last = -1;
}

void
out_reply_end(struct out *o, int want)
{
	if (want && o->reply_len > 0 && o->reply_last != '\n') {
		fputc('\n', o->fp);
		o->reply_last = '\n';
	}
	fflush(o->fp);
}

void
out_progress_clear(struct out *o)
{
	if (o->progress) {
		fprintf(o->note, "\r\033[K");
		fflush(o->note);
		o->progress = 0;
	}
}

static void
json_str(FILE *f, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c;
	size_t i;

	fputc('"', f);
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
		} else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
		else if (c == 0xc2 && i + 1 < len &&
		    ((unsigned char)s[i + 1] & 0xe0) == 0x80) {
			/* C1 (U+0080..U+009F): no raw CSI for a terminal. */
			c = (unsigned char)s[++i];
			fprintf(f, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
		} else
			fputc(c, f);
	}
	fputc('"', f);
}

/* The shortest decimal that reads back as the same float or double. */
static void
json_float(FILE *f, double v, int single)
{
	char buf[40];
	int prec, lo = single ? 6 : 15, hi = single ? 9 : 17;

	if (!isfinite(v)) {
		fputs("null", f);
		return;
	}
	for (prec = lo; prec <= hi; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, v);
		if (single ? (float)strtod(buf, NULL) == (float)v :
		    strtod(buf, NULL) == v)
			break;
	}
	fputs(buf, f);
}

static void
json_hex(FILE *f, const char *p, size_t len)
{
	size_t i;

	fputc('"', f);
	for (i = 0; i < len; i++)
		fprintf(f, "%02x", (unsigned char)p[i]);
	fputc('"', f);
}

void
out_json_value(FILE *f, const msgpack_object *v)
{
	uint32_t i;

	switch (v->type) {
	case MSGPACK_OBJECT_NIL:
		fputs("null", f);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		fputs(v->via.boolean ? "true" : "false", f);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		fprintf(f, "%llu", (unsigned long long)v->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		fprintf(f, "%lld", (long long)v->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		json_float(f, v->via.f64, v->type == MSGPACK_OBJECT_FLOAT32);
		break;
	case MSGPACK_OBJECT_STR:
		json_str(f, v->via.str.ptr, v->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		json_hex(f, v->via.bin.ptr, v->via.bin.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		fputc('[', f);
		for (i = 0; i < v->via.array.size; i++) {
			if (i > 0)
				fputc(',', f);
			out_json_value(f, &v->via.array.ptr[i]);
		}
		fputc(']', f);
		break;
	case MSGPACK_OBJECT_MAP:
		fputc('{', f);
		for (i = 0; i < v->via.map.size; i++) {
			if (i > 0)
				fputc(',', f);
			out_json_value(f, &v->via.map.ptr[i].key);
			fputc(':', f);
			out_json_value(f, &v->via.map.ptr[i].val);
		}
		fputc('}', f);
		break;
	default:
		fputs("null", f);
		break;
	}
}

static void
json_message(struct out *o, enum proto_op op, const struct conn_msg *m)
{
	/* The handshake is the connection's, not the command's. */
	if (op == PROTO_OP_HELLO && m->kind == PROTO_K_OK && !o->verbose)
		return;
	out_json_value(o->fp, &m->msg.root);
	fputc('\n', o->fp);
	fflush(o->fp);
	if (m->kind == PROTO_K_ERROR)
		vis_printf(o->note, o->note_tty, "sink: %s: %s\n", m->code,
		    m->message);
}

static void
json_fed(struct out *o, const struct out_fed *fed)
{
	(void)o;
	(void)fed;
}

/* A log's turn: the daemon's map as it is, one per line. */
static void
json_turn(struct out *o, const msgpack_object *t)
{
	out_json_value(o->fp, t);
	fputc('\n', o->fp);
	o->n_turns++;
}

/* Scripts get no progress: stderr stays for errors. */
static void
json_sent(struct out *o, uint64_t done, uint64_t total)
{
	(void)o;
	(void)done;
	(void)total;
}

const struct out_ops out_json_ops = { json_message, json_fed, json_turn,
	json_sent };
