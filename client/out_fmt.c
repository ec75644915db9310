/*
 * out_fmt: formatting helpers for the text writer (see out_fmt.h).
 */
#include "out_fmt.h"

#include <inttypes.h>
#include <string.h>

#include "out.h"
#include "proto.h"
#include "vis.h"

int
fmt_get_u64(const msgpack_object *map, const char *key, uint64_t *v)
{
	const msgpack_object *o = proto_map_get(map, key);

	if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return 0;
	*v = o->via.u64;
	return 1;
}

int
fmt_get_f64(const msgpack_object *map, const char *key, double *v)
{
	const msgpack_object *o = proto_map_get(map, key);

	if (o == NULL)
		return 0;
	switch (o->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		*v = o->via.f64;
		return 1;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*v = (double)o->via.u64;
		return 1;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*v = (double)o->via.i64;
		return 1;
	default:
		return 0;
	}
}

int
fmt_get_bool(const msgpack_object *map, const char *key, int *v)
{
	const msgpack_object *o = proto_map_get(map, key);

	if (o == NULL || o->type != MSGPACK_OBJECT_BOOLEAN)
		return 0;
	*v = o->via.boolean;
	return 1;
}

const char *
fmt_get_str(const msgpack_object *map, const char *key)
{
	const msgpack_object *o = proto_map_get(map, key);

	if (o == NULL || o->type != MSGPACK_OBJECT_STR)
		return NULL;
	return o->via.str.ptr;
}

/* How many of the first max bytes of s end on a character boundary. */
static size_t
utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

void
fmt_value(const msgpack_object *v, char *buf, size_t size)
{
	FILE *f;
	size_t n;

	if (size == 0)
		return;
	if (v == NULL || v->type == MSGPACK_OBJECT_NIL) {
		snprintf(buf, size, "-");
		return;
	}
	switch (v->type) {
	case MSGPACK_OBJECT_BOOLEAN:
		snprintf(buf, size, "%s", v->via.boolean ? "yes" : "no");
		return;
	case MSGPACK_OBJECT_STR:
		n = utf8_cut(v->via.str.ptr, v->via.str.size, size - 1);
		memcpy(buf, v->via.str.ptr, n);
		buf[n] = '\0';
		return;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(buf, size, "%" PRIu64, v->via.u64);
		return;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(buf, size, "%" PRId64, v->via.i64);
		return;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		snprintf(buf, size, "%g", v->via.f64);
		return;
	default:
		break;
	}
	/* Containers: as JSON, cut to fit. */
	buf[0] = '\0';
	if ((f = fmemopen(buf, size, "w")) == NULL)
		return;
	out_json_value(f, v);
	fclose(f);
	buf[size - 1] = '\0';
}

void
fmt_text(FILE *f, int tty, const msgpack_object *v, size_t max)
{
	const char *s;
	size_t len, n, i, j;

	if (v == NULL || v->type != MSGPACK_OBJECT_STR)
		return;
	s = v->via.str.ptr;
	len = v->via.str.size;
	if (max == 0) {
		vis_write(f, tty, s, len);
		return;
	}
	n = utf8_cut(s, len, max);
	/* Runs between the blanks that become spaces. */
	for (i = 0; i < n; i = j + 1) {
		for (j = i; j < n && s[j] != '\n' && s[j] != '\t' &&
		    s[j] != '\r'; j++)
			;
		vis_write(f, tty, s + i, j - i);
		if (j < n)
			fputc(' ', f);
	}
	if (n < len)
		fputs("...", f);
}

void
fmt_ago(time_t now, uint64_t t, char *buf, size_t size)
{
	int64_t d;

	if (t == 0 || t > INT64_MAX) {
		snprintf(buf, size, "-");
		return;
	}
	d = (int64_t)now - (int64_t)t;
	if (d < 1)
		snprintf(buf, size, "now");
	else if (d < 60)
		snprintf(buf, size, "%" PRId64 "s ago", d);
	else if (d < 3600)
		snprintf(buf, size, "%" PRId64 "m ago", d / 60);
	else if (d < 86400)
		snprintf(buf, size, "%" PRId64 "h ago", d / 3600);
	else
		snprintf(buf, size, "%" PRId64 "d ago", d / 86400);
}

void
fmt_date(uint64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t > INT64_MAX || localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%d %H:%M", &tm) == 0)
		snprintf(buf, size, "%" PRIu64, t);
}

void
fmt_duration(uint64_t s, char *buf, size_t size)
{
	if (s < 60)
		snprintf(buf, size, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(buf, size, "%" PRIu64 "m %02" PRIu64 "s", s / 60,
		    s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%" PRIu64 "h %02" PRIu64 "m", s / 3600,
		    s / 60 % 60);
	else
		snprintf(buf, size, "%" PRIu64 "d %" PRIu64 "h", s / 86400,
		    s / 3600 % 24);
}

void
fmt_size(uint64_t bytes, char *buf, size_t size)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int i = -1;

	if (bytes < 1024) {
		snprintf(buf, size, "%" PRIu64 " B", bytes);
		return;
	}
	while (v >= 1024 && i < 3) {
		v /= 1024;
		i++;
	}
	snprintf(buf, size, "%.1f %s", v, unit[i]);
}

void
fmt_shape(const msgpack_object *s, char *buf, size_t size)
{
	const char *mode = fmt_get_str(s, "mode");
	const char *kv = fmt_get_str(s, "kv");
	uint64_t cache = 0, sinks = 0;
	int n;

	n = snprintf(buf, size, "%s", mode != NULL ? mode : "?");
	if (fmt_get_u64(s, "cache", &cache) && n >= 0 && (size_t)n < size)
		n += snprintf(buf + n, size - n, ", cache %" PRIu64 " tokens",
		    cache);
	if (fmt_get_u64(s, "sinks", &sinks) && n >= 0 && (size_t)n < size)
		n += snprintf(buf + n, size - n, " (%" PRIu64 " sinks)", sinks);
	if (kv != NULL && n >= 0 && (size_t)n < size)
		snprintf(buf + n, size - n, ", kv %s", kv);
}

size_t
fmt_width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

void
fmt_pad(FILE *f, int tty, const char *s, size_t width, int right,
    const char *sep)
{
	size_t w = fmt_width(s);

	if (right)
		fprintf(f, "%*s", (int)(width > w ? width - w : 0), "");
	vis_puts(f, tty, s);
	/* No trailing blanks at the end of a line. */
	if (!right && strcmp(sep, "\n") != 0)
		fprintf(f, "%*s", (int)(width > w ? width - w : 0), "");
	fputs(sep, f);
}
