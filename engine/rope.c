/*
 * rope: the rotation of query and key pairs by position.  Llama GGUFs
 * store Q and K with interleaved pairs (x[2i], x[2i+1]); the "neox"
 * architectures (qwen2, qwen3, phi3, gemma2) pair x[i] with
 * x[i + n_rot/2].  Llama-3.x files divide each pair's frequency by a
 * factor of their own (rope_freqs.weight).
 */
#include "rope.h"

#include <math.h>
#include <stdlib.h>

#include "err.h"

int
rope_init(struct rope *r, const struct model_hparams *hp, char *cause)
{
	int i;

	r->n_rot = hp->n_rot;
	r->head_dim = hp->head_dim;
	r->neox = hp->rope_neox;
	r->inv_freq = calloc((size_t)hp->n_rot / 2, sizeof(double));
	if (r->inv_freq == NULL)
		return err_set(cause, "out of memory");
	for (i = 0; i < hp->n_rot / 2; i++)
		r->inv_freq[i] = pow(hp->rope_base, -2.0 * i / hp->n_rot) /
		    hp->rope_scale / (hp->rope_freqs != NULL ?
		    (double)hp->rope_freqs[i] : 1.0);
	return 0;
}

void
rope_free(struct rope *r)
{
	free(r->inv_freq);
	r->inv_freq = NULL;
}

void
rope_table(const struct rope *r, const int64_t *pos, size_t n, float *cs)
{
	int half = r->n_rot / 2, i;
	size_t t;

	for (t = 0; t < n; t++, cs += 2 * half) {
		for (i = 0; i < half; i++) {
			double a = (double)pos[t] * r->inv_freq[i];
			cs[2 * i] = (float)cos(a);
			cs[2 * i + 1] = (float)sin(a);
		}
	}
}

void
rope_apply(const struct rope *r, const float *cs, float *v, size_t n,
    size_t ld, int n_heads)
{
	int half = r->n_rot / 2, h, i;
	int stride = r->neox ? 1 : 2, off = r->neox ? half : 1;
	size_t t;

	for (t = 0; t < n; t++, cs += 2 * half) {
		for (h = 0; h < n_heads; h++) {
			float *p = v + t * ld + (size_t)h * (size_t)r->head_dim;
			for (i = 0; i < half; i++) {
				float *a = p + i * stride, *b = a + off;
				float x0 = *a, x1 = *b;
				*a = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
				*b = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
			}
		}
	}
}
