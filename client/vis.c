/*
 * vis: control characters made visible on a terminal (see vis.h).
 */
#include "vis.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* The character at s, n bytes long (0: a stray byte), needs showing. */
static int
vis_needed(const unsigned char *s, size_t n)
{
	if (n == 0)
		return 1;
	if (n == 1)
		return s[0] != '\n' && s[0] != '\t' &&
		    (s[0] < 0x20 || s[0] == 0x7f);
	/* U+0080..U+009F are C2 80..C2 9F. */
	return n == 2 && s[0] == 0xc2 && s[1] < 0xa0;
}

static void
vis_show(FILE *f, const unsigned char *s, size_t n)
{
	if (n == 0)
		fprintf(f, "\\x%02x", s[0]);
	else if (n == 1)
		fprintf(f, "^%c", s[0] == 0x7f ? '?' : s[0] + 0x40);
	else
		fprintf(f, "M-^%c", s[1] - 0x80 + 0x40);
}

void
vis_write(FILE *f, int tty, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, start = 0, n;

	if (!tty) {
		fwrite(s, 1, len, f);
		return;
	}
	/* Harmless runs go out in one fwrite. */
	while (i < len) {
		n = proto_utf8_seq(p + i, len - i);
		if (vis_needed(p + i, n)) {
			fwrite(s + start, 1, i - start, f);
			vis_show(f, p + i, n);
			start = i + (n > 0 ? n : 1);
		}
		i += n > 0 ? n : 1;
	}
	fwrite(s + start, 1, len - start, f);
}

void
vis_puts(FILE *f, int tty, const char *s)
{
	vis_write(f, tty, s, strlen(s));
}

void
vis_printf(FILE *f, int tty, const char *fmt, ...)
{
	va_list ap;
	char buf[1024], *p = buf;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* A long message (an error quoting 4 KiB, say) gets its own room. */
	if ((size_t)n >= sizeof buf) {
		if ((p = malloc((size_t)n + 1)) == NULL)
			return;
		va_start(ap, fmt);
		vsnprintf(p, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	vis_write(f, tty, p, (size_t)n);
	if (p != buf)
		free(p);
}
