/*
 * bench_store: `sinkd-bench store`, what the database costs.  Drives a
 * real sinkd (bench_store_sd.c) on a private database and reads the
 * figures each turn's usage reports, on sessions s0, s1, ... whose
 * caches are full:
 *   snapshot  save_ms of a typical turn (a reply of --reply tokens)
 *             against that turn's prefill + decode time;
 *   restore   load_ms of a full session: under --max-sessions 1, s0 and
 *             s1 take turns, so that every turn reloads one; with the
 *             file in the page cache (warm) and dropped from it (cold);
 *             then where the time goes, measured here through the
 *             store's own code: SQLite reading the chunks, store_crc
 *             checking them, and copying them into a new buffer;
 *   size      the database over --turns one-letter feeds spread over
 *             --sessions sessions (after a restart): the KV chunks, the
 *             transcript and the rest, at checkpoints.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bench_store.h"
#include "opt.h"
#include "seq.h"
#include "store.h"

#define FILL_WORDS 128		/* one feed while filling a cache */
#define N_MARKS 6

static const char *const words[] = {
	"the", "little", "cat", "sat", "on", "a", "warm", "mat", "and",
	"looked", "at", "bird", "in", "tree", "while", "sun", "went",
	"down", "over", "quiet", "town", "where", "children", "played",
	"with", "red", "ball", "until", "their", "mother", "called", "home",
};

/* n pseudo-random words into buf (xorshift64 on *rng). */
static void
make_text(char *buf, size_t size, int n, uint64_t *rng)
{
	size_t off = 0;
	uint64_t x;
	int i;

	buf[0] = '\0';
	for (i = 0; i < n && off + 16 < size; i++) {
		x = *rng;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		*rng = x;
		off += (size_t)snprintf(buf + off, size - off, "%s%s",
		    i > 0 ? " " : "", words[x % (sizeof words /
		    sizeof words[0])]);
	}
}

static void progress(int last, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* On a terminal, one line redrawn; elsewhere only the last. */
static void
progress(int last, const char *fmt, ...)
{
	int tty = isatty(STDERR_FILENO);
	va_list ap;

	if (!tty && !last)
		return;
	va_start(ap, fmt);
	fputs(tty ? "\r\033[K" : "", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(last ? "\n" : "", stderr);
	va_end(ap);
}

static double
mib(uint64_t b)
{
	return (double)b / (1024.0 * 1024.0);
}

static const char *
verdict(int met)
{
	return met ? "met" : "MISSED";
}

/* Sessions s<filled>..s<n-1>, each fed until its cache has wrapped. */
static int
fill_upto(struct sd *d, long n, uint64_t *rng, char *cause)
{
	char text[FILL_WORDS * 12], name[32];
	struct usage u;
	double t0;
	long fed, i;

	for (; d->filled < n; d->filled++) {
		snprintf(name, sizeof name, "s%ld", d->filled);
		if (sd_create(d, name, &d->kv_bytes, cause) != 0)
			return -1;
		t0 = opt_now();
		for (fed = 0, i = 0, u.evicted = 0; u.evicted == 0; i++) {
			make_text(text, sizeof text, FILL_WORDS, rng);
			if (sd_turn(d, name, text, 0, &u, cause) != 0)
				return -1;
			fed += (long)u.prompt;
			progress(0, "filling '%s': %ld tokens", name, fed);
			sd_csv(d, "fill", i, name, &u);
		}
		progress(1, "filled '%s': %ld tokens in %.1f s", name, fed,
		    opt_now() - t0);
	}
	return 0;
}

/* ---- snapshot of a turn ---- */

struct turn_figs {
	double *ratio, *save, *turn, *bytes;
};

static int
snapshot_turns(struct sd *d, struct turn_figs *f, char *cause)
{
	const struct sopts *o = d->o;
	uint64_t rng = 7;
	char text[256];
	struct usage u;
	long r;

	for (r = 0; r < o->rounds; r++) {
		progress(0, "snapshot: turn %ld/%ld", r + 1, o->rounds);
		make_text(text, sizeof text, 8, &rng);
		if (sd_turn(d, "s0", text, o->reply, &u, cause) != 0)
			return -1;
		if (u.generated != (uint64_t)o->reply)
			return err_set(cause, "a turn generated %llu tokens, "
			    "not %ld", (unsigned long long)u.generated,
			    o->reply);
		f->turn[r] = u.prefill_ms + u.decode_ms;
		f->ratio[r] = 100.0 * u.save_ms / f->turn[r];
		f->save[r] = u.save_ms;
		f->bytes[r] = (double)u.saved_bytes;
		sd_csv(d, "snapshot", r, "s0", &u);
	}
	progress(1, "snapshot: %ld turns", o->rounds);
	return 0;
}

/* What writing and syncing that many bytes costs on the db's disk. */
static double
sync_ms(const struct sd *d, size_t bytes)
{
	char path[PATH_MAX + 32];
	void *b = calloc(1, bytes + 1);
	double t = opt_now(), ms = -1;
	int fd;

	snprintf(path, sizeof path, "%s/sync-test", d->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (b != NULL && fd >= 0 && write(fd, b, bytes) == (ssize_t)bytes &&
	    fdatasync(fd) == 0)
		ms = (opt_now() - t) * 1e3;
	if (fd >= 0)
		close(fd);
	unlink(path);
	free(b);
	return ms;
}

static void
snapshot_print(const struct sd *d, struct turn_figs *f)
{
	int n = (int)d->o->rounds;
	struct stats ratio = stats_of(f->ratio, n), save = stats_of(f->save, n);
	struct stats turn = stats_of(f->turn, n), by = stats_of(f->bytes, n);

	printf("snapshot of a turn (%ld-token reply on a full cache), %d "
	    "turns:\n", d->o->reply, n);
	printf("  turn %.1f ms; snapshot median %.2f ms, max %.2f ms; %.2f "
	    "MiB of chunks written (max %.2f)\n", turn.median, save.median,
	    save.max, mib((uint64_t)by.median), mib((uint64_t)by.max));
	printf("  snapshot / turn: median %.2f%%, max %.2f%% (goal: under "
	    "5%%): %s\n", ratio.median, ratio.max, verdict(ratio.max < 5.0));
	printf("  for scale: writing and fdatasync'ing %.2f MiB in this dir "
	    "takes %.1f ms\n", mib((uint64_t)by.median), sync_ms(d,
	    (size_t)by.median));
}

static int
part_snapshot(struct sd *d, char *cause)
{
	size_t n = (size_t)d->o->rounds;
	double *v = calloc(4 * n, sizeof *v);
	struct turn_figs f = { v, v + n, v + 2 * n, v + 3 * n };
	int rc;

	if (v == NULL)
		return err_set(cause, "out of memory");
	if ((rc = snapshot_turns(d, &f, cause)) == 0)
		snapshot_print(d, &f);
	free(v);
	return rc;
}

/* ---- restore ---- */

static void
drop_pages(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

/* rounds turns on s0, s1, s0 ... (s1 is in memory): each reloads one. */
static int
restore_loads(struct sd *d, double *load, int cold, char *cause)
{
	const char *name;
	struct usage u;
	long r;

	for (r = 0; r < d->o->rounds; r++) {
		name = (r + (cold ? d->o->rounds : 0)) % 2 ? "s1" : "s0";
		progress(0, "restore: %s load %ld/%ld", cold ? "cold" : "warm",
		    r + 1, d->o->rounds);
		if (cold) {
			drop_pages(d->db);
			drop_pages(d->wal);
		}
		if (sd_turn(d, name, "and", 1, &u, cause) != 0)
			return -1;
		if (u.load_ms <= 0)
			return err_set(cause, "session '%s' was not reloaded "
			    "under --max-sessions 1", name);
		load[r] = u.load_ms;
		sd_csv(d, cold ? "restore-cold" : "restore", r, name, &u);
	}
	return 0;
}

/* One pass over a session's chunks, as store_load_chunks makes. */
struct pass {
	int check, bad;
	size_t n;
	uint64_t bytes;
	uint8_t *copy;		/* check: a new buffer the chunks go to */
	double crc_s, copy_s;	/* the copy's first pass faults pages in */
};

static int
pass_chunk(void *arg, int layer, int32_t chunk, uint32_t crc,
    const void *data, size_t len)
{
	struct pass *p = arg;
	double t;

	(void)layer;
	(void)chunk;
	if (p->check) {
		t = opt_now();
		p->bad |= store_crc(data, len) != crc;
		p->crc_s += opt_now() - t;
		t = opt_now();
		memcpy(p->copy + p->bytes, data, len);
		p->copy_s += opt_now() - t;
	}
	p->n++;
	p->bytes += len;
	return p->bad ? -1 : 0;
}

/* Reads s0's chunks twice (the first warms up), then checks and copies. */
static int
restore_passes(const struct sd *d, double *read_ms, double *again_ms,
    struct pass *p, char *cause)
{
	struct store *st;
	double t;
	int rc = 0, i;

	if ((st = store_open_readonly(d->db, cause)) == NULL)
		return -1;
	for (i = 0; rc == 0 && i < 2; i++) {
		memset(p, 0, sizeof *p);
		t = opt_now();
		rc = store_chunks(st, "s0", pass_chunk, p, cause);
		*read_ms = (opt_now() - t) * 1e3;
	}
	if (rc == 0 && (p->copy = malloc(p->bytes + 1)) == NULL)
		rc = err_set(cause, "out of memory");
	if (rc == 0) {
		p->check = 1;
		p->n = 0;
		p->bytes = 0;
		rc = store_chunks(st, "s0", pass_chunk, p, cause);
		if (rc != 0 && p->bad)
			err_set(cause, "session 's0': a chunk's CRC does not "
			    "match");
	}
	if (rc == 0) {
		t = opt_now();
		memmove(p->copy, p->copy + p->bytes / 2, p->bytes / 2);
		memmove(p->copy + p->bytes / 2, p->copy, p->bytes / 2);
		*again_ms = (opt_now() - t) * 1e3;
	}
	free(p->copy);
	p->copy = NULL;
	store_close(st);
	return rc;
}

static void
restore_print(const struct sd *d, struct stats w, struct stats c,
    const double *ms, const struct pass *p)
{
	double rd = ms[0], crc = p->crc_s * 1e3, cp = p->copy_s * 1e3;

	printf("restore of a full session (%.1f MiB in memory; --max-sessions "
	    "1, two sessions taking turns), %ld loads each:\n",
	    mib(d->kv_bytes), d->o->rounds);
	printf("  warm: load median %.1f ms, max %.1f ms (goal: under 100 "
	    "ms): %s\n", w.median, w.max, verdict(w.max < 100.0));
	printf("  cold (the file's pages dropped first): load median %.1f "
	    "ms, max %.1f ms\n", c.median, c.max);
	printf("  where it goes: SQLite reads %zu chunks (%.1f MiB) in %.1f "
	    "ms; store_crc checks them in %.1f ms (%.0f MB/s); copying them "
	    "into a new buffer takes %.1f ms, %.1f ms of it faulting its "
	    "pages in (the same copy again: %.1f ms)\n", p->n, mib(p->bytes),
	    rd, crc, (double)p->bytes / (crc > 0 ? crc * 1e3 : 1), cp,
	    cp - ms[1], ms[1]);
}

static int
part_restore(struct sd *d, char *cause)
{
	long n = d->o->rounds;
	double *v = calloc(2 * (size_t)n, sizeof *v), ms[2] = { 0, 0 };
	struct pass p;
	int rc = -1;

	if (v == NULL)
		return err_set(cause, "out of memory");
	if (restore_loads(d, v, 0, cause) == 0 && restore_loads(d, v + n, 1,
	    cause) == 0 && restore_passes(d, &ms[0], &ms[1], &p, cause) == 0) {
		progress(1, "restore: %ld loads warm, %ld cold", n, n);
		restore_print(d, stats_of(v, (int)n), stats_of(v + n, (int)n),
		    ms, &p);
		rc = 0;
	}
	free(v);
	return rc;
}

/* ---- size ---- */

/*
 * What the database holds, read beside sinkd (a WAL reader, in one
 * read transaction): the data, and with SQLite's dbstat table the pages
 * of each table with its index (else the data stands for them).
 */
struct dbsize {
	uint64_t file, wal, pages, page, free_pages, turns;
	uint64_t kv, kv_pages, text, text_pages;
};

static int
query_u64(sqlite3 *db, const char *sql, uint64_t *out)
{
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

static void
db_pages(sqlite3 *db, struct dbsize *z)
{
	if (query_u64(db, "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE "
	    "name IN ('kv_chunks', 'sqlite_autoindex_kv_chunks_1')",
	    &z->kv_pages) != 0 || query_u64(db, "SELECT coalesce(sum(pgsize), "
	    "0) FROM dbstat WHERE name IN ('turns', "
	    "'sqlite_autoindex_turns_1')", &z->text_pages) != 0) {
		z->kv_pages = z->kv;
		z->text_pages = z->text;
	}
}

static int
db_measure(const struct sd *d, struct dbsize *z, char *cause)
{
	sqlite3 *db = NULL;
	int rc;

	memset(z, 0, sizeof *z);
	z->file = sd_file_size(d->db);
	z->wal = sd_file_size(d->wal);
	rc = sqlite3_open_v2(d->db, &db, SQLITE_OPEN_READONLY, NULL);
	sqlite3_busy_timeout(db, 5000);
	if (rc != SQLITE_OK || sqlite3_exec(db, "BEGIN", NULL, NULL,
	    NULL) != SQLITE_OK || query_u64(db, "SELECT coalesce(sum(length("
	    "data)), 0) FROM kv_chunks", &z->kv) || query_u64(db, "SELECT "
	    "coalesce(sum(length(text) + length(tokens)), 0) FROM turns",
	    &z->text) || query_u64(db, "SELECT count(*) FROM turns",
	    &z->turns) || query_u64(db, "PRAGMA page_count", &z->pages) ||
	    query_u64(db, "PRAGMA freelist_count", &z->free_pages) ||
	    query_u64(db, "PRAGMA page_size", &z->page))
		rc = err_set(cause, "%s: %s", d->db, sqlite3_errmsg(db));
	else
		db_pages(db, z);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* The database as SQLite sees it (the WAL's pages in). */
static uint64_t
logical(const struct dbsize *z)
{
	return z->pages * z->page;
}

/* Everything but the transcript's pages. */
static uint64_t
no_text(const struct dbsize *z)
{
	return logical(z) - z->text_pages;
}

static void
size_head(void)
{
	printf("  %7s %8s %6s %8s %8s %8s %10s %10s %5s %8s\n", "", "db",
	    "wal", "", "kv", "kv", "transcript", "transcript", "", "others");
	printf("  %7s %8s %6s %8s %8s %8s %10s %10s %5s %8s\n", "turns", "file",
	    "file", "database", "data", "pages", "data", "pages", "free",
	    "/session");
}

static void
size_row(long turns, long n_sess, const struct dbsize *z)
{
	printf("  %7ld %8.1f %6.1f %8.1f %8.1f %8.1f %10.3f %10.3f %5.1f "
	    "%8.2f\n", turns, mib(z->file), mib(z->wal), mib(logical(z)),
	    mib(z->kv), mib(z->kv_pages), mib(z->text), mib(z->text_pages),
	    mib(z->free_pages * z->page), mib(no_text(z)) / (double)n_sess);
	fflush(stdout);
}

/* --turns feeds round n_sess sessions; the size at N_MARKS points. */
static int
size_turns(struct sd *d, long n_sess, struct dbsize *z, double *save,
    uint64_t *wal_max, char *cause)
{
	static const int pct[N_MARKS] = { 0, 10, 25, 50, 75, 100 };
	long t = 0, turns = d->o->turns;
	char text[2], name[32];
	uint64_t w;
	struct usage u;
	int k;

	for (k = 0; k < N_MARKS; k++) {
		for (; t < turns * pct[k] / 100; t++) {
			snprintf(name, sizeof name, "s%ld", t % n_sess);
			text[0] = (char)('a' + (char)(t * 7 % 26));
			text[1] = '\0';
			if (sd_turn(d, name, text, 0, &u, cause) != 0)
				return -1;
			save[t] = u.save_ms;
			if ((w = sd_file_size(d->wal)) > *wal_max)
				*wal_max = w;
			sd_csv(d, "size", t, name, &u);
			if ((t + 1) % 50 == 0)
				progress(0, "size: turn %ld/%ld", t + 1, turns);
		}
		if (db_measure(d, &z[k], cause) != 0)
			return -1;
		size_row(t, n_sess, &z[k]);
	}
	progress(1, "size: %ld turns", turns);
	return 0;
}

/* Growth beyond the transcript, from the 10% mark to the end. */
static void
size_summary(const struct sd *d, long n_sess, const struct dbsize *z,
    double *save, uint64_t wal_max)
{
	const struct dbsize *a = &z[1], *b = &z[N_MARKS - 1];
	double all = mib(logical(b)) - mib(logical(a));
	double text = mib(b->text_pages) - mib(a->text_pages);
	double turns = (double)(d->o->turns - d->o->turns / 10), per = 0;
	struct stats s = stats_of(save, (int)d->o->turns);

	if (turns > 0)
		per = 1048576.0 / turns;
	printf("  from turn %ld to %ld the database grew %.3f MiB: the "
	    "transcript's pages %.3f MiB (%.0f bytes a turn, for %.1f bytes "
	    "of text and tokens), the rest %.3f MiB (%.0f bytes a turn)\n",
	    d->o->turns / 10, d->o->turns, all, text, text * per,
	    (double)(b->text - a->text) / turns, all - text,
	    (all - text) * per);
	printf("  without the transcript: %.2f MiB a session, %.2f MiB of it "
	    "KV (goal: proportional to sessions, not turns): %s\n",
	    mib(no_text(b)) / (double)n_sess, mib(b->kv) / (double)n_sess,
	    verdict(all - text <= 0.01 * mib(b->kv) + 0.25));
	printf("  the WAL file peaked at %.1f MiB (rewound, not truncated, "
	    "after each checkpoint)\n", mib(wal_max));
	printf("  snapshot of such a turn: median %.2f ms, max %.2f ms\n",
	    s.median, s.max);
}

/* After a restart: sinkd keeps n_sess sessions in memory. */
static int
part_size(struct sd *d, uint64_t *rng, char *cause)
{
	const struct sopts *o = d->o;
	long n = o->sessions > d->filled ? o->sessions : d->filled;
	double *save = calloc((size_t)o->turns, sizeof *save);
	struct dbsize z[N_MARKS];
	uint64_t wal_max = 0;
	int rc = -1;

	if (save == NULL)
		return err_set(cause, "out of memory");
	if (sd_start(d, n, cause) != 0 || fill_upto(d, n, rng, cause) != 0)
		goto out;
	printf("database size over %ld one-letter feeds spread over %ld full "
	    "sessions (MiB):\n", o->turns, n);
	size_head();
	if (size_turns(d, n, z, save, &wal_max, cause) == 0) {
		size_summary(d, n, z, save, wal_max);
		rc = sd_stop(d, cause);
	}
out:
	free(save);
	return rc;
}

/* ---- the command ---- */

static int
run_parts(struct sd *d, char *cause)
{
	const struct sopts *o = d->o;
	char model[256] = "";
	uint64_t rng = 3;

	if (sd_start(d, 1, cause) != 0 || sd_status(d, model, sizeof model,
	    cause) != 0)
		return -1;
	printf("model: %s (%s), %ld threads, cache %ld, kv %s\n", o->model,
	    model, o->threads, o->cache, o->kv);
	if (((o->parts & STORE_PART_SNAPSHOT) && (fill_upto(d, 1, &rng,
	    cause) != 0 || part_snapshot(d, cause) != 0)) ||
	    ((o->parts & STORE_PART_RESTORE) && (fill_upto(d, 2, &rng,
	    cause) != 0 || part_restore(d, cause) != 0)) ||
	    sd_stop(d, cause) != 0)
		return -1;
	if (o->parts & STORE_PART_SIZE)
		return part_size(d, &rng, cause);
	return 0;
}

static int
store_usage(void)
{
	printf("usage: sinkd-bench store [-m MODEL] [-t THREADS] [--cache "
	    "2048] [--kv f16]\n"
	    "        [--reply 64] [--rounds 10] [--turns 10000] [--sessions "
	    "4]\n"
	    "        [--parts snapshot,restore,size] [--csv FILE] [--dir DIR] "
	    "[--keep]\n"
	    "        [--sinkd PATH]\n"
	    "Drives a sinkd on a database in a temp dir (under DIR, default "
	    "$TMPDIR or /tmp):\nthe snapshot time of a turn against the turn, "
	    "the time to restore a full\nsession, and the database size over "
	    "many turns.\n");
	return 1;
}

static int
parse_parts(const char *arg, int *parts, char *cause)
{
	static const char *const names[] = { "snapshot", "restore", "size" };
	const char *p = arg;
	size_t i, len;

	for (*parts = 0; *p != '\0'; p += len + (p[len] == ',')) {
		len = strcspn(p, ",");
		for (i = 0; i < 3; i++) {
			if (strlen(names[i]) == len && memcmp(p, names[i],
			    len) == 0)
				break;
		}
		if (i == 3)
			return err_set(cause, "--parts: unknown part '%.*s' "
			    "(snapshot, restore, size)", (int)len, p);
		*parts |= 1 << i;
	}
	return *parts == 0 ? err_set(cause, "--parts: none given") : 0;
}

static const struct option store_lo[] = {
	{ "cache", required_argument, NULL, 'c' },
	{ "kv", required_argument, NULL, 'k' },
	{ "reply", required_argument, NULL, 'n' },
	{ "rounds", required_argument, NULL, 'r' },
	{ "turns", required_argument, NULL, 'T' },
	{ "sessions", required_argument, NULL, 'S' },
	{ "parts", required_argument, NULL, 'P' },
	{ "csv", required_argument, NULL, 'C' },
	{ "dir", required_argument, NULL, 'D' },
	{ "keep", no_argument, NULL, 'K' },
	{ "sinkd", required_argument, NULL, 'd' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int
store_opt(int c, struct sopts *o, char *cause)
{
	enum kv_type kt;

	switch (c) {
	case 'm': o->model = optarg; return 0;
	case 'd': o->sinkd = optarg; return 0;
	case 'C': o->csv = optarg; return 0;
	case 'D': o->dir = optarg; return 0;
	case 'K': o->keep = 1; return 0;
	case 'P': return parse_parts(optarg, &o->parts, cause);
	case 'k': o->kv = optarg;
		return seq_kv_parse(optarg, &kt) == 0 ? 0 : err_set(cause,
		    "unknown --kv '%s' (f32, f16)", optarg);
	case 't': return opt_long("-t", optarg, 1, 512, &o->threads, cause);
	case 'c': return opt_long("--cache", optarg, 16, SEQ_MAX_CACHE,
	    &o->cache, cause);
	case 'n': return opt_long("--reply", optarg, 1, 1 << 20, &o->reply,
	    cause);
	case 'r': return opt_long("--rounds", optarg, 1, 10000, &o->rounds,
	    cause);
	case 'T': return opt_long("--turns", optarg, 1, 100000000, &o->turns,
	    cause);
	case 'S': return opt_long("--sessions", optarg, 1, 1000, &o->sessions,
	    cause);
	}
	return err_set(cause, "bad usage (see --help)");
}

static int
store_args(int argc, char **argv, struct sopts *o, char *cause)
{
	int c;

	while ((c = getopt_long(argc, argv, "m:t:h", store_lo, NULL)) != -1) {
		if (c == 'h')
			return store_usage();
		if (store_opt(c, o, cause) != 0)
			return -1;
	}
	if (optind < argc)
		return err_set(cause, "unexpected argument '%s'", argv[optind]);
	if (o->model == NULL && (o->model = opt_default_model()) == NULL)
		return err_set(cause, "%s", opt_no_model_hint);
	if (access(o->model, R_OK) != 0)
		return err_set(cause, "%s: %s", o->model, strerror(errno));
	return 0;
}

/* The sinkd beside this program, unless --sinkd says. */
static const char *
find_sinkd(char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char *slash;

	if (n <= 0)
		return "sinkd";
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) != NULL)
		*slash = '\0';
	snprintf(buf, len, "%s/sinkd", exe);
	return buf;
}

int
bench_store(int argc, char **argv)
{
	struct sopts o = { .threads = sysconf(_SC_NPROCESSORS_ONLN),
		.cache = 2048, .kv = "f16", .reply = 64, .rounds = 10,
		.turns = 10000, .sessions = 4, .parts = STORE_PART_SNAPSHOT |
		STORE_PART_RESTORE | STORE_PART_SIZE };
	char cause[ERR_LEN] = "", path[PATH_MAX + 8];
	struct sd d;
	int rc;

	if ((rc = store_args(argc, argv, &o, cause)) != 0) {
		if (rc > 0)
			return 0;
		fprintf(stderr, "sinkd-bench store: %s\n", cause);
		return 2;
	}
	if (o.sinkd == NULL)
		o.sinkd = find_sinkd(path, sizeof path);
	signal(SIGPIPE, SIG_IGN);
	if ((rc = sd_init(&d, &o, cause)) == 0)
		rc = run_parts(&d, cause);
	sd_cleanup(&d);
	if (rc != 0) {
		fprintf(stderr, "sinkd-bench store: %s\n", cause);
		return 1;
	}
	return 0;
}
