/*
 * bench_daemon: `sinkd-bench daemon`, what serving through sinkd costs
 * and whether one client's work holds up another's stream.  Scenarios
 * (--scenarios, default all):
 *   single    one greedy continuation in the engine alone and through
 *             sinkd: decode tok/s, first-token latency, gaps
 *   sessions  1, 2, 4 ... sessions at once: aggregate and per-session
 *             tok/s, the gaps between a session's tokens
 *   prefill   streams' gaps while another client feeds a long prompt
 *   import    a stream's gaps while a large export file is imported,
 *             and while a full session is forked
 *   snapshot  a stream's gaps around other sessions' turn-end snapshots
 * Each starts a sinkd of its own (bench_dsrv.c).  The parts are listed
 * in bench_daemon.h.
 */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bench_daemon.h"
#include "model.h"
#include "opt.h"
#include "pool.h"
#include "sampler.h"
#include "seq.h"

static const struct {
	const char *name;
	unsigned bit;
	int (*run)(struct dopts *, char *);
} scens[] = {
	{ "single", DB_SINGLE, dscen_single },
	{ "sessions", DB_SESSIONS, dscen_sessions },
	{ "prefill", DB_PREFILL, dscen_prefill },
	{ "import", DB_IMPORT, dscen_import },
	{ "snapshot", DB_SNAPSHOT, dscen_snapshot },
};
#define N_SCENS (sizeof scens / sizeof scens[0])

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct dpct
dpct_of(double *v, long n)
{
	struct dpct p = { .n = n };

	if (n == 0)
		return p;
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	/* Nearest rank: p99 of fewer than 100 gaps is the largest. */
	p.p50 = v[(n - 1) / 2];
	p.p99 = v[(long)((double)(n - 1) * 0.99 + 0.5)];
	p.max = v[n - 1];
	return p;
}

static int
in_windows(const struct dgap *g, const double *wins, int n_wins)
{
	int i;

	for (i = 0; i < n_wins; i++)
		if (g->t - g->gap <= wins[2 * i + 1] && g->t >= wins[2 * i])
			return 1;
	return 0;
}

struct dpct
dpct_window(const struct dconn *c, int n_conns, const double *wins,
    int n_wins, int inside)
{
	struct dpct p = { 0 };
	double *v;
	long n = 0, total = 0, j;
	int i;

	for (i = 0; i < n_conns; i++)
		total += c[i].n_gaps;
	if ((v = malloc((size_t)(total + 1) * sizeof *v)) == NULL)
		return p;
	for (i = 0; i < n_conns; i++)
		for (j = 0; j < c[i].n_gaps; j++)
			if (in_windows(&c[i].gaps[j], wins, n_wins) == inside)
				v[n++] = c[i].gaps[j].gap;
	p = dpct_of(v, n);
	free(v);
	return p;
}

/*
 * Text of at least n tokens: a sentence repeated.  Repetition costs the
 * forward pass what any text does; only the count matters here.
 */
char *
dtext_tokens(const struct dopts *o, long n, long *got, char *cause)
{
	static const char unit[] = " The little dog ran to the park and "
	    "played with a red ball all day.";
	struct model *m = model_open(o->model, NULL, cause);
	int32_t *ids = NULL;
	size_t k = 0, len = sizeof unit - 1;
	long reps, i;
	char *t = NULL, *p;

	if (m == NULL || tok_encode(m->tok, unit, len, 0, &ids, &k,
	    cause) != 0 || k == 0)
		goto out;
	/* Sentences merge at their joins: add some until there are n. */
	for (reps = (n + (long)k - 1) / (long)k; ; reps += reps / 16 + 1) {
		free(t);
		free(ids);
		ids = NULL;
		if ((t = malloc((size_t)reps * len + 1)) == NULL) {
			err_set(cause, "out of memory");
			goto out;
		}
		for (p = t, i = 0; i < reps; i++, p += len)
			memcpy(p, unit, len);
		*p = '\0';
		if (tok_encode(m->tok, t, strlen(t), 0, &ids, &k,
		    cause) != 0) {
			free(t);
			t = NULL;
			goto out;
		}
		if ((long)k >= n)
			break;
	}
	*got = (long)k;
out:
	free(ids);
	model_close(m);
	return t;
}

int
dkv_token_bytes(const struct dopts *o, size_t *out, char *cause)
{
	struct model *m = model_open(o->model, NULL, cause);

	if (m == NULL)
		return -1;
	/* Keys and values of every layer, f32. */
	*out = (size_t)m->hp.n_layer * 2 * (size_t)m->hp.n_head_kv *
	    (size_t)m->hp.head_dim * sizeof(float);
	model_close(m);
	return 0;
}

/* ---- the engine alone ---- */

static int
engine_once(struct model *m, struct pool *p, const struct dopts *o,
    double *first, double *tps, double *gaps, char *cause)
{
	struct seq_opts so;
	struct sampler_params sp;
	struct seq *s = NULL;
	struct seq_work *w = seq_work_new(m, 256, cause);
	struct sampler *smp = NULL;
	float *lg = malloc((size_t)m->hp.n_vocab * sizeof *lg);
	int32_t *ids = NULL, id;
	size_t n;
	double t0, t1, prev;
	long i;
	int rc = -1;

	seq_opts_default(&so);
	so.n_cache = (int32_t)o->cache;
	sampler_defaults(&sp);
	sp.temp = 0.0f;
	if (w == NULL || lg == NULL || (s = seq_new(m, &so, cause)) == NULL ||
	    (smp = sampler_new(&sp, m->hp.n_vocab, cause)) == NULL ||
	    tok_encode(m->tok, DB_PROMPT, strlen(DB_PROMPT),
	    tok_add_bos(m->tok), &ids, &n, cause) != 0)
		goto out;
	t0 = opt_now();
	if (seq_eval(s, w, p, ids, n, lg, 0, cause) != 0)
		goto out;
	id = sampler_sample(smp, lg);
	prev = t1 = opt_now();
	*first = t1 - t0;
	for (i = 1; i < o->n_tokens; i++) {
		if (seq_eval(s, w, p, &id, 1, lg, 0, cause) != 0)
			goto out;
		id = sampler_sample(smp, lg);
		gaps[i - 1] = opt_now() - prev;
		prev += gaps[i - 1];
	}
	*tps = (double)(o->n_tokens - 1) / (opt_now() - t1);
	rc = 0;
out:
	free(ids);
	free(lg);
	sampler_free(smp);
	seq_free(s);
	seq_work_free(w);
	return rc;
}

/* Medians over reps runs after one warm-up; gaps pooled over the runs. */
int
dengine_run(struct dopts *o, double *first, double *tps, double *p50,
    double *p99, char *cause)
{
	struct model *m = model_open(o->model, NULL, cause);
	struct pool *p = m != NULL ? pool_new((int)o->threads, cause) : NULL;
	double f[100], t[100], *g;
	long r, per = o->n_tokens - 1;
	struct dpct gp;
	int rc = p != NULL ? 0 : -1;

	g = malloc((size_t)(per * (o->reps + 1)) * sizeof *g);
	if (rc == 0 && g == NULL)
		rc = err_set(cause, "out of memory");
	if (rc == 0)
		rc = engine_once(m, p, o, &f[0], &t[0], g, cause);
	for (r = 0; rc == 0 && r < o->reps; r++)
		rc = engine_once(m, p, o, &f[r], &t[r], g + r * per, cause);
	if (rc == 0) {
		printf("model: %s, %ld threads, %ld tokens a turn\n", m->desc,
		    o->threads, o->n_tokens);
		*first = stats_of(f, (int)o->reps).median;
		*tps = o->engine_tps = stats_of(t, (int)o->reps).median;
		gp = dpct_of(g, per * o->reps);
		*p50 = gp.p50;
		*p99 = gp.p99;
	}
	free(g);
	pool_free(p);
	model_close(m);
	return rc;
}

/* ---- options ---- */

static int
parse_scenarios(const char *arg, unsigned *out, char *cause)
{
	char buf[256], *tok, *save = NULL;
	size_t i;

	snprintf(buf, sizeof buf, "%s", arg);
	*out = 0;
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < N_SCENS; i++)
			if (strcmp(tok, scens[i].name) == 0)
				break;
		if (i == N_SCENS)
			return err_set(cause, "unknown scenario '%s' (single, "
			    "sessions, prefill, import, snapshot)", tok);
		*out |= scens[i].bit;
	}
	if (*out == 0)
		return err_set(cause, "--scenarios: none given");
	return 0;
}

static void
usage(void)
{
	printf("usage: sinkd-bench daemon [-m MODEL] [-n 128] [-t THREADS] "
	    "[-r 3] [--cache 1024]\n"
	    "         [--scenarios single,sessions,prefill,import,snapshot]\n"
	    "         [--sessions 1,2,4,8,16] [--prefill-tokens 20000] "
	    "[--import-mib 100]\n"
	    "         [--chunk N] [--prefill-share PCT] [--max-batch N] "
	    "[--store-nice N]\n"
	    "         [--sinkd PATH]\n"
	    "Greedy continuations of \"%s\" through a sinkd started on a "
	    "private\nsocket (default: the sinkd beside this program): "
	    "tokens/s and the gaps\nbetween a stream's tokens, alone and "
	    "beside sessions, a long prompt,\nan import, a fork and "
	    "snapshots.  See sinkd-bench(1).\n", DB_PROMPT);
}

static int
daemon_args(int argc, char **argv, struct dopts *o, char *cause)
{
	static const struct option lo[] = {
		{ "sessions", required_argument, NULL, 'S' },
		{ "sinkd", required_argument, NULL, 'd' },
		{ "cache", required_argument, NULL, 'c' },
		{ "scenarios", required_argument, NULL, 's' },
		{ "prefill-tokens", required_argument, NULL, 'P' },
		{ "import-mib", required_argument, NULL, 'I' },
		{ "chunk", required_argument, NULL, 'C' },
		{ "prefill-share", required_argument, NULL, 'H' },
		{ "max-batch", required_argument, NULL, 'B' },
		{ "store-nice", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, bad = 0;

	while (!bad && (c = getopt_long(argc, argv, "m:n:t:r:h", lo, NULL)) !=
	    -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'd': o->sinkd = optarg; break;
		case 'n': bad = opt_long("-n", optarg, 2, 1 << 24, &o->n_tokens,
		    cause); break;
		case 't': bad = opt_long("-t", optarg, 1, 512, &o->threads,
		    cause); break;
		case 'r': bad = opt_long("-r", optarg, 1, 100, &o->reps, cause);
			break;
		case 'c': bad = opt_long("--cache", optarg, 8, SEQ_MAX_CACHE,
		    &o->cache, cause); break;
		case 'S': bad = opt_long_list("--sessions", optarg, 1,
		    DB_MAX_SESS, o->sess, 8, &o->n_sess, cause); break;
		case 's': bad = parse_scenarios(optarg, &o->scenarios, cause);
			break;
		case 'P': bad = opt_long("--prefill-tokens", optarg, 1,
		    1 << 22, &o->prefill, cause); break;
		case 'I': bad = opt_long("--import-mib", optarg, 1, 4096,
		    &o->import_mib, cause); break;
		case 'C': bad = opt_long("--chunk", optarg, 1, 4096,
		    &o->chunk, cause); break;
		case 'H': bad = opt_long("--prefill-share", optarg, 1, 100000,
		    &o->share, cause); break;
		case 'B': bad = opt_long("--max-batch", optarg, 1, 256,
		    &o->max_batch, cause); break;
		case 'N': bad = opt_long("--store-nice", optarg, 0, 19,
		    &o->store_nice, cause); break;
		case 'h': usage(); return 1;
		default: return err_set(cause, "bad usage (see --help)");
		}
	}
	if (bad)
		return -1;
	if (optind < argc)
		return err_set(cause, "unexpected argument '%s'", argv[optind]);
	if (o->model == NULL && (o->model = opt_default_model()) == NULL)
		return err_set(cause, "%s", opt_no_model_hint);
	return 0;
}

/* The sinkd beside this program, unless --sinkd says. */
static void
find_sinkd(struct dopts *o, const char *argv0, char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char *slash;

	if (o->sinkd != NULL)
		return;
	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL)
			*slash = '\0';
		snprintf(buf, len, "%s/sinkd", exe);
	} else
		snprintf(buf, len, "%s", argv0);
	o->sinkd = buf;
}

int
bench_daemon(int argc, char **argv)
{
	struct dopts o = { .n_tokens = 128, .reps = 3, .cache = 1024,
		.threads = sysconf(_SC_NPROCESSORS_ONLN), .n_sess = 5,
		.sess = { 1, 2, 4, 8, 16 }, .prefill = 20000,
		.import_mib = 100, .scenarios = ~0u, .store_nice = -1 };
	char cause[ERR_LEN] = "", path[PATH_MAX + 8];
	size_t i;
	int rc;

	if ((rc = daemon_args(argc, argv, &o, cause)) != 0) {
		if (rc > 0)
			return 0;
		fprintf(stderr, "sinkd-bench daemon: %s\n", cause);
		return 2;
	}
	find_sinkd(&o, argv[0], path, sizeof path);
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < N_SCENS; i++) {
		if (!(o.scenarios & scens[i].bit))
			continue;
		fprintf(stderr, "sinkd-bench daemon: scenario %s\n",
		    scens[i].name);
		if (scens[i].run(&o, cause) != 0) {
			fprintf(stderr, "sinkd-bench daemon: %s: %s\n",
			    scens[i].name, cause);
			return 1;
		}
		fflush(stdout);
	}
	return 0;
}
