/*
 * proto: the stable names (ops, error codes, kinds, finish reasons), the
 * text rules (UTF-8, session names) and the frame length check.  The
 * frame format is documented byte by byte in proto.h.
 */
#include "proto.h"

#include <string.h>

#include "err.h"

#define PROTO_NAME(e, s) s,
static const char *const op_names[] = { PROTO_OPS(PROTO_NAME) };
static const char *const err_names[] = { PROTO_ERRS(PROTO_NAME) };
static const char *const kind_names[] = { PROTO_KINDS(PROTO_NAME) };
static const char *const finish_names[] = { PROTO_FINISHES(PROTO_NAME) };
#undef PROTO_NAME

#define NITEMS(a) (sizeof(a) / sizeof((a)[0]))

static const char *
name_of(const char *const *names, size_t n, unsigned int i)
{
	return i < n ? names[i] : "unknown";
}

/* Index of the name s (len bytes, not NUL-terminated) in names, or -1. */
static int
index_of(const char *const *names, size_t n, const char *s, size_t len)
{
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
			return (int)i;
	}
	return -1;
}

const char *
proto_op_name(enum proto_op op)
{
	return name_of(op_names, NITEMS(op_names), (unsigned int)op);
}

int
proto_op_parse(const char *s, size_t len, enum proto_op *op)
{
	int i = index_of(op_names, NITEMS(op_names), s, len);

	if (i == -1)
		return -1;
	*op = (enum proto_op)i;
	return 0;
}

const char *
proto_err_name(enum proto_err e)
{
	return name_of(err_names, NITEMS(err_names), (unsigned int)e);
}

int
proto_err_parse(const char *s, size_t len, enum proto_err *e)
{
	int i = index_of(err_names, NITEMS(err_names), s, len);

	if (i == -1)
		return -1;
	*e = (enum proto_err)i;
	return 0;
}

const char *
proto_kind_name(enum proto_kind k)
{
	return name_of(kind_names, NITEMS(kind_names), (unsigned int)k);
}

int
proto_kind_parse(const char *s, size_t len, enum proto_kind *k)
{
	int i = index_of(kind_names, NITEMS(kind_names), s, len);

	if (i == -1)
		return -1;
	*k = (enum proto_kind)i;
	return 0;
}

const char *
proto_finish_name(enum proto_finish f)
{
	return name_of(finish_names, NITEMS(finish_names), (unsigned int)f);
}

int
proto_finish_parse(const char *s, size_t len, enum proto_finish *f)
{
	int i = index_of(finish_names, NITEMS(finish_names), s, len);

	if (i == -1)
		return -1;
	*f = (enum proto_finish)i;
	return 0;
}

/*
 * The second byte's range is what excludes overlong forms (E0, F0),
 * surrogates (ED) and code points above U+10FFFF (F4); C0, C1 and F5-FF
 * can only start overlong or out-of-range sequences.
 */
size_t
proto_utf8_seq(const uint8_t *s, size_t len)
{
	uint8_t c, lo = 0x80, hi = 0xbf;
	size_t n, k;

	if (len == 0)
		return 0;
	c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80;
		hi = c == 0xed ? 0x9f : 0xbf;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf;
	} else
		return 0;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (k = 2; k < n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
	}
	return n;
}

int
proto_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((n = proto_utf8_seq(s + i, len - i)) == 0)
			return 0;
		i += n;
	}
	return 1;
}

void
proto_utf8_sanitize(char *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		n = proto_utf8_seq((const uint8_t *)s + i, len - i);
		if (n == 0) {
			s[i] = '?';
			n = 1;
		}
		i += n;
	}
}

int
proto_session_name_ok(const char *s, size_t len)
{
	size_t i;
	char c;

	if (s == NULL || len == 0 || len > PROTO_NAME_MAX || s[0] == '.')
		return 0;
	for (i = 0; i < len; i++) {
		c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')
			continue;
		return 0;
	}
	return 1;
}

int
proto_frame_check(const uint8_t *buf, size_t len, size_t max_frame,
    size_t *body_len, char *cause)
{
	uint32_t l;

	if (len < 4)
		return 0;
	l = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	    (uint32_t)buf[2] << 8 | buf[3];
	if (l == 0)
		return err_set(cause, "frame of length 0");
	if (l > max_frame) {
		return err_set(cause, "frame of %lu bytes is over the limit "
		    "of %zu", (unsigned long)l, max_frame);
	}
	if (len - 4 < l)
		return 0;
	*body_len = l;
	return 1;
}
