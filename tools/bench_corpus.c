/*
 * bench_corpus: `sinkd-bench corpus` writes a long evaluation text for a
 * model whose training data we do not have, by sampling many independent
 * stories from the model itself.  Each story starts from BOS and runs
 * with dense attention inside the model's training window, so every
 * story is text the model finds natural; the stories are joined with a
 * newline and no BOS, because a BOS inside an attention window acts as
 * a sink of its own and would hide what the perplexity test measures.
 * Story i is sampled with seed S + i: the text depends on the seed only.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "model.h"
#include "opt.h"
#include "pool.h"
#include "sampler.h"
#include "seq.h"

struct corpus_opts {
	const char *model, *out;
	long n_tokens, max_story, n_threads;
	struct sampler_params sp;
};

struct corpus {
	const struct corpus_opts *o;
	struct model *m;
	struct pool *pool;
	struct seq *seq;
	struct seq_work *work;
	float *logits;
	int32_t *ids;
};

static void
corpus_usage(FILE *f)
{
	fprintf(f,
"usage: sinkd-bench corpus [-m MODEL] -o FILE --tokens N [--seed S]\n"
"                          [--temp T] [--top-p P] [--max-story N] [-t N]\n"
"Samples independent stories from the model (each from BOS, dense\n"
"attention within the training window, until EOS, BOS or the window is\n"
"full)\n"
"and writes them to FILE, one newline between stories and no BOS, until\n"
"the text holds at least N tokens.\n"
"  --seed S       story i uses seed S + i (default 1)\n"
"  --temp T       sampling temperature (default 1: the model's own\n"
"                 distribution); --top-p P nucleus mass (default 1: off)\n"
"  --max-story N  tokens per story at most (default: the model's context\n"
"                 length; give the training window when the metadata says\n"
"                 more, e.g. 512 for stories260K)\n"
"  -t N           compute threads (default 1)\n");
}

static int
corpus_args(int argc, char **argv, struct corpus_opts *o, char *cause)
{
	static const struct option lo[] = {
		{ "tokens", required_argument, NULL, 'N' },
		{ "seed", required_argument, NULL, 's' },
		{ "temp", required_argument, NULL, 'T' },
		{ "top-p", required_argument, NULL, 'P' },
		{ "max-story", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, bad = 0;

	while (!bad && (c = getopt_long(argc, argv, "m:o:t:h", lo, NULL)) !=
	    -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'o': o->out = optarg; break;
		case 'N': bad = opt_long("--tokens", optarg, 1, 1L << 32,
		    &o->n_tokens, cause); break;
		case 's': bad = opt_u64("--seed", optarg, &o->sp.seed, cause);
			break;
		case 'T': bad = opt_float("--temp", optarg, 0, 10, &o->sp.temp,
		    cause); break;
		case 'P': bad = opt_float("--top-p", optarg, 0, 1,
		    &o->sp.top_p, cause); break;
		case 'S': bad = opt_long("--max-story", optarg, 2, 1 << 20,
		    &o->max_story, cause); break;
		case 't': bad = opt_long("-t", optarg, 1, 512, &o->n_threads,
		    cause); break;
		case 'h': corpus_usage(stdout); return 1;
		default: return err_set(cause, "bad usage (see --help)");
		}
	}
	if (bad)
		return -1;
	if (optind < argc)
		return err_set(cause, "unexpected argument '%s'", argv[optind]);
	if (o->out == NULL || o->n_tokens == 0)
		return err_set(cause, "-o FILE and --tokens N are required "
		    "(see --help)");
	if (o->model == NULL && (o->model = opt_default_model()) == NULL)
		return err_set(cause, "%s", opt_no_model_hint);
	return 0;
}

static int
corpus_open(struct corpus *c, const struct corpus_opts *o, char *cause)
{
	struct seq_opts so;
	long win;

	c->o = o;
	if ((c->m = model_open(o->model, NULL, cause)) == NULL)
		return -1;
	if (tok_bos(c->m->tok) < 0)
		return err_set(cause, "%s has no BOS token to start stories "
		    "from", o->model);
	win = c->m->hp.n_ctx_train;
	if (o->max_story > 0 && o->max_story < win)
		win = o->max_story;
	seq_opts_default(&so);
	so.mode = SEQ_DENSE;
	so.n_cache = (int32_t)win;
	if ((c->pool = pool_new((int)o->n_threads, cause)) == NULL ||
	    (c->seq = seq_new(c->m, &so, cause)) == NULL ||
	    (c->work = seq_work_new(c->m, 0, cause)) == NULL)
		return -1;
	c->logits = malloc((size_t)c->m->hp.n_vocab * sizeof(float));
	c->ids = malloc((size_t)win * sizeof(int32_t));
	if (c->logits == NULL || c->ids == NULL)
		return err_set(cause, "out of memory");
	return 0;
}

static void
corpus_close(struct corpus *c)
{
	free(c->logits);
	free(c->ids);
	seq_work_free(c->work);
	seq_free(c->seq);
	pool_free(c->pool);
	model_close(c->m);
}

/* Story i's tokens after BOS into c->ids; their count, or -1. */
static long
story(struct corpus *c, uint64_t i, char *cause)
{
	struct sampler_params sp = c->o->sp;
	struct seq_info si;
	struct sampler *smp;
	int32_t bos = tok_bos(c->m->tok), eos = tok_eos(c->m->tok), id = bos;
	long n = 0;

	sp.seed += i;
	if ((smp = sampler_new(&sp, c->m->hp.n_vocab, cause)) == NULL)
		return -1;
	seq_reset(c->seq);
	seq_get_info(c->seq, &si);
	for (;;) {
		if (seq_eval(c->seq, c->work, c->pool, &id, 1, c->logits, 0,
		    cause) != 0) {
			n = -1;
			break;
		}
		if (n + 1 >= si.n_cache)
			break; /* the window is full: the story ends here */
		id = sampler_sample(smp, c->logits);
		/* llama2.c-style models end a story by starting the next. */
		if (id == eos || id == bos)
			break;
		c->ids[n++] = id;
	}
	sampler_free(smp);
	return n;
}

/* A story's text without leading or trailing blanks, then a newline. */
static int
write_story(struct corpus *c, FILE *f, long n, int first, char *cause)
{
	char *text = tok_decode(c->m->tok, c->ids, (size_t)n, cause);
	size_t a = 0, b;

	if (text == NULL)
		return -1;
	b = strlen(text);
	while (a < b && (text[a] == ' ' || text[a] == '\n'))
		a++;
	while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\n'))
		b--;
	if (!first)
		fputc('\n', f);
	fwrite(text + a, 1, b - a, f);
	free(text);
	return 0;
}

static int
corpus_run(struct corpus *c, FILE *f, char *cause)
{
	long total = 0, n, stories = 0;
	double t0 = opt_now();
	int tty = isatty(2);

	while (total < c->o->n_tokens) {
		if ((n = story(c, (uint64_t)stories, cause)) < 0)
			return -1;
		stories++;
		if (n == 0)
			continue; /* EOS at once: nothing to write */
		if (write_story(c, f, n, total == 0, cause) != 0)
			return -1;
		total += n;
		if (tty)
			fprintf(stderr, "\rcorpus: %ld stories, %ld tokens",
			    stories, total);
	}
	fputc('\n', f);
	fprintf(stderr, "%scorpus: %ld stories, %ld tokens sampled in %.1f s "
	    "(%.0f tokens/story)\n", tty ? "\r" : "", stories, total,
	    opt_now() - t0, (double)total / (double)stories);
	return 0;
}

int
bench_corpus(int argc, char **argv)
{
	struct corpus_opts o = { .n_threads = 1 };
	struct corpus c = { 0 };
	char cause[ERR_LEN] = "";
	FILE *f = NULL;
	int rc;

	sampler_defaults(&o.sp);
	o.sp.temp = 1.0f;
	o.sp.top_k = 0;
	o.sp.top_p = 1.0f;
	o.sp.min_p = 0.0f;
	o.sp.seed = 1;
	if ((rc = corpus_args(argc, argv, &o, cause)) != 0) {
		if (rc > 0)
			return 0;
		fprintf(stderr, "sinkd-bench corpus: %s\n", cause);
		return 2;
	}
	rc = corpus_open(&c, &o, cause);
	if (rc == 0 && (f = fopen(o.out, "w")) == NULL)
		rc = err_set(cause, "%s: %s", o.out, strerror(errno));
	if (rc == 0)
		rc = corpus_run(&c, f, cause);
	if (f != NULL && fclose(f) != 0 && rc == 0)
		rc = err_set(cause, "%s: %s", o.out, strerror(errno));
	if (rc != 0)
		fprintf(stderr, "sinkd-bench corpus: %s\n", cause);
	corpus_close(&c);
	return rc != 0;
}
