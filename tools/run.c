/*
 * sinkd-run: generate text from a model, or tokenize / detokenize.
 * Generated text goes to stdout as it is produced; timings and errors go
 * to stderr.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "kernels.h"
#include "matmul.h"
#include "model.h"
#include "opt.h"
#include "pool.h"
#include "sampler.h"
#include "seq.h"

enum run_mode { RUN_GENERATE, RUN_TOKENIZE, RUN_DETOKENIZE };

struct run_opts {
	const char *model;
	const char *prompt;
	const char *prompt_file;
	long n_predict;
	long n_threads;
	long n_logits;
	struct seq_opts so;
	int ignore_eos;
	int no_bos;
	int use_mmap;
	int quiet;
	enum run_mode mode;
	struct sampler_params sp;
};

static void
usage(FILE *f)
{
	fprintf(f,
"usage: sinkd-run [-m MODEL] [-p PROMPT | -f FILE] [-n N] [--temp T]\n"
"                 [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R]\n"
"                 [--repeat-last-n N] [--seed S] [-t THREADS] [--logits K]\n"
"                 [--mode M] [--cache N] [--sinks N] [--pin N] [--kv T]\n"
"                 [--ignore-eos] [--no-bos] [--mmap] [-q]\n"
"       sinkd-run [-m MODEL] --tokenize [--no-bos] < TEXT\n"
"       sinkd-run [-m MODEL] --detokenize < IDS\n"
"\n"
"Generates N tokens (default 128) after the prompt and streams the text to\n"
"stdout; load time and speeds go to stderr.  --temp 0 is greedy.\n"
"  -m MODEL            GGUF model (default $SINKD_MODEL, then\n"
"                      ../shared/models/stories260K.gguf)\n"
"  -p PROMPT, -f FILE  prompt text, or a file holding it (- for stdin);\n"
"                      without either, generation starts from BOS alone\n"
"  -n N                tokens to generate (default 128)\n"
"  --temp T            temperature (default 0.8; 0 = greedy)\n"
"  --top-k K           keep the K most likely tokens (default 40; 0 = all)\n"
"  --top-p P           nucleus sampling mass (default 0.95; 1 = off)\n"
"  --min-p P           drop tokens below P x the top probability (0.05)\n"
"  --repeat-penalty R  penalize recently seen tokens (default 1 = off)\n"
"  --repeat-last-n N   history the penalty looks at (default 64)\n"
"  --seed S            random seed (default 0); same seed, same output\n"
"  -t THREADS          compute threads (default: number of cores)\n"
"  --mode M            cache policy: streaming (default: attention sinks\n"
"                      plus a rolling window, for streams of any length),\n"
"                      window (no sinks), recompute (re-encode the window\n"
"                      for every token: exact, slow), dense (no eviction)\n"
"  --cache N           cache size in tokens, sinks included (default 1024;\n"
"                      --ctx is the same)\n"
"  --sinks N           attention sinks kept (default 4 in streaming mode)\n"
"  --pin N             also keep the first N tokens (a system prompt)\n"
"  --kv T              cache storage: f32 (default) or f16\n"
"  --logits K          instead of text, print the top-K logits at every\n"
"                      prompt position and generated token\n"
"  --ignore-eos        keep generating past end-of-sequence\n"
"  --no-bos            do not add BOS to the prompt\n"
"  --mmap              compute from the mapped file instead of a copy\n"
"  -q                  no statistics on stderr\n"
"  --tokenize          print the token ids of stdin, space-separated\n"
"  --detokenize        print the text of the token ids on stdin\n");
}

enum {
	OPT_TEMP = 256, OPT_TOPK, OPT_TOPP, OPT_MINP, OPT_REPPEN, OPT_REPN,
	OPT_SEED, OPT_LOGITS, OPT_IGNORE_EOS, OPT_TOKENIZE, OPT_DETOKENIZE,
	OPT_NO_BOS, OPT_CTX, OPT_MMAP, OPT_MODE, OPT_SINKS, OPT_PIN, OPT_KV,
};

static const struct option long_opts[] = {
	{ "model", required_argument, NULL, 'm' },
	{ "prompt", required_argument, NULL, 'p' },
	{ "file", required_argument, NULL, 'f' },
	{ "threads", required_argument, NULL, 't' },
	{ "temp", required_argument, NULL, OPT_TEMP },
	{ "top-k", required_argument, NULL, OPT_TOPK },
	{ "top-p", required_argument, NULL, OPT_TOPP },
	{ "min-p", required_argument, NULL, OPT_MINP },
	{ "repeat-penalty", required_argument, NULL, OPT_REPPEN },
	{ "repeat-last-n", required_argument, NULL, OPT_REPN },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "logits", required_argument, NULL, OPT_LOGITS },
	{ "ctx", required_argument, NULL, OPT_CTX },
	{ "cache", required_argument, NULL, OPT_CTX },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "sinks", required_argument, NULL, OPT_SINKS },
	{ "pin", required_argument, NULL, OPT_PIN },
	{ "kv", required_argument, NULL, OPT_KV },
	{ "ignore-eos", no_argument, NULL, OPT_IGNORE_EOS },
	{ "no-bos", no_argument, NULL, OPT_NO_BOS },
	{ "mmap", no_argument, NULL, OPT_MMAP },
	{ "tokenize", no_argument, NULL, OPT_TOKENIZE },
	{ "detokenize", no_argument, NULL, OPT_DETOKENIZE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int
parse_cache_value(struct run_opts *o, int c, const char *arg, char *cause)
{
	long v;

	if (opt_long(c == OPT_CTX ? "--cache" : c == OPT_SINKS ? "--sinks" :
	    "--pin", arg, c == OPT_CTX ? 1 : 0, SEQ_MAX_CACHE, &v, cause) != 0)
		return -1;
	if (c == OPT_CTX)
		o->so.n_cache = (int32_t)v;
	else if (c == OPT_SINKS)
		o->so.n_sink = (int32_t)v;
	else
		o->so.n_pin = (int32_t)v;
	return 0;
}

static int
parse_value(struct run_opts *o, int c, const char *arg, char *cause)
{
	long v;

	switch (c) {
	case 'n':
		return opt_long("-n", arg, 0, 1L << 40, &o->n_predict, cause);
	case 't':
		return opt_long("-t", arg, 1, 512, &o->n_threads, cause);
	case OPT_CTX:
	case OPT_SINKS:
	case OPT_PIN:
		return parse_cache_value(o, c, arg, cause);
	case OPT_MODE:
		if (seq_mode_parse(arg, &o->so.mode) != 0)
			return err_set(cause, "unknown --mode '%s' (streaming, "
			    "window, recompute or dense)", arg);
		return 0;
	case OPT_KV:
		if (seq_kv_parse(arg, &o->so.kv_type) != 0)
			return err_set(cause, "unknown --kv '%s' (f32 or f16)",
			    arg);
		return 0;
	case OPT_LOGITS:
		return opt_long("--logits", arg, 1, 1 << 20, &o->n_logits, cause);
	case OPT_TEMP:
		return opt_float("--temp", arg, 0, 100, &o->sp.temp, cause);
	case OPT_TOPK:
		if (opt_long("--top-k", arg, 0, 1 << 24, &v, cause) != 0)
			return -1;
		o->sp.top_k = (int32_t)v;
		return 0;
	case OPT_TOPP:
		return opt_float("--top-p", arg, 0, 1, &o->sp.top_p, cause);
	case OPT_MINP:
		return opt_float("--min-p", arg, 0, 1, &o->sp.min_p, cause);
	case OPT_REPPEN:
		return opt_float("--repeat-penalty", arg, 0, 100,
		    &o->sp.repeat_penalty, cause);
	case OPT_REPN:
		if (opt_long("--repeat-last-n", arg, 0, 1 << 20, &v, cause))
			return -1;
		o->sp.repeat_last_n = (int32_t)v;
		return 0;
	case OPT_SEED:
		return opt_u64("--seed", arg, &o->sp.seed, cause);
	}
	return err_set(cause, "unknown option");
}

/* 0 to run, 1 when --help was shown, -1 with cause on bad usage. */
static int
parse_args(int argc, char **argv, struct run_opts *o, char *cause)
{
	int c;

	memset(o, 0, sizeof *o);
	o->n_predict = 128;
	o->n_threads = sysconf(_SC_NPROCESSORS_ONLN);
	sampler_defaults(&o->sp);
	seq_opts_default(&o->so);
	while ((c = getopt_long(argc, argv, "m:p:f:n:t:qh", long_opts,
	    NULL)) != -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'p': o->prompt = optarg; break;
		case 'f': o->prompt_file = optarg; break;
		case 'q': o->quiet = 1; break;
		case 'h': usage(stdout); return 1;
		case OPT_IGNORE_EOS: o->ignore_eos = 1; break;
		case OPT_NO_BOS: o->no_bos = 1; break;
		case OPT_MMAP: o->use_mmap = 1; break;
		case OPT_TOKENIZE: o->mode = RUN_TOKENIZE; break;
		case OPT_DETOKENIZE: o->mode = RUN_DETOKENIZE; break;
		case '?': return err_set(cause, "bad usage (see --help)");
		default:
			if (parse_value(o, c, optarg, cause) != 0)
				return -1;
		}
	}
	if (optind < argc)
		return err_set(cause, "unexpected argument '%s' (the prompt "
		    "goes after -p)", argv[optind]);
	if (o->prompt != NULL && o->prompt_file != NULL)
		return err_set(cause, "-p and -f both given: choose one");
	if (o->n_threads < 1)
		o->n_threads = 1;
	if (o->model == NULL && (o->model = opt_default_model()) == NULL)
		return err_set(cause, "%s", opt_no_model_hint);
	return sampler_check(&o->sp, cause);
}

struct run {
	const struct run_opts *o;
	struct model *m;
	struct pool *pool;
	struct seq *seq;
	struct seq_work *work;
	struct sampler *smp;
	float *logits; /* [n_batch][n_vocab] with --logits, else [n_vocab] */
	size_t n_vocab;
};

/* One line: position, then id=logit for the K largest logits. */
static void
print_top_logits(const struct run *r, long pos, const float *lg)
{
	size_t k = (size_t)r->o->n_logits, i, j, n = 0;
	int32_t *top = malloc(k * sizeof *top);

	if (top == NULL)
		return;
	k = k > r->n_vocab ? r->n_vocab : k;
	/* Insertion into a sorted list of k: fine for the small K users want. */
	for (i = 0; i < r->n_vocab; i++) {
		if (n == k && lg[i] <= lg[top[n - 1]])
			continue;
		j = n < k ? n++ : n - 1;
		while (j > 0 && lg[top[j - 1]] < lg[i]) {
			top[j] = top[j - 1];
			j--;
		}
		top[j] = (int32_t)i;
	}
	printf("%ld", pos);
	for (i = 0; i < n; i++)
		printf(" %d=%.6f", top[i], (double)lg[top[i]]);
	printf("\n");
	free(top);
}

static int
eval_prompt(struct run *r, const int32_t *ids, size_t n, char *cause)
{
	size_t chunk = 512, i, c = 1, t;

	if (r->o->n_logits == 0)
		return seq_eval(r->seq, r->work, r->pool, ids, n, r->logits, 0,
		    cause);
	for (i = 0; i < n; i += c) {
		c = n - i < chunk ? n - i : chunk;
		if (seq_eval(r->seq, r->work, r->pool, ids + i, c, r->logits,
		    1, cause) != 0)
			return -1;
		for (t = 0; t < c; t++)
			print_top_logits(r, (long)(i + t),
			    r->logits + t * r->n_vocab);
	}
	/* Sampling reads the first row: make it the last position's. */
	memmove(r->logits, r->logits + (c - 1) * r->n_vocab,
	    r->n_vocab * sizeof(float));
	return 0;
}

static void
emit(const struct run *r, int32_t prev, int32_t id)
{
	char buf[256];
	int len = tok_piece(r->m->tok, prev, id, buf, sizeof buf);

	if (len > 0)
		fwrite(buf, 1, (size_t)(len < (int)sizeof buf ? len :
		    (int)sizeof buf), stdout);
	fflush(stdout);
}

/* Generates up to n_predict tokens; returns how many, or -1. */
static long
generate(struct run *r, int32_t prev, char *cause)
{
	int32_t eos = tok_eos(r->m->tok), id;
	struct seq_info si;
	long n;

	for (n = 0; n < r->o->n_predict; n++) {
		id = sampler_sample(r->smp, r->logits);
		if (id == eos && !r->o->ignore_eos)
			break;
		sampler_accept(r->smp, id);
		if (r->o->n_logits == 0)
			emit(r, prev, id);
		prev = id;
		seq_get_info(r->seq, &si);
		if (si.mode == SEQ_DENSE && si.n_cached >= si.n_cache) {
			fprintf(stderr, "\nsinkd-run: the dense cache is full "
			    "after %d tokens (see --cache, --mode)\n",
			    si.n_cached);
			return n + 1;
		}
		if (seq_eval(r->seq, r->work, r->pool, &id, 1, r->logits, 0,
		    cause))
			return -1;
		if (r->o->n_logits > 0)
			print_top_logits(r, (long)si.n_seen, r->logits);
	}
	return n;
}

static int
read_prompt(const struct run_opts *o, char **text, size_t *len, char *cause)
{
	*text = NULL;
	*len = 0;
	if (o->prompt_file != NULL) {
		if ((*text = opt_read_all(o->prompt_file, len, cause)) == NULL)
			return -1;
	} else if (o->prompt != NULL) {
		if ((*text = strdup(o->prompt)) == NULL)
			return err_set(cause, "out of memory");
		*len = strlen(*text);
	} else
		return 0;
	if (*len == 0) {
		free(*text);
		*text = NULL;
		return err_set(cause, "empty prompt");
	}
	return 0;
}

static int
prompt_tokens(const struct run *r, int32_t **ids, size_t *n, char *cause)
{
	const struct run_opts *o = r->o;
	int add_bos = tok_add_bos(r->m->tok) && !o->no_bos;
	struct seq_info si;
	char *text;
	size_t len;
	int rc;

	if (read_prompt(o, &text, &len, cause) != 0)
		return -1;
	rc = tok_encode(r->m->tok, text != NULL ? text : "", len, add_bos, ids,
	    n, cause);
	free(text);
	if (rc != 0)
		return -1;
	if (*n == 0)
		return err_set(cause, "no prompt and the model adds no BOS: "
		    "give a prompt with -p or -f");
	seq_get_info(r->seq, &si);
	if (si.mode == SEQ_DENSE && *n > (size_t)si.n_cache) {
		free(*ids);
		return err_set(cause, "the prompt has %zu tokens but the dense "
		    "cache holds %d (see --cache, or --mode streaming)", *n,
		    si.n_cache);
	}
	return 0;
}

static int
run_setup(struct run *r, const struct run_opts *o, char *cause)
{
	size_t rows;

	r->o = o;
	r->n_vocab = (size_t)r->m->hp.n_vocab;
	if ((r->pool = pool_new((int)o->n_threads, cause)) == NULL ||
	    (r->seq = seq_new(r->m, &o->so, cause)) == NULL ||
	    (r->work = seq_work_new(r->m, 512, cause)) == NULL ||
	    (r->smp = sampler_new(&o->sp, r->m->hp.n_vocab, cause)) == NULL)
		return -1;
	rows = o->n_logits > 0 ? 512 : 1;
	if ((r->logits = malloc(rows * r->n_vocab * sizeof(float))) == NULL)
		return err_set(cause, "out of memory for logits");
	return 0;
}

static void
run_free(struct run *r)
{
	free(r->logits);
	sampler_free(r->smp);
	seq_work_free(r->work);
	seq_free(r->seq);
	pool_free(r->pool);
}

static void
print_cache(const struct run *r)
{
	struct seq_info si;

	seq_get_info(r->seq, &si);
	fprintf(stderr, "cache: %s, %d tokens (%d sinks), %s, %zu bytes per "
	    "token per layer, %.2f MiB; %d held, %lld seen, %lld evicted\n",
	    seq_mode_name(si.mode), si.n_cache, si.n_sink,
	    seq_kv_name(si.kv_type), si.token_layer_bytes,
	    (double)si.bytes / (1 << 20), si.n_cached,
	    (long long)si.n_seen, (long long)si.n_evicted);
}

static int
run_generate(struct run *r, double t_load, char *cause)
{
	int32_t *ids = NULL;
	size_t n, i;
	double t0, t1, t2;
	long gen;

	if (prompt_tokens(r, &ids, &n, cause) != 0)
		return -1;
	for (i = 0; i < n; i++)
		sampler_accept(r->smp, ids[i]);
	t0 = opt_now();
	if (eval_prompt(r, ids, n, cause) != 0) {
		free(ids);
		return -1;
	}
	t1 = opt_now();
	gen = generate(r, ids[n - 1], cause);
	t2 = opt_now();
	free(ids);
	if (gen < 0)
		return -1;
	if (r->o->n_logits == 0)
		printf("\n");
	fflush(stdout); /* the text ends before the statistics start */
	if (!r->o->quiet) {
		print_cache(r);
		fprintf(stderr, "sinkd-run: %s, %s kernels, %ld threads\n"
		    "load: %.0f ms\nprompt: %zu tokens in %.1f ms (%.1f tok/s)\n"
		    "generation: %ld tokens in %.1f ms (%.1f tok/s)\n",
		    r->m->desc, kern_isa_name(kern_current_isa()),
		    r->o->n_threads, t_load * 1e3, n, (t1 - t0) * 1e3,
		    n / (t1 - t0), gen, (t2 - t1) * 1e3,
		    gen > 0 ? gen / (t2 - t1) : 0.0);
	}
	return 0;
}

static int
run_tokenize(const struct tok *tk, const struct run_opts *o, char *cause)
{
	int32_t *ids;
	size_t len, n, i;
	char *text;

	if ((text = opt_read_all("-", &len, cause)) == NULL)
		return -1;
	if (tok_encode(tk, text, len, tok_add_bos(tk) && !o->no_bos, &ids, &n,
	    cause) != 0) {
		free(text);
		return -1;
	}
	for (i = 0; i < n; i++)
		printf(i > 0 ? " %d" : "%d", ids[i]);
	printf("\n");
	free(ids);
	free(text);
	return 0;
}

static int
parse_ids(const char *text, int32_t n_vocab, int32_t **ids, size_t *n,
    char *cause)
{
	const char *p = text;
	size_t cap = strlen(text) / 2 + 1;
	char *end;
	long v;

	*n = 0;
	if ((*ids = malloc(cap * sizeof **ids)) == NULL)
		return err_set(cause, "out of memory");
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' ||
		    *p == ',')
			p++;
		if (*p == '\0')
			return 0;
		v = strtol(p, &end, 10);
		if (end == p || v < 0 || v >= n_vocab) {
			free(*ids);
			return err_set(cause, "'%.20s' is not a token id "
			    "(0..%d)", p, n_vocab - 1);
		}
		(*ids)[(*n)++] = (int32_t)v;
		p = end;
	}
}

static int
run_detokenize(const struct tok *tk, char *cause)
{
	int32_t *ids;
	size_t len, n;
	char *text, *out;

	if ((text = opt_read_all("-", &len, cause)) == NULL)
		return -1;
	if (parse_ids(text, tok_n_vocab(tk), &ids, &n, cause) != 0) {
		free(text);
		return -1;
	}
	free(text);
	out = tok_decode(tk, ids, n, cause);
	free(ids);
	if (out == NULL)
		return -1;
	fputs(out, stdout);
	printf("\n");
	free(out);
	return 0;
}

/* The vocabulary is all these need: vocabulary-only files do. */
static int
run_tokens(const struct run_opts *o, char *cause)
{
	struct gguf_file *g;
	struct tok *tk;
	int rc;

	if ((g = gguf_open(o->model, cause)) == NULL)
		return -1;
	if ((tk = tok_open(g, cause)) == NULL) {
		gguf_close(g);
		return -1;
	}
	if (o->mode == RUN_TOKENIZE)
		rc = run_tokenize(tk, o, cause);
	else
		rc = run_detokenize(tk, cause);
	tok_free(tk);
	gguf_close(g);
	return rc;
}

int
main(int argc, char **argv)
{
	struct model_opts mo = { 0 };
	struct run_opts o;
	struct run r = { 0 };
	char cause[ERR_LEN];
	double t0;
	int rc;

	blas_prepare(argv);
	if ((rc = parse_args(argc, argv, &o, cause)) != 0) {
		if (rc > 0)
			return 0;
		fprintf(stderr, "sinkd-run: %s\n", cause);
		return 2;
	}
	if (o.mode != RUN_GENERATE) {
		if ((rc = run_tokens(&o, cause)) != 0)
			fprintf(stderr, "sinkd-run: %s\n", cause);
		return rc != 0;
	}
	mo.use_mmap = o.use_mmap;
	t0 = opt_now();
	if ((r.m = model_open(o.model, &mo, cause)) == NULL) {
		fprintf(stderr, "sinkd-run: %s\n", cause);
		return 1;
	}
	if ((rc = run_setup(&r, &o, cause)) == 0)
		rc = run_generate(&r, opt_now() - t0, cause);
	if (rc != 0)
		fprintf(stderr, "sinkd-run: %s\n", cause);
	run_free(&r);
	model_close(r.m);
	return rc != 0;
}
