/*
 * plot_svg: the SVG backend.  Each drawing call becomes one element,
 * written as it is drawn; write errors are left on the stream for the
 * caller to find at close.  Label text passes through plot_text_next, so any
 * bytes make valid XML: markup characters become entities, malformed
 * UTF-8 U+FFFD and control characters '?'.
 */
#include "plot_int.h"

#include <math.h>
#include <string.h>

/* Coordinates to 0.1 px, without a ".0": polylines are most of the file. */
static void
num(FILE *f, double v)
{
	long t;

	v = isnan(v) || v < -1e6 ? -1e6 : (v > 1e6 ? 1e6 : v);
	t = lround(v * 10.0);
	if (t < 0) {
		fputc('-', f);
		t = -t;
	}
	if (t % 10 != 0)
		fprintf(f, "%ld.%ld", t / 10, t % 10);
	else
		fprintf(f, "%ld", t / 10);
}

void
plot_svg_begin(struct canvas *c)
{
	fprintf(c->f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
	    "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n",
	    c->w, c->h, c->w, c->h);
	plot_svg_rect(c, 0, 0, c->w, c->h, 0xffffff);
}

void
plot_svg_end(struct canvas *c)
{
	fputs("</svg>\n", c->f);
}

void
plot_svg_rect(struct canvas *c, double x, double y, double w, double h,
    uint32_t rgb)
{
	fputs("<rect x=\"", c->f);
	num(c->f, x);
	fputs("\" y=\"", c->f);
	num(c->f, y);
	fputs("\" width=\"", c->f);
	num(c->f, w);
	fputs("\" height=\"", c->f);
	num(c->f, h);
	fprintf(c->f, "\" fill=\"#%06x\"/>\n", (unsigned)rgb);
}

void
plot_svg_line(struct canvas *c, double x0, double y0, double x1, double y1,
    uint32_t rgb, double width)
{
	fputs("<line x1=\"", c->f);
	num(c->f, x0);
	fputs("\" y1=\"", c->f);
	num(c->f, y0);
	fputs("\" x2=\"", c->f);
	num(c->f, x1);
	fputs("\" y2=\"", c->f);
	num(c->f, y1);
	fprintf(c->f, "\" stroke=\"#%06x\" stroke-width=\"", (unsigned)rgb);
	num(c->f, width);
	fputs("\"/>\n", c->f);
}

void
plot_svg_polyline(struct canvas *c, const struct cpt *p, size_t n, uint32_t rgb)
{
	size_t i;

	fprintf(c->f, "<polyline fill=\"none\" stroke=\"#%06x\" "
	    "stroke-width=\"1.5\" stroke-linejoin=\"round\" points=\"",
	    (unsigned)rgb);
	for (i = 0; i < n; i++) {
		if (i > 0)
			fputc(' ', c->f);
		num(c->f, p[i].x);
		fputc(',', c->f);
		num(c->f, p[i].y);
	}
	fputs("\"/>\n", c->f);
}

static void
put_utf8(FILE *f, uint32_t cp)
{
	if (cp < 0x80) {
		fputc((int)cp, f);
	} else if (cp < 0x800) {
		fputc((int)(0xc0 | cp >> 6), f);
		fputc((int)(0x80 | (cp & 0x3f)), f);
	} else if (cp < 0x10000) {
		fputc((int)(0xe0 | cp >> 12), f);
		fputc((int)(0x80 | (cp >> 6 & 0x3f)), f);
		fputc((int)(0x80 | (cp & 0x3f)), f);
	} else {
		fputc((int)(0xf0 | cp >> 18), f);
		fputc((int)(0x80 | (cp >> 12 & 0x3f)), f);
		fputc((int)(0x80 | (cp >> 6 & 0x3f)), f);
		fputc((int)(0x80 | (cp & 0x3f)), f);
	}
}

static void
xml_text(FILE *f, const char *s)
{
	uint32_t cp;

	while (*s != '\0') {
		cp = plot_text_next(&s);
		if (cp == '&')
			fputs("&amp;", f);
		else if (cp == '<')
			fputs("&lt;", f);
		else if (cp == '>')
			fputs("&gt;", f);
		else if (cp == '"')
			fputs("&quot;", f);
		else if (cp < 0x20 || cp == 0x7f || cp == 0xfffe ||
		    cp == 0xffff)
			fputc('?', f);	/* not allowed in XML 1.0 text */
		else
			put_utf8(f, cp);
	}
}

void
plot_svg_text(struct canvas *c, double x, double y, const char *s,
    const struct tstyle *ts)
{
	static const char *anchor[] = { "start", "middle", "end" };

	fputs("<text x=\"", c->f);
	num(c->f, x);
	fputs("\" y=\"", c->f);
	num(c->f, y);
	/* about the bitmap font's capital height, a little narrower */
	fprintf(c->f, "\" font-size=\"%d\" fill=\"#%06x\"", 8 * ts->scale,
	    (unsigned)ts->rgb);
	if (ts->anchor != ANCHOR_START)
		fprintf(c->f, " text-anchor=\"%s\"", anchor[ts->anchor]);
	if (ts->bold)
		fputs(" font-weight=\"bold\"", c->f);
	if (ts->vertical) {
		fputs(" transform=\"rotate(-90 ", c->f);
		num(c->f, x);
		fputc(' ', c->f);
		num(c->f, y);
		fputs(")\"", c->f);
	}
	fputc('>', c->f);
	xml_text(c->f, s);
	fputs("</text>\n", c->f);
}

/* One row of cells of colour k as rectangles, runs merged. */
static void
cells_row(FILE *f, const struct cellgrid *g, size_t r, uint16_t k)
{
	const uint16_t *row = g->idx + r * g->cols;
	size_t a, b;
	int w;

	for (a = 0; a < g->cols; a = b) {
		for (b = a + 1; b < g->cols && (row[b] == k) == (row[a] == k);)
			b++;
		if (row[a] != k)
			continue;
		w = g->xe[b] - g->xe[a];
		fprintf(f, "M%d %dh%dv%dh-%dz", g->xe[a], g->ye[r], w,
		    g->ye[r + 1] - g->ye[r], w);
	}
}

/*
 * One path per colour rather than one rect per cell: about a third of
 * the bytes, and crispEdges keeps antialiasing seams out of the joins.
 */
void
plot_svg_cells(struct canvas *c, const struct cellgrid *g)
{
	unsigned char used[GREY_CELL + 1];
	size_t i, n = g->rows * g->cols, r;
	uint16_t k;

	memset(used, 0, sizeof used);
	for (i = 0; i < n; i++)
		used[g->idx[i]] = 1;
	for (k = 0; k <= GREY_CELL; k++) {
		if (!used[k])
			continue;
		fprintf(c->f, "<path fill=\"#%06x\" "
		    "shape-rendering=\"crispEdges\" d=\"", (unsigned)g->pal[k]);
		for (r = 0; r < g->rows; r++)
			cells_row(c->f, g, r, k);
		fputs("\"/>\n", c->f);
	}
}
