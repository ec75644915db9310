/*
 * tokenizer_spm: the SentencePiece BPE encoder (tok_spm_encode).
 *
 * Spaces become U+2581, a U+2581 prefix is added when add_space_prefix
 * says so, the text is cut into UTF-8 characters (user-defined pieces are
 * matched whole and never merged; a byte that is not valid UTF-8 is a
 * character of its own), and the adjacent pair whose concatenation is the
 * highest-scoring piece is merged until no pair is a piece, ties going to
 * the leftmost pair.  Pieces marked unused are split back into what they
 * were merged from; characters that are no piece fall back to <0xXX> byte
 * tokens, or <unk> without them.  A heap of candidate pairs over a linked
 * list of symbols keeps this O(n log n) in the input length.
 */
#include "tokenizer_int.h"

#include <stdlib.h>
#include <string.h>

#include "unicode.h"

#define FROZEN (-2) /* sym.node of a user-defined piece */

/* One live or merged-away symbol of the text being encoded. */
struct sym {
	uint32_t start, len; /* len 0: merged into its left neighbour */
	int32_t prev, next;
	int32_t id;	     /* piece id once merged or frozen, else -1 */
	int32_t node;	     /* merge record, -1 for a character, FROZEN */
};

/* What a merged symbol was made of, to undo merges into unused pieces. */
struct merge {
	int32_t lnode, rnode;
	uint32_t llen;
};

/* A candidate merge of sym[left] with its right neighbour. */
struct bigram {
	float score;
	int32_t left;
	uint32_t len;
	int32_t id;
};

/* A merged symbol still to be emitted or split. */
struct pend {
	uint32_t start, len;
	int32_t node;
};

struct enc {
	const struct tok *t;
	const char *s;
	struct sym *sym;
	int32_t nsym;
	struct merge *mg;
	int32_t nmg;
	struct bigram *heap;
	size_t nheap, capheap;
	struct pend *stk;
	size_t nstk, capstk;
	int32_t *out;
	size_t nout;
};

static int
better(const struct bigram *a, const struct bigram *b)
{
	if (a->score != b->score)
		return a->score > b->score;
	return a->left < b->left;
}

static int
heap_push(struct enc *e, const struct bigram *b)
{
	struct bigram *nh, tmp;
	size_t i, p;

	if (e->nheap == e->capheap) {
		nh = reallocarray(e->heap, e->capheap * 2, sizeof *nh);
		if (nh == NULL)
			return -1;
		e->heap = nh;
		e->capheap *= 2;
	}
	i = e->nheap++;
	e->heap[i] = *b;
	while (i > 0 && better(&e->heap[i], &e->heap[p = (i - 1) / 2])) {
		tmp = e->heap[p];
		e->heap[p] = e->heap[i];
		e->heap[i] = tmp;
		i = p;
	}
	return 0;
}

static void
heap_pop(struct enc *e, struct bigram *out)
{
	struct bigram tmp;
	size_t i = 0, c;

	*out = e->heap[0];
	e->heap[0] = e->heap[--e->nheap];
	for (;;) {
		c = 2 * i + 1;
		if (c >= e->nheap)
			break;
		if (c + 1 < e->nheap && better(&e->heap[c + 1], &e->heap[c]))
			c++;
		if (!better(&e->heap[c], &e->heap[i]))
			break;
		tmp = e->heap[c];
		e->heap[c] = e->heap[i];
		e->heap[i] = tmp;
		i = c;
	}
}

/* Queues the merge of sym[left] with the symbol after it, if a piece. */
static int
try_pair(struct enc *e, int32_t left)
{
	struct sym *l, *r;
	struct bigram b;

	if (left < 0 || e->sym[left].next < 0)
		return 0;
	l = &e->sym[left];
	r = &e->sym[l->next];
	if (l->node == FROZEN || r->node == FROZEN)
		return 0;
	b.len = l->len + r->len;
	if ((b.id = tok_lookup(e->t, e->s + l->start, b.len)) < 0)
		return 0;
	b.score = e->t->score[b.id];
	b.left = left;
	return heap_push(e, &b);
}

static void
split_symbols(struct enc *e, size_t n)
{
	const struct tok *t = e->t;
	struct sym *s;
	uint32_t len, cp;
	size_t p;
	int32_t id;

	for (p = 0; p < n; p += len) {
		s = &e->sym[e->nsym];
		s->id = -1;
		s->node = -1;
		if ((id = tok_match_user(t, e->s + p, n - p, &len)) >= 0) {
			s->id = id;
			s->node = FROZEN;
		} else
			len = (uint32_t)uc_decode((const unsigned char *)e->s +
			    p, n - p, &cp);
		s->start = (uint32_t)p;
		s->len = len;
		s->prev = e->nsym - 1;
		s->next = p + len < n ? e->nsym + 1 : -1;
		e->nsym++;
	}
}

static int
merge_all(struct enc *e)
{
	struct sym *l, *r;
	struct bigram b;
	int32_t i;

	for (i = 0; i + 1 < e->nsym; i++)
		if (try_pair(e, i) != 0)
			return -1;
	while (e->nheap > 0) {
		heap_pop(e, &b);
		l = &e->sym[b.left];
		if (l->len == 0 || l->next < 0)
			continue;
		r = &e->sym[l->next];
		if (l->len + r->len != b.len)
			continue; /* stale: one side has grown since */
		e->mg[e->nmg].lnode = l->node;
		e->mg[e->nmg].rnode = r->node;
		e->mg[e->nmg].llen = l->len;
		l->node = e->nmg++;
		l->id = b.id;
		l->len = b.len;
		r->len = 0;
		l->next = r->next;
		if (r->next >= 0)
			e->sym[r->next].prev = b.left;
		if (try_pair(e, l->prev) != 0 || try_pair(e, b.left) != 0)
			return -1;
	}
	return 0;
}

/* A character that is no piece: its bytes, or one unknown token. */
static int
emit_bytes(struct enc *e, uint32_t start, uint32_t len, char *cause)
{
	const struct tok *t = e->t;
	unsigned char c;
	uint32_t i;

	for (i = 0; i < len; i++)
		if (t->byte_id[(unsigned char)e->s[start + i]] < 0)
			break;
	if (i == len) {
		for (i = 0; i < len; i++)
			e->out[e->nout++] =
			    t->byte_id[(unsigned char)e->s[start + i]];
		return 0;
	}
	if (t->unk >= 0) {
		e->out[e->nout++] = t->unk;
		return 0;
	}
	c = (unsigned char)e->s[start + i];
	return err_set(cause, "byte 0x%02x is in no token and the vocabulary "
	    "has neither byte tokens nor an unknown token", c);
}

static int
stk_push(struct enc *e, uint32_t start, uint32_t len, int32_t node)
{
	struct pend *ns;
	size_t cap;

	if (e->nstk == e->capstk) {
		cap = e->capstk == 0 ? 64 : 2 * e->capstk;
		if ((ns = reallocarray(e->stk, cap, sizeof *ns)) == NULL)
			return -1;
		e->stk = ns;
		e->capstk = cap;
	}
	e->stk[e->nstk].start = start;
	e->stk[e->nstk].len = len;
	e->stk[e->nstk++].node = node;
	return 0;
}

/*
 * Emits a final symbol, splitting unused pieces back into their halves,
 * leftmost first.  An explicit stack: a hostile vocabulary could chain
 * merges as deep as its longest piece.
 */
static int
emit(struct enc *e, const struct sym *s, char *cause)
{
	const struct merge *m;
	struct pend p;
	int32_t id;

	if (s->id >= 0 && e->t->type[s->id] != TT_UNUSED) {
		e->out[e->nout++] = s->id;
		return 0;
	}
	e->nstk = 0;
	if (stk_push(e, s->start, s->len, s->node) != 0)
		return err_set(cause, "out of memory encoding");
	while (e->nstk > 0) {
		p = e->stk[--e->nstk];
		id = tok_lookup(e->t, e->s + p.start, p.len);
		if (id >= 0 && e->t->type[id] != TT_UNUSED)
			e->out[e->nout++] = id;
		else if (p.node < 0) {
			if (emit_bytes(e, p.start, p.len, cause) != 0)
				return -1;
		} else {
			m = &e->mg[p.node];
			if (stk_push(e, p.start + m->llen, p.len - m->llen,
			    m->rnode) != 0 ||
			    stk_push(e, p.start, m->llen, m->lnode) != 0)
				return err_set(cause, "out of memory encoding");
		}
	}
	return 0;
}

/* Spaces to U+2581, with the prefix the model wants. */
static char *
escape(const struct tok *t, const char *text, size_t len, size_t *n)
{
	char *s;
	size_t i, k = 0;

	if ((s = malloc(TOK_WS_LEN * (len + 1))) == NULL)
		return NULL;
	if (t->add_space) {
		memcpy(s, TOK_WS, TOK_WS_LEN);
		k = TOK_WS_LEN;
	}
	for (i = 0; i < len; i++) {
		if (text[i] == ' ') {
			memcpy(s + k, TOK_WS, TOK_WS_LEN);
			k += TOK_WS_LEN;
		} else
			s[k++] = text[i];
	}
	*n = k;
	return s;
}

/* n bytes of escaped text hold at most maxsym characters. */
static int
encode_text(struct enc *e, size_t n, size_t maxsym, char *cause)
{
	int32_t i;

	e->sym = calloc(maxsym, sizeof *e->sym);
	e->mg = calloc(maxsym, sizeof *e->mg);
	e->capheap = maxsym + 16;
	e->heap = calloc(e->capheap, sizeof *e->heap);
	if (e->sym == NULL || e->mg == NULL || e->heap == NULL)
		return err_set(cause, "out of memory encoding %zu bytes", n);
	split_symbols(e, n);
	if (merge_all(e) != 0)
		return err_set(cause, "out of memory encoding %zu bytes", n);
	for (i = 0; i >= 0; i = e->sym[i].next)
		if (emit(e, &e->sym[i], cause) != 0)
			return -1;
	return 0;
}

int
tok_spm_encode(const struct tok *t, const char *text, size_t len,
    int add_bos, int32_t **out, size_t *n_out, char *cause)
{
	struct enc e;
	int32_t *shrunk;
	char *esc = NULL;
	size_t n = 0;
	int r = 0;

	memset(&e, 0, sizeof e);
	e.t = t;
	if (len != 0)
		e.s = esc = escape(t, text, len, &n);
	/* Every output id covers at least one byte of e.s, plus BOS. */
	e.out = malloc((n + 1) * sizeof *e.out);
	if ((len != 0 && esc == NULL) || e.out == NULL)
		r = err_set(cause, "out of memory encoding %zu bytes", len);
	if (r == 0 && add_bos)
		e.out[e.nout++] = t->bos;
	if (r == 0 && len != 0)
		r = encode_text(&e, n, len + 1, cause);
	free(esc);
	free(e.sym);
	free(e.mg);
	free(e.heap);
	free(e.stk);
	if (r != 0) {
		free(e.out);
		return -1;
	}
	if ((shrunk = realloc(e.out, (e.nout + 1) * sizeof *e.out)) != NULL)
		e.out = shrunk;
	*out = e.out;
	*n_out = e.nout;
	return 0;
}
