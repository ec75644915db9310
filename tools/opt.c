/* opt: command-line value parsing shared by the tools. */
#include "opt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char opt_no_model_hint[] = "no model: pass -m FILE.gguf or set "
    "SINKD_MODEL (a llama, qwen2, qwen3, phi3 or gemma2 GGUF file; "
    "sinkd-mkmodel writes "
    "synthetic ones, and llama2.c's stories260K converted to GGUF is a "
    "small real one)";

int
opt_long(const char *opt, const char *arg, long min, long max, long *out,
    char *cause)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (arg[0] == '\0' || *end != '\0' || errno != 0)
		return err_set(cause, "%s: '%s' is not a whole number", opt, arg);
	if (v < min || v > max)
		return err_set(cause, "%s: %ld is outside %ld..%ld", opt, v, min,
		    max);
	*out = v;
	return 0;
}

int
opt_u64(const char *opt, const char *arg, uint64_t *out, char *cause)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 0);
	if (arg[0] == '\0' || arg[0] == '-' || *end != '\0' || errno != 0)
		return err_set(cause, "%s: '%s' is not an unsigned number", opt,
		    arg);
	*out = v;
	return 0;
}

int
opt_float(const char *opt, const char *arg, double min, double max,
    float *out, char *cause)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (arg[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(v))
		return err_set(cause, "%s: '%s' is not a number", opt, arg);
	if (v < min || v > max)
		return err_set(cause, "%s: %g is outside %g..%g", opt, v, min,
		    max);
	*out = (float)v;
	return 0;
}

static int
exists(const char *path)
{
	return access(path, R_OK) == 0;
}

/* ../shared beside the executable's folder or its parent (build/). */
static const char *
model_near_exe(void)
{
	static const char *const rel[] = {
		"/../shared/models/stories260K.gguf",
		"/../../shared/models/stories260K.gguf",
	};
	static char buf[PATH_MAX];
	char dir[PATH_MAX], *slash;
	ssize_t n;
	size_t i;

	n = readlink("/proc/self/exe", dir, sizeof dir - 1);
	if (n <= 0)
		return NULL;
	dir[n] = '\0';
	if ((slash = strrchr(dir, '/')) == NULL)
		return NULL;
	*slash = '\0';
	for (i = 0; i < sizeof rel / sizeof rel[0]; i++) {
		if ((size_t)snprintf(buf, sizeof buf, "%s%s", dir, rel[i]) <
		    sizeof buf && exists(buf))
			return buf;
	}
	return NULL;
}

const char *
opt_default_model(void)
{
	const char *env = getenv("SINKD_MODEL");

	if (env != NULL && env[0] != '\0')
		return env;
	if (exists("../shared/models/stories260K.gguf"))
		return "../shared/models/stories260K.gguf";
	return model_near_exe();
}

/* Prompts and id lists beyond this are a mistake (or /dev/zero). */
#define OPT_READ_MAX (256 << 20)

char *
opt_read_all(const char *path, size_t *len, char *cause)
{
	int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY);
	size_t cap = 65536, n = 0;
	char *buf = NULL, *nb;
	ssize_t r;

	if (fd < 0) {
		err_set(cause, "%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (buf == NULL || n + 1 >= cap) {
			if (buf != NULL && cap >= OPT_READ_MAX) {
				err_set(cause, "%s: larger than %d MiB", path,
				    OPT_READ_MAX >> 20);
				goto fail;
			}
			cap = buf == NULL ? cap : cap * 2;
			if ((nb = realloc(buf, cap)) == NULL) {
				err_set(cause, "%s: out of memory", path);
				goto fail;
			}
			buf = nb;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_set(cause, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	if (fd != 0)
		close(fd);
	return buf;
fail:
	free(buf);
	if (fd != 0)
		close(fd);
	return NULL;
}

double
opt_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int
opt_long_list(const char *opt, const char *arg, long min, long max,
    long *out, int max_n, int *n, char *cause)
{
	char buf[32];
	const char *p = arg, *comma;
	size_t len;

	*n = 0;
	for (;;) {
		comma = strchr(p, ',');
		len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (len == 0 || len >= sizeof buf)
			return err_set(cause, "%s: '%s' is not a list of numbers "
			    "like 64,128", opt, arg);
		if (*n == max_n)
			return err_set(cause, "%s: more than %d values", opt,
			    max_n);
		memcpy(buf, p, len);
		buf[len] = '\0';
		if (opt_long(opt, buf, min, max, &out[*n], cause) != 0)
			return -1;
		(*n)++;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

