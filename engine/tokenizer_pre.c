/*
 * tokenizer_pre: the pre-tokenizers of byte-level BPE models, which cut
 * text into words before merges run (merges never cross a word).  Each
 * `tokenizer.ggml.pre` name is one table entry: a list of passes, each a
 * hand-written matcher for one of the regular expressions the model's
 * tokenizer.json (as llama.cpp adapts it) applies in turn.  A pass runs
 * over every fragment the previous pass left, on its own (a fragment's
 * end is the end of the text to it, for `$` and `(?!\S)`): the matches
 * and the unmatched gaps between them are the next fragments.  Regex
 * alternation is first-match, not longest, and the matchers follow the
 * order of the alternatives.
 *
 * \p{L}, \p{N}, \p{P} and \s are Unicode classes (unicode.h); the explicit
 * character ranges of the deepseek patterns are copied as facts.  Those
 * patterns run in llama.cpp on code points where any non-ASCII White_Space
 * character was first replaced by U+000B, so such characters never fall
 * in a range, only in \s.
 */
#include "tokenizer_int.h"

#include <stdio.h>
#include <string.h>

#include "unicode.h"

struct pre_in {
	const uint32_t *cp;
	const uint8_t *cls;
};

/* Length of the match at pos, 0 for none; *skip: positions known not to
 * match from pos on (set only with 0, default 1). */
typedef size_t pre_fn(const struct pre_in *, size_t pos, size_t end,
    size_t *skip);

struct tok_pre {
	const char *name;
	pre_fn *const *pass; /* NULL-terminated */
	int ignore_merges;   /* a word that is a token is not merged */
	int add_bos;	     /* default for tokenizer.ggml.add_bos_token */
};

typedef uint32_t range[2];

/* deepseek-llm's letters: its pattern's list, cased letters mostly. */
static const range ds_letters[] = {
	{ 0x41, 0x5a }, { 0x61, 0x7a }, { 0xb5, 0xb5 }, { 0xc0, 0xd6 },
	{ 0xd8, 0xf6 }, { 0xf8, 0x1ba }, { 0x1bc, 0x1bf }, { 0x1c4, 0x293 },
	{ 0x295, 0x2af }, { 0x370, 0x373 }, { 0x376, 0x377 },
	{ 0x37b, 0x37d }, { 0x37f, 0x37f }, { 0x386, 0x386 },
	{ 0x388, 0x38a }, { 0x38c, 0x38c }, { 0x38e, 0x3a1 },
	{ 0x3a3, 0x3f5 }, { 0x3f7, 0x481 }, { 0x48a, 0x52f },
	{ 0x531, 0x556 }, { 0x10a0, 0x10c5 }, { 0x13a0, 0x13f5 },
	{ 0x13f8, 0x13fd }, { 0x1c90, 0x1cba }, { 0x1cbd, 0x1cbf },
	{ 0x1d00, 0x1d2b }, { 0x1d6b, 0x1d77 }, { 0x1d79, 0x1d9a },
	{ 0x1e00, 0x1f15 }, { 0x1f18, 0x1f1d }, { 0x1f20, 0x1f45 },
	{ 0x1f48, 0x1f4d }, { 0x1f50, 0x1f57 }, { 0x1f59, 0x1f59 },
	{ 0x1f5b, 0x1f5b }, { 0x1f5d, 0x1f5d }, { 0x1f5f, 0x1f7d },
	{ 0x1f80, 0x1fb4 }, { 0x1fb6, 0x1fbc }, { 0x1fbe, 0x1fbe },
	{ 0x1fc2, 0x1fc4 }, { 0x1fc6, 0x1fcc }, { 0x1fd0, 0x1fd3 },
	{ 0x1fd6, 0x1fdb }, { 0x1fe0, 0x1fec }, { 0x1ff2, 0x1ff4 },
	{ 0x1ff6, 0x1ffc }, { 0x2102, 0x2102 }, { 0x2107, 0x2107 },
	{ 0x210a, 0x2113 }, { 0x2115, 0x2115 }, { 0x2119, 0x211d },
	{ 0x2124, 0x2124 }, { 0x2126, 0x2126 }, { 0x2128, 0x2128 },
	{ 0x212a, 0x212d }, { 0x212f, 0x2134 }, { 0x2139, 0x2139 },
	{ 0x213c, 0x213f }, { 0x2145, 0x2149 }, { 0x214e, 0x214e },
	{ 0x2183, 0x2184 }, { 0x2c00, 0x2c7b }, { 0x2c7e, 0x2ce4 },
	{ 0x2ceb, 0x2cee }, { 0x2cf2, 0x2cf3 }, { 0xa640, 0xa66d },
	{ 0xa680, 0xa69b }, { 0xa722, 0xa76f }, { 0xa771, 0xa787 },
	{ 0xa78b, 0xa78e }, { 0xab70, 0xabbf }, { 0xfb00, 0xfb06 },
	{ 0xfb13, 0xfb17 }, { 0xff21, 0xff3a }, { 0xff41, 0xff5a },
	{ 0x10400, 0x1044f }, { 0x104b0, 0x104d3 }, { 0x104d8, 0x104fb },
	{ 0x10c80, 0x10cb2 }, { 0x10cc0, 0x10cf2 }, { 0x118a0, 0x118df },
	{ 0x1e900, 0x1e943 },
};

/* [!-/:-~！-／：-～‘-‟　-。]: ASCII but digits, full-width forms,
 * quotation marks, CJK punctuation (U+3000 is a space, see above). */
static const range ds_punct[] = {
	{ 0x21, 0x2f }, { 0x3a, 0x7e }, { 0x2018, 0x201f },
	{ 0x3001, 0x3002 }, { 0xff01, 0xff0f }, { 0xff1a, 0xff5e },
};

/* [一-龥ࠀ-一가-퟿]: U+0800..U+9FA5 and Hangul syllables to U+D7FF. */
static const range cjk[] = {
	{ 0x800, 0x9fa5 }, { 0xac00, 0xd7ff },
};

#define NRANGE(r) (sizeof(r) / sizeof((r)[0]))

static int
in_ranges(const range *r, size_t n, uint32_t cp)
{
	size_t lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (cp < r[mid][0])
			hi = mid;
		else if (cp > r[mid][1])
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

static int
is_other(uint8_t c)
{
	return c != UC_SPACE && c != UC_LETTER && c != UC_NUMBER;
}

static int
is_nl(uint32_t cp)
{
	return cp == '\r' || cp == '\n';
}

/* Characters of class c from pos on. */
static size_t
run_of(const struct pre_in *in, size_t pos, size_t end, uint8_t c)
{
	size_t p = pos;

	while (p < end && in->cls[p] == c)
		p++;
	return p - pos;
}

/* 's|'t|'re|'ve|'m|'ll|'d, ASCII case-insensitive with fold. */
static size_t
contraction(const struct pre_in *in, size_t pos, size_t end, int fold)
{
	uint32_t a, b;

	if (in->cp[pos] != '\'' || pos + 1 >= end)
		return 0;
	a = in->cp[pos + 1];
	if (fold && a >= 'A' && a <= 'Z')
		a += 'a' - 'A';
	if (a == 's' || a == 't' || a == 'm' || a == 'd')
		return 2;
	if (pos + 2 >= end)
		return 0;
	b = in->cp[pos + 2];
	if (fold && b >= 'A' && b <= 'Z')
		b += 'a' - 'A';
	if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') ||
	    (a == 'l' && b == 'l'))
		return 3;
	return 0;
}

/* \s+(?!\S)|\s+ at pos; 0 when pos is no space. */
static size_t
spaces(const struct pre_in *in, size_t pos, size_t end)
{
	size_t k = run_of(in, pos, end, UC_SPACE);

	/* The last space goes with the word that follows. */
	if (k > 1 && pos + k < end)
		return k - 1;
	return k;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|
 * \s+(?!\S)|\s+ */
static size_t
m_gpt2(const struct pre_in *in, size_t pos, size_t end, size_t *skip)
{
	size_t q = pos, k;
	uint8_t c;

	(void)skip;
	if ((k = contraction(in, pos, end, 0)) > 0)
		return k;
	if (in->cp[pos] == ' ' && pos + 1 < end)
		q = pos + 1;
	c = in->cls[q];
	if (c == UC_LETTER || c == UC_NUMBER)
		return q - pos + run_of(in, q, end, c);
	if (is_other(c)) {
		k = q + 1;
		while (k < end && is_other(in->cls[k]))
			k++;
		return k - pos;
	}
	k = spaces(in, pos, end);
	return k > 0 ? k : 1;
}

/* Llama 3 and Qwen2: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|
 * \p{N}{1,ndig}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t
llama3(const struct pre_in *in, size_t pos, size_t end, size_t ndig)
{
	const uint32_t *cp = in->cp;
	const uint8_t *cl = in->cls;
	size_t k, q, nl = 0;

	if ((k = contraction(in, pos, end, 1)) > 0)
		return k;
	if (!is_nl(cp[pos]) && cl[pos] != UC_NUMBER && (cl[pos] == UC_LETTER ||
	    (pos + 1 < end && cl[pos + 1] == UC_LETTER)))
		return 1 + run_of(in, pos + 1, end, UC_LETTER);
	if (cl[pos] == UC_NUMBER) {
		for (k = 1; k < ndig && pos + k < end && cl[pos + k] == UC_NUMBER;
		    k++)
			;
		return k;
	}
	q = cp[pos] == ' ' ? pos + 1 : pos;
	if (q < end && is_other(cl[q])) {
		for (k = q + 1; k < end && is_other(cl[k]); k++)
			;
		while (k < end && is_nl(cp[k]))
			k++;
		return k - pos;
	}
	for (k = pos; k < end && cl[k] == UC_SPACE; k++)
		if (is_nl(cp[k]))
			nl = k + 1;
	if (nl > 0)
		return nl - pos; /* \s*[\r\n]+ ends at the last line break */
	k = spaces(in, pos, end);
	return k > 0 ? k : 1;
}

static size_t
m_llama3(const struct pre_in *in, size_t pos, size_t end, size_t *skip)
{
	(void)skip;
	return llama3(in, pos, end, 3);
}

static size_t
m_qwen2(const struct pre_in *in, size_t pos, size_t end, size_t *skip)
{
	(void)skip;
	return llama3(in, pos, end, 1);
}

/* \p{N} */
static size_t
m_digit(const struct pre_in *in, size_t pos, size_t end, size_t *skip)
{
	(void)end;
	(void)skip;
	return in->cls[pos] == UC_NUMBER;
}

/* \p{N}+ */
static size_t
m_digits(const struct pre_in *in, size_t pos, size_t end, size_t *skip)
{
	(void)skip;
	return run_of(in, pos, end, UC_NUMBER);
}

/* [0-9][0-9][0-9] */
static size_t
m_digits3(const struct pre_in *in, size_t pos, size_t end, size_t *skip)
{
	size_t k;

	for (k = 0; k < 3; k++)
		if (pos + k >= end || in->cp[pos + k] < '0' ||
		    in->cp[pos + k] > '9')
			return 0;
	(void)skip;
	return 3;
}

/* [\p{P}\$\+<=>\^~\|`]+ */
static size_t
m_falcon_punct(const struct pre_in *in, size_t pos, size_t end,
    size_t *skip)
{
	size_t k = pos;

	(void)skip;
	while (k < end && (in->cls[k] == UC_PUNCT || (in->cp[k] != 0 &&
	    in->cp[k] < 0x80 && strchr("$+<=>^~|`", (int)in->cp[k]) != NULL)))
		k++;
	return k - pos;
}

/* [\r\n] */
static size_t
m_newline(const struct pre_in *in, size_t pos, size_t end, size_t *skip)
{
	(void)end;
	(void)skip;
	return is_nl(in->cp[pos]);
}

/* \s?X+ for a set X given as ranges (rs) or as a class (c >= 0). */
static size_t
space_run(const struct pre_in *in, size_t pos, size_t end, const range *rs,
    size_t nr, int c)
{
	size_t k = pos;

#define IN_SET(i) (c >= 0 ? in->cls[i] == c : \
    in->cls[i] != UC_SPACE && in_ranges(rs, nr, in->cp[i]))
	if (in->cls[k] == UC_SPACE && k + 1 < end && IN_SET(k + 1))
		k++;
	while (k < end && IN_SET(k))
		k++;
#undef IN_SET
	return k - pos;
}

static size_t
m_ds_letters(const struct pre_in *in, size_t pos, size_t end, size_t *skip)
{
	(void)skip;
	return space_run(in, pos, end, ds_letters, NRANGE(ds_letters), -1);
}

static size_t
m_ds_punct(const struct pre_in *in, size_t pos, size_t end, size_t *skip)
{
	(void)skip;
	return space_run(in, pos, end, ds_punct, NRANGE(ds_punct), -1);
}

/* \s?\p{L}+ */
static size_t
m_letters(const struct pre_in *in, size_t pos, size_t end, size_t *skip)
{
	(void)skip;
	return space_run(in, pos, end, NULL, 0, UC_LETTER);
}

/* \s?\p{P}+ */
static size_t
m_punct(const struct pre_in *in, size_t pos, size_t end, size_t *skip)
{
	(void)skip;
	return space_run(in, pos, end, NULL, 0, UC_PUNCT);
}

/* [一-龥ࠀ-一가-퟿]+ */
static size_t
m_cjk(const struct pre_in *in, size_t pos, size_t end, size_t *skip)
{
	size_t k = pos;

	(void)skip;
	while (k < end && in->cls[k] != UC_SPACE &&
	    in_ranges(cjk, NRANGE(cjk), in->cp[k]))
		k++;
	return k - pos;
}

/* \s+$: spaces up to the end; none of a run that stops short does. */
static size_t
m_trailing_space(const struct pre_in *in, size_t pos, size_t end,
    size_t *skip)
{
	size_t k = run_of(in, pos, end, UC_SPACE);

	if (k > 0 && pos + k == end)
		return k;
	*skip = k > 0 ? k : 1;
	return 0;
}

static pre_fn *const p_gpt2[] = { m_gpt2, NULL };
static pre_fn *const p_llama3[] = { m_llama3, NULL };
static pre_fn *const p_qwen2[] = { m_qwen2, NULL };
static pre_fn *const p_starcoder[] = { m_digit, m_gpt2, NULL };
static pre_fn *const p_falcon[] = { m_falcon_punct, m_gpt2, m_digits3,
	NULL };
static pre_fn *const p_ds_llm[] = { m_newline, m_ds_letters, m_ds_punct,
	m_trailing_space, m_cjk, m_digits, NULL };
static pre_fn *const p_ds_coder[] = { m_newline, m_letters, m_punct, m_cjk,
	m_digit, NULL };

/* gpt-neox is not a name llama.cpp's converter writes: its models get
 * "mpt", whose rules it has. */
static const struct tok_pre pres[] = {
	{ "gpt-2", p_gpt2, 0, 0 },
	{ "llama-bpe", p_llama3, 1, 1 },
	{ "qwen2", p_qwen2, 0, 0 },
	{ "smollm", p_starcoder, 0, 0 },
	{ "starcoder", p_starcoder, 0, 0 },
	{ "deepseek-llm", p_ds_llm, 0, 0 },
	{ "deepseek-coder", p_ds_coder, 0, 0 },
	{ "falcon", p_falcon, 0, 0 },
	{ "mpt", p_gpt2, 0, 0 },
	{ "gpt-neox", p_gpt2, 0, 0 },
};

#define NPRE (sizeof pres / sizeof pres[0])

const struct tok_pre *
tok_pre_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < NPRE; i++)
		if (strlen(pres[i].name) == len &&
		    memcmp(pres[i].name, name, len) == 0)
			return &pres[i];
	return NULL;
}

void
tok_pre_names(char *buf, size_t cap)
{
	size_t i, k = 0;
	int r;

	buf[0] = '\0';
	for (i = 0; i < NPRE && k < cap; i++) {
		r = snprintf(buf + k, cap - k, "%s%s", i > 0 ? ", " : "",
		    pres[i].name);
		if (r < 0)
			break;
		k += (size_t)r;
	}
}

int
tok_pre_ignore_merges(const struct tok_pre *p)
{
	return p->ignore_merges;
}

int
tok_pre_add_bos(const struct tok_pre *p)
{
	return p->add_bos;
}

/* One pass over the fragments ending at a[0..na): their pieces to b. */
static size_t
split_pass(pre_fn *f, const struct pre_in *in, const uint32_t *a,
    size_t na, uint32_t *b)
{
	size_t i, nb = 0, start = 0, end, pos, gap, k, skip;

	for (i = 0; i < na; i++) {
		end = a[i];
		for (pos = gap = start; pos < end;) {
			skip = 1;
			if ((k = f(in, pos, end, &skip)) == 0) {
				pos += skip;
				continue;
			}
			if (pos > gap)
				b[nb++] = (uint32_t)pos;
			pos += k;
			b[nb++] = (uint32_t)pos;
			gap = pos;
		}
		if (end > gap)
			b[nb++] = (uint32_t)end;
		start = end;
	}
	return nb;
}

size_t
tok_pre_split(const struct tok_pre *p, const uint32_t *cp,
    const uint8_t *cls, size_t n, uint32_t *a, uint32_t *b, uint32_t **ends)
{
	struct pre_in in = { cp, cls };
	pre_fn *const *f;
	uint32_t *t;
	size_t na = 1;

	a[0] = (uint32_t)n;
	for (f = p->pass; *f != NULL; f++) {
		na = split_pass(*f, &in, a, na, b);
		t = a;
		a = b;
		b = t;
	}
	*ends = a;
	return n == 0 ? 0 : na;
}
