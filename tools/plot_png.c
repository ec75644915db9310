/*
 * plot_png: the raster backend (an RGB image in memory) and the PNG
 * encoder with its two checksums.  Image data goes out as deflate
 * "stored" blocks inside the zlib stream: no compression library is
 * needed and every decoder reads it; the files are just larger.
 */
#include "plot_int.h"

#include <stdlib.h>
#include <string.h>

#include "crc.h"

#define STORED_MAX	65535	/* a stored block's LEN field is 16 bits */
#define ADLER_MOD	65521
#define ADLER_NMAX	5552	/* bytes before the sums could overflow */

uint32_t
plot_adler32(uint32_t adler, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t a = adler & 0xffff, b = adler >> 16;
	size_t k;

	while (len > 0) {
		k = len < ADLER_NMAX ? len : ADLER_NMAX;
		len -= k;
		while (k-- > 0) {
			a += *p++;
			b += a;
		}
		a %= ADLER_MOD;
		b %= ADLER_MOD;
	}
	return b << 16 | a;
}

void
plot_ras_put(struct canvas *c, int x, int y, uint32_t rgb)
{
	unsigned char *p;

	if (x < 0 || y < 0 || x >= c->w || y >= c->h)
		return;
	p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
	p[0] = (unsigned char)(rgb >> 16);
	p[1] = (unsigned char)(rgb >> 8);
	p[2] = (unsigned char)rgb;
}

void
plot_ras_rect(struct canvas *c, double x, double y, double w, double h,
    uint32_t rgb)
{
	int x0 = px_round(x), y0 = px_round(y);
	int x1 = px_round(x + w), y1 = px_round(y + h), i, j;

	x0 = x0 < 0 ? 0 : x0;
	y0 = y0 < 0 ? 0 : y0;
	x1 = x1 > c->w ? c->w : x1;
	y1 = y1 > c->h ? c->h : y1;
	for (j = y0; j < y1; j++)
		for (i = x0; i < x1; i++)
			plot_ras_put(c, i, j, rgb);
}

/* A k x k square centred on (x, y), which gives lines their width. */
static void
stamp(struct canvas *c, int x, int y, int k, uint32_t rgb)
{
	int i, j;

	for (j = 0; j < k; j++)
		for (i = 0; i < k; i++)
			plot_ras_put(c, x + i - k / 2, y + j - k / 2, rgb);
}

void
plot_ras_line(struct canvas *c, double fx0, double fy0, double fx1, double fy1,
    uint32_t rgb, double width)
{
	int x0 = px_round(fx0), y0 = px_round(fy0);
	int x1 = px_round(fx1), y1 = px_round(fy1);
	int dx = abs(x1 - x0), dy = -abs(y1 - y0);
	int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy, e2;
	int k = width < 1.5 ? 1 : (width < 2.5 ? 2 : 3);

	/* Bresenham; px_round keeps every coordinate within +-1e5 */
	for (;;) {
		stamp(c, x0, y0, k, rgb);
		if (x0 == x1 && y0 == y1)
			break;
		e2 = 2 * e;
		if (e2 >= dy) {
			e += dy;
			x0 += sx;
		}
		if (e2 <= dx) {
			e += dx;
			y0 += sy;
		}
	}
}

void
plot_ras_polyline(struct canvas *c, const struct cpt *p, size_t n, uint32_t rgb)
{
	size_t i;

	for (i = 1; i < n; i++)
		plot_ras_line(c, p[i - 1].x, p[i - 1].y, p[i].x, p[i].y, rgb,
		    2.0);
}

void
plot_ras_cells(struct canvas *c, const struct cellgrid *g)
{
	size_t r, k;
	uint32_t rgb;

	for (r = 0; r < g->rows; r++) {
		for (k = 0; k < g->cols; k++) {
			rgb = g->pal[g->idx[r * g->cols + k]];
			plot_ras_rect(c, g->xe[k], g->ye[r],
			    g->xe[k + 1] - g->xe[k], g->ye[r + 1] - g->ye[r],
			    rgb);
		}
	}
}

static void
be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* Write errors are collected by the stream and checked once at close. */
static void
chunk(FILE *f, const char *type, const unsigned char *data, size_t len)
{
	unsigned char hd[8], crc[4];

	be32(hd, (uint32_t)len);
	memcpy(hd + 4, type, 4);
	be32(crc, crc_32(crc_32(0, hd + 4, 4), data, len));
	fwrite(hd, 1, sizeof hd, f);
	if (len > 0)
		fwrite(data, 1, len, f);
	fwrite(crc, 1, sizeof crc, f);
}

/* n bytes from pos of the scanlines, each a 0 (no filter) then RGB. */
static void
scanlines(const struct canvas *c, size_t pos, unsigned char *out, size_t n)
{
	size_t row_len = (size_t)c->w * 3, stride = row_len + 1, row, off, k;

	while (n > 0) {
		row = pos / stride;
		off = pos % stride;
		if (off == 0) {
			*out++ = 0;
			pos++, n--;
			continue;
		}
		k = stride - off < n ? stride - off : n;
		memcpy(out, c->px + row * row_len + off - 1, k);
		out += k, pos += k, n -= k;
	}
}

/* One IDAT per stored block; the zlib header and Adler-32 ride along. */
static void
idat(FILE *f, const struct canvas *c, unsigned char *buf)
{
	size_t total = (size_t)c->h * ((size_t)c->w * 3 + 1), pos = 0, n, k;
	uint32_t adler = 1;

	while (pos < total) {
		k = 0;
		if (pos == 0) {
			buf[k++] = 0x78;	/* deflate, 32K window */
			buf[k++] = 0x01;	/* no dictionary; check bits */
		}
		n = total - pos < STORED_MAX ? total - pos : STORED_MAX;
		buf[k++] = pos + n == total;	/* BFINAL, BTYPE 00 */
		buf[k++] = (unsigned char)n;
		buf[k++] = (unsigned char)(n >> 8);
		buf[k++] = (unsigned char)~n;
		buf[k++] = (unsigned char)(~n >> 8);
		scanlines(c, pos, buf + k, n);
		adler = plot_adler32(adler, buf + k, n);
		k += n, pos += n;
		if (pos == total) {
			be32(buf + k, adler);
			k += 4;
		}
		chunk(f, "IDAT", buf, k);
	}
}

int
plot_png_write(FILE *f, const struct canvas *c, char *cause)
{
	static const unsigned char sig[8] = {
		0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'
	};
	unsigned char ihdr[13], *buf;

	if ((buf = malloc(2 + 5 + STORED_MAX + 4)) == NULL)
		return err_set(cause, "out of memory for the PNG encoder");
	fwrite(sig, 1, sizeof sig, f);
	be32(ihdr, (uint32_t)c->w);
	be32(ihdr + 4, (uint32_t)c->h);
	ihdr[8] = 8;		/* bits per sample */
	ihdr[9] = 2;		/* truecolour RGB */
	/* deflate, filter method 0, no interlace */
	ihdr[10] = ihdr[11] = ihdr[12] = 0;
	chunk(f, "IHDR", ihdr, sizeof ihdr);
	idat(f, c, buf);
	chunk(f, "IEND", NULL, 0);
	free(buf);
	return 0;
}
