/* job: see job.h. */
#include "job.h"

#include <stdlib.h>

void
job_free(struct job *j)
{
	size_t i;

	if (j == NULL)
		return;
	free(j->text);
	free(j->prefix);
	free(j->toks);
	free(j->logits);
	free(j->reply);
	free(j->gen);
	sampler_free(j->tmp_smp);
	seq_free(j->old_seq);
	sampler_free(j->old_smp);
	for (i = 0; i < j->n_stops; i++)
		free(j->stops[i]);
	free(j);
}
