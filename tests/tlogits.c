/*
 * tlogits: logits of the engine and of the reference, and their
 * distance, for the model suites.
 */
#include "tlogits.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "err.h"
#include "reference.h"
#include "seq.h"
#include "tenv.h"

static float *
engine_logits(struct model *m, const int32_t *ids, size_t n, int prefill)
{
	struct seq *s = seq_new(m, NULL, NULL);
	struct seq_work *w = seq_work_new(m, 0, NULL);
	size_t nv = (size_t)m->hp.n_vocab, i;
	float *lg = malloc(n * nv * sizeof *lg);
	char cause[ERR_LEN] = "";

	ck_assert(s != NULL && w != NULL && lg != NULL);
	if (prefill)
		ck_assert_msg(seq_eval(s, w, tenv_pool, ids, n, lg, 1,
		    cause) == 0, "%s", cause);
	else
		for (i = 0; i < n; i++)
			ck_assert_msg(seq_eval(s, w, tenv_pool, ids + i, 1,
			    lg + i * nv, 0, cause) == 0, "%s", cause);
	seq_work_free(w);
	seq_free(s);
	return lg;
}

float *
tlogits_prefill(struct model *m, const int32_t *ids, size_t n)
{
	return engine_logits(m, ids, n, 1);
}

float *
tlogits_stepwise(struct model *m, const int32_t *ids, size_t n)
{
	return engine_logits(m, ids, n, 0);
}

double *
tlogits_ref(const char *path, const int32_t *ids, size_t n)
{
	char cause[ERR_LEN] = "";
	struct ref_model *r = ref_open(path, cause);
	double *lg;

	ck_assert_msg(r != NULL, "ref_open: %s", cause);
	lg = malloc(n * (size_t)ref_n_vocab(r) * sizeof *lg);
	ck_assert_ptr_nonnull(lg);
	ck_assert_msg(ref_forward(r, ids, n, lg, cause) == 0, "%s", cause);
	ref_close(r);
	return lg;
}

double
tlogits_rel_err(const float *a, const double *b, size_t n)
{
	double max_abs = 1e-30, d = 0.0;
	size_t i;

	for (i = 0; i < n; i++) {
		max_abs = fmax(max_abs, fabs(b[i]));
		d = fmax(d, fabs((double)a[i] - b[i]));
	}
	return d / max_abs;
}

double
tlogits_rel_diff(const float *a, const float *b, size_t n)
{
	double max_abs = 1e-30, d = 0.0;
	size_t i;

	for (i = 0; i < n; i++) {
		max_abs = fmax(max_abs, fabs((double)b[i]));
		d = fmax(d, fabs((double)a[i] - b[i]));
	}
	return d / max_abs;
}
