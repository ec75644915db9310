/*
 * proto_enc: building outgoing frames (format in proto.h).  A frame is
 * packed into one growing buffer behind 4 reserved bytes, so finishing
 * only fills in the length: no copy.  Finishing also runs the decoder's
 * validation over the body, so that a wrong pair count or invalid UTF-8
 * is a local error naming our bug rather than a peer dropping the
 * connection.
 */
#include "proto.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

/* The packer's sink: the sbuffer, remembering a failed allocation. */
static int
out_write(void *data, const char *buf, size_t len)
{
	struct proto_out *out = data;

	if (out->oom)
		return -1;
	if (len > 0 && msgpack_sbuffer_write(&out->sb, buf, len) != 0) {
		out->oom = 1;
		return -1;
	}
	return 0;
}

static void
reserve_length(struct proto_out *out)
{
	static const char zero[4];

	out_write(out, zero, sizeof zero);
}

void
proto_out_init(struct proto_out *out)
{
	msgpack_sbuffer_init(&out->sb);
	msgpack_packer_init(&out->pk, out, out_write);
	out->oom = 0;
	reserve_length(out);
}

void
proto_out_free(struct proto_out *out)
{
	msgpack_sbuffer_destroy(&out->sb);
	msgpack_sbuffer_init(&out->sb);
	out->oom = 0;
}

void
proto_out_reset(struct proto_out *out)
{
	msgpack_sbuffer_clear(&out->sb);
	out->oom = 0;
	reserve_length(out);
}

void
proto_pack_map(struct proto_out *out, size_t n_pairs)
{
	msgpack_pack_map(&out->pk, n_pairs);
}

void
proto_pack_array(struct proto_out *out, size_t n)
{
	msgpack_pack_array(&out->pk, n);
}

/* s may be NULL when len is 0. */
void
proto_pack_str(struct proto_out *out, const char *s, size_t len)
{
	msgpack_pack_str(&out->pk, len);
	if (len > 0)
		msgpack_pack_str_body(&out->pk, s, len);
}

void
proto_pack_bin(struct proto_out *out, const void *b, size_t len)
{
	msgpack_pack_bin(&out->pk, len);
	if (len > 0)
		msgpack_pack_bin_body(&out->pk, b, len);
}

/* NULL packs an empty string: peers read strings strictly, never nil. */
void
proto_pack_cstr(struct proto_out *out, const char *s)
{
	proto_pack_str(out, s, s == NULL ? 0 : strlen(s));
}

void
proto_pack_key(struct proto_out *out, const char *key)
{
	proto_pack_cstr(out, key);
}

void
proto_pack_u64(struct proto_out *out, uint64_t v)
{
	msgpack_pack_uint64(&out->pk, v);
}

void
proto_pack_i64(struct proto_out *out, int64_t v)
{
	msgpack_pack_int64(&out->pk, v);
}

void
proto_pack_f64(struct proto_out *out, double v)
{
	msgpack_pack_double(&out->pk, v);
}

void
proto_pack_bool(struct proto_out *out, int v)
{
	if (v)
		msgpack_pack_true(&out->pk);
	else
		msgpack_pack_false(&out->pk);
}

void
proto_pack_nil(struct proto_out *out)
{
	msgpack_pack_nil(&out->pk);
}

void
proto_pack_object(struct proto_out *out, const msgpack_object *o)
{
	msgpack_pack_object(&out->pk, *o);
}

void
proto_put_u64(struct proto_out *out, const char *key, uint64_t v)
{
	proto_pack_key(out, key);
	proto_pack_u64(out, v);
}

void
proto_put_i64(struct proto_out *out, const char *key, int64_t v)
{
	proto_pack_key(out, key);
	proto_pack_i64(out, v);
}

void
proto_put_f64(struct proto_out *out, const char *key, double v)
{
	proto_pack_key(out, key);
	proto_pack_f64(out, v);
}

void
proto_put_bool(struct proto_out *out, const char *key, int v)
{
	proto_pack_key(out, key);
	proto_pack_bool(out, v);
}

void
proto_put_cstr(struct proto_out *out, const char *key, const char *v)
{
	proto_pack_key(out, key);
	proto_pack_cstr(out, v);
}

void
proto_put_bin(struct proto_out *out, const char *key, const void *b,
    size_t len)
{
	proto_pack_key(out, key);
	proto_pack_bin(out, b, len);
}

int
proto_out_finish(struct proto_out *out, size_t max_frame, const char **data,
    size_t *len, char *cause)
{
	char why[ERR_LEN];
	uint8_t *p;
	size_t body;

	if (out->oom || out->sb.size < 4)
		return err_set(cause, "out of memory building a message");
	body = out->sb.size - 4;
	if (body > max_frame || body > UINT32_MAX) {
		return err_set(cause, "message of %zu bytes is over the frame "
		    "limit of %zu", body, max_frame);
	}
	p = (uint8_t *)out->sb.data;
	if (proto_validate(p + 4, body, why) == -1)
		return err_set(cause, "built an invalid message: %s", why);
	p[0] = (uint8_t)(body >> 24);
	p[1] = (uint8_t)(body >> 16);
	p[2] = (uint8_t)(body >> 8);
	p[3] = (uint8_t)body;
	*data = out->sb.data;
	*len = out->sb.size;
	return 0;
}

void
proto_encode_head(struct proto_out *out, uint64_t id, enum proto_kind kind,
    size_t n_more)
{
	proto_pack_map(out, 2 + n_more);
	proto_pack_key(out, "id");
	proto_pack_u64(out, id);
	proto_pack_key(out, "kind");
	proto_pack_cstr(out, proto_kind_name(kind));
}

void
proto_encode_verror(struct proto_out *out, uint64_t id, enum proto_err e,
    const char *fmt, va_list ap)
{
	char msg[1024];
	size_t len;

	if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
		msg[0] = '\0';
	len = strlen(msg);
	/* A cut multibyte character, or a peer's bytes quoted in it. */
	proto_utf8_sanitize(msg, len);
	proto_out_reset(out);
	proto_encode_head(out, id, PROTO_K_ERROR, 2);
	proto_pack_key(out, "code");
	proto_pack_cstr(out, proto_err_name(e));
	proto_pack_key(out, "message");
	proto_pack_str(out, msg, len);
}

void
proto_encode_error(struct proto_out *out, uint64_t id, enum proto_err e,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	proto_encode_verror(out, id, e, fmt, ap);
	va_end(ap);
}
