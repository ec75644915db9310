/*
 * tokenizer: text <-> token ids for two kinds of model, by
 * `tokenizer.ggml.model`:
 * - llama: SentencePiece BPE (merges by score, byte fallback <0xXX>,
 *   spaces as U+2581, add-BOS and leading-space rules from the model's
 *   metadata); tokenizer_spm.c encodes.
 * - gpt2: byte-level BPE (Llama 3, Qwen2, GPT-2, DeepSeek, Falcon, MPT,
 *   StarCoder, SmolLM): a pre-tokenizer chosen by `tokenizer.ggml.pre`
 *   (tokenizer_pre.c; an unknown name is refused, a missing one means
 *   GPT-2's rules) cuts words, whose bytes merge by rank
 *   (`tokenizer.ggml.merges`); every byte sequence encodes and decodes
 *   back, but for bytes the vocabulary gives no token of its own (Falcon
 *   and MPT lack some bytes, dropped as llama.cpp does; DeepSeek's tokens
 *   for 0xc0, 0xc1 and 0xf5..0xff, which UTF-8 never uses, are
 *   user-defined characters and decode as such).  tokenizer_bpe.c.
 * Control tokens are never produced from text.  The vocabulary is copied
 * out of the GGUF, so the tokenizer outlives it.  tokenizer.c loads,
 * decodes SentencePiece pieces and dispatches.
 */
#ifndef SINKD_TOKENIZER_H
#define SINKD_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "gguf.h"

struct tok;

/* Reads tokenizer.ggml.* from g.  NULL with cause for unsupported models. */
struct tok *tok_open(const struct gguf_file *g, char *cause);
void tok_free(struct tok *);

int32_t tok_n_vocab(const struct tok *);
int32_t tok_bos(const struct tok *); /* -1 when the model has none */
int32_t tok_eos(const struct tok *);
int tok_add_bos(const struct tok *); /* metadata default for prompts */
int32_t tok_unk(const struct tok *); /* -1 when absent */
int32_t tok_pad(const struct tok *); /* -1 when absent */
int tok_add_eos(const struct tok *); /* metadata; tok_encode never adds EOS */
int tok_add_space_prefix(const struct tok *);
/* 1 for control tokens (BOS, EOS, chat markers): they decode to nothing. */
int tok_is_control(const struct tok *, int32_t id);

/*
 * Encodes len bytes of text (need not be NUL-terminated, may hold invalid
 * UTF-8, which is byte-encoded; at most 1 GiB).  With add_bos the BOS id
 * comes first (an error if the model has none).  Control tokens are never
 * produced from text; user-defined pieces are matched whole.  *out is
 * malloc'd (caller frees) and holds *n_out ids.  0 or -1.
 */
int tok_encode(const struct tok *, const char *text, size_t len, int add_bos,
    int32_t **out, size_t *n_out, char *cause);

/*
 * The bytes token id stands for, for streaming output: U+2581 becomes a
 * space, <0xXX> its byte, control tokens (BOS, EOS, ...) nothing; a
 * byte-level token its raw bytes, which may end inside a UTF-8 character
 * the next token completes (so may a <0xXX> byte).  Writes
 * at most cap bytes to buf and returns the full length, or -1 for an id
 * out of range.  `prev` is the preceding token id or -1 at the start of
 * the text: the leading-space rule strips the space the encoder added
 * after BOS / at the start.
 */
int tok_piece(const struct tok *, int32_t prev, int32_t id, char *buf,
    size_t cap);

/* Decodes n ids into a malloc'd NUL-terminated string (caller frees). */
char *tok_decode(const struct tok *, const int32_t *ids, size_t n,
    char *cause);

/*
 * The id of the control or user-defined token spelled exactly len bytes
 * of text (a chat template's markers: <|im_start|>, <|eot_id|>, <s>), or
 * -1.  Text never encodes to control tokens: this is how a chat
 * formatter puts them in.
 */
int32_t tok_special(const struct tok *, const char *text, size_t len);

/* The vocabulary entry text of id (raw, with U+2581), for debugging. */
const char *tok_text(const struct tok *, int32_t id);

#endif
