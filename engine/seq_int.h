/*
 * seq_int: what seq.c (policy, streams, recompute) and seq_fwd.c (the
 * forward pass and its attention) share.
 */
#ifndef SINKD_SEQ_INT_H
#define SINKD_SEQ_INT_H

#include "kv.h"
#include "matmul.h"
#include "rope.h"
#include "seq.h"

struct seq {
	const struct model *m;
	enum seq_mode mode;
	struct kv kv;
	struct rope rope;
	seq_probe_fn *probe;
	void *probe_arg;
};

struct seq_work {
	const struct model *m;
	int32_t n_batch, q_dim, kv_dim;
	float *x, *xn;		 /* [n_batch][n_embd] */
	float *q, *qs;		 /* [n_batch][q_dim]: window and sink queries */
	float *kc, *vc;		 /* [n_batch][kv_dim] */
	float *att;		 /* [n_batch][q_dim] */
	float *g, *u;		 /* [n_batch][n_ff] */
	float *cs, *cs_sink;	 /* [n_batch][n_rot] rope tables */
	int64_t *pos;		 /* [n_batch] */
	int32_t *ns, *lo, *hi;	 /* [n_batch] rows each query sees */
	int32_t *s0, *slo;	 /* [n_batch] its first sink, window rows in
				  * a sliding-window layer */
	float *kg, *vg;		 /* gathered rows [n_head_kv][rows][head_dim] */
	size_t g_rows;		 /* rows kg and vg have room for */
	float *scores;		 /* [threads][per_thread] */
	size_t scores_cap;	 /* floats */
	int32_t *rtok;		 /* recompute's token list */
	size_t rtok_cap;
	struct matmul_scratch mm;
};

/*
 * One chunk of at most n_batch tokens at stream indices n_seen...,
 * scratch already reserved by seq_fwd_reserve; never fails afterwards.
 */
void seq_fwd_chunk(struct seq *, struct seq_work *, struct pool *,
    const int32_t *tokens, size_t n, float *logits, int all);
/* Grows w's scratch for chunks of up to n tokens on s; 0 or -1. */
int seq_fwd_reserve(struct seq *, struct seq_work *, struct pool *, size_t n,
    char *cause);

#endif
