/*
 * tokenizer_int: the vocabulary layout shared by tokenizer.c (loading,
 * validation, decoding) and tokenizer_spm.c (the encoder).  Nothing
 * outside those two files includes it.
 */
#ifndef SINKD_TOKENIZER_INT_H
#define SINKD_TOKENIZER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* tokenizer.ggml.token_type values. */
enum {
	TT_UNDEF = 0,
	TT_NORMAL = 1,
	TT_UNKNOWN = 2,
	TT_CONTROL = 3,
	TT_USER = 4,
	TT_UNUSED = 5,
	TT_BYTE = 6,
};

/* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space. */
#define TOK_WS "\xe2\x96\x81"
#define TOK_WS_LEN 3

struct tok_ud {
	int32_t id;
	uint32_t len;
	unsigned char first;
};

struct tok {
	int32_t n;
	char *arena; /* all texts, each NUL-terminated */
	uint32_t *off;
	uint32_t *len;
	float *score;
	uint8_t *type;
	uint32_t max_len; /* longest piece the merger may produce */

	int32_t *slot; /* open addressing over mergeable pieces, -1 empty */
	uint32_t mask;

	int32_t byte_id[256];
	struct tok_ud *ud; /* user-defined pieces by first byte, longest 1st */
	uint32_t ud_start[257];

	int32_t bos, eos, unk, pad;
	int add_bos, add_eos, add_space;
};

/* The piece merges may produce spelled s[0..len), or -1. */
int32_t tok_lookup(const struct tok *, const char *s, size_t len);
/* The longest user-defined piece at s (n bytes left), or -1. */
int32_t tok_match_user(const struct tok *, const char *s, size_t n,
    uint32_t *len);

#endif
