/*
 * plot_int: what plot.c and plot_heat.c (layout and data), plot_svg.c
 * and plot_png.c (the two drawing backends) and plot_font.c (bitmap font,
 * text) share.  Not for use outside tools/plot*.c.
 *
 * Coordinates are pixels of the output image, y downwards.  Text is
 * placed by its baseline; layout measures it with the bitmap font's
 * metrics, which are wider than a typical sans-serif at the SVG font
 * size, so text laid out for the PNG also fits the SVG.
 */
#ifndef SINKD_PLOT_INT_H
#define SINKD_PLOT_INT_H

#include <stdint.h>
#include <stdio.h>

#include "plot.h"

#define GLYPH_W		5	/* glyph pixels; each character advances 6 */
#define GLYPH_H		9	/* 7 above the baseline, 2 descending */
#define GLYPH_ASC	7
#define GREY_CELL	256	/* colour index of a cell without value */

#define TS		2		/* text scale: capitals 14 px high */
#define CHW		(6 * TS)	/* advance of one character */
#define LINE_H		(GLYPH_H * TS)	/* capitals plus descenders */
#define CAP		(GLYPH_ASC * TS)
#define INK		0x222222	/* text, axes and frames */
#define FIT_CHARS	120		/* longest text drawn, characters */

enum anchor { ANCHOR_START, ANCHOR_MIDDLE, ANCHOR_END };

/* plot_label flags */
#define LBL_VERTICAL	1
#define LBL_BOLD	2
#define LBL_CUT_MID	4	/* cut long text in the middle, not the end */

struct canvas {
	int w, h;
	int svg;		/* else raster, encoded as PNG at the end */
	FILE *f;		/* SVG is written while drawing */
	unsigned char *px;	/* raster: w * h RGB triples */
};

struct cpt {
	double x, y;
};

struct tstyle {
	int scale;		/* 1 or 2 (smoothed); more is blocky */
	enum anchor anchor;
	int vertical;		/* reads upwards, turned about (x, y) */
	int bold;
	uint32_t rgb;
};

/* A heat map's cells after reduction: colour indices and pixel edges. */
struct cellgrid {
	const uint16_t *idx;	/* rows x cols, 0..255 or GREY_CELL */
	size_t rows, cols;
	const int *xe, *ye;	/* cols + 1 and rows + 1 edges */
	const uint32_t *pal;	/* 257 colours */
};

typedef void plot_drawfn(struct canvas *, const void *);

/* plot.c, for plot_heat.c */
int	plot_kind(const char *path, int *svg, char *cause);
int	plot_render(const char *path, int svg, int w, int h, plot_drawfn *,
	    const void *, char *cause);
void	plot_range(double *lo, double *hi, double pad_frac);
/* Text in INK cut to maxw pixels; nothing when s is NULL. */
void	plot_label(struct canvas *, double x, double y, const char *s,
	    int maxw, enum anchor, int flags);

void	plot_svg_begin(struct canvas *);
void	plot_svg_end(struct canvas *);
void	plot_svg_rect(struct canvas *, double, double, double, double,
	    uint32_t);
void	plot_svg_line(struct canvas *, double, double, double, double, uint32_t,
	    double);
void	plot_svg_polyline(struct canvas *, const struct cpt *, size_t,
	    uint32_t);
void	plot_svg_text(struct canvas *, double, double, const char *,
	    const struct tstyle *);
void	plot_svg_cells(struct canvas *, const struct cellgrid *);

void	plot_ras_put(struct canvas *, int, int, uint32_t);
void	plot_ras_rect(struct canvas *, double, double, double, double,
	    uint32_t);
void	plot_ras_line(struct canvas *, double, double, double, double, uint32_t,
	    double);
void	plot_ras_polyline(struct canvas *, const struct cpt *, size_t,
	    uint32_t);
void	plot_ras_text(struct canvas *, double, double, const char *,
	    const struct tstyle *);
void	plot_ras_cells(struct canvas *, const struct cellgrid *);
int	plot_png_write(FILE *, const struct canvas *, char *);

/* Next code point of UTF-8 text; a malformed byte reads as U+FFFD. */
uint32_t plot_text_next(const char **);
size_t	plot_text_count(const char *);
/*
 * Up to max code points of s into out (room for 4 bytes each), "..."
 * marking a cut: at the end, or with mid in the middle, which keeps
 * labels that differ only at their ends apart.
 */
void	plot_text_fit(const char *s, size_t max, int mid, char *out,
	    size_t outlen);
int	plot_text_width(size_t chars, int scale);

/*
 * Where u lies between lo and hi (lo < hi) as 0..1.  Halved first so that
 * hi - lo cannot overflow for values near DBL_MAX.
 */
static inline double
plot_frac(double u, double lo, double hi)
{
	return (u * 0.5 - lo * 0.5) / (hi * 0.5 - lo * 0.5);
}

/* Pixel of a coordinate; far-off or NaN values land far off, not in UB. */
static inline int
px_round(double v)
{
	if (!(v > -1e5))
		return -100000;
	if (v > 1e5)
		return 100000;
	return (int)(v < 0 ? v - 0.5 : v + 0.5);
}

static inline void
cv_rect(struct canvas *c, double x, double y, double w, double h,
    uint32_t rgb)
{
	if (c->svg)
		plot_svg_rect(c, x, y, w, h, rgb);
	else
		plot_ras_rect(c, x, y, w, h, rgb);
}

static inline void
cv_line(struct canvas *c, double x0, double y0, double x1, double y1,
    uint32_t rgb, double width)
{
	if (c->svg)
		plot_svg_line(c, x0, y0, x1, y1, rgb, width);
	else
		plot_ras_line(c, x0, y0, x1, y1, rgb, width);
}

static inline void
cv_polyline(struct canvas *c, const struct cpt *p, size_t n, uint32_t rgb)
{
	if (c->svg)
		plot_svg_polyline(c, p, n, rgb);
	else
		plot_ras_polyline(c, p, n, rgb);
}

static inline void
cv_text(struct canvas *c, double x, double y, const char *s,
    const struct tstyle *ts)
{
	if (s == NULL || *s == '\0')
		return;
	if (c->svg)
		plot_svg_text(c, x, y, s, ts);
	else
		plot_ras_text(c, x, y, s, ts);
}

static inline void
cv_cells(struct canvas *c, const struct cellgrid *g)
{
	if (c->svg)
		plot_svg_cells(c, g);
	else
		plot_ras_cells(c, g);
}

#endif
