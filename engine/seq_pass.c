/*
 * seq_pass: a chunk evaluated a stage (half a layer) at a time across
 * calls (seq.h says why and what holds).  The pass owns the chunk's
 * residual rows and a copy of its tokens between calls; each call
 * borrows the work area, plans the chunk's attention again (the plan
 * depends only on the sequence's n_seen, which moves at the end) and
 * runs seq_fwd.c's own stages, so the arithmetic is a batch's.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "seq_int.h"

struct seq_pass {
	const struct model *m;
	size_t cap;		/* rows the pass has room for */
	float *x;		/* [cap][n_embd] residual between calls */
	int32_t *tokens;	/* [cap] */
	struct seq_seg *seg;	/* the caller's, for its logits */
	struct fwd_seg sg;
	int next;		/* next stage */
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
	struct seq_pass *p = calloc(1, sizeof *p);

	if (p == NULL || max_rows == 0)
		goto oom;
	p->m = m;
	p->cap = max_rows;
	p->x = malloc(max_rows * (size_t)m->hp.n_embd * sizeof *p->x);
	p->tokens = malloc(max_rows * sizeof *p->tokens);
	if (p->x == NULL || p->tokens == NULL)
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
	free(p);
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

int
seq_pass_begin(struct seq_pass *p, struct seq_work *w, struct pool *pool,
    struct seq_seg *seg)
{
	seg->failed = 0;
	seg->cause[0] = '\0';
	if (p->left > 0) {
		err_set(seg->cause, "the pass is still running another chunk");
		return fail(seg);
	}
	if (seq_check_input(seg->s, w, seg->tokens, seg->n, seg->cause) != 0)
		return fail(seg);
	if (seq_runs_alone(seg->s, w, seg->n))
		return 1;
	if (seg->n > p->cap) {
		err_set(seg->cause, "a chunk of %zu rows is longer than the "
		    "pass's %zu", seg->n, p->cap);
		return fail(seg);
	}
	if (seq_fwd_reserve(seg->s, w, pool, seg->n, seg->n, seg->cause) != 0)
		return fail(seg);
	memcpy(p->tokens, seg->tokens, seg->n * sizeof *p->tokens);
	p->seg = seg;
	p->sg = (struct fwd_seg){ .s = seg->s, .tokens = p->tokens,
	    .n = seg->n, .logits = seg->logits, .all = seg->all };
	seq_fwd_embed(seg->s, p->x, p->tokens, seg->n);
	p->next = 0;
	p->left = SEQ_FWD_STAGES(p->m);
	return 0;
}

int
seq_pass_run(struct seq_pass *p, struct seq_work *w, struct pool *pool,
    int k)
{
	size_t rows = p->sg.n * (size_t)p->m->hp.n_embd * sizeof *p->x;
	int to;

	if (p->left == 0 || k <= 0)
		return p->left;
	to = p->next + (k < p->left ? k : p->left);
	memcpy(w->x, p->x, rows);
	seq_fwd_plan(w, &p->sg, 1);
	seq_fwd_stages(w, pool, &p->sg, 1, p->sg.n, p->next, to);
	p->left -= to - p->next;
	p->next = to;
	if (p->left > 0)
		memcpy(p->x, w->x, rows);
	else
		seq_fwd_end(w, pool, &p->sg, 1);
	return p->left;
}
