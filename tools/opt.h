/*
 * opt: strict parsing of numeric command-line values and the few helpers
 * every tool shares (default model path, whole-file reads, clocks).
 */
#ifndef SINKD_OPT_H
#define SINKD_OPT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Whole string must be a number within [min, max]; cause names opt. */
int opt_long(const char *opt, const char *arg, long min, long max, long *out,
    char *cause);
int opt_u64(const char *opt, const char *arg, uint64_t *out, char *cause);
int opt_float(const char *opt, const char *arg, double min, double max,
    float *out, char *cause);

/*
 * A comma-separated list of up to max_n numbers in [min, max] ("64,128"):
 * *n of them into out.
 */
int opt_long_list(const char *opt, const char *arg, long min, long max,
    long *out, int max_n, int *n, char *cause);

/*
 * The model to use when -m is not given: $SINKD_MODEL, then
 * ../shared/models/stories260K.gguf beside the working directory or the
 * executable.  NULL when none exists.
 */
const char *opt_default_model(void);
/* The one line that says how to get a model. */
extern const char opt_no_model_hint[];

/*
 * Reads all of path ("-" = stdin) into a malloc'd, NUL-terminated
 * buffer; refuses more than 256 MiB.
 */
char *opt_read_all(const char *path, size_t *len, char *cause);

double opt_now(void); /* monotonic seconds */

#endif
