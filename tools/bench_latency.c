/*
 * sinkd-bench latency: what a decoded token costs.  Part 1 is the
 * StreamingLLM paper's Figure 10: per-token latency and cache memory of
 * a streaming cache against the recompute baseline as the cache grows.
 * Part 2 decodes one long stream and samples latency and resident
 * memory along it: both must stay flat once the cache is full.
 * Token ids are pseudo-random (from --seed), so the cost does not depend
 * on what the model predicts; every step still computes the logits, as
 * real decoding does.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bench.h"
#include "kernels.h"
#include "mem.h"
#include "model.h"
#include "opt.h"
#include "plot.h"
#include "pool.h"
#include "seq.h"

#define LAT_MAX_CACHES	32
#define LAT_WIN		1000	/* tokens behind a stream point, at most */
#define LAT_MIB		1048576.0

struct lat_opts {
	const char *model, *csv, *plot;
	long cache[LAT_MAX_CACHES];
	int n_cache;
	long n_tokens, n_threads, n_sink, n_decode, n_recomp;
	long stream_cache, samples;
	uint64_t seed;
	enum kv_type kv_type;
};

/* What every measurement shares. */
struct lat_ctx {
	const struct lat_opts *o;
	struct model *m;
	struct pool *p;
	struct seq_work *w;
	float *logits;
	uint64_t rng;
	FILE *csv;
	int tty;
};

/* Part 1, per cache size; recompute is NaN when skipped. */
struct lat_fig {
	double x[LAT_MAX_CACHES], stream[LAT_MAX_CACHES];
	double recomp[LAT_MAX_CACHES], kv_mib[LAT_MAX_CACHES];
};

/*
 * Part 2: n points at positions pos (tokens decoded), each the median
 * ms/token of the win tokens before it and the RSS in MiB there; point
 * fill (-1: none) is the first window after the cache filled.
 */
struct lat_stream {
	double *pos, *ms, *rss;
	int n, fill;
	long win;
	double *ring, *scratch;
	double kv_mib;
};

static void prog_note(const struct lat_ctx *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* splitmix64: ids that vary without depending on the model. */
static int32_t
next_id(struct lat_ctx *c)
{
	uint64_t z = (c->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (int32_t)(z % (uint64_t)c->m->hp.n_vocab);
}

/* Puts "what n: " before the cause already in cause. */
static int
prefix(char *cause, const char *what, long n)
{
	char why[ERR_LEN];

	snprintf(why, sizeof why, "%s", cause);
	return err_set(cause, "%s %ld: %s", what, n, why);
}

/* Progress that overwrites itself, only on a terminal; "" clears it. */
static void
prog_note(const struct lat_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->tty)
		return;
	va_start(ap, fmt);
	fputc('\r', stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\033[K", stderr);
	va_end(ap);
}

static void
lat_seq_opts(const struct lat_ctx *c, enum seq_mode mode, long n_cache,
    struct seq_opts *so)
{
	seq_opts_default(so);
	so->mode = mode;
	so->n_cache = (int32_t)n_cache;
	/* The paper's recompute baseline is a plain window: no sinks. */
	so->n_sink = mode == SEQ_STREAMING ? (int32_t)c->o->n_sink : -1;
	so->kv_type = c->o->kv_type;
}

/*
 * The caches are checked before hours are spent: the smallest must hold
 * the sinks, the largest fit in memory (recompute's are the same size).
 */
static int
lat_check(const struct lat_ctx *c, char *cause)
{
	const struct lat_opts *o = c->o;
	long v[3] = { o->cache[0], o->cache[o->n_cache - 1], o->n_tokens > 0 ?
	    o->stream_cache : o->cache[0] };
	struct seq_opts so;
	int i;

	for (i = 0; i < 3; i++) {
		lat_seq_opts(c, SEQ_STREAMING, v[i], &so);
		if (seq_check_opts(c->m, &so, cause) != 0)
			return prefix(cause, i < 2 ? "cache" : "stream cache",
			    v[i]);
	}
	return 0;
}

/* Runs n new tokens through s in one call: the wall time in ms, or -1. */
static double
lat_eval(struct lat_ctx *c, struct seq *s, long n, char *cause)
{
	int32_t one, *ids = n == 1 ? &one : malloc((size_t)n * sizeof *ids);
	double t;
	long i;
	int rc;

	if (ids == NULL)
		return err_set(cause, "out of memory for %ld token ids", n);
	for (i = 0; i < n; i++)
		ids[i] = next_id(c);
	t = opt_now();
	rc = seq_eval(s, c->w, c->p, ids, (size_t)n, c->logits, 0, cause);
	t = (opt_now() - t) * 1e3;
	if (ids != &one)
		free(ids);
	return rc != 0 ? -1 : t;
}

/* ---- part 1: Figure 10 ---- */

/* Median ms per token decoded past a full cache of n_cache tokens. */
static int
lat_measure(struct lat_ctx *c, enum seq_mode mode, long n_cache, long n,
    double *ms, double *mib, char *cause)
{
	const char *name = seq_mode_name(mode);
	double *v = calloc((size_t)n, sizeof *v);
	struct seq_opts so;
	struct seq_info si;
	struct seq *s = NULL;
	long i;
	int rc = -1;

	lat_seq_opts(c, mode, n_cache, &so);
	if (v == NULL)
		err_set(cause, "out of memory");
	if (v == NULL || (s = seq_new(c->m, &so, cause)) == NULL)
		goto out;
	prog_note(c, "cache %ld: %s, filling", n_cache, name);
	if (lat_eval(c, s, n_cache, cause) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		/* Notes between fast tokens would disturb them. */
		if (mode == SEQ_RECOMPUTE || i == 0)
			prog_note(c, "cache %ld: %s, decoding token %ld of %ld",
			    n_cache, name, i + 1, n);
		if ((v[i] = lat_eval(c, s, 1, cause)) < 0)
			goto out;
	}
	*ms = stats_of(v, (int)n).median;
	seq_get_info(s, &si);
	*mib = (double)si.bytes / LAT_MIB;
	rc = 0;
out:
	seq_free(s);
	free(v);
	return rc;
}

static void
lat_fig_row(const struct lat_ctx *c, const struct lat_fig *f, int i)
{
	long n = c->o->cache[i];

	if (isnan(f->recomp[i]))
		printf("%8ld  %12.4f  %12s  %8s  %8.2f\n", n, f->stream[i], "-",
		    "-", f->kv_mib[i]);
	else
		printf("%8ld  %12.4f  %12.4f  %7.1fx  %8.2f\n", n,
		    f->stream[i], f->recomp[i], f->recomp[i] / f->stream[i],
		    f->kv_mib[i]);
	fflush(stdout);
	if (c->csv != NULL)
		fprintf(c->csv, "cache,%ld,streaming,%.6f,%.0f\n", n,
		    f->stream[i], f->kv_mib[i] * LAT_MIB);
	if (c->csv != NULL && !isnan(f->recomp[i]))
		fprintf(c->csv, "cache,%ld,recompute,%.6f,%.0f\n", n,
		    f->recomp[i], f->kv_mib[i] * LAT_MIB);
}

static int
lat_fig10(struct lat_ctx *c, struct lat_fig *f, char *cause)
{
	const struct lat_opts *o = c->o;
	double t0 = opt_now(), mib;
	int i;

	printf("\nper-token decode latency past a full cache (median of %ld "
	    "streaming, %ld recompute tokens)\n%8s  %12s  %12s  %8s  %8s\n",
	    o->n_decode, o->n_recomp, "cache", "streaming ms",
	    "recompute ms", "speedup", "KV MiB");
	for (i = 0; i < o->n_cache; i++) {
		f->x[i] = (double)o->cache[i];
		f->recomp[i] = NAN;
		if (lat_measure(c, SEQ_STREAMING, o->cache[i], o->n_decode,
		    &f->stream[i], &f->kv_mib[i], cause) != 0 ||
		    (o->n_recomp > 0 && lat_measure(c, SEQ_RECOMPUTE,
		    o->cache[i], o->n_recomp, &f->recomp[i], &mib,
		    cause) != 0)) {
			prog_note(c, "%s", "");
			return prefix(cause, "cache", o->cache[i]);
		}
		prog_note(c, "%s", "");
		lat_fig_row(c, f, i);
	}
	fprintf(stderr, "cache sizes: %.1f s\n", opt_now() - t0);
	return 0;
}

/* ---- part 2: one long stream ---- */

/*
 * Points at n*k/samples, k = 1..samples, and after the first window
 * past the fill; win is at most the gap between samples, so no token
 * counts in two samples (the fill point may share some with one).
 */
static int
lat_plan(const struct lat_opts *o, struct lat_stream *st, char *cause)
{
	long k, samples = o->samples < o->n_tokens ? o->samples : o->n_tokens;
	double fill, pos;

	st->win = o->n_tokens / samples < LAT_WIN ? o->n_tokens / samples :
	    LAT_WIN;
	fill = (double)(o->stream_cache + st->win);
	st->pos = calloc(3 * ((size_t)samples + 1), sizeof *st->pos);
	st->ring = calloc(2 * (size_t)st->win, sizeof *st->ring);
	if (st->pos == NULL || st->ring == NULL)
		return err_set(cause, "out of memory");
	st->ms = st->pos + samples + 1;
	st->rss = st->ms + samples + 1;
	st->scratch = st->ring + st->win;
	st->fill = -1;
	for (k = 1; k <= samples; k++) {
		pos = (double)((int64_t)o->n_tokens * k / samples);
		if (fill <= pos && st->fill < 0) {
			st->fill = st->n;
			st->pos[st->n++] = fill;
		}
		if (pos != fill)
			st->pos[st->n++] = pos;
	}
	return 0;
}

static int
lat_decode(struct lat_ctx *c, struct seq *s, struct lat_stream *st,
    char *cause)
{
	double t0 = opt_now(), last = t0, now, ms;
	long i, n = c->o->n_tokens, last_i = 0;
	int k = 0;

	for (i = 0; i < n; i++) {
		if ((ms = lat_eval(c, s, 1, cause)) < 0) {
			prog_note(c, "%s", "");
			return prefix(cause, "stream token", i + 1);
		}
		st->ring[i % st->win] = ms;
		if (k < st->n && (double)(i + 1) == st->pos[k]) {
			memcpy(st->scratch, st->ring, (size_t)st->win *
			    sizeof *st->ring);
			st->ms[k] = stats_of(st->scratch, (int)st->win).median;
			st->rss[k++] = (double)mem_rss() / LAT_MIB;
		}
		if ((now = opt_now()) - last < (c->tty ? 0.5 : 30.0))
			continue;
		fprintf(stderr, "%sstream: %ld/%ld tokens (%.1f%%), %.0f "
		    "tok/s%s", c->tty ? "\r" : "", i + 1, n, 100.0 *
		    (double)(i + 1) / (double)n, (double)(i + 1 - last_i) /
		    (now - last), c->tty ? "\033[K" : "\n");
		last = now;
		last_i = i + 1;
	}
	prog_note(c, "%s", "");
	now = opt_now() - t0;
	fprintf(stderr, "stream: %ld tokens in %.1f s (%.0f tok/s)\n", n, now,
	    (double)n / now);
	return 0;
}

static void
lat_summary(const struct lat_ctx *c, const struct lat_stream *st)
{
	int f = st->fill, z = st->n - 1;
	double r;

	if (f < 0 || f == z)
		printf("latency: the stream is too short to compare its end "
		    "with the first %ld tokens after the fill (needs --tokens "
		    "> %ld)\n", st->win, c->o->stream_cache + st->win);
	else {
		r = st->ms[z] / st->ms[f];
		printf("latency: %.4f ms/token at the end vs %.4f right after "
		    "the fill: ratio %.3f, %s 5%%\n", st->ms[z], st->ms[f], r,
		    fabs(r - 1.0) <= 0.05 ? "within" : "NOT within");
	}
	printf("RSS: %.1f MiB at the first point, %.1f MiB at the last: "
	    "growth %+.2f MiB\n", st->rss[0], st->rss[z], st->rss[z] -
	    st->rss[0]);
	if (f > 0 && f < z)	/* the cache's pages are touched as it fills */
		printf("RSS growth since the fill (position %.0f): %+.2f MiB\n",
		    st->pos[f], st->rss[z] - st->rss[f]);
}

static int
lat_stream(struct lat_ctx *c, struct lat_stream *st, char *cause)
{
	const struct lat_opts *o = c->o;
	struct seq_opts so;
	struct seq_info si;
	struct seq *s;
	int i, rc;

	lat_seq_opts(c, SEQ_STREAMING, o->stream_cache, &so);
	if (lat_plan(o, st, cause) != 0 ||
	    (s = seq_new(c->m, &so, cause)) == NULL)
		return -1;
	printf("\nlong stream: cache %ld (%ld sinks), %ld tokens decoded one "
	    "at a time from empty;\neach point: median of the %ld tokens "
	    "before it, and the process's RSS\n", o->stream_cache,
	    o->n_sink, o->n_tokens, st->win);
	fflush(stdout);
	rc = lat_decode(c, s, st, cause);
	seq_get_info(s, &si);
	st->kv_mib = (double)si.bytes / LAT_MIB;
	seq_free(s);
	if (rc != 0)
		return -1;
	printf("%12s  %10s  %8s\n", "position", "ms/token", "RSS MiB");
	for (i = 0; i < st->n; i++) {
		printf("%12.0f  %10.4f  %8.1f%s\n", st->pos[i], st->ms[i],
		    st->rss[i], i == st->fill ? "  first window after the "
		    "fill" : st->pos[i] <= o->stream_cache ? "  filling" : "");
		if (c->csv != NULL)
			fprintf(c->csv, "%s,%.0f,%.6f,%.0f\n", i == st->fill ?
			    "fill" : "stream", st->pos[i], st->ms[i],
			    st->rss[i] * LAT_MIB);
	}
	lat_summary(c, st);
	return 0;
}

/* ---- outputs ---- */

static int
lat_chart(const char *path, const char *tag, const char *title,
    const char *xl, const char *yl, const struct plot_series *s, size_t n,
    char *cause)
{
	struct plot_lines pl = { .title = title, .xlabel = xl, .ylabel = yl,
		.log_x = *tag == '\0', .series = s, .n_series = n };
	const char *dot = strrchr(path, '.');
	size_t len = strlen(path) + strlen(tag) + 1;
	char *p = malloc(len);
	int rc = -1;

	/* lat.png with tag "-rss": lat-rss.png */
	if (p == NULL)
		err_set(cause, "out of memory");
	else {
		snprintf(p, len, "%.*s%s%s", (int)(dot - path), path, tag, dot);
		if ((rc = plot_lines_write(p, &pl, cause)) == 0)
			printf("chart: %s\n", p);
	}
	free(p);
	return rc;
}

/*
 * Beside the stream's lines go the 5% band around the latency after the
 * fill, and the KV cache's size: the axes then show drift at its scale
 * rather than stretch noise over the whole chart.
 */
static int
lat_plot_stream(const struct lat_ctx *c, const struct lat_stream *st,
    char *cause)
{
	const char *xl = "stream position (tokens)";
	double x[2] = { st->pos[0], st->pos[st->n - 1] }, hi[2], lo[2], kv[2];
	struct plot_series sm[3] = {
		{ "streaming", st->pos, st->ms, (size_t)st->n },
		{ "fill +5%", x, hi, 2 }, { "fill -5%", x, lo, 2 },
	}, sr[2] = {
		{ "resident memory", st->pos, st->rss, (size_t)st->n },
		{ "KV cache", x, kv, 2 },
	};
	char t[256];

	hi[0] = hi[1] = st->fill >= 0 ? st->ms[st->fill] * 1.05 : NAN;
	lo[0] = lo[1] = st->fill >= 0 ? st->ms[st->fill] * 0.95 : NAN;
	kv[0] = kv[1] = st->kv_mib;
	snprintf(t, sizeof t, "long stream, cache %ld, %s", c->o->stream_cache,
	    c->m->desc);
	if (lat_chart(c->o->plot, "-stream", t, xl, "ms per token (median)",
	    sm, st->fill >= 0 ? 3 : 1, cause) != 0)
		return -1;
	return lat_chart(c->o->plot, "-rss", t, xl, "MiB", sr, 2, cause);
}

static int
lat_plots(const struct lat_ctx *c, const struct lat_fig *f,
    const struct lat_stream *st, char *cause)
{
	const struct lat_opts *o = c->o;
	struct plot_series s[2] = {
		{ "streaming", f->x, f->stream, (size_t)o->n_cache },
		{ "recompute", f->x, f->recomp, (size_t)o->n_cache },
	};
	char t[256];

	snprintf(t, sizeof t, "decode latency, %s, %ld thread%s", c->m->desc,
	    o->n_threads, o->n_threads > 1 ? "s" : "");
	if (lat_chart(o->plot, "", t, "cache size (tokens)", "ms per token",
	    s, o->n_recomp > 0 ? 2 : 1, cause) != 0)
		return -1;
	return o->n_tokens > 0 ? lat_plot_stream(c, st, cause) : 0;
}

/* Outputs that cannot be written fail before the run, not after it. */
static int
lat_open_outputs(struct lat_ctx *c, char *cause)
{
	const struct lat_opts *o = c->o;
	char *d = o->plot != NULL ? strdup(o->plot) : NULL;
	int rc = 0;

	if (o->plot != NULL && (d == NULL || access(dirname(d), W_OK) != 0))
		rc = err_set(cause, "cannot write %s: %s", o->plot, d == NULL ?
		    "out of memory" : strerror(errno));
	free(d);
	if (rc != 0 || o->csv == NULL)
		return rc;
	if ((c->csv = fopen(o->csv, "w")) == NULL)
		return err_set(cause, "cannot create %s: %s", o->csv,
		    strerror(errno));
	fprintf(c->csv, "# sinkd-bench latency, model %s, %ld threads, kv "
	    "%s, %ld sinks, seed %llu; rows: cache,C,mode,ms_per_token,"
	    "kv_bytes and stream|fill,pos,ms_per_token,rss_bytes\n", o->model,
	    o->n_threads, seq_kv_name(o->kv_type), o->n_sink,
	    (unsigned long long)o->seed);
	return 0;
}

static int
lat_close_csv(struct lat_ctx *c, char *cause)
{
	int bad = ferror(c->csv);

	errno = 0;
	bad = fclose(c->csv) != 0 || bad;
	c->csv = NULL;
	if (bad)
		return err_set(cause, "cannot write %s: %s", c->o->csv,
		    strerror(errno != 0 ? errno : EIO));
	printf("csv: %s\n", c->o->csv);
	return 0;
}

/* ---- command ---- */

static void
lat_header(const struct lat_ctx *c)
{
	const struct lat_opts *o = c->o;

	printf("model: %s\nthreads: %ld, kv: %s, kernels: %s, streaming "
	    "sinks: %ld\ntokens: pseudo-random ids (seed %llu); logits are "
	    "computed at every step\n", c->m->desc, o->n_threads,
	    seq_kv_name(o->kv_type), kern_isa_name(kern_current_isa()),
	    o->n_sink, (unsigned long long)o->seed);
	fflush(stdout);
}

static int
lat_run(const struct lat_opts *o, char *cause)
{
	struct model_opts mo = { .use_mmap = 0 };
	struct lat_ctx c = { .o = o, .rng = o->seed, .tty = isatty(2) };
	struct lat_stream st = { 0 };
	struct lat_fig f;
	int rc = -1;

	if (lat_open_outputs(&c, cause) != 0)
		goto out;
	if ((c.m = model_open(o->model, &mo, cause)) == NULL ||
	    lat_check(&c, cause) != 0 ||
	    (c.p = pool_new((int)o->n_threads, cause)) == NULL ||
	    (c.w = seq_work_new(c.m, 512, cause)) == NULL)
		goto out;
	if ((c.logits = malloc((size_t)c.m->hp.n_vocab *
	    sizeof *c.logits)) == NULL) {
		err_set(cause, "out of memory");
		goto out;
	}
	lat_header(&c);
	if (lat_fig10(&c, &f, cause) == 0 && (o->n_tokens == 0 ||
	    lat_stream(&c, &st, cause) == 0))
		rc = 0;
	if (rc == 0 && c.csv != NULL)
		rc = lat_close_csv(&c, cause);
	if (rc == 0 && o->plot != NULL)
		rc = lat_plots(&c, &f, &st, cause);
out:
	if (c.csv != NULL)	/* keeps the rows a failed run got to */
		fclose(c.csv);
	free(st.pos);
	free(st.ring);
	free(c.logits);
	seq_work_free(c.w);
	pool_free(c.p);
	model_close(c.m);
	return rc;
}

static int
cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static int
lat_usage(void)
{
	printf("usage: sinkd-bench latency -m MODEL [--cache N[,N...]] "
	    "[--tokens N] [--csv OUT]\n  [--plot OUT.png|svg] [-t THREADS] "
	    "[--kv f32|f16] [--sinks N] [--decode N]\n  [--recompute-tokens "
	    "N] [--stream-cache N] [--samples N] [--seed S]\n"
	    "1. Per cache size (256,512,1024,2048): median ms/token of "
	    "--decode (32) tokens\n   streaming and --recompute-tokens (3; 0 "
	    "skips) recompute past a full cache.\n2. One streaming cache of "
	    "--stream-cache (default: the largest --cache) decodes\n   "
	    "--tokens (1000000; 0 skips); latency and RSS at --samples (20) "
	    "points.\n--plot OUT.png also writes OUT-stream.png and "
	    "OUT-rss.png.\n");
	return 1;
}

/* One option into o: 0, or -1 with cause. */
static int
lat_opt(int ch, const char *arg, struct lat_opts *o, char *cause)
{
	switch (ch) {
	case 'm': o->model = arg; return 0;
	case 'C': o->csv = arg; return 0;
	case 'P': o->plot = arg; return 0;
	case 'c': return opt_long_list("--cache", arg, 1, SEQ_MAX_CACHE,
	    o->cache, LAT_MAX_CACHES, &o->n_cache, cause);
	case 'n': return opt_long("--tokens", arg, 0, 1L << 40, &o->n_tokens,
	    cause);
	case 't': return opt_long("-t", arg, 1, 512, &o->n_threads, cause);
	case 'S': return opt_long("--sinks", arg, 0, SEQ_MAX_CACHE - 1,
	    &o->n_sink, cause);
	case 'd': return opt_long("--decode", arg, 1, 1 << 20, &o->n_decode,
	    cause);
	case 'r': return opt_long("--recompute-tokens", arg, 0, 1 << 16,
	    &o->n_recomp, cause);
	case 'w': return opt_long("--stream-cache", arg, 1, SEQ_MAX_CACHE,
	    &o->stream_cache, cause);
	case 's': return opt_long("--samples", arg, 1, 10000, &o->samples,
	    cause);
	case 'e': return opt_u64("--seed", arg, &o->seed, cause);
	case 'k':
		if (seq_kv_parse(arg, &o->kv_type) == 0)
			return 0;
		return err_set(cause, "unknown --kv '%s' (f32 or f16)", arg);
	default: return err_set(cause, "bad usage (see --help)");
	}
}

/* Sorts the cache sizes and drops repeats, so the chart's x rises. */
static int
lat_resolve(struct lat_opts *o, char *cause)
{
	const char *dot = o->plot != NULL ? strrchr(o->plot, '.') : NULL;
	int i, n = 0;

	if (o->model == NULL && (o->model = opt_default_model()) == NULL)
		return err_set(cause, "%s", opt_no_model_hint);
	if (o->plot != NULL && (dot == NULL || strchr(dot, '/') != NULL ||
	    (strcasecmp(dot, ".png") != 0 && strcasecmp(dot, ".svg") != 0)))
		return err_set(cause, "--plot %s: the name must end in .png "
		    "or .svg", o->plot);
	qsort(o->cache, (size_t)o->n_cache, sizeof o->cache[0], cmp_long);
	for (i = 0; i < o->n_cache; i++)
		if (n == 0 || o->cache[i] != o->cache[n - 1])
			o->cache[n++] = o->cache[i];
	o->n_cache = n;
	if (o->stream_cache == 0)
		o->stream_cache = o->cache[n - 1];
	return 0;
}

/* 0: run; 1: help shown; -1: bad usage, with cause. */
static int
lat_parse(int argc, char **argv, struct lat_opts *o, char *cause)
{
	static const struct option lo[] = {
		{ "cache", required_argument, NULL, 'c' },
		{ "tokens", required_argument, NULL, 'n' },
		{ "csv", required_argument, NULL, 'C' },
		{ "plot", required_argument, NULL, 'P' },
		{ "kv", required_argument, NULL, 'k' },
		{ "sinks", required_argument, NULL, 'S' },
		{ "decode", required_argument, NULL, 'd' },
		{ "recompute-tokens", required_argument, NULL, 'r' },
		{ "stream-cache", required_argument, NULL, 'w' },
		{ "samples", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	*o = (struct lat_opts){ .cache = { 256, 512, 1024, 2048 },
		.n_cache = 4, .n_tokens = 1000000, .n_decode = 32,
		.n_sink = SEQ_DEFAULT_SINKS, .n_recomp = 3, .samples = 20,
		.seed = 1, .n_threads = sysconf(_SC_NPROCESSORS_ONLN) };
	if (o->n_threads < 1)
		o->n_threads = 1;
	while ((ch = getopt_long(argc, argv, "m:t:h", lo, NULL)) != -1) {
		if (ch == 'h')
			return lat_usage();
		if (lat_opt(ch, optarg, o, cause) != 0)
			return -1;
	}
	if (optind < argc)
		return err_set(cause, "unexpected argument '%s' (see --help)",
		    argv[optind]);
	return lat_resolve(o, cause);
}

int
bench_latency(int argc, char **argv)
{
	struct lat_opts o;
	char cause[ERR_LEN] = "";
	int rc;

	if ((rc = lat_parse(argc, argv, &o, cause)) != 0) {
		if (rc < 0)
			fprintf(stderr, "sinkd-bench: %s\n", cause);
		return rc < 0 ? 2 : 0;
	}
	if (lat_run(&o, cause) != 0) {
		fprintf(stderr, "sinkd-bench: %s\n", cause);
		return 1;
	}
	return 0;
}
