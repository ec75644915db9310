/*
 * bench_batch: sinkd-bench batch, the engine's aggregate decode rate
 * with several sequences decoding at once, as the daemon's worker runs
 * them: each step one seq_eval_batch over every sequence's next token
 * (greedy), so the weights are read once per step for all of them.
 * No daemon, no sampling cost: the engine alone.  Prints, per number of
 * sessions, the aggregate and per-session tokens/s (median of -r
 * repetitions) and the speed-up over one session.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "kernels.h"
#include "opt.h"
#include "sampler.h"
#include "seq.h"

#define BATCH_MAX_LIST 16
#define BATCH_MAX_SESSIONS 256

struct batch_opts {
	const char *model;
	long sessions[BATCH_MAX_LIST];
	int n_sessions;
	long n_threads, n_gen, reps;
	int no_panels;
};

/*
 * k sequences, each given a different first token, then n_gen steps of
 * one batch each; tokens/s over the steps (the first evaluation is not
 * timed: it warms the caches' pages).
 */
static int
batch_once(struct model *m, struct pool *p, size_t k, long n_gen,
    double *tps, char *cause)
{
	size_t nv = (size_t)m->hp.n_vocab, i;
	struct seq **s = calloc(k, sizeof *s);
	struct seq_seg *seg = calloc(k, sizeof *seg);
	int32_t *tok = calloc(k, sizeof *tok);
	float *lg = malloc(k * nv * sizeof *lg);
	struct seq_work *w = seq_work_new(m, (int32_t)k, cause);
	struct seq_opts so;
	double t = 0.0;
	long step;
	int rc = -1;

	if (s == NULL || seg == NULL || tok == NULL || lg == NULL) {
		err_set(cause, "out of memory");
		goto out;
	}
	if (w == NULL)
		goto out;
	seq_opts_default(&so);
	so.mode = SEQ_DENSE;
	so.n_cache = (int32_t)n_gen + 2;
	for (i = 0; i < k; i++) {
		if ((s[i] = seq_new(m, &so, cause)) == NULL)
			goto out;
		tok[i] = (int32_t)((i * 7919 + 13) % nv);
		seg[i].s = s[i];
		seg[i].tokens = &tok[i];
		seg[i].n = 1;
		seg[i].logits = lg + i * nv;
	}
	for (step = -1; step < n_gen; step++) {
		if (step == 0)
			t = opt_now();
		if (seq_eval_batch(w, p, seg, k, cause) != 0) {
			if (cause[0] == '\0')
				err_set(cause, "%s", seg[0].cause);
			goto out;
		}
		for (i = 0; i < k; i++)
			tok[i] = sampler_argmax(lg + i * nv, (int32_t)nv);
	}
	*tps = (double)n_gen * (double)k / (opt_now() - t);
	rc = 0;
out:
	if (s != NULL)
		for (i = 0; i < k; i++)
			seq_free(s[i]);
	seq_work_free(w);
	free(s);
	free(seg);
	free(tok);
	free(lg);
	return rc;
}

static int
batch_run(const struct batch_opts *o, char *cause)
{
	struct model_opts mo = { .no_panels = o->no_panels };
	double *v = calloc((size_t)o->reps, sizeof *v), one = 0.0;
	struct model *m = NULL;
	struct pool *p = NULL;
	struct stats st;
	long r;
	int i, rc = -1;

	if (v == NULL || (m = model_open(o->model, &mo, cause)) == NULL ||
	    (p = pool_new((int)o->n_threads, cause)) == NULL)
		goto out;
	printf("model: %s\nthreads: %ld, kernels: %s, %ld tokens per "
	    "session, median of %ld\n", m->desc, o->n_threads,
	    kern_isa_name(kern_current_isa()), o->n_gen, o->reps);
	printf("%8s %14s %14s %9s\n", "sessions", "aggregate t/s",
	    "per-session", "speed-up");
	fflush(stdout);
	for (i = 0; i < o->n_sessions; i++) {
		for (r = 0; r < o->reps; r++) {
			if (batch_once(m, p, (size_t)o->sessions[i], o->n_gen,
			    &v[r], cause) != 0)
				goto out;
		}
		st = stats_of(v, (int)o->reps);
		if (i == 0 || o->sessions[i] == 1)
			one = st.median / (double)o->sessions[i];
		printf("%8ld %14.1f %14.1f %8.2fx\n", o->sessions[i],
		    st.median, st.median / (double)o->sessions[i],
		    st.median / one);
		fflush(stdout);
	}
	rc = 0;
out:
	pool_free(p);
	model_close(m);
	free(v);
	return rc;
}

int
bench_batch(int argc, char **argv)
{
	struct batch_opts o = { .sessions = { 1, 2, 4, 8, 16 },
		.n_sessions = 5, .n_gen = 64, .reps = 3,
		.n_threads = sysconf(_SC_NPROCESSORS_ONLN) };
	char cause[ERR_LEN] = "";
	int c, bad = 0;
	static const struct option lo[] = {
		{ "sessions", required_argument, NULL, 's' },
		{ "no-panels", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	while (!bad && (c = getopt_long(argc, argv, "m:n:t:r:s:h", lo,
	    NULL)) != -1) {
		switch (c) {
		case 'm': o.model = optarg; break;
		case 'P': o.no_panels = 1; break;
		case 's': bad = opt_long_list("--sessions", optarg, 1,
		    BATCH_MAX_SESSIONS, o.sessions, BATCH_MAX_LIST,
		    &o.n_sessions, cause); break;
		case 'n': bad = opt_long("-n", optarg, 1, 1 << 20, &o.n_gen,
		    cause); break;
		case 't': bad = opt_long("-t", optarg, 1, 512, &o.n_threads,
		    cause); break;
		case 'r': bad = opt_long("-r", optarg, 1, 1000, &o.reps,
		    cause); break;
		case 'h':
			printf("usage: sinkd-bench batch -m MODEL [--sessions "
			    "1,2,4,8,16] [-n 64] [-t THREADS] [-r 3]\n"
			    "                         [--no-panels]\n"
			    "Aggregate greedy decode tokens/s of several "
			    "sequences, one seq_eval_batch per\nstep over "
			    "every sequence's next token.\n");
			return 0;
		default: bad = err_set(cause, "bad usage (see --help)");
		}
	}
	if (!bad && optind < argc)
		bad = err_set(cause, "unexpected argument '%s'", argv[optind]);
	if (!bad && o.model == NULL && (o.model = opt_default_model()) == NULL)
		bad = err_set(cause, "%s", opt_no_model_hint);
	if (bad || batch_run(&o, cause) != 0) {
		fprintf(stderr, "sinkd-bench: %s\n", cause);
		return bad ? 2 : 1;
	}
	return 0;
}
