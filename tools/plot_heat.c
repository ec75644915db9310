/*
 * plot_heat: heat maps.  Sizes the cells to the data, reduces maps with
 * more cells than pixels to blocks (each the mean of its finite cells,
 * so a block shows what its cells average to), thins row and column
 * labels to what fits, and adds a colour bar.
 */
#include "plot_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CELL_MAX	48.0	/* pixels per cell, for small maps */
#define AREA_W		800.0	/* largest plot area */
#define AREA_H		560.0
#define SQUARE_MIN	200.0	/* square cells only if both sides reach this */
#define SVG_SIDE	256	/* blocks per side in SVG, to bound the file */
#define LABEL_CHARS	16
#define BAR_W		20
#define GREY_RGB	0xa8a8a8

struct hchart {
	const struct plot_heatmap *hm;
	double lo, hi;		/* values of colours 0 and 255; lo < hi */
	size_t nfinite;
	int w, h;
	int x0, y0, pw, ph;	/* plot area */
	int rchars, cchars;	/* label widths, characters */
	int cvert;		/* column labels read upwards */
	size_t rstride, cstride;	/* every how many cells a label */
	int bx;			/* colour bar's left edge */
	char bar_lo[24], bar_hi[24];
	uint32_t pal[GREY_CELL + 1];
	struct cellgrid grid;
	uint16_t *idx;		/* grid storage */
	int *edges;
};

static int
heat_scan(struct hchart *h, char *cause)
{
	const struct plot_heatmap *m = h->hm;
	double lo = INFINITY, hi = -INFINITY;
	size_t i;

	if (m == NULL)
		return err_set(cause, "no heat map to plot");
	if (m->rows == 0 || m->cols == 0)
		return err_set(cause, "heat map has no cells (%zu x %zu)",
		    m->rows, m->cols);
	if (m->rows > PLOT_MAX_SIDE || m->cols > PLOT_MAX_SIDE)
		return err_set(cause, "heat map of %zu x %zu cells is too "
		    "large (at most %d per side)", m->rows, m->cols,
		    PLOT_MAX_SIDE);
	if (m->v == NULL)
		return err_set(cause, "heat map of %zu x %zu cells has no "
		    "values", m->rows, m->cols);
	for (i = 0; i < m->rows * m->cols; i++) {
		if (!isfinite(m->v[i]))
			continue;
		lo = fmin(lo, m->v[i]);
		hi = fmax(hi, m->v[i]);
		h->nfinite++;
	}
	if (h->nfinite == 0)
		lo = 0.0, hi = 1.0;
	plot_range(&lo, &hi, 0.0);
	h->lo = lo, h->hi = hi;
	snprintf(h->bar_lo, sizeof h->bar_lo, h->nfinite ? "%.4g" : "n/a", lo);
	snprintf(h->bar_hi, sizeof h->bar_hi, h->nfinite ? "%.4g" : "n/a", hi);
	return 0;
}

/* Widest label in characters: the labels given, else cell numbers. */
static int
label_chars(const char *const *labels, size_t n)
{
	size_t i, c, max = 1;

	if (labels == NULL)
		return snprintf(NULL, 0, "%zu", n - 1);
	for (i = 0; i < n; i++) {
		c = labels[i] != NULL ? plot_text_count(labels[i]) : 0;
		max = c > max ? c : max;
	}
	return max < LABEL_CHARS ? (int)max : LABEL_CHARS;
}

/* Label every 1, 2, 5, 10, ... cells: at least need pixels apart. */
static size_t
label_stride(double cell, int need)
{
	static const size_t m[3] = { 1, 2, 5 };
	size_t p, i;

	for (p = 1; p <= PLOT_MAX_SIDE; p *= 10)
		for (i = 0; i < 3; i++)
			if ((double)(m[i] * p) * cell >= need)
				return m[i] * p;
	return 10 * PLOT_MAX_SIDE;
}

static size_t
min3(size_t a, size_t b, size_t c)
{
	a = a < b ? a : b;
	return a < c ? a : c;
}

/* Cells square when that leaves both sides a useful size. */
static void
heat_area(struct hchart *h, int svg)
{
	const struct plot_heatmap *m = h->hm;
	double cw = fmin(CELL_MAX, AREA_W / (double)m->cols);
	double ch = fmin(CELL_MAX, AREA_H / (double)m->rows), s = fmin(cw, ch);

	if (s * (double)m->cols >= SQUARE_MIN &&
	    s * (double)m->rows >= SQUARE_MIN)
		cw = ch = s;
	h->pw = (int)lround(cw * (double)m->cols);
	h->ph = (int)lround(ch * (double)m->rows);
	h->grid.cols = min3(m->cols, (size_t)h->pw, svg ? SVG_SIDE : h->pw);
	h->grid.rows = min3(m->rows, (size_t)h->ph, svg ? SVG_SIDE : h->ph);
}

static void
heat_layout(struct hchart *h, int svg)
{
	const struct plot_heatmap *m = h->hm;
	size_t bar_chars = strlen(h->bar_lo) > strlen(h->bar_hi) ?
	    strlen(h->bar_lo) : strlen(h->bar_hi);
	int below, title_w;

	heat_area(h, svg);
	h->rchars = label_chars(m->row_labels, m->rows);
	h->cchars = label_chars(m->col_labels, m->cols);
	h->cvert = m->col_labels != NULL;
	h->rstride = label_stride(h->ph / (double)m->rows, LINE_H + 2);
	h->cstride = label_stride(h->pw / (double)m->cols, h->cvert ?
	    LINE_H + 2 : plot_text_width((size_t)h->cchars, TS) + CHW);
	h->x0 = 12 + (m->ylabel != NULL ? LINE_H + 10 : 0) +
	    plot_text_width((size_t)h->rchars, TS) + 10;
	h->y0 = m->title != NULL ? 56 : 20;
	h->bx = h->x0 + h->pw + 24;
	h->w = h->bx + BAR_W + 8 + plot_text_width(bar_chars, TS) + 16;
	title_w = m->title == NULL ? 0 :
	    plot_text_width(plot_text_count(m->title) + 1, TS) + 24;
	if (h->w < title_w)
		h->w = title_w < 1200 ? title_w : 1200;
	below = 8 + (h->cvert ? plot_text_width((size_t)h->cchars, TS) :
	    LINE_H) + 12 + (m->xlabel != NULL ? LINE_H + 10 : 0);
	h->h = h->y0 + h->ph + below + 6;
}

/* Colour index of the mean of the block's finite cells, or grey. */
static uint16_t
block_colour(const struct hchart *h, size_t r0, size_t r1, size_t c0,
    size_t c1)
{
	const double *v = h->hm->v;
	double sum = 0, t;
	size_t r, c, n = 0;

	for (r = r0; r < r1; r++) {
		for (c = c0; c < c1; c++) {
			if (!isfinite(v[r * h->hm->cols + c]))
				continue;
			/* fractions, not values: sums of 1e308 overflow */
			sum += plot_frac(v[r * h->hm->cols + c], h->lo, h->hi);
			n++;
		}
	}
	if (n == 0)
		return GREY_CELL;
	t = sum / (double)n;
	return (uint16_t)lround((t < 0 ? 0 : (t > 1 ? 1 : t)) * 255.0);
}

static int
heat_cells(struct hchart *h)
{
	struct cellgrid *g = &h->grid;
	size_t gr = g->rows, gc = g->cols;
	size_t rows = h->hm->rows, cols = h->hm->cols;
	size_t i, j;
	int *xe, *ye;

	h->idx = malloc(gr * gc * sizeof *h->idx);
	h->edges = malloc((gr + gc + 2) * sizeof *h->edges);
	if (h->idx == NULL || h->edges == NULL)
		return -1;
	xe = h->edges, ye = h->edges + gc + 1;
	for (j = 0; j <= gc; j++)
		xe[j] = h->x0 + (int)lround((double)j * h->pw / (double)gc);
	for (i = 0; i <= gr; i++)
		ye[i] = h->y0 + (int)lround((double)i * h->ph / (double)gr);
	for (i = 0; i < gr; i++)
		for (j = 0; j < gc; j++)
			h->idx[i * gc + j] = block_colour(h, i * rows / gr,
			    (i + 1) * rows / gr, j * cols / gc,
			    (j + 1) * cols / gc);
	for (i = 0; i < GREY_CELL; i++)
		h->pal[i] = plot_ramp_rgb((double)i / 255.0);
	h->pal[GREY_CELL] = GREY_RGB;
	g->idx = h->idx, g->xe = xe, g->ye = ye, g->pal = h->pal;
	return 0;
}

static const char *
cell_label(const char *const *labels, size_t i, char *buf, size_t len)
{
	if (labels != NULL)
		return labels[i] != NULL ? labels[i] : "";
	snprintf(buf, len, "%zu", i);
	return buf;
}

static void
heat_labels(struct canvas *c, const struct hchart *h)
{
	const struct plot_heatmap *m = h->hm;
	char buf[32];
	const char *s;
	double v;
	size_t i;
	int yb = h->y0 + h->ph + 8;

	for (i = 0; i < m->rows; i += h->rstride) {
		v = h->y0 + ((double)i + 0.5) * h->ph / (double)m->rows;
		s = cell_label(m->row_labels, i, buf, sizeof buf);
		plot_label(c, h->x0 - 8, v + CAP / 2, s, h->rchars * CHW,
		    ANCHOR_END, LBL_CUT_MID);
	}
	for (i = 0; i < m->cols; i += h->cstride) {
		v = h->x0 + ((double)i + 0.5) * h->pw / (double)m->cols;
		s = cell_label(m->col_labels, i, buf, sizeof buf);
		if (h->cvert)
			plot_label(c, v + CAP / 2, yb, s, h->cchars * CHW,
			    ANCHOR_END, LBL_VERTICAL | LBL_CUT_MID);
		else
			plot_label(c, v, yb + CAP, s, h->cchars * CHW,
			    ANCHOR_MIDDLE, 0);
	}
}

static void
heat_frame(struct canvas *c, int x0, int y0, int x1, int y1)
{
	cv_line(c, x0 - 1, y0 - 1, x1, y0 - 1, INK, 1);
	cv_line(c, x0 - 1, y1, x1, y1, INK, 1);
	cv_line(c, x0 - 1, y0 - 1, x0 - 1, y1, INK, 1);
	cv_line(c, x1, y0 - 1, x1, y1, INK, 1);
}

/* The ramp in 2-pixel bands, maximum on top, labelled at both ends. */
static void
heat_bar(struct canvas *c, const struct hchart *h)
{
	double t;
	int i;

	for (i = 0; i < h->ph; i += 2) {
		t = 1.0 - (i + 1.0) / h->ph;
		cv_rect(c, h->bx, h->y0 + i, BAR_W, h->ph - i < 2 ? 1 : 2,
		    h->nfinite ? plot_ramp_rgb(t) : GREY_RGB);
	}
	heat_frame(c, h->bx, h->y0, h->bx + BAR_W, h->y0 + h->ph);
	plot_label(c, h->bx + BAR_W + 8, h->y0 + CAP, h->bar_hi, 1000,
	    ANCHOR_START, 0);
	plot_label(c, h->bx + BAR_W + 8, h->y0 + h->ph, h->bar_lo, 1000,
	    ANCHOR_START, 0);
}

/* Length of text centred at `at` that stays within 0..size. */
static int
room(int at, int size)
{
	return 2 * (at < size - at ? at : size - at) - 16;
}

static void
heat_draw(struct canvas *c, const void *arg)
{
	const struct hchart *h = arg;
	const struct plot_heatmap *m = h->hm;
	int xmid = h->x0 + h->pw / 2, ymid = h->y0 + h->ph / 2;

	cv_cells(c, &h->grid);
	heat_frame(c, h->x0, h->y0, h->x0 + h->pw, h->y0 + h->ph);
	heat_labels(c, h);
	heat_bar(c, h);
	plot_label(c, h->w / 2, 16 + CAP, m->title, h->w - 24, ANCHOR_MIDDLE,
	    LBL_BOLD);
	plot_label(c, xmid, h->h - 12, m->xlabel, room(xmid, h->w),
	    ANCHOR_MIDDLE, 0);
	plot_label(c, 12 + CAP, ymid, m->ylabel, room(ymid, h->h),
	    ANCHOR_MIDDLE, LBL_VERTICAL);
}

int
plot_heatmap_write(const char *path, const struct plot_heatmap *hm,
    char *cause)
{
	struct hchart h;
	int svg, rc;

	memset(&h, 0, sizeof h);
	h.hm = hm;
	if (plot_kind(path, &svg, cause) != 0 || heat_scan(&h, cause) != 0)
		return -1;
	heat_layout(&h, svg);
	if (heat_cells(&h) != 0)
		rc = err_set(cause, "out of memory for a heat map of %zu x %zu",
		    hm->rows, hm->cols);
	else
		rc = plot_render(path, svg, h.w, h.h, heat_draw, &h, cause);
	free(h.idx);
	free(h.edges);
	return rc;
}
