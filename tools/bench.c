/*
 * sinkd-bench: measurements that back the project's speed claims and
 * reproduce the StreamingLLM paper's evaluation.
 *   speed      prompt-processing and generation tokens/s of a model
 *   bandwidth  this machine's memory read bandwidth, 1 and all threads
 *   corpus, ppl, attn, latency, daemon, store: see bench_corpus.c,
 *              bench_ppl.c, bench_attn.c, bench_latency.c,
 *              bench_daemon.c and bench_store.c
 * Every speed is the median over repetitions after a warm-up, with the
 * spread (min..max) beside it: machines here are noisy.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "blas.h"
#include "kernels.h"
#include "matmul.h"
#include "model.h"
#include "opt.h"
#include "pool.h"
#include "sampler.h"
#include "seq.h"

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct stats
stats_of(double *v, int n)
{
	struct stats s;

	qsort(v, (size_t)n, sizeof *v, cmp_double);
	s.min = v[0];
	s.max = v[n - 1];
	s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return s;
}

/* ---- bandwidth ---- */

struct bw_job {
	const float *buf;
	size_t n;
	float sink[64];
};

static void
bw_slice(void *arg, int ith, int nth)
{
	struct bw_job *j = arg;
	long lo, hi;

	/* dot(a, a) streams a once: the second operand hits the same line. */
	pool_split((long)j->n, ith, nth, 1024, &lo, &hi);
	j->sink[ith % 64] += kern_dot_f32(j->buf + lo, j->buf + lo,
	    (size_t)(hi - lo));
}

/* GB/s read by n_threads over reps passes of a bytes-sized buffer. */
static int
bw_measure(int n_threads, size_t bytes, int reps, struct stats *out,
    char *cause)
{
	struct bw_job j = { .n = bytes / sizeof(float) };
	struct pool *p = pool_new(n_threads, cause);
	double *v = calloc((size_t)reps, sizeof *v), t;
	float *buf;
	int r;

	if (p == NULL || v == NULL || posix_memalign((void **)&buf, 64,
	    bytes) != 0) {
		pool_free(p);
		free(v);
		return err_set(cause, "out of memory for %zu MiB", bytes >> 20);
	}
	memset(buf, 0, bytes);
	j.buf = buf;
	pool_run(p, bw_slice, &j); /* warm-up */
	for (r = 0; r < reps; r++) {
		t = opt_now();
		pool_run(p, bw_slice, &j);
		v[r] = (double)bytes / (opt_now() - t) / 1e9;
	}
	*out = stats_of(v, reps);
	free(buf);
	free(v);
	pool_free(p);
	return 0;
}

static int
bench_bandwidth(int argc, char **argv)
{
	char cause[ERR_LEN];
	struct stats s;
	long mib = 1024, reps = 9;
	int c, nt, all = (int)sysconf(_SC_NPROCESSORS_ONLN);

	while ((c = getopt(argc, argv, "s:r:h")) != -1) {
		if ((c == 's' && opt_long("-s", optarg, 16, 1 << 20, &mib,
		    cause)) || (c == 'r' && opt_long("-r", optarg, 1, 1000,
		    &reps, cause))) {
			fprintf(stderr, "sinkd-bench: %s\n", cause);
			return 2;
		}
		if (c == 'h' || c == '?') {
			fprintf(c == 'h' ? stdout : stderr, "usage: sinkd-bench "
			    "bandwidth [-s MIB] [-r REPS]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	printf("memory read bandwidth, %ld MiB buffer, %ld passes, %s "
	    "kernels\n", mib, reps, kern_isa_name(kern_current_isa()));
	for (nt = 1; nt <= all; nt = nt == all ? all + 1 : all) {
		if (bw_measure(nt, (size_t)mib << 20, (int)reps, &s,
		    cause) != 0) {
			fprintf(stderr, "sinkd-bench: %s\n", cause);
			return 1;
		}
		printf("%d thread%s: median %.1f GB/s (min %.1f, best %.1f)\n",
		    nt, nt > 1 ? "s" : "", s.median, s.min, s.max);
	}
	return 0;
}

/* ---- speed ---- */

struct speed_opts {
	const char *model;
	long n_prompt, n_gen, n_threads, reps;
	long depth; /* context already in the cache when decoding starts */
	long chunk; /* prefill chunk: the work area's n_batch, as sinkd's */
	float bw; /* GB/s for the bandwidth bound; 0: measure */
	int use_mmap;
	int no_panels;
	enum kv_type kv_type;
};

/* Bytes of weights one decoded token reads: every matrix once. */
static double
decode_bytes(const struct model *m)
{
	const struct wmat *w;
	double b = 0.0;
	int il, i;

	for (il = 0; il < m->hp.n_layer; il++) {
		const struct model_layer *l = &m->layers[il];
		const struct wmat *all[] = { &l->wq, &l->wk, &l->wv, &l->wo,
			&l->w_gate, &l->w_up, &l->w_down };
		for (i = 0; i < 7; i++) {
			w = all[i];
			b += (double)w->rows * (double)w->row_bytes;
		}
	}
	return b + (double)m->output.rows * (double)m->output.row_bytes;
}

/*
 * One repetition: prefill n_prompt tokens into an empty cache; then, like
 * llama-bench's tg test, reset and decode n_gen tokens one at a time
 * after `depth` tokens of context (0 by default).
 */
static int
speed_once(struct model *m, struct pool *p, const struct speed_opts *o,
    double *pp, double *tg, char *cause)
{
	long need = o->depth + o->n_gen + 1, nid;
	struct seq_opts so;
	struct seq *s;
	struct seq_work *w = seq_work_new(m, (int32_t)o->chunk, cause);
	int32_t *ids, id;
	float *lg = malloc((size_t)m->hp.n_vocab * sizeof *lg);
	double t;
	long i;
	int rc = -1;

	seq_opts_default(&so);
	so.mode = SEQ_DENSE;
	so.n_cache = (int32_t)(o->n_prompt > need ? o->n_prompt : need);
	so.kv_type = o->kv_type;
	s = seq_new(m, &so, cause);
	nid = o->n_prompt > o->depth ? o->n_prompt : o->depth;
	ids = malloc((size_t)(nid + 1) * sizeof *ids);
	if (s == NULL || w == NULL)
		goto out;
	if (ids == NULL || lg == NULL) {
		err_set(cause, "out of memory");
		goto out;
	}
	for (i = 0; i <= nid; i++) /* fixed, varied, in range */
		ids[i] = (int32_t)((i * 7919 + 13) % m->hp.n_vocab);
	t = opt_now();
	if (seq_eval(s, w, p, ids, (size_t)o->n_prompt, lg, 0, cause) != 0)
		goto out;
	*pp = (double)o->n_prompt / (opt_now() - t);
	seq_reset(s);
	if (seq_eval(s, w, p, ids, (size_t)o->depth + 1, lg, 0, cause) != 0)
		goto out;
	t = opt_now();
	for (i = 0; i < o->n_gen; i++) {
		id = sampler_argmax(lg, m->hp.n_vocab);
		if (seq_eval(s, w, p, &id, 1, lg, 0, cause) != 0)
			goto out;
	}
	*tg = (double)o->n_gen / (opt_now() - t);
	rc = 0;
out:
	seq_free(s);
	seq_work_free(w);
	free(ids);
	free(lg);
	return rc;
}

static int
speed_run(const struct speed_opts *o, char *cause)
{
	struct model_opts mo = { .use_mmap = o->use_mmap,
	    .no_panels = o->no_panels };
	double *pp = calloc((size_t)o->reps, sizeof *pp);
	double *tg = calloc((size_t)o->reps, sizeof *tg), wb, t0;
	struct stats sp, sg, bw = { 0 };
	struct model *m = NULL;
	struct pool *p = NULL;
	long r;
	int rc = -1;

	t0 = opt_now();
	if (pp == NULL || tg == NULL ||
	    (m = model_open(o->model, &mo, cause)) == NULL ||
	    (p = pool_new((int)o->n_threads, cause)) == NULL)
		goto out;
	printf("model: %s\nweights: %.1f MiB read per decoded token; load "
	    "%.1f s\nthreads: %ld, kernels: %s, OpenBLAS: %s\n", m->desc,
	    decode_bytes(m) / 1048576.0, opt_now() - t0, o->n_threads,
	    kern_isa_name(kern_current_isa()), blas_corename());
	fflush(stdout);
	if (speed_once(m, p, o, &pp[0], &tg[0], cause) != 0) /* warm-up */
		goto out;
	for (r = 0; r < o->reps; r++) {
		if (speed_once(m, p, o, &pp[r], &tg[r], cause) != 0)
			goto out;
		fprintf(stderr, "rep %ld/%ld: pp %.1f tok/s, tg %.1f tok/s\n",
		    r + 1, o->reps, pp[r], tg[r]);
	}
	sp = stats_of(pp, (int)o->reps);
	sg = stats_of(tg, (int)o->reps);
	printf("prefill  (%4ld tokens): median %8.1f tok/s  (min %.1f, max "
	    "%.1f)\n", o->n_prompt, sp.median, sp.min, sp.max);
	printf("decode   (%4ld tokens): median %8.1f tok/s  (min %.1f, max "
	    "%.1f) after %ld tokens of context\n", o->n_gen, sg.median,
	    sg.min, sg.max, o->depth + 1);
	bw.max = o->bw;
	if (o->bw <= 0 && bw_measure((int)o->n_threads, (size_t)1 << 30, 5,
	    &bw, cause) != 0)
		goto out;
	wb = decode_bytes(m) / 1e9;
	printf("bandwidth bound: %.1f tok/s at %.1f GB/s (%s); decode "
	    "reaches %.0f%% of it\n", bw.max / wb, bw.max, o->bw > 0 ?
	    "given" : "best measured", 100.0 * sg.median / (bw.max / wb));
	rc = 0;
out:
	pool_free(p);
	model_close(m);
	free(pp);
	free(tg);
	return rc;
}

static int
bench_speed(int argc, char **argv)
{
	struct speed_opts o = { .n_prompt = 512, .n_gen = 128, .reps = 5,
		.chunk = 512, .n_threads = sysconf(_SC_NPROCESSORS_ONLN) };
	char cause[ERR_LEN] = "";
	int c, bad = 0;
	static const struct option lo[] = {
		{ "bw", required_argument, NULL, 'b' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "depth", required_argument, NULL, 'd' },
		{ "mmap", no_argument, NULL, 'M' },
		{ "no-panels", no_argument, NULL, 'P' },
		{ "kv", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	while (!bad && (c = getopt_long(argc, argv, "m:p:n:t:r:h", lo,
	    NULL)) != -1) {
		switch (c) {
		case 'm': o.model = optarg; break;
		case 'M': o.use_mmap = 1; break;
		case 'P': o.no_panels = 1; break;
		case 'k':
			if (seq_kv_parse(optarg, &o.kv_type) != 0)
				bad = err_set(cause, "unknown --kv '%s' (f32 or "
				    "f16)", optarg);
			break;
		case 'p': bad = opt_long("-p", optarg, 1, 1 << 20, &o.n_prompt,
		    cause); break;
		case 'n': bad = opt_long("-n", optarg, 1, 1 << 20, &o.n_gen,
		    cause); break;
		case 't': bad = opt_long("-t", optarg, 1, 512, &o.n_threads,
		    cause); break;
		case 'r': bad = opt_long("-r", optarg, 1, 1000, &o.reps,
		    cause); break;
		case 'b': bad = opt_float("--bw", optarg, 0.1, 1e4, &o.bw,
		    cause); break;
		case 'd': bad = opt_long("--depth", optarg, 0, 1 << 24,
		    &o.depth, cause); break;
		case 'c': bad = opt_long("--chunk", optarg, 1, 4096, &o.chunk,
		    cause); break;
		case 'h':
			printf("usage: sinkd-bench speed -m MODEL [-p 512] "
			    "[-n 128] [-t THREADS] [-r REPS] [--depth D]\n"
			    "                         [--bw GB/s] [--mmap] [--no-panels] "
			    "[--kv f32|f16] [--chunk 512]\n"
			    "Prefill of -p tokens into an empty cache, in chunks "
			    "of at most --chunk (as sinkd's);\ndecode of -n "
			    "tokens after D tokens of context (default 0, as "
			    "llama-bench's\ntg test).\n--no-panels runs "
			    "the panel types on their rows as stored instead of "
			    "the panels\nbuilt at load (A/B runs).\n");
			return 0;
		default: bad = err_set(cause, "bad usage (see --help)");
		}
	}
	if (!bad && o.model == NULL && (o.model = opt_default_model()) == NULL)
		bad = err_set(cause, "%s", opt_no_model_hint);
	if (bad || speed_run(&o, cause) != 0) {
		fprintf(stderr, "sinkd-bench: %s\n", cause);
		return bad ? 2 : 1;
	}
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *what;
} commands[] = {
	{ "speed", bench_speed, "prompt and generation tokens/s" },
	{ "bandwidth", bench_bandwidth, "memory read bandwidth" },
	{ "corpus", bench_corpus, "write an evaluation text sampled from a "
	    "model" },
	{ "ppl", bench_ppl, "perplexity along a long text per cache policy" },
	{ "attn", bench_attn, "attention paid to the first tokens (sinks)" },
	{ "latency", bench_latency, "decode latency and memory: streaming "
	    "vs recompute" },
	{ "daemon", bench_daemon, "what going through sinkd's socket costs" },
	{ "store", bench_store, "snapshot, restore and size of the database" },
	{ "batch", bench_batch, "aggregate decode tokens/s of concurrent "
	    "sequences" },
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: sinkd-bench COMMAND [options]  (COMMAND --help "
	    "for its options)\n");
	for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].what);
}

int
main(int argc, char **argv)
{
	size_t i;

	blas_prepare(argv);
	if (argc < 2 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "sinkd-bench: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
