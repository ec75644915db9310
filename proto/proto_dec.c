/*
 * proto_dec: the strict decoder, the only code that reads untrusted bytes.
 *
 * msgpack-c trusts declared sizes (five bytes can make it try to allocate
 * tens of GiB), returns NOMEM on deep nesting and lets invalid UTF-8
 * through.  So proto_validate walks the MessagePack format bytes itself,
 * with a fixed stack and no allocation, and only a body that passed goes
 * to msgpack_unpack.  Once the whole body is known to be well formed,
 * every declared element exists as at least one byte of it, which is what
 * bounds the memory msgpack-c then takes.  Also the typed accessors.
 */
#include "proto.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Maps of up to this many pairs are checked for repeated keys pairwise. */
#define SMALL_MAP 8

enum item_kind { I_SCALAR, I_STR, I_BIN, I_EXT, I_ARRAY, I_MAP, I_BAD };

/*
 * Format bytes 0xc0-0xdf: the kind, how many bytes of length or count
 * follow the type byte, and the payload size of fixed-size types.
 */
static const struct fmt {
	uint8_t		 kind, lenbytes, fixed;
	const char	*name;
} fmts[32] = {
	{ I_SCALAR, 0, 0, "nil" }, { I_BAD, 0, 0, "reserved byte 0xc1" },
	{ I_SCALAR, 0, 0, "false" }, { I_SCALAR, 0, 0, "true" },
	{ I_BIN, 1, 0, "bin8" }, { I_BIN, 2, 0, "bin16" },
	{ I_BIN, 4, 0, "bin32" }, { I_EXT, 1, 0, "ext8" },
	{ I_EXT, 2, 0, "ext16" }, { I_EXT, 4, 0, "ext32" },
	{ I_SCALAR, 0, 4, "float32" }, { I_SCALAR, 0, 8, "float64" },
	{ I_SCALAR, 0, 1, "uint8" }, { I_SCALAR, 0, 2, "uint16" },
	{ I_SCALAR, 0, 4, "uint32" }, { I_SCALAR, 0, 8, "uint64" },
	{ I_SCALAR, 0, 1, "int8" }, { I_SCALAR, 0, 2, "int16" },
	{ I_SCALAR, 0, 4, "int32" }, { I_SCALAR, 0, 8, "int64" },
	{ I_EXT, 0, 1, "fixext1" }, { I_EXT, 0, 2, "fixext2" },
	{ I_EXT, 0, 4, "fixext4" }, { I_EXT, 0, 8, "fixext8" },
	{ I_EXT, 0, 16, "fixext16" }, { I_STR, 1, 0, "str8" },
	{ I_STR, 2, 0, "str16" }, { I_STR, 4, 0, "str32" },
	{ I_ARRAY, 2, 0, "array16" }, { I_ARRAY, 4, 0, "array32" },
	{ I_MAP, 2, 0, "map16" }, { I_MAP, 4, 0, "map32" },
};

struct item {
	int		 kind;
	const char	*name;
	size_t		 hdr; /* bytes before the payload or the elements */
	uint64_t	 n;   /* payload bytes, or elements, or pairs */
};

/* The state of one walk over a body. */
struct walker {
	const uint8_t	*body;
	size_t		 len, pos;
	uint64_t	 pending; /* items the open containers still expect */
	struct {
		uint64_t left; /* items still expected: a pair is two */
		int	 map;
	}		 st[PROTO_MAX_DEPTH];
	size_t		 sp;
	size_t		 zone;	    /* bytes msgpack_unpack and copies need */
	size_t		 max_pairs; /* pairs in the largest map */
	char		*cause;
};

static uint64_t
be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | *p++;
	return v;
}

/* Decodes the header of the item at p; avail bytes may be read. */
static int
item_head(const uint8_t *p, size_t avail, struct item *it)
{
	uint8_t b = p[0];
	const struct fmt *f;

	it->hdr = 1;
	it->n = 0;
	if (b <= 0x7f || b >= 0xe0) {
		it->kind = I_SCALAR;
		it->name = "fixint";
	} else if (b <= 0x8f) {
		it->kind = I_MAP;
		it->name = "fixmap";
		it->n = b & 0x0f;
	} else if (b <= 0x9f) {
		it->kind = I_ARRAY;
		it->name = "fixarray";
		it->n = b & 0x0f;
	} else if (b <= 0xbf) {
		it->kind = I_STR;
		it->name = "fixstr";
		it->n = b & 0x1f;
	} else {
		f = &fmts[b - 0xc0];
		it->kind = f->kind;
		it->name = f->name;
		if (f->kind == I_BAD)
			return -1;
		it->hdr = 1 + f->lenbytes + (f->kind == I_EXT);
		if (avail < it->hdr)
			return -1;
		it->n = f->lenbytes ? be(p + 1, f->lenbytes) : f->fixed;
	}
	return 0;
}

/* A str, bin, ext or scalar: its payload must fit in room bytes. */
static int
walk_payload(struct walker *w, const struct item *it, size_t at,
    size_t room)
{
	const uint8_t *p = w->body + w->pos;

	if (it->n > room) {
		return err_set(w->cause, "byte %zu: %s of %" PRIu64 " bytes "
		    "does not fit in the %zu bytes left", at, it->name, it->n,
		    room);
	}
	if (it->kind == I_STR && !proto_utf8_valid(p, (size_t)it->n))
		return err_set(w->cause, "byte %zu: string is not UTF-8", at);
	if (it->kind != I_SCALAR)
		w->zone += (size_t)it->n + 1;
	w->pos += (size_t)it->n;
	return 0;
}

/* An array or map: its elements must fit in room bytes, one byte each. */
static int
walk_open(struct walker *w, const struct item *it, size_t at, size_t room)
{
	int map = it->kind == I_MAP;
	uint64_t items = map ? 2 * it->n : it->n;

	if (w->sp == PROTO_MAX_DEPTH) {
		return err_set(w->cause, "byte %zu: nesting deeper than %d "
		    "levels", at, PROTO_MAX_DEPTH);
	}
	if (items > room) {
		return err_set(w->cause, "byte %zu: %s of %" PRIu64 " %s does "
		    "not fit in the %zu bytes left", at, it->name, it->n,
		    map ? "pairs" : "elements", room);
	}
	/* Multiples of 8, so msgpack-c's aligned allocations waste none. */
	if (map) {
		w->zone += (size_t)it->n * sizeof(msgpack_object_kv);
		if (it->n > w->max_pairs)
			w->max_pairs = (size_t)it->n;
	} else
		w->zone += (size_t)it->n * sizeof(msgpack_object);
	if (items > 0) {
		w->st[w->sp].left = items;
		w->st[w->sp].map = map;
		w->sp++;
		w->pending += items;
	}
	return 0;
}

/*
 * One item.  The invariant: every pending item still has at least one
 * byte of its own, so this one must fit in room, the bytes left minus one
 * for each other pending item.  Every count is checked against room
 * before it is used, and room can never wrap around.
 */
static int
walk_item(struct walker *w)
{
	struct item it;
	size_t at = w->pos, room;
	int key = 0;

	if (w->sp > 0) {
		key = w->st[w->sp - 1].map && w->st[w->sp - 1].left % 2 == 0;
		w->st[w->sp - 1].left--;
		w->pending--;
	}
	room = w->len - w->pos - (size_t)w->pending;
	if (room == 0)
		return err_set(w->cause, "message cut short at byte %zu", at);
	if (item_head(w->body + at, room, &it) == -1) {
		if (it.kind == I_BAD)
			return err_set(w->cause, "byte %zu: %s", at, it.name);
		return err_set(w->cause, "byte %zu: %s cut short", at,
		    it.name);
	}
	if (key && it.kind != I_STR) {
		return err_set(w->cause, "byte %zu: map key is a %s, not a "
		    "string", at, it.name);
	}
	w->pos += it.hdr;
	room -= it.hdr;
	if (it.kind == I_ARRAY || it.kind == I_MAP)
		return walk_open(w, &it, at, room);
	return walk_payload(w, &it, at, room);
}

static int
walk(struct walker *w, const uint8_t *body, size_t len, char *cause)
{
	memset(w, 0, sizeof *w);
	w->body = body;
	w->len = len;
	w->cause = cause;
	if (body == NULL || len == 0)
		return err_set(cause, "empty message");
	if ((body[0] & 0xf0) != 0x80 && body[0] != 0xde && body[0] != 0xdf)
		return err_set(cause, "message is not a map");
	do {
		if (walk_item(w) == -1)
			return -1;
		while (w->sp > 0 && w->st[w->sp - 1].left == 0)
			w->sp--;
	} while (w->sp > 0);
	if (w->pos != len) {
		return err_set(cause, "%zu bytes after the message",
		    len - w->pos);
	}
	return 0;
}

int
proto_validate(const uint8_t *body, size_t len, char *cause)
{
	struct walker w;

	return walk(&w, body, len, cause);
}

static int
key_cmp(const void *a, const void *b)
{
	const msgpack_object *x = *(const msgpack_object *const *)a;
	const msgpack_object *y = *(const msgpack_object *const *)b;

	if (x->via.str.size != y->via.str.size)
		return x->via.str.size < y->via.str.size ? -1 : 1;
	return memcmp(x->via.str.ptr, y->via.str.ptr, x->via.str.size);
}

static int
key_eq(const msgpack_object *x, const msgpack_object *y)
{
	return x->via.str.size == y->via.str.size &&
	    memcmp(x->via.str.ptr, y->via.str.ptr, x->via.str.size) == 0;
}

/* scratch has room for the pointers to the keys of the largest map. */
static int
unique_keys(const msgpack_object *map, const msgpack_object **scratch,
    char *cause)
{
	const msgpack_object_kv *kv = map->via.map.ptr;
	const msgpack_object *dup = NULL;
	uint32_t i, j, n = map->via.map.size;

	if (n <= SMALL_MAP) {
		for (i = 0; i < n && dup == NULL; i++) {
			for (j = i + 1; j < n && dup == NULL; j++) {
				if (key_eq(&kv[i].key, &kv[j].key))
					dup = &kv[i].key;
			}
		}
	} else {
		for (i = 0; i < n; i++)
			scratch[i] = &kv[i].key;
		qsort(scratch, n, sizeof *scratch, key_cmp);
		for (i = 1; i < n && dup == NULL; i++) {
			if (key_eq(scratch[i - 1], scratch[i]))
				dup = scratch[i];
		}
	}
	if (dup == NULL)
		return 0;
	return err_set(cause, "a map has the key '%.*s' twice",
	    dup->via.str.size > 64 ? 64 : (int)dup->via.str.size,
	    dup->via.str.ptr);
}

/* Copies a payload into the zone, NUL-terminated. */
static int
own_bytes(msgpack_zone *z, const char **ptr, uint32_t size, char *cause)
{
	char *p;

	if ((p = msgpack_zone_malloc_no_align(z, (size_t)size + 1)) == NULL)
		return err_set(cause, "out of memory");
	if (size > 0)
		memcpy(p, *ptr, size);
	p[size] = '\0';
	*ptr = p;
	return 0;
}

/* Recursion is bounded: the body was validated to PROTO_MAX_DEPTH. */
static int
own_object(msgpack_zone *z, msgpack_object *o,
    const msgpack_object **scratch, int depth, char *cause)
{
	uint32_t i;

	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		return own_bytes(z, &o->via.str.ptr, o->via.str.size, cause);
	case MSGPACK_OBJECT_BIN:
		return own_bytes(z, &o->via.bin.ptr, o->via.bin.size, cause);
	case MSGPACK_OBJECT_EXT:
		return own_bytes(z, &o->via.ext.ptr, o->via.ext.size, cause);
	case MSGPACK_OBJECT_ARRAY:
	case MSGPACK_OBJECT_MAP:
		if (depth > PROTO_MAX_DEPTH)
			return err_set(cause, "nesting too deep");
		break;
	default:
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_ARRAY) {
		for (i = 0; i < o->via.array.size; i++) {
			if (own_object(z, &o->via.array.ptr[i], scratch,
			    depth + 1, cause) == -1)
				return -1;
		}
		return 0;
	}
	for (i = 0; i < o->via.map.size; i++) {
		if (own_object(z, &o->via.map.ptr[i].key, scratch, depth + 1,
		    cause) == -1 || own_object(z, &o->via.map.ptr[i].val,
		    scratch, depth + 1, cause) == -1)
			return -1;
	}
	return unique_keys(o, scratch, cause);
}

static int
unpack(struct proto_msg *m, const uint8_t *body, size_t len,
    const struct walker *w, char *cause)
{
	const msgpack_object **scratch = NULL;
	msgpack_unpack_return r;
	size_t off = 0;

	if ((m->zone = msgpack_zone_new(w->zone)) == NULL)
		return err_set(cause, "out of memory");
	r = msgpack_unpack((const char *)body, len, &off, m->zone, &m->root);
	if (r == MSGPACK_UNPACK_NOMEM_ERROR)
		return err_set(cause, "out of memory");
	if (r != MSGPACK_UNPACK_SUCCESS || off != len ||
	    m->root.type != MSGPACK_OBJECT_MAP) {
		return err_set(cause, "msgpack-c disagrees with the validator "
		    "(%d at %zu of %zu bytes)", (int)r, off, len);
	}
	if (w->max_pairs > SMALL_MAP) {
		scratch = msgpack_zone_malloc(m->zone,
		    w->max_pairs * sizeof *scratch);
		if (scratch == NULL)
			return err_set(cause, "out of memory");
	}
	return own_object(m->zone, &m->root, scratch, 1, cause);
}

int
proto_msg_parse(struct proto_msg *m, const uint8_t *body, size_t len,
    char *cause)
{
	struct walker w;

	m->zone = NULL;
	memset(&m->root, 0, sizeof m->root);
	if (len > SIZE_MAX / 64) /* keeps the zone arithmetic exact */
		return err_set(cause, "message of %zu bytes is too large", len);
	if (walk(&w, body, len, cause) == -1)
		return -1;
	/*
	 * Pointers to keys for the repeated-key check, and slack; should
	 * msgpack-c take more, the zone grows a chunk: slower, still bounded.
	 */
	w.zone += w.max_pairs * sizeof(void *) + 64;
	if (unpack(m, body, len, &w, cause) == -1) {
		proto_msg_free(m);
		return -1;
	}
	return 0;
}

void
proto_msg_free(struct proto_msg *m)
{
	if (m->zone != NULL)
		msgpack_zone_free(m->zone);
	m->zone = NULL;
	memset(&m->root, 0, sizeof m->root);
}

/*
 * Accessors.
 */

const msgpack_object *
proto_map_get(const msgpack_object *map, const char *key)
{
	const msgpack_object_kv *kv;
	size_t klen;
	uint32_t i;

	if (map == NULL || map->type != MSGPACK_OBJECT_MAP || key == NULL)
		return NULL;
	klen = strlen(key);
	for (i = 0; i < map->via.map.size; i++) {
		kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == klen &&
		    memcmp(kv->key.via.str.ptr, key, klen) == 0)
			return &kv->val;
	}
	return NULL;
}

const msgpack_object *
proto_get(const struct proto_msg *m, const char *key)
{
	return proto_map_get(&m->root, key);
}

/* 0 found, 1 absent and optional, -1 absent and required. */
static int
lookup(const msgpack_object *map, const char *key, int required,
    const msgpack_object **o, char *cause)
{
	if ((*o = proto_map_get(map, key)) != NULL)
		return 0;
	if (required) {
		err_set(cause, "key '%s' is missing", key);
		return -1;
	}
	return 1;
}

/* What o is, for "must be X, not Y". */
static const char *
what(const msgpack_object *o, char *buf, size_t size)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return "nil";
	case MSGPACK_OBJECT_BOOLEAN:
		return o->via.boolean ? "true" : "false";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(buf, size, "%" PRIu64, o->via.u64);
		return buf;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(buf, size, "%" PRId64, o->via.i64);
		return buf;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		snprintf(buf, size, "%g", o->via.f64);
		return buf;
	case MSGPACK_OBJECT_STR:
		snprintf(buf, size, "a string of %lu bytes",
		    (unsigned long)o->via.str.size);
		return buf;
	case MSGPACK_OBJECT_ARRAY:
		return "an array";
	case MSGPACK_OBJECT_MAP:
		return "a map";
	case MSGPACK_OBJECT_BIN:
		return "a bin";
	case MSGPACK_OBJECT_EXT:
		return "an ext";
	}
	return "unknown";
}

int
proto_map_get_str(const msgpack_object *map, const char *key, int required,
    size_t max_len, const char **s, size_t *len, char *cause)
{
	const msgpack_object *o;
	char buf[64];
	int r;

	if ((r = lookup(map, key, required, &o, cause)) != 0)
		return r;
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max_len) {
		return err_set(cause, "key '%s' must be a string of at most %zu "
		    "bytes, not %s", key, max_len, what(o, buf, sizeof buf));
	}
	*s = o->via.str.ptr;
	*len = o->via.str.size;
	return 0;
}

int
proto_map_get_bin(const msgpack_object *map, const char *key, int required,
    size_t max_len, const void **b, size_t *len, char *cause)
{
	const msgpack_object *o;
	char buf[64];
	int r;

	if ((r = lookup(map, key, required, &o, cause)) != 0)
		return r;
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size > max_len) {
		return err_set(cause, "key '%s' must be binary data of at most "
		    "%zu bytes, not %s", key, max_len, what(o, buf, sizeof buf));
	}
	*b = o->via.bin.ptr;
	*len = o->via.bin.size;
	return 0;
}

int
proto_map_get_u64(const msgpack_object *map, const char *key, int required,
    uint64_t min, uint64_t max, uint64_t *out, char *cause)
{
	const msgpack_object *o;
	char buf[64];
	int r;

	if ((r = lookup(map, key, required, &o, cause)) != 0)
		return r;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 < min ||
	    o->via.u64 > max) {
		return err_set(cause, "key '%s' must be an integer from %" PRIu64
		    " to %" PRIu64 ", not %s", key, min, max,
		    what(o, buf, sizeof buf));
	}
	*out = o->via.u64;
	return 0;
}

int
proto_map_get_i64(const msgpack_object *map, const char *key, int required,
    int64_t min, int64_t max, int64_t *out, char *cause)
{
	const msgpack_object *o;
	char buf[64];
	int64_t v = 0;
	int r, ok = 0;

	if ((r = lookup(map, key, required, &o, cause)) != 0)
		return r;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    o->via.u64 <= INT64_MAX) {
		v = (int64_t)o->via.u64;
		ok = 1;
	} else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		v = o->via.i64;
		ok = 1;
	}
	if (!ok || v < min || v > max) {
		return err_set(cause, "key '%s' must be an integer from %" PRId64
		    " to %" PRId64 ", not %s", key, min, max,
		    what(o, buf, sizeof buf));
	}
	*out = v;
	return 0;
}

int
proto_map_get_f64(const msgpack_object *map, const char *key, int required,
    double min, double max, double *out, char *cause)
{
	const msgpack_object *o;
	char buf[64];
	double v = 0;
	int r, ok = 1;

	if ((r = lookup(map, key, required, &o, cause)) != 0)
		return r;
	if (o->type == MSGPACK_OBJECT_FLOAT32 ||
	    o->type == MSGPACK_OBJECT_FLOAT64)
		v = o->via.f64;
	else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		v = (double)o->via.u64;
	else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		v = (double)o->via.i64;
	else
		ok = 0;
	if (!ok || !(v >= min && v <= max)) { /* NaN is never in range */
		return err_set(cause, "key '%s' must be a number from %g to %g, "
		    "not %s", key, min, max, what(o, buf, sizeof buf));
	}
	*out = v;
	return 0;
}

int
proto_map_get_bool(const msgpack_object *map, const char *key, int required,
    int *out, char *cause)
{
	const msgpack_object *o;
	char buf[64];
	int r;

	if ((r = lookup(map, key, required, &o, cause)) != 0)
		return r;
	if (o->type != MSGPACK_OBJECT_BOOLEAN) {
		return err_set(cause, "key '%s' must be true or false, not %s",
		    key, what(o, buf, sizeof buf));
	}
	*out = o->via.boolean ? 1 : 0;
	return 0;
}

int
proto_map_get_str_array(const msgpack_object *map, const char *key,
    size_t max_n, size_t max_len, const char **s, size_t *lens, size_t *n,
    char *cause)
{
	const msgpack_object *o, *e;
	char buf[64];
	uint32_t i;

	if (lookup(map, key, 0, &o, cause) != 0)
		return 1;
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > max_n) {
		return err_set(cause, "key '%s' must be an array of at most %zu "
		    "strings, not %s", key, max_n, o->type ==
		    MSGPACK_OBJECT_ARRAY ? "a longer one" :
		    what(o, buf, sizeof buf));
	}
	for (i = 0; i < o->via.array.size; i++) {
		e = &o->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_STR || e->via.str.size > max_len) {
			return err_set(cause, "key '%s': element %lu must be a "
			    "string of at most %zu bytes, not %s", key,
			    (unsigned long)i, max_len, what(e, buf, sizeof buf));
		}
	}
	for (i = 0; i < o->via.array.size; i++) {
		s[i] = o->via.array.ptr[i].via.str.ptr;
		lens[i] = o->via.array.ptr[i].via.str.size;
	}
	*n = o->via.array.size;
	return 0;
}

int
proto_get_str(const struct proto_msg *m, const char *key, int required,
    size_t max_len, const char **s, size_t *len, char *cause)
{
	return proto_map_get_str(&m->root, key, required, max_len, s, len,
	    cause);
}

int
proto_get_bin(const struct proto_msg *m, const char *key, int required,
    size_t max_len, const void **b, size_t *len, char *cause)
{
	return proto_map_get_bin(&m->root, key, required, max_len, b, len,
	    cause);
}

int
proto_get_u64(const struct proto_msg *m, const char *key, int required,
    uint64_t min, uint64_t max, uint64_t *out, char *cause)
{
	return proto_map_get_u64(&m->root, key, required, min, max, out,
	    cause);
}

int
proto_get_i64(const struct proto_msg *m, const char *key, int required,
    int64_t min, int64_t max, int64_t *out, char *cause)
{
	return proto_map_get_i64(&m->root, key, required, min, max, out,
	    cause);
}

int
proto_get_f64(const struct proto_msg *m, const char *key, int required,
    double min, double max, double *out, char *cause)
{
	return proto_map_get_f64(&m->root, key, required, min, max, out,
	    cause);
}

int
proto_get_bool(const struct proto_msg *m, const char *key, int required,
    int *out, char *cause)
{
	return proto_map_get_bool(&m->root, key, required, out, cause);
}

int
proto_get_str_array(const struct proto_msg *m, const char *key,
    size_t max_n, size_t max_len, const char **s, size_t *lens, size_t *n,
    char *cause)
{
	return proto_map_get_str_array(&m->root, key, max_n, max_len, s, lens,
	    n, cause);
}
