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
#include "persist.h"
#include "proto.h"
#include "session.h"
#include "gen.h"
#include "store.h"
#include "worker.h"

#define STOP_MAX_LEN 256
/*
 * System prompts are encoded on the loop thread (the pin count must be
 * known to make the session): small enough to take a few milliseconds.
 */
#define SYSTEM_MAX 65536


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

static int
op_hello(struct req *r)
{
	struct proto_out *o;
	uint64_t v;
	const char *cl;
	size_t cll;

	if (proto_get_u64(r->msg, "proto", 1, 0, UINT32_MAX, &v, r->cause) ||
	    proto_get_str(r->msg, "client", 0, 256, &cl, &cll, r->cause) < 0)
		return bad(r);
	if (v != PROTO_MAJOR)
		return req_err(r, PROTO_E_VERSION, "protocol %llu is not "
		    "spoken here: this sinkd speaks %d.%d",
		    (unsigned long long)v, PROTO_MAJOR, PROTO_MINOR);
	o = ok(r, 8);
	proto_put_cstr(o, "fingerprint", r->d->model->fingerprint);
	proto_put_u64(o, "max_frame", (uint64_t)r->d->conf->max_frame);
	proto_put_u64(o, "max_prompt", (uint64_t)r->d->conf->max_prompt);
	proto_put_u64(o, "proto", PROTO_MAJOR);
	proto_put_u64(o, "minor", PROTO_MINOR);
	proto_put_cstr(o, "server", "sinkd " PACKAGE_VERSION);
	proto_put_cstr(o, "model", r->d->model->desc);
	proto_put_u64(o, "ctx_train", (uint64_t)r->d->model->hp.n_ctx_train);
	return reply(r);
}

const char *
state_name(const struct session *s)
{
	return s->damaged[0] != '\0' ? "damaged" : s->resident ? "loaded" :
	    "stored";
}

uint64_t
turn_count(const struct session *s)
{
	return (uint64_t)s->n_stored + s->n_turns;
}

/* The keys of a list entry: 12 pairs. */
static void
pack_summary(struct proto_out *o, const struct session *s)
{
	proto_put_cstr(o, "name", s->name);
	proto_put_cstr(o, "mode", seq_mode_name(s->info.mode));
	proto_put_u64(o, "cache", (uint64_t)s->info.n_cache);
	proto_put_u64(o, "cached", (uint64_t)s->info.n_cached);
	proto_put_u64(o, "seen", (uint64_t)s->info.n_seen);
	proto_put_u64(o, "evicted", (uint64_t)s->info.n_evicted);
	proto_put_u64(o, "turns", turn_count(s));
	proto_put_i64(o, "created", (int64_t)s->created);
	proto_put_i64(o, "used", (int64_t)s->used);
	proto_put_bool(o, "busy", s->running != NULL);
	proto_put_u64(o, "queued", (uint64_t)s->n_queued);
	proto_put_cstr(o, "state", state_name(s));
}

#define SUMMARY_PAIRS 12
#define DETAIL_PAIRS 14

void
pack_detail(struct proto_out *o, const struct session *s)
{
	proto_pack_map(o, SUMMARY_PAIRS + DETAIL_PAIRS);
	pack_summary(o, s);
	proto_put_u64(o, "sinks", (uint64_t)s->info.n_sink);
	proto_put_cstr(o, "kv", seq_kv_name(s->info.kv_type));
	proto_put_u64(o, "bytes", s->info.bytes);
	proto_put_u64(o, "token_layer_bytes", s->info.token_layer_bytes);
	proto_pack_key(o, "system");
	if (s->system != NULL)
		proto_pack_cstr(o, s->system);
	else
		proto_pack_nil(o);
	proto_put_f64(o, "temp", s->sp.temp);
	proto_put_u64(o, "top_k", (uint64_t)s->sp.top_k);
	proto_put_f64(o, "top_p", s->sp.top_p);
	proto_put_f64(o, "min_p", s->sp.min_p);
	proto_put_f64(o, "repeat_penalty", s->sp.repeat_penalty);
	proto_put_u64(o, "seed", s->sp.seed);
	proto_put_u64(o, "max_tokens", (uint64_t)s->max_tokens);
	proto_put_cstr(o, "problem", s->damaged[0] != '\0' ? s->damaged :
	    s->dirty ? "the last snapshot failed: not saved yet" : "");
	proto_put_bool(o, "saved", !s->dirty);
}

static int
visible(const struct req *r, const struct session *s)
{
	return !s->dead && (s->owner == r->c->uid || r->c->uid == 0 ||
	    r->c->uid == geteuid());
}

static int
op_list(struct req *r)
{
	struct proto_out *o = ok(r, 1);
	struct sess_table *t = &r->d->sessions;
	size_t i, n = 0;

	for (i = 0; i < t->n; i++)
		n += visible(r, t->v[i]);
	proto_pack_key(o, "sessions");
	proto_pack_array(o, n);
	for (i = 0; i < t->n; i++) {
		if (!visible(r, t->v[i]))
			continue;
		proto_pack_map(o, SUMMARY_PAIRS);
		pack_summary(o, t->v[i]);
	}
	return reply(r);
}

static int
op_info(struct req *r)
{
	struct session *s;
	struct proto_out *o;
	struct tlist l;
	uint64_t k = 4, total;

	if (find_session(r, &s) != 0)
		return -1;
	if (proto_get_u64(r->msg, "turns", 0, 0, 1000000, &k, r->cause) < 0)
		return bad(r);
	total = turn_count(s);
	if (get_turns(r, s, (int64_t)(total > k ? total - k : 0), (int64_t)k,
	    &l) != 0)
		return -1;
	o = ok(r, 2);
	proto_pack_key(o, "session");
	pack_detail(o, s);
	proto_pack_key(o, "recent");
	pack_turns(o, &l);
	tlist_free(&l);
	return reply(r);
}

/*
 * Sampling keys of create, chat and complete; *any has bit 1 when one is
 * given, bit 2 when the seed is.
 */
static int
get_sampling(struct req *r, struct sampler_params *sp, int *any)
{
	double f;
	uint64_t u;
	int rc;

	*any = 0;
#define F(key, field, lo, hi) \
	if ((rc = proto_get_f64(r->msg, key, 0, lo, hi, &f, r->cause)) < 0) \
		return bad(r); \
	if (rc == 0) { sp->field = (float)f; *any = 1; }
	F("temp", temp, 0.0, 100.0)
	F("top_p", top_p, 0.0, 1.0)
	F("min_p", min_p, 0.0, 1.0)
	F("repeat_penalty", repeat_penalty, 0.0, 100.0)
#undef F
	if ((rc = proto_get_u64(r->msg, "top_k", 0, 0, 1 << 24, &u,
	    r->cause)) < 0)
		return bad(r);
	if (rc == 0) {
		sp->top_k = (int32_t)u;
		*any = 1;
	}
	if ((rc = proto_get_u64(r->msg, "seed", 0, 0, UINT64_MAX, &u,
	    r->cause)) < 0)
		return bad(r);
	if (rc == 0) {
		sp->seed = u;
		*any |= 2; /* a seed of its own: a reproducible turn */
	}
	if (sampler_check(sp, r->cause) != 0)
		return bad(r);
	return 0;
}

static int
get_cache_opts(struct req *r, struct seq_opts *so)
{
	const struct conf *cf = r->d->conf;
	const char *s;
	size_t len;
	uint64_t u;
	char buf[16];
	int rc;

	seq_opts_default(so);
	so->n_cache = (int32_t)cf->cache;
	if (cf->mode != NULL)
		seq_mode_parse(cf->mode, &so->mode);
	if (cf->kv != NULL)
		seq_kv_parse(cf->kv, &so->kv_type);
	if ((rc = proto_get_str(r->msg, "mode", 0, 15, &s, &len, r->cause)) < 0)
		return bad(r);
	if (rc == 0 && (snprintf(buf, sizeof buf, "%.*s", (int)len, s),
	    seq_mode_parse(buf, &so->mode) != 0))
		return req_err(r, PROTO_E_BAD_REQUEST, "unknown mode '%s' "
		    "(streaming, window, recompute, dense)", buf);
	if ((rc = proto_get_str(r->msg, "kv", 0, 15, &s, &len, r->cause)) < 0)
		return bad(r);
	if (rc == 0 && (snprintf(buf, sizeof buf, "%.*s", (int)len, s),
	    seq_kv_parse(buf, &so->kv_type) != 0))
		return req_err(r, PROTO_E_BAD_REQUEST, "unknown kv type '%s' "
		    "(f32, f16)", buf);
	if ((rc = proto_get_u64(r->msg, "cache", 0, 1, SEQ_MAX_CACHE, &u,
	    r->cause)) < 0)
		return bad(r);
	if (rc == 0)
		so->n_cache = (int32_t)u;
	so->n_sink = so->mode == SEQ_STREAMING ? (int32_t)cf->sinks : -1;
	if ((rc = proto_get_u64(r->msg, "sinks", 0, 0, SEQ_MAX_CACHE, &u,
	    r->cause)) < 0)
		return bad(r);
	if (rc == 0)
		so->n_sink = (int32_t)u;
	return 0;
}

/* BOS, then the system prompt in the chat format: the pinned prefix. */
int
system_tokens(struct req *r, const char *text, size_t len, int32_t **ids,
    size_t *n)
{
	const struct tok *tk = r->d->model->tok;
	size_t tl = strlen(GEN_SYSTEM_HEAD) + len + 2;
	char *t = malloc(tl);
	int rc;

	if (t == NULL)
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	tl = (size_t)snprintf(t, tl, "%s%.*s\n", GEN_SYSTEM_HEAD, (int)len,
	    text);
	rc = tok_encode(tk, t, tl, tok_add_bos(tk) && tok_bos(tk) >= 0, ids,
	    n, r->cause);
	free(t);
	if (rc != 0)
		return req_err(r, PROTO_E_INTERNAL, "%s", r->cause);
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

static int
new_session(struct req *r, const char *name, size_t len, int with_opts,
    struct session **out)
{
	struct daemon *d = r->d;
	struct seq_opts so;
	struct sampler_params sp;
	const char *sys = NULL;
	size_t sys_len = 0, n_pin = 0;
	int32_t *pin = NULL;
	uint64_t mt = (uint64_t)d->conf->max_tokens;
	char nm[PROTO_NAME_MAX + 1];
	struct job *j;
	int any;

	if (!proto_session_name_ok(name, len))
		return req_err(r, PROTO_E_INVALID_NAME, "session names are 1 "
		    "to 64 ASCII letters, digits, '-', '_' and '.', not "
		    "starting with '.'");
	snprintf(nm, sizeof nm, "%.*s", (int)len, name);
	if (sess_find(&d->sessions, name, len) != NULL)
		return req_err(r, PROTO_E_EXISTS, "session '%s' exists", nm);
	sampler_defaults(&sp);
	if (get_cache_opts(r, &so) != 0)
		return -1;
	if (with_opts && (get_sampling(r, &sp, &any) != 0 ||
	    proto_get_u64(r->msg, "max_tokens", 0, 1,
	    (uint64_t)d->conf->max_tokens, &mt, r->cause) < 0 ||
	    proto_get_str(r->msg, "system", 0, SYSTEM_MAX, &sys, &sys_len,
	    r->cause) < 0))
		return bad(r);
	if (sys_len > 0 && memchr(sys, '\0', sys_len) != NULL)
		return req_err(r, PROTO_E_BAD_REQUEST, "key 'system' holds "
		    "a NUL byte");
	if (sys_len > 0 && system_tokens(r, sys, sys_len, &pin, &n_pin) != 0)
		return -1;
	so.n_pin = (int32_t)(n_pin < SEQ_MAX_CACHE ? n_pin : SEQ_MAX_CACHE);
	if (seq_check_opts(d->model, &so, r->cause) != 0) {
		free(pin);
		return bad(r);
	}
	*out = session_new(d->model, nm, r->c->uid, &so, &sp, (int32_t)mt,
	    sys_len > 0 ? sys : NULL, r->cause);
	if (*out == NULL || sess_add(&d->sessions, *out, r->cause) != 0) {
		session_free(*out);
		free(pin);
		return req_err(r, PROTO_E_INTERNAL, "%s", r->cause);
	}
	log_info("session '%s' created by uid %u", nm, (unsigned)r->c->uid);
	persist_touch(d, *out);
	persist_budget(d, *out, 0, 0);
	persist_save(d, *out, 0, NULL); /* a failure is retried later */
	if (pin == NULL)
		return 0;
	if ((j = job_new(NULL, *out, JOB_PREFIX)) == NULL) {
		free(pin);
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	}
	j->prefix = pin;
	j->n_prefix = n_pin;
	return enqueue(r, j);
}

static int
op_create(struct req *r)
{
	struct session *s;
	const char *name;
	size_t len;

	if (proto_get_str(r->msg, "name", 1, PROTO_NAME_MAX * 4, &name, &len,
	    r->cause) != 0)
		return bad(r);
	if (new_session(r, name, len, 1, &s) != 0)
		return -1;
	proto_pack_key(ok(r, 1), "session");
	pack_detail(&r->out, s);
	return reply(r);
}

/* Stops the running job; drops the queued ones with error cancelled. */
void
request_stop_session(struct daemon *d, struct session *s, int why)
{
	struct job *j, *n;
	struct client *c;
	struct proto_out o;

	if (s->running != NULL)
		atomic_store(&s->running->stop, why);
	proto_out_init(&o);
	for (j = s->queue; j != NULL; j = n) {
		n = j->next;
		if (j->client != 0 && (c = client_find(d, j->client)) != NULL) {
			proto_encode_error(&o, j->id, PROTO_E_CANCELLED,
			    "session '%s' was deleted, reset or shut down",
			    s->name);
			send_out(c, &o, j->id);
		}
		job_free(j);
	}
	proto_out_free(&o);
	s->queue = s->queue_tail = NULL;
	s->n_queued = 0;
}

static int
op_delete(struct req *r)
{
	struct session *s;

	if (find_session(r, &s) != 0)
		return -1;
	if (s->exporting)
		return req_err(r, PROTO_E_BUSY, "session '%s' is being "
		    "exported: wait for it", s->name);
	/* Gone from the disk first: a failure leaves it whole. */
	if (s->running == NULL && persist_delete(r->d, s, r->cause) != 0)
		return req_err(r, PROTO_E_STORE, "session '%s' could not be "
		    "deleted from the database: %s", s->name, r->cause);
	request_stop_session(r->d, s, STOP_USER);
	log_info("session '%s' deleted", s->name);
	if (s->running != NULL)
		s->dead = 1; /* freed when its job ends */
	else {
		sess_remove(&r->d->sessions, s);
		session_free(s);
	}
	ok(r, 0);
	return reply(r);
}

static int
op_reset(struct req *r)
{
	struct session *s;

	if (find_session(r, &s) != 0)
		return -1;
	if (s->running != NULL || s->exporting)
		return req_err(r, PROTO_E_BUSY, "session '%s' is running a "
		    "request: cancel it first", s->name);
	request_stop_session(r->d, s, STOP_USER);
	persist_budget(r->d, s, s->resident ? 0 : s->info.bytes,
	    s->resident ? 0 : 1);
	if (session_reset(s, r->d->model, r->cause) != 0)
		return req_err(r, PROTO_E_INTERNAL, "%s", r->cause);
	s->used = time(NULL);
	persist_touch(r->d, s);
	proto_put_bool(ok(r, 1), "saved", persist_save(r->d, s, 2, NULL) == 0);
	return reply(r);
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
	    (s == NULL && new_session(r, name, len, 0, &s) != 0) ||
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
	struct proto_out *o = ok(r, 12);
	size_t i, busy = 0, resident;
	uint64_t mem = persist_resident(d, &resident);

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
	proto_put_u64(o, "rss", daemon_rss());
	proto_put_u64(o, "tokens_in", d->tokens_in);
	proto_put_u64(o, "tokens_out", d->tokens_out);
	proto_put_cstr(o, "db", d->conf->db);
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

void
request_handle(struct client *c, const uint8_t *body, size_t len)
{
	struct proto_msg msg;
	struct req r = { .d = c->d, .c = c, .msg = &msg };

	proto_out_init(&r.out);
	if (proto_msg_parse(&msg, body, len, r.cause) != 0) {
		proto_out_free(&r.out);
		client_fail(c, PROTO_E_BAD_REQUEST, r.cause);
		return;
	}
	c->d->requests++;
	if (dispatch(&r) != 0) {
		proto_encode_error(&r.out, r.id, r.code, "%s", r.cause);
		send_out(c, &r.out, r.id);
	}
	proto_msg_free(&msg);
	proto_out_free(&r.out);
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
	    j->text, j->text_len, j->toks, j->fed, NULL);
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
	s->info = j->info;
	if (!j->failed)
		s->chatted = j->chatted;
	if (j->kind == JOB_REBUILD && !j->failed) {
		s->damaged[0] = '\0';
		s->foreign = 0;
	}
	if (j->saved) {
		s->n_stored += (int64_t)(s->n_turns + j->n_saved_turns);
		session_drop_turns(s);
		s->dirty = 0;
	} else {
		if (!j->failed)
			record(s, j);
		s->dirty = 1;
	}
	persist_budget(d, NULL, 0, 0);
}

void
request_job_done(struct daemon *d, struct job *j)
{
	struct session *s = j->s;
	char cause[ERR_LEN];

	s->running = NULL;
	d->n_jobs--;
	settle(d, s, j);
	s->used = time(NULL);
	d->tokens_in += j->fed;
	send_outcome(d, j);
	job_free(j);
	if (!s->dead)
		daemon_run_next(d, s);
	else if (s->queue == NULL) {
		if (persist_delete(d, s, cause) != 0)
			log_error("session '%s' deleted, but not from the "
			    "database: %s", s->name, cause);
		sess_remove(&d->sessions, s);
		session_free(s);
	}
}
