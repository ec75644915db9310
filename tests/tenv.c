/* tenv: see tenv.h. */
#include "tenv.h"

#include <check.h>
#include <stdlib.h>
#include <unistd.h>

char tenv_dir[64];
char tenv_stories[4096];
int tenv_have_stories;
struct pool *tenv_pool;

void
tenv_setup(const char *name)
{
	const char *shared = getenv("SINKD_SHARED");

	snprintf(tenv_dir, sizeof tenv_dir,
	    "/tmp/sinkd-test-%.20s-XXXXXX", name);
	ck_assert_ptr_nonnull(mkdtemp(tenv_dir));
	snprintf(tenv_stories, sizeof tenv_stories,
	    "%s/models/stories260K.gguf", shared != NULL ? shared :
	    "../shared");
	tenv_have_stories = access(tenv_stories, R_OK) == 0;
	tenv_pool = pool_new(2, NULL);
}

void
tenv_teardown(void)
{
	char cmd[128];

	pool_free(tenv_pool);
	tenv_pool = NULL;
	snprintf(cmd, sizeof cmd, "rm -rf %s", tenv_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tenv_dir);
}

struct model *
tenv_open_model(const char *path)
{
	char cause[ERR_LEN] = "";
	struct model *m = model_open(path, NULL, cause);

	ck_assert_msg(m != NULL, "model_open %s: %s", path, cause);
	return m;
}
