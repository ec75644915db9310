/*
 * request: see request.h.  Every handler returns 0 once it has replied
 * (or handed the request to the worker, which replies at the end), or
 * -1 with an error code and message, which request_handle sends.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "request.h"
#include "req.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "daemon.h"
#include "job.h"
#include "log.h"
#include "mem.h"
#include "persist.h"
#include "proto.h"
#include "session.h"
#include "gen.h"
#include "store.h"
#include "storeq.h"
#include "worker.h"

#define STOP_MAX_LEN 256


int
req_err(struct req *r, enum proto_err code, const char *fmt, ...)
{
	char buf[sizeof r->cause];
	va_list ap;

	/* Through buf: the arguments may point into r->cause itself. */
	r->code = code;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	memcpy(r->cause, buf, sizeof buf);
	return -1;
}

/* Key errors from proto's accessors are bad requests. */
int
bad(struct req *r)
{
	r->code = PROTO_E_BAD_REQUEST;
	return -1;
}

/* The largest reply: far above any request, bounded all the same. */

/*
 * Sends a finished message about request id.  One that cannot be
 * encoded (over REPLY_MAX: a huge transcript, say) becomes an error for
 * the same id, so that the client is never left waiting.
 */
void
send_out(struct client *c, struct proto_out *o, uint64_t id)
{
	const char *data;
	size_t len;
	char cause[ERR_LEN];

	if (proto_out_finish(o, REPLY_MAX, &data, &len, cause) == 0) {
		client_send(c, data, len);
		return;
	}
	log_warn("reply to %llu not sent: %s", (unsigned long long)id, cause);
	proto_encode_error(o, id, PROTO_E_TOO_LARGE, "the reply would be "
	    "over %u bytes: ask for less", REPLY_MAX);
	if (proto_out_finish(o, REPLY_MAX, &data, &len, NULL) == 0)
		client_send(c, data, len);
}

/* Starts an ok reply with n more pairs; reply() sends it. */
struct proto_out *
ok(struct req *r, size_t n)
{
	proto_out_reset(&r->out);
	proto_encode_head(&r->out, r->id, PROTO_K_OK, n);
	return &r->out;
}

int
reply(struct req *r)
{
	send_out(r->c, &r->out, r->id);
	return 0;
}

/* The named session, if this client may use it. */
int
find_session(struct req *r, struct session **sp)
{
	const char *name;
	size_t len;

	if (proto_get_str(r->msg, "name", 1, PROTO_NAME_MAX * 4, &name, &len,
	    r->cause) != 0)
		return bad(r);
	*sp = sess_find(&r->d->sessions, name, len);
	if (*sp == NULL || (*sp)->dead || ((*sp)->owner != r->c->uid &&
	    r->c->uid != 0 && r->c->uid != geteuid()))
		return req_err(r, PROTO_E_NO_SUCH_SESSION, "no session "
		    "named '%.*s'", (int)(len > 64 ? 64 : len), name);
	return 0;
}

struct job *
job_new(struct req *r, struct session *s, enum job_kind kind)
{
	struct job *j = calloc(1, sizeof *j);

	if (j == NULL)
		return NULL;
	j->client = r != NULL ? r->c->serial : 0;
	j->id = r != NULL ? r->id : 0;
	j->kind = kind;
	j->s = s;
	j->max_tokens = s != NULL ? s->max_tokens : 0;
	atomic_init(&j->stop, STOP_NONE);
	return j;
}

/* Queues j behind its session's running job; busy when the queue is full. */
int
enqueue(struct req *r, struct job *j)
{
	struct session *s = j->s;

	if ((s->running != NULL || s->queue != NULL) &&
	    s->n_queued >= r->d->conf->max_queue) {
		job_free(j);
		return req_err(r, PROTO_E_BUSY, "session '%s' is busy (%d "
		    "requests waiting)", s->name, s->n_queued);
	}
	if (s->queue_tail != NULL)
		s->queue_tail->next = j;
	else
		s->queue = j;
	s->queue_tail = j;
	s->n_queued++;
	daemon_run_next(r->d, s);
	return 0;
}

/*
 * The keys of a turn into j; sampling overrides start from base.  No
 * side effect but j, so that a refused turn changes nothing.
 */
static int
turn_keys(struct req *r, struct job *j, const struct sampler_params *base,
    int32_t base_mt)
{
	const char *text, *st[JOB_MAX_STOPS];
	size_t tlen, sl[JOB_MAX_STOPS], ns = 0, i;
	uint64_t mt = (uint64_t)base_mt;

	if (proto_get_str(r->msg, "text", 1, SIZE_MAX, &text, &tlen,
	    r->cause) != 0)
		return bad(r);
	if (tlen > (size_t)r->d->conf->max_prompt)
		return req_err(r, PROTO_E_TOO_LARGE, "text of %zu bytes: the "
		    "limit is %ld (max-prompt)", tlen, r->d->conf->max_prompt);
	if (tlen == 0)
		return req_err(r, PROTO_E_BAD_REQUEST, "key 'text' is empty");
	j->sp = *base;
	if (j->kind != JOB_FEED && (get_sampling(r, &j->sp, &j->sp_override) ||
	    proto_get_u64(r->msg, "max_tokens", 0, 1,
	    (uint64_t)r->d->conf->max_tokens, &mt, r->cause) < 0 ||
	    proto_get_str_array(r->msg, "stop", JOB_MAX_STOPS, STOP_MAX_LEN,
	    st, sl, &ns, r->cause) < 0 || proto_get_bool(r->msg,
	    "ignore_eos", 0, &j->ignore_eos, r->cause) < 0))
		return bad(r);
	j->max_tokens = (int32_t)mt;
	for (i = 0; i < ns; i++) {
		if (sl[i] == 0 || memchr(st[i], '\0', sl[i]) != NULL)
			return req_err(r, PROTO_E_BAD_REQUEST, "stop string "
			    "%zu is empty or holds a NUL byte", i + 1);
		if ((j->stops[i] = strndup(st[i], sl[i])) == NULL)
			return req_err(r, PROTO_E_INTERNAL, "out of memory");
		j->n_stops++;
	}
	if ((j->text = malloc(tlen + 1)) == NULL)
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	memcpy(j->text, text, tlen);
	j->text[tlen] = '\0';
	j->text_len = tlen;
	return 0;
}

/* A damaged session takes no turns until rebuilt or reset. */
int
usable(struct req *r, const struct session *s)
{
	if (s->damaged[0] == '\0')
		return 0;
	return req_err(r, PROTO_E_DAMAGED, "session '%s' is damaged: %s; "
	    "'sink rebuild %s' re-encodes it from its transcript, 'sink "
	    "reset %s' empties it", s->name, s->damaged, s->name, s->name);
}

/*
 * chat, complete and feed: a job for the worker; it replies at the end.
 * With create, the session is made only once every key has passed.
 */
static int
start_turn(struct req *r, enum job_kind kind)
{
	struct session *s;
	struct sampler_params def;
	const char *name;
	size_t len;
	int create = 0;
	struct job *j;

	if (proto_get_str(r->msg, "name", 1, PROTO_NAME_MAX * 4, &name, &len,
	    r->cause) != 0 || proto_get_bool(r->msg, "create", 0, &create,
	    r->cause) < 0)
		return bad(r);
	s = sess_find(&r->d->sessions, name, len);
	if ((s == NULL || s->dead) && !create)
		return find_session(r, &s);
	sampler_defaults(&def);
	if ((j = job_new(r, NULL, kind)) == NULL)
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	/* A new session's defaults are these; an old one's its own. */
	if (turn_keys(r, j, s != NULL ? &s->sp : &def, s != NULL ?
	    s->max_tokens : (int32_t)r->d->conf->max_tokens) != 0 ||
	    (s == NULL && new_session(r, name, len, 0, &s) < 0) ||
	    find_session(r, &s) != 0 || usable(r, s) != 0) {
		job_free(j);
		return -1;
	}
	j->s = s;
	return enqueue(r, j);
}

static int
op_chat(struct req *r)
{
	return start_turn(r, JOB_CHAT);
}

static int
op_complete(struct req *r)
{
	return start_turn(r, JOB_COMPLETE);
}

static int
op_feed(struct req *r)
{
	return start_turn(r, JOB_FEED);
}

/*
 * Removes this client's queued request `target` from whatever session
 * holds it, telling it so; 1 if there was one.
 */
static int
unqueue(struct req *r, uint64_t target)
{
	struct sess_table *t = &r->d->sessions;
	struct job **pp, *j, *victim;
	size_t i;

	for (i = 0; i < t->n; i++) {
		struct session *s = t->v[i];
		for (pp = &s->queue; (victim = *pp) != NULL;
		    pp = &victim->next) {
			if (victim->client != r->c->serial ||
			    victim->id != target)
				continue;
			*pp = victim->next;
			s->n_queued--;
			s->queue_tail = NULL;
			for (j = s->queue; j != NULL; j = j->next)
				s->queue_tail = j;
			proto_encode_error(&r->out, target, PROTO_E_CANCELLED,
			    "cancelled before it started");
			send_out(r->c, &r->out, target);
			job_free(victim);
			return 1;
		}
	}
	return 0;
}

static int
op_cancel(struct req *r)
{
	struct sess_table *t = &r->d->sessions;
	struct session *s;
	uint64_t target;
	int rc, done = 0;
	size_t i;

	if ((rc = proto_get_u64(r->msg, "target", 0, 1, PROTO_ID_MAX, &target,
	    r->cause)) < 0)
		return bad(r);
	if (rc == 1) { /* by session name: whatever it runs */
		if (find_session(r, &s) != 0)
			return -1;
		if ((done = s->running != NULL))
			atomic_store(&s->running->stop, STOP_USER);
	} else {
		for (i = 0; i < t->n && !done; i++) {
			struct job *j = t->v[i]->running;
			if (j != NULL && j->client == r->c->serial &&
			    j->id == target) {
				atomic_store(&j->stop, STOP_USER);
				done = 1;
			}
		}
		if (!done)
			done = unqueue(r, target);
	}
	proto_pack_key(ok(r, 1), "cancelled");
	proto_pack_bool(&r->out, done);
	return reply(r);
}

static int
op_status(struct req *r)
{
	struct daemon *d = r->d;
	struct proto_out *o = ok(r, 14);
	size_t i, busy = 0, resident;
	uint64_t mem = persist_resident(d, &resident);
	struct worker_stats ws;
	struct storeq_stats ss;

	for (i = 0; i < d->sessions.n; i++)
		busy += d->sessions.v[i]->running != NULL;
	proto_put_cstr(o, "server", "sinkd " PACKAGE_VERSION);
	proto_put_cstr(o, "model", d->model->desc);
	proto_put_u64(o, "uptime", (uint64_t)(time(NULL) - d->started));
	proto_put_u64(o, "sessions", d->sessions.n);
	proto_put_u64(o, "resident", resident);
	proto_put_u64(o, "clients", (uint64_t)d->n_clients);
	proto_put_u64(o, "busy", busy);
	proto_put_u64(o, "memory", mem);
	proto_put_u64(o, "rss", mem_rss());
	proto_put_u64(o, "tokens_in", d->tokens_in);
	proto_put_u64(o, "tokens_out", d->tokens_out);
	proto_put_cstr(o, "db", d->conf->db);
	/* The scheduler: its bounds and what it has done. */
	worker_get_stats(d->worker, &ws);
	proto_pack_key(o, "batch");
	proto_pack_map(o, 9);
	proto_put_u64(o, "max_batch", (uint64_t)ws.max_batch);
	proto_put_u64(o, "chunk", (uint64_t)ws.chunk);
	proto_put_u64(o, "prefill_share", (uint64_t)ws.prefill_share);
	proto_put_u64(o, "scratch", ws.scratch);
	proto_put_u64(o, "steps", ws.steps);
	proto_put_u64(o, "decode_rows", ws.decode_rows);
	proto_put_u64(o, "prefill_rows", ws.prefill_rows);
	proto_put_u64(o, "max_segments", ws.max_segments);
	proto_put_u64(o, "max_rows", ws.max_rows);
	/* The store thread: its backlog, and how far it yields the cores. */
	proto_pack_key(o, "store");
	proto_pack_map(o, 2);
	storeq_get_stats(d->storeq, &ss);
	proto_put_u64(o, "pending", ss.pending);
	proto_put_u64(o, "nice", (uint64_t)ss.niced);
	return reply(r);
}

static int
op_shutdown(struct req *r)
{
	ok(r, 0);
	reply(r);
	log_info("shutdown requested by uid %u", (unsigned)r->c->uid);
	daemon_stop(r->d, "shutdown request");
	return 0;
}

static const struct {
	enum proto_op op;
	req_fn *fn;
} req_table[] = {
	{ PROTO_OP_HELLO, op_hello },
	{ PROTO_OP_CREATE, op_create },
	{ PROTO_OP_LIST, op_list },
	{ PROTO_OP_INFO, op_info },
	{ PROTO_OP_DELETE, op_delete },
	{ PROTO_OP_RESET, op_reset },
	{ PROTO_OP_CHAT, op_chat },
	{ PROTO_OP_COMPLETE, op_complete },
	{ PROTO_OP_FEED, op_feed },
	{ PROTO_OP_CANCEL, op_cancel },
	{ PROTO_OP_STATUS, op_status },
	{ PROTO_OP_SHUTDOWN, op_shutdown },
	{ PROTO_OP_LOG, op_log },
	{ PROTO_OP_REBUILD, op_rebuild },
	{ PROTO_OP_FORK, op_fork },
	{ PROTO_OP_EXPORT, op_export },
	{ PROTO_OP_IMPORT, op_import },
	{ PROTO_OP_TEMPLATES, op_templates },
};

#define N_REQ (sizeof req_table / sizeof req_table[0])

const char *const *
request_ops(void)
{
	static const char *names[N_REQ + 1];
	size_t i;

	for (i = 0; i < N_REQ; i++)
		names[i] = proto_op_name(req_table[i].op);
	return names;
}

static int
dispatch(struct req *r)
{
	const char *op;
	size_t len, i;
	enum proto_op o;

	if (proto_get_u64(r->msg, "id", 1, 1, PROTO_ID_MAX, &r->id, r->cause))
		return bad(r);
	if (proto_get_str(r->msg, "op", 1, 32, &op, &len, r->cause) != 0)
		return bad(r);
	if (proto_op_parse(op, len, &o) != 0)
		return req_err(r, PROTO_E_UNKNOWN_OP, "unknown op '%.*s'",
		    (int)len, op);
	if (r->d->stopping && o != PROTO_OP_STATUS)
		return req_err(r, PROTO_E_INTERNAL, "sinkd is shutting down");
	for (i = 0; i < N_REQ; i++)
		if (req_table[i].op == o)
			return req_table[i].fn(r);
	return req_err(r, PROTO_E_UNKNOWN_OP, "op '%s' is not served here",
	    proto_op_name(o));
}

static void
handle(struct client *c, const uint8_t *body, size_t len)
{
	struct proto_msg msg;
	struct req r = { .d = c->d, .c = c, .msg = &msg, .body = body,
		.body_len = len };

	proto_out_init(&r.out);
	if (proto_msg_parse(&msg, body, len, r.cause) != 0) {
		proto_out_free(&r.out);
		client_fail(c, PROTO_E_BAD_REQUEST, r.cause);
		return;
	}
	if (dispatch(&r) != 0) {
		proto_encode_error(&r.out, r.id, r.code, "%s", r.cause);
		send_out(c, &r.out, r.id);
	}
	proto_msg_free(&msg);
	proto_out_free(&r.out);
}

void
request_handle(struct client *c, const uint8_t *body, size_t len)
{
	c->d->requests++;
	handle(c, body, len);
}

void
request_redo(struct client *c, const uint8_t *body, size_t len)
{
	if (!c->closing)
		handle(c, body, len);
}

int
park(struct req *r, struct session *s)
{
	struct parked *p = calloc(1, sizeof *p), **t;

	if (p == NULL || (p->body = malloc(r->body_len + 1)) == NULL) {
		free(p);
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	}
	memcpy(p->body, r->body, r->body_len);
	p->len = r->body_len;
	p->client = r->c->serial;
	for (t = &s->parked; *t != NULL; t = &(*t)->next)
		;
	*t = p;
	return 1;
}

void
request_unpark(struct daemon *d, struct session *s)
{
	struct parked *p = s->parked, *n;
	struct client *c;

	/* In order; one that has to wait again parks behind. */
	s->parked = NULL;
	for (; p != NULL; p = n) {
		n = p->next;
		if ((c = client_find(d, p->client)) != NULL && !c->closing)
			handle(c, p->body, p->len);
		free(p->body);
		free(p);
	}
}

/* {"id", "kind": "progress", "done": tokens, "total": tokens} */
static void
send_progress(struct client *c, const struct job *j, size_t done)
{
	struct proto_out o;

	proto_out_init(&o);
	proto_encode_head(&o, j->id, PROTO_K_PROGRESS, 2);
	proto_put_u64(&o, "done", done);
	proto_put_u64(&o, "total", j->n_prompt);
	send_out(c, &o, j->id);
	proto_out_free(&o);
}

void
request_job_event(struct daemon *d, struct job *j, int kind, char *text,
    size_t len, int32_t token)
{
	struct client *c = j->client != 0 ? client_find(d, j->client) : NULL;
	struct proto_out o;

	if (c == NULL || c->closing)
		return;
	if (kind == PROTO_K_PROGRESS) {
		send_progress(c, j, len);
		return;
	}
	if (len > 0)
		proto_utf8_sanitize(text, len);
	proto_out_init(&o);
	proto_encode_head(&o, j->id, (enum proto_kind)kind, kind ==
	    PROTO_K_TOKEN ? 2 : 1);
	proto_pack_key(&o, kind == PROTO_K_TOKEN ? "text" : "message");
	proto_pack_str(&o, len > 0 ? text : "", len);
	if (kind == PROTO_K_TOKEN) {
		proto_put_i64(&o, "token", token);
		d->tokens_out++;
	}
	send_out(c, &o, j->id);
	proto_out_free(&o);
	if (client_queued(c) > (size_t)d->conf->max_output &&
	    atomic_load(&j->stop) == STOP_NONE) {
		log_warn("client %llu reads too slowly: request %llu "
		    "cancelled", (unsigned long long)c->serial,
		    (unsigned long long)j->id);
		atomic_store(&j->stop, STOP_OVERFLOW);
	}
}

static void
pack_usage(struct proto_out *o, const struct job *j)
{
	double pf = j->t_prefill > 0 ? j->t_prefill : 1e-9;
	double dc = j->t_decode > 0 ? j->t_decode : 1e-9;

	proto_pack_map(o, 13);
	proto_put_u64(o, "prompt_tokens", j->fed);
	proto_put_u64(o, "generated_tokens", (uint64_t)j->generated);
	proto_put_u64(o, "cached_tokens", (uint64_t)j->info.n_cached);
	proto_put_u64(o, "evicted_tokens", (uint64_t)j->info.n_evicted);
	proto_put_u64(o, "seen_tokens", (uint64_t)j->info.n_seen);
	proto_put_f64(o, "prefill_ms", j->t_prefill * 1e3);
	proto_put_f64(o, "decode_ms", j->t_decode * 1e3);
	proto_put_f64(o, "prefill_tps", (double)j->fed / pf);
	proto_put_f64(o, "decode_tps", (double)j->generated / dc);
	proto_put_f64(o, "load_ms", j->t_load * 1e3);
	proto_put_bool(o, "saved", j->saved);
	proto_put_f64(o, "save_ms", j->t_save * 1e3);
	proto_put_u64(o, "saved_bytes", j->save_bytes);
}

static void
send_outcome(struct daemon *d, struct job *j)
{
	struct client *c = j->client != 0 ? client_find(d, j->client) : NULL;
	struct proto_out o;

	if (j->failed && j->client == 0)
		log_error("session '%s': %s", j->s->name, j->err);
	if (c == NULL)
		return;
	proto_out_init(&o);
	if (j->failed)
		proto_encode_error(&o, j->id, j->err_code, "%s", j->err);
	else if (atomic_load(&j->stop) == STOP_OVERFLOW)
		proto_encode_error(&o, j->id, PROTO_E_OVERFLOW, "more than "
		    "%ld bytes of output went unread: the reply was cancelled",
		    d->conf->max_output);
	else {
		proto_encode_head(&o, j->id, PROTO_K_DONE, 2);
		proto_put_cstr(&o, "finish", proto_finish_name(j->finish));
		proto_pack_key(&o, "usage");
		pack_usage(&o, j);
	}
	send_out(c, &o, j->id);
	proto_out_free(&o);
}

/*
 * The job's turns, when its snapshot could not store them, wait in
 * memory for the next one.  (gen.c has made the reply valid UTF-8.)
 */
static void
record(struct session *s, const struct job *j)
{
	if (j->kind == JOB_PREFIX || j->kind == JOB_REBUILD)
		return;
	session_add_turn(s, j->kind == JOB_CHAT ? ROLE_USER : ROLE_CONTEXT,
	    j->text, j->text_len, j->toks + j->n_sys, j->fed > j->n_sys ?
	    j->fed - j->n_sys : 0, NULL);
	if (j->kind == JOB_FEED || j->reply == NULL)
		return;
	session_add_turn(s, ROLE_ASSISTANT, j->reply, j->reply_len, j->gen,
	    j->n_gen, NULL);
}

/* What the job's end means for its session and the store. */
static void
settle(struct daemon *d, struct session *s, const struct job *j)
{
	if (j->load_failed) {
		snprintf(s->damaged, sizeof s->damaged, "%s", j->why);
		s->resident = 0;
		return;
	}
	if (s->seq != NULL)
		seq_get_info(s->seq, &s->info);
	if (!j->failed)
		s->chatted = j->chatted;
	if (j->kind == JOB_REBUILD && !j->failed) {
		s->damaged[0] = '\0';
		s->foreign = 0;
	}
	if (j->saved)
		session_saved(s, j->n_saved_turns);
	else if (!(j->kind == JOB_REBUILD && j->failed)) {
		/* (A rebuild that failed left the session as it was.) */
		if (!j->failed)
			record(s, j);
		s->dirty = 1;
	}
	if (s->seq == NULL)
		s->resident = 0;
	persist_budget(d, NULL, 0, 0);
}

void
request_job_done(struct daemon *d, struct job *j)
{
	struct session *s = j->s;

	s->running = NULL;
	d->n_jobs--;
	settle(d, s, j);
	s->used = time(NULL);
	d->tokens_in += j->fed;
	send_outcome(d, j);
	job_free(j);
	/* A delete that waited for the job: gone from the file, then ok. */
	if (!s->dead)
		daemon_run_next(d, s);
	else
		persist_delete(d, s);
}
