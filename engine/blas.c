/* blas: OpenBLAS kernel selection, see blas.h for why it re-executes. */
#include "blas.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *openblas_get_corename(void);

#define BLAS_REEXEC_GUARD "SINKD_BLAS_REEXEC"

const char *
blas_corename(void)
{
	return openblas_get_corename();
}

static int
cpu_has_avx512(void)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") &&
	    __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512vl");
#else
	return 0;
#endif
}

static int
core_is_avx512(const char *core)
{
	static const char *const names[] = { "SkylakeX", "Cooperlake",
		"SapphireRapids", NULL };
	int i;

	for (i = 0; names[i] != NULL; i++) {
		if (core != NULL && strcmp(core, names[i]) == 0)
			return 1;
	}
	return 0;
}

void
blas_prepare(char **argv)
{
	if (getenv("OPENBLAS_CORETYPE") != NULL ||
	    getenv(BLAS_REEXEC_GUARD) != NULL)
		return;
	if (!cpu_has_avx512() || core_is_avx512(blas_corename()))
		return;
	setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
	setenv(BLAS_REEXEC_GUARD, "1", 1);
	execv("/proc/self/exe", argv);
	/* Still here: run on with the kernels we have. */
	unsetenv("OPENBLAS_CORETYPE");
}
