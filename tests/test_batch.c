/*
 * test_batch: seq_eval_batch against seq_eval.  Every segment of a batch
 * must get exactly (memcmp) the logits its sequence gets alone through
 * seq_eval on a work area of the same n_batch, and be left in the same
 * state: batches mixing the four cache modes, cache sizes, f16 caches,
 * sinks and pins, streams past the cache (evictions inside the batch),
 * prefill chunks beside decode rows, sequences joining and leaving
 * between steps, failing segments (bad token ids, a full dense cache),
 * chunks run a few stages at a time (passes) between other batches,
 * a probe, and a batch too large for the work area, for F32, F16, Q8_0,
 * Q4_0 and Q4_K weights on synthetic models (no ../shared needed), one
 * of them wide enough that the matmuls run threaded and tiled.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"
#include "model.h"
#include "pool.h"
#include "quant.h"
#include "seq.h"
#include "synth.h"
#include "tenv.h"

#define N_SEQ 8
#define N_BATCH 40
#define STEPS 60

struct wcase {
	const char *name;
	uint32_t type;
	int wide;	/* big enough for threads and several tiles */
};

static const struct wcase wcases[] = {
	{ "F32", QT_F32, 0 },
	{ "F16", QT_F16, 0 },
	{ "Q8_0", QT_Q8_0, 0 },
	{ "Q4_0", QT_Q4_0, 0 },
	{ "Q4_K", QT_Q4_K, 0 },
	{ "Q8_0 wide", QT_Q8_0, 1 },
	{ "Q4_0 wide", QT_Q4_0, 1 },
	{ "F16 wide", QT_F16, 1 },
};
#define N_WCASES (int)(sizeof wcases / sizeof wcases[0])

static void
setup(void)
{
	tenv_setup("batch");
}

static struct model *
open_case(const struct wcase *c)
{
	struct synth_opts o = { .arch = "llama", .type = c->type, .seed = 11 };
	char path[256], cause[ERR_LEN] = "";

	synth_shape(&o, "tiny", NULL);
	if (c->type == QT_Q4_K || c->wide) {
		/* Widths a multiple of 256 (K-quants); wide: 1.3 MB rows. */
		o.n_embd = 256;
		o.n_head = 4;
		o.n_head_kv = 4;
		o.n_ff = 512;
	}
	if (c->wide) {
		o.n_embd = 512;
		o.n_ff = 1536;
		o.n_vocab = 2048;
	}
	snprintf(path, sizeof path, "%s/w%d.gguf", tenv_dir,
	    (int)(c - wcases));
	if (access(path, R_OK) != 0)
		ck_assert_msg(synth_write(&o, path, cause) == 0, "%s", cause);
	return tenv_open_model(path);
}

/* The sequences of the mixed tests: every mode, evicting early. */
static struct seq_opts
seq_kind(int i)
{
	struct seq_opts o;

	seq_opts_default(&o);
	switch (i % N_SEQ) {
	case 0:
		o.n_cache = 24;
		break;
	case 1:
		o.mode = SEQ_WINDOW;
		o.n_cache = 16;
		break;
	case 2:
		o.mode = SEQ_RECOMPUTE;
		o.n_cache = 20;
		o.n_sink = 2;
		break;
	case 3:
		o.mode = SEQ_DENSE;
		o.n_cache = 60; /* fills up: segments then fail */
		break;
	case 4:
		o.n_cache = 32;
		o.kv_type = KV_F16;
		break;
	case 5:
		o.n_cache = 40;
		o.n_sink = 3;
		o.n_pin = 5;
		break;
	case 6:
		o.mode = SEQ_DENSE;
		o.n_cache = 256;
		break;
	default:
		o.n_cache = 12;
		o.n_sink = 1;
		break;
	}
	return o;
}

/* A small deterministic generator (tests must repeat). */
static uint32_t
rnd(uint32_t *st)
{
	*st = *st * 1664525u + 1013904223u;
	return *st >> 8;
}

struct pair {
	struct seq *b, *a; /* run in batches; run alone */
	int64_t fed;	   /* tokens offered so far */
};

static void
pairs_new(struct model *m, struct pair *p, size_t n)
{
	struct seq_opts o;
	char cause[ERR_LEN] = "";
	size_t i;

	for (i = 0; i < n; i++) {
		o = seq_kind((int)i);
		p[i].b = seq_new(m, &o, cause);
		p[i].a = seq_new(m, &o, cause);
		ck_assert_msg(p[i].b != NULL && p[i].a != NULL, "%s", cause);
		p[i].fed = 0;
	}
}

static void
pairs_free(struct pair *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seq_free(p[i].b);
		seq_free(p[i].a);
	}
}

static void
same_state(const struct pair *p, const char *what, int step)
{
	struct seq_info ib, ia;

	seq_get_info(p->b, &ib);
	seq_get_info(p->a, &ia);
	ck_assert_msg(ib.n_seen == ia.n_seen && ib.n_cached == ia.n_cached &&
	    ib.n_evicted == ia.n_evicted, "%s step %d: state %lld/%d vs "
	    "alone %lld/%d", what, step, (long long)ib.n_seen, ib.n_cached,
	    (long long)ia.n_seen, ia.n_cached);
}

/*
 * Steps of random batches over the pairs: each step some sequences sit
 * out, the others bring one token (decode) or a prefill chunk, now and
 * then a bad token id; logits all, last only or none.  Each segment is
 * then run alone on its twin and compared.
 */
static void
run_mixed(struct model *m, const char *what, size_t n_pairs, uint32_t seed)
{
	size_t nv = (size_t)m->hp.n_vocab, i, k, rows, left, n;
	struct pair p[N_SEQ];
	struct seq_seg seg[N_SEQ];
	int32_t tok[N_SEQ][N_BATCH];
	float *lb[N_SEQ], *la = malloc(N_BATCH * nv * sizeof *la);
	char cause[ERR_LEN] = "";
	struct seq_work *wb = seq_work_new(m, N_BATCH, cause);
	struct seq_work *wa = seq_work_new(m, N_BATCH, cause);
	uint32_t st = seed;
	int step, r, ra, joined = 0, failed_seen = 0;
	size_t idx[N_SEQ];

	ck_assert_msg(wb != NULL && wa != NULL, "%s", cause);
	pairs_new(m, p, n_pairs);
	for (i = 0; i < N_SEQ; i++)
		lb[i] = malloc(N_BATCH * nv * sizeof *lb[i]);
	for (step = 0; step < STEPS; step++) {
		rows = 0;
		k = 0;
		for (i = 0; i < n_pairs; i++) {
			if (rnd(&st) % 4 == 0) /* sits this step out */
				continue;
			left = rnd(&st) % 3 == 0 ? 2 + rnd(&st) % 20 : 1;
			n = seq_chunk_len(p[i].b, left, 16);
			if (rows + n > N_BATCH)
				continue;
			for (r = 0; r < (int)n; r++)
				tok[k][r] = (int32_t)((p[i].fed * 31 + r * 7 +
				    (int64_t)i * 5 + 3) % (int64_t)nv);
			if (rnd(&st) % 29 == 0)
				tok[k][rnd(&st) % n] = (int32_t)nv;
			memset(&seg[k], 0, sizeof seg[k]);
			seg[k].s = p[i].b;
			seg[k].tokens = tok[k];
			seg[k].n = n;
			seg[k].all = (int)(rnd(&st) % 3 == 0);
			seg[k].logits = rnd(&st) % 7 == 0 ? NULL : lb[k];
			idx[k++] = i;
			rows += n;
		}
		joined += k > 1;
		/* NaN everywhere first: every float must be written. */
		for (i = 0; i < k; i++)
			memset(lb[i], 0xff, seg[i].n * nv * sizeof(float));
		r = seq_eval_batch(wb, tenv_pool, seg, k, cause);
		ck_assert_msg(r >= 0, "%s step %d: %s", what, step, cause);
		for (i = 0; i < k; i++) {
			struct pair *q = &p[idx[i]];
			size_t nl = seg[i].all ? seg[i].n : 1;

			memset(la, 0xff, seg[i].n * nv * sizeof(float));
			ra = seq_eval(q->a, wa, tenv_pool, seg[i].tokens,
			    seg[i].n, seg[i].logits != NULL ? la : NULL,
			    seg[i].all, cause);
			ck_assert_msg(seg[i].failed == (ra != 0), "%s step %d "
			    "seq %zu: batch failed %d (%s), alone %d (%s)",
			    what, step, idx[i], seg[i].failed, seg[i].cause,
			    ra, cause);
			if (seg[i].failed) {
				ck_assert_str_eq(seg[i].cause, cause);
				failed_seen++;
				r--;
			} else if (seg[i].logits != NULL) {
				ck_assert_msg(memcmp(lb[i], la, nl * nv *
				    sizeof(float)) == 0, "%s step %d seq %zu "
				    "(%s, %zu tokens from %lld): logits differ",
				    what, step, idx[i],
				    seq_mode_name(seq_kind((int)idx[i]).mode),
				    seg[i].n, (long long)q->fed);
			}
			same_state(q, what, step);
			q->fed += (int64_t)seg[i].n;
		}
		ck_assert_int_eq(r, 0);
	}
	ck_assert_msg(joined > STEPS / 2, "%s: few shared steps", what);
	ck_assert_msg(failed_seen > 0, "%s: no segment failed", what);
	for (i = 0; i < N_SEQ; i++)
		free(lb[i]);
	free(la);
	pairs_free(p, n_pairs);
	seq_work_free(wb);
	seq_work_free(wa);
}

START_TEST(mixed_batches_match_alone)
{
	const struct wcase *c = &wcases[_i];
	struct model *m = open_case(c);

	run_mixed(m, c->name, N_SEQ, 12345u + (uint32_t)_i);
	model_close(m);
}
END_TEST

/* All decode: every row goes through matmul_multi together. */
START_TEST(decode_rows_match_alone)
{
	const struct wcase *c = &wcases[_i];
	struct model *m = open_case(c);
	size_t nv = (size_t)m->hp.n_vocab, i, n_seq = 20, t;
	struct seq **sb = calloc(n_seq, sizeof *sb);
	struct seq **sa = calloc(n_seq, sizeof *sa);
	struct seq_seg *seg = calloc(n_seq, sizeof *seg);
	int32_t *tok = calloc(n_seq, sizeof *tok);
	float *lb = malloc(n_seq * nv * sizeof *lb), *la = malloc(nv *
	    sizeof *la);
	char cause[ERR_LEN] = "";
	struct seq_work *wb = seq_work_new(m, 32, cause);
	struct seq_work *wa = seq_work_new(m, 32, cause);
	struct seq_opts o;

	ck_assert_msg(wb != NULL && wa != NULL, "%s", cause);
	for (i = 0; i < n_seq; i++) {
		o = seq_kind((int)i);
		if (o.mode == SEQ_DENSE)
			o.n_cache = 256;
		sb[i] = seq_new(m, &o, cause);
		sa[i] = seq_new(m, &o, cause);
		ck_assert_msg(sb[i] != NULL && sa[i] != NULL, "%s", cause);
	}
	for (t = 0; t < 30; t++) {
		for (i = 0; i < n_seq; i++) {
			tok[i] = (int32_t)((t * 13 + i * 101 + 1) % nv);
			memset(&seg[i], 0, sizeof seg[i]);
			seg[i].s = sb[i];
			seg[i].tokens = &tok[i];
			seg[i].n = 1;
			seg[i].logits = lb + i * nv;
		}
		ck_assert_int_eq(seq_eval_batch(wb, tenv_pool, seg, n_seq,
		    cause), 0);
		for (i = 0; i < n_seq; i++) {
			ck_assert_int_eq(seq_eval(sa[i], wa, tenv_pool,
			    &tok[i], 1, la, 0, cause), 0);
			ck_assert_msg(memcmp(lb + i * nv, la, nv *
			    sizeof(float)) == 0, "%s token %zu seq %zu: "
			    "logits differ", c->name, t, i);
		}
	}
	for (i = 0; i < n_seq; i++) {
		seq_free(sb[i]);
		seq_free(sa[i]);
	}
	free(sb);
	free(sa);
	free(seg);
	free(tok);
	free(lb);
	free(la);
	seq_work_free(wb);
	seq_work_free(wa);
	model_close(m);
}
END_TEST

/* Probes run on the pool's threads, several heads at once. */
static atomic_int probe_calls;

static void
count_probe(void *arg, int layer, int head, const float *wts, int32_t n)
{
	(void)arg;
	(void)layer;
	(void)head;
	(void)wts;
	(void)n;
	probe_calls++;
}

/* A probed sequence runs alone (token by token) beside a shared pass. */
START_TEST(probe_runs_alone)
{
	struct model *m = open_case(&wcases[2]);
	size_t nv = (size_t)m->hp.n_vocab;
	struct seq_opts o = seq_kind(0);
	char cause[ERR_LEN] = "";
	struct seq *b0 = seq_new(m, &o, cause), *b1 = seq_new(m, &o, cause);
	struct seq *a0 = seq_new(m, &o, cause), *a1 = seq_new(m, &o, cause);
	struct seq_work *w = seq_work_new(m, 16, cause);
	int32_t t0[5] = { 1, 2, 3, 4, 5 }, t1[1] = { 9 };
	float *l0 = malloc(nv * sizeof *l0), *l1 = malloc(nv * sizeof *l1);
	float *r = malloc(nv * sizeof *r);
	struct seq_seg seg[2] = {
		{ .s = b0, .tokens = t0, .n = 5, .logits = l0 },
		{ .s = b1, .tokens = t1, .n = 1, .logits = l1 },
	};
	int calls;

	ck_assert_msg(b0 && b1 && a0 && a1 && w, "%s", cause);
	seq_set_probe(b0, count_probe, NULL);
	seq_set_probe(a0, count_probe, NULL);
	probe_calls = 0;
	ck_assert_int_eq(seq_eval_batch(w, tenv_pool, seg, 2, cause), 0);
	calls = atomic_load(&probe_calls);
	ck_assert_int_gt(calls, 0);
	probe_calls = 0;
	ck_assert_int_eq(seq_eval(a0, w, tenv_pool, t0, 5, r, 0, cause), 0);
	ck_assert_int_eq(atomic_load(&probe_calls), calls);
	ck_assert(memcmp(l0, r, nv * sizeof(float)) == 0);
	ck_assert_int_eq(seq_eval(a1, w, tenv_pool, t1, 1, r, 0, cause), 0);
	ck_assert(memcmp(l1, r, nv * sizeof(float)) == 0);
	seq_free(b0);
	seq_free(b1);
	seq_free(a0);
	seq_free(a1);
	seq_work_free(w);
	free(l0);
	free(l1);
	free(r);
	model_close(m);
}
END_TEST

/*
 * Panels (AVX-512): Q4_0/Q8_0 matrices run on panels built at load and
 * the embedding is a copy, so once loaded nothing is read from the file:
 * the same logits after the file is truncated in place (before, an
 * embedding row read from the mapping died of SIGBUS), tied or not.
 */
START_TEST(panels_need_no_file)
{
	struct synth_opts o = { .arch = "llama", .type = QT_Q4_0, .seed = 5,
	    .tied = _i };
	int32_t tok[6] = { 1, 7, 3, 9, 4, 2 };
	char path[256], cause[ERR_LEN] = "";
	struct seq_opts so;
	struct model *m;
	struct seq_work *w;
	struct seq *a, *b;
	float *l0, *l1;
	size_t nv;
	int panels = kern_best_isa() == KERN_ISA_AVX512;

	synth_shape(&o, "tiny", NULL);
	snprintf(path, sizeof path, "%s/trunc%d.gguf", tenv_dir, _i);
	ck_assert_msg(synth_write(&o, path, cause) == 0, "%s", cause);
	m = tenv_open_model(path);
	ck_assert(m->tok_embd.pk == NULL);
	ck_assert((m->layers[0].wq.pk != NULL) == panels);
	ck_assert((m->output.pk != NULL) == panels);
	ck_assert((m->panel_bytes > 0) == panels);
	if (!panels)
		printf("panels_need_no_file: no AVX-512 VNNI, rows as stored\n");
	nv = (size_t)m->hp.n_vocab;
	seq_opts_default(&so);
	so.n_cache = 32;
	w = seq_work_new(m, 8, cause);
	a = seq_new(m, &so, cause);
	b = seq_new(m, &so, cause);
	l0 = malloc(nv * sizeof *l0);
	l1 = malloc(nv * sizeof *l1);
	ck_assert_msg(w && a && b && l0 && l1, "%s", cause);
	ck_assert_int_eq(seq_eval(a, w, tenv_pool, tok, 5, l0, 0, cause), 0);
	ck_assert_int_eq(seq_eval(a, w, tenv_pool, tok + 5, 1, l0, 0, cause),
	    0);
	ck_assert_int_eq(truncate(path, 0), 0);
	ck_assert_int_eq(seq_eval(b, w, tenv_pool, tok, 5, l1, 0, cause), 0);
	ck_assert_int_eq(seq_eval(b, w, tenv_pool, tok + 5, 1, l1, 0, cause),
	    0);
	ck_assert(memcmp(l0, l1, nv * sizeof(float)) == 0);
	seq_free(a);
	seq_free(b);
	seq_work_free(w);
	free(l0);
	free(l1);
	model_close(m);
}
END_TEST

/* More rows than n_batch: -1, and no sequence moved. */
START_TEST(oversized_batch_changes_nothing)
{
	struct model *m = open_case(&wcases[3]);
	size_t nv = (size_t)m->hp.n_vocab, i;
	char cause[ERR_LEN] = "";
	struct seq_work *w = seq_work_new(m, 8, cause);
	struct seq *s[3], *a[3];
	struct seq_opts o = seq_kind(0);
	int32_t tok[8] = { 3, 1, 4, 1, 5, 9, 2, 6 };
	float *lb = malloc(nv * sizeof *lb), *la = malloc(nv * sizeof *la);
	struct seq_seg seg[3];
	struct seq_info info;

	for (i = 0; i < 3; i++) {
		s[i] = seq_new(m, &o, cause);
		a[i] = seq_new(m, &o, cause);
		ck_assert_msg(s[i] && a[i], "%s", cause);
		memset(&seg[i], 0, sizeof seg[i]);
		seg[i].s = s[i];
		seg[i].tokens = tok;
		seg[i].n = 3;
		seg[i].logits = lb;
	}
	ck_assert_int_eq(seq_eval_batch(w, tenv_pool, seg, 3, cause), -1);
	ck_assert_msg(strstr(cause, "9 rows") != NULL, "%s", cause);
	for (i = 0; i < 3; i++) {
		seq_get_info(s[i], &info);
		ck_assert_int_eq(info.n_seen, 0);
	}
	/* And they go on exactly as fresh ones. */
	seg[1].logits = NULL;
	seg[2].n = 2;
	ck_assert_int_eq(seq_eval_batch(w, tenv_pool, seg + 1, 2, cause), 0);
	ck_assert_int_eq(seq_eval(a[2], w, tenv_pool, tok, 2, la, 0, cause),
	    0);
	ck_assert(memcmp(lb, la, nv * sizeof(float)) == 0);
	for (i = 0; i < 3; i++) {
		seq_free(s[i]);
		seq_free(a[i]);
	}
	free(lb);
	free(la);
	seq_work_free(w);
	model_close(m);
}
END_TEST

/* Every chunk of every layer of a and b the same. */
static void
same_cache(const struct seq *a, const struct seq *b, int n_layer,
    const char *what, int step)
{
	size_t bytes = seq_chunk_bytes(a);
	char *x = malloc(bytes), *y = malloc(bytes);
	int32_t c;
	int l;

	ck_assert(x != NULL && y != NULL && bytes == seq_chunk_bytes(b));
	for (l = 0; l < n_layer; l++) {
		for (c = 0; c < seq_n_chunks(a); c++) {
			seq_chunk_get(a, l, c, x);
			seq_chunk_get(b, l, c, y);
			ck_assert_msg(memcmp(x, y, bytes) == 0, "%s step %d: "
			    "layer %d chunk %d differs", what, step, l, c);
		}
	}
	free(x);
	free(y);
}

/* The decode sequences' step between a pass's calls: db as da alone. */
static void
decode_between(struct seq *db, struct seq *da, struct seq_work *wb,
    struct seq_work *wa, int32_t *tok, size_t nv, float *lb, float *la)
{
	struct seq_seg d = { .s = db, .tokens = tok, .n = 1, .logits = lb };
	char cause[ERR_LEN] = "";

	ck_assert_int_eq(seq_eval_batch(wb, tenv_pool, &d, 1, cause), 0);
	ck_assert_int_eq(seq_eval(da, wa, tenv_pool, tok, 1, la, 0, cause), 0);
	ck_assert(memcmp(lb, la, nv * sizeof *la) == 0);
	*tok = (*tok * 7 + 3) % (int32_t)nv;
}

/*
 * Passes of one to three sequences' chunks, run a few stages per call,
 * with decode batches of another sequence on the same work area between
 * the calls: each chunk's logits and the cache it leaves are exactly
 * seq_eval's alone, for every cache mode (evictions inside the chunk, a
 * dense cache filling up, recompute past a full cache running alone),
 * and the decode rows between are exactly theirs alone too.
 */
START_TEST(passes_match_alone)
{
	const struct wcase *c = &wcases[_i];
	struct model *m = open_case(c);
	size_t nv = (size_t)m->hp.n_vocab, n[3], t, off;
	char cause[ERR_LEN] = "";
	struct seq_work *wb = seq_work_new(m, N_BATCH, cause);
	struct seq_work *wa = seq_work_new(m, N_BATCH, cause);
	struct seq_pass *ps = seq_pass_new(m, N_BATCH, cause);
	float *lb = malloc((N_BATCH + 1) * nv * sizeof *lb);
	float *la = malloc(N_BATCH * nv * sizeof *la);
	struct seq_opts od = seq_kind(0);
	struct seq *db = seq_new(m, &od, cause), *da = seq_new(m, &od, cause);
	struct pair p[N_SEQ], *q;
	struct seq_seg seg[3];
	int32_t tok[N_BATCH], dtok = 5;
	uint32_t st = 777u + (uint32_t)_i;
	int round, k, i, r[3], ra, staged = 0, alone = 0, failed = 0, left;

	ck_assert_msg(wb && wa && ps && lb && la && db && da, "%s", cause);
	pairs_new(m, p, N_SEQ);
	for (round = 0; round < 6 * N_SEQ; round++) {
		k = 1 + (int)(rnd(&st) % 3);
		for (i = 0, off = 0; i < k; i++) {
			q = &p[(round + 3 * i) % N_SEQ];
			n[i] = seq_chunk_len(q->b, 1 + rnd(&st) % (N_BATCH /
			    (size_t)k), N_BATCH);
			for (t = 0; t < n[i]; t++)
				tok[off + t] = (int32_t)(rnd(&st) % nv);
			seg[i] = (struct seq_seg){ .s = q->b, .tokens = tok +
			    off, .n = n[i], .logits = lb + off * nv,
			    .all = rnd(&st) % 3 == 0 };
			memset(lb + off * nv, 0xff, n[i] * nv * sizeof *lb);
			r[i] = seq_pass_add(ps, wb, tenv_pool, &seg[i]);
			off += n[i];
		}
		for (i = 0; i < k; i++) {
			if (r[i] != 1)
				continue;
			alone++;
			ck_assert_int_ge(seq_eval_batch(wb, tenv_pool, &seg[i],
			    1, cause), 0);
		}
		for (left = seq_pass_left(ps); left > 0;) {
			left = seq_pass_run(ps, wb, tenv_pool,
			    1 + (int)(rnd(&st) % 5));
			ck_assert_int_eq(left, seq_pass_left(ps));
			decode_between(db, da, wb, wa, &dtok, nv, lb + N_BATCH *
			    nv, la);
		}
		for (i = 0; i < k; i++) {
			q = &p[(round + 3 * i) % N_SEQ];
			staged += r[i] == 0;
			memset(la, 0xff, n[i] * nv * sizeof *la);
			ra = seq_eval(q->a, wa, tenv_pool, seg[i].tokens, n[i],
			    la, seg[i].all, cause);
			ck_assert_msg(seg[i].failed == (ra != 0), "%s round %d "
			    "seq %d: pass failed %d (%s), alone %d (%s)",
			    c->name, round, i, seg[i].failed, seg[i].cause,
			    ra, cause);
			failed += seg[i].failed;
			if (!seg[i].failed)
				ck_assert_msg(memcmp(seg[i].logits, la,
				    (seg[i].all ? n[i] : 1) * nv * sizeof *la) ==
				    0, "%s round %d seq %d: %zu tokens: logits "
				    "differ", c->name, round, i, n[i]);
			same_state(q, c->name, round);
			same_cache(q->b, q->a, m->hp.n_layer, c->name, round);
		}
	}
	printf("%s: %d chunks in stages, %d alone, %d failed\n", c->name,
	    staged, alone, failed);
	ck_assert_int_gt(staged, N_SEQ * 6);
	ck_assert_int_gt(alone, 0);
	ck_assert_int_gt(failed, 0);
	pairs_free(p, N_SEQ);
	seq_free(db);
	seq_free(da);
	seq_pass_free(ps);
	seq_work_free(wb);
	seq_work_free(wa);
	free(lb);
	free(la);
	model_close(m);
}
END_TEST

static Suite *
batch_suite(void)
{
	Suite *s = suite_create("batch");
	TCase *tc = tcase_create("batch");

	tcase_add_unchecked_fixture(tc, setup, tenv_teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, mixed_batches_match_alone, 0, N_WCASES);
	tcase_add_loop_test(tc, decode_rows_match_alone, 0, N_WCASES);
	tcase_add_loop_test(tc, passes_match_alone, 0, N_WCASES);
	tcase_add_test(tc, probe_runs_alone);
	tcase_add_loop_test(tc, panels_need_no_file, 0, 2);
	tcase_add_test(tc, oversized_batch_changes_nothing);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(batch_suite());
	int failed;

	/* The tenv_pool's threads live in this process: no forking. */
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
