/*
 * test_store: the database file: created private and versioned,
 * reopened as is, a newer schema refused and left byte for byte alone,
 * damage found by the integrity check, bad paths named.
 */
#include <check.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc.h"
#include "model.h"
#include "pool.h"
#include "quant.h"
#include "seq.h"
#include "sha256.h"
#include "store.h"
#include "synth.h"

static char tmpdir[] = "/tmp/sinkd-test-store-XXXXXX";

static void
setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

static void
db_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* SHA-256 of a file, to see that nothing changed it. */
static void
file_hash(const char *path, char hex[65])
{
	struct sha256 h;
	uint8_t d[32], b[4096];
	FILE *f = fopen(path, "rb");
	size_t n;

	ck_assert_ptr_nonnull(f);
	sha256_init(&h);
	while ((n = fread(b, 1, sizeof b, f)) > 0)
		sha256_update(&h, b, n);
	fclose(f);
	sha256_final(&h, d);
	sha256_hex(d, hex);
}

static int
count_tables(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int n = -1;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM "
	    "sqlite_master WHERE type='table'", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

START_TEST(create_and_reopen)
{
	char path[256], cause[ERR_LEN] = "";
	struct store *s;
	struct stat st;

	db_path(path, sizeof path, "a.db");
	s = store_open(path, cause);
	ck_assert_msg(s != NULL, "%s", cause);
	ck_assert_int_eq(store_found_version(s), 0);
	ck_assert_int_eq(store_check(s, cause), 0);
	store_close(s);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(count_tables(path), 4);
	s = store_open(path, cause);
	ck_assert_msg(s != NULL, "%s", cause);
	ck_assert_int_eq(store_found_version(s), STORE_SCHEMA);
	store_close(s);
}
END_TEST

START_TEST(newer_schema_untouched)
{
	char path[256], cause[ERR_LEN] = "", before[65], after[65];
	sqlite3 *db;

	db_path(path, sizeof path, "newer.db");
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE x(y); "
	    "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	file_hash(path, before);
	ck_assert_ptr_null(store_open(path, cause));
	ck_assert_msg(strstr(cause, "newer sinkd (schema 99") != NULL, "%s",
	    cause);
	file_hash(path, after);
	ck_assert_str_eq(before, after);
}
END_TEST

/*
 * One writer at a time: a second store_open of the same file is refused
 * naming the holder's pid, readers still open it, and closing the first
 * frees the file for the next writer.
 */
START_TEST(one_writer)
{
	char path[256], cause[ERR_LEN] = "", want[64];
	struct store *a, *b;

	db_path(path, sizeof path, "locked.db");
	a = store_open(path, cause);
	ck_assert_msg(a != NULL, "%s", cause);
	ck_assert_ptr_null(store_open(path, cause));
	snprintf(want, sizeof want, "in use by another sinkd (pid %ld)",
	    (long)getpid());
	ck_assert_msg(strstr(cause, want) != NULL, "%s", cause);
	b = store_open_readonly(path, cause);
	ck_assert_msg(b != NULL, "%s", cause);
	store_close(b);
	store_close(a);
	a = store_open(path, cause);
	ck_assert_msg(a != NULL, "%s", cause);
	store_close(a);
}
END_TEST

/* Garbage over a page of a table: the check (or the open) says so. */
START_TEST(damage_is_found)
{
	char path[256], cause[ERR_LEN] = "", junk[4096];
	struct store *s;
	sqlite3 *db;
	int fd, i, found;

	db_path(path, sizeof path, "d.db");
	s = store_open(path, cause);
	ck_assert_ptr_nonnull(s);
	store_close(s);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE); "
	    "PRAGMA journal_mode=DELETE", NULL, NULL, NULL), SQLITE_OK);
	for (i = 0; i < 200; i++) {
		char sql[128];
		snprintf(sql, sizeof sql, "INSERT INTO turns VALUES('s', %d, 0, "
		    "randomblob(300), x'')", i);
		ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL),
		    SQLITE_OK);
	}
	sqlite3_close(db);
	memset(junk, 0x5a, sizeof junk);
	fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, junk, sizeof junk, 4096 * 3), 4096);
	close(fd);
	s = store_open(path, cause);
	found = s == NULL || store_check(s, cause) != 0;
	ck_assert_msg(found, "damage not found");
	ck_assert(cause[0] != '\0');
	store_close(s);
}
END_TEST

START_TEST(bad_paths)
{
	char path[256], cause[ERR_LEN] = "";

	db_path(path, sizeof path, "no/such/dir/x.db");
	ck_assert_ptr_null(store_open(path, cause));
	ck_assert_ptr_nonnull(strstr(cause, "No such file"));
	ck_assert_ptr_null(store_open(tmpdir, cause)); /* a directory */
	ck_assert(cause[0] != '\0');
}
END_TEST

static struct pool *pool;

/* The test's own state blob: n_seen, then the slots' token ids. */
static void *
state_blob(const struct seq *q, size_t *len)
{
	struct seq_info si;
	int64_t *b;

	seq_get_info(q, &si);
	*len = sizeof(int64_t) + (size_t)si.n_cache * sizeof(int32_t);
	b = malloc(*len);
	b[0] = si.n_seen;
	memcpy(b + 1, seq_tokens(q), (size_t)si.n_cache * sizeof(int32_t));
	return b;
}

static void
save(struct store *st, struct seq *q, const struct model *m)
{
	struct store_row r = { .name = "s", .owner = 7, .created = 1,
		.used = 2, .options = "opts", .options_len = 4 };
	char cause[ERR_LEN] = "";
	void *state = state_blob(q, &r.state_len);
	struct store_snap sn = { .row = &r, .seq = q,
		.n_layer = m->hp.n_layer };

	snprintf(r.fingerprint, sizeof r.fingerprint, "%s", m->fingerprint);

	r.state = state;
	ck_assert_msg(store_save(st, &sn, NULL, cause) == 0, "%s", cause);
	seq_clean(q);
	free(state);
}

/*
 * A session saved (every chunk written so far), then only what changed,
 * loads into a fresh sequence that continues bit for bit; a damaged
 * chunk is refused.
 */
START_TEST(save_and_load)
{
	struct synth_opts so = { .arch = "llama", .type = QT_F32, .seed = 5 };
	char path[256], db[256], cause[ERR_LEN] = "";
	struct seq_opts o;
	struct store_row r;
	struct model *m;
	struct seq *a, *b;
	struct seq_work *w;
	struct store *st;
	void *opt, *state;
	int32_t ids[300];
	float *la, *lb;
	size_t i, nv;
	sqlite3 *raw;

	synth_shape(&so, "tiny", NULL);
	db_path(path, sizeof path, "m.gguf");
	ck_assert_int_eq(synth_write(&so, path, NULL), 0);
	m = model_open(path, NULL, NULL);
	ck_assert_ptr_nonnull(m);
	nv = (size_t)m->hp.n_vocab;
	for (i = 0; i < 300; i++)
		ids[i] = (int32_t)((i * 31 + 7) % nv);
	seq_opts_default(&o);
	o.n_cache = 100;
	a = seq_new(m, &o, NULL);
	b = seq_new(m, &o, NULL);
	w = seq_work_new(m, 64, NULL);
	la = malloc(10 * nv * sizeof *la);
	lb = malloc(10 * nv * sizeof *lb);
	db_path(db, sizeof db, "s.db");
	st = store_open(db, cause);
	ck_assert_msg(st != NULL, "%s", cause);
	ck_assert_int_eq(seq_eval(a, w, pool, ids, 250, NULL, 0, NULL), 0);
	save(st, a, m);
	ck_assert_int_eq(seq_eval(a, w, pool, ids + 250, 30, NULL, 0, NULL), 0);
	save(st, a, m); /* the dirty chunks only */
	ck_assert_int_eq(store_load_row(st, "s", &r, &opt, &state, cause), 0);
	ck_assert_str_eq(r.fingerprint, m->fingerprint);
	ck_assert_int_eq(r.owner, 7);
	ck_assert_int_eq(store_load_chunks(st, "s", b, m->hp.n_layer, cause),
	    0);
	ck_assert_int_eq(seq_restore(b, ((int64_t *)state)[0],
	    (int32_t *)((int64_t *)state + 1), cause), 0);
	ck_assert_int_eq(seq_eval(a, w, pool, ids + 280, 10, la, 1, NULL), 0);
	ck_assert_int_eq(seq_eval(b, w, pool, ids + 280, 10, lb, 1, NULL), 0);
	ck_assert(memcmp(la, lb, 10 * nv * sizeof *la) == 0);
	free(opt);
	free(state);
	ck_assert_int_eq(store_load_row(st, "none", &r, &opt, &state, cause),
	    1);
	/* A flipped byte in a stored chunk. */
	ck_assert_int_eq(sqlite3_open(db, &raw), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(raw, "UPDATE kv_chunks SET data = "
	    "zeroblob(length(data)) WHERE layer = 1 AND chunk = 0", NULL, NULL,
	    NULL), SQLITE_OK);
	sqlite3_close(raw);
	ck_assert_int_eq(store_load_chunks(st, "s", b, m->hp.n_layer, cause),
	    -1);
	ck_assert_ptr_nonnull(strstr(cause, "damaged"));
	store_close(st);
	free(la);
	free(lb);
	seq_work_free(w);
	seq_free(a);
	seq_free(b);
	model_close(m);
}
END_TEST

/* CRC-32C: the known value, and the hardware path equals the table. */
START_TEST(chunk_checksum)
{
	unsigned char b[1031];
	size_t i, off, len;

	ck_assert_uint_eq(crc_32c(0, "123456789", 9), 0xe3069283u);
	ck_assert_uint_eq(store_crc("123456789", 9), 0xe3069283u);
	ck_assert_uint_eq(crc_32c(crc_32c(0, "1234", 4), "56789", 5),
	    0xe3069283u);
	ck_assert_uint_eq(crc_32(0, "123456789", 9), 0xcbf43926u);
	for (i = 0; i < sizeof b; i++)
		b[i] = (unsigned char)(i * 2654435761u >> 13);
	for (off = 0; off < 9; off++)
		for (len = 0; len + off <= sizeof b; len += 37)
			ck_assert_uint_eq(crc_32c(7, b + off, len),
			    crc_32c_table(7, b + off, len));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");
	SRunner *sr;
	int failed;

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_add_test(tc, create_and_reopen);
	tcase_add_test(tc, newer_schema_untouched);
	tcase_add_test(tc, one_writer);
	tcase_add_test(tc, damage_is_found);
	tcase_add_test(tc, bad_paths);
	tcase_add_test(tc, save_and_load);
	tcase_add_test(tc, chunk_checksum);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	pool = pool_new(1, NULL);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	pool_free(pool);
	return failed == 0 ? 0 : 1;
}
