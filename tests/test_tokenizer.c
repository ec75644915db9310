/*
 * test_tokenizer: the SentencePiece tokenizer against the shared test
 * vocabularies (exact ids from their .inp/.out files), the real
 * stories260K model, and small vocabularies written at test time to pin
 * down merge order, unused pieces, user-defined pieces, byte and unknown
 * fallback and metadata validation; the helpers both files use (see
 * test_tokenizer.h) and main.  Byte-level BPE: test_tokenizer_bpe.c.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "tokenizer.h"
#include "test_tokenizer.h"

#define SEP "__ggml_vocab_test__"
#define WS "\xe2\x96\x81"
#define MAX_CASES 256

char shared[4096];

/* Fixture directory for the current test process. */
char fxdir[4096];

struct cases {
	char *inp, *out;
	size_t n;
	const char *s[MAX_CASES];
	size_t len[MAX_CASES];
	char *ids[MAX_CASES]; /* line of the .out file */
};

static char *
slurp(const char *path, size_t *len)
{
	FILE *f;
	char *buf;
	long n;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Strings end at a separator line; the newline before it is not theirs. */
static void
parse_inp(struct cases *c, char *buf, size_t len)
{
	size_t p, start = 0, sl = strlen(SEP);

	for (p = 0; p + sl <= len; p++) {
		if ((p > 0 && buf[p - 1] != '\n') ||
		    memcmp(buf + p, SEP, sl) != 0 ||
		    (p + sl < len && buf[p + sl] != '\n'))
			continue;
		ck_assert_uint_lt(c->n, MAX_CASES);
		c->s[c->n] = buf + start;
		c->len[c->n++] = p > start ? p - 1 - start : 0;
		start = p + sl + 1;
		p += sl;
	}
}

static void
parse_out(struct cases *c, char *buf, size_t *nlines)
{
	char *line = buf, *nl;

	*nlines = 0;
	while (*line != '\0') {
		ck_assert_uint_lt(*nlines, MAX_CASES);
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		c->ids[(*nlines)++] = line;
		if (nl == NULL)
			break;
		line = nl + 1;
	}
}

static void
load_cases(struct cases *c, const char *name)
{
	char path[8192];
	size_t len, nlines;

	memset(c, 0, sizeof *c);
	snprintf(path, sizeof path, "%s/vocab/%s.inp", shared, name);
	c->inp = slurp(path, &len);
	ck_assert_msg(c->inp != NULL, "cannot read %s", path);
	parse_inp(c, c->inp, len);
	snprintf(path, sizeof path, "%s/vocab/%s.out", shared, name);
	c->out = slurp(path, &len);
	ck_assert_msg(c->out != NULL, "cannot read %s", path);
	parse_out(c, c->out, &nlines);
	ck_assert_uint_eq(nlines, c->n);
	ck_assert_uint_ge(c->n, 40);
}

static size_t
parse_ids(const char *line, int32_t *ids, size_t cap)
{
	char *end;
	size_t n = 0;
	long v;

	for (;;) {
		v = strtol(line, &end, 10);
		if (end == line)
			return n;
		ck_assert_uint_lt(n, cap);
		ids[n++] = (int32_t)v;
		line = end;
	}
}

struct tok *
open_tok(const char *path, struct gguf_file **g)
{
	char cause[ERR_LEN] = "";
	struct tok *t;

	*g = gguf_open(path, cause);
	ck_assert_msg(*g != NULL, "gguf_open %s: %s", path, cause);
	t = tok_open(*g, cause);
	ck_assert_msg(t != NULL, "tok_open %s: %s", path, cause);
	return t;
}

struct tok *
open_shared(const char *rel, struct gguf_file **g)
{
	char path[8192];

	snprintf(path, sizeof path, "%s/%s", shared, rel);
	return open_tok(path, g);
}

void
print_ids(const char *what, const int32_t *ids, size_t n)
{
	size_t i;

	fprintf(stderr, "  %s:", what);
	for (i = 0; i < n; i++)
		fprintf(stderr, " %d", ids[i]);
	fprintf(stderr, "\n");
}

/* 1 when s encodes to exactly the ids on the .out line. */
static int
check_case(const struct tok *t, const char *s, size_t len, const char *line)
{
	int32_t want[4096], *got;
	size_t nwant, ngot;
	char cause[ERR_LEN];
	int ok;

	nwant = parse_ids(line, want, 4096);
	ck_assert_msg(tok_encode(t, s, len, 0, &got, &ngot, cause) == 0,
	    "encode: %s", cause);
	ok = ngot == nwant &&
	    (nwant == 0 || memcmp(got, want, nwant * sizeof *got) == 0);
	if (!ok) {
		fprintf(stderr, "MISMATCH for \"%.*s\"\n", (int)len, s);
		print_ids("expected", want, nwant);
		print_ids("got     ", got, ngot);
	}
	free(got);
	return ok;
}

/* decode(encode(s)) == s, with and without BOS. */
void
assert_roundtrip(const struct tok *t, const char *s, size_t len)
{
	char cause[ERR_LEN];
	int32_t *ids;
	size_t n;
	char *d;
	int bos;

	for (bos = 0; bos <= 1; bos++) {
		ck_assert_int_eq(tok_encode(t, s, len, bos, &ids, &n, cause),
		    0);
		d = tok_decode(t, ids, n, cause);
		ck_assert_msg(d != NULL, "decode: %s", cause);
		ck_assert_msg(strlen(d) == len && memcmp(d, s, len) == 0,
		    "round trip (bos %d) of \"%.*s\" gave \"%s\"", bos,
		    (int)len, s, d);
		free(d);
		free(ids);
	}
}

/*
 * Exact ids for every case; or, with roundtrip, decode(encode(s)) == s:
 * leading spaces too, since the encoder's U+2581 prefix always starts
 * the first piece and the decoder drops exactly that one.  None of the
 * strings holds a literal U+2581, the one thing that cannot come back
 * (it decodes as a space).
 */
void
run_vocab(const char *name, int roundtrip)
{
	struct cases c;
	struct gguf_file *g;
	struct tok *t;
	char rel[256];
	size_t i, pass = 0;

	load_cases(&c, name);
	snprintf(rel, sizeof rel, "vocab/%s", name);
	t = open_shared(rel, &g);
	for (i = 0; i < c.n; i++) {
		if (!roundtrip) {
			pass += check_case(t, c.s[i], c.len[i], c.ids[i]);
			continue;
		}
		ck_assert_ptr_null(memmem(c.s[i], c.len[i], WS, 3));
		assert_roundtrip(t, c.s[i], c.len[i]);
	}
	if (!roundtrip)
		printf("%s: %zu/%zu cases pass\n", name, pass, c.n);
	ck_assert_uint_eq(roundtrip ? c.n : pass, c.n);
	tok_free(t);
	gguf_close(g);
	free(c.inp);
	free(c.out);
}

START_TEST(test_llama_spm_cases)
{
	run_vocab("ggml-vocab-llama-spm.gguf", 0);
}
END_TEST

START_TEST(test_phi3_cases)
{
	run_vocab("ggml-vocab-phi-3.gguf", 0);
}
END_TEST

START_TEST(test_llama_spm_roundtrip)
{
	run_vocab("ggml-vocab-llama-spm.gguf", 1);
}
END_TEST

START_TEST(test_phi3_roundtrip)
{
	run_vocab("ggml-vocab-phi-3.gguf", 1);
}
END_TEST

int32_t *
encode(const struct tok *t, const char *s, int bos, size_t *n)
{
	char cause[ERR_LEN];
	int32_t *ids;

	ck_assert_msg(tok_encode(t, s, strlen(s), bos, &ids, n, cause) == 0,
	    "encode \"%s\": %s", s, cause);
	return ids;
}

START_TEST(test_stories)
{
	const char *s = "Once upon a time, there was a little girl named Lily.";
	struct gguf_file *g;
	struct tok *t;
	int32_t *ids;
	size_t n, i;

	t = open_shared("models/stories260K.gguf", &g);
	ck_assert_int_eq(tok_n_vocab(t), 512);
	ck_assert_int_eq(tok_bos(t), 1);
	ck_assert_int_eq(tok_eos(t), 2);
	ck_assert_int_eq(tok_add_bos(t), 1);
	ids = encode(t, s, 1, &n);
	ck_assert_uint_gt(n, 5);
	ck_assert_int_eq(ids[0], 1);
	for (i = 1; i < n; i++)
		ck_assert_int_gt(ids[i], 2);
	printf("stories260K: \"%s\" -> %zu tokens\n", s, n);
	free(ids);
	assert_roundtrip(t, s, strlen(s));
	tok_free(t);
	gguf_close(g);
}
END_TEST

/* Deterministic prose with digits, punctuation, UTF-8 and line breaks. */
char *
make_text(size_t len)
{
	static const char *const words[] = { "the", "quick", "brown", "fox",
	    "jumps", "over", "lazy", "dog", "Hello", "world", "streaming",
	    "tokenizer", "1234", "3.14", "(x)", "{\n", "}\n", "\t", "  ",
	    "\xc3\xa4pfel", "\xd0\xbd\xd0\xb5", "\xe6\x88\x91",
	    "\xf0\x9f\x98\x81",
	    "na\xc3\xafve", "don't", "'re", "!!", "\n\n", "--", "=" };
	const size_t nw = sizeof words / sizeof words[0];
	uint64_t x = 88172645463325252ULL;
	char *s = malloc(len + 64);
	size_t k = 0, w;

	ck_assert_ptr_nonnull(s);
	while (k < len) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w = x % nw;
		memcpy(s + k, words[w], strlen(words[w]));
		k += strlen(words[w]);
		s[k++] = x & 0x300 ? ' ' : '.';
	}
	s[len] = '\0';
	return s;
}

double
time_encode(const struct tok *t, const char *what, const char *s,
    size_t len)
{
	struct timespec a, b;
	char cause[ERR_LEN];
	int32_t *ids;
	size_t n;
	double sec;
	char *d;

	clock_gettime(CLOCK_MONOTONIC, &a);
	ck_assert_int_eq(tok_encode(t, s, len, 1, &ids, &n, cause), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	sec = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	printf("encode %zu bytes of %s: %zu tokens in %.3f s\n", len, what, n,
	    sec);
	d = tok_decode(t, ids, n, cause);
	ck_assert_ptr_nonnull(d);
	ck_assert(strlen(d) == len && memcmp(d, s, len) == 0);
	free(d);
	free(ids);
	return sec;
}

/* Loose bound: a quadratic merger would need minutes here. */
START_TEST(test_large_input)
{
	const size_t len = 1 << 20;
	struct gguf_file *g;
	struct tok *t;
	char *s;

	t = open_shared("vocab/ggml-vocab-llama-spm.gguf", &g);
	s = make_text(len);
	ck_assert_double_lt(time_encode(t, "mixed text", s, len), 20.0);
	memset(s, 'a', len);
	ck_assert_double_lt(time_encode(t, "'a'", s, len), 20.0);
	memset(s, ' ', len);
	ck_assert_double_lt(time_encode(t, "spaces", s, len), 20.0);
	memset(s, 0xff, len);
	ck_assert_double_lt(time_encode(t, "0xff bytes", s, len), 20.0);
	free(s);
	tok_free(t);
	gguf_close(g);
}
END_TEST

int
has_id(const int32_t *ids, size_t n, int32_t id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

/* llama-spm's byte tokens are ids 3..258 in byte order. */
START_TEST(test_invalid_utf8)
{
	static const char s[] = "\xff\xfe ok \xc3( \x80\xbf \xed\xa0\x80 "
	    "\xf4\x90\x80\x80 \xc0\xaf caf\xc3\xa9 \xe2\x96";
	struct gguf_file *g;
	struct tok *t;
	int32_t *ids;
	size_t n;

	t = open_shared("vocab/ggml-vocab-llama-spm.gguf", &g);
	ids = encode(t, s, 0, &n);
	ck_assert(has_id(ids, n, 3 + 0xff) && has_id(ids, n, 3 + 0xfe));
	ck_assert(has_id(ids, n, 3 + 0xc3) && has_id(ids, n, 3 + 0x80));
	ck_assert(has_id(ids, n, 3 + 0xed) && has_id(ids, n, 3 + 0xa0));
	ck_assert(has_id(ids, n, 3 + 0xf4) && has_id(ids, n, 3 + 0xc0));
	ck_assert(has_id(ids, n, 3 + 0xe2) && has_id(ids, n, 3 + 0x96));
	free(ids);
	assert_roundtrip(t, s, sizeof s - 1);
	tok_free(t);
	gguf_close(g);
}
END_TEST

START_TEST(test_edges)
{
	struct gguf_file *g;
	struct tok *t;
	int32_t *ids;
	size_t n;
	char *d, cause[ERR_LEN];

	t = open_shared("vocab/ggml-vocab-llama-spm.gguf", &g);
	ids = encode(t, "", 0, &n);
	ck_assert_uint_eq(n, 0);
	free(ids);
	ids = encode(t, "", 1, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(ids[0], 1);
	free(ids);
	/* A literal U+2581 is a space to SentencePiece: it comes back so. */
	ids = encode(t, "a" WS "b", 0, &n);
	d = tok_decode(t, ids, n, cause);
	ck_assert_str_eq(d, "a b");
	free(d);
	free(ids);
	/* Not NUL-terminated: only len bytes are read. */
	ck_assert_int_eq(tok_encode(t, "Hello world", 5, 0, &ids, &n, cause),
	    0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(ids[0], 15043);
	free(ids);
	tok_free(t);
	gguf_close(g);
}
END_TEST

START_TEST(test_piece)
{
	int32_t bad[] = { 15043, 32000 };
	struct gguf_file *g;
	struct tok *t;
	char buf[64], cause[ERR_LEN] = "";

	t = open_shared("vocab/ggml-vocab-llama-spm.gguf", &g);
	ck_assert_str_eq(tok_text(t, 15043), WS "Hello");
	ck_assert_ptr_null(tok_text(t, 32000));
	ck_assert_int_eq(tok_piece(t, -1, 15043, buf, sizeof buf), 5);
	ck_assert(memcmp(buf, "Hello", 5) == 0);
	ck_assert_int_eq(tok_piece(t, 1, 15043, buf, sizeof buf), 5);
	ck_assert_int_eq(tok_piece(t, 3186, 15043, buf, sizeof buf), 6);
	ck_assert(memcmp(buf, " Hello", 6) == 0);
	/* Truncated output still reports the full length. */
	ck_assert_int_eq(tok_piece(t, 3186, 15043, buf, 2), 6);
	ck_assert(memcmp(buf, " H", 2) == 0);
	ck_assert_int_eq(tok_piece(t, -1, 1, buf, sizeof buf), 0);
	ck_assert_int_eq(tok_piece(t, -1, 2, buf, sizeof buf), 0);
	ck_assert_int_eq(tok_piece(t, -1, 3 + 0x41, buf, sizeof buf), 1);
	ck_assert_int_eq(buf[0], 'A');
	ck_assert_int_eq(tok_piece(t, -1, 0, buf, sizeof buf), 5);
	ck_assert(memcmp(buf, "<unk>", 5) == 0);
	ck_assert_int_eq(tok_piece(t, -1, 32000, buf, sizeof buf), -1);
	ck_assert_int_eq(tok_piece(t, -1, -3, buf, sizeof buf), -1);
	ck_assert_ptr_null(tok_decode(t, bad, 2, cause));
	ck_assert_ptr_nonnull(strstr(cause, "32000"));
	ck_assert(tok_is_control(t, 1) && !tok_is_control(t, 15043));
	tok_free(t);
	gguf_close(g);
}
END_TEST

/* phi-3 marks </s> user-defined: matched whole, never merged across. */
START_TEST(test_phi3_user_defined)
{
	struct gguf_file *g;
	struct tok *t;
	int32_t *ids;
	size_t n;
	char *d, cause[ERR_LEN];

	t = open_shared("vocab/ggml-vocab-phi-3.gguf", &g);
	ck_assert_int_eq(tok_eos(t), 32000);
	ck_assert_int_eq(tok_pad(t), 32000);
	ids = encode(t, "a</s>b", 0, &n);
	ck_assert(has_id(ids, n, 2));
	d = tok_decode(t, ids, n, cause);
	ck_assert_str_eq(d, "a</s>b");
	free(d);
	free(ids);
	/* Control pieces are not matched in plain text. */
	ids = encode(t, "<|user|><s>", 0, &n);
	ck_assert(!has_id(ids, n, 32010) && !has_id(ids, n, 1));
	free(ids);
	tok_free(t);
	gguf_close(g);
}
END_TEST

/* ------------------------------------------------------------------ */
/* GGUF fixtures written at test time. */

void
fx_put(struct fx *f, const void *p, size_t n)
{
	if (f->len + n > f->cap) {
		f->cap = (f->len + n) * 2;
		f->buf = realloc(f->buf, f->cap);
		ck_assert_ptr_nonnull(f->buf);
	}
	memcpy(f->buf + f->len, p, n);
	f->len += n;
}

void
fx_u(struct fx *f, uint64_t v, size_t n)
{
	unsigned char b[8];
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	fx_put(f, b, n);
}

void
fx_s(struct fx *f, const char *s)
{
	fx_u(f, strlen(s), 8);
	fx_put(f, s, strlen(s));
}

void
fx_key(struct fx *f, const char *key, uint32_t type)
{
	fx_s(f, key);
	fx_u(f, type, 4);
	f->nkv++;
}

void
fx_str(struct fx *f, const char *key, const char *v)
{
	fx_key(f, key, GGUF_STRING);
	fx_s(f, v);
}

static void
fx_u32(struct fx *f, const char *key, uint32_t v)
{
	fx_key(f, key, GGUF_UINT32);
	fx_u(f, v, 4);
}

static void
fx_bool(struct fx *f, const char *key, int v)
{
	fx_key(f, key, GGUF_BOOL);
	fx_u(f, v != 0, 1);
}

/* n elements of 4 bytes (float32 or int32), copied bit for bit. */
void
fx_arr4(struct fx *f, const char *key, uint32_t type, const void *v,
    size_t n)
{
	uint32_t u;
	size_t i;

	fx_key(f, key, GGUF_ARRAY);
	fx_u(f, type, 4);
	fx_u(f, n, 8);
	for (i = 0; i < n; i++) {
		memcpy(&u, (const char *)v + 4 * i, 4);
		fx_u(f, u, 4);
	}
}

void
fx_arr_str(struct fx *f, const char *key, const char *const *v, size_t n)
{
	size_t i;

	fx_key(f, key, GGUF_ARRAY);
	fx_u(f, GGUF_STRING, 4);
	fx_u(f, n, 8);
	for (i = 0; i < n; i++)
		fx_s(f, v[i]);
}

/* Writes the file and returns its path (static buffer). */
const char *
fx_write(struct fx *f, const char *name)
{
	static char path[8192];
	struct fx h = { 0 };
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s", fxdir, name);
	fx_put(&h, "GGUF", 4);
	fx_u(&h, 3, 4);
	fx_u(&h, 0, 8);
	fx_u(&h, f->nkv, 8);
	fp = fopen(path, "wb");
	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(h.buf, 1, h.len, fp), h.len);
	ck_assert_uint_eq(fwrite(f->buf, 1, f->len, fp), f->len);
	ck_assert_int_eq(fclose(fp), 0);
	free(h.buf);
	free(f->buf);
	memset(f, 0, sizeof *f);
	return path;
}

/* A small vocabulary: specials, 256 byte tokens, then the given pieces. */

struct vocab {
	const char *tok[FX_MAX];
	float score[FX_MAX];
	int32_t type[FX_MAX];
	size_t n;
	char bytes[256][8];
};

static void
vocab_add(struct vocab *v, const char *s, float score, int32_t type)
{
	ck_assert_uint_lt(v->n, FX_MAX);
	v->tok[v->n] = s;
	v->score[v->n] = score;
	v->type[v->n++] = type;
}

static void
vocab_base(struct vocab *v, int bytes)
{
	int b;

	memset(v, 0, sizeof *v);
	vocab_add(v, "<unk>", 0, 2);
	vocab_add(v, "<s>", 0, 3);
	vocab_add(v, "</s>", 0, 3);
	for (b = 0; bytes && b < 256; b++) {
		snprintf(v->bytes[b], sizeof v->bytes[b], "<0x%02X>", b);
		vocab_add(v, v->bytes[b], 0, 6);
	}
}

static void
fx_vocab(struct fx *f, const struct vocab *v)
{
	fx_str(f, "tokenizer.ggml.model", "llama");
	fx_arr_str(f, "tokenizer.ggml.tokens", v->tok, v->n);
	fx_arr4(f, "tokenizer.ggml.scores", GGUF_FLOAT32, v->score, v->n);
	fx_arr4(f, "tokenizer.ggml.token_type", GGUF_INT32, v->type, v->n);
	fx_u32(f, "tokenizer.ggml.bos_token_id", 1);
	fx_u32(f, "tokenizer.ggml.eos_token_id", 2);
}

/* The id of piece s in v. */
static int32_t
vid(const struct vocab *v, const char *s)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (strcmp(v->tok[i], s) == 0)
			return (int32_t)i;
	ck_abort_msg("no piece %s", s);
	return -1;
}

void
expect(const struct tok *t, const char *s, const int32_t *want, size_t nw)
{
	int32_t *ids;
	size_t n, i;

	ids = encode(t, s, 0, &n);
	if (n != nw || memcmp(ids, want, n * sizeof *ids) != 0) {
		print_ids("expected", want, nw);
		print_ids("got     ", ids, n);
	}
	ck_assert_uint_eq(n, nw);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(ids[i], want[i]);
	free(ids);
}

static struct tok *
open_fx(struct vocab *v, int space_prefix, struct gguf_file **g)
{
	struct fx f = { 0 };

	fx_vocab(&f, v);
	fx_bool(&f, "tokenizer.ggml.add_space_prefix", space_prefix);
	return open_tok(fx_write(&f, "v.gguf"), g);
}

void
fx_setup(void)
{
	snprintf(fxdir, sizeof fxdir, "%s/sinkd-tok-XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(fxdir));
}

void
fx_teardown(void)
{
	static const char *const names[] = { "v.gguf", "bad.gguf" };
	char path[8192];
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", fxdir, names[i]);
		unlink(path);
	}
	rmdir(fxdir);
}

/* Highest score first; equal scores go to the leftmost pair. */
START_TEST(test_merge_order)
{
	struct vocab v;
	struct gguf_file *g;
	struct tok *t;
	int32_t a, b, ab, ba;

	vocab_base(&v, 1);
	vocab_add(&v, "a", -5, 1);
	vocab_add(&v, "b", -5, 1);
	vocab_add(&v, "ab", -1, 1);
	vocab_add(&v, "ba", -1, 1);
	a = vid(&v, "a"), b = vid(&v, "b"), ab = vid(&v, "ab");
	ba = vid(&v, "ba");
	t = open_fx(&v, 0, &g);
	expect(t, "aba", (int32_t[]){ ab, a }, 2);
	expect(t, "abab", (int32_t[]){ ab, ab }, 2);
	expect(t, "bab", (int32_t[]){ ba, b }, 2);
	tok_free(t);
	gguf_close(g);
	v.score[ba] = 0;
	t = open_fx(&v, 0, &g);
	expect(t, "aba", (int32_t[]){ a, ba }, 2);
	tok_free(t);
	gguf_close(g);
}
END_TEST

/* A merge into an unused piece is undone at the end, as SentencePiece. */
START_TEST(test_unused_piece)
{
	struct vocab v;
	struct gguf_file *g;
	struct tok *t;
	int32_t x, y, z, xy;

	vocab_base(&v, 1);
	vocab_add(&v, "x", -5, 1);
	vocab_add(&v, "y", -5, 1);
	vocab_add(&v, "z", -5, 1);
	vocab_add(&v, "xy", 10, 5);
	vocab_add(&v, "yz", 1, 1);
	x = vid(&v, "x"), y = vid(&v, "y"), z = vid(&v, "z");
	xy = vid(&v, "xy");
	t = open_fx(&v, 0, &g);
	expect(t, "xyz", (int32_t[]){ x, y, z }, 3);
	tok_free(t);
	gguf_close(g);
	v.type[xy] = 1;
	t = open_fx(&v, 0, &g);
	expect(t, "xyz", (int32_t[]){ xy, z }, 2);
	tok_free(t);
	gguf_close(g);
	/* Nested: xyz (unused) splits into xy (unused) and z, then x y. */
	v.type[xy] = 5;
	vocab_add(&v, "xyz", 9, 5);
	t = open_fx(&v, 0, &g);
	expect(t, "xyzx", (int32_t[]){ x, y, z, x }, 4);
	tok_free(t);
	gguf_close(g);
}
END_TEST

START_TEST(test_user_defined)
{
	struct vocab v;
	struct gguf_file *g;
	struct tok *t;
	int32_t a, b, u, al;

	vocab_base(&v, 1);
	vocab_add(&v, "a", -5, 1);
	vocab_add(&v, "b", -5, 1);
	vocab_add(&v, "<", -5, 1);
	vocab_add(&v, "a<", 100, 1);
	vocab_add(&v, "<|u|>", 0, 4);
	vocab_add(&v, "<|u|>x", 0, 4);
	a = vid(&v, "a"), b = vid(&v, "b"), u = vid(&v, "<|u|>");
	al = vid(&v, "a<");
	t = open_fx(&v, 0, &g);
	expect(t, "a<|u|>b", (int32_t[]){ a, u, b }, 3);
	expect(t, "a<b", (int32_t[]){ al, b }, 2);
	expect(t, "<|u|>xa", (int32_t[]){ vid(&v, "<|u|>x"), a }, 2);
	tok_free(t);
	gguf_close(g);
}
END_TEST

START_TEST(test_space_prefix)
{
	struct vocab v;
	struct gguf_file *g;
	struct tok *t;
	int32_t w, wa, a;
	char *d, cause[ERR_LEN];

	vocab_base(&v, 1);
	vocab_add(&v, WS, -5, 1);
	vocab_add(&v, "a", -5, 1);
	vocab_add(&v, WS "a", -1, 1);
	w = vid(&v, WS), wa = vid(&v, WS "a"), a = vid(&v, "a");
	t = open_fx(&v, 1, &g);
	ck_assert_int_eq(tok_add_space_prefix(t), 1);
	expect(t, "a", (int32_t[]){ wa }, 1);
	expect(t, " a", (int32_t[]){ w, wa }, 2);
	assert_roundtrip(t, " a", 2);
	tok_free(t);
	gguf_close(g);
	t = open_fx(&v, 0, &g);
	ck_assert_int_eq(tok_add_space_prefix(t), 0);
	expect(t, "a", (int32_t[]){ a }, 1);
	expect(t, " a", (int32_t[]){ wa }, 1);
	d = tok_decode(t, (int32_t[]){ wa }, 1, cause);
	ck_assert_str_eq(d, " a");
	free(d);
	assert_roundtrip(t, " a a", 4);
	tok_free(t);
	gguf_close(g);
}
END_TEST

START_TEST(test_fallback)
{
	struct vocab v;
	struct fx f = { 0 };
	struct gguf_file *g;
	struct tok *t;
	int32_t *ids;
	size_t n;
	char cause[ERR_LEN] = "";

	vocab_base(&v, 1);
	vocab_add(&v, "a", -5, 1);
	t = open_fx(&v, 0, &g);
	expect(t, "q\xc3\xa9", (int32_t[]){ 3 + 'q', 3 + 0xc3, 3 + 0xa9 }, 3);
	tok_free(t);
	gguf_close(g);
	/* No byte tokens: an unknown character becomes one <unk>. */
	vocab_base(&v, 0);
	vocab_add(&v, "a", -5, 1);
	fx_vocab(&f, &v);
	fx_bool(&f, "tokenizer.ggml.add_space_prefix", 0);
	fx_u32(&f, "tokenizer.ggml.unknown_token_id", 0);
	t = open_tok(fx_write(&f, "v.gguf"), &g);
	expect(t, "a\xc3\xa9q", (int32_t[]){ 3, 0, 0 }, 3);
	tok_free(t);
	gguf_close(g);
	/* Neither: encoding fails and says why. */
	t = open_fx(&v, 0, &g);
	ck_assert_int_eq(tok_encode(t, "aq", 2, 0, &ids, &n, cause), -1);
	ck_assert_ptr_null(ids);
	ck_assert_ptr_nonnull(strstr(cause, "0x71"));
	ck_assert_int_eq(tok_unk(t), -1);
	tok_free(t);
	gguf_close(g);
}
END_TEST

/* Opens the fixture expecting failure; cause must contain want. */
void
expect_refused(struct fx *f, const char *want)
{
	char cause[ERR_LEN] = "";
	struct gguf_file *g;

	g = gguf_open(fx_write(f, "bad.gguf"), cause);
	ck_assert_msg(g != NULL, "gguf_open: %s", cause);
	ck_assert_ptr_null(tok_open(g, cause));
	ck_assert_msg(strstr(cause, want) != NULL, "cause \"%s\" lacks \"%s\"",
	    cause, want);
	gguf_close(g);
}

static void
fx_arrays(struct fx *f, const struct vocab *v, size_t ns, size_t nt)
{
	fx_arr_str(f, "tokenizer.ggml.tokens", v->tok, v->n);
	fx_arr4(f, "tokenizer.ggml.scores", GGUF_FLOAT32, v->score, ns);
	fx_arr4(f, "tokenizer.ggml.token_type", GGUF_INT32, v->type, nt);
}

START_TEST(test_validation)
{
	struct vocab v;
	struct fx f = { 0 };

	vocab_base(&v, 1);
	vocab_add(&v, "a", -5, 1);
	fx_str(&f, "tokenizer.ggml.model", "llama");
	fx_arrays(&f, &v, v.n - 1, v.n);
	expect_refused(&f, "tokenizer.ggml.scores");
	fx_str(&f, "tokenizer.ggml.model", "llama");
	fx_arrays(&f, &v, v.n, v.n + 1);
	expect_refused(&f, "tokenizer.ggml.token_type");
	fx_str(&f, "tokenizer.ggml.model", "llama");
	fx_arrays(&f, &v, v.n, v.n);
	fx_u32(&f, "tokenizer.ggml.bos_token_id", (uint32_t)v.n);
	expect_refused(&f, "tokenizer.ggml.bos_token_id");
	fx_str(&f, "tokenizer.ggml.model", "llama");
	fx_arrays(&f, &v, v.n, v.n);
	fx_u32(&f, "tokenizer.ggml.unknown_token_id", 100000);
	expect_refused(&f, "tokenizer.ggml.unknown_token_id");
	fx_str(&f, "tokenizer.ggml.model", "llama");
	fx_arr_str(&f, "tokenizer.ggml.tokens", v.tok, 0);
	expect_refused(&f, "tokenizer.ggml.tokens is empty");
	fx_str(&f, "tokenizer.ggml.model", "llama");
	expect_refused(&f, "tokenizer.ggml.tokens is missing");
	fx_arrays(&f, &v, v.n, v.n);
	expect_refused(&f, "tokenizer.ggml.model is missing");
	fx_str(&f, "tokenizer.ggml.model", "bert");
	fx_arrays(&f, &v, v.n, v.n);
	expect_refused(&f, "\"bert\"");
}
END_TEST

START_TEST(test_validation_values)
{
	struct vocab v;
	struct fx f = { 0 };

	vocab_base(&v, 1);
	vocab_add(&v, "a", -5, 1);
	v.type[v.n - 1] = 9;
	fx_str(&f, "tokenizer.ggml.model", "llama");
	fx_arrays(&f, &v, v.n, v.n);
	expect_refused(&f, "tokenizer.ggml.token_type[259]");
	v.type[v.n - 1] = 6;
	fx_str(&f, "tokenizer.ggml.model", "llama");
	fx_arrays(&f, &v, v.n, v.n);
	expect_refused(&f, "tokenizer.ggml.token_type[259]");
	v.type[v.n - 1] = 1;
	v.score[v.n - 1] = nanf("");
	fx_str(&f, "tokenizer.ggml.model", "llama");
	fx_arrays(&f, &v, v.n, v.n);
	expect_refused(&f, "tokenizer.ggml.scores[259]");
	fx_str(&f, "tokenizer.ggml.model", "llama");
	fx_arr_str(&f, "tokenizer.ggml.tokens", v.tok, v.n);
	fx_arr4(&f, "tokenizer.ggml.scores", GGUF_INT32, v.type, v.n);
	expect_refused(&f, "tokenizer.ggml.scores");
}
END_TEST

/* Scores and types are optional; "<0xXX>" texts are then the bytes. */
START_TEST(test_minimal_metadata)
{
	struct vocab v;
	struct fx f = { 0 };
	struct gguf_file *g;
	struct tok *t;
	char *d, cause[ERR_LEN];

	vocab_base(&v, 1);
	vocab_add(&v, WS "a", 0, 1);
	fx_str(&f, "tokenizer.ggml.model", "llama");
	fx_arr_str(&f, "tokenizer.ggml.tokens", v.tok, v.n);
	fx_u32(&f, "tokenizer.ggml.padding_token_id", UINT32_MAX);
	t = open_tok(fx_write(&f, "v.gguf"), &g);
	ck_assert_int_eq(tok_pad(t), -1);
	ck_assert_int_eq(tok_bos(t), -1);
	ck_assert_int_eq(tok_add_bos(t), 0);
	ck_assert_int_eq(tok_add_eos(t), 0);
	expect(t, "ab", (int32_t[]){ vid(&v, WS "a"), 3 + 'b' }, 2);
	d = tok_decode(t, (int32_t[]){ 3 + 'b', 3 + 'c' }, 2, cause);
	ck_assert_str_eq(d, "bc");
	free(d);
	ck_assert_int_eq(tok_encode(t, "a", 1, 1, &(int32_t *){ NULL },
	    &(size_t){ 0 }, cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "BOS"));
	tok_free(t);
	gguf_close(g);
}
END_TEST

int
have(const char *rel)
{
	char path[8192];

	snprintf(path, sizeof path, "%s/%s", shared, rel);
	if (access(path, R_OK) == 0)
		return 1;
	printf("SKIP: %s not found (set SINKD_SHARED)\n", path);
	return 0;
}

void
add(Suite *s, const char *name, const TTest *test, int fixture)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, 120);
	if (fixture)
		tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static void
add_shared(Suite *s)
{
	if (have("vocab/ggml-vocab-llama-spm.gguf")) {
		add(s, "llama_spm_cases", test_llama_spm_cases, 0);
		add(s, "llama_spm_roundtrip", test_llama_spm_roundtrip, 0);
		add(s, "large_input", test_large_input, 0);
		add(s, "invalid_utf8", test_invalid_utf8, 0);
		add(s, "edges", test_edges, 0);
		add(s, "piece", test_piece, 0);
	}
	if (have("vocab/ggml-vocab-phi-3.gguf")) {
		add(s, "phi3_cases", test_phi3_cases, 0);
		add(s, "phi3_roundtrip", test_phi3_roundtrip, 0);
		add(s, "phi3_user_defined", test_phi3_user_defined, 0);
	}
	if (have("models/stories260K.gguf"))
		add(s, "stories", test_stories, 0);
}

int
main(void)
{
	const char *env = getenv("SINKD_SHARED");
	Suite *s = suite_create("tokenizer");
	SRunner *sr;
	int failed;

	snprintf(shared, sizeof shared, "%s", env != NULL ? env : "../shared");
	add_shared(s);
	add(s, "merge_order", test_merge_order, 1);
	add(s, "unused_piece", test_unused_piece, 1);
	add(s, "user_defined", test_user_defined, 1);
	add(s, "space_prefix", test_space_prefix, 1);
	add(s, "fallback", test_fallback, 1);
	add(s, "validation", test_validation, 1);
	add(s, "validation_values", test_validation_values, 1);
	add(s, "minimal_metadata", test_minimal_metadata, 1);
	tt_bpe_add(s);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
