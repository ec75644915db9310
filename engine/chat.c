/*
 * chat: see chat.h.  Each family's parts are written out here from what
 * its template renders; tests/test_chat.c checks them against the real
 * templates rendered by Jinja2.
 */
#include "chat.h"

#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#define QWEN_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a " \
	"helpful assistant."
#define SMOL_PLAIN "You are a helpful AI assistant named SmolLM, trained " \
	"by Hugging Face.\n\n"
#define LLAMA31_HEAD "\n\nCutting Knowledge Date: December 2023\n" \
	"Today Date: 26 Jul 2024\n\n"

static const struct {
	const char *name, *desc;
	int bos;		/* its templates write bos_token */
	const char *end[2];	/* end-of-turn markers; NULL: EOS */
} fams[CHAT_N] = {
	[CHAT_PLAIN] = { "plain", "sinkd's own: ### System/User/Assistant "
	    "headings (models without a template)", 0, { NULL } },
	[CHAT_CHATML] = { "chatml", "<|im_start|>role ... <|im_end|> (Qwen2, "
	    "Qwen3, SmolLM2, Hermes)", 0, { "<|im_end|>" } },
	[CHAT_QWEN25] = { "qwen2.5", "ChatML with Qwen2.5's default system "
	    "prompt", 0, { "<|im_end|>" } },
	[CHAT_SMOLLM3] = { "smollm3", "ChatML with SmolLM3's metadata system "
	    "block and /think, /no_think", 0, { "<|im_end|>" } },
	[CHAT_LLAMA3] = { "llama3", "<|start_header_id|>role<|end_header_id|> "
	    "... <|eot_id|> (Llama 3)", 1, { "<|eot_id|>", "<|eom_id|>" } },
	[CHAT_LLAMA31] = { "llama3.1", "Llama 3 with the 3.1/3.2 system block "
	    "(knowledge cutoff, date 26 Jul 2024)", 1,
	    { "<|eot_id|>", "<|eom_id|>" } },
	[CHAT_LLAMA2] = { "llama2", "<s>[INST] <<SYS>> ... <</SYS>> ... "
	    "[/INST] (Llama 2 chat)", 1, { NULL } },
	[CHAT_MISTRAL] = { "mistral", "[INST]...[/INST] without spaces "
	    "(Mistral Nemo, v3-tekken)", 1, { NULL } },
	[CHAT_PHI3] = { "phi3", "<|user|> ... <|end|> <|assistant|> (Phi-3, "
	    "Phi-3.5)", 0, { "<|end|>" } },
	[CHAT_GEMMA] = { "gemma", "<start_of_turn>user ... <end_of_turn> "
	    "(Gemma, Gemma 2)", 1, { "<end_of_turn>" } },
	[CHAT_ZEPHYR] = { "zephyr", "<|user|> ... </s> <|assistant|> "
	    "(Zephyr)", 0, { NULL } },
	[CHAT_DEEPSEEK] = { "deepseek-r1", "<\xef\xbd\x9cUser\xef\xbd\x9c> "
	    "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c> (DeepSeek-R1 distills)", 1,
	    { "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence"
	    "\xef\xbd\x9c>" } },
};

#define DS_USER "<\xef\xbd\x9cUser\xef\xbd\x9c>"
#define DS_ASSISTANT "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>"

const char *
chat_name(int fam)
{
	return fam >= 0 && fam < CHAT_N ? fams[fam].name : "?";
}

const char *
chat_desc(int fam)
{
	return fam >= 0 && fam < CHAT_N ? fams[fam].desc : "?";
}

int
chat_find(const char *name)
{
	int i;

	for (i = 0; name != NULL && i < CHAT_N; i++)
		if (strcmp(name, fams[i].name) == 0)
			return i;
	return -1;
}

void
chat_names(char *buf, size_t cap)
{
	size_t at = 0;
	int i, n;

	if (cap == 0)
		return;
	buf[0] = '\0';
	for (i = 0; i < CHAT_N && at < cap; i++) {
		n = snprintf(buf + at, cap - at, "%s%s", i ? ", " : "",
		    fams[i].name);
		at += n > 0 ? (size_t)n : 0;
	}
}

static int
has(const char *t, size_t len, const char *s)
{
	return memmem(t, len, s, strlen(s)) != NULL;
}

int
chat_detect(const char *t, size_t len)
{
	if (t == NULL || len == 0)
		return CHAT_PLAIN;
	if (has(t, len, "<|im_start|>")) {
		if (has(t, len, "Reasoning Mode"))
			return CHAT_SMOLLM3;
		if (has(t, len, "You are Qwen, created by Alibaba Cloud"))
			return CHAT_QWEN25;
		return CHAT_CHATML;
	}
	if (has(t, len, "<|start_header_id|>"))
		return has(t, len, "Cutting Knowledge Date") ? CHAT_LLAMA31 :
		    CHAT_LLAMA3;
	if (has(t, len, DS_USER) && has(t, len, DS_ASSISTANT))
		return CHAT_DEEPSEEK;
	if (has(t, len, "<start_of_turn>"))
		return CHAT_GEMMA;
	if (has(t, len, "<|user|>") && has(t, len, "<|assistant|>"))
		return has(t, len, "<|end|>") ? CHAT_PHI3 : CHAT_ZEPHYR;
	if (has(t, len, "[INST]")) {
		if (has(t, len, "<<SYS>>"))
			return CHAT_LLAMA2;
		/* Mistral's older templates put spaces inside: not this. */
		if (!has(t, len, "'[INST] '") && !has(t, len, "\"[INST] \""))
			return CHAT_MISTRAL;
	}
	return -1;
}

/*
 * The string literal of a Jinja expression after marker in the template:
 * SmolLM3's default instructions are taken from its own text.
 */
static char *
literal_after(const char *t, const char *marker)
{
	const char *p = t != NULL ? strstr(t, marker) : NULL, *q;
	char *s, *o, quote;

	if (p == NULL || (p = strstr(p, "{{")) == NULL)
		return NULL;
	for (p += 2; *p == '-' || *p == ' '; p++)
		;
	if (*p != '"' && *p != '\'')
		return NULL;
	quote = *p++;
	for (q = p; *q != '\0' && *q != quote; q++)
		if (*q == '\\' && q[1] != '\0')
			q++;
	if (*q != quote || (s = malloc((size_t)(q - p) + 1)) == NULL)
		return NULL;
	for (o = s; p < q; p++) {
		if (*p == '\\') {
			p++;
			*o++ = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
		} else
			*o++ = *p;
	}
	*o = '\0';
	return s;
}

int
chat_init(struct chat *c, int fam, const char *bos, const char *eos,
    const char *tmpl, char *cause)
{
	memset(c, 0, sizeof *c);
	if (fam < 0 || fam >= CHAT_N)
		return err_set(cause, "no chat template family %d", fam);
	c->fam = fam;
	/*
	 * Whose BOS: the template's when its text writes bos_token (Phi-3's
	 * older templates do, Phi-3.5's does not), else the tokenizer's.
	 */
	c->tmpl_bos = fams[fam].bos;
	if (tmpl != NULL && fam != CHAT_PLAIN && fam != CHAT_LLAMA2)
		c->tmpl_bos = strstr(tmpl, "bos_token") != NULL;
	c->bos = strdup(bos != NULL ? bos : "");
	c->eos = strdup(eos != NULL ? eos : "");
	if (fam == CHAT_SMOLLM3) {
		c->smol_think = literal_after(tmpl, "reasoning_mode == \"/think\"");
		c->smol_plain = literal_after(tmpl, "{%- else -%}\n    {{- \"You");
		if (c->smol_plain == NULL)
			c->smol_plain = strdup(SMOL_PLAIN);
		/* Without the model's text: the short one for both. */
		if (c->smol_think == NULL && c->smol_plain != NULL)
			c->smol_think = strdup(c->smol_plain);
	}
	if (c->bos == NULL || c->eos == NULL || (fam == CHAT_SMOLLM3 &&
	    (c->smol_think == NULL || c->smol_plain == NULL))) {
		chat_free(c);
		return err_set(cause, "out of memory");
	}
	return 0;
}

void
chat_free(struct chat *c)
{
	free(c->bos);
	free(c->eos);
	free(c->smol_think);
	free(c->smol_plain);
	memset(c, 0, sizeof *c);
}

void
chat_buf_free(struct chat_buf *b)
{
	free(b->text);
	free(b->sp);
	memset(b, 0, sizeof *b);
}

static void
put(struct chat_buf *b, const char *s, size_t n)
{
	size_t cap;
	char *t;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = (b->len + n + 1) * 2;
		if ((t = realloc(b->text, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->text = t;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->text + b->len, s, n);
	b->len += n;
	b->text[b->len] = '\0';
}

static void
puts_(struct chat_buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* A marker: its span becomes one special token. */
static void
mark(struct chat_buf *b, const char *s)
{
	struct chat_span *sp;
	size_t cap, n = strlen(s);

	if (b->oom || n == 0)
		return;
	if (b->n_sp == b->cap_sp) {
		cap = b->cap_sp ? b->cap_sp * 2 : 16;
		if ((sp = realloc(b->sp, cap * sizeof *sp)) == NULL) {
			b->oom = 1;
			return;
		}
		b->sp = sp;
		b->cap_sp = cap;
	}
	b->sp[b->n_sp].off = b->len;
	b->sp[b->n_sp].len = n;
	put(b, s, n);
	if (!b->oom)
		b->n_sp++;
}

/* Python's str.isspace(), which Jinja's trim and str.strip() follow. */
static int
py_space(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) ||
	    c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 &&
	    c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
	    c == 0x205f || c == 0x3000;
}

/* The character at s (n bytes), its length in *l; invalid: 0xfffd. */
static uint32_t
cp_at(const char *s, size_t n, size_t *l)
{
	const unsigned char *u = (const unsigned char *)s;
	uint32_t c = u[0];
	size_t k, want = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 :
	    c >= 0xc0 ? 2 : 0;

	*l = 1;
	if (want <= 1 || want > n)
		return want == 1 ? c : 0xfffd;
	c &= 0xff >> (want + 1);
	for (k = 1; k < want; k++) {
		if ((u[k] & 0xc0) != 0x80)
			return 0xfffd;
		c = c << 6 | (u[k] & 0x3f);
	}
	*l = want;
	return c;
}

/* How many bytes of whitespace s starts with. */
static size_t
lead_ws(const char *s, size_t n)
{
	size_t at = 0, l;

	while (at < n && py_space(cp_at(s + at, n - at, &l)))
		at += l;
	return at;
}

/* The length of s without its trailing whitespace. */
static size_t
trail_ws(const char *s, size_t n)
{
	size_t end = n, st, l;

	while (end > 0) {
		st = end - 1;
		while (st > 0 && ((unsigned char)s[st] & 0xc0) == 0x80 &&
		    end - st < 4)
			st--;
		if (!py_space(cp_at(s + st, end - st, &l)) || st + l != end)
			break;
		end = st;
	}
	return end;
}

/* s with Python's strip(). */
static void
put_trim(struct chat_buf *b, const char *s, size_t n)
{
	size_t a = lead_ws(s, n);

	put(b, s + a, trail_ws(s + a, n - a));
}

static void
put_rstrip(struct chat_buf *b, const char *s, size_t n)
{
	put(b, s, trail_ws(s, n));
}

static int
done(struct chat_buf *b)
{
	return b->oom ? -1 : 0;
}

/* SmolLM3: "/no_think" in the system prompt turns thinking off. */
static int
smol_thinks(const char *sys)
{
	if (sys == NULL)
		return 1;
	if (strstr(sys, "/no_think") != NULL)
		return 0;
	return 1;
}

/* The system prompt without /no_think and /think, right-stripped. */
static void
smol_custom(struct chat_buf *b, const char *sys, size_t len)
{
	struct chat_buf t = { 0 };
	size_t i = 0;

	while (i < len) {
		if (len - i >= 9 && memcmp(sys + i, "/no_think", 9) == 0)
			i += 9;
		else
			put(&t, sys + i++, 1);
	}
	/* The second replace runs on the first's result. */
	for (i = 0; !t.oom && i < t.len;) {
		if (t.len - i >= 6 && memcmp(t.text + i, "/think", 6) == 0)
			i += 6;
		else
			put(b, t.text + i++, 1);
	}
	b->oom |= t.oom;
	chat_buf_free(&t);
}

static void
smol_prefix(const struct chat *c, const char *sys, size_t len,
    struct chat_buf *b)
{
	struct chat_buf cu = { 0 };
	int think = smol_thinks(sys);

	mark(b, "<|im_start|>");
	puts_(b, "system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\n"
	    "Reasoning Mode: ");
	puts_(b, think ? "/think" : "/no_think");
	puts_(b, "\n\n## Custom Instructions\n\n");
	if (sys != NULL)
		smol_custom(&cu, sys, len);
	/* (The defaults end in their blank line.) */
	if (cu.len > 0 && trail_ws(cu.text, cu.len) > 0) {
		put_rstrip(b, cu.text, cu.len);
		puts_(b, "\n\n");
	} else
		puts_(b, think ? c->smol_think : c->smol_plain);
	b->oom |= cu.oom;
	chat_buf_free(&cu);
	mark(b, "<|im_end|>");
	puts_(b, "\n");
}

int
chat_prefix(const struct chat *c, const char *sys, size_t len,
    struct chat_buf *b)
{
	size_t a;

	if (c->tmpl_bos && c->fam != CHAT_LLAMA2)
		mark(b, c->bos);
	switch (c->fam) {
	case CHAT_PLAIN:
		if (sys != NULL) {
			puts_(b, "### System:\n");
			put(b, sys, len);
			puts_(b, "\n");
		}
		break;
	case CHAT_CHATML:
	case CHAT_QWEN25:
		if (sys == NULL && c->fam == CHAT_CHATML)
			break;
		mark(b, "<|im_start|>");
		puts_(b, "system\n");
		if (sys != NULL)
			put(b, sys, len);
		else
			puts_(b, QWEN_SYSTEM);
		mark(b, "<|im_end|>");
		puts_(b, "\n");
		break;
	case CHAT_SMOLLM3:
		smol_prefix(c, sys, len, b);
		break;
	case CHAT_LLAMA3:
	case CHAT_LLAMA31:
		if (sys == NULL && c->fam == CHAT_LLAMA3)
			break;
		mark(b, "<|start_header_id|>");
		puts_(b, "system");
		mark(b, "<|end_header_id|>");
		puts_(b, c->fam == CHAT_LLAMA31 ? LLAMA31_HEAD : "\n\n");
		if (sys != NULL)
			put_trim(b, sys, len);
		mark(b, "<|eot_id|>");
		break;
	case CHAT_LLAMA2:
		/* The system block opens the first user message. */
		if (sys != NULL) {
			mark(b, c->bos);
			puts_(b, "[INST] <<SYS>>\n");
			put(b, sys, len);
			puts_(b, "\n<</SYS>>");
		}
		break;
	case CHAT_MISTRAL:
		/* (The template moves it to the last user message.) */
		if (sys != NULL) {
			mark(b, "[INST]");
			put(b, sys, len);
			puts_(b, "\n\n");
		}
		break;
	case CHAT_PHI3:
		if (sys != NULL && len > 0) {
			mark(b, "<|system|>");
			puts_(b, "\n");
			put(b, sys, len);
			mark(b, "<|end|>");
			puts_(b, "\n");
		}
		break;
	case CHAT_GEMMA:
		/* Gemma has no system role: it opens the first user turn,
		 * trimmed as part of that message. */
		if (sys != NULL) {
			mark(b, "<start_of_turn>");
			puts_(b, "user\n");
			a = lead_ws(sys, len);
			put(b, sys + a, len - a);
		}
		break;
	case CHAT_ZEPHYR:
		if (sys != NULL) {
			mark(b, "<|system|>");
			puts_(b, "\n");
			put(b, sys, len);
			mark(b, c->eos);
			puts_(b, "\n");
		}
		break;
	case CHAT_DEEPSEEK:
		if (sys != NULL)
			put(b, sys, len);
		break;
	}
	return done(b);
}

/* What ends the reply before a user turn. */
static void
close_reply(const struct chat *c, struct chat_buf *b)
{
	switch (c->fam) {
	case CHAT_PLAIN:
		puts_(b, "\n");
		break;
	case CHAT_CHATML:
	case CHAT_QWEN25:
	case CHAT_SMOLLM3:
		mark(b, "<|im_end|>");
		puts_(b, "\n");
		break;
	case CHAT_LLAMA3:
	case CHAT_LLAMA31:
		mark(b, "<|eot_id|>");
		break;
	case CHAT_LLAMA2:
		puts_(b, " ");
		mark(b, c->eos);
		break;
	case CHAT_MISTRAL:
	case CHAT_DEEPSEEK:
		mark(b, c->fam == CHAT_MISTRAL ? c->eos :
		    fams[CHAT_DEEPSEEK].end[0]);
		break;
	case CHAT_PHI3:
		mark(b, "<|end|>");
		puts_(b, "\n");
		break;
	case CHAT_GEMMA:
		mark(b, "<end_of_turn>");
		puts_(b, "\n");
		break;
	case CHAT_ZEPHYR:
		mark(b, c->eos);
		puts_(b, "\n");
		break;
	}
}

/* A gemma or llama2 first turn after a system prompt: the message is
 * "\n\n" + text, stripped on its right (the system prompt is its left). */
static void
merged_tail(const char *text, size_t len, struct chat_buf *b)
{
	struct chat_buf t = { 0 };

	puts_(&t, "\n\n");
	put(&t, text, len);
	if (!t.oom)
		put_rstrip(b, t.text, t.len);
	b->oom |= t.oom;
	chat_buf_free(&t);
}

int
chat_user(const struct chat *c, const char *sys, const char *text,
    size_t len, int first, struct chat_buf *b)
{
	if (!first)
		close_reply(c, b);
	switch (c->fam) {
	case CHAT_PLAIN:
		puts_(b, "### User:\n");
		put(b, text, len);
		puts_(b, "\n### Assistant:\n");
		break;
	case CHAT_CHATML:
	case CHAT_QWEN25:
	case CHAT_SMOLLM3:
		mark(b, "<|im_start|>");
		puts_(b, "user\n");
		put(b, text, len);
		mark(b, "<|im_end|>");
		puts_(b, "\n");
		mark(b, "<|im_start|>");
		puts_(b, "assistant\n");
		if (c->fam == CHAT_SMOLLM3 && !smol_thinks(sys))
			puts_(b, "<think>\n\n</think>\n");
		break;
	case CHAT_LLAMA3:
	case CHAT_LLAMA31:
		mark(b, "<|start_header_id|>");
		puts_(b, "user");
		mark(b, "<|end_header_id|>");
		puts_(b, "\n\n");
		put_trim(b, text, len);
		mark(b, "<|eot_id|>");
		mark(b, "<|start_header_id|>");
		puts_(b, "assistant");
		mark(b, "<|end_header_id|>");
		puts_(b, "\n\n");
		break;
	case CHAT_LLAMA2:
		if (first && sys != NULL)
			merged_tail(text, len, b);
		else {
			mark(b, c->bos);
			puts_(b, "[INST] ");
			put_trim(b, text, len);
		}
		puts_(b, " [/INST]");
		break;
	case CHAT_MISTRAL:
		if (!(first && sys != NULL))
			mark(b, "[INST]");
		put(b, text, len);
		mark(b, "[/INST]");
		break;
	case CHAT_PHI3:
		mark(b, "<|user|>");
		puts_(b, "\n");
		put(b, text, len);
		mark(b, "<|end|>");
		puts_(b, "\n");
		mark(b, "<|assistant|>");
		puts_(b, "\n");
		break;
	case CHAT_GEMMA:
		if (first && sys != NULL && lead_ws(sys, strlen(sys)) <
		    strlen(sys))
			merged_tail(text, len, b);
		else {
			if (!(first && sys != NULL)) {
				mark(b, "<start_of_turn>");
				puts_(b, "user\n");
			}
			put_trim(b, text, len);
		}
		mark(b, "<end_of_turn>");
		puts_(b, "\n");
		mark(b, "<start_of_turn>");
		puts_(b, "model\n");
		break;
	case CHAT_ZEPHYR:
		mark(b, "<|user|>");
		puts_(b, "\n");
		put(b, text, len);
		mark(b, c->eos);
		puts_(b, "\n");
		mark(b, "<|assistant|>");
		puts_(b, "\n");
		break;
	case CHAT_DEEPSEEK:
		mark(b, DS_USER);
		put(b, text, len);
		mark(b, DS_ASSISTANT);
		puts_(b, "<think>\n</think>");
		break;
	}
	return done(b);
}

int
chat_reply(const struct chat *c, const char *text, size_t len,
    struct chat_buf *b)
{
	const char *p, *q;

	switch (c->fam) {
	case CHAT_LLAMA3:
	case CHAT_LLAMA31:
	case CHAT_GEMMA:
		put_trim(b, text, len);
		break;
	case CHAT_LLAMA2:
		puts_(b, " ");
		put_trim(b, text, len);
		break;
	case CHAT_SMOLLM3:
		while (len > 0 && *text == '\n') {
			text++;
			len--;
		}
		put(b, text, len);
		break;
	case CHAT_DEEPSEEK:
		/* Only what follows the last </think> stays in history. */
		for (p = text; (q = memmem(p, len - (size_t)(p - text),
		    "</think>", 8)) != NULL; p = q + 8)
			;
		put(b, p, len - (size_t)(p - text));
		break;
	default:
		put(b, text, len);
		break;
	}
	return done(b);
}

int
chat_tok_bos(const struct chat *c, const struct tok *tk)
{
	return !c->tmpl_bos && tok_add_bos(tk) && tok_bos(tk) >= 0;
}

size_t
chat_stops(const struct chat *c, const char **v)
{
	size_t n = 0, i;

	if (c->fam == CHAT_PLAIN) {
		v[n++] = "\n### User:";
		return n;
	}
	for (i = 0; i < 2 && fams[c->fam].end[i] != NULL; i++)
		v[n++] = fams[c->fam].end[i];
	if (c->eos[0] != '\0')
		v[n++] = c->eos;
	return n;
}
