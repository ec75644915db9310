/*
 * err: errors as values.
 *
 * Functions that can fail take a `char *cause` buffer of ERR_LEN bytes
 * (NULL allowed), fill it with one human sentence naming what was wrong,
 * and return -1 or NULL.  Only main() decides to print and exit.
 */
#ifndef SINKD_ERR_H
#define SINKD_ERR_H

#include <stddef.h>

#define ERR_LEN 256

/* Formats into cause (if non-NULL, truncating at ERR_LEN) and returns -1. */
int err_set(char *cause, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
