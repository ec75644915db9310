/*
 * tokenizer_int: the vocabulary layout shared by tokenizer.c (loading,
 * validation, decoding), tokenizer_spm.c (the SentencePiece encoder),
 * tokenizer_bpe.c (byte-level BPE: merges, byte map, encoder, decoder)
 * and tokenizer_pre.c (the byte-level pre-tokenizers).  Nothing outside
 * those files includes it.
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

struct tok_pre;

struct tok {
	int32_t n;
	int bpe; /* tokenizer.ggml.model gpt2: byte-level BPE */
	char *arena; /* all texts, each NUL-terminated */
	uint32_t *off;
	uint32_t *len;
	float *score;
	uint8_t *type;
	uint32_t max_len; /* longest piece the merger may produce */

	int32_t *slot; /* open addressing over mergeable pieces, -1 empty */
	uint32_t mask;

	/* SPM: the <0xXX> tokens; BPE: the tokens of the bytes' mapped
	 * characters (GPT-2's bytes_to_unicode). */
	int32_t byte_id[256];
	struct tok_ud *ud; /* user-defined pieces by first byte, longest 1st */
	uint32_t ud_start[257];

	int32_t bos, eos, unk, pad;
	int add_bos, add_eos, add_space;

	/* Byte-level BPE only. */
	const struct tok_pre *pre;
	int32_t *mrg;	 /* per rank: left, right, merged id */
	int32_t *mslot;	 /* open addressing over ranks, -1 empty */
	uint32_t mmask;
	uint16_t bytecp[256];	    /* byte to the character it stands as */
	unsigned char unmapped[68]; /* the bytes mapped to U+0100.. */
};

/* The piece merges may produce spelled s[0..len), or -1. */
int32_t tok_lookup(const struct tok *, const char *s, size_t len);
/* The longest user-defined piece at s (n bytes left), or -1. */
int32_t tok_match_user(const struct tok *, const char *s, size_t n,
    uint32_t *len);

/* tok_encode for each kind: it has checked BOS and the length. */
int tok_spm_encode(const struct tok *, const char *text, size_t len,
    int add_bos, int32_t **out, size_t *n_out, char *cause);

/* tokenizer_bpe.c */
int tok_bpe_pre(struct tok *, const struct gguf_file *, char *cause);
int tok_bpe_load(struct tok *, const struct gguf_file *, char *cause);
void tok_bpe_free(struct tok *);
int tok_bpe_encode(const struct tok *, const char *text, size_t len,
    int add_bos, int32_t **out, size_t *n_out, char *cause);
int tok_bpe_piece(const struct tok *, int32_t id, char *buf, size_t cap);

/* tokenizer_pre.c */
const struct tok_pre *tok_pre_find(const char *name, size_t len);
void tok_pre_names(char *buf, size_t cap); /* comma-separated */
int tok_pre_ignore_merges(const struct tok_pre *);
int tok_pre_add_bos(const struct tok_pre *);
/*
 * Cuts n characters (code points and their unicode.h classes) into
 * words: their ends, ascending, in *ends (one of a and b, each of n + 1
 * entries); the count.
 */
size_t tok_pre_split(const struct tok_pre *, const uint32_t *cp,
    const uint8_t *cls, size_t n, uint32_t *a, uint32_t *b, uint32_t **ends);

#endif
