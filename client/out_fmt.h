/*
 * out_fmt: small formatting helpers of the text writer: reading a key of
 * a reply map leniently (a missing or mistyped key is simply not shown),
 * and numbers, sizes, times and padded cells for people.
 */
#ifndef SINK_OUT_FMT_H
#define SINK_OUT_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <msgpack.h>

/* 1 and *v set when map has key as a value of that type, else 0. */
int	fmt_get_u64(const msgpack_object *map, const char *key, uint64_t *v);
int	fmt_get_f64(const msgpack_object *map, const char *key, double *v);
int	fmt_get_bool(const msgpack_object *map, const char *key, int *v);
/* The string (NUL-terminated by proto), or NULL. */
const char *fmt_get_str(const msgpack_object *map, const char *key);

/* Any value on one line: "-" for NULL or nil, JSON for containers. */
void	fmt_value(const msgpack_object *, char *buf, size_t size);
/*
 * A text value: as it is when max is 0; else on one line (newlines and
 * tabs as spaces) and cut after max bytes, at a character boundary,
 * with "..." appended.  Nothing for NULL or a non-string.  Rendered by
 * vis_write when tty.
 */
void	fmt_text(FILE *, int tty, const msgpack_object *, size_t max);

/* "3m ago"; a local date; "3h 02m"; "2.0 MiB". */
void	fmt_ago(time_t now, uint64_t t, char *buf, size_t size);
void	fmt_date(uint64_t t, char *buf, size_t size);
void	fmt_duration(uint64_t secs, char *buf, size_t size);
void	fmt_size(uint64_t bytes, char *buf, size_t size);

/* A session's shape: "streaming, cache 1024 tokens (4 sinks), kv f16". */
void	fmt_shape(const msgpack_object *session, char *buf, size_t size);

/* Columns a UTF-8 string takes (one per character). */
size_t	fmt_width(const char *);
/* s padded to width (right-aligned when right), then sep; vis when tty. */
void	fmt_pad(FILE *, int tty, const char *s, size_t width, int right,
	    const char *sep);

#endif
