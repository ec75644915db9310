/*
 * seq_pass: chunks of one or more sequences evaluated a stage (half a
 * layer) at a time across calls (seq.h says why and what holds).  The
 * pass owns the chunks' residual rows and copies of their tokens
 * between calls; each call borrows the work area, plans the chunks'
 * attention again (a plan depends only on its sequence's n_seen, which
 * moves at the end) and runs seq_fwd.c's own stages, so the arithmetic
 * is a batch's.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "seq_int.h"

struct seq_pass {
	const struct model *m;
	size_t cap;		/* rows the pass has room for */
	size_t rows, n;		/* rows and segments taken */
	float *x;		/* [cap][n_embd] residual between calls */
	int32_t *tokens;	/* [cap] */
	struct fwd_seg *sg;	/* [cap] */
	int next;		/* next stage; 0: segments may still join */
	int left;		/* stages left; 0: idle */
};

int
seq_pass_stages(const struct model *m)
{
	return SEQ_FWD_STAGES(m);
}

struct seq_pass *
seq_pass_new(const struct model *m, size_t max_rows, char *cause)
{
	struct seq_pass *p;

	if (max_rows == 0) {
		err_set(cause, "a pass needs room for a row at least");
		return NULL;
	}
	if ((p = calloc(1, sizeof *p)) == NULL)
		goto oom;
	p->m = m;
	p->cap = max_rows;
	p->x = malloc(max_rows * (size_t)m->hp.n_embd * sizeof *p->x);
	p->tokens = malloc(max_rows * sizeof *p->tokens);
	p->sg = calloc(max_rows, sizeof *p->sg);
	if (p->x == NULL || p->tokens == NULL || p->sg == NULL)
		goto oom;
	return p;
oom:
	seq_pass_free(p);
	err_set(cause, "out of memory for a pass of %zu rows", max_rows);
	return NULL;
}

void
seq_pass_free(struct seq_pass *p)
{
	if (p == NULL)
		return;
	free(p->x);
	free(p->tokens);
	free(p->sg);
	free(p);
}

size_t
seq_pass_bytes(const struct seq_pass *p)
{
	return sizeof *p + p->cap * ((size_t)p->m->hp.n_embd * sizeof *p->x +
	    sizeof *p->tokens + sizeof *p->sg);
}

int
seq_pass_left(const struct seq_pass *p)
{
	return p->left;
}

static int
fail(struct seq_seg *seg)
{
	seg->failed = 1;
	return -1;
}

/* Whether s already has a chunk in the pass. */
static int
has_seq(const struct seq_pass *p, const struct seq *s)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->sg[i].s == s)
			return 1;
	return 0;
}

int
seq_pass_add(struct seq_pass *p, struct seq_work *w, struct pool *pool,
    struct seq_seg *seg)
{
	size_t e = (size_t)p->m->hp.n_embd;
	int32_t *tok = p->tokens + p->rows;

	seg->failed = 0;
	seg->cause[0] = '\0';
	if (p->next > 0) {
		err_set(seg->cause, "the pass has begun: no chunk can join it");
		return fail(seg);
	}
	if (seq_check_input(seg->s, w, seg->tokens, seg->n, seg->cause) != 0)
		return fail(seg);
	if (seq_runs_alone(seg->s, w, seg->n))
		return 1;
	if (has_seq(p, seg->s)) {
		err_set(seg->cause, "the pass already holds a chunk of this "
		    "sequence");
		return fail(seg);
	}
	if (seg->n > p->cap - p->rows) {
		err_set(seg->cause, "a chunk of %zu rows does not fit the pass "
		    "(%zu of %zu rows taken)", seg->n, p->rows, p->cap);
		return fail(seg);
	}
	if (seq_fwd_reserve(seg->s, w, pool, seg->n, p->rows + seg->n,
	    seg->cause) != 0)
		return fail(seg);
	memcpy(tok, seg->tokens, seg->n * sizeof *tok);
	p->sg[p->n++] = (struct fwd_seg){ .s = seg->s, .tokens = tok,
	    .n = seg->n, .logits = seg->logits, .all = seg->all };
	seq_fwd_embed(seg->s, p->x + p->rows * e, tok, seg->n);
	p->rows += seg->n;
	p->left = SEQ_FWD_STAGES(p->m);
	return 0;
}

int
seq_pass_run(struct seq_pass *p, struct seq_work *w, struct pool *pool,
    int k)
{
	size_t bytes = p->rows * (size_t)p->m->hp.n_embd * sizeof *p->x;
	int to;

	if (p->left == 0 || k <= 0)
		return p->left;
	to = p->next + (k < p->left ? k : p->left);
	memcpy(w->x, p->x, bytes);
	seq_fwd_plan(w, p->sg, p->n);
	seq_fwd_stages(w, pool, p->sg, p->n, p->rows, p->next, to);
	p->left -= to - p->next;
	p->next = to;
	if (p->left > 0) {
		memcpy(p->x, w->x, bytes);
		return p->left;
	}
	seq_fwd_end(w, pool, p->sg, p->n);
	p->rows = p->n = 0;
	p->next = 0;
	return 0;
}
