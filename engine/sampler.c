/*
 * sampler: the order of steps follows common practice (llama.cpp's
 * default chain): penalties on raw logits; top-k; top-p and min-p on the
 * untempered distribution; then temperature and a draw.  The RNG is
 * xoshiro256** seeded through splitmix64.
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

struct cand {
	float logit;
	int32_t id;
};

struct sampler {
	struct sampler_params p;
	int32_t n_vocab;
	uint64_t rng[4];
	int32_t *hist;	/* ring of the last repeat_last_n tokens */
	int32_t n_hist, hist_pos;
	struct cand *cand; /* [n_vocab] */
	unsigned char *seen; /* [n_vocab], penalty dedup */
};

void
sampler_defaults(struct sampler_params *p)
{
	p->temp = 0.8f;
	p->top_k = 40;
	p->top_p = 0.95f;
	p->min_p = 0.05f;
	p->repeat_penalty = 1.0f;
	p->repeat_last_n = 64;
	p->seed = 0;
}

int
sampler_check(const struct sampler_params *p, char *cause)
{
	if (!(p->temp >= 0.0f && p->temp <= 100.0f))
		return err_set(cause, "temperature %g is outside 0..100",
		    (double)p->temp);
	if (p->top_k < 0)
		return err_set(cause, "top-k %d is negative", p->top_k);
	if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
		return err_set(cause, "top-p %g is outside (0, 1]",
		    (double)p->top_p);
	if (!(p->min_p >= 0.0f && p->min_p < 1.0f))
		return err_set(cause, "min-p %g is outside [0, 1)",
		    (double)p->min_p);
	if (!(p->repeat_penalty > 0.0f && p->repeat_penalty <= 100.0f))
		return err_set(cause, "repeat penalty %g is outside (0, 100]",
		    (double)p->repeat_penalty);
	if (p->repeat_last_n < 0 || p->repeat_last_n > 1 << 20)
		return err_set(cause, "repeat window %d is outside 0..%d",
		    p->repeat_last_n, 1 << 20);
	return 0;
}

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t
rng_next(uint64_t s[4])
{
	uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double
rng_uniform(uint64_t s[4])
{
	return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

struct sampler *
sampler_new(const struct sampler_params *p, int32_t n_vocab, char *cause)
{
	struct sampler *s;
	uint64_t x;
	int i;

	if (sampler_check(p, cause) != 0)
		return NULL;
	if (n_vocab < 1)
		return err_set(cause, "empty vocabulary"), NULL;
	if ((s = calloc(1, sizeof *s)) == NULL)
		goto oom;
	s->p = *p;
	s->n_vocab = n_vocab;
	s->hist = calloc((size_t)p->repeat_last_n + 1, sizeof *s->hist);
	s->cand = calloc((size_t)n_vocab, sizeof *s->cand);
	s->seen = calloc((size_t)n_vocab, 1);
	if (s->hist == NULL || s->cand == NULL || s->seen == NULL)
		goto oom;
	x = p->seed;
	for (i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
	return s;
oom:
	sampler_free(s);
	err_set(cause, "out of memory for a sampler");
	return NULL;
}

void
sampler_free(struct sampler *s)
{
	if (s == NULL)
		return;
	free(s->hist);
	free(s->cand);
	free(s->seen);
	free(s);
}

void
sampler_accept(struct sampler *s, int32_t token)
{
	if (s->p.repeat_last_n == 0)
		return;
	s->hist[s->hist_pos] = token;
	s->hist_pos = (s->hist_pos + 1) % s->p.repeat_last_n;
	if (s->n_hist < s->p.repeat_last_n)
		s->n_hist++;
}

size_t
sampler_hist(const struct sampler *s, int32_t *out)
{
	int32_t i, n = s->n_hist, start;

	if (n == 0)
		return 0;
	/* Full: the oldest is where the next goes; else from slot 0. */
	start = n == s->p.repeat_last_n ? s->hist_pos : 0;
	for (i = 0; i < n; i++)
		out[i] = s->hist[(start + i) % s->p.repeat_last_n];
	return (size_t)n;
}

void
sampler_rng_get(const struct sampler *s, uint64_t state[4])
{
	memcpy(state, s->rng, sizeof s->rng);
}

void
sampler_rng_set(struct sampler *s, const uint64_t state[4])
{
	memcpy(s->rng, state, sizeof s->rng);
}

static void
apply_penalty(struct sampler *s, float *logits)
{
	float pen = s->p.repeat_penalty;
	int32_t i, t;

	if (pen == 1.0f || s->n_hist == 0)
		return;
	for (i = 0; i < s->n_hist; i++) {
		t = s->hist[i];
		if (t < 0 || t >= s->n_vocab || s->seen[t])
			continue;
		s->seen[t] = 1;
		logits[t] = logits[t] > 0.0f ? logits[t] / pen : logits[t] * pen;
	}
	for (i = 0; i < s->n_hist; i++) {
		t = s->hist[i];
		if (t >= 0 && t < s->n_vocab)
			s->seen[t] = 0;
	}
}

int32_t
sampler_argmax(const float *logits, int32_t n)
{
	return n > 0 ? (int32_t)kern_argmax(logits, (size_t)n) : 0;
}

/* Descending by logit; ties by id so results never depend on qsort. */
static int
cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->logit != y->logit)
		return x->logit < y->logit ? 1 : -1;
	return (x->id > y->id) - (x->id < y->id);
}

/* Min-heap on the same order, to keep the best k of n in O(n log k). */
static void
heap_sift(struct cand *h, int32_t n, int32_t i)
{
	struct cand tmp;
	int32_t c;

	for (; (c = 2 * i + 1) < n; i = c) {
		if (c + 1 < n && cand_cmp(&h[c + 1], &h[c]) > 0)
			c++;
		if (cand_cmp(&h[c], &h[i]) <= 0)
			break;
		tmp = h[c];
		h[c] = h[i];
		h[i] = tmp;
	}
}

/* Fills s->cand with the best k candidates, sorted; returns their count. */
static int32_t
top_candidates(struct sampler *s, const float *logits, int32_t k)
{
	struct cand *c = s->cand;
	int32_t i;

	if (k <= 0 || k >= s->n_vocab) {
		for (i = 0; i < s->n_vocab; i++)
			c[i] = (struct cand){ logits[i], i };
		qsort(c, (size_t)s->n_vocab, sizeof *c, cand_cmp);
		return s->n_vocab;
	}
	for (i = 0; i < k; i++)
		c[i] = (struct cand){ logits[i], i };
	for (i = k / 2 - 1; i >= 0; i--)
		heap_sift(c, k, i);
	for (i = k; i < s->n_vocab; i++) {
		struct cand x = { logits[i], i };
		if (cand_cmp(&x, &c[0]) < 0) {
			c[0] = x;
			heap_sift(c, k, 0);
		}
	}
	qsort(c, (size_t)k, sizeof *c, cand_cmp);
	return k;
}

/* Probabilities (in .logit) of sorted candidates at temperature t. */
static void
softmax_cands(struct cand *c, int32_t n, float t)
{
	double sum = 0.0;
	float max = c[0].logit;
	int32_t i;

	for (i = 0; i < n; i++) {
		c[i].logit = expf((c[i].logit - max) / t);
		sum += c[i].logit;
	}
	for (i = 0; i < n; i++)
		c[i].logit = (float)(c[i].logit / sum);
}

/* Keeps the smallest prefix with mass >= top_p and prob >= min_p * max. */
static int32_t
truncate_cands(const struct sampler *s, const struct cand *c, int32_t n)
{
	double mass = 0.0;
	int32_t i;

	for (i = 0; i < n; i++) {
		if (i > 0 && c[i].logit < s->p.min_p * c[0].logit)
			break;
		mass += c[i].logit;
		if (mass >= s->p.top_p) {
			i++;
			break;
		}
	}
	return i > 0 ? i : 1;
}

int32_t
sampler_sample(struct sampler *s, float *logits)
{
	struct cand *c = s->cand;
	int32_t n, i;
	double r, acc = 0.0;

	apply_penalty(s, logits);
	if (s->p.temp <= 0.0f)
		return sampler_argmax(logits, s->n_vocab);
	n = top_candidates(s, logits, s->p.top_k);
	for (i = 0; i < n; i++) /* keep raw logits for the tempered pass */
		logits[i] = c[i].logit;
	softmax_cands(c, n, 1.0f);
	n = truncate_cands(s, c, n);
	for (i = 0; i < n; i++)
		c[i].logit = logits[i];
	softmax_cands(c, n, s->p.temp);
	r = rng_uniform(s->rng);
	for (i = 0; i < n - 1; i++) {
		acc += c[i].logit;
		if (r < acc)
			break;
	}
	return c[i].id;
}
