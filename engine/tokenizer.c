/*
 * tokenizer: owns the vocabulary copied out of a GGUF (texts, scores,
 * token types, special ids): validates it, builds the lookup tables the
 * encoders in tokenizer_spm.c and tokenizer_bpe.c use (piece hash, byte
 * tokens, user-defined pieces), turns ids back into bytes and sends each
 * call to the model's kind: SentencePiece (llama) or byte-level BPE
 * (gpt2).
 */
#include "tokenizer_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOK_MAX_PIECE (64 * 1024) /* bytes in one vocabulary entry */
#define TOK_MAX_INPUT (1024UL * 1024 * 1024) /* bytes per tok_encode call */

static uint32_t
hash_bytes(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static const char *
text_of(const struct tok *t, int32_t id)
{
	return t->arena + t->off[id];
}

static int
mergeable(uint8_t type)
{
	return type == TT_NORMAL || type == TT_UNDEF || type == TT_USER ||
	    type == TT_UNUSED;
}

int32_t
tok_lookup(const struct tok *t, const char *s, size_t len)
{
	uint32_t i;
	int32_t id;

	if (len == 0 || len > t->max_len)
		return -1;
	i = hash_bytes(s, len) & t->mask;
	while ((id = t->slot[i]) >= 0) {
		if (t->len[id] == len && memcmp(text_of(t, id), s, len) == 0)
			return id;
		i = (i + 1) & t->mask;
	}
	return -1;
}

/* The byte a "<0xXX>" text stands for, or -1. */
static int
parse_byte(const char *s, size_t len)
{
	int v = 0, i, c;

	if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
		return -1;
	for (i = 3; i < 5; i++) {
		c = (unsigned char)s[i];
		if (c >= '0' && c <= '9')
			v = v * 16 + c - '0';
		else if (c >= 'A' && c <= 'F')
			v = v * 16 + c - 'A' + 10;
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + c - 'a' + 10;
		else
			return -1;
	}
	return v;
}

/* 0 for SentencePiece, 1 for byte-level BPE, -1 for neither. */
static int
check_model(const struct gguf_file *g, char *cause)
{
	struct gguf_str m;
	int r;

	r = gguf_get_str(g, "tokenizer.ggml.model", &m, cause);
	if (r < 0)
		return -1;
	if (r == 1)
		return err_set(cause, "tokenizer.ggml.model is missing: the "
		    "file has no tokenizer");
	if (gguf_str_eq(m, "llama"))
		return 0;
	if (gguf_str_eq(m, "gpt2"))
		return 1;
	return err_set(cause, "unsupported tokenizer model \"%.*s\" "
	    "(tokenizer.ggml.model); supported: \"llama\" (SentencePiece "
	    "BPE), \"gpt2\" (byte-level BPE)", (int)(m.len > 64 ? 64 :
	    m.len), m.ptr);
}

static int
load_texts(struct tok *t, const struct gguf_kv *kv, char *cause)
{
	const struct gguf_str *s = kv->arr_strs;
	uint64_t total = 0, i;

	for (i = 0; i < kv->arr_n; i++) {
		if (s[i].len > TOK_MAX_PIECE)
			return err_set(cause, "tokenizer.ggml.tokens[%llu] is "
			    "%llu bytes long (limit %d)", (unsigned long long)i,
			    (unsigned long long)s[i].len, TOK_MAX_PIECE);
		total += s[i].len + 1;
	}
	if (total > UINT32_MAX)
		return err_set(cause, "tokenizer.ggml.tokens holds more than "
		    "4 GiB of text");
	t->arena = malloc(total);
	t->off = calloc(kv->arr_n, sizeof *t->off);
	t->len = calloc(kv->arr_n, sizeof *t->len);
	if (t->arena == NULL || t->off == NULL || t->len == NULL)
		return err_set(cause, "out of memory for the vocabulary");
	total = 0;
	for (i = 0; i < kv->arr_n; i++) {
		t->off[i] = (uint32_t)total;
		t->len[i] = (uint32_t)s[i].len;
		memcpy(t->arena + total, s[i].ptr, s[i].len);
		t->arena[total + s[i].len] = '\0';
		total += s[i].len + 1;
	}
	return 0;
}

static int
load_tokens(struct tok *t, const struct gguf_file *g, char *cause)
{
	const struct gguf_kv *kv;
	int r;

	r = gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_STRING, &kv, cause);
	if (r < 0)
		return -1;
	if (r == 1)
		return err_set(cause, "tokenizer.ggml.tokens is missing");
	if (kv->arr_n == 0)
		return err_set(cause, "tokenizer.ggml.tokens is empty");
	if (kv->arr_n > INT32_MAX - 1)
		return err_set(cause, "tokenizer.ggml.tokens has %llu entries "
		    "(limit %d)", (unsigned long long)kv->arr_n, INT32_MAX - 1);
	t->n = (int32_t)kv->arr_n;
	return load_texts(t, kv, cause);
}

/* Little-endian 4-byte element i of a packed array. */
static uint32_t
le32_at(const void *data, uint64_t i)
{
	const unsigned char *p = (const unsigned char *)data + 4 * i;

	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

/* An optional array must have one element per token when present. */
static int
get_vocab_arr(const struct tok *t, const struct gguf_file *g,
    const char *key, uint32_t type, const struct gguf_kv **kv, char *cause)
{
	int r;

	r = gguf_get_arr(g, key, type, kv, cause);
	if (r == 0 && (*kv)->arr_n != (uint64_t)t->n)
		return err_set(cause, "%s has %llu entries but "
		    "tokenizer.ggml.tokens has %d", key,
		    (unsigned long long)(*kv)->arr_n, t->n);
	return r;
}

static int
load_scores(struct tok *t, const struct gguf_file *g, char *cause)
{
	const struct gguf_kv *kv;
	uint32_t u;
	int32_t i;
	int r;

	t->score = calloc(t->n, sizeof *t->score);
	if (t->score == NULL)
		return err_set(cause, "out of memory for the vocabulary");
	r = get_vocab_arr(t, g, "tokenizer.ggml.scores", GGUF_FLOAT32, &kv,
	    cause);
	if (r != 0)
		return r < 0 ? -1 : 0;
	for (i = 0; i < t->n; i++) {
		u = le32_at(kv->arr_data, i);
		memcpy(&t->score[i], &u, sizeof u);
		if (isnan(t->score[i]))
			return err_set(cause, "tokenizer.ggml.scores[%d] is "
			    "not a number", i);
	}
	return 0;
}

static int
load_types(struct tok *t, const struct gguf_file *g, char *cause)
{
	const struct gguf_kv *kv;
	int32_t i, v;
	int r;

	t->type = malloc(t->n);
	if (t->type == NULL)
		return err_set(cause, "out of memory for the vocabulary");
	r = get_vocab_arr(t, g, "tokenizer.ggml.token_type", GGUF_INT32, &kv,
	    cause);
	if (r < 0)
		return -1;
	if (r == 1) {
		/* Without types, every "<0xXX>" text is taken for a byte. */
		for (i = 0; i < t->n; i++)
			t->type[i] = parse_byte(text_of(t, i), t->len[i]) < 0 ?
			    TT_NORMAL : TT_BYTE;
		return 0;
	}
	for (i = 0; i < t->n; i++) {
		v = (int32_t)le32_at(kv->arr_data, i);
		if (v < TT_UNDEF || v > TT_BYTE)
			return err_set(cause, "tokenizer.ggml.token_type[%d] "
			    "is %d (valid types are 0 to 6)", i, v);
		if (v == TT_BYTE &&
		    parse_byte(text_of(t, i), t->len[i]) < 0)
			return err_set(cause, "tokenizer.ggml.token_type[%d] "
			    "says byte but the token is not <0xXX>", i);
		t->type[i] = (uint8_t)v;
	}
	return 0;
}

/* Converters write "none" as -1, signed or as a uint32: both mean absent. */
static int
load_id(const struct tok *t, const struct gguf_file *g, const char *key,
    int32_t *out, char *cause)
{
	const struct gguf_kv *kv;
	uint32_t v;
	int r;

	*out = -1;
	kv = gguf_find_kv(g, key);
	if (kv != NULL && (kv->type == GGUF_INT8 || kv->type == GGUF_INT16 ||
	    kv->type == GGUF_INT32 || kv->type == GGUF_INT64) &&
	    kv->v.i64 == -1)
		return 0;
	r = gguf_get_u32(g, key, &v, cause);
	if (r < 0)
		return -1;
	if (r == 1 || v == UINT32_MAX)
		return 0;
	if (v >= (uint32_t)t->n)
		return err_set(cause, "%s is %u but the vocabulary has %d "
		    "tokens", key, v, t->n);
	*out = (int32_t)v;
	return 0;
}

static int
load_flag(const struct gguf_file *g, const char *key, int def, int *out,
    char *cause)
{
	int r;

	*out = def;
	r = gguf_get_bool(g, key, out, cause);
	return r < 0 ? -1 : 0;
}

/* BPE models default to no BOS (llama-bpe to one) and no space prefix,
 * which they never add. */
static int
load_special(struct tok *t, const struct gguf_file *g, char *cause)
{
	int bos_def = t->bpe ? tok_pre_add_bos(t->pre) : 1;

	if (load_id(t, g, "tokenizer.ggml.bos_token_id", &t->bos, cause) ||
	    load_id(t, g, "tokenizer.ggml.eos_token_id", &t->eos, cause) ||
	    load_id(t, g, "tokenizer.ggml.unknown_token_id", &t->unk, cause) ||
	    load_id(t, g, "tokenizer.ggml.padding_token_id", &t->pad, cause))
		return -1;
	if (load_flag(g, "tokenizer.ggml.add_bos_token", bos_def, &t->add_bos,
	    cause) ||
	    load_flag(g, "tokenizer.ggml.add_eos_token", 0, &t->add_eos,
	    cause) ||
	    load_flag(g, "tokenizer.ggml.add_space_prefix", 1, &t->add_space,
	    cause))
		return -1;
	t->add_bos = t->add_bos != 0;
	t->add_eos = t->add_eos != 0;
	t->add_space = t->add_space != 0 && !t->bpe;
	return 0;
}

/* Later duplicates of a text replace earlier ones, as in llama.cpp. */
static void
hash_insert(struct tok *t, int32_t id)
{
	uint32_t i = hash_bytes(text_of(t, id), t->len[id]) & t->mask;
	int32_t o;

	while ((o = t->slot[i]) >= 0) {
		if (t->len[o] == t->len[id] &&
		    memcmp(text_of(t, o), text_of(t, id), t->len[id]) == 0)
			break;
		i = (i + 1) & t->mask;
	}
	t->slot[i] = id;
}

static int
build_hash(struct tok *t, char *cause)
{
	size_t size = 16;
	int32_t i;

	while (size < 2 * (size_t)t->n)
		size *= 2;
	t->slot = malloc(size * sizeof *t->slot);
	if (t->slot == NULL)
		return err_set(cause, "out of memory for the vocabulary");
	memset(t->slot, 0xff, size * sizeof *t->slot);
	t->mask = (uint32_t)(size - 1);
	for (i = 0; i < t->n; i++) {
		if (!mergeable(t->type[i]) || t->len[i] == 0)
			continue;
		hash_insert(t, i);
		if (t->len[i] > t->max_len)
			t->max_len = t->len[i];
	}
	return 0;
}

static void
build_bytes(struct tok *t)
{
	int32_t i;
	int b;

	for (b = 0; b < 256; b++)
		t->byte_id[b] = -1;
	for (i = 0; i < t->n; i++) {
		if (t->type[i] != TT_BYTE)
			continue;
		b = parse_byte(text_of(t, i), t->len[i]);
		if (b >= 0 && t->byte_id[b] < 0)
			t->byte_id[b] = i;
	}
}

static int
ud_cmp(const void *a, const void *b)
{
	const struct tok_ud *x = a, *y = b;

	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int
build_user(struct tok *t, char *cause)
{
	size_t n = 0, k;
	int32_t i;

	for (i = 0; i < t->n; i++)
		n += t->type[i] == TT_USER && t->len[i] > 0;
	t->ud = calloc(n + 1, sizeof *t->ud);
	if (t->ud == NULL)
		return err_set(cause, "out of memory for the vocabulary");
	for (n = 0, i = 0; i < t->n; i++) {
		if (t->type[i] != TT_USER || t->len[i] == 0)
			continue;
		t->ud[n].id = i;
		t->ud[n].len = t->len[i];
		t->ud[n++].first = (unsigned char)text_of(t, i)[0];
	}
	qsort(t->ud, n, sizeof *t->ud, ud_cmp);
	for (k = 0, i = 0; i <= 256; i++) {
		while (k < n && t->ud[k].first < i)
			k++;
		t->ud_start[i] = (uint32_t)k;
	}
	return 0;
}

struct tok *
tok_open(const struct gguf_file *g, char *cause)
{
	struct tok *t;
	int kind;

	if ((kind = check_model(g, cause)) < 0)
		return NULL;
	if ((t = calloc(1, sizeof *t)) == NULL) {
		err_set(cause, "out of memory for the tokenizer");
		return NULL;
	}
	t->bpe = kind;
	if ((t->bpe && tok_bpe_pre(t, g, cause) != 0) ||
	    load_tokens(t, g, cause) != 0 || load_scores(t, g, cause) != 0 ||
	    load_types(t, g, cause) != 0 || load_special(t, g, cause) != 0 ||
	    build_hash(t, cause) != 0 || build_user(t, cause) != 0 ||
	    (t->bpe && tok_bpe_load(t, g, cause) != 0)) {
		tok_free(t);
		return NULL;
	}
	if (!t->bpe)
		build_bytes(t);
	return t;
}

void
tok_free(struct tok *t)
{
	if (t == NULL)
		return;
	free(t->arena);
	free(t->off);
	free(t->len);
	free(t->score);
	free(t->type);
	free(t->slot);
	free(t->ud);
	tok_bpe_free(t);
	free(t);
}

int32_t
tok_n_vocab(const struct tok *t)
{
	return t->n;
}

int32_t
tok_bos(const struct tok *t)
{
	return t->bos;
}

int32_t
tok_eos(const struct tok *t)
{
	return t->eos;
}

int32_t
tok_unk(const struct tok *t)
{
	return t->unk;
}

int32_t
tok_pad(const struct tok *t)
{
	return t->pad;
}

int
tok_add_bos(const struct tok *t)
{
	return t->add_bos && t->bos >= 0;
}

int
tok_add_eos(const struct tok *t)
{
	return t->add_eos && t->eos >= 0;
}

int
tok_add_space_prefix(const struct tok *t)
{
	return t->add_space;
}

int
tok_is_control(const struct tok *t, int32_t id)
{
	return id >= 0 && id < t->n && t->type[id] == TT_CONTROL;
}

const char *
tok_text(const struct tok *t, int32_t id)
{
	if (id < 0 || id >= t->n)
		return NULL;
	return text_of(t, id);
}

int32_t
tok_special(const struct tok *t, const char *s, size_t n)
{
	int32_t i;

	for (i = 0; i < t->n; i++)
		if ((t->type[i] == TT_CONTROL || t->type[i] == TT_USER) &&
		    t->len[i] == n && memcmp(text_of(t, i), s, n) == 0)
			return i;
	return -1;
}

int32_t
tok_match_user(const struct tok *t, const char *s, size_t n,
    uint32_t *len)
{
	unsigned char c = (unsigned char)s[0];
	uint32_t k;

	for (k = t->ud_start[c]; k < t->ud_start[c + 1]; k++) {
		if (t->ud[k].len <= n &&
		    memcmp(text_of(t, t->ud[k].id), s, t->ud[k].len) == 0) {
			*len = t->ud[k].len;
			return t->ud[k].id;
		}
	}
	return -1;
}

/* Copies text with U+2581 as spaces, dropping one leading one if strip. */
static size_t
unescape(const char *s, size_t len, int strip, char *buf, size_t cap)
{
	size_t i = 0, k = 0;

	if (strip && len >= TOK_WS_LEN && memcmp(s, TOK_WS, TOK_WS_LEN) == 0)
		i = TOK_WS_LEN;
	while (i < len) {
		if (len - i >= TOK_WS_LEN &&
		    memcmp(s + i, TOK_WS, TOK_WS_LEN) == 0) {
			if (k < cap)
				buf[k] = ' ';
			i += TOK_WS_LEN;
		} else {
			if (k < cap)
				buf[k] = s[i];
			i++;
		}
		k++;
	}
	return k;
}

int
tok_piece(const struct tok *t, int32_t prev, int32_t id, char *buf,
    size_t cap)
{
	const char *s;
	size_t len;
	int strip;

	if (id < 0 || id >= t->n)
		return -1;
	if (t->bpe)
		return tok_bpe_piece(t, id, buf, cap);
	s = text_of(t, id);
	len = t->len[id];
	switch (t->type[id]) {
	case TT_CONTROL:
		return 0;
	case TT_BYTE:
		if (cap > 0)
			buf[0] = (char)parse_byte(s, len);
		return 1;
	case TT_UNKNOWN:
		if (cap > 0)
			memcpy(buf, s, len < cap ? len : cap);
		return (int)len;
	default:
		strip = t->add_space && (prev < 0 || prev == t->bos);
		return (int)unescape(s, len, strip, buf, cap);
	}
}

int
tok_encode(const struct tok *t, const char *text, size_t len, int add_bos,
    int32_t **out, size_t *n_out, char *cause)
{
	*out = NULL;
	*n_out = 0;
	if (add_bos && t->bos < 0)
		return err_set(cause, "BOS requested but the model has no "
		    "tokenizer.ggml.bos_token_id");
	if (len > TOK_MAX_INPUT)
		return err_set(cause, "input of %zu bytes is over the %lu "
		    "byte limit", len, TOK_MAX_INPUT);
	if (t->bpe)
		return tok_bpe_encode(t, text, len, add_bos, out, n_out, cause);
	return tok_spm_encode(t, text, len, add_bos, out, n_out, cause);
}

char *
tok_decode(const struct tok *t, const int32_t *ids, size_t n, char *cause)
{
	char *buf, *nb;
	size_t cap = 64, k = 0, i;
	int r;

	if ((buf = malloc(cap)) == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		r = tok_piece(t, i == 0 ? -1 : ids[i - 1], ids[i], buf + k,
		    cap - k - 1);
		if (r < 0) {
			err_set(cause, "token id %d at position %zu is out of "
			    "range (vocabulary of %d)", ids[i], i, t->n);
			free(buf);
			return NULL;
		}
		if ((size_t)r >= cap - k) {
			while ((size_t)r >= cap - k)
				cap *= 2;
			if ((nb = realloc(buf, cap)) == NULL)
				goto nomem;
			buf = nb;
			tok_piece(t, i == 0 ? -1 : ids[i - 1], ids[i], buf + k,
			    cap - k - 1);
		}
		k += (size_t)r;
	}
	buf[k] = '\0';
	return buf;
nomem:
	free(buf);
	err_set(cause, "out of memory decoding %zu tokens", n);
	return NULL;
}
