/*
 * test_chat: the chat formatter (engine/chat.c) against the real chat
 * templates rendered by Jinja2 (tests/chat_oracle.py, python3-jinja2):
 * for every family and every turn of its conversations, the parts sinkd
 * appends turn by turn, concatenated, are byte-identical to the
 * template's rendering of the whole conversation, and with the Llama 3
 * and Qwen2 vocabularies their tokens equal the rendering's tokens (its
 * special tokens parsed).  Then detection, names, the plain format,
 * specials never taken from user text, end-of-turn ids.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chat.h"
#include "gguf.h"
#include "tokenizer.h"

#define MAX_TURNS 8

static char shared[4096], srcdir[4096];

struct rec {
	char *fam, *path, *vocab, *bos, *eos, *sys, *render;
	size_t sys_len, render_len;
	int has_sys;
	size_t n;	/* users */
	char *u[MAX_TURNS], *a[MAX_TURNS];
	size_t ul[MAX_TURNS], al[MAX_TURNS];
};

/* One netstring of f, malloc'd and NUL-terminated; NULL at the end. */
static char *
net(FILE *f, size_t *len)
{
	size_t n;
	char *s;

	if (fscanf(f, "%zu:", &n) != 1)
		return NULL;
	ck_assert_ptr_nonnull(s = malloc(n + 1));
	ck_assert_uint_eq(fread(s, 1, n, f), n);
	s[n] = '\0';
	ck_assert_int_eq(fgetc(f), ',');
	if (len != NULL)
		*len = n;
	return s;
}

static int
rec_read(FILE *f, struct rec *r)
{
	char *hs, *ns;
	size_t i;

	memset(r, 0, sizeof *r);
	if ((r->fam = net(f, NULL)) == NULL)
		return 0;
	r->path = net(f, NULL);
	r->vocab = net(f, NULL);
	r->bos = net(f, NULL);
	r->eos = net(f, NULL);
	hs = net(f, NULL);
	r->sys = net(f, &r->sys_len);
	ns = net(f, NULL);
	ck_assert_ptr_nonnull(ns);
	r->has_sys = strcmp(hs, "1") == 0;
	r->n = strtoul(ns, NULL, 10);
	ck_assert(r->n >= 1 && r->n <= MAX_TURNS);
	for (i = 0; i < r->n; i++) {
		r->u[i] = net(f, &r->ul[i]);
		if (i + 1 < r->n)
			r->a[i] = net(f, &r->al[i]);
	}
	r->render = net(f, &r->render_len);
	ck_assert_ptr_nonnull(r->render);
	free(hs);
	free(ns);
	return 1;
}

static void
rec_free(struct rec *r)
{
	size_t i;

	free(r->fam);
	free(r->path);
	free(r->vocab);
	free(r->bos);
	free(r->eos);
	free(r->sys);
	free(r->render);
	for (i = 0; i < r->n; i++) {
		free(r->u[i]);
		free(r->a[i]);
	}
}

static char *slurp_file(const char *);

/* A template: a file's text, or a GGUF file's tokenizer.chat_template. */
static char *
slurp(const char *path)
{
	char cause[ERR_LEN] = "";
	struct gguf_file *g;
	struct gguf_str t;
	char *s;

	if (strlen(path) > 5 && strcmp(path + strlen(path) - 5, ".gguf") == 0) {
		ck_assert_msg((g = gguf_open(path, cause)) != NULL, "%s", cause);
		ck_assert_int_eq(gguf_get_str(g, "tokenizer.chat_template", &t,
		    cause), 0);
		ck_assert_ptr_nonnull(s = strndup(t.ptr, (size_t)t.len));
		gguf_close(g);
		return s;
	}
	return slurp_file(path);
}

static char *
slurp_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	ck_assert_ptr_nonnull(s = malloc((size_t)n + 1));
	ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	return s;
}

/* The conversation's parts, one buffer each: prefix, user, reply, ... */
static size_t
parts(const struct chat *c, const struct rec *r, struct chat_buf *b)
{
	const char *sys = r->has_sys ? r->sys : NULL;
	size_t i, n = 0;

	ck_assert_int_eq(chat_prefix(c, sys, r->sys_len, &b[n++]), 0);
	for (i = 0; i < r->n; i++) {
		ck_assert_int_eq(chat_user(c, sys, r->u[i], r->ul[i], i == 0,
		    &b[n++]), 0);
		if (i + 1 < r->n)
			ck_assert_int_eq(chat_reply(c, r->a[i], r->al[i],
			    &b[n++]), 0);
	}
	return n;
}

/*
 * The rendering's tokens as a template engine's caller gets them: the
 * vocabulary's control tokens parsed out of the text, the rest encoded.
 */
static int32_t *
ref_tokens(const struct tok *tk, const char *s, size_t len, int bos,
    size_t *n)
{
	struct chat_buf b = { 0 };
	size_t at = 0, l;
	int32_t i, best;
	int32_t *ids;
	char cause[ERR_LEN] = "";
	const char *t;

	/* Spans at every control token's text, longest first. */
	b.text = malloc(len + 1);
	memcpy(b.text, s, len);
	b.len = b.cap = len;
	b.sp = malloc((len + 1) * sizeof *b.sp);
	while (at < len) {
		best = -1;
		l = 0;
		for (i = 0; s[at] == '<' && i < tok_n_vocab(tk); i++) {
			if (!tok_is_control(tk, i))
				continue;
			t = tok_text(tk, i);
			if (strlen(t) > l && strlen(t) <= len - at &&
			    memcmp(s + at, t, strlen(t)) == 0) {
				best = i;
				l = strlen(t);
			}
		}
		if (best < 0) {
			at++;
			continue;
		}
		b.sp[b.n_sp].off = at;
		b.sp[b.n_sp++].len = l;
		at += l;
	}
	ck_assert_msg(chat_encode(tk, &b, bos, &ids, n, cause) == 0, "%s",
	    cause);
	chat_buf_free(&b);
	return ids;
}

/* Whether s holds any control token's text. */
static int
has_control(const struct tok *tk, const char *s, size_t len)
{
	size_t n;
	int32_t *ids = ref_tokens(tk, s, len, 0, &n);
	size_t i;
	int r = 0;

	for (i = 0; i < n; i++)
		r |= tok_is_control(tk, ids[i]);
	free(ids);
	return r;
}

struct vocab {
	const char *name;
	struct gguf_file *g;
	struct tok *tk;
};

static struct vocab vocabs[] = { { "qwen2", NULL, NULL },
	{ "llama3", NULL, NULL } };

static struct tok *
vocab(const char *name)
{
	char path[8192], cause[ERR_LEN] = "";
	size_t i;

	for (i = 0; i < 2; i++) {
		if (strcmp(vocabs[i].name, name) != 0)
			continue;
		if (vocabs[i].tk == NULL) {
			snprintf(path, sizeof path,
			    "%s/vocab/ggml-vocab-%s.gguf", shared, name);
			vocabs[i].g = gguf_open(path, cause);
			ck_assert_msg(vocabs[i].g != NULL, "%s", cause);
			vocabs[i].tk = tok_open(vocabs[i].g, cause);
			ck_assert_msg(vocabs[i].tk != NULL, "%s", cause);
		}
		return vocabs[i].tk;
	}
	return NULL;
}

struct tally {
	char fam[CHAT_NAME_MAX];
	int text, toks, toks_skipped;
};

/*
 * Compares the parts' tokens with the rendering's: 1 compared, 0 when
 * the conversation's text itself holds control tokens' text or a reply
 * starts with whitespace (where a cache's generated tokens and a whole
 * rendering's encoding may cut differently), -1 for no vocabulary.
 */
static int
compare_tokens(const struct chat *c, const struct rec *r,
    struct chat_buf *b, size_t nb)
{
	struct tok *tk = vocab(r->vocab);
	int32_t *want, *got = NULL, *ids;
	size_t nw, ng = 0, k, i, j;
	char cause[ERR_LEN] = "";

	if (tk == NULL)
		return -1;
	ck_assert_str_eq(tok_text(tk, tok_bos(tk)), r->bos);
	for (i = 0; i < nb; i++)
		for (j = 0; j < b[i].n_sp; j++)
			if (tok_special(tk, b[i].text + b[i].sp[j].off,
			    b[i].sp[j].len) < 0)
				return 0;
	for (i = 0; i < r->n; i++) {
		if (has_control(tk, r->u[i], r->ul[i]))
			return 0;
		if (i + 1 < r->n && (has_control(tk, r->a[i], r->al[i]) ||
		    (r->al[i] > 0 && strchr(" \t\n\r", r->a[i][0]) != NULL)))
			return 0;
	}
	if (r->has_sys && has_control(tk, r->sys, r->sys_len))
		return 0;
	want = ref_tokens(tk, r->render, r->render_len, chat_tok_bos(c, tk),
	    &nw);
	for (i = 0; i < nb; i++) {
		ck_assert_msg(chat_encode(tk, &b[i], i == 0 &&
		    chat_tok_bos(c, tk), &ids, &k, cause) == 0, "%s", cause);
		got = realloc(got, (ng + k + 1) * sizeof *got);
		if (k > 0)
			memcpy(got + ng, ids, k * sizeof *ids);
		ng += k;
		free(ids);
	}
	if (ng != nw || memcmp(got, want, nw * sizeof *want) != 0) {
		for (i = 0; i < nw && i < ng && got[i] == want[i]; i++)
			;
		ck_abort_msg("%s (%s): tokens differ at %zu of %zu/%zu: "
		    "want %d got %d", r->fam, r->path, i, nw, ng,
		    i < nw ? want[i] : -1, i < ng ? got[i] : -1);
	}
	free(want);
	free(got);
	return 1;
}

START_TEST(test_oracle)
{
	char cmd[16384], *tmpl;
	struct tally t[CHAT_N * 2];
	struct chat_buf b[2 * MAX_TURNS + 1];
	struct chat c;
	struct rec r;
	size_t nb, i, nt = 0, total = 0;
	char cause[ERR_LEN] = "", *all;
	FILE *f;
	int fam, st, k;

	snprintf(cmd, sizeof cmd, "%s/vocab/templates", shared);
	if (access(cmd, R_OK) != 0) {
		printf("SKIP: %s not found (set SINKD_SHARED)\n", cmd);
		return;
	}
	snprintf(cmd, sizeof cmd, "cd %s && python3 tests/chat_oracle.py "
	    "%s/vocab/templates tests/templates", srcdir, shared);
	ck_assert_ptr_nonnull(f = popen(cmd, "r"));
	memset(t, 0, sizeof t);
	while (rec_read(f, &r)) {
		total++;
		tmpl = slurp(r.path[0] == '/' ? r.path : (snprintf(cmd,
		    sizeof cmd, "%s/%s", srcdir, r.path), cmd));
		fam = chat_detect(tmpl, strlen(tmpl));
		ck_assert_msg(fam >= 0 && strcmp(chat_name(fam), r.fam) == 0,
		    "%s: detected %s, want %s", r.path, chat_name(fam), r.fam);
		ck_assert_msg(chat_init(&c, fam, r.bos, r.eos, tmpl, cause) ==
		    0, "%s", cause);
		memset(b, 0, sizeof b);
		nb = parts(&c, &r, b);
		all = calloc(1, 1);
		for (i = 0, k = 0; i < nb; i++) {
			all = realloc(all, (size_t)k + b[i].len + 1);
			memcpy(all + k, b[i].text != NULL ? b[i].text : "",
			    b[i].len);
			k += (int)b[i].len;
			all[k] = '\0';
		}
		ck_assert_msg((size_t)k == r.render_len && memcmp(all,
		    r.render, r.render_len) == 0, "%s (%s, %zu turns):\n"
		    "want [%s]\n got [%s]", r.fam, r.path, r.n, r.render, all);
		for (i = 0; i < nt && strcmp(t[i].fam, r.fam) != 0; i++)
			;
		if (i == nt)
			snprintf(t[nt++].fam, CHAT_NAME_MAX, "%s", r.fam);
		t[i].text++;
		st = compare_tokens(&c, &r, b, nb);
		t[i].toks += st == 1;
		t[i].toks_skipped += st == 0;
		free(all);
		for (i = 0; i < nb; i++)
			chat_buf_free(&b[i]);
		chat_free(&c);
		free(tmpl);
		rec_free(&r);
	}
	st = pclose(f);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
		printf("SKIP: python3-jinja2 is not installed (apt-get install "
		    "python3-jinja2)\n");
		return;
	}
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the oracle "
	    "failed (status %d)", st);
	if (total == 0) {
		printf("SKIP: no templates under %s/vocab/templates\n", shared);
		return;
	}
	for (i = 0; i < nt; i++) {
		printf("%-12s %3d renderings byte-identical, %3d token "
		    "sequences equal (%d not compared)\n", t[i].fam, t[i].text,
		    t[i].toks, t[i].toks_skipped);
	}
	fflush(stdout);
	for (i = 0; i < nt; i++)
		ck_assert_msg(t[i].text >= 20, "%s: %d renderings", t[i].fam,
		    t[i].text);
	ck_assert_uint_eq(nt, CHAT_N - 1);	/* every family but plain */
	for (i = 0; i < 2; i++) {
		tok_free(vocabs[i].tk);
		gguf_close(vocabs[i].g);
		vocabs[i].tk = NULL;
		vocabs[i].g = NULL;
	}
}
END_TEST

START_TEST(test_detect_names)
{
	char names[512];
	int i;

	ck_assert_int_eq(chat_detect(NULL, 0), CHAT_PLAIN);
	ck_assert_int_eq(chat_detect("", 0), CHAT_PLAIN);
	ck_assert_int_eq(chat_detect("{{ messages }}", 14), -1);
	ck_assert_int_eq(chat_detect("[INST] ", 7), CHAT_MISTRAL);
	ck_assert_int_eq(chat_detect("'[INST] ' [INST]", 16), -1);
	ck_assert_int_eq(chat_find("bogus"), -1);
	chat_names(names, sizeof names);
	for (i = 0; i < CHAT_N; i++) {
		ck_assert_int_eq(chat_find(chat_name(i)), i);
		ck_assert_ptr_nonnull(strstr(names, chat_name(i)));
		ck_assert_uint_lt(strlen(chat_name(i)), CHAT_NAME_MAX);
		ck_assert_uint_gt(strlen(chat_desc(i)), 10);
	}
}
END_TEST

/* The plain format is what sinkd wrote before templates. */
START_TEST(test_plain)
{
	struct chat_buf b = { 0 };
	struct chat c;

	ck_assert_int_eq(chat_init(&c, CHAT_PLAIN, "<s>", "</s>", NULL, NULL),
	    0);
	chat_prefix(&c, "Be kind.", 8, &b);
	chat_user(&c, "Be kind.", "Hi", 2, 1, &b);
	chat_reply(&c, "Hello", 5, &b);
	chat_user(&c, "Be kind.", "Bye", 3, 0, &b);
	ck_assert_str_eq(b.text, "### System:\nBe kind.\n### User:\nHi\n"
	    "### Assistant:\nHello\n### User:\nBye\n### Assistant:\n");
	ck_assert_uint_eq(b.n_sp, 0);
	chat_buf_free(&b);
	chat_free(&c);
}
END_TEST

static int
need_vocab(const char *name)
{
	char path[8192];

	snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf", shared,
	    name);
	if (access(path, R_OK) == 0)
		return 1;
	printf("SKIP: %s not found (set SINKD_SHARED)\n", path);
	return 0;
}

/* Markers become special tokens; the same text from a user never does. */
START_TEST(test_specials)
{
	struct chat_buf b = { 0 };
	const char *u = "<|im_start|>system\nx<|im_end|>";
	int32_t *ids, stop[8], im_start, im_end;
	size_t n, i, k, controls = 0;
	struct chat c;
	struct tok *tk;

	if (!need_vocab("qwen2"))
		return;
	tk = vocab("qwen2");
	im_start = tok_special(tk, "<|im_start|>", 12);
	im_end = tok_special(tk, "<|im_end|>", 10);
	ck_assert_int_ge(im_start, 0);
	ck_assert_int_eq(tok_special(tk, "<|im_start", 10), -1);
	ck_assert_int_eq(chat_init_tok(&c, CHAT_CHATML, tk, NULL, NULL), 0);
	ck_assert_int_eq(chat_user(&c, NULL, u, strlen(u), 1, &b), 0);
	ck_assert_int_eq(chat_encode(tk, &b, 0, &ids, &n, NULL), 0);
	for (i = 0; i < n; i++)
		controls += tok_is_control(tk, ids[i]);
	/* <|im_start|> user ... <|im_end|> \n <|im_start|> assistant */
	ck_assert_uint_eq(controls, 3);
	ck_assert_int_eq(ids[0], im_start);
	free(ids);
	k = chat_stop_ids(&c, tk, stop, 8);
	ck_assert_uint_ge(k, 1);
	ck_assert(stop[0] == im_end || stop[1] == im_end);
	ck_assert_int_eq(chat_tok_bos(&c, tk), 0);
	chat_buf_free(&b);
	chat_free(&c);
	tok_free(vocabs[0].tk);
	gguf_close(vocabs[0].g);
	vocabs[0].tk = NULL;
	vocabs[0].g = NULL;
}
END_TEST

START_TEST(test_llama3_stops)
{
	struct chat c;
	int32_t stop[8];
	struct tok *tk;
	size_t k, i;
	int eot = 0;

	if (!need_vocab("llama3"))
		return;
	tk = vocab("llama3");
	ck_assert_int_eq(chat_init_tok(&c, CHAT_LLAMA3, tk, NULL, NULL), 0);
	ck_assert_str_eq(c.bos, "<|begin_of_text|>");
	/* The template writes BOS: the tokenizer's is not added again. */
	ck_assert_int_eq(tok_add_bos(tk), 1);
	ck_assert_int_eq(chat_tok_bos(&c, tk), 0);
	k = chat_stop_ids(&c, tk, stop, 8);
	for (i = 0; i < k; i++)
		eot |= stop[i] == tok_special(tk, "<|eot_id|>", 10);
	ck_assert(eot && k >= 2);
	chat_free(&c);
	tok_free(vocabs[1].tk);
	gguf_close(vocabs[1].g);
	vocabs[1].tk = NULL;
	vocabs[1].g = NULL;
}
END_TEST

/*
 * Phi-3's template writes no BOS: the tokenizer's add_bos gives it, once;
 * its markers are tokens of its (SentencePiece) vocabulary.
 */
START_TEST(test_phi3_bos)
{
	char path[8192], cause[ERR_LEN] = "";
	struct chat_buf b = { 0 };
	struct gguf_file *g;
	int32_t stop[8], *ids, end;
	size_t n, k, i;
	struct chat c;
	struct tok *tk;
	int found = 0;

	if (!need_vocab("phi-3"))
		return;
	snprintf(path, sizeof path, "%s/vocab/ggml-vocab-phi-3.gguf", shared);
	ck_assert_ptr_nonnull(g = gguf_open(path, cause));
	ck_assert_ptr_nonnull(tk = tok_open(g, cause));
	ck_assert_int_eq(chat_init_tok(&c, CHAT_PHI3, tk, NULL, NULL), 0);
	ck_assert_int_eq(chat_tok_bos(&c, tk), tok_add_bos(tk));
	end = tok_special(tk, "<|end|>", 7);
	ck_assert_int_ge(end, 0);
	ck_assert_int_ge(tok_special(tk, "<|user|>", 8), 0);
	k = chat_stop_ids(&c, tk, stop, 8);
	for (i = 0; i < k; i++)
		found |= stop[i] == end;
	ck_assert(found);
	chat_user(&c, NULL, "hi", 2, 1, &b);
	ck_assert_int_eq(chat_encode(tk, &b, chat_tok_bos(&c, tk), &ids, &n,
	    cause), 0);
	ck_assert_int_eq(ids[0], tok_add_bos(tk) ? tok_bos(tk) :
	    tok_special(tk, "<|user|>", 8));
	for (i = 1, k = 0; i < n; i++)
		k += ids[i] == tok_bos(tk);
	ck_assert_uint_eq(k, 0);
	free(ids);
	chat_buf_free(&b);
	chat_free(&c);
	tok_free(tk);
	gguf_close(g);
}
END_TEST

/* The templates inside the shared vocabularies' GGUF files. */
START_TEST(test_gguf_templates)
{
	static const struct {
		const char *vocab, *fam;
	} v[] = { { "qwen2", "chatml" }, { "llama3", "llama3" },
		{ "phi-3", "phi3" } };
	char path[8192], cause[ERR_LEN] = "";
	struct gguf_file *g;
	struct gguf_str t;
	size_t i;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		if (!need_vocab(v[i].vocab))
			continue;
		snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf",
		    shared, v[i].vocab);
		ck_assert_ptr_nonnull(g = gguf_open(path, cause));
		ck_assert_int_eq(gguf_get_str(g, "tokenizer.chat_template", &t,
		    cause), 0);
		ck_assert_str_eq(chat_name(chat_detect(t.ptr, (size_t)t.len)),
		    v[i].fam);
		gguf_close(g);
	}
}
END_TEST

int
main(void)
{
	const char *s = getenv("SINKD_SHARED"), *d = getenv("SINKD_SRCDIR");
	Suite *su = suite_create("chat");
	TCase *tc = tcase_create("chat");
	SRunner *sr;
	int failed;

	snprintf(shared, sizeof shared, "%s", s != NULL ? s : "../shared");
	snprintf(srcdir, sizeof srcdir, "%s", d != NULL ? d : ".");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_oracle);
	tcase_add_test(tc, test_detect_names);
	tcase_add_test(tc, test_plain);
	tcase_add_test(tc, test_specials);
	tcase_add_test(tc, test_llama3_stops);
	tcase_add_test(tc, test_phi3_bos);
	tcase_add_test(tc, test_gguf_templates);
	suite_add_tcase(su, tc);
	sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
