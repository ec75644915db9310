/*
 * seq_int: what seq.c (policy, streams, recompute, batches), seq_fwd.c
 * (the forward pass of a batch) and seq_attn.c (one segment's attention)
 * share.
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
	const float **mx;	 /* [n_batch] matmul_multi's activations */
	float **my;		 /* [3 * n_batch] and outputs */
	int32_t *rtok;		 /* recompute's token list */
	size_t rtok_cap;
	struct matmul_scratch mm;
	struct attn_job *aj;	 /* [n_batch] a batch's decode attention */
};

/* From this many tokens on, attention runs per head through sgemm. */
#define ATTN_GEMM_MIN 8

/* Where the rows a chunk's attention reads come from. */
struct chunk {
	int64_t a0;	/* stream index of the first token */
	size_t n;
	int sink_q;	/* sinks are scored by their own queries */
	size_t n_sg;	/* gathered sink rows */
	int64_t wlo;	/* first window stream index gathered */
	size_t L;	/* rows gathered */
	const int32_t *s0, *lo; /* this layer's first sink and window rows */
};

/* seq_attn.c's unit of work: one segment's attention in one layer. */
struct attn_job {
	struct seq *s;
	struct seq_work *w;	/* the segment's view */
	struct chunk *ck;
	int layer;
	long per;		/* query heads per job */
	size_t per_thread;	/* scores floats per thread */
	struct seq_work view;	/* w, for seq_attn_decode's jobs */
};

/*
 * seq_attn.c.  w is the segment's view: its rows from row 0 (see
 * seq_fwd.c's seg_view).  seq_attn_plan fills the per-row bounds and
 * rope tables of a chunk at stream index a0; seq_attn runs one layer's
 * attention of the chunk (rope, cache writes, scores).
 */
void seq_attn_plan(const struct seq *, struct seq_work *w, int64_t a0,
    size_t n, struct chunk *);
void seq_attn(struct seq *, struct seq_work *w, struct pool *, int layer,
    struct chunk *);
/*
 * The same for n decode segments (one token each) at once: j[i].s,
 * .view and .ck given; their heads share one pool run, each computed
 * as seq_attn computes it alone.
 */
void seq_attn_decode(struct pool *, int layer, struct attn_job *j,
    size_t n);

/*
 * A segment of a forward pass: a chunk of one sequence at its stream's
 * end, in rows [r0, r0 + n) of the work area.
 */
struct fwd_seg {
	struct seq *s;
	const int32_t *tokens;
	size_t n;
	float *logits;	/* NULL, or as seq_eval's */
	int all;
	size_t r0;	/* set by seq_fwd_batch */
	struct chunk ck;
};

/*
 * One forward pass over segments of distinct sequences, at most n_batch
 * rows in all, each at most one chunk (seq_chunk_len); scratch already
 * reserved by seq_fwd_reserve for each; never fails afterwards.  Every
 * segment gets the logits seq_fwd_chunk gives it alone, bit for bit.
 */
void seq_fwd_batch(struct seq_work *, struct pool *, struct fwd_seg *,
    size_t n_seg);
/*
 * seq_fwd_batch in its parts, for passes (seq_pass.c) that run a chunk
 * a few stages at a time.  A stage is half a layer: stage 2l is layer
 * l's attention, 2l + 1 its feed-forward block; between stages a row's
 * whole state is its residual in w->x.  seq_fwd_plan places the
 * segments' rows (r0) and plans their attention (from the sequences'
 * n_seen, which only seq_fwd_end moves: a plan made again between
 * stages is the same plan); it returns the rows.  seq_fwd_embed writes
 * n tokens' embeddings at x.  seq_fwd_end records the tokens, moves the
 * streams on and computes the logits asked for.
 */
#define SEQ_FWD_STAGES(m) (2 * (m)->hp.n_layer)
size_t seq_fwd_plan(struct seq_work *, struct fwd_seg *, size_t n_seg);
void seq_fwd_embed(const struct seq *, float *x, const int32_t *tokens,
    size_t n);
void seq_fwd_stages(struct seq_work *, struct pool *, struct fwd_seg *,
    size_t n_seg, size_t n, int from, int to);
void seq_fwd_end(struct seq_work *, struct pool *, struct fwd_seg *,
    size_t n_seg);
/* seq.c: the checks seq_eval_batch makes of a segment. */
int seq_check_input(const struct seq *, const struct seq_work *,
    const int32_t *tokens, size_t n, char *cause);
int seq_runs_alone(const struct seq *, const struct seq_work *, size_t n);
/* One chunk of one sequence: a batch of one. */
void seq_fwd_chunk(struct seq *, struct seq_work *, struct pool *,
    const int32_t *tokens, size_t n, float *logits, int all);
/*
 * Grows w's scratch for a chunk of n tokens on s in a batch of rows
 * rows in all (rows >= n); 0 or -1.
 */
int seq_fwd_reserve(struct seq *, struct seq_work *, struct pool *, size_t n,
    size_t rows, char *cause);

#endif
