/*
 * chat: a model's chat template as one of the families sinkd knows,
 * recognised by the marker strings in tokenizer.chat_template (not by
 * file names), and the formatting of a conversation a part at a time:
 * the pinned prefix (the template's BOS and its system block), each user
 * turn (the end of the reply before it, the user's block and the
 * generation prompt) and each reply.  Concatenated, the parts are what
 * the template renders for the whole conversation, so a turn appends
 * only its own tokens to the cache.  A rendering keeps where its markers
 * are: they become the vocabulary's special tokens, while the text
 * around them (the user's) is encoded with specials never parsed.
 * "plain" is sinkd's own format, for models without a template.
 */
#ifndef SINKD_CHAT_H
#define SINKD_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "tokenizer.h"

enum chat_family {
	CHAT_PLAIN,
	CHAT_CHATML,
	CHAT_QWEN25,
	CHAT_SMOLLM3,
	CHAT_LLAMA3,
	CHAT_LLAMA31,
	CHAT_LLAMA2,
	CHAT_MISTRAL,
	CHAT_PHI3,
	CHAT_GEMMA,
	CHAT_ZEPHYR,
	CHAT_DEEPSEEK,
	CHAT_N
};

#define CHAT_NAME_MAX 16	/* longest name, with its NUL */

/* A rendering: text, and the spans of it that are markers. */
struct chat_span {
	size_t off, len;
};

struct chat_buf {
	char *text;
	size_t len, cap;
	struct chat_span *sp;
	size_t n_sp, cap_sp;
	int oom;
};

struct chat {
	int fam;
	char *bos, *eos;	/* bos_token, eos_token ("" when none) */
	int tmpl_bos;		/* the template writes BOS (not the tokenizer) */
	char *smol_think, *smol_plain;	/* SmolLM3's default instructions */
};

const char *chat_name(int fam);
const char *chat_desc(int fam);
/* The family called name, or -1. */
int chat_find(const char *name);
/* The names, comma-separated, for an error message. */
void chat_names(char *buf, size_t cap);
/*
 * The family of a template's text: CHAT_PLAIN for none (NULL or empty),
 * -1 for one sinkd does not recognise.
 */
int chat_detect(const char *tmpl, size_t len);

/*
 * A formatter of family fam for a vocabulary whose BOS and EOS are spelled
 * bos and eos (NULL: none); tmpl is the model's template text, if any
 * (defaults the template carries are taken from it).  0 or -1.
 */
int chat_init(struct chat *, int fam, const char *bos, const char *eos,
    const char *tmpl, char *cause);
/* chat_init with the texts of tk's BOS and EOS. */
int chat_init_tok(struct chat *, int fam, const struct tok *tk,
    const char *tmpl, char *cause);
void chat_free(struct chat *);

/*
 * The parts.  sys is the system prompt (NULL: none); first says no chat
 * turn came before (so no reply to close).  Each appends to b; -1 when
 * out of memory.
 */
int chat_prefix(const struct chat *, const char *sys, size_t sys_len,
    struct chat_buf *b);
int chat_user(const struct chat *, const char *sys, const char *text,
    size_t len, int first, struct chat_buf *b);
/* A reply as the template renders it between the prompt and its end. */
int chat_reply(const struct chat *, const char *text, size_t len,
    struct chat_buf *b);

/* 1 when the tokenizer's BOS goes first (the template has none). */
int chat_tok_bos(const struct chat *, const struct tok *);
/* The texts that end a reply (never shown); their count (at most 4). */
size_t chat_stops(const struct chat *, const char **v);
/* The ids that end a reply: the end-of-turn markers' and EOS; count. */
size_t chat_stop_ids(const struct chat *, const struct tok *, int32_t *v,
    size_t cap);

/*
 * b's tokens: markers as their special tokens (as text when the
 * vocabulary has none), the rest encoded with specials off; with
 * add_bos the BOS first.  *ids malloc'd.  0 or -1.
 */
int chat_encode(const struct tok *, const struct chat_buf *, int add_bos,
    int32_t **ids, size_t *n, char *cause);

void chat_buf_free(struct chat_buf *);

#endif
