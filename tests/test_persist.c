/*
 * test_persist: conversations that outlive sinkd.  Real sinkd processes
 * on a private database: restarted (SIGTERM and kill -9) between turns in
 * every cache mode and KV type, killed in the middle of a reply and in
 * the middle of a snapshot, with damaged bytes in the file, with a full
 * disk, with another model; sessions dropped from memory and reloaded;
 * fork, export and import.  Every check of "the same conversation" is on
 * token ids: a restored session must continue exactly as one that never
 * stopped.
 */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_harness.h"
#include "proto.h"

#define MAX_IDS 512

static const char *const std_args[] = { "-t", "1", "--max-tokens",
	"100000", NULL };
static char model[600], model2[600];

static void
setup(void)
{
	dh_setup("persist", 0);
	dh_write_model(model, sizeof model, "tiny", 1);
	dh_write_model(model2, sizeof model2, "wide", 2);
}

static void
db_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s.db", dh_tmpdir(), name);
}

static void
start_on(const char *db, const char *m)
{
	dh_start(m, std_args, "--db", db, NULL);
}

/* kill -9, and the daemon is gone. */
static void
crash(void)
{
	kill(dh_pid(), SIGKILL);
	ck_assert_int_eq(dh_wait(), 128 + SIGKILL);
}

/* What a turn's reply was made of. */
struct reply {
	int32_t ids[MAX_IDS];
	int n;
	int warnings;
	char finish[16];
	int saved;
	uint64_t prompt;	/* usage: prompt_tokens */
};

/*
 * Reads request id's messages to its end: tokens, progress and warnings,
 * then done (0) or an error (-1, its code in finish).
 */
static int
collect(struct dh_conn *c, uint64_t id, struct reply *r)
{
	struct proto_msg *m;
	const msgpack_object *u;
	const char *s;
	size_t len;
	int64_t tok;

	memset(r, 0, sizeof *r);
	while ((m = dh_next(c)) != NULL) {
		ck_assert_int_eq(dh_id_of(m), id);
		if (dh_is_kind(m, "token")) {
			ck_assert_int_eq(proto_get_i64(m, "token", 1, -1,
			    INT32_MAX, &tok, NULL), 0);
			if (tok >= 0 && r->n < MAX_IDS)
				r->ids[r->n++] = (int32_t)tok;
			continue;
		}
		if (dh_is_kind(m, "warning")) {
			r->warnings++;
			continue;
		}
		if (dh_is_kind(m, "progress"))
			continue;
		break;
	}
	ck_assert_ptr_nonnull(m);
	if (dh_is_kind(m, "error")) {
		proto_get_str(m, "code", 1, 64, &s, &len, NULL);
		snprintf(r->finish, sizeof r->finish, "%.*s", (int)len, s);
		return -1;
	}
	ck_assert_msg(dh_is_kind(m, "done"), "reply %llu did not end",
	    (unsigned long long)id);
	proto_get_str(m, "finish", 1, 16, &s, &len, NULL);
	snprintf(r->finish, sizeof r->finish, "%.*s", (int)len, s);
	u = proto_get(m, "usage");
	ck_assert_int_eq(proto_map_get_bool(u, "saved", 1, &r->saved, NULL), 0);
	ck_assert_int_eq(proto_map_get_u64(u, "prompt_tokens", 1, 0,
	    UINT64_MAX, &r->prompt, NULL), 0);
	return 0;
}

/* A chat turn of max tokens (EOS ignored); 0 or -1 as collect. */
static int
chat(struct dh_conn *c, uint64_t id, const char *name, const char *text,
    uint64_t max, struct reply *r)
{
	dh_rq(c, "chat", id, "ssub", "name", name, "text", text, "max_tokens",
	    max, "ignore_eos", 1);
	return collect(c, id, r);
}

static void
same_reply(const struct reply *a, const struct reply *b, const char *what)
{
	int i;

	ck_assert_msg(a->n == b->n, "%s: %d tokens, expected %d", what, b->n,
	    a->n);
	for (i = 0; i < a->n; i++)
		ck_assert_msg(a->ids[i] == b->ids[i], "%s: token %d is %d, "
		    "expected %d", what, i, b->ids[i], a->ids[i]);
}

static void
create(struct dh_conn *c, uint64_t id, const char *name, const char *mode,
    const char *kv, uint64_t cache)
{
	dh_rq(c, "create", id, "sssuuf", "name", name, "mode", mode, "kv", kv,
	    "cache", cache, "seed", (uint64_t)11, "temp", 0.9);
	dh_expect(c, "ok", id);
}

/* The session's key of list/info, as a number. */
static uint64_t
info_u64(struct dh_conn *c, uint64_t id, const char *name, const char *key)
{
	struct proto_msg *m;
	uint64_t v = 0;

	dh_rq(c, "info", id, "s", "name", name);
	m = dh_expect(c, "ok", id);
	ck_assert_int_eq(proto_map_get_u64(proto_get(m, "session"), key, 1, 0,
	    UINT64_MAX, &v, NULL), 0);
	return v;
}

static const char *
info_str(struct dh_conn *c, uint64_t id, const char *name, const char *key)
{
	static char buf[512];
	struct proto_msg *m;
	const char *s;
	size_t len;

	dh_rq(c, "info", id, "s", "name", name);
	m = dh_expect(c, "ok", id);
	ck_assert_int_eq(proto_map_get_str(proto_get(m, "session"), key, 1,
	    sizeof buf - 1, &s, &len, NULL), 0);
	snprintf(buf, sizeof buf, "%.*s", (int)len, s);
	return buf;
}

/* The cache settings every mode test runs, each its own session. */
static const struct {
	const char *name, *mode, *kv;
	uint64_t cache;
} cfgs[] = {
	{ "stream32", "streaming", "f32", 24 },
	{ "stream16", "streaming", "f16", 24 },
	{ "window", "window", "f32", 24 },
	{ "recompute", "recompute", "f16", 24 },
	{ "dense", "dense", "f32", 256 },
};

#define N_CFGS (sizeof cfgs / sizeof cfgs[0])

/*
 * Two turns each, in one daemon that never stops: the reference.
 * Turns of 30 tokens on a cache of 24 evict within a turn.
 */
static void
reference(struct reply ref[N_CFGS][3])
{
	struct dh_conn c;
	size_t i;
	uint64_t id = 1;

	start_on(":memory:", model);
	dh_open(&c);
	for (i = 0; i < N_CFGS; i++) {
		create(&c, id++, cfgs[i].name, cfgs[i].mode, cfgs[i].kv,
		    cfgs[i].cache);
		ck_assert_int_eq(chat(&c, id++, cfgs[i].name, "once upon", 30,
		    &ref[i][0]), 0);
		ck_assert_int_eq(chat(&c, id++, cfgs[i].name, "and then", 30,
		    &ref[i][1]), 0);
		ck_assert_int_eq(chat(&c, id++, cfgs[i].name, "the end", 30,
		    &ref[i][2]), 0);
	}
	dh_close(&c);
	dh_stop();
}

/*
 * Every mode and KV type: a turn, SIGTERM, a turn, kill -9 (after the
 * done: the snapshot is committed), a turn.  Each reply equals the
 * reference's, token for token.
 */
START_TEST(restart_between_turns)
{
	static struct reply ref[N_CFGS][3];
	struct reply r;
	struct dh_conn c;
	char db[512];
	size_t i;
	uint64_t id = 100;

	reference(ref);
	/* In directories that do not exist yet: sinkd makes them. */
	db_path(db, sizeof db, "new/dirs/restart");
	start_on(db, model);
	dh_open(&c);
	for (i = 0; i < N_CFGS; i++) {
		create(&c, id++, cfgs[i].name, cfgs[i].mode, cfgs[i].kv,
		    cfgs[i].cache);
		ck_assert_int_eq(chat(&c, id++, cfgs[i].name, "once upon", 30,
		    &r), 0);
		ck_assert(r.saved);
		same_reply(&ref[i][0], &r, cfgs[i].name);
	}
	dh_close(&c);
	dh_stop();
	start_on(db, model);
	dh_open(&c);
	for (i = 0; i < N_CFGS; i++) {
		ck_assert_str_eq(info_str(&c, id++, cfgs[i].name, "state"),
		    "stored");
		ck_assert_int_eq(chat(&c, id++, cfgs[i].name, "and then", 30,
		    &r), 0);
		same_reply(&ref[i][1], &r, cfgs[i].name);
	}
	dh_close(&c);
	crash();
	start_on(db, model);
	dh_open(&c);
	for (i = 0; i < N_CFGS; i++) {
		ck_assert_uint_eq(info_u64(&c, id++, cfgs[i].name, "turns"), 4);
		ck_assert_int_eq(chat(&c, id++, cfgs[i].name, "the end", 30,
		    &r), 0);
		same_reply(&ref[i][2], &r, cfgs[i].name);
	}
	dh_close(&c);
	dh_stop();
}
END_TEST

/*
 * kill -9 in the middle of a reply: the session is at its last finished
 * turn, and the interrupted turn, asked again, is what it would have been.
 */
START_TEST(kill_during_turn)
{
	struct reply a1, a2, b1, b2;
	struct dh_conn c;
	struct proto_msg *m;
	char db[512];
	uint64_t seen1;
	int i;

	db_path(db, sizeof db, "midturn");
	start_on(db, model);
	dh_open(&c);
	create(&c, 1, "ref", "streaming", "f16", 32);
	create(&c, 2, "s", "streaming", "f16", 32);
	ck_assert_int_eq(chat(&c, 3, "ref", "hello", 20, &a1), 0);
	seen1 = info_u64(&c, 30, "ref", "seen");
	ck_assert_int_eq(chat(&c, 4, "ref", "go on", 40, &a2), 0);
	ck_assert_int_eq(chat(&c, 5, "s", "hello", 20, &b1), 0);
	same_reply(&a1, &b1, "first turn");
	dh_rq(&c, "chat", 6, "ssub", "name", "s", "text", "go on",
	    "max_tokens", (uint64_t)100000, "ignore_eos", 1);
	for (i = 0; i < 50; i++) {
		m = dh_next(&c);
		ck_assert(m != NULL && dh_is_kind(m, "token"));
	}
	crash();
	dh_close(&c);
	start_on(db, model);
	dh_open(&c);
	ck_assert_uint_eq(info_u64(&c, 7, "s", "turns"), 2);
	ck_assert_uint_eq(info_u64(&c, 8, "s", "seen"), seen1);
	ck_assert_int_eq(chat(&c, 18, "s", "go on", 40, &b2), 0);
	same_reply(&a2, &b2, "the interrupted turn again");
	dh_close(&c);
	dh_stop();
}
END_TEST

/*
 * kill -9 while a snapshot's transaction is open (the store waits before
 * COMMIT under SINKD_TEST_SAVE_PAUSE_MS): the database holds the snapshot
 * before, whole, and sinkd --check-db finds nothing wrong.
 */
START_TEST(kill_during_snapshot)
{
	struct reply a[3], b;
	struct dh_conn c;
	struct proto_msg *m;
	char db[512], cmd[1200];
	int i;

	db_path(db, sizeof db, "midsnap");
	start_on(":memory:", model);
	dh_open(&c);
	create(&c, 1, "s", "streaming", "f32", 40);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(chat(&c, 2 + (uint64_t)i, "s", i == 0 ? "one" :
		    "two", 25, &a[i]), 0);
	dh_close(&c);
	dh_stop();

	start_on(db, model);
	dh_open(&c);
	create(&c, 1, "s", "streaming", "f32", 40);
	ck_assert_int_eq(chat(&c, 2, "s", "one", 25, &b), 0);
	same_reply(&a[0], &b, "first turn");
	dh_close(&c);
	dh_stop();

	setenv("SINKD_TEST_SAVE_PAUSE_MS", "3000", 1);
	start_on(db, model);
	unsetenv("SINKD_TEST_SAVE_PAUSE_MS");
	dh_open(&c);
	dh_rq(&c, "chat", 3, "ssub", "name", "s", "text", "two", "max_tokens",
	    (uint64_t)25, "ignore_eos", 1);
	for (i = 0; i < 25; i++) {
		m = dh_next(&c);
		ck_assert(m != NULL && dh_is_kind(m, "token"));
	}
	usleep(300000); /* the worker is inside the snapshot now */
	crash();
	dh_close(&c);

	snprintf(cmd, sizeof cmd, "%s/sinkd --check-db --db %s >/dev/null",
	    getenv("SINKD_BUILDDIR") != NULL ? getenv("SINKD_BUILDDIR") : ".",
	    db);
	ck_assert_int_eq(system(cmd), 0);
	start_on(db, model);
	dh_open(&c);
	ck_assert_uint_eq(info_u64(&c, 4, "s", "turns"), 2);
	ck_assert_int_eq(chat(&c, 5, "s", "two", 25, &b), 0);
	same_reply(&a[1], &b, "the turn whose snapshot was cut");
	ck_assert_int_eq(chat(&c, 6, "s", "two", 25, &b), 0);
	same_reply(&a[2], &b, "the turn after");
	dh_close(&c);
	dh_stop();
}
END_TEST

static void
sql(const char *db, const char *q)
{
	sqlite3 *h;
	char *err = NULL;

	ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(h, q, NULL, NULL, &err) == SQLITE_OK, "%s",
	    err != NULL ? err : "");
	sqlite3_close(h);
}

static int
check_db(const char *db, const char *m, char *out, size_t size)
{
	char cmd[1500];
	FILE *p;
	size_t n;
	int st;

	snprintf(cmd, sizeof cmd, "%s/sinkd --check-db --db %s%s%s 2>&1",
	    getenv("SINKD_BUILDDIR") != NULL ? getenv("SINKD_BUILDDIR") : ".",
	    db, m != NULL ? " -m " : "", m != NULL ? m : "");
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * Rebuilds name (ids from id on): the note, finish fed, loaded, the
 * transcript's turns kept, a turn served; then sinkd stops and the file
 * is sound for model m.  Closes c.
 */
static void
rebuild_sound(struct dh_conn *c, uint64_t id, const char *name,
    uint64_t turns, const char *db, const char *m)
{
	struct reply r;
	char out[4096];

	dh_rq(c, "rebuild", id, "s", "name", name);
	ck_assert_int_eq(collect(c, id, &r), 0);
	ck_assert_int_eq(r.warnings, 1); /* the note: an approximation */
	ck_assert_str_eq(r.finish, "fed");
	ck_assert_str_eq(info_str(c, id + 1, name, "state"), "loaded");
	ck_assert_uint_eq(info_u64(c, id + 2, name, "turns"), turns);
	ck_assert_int_eq(chat(c, id + 3, name, "again", 10, &r), 0);
	dh_close(c);
	dh_stop();
	ck_assert_msg(check_db(db, m, out, sizeof out) == 0, "%s", out);
}

/*
 * A damaged chunk: that session is reported damaged, the others work,
 * --check-db names it, and a rebuild from the transcript revives it.
 */
START_TEST(damaged_chunk)
{
	struct reply r;
	struct dh_conn c;
	struct proto_msg *m;
	char db[512], out[4096];
	const char *msg;
	size_t len;

	db_path(db, sizeof db, "damaged");
	start_on(db, model);
	dh_open(&c);
	create(&c, 1, "bad", "streaming", "f32", 32);
	create(&c, 2, "good", "streaming", "f32", 32);
	ck_assert_int_eq(chat(&c, 3, "bad", "hello", 20, &r), 0);
	ck_assert_int_eq(chat(&c, 4, "good", "hello", 20, &r), 0);
	dh_close(&c);
	dh_stop();
	ck_assert_int_eq(check_db(db, model, out, sizeof out), 0);
	/* One flipped byte: the row is intact, the data is not. */
	sql(db, "UPDATE kv_chunks SET data = CAST(X'00' || substr(data, 2) "
	    "AS BLOB) WHERE session = 'bad' AND layer = 1 AND chunk = 0");
	ck_assert_int_eq(check_db(db, NULL, out, sizeof out), 1);
	ck_assert_msg(strstr(out, "session 'bad': chunk 0 of layer 1 is "
	    "damaged") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "session 'good': ok") != NULL, "%s", out);

	start_on(db, model);
	dh_open(&c);
	dh_rq(&c, "chat", 5, "ss", "name", "bad", "text", "again");
	m = dh_expect(&c, "error", 5);
	ck_assert(dh_code_is(m, "damaged"));
	proto_get_str(m, "message", 1, 1024, &msg, &len, NULL);
	ck_assert_msg(strstr(msg, "CRC") != NULL && strstr(msg, "sink "
	    "rebuild bad") != NULL, "%s", msg);
	ck_assert_str_eq(info_str(&c, 6, "bad", "state"), "damaged");
	ck_assert_int_eq(chat(&c, 7, "good", "again", 10, &r), 0);
	dh_rq(&c, "chat", 8, "ss", "name", "bad", "text", "again");
	dh_expect_error(&c, 8, "damaged", NULL);
	rebuild_sound(&c, 9, "bad", 2, db, model);
}
END_TEST

/*
 * Garbage over a page of the file: --check-db says the file is damaged;
 * sinkd starts, reports the session it cannot read as damaged, and
 * serves on.
 */
START_TEST(damaged_file)
{
	struct reply r;
	struct dh_conn c;
	struct stat st;
	char db[512], out[4096], junk[4096];
	int fd, i, damaged = 0;
	off_t page;

	db_path(db, sizeof db, "pages");
	start_on(db, model);
	dh_open(&c);
	create(&c, 1, "s", "streaming", "f32", 512);
	create(&c, 2, "t", "streaming", "f32", 512);
	ck_assert_int_eq(chat(&c, 3, "s", "hello", 300, &r), 0);
	ck_assert_int_eq(chat(&c, 4, "t", "hello", 300, &r), 0);
	dh_close(&c);
	dh_stop();
	sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	/* Most of the file is KV chunks: a page from its middle is one. */
	ck_assert_int_eq(stat(db, &st), 0);
	page = st.st_size / 4096 / 2;
	memset(junk, 0xa5, sizeof junk);
	fd = open(db, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, junk, sizeof junk, page * 4096), 4096);
	close(fd);
	ck_assert_int_eq(check_db(db, NULL, out, sizeof out), 1);
	ck_assert_msg(strstr(out, "damaged") != NULL || strstr(out,
	    "malformed") != NULL, "%s", out);
	/* sinkd starts, refuses what it cannot read, serves the rest. */
	start_on(db, model);
	dh_open(&c);
	for (i = 0; i < 2; i++) {
		dh_rq(&c, "chat", 5 + (uint64_t)i, "ss", "name", i ? "t" : "s",
		    "text", "again");
		if (collect(&c, 5 + (uint64_t)i, &r) != 0) {
			ck_assert_str_eq(r.finish, "damaged");
			damaged++;
		}
	}
	ck_assert_msg(damaged >= 1, "damage at page %lld went unseen",
	    (long long)page);
	dh_rq(&c, "status", 7, "");
	dh_expect(&c, "ok", 7);
	dh_close(&c);
	dh_stop();
}
END_TEST

/*
 * A full disk (the file capped): the turn still ends well, with a warning;
 * the session goes on in memory; once there is room again the next
 * snapshot stores everything, and a restart finds the whole conversation.
 */
START_TEST(disk_full)
{
	struct reply r, ref[4];
	struct dh_conn c;
	char db[512];
	int i, warned = 0;
	uint64_t id = 1;

	start_on(":memory:", model);
	dh_open(&c);
	create(&c, id++, "s", "streaming", "f32", 64);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(chat(&c, id++, "s", "more", 30, &ref[i]), 0);
	dh_close(&c);
	dh_stop();

	db_path(db, sizeof db, "full");
	dh_start(model, std_args, "--db", db, "--db-max-size", "160K", NULL);
	dh_open(&c);
	/* A big session fills the file. */
	create(&c, id++, "hog", "streaming", "f32", 1024);
	for (i = 0; i < 8; i++)
		chat(&c, id++, "hog", "fill", 100, &r);
	create(&c, id++, "s", "streaming", "f32", 64);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(chat(&c, id++, "s", "more", 30, &r), 0);
		same_reply(&ref[i], &r, "a turn on a full disk");
		warned += r.warnings;
	}
	ck_assert_msg(warned >= 1, "no warning on a full disk");
	ck_assert_int_eq(r.saved, 0);
	dh_rq(&c, "delete", id, "s", "name", "hog");
	dh_expect(&c, "ok", id++);
	ck_assert_int_eq(chat(&c, id++, "s", "more", 30, &r), 0);
	same_reply(&ref[2], &r, "the turn after room was made");
	ck_assert_int_eq(r.saved, 1);
	ck_assert_int_eq(r.warnings, 0);
	dh_close(&c);
	crash();
	start_on(db, model);
	dh_open(&c);
	ck_assert_uint_eq(info_u64(&c, id++, "s", "turns"), 6);
	ck_assert_int_eq(chat(&c, id++, "s", "more", 30, &r), 0);
	same_reply(&ref[3], &r, "after the restart");
	dh_close(&c);
	dh_stop();
}
END_TEST

/*
 * A database locked by another program: a reset and a turn are not
 * saved (warnings, saved false) but go on in memory; once the lock is
 * gone the next snapshot carries the reset too: the old turns are gone
 * from the file, the new ones all there.
 */
START_TEST(locked_database)
{
	struct reply r;
	struct dh_conn c;
	struct proto_msg *m;
	sqlite3 *h;
	char db[512];
	int i, saved = 1;
	uint64_t id = 1;

	db_path(db, sizeof db, "locked");
	start_on(db, model);
	dh_open(&c);
	create(&c, id++, "s", "streaming", "f32", 32);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(chat(&c, id++, "s", "old", 10, &r), 0);
	ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
	    SQLITE_OK);
	dh_rq(&c, "reset", id, "s", "name", "s");
	m = dh_expect(&c, "ok", id++);
	ck_assert_int_eq(proto_get_bool(m, "saved", 1, &saved, NULL), 0);
	ck_assert_int_eq(saved, 0);
	ck_assert_int_eq(chat(&c, id++, "s", "new", 10, &r), 0);
	ck_assert_int_eq(r.saved, 0);
	ck_assert_int_eq(r.warnings, 1);
	ck_assert_int_eq(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(h);
	ck_assert_int_eq(chat(&c, id++, "s", "new", 10, &r), 0);
	ck_assert_int_eq(r.saved, 1);
	dh_close(&c);
	crash();
	start_on(db, model);
	dh_open(&c);
	ck_assert_uint_eq(info_u64(&c, id++, "s", "turns"), 4);
	dh_close(&c);
	dh_stop();
}
END_TEST

/* Sessions of another model are damaged, and its exports refused. */
START_TEST(wrong_model)
{
	struct reply r;
	struct dh_conn c;
	struct proto_msg *m;
	char db[512];
	const char *msg;
	size_t len;

	db_path(db, sizeof db, "model");
	start_on(db, model);
	dh_open(&c);
	create(&c, 1, "s", "streaming", "f32", 32);
	ck_assert_int_eq(chat(&c, 2, "s", "hello", 10, &r), 0);
	dh_close(&c);
	dh_stop();
	start_on(db, model2);
	dh_open(&c);
	ck_assert_str_eq(info_str(&c, 3, "s", "state"), "damaged");
	dh_rq(&c, "chat", 4, "ss", "name", "s", "text", "hi");
	m = dh_expect(&c, "error", 4);
	ck_assert(dh_code_is(m, "damaged"));
	proto_get_str(m, "message", 1, 1024, &msg, &len, NULL);
	ck_assert_msg(strstr(msg, "another model") != NULL, "%s", msg);
	dh_close(&c);
	dh_stop();
	/* The file was not changed for it: the first model still has it. */
	start_on(db, model);
	dh_open(&c);
	ck_assert_int_eq(chat(&c, 5, "s", "hello", 10, &r), 0);
	dh_close(&c);
	dh_stop();
	/* Rebuilt by the other model from the transcript's text: its own. */
	start_on(db, model2);
	dh_open(&c);
	rebuild_sound(&c, 6, "s", 4, db, model2);
}
END_TEST

/*
 * --max-sessions 2 with five sessions: at most two in memory, the others
 * reloaded on use, every reply as if nothing had left memory.
 */
START_TEST(memory_budget)
{
	struct reply ref[5][2], r;
	struct dh_conn c;
	struct proto_msg *m;
	char db[512], name[8];
	int i, k;
	uint64_t id = 1, resident;

	start_on(":memory:", model);
	dh_open(&c);
	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof name, "m%d", i);
		create(&c, id++, name, "streaming", "f16", 32);
	}
	for (k = 0; k < 2; k++)
		for (i = 0; i < 5; i++) {
			snprintf(name, sizeof name, "m%d", i);
			ck_assert_int_eq(chat(&c, id++, name, "hey", 20,
			    &ref[i][k]), 0);
		}
	dh_close(&c);
	dh_stop();

	db_path(db, sizeof db, "budget");
	dh_start(model, std_args, "--db", db, "--max-sessions", "2", NULL);
	dh_open(&c);
	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof name, "m%d", i);
		create(&c, id++, name, "streaming", "f16", 32);
	}
	for (k = 0; k < 2; k++)
		for (i = 0; i < 5; i++) {
			snprintf(name, sizeof name, "m%d", i);
			ck_assert_int_eq(chat(&c, id++, name, "hey", 20, &r),
			    0);
			same_reply(&ref[i][k], &r, name);
			dh_rq(&c, "status", id, "");
			m = dh_expect(&c, "ok", id++);
			ck_assert_int_eq(proto_get_u64(m, "resident", 1, 0,
			    100, &resident, NULL), 0);
			ck_assert_uint_le(resident, 2);
		}
	ck_assert_str_eq(info_str(&c, id++, "m0", "state"), "stored");
	ck_assert_str_eq(info_str(&c, id++, "m4", "state"), "loaded");
	dh_close(&c);
	dh_stop();
}
END_TEST

static const char *
msg_of(const struct proto_msg *m)
{
	static char buf[1100];
	const char *s = "";
	size_t len = 0;

	proto_get_str(m, "message", 0, 1024, &s, &len, NULL);
	snprintf(buf, sizeof buf, "%.*s", (int)len, s);
	return buf;
}

/* Export's data messages, concatenated: the file. */
static uint8_t *
export(struct dh_conn *c, uint64_t id, const char *name, size_t *len)
{
	struct proto_msg *m;
	const void *d;
	uint8_t *buf = NULL;
	size_t n;

	*len = 0;
	dh_rq(c, "export", id, "s", "name", name);
	while ((m = dh_next(c)) != NULL && dh_is_kind(m, "data")) {
		ck_assert_int_eq(proto_get_bin(m, "data", 1, SIZE_MAX, &d, &n,
		    NULL), 0);
		buf = realloc(buf, *len + n);
		ck_assert_ptr_nonnull(buf);
		memcpy(buf + *len, d, n);
		*len += n;
	}
	ck_assert(m != NULL && dh_is_kind(m, "ok") && dh_id_of(m) == id);
	return buf;
}

/* Sends buf in parts of `part` bytes; the last one's reply is read. */
static struct proto_msg *
import(struct dh_conn *c, uint64_t id, const uint8_t *buf, size_t len,
    size_t part, const char *name)
{
	struct proto_out o;
	const char *data;
	size_t at = 0, n, flen;
	int more;

	do {
		n = len - at < part ? len - at : part;
		more = at + n < len;
		proto_out_init(&o);
		proto_pack_map(&o, name != NULL ? 5 : 4);
		proto_put_cstr(&o, "op", "import");
		proto_put_u64(&o, "id", id);
		proto_put_bin(&o, "data", buf + at, n);
		proto_put_bool(&o, "more", more);
		if (name != NULL)
			proto_put_cstr(&o, "name", name);
		ck_assert_int_eq(proto_out_finish(&o, PROTO_MAX_FRAME, &data,
		    &flen, NULL), 0);
		dh_send_raw(c, data, flen);
		proto_out_free(&o);
		at += n;
		if (more)
			dh_expect(c, "ok", id);
	} while (more);
	return dh_next(c);
}

/* map with key's value replaced: packed into o. */
static void
pack_replacing(struct proto_out *o, const msgpack_object *map,
    const char *key, void (*put)(struct proto_out *, void *), void *arg)
{
	uint32_t i;

	proto_pack_map(o, map->via.map.size);
	for (i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		proto_pack_object(o, &kv->key);
		if (kv->key.via.str.size == strlen(key) &&
		    memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0)
			put(o, arg);
		else
			proto_pack_object(o, &kv->val);
	}
}

static void
put_seen(struct proto_out *o, void *arg)
{
	proto_pack_i64(o, *(int64_t *)arg);
}

/* The state blob with "seen" set to *arg, as a bin. */
static void
put_state(struct proto_out *o, void *arg)
{
	const msgpack_object *st = ((void **)arg)[0];
	struct proto_msg m;
	struct proto_out inner;
	const char *data;
	size_t len;

	ck_assert_int_eq(proto_msg_parse(&m, (const uint8_t *)st->via.bin.ptr,
	    st->via.bin.size, NULL), 0);
	proto_out_init(&inner);
	pack_replacing(&inner, &m.root, "seen", put_seen, ((void **)arg)[1]);
	ck_assert_int_eq(proto_out_finish(&inner, 1u << 30, &data, &len,
	    NULL), 0);
	proto_pack_bin(o, data + 4, len - 4);
	proto_out_free(&inner);
	proto_msg_free(&m);
}

/*
 * An export whose head says the stream is at seen (version: its format's
 * version is that instead): a forged file.
 */
static uint8_t *
forge(const uint8_t *file, size_t len, int version, int64_t seen,
    size_t *out_len)
{
	struct proto_msg head;
	struct proto_out o;
	const char *data;
	size_t hl = (size_t)file[0] << 24 | (size_t)file[1] << 16 |
	    (size_t)file[2] << 8 | file[3], n;
	void *arg[2];
	uint8_t *f;

	ck_assert_int_eq(proto_msg_parse(&head, file + 4, hl, NULL), 0);
	arg[0] = (void *)proto_get(&head, "state");
	arg[1] = &seen;
	proto_out_init(&o);
	if (version)
		pack_replacing(&o, &head.root, "version", put_seen, &seen);
	else
		pack_replacing(&o, &head.root, "state", put_state, arg);
	ck_assert_int_eq(proto_out_finish(&o, 1u << 30, &data, &n, NULL), 0);
	f = malloc(n + len);
	memcpy(f, data, n);
	memcpy(f + n, file + 4 + hl, len - 4 - hl);
	*out_len = n + len - 4 - hl;
	proto_out_free(&o);
	proto_msg_free(&head);
	return f;
}

/*
 * fork, export and import carry the whole state: the copies continue
 * exactly as the original does; bad exports are refused by name.
 */
START_TEST(fork_export_import)
{
	struct reply a, b;
	struct dh_conn c;
	struct proto_msg *m;
	char db[512];
	uint8_t *file, *forged;
	size_t len, flen;

	db_path(db, sizeof db, "copies");
	start_on(db, model);
	dh_open(&c);
	create(&c, 1, "s", "streaming", "f16", 32);
	ck_assert_int_eq(chat(&c, 2, "s", "hello", 40, &a), 0);
	dh_rq(&c, "fork", 3, "ss", "name", "s", "new", "f");
	dh_expect(&c, "ok", 3);
	dh_rq(&c, "fork", 4, "ss", "name", "s", "new", "f");
	dh_expect_error(&c, 4, "exists", NULL);
	file = export(&c, 5, "s", &len);
	ck_assert_uint_gt(len, 1000);
	m = import(&c, 6, file, len, 700, "t");
	ck_assert_msg(dh_is_kind(m, "ok"), "import: %s", msg_of(m));
	m = import(&c, 7, file, len, len, NULL);
	ck_assert(dh_is_kind(m, "error") && dh_code_is(m, "exists"));
	m = import(&c, 8, file, len / 2, 4096, "u");
	ck_assert(dh_is_kind(m, "error") && dh_code_is(m, "bad_request"));
	m = import(&c, 9, (const uint8_t *)"\0\0\0\3abc", 7, 7, "v");
	ck_assert(dh_is_kind(m, "error") && dh_code_is(m, "bad_request"));
	/* A stream position no stream reaches: refused, not overflowed. */
	forged = forge(file, len, 0, INT64_MAX, &flen);
	m = import(&c, 20, forged, flen, 65536, "w");
	ck_assert_msg(dh_is_kind(m, "error") && dh_code_is(m, "bad_request"),
	    "forged seen: %s", msg_of(m));
	free(forged);
	forged = forge(file, len, 1, 2, &flen); /* a newer format */
	m = import(&c, 22, forged, flen, 65536, "w");
	ck_assert_msg(dh_is_kind(m, "error") && strstr(msg_of(m), "newer") !=
	    NULL, "version 2: %s", msg_of(m));
	free(forged);
	forged = forge(file, len, 0, 40, &flen); /* the real one: fine */
	m = import(&c, 21, forged, flen, 65536, "w");
	ck_assert_msg(dh_is_kind(m, "ok"), "re-packed export: %s", msg_of(m));
	free(forged);
	ck_assert_int_eq(chat(&c, 10, "s", "more", 30, &a), 0);
	ck_assert_int_eq(chat(&c, 11, "f", "more", 30, &b), 0);
	same_reply(&a, &b, "the fork");
	ck_assert_int_eq(chat(&c, 12, "t", "more", 30, &b), 0);
	same_reply(&a, &b, "the import");
	ck_assert_uint_eq(info_u64(&c, 13, "t", "turns"), 4);
	dh_close(&c);
	dh_stop();

	/* Another model refuses the file by name. */
	start_on(":memory:", model2);
	dh_open(&c);
	m = import(&c, 14, file, len, 65536, NULL);
	ck_assert(dh_is_kind(m, "error") && dh_code_is(m, "wrong_model"));
	dh_close(&c);
	dh_stop();
	free(file);
}
END_TEST

/*
 * An export goes out as the client reads: with a small max-output the
 * daemon holds a few chunks at a time; meanwhile the session refuses a
 * reset and keeps a turn waiting, which runs once the export is done.
 * The file is the session as it was when the export began.
 */
START_TEST(export_paced)
{
	struct reply r;
	struct dh_conn a, b;
	struct proto_msg *m;
	char db[512];
	static char text[40000];
	uint8_t *file;
	size_t len, i;
	uint64_t turns;

	db_path(db, sizeof db, "paced");
	dh_start(model, std_args, "--db", db, "--max-output", "65536", NULL);
	dh_open(&a);
	dh_open(&b);
	create(&a, 1, "s", "streaming", "f32", 4096);
	for (i = 0; i + 8 < sizeof text; i += 6)
		memcpy(text + i, i % 4 ? "stone " : "river ", 6);
	text[i] = '\0';
	dh_rq(&a, "feed", 2, "ss", "name", "s", "text", text);
	ck_assert_int_eq(collect(&a, 2, &r), 0);
	turns = info_u64(&a, 3, "s", "turns");
	dh_rq(&a, "export", 4, "s", "name", "s");
	usleep(200000);
	dh_rq(&b, "reset", 5, "s", "name", "s");
	dh_expect_error(&b, 5, "busy", NULL);
	dh_rq(&b, "chat", 6, "ssub", "name", "s", "text", "hi", "max_tokens",
	    (uint64_t)5, "ignore_eos", 1);
	usleep(200000);
	ck_assert_uint_eq(info_u64(&b, 7, "s", "turns"), turns);
	/* Now read the export (export() sent it again: a second is busy). */
	len = 0;
	file = NULL;
	while ((m = dh_next(&a)) != NULL && dh_is_kind(m, "data")) {
		const void *d;
		size_t n;
		ck_assert_int_eq(proto_get_bin(m, "data", 1, SIZE_MAX, &d, &n,
		    NULL), 0);
		file = realloc(file, len + n);
		memcpy(file + len, d, n);
		len += n;
	}
	ck_assert(m != NULL && dh_is_kind(m, "ok") && dh_id_of(m) == 4);
	ck_assert_uint_gt(len, 1 << 20);
	ck_assert_int_eq(collect(&b, 6, &r), 0);
	ck_assert_uint_eq(info_u64(&b, 8, "s", "turns"), turns + 2);
	m = import(&b, 9, file, len, 500000, "copy");
	ck_assert_msg(dh_is_kind(m, "ok"), "import: %s", msg_of(m));
	ck_assert_uint_eq(info_u64(&b, 10, "copy", "turns"), turns);
	free(file);
	dh_close(&a);
	dh_close(&b);
	dh_stop();
}
END_TEST

/*
 * A delete while the session's turn runs is answered once the session is
 * gone from the file (after the turn's own snapshot): kill -9 right after
 * the ok, and it stays gone.
 */
START_TEST(delete_while_running)
{
	struct dh_conn a, b;
	struct proto_msg *m;
	char db[512];
	int i;

	db_path(db, sizeof db, "delete");
	start_on(db, model);
	dh_open(&a);
	dh_open(&b);
	create(&a, 1, "s", "streaming", "f32", 32);
	dh_rq(&a, "chat", 2, "ssub", "name", "s", "text", "go", "max_tokens",
	    (uint64_t)100000, "ignore_eos", 1);
	for (i = 0; i < 20; i++) {
		m = dh_next(&a);
		ck_assert(m != NULL && dh_is_kind(m, "token"));
	}
	dh_rq(&b, "delete", 3, "s", "name", "s");
	dh_expect(&b, "ok", 3);
	crash();
	dh_close(&a);
	dh_close(&b);
	start_on(db, model);
	dh_open(&a);
	dh_rq(&a, "info", 4, "s", "name", "s");
	dh_expect_error(&a, 4, "no_such_session", NULL);
	dh_close(&a);
	dh_stop();
}
END_TEST

/*
 * kill -9 while the system prompt's own snapshot is open: the session
 * was saved at create without it; its first turn after the restart puts
 * the prompt first, and replies as a session that never stopped.
 */
START_TEST(system_prompt_survives)
{
	static const char sys[] = "You are a pirate and talk about ships.";
	struct reply a, b;
	struct dh_conn c;
	char db[512];

	start_on(":memory:", model);
	dh_open(&c);
	dh_rq(&c, "create", 1, "ssuf", "name", "s", "system", sys, "seed",
	    (uint64_t)3, "temp", 0.9);
	dh_expect(&c, "ok", 1);
	ck_assert_int_eq(chat(&c, 2, "s", "ahoy", 20, &a), 0);
	dh_close(&c);
	dh_stop();

	db_path(db, sizeof db, "system");
	setenv("SINKD_TEST_SAVE_PAUSE_MS", "3000", 1);
	start_on(db, model);
	unsetenv("SINKD_TEST_SAVE_PAUSE_MS");
	dh_open(&c);
	/* create's own save waits 3 s too: its reply comes after it. */
	dh_rq(&c, "create", 1, "ssuf", "name", "s", "system", sys, "seed",
	    (uint64_t)3, "temp", 0.9);
	dh_expect(&c, "ok", 1);
	usleep(500000);	/* the prompt's job is inside its snapshot */
	crash();
	dh_close(&c);
	start_on(db, model);
	dh_open(&c);
	ck_assert_uint_eq(info_u64(&c, 3, "s", "seen"), 0);
	ck_assert_int_eq(chat(&c, 4, "s", "ahoy", 20, &b), 0);
	same_reply(&a, &b, "the first turn after the prompt was lost");
	dh_close(&c);
	dh_stop();
}
END_TEST

/*
 * A rebuild of a long transcript (over two pages of the store's turns)
 * fills the cache from its newest turns, and the transcript stays.
 */
START_TEST(rebuild_long)
{
	struct reply r;
	struct dh_conn c;
	char db[512];
	uint64_t id = 2;
	int i;

	db_path(db, sizeof db, "long");
	start_on(db, model);
	dh_open(&c);
	create(&c, 1, "s", "streaming", "f32", 32);
	for (i = 0; i < 150; i++) {
		dh_rq(&c, "feed", id, "ss", "name", "s", "text", "one more");
		ck_assert_int_eq(collect(&c, id++, &r), 0);
	}
	dh_rq(&c, "rebuild", id, "s", "name", "s");
	ck_assert_int_eq(collect(&c, id++, &r), 0);
	ck_assert_uint_eq(r.prompt, 32);
	ck_assert_uint_eq(info_u64(&c, id++, "s", "turns"), 150);
	ck_assert_uint_eq(info_u64(&c, id++, "s", "cached"), 32);
	dh_close(&c);
	dh_stop();
}
END_TEST

/* A database from a newer sinkd: refused at startup, not modified. */
START_TEST(newer_database)
{
	char db[512], cmd[1500];
	struct stat a, b;

	db_path(db, sizeof db, "newer");
	sql(db, "CREATE TABLE x(y); PRAGMA user_version = 7");
	ck_assert_int_eq(stat(db, &a), 0);
	snprintf(cmd, sizeof cmd, "%s/sinkd -m %s --db %s --socket %s/n.sock "
	    "2>%s/newer.err", getenv("SINKD_BUILDDIR") != NULL ?
	    getenv("SINKD_BUILDDIR") : ".", model, db, dh_tmpdir(),
	    dh_tmpdir());
	ck_assert_int_ne(system(cmd), 0);
	ck_assert_int_eq(stat(db, &b), 0);
	ck_assert_int_eq(a.st_size, b.st_size);
	ck_assert_int_eq(a.st_mtime, b.st_mtime);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("persist");
	TCase *tc = tcase_create("persist");
	SRunner *sr;
	int failed;

	tcase_add_unchecked_fixture(tc, setup, dh_teardown);
	tcase_add_checked_fixture(tc, NULL, dh_each_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, restart_between_turns);
	tcase_add_test(tc, kill_during_turn);
	tcase_add_test(tc, kill_during_snapshot);
	tcase_add_test(tc, damaged_chunk);
	tcase_add_test(tc, damaged_file);
	tcase_add_test(tc, disk_full);
	tcase_add_test(tc, locked_database);
	tcase_add_test(tc, wrong_model);
	tcase_add_test(tc, memory_budget);
	tcase_add_test(tc, fork_export_import);
	tcase_add_test(tc, export_paced);
	tcase_add_test(tc, delete_while_running);
	tcase_add_test(tc, system_prompt_survives);
	tcase_add_test(tc, rebuild_long);
	tcase_add_test(tc, newer_database);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
