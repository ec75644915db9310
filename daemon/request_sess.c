/*
 * request_sess: the handlers that make, show and end sessions: hello,
 * list, info, create, delete, reset; and the options of a new session
 * (cache, sampling, system prompt) that chat and complete share.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen.h"
#include "log.h"
#include "persist.h"
#include "req.h"
#include "request.h"
#include "store.h"

/*
 * System prompts are encoded on the loop thread (the pin count must be
 * known to make the session): small enough to take a few milliseconds.
 */
#define SYSTEM_MAX 65536

int
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
#define DETAIL_PAIRS 16

void
pack_detail(struct proto_out *o, const struct tmpl *tm,
    const struct session *s)
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
	proto_put_cstr(o, "template", chat_name(s->fmt));
	proto_put_cstr(o, "template_warning", tmpl_warning(tm, s->fmt));
}

static int
visible(const struct req *r, const struct session *s)
{
	return !s->dead && (s->owner == r->c->uid || r->c->uid == 0 ||
	    r->c->uid == geteuid());
}

int
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

int
op_info(struct req *r)
{
	struct session *s;
	uint64_t k = 4, total;

	if (find_session(r, &s) != 0)
		return -1;
	if (proto_get_u64(r->msg, "turns", 0, 0, 1000000, &k, r->cause) < 0)
		return bad(r);
	total = turn_count(s);
	return reply_turns(r, s, 1, (int64_t)(total > k ? total - k : 0),
	    (int64_t)k);
}

/*
 * Sampling keys of create, chat and complete; *any has bit 1 when one is
 * given, bit 2 when the seed is.
 */
int
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

	conf_seq_opts(cf, so);
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

int
system_tokens(struct req *r, int fmt, const char *text, size_t len,
    int32_t **ids, size_t *n)
{
	if (gen_system_tokens(&r->d->tmpl.c[fmt], r->d->model->tok, text, len,
	    ids, n, r->cause) != 0)
		return req_err(r, PROTO_E_INTERNAL, "%s", r->cause);
	return 0;
}

/* The chat format a new session asks for ("template"), or the default. */
static int
get_template(struct req *r, int *fmt)
{
	char buf[CHAT_NAME_MAX], names[256];
	const char *s;
	size_t len;
	int rc;

	*fmt = r->d->tmpl.dflt;
	if ((rc = proto_get_str(r->msg, "template", 0, 256, &s, &len,
	    r->cause)) < 0)
		return bad(r);
	if (rc != 0)
		return 0;
	snprintf(buf, sizeof buf, "%.*s", (int)len, s);
	if (len >= sizeof buf || (*fmt = chat_find(buf)) < 0) {
		chat_names(names, sizeof names);
		return req_err(r, PROTO_E_BAD_REQUEST, "unknown chat template "
		    "'%.*s' (%s)", (int)(len > 32 ? 32 : len), s, names);
	}
	return 0;
}

int
op_templates(struct req *r)
{
	struct proto_out *o = ok(r, 3);
	int i;

	proto_put_cstr(o, "default", chat_name(r->d->tmpl.dflt));
	proto_put_cstr(o, "model", r->d->tmpl.model_fam >= 0 ?
	    chat_name(r->d->tmpl.model_fam) : "");
	proto_pack_key(o, "templates");
	proto_pack_array(o, CHAT_N);
	for (i = 0; i < CHAT_N; i++) {
		proto_pack_map(o, 2);
		proto_put_cstr(o, "name", chat_name(i));
		proto_put_cstr(o, "description", chat_desc(i));
	}
	return reply(r);
}

int
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
	int any, fmt, answer;

	if (!proto_session_name_ok(name, len))
		return req_err(r, PROTO_E_INVALID_NAME, "session names are 1 "
		    "to 64 ASCII letters, digits, '-', '_' and '.', not "
		    "starting with '.'");
	snprintf(nm, sizeof nm, "%.*s", (int)len, name);
	if (persist_name_taken(d, name, len))
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
	if (get_template(r, &fmt) != 0)
		return -1;
	/* A template's prefix (BOS, its system block) is pinned too. */
	if ((sys_len > 0 || fmt != CHAT_PLAIN) && system_tokens(r, fmt,
	    sys_len > 0 ? sys : NULL, sys_len, &pin, &n_pin) != 0)
		return -1;
	if (n_pin == 0) {
		free(pin);
		pin = NULL;
	}
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
	(*out)->fmt = fmt;
	log_info("session '%s' created by uid %u (chat template %s)", nm,
	    (unsigned)r->c->uid, chat_name(fmt));
	persist_touch(d, *out);
	persist_budget(d, *out, 0, 0);
	/*
	 * A create is answered once its snapshot has committed (a failure
	 * is retried later): then the session is there after a crash.
	 */
	answer = persist_save_bg(d, *out, 0, with_opts ? r->c->serial : 0,
	    r->id, 1) == 0 && with_opts ? 0 : 1;
	if (pin == NULL)
		return answer;
	if ((j = job_new(NULL, *out, JOB_PREFIX)) == NULL) {
		free(pin);
		return req_err(r, PROTO_E_INTERNAL, "out of memory");
	}
	j->prefix = pin;
	j->n_prefix = n_pin;
	return enqueue(r, j) != 0 ? -1 : answer;
}

int
op_create(struct req *r)
{
	struct session *s;
	const char *name;
	size_t len;
	int rc;

	if (proto_get_str(r->msg, "name", 1, PROTO_NAME_MAX * 4, &name, &len,
	    r->cause) != 0)
		return bad(r);
	if ((rc = new_session(r, name, len, 1, &s)) <= 0)
		return rc;	/* error, or answered after the snapshot */
	proto_pack_key(ok(r, 1), "session");
	pack_detail(&r->out, &r->d->tmpl, s);
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

int
op_delete(struct req *r)
{
	struct session *s;

	if (find_session(r, &s) != 0)
		return -1;
	if (s->exporting)
		return req_err(r, PROTO_E_BUSY, "session '%s' is being "
		    "exported: wait for it", s->name);
	/*
	 * Gone from the disk first, on the store thread (after the
	 * session's snapshots queued there), then answered; a failure
	 * leaves it whole.  A running job's snapshot is still to come: the
	 * file forgets the session after it (request_job_done).
	 */
	request_stop_session(r->d, s, STOP_USER);
	s->dead = 1;
	s->del_client = r->c->serial;
	s->del_id = r->id;
	if (s->running == NULL)
		persist_delete(r->d, s);
	return 0;
}

int
op_reset(struct req *r)
{
	struct session *s;

	if (find_session(r, &s) != 0)
		return -1;
	if (s->running != NULL || s->exporting)
		return req_err(r, PROTO_E_BUSY, "session '%s' is running a "
		    "request: cancel it first", s->name);
	/* Its cache is the store thread's until its snapshots are done. */
	if (s->storing > 0)
		return park(r, s) > 0 ? 0 : -1;
	request_stop_session(r->d, s, STOP_USER);
	persist_budget(r->d, s, s->resident ? 0 : s->info.bytes,
	    s->resident ? 0 : 1);
	if (session_reset(s, r->d->model, r->cause) != 0)
		return req_err(r, PROTO_E_INTERNAL, "%s", r->cause);
	s->used = time(NULL);
	persist_touch(r->d, s);
	/* Answered {"saved"} once the snapshot has committed (or not). */
	if (persist_save_bg(r->d, s, 2, r->c->serial, r->id, 0) != 0) {
		proto_put_bool(ok(r, 1), "saved", 0);
		return reply(r);
	}
	return 0;
}

