/*
 * test_model_input: model_open on hostile metadata.  Every hyperparameter
 * of a valid synthetic model is replaced in turn by extreme values; each
 * file must either load or be refused with a message naming a key or a
 * tensor, never crash or make a huge allocation (ASan's allocator limit
 * in CI catches the latter).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_write.h"
#include "model.h"
#include "quant.h"
#include "synth.h"

static char tmpdir[] = "/tmp/sinkd-test-input-XXXXXX";
static char base[512];

static void
setup(void)
{
	struct synth_opts o = { .arch = "llama", .type = QT_Q8_0, .seed = 9 };

	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	synth_shape(&o, "tiny", NULL);
	snprintf(base, sizeof base, "%s/base.gguf", tmpdir);
	ck_assert_int_eq(synth_write(&o, base, NULL), 0);
}

static void
teardown(void)
{
	char cmd[600];

	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

struct copy_arg {
	const struct gguf_tensor *t;
};

static int
copy_fill(void *arg, void *buf, size_t nbytes, char *cause)
{
	const struct gguf_tensor *t = arg;

	(void)cause;
	memcpy(buf, t->data, nbytes);
	return 0;
}

/*
 * base.gguf with key `key` set to v (u32), or removed when drop, and
 * without tensor `skip` (NULL: all kept).
 */
static void
write_variant(const char *path, const char *key, uint32_t v, int drop,
    const char *skip)
{
	struct gguf_file *g = gguf_open(base, NULL);
	struct gguf_writer *w = gguf_writer_new();
	char cause[ERR_LEN] = "";
	uint64_t i;

	ck_assert_ptr_nonnull(g);
	for (i = 0; i < gguf_n_kv(g); i++) {
		const struct gguf_kv *kv = gguf_kv_at(g, i);
		if (!gguf_str_eq(kv->key, key))
			gguf_writer_copy_kv(w, kv);
	}
	if (!drop)
		gguf_writer_add_u32(w, key, v);
	for (i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		char name[128];

		snprintf(name, sizeof name, "%.*s", (int)t->name.len,
		    t->name.ptr);
		if (skip != NULL && strcmp(name, skip) == 0)
			continue;
		gguf_writer_add_tensor(w, name, t->n_dims, t->ne, t->type,
		    copy_fill, (void *)t);
	}
	ck_assert_msg(gguf_writer_write(w, path, cause) == 0, "%s", cause);
	gguf_writer_free(w);
	gguf_close(g);
}

static const char *const keys[] = {
	"llama.context_length", "llama.embedding_length", "llama.block_count",
	"llama.feed_forward_length", "llama.attention.head_count",
	"llama.attention.head_count_kv", "llama.rope.dimension_count",
	"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
};
static const uint32_t values[] = { 0, 1, 3, 63, 65, 1u << 24, 1u << 31,
	0xffffffffu };

START_TEST(extreme_hparams_load_or_fail_cleanly)
{
	const char *key = keys[_i];
	char path[600], cause[ERR_LEN];
	struct model *m;
	size_t v;
	int refused = 0;

	snprintf(path, sizeof path, "%s/v.gguf", tmpdir);
	for (v = 0; v <= sizeof values / sizeof values[0]; v++) {
		int drop = v == sizeof values / sizeof values[0];

		write_variant(path, key, drop ? 0 : values[v], drop, NULL);
		cause[0] = '\0';
		m = model_open(path, NULL, cause);
		if (m == NULL) {
			refused++;
			ck_assert_msg(strlen(cause) > 10, "%s=%u: empty error",
			    key, drop ? 0 : values[v]);
		}
		model_close(m);
	}
	/* Most extremes are wrong for this model: some must be refused. */
	ck_assert_int_gt(refused, 0);
}
END_TEST

START_TEST(huge_block_count_is_refused_before_allocating)
{
	char path[600], cause[ERR_LEN] = "";

	snprintf(path, sizeof path, "%s/blocks.gguf", tmpdir);
	write_variant(path, "llama.block_count", 1u << 24, 0, NULL);
	ck_assert_ptr_null(model_open(path, NULL, cause));
	ck_assert_msg(strstr(cause, "block_count") != NULL, "%s", cause);
}
END_TEST

START_TEST(missing_tensor_is_named)
{
	char path[600], cause[ERR_LEN] = "";

	snprintf(path, sizeof path, "%s/noup.gguf", tmpdir);
	write_variant(path, "llama.block_count", 2, 0, "blk.1.ffn_up.weight");
	ck_assert_ptr_null(model_open(path, NULL, cause));
	ck_assert_msg(strstr(cause, "'blk.1.ffn_up.weight' is missing") !=
	    NULL, "%s", cause);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("model_input");
	TCase *tc = tcase_create("hostile");
	SRunner *sr;
	int failed;

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, extreme_hparams_load_or_fail_cleanly, 0,
	    sizeof keys / sizeof keys[0]);
	tcase_add_test(tc, huge_block_count_is_refused_before_allocating);
	tcase_add_test(tc, missing_tensor_is_named);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
