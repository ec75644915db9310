/*
 * chat_tok: chat.c's side that meets the tokenizer: a rendering's
 * tokens (its markers as special tokens, the text between them encoded
 * with specials off), the end-of-turn ids, a formatter from a
 * vocabulary's BOS and EOS.
 */
#include "chat.h"

#include <stdlib.h>
#include <string.h>

int
chat_init_tok(struct chat *c, int fam, const struct tok *tk,
    const char *tmpl, char *cause)
{
	const char *bos = tok_bos(tk) >= 0 ? tok_text(tk, tok_bos(tk)) : NULL;
	const char *eos = tok_eos(tk) >= 0 ? tok_text(tk, tok_eos(tk)) : NULL;

	return chat_init(c, fam, bos, eos, tmpl, cause);
}

size_t
chat_stop_ids(const struct chat *c, const struct tok *tk, int32_t *v,
    size_t cap)
{
	const char *s[4];
	size_t n = 0, k = chat_stops(c, s), i, j;
	int32_t id;

	if (cap > 0 && tok_eos(tk) >= 0)
		v[n++] = tok_eos(tk);
	for (i = 0; i < k && n < cap && c->fam != CHAT_PLAIN; i++)
		if ((id = tok_special(tk, s[i], strlen(s[i]))) >= 0) {
			for (j = 0; j < n && v[j] != id; j++)
				;
			if (j == n)
				v[n++] = id;
		}
	return n;
}

/* Appends ids to the growing *out. */
static int
append(int32_t **out, size_t *n, size_t *cap, const int32_t *ids, size_t k)
{
	int32_t *o;
	size_t c;

	if (*n + k > *cap) {
		c = (*n + k) * 2 + 16;
		if ((o = realloc(*out, c * sizeof *o)) == NULL)
			return -1;
		*out = o;
		*cap = c;
	}
	if (k > 0)
		memcpy(*out + *n, ids, k * sizeof *ids);
	*n += k;
	return 0;
}

/* Text between markers, specials never parsed. */
static int
append_text(const struct tok *tk, const char *s, size_t len, int32_t **out,
    size_t *n, size_t *cap, char *cause)
{
	int32_t *ids = NULL;
	size_t k = 0;
	int rc;

	if (len == 0)
		return 0;
	if (tok_encode(tk, s, len, 0, &ids, &k, cause) != 0)
		return -1;
	rc = append(out, n, cap, ids, k);
	free(ids);
	return rc == 0 ? 0 : err_set(cause, "out of memory");
}

int
chat_encode(const struct tok *tk, const struct chat_buf *b, int add_bos,
    int32_t **ids, size_t *n, char *cause)
{
	size_t at = 0, i, cap = 0;
	int32_t id, bos = tok_bos(tk);
	int rc = 0;

	*ids = NULL;
	*n = 0;
	if (b->oom)
		return err_set(cause, "out of memory");
	if (add_bos && bos >= 0 && append(ids, n, &cap, &bos, 1) != 0)
		rc = err_set(cause, "out of memory");
	for (i = 0; rc == 0 && i <= b->n_sp; i++) {
		size_t end = i < b->n_sp ? b->sp[i].off : b->len;

		rc = append_text(tk, b->text + at, end - at, ids, n, &cap,
		    cause);
		if (rc != 0 || i == b->n_sp)
			break;
		at = b->sp[i].off + b->sp[i].len;
		id = tok_special(tk, b->text + b->sp[i].off, b->sp[i].len);
		if (id >= 0)
			rc = append(ids, n, &cap, &id, 1) == 0 ? 0 :
			    err_set(cause, "out of memory");
		else	/* no such token: the marker as text */
			rc = append_text(tk, b->text + b->sp[i].off,
			    b->sp[i].len, ids, n, &cap, cause);
	}
	if (rc != 0) {
		free(*ids);
		*ids = NULL;
		*n = 0;
	}
	return rc;
}
