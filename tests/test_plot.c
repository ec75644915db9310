/*
 * test_plot: charts written to a temporary directory and read back.  PNGs
 * go through an independent reader (chunk CRCs, zlib stored blocks,
 * Adler-32, scanline filters) before their pixels are looked at; SVGs are
 * checked as text.  Hostile inputs must give a file or a named error.
 */
#include <check.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc.h"
#include "plot.h"

/* root holds one directory per test, so failed tests leave nothing */
static char root[64], dir[96];

struct img {
	uint32_t w, h;
	unsigned char *rgb;	/* w * h triples */
};

static int
remove_tree(const char *p)
{
	char cmd[160];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
	return system(cmd);
}

static void
setup(void)
{
	snprintf(dir, sizeof dir, "%s/t.XXXXXX", root);
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
	ck_assert_int_eq(remove_tree(dir), 0);
}

static const char *
path(const char *name)
{
	static char buf[256];

	snprintf(buf, sizeof buf, "%s/%s", dir, name);
	return buf;
}

static unsigned char *
slurp(const char *p, size_t *len)
{
	FILE *f = fopen(p, "rb");
	unsigned char *b;
	long n;

	ck_assert_msg(f != NULL, "%s: %s", p, strerror(errno));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	b = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
	b[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return b;
}

static uint32_t
rd32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* Bit at a time, written apart from plot's, to check its files with. */
static uint32_t
ref_crc32(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	int k;

	while (n-- > 0) {
		c ^= *p++;
		for (k = 0; k < 8; k++)
			c = c >> 1 ^ (0xedb88320u & (0u - (c & 1)));
	}
	return ~c;
}

static uint32_t
ref_adler32(const unsigned char *p, size_t n)
{
	uint32_t a = 1, b = 0;

	while (n-- > 0) {
		a = (a + *p++) % 65521;
		b = (b + a) % 65521;
	}
	return b << 16 | a;
}

/* Chunks in order, each CRC checked; returns the IDAT bytes joined. */
static unsigned char *
png_chunks(const unsigned char *b, size_t len, struct img *im, size_t *zlen)
{
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', 13, 10,
	    26, 10 };
	unsigned char *z = NULL;
	size_t pos = 8, n;
	int seen_end = 0, k = 0;

	*zlen = 0;
	ck_assert_uint_ge(len, 8);
	ck_assert_int_eq(memcmp(b, sig, 8), 0);
	while (pos < len) {
		ck_assert_uint_le(pos + 12, len);
		n = rd32(b + pos);
		ck_assert_uint_le(pos + 12 + n, len);
		ck_assert_uint_eq(rd32(b + pos + 8 + n),
		    ref_crc32(b + pos + 4, n + 4));
		if (k++ == 0) {
			ck_assert_int_eq(memcmp(b + pos + 4, "IHDR", 4), 0);
			ck_assert_uint_eq(n, 13);
			im->w = rd32(b + pos + 8);
			im->h = rd32(b + pos + 12);
			ck_assert_int_eq(b[pos + 16], 8);	/* depth */
			ck_assert_int_eq(b[pos + 17], 2);	/* RGB */
			/* deflate, filter 0, no interlace */
			ck_assert_int_eq(b[pos + 18], 0);
			ck_assert_int_eq(b[pos + 19], 0);
			ck_assert_int_eq(b[pos + 20], 0);
		} else if (memcmp(b + pos + 4, "IDAT", 4) == 0) {
			z = realloc(z, *zlen + n + 1);
			ck_assert_ptr_nonnull(z);
			memcpy(z + *zlen, b + pos + 8, n);
			*zlen += n;
		} else if (memcmp(b + pos + 4, "IEND", 4) == 0)
			seen_end = 1;
		pos += 12 + n;
	}
	ck_assert_uint_eq(pos, len);
	ck_assert_int_eq(seen_end, 1);
	ck_assert_ptr_nonnull(z);
	return z;
}

/* zlib of stored deflate blocks only, which is what plot writes. */
static unsigned char *
unstore(const unsigned char *z, size_t zlen, size_t *rawlen)
{
	unsigned char *raw = NULL;
	size_t pos = 2, n = 0, len;
	int final = 0;

	ck_assert_uint_ge(zlen, 2 + 5 + 4);
	ck_assert_int_eq(z[0] & 0x0f, 8);			/* deflate */
	ck_assert_int_eq((z[0] << 8 | z[1]) % 31, 0);		/* FCHECK */
	ck_assert_int_eq(z[1] & 0x20, 0);			/* FDICT */
	while (!final) {
		ck_assert_uint_le(pos + 5, zlen);
		final = z[pos] & 1;
		ck_assert_int_eq(z[pos] >> 1 & 3, 0);		/* stored */
		len = z[pos + 1] | (size_t)z[pos + 2] << 8;
		ck_assert_uint_eq(len ^ 0xffff,
		    z[pos + 3] | (size_t)z[pos + 4] << 8);
		ck_assert_uint_le(pos + 5 + len, zlen);
		raw = realloc(raw, n + len + 1);
		ck_assert_ptr_nonnull(raw);
		memcpy(raw + n, z + pos + 5, len);
		n += len, pos += 5 + len;
	}
	ck_assert_uint_eq(pos + 4, zlen);
	ck_assert_uint_eq(rd32(z + pos), ref_adler32(raw, n));
	*rawlen = n;
	return raw;
}

static struct img
png_read(const char *p)
{
	struct img im = { 0, 0, NULL };
	unsigned char *b, *z, *raw;
	size_t len, zlen, n, y, stride;

	b = slurp(p, &len);
	z = png_chunks(b, len, &im, &zlen);
	raw = unstore(z, zlen, &n);
	ck_assert_uint_gt(im.w, 0);
	ck_assert_uint_gt(im.h, 0);
	stride = 1 + 3 * (size_t)im.w;
	ck_assert_uint_eq(n, im.h * stride);
	im.rgb = malloc(3 * (size_t)im.w * im.h);
	ck_assert_ptr_nonnull(im.rgb);
	for (y = 0; y < im.h; y++) {
		ck_assert_int_eq(raw[y * stride], 0);	/* filter None */
		memcpy(im.rgb + y * (stride - 1), raw + y * stride + 1,
		    stride - 1);
	}
	free(raw);
	free(z);
	free(b);
	return im;
}

static uint32_t
pixel(const struct img *im, uint32_t x, uint32_t y)
{
	const unsigned char *p = im->rgb + ((size_t)y * im->w + x) * 3;

	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

/* Pixels of colour rgb within columns [0, xmax). */
static size_t
count_rgb(const struct img *im, uint32_t rgb, uint32_t xmax)
{
	size_t n = 0;
	uint32_t x, y;

	for (y = 0; y < im->h; y++)
		for (x = 0; x < xmax && x < im->w; x++)
			n += pixel(im, x, y) == rgb;
	return n;
}

static int
file_exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

START_TEST(checksums_match_known_values)
{
	ck_assert_uint_eq(crc_32(0, "123456789", 9), 0xCBF43926u);
	ck_assert_uint_eq(crc_32(crc_32(0, "1234", 4), "56789", 5),
	    0xCBF43926u);
	ck_assert_uint_eq(crc_32(0, "", 0), 0);
	ck_assert_uint_eq(plot_adler32(1, "Wikipedia", 9), 0x11E60398u);
	ck_assert_uint_eq(plot_adler32(plot_adler32(1, "Wiki", 4), "pedia", 5),
	    0x11E60398u);
	ck_assert_uint_eq(plot_adler32(1, "", 0), 1);
}
END_TEST

START_TEST(checksums_survive_long_runs_of_0xff)
{
	/* long enough for the deferred modulo to matter */
	static unsigned char b[100000];

	memset(b, 0xff, sizeof b);
	ck_assert_uint_eq(plot_adler32(1, b, sizeof b),
	    ref_adler32(b, sizeof b));
	ck_assert_uint_eq(crc_32(0, b, sizeof b), ref_crc32(b, sizeof b));
}
END_TEST

START_TEST(png_line_chart_reads_back)
{
	enum { N = 5000 };
	static double x[N], y[N], y2[N];
	struct plot_series s[2] = {
		{ "rising", x, y, N }, { "falling", x, y2, N },
	};
	struct plot_lines pl = { "title", "x", "y", 0, s, 2 };
	char cause[ERR_LEN] = "";
	struct img im;
	size_t i;

	for (i = 0; i < N; i++) {
		x[i] = (double)i;
		y[i] = sqrt((double)i);
		y2[i] = 100.0 - sqrt((double)i);
	}
	ck_assert_msg(plot_lines_write(path("a.png"), &pl, cause) == 0, "%s",
	    cause);
	im = png_read(path("a.png"));
	ck_assert_uint_ge(im.w, 900);
	ck_assert_uint_ge(im.h, 500);
	ck_assert_uint_eq(pixel(&im, 0, 0), 0xffffff);
	/* far more than a legend swatch: the lines themselves */
	ck_assert_uint_gt(count_rgb(&im, plot_series_rgb(0), im.w), 800);
	ck_assert_uint_gt(count_rgb(&im, plot_series_rgb(1), im.w), 800);
	ck_assert_uint_ne(plot_series_rgb(0), plot_series_rgb(1));
	free(im.rgb);
}
END_TEST

/* Topmost row with colour rgb left of the legend, or h. */
static uint32_t
top_row(const struct img *im, uint32_t rgb)
{
	uint32_t x, y;

	for (y = 0; y < im->h; y++)
		for (x = 0; x < im->w * 6 / 10; x++)
			if (pixel(im, x, y) == rgb)
				return y;
	return im->h;
}

static size_t
row_count(const struct img *im, uint32_t y, uint32_t rgb)
{
	size_t n = 0;
	uint32_t x;

	for (x = 0; x < im->w; x++)
		n += pixel(im, x, y) == rgb;
	return n;
}

START_TEST(reduction_keeps_a_single_spike)
{
	enum { N = 1000000 };
	double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
	struct plot_series s = { "flat", x, y, N };
	struct plot_lines pl = { NULL, NULL, NULL, 0, &s, 1 };
	char cause[ERR_LEN] = "";
	struct img im;
	size_t i, n;

	ck_assert_ptr_nonnull(x);
	ck_assert_ptr_nonnull(y);
	for (i = 0; i < N; i++)
		x[i] = (double)i, y[i] = (double)(i % 2);
	y[N / 2 + 1] = 100.0;
	ck_assert_msg(plot_lines_write(path("spike.png"), &pl, cause) == 0,
	    "%s", cause);
	im = png_read(path("spike.png"));
	/* the spike reaches the top tenth; the band stays at the bottom */
	ck_assert_uint_lt(top_row(&im, plot_series_rgb(0)), im.h / 10);
	ck_assert_uint_le(row_count(&im, im.h / 2, plot_series_rgb(0)), 4);
	for (i = 0, n = 0; i < im.h; i++)
		n = row_count(&im, (uint32_t)i, plot_series_rgb(0)) > n ?
		    row_count(&im, (uint32_t)i, plot_series_rgb(0)) : n;
	ck_assert_uint_gt(n, 500);
	free(im.rgb);
	free(x);
	free(y);
}
END_TEST

START_TEST(png_heat_map_reads_back)
{
	double v[6] = { 0.0, 0.5, 1.0, 0.25, NAN, 0.75 };
	const char *rl[2] = { "first", "second" };
	struct plot_heatmap hm = { "heat", "key", "query", v, 2, 3, rl, NULL };
	char cause[ERR_LEN] = "";
	struct img im;
	size_t lo, hi;

	ck_assert_msg(plot_heatmap_write(path("h.png"), &hm, cause) == 0,
	    "%s", cause);
	im = png_read(path("h.png"));
	lo = count_rgb(&im, plot_ramp_rgb(0.0), im.w);
	hi = count_rgb(&im, plot_ramp_rgb(1.0), im.w);
	ck_assert_uint_ne(plot_ramp_rgb(0.0), plot_ramp_rgb(1.0));
	/* a whole cell each (48 x 48 px), beyond the colour bar's share */
	ck_assert_uint_gt(lo, 1000);
	ck_assert_uint_gt(hi, 1000);
	free(im.rgb);
}
END_TEST

START_TEST(ramp_darkens_towards_the_minimum)
{
	uint32_t c;
	double t, l, prev = -1;

	for (t = 0; t <= 1.0; t += 1.0 / 64) {
		c = plot_ramp_rgb(t);
		l = 0.2126 * (c >> 16) + 0.7152 * (c >> 8 & 0xff) +
		    0.0722 * (c & 0xff);
		ck_assert_msg(l > prev, "luma falls at t=%g", t);
		prev = l;
	}
	ck_assert_uint_eq(plot_ramp_rgb(NAN), plot_ramp_rgb(0.0));
	ck_assert_uint_eq(plot_ramp_rgb(7.0), plot_ramp_rgb(1.0));
}
END_TEST

static size_t
count_str(const char *s, const char *needle)
{
	size_t n = 0;

	while ((s = strstr(s, needle)) != NULL)
		n++, s++;
	return n;
}

START_TEST(svg_is_escaped_and_balanced)
{
	double x[3] = { 1, 2, 3 }, y[3] = { 3, 1, 2 };
	struct plot_series s[2] = {
		{ "plain", x, y, 3 }, { "a <&> \"b\"", x, y, 3 },
	};
	struct plot_lines pl = { "T<itle>", "x & y", "\x01\xff", 0, s, 2 };
	char cause[ERR_LEN] = "";
	unsigned char *b;
	size_t len, i;

	ck_assert_msg(plot_lines_write(path("a.SVG"), &pl, cause) == 0, "%s",
	    cause);
	b = slurp(path("a.SVG"), &len);
	ck_assert(strncmp((char *)b, "<?xml", 5) == 0 ||
	    strncmp((char *)b, "<svg", 4) == 0);
	ck_assert_ptr_nonnull(strstr((char *)b, "plain"));
	ck_assert_ptr_nonnull(strstr((char *)b,
	    "a &lt;&amp;&gt; &quot;b&quot;"));
	ck_assert_ptr_nonnull(strstr((char *)b, "T&lt;itle&gt;"));
	ck_assert_ptr_null(strstr((char *)b, "<&>"));
	ck_assert_ptr_nonnull(strstr((char *)b, "viewBox=\"0 0 "));
	ck_assert_uint_eq(count_str((char *)b, "<svg"), 1);
	ck_assert_uint_eq(count_str((char *)b, "</svg>"), 1);
	ck_assert_str_eq((char *)b + len - 7, "</svg>\n");
	ck_assert_uint_eq(count_str((char *)b, "<"), count_str((char *)b, ">"));
	for (i = 0; i < len; i++)	/* no control bytes, no broken UTF-8 */
		ck_assert(b[i] >= 0x20 || b[i] == '\n');
	ck_assert_ptr_null(memchr(b, 0xff, len));
	free(b);
}
END_TEST

START_TEST(svg_of_millions_of_points_stays_small)
{
	enum { N = 1000000, NS = 4 };
	double *x = malloc(N * sizeof *x), *y = malloc(NS * N * sizeof *y);
	struct plot_series s[NS];
	struct plot_lines pl = { "big", "position", "value", 0, s, NS };
	char cause[ERR_LEN] = "", *b;
	uint64_t r = 88172645463325252ull;
	size_t i, k, len;

	ck_assert_ptr_nonnull(x);
	ck_assert_ptr_nonnull(y);
	for (i = 0; i < N; i++) {
		x[i] = (double)i;
		for (k = 0; k < NS; k++) {
			r ^= r << 13, r ^= r >> 7, r ^= r << 17;
			y[k * N + i] = (double)k + (double)(r >> 11) / 0x1p53;
		}
	}
	for (k = 0; k < NS; k++)
		s[k] = (struct plot_series){ NULL, x, y + k * N, N };
	ck_assert_msg(plot_lines_write(path("big.svg"), &pl, cause) == 0, "%s",
	    cause);
	b = (char *)slurp(path("big.svg"), &len);
	ck_assert_uint_lt(len, 1000000);
	ck_assert_ptr_nonnull(strstr(b, "series 4"));
	ck_assert_uint_eq(count_str(b, "</svg>"), 1);
	free(b);
	pl.log_x = 1;
	x[0] = 0.5;
	ck_assert_int_eq(plot_lines_write(path("big.png"), &pl, cause), 0);
	free(png_read(path("big.png")).rgb);
	free(x);
	free(y);
}
END_TEST

START_TEST(bad_paths_are_named)
{
	double x[3] = { 0, 1, 2 }, y[3] = { 1, 2, 3 };
	struct plot_series s = { "s", x, y, 3 };
	struct plot_lines pl = { "t", NULL, NULL, 0, &s, 1 };
	char cause[ERR_LEN], p[512];

	ck_assert_int_eq(plot_lines_write(path("chart.jpg"), &pl, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "chart.jpg"));
	ck_assert_ptr_nonnull(strstr(cause, ".svg"));
	ck_assert_ptr_nonnull(strstr(cause, ".png"));
	ck_assert_int_eq(file_exists(path("chart.jpg")), 0);
	ck_assert_int_eq(plot_lines_write(path("png"), &pl, cause), -1);
	ck_assert_int_eq(plot_lines_write(NULL, &pl, NULL), -1);

	snprintf(p, sizeof p, "%s/no/such/dir/c.png", dir);
	ck_assert_int_eq(plot_lines_write(p, &pl, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, p));
	ck_assert_ptr_nonnull(strstr(cause, strerror(ENOENT)));
	ck_assert_int_eq(plot_lines_write(path("ok.PnG"), &pl, cause), 0);
}
END_TEST

START_TEST(bad_series_are_named)
{
	double x[3] = { 0, 1, 2 }, y[3] = { 1, 2, 3 };
	double nan3[3] = { NAN, NAN, NAN };
	struct plot_series s = { "s", x, y, 3 }, sn = { "s", x, nan3, 3 };
	struct plot_lines pl = { "t", NULL, NULL, 0, &sn, 1 };
	char cause[ERR_LEN];

	ck_assert_int_eq(plot_lines_write(path("n.svg"), &pl, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "finite"));
	ck_assert_int_eq(file_exists(path("n.svg")), 0);

	pl.series = &s;
	pl.log_x = 1;
	ck_assert_int_eq(plot_lines_write(path("l.png"), &pl, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "positive"));
	x[0] = -1;
	ck_assert_int_eq(plot_lines_write(path("l.png"), &pl, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "logarithmic"));

	pl.n_series = 0;
	ck_assert_int_eq(plot_lines_write(path("e.png"), &pl, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "no series"));
	pl.n_series = 17;
	ck_assert_int_eq(plot_lines_write(path("e.png"), &pl, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "at most 16"));
	ck_assert_int_eq(plot_lines_write(path("e.png"), NULL, cause), -1);
	s.x = NULL;
	pl.n_series = 1, pl.log_x = 0;
	ck_assert_int_eq(plot_lines_write(path("e.png"), &pl, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "no data"));
}
END_TEST

START_TEST(bad_heat_maps_are_named)
{
	double v[4] = { 1, 2, 3, 4 };
	struct plot_heatmap hm = { NULL, NULL, NULL, v, 0, 0, NULL, NULL };
	char cause[ERR_LEN];

	ck_assert_int_eq(plot_heatmap_write(path("h.png"), &hm, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "cells"));
	hm.rows = 2;
	ck_assert_int_eq(plot_heatmap_write(path("h.svg"), &hm, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "no cells"));
	hm.rows = 5000, hm.cols = 1;
	ck_assert_int_eq(plot_heatmap_write(path("h.png"), &hm, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "too large"));
	hm.rows = 2, hm.cols = 2, hm.v = NULL;
	ck_assert_int_eq(plot_heatmap_write(path("h.png"), &hm, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "no values"));
	hm.v = v;
	ck_assert_int_eq(plot_heatmap_write(path("h.gif"), &hm, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, ".png"));
	ck_assert_int_eq(plot_heatmap_write(path("h.png"), NULL, cause), -1);
	ck_assert_int_eq(file_exists(path("h.png")), 0);
	ck_assert_int_eq(file_exists(path("h.svg")), 0);
}
END_TEST

START_TEST(write_errors_are_named_and_cleaned_up)
{
	double x[2] = { 0, 1 }, y[2] = { 0, 1 };
	struct plot_series s = { "s", x, y, 2 };
	struct plot_lines pl = { NULL, NULL, NULL, 0, &s, 1 };
	char cause[ERR_LEN];

	if (access("/dev/full", W_OK) != 0) {
		printf("SKIP: no writable /dev/full\n");
		return;
	}
	/* a name the writer accepts, on a device that refuses every byte */
	ck_assert_int_eq(symlink("/dev/full", path("full.png")), 0);
	ck_assert_int_eq(plot_lines_write(path("full.png"), &pl, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "cannot write"));
	ck_assert_ptr_nonnull(strstr(cause, strerror(ENOSPC)));
	ck_assert_int_eq(symlink("/dev/full", path("full.svg")), 0);
	ck_assert_int_eq(plot_lines_write(path("full.svg"), &pl, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "full.svg"));
}
END_TEST

/* Writes both formats; the PNG must read back. */
static void
lines_both(const struct plot_lines *pl, const char *name)
{
	char cause[ERR_LEN] = "", p[64];

	snprintf(p, sizeof p, "%s.svg", name);
	ck_assert_msg(plot_lines_write(path(p), pl, cause) == 0, "%s: %s",
	    name, cause);
	snprintf(p, sizeof p, "%s.png", name);
	ck_assert_msg(plot_lines_write(path(p), pl, cause) == 0, "%s: %s",
	    name, cause);
	free(png_read(path(p)).rgb);
}

START_TEST(hostile_line_data_still_draws)
{
	double x[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	double one[1] = { 5 }, flat[8] = { 3, 3, 3, 3, 3, 3, 3, 3 };
	double huge[8] = { DBL_MAX, -DBL_MAX, INFINITY, NAN, -INFINITY, 0,
	    DBL_MAX, -DBL_MAX };
	double tiny[8] = { 4.9e-324, 0, 1e-320, 4.9e-324, 0, 0, 1e-310, 0 };
	double gaps[8] = { 1, NAN, 2, NAN, 3, INFINITY, 4, NAN };
	double same_x[8] = { 7, 7, 7, 7, 7, 7, 7, 7 };
	double rev_x[8] = { 8, 1, 7, 2, 6, 3, 5, 4 };
	struct plot_series s[4] = { { NULL, x, one, 1 } };
	struct plot_lines pl = { NULL, NULL, NULL, 0, s, 1 };

	lines_both(&pl, "single");
	s[0] = (struct plot_series){ "flat", x, flat, 8 };
	lines_both(&pl, "flat");
	s[0].y = huge;
	lines_both(&pl, "huge");
	s[0].y = tiny;
	lines_both(&pl, "tiny");
	s[0].y = gaps;
	lines_both(&pl, "gaps");
	s[0].x = same_x;
	lines_both(&pl, "same_x");
	pl.log_x = 1;
	lines_both(&pl, "same_x_log");
	s[0].x = huge;	/* x = DBL_MAX on a log axis */
	s[0].y = flat;
	huge[5] = 1;	/* keep x > 0 where it is finite */
	huge[1] = huge[4] = huge[7] = NAN;
	lines_both(&pl, "huge_log");
	s[0] = (struct plot_series){ "rev", rev_x, flat, 8 };
	s[1] = (struct plot_series){ "empty", x, flat, 0 };
	s[2] = (struct plot_series){ "one", x, one, 1 };
	s[3] = (struct plot_series){ "gaps", rev_x, gaps, 8 };
	pl.n_series = 4;
	lines_both(&pl, "mixed");
}
END_TEST

START_TEST(hostile_labels_still_draw)
{
	static char longlab[20000];
	double x[2] = { 1, 2 }, y[2] = { 1, 2 };
	struct plot_series s[2] = { { longlab, x, y, 2 },
	    { "\xe2\x96\x81tok\xc3\x28\xed\xa0\x80\n\t\x7f", x, y, 2 } };
	struct plot_lines pl = { longlab, longlab, longlab, 0, s, 2 };
	char cause[ERR_LEN] = "";
	unsigned char *b;
	size_t len;

	memset(longlab, 'W', sizeof longlab - 1);
	lines_both(&pl, "labels");
	b = slurp(path("labels.svg"), &len);
	ck_assert_uint_lt(len, 20000);	/* long text was cut */
	ck_assert_ptr_nonnull(strstr((char *)b, "\xe2\x96\x81tok"));
	free(b);
	pl.title = pl.xlabel = pl.ylabel = "";
	ck_assert_int_eq(plot_lines_write(path("empty.png"), &pl, cause), 0);
}
END_TEST

static void
heat_both(const struct plot_heatmap *hm, const char *name)
{
	char cause[ERR_LEN] = "", p[64];
	struct img im;

	snprintf(p, sizeof p, "%s.svg", name);
	ck_assert_msg(plot_heatmap_write(path(p), hm, cause) == 0, "%s: %s",
	    name, cause);
	snprintf(p, sizeof p, "%s.png", name);
	ck_assert_msg(plot_heatmap_write(path(p), hm, cause) == 0, "%s: %s",
	    name, cause);
	im = png_read(path(p));
	ck_assert_uint_le(im.w, 1600);
	ck_assert_uint_le(im.h, 1200);
	free(im.rgb);
}

START_TEST(hostile_heat_maps_still_draw)
{
	enum { BIG = 4096 };
	double *v = calloc((size_t)BIG * BIG, sizeof *v);
	const char *lab[3] = { NULL, "x\xff", "<&>" };
	struct plot_heatmap hm = { "t", "x", "y", v, 1, 1, NULL, NULL };
	size_t i;

	ck_assert_ptr_nonnull(v);
	heat_both(&hm, "one");
	v[0] = NAN;
	heat_both(&hm, "one_nan");
	hm.rows = 1, hm.cols = BIG;
	heat_both(&hm, "row");
	hm.rows = BIG, hm.cols = 3, hm.col_labels = lab;
	v[1] = DBL_MAX, v[2] = -DBL_MAX, v[3] = INFINITY;
	heat_both(&hm, "column");
	hm.rows = 3, hm.row_labels = lab;
	heat_both(&hm, "labels");
	for (i = 0; i < (size_t)BIG * BIG; i++)
		v[i] = (double)(i % 977) - (i % 3 == 0 ? 1e300 : 0);
	hm.rows = hm.cols = BIG, hm.row_labels = hm.col_labels = NULL;
	heat_both(&hm, "big");
	free(v);
}
END_TEST

START_TEST(heat_map_svg_is_bounded)
{
	enum { N = 1024 };
	double *v = malloc((size_t)N * N * sizeof *v);
	struct plot_heatmap hm = { "noise", NULL, NULL, v, N, N, NULL, NULL };
	char cause[ERR_LEN] = "";
	unsigned char *b;
	uint64_t r = 2463534242ull;
	size_t i, len;

	ck_assert_ptr_nonnull(v);
	for (i = 0; i < (size_t)N * N; i++) {
		r ^= r << 13, r ^= r >> 7, r ^= r << 17;
		v[i] = (double)(r >> 11);
	}
	ck_assert_msg(plot_heatmap_write(path("n.svg"), &hm, cause) == 0,
	    "%s", cause);
	b = slurp(path("n.svg"), &len);
	ck_assert_uint_lt(len, 4000000);
	ck_assert_uint_eq(count_str((char *)b, "</svg>"), 1);
	free(b);
	free(v);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("plot");
	TCase *tc = tcase_create("plot");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, checksums_match_known_values);
	tcase_add_test(tc, checksums_survive_long_runs_of_0xff);
	tcase_add_test(tc, png_line_chart_reads_back);
	tcase_add_test(tc, reduction_keeps_a_single_spike);
	tcase_add_test(tc, png_heat_map_reads_back);
	tcase_add_test(tc, ramp_darkens_towards_the_minimum);
	tcase_add_test(tc, svg_is_escaped_and_balanced);
	tcase_add_test(tc, svg_of_millions_of_points_stays_small);
	tcase_add_test(tc, bad_paths_are_named);
	tcase_add_test(tc, bad_series_are_named);
	tcase_add_test(tc, bad_heat_maps_are_named);
	tcase_add_test(tc, write_errors_are_named_and_cleaned_up);
	tcase_add_test(tc, hostile_line_data_still_draws);
	tcase_add_test(tc, hostile_labels_still_draw);
	tcase_add_test(tc, hostile_heat_maps_still_draw);
	tcase_add_test(tc, heat_map_svg_is_bounded);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	strcpy(root, "/tmp/test_plot.XXXXXX");
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_tree(root);
	return failed == 0 ? 0 : 1;
}
