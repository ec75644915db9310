/*
 * path: see path.h.
 */
#include "path.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"

int
path_make_dirs(const char *path, char *cause)
{
	char dir[PATH_MAX], *p;
	int e;

	if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
		return err_set(cause, "%s: the path is too long", path);
	for (p = dir + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			e = errno;
			err_set(cause, "cannot create %s: %s", dir,
			    strerror(e));
			errno = e;
			return -1;
		}
		*p = '/';
	}
	return 0;
}
