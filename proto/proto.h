/*
 * proto: the wire format between sinkd and its clients, shared by the
 * daemon and the client.  This is the only code that reads untrusted
 * bytes; it is fuzzed (tests/fuzz_proto.c).  sinkd-protocol(7) describes
 * the protocol for people; this comment is the byte-level definition.
 *
 * Frame, in both directions:
 *
 *	offset	size	field
 *	0	4	L, the body length: unsigned 32-bit, big-endian (network
 *			byte order), 1 <= L <= the receiver's limit (PROTO_MAX_FRAME,
 *			1 MiB, unless configured otherwise).  Never host-endian,
 *			never a size_t.
 *	4	L	the body: exactly one MessagePack map, no bytes after it.
 *
 * Example, the request {"op":"status","id":1} (19 bytes on the wire):
 *
 *	00 00 00 0f	L = 15
 *	82		fixmap, 2 pairs
 *	a2 6f 70	fixstr "op"
 *	a6 73 74 61 74 75 73	fixstr "status"
 *	a2 69 64	fixstr "id"
 *	01		positive fixint 1
 *
 * The body is MessagePack (the format of github.com/msgpack/msgpack,
 * spec.md), restricted:
 *
 *	- the top-level value is a map (0x80-0x8f, 0xde, 0xdf);
 *	- every map key, at every level, is a string (0xa0-0xbf, 0xd9-0xdb);
 *	- every string, key or value, is valid UTF-8: no overlong forms, no
 *	  surrogates (U+D800-U+DFFF), nothing above U+10FFFF;
 *	- containers nest at most PROTO_MAX_DEPTH deep, the top-level map
 *	  being depth 1 (so {"a":[[1]]} has depth 3);
 *	- each declared length or count fits in the bytes left: a str, bin or
 *	  ext of n bytes needs n bytes; an array of n elements at least n
 *	  bytes and a map of n pairs at least 2n, on top of what the enclosing
 *	  containers still expect;
 *	- the reserved byte 0xc1 never appears;
 *	- (proto_msg_parse only) no map repeats a key: a request must not
 *	  mean two things.
 *
 * Every other MessagePack type is accepted where a value may appear:
 * nil, booleans, integers of any width, float32/64, bin, ext.  Keys a
 * receiver does not know are ignored, so that a newer peer of the same
 * major version can talk to an older one.
 *
 * Versions: PROTO_MAJOR changes when an old peer would misread a new one:
 * the framing or these body rules change, or an existing op, key, kind,
 * error code or value changes meaning or type, or is removed.  PROTO_MINOR
 * changes when something is only added that an old peer can ignore: a new
 * op, an optional request key, a reply key, an error code, a finish
 * reason.  Bump one of them with any change below, and keep
 * sinkd-protocol(7) in step.
 *
 * Memory: parsing a body of L bytes allocates at most 30 L bytes plus a
 * few KiB (a 24-byte msgpack_object per element, each element at least
 * one byte of the body; copies of the strings), and only after
 * proto_validate has walked the whole body without allocating anything.
 *
 * Nothing here keeps state between calls: any function may be called from
 * any thread on objects of its own.
 */
#ifndef SINKD_PROTO_H
#define SINKD_PROTO_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define PROTO_MAJOR 1
#define PROTO_MINOR 4 /* 1: the store's ops, errors and keys; 2: denied;
			* 3: chat templates (op templates, key template);
			* 4: status key batch (the scheduler) */
#define PROTO_MAX_FRAME (1u << 20) /* default limit on L */
#define PROTO_MAX_DEPTH 8
#define PROTO_ID_MAX (UINT64_C(1) << 53) /* request ids are 1..2^53 */
#define PROTO_NAME_MAX 64		  /* session names, in bytes */

/*
 * The stable names.  Each list is the one place its names live: the
 * enums and the name tables are both generated from it.
 *
 * sinkd-protocol(7) lists the same ops (OPERATIONS), error codes (ERRORS),
 * kinds and finish reasons; a daemon test checks the page against these.
 */
#define PROTO_OPS(X)                                                    \
	X(HELLO, "hello") X(CREATE, "create") X(LIST, "list")           \
	X(INFO, "info") X(DELETE, "delete") X(RESET, "reset")           \
	X(CHAT, "chat") X(COMPLETE, "complete") X(FEED, "feed")         \
	X(CANCEL, "cancel") X(STATUS, "status") X(SHUTDOWN, "shutdown")  \
	X(LOG, "log") X(REBUILD, "rebuild") X(FORK, "fork")             \
	X(EXPORT, "export") X(IMPORT, "import") X(TEMPLATES, "templates")

#define PROTO_ERRS(X)                                                   \
	X(BAD_REQUEST, "bad_request") X(UNKNOWN_OP, "unknown_op")       \
	X(VERSION, "version") X(NO_SUCH_SESSION, "no_such_session")     \
	X(EXISTS, "exists") X(INVALID_NAME, "invalid_name")             \
	X(BUSY, "busy") X(TOO_LARGE, "too_large") X(LIMIT, "limit")     \
	X(CANCELLED, "cancelled") X(OVERFLOW, "overflow")               \
	X(INTERNAL, "internal") X(DAMAGED, "damaged")                   \
	X(WRONG_MODEL, "wrong_model") X(STORE, "store")                 \
	X(DENIED, "denied")

#define PROTO_KINDS(X)                                                  \
	X(OK, "ok") X(ERROR, "error") X(TOKEN, "token")                 \
	X(WARNING, "warning") X(DONE, "done") X(PROGRESS, "progress")  \
	X(DATA, "data")

#define PROTO_FINISHES(X)                                               \
	X(EOS, "eos") X(LENGTH, "length") X(STOP, "stop")               \
	X(CANCELLED, "cancelled") X(FED, "fed")

#define PROTO_ENUM_OP(e, s) PROTO_OP_##e,
#define PROTO_ENUM_ERR(e, s) PROTO_E_##e,
#define PROTO_ENUM_KIND(e, s) PROTO_K_##e,
#define PROTO_ENUM_FINISH(e, s) PROTO_F_##e,
enum proto_op { PROTO_OPS(PROTO_ENUM_OP) PROTO_OP_COUNT };
enum proto_err { PROTO_ERRS(PROTO_ENUM_ERR) PROTO_E_COUNT };
enum proto_kind { PROTO_KINDS(PROTO_ENUM_KIND) PROTO_K_COUNT };
enum proto_finish { PROTO_FINISHES(PROTO_ENUM_FINISH) PROTO_F_COUNT };

/*
 * Name <-> enum.  *_name returns "unknown" for a value out of range;
 * *_parse takes len bytes (no NUL needed) and returns 0, or -1 for a name
 * not in the list.
 */
const char	*proto_op_name(enum proto_op);
int		 proto_op_parse(const char *, size_t, enum proto_op *);
const char	*proto_err_name(enum proto_err);
int		 proto_err_parse(const char *, size_t, enum proto_err *);
const char	*proto_kind_name(enum proto_kind);
int		 proto_kind_parse(const char *, size_t, enum proto_kind *);
const char	*proto_finish_name(enum proto_finish);
int		 proto_finish_parse(const char *, size_t, enum proto_finish *);

/*
 * Text rules.  proto_utf8_valid: 1 if s is valid UTF-8 (as above), else 0.
 * proto_utf8_seq: the length (1-4) of the one valid character at the
 * start of s, 0 if s is empty or starts with an invalid or incomplete
 * sequence (a streamer holds back a tail for which this is 0 and len < 4).
 * proto_utf8_sanitize: replaces each byte not part of a valid character
 * with '?', so that the result is valid and the length unchanged.
 * proto_session_name_ok: 1 if s is a valid session name (1 to 64 bytes of
 * ASCII letters, digits, '-', '_' and '.', not starting with '.'), else 0.
 */
int	 proto_utf8_valid(const uint8_t *s, size_t len);
size_t	 proto_utf8_seq(const uint8_t *s, size_t len);
void	 proto_utf8_sanitize(char *s, size_t len);
int	 proto_session_name_ok(const char *s, size_t len);

/*
 * Framing: buf holds len bytes received so far, starting at a frame.
 * Returns 1 when a whole frame is there (*body_len = L, the body at
 * buf + 4, the next frame at buf + 4 + L), 0 when more bytes are needed,
 * -1 with cause when L is 0 or over max_frame: the connection cannot be
 * resynchronised and must be dropped.  Looks at the length only.
 */
int	 proto_frame_check(const uint8_t *buf, size_t len, size_t max_frame,
	    size_t *body_len, char *cause);

/*
 * Checks a body against the rules above, except repeated keys, without
 * allocating and in time linear in len.  0, or -1 with cause (naming the
 * byte offset of the problem).
 */
int	 proto_validate(const uint8_t *body, size_t len, char *cause);

/*
 * A parsed message.  proto_msg_parse validates, then unpacks into zone;
 * every str, bin and ext payload is copied into the zone, so the message
 * does not point into body (which may be freed or reused at once), and
 * every string is followed by a NUL byte (strings may still contain NULs
 * of their own: use the length).  0, or -1 with cause and msg->zone NULL.
 * proto_msg_free frees the zone; it is safe after a failed parse and
 * twice.
 */
struct proto_msg {
	msgpack_zone	*zone;
	msgpack_object	 root; /* always a MSGPACK_OBJECT_MAP */
};
int	 proto_msg_parse(struct proto_msg *, const uint8_t *body, size_t len,
	    char *cause);
void	 proto_msg_free(struct proto_msg *);

/*
 * Typed access to the keys of the top-level map (proto_get_*) or of any
 * map object (proto_map_get_*, e.g. "usage" in a done message).
 * proto_get and proto_map_get return the value, or NULL if the key is
 * absent (or map is not a map).  The typed ones return 0 when the key is
 * there and valid (*out set), 1 when it is absent and not required (*out
 * untouched), -1 with a cause naming the key and what was wrong
 * ("key 'max_tokens' must be an integer from 1 to 65536, not a string").
 * Integers must be MessagePack integers (positive or negative) within
 * [min, max]; floats accept float32, float64 or an integer within
 * [min, max] (NaN never is); booleans only booleans; nil is a wrong type.
 * Strings point into the message (valid until proto_msg_free), are at
 * most max_len bytes, and NUL-terminated; binary data (bin) likewise.
 * proto_get_str_array: an array of at most max_n strings of at most
 * max_len bytes each; s and lens have room for max_n entries; 1 when
 * absent (it is never required).
 */
const msgpack_object *proto_get(const struct proto_msg *, const char *key);
const msgpack_object *proto_map_get(const msgpack_object *map,
	    const char *key);

int	 proto_get_str(const struct proto_msg *, const char *key, int required,
	    size_t max_len, const char **s, size_t *len, char *cause);
int	 proto_get_bin(const struct proto_msg *, const char *key, int required,
	    size_t max_len, const void **b, size_t *len, char *cause);
int	 proto_get_u64(const struct proto_msg *, const char *key, int required,
	    uint64_t min, uint64_t max, uint64_t *out, char *cause);
int	 proto_get_i64(const struct proto_msg *, const char *key, int required,
	    int64_t min, int64_t max, int64_t *out, char *cause);
int	 proto_get_f64(const struct proto_msg *, const char *key, int required,
	    double min, double max, double *out, char *cause);
int	 proto_get_bool(const struct proto_msg *, const char *key, int required,
	    int *out, char *cause);
int	 proto_get_str_array(const struct proto_msg *, const char *key,
	    size_t max_n, size_t max_len, const char **s, size_t *lens,
	    size_t *n, char *cause);

int	 proto_map_get_str(const msgpack_object *map, const char *key,
	    int required, size_t max_len, const char **s, size_t *len,
	    char *cause);
int	 proto_map_get_bin(const msgpack_object *map, const char *key,
	    int required, size_t max_len, const void **b, size_t *len,
	    char *cause);
int	 proto_map_get_u64(const msgpack_object *map, const char *key,
	    int required, uint64_t min, uint64_t max, uint64_t *out,
	    char *cause);
int	 proto_map_get_i64(const msgpack_object *map, const char *key,
	    int required, int64_t min, int64_t max, int64_t *out, char *cause);
int	 proto_map_get_f64(const msgpack_object *map, const char *key,
	    int required, double min, double max, double *out, char *cause);
int	 proto_map_get_bool(const msgpack_object *map, const char *key,
	    int required, int *out, char *cause);
int	 proto_map_get_str_array(const msgpack_object *map, const char *key,
	    size_t max_n, size_t max_len, const char **s, size_t *lens,
	    size_t *n, char *cause);

/*
 * Encoding: an output frame under construction.  The packer writes into
 * sb through the proto_out itself, so a proto_out must not be copied or
 * moved after proto_out_init.  The pack functions never fail on their
 * own: running out of memory is remembered and reported by
 * proto_out_finish.  After a finish, pack nothing more until
 * proto_out_reset.
 */
struct proto_out {
	msgpack_sbuffer	 sb;
	msgpack_packer	 pk;
	int		 oom;
};
void	 proto_out_init(struct proto_out *); /* reserves the 4 length bytes */
void	 proto_out_free(struct proto_out *);
void	 proto_out_reset(struct proto_out *); /* empties, keeps the memory */

void	 proto_pack_map(struct proto_out *, size_t n_pairs);
void	 proto_pack_array(struct proto_out *, size_t n);
void	 proto_pack_key(struct proto_out *, const char *key);
void	 proto_pack_str(struct proto_out *, const char *s, size_t len);
void	 proto_pack_cstr(struct proto_out *, const char *s);
void	 proto_pack_bin(struct proto_out *, const void *, size_t len);
void	 proto_pack_u64(struct proto_out *, uint64_t);
void	 proto_pack_i64(struct proto_out *, int64_t);
void	 proto_pack_f64(struct proto_out *, double);
void	 proto_pack_bool(struct proto_out *, int);
void	 proto_pack_nil(struct proto_out *);
void	 proto_pack_object(struct proto_out *, const msgpack_object *);
/* A key and its value: one pair of the map being packed. */
void	 proto_put_u64(struct proto_out *, const char *key, uint64_t);
void	 proto_put_i64(struct proto_out *, const char *key, int64_t);
void	 proto_put_f64(struct proto_out *, const char *key, double);
void	 proto_put_bool(struct proto_out *, const char *key, int);
void	 proto_put_cstr(struct proto_out *, const char *key, const char *);
void	 proto_put_bin(struct proto_out *, const char *key, const void *,
	    size_t len);

/*
 * Finishes the frame: checks the body (1 to max_frame bytes, and
 * proto_validate: a wrong pair count or invalid UTF-8 is caught here, not
 * by the peer), writes L, and points *data and *len at the whole frame
 * (owned by out, valid until the next reset or free).  0, or -1 with
 * cause.
 */
int	 proto_out_finish(struct proto_out *, size_t max_frame,
	    const char **data, size_t *len, char *cause);

/*
 * Message encoders.  proto_encode_head starts a message: a map of
 * 2 + n_more pairs beginning with id and kind; the caller packs the
 * n_more other pairs.  proto_encode_error replaces whatever out holds
 * with {"id":id,"kind":"error","code":code,"message":message}; the
 * message (at most 1023 bytes) has invalid UTF-8 replaced by '?'.  Both
 * leave proto_out_finish to the caller.
 */
void	 proto_encode_head(struct proto_out *, uint64_t id, enum proto_kind,
	    size_t n_more);
void	 proto_encode_error(struct proto_out *, uint64_t id, enum proto_err,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void	 proto_encode_verror(struct proto_out *, uint64_t id, enum proto_err,
	    const char *fmt, va_list) __attribute__((format(printf, 4, 0)));

#endif
