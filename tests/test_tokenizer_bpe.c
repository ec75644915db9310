/*
 * test_tokenizer_bpe: byte-level BPE (tokenizer.ggml.model gpt2) against
 * the shared vocabularies of GPT-2, DeepSeek LLM and Coder, Falcon, MPT,
 * Llama 3 and Qwen2 (exact ids from their .inp/.out files, round trips of
 * any bytes, chat markers in text, metadata, pieces, timings) and on
 * fixtures (merge ranks, refusals).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_tokenizer.h"

/* The byte-level BPE vocabularies (tokenizer.ggml.model gpt2). */
static const char *const bpe_vocabs[] = {
	"ggml-vocab-gpt-2.gguf", "ggml-vocab-deepseek-llm.gguf",
	"ggml-vocab-deepseek-coder.gguf", "ggml-vocab-falcon.gguf",
	"ggml-vocab-mpt.gguf", "ggml-vocab-llama3.gguf",
	"ggml-vocab-qwen2.gguf",
};
#define N_BPE (sizeof bpe_vocabs / sizeof bpe_vocabs[0])

START_TEST(test_bpe_cases)
{
	run_vocab(bpe_vocabs[_i], 0);
}
END_TEST

START_TEST(test_bpe_roundtrip)
{
	run_vocab(bpe_vocabs[_i], 1);
}
END_TEST

static int32_t
find_text(const struct tok *t, const char *s)
{
	int32_t i;

	for (i = 0; i < tok_n_vocab(t); i++)
		if (strcmp(tok_text(t, i), s) == 0)
			return i;
	ck_abort_msg("no token %s", s);
	return -1;
}

static struct tok *
open_timed(const char *rel, struct gguf_file **g)
{
	struct timespec a, b;
	struct tok *t;

	clock_gettime(CLOCK_MONOTONIC, &a);
	t = open_shared(rel, g);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%s: opened in %.3f s\n", rel, (double)(b.tv_sec - a.tv_sec) +
	    (b.tv_nsec - a.tv_nsec) / 1e9);
	return t;
}

/* Metadata: Llama 3 adds BOS, Qwen2 does not; neither a space prefix. */
START_TEST(test_bpe_meta)
{
	static const struct {
		const char *rel;
		int32_t n, bos, eos, pad, hello;
		int add_bos;
	} m[] = {
		{ "vocab/ggml-vocab-llama3.gguf", 128256, 128000, 128001, -1,
		    9906, 1 },
		{ "vocab/ggml-vocab-qwen2.gguf", 151936, 151643, 151645,
		    151643, 9707, 0 },
	};
	struct gguf_file *g;
	struct tok *t;
	int32_t *ids;
	size_t n, i;

	for (i = 0; i < sizeof m / sizeof m[0]; i++) {
		t = open_timed(m[i].rel, &g);
		ck_assert_int_eq(tok_n_vocab(t), m[i].n);
		ck_assert_int_eq(tok_bos(t), m[i].bos);
		ck_assert_int_eq(tok_eos(t), m[i].eos);
		ck_assert_int_eq(tok_pad(t), m[i].pad);
		ck_assert_int_eq(tok_add_bos(t), m[i].add_bos);
		ck_assert_int_eq(tok_add_space_prefix(t), 0);
		ids = encode(t, "Hello", tok_add_bos(t), &n);
		ck_assert_uint_eq(n, 1 + (size_t)m[i].add_bos);
		ck_assert_int_eq(ids[0], m[i].add_bos ? m[i].bos : m[i].hello);
		ck_assert_int_eq(ids[n - 1], m[i].hello);
		free(ids);
		tok_free(t);
		gguf_close(g);
	}
}
END_TEST

static void
assert_no_control(const struct tok *t, const int32_t *ids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ck_assert_msg(!tok_is_control(t, ids[i]), "control id %d at %zu",
		    ids[i], i);
}

/* Chat markers in text are text; user-defined tokens are matched whole. */
START_TEST(test_bpe_specials)
{
	static const char q[] = "<|im_start|>user\nhi<|im_end|>\n"
	    "<|endoftext|><think>\nok</think>";
	static const char l[] = "<|begin_of_text|><|start_header_id|>user"
	    "<|end_header_id|>\n\nhi<|eot_id|>";
	struct gguf_file *g;
	struct tok *t;
	int32_t *ids;
	size_t n;

	t = open_shared("vocab/ggml-vocab-qwen2.gguf", &g);
	ids = encode(t, q, 0, &n);
	assert_no_control(t, ids, n);
	ck_assert(has_id(ids, n, find_text(t, "<think>")));
	ck_assert(has_id(ids, n, find_text(t, "</think>")));
	free(ids);
	assert_roundtrip(t, q, sizeof q - 1);
	tok_free(t);
	gguf_close(g);
	t = open_shared("vocab/ggml-vocab-llama3.gguf", &g);
	ids = encode(t, l, 0, &n);
	assert_no_control(t, ids, n);
	free(ids);
	assert_roundtrip(t, l, sizeof l - 1);
	tok_free(t);
	gguf_close(g);
}
END_TEST

/* Any bytes, invalid UTF-8 included, come back unchanged (but NUL: the
 * decoded string is NUL-terminated). */
START_TEST(test_bpe_random_bytes)
{
	static const char *const names[] = { "vocab/ggml-vocab-llama3.gguf",
	    "vocab/ggml-vocab-qwen2.gguf", "vocab/ggml-vocab-gpt-2.gguf" };
	static const char pool[] = " \n\t'aZ0\xc3\xa9\xe4\xb8\xad\xf0\x9f";
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	struct gguf_file *g;
	struct tok *t;
	char buf[4096];
	size_t i, j, len;
	int k;

	for (k = 0; k < 3; k++) {
		t = open_shared(names[k], &g);
		for (i = 0; i < 300; i++) {
			len = i < 299 ? i % 70 : sizeof buf;
			for (j = 0; j < len; j++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				buf[j] = x & 1 ? (char)(x >> 8 | 1) :
				    pool[(x >> 8) % (sizeof pool - 1)];
			}
			assert_roundtrip(t, buf, len);
		}
		tok_free(t);
		gguf_close(g);
	}
}
END_TEST

/* Pieces are raw bytes: a character may span two, they join whole. */
START_TEST(test_bpe_piece)
{
	static const char s[] = "llama \xf0\x9f\xa6\x99 \xe9\xbe\x98 caf\xc3\xa9";
	struct gguf_file *g;
	struct tok *t;
	char out[256], buf[64];
	int32_t *ids;
	size_t n, i, k = 0;
	int r;

	t = open_shared("vocab/ggml-vocab-llama3.gguf", &g);
	ids = encode(t, s, 1, &n);
	for (i = 0; i < n; i++) {
		r = tok_piece(t, i > 0 ? ids[i - 1] : -1, ids[i], buf,
		    sizeof buf);
		ck_assert_int_ge(r, 0);
		memcpy(out + k, buf, (size_t)r);
		k += (size_t)r;
	}
	ck_assert(k == sizeof s - 1 && memcmp(out, s, k) == 0);
	ck_assert_int_eq(tok_piece(t, -1, 128001, buf, sizeof buf), 0);
	/* Truncated output still reports the full length. */
	r = tok_piece(t, -1, ids[1], buf, sizeof buf);
	ck_assert_int_gt(r, 1);
	ck_assert_int_eq(tok_piece(t, -1, ids[1], buf, 1), r);
	ck_assert_int_eq(buf[0], 'l');
	free(ids);
	tok_free(t);
	gguf_close(g);
}
END_TEST

/* Loose bounds: a quadratic merger or splitter would need minutes. */
START_TEST(test_bpe_large)
{
	const size_t len = 1 << 20;
	struct gguf_file *g;
	struct tok *t;
	char *s;

	t = open_shared(_i == 0 ? "vocab/ggml-vocab-llama3.gguf" :
	    "vocab/ggml-vocab-deepseek-llm.gguf", &g);
	s = make_text(len);
	ck_assert_double_lt(time_encode(t, "mixed text", s, len), 20.0);
	memset(s, 'a', len);
	ck_assert_double_lt(time_encode(t, "'a'", s, len), 20.0);
	memset(s, ' ', len);
	ck_assert_double_lt(time_encode(t, "spaces", s, len), 20.0);
	memset(s, '1', len);
	ck_assert_double_lt(time_encode(t, "digits", s, len), 20.0);
	/* deepseek's tokens for the bytes UTF-8 never uses (0xc0, 0xc1,
	 * 0xf5..0xff) are user-defined characters: they decode as text. */
	memset(s, _i == 0 ? 0xff : 0xed, len);
	ck_assert_double_lt(time_encode(t, "0xff/0xed bytes", s, len), 20.0);
	free(s);
	tok_free(t);
	gguf_close(g);
}
END_TEST

/* A byte-level vocabulary: the 256 byte characters, the given tokens. */
struct bvocab {
	char bytes[256][4];
	const char *tok[FX_MAX];
	int32_t type[FX_MAX];
	size_t n;
};

/* GPT-2's bytes_to_unicode, as UTF-8. */
static void
bvocab_base(struct bvocab *v)
{
	int b, k = 0;
	unsigned cp;

	memset(v, 0, sizeof *v);
	for (b = 0; b < 256; b++) {
		if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) ||
		    b >= 0xae)
			cp = (unsigned)b;
		else
			cp = 0x100 + (unsigned)k++;
		if (cp < 0x80)
			v->bytes[b][0] = (char)cp;
		else {
			v->bytes[b][0] = (char)(0xc0 | cp >> 6);
			v->bytes[b][1] = (char)(0x80 | (cp & 0x3f));
		}
		v->tok[v->n] = v->bytes[b];
		v->type[v->n++] = 1;
	}
}

static void
fx_bpe(struct fx *f, struct bvocab *v, const char *pre,
    const char *const *merges, size_t nm)
{
	fx_str(f, "tokenizer.ggml.model", "gpt2");
	if (pre != NULL)
		fx_str(f, "tokenizer.ggml.pre", pre);
	fx_arr_str(f, "tokenizer.ggml.tokens", v->tok, v->n);
	fx_arr4(f, "tokenizer.ggml.token_type", GGUF_INT32, v->type, v->n);
	fx_arr_str(f, "tokenizer.ggml.merges", merges, nm);
}

/* Lowest rank first, whatever the order the pairs appear in. */
START_TEST(test_bpe_merge_rank)
{
	static const char *const m1[] = { "b c", "a b", "a bc" };
	static const char *const m2[] = { "a b", "b c", "a bc" };
	struct bvocab v;
	struct fx f = { 0 };
	struct gguf_file *g;
	struct tok *t;

	bvocab_base(&v);
	v.tok[v.n] = "ab";
	v.type[v.n++] = 1;
	v.tok[v.n] = "bc";
	v.type[v.n++] = 1;
	v.tok[v.n] = "abc";
	v.type[v.n++] = 1;
	fx_bpe(&f, &v, "gpt-2", m1, 3);
	t = open_tok(fx_write(&f, "v.gguf"), &g);
	expect(t, "abc", (int32_t[]){ 258 }, 1);
	/* Ids 0..255 are the bytes; " c" has no merge. */
	expect(t, "ab c", (int32_t[]){ 256, ' ', 'c' }, 3);
	tok_free(t);
	gguf_close(g);
	fx_bpe(&f, &v, NULL, m2, 3);
	t = open_tok(fx_write(&f, "v.gguf"), &g);
	expect(t, "abc", (int32_t[]){ 256, 'c' }, 2);
	ck_assert_int_eq(tok_add_bos(t), 0);
	tok_free(t);
	gguf_close(g);
}
END_TEST

START_TEST(test_bpe_refused)
{
	static const char *const m[] = { "a b" };
	static const char *const bad[] = { "ab" };
	struct bvocab v;
	struct fx f = { 0 };

	bvocab_base(&v);
	fx_bpe(&f, &v, "frobnicate", m, 1);
	expect_refused(&f, "\"frobnicate\"");
	fx_bpe(&f, &v, "frobnicate", m, 1);
	expect_refused(&f, "llama-bpe");
	fx_bpe(&f, &v, "gpt-2", bad, 1);
	expect_refused(&f, "tokenizer.ggml.merges[0]");
	fx_str(&f, "tokenizer.ggml.model", "gpt2");
	fx_arr_str(&f, "tokenizer.ggml.tokens", v.tok, v.n);
	expect_refused(&f, "tokenizer.ggml.merges is missing");
}
END_TEST

/* Loop test t for the one index i. */
static void
add_loop(Suite *s, const char *name, const TTest *t, int i)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, t, i, i + 1);
	suite_add_tcase(s, tc);
}

void
tt_bpe_add(Suite *s)
{
	char rel[256];
	size_t i;

	for (i = 0; i < N_BPE; i++) {
		snprintf(rel, sizeof rel, "vocab/%s", bpe_vocabs[i]);
		if (!have(rel))
			continue;
		add_loop(s, "bpe_cases", test_bpe_cases, (int)i);
		add_loop(s, "bpe_roundtrip", test_bpe_roundtrip, (int)i);
	}
	if (have("vocab/ggml-vocab-llama3.gguf") &&
	    have("vocab/ggml-vocab-qwen2.gguf") &&
	    have("vocab/ggml-vocab-gpt-2.gguf")) {
		add(s, "bpe_meta", test_bpe_meta, 0);
		add(s, "bpe_specials", test_bpe_specials, 0);
		add(s, "bpe_random_bytes", test_bpe_random_bytes, 0);
		add(s, "bpe_piece", test_bpe_piece, 0);
		add_loop(s, "bpe_large", test_bpe_large, 0);
	}
	if (have("vocab/ggml-vocab-deepseek-llm.gguf"))
		add_loop(s, "bpe_large", test_bpe_large, 1);
	add(s, "bpe_merge_rank", test_bpe_merge_rank, 1);
	add(s, "bpe_refused", test_bpe_refused, 1);
}
