/*
 * gen: see gen.h.  Text reaches the client as soon as it cannot be the
 * start of a stop string and ends on a whole UTF-8 character, so a stop
 * string is never shown and a character is never split between events.
 */
#include "gen.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "session.h"
#include "snap.h"
#include "store.h"

#define REBUILD_PAGE 64	/* stored turns read at a time by a rebuild */

double
gen_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int
gen_init(struct gen *g, const struct model *m, const struct tmpl *tm,
    struct store *st, int threads, int32_t n_batch, char *cause)
{
	memset(g, 0, sizeof *g);
	g->m = m;
	g->tm = tm;
	g->store = st;
	g->n_batch = n_batch;
	if ((g->pool = pool_new(threads, cause)) == NULL ||
	    (g->work = seq_work_new(m, g->n_batch, cause)) == NULL) {
		gen_free(g);
		return -1;
	}
	return 0;
}

void
gen_free(struct gen *g)
{
	seq_work_free(g->work);
	pool_free(g->pool);
	g->work = NULL;
	g->pool = NULL;
}

static int
fail(struct job *j, enum proto_err code, const char *why)
{
	j->failed = 1;
	j->err_code = code;
	snprintf(j->err, sizeof j->err, "%s", why);
	return GEN_DONE;
}

/* The session's chat format. */
static const struct chat *
chat_of(const struct gen *g, const struct session *s)
{
	return &g->tm->c[s->fmt >= 0 && s->fmt < CHAT_N ? s->fmt : CHAT_PLAIN];
}

/*
 * A user turn in chat format c: the end of the reply before it (unless
 * first), the user's block and the generation prompt, with BOS first
 * when bos.
 */
static int
user_tokens(const struct chat *c, const struct tok *tk, const char *sys,
    const char *text, size_t len, int first, int bos, int32_t **ids,
    size_t *n, char *cause)
{
	struct chat_buf b = { 0 };
	int rc;

	if (chat_user(c, sys, text, len, first, &b) != 0)
		rc = err_set(cause, "out of memory");
	else
		rc = chat_encode(tk, &b, bos, ids, n, cause);
	chat_buf_free(&b);
	return rc;
}

/* A reply's text as its chat format has it in the conversation. */
static int
reply_tokens(const struct chat *c, const struct tok *tk, const char *text,
    size_t len, int32_t **ids, size_t *n, char *cause)
{
	struct chat_buf b = { 0 };
	int rc;

	if (chat_reply(c, text, len, &b) != 0)
		rc = err_set(cause, "out of memory");
	else
		rc = chat_encode(tk, &b, 0, ids, n, cause);
	chat_buf_free(&b);
	return rc;
}

/* A rebuild's turns, newest first, until they fill the cache. */
struct recent {
	int32_t **toks;		/* each turn's ids */
	size_t *n, count, cap;
	size_t take, budget;	/* their tokens, and room for them */
	const struct tok *tk;	/* encodes turns whose ids are another's */
	const struct chat *c;	/* in the session's chat format */
	const char *sys;
	int64_t text_below;	/* those: below it, or all with foreign */
	int foreign;
};

/* Takes a turn's ids; 1 once the cache is full, -1 out of memory. */
static int
recent_add(struct recent *r, const int32_t *t, size_t n)
{
	int32_t **tv;
	size_t *nv, cap;

	if (r->count == r->cap) {
		cap = r->cap ? r->cap * 2 : 64;
		if ((tv = realloc(r->toks, cap * sizeof *tv)) == NULL)
			return -1;
		r->toks = tv;
		if ((nv = realloc(r->n, cap * sizeof *nv)) == NULL)
			return -1;
		r->n = nv;
		r->cap = cap;
	}
	if ((r->toks[r->count] = malloc(n * sizeof *t + 1)) == NULL)
		return -1;
	if (n > 0)
		memcpy(r->toks[r->count], t, n * sizeof *t);
	r->n[r->count++] = n;
	r->take += n;
	return r->take >= r->budget;
}

/*
 * A stored turn n.  One of another model holds that model's ids: its
 * text is encoded again, a user turn and a reply in the session's chat
 * format as gen did.
 */
static int
recent_turn(struct recent *r, int64_t n, const struct store_turn *t)
{
	int32_t *ids = NULL;
	size_t k = 0;
	int rc;

	if (!r->foreign && n >= r->text_below)
		return recent_add(r, t->toks, t->n_toks);
	if (t->role == ROLE_USER)
		rc = user_tokens(r->c, r->tk, r->sys, t->text, t->len, n == 0,
		    0, &ids, &k, NULL);
	else if (t->role == ROLE_ASSISTANT && r->c->fam != CHAT_PLAIN)
		rc = reply_tokens(r->c, r->tk, t->text, t->len, &ids, &k,
		    NULL);
	else
		rc = tok_encode(r->tk, t->text, t->len, 0, &ids, &k, NULL);
	if (rc == 0)
		rc = recent_add(r, ids, k);
	free(ids);
	return rc;
}

/* A page of stored turns, oldest first as the store gives them. */
struct page {
	struct store_turn t[REBUILD_PAGE];
	int32_t *ids[REBUILD_PAGE];
	char *text[REBUILD_PAGE];
	int64_t first;
	size_t count;
};

static int
page_turn(void *arg, int64_t n, const struct store_turn *t)
{
	struct page *p = arg;
	size_t i = p->count;

	p->ids[i] = malloc(t->n_toks * sizeof *t->toks + 1);
	p->text[i] = malloc(t->len + 1);
	if (p->ids[i] == NULL || p->text[i] == NULL) {
		free(p->ids[i]);
		free(p->text[i]);
		return -1;
	}
	memcpy(p->ids[i], t->toks, t->n_toks * sizeof *t->toks);
	memcpy(p->text[i], t->text, t->len);
	p->t[i] = *t;
	p->t[i].toks = p->ids[i];
	p->t[i].text = p->text[i];
	if (p->count++ == 0)
		p->first = n;
	return 0;
}

static void
page_free(struct page *p)
{
	size_t i;

	for (i = 0; i < p->count; i++) {
		free(p->ids[i]);
		free(p->text[i]);
	}
	p->count = 0;
}

/*
 * The stored turns before `end`, newest first, a page at a time, until
 * the cache is full: a long transcript is not read for its tail.
 */
static int
recent_stored(struct gen *g, const struct session *s, struct recent *r,
    int64_t end, char *cause)
{
	struct page *p = calloc(1, sizeof *p);
	int64_t from;
	size_t i;
	int rc = 0;

	if (p == NULL)
		return err_set(cause, "out of memory");
	for (; rc == 0 && end > 0; end = from) {
		from = end > REBUILD_PAGE ? end - REBUILD_PAGE : 0;
		if (store_turns(g->store, s->name, from, end - from, page_turn,
		    p, cause) != 0) {
			rc = -1;
			break;
		}
		for (i = p->count; rc == 0 && i > 0; i--)
			rc = recent_turn(r, p->first + (int64_t)i - 1,
			    &p->t[i - 1]);
		page_free(p);
	}
	free(p);
	if (rc < 0 && cause[0] == '\0')
		err_set(cause, "out of memory");
	return rc < 0 ? -1 : 0;
}

static void
recent_free(struct recent *r)
{
	size_t i;

	for (i = 0; i < r->count; i++)
		free(r->toks[i]);
	free(r->toks);
	free(r->n);
}

/*
 * A rebuild's tokens: the pinned prefix, then the most recent turns
 * that fit in the cache with it (the oldest of them cut to its end).
 */
static int
rebuild_tokens(struct gen *g, struct job *j, char *cause)
{
	const struct session *s = j->s;
	struct recent r = { .tk = g->m->tok, .foreign = s->foreign,
		.text_below = s->text_below, .c = chat_of(g, s),
		.sys = s->system };
	size_t i, k, at;
	int rc = 0;

	r.budget = (size_t)s->so.n_cache > j->n_prefix ?
	    (size_t)s->so.n_cache - j->n_prefix : 0;
	/* The turns in memory are the newest; then the stored ones. */
	for (i = s->n_turns; rc == 0 && i > 0 && r.budget > 0; i--)
		rc = recent_add(&r, s->turns[i - 1].toks,
		    s->turns[i - 1].n_toks);
	/* (Only the stored turns that are the transcript, not a reset's.) */
	if (rc == 0 && r.budget > 0 && s->replace != 2)
		rc = recent_stored(g, s, &r, s->n_stored, cause);
	if (rc < 0 || (j->toks = malloc((j->n_prefix + r.budget) *
	    sizeof *j->toks + 1)) == NULL) {
		if (cause[0] == '\0')
			err_set(cause, "out of memory");
		recent_free(&r);
		return -1;
	}
	if (j->n_prefix > 0)
		memcpy(j->toks, j->prefix, j->n_prefix * sizeof *j->toks);
	j->n_toks = j->n_prefix + (r.take < r.budget ? r.take : r.budget);
	/* Newest first, filling from the end. */
	at = j->n_toks;
	for (i = 0; i < r.count && at > j->n_prefix; i++) {
		k = r.n[i] < at - j->n_prefix ? r.n[i] : at - j->n_prefix;
		at -= k;
		memcpy(j->toks + at, r.toks[i] + r.n[i] - k,
		    k * sizeof *j->toks);
	}
	j->n_rebuilt_turns = i;
	recent_free(&r);
	return 0;
}

int
gen_system_tokens(const struct chat *c, const struct tok *tk,
    const char *text, size_t len, int32_t **ids, size_t *n, char *cause)
{
	struct chat_buf b = { 0 };
	int rc;

	if (chat_prefix(c, text, len, &b) != 0)
		rc = err_set(cause, "out of memory");
	else
		rc = chat_encode(tk, &b, chat_tok_bos(c, tk), ids, n, cause);
	chat_buf_free(&b);
	return rc;
}

/*
 * A session whose system prompt never made it into the cache (its job
 * cancelled, or sinkd killed before that job's snapshot): the prompt
 * goes first, ahead of the turn's own tokens.
 */
static int
prepend_system(const struct tok *tk, struct job *j, char *cause)
{
	const char *st = j->s->system;
	int32_t *sys = NULL, *all;
	size_t ns = 0;

	if (gen_system_tokens(j->chat, tk, st, st != NULL ? strlen(st) : 0,
	    &sys, &ns, cause) != 0)
		return -1;
	if ((all = malloc((ns + j->n_toks) * sizeof *all + 1)) == NULL) {
		free(sys);
		return err_set(cause, "out of memory");
	}
	memcpy(all, sys, ns * sizeof *all);
	if (j->n_toks > 0)
		memcpy(all + ns, j->toks, j->n_toks * sizeof *all);
	free(sys);
	free(j->toks);
	j->toks = all;
	j->n_toks += ns;
	j->n_sys = ns;
	return 0;
}

/* The tokens to prefill: the formatted turn, BOS first on a new stream. */
static int
encode(struct gen *g, struct job *j, char *cause)
{
	const struct tok *tk = g->m->tok;
	const struct session *s = j->s;
	struct seq_info si;
	int bos, pre, rc;

	if (j->kind == JOB_PREFIX) {
		j->toks = j->prefix;
		j->n_toks = j->n_prefix;
		j->prefix = NULL;
		return 0;
	}
	if (j->kind == JOB_REBUILD)
		return rebuild_tokens(g, j, cause);
	seq_get_info(s->seq, &si);
	/*
	 * A new stream starts with the pinned prefix: the system prompt's,
	 * or a template's own (its BOS, a default system block).
	 */
	pre = si.n_seen == 0 && (s->system != NULL ||
	    (j->chat->fam != CHAT_PLAIN && j->kind == JOB_CHAT));
	bos = si.n_seen == 0 && !pre && tok_add_bos(tk) && tok_bos(tk) >= 0;
	if (j->kind == JOB_CHAT)
		rc = user_tokens(j->chat, tk, s->system, j->text, j->text_len,
		    !s->chatted, bos, &j->toks, &j->n_toks, cause);
	else
		rc = tok_encode(tk, j->text, j->text_len, bos, &j->toks,
		    &j->n_toks, cause);
	if (rc == 0 && pre)
		rc = prepend_system(tk, j, cause);
	return rc;
}

/* A rebuild that failed: the session's cache and sampler as they were. */
static void
rebuild_undo(struct job *j)
{
	struct session *s = j->s;

	if (!j->swapped)
		return;
	j->swapped = 0;
	seq_free(s->seq);
	sampler_free(s->smp);
	s->seq = j->old_seq;
	s->smp = j->old_smp;
	j->old_seq = NULL;
	j->old_smp = NULL;
}

/* A rebuild starts from a new, empty cache; others from the stored one. */
static int
load(struct gen *g, struct job *j)
{
	struct session *s = j->s;
	char cause[3 * ERR_LEN] = "", why[ERR_LEN];

	if (j->kind == JOB_REBUILD) {
		/* The old cache stays aside until the new one is whole. */
		j->old_seq = s->seq;
		j->old_smp = s->smp;
		j->swapped = 1;
		if ((s->seq = seq_new(g->m, &s->so, cause)) == NULL ||
		    (s->smp = sampler_new(&s->sp, g->m->hp.n_vocab,
		    cause)) == NULL) {
			rebuild_undo(j);
			return fail(j, PROTO_E_INTERNAL, cause);
		}
		return GEN_MORE;
	}
	if (s->seq != NULL)
		return GEN_MORE;
	j->t_load = gen_now();
	if (snap_load(g->store, g->m, s, why) != 0) {
		j->load_failed = 1;
		snprintf(j->why, sizeof j->why, "%s", why);
		snprintf(cause, sizeof cause, "session '%s' cannot be loaded: "
		    "%s; 'sink rebuild %s' re-encodes it from its transcript, "
		    "'sink reset %s' empties it", s->name, why, s->name,
		    s->name);
		log_error("%s", cause);
		return fail(j, PROTO_E_DAMAGED, cause);
	}
	j->t_load = gen_now() - j->t_load;
	return GEN_MORE;
}

static int
start(struct gen *g, struct job *j)
{
	char cause[ERR_LEN] = "";
	const struct session *s = j->s;
	size_t i;

	if (load(g, j) != GEN_MORE) {
		j->t_start = gen_now();
		return GEN_DONE;
	}
	j->t_start = gen_now();	/* after the load: it has its own figure */
	j->chatted = s->chatted || j->kind == JOB_CHAT;
	j->chat = chat_of(g, s);
	if (j->kind == JOB_CHAT && j->chat->fam != CHAT_PLAIN)
		j->n_end_ids = chat_stop_ids(j->chat, g->m->tok, j->end_ids,
		    sizeof j->end_ids / sizeof j->end_ids[0]);
	/*
	 * Test hook: with SINKD_TEST_EOT_AFTER=N a template's chat turn
	 * samples its end-of-turn token after N tokens (a random model
	 * would not), so that a test sees what ends a reply.
	 */
	j->eot_after = getenv("SINKD_TEST_EOT_AFTER") != NULL ?
	    atoi(getenv("SINKD_TEST_EOT_AFTER")) : -1;
	if (encode(g, j, cause) != 0)
		return fail(j, PROTO_E_INTERNAL, cause);
	j->n_prompt = j->n_toks;
	if (j->n_toks == 0 && j->kind == JOB_REBUILD) {
		j->finish = PROTO_F_FED;
		return GEN_DONE;
	}
	if (j->n_toks == 0)
		return fail(j, PROTO_E_BAD_REQUEST, "the text encodes to no "
		    "tokens");
	j->logits = malloc((size_t)g->m->hp.n_vocab * sizeof(float));
	if (j->logits == NULL)
		return fail(j, PROTO_E_INTERNAL, "out of memory");
	if (j->sp_override) {
		uint64_t rng[4];

		if ((j->tmp_smp = sampler_new(&j->sp, g->m->hp.n_vocab,
		    cause)) == NULL)
			return fail(j, PROTO_E_BAD_REQUEST, cause);
		if (!(j->sp_override & 2)) {
			sampler_rng_get(s->smp, rng);
			sampler_rng_set(j->tmp_smp, rng);
		}
	}
	for (i = 0; i < j->n_toks; i++) /* the penalty sees the prompt */
		sampler_accept(j->tmp_smp != NULL ? j->tmp_smp : s->smp,
		    j->toks[i]);
	return GEN_MORE;
}

static int
generates(const struct job *j)
{
	return j->kind == JOB_CHAT || j->kind == JOB_COMPLETE;
}

static int
reply_append(struct job *j, const char *s, size_t n)
{
	size_t cap;
	char *r;

	if (j->reply_len + n + 1 > j->reply_cap) {
		cap = (j->reply_len + n + 1) * 2;
		if ((r = realloc(j->reply, cap)) == NULL)
			return -1;
		j->reply = r;
		j->reply_cap = cap;
	}
	memcpy(j->reply + j->reply_len, s, n);
	j->reply_len += n;
	j->reply[j->reply_len] = '\0';
	return 0;
}

/*
 * The job's stop strings, with the chat format's own for chat turns (a
 * template's end-of-turn markers, for a vocabulary without them).
 */
#define STOPS_MAX (JOB_MAX_STOPS + 4)
static size_t
stops(const struct job *j, const char **v)
{
	size_t n = 0, i;

	if (j->kind == JOB_CHAT)
		n = chat_stops(j->chat, v);
	for (i = 0; i < j->n_stops; i++)
		v[n++] = j->stops[i];
	return n;
}

/* Where the first stop string starts in reply[from..], or -1. */
static long
find_stop(const struct job *j, size_t from)
{
	const char *v[STOPS_MAX], *p;
	size_t n = stops(j, v), i;
	long best = -1;

	for (i = 0; i < n; i++) {
		p = memmem(j->reply + from, j->reply_len - from, v[i],
		    strlen(v[i]));
		if (p != NULL && (best < 0 || p - j->reply < best))
			best = p - j->reply;
	}
	return best;
}

/* reply[sent..end) may go out: no stop string can start in the rest. */
static size_t
releasable(const struct job *j)
{
	const char *v[STOPS_MAX];
	size_t n = stops(j, v), end = j->reply_len, i, k, l;
	const unsigned char *r = (const unsigned char *)j->reply;

	for (i = 0; i < n; i++) {
		l = strlen(v[i]);
		for (k = l - 1; k > 0; k--) {
			if (k <= j->reply_len - j->sent && memcmp(j->reply +
			    j->reply_len - k, v[i], k) == 0) {
				if (j->reply_len - k < end)
					end = j->reply_len - k;
				break;
			}
		}
	}
	/* Back off over an unfinished UTF-8 character. */
	for (k = 0; k < 3 && end > j->sent + k; k++) {
		unsigned char c = r[end - 1 - k];
		if ((c & 0xc0) != 0x80) {
			l = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
			if (l > k + 1)
				end -= k + 1;
			break;
		}
	}
	return end;
}

/* The ids of the reply, for the transcript. */
static int
gen_push(struct job *j, int32_t id)
{
	size_t cap;
	int32_t *g;

	if (j->n_gen == j->cap_gen) {
		cap = j->cap_gen ? j->cap_gen * 2 : 64;
		if ((g = realloc(j->gen, cap * sizeof *g)) == NULL)
			return -1;
		j->gen = g;
		j->cap_gen = cap;
	}
	j->gen[j->n_gen++] = id;
	return 0;
}

/* Sends what may go out of the reply with token id. */
static void
release(struct job *j, size_t end, int32_t id, gen_emit_fn *emit, void *arg)
{
	emit(arg, j, PROTO_K_TOKEN, j->reply + j->sent, end - j->sent, id);
	j->sent = end;
}

/* A template's end-of-turn token: the reply is over, and never shown. */
static int
end_id(const struct job *j, int32_t id)
{
	size_t i;

	for (i = 0; i < j->n_end_ids; i++)
		if (j->end_ids[i] == id)
			return 1;
	return 0;
}

/*
 * A generating job's token: sampled from the logits of the last step,
 * sent as far as stop strings allow, and left in next_id for the step
 * to evaluate.
 */
static int
sample(struct gen *g, struct job *j, gen_emit_fn *emit, void *arg)
{
	struct sampler *smp = j->tmp_smp != NULL ? j->tmp_smp : j->s->smp;
	const struct tok *tk = g->m->tok;
	char piece[256];
	int32_t id;
	long at;
	int n;

	if (j->generated >= j->max_tokens) {
		j->finish = PROTO_F_LENGTH;
		return GEN_DONE;
	}
	id = sampler_sample(smp, j->logits);
	if (j->n_end_ids > 0 && j->eot_after >= 0 &&
	    j->generated >= j->eot_after)
		id = j->end_ids[j->n_end_ids - 1];
	if ((id == tok_eos(tk) || id == tok_bos(tk) || end_id(j, id)) &&
	    !j->ignore_eos) {
		j->finish = PROTO_F_EOS;
		return GEN_DONE;
	}
	sampler_accept(smp, id);
	n = tok_piece(tk, j->prev, id, piece, sizeof piece);
	if (n > 0 && reply_append(j, piece, (size_t)(n < (int)sizeof piece ?
	    n : (int)sizeof piece)) != 0)
		return fail(j, PROTO_E_INTERNAL, "out of memory");
	j->prev = id;
	j->generated++;
	if ((at = find_stop(j, j->sent)) >= 0) {
		j->reply_len = (size_t)at;
		release(j, (size_t)at, id, emit, arg);
		j->finish = PROTO_F_STOP;
		return GEN_DONE;
	}
	/* The last token: nothing more can complete a stop string. */
	release(j, j->generated >= j->max_tokens ? j->reply_len :
	    releasable(j), id, emit, arg);
	if (gen_push(j, id) != 0)
		return fail(j, PROTO_E_INTERNAL, "out of memory");
	j->next_id = id;
	return GEN_MORE;
}

/* The outcome: what was held back goes out, figures are taken. */
static int
end(struct job *j, gen_emit_fn *emit, void *arg)
{
	uint64_t rng[4];

	/* Held-back text goes out as no token's (id -1). */
	if (!j->failed && j->sent < j->reply_len)
		release(j, j->reply_len, -1, emit, arg);
	/* The transcript holds valid UTF-8: what the client was sent. */
	if (j->reply != NULL)
		proto_utf8_sanitize(j->reply, j->reply_len);
	/* A turn with its own seed leaves the session's random state. */
	if (j->tmp_smp != NULL && !(j->sp_override & 2)) {
		sampler_rng_get(j->tmp_smp, rng);
		sampler_rng_set(j->s->smp, rng);
	}
	if (j->load_failed || j->s->seq == NULL)
		return GEN_DONE;
	if (j->t_prefill == 0.0 && j->t_start > 0.0)
		j->t_prefill = gen_now() - j->t_start;
	else if (j->t_start > 0.0)
		j->t_decode = gen_now() - j->t_start - j->t_prefill;
	seq_get_info(j->s->seq, &j->info);
	return GEN_DONE;
}

int
gen_begin(struct gen *g, struct job *j, gen_emit_fn *emit, void *arg)
{
	int rc = GEN_MORE;

	if (j->t_start == 0.0)
		rc = start(g, j);
	if (rc == GEN_MORE && atomic_load(&j->stop) != STOP_NONE) {
		j->finish = PROTO_F_CANCELLED;
		rc = GEN_DONE;
	}
	return rc == GEN_DONE ? end(j, emit, arg) : GEN_MORE;
}

int
gen_prefilling(const struct job *j)
{
	return j->fed < j->n_toks;
}

int
gen_sample(struct gen *g, struct job *j, gen_emit_fn *emit, void *arg)
{
	return sample(g, j, emit, arg) == GEN_DONE ? end(j, emit, arg) :
	    GEN_MORE;
}

size_t
gen_segment(const struct job *j, size_t max, struct seq_seg *sg)
{
	size_t c;

	memset(sg, 0, offsetof(struct seq_seg, cause));
	sg->cause[0] = '\0';
	sg->s = j->s->seq;
	if (!gen_prefilling(j)) {
		sg->tokens = &j->next_id;
		sg->n = 1;
		sg->logits = j->logits;
		return 1;
	}
	c = seq_chunk_len(j->s->seq, j->n_toks - j->fed, max);
	sg->tokens = j->toks + j->fed;
	sg->n = c;
	sg->logits = j->fed + c == j->n_toks && generates(j) ? j->logits :
	    NULL;
	return c;
}

/* A prefill chunk went in: progress, or the prompt is all in. */
static int
prefilled(struct job *j, size_t c, size_t every, gen_emit_fn *emit,
    void *arg)
{
	size_t before = j->fed;

	j->fed += c;
	if (j->fed < j->n_toks) {
		/* Chunks near a small window are short: not a message each. */
		if (j->fed / every != before / every)
			emit(arg, j, PROTO_K_PROGRESS, NULL, j->fed, 0);
		return GEN_MORE;
	}
	j->prev = j->toks[j->n_toks - 1];
	j->t_prefill = gen_now() - j->t_start;
	if (!generates(j)) {
		j->finish = PROTO_F_FED;
		return GEN_DONE;
	}
	return GEN_MORE;
}

int
gen_after(struct job *j, const struct seq_seg *sg, size_t every,
    gen_emit_fn *emit, void *arg)
{
	int rc;

	if (sg->failed) {
		if (!gen_prefilling(j))
			j->n_gen--;	/* its token never went in */
		rc = fail(j, PROTO_E_INTERNAL, sg->cause);
	} else if (gen_prefilling(j)) {
		rc = prefilled(j, sg->n, every, emit, arg);
	} else {
		rc = GEN_MORE;
	}
	return rc == GEN_DONE ? end(j, emit, arg) : GEN_MORE;
}

/* The job's turns for the transcript; their count. */
static size_t
job_turns(const struct job *j, struct store_turn t[2])
{
	size_t n = 0;

	if (j->failed || j->kind == JOB_PREFIX || j->kind == JOB_REBUILD)
		return 0;
	t[n++] = (struct store_turn){ .role = j->kind == JOB_CHAT ?
	    ROLE_USER : ROLE_CONTEXT, .text = j->text, .len = j->text_len,
	    .toks = j->toks + j->n_sys, .n_toks = j->fed > j->n_sys ?
	    j->fed - j->n_sys : 0 };
	if (generates(j) && j->reply != NULL)
		t[n++] = (struct store_turn){ .role = ROLE_ASSISTANT,
		    .text = j->reply, .len = j->reply_len, .toks = j->gen,
		    .n_toks = j->n_gen };
	return n;
}

void
gen_save(struct gen *g, struct job *j, gen_emit_fn *emit, void *arg)
{
	struct store_turn t[2];
	struct session *s = j->s;
	char cause[ERR_LEN] = "", msg[ERR_LEN + 128];
	double t0 = gen_now();
	int n;

	if (j->load_failed || s->seq == NULL)
		return;
	if (j->kind == JOB_REBUILD && !j->failed) {
		n = snprintf(msg, sizeof msg, "session '%s' rebuilt from its "
		    "transcript: %zu tokens (the pinned prefix and the last %zu "
		    "turns) re-encoded; the cache approximates the original "
		    "stream", s->name, j->fed, j->n_rebuilt_turns);
		emit(arg, j, PROTO_K_WARNING, msg, (size_t)n < sizeof msg ?
		    (size_t)n : sizeof msg - 1, 0);
	}
	/* A rebuild that failed leaves the session as it was. */
	if (j->kind == JOB_REBUILD && j->failed) {
		rebuild_undo(j);
		return;
	}
	/* The stored turns' ids stay the other model's: their text counts. */
	if (j->kind == JOB_REBUILD && s->foreign)
		s->text_below = s->n_stored + (int64_t)s->n_turns;
	j->n_saved_turns = job_turns(j, t);
	if (snap_save(g->store, g->m, s, j->failed ? s->chatted : j->chatted,
	    t, j->n_saved_turns, j->kind == JOB_REBUILD, &j->save_bytes,
	    cause) == 0) {
		j->saved = 1;
		j->t_save = gen_now() - t0;
		return;
	}
	n = snprintf(msg, sizeof msg, "session '%s' was not saved: %s; it "
	    "goes on in memory, and the next snapshot tries again", s->name,
	    cause);
	log_warn("%s", msg);
	emit(arg, j, PROTO_K_WARNING, msg, (size_t)n < sizeof msg ? (size_t)n :
	    sizeof msg - 1, 0);
}
