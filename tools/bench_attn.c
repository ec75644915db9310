/*
 * bench attn: the StreamingLLM paper's Figure 2, the average attention
 * each layer and head pays to the first K tokens of short segments.
 * Owns the command's options, the probe that accumulates the weights
 * during dense, token-by-token decode, and the table, verdict, CSV and
 * heat map made from them.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "model.h"
#include "opt.h"
#include "plot.h"
#include "pool.h"
#include "seq.h"
#include "tokenizer.h"

/* A layer is a sink layer when token 0 gets this many times uniform. */
#define SINK_RATIO 2.0

struct attn_opts {
	const char *model, *text, *plot, *csv;
	long len, segments, first, threads;
	int bos;
};

/*
 * Sums per (layer, head), each written only by the thread that runs that
 * head, so the probe needs no lock.  Only queries at positions q >= k
 * count: every one of them sees all k first tokens.
 */
struct attn_acc {
	int n_layer, n_head, k;
	double *w;	/* [layer][head][k]: weight on slot j */
	double *uni;	/* [layer][head]: 1/(q+1), token 0 under uniform */
	long *n;	/* [layer][head]: queries counted */
};

struct layer_sum {
	double t0, rest, uni, max; /* means over heads; max: best head */
	int max_head, sink; /* sink: token 0 gets SINK_RATIO x uniform */
};

static void
acc_probe(void *arg, int layer, int head, const float *weights,
    int32_t n_slots)
{
	struct attn_acc *a = arg;
	size_t lh;
	int j;

	if (layer < 0 || layer >= a->n_layer || head < 0 ||
	    head >= a->n_head || n_slots - 1 < a->k)
		return;
	lh = (size_t)layer * (size_t)a->n_head + (size_t)head;
	for (j = 0; j < a->k; j++)
		a->w[lh * (size_t)a->k + (size_t)j] += weights[j];
	a->uni[lh] += 1.0 / n_slots;
	a->n[lh]++;
}

static void
acc_free(struct attn_acc *a)
{
	free(a->w);
	free(a->uni);
	free(a->n);
}

static int
acc_init(struct attn_acc *a, const struct model *m, int k, char *cause)
{
	size_t nlh = (size_t)m->hp.n_layer * (size_t)m->hp.n_head;

	a->n_layer = m->hp.n_layer;
	a->n_head = m->hp.n_head;
	a->k = k;
	a->w = calloc(nlh * (size_t)k, sizeof *a->w);
	a->uni = calloc(nlh, sizeof *a->uni);
	a->n = calloc(nlh, sizeof *a->n);
	if (a->w == NULL || a->uni == NULL || a->n == NULL) {
		acc_free(a);
		return err_set(cause, "out of memory for %zu heads", nlh);
	}
	return 0;
}

/* Mean weight of head lh (layer * n_head + head) on key position j. */
static double
acc_mean(const struct attn_acc *a, size_t lh, int j)
{
	return a->n[lh] ? a->w[lh * (size_t)a->k + (size_t)j] / a->n[lh] : 0;
}

static struct layer_sum
layer_of(const struct attn_acc *a, int l)
{
	struct layer_sum s = { 0 };
	size_t lh;
	double v;
	int h, j;

	for (h = 0; h < a->n_head; h++) {
		lh = (size_t)l * (size_t)a->n_head + (size_t)h;
		v = acc_mean(a, lh, 0);
		s.t0 += v / a->n_head;
		for (j = 1; j < a->k; j++)
			s.rest += acc_mean(a, lh, j) / a->n_head;
		if (a->n[lh])
			s.uni += a->uni[lh] / a->n[lh] / a->n_head;
		if (h == 0 || v > s.max) {
			s.max = v;
			s.max_head = h;
		}
	}
	s.sink = s.t0 >= SINK_RATIO * s.uni;
	return s;
}

/* Reads and encodes the text, which must hold at least one segment. */
static int
load_tokens(const struct attn_opts *o, const struct model *m, int32_t **ids,
    size_t *n_tok, char *cause)
{
	long per = o->len - o->bos; /* text tokens per segment */
	size_t len, n = 0;
	char *text;
	int rc;

	*ids = NULL;
	if (o->bos && tok_bos(m->tok) < 0)
		return err_set(cause, "--bos: the model has no BOS token");
	if (o->len > m->hp.n_ctx_train)
		fprintf(stderr, "sinkd-bench: warning: --len %ld is past the "
		    "model's training context of %d\n", o->len,
		    m->hp.n_ctx_train);
	if ((text = opt_read_all(o->text, &len, cause)) == NULL)
		return -1;
	if (len == 0) {
		free(text);
		return err_set(cause, "%s: empty text", o->text);
	}
	rc = tok_encode(m->tok, text, len, 0, ids, &n, cause);
	free(text);
	if (rc != 0)
		return -1;
	if (n < (size_t)per) /* *ids is the caller's to free */
		return err_set(cause, "%s holds %zu tokens, fewer than one "
		    "segment of %ld%s (--len)", o->text, n, o->len,
		    o->bos ? " with BOS" : "");
	*n_tok = n;
	return 0;
}

static void
progress(long i, long n, int tty)
{
	if (tty && i < n)
		fprintf(stderr, "\rsegment %ld/%ld", i + 1, n);
	else if (tty)
		fprintf(stderr, "\r%40s\r", "");
}

/* Each segment in a fresh dense cache: slot j is position j. */
static int
run_segments(const struct attn_opts *o, const struct model *m,
    const int32_t *ids, long n_seg, struct attn_acc *a, char *cause)
{
	long per = o->len - o->bos, i;
	int tty = isatty(STDERR_FILENO), rc = -1;
	int32_t *seg = malloc((size_t)o->len * sizeof *seg);
	struct seq_work *w = seq_work_new(m, 1, cause);
	struct pool *p = NULL;
	struct seq *s = NULL;
	struct seq_opts so;

	seq_opts_default(&so);
	so.mode = SEQ_DENSE;
	so.n_cache = (int32_t)o->len;
	if (w == NULL || (p = pool_new((int)o->threads, cause)) == NULL ||
	    (s = seq_new(m, &so, cause)) == NULL ||
	    (seg == NULL && err_set(cause, "out of memory") != 0))
		goto out;
	seq_set_probe(s, acc_probe, a);
	seg[0] = tok_bos(m->tok);
	for (i = 0; i < n_seg; i++) {
		progress(i, n_seg, tty);
		memcpy(seg + o->bos, ids + i * per, (size_t)per * sizeof *seg);
		seq_reset(s);
		if (seq_eval(s, w, p, seg, (size_t)o->len, NULL, 0, cause) != 0)
			goto out;
	}
	rc = 0;
out:
	progress(n_seg, n_seg, tty);
	seq_free(s);
	pool_free(p);
	seq_work_free(w);
	free(seg);
	return rc;
}

/* "0, 2-4" for the sink layers. */
static void
fmt_layers(const struct layer_sum *ls, int n, char *buf, size_t cap)
{
	size_t used = 0;
	int l, e;

	buf[0] = '\0';
	for (l = 0; l < n && used < cap; l++) {
		if (!ls[l].sink)
			continue;
		for (e = l; e + 1 < n && ls[e + 1].sink; e++)
			;
		used += (size_t)snprintf(buf + used, cap - used, e > l ?
		    "%s%d-%d" : "%s%d", used ? ", " : "", l, e);
		l = e;
	}
}

/*
 * The layers that give token 0 at least SINK_RATIO times its uniform
 * share, and the mean weight there and elsewhere.
 */
static void
print_verdict(const struct attn_acc *a, const struct layer_sum *ls)
{
	double in = 0, out = 0, uni = 0;
	char names[512];
	int l, n_in = 0, top = 0;

	for (l = 0; l < a->n_layer; l++) {
		n_in += ls[l].sink;
		in += ls[l].sink ? ls[l].t0 : 0;
		out += ls[l].sink ? 0 : ls[l].t0;
		uni += ls[l].uni / a->n_layer;
		top = ls[l].t0 > ls[top].t0 ? l : top;
	}
	fmt_layers(ls, a->n_layer, names, sizeof names);
	if (n_in == 0) {
		printf("no layer puts %.0fx its uniform share on the first "
		    "token: %.1f%% on average, at most %.1f%% (layer %d); "
		    "uniform would be %.1f%%\n", SINK_RATIO, 100 * out /
		    a->n_layer, 100 * ls[top].t0, top, 100 * uni);
		return;
	}
	printf("layer%s %s put%s %.1f%% of attention on the first token "
	    "(uniform would be %.1f%%)", n_in > 1 ? "s" : "", names,
	    n_in > 1 ? "" : "s", 100 * in / n_in, 100 * uni);
	if (n_in < a->n_layer)
		printf("; the other layers %.1f%%", 100 * out /
		    (a->n_layer - n_in));
	printf("\n");
}

static int
print_table(const struct attn_opts *o, const struct model *m, size_t n_tok,
    long n_seg, const struct attn_acc *a, char *cause)
{
	struct layer_sum *ls = calloc((size_t)a->n_layer, sizeof *ls);
	char rest[32];
	int l;

	if (ls == NULL)
		return err_set(cause, "out of memory");
	printf("model: %s\ntext: %s, %zu tokens; %ld segments x %ld tokens%s;"
	    " K = %ld first tokens, queries at positions %ld..%ld\n", m->desc,
	    o->text, n_tok, n_seg, o->len, o->bos ? " (BOS first)" : "",
	    o->first, o->first, o->len - 1);
	snprintf(rest, sizeof rest, "tokens 1..%ld", o->first - 1);
	printf("mean attention weight over heads and queries:\n"
	    "%5s %8s %13s %9s %7s  %s\n", "layer", "token 0",
	    o->first > 1 ? rest : "-", "uniform", "ratio",
	    "max head on token 0");
	for (l = 0; l < a->n_layer; l++) {
		ls[l] = layer_of(a, l);
		printf("%5d %8.4f %13.4f %9.4f %6.1fx  %.4f (head %d)\n", l,
		    ls[l].t0, ls[l].rest, ls[l].uni, ls[l].uni > 0 ?
		    ls[l].t0 / ls[l].uni : 0, ls[l].max, ls[l].max_head);
	}
	print_verdict(a, ls);
	free(ls);
	return 0;
}

static int
write_csv(const char *path, const struct attn_acc *a, char *cause)
{
	FILE *f = fopen(path, "w");
	size_t lh, nlh = (size_t)a->n_layer * (size_t)a->n_head;
	struct stat st;
	int j, e, reg;

	if (f == NULL)
		return err_set(cause, "--csv %s: %s", path, strerror(errno));
	reg = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
	errno = 0;
	fprintf(f, "layer,head,pos,weight\n");
	for (lh = 0; lh < nlh; lh++)
		for (j = 0; j < a->k; j++)
			fprintf(f, "%zu,%zu,%d,%.6g\n", lh / (size_t)a->n_head,
			    lh % (size_t)a->n_head, j, acc_mean(a, lh, j));
	e = ferror(f) ? (errno != 0 ? errno : EIO) : 0;
	if (fclose(f) != 0 && e == 0)
		e = errno != 0 ? errno : EIO;
	if (e != 0) {
		if (reg) /* a partial table, never a device the user named */
			unlink(path);
		return err_set(cause, "--csv %s: %s", path, strerror(e));
	}
	return 0;
}

/* Rows "L0 H0", "L0 H1", ...: layer by head; columns: key positions. */
static int
write_plot(const struct attn_opts *o, const struct model *m, long n_seg,
    const struct attn_acc *a, char *cause)
{
	size_t rows = (size_t)a->n_layer * (size_t)a->n_head, i;
	size_t cols = (size_t)a->k, nh = (size_t)a->n_head;
	double *v = malloc(rows * cols * sizeof *v);
	char (*lab)[32] = malloc(rows * sizeof *lab), title[256], xl[128];
	const char **rl = malloc(rows * sizeof *rl);
	struct plot_heatmap hm = { .title = title, .xlabel = xl,
		.ylabel = "layer, head", .v = v, .rows = rows, .cols = cols,
		.row_labels = (const char *const *)rl };
	int rc = -1;

	if (v == NULL || lab == NULL || rl == NULL) {
		err_set(cause, "out of memory for the heat map");
		goto out;
	}
	for (i = 0; i < rows; i++) {
		snprintf(lab[i], sizeof lab[i], "L%d H%d", (int)(i / nh),
		    (int)(i % nh));
		rl[i] = lab[i];
	}
	for (i = 0; i < rows * cols; i++)
		v[i] = acc_mean(a, i / cols, (int)(i % cols));
	snprintf(title, sizeof title, "Average attention to the first %ld "
	    "tokens, %s", o->first, m->desc);
	snprintf(xl, sizeof xl, "key position (%ld segments of %ld)", n_seg,
	    o->len);
	rc = plot_heatmap_write(o->plot, &hm, cause);
out:
	free(v);
	free(lab);
	free(rl);
	return rc;
}

/* Refuses an output path that cannot be written before the long run. */
static int
check_out(const char *opt, const char *path, int image, char *cause)
{
	const char *dot = strrchr(path, '.'), *sl = strrchr(path, '/');
	char dir[4096];
	struct stat st;

	if (*path == '\0')
		return err_set(cause, "%s: empty path", opt);
	if (image && (dot == NULL || (strcasecmp(dot, ".png") != 0 &&
	    strcasecmp(dot, ".svg") != 0)))
		return err_set(cause, "%s %s: the name must end in .png or "
		    ".svg", opt, path);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return err_set(cause, "%s %s: is a directory", opt, path);
	snprintf(dir, sizeof dir, "%.*s", sl == NULL || sl == path ? 1 :
	    (int)(sl - path), sl == NULL ? "." : path);
	if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
		errno = ENOTDIR;
	else if (access(dir, W_OK | X_OK) == 0)
		return 0;
	return err_set(cause, "%s %s: cannot write in %s: %s", opt, path, dir,
	    strerror(errno));
}

static int
attn_run(const struct attn_opts *o, char *cause)
{
	struct model_opts mo = { 0 };
	struct attn_acc a = { 0 };
	struct model *m;
	int32_t *ids = NULL;
	size_t n_tok = 0;
	long n_seg = 0;
	double t0 = opt_now();
	int rc = -1;

	if ((m = model_open(o->model, &mo, cause)) == NULL)
		return -1;
	if (o->plot != NULL && (size_t)m->hp.n_layer * (size_t)m->hp.n_head >
	    PLOT_MAX_SIDE) {
		err_set(cause, "--plot: %d layers x %d heads is over the heat "
		    "map's %d rows", m->hp.n_layer, m->hp.n_head,
		    PLOT_MAX_SIDE);
		goto out;
	}
	if (load_tokens(o, m, &ids, &n_tok, cause) != 0)
		goto out;
	n_seg = (long)(n_tok / (size_t)(o->len - o->bos));
	n_seg = n_seg < o->segments ? n_seg : o->segments;
	if (acc_init(&a, m, (int)o->first, cause) != 0 ||
	    run_segments(o, m, ids, n_seg, &a, cause) != 0)
		goto out;
	fprintf(stderr, "attn: %ld segments x %ld tokens in %.1f s\n", n_seg,
	    o->len, opt_now() - t0);
	if (print_table(o, m, n_tok, n_seg, &a, cause) != 0)
		goto out;
	if ((o->csv == NULL || write_csv(o->csv, &a, cause) == 0) &&
	    (o->plot == NULL || write_plot(o, m, n_seg, &a, cause) == 0))
		rc = 0;
out:
	acc_free(&a);
	free(ids);
	model_close(m);
	return rc;
}

static const char attn_usage[] =
    "usage: sinkd-bench attn -m MODEL -f TEXT [--plot OUT.png|svg] "
    "[--csv OUT] [--len L]\n                        [--segments N] "
    "[--first K] [--bos] [-t THREADS]\nThe StreamingLLM paper's Figure "
    "2: up to N (64) segments of L (64) tokens of\nTEXT each run through "
    "a dense cache token by token; the table gives each\nlayer's mean "
    "attention, from queries at positions >= K, to the first K (4)\n"
    "tokens.  --bos starts every segment with BOS; --csv writes "
    "layer,head,pos,weight\nrows, --plot a heat map of layer x head "
    "against position.\n";

static int
attn_opt(struct attn_opts *o, int c, char *cause)
{
	switch (c) {
	case 'm': o->model = optarg; return 0;
	case 'f': o->text = optarg; return 0;
	case 'p': o->plot = optarg; return check_out("--plot", optarg, 1,
	    cause);
	case 'c': o->csv = optarg; return check_out("--csv", optarg, 0, cause);
	case 'b': o->bos = 1; return 0;
	case 'L': return opt_long("--len", optarg, 2, 1 << 20, &o->len, cause);
	case 'N': return opt_long("--segments", optarg, 1, 1 << 20,
	    &o->segments, cause);
	case 'K': return opt_long("--first", optarg, 1, PLOT_MAX_SIDE,
	    &o->first, cause);
	case 't': return opt_long("-t", optarg, 1, 512, &o->threads, cause);
	default: return err_set(cause, "bad usage (see --help)");
	}
}

int
bench_attn(int argc, char **argv)
{
	struct attn_opts o = { .len = 64, .segments = 64, .first = 4,
		.threads = 1 };
	char cause[ERR_LEN] = "";
	int c, bad = 0;
	static const struct option lo[] = {
		{ "plot", required_argument, NULL, 'p' },
		{ "csv", required_argument, NULL, 'c' },
		{ "len", required_argument, NULL, 'L' },
		{ "segments", required_argument, NULL, 'N' },
		{ "first", required_argument, NULL, 'K' },
		{ "bos", no_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	while (!bad && (c = getopt_long(argc, argv, "m:f:t:h", lo,
	    NULL)) != -1) {
		if (c == 'h') {
			fputs(attn_usage, stdout);
			return 0;
		}
		bad = attn_opt(&o, c, cause);
	}
	if (!bad && optind < argc)
		bad = err_set(cause, "unexpected argument '%s'", argv[optind]);
	if (!bad && o.text == NULL)
		bad = err_set(cause, "no text: -f TEXT is required");
	if (!bad && o.len < o.first + 1)
		bad = err_set(cause, "--len %ld is too short: it must be at "
		    "least --first + 1 = %ld", o.len, o.first + 1);
	if (!bad && o.model == NULL && (o.model = opt_default_model()) == NULL)
		bad = err_set(cause, "%s", opt_no_model_hint);
	if (bad || attn_run(&o, cause) != 0) {
		fprintf(stderr, "sinkd-bench: %s\n", cause);
		return bad ? 2 : 1;
	}
	return 0;
}
