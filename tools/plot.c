/*
 * plot: line charts, and what every chart shares: the choice of format,
 * the output file, value ranges and colours.  Validation, layout, axes
 * and the reduction of data to pixels live here and in plot_heat.c; the
 * backends only draw what they are asked to, so the SVG and the PNG of a
 * chart show the same picture.
 */
#include "plot_int.h"

#include <errno.h>
#include <sys/stat.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAXTICK		24
#define TICK_LEN	24
#define TRACE_PTS	1024		/* points per polyline element */
#define NOCOL		LONG_MIN
#define LEGEND_CHARS	24
#define GRID_RGB	0xe6e6e6

/* Series colours: hand-picked to differ in hue first, then lightness. */
static const uint32_t palette[PLOT_MAX_SERIES] = {
	0x1f63c4, 0xe3701a, 0x2e9e44, 0xd12f3b,
	0x7c52c0, 0x8a5a3c, 0xdb5fb0, 0x4d4d4d,
	0xa8a81a, 0x1fb0c7, 0x0b2f6b, 0xf2a91e,
	0x6b9e5a, 0x8f1020, 0x6cc6f0, 0xb893e6,
};

/* Heat ramp stops, dark blue to yellow; lightness rises at every step. */
static const uint32_t ramp_stops[5] = {
	0x1b1049, 0x2d4f93, 0x1f8b87, 0x62c257, 0xf6e62b,
};

struct axis {
	int log;
	double lo, hi;		/* shown range, in log10 units when log */
	double p0, p1;		/* pixels of lo and hi */
	int nt, lstride;	/* ticks; every lstride-th is labelled */
	double tv[MAXTICK];	/* tick positions, axis units */
	char tl[MAXTICK][TICK_LEN];
};


/* Reduces a series to at most four points per pixel column. */
struct trace {
	struct canvas *cv;
	uint32_t rgb;
	size_t n;		/* points in pt */
	long col;		/* pixel column being collected, or NOCOL */
	struct cpt b[4];	/* its first, top, bottom and last point */
	size_t bi[4];		/* their indices, to keep the data's order */
	long dcol;		/* column of pending lone points, or NOCOL */
	double dx, dlo, dhi;
	struct cpt pt[TRACE_PTS];
};

struct lchart {
	const struct plot_lines *pl;
	struct axis ax, ay;
	int w, h;
	int x0, y0, x1, y1;	/* plot area */
	int lchars;		/* legend text width, characters */
	struct trace *trace;	/* scratch for draw_series */
};

int
plot_kind(const char *path, int *svg, char *cause)
{
	const char *dot;

	if (path == NULL || *path == '\0')
		return err_set(cause, "no output path for the chart");
	dot = strrchr(path, '.');
	if (dot != NULL && strcasecmp(dot, ".svg") == 0)
		*svg = 1;
	else if (dot != NULL && strcasecmp(dot, ".png") == 0)
		*svg = 0;
	else
		return err_set(cause, "%s: unknown image type; the name must "
		    "end in .svg or .png", path);
	return 0;
}

/* A half-written image goes; a device or anything not a plain file stays. */
static void
remove_partial(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
		remove(path);
}

/* Draws into path; a failed write removes what was written. */
int
plot_render(const char *path, int svg, int w, int h, plot_drawfn *draw,
    const void *arg, char *cause)
{
	struct canvas c = { .w = w, .h = h, .svg = svg };
	int rc = 0, e;

	if (!svg && (c.px = malloc((size_t)w * (size_t)h * 3)) == NULL)
		return err_set(cause, "out of memory for a %dx%d image", w, h);
	if ((c.f = fopen(path, "wb")) == NULL) {
		e = errno;
		free(c.px);
		return err_set(cause, "cannot create %s: %s", path,
		    strerror(e));
	}
	errno = 0;
	if (svg)
		plot_svg_begin(&c);
	else
		memset(c.px, 0xff, (size_t)w * (size_t)h * 3);
	draw(&c, arg);
	if (svg)
		plot_svg_end(&c);
	else
		rc = plot_png_write(c.f, &c, cause);
	e = ferror(c.f) ? (errno != 0 ? errno : EIO) : 0;
	if (fclose(c.f) != 0 && e == 0)
		e = errno != 0 ? errno : EIO;
	free(c.px);
	if (rc == 0 && e != 0)
		rc = err_set(cause, "cannot write %s: %s", path, strerror(e));
	if (rc != 0)
		remove_partial(path);
	return rc;
}

/*
 * Widens [lo, hi] by pad_frac of its span on each side, or, when it is
 * (nearly) one value, by 5% of that value, so that every axis has a
 * non-zero span that ticks can divide.
 */
void
plot_range(double *lo, double *hi, double pad_frac)
{
	double mag = fmax(fabs(*lo), fabs(*hi)), half = *hi * 0.5 - *lo * 0.5;
	double pad;

	if (half > mag * 5e-10)
		pad = half * 2.0 * pad_frac;
	else
		pad = mag > 0 ? mag * 0.05 : 1.0;
	*lo = fmax(*lo - pad, -DBL_MAX);
	*hi = fmin(*hi + pad, DBL_MAX);
	if (!(*hi * 0.5 - *lo * 0.5 > 1e-300)) {
		*lo -= 1.0;
		*hi += 1.0;
	}
}

uint32_t
plot_series_rgb(size_t i)
{
	return palette[i % PLOT_MAX_SERIES];
}

uint32_t
plot_ramp_rgb(double t)
{
	uint32_t a, b, rgb = 0;
	double f;
	int i, sh;

	t = isnan(t) ? 0.0 : (t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t)) * 4.0;
	i = t >= 4.0 ? 3 : (int)t;
	f = t - i;
	for (sh = 0; sh < 24; sh += 8) {
		a = ramp_stops[i] >> sh & 0xff;
		b = ramp_stops[i + 1] >> sh & 0xff;
		rgb |= (uint32_t)lround(a + ((double)b - (double)a) * f) << sh;
	}
	return rgb;
}

void
plot_label(struct canvas *c, double x, double y, const char *s, int maxw,
    enum anchor a, int flags)
{
	struct tstyle ts = { TS, a, (flags & LBL_VERTICAL) != 0,
	    (flags & LBL_BOLD) != 0, INK };
	char buf[FIT_CHARS * 4 + 8];
	int chars = maxw / CHW;

	if (s == NULL || chars < 1)
		return;
	plot_text_fit(s, chars > FIT_CHARS ? FIT_CHARS : (size_t)chars,
	    (flags & LBL_CUT_MID) != 0, buf, sizeof buf);
	cv_text(c, x, y, buf, &ts);
}

static double
axis_px(const struct axis *a, double u)
{
	return a->p0 + plot_frac(u, a->lo, a->hi) * (a->p1 - a->p0);
}

/* The 1, 2 or 5 times a power of ten at or above raw; 0 if none. */
static double
nice_step(double raw)
{
	double p, f;

	if (!(raw > 0) || !isfinite(raw))
		return 0;
	p = pow(10.0, floor(log10(raw)));
	if (!(p > 0) || !isfinite(p))
		return 0;
	f = raw / p;
	return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * p;
}

static int
clampi(int v, int lo, int hi)
{
	return v < lo ? lo : (v > hi ? hi : v);
}

/* Labels with as many decimals as the step needs and no more. */
static void
tick_labels(struct axis *a, double step)
{
	double maxabs = 0;
	int i, k, mag;

	for (i = 0; i < a->nt; i++)
		maxabs = fmax(maxabs, fabs(a->tv[i]));
	k = (int)floor(log10(step) + 1e-9);
	mag = maxabs > 0 ? (int)floor(log10(maxabs)) : 0;
	for (i = 0; i < a->nt; i++) {
		if (maxabs >= 1e6 || maxabs < 1e-3)
			snprintf(a->tl[i], TICK_LEN, "%.*g",
			    clampi(mag - k + 1, 1, 12), a->tv[i]);
		else
			snprintf(a->tl[i], TICK_LEN, "%.*f", clampi(-k, 0, 12),
			    a->tv[i]);
	}
}

/* Ticks at both ends, for ranges no step divides sensibly. */
static void
ticks_ends(struct axis *a)
{
	int i;

	a->nt = 2;
	a->tv[0] = a->lo;
	a->tv[1] = a->hi;
	for (i = 0; i < 2; i++)
		snprintf(a->tl[i], TICK_LEN, "%.4g",
		    a->log ? pow(10.0, a->tv[i]) : a->tv[i]);
}

static void
ticks_linear(struct axis *a, int target)
{
	double step, k0, v;
	int i;

	step = nice_step((a->hi * 0.5 - a->lo * 0.5) / target * 2.0);
	a->nt = 0;
	if (step > 0) {
		k0 = ceil(a->lo / step);
		/* bounded: far from zero, k0 + i may stop changing v */
		for (i = 0; i < MAXTICK; i++) {
			v = (k0 + i) * step;
			if (!(v <= a->hi))
				break;
			if (a->nt == 0 || v > a->tv[a->nt - 1])
				a->tv[a->nt++] = v;
		}
	}
	if (a->nt < 2)
		ticks_ends(a);
	else
		tick_labels(a, step);
}

/* Less than a decade: plain ticks of x, placed on the log scale. */
static void
ticks_log_linear(struct axis *a)
{
	struct axis lin;
	int i;

	memset(&lin, 0, sizeof lin);
	lin.lo = pow(10.0, a->lo);
	lin.hi = pow(10.0, a->hi);
	ticks_ends(a);
	if (!(lin.lo > 0 && lin.hi > lin.lo && isfinite(lin.hi)))
		return;
	ticks_linear(&lin, 5);
	for (i = 0; i < lin.nt && lin.tv[0] > 0; i++) {
		a->tv[i] = log10(lin.tv[i]);
		memcpy(a->tl[i], lin.tl[i], TICK_LEN);
	}
	a->nt = i < 2 ? 2 : i;
}

/* Decades; with less than three, also 2 and 5; with less than one, 1..9. */
static void
ticks_log(struct axis *a)
{
	static const double m125[] = { 1, 2, 5 }, m19[] = { 1, 2, 3, 4, 5, 6,
	    7, 8, 9 };
	double dec = a->hi - a->lo, u;
	const double *m = dec >= 1 ? m125 : m19;
	int nm = dec >= 3 ? 1 : (dec >= 1 ? 3 : 9), j, e, step;

	step = dec > 10 ? (int)ceil(dec / 8) : 1;
	a->nt = 0;
	for (e = step * (int)floor(floor(a->lo) / step);
	    e <= (int)ceil(a->hi) && a->nt < MAXTICK; e += step) {
		for (j = 0; j < nm && a->nt < MAXTICK; j++) {
			u = e + log10(m[j]);
			if (u < a->lo - 1e-9 || u > a->hi + 1e-9 ||
			    !isfinite(m[j] * pow(10.0, e)))
				continue;
			a->tv[a->nt] = u;
			snprintf(a->tl[a->nt++], TICK_LEN, "%g",
			    m[j] * pow(10.0, e));
		}
	}
	if (a->nt < 2)
		ticks_log_linear(a);
}

static int
labels_width(const struct axis *a)
{
	int i, w = 0;

	for (i = 0; i < a->nt; i++)
		w += plot_text_width(strlen(a->tl[i]), TS) + 2 * CHW;
	return w;
}

/* Fewer ticks until their labels fit side by side, then skip labels. */
static void
ticks_x(struct axis *a, int width)
{
	int target = 8;

	do {
		if (a->log)
			ticks_log(a);
		else
			ticks_linear(a, target);
	} while (!a->log && labels_width(a) > width && --target >= 2);
	a->lstride = 1;
	while (labels_width(a) / a->lstride > width && a->lstride < MAXTICK)
		a->lstride++;
}

static const char *
series_label(const struct plot_series *sr, size_t s, char *buf, size_t len)
{
	if (sr->label != NULL)
		return sr->label;
	snprintf(buf, len, "series %zu", s + 1);
	return buf;
}

/* Checks one series and widens the data ranges by its finite points. */
static int
series_scan(const struct plot_series *sr, size_t s, int log_x, double *r,
    size_t *count, char *cause)
{
	double u;
	size_t i;

	if (sr->n > 0 && (sr->x == NULL || sr->y == NULL))
		return err_set(cause, "series %zu has %zu points but no data",
		    s + 1, sr->n);
	for (i = 0; i < sr->n; i++) {
		if (log_x && sr->x[i] <= 0)
			return err_set(cause, "series %zu, point %zu: x = %g "
			    "is not positive, as a logarithmic x axis needs",
			    s + 1, i, sr->x[i]);
		if (!isfinite(sr->x[i]) || !isfinite(sr->y[i]))
			continue;
		u = log_x ? log10(sr->x[i]) : sr->x[i];
		r[0] = fmin(r[0], u);
		r[1] = fmax(r[1], u);
		r[2] = fmin(r[2], sr->y[i]);
		r[3] = fmax(r[3], sr->y[i]);
		(*count)++;
	}
	return 0;
}

static int
lines_scan(struct lchart *lc, char *cause)
{
	const struct plot_lines *pl = lc->pl;
	double r[4] = { INFINITY, -INFINITY, INFINITY, -INFINITY };
	size_t s, count = 0;

	if (pl == NULL || pl->series == NULL || pl->n_series == 0)
		return err_set(cause, "no series to plot");
	if (pl->n_series > PLOT_MAX_SERIES)
		return err_set(cause, "%zu series are too many for one chart "
		    "(at most %d)", pl->n_series, PLOT_MAX_SERIES);
	for (s = 0; s < pl->n_series; s++)
		if (series_scan(&pl->series[s], s, pl->log_x, r, &count,
		    cause) != 0)
			return -1;
	if (count == 0)
		return err_set(cause, "no finite points to plot");
	lc->ax.log = pl->log_x != 0;
	lc->ax.lo = r[0], lc->ax.hi = r[1];
	lc->ay.lo = r[2], lc->ay.hi = r[3];
	if (lc->ax.log && r[0] == r[1]) {
		/* one x: half a decade each side, not 5% of its logarithm */
		lc->ax.lo -= 0.5, lc->ax.hi += 0.5;
	}
	plot_range(&lc->ax.lo, &lc->ax.hi, 0.0);
	if (lc->ax.log) {
		/* ticks beyond the doubles would be labelled "inf" or 0 */
		lc->ax.lo = fmax(lc->ax.lo, log10(DBL_TRUE_MIN));
		lc->ax.hi = fmin(lc->ax.hi, log10(DBL_MAX));
	}
	plot_range(&lc->ay.lo, &lc->ay.hi, 0.05);
	return 0;
}

static void
lines_layout(struct lchart *lc)
{
	const struct plot_lines *pl = lc->pl;
	char buf[32];
	size_t s, n;
	int i, ylw = 0, legend_w;

	lc->lchars = 1;
	for (s = 0; s < pl->n_series; s++) {
		n = plot_text_count(series_label(&pl->series[s], s, buf,
		    sizeof buf));
		if (n > (size_t)lc->lchars)
			lc->lchars = n < LEGEND_CHARS ? (int)n : LEGEND_CHARS;
	}
	ticks_linear(&lc->ay, 6);
	for (i = 0; i < lc->ay.nt; i++)
		if (plot_text_width(strlen(lc->ay.tl[i]), TS) > ylw)
			ylw = plot_text_width(strlen(lc->ay.tl[i]), TS);
	lc->x0 = 12 + (pl->ylabel != NULL ? LINE_H + 10 : 0) + ylw + 12;
	legend_w = 16 + 28 + 8 + plot_text_width((size_t)lc->lchars, TS) + 12;
	lc->w = lc->x0 + 640 + legend_w > 1000 ? lc->x0 + 640 + legend_w : 1000;
	lc->h = 600;
	lc->x1 = lc->w - legend_w;
	lc->y0 = pl->title != NULL ? 56 : 24;
	lc->y1 = lc->h - (pl->xlabel != NULL ? 76 : 46);
	lc->ax.p0 = lc->x0, lc->ax.p1 = lc->x1;
	lc->ay.p0 = lc->y1, lc->ay.p1 = lc->y0;
	ticks_x(&lc->ax, lc->x1 - lc->x0);
}

static long
column_of(double px)
{
	if (!(px > -1e6))
		return -1000000;
	return px > 1e6 ? 1000000 : (long)floor(px);
}

static void
trace_emit(struct trace *t, struct cpt p)
{
	if (t->n > 0 && fabs(p.x - t->pt[t->n - 1].x) < 0.05 &&
	    fabs(p.y - t->pt[t->n - 1].y) < 0.05)
		return;
	if (t->n == TRACE_PTS) {
		/* continue from the last point so the line has no break */
		cv_polyline(t->cv, t->pt, t->n, t->rgb);
		t->pt[0] = t->pt[t->n - 1];
		t->n = 1;
	}
	t->pt[t->n++] = p;
}

/* First, extremes in data order, last: keeps every spike and the join. */
static void
trace_column(struct trace *t)
{
	int a = t->bi[1] <= t->bi[2] ? 1 : 2, b = 3 - a;

	if (t->col == NOCOL)
		return;
	trace_emit(t, t->b[0]);
	if (t->bi[a] != t->bi[0] && t->bi[a] != t->bi[3])
		trace_emit(t, t->b[a]);
	if (t->bi[b] != t->bi[0] && t->bi[b] != t->bi[3] &&
	    t->bi[b] != t->bi[a])
		trace_emit(t, t->b[b]);
	if (t->bi[3] != t->bi[0])
		trace_emit(t, t->b[3]);
	t->col = NOCOL;
}

static void
trace_point(struct trace *t, struct cpt p, size_t i)
{
	long col = column_of(p.x);
	int k;

	if (col != t->col) {
		trace_column(t);
		t->col = col;
		for (k = 0; k < 4; k++)
			t->b[k] = p, t->bi[k] = i;
		return;
	}
	if (p.y < t->b[1].y)
		t->b[1] = p, t->bi[1] = i;
	if (p.y > t->b[2].y)
		t->b[2] = p, t->bi[2] = i;
	t->b[3] = p, t->bi[3] = i;
}

static void
dots_flush(struct trace *t)
{
	if (t->dcol == NOCOL)
		return;
	cv_rect(t->cv, t->dx - 2.5, t->dlo - 2.5, 5.0, t->dhi - t->dlo + 5.0,
	    t->rgb);
	t->dcol = NOCOL;
}

/*
 * A point between two gaps has no line to show it: it becomes a dot, and
 * the dots of one pixel column one mark, so alternating gaps stay cheap.
 */
static void
trace_break(struct trace *t)
{
	trace_column(t);
	if (t->n >= 2)
		cv_polyline(t->cv, t->pt, t->n, t->rgb);
	if (t->n == 1) {
		if (column_of(t->pt[0].x) != t->dcol) {
			dots_flush(t);
			t->dcol = column_of(t->pt[0].x);
			t->dx = t->pt[0].x;
			t->dlo = t->dhi = t->pt[0].y;
		}
		t->dlo = fmin(t->dlo, t->pt[0].y);
		t->dhi = fmax(t->dhi, t->pt[0].y);
	}
	t->n = 0;
}

static void
draw_series(struct canvas *c, const struct lchart *lc, size_t s)
{
	const struct plot_series *sr = &lc->pl->series[s];
	struct trace *t = lc->trace;
	struct cpt p;
	size_t i;

	t->cv = c, t->rgb = palette[s], t->n = 0;
	t->col = t->dcol = NOCOL;
	for (i = 0; i < sr->n; i++) {
		if (!isfinite(sr->x[i]) || !isfinite(sr->y[i])) {
			trace_break(t);
			continue;
		}
		p.x = axis_px(&lc->ax, lc->ax.log ? log10(sr->x[i]) : sr->x[i]);
		p.y = axis_px(&lc->ay, sr->y[i]);
		trace_point(t, p, i);
	}
	trace_break(t);
	dots_flush(t);
}

static void
draw_grid(struct canvas *c, const struct lchart *lc)
{
	double v;
	int i;

	for (i = 0; i < lc->ax.nt; i++) {
		v = axis_px(&lc->ax, lc->ax.tv[i]);
		cv_line(c, v, lc->y0, v, lc->y1, GRID_RGB, 1);
	}
	for (i = 0; i < lc->ay.nt; i++) {
		v = axis_px(&lc->ay, lc->ay.tv[i]);
		cv_line(c, lc->x0, v, lc->x1, v, GRID_RGB, 1);
	}
}

static void
draw_frame(struct canvas *c, int x0, int y0, int x1, int y1)
{
	cv_line(c, x0, y0, x1, y0, INK, 1);
	cv_line(c, x0, y1, x1, y1, INK, 1);
	cv_line(c, x0, y0, x0, y1, INK, 1);
	cv_line(c, x1, y0, x1, y1, INK, 1);
}

static void
draw_axes(struct canvas *c, const struct lchart *lc)
{
	const struct axis *ax = &lc->ax, *ay = &lc->ay;
	double v;
	int i;

	draw_frame(c, lc->x0, lc->y0, lc->x1, lc->y1);
	for (i = 0; i < ax->nt; i++) {
		v = axis_px(ax, ax->tv[i]);
		cv_line(c, v, lc->y1, v, lc->y1 + 5, INK, 1);
		if (i % ax->lstride == 0)
			plot_label(c, v, lc->y1 + 10 + CAP, ax->tl[i], 1000,
			    ANCHOR_MIDDLE, 0);
	}
	for (i = 0; i < ay->nt; i++) {
		v = axis_px(ay, ay->tv[i]);
		cv_line(c, lc->x0 - 5, v, lc->x0, v, INK, 1);
		plot_label(c, lc->x0 - 9, v + CAP / 2, ay->tl[i], 1000,
		    ANCHOR_END, 0);
	}
}

static void
draw_legend(struct canvas *c, const struct lchart *lc)
{
	char buf[32];
	size_t s;
	int x = lc->x1 + 16, y;

	for (s = 0; s < lc->pl->n_series; s++) {
		y = lc->y0 + 8 + (int)s * (LINE_H + 6) + LINE_H / 2;
		cv_line(c, x, y, x + 28, y, palette[s], 3);
		plot_label(c, x + 36, y + CAP / 2,
		    series_label(&lc->pl->series[s], s, buf, sizeof buf),
		    lc->lchars * CHW, ANCHOR_START, LBL_CUT_MID);
	}
}

static void
lines_draw(struct canvas *c, const void *arg)
{
	const struct lchart *lc = arg;
	const struct plot_lines *pl = lc->pl;
	size_t s;

	draw_grid(c, lc);
	for (s = 0; s < pl->n_series; s++)
		draw_series(c, lc, s);
	draw_axes(c, lc);
	draw_legend(c, lc);
	plot_label(c, lc->w / 2, 16 + CAP, pl->title, lc->w - 24,
	    ANCHOR_MIDDLE, LBL_BOLD);
	plot_label(c, (lc->x0 + lc->x1) / 2, lc->h - 16, pl->xlabel,
	    lc->x1 - lc->x0, ANCHOR_MIDDLE, 0);
	plot_label(c, 12 + CAP, (lc->y0 + lc->y1) / 2, pl->ylabel,
	    lc->y1 - lc->y0, ANCHOR_MIDDLE, LBL_VERTICAL);
}

int
plot_lines_write(const char *path, const struct plot_lines *pl, char *cause)
{
	struct lchart lc;
	int svg, rc;

	memset(&lc, 0, sizeof lc);
	lc.pl = pl;
	if (plot_kind(path, &svg, cause) != 0 || lines_scan(&lc, cause) != 0)
		return -1;
	lines_layout(&lc);
	/* 16 KiB of points: more than a library should put on the stack */
	if ((lc.trace = malloc(sizeof *lc.trace)) == NULL)
		return err_set(cause, "out of memory for a line chart");
	rc = plot_render(path, svg, lc.w, lc.h, lines_draw, &lc, cause);
	free(lc.trace);
	return rc;
}
