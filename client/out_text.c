/*
 * out_text: the writer for people.  Replies go to stdout as the tokens
 * come; results become a table (ls) or aligned "key value" lines (show,
 * status); errors, warnings and the -v usage line go to stderr, so that
 * stdout holds only what was asked for.  Keys this client does not know
 * are still shown, generically, so a newer daemon's additions are not
 * hidden.
 */
#include "out.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "out_fmt.h"
#include "vis.h"

#define KEY_WIDTH 10

static void
kv_line(struct out *o, const char *key, const char *value)
{
	/* A key as long as the column still gets a space after it. */
	vis_printf(o->fp, o->tty, "%-*s %s\n", KEY_WIDTH - 1, key, value);
}

/* Every key of map not in known, as "key value" lines. */
static void
other_keys(struct out *o, const msgpack_object *map,
    const char *const *known)
{
	const msgpack_object_kv *kv;
	char key[PROTO_NAME_MAX + 1], val[512];
	const char *const *k;
	uint32_t i;

	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return;
	for (i = 0; i < map->via.map.size; i++) {
		kv = &map->via.map.ptr[i];
		fmt_value(&kv->key, key, sizeof key);
		for (k = known; *k != NULL; k++)
			if (strcmp(*k, key) == 0)
				break;
		if (*k != NULL)
			continue;
		fmt_value(&kv->val, val, sizeof val);
		kv_line(o, key, val);
	}
}

/*
 * "sink: reading 1536/8192 tokens" while a long text is encoded, on a
 * terminal only, rewritten in place and erased when the reply starts.
 */
static void
text_progress(struct out *o, const struct conn_msg *m)
{
	uint64_t done = 0, total = 0;

	if (o->quiet || !isatty(fileno(o->note)) ||
	    proto_get_u64(&m->msg, "done", 1, 0, UINT64_MAX, &done, NULL) != 0 ||
	    proto_get_u64(&m->msg, "total", 1, 0, UINT64_MAX, &total, NULL) != 0)
		return;
	fprintf(o->note, "\rsink: reading %" PRIu64 "/%" PRIu64 " tokens",
	    done, total);
	fflush(o->note);
	o->progress = 1;
}

static void
text_token(struct out *o, const struct conn_msg *m)
{
	const char *s;
	size_t len;

	out_progress_clear(o);
	if (proto_get_str(&m->msg, "text", 0, CONN_MAX_IN, &s, &len,
	    NULL) != 0 || len == 0)
		return;
	vis_write(o->fp, o->tty, s, len);
	fflush(o->fp);
	o->reply_len += len;
	o->reply_last = (unsigned char)s[len - 1];
}

static void
usage_line(struct out *o, const msgpack_object *u)
{
	uint64_t prompt = 0, gen = 0, cached, seen, evicted;
	double ptps = 0, dtps = 0;

	if (u == NULL)
		return;
	fmt_get_u64(u, "prompt_tokens", &prompt);
	fmt_get_u64(u, "generated_tokens", &gen);
	fmt_get_f64(u, "prefill_tps", &ptps);
	fmt_get_f64(u, "decode_tps", &dtps);
	fprintf(o->note, "sink: %" PRIu64 " prompt tokens (%.1f/s), %" PRIu64
	    " generated (%.1f/s)", prompt, ptps, gen, dtps);
	if (fmt_get_u64(u, "cached_tokens", &cached) &&
	    fmt_get_u64(u, "seen_tokens", &seen) &&
	    fmt_get_u64(u, "evicted_tokens", &evicted)) {
		fprintf(o->note, "; cache holds %" PRIu64 " tokens, %" PRIu64
		    " seen, %" PRIu64 " evicted", cached, seen, evicted);
	}
	fputc('\n', o->note);
}

static void
text_done(struct out *o, enum proto_op op, const struct conn_msg *m)
{
	const msgpack_object *usage = proto_get(&m->msg, "usage");
	const char *finish = fmt_get_str(&m->msg.root, "finish");
	uint64_t gen = 0;

	if (op == PROTO_OP_FEED)
		return;
	out_reply_end(o, o->tty || o->reply_nl);
	if (finish != NULL && strcmp(finish, "length") == 0 && !o->quiet) {
		fmt_get_u64(usage, "generated_tokens", &gen);
		fprintf(o->note, "sink: the reply stopped at the token limit "
		    "(%" PRIu64 " tokens; -n raises it)\n", gen);
	}
	if (o->verbose)
		usage_line(o, usage);
}

static void
text_hello(struct out *o, const struct conn_msg *m)
{
	const char *server = fmt_get_str(&m->msg.root, "server");
	const char *model = fmt_get_str(&m->msg.root, "model");
	uint64_t major = 0, minor = 0;

	if (!o->verbose)
		return;
	fmt_get_u64(&m->msg.root, "proto", &major);
	fmt_get_u64(&m->msg.root, "minor", &minor);
	vis_printf(o->note, o->note_tty, "sink: connected to %s at %s, "
	    "protocol %" PRIu64
	    ".%" PRIu64 ", model %s\n", server != NULL ? server : "sinkd",
	    o->socket, major, minor, model != NULL ? model : "unknown");
}

/* The columns of sink ls. */
enum { C_NAME, C_MODE, C_CACHE, C_SEEN, C_EVICTED, C_TURNS, C_USED, C_STATE,
	C_BUSY, C_COUNT };
static const char *const ls_head[C_COUNT] = { "NAME", "MODE", "CACHE",
	"SEEN", "EVICTED", "TURNS", "USED", "STATE", "BUSY" };
static const char *const ls_key[C_COUNT] = { "name", "mode", NULL, "seen",
	"evicted", "turns", NULL, "state", NULL };

static void
ls_cell(const msgpack_object *s, int col, time_t now, char *buf,
    size_t size)
{
	uint64_t a, b;
	int busy;

	if (ls_key[col] != NULL) {
		fmt_value(proto_map_get(s, ls_key[col]), buf, size);
		return;
	}
	switch (col) {
	case C_CACHE:
		if (fmt_get_u64(s, "cached", &a) && fmt_get_u64(s, "cache", &b))
			snprintf(buf, size, "%" PRIu64 "/%" PRIu64, a, b);
		else
			snprintf(buf, size, "-");
		break;
	case C_USED:
		if (fmt_get_u64(s, "used", &a))
			fmt_ago(now, a, buf, size);
		else
			snprintf(buf, size, "-");
		break;
	default:
		busy = 0;
		fmt_get_bool(s, "busy", &busy);
		snprintf(buf, size, "%s", busy ? "busy" : "-");
		break;
	}
}

static void
text_ls(struct out *o, const struct conn_msg *m)
{
	const msgpack_object *list = proto_get(&m->msg, "sessions");
	const msgpack_object *s;
	size_t w[C_COUNT], n;
	char cell[256];
	time_t now = time(NULL);
	uint32_t i;
	int c, right;

	if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY ||
	    list->via.array.size == 0) {
		if (!o->quiet)
			fprintf(o->note, "sink: no sessions\n");
		return;
	}
	for (c = 0; c < C_COUNT; c++)
		w[c] = strlen(ls_head[c]);
	for (i = 0; i < list->via.array.size; i++) {
		for (c = 0; c < C_COUNT; c++) {
			ls_cell(&list->via.array.ptr[i], c, now, cell,
			    sizeof cell);
			if ((n = fmt_width(cell)) > w[c])
				w[c] = n;
		}
	}
	for (i = 0; i <= list->via.array.size; i++) {
		s = i > 0 ? &list->via.array.ptr[i - 1] : NULL;
		for (c = 0; c < C_COUNT; c++) {
			if (s == NULL)
				snprintf(cell, sizeof cell, "%s", ls_head[c]);
			else
				ls_cell(s, c, now, cell, sizeof cell);
			right = c >= C_CACHE && c <= C_TURNS;
			fmt_pad(o->fp, o->tty, cell, w[c], right,
			    c + 1 < C_COUNT ? "  " : "\n");
		}
	}
	fflush(o->fp);
}

static const char *const sampling_keys[] = { "temp", "top_k", "top_p",
	"min_p", "repeat_penalty", "seed", "max_tokens", NULL };

static void
show_sampling(struct out *o, const msgpack_object *s)
{
	const msgpack_object *v;
	char line[512], val[64];
	const char *const *k;
	size_t n = 0;

	line[0] = '\0';
	for (k = sampling_keys; *k != NULL; k++) {
		if ((v = proto_map_get(s, *k)) == NULL)
			continue;
		fmt_value(v, val, sizeof val);
		n += snprintf(line + n, sizeof line - n, "%s%s %s",
		    n > 0 ? ", " : "", *k, val);
		if (n >= sizeof line)
			break;
	}
	if (line[0] != '\0')
		kv_line(o, "sampling", line);
}

/* Where the session is, and what is wrong with it, if anything. */
static void
show_store(struct out *o, const msgpack_object *s)
{
	const char *v;
	int saved;

	if ((v = fmt_get_str(s, "state")) != NULL)
		kv_line(o, "state", v);
	if ((v = fmt_get_str(s, "problem")) != NULL && *v != '\0')
		kv_line(o, "problem", v);
	if (fmt_get_bool(s, "saved", &saved) && !saved)
		kv_line(o, "saved", "no");
}

static void
show_session(struct out *o, const msgpack_object *s)
{
	static const char *const known[] = { "id", "kind", "name", "mode",
		"cache", "sinks", "kv", "cached", "bytes", "seen", "evicted",
		"turns", "created", "used", "busy", "system", "temp", "top_k",
		"top_p", "min_p", "repeat_penalty", "seed", "max_tokens",
		"recent", "queued", "token_layer_bytes", "state", "problem",
		"saved", "template", "template_warning", NULL };
	char buf[512], size_s[32], ago[32];
	uint64_t a = 0, b = 0, t;
	const char *v;
	int busy = 0;

	fmt_value(proto_map_get(s, "name"), buf, sizeof buf);
	kv_line(o, "name", buf);
	fmt_shape(s, buf, sizeof buf);
	kv_line(o, "mode", buf);
	fmt_get_u64(s, "cached", &a);
	fmt_size(fmt_get_u64(s, "bytes", &t) ? t : 0, size_s, sizeof size_s);
	snprintf(buf, sizeof buf, "%" PRIu64 " tokens, %s", a, size_s);
	kv_line(o, "cached", buf);
	a = b = 0;
	fmt_get_u64(s, "seen", &a);
	fmt_get_u64(s, "evicted", &b);
	snprintf(buf, sizeof buf, "%" PRIu64 " tokens, %" PRIu64 " evicted",
	    a, b);
	kv_line(o, "seen", buf);
	fmt_value(proto_map_get(s, "turns"), buf, sizeof buf);
	kv_line(o, "turns", buf);
	if (fmt_get_u64(s, "created", &t)) {
		fmt_date(t, buf, sizeof buf);
		fmt_ago(time(NULL), t, ago, sizeof ago);
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf), " (%s)",
		    ago);
		kv_line(o, "created", buf);
	}
	if (fmt_get_u64(s, "used", &t)) {
		fmt_ago(time(NULL), t, buf, sizeof buf);
		kv_line(o, "used", buf);
	}
	fmt_get_bool(s, "busy", &busy);
	kv_line(o, "busy", busy ? "yes" : "no");
	show_store(o, s);
	if (fmt_get_str(s, "system") != NULL &&
	    *fmt_get_str(s, "system") != '\0') {
		fprintf(o->fp, "%-*s", KEY_WIDTH, "system");
		fmt_text(o->fp, o->tty, proto_map_get(s, "system"),
		    o->verbose ? 0 : 200);
		fputc('\n', o->fp);
	}
	if ((v = fmt_get_str(s, "template")) != NULL)
		kv_line(o, "template", v);
	if ((v = fmt_get_str(s, "template_warning")) != NULL && *v != '\0')
		kv_line(o, "warning", v);
	show_sampling(o, s);
	other_keys(o, s, known);
}

/* The chat templates: name, description, the default marked. */
static void
text_templates(struct out *o, const struct conn_msg *m)
{
	const msgpack_object *l = proto_get(&m->msg, "templates"), *t;
	const char *dflt = fmt_get_str(&m->msg.root, "default");
	const char *mdl = fmt_get_str(&m->msg.root, "model");
	const char *n, *d;
	uint32_t i;

	if (l == NULL || l->type != MSGPACK_OBJECT_ARRAY)
		return;
	for (i = 0; i < l->via.array.size; i++) {
		t = &l->via.array.ptr[i];
		if ((n = fmt_get_str(t, "name")) == NULL)
			continue;
		d = fmt_get_str(t, "description");
		vis_printf(o->fp, o->tty, "%-12s %s%s%s\n", n, d != NULL ? d :
		    "", dflt != NULL && strcmp(dflt, n) == 0 ?
		    " [default]" : "", mdl != NULL && strcmp(mdl, n) == 0 ?
		    " [the model's]" : "");
	}
}

static void
show_recent(struct out *o, const msgpack_object *recent)
{
	const msgpack_object *t;
	const char *role;
	uint32_t i;

	if (recent == NULL || recent->type != MSGPACK_OBJECT_ARRAY ||
	    recent->via.array.size == 0)
		return;
	fprintf(o->fp, "\nrecent turns:\n");
	for (i = 0; i < recent->via.array.size; i++) {
		t = &recent->via.array.ptr[i];
		role = fmt_get_str(t, "role");
		vis_printf(o->fp, o->tty, "  %s: ", role != NULL ? role : "?");
		fmt_text(o->fp, o->tty, proto_map_get(t, "text"),
		    o->verbose ? 0 : 200);
		fputc('\n', o->fp);
	}
}

static void
text_show(struct out *o, const struct conn_msg *m)
{
	const msgpack_object *s = proto_get(&m->msg, "session");

	show_session(o, s != NULL ? s : &m->msg.root);
	show_recent(o, proto_get(&m->msg, "recent"));
	fflush(o->fp);
}

static void
text_created(struct out *o, const struct conn_msg *m)
{
	const msgpack_object *s = proto_get(&m->msg, "session");
	char shape[256];

	if (o->quiet)
		return;
	if (s == NULL)
		s = &m->msg.root;
	fmt_shape(s, shape, sizeof shape);
	fprintf(o->fp, "session %s: %s\n", o->session, shape);
	fflush(o->fp);
}

/* "12, 3 in memory, 1 busy"; then where they are kept. */
static void
status_sessions(struct out *o, const msgpack_object *r)
{
	char buf[512];
	uint64_t x = 0, y = 0, z;
	int n;

	fmt_get_u64(r, "sessions", &x);
	fmt_get_u64(r, "busy", &y);
	n = snprintf(buf, sizeof buf, "%" PRIu64, x);
	if (fmt_get_u64(r, "resident", &z))
		n += snprintf(buf + n, sizeof buf - n, ", %" PRIu64
		    " in memory", z);
	snprintf(buf + n, sizeof buf - n, ", %" PRIu64 " busy", y);
	kv_line(o, "sessions", buf);
	if (fmt_get_str(r, "db") != NULL)
		kv_line(o, "db", fmt_get_str(r, "db"));
}

/* The scheduler: its bounds, its memory, and the steps it took. */
static void
status_batch(struct out *o, const msgpack_object *b)
{
	uint64_t mb = 0, ch = 0, sc = 0, st = 0, dr = 0, pr = 0, ms = 0;
	uint64_t sh = 0;
	char buf[256], a[32], b2[96] = "";

	if (b == NULL || b->type != MSGPACK_OBJECT_MAP)
		return;
	fmt_get_u64(b, "max_batch", &mb);
	fmt_get_u64(b, "chunk", &ch);
	fmt_get_u64(b, "scratch", &sc);
	fmt_size(sc, a, sizeof a);
	/* Older daemons do not say. */
	if (fmt_get_u64(b, "prefill_share", &sh) && sh > 0)
		snprintf(b2, sizeof b2, " (prefill share %" PRIu64 "%%)", sh);
	snprintf(buf, sizeof buf, "up to %" PRIu64 " sessions and %" PRIu64
	    " prompt tokens a step%s, %s of scratch", mb, ch, b2, a);
	kv_line(o, "batch", buf);
	fmt_get_u64(b, "steps", &st);
	fmt_get_u64(b, "decode_rows", &dr);
	fmt_get_u64(b, "prefill_rows", &pr);
	fmt_get_u64(b, "max_segments", &ms);
	snprintf(buf, sizeof buf, "%" PRIu64 " (%.1f generated tokens a "
	    "step, %" PRIu64 " prompt tokens, at most %" PRIu64 " jobs in "
	    "one)", st, st > 0 ? (double)dr / (double)st : 0.0, pr, ms);
	kv_line(o, "steps", buf);
}

/* The store thread: jobs not yet done, and its niceness. */
static void
status_store(struct out *o, const msgpack_object *st)
{
	uint64_t pend = 0, nice = 0;
	char buf[128];

	if (st == NULL || st->type != MSGPACK_OBJECT_MAP)
		return;	/* older daemons do not say */
	fmt_get_u64(st, "pending", &pend);
	fmt_get_u64(st, "nice", &nice);
	snprintf(buf, sizeof buf, "%" PRIu64 " job%s pending, its thread "
	    "%" PRIu64 " nicer than the daemon", pend, pend == 1 ? "" : "s",
	    nice);
	kv_line(o, "store", buf);
}

static void
text_status(struct out *o, const struct conn_msg *m)
{
	static const char *const known[] = { "id", "kind", "server", "model",
		"uptime", "sessions", "busy", "clients", "memory", "rss",
		"tokens_in", "tokens_out", "resident", "db", "batch", "store",
		NULL };
	const msgpack_object *r = &m->msg.root;
	char buf[512], a[32], b[32];
	uint64_t x = 0, y = 0;

	fmt_value(proto_map_get(r, "server"), buf, sizeof buf);
	kv_line(o, "server", buf);
	kv_line(o, "socket", o->socket);
	fmt_value(proto_map_get(r, "model"), buf, sizeof buf);
	kv_line(o, "model", buf);
	fmt_get_u64(r, "uptime", &x);
	fmt_duration(x, buf, sizeof buf);
	kv_line(o, "uptime", buf);
	status_sessions(o, r);
	fmt_value(proto_map_get(r, "clients"), buf, sizeof buf);
	kv_line(o, "clients", buf);
	fmt_size(fmt_get_u64(r, "memory", &x) ? x : 0, a, sizeof a);
	fmt_size(fmt_get_u64(r, "rss", &y) ? y : 0, b, sizeof b);
	snprintf(buf, sizeof buf, "%s in caches, %s resident", a, b);
	kv_line(o, "memory", buf);
	x = y = 0;
	fmt_get_u64(r, "tokens_in", &x);
	fmt_get_u64(r, "tokens_out", &y);
	snprintf(buf, sizeof buf, "%" PRIu64 " in, %" PRIu64 " out", x, y);
	kv_line(o, "tokens", buf);
	status_batch(o, proto_map_get(r, "batch"));
	status_store(o, proto_map_get(r, "store"));
	other_keys(o, r, known);
	fflush(o->fp);
}

static void
text_cancel(struct out *o, const struct conn_msg *m)
{
	int cancelled = 0;

	fmt_get_bool(&m->msg.root, "cancelled", &cancelled);
	if (!cancelled)
		fprintf(o->note, "sink: nothing is running in session %s\n",
		    o->session);
	else if (!o->quiet)
		fprintf(o->note, "sink: cancelled what session %s was "
		    "running\n", o->session);
}

static void
text_ok(struct out *o, enum proto_op op, const struct conn_msg *m)
{
	switch (op) {
	case PROTO_OP_HELLO:
		text_hello(o, m);
		break;
	case PROTO_OP_LIST:
		text_ls(o, m);
		break;
	case PROTO_OP_INFO:
		text_show(o, m);
		break;
	case PROTO_OP_CREATE:
		text_created(o, m);
		break;
	case PROTO_OP_STATUS:
		text_status(o, m);
		break;
	case PROTO_OP_TEMPLATES:
		text_templates(o, m);
		break;
	case PROTO_OP_CANCEL:
		text_cancel(o, m);
		break;
	case PROTO_OP_DELETE:
		if (o->verbose)
			fprintf(o->note, "sink: deleted session %s\n",
			    o->session);
		break;
	case PROTO_OP_RESET:
		out_text_reset(o, m);
		break;
	case PROTO_OP_FORK:
		out_text_forked(o, m);
		break;
	case PROTO_OP_IMPORT:
		out_text_imported(o, m);
		break;
	case PROTO_OP_EXPORT:
		out_text_exported(o, m);
		break;
	default:
		break;
	}
}

static void
text_message(struct out *o, enum proto_op op, const struct conn_msg *m)
{
	if (m->kind != PROTO_K_PROGRESS && m->kind != PROTO_K_TOKEN)
		out_progress_clear(o);
	switch (m->kind) {
	case PROTO_K_TOKEN:
		text_token(o, m);
		break;
	case PROTO_K_PROGRESS:
		text_progress(o, m);
		break;
	case PROTO_K_WARNING:
		vis_printf(o->note, o->note_tty, "sink: warning: %s\n",
		    fmt_get_str(&m->msg.root, "message") != NULL ?
		    fmt_get_str(&m->msg.root, "message") : "(no message)");
		break;
	case PROTO_K_ERROR:
		out_reply_end(o, o->tty || o->reply_nl);
		vis_printf(o->note, o->note_tty, "sink: %s: %s\n", m->code,
		    m->message);
		break;
	case PROTO_K_DONE:
		text_done(o, op, m);
		break;
	case PROTO_K_OK:
		text_ok(o, op, m);
		break;
	default:
		break;
	}
}

static void
text_fed(struct out *o, const struct out_fed *fed)
{
	char size[32];

	if (o->quiet)
		return;
	fmt_size(fed->bytes, size, sizeof size);
	fprintf(o->fp, "fed %" PRIu64 " token%s (%s) to session %s",
	    fed->tokens, fed->tokens == 1 ? "" : "s", size, o->session);
	if (fed->have_cache)
		fprintf(o->fp, "; cache holds %" PRIu64 " tokens, %" PRIu64
		    " seen, %" PRIu64 " evicted", fed->cached, fed->seen,
		    fed->evicted);
	fputc('\n', o->fp);
	fflush(o->fp);
}

const struct out_ops out_text_ops = { text_message, text_fed,
	out_text_turn, out_text_sent };
