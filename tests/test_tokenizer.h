/*
 * test_tokenizer.h: what test_tokenizer.c (SentencePiece, the helpers,
 * main) shares with test_tokenizer_bpe.c (byte-level BPE), the two files
 * of the test_tokenizer program.
 */
#ifndef SINKD_TEST_TOKENIZER_H
#define SINKD_TEST_TOKENIZER_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "tokenizer.h"

#define FX_MAX 400 /* tokens in a fixture vocabulary */

extern char shared[4096]; /* $SINKD_SHARED */
extern char fxdir[4096];  /* fixture directory of the test process */

/* A GGUF file being written: its key-value part. */
struct fx {
	unsigned char *buf;
	size_t len, cap;
	uint64_t nkv;
};

struct tok *open_tok(const char *path, struct gguf_file **g);
struct tok *open_shared(const char *rel, struct gguf_file **g);
void print_ids(const char *what, const int32_t *ids, size_t n);
void assert_roundtrip(const struct tok *t, const char *s, size_t len);
void run_vocab(const char *name, int roundtrip);
int32_t *encode(const struct tok *t, const char *s, int bos, size_t *n);
char *make_text(size_t len);
double time_encode(const struct tok *t, const char *what, const char *s,
    size_t len);
int has_id(const int32_t *ids, size_t n, int32_t id);
void expect(const struct tok *t, const char *s, const int32_t *want,
    size_t nw);

void fx_put(struct fx *f, const void *p, size_t n);
void fx_u(struct fx *f, uint64_t v, size_t n);
void fx_s(struct fx *f, const char *s);
void fx_key(struct fx *f, const char *key, uint32_t type);
void fx_str(struct fx *f, const char *key, const char *v);
void fx_arr4(struct fx *f, const char *key, uint32_t type, const void *v,
    size_t n);
void fx_arr_str(struct fx *f, const char *key, const char *const *v,
    size_t n);
const char *fx_write(struct fx *f, const char *name);
void expect_refused(struct fx *f, const char *want);
void fx_setup(void);
void fx_teardown(void);

int have(const char *rel);
void add(Suite *s, const char *name, const TTest *test, int fixture);
/* test_tokenizer_bpe.c: adds its tests, the shared ones if present. */
void tt_bpe_add(Suite *s);

#endif
