/*
 * gen: see gen.h.  Text reaches the client as soon as it cannot be the
 * start of a stop string and ends on a whole UTF-8 character, so a stop
 * string is never shown and a character is never split between events.
 */
#include "gen.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session.h"

#define GEN_BATCH 256

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int
gen_init(struct gen *g, const struct model *m, int threads, char *cause)
{
	memset(g, 0, sizeof *g);
	g->m = m;
	g->n_batch = GEN_BATCH;
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

/* The text a chat turn is encoded from. */
static char *
chat_text(const struct job *j, size_t *len)
{
	size_t n = 1 + strlen(GEN_USER_HEAD) + j->text_len +
	    strlen(GEN_ASSISTANT_HEAD) + 1;
	char *t = malloc(n);

	if (t == NULL)
		return NULL;
	*len = (size_t)snprintf(t, n, "%s%s", j->s->chatted ? "\n" : "",
	    GEN_USER_HEAD);
	memcpy(t + *len, j->text, j->text_len);
	*len += j->text_len;
	memcpy(t + *len, GEN_ASSISTANT_HEAD, strlen(GEN_ASSISTANT_HEAD));
	*len += strlen(GEN_ASSISTANT_HEAD);
	t[*len] = '\0';
	return t;
}

/* The tokens to prefill: the formatted turn, BOS first on a new stream. */
static int
encode(struct gen *g, struct job *j, char *cause)
{
	const struct tok *tk = g->m->tok;
	struct seq_info si;
	char *text = j->text;
	size_t len = j->text_len;
	int bos, rc;

	if (j->kind == JOB_PREFIX) {
		j->toks = j->prefix;
		j->n_toks = j->n_prefix;
		j->prefix = NULL;
		return 0;
	}
	seq_get_info(j->s->seq, &si);
	bos = si.n_seen == 0 && tok_add_bos(tk) && tok_bos(tk) >= 0;
	if (j->kind == JOB_CHAT && (text = chat_text(j, &len)) == NULL)
		return err_set(cause, "out of memory");
	rc = tok_encode(tk, text, len, bos, &j->toks, &j->n_toks, cause);
	if (text != j->text)
		free(text);
	return rc;
}

static int
start(struct gen *g, struct job *j)
{
	char cause[ERR_LEN] = "";
	const struct session *s = j->s;
	size_t i;

	j->t_start = now();
	j->chatted = s->chatted || j->kind == JOB_CHAT;
	if (encode(g, j, cause) != 0)
		return fail(j, PROTO_E_INTERNAL, cause);
	j->n_prompt = j->n_toks;
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

/* The job's stop strings, with the chat format's own for chat turns. */
static size_t
stops(const struct job *j, const char **v)
{
	size_t n = 0, i;

	if (j->kind == JOB_CHAT)
		v[n++] = GEN_USER_STOP;
	for (i = 0; i < j->n_stops; i++)
		v[n++] = j->stops[i];
	return n;
}

/* Where the first stop string starts in reply[from..], or -1. */
static long
find_stop(const struct job *j, size_t from)
{
	const char *v[JOB_MAX_STOPS + 1], *p;
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
	const char *v[JOB_MAX_STOPS + 1];
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

static int
prefill(struct gen *g, struct job *j, gen_emit_fn *emit, void *arg)
{
	char cause[ERR_LEN] = "";
	size_t c = j->n_toks - j->fed;
	int last;

	c = c < (size_t)g->n_batch ? c : (size_t)g->n_batch;
	last = j->fed + c == j->n_toks;
	if (seq_eval(j->s->seq, g->work, g->pool, j->toks + j->fed, c,
	    last && generates(j) ? j->logits : NULL, 0, cause) != 0)
		return fail(j, PROTO_E_INTERNAL, cause);
	j->fed += c;
	if (!last) {
		emit(arg, j, PROTO_K_PROGRESS, NULL, j->fed, 0);
		return GEN_MORE;
	}
	j->prev = j->toks[j->n_toks - 1];
	j->t_prefill = now() - j->t_start;
	if (!generates(j)) {
		j->finish = PROTO_F_FED;
		return GEN_DONE;
	}
	return GEN_MORE;
}

/* Sends what may go out of the reply with token id. */
static void
release(struct job *j, size_t end, int32_t id, gen_emit_fn *emit, void *arg)
{
	emit(arg, j, PROTO_K_TOKEN, j->reply + j->sent, end - j->sent, id);
	j->sent = end;
}

static int
decode(struct gen *g, struct job *j, gen_emit_fn *emit, void *arg)
{
	struct sampler *smp = j->tmp_smp != NULL ? j->tmp_smp : j->s->smp;
	const struct tok *tk = g->m->tok;
	char piece[256], cause[ERR_LEN] = "";
	int32_t id;
	long at;
	int n;

	if (j->generated >= j->max_tokens) {
		j->finish = PROTO_F_LENGTH;
		return GEN_DONE;
	}
	id = sampler_sample(smp, j->logits);
	if ((id == tok_eos(tk) || id == tok_bos(tk)) && !j->ignore_eos) {
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
	if (seq_eval(j->s->seq, g->work, g->pool, &id, 1, j->logits, 0,
	    cause) != 0)
		return fail(j, PROTO_E_INTERNAL, cause);
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
	/* A turn with its own seed leaves the session's random state. */
	if (j->tmp_smp != NULL && !(j->sp_override & 2)) {
		sampler_rng_get(j->tmp_smp, rng);
		sampler_rng_set(j->s->smp, rng);
	}
	if (j->t_prefill == 0.0 && j->t_start > 0.0)
		j->t_prefill = now() - j->t_start;
	else if (j->t_start > 0.0)
		j->t_decode = now() - j->t_start - j->t_prefill;
	seq_get_info(j->s->seq, &j->info);
	return GEN_DONE;
}

int
gen_step(struct gen *g, struct job *j, gen_emit_fn *emit, void *arg)
{
	int rc = GEN_MORE;

	if (j->t_start == 0.0)
		rc = start(g, j);
	if (rc == GEN_MORE && atomic_load(&j->stop) != STOP_NONE) {
		j->finish = PROTO_F_CANCELLED;
		rc = GEN_DONE;
	}
	if (rc == GEN_MORE)
		rc = j->fed < j->n_toks ? prefill(g, j, emit, arg) : decode(g,
		    j, emit, arg);
	return rc == GEN_DONE ? end(j, emit, arg) : GEN_MORE;
}
