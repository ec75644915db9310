/*
 * snap: see snap.h.
 *
 * options blob: {"v": 1, "mode", "cache", "sinks" (as asked, -1: the
 * mode's default), "pin", "kv", "temp", "top_k", "top_p", "min_p",
 * "repeat_penalty", "repeat_last_n", "seed", "max_tokens", "system"
 * (absent: none)}.
 * state blob: {"v": 1, "seen", "cached", "evicted", "sinks" (in effect),
 * "bytes", "token_layer_bytes", "chatted", "text_below" (turns below
 * it hold another model's ids: a rebuild encodes their text), "rng"
 * (4 x u64 LE), "hist"
 * (the penalty history, int32 LE oldest first), "tokens" (the token in
 * each cache slot, int32 LE)}.
 * A reader ignores keys it does not know; a "v" above SNAP_VERSION is
 * refused.
 */
#include "snap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "proto.h"

#define BLOB_MAX (1u << 30)
#define SYSTEM_BLOB_MAX (1u << 24)

/* n int32 as stored (store_ids_put): a malloc'd buffer. */
static uint8_t *
ids_le(const int32_t *v, size_t n)
{
	uint8_t *b = malloc(n * 4 + 1);

	if (b != NULL)
		store_ids_put(b, v, n);
	return b;
}

/* The sampler's random state as eight stored int32, low half first. */
static void
rng_put(uint8_t r[32], const uint64_t rng[4])
{
	int32_t h[8];
	int i;

	for (i = 0; i < 4; i++) {
		h[2 * i] = (int32_t)(uint32_t)rng[i];
		h[2 * i + 1] = (int32_t)(uint32_t)(rng[i] >> 32);
	}
	store_ids_put(r, h, 8);
}

static void
rng_get(uint64_t rng[4], const uint8_t r[32])
{
	int32_t h[8];
	int i;

	store_ids_get(h, r, 8);
	for (i = 0; i < 4; i++)
		rng[i] = (uint64_t)(uint32_t)h[2 * i] |
		    (uint64_t)(uint32_t)h[2 * i + 1] << 32;
}

static void
pack_options(struct proto_out *o, const struct session *s)
{
	proto_pack_map(o, s->system != NULL ? 15 : 14);
	proto_put_u64(o, "v", SNAP_VERSION);
	proto_put_cstr(o, "mode", seq_mode_name(s->so.mode));
	proto_put_u64(o, "cache", (uint64_t)s->so.n_cache);
	proto_put_i64(o, "sinks", s->so.n_sink);
	proto_put_u64(o, "pin", (uint64_t)s->so.n_pin);
	proto_put_cstr(o, "kv", seq_kv_name(s->so.kv_type));
	proto_put_f64(o, "temp", s->sp.temp);
	proto_put_u64(o, "top_k", (uint64_t)s->sp.top_k);
	proto_put_f64(o, "top_p", s->sp.top_p);
	proto_put_f64(o, "min_p", s->sp.min_p);
	proto_put_f64(o, "repeat_penalty", s->sp.repeat_penalty);
	proto_put_u64(o, "repeat_last_n", (uint64_t)s->sp.repeat_last_n);
	proto_put_u64(o, "seed", s->sp.seed);
	proto_put_u64(o, "max_tokens", (uint64_t)s->max_tokens);
	if (s->system != NULL)
		proto_put_cstr(o, "system", s->system);
}

static int
pack_state(struct proto_out *o, const struct session *s, int chatted,
    char *cause)
{
	struct seq_info si;
	uint64_t rng[4];
	uint8_t r[32], *hist, *toks;
	int32_t *h;
	size_t nh;

	seq_get_info(s->seq, &si);
	sampler_rng_get(s->smp, rng);
	rng_put(r, rng);
	h = malloc(((size_t)s->sp.repeat_last_n + 1) * sizeof *h);
	if (h == NULL)
		return err_set(cause, "out of memory");
	nh = sampler_hist(s->smp, h);
	hist = ids_le(h, nh);
	toks = ids_le(seq_tokens(s->seq), (size_t)si.n_cache);
	free(h);
	if (hist == NULL || toks == NULL) {
		free(hist);
		free(toks);
		return err_set(cause, "out of memory");
	}
	proto_pack_map(o, 12);
	proto_put_u64(o, "v", SNAP_VERSION);
	proto_put_i64(o, "seen", si.n_seen);
	proto_put_u64(o, "cached", (uint64_t)si.n_cached);
	proto_put_i64(o, "evicted", si.n_evicted);
	proto_put_u64(o, "sinks", (uint64_t)si.n_sink);
	proto_put_u64(o, "bytes", si.bytes);
	proto_put_u64(o, "token_layer_bytes", si.token_layer_bytes);
	proto_put_bool(o, "chatted", chatted);
	proto_put_i64(o, "text_below", s->text_below);
	proto_put_bin(o, "rng", r, sizeof r);
	proto_put_bin(o, "hist", hist, nh * 4);
	proto_put_bin(o, "tokens", toks, (size_t)si.n_cache * 4);
	free(hist);
	free(toks);
	return 0;
}

/* The body (the map, without the frame's length) of a finished out. */
static int
body(struct proto_out *o, const void **b, size_t *len, char *cause)
{
	const char *data;
	size_t n;

	if (proto_out_finish(o, BLOB_MAX, &data, &n, cause) != 0)
		return -1;
	*b = data + 4;
	*len = n - 4;
	return 0;
}

int
snap_row(const struct session *s, const struct model *m, int chatted,
    struct store_row *r, struct proto_out *opt, struct proto_out *state,
    char *cause)
{
	memset(r, 0, sizeof *r);
	snprintf(r->name, sizeof r->name, "%s", s->name);
	r->owner = (uint32_t)s->owner;
	r->created = (int64_t)s->created;
	r->used = (int64_t)time(NULL);
	snprintf(r->fingerprint, sizeof r->fingerprint, "%s", m->fingerprint);
	snprintf(r->tmpl, sizeof r->tmpl, "%s", chat_name(s->fmt));
	pack_options(opt, s);
	if (pack_state(state, s, chatted, cause) != 0 ||
	    body(opt, &r->options, &r->options_len, cause) != 0 ||
	    body(state, &r->state, &r->state_len, cause) != 0)
		return -1;
	return 0;
}

int
snap_save(struct store *st, const struct model *m, struct session *s,
    int chatted, const struct store_turn *extra, size_t n_extra,
    int replace, uint64_t *bytes, char *cause)
{
	struct proto_out opt, state;
	struct store_row row;
	struct store_turn *t;
	struct store_snap sn;
	size_t n = s->n_turns + n_extra, i;
	int rc = -1;

	/* A reset or rebuild whose snapshot failed is still owed. */
	if (s->replace > replace)
		replace = s->replace;

	if ((t = calloc(n + 1, sizeof *t)) == NULL)
		return err_set(cause, "out of memory");
	for (i = 0; i < s->n_turns; i++) {
		t[i].role = (int)s->turns[i].role;
		t[i].text = s->turns[i].text;
		t[i].len = s->turns[i].len;
		t[i].toks = s->turns[i].toks;
		t[i].n_toks = s->turns[i].n_toks;
	}
	if (n_extra > 0)
		memcpy(t + s->n_turns, extra, n_extra * sizeof *t);
	proto_out_init(&opt);
	proto_out_init(&state);
	if (snap_row(s, m, chatted, &row, &opt, &state, cause) == 0) {
		sn = (struct store_snap){ .row = &row, .seq = s->seq,
			.n_layer = m->hp.n_layer,
			.replace = replace, .turns = t, .n_turns = n,
			.first_turn = replace == 2 ? 0 : s->n_stored };
		if ((rc = store_save(st, &sn, bytes, cause)) == 0)
			seq_clean(s->seq);
	}
	s->replace = rc == 0 ? 0 : replace;
	proto_out_free(&opt);
	proto_out_free(&state);
	free(t);
	return rc;
}

/* Parses a blob and checks its version. */
static int
blob_parse(struct proto_msg *msg, const void *b, size_t len,
    const char *what, char *cause)
{
	char why[ERR_LEN];
	uint64_t v;

	if (proto_msg_parse(msg, b, len, why) != 0)
		return err_set(cause, "its %s do not parse: %s", what, why);
	if (proto_get_u64(msg, "v", 1, 1, UINT32_MAX, &v, why) != 0) {
		proto_msg_free(msg);
		return err_set(cause, "its %s: %s", what, why);
	}
	if (v > SNAP_VERSION) {
		proto_msg_free(msg);
		return err_set(cause, "its %s are of version %llu, newer than "
		    "this sinkd's %d", what, (unsigned long long)v,
		    SNAP_VERSION);
	}
	return 0;
}

static int
get_name(const struct proto_msg *msg, const char *key, char *buf,
    size_t size, char *cause)
{
	const char *s;
	size_t len;

	if (proto_get_str(msg, key, 1, size - 1, &s, &len, cause) != 0)
		return -1;
	snprintf(buf, size, "%.*s", (int)len, s);
	return 0;
}

/* The options blob into so, sp, max_tokens and *system (malloc'd). */
static int
parse_options(const void *b, size_t len, struct seq_opts *so,
    struct sampler_params *sp, int32_t *max_tokens, char **system,
    char *cause)
{
	struct proto_msg msg;
	char mode[16], kv[16], why[ERR_LEN];
	uint64_t cache, pin, top_k, last_n, seed, mt;
	int64_t sinks;
	double temp, top_p, min_p, rp;
	const char *sys;
	size_t sl;
	int rc;

	*system = NULL;
	if (blob_parse(&msg, b, len, "options", cause) != 0)
		return -1;
	seq_opts_default(so);
	sampler_defaults(sp);
	if (get_name(&msg, "mode", mode, sizeof mode, why) ||
	    get_name(&msg, "kv", kv, sizeof kv, why) ||
	    proto_get_u64(&msg, "cache", 1, 1, SEQ_MAX_CACHE, &cache, why) ||
	    proto_get_i64(&msg, "sinks", 1, -1, SEQ_MAX_CACHE, &sinks, why) ||
	    proto_get_u64(&msg, "pin", 1, 0, SEQ_MAX_CACHE, &pin, why) ||
	    proto_get_f64(&msg, "temp", 1, 0, 100, &temp, why) ||
	    proto_get_u64(&msg, "top_k", 1, 0, 1 << 24, &top_k, why) ||
	    proto_get_f64(&msg, "top_p", 1, 0, 1, &top_p, why) ||
	    proto_get_f64(&msg, "min_p", 1, 0, 1, &min_p, why) ||
	    proto_get_f64(&msg, "repeat_penalty", 1, 0, 100, &rp, why) ||
	    proto_get_u64(&msg, "repeat_last_n", 1, 0, 1 << 20, &last_n,
	    why) || proto_get_u64(&msg, "seed", 1, 0, UINT64_MAX, &seed,
	    why) || proto_get_u64(&msg, "max_tokens", 1, 1, INT32_MAX, &mt,
	    why) || (rc = proto_get_str(&msg, "system", 0, SYSTEM_BLOB_MAX,
	    &sys, &sl, why)) < 0) {
		proto_msg_free(&msg);
		return err_set(cause, "its options: %s", why);
	}
	if (seq_mode_parse(mode, &so->mode) != 0 ||
	    seq_kv_parse(kv, &so->kv_type) != 0) {
		proto_msg_free(&msg);
		return err_set(cause, "its options name mode '%s' and kv '%s'",
		    mode, kv);
	}
	so->n_cache = (int32_t)cache;
	so->n_sink = (int32_t)sinks;
	so->n_pin = (int32_t)pin;
	sp->temp = (float)temp;
	sp->top_k = (int32_t)top_k;
	sp->top_p = (float)top_p;
	sp->min_p = (float)min_p;
	sp->repeat_penalty = (float)rp;
	sp->repeat_last_n = (int32_t)last_n;
	sp->seed = seed;
	*max_tokens = (int32_t)mt;
	if (rc == 0 && (*system = strndup(sys, sl)) == NULL) {
		proto_msg_free(&msg);
		return err_set(cause, "out of memory");
	}
	proto_msg_free(&msg);
	return 0;
}

/* What a listing shows of a stored session: its info and chat state. */
static int
parse_summary(const void *b, size_t len, struct session *s, char *cause)
{
	struct proto_msg msg;
	char why[ERR_LEN];
	uint64_t cached, sinks, bytes, tlb;
	int64_t seen, evicted;
	int chatted;

	if (blob_parse(&msg, b, len, "state", cause) != 0)
		return -1;
	if (proto_get_i64(&msg, "seen", 1, 0, INT64_MAX, &seen, why) ||
	    proto_get_u64(&msg, "cached", 1, 0, SEQ_MAX_CACHE, &cached, why) ||
	    proto_get_i64(&msg, "evicted", 1, 0, INT64_MAX, &evicted, why) ||
	    proto_get_u64(&msg, "sinks", 1, 0, SEQ_MAX_CACHE, &sinks, why) ||
	    proto_get_u64(&msg, "bytes", 1, 0, UINT64_MAX, &bytes, why) ||
	    proto_get_u64(&msg, "token_layer_bytes", 1, 0, UINT32_MAX, &tlb,
	    why) || proto_get_bool(&msg, "chatted", 1, &chatted, why) ||
	    proto_get_i64(&msg, "text_below", 0, 0, INT64_MAX, &s->text_below,
	    why) < 0) {
		proto_msg_free(&msg);
		return err_set(cause, "its state: %s", why);
	}
	s->info.mode = s->so.mode;
	s->info.kv_type = s->so.kv_type;
	s->info.n_cache = s->so.n_cache;
	s->info.n_sink = (int32_t)sinks;
	s->info.n_cached = (int32_t)cached;
	s->info.n_seen = seen;
	s->info.n_evicted = evicted;
	s->info.bytes = bytes;
	s->info.token_layer_bytes = (size_t)tlb;
	s->chatted = chatted;
	proto_msg_free(&msg);
	return 0;
}

struct session *
snap_from_row(const struct model *m, const struct store_row *r,
    int64_t n_turns, char *cause)
{
	struct seq_opts so;
	struct sampler_params sp;
	int32_t mt = 1;
	char *sys = NULL, why[ERR_LEN] = "";
	struct session *s;
	int bad;

	bad = parse_options(r->options, r->options_len, &so, &sp, &mt, &sys,
	    why) != 0;
	if (bad) {
		seq_opts_default(&so);
		sampler_defaults(&sp);
	}
	s = session_stored(r->name, (uid_t)r->owner, &so, &sp, mt, sys, cause);
	free(sys);
	if (s == NULL)
		return NULL;
	s->created = (time_t)r->created;
	s->used = (time_t)r->used;
	s->n_stored = n_turns;
	/* Rows before schema 2 read 'plain': their turns are in it. */
	s->fmt = chat_find(r->tmpl[0] != '\0' ? r->tmpl : "plain");
	if (!bad && s->fmt < 0) {
		bad = 1;
		s->fmt = CHAT_PLAIN;
		snprintf(why, sizeof why, "its chat template '%.31s' is not one "
		    "this sinkd knows", r->tmpl);
	}
	if (!bad)
		bad = parse_summary(r->state, r->state_len, s, why) != 0;
	if (bad)
		snprintf(s->damaged, sizeof s->damaged, "the stored session "
		    "cannot be read: %.200s", why);
	else if (m != NULL && strcmp(r->fingerprint, m->fingerprint) != 0) {
		s->foreign = 1;
		snprintf(s->damaged, sizeof s->damaged, "it was made with "
		    "another model (fingerprint %.12s, this sinkd's model is "
		    "%.12s)", r->fingerprint, m->fingerprint);
	}
	return s;
}

int
snap_restore_state(struct session *s, const struct model *m, const void *b,
    size_t len, char *cause)
{
	struct proto_msg msg;
	char why[ERR_LEN];
	const uint8_t *rng, *hist, *toks;
	size_t rl, hl, tl, i, n = (size_t)s->so.n_cache;
	uint64_t r[4];
	int64_t seen;
	int32_t *ids = NULL;
	int rc = -1;

	if (blob_parse(&msg, b, len, "state", cause) != 0)
		return -1;
	if (proto_get_i64(&msg, "seen", 1, 0, INT64_MAX, &seen, why) ||
	    proto_get_bin(&msg, "rng", 1, 32, (const void **)&rng, &rl, why) ||
	    proto_get_bin(&msg, "hist", 1, 4 * (size_t)s->sp.repeat_last_n,
	    (const void **)&hist, &hl, why) || proto_get_bin(&msg, "tokens",
	    1, 4 * n, (const void **)&toks, &tl, why)) {
		err_set(cause, "its state: %s", why);
		goto out;
	}
	if (rl != 32 || tl != 4 * n || hl % 4 != 0) {
		err_set(cause, "its state holds %zu slot tokens for a cache of "
		    "%zu", tl / 4, n);
		goto out;
	}
	if ((ids = malloc(n * sizeof *ids + 1)) == NULL) {
		err_set(cause, "out of memory");
		goto out;
	}
	store_ids_get(ids, toks, n);
	if (seq_restore(s->seq, seen, ids, why) != 0) {
		err_set(cause, "its state: %s", why);
		goto out;
	}
	rng_get(r, rng);
	sampler_rng_set(s->smp, r);
	for (i = 0; i < hl / 4; i++) {
		int32_t id;
		store_ids_get(&id, hist + 4 * i, 1);
		if (id < 0 || id >= m->hp.n_vocab) {
			err_set(cause, "its penalty history holds token %d",
			    id);
			goto out;
		}
		sampler_accept(s->smp, id);
	}
	rc = 0;
out:
	free(ids);
	proto_msg_free(&msg);
	return rc;
}

int
snap_load(struct store *st, const struct model *m, struct session *s,
    char *cause)
{
	struct store_row r;
	void *opt = NULL, *state = NULL;
	char why[ERR_LEN];
	int rc;

	if ((rc = store_load_row(st, s->name, &r, &opt, &state, why)) != 0) {
		err_set(cause, "%s", rc == 1 ? "it is not in the store" : why);
		return -1;
	}
	rc = -1;
	if (strcmp(r.fingerprint, m->fingerprint) != 0) {
		err_set(cause, "it was made with another model (fingerprint "
		    "%.12s, this sinkd's model is %.12s)", r.fingerprint,
		    m->fingerprint);
		goto out;
	}
	if ((s->seq = seq_new(m, &s->so, why)) == NULL ||
	    (s->smp = sampler_new(&s->sp, m->hp.n_vocab, why)) == NULL) {
		err_set(cause, "%s", why);
		goto out;
	}
	if (store_load_chunks(st, s->name, s->seq, m->hp.n_layer, cause) != 0 ||
	    snap_restore_state(s, m, r.state, r.state_len, cause) != 0)
		goto out;
	seq_clean(s->seq);
	rc = 0;
out:
	if (rc != 0)
		session_unload(s);
	free(opt);
	free(state);
	return rc;
}
