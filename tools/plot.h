/*
 * plot: dependency-free charts for the benchmark tools: line charts
 * (perplexity or latency against position) and heat maps (attention),
 * written as SVG or PNG as the output path's extension says.
 *
 * The writers return 0, or -1 with cause (ERR_LEN bytes, may be NULL)
 * naming what was wrong.  They check everything before they create the
 * file, so a refused chart leaves no file behind, and a failed write
 * removes the partial file.  Line charts are about 1000 x 600 pixels
 * (wider for long legends); heat maps take their size from their cells.
 */
#ifndef SINKD_PLOT_H
#define SINKD_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define PLOT_MAX_SERIES	16
#define PLOT_MAX_SIDE	4096	/* heat map rows or columns */

struct plot_series {
	const char *label;	/* legend text (NULL: "series N") */
	const double *x, *y;	/* n points; NaN or inf: a gap in the line */
	size_t n;
};

/*
 * Lines are reduced to the plot's pixel columns before drawing (first,
 * lowest, highest and last point of each column), so millions of points
 * cost no more output than a few thousand and no spike is lost.
 */
struct plot_lines {
	const char *title, *xlabel, *ylabel;	/* each may be NULL */
	int log_x;		/* logarithmic x axis (x > 0) */
	const struct plot_series *series;
	size_t n_series;	/* up to 16, coloured from a fixed palette */
};
int plot_lines_write(const char *path, const struct plot_lines *, char *cause);

/*
 * Cells are coloured from dark blue (minimum) to yellow (maximum) over
 * the finite values; NaN and infinite cells are grey.  Maps with more
 * cells than the plot has pixels (or, in SVG, than 256 per side) show
 * each block of cells as its mean.  Default labels number from 0.
 */
struct plot_heatmap {
	const char *title, *xlabel, *ylabel;	/* each may be NULL */
	const double *v;	/* rows x cols, row-major; NaN: grey cell */
	size_t rows, cols;
	const char *const *row_labels;	/* rows entries, or NULL: numbers */
	const char *const *col_labels;	/* cols entries, or NULL: numbers */
};
int plot_heatmap_write(const char *path, const struct plot_heatmap *,
    char *cause);

/* Colours the charts use, for reports to match: series i; ramp at t, 0..1. */
uint32_t plot_series_rgb(size_t i);
uint32_t plot_ramp_rgb(double t);

/*
 * zlib's checksum, public so tests can check it against known values:
 * a running value, started with 1.  (PNG's CRC-32 is engine/crc.h's.)
 */
uint32_t plot_adler32(uint32_t adler, const void *buf, size_t len);

#endif
