/*
 * tokenizer_bpe: byte-level BPE (`tokenizer.ggml.model = gpt2`: GPT-2,
 * Llama 3, Qwen2, DeepSeek, Falcon, MPT...).
 *
 * Vocabulary texts spell bytes, not characters: GPT-2's bytes_to_unicode
 * maps each printable byte (! to ~, U+00A1 to U+00AC, U+00AE to U+00FF)
 * to the character of the same number and the 68 others, in order, to
 * U+0100 onwards, so a space is U+0120 "Ġ".  Encoding: user-defined
 * tokens are cut out of the text first (control tokens never are: text
 * is text), the pre-tokenizer (tokenizer_pre.c) splits each piece into
 * words, and each word starts as one symbol per byte and merges the
 * adjacent pair of lowest rank (tokenizer.ggml.merges, "left right"
 * texts, rank = index), leftmost first, until no pair has a rank.  Every
 * merge joins two tokens into a token, so symbols are token ids and the
 * merge table is a hash from id pairs to rank.  Any byte sequence
 * encodes, and decodes back to itself when each byte has a token of its
 * own (see tokenizer.h for the vocabularies where some do not).
 */
#include "tokenizer_int.h"

#include <stdlib.h>
#include <string.h>

#include "unicode.h"


/* One symbol of the word being merged; len 0 once merged away. */
struct bsym {
	int32_t id, prev, next;
	uint32_t len;
};

/* A candidate merge of sym[left] with sym[right] (of rlen bytes then). */
struct bpair {
	int32_t rank, left, right, id;
	uint32_t rlen;
};

struct benc {
	const struct tok *t;
	int32_t *out;
	size_t nout;
	uint32_t *cp, *off, *a, *b; /* the piece: characters, byte offsets */
	uint8_t *cls;
	struct bsym *sym; /* the word */
	struct bpair *heap;
	char *map;
	size_t nheap, capw;
};

static int
printable(int b)
{
	return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) ||
	    b >= 0xae;
}

static void
build_map(struct tok *t)
{
	int b, k = 0;

	for (b = 0; b < 256; b++) {
		if (printable(b)) {
			t->bytecp[b] = (uint16_t)b;
			continue;
		}
		t->unmapped[k] = (unsigned char)b;
		t->bytecp[b] = (uint16_t)(0x100 + k++);
	}
}

/* A byte no token stands for cannot be encoded; llama.cpp drops it. */
static void
build_byte_ids(struct tok *t)
{
	char s[4];
	size_t n;
	int b;

	for (b = 0; b < 256; b++) {
		n = uc_encode(t->bytecp[b], s);
		t->byte_id[b] = tok_lookup(t, s, n);
	}
}

static uint32_t
pair_hash(int32_t l, int32_t r)
{
	uint64_t h = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) *
	    0x9e3779b97f4a7c15ULL;

	return (uint32_t)(h >> 32);
}

/* The rank of merging ids l and r, its result in *id; -1 for none. */
static int32_t
merge_rank(const struct tok *t, int32_t l, int32_t r, int32_t *id)
{
	uint32_t i = pair_hash(l, r) & t->mmask;
	int32_t k;

	while ((k = t->mslot[i]) >= 0) {
		if (t->mrg[3 * k] == l && t->mrg[3 * k + 1] == r) {
			*id = t->mrg[3 * k + 2];
			return k;
		}
		i = (i + 1) & t->mmask;
	}
	return -1;
}

/* Ids of the halves of merge text s and of their join, or -1. */
static int
parse_merge(const struct tok *t, const struct gguf_str *m, char *buf,
    int32_t ids[3])
{
	const char *sp;
	size_t ll;

	if (m->len < 3 || (sp = memchr(m->ptr + 1, ' ', m->len - 2)) == NULL)
		return -1;
	ll = (size_t)(sp - m->ptr);
	if (m->len - 1 > t->max_len)
		return 0; /* the join is no token */
	memcpy(buf, m->ptr, ll);
	memcpy(buf + ll, sp + 1, m->len - ll - 1);
	ids[0] = tok_lookup(t, m->ptr, ll);
	ids[1] = tok_lookup(t, sp + 1, m->len - ll - 1);
	ids[2] = tok_lookup(t, buf, m->len - 1);
	return 0;
}

/* A merge whose halves or join is no token could never apply: skipped. */
static int
load_merges(struct tok *t, const struct gguf_file *g, char *cause)
{
	const struct gguf_kv *kv;
	size_t size = 16;
	uint64_t k;
	int32_t ids[3], old;
	uint32_t i;
	char *buf;
	int r;

	r = gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_STRING, &kv, cause);
	if (r < 0)
		return -1;
	if (r == 1)
		return err_set(cause, "tokenizer.ggml.merges is missing (a "
		    "gpt2 tokenizer needs it)");
	if (kv->arr_n > INT32_MAX / 3)
		return err_set(cause, "tokenizer.ggml.merges has %llu entries",
		    (unsigned long long)kv->arr_n);
	while (size < 2 * kv->arr_n)
		size *= 2;
	t->mrg = malloc(3 * kv->arr_n * sizeof *t->mrg + 1);
	t->mslot = malloc(size * sizeof *t->mslot);
	buf = malloc(t->max_len + 1);
	if (t->mrg == NULL || t->mslot == NULL || buf == NULL) {
		free(buf);
		return err_set(cause, "out of memory for the merges");
	}
	memset(t->mslot, 0xff, size * sizeof *t->mslot);
	t->mmask = (uint32_t)(size - 1);
	for (k = 0; k < kv->arr_n; k++) {
		ids[0] = ids[1] = ids[2] = -1;
		if (parse_merge(t, &kv->arr_strs[k], buf, ids) != 0) {
			free(buf);
			return err_set(cause, "tokenizer.ggml.merges[%llu] is "
			    "not two texts separated by a space",
			    (unsigned long long)k);
		}
		memcpy(&t->mrg[3 * k], ids, sizeof ids);
		if (ids[0] < 0 || ids[1] < 0 || ids[2] < 0)
			continue;
		/* The first rank of a repeated pair is the one that counts. */
		if (merge_rank(t, ids[0], ids[1], &old) >= 0)
			continue;
		i = pair_hash(ids[0], ids[1]) & t->mmask;
		while (t->mslot[i] >= 0)
			i = (i + 1) & t->mmask;
		t->mslot[i] = (int32_t)k;
	}
	free(buf);
	return 0;
}

static int
before(const struct bpair *a, const struct bpair *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void
heap_push(struct benc *e, const struct bpair *p)
{
	size_t i = e->nheap++, up;

	while (i > 0) {
		up = (i - 1) / 2;
		if (!before(p, &e->heap[up]))
			break;
		e->heap[i] = e->heap[up];
		i = up;
	}
	e->heap[i] = *p;
}

static void
heap_pop(struct benc *e, struct bpair *out)
{
	struct bpair last;
	size_t i = 0, c;

	*out = e->heap[0];
	last = e->heap[--e->nheap];
	while ((c = 2 * i + 1) < e->nheap) {
		if (c + 1 < e->nheap && before(&e->heap[c + 1], &e->heap[c]))
			c++;
		if (!before(&e->heap[c], &last))
			break;
		e->heap[i] = e->heap[c];
		i = c;
	}
	e->heap[i] = last;
}

static void
try_pair(struct benc *e, int32_t left)
{
	struct bpair p;
	int32_t right;

	if (left < 0 || (right = e->sym[left].next) < 0 ||
	    e->sym[left].id < 0 || e->sym[right].id < 0)
		return;
	p.rank = merge_rank(e->t, e->sym[left].id, e->sym[right].id, &p.id);
	if (p.rank < 0)
		return;
	p.left = left;
	p.right = right;
	p.rlen = e->sym[right].len;
	heap_push(e, &p);
}

/*
 * A pair is stale when either side was merged since it was pushed: the
 * left one merged away, or into it its right one, or the right one grew.
 */
static void
merge_word(struct benc *e)
{
	struct bsym *l, *r;
	struct bpair p;

	while (e->nheap > 0) {
		heap_pop(e, &p);
		l = &e->sym[p.left];
		r = &e->sym[p.right];
		if (l->len == 0 || r->len != p.rlen || l->next != p.right)
			continue;
		l->id = p.id;
		l->len += r->len;
		r->len = 0;
		l->next = r->next;
		if (r->next >= 0)
			e->sym[r->next].prev = p.left;
		try_pair(e, l->prev);
		try_pair(e, p.left);
	}
}

static int
grow_word(struct benc *e, size_t n)
{
	size_t cap = e->capw ? e->capw : 64;

	while (cap < n)
		cap *= 2;
	free(e->sym);
	free(e->heap);
	free(e->map);
	e->sym = malloc(cap * sizeof *e->sym);
	e->heap = malloc(3 * cap * sizeof *e->heap); /* n + 2 per merge */
	e->map = malloc(2 * cap);
	e->capw = e->sym && e->heap && e->map ? cap : 0;
	return e->capw ? 0 : -1;
}

/* The word as vocabulary text: each byte as its mapped character. */
static size_t
map_word(const struct benc *e, const unsigned char *s, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		k += uc_encode(e->t->bytecp[s[i]], e->map + k);
	return k;
}

static void
emit_sym(struct benc *e, int32_t id)
{
	const struct tok *t = e->t;

	if (id >= 0)
		e->out[e->nout++] = id;
	else if (t->unk >= 0 && t->type[t->unk] != TT_CONTROL)
		e->out[e->nout++] = t->unk;
}

static int
encode_word(struct benc *e, const unsigned char *s, size_t n)
{
	const struct tok *t = e->t;
	int32_t i, id;

	if (n > e->capw && grow_word(e, n) != 0)
		return -1;
	if (n > 1 && tok_pre_ignore_merges(t->pre) &&
	    (id = tok_lookup(t, e->map, map_word(e, s, n))) >= 0 &&
	    t->type[id] != TT_UNUSED) {
		e->out[e->nout++] = id;
		return 0;
	}
	for (i = 0; i < (int32_t)n; i++)
		e->sym[i] = (struct bsym){ t->byte_id[s[i]], i - 1,
		    i + 1 < (int32_t)n ? i + 1 : -1, 1 };
	e->nheap = 0;
	for (i = 0; i + 1 < (int32_t)n; i++)
		try_pair(e, i);
	merge_word(e);
	for (i = 0; i >= 0; i = e->sym[i].next)
		emit_sym(e, e->sym[i].id);
	return 0;
}

/* Pre-tokenizes and encodes len bytes of text holding no user token. */
static int
encode_piece(struct benc *e, const unsigned char *s, size_t len)
{
	uint32_t *ends;
	size_t n = 0, i, k, nw, start = 0;

	for (i = 0; i < len; i += k) {
		k = uc_decode(s + i, len - i, &e->cp[n]);
		e->cls[n] = (uint8_t)uc_class(e->cp[n]);
		e->off[n++] = (uint32_t)i;
	}
	e->off[n] = (uint32_t)len;
	nw = tok_pre_split(e->t->pre, e->cp, e->cls, n, e->a, e->b, &ends);
	for (i = 0; i < nw; i++) {
		if (encode_word(e, s + e->off[start], e->off[ends[i]] -
		    e->off[start]) != 0)
			return -1;
		start = ends[i];
	}
	return 0;
}

/* User-defined tokens are matched whole before anything else. */
static int
encode_text(struct benc *e, const char *text, size_t len)
{
	size_t pos = 0, start = 0;
	uint32_t ulen;
	int32_t id;

	while (pos < len) {
		if ((id = tok_match_user(e->t, text + pos, len - pos,
		    &ulen)) < 0) {
			pos++;
			continue;
		}
		if (encode_piece(e, (const unsigned char *)text + start,
		    pos - start) != 0)
			return -1;
		e->out[e->nout++] = id;
		pos += ulen;
		start = pos;
	}
	return encode_piece(e, (const unsigned char *)text + start,
	    len - start);
}

int
tok_bpe_encode(const struct tok *t, const char *text, size_t len,
    int add_bos, int32_t **out, size_t *n_out, char *cause)
{
	struct benc e;
	int32_t *shrunk;
	int r = 0;

	memset(&e, 0, sizeof e);
	e.t = t;
	/* Every id covers at least one byte of text, plus BOS. */
	e.out = malloc((len + 1) * sizeof *e.out);
	e.cp = malloc((len + 1) * sizeof *e.cp);
	e.off = malloc((len + 1) * sizeof *e.off);
	e.a = malloc((len + 1) * sizeof *e.a);
	e.b = malloc((len + 1) * sizeof *e.b);
	e.cls = malloc(len + 1);
	if (e.out == NULL || e.cp == NULL || e.off == NULL || e.a == NULL ||
	    e.b == NULL || e.cls == NULL)
		r = -1;
	if (r == 0 && add_bos)
		e.out[e.nout++] = t->bos;
	if (r == 0)
		r = encode_text(&e, text, len);
	free(e.cp);
	free(e.off);
	free(e.a);
	free(e.b);
	free(e.cls);
	free(e.sym);
	free(e.heap);
	free(e.map);
	if (r != 0) {
		free(e.out);
		return err_set(cause, "out of memory encoding %zu bytes", len);
	}
	if ((shrunk = realloc(e.out, (e.nout + 1) * sizeof *e.out)) != NULL)
		e.out = shrunk;
	*out = e.out;
	*n_out = e.nout;
	return 0;
}

/* Vocabulary text back to bytes; a character no byte maps to is kept. */
static size_t
unmap(const struct tok *t, const char *s, size_t len, char *buf,
    size_t cap)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k = 0, n, j;
	uint32_t cp;

	while (i < len) {
		n = uc_decode(u + i, len - i, &cp);
		if (cp < 0x100 && printable((int)cp)) {
			if (k < cap)
				buf[k] = (char)cp;
			k++;
		} else if (cp >= 0x100 && cp < 0x100 + sizeof t->unmapped) {
			if (k < cap)
				buf[k] = (char)t->unmapped[cp - 0x100];
			k++;
		} else {
			for (j = 0; j < n; j++, k++)
				if (k < cap)
					buf[k] = s[i + j];
		}
		i += n;
	}
	return k;
}

int
tok_bpe_piece(const struct tok *t, int32_t id, char *buf, size_t cap)
{
	const char *s = t->arena + t->off[id];
	size_t len = t->len[id];

	switch (t->type[id]) {
	case TT_CONTROL:
	case TT_UNUSED:
		return 0;
	case TT_USER:
	case TT_UNKNOWN:
		if (cap > 0)
			memcpy(buf, s, len < cap ? len : cap);
		return (int)len;
	default:
		return (int)unmap(t, s, len, buf, cap);
	}
}

int
tok_bpe_pre(struct tok *t, const struct gguf_file *g, char *cause)
{
	char names[256];
	struct gguf_str s;
	int r;

	r = gguf_get_str(g, "tokenizer.ggml.pre", &s, cause);
	if (r < 0)
		return -1;
	/* Files from before the key existed were GPT-2's rules. */
	if (r == 1) {
		t->pre = tok_pre_find("gpt-2", 5);
		return 0;
	}
	if ((t->pre = tok_pre_find(s.ptr, s.len)) != NULL)
		return 0;
	tok_pre_names(names, sizeof names);
	return err_set(cause, "unsupported pre-tokenizer \"%.*s\" "
	    "(tokenizer.ggml.pre); supported: %s",
	    (int)(s.len > 64 ? 64 : s.len), s.ptr, names);
}

int
tok_bpe_load(struct tok *t, const struct gguf_file *g, char *cause)
{
	build_map(t);
	build_byte_ids(t);
	return load_merges(t, g, cause);
}

void
tok_bpe_free(struct tok *t)
{
	free(t->mrg);
	free(t->mslot);
}
