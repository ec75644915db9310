/*
 * unicode: UTF-8 decoding that never fails (a byte that does not start a
 * valid sequence is a character of its own) and the character classes
 * the byte-level BPE pre-tokenizers split on.  The class table is
 * generated (unicode_tab.c, tools/gen-unicode.py).
 */
#ifndef SINKD_UNICODE_H
#define SINKD_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Character classes: the general category's first letter, except that
 * White_Space wins over it. */
enum {
	UC_OTHER = 0,
	UC_LETTER = 1,
	UC_NUMBER = 2,
	UC_PUNCT = 3,
	UC_SYMBOL = 4,
	UC_MARK = 5,
	UC_SPACE = 6,
};

/* What uc_decode returns for a byte that is not valid UTF-8. */
#define UC_INVALID 0xfffdu

extern const uint32_t uc_runs[];
extern const size_t uc_nruns;

/*
 * Bytes in the UTF-8 character at s (n > 0 bytes left), with its code
 * point in *cp; 1 and UC_INVALID when s does not start a valid, shortest
 * form sequence (surrogates and values over U+10FFFF are invalid too).
 */
size_t uc_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Writes cp (at most U+10FFFF) as UTF-8 to out; the byte count. */
size_t uc_encode(uint32_t cp, char out[4]);
int uc_class(uint32_t cp);

#endif
