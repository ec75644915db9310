/*
 * bench_ppl: `sinkd-bench ppl`, the paper's Figure 3 and Table 2: the
 * per-token negative log-likelihood of a long text under each cache
 * policy (mode x cache size x sinks), summarized as perplexity overall
 * and per tenth of the stream, written per token as CSV and drawn as
 * log-perplexity against position.
 *
 * Settings run in parallel on worker threads, one single-threaded
 * sequence each (tiny models run fastest that way).  The recompute
 * baseline, O(cache) forward passes per token, is also cut along the
 * stream: a recompute cache's state is a function of its tokens alone
 * (the sinks and the newest window), so a part that starts at position
 * p is primed by encoding exactly those tokens and then continues just
 * as the whole stream would have.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "model.h"
#include "opt.h"
#include "plot.h"
#include "pool.h"
#include "seq.h"

#define PPL_MAX_LIST 16
#define PPL_SLICES 10
#define PPL_CHUNK 256

struct ppl_opts {
	const char *model, *file, *csv, *plot;
	enum seq_mode modes[4];
	int n_modes, n_caches, n_sinks, bos;
	long caches[PPL_MAX_LIST], sinks[PPL_MAX_LIST];
	long n_threads, max_tokens, dense_max, bin;
	enum kv_type kv;
};

struct setting {
	enum seq_mode mode;
	int32_t cache, sinks;
	char label[48];
	double *nll; /* [n_tok]: nll[i] of token i given 0..i-1; NaN unset */
};

struct job {
	struct setting *st;
	size_t lo, hi; /* predicts tokens [lo, hi) */
};

struct ppl {
	const struct ppl_opts *o;
	struct model *m;
	int32_t *tok;
	size_t n_tok;
	struct setting *st;
	int n_st;
	struct job *jobs;
	int n_jobs;
	atomic_int next;
	atomic_long done; /* tokens predicted so far */
	atomic_int failed;
	char cause[ERR_LEN];
	pthread_mutex_t lock;
};

static void
ppl_usage(FILE *f)
{
	fprintf(f,
"usage: sinkd-bench ppl [-m MODEL] -f TEXT [--modes M[,M...]]\n"
"                       [--cache N[,N...]] [--sinks N[,N...]] [--csv OUT]\n"
"                       [--plot OUT.png|svg] [--tokens N] [--dense-max N]\n"
"                       [--kv f32|f16] [--bos] [--bin N] [-t THREADS]\n"
"Negative log-likelihood of every token of TEXT (one stream, no BOS\n"
"unless --bos) under each cache setting: modes x cache sizes, and for\n"
"streaming x sink counts.  Prints perplexity overall and per tenth of the\n"
"stream, and streaming against recompute at the same cache size.\n"
"  --modes      streaming,window,recompute,dense (default: all four)\n"
"  --cache      cache sizes, sinks included (default 256)\n"
"  --sinks      sink counts for streaming (default 4)\n"
"  --tokens N   evaluate the first N tokens only\n"
"  --dense-max  dense attention covers the first N tokens (default 4096)\n"
"  --csv OUT    per-token NLL, one column per setting\n"
"  --plot OUT   log-perplexity against position, one line per setting,\n"
"               mean NLL over bins of --bin tokens (default: 1/400 of it)\n"
"  -t THREADS   worker threads (default: cores)\n");
}

static int
parse_modes(struct ppl_opts *o, const char *arg, char *cause)
{
	char buf[128], *p, *save = NULL;

	if (strlen(arg) >= sizeof buf)
		return err_set(cause, "--modes: list too long");
	strcpy(buf, arg);
	o->n_modes = 0;
	for (p = strtok_r(buf, ",", &save); p != NULL;
	    p = strtok_r(NULL, ",", &save)) {
		if (o->n_modes == 4)
			return err_set(cause, "--modes: at most 4 modes");
		if (seq_mode_parse(p, &o->modes[o->n_modes]) != 0)
			return err_set(cause, "--modes: unknown mode '%s' "
			    "(streaming, window, recompute, dense)", p);
		o->n_modes++;
	}
	if (o->n_modes == 0)
		return err_set(cause, "--modes: no mode given");
	return 0;
}

static int
ppl_value(struct ppl_opts *o, int c, const char *arg, char *cause)
{
	switch (c) {
	case 'M': return parse_modes(o, arg, cause);
	case 'C': return opt_long_list("--cache", arg, 2, SEQ_MAX_CACHE,
	    o->caches, PPL_MAX_LIST, &o->n_caches, cause);
	case 'S': return opt_long_list("--sinks", arg, 0, SEQ_MAX_CACHE,
	    o->sinks, PPL_MAX_LIST, &o->n_sinks, cause);
	case 'N': return opt_long("--tokens", arg, 2, 1L << 32,
	    &o->max_tokens, cause);
	case 'D': return opt_long("--dense-max", arg, 2, SEQ_MAX_CACHE,
	    &o->dense_max, cause);
	case 'B': return opt_long("--bin", arg, 1, 1L << 30, &o->bin, cause);
	case 't': return opt_long("-t", arg, 1, 512, &o->n_threads, cause);
	case 'K':
		if (seq_kv_parse(arg, &o->kv) != 0)
			return err_set(cause, "unknown --kv '%s' (f32 or f16)",
			    arg);
		return 0;
	}
	return err_set(cause, "bad usage (see --help)");
}

static int
ppl_args(int argc, char **argv, struct ppl_opts *o, char *cause)
{
	static const struct option lo[] = {
		{ "modes", required_argument, NULL, 'M' },
		{ "cache", required_argument, NULL, 'C' },
		{ "sinks", required_argument, NULL, 'S' },
		{ "tokens", required_argument, NULL, 'N' },
		{ "dense-max", required_argument, NULL, 'D' },
		{ "bin", required_argument, NULL, 'B' },
		{ "kv", required_argument, NULL, 'K' },
		{ "csv", required_argument, NULL, 'c' },
		{ "plot", required_argument, NULL, 'p' },
		{ "bos", no_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "m:f:t:h", lo, NULL)) != -1) {
		if (c == 'm')
			o->model = optarg;
		else if (c == 'f')
			o->file = optarg;
		else if (c == 'c')
			o->csv = optarg;
		else if (c == 'p')
			o->plot = optarg;
		else if (c == 'b')
			o->bos = 1;
		else if (c == 'h') {
			ppl_usage(stdout);
			return 1;
		} else if (c == '?' || ppl_value(o, c, optarg, cause) != 0)
			return c == '?' ? err_set(cause, "bad usage (see "
			    "--help)") : -1;
	}
	if (optind < argc)
		return err_set(cause, "unexpected argument '%s'", argv[optind]);
	if (o->file == NULL)
		return err_set(cause, "-f TEXT is required (see --help)");
	if (o->model == NULL && (o->model = opt_default_model()) == NULL)
		return err_set(cause, "%s", opt_no_model_hint);
	return 0;
}

static struct seq_opts
setting_opts(const struct ppl *p, const struct setting *st)
{
	struct seq_opts so;

	seq_opts_default(&so);
	so.mode = st->mode;
	so.n_cache = st->cache;
	so.n_sink = st->mode == SEQ_STREAMING ? st->sinks : 0;
	so.kv_type = p->o->kv;
	return so;
}

static int
add_setting(struct ppl *p, enum seq_mode mode, long cache, long sinks,
    char *cause)
{
	struct setting *st = &p->st[p->n_st];
	struct seq_opts so;
	char why[ERR_LEN];
	size_t i;

	st->mode = mode;
	st->cache = (int32_t)cache;
	st->sinks = (int32_t)sinks;
	if (mode == SEQ_STREAMING)
		snprintf(st->label, sizeof st->label, "streaming %ld/%ld",
		    cache, sinks);
	else if (mode == SEQ_DENSE)
		snprintf(st->label, sizeof st->label, "dense");
	else
		snprintf(st->label, sizeof st->label, "%s %ld",
		    seq_mode_name(mode), cache);
	so = setting_opts(p, st);
	if (seq_check_opts(p->m, &so, why) != 0)
		return err_set(cause, "%s: %s", st->label, why);
	if ((st->nll = malloc(p->n_tok * sizeof *st->nll)) == NULL)
		return err_set(cause, "out of memory");
	for (i = 0; i < p->n_tok; i++)
		st->nll[i] = NAN;
	p->n_st++;
	return 0;
}

static int
make_settings(struct ppl *p, char *cause)
{
	const struct ppl_opts *o = p->o;
	long dense = o->dense_max < (long)p->n_tok ? o->dense_max :
	    (long)p->n_tok;
	int i, c, s, rc = 0;

	p->st = calloc((size_t)(o->n_modes * o->n_caches * o->n_sinks + 4),
	    sizeof *p->st);
	if (p->st == NULL)
		return err_set(cause, "out of memory");
	for (i = 0; i < o->n_modes && rc == 0; i++) {
		if (o->modes[i] == SEQ_DENSE) {
			rc = add_setting(p, SEQ_DENSE, dense, 0, cause);
			continue;
		}
		for (c = 0; c < o->n_caches && rc == 0; c++) {
			if (o->modes[i] != SEQ_STREAMING) {
				rc = add_setting(p, o->modes[i], o->caches[c], 0,
				    cause);
				continue;
			}
			for (s = 0; s < o->n_sinks && rc == 0; s++)
				rc = add_setting(p, SEQ_STREAMING, o->caches[c],
				    o->sinks[s], cause);
		}
	}
	return rc;
}

/* Recompute settings cut into parts (first: they cost the most). */
static int
make_jobs(struct ppl *p, char *cause)
{
	size_t n = p->n_tok, parts, k, len;
	int i, max = 0;

	parts = (size_t)p->o->n_threads * 4;
	if (parts > (n - 1) / 64)
		parts = (n - 1) / 64 > 0 ? (n - 1) / 64 : 1;
	for (i = 0; i < p->n_st; i++)
		max += p->st[i].mode == SEQ_RECOMPUTE ? (int)parts : 1;
	if ((p->jobs = calloc((size_t)max, sizeof *p->jobs)) == NULL)
		return err_set(cause, "out of memory");
	for (i = 0; i < p->n_st; i++) {
		if (p->st[i].mode != SEQ_RECOMPUTE)
			continue;
		len = (n - 1 + parts - 1) / parts;
		for (k = 1; k < n; k += len)
			p->jobs[p->n_jobs++] = (struct job){ &p->st[i], k,
			    k + len < n ? k + len : n };
	}
	for (i = 0; i < p->n_st; i++) {
		if (p->st[i].mode == SEQ_RECOMPUTE)
			continue;
		p->jobs[p->n_jobs++] = (struct job){ &p->st[i], 1,
		    p->st[i].mode == SEQ_DENSE ? (size_t)p->st[i].cache : n };
	}
	return 0;
}

/* -log softmax(lg)[target], in double. */
static double
nll_of(const float *lg, int32_t nv, int32_t target)
{
	double max = lg[0], sum = 0.0;
	int32_t i;

	for (i = 1; i < nv; i++)
		max = lg[i] > max ? lg[i] : max;
	for (i = 0; i < nv; i++)
		sum += exp((double)lg[i] - max);
	return log(sum) + max - lg[target];
}

struct worker {
	struct ppl *p;
	struct pool *pool;
	struct seq_work *w;
	float *logits; /* [PPL_CHUNK][n_vocab] */
	char cause[ERR_LEN];
};

/*
 * Streaming, window and dense: the tokens before hi in chunks; row t of
 * a chunk starting at i predicts token i + t + 1.
 */
static int
run_linear(struct worker *wk, struct seq *s, const struct job *j)
{
	struct ppl *p = wk->p;
	int32_t nv = p->m->hp.n_vocab;
	size_t i, c, t;

	for (i = 0; i + 1 < j->hi; i += c) {
		c = j->hi - 1 - i < PPL_CHUNK ? j->hi - 1 - i : PPL_CHUNK;
		if (seq_eval(s, wk->w, wk->pool, p->tok + i, c, wk->logits, 1,
		    wk->cause) != 0)
			return -1;
		for (t = 0; t < c; t++)
			j->st->nll[i + t + 1] = nll_of(wk->logits + t *
			    (size_t)nv, nv, p->tok[i + t + 1]);
		atomic_fetch_add(&p->done, (long)c);
		if (atomic_load(&p->failed))
			return 0;
	}
	return 0;
}

/*
 * Recompute from token lo on: prime the cache with what it would hold
 * after the lo - 1 tokens before (all of them, or the sinks and the
 * newest window), then feed one token per prediction.
 */
static int
run_recompute(struct worker *wk, struct seq *s, const struct job *j)
{
	struct ppl *p = wk->p;
	size_t k = j->lo - 1, cap = (size_t)j->st->cache, i;
	size_t S = (size_t)j->st->sinks;

	if (k > 0 && k <= cap && seq_eval(s, wk->w, wk->pool, p->tok, k, NULL,
	    0, wk->cause) != 0)
		return -1;
	if (k > cap && ((S > 0 && seq_eval(s, wk->w, wk->pool, p->tok, S,
	    NULL, 0, wk->cause) != 0) || seq_eval(s, wk->w, wk->pool,
	    p->tok + k - (cap - S), cap - S, NULL, 0, wk->cause) != 0))
		return -1;
	for (i = j->lo; i < j->hi; i++) {
		if (seq_eval(s, wk->w, wk->pool, p->tok + i - 1, 1, wk->logits,
		    0, wk->cause) != 0)
			return -1;
		j->st->nll[i] = nll_of(wk->logits, p->m->hp.n_vocab,
		    p->tok[i]);
		atomic_fetch_add(&p->done, 1);
		if (atomic_load(&p->failed))
			return 0;
	}
	return 0;
}

static int
run_job(struct worker *wk, const struct job *j)
{
	struct seq_opts so = setting_opts(wk->p, j->st);
	struct seq *s = seq_new(wk->p->m, &so, wk->cause);
	int rc;

	if (s == NULL)
		return -1;
	rc = j->st->mode == SEQ_RECOMPUTE ? run_recompute(wk, s, j) :
	    run_linear(wk, s, j);
	seq_free(s);
	return rc;
}

static void *
worker_main(void *arg)
{
	struct worker *wk = arg;
	struct ppl *p = wk->p;
	int i;

	while (!atomic_load(&p->failed) &&
	    (i = atomic_fetch_add(&p->next, 1)) < p->n_jobs) {
		if (run_job(wk, &p->jobs[i]) != 0) {
			pthread_mutex_lock(&p->lock);
			if (!atomic_exchange(&p->failed, 1))
				snprintf(p->cause, sizeof p->cause, "%.40s: "
				    "%.200s", p->jobs[i].st->label, wk->cause);
			pthread_mutex_unlock(&p->lock);
		}
	}
	return NULL;
}

static long
total_work(const struct ppl *p)
{
	long t = 0;
	int i;

	for (i = 0; i < p->n_jobs; i++)
		t += (long)(p->jobs[i].hi - p->jobs[i].lo);
	return t;
}

/* Progress on stderr while the workers run, once a second. */
static void
watch(struct ppl *p, pthread_t *th, int n)
{
	long total = total_work(p), d;
	double t0 = opt_now();
	int tty = isatty(2), i;

	while (tty && atomic_load(&p->next) < p->n_jobs + n &&
	    !atomic_load(&p->failed)) {
		d = atomic_load(&p->done);
		fprintf(stderr, "\rppl: %5.1f%% of %ld predictions, %.0f s",
		    100.0 * (double)d / (double)total, total, opt_now() - t0);
		sleep(1);
	}
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	fprintf(stderr, "%sppl: %ld predictions in %d settings, %.1f s\n",
	    tty ? "\r" : "", total, p->n_st, opt_now() - t0);
}

static int
run_all(struct ppl *p, char *cause)
{
	int n = (int)p->o->n_threads, i, started = 0;
	struct worker *wk = calloc((size_t)n, sizeof *wk);
	pthread_t *th = calloc((size_t)n, sizeof *th);
	size_t nv = (size_t)p->m->hp.n_vocab;

	if (wk == NULL || th == NULL) {
		free(wk);
		free(th);
		return err_set(cause, "out of memory");
	}
	for (i = 0; i < n; i++) {
		wk[i].p = p;
		if ((wk[i].pool = pool_new(1, cause)) == NULL ||
		    (wk[i].w = seq_work_new(p->m, PPL_CHUNK, cause)) == NULL ||
		    (wk[i].logits = malloc(PPL_CHUNK * nv * sizeof(float))) ==
		    NULL || pthread_create(&th[started], NULL, worker_main,
		    &wk[i]) != 0) {
			atomic_store(&p->failed, 1);
			snprintf(p->cause, sizeof p->cause, "cannot start "
			    "worker %d", i);
			break;
		}
		started++;
	}
	watch(p, th, started);
	for (i = 0; i < n; i++) {
		free(wk[i].logits);
		seq_work_free(wk[i].w);
		pool_free(wk[i].pool);
	}
	free(wk);
	free(th);
	if (atomic_load(&p->failed))
		return err_set(cause, "%s", p->cause);
	return 0;
}

/* Perplexity over tokens [lo, hi) of a setting; NAN if none evaluated. */
static double
ppl_range(const struct setting *st, size_t lo, size_t hi)
{
	double sum = 0.0;
	size_t i, n = 0;

	for (i = lo; i < hi; i++) {
		if (!isnan(st->nll[i])) {
			sum += st->nll[i];
			n++;
		}
	}
	return n > 0 ? exp(sum / (double)n) : NAN;
}

static size_t
slice_lo(const struct ppl *p, int k)
{
	return 1 + (p->n_tok - 1) * (size_t)k / PPL_SLICES;
}

static void
print_row(const struct ppl *p, const struct setting *st)
{
	double v;
	size_t n = 0, i;
	int k;

	for (i = 1; i < p->n_tok; i++)
		n += !isnan(st->nll[i]);
	printf("%-18s %8zu %8.3f", st->label, n, ppl_range(st, 1, p->n_tok));
	for (k = 0; k < PPL_SLICES; k++) {
		v = ppl_range(st, slice_lo(p, k), slice_lo(p, k + 1));
		if (isnan(v))
			printf(" %6s", "-");
		else
			printf(" %6.3f", v);
	}
	printf("\n");
}

static void
print_table(const struct ppl *p)
{
	int i, k;

	printf("\n%-18s %8s %8s", "setting", "tokens", "ppl");
	for (k = 0; k < PPL_SLICES; k++)
		printf("  %3d%%+", k * 100 / PPL_SLICES);
	printf("\n");
	for (i = 0; i < p->n_st; i++)
		print_row(p, &p->st[i]);
}

static const struct setting *
find_setting(const struct ppl *p, enum seq_mode mode, int32_t cache)
{
	int i;

	for (i = 0; i < p->n_st; i++)
		if (p->st[i].mode == mode && p->st[i].cache == cache)
			return &p->st[i];
	return NULL;
}

/* Streaming and window against recompute at the same cache size. */
static void
print_vs_recompute(const struct ppl *p)
{
	const struct setting *st, *rc;
	double all, worst, r;
	int i, k, wk, hdr = 0;

	for (i = 0; i < p->n_st; i++) {
		st = &p->st[i];
		if ((st->mode != SEQ_STREAMING && st->mode != SEQ_WINDOW) ||
		    (rc = find_setting(p, SEQ_RECOMPUTE, st->cache)) == NULL)
			continue;
		if (!hdr++)
			printf("\nagainst recompute at the same cache size "
			    "(perplexity ratio - 1):\n");
		all = ppl_range(st, 1, p->n_tok) / ppl_range(rc, 1, p->n_tok);
		worst = 0.0;
		wk = 0;
		for (k = 0; k < PPL_SLICES; k++) {
			r = ppl_range(st, slice_lo(p, k), slice_lo(p, k + 1)) /
			    ppl_range(rc, slice_lo(p, k), slice_lo(p, k + 1));
			if (fabs(r - 1.0) > fabs(worst - 1.0) || k == 0) {
				worst = r;
				wk = k;
			}
		}
		printf("  %-18s overall %+6.2f%%, worst tenth %+6.2f%% (at "
		    "%d%%)\n", st->label, 100.0 * (all - 1.0), 100.0 *
		    (worst - 1.0), wk * 100 / PPL_SLICES);
	}
}

static int
write_csv(const struct ppl *p, const char *path, char *cause)
{
	FILE *f = fopen(path, "w");
	size_t i;
	int s;

	if (f == NULL)
		return err_set(cause, "%s: %s", path, strerror(errno));
	fprintf(f, "pos,token");
	for (s = 0; s < p->n_st; s++)
		fprintf(f, ",%s", p->st[s].label);
	fprintf(f, "\n");
	for (i = 1; i < p->n_tok; i++) {
		fprintf(f, "%zu,%d", i, p->tok[i]);
		for (s = 0; s < p->n_st; s++) {
			if (isnan(p->st[s].nll[i]))
				fprintf(f, ",");
			else
				fprintf(f, ",%.6f", p->st[s].nll[i]);
		}
		fprintf(f, "\n");
	}
	if (fclose(f) != 0)
		return err_set(cause, "%s: %s", path, strerror(errno));
	return 0;
}

/* Mean NLL (log perplexity) of each bin of `bin` tokens. */
static void
bin_series(const struct ppl *p, const struct setting *st, size_t bin,
    double *x, double *y, size_t *n)
{
	size_t lo, i, c;
	double sum;

	*n = 0;
	for (lo = 1; lo < p->n_tok; lo += bin) {
		sum = 0.0;
		c = 0;
		for (i = lo; i < lo + bin && i < p->n_tok; i++) {
			if (!isnan(st->nll[i])) {
				sum += st->nll[i];
				c++;
			}
		}
		x[*n] = (double)lo + (double)bin / 2.0;
		y[*n] = c > 0 ? sum / (double)c : NAN;
		(*n)++;
	}
}

static int
draw(const struct ppl *p, const char *path, char *cause)
{
	size_t bin = p->o->bin > 0 ? (size_t)p->o->bin : (p->n_tok + 399) /
	    400, nb = p->n_tok / bin + 2;
	struct plot_series *ser = calloc((size_t)p->n_st, sizeof *ser);
	double *xy = malloc(2 * nb * (size_t)p->n_st * sizeof *xy);
	char title[256];
	struct plot_lines pl = { .title = title, .xlabel = "token position",
		.ylabel = "log perplexity (mean NLL per bin)", .series = ser,
		.n_series = (size_t)p->n_st };
	int i, rc = -1;

	if (ser == NULL || xy == NULL) {
		err_set(cause, "out of memory");
		goto out;
	}
	snprintf(title, sizeof title, "log perplexity along the stream, "
	    "bins of %zu tokens", bin);
	for (i = 0; i < p->n_st; i++) {
		ser[i].label = p->st[i].label;
		ser[i].x = xy + 2 * nb * (size_t)i;
		ser[i].y = xy + 2 * nb * (size_t)i + nb;
		bin_series(p, &p->st[i], bin, (double *)ser[i].x,
		    (double *)ser[i].y, &ser[i].n);
	}
	rc = plot_lines_write(path, &pl, cause);
out:
	free(ser);
	free(xy);
	return rc;
}

static int
load_text(struct ppl *p, char *cause)
{
	char *text;
	size_t len;
	int rc;

	if ((text = opt_read_all(p->o->file, &len, cause)) == NULL)
		return -1;
	rc = tok_encode(p->m->tok, text, len, p->o->bos && tok_bos(
	    p->m->tok) >= 0, &p->tok, &p->n_tok, cause);
	free(text);
	if (rc != 0)
		return -1;
	if (p->o->max_tokens > 0 && p->n_tok > (size_t)p->o->max_tokens)
		p->n_tok = (size_t)p->o->max_tokens;
	if (p->n_tok < 2)
		return err_set(cause, "%s holds %zu tokens: nothing to predict",
		    p->o->file, p->n_tok);
	return 0;
}

static void
ppl_free(struct ppl *p)
{
	int i;

	for (i = 0; i < p->n_st; i++)
		free(p->st[i].nll);
	free(p->st);
	free(p->jobs);
	free(p->tok);
	model_close(p->m);
	pthread_mutex_destroy(&p->lock);
}

static int
ppl_run(struct ppl *p, char *cause)
{
	const struct ppl_opts *o = p->o;

	if ((p->m = model_open(o->model, NULL, cause)) == NULL ||
	    load_text(p, cause) != 0 || make_settings(p, cause) != 0 ||
	    make_jobs(p, cause) != 0)
		return -1;
	printf("model: %s (context length %d in its metadata)\ntext: %s, %zu tokens%s; "
	    "%d settings, %ld threads, KV %s\n", p->m->desc,
	    p->m->hp.n_ctx_train, o->file, p->n_tok, o->bos ? " (BOS first)" :
	    "", p->n_st, o->n_threads, seq_kv_name(o->kv));
	fflush(stdout);
	if (run_all(p, cause) != 0)
		return -1;
	print_table(p);
	print_vs_recompute(p);
	if (o->csv != NULL && write_csv(p, o->csv, cause) != 0)
		return -1;
	if (o->plot != NULL && draw(p, o->plot, cause) != 0)
		return -1;
	if (o->csv != NULL)
		printf("per-token NLL: %s\n", o->csv);
	if (o->plot != NULL)
		printf("plot: %s\n", o->plot);
	return 0;
}

int
bench_ppl(int argc, char **argv)
{
	struct ppl_opts o = { .n_modes = 4, .modes = { SEQ_STREAMING,
		SEQ_WINDOW, SEQ_RECOMPUTE, SEQ_DENSE }, .n_caches = 1,
		.caches = { 256 }, .n_sinks = 1, .sinks = { 4 },
		.dense_max = 4096, .n_threads = sysconf(_SC_NPROCESSORS_ONLN) };
	struct ppl p = { .o = &o };
	char cause[ERR_LEN] = "";
	int rc;

	pthread_mutex_init(&p.lock, NULL);
	if ((rc = ppl_args(argc, argv, &o, cause)) != 0) {
		pthread_mutex_destroy(&p.lock);
		if (rc > 0)
			return 0;
		fprintf(stderr, "sinkd-bench ppl: %s\n", cause);
		return 2;
	}
	if (o.n_threads < 1)
		o.n_threads = 1;
	rc = ppl_run(&p, cause);
	if (rc != 0)
		fprintf(stderr, "sinkd-bench ppl: %s\n", cause);
	ppl_free(&p);
	return rc != 0;
}
